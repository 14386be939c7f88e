/* vexp.c — exp over a row for the softmaxes of training (full cross-entropy
 * over a catalogue or a vocabulary, attention rows): one exp per logit is
 * most of a softmax's time, and glibc's expf is scalar (its vector form
 * needs -ffast-math). One algorithm, written three times: plain C (the
 * twin), AVX2 + FMA and AVX-512, chosen by CPUID.
 *
 * exp(x) = 2^n e^r with n = round(x / ln 2), r = x - n ln 2 taken in two
 * parts (Cody-Waite) so that |r| <= ln 2 / 2 exactly enough, and
 * e^r = 1 + r + r^2 q(r), q a degree-4 polynomial fitted to relative error
 * on that interval (1.2e-7 at most, against 6e-8 for a correctly rounded
 * float). Below ln(FLT_MIN) the result is 0, NaN stays NaN. */
#include <math.h>
#include <string.h>

#include "nn/nn.h"

#define VX_LO (-87.336544f) /* ln(FLT_MIN): below, 0 */
#define VX_HI 88.376262f    /* ln(FLT_MAX) */
#define VX_LOG2E 1.44269504f
#define VX_LN2_HI 0.693359375f /* ln 2 = HI + LO, HI with few bits */
#define VX_LN2_LO (-2.12194440e-4f)
#define VX_Q0 0.49999988f
#define VX_Q1 0.16666518f
#define VX_Q2 0.041669533f
#define VX_Q3 0.0083689187f
#define VX_Q4 0.0013751409f

static float vx_exp1(float x) {
    if (x != x) return x;
    if (x < VX_LO) return 0;
    if (x > VX_HI) x = VX_HI;
    float n = nearbyintf(x * VX_LOG2E);
    float r = x - n * VX_LN2_HI;
    r = r - n * VX_LN2_LO;
    float q = VX_Q4;
    q = q * r + VX_Q3;
    q = q * r + VX_Q2;
    q = q * r + VX_Q1;
    q = q * r + VX_Q0;
    float p = (r * r) * q + (r + 1);
    uint32_t bits = (uint32_t)((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

static float expsum_scalar(float *x, size_t n, float shift) {
    float sum = 0;
    for (size_t i = 0; i < n; i++) sum += x[i] = vx_exp1(x[i] - shift);
    return sum;
}

static float max_scalar(const float *x, size_t n) {
    float m = n ? x[0] : -INFINITY;
    for (size_t i = 1; i < n; i++)
        if (x[i] > m) m = x[i];
    return m;
}

#if defined(__x86_64__)
#include <immintrin.h>

__attribute__((target("avx2,fma"))) static inline __m256 vx_exp8(__m256 x) {
    __m256 nan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q), under = _mm256_cmp_ps(x, _mm256_set1_ps(VX_LO), _CMP_LT_OQ);
    __m256 v = _mm256_min_ps(x, _mm256_set1_ps(VX_HI));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(v, _mm256_set1_ps(VX_LOG2E)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(VX_LN2_HI), v);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(VX_LN2_LO), r);
    __m256 q = _mm256_fmadd_ps(_mm256_set1_ps(VX_Q4), r, _mm256_set1_ps(VX_Q3));
    q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(VX_Q2));
    q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(VX_Q1));
    q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(VX_Q0));
    __m256 p = _mm256_fmadd_ps(_mm256_mul_ps(r, r), q, _mm256_add_ps(r, _mm256_set1_ps(1)));
    /* n >= -126 wherever the result is kept, so the biased exponent is >= 1 */
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    __m256 y = _mm256_andnot_ps(under, _mm256_mul_ps(p, _mm256_castsi256_ps(e)));
    return _mm256_blendv_ps(y, x, nan);
}

__attribute__((target("avx2,fma"))) static float expsum_avx2(float *x, size_t n, float shift) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), sh = _mm256_set1_ps(shift);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 a = vx_exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), sh));
        __m256 b = vx_exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i + 8), sh));
        _mm256_storeu_ps(x + i, a);
        _mm256_storeu_ps(x + i + 8, b);
        s0 = _mm256_add_ps(s0, a);
        s1 = _mm256_add_ps(s1, b);
    }
    for (; i + 8 <= n; i += 8) {
        __m256 a = vx_exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), sh));
        _mm256_storeu_ps(x + i, a);
        s0 = _mm256_add_ps(s0, a);
    }
    s0 = _mm256_add_ps(s0, s1);
    __m128 q = _mm_add_ps(_mm256_castps256_ps128(s0), _mm256_extractf128_ps(s0, 1));
    q = _mm_add_ps(q, _mm_movehl_ps(q, q));
    float sum = _mm_cvtss_f32(_mm_add_ss(q, _mm_movehdup_ps(q)));
    for (; i < n; i++) sum += x[i] = vx_exp1(x[i] - shift);
    return sum;
}

__attribute__((target("avx2,fma"))) static float max_avx2(const float *x, size_t n) {
    if (n < 8) return max_scalar(x, n);
    __m256 m = _mm256_loadu_ps(x);
    size_t i = 8;
    for (; i + 8 <= n; i += 8) m = _mm256_max_ps(m, _mm256_loadu_ps(x + i));
    float lanes[8];
    _mm256_storeu_ps(lanes, m);
    float r = max_scalar(lanes, 8);
    for (; i < n; i++)
        if (x[i] > r) r = x[i];
    return r;
}

