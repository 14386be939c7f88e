/* als.c — alternating least squares for implicit feedback (Hu, Koren,
 * Volinsky 2008). Preference p = 1 for every observed (user, item),
 * confidence c = 1 + alpha * r (r = 1, or the event value with
 * use_values=1). Each half-step solves, for every user (then item),
 *     (YtY + reg*I + sum_h (c_h - 1) y_h y_h^T) x = sum_h c_h y_h
 * either with a fixed number of conjugate-gradient steps warm-started from
 * the previous x (solver=cg, the fast path) or exactly by Cholesky
 * (solver=cholesky, the reference twin). YtY comes from OpenBLAS; rows are
 * solved in parallel, each independent, so results do not depend on the
 * thread count. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rec/linalg.h"
#include "rec/rec.h"

typedef struct als_state {
    int k, iterations, cg_steps;
    bool exact, use_values;
    float reg, alpha;
    float *X; /* n_users x k */
    float *Y; /* n_items x k */
} als_state;

static const rec_param_spec ALS_PARAMS[] = {
    {"factors", "256", "latent factors"},
    {"reg", "50", "L2 regularisation"},
    {"alpha", "20", "confidence slope: c = 1 + alpha * r"},
    {"iterations", "15", "alternating sweeps"},
    {"solver", "cg", "cg (conjugate gradient) or cholesky (exact)"},
    {"cg_steps", "3", "conjugate-gradient steps per row and sweep"},
    {"use_values", "0", "1: r is the event value; 0: r = 1 for every interaction"},
    {NULL, NULL, NULL},
};

static int als_init(rec_model *m, tailor_error *err) {
    als_state *s = xcalloc(1, sizeof *s);
    m->impl = s;
    s->k = (int)rec_param_i64(m, "factors");
    s->iterations = (int)rec_param_i64(m, "iterations");
    s->cg_steps = (int)rec_param_i64(m, "cg_steps");
    s->reg = (float)rec_param_f64(m, "reg");
    s->alpha = (float)rec_param_f64(m, "alpha");
    s->use_values = rec_param_i64(m, "use_values") != 0;
    const char *solver = rec_param_str(m, "solver");
    if (!strcmp(solver, "cholesky")) s->exact = true;
    else if (strcmp(solver, "cg")) return err_set(err, TAILOR_EINVAL, "als: solver must be cg or cholesky, not '%s'", solver);
    if (s->k < 1 || s->k > 1024 || s->iterations < 0 || s->cg_steps < 1 || s->reg < 0 || s->alpha < 0)
        return err_set(err, TAILOR_EINVAL,
                       "als: need 1 <= factors <= 1024, iterations >= 0, cg_steps >= 1, reg >= 0, alpha >= 0");
    return 0;
}

/* One side of the alternation: solve the rows of `out` (n rows) given the
 * fixed factors `fix` (m rows) and the CSR rows of the interaction matrix
 * seen from out's side. */
typedef struct als_half {
    const als_state *s;
    const int64_t *ptr;
    const int32_t *idx;
    const float *val;
    const float *fix;
    float *out;
    const float *gram; /* fix^T fix + reg I, k x k */
} als_half;

static inline float als_conf_minus1(const als_state *s, const float *val, int64_t a) {
    return s->alpha * (s->use_values && val ? val[a] : 1.0f);
}

/* Exact solve of one row: the reference. The system is accumulated in
 * float with rank-1 row updates (vectorised), then factored in double. */
static inline __attribute__((always_inline)) void als_row_exact(const als_state *s, const als_half *h, int64_t b, int64_t e, float *x,
                          float *Af, double *A, double *rhs, double *sol) {
    int k = s->k;
    memcpy(Af, h->gram, (size_t)k * k * sizeof *Af);
    float *bf = Af + (size_t)k * k;
    memset(bf, 0, (size_t)k * sizeof *bf);
    for (int64_t a = b; a < e; a++) {
        const float *y = h->fix + (size_t)h->idx[a] * k;
        float cm1 = als_conf_minus1(s, h->val, a);
        la_axpy(1 + cm1, y, bf, k);
        for (int i = 0; i < k; i++) la_axpy(cm1 * y[i], y, Af + (size_t)i * k, k);
    }
    for (int i = 0; i < k * k; i++) A[i] = Af[i];
    for (int i = 0; i < k; i++) rhs[i] = bf[i];
    if (la_cholesky_solve(A, rhs, sol, k))
        for (int i = 0; i < k; i++) x[i] = (float)sol[i];
}

