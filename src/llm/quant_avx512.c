/* quant_avx512.c — kernels for CPUs with AVX-512 (F, BW, VL, DQ) and
 * AVX512-VNNI (llm_kernels_avx512): the AVX2 set with its prompt tiles
 * replaced or added (the tokens in the lanes, vpdpbusd), rows kernels for
 * generation on the 32-value types, the blocked attention and SwiGLU.
 * Prompts are bound by arithmetic, which 512-bit lanes and vpdpbusd (64
 * byte products per instruction, no 16-bit step) cut; generation is bound
 * by memory, where the rows kernels only need to unpack fast enough.
 *
 * Each kernel computes what its scalar twin in quant.c / quant_k.c
 * computes: integer block sums are exact (tests compare them), only the
 * order of the float accumulation differs.
 *
 * vpdpbusd multiplies unsigned by signed bytes: the tiles raise the packed
 * activations by 128 and pay -128 * sum(w) per row block; the rows kernels
 * unpack the weights to value + OFF (Q8_0: the sign bit flipped, OFF 128;
 * Q4_0: the nibble, OFF 8; Q5_0: OFF 16) and pay -OFF * sum(y) once per
 * block for all rows. */
#include "llm/simd_x86.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <math.h>
#include <pthread.h>

#define TGT __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c")))
#define TGT_BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx2,fma,f16c")))
#define QK 32

TGT static inline __m512i join256(__m256i lo, __m256i hi) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

/* ---- 32-value blocks: 4 rows x 32 tokens, tokens in the lanes ---------- */

/* The tokens' activations are packed once per product so that one 512-bit
 * register holds the same 4 bytes of 16 tokens' block; a weight row's 4
 * bytes are broadcast against it (vpdpbusd's {1to16} memory operand), and
 * eight of them give a block's dot product for 16 tokens at once, in 16
 * int32 lanes: no horizontal sums, one scale step per block for 16 tokens.
 *
 * Packed group of 32 tokens, per activation block (P32_BYTES, +128 for Q8_1):
 *   2 x 8 x 64 bytes: token vector v (tokens 16v..16v+15), 4-byte column c:
 *                     lane l = bytes 4c..4c+3 of token 16v+l, plus 128 each
 *                     (unsigned, as vpdpbusd's first operand must be)
 *   32 floats:        each token's block scale d
 *   32 floats (Q8_1): each token's d * sum(qs)
 * With the activations raised by 128, a row's dot gains 128 * sum(w) for
 * every token alike: each row block starts its sums at -128 * sum(w). */
#define P32_R 4
#define P32_T 32
#define P32_BYTES (2 * 8 * 64 + 32 * 4)

static const sx_pack32 P32_SHAPE = {16, P32_T, true, false, false}, P32_SHAPE1 = {16, P32_T, true, false, true};
static void pack_q8_0(const void *a, size_t a_row, int64_t n, void *dst) { sx_pack32_rows(P32_SHAPE, a, a_row, n, dst); }
static void pack_q8_1(const void *a, size_t a_row, int64_t n, void *dst) { sx_pack32_rows(P32_SHAPE1, a, a_row, n, dst); }

/* A row block's unsigned values U (Q8_0: the sign bit flipped; Q4_0/Q4_1:
 * the nibbles; Q5_0/Q5_1: with the fifth bits); the weights are U - OFF. */
#define u_q8_0 sx_q8_0_flipped
/* The fifth bits: a 32-bit mask selects 0x10 bytes (one instruction). */
TGT static inline __m256i q5_bits(const uint8_t *qs, const uint8_t *qh) {
    uint32_t h;
    memcpy(&h, qh, 4);
    return _mm256_or_si256(sx_nibbles32(qs), _mm256_maskz_mov_epi8((__mmask32)h, _mm256_set1_epi8(0x10)));
}
TGT static inline __m256i u_q4_0(const blk_q4_0 *x) { return sx_nibbles32(x->qs); }
TGT static inline __m256i u_q5_0(const blk_q5_0 *x) { return q5_bits(x->qs, x->qh); }
TGT static inline __m256i u_q4_1(const blk_q4_1 *x) { return sx_nibbles32(x->qs); }
TGT static inline __m256i u_q5_1(const blk_q5_1 *x) { return q5_bits(x->qs, x->qh); }

/* MIN (Q4_1/Q5_1): + m * (d * sum(qs)) per token, the lanes' own term. */
#define P32_NOMIN(r, x) (void)0
#define P32_MIN(r, x)                                                                              \
    for (int v = 0; v < 2; v++)                                                                    \
        acc[r][v] = _mm512_fmadd_ps(_mm512_set1_ps(sx_h2f((x)->m)), _mm512_loadu_ps(d + 32 + 16 * v), acc[r][v])

#define TILEP32(NAME, BLK, UNPACK, OFF, MIN, PB)                                                   \
    TGT static void NAME(const void *w, size_t w_row, const void *a, size_t a_row, int64_t n, float *y, \
                         size_t y_stride) {                                                        \
        (void)a_row;                                                                               \
        __m512 acc[P32_R][2];                                                                      \
        for (int r = 0; r < P32_R; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();               \
        for (int64_t b = 0; b < n / QK; b++) {                                                     \
            const uint8_t *pb = (const uint8_t *)a + (size_t)b * (PB);                             \
            const float *d = (const float *)(pb + 1024);                                           \
            _Alignas(32) int8_t wq[P32_R][32];                                                     \
            __m512i p[P32_R][2];                                                                   \
            for (int r = 0; r < P32_R; r++) {                                                      \
                const BLK *x = (const BLK *)((const uint8_t *)w + (size_t)r * w_row) + b;          \
                __m256i u = UNPACK(x);                                                             \
                _mm256_store_si256((__m256i *)wq[r], _mm256_sub_epi8(u, _mm256_set1_epi8((char)(OFF)))); \
                p[r][0] = p[r][1] = _mm512_set1_epi32(-128 * (sx_sum_u8(u) - 32 * (OFF)));            \
            }                                                                                      \
            for (int c = 0; c < 8; c++) {                                                          \
                __m512i a0 = _mm512_loadu_si512((const void *)(pb + 64 * c));                      \
                __m512i a1 = _mm512_loadu_si512((const void *)(pb + 512 + 64 * c));                \
                for (int r = 0; r < P32_R; r++) {                                                  \
                    int32_t w4;                                                                    \
                    memcpy(&w4, wq[r] + 4 * c, 4);                                                 \
                    __m512i wb = _mm512_set1_epi32(w4);                                            \
                    p[r][0] = _mm512_dpbusd_epi32(p[r][0], a0, wb);                                \
                    p[r][1] = _mm512_dpbusd_epi32(p[r][1], a1, wb);                                \
                }                                                                                  \
            }                                                                                      \
            for (int r = 0; r < P32_R; r++) {                                                      \
                const BLK *x = (const BLK *)((const uint8_t *)w + (size_t)r * w_row) + b;          \
                __m512 dx = _mm512_set1_ps(sx_h2f(x->d));                                          \
                for (int v = 0; v < 2; v++)                                                        \
                    acc[r][v] = _mm512_fmadd_ps(_mm512_mul_ps(dx, _mm512_loadu_ps(d + 16 * v)),    \
                                                _mm512_cvtepi32_ps(p[r][v]), acc[r][v]);           \
                MIN(r, x);                                                                         \
            }                                                                                      \
        }                                                                                          \
        for (int v = 0; v < 2; v++)                                                                \
            for (int r = 0; r < P32_R; r++) {                                                      \
                float out[16];                                                                     \
                _mm512_storeu_ps(out, acc[r][v]);                                                  \
                for (int l = 0; l < 16; l++) y[(size_t)(16 * v + l) * y_stride + (size_t)r] = out[l]; \
            }                                                                                      \
    }

TILEP32(tile_q8_0, blk_q8_0, u_q8_0, 128, P32_NOMIN, P32_BYTES)
TILEP32(tile_q4_0, blk_q4_0, u_q4_0, 8, P32_NOMIN, P32_BYTES)
TILEP32(tile_q5_0, blk_q5_0, u_q5_0, 16, P32_NOMIN, P32_BYTES)
TILEP32(tile_q4_1, blk_q4_1, u_q4_1, 0, P32_MIN, P32_BYTES + 128)
TILEP32(tile_q5_1, blk_q5_1, u_q5_1, 0, P32_MIN, P32_BYTES + 128)
#undef TILEP32
#undef P32_NOMIN
#undef P32_MIN

/* ---- generation: up to LLM_ROWS rows times one token ------------------- */

/* One token reads every weight once, so these are bound by memory when the
 * unpacking is cheap enough: vpdpbusd replaces vpmaddubsw + vpmaddwd, two
 * blocks go through one 512-bit step, the Q5 fifth bits come from one
 * masked move, and the offset of unsigned values is paid once per block
 * for all rows. */

/* 8 lanes of a, then 8 lanes of b. */
TGT static inline __m512 pair_ps(float a, float b) {
    return _mm512_insertf32x8(_mm512_set1_ps(a), _mm256_set1_ps(b), 1);
}

/* Two blocks' 16 bytes of nibbles -> 64 bytes: block 0's low then high
 * nibbles, then block 1's. */
TGT static inline __m512i nibbles64(const uint8_t *qs0, const uint8_t *qs1) {
    __m256i b = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)qs0)),
                                        _mm_loadu_si128((const __m128i *)qs1), 1);
    __m512i z = _mm512_inserti64x4(_mm512_castsi256_si512(b), _mm256_srli_epi16(b, 4), 1);
    z = _mm512_and_si512(z, _mm512_set1_epi8(0x0F));
    return _mm512_shuffle_i64x2(z, z, _MM_SHUFFLE(3, 1, 2, 0));
}

