/* quant_avx2.c — AVX2+FMA+F16C dot products and activation quantizers,
 * chosen at run time when the CPU has them (llm_kernels_avx2). Each one
 * computes what its scalar twin in quant.c computes: integer block sums are
 * exact, only the order of the float accumulation differs; the
 * quantizers are bit-identical (tests compare both). */
#include <math.h>

#include "llm/simd_x86.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#define TGT SX_AVX2
#define QK 32
#define h2f sx_h2f
#define hsum8 sx_hsum8
#define nibbles32 sx_nibbles32
#define bits32 sx_bits32
#define Q5_BITS SX_Q5_BITS

TGT static inline int hsum_i32_8(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
}

/* Signed int8 x signed int8, 32 lanes -> 8 float partial sums. */
TGT static inline __m256 mul_i8_f(__m256i x, __m256i y) {
    __m256i ax = _mm256_sign_epi8(x, x), sy = _mm256_sign_epi8(y, x);
    __m256i p16 = _mm256_maddubs_epi16(ax, sy);
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, _mm256_set1_epi16(1)));
}

/* Unsigned x (0..31) times signed y. */
TGT static inline __m256 mul_u8_f(__m256i x, __m256i y) {
    __m256i p16 = _mm256_maddubs_epi16(x, y);
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, _mm256_set1_epi16(1)));
}

TGT static float dot_f32(const void *w, const void *a, int64_t n) {
    const float *x = w, *y = a;
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(y + i + 8), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 16), _mm256_loadu_ps(y + i + 16), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 24), _mm256_loadu_ps(y + i + 24), s3);
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), s0);
    float s = hsum8(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    for (; i < n; i++) s += x[i] * y[i];
    return s;
}

TGT static float dot_f16(const void *w, const void *a, int64_t n) {
    const uint16_t *x = w, *y = a;
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    int64_t i = 0;
#define LD(p) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p)))
    for (; i + 32 <= n; i += 32) {
        s0 = _mm256_fmadd_ps(LD(x + i), LD(y + i), s0);
        s1 = _mm256_fmadd_ps(LD(x + i + 8), LD(y + i + 8), s1);
        s2 = _mm256_fmadd_ps(LD(x + i + 16), LD(y + i + 16), s2);
        s3 = _mm256_fmadd_ps(LD(x + i + 24), LD(y + i + 24), s3);
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(LD(x + i), LD(y + i), s0);
#undef LD
    float s = hsum8(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    for (; i < n; i++) s += h2f(x[i]) * h2f(y[i]);
    return s;
}

TGT static float dot_bf16(const void *w, const void *a, int64_t n) {
    const uint16_t *x = w, *y = a;
    __m256 s0 = _mm256_setzero_ps(), s1 = s0;
    int64_t i = 0;
#define LD(p) _mm256_castsi256_ps(_mm256_slli_epi32( \
        _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(p))), 16))
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(LD(x + i), LD(y + i), s0);
        s1 = _mm256_fmadd_ps(LD(x + i + 8), LD(y + i + 8), s1);
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(LD(x + i), LD(y + i), s0);
#undef LD
    float s = hsum8(_mm256_add_ps(s0, s1));
    for (; i < n; i++) s += f32_from_bf16(x[i]) * f32_from_bf16(y[i]);
    return s;
}

/* The 32 signed values of a Q8_0, Q4_0 or Q5_0 block. */
TGT static inline __m256i q8_0_vals(const blk_q8_0 *x) { return _mm256_loadu_si256((const __m256i *)x->qs); }
TGT static inline __m256i q4_0_vals(const blk_q4_0 *x) {
    return _mm256_sub_epi8(nibbles32(x->qs), _mm256_set1_epi8(8));
}
TGT static inline __m256i q5_0_vals(const blk_q5_0 *x) { return _mm256_sub_epi8(Q5_BITS(x), _mm256_set1_epi8(16)); }

/* Signed 32-value blocks against Q8_0 activations: two blocks per step
 * into two accumulators, so one FMA's latency does not bound the loop. */
#define DOT32(NAME, BLK, VALS)                                                                   \
    TGT static float NAME(const void *w, const void *a, int64_t n) {                            \
        const BLK *x = w;                                                                        \
        const blk_q8_0 *y = a;                                                                   \
        __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();                           \
        int64_t nb = n / QK, i = 0;                                                              \
        for (; i + 2 <= nb; i += 2) {                                                            \
            _mm_prefetch((const char *)(x + i + 16), _MM_HINT_T0);                               \
            __m256 d0 = _mm256_set1_ps(h2f(x[i].d) * h2f(y[i].d));                               \
            __m256 d1 = _mm256_set1_ps(h2f(x[i + 1].d) * h2f(y[i + 1].d));                       \
            acc0 = _mm256_fmadd_ps(d0, mul_i8_f(VALS(x + i), _mm256_loadu_si256((const __m256i *)y[i].qs)), acc0); \
            acc1 = _mm256_fmadd_ps(d1, mul_i8_f(VALS(x + i + 1), _mm256_loadu_si256((const __m256i *)y[i + 1].qs)), \
                                   acc1);                                                        \
        }                                                                                        \
        for (; i < nb; i++) {                                                                    \
            __m256 d = _mm256_set1_ps(h2f(x[i].d) * h2f(y[i].d));                                \
            acc0 = _mm256_fmadd_ps(d, mul_i8_f(VALS(x + i), _mm256_loadu_si256((const __m256i *)y[i].qs)), acc0); \
        }                                                                                        \
        return hsum8(_mm256_add_ps(acc0, acc1));                                                 \
    }
DOT32(dot_q8_0, blk_q8_0, q8_0_vals)
DOT32(dot_q4_0, blk_q4_0, q4_0_vals)
DOT32(dot_q5_0, blk_q5_0, q5_0_vals)
#undef DOT32

TGT static float dot_q4_1(const void *w, const void *a, int64_t n) {
    const blk_q4_1 *x = w;
    const blk_q8_1 *y = a;
    __m256 acc = _mm256_setzero_ps();
    float summs = 0;
    for (int64_t i = 0; i < n / QK; i++) {
        summs += h2f(x[i].m) * h2f(y[i].s);
        __m256 d = _mm256_set1_ps(h2f(x[i].d) * h2f(y[i].d));
        __m256i qy = _mm256_loadu_si256((const __m256i *)y[i].qs);
        acc = _mm256_fmadd_ps(d, mul_u8_f(nibbles32(x[i].qs), qy), acc);
    }
    return hsum8(acc) + summs;
}

TGT static float dot_q5_1(const void *w, const void *a, int64_t n) {
    const blk_q5_1 *x = w;
    const blk_q8_1 *y = a;
    __m256 acc = _mm256_setzero_ps();
    float summs = 0;
    for (int64_t i = 0; i < n / QK; i++) {
        summs += h2f(x[i].m) * h2f(y[i].s);
        __m256 d = _mm256_set1_ps(h2f(x[i].d) * h2f(y[i].d));
        __m256i q = Q5_BITS(x + i);
        __m256i qy = _mm256_loadu_si256((const __m256i *)y[i].qs);
        acc = _mm256_fmadd_ps(d, mul_u8_f(q, qy), acc);
    }
    return hsum8(acc) + summs;
}

/* 32 floats -> 32 int8 rounded to nearest even at scale id; returns the
 * packed bytes in order. */
TGT static inline __m256i q8_block(const float *x, float *amax_out, float *d_out) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 v0 = _mm256_loadu_ps(x), v1 = _mm256_loadu_ps(x + 8), v2 = _mm256_loadu_ps(x + 16),
           v3 = _mm256_loadu_ps(x + 24);
    __m256 m = _mm256_andnot_ps(sign, v0);
    m = _mm256_max_ps(m, _mm256_andnot_ps(sign, v1));
    m = _mm256_max_ps(m, _mm256_andnot_ps(sign, v2));
    m = _mm256_max_ps(m, _mm256_andnot_ps(sign, v3));
    __m128 m4 = _mm_max_ps(_mm256_extractf128_ps(m, 1), _mm256_castps256_ps128(m));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    float amax = _mm_cvtss_f32(m4);
    *amax_out = amax;
    *d_out = amax / 127.0f;
    __m256 id = _mm256_set1_ps(amax != 0.0f ? 127.0f / amax : 0.0f);
#define RNE (_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
    __m256i i0 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v0, id), RNE));
    __m256i i1 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v1, id), RNE));
    __m256i i2 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v2, id), RNE));
    __m256i i3 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v3, id), RNE));
