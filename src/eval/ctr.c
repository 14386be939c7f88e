/* ctr.c — the click-through-rate protocol of the knowledge-graph papers
 * (RippleNet, KGCN): every interaction is a positive row (user, item, 1);
 * each user gets as many negative rows (user, item, 0), items drawn
 * uniformly from those they lack; all rows are split 6:2:2 at random into
 * training, validation and test. Models train on the training positives
 * (each draws its own negatives, as it does in any protocol) and score the
 * test rows: AUC, and F1 at the threshold that is best on the validation
 * rows. When the store has a knowledge graph, the items are those linked to
 * it (the papers keep only items of the graph). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eval/eval.h"

void eval_ctr_split_free(eval_ctr_split *s) {
    eval_csr_free(&s->train);
    free(s->valid);
    free(s->test);
    free(s->user_ext);
    free(s->item_ext);
    kg_rec_graph_free(&s->graph);
    arena_deinit(&s->strings);
    memset(s, 0, sizeof *s);
}

static int cmp_row(const void *a, const void *b) {
    const eval_ctr_row *x = a, *y = b;
    return x->u != y->u ? (x->u > y->u ? 1 : -1) : (x->i > y->i) - (x->i < y->i);
}

int eval_ctr_split_build(const store_view *v, const kg_graph *g, uint64_t seed, eval_ctr_split *out,
                         tailor_error *err) {
    memset(out, 0, sizeof *out);
    arena_init(&out->strings, 0);
    /* Items: the graph's when there is one. */
    int32_t *item_new = xmalloc(((size_t)v->n_items + 1) * sizeof *item_new), ni = 0;
    for (int32_t i = 0; i < v->n_items; i++)
        item_new[i] = !g || !g->n_triples || kg_item_entity(g, v->item_ext[i]) >= 0 ? ni++ : -1;
    out->graph_items = g && g->n_triples;
    out->n_items = ni;
    out->item_ext = xmalloc(((size_t)ni + 1) * sizeof *out->item_ext);
    for (int32_t i = 0; i < v->n_items; i++)
        if (item_new[i] >= 0) out->item_ext[item_new[i]] = arena_strdup(&out->strings, v->item_ext[i]);
    rng r;
    rng_seed(&r, seed);
    VEC(eval_ctr_row) rows = {0};
    VEC(char *) users = {0};
    unsigned char *mark = xcalloc((size_t)ni + 1, 1);
    int32_t *pos = xmalloc(((size_t)ni + 1) * sizeof *pos);
    for (int32_t u = 0; u < v->n_users; u++) {
        int np = 0;
        for (int64_t k = v->indptr[u]; k < v->indptr[u + 1]; k++) {
            int32_t i = item_new[v->indices[k]];
            if (i >= 0 && !mark[i]) mark[i] = 1, pos[np++] = i;
        }
        if (np) {
            int32_t uu = (int32_t)users.len;
            vec_push(&users, arena_strdup(&out->strings, v->user_ext[u]));
            for (int k = 0; k < np; k++) vec_push(&rows, ((eval_ctr_row){uu, pos[k], 1}));
            /* As many negatives, distinct, among the items the user lacks. */
            int want = np < ni - np ? np : ni - np, got = 0;
            for (int tries = 0; got < want && tries < 100 * want + 1000; tries++) {
                int32_t c = (int32_t)rng_below(&r, (uint64_t)ni);
                if (mark[c]) continue;
                mark[c] = 2;
                vec_push(&rows, ((eval_ctr_row){uu, c, 0}));
                got++;
                out->n_neg++;
            }
            out->n_pos += np;
        }
        for (int64_t k = v->indptr[u]; k < v->indptr[u + 1]; k++)
            if (item_new[v->indices[k]] >= 0) mark[item_new[v->indices[k]]] = 0;
        for (size_t k = rows.len; k > 0 && rows.data[k - 1].u == (int32_t)users.len - 1; k--) mark[rows.data[k - 1].i] = 0;
    }
    free(mark);
    free(pos);
    free(item_new);
    out->n_users = (int32_t)users.len;
    out->user_ext = users.data;
    if (!rows.len) {
        vec_free(&rows);
        eval_ctr_split_free(out);
        return err_set(err, TAILOR_EINVAL, "ctr protocol: no interaction with an item%s", g && g->n_triples ? " of the graph" : "");
    }
    /* Shuffle, then 6:2:2. */
    for (size_t k = rows.len; k > 1; k--) {
        size_t j = (size_t)rng_below(&r, k);
        eval_ctr_row t = rows.data[k - 1];
        rows.data[k - 1] = rows.data[j];
        rows.data[j] = t;
    }
    size_t n = rows.len, n_train = n * 6 / 10, n_valid = n * 2 / 10;
    out->n_valid = n_valid;
    out->n_test = n - n_train - n_valid;
    out->valid = xmalloc((n_valid + 1) * sizeof *out->valid);
    out->test = xmalloc((out->n_test + 1) * sizeof *out->test);
    memcpy(out->valid, rows.data + n_train, n_valid * sizeof *out->valid);
    memcpy(out->test, rows.data + n_train + n_valid, out->n_test * sizeof *out->test);
    /* Training positives as a CSR matrix (users in order, items sorted). */
    qsort(rows.data, n_train, sizeof *rows.data, cmp_row);
    eval_csr *t = &out->train;
    t->n_rows = out->n_users;
    t->ptr = xcalloc((size_t)out->n_users + 1, sizeof *t->ptr);
    t->idx = xmalloc((n_train + 1) * sizeof *t->idx);
    t->val = xmalloc((n_train + 1) * sizeof *t->val);
    t->ts = xcalloc(n_train + 1, sizeof *t->ts);
    int64_t nnz = 0;
    for (size_t k = 0; k < n_train; k++)
        if (rows.data[k].y) {
            t->idx[nnz] = rows.data[k].i;
            t->val[nnz] = 1;
            t->ts[nnz] = nnz;
            nnz++;
            t->ptr[rows.data[k].u + 1]++;
        }
    for (int32_t u = 0; u < out->n_users; u++) t->ptr[u + 1] += t->ptr[u];
    out->n_train = (int64_t)n_train;
    vec_free(&rows);
    if (g && g->n_triples) kg_rec_graph_init(g, out->item_ext, out->n_items, &out->graph);
    return 0;
}

