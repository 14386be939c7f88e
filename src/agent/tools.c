/* tools.c — the agent's tools: recommend, search, item_info,
 * similar_items, user_profile. Each is a name, a description, a JSON schema
 * built from the catalogue (its categorical attributes become enums, its
 * numeric ones bounds), and a handler from validated arguments to a JSON
 * result. Handlers apply the person's standing constraints and dislikes
 * in code, whatever the caller asked, and return only catalogue items. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "agent/agent.h"
#include "know/know.h"

/* ---- schemas -------------------------------------------------------------- */

/* Filter properties (KEY, not_KEY as lists of the catalogue's values;
 * KEY_min, KEY_max for numbers). The values are listed once, in $defs. */
static void schema_filters(agent *a, sb *o) {
    int n;
    const pz_attr *at = pz_attributes(agent_engine(a), &n);
    for (int i = 0; i < n; i++) {
        if (at[i].numeric) {
            bool integer = at[i].lo == floor(at[i].lo) && at[i].hi == floor(at[i].hi);
            for (int side = 0; side < 2; side++) {
                sb_puts(o, ",");
                char name[96];
                snprintf(name, sizeof name, "%s_%s", at[i].key, side ? "max" : "min");
                sb_json_str(o, name, strlen(name));
                /* No bounds: "before 2030" is a fair request. */
                sb_printf(o, ":{\"type\":\"%s\"}", integer ? "integer" : "number");
            }
            continue;
        }
        for (int neg = 0; neg < 2; neg++) {
            char name[96];
            snprintf(name, sizeof name, "%s%s", neg ? "not_" : "", at[i].key);
            sb_puts(o, ",");
            sb_json_str(o, name, strlen(name));
            sb_printf(o, ":{\"type\":\"array\",\"maxItems\":8,\"items\":{\"$ref\":\"#/$defs/%s\"}}", at[i].key);
        }
    }
}

/* "$defs": the value lists of the categorical attributes. */
static void schema_defs(agent *a, sb *o) {
    int n;
    const pz_attr *at = pz_attributes(agent_engine(a), &n);
    sb_puts(o, ",\"$defs\":{");
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (at[i].numeric) continue;
        if (k++) sb_putc(o, ',');
        sb_json_str(o, at[i].key, strlen(at[i].key));
        sb_puts(o, ":{\"enum\":[");
        for (int v = 0; v < at[i].n_values; v++) {
            if (v) sb_putc(o, ',');
            sb_json_str(o, at[i].values[v], strlen(at[i].values[v]));
        }
        sb_puts(o, "]}");
    }
    sb_putc(o, '}');
}

char *agent_tool_schema(agent *a, const char *name) {
    sb o;
    sb_init(&o);
    const char *ids = "{\"type\":\"array\",\"maxItems\":50,\"items\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":100}}";
    if (!strcmp(name, "recommend")) {
        sb_puts(&o, "{\"type\":\"object\",\"properties\":{\"k\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":50}");
        schema_filters(a, &o);
        sb_printf(&o, ",\"like\":%s,\"exclude\":%s,\"novelty\":{\"type\":\"number\",\"minimum\":0,\"maximum\":1}},"
                      "\"required\":[\"k\"],\"additionalProperties\":false",
                  ids, ids);
        schema_defs(a, &o);
        sb_putc(&o, '}');
    } else if (!strcmp(name, "search")) {
        sb_puts(&o, "{\"type\":\"object\",\"properties\":{\"query\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":100},"
                    "\"k\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":50}");
        schema_filters(a, &o);
        sb_puts(&o, "},\"required\":[\"query\"],\"additionalProperties\":false");
        schema_defs(a, &o);
        sb_putc(&o, '}');
    } else if (!strcmp(name, "item_info")) {
        sb_puts(&o, "{\"type\":\"object\",\"properties\":{\"item\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":200,"
                    "\"description\":\"an item id or title\"}},\"required\":[\"item\"],\"additionalProperties\":false}");
    } else if (!strcmp(name, "similar_items")) {
        sb_puts(&o, "{\"type\":\"object\",\"properties\":{\"item\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":200,"
                    "\"description\":\"an item id or title\"},\"k\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":50},"
                    "\"exclude\":");
        sb_puts(&o, ids);
        sb_puts(&o, "},\"required\":[\"item\"],\"additionalProperties\":false}");
    } else if (!strcmp(name, "user_profile")) {
        int n;
        const pz_attr *at = pz_attributes(agent_engine(a), &n);
        sb_puts(&o, "{\"type\":\"object\",\"properties\":{\"action\":{\"enum\":[\"show\",\"like\",\"dislike\","
                    "\"constraint\",\"forget\"]},\"item\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":200},"
                    "\"attribute\":{\"enum\":[");
        for (int i = 0; i < n; i++) {
            if (i) sb_putc(&o, ',');
            sb_json_str(&o, at[i].key, strlen(at[i].key));
        }
        if (!n) sb_puts(&o, "\"-\"");
        sb_puts(&o, "]},\"op\":{\"enum\":[\"is\",\"not\",\">=\",\"<=\"]},\"value\":{\"type\":[\"string\",\"number\"],"
                    "\"maxLength\":100}},\"required\":[\"action\"],\"additionalProperties\":false}");
    } else {
        sb_deinit(&o);
        return NULL;
    }
    return sb_take(&o);
}

