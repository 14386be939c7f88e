/* test_remote.c — the remote (OpenAI-compatible) backend against
 * fake_openai_server, a small test server in a thread of this program (not
 * a real model server: it plays scripted replies). Scenarios, chosen by the
 * last user message: streamed text, a streamed tool call in fragments,
 * malformed tool-call arguments then a repair, arguments the schema refuses
 * twice (the tool is withdrawn), 429 then success, 500 every time, 400 (no
 * retry), a non-streamed reply, a stalled stream, a refused connection;
 * the API key header; structured output (response_format, and a server
 * that refuses it); and /embeddings. */
#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent/agent.h"
#include "llm/llm.h"
#include "test.h"

/* ---- fake_openai_server --------------------------------------------------- */

/* A fake server: the main one, and a second for the fleet's tests. down
 * makes it answer 503 to everything, its health check included. */
typedef struct fake {
    int listen, port;
    volatile int down;
    int chats; /* chat requests it answered */
    pthread_t t;
} fake;
static fake g_a = {.listen = -1}, g_b = {.listen = -1};
static volatile int g_stop;
static int g_hits[16];          /* requests per scenario */
static char g_last_auth[256];   /* the last Authorization header */
static char g_last_body[65536]; /* the last request body */

enum { S_PLAIN, S_TOOL, S_BADJSON, S_BADARGS, S_429, S_500, S_400, S_WHOLE, S_STALL, S_JSON, S_JSON_NOFMT, S_JSON_BAD, S_N };
static const char *const SCEN[] = {"plain", "tool",  "badjson", "badargs", "429",          "500",
                                   "400",   "whole", "stall",   "json",    "json-noformat", "json-bad"};

static void send_all(int fd, const char *s, size_t n) {
    while (n) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        if (w <= 0) return;
        s += w, n -= (size_t)w;
    }
}

static void send_str(int fd, const char *s) { send_all(fd, s, strlen(s)); }

static void reply_json(int fd, const char *status, const char *body) {
    char head[256];
    snprintf(head, sizeof head,
             "HTTP/1.1 %s\r\nRetry-After: 0\r\nContent-Type: application/json\r\nConnection: close\r\n"
             "Content-Length: %zu\r\n\r\n",
             status, strlen(body));
    send_str(fd, head);
    send_str(fd, body);
}

static void sse(int fd, const char *json) {
    char buf[2048];
    snprintf(buf, sizeof buf, "data: %s\n\n", json);
    send_str(fd, buf);
}

static void sse_head(int fd) {
    send_str(fd, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n");
}

static void sse_text(int fd, const char *const *parts, int n) {
    sse_head(fd);
    char buf[512];
    for (int i = 0; i < n; i++) {
        snprintf(buf, sizeof buf, "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"%s\"}}]}", parts[i]);
        sse(fd, buf);
    }
    sse(fd, "{\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}");
    send_str(fd, "data: [DONE]\n\n");
}

/* A tool call whose arguments arrive in fragments. */
static void sse_call(int fd, const char *name, const char *const *frags, int n) {
    sse_head(fd);
    char buf[1024];
    snprintf(buf, sizeof buf,
             "{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"c1\",\"type\":\"function\","
             "\"function\":{\"name\":\"%s\",\"arguments\":\"\"}}]}}]}",
             name);
    sse(fd, buf);
    for (int i = 0; i < n; i++) {
        sb esc;
        sb_init(&esc);
        sb_json_str(&esc, frags[i], strlen(frags[i]));
        snprintf(buf, sizeof buf,
                 "{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":%s}}]}}]}",
                 sb_str(&esc));
        sb_deinit(&esc);
        sse(fd, buf);
    }
    sse(fd, "{\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}");
    send_str(fd, "data: [DONE]\n\n");
}

