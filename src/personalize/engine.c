/* engine.c — the serving side of recommendations: the catalogue in memory
 * (titles, parsed attributes), models loaded once and kept (the active
 * one re-checked on every request, so that activating another takes effect
 * at once), conditions and exclusions applied in code, the popularity
 * fallback, novelty re-ranking, and explanations. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <strings.h>

#include "personalize/personalize.h"

typedef struct pz_loaded {
    store_model row;
    rec_model *m;
    hmap users;     /* user ext -> model index */
    int32_t *cat;   /* model item index -> catalogue index (-1: not in the catalogue) */
    int32_t *of_cat; /* catalogue index -> model item index (-1: unknown to the model) */
} pz_loaded;

struct pz_engine {
    store *s;
    bool have_items, have_attrs;
    VEC(pz_attr) attrs;
    VEC(pz_item_info) items;
    hmap index; /* item ext -> catalogue index */
    hmap by_row; /* store row id -> catalogue index */
    kg_graph kg; /* the knowledge graph, loaded on first need (path explanations, cold items) */
    bool kg_loaded;
    double *kg_idf; /* kg_neighbour_idf of kg */
    hmap keys;  /* attribute names */
    VEC(const char *) key_names; /* the same, in the order first seen */
    arena strings;
    VEC(pz_loaded *) models;
    /* The active model as last read, while the store's models generation
     * (PostgreSQL: LISTEN/NOTIFY) is unchanged; SQLite reads it each time. */
    pz_loaded *active;
    uint64_t active_gen;
};

int pz_engine_new(store *s, pz_engine **out, tailor_error *err) {
    (void)err;
    pz_engine *e = xcalloc(1, sizeof *e);
    e->s = s;
    arena_init(&e->strings, 0);
    hmap_init(&e->index, 1024);
    hmap_init(&e->by_row, 1024);
    hmap_init(&e->keys, 32);
    *out = e;
    return 0;
}

static void loaded_free(pz_loaded *l) {
    if (!l) return;
    store_model_deinit(&l->row);
    rec_model_free(l->m);
    hmap_deinit(&l->users);
    free(l->cat);
    free(l->of_cat);
    free(l);
}

void pz_engine_free(pz_engine *e) {
    if (!e) return;
    for (size_t i = 0; i < e->items.len; i++) cJSON_Delete((cJSON *)e->items.data[i].attributes);
    vec_free(&e->items);
    hmap_deinit(&e->index);
    hmap_deinit(&e->by_row);
    if (e->kg_loaded) kg_deinit(&e->kg);
    free(e->kg_idf);
    hmap_deinit(&e->keys);
    vec_free(&e->key_names);
    arena_deinit(&e->strings);
    for (size_t i = 0; i < e->models.len; i++) loaded_free(e->models.data[i]);
    vec_free(&e->models);
    for (size_t i = 0; i < e->attrs.len; i++) free(e->attrs.data[i].values);
    vec_free(&e->attrs);
    free(e);
}

store *pz_engine_store(pz_engine *e) { return e->s; }

/* ---- catalogue ---------------------------------------------------------- */

static int load_item(void *ctx, const store_item *it) {
    pz_engine *e = ctx;
    pz_item_info info = {.id = arena_strdup(&e->strings, it->ext_id), .row = it->id};
    if (it->title) info.title = arena_strdup(&e->strings, it->title);
    if (it->text) info.text = arena_strdup(&e->strings, it->text);
    cJSON *a = it->attributes ? cJSON_Parse(it->attributes) : NULL;
    if (a && !cJSON_IsObject(a)) {
        cJSON_Delete(a);
        a = NULL;
    }
    const cJSON *k;
    cJSON_ArrayForEach(k, a) {
        int64_t seen;
        if (hmap_get(&e->keys, k->string, strlen(k->string), &seen)) continue;
        hmap_put(&e->keys, k->string, strlen(k->string), 1);
        vec_push(&e->key_names, arena_strdup(&e->strings, k->string));
    }
    info.attributes = a;
    hmap_put(&e->index, info.id, strlen(info.id), (int64_t)e->items.len);
    hmap_put(&e->by_row, (const char *)&it->id, sizeof it->id, (int64_t)e->items.len);
    vec_push(&e->items, info);
    return 0;
}

static void ensure_items(pz_engine *e) {
    if (e->have_items) return;
    e->have_items = true;
    store_items_each(e->s, load_item, e, NULL);
}

static int64_t item_index(pz_engine *e, const char *id) {
    ensure_items(e);
    int64_t i;
    return hmap_get(&e->index, id, strlen(id), &i) ? i : -1;
}

const pz_item_info *pz_item(pz_engine *e, const char *id) {
    int64_t i = item_index(e, id);
    return i < 0 ? NULL : &e->items.data[i];
}

