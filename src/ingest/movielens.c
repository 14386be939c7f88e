/* movielens.c — importer for the MovieLens layouts: ml-100k (u.item, u.user,
 * u.data; Latin-1, '|' and tab separated), ml-1m (*.dat, '::' separated,
 * Latin-1) and ml-latest / ml-latest-small / ml-20m (UTF-8 CSV with header:
 * movies, links, ratings, tags). Items first, then users, ratings, tags: a
 * rating or tag that names an unknown movie, or a tag that names a user who
 * never rated, is an error with its line. */
#include <stdlib.h>
#include <string.h>

#include "ingest/import_internal.h"

typedef enum ml_layout { ML_NONE, ML_100K, ML_1M, ML_LATEST } ml_layout;

static ml_layout ml_detect(const char *dir) {
    struct {
        ml_layout layout;
        const char *a, *b;
    } probes[] = {
        {ML_100K, "u.data", "u.item"},
        {ML_1M, "ratings.dat", "movies.dat"},
        {ML_LATEST, "ratings.csv", "movies.csv"},
    };
    for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++) {
        char *a = path_join(dir, probes[i].a), *b = path_join(dir, probes[i].b);
        bool ok = file_exists(a) && file_exists(b);
        free(a);
        free(b);
        if (ok) return probes[i].layout;
    }
    return ML_NONE;
}

const char *ing_movielens_detect(const char *dir) {
    switch (ml_detect(dir)) {
    case ML_100K: return "ml-100k";
    case ML_1M: return "ml-1m";
    case ML_LATEST: return "ml-latest";
    default: return NULL;
    }
}

/* Field helpers: each reports FILE:LINE: field 'NAME': why. */
static int want_fields(const ing_reader *r, size_t n, const char *const *names,
                       tailor_error *err) {
    if (ing_nfields(r) < n) return ing_reader_short(r, n, names[ing_nfields(r)], err);
    if (ing_nfields(r) > n)
        return err_data(err, r->path, r->line, NULL, "expected %zu fields, found %zu", n,
                        ing_nfields(r));
    return 0;
}

static int missing(const ing_reader *r, const char *name, tailor_error *err) {
    return err_data(err, r->path, r->line, name, "missing value%s",
                    r->last_had_newline ? "" : " (the file ends inside this line: truncated?)");
}

static int field_id(const ing_reader *r, size_t i, const char *name, tailor_error *err) {
    int64_t v;
    size_t len = ing_field_len(r, i);
    if (len == 0) return missing(r, name, err);
    if (!parse_i64(ing_field_str(r, i), len, &v) || v < 0)
        return err_data(err, r->path, r->line, name, "'%s' is not a non-negative integer id",
                        ing_field_str(r, i));
    return 0;
}

static int field_num(const ing_reader *r, size_t i, const char *name, double *out,
                     tailor_error *err) {
    size_t len = ing_field_len(r, i);
    if (len == 0) return missing(r, name, err);
    if (!parse_f64(ing_field_str(r, i), len, out))
        return err_data(err, r->path, r->line, name, "'%s' is not a number", ing_field_str(r, i));
    return 0;
}

static int field_int(const ing_reader *r, size_t i, const char *name, int64_t *out,
                     tailor_error *err) {
    size_t len = ing_field_len(r, i);
    if (len == 0) return missing(r, name, err);
    if (!parse_i64(ing_field_str(r, i), len, out))
        return err_data(err, r->path, r->line, name, "'%s' is not an integer",
                        ing_field_str(r, i));
    return 0;
}

static int check_header(ing_reader *r, const char *expected, tailor_error *err) {
    int rc = ing_reader_next(r, err);
    if (rc < 0) return rc;
    if (rc == 0) return err_data(err, r->path, 1, NULL, "empty file: expected header %s", expected);
    sb h;
    sb_init(&h);
    for (size_t i = 0; i < ing_nfields(r); i++) {
        if (i) sb_putc(&h, ',');
        sb_puts(&h, ing_field_str(r, i));
    }
    rc = strcmp(sb_str(&h), expected) == 0
             ? 0
             : err_data(err, r->path, r->line, NULL, "header is '%s', expected '%s'", sb_str(&h),
                        expected);
    sb_deinit(&h);
    return rc;
}

