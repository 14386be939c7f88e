/* db.c — the store's SQL connection: SQLite or PostgreSQL (db.h).
 * The SQLite side is a thin pass-through (the import and view paths run
 * through it millions of times); the PostgreSQL side keeps each
 * statement's parameters until it is stepped, then runs it with
 * PQexecParams and walks the result. */
#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "store/db.h"

/* PostgreSQL type oids (pg_type.h is a server header). */
enum { OID_BYTEA = 17, OID_INT8 = 20, OID_TEXT = 25, OID_FLOAT8 = 701 };

struct sdb {
    sdb_kind kind;
    char *name; /* target, password masked */
    sqlite3 *lite;
    PGconn *pg;
    char msg[512]; /* PostgreSQL's last error */
    int64_t changes;
    sdb_hook_fn hook;
    void *hook_ud;
    bool in_hook;
    bool in_tx;          /* PostgreSQL: BEGIN sent, no COMMIT or ROLLBACK yet */
    unsigned gen;        /* connections made (a reconnect loses prepared statements) */
    char listen[64];     /* the channel listened to ("": none) */
    int missed;          /* notifications a reconnect may have lost */
    unsigned long next_name;
    const char *session; /* what each new connection is told first */
};

/* PostgreSQL: a connection the server dropped (a restart, a failover) is
 * opened again. True when it was lost and is back; the statement that met
 * the loss may then be sent again unless a transaction was open (that one
 * is gone: the caller's next statement or commit fails, and it rolls
 * back). */
static bool pg_reconnect(sdb *db) {
    if (!db->pg || PQstatus(db->pg) != CONNECTION_BAD) return false;
    PQreset(db->pg);
    bool lost_tx = db->in_tx;
    db->in_tx = false;
    if (PQstatus(db->pg) != CONNECTION_OK) {
        log_warn("%s: the connection is lost and cannot be opened again yet", db->name);
        return false;
    }
    PQclear(PQexec(db->pg, db->session));
    if (db->listen[0]) {
        char sql[96];
        snprintf(sql, sizeof sql, "LISTEN %s", db->listen);
        PQclear(PQexec(db->pg, sql));
        db->missed++;
    }
    db->gen++;
    log_warn("%s: the connection was lost; connected again%s", db->name,
             lost_tx ? " (the open transaction is lost)" : "");
    return !lost_tx;
}

/* Follows BEGIN / COMMIT / ROLLBACK sent as plain statements. */
static void pg_track_tx(sdb *db, const char *sql) {
    if (!strncasecmp(sql, "BEGIN", 5)) db->in_tx = true;
    else if (!strncasecmp(sql, "COMMIT", 6) || !strncasecmp(sql, "ROLLBACK", 8)) db->in_tx = false;
}

void sdb_set_hook(sdb *db, sdb_hook_fn fn, void *ud) {
    db->hook = fn;
    db->hook_ud = ud;
}

/* Runs the hook (PostgreSQL, not from inside itself); on failure db->msg
 * holds the reason. */
static int run_hook(sdb *db, tailor_error *err) {
    if (!db->hook || db->in_hook) return 0;
    db->in_hook = true;
    tailor_error e = {0};
    int rc = db->hook(db->hook_ud, &e);
    db->in_hook = false;
    if (rc) {
        snprintf(db->msg, sizeof db->msg, "%s", e.msg);
        if (err) *err = e;
    }
    return rc;
}

typedef struct pg_param {
    char *val; /* NULL: SQL NULL */
    int len;
    unsigned type;
    bool binary;
} pg_param;

struct sdb_stmt {
    sdb *db;
    sqlite3_stmt *lite;
    /* PostgreSQL */
    char *sql; /* with $N */
    int n_params;
    pg_param *params;
    PGresult *res;
    int row, n_rows; /* row: the current one (-1 before the first step) */
    bool ran;
    /* Run more than once: prepared on the server (parsed and planned once)
     * as name, valid while the connection is the one of generation gen. */
    int runs;
    char name[24];
    unsigned gen;
    unsigned char *blob; /* a bytea column decoded */
    size_t blob_len;
};

