/* api.c — the REST handlers under /api, health and the page. Each runs on
 * a worker with that worker's store and engine (except those marked on_io
 * in the route table), writes JSON into r->out and sets the status; a user
 * key acts only for its own user (srv_may_act_for). */
#include <ctype.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ingest/ingest.h"
#include "server/internal.h"

/* ---- helpers ---------------------------------------------------------------- */

const char *srv_query(const srv_req *r, const char *name) {
    const char *v = NULL;
    for (int i = 0; i < r->n_query; i++)
        if (!strcmp(r->query[2 * i], name)) v = r->query[2 * i + 1];
    return v;
}

int srv_query_all(const srv_req *r, const char *name, const char **out, int max) {
    int n = 0;
    for (int i = 0; i < r->n_query && n < max; i++)
        if (!strcmp(r->query[2 * i], name)) out[n++] = r->query[2 * i + 1];
    return n;
}

bool srv_query_int(srv_req *r, const char *name, long def, long lo, long hi, long *out) {
    const char *v = srv_query(r, name);
    int64_t x = def;
    if (v && (!parse_i64(v, strlen(v), &x) || x < lo || x > hi)) {
        srv_error(r, 400, "invalid_parameter", "query parameter '%s' takes an integer from %ld to %ld", name, lo, hi);
        return false;
    }
    *out = (long)x;
    return true;
}

static bool query_bool(const srv_req *r, const char *name) {
    const char *v = srv_query(r, name);
    return v && (!strcmp(v, "") || !strcmp(v, "1") || !strcmp(v, "true") || !strcmp(v, "yes"));
}

void srv_error(srv_req *r, int status, const char *code, const char *fmt, ...) {
    sb m;
    sb_init(&m);
    va_list ap;
    va_start(ap, fmt);
    sb_vprintf(&m, fmt, ap);
    va_end(ap);
    sb_clear(&r->out);
    sb_printf(&r->out, "{\"error\":{\"code\":\"%s\",\"message\":", code);
    sb_json_str(&r->out, m.buf ? m.buf : "", m.len);
    sb_puts(&r->out, "}}");
    sb_deinit(&m);
    r->status = status;
    r->ctype = "application/json";
}

void srv_fail(srv_req *r, const tailor_error *err) {
    static const struct {
        int code, status;
        const char *name;
    } MAP[] = {{TAILOR_ENOTFOUND, 404, "not_found"},     {TAILOR_EINVAL, 400, "invalid_request"},
               {TAILOR_EDATA, 422, "invalid_data"},      {TAILOR_EEXISTS, 409, "conflict"},
               {TAILOR_EUNSUPPORTED, 400, "unsupported"}, {TAILOR_ENETWORK, 502, "upstream_unavailable"},
               {TAILOR_EDB, 503, "store_busy"}};
    for (size_t i = 0; i < sizeof MAP / sizeof MAP[0]; i++)
        if (MAP[i].code == err->code) {
            if (MAP[i].status == 503) r->retry_after = 1;
            srv_error(r, MAP[i].status, MAP[i].name, "%s", err->msg);
            return;
        }
    log_error("%s %s: %s", r->method, r->path, err->msg);
    srv_error(r, 500, "internal", "%s", err->msg[0] ? err->msg : "internal error");
}

cJSON *srv_body_json(srv_req *r, bool any) {
    if (!r->body_len) {
        srv_error(r, 400, "invalid_json", "the request needs a JSON body");
        return NULL;
    }
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(r->body, r->body_len, &end, false);
    if (!j) {
        size_t at = end && end >= r->body ? (size_t)(end - r->body) : 0;
        srv_error(r, 400, "invalid_json", "the body is not valid JSON (at byte %zu)", at);
        return NULL;
    }
    while (end && (size_t)(end - r->body) < r->body_len && (*end == ' ' || *end == '\n' || *end == '\r' || *end == '\t'))
        end++;
    if (end && (size_t)(end - r->body) < r->body_len) {
        srv_error(r, 400, "invalid_json", "the body has text after its JSON value (at byte %zu)",
                  (size_t)(end - r->body));
        cJSON_Delete(j);
        return NULL;
    }
    if (!any && !cJSON_IsObject(j)) {
        srv_error(r, 400, "invalid_json", "the body must be a JSON object");
        cJSON_Delete(j);
        return NULL;
    }
    return j;
}

bool srv_may_act_for(srv_req *r, const char *user) {
    if (r->admin || (r->user && user && !strcmp(r->user, user))) return true;
    srv_error(r, 403, "forbidden", "this key acts for user '%s' only", r->user ? r->user : "?");
    return false;
}

void srv_json(srv_req *r, int status) {
    r->status = status;
    r->ctype = "application/json";
}

static void put_str(sb *o, const char *key, const char *v) {
    sb_printf(o, "\"%s\":", key);
    if (v) sb_json_str(o, v, strlen(v));
    else sb_puts(o, "null");
}