void eval_ctr_describe(const eval_ctr_split *s, uint64_t seed, sb *out) {
    sb_printf(out,
              "CTR: %lld positives and %lld sampled negatives (as many per user), rows split 60/20/20 at random "
              "(seed %llu); AUC and F1 on the %zu test rows, F1 at the threshold best on the %zu validation rows; "
              "items: %d%s",
              (long long)s->n_pos, (long long)s->n_neg, (unsigned long long)seed, s->n_test, s->n_valid, s->n_items,
              s->graph_items ? " linked to the knowledge graph" : "");
}

/* ---- scoring and metrics ----------------------------------------------------- */

typedef struct ctr_job {
    const rec_model *m;
    const eval_ctr_split *s;
    const eval_ctr_row *rows;
    const size_t *first; /* rows sorted by user: first row of each user (n_users + 1) */
    float *scores;       /* per row */
    double *recall;      /* per user: recall@10, recall@50 (NAN: no test positive); NULL: not wanted */
} ctr_job;

static void ctr_users(void *ctx, size_t b, size_t e, int thread) {
    (void)thread;
    ctr_job *j = ctx;
    float *all = xmalloc(((size_t)j->s->n_items + 1) * sizeof *all);
    const eval_csr *t = &j->s->train;
    for (size_t u = b; u < e; u++) {
        if (j->first[u] == j->first[u + 1]) continue;
        int64_t lo = t->ptr[u], n = t->ptr[u + 1] - lo;
        j->m->kind->score(j->m, (int32_t)u, t->idx + lo, t->val + lo, (size_t)n, all);
        for (size_t k = j->first[u]; k < j->first[u + 1]; k++) j->scores[k] = all[j->rows[k].i];
        if (!j->recall) continue;
        /* Top 50 among the items the user did not train on. */
        int npos = 0;
        for (size_t k = j->first[u]; k < j->first[u + 1]; k++) npos += j->rows[k].y;
        j->recall[2 * u] = j->recall[2 * u + 1] = NAN;
        if (!npos) continue;
        for (int64_t k = lo; k < lo + n; k++) all[t->idx[k]] = -INFINITY;
        int32_t top[50];
        float ts[50];
        int got = rec_topk_scores(all, j->s->n_items, 50, top, ts);
        int h10 = 0, h50 = 0;
        for (size_t k = j->first[u]; k < j->first[u + 1]; k++) {
            if (!j->rows[k].y) continue;
            for (int q = 0; q < got; q++)
                if (top[q] == j->rows[k].i && ts[q] > -INFINITY) h50++, h10 += q < 10;
        }
        j->recall[2 * u] = (double)h10 / npos, j->recall[2 * u + 1] = (double)h50 / npos;
    }
    free(all);
}

