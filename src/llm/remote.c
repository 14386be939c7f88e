/* remote.c — any OpenAI-compatible server as a backend (vLLM, llama.cpp's
 * server, Ollama, OpenAI): POST /chat/completions with stream: true, the
 * server-sent events parsed as they arrive (text streams on, tool-call
 * fragments are joined), tools and tool_choice in the OpenAI format;
 * /embeddings; plain /completions, with logprobs when asked (the legacy
 * object or the chat form, whichever the server writes).
 *
 * Failures are messages, never crashes or hangs: a connect timeout, a read
 * timeout (no byte for read_timeout seconds), retries with backoff on 429,
 * 5xx and connection errors (Retry-After honoured, within bounds), none on
 * other 4xx; every message names the URL and the status. What a remote
 * model returns is not trusted: the agent validates every call's arguments
 * against the tool's schema before anything runs.
 *
 * A fleet (several URLs): requests go round the servers; one that fails is
 * sent once to the next server instead of waiting to retry the same one
 * (a fleet has capacity elsewhere; a backoff would only add latency); a
 * circuit breaker per server keeps requests off one that keeps failing, and
 * a health thread notices when it is back (or gone) without costing a user
 * request. Calls may run at once from many threads: the only shared state
 * is the fleet's, under its mutex, and each call has its own curl handle. */
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "llm/llm.h"

const double llm_upstream_bucket_le[LLM_UPSTREAM_BUCKETS] = {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, INFINITY};

typedef struct upstream {
    char *base;      /* as given, for messages and metrics */
    char *url;       /* .../chat/completions */
    char *embed_url; /* .../embeddings */
    char *text_url;  /* .../completions: plain completions */
    char *models_url; /* .../models: the health check */
    /* The rest under remote.mu. */
    int fails;            /* failures in a row */
    uint64_t open_until;  /* the breaker is open until then (ns); 0: closed */
    bool trying;          /* open, cooled down, one request is trying it */
    char last_error[160];
    llm_upstream_stats st;
} upstream;

typedef struct remote {
    upstream *ups;
    int n_ups;
    char *label; /* the URL, or the fleet's URLs, for messages */
    char *model, *key;
    long connect_ms, read_s;
    int retries;
    llm_sampler_params sampling;
    int32_t max_tokens, n_ctx;
    int breaker_failures;
    uint64_t cooldown_ns, health_ns;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* wakes the health thread to stop */
    unsigned next;     /* round robin */
    bool stopping, health_started;
    pthread_t health;
} remote;

/* ---- the fleet --------------------------------------------------------------- */

/* The server for the next attempt: round robin over those taking requests,
 * other than avoid; an open breaker that has cooled down lets one request
 * through. NULL when none is available (the message says why). */
static upstream *fleet_pick(remote *r, const upstream *avoid, tailor_error *err) {
    if (r->n_ups == 1) return &r->ups[0]; /* one server: no breaker, its own retries */
    uint64_t now = timer_now_ns();
    upstream *got = NULL;
    pthread_mutex_lock(&r->mu);
    for (int k = 0; k < r->n_ups && !got; k++) {
        upstream *u = &r->ups[(r->next + (unsigned)k) % (unsigned)r->n_ups];
        if (u == avoid) continue;
        if (!u->open_until) got = u;
        else if (now >= u->open_until && !u->trying) got = u, u->trying = true;
    }
    if (got) r->next = (unsigned)(got - r->ups + 1) % (unsigned)r->n_ups;
    if (!got) {
        sb m;
        sb_init(&m);
        for (int i = 0; i < r->n_ups; i++) {
            const upstream *u = &r->ups[i];
            if (u == avoid) continue;
            sb_printf(&m, "%s%s (%s)", m.len ? ", " : "", u->base, u->last_error[0] ? u->last_error : "busy being tried");
        }
        err_set(err, TAILOR_ENETWORK, "remote LLM: no model server is taking requests: %s", sb_str(&m));
        sb_deinit(&m);
    }
    pthread_mutex_unlock(&r->mu);
    return got;
}

enum { OUT_OK, OUT_REFUSED, OUT_FAILED };

/* What one attempt on u came to; the breaker opens after breaker_failures
 * failures in a row, or at once when a trial after a cool-down fails. */
static void fleet_record(remote *r, upstream *u, int outcome, double seconds, const char *why, bool failover) {
    pthread_mutex_lock(&r->mu);
    llm_upstream_stats *st = &u->st;
    if (outcome == OUT_FAILED) {
        st->failed++;
        st->failovers += failover;
        snprintf(u->last_error, sizeof u->last_error, "%s", why);
        u->fails++;
        if (r->n_ups > 1 && (u->trying || (!u->open_until && u->fails >= r->breaker_failures))) {
            if (!u->open_until || u->trying) st->breaker_opens++;
            u->open_until = timer_now_ns() + r->cooldown_ns;
            log_warn("remote LLM %s: taken out for %g s after %d failure%s in a row (%s)", u->base,
                     (double)r->cooldown_ns / 1e9, u->fails, u->fails == 1 ? "" : "s", why);
        }
    } else {
        if (outcome == OUT_OK) {
            st->ok++;
            st->seconds += seconds;
            for (int b = 0; b < LLM_UPSTREAM_BUCKETS; b++) st->le[b] += seconds <= llm_upstream_bucket_le[b];
        } else {
            st->refused++;
        }
        if (u->open_until) log_info("remote LLM %s: answering again", u->base);
        u->fails = 0;
        u->open_until = 0;
        u->last_error[0] = 0;
    }
    u->trying = false;
    pthread_mutex_unlock(&r->mu);
}