bool sdb_is_pg(const char *t) {
    return !strncmp(t, "postgresql://", 13) || !strncmp(t, "postgres://", 11) || !strncmp(t, "host=", 5) ||
           !strncmp(t, "dbname=", 7);
}

sdb_kind sdb_kind_of(const sdb *db) { return db->kind; }
const char *sdb_name(const sdb *db) { return db->name; }

/* postgresql://user:secret@host/db -> postgresql://user:***@host/db */
static char *mask_password(const char *t) {
    const char *scheme = strstr(t, "://");
    const char *at = scheme ? strchr(scheme + 3, '@') : NULL;
    const char *colon = at ? memchr(scheme + 3, ':', (size_t)(at - scheme - 3)) : NULL;
    sb o;
    sb_init(&o);
    if (colon) {
        sb_append(&o, t, (size_t)(colon - t));
        sb_puts(&o, ":***");
        sb_puts(&o, at);
    } else if (!scheme && strstr(t, "password=")) {
        const char *p = strstr(t, "password=");
        sb_append(&o, t, (size_t)(p - t));
        sb_puts(&o, "password=***");
        const char *end = strchr(p, ' ');
        if (end) sb_puts(&o, end);
    } else {
        sb_puts(&o, t);
    }
    return sb_take(&o);
}

static void pg_notice(void *arg, const char *message) {
    (void)arg;
    log_debug("postgresql: %s", message);
}

int sdb_open(const char *target, bool read_only, sdb **out, tailor_error *err) {
    *out = NULL;
    sdb *db = xcalloc(1, sizeof *db);
    db->name = mask_password(target);
    if (sdb_is_pg(target)) {
        db->kind = SDB_PG;
        db->pg = PQconnectdb(target);
        if (!db->pg || PQstatus(db->pg) != CONNECTION_OK) {
            char m[400];
            snprintf(m, sizeof m, "%s", db->pg ? PQerrorMessage(db->pg) : "out of memory");
            for (size_t n = strlen(m); n && (m[n - 1] == '\n' || m[n - 1] == ' '); n--) m[n - 1] = 0;
            err_set(err, TAILOR_EDB, "cannot connect to %s: %s", db->name, m);
            sdb_close(db);
            return TAILOR_EDB;
        }
        PQsetNoticeProcessor(db->pg, pg_notice, NULL);
        db->session = read_only ? "SET client_min_messages = warning; SET default_transaction_read_only = on"
                                : "SET client_min_messages = warning";
        int rc = sdb_exec(db, db->session, err);
        if (rc) {
            sdb_close(db);
            return rc;
        }
        *out = db;
        return 0;
    }
    db->kind = SDB_SQLITE;
    /* One thread uses a store handle at a time (the server opens one per
     * worker), so SQLite's per-call connection mutex is not needed. */
    int flags = (read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(target, &db->lite, flags, NULL) != SQLITE_OK) {
        err_set(err, read_only ? TAILOR_ENOTFOUND : TAILOR_EDB, "cannot open database %s: %s", target,
                db->lite ? sqlite3_errmsg(db->lite) : "out of memory");
        int code = read_only ? TAILOR_ENOTFOUND : TAILOR_EDB;
        sdb_close(db);
        return code;
    }
    sqlite3_extended_result_codes(db->lite, 1);
    sqlite3_busy_timeout(db->lite, 5000);
    *out = db;
    return 0;
}

void sdb_close(sdb *db) {
    if (!db) return;
    if (db->lite) sqlite3_close(db->lite);
    if (db->pg) PQfinish(db->pg);
    free(db->name);
    free(db);
}

const char *sdb_errmsg(sdb *db) { return db->kind == SDB_SQLITE ? sqlite3_errmsg(db->lite) : db->msg; }

/* The primary message of a failed result (first line, no trailing
 * newline), kept in db->msg; returns SDB_UNIQUE for unique violations. */
static int pg_fail(sdb *db, const PGresult *res) {
    const char *m = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (!m) m = PQerrorMessage(db->pg);
    snprintf(db->msg, sizeof db->msg, "%s", m && *m ? m : "unknown error");
    for (size_t n = strlen(db->msg); n && (db->msg[n - 1] == '\n' || db->msg[n - 1] == ' '); n--) db->msg[n - 1] = 0;
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    return state && !strcmp(state, "23505") ? SDB_UNIQUE : SDB_ERROR;
}

