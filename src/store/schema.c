/* schema.c — the schema as an ordered list of migrations.
 * Migration N takes a database at user_version N-1 to N. Never edit a
 * migration that has shipped: add a new one at the end (for SQLite, and
 * for PostgreSQL after PG_SCHEMA_6). Each runs inside the transaction that
 * store_open opens for it. */
#include "store/store_internal.h"

static const char *const MIGRATION_1 =
    /* Catalogue and people. attributes: a JSON object (checked). */
    "CREATE TABLE items ("
    "  id INTEGER PRIMARY KEY,"
    "  ext_id TEXT NOT NULL UNIQUE,"
    "  title TEXT,"
    "  text TEXT,"
    "  attributes TEXT CHECK (attributes IS NULL OR json_valid(attributes))"
    ");"
    "CREATE TABLE users ("
    "  id INTEGER PRIMARY KEY,"
    "  ext_id TEXT NOT NULL UNIQUE,"
    "  attributes TEXT CHECK (attributes IS NULL OR json_valid(attributes))"
    ");"
    "CREATE TABLE event_kinds ("
    "  id INTEGER PRIMARY KEY,"
    "  name TEXT NOT NULL UNIQUE"
    ");"
    "INSERT INTO event_kinds (id, name) VALUES"
    "  (1, 'view'), (2, 'click'), (3, 'rating'), (4, 'purchase'), (5, 'interaction');"
    /* Interactions; ts is unix seconds (or a position for sequence data). */
    "CREATE TABLE events ("
    "  id INTEGER PRIMARY KEY,"
    "  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    "  item_id INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE,"
    "  kind INTEGER NOT NULL REFERENCES event_kinds(id),"
    "  value REAL,"
    "  ts INTEGER NOT NULL"
    ");"
    /* No secondary index on events here: the event log is append-only and
     * views scan it in rowid order. The (user, item, kind) index that
     * duplicate checks and per-user look-ups need is built on demand
     * (store_events_index_ensure) and dropped by bulk loads. */
    "CREATE TABLE tags ("
    "  id INTEGER PRIMARY KEY,"
    "  user_id INTEGER REFERENCES users(id) ON DELETE CASCADE,"
    "  item_id INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE,"
    "  tag TEXT NOT NULL,"
    "  ts INTEGER"
    ");"
    "CREATE INDEX tags_item ON tags (item_id);"
    "CREATE INDEX tags_user ON tags (user_id);"
    /* Knowledge graph: entities are free strings; source says who asserted
     * the fact (an importer, or an LLM completion with its confidence). */
    "CREATE TABLE kg_triples ("
    "  id INTEGER PRIMARY KEY,"
    "  head TEXT NOT NULL,"
    "  relation TEXT NOT NULL,"
    "  tail TEXT NOT NULL,"
    "  source TEXT NOT NULL DEFAULT 'import',"
    "  confidence REAL NOT NULL DEFAULT 1.0 CHECK (confidence >= 0 AND confidence <= 1),"
    "  UNIQUE (head, relation, tail)"
    ");"
    "CREATE INDEX kg_tail ON kg_triples (tail, relation);"
    /* Conversations and their messages. */
    "CREATE TABLE sessions ("
    "  id INTEGER PRIMARY KEY,"
    "  user_id INTEGER REFERENCES users(id) ON DELETE SET NULL,"
    "  created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL,"
    "  summary TEXT"
    ");"
    "CREATE INDEX sessions_user ON sessions (user_id);"
    "CREATE TABLE messages ("
    "  id INTEGER PRIMARY KEY,"
    "  session_id INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,"
    "  role TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant', 'tool')),"
    "  content TEXT NOT NULL,"
    "  tool_name TEXT,"
    "  created_at INTEGER NOT NULL"
    ");"
    "CREATE INDEX messages_session ON messages (session_id, id);"
    /* Trained models: the file holds the weights, the row what they are. */
    "CREATE TABLE models ("
    "  id INTEGER PRIMARY KEY,"
    "  name TEXT NOT NULL UNIQUE,"
    "  kind TEXT NOT NULL,"
    "  params TEXT CHECK (params IS NULL OR json_valid(params)),"
    "  metrics TEXT CHECK (metrics IS NULL OR json_valid(metrics)),"
    "  file TEXT,"
    "  trained_at INTEGER NOT NULL"
    ");";

/* Version 2: full-text search over item titles and texts (search tools and
 * the agent need it), kept in sync by triggers. Items without any text
 * (those that event logs create) skip the index: deleting tokens of NULL
 * columns is a no-op for FTS5, so the other triggers need no condition. */