static size_t discard(char *p, size_t size, size_t nmemb, void *ud) {
    (void)p, (void)ud;
    return size * nmemb;
}

/* GET .../models answers 2xx: the server is up. */
static bool health_check(remote *r, const upstream *u, char *why, size_t n) {
    CURL *c = curl_easy_init();
    if (!c) return snprintf(why, n, "curl_easy_init failed"), false;
    struct curl_slist *h = NULL;
    if (r->key) {
        char auth[600];
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", r->key);
        h = curl_slist_append(h, auth);
    }
    curl_easy_setopt(c, CURLOPT_URL, u->models_url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, r->connect_ms);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, r->connect_ms + 5000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "tailor/" TAILOR_VERSION_STRING);
    CURLcode cr = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (cr != CURLE_OK) return snprintf(why, n, "health check: %s", curl_easy_strerror(cr)), false;
    if (status < 200 || status >= 300) return snprintf(why, n, "health check: HTTP %ld", status), false;
    return true;
}

/* Every health_interval, each server: a failed check takes it out for a
 * cool-down, a passing one brings an open one back at once. */
static void *health_main(void *arg) {
    remote *r = arg;
    pthread_mutex_lock(&r->mu);
    while (!r->stopping) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        uint64_t ns = (uint64_t)until.tv_nsec + r->health_ns;
        until.tv_sec += (time_t)(ns / 1000000000u);
        until.tv_nsec = (long)(ns % 1000000000u);
        while (!r->stopping && pthread_cond_timedwait(&r->cv, &r->mu, &until) == 0) {}
        for (int i = 0; i < r->n_ups && !r->stopping; i++) {
            upstream *u = &r->ups[i];
            pthread_mutex_unlock(&r->mu);
            char why[160];
            bool up = health_check(r, u, why, sizeof why);
            pthread_mutex_lock(&r->mu);
            if (up && u->open_until) {
                log_info("remote LLM %s: health check passed, taking requests again", u->base);
                u->open_until = 0;
                u->fails = 0;
                u->last_error[0] = 0;
            } else if (!up && !r->stopping) {
                if (!u->open_until) {
                    u->st.breaker_opens++;
                    log_warn("remote LLM %s: taken out (%s)", u->base, why);
                }
                snprintf(u->last_error, sizeof u->last_error, "%s", why);
                u->open_until = timer_now_ns() + r->cooldown_ns;
            }
        }
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

static int remote_upstreams(llm_backend *b, llm_upstream_stats *out, int cap) {
    remote *r = b->impl;
    pthread_mutex_lock(&r->mu);
    for (int i = 0; i < r->n_ups && i < cap; i++) {
        const upstream *u = &r->ups[i];
        out[i] = u->st;
        snprintf(out[i].url, sizeof out[i].url, "%s", u->base);
        out[i].up = !u->open_until;
    }
    pthread_mutex_unlock(&r->mu);
    return r->n_ups;
}

/* ---- the request ----------------------------------------------------------- */

/* The sampling of the calls this thread makes next (set_sampling): per
 * thread, so that calls from several threads at once each send their own
 * (a server's /v1 request sets it, calls, and puts it back). */
static _Thread_local struct {
    const remote *r; /* the backend it applies to; NULL: none set */
    llm_sampler_params sp;
    int32_t max_tokens;
} tl_sampling;

static void remote_set_sampling(llm_backend *b, const llm_sampler_params *p, int32_t max_tokens) {
    tl_sampling.r = p ? b->impl : NULL;
    if (p) tl_sampling.sp = *p, tl_sampling.max_tokens = max_tokens;
}

/* The sampling fields of a request: the calling thread's settings when it
 * set some (set_sampling), else the backend's. */
static void sampling_json(const remote *r, sb *o) {
    const llm_sampler_params *sp = &r->sampling;
    int32_t max_tokens = r->max_tokens;
    if (tl_sampling.r == r) sp = &tl_sampling.sp, max_tokens = tl_sampling.max_tokens ? tl_sampling.max_tokens : max_tokens;
    if (sp->temperature >= 0) sb_printf(o, ",\"temperature\":%g", sp->temperature);
    if (sp->top_p < 1) sb_printf(o, ",\"top_p\":%g", sp->top_p);
    if (sp->seed) sb_printf(o, ",\"seed\":%llu", (unsigned long long)(sp->seed & 0x7fffffff));
    if (max_tokens > 0) sb_printf(o, ",\"max_tokens\":%d", max_tokens);
}

/* A chat request, streamed; or, with top_n >= 0, not streamed and asking
 * for the log-probabilities of the answer's tokens. */
static void request_json(remote *r, const llm_msg *msgs, int n, const llm_tool_def *tools, int n_tools,
                         llm_tool_choice choice, const char *schema, int top_n, sb *o) {
    sb_puts(o, "{\"model\":");
    sb_json_str(o, r->model, strlen(r->model));
    if (top_n >= 0) sb_printf(o, ",\"logprobs\":true,\"top_logprobs\":%d", top_n);
    sb_printf(o, ",\"stream\":%s,\"messages\":[", top_n >= 0 ? "false" : "true");
    int call_id = 0, pending = 0; /* ids pair each tool result with its call */
    for (int i = 0; i < n; i++) {
        const llm_msg *m = &msgs[i];
        if (i) sb_putc(o, ',');
        sb_puts(o, "{\"role\":");
        sb_json_str(o, m->role, strlen(m->role));
        if (!strcmp(m->role, "assistant") && m->tool_calls) {
            sb_puts(o, ",\"content\":null,\"tool_calls\":[");
            cJSON *calls = cJSON_Parse(m->tool_calls);
            const cJSON *c;
            int k = 0;
            pending = call_id;
            cJSON_ArrayForEach(c, calls) {
                char *args = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(c, "arguments"));
                const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "name"));
                sb_printf(o, "%s{\"id\":\"call_%d\",\"type\":\"function\",\"function\":{\"name\":", k++ ? "," : "",
                          call_id++);
                sb_json_str(o, name ? name : "", strlen(name ? name : ""));
                sb_puts(o, ",\"arguments\":");
                sb_json_str(o, args ? args : "{}", strlen(args ? args : "{}"));
                sb_puts(o, "}}");
                free(args);
            }
            cJSON_Delete(calls);
            sb_puts(o, "]}");
            continue;
        }
        if (!strcmp(m->role, "tool")) sb_printf(o, ",\"tool_call_id\":\"call_%d\"", pending++);
        sb_puts(o, ",\"content\":");
        sb_json_str(o, m->content ? m->content : "", strlen(m->content ? m->content : ""));
        sb_putc(o, '}');
    }
    sb_putc(o, ']');
    if (n_tools > 0 && choice != LLM_TOOLS_NONE) {
        sb_puts(o, ",\"tools\":[");
        for (int i = 0; i < n_tools; i++) {
            sb_printf(o, "%s{\"type\":\"function\",\"function\":{\"name\":", i ? "," : "");
            sb_json_str(o, tools[i].name, strlen(tools[i].name));
            sb_puts(o, ",\"description\":");
            sb_json_str(o, tools[i].description, strlen(tools[i].description));
            sb_printf(o, ",\"parameters\":%s}}", tools[i].schema);
        }
        sb_printf(o, "],\"tool_choice\":\"%s\"", choice == LLM_TOOLS_REQUIRED ? "required" : "auto");
    }
    if (schema) sb_printf(o, ",\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"answer\","
                             "\"strict\":true,\"schema\":%s}}", schema);
    sampling_json(r, o);
    sb_putc(o, '}');
}