/* The string of a JSON field given as a string or an integer (ids often
 * come as numbers); NULL when absent or of another type. */
static const char *id_of(const cJSON *v, char *buf, size_t n) {
    if (cJSON_IsString(v)) return v->valuestring;
    if (cJSON_IsNumber(v) && v->valuedouble == floor(v->valuedouble) && fabs(v->valuedouble) < 1e15) {
        snprintf(buf, n, "%.0f", v->valuedouble);
        return buf;
    }
    return NULL;
}

/* Filters from query parameters (filter=KEY=V) or a JSON array; false
 * after writing a 400. */
static bool conds_check(srv_req *r, pz_cond *conds, int n) {
    sb known;
    sb_init(&known);
    for (int i = 0; i < n; i++)
        if (!pz_attribute_known(r->w->e, conds[i].key, &known)) {
            srv_error(r, 400, "invalid_filter", "no item has an attribute '%s' (%s%s)", conds[i].key,
                      known.len ? "attributes: " : "the catalogue has no attributes", sb_str(&known));
            sb_deinit(&known);
            return false;
        }
    sb_deinit(&known);
    return true;
}

static bool conds_from_query(srv_req *r, pz_cond *conds, int *n) {
    const char *f[PZ_MAX_CONDS + 1];
    int k = srv_query_all(r, "filter", f, PZ_MAX_CONDS + 1);
    if (k > PZ_MAX_CONDS) {
        srv_error(r, 400, "invalid_filter", "at most %d filters", PZ_MAX_CONDS);
        return false;
    }
    for (int i = 0; i < k; i++)
        if (!pz_cond_parse(f[i], &conds[i])) {
            srv_error(r, 400, "invalid_filter", "filter '%s' is not KEY=VALUE, KEY!=VALUE, KEY>=N or KEY<=N", f[i]);
            return false;
        }
    *n = k;
    return conds_check(r, conds, k);
}

static bool conds_from_json(srv_req *r, const cJSON *arr, pz_cond *conds, int *n) {
    *n = 0;
    if (!arr) return true;
    if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) > PZ_MAX_CONDS) {
        srv_error(r, 400, "invalid_filter", "'filters' is an array of at most %d strings", PZ_MAX_CONDS);
        return false;
    }
    const cJSON *f;
    cJSON_ArrayForEach(f, arr) {
        if (!cJSON_IsString(f) || !pz_cond_parse(f->valuestring, &conds[*n])) {
            srv_error(r, 400, "invalid_filter", "filters[%d] is not \"KEY=VALUE\", KEY!=VALUE, KEY>=N or KEY<=N", *n);
            return false;
        }
        (*n)++;
    }
    return conds_check(r, conds, *n);
}

/* ---- health, description, page ------------------------------------------------- */

void api_healthz(srv_req *r) {
    sb_puts(&r->out, "{\"status\":\"ok\"}");
    srv_json(r, 200);
}

void api_readyz(srv_req *r) {
    tailor_store_counts c;
    tailor_error err = {0};
    if (store_counts(r->w->s, &c, &err)) {
        r->retry_after = 1;
        srv_error(r, 503, "not_ready", "%s", err.msg);
        return;
    }
    store_model m;
    bool active = !store_model_active(r->w->s, &m, NULL);
    sb_printf(&r->out, "{\"ready\":true,\"items\":%zu,\"users\":%lld,\"events\":%lld,\"models\":%lld,",
              pz_items(r->w->e), (long long)c.users, (long long)c.events, (long long)c.models);
    put_str(&r->out, "active_model", active ? m.name : NULL);
    sb_putc(&r->out, '}');
    if (active) store_model_deinit(&m);
    srv_json(r, 200);
}

void api_metrics(srv_req *r) { srv_metrics(r); }

void api_openapi(srv_req *r) {
    srv_openapi(&r->out);
    srv_json(r, 200);
}

void api_web(srv_req *r) {
    const char *name = r->n_params ? r->params[0] : "index.html";
    size_t n;
    const char *ctype;
    const char *data = srv_web_enabled(r->srv) ? srv_web_file(name, &n, &ctype) : NULL;
    if (!data) {
        srv_error(r, 404, "not_found", srv_web_enabled(r->srv) ? "no such file" : "the page is off (--no-web)");
        return;
    }
    sb_append(&r->out, data, n);
    r->ctype = ctype;
    r->status = 200;
}

/* ---- items ------------------------------------------------------------------------ */

static void item_json(sb *o, pz_engine *e, const pz_item_info *it, bool full) {
    sb_putc(o, '{');
    put_str(o, "item", it->id);
    sb_putc(o, ',');
    put_str(o, "title", it->title);
    if (full) {
        sb_putc(o, ',');
        put_str(o, "text", it->text);
        char *attrs = it->attributes ? json_print(it->attributes) : NULL;
        sb_printf(o, ",\"attributes\":%s,\"popularity\":%u", attrs ? attrs : "{}", pz_popularity(e, it->id));
        free(attrs);
    }
    sb_putc(o, '}');
}

