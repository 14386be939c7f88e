/* http.c — the daemon, the workers and the life of a request.
 *
 * libmicrohttpd's one polling thread reads requests and writes responses;
 * it never waits on the store or a model. A request whose body is in is
 * matched to a route, suspended and queued; a worker (its own store
 * connection and engine) checks the key and the rate, runs the handler and
 * resumes the connection with the response. A streamed response is written
 * by the worker into a buffer that the polling thread drains, the
 * connection suspended while the buffer is empty. A request and a stream
 * are each freed by whichever of their two users is done last.
 */
#include <arpa/inet.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "know/know.h"
#include "server/internal.h"

/* ---- metrics ------------------------------------------------------------- */

#define N_STATUS 16
static const int STATUSES[N_STATUS] = {200, 201, 204, 400, 401, 403, 404, 405, 409, 413, 415, 422, 429, 500, 503, 0};
#define N_BUCKETS 14
static const double BUCKETS[N_BUCKETS] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                          0.1,    0.25,  0.5,    1,     2.5,   5,     10};

typedef struct route_metrics {
    atomic_uint_fast64_t by_status[N_STATUS];
    /* Latency by status class (2xx, 3xx, 4xx, 5xx); the last bucket: +Inf. */
    atomic_uint_fast64_t buckets[4][N_BUCKETS + 1];
    atomic_uint_fast64_t sum_us[4];
} route_metrics;

/* ---- the server ------------------------------------------------------------ */

typedef struct conn conn;

typedef struct rate_bucket {
    double tokens;
    uint64_t last_ns;
} rate_bucket;

struct srv {
    srv_params p;
    struct MHD_Daemon *d;
    int port;
    srv_worker *workers;
    struct kg_index *index; /* shared by the workers' retrievers, or NULL */
    pthread_t *threads;
    int n_workers, n_started;
    /* The queue between the polling thread and the workers. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    conn **ring;
    int cap, head, len;
    bool stopping;
    atomic_int open; /* requests not yet completed */
    pthread_mutex_t llm_mu;
    llm_backend *llm;
    llm_backend shared;  /* the agent's view of llm: calls under llm_mu unless it is concurrent */
    llm_backend_ops shared_ops;
    size_t mentions_n;   /* names the model was given (once is enough: the catalogue is loaded once) */
    bool mentions_set;
    route_metrics *rm; /* one per route, then one for requests no route matched */
    atomic_uint_fast64_t tokens, token_ns;
    pthread_mutex_t rate_mu;
    hmap rate_index; /* key id -> index in rates */
    VEC(rate_bucket) rates;
    uint64_t started_ns;
};

typedef enum conn_state { C_RECEIVING = 0, C_QUEUED, C_READY, C_STREAMING } conn_state;

struct conn {
    srv_req r;
    srv *s;
    int route_id; /* -1: no route */
    bool path_known;
    conn_state state;
    atomic_int refs;
    sb body;
    bool too_big;
    char *auth; /* the Authorization header */
    struct MHD_Connection *mc;
    uint64_t t0;
};

struct srv_stream {
    pthread_mutex_t mu;
    sb buf;
    size_t off;
    bool done, gone, suspended;
    struct MHD_Connection *mc;
    atomic_int refs;
};

srv_params srv_default_params(void) {
    return (srv_params){.host = "127.0.0.1", .port = 8080, .queue = 256, .max_body = 1 << 20, .timeout_s = 30,
                        .max_connections = 1024, .web = true, .llm_name = "tailor"};
}

int srv_port(const srv *s) { return s->port; }
llm_backend *srv_llm(srv *s) { return s->llm; }
const char *srv_llm_name(srv *s) { return s->p.llm_name ? s->p.llm_name : "tailor"; }
/* A backend whose calls may overlap (a remote server or fleet) is not
 * queued behind one mutex: its requests run from every worker at once. */
void srv_llm_lock(srv *s) {
    if (!s->llm->ops->concurrent) pthread_mutex_lock(&s->llm_mu);
}
void srv_llm_unlock(srv *s) {
    if (!s->llm->ops->concurrent) pthread_mutex_unlock(&s->llm_mu);
}

bool srv_web_enabled(srv *s) { return s->p.web; }

char *srv_reports_dir(srv *s) {
    if (s->p.reports) return xstrdup(s->p.reports);
    sb p;
    sb_init(&p);
    sb_printf(&p, "%s.reports", s->p.files ? s->p.files : s->p.db_path);
    return sb_take(&p);
}

/* ---- the language model, shared by the workers --------------------------------- */