/* Scores rows (sorted by user in place); recall (2 per user) when given. */
static float *score_rows(const rec_model *m, const eval_ctr_split *s, eval_ctr_row *rows, size_t n, pool *tp,
                         double *recall) {
    qsort(rows, n, sizeof *rows, cmp_row);
    size_t *first = xcalloc((size_t)s->n_users + 2, sizeof *first);
    for (size_t k = 0; k < n; k++) first[rows[k].u + 1]++;
    for (int32_t u = 0; u < s->n_users; u++) first[u + 1] += first[u];
    ctr_job j = {m, s, rows, first, xmalloc((n + 1) * sizeof(float)), recall};
    if (tp) pool_for(tp, (size_t)s->n_users, ctr_users, &j);
    else ctr_users(&j, 0, (size_t)s->n_users, 0);
    free(first);
    return j.scores;
}

typedef struct scored {
    float s;
    int8_t y;
} scored;

static int by_score(const void *a, const void *b) {
    const scored *x = a, *y = b;
    return (x->s > y->s) - (x->s < y->s);
}

/* AUC with tied scores sharing their average rank. */
static double auc_of(scored *v, size_t n, int64_t *np_out, int64_t *nn_out) {
    qsort(v, n, sizeof *v, by_score);
    double rank_sum = 0;
    int64_t np = 0, nn = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && v[j].s == v[i].s) j++;
        double avg = (double)(i + j + 1) / 2; /* ranks i+1..j */
        for (size_t k = i; k < j; k++)
            if (v[k].y) rank_sum += avg, np++;
            else nn++;
        i = j;
    }
    *np_out = np, *nn_out = nn;
    return np && nn ? (rank_sum - (double)np * (np + 1) / 2) / ((double)np * nn) : NAN;
}

static double f1_at(const scored *v, size_t n, float th) {
    int64_t tp = 0, fp = 0, fn = 0;
    for (size_t i = 0; i < n; i++) {
        bool p = v[i].s >= th;
        tp += p && v[i].y, fp += p && !v[i].y, fn += !p && v[i].y;
    }
    return tp ? 2.0 * tp / (2.0 * tp + fp + fn) : 0;
}

/* The threshold with the best F1 on v (sorted ascending by score). */
static float best_threshold(const scored *v, size_t n) {
    int64_t pos_total = 0;
    for (size_t i = 0; i < n; i++) pos_total += v[i].y;
    /* Predicting positive for v[i..n): tp = positives at or above i. */
    int64_t tp = pos_total, fp = (int64_t)n - pos_total;
    double best = -1;
    float th = 0.5f;
    for (size_t i = 0; i < n;) {
        double f1 = tp ? 2.0 * tp / (2.0 * tp + fp + (pos_total - tp)) : 0;
        if (f1 > best) best = f1, th = v[i].s;
        size_t j = i;
        while (j < n && v[j].s == v[i].s) {
            if (v[j].y) tp--;
            else fp--;
            j++;
        }
        i = j;
    }
    return th;
}