static const char *const MIGRATION_2 =
    "CREATE VIRTUAL TABLE items_fts USING fts5("
    "  title, text, content='items', content_rowid='id');"
    "CREATE TRIGGER items_fts_ai AFTER INSERT ON items"
    "  WHEN new.title IS NOT NULL OR new.text IS NOT NULL BEGIN"
    "  INSERT INTO items_fts (rowid, title, text) VALUES (new.id, new.title, new.text);"
    "END;"
    "CREATE TRIGGER items_fts_ad AFTER DELETE ON items BEGIN"
    "  INSERT INTO items_fts (items_fts, rowid, title, text)"
    "    VALUES ('delete', old.id, old.title, old.text);"
    "END;"
    "CREATE TRIGGER items_fts_au AFTER UPDATE OF title, text ON items BEGIN"
    "  INSERT INTO items_fts (items_fts, rowid, title, text)"
    "    VALUES ('delete', old.id, old.title, old.text);"
    "  INSERT INTO items_fts (rowid, title, text) VALUES (new.id, new.title, new.text);"
    "END;"
    "INSERT INTO items_fts (items_fts) VALUES ('rebuild');";

/* Version 3.
 * - Every item is in the text index, with or without text. Version 2 left
 *   untitled items out, but its update trigger deleted their index row all
 *   the same, which corrupts FTS5's totals: giving a title to an item that
 *   an event log created failed with "database disk image is malformed".
 *   Indexing every row keeps the three triggers unconditional and the
 *   index equal to what 'rebuild' makes, which also repairs old files.
 * - Tags get their own index, so that search finds items by their tags.
 * - Models: which one is active (the one served unless a command names
 *   another; at most one, by a partial unique index), and the results of
 *   their last evaluation. The newest model of an older file becomes the
 *   active one, which is what commands used before. */
static const char *const MIGRATION_3 =
    "DROP TRIGGER items_fts_ai;"
    "CREATE TRIGGER items_fts_ai AFTER INSERT ON items BEGIN"
    "  INSERT INTO items_fts (rowid, title, text) VALUES (new.id, new.title, new.text);"
    "END;"
    "INSERT INTO items_fts (items_fts) VALUES ('rebuild');"
    "CREATE VIRTUAL TABLE tags_fts USING fts5(tag, content='tags', content_rowid='id');"
    "CREATE TRIGGER tags_fts_ai AFTER INSERT ON tags BEGIN"
    "  INSERT INTO tags_fts (rowid, tag) VALUES (new.id, new.tag);"
    "END;"
    "CREATE TRIGGER tags_fts_ad AFTER DELETE ON tags BEGIN"
    "  INSERT INTO tags_fts (tags_fts, rowid, tag) VALUES ('delete', old.id, old.tag);"
    "END;"
    "CREATE TRIGGER tags_fts_au AFTER UPDATE OF tag ON tags BEGIN"
    "  INSERT INTO tags_fts (tags_fts, rowid, tag) VALUES ('delete', old.id, old.tag);"
    "  INSERT INTO tags_fts (rowid, tag) VALUES (new.id, new.tag);"
    "END;"
    "INSERT INTO tags_fts (tags_fts) VALUES ('rebuild');"
    /* Duplicate checks of tag imports look up (item, user, tag). */
    "DROP INDEX tags_item;"
    "CREATE INDEX tags_item ON tags (item_id, user_id, tag);"
    "ALTER TABLE models ADD COLUMN active INTEGER NOT NULL DEFAULT 0 CHECK (active IN (0, 1));"
    "ALTER TABLE models ADD COLUMN evaluation TEXT"
    "  CHECK (evaluation IS NULL OR json_valid(evaluation));"
    "CREATE UNIQUE INDEX models_active ON models (active) WHERE active = 1;"
    "UPDATE models SET active = 1 WHERE id ="
    "  (SELECT id FROM models ORDER BY trained_at DESC, id DESC LIMIT 1);";

/* Version 4: what the agent remembers. Profile facts are what a person
 * said of their taste — liked and disliked items, standing constraints
 * ("no horror") — kept for the user (every later session) or, for an
 * anonymous session, for that session; the agent applies constraints in
 * code on every recommendation. A session keeps a small JSON state between
 * turns (the last results, for "more" and "why"); a message keeps its
 * details (a tool call's arguments and time, an answer's items). */
