/* store.c — opening the store and typed row access.
 * Every statement is prepared once and cached; text is bound with a copy
 * unless it outlives the step (then _static). */
#include <math.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/store_internal.h"

static const char *const STMT_SQL[ST_COUNT_] = {
    [ST_USER_FIND] = "SELECT id FROM users WHERE ext_id = ?1",
    [ST_USER_INSERT] = "INSERT INTO users (ext_id, attributes) VALUES (?1, ?2) RETURNING id",
    [ST_USER_UPDATE] = "UPDATE users SET attributes = coalesce(?2, attributes) WHERE id = ?1",
    [ST_ITEM_FIND] = "SELECT id FROM items WHERE ext_id = ?1",
    [ST_ITEM_INSERT] = "INSERT INTO items (ext_id, title, text, attributes) VALUES (?1, ?2, ?3, ?4) RETURNING id",
    [ST_ITEM_UPDATE] = "UPDATE items SET title = coalesce(?2, title), text = coalesce(?3, text),"
                       " attributes = coalesce(?4, attributes) WHERE id = ?1",
    [ST_KIND_FIND] = "SELECT id FROM event_kinds WHERE name = ?1",
    [ST_KIND_INSERT] = "INSERT INTO event_kinds (name) VALUES (?1) RETURNING id",
    [ST_EVENT_INSERT] = "INSERT INTO events (user_id, item_id, kind, value, ts) VALUES (?1, ?2, ?3, ?4, ?5)",
    [ST_EVENT_FIND] = "SELECT 1 FROM events WHERE user_id = ?1 AND item_id = ?2 AND kind = ?3 LIMIT 1",
    [ST_EVENT_DELETE] = "DELETE FROM events WHERE user_id = ?1 AND item_id = ?2 AND kind = ?3",
    [ST_TAG_INSERT] = "INSERT INTO tags (user_id, item_id, tag, ts) VALUES (?1, ?2, ?3, ?4)",
    [ST_TAG_FIND] = "SELECT id FROM tags WHERE item_id = ?2 AND user_id IS NOT DISTINCT FROM ?1 AND tag = ?3 LIMIT 1",
    [ST_TAG_UPDATE] = "UPDATE tags SET ts = ?2 WHERE id = ?1",
    [ST_KG_INSERT] = "INSERT INTO kg_triples (head, relation, tail, source, confidence) VALUES (?1, ?2, ?3, ?4, ?5)",
    [ST_KG_INSERT_IGNORE] = "INSERT INTO kg_triples (head, relation, tail, source, confidence)"
                            " VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
    [ST_KG_REPLACE] = "INSERT INTO kg_triples (head, relation, tail, source, confidence) VALUES (?1, ?2, ?3, ?4, ?5)"
                      " ON CONFLICT (head, relation, tail) DO UPDATE SET source = excluded.source,"
                      " confidence = excluded.confidence",
    [ST_HISTORY_ROWS] = "SELECT item_id, value, ts FROM events WHERE user_id = ?1 ORDER BY ts, id",
    [ST_KEY_FIND] = STORE_KEY_SELECT " WHERE hash = ?1",
};

int store_db_err(store *s, tailor_error *err, const char *what) {
    return err_set(err, TAILOR_EDB, "%s: %s: %s", sdb_name(s->db), what, sdb_errmsg(s->db));
}

sdb_stmt *store_stmt(store *s, store_stmt_id id, tailor_error *err) {
    if (!s->stmts[id]) {
        if (sdb_prepare(s->db, STMT_SQL[id], &s->stmts[id]) != SDB_OK) {
            store_db_err(s, err, "prepare");
            return NULL;
        }
    } else {
        sdb_reset(s->stmts[id]);
        sdb_clear_bindings(s->stmts[id]);
    }
    return s->stmts[id];
}

store_params store_default_params(void) {
    return (store_params){.target_version = 0, .read_only = false};
}

struct sdb *store_db(store *s) { return s->db; }

/* ---- batched users and items (PostgreSQL) -------------------------------- */

enum { BATCH_IDS = 4096 };
static const char *const BATCH_TABLE[2] = {"users", "items"};
static const char *const BATCH_COPY[2] = {"COPY users (id, ext_id, attributes) FROM STDIN",
                                          "COPY items (id, ext_id, title, text, attributes) FROM STDIN"};

/* A value in COPY's text format: \N for NULL; backslash, tab, newline and
 * carriage return escaped. */
static void copy_field(sb *o, const char *v, size_t n, bool last) {
    if (!v) {
        sb_puts(o, "\\N");
    } else {
        for (size_t i = 0; i < n; i++) {
            char c = v[i];
            if (c == '\\') sb_puts(o, "\\\\");
            else if (c == '\t') sb_puts(o, "\\t");
            else if (c == '\n') sb_puts(o, "\\n");
            else if (c == '\r') sb_puts(o, "\\r");
            else sb_putc(o, c);
        }
    }
    sb_putc(o, last ? '\n' : '\t');
}

static void batch_discard(store *s) {
    for (int w = 0; w < 2; w++) {
        sb_clear(&s->batch[w].rows);
        s->batch[w].n = 0;
    }
}

/* db.h's hook: the rows held back go first (users before items, both
 * before anything that refers to them). */
static int batch_flush(void *ud, tailor_error *err) {
    store *s = ud;
    for (int w = 0; w < 2; w++) {
        store_batch *b = &s->batch[w];
        if (!b->n) continue;
        int rc = sdb_copy_begin(s->db, BATCH_COPY[w], err);
        if (!rc) rc = sdb_copy_put(s->db, b->rows.buf, b->rows.len, err);
        int rc2 = rc ? 0 : sdb_copy_end(s->db, err);
        sb_clear(&b->rows);
        b->n = 0;
        if (rc || rc2) return rc ? rc : rc2;
    }
    return 0;
}

static int batch_reserve(store *s, store_batch *b, int w, tailor_error *err) {
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT nextval(pg_get_serial_sequence('%s', 'id')) FROM generate_series(1, %d)",
             BATCH_TABLE[w], BATCH_IDS);
    sdb_stmt *st;
    if (sdb_prepare(s->db, sql, &st) != SDB_OK) return store_db_err(s, err, "reserve ids");
    if (!b->ids) b->ids = xmalloc(BATCH_IDS * sizeof *b->ids);
    b->n_ids = b->used = 0;
    int rc;
    while ((rc = sdb_step(st)) == SDB_ROW && b->n_ids < BATCH_IDS) b->ids[b->n_ids++] = sdb_col_int64(st, 0);
    sdb_finalize(st);
    return rc == SDB_DONE && b->n_ids ? 0 : store_db_err(s, err, "reserve ids");
}