void api_items_search(srv_req *r) {
    pz_engine *e = r->w->e;
    long k, offset;
    pz_cond conds[PZ_MAX_CONDS];
    int nc;
    if (!srv_query_int(r, "k", 20, 1, 1000, &k) || !srv_query_int(r, "offset", 0, 0, 1L << 40, &offset) ||
        !conds_from_query(r, conds, &nc))
        return;
    const char *q = srv_query(r, "q");
    sb *o = &r->out;
    if (!q || !*q) {
        size_t n = pz_items(e), shown = 0, passed = 0;
        sb_puts(o, "{\"items\":[");
        for (size_t i = 0; i < n; i++) {
            const pz_item_info *it = pz_item_at(e, i);
            if (!pz_item_passes(it, conds, nc)) continue;
            if (passed++ < (size_t)offset || shown >= (size_t)k) continue;
            if (shown++) sb_putc(o, ',');
            item_json(o, e, it, false);
        }
        sb_printf(o, "],\"total\":%zu}", passed);
        srv_json(r, 200);
        return;
    }
    store_hit *hits = NULL;
    size_t n = 0;
    tailor_error err = {0};
    if (store_search(r->w->s, q, &hits, &n, &err)) {
        srv_fail(r, &err);
        return;
    }
    sb_puts(o, "{\"query\":");
    sb_json_str(o, q, strlen(q));
    sb_puts(o, ",\"items\":[");
    long shown = 0;
    for (size_t i = 0; i < n && shown < k; i++) {
        const pz_item_info *it = pz_item_by_row(e, hits[i].id);
        if (!it || !pz_item_passes(it, conds, nc)) continue;
        if (shown++) sb_putc(o, ',');
        sb_printf(o, "{\"rank\":%ld,", shown);
        put_str(o, "item", it->id);
        sb_putc(o, ',');
        put_str(o, "title", it->title);
        sb_printf(o, ",\"score\":%.4f}", hits[i].score);
    }
    sb_printf(o, "],\"matches\":%zu}", n);
    free(hits);
    srv_json(r, 200);
}

void api_item_get(srv_req *r) {
    const pz_item_info *it = pz_item(r->w->e, r->params[0]);
    if (!it) {
        srv_error(r, 404, "not_found", "unknown item '%s'", r->params[0]);
        return;
    }
    item_json(&r->out, r->w->e, it, true);
    srv_json(r, 200);
}

void api_item_similar(srv_req *r) {
    long k;
    pz_cond conds[PZ_MAX_CONDS];
    int nc;
    if (!srv_query_int(r, "k", 10, 1, 100, &k) || !conds_from_query(r, conds, &nc)) return;
    pz_result res;
    sb note;
    sb_init(&note);
    tailor_error err = {0};
    if (pz_similar(r->w->e, srv_query(r, "model"), r->params[0], (int)k, conds, nc, &res, &note, &err)) {
        sb_deinit(&note);
        srv_fail(r, &err);
        return;
    }
    sb *o = &r->out;
    sb_putc(o, '{');
    put_str(o, "item", r->params[0]);
    if (note.len) {
        sb_putc(o, ',');
        put_str(o, "note", sb_str(&note));
    }
    sb_putc(o, ',');
    pz_result_json(&res, false, o);
    sb_putc(o, '}');
    pz_result_deinit(&res);
    sb_deinit(&note);
    srv_json(r, 200);
}

/* ---- users --------------------------------------------------------------------------- */

void api_user_get(srv_req *r) {
    const char *user = r->params[0];
    if (!srv_may_act_for(r, user)) return;
    store_user_info u;
    tailor_error err = {0};
    if (store_user_info_get(r->w->s, user, &u, &err)) {
        srv_fail(r, &err);
        return;
    }
    sb *o = &r->out;
    sb_putc(o, '{');
    put_str(o, "user", user);
    sb_printf(o, ",\"attributes\":%s,\"events\":%lld,\"first_ts\":%lld,\"last_ts\":%lld}",
              u.attributes ? u.attributes : "{}", (long long)u.events, (long long)u.first_ts, (long long)u.last_ts);
    free(u.attributes);
    srv_json(r, 200);
}

typedef struct hist_row {
    const char *item; /* the catalogue's copy, or a copy in the context's arena */
    double value;
    int64_t ts;
} hist_row;

typedef struct hist_ctx {
    pz_engine *e;
    arena strings;
    VEC(hist_row) rows;
} hist_ctx;

static int hist_row_add(void *ctx, const char *item, double value, int64_t ts) {
    hist_ctx *h = ctx;
    const pz_item_info *it = pz_item(h->e, item);
    vec_push(&h->rows, ((hist_row){it ? it->id : arena_strdup(&h->strings, item), value, ts}));
    return 0;
}