/* The year at the end of a title: "Heat (1995)" -> 1995, else 0. */
static int title_year(const char *t) {
    size_t n = strlen(t);
    while (n && t[n - 1] == ' ') n--;
    if (n < 6 || t[n - 1] != ')' || t[n - 6] != '(') return 0;
    int y = 0;
    for (size_t i = n - 5; i < n - 1; i++) {
        if (t[i] < '0' || t[i] > '9') return 0;
        y = y * 10 + t[i] - '0';
    }
    return y;
}

static void json_genres(sb *a, const char *const *g, size_t n) {
    sb_puts(a, "\"genres\":[");
    for (size_t i = 0; i < n; i++) {
        if (i) sb_putc(a, ',');
        sb_json_str(a, g[i], strlen(g[i]));
    }
    sb_putc(a, ']');
}

/* Starts an item's attributes object: {"year":Y, when the title ends in
 * "(YYYY)". Returns the year (0 when none). */
static int ml_attrs_begin(sb *a, const char *title) {
    sb_clear(a);
    sb_putc(a, '{');
    int y = title_year(title);
    if (y) sb_printf(a, "\"year\":%d,", y);
    return y;
}

/* Splits "A|B|C" into a NULL-free list (pointers into a copy in *buf). */
static size_t split_pipe(char *s, const char **out, size_t max) {
    size_t n = 0;
    if (!*s || !strcmp(s, "(no genres listed)")) return 0;
    for (char *p = s; n < max;) {
        out[n++] = p;
        char *bar = strchr(p, '|');
        if (!bar) break;
        *bar = 0;
        p = bar + 1;
    }
    return n;
}

typedef struct ml_job {
    ing_ctx *c;
    const char *dir;
    tailor_error *err;
    int64_t kind_rating;
    uint64_t bytes_before; /* progress across files */
} ml_job;

static int ml_open(ml_job *j, ing_reader *r, const char *file, ing_reader_params p) {
    char *path = path_join(j->dir, file);
    int rc = ing_reader_open(r, path, p, j->err);
    free(path);
    return rc;
}

static void ml_close(ml_job *j, ing_reader *r) {
    j->bytes_before += r->bytes_done;
    ing_reader_close(r);
}

/* Ends the attributes in a with the genres and stores the item of the
 * current record (field 0 is the movie id). */
static int ml_item_store(ml_job *j, const ing_reader *r, const char *title, sb *a,
                         const char *const *genres, size_t ng) {
    json_genres(a, genres, ng);
    sb_putc(a, '}');
    int64_t id;
    int rc = ing_at(j->err,
                    ing_item(j->c, ing_field_str(r, 0), ing_field_len(r, 0), title, NULL, sb_str(a),
                             true, &id, j->err),
                    r->path, r->line);
    if (!rc) ing_ctx_progress(j->c, j->bytes_before + r->bytes_done);
    return rc;
}

/* ---- ml-100k ----------------------------------------------------------- */

static const char *const ML100K_GENRES[19] = {
    "unknown",  "Action",    "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama",  "Fantasy",   "Film-Noir", "Horror",     "Musical", "Mystery",
    "Romance",  "Sci-Fi",    "Thriller",  "War",       "Western"};