static int batch_add(store *s, int w, const char *ext_id, size_t len, const char *title, const char *text,
                     const char *attributes, int64_t *id, tailor_error *err) {
    store_batch *b = &s->batch[w];
    if (b->used == b->n_ids) {
        int rc = batch_reserve(s, b, w, err);
        if (rc) return rc;
    }
    int64_t nid = b->ids[b->used++];
    sb_printf(&b->rows, "%lld\t", (long long)nid);
    copy_field(&b->rows, ext_id, len, false);
    if (w == 1) {
        copy_field(&b->rows, title, title ? strlen(title) : 0, false);
        copy_field(&b->rows, text, text ? strlen(text) : 0, false);
    }
    copy_field(&b->rows, attributes, attributes ? strlen(attributes) : 0, true);
    b->n++;
    if (id) *id = nid;
    return 0;
}

bool store_is_url(const char *target) { return sdb_is_pg(target); }
bool store_lookups_remote(const store *s) { return store_is_pg(s); }

char *store_files_base(const char *target) {
    if (!sdb_is_pg(target)) return xstrdup(target);
    /* The database's name: the URL's path (before ?), or dbname=NAME. */
    char name[128] = "tailor";
    const char *d = strstr(target, "dbname=");
    if (d) {
        d += 7;
        size_t n = strcspn(d, " &");
        if (n && n < sizeof name) snprintf(name, sizeof name, "%.*s", (int)n, d);
    } else if ((d = strstr(target, "://"))) {
        const char *slash = strchr(d + 3, '/');
        size_t n = slash ? strcspn(slash + 1, "?") : 0;
        if (n && n < sizeof name) snprintf(name, sizeof name, "%.*s", (int)n, slash + 1);
    }
    for (char *c = name; *c; c++)
        if (*c == '/' || *c == '.') *c = '_';
    const char *dir = getenv("TAILOR_FILES");
    sb p;
    sb_init(&p);
    sb_printf(&p, "%s/%s", dir && *dir ? dir : "tailor-files", name);
    return sb_take(&p);
}

int store_exec(store *s, const char *sql, tailor_error *err) { return sdb_exec(s->db, sql, err); }

int store_durable_commits(store *s, tailor_error *err) {
    return store_is_pg(s) ? 0 : store_exec(s, "PRAGMA synchronous = FULL", err);
}

int store_schema_version(store *s) {
    sdb_stmt *st;
    int v = -1;
    /* PostgreSQL keeps it in a table (no user_version); none yet: 0. */
    const char *sql = "PRAGMA user_version";
    if (store_is_pg(s)) {
        if (sdb_prepare(s->db, "SELECT to_regclass('tailor_schema') IS NOT NULL", &st) != SDB_OK) return -1;
        bool has = sdb_step(st) == SDB_ROW && sdb_col_int64(st, 0);
        sdb_finalize(st);
        if (!has) return 0;
        sql = "SELECT coalesce(max(version), 0) FROM tailor_schema";
    }
    if (sdb_prepare(s->db, sql, &st) == SDB_OK) {
        if (sdb_step(st) == SDB_ROW) v = (int)sdb_col_int64(st, 0);
        sdb_finalize(st);
    }
    return v;
}

