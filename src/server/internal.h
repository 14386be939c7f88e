/* internal.h — private to src/server/: the request as handlers see it, the
 * route table, streams and the helpers handlers share. */
#ifndef TAILOR_SERVER_INTERNAL_H
#define TAILOR_SERVER_INTERNAL_H

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdatomic.h>

#include "agent/agent.h"
#include "personalize/personalize.h"
#include "server/server.h"
#include "store/store.h"

/* Who may call a route. */
typedef enum srv_scope {
    SRV_OPEN = 0, /* no key */
    SRV_USER,     /* any key; a user key only for its own user (handlers check) */
    SRV_ADMIN,    /* admin keys only */
} srv_scope;

typedef struct srv_req srv_req;
typedef void (*srv_handler)(srv_req *r);

/* One row per route: what the router, the OpenAPI description and the
 * metrics read. */
typedef struct srv_route {
    const char *method, *pattern; /* "/api/items/{id}": {x} matches one path segment */
    srv_scope scope;
    bool on_io;                   /* runs on the polling thread (no store, no key) */
    srv_handler fn;
    const char *summary;
    /* Query parameters, "name:type:description" separated by '|' (may be NULL). */
    const char *query;
    const char *body; /* what the request body holds (NULL: none) */
} srv_route;

extern const srv_route SRV_ROUTES[];
extern const int SRV_N_ROUTES;
/* The route for method and path, its path parameters (malloc'd, percent
 * decoded) in params; -1 when no route matches (*path_known: a route has
 * the path with another method). */
int srv_route_find(const char *method, const char *path, char **params, int max_params, int *n_params,
                   bool *path_known);
/* The methods the routes of path take ("GET, POST"), for a 405's Allow. */
void srv_route_allow(const char *path, sb *out);
/* The OpenAPI 3 description generated from the table. */
void srv_openapi(sb *out);

typedef struct srv_worker {
    srv *srv;
    int id;
    store *s;
    pz_engine *e;
    llm_backend *rules;
    struct kg_retriever *retriever; /* over srv's index, or NULL */
} srv_worker;

/* A streamed response (server-sent events): a worker writes, the polling
 * thread reads; shared until both are done with it. */
typedef struct srv_stream srv_stream;

struct srv_req {
    srv *srv;
    srv_worker *w; /* NULL on the polling thread */
    const srv_route *route;
    const char *method, *path;
    char *params[4];
    int n_params;
    char **query; /* name, value pairs */
    int n_query;
    const char *body;
    size_t body_len;
    const char *accept;
    /* The caller, once the key is checked. */
    bool admin;
    char *user; /* a user key's user */
    int64_t key_id;
    /* The response. */
    int status;
    sb out;
    const char *ctype;
    int retry_after; /* seconds (0: no header) */
    srv_stream *stream;
};

/* The last value of a query parameter, or NULL. */
const char *srv_query(const srv_req *r, const char *name);
/* Every value of a repeated parameter, at most max. */
int srv_query_all(const srv_req *r, const char *name, const char **out, int max);
/* A query integer in [lo, hi] (def when absent); false after writing a 400. */
bool srv_query_int(srv_req *r, const char *name, long def, long lo, long hi, long *out);
/* Writes {"error": {"code", "message"}} with the status. */
void srv_error(srv_req *r, int status, const char *code, const char *fmt, ...) BASE_PRINTF(4, 5);
/* An error of the library as a response: not found 404, invalid 400, ... */
void srv_fail(srv_req *r, const tailor_error *err);
/* The body as a JSON object (or any JSON value when any), or NULL after
 * writing a 400/415. The caller deletes it. */
cJSON *srv_body_json(srv_req *r, bool any);
/* Whether the caller may act for user (admin, or the user's own key);
 * false after writing a 403. */
bool srv_may_act_for(srv_req *r, const char *user);
/* Sets a JSON response: the caller wrote r->out. */
void srv_json(srv_req *r, int status);

/* Turns the response into a stream of ctype: from here on the handler
 * writes through the stream only. */
srv_stream *srv_stream_begin(srv_req *r, const char *ctype);
/* false once the client has gone (stop producing). */
bool srv_stream_write(srv_stream *st, const char *data, size_t n);
bool srv_stream_printf(srv_stream *st, const char *fmt, ...) BASE_PRINTF(2, 3);
void srv_stream_end(srv_stream *st);

/* The language model (NULL when none); calls into it are serialised by
 * srv_llm_lock/unlock, unless its ops say it is concurrent (remote). */
llm_backend *srv_llm(srv *s);
/* The same model as a backend the agent can use from any worker (each call
 * takes the lock when it must); NULL when there is no model. */
llm_backend *srv_llm_shared(srv *s);
bool srv_web_enabled(srv *s);
/* The reports folder (malloc'd path). */
char *srv_reports_dir(srv *s);
const char *srv_llm_name(srv *s);
void srv_llm_lock(srv *s);
void srv_llm_unlock(srv *s);
/* Counts generated tokens and the time they took, for /metrics. */
void srv_count_tokens(srv *s, int64_t tokens, double seconds);
/* The Prometheus text of the metrics (the worker reads active models). */
void srv_metrics(srv_req *r);
/* The page's files (web/, embedded at build time): NULL when unknown. */
const char *srv_web_file(const char *path, size_t *len, const char **ctype);

/* Handlers (api.c, openai.c). */
void api_healthz(srv_req *r);
void api_readyz(srv_req *r);
void api_metrics(srv_req *r);
void api_openapi(srv_req *r);
void api_web(srv_req *r);
void api_items_search(srv_req *r);
void api_item_get(srv_req *r);
void api_item_similar(srv_req *r);
void api_user_get(srv_req *r);
void api_user_history(srv_req *r);
void api_user_recommend(srv_req *r);
void api_recommend(srv_req *r);
void api_events_post(srv_req *r);
void api_models_list(srv_req *r);
void api_model_get(srv_req *r);
void api_model_activate(srv_req *r);
void api_session_new(srv_req *r);
void api_session_get(srv_req *r);
void api_session_message(srv_req *r);
void api_me(srv_req *r);
void api_reports(srv_req *r);
void api_report_file(srv_req *r);
void oa_models(srv_req *r);
void oa_chat(srv_req *r);
void oa_completions(srv_req *r);
void oa_embeddings(srv_req *r);

#endif
