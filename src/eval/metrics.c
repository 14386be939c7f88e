/* metrics.c — ranking metrics of one list, summary statistics, and the
 * paired comparison. Relevance is binary; a list shorter than K counts its
 * missing places as misses. */
#include <math.h>
#include <stdlib.h>

#include "eval/eval.h"

const char *const eval_metric_names[EVAL_M_PER_USER] = {"hr", "recall", "precision", "ndcg", "mrr", "map"};

static bool is_target(int32_t item, const int32_t *targets, int nt) {
    for (int t = 0; t < nt; t++)
        if (targets[t] == item) return true;
    return false;
}

void eval_user_metrics(const int32_t *ranked, int n, const int32_t *targets, int nt, int k,
                       double *out) {
    for (int m = 0; m < EVAL_M_PER_USER; m++) out[m] = 0;
    if (nt <= 0 || k <= 0) return;
    int depth = n < k ? n : k, hits = 0;
    double dcg = 0, ap = 0, rr = 0;
    for (int r = 0; r < depth; r++) {
        if (!is_target(ranked[r], targets, nt)) continue;
        hits++;
        dcg += 1.0 / log2(r + 2.0);
        ap += (double)hits / (r + 1);
        if (rr == 0) rr = 1.0 / (r + 1);
    }
    int ideal_n = nt < k ? nt : k;
    double idcg = 0;
    for (int r = 0; r < ideal_n; r++) idcg += 1.0 / log2(r + 2.0);
    out[EVAL_M_HR] = hits > 0;
    out[EVAL_M_RECALL] = (double)hits / nt;
    out[EVAL_M_PRECISION] = (double)hits / k;
    out[EVAL_M_NDCG] = dcg / idcg;
    out[EVAL_M_MRR] = rr;
    out[EVAL_M_MAP] = ap / ideal_n;
}

double eval_t975(int64_t df) {
    static const double t[30] = {12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
                                 2.201,  2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
                                 2.080,  2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042};
    if (df < 1) return INFINITY;
    if (df <= 30) return t[df - 1];
    /* Cornish-Fisher expansion around the normal quantile: within 1e-4
     * of the exact value from 30 degrees of freedom on. */
    double z = 1.959964, z3 = z * z * z, z5 = z3 * z * z, d = (double)df;
    return z + (z3 + z) / (4 * d) + (5 * z5 + 16 * z3 + 3 * z) / (96 * d * d);
}

/* Mean and t interval, unclipped. */
static eval_stat stat_t(const double *v, int64_t n) {
    eval_stat s = {0, 0, 0, n};
    if (n <= 0) return s;
    double sum = 0;
    for (int64_t i = 0; i < n; i++) sum += v[i];
    s.mean = sum / (double)n;
    double ss = 0;
    for (int64_t i = 0; i < n; i++) ss += (v[i] - s.mean) * (v[i] - s.mean);
    double half = n > 1 ? eval_t975(n - 1) * sqrt(ss / (double)(n - 1) / (double)n) : 0;
    s.lo = s.mean - half;
    s.hi = s.mean + half;
    return s;
}

eval_stat eval_stat_of(const double *v, int64_t n) {
    eval_stat s = stat_t(v, n);
    if (n <= 0) return s;
    bool binary = true;
    for (int64_t i = 0; i < n && binary; i++) binary = v[i] == 0 || v[i] == 1;
    if (binary) {
        double z = 1.959964, nn = (double)n, p = s.mean;
        double mid = (p + z * z / (2 * nn)) / (1 + z * z / nn);
        double half = z / (1 + z * z / nn) * sqrt(p * (1 - p) / nn + z * z / (4 * nn * nn));
        s.lo = mid - half;
        s.hi = mid + half;
    }
    if (s.lo < 0) s.lo = 0;
    if (s.hi > 1) s.hi = 1;
    return s;
}

eval_paired eval_paired_test(const double *a, const double *b, int64_t n) {
    eval_paired p = {0, 0, 0, 1, n};
    if (n <= 1) return p;
    double *d = xmalloc((size_t)n * sizeof *d);
    for (int64_t i = 0; i < n; i++) d[i] = a[i] - b[i];
    eval_stat s = stat_t(d, n);
    free(d);
    p.diff = s.mean, p.lo = s.lo, p.hi = s.hi;
    double se = (s.hi - s.mean) / eval_t975(n - 1);
    if (se > 0) p.p_value = erfc(fabs(s.mean / se) / sqrt(2.0));
    else p.p_value = s.mean == 0 ? 1.0 : 0.0;
    return p;
}