/* A fixed number of CG steps from the current x (Hu et al.'s system,
 * written as implicit does it: A p = gram p + sum (c-1)(y.p) y). */
static inline __attribute__((always_inline)) void als_row_cg(const als_state *s, const als_half *h, int64_t b, int64_t e, float *x,
                       float *r, float *p, float *Ap) {
    int k = s->k;
    la_symv(h->gram, x, r, k);
    /* r = b - A x with b = sum c_a y_a and A x = gram x + data part. */
    for (int i = 0; i < k; i++) r[i] = -r[i];
    for (int64_t a = b; a < e; a++) {
        const float *y = h->fix + (size_t)h->idx[a] * k;
        float cm1 = als_conf_minus1(s, h->val, a);
        la_axpy((1 + cm1) - cm1 * la_dot(y, x, k), y, r, k);
    }
    memcpy(p, r, (size_t)k * sizeof *p);
    float rsold = la_dot(r, r, k);
    if (rsold < 1e-20f) return;
    for (int it = 0; it < s->cg_steps; it++) {
        la_symv(h->gram, p, Ap, k);
        for (int64_t a = b; a < e; a++) {
            const float *y = h->fix + (size_t)h->idx[a] * k;
            la_axpy(als_conf_minus1(s, h->val, a) * la_dot(y, p, k), y, Ap, k);
        }
        float pAp = la_dot(p, Ap, k);
        if (!(pAp > 0)) break;
        float step = rsold / pAp;
        la_axpy(step, p, x, k);
        la_axpy(-step, Ap, r, k);
        float rsnew = la_dot(r, r, k);
        if (rsnew < 1e-20f) break;
        float beta = rsnew / rsold;
        for (int i = 0; i < k; i++) p[i] = r[i] + beta * p[i];
        rsold = rsnew;
    }
}

static inline __attribute__((always_inline)) void als_half_rows_impl(void *ctx, size_t begin,
                                                                     size_t end) {
    als_half *h = ctx;
    const als_state *s = h->s;
    int k = s->k;
    float *r = xmalloc(3 * (size_t)k * sizeof *r);
    double *A = s->exact ? xmalloc(((size_t)k * k + 2 * (size_t)k) * sizeof *A) : NULL;
    float *Af = s->exact ? xmalloc(((size_t)k * k + (size_t)k) * sizeof *Af) : NULL;
    for (size_t u = begin; u < end; u++) {
        float *x = h->out + u * (size_t)k;
        int64_t b = h->ptr[u], e = h->ptr[u + 1];
        if (b == e) { /* nothing observed: the minimiser is 0 */
            memset(x, 0, (size_t)k * sizeof *x);
            continue;
        }
        if (s->exact) als_row_exact(s, h, b, e, x, Af, A, A + (size_t)k * k, A + (size_t)k * k + k);
        else als_row_cg(s, h, b, e, x, r, r + k, r + 2 * k);
    }
    free(r);
    free(A);
    free(Af);
}

/* The same rows compiled twice: for AVX2 + FMA, chosen at run time when
 * the CPU has them, and for the baseline x86-64. */
__attribute__((target("avx2,fma"))) static void als_half_rows_avx2(void *ctx, size_t begin,
                                                                   size_t end, int thread) {
    als_half_rows_impl(ctx, begin, end);
}

static void als_half_rows_base(void *ctx, size_t begin, size_t end, int thread) {
    als_half_rows_impl(ctx, begin, end);
}

static void als_half_rows(void *ctx, size_t begin, size_t end, int thread) {
    static int has_avx2 = -1;
    if (has_avx2 < 0) has_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (has_avx2) als_half_rows_avx2(ctx, begin, end, thread);
    else als_half_rows_base(ctx, begin, end, thread);
}

/* gram = F^T F + reg I (F: n x k). */
static void als_gram(const float *F, int32_t n, int k, float reg, float *gram) {
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, k, k, n, 1.0f, F, k, F, k, 0.0f, gram, k);
    for (int i = 0; i < k; i++) gram[i * k + i] += reg;
}

