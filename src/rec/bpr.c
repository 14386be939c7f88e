/* bpr.c — Bayesian personalised ranking with matrix factorisation
 * (Rendle et al. 2009): score(u, i) = b_i + x_u . y_i, trained by SGD on
 * (user, seen item, unseen item) triples, negatives drawn uniformly or in
 * proportion to popularity. With several threads the updates are lock-free
 * (Hogwild: Niu et al. 2011), so results vary slightly with the thread
 * count; with one thread they are reproducible for a seed. An anonymous
 * history is folded in as the mean of its items' factors. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rec/linalg.h"
#include "rec/rec.h"

typedef struct bpr_state {
    int k, epochs;
    float lr, reg, reg_bias;
    bool pop_negatives;
    float *X, *Y, *bias;
} bpr_state;

static const rec_param_spec BPR_PARAMS[] = {
    {"factors", "64", "latent factors"},
    {"lr", "0.1", "learning rate"},
    {"reg", "0.01", "L2 regularisation of factors"},
    {"reg_bias", "0.01", "L2 regularisation of item biases"},
    {"epochs", "100", "passes over the interactions"},
    {"negatives", "uniform", "uniform or popularity"},
    {NULL, NULL, NULL},
};

static int bpr_init(rec_model *m, tailor_error *err) {
    bpr_state *s = xcalloc(1, sizeof *s);
    m->impl = s;
    s->k = (int)rec_param_i64(m, "factors");
    s->epochs = (int)rec_param_i64(m, "epochs");
    s->lr = (float)rec_param_f64(m, "lr");
    s->reg = (float)rec_param_f64(m, "reg");
    s->reg_bias = (float)rec_param_f64(m, "reg_bias");
    const char *neg = rec_param_str(m, "negatives");
    if (!strcmp(neg, "popularity")) s->pop_negatives = true;
    else if (strcmp(neg, "uniform")) return err_set(err, TAILOR_EINVAL, "bpr: negatives must be uniform or popularity, not '%s'", neg);
    if (s->k < 1 || s->k > 1024 || s->epochs < 0 || s->lr <= 0 || s->reg < 0)
        return err_set(err, TAILOR_EINVAL, "bpr: need 1 <= factors <= 1024, epochs >= 0, lr > 0, reg >= 0");
    return 0;
}

typedef struct bpr_job {
    bpr_state *s;
    const rec_data *d;
    const int32_t *row_user; /* interaction -> user */
    uint64_t seed;
    int epoch;
} bpr_job;


static void bpr_samples(void *ctx, size_t begin, size_t end, int thread) {
    bpr_job *j = ctx;
    bpr_state *s = j->s;
    const rec_data *d = j->d;
    int k = s->k;
    int64_t nnz = rec_data_nnz(d);
    rng g;
    rng_seed(&g, j->seed ^ ((uint64_t)j->epoch << 32) ^ (uint64_t)thread * 0x9E3779B97F4A7C15ULL);
    float *tmp = xmalloc((size_t)k * sizeof *tmp);
    for (size_t t = begin; t < end; t++) {
        int64_t a = (int64_t)rng_below(&g, (uint64_t)nnz);
        int32_t u = j->row_user[a], i = d->indices[a], neg = -1;
        int64_t row_len = d->indptr[u + 1] - d->indptr[u];
        if (row_len >= d->n_items) continue;
        for (int tries = 0; tries < 100; tries++) {
            int32_t c = s->pop_negatives ? d->indices[rng_below(&g, (uint64_t)nnz)]
                                         : (int32_t)rng_below(&g, (uint64_t)d->n_items);
            if (!rec_csr_has(d->indptr, d->indices, u, c)) {
                neg = c;
                break;
            }
        }
        if (neg < 0) continue;
        float *x = s->X + (size_t)u * k, *yi = s->Y + (size_t)i * k, *yj = s->Y + (size_t)neg * k;
        float diff = s->bias[i] - s->bias[neg] + la_dot(x, yi, k) - la_dot(x, yj, k);
        float z = 1.0f / (1.0f + expf(diff)); /* sigma(-diff): the gradient scale */
        for (int f = 0; f < k; f++) {
            float xf = x[f], yif = yi[f], yjf = yj[f];
            tmp[f] = xf;
            x[f] += s->lr * (z * (yif - yjf) - s->reg * xf);
            yi[f] += s->lr * (z * tmp[f] - s->reg * yif);
            yj[f] += s->lr * (-z * tmp[f] - s->reg * yjf);
        }
        s->bias[i] += s->lr * (z - s->reg_bias * s->bias[i]);
        s->bias[neg] += s->lr * (-z - s->reg_bias * s->bias[neg]);
    }
    free(tmp);
}

