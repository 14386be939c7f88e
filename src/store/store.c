/* store.c — opening the SQLite store and typed row access.
 * Every statement is prepared once and cached; text is bound
 * SQLITE_TRANSIENT unless it outlives the step (then SQLITE_STATIC). */
#include <math.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/store_internal.h"

static const char *const STMT_SQL[ST_COUNT_] = {
    [ST_USER_FIND] = "SELECT id FROM users WHERE ext_id = ?1",
    [ST_USER_INSERT] = "INSERT INTO users (ext_id, attributes) VALUES (?1, ?2)",
    [ST_USER_UPDATE] = "UPDATE users SET attributes = coalesce(?2, attributes) WHERE id = ?1",
    [ST_ITEM_FIND] = "SELECT id FROM items WHERE ext_id = ?1",
    [ST_ITEM_INSERT] = "INSERT INTO items (ext_id, title, text, attributes) VALUES (?1, ?2, ?3, ?4)",
    [ST_ITEM_UPDATE] = "UPDATE items SET title = coalesce(?2, title), text = coalesce(?3, text),"
                       " attributes = coalesce(?4, attributes) WHERE id = ?1",
    [ST_KIND_FIND] = "SELECT id FROM event_kinds WHERE name = ?1",
    [ST_KIND_INSERT] = "INSERT INTO event_kinds (name) VALUES (?1)",
    [ST_EVENT_INSERT] = "INSERT INTO events (user_id, item_id, kind, value, ts) VALUES (?1, ?2, ?3, ?4, ?5)",
    [ST_EVENT_FIND] = "SELECT 1 FROM events WHERE user_id = ?1 AND item_id = ?2 AND kind = ?3 LIMIT 1",
    [ST_EVENT_DELETE] = "DELETE FROM events WHERE user_id = ?1 AND item_id = ?2 AND kind = ?3",
    [ST_TAG_INSERT] = "INSERT INTO tags (user_id, item_id, tag, ts) VALUES (?1, ?2, ?3, ?4)",
    [ST_TAG_FIND] = "SELECT id FROM tags WHERE item_id = ?2 AND user_id IS ?1 AND tag = ?3 LIMIT 1",
    [ST_TAG_UPDATE] = "UPDATE tags SET ts = ?2 WHERE id = ?1",
    [ST_KG_INSERT] = "INSERT INTO kg_triples (head, relation, tail, source, confidence) VALUES (?1, ?2, ?3, ?4, ?5)",
    [ST_KG_INSERT_IGNORE] = "INSERT OR IGNORE INTO kg_triples (head, relation, tail, source, confidence)"
                            " VALUES (?1, ?2, ?3, ?4, ?5)",
    [ST_KG_REPLACE] = "INSERT INTO kg_triples (head, relation, tail, source, confidence) VALUES (?1, ?2, ?3, ?4, ?5)"
                      " ON CONFLICT (head, relation, tail) DO UPDATE SET source = excluded.source,"
                      " confidence = excluded.confidence",
    [ST_HISTORY_ROWS] = "SELECT item_id, value, ts FROM events WHERE user_id = ?1 ORDER BY ts, id",
    [ST_KEY_FIND] = STORE_KEY_SELECT " WHERE hash = ?1",
};

int store_sqlite_err(store *s, tailor_error *err, const char *what) {
    return err_set(err, TAILOR_EDB, "%s: %s: %s", s->path, what, sqlite3_errmsg(s->db));
}

sqlite3_stmt *store_stmt(store *s, store_stmt_id id, tailor_error *err) {
    if (!s->stmts[id]) {
        if (sqlite3_prepare_v3(s->db, STMT_SQL[id], -1, SQLITE_PREPARE_PERSISTENT,
                               &s->stmts[id], NULL) != SQLITE_OK) {
            store_sqlite_err(s, err, "prepare");
            return NULL;
        }
    } else {
        sqlite3_reset(s->stmts[id]);
        sqlite3_clear_bindings(s->stmts[id]);
    }
    return s->stmts[id];
}

store_params store_default_params(void) {
    return (store_params){.target_version = 0, .read_only = false};
}

sqlite3 *store_db(store *s) { return s->db; }

int store_exec(store *s, const char *sql, tailor_error *err) {
    char *msg = NULL;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        err_set(err, TAILOR_EDB, "%s: %s", s->path, msg ? msg : sqlite3_errmsg(s->db));
        sqlite3_free(msg);
        return TAILOR_EDB;
    }
    return 0;
}

int store_schema_version(store *s) {
    sqlite3_stmt *st;
    int v = -1;
    if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
    }
    return v;
}

int store_open(const char *path, store_params params, store **out, tailor_error *err) {
    *out = NULL;
    store *s = xcalloc(1, sizeof *s);
    s->path = xstrdup(path);
    /* One thread uses a store handle at a time (the server opens one per
     * worker), so SQLite's per-call connection mutex is not needed. */
    int flags = (params.read_only ? SQLITE_OPEN_READONLY
                                  : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) |
                SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(path, &s->db, flags, NULL) != SQLITE_OK) {
        err_set(err, params.read_only ? TAILOR_ENOTFOUND : TAILOR_EDB,
                "cannot open database %s: %s", path,
                s->db ? sqlite3_errmsg(s->db) : "out of memory");
        store_close(s);
        return err ? err->code : TAILOR_EDB;
    }
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, 5000);
    /* WAL lets readers (the server) run beside a writer (an import);
     * synchronous=NORMAL is durable across application crashes in WAL. */
    int rc = store_exec(s, "PRAGMA foreign_keys = ON;", err);
    if (!rc && !params.read_only)
        rc = store_exec(s,
                        "PRAGMA journal_mode = WAL;"
                        "PRAGMA synchronous = NORMAL;"
                        "PRAGMA cache_size = -65536;",
                        err);
    if (rc) {
        err_prefix(err, "cannot open database %s", path);
        store_close(s);
        return rc;
    }
    if (!params.read_only) {
        int target = params.target_version > 0 ? params.target_version : STORE_SCHEMA_VERSION;
        rc = store_migrate(s, target, err);
        if (rc) {
            store_close(s);
            return rc;
        }
    } else if (store_schema_version(s) != STORE_SCHEMA_VERSION) {
        int v = store_schema_version(s);
        store_close(s);
        return err_set(err, TAILOR_EUNSUPPORTED,
                       "%s: schema version %d, expected %d (open it read-write once to migrate)",
                       path, v, STORE_SCHEMA_VERSION);
    }
    s->events_indexed = store_has_events_index(s);
    *out = s;
    return 0;
}

