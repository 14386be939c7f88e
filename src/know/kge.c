/* kge.c — knowledge-graph embeddings that propose missing facts: TransE
 * (Bordes et al. 2013: h + r lands near t; score gamma - |h + r - t|^2)
 * and DistMult (Yang et al. 2015: score sum_j h_j r_j t_j). Both learn from
 * each true triple against one corrupted triple (its head or its tail
 * replaced by a random entity) with the logistic loss, one sample at a time
 * with AdaGrad (the rows a sample touches are the only ones updated);
 * TransE keeps entity vectors on the unit sphere, DistMult has an L2 term.
 * The candidates they propose are entities by construction. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "know/know.h"

kge_params kge_default_params(kge_kind kind) {
    return (kge_params){.kind = kind, .dim = 32, .epochs = 100, .lr = 0.1f, .l2 = kind == KGE_DISTMULT ? 1e-4f : 0,
                        .margin = 4.0f, .seed = 42};
}

const char *kge_kind_name(kge_kind k) { return k == KGE_TRANSE ? "transe" : "distmult"; }

float kge_score(const kge_model *m, int32_t h, int32_t r, int32_t t) {
    const float *eh = m->E + (size_t)h * m->dim, *er = m->R + (size_t)r * m->dim, *et = m->E + (size_t)t * m->dim;
    float s = 0;
    if (m->kind == KGE_TRANSE) {
        for (int j = 0; j < m->dim; j++) {
            float d = eh[j] + er[j] - et[j];
            s += d * d;
        }
        return m->margin - s;
    }
    for (int j = 0; j < m->dim; j++) s += eh[j] * er[j] * et[j];
    return s;
}

void kge_tail_scores(const kge_model *m, int32_t h, int32_t r, float *out) {
    for (int32_t t = 0; t < m->n_ent; t++) out[t] = kge_score(m, h, r, t);
}

/* d score / d (h, r, t) into gh, gr, gt (dim each). */
static void score_grad(const kge_model *m, int32_t h, int32_t r, int32_t t, float *gh, float *gr, float *gt) {
    const float *eh = m->E + (size_t)h * m->dim, *er = m->R + (size_t)r * m->dim, *et = m->E + (size_t)t * m->dim;
    for (int j = 0; j < m->dim; j++) {
        if (m->kind == KGE_TRANSE) {
            float d = eh[j] + er[j] - et[j];
            gh[j] = -2 * d, gr[j] = -2 * d, gt[j] = 2 * d;
        } else {
            gh[j] = er[j] * et[j], gr[j] = eh[j] * et[j], gt[j] = eh[j] * er[j];
        }
    }
}

typedef struct kge_opt {
    float *gE, *gR; /* AdaGrad accumulators */
    float lr, l2;
} kge_opt;

static void adagrad(float *p, float *acc, const float *g, int dim, float scale, float lr, float l2) {
    for (int j = 0; j < dim; j++) {
        float gj = scale * g[j] + l2 * p[j];
        acc[j] += gj * gj;
        p[j] -= lr * gj / (sqrtf(acc[j]) + 1e-8f);
    }
}

static void normalize(float *v, int dim) {
    float n = 0;
    for (int j = 0; j < dim; j++) n += v[j] * v[j];
    n = sqrtf(n);
    if (n > 0)
        for (int j = 0; j < dim; j++) v[j] /= n;
}

/* One triple with label y (1 true, 0 corrupted): logistic loss. */
static void step(kge_model *m, kge_opt *o, int32_t h, int32_t r, int32_t t, int y, float *buf) {
    int d = m->dim;
    float s = kge_score(m, h, r, t);
    float dl = y ? -1 / (1 + expf(s)) : 1 / (1 + expf(-s)); /* d softplus(-s) or d softplus(s) */
    float *gh = buf, *gr = buf + d, *gt = buf + 2 * d;
    score_grad(m, h, r, t, gh, gr, gt);
    adagrad(m->E + (size_t)h * d, o->gE + (size_t)h * d, gh, d, dl, o->lr, o->l2);
    adagrad(m->R + (size_t)r * d, o->gR + (size_t)r * d, gr, d, dl, o->lr, o->l2);
    adagrad(m->E + (size_t)t * d, o->gE + (size_t)t * d, gt, d, dl, o->lr, o->l2);
    if (m->kind == KGE_TRANSE) normalize(m->E + (size_t)h * d, d), normalize(m->E + (size_t)t * d, d);
}

