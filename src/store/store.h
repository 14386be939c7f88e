/* store.h — the persistent store: schema, migrations, typed access, and
 * the in-memory views that models train on, over SQLite (a file) or
 * PostgreSQL (a postgresql:// URL; src/store/db.h).
 *
 * Owns the database connection and every SQL statement in tailor; no other
 * module writes SQL. Internal ids are row ids (INTEGER PRIMARY KEY); external
 * ids are the strings the data came with. Views use dense 0-based indexes.
 * Writes happen inside store_begin/store_commit so that a failed import
 * rolls back to exactly the state before it.
 */
#ifndef TAILOR_STORE_H
#define TAILOR_STORE_H

#include "base/base.h"

typedef struct tailor_store store;

/* The schema version this build creates and migrates to. */
#define STORE_SCHEMA_VERSION 6

typedef struct store_params {
    int target_version; /* migrate up to this version; 0 = latest (tests use older) */
    bool read_only;
} store_params;

store_params store_default_params(void);
/* Whether target names a PostgreSQL database (postgresql://..., or a
 * libpq "host=... dbname=..." string) rather than a SQLite file. */
bool store_is_url(const char *target);
/* Where a store's files live, as a path prefix (malloc'd): its models are
 * in PREFIX.models/, its vector index in PREFIX.index/, its reports in
 * PREFIX.reports/. SQLite: the database file's own path (the files sit
 * beside it). PostgreSQL: $TAILOR_FILES/NAME, NAME the database's name and
 * TAILOR_FILES a folder every server of the database shares (default
 * ./tailor-files). */
char *store_files_base(const char *target);
int store_open(const char *path, store_params params, store **out, tailor_error *err);
void store_close(store *s);
/* The connection (src/store/db.h: tests look into the tables with it). */
struct sdb *store_db(store *s);
int store_schema_version(store *s);

/* Transactions: one level; store_rollback is safe to call after errors. */
int store_begin(store *s, tailor_error *err);
int store_commit(store *s, tailor_error *err);
void store_rollback(store *s);
/* Every commit from now on survives a power cut, not only a crash (SQLite:
 * synchronous = FULL; PostgreSQL commits are so already). */
int store_durable_commits(store *s, tailor_error *err);
/* Runs a statement without results (DDL, pragmas). */
int store_exec(store *s, const char *sql, tailor_error *err);

/* What to do when a row with the same key exists. */
typedef enum store_dup_policy {
    STORE_DUP_ERROR = 0, /* stop the import with an error */
    STORE_DUP_SKIP,      /* keep the existing row */
    STORE_DUP_REPLACE,   /* overwrite with the new row */
    STORE_DUP_KEEP,      /* store both (events only) */
} store_dup_policy;

/* Parses "error|skip|replace|keep". Returns false when unknown. */
bool store_dup_policy_parse(const char *s, store_dup_policy *out);
const char *store_dup_policy_name(store_dup_policy p);

/* ---- typed access ------------------------------------------------------ */

/* Id lookups by external id. Return TAILOR_ENOTFOUND when absent. */
int store_user_find(store *s, const char *ext_id, int64_t *id, tailor_error *err);
int store_item_find(store *s, const char *ext_id, int64_t *id, tailor_error *err);

/* Inserts a user/item. With STORE_DUP_ERROR an existing ext_id is
 * TAILOR_EEXISTS; SKIP returns the existing id untouched; REPLACE updates
 * the non-NULL columns given. attributes: a JSON text or NULL. *id (may be
 * NULL) receives the row id. *inserted (may be NULL) says whether a new row
 * was created. */
int store_user_put(store *s, const char *ext_id, const char *attributes,
                   store_dup_policy dup, int64_t *id, bool *inserted, tailor_error *err);
int store_item_put(store *s, const char *ext_id, const char *title, const char *text,
                   const char *attributes, store_dup_policy dup, int64_t *id,
                   bool *inserted, tailor_error *err);

/* Adds a user/item the caller knows to be new (importers keep a map of
 * stored ids); an existing ext_id is TAILOR_EEXISTS. ext_id need not be
 * NUL-terminated. */
int store_user_add(store *s, const char *ext_id, size_t len, const char *attributes,
                   int64_t *id, tailor_error *err);