/* Blocks x and x + 1 of a row as 64 unsigned bytes (value + OFF). */
TGT static inline __m512i unpack2(const uint8_t *xb, int kind) {
    if (kind == 8) {
        const blk_q8_0 *x = (const blk_q8_0 *)xb;
        return _mm512_xor_si512(join256(_mm256_loadu_si256((const __m256i *)x[0].qs),
                                         _mm256_loadu_si256((const __m256i *)x[1].qs)),
                                _mm512_set1_epi8((char)0x80));
    }
    if (kind == 4) return nibbles64(((const blk_q4_0 *)xb)[0].qs, ((const blk_q4_0 *)xb)[1].qs);
    if (kind == 41) return nibbles64(((const blk_q4_1 *)xb)[0].qs, ((const blk_q4_1 *)xb)[1].qs);
    uint32_t h0, h1;
    __m512i z;
    if (kind == 5) {
        const blk_q5_0 *x = (const blk_q5_0 *)xb;
        z = nibbles64(x[0].qs, x[1].qs);
        memcpy(&h0, x[0].qh, 4);
        memcpy(&h1, x[1].qh, 4);
    } else {
        const blk_q5_1 *x = (const blk_q5_1 *)xb;
        z = nibbles64(x[0].qs, x[1].qs);
        memcpy(&h0, x[0].qh, 4);
        memcpy(&h1, x[1].qh, 4);
    }
    __mmask64 hm = (__mmask64)h0 | ((__mmask64)h1 << 32);
    return _mm512_or_si512(z, _mm512_maskz_mov_epi8(hm, _mm512_set1_epi8(0x10)));
}

TGT static inline __attribute__((always_inline)) void rows32(const void *w, size_t w_row, const void *a, int64_t n,
                                                              int nrows, float *out, int kind) {
    /* kind: 8 = Q8_0, 4 = Q4_0, 5 = Q5_0, 41 = Q4_1, 51 = Q5_1 (a constant in each caller) */
    const int off = kind == 8 ? 128 : kind == 4 ? 8 : kind == 5 ? 16 : 0;
    const bool min = kind == 41 || kind == 51;
    const size_t bsz = kind == 8    ? sizeof(blk_q8_0)
                       : kind == 4  ? sizeof(blk_q4_0)
                       : kind == 5  ? sizeof(blk_q5_0)
                       : kind == 41 ? sizeof(blk_q4_1)
                                    : sizeof(blk_q5_1);
    const size_t absz = min ? sizeof(blk_q8_1) : sizeof(blk_q8_0);
    __m256 acc[LLM_ROWS];
    float e[LLM_ROWS];
    __m512 acc2[LLM_ROWS];
    for (int r = 0; r < LLM_ROWS; r++) acc[r] = _mm256_setzero_ps(), acc2[r] = _mm512_setzero_ps(), e[r] = 0;
    int64_t nb = n / QK, i = 0;
    /* two blocks per step in 512-bit registers */
    for (; i + 2 <= nb; i += 2) {
        const uint8_t *yb = (const uint8_t *)a + (size_t)i * absz;
        __m512i qy = join256(_mm256_loadu_si256((const __m256i *)(yb + absz - 32)),
                             _mm256_loadu_si256((const __m256i *)(yb + 2 * absz - 32)));
        uint16_t h[4] = {0, 0, 0, 0};
        memcpy(&h[0], yb, 2);
        memcpy(&h[1], yb + absz, 2);
        if (min) {
            memcpy(&h[2], yb + 2, 2);
            memcpy(&h[3], yb + absz + 2, 2);
        }
        __m512 dy = pair_ps(sx_h2f(h[0]), sx_h2f(h[1]));
        __m512i neg = _mm512_setzero_si512();
        if (off) neg = _mm512_sub_epi32(neg, _mm512_dpbusd_epi32(neg, _mm512_set1_epi8((char)off), qy));
        for (int r = 0; r < nrows; r++) {
            const uint8_t *xb = (const uint8_t *)w + (size_t)r * w_row + (size_t)i * bsz;
            _mm_prefetch((const char *)(xb + 8 * bsz), _MM_HINT_T0);
            uint16_t dh[2];
            memcpy(&dh[0], xb, 2);
            memcpy(&dh[1], xb + bsz, 2);
            __m512i p = _mm512_dpbusd_epi32(neg, unpack2(xb, kind), qy);
            acc2[r] = _mm512_fmadd_ps(_mm512_mul_ps(pair_ps(sx_h2f(dh[0]), sx_h2f(dh[1])), dy), _mm512_cvtepi32_ps(p),
                                      acc2[r]);
            if (min) {
                uint16_t m0, m1;
                memcpy(&m0, xb + 2, 2);
                memcpy(&m1, xb + bsz + 2, 2);
                e[r] += sx_h2f(m0) * sx_h2f(h[2]) + sx_h2f(m1) * sx_h2f(h[3]);
            }
        }
    }
    for (; i < nb; i++) {
        const uint8_t *yb = (const uint8_t *)a + (size_t)i * absz;
        /* blk_q8_0 and blk_q8_1 both end in qs[32] after 16-bit fields */
        __m256i qy = _mm256_loadu_si256((const __m256i *)(yb + absz - 32));
        uint16_t dyh, syh = 0;
        memcpy(&dyh, yb, 2);
        if (min) memcpy(&syh, yb + 2, 2);
        float dy = sx_h2f(dyh);
        __m256i neg = _mm256_setzero_si256();
        if (off) neg = _mm256_sub_epi32(neg, _mm256_dpbusd_epi32(neg, _mm256_set1_epi8((char)off), qy));
        for (int r = 0; r < nrows; r++) {
            const uint8_t *xb = (const uint8_t *)w + (size_t)r * w_row + (size_t)i * bsz;
            _mm_prefetch((const char *)(xb + 8 * bsz), _MM_HINT_T0);
            __m256i u;
            uint16_t dxh;
            memcpy(&dxh, xb, 2);
            if (kind == 8) u = u_q8_0((const blk_q8_0 *)xb);
            else if (kind == 4) u = u_q4_0((const blk_q4_0 *)xb);
            else if (kind == 5) u = u_q5_0((const blk_q5_0 *)xb);
            else if (kind == 41) u = u_q4_1((const blk_q4_1 *)xb);
            else u = u_q5_1((const blk_q5_1 *)xb);
            __m256i p = _mm256_dpbusd_epi32(neg, u, qy);
            acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(sx_h2f(dxh) * dy), _mm256_cvtepi32_ps(p), acc[r]);
            if (min) {
                uint16_t mh;
                memcpy(&mh, xb + 2, 2);
                e[r] += sx_h2f(mh) * sx_h2f(syh);
            }
        }
    }
    for (int r = 0; r < nrows; r++) out[r] = sx_hsum8(acc[r]) + _mm512_reduce_add_ps(acc2[r]) + e[r];
}