static const char *const MIGRATION_4 =
    "CREATE TABLE profile_facts ("
    "  id INTEGER PRIMARY KEY,"
    "  user_id INTEGER REFERENCES users(id) ON DELETE CASCADE,"
    "  session_id INTEGER REFERENCES sessions(id) ON DELETE CASCADE,"
    "  kind TEXT NOT NULL CHECK (kind IN ('like', 'dislike', 'constraint')),"
    "  value TEXT NOT NULL,"
    "  text TEXT,"
    "  created_at INTEGER NOT NULL,"
    "  CHECK (user_id IS NOT NULL OR session_id IS NOT NULL)"
    ");"
    "CREATE INDEX facts_user ON profile_facts (user_id);"
    "CREATE INDEX facts_session ON profile_facts (session_id);"
    "ALTER TABLE sessions ADD COLUMN state TEXT CHECK (state IS NULL OR json_valid(state));"
    "ALTER TABLE messages ADD COLUMN meta TEXT CHECK (meta IS NULL OR json_valid(meta));";

/* Version 5: what the server needs.
 * - API keys: only a SHA-256 of each key is kept (keys are 192 random
 *   bits, so no salt or slow hash is needed); the prefix is what lists
 *   show. A user key speaks for one user (by external id: the user may not
 *   exist until its first event); rate is requests per second (0: none).
 * - Client event ids: a retried POST of an event with the same id (per
 *   user) is recognised and not stored twice.
 * - The on-demand events index gains ts and value, so that it covers a
 *   user's history; dropping it here lets the next use build it so. */
static const char *const MIGRATION_5 =
    "CREATE TABLE api_keys ("
    "  id INTEGER PRIMARY KEY,"
    "  name TEXT,"
    "  role TEXT NOT NULL CHECK (role IN ('admin', 'user')),"
    "  user_ext TEXT,"
    "  prefix TEXT NOT NULL,"
    "  hash BLOB NOT NULL UNIQUE,"
    "  rate REAL NOT NULL DEFAULT 0 CHECK (rate >= 0),"
    "  created_at INTEGER NOT NULL,"
    "  revoked_at INTEGER,"
    "  CHECK (role = 'admin' OR user_ext IS NOT NULL)"
    ");"
    "CREATE TABLE event_ids ("
    "  id INTEGER PRIMARY KEY,"
    "  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    "  client_id TEXT NOT NULL,"
    "  UNIQUE (user_id, client_id)"
    ");"
    "DROP INDEX IF EXISTS events_user_item;";

/* Version 6: which knowledge-graph entities are catalogue items (an
 * imported graph names its entities its own way: KGCN's numbers, Freebase
 * ids; the catalogue's derived triples use "item:ID"). Triples gain an
 * accepted flag: a fact a model proposed waits (0) until it is accepted;
 * imported and derived facts are accepted. */
static const char *const MIGRATION_6 =
    "CREATE TABLE kg_items ("
    "  entity TEXT PRIMARY KEY,"
    "  item_id INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE"
    ");"
    "CREATE INDEX kg_items_item ON kg_items (item_id);"
    "ALTER TABLE kg_triples ADD COLUMN accepted INTEGER NOT NULL DEFAULT 1 CHECK (accepted IN (0, 1));";

static const char *const MIGRATIONS[] = {MIGRATION_1, MIGRATION_2, MIGRATION_3, MIGRATION_4, MIGRATION_5, MIGRATION_6};
_Static_assert(sizeof MIGRATIONS / sizeof MIGRATIONS[0] == STORE_SCHEMA_VERSION,
               "one migration per schema version");

/* The events' foreign keys, named so that a bulk load can drop them and
 * add them back (one pass over the table instead of a check per row). */
#define PG_EVENTS_FKS \
    "ALTER TABLE events ADD CONSTRAINT events_user_fk FOREIGN KEY (user_id) REFERENCES users(id) ON DELETE CASCADE," \
    " ADD CONSTRAINT events_item_fk FOREIGN KEY (item_id) REFERENCES items(id) ON DELETE CASCADE," \
    " ADD CONSTRAINT events_kind_fk FOREIGN KEY (kind) REFERENCES event_kinds(id)"

/* PostgreSQL: the schema of version 6 in one piece (PostgreSQL came with
 * version 6; versions after it add a migration for each engine). Row ids
 * are identity columns; JSON columns are checked by a cast; full-text
 * search is a generated tsvector (title weighs A, text B; tags their own)
 * with a GIN index, where SQLite has FTS5 tables and triggers. */