static void count_usage(srv *s) {
    llm_usage u;
    if (!s->llm->ops->last_usage) return;
    s->llm->ops->last_usage(s->llm, &u);
    srv_count_tokens(s, u.completion_tokens, u.seconds);
}

static int sh_complete(llm_backend *b, const llm_msg *msgs, int n, const llm_tool_def *tools, int n_tools,
                       llm_tool_choice choice, llm_stream_fn cb, void *ud, llm_reply *out, tailor_error *err) {
    srv *s = b->impl;
    srv_llm_lock(s);
    int rc = s->llm->ops->complete(s->llm, msgs, n, tools, n_tools, choice, cb, ud, out, err);
    count_usage(s);
    srv_llm_unlock(s);
    return rc;
}

static int sh_mentions(llm_backend *b, const char *const *names, size_t n, tailor_error *err) {
    srv *s = b->impl;
    pthread_mutex_lock(&s->llm_mu);
    int rc = 0;
    if (!s->mentions_set || s->mentions_n != n) rc = s->llm->ops->set_mentions(s->llm, names, n, err);
    if (!rc) s->mentions_set = true, s->mentions_n = n;
    pthread_mutex_unlock(&s->llm_mu);
    return rc;
}

static int sh_json(llm_backend *b, const llm_msg *msgs, int n, const char *schema, llm_stream_fn cb, void *ud,
                   char **out, tailor_error *err) {
    srv *s = b->impl;
    srv_llm_lock(s);
    int rc = s->llm->ops->complete_json(s->llm, msgs, n, schema, cb, ud, out, err);
    count_usage(s);
    srv_llm_unlock(s);
    return rc;
}

static int sh_embed(llm_backend *b, const char *text, size_t n, float **out, int32_t *dim, tailor_error *err) {
    srv *s = b->impl;
    srv_llm_lock(s);
    int rc = s->llm->ops->embed(s->llm, text, n, out, dim, err);
    srv_llm_unlock(s);
    return rc;
}

/* Reading the vocabulary and the context size needs no lock. */
static int32_t sh_count(llm_backend *b, const char *text, size_t n) {
    srv *s = b->impl;
    return s->llm->ops->count_tokens(s->llm, text, n);
}

static int32_t sh_ctx(llm_backend *b) {
    srv *s = b->impl;
    return s->llm->ops->context_size(s->llm);
}

static void sh_free(llm_backend *b) { (void)b; /* the server frees the model */ }

llm_backend *srv_llm_shared(srv *s) { return s->llm ? &s->shared : NULL; }

static void shared_init(srv *s) {
    const llm_backend_ops *in = s->llm->ops;
    s->shared_ops = (llm_backend_ops){.name = in->name,
                                      .complete = sh_complete,
                                      .set_mentions = in->set_mentions ? sh_mentions : NULL,
                                      .complete_json = in->complete_json ? sh_json : NULL,
                                      .embed = in->embed ? sh_embed : NULL,
                                      .count_tokens = sh_count,
                                      .context_size = sh_ctx,
                                      .free = sh_free};
    s->shared = (llm_backend){.ops = &s->shared_ops, .impl = s};
}

void srv_count_tokens(srv *s, int64_t tokens, double seconds) {
    atomic_fetch_add(&s->tokens, (uint64_t)(tokens > 0 ? tokens : 0));
    atomic_fetch_add(&s->token_ns, (uint64_t)(seconds > 0 ? seconds * 1e9 : 0));
}

/* ---- requests ------------------------------------------------------------- */

static void conn_release(conn *c) {
    if (atomic_fetch_sub(&c->refs, 1) != 1) return;
    srv_req *r = &c->r;
    for (int i = 0; i < r->n_params; i++) free(r->params[i]);
    for (int i = 0; i < 2 * r->n_query; i++) free(r->query[i]);
    free(r->query);
    free(r->user);
    free((char *)r->path);
    free((char *)r->method);
    free((char *)r->accept);
    sb_deinit(&r->out);
    sb_deinit(&c->body);
    free(c->auth);
    free(c);
}

static enum MHD_Result copy_query(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
    (void)kind;
    srv_req *r = cls;
    if (r->n_query >= 64) return MHD_NO; /* enough for any route */
    r->query = xrealloc(r->query, (size_t)(r->n_query + 1) * 2 * sizeof *r->query);
    r->query[2 * r->n_query] = xstrdup(key);
    r->query[2 * r->n_query + 1] = xstrdup(value ? value : "");
    r->n_query++;
    return MHD_YES;
}