void store_close(store *s) {
    if (!s) return;
    for (int i = 0; i < ST_COUNT_; i++) sqlite3_finalize(s->stmts[i]);
    sqlite3_finalize(s->batch_insert);
    if (s->db) sqlite3_close(s->db);
    free(s->path);
    free(s);
}

int store_begin(store *s, tailor_error *err) {
    if (s->in_tx) return err_set(err, TAILOR_EINTERNAL, "nested transaction");
    int rc = store_exec(s, "BEGIN IMMEDIATE", err);
    if (!rc) s->in_tx = true;
    return rc;
}

int store_commit(store *s, tailor_error *err) {
    int rc = store_exec(s, "COMMIT", err);
    if (!rc) s->in_tx = false;
    return rc;
}

void store_rollback(store *s) {
    if (!s->in_tx) return;
    /* Reset statements first: an active read would block the rollback. */
    for (int i = 0; i < ST_COUNT_; i++)
        if (s->stmts[i]) sqlite3_reset(s->stmts[i]);
    if (s->batch_insert) sqlite3_reset(s->batch_insert);
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    s->in_tx = false;
}

bool store_dup_policy_parse(const char *str, store_dup_policy *out) {
    static const char *names[] = {"error", "skip", "replace", "keep"};
    for (int i = 0; i < 4; i++)
        if (strcmp(str, names[i]) == 0) {
            *out = (store_dup_policy)i;
            return true;
        }
    return false;
}

const char *store_dup_policy_name(store_dup_policy p) {
    static const char *names[] = {"error", "skip", "replace", "keep"};
    return (unsigned)p < 4 ? names[p] : "?";
}

/* ---- rows -------------------------------------------------------------- */

void store_bind_text(sqlite3_stmt *st, int i, const char *v) {
    if (v) sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
    else sqlite3_bind_null(st, i);
}

static int store_find_ext(store *s, store_stmt_id sid, const char *what,
                          const char *ext_id, int64_t *id, tailor_error *err) {
    sqlite3_stmt *st = store_stmt(s, sid, err);
    if (!st) return TAILOR_EDB;
    sqlite3_bind_text(st, 1, ext_id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *id = sqlite3_column_int64(st, 0);
        sqlite3_reset(st);
        return 0;
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) return store_sqlite_err(s, err, what);
    return err_set(err, TAILOR_ENOTFOUND, "%s '%s' not found", what, ext_id);
}

int store_user_find(store *s, const char *ext_id, int64_t *id, tailor_error *err) {
    return store_find_ext(s, ST_USER_FIND, "user", ext_id, id, err);
}

int store_item_find(store *s, const char *ext_id, int64_t *id, tailor_error *err) {
    return store_find_ext(s, ST_ITEM_FIND, "item", ext_id, id, err);
}

static int store_step_done(store *s, sqlite3_stmt *st, tailor_error *err, const char *what) {
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) return store_sqlite_err(s, err, what);
    return 0;
}

/* Users and items share one shape: a table with ext_id plus columns that
 * REPLACE updates only where a value is given. */
typedef struct entity_ops {
    const char *what;
    store_stmt_id find, insert, update;
} entity_ops;

static const entity_ops USER_OPS = {"user", ST_USER_FIND, ST_USER_INSERT, ST_USER_UPDATE};
static const entity_ops ITEM_OPS = {"item", ST_ITEM_FIND, ST_ITEM_INSERT, ST_ITEM_UPDATE};

/* Binds ?2.. of the insert/update statements: attributes for users;
 * title, text, attributes for items. */
static void bind_entity_cols(const entity_ops *ops, sqlite3_stmt *st, const char *title,
                             const char *text, const char *attributes) {
    if (ops == &USER_OPS) {
        store_bind_text(st, 2, attributes);
        return;
    }
    store_bind_text(st, 2, title);
    store_bind_text(st, 3, text);
    store_bind_text(st, 4, attributes);
}

static int entity_add(store *s, const entity_ops *ops, const char *ext_id, size_t len,
                      const char *title, const char *text, const char *attributes, int64_t *id,
                      tailor_error *err) {
    sqlite3_stmt *st = store_stmt(s, ops->insert, err);
    if (!st) return TAILOR_EDB;
    sqlite3_bind_text(st, 1, ext_id, (int)len, SQLITE_STATIC);
    bind_entity_cols(ops, st, title, text, attributes);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc == SQLITE_CONSTRAINT_UNIQUE)
        return err_set(err, TAILOR_EEXISTS, "%s '%.*s' already exists", ops->what, (int)len, ext_id);
    if (rc != SQLITE_DONE) return store_sqlite_err(s, err, ops->what);
    if (id) *id = sqlite3_last_insert_rowid(s->db);
    return 0;
}

static int entity_put(store *s, const entity_ops *ops, const char *ext_id, const char *title,
                      const char *text, const char *attributes, store_dup_policy dup,
                      int64_t *id, bool *inserted, tailor_error *err) {
    int64_t existing = 0;
    tailor_error e2;
    int rc = store_find_ext(s, ops->find, ops->what, ext_id, &existing, &e2);
    if (inserted) *inserted = false;
    if (rc == TAILOR_ENOTFOUND) {
        rc = entity_add(s, ops, ext_id, strlen(ext_id), title, text, attributes, id, err);
        if (!rc && inserted) *inserted = true;
        return rc;
    }
    if (rc) {
        if (err) *err = e2;
        return rc;
    }
    if (dup == STORE_DUP_ERROR)
        return err_set(err, TAILOR_EEXISTS, "%s '%s' already exists", ops->what, ext_id);
    if (dup == STORE_DUP_REPLACE) {
        sqlite3_stmt *st = store_stmt(s, ops->update, err);
        if (!st) return TAILOR_EDB;
        sqlite3_bind_int64(st, 1, existing);
        bind_entity_cols(ops, st, title, text, attributes);
        if ((rc = store_step_done(s, st, err, ops->what))) return rc;
    }
    if (id) *id = existing;
    return 0;
}