int sdb_exec(sdb *db, const char *sql, tailor_error *err) {
    if (db->kind == SDB_SQLITE) {
        char *msg = NULL;
        if (sqlite3_exec(db->lite, sql, NULL, NULL, &msg) != SQLITE_OK) {
            err_set(err, TAILOR_EDB, "%s: %s", db->name, msg ? msg : sqlite3_errmsg(db->lite));
            sqlite3_free(msg);
            return TAILOR_EDB;
        }
        return 0;
    }
    if (run_hook(db, err)) return TAILOR_EDB;
    bool was_tx = db->in_tx;
    pg_track_tx(db, sql);
    PGresult *res = PQexec(db->pg, sql);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && PQstatus(db->pg) == CONNECTION_BAD) {
        /* The connection was lost: whether a transaction went with it is
         * what it was before this statement. */
        db->in_tx = was_tx;
        bool again = pg_reconnect(db);
        if (!strncasecmp(sql, "ROLLBACK", 8)) { /* nothing to roll back on a new connection */
            PQclear(res);
            return 0;
        }
        if (again) {
            PQclear(res);
            pg_track_tx(db, sql);
            res = PQexec(db->pg, sql);
            st = PQresultStatus(res);
        }
    }
    int rc = 0;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        pg_fail(db, res);
        rc = err_set(err, TAILOR_EDB, "%s: %s", db->name, db->msg);
    } else {
        db->changes = atoll(PQcmdTuples(res));
    }
    PQclear(res);
    return rc;
}

int64_t sdb_changes(sdb *db) { return db->kind == SDB_SQLITE ? sqlite3_changes(db->lite) : db->changes; }

int64_t sdb_last_id(sdb *db) {
    if (db->kind == SDB_SQLITE) return sqlite3_last_insert_rowid(db->lite);
    if (run_hook(db, NULL)) return 0;
    PGresult *res = PQexec(db->pg, "SELECT lastval()");
    int64_t v = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) ? atoll(PQgetvalue(res, 0, 0)) : 0;
    PQclear(res);
    return v;
}

/* ?N -> $N, ? -> $(largest so far + 1), outside quotes; *n_params gets
 * the largest number used. */
static char *pg_sql(const char *sql, int *n_params) {
    sb o;
    sb_init(&o);
    int max = 0;
    char quote = 0;
    for (const char *p = sql; *p; p++) {
        if (quote) {
            if (*p == quote) quote = 0;
            sb_putc(&o, *p);
        } else if (*p == '\'' || *p == '"') {
            quote = *p;
            sb_putc(&o, *p);
        } else if (*p == '?') {
            int k = 0;
            while (p[1] >= '0' && p[1] <= '9') k = k * 10 + (*++p - '0');
            if (!k) k = max + 1;
            if (k > max) max = k;
            sb_printf(&o, "$%d", k);
        } else {
            sb_putc(&o, *p);
        }
    }
    *n_params = max;
    return sb_take(&o);
}

int sdb_prepare(sdb *db, const char *sql, sdb_stmt **out) {
    *out = NULL;
    sdb_stmt *st = xcalloc(1, sizeof *st);
    st->db = db;
    if (db->kind == SDB_SQLITE) {
        if (sqlite3_prepare_v3(db->lite, sql, -1, SQLITE_PREPARE_PERSISTENT, &st->lite, NULL) != SQLITE_OK) {
            free(st);
            return SDB_ERROR;
        }
        *out = st;
        return SDB_OK;
    }
    st->sql = pg_sql(sql, &st->n_params);
    st->params = xcalloc((size_t)(st->n_params ? st->n_params : 1), sizeof *st->params);
    st->row = -1;
    *out = st;
    return SDB_OK;
}

static void pg_result_clear(sdb_stmt *st) {
    PQclear(st->res);
    st->res = NULL;
    st->ran = false;
    st->row = -1;
    st->n_rows = 0;
    free(st->blob);
    st->blob = NULL;
}

void sdb_clear_bindings(sdb_stmt *st) {
    if (st->lite) {
        sqlite3_clear_bindings(st->lite);
        return;
    }
    for (int i = 0; i < st->n_params; i++) {
        free(st->params[i].val);
        st->params[i] = (pg_param){0};
    }
}

