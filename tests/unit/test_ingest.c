/* test_ingest.c — the importers on the real datasets in ../shared/data
 * (exact counts), on corrupted copies (right file:line and field, database
 * content unchanged), duplicate policies, and the generic CSV/JSONL
 * importers. */

#include "ingest/ingest.h"
#include "test.h"
#include "test_db.h"

/* The SQL a check looks into the tables with, for each engine (ctest runs
 * this file on SQLite and, as ingest_pg, on PostgreSQL). */
#define Q(lite, pg) (test_pg() ? (pg) : (lite))

static char *g_dir;
static int g_db_seq;

static store *new_db(void) {
    char name[64];
    snprintf(name, sizeof name, "db%d.db", ++g_db_seq);
    char *p = test_db_target(g_dir, name);
    store *s = NULL;
    tailor_error e = {0};
    if (store_open(p, store_default_params(), &s, &e)) fprintf(stderr, "%s\n", e.msg);
    free(p);
    return s;
}

static void check_counts(store *s, int64_t users, int64_t items, int64_t events, int64_t tags) {
    tailor_store_counts c;
    tailor_error e = {0};
    CHECK_EQ(store_counts(s, &c, &e), 0);
    CHECK_EQ(c.users, users);
    CHECK_EQ(c.items, items);
    CHECK_EQ(c.events, events);
    CHECK_EQ(c.tags, tags);
}

/* ---- real datasets ----------------------------------------------------- */

static void test_ml100k(void) {
    char *dir = test_data_path("ml-100k");
    store *s = new_db();
    ing_stats st;
    tailor_error e = {0};
    CHECK_STR(ing_movielens_detect(dir), "ml-100k");
    ing_movielens_params p = {.dup = STORE_DUP_ERROR};
    CHECK_EQ(ing_movielens(s, dir, p, &st, &e), 0);
    CHECK_EQ(st.events, 100000);
    CHECK_EQ(st.users, 943);
    CHECK_EQ(st.items, 1682);
    check_counts(s, 943, 1682, 100000, 0);
    /* Latin-1 titles arrive as UTF-8; attributes carry year and genres. */
    char *t = query_text(s, "SELECT title FROM items WHERE ext_id = '543'");
    CHECK_STR(t, "Mis\xc3\xa9rables, Les (1995)");
    free(t);
    t = query_text(s, "SELECT attributes FROM items WHERE ext_id = '1'");
    CHECK_CONTAINS(t, "\"year\":1995");
    CHECK_CONTAINS(t, "\"genres\":[\"Animation\",\"Children's\",\"Comedy\"]");
    free(t);
    t = query_text(s, "SELECT attributes FROM users WHERE ext_id = '1'");
    CHECK_STR(t, "{\"age\":24,\"gender\":\"M\",\"occupation\":\"technician\",\"zip_code\":\"85711\"}");
    free(t);
    CHECK_EQ(query_int(s, "SELECT count(*) FROM events e JOIN event_kinds k ON k.id = e.kind"
                          " WHERE k.name = 'rating'"), 100000);
    CHECK_EQ(query_int(s, "SELECT value FROM events e JOIN users u ON u.id = e.user_id"
                          " JOIN items i ON i.id = e.item_id WHERE u.ext_id = '196' AND i.ext_id = '242'"), 3);
    /* The view agrees. */
    store_view v;
    CHECK_EQ(store_view_build(s, store_view_default_params(), &v, &e), 0);
    CHECK_EQ(v.n_users, 943);
    CHECK_EQ(v.n_items, 1682);
    CHECK_EQ(v.nnz, 100000);
    CHECK_EQ(v.n_events, 100000);
    int32_t u = store_view_user(&v, "1");
    CHECK_EQ(v.indptr[u + 1] - v.indptr[u], 272); /* user 1 rated 272 movies */
    for (int64_t k = v.seq_ptr[u] + 1; k < v.seq_ptr[u + 1]; k++) CHECK(v.seq_times[k] >= v.seq_times[k - 1]);
    store_view_deinit(&v);
    store_close(s);
    free(dir);
}