int store_user_put(store *s, const char *ext_id, const char *attributes, store_dup_policy dup,
                   int64_t *id, bool *inserted, tailor_error *err) {
    return entity_put(s, &USER_OPS, ext_id, NULL, NULL, attributes, dup, id, inserted, err);
}

int store_item_put(store *s, const char *ext_id, const char *title, const char *text,
                   const char *attributes, store_dup_policy dup, int64_t *id, bool *inserted,
                   tailor_error *err) {
    return entity_put(s, &ITEM_OPS, ext_id, title, text, attributes, dup, id, inserted, err);
}

int store_user_add(store *s, const char *ext_id, size_t len, const char *attributes,
                   int64_t *id, tailor_error *err) {
    return entity_add(s, &USER_OPS, ext_id, len, NULL, NULL, attributes, id, err);
}

int store_item_add(store *s, const char *ext_id, size_t len, const char *title,
                   const char *text, const char *attributes, int64_t *id, tailor_error *err) {
    return entity_add(s, &ITEM_OPS, ext_id, len, title, text, attributes, id, err);
}

int store_kind_id(store *s, const char *name, bool create, int64_t *id, tailor_error *err) {
    sqlite3_stmt *st = store_stmt(s, ST_KIND_FIND, err);
    if (!st) return TAILOR_EDB;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *id = sqlite3_column_int64(st, 0);
        sqlite3_reset(st);
        return 0;
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) return store_sqlite_err(s, err, "event kind");
    if (!create) return err_set(err, TAILOR_ENOTFOUND, "event kind '%s' not found", name);
    st = store_stmt(s, ST_KIND_INSERT, err);
    if (!st) return TAILOR_EDB;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    if ((rc = store_step_done(s, st, err, "insert event kind"))) return rc;
    *id = sqlite3_last_insert_rowid(s->db);
    return 0;
}

static void bind_event_key(sqlite3_stmt *st, const store_event *ev) {
    sqlite3_bind_int64(st, 1, ev->user_id);
    sqlite3_bind_int64(st, 2, ev->item_id);
    sqlite3_bind_int64(st, 3, ev->kind);
}

int store_event_add(store *s, const store_event *ev, tailor_error *err) {
    sqlite3_stmt *st = s->stmts[ST_EVENT_INSERT];
    if (!st && !(st = store_stmt(s, ST_EVENT_INSERT, err))) return TAILOR_EDB;
    /* Hot path of every import: rebinding all five parameters makes
     * clear_bindings unnecessary. */
    bind_event_key(st, ev);
    if (ev->has_value) sqlite3_bind_double(st, 4, ev->value);
    else sqlite3_bind_null(st, 4);
    sqlite3_bind_int64(st, 5, ev->ts);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) return store_sqlite_err(s, err, "insert event");
    return 0;
}

int store_events_add(store *s, const store_event *evs, size_t n, tailor_error *err) {
    size_t i = 0;
    if (n >= STORE_EVENT_BATCH && !s->batch_insert) {
        sb sql;
        sb_init(&sql);
        sb_puts(&sql, "INSERT INTO events (user_id, item_id, kind, value, ts) VALUES ");
        for (int k = 0; k < STORE_EVENT_BATCH; k++) sb_puts(&sql, k ? ",(?,?,?,?,?)" : "(?,?,?,?,?)");
        int prc = sqlite3_prepare_v3(s->db, sb_str(&sql), -1, SQLITE_PREPARE_PERSISTENT,
                                     &s->batch_insert, NULL);
        sb_deinit(&sql);
        if (prc != SQLITE_OK) return store_sqlite_err(s, err, "prepare batch insert");
    }
    for (; i + STORE_EVENT_BATCH <= n; i += STORE_EVENT_BATCH) {
        sqlite3_stmt *st = s->batch_insert;
        for (int k = 0; k < STORE_EVENT_BATCH; k++) {
            const store_event *ev = &evs[i + (size_t)k];
            int b = 5 * k;
            sqlite3_bind_int64(st, b + 1, ev->user_id);
            sqlite3_bind_int64(st, b + 2, ev->item_id);
            sqlite3_bind_int64(st, b + 3, ev->kind);
            if (ev->has_value) sqlite3_bind_double(st, b + 4, ev->value);
            else sqlite3_bind_null(st, b + 4);
            sqlite3_bind_int64(st, b + 5, ev->ts);
        }
        int rc = sqlite3_step(st);
        sqlite3_reset(st);
        if (rc != SQLITE_DONE) return store_sqlite_err(s, err, "insert events");
    }
    for (; i < n; i++) {
        int rc = store_event_add(s, &evs[i], err);
        if (rc) return rc;
    }
    return 0;
}

int store_event_find(store *s, const store_event *ev, bool *found, tailor_error *err) {
    int rc = store_events_index_ensure(s, err);
    if (rc) return rc;
    sqlite3_stmt *st = store_stmt(s, ST_EVENT_FIND, err);
    if (!st) return TAILOR_EDB;
    bind_event_key(st, ev);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return store_sqlite_err(s, err, "find event");
    *found = rc == SQLITE_ROW;
    return 0;
}

int store_event_delete_same(store *s, const store_event *ev, tailor_error *err) {
    int rc = store_events_index_ensure(s, err);
    if (rc) return rc;
    sqlite3_stmt *st = store_stmt(s, ST_EVENT_DELETE, err);
    if (!st) return TAILOR_EDB;
    bind_event_key(st, ev);
    return store_step_done(s, st, err, "delete event");
}

static void bind_tag_user(sqlite3_stmt *st, int64_t user_id) {
    if (user_id) sqlite3_bind_int64(st, 1, user_id);
    else sqlite3_bind_null(st, 1);
}

