/* kg.c — time of a path search of up to 3 hops from one item to the items
 * of a user's history (what an explanation costs), over random (item,
 * user) pairs: p50, p99 and max in ms, and how many found a path.
 * usage: bench_kg DB [PAIRS]   (a store with a graph: tailor import kg) */
#include <stdio.h>
#include <stdlib.h>

#include "know/know.h"

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_kg DB [PAIRS]\n");
        return 64;
    }
    int pairs = argc > 2 ? atoi(argv[2]) : 10000;
    store *s;
    tailor_error err = {0};
    if (store_open(argv[1], store_default_params(), &s, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 66;
    }
    kg_graph g;
    store_view v;
    if (kg_load(s, &g, &err) || store_view_build(s, store_view_default_params(), &v, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 74;
    }
    /* Each user's items that are graph entities. */
    int32_t **hist = calloc((size_t)v.n_users, sizeof *hist);
    int *nh = calloc((size_t)v.n_users, sizeof *nh);
    int32_t *items = malloc((size_t)g.n_entities * sizeof *items);
    int n_items = 0;
    for (int32_t e = 0; e < g.n_entities; e++)
        if (g.item[e]) items[n_items++] = e;
    for (int32_t u = 0; u < v.n_users; u++) {
        hist[u] = malloc((size_t)(v.indptr[u + 1] - v.indptr[u] + 1) * sizeof **hist);
        for (int64_t k = v.indptr[u]; k < v.indptr[u + 1]; k++) {
            int32_t e = kg_item_entity(&g, v.item_ext[v.indices[k]]);
            if (e >= 0) hist[u][nh[u]++] = e;
        }
    }
    rng r;
    rng_seed(&r, 42);
    double *ms = malloc((size_t)pairs * sizeof *ms);
    int found = 0;
    kg_path out[5];
    kg_path_params p = kg_path_default_params();
    for (int i = 0; i < pairs; i++) {
        int32_t from = items[rng_below(&r, (uint64_t)n_items)], u = (int32_t)rng_below(&r, (uint64_t)v.n_users);
        int n;
        uint64_t t0 = timer_now_ns();
        kg_paths(&g, from, hist[u], (size_t)nh[u], p, out, &n);
        ms[i] = timer_seconds_since(t0) * 1000;
        found += n > 0;
    }
    qsort(ms, (size_t)pairs, sizeof *ms, cmp_d);
    printf("graph: %lld triples, %d entities (%d items); %d random (item, user) pairs, paths of up to 3 hops\n",
           (long long)g.n_triples, g.n_entities, n_items, pairs);
    printf("p50 %.3f ms, p99 %.3f ms, max %.3f ms; %d pairs (%.1f%%) connected\n", ms[pairs / 2],
           ms[(int)(pairs * 0.99)], ms[pairs - 1], found, 100.0 * found / pairs);
    for (int32_t u = 0; u < v.n_users; u++) free(hist[u]);
    free(hist);
    free(nh);
    free(items);
    free(ms);
    store_view_deinit(&v);
    kg_deinit(&g);
    store_close(s);
    return 0;
}