static int bpr_fit(rec_model *m, const rec_data *d, tailor_error *err) {
    bpr_state *s = m->impl;
    int k = s->k;
    int32_t nu = d->n_users, ni = d->n_items;
    int64_t nnz = rec_data_nnz(d);
    free(s->X), free(s->Y), free(s->bias);
    s->X = xmalloc(((size_t)nu * k + 1) * sizeof(float));
    s->Y = xmalloc(((size_t)ni * k + 1) * sizeof(float));
    s->bias = xcalloc((size_t)ni + 1, sizeof(float));
    rng g;
    rng_seed(&g, m->seed);
    float scale = 0.1f / sqrtf((float)k);
    for (size_t i = 0; i < (size_t)nu * k; i++) s->X[i] = (float)rng_normal(&g) * scale;
    for (size_t i = 0; i < (size_t)ni * k; i++) s->Y[i] = (float)rng_normal(&g) * scale;
    if (nnz == 0 || ni < 2) return 0;
    int32_t *row_user = xmalloc((size_t)nnz * sizeof *row_user);
    for (int32_t u = 0; u < nu; u++)
        for (int64_t a = d->indptr[u]; a < d->indptr[u + 1]; a++) row_user[a] = u;
    bpr_job job = {s, d, row_user, m->seed, 0};
    progress bar;
    progress_begin(&bar, "bpr", (uint64_t)s->epochs);
    if (m->quiet) bar.active = false;
    for (int e = 0; e < s->epochs; e++) {
        job.epoch = e;
        if (m->pool) pool_for(m->pool, (size_t)nnz, bpr_samples, &job);
        else bpr_samples(&job, 0, (size_t)nnz, 0);
        progress_update(&bar, (uint64_t)e + 1);
    }
    progress_end(&bar);
    free(row_user);
    (void)err;
    return 0;
}

static void bpr_user_vector(const rec_model *m, int32_t user, const int32_t *hist, size_t n, float *x) {
    const bpr_state *s = m->impl;
    int k = s->k;
    if (user >= 0 && user < m->n_users) {
        memcpy(x, s->X + (size_t)user * k, (size_t)k * sizeof *x);
        return;
    }
    memset(x, 0, (size_t)k * sizeof *x);
    size_t c = 0;
    for (size_t h = 0; h < n; h++)
        if (hist[h] >= 0 && hist[h] < m->n_items) la_axpy(1.0f, s->Y + (size_t)hist[h] * k, x, k), c++;
    for (int f = 0; c && f < k; f++) x[f] /= (float)c;
}

static void bpr_score(const rec_model *m, int32_t user, const int32_t *hist, const float *vals,
                      size_t n, float *out) {
    const bpr_state *s = m->impl;
    int k = s->k;
    float *x = xmalloc((size_t)k * sizeof *x);
    bpr_user_vector(m, user, hist, n, x);
    memcpy(out, s->bias, (size_t)m->n_items * sizeof *out);
    cblas_sgemv(CblasRowMajor, CblasNoTrans, m->n_items, k, 1.0f, s->Y, k, x, 1, 1.0f, out, 1);
    free(x);
}

static void bpr_similar(const rec_model *m, int32_t item, float *out) {
    const bpr_state *s = m->impl;
    la_cosine_rows(s->Y, m->n_items, s->k, item, out);
}

/* Alignment of each history item with the recommended one. */
static void bpr_explain(const rec_model *m, int32_t user, const int32_t *hist, const float *vals,
                        size_t n, int32_t item, float *contrib) {
    const bpr_state *s = m->impl;
    int k = s->k;
    for (size_t h = 0; h < n; h++)
        contrib[h] = hist[h] >= 0 && hist[h] < m->n_items
                         ? la_dot(s->Y + (size_t)hist[h] * k, s->Y + (size_t)item * k, k)
                         : 0;
}

static void bpr_save(const rec_model *m, sb *out) {
    const bpr_state *s = m->impl;
    rec_write_array(out, s->X, sizeof(float), (size_t)m->n_users * s->k);
    rec_write_array(out, s->Y, sizeof(float), (size_t)m->n_items * s->k);
    rec_write_array(out, s->bias, sizeof(float), (size_t)m->n_items);
}

static int bpr_load(rec_model *m, const char *buf, size_t n, tailor_error *err) {
    bpr_state *s = m->impl;
    rec_reader r = {buf, n};
    void *X = NULL, *Y = NULL, *b = NULL;
    if (!rec_read_array(&r, sizeof(float), (int64_t)m->n_users * s->k, &X, NULL) ||
        !rec_read_array(&r, sizeof(float), (int64_t)m->n_items * s->k, &Y, NULL) ||
        !rec_read_array(&r, sizeof(float), m->n_items, &b, NULL) || r.left) {
        free(X), free(Y), free(b);
        return err_set(err, TAILOR_EDATA, "bpr: bad payload");
    }
    free(s->X), free(s->Y), free(s->bias);
    s->X = X, s->Y = Y, s->bias = b;
    return 0;
}

static void bpr_free(rec_model *m) {
    bpr_state *s = m->impl;
    if (s) free(s->X), free(s->Y), free(s->bias);
    free(s);
}

static void bpr_footprint(const rec_model *m, int32_t n_users, int32_t n_items, int64_t nnz, double *train_bytes,
                          double *file_bytes) {
    const bpr_state *s = m->impl;
    *file_bytes = ((double)n_users + n_items) * s->k * sizeof(float);
    *train_bytes = *file_bytes + (double)nnz * 12;
}

static const float *bpr_item_vectors(const rec_model *m, int *dim) {
    const bpr_state *s = m->impl;
    *dim = s->k;
    return s->Y;
}

const rec_kind REC_BPR = {
    .name = "bpr",
    .auto_grid = "epochs=100,200 lr=0.05,0.1 reg=0.001,0.01",
    .summary = "BPR matrix factorisation, SGD (Hogwild with threads), uniform or popularity negatives",
    .params = BPR_PARAMS,
    .init = bpr_init,
    .fit = bpr_fit,
    .score = bpr_score,
    .similar = bpr_similar,
    .explain = bpr_explain,
    .explain_style = REC_EXPLAIN_HISTORY,
    .item_vectors = bpr_item_vectors,
    .footprint = bpr_footprint,
    .save = bpr_save,
    .load = bpr_load,
    .free = bpr_free,
};