static void serve_one(fake *srv, int fd) {
    char req[70000];
    size_t got = 0;
    long len = -1;
    char *body = NULL;
    while (got < sizeof req - 1) { /* headers, then Content-Length bytes */
        ssize_t r = recv(fd, req + got, sizeof req - 1 - got, 0);
        if (r <= 0) return;
        got += (size_t)r;
        req[got] = 0;
        char *end = strstr(req, "\r\n\r\n");
        if (end && len < 0) {
            char *cl = strcasestr(req, "Content-Length:");
            len = cl ? atol(cl + 15) : 0;
            body = end + 4;
        }
        if (body && (long)(got - (size_t)(body - req)) >= len) break;
    }
    if (!body) return;
    if (srv->down) {
        reply_json(fd, "503 Service Unavailable", "{\"error\":{\"message\":\"going down\"}}");
        return;
    }
    if (!strncmp(req, "GET /v1/models ", 15)) {
        reply_json(fd, "200 OK", "{\"object\":\"list\",\"data\":[{\"id\":\"test-model\",\"object\":\"model\"}]}");
        return;
    }
    char *auth = strcasestr(req, "Authorization: ");
    g_last_auth[0] = 0;
    if (auth) sscanf(auth + 15, "%255[^\r\n]", g_last_auth);
    snprintf(g_last_body, sizeof g_last_body, "%s", body);
    if (!strncmp(req, "POST /v1/embeddings ", 20)) { /* [3, 4] for "ok" (normalised: [0.6, 0.8]) */
        cJSON *j = cJSON_Parse(body);
        const char *in = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "input"));
        if (in && !strcmp(in, "ok"))
            reply_json(fd, "200 OK", "{\"object\":\"list\",\"data\":[{\"object\":\"embedding\",\"index\":0,"
                                     "\"embedding\":[3,4]}],\"model\":\"test-model\"}");
        else if (in && !strcmp(in, "empty"))
            reply_json(fd, "200 OK", "{\"data\":[]}");
        else
            reply_json(fd, "404 Not Found", "{\"error\":{\"message\":\"no embeddings here\"}}");
        cJSON_Delete(j);
        return;
    }
    if (!strncmp(req, "POST /v1/completions ", 21)) { /* logprobs in the legacy form, the chat form, or none */
        cJSON *j = cJSON_Parse(body);
        const char *pr = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "prompt"));
        if (pr && !strcmp(pr, "legacy"))
            reply_json(fd, "200 OK", "{\"object\":\"text_completion\",\"choices\":[{\"text\":\" B\",\"index\":0,"
                                     "\"logprobs\":{\"tokens\":[\" B\"],\"token_logprobs\":[-0.5],\"top_logprobs\":"
                                     "[{\"A\":-2.5,\" B\":-0.5,\" A\":-1.25}],\"text_offset\":[6]},"
                                     "\"finish_reason\":\"length\"}]}");
        else if (pr && !strcmp(pr, "chat-form"))
            reply_json(fd, "200 OK", "{\"choices\":[{\"text\":\"C\",\"logprobs\":{\"content\":[{\"token\":\"C\","
                                     "\"logprob\":-0.1,\"top_logprobs\":[{\"token\":\"C\",\"logprob\":-0.1},"
                                     "{\"token\":\"D\",\"logprob\":-3}]}]}}]}");
        else
            reply_json(fd, "200 OK", "{\"choices\":[{\"text\":\" plain\",\"logprobs\":null}]}");
        cJSON_Delete(j);
        return;
    }
    if (strstr(body, "\"logprobs\":true")) { /* chat logprobs, not streamed; none for "no-logprobs" */
        if (strstr(body, "no-logprobs"))
            reply_json(fd, "200 OK", "{\"choices\":[{\"message\":{\"content\":\"x\"},\"logprobs\":null}]}");
        else
            reply_json(fd, "200 OK", "{\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":\"Hi!\"},"
                                     "\"logprobs\":{\"content\":[{\"token\":\"Hi\",\"logprob\":-0.25,\"bytes\":[72,105],"
                                     "\"top_logprobs\":[{\"token\":\"Hey\",\"logprob\":-2},{\"token\":\"Hi\",\"logprob\":-0.25}]},"
                                     "{\"token\":\"!\",\"logprob\":0,\"top_logprobs\":[]}],\"refusal\":null}}]}");
        return;
    }
    srv->chats++;
    /* The scenario: the last user message; after a tool result, an answer. */
    cJSON *j = cJSON_Parse(body);
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(j, "messages"), *m, *last_user = NULL;
    bool tool_result_last = false;
    cJSON_ArrayForEach(m, msgs) {
        const char *role = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m, "role"));
        if (role && !strcmp(role, "user")) last_user = m, tool_result_last = false;
        if (role && !strcmp(role, "tool")) tool_result_last = true;
    }
    const char *text = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(last_user, "content"));
    int sc = S_PLAIN;
    for (int i = 0; i < S_N; i++)
        if (text && !strcmp(text, SCEN[i])) sc = i;
    int hit = g_hits[sc]++;
    bool repair = false; /* a tool result with an error came back */
    cJSON_ArrayForEach(m, msgs) {
        const char *c = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m, "content"));
        if (c && strstr(c, "\"error\"")) repair = true;
    }
    static const char *const hello[] = {"Hello ", "from the ", "test server."};
    static const char *const done[] = {"Here you go."};
    if (tool_result_last && !(sc == S_BADJSON && repair && hit < 2) && !(sc == S_BADARGS && hit < 2)) {
        sse_text(fd, done, 1);
    } else
        switch (sc) {
        case S_PLAIN: sse_text(fd, hello, 3); break;
        case S_TOOL: {
            static const char *const f[] = {"{\"k\": 3, ", "\"genres\": [\"Com", "edy\"]}"};
            sse_call(fd, "recommend", f, 3);
            break;
        }
        case S_BADJSON: {
            static const char *const bad[] = {"{\"k\": 3,, "};
            static const char *const good[] = {"{\"k\": 2}"};
            if (hit == 0) sse_call(fd, "recommend", bad, 1);
            else sse_call(fd, "recommend", good, 1);
            break;
        }
        case S_BADARGS: {
            static const char *const f[] = {"{\"k\": 500}"};
            sse_call(fd, "recommend", f, 1);
            break;
        }
        case S_429:
            if (hit == 0) reply_json(fd, "429 Too Many Requests", "{\"error\":{\"message\":\"slow down, please!\"}}");
            else sse_text(fd, hello, 3);
            break;
        case S_500:
            reply_json(fd, "500 Internal Server Error", "{\"error\":{\"message\":\"it broke here\"}}");
            break;
        case S_400:
            reply_json(fd, "400 Bad Request", "{\"error\":{\"message\":\"unknown model x\"}}");
            break;
        case S_WHOLE: {
            reply_json(fd, "200 OK",
                       "{\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"all at once\"},"
                       "\"finish_reason\":\"stop\"}]}");
            break;
        }
        case S_JSON: { /* parts are JSON-escaped already */
            static const char *const f[] = {"{\\\"title\\\": \\\"He", "at\\\", \\\"year\\\": 1995}"};
            sse_text(fd, f, 2);
            break;
        }
        case S_JSON_NOFMT:
            if (strstr(body, "response_format")) {
                reply_json(fd, "400 Bad Request", "{\"error\":{\"message\":\"response_format is not supported\"}}");
            } else {
                static const char *const f[] = {"```json\\n{\\\"title\\\": \\\"Heat\\\", \\\"year\\\": 1995}\\n```"};
                sse_text(fd, f, 1);
            }
            break;
        case S_JSON_BAD: {
            static const char *const f[] = {"{\\\"title\\\": 5}"};
            sse_text(fd, f, 1);
            break;
        }
        case S_STALL:
            sse_head(fd);
            sse(fd, "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"I will\"}}]}");
            for (int i = 0; i < 40 && !g_stop; i++) usleep(100000); /* then nothing */
            break;
        }
    cJSON_Delete(j);
}

