/* test_server.c — `tailor serve` over HTTP (libcurl as the client) on
 * ml-latest-small: every route walked with no key, a bad key, another
 * user's key and the right key; malformed, mistyped, huge and deeply
 * nested bodies; idempotent events; recommendations; chat sessions, plain
 * and streamed; model activation; rate limits; the OpenAPI description;
 * the OpenAI-compatible /v1 over stories260K (tool calls and JSON-schema
 * output checked against their schemas); a graceful stop with a request in
 * flight; a kill -9 while events are posted (every acknowledged event
 * stored once, integrity_check ok). `test_server load` runs 8 clients
 * mixing reads, writes, chat and model activation (TAILOR_LOAD_SECONDS,
 * default 20). */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>

#include "ingest/ingest.h"
#include "server/internal.h"
#include "test.h"
#include "test_db.h"
#include "test_train.h"

static char *g_dir, *g_db;
static srv *g_srv;   /* rules backend */
static srv *g_model; /* stories260K behind /v1 */
static int g_port;

#define ADMIN "tlr_test_admin_key_0000000000000000"
#define USER1 "tlr_test_user1_key_0000000000000000"
#define USER2 "tlr_test_user2_key_0000000000000000"
#define SLOW "tlr_test_slow_key_00000000000000000"
#define REVOKED "tlr_test_revoked_key_00000000000000"

/* ---- a client ----------------------------------------------------------------- */

typedef struct resp {
    long status;
    sb body, headers;
    cJSON *json;
} resp;

static size_t on_data(char *p, size_t size, size_t n, void *ud) {
    sb_append(ud, p, size * n);
    return size * n;
}

static void resp_deinit(resp *r) {
    sb_deinit(&r->body);
    sb_deinit(&r->headers);
    cJSON_Delete(r->json);
}

/* method path [key] [body]; the body's JSON parsed into r->json when it is JSON. */
static long call_port(int port, const char *method, const char *path, const char *key, const char *body, resp *r) {
    memset(r, 0, sizeof *r);
    sb_init(&r->body);
    sb_init(&r->headers);
    CURL *c = curl_easy_init();
    char url[1024], auth[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    struct curl_slist *h = NULL;
    if (key) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
        h = curl_slist_append(h, auth);
    }
    if (body) h = curl_slist_append(h, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r->body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r->headers);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    CURLcode rc = curl_easy_perform(c);
    if (rc == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    else r->status = -1;
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (r->body.len) r->json = cJSON_ParseWithLength(r->body.buf, r->body.len);
    return r->status;
}

static long call(const char *method, const char *path, const char *key, const char *body, resp *r) {
    return call_port(g_port, method, path, key, body, r);
}

static const char *err_code(const resp *r) {
    return cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(r->json, "error"), "code"));
}

/* ---- setup --------------------------------------------------------------------- */

static void add_key(store *s, const char *key, const char *role, const char *user, double rate, bool revoke) {
    store_key k = {.role = (char *)role, .user = (char *)user, .rate = rate, .name = (char *)key};
    tailor_error e = {0};
    CHECK_EQ(store_key_add(s, &k, key, NULL, &e), 0);
    if (revoke) CHECK_EQ(store_key_revoke(s, key, &e), 0);
}

static void setup(void) {
    char *dir = test_data_path("ml-latest-small");
    g_db = path_join(g_dir, "ml.db");
    tailor_error e = {0};
    store *s;
    CHECK_EQ(store_open(g_db, store_default_params(), &s, &e), 0);
    ing_stats st;
    ing_movielens_params mp = {.dup = STORE_DUP_ERROR};
    CHECK_EQ(ing_movielens(s, dir, mp, &st, &e), 0);
    test_train(s, "itemknn", "knn", "k=10", true);
    test_train(s, "pop", "pop", NULL, false);
    add_key(s, ADMIN, "admin", NULL, 0, false);
    add_key(s, USER1, "user", "1", 0, false);
    add_key(s, USER2, "user", "2", 0, false);
    add_key(s, SLOW, "user", "3", 2, false);
    add_key(s, REVOKED, "user", "1", 0, true);
    store_close(s);
    free(dir);
    /* A report for the page's evaluation view. */
    char *reports = path_join(g_dir, "ml.db.reports/r");
    CHECK_EQ(mkdir_p(reports, &e), 0);
    free(test_write(reports, "report.md", "# Evaluation\n\n| model | ndcg@10 |\n|---|---|\n| pop | 0.02 |\n"));
    free(reports);
    srv_params p = srv_default_params();
    p.db_path = g_db;
    p.port = 0;
    p.threads = 2;
    p.max_body = 64 * 1024;
    p.timeout_s = 2;
    if (srv_new(&p, &g_srv, &e)) {
        fprintf(stderr, "FATAL: cannot start the server: %s\n", e.msg);
        exit(1);
    }
    g_port = srv_port(g_srv);
    CHECK(g_port > 0);
}

/* ---- keys and scopes ---------------------------------------------------------------- */

/* A concrete request for a route: path parameters filled for user 1. */
static void route_request(const srv_route *rt, int64_t session, char *path, size_t n, const char **body) {
    sb p;
    sb_init(&p);
    for (const char *c = rt->pattern; *c;) {
        if (*c == '{') {
            const char *e = strchr(c, '}');
            if (!strncmp(c, "{name}", 6)) sb_puts(&p, "knn");
            else if (!strncmp(c, "{file}", 6)) sb_puts(&p, "index.html");
            else if (strstr(rt->pattern, "/sessions/")) sb_printf(&p, "%lld", (long long)session);
            else sb_puts(&p, "1");
            c = e + 1;
        } else {
            sb_putc(&p, *c++);
        }
    }
    if (!strcmp(rt->pattern, "/api/reports/file")) sb_puts(&p, "?dir=r&file=report.md");
    snprintf(path, n, "%s", sb_str(&p));
    sb_deinit(&p);
    *body = NULL;
    if (!strcmp(rt->method, "POST")) {
        if (strstr(rt->pattern, "/messages")) *body = "{\"text\":\"two comedies\"}";
        else if (strstr(rt->pattern, "/events")) *body = "{\"user\":\"1\",\"item\":\"1\"}";
        else if (strstr(rt->pattern, "/recommendations")) *body = "{\"history\":[\"1\",\"2\"],\"k\":3}";
        else if (strstr(rt->pattern, "/sessions")) *body = "{\"user\":\"1\"}";
        else if (strstr(rt->pattern, "/chat/")) *body = "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
        else if (strstr(rt->pattern, "/completions")) *body = "{\"prompt\":\"hi\"}";
        else if (strstr(rt->pattern, "/embeddings")) *body = "{\"input\":\"hi\"}";
        else *body = "{}";
    }
}

