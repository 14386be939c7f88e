/* db.h — the SQL connection under the store, private to src/store/: one
 * small API (prepare, bind, step, read columns) over two engines, SQLite
 * (a file path) and PostgreSQL through libpq (a postgresql:// URL).
 *
 * The store writes its SQL once where both engines take it: parameters as
 * ?N (numbered from 1; PostgreSQL gets $N), upserts as ON CONFLICT,
 * RETURNING for new ids, IS NOT DISTINCT FROM for null-safe equality.
 * What differs (DDL, PRAGMAs, full-text search, catalogue queries) asks
 * sdb_kind_of. On PostgreSQL a statement runs when it is first stepped,
 * with the bound values' types (int8, float8, text, bytea), and its whole
 * result is read then: statements may nest as with SQLite. */
#ifndef TAILOR_STORE_DB_H
#define TAILOR_STORE_DB_H

#include "base/base.h"

typedef struct sdb sdb;
typedef struct sdb_stmt sdb_stmt;

typedef enum sdb_kind { SDB_SQLITE = 0, SDB_PG } sdb_kind;

/* What sdb_step and sdb_prepare return. */
enum {
    SDB_OK = 0,
    SDB_ERROR = 1,
    SDB_UNIQUE = 2, /* a UNIQUE or PRIMARY KEY constraint refused the row */
    SDB_ROW = 100,
    SDB_DONE = 101,
};

/* Whether target names a PostgreSQL database (postgresql:// or postgres://,
 * or a libpq key=value string starting with "host=" / "dbname="). */
bool sdb_is_pg(const char *target);
/* Opens target; errors name it (a URL's password is not shown). */
int sdb_open(const char *target, bool read_only, sdb **out, tailor_error *err);
void sdb_close(sdb *db);
sdb_kind sdb_kind_of(const sdb *db);
/* target with any password replaced by ***, for messages (borrowed). */
const char *sdb_name(const sdb *db);
const char *sdb_errmsg(sdb *db);
/* Runs statements without results; err names the database. */
int sdb_exec(sdb *db, const char *sql, tailor_error *err);
/* Rows changed by the last INSERT, UPDATE or DELETE. */
int64_t sdb_changes(sdb *db);
/* The id of the last row inserted (SQLite's rowid; PostgreSQL's lastval). */
int64_t sdb_last_id(sdb *db);

int sdb_prepare(sdb *db, const char *sql, sdb_stmt **out);
void sdb_finalize(sdb_stmt *st);
/* Back to the start, bindings kept (SQLite's reset). */
void sdb_reset(sdb_stmt *st);
void sdb_clear_bindings(sdb_stmt *st);

void sdb_bind_int64(sdb_stmt *st, int i, int64_t v);
void sdb_bind_double(sdb_stmt *st, int i, double v);
void sdb_bind_null(sdb_stmt *st, int i);
/* n < 0: up to the NUL. _static: v outlives the statement's next step
 * (SQLite then does not copy it). */
void sdb_bind_text(sdb_stmt *st, int i, const char *v, int n);
void sdb_bind_text_static(sdb_stmt *st, int i, const char *v, int n);
void sdb_bind_blob(sdb_stmt *st, int i, const void *v, int n);

int sdb_step(sdb_stmt *st);

int sdb_col_count(sdb_stmt *st);
bool sdb_col_null(sdb_stmt *st, int i);
int64_t sdb_col_int64(sdb_stmt *st, int i);
double sdb_col_double(sdb_stmt *st, int i);
/* NULL for SQL NULL; valid until the next step. */
const char *sdb_col_text(sdb_stmt *st, int i);
const void *sdb_col_blob(sdb_stmt *st, int i);
int sdb_col_bytes(sdb_stmt *st, int i);

/* PostgreSQL: fn runs before anything is sent to the server (a statement's
 * first step, an exec, a COPY), so rows the store holds back (batched
 * inserts) reach the server before any statement that could see them. A
 * failure fails the statement. Not called again while it runs. */
typedef int (*sdb_hook_fn)(void *ud, tailor_error *err);
void sdb_set_hook(sdb *db, sdb_hook_fn fn, void *ud);

/* PostgreSQL: LISTEN on channel, now and on every new connection after a
 * loss; sdb_notified says how many notifications came since it was last
 * asked (read from what the connection has received, no round trip), and
 * counts a reconnect as one (what was sent meanwhile is lost). SQLite:
 * nothing (sdb_notified is -1: it cannot tell). */
int sdb_listen(sdb *db, const char *channel, tailor_error *err);
int sdb_notified(sdb *db);

/* PostgreSQL's COPY ... FROM STDIN in text format: begin with the COPY
 * statement, put rows (tab-separated, \N for NULL, newline-terminated),
 * end. Not for SQLite. */
int sdb_copy_begin(sdb *db, const char *sql, tailor_error *err);
int sdb_copy_put(sdb *db, const char *data, size_t n, tailor_error *err);
int sdb_copy_end(sdb *db, tailor_error *err);

#endif