/* ---- the response: server-sent events, parsed as they come ------------------ */

typedef struct pending_call {
    sb name, args;
} pending_call;

typedef struct stream {
    llm_stream_fn cb;
    void *ud;
    sb line;   /* the SSE line being read */
    sb body;   /* everything, for errors and non-streamed replies */
    sb text;
    VEC(pending_call) calls;
    bool done, sse, stalled;
    uint64_t last_ns; /* when the last byte came */
    long read_s;
    char *error; /* an "error" object inside the stream */
    long status;
    char retry_after[32];
    const char *url; /* the endpoint that answered (or failed last) */
} stream;

static void stream_event(stream *s, const char *data) {
    if (!strcmp(data, "[DONE]")) {
        s->done = true;
        return;
    }
    cJSON *j = cJSON_Parse(data);
    if (!j) return; /* a malformed event is skipped; what it held is missing */
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(j, "error");
    if (err && !s->error) {
        const char *m = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(err, "message"));
        s->error = xstrdup(m ? m : "error event in the stream");
    }
    const cJSON *delta = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "choices"), 0), "delta");
    const char *content = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(delta, "content"));
    if (content && *content) {
        sb_puts(&s->text, content);
        if (s->cb) s->cb(s->ud, content, strlen(content));
    }
    const cJSON *tc;
    cJSON_ArrayForEach(tc, cJSON_GetObjectItemCaseSensitive(delta, "tool_calls")) {
        const cJSON *idx = cJSON_GetObjectItemCaseSensitive(tc, "index");
        size_t i = cJSON_IsNumber(idx) && idx->valuedouble >= 0 && idx->valuedouble < 16 ? (size_t)idx->valuedouble
                                                                                        : s->calls.len;
        while (s->calls.len <= i && s->calls.len < 16) {
            pending_call p;
            sb_init(&p.name);
            sb_init(&p.args);
            vec_push(&s->calls, p);
        }
        if (i >= s->calls.len) continue;
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(tc, "function");
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(fn, "name"));
        const char *args = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(fn, "arguments"));
        if (name) sb_puts(&s->calls.data[i].name, name);
        if (args) sb_puts(&s->calls.data[i].args, args);
    }
    cJSON_Delete(j);
}

static size_t on_data(char *p, size_t size, size_t nmemb, void *ud) {
    stream *s = ud;
    size_t n = size * nmemb;
    s->last_ns = timer_now_ns();
    sb_append(&s->body, p, n);
    if (s->status >= 300) return n; /* an error body: kept whole */
    for (size_t i = 0; i < n; i++) {
        if (p[i] != '\n') {
            if (p[i] != '\r') sb_putc(&s->line, p[i]);
            continue;
        }
        const char *l = sb_str(&s->line);
        if (!strncmp(l, "data:", 5)) {
            s->sse = true;
            stream_event(s, l + 5 + (l[5] == ' '));
        }
        sb_clear(&s->line);
    }
    return n;
}

