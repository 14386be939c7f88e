/* test_db.h — one-value SQL queries for tests that look into a store
 * (SQLite or PostgreSQL: src/store/db.h). */
#ifndef TAILOR_TEST_DB_H
#define TAILOR_TEST_DB_H

#include "store/db.h"
#include "store/store.h"

/* The first column of the first row as an integer, or -1. */
static inline int64_t query_int(store *s, const char *sql) {
    sdb_stmt *st;
    int64_t v = -1;
    if (sdb_prepare(store_db(s), sql, &st) == SDB_OK) {
        if (sdb_step(st) == SDB_ROW) v = sdb_col_int64(st, 0);
        sdb_finalize(st);
    }
    return v;
}

/* The first column of the first row as a malloc'd string, or NULL. */
static inline char *query_text(store *s, const char *sql) {
    sdb_stmt *st;
    char *v = NULL;
    if (sdb_prepare(store_db(s), sql, &st) == SDB_OK) {
        if (sdb_step(st) == SDB_ROW && sdb_col_text(st, 0)) v = strdup(sdb_col_text(st, 0));
        sdb_finalize(st);
    }
    return v;
}

#endif