static conn *conn_new(srv *s, struct MHD_Connection *mc, const char *url, const char *method) {
    conn *c = xcalloc(1, sizeof *c);
    c->s = s;
    c->mc = mc;
    c->t0 = timer_now_ns();
    atomic_init(&c->refs, 1);
    sb_init(&c->body);
    srv_req *r = &c->r;
    r->srv = s;
    r->method = xstrdup(method);
    r->path = xstrdup(url);
    sb_init(&r->out);
    r->status = 200;
    MHD_get_connection_values(mc, MHD_GET_ARGUMENT_KIND, copy_query, r);
    const char *v = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (v) c->auth = xstrdup(v);
    v = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT);
    r->accept = xstrdup(v ? v : "");
    c->route_id = srv_route_find(method, url, r->params, 4, &r->n_params, &c->path_known);
    r->route = c->route_id >= 0 ? &SRV_ROUTES[c->route_id] : NULL;
    atomic_fetch_add(&c->s->open, 1);
    return c;
}

/* ---- streams ---------------------------------------------------------------- */

static void stream_release(srv_stream *st) {
    if (atomic_fetch_sub(&st->refs, 1) != 1) return;
    pthread_mutex_destroy(&st->mu);
    sb_deinit(&st->buf);
    free(st);
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    srv_stream *st = cls;
    pthread_mutex_lock(&st->mu);
    ssize_t n;
    if (st->off < st->buf.len) {
        size_t k = st->buf.len - st->off < max ? st->buf.len - st->off : max;
        memcpy(buf, st->buf.buf + st->off, k);
        st->off += k;
        if (st->off == st->buf.len) sb_clear(&st->buf), st->off = 0;
        n = (ssize_t)k;
    } else if (st->done) {
        n = MHD_CONTENT_READER_END_OF_STREAM;
    } else {
        /* Nothing to send yet: sleep until the writer resumes us. */
        st->suspended = true;
        MHD_suspend_connection(st->mc);
        n = 0;
    }
    pthread_mutex_unlock(&st->mu);
    return n;
}

static void stream_gone(void *cls) {
    srv_stream *st = cls;
    pthread_mutex_lock(&st->mu);
    st->gone = true;
    pthread_mutex_unlock(&st->mu);
    stream_release(st);
}

srv_stream *srv_stream_begin(srv_req *r, const char *ctype) {
    conn *c = (conn *)r; /* r is the first member */
    srv_stream *st = xcalloc(1, sizeof *st);
    pthread_mutex_init(&st->mu, NULL);
    sb_init(&st->buf);
    st->mc = c->mc;
    atomic_init(&st->refs, 2); /* the writer and the response */
    r->stream = st;
    r->status = 200;
    r->ctype = ctype;
    c->state = C_STREAMING;
    MHD_resume_connection(c->mc);
    return st;
}

bool srv_stream_write(srv_stream *st, const char *data, size_t n) {
    pthread_mutex_lock(&st->mu);
    bool alive = !st->gone;
    if (alive) {
        sb_append(&st->buf, data, n);
        if (st->suspended) {
            st->suspended = false;
            MHD_resume_connection(st->mc);
        }
    }
    pthread_mutex_unlock(&st->mu);
    return alive;
}

bool srv_stream_printf(srv_stream *st, const char *fmt, ...) {
    sb t;
    sb_init(&t);
    va_list ap;
    va_start(ap, fmt);
    sb_vprintf(&t, fmt, ap);
    va_end(ap);
    bool ok = srv_stream_write(st, t.buf ? t.buf : "", t.len);
    sb_deinit(&t);
    return ok;
}

void srv_stream_end(srv_stream *st) {
    pthread_mutex_lock(&st->mu);
    st->done = true;
    if (st->suspended && !st->gone) {
        st->suspended = false;
        MHD_resume_connection(st->mc);
    }
    pthread_mutex_unlock(&st->mu);
    stream_release(st);
}

/* ---- responses ---------------------------------------------------------------- */

static enum MHD_Result respond(conn *c) {
    srv_req *r = &c->r;
    struct MHD_Response *resp;
    if (r->stream) {
        resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, stream_read, r->stream, stream_gone);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
        MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    } else {
        size_t n = r->out.len;
        char *body = sb_take(&r->out);
        resp = MHD_create_response_from_buffer(n, body ? body : "", body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    }
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->ctype ? r->ctype : "application/json");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    if (r->retry_after > 0) {
        char v[16];
        snprintf(v, sizeof v, "%d", r->retry_after);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, v);
    }
    if (r->status == 401) MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    if (r->status == 405) {
        sb allow;
        sb_init(&allow);
        srv_route_allow(r->path, &allow);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, sb_str(&allow));
        sb_deinit(&allow);
    }
    enum MHD_Result ok = MHD_queue_response(c->mc, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    return ok;
}