const pz_item_info *pz_item_by_row(pz_engine *e, int64_t row) {
    ensure_items(e);
    int64_t i;
    return hmap_get(&e->by_row, (const char *)&row, sizeof row, &i) ? &e->items.data[i] : NULL;
}

size_t pz_items(pz_engine *e) {
    ensure_items(e);
    return e->items.len;
}

const pz_item_info *pz_item_at(pz_engine *e, size_t i) {
    ensure_items(e);
    return i < e->items.len ? &e->items.data[i] : NULL;
}

static int str_cmp(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }
static int attr_cmp(const void *a, const void *b) { return strcmp(((const pz_attr *)a)->key, ((const pz_attr *)b)->key); }

bool pz_attribute_known(pz_engine *e, const char *key, sb *known) {
    ensure_items(e);
    int64_t v;
    if (hmap_get(&e->keys, key, strlen(key), &v)) return true;
    if (known) {
        const char **names = xmalloc((e->key_names.len + 1) * sizeof *names);
        memcpy(names, e->key_names.data, e->key_names.len * sizeof *names);
        qsort(names, e->key_names.len, sizeof *names, str_cmp);
        for (size_t i = 0; i < e->key_names.len; i++) sb_printf(known, "%s%s", i ? ", " : "", names[i]);
        free(names);
    }
    return false;
}

/* One pass over the catalogue per attribute name: numeric when every value
 * is a number, categorical when its text values (lists flattened) are few. */
const pz_attr *pz_attributes(pz_engine *e, int *n) {
    ensure_items(e);
    if (!e->have_attrs) {
        e->have_attrs = true;
        for (size_t i = 0; i < e->key_names.len; i++) {
            pz_attr a = {.key = e->key_names.data[i], .numeric = true, .lo = INFINITY, .hi = -INFINITY};
            hmap seen;
            hmap_init(&seen, 64);
            VEC(const char *) vals = {0};
            bool many = false;
            for (size_t j = 0; j < e->items.len; j++) {
                const cJSON *v = cJSON_GetObjectItemCaseSensitive(e->items.data[j].attributes, a.key);
                if (!v) continue;
                a.items++;
                if (cJSON_IsNumber(v)) {
                    a.lo = fmin(a.lo, v->valuedouble), a.hi = fmax(a.hi, v->valuedouble);
                    continue;
                }
                a.numeric = false;
                const cJSON *x, *list = cJSON_IsArray(v) ? v : NULL;
                for (x = list ? list->child : v; x && !many; x = list ? x->next : NULL) {
                    int64_t d;
                    if (!cJSON_IsString(x) || hmap_get(&seen, x->valuestring, strlen(x->valuestring), &d)) continue;
                    hmap_put(&seen, x->valuestring, strlen(x->valuestring), 1);
                    if (vals.len == PZ_MAX_VALUES) many = true;
                    else vec_push(&vals, arena_strdup(&e->strings, x->valuestring));
                }
            }
            hmap_deinit(&seen);
            if (a.numeric && a.items) {
                vec_push(&e->attrs, a);
            } else if (!a.numeric && !many && vals.len > 1) {
                qsort(vals.data, vals.len, sizeof *vals.data, str_cmp);
                a.values = vals.data;
                a.n_values = (int)vals.len;
                a.lo = a.hi = 0;
                vec_push(&e->attrs, a);
                continue;
            }
            vec_free(&vals);
        }
        if (e->attrs.len) qsort(e->attrs.data, e->attrs.len, sizeof *e->attrs.data, attr_cmp);
    }
    *n = (int)e->attrs.len;
    return e->attrs.data;
}

/* ---- conditions --------------------------------------------------------- */

bool pz_cond_parse(const char *text, pz_cond *out) {
    memset(out, 0, sizeof *out);
    const char *op = strpbrk(text, "=<>!");
    if (!op || op == text) return false;
    size_t kl = (size_t)(op - text);
    const char *v;
    if (op[0] == '!' && op[1] == '=') out->op = PZ_NOT, v = op + 2;
    else if (op[0] == '>' && op[1] == '=') out->op = PZ_GE, v = op + 2;
    else if (op[0] == '<' && op[1] == '=') out->op = PZ_LE, v = op + 2;
    else if (op[0] == '=') out->op = PZ_IS, v = op + 1;
    else return false;
    if (kl >= sizeof out->key || strlen(v) >= sizeof out->value) return false;
    memcpy(out->key, text, kl);
    snprintf(out->value, sizeof out->value, "%s", v);
    double d;
    if ((out->op == PZ_GE || out->op == PZ_LE) && !parse_f64(v, strlen(v), &d)) return false;
    return true;
}