static void *fake_openai_server(void *arg) {
    fake *f = arg;
    while (!g_stop) {
        int fd = accept(f->listen, NULL, NULL);
        if (fd < 0) break;
        serve_one(f, fd);
        close(fd);
    }
    return NULL;
}

static bool start_server(fake *f) {
    f->listen = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(f->listen, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(f->listen, (struct sockaddr *)&a, sizeof a) || listen(f->listen, 16)) return false;
    socklen_t al = sizeof a;
    getsockname(f->listen, (struct sockaddr *)&a, &al);
    f->port = ntohs(a.sin_port);
    return pthread_create(&f->t, NULL, fake_openai_server, f) == 0;
}

static void stop_server(fake *f) {
    shutdown(f->listen, SHUT_RDWR);
    close(f->listen);
    pthread_join(f->t, NULL);
}

/* ---- the tests -------------------------------------------------------------- */

static llm_backend *backend(long read_s, int retries) {
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1", g_a.port);
    llm_remote_params p = llm_remote_default_params();
    p.url = url;
    p.model = "test-model";
    p.api_key = "sk-test-123";
    p.read_timeout_s = read_s;
    p.retries = retries;
    llm_backend *b = NULL;
    tailor_error e = {0};
    CHECK_EQ(llm_remote_backend_new(&p, &b, &e), 0);
    return b;
}