static void test_keys_walk(void) {
    resp r;
    CHECK_EQ(call("POST", "/api/sessions", USER1, "{}", &r), 201);
    int64_t session = 0;
    const char *sid = cJSON_GetStringValue(cJSON_GetObjectItem(r.json, "session"));
    if (sid) parse_i64(sid, strlen(sid), &session);
    resp_deinit(&r);
    CHECK(session > 0);
    int walked = 0;
    for (int i = 0; i < SRV_N_ROUTES; i++) {
        const srv_route *rt = &SRV_ROUTES[i];
        char path[256];
        const char *body;
        route_request(rt, session, path, sizeof path, &body);
        if (rt->scope == SRV_OPEN) {
            CHECK_EQ(call(rt->method, path, NULL, body, &r), 200);
            resp_deinit(&r);
            continue;
        }
        walked++;
        /* No key, a bad key and a revoked key: 401, whatever the route. */
        const char *bad[] = {NULL, "tlr_not_a_key", REVOKED};
        for (int b = 0; b < 3; b++) {
            long st = call(rt->method, path, bad[b], body, &r);
            if (st != 401) fprintf(stderr, "%s %s with key %s: %ld\n", rt->method, path, bad[b] ? bad[b] : "none", st);
            CHECK_EQ(st, 401);
            CHECK_STR(err_code(&r), "unauthorized");
            CHECK_CONTAINS(r.headers.buf, "WWW-Authenticate: Bearer");
            resp_deinit(&r);
        }
        /* Another user's key: 403 on routes about user 1 and on admin routes. */
        bool about_user1 = strstr(rt->pattern, "/users/") || strstr(rt->pattern, "/sessions") ||
                           strstr(rt->pattern, "/events");
        if (rt->scope == SRV_ADMIN || about_user1) {
            long st = call(rt->method, path, USER2, body, &r);
            if (st != 403) fprintf(stderr, "%s %s with user 2's key: %ld %s\n", rt->method, path, st, sb_str(&r.body));
            CHECK_EQ(st, 403);
            CHECK_STR(err_code(&r), "forbidden");
            resp_deinit(&r);
        }
        /* The right key: through (a /v1 route answers 503 here: no model). */
        const char *right = rt->scope == SRV_ADMIN ? ADMIN : USER1;
        long st = call(rt->method, path, right, body, &r);
        bool v1 = !strncmp(rt->pattern, "/v1/", 4) && strcmp(rt->pattern, "/v1/models");
        if (!v1 && (st < 200 || st >= 300)) fprintf(stderr, "%s %s with the right key: %ld %s\n", rt->method, path, st, sb_str(&r.body));
        CHECK(v1 ? st == 503 : st >= 200 && st < 300);
        resp_deinit(&r);
        /* An admin key passes everywhere. */
        st = call(rt->method, path, ADMIN, body, &r);
        CHECK(v1 ? st == 503 : st >= 200 && st < 300);
        resp_deinit(&r);
    }
    CHECK(walked >= 18);
    printf("  keys: %d routes walked with no key, a bad key, a revoked key, another user's key and the right key\n",
           walked);
}

/* ---- bad requests ------------------------------------------------------------------- */

