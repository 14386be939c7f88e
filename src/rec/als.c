/* als.c — alternating least squares for implicit feedback (Hu, Koren,
 * Volinsky 2008). Preference p = 1 for every observed (user, item),
 * confidence c = 1 + alpha * r (r = 1, or the event value with
 * use_values=1). Each half-step solves, for every user (then item),
 *     (YtY + reg*I + sum_h (c_h - 1) y_h y_h^T) x = sum_h c_h y_h
 * either with a fixed number of conjugate-gradient steps warm-started from
 * the previous x (solver=cg, the fast path) or exactly by Cholesky
 * (solver=cholesky, the reference twin). YtY comes from OpenBLAS; rows are
 * solved in parallel, each independent, so results do not depend on the
 * thread count (they do, in the last bits, on the kernel set: below). */
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

/* The two products of a CG row, the whole of its time: y = A x with the
 * k x k Gram matrix, and the data term
 *     out += sum_a w_a y_a,  w_a = (1 + c_a) - c_a (y_a . v)  (rhs)
 *                        or  w_a = c_a (y_a . v)              (otherwise)
 * over the row's interactions a (c_a = alpha * r_a, y_a = fix[idx[a]]).
 * Written plainly (the scalar twin) and by hand for AVX2 and AVX-512: a
 * lone y.v dot product is a chain of dependent FMAs, so the vector kernels
 * take eight rows' dot products side by side, and the Gram product runs as
 * broadcast-FMAs over rows of A into accumulators kept in registers. */
typedef struct als_kernels {
    void (*symv)(const float *A, const float *x, float *y, int k);
    void (*data)(const als_state *s, const als_half *h, int64_t b, int64_t e, const float *v, float *out,
                 bool rhs);
} als_kernels;

static void symv_scalar(const float *A, const float *x, float *y, int k) { la_symv(A, x, y, k); }

static void data_scalar(const als_state *s, const als_half *h, int64_t b, int64_t e, const float *v, float *out,
                        bool rhs) {
    int k = s->k;
    for (int64_t a = b; a < e; a++) {
        const float *y = h->fix + (size_t)h->idx[a] * k;
        float cm1 = als_conf_minus1(s, h->val, a);
        float d = la_dot(y, v, k);
        la_axpy(rhs ? (1 + cm1) - cm1 * d : cm1 * d, y, out, k);
    }
}

#if defined(__x86_64__)
#include <immintrin.h>

__attribute__((target("avx2,fma"))) static inline float hsum256(__m256 v) {
    __m128 q = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    q = _mm_add_ps(q, _mm_movehl_ps(q, q));
    return _mm_cvtss_f32(_mm_add_ss(q, _mm_movehdup_ps(q)));
}

/* The eight lanes' sums of eight vectors, as one vector. */
__attribute__((target("avx2,fma"))) static inline __m256 hsum8x8(const __m256 *a) {
    __m256 s01 = _mm256_hadd_ps(a[0], a[1]), s23 = _mm256_hadd_ps(a[2], a[3]);
    __m256 s45 = _mm256_hadd_ps(a[4], a[5]), s67 = _mm256_hadd_ps(a[6], a[7]);
    __m256 s0123 = _mm256_hadd_ps(s01, s23), s4567 = _mm256_hadd_ps(s45, s67);
    /* lanes: [0..3 low halves | 0..3 high halves] and the same for 4..7 */
    __m256 lo = _mm256_permute2f128_ps(s0123, s4567, 0x20), hi = _mm256_permute2f128_ps(s0123, s4567, 0x31);
    return _mm256_add_ps(lo, hi);
}

/* NB vectors of y (from column c0) over all of A's rows; NB is a constant
 * at each call so the accumulators stay in registers. */