/* A stall: no byte for read_s seconds (libcurl's own low-speed check
 * averages over a window, so a stream that stops after a start would run
 * on for longer). */
static int on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un) {
    stream *s = ud;
    (void)dt, (void)dn, (void)ut, (void)un;
    if ((double)(timer_now_ns() - s->last_ns) / 1e9 > (double)s->read_s) {
        s->stalled = true;
        return 1;
    }
    return 0;
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *ud) {
    stream *s = ud;
    size_t n = size * nmemb;
    s->last_ns = timer_now_ns();
    if (n > 12 && !strncasecmp(p, "Retry-After:", 12)) {
        size_t k = 12;
        while (k < n && p[k] == ' ') k++;
        snprintf(s->retry_after, sizeof s->retry_after, "%.*s", (int)(n - k), p + k);
    }
    return n;
}

static void stream_init(stream *s, llm_stream_fn cb, void *ud) {
    *s = (stream){.cb = cb, .ud = ud};
    sb_init(&s->line);
    sb_init(&s->body);
    sb_init(&s->text);
}

static void stream_reset(stream *s) {
    sb_clear(&s->line);
    sb_clear(&s->body);
    sb_clear(&s->text);
    for (size_t i = 0; i < s->calls.len; i++) {
        sb_deinit(&s->calls.data[i].name);
        sb_deinit(&s->calls.data[i].args);
    }
    s->calls.len = 0;
    s->done = s->sse = s->stalled = false;
    free(s->error);
    s->error = NULL;
    s->status = 0;
    s->retry_after[0] = 0;
}

static void stream_deinit(stream *s) {
    stream_reset(s);
    sb_deinit(&s->line);
    sb_deinit(&s->body);
    sb_deinit(&s->text);
    vec_free(&s->calls);
}

/* A non-streamed reply (a server that ignores stream: true). */
static void parse_whole(stream *s) {
    cJSON *j = cJSON_Parse(sb_str(&s->body));
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "choices"), 0), "message");
    const char *content = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(msg, "content"));
    if (content) {
        sb_puts(&s->text, content);
        if (s->cb) s->cb(s->ud, content, strlen(content));
    }
    const cJSON *tc;
    cJSON_ArrayForEach(tc, cJSON_GetObjectItemCaseSensitive(msg, "tool_calls")) {
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(tc, "function");
        pending_call p;
        sb_init(&p.name);
        sb_init(&p.args);
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(fn, "name"));
        const char *args = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(fn, "arguments"));
        sb_puts(&p.name, name ? name : "");
        sb_puts(&p.args, args ? args : "");
        vec_push(&s->calls, p);
    }
    cJSON_Delete(j);
}

/* The server's own words for an error body ({"error": {"message"}}), or
 * the start of the body. */
static void error_text(const sb *body, char *out, size_t n) {
    cJSON *j = cJSON_Parse(sb_str(body));
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    const char *m = cJSON_IsString(e) ? e->valuestring : cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "message"));
    if (m) snprintf(out, n, "%s", m);
    else snprintf(out, n, "%.200s", sb_str(body));
    cJSON_Delete(j);
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

enum { EP_CHAT, EP_EMBED, EP_TEXT };

/* POSTs a JSON body to the chat, embeddings or completions endpoint with retries (one
 * server) or one failover (a fleet); the reply lands in s (the events as
 * they come, or the body whole), s->url names the server that answered. */