#undef RNE
    /* Packing interleaves 128-bit lanes; a final permute restores order. */
    i0 = _mm256_packs_epi32(i0, i1);
    i2 = _mm256_packs_epi32(i2, i3);
    i0 = _mm256_packs_epi16(i0, i2);
    return _mm256_permutevar8x32_epi32(i0, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

TGT static void quant_q8_0(const float *x, void *dst, int64_t n) {
    blk_q8_0 *y = dst;
    for (int64_t i = 0; i < n / QK; i++) {
        float amax, d;
        __m256i q = q8_block(x + i * QK, &amax, &d);
        y[i].d = (uint16_t)_cvtss_sh(d, 0);
        _mm256_storeu_si256((__m256i *)y[i].qs, q);
    }
}

TGT static void quant_q8_1(const float *x, void *dst, int64_t n) {
    blk_q8_1 *y = dst;
    for (int64_t i = 0; i < n / QK; i++) {
        float amax, d;
        __m256i q = q8_block(x + i * QK, &amax, &d);
        y[i].d = (uint16_t)_cvtss_sh(d, 0);
        _mm256_storeu_si256((__m256i *)y[i].qs, q);
        /* Sum of the 32 int8 values. */
        __m256i lo = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(q));
        __m256i hi = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(q, 1));
        __m256i s = _mm256_madd_epi16(_mm256_add_epi16(lo, hi), _mm256_set1_epi16(1));
        y[i].s = (uint16_t)_cvtss_sh(d * (float)hsum_i32_8(s), 0);
    }
}

TGT static void quant_f16(const float *x, void *dst, int64_t n) {
    uint16_t *y = dst;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(y + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), 0));
    for (; i < n; i++) y[i] = f16_from_f32(x[i]);
}

static void quant_f32(const float *x, void *dst, int64_t n) { memcpy(dst, x, (size_t)n * 4); }
static void quant_bf16(const float *x, void *dst, int64_t n) {
    llm_quant_row(LLM_TYPE_BF16, x, dst, n);
}


/* ---- K-quants (Q8_K activations) --------------------------------------- */

/* Two 16-value halves scaled by s0 and s1 (int16 lanes). */
TGT static inline __m256i scale_pair(int s0, int s1) {
    return _mm256_set_m128i(_mm_set1_epi16((short)s1), _mm_set1_epi16((short)s0));
}

/* sum_j mins[j] * (bsums[2j] + bsums[2j+1]) */
TGT static inline int k4_min_sum(const uint8_t mn[8], const int16_t *bsums) {
    __m128i b = _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)bsums), _mm_loadu_si128((const __m128i *)(bsums + 8)));
    __m128i m16 = _mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)mn));
    __m128i p = _mm_madd_epi16(m16, b);
    p = _mm_add_epi32(p, _mm_shuffle_epi32(p, 0x4E));
    p = _mm_add_epi32(p, _mm_shuffle_epi32(p, 0xB1));
    return _mm_cvtsi128_si32(p);
}

/* One Q4_K or Q5_K block (qh: the Q5_K fifth bits, NULL for Q4_K):
 * adds d * sum(q * y * scale) to *acc and the mins term to *mins. */
TGT static inline __attribute__((always_inline)) void q45_K_block(uint16_t d, uint16_t dmin, const uint8_t *scales,
                                                                 const uint8_t *qh, const uint8_t *qs,
                                                                 const blk_q8_K *y, __m256 *acc, float *mins) {
    const __m256i m4 = _mm256_set1_epi8(0xF), one = _mm256_set1_epi8(1);
    uint8_t sc[8], mn[8];
    sx_k4_scales(scales, sc, mn);
    *mins += y->d * h2f(dmin) * (float)k4_min_sum(mn, y->bsums);
    __m256i sumi = _mm256_setzero_si256();
    const __m256i h = qh ? _mm256_loadu_si256((const __m256i *)qh) : _mm256_setzero_si256();
    const int8_t *q8 = y->qs;
    for (int j = 0; j < 4; j++, qs += 32, q8 += 64) {
        __m256i b = _mm256_loadu_si256((const __m256i *)qs);
        __m256i lo = _mm256_and_si256(b, m4), hi = _mm256_and_si256(_mm256_srli_epi16(b, 4), m4);
        if (qh) {
            lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 2 * j), one), 4));
            hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 2 * j + 1), one), 4));
        }
        __m256i pl = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)q8));
        __m256i ph = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(q8 + 32)));
        pl = _mm256_madd_epi16(pl, _mm256_set1_epi16(sc[2 * j]));
        ph = _mm256_madd_epi16(ph, _mm256_set1_epi16(sc[2 * j + 1]));
        sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(pl, ph));
    }
    *acc = _mm256_fmadd_ps(_mm256_set1_ps(y->d * h2f(d)), _mm256_cvtepi32_ps(sumi), *acc);
}

TGT static float dot_q4_K(const void *w, const void *a, int64_t n) {
    const blk_q4_K *x = w;
    const blk_q8_K *y = a;
    __m256 acc = _mm256_setzero_ps();
    float mins = 0;
    for (int64_t i = 0; i < n / QK_K; i++) q45_K_block(x[i].d, x[i].dmin, x[i].scales, NULL, x[i].qs, y + i, &acc, &mins);
    return hsum8(acc) - mins;
}

TGT static float dot_q5_K(const void *w, const void *a, int64_t n) {
    const blk_q5_K *x = w;
    const blk_q8_K *y = a;
    __m256 acc = _mm256_setzero_ps();
    float mins = 0;
    for (int64_t i = 0; i < n / QK_K; i++) q45_K_block(x[i].d, x[i].dmin, x[i].scales, x[i].qh, x[i].qs, y + i, &acc, &mins);
    return hsum8(acc) - mins;
}

TGT static float dot_q6_K(const void *w, const void *a, int64_t n) {
    const blk_q6_K *x = w;
    const blk_q8_K *y = a;
    const __m256i m4 = _mm256_set1_epi8(0xF), m2 = _mm256_set1_epi8(3), k32 = _mm256_set1_epi8(32);
    /* Lane patterns: scale 2k in the low half, 2k+1 in the high half. */
    const __m256i pick[4] = {_mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1), _mm256_setr_epi32(2, 2, 2, 2, 3, 3, 3, 3),
                             _mm256_setr_epi32(4, 4, 4, 4, 5, 5, 5, 5), _mm256_setr_epi32(6, 6, 6, 6, 7, 7, 7, 7)};
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; i++) {
        const uint8_t *ql = x[i].ql, *qh = x[i].qh;
        const int8_t *sc = x[i].scales, *q8 = y[i].qs;
        __m256i sumi = _mm256_setzero_si256();
        for (int half = 0; half < 2; half++, ql += 64, qh += 32, sc += 8, q8 += 128) {
            /* Each 32-bit lane holds one scale in both of its 16-bit halves. */
            __m256i s32 = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)sc));
            s32 = _mm256_or_si256(_mm256_and_si256(s32, _mm256_set1_epi32(0xFFFF)), _mm256_slli_epi32(s32, 16));
            __m256i h = _mm256_loadu_si256((const __m256i *)qh);
            __m256i l0 = _mm256_loadu_si256((const __m256i *)ql), l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
            __m256i q[4];
            q[0] = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_slli_epi16(_mm256_and_si256(h, m2), 4));
            q[1] = _mm256_or_si256(_mm256_and_si256(l1, m4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 2), m2), 4));
            q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 4), m2), 4));
            q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 6), m2), 4));
            for (int k = 0; k < 4; k++) {
                __m256i y8 = _mm256_loadu_si256((const __m256i *)(q8 + 32 * k));
                /* (q - 32) . y = q . y - 32 * sum(y) */
                __m256i p = _mm256_sub_epi16(_mm256_maddubs_epi16(q[k], y8), _mm256_maddubs_epi16(k32, y8));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, _mm256_permutevar8x32_epi32(s32, pick[k])));
            }
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(y[i].d * h2f(x[i].d)), _mm256_cvtepi32_ps(sumi), acc);
    }
    return hsum8(acc);
}

TGT static float dot_q3_K(const void *w, const void *a, int64_t n) {
    const blk_q3_K *x = w;
    const blk_q8_K *y = a;
    const __m256i m2 = _mm256_set1_epi8(3), k4 = _mm256_set1_epi8(4);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; i++) {
        int8_t sc[16];
        qk_q3_scales(x[i].scales, sc);
        const __m256i hm = _mm256_loadu_si256((const __m256i *)x[i].hmask);
        const uint8_t *q = x[i].qs;
        const int8_t *q8 = y[i].qs;
        __m256i sumi = _mm256_setzero_si256();
        int is = 0, bit = 0;
        for (int g = 0; g < 2; g++, q += 32) {
            __m256i b = _mm256_loadu_si256((const __m256i *)q);
            for (int shift = 0; shift < 8; shift += 2, bit++, is += 2, q8 += 32) {
                __m256i q2 = _mm256_and_si256(_mm256_srli_epi16(b, shift), m2);
                __m256i hb = _mm256_and_si256(_mm256_srli_epi16(hm, bit), _mm256_set1_epi8(1));
                __m256i u = _mm256_or_si256(q2, _mm256_slli_epi16(hb, 2)); /* value + 4, in 0..7 */
                __m256i y8 = _mm256_loadu_si256((const __m256i *)q8);
                __m256i p = _mm256_sub_epi16(_mm256_maddubs_epi16(u, y8), _mm256_maddubs_epi16(k4, y8));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, scale_pair(sc[is], sc[is + 1])));
            }
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(y[i].d * h2f(x[i].d)), _mm256_cvtepi32_ps(sumi), acc);
    }
    return hsum8(acc);
}