__attribute__((target("avx2,fma"))) static inline __attribute__((always_inline)) void
symv_block_avx2(const float *A, const float *x, float *y, int k, int c0, int nb) {
    __m256 acc[8];
    for (int m = 0; m < nb; m++) acc[m] = _mm256_setzero_ps();
    for (int j = 0; j < k; j++) {
        __m256 bx = _mm256_broadcast_ss(x + j);
        const float *row = A + (size_t)j * k + c0;
        for (int m = 0; m < nb; m++) acc[m] = _mm256_fmadd_ps(bx, _mm256_loadu_ps(row + 8 * m), acc[m]);
    }
    for (int m = 0; m < nb; m++) _mm256_storeu_ps(y + c0 + 8 * m, acc[m]);
}

/* y = A x as sum_j x_j A[j,:] (A is symmetric): independent accumulators,
 * no horizontal sums. */
__attribute__((target("avx2,fma"))) static void symv_avx2(const float *A, const float *x, float *y, int k) {
    int kv = k & ~7, c0 = 0;
    for (; c0 + 64 <= kv; c0 += 64) symv_block_avx2(A, x, y, k, c0, 8);
    switch ((kv - c0) / 8) {
    case 7: symv_block_avx2(A, x, y, k, c0, 7); break;
    case 6: symv_block_avx2(A, x, y, k, c0, 6); break;
    case 5: symv_block_avx2(A, x, y, k, c0, 5); break;
    case 4: symv_block_avx2(A, x, y, k, c0, 4); break;
    case 3: symv_block_avx2(A, x, y, k, c0, 3); break;
    case 2: symv_block_avx2(A, x, y, k, c0, 2); break;
    case 1: symv_block_avx2(A, x, y, k, c0, 1); break;
    default: break;
    }
    for (int i = kv; i < k; i++) y[i] = la_dot(A + (size_t)i * k, x, k);
}

/* The data term in windows of ALS_WIN interactions (their rows stay in the
 * L1 cache between the passes): every dot product first, eight rows side by
 * side; then the weights; then out += sum w_a y_a by column blocks held in
 * registers across the window's rows (two sets of accumulators, even and
 * odd rows, for the FMA latency). */
#define ALS_WIN 128

static void data_weights(const als_state *s, const als_half *h, int64_t a0, int n, float *w, bool rhs) {
    for (int i = 0; i < n; i++) {
        float cm1 = als_conf_minus1(s, h->val, a0 + i);
        w[i] = rhs ? (1 + cm1) - cm1 * w[i] : cm1 * w[i];
    }
}

/* The columns past the last whole vector (k not a multiple of its width). */
static void axpy_tail(const float *fix, const int32_t *idx, const float *w, int n, int k, int kv, float *out) {
    for (int i = 0; kv < k && i < n; i++) {
        const float *y = fix + (size_t)idx[i] * k;
        for (int j = kv; j < k; j++) out[j] += w[i] * y[j];
    }
}

__attribute__((target("avx2,fma"))) static inline __attribute__((always_inline)) void
axpy_block_avx2(const float *fix, const int32_t *idx, const float *w, int n, int k, int c0, int nb, float *out) {
    __m256 e[4], o[4];
    for (int m = 0; m < nb; m++) e[m] = _mm256_loadu_ps(out + c0 + 8 * m), o[m] = _mm256_setzero_ps();
    int i = 0;
    for (; i + 2 <= n; i += 2) {
        const float *y0 = fix + (size_t)idx[i] * k + c0, *y1 = fix + (size_t)idx[i + 1] * k + c0;
        __m256 w0 = _mm256_broadcast_ss(w + i), w1 = _mm256_broadcast_ss(w + i + 1);
        for (int m = 0; m < nb; m++) {
            e[m] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(y0 + 8 * m), e[m]);
            o[m] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(y1 + 8 * m), o[m]);
        }
    }
    if (i < n) {
        const float *y0 = fix + (size_t)idx[i] * k + c0;
        __m256 w0 = _mm256_broadcast_ss(w + i);
        for (int m = 0; m < nb; m++) e[m] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(y0 + 8 * m), e[m]);
    }
    for (int m = 0; m < nb; m++) _mm256_storeu_ps(out + c0 + 8 * m, _mm256_add_ps(e[m], o[m]));
}