#define ROWS32(NAME, KIND)                                                                         \
    TGT static void NAME(const void *w, size_t w_row, const void *a, int64_t n, int nrows, float *out) { \
        if (nrows == LLM_ROWS) rows32(w, w_row, a, n, LLM_ROWS, out, KIND);                        \
        else rows32(w, w_row, a, n, nrows, out, KIND);                                             \
    }
ROWS32(rows_q8_0, 8)
ROWS32(rows_q4_0, 4)
ROWS32(rows_q5_0, 5)
ROWS32(rows_q4_1, 41)
ROWS32(rows_q5_1, 51)
#undef ROWS32

/* ---- K-quants (Q8_K activations): 4 rows x 32 tokens, tokens in lanes -- */

/* A 256-value block is unpacked as four chunks of 64 values in the
 * activations' order, as unsigned bytes. Q4_K/Q5_K chunk k: the low
 * nibbles of 32 bytes (sub-block 2k), then the high nibbles (2k+1), each
 * with its fifth bit from qh when there is one. */
TGT static inline __m512i k45_chunk(const uint8_t *qs, const uint8_t *qh, int k) {
    const __m256i m4 = _mm256_set1_epi8(0xF), one = _mm256_set1_epi8(1);
    __m256i b = _mm256_loadu_si256((const __m256i *)(qs + 32 * k));
    __m256i lo = _mm256_and_si256(b, m4), hi = _mm256_and_si256(_mm256_srli_epi16(b, 4), m4);
    if (qh) {
        __m256i h = _mm256_loadu_si256((const __m256i *)qh);
        lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 2 * k), one), 4));
        hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 2 * k + 1), one), 4));
    }
    return join256(lo, hi);
}

/* Q6_K chunk k: half k / 2 of the block, its first (k even) or second 64
 * values: 4 low bits from ql, 2 high bits from qh. */
TGT static inline __m512i k6_chunk(const blk_q6_K *x, int k) {
    const __m256i m4 = _mm256_set1_epi8(0xF), m2 = _mm256_set1_epi8(3);
    const uint8_t *ql = x->ql + 64 * (k / 2), *qh = x->qh + 32 * (k / 2);
    __m256i l0 = _mm256_loadu_si256((const __m256i *)ql), l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
    __m256i h = _mm256_loadu_si256((const __m256i *)qh);
    int sh = 4 * (k % 2);
    __m256i lo = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, sh), m4),
                                 _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, sh), m2), 4));
    __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, sh), m4),
                                 _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, sh + 2), m2), 4));
    return join256(lo, hi);
}

/* As the 32-value tiles above, for Q8_K activations. Packed group of 32
 * tokens, per 256-value block (PK_BYTES):
 *   2 x 64 x 64 bytes: token vector v, 4-byte column c (values 4c..4c+3):
 *                      lane l = those bytes of token 16v+l, plus 128
 *   32 floats:         each token's d
 *   2 x 4 x 64 bytes:  token vector v, pair k: lane l = the int16 sums of
 *                      token 16v+l's sub-blocks 2k and 2k+1 (32 values each;
 *                      Q4_K/Q5_K's mins need them)
 * Per row block the weights are unpacked once to signed bytes (Q4_K/Q5_K:
 * 0..31; Q6_K: -32..31), a sub-block's 8 (or 4) columns give its dot for 16
 * tokens, times its scale (vpmulld) into the block's sum; the +128 of the
 * activations comes back as -128 * sum_j sc_j * sum(w in j), one number per
 * row block. */
#define PK_R 4
#define PK_T 32
#define PK_BYTES (2 * 64 * 64 + 32 * 4 + 2 * 4 * 64)

TGT static void pack_q8_K(const void *a, size_t a_row, int64_t n, void *dst) {
    for (int64_t b = 0; b < n / QK_K; b++) {
        uint8_t *o = (uint8_t *)dst + (size_t)b * PK_BYTES;
        float *d = (float *)(o + 2 * 4096);
        int16_t *pairs = (int16_t *)(o + 2 * 4096 + 128);
        for (int l = 0; l < PK_T; l++) {
            const blk_q8_K *y = (const blk_q8_K *)((const uint8_t *)a + (size_t)l * a_row) + b;
            uint8_t *col = o + (l / 16) * 4096 + (l % 16) * 4;
            for (int c = 0; c < 64; c++) {
                uint32_t v;
                memcpy(&v, y->qs + 4 * c, 4);
                v ^= 0x80808080u;
                memcpy(col + c * 64, &v, 4);
            }
            d[l] = y->d;
            for (int k = 0; k < 4; k++) {
                int16_t *p = pairs + (l / 16) * 128 + k * 32 + (l % 16) * 2;
                p[0] = (int16_t)(y->bsums[4 * k] + y->bsums[4 * k + 1]);
                p[1] = (int16_t)(y->bsums[4 * k + 2] + y->bsums[4 * k + 3]);
            }
        }
    }
}