/* ---- shared pieces -------------------------------------------------------- */

static const pz_item_info *resolve_item(agent *a, const char *text) { return pz_item_named(agent_engine(a), text); }

static void json_key_str(sb *o, const char *key, const char *v) {
    sb_json_str(o, key, strlen(key));
    sb_putc(o, ':');
    if (v) sb_json_str(o, v, strlen(v));
    else sb_puts(o, "null");
}

static const char *op_text(pz_op op) { return op == PZ_IS ? "=" : op == PZ_NOT ? "!=" : op == PZ_GE ? ">=" : "<="; }

static void cond_text(const pz_cond *c, char *buf, size_t n) { snprintf(buf, n, "%s%s%s", c->key, op_text(c->op), c->value); }

/* Conditions from the filter arguments (KEY, not_KEY, KEY_min, KEY_max). */
static int args_conds(agent *a, const cJSON *args, pz_cond *conds, int *n) {
    int na;
    const pz_attr *at = pz_attributes(agent_engine(a), &na);
    for (int i = 0; i < na; i++) {
        char name[96];
        for (int side = 0; side < 2; side++) {
            if (at[i].numeric) {
                snprintf(name, sizeof name, "%s_%s", at[i].key, side ? "max" : "min");
                const cJSON *v = cJSON_GetObjectItemCaseSensitive(args, name);
                if (!cJSON_IsNumber(v) || *n == PZ_MAX_CONDS) continue;
                pz_cond *c = &conds[(*n)++];
                snprintf(c->key, sizeof c->key, "%s", at[i].key);
                c->op = side ? PZ_LE : PZ_GE;
                snprintf(c->value, sizeof c->value, "%.17g", v->valuedouble);
            } else {
                snprintf(name, sizeof name, "%s%s", side ? "not_" : "", at[i].key);
                const cJSON *v, *list = cJSON_GetObjectItemCaseSensitive(args, name);
                cJSON_ArrayForEach(v, list) {
                    if (!cJSON_IsString(v) || *n == PZ_MAX_CONDS) continue;
                    pz_cond *c = &conds[(*n)++];
                    snprintf(c->key, sizeof c->key, "%s", at[i].key);
                    c->op = side ? PZ_NOT : PZ_IS;
                    snprintf(c->value, sizeof c->value, "%s", v->valuestring);
                }
            }
        }
    }
    return 0;
}

/* The profile's standing constraints join the request's. */
static void add_standing(const agent_profile *p, pz_cond *conds, int *n) {
    for (int i = 0; i < p->n_conds && *n < PZ_MAX_CONDS; i++) conds[(*n)++] = p->conds[i];
}