int store_tag_add(store *s, int64_t user_id, int64_t item_id, const char *tag, int64_t ts,
                  store_dup_policy dup, bool *inserted, tailor_error *err) {
    if (inserted) *inserted = false;
    sqlite3_stmt *st;
    if (dup != STORE_DUP_KEEP) {
        if (!(st = store_stmt(s, ST_TAG_FIND, err))) return TAILOR_EDB;
        bind_tag_user(st, user_id);
        sqlite3_bind_int64(st, 2, item_id);
        sqlite3_bind_text(st, 3, tag, -1, SQLITE_STATIC);
        int step = sqlite3_step(st);
        int64_t have = step == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
        sqlite3_reset(st);
        if (step != SQLITE_ROW && step != SQLITE_DONE) return store_sqlite_err(s, err, "find tag");
        if (have) {
            if (dup == STORE_DUP_ERROR)
                return err_set(err, TAILOR_EEXISTS,
                               "tag '%s' of this user and item already exists (use --on-duplicate skip or replace)",
                               tag);
            if (dup == STORE_DUP_SKIP) return 0;
            if (!(st = store_stmt(s, ST_TAG_UPDATE, err))) return TAILOR_EDB;
            sqlite3_bind_int64(st, 1, have);
            sqlite3_bind_int64(st, 2, ts);
            return store_step_done(s, st, err, "update tag");
        }
    }
    if (!(st = store_stmt(s, ST_TAG_INSERT, err))) return TAILOR_EDB;
    bind_tag_user(st, user_id);
    sqlite3_bind_int64(st, 2, item_id);
    sqlite3_bind_text(st, 3, tag, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, ts);
    int rc = store_step_done(s, st, err, "insert tag");
    if (!rc && inserted) *inserted = true;
    return rc;
}

int store_kg_add(store *s, const char *head, const char *relation, const char *tail,
                 const char *source, double confidence, store_dup_policy dup, bool *inserted,
                 tailor_error *err) {
    if (inserted) *inserted = false;
    store_stmt_id id = dup == STORE_DUP_SKIP      ? ST_KG_INSERT_IGNORE
                       : dup == STORE_DUP_REPLACE ? ST_KG_REPLACE
                                                  : ST_KG_INSERT;
    sqlite3_stmt *st = store_stmt(s, id, err);
    if (!st) return TAILOR_EDB;
    sqlite3_bind_text(st, 1, head, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, relation, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, tail, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, source ? source : "import", -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 5, confidence);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc == SQLITE_CONSTRAINT_UNIQUE)
        return err_set(err, TAILOR_EEXISTS, "triple (%s, %s, %s) already exists", head,
                       relation, tail);
    if (rc != SQLITE_DONE) return store_sqlite_err(s, err, "insert triple");
    if (inserted) *inserted = sqlite3_changes(s->db) > 0;
    return 0;
}

char *store_col_strdup(sqlite3_stmt *st, int i) {
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? xstrdup((const char *)t) : NULL;
}

int store_item_get(store *s, int64_t id, store_item *out, tailor_error *err) {
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "SELECT ext_id, title, text, attributes FROM items WHERE id = ?1",
                           -1, &st, NULL) != SQLITE_OK)
        return store_sqlite_err(s, err, "item");
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        out->id = id;
        out->ext_id = store_col_strdup(st, 0);
        out->title = store_col_strdup(st, 1);
        out->text = store_col_strdup(st, 2);
        out->attributes = store_col_strdup(st, 3);
        rc = 0;
    } else if (rc == SQLITE_DONE) {
        rc = err_set(err, TAILOR_ENOTFOUND, "item %lld not found", (long long)id);
    } else {
        rc = store_sqlite_err(s, err, "item");
    }
    sqlite3_finalize(st);
    return rc;
}

void store_item_deinit(store_item *it) {
    free(it->ext_id);
    free(it->title);
    free(it->text);
    free(it->attributes);
    memset(it, 0, sizeof *it);
}

/* ---- models ------------------------------------------------------------ */

#define MODEL_COLS "name, kind, params, metrics, file, trained_at, active, evaluation"

static void model_from_row(sqlite3_stmt *st, store_model *out) {
    out->name = store_col_strdup(st, 0);
    out->kind = store_col_strdup(st, 1);
    out->params = store_col_strdup(st, 2);
    out->metrics = store_col_strdup(st, 3);
    out->file = store_col_strdup(st, 4);
    out->trained_at = sqlite3_column_int64(st, 5);
    out->active = sqlite3_column_int(st, 6) != 0;
    out->evaluation = store_col_strdup(st, 7);
}

/* Runs one statement with up to two text parameters; *changes (may be
 * NULL) receives the rows it changed. */
static int model_exec(store *s, const char *sql, const char *a, const char *b, int *changes,
                      tailor_error *err) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) return store_sqlite_err(s, err, "models");
    if (a) sqlite3_bind_text(st, 1, a, -1, SQLITE_STATIC);
    if (b) sqlite3_bind_text(st, 2, b, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : store_sqlite_err(s, err, "models");
    sqlite3_finalize(st);
    if (!rc && changes) *changes = sqlite3_changes(s->db);
    return rc;
}

/* Runs body inside a transaction unless the caller has one open. */
static int model_tx_begin(store *s, bool *own, tailor_error *err) {
    *own = !s->in_tx;
    return *own ? store_begin(s, err) : 0;
}

static int model_tx_end(store *s, bool own, int rc, tailor_error *err) {
    if (!own) return rc;
    if (!rc) rc = store_commit(s, err);
    if (rc) store_rollback(s);
    return rc;
}

int store_model_put(store *s, const store_model *m, bool activate, tailor_error *err) {
    bool own;
    int rc = model_tx_begin(s, &own, err);
    if (rc) return rc;
    sqlite3_stmt *st;
    /* A retrained model keeps its place (active or not) and loses the
     * evaluation of its previous training. */
    if (sqlite3_prepare_v2(s->db,
                           "INSERT INTO models (name, kind, params, metrics, file, trained_at)"
                           " VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (name) DO UPDATE SET"
                           " kind = excluded.kind, params = excluded.params,"
                           " metrics = excluded.metrics, file = excluded.file,"
                           " trained_at = excluded.trained_at, evaluation = NULL",
                           -1, &st, NULL) != SQLITE_OK)
        return model_tx_end(s, own, store_sqlite_err(s, err, "model"), err);
    sqlite3_bind_text(st, 1, m->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, m->kind, -1, SQLITE_STATIC);
    store_bind_text(st, 3, m->params);
    store_bind_text(st, 4, m->metrics);
    store_bind_text(st, 5, m->file);
    sqlite3_bind_int64(st, 6, m->trained_at ? m->trained_at : (int64_t)time(NULL));
    rc = sqlite3_step(st) == SQLITE_DONE ? 0 : store_sqlite_err(s, err, "save model");
    sqlite3_finalize(st);
    /* The first model of a store is active whatever the caller asked. */
    if (!rc && !activate)
        rc = model_exec(s, "UPDATE models SET active = 1 WHERE name = ?1"
                           " AND NOT EXISTS (SELECT 1 FROM models WHERE active = 1)",
                        m->name, NULL, NULL, err);
    if (!rc && activate) rc = store_model_activate(s, m->name, err);
    return model_tx_end(s, own, rc, err);
}

