/* test_store.c — unit tests for src/store: opening (WAL, foreign keys),
 * migrations from an older schema, typed access with duplicate policies,
 * transactions, content digests, and the CSR/sequence views. Run twice by
 * ctest: on SQLite files (store) and on a throwaway PostgreSQL cluster
 * (store_pg, TAILOR_TEST_PG); where the engines differ (pragmas, FTS5
 * tables, SQLite's schema history) each run checks its own engine's way. */
#include <pthread.h>

#include "store/store.h"
#include "test.h"
#include "test_db.h"

static char *g_dir;

/* The SQL a check looks into the tables with, for each engine. */
#define Q(lite, pg) (test_pg() ? (pg) : (lite))
#define EVENTS_INDEX_SQL                                                                                  \
    Q("SELECT count(*) FROM sqlite_schema WHERE name = 'events_user_item'",                              \
      "SELECT count(*) FROM pg_indexes WHERE schemaname = current_schema() AND indexname = 'events_user_item'")
/* Foreign keys in force: SQLite's pragma (1 or 0), PostgreSQL's events
 * constraints (3 or 0). */
#define FKS_SQL                                                                                           \
    Q("PRAGMA foreign_keys",                                                                              \
      "SELECT count(*) / 3 FROM pg_constraint WHERE conrelid = 'events'::regclass AND contype = 'f'")

/* Items (or tags) whose text index holds a word: the row id, a count. */
#define FTS_ID(w)                                                                                         \
    Q("SELECT rowid FROM items_fts WHERE items_fts MATCH '" w "'",                                        \
      "SELECT id FROM items WHERE fts @@ to_tsquery('simple', '" w "')")
#define FTS_COUNT(w)                                                                                      \
    Q("SELECT count(*) FROM items_fts WHERE items_fts MATCH '" w "'",                                     \
      "SELECT count(*) FROM items WHERE fts @@ to_tsquery('simple', '" w "')")
#define TAG_FTS_ID(w)                                                                                     \
    Q("SELECT rowid FROM tags_fts WHERE tags_fts MATCH '" w "'",                                          \
      "SELECT id FROM tags WHERE fts @@ to_tsquery('simple', '" w "')")
#define TAG_FTS_COUNT(w)                                                                                  \
    Q("SELECT count(*) FROM tags_fts WHERE tags_fts MATCH '" w "'",                                       \
      "SELECT count(*) FROM tags WHERE fts @@ to_tsquery('simple', '" w "')")

typedef struct opener {
    const char *name;
    int rc;
} opener;

static void *open_thread(void *arg) {
    opener *o = arg;
    char *p = test_db_target(g_dir, o->name);
    store *s = NULL;
    tailor_error e = {0};
    o->rc = store_open(p, store_default_params(), &s, &e);
    if (o->rc) fprintf(stderr, "concurrent open: %s\n", e.msg);
    store_close(s);
    free(p);
    return NULL;
}

static store *open_db(const char *name, int target) {
    char *p = test_db_target(g_dir, name);
    store *s = NULL;
    tailor_error e = {0};
    store_params sp = store_default_params();
    sp.target_version = target;
    int rc = store_open(p, sp, &s, &e);
    if (rc) fprintf(stderr, "open failed: %s\n", e.msg);
    free(p);
    return s;
}