void sdb_finalize(sdb_stmt *st) {
    if (!st) return;
    if (st->lite) {
        sqlite3_finalize(st->lite);
    } else {
        pg_result_clear(st);
        sdb_clear_bindings(st);
        /* Not left behind on the server for the connection's life. */
        if (st->name[0] && st->gen == st->db->gen && PQstatus(st->db->pg) == CONNECTION_OK) {
            char sql[48];
            snprintf(sql, sizeof sql, "DEALLOCATE %s", st->name);
            PQclear(PQexec(st->db->pg, sql));
        }
        free(st->params);
        free(st->sql);
    }
    free(st);
}

void sdb_reset(sdb_stmt *st) {
    if (st->lite) sqlite3_reset(st->lite);
    else pg_result_clear(st);
}

static pg_param *pg_slot(sdb_stmt *st, int i) {
    if (i < 1 || i > st->n_params) return NULL;
    pg_param *p = &st->params[i - 1];
    free(p->val);
    *p = (pg_param){0};
    return p;
}

void sdb_bind_int64(sdb_stmt *st, int i, int64_t v) {
    if (st->lite) {
        sqlite3_bind_int64(st->lite, i, v);
        return;
    }
    pg_param *p = pg_slot(st, i);
    if (!p) return;
    char buf[24];
    p->len = snprintf(buf, sizeof buf, "%lld", (long long)v);
    p->val = xstrdup(buf);
    p->type = OID_INT8;
}

void sdb_bind_double(sdb_stmt *st, int i, double v) {
    if (st->lite) {
        sqlite3_bind_double(st->lite, i, v);
        return;
    }
    pg_param *p = pg_slot(st, i);
    if (!p) return;
    char buf[40];
    if (v != v) snprintf(buf, sizeof buf, "NaN");
    else if (v > 1.7976931348623157e308) snprintf(buf, sizeof buf, "Infinity");
    else if (v < -1.7976931348623157e308) snprintf(buf, sizeof buf, "-Infinity");
    else snprintf(buf, sizeof buf, "%.17g", v);
    p->val = xstrdup(buf);
    p->len = (int)strlen(buf);
    p->type = OID_FLOAT8;
}

void sdb_bind_null(sdb_stmt *st, int i) {
    if (st->lite) sqlite3_bind_null(st->lite, i);
    else pg_slot(st, i);
}

static void pg_bind_bytes(sdb_stmt *st, int i, const void *v, int n, unsigned type, bool binary) {
    pg_param *p = pg_slot(st, i);
    if (!p || !v) return;
    p->val = xmalloc((size_t)n + 1);
    memcpy(p->val, v, (size_t)n);
    p->val[n] = 0;
    p->len = n;
    p->type = type;
    p->binary = binary;
}

void sdb_bind_text(sdb_stmt *st, int i, const char *v, int n) {
    if (st->lite) {
        if (v) sqlite3_bind_text(st->lite, i, v, n, SQLITE_TRANSIENT);
        else sqlite3_bind_null(st->lite, i);
        return;
    }
    pg_bind_bytes(st, i, v, v ? (n < 0 ? (int)strlen(v) : n) : 0, OID_TEXT, false);
}

void sdb_bind_text_static(sdb_stmt *st, int i, const char *v, int n) {
    if (st->lite) {
        if (v) sqlite3_bind_text(st->lite, i, v, n, SQLITE_STATIC);
        else sqlite3_bind_null(st->lite, i);
        return;
    }
    sdb_bind_text(st, i, v, n);
}

void sdb_bind_blob(sdb_stmt *st, int i, const void *v, int n) {
    if (st->lite) {
        sqlite3_bind_blob(st->lite, i, v, n, SQLITE_TRANSIENT);
        return;
    }
    pg_bind_bytes(st, i, v, n, OID_BYTEA, true);
}

static int lite_code(int rc) {
    if (rc == SQLITE_ROW) return SDB_ROW;
    if (rc == SQLITE_DONE) return SDB_DONE;
    if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY) return SDB_UNIQUE;
    return SDB_ERROR;
}