/* Case-insensitive: users write "comedy" for "Comedy". */
static bool json_is(const cJSON *v, const char *want) {
    if (cJSON_IsString(v)) return !strcasecmp(v->valuestring, want);
    if (cJSON_IsNumber(v)) {
        double d;
        return parse_f64(want, strlen(want), &d) && d == v->valuedouble;
    }
    if (cJSON_IsBool(v)) return !strcasecmp(want, cJSON_IsTrue(v) ? "true" : "false");
    if (cJSON_IsArray(v)) {
        const cJSON *x;
        cJSON_ArrayForEach(x, v) if (json_is(x, want)) return true;
    }
    return false;
}

bool pz_item_passes(const pz_item_info *it, const pz_cond *c, int n) {
    for (int i = 0; i < n; i++) {
        const cJSON *v = it->attributes ? cJSON_GetObjectItemCaseSensitive(it->attributes, c[i].key) : NULL;
        bool ok;
        if (c[i].op == PZ_IS) ok = v && json_is(v, c[i].value);
        else if (c[i].op == PZ_NOT) ok = !v || !json_is(v, c[i].value);
        else {
            double want = atof(c[i].value), have;
            if (cJSON_IsNumber(v)) have = v->valuedouble;
            else if (cJSON_IsString(v) && parse_f64(v->valuestring, strlen(v->valuestring), &have)) {
            } else return false;
            ok = c[i].op == PZ_GE ? have >= want : have <= want;
        }
        if (!ok) return false;
    }
    return true;
}

static int check_conds(pz_engine *e, const pz_cond *c, int n, tailor_error *err) {
    for (int i = 0; i < n; i++) {
        sb known;
        sb_init(&known);
        if (!pz_attribute_known(e, c[i].key, &known)) {
            int rc = err_set(err, TAILOR_EINVAL, "no item has an attribute '%s' (%s%s)", c[i].key,
                             known.len ? "attributes: " : "the catalogue has no attributes", sb_str(&known));
            sb_deinit(&known);
            return rc;
        }
        sb_deinit(&known);
    }
    return 0;
}

/* ---- models ------------------------------------------------------------- */

static int load_model(pz_engine *e, store_model *row, pz_loaded **out, tailor_error *err) {
    char *path = store_path_resolve(e->s, row->file ? row->file : "");
    rec_model *m;
    int rc = rec_model_load(path, &m, err);
    free(path);
    if (rc) return rc;
    pz_loaded *l = xcalloc(1, sizeof *l);
    l->row = *row;
    memset(row, 0, sizeof *row);
    l->m = m;
    hmap_init(&l->users, (size_t)m->n_users);
    for (int32_t u = 0; u < m->n_users; u++) hmap_put(&l->users, m->user_ext[u], strlen(m->user_ext[u]), u);
    l->cat = xmalloc(((size_t)m->n_items + 1) * sizeof *l->cat);
    for (int32_t i = 0; i < m->n_items; i++) l->cat[i] = (int32_t)item_index(e, m->item_ext[i]);
    ensure_items(e);
    l->of_cat = xmalloc((e->items.len + 1) * sizeof *l->of_cat);
    for (size_t c = 0; c < e->items.len; c++) l->of_cat[c] = -1;
    for (int32_t i = 0; i < m->n_items; i++)
        if (l->cat[i] >= 0) l->of_cat[l->cat[i]] = i;
    *out = l;
    return 0;
}

static int find_model(pz_engine *e, const char *name, pz_loaded **out, tailor_error *err) {
    uint64_t gen = name ? 0 : store_models_generation(e->s);
    if (gen && e->active && gen == e->active_gen) {
        *out = e->active;
        return 0;
    }
    store_model row;
    int rc = name ? store_model_get(e->s, name, &row, err) : store_model_active(e->s, &row, err);
    if (rc) return rc;
    /* A cached model serves while its row is unchanged (same training). */
    for (size_t i = 0; i < e->models.len; i++) {
        pz_loaded *l = e->models.data[i];
        if (!strcmp(l->row.name, row.name)) {
            if (l->row.trained_at == row.trained_at && !strcmp(l->row.kind, row.kind)) {
                store_model_deinit(&row);
                *out = l;
                if (!name) e->active = l, e->active_gen = gen;
                return 0;
            }
            if (e->active == l) e->active = NULL;
            loaded_free(l);
            e->models.data[i] = e->models.data[--e->models.len];
            break;
        }
    }
    pz_loaded *l;
    rc = load_model(e, &row, &l, err);
    store_model_deinit(&row);
    if (rc) return rc;
    vec_push(&e->models, l);
    *out = l;
    if (!name) e->active = l, e->active_gen = gen;
    return 0;
}

int pz_model(pz_engine *e, const char *name, rec_model **m, const store_model **row, tailor_error *err) {
    pz_loaded *l;
    int rc = find_model(e, name, &l, err);
    if (rc) return rc;
    if (m) *m = l->m;
    if (row) *row = &l->row;
    return 0;
}