static bool collect(void *ud, const char *t, size_t n) {
    sb_append(ud, t, n);
    return true;
}

static const llm_tool_def TOOL = {"recommend", "Recommend items.",
                                  "{\"type\":\"object\",\"properties\":{\"k\":{\"type\":\"integer\",\"minimum\":1,"
                                  "\"maximum\":50},\"genres\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}}},"
                                  "\"required\":[\"k\"]}"};

static int ask(llm_backend *b, const char *text, llm_reply *r, sb *streamed, tailor_error *e) {
    llm_msg m[2] = {{.role = "system", .content = "Be brief."}, {.role = "user", .content = text}};
    return b->ops->complete(b, m, 2, &TOOL, 1, LLM_TOOLS_AUTO, collect, streamed, r, e);
}

static void test_protocol(void) {
    llm_backend *b = backend(2, 2);
    if (!b) return;
    llm_reply r;
    tailor_error e = {0};
    sb s;
    sb_init(&s);
    /* Streamed text, as it arrives. */
    CHECK_EQ(ask(b, "plain", &r, &s, &e), 0);
    CHECK_STR(r.text, "Hello from the test server.");
    CHECK_STR(sb_str(&s), "Hello from the test server.");
    CHECK_STR(g_last_auth, "Bearer sk-test-123");
    CHECK_CONTAINS(g_last_body, "\"stream\":true");
    CHECK_CONTAINS(g_last_body, "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"recommend\"");
    CHECK_CONTAINS(g_last_body, "\"tool_choice\":\"auto\"");
    CHECK_CONTAINS(g_last_body, "\"model\":\"test-model\"");
    CHECK_CONTAINS(g_last_body, "\"max_tokens\":1024");
    llm_reply_deinit(&r);
    /* A request's own sampling (a server's /v1 call sets it on its thread),
     * then the backend's again. */
    llm_sampler_params sp = llm_sampler_default_params();
    sp.temperature = 0.25f;
    sp.seed = 42;
    b->ops->set_sampling(b, &sp, 7);
    CHECK_EQ(ask(b, "plain", &r, &s, &e), 0);
    CHECK_CONTAINS(g_last_body, "\"temperature\":0.25");
    CHECK_CONTAINS(g_last_body, "\"seed\":42");
    CHECK_CONTAINS(g_last_body, "\"max_tokens\":7");
    llm_reply_deinit(&r);
    b->ops->set_sampling(b, NULL, 0);
    CHECK_EQ(ask(b, "plain", &r, &s, &e), 0);
    CHECK_CONTAINS(g_last_body, "\"max_tokens\":1024");
    CHECK(!strstr(g_last_body, "\"seed\""));
    llm_reply_deinit(&r);
    /* A tool call in fragments, joined. */
    CHECK_EQ(ask(b, "tool", &r, &s, &e), 0);
    CHECK(r.n_calls == 1 && !r.text);
    if (r.n_calls == 1) {
        CHECK_STR(r.calls[0].name, "recommend");
        CHECK_STR(r.calls[0].arguments, "{\"k\": 3, \"genres\": [\"Comedy\"]}");
    }
    llm_reply_deinit(&r);
    /* 429 then success: retried (Retry-After: 0). */
    CHECK_EQ(ask(b, "429", &r, &s, &e), 0);
    CHECK_STR(r.text, "Hello from the test server.");
    CHECK_EQ(g_hits[S_429], 2);
    llm_reply_deinit(&r);
    /* 500 every time: retried, then a message naming URL and status. */
    CHECK_EQ(ask(b, "500", &r, &s, &e), TAILOR_EDATA);
    CHECK_CONTAINS(e.msg, "/v1/chat/completions: HTTP 500: it broke here (after retries)");
    CHECK_EQ(g_hits[S_500], 3);
    /* 400: not retried. */
    CHECK_EQ(ask(b, "400", &r, &s, &e), TAILOR_EDATA);
    CHECK_CONTAINS(e.msg, "HTTP 400: unknown model x");
    CHECK_EQ(g_hits[S_400], 1);
    /* A server that ignores stream: true. */
    CHECK_EQ(ask(b, "whole", &r, &s, &e), 0);
    CHECK_STR(r.text, "all at once");
    llm_reply_deinit(&r);
    /* A stall after part of a reply: a timeout, not a hang (read timeout
     * 2 s), and not retried (its text had streamed on). */
    uint64_t t0 = timer_now_ns();
    CHECK_EQ(ask(b, "stall", &r, &s, &e), TAILOR_ENETWORK);
    double secs = timer_seconds_since(t0);
    CHECK(secs < 4);
    CHECK_CONTAINS(e.msg, "timed out");
    CHECK_EQ(g_hits[S_STALL], 1);
    /* Structured output: response_format with the schema; a server that
     * refuses it is asked in words (and its fenced JSON read); an answer
     * the schema refuses is an error naming the path. */
    static const char *const schema = "{\"type\":\"object\",\"properties\":{\"title\":{\"type\":\"string\"},"
                                      "\"year\":{\"type\":\"integer\"}},\"required\":[\"title\"]}";
    char *js = NULL;
    llm_msg jm[2] = {{.role = "system", .content = "Be brief."}, {.role = "user", .content = "json"}};
    sb_clear(&s);
    CHECK_EQ(b->ops->complete_json(b, jm, 2, schema, collect, &s, &js, &e), 0);
    CHECK_STR(js, "{\"title\": \"Heat\", \"year\": 1995}");
    CHECK_STR(sb_str(&s), "{\"title\": \"Heat\", \"year\": 1995}");
    CHECK_CONTAINS(g_last_body, "\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"answer\"");
    free(js);
    jm[1].content = "json-noformat";
    CHECK_EQ(b->ops->complete_json(b, jm, 2, schema, NULL, NULL, &js, &e), 0);
    CHECK_STR(js, "{\"title\": \"Heat\", \"year\": 1995}");
    CHECK_EQ(g_hits[S_JSON_NOFMT], 2);
    CHECK(strstr(g_last_body, "response_format") == NULL);
    CHECK_CONTAINS(g_last_body, "Be brief.\\n\\nAnswer with JSON only");
    free(js);
    jm[1].content = "json-bad";
    CHECK_EQ(b->ops->complete_json(b, jm, 2, schema, NULL, NULL, &js, &e), TAILOR_EDATA);
    CHECK(js == NULL);
    CHECK_CONTAINS(e.msg, "the answer is not JSON the schema accepts: $.title");
    /* Embeddings: POST /embeddings, normalised; errors name URL and status. */
    float *v = NULL;
    int32_t dim = 0;
    CHECK_EQ(b->ops->embed(b, "ok", 2, &v, &dim, &e), 0);
    CHECK_EQ(dim, 2);
    if (dim == 2) CHECK(fabsf(v[0] - 0.6f) < 1e-6f && fabsf(v[1] - 0.8f) < 1e-6f);
    CHECK_CONTAINS(g_last_body, "\"input\":\"ok\"");
    free(v);
    CHECK_EQ(b->ops->embed(b, "empty", 5, &v, &dim, &e), TAILOR_EDATA);
    CHECK_CONTAINS(e.msg, "/v1/embeddings: the reply holds no embedding");
    CHECK(v == NULL && dim == 0);
    CHECK_EQ(b->ops->embed(b, "other", 5, &v, &dim, &e), TAILOR_EDATA);
    CHECK_CONTAINS(e.msg, "http://127.0.0.1:");
    CHECK_CONTAINS(e.msg, "/v1/embeddings: HTTP 404: no embeddings here");
    b->ops->free(b);
    /* Nobody listening: a connection error, retried, then a message. */
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1", 1);
    llm_remote_params p = llm_remote_default_params();
    p.url = url;
    p.retries = 1;
    CHECK_EQ(llm_remote_backend_new(&p, &b, &e), 0);
    CHECK_EQ(ask(b, "plain", &r, &s, &e), TAILOR_ENETWORK);
    CHECK_CONTAINS(e.msg, "remote LLM http://127.0.0.1:1/v1/chat/completions:");
    b->ops->free(b);
    p.url = "ftp://x";
    CHECK_EQ(llm_remote_backend_new(&p, &b, &e), TAILOR_EINVAL);
    sb_deinit(&s);
}

