/* ease.c — EASE (Steck 2019): a dense item x item weight matrix in closed
 * form, B = I - P diagMat(1 / diag(P)) with P = (X^T X + lambda I)^-1, so
 * B_jj = 0 and B_ij = -P_ij / P_jj. The Gram matrix is accumulated from the
 * sparse rows and inverted in place through its Cholesky factor; the
 * factorisation and the inverse run block column by block column on
 * OpenBLAS's level-3 routines (the blocked algorithms of LAPACK's potrf,
 * trtri and lauum), so that a progress bar can follow them. Memory is one
 * dense n x n float matrix, so the model refuses catalogues above a bound
 * it states. A user's score for j is the sum of B_hj over the history
 * items h. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rec/rec.h"

/* LAPACK (Fortran interface, provided by OpenBLAS): the unblocked steps. */
void spotrf_(const char *uplo, const int *n, float *a, const int *lda, int *info);
void strtri_(const char *uplo, const char *diag, const int *n, float *a, const int *lda, int *info);
void slauum_(const char *uplo, const int *n, float *a, const int *lda, int *info);

typedef struct ease_state {
    float lambda;
    double memory_mb;
    bool f16;  /* weights rounded to half precision (and stored so) */
    float *B;  /* n_items x n_items, row h = what item h adds to every item */
} ease_state;

static const rec_param_spec EASE_PARAMS[] = {
    {"lambda", "100", "L2 regularisation (diagonal added to the Gram matrix)"},
    {"memory_mb", "8192", "refuse catalogues whose n x n float matrix needs more than this"},
    {"storage", "f16", "f16 (half the file, the same rankings in our measurements) or f32"},
    {NULL, NULL, NULL},
};

static int ease_init(rec_model *m, tailor_error *err) {
    ease_state *s = xcalloc(1, sizeof *s);
    m->impl = s;
    s->lambda = (float)rec_param_f64(m, "lambda");
    s->memory_mb = rec_param_f64(m, "memory_mb");
    const char *st = rec_param_str(m, "storage");
    if (!(s->lambda > 0)) return err_set(err, TAILOR_EINVAL, "ease: lambda must be > 0");
    if (strcmp(st, "f16") && strcmp(st, "f32")) return err_set(err, TAILOR_EINVAL, "ease: storage must be f16 or f32");
    s->f16 = !strcmp(st, "f16");
    return 0;
}

/* Largest item count whose float matrix fits in memory_mb. */
static int64_t ease_max_items(double memory_mb) {
    return (int64_t)floor(sqrt(memory_mb * 1048576.0 / sizeof(float)));
}

static void ease_footprint(const rec_model *m, int32_t n_users, int32_t n_items, int64_t nnz, double *train_bytes,
                           double *file_bytes) {
    const ease_state *s = m->impl;
    double n2 = (double)n_items * n_items;
    *file_bytes = n2 * (s->f16 ? 2 : 4);
    *train_bytes = n2 * sizeof(float) + *file_bytes; /* the matrix, then the file's bytes */
    (void)n_users, (void)nnz;
}

/* Progress in units of floating-point work, so the bar moves evenly
 * through the three phases. */
typedef struct ease_progress {
    progress bar;
    double done, scale;
} ease_progress;

static void ease_step(ease_progress *p, double flops) {
    p->done += flops;
    progress_update(&p->bar, (uint64_t)(p->done * p->scale));
}

enum { EASE_NB = 256 };
#define AT(i, j) (a + (size_t)(j) * n + (i)) /* column-major, lda = n */

/* Lower Cholesky factor in place (left-looking, as LAPACK's spotrf). */
static int ease_potrf(float *a, int n, ease_progress *p) {
    for (int j = 0; j < n; j += EASE_NB) {
        int jb = n - j < EASE_NB ? n - j : EASE_NB, info = 0, rest = n - j - jb;
        cblas_ssyrk(CblasColMajor, CblasLower, CblasNoTrans, jb, j, -1.0f, AT(j, 0), n, 1.0f, AT(j, j), n);
        spotrf_("L", &jb, AT(j, j), &n, &info);
        if (info) return j + info;
        if (rest > 0) {
            cblas_sgemm(CblasColMajor, CblasNoTrans, CblasTrans, rest, jb, j, -1.0f, AT(j + jb, 0), n, AT(j, 0), n,
                        1.0f, AT(j + jb, j), n);
            cblas_strsm(CblasColMajor, CblasRight, CblasLower, CblasTrans, CblasNonUnit, rest, jb, 1.0f, AT(j, j), n,
                        AT(j + jb, j), n);
        }
        ease_step(p, (double)jb * ((double)j * (j + 2.0 * rest) + (double)jb * jb / 3 + (double)rest * jb));
    }
    return 0;
}