uint32_t pz_popularity(pz_engine *e, const char *id) {
    pz_loaded *l;
    int64_t i;
    if (find_model(e, NULL, &l, NULL) || !l->m->popularity || !hmap_get(&l->m->item_index, id, strlen(id), &i)) return 0;
    return l->m->popularity[i];
}

/* ---- items named by people ------------------------------------------------ */

const pz_item_info *pz_item_named(pz_engine *e, const char *text) {
    while (*text == ' ') text++;
    size_t pl = strlen(text);
    if (pl == 0) return NULL;
    const pz_item_info *it = pz_item(e, text);
    if (it) return it;
    const pz_item_info *exact = NULL;
    uint32_t exact_pop = 0;
    for (size_t i = 0; i < e->items.len; i++) {
        const pz_item_info *x = &e->items.data[i];
        if (!x->title) continue;
        size_t tl = strlen(x->title);
        /* "Toy Story" for "Toy Story (1995)"; "the matrix" for "Matrix, The (1999)" */
        bool hit = !strncasecmp(x->title, text, pl) && (tl == pl || !strncmp(x->title + pl, " (", 2));
        hit |= pl > 4 && !strncasecmp(text, "the ", 4) && !strncasecmp(x->title, text + 4, pl - 4) &&
               !strncmp(x->title + pl - 4, ", The", 5);
        if (!hit) continue;
        /* Several of that name (Titanic 1953 and 1997): the one more people had. */
        uint32_t pop = pz_popularity(e, x->id);
        if (!exact || pop > exact_pop) exact = x, exact_pop = pop;
    }
    if (exact || pl < 2) return exact;
    store_hit *hits;
    size_t nh;
    if (store_search(e->s, text, &hits, &nh, NULL)) return NULL;
    const pz_item_info *best = NULL;
    for (size_t h = 0; h < nh && h < 30 && !best; h++) {
        const pz_item_info *x = pz_item_by_row(e, hits[h].id);
        if (!x || !x->title) continue;
        int nw = 0, found = 0;
        char buf[256];
        snprintf(buf, sizeof buf, "%s", text);
        for (char *sv_ = NULL, *t = strtok_r(buf, " ,.!?:;\"()", &sv_); t; t = strtok_r(NULL, " ,.!?:;\"()", &sv_)) {
            if (strlen(t) < 2 || !strcasecmp(t, "the") || !strcasecmp(t, "of")) continue;
            nw++;
            found += strcasestr(x->title, t) != NULL;
        }
        if (nw && found == nw) best = x;
    }
    free(hits);
    return best;
}

/* ---- recommend ---------------------------------------------------------- */

typedef struct hist {
    pz_loaded *l;
    VEC(int32_t) items;
    VEC(float) vals;
    int64_t unknown;
    pz_engine *e;
    VEC(int32_t) cats; /* catalogue indexes of every history item, known to the model or not */
} hist;

/* The history item with the model's index found (-1: unknown to it). */
static int hist_push(hist *h, int32_t found, double value) {
    if (found < 0) {
        h->unknown++;
        return 0;
    }
    vec_push(&h->items, found);
    vec_push(&h->vals, isnan(value) ? 1.0f : (float)value);
    return 0;
}

/* A stored event's item by row: catalogue index, then the model's index
 * (what a request does for every event of a user's history). */
static int hist_add_row(void *ctx, int64_t row, double value, int64_t ts) {
    hist *h = ctx;
    (void)ts;
    int64_t c;
    bool in = hmap_get(&h->e->by_row, (const char *)&row, sizeof row, &c);
    if (in) vec_push(&h->cats, (int32_t)c);
    return hist_push(h, in ? h->l->of_cat[c] : -1, value);
}

static int hist_add(void *ctx, const char *item_ext, double value, int64_t ts) {
    hist *h = ctx;
    int64_t i;
    (void)ts;
    int32_t c = (int32_t)item_index(h->e, item_ext);
    if (c >= 0) vec_push(&h->cats, c);
    return hist_push(h, hmap_get(&h->l->m->item_index, item_ext, strlen(item_ext), &i) ? (int32_t)i : -1, value);
}

static void fill_rec(pz_engine *e, pz_loaded *l, int32_t item, float score, pz_rec *r) {
    const pz_item_info *it = &e->items.data[l->cat[item]];
    r->id = xstrdup(it->id);
    r->title = xstrdup(it->title ? it->title : it->id);
    r->score = score;
    r->popularity = l->m->popularity ? l->m->popularity[item] : 0;
}

static void fill_result(pz_loaded *l, pz_result *out) {
    out->model = xstrdup(l->row.name);
    out->kind = xstrdup(l->m->kind->name);
    out->style = l->m->kind->explain_style;
    if (out->style == REC_EXPLAIN_POPULARITY) out->pop_window = rec_param_i64(l->m, "window");
}

/* Which model items may be returned: in the catalogue, passing the
 * conditions, not excluded. */