void api_user_history(srv_req *r) {
    const char *user = r->params[0];
    long limit;
    if (!srv_may_act_for(r, user) || !srv_query_int(r, "limit", 100, 1, 10000, &limit)) return;
    hist_ctx h = {.e = r->w->e};
    arena_init(&h.strings, 0);
    tailor_error err = {0};
    int rc = store_user_history(r->w->s, user, hist_row_add, &h, &err);
    if (rc == TAILOR_ENOTFOUND) {
        srv_error(r, 404, "not_found", "unknown user '%s'", user);
    } else if (rc) {
        srv_fail(r, &err);
    } else { /* only the newest `limit` are written out */
        sb *o = &r->out;
        sb_putc(o, '{');
        put_str(o, "user", user);
        sb_printf(o, ",\"total\":%zu,\"events\":[", h.rows.len);
        size_t from = h.rows.len > (size_t)limit ? h.rows.len - (size_t)limit : 0;
        for (size_t i = from; i < h.rows.len; i++) {
            const hist_row *x = &h.rows.data[i];
            const pz_item_info *it = pz_item(h.e, x->item);
            sb_puts(o, i > from ? ",{" : "{");
            put_str(o, "item", x->item);
            sb_putc(o, ',');
            put_str(o, "title", it ? it->title : NULL);
            if (isnan(x->value)) sb_puts(o, ",\"value\":null");
            else sb_printf(o, ",\"value\":%.6g", x->value);
            sb_printf(o, ",\"ts\":%lld}", (long long)x->ts);
        }
        sb_puts(o, "]}");
        srv_json(r, 200);
    }
    vec_free(&h.rows);
    arena_deinit(&h.strings);
}

/* ---- recommendations -------------------------------------------------------------------- */

static void recommend_out(srv_req *r, pz_query *q) {
    pz_result res;
    tailor_error err = {0};
    if (pz_recommend(r->w->e, q, &res, &err)) {
        srv_fail(r, &err);
        return;
    }
    sb *o = &r->out;
    sb_putc(o, '{');
    if (q->user) {
        put_str(o, "user", q->user);
        sb_putc(o, ',');
    }
    pz_result_json(&res, q->explain, o);
    sb_putc(o, '}');
    pz_result_deinit(&res);
    srv_json(r, 200);
}

static bool novelty_ok(srv_req *r, double v) {
    if (v >= 0 && v <= 1) return true;
    srv_error(r, 400, "invalid_parameter", "novelty takes a number from 0 to 1");
    return false;
}

void api_user_recommend(srv_req *r) {
    const char *user = r->params[0];
    long k, cold;
    pz_query q = {.user = user, .model = srv_query(r, "model"), .explain = query_bool(r, "explain")};
    if (!srv_may_act_for(r, user) || !srv_query_int(r, "k", 10, 1, 100, &k) ||
        !srv_query_int(r, "cold", 0, 0, 100, &cold) || !conds_from_query(r, q.conds, &q.n_conds))
        return;
    q.k = (int)k, q.cold = (int)cold;
    const char *nv = srv_query(r, "novelty");
    if (nv && (!parse_f64(nv, strlen(nv), &q.novelty) || !novelty_ok(r, q.novelty))) {
        if (r->status != 400) srv_error(r, 400, "invalid_parameter", "novelty takes a number from 0 to 1");
        return;
    }
    const char *ex[64];
    q.n_exclude = (size_t)srv_query_all(r, "exclude", ex, 64);
    q.exclude = ex;
    recommend_out(r, &q);
}

/* An array of item ids from JSON into a malloc'd array of borrowed strings
 * (numbers are printed into bufs); false after a 400. */
static bool ids_from_json(srv_req *r, const cJSON *arr, const char *field, const char ***out, size_t *n, char (**bufs)[32]) {
    *out = NULL, *n = 0, *bufs = NULL;
    if (!arr) return true;
    int len = cJSON_GetArraySize(arr);
    if (!cJSON_IsArray(arr) || len > 10000) {
        srv_error(r, 400, "invalid_request", "'%s' is an array of at most 10000 item ids", field);
        return false;
    }
    *out = xcalloc((size_t)len + 1, sizeof **out);
    *bufs = xcalloc((size_t)len + 1, sizeof **bufs);
    const cJSON *x;
    cJSON_ArrayForEach(x, arr) {
        const char *id = id_of(x, (*bufs)[*n], sizeof **bufs);
        if (!id) {
            srv_error(r, 400, "invalid_request", "%s[%zu] is not an item id (a string or an integer)", field, *n);
            return false;
        }
        (*out)[(*n)++] = id;
    }
    return true;
}