/* Answers on the polling thread at once. */
static enum MHD_Result respond_now(conn *c, int status, const char *code, const char *msg) {
    srv_error(&c->r, status, code, "%s", msg);
    c->state = C_READY;
    return respond(c);
}

/* ---- keys and rates --------------------------------------------------------- */

static bool rate_take(srv *s, int64_t key_id, double rate, int *retry_after) {
    uint64_t now = timer_now_ns();
    double burst = rate * 2 > 1 ? rate * 2 : 1;
    pthread_mutex_lock(&s->rate_mu);
    int64_t i;
    if (!hmap_get(&s->rate_index, (const char *)&key_id, sizeof key_id, &i)) {
        i = (int64_t)s->rates.len;
        vec_push(&s->rates, ((rate_bucket){.tokens = burst, .last_ns = now}));
        hmap_put(&s->rate_index, (const char *)&key_id, sizeof key_id, i);
    }
    rate_bucket *b = &s->rates.data[i];
    b->tokens += (double)(now - b->last_ns) * 1e-9 * rate;
    if (b->tokens > burst) b->tokens = burst;
    b->last_ns = now;
    bool ok = b->tokens >= 1;
    if (ok) b->tokens -= 1;
    else *retry_after = (int)ceil((1 - b->tokens) / rate);
    pthread_mutex_unlock(&s->rate_mu);
    return ok;
}

/* Checks the key the route needs; false after writing the response. */
static bool authenticate(srv *s, conn *c) {
    srv_req *r = &c->r;
    if (r->route->scope == SRV_OPEN || (r->route->fn == api_metrics && s->p.metrics_open)) return true;
    const char *h = c->auth;
    if (!h || strncasecmp(h, "Bearer ", 7) != 0 || !h[7]) {
        srv_error(r, 401, "unauthorized", "this route needs an API key: Authorization: Bearer KEY (tailor keys create)");
        return false;
    }
    const char *key = h + 7;
    while (*key == ' ') key++;
    store_key k;
    tailor_error err = {0};
    int rc = store_key_find(r->w->s, key, &k, &err);
    if (rc == TAILOR_ENOTFOUND || (!rc && k.revoked_at)) {
        if (!rc) store_key_deinit(&k);
        srv_error(r, 401, "unauthorized", "the API key is not valid (unknown or revoked)");
        return false;
    }
    if (rc) { /* the store does not answer (PostgreSQL restarting): try again soon */
        r->retry_after = 1;
        srv_error(r, 503, "not_ready", "%s", err.msg);
        return false;
    }
    r->key_id = k.id;
    r->admin = !strcmp(k.role, "admin");
    if (!r->admin) r->user = xstrdup(k.user);
    double rate = k.rate;
    store_key_deinit(&k);
    if (r->route->scope == SRV_ADMIN && !r->admin) {
        srv_error(r, 403, "forbidden", "this route needs an admin key");
        return false;
    }
    int retry = 1;
    if (rate > 0 && !rate_take(s, r->key_id, rate, &retry)) {
        r->retry_after = retry;
        srv_error(r, 429, "rate_limited", "this key may make %g requests per second; retry after %d s", rate, retry);
        return false;
    }
    return true;
}

/* ---- workers ------------------------------------------------------------------ */

static void handle(srv *s, srv_worker *w, conn *c) {
    srv_req *r = &c->r;
    r->w = w;
    r->body = c->body.buf ? c->body.buf : "";
    r->body_len = c->body.len;
    if (authenticate(s, c)) r->route->fn(r);
    if (r->stream) return; /* the handler resumed the connection and ended its stream */
    c->state = C_READY;
    MHD_resume_connection(c->mc);
}

static void *worker_main(void *arg) {
    srv_worker *w = arg;
    srv *s = w->srv;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        while (!s->len && !s->stopping) pthread_cond_wait(&s->cv, &s->mu);
        if (!s->len) {
            pthread_mutex_unlock(&s->mu);
            break;
        }
        conn *c = s->ring[s->head];
        s->head = (s->head + 1) % s->cap;
        s->len--;
        pthread_mutex_unlock(&s->mu);
        handle(s, w, c);
        conn_release(c);
    }
    return NULL;
}

