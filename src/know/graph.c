/* graph.c — the knowledge graph in memory and its path queries. Entities
 * and relations are interned; edges are kept per entity in both
 * directions (CSR), so neighbours and breadth-first searches read one
 * contiguous run per entity. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "know/know.h"

typedef struct triple {
    int32_t h, r, t;
} triple;

typedef VEC(char *) names_vec;

typedef struct loader {
    kg_graph *g;
    VEC(triple) triples;
    names_vec entities, relations;
} loader;

static int32_t intern(hmap *m, arena *a, names_vec *names, const char *s) {
    int64_t i;
    size_t n = strlen(s);
    if (hmap_get(m, s, n, &i)) return (int32_t)i;
    vec_push(names, arena_strndup(a, s, n));
    hmap_put(m, s, n, (int64_t)names->len - 1);
    return (int32_t)names->len - 1;
}

static int on_triple(void *ctx, const char *h, const char *r, const char *t) {
    loader *l = ctx;
    kg_graph *g = l->g;
    triple x = {intern(&g->entity_index, &g->strings, &l->entities, h),
                intern(&g->relation_index, &g->strings, &l->relations, r),
                intern(&g->entity_index, &g->strings, &l->entities, t)};
    vec_push(&l->triples, x);
    return 0;
}

typedef struct link {
    int32_t e;
    char *item;
} link;

typedef struct link_loader {
    loader *l;
    VEC(link) links;
} link_loader;

static int on_link(void *ctx, const char *entity, const char *item) {
    link_loader *ll = ctx;
    kg_graph *g = ll->l->g;
    link k = {intern(&g->entity_index, &g->strings, &ll->l->entities, entity), arena_strdup(&g->strings, item)};
    vec_push(&ll->links, k);
    return 0;
}

int kg_load(store *s, kg_graph *g, tailor_error *err) {
    memset(g, 0, sizeof *g);
    hmap_init(&g->entity_index, 1024);
    hmap_init(&g->relation_index, 64);
    hmap_init(&g->item_entity, 1024);
    arena_init(&g->strings, 0);
    loader l = {.g = g};
    link_loader ll = {.l = &l};
    int rc = store_kg_each(s, on_triple, &l, err);
    if (!rc) rc = store_kg_links_each(s, on_link, &ll, err);
    if (rc) {
        vec_free(&l.triples);
        vec_free(&l.entities);
        vec_free(&l.relations);
        vec_free(&ll.links);
        kg_deinit(g);
        return rc;
    }
    g->n_entities = (int32_t)l.entities.len;
    g->n_relations = (int32_t)l.relations.len;
    g->n_triples = (int64_t)l.triples.len;
    g->entity = l.entities.data;
    g->relation = l.relations.data;
    /* CSR over both directions: count, offsets, fill. */
    g->adj_ptr = xcalloc((size_t)g->n_entities + 1, sizeof *g->adj_ptr);
    for (size_t i = 0; i < l.triples.len; i++) g->adj_ptr[l.triples.data[i].h + 1]++, g->adj_ptr[l.triples.data[i].t + 1]++;
    for (int32_t e = 0; e < g->n_entities; e++) g->adj_ptr[e + 1] += g->adj_ptr[e];
    g->adj = xmalloc(((size_t)g->adj_ptr[g->n_entities] + 1) * sizeof *g->adj);
    int64_t *fill = xmalloc(((size_t)g->n_entities + 1) * sizeof *fill);
    memcpy(fill, g->adj_ptr, ((size_t)g->n_entities + 1) * sizeof *fill);
    for (size_t i = 0; i < l.triples.len; i++) {
        const triple *x = &l.triples.data[i];
        g->adj[fill[x->h]++] = (kg_edge){x->t, x->r, false};
        g->adj[fill[x->t]++] = (kg_edge){x->h, x->r, true};
    }
    free(fill);
    g->item = xcalloc((size_t)g->n_entities + 1, sizeof *g->item);
    for (size_t i = 0; i < ll.links.len; i++) {
        g->item[ll.links.data[i].e] = ll.links.data[i].item;
        hmap_put(&g->item_entity, ll.links.data[i].item, strlen(ll.links.data[i].item), ll.links.data[i].e);
    }
    vec_free(&l.triples);
    vec_free(&ll.links);
    return 0;
}

void kg_deinit(kg_graph *g) {
    free(g->entity);
    free(g->relation);
    free(g->adj_ptr);
    free(g->adj);
    free(g->item);
    hmap_deinit(&g->entity_index);
    hmap_deinit(&g->relation_index);
    hmap_deinit(&g->item_entity);
    arena_deinit(&g->strings);
    memset(g, 0, sizeof *g);
}

static int32_t lookup(const hmap *m, const char *name) {
    int64_t i;
    return name && hmap_get(m, name, strlen(name), &i) ? (int32_t)i : -1;
}

