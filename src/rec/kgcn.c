/* kgcn.c — Knowledge Graph Convolutional Networks (Wang et al., WWW 2019):
 * an item is its entity's embedding mixed with a user-specific weighting
 * of its graph neighbours.
 *
 *   pi_k  = (u . r_k) / d                 k = 1..K sampled neighbours (n_k, r_k)
 *   a     = softmax(pi)
 *   v_N   = sum_k a_k e_{n_k}
 *   h     = tanh(W (e_v + v_N) + b)       the "sum" aggregator, one hop (H = 1)
 *   score = sigmoid(u . h)
 *
 * Trained on (user, item, 1) for each interaction and (user, unseen item, 0)
 * drawn afresh each epoch, binary cross-entropy plus L2 on the batch's user
 * and item embeddings and W (as the authors' code), Adam. Neighbours are
 * sampled once, with replacement, from each entity's links (both
 * directions); an item without an entity, or an entity without links, has
 * itself as neighbours through a "self" relation. An anonymous history is
 * folded in as the mean of its items' entity embeddings. Written out by
 * hand, forward and backward, in float; kgcn_gradcheck compares the
 * backward with central differences. One thread: the model is small. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rec/rec.h"

typedef struct kgcn_state {
    int dim, k, epochs, batch;
    float lr, l2;
    int32_t n_ent, n_rel;  /* with the items' own entities and the self relation */
    int32_t *item_entity;  /* n_items */
    int32_t *nb, *nr;      /* n_ent * k: sampled neighbours and their relations */
    float *U, *E, *R, *W, *b;
} kgcn_state;

static const rec_param_spec KGCN_PARAMS[] = {
    {"dim", "16", "embedding size"},
    {"neighbors", "8", "neighbours sampled per entity"},
    {"epochs", "10", "passes over the interactions"},
    {"lr", "0.0005", "Adam learning rate"},
    {"l2", "0.0001", "L2 weight"},
    {"batch", "128", "interactions per step (each with one negative)"},
    {NULL, NULL, NULL},
};

static int kgcn_init(rec_model *m, tailor_error *err) {
    kgcn_state *s = xcalloc(1, sizeof *s);
    m->impl = s;
    s->dim = (int)rec_param_i64(m, "dim");
    s->k = (int)rec_param_i64(m, "neighbors");
    s->epochs = (int)rec_param_i64(m, "epochs");
    s->batch = (int)rec_param_i64(m, "batch");
    s->lr = (float)rec_param_f64(m, "lr");
    s->l2 = (float)rec_param_f64(m, "l2");
    if (s->dim < 1 || s->dim > 512 || s->k < 1 || s->k > 64 || s->epochs < 0 || s->batch < 1 || s->lr <= 0 || s->l2 < 0)
        return err_set(err, TAILOR_EINVAL,
                       "kgcn: need 1 <= dim <= 512, 1 <= neighbors <= 64, epochs >= 0, batch >= 1, lr > 0, l2 >= 0");
    return 0;
}

/* ---- the model's arithmetic (one user, one item) --------------------------- */

typedef struct kgcn_fwd {
    float a[64];     /* attention over the neighbours */
    float *x, *h;    /* e_v + v_N, and the item's representation (dim each) */
    float score;     /* u . h */
} kgcn_fwd;

static void forward(const kgcn_state *s, const float *u, int32_t item, kgcn_fwd *f) {
    int d = s->dim, K = s->k;
    int32_t e = s->item_entity[item];
    const int32_t *nb = s->nb + (size_t)e * K, *nr = s->nr + (size_t)e * K;
    float mx = -INFINITY;
    for (int k = 0; k < K; k++) {
        const float *r = s->R + (size_t)nr[k] * d;
        float p = 0;
        for (int j = 0; j < d; j++) p += u[j] * r[j];
        f->a[k] = p / (float)d;
        if (f->a[k] > mx) mx = f->a[k];
    }
    float z = 0;
    for (int k = 0; k < K; k++) z += f->a[k] = expf(f->a[k] - mx);
    for (int k = 0; k < K; k++) f->a[k] /= z;
    memcpy(f->x, s->E + (size_t)e * d, (size_t)d * sizeof *f->x);
    for (int k = 0; k < K; k++) {
        const float *en = s->E + (size_t)nb[k] * d;
        for (int j = 0; j < d; j++) f->x[j] += f->a[k] * en[j];
    }
    float sc = 0;
    for (int i = 0; i < d; i++) {
        float acc = s->b[i];
        const float *w = s->W + (size_t)i * d;
        for (int j = 0; j < d; j++) acc += w[j] * f->x[j];
        f->h[i] = tanhf(acc);
        sc += u[i] * f->h[i];
    }
    f->score = sc;
}