/* The statement's first run goes as PQexecParams (one round trip, parsed
 * each time); from its second it is prepared once on the server and run by
 * name, so the store's cached statements are parsed and planned once per
 * connection. Types are those of the first prepared run's bindings. */
static PGresult *pg_run(sdb_stmt *st, int n, const unsigned *types, const char *const *vals, const int *lens,
                        const int *fmts) {
    sdb *db = st->db;
    if (++st->runs < 2)
        return PQexecParams(db->pg, st->sql, n, (const Oid *)types, vals, lens, fmts, 0);
    if (!st->name[0] || st->gen != db->gen) {
        snprintf(st->name, sizeof st->name, "t%lu", ++db->next_name);
        PGresult *p = PQprepare(db->pg, st->name, st->sql, n, (const Oid *)types);
        bool ok = PQresultStatus(p) == PGRES_COMMAND_OK;
        PQclear(p);
        if (!ok) {
            st->name[0] = 0;
            return PQexecParams(db->pg, st->sql, n, (const Oid *)types, vals, lens, fmts, 0);
        }
        st->gen = db->gen;
    }
    return PQexecPrepared(db->pg, st->name, n, vals, lens, fmts, 0);
}

int sdb_step(sdb_stmt *st) {
    if (st->lite) return lite_code(sqlite3_step(st->lite));
    if (!st->ran) {
        if (run_hook(st->db, NULL)) return SDB_ERROR;
        int n = st->n_params;
        const char **vals = xcalloc((size_t)(n ? n : 1), sizeof *vals);
        int *lens = xcalloc((size_t)(n ? n : 1), sizeof *lens), *fmts = xcalloc((size_t)(n ? n : 1), sizeof *fmts);
        unsigned *types = xcalloc((size_t)(n ? n : 1), sizeof *types);
        for (int i = 0; i < n; i++) {
            vals[i] = st->params[i].val;
            lens[i] = st->params[i].len;
            fmts[i] = st->params[i].binary;
            types[i] = st->params[i].type;
        }
        st->res = pg_run(st, n, types, vals, lens, fmts);
        ExecStatusType s0 = PQresultStatus(st->res);
        if (s0 != PGRES_TUPLES_OK && s0 != PGRES_COMMAND_OK && pg_reconnect(st->db)) {
            PQclear(st->res);
            st->res = pg_run(st, n, types, vals, lens, fmts);
        }
        free(vals);
        free(lens);
        free(fmts);
        free(types);
        st->ran = true;
        ExecStatusType s = PQresultStatus(st->res);
        if (s != PGRES_TUPLES_OK && s != PGRES_COMMAND_OK) {
            int rc = pg_fail(st->db, st->res);
            PQclear(st->res);
            st->res = NULL;
            return rc;
        }
        st->n_rows = PQntuples(st->res);
        st->db->changes = atoll(PQcmdTuples(st->res));
        st->row = -1;
    }
    if (!st->res) return SDB_ERROR;
    free(st->blob);
    st->blob = NULL;
    if (st->row + 1 < st->n_rows) {
        st->row++;
        return SDB_ROW;
    }
    st->row = st->n_rows;
    return SDB_DONE;
}

static bool pg_has(sdb_stmt *st, int i) {
    return st->res && st->row >= 0 && st->row < st->n_rows && i >= 0 && i < PQnfields(st->res) &&
           !PQgetisnull(st->res, st->row, i);
}

int sdb_col_count(sdb_stmt *st) {
    if (st->lite) return sqlite3_column_count(st->lite);
    return st->res ? PQnfields(st->res) : 0;
}

bool sdb_col_null(sdb_stmt *st, int i) {
    if (st->lite) return sqlite3_column_type(st->lite, i) == SQLITE_NULL;
    return !pg_has(st, i);
}

int64_t sdb_col_int64(sdb_stmt *st, int i) {
    if (st->lite) return sqlite3_column_int64(st->lite, i);
    if (!pg_has(st, i)) return 0;
    const char *v = PQgetvalue(st->res, st->row, i);
    if (*v == 't' || *v == 'f') return *v == 't'; /* boolean */
    char *end;
    long long x = strtoll(v, &end, 10);
    if (*end == '.' || *end == 'e' || *end == 'E') return (int64_t)strtod(v, NULL);
    return x;
}