static void reason_text(const pz_result *r, const pz_rec *x, sb *o) {
    if (x->cold) {
        sb_puts(o, "new: nobody has had it yet");
        for (int b = 0; b < x->n_because; b++)
            sb_printf(o, "%s%s", b == 0 ? "; linked in the knowledge graph to " : b + 1 == x->n_because ? " and " : ", ",
                      x->because[b].title);
    } else if (r->fallback) sb_printf(o, "popular: %u people had it", x->popularity);
    else if (r->style == REC_EXPLAIN_POPULARITY) sb_printf(o, "popular: %u people had it", x->popularity);
    else if (x->n_because) {
        sb_puts(o, r->style == REC_EXPLAIN_ATTENTION ? "follows from "
                   : r->style == REC_EXPLAIN_PATHS   ? "linked in the knowledge graph to "
                                                     : "because of ");
        for (int b = 0; b < x->n_because; b++)
            sb_printf(o, "%s%s", b == 0 ? "" : b + 1 == x->n_because ? " and " : ", ", x->because[b].title);
    }
}

/* {"items": [...], ...} of a result. */
static void result_items(const pz_result *r, sb *o) {
    sb_puts(o, "\"items\":[");
    for (int i = 0; i < r->n; i++) {
        const pz_rec *x = &r->items[i];
        sb_printf(o, "%s{", i ? "," : "");
        json_key_str(o, "id", x->id);
        sb_putc(o, ',');
        json_key_str(o, "title", x->title);
        sb_printf(o, ",\"score\":%.6g,\"popularity\":%u,", x->score, x->popularity);
        sb reason;
        sb_init(&reason);
        reason_text(r, x, &reason);
        json_key_str(o, "reason", reason.len ? sb_str(&reason) : NULL);
        sb_deinit(&reason);
        sb_putc(o, '}');
    }
    sb_putc(o, ']');
}

static void conds_json(sb *o, const char *key, const pz_cond *c, int from, int to) {
    sb_printf(o, ",\"%s\":[", key);
    for (int i = from; i < to; i++) {
        char t[256];
        cond_text(&c[i], t, sizeof t);
        if (i > from) sb_putc(o, ',');
        sb_json_str(o, t, strlen(t));
    }
    sb_putc(o, ']');
}

static int json_k(const cJSON *args, int def) {
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(args, "k");
    return cJSON_IsNumber(k) ? (int)k->valueint : def;
}

/* ---- the tools ------------------------------------------------------------ */

static int tool_recommend(agent_ctx *c, const cJSON *args, tailor_error *err) {
    agent *a = c->a;
    agent_profile p;
    int rc = agent_profile_load(a, &p, err);
    if (rc) return rc;
    pz_query q = {.model = agent_model(a), .user = agent_user(a), .k = json_k(args, 5), .explain = true};
    args_conds(a, args, q.conds, &q.n_conds);
    int asked = q.n_conds;
    add_standing(&p, q.conds, &q.n_conds);
    const cJSON *nv = cJSON_GetObjectItemCaseSensitive(args, "novelty");
    if (cJSON_IsNumber(nv)) q.novelty = nv->valuedouble;
    VEC(const char *) hist = {0}, ex = {0};
    const cJSON *v;
    cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(args, "like")) {
        const pz_item_info *it = cJSON_IsString(v) ? resolve_item(a, v->valuestring) : NULL;
        if (it) vec_push(&hist, it->id);
    }
    for (size_t i = 0; i < p.likes.len; i++) vec_push(&hist, p.likes.data[i]);
    cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(args, "exclude")) {
        const pz_item_info *it = cJSON_IsString(v) ? resolve_item(a, v->valuestring) : NULL;
        if (it) vec_push(&ex, it->id);
    }
    for (size_t i = 0; i < p.dislikes.len; i++) vec_push(&ex, p.dislikes.data[i]);
    q.history = hist.data;
    q.n_history = hist.len;
    q.exclude = ex.data;
    q.n_exclude = ex.len;
    pz_result r;
    rc = pz_recommend(agent_engine(a), &q, &r, err);
    if (!rc) {
        sb *o = c->result;
        sb_puts(o, "{");
        result_items(&r, o);
        sb_puts(o, ",");
        json_key_str(o, "model", r.model);
        sb_printf(o, ",\"fallback\":%s", r.fallback ? "true" : "false");
        conds_json(o, "filters", q.conds, 0, asked);
        conds_json(o, "standing", q.conds, asked, q.n_conds);
        sb_printf(o, ",\"excluded_dislikes\":%zu}", p.dislikes.len);
        pz_result_deinit(&r);
    }
    vec_free(&hist);
    vec_free(&ex);
    agent_profile_deinit(&p);
    return rc;
}