/* Gradients of g_s * score (g_s = dLoss/dscore) into the dense gradient
 * arrays (gU for this user's row, gE, gR, gW, gb); scratch: 2*dim floats. */
static void backward(const kgcn_state *s, const float *u, int32_t item, const kgcn_fwd *f, float g_s, float *gu,
                     float *gE, float *gR, float *gW, float *gb, float *scratch) {
    int d = s->dim, K = s->k;
    int32_t e = s->item_entity[item];
    const int32_t *nb = s->nb + (size_t)e * K, *nr = s->nr + (size_t)e * K;
    float *dz = scratch, *dx = scratch + d;
    for (int i = 0; i < d; i++) {
        gu[i] += g_s * f->h[i];
        dz[i] = g_s * u[i] * (1 - f->h[i] * f->h[i]);
        gb[i] += dz[i];
    }
    memset(dx, 0, (size_t)d * sizeof *dx);
    for (int i = 0; i < d; i++) {
        const float *w = s->W + (size_t)i * d;
        float *gw = gW + (size_t)i * d;
        for (int j = 0; j < d; j++) {
            gw[j] += dz[i] * f->x[j];
            dx[j] += w[j] * dz[i];
        }
    }
    float *ge = gE + (size_t)e * d;
    for (int j = 0; j < d; j++) ge[j] += dx[j];
    /* v_N = sum_k a_k e_k: to each neighbour, and to the attention. */
    float da[64], dot = 0;
    for (int k = 0; k < K; k++) {
        const float *en = s->E + (size_t)nb[k] * d;
        float *gn = gE + (size_t)nb[k] * d, t = 0;
        for (int j = 0; j < d; j++) {
            gn[j] += f->a[k] * dx[j];
            t += en[j] * dx[j];
        }
        da[k] = t;
        dot += f->a[k] * t;
    }
    for (int k = 0; k < K; k++) {
        float dpi = f->a[k] * (da[k] - dot) / (float)d; /* softmax, then pi = u . r / d */
        const float *r = s->R + (size_t)nr[k] * d;
        float *gr = gR + (size_t)nr[k] * d;
        for (int j = 0; j < d; j++) {
            gu[j] += dpi * r[j];
            gr[j] += dpi * u[j];
        }
    }
}

/* ---- training ------------------------------------------------------------------ */

typedef struct adam {
    float *m, *v;
    size_t n;
} adam;

static void adam_step(adam *a, float *p, const float *g, float lr, int t) {
    const float b1 = 0.9f, b2 = 0.999f, eps = 1e-8f;
    float c1 = 1 - powf(b1, (float)t), c2 = 1 - powf(b2, (float)t), step = lr * sqrtf(c2) / c1;
    for (size_t i = 0; i < a->n; i++) {
        a->m[i] = b1 * a->m[i] + (1 - b1) * g[i];
        a->v[i] = b2 * a->v[i] + (1 - b2) * g[i] * g[i];
        p[i] -= step * a->m[i] / (sqrtf(a->v[i]) + eps);
    }
}

/* Entities: the graph's, then one per item that has none. Neighbours:
 * sampled with replacement from each entity's links. */