int32_t kg_entity(const kg_graph *g, const char *name) { return lookup(&g->entity_index, name); }
int32_t kg_relation(const kg_graph *g, const char *name) { return lookup(&g->relation_index, name); }
int32_t kg_item_entity(const kg_graph *g, const char *item_ext) { return lookup(&g->item_entity, item_ext); }

/* ---- paths ------------------------------------------------------------------- */

kg_path_params kg_path_default_params(void) { return (kg_path_params){.max_hops = 3, .max_paths = 5, .per_target = 2}; }

typedef VEC(int32_t) int32_vec;

/* Up to two ways a node was first reached (its shortest paths). */
typedef struct parent {
    int32_t node, rel;
    bool inverse;
} parent;

typedef struct search {
    const kg_graph *g;
    int8_t *dist;
    parent (*par)[2];
    uint8_t *npar;
    VEC(kg_path) found;
} search;

/* Walks back from node at depth d, filling p from the end; one path per
 * combination of parents, at most budget. */
static void unwind(search *s, int32_t node, int d, kg_path *p, int *budget) {
    if (*budget <= 0) return;
    p->node[d] = node;
    if (d == 0) {
        double w = 1.0 / p->hops;
        for (int i = 1; i < p->hops; i++) w /= log2(2.0 + (double)kg_degree(s->g, p->node[i]));
        p->weight = w;
        vec_push(&s->found, *p);
        (*budget)--;
        return;
    }
    for (int k = 0; k < s->npar[node] && *budget > 0; k++) {
        const parent *q = &s->par[node][k];
        p->rel[d - 1] = q->rel;
        p->inverse[d - 1] = q->inverse;
        unwind(s, q->node, d - 1, p, budget);
    }
}

static int by_weight(const void *a, const void *b) {
    const kg_path *x = a, *y = b;
    if (x->weight != y->weight) return x->weight > y->weight ? -1 : 1;
    return x->node[x->hops] - y->node[y->hops];
}

int kg_paths(const kg_graph *g, int32_t from, const int32_t *targets, size_t n_targets, kg_path_params p,
             kg_path *out, int *n) {
    *n = 0;
    if (from < 0 || from >= g->n_entities) return TAILOR_ENOTFOUND;
    int hops = p.max_hops < 1 ? 1 : p.max_hops > KG_MAX_HOPS ? KG_MAX_HOPS : p.max_hops;
    search s = {.g = g};
    s.dist = xmalloc((size_t)g->n_entities);
    memset(s.dist, -1, (size_t)g->n_entities);
    s.par = xmalloc((size_t)g->n_entities * sizeof *s.par);
    s.npar = xcalloc((size_t)g->n_entities, 1);
    int32_vec cur = {0}, next = {0};
    s.dist[from] = 0;
    vec_push(&cur, from);
    for (int d = 1; d <= hops && cur.len; d++) {
        next.len = 0;
        for (size_t i = 0; i < cur.len; i++) {
            int32_t u = cur.data[i];
            for (int64_t k = g->adj_ptr[u]; k < g->adj_ptr[u + 1]; k++) {
                const kg_edge *e = &g->adj[k];
                if (s.dist[e->to] == -1) {
                    s.dist[e->to] = (int8_t)d;
                    vec_push(&next, e->to);
                }
                if (s.dist[e->to] == d && s.npar[e->to] < 2) s.par[e->to][s.npar[e->to]++] = (parent){u, e->rel, e->inverse};
            }
        }
        int32_vec t = cur;
        cur = next;
        next = t;
    }
    for (size_t i = 0; i < n_targets; i++) {
        int32_t t = targets[i];
        if (t < 0 || t >= g->n_entities || t == from || s.dist[t] <= 0) continue;
        kg_path path = {.hops = s.dist[t]};
        int budget = p.per_target > 0 ? p.per_target : 2;
        unwind(&s, t, path.hops, &path, &budget);
    }
    if (s.found.len) qsort(s.found.data, s.found.len, sizeof *s.found.data, by_weight);
    int max = p.max_paths > 0 ? p.max_paths : 5;
    for (size_t i = 0; i < s.found.len && *n < max; i++) out[(*n)++] = s.found.data[i];
    vec_free(&s.found);
    vec_free(&cur);
    vec_free(&next);
    free(s.dist);
    free(s.par);
    free(s.npar);
    return 0;
}

/* An item by its title (or its id), any other entity by its name. */
static void node_text(const kg_graph *g, int32_t e, kg_title_fn title, void *ctx, sb *out) {
    const char *t = g->item[e] && title ? title(ctx, g->item[e]) : NULL;
    if (!t && g->item[e] && title) t = g->item[e];
    sb_puts(out, t ? t : g->entity[e]);
}

void kg_path_text(const kg_graph *g, const kg_path *p, kg_title_fn title, void *ctx, sb *out) {
    node_text(g, p->node[0], title, ctx, out);
    for (int i = 0; i < p->hops; i++) {
        sb_printf(out, p->inverse[i] ? " <-%s- " : " -%s-> ", g->relation[p->rel[i]]);
        node_text(g, p->node[i + 1], title, ctx, out);
    }
}