/* ---- the daemon's callbacks ------------------------------------------------------- */

static enum MHD_Result dispatch(srv *s, conn *c) {
    srv_req *r = &c->r;
    if (c->too_big) {
        char m[128];
        snprintf(m, sizeof m, "the request body is larger than %zu bytes", s->p.max_body);
        return respond_now(c, 413, "body_too_large", m);
    }
    if (!r->route)
        return c->path_known ? respond_now(c, 405, "method_not_allowed", "the route does not take this method")
                             : respond_now(c, 404, "not_found", "no such route (see /openapi.json)");
    if (r->route->on_io) {
        r->body = c->body.buf ? c->body.buf : "";
        r->body_len = c->body.len;
        r->route->fn(r);
        c->state = C_READY;
        return respond(c);
    }
    pthread_mutex_lock(&s->mu);
    if (s->stopping || s->len == s->cap) {
        bool stopping = s->stopping;
        pthread_mutex_unlock(&s->mu);
        r->retry_after = 1;
        return respond_now(c, 503, stopping ? "shutting_down" : "overloaded",
                           stopping ? "the server is shutting down" : "every worker is busy and the queue is full");
    }
    c->state = C_QUEUED;
    atomic_fetch_add(&c->refs, 1);
    MHD_suspend_connection(c->mc);
    s->ring[(s->head + s->len) % s->cap] = c;
    s->len++;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *mc, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls) {
    (void)version;
    srv *s = cls;
    conn *c = *con_cls;
    if (!c) {
        c = conn_new(s, mc, url, method);
        *con_cls = c;
        const char *cl = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > s->p.max_body) {
            c->too_big = true;
            return dispatch(s, c); /* answered before the body is read; the connection closes */
        }
        return MHD_YES;
    }
    if (c->state == C_RECEIVING) {
        if (*upload_size) {
            if (!c->too_big && c->body.len + *upload_size > s->p.max_body) c->too_big = true, sb_clear(&c->body);
            if (!c->too_big) sb_append(&c->body, upload, *upload_size);
            *upload_size = 0;
            return MHD_YES;
        }
        return dispatch(s, c);
    }
    return respond(c); /* resumed by a worker */
}

static void record(srv *s, conn *c) {
    route_metrics *m = &s->rm[c->route_id >= 0 ? c->route_id : SRV_N_ROUTES];
    int i = 0;
    while (i < N_STATUS - 1 && STATUSES[i] != c->r.status) i++;
    atomic_fetch_add(&m->by_status[i], 1);
    double sec = timer_seconds_since(c->t0);
    int b = 0;
    while (b < N_BUCKETS && sec > BUCKETS[b]) b++;
    int cls = c->r.status >= 200 && c->r.status < 600 ? c->r.status / 100 - 2 : 3;
    atomic_fetch_add(&m->buckets[cls][b], 1);
    atomic_fetch_add(&m->sum_us[cls], (uint64_t)(sec * 1e6));
}

static void on_completed(void *cls, struct MHD_Connection *mc, void **con_cls, enum MHD_RequestTerminationCode toe) {
    (void)mc, (void)toe;
    srv *s = cls;
    conn *c = *con_cls;
    if (!c) return;
    *con_cls = NULL;
    record(s, c);
    atomic_fetch_sub(&s->open, 1);
    conn_release(c);
}

/* ---- metrics text -------------------------------------------------------------- */

static void route_label(sb *o, int id) {
    if (id < SRV_N_ROUTES) sb_printf(o, "route=\"%s %s\"", SRV_ROUTES[id].method, SRV_ROUTES[id].pattern);
    else sb_puts(o, "route=\"unmatched\"");
}

/* The model servers behind a remote backend: requests by result, failovers,
 * whether each takes requests, and the time of its replies. */