static void test_bad_requests(void) {
    resp r;
    struct {
        const char *method, *path, *body;
        long status;
        const char *code;
    } cases[] = {
        {"POST", "/api/events", "{\"user\":\"1\",", 400, "invalid_json"},
        {"POST", "/api/events", "{\"user\":\"1\",\"item\":\"1\"} trailing", 400, "invalid_json"},
        {"POST", "/api/events", "", 400, "invalid_json"},
        {"POST", "/api/events", "{\"user\":\"1\",\"item\":\"1\",\"value\":\"high\"}", 400, "invalid_event"},
        {"POST", "/api/events", "{\"user\":\"1\",\"item\":\"1\",\"ts\":-5}", 400, "invalid_event"},
        {"POST", "/api/events", "{\"user\":\"1\",\"item\":\"1\",\"colour\":\"red\"}", 400, "invalid_event"},
        {"POST", "/api/events", "{\"user\":\"1\",\"item\":\"no-such-item\"}", 422, "unknown_item"},
        {"POST", "/api/events", "{\"events\":[]}", 400, "invalid_request"},
        {"POST", "/api/events", "42", 400, "invalid_request"},
        {"POST", "/api/recommendations", "{\"history\":\"1\"}", 400, "invalid_request"},
        {"POST", "/api/recommendations", "{\"history\":[\"1\"],\"k\":0}", 400, "invalid_request"},
        {"POST", "/api/recommendations", "{\"history\":[\"1\"],\"filters\":[\"colour=red\"]}", 400, "invalid_filter"},
        {"POST", "/api/recommendations", "[1,2]", 400, "invalid_json"},
        {"GET", "/api/users/nobody", NULL, 404, "not_found"},
        {"GET", "/api/users/nobody/recommendations", NULL, 404, "not_found"},
        {"GET", "/api/items/no-such-item", NULL, 404, "not_found"},
        {"GET", "/api/items/no-such-item/similar", NULL, 404, "not_found"},
        {"GET", "/api/users/1/recommendations?k=abc", NULL, 400, "invalid_parameter"},
        {"GET", "/api/users/1/recommendations?k=100000", NULL, 400, "invalid_parameter"},
        {"GET", "/api/users/1/recommendations?filter=nosuch=Comedy", NULL, 400, "invalid_filter"},
        {"GET", "/api/users/1/recommendations?model=nosuch", NULL, 404, "not_found"},
        {"GET", "/api/models/nosuch", NULL, 404, "not_found"},
        {"POST", "/api/models/nosuch/activate", NULL, 404, "not_found"},
        {"GET", "/api/sessions/999999", NULL, 404, "not_found"},
        {"GET", "/api/sessions/abc", NULL, 404, "not_found"},
        {"POST", "/api/sessions", "{\"user\":\"nobody\"}", 404, "not_found"},
        {"POST", "/api/sessions", "{\"user\":[1]}", 400, "invalid_request"},
        {"GET", "/api/nowhere", NULL, 404, "not_found"},
        {"DELETE", "/api/events", NULL, 405, "method_not_allowed"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        long st = call(cases[i].method, cases[i].path, ADMIN, cases[i].body, &r);
        if (st != cases[i].status || !err_code(&r) || strcmp(err_code(&r), cases[i].code))
            fprintf(stderr, "case %zu %s %s: %ld %s\n", i, cases[i].method, cases[i].path, st, sb_str(&r.body));
        CHECK_EQ(st, cases[i].status);
        CHECK_STR(err_code(&r), cases[i].code);
        CHECK(cJSON_IsString(cJSON_GetObjectItem(cJSON_GetObjectItem(r.json, "error"), "message")));
        resp_deinit(&r);
    }
    CHECK_EQ(call("DELETE", "/api/events", ADMIN, NULL, &r), 405);
    CHECK_CONTAINS(r.headers.buf, "Allow: POST");
    resp_deinit(&r);
    /* Over the size limit (64 KiB here): 413, before the body is read. */
    size_t big = 200 * 1024;
    char *huge = xmalloc(big + 1);
    memset(huge, ' ', big);
    huge[big] = 0;
    huge[0] = '[';
    huge[big - 1] = ']';
    CHECK_EQ(call("POST", "/api/events", ADMIN, huge, &r), 413);
    CHECK_STR(err_code(&r), "body_too_large");
    resp_deinit(&r);
    /* Deeply nested: refused as JSON, the server stays up. */
    size_t depth = 20000;
    for (size_t i = 0; i < depth; i++) huge[i] = '[';
    for (size_t i = 0; i < depth; i++) huge[depth + i] = ']';
    huge[2 * depth] = 0;
    CHECK_EQ(call("POST", "/api/events", ADMIN, huge, &r), 400);
    resp_deinit(&r);
    free(huge);
    /* Garbage on the socket: the server drops it and stays up. */
    CHECK_EQ(call("GET", "/healthz", NULL, NULL, &r), 200);
    CHECK_CONTAINS(sb_str(&r.body), "\"ok\"");
    resp_deinit(&r);
}

/* A client that sends half a request and stops is dropped after the
 * timeout (2 s here); the server answers others meanwhile. */
static void test_slow_client(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g_port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    CHECK_EQ(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    const char *half = "POST /api/events HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"user\"";
    CHECK(write(fd, half, strlen(half)) > 0);
    resp r;
    CHECK_EQ(call("GET", "/healthz", NULL, NULL, &r), 200);
    resp_deinit(&r);
    uint64_t t0 = timer_now_ns();
    char buf[256];
    ssize_t n = read(fd, buf, sizeof buf); /* blocks until the server closes */
    double waited = timer_seconds_since(t0);
    CHECK(n <= 0);
    CHECK(waited > 1.0 && waited < 10.0);
    close(fd);
}

/* ---- events --------------------------------------------------------------------------- */

static void test_events(void) {
    store *s;
    tailor_error e = {0};
    CHECK_EQ(store_open(g_db, store_default_params(), &s, &e), 0);
    int64_t before = query_int(s, "SELECT count(*) FROM events");
    resp r;
    const char *batch = "{\"events\":[{\"item\":\"1\",\"id\":\"a\",\"kind\":\"view\"},{\"item\":2,\"id\":\"b\",\"value\":4.5,"
                        "\"ts\":1700000000},{\"item\":\"3\"}]}";
    CHECK_EQ(call("POST", "/api/events", USER1, batch, &r), 201);
    CHECK_EQ(cJSON_GetObjectItem(r.json, "stored")->valueint, 3);
    resp_deinit(&r);
    /* The retry of a batch with client ids stores only what has none. */
    CHECK_EQ(call("POST", "/api/events", USER1, batch, &r), 201);
    CHECK_EQ(cJSON_GetObjectItem(r.json, "stored")->valueint, 1);
    CHECK_EQ(cJSON_GetObjectItem(r.json, "duplicates")->valueint, 2);
    resp_deinit(&r);
    CHECK_EQ(query_int(s, "SELECT count(*) FROM events") - before, 4);
    /* A batch with one bad event stores nothing (one transaction). */
    CHECK_EQ(call("POST", "/api/events", USER1, "[{\"item\":\"1\",\"id\":\"c\"},{\"item\":\"no-such\"}]", &r), 422);
    resp_deinit(&r);
    CHECK_EQ(query_int(s, "SELECT count(*) FROM events") - before, 4);
    CHECK_EQ(query_int(s, "SELECT count(*) FROM event_ids WHERE client_id = 'c'"), 0);
    /* A new user comes with their first event (admin key). */
    CHECK_EQ(call("POST", "/api/events", ADMIN, "{\"user\":\"newcomer\",\"item\":\"1\"}", &r), 201);
    CHECK_EQ(cJSON_GetObjectItem(r.json, "new_users")->valueint, 1);
    resp_deinit(&r);
    CHECK_EQ(call("GET", "/api/users/newcomer/history", ADMIN, NULL, &r), 200);
    CHECK_EQ(cJSON_GetObjectItem(r.json, "total")->valueint, 1);
    resp_deinit(&r);
    store_close(s);
}

/* ---- recommendations, search, models -------------------------------------------------- */

static void test_recommendations(void) {
    resp r, h;
    CHECK_EQ(call("GET", "/api/users/1/recommendations?k=5&explain=true&filter=genres%3DComedy", USER1, NULL, &r), 200);
    const cJSON *items = cJSON_GetObjectItem(r.json, "items");
    CHECK_EQ(cJSON_GetArraySize(items), 5);
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(r.json, "model")), "knn");
    CHECK_EQ(call("GET", "/api/users/1/history?limit=10000", USER1, NULL, &h), 200);
    const cJSON *it, *ev;
    cJSON_ArrayForEach(it, items) {
        const char *id = cJSON_GetStringValue(cJSON_GetObjectItem(it, "item"));
        cJSON_ArrayForEach(ev, cJSON_GetObjectItem(h.json, "events"))
            CHECK(strcmp(id, cJSON_GetStringValue(cJSON_GetObjectItem(ev, "item"))) != 0); /* nothing seen */
        CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(it, "because")) > 0);
        resp d;
        char path[128];
        snprintf(path, sizeof path, "/api/items/%s", id);
        CHECK_EQ(call("GET", path, USER1, NULL, &d), 200);
        CHECK_CONTAINS(d.body.buf, "Comedy");
        resp_deinit(&d);
    }
    resp_deinit(&h);
    resp_deinit(&r);
    CHECK_EQ(call("POST", "/api/recommendations", USER2, "{\"history\":[\"1\",2,\"3\"],\"k\":4,\"explain\":true}", &r), 200);
    CHECK_EQ(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "items")), 4);
    resp_deinit(&r);
    CHECK_EQ(call("GET", "/api/items?q=toy%20story&k=3", USER1, NULL, &r), 200);
    CHECK_CONTAINS(r.body.buf, "Toy Story (1995)");
    resp_deinit(&r);
    CHECK_EQ(call("GET", "/api/items/1/similar?k=3", USER1, NULL, &r), 200);
    CHECK_EQ(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "items")), 3);
    resp_deinit(&r);
    /* Activation swaps the model every worker serves, without a restart. */
    CHECK_EQ(call("POST", "/api/models/pop/activate", ADMIN, NULL, &r), 200);
    resp_deinit(&r);
    for (int i = 0; i < 4; i++) { /* both workers */
        CHECK_EQ(call("GET", "/api/users/1/recommendations?k=2", USER1, NULL, &r), 200);
        CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(r.json, "model")), "pop");
        resp_deinit(&r);
    }
    CHECK_EQ(call("GET", "/metrics", ADMIN, NULL, &r), 200);
    CHECK_CONTAINS(r.body.buf, "tailor_model{name=\"pop\",kind=\"pop\"");
    CHECK_CONTAINS(r.body.buf, "tailor_http_requests_total{route=\"GET /api/users/{id}/recommendations\",status=\"200\"}");
    CHECK_CONTAINS(r.body.buf, "tailor_http_request_duration_seconds_bucket{route=\"POST /api/events\",code=\"2xx\",le=\"+Inf\"}");
    CHECK_CONTAINS(r.body.buf, "tailor_http_request_duration_seconds_count{route=\"POST /api/events\",code=\"4xx\"}");
    CHECK_CONTAINS(r.body.buf, "tailor_queue_depth 0");
    CHECK_CONTAINS(r.headers.buf, "text/plain; version=0.0.4");
    resp_deinit(&r);
    CHECK_EQ(call("POST", "/api/models/knn/activate", ADMIN, NULL, &r), 200);
    resp_deinit(&r);
    CHECK_EQ(call("GET", "/api/models", USER1, NULL, &r), 200);
    CHECK_EQ(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "models")), 2);
    resp_deinit(&r);
    CHECK_EQ(call("GET", "/readyz", USER1, NULL, &r), 200);
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(r.json, "active_model")), "knn");
    resp_deinit(&r);
}