__attribute__((target("avx512f"))) static inline __m512 vx_exp16(__m512 x) {
    __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), under = _mm512_cmp_ps_mask(x, _mm512_set1_ps(VX_LO), _CMP_LT_OQ);
    __m512 v = _mm512_min_ps(x, _mm512_set1_ps(VX_HI));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(v, _mm512_set1_ps(VX_LOG2E)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(VX_LN2_HI), v);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(VX_LN2_LO), r);
    __m512 q = _mm512_fmadd_ps(_mm512_set1_ps(VX_Q4), r, _mm512_set1_ps(VX_Q3));
    q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(VX_Q2));
    q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(VX_Q1));
    q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(VX_Q0));
    __m512 p = _mm512_fmadd_ps(_mm512_mul_ps(r, r), q, _mm512_add_ps(r, _mm512_set1_ps(1)));
    __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    __m512 y = _mm512_maskz_mul_ps((__mmask16)~under, p, _mm512_castsi512_ps(e));
    return _mm512_mask_blend_ps(nan, y, x);
}

__attribute__((target("avx512f"))) static float expsum_avx512(float *x, size_t n, float shift) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps(), sh = _mm512_set1_ps(shift);
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512 a = vx_exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i), sh));
        __m512 b = vx_exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i + 16), sh));
        _mm512_storeu_ps(x + i, a);
        _mm512_storeu_ps(x + i + 16, b);
        s0 = _mm512_add_ps(s0, a);
        s1 = _mm512_add_ps(s1, b);
    }
    if (i < n) { /* the rest, by a mask: no scalar tail */
        for (; i < n; i += 16) {
            __mmask16 k = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
            __m512 a = vx_exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), sh));
            _mm512_mask_storeu_ps(x + i, k, a);
            s0 = _mm512_add_ps(s0, _mm512_maskz_mov_ps(k, a));
        }
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

__attribute__((target("avx512f"))) static float max_avx512(const float *x, size_t n) {
    if (n < 16) return max_scalar(x, n);
    __m512 m = _mm512_loadu_ps(x);
    size_t i = 16;
    for (; i + 16 <= n; i += 16) m = _mm512_max_ps(m, _mm512_loadu_ps(x + i));
    float r = _mm512_reduce_max_ps(m);
    for (; i < n; i++)
        if (x[i] > r) r = x[i];
    return r;
}
#endif

typedef struct vx_kernels {
    float (*expsum)(float *x, size_t n, float shift);
    float (*max)(const float *x, size_t n);
} vx_kernels;

/* By cpu_set (the vector sets exist on x86-64 only). */
static const vx_kernels VX_SETS[CPU_SET_COUNT] = {
    {expsum_scalar, max_scalar},
#if defined(__x86_64__)
    {expsum_avx2, max_avx2},
    {expsum_avx512, max_avx512},
#endif
};

static const vx_kernels *vx_pick(void) {
    static const vx_kernels *picked;
    if (!picked) picked = &VX_SETS[cpu_set_best()];
    return picked;
}

float nn_exp_sum(float *x, size_t n, float shift) { return vx_pick()->expsum(x, n, shift); }

float nn_max(const float *x, size_t n) { return vx_pick()->max(x, n); }

double nn_exp_check(const char *set, uint64_t seed) {
    int which = cpu_set_named(set);
    if (which < 0) return -1;
    const vx_kernels *k = &VX_SETS[which];
    rng g;
    rng_seed(&g, seed);
    enum { N = 4099 }; /* every tail length of both vector widths */
    static float x[N], y[N];
    double worst = 0;
    for (int round = 0; round < 40; round++) {
        size_t n = round < 33 ? (size_t)round : N - (size_t)(round - 33) * 7;
        double spread = round % 3 == 0 ? 100 : round % 3 == 1 ? 10 : 1;
        for (size_t i = 0; i < n; i++) x[i] = (float)((rng_uniform(&g) - 0.5) * spread);
        if (n > 3) x[1] = -1e30f, x[2] = 1e-30f;
        float m = k->max(x, n);
        if (m != max_scalar(x, n)) return INFINITY;
        memcpy(y, x, n * sizeof *y);
        float sum = k->expsum(y, n, m);
        double truth = 0;
        for (size_t i = 0; i < n; i++) {
            float d = x[i] - m; /* the kernels' own rounding of the argument */
            double e = exp((double)d);
            truth += e;
            /* below FLT_MIN the kernels give 0: no relative error to take */
            double err = e < 1.2e-38 ? (y[i] == 0 || fabs(y[i] - e) < 1.2e-38 ? 0 : 1) : fabs(y[i] - e) / e;
            if (err > worst) worst = err;
        }
        if (n && fabs(sum - truth) > 1e-5 * truth) return INFINITY; /* float sums, any order */
    }
    float nan = NAN;
    float s = k->expsum(&nan, 1, 0);
    if (s == s) return INFINITY; /* NaN in, NaN out */
    return worst;
}