static void upstream_metrics(srv *s, sb *o) {
    if (!s->llm || !s->llm->ops->upstreams) return;
    llm_upstream_stats st[32];
    int n = s->llm->ops->upstreams(s->llm, st, 32);
    if (n > 32) n = 32;
    sb_puts(o, "# HELP tailor_llm_upstream_up 1 while a model server takes requests, 0 while it is taken out.\n"
               "# TYPE tailor_llm_upstream_up gauge\n");
    for (int i = 0; i < n; i++) sb_printf(o, "tailor_llm_upstream_up{url=\"%s\"} %d\n", st[i].url, st[i].up);
    sb_puts(o, "# HELP tailor_llm_upstream_requests_total Attempts sent to a model server, by result (ok; refused: 4xx; "
               "failed: connection, stall, 429, 5xx).\n# TYPE tailor_llm_upstream_requests_total counter\n");
    for (int i = 0; i < n; i++)
        sb_printf(o,
                  "tailor_llm_upstream_requests_total{url=\"%s\",result=\"ok\"} %llu\n"
                  "tailor_llm_upstream_requests_total{url=\"%s\",result=\"refused\"} %llu\n"
                  "tailor_llm_upstream_requests_total{url=\"%s\",result=\"failed\"} %llu\n",
                  st[i].url, (unsigned long long)st[i].ok, st[i].url, (unsigned long long)st[i].refused, st[i].url,
                  (unsigned long long)st[i].failed);
    sb_puts(o, "# HELP tailor_llm_upstream_failovers_total Requests that failed on a model server and went to another.\n"
               "# TYPE tailor_llm_upstream_failovers_total counter\n");
    for (int i = 0; i < n; i++)
        sb_printf(o, "tailor_llm_upstream_failovers_total{url=\"%s\"} %llu\n", st[i].url,
                  (unsigned long long)st[i].failovers);
    sb_puts(o, "# HELP tailor_llm_upstream_breaker_opens_total Times a model server was taken out.\n"
               "# TYPE tailor_llm_upstream_breaker_opens_total counter\n");
    for (int i = 0; i < n; i++)
        sb_printf(o, "tailor_llm_upstream_breaker_opens_total{url=\"%s\"} %llu\n", st[i].url,
                  (unsigned long long)st[i].breaker_opens);
    sb_puts(o, "# HELP tailor_llm_upstream_duration_seconds Time of a model server's replies, to the last byte.\n"
               "# TYPE tailor_llm_upstream_duration_seconds histogram\n");
    for (int i = 0; i < n; i++) {
        for (int b = 0; b < LLM_UPSTREAM_BUCKETS; b++) {
            if (b < LLM_UPSTREAM_BUCKETS - 1)
                sb_printf(o, "tailor_llm_upstream_duration_seconds_bucket{url=\"%s\",le=\"%g\"} %llu\n", st[i].url,
                          llm_upstream_bucket_le[b], (unsigned long long)st[i].le[b]);
            else
                sb_printf(o, "tailor_llm_upstream_duration_seconds_bucket{url=\"%s\",le=\"+Inf\"} %llu\n", st[i].url,
                          (unsigned long long)st[i].le[b]);
        }
        sb_printf(o, "tailor_llm_upstream_duration_seconds_sum{url=\"%s\"} %.6f\n", st[i].url, st[i].seconds);
        sb_printf(o, "tailor_llm_upstream_duration_seconds_count{url=\"%s\"} %llu\n", st[i].url,
                  (unsigned long long)st[i].ok);
    }
}