__attribute__((target("avx2,fma"))) static void data_avx2(const als_state *s, const als_half *h, int64_t b, int64_t e,
                                                          const float *v, float *out, bool rhs) {
    int k = s->k, kv = k & ~7;
    if (kv == 0) {
        data_scalar(s, h, b, e, v, out, rhs);
        return;
    }
    float w[ALS_WIN];
    for (int64_t a0 = b; a0 < e; a0 += ALS_WIN) {
        int n = e - a0 < ALS_WIN ? (int)(e - a0) : ALS_WIN;
        const int32_t *idx = h->idx + a0;
        int i = 0;
        for (; i + 8 <= n; i += 8) {
            const float *y[8];
            __m256 acc[8];
            for (int r = 0; r < 8; r++) y[r] = h->fix + (size_t)idx[i + r] * k, acc[r] = _mm256_setzero_ps();
            for (int j = 0; j < kv; j += 8) {
                __m256 vv = _mm256_loadu_ps(v + j);
                for (int r = 0; r < 8; r++) acc[r] = _mm256_fmadd_ps(_mm256_loadu_ps(y[r] + j), vv, acc[r]);
            }
            _mm256_storeu_ps(w + i, hsum8x8(acc));
            for (int r = 0; r < 8; r++)
                for (int j = kv; j < k; j++) w[i + r] += y[r][j] * v[j];
        }
        for (; i < n; i++) {
            const float *y = h->fix + (size_t)idx[i] * k;
            __m256 acc = _mm256_setzero_ps();
            for (int j = 0; j < kv; j += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(y + j), _mm256_loadu_ps(v + j), acc);
            w[i] = hsum256(acc);
            for (int j = kv; j < k; j++) w[i] += y[j] * v[j];
        }
        data_weights(s, h, a0, n, w, rhs);
        int c0 = 0;
        for (; c0 + 32 <= kv; c0 += 32) axpy_block_avx2(h->fix, idx, w, n, k, c0, 4, out);
        switch ((kv - c0) / 8) {
        case 3: axpy_block_avx2(h->fix, idx, w, n, k, c0, 3, out); break;
        case 2: axpy_block_avx2(h->fix, idx, w, n, k, c0, 2, out); break;
        case 1: axpy_block_avx2(h->fix, idx, w, n, k, c0, 1, out); break;
        default: break;
        }
        axpy_tail(h->fix, idx, w, n, k, kv, out);
    }
}

/* Up to four vectors per row (k <= 64) leave too few accumulators for the
 * FMA latency: rows of A then go to two sets, even and odd. */
__attribute__((target("avx512f"))) static inline __attribute__((always_inline)) void
symv_block_avx512(const float *A, const float *x, float *y, int k, int c0, int nb) {
    __m512 e[8], o[4];
    for (int m = 0; m < nb; m++) e[m] = _mm512_setzero_ps();
    int j = 0;
    if (nb <= 4) {
        for (int m = 0; m < nb; m++) o[m] = _mm512_setzero_ps();
        for (; j + 2 <= k; j += 2) {
            __m512 b0 = _mm512_set1_ps(x[j]), b1 = _mm512_set1_ps(x[j + 1]);
            const float *r0 = A + (size_t)j * k + c0, *r1 = r0 + k;
            for (int m = 0; m < nb; m++) {
                e[m] = _mm512_fmadd_ps(b0, _mm512_loadu_ps(r0 + 16 * m), e[m]);
                o[m] = _mm512_fmadd_ps(b1, _mm512_loadu_ps(r1 + 16 * m), o[m]);
            }
        }
        for (int m = 0; m < nb; m++) e[m] = _mm512_add_ps(e[m], o[m]);
    }
    for (; j < k; j++) {
        __m512 bx = _mm512_set1_ps(x[j]);
        const float *row = A + (size_t)j * k + c0;
        for (int m = 0; m < nb; m++) e[m] = _mm512_fmadd_ps(bx, _mm512_loadu_ps(row + 16 * m), e[m]);
    }
    for (int m = 0; m < nb; m++) _mm512_storeu_ps(y + c0 + 16 * m, e[m]);
}