/* Hybrid hits (BM25 and vectors fused by reciprocal rank) as store hits,
 * when the agent has a retriever; false otherwise or when the query
 * cannot be embedded (the caller then searches words alone). */
static bool retrieve(agent *a, const char *query, int depth, store_hit **hits, size_t *n) {
    kg_retriever *r = agent_retriever(a);
    if (!r || !query || !*query) return false;
    pz_engine *e = agent_engine(a);
    char **ids;
    double *sc;
    int got;
    tailor_error err = {0};
    if (kg_index_query(pz_engine_store(e), r->x, &r->em, query, true, depth, &ids, &sc, &got, &err)) return false;
    *hits = xmalloc(((size_t)got + 1) * sizeof **hits);
    *n = 0;
    for (int i = 0; i < got; i++) {
        const pz_item_info *it = pz_item(e, ids[i]);
        if (it) (*hits)[(*n)++] = (store_hit){it->row, sc[i]};
    }
    kg_hits_free(ids, sc, got);
    return true;
}

static int tool_search(agent_ctx *c, const cJSON *args, tailor_error *err) {
    agent *a = c->a;
    pz_engine *e = agent_engine(a);
    agent_profile p;
    int rc = agent_profile_load(a, &p, err);
    if (rc) return rc;
    pz_cond conds[PZ_MAX_CONDS];
    int n = 0;
    args_conds(a, args, conds, &n);
    int asked = n;
    add_standing(&p, conds, &n);
    int k = json_k(args, 5);
    const char *query = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(args, "query"));
    store_hit *hits = NULL;
    size_t nh = 0;
    bool meaning = retrieve(a, query, 50 + 5 * k, &hits, &nh);
    if (!meaning) rc = store_search(pz_engine_store(e), query, &hits, &nh, err);
    if (rc == TAILOR_EINVAL) rc = 0, nh = 0; /* nothing searchable in the text: no result */
    if (!rc) {
        sb *o = c->result;
        sb_puts(o, "{\"items\":[");
        int shown = 0;
        for (size_t h = 0; h < nh && shown < k; h++) {
            const pz_item_info *it = pz_item_by_row(e, hits[h].id);
            if (!it || !pz_item_passes(it, conds, n)) continue;
            bool disliked = false;
            for (size_t d = 0; d < p.dislikes.len; d++) disliked |= !strcmp(p.dislikes.data[d], it->id);
            if (disliked) continue;
            sb_printf(o, "%s{", shown++ ? "," : "");
            json_key_str(o, "id", it->id);
            sb_putc(o, ',');
            json_key_str(o, "title", it->title ? it->title : it->id);
            sb_printf(o, ",\"score\":%.4f,\"reason\":", hits[h].score);
            char why[200];
            snprintf(why, sizeof why, "%s \"%.150s\"", meaning ? "matches the words or the meaning of" : "matches", query);
            sb_json_str(o, why, strlen(why));
            sb_putc(o, '}');
        }
        sb_printf(o, "],\"matches\":%zu,\"by\":\"%s\"", nh, meaning ? "words and meaning" : "words");
        conds_json(o, "filters", conds, 0, asked);
        conds_json(o, "standing", conds, asked, n);
        sb_putc(o, '}');
    }
    free(hits);
    agent_profile_deinit(&p);
    return rc;
}