/* Through the agent: malformed arguments get one repair round; arguments
 * the schema refuses twice withdraw the tool and the answer says so. */
static void test_repair(void) {
    char *dir = test_tmpdir(), *db = path_join(dir, "r.db");
    store *st = NULL;
    tailor_error e = {0};
    CHECK_EQ(store_open(db, store_default_params(), &st, &e), 0);
    free(db);
    if (!st) {
        free(dir);
        return;
    }
    int64_t id;
    store_item_put(st, "i1", "One", NULL, "{\"genres\":[\"Comedy\"]}", STORE_DUP_ERROR, &id, NULL, &e);
    pz_engine *eng;
    CHECK_EQ(pz_engine_new(st, &eng, &e), 0);
    llm_backend *b = backend(5, 1);
    agent *a = NULL;
    CHECK_EQ(agent_new(eng, b, agent_default_params(), &a, &e), 0);
    if (a) {
        agent_reply r;
        CHECK_EQ(agent_turn(a, "badjson", NULL, NULL, &r, &e), 0);
        CHECK(r.n_calls == 2 && !r.calls[0].ok);
        if (r.n_calls == 2) CHECK_CONTAINS(r.calls[0].result, "not valid JSON");
        CHECK_STR(r.text, "Here you go.");
        agent_reply_deinit(&r);
        CHECK_EQ(agent_turn(a, "badargs", NULL, NULL, &r, &e), 0);
        CHECK(r.n_calls == 2 && !r.calls[0].ok && !r.calls[1].ok);
        if (r.n_calls) CHECK_CONTAINS(r.calls[0].result, "$.k: must be at most 50");
        CHECK_CONTAINS(r.text, "I could not use recommend: the arguments given were invalid twice.");
        agent_reply_deinit(&r);
        agent_free(a);
    }
    b->ops->free(b);
    pz_engine_free(eng);
    store_close(st);
    test_rmtree(dir);
    free(dir);
}