static void build_neighbours(kgcn_state *s, const rec_data *d, rng *g) {
    const rec_graph *G = d->graph;
    int32_t extra = 0;
    s->item_entity = xmalloc(((size_t)d->n_items + 1) * sizeof *s->item_entity);
    for (int32_t i = 0; i < d->n_items; i++) {
        int32_t e = G->item_entity[i];
        s->item_entity[i] = e >= 0 && e < G->n_entities ? e : G->n_entities + extra++;
    }
    s->n_ent = G->n_entities + extra;
    s->n_rel = G->n_relations + 1; /* the last: "self" */
    int K = s->k;
    s->nb = xmalloc(((size_t)s->n_ent * K + 1) * sizeof *s->nb);
    s->nr = xmalloc(((size_t)s->n_ent * K + 1) * sizeof *s->nr);
    for (int32_t e = 0; e < s->n_ent; e++) {
        int64_t lo = e < G->n_entities ? G->ptr[e] : 0, n = e < G->n_entities ? G->ptr[e + 1] - lo : 0;
        for (int k = 0; k < K; k++) {
            if (n > 0) {
                int64_t j = lo + (int64_t)rng_below(g, (uint64_t)n);
                s->nb[(size_t)e * K + k] = G->to[j];
                s->nr[(size_t)e * K + k] = G->rel[j];
            } else {
                s->nb[(size_t)e * K + k] = e;
                s->nr[(size_t)e * K + k] = s->n_rel - 1;
            }
        }
    }
}

static void init_weights(kgcn_state *s, int32_t n_users, rng *g) {
    int d = s->dim;
    s->U = xmalloc(((size_t)n_users * d + 1) * sizeof *s->U);
    s->E = xmalloc(((size_t)s->n_ent * d + 1) * sizeof *s->E);
    s->R = xmalloc(((size_t)s->n_rel * d + 1) * sizeof *s->R);
    s->W = xmalloc((size_t)d * d * sizeof *s->W);
    s->b = xcalloc((size_t)d, sizeof *s->b);
    /* Xavier uniform, as the authors' code. */
    float lim_u = sqrtf(6.0f / (float)(n_users + d)), lim_e = sqrtf(6.0f / (float)(s->n_ent + d)),
          lim_r = sqrtf(6.0f / (float)(s->n_rel + d)), lim_w = sqrtf(6.0f / (float)(2 * d));
    for (size_t i = 0; i < (size_t)n_users * d; i++) s->U[i] = lim_u * (2 * (float)rng_uniform(g) - 1);
    for (size_t i = 0; i < (size_t)s->n_ent * d; i++) s->E[i] = lim_e * (2 * (float)rng_uniform(g) - 1);
    for (size_t i = 0; i < (size_t)s->n_rel * d; i++) s->R[i] = lim_r * (2 * (float)rng_uniform(g) - 1);
    for (size_t i = 0; i < (size_t)d * d; i++) s->W[i] = lim_w * (2 * (float)rng_uniform(g) - 1);
}

typedef struct kgcn_sample {
    int32_t u, i;
    float y;
} kgcn_sample;