static unsigned char *allowed_items(pz_engine *e, pz_loaded *l, const pz_cond *c, int nc, const char *const *ex,
                                    size_t nex) {
    const rec_model *m = l->m;
    unsigned char *ok = xcalloc((size_t)m->n_items + 1, 1);
    for (int32_t i = 0; i < m->n_items; i++)
        ok[i] = l->cat[i] >= 0 && pz_item_passes(&e->items.data[l->cat[i]], c, nc);
    for (size_t x = 0; x < nex; x++) {
        int64_t i;
        if (hmap_get(&m->item_index, ex[x], strlen(ex[x]), &i)) ok[i] = 0;
    }
    return ok;
}

/* The (at most want) history positions with the largest positive
 * contributions, best first; ties keep the earlier one. */
static int top_contrib(const float *contrib, size_t n, int *top, int want) {
    int got = 0;
    for (size_t q = 0; q < n; q++) {
        if (!(contrib[q] > 0)) continue;
        if (got == want && !(contrib[q] > contrib[top[got - 1]])) continue;
        int t = got < want ? got++ : want - 1;
        while (t > 0 && contrib[q] > contrib[top[t - 1]]) {
            top[t] = top[t - 1];
            t--;
        }
        top[t] = (int)q;
    }
    return got;
}

/* Novelty: over the best candidates, scores scaled to [0, 1] minus
 * novelty x popularity on a log scale scaled to [0, 1]. */
static void novelty_rerank(const rec_model *m, float *scores, double novelty) {
    int32_t n = m->n_items, take = n < 500 ? n : 500;
    int32_t *top = xmalloc((size_t)take * sizeof *top);
    float *ts = xmalloc((size_t)take * sizeof *ts);
    int got = rec_topk_scores(scores, n, take, top, ts);
    if (got > 1 && m->popularity) {
        float hi = ts[0], lo = ts[got - 1];
        double maxp = 1;
        for (int i = 0; i < got; i++) maxp = fmax(maxp, log1p(m->popularity[top[i]]));
        for (int32_t i = 0; i < n; i++)
            if (scores[i] != -INFINITY) scores[i] = -INFINITY; /* only the candidates stay */
        for (int i = 0; i < got; i++) {
            double s = hi > lo ? (ts[i] - lo) / (hi - lo) : 1;
            scores[top[i]] = (float)(s - novelty * log1p(m->popularity[top[i]]) / maxp);
        }
    }
    free(top);
    free(ts);
}

static const char *catalogue_title(void *ctx, const char *item) {
    const pz_item_info *it = pz_item(ctx, item);
    return it && it->title ? it->title : NULL;
}

/* Reasons from the knowledge graph: the history items that paths of up to
 * three links join to the recommended one, the most specific first. */
/* The graph entities of the history's items (NULL: the store has no
 * graph), once per request. */
static void ensure_graph(pz_engine *e) {
    if (e->kg_loaded) return;
    e->kg_loaded = true;
    if (kg_load(e->s, &e->kg, NULL)) memset(&e->kg, 0, sizeof e->kg);
    if (e->kg.n_triples) e->kg_idf = kg_neighbour_idf(&e->kg);
}

static int32_t *path_targets(pz_engine *e, pz_loaded *l, const hist *h) {
    ensure_graph(e);
    if (!e->kg.n_triples) return NULL;
    int32_t *targets = xmalloc((h->items.len + 1) * sizeof *targets);
    for (size_t i = 0; i < h->items.len; i++) targets[i] = kg_item_entity(&e->kg, l->m->item_ext[h->items.data[i]]);
    return targets;
}

static void explain_paths(pz_engine *e, const int32_t *targets, size_t n_targets, const char *item, pz_rec *x) {
    int32_t from = kg_item_entity(&e->kg, item);
    if (from < 0) return;
    kg_path_params p = kg_path_default_params();
    p.per_target = 1;
    p.max_paths = 3;
    kg_path paths[3];
    int n;
    kg_paths(&e->kg, from, targets, n_targets, p, paths, &n);
    for (int i = 0; i < n && x->n_because < 3; i++) {
        const char *ext = e->kg.item[paths[i].node[paths[i].hops]];
        const pz_item_info *it = pz_item(e, ext);
        sb t;
        sb_init(&t);
        kg_path_text(&e->kg, &paths[i], catalogue_title, e, &t);
        x->because[x->n_because++] =
            (pz_reason){xstrdup(ext), xstrdup(it && it->title ? it->title : ext), (float)paths[i].weight, sb_take(&t)};
    }
}

/* Items without events (unknown to the model, or in it with no training
 * event) scored by their graph neighbours against the whole history; the
 * best q->cold with a positive score take the last places of the result
 * (the model cannot rank them, so they never push its own picks down more
 * than that). */