int kge_train(const kg_triple *tr, size_t n, int32_t n_ent, int32_t n_rel, kge_params p, bool quiet, kge_model *out,
              tailor_error *err) {
    memset(out, 0, sizeof *out);
    if (p.dim < 1 || p.dim > 1024 || p.epochs < 0 || p.lr <= 0 || n_ent < 2 || n_rel < 1)
        return err_set(err, TAILOR_EINVAL, "kge: need 1 <= dim <= 1024, epochs >= 0, lr > 0 and a graph");
    out->kind = p.kind, out->dim = p.dim, out->n_ent = n_ent, out->n_rel = n_rel, out->margin = p.margin;
    rng g;
    rng_seed(&g, p.seed);
    out->E = xmalloc(((size_t)n_ent * p.dim + 1) * sizeof *out->E);
    out->R = xmalloc(((size_t)n_rel * p.dim + 1) * sizeof *out->R);
    float lim = 6.0f / sqrtf((float)p.dim);
    for (size_t i = 0; i < (size_t)n_ent * p.dim; i++) out->E[i] = lim * (2 * (float)rng_uniform(&g) - 1) / 6;
    for (size_t i = 0; i < (size_t)n_rel * p.dim; i++) out->R[i] = lim * (2 * (float)rng_uniform(&g) - 1) / 6;
    if (p.kind == KGE_TRANSE)
        for (int32_t e = 0; e < n_ent; e++) normalize(out->E + (size_t)e * p.dim, p.dim);
    kge_opt o = {xcalloc((size_t)n_ent * p.dim + 1, sizeof(float)), xcalloc((size_t)n_rel * p.dim + 1, sizeof(float)),
                 p.lr, p.l2};
    size_t *order = xmalloc((n + 1) * sizeof *order);
    for (size_t i = 0; i < n; i++) order[i] = i;
    float *buf = xmalloc((size_t)p.dim * 3 * sizeof *buf);
    progress bar;
    if (!quiet) progress_begin(&bar, kge_kind_name(p.kind), (uint64_t)p.epochs);
    for (int ep = 0; ep < p.epochs; ep++) {
        for (size_t i = n; i > 1; i--) {
            size_t j = (size_t)rng_below(&g, i), x = order[i - 1];
            order[i - 1] = order[j], order[j] = x;
        }
        for (size_t i = 0; i < n; i++) {
            const kg_triple *x = &tr[order[i]];
            step(out, &o, x->h, x->r, x->t, 1, buf);
            int32_t c = (int32_t)rng_below(&g, (uint64_t)n_ent);
            if (rng_uniform(&g) < 0.5) step(out, &o, c, x->r, x->t, 0, buf);
            else step(out, &o, x->h, x->r, c, 0, buf);
        }
        if (!quiet) progress_update(&bar, (uint64_t)ep + 1);
    }
    if (!quiet) progress_end(&bar);
    free(o.gE);
    free(o.gR);
    free(order);
    free(buf);
    return 0;
}

void kge_free(kge_model *m) {
    free(m->E);
    free(m->R);
    memset(m, 0, sizeof *m);
}

double kge_gradcheck(kge_kind kind, uint64_t seed) {
    rng g;
    rng_seed(&g, seed);
    kge_model m = {.kind = kind, .dim = 5, .n_ent = 4, .n_rel = 2, .margin = 4};
    m.E = xmalloc(20 * sizeof *m.E);
    m.R = xmalloc(10 * sizeof *m.R);
    for (int i = 0; i < 20; i++) m.E[i] = 2 * (float)rng_uniform(&g) - 1;
    for (int i = 0; i < 10; i++) m.R[i] = 2 * (float)rng_uniform(&g) - 1;
    float gh[5], gr[5], gt[5];
    int32_t h = 1, r = 1, t = 3;
    score_grad(&m, h, r, t, gh, gr, gt);
    float *where[3] = {m.E + h * 5, m.R + r * 5, m.E + t * 5}, *grads[3] = {gh, gr, gt};
    double worst = 0;
    for (int p = 0; p < 3; p++)
        for (int j = 0; j < 5; j++) {
            float keep = where[p][j], e = 1e-2f;
            where[p][j] = keep + e;
            double up = kge_score(&m, h, r, t);
            where[p][j] = keep - e;
            double down = kge_score(&m, h, r, t);
            where[p][j] = keep;
            double num = (up - down) / (2 * e), rel = fabs(num - grads[p][j]) / fmax(1e-2, fabs(num) + fabs(grads[p][j]));
            if (rel > worst) worst = rel;
        }
    free(m.E);
    free(m.R);
    return worst;
}