static void test_ml_latest_small(void) {
    char *dir = test_data_path("ml-latest-small");
    store *s = new_db();
    ing_stats st;
    tailor_error e = {0};
    CHECK_STR(ing_movielens_detect(dir), "ml-latest");
    ing_movielens_params p = {.dup = STORE_DUP_ERROR};
    CHECK_EQ(ing_movielens(s, dir, p, &st, &e), 0);
    check_counts(s, 610, 9742, 100836, 3683);
    char *t = query_text(s, "SELECT attributes FROM items WHERE ext_id = '1'");
    CHECK_STR(t, "{\"year\":1995,\"imdb_id\":\"tt0114709\",\"tmdb_id\":\"862\","
                 "\"genres\":[\"Adventure\",\"Animation\",\"Children\",\"Comedy\",\"Fantasy\"]}");
    free(t);
    /* A quoted title with a comma. */
    t = query_text(s, "SELECT title FROM items WHERE ext_id = '11'");
    CHECK_STR(t, "American President, The (1995)");
    free(t);
    CHECK_EQ(query_int(s, "SELECT count(*) FROM tags WHERE tag = 'dark comedy'") >= 1, 1);
    CHECK_EQ(query_int(s, "SELECT min(value * 2) FROM events"), 1);
    /* Re-imports under skip and replace leave every table as it was, tags
     * included (they used to double: 3,683 -> 7,366). */
    char d0[65], d1[65];
    store_content_digest(s, d0, &e);
    p.dup = STORE_DUP_SKIP;
    CHECK_EQ(ing_movielens(s, dir, p, &st, &e), 0);
    check_counts(s, 610, 9742, 100836, 3683);
    CHECK_EQ(st.tags, 0);
    store_content_digest(s, d1, &e);
    CHECK_STR(d1, d0);
    p.dup = STORE_DUP_REPLACE;
    CHECK_EQ(ing_movielens(s, dir, p, &st, &e), 0);
    check_counts(s, 610, 9742, 100836, 3683);
    CHECK_EQ(st.replaced, 9742 + 100836 + 3683);
    p.dup = STORE_DUP_ERROR;
    CHECK_EQ(ing_movielens(s, dir, p, &st, &e), TAILOR_EEXISTS);
    store_close(s);
    free(dir);
}

static void test_beauty_sequences(void) {
    char *path = test_data_path("s3rec-seqrec/Beauty.txt");
    char *attrs = test_data_path("s3rec-seqrec/Beauty_item2attributes.json");
    store *s = new_db();
    ing_stats st;
    tailor_error e = {0};
    ing_sequences_params p = {.attributes = attrs, .dup = STORE_DUP_KEEP};
    CHECK_EQ(ing_sequences(s, path, p, &st, &e), 0);
    /* PROVENANCE: 22,363 users / 12,101 items / 198,502 interactions. */
    check_counts(s, 22363, 12101, 198502, 0);
    CHECK(query_int(s, Q("SELECT count(*) FROM items WHERE json_array_length(attributes->'attributes') > 0",
                       "SELECT count(*) FROM items WHERE jsonb_array_length(attributes::jsonb->'attributes') > 0")) > 12000);
    store_view v;
    CHECK_EQ(store_view_build(s, store_view_default_params(), &v, &e), 0);
    /* Line 1000: "1000 5958 34 5959 5960 ..." in order. */
    int32_t u = store_view_user(&v, "1000");
    CHECK(u >= 0);
    CHECK_STR(v.item_ext[v.seq_items[v.seq_ptr[u]]], "5958");
    CHECK_STR(v.item_ext[v.seq_items[v.seq_ptr[u] + 1]], "34");
    CHECK_EQ(v.seq_times[v.seq_ptr[u] + 1], 1);
    store_view_deinit(&v);
    store_close(s);
    free(path);
    free(attrs);
}

