/* test_db.h — one-value SQL queries for tests that look into a store
 * (SQLite or PostgreSQL: src/store/db.h). */
#ifndef TAILOR_TEST_DB_H
#define TAILOR_TEST_DB_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/db.h"
#include "store/store.h"

/* The PostgreSQL server the store tests run against, when TAILOR_TEST_PG
 * is set (a URL, or a file holding one: what tests/pg-cluster.sh writes and
 * ctest passes to the *_pg runs); NULL: SQLite files. A file that cannot
 * be read stops the test run loudly. */
static inline const char *test_pg(void) {
    static char url[1024];
    static int state; /* 0: not read, 1: PostgreSQL, 2: SQLite */
    if (!state) {
        const char *v = getenv("TAILOR_TEST_PG");
        state = 2;
        if (v && *v) {
            if (store_is_url(v)) {
                snprintf(url, sizeof url, "%s", v);
            } else {
                FILE *f = fopen(v, "r");
                if (!f || !fgets(url, sizeof url, f)) {
                    fprintf(stderr, "FATAL: TAILOR_TEST_PG=%s: no PostgreSQL URL there (tests/pg-cluster.sh start)\n", v);
                    exit(2);
                }
                fclose(f);
                url[strcspn(url, "\n")] = 0;
            }
            state = 1;
        }
    }
    return state == 1 ? url : NULL;
}

/* Where a test's store called name lives (malloc'd): a file in dir, or,
 * with TAILOR_TEST_PG, a PostgreSQL database of its own (created on first
 * use, named after the name and this process, so runs do not meet). */
static inline char *test_db_target(const char *dir, const char *name) {
    const char *pg = test_pg();
    char *out;
    if (!pg) {
        size_t n = strlen(dir) + strlen(name) + 2;
        out = malloc(n);
        snprintf(out, n, "%s/%s", dir, name);
        return out;
    }
    char db[96];
    int k = snprintf(db, sizeof db, "t%d_", (int)getpid());
    for (const char *c = name; *c && k < (int)sizeof db - 1; c++)
        db[k++] = (char)((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') ? *c : '_');
    db[k] = 0;
    sdb *admin = NULL;
    tailor_error e = {0};
    if (sdb_open(pg, false, &admin, &e)) {
        fprintf(stderr, "FATAL: %s\n", e.msg);
        exit(2);
    }
    char sql[160];
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", db);
    sdb_exec(admin, sql, NULL); /* exists already: a reopen */
    sdb_close(admin);
    /* The server's URL with this database's name in its path. */
    const char *q = strchr(pg, '?');
    const char *slash = strstr(pg, "://");
    slash = slash ? strchr(slash + 3, '/') : NULL;
    size_t n = strlen(pg) + strlen(db) + 8;
    out = malloc(n);
    if (slash) snprintf(out, n, "%.*s/%s%s", (int)(slash - pg), pg, db, q ? q : "");
    else snprintf(out, n, "%s dbname=%s", pg, db);
    return out;
}

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