static int tool_item_info(agent_ctx *c, const cJSON *args, tailor_error *err) {
    const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(args, "item"));
    const pz_item_info *it = resolve_item(c->a, name);
    /* A description rather than a name: the item nearest to it by words
     * and meaning, said to be that. */
    store_hit *hits = NULL;
    size_t nh = 0;
    bool described = !it && retrieve(c->a, name, 10, &hits, &nh) && nh;
    if (described) it = pz_item_by_row(agent_engine(c->a), hits[0].id);
    free(hits);
    if (!it) return err_set(err, TAILOR_ENOTFOUND, "no item matches '%s'", name);
    sb *o = c->result;
    sb_putc(o, '{');
    if (described) {
        char note[300];
        snprintf(note, sizeof note, "no item is named \"%.120s\"; this is the nearest by words and meaning", name);
        json_key_str(o, "note", note);
        sb_putc(o, ',');
    }
    json_key_str(o, "id", it->id);
    sb_putc(o, ',');
    json_key_str(o, "title", it->title);
    sb_putc(o, ',');
    json_key_str(o, "text", it->text);
    char *attrs = it->attributes ? cJSON_PrintUnformatted(it->attributes) : NULL;
    sb_printf(o, ",\"attributes\":%s}", attrs ? attrs : "{}");
    free(attrs);
    return 0;
}

static int tool_similar(agent_ctx *c, const cJSON *args, tailor_error *err) {
    agent *a = c->a;
    const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(args, "item"));
    const pz_item_info *it = resolve_item(a, name);
    if (!it) return err_set(err, TAILOR_ENOTFOUND, "no item matches '%s'", name);
    agent_profile p;
    int rc = agent_profile_load(a, &p, err);
    if (rc) return rc;
    pz_cond conds[PZ_MAX_CONDS];
    int n = 0;
    add_standing(&p, conds, &n);
    pz_result r;
    sb note;
    sb_init(&note);
    int k = json_k(args, 5);
    /* Dislikes and exclusions are dropped after ranking: ask for enough. */
    VEC(const char *) ex = {0};
    for (size_t d = 0; d < p.dislikes.len; d++) vec_push(&ex, p.dislikes.data[d]);
    const cJSON *v;
    cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(args, "exclude")) {
        const pz_item_info *x = cJSON_IsString(v) ? resolve_item(a, v->valuestring) : NULL;
        if (x) vec_push(&ex, x->id);
    }
    rc = pz_similar(agent_engine(a), agent_model(a), it->id, k + (int)ex.len, conds, n, &r, &note, err);
    if (!rc) {
        int kept = 0;
        for (int i = 0; i < r.n; i++) {
            bool disliked = false;
            for (size_t d = 0; d < ex.len; d++) disliked |= !strcmp(ex.data[d], r.items[i].id);
            if (disliked || kept == k) {
                free(r.items[i].id);
                free(r.items[i].title);
                continue;
            }
            r.items[kept++] = r.items[i];
        }
        r.n = kept;
        sb *o = c->result;
        sb_puts(o, "{");
        result_items(&r, o);
        sb_puts(o, ",");
        json_key_str(o, "like", it->id);
        sb_puts(o, ",");
        json_key_str(o, "like_title", it->title);
        sb_puts(o, ",");
        json_key_str(o, "model", r.model);
        conds_json(o, "standing", conds, 0, n);
        if (note.len) {
            sb_puts(o, ",");
            json_key_str(o, "note", sb_str(&note));
        }
        sb_putc(o, '}');
        pz_result_deinit(&r);
    }
    sb_deinit(&note);
    vec_free(&ex);
    agent_profile_deinit(&p);
    return rc;
}