/* ---- chat sessions ---------------------------------------------------------------------- */

static void test_sessions(void) {
    resp r;
    CHECK_EQ(call("POST", "/api/sessions", USER1, NULL, &r), 201);
    char path[128];
    snprintf(path, sizeof path, "/api/sessions/%s/messages", cJSON_GetStringValue(cJSON_GetObjectItem(r.json, "session")));
    resp_deinit(&r);
    CHECK_EQ(call("POST", path, USER1, "{\"text\":\"three comedies from the 90s\"}", &r), 200);
    CHECK_EQ(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "items")), 3);
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(r.json, "tool_calls"), 0), "name")),
              "recommend");
    resp_deinit(&r);
    /* Streamed: tokens, then the whole reply, then done. */
    CHECK_EQ(call("POST", path, USER1, "{\"text\":\"more\",\"stream\":true}", &r), 200);
    CHECK_CONTAINS(r.headers.buf, "text/event-stream");
    const char *b = sb_str(&r.body), *tok = strstr(b, "event: token\ndata: {\"text\":"), *rep = strstr(b, "event: reply\ndata: {");
    CHECK(tok && rep && tok < rep);
    CHECK(strstr(b, "event: done") > rep);
    resp_deinit(&r);
    /* Standing constraints hold across turns through the server too. */
    CHECK_EQ(call("POST", path, USER1, "{\"text\":\"no comedies\"}", &r), 200);
    resp_deinit(&r);
    CHECK_EQ(call("POST", path, USER1, "{\"text\":\"five films from the 90s\"}", &r), 200);
    const cJSON *it;
    int n = 0;
    cJSON_ArrayForEach(it, cJSON_GetObjectItem(r.json, "items")) {
        char ip[128];
        snprintf(ip, sizeof ip, "/api/items/%s", cJSON_GetStringValue(cJSON_GetObjectItem(it, "id")));
        resp d;
        CHECK_EQ(call("GET", ip, USER1, NULL, &d), 200);
        CHECK(!strstr(d.body.buf, "\"Comedy\""));
        resp_deinit(&d);
        n++;
    }
    CHECK_EQ(n, 5);
    resp_deinit(&r);
    /* The history: the messages of every turn, tool calls included. */
    *strrchr(path, '/') = 0;
    CHECK_EQ(call("GET", path, USER1, NULL, &r), 200);
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "messages")) >= 8);
    CHECK_CONTAINS(r.body.buf, "\"tool\":\"recommend\"");
    resp_deinit(&r);
    CHECK_EQ(call("GET", path, USER2, NULL, &r), 403);
    resp_deinit(&r);
}

/* ---- rate limits, the description ------------------------------------------------------- */

static void test_rate_limit(void) {
    resp r;
    int ok = 0, limited = 0;
    for (int i = 0; i < 12; i++) {
        long st = call("GET", "/api/models", SLOW, NULL, &r); /* 2/s, a burst of 4 */
        if (st == 200) ok++;
        if (st == 429) {
            limited++;
            CHECK_CONTAINS(r.headers.buf, "Retry-After: ");
            CHECK_STR(err_code(&r), "rate_limited");
        }
        resp_deinit(&r);
    }
    CHECK(ok >= 4 && ok <= 6);
    CHECK_EQ(ok + limited, 12);
    usleep(1100 * 1000); /* the bucket refills */
    CHECK_EQ(call("GET", "/api/models", SLOW, NULL, &r), 200);
    resp_deinit(&r);
}

static void test_openapi(void) {
    resp r;
    CHECK_EQ(call("GET", "/openapi.json", USER2, NULL, &r), 200);
    CHECK(r.json != NULL);
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(r.json, "openapi")), "3.0.3");
    const cJSON *paths = cJSON_GetObjectItem(r.json, "paths");
    for (int i = 0; i < SRV_N_ROUTES; i++) {
        char m[8] = {0};
        for (int k = 0; k < 7 && SRV_ROUTES[i].method[k]; k++) m[k] = (char)(SRV_ROUTES[i].method[k] | 0x20);
        CHECK(cJSON_GetObjectItem(cJSON_GetObjectItem(paths, SRV_ROUTES[i].pattern), m) != NULL);
    }
    resp_deinit(&r);
    CHECK_EQ(call("GET", "/", NULL, NULL, &r), 200);
    CHECK_CONTAINS(r.headers.buf, "text/html");
    resp_deinit(&r);
}

/* ---- /v1 over a real model ---------------------------------------------------------------- */

static long v1(const char *path, const char *body, resp *r) { return call_port(srv_port(g_model), "POST", path, ADMIN, body, r); }

static void start_model_server(void) {
    char *model = test_data_path("tinyllamas-stories260K/stories260K.gguf");
    llm_local_params lp = llm_local_default_params();
    lp.model = model;
    lp.chat_format = "chatml";
    lp.ctx.n_ctx = 2048;
    lp.ctx.n_threads = 1;
    lp.sampling.seed = 1;
    tailor_error e = {0};
    srv_params p = srv_default_params();
    p.db_path = g_db;
    p.port = 0;
    p.threads = 2;
    p.llm_name = "stories";
    CHECK_EQ(llm_local_backend_new(&lp, &p.llm, &e), 0);
    CHECK_EQ(srv_new(&p, &g_model, &e), 0);
    free(model);
}