static int ml100k_items(ml_job *j) {
    ing_reader r;
    ing_reader_params p = {.sep = "|", .quoting = false, .latin1 = true};
    int rc = ml_open(j, &r, "u.item", p);
    if (rc) return rc;
    static const char *const names[24] = {
        "movie_id", "title", "release_date", "video_release_date", "imdb_url",
        "genre 0",  "genre 1", "genre 2", "genre 3", "genre 4", "genre 5", "genre 6",
        "genre 7",  "genre 8", "genre 9", "genre 10", "genre 11", "genre 12", "genre 13",
        "genre 14", "genre 15", "genre 16", "genre 17", "genre 18"};
    sb a;
    sb_init(&a);
    while ((rc = ing_reader_next(&r, j->err)) == 1) {
        if ((rc = want_fields(&r, 24, names, j->err))) break;
        if ((rc = field_id(&r, 0, names[0], j->err))) break;
        const char *g[19];
        size_t ng = 0;
        for (size_t k = 0; k < 19; k++) {
            const char *f = ing_field_str(&r, 5 + k);
            if (strcmp(f, "0") && strcmp(f, "1")) {
                rc = err_data(j->err, r.path, r.line, names[5 + k], "'%s' is not 0 or 1", f);
                break;
            }
            if (f[0] == '1') g[ng++] = ML100K_GENRES[k];
        }
        if (rc) break;
        const char *title = ing_field_str(&r, 1), *date = ing_field_str(&r, 2);
        size_t dl = strlen(date);
        if (!ml_attrs_begin(&a, title) && dl >= 4 && atoi(date + dl - 4) > 0)
            sb_printf(&a, "\"year\":%d,", atoi(date + dl - 4));
        if (dl) {
            sb_puts(&a, "\"release_date\":");
            sb_json_str(&a, date, dl);
            sb_putc(&a, ',');
        }
        if (ing_field_len(&r, 4)) {
            sb_puts(&a, "\"imdb_url\":");
            sb_json_str(&a, ing_field_str(&r, 4), ing_field_len(&r, 4));
            sb_putc(&a, ',');
        }
        if ((rc = ml_item_store(j, &r, title, &a, g, ng))) break;
    }
    sb_deinit(&a);
    ml_close(j, &r);
    return rc < 0 ? rc : 0;
}

static int ml_users_dat(ml_job *j, const char *file, const char *sep, bool latin1,
                        const char *const *names, size_t nf) {
    ing_reader r;
    ing_reader_params p = {.sep = sep, .quoting = false, .latin1 = latin1};
    int rc = ml_open(j, &r, file, p);
    if (rc) return rc;
    sb a;
    sb_init(&a);
    while ((rc = ing_reader_next(&r, j->err)) == 1) {
        if ((rc = want_fields(&r, nf, names, j->err))) break;
        if ((rc = field_id(&r, 0, names[0], j->err))) break;
        sb_clear(&a);
        sb_putc(&a, '{');
        for (size_t k = 1; k < nf; k++) {
            if (k > 1) sb_putc(&a, ',');
            sb_json_str(&a, names[k], strlen(names[k]));
            sb_putc(&a, ':');
            int64_t v;
            if (!strcmp(names[k], "age") && parse_i64(ing_field_str(&r, k), ing_field_len(&r, k), &v))
                sb_printf(&a, "%lld", (long long)v);
            else
                sb_json_str(&a, ing_field_str(&r, k), ing_field_len(&r, k));
        }
        sb_putc(&a, '}');
        int64_t id;
        rc = ing_at(j->err,
                    ing_user(j->c, ing_field_str(&r, 0), ing_field_len(&r, 0), sb_str(&a), true,
                             &id, j->err),
                    r.path, r.line);
        if (rc) break;
    }
    sb_deinit(&a);
    ml_close(j, &r);
    return rc < 0 ? rc : 0;
}

/* Ratings: USER SEP ITEM SEP RATING SEP TIME. Users are created unless
 * users_known (a users file defined them); items must exist. */