static int kgcn_fit(rec_model *m, const rec_data *d, tailor_error *err) {
    kgcn_state *s = m->impl;
    if (!d->graph)
        return err_set(err, TAILOR_EINVAL,
                       "kgcn needs a knowledge graph in the store (tailor import kg TRIPLES --entity-map FILE, or "
                       "tailor kg derive)");
    rng g;
    rng_seed(&g, m->seed);
    build_neighbours(s, d, &g);
    init_weights(s, d->n_users, &g);
    int dim = s->dim;
    int64_t nnz = rec_data_nnz(d);
    size_t nU = (size_t)d->n_users * dim, nE = (size_t)s->n_ent * dim, nR = (size_t)s->n_rel * dim, nW = (size_t)dim * dim;
    float *grad = xcalloc(nU + nE + nR + nW + dim + 1, sizeof *grad);
    float *gU = grad, *gE = gU + nU, *gR = gE + nE, *gW = gR + nR, *gb = gW + nW;
    float *params[5] = {s->U, s->E, s->R, s->W, s->b}, *grads[5] = {gU, gE, gR, gW, gb};
    size_t sizes[5] = {nU, nE, nR, nW, (size_t)dim};
    adam opt[5];
    for (int p = 0; p < 5; p++) opt[p] = (adam){xcalloc(sizes[p] + 1, sizeof(float)), xcalloc(sizes[p] + 1, sizeof(float)), sizes[p]};
    kgcn_sample *smp = xmalloc(((size_t)nnz * 2 + 1) * sizeof *smp);
    int32_t *row_user = xmalloc(((size_t)nnz + 1) * sizeof *row_user);
    for (int32_t u = 0; u < d->n_users; u++)
        for (int64_t k = d->indptr[u]; k < d->indptr[u + 1]; k++) row_user[k] = u;
    float *buf = xmalloc((size_t)dim * 4 * sizeof *buf);
    kgcn_fwd f = {.x = buf, .h = buf + dim};
    float *scratch = buf + 2 * dim;
    progress bar;
    if (!m->quiet) progress_begin(&bar, "kgcn epochs", (uint64_t)s->epochs);
    int t = 0;
    for (int ep = 0; ep < s->epochs; ep++) {
        /* Each interaction, and one item the user lacks, shuffled. */
        size_t n = 0;
        for (int64_t k = 0; k < nnz; k++) {
            int32_t u = row_user[k], neg = -1;
            smp[n++] = (kgcn_sample){u, d->indices[k], 1};
            for (int tries = 0; tries < 100 && neg < 0; tries++) {
                int32_t c = (int32_t)rng_below(&g, (uint64_t)d->n_items);
                if (!rec_csr_has(d->indptr, d->indices, u, c)) neg = c;
            }
            if (neg >= 0) smp[n++] = (kgcn_sample){u, neg, 0};
        }
        for (size_t i = n; i > 1; i--) {
            size_t j = (size_t)rng_below(&g, i);
            kgcn_sample x = smp[i - 1];
            smp[i - 1] = smp[j];
            smp[j] = x;
        }
        for (size_t b0 = 0; b0 < n; b0 += (size_t)s->batch) {
            size_t b1 = b0 + (size_t)s->batch < n ? b0 + (size_t)s->batch : n;
            float inv = 1.0f / (float)(b1 - b0);
            memset(grad, 0, (nU + nE + nR + nW + dim) * sizeof *grad);
            for (size_t q = b0; q < b1; q++) {
                const float *u = s->U + (size_t)smp[q].u * dim;
                forward(s, u, smp[q].i, &f);
                float p = 1 / (1 + expf(-f.score));
                backward(s, u, smp[q].i, &f, (p - smp[q].y) * inv, gU + (size_t)smp[q].u * dim, gE, gR, gW, gb, scratch);
                /* L2 (sum of squares / 2) on the batch's user and item embeddings. */
                const float *ev = s->E + (size_t)s->item_entity[smp[q].i] * dim;
                float *gu = gU + (size_t)smp[q].u * dim, *ge = gE + (size_t)s->item_entity[smp[q].i] * dim;
                for (int j = 0; j < dim; j++) gu[j] += s->l2 * u[j], ge[j] += s->l2 * ev[j];
            }
            for (size_t i = 0; i < nW; i++) gW[i] += s->l2 * s->W[i];
            t++;
            for (int p = 0; p < 5; p++) adam_step(&opt[p], params[p], grads[p], s->lr, t);
        }
        if (!m->quiet) progress_update(&bar, (uint64_t)ep + 1);
    }
    if (!m->quiet) progress_end(&bar);
    for (int p = 0; p < 5; p++) free(opt[p].m), free(opt[p].v);
    free(grad);
    free(smp);
    free(row_user);
    free(buf);
    return 0;
}

/* ---- serving ------------------------------------------------------------------- */