static int post(remote *r, int endpoint, const sb *req, bool events, stream *s, tailor_error *err) {
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    h = curl_slist_append(h, events ? "Accept: text/event-stream" : "Accept: application/json");
    if (r->key) {
        sb auth;
        sb_init(&auth);
        sb_printf(&auth, "Authorization: Bearer %s", r->key);
        h = curl_slist_append(h, sb_str(&auth));
        sb_deinit(&auth);
    }
    char cerr[CURL_ERROR_SIZE];
    int rc = 0;
    upstream *prev = NULL;
    char prev_why[320] = "";
    bool fleet = r->n_ups > 1;
    for (int attempt = 0;; attempt++) {
        upstream *u = fleet_pick(r, prev, err);
        if (!u) {
            if (prev && err) snprintf(err->msg + strlen(err->msg), sizeof err->msg - strlen(err->msg),
                                      "; the request failed on %s: %s", prev->base, prev_why);
            rc = TAILOR_ENETWORK;
            break;
        }
        const char *url = endpoint == EP_EMBED ? u->embed_url : endpoint == EP_TEXT ? u->text_url : u->url;
        s->url = url;
        CURL *c = curl_easy_init();
        if (!c) {
            rc = err_set(err, TAILOR_EINTERNAL, "curl_easy_init failed");
            fleet_record(r, u, OUT_REFUSED, 0, "", false);
            break;
        }
        stream_reset(s);
        cerr[0] = 0;
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, req->buf);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)req->len);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, s);
        curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(c, CURLOPT_HEADERDATA, s);
        curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, r->connect_ms);
        s->read_s = r->read_s;
        s->last_ns = timer_now_ns();
        uint64_t t0 = s->last_ns;
        curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(c, CURLOPT_XFERINFODATA, s);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_USERAGENT, "tailor/" TAILOR_VERSION_STRING);
        /* The status is known before the body: an error body is not parsed
         * as events. */
        curl_easy_setopt(c, CURLOPT_FAILONERROR, 0L);
        CURLcode cr = curl_easy_perform(c);
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &s->status);
        curl_easy_cleanup(c);
        double took = (double)(timer_now_ns() - t0) / 1e9;
        bool retryable, net = cr != CURLE_OK;
        char why[320];
        if (net) {
            if (s->stalled) snprintf(why, sizeof why, "timed out: no data for %ld s", r->read_s);
            else snprintf(why, sizeof why, "%s", cr == CURLE_OPERATION_TIMEDOUT ? "timed out" : cerr[0] ? cerr : curl_easy_strerror(cr));
            /* A stream that stalled after part of a reply is not retried:
             * its text may already have streamed on. */
            retryable = s->text.len == 0 && s->calls.len == 0;
        } else if (s->status >= 300) {
            char text[240];
            error_text(&s->body, text, sizeof text);
            snprintf(why, sizeof why, "HTTP %ld: %s", s->status, text);
            retryable = s->status == 429 || s->status >= 500;
        } else {
            fleet_record(r, u, OUT_OK, took, "", false);
            break;
        }
        bool last = !retryable || attempt >= (fleet ? 1 : r->retries);
        fleet_record(r, u, net || retryable ? OUT_FAILED : OUT_REFUSED, took, why, !last && fleet);
        if (last) {
            /* 429 is the server's capacity, not the request's fault. */
            rc = err_set(err, net || s->status == 429 ? TAILOR_ENETWORK : TAILOR_EDATA, "remote LLM %s: %s%s", url,
                         why, !attempt ? "" : fleet ? " (after failing over)" : " (after retries)");
            if (err && prev && prev != u) snprintf(err->msg + strlen(err->msg), sizeof err->msg - strlen(err->msg),
                                                   "; before that on %s: %s", prev->base, prev_why);
            break;
        }
        if (fleet) {
            log_warn("remote LLM %s: %s; trying another server", url, why);
            prev = u;
            snprintf(prev_why, sizeof prev_why, "%s", why);
            continue;
        }
        long wait = 250L << attempt; /* 0.25, 0.5, 1, 2 s ... */
        if (s->retry_after[0]) {
            long ra = atol(s->retry_after) * 1000;
            if (ra >= 0 && ra <= 30000) wait = ra;
        }
        log_warn("remote LLM %s: %s; retrying in %ld ms", url, why, wait);
        sleep_ms(wait);
    }
    curl_slist_free_all(h);
    return rc;
}

static int request(remote *r, const llm_msg *msgs, int n, const llm_tool_def *tools, int n_tools,
                   llm_tool_choice choice, const char *schema, llm_stream_fn cb, void *ud, llm_reply *out,
                   tailor_error *err) {
    memset(out, 0, sizeof *out);
    sb req;
    sb_init(&req);
    request_json(r, msgs, n, tools, n_tools, choice, schema, -1, &req);
    stream s;
    stream_init(&s, cb, ud);
    int rc = post(r, EP_CHAT, &req, true, &s, err);
    if (!rc) {
        if (!s.sse) parse_whole(&s);
        if (s.error) rc = err_set(err, TAILOR_EDATA, "remote LLM %s: %s", s.url, s.error);
    }
    if (!rc) {
        for (size_t i = 0; i < s.calls.len; i++) {
            out->calls = realloc(out->calls, ((size_t)out->n_calls + 1) * sizeof *out->calls);
            out->calls[out->n_calls].name = xstrdup(sb_str(&s.calls.data[i].name));
            out->calls[out->n_calls].arguments = xstrdup(s.calls.data[i].args.len ? sb_str(&s.calls.data[i].args) : "{}");
            out->n_calls++;
        }
        if (!out->n_calls) {
            out->text = sb_take(&s.text);
            if (!out->text) out->text = xstrdup("");
        }
    }
    stream_deinit(&s);
    sb_deinit(&req);
    return rc;
}

static int remote_complete(llm_backend *b, const llm_msg *msgs, int n, const llm_tool_def *tools, int n_tools,
                           llm_tool_choice choice, llm_stream_fn cb, void *ud, llm_reply *out, tailor_error *err) {
    return request(b->impl, msgs, n, tools, n_tools, choice, NULL, cb, ud, out, err);
}

/* Structured output: response_format with the schema; a server that does
 * not take it (its 400 names response_format or json_schema) is asked in
 * words instead. Either way the answer must be JSON the schema accepts (a
 * ```json fence around it is taken off). */