static void add_cold(pz_engine *e, pz_loaded *l, const pz_query *q, const hist *h, const int32_t *targets,
                     pz_result *out) {
    ensure_graph(e);
    if (!e->kg.n_triples || !h->cats.len) return;
    const rec_model *m = l->m;
    double *profile = xcalloc((size_t)e->kg.n_entities + 1, sizeof *profile);
    for (size_t i = 0; i < h->cats.len; i++)
        kg_profile_add(&e->kg, e->kg_idf, kg_item_entity(&e->kg, e->items.data[h->cats.data[i]].id), profile);
    int want = q->cold < q->k ? q->cold : q->k, got = 0;
    int32_t *best = xmalloc((size_t)want * sizeof *best);
    double *bs = xmalloc((size_t)want * sizeof *bs);
    for (size_t c = 0; c < e->items.len; c++) {
        int32_t mi = l->of_cat[c];
        if (mi >= 0 && (!m->popularity || m->popularity[mi] > 0)) continue; /* the model knows it */
        const pz_item_info *it = &e->items.data[c];
        double sc = kg_profile_score(&e->kg, e->kg_idf, kg_item_entity(&e->kg, it->id), profile);
        if (!(sc > 0) || (got == want && sc <= bs[got - 1]) || !pz_item_passes(it, q->conds, q->n_conds)) continue;
        bool skip = false;
        for (size_t x = 0; x < q->n_exclude && !skip; x++) skip = !strcmp(q->exclude[x], it->id);
        for (size_t x = 0; x < h->cats.len && !skip && !q->include_seen; x++) skip = h->cats.data[x] == (int32_t)c;
        if (skip) continue;
        int p = got < want ? got++ : want - 1;
        while (p > 0 && bs[p - 1] < sc) best[p] = best[p - 1], bs[p] = bs[p - 1], p--;
        best[p] = (int32_t)c, bs[p] = sc;
    }
    /* Room at the end of the list. */
    int keep = out->n + got > q->k ? q->k - got : out->n;
    for (int r = keep; r < out->n; r++) {
        pz_rec *x = &out->items[r];
        free(x->id), free(x->title);
        for (int b = 0; b < x->n_because; b++) free(x->because[b].id), free(x->because[b].title), free(x->because[b].path);
    }
    out->n = keep;
    out->items = xrealloc(out->items, ((size_t)keep + got + 1) * sizeof *out->items);
    for (int i = 0; i < got; i++) {
        const pz_item_info *it = &e->items.data[best[i]];
        pz_rec *x = &out->items[out->n++];
        *x = (pz_rec){.id = xstrdup(it->id), .title = xstrdup(it->title ? it->title : it->id), .score = (float)bs[i],
                      .cold = true};
        if (q->explain && targets) explain_paths(e, targets, h->items.len, it->id, x);
    }
    out->n_cold = got;
    free(best), free(bs), free(profile);
}