/* Inverse of the lower triangle in place (as LAPACK's strtri). */
static int ease_trtri(float *a, int n, ease_progress *p) {
    for (int j = ((n - 1) / EASE_NB) * EASE_NB; j >= 0; j -= EASE_NB) {
        int jb = n - j < EASE_NB ? n - j : EASE_NB, info = 0, rest = n - j - jb;
        if (rest > 0) {
            cblas_strmm(CblasColMajor, CblasLeft, CblasLower, CblasNoTrans, CblasNonUnit, rest, jb, 1.0f,
                        AT(j + jb, j + jb), n, AT(j + jb, j), n);
            cblas_strsm(CblasColMajor, CblasRight, CblasLower, CblasNoTrans, CblasNonUnit, rest, jb, -1.0f, AT(j, j),
                        n, AT(j + jb, j), n);
        }
        strtri_("L", "N", &jb, AT(j, j), &n, &info);
        if (info) return j + info;
        ease_step(p, (double)jb * ((double)rest * rest + (double)rest * jb + (double)jb * jb / 3));
    }
    return 0;
}

/* L^T L of the lower triangle in place (as LAPACK's slauum). */
static void ease_lauum(float *a, int n, ease_progress *p) {
    for (int i = 0; i < n; i += EASE_NB) {
        int ib = n - i < EASE_NB ? n - i : EASE_NB, info = 0, rest = n - i - ib;
        cblas_strmm(CblasColMajor, CblasLeft, CblasLower, CblasTrans, CblasNonUnit, ib, i, 1.0f, AT(i, i), n, AT(i, 0),
                    n);
        slauum_("L", &ib, AT(i, i), &n, &info);
        if (rest > 0) {
            cblas_sgemm(CblasColMajor, CblasTrans, CblasNoTrans, ib, i, rest, 1.0f, AT(i + ib, i), n, AT(i + ib, 0), n,
                        1.0f, AT(i, 0), n);
            cblas_ssyrk(CblasColMajor, CblasLower, CblasTrans, ib, rest, 1.0f, AT(i + ib, i), n, 1.0f, AT(i, i), n);
        }
        ease_step(p, (double)ib * ((double)i * ib + (double)ib * ib / 3 + 2.0 * rest * i + (double)rest * ib));
    }
}
#undef AT