/* ---- for recommenders --------------------------------------------------------- */

void kg_rec_graph_init(const kg_graph *g, char *const *item_ext, int32_t n_items, kg_rec_graph *out) {
    memset(out, 0, sizeof *out);
    int64_t n = g->adj_ptr ? g->adj_ptr[g->n_entities] : 0;
    out->ptr = xmalloc(((size_t)g->n_entities + 1) * sizeof *out->ptr);
    out->to = xmalloc(((size_t)n + 1) * sizeof *out->to);
    out->rel = xmalloc(((size_t)n + 1) * sizeof *out->rel);
    out->item_entity = xmalloc(((size_t)n_items + 1) * sizeof *out->item_entity);
    if (g->n_entities) memcpy(out->ptr, g->adj_ptr, ((size_t)g->n_entities + 1) * sizeof *out->ptr);
    else out->ptr[0] = 0;
    for (int64_t k = 0; k < n; k++) out->to[k] = g->adj[k].to, out->rel[k] = g->adj[k].rel;
    for (int32_t i = 0; i < n_items; i++) out->item_entity[i] = kg_item_entity(g, item_ext[i]);
    out->g = (rec_graph){.n_entities = g->n_entities, .n_relations = g->n_relations, .ptr = out->ptr, .to = out->to,
                         .rel = out->rel, .item_entity = out->item_entity};
}

void kg_rec_graph_free(kg_rec_graph *r) {
    free(r->ptr);
    free(r->to);
    free(r->rel);
    free(r->item_entity);
    memset(r, 0, sizeof *r);
}

int kg_rec_graph_load(store *s, const rec_kind *kind, char *const *item_ext, int32_t n_items, kg_rec_graph *out,
                      tailor_error *err) {
    memset(out, 0, sizeof *out);
    if (!kind->needs_graph) return 0;
    kg_graph g;
    int rc = kg_load(s, &g, err);
    if (rc) return rc;
    if (g.n_triples) kg_rec_graph_init(&g, item_ext, n_items, out);
    kg_deinit(&g);
    return 0;
}

void kg_triples(const kg_graph *g, kg_triple **out, size_t *n) {
    *out = xmalloc(((size_t)g->n_triples + 1) * sizeof **out);
    *n = 0;
    for (int32_t e = 0; e < g->n_entities; e++)
        for (int64_t k = g->adj_ptr[e]; k < g->adj_ptr[e + 1]; k++)
            if (!g->adj[k].inverse) (*out)[(*n)++] = (kg_triple){e, g->adj[k].rel, g->adj[k].to};
}

unsigned char *kg_relation_range(const kg_graph *g, int32_t r) {
    unsigned char *in = xcalloc((size_t)g->n_entities + 1, 1);
    for (int32_t e = 0; e < g->n_entities; e++)
        for (int64_t k = g->adj_ptr[e]; k < g->adj_ptr[e + 1]; k++)
            if (!g->adj[k].inverse && g->adj[k].rel == r) in[g->adj[k].to] = 1;
    return in;
}

/* ---- items described by their neighbours ------------------------------------ */

double *kg_neighbour_idf(const kg_graph *g) {
    double *idf = xcalloc((size_t)g->n_entities + 1, sizeof *idf);
    int64_t linked = 0;
    for (int32_t e = 0; e < g->n_entities; e++) {
        if (!g->item[e]) continue;
        linked++;
        for (int64_t a = g->adj_ptr[e]; a < g->adj_ptr[e + 1]; a++) idf[g->adj[a].to] += 1;
    }
    for (int32_t e = 0; e < g->n_entities; e++) idf[e] = idf[e] > 0 ? log((double)linked / idf[e]) : 0;
    return idf;
}

void kg_profile_add(const kg_graph *g, const double *idf, int32_t item_entity, double *profile) {
    if (item_entity < 0) return;
    for (int64_t a = g->adj_ptr[item_entity]; a < g->adj_ptr[item_entity + 1]; a++)
        profile[g->adj[a].to] += idf[g->adj[a].to];
}

void kg_profile_clear(const kg_graph *g, int32_t item_entity, double *profile) {
    if (item_entity < 0) return;
    for (int64_t a = g->adj_ptr[item_entity]; a < g->adj_ptr[item_entity + 1]; a++) profile[g->adj[a].to] = 0;
}

double kg_profile_score(const kg_graph *g, const double *idf, int32_t item_entity, const double *profile) {
    if (item_entity < 0) return 0;
    double s = 0, norm = 0;
    for (int64_t a = g->adj_ptr[item_entity]; a < g->adj_ptr[item_entity + 1]; a++) {
        double w = idf[g->adj[a].to];
        s += w * profile[g->adj[a].to], norm += w * w;
    }
    return norm > 0 ? s / sqrt(norm) : 0;
}
