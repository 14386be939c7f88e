/* routes.c — every route, once: the router, the metrics' labels and the
 * OpenAPI description at /openapi.json are all read from this table. */
#include <stdlib.h>
#include <string.h>

#include "server/internal.h"

#define FILTER_Q "filter:string:a condition on an item attribute, KEY=VALUE, KEY!=VALUE, KEY>=N or KEY<=N (repeatable)"
#define MODEL_Q "model:string:the trained model (default: the active one)"

const srv_route SRV_ROUTES[] = {
    {"GET", "/healthz", SRV_OPEN, true, api_healthz, "liveness: the process answers", NULL, NULL},
    {"GET", "/readyz", SRV_USER, false, api_readyz, "readiness: the store answers and the catalogue is loaded", NULL,
     NULL},
    {"GET", "/metrics", SRV_ADMIN, false, api_metrics,
     "Prometheus metrics: requests and latency per route and status, queue depth, tokens per second, models", NULL,
     NULL},
    {"GET", "/openapi.json", SRV_USER, false, api_openapi, "this description", NULL, NULL},
    {"GET", "/", SRV_OPEN, true, api_web, "the web page (chat, recommendations, evaluation reports)", NULL, NULL},
    {"GET", "/web/{file}", SRV_OPEN, true, api_web, "the web page's files", NULL, NULL},
    {"GET", "/api/me", SRV_USER, false, api_me, "the key's role and user", NULL, NULL},
    {"GET", "/api/items", SRV_USER, false, api_items_search,
     "items: full-text search over titles, texts and tags (q), or the catalogue in order",
     "q:string:words to search for|k:integer:how many (1-1000, default 20)|offset:integer:skip this many (without "
     "q)|" FILTER_Q,
     NULL},
    {"GET", "/api/items/{id}", SRV_USER, false, api_item_get, "an item: title, text, attributes, popularity", NULL,
     NULL},
    {"GET", "/api/items/{id}/similar", SRV_USER, false, api_item_similar, "items most similar to an item",
     "k:integer:how many (1-100, default 10)|" MODEL_Q "|" FILTER_Q, NULL},
    {"GET", "/api/users/{id}", SRV_USER, false, api_user_get, "a user: attributes, events, first and last time",
     NULL, NULL},
    {"GET", "/api/users/{id}/history", SRV_USER, false, api_user_history, "a user's events in time order",
     "limit:integer:the newest this many (default 100, at most 10000)", NULL},
    {"GET", "/api/users/{id}/recommendations", SRV_USER, false, api_user_recommend,
     "recommendations for a user (items they have are left out)",
     "k:integer:how many (1-100, default 10)|" MODEL_Q "|" FILTER_Q
     "|explain:boolean:say why each item|novelty:number:0-1, higher moves less popular items up|exclude:string:an "
     "item id never to return (repeatable)|cold:integer:places at the end for items nobody has had yet, placed by the "
     "knowledge graph (0-100, default 0)",
     NULL},
    {"POST", "/api/recommendations", SRV_USER, false, api_recommend,
     "recommendations for an anonymous history (a visitor without an account, a chat)", NULL,
     "{\"history\": [item ids], \"k\", \"model\", \"filters\": [\"KEY=VALUE\"], \"explain\", \"novelty\", "
     "\"cold\", \"exclude\": [item ids]}"},
    {"POST", "/api/events", SRV_USER, false, api_events_post,
     "append events, one or a batch, in one transaction; 201 once committed", NULL,
     "{\"user\", \"item\", \"kind\", \"value\", \"ts\", \"id\"} or {\"events\": [...]}; id: a client event id that "
     "makes a retry idempotent; unknown users are created, unknown items refused"},
    {"GET", "/api/models", SRV_USER, false, api_models_list, "trained models, which one is active", NULL, NULL},
    {"GET", "/api/models/{name}", SRV_USER, false, api_model_get,
     "a model: kind, parameters, training data, last evaluation", NULL, NULL},
    {"POST", "/api/models/{name}/activate", SRV_ADMIN, false, api_model_activate,
     "make a model the active one (every worker serves it from its next request)", NULL, NULL},
    {"POST", "/api/sessions", SRV_USER, false, api_session_new, "start a conversation", NULL,
     "{\"user\": id (default: the key's user; admin keys may leave it out: anonymous), \"memory\": "
     "\"truncate|summarize|retrieve\"}"},
    {"GET", "/api/sessions/{id}", SRV_USER, false, api_session_get, "a conversation's messages", NULL, NULL},
    {"POST", "/api/sessions/{id}/messages", SRV_USER, false, api_session_message,
     "say something; the answer (items, tool calls) as JSON, or streamed as server-sent events",
     "stream:boolean:answer as text/event-stream (also when Accept says so)",
     "{\"text\": what the person says, \"stream\": bool, \"model\": recommender}"},
    {"GET", "/api/reports", SRV_USER, false, api_reports,
     "evaluation reports (tailor eval --report) in the server's reports folder", NULL, NULL},
    {"GET", "/api/reports/file", SRV_USER, false, api_report_file, "a file of a report (report.md, results.json, an SVG chart)",
     "dir:string:the report's folder, as /api/reports lists it|file:string:report.md, results.json or NAME.svg", NULL},
    {"GET", "/v1/models", SRV_USER, false, oa_models, "OpenAI: the language model served", NULL, NULL},
    {"POST", "/v1/chat/completions", SRV_USER, false, oa_chat,
     "OpenAI: chat completion (stream, tools, tool_choice, response_format with a JSON schema)", NULL,
     "OpenAI's chat completion request"},
    {"POST", "/v1/completions", SRV_USER, false, oa_completions, "OpenAI: text completion of a prompt", NULL,
     "OpenAI's completion request"},
    {"POST", "/v1/embeddings", SRV_USER, false, oa_embeddings, "OpenAI: embeddings of texts", NULL,
     "OpenAI's embedding request"},
};
const int SRV_N_ROUTES = sizeof SRV_ROUTES / sizeof SRV_ROUTES[0];