static int ease_fit(rec_model *m, const rec_data *d, tailor_error *err) {
    ease_state *s = m->impl;
    int32_t ni = d->n_items;
    double need_mb = (double)ni * ni * sizeof(float) / 1048576.0;
    if (need_mb > s->memory_mb)
        return err_set(err, TAILOR_EUNSUPPORTED,
                       "ease: %d items need %.0f MiB (a dense %d x %d float matrix), over the "
                       "bound of %.0f MiB (memory_mb), which allows at most %lld items; raise "
                       "memory_mb if the machine has the memory, or filter the catalogue",
                       ni, need_mb, ni, ni, s->memory_mb, (long long)ease_max_items(s->memory_mb));
    free(s->B);
    s->B = NULL;
    size_t n2 = (size_t)ni * ni;
    float *G = xcalloc(n2 ? n2 : 1, sizeof *G);
    /* Work: the Gram pairs, then n^3/3 (factor), n^3/3 (triangle inverse)
     * and n^3/3 (product) multiply-adds. */
    double pairs = 0, cube = (double)ni * ni * ni / 3;
    for (int32_t u = 0; u < d->n_users; u++) {
        double l = (double)(d->indptr[u + 1] - d->indptr[u]);
        pairs += l * (l + 1) / 2;
    }
    ease_progress pr = {.scale = 1000.0 / (pairs + 3 * cube + 1)};
    progress_begin(&pr.bar, "ease", 1000);
    if (m->quiet) pr.bar.active = false;
    /* Gram matrix of the binary interaction matrix: upper triangle from
     * each user's co-occurring pairs. */
    for (int32_t u = 0; u < d->n_users; u++) {
        int64_t len = d->indptr[u + 1] - d->indptr[u];
        for (int64_t a = d->indptr[u]; a < d->indptr[u + 1]; a++) {
            int32_t i = d->indices[a];
            float *row = G + (size_t)i * ni;
            for (int64_t b = a; b < d->indptr[u + 1]; b++) row[d->indices[b]] += 1.0f;
        }
        if ((u & 255) == 0) ease_step(&pr, 0);
        pr.done += (double)len * (len + 1) / 2;
    }
    for (int32_t i = 0; i < ni; i++) G[(size_t)i * ni + i] += s->lambda;
    /* Row-major upper = column-major lower. */
    int n = ni, info = 0;
    openblas_set_num_threads(m->pool ? pool_threads(m->pool) : 1);
    info = ease_potrf(G, n, &pr);
    if (!info) info = ease_trtri(G, n, &pr);
    if (!info) ease_lauum(G, n, &pr);
    openblas_set_num_threads(1); /* idle OpenBLAS threads spin beside ours */
    progress_end(&pr.bar);
    if (info != 0) {
        free(G);
        return err_set(err, TAILOR_EINTERNAL, "ease: the Gram matrix is not positive definite (column %d)", info);
    }
    for (int32_t i = 0; i < ni; i++) /* mirror the upper triangle down */
        for (int32_t j = 0; j < i; j++) G[(size_t)i * ni + j] = G[(size_t)j * ni + i];
    /* B_ij = -P_ij / P_jj, zero diagonal. */
    float *inv_diag = xmalloc(((size_t)ni + 1) * sizeof *inv_diag);
    for (int32_t j = 0; j < ni; j++) inv_diag[j] = 1.0f / G[(size_t)j * ni + j];
    for (int32_t i = 0; i < ni; i++) {
        float *row = G + (size_t)i * ni;
        for (int32_t j = 0; j < ni; j++) {
            float b = i == j ? 0.0f : -row[j] * inv_diag[j];
            /* What is evaluated is what is served: round as it is stored. */
            row[j] = s->f16 ? f32_from_f16(f16_from_f32(b)) : b;
        }
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
    size_t n2 = (size_t)m->n_items * m->n_items;
    if (!s->f16) {
        rec_write_array(out, s->B, sizeof(float), n2);
        return;
    }
    /* Converted in chunks: no second copy of the matrix. */
    uint64_t count = n2;
    sb_append(out, (const char *)&count, 8);
    uint16_t h[4096];
    for (size_t i = 0; i < n2; i += 4096) {
        size_t c = n2 - i < 4096 ? n2 - i : 4096;
        for (size_t j = 0; j < c; j++) h[j] = f16_from_f32(s->B[i + j]);
        sb_append(out, (const char *)h, c * sizeof *h);
    }
}

static int ease_load(rec_model *m, const char *buf, size_t n, tailor_error *err) {
    ease_state *s = m->impl;
    rec_reader r = {buf, n};
    void *B = NULL;
    int64_t n2 = (int64_t)m->n_items * m->n_items;
    /* The payload's size tells its precision: files from before the
     * storage parameter hold floats whatever the default is now. */
    s->f16 = n2 > 0 && n == 8 + (size_t)n2 * sizeof(uint16_t);
    if (!rec_read_array(&r, s->f16 ? sizeof(uint16_t) : sizeof(float), n2, &B, NULL) || r.left) {
        free(B);
        return err_set(err, TAILOR_EDATA, "ease: bad payload");
    }
    if (s->f16) { /* served in float: scoring adds rows */
        float *f = xmalloc((size_t)(n2 ? n2 : 1) * sizeof *f);
        for (int64_t i = 0; i < n2; i++) f[i] = f32_from_f16(((uint16_t *)B)[i]);
        free(B);
        B = f;
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
    .auto_grid = "lambda=20,50,100,200,500",
    .summary = "EASE closed-form item-item model (Steck 2019)",
    .params = EASE_PARAMS,
    .init = ease_init,
    .fit = ease_fit,
    .score = ease_score,
    .similar = ease_similar,
    .explain = ease_explain,
    .explain_style = REC_EXPLAIN_HISTORY,
    .footprint = ease_footprint,
    .save = ease_save,
    .load = ease_load,
    .free = ease_free,
};