void api_recommend(srv_req *r) {
    cJSON *j = srv_body_json(r, false);
    if (!j) return;
    pz_query q = {.k = 10};
    const char **hist = NULL, **ex = NULL;
    char(*hb)[32] = NULL, (*eb)[32] = NULL;
    const cJSON *v;
    bool ok = ids_from_json(r, cJSON_GetObjectItemCaseSensitive(j, "history"), "history", &hist, &q.n_history, &hb) &&
              ids_from_json(r, cJSON_GetObjectItemCaseSensitive(j, "exclude"), "exclude", &ex, &q.n_exclude, &eb) &&
              conds_from_json(r, cJSON_GetObjectItemCaseSensitive(j, "filters"), q.conds, &q.n_conds);
    if (ok && (v = cJSON_GetObjectItemCaseSensitive(j, "k"))) {
        ok = cJSON_IsNumber(v) && v->valuedouble >= 1 && v->valuedouble <= 100 && v->valuedouble == floor(v->valuedouble);
        if (!ok) srv_error(r, 400, "invalid_request", "'k' takes an integer from 1 to 100");
        else q.k = v->valueint;
    }
    if (ok && (v = cJSON_GetObjectItemCaseSensitive(j, "model"))) {
        ok = cJSON_IsString(v);
        if (!ok) srv_error(r, 400, "invalid_request", "'model' is a model's name");
        else q.model = v->valuestring;
    }
    if (ok && (v = cJSON_GetObjectItemCaseSensitive(j, "explain"))) {
        ok = cJSON_IsBool(v);
        if (!ok) srv_error(r, 400, "invalid_request", "'explain' is true or false");
        else q.explain = cJSON_IsTrue(v);
    }
    if (ok && (v = cJSON_GetObjectItemCaseSensitive(j, "cold"))) {
        ok = cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble <= 100 && v->valuedouble == floor(v->valuedouble);
        if (!ok) srv_error(r, 400, "invalid_request", "'cold' takes an integer from 0 to 100");
        else q.cold = v->valueint;
    }
    if (ok && (v = cJSON_GetObjectItemCaseSensitive(j, "novelty"))) {
        ok = cJSON_IsNumber(v) && novelty_ok(r, v->valuedouble);
        if (!ok && r->status != 400) srv_error(r, 400, "invalid_parameter", "novelty takes a number from 0 to 1");
        if (ok) q.novelty = v->valuedouble;
    }
    if (ok) {
        q.history = hist;
        q.exclude = ex;
        recommend_out(r, &q);
    }
    free(hist);
    free(ex);
    free(hb);
    free(eb);
    cJSON_Delete(j);
}

/* ---- events --------------------------------------------------------------------------------- */

typedef struct ev_in {
    ing_event_in e;
    char ubuf[32], ibuf[32]; /* ids given as numbers, printed */
} ev_in;

/* Reads events[i]; false after a 400/403. */
static bool event_read(srv_req *r, const cJSON *o, int i, ev_in *ev) {
    static const char *const KNOWN[] = {"user", "item", "kind", "value", "ts", "id"};
    if (!cJSON_IsObject(o)) {
        srv_error(r, 400, "invalid_event", "events[%d] is not an object", i);
        return false;
    }
    const cJSON *f;
    cJSON_ArrayForEach(f, o) {
        bool known = false;
        for (size_t k = 0; k < sizeof KNOWN / sizeof KNOWN[0]; k++) known |= !strcmp(f->string, KNOWN[k]);
        if (!known) {
            srv_error(r, 400, "invalid_event", "events[%d]: unknown field '%s' (fields: user, item, kind, value, ts, id)",
                      i, f->string);
            return false;
        }
    }
    memset(ev, 0, sizeof *ev);
    ing_event_in *x = &ev->e;
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(o, "user");
    x->user = u ? id_of(u, ev->ubuf, sizeof ev->ubuf) : r->user;
    x->item = id_of(cJSON_GetObjectItemCaseSensitive(o, "item"), ev->ibuf, sizeof ev->ibuf);
    if (!x->user || !*x->user) {
        srv_error(r, 400, "invalid_event", "events[%d]: 'user' is missing or not an id", i);
        return false;
    }
    if (!x->item || !*x->item) {
        srv_error(r, 400, "invalid_event", "events[%d]: 'item' is missing or not an id", i);
        return false;
    }
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "kind");
    if (v && (!cJSON_IsString(v) || !*v->valuestring || strlen(v->valuestring) > 64)) {
        srv_error(r, 400, "invalid_event", "events[%d]: 'kind' is a name (view, click, rating, purchase, ...)", i);
        return false;
    }
    x->kind = v ? v->valuestring : NULL;
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "value"))) {
        if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) {
            srv_error(r, 400, "invalid_event", "events[%d]: 'value' is a number", i);
            return false;
        }
        x->value = v->valuedouble, x->has_value = true;
    }
    x->ts = (int64_t)time(NULL);
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "ts"))) {
        if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < 0 || v->valuedouble > 1e13) {
            srv_error(r, 400, "invalid_event", "events[%d]: 'ts' is unix seconds (an integer)", i);
            return false;
        }
        x->ts = (int64_t)v->valuedouble;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "id"))) {
        if (!cJSON_IsString(v) || !*v->valuestring || strlen(v->valuestring) > 200) {
            srv_error(r, 400, "invalid_event", "events[%d]: 'id' is a client event id (a string of 1-200 bytes)", i);
            return false;
        }
        x->client_id = v->valuestring;
    }
    return srv_may_act_for(r, x->user);
}