int pz_recommend(pz_engine *e, const pz_query *q, pz_result *out, tailor_error *err) {
    memset(out, 0, sizeof *out);
    ensure_items(e);
    int rc = check_conds(e, q->conds, q->n_conds, err);
    if (rc) return rc;
    if (q->k < 1) return err_set(err, TAILOR_EINVAL, "k must be at least 1");
    pz_loaded *l;
    if ((rc = find_model(e, q->model, &l, err))) return rc;
    const rec_model *m = l->m;
    hist h = {.l = l, .e = e};
    int32_t uidx = -1;
    if (q->user) {
        int64_t u;
        if (hmap_get(&l->users, q->user, strlen(q->user), &u)) uidx = (int32_t)u;
        rc = store_user_history_rows(e->s, q->user, hist_add_row, &h, err);
        if (rc == TAILOR_ENOTFOUND) rc = err_set(err, TAILOR_ENOTFOUND, "user '%s' not found", q->user);
    }
    for (size_t i = 0; !rc && i < q->n_history; i++) {
        if (item_index(e, q->history[i]) < 0) rc = err_set(err, TAILOR_ENOTFOUND, "item '%s' not found", q->history[i]);
        else hist_add(&h, q->history[i], NAN, 0);
    }
    if (rc) {
        vec_free(&h.items);
        vec_free(&h.vals);
        vec_free(&h.cats);
        return rc;
    }
    fill_result(l, out);
    out->history_used = (int64_t)h.items.len;
    out->history_unknown = h.unknown;
    unsigned char *ok = allowed_items(e, l, q->conds, q->n_conds, q->exclude, q->n_exclude);
    if (!q->include_seen)
        for (size_t i = 0; i < h.items.len; i++) ok[h.items.data[i]] = 0;
    float *scores = xmalloc(((size_t)m->n_items + 1) * sizeof *scores);
    /* (Files older than format 2 have no counts: their model scores.) */
    out->fallback = uidx < 0 && h.items.len == 0 && m->popularity;
    if (out->fallback) {
        for (int32_t i = 0; i < m->n_items; i++) scores[i] = (float)m->popularity[i];
        out->style = REC_EXPLAIN_POPULARITY;
    } else {
        m->kind->score(m, uidx, h.items.data, h.vals.data, h.items.len, scores);
    }
    if (out->fallback) out->pop_window = 0;
    for (int32_t i = 0; i < m->n_items; i++)
        if (!ok[i]) scores[i] = -INFINITY;
    if (q->novelty > 0) novelty_rerank(m, scores, q->novelty);
    int32_t *top = xmalloc((size_t)q->k * sizeof *top);
    float *ts = xmalloc((size_t)q->k * sizeof *ts);
    int got = rec_topk_scores(scores, m->n_items, q->k, top, ts);
    out->items = xcalloc((size_t)got + 1, sizeof *out->items);
    float *contrib = xmalloc((h.items.len + 1) * sizeof *contrib);
    int32_t *targets =
        q->explain && (m->kind->explain_style == REC_EXPLAIN_PATHS || q->cold > 0) && h.items.len ? path_targets(e, l, &h)
                                                                                                   : NULL;
    for (int r = 0; r < got; r++) {
        pz_rec *x = &out->items[out->n++];
        fill_rec(e, l, top[r], ts[r], x);
        if (out->fallback || m->kind->explain_style == REC_EXPLAIN_POPULARITY) {
            /* pop's score is its (windowed) user count */
            if (!out->fallback) x->popularity = (uint32_t)ts[r];
            continue;
        }
        if (m->kind->explain_style == REC_EXPLAIN_PATHS) {
            if (targets) explain_paths(e, targets, h.items.len, m->item_ext[top[r]], x);
            continue;
        }
        if (!q->explain || !m->kind->explain || !h.items.len) continue;
        m->kind->explain(m, uidx, h.items.data, h.vals.data, h.items.len, top[r], contrib);
        int best[3];
        x->n_because = top_contrib(contrib, h.items.len, best, 3);
        for (int t = 0; t < x->n_because; t++) {
            int32_t hi = h.items.data[best[t]];
            const pz_item_info *it = l->cat[hi] >= 0 ? &e->items.data[l->cat[hi]] : NULL;
            x->because[t] = (pz_reason){xstrdup(m->item_ext[hi]), xstrdup(it && it->title ? it->title : m->item_ext[hi]),
                                        contrib[best[t]], NULL};
        }
    }
    if (q->cold > 0 && !out->fallback) add_cold(e, l, q, &h, targets, out);
    free(contrib);
    free(targets);
    free(top);
    free(ts);
    free(scores);
    free(ok);
    vec_free(&h.items);
    vec_free(&h.vals);
    vec_free(&h.cats);
    return 0;
}

void pz_result_deinit(pz_result *r) {
    for (int i = 0; i < r->n; i++) {
        free(r->items[i].id);
        free(r->items[i].title);
        for (int b = 0; b < r->items[i].n_because; b++) {
            free(r->items[i].because[b].id);
            free(r->items[i].because[b].title);
            free(r->items[i].because[b].path);
        }
    }
    free(r->items);
    free(r->model);
    free(r->kind);
    memset(r, 0, sizeof *r);
}

/* ---- similar ------------------------------------------------------------ */