TGT static float dot_q2_K(const void *w, const void *a, int64_t n) {
    const blk_q2_K *x = w;
    const blk_q8_K *y = a;
    const __m256i m2 = _mm256_set1_epi8(3);
    __m256 acc = _mm256_setzero_ps();
    float mins = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int summ = 0;
        for (int j = 0; j < 16; j++) summ += y[i].bsums[j] * (x[i].scales[j] >> 4);
        mins += y[i].d * h2f(x[i].dmin) * (float)summ;
        const uint8_t *q = x[i].qs;
        const int8_t *q8 = y[i].qs;
        __m256i sumi = _mm256_setzero_si256();
        int is = 0;
        for (int g = 0; g < 2; g++, q += 32) {
            __m256i b = _mm256_loadu_si256((const __m256i *)q);
            for (int shift = 0; shift < 8; shift += 2, is += 2, q8 += 32) {
                __m256i q2 = _mm256_and_si256(_mm256_srli_epi16(b, shift), m2);
                __m256i p = _mm256_maddubs_epi16(q2, _mm256_loadu_si256((const __m256i *)q8));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, scale_pair(x[i].scales[is] & 0xF,
                                                                              x[i].scales[is + 1] & 0xF)));
            }
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(y[i].d * h2f(x[i].d)), _mm256_cvtepi32_ps(sumi), acc);
    }
    return hsum8(acc) - mins;
}


/* ---- several rows at once ---------------------------------------------- */

/* 32-value block types: each row's block is unpacked to 32 signed bytes,
 * multiplied with the shared activation block, and accumulated in its own
 * register, so LLM_ROWS independent chains hide the FMA latency. */
/* ROWS32 builds a kernel for a 32-value block type. UNPACK gives the
 * row's 32 values as bytes; SIGNED says whether they are signed (the sign
 * trick) or unsigned with an offset OFF subtracted through the activation
 * block's shared OFF * sum(y) term (two instructions fewer per row). */
/* Row k's step of a multi-row kernel (x##k, acc##k, e##k: its block
 * pointer, accumulator and extra term). */
#define ROW32_STEP(k, PROD, EXTRA)                                                               \
    if (nrows > k) {                                                                             \
        _mm_prefetch((const char *)(x##k + i + 8), _MM_HINT_T0);                                 \
        x = x##k + i;                                                                            \
        p = PROD;                                                                                \
        acc##k = _mm256_fmadd_ps(_mm256_set1_ps(h2f(x->d) * dy), _mm256_cvtepi32_ps(p), acc##k); \
        EXTRA(e##k);                                                                             \
    }
/* PROD: a row block's 8 int32 partial dot products with qy. OFF: the offset
 * of unsigned values (subtracted through the shared OFF * sum(y) term, two
 * instructions fewer per row than the sign trick); 0 when none. */
#define ROWS32(NAME, BLK, ABLK, OFF, EXTRA, PROD)                                                \
    TGT static void NAME##_n(const void *w, size_t w_row, const void *a, int64_t n, float *out, int nrows) { \
        const ABLK *y = a;                                                                       \
        __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0, acc2 = acc0, acc3 = acc0;                \
        float e0 = 0, e1 = 0, e2 = 0, e3 = 0;                                                    \
        const BLK *x0 = w, *x1 = (const BLK *)((const uint8_t *)w + w_row),                      \
                  *x2 = (const BLK *)((const uint8_t *)w + 2 * w_row),                           \
                  *x3 = (const BLK *)((const uint8_t *)w + 3 * w_row);                           \
        const __m256i ones = _mm256_set1_epi16(1);                                               \
        for (int64_t i = 0; i < n / QK; i++) {                                                   \
            __m256i qy = _mm256_loadu_si256((const __m256i *)y[i].qs);                           \
            __m256i off = OFF ? _mm256_maddubs_epi16(_mm256_set1_epi8(OFF), qy) : _mm256_setzero_si256(); \
            (void)off;                                                                           \
            float dy = h2f(y[i].d);                                                              \
            const BLK *x;                                                                        \
            __m256i p;                                                                           \
            ROW32_STEP(0, PROD, EXTRA)                                                           \
            ROW32_STEP(1, PROD, EXTRA)                                                           \
            ROW32_STEP(2, PROD, EXTRA)                                                           \
            ROW32_STEP(3, PROD, EXTRA)                                                           \
        }                                                                                        \
        out[0] = hsum8(acc0) + e0;                                                               \
        if (nrows > 1) out[1] = hsum8(acc1) + e1;                                                \
        if (nrows > 2) out[2] = hsum8(acc2) + e2;                                                \
        if (nrows > 3) out[3] = hsum8(acc3) + e3;                                                \
    }                                                                                            \
    static void NAME(const void *w, size_t w_row, const void *a, int64_t n, int nrows, float *out) { \
        if (nrows == LLM_ROWS) NAME##_n(w, w_row, a, n, out, LLM_ROWS);                          \
        else NAME##_n(w, w_row, a, n, out, nrows);                                               \
    }
#define NO_EXTRA(e) (void)0
#define MIN_EXTRA(e) e += h2f(x->m) * h2f(y[i].s)
#define UNSIGNED(VALS) _mm256_madd_epi16(_mm256_sub_epi16(_mm256_maddubs_epi16(VALS, qy), off), ones)
#define SIGNED(VALS) _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(VALS, VALS), _mm256_sign_epi8(qy, VALS)), ones)

ROWS32(rows_q8_0, blk_q8_0, blk_q8_0, 0, NO_EXTRA, SIGNED(_mm256_loadu_si256((const __m256i *)x->qs)))
ROWS32(rows_q4_0, blk_q4_0, blk_q8_0, 8, NO_EXTRA, UNSIGNED(nibbles32(x->qs)))
ROWS32(rows_q5_0, blk_q5_0, blk_q8_0, 16, NO_EXTRA, UNSIGNED(Q5_BITS(x)))
ROWS32(rows_q4_1, blk_q4_1, blk_q8_1, 0, MIN_EXTRA, UNSIGNED(nibbles32(x->qs)))
ROWS32(rows_q5_1, blk_q5_1, blk_q8_1, 0, MIN_EXTRA, UNSIGNED(Q5_BITS(x)))
#undef ROWS32
#undef ROW32_STEP
#undef NO_EXTRA
#undef MIN_EXTRA
#undef UNSIGNED
#undef SIGNED

TGT static void rows_f16(const void *w, size_t w_row, const void *a, int64_t n, int nrows, float *out) {
    const uint16_t *y = a;
    __m256 acc[LLM_ROWS][2];
    for (int r = 0; r < LLM_ROWS; r++) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 y0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(y + i)));
        __m256 y1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(y + i + 8)));
        for (int r = 0; r < nrows; r++) {
            const uint16_t *x = (const uint16_t *)((const uint8_t *)w + (size_t)r * w_row);
            acc[r][0] = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i))), y0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i + 8))), y1, acc[r][1]);
        }
    }
    for (int r = 0; r < nrows; r++) {
        const uint16_t *x = (const uint16_t *)((const uint8_t *)w + (size_t)r * w_row);
        float s = hsum8(_mm256_add_ps(acc[r][0], acc[r][1]));
        for (int64_t k = i; k < n; k++) s += h2f(x[k]) * h2f(y[k]);
        out[r] = s;
    }
}



/* ---- prompt tiles with the tokens in the lanes: 2 rows x 16 tokens ----- */

/* As the AVX-512 set does (quant_avx512.c), without vpdpbusd: a product's
 * activations are packed once so that a register holds the same 4 bytes of
 * 8 tokens' block; a weight row's 4 bytes are broadcast against it and
 * vpmaddubsw makes pair sums, which vpmaddwd by ones widens.
 *   Q8_0: the sign trick (|w| times a with w's sign) keeps the pair sums
 *   below 2 * 127 * 127: 4 instructions per 32 products.
 *   Q4_0, Q5_0, Q4_1, Q5_1: the unsigned values q (at most 31) are the
 *   unsigned operand as they are, pair sums stay below 2 * 31 * 128, so
 *   four columns add up in 16 bits before one widening: 9 instructions per
 *   128 products; the offset (8, 16) comes back as -OFF * sum(a) per block
 *   and token.
 * The float scaling is done once per block for 8 tokens.
 * Packed group of 16 tokens, per block (PA_BYTES, +64 for Q8_1):
 *   2 x 8 x 32 bytes: token vector v, 4-byte column c: lane l = bytes
 *                     4c..4c+3 of token 8v+l (signed, as quantized)
 *   16 int32:         each token's sum(qs)
 *   16 floats:        each token's d
 *   16 floats (Q8_1): each token's d * sum(qs) */
#define PA_R 2
#define PA_T 16
#define PA_BYTES (2 * 8 * 32 + 16 * 4 + 16 * 4)

static const sx_pack32 PA_SHAPE = {8, PA_T, false, true, false}, PA_SHAPE1 = {8, PA_T, false, true, true};
static void packa_q8_0(const void *a, size_t a_row, int64_t n, void *dst) { sx_pack32_rows(PA_SHAPE, a, a_row, n, dst); }
static void packa_q8_1(const void *a, size_t a_row, int64_t n, void *dst) { sx_pack32_rows(PA_SHAPE1, a, a_row, n, dst); }