void api_events_post(srv_req *r) {
    cJSON *j = srv_body_json(r, true);
    if (!j) return;
    const cJSON *list = cJSON_IsArray(j) ? j : cJSON_GetObjectItemCaseSensitive(j, "events");
    bool single = !list && cJSON_IsObject(j);
    int n = single ? 1 : cJSON_GetArraySize(list);
    if (!single && (!cJSON_IsArray(list) || n == 0 || n > 100000)) {
        srv_error(r, 400, "invalid_request", "the body is an event, an array of events or {\"events\": [...]} (1-100000)");
        cJSON_Delete(j);
        return;
    }
    ev_in *evs = xcalloc((size_t)n, sizeof *evs);
    bool ok = true;
    int i = 0;
    if (single) ok = event_read(r, j, 0, &evs[0]);
    else {
        const cJSON *o;
        cJSON_ArrayForEach(o, list) {
            if (!(ok = event_read(r, o, i, &evs[i]))) break;
            i++;
        }
    }
    ing_event_in *list_in = ok ? xmalloc((size_t)n * sizeof *list_in) : NULL;
    for (i = 0; ok && i < n; i++) list_in[i] = evs[i].e;
    ing_batch_result res;
    tailor_error err = {0};
    int rc = ok ? ing_event_batch(r->w->s, list_in, (size_t)n, &res, &err) : 0;
    if (ok && rc == TAILOR_ENOTFOUND) srv_error(r, 422, "unknown_item", "%s", err.msg);
    else if (ok && rc) srv_fail(r, &err);
    else if (ok) {
        sb_printf(&r->out, "{\"stored\":%lld,\"duplicates\":%lld,\"new_users\":%lld}", (long long)res.stored,
                  (long long)res.duplicates, (long long)res.new_users);
        srv_json(r, 201);
    }
    free(list_in);
    free(evs);
    cJSON_Delete(j);
}

/* ---- models -------------------------------------------------------------------------------------- */

void api_models_list(srv_req *r) {
    store_model *ms;
    size_t n;
    tailor_error err = {0};
    if (store_models_list(r->w->s, &ms, &n, &err)) {
        srv_fail(r, &err);
        return;
    }
    sb_puts(&r->out, "{\"models\":[");
    for (size_t i = 0; i < n; i++) {
        if (i) sb_putc(&r->out, ',');
        pz_model_json(r->w->s, &ms[i], &r->out);
    }
    sb_puts(&r->out, "]}");
    store_models_free(ms, n);
    srv_json(r, 200);
}

void api_model_get(srv_req *r) {
    store_model m;
    tailor_error err = {0};
    if (store_model_get(r->w->s, r->params[0], &m, &err)) {
        srv_fail(r, &err);
        return;
    }
    pz_model_json(r->w->s, &m, &r->out);
    store_model_deinit(&m);
    srv_json(r, 200);
}

void api_model_activate(srv_req *r) {
    tailor_error err = {0};
    /* Load it here first: a model whose file is missing or bad is refused
     * before any worker would serve it. */
    store_model m;
    int rc = store_model_get(r->w->s, r->params[0], &m, &err);
    if (!rc) {
        store_model_deinit(&m);
        rc = pz_model(r->w->e, r->params[0], NULL, NULL, &err);
    }
    if (!rc) rc = store_model_activate(r->w->s, r->params[0], &err);
    if (rc) {
        srv_fail(r, &err);
        return;
    }
    sb_puts(&r->out, "{");
    put_str(&r->out, "active", r->params[0]);
    sb_putc(&r->out, '}');
    srv_json(r, 200);
}

/* ---- conversations ------------------------------------------------------------------------------- */

/* The session's owner (malloc'd external id, NULL for anonymous); false
 * after writing a 404/403. */
static bool session_owner(srv_req *r, int64_t *id, char **owner) {
    *owner = NULL;
    if (!parse_i64(r->params[0], strlen(r->params[0]), id) || *id <= 0) {
        srv_error(r, 404, "not_found", "no session '%s'", r->params[0]);
        return false;
    }
    int64_t urow;
    tailor_error err = {0};
    if (store_session_get(r->w->s, *id, &urow, NULL, &err)) {
        srv_fail(r, &err);
        return false;
    }
    *owner = urow ? store_user_ext(r->w->s, urow) : NULL;
    if (*owner ? srv_may_act_for(r, *owner) : r->admin) return true;
    if (!*owner) srv_error(r, 403, "forbidden", "session %lld is anonymous: an admin key reads it", (long long)*id);
    free(*owner);
    *owner = NULL;
    return false;
}