int store_item_add(store *s, const char *ext_id, size_t len, const char *title,
                   const char *text, const char *attributes, int64_t *id, tailor_error *err);

/* Event kinds are a small lookup table (view, click, rating, purchase,
 * interaction are built in). With create, unknown names are added. */
int store_kind_id(store *s, const char *name, bool create, int64_t *id, tailor_error *err);

typedef struct store_event {
    int64_t user_id, item_id, kind;
    double value;
    bool has_value;
    int64_t ts;
} store_event;

/* Appends an event; the caller has checked the ids (imports use their own
 * id maps). */
int store_event_add(store *s, const store_event *ev, tailor_error *err);
/* Appends n events; full batches of STORE_EVENT_BATCH go through one
 * multi-row INSERT (per-statement overhead dominates single-row inserts). */
#define STORE_EVENT_BATCH 64
/* On PostgreSQL the n events go in one COPY; importers hand over this many
 * at once. */
#define STORE_EVENT_FLUSH 32768
int store_events_add(store *s, const store_event *evs, size_t n, tailor_error *err);
/* The (user, item, kind) index on events is built on demand: duplicate
 * checks and per-user look-ups call store_events_index_ensure first (a
 * no-op once built). */
int store_events_index_ensure(store *s, tailor_error *err);

/* Bulk loading of events: store_events_bulk_begin (before store_begin)
 * turns off per-row foreign-key checks (the caller guarantees its ids exist:
 * the importers take them from maps of existing rows);
 * store_events_bulk_drop_indexes (inside the transaction) drops the events
 * index so appends stay sequential (PostgreSQL: and the events' foreign
 * keys, which store_events_bulk_restore adds back, checked in one pass,
 * before the commit). store_events_bulk_finish restores the rest after the
 * transaction ends, whether it committed or not. */
int store_events_bulk_begin(store *s, tailor_error *err);
int store_events_bulk_drop_indexes(store *s, tailor_error *err);
int store_events_bulk_restore(store *s, tailor_error *err);
void store_events_bulk_finish(store *s);
/* The newest event time (0 when there are no events); a scan. */
int store_events_max_ts(store *s, int64_t *out, tailor_error *err);
/* An estimate of the number of stored events (max rowid). */
int64_t store_events_count(store *s);

/* Whether each look-up costs a round trip to a server (PostgreSQL): an
 * import into an empty events table then checks duplicates in memory and
 * hands events over in batches. */
bool store_lookups_remote(const store *s);
/* Whether an event with ev's (user, item, kind) is stored, and removal of
 * all such events (the replace policy). */
int store_event_find(store *s, const store_event *ev, bool *found, tailor_error *err);
int store_event_delete_same(store *s, const store_event *ev, tailor_error *err);
/* The same for n keys at once (PostgreSQL: one statement). */
int store_events_delete_same(store *s, const store_event *keys, size_t n, tailor_error *err);
/* Every stored event's (user, item, kind): cb(ctx, ...) for each; a
 * non-zero return stops the walk. */
typedef int (*store_event_key_fn)(void *ctx, int64_t user_id, int64_t item_id, int64_t kind);
int store_events_keys_each(store *s, store_event_key_fn cb, void *ctx, tailor_error *err);

/* A tag is one (user, item, tag) row: under ERROR an existing one is
 * TAILOR_EEXISTS, SKIP keeps it, REPLACE takes the new time, KEEP stores
 * both. *inserted (may be NULL) says whether a row was added. */
int store_tag_add(store *s, int64_t user_id /* 0 = none */, int64_t item_id, const char *tag,
                  int64_t ts, store_dup_policy dup, bool *inserted, tailor_error *err);
int store_kg_add(store *s, const char *head, const char *relation, const char *tail,
                 const char *source, double confidence, store_dup_policy dup, bool *inserted,
                 tailor_error *err);

typedef struct store_item {
    int64_t id;
    char *ext_id, *title, *text, *attributes; /* malloc'd; NULL when absent */
} store_item;
int store_item_get(store *s, int64_t id, store_item *out, tailor_error *err);
void store_item_deinit(store_item *it);

/* Models: one row per trained model. One model is active (what commands
 * and the server serve unless told otherwise) whenever any exists. */