static int als_fit(rec_model *m, const rec_data *d, tailor_error *err) {
    als_state *s = m->impl;
    int k = s->k;
    int32_t nu = d->n_users, ni = d->n_items;
    int64_t nnz = rec_data_nnz(d);
    free(s->X);
    free(s->Y);
    s->X = xmalloc(((size_t)nu * k + 1) * sizeof(float));
    s->Y = xmalloc(((size_t)ni * k + 1) * sizeof(float));
    rng g;
    rng_seed(&g, m->seed);
    for (size_t i = 0; i < (size_t)nu * k; i++) s->X[i] = (float)(rng_uniform(&g) * 0.01);
    for (size_t i = 0; i < (size_t)ni * k; i++) s->Y[i] = (float)(rng_uniform(&g) * 0.01);
    /* The item side reads the matrix by columns. */
    int64_t *cptr = xcalloc((size_t)ni + 1, sizeof *cptr);
    int32_t *cidx = xmalloc((size_t)(nnz ? nnz : 1) * sizeof *cidx);
    float *cval = xmalloc((size_t)(nnz ? nnz : 1) * sizeof *cval);
    for (int64_t a = 0; a < nnz; a++) cptr[d->indices[a] + 1]++;
    for (int32_t i = 0; i < ni; i++) cptr[i + 1] += cptr[i];
    int64_t *fill = xmalloc(((size_t)ni + 1) * sizeof *fill);
    memcpy(fill, cptr, ((size_t)ni + 1) * sizeof *fill);
    for (int32_t u = 0; u < nu; u++)
        for (int64_t a = d->indptr[u]; a < d->indptr[u + 1]; a++) {
            int64_t at = fill[d->indices[a]]++;
            cidx[at] = u;
            cval[at] = d->values ? d->values[a] : 1.0f;
        }
    free(fill);
    float *gram = xmalloc((size_t)k * k * sizeof *gram);
    progress bar;
    progress_begin(&bar, "als", (uint64_t)s->iterations);
    if (m->quiet) bar.active = false;
    /* The k x k Gram products are small: OpenBLAS threads would only spin
     * (sched_yield) beside the pool's. */
    openblas_set_num_threads(1);
    for (int it = 0; it < s->iterations; it++) {
        als_half users = {s, d->indptr, d->indices, d->values, s->Y, s->X, gram};
        als_gram(s->Y, ni, k, s->reg, gram);
        if (m->pool) pool_for(m->pool, (size_t)nu, als_half_rows, &users);
        else als_half_rows(&users, 0, (size_t)nu, 0);
        als_half items = {s, cptr, cidx, cval, s->X, s->Y, gram};
        als_gram(s->X, nu, k, s->reg, gram);
        if (m->pool) pool_for(m->pool, (size_t)ni, als_half_rows, &items);
        else als_half_rows(&items, 0, (size_t)ni, 0);
        progress_update(&bar, (uint64_t)it + 1);
    }
    progress_end(&bar);
    free(gram);
    free(cptr);
    free(cidx);
    free(cval);
    (void)err;
    return 0;
}

/* Folds a history in: the exact user solve against the trained items. */
static void als_fold_in(const als_state *s, int32_t n_items, const int32_t *hist, const float *vals,
                        size_t n, float *x) {
    int k = s->k;
    float *gram = xmalloc((size_t)k * k * sizeof *gram);
    als_gram(s->Y, n_items, k, s->reg, gram);
    int32_t *idx = xmalloc((n ? n : 1) * sizeof *idx);
    float *val = xmalloc((n ? n : 1) * sizeof *val);
    size_t m = 0;
    for (size_t h = 0; h < n; h++)
        if (hist[h] >= 0 && hist[h] < n_items) idx[m] = hist[h], val[m++] = vals ? vals[h] : 1.0f;
    int64_t ptr[2] = {0, (int64_t)m};
    als_half half = {s, ptr, idx, val, s->Y, x, gram};
    als_state exact = *s;
    exact.exact = true;
    half.s = &exact;
    memset(x, 0, (size_t)k * sizeof *x);
    als_half_rows(&half, 0, 1, 0);
    free(gram);
    free(idx);
    free(val);
}

static void als_score(const rec_model *m, int32_t user, const int32_t *hist, const float *vals,
                      size_t n, float *out) {
    const als_state *s = m->impl;
    int k = s->k;
    float *fold = NULL;
    const float *x;
    if (user >= 0 && user < m->n_users) {
        x = s->X + (size_t)user * k;
    } else {
        fold = xmalloc((size_t)k * sizeof *fold);
        als_fold_in(s, m->n_items, hist, vals, n, fold);
        x = fold;
    }
    cblas_sgemv(CblasRowMajor, CblasNoTrans, m->n_items, k, 1.0f, s->Y, k, x, 1, 0.0f, out, 1);
    free(fold);
}