void srv_metrics(srv_req *r) {
    srv *s = r->srv;
    sb *o = &r->out;
    sb_puts(o, "# HELP tailor_http_requests_total Requests answered, by route and status.\n"
               "# TYPE tailor_http_requests_total counter\n");
    for (int id = 0; id <= SRV_N_ROUTES; id++)
        for (int i = 0; i < N_STATUS; i++) {
            uint64_t v = atomic_load(&s->rm[id].by_status[i]);
            if (!v) continue;
            sb_puts(o, "tailor_http_requests_total{");
            route_label(o, id);
            if (STATUSES[i]) sb_printf(o, ",status=\"%d\"} %llu\n", STATUSES[i], (unsigned long long)v);
            else sb_printf(o, ",status=\"other\"} %llu\n", (unsigned long long)v);
        }
    sb_puts(o, "# HELP tailor_http_request_duration_seconds Time from a request's first byte to its last response byte.\n"
               "# TYPE tailor_http_request_duration_seconds histogram\n");
    static const char *const CLASS[4] = {"2xx", "3xx", "4xx", "5xx"};
    for (int id = 0; id <= SRV_N_ROUTES; id++)
        for (int c = 0; c < 4; c++) {
            uint64_t total = 0;
            for (int b = 0; b <= N_BUCKETS; b++) total += atomic_load(&s->rm[id].buckets[c][b]);
            if (!total) continue;
            uint64_t cum = 0;
            for (int b = 0; b <= N_BUCKETS; b++) {
                cum += atomic_load(&s->rm[id].buckets[c][b]);
                sb_puts(o, "tailor_http_request_duration_seconds_bucket{");
                route_label(o, id);
                if (b < N_BUCKETS) sb_printf(o, ",code=\"%s\",le=\"%g\"} %llu\n", CLASS[c], BUCKETS[b], (unsigned long long)cum);
                else sb_printf(o, ",code=\"%s\",le=\"+Inf\"} %llu\n", CLASS[c], (unsigned long long)cum);
            }
            sb_puts(o, "tailor_http_request_duration_seconds_sum{");
            route_label(o, id);
            sb_printf(o, ",code=\"%s\"} %.6f\n", CLASS[c], (double)atomic_load(&s->rm[id].sum_us[c]) * 1e-6);
            sb_puts(o, "tailor_http_request_duration_seconds_count{");
            route_label(o, id);
            sb_printf(o, ",code=\"%s\"} %llu\n", CLASS[c], (unsigned long long)total);
        }
    pthread_mutex_lock(&s->mu);
    int depth = s->len;
    pthread_mutex_unlock(&s->mu);
    uint64_t tok = atomic_load(&s->tokens), ns = atomic_load(&s->token_ns);
    sb_printf(o,
              "# HELP tailor_queue_depth Requests waiting for a worker.\n# TYPE tailor_queue_depth gauge\n"
              "tailor_queue_depth %d\n"
              "# HELP tailor_queue_capacity Requests that may wait before 503.\n# TYPE tailor_queue_capacity gauge\n"
              "tailor_queue_capacity %d\n"
              "# HELP tailor_workers Worker threads.\n# TYPE tailor_workers gauge\ntailor_workers %d\n"
              "# HELP tailor_requests_open Requests received and not yet answered.\n"
              "# TYPE tailor_requests_open gauge\ntailor_requests_open %d\n"
              "# HELP tailor_llm_tokens_total Tokens the language model generated.\n"
              "# TYPE tailor_llm_tokens_total counter\ntailor_llm_tokens_total %llu\n"
              "# HELP tailor_llm_generation_seconds_total Time spent generating them.\n"
              "# TYPE tailor_llm_generation_seconds_total counter\ntailor_llm_generation_seconds_total %.6f\n"
              "# HELP tailor_llm_tokens_per_second Generated tokens per second of generation, since start.\n"
              "# TYPE tailor_llm_tokens_per_second gauge\ntailor_llm_tokens_per_second %.3f\n"
              "# HELP tailor_uptime_seconds Seconds since the server started.\n"
              "# TYPE tailor_uptime_seconds gauge\ntailor_uptime_seconds %.3f\n",
              depth, s->cap, s->n_workers, atomic_load(&s->open) - 1, (unsigned long long)tok, (double)ns * 1e-9,
              ns ? (double)tok / ((double)ns * 1e-9) : 0.0, timer_seconds_since(s->started_ns));
    upstream_metrics(s, o);
    store_model *models;
    size_t n;
    tailor_error err = {0};
    if (!store_models_list(r->w->s, &models, &n, &err)) {
        sb_puts(o, "# HELP tailor_model Trained models: 1 for the active one, 0 for the others (trained_at: unix time).\n"
                   "# TYPE tailor_model gauge\n");
        for (size_t i = 0; i < n; i++)
            sb_printf(o, "tailor_model{name=\"%s\",kind=\"%s\",trained_at=\"%lld\"} %d\n", models[i].name,
                      models[i].kind, (long long)models[i].trained_at, models[i].active ? 1 : 0);
        store_models_free(models, n);
    }
    r->ctype = "text/plain; version=0.0.4";
    r->status = 200;
}

/* ---- start and stop --------------------------------------------------------------- */

static void log_mhd(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    char m[512];
    vsnprintf(m, sizeof m, fmt, ap);
    size_t n = strlen(m);
    while (n && m[n - 1] == '\n') m[--n] = 0;
    log_info("http: %s", m);
}

static void workers_stop(srv *s) {
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    for (int i = 0; i < s->n_started; i++) pthread_join(s->threads[i], NULL);
    s->n_started = 0;
}

void srv_free(srv *s) {
    if (!s) return;
    if (s->d) MHD_quiesce_daemon(s->d);
    /* Every queued request is handled before the workers leave. */
    workers_stop(s);
    /* Give the polling thread time to send what the workers answered. */
    for (int i = 0; i < 500 && atomic_load(&s->open) > 0; i++) usleep(10000);
    if (s->d) MHD_stop_daemon(s->d);
    for (int i = 0; i < s->n_workers; i++) {
        srv_worker *w = &s->workers[i];
        if (w->rules) w->rules->ops->free(w->rules);
        if (w->retriever) kg_retriever_close(w->retriever);
        free(w->retriever);
        pz_engine_free(w->e);
        store_close(w->s);
    }
    if (s->llm) s->llm->ops->free(s->llm);
    kg_index_close(s->index);
    free(s->workers);
    free(s->threads);
    free(s->ring);
    free(s->rm);
    hmap_deinit(&s->rate_index);
    vec_free(&s->rates);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->llm_mu);
    pthread_mutex_destroy(&s->rate_mu);
    free(s);
}