static int model_not_found(store *s, const char *name, tailor_error *err) {
    sqlite3_stmt *st;
    sb names;
    sb_init(&names);
    if (sqlite3_prepare_v2(s->db, "SELECT name FROM models ORDER BY name", -1, &st, NULL) == SQLITE_OK) {
        while (sqlite3_step(st) == SQLITE_ROW)
            sb_printf(&names, "%s%s", names.len ? ", " : "", (const char *)sqlite3_column_text(st, 0));
        sqlite3_finalize(st);
    }
    int rc = names.len ? err_set(err, TAILOR_ENOTFOUND, "no model named '%s' in %s (models: %s)", name,
                                 s->path, sb_str(&names))
                       : err_set(err, TAILOR_ENOTFOUND,
                                 "no model named '%s': %s has no trained models (tailor train MODEL makes one)",
                                 name, s->path);
    sb_deinit(&names);
    return rc;
}

static int store_model_query(store *s, const char *name, store_model *out, tailor_error *err) {
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st;
    const char *sql = name ? "SELECT " MODEL_COLS " FROM models WHERE name = ?1"
                           : "SELECT " MODEL_COLS " FROM models ORDER BY active DESC, trained_at DESC, id DESC LIMIT 1";
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
        return store_sqlite_err(s, err, "model");
    if (name) sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        model_from_row(st, out);
        rc = 0;
    } else if (rc == SQLITE_DONE) {
        rc = name ? -1
                  : err_set(err, TAILOR_ENOTFOUND, "no trained model in %s (tailor train MODEL makes one)", s->path);
    } else {
        rc = store_sqlite_err(s, err, "model");
    }
    sqlite3_finalize(st);
    return rc == -1 ? model_not_found(s, name, err) : rc;
}

int store_model_get(store *s, const char *name, store_model *out, tailor_error *err) {
    return store_model_query(s, name, out, err);
}

int store_model_active(store *s, store_model *out, tailor_error *err) {
    return store_model_query(s, NULL, out, err);
}

int store_models_list(store *s, store_model **out, size_t *n, tailor_error *err) {
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "SELECT " MODEL_COLS " FROM models ORDER BY trained_at, id", -1, &st, NULL) !=
        SQLITE_OK)
        return store_sqlite_err(s, err, "models");
    VEC(store_model) v = {0};
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        store_model m = {0};
        model_from_row(st, &m);
        vec_push(&v, m);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        store_models_free(v.data, v.len);
        return store_sqlite_err(s, err, "models");
    }
    *out = v.data;
    *n = v.len;
    return 0;
}

void store_models_free(store_model *m, size_t n) {
    for (size_t i = 0; i < n; i++) store_model_deinit(&m[i]);
    free(m);
}

int store_model_activate(store *s, const char *name, tailor_error *err) {
    bool own;
    int rc = model_tx_begin(s, &own, err), changed = 0;
    /* Clear first: the partial unique index allows one active row. */
    if (!rc) rc = model_exec(s, "UPDATE models SET active = 0 WHERE active = 1 AND name <> ?1", name, NULL, NULL, err);
    if (!rc) rc = model_exec(s, "UPDATE models SET active = 1 WHERE name = ?1", name, NULL, &changed, err);
    if (!rc && !changed) rc = model_not_found(s, name, err);
    return model_tx_end(s, own, rc, err);
}

int store_model_remove(store *s, const char *name, tailor_error *err) {
    bool own;
    int rc = model_tx_begin(s, &own, err), changed = 0;
    if (!rc) rc = model_exec(s, "DELETE FROM models WHERE name = ?1", name, NULL, &changed, err);
    if (!rc && !changed) rc = model_not_found(s, name, err);
    /* Removing the active model hands the role to the newest one left. */
    if (!rc)
        rc = model_exec(s, "UPDATE models SET active = 1 WHERE NOT EXISTS (SELECT 1 FROM models WHERE active = 1)"
                           " AND id = (SELECT id FROM models ORDER BY trained_at DESC, id DESC LIMIT 1)",
                        NULL, NULL, NULL, err);
    return model_tx_end(s, own, rc, err);
}

int store_model_set_evaluation(store *s, const char *name, const char *json, tailor_error *err) {
    int changed = 0;
    int rc = model_exec(s, "UPDATE models SET evaluation = ?2 WHERE name = ?1", name, json, &changed, err);
    if (!rc && !changed) rc = model_not_found(s, name, err);
    return rc;
}

char *store_model_relpath(store *s, const char *name) {
    const char *slash = strrchr(s->path, '/');
    sb p;
    sb_init(&p);
    sb_printf(&p, "%s.models/%s.tmod", slash ? slash + 1 : s->path, name);
    return sb_take(&p);
}

char *store_path_resolve(store *s, const char *file) {
    if (file[0] == '/') return xstrdup(file);
    const char *slash = strrchr(s->path, '/');
    sb p;
    sb_init(&p);
    if (slash) sb_printf(&p, "%.*s", (int)(slash - s->path + 1), s->path);
    sb_puts(&p, file);
    if (!file_exists(sb_str(&p))) {
        /* Files of older versions were relative to where one trained; the
         * model's own name still finds it beside the database. */
        const char *fs = strrchr(file, '/');
        sb q;
        sb_init(&q);
        if (slash) sb_printf(&q, "%.*s", (int)(slash - s->path + 1), s->path);
        sb_printf(&q, "%s.models/%s", slash ? slash + 1 : s->path, fs ? fs + 1 : file);
        if (file_exists(sb_str(&q))) {
            sb_deinit(&p);
            return sb_take(&q);
        }
        sb_deinit(&q);
    }
    return sb_take(&p);
}

