/* quant_avxvnni.c — prompt tiles for CPUs with AVX-VNNI (the 256-bit,
 * VEX-encoded vpdpbusd) but no AVX-512: Intel Alder Lake and later client
 * cores, the E-core Xeons (llm_kernels_avxvnni). The AVX2 set with the
 * 32-value block types' tiles replaced: the tokens in the lanes as in
 * quant_avx512.c, 8 per register, the activations raised by 128 so that
 * they are vpdpbusd's unsigned operand and a weight row's 4 signed bytes are
 * broadcast against them: 8 instructions per block for 8 tokens (the AVX2
 * tile needs 4 per column). The +128 comes back as -128 * sum(w) per row
 * block. Each tile computes what its scalar twin computes (tests compare
 * them on any CPU that has the instructions). */
#include "llm/simd_x86.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <pthread.h>

#define TGT __attribute__((target("avx2,fma,f16c,avxvnni")))
#define QK 32

/* Packed group of 16 tokens, per block (PV_BYTES, +64 for Q8_1):
 *   2 x 8 x 32 bytes: token vector v, 4-byte column c: lane l = bytes
 *                     4c..4c+3 of token 8v+l, plus 128 each
 *   16 floats:        each token's d
 *   16 floats (Q8_1): each token's d * sum(qs) */
#define PV_R 2
#define PV_T 16
#define PV_BYTES (2 * 8 * 32 + 16 * 4)

static const sx_pack32 PV_SHAPE = {8, PV_T, true, false, false}, PV_SHAPE1 = {8, PV_T, true, false, true};
static void packv_q8_0(const void *a, size_t a_row, int64_t n, void *dst) { sx_pack32_rows(PV_SHAPE, a, a_row, n, dst); }
static void packv_q8_1(const void *a, size_t a_row, int64_t n, void *dst) { sx_pack32_rows(PV_SHAPE1, a, a_row, n, dst); }

/* A row block's unsigned values U; the weights are U - OFF. */
#define u_q8_0 sx_q8_0_flipped
TGT static inline __m256i u_q4_0(const blk_q4_0 *x) { return sx_nibbles32(x->qs); }
TGT static inline __m256i u_q5_0(const blk_q5_0 *x) { return SX_Q5_BITS(x); }
TGT static inline __m256i u_q4_1(const blk_q4_1 *x) { return sx_nibbles32(x->qs); }
TGT static inline __m256i u_q5_1(const blk_q5_1 *x) { return SX_Q5_BITS(x); }

#define PV_NOMIN(r, x) (void)0
#define PV_MIN(r, x)                                                                              \
    for (int v = 0; v < 2; v++)                                                                   \
        acc[r][v] = _mm256_fmadd_ps(_mm256_set1_ps(sx_h2f((x)->m)), _mm256_loadu_ps(d + 16 + 8 * v), acc[r][v])