static void profile_json(agent *a, sb *o, const char *changed) {
    agent_profile p;
    tailor_error err = {0};
    if (agent_profile_load(a, &p, &err)) {
        sb_puts(o, "{}");
        return;
    }
    sb_puts(o, "{\"likes\":[");
    for (size_t i = 0; i < p.likes.len; i++) {
        const pz_item_info *it = pz_item(agent_engine(a), p.likes.data[i]);
        if (i) sb_putc(o, ',');
        sb_json_str(o, it && it->title ? it->title : p.likes.data[i], strlen(it && it->title ? it->title : p.likes.data[i]));
    }
    sb_puts(o, "],\"dislikes\":[");
    for (size_t i = 0; i < p.dislikes.len; i++) {
        const pz_item_info *it = pz_item(agent_engine(a), p.dislikes.data[i]);
        if (i) sb_putc(o, ',');
        sb_json_str(o, it && it->title ? it->title : p.dislikes.data[i],
                    strlen(it && it->title ? it->title : p.dislikes.data[i]));
    }
    sb_putc(o, ']');
    conds_json(o, "constraints", p.conds, 0, p.n_conds);
    if (changed) {
        sb_putc(o, ',');
        json_key_str(o, "changed", changed);
    }
    sb_putc(o, '}');
    agent_profile_deinit(&p);
}

static int tool_profile(agent_ctx *c, const cJSON *args, tailor_error *err) {
    agent *a = c->a;
    const char *action = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(args, "action"));
    const char *item = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(args, "item"));
    char changed[300] = "";
    int rc = 0;
    if (!strcmp(action, "like") || !strcmp(action, "dislike")) {
        if (!item) return err_set(err, TAILOR_EINVAL, "user_profile %s: give the item", action);
        const pz_item_info *it = resolve_item(a, item);
        if (!it) return err_set(err, TAILOR_ENOTFOUND, "no item matches '%s'", item);
        rc = agent_fact_add(a, action, it->id, item, err);
        snprintf(changed, sizeof changed, "%s %s", action, it->title ? it->title : it->id);
    } else if (!strcmp(action, "constraint")) {
        const char *attr = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(args, "attribute"));
        const char *op = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(args, "op"));
        const cJSON *val = cJSON_GetObjectItemCaseSensitive(args, "value");
        if (!attr || !op || !val) return err_set(err, TAILOR_EINVAL, "user_profile constraint: give attribute, op and value");
        char text[256];
        if (cJSON_IsNumber(val)) snprintf(text, sizeof text, "%s%s%.17g", attr, !strcmp(op, "is") ? "=" : !strcmp(op, "not") ? "!=" : op, val->valuedouble);
        else snprintf(text, sizeof text, "%s%s%s", attr, !strcmp(op, "is") ? "=" : !strcmp(op, "not") ? "!=" : op, val->valuestring);
        pz_cond cond;
        if (!pz_cond_parse(text, &cond)) return err_set(err, TAILOR_EINVAL, "user_profile constraint: '%s' is not a condition", text);
        rc = agent_fact_add(a, "constraint", text, NULL, err);
        snprintf(changed, sizeof changed, "constraint %s", text);
    } else if (!strcmp(action, "forget")) {
        /* value names what to forget: like, dislike or constraint (default: all) */
        const char *what = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(args, "value"));
        if (what && strcmp(what, "like") && strcmp(what, "dislike") && strcmp(what, "constraint")) what = NULL;
        int64_t removed = 0;
        rc = agent_facts_clear(a, what, &removed, err);
        snprintf(changed, sizeof changed, "forgot %lld facts", (long long)removed);
    }
    if (!rc) profile_json(a, c->result, changed[0] ? changed : NULL);
    return rc;
}

const agent_tool AGENT_TOOLS[] = {
    {"recommend", "Recommend items for the person from the trained model, with filters on the catalogue's attributes.",
     tool_recommend},
    {"search", "Full-text search of the catalogue (titles, descriptions, tags), with the same filters.", tool_search},
    {"item_info", "Everything the catalogue says about one item.", tool_item_info},
    {"similar_items", "Items most similar to one item.", tool_similar},
    {"user_profile",
     "Read the person's profile, or record a liked or disliked item, or a standing constraint on attributes, or "
     "forget them.",
     tool_profile},
};
const int AGENT_N_TOOLS = (int)(sizeof AGENT_TOOLS / sizeof AGENT_TOOLS[0]);