/* kind 4, 5, 6: Q4_K, Q5_K, Q6_K (a constant in each caller). */
TGT static inline __attribute__((always_inline)) void tile_k(const void *w, size_t w_row, const void *a,
                                                               int64_t n, float *y, size_t y_stride, int kind) {
    const size_t bsz = kind == 4 ? sizeof(blk_q4_K) : kind == 5 ? sizeof(blk_q5_K) : sizeof(blk_q6_K);
    const int nsub = kind == 6 ? 16 : 8, cols = 64 / nsub; /* sub-blocks, 4-byte columns per sub-block */
    const __m512i lane = _mm512_set_epi16(31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14,
                                          13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    const __m512i sidx = _mm512_srli_epi16(lane, kind == 6 ? 3 : 4);
    __m512 acc[PK_R][2];
    for (int r = 0; r < PK_R; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    for (int64_t b = 0; b < n / QK_K; b++) {
        const uint8_t *pb = (const uint8_t *)a + (size_t)b * PK_BYTES;
        const float *d = (const float *)(pb + 2 * 4096);
        const uint8_t *pairs = pb + 2 * 4096 + 128;
        _Alignas(64) int8_t wq[PK_R][256];
        int sc[PK_R][16], mn[PK_R][8], corr[PK_R];
        float dx[PK_R], dmin[PK_R];
        for (int r = 0; r < PK_R; r++) {
            const uint8_t *xb = (const uint8_t *)w + (size_t)r * w_row + (size_t)b * bsz;
            __m512i s16, ssum = _mm512_setzero_si512();
            if (kind == 6) {
                const blk_q6_K *x = (const blk_q6_K *)xb;
                s16 = _mm512_zextsi256_si512(_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)x->scales)));
                for (int j = 0; j < 16; j++) sc[r][j] = x->scales[j];
                dx[r] = sx_h2f(x->d);
                dmin[r] = 0;
            } else {
                const blk_q4_K *x = (const blk_q4_K *)xb; /* Q5_K starts alike */
                uint8_t s8[8], m8[8];
                sx_k4_scales(x->scales, s8, m8);
                s16 = _mm512_zextsi128_si512(_mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)s8)));
                for (int j = 0; j < 8; j++) sc[r][j] = s8[j], mn[r][j] = m8[j];
                dx[r] = sx_h2f(x->d);
                dmin[r] = sx_h2f(x->dmin);
            }
            for (int k = 0; k < 4; k++) {
                __m512i q; /* unsigned values, the activations' order */
                if (kind == 6) q = k6_chunk((const blk_q6_K *)xb, k);
                else if (kind == 5) q = k45_chunk(((const blk_q5_K *)xb)->qs, ((const blk_q5_K *)xb)->qh, k);
                else q = k45_chunk(((const blk_q4_K *)xb)->qs, NULL, k);
                _mm512_store_si512((void *)(wq[r] + 64 * k),
                                   kind == 6 ? _mm512_sub_epi8(q, _mm512_set1_epi8(32)) : q);
                /* sum_j sc_j * sum(q in j), as the 64-value tiles above */
                __m512i s = _mm512_permutexvar_epi16(
                    _mm512_add_epi16(sidx, _mm512_set1_epi16((short)(kind == 6 ? 4 * k : 2 * k))), s16);
                ssum = _mm512_dpwssd_epi32(ssum, _mm512_maddubs_epi16(q, _mm512_set1_epi8(1)), s);
            }
            int scq = _mm512_reduce_add_epi32(ssum);
            if (kind == 6) /* the weights are q - 32: subtract 32 * 16 * sum(sc) */
                for (int j = 0; j < 16; j++) scq -= 512 * sc[r][j];
            corr[r] = -128 * scq;
        }
        __m512i iacc[PK_R][2];
        for (int r = 0; r < PK_R; r++) iacc[r][0] = iacc[r][1] = _mm512_set1_epi32(corr[r]);
        for (int j = 0; j < nsub; j++) {
            __m512i p[PK_R][2];
            for (int r = 0; r < PK_R; r++) p[r][0] = p[r][1] = _mm512_setzero_si512();
            for (int c = j * cols; c < (j + 1) * cols; c++) {
                __m512i a0 = _mm512_loadu_si512((const void *)(pb + 64 * c));
                __m512i a1 = _mm512_loadu_si512((const void *)(pb + 4096 + 64 * c));
                for (int r = 0; r < PK_R; r++) {
                    int32_t w4;
                    memcpy(&w4, wq[r] + 4 * c, 4);
                    __m512i wb = _mm512_set1_epi32(w4);
                    p[r][0] = _mm512_dpbusd_epi32(p[r][0], a0, wb);
                    p[r][1] = _mm512_dpbusd_epi32(p[r][1], a1, wb);
                }
            }
            for (int r = 0; r < PK_R; r++)
                for (int v = 0; v < 2; v++)
                    iacc[r][v] = _mm512_add_epi32(iacc[r][v], _mm512_mullo_epi32(p[r][v], _mm512_set1_epi32(sc[r][j])));
        }
        for (int v = 0; v < 2; v++) {
            __m512 dy = _mm512_loadu_ps(d + 16 * v);
            for (int r = 0; r < PK_R; r++) {
                acc[r][v] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_set1_ps(dx[r]), dy), _mm512_cvtepi32_ps(iacc[r][v]),
                                            acc[r][v]);
                if (kind != 6) {
                    __m512i mi = _mm512_setzero_si512();
                    for (int k = 0; k < 4; k++)
                        mi = _mm512_dpwssd_epi32(mi, _mm512_loadu_si512((const void *)(pairs + v * 256 + k * 64)),
                                                 _mm512_set1_epi32((int)((uint32_t)mn[r][2 * k] |
                                                                         ((uint32_t)mn[r][2 * k + 1] << 16))));
                    acc[r][v] = _mm512_fnmadd_ps(_mm512_mul_ps(_mm512_set1_ps(dmin[r]), dy), _mm512_cvtepi32_ps(mi),
                                                 acc[r][v]);
                }
            }
        }
    }
    for (int v = 0; v < 2; v++)
        for (int r = 0; r < PK_R; r++) {
            float out[16];
            _mm512_storeu_ps(out, acc[r][v]);
            for (int l = 0; l < 16; l++) y[(size_t)(16 * v + l) * y_stride + (size_t)r] = out[l];
        }
}

/* The entry points: one per type, the kind a constant. */
#define TILEK(NAME, KIND)                                                                         \
    TGT static void NAME(const void *w, size_t w_row, const void *a, size_t a_row, int64_t n, float *y, size_t ys) { \
        (void)a_row;                                                                              \
        tile_k(w, w_row, a, n, y, ys, KIND);                                                      \
    }
TILEK(tile_q4_K, 4)
TILEK(tile_q5_K, 5)
TILEK(tile_q6_K, 6)
#undef TILEK

/* ---- float weights: 4 rows x 4 tokens, 16 (F32) or 32 (BF16) values per
 * step; the tail under a mask ---------------------------------------------- */

#define TF_R 4
#define TF_T 4