static int unhex(char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

static char *decode_segment(const char *s, size_t n) {
    char *o = xmalloc(n + 1);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n && unhex(s[i + 1]) >= 0 && unhex(s[i + 2]) >= 0) {
            o[k++] = (char)(unhex(s[i + 1]) * 16 + unhex(s[i + 2]));
            i += 2;
        } else {
            o[k++] = s[i];
        }
    }
    o[k] = 0;
    return o;
}

/* Matches path against pattern; captures {x} segments. */
static bool match(const char *pattern, const char *path, char **params, int max, int *n) {
    *n = 0;
    const char *p = pattern, *q = path;
    while (*p && *q) {
        if (*p == '{') {
            const char *pe = strchr(p, '}'), *qe = strchr(q, '/');
            if (!qe) qe = q + strlen(q);
            if (qe == q || *n >= max) goto fail;
            params[(*n)++] = decode_segment(q, (size_t)(qe - q));
            p = pe + 1, q = qe;
        } else if (*p++ != *q++) {
            goto fail;
        }
    }
    if (!*p && !*q) return true;
fail:
    for (int i = 0; i < *n; i++) free(params[i]);
    *n = 0;
    return false;
}

int srv_route_find(const char *method, const char *path, char **params, int max_params, int *n_params,
                   bool *path_known) {
    *path_known = false;
    *n_params = 0;
    for (int i = 0; i < SRV_N_ROUTES; i++) {
        int n;
        if (!match(SRV_ROUTES[i].pattern, path, params, max_params, &n)) continue;
        if (!strcmp(SRV_ROUTES[i].method, method) || (!strcmp(method, "HEAD") && !strcmp(SRV_ROUTES[i].method, "GET"))) {
            *n_params = n;
            return i;
        }
        for (int j = 0; j < n; j++) free(params[j]);
        *path_known = true;
    }
    return -1;
}

void srv_route_allow(const char *path, sb *out) {
    for (int i = 0; i < SRV_N_ROUTES; i++) {
        char *params[4];
        int n;
        if (!match(SRV_ROUTES[i].pattern, path, params, 4, &n)) continue;
        for (int j = 0; j < n; j++) free(params[j]);
        sb_printf(out, "%s%s", out->len ? ", " : "", SRV_ROUTES[i].method);
    }
}