__attribute__((target("avx512f"))) static void symv_avx512(const float *A, const float *x, float *y, int k) {
    int kv = k & ~15, c0 = 0;
    for (; c0 + 128 <= kv; c0 += 128) symv_block_avx512(A, x, y, k, c0, 8);
    switch ((kv - c0) / 16) {
    case 7: symv_block_avx512(A, x, y, k, c0, 7); break;
    case 6: symv_block_avx512(A, x, y, k, c0, 6); break;
    case 5: symv_block_avx512(A, x, y, k, c0, 5); break;
    case 4: symv_block_avx512(A, x, y, k, c0, 4); break;
    case 3: symv_block_avx512(A, x, y, k, c0, 3); break;
    case 2: symv_block_avx512(A, x, y, k, c0, 2); break;
    case 1: symv_block_avx512(A, x, y, k, c0, 1); break;
    default: break;
    }
    for (int i = kv; i < k; i++) y[i] = la_dot(A + (size_t)i * k, x, k);
}

__attribute__((target("avx512f"))) static inline __attribute__((always_inline)) void
axpy_block_avx512(const float *fix, const int32_t *idx, const float *w, int n, int k, int c0, int nb, float *out) {
    __m512 e[4], o[4];
    for (int m = 0; m < nb; m++) e[m] = _mm512_loadu_ps(out + c0 + 16 * m), o[m] = _mm512_setzero_ps();
    int i = 0;
    for (; i + 2 <= n; i += 2) {
        const float *y0 = fix + (size_t)idx[i] * k + c0, *y1 = fix + (size_t)idx[i + 1] * k + c0;
        __m512 w0 = _mm512_set1_ps(w[i]), w1 = _mm512_set1_ps(w[i + 1]);
        for (int m = 0; m < nb; m++) {
            e[m] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(y0 + 16 * m), e[m]);
            o[m] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(y1 + 16 * m), o[m]);
        }
    }
    if (i < n) {
        const float *y0 = fix + (size_t)idx[i] * k + c0;
        __m512 w0 = _mm512_set1_ps(w[i]);
        for (int m = 0; m < nb; m++) e[m] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(y0 + 16 * m), e[m]);
    }
    for (int m = 0; m < nb; m++) _mm512_storeu_ps(out + c0 + 16 * m, _mm512_add_ps(e[m], o[m]));
}