void api_session_new(srv_req *r) {
    cJSON *j = r->body_len ? srv_body_json(r, false) : cJSON_CreateObject();
    if (!j) return;
    char buf[32];
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(j, "user");
    const char *user = u ? id_of(u, buf, sizeof buf) : r->user;
    int64_t row = 0, id;
    tailor_error err = {0};
    if (u && !user) srv_error(r, 400, "invalid_request", "'user' is a user id");
    else if (!user && !r->admin) srv_error(r, 400, "invalid_request", "'user' is needed");
    else if (user && !srv_may_act_for(r, user)) {
    } else if (user && store_user_find(r->w->s, user, &row, &err)) {
        srv_error(r, 404, "not_found", "unknown user '%s' (post an event for them first)", user);
    } else if (store_session_new(r->w->s, row, &id, &err)) {
        srv_fail(r, &err);
    } else {
        sb_printf(&r->out, "{\"session\":\"%lld\",", (long long)id);
        put_str(&r->out, "user", user);
        sb_putc(&r->out, '}');
        srv_json(r, 201);
    }
    cJSON_Delete(j);
}

void api_session_get(srv_req *r) {
    int64_t id;
    char *owner;
    if (!session_owner(r, &id, &owner)) return;
    store_message *m;
    size_t n;
    tailor_error err = {0};
    if (store_messages_list(r->w->s, id, &m, &n, &err)) {
        free(owner);
        srv_fail(r, &err);
        return;
    }
    sb *o = &r->out;
    sb_printf(o, "{\"session\":\"%lld\",", (long long)id);
    put_str(o, "user", owner);
    sb_puts(o, ",\"messages\":[");
    for (size_t i = 0; i < n; i++) {
        sb_printf(o, "%s{", i ? "," : "");
        put_str(o, "role", m[i].role);
        sb_putc(o, ',');
        put_str(o, "content", m[i].content);
        if (m[i].tool_name) {
            sb_putc(o, ',');
            put_str(o, "tool", m[i].tool_name);
        }
        sb_printf(o, ",\"meta\":%s,\"created_at\":%lld}", m[i].meta ? m[i].meta : "null", (long long)m[i].created_at);
    }
    sb_puts(o, "]}");
    store_messages_free(m, n);
    free(owner);
    srv_json(r, 200);
}

static bool sse_token(void *ud, const char *text, size_t n) {
    sb e;
    sb_init(&e);
    sb_puts(&e, "event: token\ndata: {\"text\":");
    sb_json_str(&e, text, n);
    sb_puts(&e, "}\n\n");
    bool ok = srv_stream_write(ud, e.buf, e.len);
    sb_deinit(&e);
    return ok;
}

void api_session_message(srv_req *r) {
    int64_t id;
    char *owner;
    if (!session_owner(r, &id, &owner)) return;
    cJSON *j = srv_body_json(r, false);
    const cJSON *text = j ? cJSON_GetObjectItemCaseSensitive(j, "text") : NULL;
    const cJSON *stream = j ? cJSON_GetObjectItemCaseSensitive(j, "stream") : NULL;
    const cJSON *model = j ? cJSON_GetObjectItemCaseSensitive(j, "model") : NULL;
    const cJSON *memory = j ? cJSON_GetObjectItemCaseSensitive(j, "memory") : NULL;
    agent_params p = agent_default_params();
    p.user = owner;
    p.session = id;
    p.retriever = r->w->retriever;
    if (!j) {
    } else if (!cJSON_IsString(text) || !*text->valuestring || strlen(text->valuestring) > 8000) {
        srv_error(r, 400, "invalid_request", "'text' is what the person says (1-8000 bytes)");
    } else if (stream && !cJSON_IsBool(stream)) {
        srv_error(r, 400, "invalid_request", "'stream' is true or false");
    } else if (model && !cJSON_IsString(model)) {
        srv_error(r, 400, "invalid_request", "'model' is a trained model's name");
    } else if (memory && (!cJSON_IsString(memory) || !agent_memory_parse(memory->valuestring, &p.memory))) {
        srv_error(r, 400, "invalid_request", "'memory' is truncate, summarize or retrieve");
    } else {
        if (model) p.model = model->valuestring;
        bool sse = cJSON_IsTrue(stream) || query_bool(r, "stream") || strstr(r->accept, "text/event-stream");
        llm_backend *b = srv_llm(r->srv) ? srv_llm_shared(r->srv) : r->w->rules;
        agent *a;
        tailor_error err = {0};
        if (agent_new(r->w->e, b, p, &a, &err)) {
            srv_fail(r, &err);
        } else {
            srv_stream *st = sse ? srv_stream_begin(r, "text/event-stream") : NULL;
            agent_reply rep;
            if (agent_turn(a, text->valuestring, st ? sse_token : NULL, st, &rep, &err)) {
                if (st) {
                    sb e;
                    sb_init(&e);
                    sb_puts(&e, "event: error\ndata: {\"error\":{\"code\":\"turn_failed\",\"message\":");
                    sb_json_str(&e, err.msg, strlen(err.msg));
                    sb_puts(&e, "}}\n\n");
                    srv_stream_write(st, e.buf, e.len);
                    sb_deinit(&e);
                } else {
                    srv_fail(r, &err);
                }
            } else {
                sb o;
                sb_init(&o);
                agent_reply_json(&rep, &o);
                if (st) {
                    srv_stream_printf(st, "event: reply\ndata: %s\n\nevent: done\ndata: {}\n\n", sb_str(&o));
                } else {
                    sb_append(&r->out, o.buf, o.len);
                    srv_json(r, 200);
                }
                sb_deinit(&o);
                agent_reply_deinit(&rep);
            }
            if (st) srv_stream_end(st);
            agent_free(a);
        }
    }
    free(owner);
    cJSON_Delete(j);
}