int store_open(const char *path, store_params params, store **out, tailor_error *err) {
    *out = NULL;
    store *s = xcalloc(1, sizeof *s);
    s->path = xstrdup(path);
    s->files = store_files_base(path);
    int rc = sdb_open(path, params.read_only, &s->db, err);
    if (rc) {
        store_close(s);
        return rc;
    }
    for (int w = 0; w < 2; w++) sb_init(&s->batch[w].rows);
    s->models_gen = 1;
    if (store_is_pg(s)) {
        sdb_set_hook(s->db, batch_flush, s);
        rc = sdb_listen(s->db, "tailor_models", err);
    }
    /* WAL lets readers (the server) run beside a writer (an import);
     * synchronous=NORMAL is durable across application crashes in WAL. */
    if (!store_is_pg(s)) rc = store_exec(s, "PRAGMA foreign_keys = ON;", err);
    if (!rc && !params.read_only && !store_is_pg(s))
        rc = store_exec(s,
                        "PRAGMA journal_mode = WAL;"
                        "PRAGMA synchronous = NORMAL;"
                        "PRAGMA cache_size = -65536;",
                        err);
    if (rc) {
        err_prefix(err, "cannot open database %s", sdb_name(s->db));
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
    for (int i = 0; i < ST_COUNT_; i++) sdb_finalize(s->stmts[i]);
    sdb_finalize(s->batch_insert);
    sdb_close(s->db);
    for (int w = 0; w < 2; w++) {
        sb_deinit(&s->batch[w].rows);
        free(s->batch[w].ids);
    }
    free(s->path);
    free(s->files);
    free(s);
}

int store_begin(store *s, tailor_error *err) {
    if (s->in_tx) return err_set(err, TAILOR_EINTERNAL, "nested transaction");
    /* SQLite: take the write lock now, not at the first write (a reader
     * turning writer mid-transaction could deadlock with another). */
    int rc = store_exec(s, store_is_pg(s) ? "BEGIN" : "BEGIN IMMEDIATE", err);
    if (!rc) s->in_tx = true;
    return rc;
}

int store_commit(store *s, tailor_error *err) {
    /* A bulk load's dropped keys never stay dropped. */
    int rc = store_events_bulk_restore(s, err);
    if (!rc) rc = store_exec(s, "COMMIT", err);
    if (!rc) s->in_tx = false;
    return rc;
}

void store_rollback(store *s) {
    if (!s->in_tx) return;
    /* Reset statements first: an active read would block the rollback. */
    for (int i = 0; i < ST_COUNT_; i++)
        if (s->stmts[i]) sdb_reset(s->stmts[i]);
    if (s->batch_insert) sdb_reset(s->batch_insert);
    batch_discard(s);
    sdb_exec(s->db, "ROLLBACK", NULL);
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

void store_bind_text(sdb_stmt *st, int i, const char *v) {
    if (v) sdb_bind_text(st, i, v, -1);
    else sdb_bind_null(st, i);
}

static int store_find_ext(store *s, store_stmt_id sid, const char *what,
                          const char *ext_id, int64_t *id, tailor_error *err) {
    sdb_stmt *st = store_stmt(s, sid, err);
    if (!st) return TAILOR_EDB;
    sdb_bind_text_static(st, 1, ext_id, -1);
    int rc = sdb_step(st);
    if (rc == SDB_ROW) {
        *id = sdb_col_int64(st, 0);
        sdb_reset(st);
        return 0;
    }
    sdb_reset(st);
    if (rc != SDB_DONE) return store_db_err(s, err, what);
    return err_set(err, TAILOR_ENOTFOUND, "%s '%s' not found", what, ext_id);
}

int store_user_find(store *s, const char *ext_id, int64_t *id, tailor_error *err) {
    return store_find_ext(s, ST_USER_FIND, "user", ext_id, id, err);
}

int store_item_find(store *s, const char *ext_id, int64_t *id, tailor_error *err) {
    return store_find_ext(s, ST_ITEM_FIND, "item", ext_id, id, err);
}

static int store_step_done(store *s, sdb_stmt *st, tailor_error *err, const char *what) {
    int rc = sdb_step(st);
    sdb_reset(st);
    if (rc != SDB_DONE) return store_db_err(s, err, what);
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
static void bind_entity_cols(const entity_ops *ops, sdb_stmt *st, const char *title,
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
    /* An import into PostgreSQL: held back, one COPY for many (outside a
     * transaction the row goes in at once, so a duplicate is refused here). */
    if (store_is_pg(s) && s->in_tx)
        return batch_add(s, ops == &ITEM_OPS, ext_id, len, title, text, attributes, id, err);
    sdb_stmt *st = store_stmt(s, ops->insert, err);
    if (!st) return TAILOR_EDB;
    sdb_bind_text_static(st, 1, ext_id, (int)len);
    bind_entity_cols(ops, st, title, text, attributes);
    /* RETURNING: the new id without a second round trip (PostgreSQL). */
    int rc = sdb_step(st);
    int64_t got = rc == SDB_ROW ? sdb_col_int64(st, 0) : 0;
    sdb_reset(st);
    if (rc == SDB_UNIQUE)
        return err_set(err, TAILOR_EEXISTS, "%s '%.*s' already exists", ops->what, (int)len, ext_id);
    if (rc != SDB_ROW) return store_db_err(s, err, ops->what);
    if (id) *id = got;
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
        sdb_stmt *st = store_stmt(s, ops->update, err);
        if (!st) return TAILOR_EDB;
        sdb_bind_int64(st, 1, existing);
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
    sdb_stmt *st = store_stmt(s, ST_KIND_FIND, err);
    if (!st) return TAILOR_EDB;
    sdb_bind_text_static(st, 1, name, -1);
    int rc = sdb_step(st);
    if (rc == SDB_ROW) {
        *id = sdb_col_int64(st, 0);
        sdb_reset(st);
        return 0;
    }
    sdb_reset(st);
    if (rc != SDB_DONE) return store_db_err(s, err, "event kind");
    if (!create) return err_set(err, TAILOR_ENOTFOUND, "event kind '%s' not found", name);
    st = store_stmt(s, ST_KIND_INSERT, err);
    if (!st) return TAILOR_EDB;
    sdb_bind_text_static(st, 1, name, -1);
    rc = sdb_step(st);
    *id = rc == SDB_ROW ? sdb_col_int64(st, 0) : 0;
    sdb_reset(st);
    return rc == SDB_ROW ? 0 : store_db_err(s, err, "insert event kind");
}

static void bind_event_key(sdb_stmt *st, const store_event *ev) {
    sdb_bind_int64(st, 1, ev->user_id);
    sdb_bind_int64(st, 2, ev->item_id);
    sdb_bind_int64(st, 3, ev->kind);
}

int store_event_add(store *s, const store_event *ev, tailor_error *err) {
    sdb_stmt *st = s->stmts[ST_EVENT_INSERT];
    if (!st && !(st = store_stmt(s, ST_EVENT_INSERT, err))) return TAILOR_EDB;
    /* Hot path of every import: rebinding all five parameters makes
     * clear_bindings unnecessary. */
    bind_event_key(st, ev);
    if (ev->has_value) sdb_bind_double(st, 4, ev->value);
    else sdb_bind_null(st, 4);
    sdb_bind_int64(st, 5, ev->ts);
    int rc = sdb_step(st);
    sdb_reset(st);
    if (rc != SDB_DONE) return store_db_err(s, err, "insert event");
    return 0;
}

/* PostgreSQL: COPY in text format, one round trip for all n. */
static int events_copy(store *s, const store_event *evs, size_t n, tailor_error *err) {
    int rc = sdb_copy_begin(s->db, "COPY events (user_id, item_id, kind, value, ts) FROM STDIN", err);
    if (rc) return rc;
    sb buf;
    sb_init(&buf);
    for (size_t i = 0; i < n; i++) {
        const store_event *ev = &evs[i];
        sb_printf(&buf, "%lld\t%lld\t%lld\t", (long long)ev->user_id, (long long)ev->item_id, (long long)ev->kind);
        if (!ev->has_value) sb_puts(&buf, "\\N");
        else if (isnan(ev->value)) sb_puts(&buf, "NaN");
        else if (isinf(ev->value)) sb_puts(&buf, ev->value > 0 ? "Infinity" : "-Infinity");
        else sb_printf(&buf, "%.17g", ev->value);
        sb_printf(&buf, "\t%lld\n", (long long)ev->ts);
    }
    rc = sdb_copy_put(s->db, buf.buf, buf.len, err);
    int rc2 = sdb_copy_end(s->db, err);
    sb_deinit(&buf);
    return rc ? rc : rc2;
}

int store_events_add(store *s, const store_event *evs, size_t n, tailor_error *err) {
    if (store_is_pg(s) && n > 1) return events_copy(s, evs, n, err);
    size_t i = 0;
    if (n >= STORE_EVENT_BATCH && !s->batch_insert) {
        sb sql;
        sb_init(&sql);
        sb_puts(&sql, "INSERT INTO events (user_id, item_id, kind, value, ts) VALUES ");
        for (int k = 0; k < STORE_EVENT_BATCH; k++) sb_puts(&sql, k ? ",(?,?,?,?,?)" : "(?,?,?,?,?)");
        int prc = sdb_prepare(s->db, sb_str(&sql), &s->batch_insert);
        sb_deinit(&sql);
        if (prc != SDB_OK) return store_db_err(s, err, "prepare batch insert");
    }
    for (; i + STORE_EVENT_BATCH <= n; i += STORE_EVENT_BATCH) {
        sdb_stmt *st = s->batch_insert;
        for (int k = 0; k < STORE_EVENT_BATCH; k++) {
            const store_event *ev = &evs[i + (size_t)k];
            int b = 5 * k;
            sdb_bind_int64(st, b + 1, ev->user_id);
            sdb_bind_int64(st, b + 2, ev->item_id);
            sdb_bind_int64(st, b + 3, ev->kind);
            if (ev->has_value) sdb_bind_double(st, b + 4, ev->value);
            else sdb_bind_null(st, b + 4);
            sdb_bind_int64(st, b + 5, ev->ts);
        }
        int rc = sdb_step(st);
        sdb_reset(st);
        if (rc != SDB_DONE) return store_db_err(s, err, "insert events");
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
    sdb_stmt *st = store_stmt(s, ST_EVENT_FIND, err);
    if (!st) return TAILOR_EDB;
    bind_event_key(st, ev);
    rc = sdb_step(st);
    sdb_reset(st);
    if (rc != SDB_ROW && rc != SDB_DONE) return store_db_err(s, err, "find event");
    *found = rc == SDB_ROW;
    return 0;
}

int store_event_delete_same(store *s, const store_event *ev, tailor_error *err) {
    int rc = store_events_index_ensure(s, err);
    if (rc) return rc;
    sdb_stmt *st = store_stmt(s, ST_EVENT_DELETE, err);
    if (!st) return TAILOR_EDB;
    bind_event_key(st, ev);
    return store_step_done(s, st, err, "delete event");
}

int store_events_delete_same(store *s, const store_event *keys, size_t n, tailor_error *err) {
    if (!store_is_pg(s)) {
        for (size_t i = 0; i < n; i++) {
            int rc = store_event_delete_same(s, &keys[i], err);
            if (rc) return rc;
        }
        return 0;
    }
    if (!n) return 0;
    /* Three arrays as PostgreSQL's text literals, joined by unnest. */
    sb a[3];
    for (int k = 0; k < 3; k++) {
        sb_init(&a[k]);
        sb_putc(&a[k], '{');
    }
    for (size_t i = 0; i < n; i++) {
        sb_printf(&a[0], "%s%lld", i ? "," : "", (long long)keys[i].user_id);
        sb_printf(&a[1], "%s%lld", i ? "," : "", (long long)keys[i].item_id);
        sb_printf(&a[2], "%s%lld", i ? "," : "", (long long)keys[i].kind);
    }
    sdb_stmt *st;
    int rc = 0;
    if (sdb_prepare(s->db, "DELETE FROM events WHERE (user_id, item_id, kind) IN"
                           " (SELECT * FROM unnest(?1::bigint[], ?2::bigint[], ?3::bigint[]))", &st) != SDB_OK) {
        rc = store_db_err(s, err, "delete events");
    } else {
        for (int k = 0; k < 3; k++) {
            sb_putc(&a[k], '}');
            sdb_bind_text(st, k + 1, sb_str(&a[k]), -1);
        }
        if (sdb_step(st) != SDB_DONE) rc = store_db_err(s, err, "delete events");
        sdb_finalize(st);
    }
    for (int k = 0; k < 3; k++) sb_deinit(&a[k]);
    return rc;
}

int store_events_keys_each(store *s, store_event_key_fn cb, void *ctx, tailor_error *err) {
    sdb_stmt *st;
    if (sdb_prepare(s->db, "SELECT user_id, item_id, kind FROM events", &st) != SDB_OK)
        return store_db_err(s, err, "events");
    int rc = 0, step;
    while (!rc && (step = sdb_step(st)) == SDB_ROW)
        rc = cb(ctx, sdb_col_int64(st, 0), sdb_col_int64(st, 1), sdb_col_int64(st, 2));
    if (!rc && step != SDB_DONE) rc = store_db_err(s, err, "events");
    sdb_finalize(st);
    return rc;
}

static void bind_tag_user(sdb_stmt *st, int64_t user_id) {
    if (user_id) sdb_bind_int64(st, 1, user_id);
    else sdb_bind_null(st, 1);
}

int store_tag_add(store *s, int64_t user_id, int64_t item_id, const char *tag, int64_t ts,
                  store_dup_policy dup, bool *inserted, tailor_error *err) {
    if (inserted) *inserted = false;
    sdb_stmt *st;
    if (dup != STORE_DUP_KEEP) {
        if (!(st = store_stmt(s, ST_TAG_FIND, err))) return TAILOR_EDB;
        bind_tag_user(st, user_id);
        sdb_bind_int64(st, 2, item_id);
        sdb_bind_text_static(st, 3, tag, -1);
        int step = sdb_step(st);
        int64_t have = step == SDB_ROW ? sdb_col_int64(st, 0) : 0;
        sdb_reset(st);
        if (step != SDB_ROW && step != SDB_DONE) return store_db_err(s, err, "find tag");
        if (have) {
            if (dup == STORE_DUP_ERROR)
                return err_set(err, TAILOR_EEXISTS,
                               "tag '%s' of this user and item already exists (use --on-duplicate skip or replace)",
                               tag);
            if (dup == STORE_DUP_SKIP) return 0;
            if (!(st = store_stmt(s, ST_TAG_UPDATE, err))) return TAILOR_EDB;
            sdb_bind_int64(st, 1, have);
            sdb_bind_int64(st, 2, ts);
            return store_step_done(s, st, err, "update tag");
        }
    }
    if (!(st = store_stmt(s, ST_TAG_INSERT, err))) return TAILOR_EDB;
    bind_tag_user(st, user_id);
    sdb_bind_int64(st, 2, item_id);
    sdb_bind_text_static(st, 3, tag, -1);
    sdb_bind_int64(st, 4, ts);
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
    sdb_stmt *st = store_stmt(s, id, err);
    if (!st) return TAILOR_EDB;
    sdb_bind_text_static(st, 1, head, -1);
    sdb_bind_text_static(st, 2, relation, -1);
    sdb_bind_text_static(st, 3, tail, -1);
    sdb_bind_text_static(st, 4, source ? source : "import", -1);
    sdb_bind_double(st, 5, confidence);
    int rc = sdb_step(st);
    sdb_reset(st);
    if (rc == SDB_UNIQUE)
        return err_set(err, TAILOR_EEXISTS, "triple (%s, %s, %s) already exists", head,
                       relation, tail);
    if (rc != SDB_DONE) return store_db_err(s, err, "insert triple");
    if (inserted) *inserted = sdb_changes(s->db) > 0;
    return 0;
}

char *store_col_strdup(sdb_stmt *st, int i) {
    const char *t = sdb_col_text(st, i);
    return t ? xstrdup(t) : NULL;
}

int store_item_get(store *s, int64_t id, store_item *out, tailor_error *err) {
    memset(out, 0, sizeof *out);
    sdb_stmt *st;
    if (sdb_prepare(s->db, "SELECT ext_id, title, text, attributes FROM items WHERE id = ?1", &st) != SDB_OK)
        return store_db_err(s, err, "item");
    sdb_bind_int64(st, 1, id);
    int rc = sdb_step(st);
    if (rc == SDB_ROW) {
        out->id = id;
        out->ext_id = store_col_strdup(st, 0);
        out->title = store_col_strdup(st, 1);
        out->text = store_col_strdup(st, 2);
        out->attributes = store_col_strdup(st, 3);
        rc = 0;
    } else if (rc == SDB_DONE) {
        rc = err_set(err, TAILOR_ENOTFOUND, "item %lld not found", (long long)id);
    } else {
        rc = store_db_err(s, err, "item");
    }
    sdb_finalize(st);
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

static void model_from_row(sdb_stmt *st, store_model *out) {
    out->name = store_col_strdup(st, 0);
    out->kind = store_col_strdup(st, 1);
    out->params = store_col_strdup(st, 2);
    out->metrics = store_col_strdup(st, 3);
    out->file = store_col_strdup(st, 4);
    out->trained_at = sdb_col_int64(st, 5);
    out->active = sdb_col_int64(st, 6) != 0;
    out->evaluation = store_col_strdup(st, 7);
}

/* Runs one statement with up to two text parameters; *changes (may be
 * NULL) receives the rows it changed. */
/* The models changed: every server listening hears of it when the
 * transaction commits (PostgreSQL sends one notification per transaction
 * and channel however often it is raised). */
static int models_changed(store *s, tailor_error *err) {
    s->models_gen++;
    return store_is_pg(s) ? store_exec(s, "NOTIFY tailor_models", err) : 0;
}

uint64_t store_models_generation(store *s) {
    int n = sdb_notified(s->db);
    if (n < 0) return 0;
    s->models_gen += (uint64_t)n;
    return s->models_gen;
}

static int model_exec(store *s, const char *sql, const char *a, const char *b, int *changes,
                      tailor_error *err) {
    sdb_stmt *st;
    if (sdb_prepare(s->db, sql, &st) != SDB_OK) return store_db_err(s, err, "models");
    if (a) sdb_bind_text_static(st, 1, a, -1);
    if (b) sdb_bind_text_static(st, 2, b, -1);
    int rc = sdb_step(st) == SDB_DONE ? 0 : store_db_err(s, err, "models");
    sdb_finalize(st);
    if (!rc && changes) *changes = sdb_changes(s->db);
    if (!rc) rc = models_changed(s, err);
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
    sdb_stmt *st;
    /* A retrained model keeps its place (active or not) and loses the
     * evaluation of its previous training. */
    if (sdb_prepare(s->db, "INSERT INTO models (name, kind, params, metrics, file, trained_at)"
                           " VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (name) DO UPDATE SET"
                           " kind = excluded.kind, params = excluded.params,"
                           " metrics = excluded.metrics, file = excluded.file,"
                           " trained_at = excluded.trained_at, evaluation = NULL", &st) != SDB_OK)
        return model_tx_end(s, own, store_db_err(s, err, "model"), err);
    sdb_bind_text_static(st, 1, m->name, -1);
    sdb_bind_text_static(st, 2, m->kind, -1);
    store_bind_text(st, 3, m->params);
    store_bind_text(st, 4, m->metrics);
    store_bind_text(st, 5, m->file);
    sdb_bind_int64(st, 6, m->trained_at ? m->trained_at : (int64_t)time(NULL));
    rc = sdb_step(st) == SDB_DONE ? 0 : store_db_err(s, err, "save model");
    sdb_finalize(st);
    if (!rc) rc = models_changed(s, err);
    /* The first model of a store is active whatever the caller asked. */
    if (!rc && !activate)
        rc = model_exec(s, "UPDATE models SET active = 1 WHERE name = ?1"
                           " AND NOT EXISTS (SELECT 1 FROM models WHERE active = 1)",
                        m->name, NULL, NULL, err);
    if (!rc && activate) rc = store_model_activate(s, m->name, err);
    return model_tx_end(s, own, rc, err);
}

static int model_not_found(store *s, const char *name, tailor_error *err) {
    sdb_stmt *st;
    sb names;
    sb_init(&names);
    if (sdb_prepare(s->db, "SELECT name FROM models ORDER BY name", &st) == SDB_OK) {
        while (sdb_step(st) == SDB_ROW)
            sb_printf(&names, "%s%s", names.len ? ", " : "", sdb_col_text(st, 0));
        sdb_finalize(st);
    }
    int rc = names.len ? err_set(err, TAILOR_ENOTFOUND, "no model named '%s' in %s (models: %s)", name,
                                 sdb_name(s->db), sb_str(&names))
                       : err_set(err, TAILOR_ENOTFOUND,
                                 "no model named '%s': %s has no trained models (tailor train MODEL makes one)",
                                 name, sdb_name(s->db));
    sb_deinit(&names);
    return rc;
}

static int store_model_query(store *s, const char *name, store_model *out, tailor_error *err) {
    memset(out, 0, sizeof *out);
    sdb_stmt *st;
    const char *sql = name ? "SELECT " MODEL_COLS " FROM models WHERE name = ?1"
                           : "SELECT " MODEL_COLS " FROM models ORDER BY active DESC, trained_at DESC, id DESC LIMIT 1";
    if (sdb_prepare(s->db, sql, &st) != SDB_OK)
        return store_db_err(s, err, "model");
    if (name) sdb_bind_text_static(st, 1, name, -1);
    int rc = sdb_step(st);
    if (rc == SDB_ROW) {
        model_from_row(st, out);
        rc = 0;
    } else if (rc == SDB_DONE) {
        rc = name ? -1
                  : err_set(err, TAILOR_ENOTFOUND, "no trained model in %s (tailor train MODEL makes one)", sdb_name(s->db));
    } else {
        rc = store_db_err(s, err, "model");
    }
    sdb_finalize(st);
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
    sdb_stmt *st;
    if (sdb_prepare(s->db, "SELECT " MODEL_COLS " FROM models ORDER BY trained_at, id", &st) !=
        SDB_OK)
        return store_db_err(s, err, "models");
    VEC(store_model) v = {0};
    int rc;
    while ((rc = sdb_step(st)) == SDB_ROW) {
        store_model m = {0};
        model_from_row(st, &m);
        vec_push(&v, m);
    }
    sdb_finalize(st);
    if (rc != SDB_DONE) {
        store_models_free(v.data, v.len);
        return store_db_err(s, err, "models");
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
    const char *slash = strrchr(s->files, '/');
    sb p;
    sb_init(&p);
    sb_printf(&p, "%s.models/%s.tmod", slash ? slash + 1 : s->files, name);
    return sb_take(&p);
}

char *store_path_resolve(store *s, const char *file) {
    if (file[0] == '/') return xstrdup(file);
    const char *slash = strrchr(s->files, '/');
    sb p;
    sb_init(&p);
    if (slash) sb_printf(&p, "%.*s", (int)(slash - s->files + 1), s->files);
    sb_puts(&p, file);
    if (!file_exists(sb_str(&p))) {
        /* Files of older versions were relative to where one trained; the
         * model's own name still finds it beside the database. */
        const char *fs = strrchr(file, '/');
        sb q;
        sb_init(&q);
        if (slash) sb_printf(&q, "%.*s", (int)(slash - s->files + 1), s->files);
        sb_printf(&q, "%s.models/%s", slash ? slash + 1 : s->files, fs ? fs + 1 : file);
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
    sdb_stmt *st;
    if (sdb_prepare(s->db, "SELECT i.ext_id, e.value, e.ts FROM events e JOIN items i ON i.id = e.item_id"
                           " WHERE e.user_id = ?1 ORDER BY e.ts, e.id", &st) != SDB_OK)
        return store_db_err(s, err, "history");
    sdb_bind_int64(st, 1, uid);
    int step;
    rc = 0;
    while (!rc && (step = sdb_step(st)) == SDB_ROW) {
        double v = sdb_col_null(st, 1) ? NAN : sdb_col_double(st, 1);
        rc = cb(ctx, sdb_col_text(st, 0), v, sdb_col_int64(st, 2));
    }
    if (!rc && step != SDB_DONE) rc = store_db_err(s, err, "history");
    sdb_finalize(st);
    return rc;
}

int store_user_history_rows(store *s, const char *user_ext, store_history_row_fn cb, void *ctx, tailor_error *err) {
    int64_t uid;
    int rc = store_user_find(s, user_ext, &uid, err);
    if (!rc) rc = store_events_index_ensure(s, err);
    sdb_stmt *st = rc ? NULL : store_stmt(s, ST_HISTORY_ROWS, err);
    if (!st) return rc ? rc : TAILOR_EDB;
    sdb_bind_int64(st, 1, uid);
    int step;
    while (!rc && (step = sdb_step(st)) == SDB_ROW) {
        double v = sdb_col_null(st, 1) ? NAN : sdb_col_double(st, 1);
        rc = cb(ctx, sdb_col_int64(st, 0), v, sdb_col_int64(st, 2));
    }
    if (!rc && step != SDB_DONE) rc = store_db_err(s, err, "history");
    sdb_reset(st);
    return rc;
}

int store_items_each(store *s, store_item_fn cb, void *ctx, tailor_error *err) {
    sdb_stmt *st;
    if (sdb_prepare(s->db, "SELECT id, ext_id, title, text, attributes FROM items ORDER BY id", &st) != SDB_OK)
        return store_db_err(s, err, "items");
    int rc = 0, step;
    while (!rc && (step = sdb_step(st)) == SDB_ROW) {
        store_item it = {sdb_col_int64(st, 0), (char *)sdb_col_text(st, 1),
                         (char *)sdb_col_text(st, 2), (char *)sdb_col_text(st, 3),
                         (char *)sdb_col_text(st, 4)};
        rc = cb(ctx, &it);
    }
    if (!rc && step != SDB_DONE) rc = store_db_err(s, err, "items");
    sdb_finalize(st);
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
    sdb_stmt *st;
    if (sdb_prepare(s->db, "INSERT INTO sessions (user_id, created_at, updated_at) VALUES (?1, ?2, ?2)", &st) != SDB_OK)
        return store_db_err(s, err, "session");
    if (user_id) sdb_bind_int64(st, 1, user_id);
    sdb_bind_int64(st, 2, (int64_t)time(NULL));
    int rc = sdb_step(st) == SDB_DONE ? 0 : store_db_err(s, err, "new session");
    sdb_finalize(st);
    if (!rc) *id = sdb_last_id(s->db);
    return rc;
}

int store_message_add(store *s, int64_t session_id, const char *role, const char *content,
                      const char *tool_name, tailor_error *err) {
    return store_message_add_meta(s, session_id, role, content, tool_name, NULL, err);
}

int store_message_add_meta(store *s, int64_t session_id, const char *role, const char *content,
                           const char *tool_name, const char *meta, tailor_error *err) {
    sdb_stmt *st;
    if (sdb_prepare(s->db, "INSERT INTO messages (session_id, role, content, tool_name, meta, created_at)"
                           " VALUES (?1, ?2, ?3, ?4, ?5, ?6)", &st) != SDB_OK)
        return store_db_err(s, err, "message");
    int64_t now = (int64_t)time(NULL);
    sdb_bind_int64(st, 1, session_id);
    sdb_bind_text_static(st, 2, role, -1);
    sdb_bind_text_static(st, 3, content, -1);
    store_bind_text(st, 4, tool_name);
    store_bind_text(st, 5, meta);
    sdb_bind_int64(st, 6, now);
    int rc = sdb_step(st) == SDB_DONE ? 0 : store_db_err(s, err, "add message");
    sdb_finalize(st);
    if (rc) return rc;
    if (sdb_prepare(s->db, "UPDATE sessions SET updated_at = ?2 WHERE id = ?1", &st) != SDB_OK)
        return store_db_err(s, err, "session");
    sdb_bind_int64(st, 1, session_id);
    sdb_bind_int64(st, 2, now);
    rc = sdb_step(st) == SDB_DONE ? 0 : store_db_err(s, err, "touch session");
    sdb_finalize(st);
    return rc;
}

int store_session_get(store *s, int64_t id, int64_t *user_id, char **state, tailor_error *err) {
    sdb_stmt *st;
    if (state) *state = NULL;
    if (sdb_prepare(s->db, "SELECT coalesce(user_id, 0), state FROM sessions WHERE id = ?1", &st) !=
        SDB_OK)
        return store_db_err(s, err, "session");
    sdb_bind_int64(st, 1, id);
    int rc = sdb_step(st);
    if (rc == SDB_ROW) {
        if (user_id) *user_id = sdb_col_int64(st, 0);
        if (state) *state = store_col_strdup(st, 1);
        rc = 0;
    } else {
        rc = rc == SDB_DONE ? err_set(err, TAILOR_ENOTFOUND, "no session %lld in %s", (long long)id, sdb_name(s->db))
                               : store_db_err(s, err, "session");
    }
    sdb_finalize(st);
    return rc;
}

int store_session_set_state(store *s, int64_t id, const char *state, tailor_error *err) {
    sdb_stmt *st;
    if (sdb_prepare(s->db, "UPDATE sessions SET state = ?2, updated_at = ?3 WHERE id = ?1", &st) !=
        SDB_OK)
        return store_db_err(s, err, "session");
    sdb_bind_int64(st, 1, id);
    store_bind_text(st, 2, state);
    sdb_bind_int64(st, 3, (int64_t)time(NULL));
    int rc = sdb_step(st) == SDB_DONE ? 0 : store_db_err(s, err, "session state");
    sdb_finalize(st);
    return rc;
}

int64_t store_sessions_last(store *s) {
    sdb_stmt *st;
    int64_t id = 0;
    if (sdb_prepare(s->db, "SELECT coalesce(max(id), 0) FROM sessions", &st) == SDB_OK) {
        if (sdb_step(st) == SDB_ROW) id = sdb_col_int64(st, 0);
        sdb_finalize(st);
    }
    return id;
}

int store_sessions_delete_after(store *s, int64_t id, tailor_error *err) {
    sdb_stmt *st;
    if (sdb_prepare(s->db, "DELETE FROM sessions WHERE id > ?1", &st) != SDB_OK)
        return store_db_err(s, err, "sessions");
    sdb_bind_int64(st, 1, id);
    int rc = sdb_step(st) == SDB_DONE ? 0 : store_db_err(s, err, "delete sessions");
    sdb_finalize(st);
    return rc;
}

int store_fact_add(store *s, int64_t user_id, int64_t session_id, const char *kind, const char *value,
                   const char *text, tailor_error *err) {
    sdb_stmt *st;
    if (sdb_prepare(s->db, "INSERT INTO profile_facts (user_id, session_id, kind, value, text, created_at)"
                           " VALUES (?1, ?2, ?3, ?4, ?5, ?6)", &st) != SDB_OK)
        return store_db_err(s, err, "fact");
    if (user_id) sdb_bind_int64(st, 1, user_id);
    if (session_id) sdb_bind_int64(st, 2, session_id);
    sdb_bind_text_static(st, 3, kind, -1);
    sdb_bind_text_static(st, 4, value, -1);
    store_bind_text(st, 5, text);
    sdb_bind_int64(st, 6, (int64_t)time(NULL));
    int rc = sdb_step(st) == SDB_DONE ? 0 : store_db_err(s, err, "add fact");
    sdb_finalize(st);
    return rc;
}

/* Facts of the user, or (anonymous) of the session. */
#define FACTS_WHERE " WHERE (?1 <> 0 AND user_id = ?1) OR (?2 <> 0 AND session_id = ?2 AND user_id IS NULL)"

int store_facts_list(store *s, int64_t user_id, int64_t session_id, store_fact **out, size_t *n,
                     tailor_error *err) {
    *out = NULL;
    *n = 0;
    sdb_stmt *st;
    if (sdb_prepare(s->db, "SELECT id, kind, value, text, created_at FROM profile_facts" FACTS_WHERE " ORDER BY id", &st) != SDB_OK)
        return store_db_err(s, err, "facts");
    sdb_bind_int64(st, 1, user_id);
    sdb_bind_int64(st, 2, session_id);
    VEC(store_fact) v = {0};
    int rc;
    while ((rc = sdb_step(st)) == SDB_ROW) {
        store_fact f = {sdb_col_int64(st, 0), store_col_strdup(st, 1), store_col_strdup(st, 2), store_col_strdup(st, 3),
                        sdb_col_int64(st, 4)};
        vec_push(&v, f);
    }
    sdb_finalize(st);
    if (rc != SDB_DONE) {
        store_facts_free(v.data, v.len);
        return store_db_err(s, err, "facts");
    }
    *out = v.data;
    *n = v.len;
    return 0;
}

int store_facts_clear(store *s, int64_t user_id, int64_t session_id, const char *kind, int64_t *removed,
                      tailor_error *err) {
    sdb_stmt *st;
    if (sdb_prepare(s->db, "DELETE FROM profile_facts WHERE ((?1 <> 0 AND user_id = ?1) OR (?2 <> 0 AND"
                                  " session_id = ?2 AND user_id IS NULL)) AND (?3 IS NULL OR kind = ?3)", &st) != SDB_OK)
        return store_db_err(s, err, "facts");
    sdb_bind_int64(st, 1, user_id);
    sdb_bind_int64(st, 2, session_id);
    store_bind_text(st, 3, kind);
    int rc = sdb_step(st) == SDB_DONE ? 0 : store_db_err(s, err, "clear facts");
    sdb_finalize(st);
    if (!rc && removed) *removed = sdb_changes(s->db);
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
    sdb_stmt *st;
    if (sdb_prepare(s->db, "SELECT role, content, tool_name, created_at, meta FROM messages"
                           " WHERE session_id = ?1 ORDER BY id", &st) != SDB_OK)
        return store_db_err(s, err, "messages");
    sdb_bind_int64(st, 1, session_id);
    VEC(store_message) v = {0};
    int rc;
    while ((rc = sdb_step(st)) == SDB_ROW) {
        store_message m = {store_col_strdup(st, 0), store_col_strdup(st, 1), store_col_strdup(st, 2), store_col_strdup(st, 4),
                           sdb_col_int64(st, 3)};
        vec_push(&v, m);
    }
    sdb_finalize(st);
    if (rc != SDB_DONE) {
        store_messages_free(v.data, v.len);
        return store_db_err(s, err, "messages");
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
    sdb_stmt *st;
    if (sdb_prepare(s->db, sql, &st) != SDB_OK)
        return store_db_err(s, err, table);
    int rc = sdb_step(st);
    if (rc == SDB_ROW) *out = sdb_col_int64(st, 0);
    sdb_finalize(st);
    return rc == SDB_ROW ? 0 : store_db_err(s, err, table);
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
    /* Tables in name order, rows in key order (the first column), each
     * value with whether it is NULL: equal digests mean equal content,
     * whatever the page layout. */
    sdb_stmt *tables;
    const char *list = store_is_pg(s) ? "SELECT table_name FROM information_schema.tables WHERE table_schema ="
                                        " current_schema() AND table_type = 'BASE TABLE' ORDER BY 1"
                                      : "SELECT name FROM sqlite_schema WHERE type = 'table'"
                                        " AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '%\\_fts%' ESCAPE '\\'"
                                        " ORDER BY name";
    if (sdb_prepare(s->db, list, &tables) != SDB_OK)
        return store_db_err(s, err, "digest");
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    int version = store_schema_version(s);
    EVP_DigestUpdate(md, &version, sizeof version);
    int rc = 0;
    while (!rc && sdb_step(tables) == SDB_ROW) {
        const char *name = sdb_col_text(tables, 0);
        EVP_DigestUpdate(md, name, strlen(name) + 1);
        char sql[256];
        snprintf(sql, sizeof sql, "SELECT * FROM \"%s\" ORDER BY %s", name, store_is_pg(s) ? "1" : "rowid");
        sdb_stmt *rows;
        if (sdb_prepare(s->db, sql, &rows) != SDB_OK) {
            rc = store_db_err(s, err, "digest");
            break;
        }
        while (sdb_step(rows) == SDB_ROW) {
            int ncol = sdb_col_count(rows); /* PostgreSQL knows it once the statement ran */
            for (int c = 0; c < ncol; c++) {
                unsigned char null = sdb_col_null(rows, c);
                EVP_DigestUpdate(md, &null, 1);
                int len = sdb_col_bytes(rows, c);
                const void *blob = sdb_col_blob(rows, c);
                EVP_DigestUpdate(md, &len, sizeof len);
                if (blob && len) EVP_DigestUpdate(md, blob, (size_t)len);
            }
        }
        sdb_finalize(rows);
    }
    sdb_finalize(tables);
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
    sdb_stmt *st;
    if (sdb_prepare(s->db, sql, &st) != SDB_OK)
        return store_db_err(s, err, table);
    int rc;
    while ((rc = sdb_step(st)) == SDB_ROW) {
        const char *k = sdb_col_text(st, 0);
        hmap_put(m, k, (size_t)sdb_col_bytes(st, 0), sdb_col_int64(st, 1));
    }
    sdb_finalize(st);
    return rc == SDB_DONE ? 0 : store_db_err(s, err, table);
}

/* ---- search ------------------------------------------------------------ */

/* The words of free text as an FTS5 query (or PostgreSQL's tsquery): each
 * one quoted (so that no character of the user's text is query syntax),
 * any of them matching; bm25 (ts_rank) ranks rows with more and rarer
 * words higher. */
static bool search_query(const char *text, bool pg, sb *q) {
    const unsigned char *p = (const unsigned char *)text;
    bool any = false;
    while (*p) {
        while (*p && *p < 0x80 && !((*p >= '0' && *p <= '9') || ((*p | 32) >= 'a' && (*p | 32) <= 'z'))) p++;
        const unsigned char *w = p;
        while (*p && (*p >= 0x80 || (*p >= '0' && *p <= '9') || ((*p | 32) >= 'a' && (*p | 32) <= 'z'))) p++;
        if (p == w) continue;
        if (pg) sb_printf(q, "%s'%.*s'", any ? " | " : "", (int)(p - w), (const char *)w);
        else sb_printf(q, "%s\"%.*s\"", any ? " OR " : "", (int)(p - w), (const char *)w);
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
    if (!search_query(text, store_is_pg(s), &q)) {
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
    /* PostgreSQL: the generated tsvectors (title A, text B: A weighs 1.0,
     * B 0.5). */
    static const char *const sql_pg[2] = {
        "SELECT id, ts_rank('{0.1, 0.2, 0.5, 1.0}', fts, to_tsquery('simple', ?1)) FROM items"
        " WHERE fts @@ to_tsquery('simple', ?1)",
        "SELECT item_id, max(ts_rank(fts, to_tsquery('simple', ?1))), count(*) FROM tags"
        " WHERE fts @@ to_tsquery('simple', ?1) GROUP BY item_id",
    };
    hmap at;
    hmap_init(&at, 64);
    VEC(store_hit) hits = {0};
    int rc = 0;
    for (int pass = 0; pass < 2 && !rc; pass++) {
        sdb_stmt *st;
        if (sdb_prepare(s->db, store_is_pg(s) ? sql_pg[pass] : sql[pass], &st) != SDB_OK) {
            rc = store_db_err(s, err, "search");
            break;
        }
        sdb_bind_text_static(st, 1, sb_str(&q), -1);
        int step;
        while ((step = sdb_step(st)) == SDB_ROW) {
            int64_t id = sdb_col_int64(st, 0), slot;
            double score = sdb_col_double(st, 1);
            if (pass == 1) score *= 0.5 * (1 + log((double)sdb_col_int64(st, 2)));
            if (hmap_get(&at, (const char *)&id, sizeof id, &slot)) {
                hits.data[slot].score += score;
            } else {
                hmap_put(&at, (const char *)&id, sizeof id, (int64_t)hits.len);
                store_hit h = {id, score};
                vec_push(&hits, h);
            }
        }
        if (step != SDB_DONE) rc = store_db_err(s, err, "search");
        sdb_finalize(st);
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
