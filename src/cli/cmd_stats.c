/* cmd_stats.c — `tailor stats`: what is in the store, and the shape of the
 * interaction data (density, sequence lengths, item popularity). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"

typedef struct dist {
    int64_t min, p25, median, p75, p90, p99, max;
    double mean;
} dist;

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Sorts v in place and returns its distribution (nearest-rank quantiles). */
static dist distribution(int64_t *v, size_t n) {
    dist d = {0};
    if (!n) return d;
    qsort(v, n, sizeof *v, cmp_i64);
    double sum = 0;
    for (size_t i = 0; i < n; i++) sum += (double)v[i];
#define Q(p) v[(size_t)ceil((p) * (double)n) > 0 ? (size_t)ceil((p) * (double)n) - 1 : 0]
    d = (dist){v[0], Q(0.25), Q(0.5), Q(0.75), Q(0.9), Q(0.99), v[n - 1], sum / (double)n};
#undef Q
    return d;
}

/* Share of all events that go to the most popular fraction of items
 * (v sorted ascending), and the Gini coefficient of the counts. */
static double top_share(const int64_t *v, size_t n, double frac, double total) {
    size_t k = (size_t)ceil(frac * (double)n);
    double s = 0;
    for (size_t i = 0; i < k && i < n; i++) s += (double)v[n - 1 - i];
    return total > 0 ? s / total : 0;
}

static double gini(const int64_t *v, size_t n) {
    double num = 0, sum = 0;
    for (size_t i = 0; i < n; i++) {
        num += (double)(2 * (int64_t)(i + 1) - (int64_t)n - 1) * (double)v[i];
        sum += (double)v[i];
    }
    return sum > 0 && n > 0 ? num / ((double)n * sum) : 0;
}

static void print_dist(const char *label, const dist *d) {
    printf("%-26s min %lld  p25 %lld  median %lld  p75 %lld  p90 %lld  p99 %lld  max %lld  mean %.1f\n",
           label, (long long)d->min, (long long)d->p25, (long long)d->median, (long long)d->p75,
           (long long)d->p90, (long long)d->p99, (long long)d->max, d->mean);
}

static void json_dist(const char *key, const dist *d, bool comma) {
    printf("\"%s\":{\"min\":%lld,\"p25\":%lld,\"median\":%lld,\"p75\":%lld,\"p90\":%lld,"
           "\"p99\":%lld,\"max\":%lld,\"mean\":%.4f}%s",
           key, (long long)d->min, (long long)d->p25, (long long)d->median, (long long)d->p75,
           (long long)d->p90, (long long)d->p99, (long long)d->max, d->mean, comma ? "," : "");
}

int cmd_stats(cli_args *a) {
    int code;
    store *s = cli_open_store(a, true, &code);
    if (!s) return code;
    tailor_error err = {0};
    tailor_store_counts c;
    store_view v;
    store_view_params vp = store_view_default_params();
    vp.kind = cli_opt_get(a, "kind");
    if (store_counts(s, &c, &err) || store_view_build(s, vp, &v, &err)) {
        store_close(s);
        return cli_fail(&err);
    }
    size_t nu = (size_t)v.n_users, ni = (size_t)v.n_items;
    int64_t *seq = xmalloc((nu ? nu : 1) * sizeof *seq);
    int64_t *pop = xcalloc(ni ? ni : 1, sizeof *pop);
    for (size_t u = 0; u < nu; u++) seq[u] = v.seq_ptr[u + 1] - v.seq_ptr[u];
    for (int64_t k = 0; k < v.n_events; k++) pop[v.seq_items[k]]++;
    size_t cold_items = 0, cold_users = 0;
    for (size_t i = 0; i < ni; i++) cold_items += pop[i] == 0;
    for (size_t u = 0; u < nu; u++) cold_users += seq[u] == 0;
    dist ds = distribution(seq, nu), dp = distribution(pop, ni);
    double total = (double)v.n_events;
    double density = nu && ni ? (double)v.nnz / ((double)nu * (double)ni) : 0;
    double top1 = top_share(pop, ni, 0.01, total), top10 = top_share(pop, ni, 0.10, total);
    double g = gini(pop, ni);
    if (cli_flag(a, "json")) {
        printf("{\"database\":\"%s\",\"schema_version\":%d,\"users\":%lld,\"items\":%lld,"
               "\"events\":%lld,\"tags\":%lld,\"kg_triples\":%lld,\"models\":%lld,"
               "\"view_events\":%lld,\"pairs\":%lld,\"density\":%.8f,"
               "\"users_without_events\":%zu,\"items_without_events\":%zu,",
               a->db_path, store_schema_version(s), (long long)c.users, (long long)c.items,
               (long long)c.events, (long long)c.tags, (long long)c.kg_triples,
               (long long)c.models, (long long)v.n_events, (long long)v.nnz, density, cold_users,
               cold_items);
        json_dist("sequence_length", &ds, true);
        json_dist("item_popularity", &dp, true);
        printf("\"top1_share\":%.6f,\"top10_share\":%.6f,\"gini\":%.6f}\n", top1, top10, g);
    } else {
        printf("database %s (schema version %d)\n", a->db_path, store_schema_version(s));
        printf("users      %lld\nitems      %lld\nevents     %lld\ntags       %lld\n"
               "kg triples %lld\nmodels     %lld\n",
               (long long)c.users, (long long)c.items, (long long)c.events, (long long)c.tags,
               (long long)c.kg_triples, (long long)c.models);
        if (vp.kind) printf("\nevents of kind '%s': %lld\n", vp.kind, (long long)v.n_events);
        printf("\ndensity    %.4f%% (%lld distinct user-item pairs of %zu x %zu)\n", 100 * density,
               (long long)v.nnz, nu, ni);
        print_dist("events per user:", &ds);
        print_dist("events per item:", &dp);
        printf("users without events: %zu; items without events: %zu\n", cold_users, cold_items);
        printf("popularity: top 1%% of items get %.1f%% of events, top 10%% get %.1f%%; Gini %.3f\n",
               100 * top1, 100 * top10, g);
    }
    free(seq);
    free(pop);
    store_view_deinit(&v);
    store_close(s);
    return EX_OK;
}
