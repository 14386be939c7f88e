/* serve.c — serving latency of trained models on a store: median and 99th
 * percentile time of one top-10 (all items scored, history excluded) over
 * 1000 users, and the time to recommend for every user with 1 and 2
 * threads.  usage: serve DB [MODEL ...]   (default: pop itemknn als ease) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rec/rec.h"
#include "store/store.h"

typedef struct all_job {
    const rec_model *m;
    const store_view *v;
} all_job;

static void all_users(void *ctx, size_t b, size_t e, int thread) {
    all_job *j = ctx;
    float *scratch = malloc((size_t)j->m->n_items * sizeof *scratch);
    int32_t items[10];
    float scores[10];
    rec_topk_params tp = {.k = 10, .exclude_history = true};
    for (size_t u = b; u < e; u++) {
        int64_t s = j->v->indptr[u], n = j->v->indptr[u + 1] - s;
        rec_topk(j->m, (int32_t)u, j->v->indices + s, j->v->values + s, (size_t)n, tp, items, scores, scratch);
    }
    free(scratch);
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: serve DB [MODEL ...]\n");
        return 64;
    }
    store *s;
    tailor_error err = {0};
    if (store_open(argv[1], store_default_params(), &s, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    store_view v;
    if (store_view_build(s, store_view_default_params(), &v, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    const char *def[] = {"pop", "itemknn", "als", "ease"};
    int nm = argc > 2 ? argc - 2 : 4;
    printf("| model | items | top-10, one user: median ms | p99 ms | all %d users, 1 thread s | 2 threads s |\n",
           v.n_users);
    printf("|---|---:|---:|---:|---:|---:|\n");
    pool *p1 = pool_new(1), *p2 = pool_new(2);
    for (int mi = 0; mi < nm; mi++) {
        const char *name = argc > 2 ? argv[2 + mi] : def[mi];
        rec_model *m;
        rec_params params = {0};
        if (!strcmp(name, "itemknn")) rec_params_set(&params, "k", "100");
        if (rec_model_new(rec_kind_find(name), &params, &m, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        m->quiet = true;
        m->pool = p2;
        rec_data d = {v.n_users, v.n_items, v.indptr, v.indices, v.values, v.times, NULL};
        if (rec_model_fit(m, &d, v.user_ext, v.item_ext, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        enum { N = 1000 };
        double t[N];
        rng g;
        rng_seed(&g, 7);
        int32_t items[10];
        float scores[10];
        rec_topk_params tp = {.k = 10, .exclude_history = true};
        for (int r = 0; r < N; r++) {
            int32_t u = (int32_t)rng_below(&g, (uint64_t)v.n_users);
            int64_t st = v.indptr[u], n = v.indptr[u + 1] - st;
            uint64_t t0 = timer_now_ns();
            rec_topk(m, u, v.indices + st, v.values + st, (size_t)n, tp, items, scores, NULL);
            t[r] = timer_seconds_since(t0) * 1e3;
        }
        qsort(t, N, sizeof t[0], cmp_d);
        all_job job = {m, &v};
        uint64_t t0 = timer_now_ns();
        pool_for(p1, (size_t)v.n_users, all_users, &job);
        double a1 = timer_seconds_since(t0);
        t0 = timer_now_ns();
        pool_for(p2, (size_t)v.n_users, all_users, &job);
        double a2 = timer_seconds_since(t0);
        printf("| %s | %d | %.3f | %.3f | %.2f | %.2f |\n", name, v.n_items, t[N / 2], t[N * 99 / 100], a1, a2);
        rec_model_free(m);
    }
    pool_free(p1);
    pool_free(p2);
    store_view_deinit(&v);
    store_close(s);
    return 0;
}