/* A fleet of two: round robin, failover, the breaker, the health thread,
 * calls from several threads at once, and the stats /metrics shows. */
static llm_backend *fleet(int breaker, long cooldown_ms, long health_ms) {
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1, http://127.0.0.1:%d/v1/", g_a.port, g_b.port);
    llm_remote_params p = llm_remote_default_params();
    p.url = url;
    p.model = "test-model";
    p.read_timeout_s = 5;
    p.breaker_failures = breaker;
    p.breaker_cooldown_ms = cooldown_ms;
    p.health_interval_ms = health_ms;
    llm_backend *b = NULL;
    tailor_error e = {0};
    CHECK_EQ(llm_remote_backend_new(&p, &b, &e), 0);
    return b;
}

static int asks_ok(llm_backend *b, int n) {
    int ok = 0;
    for (int i = 0; i < n; i++) {
        llm_reply r;
        tailor_error e = {0};
        sb s;
        sb_init(&s);
        if (!ask(b, "plain", &r, &s, &e)) {
            ok += r.text && !strcmp(r.text, "Hello from the test server.");
            llm_reply_deinit(&r);
        } else {
            fprintf(stderr, "fleet ask: %s\n", e.msg);
        }
        sb_deinit(&s);
    }
    return ok;
}

static void *ask_thread(void *b) { return (void *)(intptr_t)asks_ok(b, 5); }