static void json_str(sb *o, const char *s) { sb_json_str(o, s, strlen(s)); }

void srv_openapi(sb *o) {
    sb_printf(o,
              "{\"openapi\":\"3.0.3\",\"info\":{\"title\":\"tailor\",\"version\":\"%s\",\"description\":"
              "\"tailor's HTTP API: the catalogue, events, recommendations, models, conversations, and an "
              "OpenAI-compatible /v1. Errors are {\\\"error\\\": {\\\"code\\\", \\\"message\\\"}}.\"},"
              "\"components\":{\"securitySchemes\":{\"key\":{\"type\":\"http\",\"scheme\":\"bearer\"}},"
              "\"schemas\":{\"Error\":{\"type\":\"object\",\"properties\":{\"error\":{\"type\":\"object\","
              "\"properties\":{\"code\":{\"type\":\"string\"},\"message\":{\"type\":\"string\"}}}}}}},"
              "\"paths\":{",
              tailor_version());
    for (int i = 0; i < SRV_N_ROUTES; i++) {
        const srv_route *r = &SRV_ROUTES[i];
        bool first_of_path = true;
        for (int j = 0; j < i; j++)
            if (!strcmp(SRV_ROUTES[j].pattern, r->pattern)) first_of_path = false;
        if (!first_of_path) continue;
        if (i) sb_putc(o, ',');
        json_str(o, r->pattern);
        sb_puts(o, ":{");
        bool first = true;
        for (int j = i; j < SRV_N_ROUTES; j++) {
            const srv_route *m = &SRV_ROUTES[j];
            if (strcmp(m->pattern, r->pattern)) continue;
            if (!first) sb_putc(o, ',');
            first = false;
            char lower[8] = {0};
            for (int k = 0; k < 7 && m->method[k]; k++) lower[k] = (char)(m->method[k] | 0x20);
            sb_printf(o, "\"%s\":{\"summary\":", lower);
            json_str(o, m->summary);
            sb_printf(o, ",\"security\":%s,\"parameters\":[", m->scope == SRV_OPEN ? "[]" : "[{\"key\":[]}]");
            bool firstp = true;
            for (const char *p = m->pattern; (p = strchr(p, '{')); p++) {
                const char *e = strchr(p, '}');
                sb_printf(o, "%s{\"name\":\"%.*s\",\"in\":\"path\",\"required\":true,\"schema\":{\"type\":\"string\"}}",
                          firstp ? "" : ",", (int)(e - p - 1), p + 1);
                firstp = false;
            }
            for (const char *q = m->query; q && *q;) {
                const char *end = strchr(q, '|');
                if (!end) end = q + strlen(q);
                const char *c1 = memchr(q, ':', (size_t)(end - q));
                const char *c2 = c1 ? memchr(c1 + 1, ':', (size_t)(end - c1 - 1)) : NULL;
                if (c2) {
                    sb_printf(o, "%s{\"name\":\"%.*s\",\"in\":\"query\",\"schema\":{\"type\":\"%.*s\"},\"description\":",
                              firstp ? "" : ",", (int)(c1 - q), q, (int)(c2 - c1 - 1), c1 + 1);
                    sb_json_str(o, c2 + 1, (size_t)(end - c2 - 1));
                    sb_putc(o, '}');
                    firstp = false;
                }
                q = *end ? end + 1 : end;
            }
            sb_putc(o, ']');
            if (m->body) {
                sb_puts(o, ",\"requestBody\":{\"required\":true,\"description\":");
                json_str(o, m->body);
                sb_puts(o, ",\"content\":{\"application/json\":{\"schema\":{\"type\":\"object\"}}}}");
            }
            sb_puts(o, ",\"responses\":{\"200\":{\"description\":\"OK\"},\"default\":{\"description\":\"an error\","
                       "\"content\":{\"application/json\":{\"schema\":{\"$ref\":\"#/components/schemas/Error\"}}}}}}");
        }
        sb_putc(o, '}');
    }
    sb_puts(o, "}}");
}