typedef struct store_model {
    char *name, *kind, *params, *metrics, *file; /* malloc'd */
    char *evaluation; /* JSON of the last evaluation, or NULL */
    int64_t trained_at; /* unix seconds */
    bool active;
} store_model;
/* Inserts or replaces the row named m->name (a replaced row keeps its
 * active flag and loses its evaluation). activate: make it the active
 * model; the first model of a store becomes active anyway. m->file is
 * relative to the database's folder (store_model_relpath). */
int store_model_put(store *s, const store_model *m, bool activate, tailor_error *err);
/* TAILOR_ENOTFOUND names the models that exist. */
int store_model_get(store *s, const char *name, store_model *out, tailor_error *err);
/* The active model (TAILOR_ENOTFOUND when the store has none). */
int store_model_active(store *s, store_model *out, tailor_error *err);
/* Every model, oldest first: a malloc'd array; free with store_models_free. */
int store_models_list(store *s, store_model **out, size_t *n, tailor_error *err);
void store_models_free(store_model *m, size_t n);
int store_model_activate(store *s, const char *name, tailor_error *err);
/* Deletes the row (not the file); when it was active the newest model
 * left becomes active. */
int store_model_remove(store *s, const char *name, tailor_error *err);
int store_model_set_evaluation(store *s, const char *name, const char *json, tailor_error *err);
/* A number that changes whenever the models table may have changed, on
 * this connection or any other (PostgreSQL: LISTEN/NOTIFY, read without a
 * round trip, so a server need not ask which model is active at every
 * request); 0: the store cannot tell (SQLite), read the table. */
uint64_t store_models_generation(store *s);
void store_model_deinit(store_model *m);
/* "DB.models/NAME.tmod" relative to the database's folder (malloc'd), so
 * that a folder holding the database and its models can move. */
char *store_model_relpath(store *s, const char *name);
/* A stored file name resolved against the database's folder (malloc'd);
 * absolute names stay as they are. */
char *store_path_resolve(store *s, const char *file);

/* Conversations. */
int store_session_new(store *s, int64_t user_id /* 0 = anonymous */, int64_t *id,
                      tailor_error *err);
/* A session's user (0 = anonymous) and state (malloc'd JSON or NULL);
 * TAILOR_ENOTFOUND when there is no such session. */
int store_session_get(store *s, int64_t id, int64_t *user_id, char **state, tailor_error *err);
int store_session_set_state(store *s, int64_t id, const char *state, tailor_error *err);
/* The newest session's id (0: none), and removal of the sessions after one
 * (their messages and facts with them): what a measurement leaves. */
int64_t store_sessions_last(store *s);
int store_sessions_delete_after(store *s, int64_t id, tailor_error *err);
int store_message_add(store *s, int64_t session_id, const char *role,
                      const char *content, const char *tool_name, tailor_error *err);
/* The same with meta: a JSON object of details (a tool call's arguments
 * and time, an answer's items), or NULL. */
int store_message_add_meta(store *s, int64_t session_id, const char *role, const char *content,
                           const char *tool_name, const char *meta, tailor_error *err);
typedef struct store_message {
    char *role, *content, *tool_name, *meta;
    int64_t created_at;
} store_message;
/* Fills *out with a malloc'd array of *n messages in order; free with
 * store_messages_free. */
int store_messages_list(store *s, int64_t session_id, store_message **out, size_t *n,
                        tailor_error *err);
void store_messages_free(store_message *m, size_t n);

/* Profile facts: what a person said of their taste. kind: "like" or
 * "dislike" (value: an item's external id) or "constraint" (value:
 * KEY=VALUE, KEY!=VALUE, KEY>=N or KEY<=N). A fact belongs to the user when
 * user_id is given (every later session sees it), else to the session. */
typedef struct store_fact {
    int64_t id;
    char *kind, *value, *text; /* malloc'd; text may be NULL */
    int64_t created_at;
} store_fact;
int store_fact_add(store *s, int64_t user_id, int64_t session_id, const char *kind, const char *value,
                   const char *text, tailor_error *err);
/* The facts of the user (when user_id) and of the session, oldest first. */
int store_facts_list(store *s, int64_t user_id, int64_t session_id, store_fact **out, size_t *n,
                     tailor_error *err);
/* Removes the facts of that kind (NULL = all kinds); *removed (may be NULL)
 * receives how many. */