static void test_fleet(void) {
    llm_backend *b = fleet(2, 300, -1);
    if (!b) return;
    llm_upstream_stats st[4];
    CHECK(b->ops->concurrent && b->ops->upstreams);
    CHECK_EQ(b->ops->upstreams(b, st, 4), 2);
    CHECK_CONTAINS(st[1].url, "/v1");
    CHECK(st[0].up && st[1].up);
    /* Round robin. */
    int a0 = g_a.chats, b0 = g_b.chats;
    CHECK_EQ(asks_ok(b, 4), 4);
    CHECK_EQ(g_a.chats - a0, 2);
    CHECK_EQ(g_b.chats - b0, 2);
    b->ops->upstreams(b, st, 4);
    CHECK(st[0].ok == 2 && st[1].ok == 2 && st[0].le[LLM_UPSTREAM_BUCKETS - 1] == 2 && st[0].seconds > 0);
    /* B goes down: every request still answered (the one sent to B goes on
     * to A); two failures in a row take B out, and then nothing is sent
     * to it. */
    g_b.down = 1;
    a0 = g_a.chats;
    CHECK_EQ(asks_ok(b, 6), 6);
    CHECK_EQ(g_a.chats - a0, 6);
    b->ops->upstreams(b, st, 4);
    CHECK_EQ(st[1].failed, 2);
    CHECK_EQ(st[1].failovers, 2);
    CHECK_EQ(st[1].breaker_opens, 1);
    CHECK(!st[1].up && st[0].up);
    /* B back: after the cool-down one request tries it, and it is in. */
    g_b.down = 0;
    usleep(400000);
    b0 = g_b.chats;
    CHECK_EQ(asks_ok(b, 4), 4);
    CHECK_EQ(g_b.chats - b0, 2);
    b->ops->upstreams(b, st, 4);
    CHECK(st[1].up);
    /* A request that fails everywhere: tried on both, the message names both. */
    llm_reply r;
    tailor_error e = {0};
    sb s;
    sb_init(&s);
    CHECK_EQ(ask(b, "500", &r, &s, &e), TAILOR_EDATA);
    CHECK_CONTAINS(e.msg, "HTTP 500: it broke here (after failing over); before that on http://127.0.0.1:");
    /* Both down: failures take both out; then a request fails at once,
     * saying why, without being sent. */
    g_a.down = g_b.down = 1;
    for (int i = 0; i < 3; i++)
        if (!ask(b, "plain", &r, &s, &e)) llm_reply_deinit(&r);
    a0 = g_a.chats;
    uint64_t t0 = timer_now_ns();
    CHECK_EQ(ask(b, "plain", &r, &s, &e), TAILOR_ENETWORK);
    CHECK(timer_seconds_since(t0) < 0.2);
    CHECK_CONTAINS(e.msg, "no model server is taking requests");
    CHECK_CONTAINS(e.msg, "HTTP 503: going down");
    g_a.down = g_b.down = 0;
    b->ops->free(b);
    /* The health thread takes a server out and brings it back without a
     * request; calls from four threads at once all answered. */
    b = fleet(3, 60000, 100);
    if (!b) return;
    g_b.down = 1;
    bool out = false;
    for (int i = 0; i < 40 && !out; i++) {
        usleep(50000);
        b->ops->upstreams(b, st, 4);
        out = !st[1].up;
    }
    CHECK(out);
    CHECK_EQ(st[1].failed, 0);
    g_b.down = 0;
    bool back = false;
    for (int i = 0; i < 40 && !back; i++) {
        usleep(50000);
        b->ops->upstreams(b, st, 4);
        back = st[1].up;
    }
    CHECK(back);
    pthread_t th[4];
    for (int i = 0; i < 4; i++) pthread_create(&th[i], NULL, ask_thread, b);
    int total = 0;
    for (int i = 0; i < 4; i++) {
        void *got;
        pthread_join(th[i], &got);
        total += (int)(intptr_t)got;
    }
    CHECK_EQ(total, 20);
    b->ops->upstreams(b, st, 4);
    CHECK_EQ(st[0].ok + st[1].ok, 20);
    b->ops->free(b);
    /* A fleet's URLs are checked one by one. */
    llm_remote_params p = llm_remote_default_params();
    p.url = "http://a:1/v1,,http://b:2/v1";
    CHECK_EQ(llm_remote_backend_new(&p, &b, &e), TAILOR_EINVAL);
    CHECK_CONTAINS(e.msg, "'' is not an http(s) URL");
    sb_deinit(&s);
}

