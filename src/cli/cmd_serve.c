/* cmd_serve.c — `tailor serve` (the HTTP server until SIGINT/SIGTERM, which
 * let requests in flight finish) and `tailor keys create|list|revoke`
 * (API keys: random, shown once, stored as SHA-256 hashes). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "server/server.h"

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig) { stop_signal = sig; }

int cmd_serve(cli_args *a) {
    srv_params p = srv_default_params();
    long port, threads, queue, max_body, timeout;
    if (!cli_opt_int(a, "port", 8080, 0, 65535, &port)) return cli_usage_error(a, "--port takes 0-65535");
    if (!cli_opt_int(a, "threads", 0, 0, 256, &threads)) return cli_usage_error(a, "--threads takes 1-256");
    if (!cli_opt_int(a, "queue", 256, 1, 1 << 20, &queue)) return cli_usage_error(a, "--queue takes a positive number");
    if (!cli_opt_int(a, "max-body", 1 << 20, 1024, 1L << 30, &max_body))
        return cli_usage_error(a, "--max-body takes bytes from 1024 to 1 GiB");
    if (!cli_opt_int(a, "timeout", 30, 1, 3600, &timeout)) return cli_usage_error(a, "--timeout takes 1-3600 seconds");
    if (cli_flag(a, "web") && cli_flag(a, "no-web")) return cli_usage_error(a, "give --web or --no-web, not both");
    p.db_path = a->db_path;
    p.files = a->files;
    p.port = (int)port;
    p.threads = (int)threads;
    p.queue = (int)queue;
    p.max_body = (size_t)max_body;
    p.timeout_s = (int)timeout;
    p.web = !cli_flag(a, "no-web");
    p.metrics_open = cli_flag(a, "metrics-open");
    if (cli_opt_get(a, "host")) p.host = cli_opt_get(a, "host");
    p.reports = cli_opt_get(a, "reports");
    p.index = cli_opt_get(a, "index");
    int code;
    store *check = cli_open_store(a, true, &code); /* a clear message for a missing or newer database */
    if (!check) return code;
    store_close(check);
    llm_backend *llm;
    if ((code = cli_backend_new(a, "model-threads", &llm))) return code;
    const char *model = cli_opt_get(a, "model");
    if (llm && model) {
        const char *base = strrchr(model, '/');
        p.llm_name = base ? base + 1 : model;
    } else if (llm) {
        p.llm_name = cli_opt_get(a, "llm-model") ? cli_opt_get(a, "llm-model") : "default";
    }
    if (cli_opt_get(a, "served-name")) p.llm_name = cli_opt_get(a, "served-name");
    p.llm = llm;
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    srv *s;
    tailor_error err = {0};
    if (srv_new(&p, &s, &err)) {
        if (llm) llm->ops->free(llm);
        return cli_fail(&err);
    }
    printf("tailor serve: listening on http://%s:%d/ (%ld workers; %s)\n", p.host, srv_port(s),
           p.threads > 0 ? (long)p.threads : sysconf(_SC_NPROCESSORS_ONLN),
           llm ? (model ? "language model from --model" : "language model at --llm-url") : "rules backend, no model");
    if (!a->quiet) {
        printf("  API: /api/...  OpenAI-compatible: /v1/...  description: /openapi.json  metrics: /metrics\n");
        if (p.web) printf("  the page: http://%s:%d/\n", p.host, srv_port(s));
        printf("  keys: tailor --db %s keys create --role admin|user; Ctrl-C stops\n", a->db_path);
    }
    fflush(stdout);
    while (!stop_signal) pause();
    if (!a->quiet) fprintf(stderr, "tailor serve: %s, finishing requests in flight\n",
                           stop_signal == SIGTERM ? "SIGTERM" : "interrupted");
    srv_free(s);
    return 0;
}

/* ---- keys ---------------------------------------------------------------------- */