/* LOAD(p, i, m): 16 floats from element i of row p under mask m. */
#define TILE_FLOAT(NAME, ATTR, ELEM, LOAD)                                                         \
    ATTR static void NAME(const void *w, size_t w_row, const void *a, size_t a_row, int64_t n, float *y, \
                          size_t y_stride) {                                                       \
        __m512 acc[TF_R][TF_T];                                                                    \
        for (int r = 0; r < TF_R; r++)                                                             \
            for (int t = 0; t < TF_T; t++) acc[r][t] = _mm512_setzero_ps();                        \
        for (int64_t i = 0; i < n; i += 16) {                                                      \
            __mmask16 m = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);      \
            __m512 x[TF_R];                                                                        \
            for (int r = 0; r < TF_R; r++) x[r] = LOAD((const ELEM *)((const uint8_t *)w + (size_t)r * w_row), i, m); \
            for (int t = 0; t < TF_T; t++) {                                                       \
                __m512 v = LOAD((const ELEM *)((const uint8_t *)a + (size_t)t * a_row), i, m);     \
                for (int r = 0; r < TF_R; r++) acc[r][t] = _mm512_fmadd_ps(x[r], v, acc[r][t]);    \
            }                                                                                      \
        }                                                                                          \
        for (int t = 0; t < TF_T; t++)                                                             \
            for (int r = 0; r < TF_R; r++) y[(size_t)t * y_stride + (size_t)r] = _mm512_reduce_add_ps(acc[r][t]); \
    }
#define LOAD_F32(p, i, m) _mm512_maskz_loadu_ps(m, (p) + (i))
TILE_FLOAT(tile_f32, TGT, float, LOAD_F32)
#undef TILE_FLOAT
#undef LOAD_F32

/* BF16: vdpbf16ps multiplies 32 pairs of bfloat16 exactly and adds them in
 * float (the reference converts each to float and multiplies: the same
 * products; denormal inputs, which no weight has, are flushed). */
TGT_BF16 static void tile_bf16(const void *w, size_t w_row, const void *a, size_t a_row, int64_t n, float *y,
                               size_t y_stride) {
    __m512 acc[TF_R][TF_T];
    for (int r = 0; r < TF_R; r++)
        for (int t = 0; t < TF_T; t++) acc[r][t] = _mm512_setzero_ps();
    for (int64_t i = 0; i < n; i += 32) {
        __mmask32 m = n - i >= 32 ? (__mmask32)0xFFFFFFFFu : (__mmask32)((1u << (n - i)) - 1);
        __m512i x[TF_R];
        for (int r = 0; r < TF_R; r++)
            x[r] = _mm512_maskz_loadu_epi16(m, (const uint16_t *)((const uint8_t *)w + (size_t)r * w_row) + i);
        for (int t = 0; t < TF_T; t++) {
            __m512i v = _mm512_maskz_loadu_epi16(m, (const uint16_t *)((const uint8_t *)a + (size_t)t * a_row) + i);
            for (int r = 0; r < TF_R; r++)
                acc[r][t] = _mm512_dpbf16_ps(acc[r][t], (__m512bh)x[r], (__m512bh)v);
        }
    }
    for (int t = 0; t < TF_T; t++)
        for (int r = 0; r < TF_R; r++) y[(size_t)t * y_stride + (size_t)r] = _mm512_reduce_add_ps(acc[r][t]);
}

/* ---- attention: one key block for a block of query rows --------------- */

/* exp(x), 16 lanes: x = n ln2 + r with n an integer and |r| <= ln2 / 2
 * (Cody-Waite: ln2 in two parts, so r is exact to float rounding even for
 * large |x|), e^r by its Taylor polynomial to degree 7 (relative error
 * below 1e-8 there), 2^n by vscalefps (which takes large negative n to 0
 * and large positive n to infinity). */