static void test_ml1m_layout(void) {
    /* No ml-1m in shared/data: a small folder in its exact format ('::'
     * separated, Latin-1 titles, users.dat) exercises that path. */
    char *dir = path_join(g_dir, "ml-1m");
    tailor_error e = {0};
    mkdir_p(dir, &e);
    free(test_write(dir, "movies.dat",
                    "1::Toy Story (1995)::Animation|Children's|Comedy\n"
                    "2::Mis\xe9rables, Les (1995)::Drama|Musical\n"));
    free(test_write(dir, "users.dat", "1::F::1::10::48067\n2::M::56::16::70072\n"));
    free(test_write(dir, "ratings.dat",
                    "1::1::5::978300760\n1::2::3::978302109\n2::1::4::978301968\n"));
    CHECK_STR(ing_movielens_detect(dir), "ml-1m");
    store *s = new_db();
    ing_stats st;
    ing_movielens_params p = {.dup = STORE_DUP_ERROR};
    CHECK_EQ(ing_movielens(s, dir, p, &st, &e), 0);
    check_counts(s, 2, 2, 3, 0);
    char *t = query_text(s, "SELECT title FROM items WHERE ext_id = '2'");
    CHECK_STR(t, "Mis\xc3\xa9rables, Les (1995)");
    free(t);
    t = query_text(s, "SELECT attributes FROM items WHERE ext_id = '1'");
    CHECK_STR(t, "{\"year\":1995,\"genres\":[\"Animation\",\"Children's\",\"Comedy\"]}");
    free(t);
    t = query_text(s, "SELECT attributes FROM users WHERE ext_id = '2'");
    CHECK_STR(t, "{\"gender\":\"M\",\"age\":56,\"occupation\":\"16\",\"zip_code\":\"70072\"}");
    free(t);
    /* A rating of an unknown movie names its line. */
    free(test_write(dir, "ratings.dat", "1::1::5::978300760\n1::9::3::978302109\n"));
    store_close(s);
    s = new_db();
    CHECK_EQ(ing_movielens(s, dir, p, &st, &e), TAILOR_EDATA);
    CHECK_CONTAINS(e.msg, "ratings.dat:2: field 'item_id': unknown movie '9'");
    check_counts(s, 0, 0, 0, 0);
    store_close(s);
    free(dir);
}

/* ---- corrupted copies -------------------------------------------------- */

typedef enum edit_kind { EDIT_REPLACE, EDIT_TRUNCATE_LAST } edit_kind;

/* Copies src_dir's files into a new folder, editing one file: replace line
 * `line` (1-based) with `text`, or cut the last line in half. */