__attribute__((target("avx512f,avx2,fma"))) static void data_avx512(const als_state *s, const als_half *h, int64_t b,
                                                                     int64_t e, const float *v, float *out, bool rhs) {
    int k = s->k, kv = k & ~15;
    if (kv == 0) {
        data_avx2(s, h, b, e, v, out, rhs);
        return;
    }
    float w[ALS_WIN];
    for (int64_t a0 = b; a0 < e; a0 += ALS_WIN) {
        int n = e - a0 < ALS_WIN ? (int)(e - a0) : ALS_WIN;
        const int32_t *idx = h->idx + a0;
        int i = 0;
        for (; i + 8 <= n; i += 8) {
            const float *y[8];
            __m512 acc[8];
            for (int r = 0; r < 8; r++) y[r] = h->fix + (size_t)idx[i + r] * k, acc[r] = _mm512_setzero_ps();
            for (int j = 0; j < kv; j += 16) {
                __m512 vv = _mm512_loadu_ps(v + j);
                for (int r = 0; r < 8; r++) acc[r] = _mm512_fmadd_ps(_mm512_loadu_ps(y[r] + j), vv, acc[r]);
            }
            /* Each sum's two halves, then the eight 8-lane sums at once. */
            __m256 half[8];
            for (int r = 0; r < 8; r++)
                half[r] = _mm256_add_ps(_mm512_castps512_ps256(acc[r]),
                                        _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc[r]), 1)));
            _mm256_storeu_ps(w + i, hsum8x8(half));
            for (int r = 0; r < 8; r++)
                for (int j = kv; j < k; j++) w[i + r] += y[r][j] * v[j];
        }
        for (; i < n; i++) {
            const float *y = h->fix + (size_t)idx[i] * k;
            __m512 acc = _mm512_setzero_ps();
            for (int j = 0; j < kv; j += 16) acc = _mm512_fmadd_ps(_mm512_loadu_ps(y + j), _mm512_loadu_ps(v + j), acc);
            w[i] = _mm512_reduce_add_ps(acc);
            for (int j = kv; j < k; j++) w[i] += y[j] * v[j];
        }
        data_weights(s, h, a0, n, w, rhs);
        int c0 = 0;
        for (; c0 + 64 <= kv; c0 += 64) axpy_block_avx512(h->fix, idx, w, n, k, c0, 4, out);
        switch ((kv - c0) / 16) {
        case 3: axpy_block_avx512(h->fix, idx, w, n, k, c0, 3, out); break;
        case 2: axpy_block_avx512(h->fix, idx, w, n, k, c0, 2, out); break;
        case 1: axpy_block_avx512(h->fix, idx, w, n, k, c0, 1, out); break;
        default: break;
        }
        axpy_tail(h->fix, idx, w, n, k, kv, out);
    }
}
#endif

/* By cpu_set (the vector sets exist on x86-64 only). */
static const als_kernels ALS_SETS[CPU_SET_COUNT] = {
    {symv_scalar, data_scalar},
#if defined(__x86_64__)
    {symv_avx2, data_avx2},
    {symv_avx512, data_avx512},
#endif
};

static const als_kernels *als_kernels_pick(void) {
    static const als_kernels *picked;
    if (!picked) picked = &ALS_SETS[cpu_set_best()];
    return picked;
}

/* Test hook (rec.h): the largest difference between the named set's two
 * products and the scalar twin's on random rows, relative to the largest
 * value; -1 when this CPU does not run the set. Widths cover the vector
 * blocks and every tail; row counts the eight-row groups and the windows. */