static void kgcn_score(const rec_model *m, int32_t user, const int32_t *hist, const float *vals, size_t n, float *out) {
    (void)vals;
    const kgcn_state *s = m->impl;
    int d = s->dim;
    float *buf = xmalloc((size_t)d * 3 * sizeof *buf), *u = buf + 2 * d;
    if (user >= 0 && user < m->n_users) {
        memcpy(u, s->U + (size_t)user * d, (size_t)d * sizeof *u);
    } else {
        /* Fold-in: the mean of the history's item embeddings. */
        memset(u, 0, (size_t)d * sizeof *u);
        size_t c = 0;
        for (size_t h = 0; h < n; h++) {
            if (hist[h] < 0 || hist[h] >= m->n_items) continue;
            const float *e = s->E + (size_t)s->item_entity[hist[h]] * d;
            for (int j = 0; j < d; j++) u[j] += e[j];
            c++;
        }
        for (int j = 0; c && j < d; j++) u[j] /= (float)c;
    }
    kgcn_fwd f = {.x = buf, .h = buf + d};
    for (int32_t i = 0; i < m->n_items; i++) {
        forward(s, u, i, &f);
        out[i] = 1 / (1 + expf(-f.score));
    }
    free(buf);
}

static void kgcn_save(const rec_model *m, sb *out) {
    const kgcn_state *s = m->impl;
    int32_t hdr[2] = {s->n_ent, s->n_rel};
    sb_append(out, (const char *)hdr, sizeof hdr);
    rec_write_array(out, s->item_entity, sizeof(int32_t), (size_t)m->n_items);
    rec_write_array(out, s->nb, sizeof(int32_t), (size_t)s->n_ent * s->k);
    rec_write_array(out, s->nr, sizeof(int32_t), (size_t)s->n_ent * s->k);
    rec_write_array(out, s->U, sizeof(float), (size_t)m->n_users * s->dim);
    rec_write_array(out, s->E, sizeof(float), (size_t)s->n_ent * s->dim);
    rec_write_array(out, s->R, sizeof(float), (size_t)s->n_rel * s->dim);
    rec_write_array(out, s->W, sizeof(float), (size_t)s->dim * s->dim);
    rec_write_array(out, s->b, sizeof(float), (size_t)s->dim);
}

static int kgcn_load(rec_model *m, const char *buf, size_t n, tailor_error *err) {
    kgcn_state *s = m->impl;
    rec_reader r = {buf, n};
    int32_t hdr[2];
    void *a[8] = {0};
    bool ok = rec_read(&r, hdr, sizeof hdr) && hdr[0] > 0 && hdr[1] > 0 && hdr[0] < (1 << 30) && hdr[1] < (1 << 24);
    ok = ok && rec_read_array(&r, sizeof(int32_t), m->n_items, &a[0], NULL) &&
         rec_read_array(&r, sizeof(int32_t), (int64_t)hdr[0] * s->k, &a[1], NULL) &&
         rec_read_array(&r, sizeof(int32_t), (int64_t)hdr[0] * s->k, &a[2], NULL) &&
         rec_read_array(&r, sizeof(float), (int64_t)m->n_users * s->dim, &a[3], NULL) &&
         rec_read_array(&r, sizeof(float), (int64_t)hdr[0] * s->dim, &a[4], NULL) &&
         rec_read_array(&r, sizeof(float), (int64_t)hdr[1] * s->dim, &a[5], NULL) &&
         rec_read_array(&r, sizeof(float), (int64_t)s->dim * s->dim, &a[6], NULL) &&
         rec_read_array(&r, sizeof(float), s->dim, &a[7], NULL) && !r.left;
    /* Every index must point inside its table. */
    for (int32_t i = 0; ok && i < m->n_items; i++) ok = ((int32_t *)a[0])[i] >= 0 && ((int32_t *)a[0])[i] < hdr[0];
    for (int64_t i = 0; ok && i < (int64_t)hdr[0] * s->k; i++)
        ok = ((int32_t *)a[1])[i] >= 0 && ((int32_t *)a[1])[i] < hdr[0] && ((int32_t *)a[2])[i] >= 0 &&
             ((int32_t *)a[2])[i] < hdr[1];
    if (!ok) {
        for (int i = 0; i < 8; i++) free(a[i]);
        return err_set(err, TAILOR_EDATA, "kgcn: bad payload");
    }
    s->n_ent = hdr[0], s->n_rel = hdr[1];
    s->item_entity = a[0], s->nb = a[1], s->nr = a[2];
    s->U = a[3], s->E = a[4], s->R = a[5], s->W = a[6], s->b = a[7];
    return 0;
}