static char *corrupt_copy(const char *src_dir, const char *file, edit_kind kind, int64_t line,
                          const char *text) {
    static int seq;
    char name[64];
    snprintf(name, sizeof name, "copy%d", ++seq);
    char *dst = path_join(g_dir, name);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cp -r '%s' '%s' && chmod -R u+w '%s'", src_dir, dst, dst);
    if (system(cmd) != 0) {
        fprintf(stderr, "copy failed\n");
        exit(2);
    }
    char *in = path_join(src_dir, file), *out = path_join(dst, file);
    sb all;
    sb_init(&all);
    tailor_error e = {0};
    if (file_read(in, &all, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        exit(2);
    }
    FILE *o = fopen(out, "wb");
    if (kind == EDIT_TRUNCATE_LAST) {
        size_t end = all.len;
        while (end && (all.buf[end - 1] == '\n' || all.buf[end - 1] == '\r')) end--;
        size_t start = end;
        while (start && all.buf[start - 1] != '\n') start--;
        fwrite(all.buf, 1, start + (end - start) / 2, o);
    } else {
        int64_t ln = 1;
        size_t i = 0;
        while (i < all.len) {
            const char *nl = memchr(all.buf + i, '\n', all.len - i);
            size_t end = nl ? (size_t)(nl - all.buf) + 1 : all.len;
            if (ln == line) {
                fputs(text, o);
                fputc('\n', o);
            } else {
                fwrite(all.buf + i, 1, end - i, o);
            }
            i = end;
            ln++;
        }
    }
    fclose(o);
    sb_deinit(&all);
    free(in);
    free(out);
    return dst;
}

/* A store with some content of its own, so "unchanged" means more than
 * "still empty". */
static store *seeded_db(void) {
    store *s = new_db();
    char *items = test_write(g_dir, "seed_items.csv", "id,title,genre\nx1,Seed One,drama\nx2,Seed Two,comedy\n");
    char *events = test_write(g_dir, "seed_events.csv", "user,item,time,rating\nalice,x1,100,5\nbob,x2,200,3\n");
    ing_stats st;
    tailor_error e = {0};
    ing_items_params ip = {.dup = STORE_DUP_ERROR};
    ing_events_params ep = {.dup = STORE_DUP_KEEP};
    CHECK_EQ(ing_items(s, items, ip, &st, &e), 0);
    CHECK_EQ(ing_events(s, events, ep, &st, &e), 0);
    free(items);
    free(events);
    return s;
}

static void expect_ml_failure(const char *dataset, const char *file, edit_kind kind, int64_t line,
                              const char *text, const char *want_msg) {
    char *src = test_data_path(dataset);
    char *copy = corrupt_copy(src, file, kind, line, text);
    store *s = seeded_db();
    tailor_error e = {0};
    char before[65], after[65];
    CHECK_EQ(store_content_digest(s, before, &e), 0);
    ing_stats st;
    ing_movielens_params p = {.dup = STORE_DUP_ERROR};
    int rc = ing_movielens(s, copy, p, &st, &e);
    CHECK(rc < 0);
    CHECK_CONTAINS(e.msg, want_msg);
    CHECK_EQ(store_content_digest(s, after, &e), 0);
    CHECK_STR(after, before);
    check_counts(s, 2, 2, 2, 0);
    store_close(s);
    test_rmtree(copy);
    free(copy);
    free(src);
}

static void test_corrupt_bad_number(void) {
    expect_ml_failure("ml-100k", "u.data", EDIT_REPLACE, 500, "196\t242\tx\t881250949",
                      "u.data:500: field 'rating': 'x' is not a number");
    expect_ml_failure("ml-latest-small", "ratings.csv", EDIT_REPLACE, 5000, "32,1,four,856736172",
                      "ratings.csv:5000: field 'rating': 'four' is not a number");
    expect_ml_failure("ml-latest-small", "ratings.csv", EDIT_REPLACE, 7, "1,x47,5.0,964983815",
                      "ratings.csv:7: field 'movieId': 'x47' is not a non-negative integer id");
}

static void test_corrupt_missing_field(void) {
    expect_ml_failure("ml-100k", "u.data", EDIT_REPLACE, 777, "196\t242\t3",
                      "u.data:777: field 'timestamp': missing: expected 4 fields, found 3");
    expect_ml_failure("ml-100k", "u.item", EDIT_REPLACE, 10, "10|Richard III (1995)|22-Jan-1996",
                      "u.item:10: field 'video_release_date': missing");
    expect_ml_failure("ml-latest-small", "movies.csv", EDIT_REPLACE, 20, "19,,Comedy",
                      "movies.csv:20: field 'title': missing value");
}

static void test_corrupt_truncated(void) {
    expect_ml_failure("ml-latest-small", "ratings.csv", EDIT_TRUNCATE_LAST, 0, NULL,
                      "ratings.csv:100837: field 'timestamp': missing: expected 4 fields, found 3 "
                      "(the file ends inside this line: truncated?)");
    expect_ml_failure("ml-100k", "u.data", EDIT_TRUNCATE_LAST, 0, NULL,
                      "u.data:100000: field 'timestamp': missing value (the file ends inside this line: truncated?)");
}

static void test_corrupt_utf8(void) {
    expect_ml_failure("ml-latest-small", "movies.csv", EDIT_REPLACE, 100,
                      "98,Mis\xe9rables (1995),Drama",
                      "movies.csv:100: field 2: invalid UTF-8");
    expect_ml_failure("ml-latest-small", "tags.csv", EDIT_REPLACE, 3, "2,60756,\xff\xfe,1445714996",
                      "tags.csv:3: field 3: invalid UTF-8");
}

static void test_corrupt_unknown_refs(void) {
    expect_ml_failure("ml-latest-small", "tags.csv", EDIT_REPLACE, 50, "99999,410,dark comedy,1525636610",
                      "tags.csv:50: field 'userId': unknown user '99999' (no ratings from this user)");
    expect_ml_failure("ml-latest-small", "tags.csv", EDIT_REPLACE, 51, "62,77777777,funny,1525636610",
                      "tags.csv:51: field 'movieId': unknown movie '77777777'");
    expect_ml_failure("ml-100k", "u.data", EDIT_REPLACE, 3, "22\t99999\t1\t878887116",
                      "u.data:3: field 'item_id': unknown movie '99999'");
    expect_ml_failure("ml-100k", "u.data", EDIT_REPLACE, 4, "5000\t377\t1\t878887116",
                      "u.data:4: field 'user_id': unknown user '5000' (not in the users file)");
}

static void test_corrupt_sequences(void) {
    char *src = test_data_path("s3rec-seqrec");
    struct {
        int64_t line;
        const char *text, *want;
    } cases[] = {
        {1000, "1000", "Beauty.txt:1000: field 'item': missing"},
        {7, "7 12 \xc3(", "Beauty.txt:7: field 3: invalid UTF-8"},
    };
    for (size_t k = 0; k < 2; k++) {
        char *copy = corrupt_copy(src, "Beauty.txt", EDIT_REPLACE, cases[k].line, cases[k].text);
        char *path = path_join(copy, "Beauty.txt");
        store *s = seeded_db();
        tailor_error e = {0};
        char before[65], after[65];
        store_content_digest(s, before, &e);
        ing_stats st;
        ing_sequences_params p = {.dup = STORE_DUP_KEEP};
        CHECK(ing_sequences(s, path, p, &st, &e) < 0);
        CHECK_CONTAINS(e.msg, cases[k].want);
        store_content_digest(s, after, &e);
        CHECK_STR(after, before);
        store_close(s);
        test_rmtree(copy);
        free(copy);
        free(path);
    }
    free(src);
}

/* ---- duplicate policies ------------------------------------------------ */

static void test_duplicate_policies(void) {
    char *dir = test_data_path("ml-100k");
    store *s = new_db();
    ing_stats st;
    tailor_error e = {0};
    ing_movielens_params p = {.dup = STORE_DUP_ERROR};
    CHECK_EQ(ing_movielens(s, dir, p, &st, &e), 0);
    char d0[65], d1[65];
    store_content_digest(s, d0, &e);
    /* Again, default policy: refused at the first row, nothing changed. */
    CHECK_EQ(ing_movielens(s, dir, p, &st, &e), TAILOR_EEXISTS);
    CHECK_CONTAINS(e.msg, "u.item:1: item '1' already exists (use --on-duplicate skip or replace)");
    store_content_digest(s, d1, &e);
    CHECK_STR(d1, d0);
    p.dup = STORE_DUP_SKIP;
    CHECK_EQ(ing_movielens(s, dir, p, &st, &e), 0);
    CHECK_EQ(st.events, 0);
    CHECK_EQ(st.skipped, 1682 + 943 + 100000);
    store_content_digest(s, d1, &e);
    CHECK_STR(d1, d0);
    p.dup = STORE_DUP_REPLACE;
    CHECK_EQ(ing_movielens(s, dir, p, &st, &e), 0);
    CHECK_EQ(st.replaced, 1682 + 943 + 100000);
    check_counts(s, 943, 1682, 100000, 0);
    p.dup = STORE_DUP_KEEP;
    CHECK_EQ(ing_movielens(s, dir, p, &st, &e), 0);
    check_counts(s, 943, 1682, 200000, 0);
    store_close(s);
    free(dir);
}

/* ---- generic importers ------------------------------------------------- */

static void test_generic_events(void) {
    store *s = new_db();
    ing_stats st;
    tailor_error e = {0};
    char *csv = test_write(g_dir, "ev.csv",
                           "who,what,when,stars,action\n"
                           "u1,i1,2024-01-01T10:00:00Z,4.5,view\n"
                           "u1,i2,1704103200,,purchase\n"
                           "u2,i1,2024-01-02,3,view\n");
    ing_events_params p = {.user_col = "who", .item_col = "what", .time_col = "when",
                           .value_col = "stars", .kind_col = "action", .dup = STORE_DUP_KEEP};
    CHECK_EQ(ing_events(s, csv, p, &st, &e), 0);
    check_counts(s, 2, 2, 3, 0);
    CHECK_EQ(query_int(s, "SELECT ts FROM events WHERE id = 1"), 1704103200);
    CHECK_EQ(query_int(s, "SELECT count(*) FROM events WHERE value IS NULL"), 1);
    CHECK_EQ(query_int(s, "SELECT count(*) FROM events e JOIN event_kinds k ON k.id = e.kind WHERE k.name = 'purchase'"), 1);
    /* Unknown column named by a flag. */
    p.time_col = "date";
    CHECK_EQ(ing_events(s, csv, p, &st, &e), TAILOR_EDATA);
    CHECK_CONTAINS(e.msg, "ev.csv:1: no column 'date' (given with --time) in the header");
    /* Defaults by name, JSON Lines. */
    char *jl = test_write(g_dir, "ev.jsonl",
                          "{\"user_id\": 7, \"item_id\": \"i9\", \"timestamp\": 5, \"rating\": 2}\n"
                          "{\"user_id\": 8, \"item_id\": 10, \"timestamp\": \"1970-01-01T00:00:06Z\"}\n");
    ing_events_params d = {.dup = STORE_DUP_KEEP};
    CHECK_EQ(ing_events(s, jl, d, &st, &e), 0);
    CHECK_EQ(st.events, 2);
    CHECK_EQ(query_int(s, "SELECT count(*) FROM users WHERE ext_id IN ('7', '8')"), 2);
    CHECK_EQ(query_int(s, "SELECT ts FROM events e JOIN users u ON u.id = e.user_id WHERE u.ext_id = '8'"), 6);
    CHECK_EQ(query_int(s, "SELECT value FROM events e JOIN users u ON u.id = e.user_id WHERE u.ext_id = '7'"), 2);
    /* Bad rows: named line and field, nothing kept. */
    char before[65], after[65];
    store_content_digest(s, before, &e);
    char *bad = test_write(g_dir, "bad.csv", "user_id,item_id,timestamp\na,b,1\nc,d,noon\n");
    CHECK_EQ(ing_events(s, bad, d, &st, &e), TAILOR_EDATA);
    CHECK_CONTAINS(e.msg, "bad.csv:3: field 'timestamp': 'noon' is not a time");
    char *notime = test_write(g_dir, "notime.csv", "user_id,item_id,timestamp\na,b,1\nc,d,\n");
    CHECK_EQ(ing_events(s, notime, d, &st, &e), TAILOR_EDATA);
    CHECK_CONTAINS(e.msg, "notime.csv:3: field 'timestamp': missing value");
    free(notime);
    char *badj = test_write(g_dir, "bad.jsonl", "{\"user_id\": 1, \"item_id\": 2}\n{\"user_id\": 3}\n");
    CHECK_EQ(ing_events(s, badj, d, &st, &e), TAILOR_EDATA);
    CHECK_CONTAINS(e.msg, "bad.jsonl:2: field 'item_id': missing value");
    char *nouser = test_write(g_dir, "nouser.csv", "a,b\n1,2\n");
    CHECK_EQ(ing_events(s, nouser, d, &st, &e), TAILOR_EDATA);
    CHECK_CONTAINS(e.msg, "no user column");
    store_content_digest(s, after, &e);
    CHECK_STR(after, before);
    /* Without a time column, rows keep the file's order after every
     * stored event (the newest has ts 1704153600, 2024-01-02). */
    char *order = test_write(g_dir, "order.csv", "user_id,item_id\nz,i2\nz,i1\nz,i9\n");
    CHECK_EQ(ing_events(s, order, d, &st, &e), 0);
    CHECK_EQ(st.ts_first, 1704153601);
    CHECK_EQ(st.ts_last, 1704153603);
    char *seq = query_text(s, Q("SELECT group_concat(ext_id, ',') FROM (SELECT i.ext_id FROM events e JOIN users u"
                                " ON u.id = e.user_id JOIN items i ON i.id = e.item_id WHERE u.ext_id = 'z' ORDER BY e.ts)",
                                "SELECT string_agg(i.ext_id, ',' ORDER BY e.ts) FROM events e JOIN users u"
                                " ON u.id = e.user_id JOIN items i ON i.id = e.item_id WHERE u.ext_id = 'z'"));
    CHECK_STR(seq, "i2,i1,i9");
    free(seq);
    free(order);
    /* Duplicate policy on events. */
    d.dup = STORE_DUP_ERROR;
    CHECK_EQ(ing_events(s, jl, d, &st, &e), TAILOR_EEXISTS);
    CHECK_CONTAINS(e.msg, "ev.jsonl:1: duplicate event");
    d.dup = STORE_DUP_SKIP;
    CHECK_EQ(ing_events(s, jl, d, &st, &e), 0);
    CHECK_EQ(st.skipped, 2);
    free(csv);
    free(jl);
    free(bad);
    free(badj);
    free(nouser);
    store_close(s);
}

static void test_generic_items(void) {
    store *s = new_db();
    ing_stats st;
    tailor_error e = {0};
    char *csv = test_write(g_dir, "items.csv",
                           "sku,name,blurb,brand,price\n"
                           "a1,\"Red, shoes\",Comfortable shoes,Acme,19.90\n"
                           "a2,Blue hat,,Hatco,\n");
    ing_items_params p = {.id_col = "sku", .title_col = "name", .text_col = "blurb", .dup = STORE_DUP_ERROR};
    CHECK_EQ(ing_items(s, csv, p, &st, &e), 0);
    CHECK_EQ(st.items, 2);
    char *t = query_text(s, "SELECT attributes FROM items WHERE ext_id = 'a1'");
    CHECK_STR(t, "{\"brand\":\"Acme\",\"price\":\"19.90\"}");
    free(t);
    t = query_text(s, "SELECT title FROM items WHERE ext_id = 'a1'");
    CHECK_STR(t, "Red, shoes");
    free(t);
    CHECK_EQ(query_int(s, "SELECT text IS NULL FROM items WHERE ext_id = 'a2'"), 1);
    CHECK_EQ(query_int(s, Q("SELECT rowid FROM items_fts WHERE items_fts MATCH 'comfortable'",
                          "SELECT id FROM items WHERE fts @@ to_tsquery('simple', 'comfortable')")), 1);
    /* JSONL with nested attributes; duplicate id is an error by default. */
    char *jl = test_write(g_dir, "items.jsonl",
                          "{\"id\": \"b1\", \"title\": \"Lamp\", \"tags\": [\"home\"], \"stock\": 3}\n"
                          "{\"id\": \"a1\", \"title\": \"Dup\"}\n");
    ing_items_params d = {.dup = STORE_DUP_ERROR};
    CHECK_EQ(ing_items(s, jl, d, &st, &e), TAILOR_EEXISTS);
    CHECK_CONTAINS(e.msg, "items.jsonl:2: item 'a1' already exists");
    CHECK_EQ(query_int(s, "SELECT count(*) FROM items"), 2);
    d.dup = STORE_DUP_REPLACE;
    CHECK_EQ(ing_items(s, jl, d, &st, &e), 0);
    t = query_text(s, "SELECT attributes FROM items WHERE ext_id = 'b1'");
    CHECK_STR(t, "{\"tags\":[\"home\"],\"stock\":3}");
    free(t);
    t = query_text(s, "SELECT title FROM items WHERE ext_id = 'a1'");
    CHECK_STR(t, "Dup");
    free(t);
    free(csv);
    free(jl);
    store_close(s);
}

int main(void) {
    g_dir = test_tmpdir();
    RUN(test_ml100k);
    RUN(test_ml_latest_small);
    RUN(test_beauty_sequences);
    RUN(test_ml1m_layout);
    RUN(test_corrupt_bad_number);
    RUN(test_corrupt_missing_field);
    RUN(test_corrupt_truncated);
    RUN(test_corrupt_utf8);
    RUN(test_corrupt_unknown_refs);
    RUN(test_corrupt_sequences);
    RUN(test_duplicate_policies);
    RUN(test_generic_events);
    RUN(test_generic_items);
    test_rmtree(g_dir);
    free(g_dir);
    return test_summary();
}