static int ml_ratings(ml_job *j, const char *file, ing_reader_params p, bool header,
                      bool users_known) {
    ing_reader r;
    int rc = ml_open(j, &r, file, p);
    if (rc) return rc;
    static const char *const names[4] = {"user_id", "item_id", "rating", "timestamp"};
    static const char *const csv_names[4] = {"userId", "movieId", "rating", "timestamp"};
    const char *const *nm = header ? csv_names : names;
    if (header && (rc = check_header(&r, "userId,movieId,rating,timestamp", j->err))) {
        ml_close(j, &r);
        return rc;
    }
    while ((rc = ing_reader_next(&r, j->err)) == 1) {
        if ((rc = want_fields(&r, 4, nm, j->err))) break;
        if ((rc = field_id(&r, 0, nm[0], j->err)) || (rc = field_id(&r, 1, nm[1], j->err)))
            break;
        store_event ev = {.kind = j->kind_rating, .has_value = true};
        if ((rc = field_num(&r, 2, nm[2], &ev.value, j->err))) break;
        if ((rc = field_int(&r, 3, nm[3], &ev.ts, j->err))) break;
        const char *u = ing_field_str(&r, 0), *i = ing_field_str(&r, 1);
        size_t ul = ing_field_len(&r, 0), il = ing_field_len(&r, 1);
        if (!ing_item_known(j->c, i, il, &ev.item_id)) {
            rc = err_data(j->err, r.path, r.line, nm[1], "unknown movie '%s' (not in the movies file)", i);
            break;
        }
        if (users_known) {
            if (!ing_user_known(j->c, u, ul, &ev.user_id)) {
                rc = err_data(j->err, r.path, r.line, nm[0], "unknown user '%s' (not in the users file)", u);
                break;
            }
        } else if ((rc = ing_at(j->err, ing_user(j->c, u, ul, NULL, false, &ev.user_id, j->err),
                                r.path, r.line))) {
            break;
        }
        if ((rc = ing_at(j->err, ing_event(j->c, &ev, j->err), r.path, r.line))) break;
        ing_ctx_progress(j->c, j->bytes_before + r.bytes_done);
    }
    ml_close(j, &r);
    return rc < 0 ? rc : 0;
}

/* ---- ml-1m ------------------------------------------------------------- */

static int ml1m_items(ml_job *j) {
    ing_reader r;
    ing_reader_params p = {.sep = "::", .quoting = false, .latin1 = true};
    int rc = ml_open(j, &r, "movies.dat", p);
    if (rc) return rc;
    static const char *const names[3] = {"movie_id", "title", "genres"};
    sb a;
    sb_init(&a);
    while ((rc = ing_reader_next(&r, j->err)) == 1) {
        if ((rc = want_fields(&r, 3, names, j->err))) break;
        if ((rc = field_id(&r, 0, names[0], j->err))) break;
        const char *title = ing_field_str(&r, 1);
        char *gcopy = xstrdup(ing_field_str(&r, 2));
        const char *g[32];
        size_t ng = split_pipe(gcopy, g, 32);
        ml_attrs_begin(&a, title);
        rc = ml_item_store(j, &r, title, &a, g, ng);
        free(gcopy);
        if (rc) break;
    }
    sb_deinit(&a);
    ml_close(j, &r);
    return rc < 0 ? rc : 0;
}

/* ---- ml-latest --------------------------------------------------------- */

typedef struct ml_link {
    char imdb[16], tmdb[16];
} ml_link;

