/* simd_x86.h — the byte-unpacking helpers the AVX2 and AVX-512 kernel
 * files share (quant_avx2.c, quant_avx512.c). Internal to src/llm: each
 * helper is compiled for AVX2+FMA+F16C and inlined into its callers, whose
 * own target is that or a superset of it. */
#ifndef TAILOR_LLM_SIMD_X86_H
#define TAILOR_LLM_SIMD_X86_H

#include <string.h>

#include "llm/llm.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <immintrin.h>

#define SX_AVX2 __attribute__((target("avx2,fma,f16c")))

SX_AVX2 static inline float sx_h2f(uint16_t h) { return _cvtsh_ss(h); }

SX_AVX2 static inline float sx_hsum8(__m256 v) {
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
    return _mm_cvtss_f32(lo);
}

/* 16 bytes of nibbles -> 32 bytes: low nibbles first, then high nibbles. */
SX_AVX2 static inline __m256i sx_nibbles32(const uint8_t *qs) {
    __m128i b = _mm_loadu_si128((const __m128i *)qs);
    __m256i both = _mm256_set_m128i(_mm_srli_epi16(b, 4), b);
    return _mm256_and_si256(both, _mm256_set1_epi8(0x0F));
}

/* Bit i of the 32-bit word -> byte i = 0xFF or 0. */
SX_AVX2 static inline __m256i sx_bits32(const uint8_t *p) {
    uint32_t x;
    memcpy(&x, p, 4);
    __m256i v = _mm256_set1_epi32((int)x);
    const __m256i shuf = _mm256_setr_epi64x(0x0000000000000000LL, 0x0101010101010101LL,
                                            0x0202020202020202LL, 0x0303030303030303LL);
    v = _mm256_shuffle_epi8(v, shuf);
    const __m256i bit = _mm256_set1_epi64x(0x7fbfdfeff7fbfdfeLL);
    v = _mm256_or_si256(v, bit);
    return _mm256_cmpeq_epi8(v, _mm256_set1_epi64x(-1));
}

/* A Q8_0 block's values plus 128, as unsigned bytes (the sign bit flipped). */
SX_AVX2 static inline __m256i sx_q8_0_flipped(const blk_q8_0 *x) {
    return _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)x->qs), _mm256_set1_epi8((char)0x80));
}

/* The sum of 32 unsigned bytes. */
SX_AVX2 static inline int sx_sum_u8(__m256i u) {
    __m256i s = _mm256_sad_epu8(u, _mm256_setzero_si256());
    __m128i t = _mm_add_epi64(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    return (int)(_mm_cvtsi128_si64(t) + _mm_extract_epi64(t, 1));
}

/* 4 bytes as an int (a vector broadcast's operand). */
static inline int32_t sx_ld32(const void *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* The 16-row layout's K-quant blocks (2-3 KB of a group) are read
 * through a long chain of arithmetic, and the hardware prefetcher alone
 * left the stream at 13-29 GB/s from memory on Zen 5 (45 GB/s with this):
 * each block asks for the one two ahead. (The 32-value layouts read short
 * blocks and measured no faster with it.) */
SX_AVX2 static inline void sx_prefetch(const uint8_t *p, size_t n) {
    for (size_t o = 0; o < n; o += 64) _mm_prefetch((const char *)p + o, _MM_HINT_T0);
}

/* Q5_0/Q5_1: the low nibbles with the fifth bits, unsigned (0..31). */
#define SX_Q5_BITS(x) \
    _mm256_or_si256(sx_nibbles32((x)->qs), _mm256_and_si256(sx_bits32((x)->qh), _mm256_set1_epi8(0x10)))

/* The 8 six-bit scales and mins of a Q4_K/Q5_K block. */
static inline void sx_k4_scales(const uint8_t *q, uint8_t sc[8], uint8_t mn[8]) {
    uint32_t u[3], s[2], m[2];
    memcpy(u, q, 12);
    s[0] = u[0] & 0x3f3f3f3f;
    s[1] = (u[2] & 0x0f0f0f0f) | (((u[0] >> 6) & 0x03030303) << 4);
    m[0] = u[1] & 0x3f3f3f3f;
    m[1] = ((u[2] >> 4) & 0x0f0f0f0f) | (((u[1] >> 6) & 0x03030303) << 4);
    memcpy(sc, s, 8);
    memcpy(mn, m, 8);
}

/* The packed layout of the 32-value tiles that keep the tokens in the
 * vector lanes (every SIMD set has one), per activation block of `tokens`
 * Q8_0 or Q8_1 rows: tokens / lanes registers of 8 four-byte columns (lane
 * l of register v: bytes 4c..4c+3 of token lanes * v + l, plus 128 when
 * flip), then each token's sum(qs) as int32 (sums), its d as float, and
 * with Q8_1 its s as float. Inlined into each set's packer so the shape is
 * a constant there (a run-time shape cost 15% of a tile's time). */
typedef struct sx_pack32 {
    int lanes, tokens;
    bool flip, sums, q8_1;
} sx_pack32;

static inline size_t sx_pack32_bytes(sx_pack32 p) {
    return (size_t)p.tokens * (32 + (p.sums ? 4 : 0) + 4 + (p.q8_1 ? 4 : 0));
}

static inline __attribute__((always_inline)) void sx_pack32_rows(sx_pack32 p, const void *a, size_t a_row, int64_t n,
                                                                 void *dst) {
    size_t bsz = p.q8_1 ? sizeof(blk_q8_1) : sizeof(blk_q8_0), step = sx_pack32_bytes(p);
    for (int64_t b = 0; b < n / 32; b++) {
        uint8_t *o = (uint8_t *)dst + (size_t)b * step;
        uint8_t *tail = o + (size_t)p.tokens * 32;
        int32_t *sums = (int32_t *)tail;
        float *d = (float *)(tail + (p.sums ? (size_t)p.tokens * 4 : 0));
        for (int l = 0; l < p.tokens; l++) {
            const uint8_t *y = (const uint8_t *)a + (size_t)l * a_row + (size_t)b * bsz;
            /* both block types end in qs[32] after 16-bit fields: d, then Q8_1's s */
            const int8_t *qs = (const int8_t *)(y + bsz - 32);
            uint16_t h[2] = {0, 0};
            memcpy(h, y, p.q8_1 ? 4 : 2);
            uint8_t *col = o + (size_t)(l / p.lanes) * (size_t)(32 * p.lanes) + (size_t)(l % p.lanes) * 4;
            for (int c = 0; c < 8; c++) {
                uint32_t v;
                memcpy(&v, qs + 4 * c, 4);
                if (p.flip) v ^= 0x80808080u;
                memcpy(col + (size_t)c * (size_t)(4 * p.lanes), &v, 4);
            }
            if (p.sums) {
                int sum = 0;
                for (int i = 0; i < 32; i++) sum += qs[i];
                sums[l] = sum;
            }
            d[l] = f32_from_f16(h[0]);
            if (p.q8_1) d[p.tokens + l] = f32_from_f16(h[1]);
        }
    }
}

#endif
#endif