static const char *const PG_SCHEMA_6 =
    "CREATE TABLE tailor_schema (version INTEGER NOT NULL);"
    "CREATE TABLE items ("
    "  id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
    "  ext_id TEXT NOT NULL UNIQUE,"
    "  title TEXT,"
    "  text TEXT,"
    "  attributes TEXT CHECK (attributes IS NULL OR attributes::jsonb IS NOT NULL),"
    "  fts tsvector GENERATED ALWAYS AS (setweight(to_tsvector('simple', coalesce(title, '')), 'A') ||"
    "    setweight(to_tsvector('simple', coalesce(text, '')), 'B')) STORED"
    ");"
    "CREATE INDEX items_fts ON items USING GIN (fts);"
    "CREATE TABLE users ("
    "  id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
    "  ext_id TEXT NOT NULL UNIQUE,"
    "  attributes TEXT CHECK (attributes IS NULL OR attributes::jsonb IS NOT NULL)"
    ");"
    "CREATE TABLE event_kinds ("
    "  id BIGINT GENERATED BY DEFAULT AS IDENTITY (START WITH 6) PRIMARY KEY,"
    "  name TEXT NOT NULL UNIQUE"
    ");"
    "INSERT INTO event_kinds (id, name) VALUES"
    "  (1, 'view'), (2, 'click'), (3, 'rating'), (4, 'purchase'), (5, 'interaction');"
    "CREATE TABLE events ("
    "  id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
    "  user_id BIGINT NOT NULL,"
    "  item_id BIGINT NOT NULL,"
    "  kind BIGINT NOT NULL,"
    "  value DOUBLE PRECISION,"
    "  ts BIGINT NOT NULL"
    ");"
    PG_EVENTS_FKS ";"
    "CREATE TABLE tags ("
    "  id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
    "  user_id BIGINT REFERENCES users(id) ON DELETE CASCADE,"
    "  item_id BIGINT NOT NULL REFERENCES items(id) ON DELETE CASCADE,"
    "  tag TEXT NOT NULL,"
    "  ts BIGINT,"
    "  fts tsvector GENERATED ALWAYS AS (to_tsvector('simple', tag)) STORED"
    ");"
    "CREATE INDEX tags_item ON tags (item_id, user_id, tag);"
    "CREATE INDEX tags_user ON tags (user_id);"
    "CREATE INDEX tags_fts ON tags USING GIN (fts);"
    "CREATE TABLE kg_triples ("
    "  id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
    "  head TEXT NOT NULL,"
    "  relation TEXT NOT NULL,"
    "  tail TEXT NOT NULL,"
    "  source TEXT NOT NULL DEFAULT 'import',"
    "  confidence DOUBLE PRECISION NOT NULL DEFAULT 1.0 CHECK (confidence >= 0 AND confidence <= 1),"
    "  accepted INTEGER NOT NULL DEFAULT 1 CHECK (accepted IN (0, 1)),"
    "  UNIQUE (head, relation, tail)"
    ");"
    "CREATE INDEX kg_tail ON kg_triples (tail, relation);"
    "CREATE TABLE sessions ("
    "  id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
    "  user_id BIGINT REFERENCES users(id) ON DELETE SET NULL,"
    "  created_at BIGINT NOT NULL,"
    "  updated_at BIGINT NOT NULL,"
    "  summary TEXT,"
    "  state TEXT CHECK (state IS NULL OR state::jsonb IS NOT NULL)"
    ");"
    "CREATE INDEX sessions_user ON sessions (user_id);"
    "CREATE TABLE messages ("
    "  id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
    "  session_id BIGINT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,"
    "  role TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant', 'tool')),"
    "  content TEXT NOT NULL,"
    "  tool_name TEXT,"
    "  created_at BIGINT NOT NULL,"
    "  meta TEXT CHECK (meta IS NULL OR meta::jsonb IS NOT NULL)"
    ");"
    "CREATE INDEX messages_session ON messages (session_id, id);"
    "CREATE TABLE models ("
    "  id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
    "  name TEXT NOT NULL UNIQUE,"
    "  kind TEXT NOT NULL,"
    "  params TEXT CHECK (params IS NULL OR params::jsonb IS NOT NULL),"
    "  metrics TEXT CHECK (metrics IS NULL OR metrics::jsonb IS NOT NULL),"
    "  file TEXT,"
    "  trained_at BIGINT NOT NULL,"
    "  active INTEGER NOT NULL DEFAULT 0 CHECK (active IN (0, 1)),"
    "  evaluation TEXT CHECK (evaluation IS NULL OR evaluation::jsonb IS NOT NULL)"
    ");"
    "CREATE UNIQUE INDEX models_active ON models (active) WHERE active = 1;"
    "CREATE TABLE profile_facts ("
    "  id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
    "  user_id BIGINT REFERENCES users(id) ON DELETE CASCADE,"
    "  session_id BIGINT REFERENCES sessions(id) ON DELETE CASCADE,"
    "  kind TEXT NOT NULL CHECK (kind IN ('like', 'dislike', 'constraint')),"
    "  value TEXT NOT NULL,"
    "  text TEXT,"
    "  created_at BIGINT NOT NULL,"
    "  CHECK (user_id IS NOT NULL OR session_id IS NOT NULL)"
    ");"
    "CREATE INDEX facts_user ON profile_facts (user_id);"
    "CREATE INDEX facts_session ON profile_facts (session_id);"
    "CREATE TABLE api_keys ("
    "  id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
    "  name TEXT,"
    "  role TEXT NOT NULL CHECK (role IN ('admin', 'user')),"
    "  user_ext TEXT,"
    "  prefix TEXT NOT NULL,"
    "  hash BYTEA NOT NULL UNIQUE,"
    "  rate DOUBLE PRECISION NOT NULL DEFAULT 0 CHECK (rate >= 0),"
    "  created_at BIGINT NOT NULL,"
    "  revoked_at BIGINT,"
    "  CHECK (role = 'admin' OR user_ext IS NOT NULL)"
    ");"
    "CREATE TABLE event_ids ("
    "  id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
    "  user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    "  client_id TEXT NOT NULL,"
    "  UNIQUE (user_id, client_id)"
    ");"
    "CREATE TABLE kg_items ("
    "  entity TEXT PRIMARY KEY,"
    "  item_id BIGINT NOT NULL REFERENCES items(id) ON DELETE CASCADE"
    ");"
    "CREATE INDEX kg_items_item ON kg_items (item_id);"
    "INSERT INTO tailor_schema (version) VALUES (6);";