#define TILEV(NAME, BLK, UNPACK, OFF, MIN, PB)                                                    \
    TGT static void NAME(const void *w, size_t w_row, const void *a, size_t a_row, int64_t n, float *y, \
                         size_t y_stride) {                                                       \
        (void)a_row;                                                                              \
        __m256 acc[PV_R][2];                                                                      \
        for (int r = 0; r < PV_R; r++) acc[r][0] = acc[r][1] = _mm256_setzero_ps();               \
        for (int64_t b = 0; b < n / QK; b++) {                                                    \
            const uint8_t *pb = (const uint8_t *)a + (size_t)b * (PB);                            \
            const float *d = (const float *)(pb + 512);                                           \
            _Alignas(32) int8_t wq[PV_R][32];                                                     \
            __m256i p[PV_R][2];                                                                   \
            for (int r = 0; r < PV_R; r++) {                                                      \
                const BLK *x = (const BLK *)((const uint8_t *)w + (size_t)r * w_row) + b;         \
                __m256i u = UNPACK(x);                                                            \
                _mm256_store_si256((__m256i *)wq[r], _mm256_sub_epi8(u, _mm256_set1_epi8((char)(OFF)))); \
                p[r][0] = p[r][1] = _mm256_set1_epi32(-128 * (sx_sum_u8(u) - 32 * (OFF)));          \
            }                                                                                     \
            for (int c = 0; c < 8; c++) {                                                         \
                __m256i a0 = _mm256_loadu_si256((const __m256i *)(pb + 32 * c));                  \
                __m256i a1 = _mm256_loadu_si256((const __m256i *)(pb + 256 + 32 * c));            \
                for (int r = 0; r < PV_R; r++) {                                                  \
                    int32_t w4;                                                                   \
                    memcpy(&w4, wq[r] + 4 * c, 4);                                                \
                    __m256i wb = _mm256_set1_epi32(w4);                                           \
                    p[r][0] = _mm256_dpbusd_avx_epi32(p[r][0], a0, wb);                           \
                    p[r][1] = _mm256_dpbusd_avx_epi32(p[r][1], a1, wb);                           \
                }                                                                                 \
            }                                                                                     \
            for (int r = 0; r < PV_R; r++) {                                                      \
                const BLK *x = (const BLK *)((const uint8_t *)w + (size_t)r * w_row) + b;         \
                __m256 dx = _mm256_set1_ps(sx_h2f(x->d));                                         \
                for (int v = 0; v < 2; v++)                                                       \
                    acc[r][v] = _mm256_fmadd_ps(_mm256_mul_ps(dx, _mm256_loadu_ps(d + 8 * v)),    \
                                                _mm256_cvtepi32_ps(p[r][v]), acc[r][v]);          \
                MIN(r, x);                                                                        \
            }                                                                                     \
        }                                                                                         \
        for (int v = 0; v < 2; v++)                                                               \
            for (int r = 0; r < PV_R; r++) {                                                      \
                float out[8];                                                                     \
                _mm256_storeu_ps(out, acc[r][v]);                                                 \
                for (int l = 0; l < 8; l++) y[(size_t)(8 * v + l) * y_stride + (size_t)r] = out[l]; \
            }                                                                                     \
    }

TILEV(tilev_q8_0, blk_q8_0, u_q8_0, 128, PV_NOMIN, PV_BYTES)
TILEV(tilev_q4_0, blk_q4_0, u_q4_0, 8, PV_NOMIN, PV_BYTES)
TILEV(tilev_q5_0, blk_q5_0, u_q5_0, 16, PV_NOMIN, PV_BYTES)
TILEV(tilev_q4_1, blk_q4_1, u_q4_1, 0, PV_MIN, PV_BYTES + 64)
TILEV(tilev_q5_1, blk_q5_1, u_q5_1, 0, PV_MIN, PV_BYTES + 64)
#undef TILEV
#undef PV_NOMIN
#undef PV_MIN

static llm_kernels AVXVNNI;
static const llm_kernels *avxvnni_set;

/* AVX-VNNI is CPUID.(EAX=7,ECX=1):EAX bit 4. */
static bool has_avxvnni(void) {
    unsigned a, b, c, d;
    return __get_cpuid_count(7, 1, &a, &b, &c, &d) && (a & (1u << 4));
}

static void avxvnni_init(void) {
    const llm_kernels *base = llm_kernels_avx2();
    if (!base || !has_avxvnni()) return;
    AVXVNNI = *base;
    AVXVNNI.name = "avxvnni";
    const llm_tile t = {NULL, PV_R, PV_T, packv_q8_0, PV_BYTES}, ts = {NULL, PV_R, PV_T, packv_q8_1, PV_BYTES + 64};
#define SET(TYPE, FN, SHAPE) (AVXVNNI.tile[TYPE] = SHAPE, AVXVNNI.tile[TYPE].fn = FN)
    SET(LLM_TYPE_Q8_0, tilev_q8_0, t);
    SET(LLM_TYPE_Q4_0, tilev_q4_0, t);
    SET(LLM_TYPE_Q5_0, tilev_q5_0, t);
    SET(LLM_TYPE_Q4_1, tilev_q4_1, ts);
    SET(LLM_TYPE_Q5_1, tilev_q5_1, ts);
#undef SET
    avxvnni_set = &AVXVNNI;
}

const llm_kernels *llm_kernels_avxvnni(void) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, avxvnni_init);
    return avxvnni_set;
}

#else
const llm_kernels *llm_kernels_avxvnni(void) { return NULL; }
#endif