int eval_ctr_model(rec_model *m, eval_ctr_split *s, pool *tp, eval_ctr_result *out, tailor_error *err) {
    memset(out, 0, sizeof *out);
    snprintf(out->model, sizeof out->model, "%s", m->kind->name);
    sb pj;
    sb_init(&pj);
    rec_params_json(&m->params, &pj);
    snprintf(out->params, sizeof out->params, "%s", sb_str(&pj));
    sb_deinit(&pj);
    rec_data d = eval_csr_data(&s->train, s->n_items);
    if (s->graph.g.n_entities) d.graph = &s->graph.g;
    m->pool = tp;
    uint64_t t0 = timer_now_ns();
    int rc = rec_model_fit(m, &d, s->user_ext, s->item_ext, err);
    out->train_s = timer_seconds_since(t0);
    if (rc) return rc;
    t0 = timer_now_ns();
    double *recall = xmalloc(((size_t)s->n_users * 2 + 1) * sizeof *recall);
    float *sv = score_rows(m, s, s->valid, s->n_valid, tp, NULL), *st = score_rows(m, s, s->test, s->n_test, tp, recall);
    for (int32_t u = 0; u < s->n_users; u++)
        if (!isnan(recall[2 * u])) out->recall10 += recall[2 * u], out->recall50 += recall[2 * u + 1], out->recall_users++;
    if (out->recall_users) out->recall10 /= (double)out->recall_users, out->recall50 /= (double)out->recall_users;
    free(recall);
    out->eval_s = timer_seconds_since(t0);
    scored *a = xmalloc((s->n_valid + 1) * sizeof *a), *b = xmalloc((s->n_test + 1) * sizeof *b);
    for (size_t k = 0; k < s->n_valid; k++) a[k] = (scored){sv[k], s->valid[k].y};
    for (size_t k = 0; k < s->n_test; k++) b[k] = (scored){st[k], s->test[k].y};
    int64_t np, nn;
    auc_of(a, s->n_valid, &np, &nn); /* sorts a */
    out->threshold = best_threshold(a, s->n_valid);
    out->auc = auc_of(b, s->n_test, &np, &nn);
    /* Hanley and McNeil's standard error of the AUC. */
    double A = out->auc, q1 = A / (2 - A), q2 = 2 * A * A / (1 + A);
    double se = sqrt((A * (1 - A) + (double)(np - 1) * (q1 - A * A) + (double)(nn - 1) * (q2 - A * A)) / ((double)np * nn));
    out->auc_lo = fmax(0, A - 1.959964 * se), out->auc_hi = fmin(1, A + 1.959964 * se);
    out->f1 = f1_at(b, s->n_test, (float)out->threshold);
    /* Cold items: at most EVAL_CTR_COLD training positives. */
    int32_t *count = xcalloc((size_t)s->n_items + 1, sizeof *count);
    for (int64_t k = 0; k < s->train.ptr[s->n_users]; k++) count[s->train.idx[k]]++;
    scored *cold = xmalloc((s->n_test + 1) * sizeof *cold);
    size_t nc = 0;
    for (size_t k = 0; k < s->n_test; k++)
        if (count[s->test[k].i] <= EVAL_CTR_COLD) cold[nc++] = (scored){st[k], s->test[k].y};
    int64_t cp, cn;
    out->auc_cold = auc_of(cold, nc, &cp, &cn);
    out->cold_rows = (int64_t)nc;
    free(cold);
    free(count);
    /* F1's interval: 200 bootstrap resamples of the test rows. */
    rng r;
    rng_seed(&r, 7);
    double boot[200];
    scored *c = xmalloc((s->n_test + 1) * sizeof *c);
    for (int k = 0; k < 200; k++) {
        for (size_t i = 0; i < s->n_test; i++) c[i] = b[rng_below(&r, s->n_test)];
        boot[k] = f1_at(c, s->n_test, (float)out->threshold);
    }
    for (int i = 1; i < 200; i++)
        for (int j = i; j > 0 && boot[j - 1] > boot[j]; j--) {
            double t = boot[j];
            boot[j] = boot[j - 1];
            boot[j - 1] = t;
        }
    out->f1_lo = boot[4], out->f1_hi = boot[195];
    out->rows = (int64_t)s->n_test;
    free(c);
    free(a);
    free(b);
    free(sv);
    free(st);
    return 0;
}