/* The lock two servers starting at once take before migrating: the second
 * waits, then finds the schema done. */
#define PG_MIGRATION_LOCK "SELECT pg_advisory_xact_lock(7391842265)"

static int migrate_pg(store *s, int target, tailor_error *err) {
    if (target != STORE_SCHEMA_VERSION)
        return err_set(err, TAILOR_EUNSUPPORTED, "%s: PostgreSQL stores start at schema version %d", sdb_name(s->db),
                       STORE_SCHEMA_VERSION);
    int rc = store_begin(s, err);
    if (rc) return rc;
    rc = store_exec(s, PG_MIGRATION_LOCK, err);
    int have = rc ? -1 : store_schema_version(s);
    if (!rc && have > STORE_SCHEMA_VERSION)
        rc = err_set(err, TAILOR_EUNSUPPORTED,
                     "%s: schema version %d is newer than this tailor understands (%d); upgrade tailor",
                     sdb_name(s->db), have, STORE_SCHEMA_VERSION);
    else if (!rc && have < 0)
        rc = err_set(err, TAILOR_EDB, "%s: cannot read the schema version: %s", sdb_name(s->db), sdb_errmsg(s->db));
    if (!rc && have == 0) {
        rc = store_exec(s, PG_SCHEMA_6, err);
        if (rc) err_prefix(err, "%s: creating the schema (version %d) failed", sdb_name(s->db), STORE_SCHEMA_VERSION);
        else log_info("%s: created the schema (version %d)", sdb_name(s->db), STORE_SCHEMA_VERSION);
    }
    if (!rc) rc = store_commit(s, err);
    if (rc) store_rollback(s);
    return rc;
}

int store_migrate(store *s, int target, tailor_error *err) {
    if (store_is_pg(s)) return migrate_pg(s, target, err);
    int have = store_schema_version(s);
    if (have > STORE_SCHEMA_VERSION)
        return err_set(err, TAILOR_EUNSUPPORTED,
                       "%s: schema version %d is newer than this tailor understands (%d); "
                       "upgrade tailor",
                       s->path, have, STORE_SCHEMA_VERSION);
    for (int v = have + 1; v <= target; v++) {
        int rc = store_begin(s, err);
        if (rc) return rc;
        /* Another process may have migrated while this one waited for the
         * write lock (two servers starting on a new file): read again. */
        if (store_schema_version(s) >= v) {
            rc = store_commit(s, err);
            if (rc) return rc;
            continue;
        }
        rc = store_exec(s, MIGRATIONS[v - 1], err);
        if (!rc) {
            char sql[64];
            snprintf(sql, sizeof sql, "PRAGMA user_version = %d", v);
            rc = store_exec(s, sql, err);
        }
        if (!rc) rc = store_commit(s, err);
        if (rc) {
            store_rollback(s);
            err_prefix(err, "%s: migration to schema version %d failed", s->path, v);
            return rc;
        }
        log_info("%s: migrated schema to version %d", s->path, v);
    }
    return 0;
}