double sdb_col_double(sdb_stmt *st, int i) {
    if (st->lite) return sqlite3_column_double(st->lite, i);
    return pg_has(st, i) ? strtod(PQgetvalue(st->res, st->row, i), NULL) : 0;
}

const char *sdb_col_text(sdb_stmt *st, int i) {
    if (st->lite) return (const char *)sqlite3_column_text(st->lite, i);
    return pg_has(st, i) ? PQgetvalue(st->res, st->row, i) : NULL;
}

/* A bytea column comes as text (\x...): decoded once per row. */
static bool pg_blob(sdb_stmt *st, int i) {
    if (!pg_has(st, i) || PQftype(st->res, i) != OID_BYTEA) return false;
    free(st->blob);
    st->blob = PQunescapeBytea((const unsigned char *)PQgetvalue(st->res, st->row, i), &st->blob_len);
    return st->blob != NULL;
}

const void *sdb_col_blob(sdb_stmt *st, int i) {
    if (st->lite) return sqlite3_column_blob(st->lite, i);
    if (pg_blob(st, i)) return st->blob;
    return sdb_col_text(st, i);
}

int sdb_col_bytes(sdb_stmt *st, int i) {
    if (st->lite) return sqlite3_column_bytes(st->lite, i);
    if (pg_blob(st, i)) return (int)st->blob_len;
    return pg_has(st, i) ? PQgetlength(st->res, st->row, i) : 0;
}

/* ---- notifications (PostgreSQL) --------------------------------------------- */

int sdb_listen(sdb *db, const char *channel, tailor_error *err) {
    if (db->kind != SDB_PG) return 0;
    char sql[96];
    snprintf(db->listen, sizeof db->listen, "%s", channel);
    snprintf(sql, sizeof sql, "LISTEN %s", channel);
    return sdb_exec(db, sql, err);
}

int sdb_notified(sdb *db) {
    if (db->kind != SDB_PG) return -1;
    int n = db->missed;
    db->missed = 0;
    if (PQstatus(db->pg) == CONNECTION_BAD) return n + 1;
    PQconsumeInput(db->pg);
    PGnotify *note;
    while ((note = PQnotifies(db->pg))) {
        n++;
        PQfreemem(note);
    }
    return n;
}

/* ---- COPY (PostgreSQL) ------------------------------------------------------ */

int sdb_copy_begin(sdb *db, const char *sql, tailor_error *err) {
    if (db->kind != SDB_PG) return err_set(err, TAILOR_EINTERNAL, "COPY needs PostgreSQL");
    if (run_hook(db, err)) return TAILOR_EDB;
    PGresult *res = PQexec(db->pg, sql);
    int rc = 0;
    if (PQresultStatus(res) != PGRES_COPY_IN && pg_reconnect(db)) {
        PQclear(res);
        res = PQexec(db->pg, sql);
    }
    if (PQresultStatus(res) != PGRES_COPY_IN) {
        pg_fail(db, res);
        rc = err_set(err, TAILOR_EDB, "%s: %s", db->name, db->msg);
    }
    PQclear(res);
    return rc;
}

int sdb_copy_put(sdb *db, const char *data, size_t n, tailor_error *err) {
    if (PQputCopyData(db->pg, data, (int)n) != 1) {
        pg_fail(db, NULL);
        return err_set(err, TAILOR_EDB, "%s: COPY: %s", db->name, db->msg);
    }
    return 0;
}

int sdb_copy_end(sdb *db, tailor_error *err) {
    int rc = 0;
    if (PQputCopyEnd(db->pg, NULL) != 1) {
        pg_fail(db, NULL);
        rc = err_set(err, TAILOR_EDB, "%s: COPY: %s", db->name, db->msg);
    }
    PGresult *res;
    while ((res = PQgetResult(db->pg))) {
        if (PQresultStatus(res) != PGRES_COMMAND_OK && !rc) {
            pg_fail(db, res);
            rc = err_set(err, TAILOR_EDB, "%s: COPY: %s", db->name, db->msg);
        } else if (!rc) {
            db->changes = atoll(PQcmdTuples(res));
        }
        PQclear(res);
    }
    return rc;
}