/* Q8_0, the sign trick: per column, 4 instructions per row and vector;
 * each column of activations is loaded once for the tile's rows. */
TGT static inline void pa_dot_q8_0(int8_t wq[PA_R][32], int8_t wa[PA_R][32], const uint8_t *pb, __m256i p[PA_R][2]) {
    const __m256i ones = _mm256_set1_epi16(1);
    for (int c = 0; c < 8; c++) {
        __m256i av[2] = {_mm256_loadu_si256((const __m256i *)(pb + 32 * c)),
                         _mm256_loadu_si256((const __m256i *)(pb + 256 + 32 * c))};
        for (int r = 0; r < PA_R; r++) {
            int32_t w4, a4;
            memcpy(&w4, wq[r] + 4 * c, 4);
            memcpy(&a4, wa[r] + 4 * c, 4);
            __m256i ws = _mm256_set1_epi32(w4), wabs = _mm256_set1_epi32(a4);
            for (int v = 0; v < 2; v++)
                p[r][v] = _mm256_add_epi32(p[r][v],
                                           _mm256_madd_epi16(_mm256_maddubs_epi16(wabs, _mm256_sign_epi8(av[v], ws)), ones));
        }
    }
}

/* Unsigned values (at most 31): four columns add up in 16 bits, then one
 * widening. */
TGT static inline void pa_dot_u(int8_t wq[PA_R][32], const uint8_t *pb, __m256i p[PA_R][2]) {
    const __m256i ones = _mm256_set1_epi16(1);
    for (int h = 0; h < 2; h++) {
        __m256i s16[PA_R][2];
        for (int r = 0; r < PA_R; r++) s16[r][0] = s16[r][1] = _mm256_setzero_si256();
        for (int c = 4 * h; c < 4 * h + 4; c++) {
            __m256i av[2] = {_mm256_loadu_si256((const __m256i *)(pb + 32 * c)),
                             _mm256_loadu_si256((const __m256i *)(pb + 256 + 32 * c))};
            for (int r = 0; r < PA_R; r++) {
                int32_t w4;
                memcpy(&w4, wq[r] + 4 * c, 4);
                __m256i wb = _mm256_set1_epi32(w4);
                for (int v = 0; v < 2; v++) s16[r][v] = _mm256_add_epi16(s16[r][v], _mm256_maddubs_epi16(wb, av[v]));
            }
        }
        for (int r = 0; r < PA_R; r++)
            for (int v = 0; v < 2; v++) p[r][v] = _mm256_add_epi32(p[r][v], _mm256_madd_epi16(s16[r][v], ones));
    }
}

/* A row block's 32 values: signed for Q8_0, unsigned q otherwise. */
TGT static inline __m256i v_q8_0(const blk_q8_0 *x) { return _mm256_loadu_si256((const __m256i *)x->qs); }
TGT static inline __m256i v_q4_0(const blk_q4_0 *x) { return nibbles32(x->qs); }
TGT static inline __m256i v_q5_0(const blk_q5_0 *x) { return Q5_BITS(x); }
TGT static inline __m256i v_q4_1(const blk_q4_1 *x) { return nibbles32(x->qs); }
TGT static inline __m256i v_q5_1(const blk_q5_1 *x) { return Q5_BITS(x); }

#define PA_NOMIN(r, x) (void)0
#define PA_MIN(r, x)                                                                              \
    for (int v = 0; v < 2; v++)                                                                   \
        acc[r][v] = _mm256_fmadd_ps(_mm256_set1_ps(h2f((x)->m)), _mm256_loadu_ps(d + 16 + 8 * v), acc[r][v])

/* OFF < 0: Q8_0 (signed values, the sign trick). */
#define TILEA(NAME, BLK, VALS, OFF, MIN, PB)                                                      \
    TGT static void NAME(const void *w, size_t w_row, const void *a, size_t a_row, int64_t n, float *y, \
                         size_t y_stride) {                                                       \
        (void)a_row;                                                                              \
        __m256 acc[PA_R][2];                                                                      \
        for (int r = 0; r < PA_R; r++) acc[r][0] = acc[r][1] = _mm256_setzero_ps();               \
        for (int64_t b = 0; b < n / QK; b++) {                                                    \
            const uint8_t *pb = (const uint8_t *)a + (size_t)b * (PB);                            \
            const int32_t *sa = (const int32_t *)(pb + 512);                                      \
            const float *d = (const float *)(pb + 576);                                           \
            _Alignas(32) int8_t wq[PA_R][32], wa[PA_R][32];                                       \
            __m256i p[PA_R][2];                                                                   \
            for (int r = 0; r < PA_R; r++) {                                                      \
                const BLK *x = (const BLK *)((const uint8_t *)w + (size_t)r * w_row) + b;         \
                __m256i q = VALS(x);                                                              \
                _mm256_store_si256((__m256i *)wq[r], q);                                          \
                if (OFF < 0) _mm256_store_si256((__m256i *)wa[r], _mm256_sign_epi8(q, q));        \
                p[r][0] = p[r][1] = _mm256_setzero_si256();                                       \
            }                                                                                     \
            if (OFF < 0) pa_dot_q8_0(wq, wa, pb, p);                                              \
            else pa_dot_u(wq, pb, p);                                                             \
            for (int r = 0; r < PA_R; r++) {                                                      \
                const BLK *x = (const BLK *)((const uint8_t *)w + (size_t)r * w_row) + b;         \
                __m256 dx = _mm256_set1_ps(h2f(x->d));                                            \
                for (int v = 0; v < 2; v++) {                                                     \
                    __m256i pv = p[r][v];                                                         \
                    if (OFF > 0)                                                                  \
                        pv = _mm256_sub_epi32(pv, _mm256_mullo_epi32(_mm256_loadu_si256((const __m256i *)(sa + 8 * v)), \
                                                                     _mm256_set1_epi32(OFF))); \
                    acc[r][v] = _mm256_fmadd_ps(_mm256_mul_ps(dx, _mm256_loadu_ps(d + 8 * v)),    \
                                                _mm256_cvtepi32_ps(pv), acc[r][v]);               \
                }                                                                                 \
                MIN(r, x);                                                                        \
            }                                                                                     \
        }                                                                                         \
        for (int v = 0; v < 2; v++)                                                               \
            for (int r = 0; r < PA_R; r++) {                                                      \
                float out[8];                                                                     \
                _mm256_storeu_ps(out, acc[r][v]);                                                 \
                for (int l = 0; l < 8; l++) y[(size_t)(8 * v + l) * y_stride + (size_t)r] = out[l]; \
            }                                                                                     \
    }

TILEA(tilea_q8_0, blk_q8_0, v_q8_0, -1, PA_NOMIN, PA_BYTES)
TILEA(tilea_q4_0, blk_q4_0, v_q4_0, 8, PA_NOMIN, PA_BYTES)
TILEA(tilea_q5_0, blk_q5_0, v_q5_0, 16, PA_NOMIN, PA_BYTES)
TILEA(tilea_q4_1, blk_q4_1, v_q4_1, 0, PA_MIN, PA_BYTES + 64)
TILEA(tilea_q5_1, blk_q5_1, v_q5_1, 0, PA_MIN, PA_BYTES + 64)
#undef TILEA
#undef PA_NOMIN
#undef PA_MIN

/* K-quants the same way (Q8_K activations). The unsigned values (Q2_K at
 * most 3, Q3_K 7, Q4_K 15, Q5_K 31, Q6_K 63) are vpmaddubsw's unsigned
 * operand; the pair sums of four columns (Q6_K: two) add up in 16 bits, and
 * vpmaddwd by the sub-block's scale widens and scales them at once. The
 * mins (Q2_K, Q4_K, Q5_K) and the offsets of Q3_K (-4) and Q6_K (-32) come
 * from the tokens' sub-block sums (pairs of int16 per lane, multiplied by
 * pairs of mins or scales).
 * Packed group of 16 tokens, per 256-value block (PK2_BYTES):
 *   2 x 64 x 32 bytes: token vector v, 4-byte column c: lane l = bytes
 *                      4c..4c+3 of token 8v+l
 *   16 floats:         each token's d
 *   2 x 4 x 32 bytes:  v, pair k: lane l = token 8v+l's sums of 32-value
 *                      sub-blocks 2k and 2k+1 (int16 each)
 *   2 x 8 x 32 bytes:  v, pair k: its sums of 16-value sub-blocks 2k, 2k+1 */
#define PK2_R 2
#define PK2_T 16
#define PK2_BYTES (2 * 64 * 32 + 16 * 4 + 2 * 4 * 32 + 2 * 8 * 32)