double rec_als_kernel_check(const char *set, uint64_t seed) {
    int which = cpu_set_named(set);
    if (which < 0) return -1;
    const als_kernels *kn = &ALS_SETS[which];
    static const int widths[] = {4, 6, 8, 13, 16, 24, 40, 64, 67, 100, 136, 256};
    static const int rows[] = {0, 1, 5, 8, 9, 17, 130, 300};
    rng g;
    rng_seed(&g, seed);
    double worst = 0;
    for (size_t wi = 0; wi < sizeof widths / sizeof *widths; wi++) {
        int k = widths[wi], nfix = 50;
        float *fix = xmalloc((size_t)nfix * k * sizeof *fix), *A = xmalloc((size_t)k * k * sizeof *A);
        float *v = xmalloc((size_t)k * sizeof *v), *o1 = xmalloc((size_t)k * sizeof *o1), *o2 = xmalloc((size_t)k * sizeof *o2);
        for (int i = 0; i < nfix * k; i++) fix[i] = (float)(rng_uniform(&g) - 0.5);
        for (int i = 0; i < k; i++)
            for (int j = 0; j <= i; j++) A[i * k + j] = A[j * k + i] = (float)(rng_uniform(&g) - 0.5);
        for (int i = 0; i < k; i++) v[i] = (float)(rng_uniform(&g) - 0.5);
        ALS_SETS[CPU_SET_SCALAR].symv(A, v, o1, k);
        kn->symv(A, v, o2, k);
        double big = 1e-30, diff = 0;
        for (int i = 0; i < k; i++) big = fmax(big, fabs(o1[i])), diff = fmax(diff, fabs(o1[i] - o2[i]));
        worst = fmax(worst, diff / big);
        for (size_t ri = 0; ri < sizeof rows / sizeof *rows; ri++)
            for (int mode = 0; mode < 4; mode++) {
                int n = rows[ri];
                int32_t *idx = xmalloc(((size_t)n + 1) * sizeof *idx);
                float *val = xmalloc(((size_t)n + 1) * sizeof *val);
                for (int a = 0; a < n; a++) idx[a] = (int32_t)rng_below(&g, (uint64_t)nfix), val[a] = (float)(1 + rng_uniform(&g));
                als_state st = {.k = k, .alpha = 3, .use_values = mode & 1};
                int64_t ptr[2] = {0, n};
                als_half h = {&st, ptr, idx, val, fix, NULL, NULL};
                for (int i = 0; i < k; i++) o1[i] = o2[i] = (float)(rng_uniform(&g) - 0.5);
                ALS_SETS[CPU_SET_SCALAR].data(&st, &h, 0, n, v, o1, mode & 2);
                kn->data(&st, &h, 0, n, v, o2, mode & 2);
                big = 1e-30, diff = 0;
                for (int i = 0; i < k; i++) big = fmax(big, fabs(o1[i])), diff = fmax(diff, fabs(o1[i] - o2[i]));
                worst = fmax(worst, diff / big);
                free(idx);
                free(val);
            }
        free(fix), free(A), free(v), free(o1), free(o2);
    }
    return worst;
}

/* A fixed number of CG steps from the current x (Hu et al.'s system,
 * written as implicit does it: A p = gram p + sum (c-1)(y.p) y). */
static inline __attribute__((always_inline)) void als_row_cg(const als_kernels *kn, const als_state *s, const als_half *h, int64_t b, int64_t e, float *x,
                       float *r, float *p, float *Ap) {
    int k = s->k;
    kn->symv(h->gram, x, r, k);
    /* r = b - A x with b = sum c_a y_a and A x = gram x + data part. */
    for (int i = 0; i < k; i++) r[i] = -r[i];
    kn->data(s, h, b, e, x, r, true);
    memcpy(p, r, (size_t)k * sizeof *p);
    float rsold = la_dot(r, r, k);
    if (rsold < 1e-20f) return;
    for (int it = 0; it < s->cg_steps; it++) {
        kn->symv(h->gram, p, Ap, k);
        kn->data(s, h, b, e, p, Ap, false);
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
    const als_kernels *kn = als_kernels_pick();
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
        else als_row_cg(kn, s, h, b, e, x, r, r + k, r + 2 * k);
    }
    free(r);
    free(A);
    free(Af);
}

/* The rows compiled twice (the exact solver's loops are left to the
 * compiler): for AVX2 + FMA, chosen at run time when the CPU has them, and
 * for the baseline x86-64. */
__attribute__((target("avx2,fma"))) static void als_half_rows_avx2(void *ctx, size_t begin,
                                                                   size_t end, int thread) {
    als_half_rows_impl(ctx, begin, end);
}

static void als_half_rows_base(void *ctx, size_t begin, size_t end, int thread) {
    als_half_rows_impl(ctx, begin, end);
}

static void als_half_rows(void *ctx, size_t begin, size_t end, int thread) {
    static int has_avx2 = -1;
    if (has_avx2 < 0) has_avx2 = cpu_set_named("avx2") >= 0;
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

static const float *als_item_vectors(const rec_model *m, int *dim) {
    const als_state *s = m->impl;
    *dim = s->k;
    return s->Y;
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
    .item_vectors = als_item_vectors,
    .footprint = als_footprint,
    .save = als_save,
    .load = als_load,
    .free = als_free,
};