void eval_ctr_print(FILE *f, const char *dataset, const eval_ctr_split *s, uint64_t seed, const eval_ctr_result *r,
                    int n) {
    sb d;
    sb_init(&d);
    eval_ctr_describe(s, seed, &d);
    fprintf(f, "dataset:  %s (%d users, %d items)\nprotocol: %s\n\n", dataset, s->n_users, s->n_items, sb_str(&d));
    fprintf(f, "%-10s %7s  %-22s  %-22s  %8s  %8s  %9s %9s\n", "model", "train s", "auc [95% CI]", "f1 [95% CI]",
            "auc cold", "thresh.", "recall@10", "recall@50");
    for (int i = 0; i < n; i++)
        fprintf(f, "%-10s %7.2f  %.4f [%.4f,%.4f]  %.4f [%.4f,%.4f]  %8.4f  %8.3g  %9.4f %9.4f\n", r[i].model,
                r[i].train_s, r[i].auc, r[i].auc_lo, r[i].auc_hi, r[i].f1, r[i].f1_lo, r[i].f1_hi, r[i].auc_cold,
                r[i].threshold, r[i].recall10, r[i].recall50);
    if (n)
        fprintf(f, "(auc cold: the %lld test rows of items with at most %d training positives; recall@K: the %lld users' "
                   "test positives among their top K of all items they did not train on)\n",
                (long long)r[0].cold_rows, EVAL_CTR_COLD, (long long)r[0].recall_users);
    sb_deinit(&d);
}

void eval_ctr_json(sb *o, const char *dataset, const eval_ctr_split *s, uint64_t seed, const eval_ctr_result *r, int n) {
    sb d;
    sb_init(&d);
    eval_ctr_describe(s, seed, &d);
    sb_puts(o, "{\"dataset\":");
    sb_json_str(o, dataset, strlen(dataset));
    sb_printf(o, ",\"users\":%d,\"items\":%d,\"protocol\":\"ctr\",\"protocol_description\":", s->n_users, s->n_items);
    sb_json_str(o, d.buf, d.len);
    sb_puts(o, ",\"results\":[");
    for (int i = 0; i < n; i++)
        sb_printf(o,
                  "%s{\"model\":\"%s\",\"params\":%s,\"train_s\":%.4f,\"eval_s\":%.4f,\"rows\":%lld,\"threshold\":%.6g,"
                  "\"metrics\":{\"auc\":{\"mean\":%.6f,\"ci95\":[%.6f,%.6f]},\"f1\":{\"mean\":%.6f,\"ci95\":[%.6f,%.6f]},"
                  "\"auc_cold\":{\"mean\":%.6f},\"recall@10\":{\"mean\":%.6f},\"recall@50\":{\"mean\":%.6f}}}",
                  i ? "," : "", r[i].model, r[i].params[0] ? r[i].params : "{}", r[i].train_s, r[i].eval_s,
                  (long long)r[i].rows, r[i].threshold, r[i].auc, r[i].auc_lo, r[i].auc_hi, r[i].f1, r[i].f1_lo,
                  r[i].f1_hi, r[i].auc_cold, r[i].recall10, r[i].recall50);
    sb_puts(o, "]}\n");
    sb_deinit(&d);
}