TGT static void pack2_q8_K(const void *a, size_t a_row, int64_t n, void *dst) {
    for (int64_t b = 0; b < n / QK_K; b++) {
        uint8_t *o = (uint8_t *)dst + (size_t)b * PK2_BYTES;
        float *d = (float *)(o + 4096);
        int16_t *s32 = (int16_t *)(o + 4096 + 64), *s16 = (int16_t *)(o + 4096 + 64 + 256);
        for (int l = 0; l < PK2_T; l++) {
            const blk_q8_K *y = (const blk_q8_K *)((const uint8_t *)a + (size_t)l * a_row) + b;
            uint8_t *col = o + (l / 8) * 2048 + (l % 8) * 4;
            for (int c = 0; c < 64; c++) memcpy(col + c * 32, y->qs + 4 * c, 4);
            d[l] = y->d;
            for (int k = 0; k < 4; k++) {
                int16_t *p = s32 + (l / 8) * 64 + k * 16 + (l % 8) * 2;
                p[0] = (int16_t)(y->bsums[4 * k] + y->bsums[4 * k + 1]);
                p[1] = (int16_t)(y->bsums[4 * k + 2] + y->bsums[4 * k + 3]);
            }
            for (int k = 0; k < 8; k++) {
                int16_t *p = s16 + (l / 8) * 128 + k * 16 + (l % 8) * 2;
                p[0] = y->bsums[2 * k];
                p[1] = y->bsums[2 * k + 1];
            }
        }
    }
}

/* A Q4_K/Q5_K/Q6_K row block as 256 unsigned values in the activations'
 * order. */
TGT static inline void k_unpack(const uint8_t *xb, int kind, uint8_t *out) {
    const __m256i m4 = _mm256_set1_epi8(0xF), m2 = _mm256_set1_epi8(3), one = _mm256_set1_epi8(1);
    if (kind == 2 || kind == 3) {
        /* 2-bit values (Q3_K: plus 4 where its hmask bit is set, 0..7) */
        const uint8_t *qs = kind == 2 ? ((const blk_q2_K *)xb)->qs : ((const blk_q3_K *)xb)->qs;
        __m256i hm = kind == 3 ? _mm256_loadu_si256((const __m256i *)((const blk_q3_K *)xb)->hmask) : _mm256_setzero_si256();
        for (int half = 0; half < 2; half++) {
            __m256i b = _mm256_loadu_si256((const __m256i *)(qs + 32 * half));
            for (int j = 0; j < 4; j++) {
                __m256i q = _mm256_and_si256(_mm256_srli_epi16(b, 2 * j), m2);
                if (kind == 3)
                    q = _mm256_or_si256(q, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hm, 4 * half + j), one), 2));
                _mm256_storeu_si256((__m256i *)(out + 128 * half + 32 * j), q);
            }
        }
        return;
    }
    if (kind == 6) {
        const blk_q6_K *x = (const blk_q6_K *)xb;
        for (int half = 0; half < 2; half++) {
            const uint8_t *ql = x->ql + 64 * half, *qh = x->qh + 32 * half;
            __m256i l0 = _mm256_loadu_si256((const __m256i *)ql), l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
            __m256i h = _mm256_loadu_si256((const __m256i *)qh);
            for (int k = 0; k < 4; k++) {
                __m256i l = k % 2 ? l1 : l0;
                __m256i lo = _mm256_and_si256(_mm256_srli_epi16(l, 4 * (k / 2)), m4);
                __m256i hi = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 2 * k), m2), 4);
                _mm256_storeu_si256((__m256i *)(out + 128 * half + 32 * k), _mm256_or_si256(lo, hi));
            }
        }
        return;
    }
    const uint8_t *qs = kind == 4 ? ((const blk_q4_K *)xb)->qs : ((const blk_q5_K *)xb)->qs;
    __m256i h = kind == 5 ? _mm256_loadu_si256((const __m256i *)((const blk_q5_K *)xb)->qh) : _mm256_setzero_si256();
    for (int k = 0; k < 4; k++) {
        __m256i b = _mm256_loadu_si256((const __m256i *)(qs + 32 * k));
        __m256i lo = _mm256_and_si256(b, m4), hi = _mm256_and_si256(_mm256_srli_epi16(b, 4), m4);
        if (kind == 5) {
            lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 2 * k), one), 4));
            hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 2 * k + 1), one), 4));
        }
        _mm256_storeu_si256((__m256i *)(out + 64 * k), lo);
        _mm256_storeu_si256((__m256i *)(out + 64 * k + 32), hi);
    }
}

TGT static inline __attribute__((always_inline)) void tile_k2(const void *w, size_t w_row, const void *a, int64_t n,
                                                              float *y, size_t y_stride, int kind) {
    const size_t bsz = kind == 2   ? sizeof(blk_q2_K)
                       : kind == 3 ? sizeof(blk_q3_K)
                       : kind == 4 ? sizeof(blk_q4_K)
                       : kind == 5 ? sizeof(blk_q5_K)
                                   : sizeof(blk_q6_K);
    /* sub-blocks of 16 values (Q2_K, Q3_K, Q6_K) or 32; columns summed in 16 bits */
    const int nsub = kind == 4 || kind == 5 ? 8 : 16, cols = 64 / nsub, group = kind == 6 ? 2 : 4;
    __m256 acc[PK2_R][2];
    for (int r = 0; r < PK2_R; r++) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / QK_K; b++) {
        const uint8_t *pb = (const uint8_t *)a + (size_t)b * PK2_BYTES;
        const float *d = (const float *)(pb + 4096);
        const uint8_t *s32 = pb + 4096 + 64, *s16 = pb + 4096 + 64 + 256;
        _Alignas(32) uint8_t wq[PK2_R][256];
        int16_t sc[PK2_R][16], mn[PK2_R][16];
        float dx[PK2_R], dmin[PK2_R];
        for (int r = 0; r < PK2_R; r++) {
            const uint8_t *xb = (const uint8_t *)w + (size_t)r * w_row + (size_t)b * bsz;
            k_unpack(xb, kind, wq[r]);
            if (kind == 2) {
                const blk_q2_K *x = (const blk_q2_K *)xb;
                for (int j = 0; j < 16; j++) sc[r][j] = x->scales[j] & 0xF, mn[r][j] = x->scales[j] >> 4;
                dx[r] = h2f(x->d);
                dmin[r] = h2f(x->dmin);
            } else if (kind == 3) {
                const blk_q3_K *x = (const blk_q3_K *)xb;
                int8_t s8[16];
                qk_q3_scales(x->scales, s8);
                for (int j = 0; j < 16; j++) sc[r][j] = s8[j];
                dx[r] = h2f(x->d);
                dmin[r] = 0;
            } else if (kind == 6) {
                const blk_q6_K *x = (const blk_q6_K *)xb;
                for (int j = 0; j < 16; j++) sc[r][j] = x->scales[j];
                dx[r] = h2f(x->d);
                dmin[r] = 0;
            } else {
                const blk_q4_K *x = (const blk_q4_K *)xb; /* Q5_K starts alike */
                uint8_t s8[8], m8[8];
                sx_k4_scales(x->scales, s8, m8);
                for (int j = 0; j < 8; j++) sc[r][j] = s8[j], mn[r][j] = m8[j];
                dx[r] = h2f(x->d);
                dmin[r] = h2f(x->dmin);
            }
        }
        __m256i iacc[PK2_R][2];
        for (int r = 0; r < PK2_R; r++) iacc[r][0] = iacc[r][1] = _mm256_setzero_si256();
        for (int j = 0; j < nsub; j++)
            for (int c0 = j * cols; c0 < (j + 1) * cols; c0 += group) {
                __m256i s16v[PK2_R][2];
                for (int r = 0; r < PK2_R; r++) s16v[r][0] = s16v[r][1] = _mm256_setzero_si256();
                for (int c = c0; c < c0 + group; c++) {
                    __m256i av[2] = {_mm256_loadu_si256((const __m256i *)(pb + 32 * c)),
                                     _mm256_loadu_si256((const __m256i *)(pb + 2048 + 32 * c))};
                    for (int r = 0; r < PK2_R; r++) {
                        int32_t w4;
                        memcpy(&w4, wq[r] + 4 * c, 4);
                        __m256i wb = _mm256_set1_epi32(w4);
                        for (int v = 0; v < 2; v++)
                            s16v[r][v] = _mm256_add_epi16(s16v[r][v], _mm256_maddubs_epi16(wb, av[v]));
                    }
                }
                for (int r = 0; r < PK2_R; r++) {
                    __m256i scv = _mm256_set1_epi16(sc[r][j]);
                    for (int v = 0; v < 2; v++) iacc[r][v] = _mm256_add_epi32(iacc[r][v], _mm256_madd_epi16(s16v[r][v], scv));
                }
            }
        for (int r = 0; r < PK2_R; r++)
            for (int v = 0; v < 2; v++) {
                __m256 dy = _mm256_loadu_ps(d + 8 * v);
                __m256i t = iacc[r][v];
                if (kind == 6 || kind == 3) /* values q - 32 (q - 4): subtract 32 (4) * sum_j sc_j * bsums_j */
                    for (int k = 0; k < 8; k++) {
                        __m256i pr = _mm256_loadu_si256((const __m256i *)(s16 + v * 256 + k * 32));
                        __m256i sp = _mm256_set1_epi32((int)((uint16_t)sc[r][2 * k] | ((uint32_t)(uint16_t)sc[r][2 * k + 1] << 16)));
                        t = _mm256_sub_epi32(t, _mm256_slli_epi32(_mm256_madd_epi16(pr, sp), kind == 6 ? 5 : 2));
                    }
                acc[r][v] = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_set1_ps(dx[r]), dy), _mm256_cvtepi32_ps(t), acc[r][v]);
                if (kind == 2 || kind == 4 || kind == 5) {
                    /* mins: per 32-value sub-block (Q4_K, Q5_K) or 16 (Q2_K) */
                    __m256i mi = _mm256_setzero_si256();
                    for (int k = 0; k < (kind == 2 ? 8 : 4); k++) {
                        __m256i pr = _mm256_loadu_si256(
                            (const __m256i *)(kind == 2 ? s16 + v * 256 + k * 32 : s32 + v * 128 + k * 32));
                        __m256i mp = _mm256_set1_epi32((int)((uint32_t)mn[r][2 * k] | ((uint32_t)mn[r][2 * k + 1] << 16)));
                        mi = _mm256_add_epi32(mi, _mm256_madd_epi16(pr, mp));
                    }
                    acc[r][v] = _mm256_fnmadd_ps(_mm256_mul_ps(_mm256_set1_ps(dmin[r]), dy), _mm256_cvtepi32_ps(mi),
                                                 acc[r][v]);
                }
            }
    }
    for (int v = 0; v < 2; v++)
        for (int r = 0; r < PK2_R; r++) {
            float out[8];
            _mm256_storeu_ps(out, acc[r][v]);
            for (int l = 0; l < 8; l++) y[(size_t)(8 * v + l) * y_stride + (size_t)r] = out[l];
        }
}