TGT static inline __m512 exp_ps(__m512 x) {
    x = _mm512_max_ps(x, _mm512_set1_ps(-104.0f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.0f / 5040);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

/* Rows in groups of 4: the scores of 4 rows x 64 keys are 16 registers fed
 * by one load of each key column and a broadcast of each query value; the
 * values the same way, 4 rows x 64 of the head's dimensions at a time. */
TGT static void att_block(int R, int S, const float *Q, const float *KT, const float *V, float *sc, float *O,
                          float *mx, float *sum, const int *allow, float scale) {
    const __m512 vs = _mm512_set1_ps(scale);
    for (int r0 = 0; r0 < R; r0 += 4) {
        int nr = R - r0 < 4 ? R - r0 : 4;
        __m512 acc[4][4];
        for (int r = 0; r < 4; r++)
            for (int c = 0; c < 4; c++) acc[r][c] = _mm512_setzero_ps();
        for (int d = 0; d < S; d++) {
            const float *k = KT + (size_t)d * LLM_ATT_KB;
            __m512 k0 = _mm512_loadu_ps(k), k1 = _mm512_loadu_ps(k + 16), k2 = _mm512_loadu_ps(k + 32),
                   k3 = _mm512_loadu_ps(k + 48);
            for (int r = 0; r < 4; r++) {
                if (r >= nr) break;
                __m512 qb = _mm512_set1_ps(Q[(size_t)(r0 + r) * (size_t)S + (size_t)d]);
                acc[r][0] = _mm512_fmadd_ps(qb, k0, acc[r][0]);
                acc[r][1] = _mm512_fmadd_ps(qb, k1, acc[r][1]);
                acc[r][2] = _mm512_fmadd_ps(qb, k2, acc[r][2]);
                acc[r][3] = _mm512_fmadd_ps(qb, k3, acc[r][3]);
            }
        }
        float corr[4];
        int kmax = 0;
        for (int r = 0; r < nr; r++) {
            int row = r0 + r, al = allow[row];
            float *s = sc + (size_t)row * LLM_ATT_KB;
            corr[r] = 1.0f;
            if (al <= 0) { /* nothing visible: the row's probabilities are 0 */
                for (int c = 0; c < 4; c++) _mm512_storeu_ps(s + 16 * c, _mm512_setzero_ps());
                continue;
            }
            if (al > kmax) kmax = al;
            __m512 m = _mm512_set1_ps(mx[row]);
            for (int c = 0; c < 4; c++) {
                __mmask16 vis = c * 16 >= al ? 0 : al - c * 16 >= 16 ? 0xFFFF : (__mmask16)((1u << (al - c * 16)) - 1);
                acc[r][c] = _mm512_mul_ps(acc[r][c], vs);
                m = _mm512_mask_max_ps(m, vis, m, acc[r][c]);
            }
            float mnew = _mm512_reduce_max_ps(m);
            corr[r] = expf(mx[row] - mnew);
            __m512 l = _mm512_setzero_ps(), vm = _mm512_set1_ps(mnew);
            for (int c = 0; c < 4; c++) {
                __mmask16 vis = c * 16 >= al ? 0 : al - c * 16 >= 16 ? 0xFFFF : (__mmask16)((1u << (al - c * 16)) - 1);
                __m512 p = _mm512_maskz_mov_ps(vis, exp_ps(_mm512_sub_ps(acc[r][c], vm)));
                l = _mm512_add_ps(l, p);
                _mm512_storeu_ps(s + 16 * c, p);
            }
            mx[row] = mnew;
            sum[row] = sum[row] * corr[r] + _mm512_reduce_add_ps(l);
        }
        /* O = O * corr + P V for the group's rows, 64 dimensions at a time */
        for (int d0 = 0; d0 < S; d0 += 64) {
            int nv = (S - d0) / 16 < 4 ? (S - d0) / 16 : 4;
            __m512 o[4][4];
            for (int r = 0; r < nr; r++)
                for (int c = 0; c < nv; c++)
                    o[r][c] = _mm512_mul_ps(_mm512_loadu_ps(O + (size_t)(r0 + r) * (size_t)S + (size_t)(d0 + 16 * c)),
                                            _mm512_set1_ps(corr[r]));
            for (int j = 0; j < kmax; j++) {
                const float *v = V + (size_t)j * (size_t)S + (size_t)d0;
                __m512 vv[4];
                for (int c = 0; c < nv; c++) vv[c] = _mm512_loadu_ps(v + 16 * c);
                for (int r = 0; r < nr; r++) {
                    __m512 pb = _mm512_set1_ps(sc[(size_t)(r0 + r) * LLM_ATT_KB + (size_t)j]);
                    for (int c = 0; c < nv; c++) o[r][c] = _mm512_fmadd_ps(pb, vv[c], o[r][c]);
                }
            }
            for (int r = 0; r < nr; r++)
                for (int c = 0; c < nv; c++)
                    _mm512_storeu_ps(O + (size_t)(r0 + r) * (size_t)S + (size_t)(d0 + 16 * c), o[r][c]);
        }
    }
}

/* SwiGLU's gate: x / (1 + exp(-x)) * up, 16 at a time (exp_ps goes to
 * infinity for large -x, giving the reference's -0). */
TGT static void swiglu(float *gate, const float *up, int64_t n) {
    const __m512 one = _mm512_set1_ps(1.0f);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 x = _mm512_loadu_ps(gate + i);
        __m512 e = exp_ps(_mm512_sub_ps(_mm512_setzero_ps(), x));
        _mm512_storeu_ps(gate + i, _mm512_mul_ps(_mm512_div_ps(x, _mm512_add_ps(one, e)), _mm512_loadu_ps(up + i)));
    }
    llm_swiglu_ref(gate + i, up + i, n - i);
}

/* ---- weights laid out 16 rows to a group (repack.c) -------------------- */

/* A Q4_0/Q5_0 block of 16 rows is four 64-byte loads of nibbles (the low
 * nibbles of part j are values 4j..4j+3 of every row, the high ones
 * 16+4j..) and, for Q5_0, eight ready masks of fifth bits; Q8_0's is eight
 * loads with the sign bits flipped. Each of the eight value vectors meets
 * a token's 4 activation bytes broadcast from memory in one vpdpbusd, so
 * the 16 rows' sums build up in the lanes; one scale step per block and
 * token for all 16 rows. */
/* A group block's eight value vectors, unsigned (the weight plus OFF). */
TGT static inline __attribute__((always_inline)) void r16_values(const uint8_t *x, const int kind, __m512i u[8]) {
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    if (kind == 8)
        for (int c = 0; c < 8; c++)
            u[c] = _mm512_xor_si512(_mm512_loadu_si512((const void *)(x + 32 + 64 * c)), _mm512_set1_epi8((char)0x80));
    else
        for (int j = 0; j < 4; j++) {
            __m512i v = _mm512_loadu_si512((const void *)(x + 32 + 64 * j));
            u[j] = _mm512_and_si512(v, m4);
            u[4 + j] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
        }
    if (kind == 5)
        for (int c = 0; c < 8; c++)
            u[c] = _mm512_mask_add_epi8(u[c], _load_mask64((__mmask64 *)(x + 288 + 8 * c)), u[c], _mm512_set1_epi8(0x10));
}

/* The 16 rows' integer sums with a token's 32 activation bytes, in two
 * chains so they do not wait on each other. */
TGT static inline __attribute__((always_inline)) __m512i r16_dot(const __m512i u[8], const int8_t *q) {
    __m512i p0 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), u[0], _mm512_set1_epi32(sx_ld32(q)));
    __m512i p1 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), u[1], _mm512_set1_epi32(sx_ld32(q + 4)));
    for (int c = 2; c < 8; c += 2) {
        p0 = _mm512_dpbusd_epi32(p0, u[c], _mm512_set1_epi32(sx_ld32(q + 4 * c)));
        p1 = _mm512_dpbusd_epi32(p1, u[c + 1], _mm512_set1_epi32(sx_ld32(q + 4 * c + 4)));
    }
    return _mm512_add_epi32(p0, p1);
}

TGT static inline __attribute__((always_inline)) void r16_kernel(const uint8_t *w, const uint8_t *a, int64_t n,
                                                                 float *y, size_t y_stride, const int T,
                                                                 const int kind) {
    /* kind: 8 = Q8_0 (the sign bits flipped), 4 = Q4_0, 5 = Q5_0 */
    const size_t gb = LLM_R16 * (kind == 8 ? sizeof(blk_q8_0) : kind == 5 ? sizeof(blk_q5_0) : sizeof(blk_q4_0));
    __m512 acc[LLM_TILE_MAX_T];
    for (int t = 0; t < T; t++) acc[t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < n / QK; b++) {
        const uint8_t *x = w + (size_t)b * gb;
        const llm_x8 *ab = (const llm_x8 *)a + (size_t)b * (size_t)T;
        __m512 dx = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)x));
        __m512i u[8];
        r16_values(x, kind, u);
        for (int t = 0; t < T; t++) {
            __m512i p = _mm512_sub_epi32(r16_dot(u, ab[t].qs), _mm512_set1_epi32(ab[t].s));
            acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(dx, _mm512_set1_ps(ab[t].d)), _mm512_cvtepi32_ps(p), acc[t]);
        }
    }
    for (int t = 0; t < T; t++) _mm512_storeu_ps(y + (size_t)t * y_stride, acc[t]);
}

/* Generation: four groups (gs bytes apart) side by side, block by block,
 * so a thread reads four sequential streams, which this memory system
 * serves faster than one (Q8_0 from memory ~33 -> ~38 GB/s a core). */
TGT static inline __attribute__((always_inline)) void r16_four(const uint8_t *w, size_t gs, const uint8_t *a, int64_t n,
                                                               float *y, const int kind) {
    const size_t gb = LLM_R16 * (kind == 8 ? sizeof(blk_q8_0) : kind == 5 ? sizeof(blk_q5_0) : sizeof(blk_q4_0));
    __m512 acc[4];
    for (int g = 0; g < 4; g++) acc[g] = _mm512_setzero_ps();
    for (int64_t b = 0; b < n / QK; b++) {
        const llm_x8 *ab = (const llm_x8 *)a + b;
        const int8_t *q = ab->qs;
        __m512 dy = _mm512_set1_ps(ab->d);
        __m512i sy = _mm512_set1_epi32(ab->s);
        for (int g = 0; g < 4; g++) {
            const uint8_t *x = w + g * gs + (size_t)b * gb;
            __m512i u[8];
            r16_values(x, kind, u);
            __m512i p = _mm512_sub_epi32(r16_dot(u, q), sy);
            __m512 dx = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)x));
            acc[g] = _mm512_fmadd_ps(_mm512_mul_ps(dx, dy), _mm512_cvtepi32_ps(p), acc[g]);
        }
    }
    for (int g = 0; g < 4; g++) _mm512_storeu_ps(y + 16 * g, acc[g]);
}
TGT static void r16_four_q8_0(const void *w, size_t gs, const void *a, int64_t n, float *y) { r16_four(w, gs, a, n, y, 8); }
TGT static void r16_four_q4_0(const void *w, size_t gs, const void *a, int64_t n, float *y) { r16_four(w, gs, a, n, y, 4); }
TGT static void r16_four_q5_0(const void *w, size_t gs, const void *a, int64_t n, float *y) { r16_four(w, gs, a, n, y, 5); }