int pz_similar(pz_engine *e, const char *model, const char *item, int k, const pz_cond *conds, int n_conds,
               pz_result *out, sb *note, tailor_error *err) {
    memset(out, 0, sizeof *out);
    ensure_items(e);
    int rc = check_conds(e, conds, n_conds, err);
    if (rc) return rc;
    pz_loaded *l;
    if ((rc = find_model(e, model, &l, err))) return rc;
    if (!l->m->kind->similar) {
        const char *why = l->m->kind->explain_style == REC_EXPLAIN_POPULARITY
                              ? "it ranks every item by how many users had it, the same list for everyone"
                              : "it learns no relation between items";
        if (model)
            return err_set(err, TAILOR_EINVAL, "model '%s' (%s) has no item similarity: %s", l->row.name,
                           l->m->kind->name, why);
        /* Not named: the newest model that has item similarity. */
        store_model *ms;
        size_t n;
        char *pick = NULL;
        if (store_models_list(e->s, &ms, &n, NULL) == 0) {
            for (size_t i = n; i-- > 0 && !pick;) {
                const rec_kind *kd = rec_kind_find(ms[i].kind);
                if (kd && kd->similar) pick = xstrdup(ms[i].name);
            }
            store_models_free(ms, n);
        }
        if (!pick)
            return err_set(err, TAILOR_EUNSUPPORTED,
                           "model '%s' (%s) has no item similarity: %s; train itemknn, als, bpr, ease or sasrec "
                           "for similar items",
                           l->row.name, l->m->kind->name, why);
        if (note)
            sb_printf(note, "model '%s' (%s) has no item similarity: %s; using '%s'", l->row.name, l->m->kind->name,
                      why, pick);
        rc = find_model(e, pick, &l, err);
        free(pick);
        if (rc) return rc;
    }
    const rec_model *m = l->m;
    int64_t idx;
    if (!hmap_get(&m->item_index, item, strlen(item), &idx))
        return err_set(err, TAILOR_ENOTFOUND, "item '%s' %s", item,
                       item_index(e, item) >= 0 ? "is newer than the model (retrain it to include the item)"
                                                : "not found");
    float *scores = xmalloc(((size_t)m->n_items + 1) * sizeof *scores);
    m->kind->similar(m, (int32_t)idx, scores);
    unsigned char *ok = allowed_items(e, l, conds, n_conds, NULL, 0);
    ok[idx] = 0;
    for (int32_t i = 0; i < m->n_items; i++)
        if (!ok[i]) scores[i] = -INFINITY;
    int32_t *top = xmalloc((size_t)(k > 0 ? k : 1) * sizeof *top);
    float *ts = xmalloc((size_t)(k > 0 ? k : 1) * sizeof *ts);
    int got = rec_topk_scores(scores, m->n_items, k, top, ts);
    fill_result(l, out);
    out->items = xcalloc((size_t)got + 1, sizeof *out->items);
    for (int r = 0; r < got; r++) fill_rec(e, l, top[r], ts[r], &out->items[out->n++]);
    free(top);
    free(ts);
    free(scores);
    free(ok);
    return 0;
}

void pz_result_json(const pz_result *r, bool explain, sb *o) {
    sb_puts(o, "\"model\":");
    sb_json_str(o, r->model, strlen(r->model));
    sb_puts(o, ",\"kind\":");
    sb_json_str(o, r->kind, strlen(r->kind));
    if (r->fallback) sb_puts(o, ",\"fallback\":\"popularity\"");
    sb_putc(o, ',');
    static const char *const styles[] = {"none", "history", "attention", "popularity", "paths"};
    sb_puts(o, "\"items\":[");
    for (int i = 0; i < r->n; i++) {
        const pz_rec *x = &r->items[i];
        sb_printf(o, "%s{\"rank\":%d,\"item\":", i ? "," : "", i + 1);
        sb_json_str(o, x->id, strlen(x->id));
        sb_puts(o, ",\"title\":");
        sb_json_str(o, x->title, strlen(x->title));
        sb_printf(o, ",\"score\":%.6g,\"popularity\":%u", x->score, x->popularity);
        if (x->cold) sb_puts(o, ",\"cold\":true");
        if (explain) {
            sb_printf(o, ",\"explanation\":\"%s\",\"because\":[", styles[x->cold ? REC_EXPLAIN_PATHS : r->style]);
            for (int b = 0; b < x->n_because; b++) {
                sb_printf(o, "%s{\"item\":", b ? "," : "");
                sb_json_str(o, x->because[b].id, strlen(x->because[b].id));
                sb_puts(o, ",\"title\":");
                sb_json_str(o, x->because[b].title, strlen(x->because[b].title));
                sb_printf(o, ",\"weight\":%.6g", x->because[b].weight);
                if (x->because[b].path) {
                    sb_puts(o, ",\"path\":");
                    sb_json_str(o, x->because[b].path, strlen(x->because[b].path));
                }
                sb_putc(o, '}');
            }
            sb_putc(o, ']');
        }
        sb_putc(o, '}');
    }
    sb_putc(o, ']');
}

/* Size of the model's file, or -1 when it is missing. */
double pz_model_file_size(store *s, const store_model *m) {
    char *path = store_path_resolve(s, m->file ? m->file : "");
    struct stat st;
    double size = stat(path, &st) == 0 ? (double)st.st_size : -1;
    free(path);
    return size;
}

void pz_model_json(store *s, const store_model *m, sb *o) {
    sb_puts(o, "{\"name\":");
    sb_json_str(o, m->name, strlen(m->name));
    sb_puts(o, ",\"kind\":");
    sb_json_str(o, m->kind, strlen(m->kind));
    sb_printf(o, ",\"active\":%s,\"trained_at\":%lld,\"file\":", m->active ? "true" : "false",
              (long long)m->trained_at);
    if (m->file) sb_json_str(o, m->file, strlen(m->file));
    else sb_puts(o, "null");
    double size = pz_model_file_size(s, m);
    if (size >= 0) sb_printf(o, ",\"file_bytes\":%.0f", size);
    else sb_puts(o, ",\"file_bytes\":null");
    sb_printf(o, ",\"params\":%s,\"training\":%s,\"evaluation\":%s}", m->params ? m->params : "null",
              m->metrics ? m->metrics : "null", m->evaluation ? m->evaluation : "null");
}