static int remote_complete_json(llm_backend *b, const llm_msg *msgs, int n, const char *schema, llm_stream_fn cb,
                                void *ud, char **out, tailor_error *err) {
    remote *r = b->impl;
    *out = NULL;
    llm_reply rep;
    int rc = request(r, msgs, n, NULL, 0, LLM_TOOLS_NONE, schema, cb, ud, &rep, err);
    if (rc == TAILOR_EDATA && strstr(err->msg, "HTTP 4") &&
        (strstr(err->msg, "response_format") || strstr(err->msg, "json_schema"))) {
        log_info("remote LLM %s: no response_format; the schema goes in the system message", r->label);
        llm_msg *m = xmalloc(((size_t)n + 1) * sizeof *m);
        sb sys;
        sb_init(&sys);
        bool merge = n > 0 && !strcmp(msgs[0].role, "system");
        if (merge) sb_printf(&sys, "%s\n\n", msgs[0].content ? msgs[0].content : "");
        sb_printf(&sys, "Answer with JSON only: one value that this JSON schema accepts, no other text.\n%s", schema);
        m[0] = (llm_msg){.role = "system", .content = sb_str(&sys)};
        memcpy(m + 1, msgs + merge, (size_t)(n - merge) * sizeof *m);
        rc = request(r, m, n + 1 - merge, NULL, 0, LLM_TOOLS_NONE, NULL, cb, ud, &rep, err);
        sb_deinit(&sys);
        free(m);
    }
    if (rc) return rc;
    /* A fence some models put around JSON. */
    char *t = rep.text ? rep.text : "";
    while (*t == ' ' || *t == '\n') t++;
    size_t len = strlen(t);
    if (!strncmp(t, "```", 3)) {
        const char *nl = strchr(t, '\n');
        char *close = len >= 3 ? strstr(nl ? nl : t + 3, "```") : NULL;
        if (nl && close) {
            *close = 0;
            t = (char *)nl + 1;
        }
    }
    for (size_t k = strlen(t); k && (t[k - 1] == ' ' || t[k - 1] == '\n'); k--) t[k - 1] = 0;
    tailor_error ve = {0};
    if (llm_schema_validate(schema, t, &ve)) {
        rc = err_set(err, TAILOR_EDATA, "remote LLM %s: the answer is not JSON the schema accepts: %s", r->label, ve.msg);
    } else {
        *out = xstrdup(t);
    }
    llm_reply_deinit(&rep);
    return rc;
}

/* POST /embeddings {"model", "input"}: data[0].embedding, L2-normalised. */
static int remote_embed(llm_backend *b, const char *text, size_t n, float **out, int32_t *dim, tailor_error *err) {
    remote *r = b->impl;
    *out = NULL;
    *dim = 0;
    sb req;
    sb_init(&req);
    sb_puts(&req, "{\"model\":");
    sb_json_str(&req, r->model, strlen(r->model));
    sb_puts(&req, ",\"input\":");
    sb_json_str(&req, text, n);
    sb_putc(&req, '}');
    stream s;
    stream_init(&s, NULL, NULL);
    int rc = post(r, EP_EMBED, &req, false, &s, err);
    if (!rc) {
        cJSON *j = cJSON_Parse(sb_str(&s.body));
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "data"), 0),
                                                          "embedding"),
                    *x;
        int k = cJSON_IsArray(e) ? cJSON_GetArraySize(e) : 0;
        float *v = k > 0 ? xmalloc((size_t)k * sizeof *v) : NULL;
        double ss = 0;
        int i = 0;
        cJSON_ArrayForEach(x, e) {
            if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble)) break;
            v[i] = (float)x->valuedouble;
            ss += (double)v[i] * v[i];
            i++;
        }
        if (k == 0 || i < k || ss <= 0) {
            free(v);
            rc = err_set(err, TAILOR_EDATA, "remote LLM %s: the reply holds no embedding (data[0].embedding: finite numbers, not all zero)",
                         s.url);
        } else {
            float inv = (float)(1.0 / sqrt(ss));
            for (i = 0; i < k; i++) v[i] *= inv;
            *out = v;
            *dim = k;
        }
        cJSON_Delete(j);
    }
    stream_deinit(&s);
    sb_deinit(&req);
    return rc;
}

/* One step's alternatives: an object {text: logprob} (the legacy
 * completions form) or an array of {"token", "logprob"} (the chat form,
 * which some servers use for completions too). */
static void read_top(const cJSON *t, llm_token_logprobs *out) {
    int n = cJSON_IsObject(t) || cJSON_IsArray(t) ? cJSON_GetArraySize(t) : 0, k = 0;
    out->top = xmalloc(((size_t)n + 1) * sizeof *out->top);
    const cJSON *x;
    cJSON_ArrayForEach(x, t) {
        const char *text = cJSON_IsObject(t) ? x->string : cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(x, "token"));
        const cJSON *v = cJSON_IsObject(t) ? x : cJSON_GetObjectItemCaseSensitive(x, "logprob");
        if (!text || !cJSON_IsNumber(v)) continue;
        out->top[k++] = (llm_top_logprob){xstrdup(text), (float)v->valuedouble};
    }
    out->n_top = k;
    /* most likely first, whatever order the server wrote */
    for (int a = 1; a < k; a++) {
        llm_top_logprob x2 = out->top[a];
        int b = a;
        while (b > 0 && out->top[b - 1].logprob < x2.logprob) out->top[b] = out->top[b - 1], b--;
        out->top[b] = x2;
    }
}

/* choices[0].logprobs of a completions reply, either form; -1 when absent. */
static int read_logprobs(const cJSON *lp, llm_token_logprobs **out) {
    *out = NULL;
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(lp, "content");
    const cJSON *tokens = cJSON_GetObjectItemCaseSensitive(lp, "tokens");
    int n = cJSON_IsArray(content) ? cJSON_GetArraySize(content) : cJSON_IsArray(tokens) ? cJSON_GetArraySize(tokens) : -1;
    if (n < 0) return -1;
    llm_token_logprobs *v = xcalloc((size_t)n + 1, sizeof *v);
    for (int i = 0; i < n; i++) {
        const char *text;
        const cJSON *val, *top;
        if (cJSON_IsArray(content)) {
            const cJSON *c = cJSON_GetArrayItem(content, i);
            text = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "token"));
            val = cJSON_GetObjectItemCaseSensitive(c, "logprob");
            top = cJSON_GetObjectItemCaseSensitive(c, "top_logprobs");
        } else {
            text = cJSON_GetStringValue(cJSON_GetArrayItem(tokens, i));
            val = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(lp, "token_logprobs"), i);
            top = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(lp, "top_logprobs"), i);
        }
        v[i].text = xstrdup(text ? text : "");
        v[i].logprob = cJSON_IsNumber(val) ? (float)val->valuedouble : -INFINITY;
        read_top(top, &v[i]);
    }
    *out = v;
    return n;
}