int cmd_keys_create(cli_args *a) {
    const char *role = cli_opt_get(a, "role"), *user = cli_opt_get(a, "user");
    if (!role || (strcmp(role, "admin") && strcmp(role, "user")))
        return cli_usage_error(a, "--role is admin or user");
    if (!strcmp(role, "user") && !user) return cli_usage_error(a, "a user key needs --user ID");
    if (!strcmp(role, "admin") && user) return cli_usage_error(a, "an admin key acts for every user: leave out --user");
    const char *rv = cli_opt_get(a, "rate");
    double rate = !strcmp(role, "user") ? 50 : 0;
    if (rv && (!parse_f64(rv, strlen(rv), &rate) || rate < 0 || rate > 1e6))
        return cli_usage_error(a, "--rate takes requests per second (0: no limit)");
    int code;
    store *s = cli_open_store(a, true, &code);
    if (!s) return code;
    store_key row = {.name = (char *)cli_opt_get(a, "name"), .role = (char *)role, .user = (char *)user, .rate = rate};
    int64_t id;
    char key[STORE_KEY_LEN + 1];
    tailor_error err = {0};
    int rc = store_key_create(s, &row, key, &id, &err);
    store_close(s);
    if (rc) return cli_fail(&err);
    printf("%s\n", key);
    if (!a->quiet)
        fprintf(stderr, "key %lld (%s%s%s%s), %s: shown this once, keep it (the store keeps only its hash)\n",
                (long long)id, role, user ? " for user " : "", user ? user : "",
                cli_opt_get(a, "name") ? ", named" : "", rate > 0 ? "rate-limited" : "no rate limit");
    return 0;
}

int cmd_keys_list(cli_args *a) {
    int code;
    store *s = cli_open_store(a, true, &code);
    if (!s) return code;
    store_key *keys;
    size_t n;
    tailor_error err = {0};
    int rc = store_keys_list(s, &keys, &n, &err);
    store_close(s);
    if (rc) return cli_fail(&err);
    bool json = cli_flag(a, "json");
    sb o;
    sb_init(&o);
    if (json) sb_puts(&o, "{\"keys\":[");
    else printf("%-4s %-13s %-6s %-12s %-16s %-8s %s\n", "id", "prefix", "role", "user", "name", "rate/s", "state");
    for (size_t i = 0; i < n; i++) {
        const store_key *k = &keys[i];
        if (json) {
            sb_printf(&o, "%s{\"id\":%lld,\"prefix\":", i ? "," : "", (long long)k->id);
            sb_json_str(&o, k->prefix, strlen(k->prefix));
            sb_printf(&o, ",\"role\":\"%s\",\"user\":", k->role);
            if (k->user) sb_json_str(&o, k->user, strlen(k->user));
            else sb_puts(&o, "null");
            sb_puts(&o, ",\"name\":");
            if (k->name) sb_json_str(&o, k->name, strlen(k->name));
            else sb_puts(&o, "null");
            sb_printf(&o, ",\"rate\":%g,\"created_at\":%lld,\"revoked\":%s}", k->rate, (long long)k->created_at,
                      k->revoked_at ? "true" : "false");
        } else {
            char rate[16];
            snprintf(rate, sizeof rate, k->rate > 0 ? "%g" : "-", k->rate);
            printf("%-4lld %-13s %-6s %-12s %-16s %-8s %s\n", (long long)k->id, k->prefix, k->role,
                   k->user ? k->user : "-", k->name ? k->name : "-", rate, k->revoked_at ? "revoked" : "in force");
        }
    }
    if (json) printf("%s]}\n", sb_str(&o));
    else if (!n) printf("no keys yet: tailor keys create --role admin\n");
    sb_deinit(&o);
    store_keys_free(keys, n);
    return 0;
}

int cmd_keys_revoke(cli_args *a) {
    int code;
    store *s = cli_open_store(a, true, &code);
    if (!s) return code;
    tailor_error err = {0};
    int rc = store_key_revoke(s, a->pos[0], &err);
    store_close(s);
    if (rc) return cli_fail(&err);
    if (!a->quiet) printf("revoked %s: requests with it get 401 from now on\n", a->pos[0]);
    return 0;
}