/* The entry points: one per type, the kind a constant. */
#define TILEK2(NAME, KIND)                                                                        \
    TGT static void NAME(const void *w, size_t w_row, const void *a, size_t a_row, int64_t n, float *y, size_t ys) { \
        (void)a_row;                                                                              \
        tile_k2(w, w_row, a, n, y, ys, KIND);                                                     \
    }
TILEK2(tile2_q2_K, 2)
TILEK2(tile2_q3_K, 3)
TILEK2(tile2_q4_K, 4)
TILEK2(tile2_q5_K, 5)
TILEK2(tile2_q6_K, 6)
#undef TILEK2

/* ---- attention and SwiGLU ------------------------------------------------ */

/* exp(x), 8 lanes: x = n ln2 + r (Cody-Waite, ln2 in two parts), e^r by its
 * Taylor polynomial to degree 7, 2^n built in the exponent bits; x is
 * clamped to [-87, 88], so results below e^-87 come out as e^-87 (10^-38,
 * nothing beside a softmax's 1) and above e^88 as e^88. */
TGT static inline __m256 exp8(__m256 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.0f)), _mm256_set1_ps(88.0f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.0f / 5040);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    /* 2^n: n = 128 (x near 88) is split as 2^64 * 2^(n-64) */
    __m256i ni = _mm256_cvtps_epi32(n);
    __m256i big = _mm256_cmpgt_epi32(ni, _mm256_set1_epi32(64));
    ni = _mm256_sub_epi32(ni, _mm256_and_si256(big, _mm256_set1_epi32(64)));
    __m256 two_n = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(ni, _mm256_set1_epi32(127)), 23));
    p = _mm256_mul_ps(p, two_n);
    return _mm256_blendv_ps(p, _mm256_mul_ps(p, _mm256_set1_ps(18446744073709551616.0f)), _mm256_castsi256_ps(big));
}

TGT static void swiglu(float *gate, const float *up, int64_t n) {
    const __m256 one = _mm256_set1_ps(1.0f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 x = _mm256_loadu_ps(gate + i);
        __m256 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), x));
        _mm256_storeu_ps(gate + i, _mm256_mul_ps(_mm256_div_ps(x, _mm256_add_ps(one, e)), _mm256_loadu_ps(up + i)));
    }
    llm_swiglu_ref(gate + i, up + i, n - i);
}

/* One row at a time: its 64 scores are 8 registers fed by the key columns
 * straight from L1 and a broadcast of each query value; then 64 of the
 * head's dimensions at a time for the values. */
TGT static void att_block(int R, int S, const float *Q, const float *KT, const float *V, float *sc, float *O,
                          float *mx, float *sum, const int *allow, float scale) {
    const __m256 vs = _mm256_set1_ps(scale);
    for (int r = 0; r < R; r++) {
        int al = allow[r];
        if (al <= 0) continue;
        __m256 acc[8];
        for (int c = 0; c < 8; c++) acc[c] = _mm256_setzero_ps();
        const float *q = Q + (size_t)r * (size_t)S;
        for (int d = 0; d < S; d++) {
            __m256 qb = _mm256_broadcast_ss(q + d);
            const float *k = KT + (size_t)d * LLM_ATT_KB;
            for (int c = 0; c < 8; c++) acc[c] = _mm256_fmadd_ps(qb, _mm256_loadu_ps(k + 8 * c), acc[c]);
        }
        float *s = sc + (size_t)r * LLM_ATT_KB;
        for (int c = 0; c < 8; c++) _mm256_storeu_ps(s + 8 * c, _mm256_mul_ps(acc[c], vs));
        float m = mx[r];
        for (int j = 0; j < al; j++)
            if (s[j] > m) m = s[j];
        float corr = expf(mx[r] - m);
        __m256 vm = _mm256_set1_ps(m), l = _mm256_setzero_ps();
        for (int j = 0; j < LLM_ATT_KB; j += 8) {
            __m256 pj = exp8(_mm256_sub_ps(_mm256_loadu_ps(s + j), vm));
            /* keys at or past allow get 0 */
            __m256i idx = _mm256_add_epi32(_mm256_set1_epi32(j), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
            pj = _mm256_and_ps(pj, _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(al), idx)));
            l = _mm256_add_ps(l, pj);
            _mm256_storeu_ps(s + j, pj);
        }
        mx[r] = m;
        sum[r] = sum[r] * corr + hsum8(l);
        float *o = O + (size_t)r * (size_t)S;
        for (int d0 = 0; d0 < S; d0 += 64) {
            int nv = (S - d0) / 8 < 8 ? (S - d0) / 8 : 8;
            __m256 ov[8], cv = _mm256_set1_ps(corr);
            for (int c = 0; c < nv; c++) ov[c] = _mm256_mul_ps(_mm256_loadu_ps(o + d0 + 8 * c), cv);
            for (int j = 0; j < al; j++) {
                __m256 pb = _mm256_broadcast_ss(s + j);
                const float *v = V + (size_t)j * (size_t)S + (size_t)d0;
                for (int c = 0; c < nv; c++) ov[c] = _mm256_fmadd_ps(pb, _mm256_loadu_ps(v + 8 * c), ov[c]);
            }
            for (int c = 0; c < nv; c++) _mm256_storeu_ps(o + d0 + 8 * c, ov[c]);
        }
    }
}

/* ---- rows to F32 (the trainer's frozen base) ------------------------------
 * Each value is the scalar twin's product (and difference) in the same
 * order, without fused multiply-adds, so the floats are bit for bit those
 * of llm_dequant_row. */

/* 32 signed bytes times da (the first 16) and db (the last 16). */
TGT static inline void deq_i8x32(float *y, __m256i q, __m256 da, __m256 db) {
    __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
    _mm256_storeu_ps(y, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo)), da));
    _mm256_storeu_ps(y + 8, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8))), da));
    _mm256_storeu_ps(y + 16, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi)), db));
    _mm256_storeu_ps(y + 24, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8))), db));
}

TGT static void deq_f16(const void *src, float *y, int64_t n) {
    const uint16_t *h = src;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(h + i))));
    for (; i < n; i++) y[i] = h2f(h[i]);
}

TGT static void deq_q8_0(const void *src, float *y, int64_t n) {
    const blk_q8_0 *x = src;
    for (int64_t i = 0; i < n / QK; i++, y += QK) {
        __m256 d = _mm256_set1_ps(h2f(x[i].d));
        deq_i8x32(y, _mm256_loadu_si256((const __m256i *)x[i].qs), d, d);
    }
}

TGT static void deq_q4_0(const void *src, float *y, int64_t n) {
    const blk_q4_0 *x = src;
    for (int64_t i = 0; i < n / QK; i++, y += QK) {
        __m256 d = _mm256_set1_ps(h2f(x[i].d));
        deq_i8x32(y, _mm256_sub_epi8(nibbles32(x[i].qs), _mm256_set1_epi8(8)), d, d);
    }
}

TGT static void deq_q5_0(const void *src, float *y, int64_t n) {
    const blk_q5_0 *x = src;
    for (int64_t i = 0; i < n / QK; i++, y += QK) {
        __m256 d = _mm256_set1_ps(h2f(x[i].d));
        deq_i8x32(y, _mm256_sub_epi8(Q5_BITS(&x[i]), _mm256_set1_epi8(16)), d, d);
    }
}

/* 32 unsigned bytes (0..15) as d * q - m. */
TGT static inline void deq_u4x32_min(float *y, __m256i q, __m256 d, __m256 m) {
    __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
    __m128i part[4] = {lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8)};
    for (int k = 0; k < 4; k++)
        _mm256_storeu_ps(y + 8 * k,
                         _mm256_sub_ps(_mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(part[k]))), m));
}

