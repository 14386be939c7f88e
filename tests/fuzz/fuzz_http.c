/* fuzz_http.c — libFuzzer target for the request router and the handlers'
 * reading of query strings and JSON bodies. An input is "METHOD PATH\n
 * BODY"; the route is found as the server finds it and its handler runs
 * with an admin key over a small store (three items, one user, no model),
 * as a worker would run it. Every answer must be a status with a JSON
 * error or a body. Streaming requests are left out (they need a live
 * connection). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/internal.h"

static srv *g_srv;
static srv_worker g_w;

static void setup(void) {
    char dir[] = "/tmp/tailor-fuzz-http-XXXXXX";
    if (!mkdtemp(dir)) abort();
    char *db = path_join(dir, "f.db");
    tailor_error e = {0};
    store *s;
    if (store_open(db, store_default_params(), &s, &e)) abort();
    int64_t id;
    store_item_put(s, "1", "Toy Story (1995)", NULL, "{\"genres\":[\"Comedy\"],\"year\":1995}", STORE_DUP_ERROR, &id, NULL, &e);
    store_item_put(s, "2", "Heat (1995)", "a heist", "{\"genres\":[\"Crime\"],\"year\":1995}", STORE_DUP_ERROR, &id, NULL, &e);
    store_item_put(s, "3", "Alien (1979)", NULL, "{\"genres\":[\"Horror\"],\"year\":1979}", STORE_DUP_ERROR, &id, NULL, &e);
    store_user_put(s, "u", NULL, STORE_DUP_ERROR, &id, NULL, &e);
    store_close(s);
    srv_params p = srv_default_params();
    p.db_path = db;
    p.port = 0;
    p.threads = 1;
    if (srv_new(&p, &g_srv, &e)) abort();
    g_w.srv = g_srv;
    if (store_open(db, store_default_params(), &g_w.s, &e) || pz_engine_new(g_w.s, &g_w.e, &e) ||
        agent_rules_new(g_w.e, &g_w.rules, &e))
        abort();
    free(db);
    log_set_level(LOG_LEVEL_OFF);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!g_srv) setup();
    const char *nl = memchr(data, '\n', size);
    size_t head = nl ? (size_t)(nl - (const char *)data) : size;
    char *line = xstrndup((const char *)data, head);
    if (strlen(line) != head) {
        free(line);
        return 0;
    }
    char *sp = strchr(line, ' ');
    if (!sp) {
        free(line);
        return 0;
    }
    *sp = 0;
    const char *method = line;
    char *path = sp + 1;
    srv_req r = {.srv = g_srv, .w = &g_w, .method = method, .accept = ""};
    char *q = strchr(path, '?');
    if (q) {
        *q++ = 0;
        for (char *sv = NULL, *kv = strtok_r(q, "&", &sv); kv && r.n_query < 16; kv = strtok_r(NULL, "&", &sv)) {
            char *eq = strchr(kv, '=');
            r.query = xrealloc(r.query, (size_t)(r.n_query + 1) * 2 * sizeof *r.query);
            r.query[2 * r.n_query] = eq ? xstrndup(kv, (size_t)(eq - kv)) : xstrdup(kv);
            r.query[2 * r.n_query + 1] = xstrdup(eq ? eq + 1 : "");
            r.n_query++;
        }
    }
    r.path = path;
    bool known;
    int id = srv_route_find(method, path, r.params, 4, &r.n_params, &known);
    const char *body = nl ? nl + 1 : "";
    r.body = body;
    r.body_len = nl ? size - head - 1 : 0;
    bool streams = r.body_len && memmem(body, r.body_len, "stream", 6);
    if (id >= 0 && !(streams && (SRV_ROUTES[id].fn == api_session_message || SRV_ROUTES[id].fn == oa_chat ||
                                 SRV_ROUTES[id].fn == oa_completions))) {
        r.route = &SRV_ROUTES[id];
        r.admin = true;
        r.status = 200;
        sb_init(&r.out);
        r.route->fn(&r);
        if (r.status < 200 || r.status > 599 || r.stream) __builtin_trap();
        if (r.status >= 400 && !strstr(sb_str(&r.out), "\"error\"")) __builtin_trap();
        sb_deinit(&r.out);
    }
    for (int i = 0; i < r.n_params; i++) free(r.params[i]);
    for (int i = 0; i < 2 * r.n_query; i++) free(r.query[i]);
    free(r.query);
    free(line);
    return 0;
}