static int ml_latest_items(ml_job *j) {
    /* links.csv first (small: one row per movie), so each item row is
     * written once with all its attributes. */
    hmap links_idx;
    hmap_init(&links_idx, 1024);
    VEC(ml_link) links = {0};
    ing_reader r;
    int rc = 0;
    char *lp = path_join(j->dir, "links.csv");
    bool have_links = file_exists(lp);
    free(lp);
    if (have_links) {
        if ((rc = ml_open(j, &r, "links.csv", ing_csv_params()))) goto out;
        rc = check_header(&r, "movieId,imdbId,tmdbId", j->err);
        static const char *const names[3] = {"movieId", "imdbId", "tmdbId"};
        while (!rc && (rc = ing_reader_next(&r, j->err)) == 1) {
            if ((rc = want_fields(&r, 3, names, j->err))) break;
            if ((rc = field_id(&r, 0, names[0], j->err))) break;
            ml_link l = {{0}, {0}};
            for (int k = 1; k <= 2; k++) {
                size_t len = ing_field_len(&r, (size_t)k);
                int64_t v;
                if (len && (!parse_i64(ing_field_str(&r, (size_t)k), len, &v) || len > 12)) {
                    rc = err_data(j->err, r.path, r.line, names[k], "'%s' is not a numeric id",
                                  ing_field_str(&r, (size_t)k));
                    break;
                }
                memcpy(k == 1 ? l.imdb : l.tmdb, ing_field_str(&r, (size_t)k), len);
            }
            if (rc) break;
            hmap_put(&links_idx, ing_field_str(&r, 0), ing_field_len(&r, 0), (int64_t)links.len);
            vec_push(&links, l);
        }
        ml_close(j, &r);
        if (rc < 0) goto out;
        rc = 0;
    }

    if ((rc = ml_open(j, &r, "movies.csv", ing_csv_params()))) goto out;
    rc = check_header(&r, "movieId,title,genres", j->err);
    static const char *const names[3] = {"movieId", "title", "genres"};
    sb a;
    sb_init(&a);
    while (!rc && (rc = ing_reader_next(&r, j->err)) == 1) {
        if ((rc = want_fields(&r, 3, names, j->err))) break;
        if ((rc = field_id(&r, 0, names[0], j->err))) break;
        if (!ing_field_len(&r, 1)) {
            rc = err_data(j->err, r.path, r.line, names[1], "missing value");
            break;
        }
        const char *title = ing_field_str(&r, 1);
        char *gcopy = xstrdup(ing_field_str(&r, 2));
        const char *g[32];
        size_t ng = split_pipe(gcopy, g, 32);
        ml_attrs_begin(&a, title);
        int64_t li;
        if (hmap_get(&links_idx, ing_field_str(&r, 0), ing_field_len(&r, 0), &li)) {
            if (links.data[li].imdb[0]) sb_printf(&a, "\"imdb_id\":\"tt%s\",", links.data[li].imdb);
            if (links.data[li].tmdb[0]) sb_printf(&a, "\"tmdb_id\":\"%s\",", links.data[li].tmdb);
        }
        rc = ml_item_store(j, &r, title, &a, g, ng);
        free(gcopy);
        if (rc) break;
    }
    sb_deinit(&a);
    ml_close(j, &r);
    if (rc > 0) rc = 0;
out:
    hmap_deinit(&links_idx);
    vec_free(&links);
    return rc;
}

static int ml_latest_tags(ml_job *j) {
    char *tp = path_join(j->dir, "tags.csv");
    bool have = file_exists(tp);
    free(tp);
    if (!have) return 0;
    ing_reader r;
    int rc = ml_open(j, &r, "tags.csv", ing_csv_params());
    if (rc) return rc;
    rc = check_header(&r, "userId,movieId,tag,timestamp", j->err);
    static const char *const names[4] = {"userId", "movieId", "tag", "timestamp"};
    while (!rc && (rc = ing_reader_next(&r, j->err)) == 1) {
        if ((rc = want_fields(&r, 4, names, j->err))) break;
        if ((rc = field_id(&r, 0, names[0], j->err)) || (rc = field_id(&r, 1, names[1], j->err)))
            break;
        int64_t ts, uid, iid;
        if ((rc = field_int(&r, 3, names[3], &ts, j->err))) break;
        if (!ing_field_len(&r, 2)) {
            rc = err_data(j->err, r.path, r.line, names[2], "missing value");
            break;
        }
        if (!ing_user_known(j->c, ing_field_str(&r, 0), ing_field_len(&r, 0), &uid)) {
            rc = err_data(j->err, r.path, r.line, names[0],
                          "unknown user '%s' (no ratings from this user)", ing_field_str(&r, 0));
            break;
        }
        if (!ing_item_known(j->c, ing_field_str(&r, 1), ing_field_len(&r, 1), &iid)) {
            rc = err_data(j->err, r.path, r.line, names[1], "unknown movie '%s'",
                          ing_field_str(&r, 1));
            break;
        }
        if ((rc = ing_at(j->err, ing_tag(j->c, uid, iid, ing_field_str(&r, 2), ts, j->err), r.path,
                         r.line)))
            break;
    }
    ml_close(j, &r);
    return rc < 0 ? rc : 0;
}