static void test_v1(void) {
    resp r;
    CHECK_EQ(call_port(srv_port(g_model), "GET", "/v1/models", USER1, NULL, &r), 200);
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(r.json, "data"), 0), "id")),
              "stories");
    resp_deinit(&r);
    CHECK_EQ(v1("/v1/chat/completions", "{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":\"Once\"}],"
                                         "\"max_tokens\":12,\"seed\":5}", &r), 200);
    const cJSON *ch = cJSON_GetArrayItem(cJSON_GetObjectItem(r.json, "choices"), 0);
    CHECK(cJSON_IsString(cJSON_GetObjectItem(cJSON_GetObjectItem(ch, "message"), "content")));
    CHECK_EQ(cJSON_GetObjectItem(cJSON_GetObjectItem(r.json, "usage"), "completion_tokens")->valueint, 12);
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(ch, "finish_reason")), "length");
    char *first = xstrdup(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(ch, "message"), "content")));
    resp_deinit(&r);
    /* Streamed with the same seed: the same text, in chunks, then [DONE]. */
    CHECK_EQ(v1("/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"Once\"}],\"max_tokens\":12,"
                                         "\"seed\":5,\"stream\":true}", &r), 200);
    sb joined;
    sb_init(&joined);
    int chunks = 0;
    for (const char *p = strstr(r.body.buf, "data: "); p; p = strstr(p + 1, "data: ")) {
        if (!strncmp(p, "data: [DONE]", 12)) break;
        const char *e = strstr(p, "\n\n");
        cJSON *c = cJSON_ParseWithLength(p + 6, (size_t)(e - p - 6));
        const char *t = cJSON_GetStringValue(
            cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(c, "choices"), 0), "delta"), "content"));
        if (t) sb_puts(&joined, t), chunks++;
        cJSON_Delete(c);
    }
    CHECK_STR(sb_str(&joined), first);
    CHECK(chunks > 3);
    CHECK_CONTAINS(r.body.buf, "data: [DONE]");
    sb_deinit(&joined);
    free(first);
    resp_deinit(&r);
    /* Tool calls: valid against the tool's schema, whatever the model. */
    const char *schema = "{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\",\"maxLength\":12},"
                         "\"days\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":7}},\"required\":[\"city\",\"days\"]}";
    for (int seed = 0; seed < 5; seed++) {
        char body[1024];
        snprintf(body, sizeof body,
                 "{\"messages\":[{\"role\":\"user\",\"content\":\"weather\"}],\"tools\":[{\"type\":\"function\","
                 "\"function\":{\"name\":\"forecast\",\"description\":\"the weather\",\"parameters\":%s}}],"
                 "\"tool_choice\":\"required\",\"seed\":%d,\"temperature\":1}",
                 schema, seed);
        CHECK_EQ(v1("/v1/chat/completions", body, &r), 200);
        ch = cJSON_GetArrayItem(cJSON_GetObjectItem(r.json, "choices"), 0);
        CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(ch, "finish_reason")), "tool_calls");
        const cJSON *calls = cJSON_GetObjectItem(cJSON_GetObjectItem(ch, "message"), "tool_calls"), *c;
        CHECK(cJSON_GetArraySize(calls) >= 1);
        cJSON_ArrayForEach(c, calls) {
            const cJSON *fn = cJSON_GetObjectItem(c, "function");
            CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(fn, "name")), "forecast");
            tailor_error e = {0};
            CHECK_EQ(llm_schema_validate(schema, cJSON_GetStringValue(cJSON_GetObjectItem(fn, "arguments")), &e), 0);
        }
        resp_deinit(&r);
    }
    /* A tool round trip: the result goes back, the model answers. */
    CHECK_EQ(v1("/v1/chat/completions",
                "{\"messages\":[{\"role\":\"user\",\"content\":\"weather\"},{\"role\":\"assistant\",\"content\":null,"
                "\"tool_calls\":[{\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"forecast\","
                "\"arguments\":\"{\\\"city\\\":\\\"Oslo\\\",\\\"days\\\":2}\"}}]},{\"role\":\"tool\",\"tool_call_id\":"
                "\"call_1\",\"content\":\"{\\\"sky\\\":\\\"clear\\\"}\"}],\"tool_choice\":\"none\",\"max_tokens\":8}",
                &r),
             200);
    CHECK(cJSON_IsString(cJSON_GetObjectItem(
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(r.json, "choices"), 0), "message"), "content")));
    resp_deinit(&r);
    /* JSON-schema output: valid against the schema. */
    char body[1024];
    snprintf(body, sizeof body,
             "{\"messages\":[{\"role\":\"user\",\"content\":\"json\"}],\"response_format\":{\"type\":\"json_schema\","
             "\"json_schema\":{\"name\":\"f\",\"schema\":%s}},\"seed\":9,\"temperature\":1}",
             schema);
    CHECK_EQ(v1("/v1/chat/completions", body, &r), 200);
    const char *content = cJSON_GetStringValue(
        cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(r.json, "choices"), 0), "message"), "content"));
    tailor_error e = {0};
    CHECK(content && llm_schema_validate(schema, content, &e) == 0);
    resp_deinit(&r);
    /* Completions with a stop string; embeddings as floats and base64. */
    CHECK_EQ(v1("/v1/completions", "{\"prompt\":\"Once upon a time\",\"max_tokens\":30,\"stop\":[\".\"],\"seed\":1}", &r), 200);
    const char *text = cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(r.json, "choices"), 0), "text"));
    CHECK(text && !strchr(text, '.'));
    resp_deinit(&r);
    /* logprobs: greedy tokens are their step's likeliest; with the whole
     * vocabulary (512 tokens here) the probabilities sum to 1. */
    CHECK_EQ(v1("/v1/completions", "{\"prompt\":\"Once upon a time\",\"max_tokens\":3,\"temperature\":0,\"logprobs\":5}", &r), 200);
    ch = cJSON_GetArrayItem(cJSON_GetObjectItem(r.json, "choices"), 0);
    const cJSON *lpo = cJSON_GetObjectItem(ch, "logprobs");
    const cJSON *toks = cJSON_GetObjectItem(lpo, "tokens"), *tlp = cJSON_GetObjectItem(lpo, "token_logprobs"),
                *tops = cJSON_GetObjectItem(lpo, "top_logprobs");
    CHECK(cJSON_GetArraySize(toks) == 3 && cJSON_GetArraySize(tlp) == 3 && cJSON_GetArraySize(tops) == 3);
    sb joined_toks;
    sb_init(&joined_toks);
    for (int i = 0; i < cJSON_GetArraySize(toks); i++) {
        const cJSON *top = cJSON_GetArrayItem(tops, i), *x;
        double mine = cJSON_GetArrayItem(tlp, i)->valuedouble, best = -1e30, prev = 1;
        int k = 0;
        cJSON_ArrayForEach(x, top) {
            CHECK(x->valuedouble <= prev && x->valuedouble <= 0);
            prev = x->valuedouble, best = fmax(best, x->valuedouble), k++;
        }
        CHECK(k >= 1 && k <= 5);
        CHECK(fabs(best - mine) < 1e-5);
        sb_puts(&joined_toks, cJSON_GetStringValue(cJSON_GetArrayItem(toks, i)));
    }
    CHECK_STR(sb_str(&joined_toks), cJSON_GetStringValue(cJSON_GetObjectItem(ch, "text")));
    sb_deinit(&joined_toks);
    resp_deinit(&r);
    CHECK_EQ(v1("/v1/completions", "{\"prompt\":\"Once\",\"max_tokens\":1,\"logprobs\":10000}", &r), 200);
    const cJSON *all = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(
                                              cJSON_GetArrayItem(cJSON_GetObjectItem(r.json, "choices"), 0), "logprobs"),
                                          "top_logprobs"),
                                          0),
                *x;
    double psum = 0;
    int nall = 0;
    cJSON_ArrayForEach(x, all) psum += exp(x->valuedouble), nall++;
    CHECK(nall > 400 && nall <= 512); /* tokens of equal text are listed once */
    CHECK(fabs(psum - 1) < 0.02);
    resp_deinit(&r);
    CHECK_EQ(v1("/v1/completions", "{\"prompt\":\"Once\",\"max_tokens\":2,\"logprobs\":0}", &r), 200);
    CHECK_EQ(cJSON_GetArraySize(cJSON_GetObjectItem(cJSON_GetObjectItem(
                 cJSON_GetArrayItem(cJSON_GetObjectItem(r.json, "choices"), 0), "logprobs"), "token_logprobs")),
             2); /* the tokens' own, no alternatives */
    resp_deinit(&r);
    CHECK_EQ(v1("/v1/completions", "{\"prompt\":\"Once\",\"logprobs\":5,\"stream\":true}", &r), 400);
    CHECK_CONTAINS(r.body.buf, "'logprobs' with 'stream'");
    resp_deinit(&r);
    CHECK_EQ(v1("/v1/completions", "{\"prompt\":\"Once\",\"logprobs\":2.5}", &r), 400);
    resp_deinit(&r);
    /* Chat logprobs: the tokens spell the answer (bytes too); each step's
     * alternatives come most likely first, the token's own among them or
     * below them (the answer grammar may mask a likelier one). */
    CHECK_EQ(v1("/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"Once\"}],\"max_tokens\":4,"
                "\"temperature\":0,\"logprobs\":true,\"top_logprobs\":3}", &r), 200);
    ch = cJSON_GetArrayItem(cJSON_GetObjectItem(r.json, "choices"), 0);
    const cJSON *content_lp = cJSON_GetObjectItem(cJSON_GetObjectItem(ch, "logprobs"), "content"), *t;
    CHECK(cJSON_GetArraySize(content_lp) >= 1 && cJSON_GetArraySize(content_lp) <= 4);
    sb_init(&joined_toks);
    sb bytes;
    sb_init(&bytes);
    cJSON_ArrayForEach(t, content_lp) {
        double mine = cJSON_GetObjectItem(t, "logprob")->valuedouble, prev = 1, best_alt = 1;
        const cJSON *y, *by;
        int k = 0;
        cJSON_ArrayForEach(y, cJSON_GetObjectItem(t, "top_logprobs")) {
            double lpv = cJSON_GetObjectItem(y, "logprob")->valuedouble;
            CHECK(lpv <= prev && lpv <= 0 && cJSON_IsArray(cJSON_GetObjectItem(y, "bytes")));
            if (!k) best_alt = lpv;
            prev = lpv, k++;
        }
        CHECK_EQ(k, 3);
        CHECK(mine <= best_alt + 1e-5);
        sb_puts(&joined_toks, cJSON_GetStringValue(cJSON_GetObjectItem(t, "token")));
        cJSON_ArrayForEach(by, cJSON_GetObjectItem(t, "bytes")) sb_putc(&bytes, (char)by->valueint);
    }
    const char *answer = cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(ch, "message"), "content"));
    CHECK(answer != NULL);
    CHECK_STR(sb_str(&bytes), answer ? answer : "");
    CHECK_STR(sb_str(&joined_toks), answer ? answer : "");
    sb_deinit(&bytes);
    sb_deinit(&joined_toks);
    resp_deinit(&r);
    CHECK_EQ(v1("/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":2,"
                "\"logprobs\":true}", &r), 200); /* no alternatives asked */
    CHECK_EQ(cJSON_GetArraySize(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(
                 cJSON_GetArrayItem(cJSON_GetObjectItem(r.json, "choices"), 0), "logprobs"), "content"), 0), "top_logprobs")),
             0);
    resp_deinit(&r);
    static const char *const bad_lp[][2] = {
        {"\"logprobs\":true,\"stream\":true", "'logprobs' with 'stream'"},
        {"\"top_logprobs\":2", "needs 'logprobs': true"},
        {"\"logprobs\":true,\"top_logprobs\":-1", "'top_logprobs' is an integer"},
        {"\"logprobs\":1", "'logprobs' is true or false"},
        {"\"logprobs\":true,\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{}}}]",
         "'logprobs' with 'tools'"}};
    for (size_t i = 0; i < sizeof bad_lp / sizeof *bad_lp; i++) {
        char req[512];
        snprintf(req, sizeof req, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],%s}", bad_lp[i][0]);
        CHECK_EQ(v1("/v1/chat/completions", req, &r), 400);
        CHECK_CONTAINS(r.body.buf, bad_lp[i][1]);
        resp_deinit(&r);
    }
    resp f, b64;
    CHECK_EQ(v1("/v1/embeddings", "{\"input\":[\"a cat\",\"a dog\"]}", &f), 200);
    CHECK_EQ(v1("/v1/embeddings", "{\"input\":[\"a cat\"],\"encoding_format\":\"base64\"}", &b64), 200);
    const cJSON *vec = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(f.json, "data"), 0), "embedding");
    const char *enc = cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(b64.json, "data"), 0), "embedding"));
    CHECK_EQ(cJSON_GetArraySize(cJSON_GetObjectItem(f.json, "data")), 2);
    CHECK(enc && strlen(enc) == (size_t)(cJSON_GetArraySize(vec) * 4 + 2) / 3 * 4);
    resp_deinit(&f);
    resp_deinit(&b64);
    /* Unsupported fields are refused by name; another model is not found. */
    CHECK_EQ(v1("/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"logit_bias\":{\"1\":2}}", &r), 400);
    CHECK_CONTAINS(r.body.buf, "'logit_bias' is not supported");
    resp_deinit(&r);
    CHECK_EQ(v1("/v1/chat/completions", "{\"model\":\"gpt-9\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", &r), 404);
    resp_deinit(&r);
    CHECK_EQ(v1("/v1/chat/completions", "{\"messages\":[{\"role\":\"robot\",\"content\":\"x\"}]}", &r), 400);
    resp_deinit(&r);
    CHECK_EQ(v1("/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"n\":2}", &r), 400);
    resp_deinit(&r);
    CHECK_EQ(call_port(srv_port(g_model), "GET", "/metrics", ADMIN, NULL, &r), 200);
    CHECK(!strstr(r.body.buf, "tailor_llm_tokens_total 0\n"));
    resp_deinit(&r);
}