static void kgcn_free(rec_model *m) {
    kgcn_state *s = m->impl;
    if (s) {
        free(s->item_entity), free(s->nb), free(s->nr);
        free(s->U), free(s->E), free(s->R), free(s->W), free(s->b);
    }
    free(s);
}

static void kgcn_footprint(const rec_model *m, int32_t n_users, int32_t n_items, int64_t nnz, double *train_bytes,
                           double *file_bytes) {
    const kgcn_state *s = m->impl;
    *file_bytes = ((double)n_users + 2.0 * n_items) * s->dim * sizeof(float) + (double)n_items * s->k * 8;
    *train_bytes = *file_bytes * 4 + (double)nnz * 24;
}

/* ---- gradient check ---------------------------------------------------------------- */

/* The largest relative difference between backward() and central
 * differences of the score, over every parameter a small random model
 * touches for one (user, item). */
double rec_kgcn_gradcheck(uint64_t seed) {
    rng g;
    rng_seed(&g, seed);
    kgcn_state s = {.dim = 6, .k = 4, .n_ent = 9, .n_rel = 4};
    int32_t item_entity[3] = {0, 3, 5};
    s.item_entity = item_entity;
    int32_t nb[36], nr[36];
    for (int i = 0; i < 36; i++) nb[i] = (int32_t)rng_below(&g, 9), nr[i] = (int32_t)rng_below(&g, 4);
    s.nb = nb, s.nr = nr;
    init_weights(&s, 2, &g);
    for (int i = 0; i < 6; i++) s.b[i] = 0.1f * (2 * (float)rng_uniform(&g) - 1);
    int d = s.dim;
    size_t nU = 2 * (size_t)d, nE = 9 * (size_t)d, nR = 4 * (size_t)d, nW = (size_t)d * d;
    float *grad = xcalloc(nU + nE + nR + nW + d, sizeof *grad);
    float *gU = grad, *gE = gU + nU, *gR = gE + nE, *gW = gR + nR, *gb = gW + nW;
    float buf[4 * 6];
    kgcn_fwd f = {.x = buf, .h = buf + d};
    int32_t user = 1, item = 1;
    forward(&s, s.U + (size_t)user * d, item, &f);
    backward(&s, s.U + (size_t)user * d, item, &f, 1.0f, gU + (size_t)user * d, gE, gR, gW, gb, buf + 2 * d);
    float *params[5] = {s.U, s.E, s.R, s.W, s.b}, *grads[5] = {gU, gE, gR, gW, gb};
    size_t sizes[5] = {nU, nE, nR, nW, (size_t)d};
    double worst = 0;
    for (int p = 0; p < 5; p++)
        for (size_t i = 0; i < sizes[p]; i++) {
            float keep = params[p][i], h = 2e-3f;
            params[p][i] = keep + h;
            forward(&s, s.U + (size_t)user * d, item, &f);
            double up = f.score;
            params[p][i] = keep - h;
            forward(&s, s.U + (size_t)user * d, item, &f);
            double down = f.score;
            params[p][i] = keep;
            double num = (up - down) / (2 * h), ana = grads[p][i];
            double rel = fabs(num - ana) / fmax(1e-2, fabs(num) + fabs(ana));
            if (rel > worst) worst = rel;
        }
    free(grad);
    free(s.U), free(s.E), free(s.R), free(s.W), free(s.b);
    return worst;
}

const rec_kind REC_KGCN = {
    .name = "kgcn",
    .summary = "knowledge graph convolutional network (Wang et al. 2019): items mixed with their graph neighbours",
    .params = KGCN_PARAMS,
    .init = kgcn_init,
    .fit = kgcn_fit,
    .score = kgcn_score,
    .explain_style = REC_EXPLAIN_PATHS,
    .auto_grid = "dim=16,32 l2=0.0001,0.00001",
    .footprint = kgcn_footprint,
    .save = kgcn_save,
    .load = kgcn_load,
    .free = kgcn_free,
    .needs_graph = true,
};
