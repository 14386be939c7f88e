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

#endif
#endif