TGT static void deq_q4_K(const void *src, float *y, int64_t n) {
    const blk_q4_K *x = src;
    const __m256i low = _mm256_set1_epi8(0x0F);
    for (int64_t i = 0; i < n / 256; i++) {
        float d = h2f(x[i].d), min = h2f(x[i].dmin);
        uint8_t sc[8], mn[8];
        sx_k4_scales(x[i].scales, sc, mn);
        const uint8_t *qs = x[i].qs;
        for (int j = 0; j < 4; j++, qs += 32, y += 64) {
            __m256i q = _mm256_loadu_si256((const __m256i *)qs);
            deq_u4x32_min(y, _mm256_and_si256(q, low), _mm256_set1_ps(d * sc[2 * j]), _mm256_set1_ps(min * mn[2 * j]));
            deq_u4x32_min(y + 32, _mm256_and_si256(_mm256_srli_epi16(q, 4), low), _mm256_set1_ps(d * sc[2 * j + 1]),
                          _mm256_set1_ps(min * mn[2 * j + 1]));
        }
    }
}

TGT static void deq_q6_K(const void *src, float *y, int64_t n) {
    const blk_q6_K *x = src;
    const __m256i low = _mm256_set1_epi8(0x0F), two = _mm256_set1_epi8(3), off = _mm256_set1_epi8(32);
    for (int64_t i = 0; i < n / 256; i++) {
        float d = h2f(x[i].d);
        const uint8_t *ql = x[i].ql, *qh = x[i].qh;
        const int8_t *sc = x[i].scales;
        for (int h = 0; h < 2; h++, ql += 64, qh += 32, sc += 8, y += 128) {
            __m256i l0 = _mm256_loadu_si256((const __m256i *)ql), l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
            __m256i hb = _mm256_loadu_si256((const __m256i *)qh);
            __m256i q[4] = {
                _mm256_or_si256(_mm256_and_si256(l0, low), _mm256_slli_epi16(_mm256_and_si256(hb, two), 4)),
                _mm256_or_si256(_mm256_and_si256(l1, low),
                                _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2), two), 4)),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), low),
                                _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 4), two), 4)),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), low),
                                _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 6), two), 4))};
            for (int k = 0; k < 4; k++)
                deq_i8x32(y + 32 * k, _mm256_sub_epi8(q[k], off), _mm256_set1_ps(d * sc[2 * k]),
                          _mm256_set1_ps(d * sc[2 * k + 1]));
        }
    }
}

/* ---- weights laid out 16 rows to a group (repack.c), one token -------- */

/* The AVX-512 set's layout in two 256-bit halves (rows 0-7, 8-15): a
 * part's 4 bytes of 8 rows against a token's 4 activation bytes is
 * vpmaddubsw (unsigned values at most 63, so pair sums stay below 2^15
 * and several add up in 16 bits) then one vpmaddwd per sum of them. The
 * rows' sums lie in the lanes as with AVX-512, and each block's float step
 * is the one the scalar twin takes. Q8_0 (values to 255) would saturate
 * vpmaddubsw, so this set does not lay it out. */
TGT static inline __m256i madd_ones(__m256i p16) { return _mm256_madd_epi16(p16, _mm256_set1_epi16(1)); }

/* kind 4 = Q4_0, 5 = Q5_0. (Four groups side by side, as the AVX-512 set
 * reads them, ran slower here: 45 against 84 tokens/s on Qwen2.5-0.5B
 * Q4_0 with this set on Zen 5.) */
TGT static inline __attribute__((always_inline)) void r16_x8(const uint8_t *w, const uint8_t *a, int64_t n, float *y,
                                                             const int kind) {
    const bool q5 = kind == 5;
    const size_t gb = LLM_R16 * (q5 ? sizeof(blk_q5_0) : sizeof(blk_q4_0));
    const __m256i m4 = _mm256_set1_epi8(0x0F), h5 = _mm256_set1_epi8(0x10);
    __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int64_t b = 0; b < n / QK; b++) {
        const llm_x8 *ab = (const llm_x8 *)a + b;
        const uint8_t *x = w + (size_t)b * gb;
        __m256 dy = _mm256_set1_ps(ab->d);
        __m256i sy = _mm256_set1_epi32(ab->s), yq[8];
        for (int c = 0; c < 8; c++) yq[c] = _mm256_set1_epi32(sx_ld32(ab->qs + 4 * c));
        for (int h = 0; h < 2; h++) {
            __m256i u[8];
            for (int j = 0; j < 4; j++) {
                __m256i v = _mm256_loadu_si256((const __m256i *)(x + 32 + 64 * j + 32 * h));
                u[j] = _mm256_and_si256(v, m4);
                u[4 + j] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
            }
            if (q5)
                for (int c = 0; c < 8; c++)
                    u[c] = _mm256_or_si256(u[c], _mm256_and_si256(bits32(x + 288 + 8 * c + 4 * h), h5));
            /* Q4_0: eight pair sums of at most 2*15*127 fit 16 bits; Q5_0 (31): four */
            __m256i p;
            if (q5) {
                __m256i s0 = _mm256_maddubs_epi16(u[0], yq[0]), s1 = _mm256_maddubs_epi16(u[4], yq[4]);
                for (int c = 1; c < 4; c++) {
                    s0 = _mm256_add_epi16(s0, _mm256_maddubs_epi16(u[c], yq[c]));
                    s1 = _mm256_add_epi16(s1, _mm256_maddubs_epi16(u[4 + c], yq[4 + c]));
                }
                p = _mm256_add_epi32(madd_ones(s0), madd_ones(s1));
            } else {
                __m256i s0 = _mm256_maddubs_epi16(u[0], yq[0]);
                for (int c = 1; c < 8; c++) s0 = _mm256_add_epi16(s0, _mm256_maddubs_epi16(u[c], yq[c]));
                p = madd_ones(s0);
            }
            p = _mm256_sub_epi32(p, sy);
            __m256 dx = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + 16 * h)));
            acc[h] = _mm256_fmadd_ps(_mm256_mul_ps(dx, dy), _mm256_cvtepi32_ps(p), acc[h]);
        }
    }
    _mm256_storeu_ps(y, acc[0]);
    _mm256_storeu_ps(y + 8, acc[1]);
}
TGT static void r16_one_q4_0(const void *w, const void *a, int64_t n, float *y, size_t ys) {
    (void)ys;
    r16_x8(w, a, n, y, 4);
}
TGT static void r16_one_q5_0(const void *w, const void *a, int64_t n, float *y, size_t ys) {
    (void)ys;
    r16_x8(w, a, n, y, 5);
}

/* Q4_K: as the AVX-512 kernel, a sub-block's eight parts summed in 16 bits. */
TGT static void r16_one_q4_K(const void *w, const void *a, int64_t n, float *y, size_t ys) {
    (void)ys;
    const __m256i m4 = _mm256_set1_epi8(0x0F), m6 = _mm256_set1_epi32(63), m2 = _mm256_set1_epi32(3),
                  mf = _mm256_set1_epi32(0xF);
    __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int64_t b = 0; b < n / QK_K; b++) {
        const uint8_t *x = (const uint8_t *)w + (size_t)b * LLM_R16 * sizeof(blk_q4_K);
        const blk_q8_K *yb = (const blk_q8_K *)a + b;
        sx_prefetch(x + 2 * LLM_R16 * sizeof(blk_q4_K), LLM_R16 * sizeof(blk_q4_K));
        __m256 dy = _mm256_set1_ps(yb->d);
        for (int h = 0; h < 2; h++) {
            __m256 dxy = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + 16 * h))), dy);
            __m256 dmy = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + 32 + 16 * h))), dy);
            __m256i S0 = _mm256_loadu_si256((const __m256i *)(x + 64 + 32 * h)),
                    S1 = _mm256_loadu_si256((const __m256i *)(x + 128 + 32 * h)),
                    S2 = _mm256_loadu_si256((const __m256i *)(x + 192 + 32 * h));
            __m256i isum = _mm256_setzero_si256(), summs = _mm256_setzero_si256();
            for (int i = 0; i < 4; i++) {
                __m256i slo = _mm256_setzero_si256(), shi = _mm256_setzero_si256();
                for (int q = 0; q < 8; q++) {
                    __m256i v = _mm256_loadu_si256((const __m256i *)(x + 256 + 64 * (8 * i + q) + 32 * h));
                    slo = _mm256_add_epi16(slo, _mm256_maddubs_epi16(_mm256_and_si256(v, m4),
                                                                     _mm256_set1_epi32(sx_ld32(yb->qs + 64 * i + 4 * q))));
                    shi = _mm256_add_epi16(shi, _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(v, 4), m4),
                                                                     _mm256_set1_epi32(sx_ld32(yb->qs + 64 * i + 32 + 4 * q))));
                }
                for (int hh = 0; hh < 2; hh++) {
                    int j = 2 * i + hh;
                    __m256i sc, mn;
                    if (j < 4) {
                        sc = _mm256_and_si256(_mm256_srli_epi32(S0, 8 * j), m6);
                        mn = _mm256_and_si256(_mm256_srli_epi32(S1, 8 * j), m6);
                    } else {
                        int jj = j - 4;
                        sc = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(S2, 8 * jj), mf),
                                             _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(S0, 8 * jj + 6), m2), 4));
                        mn = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(S2, 8 * jj + 4), mf),
                                             _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(S1, 8 * jj + 6), m2), 4));
                    }
                    isum = _mm256_add_epi32(isum, _mm256_mullo_epi32(sc, madd_ones(hh ? shi : slo)));
                    summs = _mm256_add_epi32(
                        summs, _mm256_mullo_epi32(mn, _mm256_set1_epi32(yb->bsums[2 * j] + yb->bsums[2 * j + 1])));
                }
            }
            acc[h] = _mm256_add_ps(acc[h], _mm256_sub_ps(_mm256_mul_ps(dxy, _mm256_cvtepi32_ps(isum)),
                                                         _mm256_mul_ps(dmy, _mm256_cvtepi32_ps(summs))));
        }
    }
    _mm256_storeu_ps(y, acc[0]);
    _mm256_storeu_ps(y + 8, acc[1]);
}