/* Plain completions with log-probabilities, in either reply form. */
static void test_logprobs(void) {
    llm_backend *b = backend(5, 0);
    tailor_error e = {0};
    char *text = NULL;
    llm_token_logprobs *lp = NULL;
    int n = 0;
    CHECK_EQ(b->ops->complete_logprobs(b, "legacy", 3, NULL, 0, &text, &lp, &n, &e), 0);
    CHECK(strstr(g_last_body, "\"logprobs\":3") && strstr(g_last_body, "\"prompt\":\"legacy\""));
    CHECK_STR(text, " B");
    CHECK_EQ(n, 1);
    if (n == 1) {
        CHECK_STR(lp[0].text, " B");
        CHECK(lp[0].logprob == -0.5f);
        CHECK_EQ(lp[0].n_top, 3); /* most likely first, whatever the server's order */
        CHECK_STR(lp[0].top[0].text, " B");
        CHECK_STR(lp[0].top[1].text, " A");
        CHECK(lp[0].top[2].logprob == -2.5f);
    }
    free(text);
    llm_token_logprobs_free(lp, n);
    CHECK_EQ(b->ops->complete_logprobs(b, "chat-form", 2, NULL, 0, &text, &lp, &n, &e), 0);
    CHECK_EQ(n, 1);
    if (n == 1) {
        CHECK_STR(lp[0].text, "C");
        CHECK_EQ(lp[0].n_top, 2);
        CHECK_STR(lp[0].top[1].text, "D");
    }
    free(text);
    llm_token_logprobs_free(lp, n);
    /* A server that sends none says so; plain text still completes. */
    CHECK_EQ(b->ops->complete_logprobs(b, "other", 2, NULL, 0, &text, &lp, &n, &e), TAILOR_EUNSUPPORTED);
    CHECK_CONTAINS(e.msg, "no log-probabilities");
    CHECK(!text && !lp && n == 0);
    const char *stop[] = {"\n"};
    CHECK_EQ(b->ops->complete_text(b, "other", stop, 1, NULL, NULL, &text, &e), 0);
    CHECK_STR(text, " plain");
    CHECK(strstr(g_last_body, "\"stop\":[\"\\n\"]") && !strstr(g_last_body, "logprobs"));
    free(text);
    /* Chat logprobs: asked for without streaming, read in the chat form. */
    llm_msg m = {.role = "user", .content = "hello"};
    CHECK_EQ(b->ops->chat_logprobs(b, &m, 1, 4, &text, &lp, &n, &e), 0);
    CHECK(strstr(g_last_body, "\"logprobs\":true,\"top_logprobs\":4") && strstr(g_last_body, "\"stream\":false"));
    CHECK_STR(text, "Hi!");
    CHECK_EQ(n, 2);
    if (n == 2) {
        CHECK_STR(lp[0].text, "Hi");
        CHECK(lp[0].logprob == -0.25f && lp[1].logprob == 0);
        CHECK_EQ(lp[0].n_top, 2);
        CHECK_STR(lp[0].top[0].text, "Hi");
        CHECK_EQ(lp[1].n_top, 0);
    }
    free(text);
    llm_token_logprobs_free(lp, n);
    m.content = "no-logprobs";
    CHECK_EQ(b->ops->chat_logprobs(b, &m, 1, 0, &text, &lp, &n, &e), TAILOR_EUNSUPPORTED);
    CHECK_CONTAINS(e.msg, "does not report them for chat");
    CHECK(!text && !lp && n == 0);
    b->ops->free(b);
}

int main(void) {
    if (!start_server(&g_a) || !start_server(&g_b)) {
        fprintf(stderr, "FATAL: cannot start fake_openai_server on loopback\n");
        return 1;
    }
    RUN(test_protocol);
    RUN(test_repair);
    RUN(test_logprobs);
    RUN(test_fleet);
    g_stop = 1;
    stop_server(&g_a);
    stop_server(&g_b);
    return test_summary();
}
