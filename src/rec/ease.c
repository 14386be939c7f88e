/* ease.c — EASE (Steck 2019): a dense item x item weight matrix in closed
 * form, B = I - P diagMat(1 / diag(P)) with P = (X^T X + lambda I)^-1, so
 * B_jj = 0 and B_ij = -P_ij / P_jj. The Gram matrix is accumulated from the
 * sparse rows; the inverse comes from LAPACK (Cholesky factor and inverse,
 * OpenBLAS). Memory is two dense n x n float matrices, so the model refuses
 * catalogues above a bound it states. A user's score for j is the sum of
 * B_hj over the history items h. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rec/rec.h"

/* LAPACK (Fortran interface, provided by OpenBLAS). */
void spotrf_(const char *uplo, const int *n, float *a, const int *lda, int *info);
void spotri_(const char *uplo, const int *n, float *a, const int *lda, int *info);

typedef struct ease_state {
    float lambda;
    double memory_mb;
    float *B; /* n_items x n_items, row h = what item h adds to every item */
} ease_state;

static const rec_param_spec EASE_PARAMS[] = {
    {"lambda", "500", "L2 regularisation (diagonal added to the Gram matrix)"},
    {"memory_mb", "8192", "refuse catalogues whose two n x n matrices need more than this"},
    {NULL, NULL, NULL},
};

static int ease_init(rec_model *m, tailor_error *err) {
    ease_state *s = xcalloc(1, sizeof *s);
    m->impl = s;
    s->lambda = (float)rec_param_f64(m, "lambda");
    s->memory_mb = rec_param_f64(m, "memory_mb");
    if (!(s->lambda > 0)) return err_set(err, TAILOR_EINVAL, "ease: lambda must be > 0");
    return 0;
}

/* Largest item count whose two float matrices fit in memory_mb. */
static int64_t ease_max_items(double memory_mb) {
    return (int64_t)floor(sqrt(memory_mb * 1048576.0 / (2.0 * sizeof(float))));
}

static int ease_fit(rec_model *m, const rec_data *d, tailor_error *err) {
    ease_state *s = m->impl;
    int32_t ni = d->n_items;
    double need_mb = 2.0 * (double)ni * ni * sizeof(float) / 1048576.0;
    if (need_mb > s->memory_mb)
        return err_set(err, TAILOR_EUNSUPPORTED,
                       "ease: %d items need %.0f MiB (two dense %d x %d float matrices), over the "
                       "bound of %.0f MiB (memory_mb), which allows at most %lld items; raise "
                       "memory_mb if the machine has the memory, or filter the catalogue",
                       ni, need_mb, ni, ni, s->memory_mb, (long long)ease_max_items(s->memory_mb));
    free(s->B);
    size_t n2 = (size_t)ni * ni;
    float *G = xcalloc(n2 ? n2 : 1, sizeof *G);
    /* Gram matrix of the binary interaction matrix: upper triangle from
     * each user's co-occurring pairs. */
    for (int32_t u = 0; u < d->n_users; u++)
        for (int64_t a = d->indptr[u]; a < d->indptr[u + 1]; a++) {
            int32_t i = d->indices[a];
            float *row = G + (size_t)i * ni;
            for (int64_t b = a; b < d->indptr[u + 1]; b++) row[d->indices[b]] += 1.0f;
        }
    for (int32_t i = 0; i < ni; i++) G[(size_t)i * ni + i] += s->lambda;
    /* Row-major upper = column-major lower. */
    int n = ni, info = 0;
    openblas_set_num_threads(m->pool ? pool_threads(m->pool) : 1);
    spotrf_("L", &n, G, &n, &info);
    if (info == 0) spotri_("L", &n, G, &n, &info);
    openblas_set_num_threads(1); /* idle OpenBLAS threads spin beside ours */
    if (info != 0) {
        free(G);
        return err_set(err, TAILOR_EINTERNAL, "ease: inverting the Gram matrix failed (LAPACK info %d)", info);
    }
    for (int32_t i = 0; i < ni; i++) /* mirror the upper triangle down */
        for (int32_t j = 0; j < i; j++) G[(size_t)i * ni + j] = G[(size_t)j * ni + i];
    /* B_ij = -P_ij / P_jj, zero diagonal. */
    float *inv_diag = xmalloc(((size_t)ni + 1) * sizeof *inv_diag);
    for (int32_t j = 0; j < ni; j++) inv_diag[j] = 1.0f / G[(size_t)j * ni + j];
    for (int32_t i = 0; i < ni; i++) {
        float *row = G + (size_t)i * ni;
        for (int32_t j = 0; j < ni; j++) row[j] = i == j ? 0.0f : -row[j] * inv_diag[j];
    }
    free(inv_diag);
    s->B = G;
    return 0;
}

static void ease_score(const rec_model *m, int32_t user, const int32_t *hist, const float *vals,
                       size_t n, float *out) {
    const ease_state *s = m->impl;
    int32_t ni = m->n_items;
    memset(out, 0, (size_t)ni * sizeof *out);
    for (size_t h = 0; h < n; h++)
        if (hist[h] >= 0 && hist[h] < ni) cblas_saxpy(ni, 1.0f, s->B + (size_t)hist[h] * ni, 1, out, 1);
}

static void ease_similar(const rec_model *m, int32_t item, float *out) {
    const ease_state *s = m->impl;
    memcpy(out, s->B + (size_t)item * m->n_items, (size_t)m->n_items * sizeof *out);
    out[item] = -INFINITY;
}

static void ease_explain(const rec_model *m, int32_t user, const int32_t *hist, const float *vals,
                         size_t n, int32_t item, float *contrib) {
    const ease_state *s = m->impl;
    for (size_t h = 0; h < n; h++)
        contrib[h] = hist[h] >= 0 && hist[h] < m->n_items ? s->B[(size_t)hist[h] * m->n_items + item] : 0;
}

static void ease_save(const rec_model *m, sb *out) {
    const ease_state *s = m->impl;
    rec_write_array(out, s->B, sizeof(float), (size_t)m->n_items * m->n_items);
}

static int ease_load(rec_model *m, const char *buf, size_t n, tailor_error *err) {
    ease_state *s = m->impl;
    rec_reader r = {buf, n};
    void *B = NULL;
    if (!rec_read_array(&r, sizeof(float), (int64_t)m->n_items * m->n_items, &B, NULL) || r.left) {
        free(B);
        return err_set(err, TAILOR_EDATA, "ease: bad payload");
    }
    free(s->B);
    s->B = B;
    return 0;
}

static void ease_free(rec_model *m) {
    ease_state *s = m->impl;
    if (s) free(s->B);
    free(s);
}

const rec_kind REC_EASE = {
    .name = "ease",
    .summary = "EASE closed-form item-item model (Steck 2019)",
    .params = EASE_PARAMS,
    .init = ease_init,
    .fit = ease_fit,
    .score = ease_score,
    .similar = ease_similar,
    .explain = ease_explain,
    .save = ease_save,
    .load = ease_load,
    .free = ease_free,
};