/* Q6_K: values to 63, so two pair sums add up in 16 bits. */
TGT static void r16_one_q6_K(const void *w, const void *a, int64_t n, float *y, size_t ys) {
    (void)ys;
    const __m256i m4 = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30);
    __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int64_t b = 0; b < n / QK_K; b++) {
        const uint8_t *x = (const uint8_t *)w + (size_t)b * LLM_R16 * sizeof(blk_q6_K);
        const uint8_t *ql = x, *qhp = x + 2048, *scp = x + 3072;
        const blk_q8_K *yb = (const blk_q8_K *)a + b;
        sx_prefetch(x + 2 * LLM_R16 * sizeof(blk_q6_K), LLM_R16 * sizeof(blk_q6_K));
        __m256 dy = _mm256_set1_ps(yb->d);
        for (int hv = 0; hv < 2; hv++) { /* rows 8hv.. */
            __m256 dxy = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + 3328 + 16 * hv))), dy);
            __m256i isum = _mm256_setzero_si256();
            for (int h = 0; h < 2; h++)
                for (int g = 0; g < 2; g++) {
                    __m256i P16[4][2];
                    for (int q = 0; q < 4; q++) {
                        int l = 16 * g + 4 * q;
                        __m256i A = _mm256_loadu_si256((const __m256i *)(ql + 64 * ((64 * h + l) / 4) + 32 * hv));
                        __m256i B = _mm256_loadu_si256((const __m256i *)(ql + 64 * ((64 * h + 32 + l) / 4) + 32 * hv));
                        __m256i H = _mm256_loadu_si256((const __m256i *)(qhp + 64 * ((32 * h + l) / 4) + 32 * hv));
                        __m256i u[4] = {
                            _mm256_or_si256(_mm256_and_si256(A, m4), _mm256_and_si256(_mm256_slli_epi16(H, 4), m30)),
                            _mm256_or_si256(_mm256_and_si256(B, m4), _mm256_and_si256(_mm256_slli_epi16(H, 2), m30)),
                            _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(A, 4), m4), _mm256_and_si256(H, m30)),
                            _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(B, 4), m4),
                                            _mm256_and_si256(_mm256_srli_epi16(H, 2), m30))};
                        for (int i = 0; i < 4; i++) {
                            __m256i t = _mm256_maddubs_epi16(u[i], _mm256_set1_epi32(sx_ld32(yb->qs + 128 * h + 32 * i + l)));
                            if (q % 2 == 0) P16[i][q / 2] = t;
                            else P16[i][q / 2] = _mm256_add_epi16(P16[i][q / 2], t);
                        }
                    }
                    for (int i = 0; i < 4; i++) {
                        int j = 8 * h + 2 * i + g;
                        __m256i Sj = _mm256_loadu_si256((const __m256i *)(scp + 64 * (j / 4) + 32 * hv));
                        __m256i sc = _mm256_srai_epi32(_mm256_slli_epi32(Sj, 24 - 8 * (j % 4)), 24);
                        __m256i sj = _mm256_sub_epi32(_mm256_add_epi32(madd_ones(P16[i][0]), madd_ones(P16[i][1])),
                                                      _mm256_set1_epi32(32 * yb->bsums[j]));
                        isum = _mm256_add_epi32(isum, _mm256_mullo_epi32(sc, sj));
                    }
                }
            acc[hv] = _mm256_add_ps(acc[hv], _mm256_mul_ps(dxy, _mm256_cvtepi32_ps(isum)));
        }
    }
    _mm256_storeu_ps(y, acc[0]);
    _mm256_storeu_ps(y + 8, acc[1]);
}

static const llm_kernels AVX2 = {
    .name = "avx2",
    .dot = {[LLM_TYPE_F32] = dot_f32, [LLM_TYPE_F16] = dot_f16, [LLM_TYPE_BF16] = dot_bf16,
            [LLM_TYPE_Q4_0] = dot_q4_0, [LLM_TYPE_Q4_1] = dot_q4_1, [LLM_TYPE_Q5_0] = dot_q5_0,
            [LLM_TYPE_Q5_1] = dot_q5_1, [LLM_TYPE_Q8_0] = dot_q8_0, [LLM_TYPE_Q2_K] = dot_q2_K,
            [LLM_TYPE_Q3_K] = dot_q3_K, [LLM_TYPE_Q4_K] = dot_q4_K, [LLM_TYPE_Q5_K] = dot_q5_K,
            [LLM_TYPE_Q6_K] = dot_q6_K},
    .quant = {[LLM_TYPE_F32] = quant_f32, [LLM_TYPE_F16] = quant_f16, [LLM_TYPE_BF16] = quant_bf16,
              [LLM_TYPE_Q8_0] = quant_q8_0, [LLM_TYPE_Q8_1] = quant_q8_1, [LLM_TYPE_Q8_K] = qk_quant_q8_K},
    .rows = {[LLM_TYPE_Q8_0] = rows_q8_0, [LLM_TYPE_Q4_0] = rows_q4_0, [LLM_TYPE_Q5_0] = rows_q5_0,
             [LLM_TYPE_Q4_1] = rows_q4_1, [LLM_TYPE_Q5_1] = rows_q5_1, [LLM_TYPE_F16] = rows_f16},
    .tile = {[LLM_TYPE_Q8_0] = {tilea_q8_0, PA_R, PA_T, packa_q8_0, PA_BYTES},
             [LLM_TYPE_Q4_0] = {tilea_q4_0, PA_R, PA_T, packa_q8_0, PA_BYTES},
             [LLM_TYPE_Q5_0] = {tilea_q5_0, PA_R, PA_T, packa_q8_0, PA_BYTES},
             [LLM_TYPE_Q4_1] = {tilea_q4_1, PA_R, PA_T, packa_q8_1, PA_BYTES + 64},
             [LLM_TYPE_Q5_1] = {tilea_q5_1, PA_R, PA_T, packa_q8_1, PA_BYTES + 64},
             [LLM_TYPE_Q2_K] = {tile2_q2_K, PK2_R, PK2_T, pack2_q8_K, PK2_BYTES},
             [LLM_TYPE_Q3_K] = {tile2_q3_K, PK2_R, PK2_T, pack2_q8_K, PK2_BYTES},
             [LLM_TYPE_Q4_K] = {tile2_q4_K, PK2_R, PK2_T, pack2_q8_K, PK2_BYTES},
             [LLM_TYPE_Q5_K] = {tile2_q5_K, PK2_R, PK2_T, pack2_q8_K, PK2_BYTES},
             [LLM_TYPE_Q6_K] = {tile2_q6_K, PK2_R, PK2_T, pack2_q8_K, PK2_BYTES}},
    .att = att_block,
    .att_align = 8,
    .swiglu = swiglu,
    .deq = {[LLM_TYPE_F16] = deq_f16, [LLM_TYPE_Q8_0] = deq_q8_0, [LLM_TYPE_Q4_0] = deq_q4_0,
            [LLM_TYPE_Q5_0] = deq_q5_0, [LLM_TYPE_Q4_K] = deq_q4_K, [LLM_TYPE_Q6_K] = deq_q6_K},
    .r16 = {[LLM_TYPE_Q8_0] = {llm_r16_ref1_q8_0, NULL, 1, NULL, false},
            [LLM_TYPE_Q4_0] = {r16_one_q4_0, NULL, 1, NULL, true},
            [LLM_TYPE_Q5_0] = {r16_one_q5_0, NULL, 1, NULL, true},
            [LLM_TYPE_Q4_K] = {r16_one_q4_K, NULL, 1, NULL, true},
            [LLM_TYPE_Q6_K] = {r16_one_q6_K, NULL, 1, NULL, true}},
};

const llm_kernels *llm_kernels_avx2(void) {
    __builtin_cpu_init();
    /* F16C is CPUID.1:ECX bit 29 (not every compiler's builtin knows it). */
    unsigned a, b, c, d;
    bool f16c = __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c) return &AVX2;
    return NULL;
}

#else
const llm_kernels *llm_kernels_avx2(void) { return NULL; }
#endif
