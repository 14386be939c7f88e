/* store_internal.h — private to src/store/: the store struct and its
 * statement cache. Nothing outside this folder includes it. */
#ifndef TAILOR_STORE_INTERNAL_H
#define TAILOR_STORE_INTERNAL_H

#include <stdio.h>

#include "store/db.h"
#include "store/store.h"

/* Prepared statements, created on first use and kept until close. */
typedef enum store_stmt_id {
    ST_USER_FIND,
    ST_USER_INSERT,
    ST_USER_UPDATE,
    ST_ITEM_FIND,
    ST_ITEM_INSERT,
    ST_ITEM_UPDATE,
    ST_KIND_FIND,
    ST_KIND_INSERT,
    ST_EVENT_INSERT,
    ST_EVENT_FIND,
    ST_EVENT_DELETE,
    ST_TAG_INSERT,
    ST_TAG_FIND,
    ST_TAG_UPDATE,
    ST_KG_INSERT,
    ST_KG_INSERT_IGNORE,
    ST_KG_REPLACE,
    ST_HISTORY_ROWS,
    ST_KEY_FIND,
    ST_COUNT_
} store_stmt_id;

/* PostgreSQL, inside a transaction: users or items added (store_*_add,
 * what imports call) held back as COPY rows with ids reserved from the
 * table's sequence, sent before the next statement (db.h's hook). */
typedef struct store_batch {
    sb rows;
    size_t n;
    int64_t *ids; /* reserved */
    size_t n_ids, used;
} store_batch;

struct tailor_store {
    sdb *db;
    char *path;  /* what store_open was given */
    char *files; /* store_files_base(path) */
    bool in_tx;
    bool events_indexed; /* events_user_item exists */
    bool fks_dropped;    /* PostgreSQL: the events' foreign keys, for a bulk load */
    uint64_t models_gen; /* store_models_generation */
    sdb_stmt *stmts[ST_COUNT_];
    sdb_stmt *batch_insert; /* STORE_EVENT_BATCH rows per statement */
    store_batch batch[2];   /* users, items */
};

/* The columns an api_keys row is read from (serving.c: key_from_row). */
#define STORE_KEY_SELECT "SELECT id, name, role, user_ext, prefix, rate, created_at, coalesce(revoked_at, 0) FROM api_keys"

/* Returns the cached statement, reset and with bindings cleared. */
sdb_stmt *store_stmt(store *s, store_stmt_id id, tailor_error *err);
/* Fills err from the connection's last error. */
int store_db_err(store *s, tailor_error *err, const char *what);
/* The engine under the store. */
static inline bool store_is_pg(const store *s) { return sdb_kind_of(s->db) == SDB_PG; }
int store_migrate(store *s, int target, tailor_error *err);
bool store_has_events_index(store *s);
/* Binds v, or NULL when v is NULL (copied). */
void store_bind_text(sdb_stmt *st, int i, const char *v);
/* A column's text, malloc'd, or NULL. */
char *store_col_strdup(sdb_stmt *st, int i);

#endif