int store_user_history(store *s, const char *user_ext, store_history_fn cb, void *ctx,
                       tailor_error *err) {
    int64_t uid;
    int rc = store_user_find(s, user_ext, &uid, err);
    if (rc) return rc;
    if ((rc = store_events_index_ensure(s, err))) return rc;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT i.ext_id, e.value, e.ts FROM events e JOIN items i ON i.id = e.item_id"
                           " WHERE e.user_id = ?1 ORDER BY e.ts, e.id",
                           -1, &st, NULL) != SQLITE_OK)
        return store_sqlite_err(s, err, "history");
    sqlite3_bind_int64(st, 1, uid);
    int step;
    rc = 0;
    while (!rc && (step = sqlite3_step(st)) == SQLITE_ROW) {
        double v = sqlite3_column_type(st, 1) == SQLITE_NULL ? NAN : sqlite3_column_double(st, 1);
        rc = cb(ctx, (const char *)sqlite3_column_text(st, 0), v, sqlite3_column_int64(st, 2));
    }
    if (!rc && step != SQLITE_DONE) rc = store_sqlite_err(s, err, "history");
    sqlite3_finalize(st);
    return rc;
}

int store_user_history_rows(store *s, const char *user_ext, store_history_row_fn cb, void *ctx, tailor_error *err) {
    int64_t uid;
    int rc = store_user_find(s, user_ext, &uid, err);
    if (!rc) rc = store_events_index_ensure(s, err);
    sqlite3_stmt *st = rc ? NULL : store_stmt(s, ST_HISTORY_ROWS, err);
    if (!st) return rc ? rc : TAILOR_EDB;
    sqlite3_bind_int64(st, 1, uid);
    int step;
    while (!rc && (step = sqlite3_step(st)) == SQLITE_ROW) {
        double v = sqlite3_column_type(st, 1) == SQLITE_NULL ? NAN : sqlite3_column_double(st, 1);
        rc = cb(ctx, sqlite3_column_int64(st, 0), v, sqlite3_column_int64(st, 2));
    }
    if (!rc && step != SQLITE_DONE) rc = store_sqlite_err(s, err, "history");
    sqlite3_reset(st);
    return rc;
}

int store_items_each(store *s, store_item_fn cb, void *ctx, tailor_error *err) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "SELECT id, ext_id, title, text, attributes FROM items ORDER BY id", -1, &st,
                           NULL) != SQLITE_OK)
        return store_sqlite_err(s, err, "items");
    int rc = 0, step;
    while (!rc && (step = sqlite3_step(st)) == SQLITE_ROW) {
        store_item it = {sqlite3_column_int64(st, 0), (char *)sqlite3_column_text(st, 1),
                         (char *)sqlite3_column_text(st, 2), (char *)sqlite3_column_text(st, 3),
                         (char *)sqlite3_column_text(st, 4)};
        rc = cb(ctx, &it);
    }
    if (!rc && step != SQLITE_DONE) rc = store_sqlite_err(s, err, "items");
    sqlite3_finalize(st);
    return rc;
}

void store_model_deinit(store_model *m) {
    free(m->evaluation);
    free(m->name);
    free(m->kind);
    free(m->params);
    free(m->metrics);
    free(m->file);
    memset(m, 0, sizeof *m);
}

int store_session_new(store *s, int64_t user_id, int64_t *id, tailor_error *err) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db,
                           "INSERT INTO sessions (user_id, created_at, updated_at) VALUES (?1, ?2, ?2)",
                           -1, &st, NULL) != SQLITE_OK)
        return store_sqlite_err(s, err, "session");
    if (user_id) sqlite3_bind_int64(st, 1, user_id);
    sqlite3_bind_int64(st, 2, (int64_t)time(NULL));
    int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : store_sqlite_err(s, err, "new session");
    sqlite3_finalize(st);
    if (!rc) *id = sqlite3_last_insert_rowid(s->db);
    return rc;
}

int store_message_add(store *s, int64_t session_id, const char *role, const char *content,
                      const char *tool_name, tailor_error *err) {
    return store_message_add_meta(s, session_id, role, content, tool_name, NULL, err);
}

int store_message_add_meta(store *s, int64_t session_id, const char *role, const char *content,
                           const char *tool_name, const char *meta, tailor_error *err) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db,
                           "INSERT INTO messages (session_id, role, content, tool_name, meta, created_at)"
                           " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                           -1, &st, NULL) != SQLITE_OK)
        return store_sqlite_err(s, err, "message");
    int64_t now = (int64_t)time(NULL);
    sqlite3_bind_int64(st, 1, session_id);
    sqlite3_bind_text(st, 2, role, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, content, -1, SQLITE_STATIC);
    store_bind_text(st, 4, tool_name);
    store_bind_text(st, 5, meta);
    sqlite3_bind_int64(st, 6, now);
    int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : store_sqlite_err(s, err, "add message");
    sqlite3_finalize(st);
    if (rc) return rc;
    if (sqlite3_prepare_v2(s->db, "UPDATE sessions SET updated_at = ?2 WHERE id = ?1", -1, &st,
                           NULL) != SQLITE_OK)
        return store_sqlite_err(s, err, "session");
    sqlite3_bind_int64(st, 1, session_id);
    sqlite3_bind_int64(st, 2, now);
    rc = sqlite3_step(st) == SQLITE_DONE ? 0 : store_sqlite_err(s, err, "touch session");
    sqlite3_finalize(st);
    return rc;
}

int store_session_get(store *s, int64_t id, int64_t *user_id, char **state, tailor_error *err) {
    sqlite3_stmt *st;
    if (state) *state = NULL;
    if (sqlite3_prepare_v2(s->db, "SELECT coalesce(user_id, 0), state FROM sessions WHERE id = ?1", -1, &st, NULL) !=
        SQLITE_OK)
        return store_sqlite_err(s, err, "session");
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        if (user_id) *user_id = sqlite3_column_int64(st, 0);
        if (state) *state = store_col_strdup(st, 1);
        rc = 0;
    } else {
        rc = rc == SQLITE_DONE ? err_set(err, TAILOR_ENOTFOUND, "no session %lld in %s", (long long)id, s->path)
                               : store_sqlite_err(s, err, "session");
    }
    sqlite3_finalize(st);
    return rc;
}

