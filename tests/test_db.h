/* test_db.h — one-value SQL queries for tests that look into a store. */
#ifndef TAILOR_TEST_DB_H
#define TAILOR_TEST_DB_H

#include <sqlite3.h>

#include "store/store.h"

/* The first column of the first row as an integer, or -1. */
static inline int64_t query_int(store *s, const char *sql) {
    sqlite3_stmt *st;
    int64_t v = -1;
    if (sqlite3_prepare_v2(store_db(s), sql, -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    return v;
}

/* The first column of the first row as a malloc'd string, or NULL. */
static inline char *query_text(store *s, const char *sql) {
    sqlite3_stmt *st;
    char *v = NULL;
    if (sqlite3_prepare_v2(store_db(s), sql, -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
            v = strdup((const char *)sqlite3_column_text(st, 0));
        sqlite3_finalize(st);
    }
    return v;
}

#endif