static void als_similar(const rec_model *m, int32_t item, float *out) {
    const als_state *s = m->impl;
    la_cosine_rows(s->Y, m->n_items, s->k, item, out);
}

/* score(item) = y_item . x_u with x_u = W sum_h c_h y_h, W the inverse of
 * the user's system: contribution of h = c_h * (W y_item) . y_h (Hu et
 * al., section 5). */
static void als_explain(const rec_model *m, int32_t user, const int32_t *hist, const float *vals,
                        size_t n, int32_t item, float *contrib) {
    const als_state *s = m->impl;
    int k = s->k;
    float *gram = xmalloc((size_t)k * k * sizeof *gram);
    als_gram(s->Y, m->n_items, k, s->reg, gram);
    double *A = xmalloc(((size_t)k * k + 2 * (size_t)k) * sizeof *A);
    double *rhs = A + (size_t)k * k, *w = rhs + k;
    for (int i = 0; i < k * k; i++) A[i] = gram[i];
    for (size_t h = 0; h < n; h++) {
        if (hist[h] < 0 || hist[h] >= m->n_items) continue;
        const float *y = s->Y + (size_t)hist[h] * k;
        float cm1 = s->alpha * (s->use_values && vals ? vals[h] : 1.0f);
        for (int i = 0; i < k; i++)
            for (int j = 0; j < k; j++) A[i * k + j] += (double)cm1 * y[i] * y[j];
    }
    const float *yi = s->Y + (size_t)item * k;
    for (int i = 0; i < k; i++) rhs[i] = yi[i];
    bool ok = la_cholesky_solve(A, rhs, w, k);
    for (size_t h = 0; h < n; h++) {
        contrib[h] = 0;
        if (!ok || hist[h] < 0 || hist[h] >= m->n_items) continue;
        const float *y = s->Y + (size_t)hist[h] * k;
        double dot = 0;
        for (int i = 0; i < k; i++) dot += w[i] * y[i];
        float c = 1 + s->alpha * (s->use_values && vals ? vals[h] : 1.0f);
        contrib[h] = (float)(c * dot);
    }
    free(A);
    free(gram);
    (void)user;
}

static void als_save(const rec_model *m, sb *out) {
    const als_state *s = m->impl;
    rec_write_array(out, s->X, sizeof(float), (size_t)m->n_users * s->k);
    rec_write_array(out, s->Y, sizeof(float), (size_t)m->n_items * s->k);
}

static int als_load(rec_model *m, const char *buf, size_t n, tailor_error *err) {
    als_state *s = m->impl;
    rec_reader r = {buf, n};
    void *X = NULL, *Y = NULL;
    if (!rec_read_array(&r, sizeof(float), (int64_t)m->n_users * s->k, &X, NULL) ||
        !rec_read_array(&r, sizeof(float), (int64_t)m->n_items * s->k, &Y, NULL) || r.left) {
        free(X);
        free(Y);
        return err_set(err, TAILOR_EDATA, "als: bad payload");
    }
    free(s->X);
    free(s->Y);
    s->X = X, s->Y = Y;
    return 0;
}

static void als_free(rec_model *m) {
    als_state *s = m->impl;
    if (s) free(s->X), free(s->Y);
    free(s);
}

static void als_footprint(const rec_model *m, int32_t n_users, int32_t n_items, int64_t nnz, double *train_bytes,
                          double *file_bytes) {
    const als_state *s = m->impl;
    *file_bytes = ((double)n_users + n_items) * s->k * sizeof(float);
    *train_bytes = *file_bytes + (double)nnz * 12;
}

const rec_kind REC_ALS = {
    .name = "als",
    .auto_grid = "factors=128,256 reg=10,50,100 alpha=5,20,50",
    .summary = "implicit-feedback ALS (Hu, Koren, Volinsky 2008), CG or exact solver",
    .params = ALS_PARAMS,
    .init = als_init,
    .fit = als_fit,
    .score = als_score,
    .similar = als_similar,
    .explain = als_explain,
    .explain_style = REC_EXPLAIN_HISTORY,
    .footprint = als_footprint,
    .save = als_save,
    .load = als_load,
    .free = als_free,
};