#define R16_T 16
#define R16FN(NAME, T, KIND)                                                                       \
    TGT static void NAME(const void *w, const void *a, int64_t n, float *y, size_t y_stride) {     \
        r16_kernel(w, a, n, y, y_stride, T, KIND);                                                 \
    }
R16FN(r16_one_q8_0, 1, 8)
R16FN(r16_one_q4_0, 1, 4)
R16FN(r16_one_q5_0, 1, 5)
R16FN(r16_tile_q8_0, R16_T, 8)
R16FN(r16_tile_q4_0, R16_T, 4)
R16FN(r16_tile_q5_0, R16_T, 5)
#undef R16FN

/* Q4_K: per 256-value block, 32 parts of nibbles (part 8i+q: bytes
 * 4q..4q+3 of pair i's 32, low nibbles sub-block 2i, high 2i+1), the 6-bit
 * scales and mins decoded in the lanes from the rows' 12 bytes, integer
 * sums per sub-block times the scale, then the format's float step
 * ((d dy) isum - (dmin dy) summs) as the scalar code rounds it. */
TGT static void r16_one_q4_K(const void *w, const void *a, int64_t n, float *y, size_t y_stride) {
    (void)y_stride;
    const __m512i m4 = _mm512_set1_epi8(0x0F), m6 = _mm512_set1_epi32(63), m2 = _mm512_set1_epi32(3);
    __m512 acc = _mm512_setzero_ps();
    for (int64_t b = 0; b < n / QK_K; b++) {
        const uint8_t *x = (const uint8_t *)w + (size_t)b * LLM_R16 * sizeof(blk_q4_K);
        const blk_q8_K *yb = (const blk_q8_K *)a + b;
        sx_prefetch(x + 2 * LLM_R16 * sizeof(blk_q4_K), LLM_R16 * sizeof(blk_q4_K));
        __m512 dy = _mm512_set1_ps(yb->d);
        __m512 dxy = _mm512_mul_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)x)), dy);
        __m512 dmy = _mm512_mul_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(x + 32))), dy);
        __m512i S0 = _mm512_loadu_si512((const void *)(x + 64)), S1 = _mm512_loadu_si512((const void *)(x + 128)),
                S2 = _mm512_loadu_si512((const void *)(x + 192));
        __m512i isum = _mm512_setzero_si512(), summs = _mm512_setzero_si512();
        for (int i = 0; i < 4; i++) {
            __m512i plo = _mm512_setzero_si512(), phi = _mm512_setzero_si512();
            for (int q = 0; q < 8; q++) {
                __m512i v = _mm512_loadu_si512((const void *)(x + 256 + 64 * (8 * i + q)));
                plo = _mm512_dpbusd_epi32(plo, _mm512_and_si512(v, m4), _mm512_set1_epi32(sx_ld32(yb->qs + 64 * i + 4 * q)));
                phi = _mm512_dpbusd_epi32(phi, _mm512_and_si512(_mm512_srli_epi16(v, 4), m4),
                                          _mm512_set1_epi32(sx_ld32(yb->qs + 64 * i + 32 + 4 * q)));
            }
            for (int h = 0; h < 2; h++) {
                int j = 2 * i + h;
                __m512i sc, mn;
                if (j < 4) {
                    sc = _mm512_and_si512(_mm512_srli_epi32(S0, 8 * j), m6);
                    mn = _mm512_and_si512(_mm512_srli_epi32(S1, 8 * j), m6);
                } else {
                    int jj = j - 4;
                    sc = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(S2, 8 * jj), _mm512_set1_epi32(0xF)),
                                         _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(S0, 8 * jj + 6), m2), 4));
                    mn = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(S2, 8 * jj + 4), _mm512_set1_epi32(0xF)),
                                         _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(S1, 8 * jj + 6), m2), 4));
                }
                isum = _mm512_add_epi32(isum, _mm512_mullo_epi32(sc, h ? phi : plo));
                summs = _mm512_add_epi32(summs, _mm512_mullo_epi32(mn, _mm512_set1_epi32(yb->bsums[2 * j] + yb->bsums[2 * j + 1])));
            }
        }
        acc = _mm512_add_ps(acc, _mm512_sub_ps(_mm512_mul_ps(dxy, _mm512_cvtepi32_ps(isum)),
                                               _mm512_mul_ps(dmy, _mm512_cvtepi32_ps(summs))));
    }
    _mm512_storeu_ps(y, acc);
}

/* Q6_K: per 256-value block and half h, positions l (4 at a time) take
 * two ql parts, one qh part and give four value vectors (values l, l+32,
 * l+64, l+96 of the half, unsigned: the weight plus 32, paid per 16-value
 * sub-block as 32 * bsums), each sub-block's sum times its signed scale. */
TGT static void r16_one_q6_K(const void *w, const void *a, int64_t n, float *y, size_t y_stride) {
    (void)y_stride;
    const __m512i m4 = _mm512_set1_epi8(0x0F), m30 = _mm512_set1_epi8(0x30);
    __m512 acc = _mm512_setzero_ps();
    for (int64_t b = 0; b < n / QK_K; b++) {
        const uint8_t *x = (const uint8_t *)w + (size_t)b * LLM_R16 * sizeof(blk_q6_K);
        const uint8_t *ql = x, *qh = x + 2048, *scp = x + 3072;
        sx_prefetch(x + 2 * LLM_R16 * sizeof(blk_q6_K), LLM_R16 * sizeof(blk_q6_K));
        const blk_q8_K *yb = (const blk_q8_K *)a + b;
        __m512 dxy = _mm512_mul_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(x + 3328))), _mm512_set1_ps(yb->d));
        __m512i isum = _mm512_setzero_si512();
        for (int h = 0; h < 2; h++)
            for (int g = 0; g < 2; g++) {
                __m512i P[4] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(),
                                _mm512_setzero_si512()};
                for (int q = 0; q < 4; q++) {
                    int l = 16 * g + 4 * q;
                    __m512i A = _mm512_loadu_si512((const void *)(ql + 64 * ((64 * h + l) / 4)));
                    __m512i B = _mm512_loadu_si512((const void *)(ql + 64 * ((64 * h + 32 + l) / 4)));
                    __m512i H = _mm512_loadu_si512((const void *)(qh + 64 * ((32 * h + l) / 4)));
                    __m512i u[4] = {
                        _mm512_or_si512(_mm512_and_si512(A, m4), _mm512_and_si512(_mm512_slli_epi16(H, 4), m30)),
                        _mm512_or_si512(_mm512_and_si512(B, m4), _mm512_and_si512(_mm512_slli_epi16(H, 2), m30)),
                        _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(A, 4), m4), _mm512_and_si512(H, m30)),
                        _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(B, 4), m4),
                                        _mm512_and_si512(_mm512_srli_epi16(H, 2), m30))};
                    for (int i = 0; i < 4; i++)
                        P[i] = _mm512_dpbusd_epi32(P[i], u[i], _mm512_set1_epi32(sx_ld32(yb->qs + 128 * h + 32 * i + l)));
                }
                for (int i = 0; i < 4; i++) {
                    int j = 8 * h + 2 * i + g; /* the 16-value sub-block */
                    __m512i Sj = _mm512_loadu_si512((const void *)(scp + 64 * (j / 4)));
                    __m512i sc = _mm512_srai_epi32(_mm512_slli_epi32(Sj, 24 - 8 * (j % 4)), 24);
                    __m512i s = _mm512_sub_epi32(P[i], _mm512_set1_epi32(32 * yb->bsums[j]));
                    isum = _mm512_add_epi32(isum, _mm512_mullo_epi32(sc, s));
                }
            }
        acc = _mm512_add_ps(acc, _mm512_mul_ps(dxy, _mm512_cvtepi32_ps(isum)));
    }
    _mm512_storeu_ps(y, acc);
}