/* The agent's remote backend against tailor serve's /v1 (the same code
 * that talks to vLLM or OpenAI): streamed answers, tool calls parsed and
 * valid against their schema, structured output, embeddings. */
static bool collect(void *ud, const char *t, size_t n) {
    sb_append(ud, t, n);
    return true;
}

static void test_remote_backend(void) {
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1", srv_port(g_model));
    llm_remote_params rp = llm_remote_default_params();
    rp.url = url;
    rp.model = "stories";
    rp.api_key = USER1;
    rp.max_tokens = 16;
    rp.sampling.seed = 4;
    llm_backend *b;
    tailor_error e = {0};
    CHECK_EQ(llm_remote_backend_new(&rp, &b, &e), 0);
    llm_msg msgs[] = {{.role = "user", .content = "Once upon a time"}};
    llm_reply rep;
    sb streamed;
    sb_init(&streamed);
    CHECK_EQ(b->ops->complete(b, msgs, 1, NULL, 0, LLM_TOOLS_NONE, collect, &streamed, &rep, &e), 0);
    CHECK(rep.text && *rep.text);
    CHECK_STR(sb_str(&streamed), rep.text);
    llm_reply_deinit(&rep);
    sb_deinit(&streamed);
    const char *schema = "{\"type\":\"object\",\"properties\":{\"genre\":{\"enum\":[\"Comedy\",\"Drama\"]},"
                         "\"k\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":9}},\"required\":[\"genre\",\"k\"]}";
    llm_tool_def tools[] = {{"recommend", "items for the person", schema}};
    b->ops->free(b);
    rp.max_tokens = 400; /* a call cut short by the limit is refused, not read */
    CHECK_EQ(llm_remote_backend_new(&rp, &b, &e), 0);
    for (int i = 0; i < 3; i++) {
        int rc = b->ops->complete(b, msgs, 1, tools, 1, LLM_TOOLS_REQUIRED, NULL, NULL, &rep, &e);
        if (rc) fprintf(stderr, "remote tool call: %s\n", e.msg);
        CHECK_EQ(rc, 0);
        CHECK(rep.n_calls >= 1);
        for (int c = 0; c < rep.n_calls; c++) {
            CHECK_STR(rep.calls[c].name, "recommend");
            CHECK_EQ(llm_schema_validate(schema, rep.calls[c].arguments, &e), 0);
        }
        llm_reply_deinit(&rep);
    }
    char *json = NULL;
    CHECK_EQ(b->ops->complete_json(b, msgs, 1, schema, NULL, NULL, &json, &e), 0);
    CHECK(json && llm_schema_validate(schema, json, &e) == 0);
    free(json);
    /* Chat logprobs through tailor's own endpoint. */
    char *said = NULL;
    llm_token_logprobs *lp = NULL;
    int n_lp = 0;
    CHECK_EQ(b->ops->chat_logprobs(b, msgs, 1, 2, &said, &lp, &n_lp, &e), 0);
    CHECK(said && n_lp >= 1);
    sb joined;
    sb_init(&joined);
    for (int i = 0; i < n_lp; i++) {
        sb_puts(&joined, lp[i].text);
        CHECK(lp[i].n_top == 2 && lp[i].top[0].logprob >= lp[i].top[1].logprob);
    }
    CHECK_STR(sb_str(&joined), said ? said : "");
    sb_deinit(&joined);
    free(said);
    llm_token_logprobs_free(lp, n_lp);
    float *v = NULL;
    int32_t dim = 0;
    CHECK_EQ(b->ops->embed(b, "a cat", 5, &v, &dim, &e), 0);
    CHECK(dim > 0);
    free(v);
    b->ops->free(b);
    /* A wrong key: a clear error naming the URL and the status, no retry loop. */
    rp.api_key = "tlr_wrong";
    CHECK_EQ(llm_remote_backend_new(&rp, &b, &e), 0);
    CHECK(b->ops->complete(b, msgs, 1, NULL, 0, LLM_TOOLS_NONE, NULL, NULL, &rep, &e) != 0);
    CHECK_CONTAINS(e.msg, url);
    CHECK_CONTAINS(e.msg, "401");
    b->ops->free(b);
}