int store_session_set_state(store *s, int64_t id, const char *state, tailor_error *err) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "UPDATE sessions SET state = ?2, updated_at = ?3 WHERE id = ?1", -1, &st, NULL) !=
        SQLITE_OK)
        return store_sqlite_err(s, err, "session");
    sqlite3_bind_int64(st, 1, id);
    store_bind_text(st, 2, state);
    sqlite3_bind_int64(st, 3, (int64_t)time(NULL));
    int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : store_sqlite_err(s, err, "session state");
    sqlite3_finalize(st);
    return rc;
}

int64_t store_sessions_last(store *s) {
    sqlite3_stmt *st;
    int64_t id = 0;
    if (sqlite3_prepare_v2(s->db, "SELECT coalesce(max(id), 0) FROM sessions", -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW) id = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    return id;
}

int store_sessions_delete_after(store *s, int64_t id, tailor_error *err) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "DELETE FROM sessions WHERE id > ?1", -1, &st, NULL) != SQLITE_OK)
        return store_sqlite_err(s, err, "sessions");
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : store_sqlite_err(s, err, "delete sessions");
    sqlite3_finalize(st);
    return rc;
}

int store_fact_add(store *s, int64_t user_id, int64_t session_id, const char *kind, const char *value,
                   const char *text, tailor_error *err) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db,
                           "INSERT INTO profile_facts (user_id, session_id, kind, value, text, created_at)"
                           " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                           -1, &st, NULL) != SQLITE_OK)
        return store_sqlite_err(s, err, "fact");
    if (user_id) sqlite3_bind_int64(st, 1, user_id);
    if (session_id) sqlite3_bind_int64(st, 2, session_id);
    sqlite3_bind_text(st, 3, kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, value, -1, SQLITE_STATIC);
    store_bind_text(st, 5, text);
    sqlite3_bind_int64(st, 6, (int64_t)time(NULL));
    int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : store_sqlite_err(s, err, "add fact");
    sqlite3_finalize(st);
    return rc;
}

/* Facts of the user, or (anonymous) of the session. */
#define FACTS_WHERE " WHERE (?1 <> 0 AND user_id = ?1) OR (?2 <> 0 AND session_id = ?2 AND user_id IS NULL)"

int store_facts_list(store *s, int64_t user_id, int64_t session_id, store_fact **out, size_t *n,
                     tailor_error *err) {
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "SELECT id, kind, value, text, created_at FROM profile_facts" FACTS_WHERE " ORDER BY id",
                           -1, &st, NULL) != SQLITE_OK)
        return store_sqlite_err(s, err, "facts");
    sqlite3_bind_int64(st, 1, user_id);
    sqlite3_bind_int64(st, 2, session_id);
    VEC(store_fact) v = {0};
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        store_fact f = {sqlite3_column_int64(st, 0), store_col_strdup(st, 1), store_col_strdup(st, 2), store_col_strdup(st, 3),
                        sqlite3_column_int64(st, 4)};
        vec_push(&v, f);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        store_facts_free(v.data, v.len);
        return store_sqlite_err(s, err, "facts");
    }
    *out = v.data;
    *n = v.len;
    return 0;
}

int store_facts_clear(store *s, int64_t user_id, int64_t session_id, const char *kind, int64_t *removed,
                      tailor_error *err) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "DELETE FROM profile_facts WHERE ((?1 <> 0 AND user_id = ?1) OR (?2 <> 0 AND"
                                  " session_id = ?2 AND user_id IS NULL)) AND (?3 IS NULL OR kind = ?3)",
                           -1, &st, NULL) != SQLITE_OK)
        return store_sqlite_err(s, err, "facts");
    sqlite3_bind_int64(st, 1, user_id);
    sqlite3_bind_int64(st, 2, session_id);
    store_bind_text(st, 3, kind);
    int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : store_sqlite_err(s, err, "clear facts");
    sqlite3_finalize(st);
    if (!rc && removed) *removed = sqlite3_changes(s->db);
    return rc;
}

void store_facts_free(store_fact *f, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(f[i].kind);
        free(f[i].value);
        free(f[i].text);
    }
    free(f);
}

int store_messages_list(store *s, int64_t session_id, store_message **out, size_t *n,
                        tailor_error *err) {
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT role, content, tool_name, created_at, meta FROM messages"
                           " WHERE session_id = ?1 ORDER BY id",
                           -1, &st, NULL) != SQLITE_OK)
        return store_sqlite_err(s, err, "messages");
    sqlite3_bind_int64(st, 1, session_id);
    VEC(store_message) v = {0};
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        store_message m = {store_col_strdup(st, 0), store_col_strdup(st, 1), store_col_strdup(st, 2), store_col_strdup(st, 4),
                           sqlite3_column_int64(st, 3)};
        vec_push(&v, m);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        store_messages_free(v.data, v.len);
        return store_sqlite_err(s, err, "messages");
    }
    *out = v.data;
    *n = v.len;
    return 0;
}

void store_messages_free(store_message *m, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(m[i].role);
        free(m[i].content);
        free(m[i].tool_name);
        free(m[i].meta);
    }
    free(m);
}

static int store_count_table(store *s, const char *table, int64_t *out, tailor_error *err) {
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", table);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
        return store_sqlite_err(s, err, table);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) *out = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 0 : store_sqlite_err(s, err, table);
}

int store_counts(store *s, tailor_store_counts *out, tailor_error *err) {
    memset(out, 0, sizeof *out);
    int rc = store_count_table(s, "users", &out->users, err);
    if (!rc) rc = store_count_table(s, "items", &out->items, err);
    if (!rc) rc = store_count_table(s, "events", &out->events, err);
    if (!rc) rc = store_count_table(s, "tags", &out->tags, err);
    if (!rc) rc = store_count_table(s, "kg_triples", &out->kg_triples, err);
    if (!rc) rc = store_count_table(s, "models", &out->models, err);
    return rc;
}