int store_facts_clear(store *s, int64_t user_id, int64_t session_id, const char *kind, int64_t *removed,
                      tailor_error *err);
void store_facts_free(store_fact *f, size_t n);

/* A user's events in time order: cb(ctx, item ext id, value or NaN, ts)
 * for each; a non-zero return from cb stops the walk and is returned.
 * TAILOR_ENOTFOUND when the user does not exist. */
typedef int (*store_history_fn)(void *ctx, const char *item_ext, double value, int64_t ts);
int store_user_history(store *s, const char *user_ext, store_history_fn cb, void *ctx,
                       tailor_error *err);

/* The same with the items' row ids (no join: what serving reads per
 * request). */
typedef int (*store_history_row_fn)(void *ctx, int64_t item_row, double value, int64_t ts);
int store_user_history_rows(store *s, const char *user_ext, store_history_row_fn cb, void *ctx, tailor_error *err);

/* Every item in row order: cb(ctx, item) with the item's fields borrowed
 * for the call (NULL when absent); a non-zero return stops the walk. */
typedef int (*store_item_fn)(void *ctx, const store_item *it);
int store_items_each(store *s, store_item_fn cb, void *ctx, tailor_error *err);

/* Full-text search: items whose title, text or tags hold any word of
 * text (FTS5, bm25; a title word weighs twice a body word, tags half),
 * best first (ties: lower id). *out is malloc'd (free it); text without
 * letters or digits is TAILOR_EINVAL. */
typedef struct store_hit {
    int64_t id; /* item row id */
    double score;
} store_hit;
int store_search(store *s, const char *text, store_hit **out, size_t *n, tailor_error *err);

/* ---- the knowledge graph ---------------------------------------------- */

/* Links a graph entity to a catalogue item (row id); an entity links to one
 * item: under ERROR a second link is TAILOR_EEXISTS, SKIP keeps the first,
 * REPLACE takes the new one. *inserted (may be NULL) says whether a row was
 * added. */
int store_kg_link(store *s, const char *entity, int64_t item_id, store_dup_policy dup, bool *inserted,
                  tailor_error *err);
/* item:ID -tag-> tag:TEXT for every tag (lower case, trimmed), kept when
 * present; *added receives how many were new. */
int store_kg_tags_derive(store *s, int64_t *added, tailor_error *err);
/* Every accepted triple: cb(ctx, head, relation, tail) with the strings
 * borrowed for the call; a non-zero return stops the walk. */
typedef int (*store_triple_fn)(void *ctx, const char *head, const char *relation, const char *tail);
int store_kg_each(store *s, store_triple_fn cb, void *ctx, tailor_error *err);
/* Every entity-item link: cb(ctx, entity, item external id). */
typedef int (*store_link_fn)(void *ctx, const char *entity, const char *item_ext);
int store_kg_links_each(store *s, store_link_fn cb, void *ctx, tailor_error *err);

/* A fact a model proposes: stored with its source and confidence (0..1)
 * but not accepted, so the graph's queries do not see it until `kg
 * accept`. A triple already there (accepted or proposed) is left as it is. */
int store_kg_propose(store *s, const char *head, const char *relation, const char *tail, const char *source,
                     double confidence, bool *inserted, tailor_error *err);
/* Accepts the proposals with confidence >= min_confidence (and of source,
 * when given); *accepted receives how many. */
int store_kg_accept(store *s, double min_confidence, const char *source, int64_t *accepted, tailor_error *err);
typedef int (*store_proposal_fn)(void *ctx, const char *head, const char *relation, const char *tail,
                                 const char *source, double confidence);
/* The proposals waiting, most confident first. */
int store_kg_pending_each(store *s, store_proposal_fn cb, void *ctx, tailor_error *err);

/* The distinct tags of an item, joined with ", " into out. */
int store_item_tags(store *s, int64_t item_id, sb *out, tailor_error *err);

/* ---- the server's tables --------------------------------------------- */

/* API keys: the store keeps a SHA-256 of each, never the key. */
typedef struct store_key {
    int64_t id;
    char *name, *role, *user, *prefix; /* malloc'd; name and user may be NULL */
    double rate;                       /* requests per second allowed (0: no limit) */
    int64_t created_at, revoked_at;    /* revoked_at 0: in force */
} store_key;
#define STORE_KEY_LEN 36 /* "tlr_" and 32 base64url characters (192 random bits) */
/* A new random key for k's role, user, name and rate: written to key_out
 * (STORE_KEY_LEN + 1 bytes) to be shown once; only its hash is stored. */
