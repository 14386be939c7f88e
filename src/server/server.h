/* server.h — `tailor serve`: the HTTP face of the library (REST under
 * /api, an OpenAI-compatible /v1, health, metrics, the OpenAPI description
 * and the web page).
 *
 * Owns: the libmicrohttpd daemon (one polling thread that only moves
 * bytes), a fixed pool of worker threads each with its own store
 * connection and serving engine, the bounded queue between them, API key
 * checks, per-key rate limits and the metrics. Handlers run on workers;
 * a connection waits suspended while its request is queued or handled, so
 * a slow handler (a language model writing) never stalls other clients.
 */
#ifndef TAILOR_SERVER_H
#define TAILOR_SERVER_H

#include "llm/llm.h"

typedef struct srv_params {
    const char *db_path; /* the store: a SQLite file or a postgresql:// URL */
    const char *files;   /* store_files_base(db_path), for the reports and the index (NULL: from db_path) */
    const char *host;   /* default 127.0.0.1 */
    int port;           /* 0: any free port (srv_port says which) */
    int threads;        /* workers (0: the number of cores) */
    int queue;          /* requests waiting for a worker at most (default 256); beyond: 503 */
    size_t max_body;    /* bytes (default 1 MiB); beyond: 413 */
    int timeout_s;      /* an idle client is dropped after this long (default 30) */
    int max_connections;/* default 1024 */
    bool web;           /* serve the page at / (default on) */
    bool metrics_open;  /* /metrics without a key */
    /* The language model behind /v1 and (when set) the chat sessions;
     * NULL: chat uses the rules backend and /v1 answers 503. The server
     * takes ownership (frees it) and serialises calls into it. */
    llm_backend *llm;
    const char *llm_name; /* the model's id in /v1/models */
    const char *reports;  /* folder of `tailor eval --report` outputs the page shows (NULL: DB.reports) */
    /* The item vector index the chat's search tool also uses (NULL:
     * DB.index/items.tvec when it exists; "none": words only). */
    const char *index;
} srv_params;

srv_params srv_default_params(void);

typedef struct srv srv;

/* Opens the store once per worker, starts the workers and the daemon. */
int srv_new(const srv_params *p, srv **out, tailor_error *err);
int srv_port(const srv *s);
/* Stops accepting, lets every request in flight finish, closes the stores. */
void srv_free(srv *s);

#endif