static void test_open_pragmas(void) {
    store *s = open_db("a.db", 0);
    CHECK(s != NULL);
    if (!s) return;
    CHECK_EQ(store_schema_version(s), STORE_SCHEMA_VERSION);
    CHECK_EQ(query_int(s, FKS_SQL), 1);
    if (!test_pg()) {
        char *mode = query_text(s, "PRAGMA journal_mode");
        CHECK_STR(mode, "wal");
        free(mode);
    } else {
        CHECK_EQ(query_int(s, "SELECT count(*) FROM tailor_schema"), 1);
    }
    /* Built-in event kinds. */
    int64_t k;
    tailor_error e = {0};
    CHECK_EQ(store_kind_id(s, "rating", false, &k, &e), 0);
    CHECK_EQ(k, 3);
    CHECK_EQ(store_kind_id(s, "wishlist", false, &k, &e), TAILOR_ENOTFOUND);
    CHECK_EQ(store_kind_id(s, "wishlist", true, &k, &e), 0);
    CHECK_EQ(k, 6);
    store_close(s);
    /* Reopening keeps the version and runs no migration twice. */
    s = open_db("a.db", 0);
    CHECK(s && store_schema_version(s) == STORE_SCHEMA_VERSION);
    store_close(s);
    /* Four servers opening a new database at once: one creates the schema
     * (PostgreSQL: under an advisory lock), the others wait and use it. */
    opener o[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        o[i] = (opener){"race.db", -1};
        pthread_create(&t[i], NULL, open_thread, &o[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        CHECK_EQ(o[i].rc, 0);
    }
    s = open_db("race.db", 0);
    CHECK(s && store_schema_version(s) == STORE_SCHEMA_VERSION);
    if (s && test_pg()) CHECK_EQ(query_int(s, "SELECT count(*) FROM tailor_schema"), 1);
    store_close(s);
}

/* PostgreSQL stores start at the current version: an older target is
 * refused, and so is a database from a newer tailor. */
static void migration_pg(void) {
    char *p = test_db_target(g_dir, "old.db");
    store *s = NULL;
    tailor_error e = {0};
    store_params sp = store_default_params();
    sp.target_version = 1;
    CHECK_EQ(store_open(p, sp, &s, &e), TAILOR_EUNSUPPORTED);
    CHECK_CONTAINS(e.msg, "PostgreSQL stores start at schema version");
    s = open_db("old.db", 0);
    CHECK(s != NULL);
    if (!s) {
        free(p);
        return;
    }
    CHECK_EQ(store_exec(s, "UPDATE tailor_schema SET version = 99", &e), 0);
    store_close(s);
    CHECK_EQ(store_open(p, store_default_params(), &s, &e), TAILOR_EUNSUPPORTED);
    CHECK_CONTAINS(e.msg, "schema version 99 is newer");
    free(p);
}

static void test_migration_from_v1(void) {
    if (test_pg()) {
        migration_pg();
        return;
    }
    store *s = open_db("old.db", 1);
    CHECK(s != NULL);
    if (!s) return;
    CHECK_EQ(store_schema_version(s), 1);
    CHECK_EQ(query_int(s, "SELECT count(*) FROM sqlite_schema WHERE name = 'items_fts'"), 0);
    tailor_error e = {0};
    int64_t id;
    CHECK_EQ(store_item_put(s, "m1", "The Matrix (1999)", "hackers fight machines", NULL,
                            STORE_DUP_ERROR, &id, NULL, &e), 0);
    CHECK_EQ(store_item_put(s, "m2", "Toy Story (1995)", NULL, NULL, STORE_DUP_ERROR, &id, NULL, &e), 0);
    store_close(s);
    /* Opening with this build migrates to the latest version; data stays and
     * the new full-text index covers the old rows. */
    s = open_db("old.db", 0);
    CHECK(s != NULL);
    if (!s) return;
    CHECK_EQ(store_schema_version(s), STORE_SCHEMA_VERSION);
    CHECK_EQ(query_int(s, "SELECT count(*) FROM items"), 2);
    CHECK_EQ(query_int(s, "SELECT rowid FROM items_fts WHERE items_fts MATCH 'machines'"), 1);
    CHECK_EQ(query_int(s, "SELECT rowid FROM items_fts WHERE items_fts MATCH 'toy'"), 2);
    /* Triggers keep it in sync after the migration. */
    CHECK_EQ(store_item_put(s, "m3", "Heat (1995)", "a heist in los angeles", NULL,
                            STORE_DUP_ERROR, &id, NULL, &e), 0);
    CHECK_EQ(query_int(s, "SELECT rowid FROM items_fts WHERE items_fts MATCH 'heist'"), id);
    CHECK_EQ(store_item_put(s, "m3", "Heat (1995)", "a bank robbery", NULL, STORE_DUP_REPLACE,
                            &id, NULL, &e), 0);
    CHECK_EQ(query_int(s, "SELECT count(*) FROM items_fts WHERE items_fts MATCH 'heist'"), 0);
    CHECK_EQ(query_int(s, "SELECT count(*) FROM items_fts WHERE items_fts MATCH 'robbery'"), 1);
    /* A database from a newer tailor is refused, not damaged. */
    CHECK_EQ(store_exec(s, "PRAGMA user_version = 99", &e), 0);
    store_close(s);
    s = open_db("old.db", 0);
    CHECK(s == NULL);
    char *p = path_join(g_dir, "old.db");
    store_params sp = store_default_params();
    CHECK_EQ(store_open(p, sp, &s, &e), TAILOR_EUNSUPPORTED);
    CHECK_CONTAINS(e.msg, "schema version 99 is newer");
    free(p);
}

/* Items an event log creates have no title; a catalogue imported later
 * gives them one. Version 2's triggers made that update fail ("database
 * disk image is malformed"); version 3 indexes every item. */
static void title_later(store *s) {
    tailor_error e = {0};
    int64_t id, id2;
    CHECK_EQ(store_item_add(s, "i1", 2, NULL, NULL, NULL, &id, &e), 0);
    CHECK_EQ(store_item_put(s, "i1", "Shirt", "blue cotton", NULL, STORE_DUP_REPLACE, &id2, NULL, &e), 0);
    CHECK_EQ(id2, id);
    CHECK_EQ(query_int(s, FTS_ID("shirt")), id);
    CHECK_EQ(store_item_put(s, "i1", "Skirt", NULL, NULL, STORE_DUP_REPLACE, &id2, NULL, &e), 0);
    CHECK_EQ(query_int(s, FTS_COUNT("shirt")), 0);
    CHECK_EQ(query_int(s, FTS_ID("skirt")), id);
    /* Catalogue first, events later: the item is found, not re-created. */
    CHECK_EQ(store_item_put(s, "i2", "Hat", NULL, NULL, STORE_DUP_ERROR, &id2, NULL, &e), 0);
    CHECK_EQ(store_item_find(s, "i2", &id, &e), 0);
    CHECK_EQ(id, id2);
    CHECK_EQ(query_int(s, "DELETE FROM items WHERE ext_id = 'i2' RETURNING 1"), 1);
    if (!test_pg()) { /* FTS5's own consistency check */
        CHECK_EQ(store_exec(s, "INSERT INTO items_fts (items_fts) VALUES ('integrity-check')", &e), 0);
        CHECK_EQ(store_exec(s, "PRAGMA integrity_check", &e), 0);
    }
}

static void test_title_after_events(void) {
    store *s = open_db("titles.db", 0);
    CHECK(s != NULL);
    if (!s) return;
    title_later(s);
    store_close(s);
    if (test_pg()) return; /* the rest is SQLite's schema history */
    /* A version-2 file that already holds untitled items is repaired by
     * the migration. */
    s = open_db("titles2.db", 2);
    CHECK(s && store_schema_version(s) == 2);
    if (!s) return;
    tailor_error e = {0};
    int64_t id;
    CHECK_EQ(store_item_add(s, "old", 3, NULL, NULL, NULL, &id, &e), 0);
    store_close(s);
    s = open_db("titles2.db", 0);
    CHECK(s && store_schema_version(s) == STORE_SCHEMA_VERSION);
    if (!s) return;
    CHECK_EQ(store_item_put(s, "old", "Old Film", NULL, NULL, STORE_DUP_REPLACE, &id, NULL, &e), 0);
    CHECK_EQ(query_int(s, FTS_ID("film")), id);
    title_later(s);
    store_close(s);
}

static void test_search(void) {
    store *s = open_db("search.db", 0);
    CHECK(s != NULL);
    if (!s) return;
    tailor_error e = {0};
    int64_t heat, heist, toy, u;
    CHECK_EQ(store_item_put(s, "m1", "Heat (1995)", "a bank robbery in los angeles", NULL, STORE_DUP_ERROR, &heat,
                            NULL, &e), 0);
    CHECK_EQ(store_item_put(s, "m2", "The Heist", "a crew plans one last job", NULL, STORE_DUP_ERROR, &heist, NULL,
                            &e), 0);
    CHECK_EQ(store_item_put(s, "m3", "Toy Story (1995)", "toys come alive", NULL, STORE_DUP_ERROR, &toy, NULL, &e),
             0);
    CHECK_EQ(store_user_put(s, "u", NULL, STORE_DUP_ERROR, &u, NULL, &e), 0);
    CHECK_EQ(store_tag_add(s, u, toy, "heist", 1, STORE_DUP_ERROR, NULL, &e), 0);
    store_hit *h;
    size_t n;
    /* A title word beats a tag; words are quoted, so syntax is harmless. */
    CHECK_EQ(store_search(s, "heist\" OR *", &h, &n, &e), 0);
    CHECK_EQ(n, 2);
    if (n == 2) {
        CHECK_EQ(h[0].id, heist);
        CHECK_EQ(h[1].id, toy);
        CHECK(h[0].score > h[1].score && h[1].score > 0);
    }
    free(h);
    /* Any word matches; more of them rank higher. */
    CHECK_EQ(store_search(s, "bank job", &h, &n, &e), 0);
    CHECK_EQ(n, 2);
    free(h);
    CHECK_EQ(store_search(s, "1995 bank", &h, &n, &e), 0);
    CHECK(n == 2 && h[0].id == heat);
    free(h);
    CHECK_EQ(store_search(s, "nothing-like-this", &h, &n, &e), 0);
    CHECK_EQ(n, 0);
    free(h);
    CHECK_EQ(store_search(s, " ?! ", &h, &n, &e), TAILOR_EINVAL);
    CHECK_CONTAINS(e.msg, "nothing to search for");
    store_close(s);
}

static void test_entities_and_policies(void) {
    store *s = open_db("b.db", 0);
    if (!s) {
        CHECK(0);
        return;
    }
    tailor_error e = {0};
    int64_t u1, u2, i1, i2;
    bool ins;
    CHECK_EQ(store_user_put(s, "alice", "{\"age\":30}", STORE_DUP_ERROR, &u1, &ins, &e), 0);
    CHECK(ins);
    CHECK_EQ(store_user_put(s, "alice", NULL, STORE_DUP_ERROR, &u2, &ins, &e), TAILOR_EEXISTS);
    CHECK_CONTAINS(e.msg, "user 'alice' already exists");
    CHECK_EQ(store_user_put(s, "alice", "{\"age\":31}", STORE_DUP_SKIP, &u2, &ins, &e), 0);
    CHECK(!ins);
    CHECK_EQ(u2, u1);
    CHECK_EQ(query_int(s, Q("SELECT attributes->>'age' FROM users WHERE ext_id = 'alice'",
                             "SELECT attributes::jsonb->>'age' FROM users WHERE ext_id = 'alice'")), 30);
    CHECK_EQ(store_user_put(s, "alice", "{\"age\":31}", STORE_DUP_REPLACE, &u2, &ins, &e), 0);
    CHECK_EQ(query_int(s, Q("SELECT attributes->>'age' FROM users WHERE ext_id = 'alice'",
                             "SELECT attributes::jsonb->>'age' FROM users WHERE ext_id = 'alice'")), 31);
    /* Attributes must be JSON. */
    CHECK_EQ(store_user_put(s, "bob", "{not json", STORE_DUP_ERROR, &u2, &ins, &e), TAILOR_EDB);
    CHECK_EQ(store_item_put(s, "i1", "One", "text one", "{\"g\":[1]}", STORE_DUP_ERROR, &i1, NULL, &e), 0);
    CHECK_EQ(store_item_put(s, "i2", "Two", NULL, NULL, STORE_DUP_ERROR, &i2, NULL, &e), 0);
    int64_t found;
    CHECK_EQ(store_item_find(s, "i2", &found, &e), 0);
    CHECK_EQ(found, i2);
    CHECK_EQ(store_item_find(s, "nope", &found, &e), TAILOR_ENOTFOUND);
    store_item it;
    CHECK_EQ(store_item_get(s, i1, &it, &e), 0);
    CHECK_STR(it.ext_id, "i1");
    CHECK_STR(it.title, "One");
    CHECK_STR(it.text, "text one");
    CHECK_STR(it.attributes, "{\"g\":[1]}");
    store_item_deinit(&it);
    CHECK_EQ(store_item_get(s, 999, &it, &e), TAILOR_ENOTFOUND);

    /* Events: foreign keys hold. */
    store_event ev = {.user_id = u1, .item_id = i1, .kind = 3, .value = 4.5, .has_value = true, .ts = 100};
    CHECK_EQ(store_event_add(s, &ev, &e), 0);
    bool f;
    CHECK_EQ(store_event_find(s, &ev, &f, &e), 0);
    CHECK(f);
    store_event bad = ev;
    bad.item_id = 12345;
    CHECK_EQ(store_event_add(s, &bad, &e), TAILOR_EDB);
    CHECK_CONTAINS(e.msg, Q("FOREIGN KEY", "foreign key constraint"));
    CHECK_EQ(store_event_delete_same(s, &ev, &e), 0);
    CHECK_EQ(store_event_find(s, &ev, &f, &e), 0);
    CHECK(!f);

    /* Tags, triples, models, sessions. */
    bool tin;
    CHECK_EQ(store_tag_add(s, u1, i1, "mind-bending", 5, STORE_DUP_ERROR, &tin, &e), 0);
    CHECK(tin);
    CHECK_EQ(store_tag_add(s, 0, i2, "classic", 6, STORE_DUP_ERROR, &tin, &e), 0);
    /* A tag is (user, item, tag): every policy holds for it. */
    CHECK_EQ(store_tag_add(s, u1, i1, "mind-bending", 7, STORE_DUP_ERROR, &tin, &e), TAILOR_EEXISTS);
    CHECK_CONTAINS(e.msg, "tag 'mind-bending' of this user and item already exists");
    CHECK_EQ(store_tag_add(s, u1, i1, "mind-bending", 7, STORE_DUP_SKIP, &tin, &e), 0);
    CHECK(!tin);
    CHECK_EQ(query_int(s, "SELECT ts FROM tags WHERE tag = 'mind-bending'"), 5);
    CHECK_EQ(store_tag_add(s, u1, i1, "mind-bending", 7, STORE_DUP_REPLACE, &tin, &e), 0);
    CHECK(!tin);
    CHECK_EQ(query_int(s, "SELECT ts FROM tags WHERE tag = 'mind-bending'"), 7);
    CHECK_EQ(store_tag_add(s, 0, i2, "classic", 8, STORE_DUP_SKIP, &tin, &e), 0); /* no user: NULL matches NULL */
    CHECK_EQ(query_int(s, "SELECT count(*) FROM tags"), 2);
    CHECK_EQ(store_tag_add(s, 0, i2, "classic", 8, STORE_DUP_KEEP, &tin, &e), 0);
    CHECK_EQ(query_int(s, "SELECT count(*) FROM tags"), 3);
    CHECK_EQ(query_int(s, "DELETE FROM tags WHERE id = 3 RETURNING 1"), 1);
    /* The tags' own text index follows. */
    CHECK_EQ(query_int(s, TAG_FTS_ID("bending")), 1);
    CHECK_EQ(query_int(s, TAG_FTS_COUNT("classic")), 1);
    CHECK_EQ(store_kg_add(s, "i1", "directed_by", "Wachowskis", "import", 1.0, STORE_DUP_ERROR, NULL, &e), 0);
    CHECK_EQ(store_kg_add(s, "i1", "directed_by", "Wachowskis", "llm", 0.5, STORE_DUP_ERROR, NULL, &e), TAILOR_EEXISTS);
    CHECK_EQ(store_kg_add(s, "i1", "directed_by", "Wachowskis", "llm", 0.5, STORE_DUP_SKIP, NULL, &e), 0);
    CHECK_EQ(query_int(s, "SELECT confidence * 10 FROM kg_triples"), 10);
    CHECK_EQ(store_kg_add(s, "i1", "directed_by", "Wachowskis", "llm", 0.5, STORE_DUP_REPLACE, NULL, &e), 0);
    CHECK_EQ(query_int(s, "SELECT confidence * 10 FROM kg_triples"), 5);
    CHECK_EQ(store_kg_add(s, "i1", "year", "1999", "llm", 1.5, STORE_DUP_ERROR, NULL, &e), TAILOR_EDB);

    store_model got;
    CHECK_EQ(store_model_active(s, &got, &e), TAILOR_ENOTFOUND);
    CHECK_CONTAINS(e.msg, "no trained model");
    CHECK_EQ(store_model_get(s, "none", &got, &e), TAILOR_ENOTFOUND);
    CHECK_CONTAINS(e.msg, "has no trained models");
    store_model m = {.name = "als-64", .kind = "als", .params = "{\"factors\":64}",
                     .metrics = "{\"train_s\":1}", .file = "b.db.models/als-64.tmod", .trained_at = 1700000000};
    CHECK_EQ(store_model_put(s, &m, false, &e), 0); /* the first model is active anyway */
    CHECK_EQ(store_model_set_evaluation(s, "als-64", "{\"metrics\":{\"ndcg@10\":0.04}}", &e), 0);
    m.params = "{\"factors\":128}";
    CHECK_EQ(store_model_put(s, &m, false, &e), 0); /* same name: updated, evaluation gone */
    CHECK_EQ(store_model_get(s, "als-64", &got, &e), 0);
    CHECK_STR(got.kind, "als");
    CHECK_STR(got.params, "{\"factors\":128}");
    CHECK_EQ(got.trained_at, 1700000000);
    CHECK(got.active);
    CHECK(got.evaluation == NULL);
    store_model_deinit(&got);
    CHECK_EQ(store_model_get(s, "none", &got, &e), TAILOR_ENOTFOUND);
    CHECK_CONTAINS(e.msg, "no model named 'none' in ");
    CHECK_CONTAINS(e.msg, "(models: als-64)");
    store_model m2 = {.name = "pop", .kind = "pop", .file = "b.db.models/pop.tmod", .trained_at = 1700000100};
    CHECK_EQ(store_model_put(s, &m2, false, &e), 0);
    CHECK_EQ(store_model_active(s, &got, &e), 0);
    CHECK_STR(got.name, "als-64"); /* not activated: the active one stays */
    store_model_deinit(&got);
    CHECK_EQ(store_model_activate(s, "pop", &e), 0);
    CHECK_EQ(store_model_active(s, &got, &e), 0);
    CHECK_STR(got.name, "pop");
    store_model_deinit(&got);
    CHECK_EQ(query_int(s, "SELECT count(*) FROM models WHERE active = 1"), 1);
    CHECK_EQ(store_model_activate(s, "nope", &e), TAILOR_ENOTFOUND);
    CHECK_EQ(query_int(s, "SELECT count(*) FROM models WHERE active = 1"), 1); /* rolled back */
    CHECK_EQ(store_model_set_evaluation(s, "pop", "{\"metrics\":{\"ndcg@10\":0.02}}", &e), 0);
    store_model *all;
    size_t nall;
    CHECK_EQ(store_models_list(s, &all, &nall, &e), 0);
    CHECK_EQ(nall, 2);
    if (nall == 2) {
        CHECK_STR(all[0].name, "als-64");
        CHECK(!all[0].active && all[1].active);
        CHECK_CONTAINS(all[1].evaluation, "0.02");
    }
    store_models_free(all, nall);
    /* Removing the active model hands the role on. */
    CHECK_EQ(store_model_remove(s, "pop", &e), 0);
    CHECK_EQ(store_model_active(s, &got, &e), 0);
    CHECK_STR(got.name, "als-64");
    CHECK(got.active);
    store_model_deinit(&got);
    CHECK_EQ(store_model_remove(s, "pop", &e), TAILOR_ENOTFOUND);
    /* Model files sit beside the database (PostgreSQL: in the shared
     * folder, $TAILOR_FILES/NAME), named relative to its folder. */
    char *target = test_db_target(g_dir, "b.db"), *files = store_files_base(target);
    const char *bn = strrchr(files, '/') + 1;
    char rel_want[256], sub[256];
    snprintf(rel_want, sizeof rel_want, "%s.models/knn.tmod", bn);
    char *rel = store_model_relpath(s, "knn");
    CHECK_STR(rel, rel_want);
    char *abs = store_path_resolve(s, rel), *want = path_join(g_dir, rel_want);
    CHECK_STR(abs, want);
    free(abs);
    free(want);
    /* A path from an older tailor (relative to where one trained) is
     * found beside the database by its file name. */
    snprintf(sub, sizeof sub, "%s.models", bn);
    want = path_join(g_dir, sub);
    CHECK_EQ(mkdir_p(want, &e), 0);
    free(want);
    want = path_join(g_dir, rel_want);
    free(test_write(g_dir, rel_want, "x"));
    snprintf(sub, sizeof sub, "somewhere/else/%s", rel_want);
    abs = store_path_resolve(s, sub);
    CHECK_STR(abs, want);
    free(abs);
    free(want);
    free(target);
    free(files);
    abs = store_path_resolve(s, "/abs/file.tmod");
    CHECK_STR(abs, "/abs/file.tmod");
    free(abs);
    free(rel);

    int64_t sid;
    CHECK_EQ(store_session_new(s, u1, &sid, &e), 0);
    CHECK_EQ(store_message_add(s, sid, "user", "something like Heat?", NULL, &e), 0);
    CHECK_EQ(store_message_add(s, sid, "tool", "{\"items\":[1]}", "recommend", &e), 0);
    CHECK_EQ(store_message_add(s, sid, "robot", "x", NULL, &e), TAILOR_EDB);
    store_message *msgs;
    size_t nm;
    CHECK_EQ(store_messages_list(s, sid, &msgs, &nm, &e), 0);
    CHECK_EQ(nm, 2);
    if (nm == 2) {
        CHECK_STR(msgs[0].role, "user");
        CHECK_STR(msgs[1].tool_name, "recommend");
        CHECK(msgs[0].tool_name == NULL);
    }
    store_messages_free(msgs, nm);

    tailor_store_counts c;
    CHECK_EQ(store_counts(s, &c, &e), 0);
    CHECK_EQ(c.users, 1);
    CHECK_EQ(c.items, 2);
    CHECK_EQ(c.events, 0);
    CHECK_EQ(c.tags, 2);
    CHECK_EQ(c.kg_triples, 1);
    CHECK_EQ(c.models, 1);
    store_close(s);
}

static void test_transactions_and_digest(void) {
    store *s = open_db("c.db", 0);
    if (!s) {
        CHECK(0);
        return;
    }
    tailor_error e = {0};
    int64_t id;
    char d0[65], d1[65], d2[65];
    CHECK_EQ(store_content_digest(s, d0, &e), 0);
    CHECK_EQ(store_begin(s, &e), 0);
    CHECK_EQ(store_begin(s, &e), TAILOR_EINTERNAL); /* one level only */
    CHECK_EQ(store_item_put(s, "x", "X", NULL, NULL, STORE_DUP_ERROR, &id, NULL, &e), 0);
    store_rollback(s);
    CHECK_EQ(store_content_digest(s, d1, &e), 0);
    CHECK_STR(d1, d0);
    CHECK_EQ(store_begin(s, &e), 0);
    CHECK_EQ(store_item_put(s, "x", "X", NULL, NULL, STORE_DUP_ERROR, &id, NULL, &e), 0);
    CHECK_EQ(store_commit(s, &e), 0);
    CHECK_EQ(store_content_digest(s, d2, &e), 0);
    CHECK(strcmp(d2, d0) != 0);
    store_rollback(s); /* no transaction: harmless */
    store_close(s);
}

static void test_view(void) {
    store *s = open_db("v.db", 0);
    if (!s) {
        CHECK(0);
        return;
    }
    tailor_error e = {0};
    int64_t u[3], it[4];
    const char *un[3] = {"u0", "u1", "u2"}, *in[4] = {"a", "b", "c", "d"};
    for (int k = 0; k < 3; k++) store_user_put(s, un[k], NULL, STORE_DUP_ERROR, &u[k], NULL, &e);
    for (int k = 0; k < 4; k++) store_item_put(s, in[k], NULL, NULL, NULL, STORE_DUP_ERROR, &it[k], NULL, &e);
    int64_t click;
    store_kind_id(s, "click", false, &click, &e);
    /* u0: c@30, a@10, b@20, a@40 (repeat: latest value wins in the CSR);
     * u1: d@5 and b@5 (tie: item order), one click that a kind filter drops;
     * u2: nothing. */
    struct {
        int u, i;
        double v;
        int64_t ts;
        int64_t kind;
    } evs[] = {{0, 2, 3, 30, 3}, {0, 0, 1, 10, 3}, {0, 1, 2, 20, 3}, {0, 0, 5, 40, 3},
               {1, 3, 4, 5, 3},  {1, 1, 2, 5, 3},  {1, 2, 1, 1, 0}};
    for (size_t k = 0; k < sizeof evs / sizeof evs[0]; k++) {
        store_event ev = {.user_id = u[evs[k].u], .item_id = it[evs[k].i],
                          .kind = evs[k].kind ? evs[k].kind : click, .value = evs[k].v,
                          .has_value = true, .ts = evs[k].ts};
        CHECK_EQ(store_event_add(s, &ev, &e), 0);
    }
    store_view v;
    CHECK_EQ(store_view_build(s, store_view_default_params(), &v, &e), 0);
    CHECK_EQ(v.n_users, 3);
    CHECK_EQ(v.n_items, 4);
    CHECK_EQ(v.n_events, 7);
    CHECK_EQ(v.nnz, 6);
    /* Sequences. */
    CHECK_EQ(v.seq_ptr[1], 4);
    int32_t want0[4] = {0, 1, 2, 0};
    for (int k = 0; k < 4; k++) CHECK_EQ(v.seq_items[k], want0[k]);
    CHECK_EQ(v.seq_times[3], 40);
    /* u1: click c@1, then the tie at 5 in item order b, d. */
    CHECK_EQ(v.seq_items[4], 2);
    CHECK_EQ(v.seq_items[5], 1);
    CHECK_EQ(v.seq_items[6], 3);
    CHECK_EQ(v.seq_ptr[3] - v.seq_ptr[2], 0);
    /* CSR: u0 has a, b, c with a's latest value 5 at time 40. */
    CHECK_EQ(v.indptr[1], 3);
    CHECK_EQ(v.indices[0], 0);
    CHECK(v.values[0] == 5.0f);
    CHECK_EQ(v.times[0], 40);
    CHECK_EQ(v.indices[2], 2);
    CHECK_EQ(v.indptr[3], v.indptr[2]);
    CHECK_EQ(store_view_user(&v, "u1"), 1);
    CHECK_EQ(store_view_item(&v, "d"), 3);
    CHECK_EQ(store_view_item(&v, "zz"), -1);
    CHECK_STR(v.item_ext[2], "c");
    CHECK_EQ(v.user_rowid[2], u[2]);
    store_view_deinit(&v);

    store_view_params p = store_view_default_params();
    p.kind = "rating";
    p.min_value = 2;
    p.has_min_value = true;
    CHECK_EQ(store_view_build(s, p, &v, &e), 0);
    CHECK_EQ(v.n_events, 5); /* drops the click and a@10 (value 1) */
    CHECK_EQ(v.nnz, 5);
    store_view_deinit(&v);
    p.kind = "no-such-kind";
    CHECK_EQ(store_view_build(s, p, &v, &e), TAILOR_ENOTFOUND);
    store_close(s);
}

static void test_batch_and_bulk(void) {
    store *s = open_db("bulk.db", 0);
    if (!s) {
        CHECK(0);
        return;
    }
    tailor_error e = {0};
    int64_t u, i;
    store_user_put(s, "u", NULL, STORE_DUP_ERROR, &u, NULL, &e);
    store_item_put(s, "i", NULL, NULL, NULL, STORE_DUP_ERROR, &i, NULL, &e);
    /* 2 full batches and a remainder; values and NULLs kept in order. */
    enum { N = 2 * STORE_EVENT_BATCH + 5 };
    store_event evs[N];
    for (int k = 0; k < N; k++)
        evs[k] = (store_event){.user_id = u, .item_id = i, .kind = 1, .value = k,
                               .has_value = k % 3 != 0, .ts = 1000 + k};
    CHECK_EQ(store_events_add(s, evs, N, &e), 0);
    CHECK_EQ(query_int(s, "SELECT count(*) FROM events"), N);
    CHECK_EQ(query_int(s, "SELECT count(*) FROM events WHERE value IS NULL"), (N + 2) / 3);
    CHECK_EQ(query_int(s, "SELECT value FROM events WHERE ts = 1100"), 100);
    CHECK_EQ(query_int(s, "SELECT max(id) - min(id) FROM events WHERE ts - id = 999"), N - 1);
    CHECK_EQ(store_events_count(s), N);
    /* The (user, item, kind) index appears on demand. */
    CHECK_EQ(query_int(s, EVENTS_INDEX_SQL), 0);
    bool f;
    CHECK_EQ(store_event_find(s, &evs[0], &f, &e), 0);
    CHECK(f);
    CHECK_EQ(query_int(s, EVENTS_INDEX_SQL), 1);
    /* Bulk mode: checks off and index dropped inside the transaction; a
     * rollback brings the index back and finish turns checks on again. */
    CHECK_EQ(store_events_bulk_begin(s, &e), 0);
    CHECK_EQ(store_begin(s, &e), 0);
    CHECK_EQ(store_events_bulk_drop_indexes(s, &e), 0);
    CHECK_EQ(query_int(s, EVENTS_INDEX_SQL), 0);
    CHECK_EQ(query_int(s, FKS_SQL), 0);
    store_rollback(s);
    store_events_bulk_finish(s);
    CHECK_EQ(query_int(s, FKS_SQL), 1);
    CHECK_EQ(query_int(s, EVENTS_INDEX_SQL), 1);
    CHECK_EQ(store_event_find(s, &evs[1], &f, &e), 0);
    CHECK(f);
    /* Committed bulk drop: the next duplicate check rebuilds the index. */
    CHECK_EQ(store_events_bulk_begin(s, &e), 0);
    CHECK_EQ(store_begin(s, &e), 0);
    CHECK_EQ(store_events_bulk_drop_indexes(s, &e), 0);
    CHECK_EQ(store_commit(s, &e), 0);
    store_events_bulk_finish(s);
    CHECK_EQ(query_int(s, FKS_SQL), 1); /* PostgreSQL: the commit put them back */
    CHECK_EQ(query_int(s, EVENTS_INDEX_SQL), 0);
    CHECK_EQ(store_event_find(s, &evs[2], &f, &e), 0);
    CHECK(f);
    CHECK_EQ(query_int(s, EVENTS_INDEX_SQL), 1);
    store_close(s);
}

static void test_view_sparse_ids(void) {
    /* Row ids far apart use the hash-map path of the view. */
    store *s = open_db("sparse.db", 0);
    if (!s) {
        CHECK(0);
        return;
    }
    tailor_error e = {0};
    CHECK_EQ(store_exec(s,
                        "INSERT INTO users (id, ext_id) VALUES (5, 'a'), (900000, 'b');"
                        "INSERT INTO items (id, ext_id) VALUES (7, 'x'), (800000, 'y');"
                        "INSERT INTO events (user_id, item_id, kind, value, ts) VALUES"
                        " (900000, 800000, 1, NULL, 3), (5, 7, 1, NULL, 1);",
                        &e), 0);
    store_view v;
    CHECK_EQ(store_view_build(s, store_view_default_params(), &v, &e), 0);
    CHECK_EQ(v.n_users, 2);
    CHECK_EQ(v.nnz, 2);
    CHECK_EQ(v.indices[0], 0);
    CHECK_EQ(v.indices[1], 1);
    CHECK(v.values[0] == 1.0f); /* NULL value counts as 1 */
    store_view_deinit(&v);
    store_close(s);
}

int main(void) {
    g_dir = test_tmpdir();
    setenv("TAILOR_FILES", g_dir, 1); /* PostgreSQL stores' files */
    if (test_pg()) printf("store tests on PostgreSQL: %s\n", test_pg());
    RUN(test_open_pragmas);
    RUN(test_migration_from_v1);
    RUN(test_title_after_events);
    RUN(test_search);
    RUN(test_entities_and_policies);
    RUN(test_transactions_and_digest);
    RUN(test_view);
    RUN(test_batch_and_bulk);
    RUN(test_view_sparse_ids);
    test_rmtree(g_dir);
    free(g_dir);
    return test_summary();
}