int store_key_create(store *s, const store_key *k, char key_out[STORE_KEY_LEN + 1], int64_t *id, tailor_error *err);
/* Stores the hash of a key chosen by the caller (tests, imports of keys). */
int store_key_add(store *s, const store_key *k, const char *key, int64_t *id, tailor_error *err);
/* The key a caller presents, revoked or not; TAILOR_ENOTFOUND when none. */
int store_key_find(store *s, const char *key, store_key *out, tailor_error *err);
/* Every key, oldest first (free with store_keys_free). */
int store_keys_list(store *s, store_key **out, size_t *n, tailor_error *err);
/* Revokes the key whose id, prefix or name is which (a name must be
 * unambiguous); TAILOR_ENOTFOUND when none, TAILOR_EEXISTS when revoked. */
int store_key_revoke(store *s, const char *which, tailor_error *err);
void store_key_deinit(store_key *k);
void store_keys_free(store_key *k, size_t n);

/* Claims a client's event id for a user inside the caller's transaction:
 * *fresh is false when the id was claimed before (its event is stored
 * already, so the caller skips it). */
int store_event_claim(store *s, int64_t user_id, const char *client_id, bool *fresh, tailor_error *err);

/* A user's row, attributes (malloc'd JSON or NULL) and event count, times
 * of the first and last; TAILOR_ENOTFOUND when the user does not exist. */
typedef struct store_user_info {
    int64_t id, events, first_ts, last_ts;
    char *attributes;
} store_user_info;
int store_user_info_get(store *s, const char *ext_id, store_user_info *out, tailor_error *err);
/* The external id of a user row (malloc'd), or NULL. */
char *store_user_ext(store *s, int64_t id);

/* Counts of the main tables. */
int store_counts(store *s, tailor_store_counts *out, tailor_error *err);

/* A digest of the whole content (every table's rows in rowid order, plus
 * the schema version): equal digests mean equal content. Used by tests to
 * prove that a failed import changed nothing. */
int store_content_digest(store *s, char out_hex[65], tailor_error *err);

/* Loads ext_id -> row id for "users" or "items" into m (hmap_init'ed by the
 * caller). */
int store_idmap_load(store *s, const char *table, hmap *m, tailor_error *err);

/* ---- views for models -------------------------------------------------- */

typedef struct store_view_params {
    const char *kind; /* only events of this kind; NULL = all */
    double min_value; /* with has_min_value: drop events whose value is lower */
    bool has_min_value;
} store_view_params;

store_view_params store_view_default_params(void);

/* The user x item interaction data as dense arrays. Users and items are
 * indexed 0..n-1 in row-id order; every user and item of the store appears,
 * even without events. All arrays are owned by the view. */
typedef struct store_view {
    int32_t n_users, n_items;
    int64_t n_events; /* events in the sequences (duplicates included) */
    int64_t nnz;      /* distinct (user, item) pairs in the CSR matrix */

    int64_t *user_rowid, *item_rowid; /* dense index -> store row id */
    char **user_ext, **item_ext;      /* dense index -> external id */
    hmap user_index, item_index;      /* external id -> dense index */

    /* CSR matrix, rows = users, columns sorted ascending; for repeated
     * (user, item) pairs the latest event's value and time are kept. */
    int64_t *indptr;  /* n_users + 1 */
    int32_t *indices; /* nnz */
    float *values;    /* nnz */
    int64_t *times;   /* nnz */

    /* Per-user sequences in time order (ties: item index, then insertion). */
    int64_t *seq_ptr;   /* n_users + 1 */
    int32_t *seq_items; /* n_events */
    int64_t *seq_times; /* n_events */

    arena strings;
} store_view;

int store_view_build(store *s, store_view_params params, store_view *out, tailor_error *err);
void store_view_deinit(store_view *v);
/* Dense index of an external id, or -1. */
int32_t store_view_user(const store_view *v, const char *ext_id);
int32_t store_view_item(const store_view *v, const char *ext_id);

#endif /* TAILOR_STORE_H */