static uint64_t dir_files_size(const char *dir, const char *const *files) {
    uint64_t total = 0;
    for (size_t i = 0; files[i]; i++) {
        char *p = path_join(dir, files[i]);
        FILE *f = fopen(p, "rb");
        if (f) {
            fseek(f, 0, SEEK_END);
            long n = ftell(f);
            if (n > 0) total += (uint64_t)n;
            fclose(f);
        }
        free(p);
    }
    return total;
}

int ing_movielens(store *s, const char *dir, ing_movielens_params p, ing_stats *st,
                  tailor_error *err) {
    ml_layout layout = ml_detect(dir);
    if (layout == ML_NONE)
        return err_set(err, dir_exists(dir) ? TAILOR_EDATA : TAILOR_ENOTFOUND,
                       "%s: not a MovieLens directory (expected u.data and u.item for ml-100k, "
                       "ratings.dat and movies.dat for ml-1m, or ratings.csv and movies.csv for "
                       "ml-latest/ml-latest-small/ml-20m)",
                       dir);
    static const char *const f100k[] = {"u.item", "u.user", "u.data", NULL};
    static const char *const f1m[] = {"movies.dat", "users.dat", "ratings.dat", NULL};
    static const char *const flatest[] = {"links.csv", "movies.csv", "ratings.csv", "tags.csv", NULL};
    const char *const *files = layout == ML_100K ? f100k : layout == ML_1M ? f1m : flatest;

    ing_ctx c;
    uint64_t size = dir_files_size(dir, files);
    int rc = ing_ctx_begin(&c, s, p.dup, st, "import", size, (int64_t)(size / 32), err);
    if (rc) return rc;
    ml_job j = {.c = &c, .dir = dir, .err = err};
    rc = ing_kind(&c, "rating", 6, &j.kind_rating, err);
    if (!rc && layout == ML_100K) {
        static const char *const unames[5] = {"user_id", "age", "gender", "occupation", "zip_code"};
        char *up = path_join(dir, "u.user");
        bool users = file_exists(up);
        free(up);
        rc = ml100k_items(&j);
        if (!rc && users) rc = ml_users_dat(&j, "u.user", "|", true, unames, 5);
        ing_reader_params rp = {.sep = "\t", .quoting = false, .check_utf8 = true};
        if (!rc) rc = ml_ratings(&j, "u.data", rp, false, users);
    } else if (!rc && layout == ML_1M) {
        static const char *const unames[5] = {"user_id", "gender", "age", "occupation", "zip_code"};
        char *up = path_join(dir, "users.dat");
        bool users = file_exists(up);
        free(up);
        rc = ml1m_items(&j);
        if (!rc && users) rc = ml_users_dat(&j, "users.dat", "::", true, unames, 5);
        ing_reader_params rp = {.sep = "::", .quoting = false, .check_utf8 = true};
        if (!rc) rc = ml_ratings(&j, "ratings.dat", rp, false, users);
    } else if (!rc) {
        rc = ml_latest_items(&j);
        if (!rc) rc = ml_ratings(&j, "ratings.csv", ing_csv_params(), true, false);
        if (!rc) rc = ml_latest_tags(&j);
    }
    return ing_ctx_end(&c, rc, err);
}

int tailor_import_movielens(tailor_store *s, const char *dir, tailor_error *err) {
    ing_stats st;
    ing_movielens_params p = {.dup = STORE_DUP_ERROR};
    return ing_movielens(s, dir, p, &st, err);
}