int srv_new(const srv_params *p, srv **out, tailor_error *err) {
    *out = NULL;
    srv *s = xcalloc(1, sizeof *s);
    s->p = *p;
    s->llm = p->llm;
    if (s->llm) shared_init(s);
    s->started_ns = timer_now_ns();
    if (s->p.queue <= 0) s->p.queue = 256;
    if (!s->p.max_body) s->p.max_body = 1 << 20;
    if (s->p.timeout_s <= 0) s->p.timeout_s = 30;
    if (s->p.max_connections <= 0) s->p.max_connections = 1024;
    s->n_workers = p->threads > 0 ? p->threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (s->n_workers < 1) s->n_workers = 1;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    pthread_mutex_init(&s->llm_mu, NULL);
    pthread_mutex_init(&s->rate_mu, NULL);
    hmap_init(&s->rate_index, 16);
    s->cap = s->p.queue;
    s->ring = xcalloc((size_t)s->cap, sizeof *s->ring);
    s->rm = xcalloc((size_t)SRV_N_ROUTES + 1, sizeof *s->rm);
    atomic_init(&s->open, 0);
    s->workers = xcalloc((size_t)s->n_workers, sizeof *s->workers);
    s->threads = xcalloc((size_t)s->n_workers, sizeof *s->threads);
    int rc = 0;
    /* The vector index, when there is one: the chat's search tool fuses
     * words and meaning. One copy for all workers; a model each. */
    rc = kg_index_open_for(p->files ? p->files : p->db_path, p->index, &s->index, err);
    for (int i = 0; i < s->n_workers && !rc; i++) {
        srv_worker *w = &s->workers[i];
        w->srv = s;
        w->id = i;
        rc = store_open(p->db_path, store_default_params(), &w->s, err);
        /* An acknowledged write survives a power cut, not only a crash. */
        if (!rc) rc = store_durable_commits(w->s, err);
        if (!rc) rc = pz_engine_new(w->s, &w->e, err);
        if (!rc) rc = agent_rules_new(w->e, &w->rules, err);
        if (!rc && s->index) {
            w->retriever = xcalloc(1, sizeof *w->retriever);
            rc = kg_retriever_open(w->retriever, s->index, NULL, err);
            if (rc) free(w->retriever), w->retriever = NULL;
            if (rc && !p->index && i == 0) { /* the default index's model is gone: words only */
                log_warn("the vector index's model is not usable (%s): chat searches words only", err->msg);
                kg_index_close(s->index);
                s->index = NULL;
                rc = 0, *err = (tailor_error){0};
            }
        }
    }
    for (int i = 0; i < s->n_workers && !rc; i++) {
        if (pthread_create(&s->threads[i], NULL, worker_main, &s->workers[i]))
            rc = err_set(err, TAILOR_EINTERNAL, "cannot start worker thread %d", i);
        else s->n_started++;
    }
    if (!rc) {
        struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)p->port)};
        const char *host = p->host ? p->host : "127.0.0.1";
        if (inet_pton(AF_INET, host, &addr.sin_addr) != 1)
            rc = err_set(err, TAILOR_EINVAL, "--host takes an IPv4 address (e.g. 127.0.0.1 or 0.0.0.0), not '%s'", host);
        if (!rc) {
            s->d = MHD_start_daemon(
                MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG,
                (uint16_t)p->port, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_CONNECTION_TIMEOUT,
                (unsigned)s->p.timeout_s, MHD_OPTION_CONNECTION_LIMIT, (unsigned)s->p.max_connections,
                MHD_OPTION_EXTERNAL_LOGGER, log_mhd, NULL, MHD_OPTION_LISTENING_ADDRESS_REUSE, 1,
                MHD_OPTION_END);
            if (!s->d)
                rc = err_set(err, TAILOR_EIO, "cannot listen on %s:%d (in use, or not allowed)", host, p->port);
        }
    }
    if (!rc) {
        const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
        s->port = info ? info->port : p->port;
    }
    if (rc) {
        s->llm = NULL; /* the caller keeps its backend when we fail */
        srv_free(s);
        return rc;
    }
    *out = s;
    return 0;
}