/* A stop with a request in flight: the request finishes. */
typedef struct slow_call {
    int port;
    resp r;
} slow_call;

static void *slow_completion(void *arg) {
    slow_call *c = arg;
    call_port(c->port, "POST", "/v1/completions", ADMIN, "{\"prompt\":\"Once\",\"max_tokens\":400,\"seed\":2}", &c->r);
    return NULL;
}

static void test_graceful_stop(void) {
    slow_call c = {.port = srv_port(g_model)};
    pthread_t t;
    pthread_create(&t, NULL, slow_completion, &c);
    usleep(100 * 1000);
    srv_free(g_model);
    g_model = NULL;
    pthread_join(t, NULL);
    CHECK_EQ(c.r.status, 200);
    CHECK(cJSON_GetObjectItem(cJSON_GetObjectItem(c.r.json, "usage"), "completion_tokens") != NULL);
    resp_deinit(&c.r);
}

/* ---- kill -9 ---------------------------------------------------------------------------- */

static void test_kill9(void) {
    const char *bin = getenv("TAILOR_BIN");
    if (!bin) {
        fprintf(stderr, "FATAL: TAILOR_BIN is not set (ctest sets it)\n");
        CHECK(bin != NULL);
        return;
    }
    char *db = path_join(g_dir, "k9.db");
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", g_db, db);
    CHECK_EQ(system(cmd), 0);
    int64_t acked[4000];
    int n_acked = 0, seq = 0;
    for (int round = 0; round < 2; round++) {
        int fd[2];
        CHECK_EQ(pipe(fd), 0);
        pid_t pid = fork();
        if (!pid) {
            dup2(fd[1], 1);
            close(fd[0]);
            execl(bin, bin, "-q", "--db", db, "serve", "--port", "0", "--threads", "2", (char *)NULL);
            _exit(127);
        }
        close(fd[1]);
        char line[512] = {0};
        FILE *out = fdopen(fd[0], "r");
        int port = 0;
        if (fgets(line, sizeof line, out)) {
            const char *p = strstr(line, "127.0.0.1:");
            if (p) port = atoi(p + 10);
        }
        CHECK(port > 0);
        /* Post events one by one with client ids, some retried; remember
         * each 201; the kill comes at a random moment. */
        uint64_t t0 = timer_now_ns();
        while (port && timer_seconds_since(t0) < 1.5 && n_acked < 4000) {
            char body[256];
            snprintf(body, sizeof body, "{\"user\":\"k9\",\"item\":\"1\",\"ts\":%d,\"id\":\"e%d\"}", seq, seq);
            resp r;
            long st = call_port(port, "POST", "/api/events", ADMIN, body, &r);
            if (st == 201 && cJSON_GetObjectItem(r.json, "stored")->valueint == 1) acked[n_acked++] = seq;
            resp_deinit(&r);
            if (seq % 7 == 3) {
                call_port(port, "POST", "/api/events", ADMIN, body, &r); /* a retry: never stored twice */
                resp_deinit(&r);
            }
            seq++;
        }
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        fclose(out);
    }
    store *s;
    tailor_error e = {0};
    CHECK_EQ(store_open(db, store_default_params(), &s, &e), 0);
    char *ic = query_text(s, "PRAGMA integrity_check");
    CHECK_STR(ic, "ok");
    free(ic);
    int64_t uid = query_int(s, "SELECT id FROM users WHERE ext_id = 'k9'");
    char q[256];
    snprintf(q, sizeof q, "SELECT count(*) FROM events WHERE user_id = %lld", (long long)uid);
    int64_t stored = query_int(s, q);
    snprintf(q, sizeof q, "SELECT count(DISTINCT ts) FROM events WHERE user_id = %lld", (long long)uid);
    CHECK_EQ(query_int(s, q), stored); /* none twice */
    int missing = 0;
    for (int i = 0; i < n_acked; i++) {
        snprintf(q, sizeof q, "SELECT count(*) FROM events WHERE user_id = %lld AND ts = %lld", (long long)uid,
                 (long long)acked[i]);
        if (query_int(s, q) != 1) missing++;
    }
    CHECK_EQ(missing, 0);
    CHECK(n_acked > 50);
    printf("  kill -9: %d events acknowledged over two runs, %lld stored, %d missing, integrity ok\n", n_acked,
           (long long)stored, missing);
    store_close(s);
    free(db);
}

