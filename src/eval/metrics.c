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

eval_stat eval_stat_of(const double *v, int64_t n) {
    eval_stat s = {0, 0, 0, n};
    if (n <= 0) return s;
    double sum = 0;
    for (int64_t i = 0; i < n; i++) sum += v[i];
    s.mean = sum / (double)n;
    double ss = 0;
    for (int64_t i = 0; i < n; i++) ss += (v[i] - s.mean) * (v[i] - s.mean);
    double se = n > 1 ? sqrt(ss / (double)(n - 1) / (double)n) : 0;
    s.lo = s.mean - 1.959964 * se;
    s.hi = s.mean + 1.959964 * se;
    return s;
}

eval_paired eval_paired_test(const double *a, const double *b, int64_t n) {
    eval_paired p = {0, 0, 0, 1, n};
    if (n <= 1) return p;
    double *d = xmalloc((size_t)n * sizeof *d);
    for (int64_t i = 0; i < n; i++) d[i] = a[i] - b[i];
    eval_stat s = eval_stat_of(d, n);
    free(d);
    p.diff = s.mean, p.lo = s.lo, p.hi = s.hi;
    double se = (s.hi - s.mean) / 1.959964;
    if (se > 0) p.p_value = erfc(fabs(s.mean / se) / sqrt(2.0));
    else p.p_value = s.mean == 0 ? 1.0 : 0.0;
    return p;
}