/* A non-streamed reply's choices[0]: its text (completions: "text"; chat:
 * "message"."content") and, when lp is given, its log-probabilities. */
static int post_whole(remote *r, int endpoint, const sb *req, char **text, llm_token_logprobs **lp, int *n_lp,
                      tailor_error *err) {
    bool chat = endpoint == EP_CHAT;
    stream s;
    stream_init(&s, NULL, NULL);
    int rc = post(r, endpoint, req, false, &s, err);
    if (!rc) {
        cJSON *j = cJSON_Parse(sb_str(&s.body));
        const cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "choices"), 0);
        const cJSON *holder = chat ? cJSON_GetObjectItemCaseSensitive(c0, "message") : c0;
        const char *t = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(holder, chat ? "content" : "text"));
        if (!t) {
            rc = err_set(err, TAILOR_EDATA, "remote LLM %s: the reply holds no %s", s.url,
                         chat ? "answer (choices[0].message.content)" : "completion (choices[0].text)");
        } else if (lp && (*n_lp = read_logprobs(cJSON_GetObjectItemCaseSensitive(c0, "logprobs"), lp)) < 0) {
            *n_lp = 0;
            rc = err_set(err, TAILOR_EUNSUPPORTED,
                         "remote LLM %s: the reply holds no log-probabilities (choices[0].logprobs): the server does "
                         "not report them for %s",
                         s.url, chat ? "chat" : "completions");
        } else {
            *text = xstrdup(t);
        }
        cJSON_Delete(j);
    }
    stream_deinit(&s);
    return rc;
}

/* POST /completions {"model", "prompt", "logprobs"?}, not streamed. */
static int text_request(remote *r, const char *prompt, int top_n, const char *const *stop, int n_stop, char **text,
                        llm_token_logprobs **lp, int *n_lp, tailor_error *err) {
    *text = NULL;
    if (lp) *lp = NULL, *n_lp = 0;
    sb req;
    sb_init(&req);
    sb_puts(&req, "{\"model\":");
    sb_json_str(&req, r->model, strlen(r->model));
    sb_puts(&req, ",\"prompt\":");
    sb_json_str(&req, prompt, strlen(prompt));
    if (n_stop > 0) {
        sb_puts(&req, ",\"stop\":[");
        for (int i = 0; i < n_stop && i < 4; i++) {
            if (i) sb_putc(&req, ',');
            sb_json_str(&req, stop[i], strlen(stop[i]));
        }
        sb_putc(&req, ']');
    }
    if (lp) sb_printf(&req, ",\"logprobs\":%d", top_n > 0 ? top_n : 0);
    sampling_json(r, &req);
    sb_putc(&req, '}');
    int rc = post_whole(r, EP_TEXT, &req, text, lp, n_lp, err);
    sb_deinit(&req);
    return rc;
}

static int remote_complete_text(llm_backend *b, const char *prompt, const char *const *stop, int n_stop,
                                llm_stream_fn cb, void *ud, char **out, tailor_error *err) {
    int rc = text_request(b->impl, prompt, 0, stop, n_stop, out, NULL, NULL, err);
    if (!rc && cb && **out) cb(ud, *out, strlen(*out));
    return rc;
}

static int remote_complete_logprobs(llm_backend *b, const char *prompt, int top_n, const char *const *stop, int n_stop,
                                    char **text, llm_token_logprobs **lp, int *n_lp, tailor_error *err) {
    return text_request(b->impl, prompt, top_n, stop, n_stop, text, lp, n_lp, err);
}

/* POST /chat/completions with logprobs, not streamed. */
static int remote_chat_logprobs(llm_backend *b, const llm_msg *msgs, int n, int top_n, char **text,
                                llm_token_logprobs **lp, int *n_lp, tailor_error *err) {
    remote *r = b->impl;
    *text = NULL, *lp = NULL, *n_lp = 0;
    sb req;
    sb_init(&req);
    request_json(r, msgs, n, NULL, 0, LLM_TOOLS_NONE, NULL, top_n > 0 ? top_n : 0, &req);
    int rc = post_whole(r, EP_CHAT, &req, text, lp, n_lp, err);
    sb_deinit(&req);
    return rc;
}

static int32_t remote_count(llm_backend *b, const char *text, size_t n) {
    (void)b, (void)text;
    return (int32_t)(n / 4 + 1); /* no tokenizer here: about 4 bytes a token */
}

static int32_t remote_ctx(llm_backend *b) { return ((remote *)b->impl)->n_ctx; }