/* ---- the set ------------------------------------------------------------- */

static llm_kernels AVX512;
static const llm_kernels *avx512_set;

/* AVX512-BF16 is CPUID.(EAX=7,ECX=1):EAX bit 5. */
static bool has_bf16(void) {
    unsigned a, b, c, d;
    return __get_cpuid_count(7, 1, &a, &b, &c, &d) && (a & (1u << 5));
}

/* llm_gemm4_fn: 4 rows x 64 tokens in 16 accumulators, then 16 at a time.
 * ~93 GMAC/s on one Zen 5 core, near its FMA peak. (The same design in
 * 256-bit registers ran slower than the AVX2 F16 rows kernel, 59 against
 * 91 tokens/s on Qwen2.5-0.5B's pp512, so the AVX2 set has none.) */
TGT static void gemm4(const float *w, size_t w_row, const float *xt, size_t xt_row, int64_t kb, int n, float *yt,
                      size_t yt_row) {
    int t = 0;
    for (; t + 64 <= n; t += 64) {
        __m512 acc[4][4];
        for (int r = 0; r < 4; r++)
            for (int v = 0; v < 4; v++) acc[r][v] = _mm512_loadu_ps(yt + r * yt_row + t + 16 * v);
        for (int64_t k = 0; k < kb; k++) {
            const float *x = xt + (size_t)k * xt_row + t;
            __m512 x0 = _mm512_loadu_ps(x), x1 = _mm512_loadu_ps(x + 16), x2 = _mm512_loadu_ps(x + 32),
                   x3 = _mm512_loadu_ps(x + 48);
            for (int r = 0; r < 4; r++) {
                __m512 b = _mm512_set1_ps(w[r * w_row + k]);
                acc[r][0] = _mm512_fmadd_ps(b, x0, acc[r][0]);
                acc[r][1] = _mm512_fmadd_ps(b, x1, acc[r][1]);
                acc[r][2] = _mm512_fmadd_ps(b, x2, acc[r][2]);
                acc[r][3] = _mm512_fmadd_ps(b, x3, acc[r][3]);
            }
        }
        for (int r = 0; r < 4; r++)
            for (int v = 0; v < 4; v++) _mm512_storeu_ps(yt + r * yt_row + t + 16 * v, acc[r][v]);
    }
    for (; t < n; t += 16) {
        __m512 acc[4];
        for (int r = 0; r < 4; r++) acc[r] = _mm512_loadu_ps(yt + r * yt_row + t);
        for (int64_t k = 0; k < kb; k++) {
            __m512 x0 = _mm512_loadu_ps(xt + (size_t)k * xt_row + t);
            for (int r = 0; r < 4; r++) acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(w[r * w_row + k]), x0, acc[r]);
        }
        for (int r = 0; r < 4; r++) _mm512_storeu_ps(yt + r * yt_row + t, acc[r]);
    }
}

static void avx512_init(void) {
    const llm_kernels *base = llm_kernels_avx2();
    __builtin_cpu_init();
    if (!base || !__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw") ||
        !__builtin_cpu_supports("avx512vl") || !__builtin_cpu_supports("avx512dq") ||
        !__builtin_cpu_supports("avx512vnni"))
        return;
    AVX512 = *base;
    AVX512.name = "avx512";
    AVX512.gemm4 = gemm4;
    const llm_tile t32 = {NULL, P32_R, P32_T, pack_q8_0, P32_BYTES},
                   t32s = {NULL, P32_R, P32_T, pack_q8_1, P32_BYTES + 128},
                   tk = {NULL, PK_R, PK_T, pack_q8_K, PK_BYTES},
                   tf = {NULL, TF_R, TF_T, NULL, 0};
    AVX512.att = att_block;
    AVX512.swiglu = swiglu;
    AVX512.att_align = 16;
    AVX512.r16[LLM_TYPE_Q8_0] = (llm_r16){r16_one_q8_0, r16_tile_q8_0, R16_T, r16_four_q8_0, true};
    AVX512.r16[LLM_TYPE_Q4_0] = (llm_r16){r16_one_q4_0, r16_tile_q4_0, R16_T, r16_four_q4_0, true};
    AVX512.r16[LLM_TYPE_Q5_0] = (llm_r16){r16_one_q5_0, r16_tile_q5_0, R16_T, r16_four_q5_0, true};
    AVX512.r16[LLM_TYPE_Q4_K] = (llm_r16){r16_one_q4_K, NULL, 1, NULL, true};
    AVX512.r16[LLM_TYPE_Q6_K] = (llm_r16){r16_one_q6_K, NULL, 1, NULL, true};
    AVX512.rows[LLM_TYPE_Q8_0] = rows_q8_0;
    AVX512.rows[LLM_TYPE_Q4_0] = rows_q4_0;
    AVX512.rows[LLM_TYPE_Q5_0] = rows_q5_0;
    AVX512.rows[LLM_TYPE_Q4_1] = rows_q4_1;
    AVX512.rows[LLM_TYPE_Q5_1] = rows_q5_1;
#define SET(TYPE, FN, SHAPE) (AVX512.tile[TYPE] = SHAPE, AVX512.tile[TYPE].fn = FN)
    SET(LLM_TYPE_Q8_0, tile_q8_0, t32);
    SET(LLM_TYPE_Q4_0, tile_q4_0, t32);
    SET(LLM_TYPE_Q5_0, tile_q5_0, t32);
    SET(LLM_TYPE_Q4_1, tile_q4_1, t32s);
    SET(LLM_TYPE_Q5_1, tile_q5_1, t32s);
    SET(LLM_TYPE_Q4_K, tile_q4_K, tk);
    SET(LLM_TYPE_Q5_K, tile_q5_K, tk);
    SET(LLM_TYPE_Q6_K, tile_q6_K, tk);
    SET(LLM_TYPE_F32, tile_f32, tf);
    /* No F16 tile: the AVX2 rows kernel converts and multiplies as fast
     * (measured by bench_tiles, 0.9x); what is slow there is memory. */
    if (has_bf16()) SET(LLM_TYPE_BF16, tile_bf16, tf);
#undef SET
    avx512_set = &AVX512;
}

const llm_kernels *llm_kernels_avx512(void) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, avx512_init);
    return avx512_set;
}

#else
const llm_kernels *llm_kernels_avx512(void) { return NULL; }
#endif