int store_events_index_ensure(store *s, tailor_error *err) {
    if (s->events_indexed) return 0;
    /* ts and value make it cover a user's history (what serving reads per
     * request) without a look-up of each event's row. */
    int rc = store_exec(s, "CREATE INDEX IF NOT EXISTS events_user_item ON events (user_id, item_id, kind, ts, value)",
                        err);
    if (!rc) s->events_indexed = true;
    return rc;
}

int store_events_bulk_begin(store *s, tailor_error *err) {
    /* Per-row foreign-key checks cost two b-tree look-ups per event; the
     * bulk loader takes its ids from maps of existing rows instead.
     * (PostgreSQL keeps them: turning them off needs a superuser.) */
    if (store_is_pg(s)) return 0;
    return store_exec(s, "PRAGMA foreign_keys = OFF", err);
}

int store_events_bulk_drop_indexes(store *s, tailor_error *err) {
    int rc = store_exec(s, "DROP INDEX IF EXISTS events_user_item", err);
    if (!rc) s->events_indexed = false;
    /* PostgreSQL: the foreign keys and the primary key too (a check and
     * an index insertion per row otherwise); they come back before the
     * commit, checked and built in one pass each (a sort instead of 1M
     * b-tree descents: 0.4 s instead of 1.3 s per million events). The
     * table is locked for the transaction. */
    if (!rc && store_is_pg(s))
        rc = store_exec(s, "ALTER TABLE events DROP CONSTRAINT events_user_fk, DROP CONSTRAINT events_item_fk,"
                           " DROP CONSTRAINT events_kind_fk, DROP CONSTRAINT events_pkey", err);
    if (!rc && store_is_pg(s)) s->fks_dropped = true;
    return rc;
}

int store_events_bulk_restore(store *s, tailor_error *err) {
    if (!s->fks_dropped) return 0;
    int rc = store_exec(s, "ALTER TABLE events ADD CONSTRAINT events_pkey PRIMARY KEY (id)", err);
    if (!rc) rc = store_exec(s, PG_EVENTS_FKS, err);
    if (!rc) s->fks_dropped = false;
    return rc;
}

void store_events_bulk_finish(store *s) {
    s->fks_dropped = false; /* committed back, or rolled back with the drop */
    if (!store_is_pg(s)) store_exec(s, "PRAGMA foreign_keys = ON", NULL);
    /* A rolled-back drop brings the index back. */
    s->events_indexed = store_has_events_index(s);
}

int store_events_max_ts(store *s, int64_t *out, tailor_error *err) {
    sdb_stmt *st;
    *out = 0;
    if (sdb_prepare(s->db, "SELECT coalesce(max(ts), 0) FROM events", &st) != SDB_OK)
        return store_db_err(s, err, "events");
    int rc = sdb_step(st);
    if (rc == SDB_ROW) *out = sdb_col_int64(st, 0);
    sdb_finalize(st);
    return rc == SDB_ROW ? 0 : store_db_err(s, err, "events");
}

int64_t store_events_count(store *s) {
    /* max(rowid) is O(log n), unlike count(*); good enough to decide
     * whether a load is bulk. */
    sdb_stmt *st;
    int64_t n = 0;
    if (sdb_prepare(s->db, "SELECT max(id) FROM events", &st) == SDB_OK) {
        if (sdb_step(st) == SDB_ROW) n = sdb_col_int64(st, 0);
        sdb_finalize(st);
    }
    return n;
}

bool store_has_events_index(store *s) {
    sdb_stmt *st;
    bool has = false;
    const char *sql = store_is_pg(s) ? "SELECT 1 FROM pg_indexes WHERE schemaname = current_schema()"
                                       " AND indexname = 'events_user_item'"
                                     : "SELECT 1 FROM sqlite_schema WHERE type = 'index' AND name = 'events_user_item'";
    if (sdb_prepare(s->db, sql, &st) == SDB_OK) {
        has = sdb_step(st) == SDB_ROW;
        sdb_finalize(st);
    }
    return has;
}