static void remote_destroy(remote *r) {
    if (r->health_started) {
        pthread_mutex_lock(&r->mu);
        r->stopping = true;
        pthread_cond_signal(&r->cv);
        pthread_mutex_unlock(&r->mu);
        pthread_join(r->health, NULL);
    }
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    for (int i = 0; i < r->n_ups; i++) {
        free(r->ups[i].base);
        free(r->ups[i].url);
        free(r->ups[i].embed_url);
        free(r->ups[i].text_url);
        free(r->ups[i].models_url);
    }
    free(r->ups);
    free(r->label);
    free(r->model);
    free(r->key);
    free(r);
}

static void remote_free(llm_backend *b) {
    remote_destroy(b->impl);
    free(b);
}

static const llm_backend_ops REMOTE_OPS = {.name = "remote",
                                           .complete = remote_complete,
                                           .set_mentions = NULL,
                                           .embed = remote_embed,
                                           .complete_json = remote_complete_json,
                                           .complete_text = remote_complete_text,
                                           .complete_logprobs = remote_complete_logprobs,
                                           .chat_logprobs = remote_chat_logprobs,
                                           .count_tokens = remote_count,
                                           .context_size = remote_ctx,
                                           .free = remote_free,
                                           .set_sampling = remote_set_sampling,
                                           .upstreams = remote_upstreams,
                                           .concurrent = true};

llm_remote_params llm_remote_default_params(void) {
    llm_sampler_params sp = llm_sampler_default_params();
    sp.seed = 0;
    return (llm_remote_params){.model = "default", .connect_timeout_ms = 5000, .read_timeout_s = 60, .retries = 3,
                               .sampling = sp, .max_tokens = 1024, .n_ctx = 8192, .breaker_failures = 3,
                               .breaker_cooldown_ms = 10000, .health_interval_ms = 5000};
}

/* One server's endpoints from its base URL: http://host:port/v1 (or
 * .../chat/completions given whole). */
static int upstream_init(upstream *u, const char *base, size_t n, tailor_error *err) {
    while (n && (*base == ' ' || *base == '\t')) base++, n--;
    while (n && (base[n - 1] == ' ' || base[n - 1] == '\t' || base[n - 1] == '/')) n--;
    if (n < 8 || (strncmp(base, "http://", 7) && strncmp(base, "https://", 8)))
        return err_set(err, TAILOR_EINVAL, "remote LLM: '%.*s' is not an http(s) URL", (int)n, base);
    memset(u, 0, sizeof *u);
    u->base = xstrndup(base, n);
    sb w;
    sb_init(&w);
    sb_puts(&w, u->base);
    if (!strstr(sb_str(&w), "/chat/completions")) sb_puts(&w, "/chat/completions");
    u->url = sb_take(&w);
    size_t root = (size_t)(strstr(u->url, "/chat/completions") - u->url);
    sb_init(&w);
    sb_append(&w, u->url, root);
    sb_puts(&w, "/embeddings");
    u->embed_url = sb_take(&w);
    sb_init(&w);
    sb_append(&w, u->url, root);
    sb_puts(&w, "/completions");
    u->text_url = sb_take(&w);
    sb_init(&w);
    sb_append(&w, u->url, root);
    sb_puts(&w, "/models");
    u->models_url = sb_take(&w);
    return 0;
}

int llm_remote_backend_new(const llm_remote_params *p, llm_backend **out, tailor_error *err) {
    *out = NULL;
    if (!p->url || !*p->url) return err_set(err, TAILOR_EINVAL, "remote LLM: no URL");
    remote *r = xcalloc(1, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    for (const char *a = p->url;;) {
        const char *comma = strchr(a, ',');
        size_t n = comma ? (size_t)(comma - a) : strlen(a);
        r->ups = realloc(r->ups, ((size_t)r->n_ups + 1) * sizeof *r->ups);
        if (upstream_init(&r->ups[r->n_ups], a, n, err)) {
            remote_destroy(r);
            return err->code;
        }
        r->n_ups++;
        if (!comma) break;
        a = comma + 1;
    }
    r->label = xstrdup(r->n_ups == 1 ? r->ups[0].url : p->url);
    r->model = xstrdup(p->model ? p->model : "default");
    const char *key = p->api_key ? p->api_key : getenv("TAILOR_LLM_API_KEY");
    r->key = key && *key ? xstrdup(key) : NULL;
    r->connect_ms = p->connect_timeout_ms > 0 ? p->connect_timeout_ms : 5000;
    r->read_s = p->read_timeout_s > 0 ? p->read_timeout_s : 60;
    r->retries = p->retries >= 0 ? p->retries : 3;
    r->sampling = p->sampling;
    r->max_tokens = p->max_tokens;
    r->n_ctx = p->n_ctx > 0 ? p->n_ctx : 8192;
    r->breaker_failures = p->breaker_failures > 0 ? p->breaker_failures : 3;
    r->cooldown_ns = (uint64_t)(p->breaker_cooldown_ms > 0 ? p->breaker_cooldown_ms : 10000) * 1000000u;
    r->health_ns = (uint64_t)(p->health_interval_ms > 0 ? p->health_interval_ms : 5000) * 1000000u;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (r->n_ups > 1 && p->health_interval_ms >= 0) {
        if (pthread_create(&r->health, NULL, health_main, r) == 0) r->health_started = true;
        else log_warn("remote LLM: no health-check thread; failures alone take servers out");
    }
    llm_backend *b = xcalloc(1, sizeof *b);
    b->ops = &REMOTE_OPS;
    b->impl = r;
    *out = b;
    return 0;
}