/* ---- load ------------------------------------------------------------------------------------ */

typedef struct load_client {
    int id;
    double seconds;
    int requests, errors, limited, acked;
    char first_error[512];
} load_client;

static void *load_main(void *arg) {
    load_client *c = arg;
    uint64_t t0 = timer_now_ns();
    char session[32] = "";
    resp r;
    if (call("POST", "/api/sessions", USER1, "{}", &r) == 201)
        snprintf(session, sizeof session, "%s", cJSON_GetStringValue(cJSON_GetObjectItem(r.json, "session")));
    resp_deinit(&r);
    for (int i = 0; timer_seconds_since(t0) < c->seconds; i++) {
        char path[256], body[256];
        long st;
        bool consistent = true;
        switch ((c->id + i) % 6) {
        case 0:
            st = call("GET", "/api/users/1/recommendations?k=5", USER1, NULL, &r);
            consistent = st != 200 || (cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "items")) == 5 &&
                                       cJSON_GetStringValue(cJSON_GetObjectItem(r.json, "model")));
            break;
        case 1:
            snprintf(body, sizeof body, "{\"events\":[{\"item\":\"1\",\"id\":\"l%d-%d\"},{\"item\":\"2\"}]}", c->id, i);
            st = call("POST", "/api/events", USER1, body, &r);
            if (st == 201) c->acked++;
            break;
        case 2:
            snprintf(path, sizeof path, "/api/sessions/%s/messages", session);
            st = call("POST", path, USER1, "{\"text\":\"two dramas\"}", &r);
            consistent = st != 200 || cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "items")) == 2;
            break;
        case 3:
            st = call("POST", c->id % 2 ? "/api/models/pop/activate" : "/api/models/knn/activate", ADMIN, NULL, &r);
            break;
        case 4:
            st = call("GET", "/api/items?q=star%20wars&k=5", USER2, NULL, &r);
            break;
        default:
            st = call("GET", "/api/models/knn", SLOW, NULL, &r); /* rate-limited: 429s expected */
            if (st == 429) c->limited++;
            break;
        }
        c->requests++;
        if ((st != 429 && (st < 200 || st >= 300)) || !consistent) {
            if (!c->errors++) snprintf(c->first_error, sizeof c->first_error, "%ld %s", st, sb_str(&r.body));
        }
        resp_deinit(&r);
    }
    return NULL;
}

static void test_load(void) {
    const char *env = getenv("TAILOR_LOAD_SECONDS");
    double seconds = env ? atof(env) : 20;
    load_client c[8];
    pthread_t t[8];
    for (int i = 0; i < 8; i++) {
        c[i] = (load_client){.id = i, .seconds = seconds};
        pthread_create(&t[i], NULL, load_main, &c[i]);
    }
    int req = 0, errors = 0, limited = 0;
    for (int i = 0; i < 8; i++) {
        pthread_join(t[i], NULL);
        req += c[i].requests, errors += c[i].errors, limited += c[i].limited;
        if (c[i].errors) fprintf(stderr, "client %d: %d errors, first: %s\n", i, c[i].errors, c[i].first_error);
    }
    printf("  load: 8 clients, %.0f s, %d requests (%.0f/s), %d rate-limited, %d errors\n", seconds, req, req / seconds,
           limited, errors);
    CHECK_EQ(errors, 0);
    CHECK(limited > 0);
    CHECK(req > 100);
    resp r;
    CHECK_EQ(call("GET", "/healthz", NULL, NULL, &r), 200);
    resp_deinit(&r);
}

int main(int argc, char **argv) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    signal(SIGPIPE, SIG_IGN);
    log_set_level(LOG_LEVEL_ERROR);
    g_dir = test_tmpdir();
    setup();
    if (argc > 1 && !strcmp(argv[1], "load")) {
        RUN(test_load);
    } else {
        RUN(test_keys_walk);
        RUN(test_bad_requests);
        RUN(test_slow_client);
        RUN(test_events);
        RUN(test_recommendations);
        RUN(test_sessions);
        RUN(test_rate_limit);
        RUN(test_openapi);
        start_model_server();
        RUN(test_v1);
        RUN(test_remote_backend);
        RUN(test_graceful_stop);
        RUN(test_kill9);
    }
    srv_free(g_model);
    srv_free(g_srv);
    test_rmtree(g_dir);
    free(g_db);
    free(g_dir);
    curl_global_cleanup();
    return test_summary();
}