/* ---- the caller, reports ------------------------------------------------------------------------ */

void api_me(srv_req *r) {
    sb_printf(&r->out, "{\"role\":\"%s\",", r->admin ? "admin" : "user");
    put_str(&r->out, "user", r->user);
    sb_putc(&r->out, '}');
    srv_json(r, 200);
}

/* Folders under root (to depth 2) that hold a report.md. */
static void reports_walk(const char *root, const char *rel, int depth, sb *o, int *n) {
    char *dir = rel[0] ? path_join(root, rel) : xstrdup(root);
    char *res = path_join(dir, "report.md");
    if (file_exists(res)) {
        sb_printf(o, "%s{\"dir\":", (*n)++ ? "," : "");
        sb_json_str(o, rel[0] ? rel : ".", strlen(rel[0] ? rel : "."));
        sb_puts(o, ",\"files\":[");
        DIR *d = opendir(dir);
        int k = 0;
        for (struct dirent *e; d && (e = readdir(d));)
            if (e->d_name[0] != '.' && (strstr(e->d_name, ".svg") || strstr(e->d_name, ".md") || strstr(e->d_name, ".json"))) {
                if (k++) sb_putc(o, ',');
                sb_json_str(o, e->d_name, strlen(e->d_name));
            }
        if (d) closedir(d);
        sb_puts(o, "]}");
    }
    free(res);
    DIR *d = depth < 2 ? opendir(dir) : NULL;
    for (struct dirent *e; d && (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        char *sub = rel[0] ? path_join(rel, e->d_name) : xstrdup(e->d_name), *full = path_join(root, sub);
        if (dir_exists(full)) reports_walk(root, sub, depth + 1, o, n);
        free(sub);
        free(full);
    }
    if (d) closedir(d);
    free(dir);
}

void api_reports(srv_req *r) {
    char *root = srv_reports_dir(r->srv);
    int n = 0;
    sb_puts(&r->out, "{\"folder\":");
    sb_json_str(&r->out, root, strlen(root));
    sb_puts(&r->out, ",\"reports\":[");
    if (dir_exists(root)) reports_walk(root, "", 0, &r->out, &n);
    sb_puts(&r->out, "]}");
    free(root);
    srv_json(r, 200);
}

/* A relative path of safe characters, without "..". */
static bool safe_rel(const char *p) {
    if (!p || !*p || p[0] == '/' || strstr(p, "..")) return false;
    for (const char *c = p; *c; c++)
        if (!(isalnum((unsigned char)*c) || strchr("._-/", *c))) return false;
    return true;
}

void api_report_file(srv_req *r) {
    const char *dir = srv_query(r, "dir"), *file = srv_query(r, "file");
    if (!safe_rel(dir) || !safe_rel(file) || strchr(file, '/')) {
        srv_error(r, 400, "invalid_parameter", "dir and file name a report's folder and one of its files (see /api/reports)");
        return;
    }
    char *root = srv_reports_dir(r->srv), *d = path_join(root, dir), *path = path_join(d, file);
    tailor_error err = {0};
    const char *ctype = strstr(file, ".svg") ? "image/svg+xml" : strstr(file, ".json") ? "application/json"
                        : strstr(file, ".md")                ? "text/markdown; charset=utf-8"
                                                             : NULL;
    if (!ctype) srv_error(r, 400, "invalid_parameter", "only .svg, .json and .md files of reports are served");
    else if (!file_exists(path) || file_read(path, &r->out, &err)) srv_error(r, 404, "not_found", "no report file %s/%s", dir, file);
    else {
        r->ctype = ctype;
        r->status = 200;
    }
    free(root);
    free(d);
    free(path);
}