int store_content_digest(store *s, char out_hex[65], tailor_error *err) {
    /* Tables in name order, rows in rowid order, each value with its type:
     * equal digests mean equal content, whatever the page layout. */
    sqlite3_stmt *tables;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT name FROM sqlite_schema WHERE type = 'table'"
                           " AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '%\\_fts%' ESCAPE '\\'"
                           " ORDER BY name",
                           -1, &tables, NULL) != SQLITE_OK)
        return store_sqlite_err(s, err, "digest");
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    int version = store_schema_version(s);
    EVP_DigestUpdate(md, &version, sizeof version);
    int rc = 0;
    while (!rc && sqlite3_step(tables) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(tables, 0);
        EVP_DigestUpdate(md, name, strlen(name) + 1);
        char sql[256];
        snprintf(sql, sizeof sql, "SELECT * FROM \"%s\" ORDER BY rowid", name);
        sqlite3_stmt *rows;
        if (sqlite3_prepare_v2(s->db, sql, -1, &rows, NULL) != SQLITE_OK) {
            rc = store_sqlite_err(s, err, "digest");
            break;
        }
        int ncol = sqlite3_column_count(rows);
        while (sqlite3_step(rows) == SQLITE_ROW) {
            for (int c = 0; c < ncol; c++) {
                unsigned char type = (unsigned char)sqlite3_column_type(rows, c);
                EVP_DigestUpdate(md, &type, 1);
                int len = sqlite3_column_bytes(rows, c);
                const void *blob = sqlite3_column_blob(rows, c);
                EVP_DigestUpdate(md, &len, sizeof len);
                if (blob && len) EVP_DigestUpdate(md, blob, (size_t)len);
            }
        }
        sqlite3_finalize(rows);
    }
    sqlite3_finalize(tables);
    unsigned char d[32];
    unsigned int dl = 0;
    EVP_DigestFinal_ex(md, d, &dl);
    EVP_MD_CTX_free(md);
    for (int i = 0; i < 32; i++) snprintf(out_hex + 2 * i, 3, "%02x", d[i]);
    return rc;
}

int store_idmap_load(store *s, const char *table, hmap *m, tailor_error *err) {
    if (strcmp(table, "users") != 0 && strcmp(table, "items") != 0)
        return err_set(err, TAILOR_EINVAL, "no id map for table %s", table);
    char sql[64];
    snprintf(sql, sizeof sql, "SELECT ext_id, id FROM %s", table);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
        return store_sqlite_err(s, err, table);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *k = (const char *)sqlite3_column_text(st, 0);
        hmap_put(m, k, (size_t)sqlite3_column_bytes(st, 0), sqlite3_column_int64(st, 1));
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : store_sqlite_err(s, err, table);
}

/* ---- search ------------------------------------------------------------ */

/* The words of free text as an FTS5 query: each one quoted (so that no
 * character of the user's text is FTS5 syntax), any of them matching;
 * bm25 ranks rows with more and rarer words higher. */
static bool search_query(const char *text, sb *q) {
    const unsigned char *p = (const unsigned char *)text;
    bool any = false;
    while (*p) {
        while (*p && *p < 0x80 && !((*p >= '0' && *p <= '9') || ((*p | 32) >= 'a' && (*p | 32) <= 'z'))) p++;
        const unsigned char *w = p;
        while (*p && (*p >= 0x80 || (*p >= '0' && *p <= '9') || ((*p | 32) >= 'a' && (*p | 32) <= 'z'))) p++;
        if (p == w) continue;
        sb_printf(q, "%s\"%.*s\"", any ? " OR " : "", (int)(p - w), (const char *)w);
        any = true;
    }
    return any;
}

static int hit_cmp(const void *a, const void *b) {
    const store_hit *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

int store_search(store *s, const char *text, store_hit **out, size_t *n, tailor_error *err) {
    *out = NULL;
    *n = 0;
    sb q;
    sb_init(&q);
    if (!search_query(text, &q)) {
        sb_deinit(&q);
        return err_set(err, TAILOR_EINVAL, "nothing to search for in '%s' (no letters or digits)", text);
    }
    /* Text matches, titles weighing twice the body; then tag matches,
     * half as much, growing with how many users gave a matching tag. */
    static const char *const sql[2] = {
        "SELECT rowid, -bm25(items_fts, 2.0, 1.0) FROM items_fts WHERE items_fts MATCH ?1",
        /* bm25() cannot run inside an aggregate: rank first. */
        "WITH m AS MATERIALIZED (SELECT rowid AS id, -bm25(tags_fts) AS s FROM tags_fts WHERE tags_fts MATCH ?1)"
        " SELECT t.item_id, max(m.s), count(*) FROM m JOIN tags t ON t.id = m.id GROUP BY t.item_id",
    };
    hmap at;
    hmap_init(&at, 64);
    VEC(store_hit) hits = {0};
    int rc = 0;
    for (int pass = 0; pass < 2 && !rc; pass++) {
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(s->db, sql[pass], -1, &st, NULL) != SQLITE_OK) {
            rc = store_sqlite_err(s, err, "search");
            break;
        }
        sqlite3_bind_text(st, 1, sb_str(&q), -1, SQLITE_STATIC);
        int step;
        while ((step = sqlite3_step(st)) == SQLITE_ROW) {
            int64_t id = sqlite3_column_int64(st, 0), slot;
            double score = sqlite3_column_double(st, 1);
            if (pass == 1) score *= 0.5 * (1 + log((double)sqlite3_column_int64(st, 2)));
            if (hmap_get(&at, (const char *)&id, sizeof id, &slot)) {
                hits.data[slot].score += score;
            } else {
                hmap_put(&at, (const char *)&id, sizeof id, (int64_t)hits.len);
                store_hit h = {id, score};
                vec_push(&hits, h);
            }
        }
        if (step != SQLITE_DONE) rc = store_sqlite_err(s, err, "search");
        sqlite3_finalize(st);
    }
    hmap_deinit(&at);
    sb_deinit(&q);
    if (rc) {
        vec_free(&hits);
        return rc;
    }
    if (hits.len) qsort(hits.data, hits.len, sizeof *hits.data, hit_cmp);
    *out = hits.data;
    *n = hits.len;
    return 0;
}

/* ---- public wrappers --------------------------------------------------- */

int tailor_store_open(const char *path, tailor_store **out, tailor_error *err) {
    return store_open(path, store_default_params(), out, err);
}

void tailor_store_close(tailor_store *s) { store_close(s); }

int tailor_store_counts_get(tailor_store *s, tailor_store_counts *out, tailor_error *err) {
    return store_counts(s, out, err);
}
