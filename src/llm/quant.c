/* quant.c — tensor types: the block layouts of the GGUF format, half and
 * bfloat16 conversion, reference (scalar) dequantizers, quantizers and dot
 * products. These plain loops are the reference the AVX2 kernels
 * (quant_avx2.c) are tested against; they follow the format's own
 * definitions bit for bit. */
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "llm/llm.h"

#define QK 32 /* values per block of the 32-wide types */

_Static_assert(sizeof(blk_q4_0) == 18, "Q4_0 block");
_Static_assert(sizeof(blk_q4_1) == 20, "Q4_1 block");
_Static_assert(sizeof(blk_q5_0) == 22, "Q5_0 block");
_Static_assert(sizeof(blk_q5_1) == 24, "Q5_1 block");
_Static_assert(sizeof(blk_q8_0) == 34, "Q8_0 block");
_Static_assert(sizeof(blk_q8_1) == 36, "Q8_1 block");

static const llm_type_info TYPES[LLM_TYPE_COUNT] = {
    [LLM_TYPE_F32] = {"F32", 1, 4, true, LLM_TYPE_F32},
    [LLM_TYPE_F16] = {"F16", 1, 2, true, LLM_TYPE_F16},
    [LLM_TYPE_Q4_0] = {"Q4_0", 32, 18, true, LLM_TYPE_Q8_0},
    [LLM_TYPE_Q4_1] = {"Q4_1", 32, 20, true, LLM_TYPE_Q8_1},
    [LLM_TYPE_Q5_0] = {"Q5_0", 32, 22, true, LLM_TYPE_Q8_0},
    [LLM_TYPE_Q5_1] = {"Q5_1", 32, 24, true, LLM_TYPE_Q8_1},
    [LLM_TYPE_Q8_0] = {"Q8_0", 32, 34, true, LLM_TYPE_Q8_0},
    [LLM_TYPE_Q8_1] = {"Q8_1", 32, 36, false, LLM_TYPE_Q8_1},
    [LLM_TYPE_Q2_K] = {"Q2_K", 256, 84, true, LLM_TYPE_Q8_K},
    [LLM_TYPE_Q3_K] = {"Q3_K", 256, 110, true, LLM_TYPE_Q8_K},
    [LLM_TYPE_Q4_K] = {"Q4_K", 256, 144, true, LLM_TYPE_Q8_K},
    [LLM_TYPE_Q5_K] = {"Q5_K", 256, 176, true, LLM_TYPE_Q8_K},
    [LLM_TYPE_Q6_K] = {"Q6_K", 256, 210, true, LLM_TYPE_Q8_K},
    [LLM_TYPE_Q8_K] = {"Q8_K", 256, 292, false, LLM_TYPE_Q8_K},
    /* Known to the format (so files list cleanly) but not computed here. */
    [16] = {"IQ2_XXS", 256, 66, false, 0},
    [17] = {"IQ2_XS", 256, 74, false, 0},
    [18] = {"IQ3_XXS", 256, 98, false, 0},
    [19] = {"IQ1_S", 256, 50, false, 0},
    [20] = {"IQ4_NL", 32, 18, false, 0},
    [21] = {"IQ3_S", 256, 110, false, 0},
    [22] = {"IQ2_S", 256, 82, false, 0},
    [23] = {"IQ4_XS", 256, 136, false, 0},
    [24] = {"I8", 1, 1, false, 0},
    [25] = {"I16", 1, 2, false, 0},
    [26] = {"I32", 1, 4, false, 0},
    [27] = {"I64", 1, 8, false, 0},
    [28] = {"F64", 1, 8, false, 0},
    [29] = {"IQ1_M", 256, 56, false, 0},
    [LLM_TYPE_BF16] = {"BF16", 1, 2, true, LLM_TYPE_BF16},
    [34] = {"TQ1_0", 256, 54, false, 0},
    [35] = {"TQ2_0", 256, 66, false, 0},
};

const llm_type_info *llm_type_get(uint32_t t) {
    return t < LLM_TYPE_COUNT && TYPES[t].name ? &TYPES[t] : NULL;
}

size_t llm_row_bytes(llm_type t, int64_t n) {
    const llm_type_info *ti = llm_type_get(t);
    if (!ti || n % ti->block) return 0;
    return (size_t)(n / ti->block * ti->bytes);
}

int llm_type_from_name(const char *name) {
    for (int t = 0; t < LLM_TYPE_COUNT; t++)
        if (TYPES[t].name && strcasecmp(TYPES[t].name, name) == 0) return t;
    return -1;
}

#define H2F f32_from_f16
#define F2H f16_from_f32

/* ---- dequantize -------------------------------------------------------- */

static void deq_q4_0(const blk_q4_0 *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        float d = H2F(x[i].d);
        for (int j = 0; j < QK / 2; j++) {
            y[i * QK + j] = ((x[i].qs[j] & 0x0F) - 8) * d;
            y[i * QK + j + QK / 2] = ((x[i].qs[j] >> 4) - 8) * d;
        }
    }
}

static void deq_q4_1(const blk_q4_1 *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        float d = H2F(x[i].d), m = H2F(x[i].m);
        for (int j = 0; j < QK / 2; j++) {
            y[i * QK + j] = (x[i].qs[j] & 0x0F) * d + m;
            y[i * QK + j + QK / 2] = (x[i].qs[j] >> 4) * d + m;
        }
    }
}

/* The fifth bits: bit j of qh for value j, bit j+16 for value j+16. */
static void q5_values(const uint8_t qh4[4], const uint8_t qs[16], int q[32]) {
    uint32_t qh;
    memcpy(&qh, qh4, 4);
    for (int j = 0; j < QK / 2; j++) {
        q[j] = (qs[j] & 0x0F) | (int)(((qh >> j) << 4) & 0x10);
        q[j + QK / 2] = (qs[j] >> 4) | (int)((qh >> (j + 12)) & 0x10);
    }
}

static void deq_q5_0(const blk_q5_0 *x, float *y, int64_t nb) {
    int q[QK];
    for (int64_t i = 0; i < nb; i++) {
        float d = H2F(x[i].d);
        q5_values(x[i].qh, x[i].qs, q);
        for (int j = 0; j < QK; j++) y[i * QK + j] = (q[j] - 16) * d;
    }
}

static void deq_q5_1(const blk_q5_1 *x, float *y, int64_t nb) {
    int q[QK];
    for (int64_t i = 0; i < nb; i++) {
        float d = H2F(x[i].d), m = H2F(x[i].m);
        q5_values(x[i].qh, x[i].qs, q);
        for (int j = 0; j < QK; j++) y[i * QK + j] = q[j] * d + m;
    }
}

static void deq_q8_0(const blk_q8_0 *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        float d = H2F(x[i].d);
        for (int j = 0; j < QK; j++) y[i * QK + j] = x[i].qs[j] * d;
    }
}

void llm_dequant_row(llm_type t, const void *src, float *dst, int64_t n) {
    int64_t nb = n / QK;
    switch (t) {
    case LLM_TYPE_F32: memcpy(dst, src, (size_t)n * 4); break;
    case LLM_TYPE_F16: {
        const uint16_t *h = src;
        for (int64_t i = 0; i < n; i++) dst[i] = H2F(h[i]);
        break;
    }
    case LLM_TYPE_BF16: {
        const uint16_t *h = src;
        for (int64_t i = 0; i < n; i++) dst[i] = f32_from_bf16(h[i]);
        break;
    }
    case LLM_TYPE_Q4_0: deq_q4_0(src, dst, nb); break;
    case LLM_TYPE_Q4_1: deq_q4_1(src, dst, nb); break;
    case LLM_TYPE_Q5_0: deq_q5_0(src, dst, nb); break;
    case LLM_TYPE_Q5_1: deq_q5_1(src, dst, nb); break;
    case LLM_TYPE_Q8_0: deq_q8_0(src, dst, nb); break;
    case LLM_TYPE_Q8_1: {
        const blk_q8_1 *x = src;
        for (int64_t i = 0; i < nb; i++)
            for (int j = 0; j < QK; j++) dst[i * QK + j] = x[i].qs[j] * H2F(x[i].d);
        break;
    }
    case LLM_TYPE_Q2_K: case LLM_TYPE_Q3_K: case LLM_TYPE_Q4_K: case LLM_TYPE_Q5_K: case LLM_TYPE_Q6_K:
    case LLM_TYPE_Q8_K: qk_dequant(t, src, dst, n); break;
    default: memset(dst, 0, (size_t)n * 4); break; /* callers check support first */
    }
}

void llm_dequant_row_fast(llm_type t, const void *src, float *dst, int64_t n) {
    static _Atomic(const llm_kernels *) best; /* every thread finds the same set */
    const llm_kernels *k = atomic_load_explicit(&best, memory_order_relaxed);
    if (!k) atomic_store_explicit(&best, k = llm_kernels_best(), memory_order_relaxed);
    if ((unsigned)t < LLM_TYPE_COUNT && k->deq[t]) k->deq[t](src, dst, n);
    else llm_dequant_row(t, src, dst, n);
}

/* ---- quantize (the format's reference quantizers) ---------------------- */

static void q_q4_0(const float *x, blk_q4_0 *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += QK) {
        float amax = 0, max = 0; /* the value of largest magnitude, with its sign */
        for (int j = 0; j < QK; j++)
            if (fabsf(x[j]) > amax) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        float d = max / -8, id = d ? 1.0f / d : 0.0f;
        y[i].d = F2H(d);
        for (int j = 0; j < QK / 2; j++) {
            int a = (int)(int8_t)(x[j] * id + 8.5f), b = (int)(int8_t)(x[j + QK / 2] * id + 8.5f);
            if (a > 15) a = 15;
            if (b > 15) b = 15;
            y[i].qs[j] = (uint8_t)(a | (b << 4));
        }
    }
}

static void q_q4_1(const float *x, blk_q4_1 *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += QK) {
        float min = INFINITY, max = -INFINITY;
        for (int j = 0; j < QK; j++) {
            if (x[j] < min) min = x[j];
            if (x[j] > max) max = x[j];
        }
        float d = (max - min) / 15, id = d ? 1.0f / d : 0.0f;
        y[i].d = F2H(d);
        y[i].m = F2H(min);
        for (int j = 0; j < QK / 2; j++) {
            int a = (int)(int8_t)((x[j] - min) * id + 0.5f);
            int b = (int)(int8_t)((x[j + QK / 2] - min) * id + 0.5f);
            if (a > 15) a = 15;
            if (b > 15) b = 15;
            y[i].qs[j] = (uint8_t)(a | (b << 4));
        }
    }
}

static void q_q5_0(const float *x, blk_q5_0 *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += QK) {
        float amax = 0, max = 0;
        for (int j = 0; j < QK; j++)
            if (fabsf(x[j]) > amax) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        float d = max / -16, id = d ? 1.0f / d : 0.0f;
        y[i].d = F2H(d);
        uint32_t qh = 0;
        for (int j = 0; j < QK / 2; j++) {
            int a = (int)(int8_t)(x[j] * id + 16.5f), b = (int)(int8_t)(x[j + QK / 2] * id + 16.5f);
            if (a > 31) a = 31;
            if (b > 31) b = 31;
            y[i].qs[j] = (uint8_t)((a & 0x0F) | ((b & 0x0F) << 4));
            qh |= ((uint32_t)(a & 0x10) >> 4) << j;
            qh |= ((uint32_t)(b & 0x10) >> 4) << (j + QK / 2);
        }
        memcpy(y[i].qh, &qh, 4);
    }
}

static void q_q5_1(const float *x, blk_q5_1 *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += QK) {
        float min = INFINITY, max = -INFINITY;
        for (int j = 0; j < QK; j++) {
            if (x[j] < min) min = x[j];
            if (x[j] > max) max = x[j];
        }
        float d = (max - min) / 31, id = d ? 1.0f / d : 0.0f;
        y[i].d = F2H(d);
        y[i].m = F2H(min);
        uint32_t qh = 0;
        for (int j = 0; j < QK / 2; j++) {
            int a = (int)(uint8_t)((x[j] - min) * id + 0.5f);
            int b = (int)(uint8_t)((x[j + QK / 2] - min) * id + 0.5f);
            y[i].qs[j] = (uint8_t)((a & 0x0F) | ((b & 0x0F) << 4));
            qh |= ((uint32_t)(a & 0x10) >> 4) << j;
            qh |= ((uint32_t)(b & 0x10) >> 4) << (j + QK / 2);
        }
        memcpy(y[i].qh, &qh, 4);
    }
}

/* Weights: the format's reference quantizer (multiply by 1/d, round half
 * away from zero). */
static void q_q8_0_ref(const float *x, blk_q8_0 *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += QK) {
        float amax = 0;
        for (int j = 0; j < QK; j++) amax = fmaxf(amax, fabsf(x[j]));
        float d = amax / 127, id = d ? 1.0f / d : 0.0f;
        y[i].d = F2H(d);
        for (int j = 0; j < QK; j++) y[i].qs[j] = (int8_t)roundf(x[j] * id);
    }
}

/* Activations: the reference engine's CPU path scales by 127/amax and
 * rounds to nearest even (its SIMD quantizer); we do the same so the
 * integer dot products see the very same values. */
static void q_q8_0(const float *x, blk_q8_0 *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += QK) {
        float amax = 0;
        for (int j = 0; j < QK; j++) amax = fmaxf(amax, fabsf(x[j]));
        float d = amax / 127.0f, id = amax != 0.0f ? 127.0f / amax : 0.0f;
        y[i].d = F2H(d);
        for (int j = 0; j < QK; j++) y[i].qs[j] = (int8_t)lrintf(x[j] * id);
    }
}

static void q_q8_1(const float *x, blk_q8_1 *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += QK) {
        float amax = 0;
        for (int j = 0; j < QK; j++) amax = fmaxf(amax, fabsf(x[j]));
        float d = amax / 127.0f, id = amax != 0.0f ? 127.0f / amax : 0.0f;
        y[i].d = F2H(d);
        int sum = 0;
        for (int j = 0; j < QK; j++) {
            y[i].qs[j] = (int8_t)lrintf(x[j] * id);
            sum += y[i].qs[j];
        }
        y[i].s = F2H(d * (float)sum);
    }
}

void llm_quant_row(llm_type t, const float *src, void *dst, int64_t n) {
    int64_t nb = n / QK;
    switch (t) {
    case LLM_TYPE_F32: memcpy(dst, src, (size_t)n * 4); break;
    case LLM_TYPE_F16: {
        uint16_t *h = dst;
        for (int64_t i = 0; i < n; i++) h[i] = F2H(src[i]);
        break;
    }
    case LLM_TYPE_BF16: {
        uint16_t *h = dst;
        for (int64_t i = 0; i < n; i++) h[i] = bf16_from_f32(src[i]);
        break;
    }
    case LLM_TYPE_Q4_0: q_q4_0(src, dst, nb); break;
    case LLM_TYPE_Q4_1: q_q4_1(src, dst, nb); break;
    case LLM_TYPE_Q5_0: q_q5_0(src, dst, nb); break;
    case LLM_TYPE_Q5_1: q_q5_1(src, dst, nb); break;
    case LLM_TYPE_Q8_0: q_q8_0_ref(src, dst, nb); break;
    case LLM_TYPE_Q8_1: q_q8_1(src, dst, nb); break;
    case LLM_TYPE_Q2_K: case LLM_TYPE_Q3_K: case LLM_TYPE_Q4_K: case LLM_TYPE_Q5_K: case LLM_TYPE_Q6_K:
    case LLM_TYPE_Q8_K: qk_quant(t, src, dst, n); break;
    default: break;
    }
}

/* ---- reference dot products -------------------------------------------- */

static float dot_f32(const void *w, const void *a, int64_t n) {
    const float *x = w, *y = a;
    double s = 0; /* the reference sums F32 rows in double on its plain path */
    for (int64_t i = 0; i < n; i++) s += (double)(x[i] * y[i]);
    return (float)s;
}

static float dot_f16(const void *w, const void *a, int64_t n) {
    const uint16_t *x = w, *y = a;
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)(H2F(x[i]) * H2F(y[i]));
    return (float)s;
}

static float dot_bf16(const void *w, const void *a, int64_t n) {
    const uint16_t *x = w, *y = a;
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)(f32_from_bf16(x[i]) * f32_from_bf16(y[i]));
    return (float)s;
}

static float dot_q4_0(const void *w, const void *a, int64_t n) {
    const blk_q4_0 *x = w;
    const blk_q8_0 *y = a;
    float s = 0;
    for (int64_t i = 0; i < n / QK; i++) {
        int sum = 0;
        for (int j = 0; j < QK / 2; j++)
            sum += ((x[i].qs[j] & 0x0F) - 8) * y[i].qs[j] + ((x[i].qs[j] >> 4) - 8) * y[i].qs[j + QK / 2];
        s += (float)sum * (H2F(x[i].d) * H2F(y[i].d));
    }
    return s;
}

static float dot_q4_1(const void *w, const void *a, int64_t n) {
    const blk_q4_1 *x = w;
    const blk_q8_1 *y = a;
    float s = 0;
    for (int64_t i = 0; i < n / QK; i++) {
        int sum = 0;
        for (int j = 0; j < QK / 2; j++)
            sum += (x[i].qs[j] & 0x0F) * y[i].qs[j] + (x[i].qs[j] >> 4) * y[i].qs[j + QK / 2];
        s += (float)sum * (H2F(x[i].d) * H2F(y[i].d)) + H2F(x[i].m) * H2F(y[i].s);
    }
    return s;
}

static float dot_q5_0(const void *w, const void *a, int64_t n) {
    const blk_q5_0 *x = w;
    const blk_q8_0 *y = a;
    float s = 0;
    int q[QK];
    for (int64_t i = 0; i < n / QK; i++) {
        q5_values(x[i].qh, x[i].qs, q);
        int sum = 0;
        for (int j = 0; j < QK; j++) sum += (q[j] - 16) * y[i].qs[j];
        s += (float)sum * (H2F(x[i].d) * H2F(y[i].d));
    }
    return s;
}

static float dot_q5_1(const void *w, const void *a, int64_t n) {
    const blk_q5_1 *x = w;
    const blk_q8_1 *y = a;
    float s = 0;
    int q[QK];
    for (int64_t i = 0; i < n / QK; i++) {
        q5_values(x[i].qh, x[i].qs, q);
        int sum = 0;
        for (int j = 0; j < QK; j++) sum += q[j] * y[i].qs[j];
        s += (float)sum * (H2F(x[i].d) * H2F(y[i].d)) + H2F(x[i].m) * H2F(y[i].s);
    }
    return s;
}

static float dot_q8_0(const void *w, const void *a, int64_t n) {
    const blk_q8_0 *x = w, *y = a;
    float s = 0;
    for (int64_t i = 0; i < n / QK; i++) {
        int sum = 0;
        for (int j = 0; j < QK; j++) sum += x[i].qs[j] * y[i].qs[j];
        s += (float)sum * (H2F(x[i].d) * H2F(y[i].d));
    }
    return s;
}

#define QFN(name, blk) \
    static void name##_fn(const float *x, void *y, int64_t n) { name(x, y, n / QK); }
QFN(q_q8_0, blk_q8_0)
QFN(q_q8_1, blk_q8_1)
#undef QFN
static void q_f32_fn(const float *x, void *y, int64_t n) { memcpy(y, x, (size_t)n * 4); }
static void q_f16_fn(const float *x, void *y, int64_t n) { llm_quant_row(LLM_TYPE_F16, x, y, n); }
static void q_bf16_fn(const float *x, void *y, int64_t n) { llm_quant_row(LLM_TYPE_BF16, x, y, n); }

void llm_att_block_ref(int R, int S, const float *Q, const float *KT, const float *V, float *sc, float *O, float *mx,
                       float *sum, const int *allow, float scale) {
    for (int r = 0; r < R; r++) {
        if (allow[r] <= 0) continue;
        float *s = sc + (size_t)r * LLM_ATT_KB;
        const float *q = Q + (size_t)r * (size_t)S;
        for (int j = 0; j < LLM_ATT_KB; j++) s[j] = 0;
        for (int d = 0; d < S; d++) {
            float qd = q[d];
            const float *k = KT + (size_t)d * LLM_ATT_KB;
            for (int j = 0; j < LLM_ATT_KB; j++) s[j] += qd * k[j];
        }
        float m = mx[r];
        for (int j = 0; j < allow[r]; j++) {
            s[j] *= scale;
            if (s[j] > m) m = s[j];
        }
        float corr = expf(mx[r] - m); /* 0 on a row's first block (-inf) */
        float l = sum[r] * corr;
        float *o = O + (size_t)r * (size_t)S;
        for (int d = 0; d < S; d++) o[d] *= corr;
        for (int j = 0; j < allow[r]; j++) {
            float p = expf(s[j] - m);
            l += p;
            const float *v = V + (size_t)j * (size_t)S;
            for (int d = 0; d < S; d++) o[d] += p * v[d];
        }
        mx[r] = m;
        sum[r] = l;
    }
}

void llm_swiglu_ref(float *gate, const float *up, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float g = gate[i];
        gate[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

static const llm_kernels SCALAR = {
    .name = "scalar",
    .dot = {[LLM_TYPE_F32] = dot_f32, [LLM_TYPE_F16] = dot_f16, [LLM_TYPE_BF16] = dot_bf16,
            [LLM_TYPE_Q4_0] = dot_q4_0, [LLM_TYPE_Q4_1] = dot_q4_1, [LLM_TYPE_Q5_0] = dot_q5_0,
            [LLM_TYPE_Q5_1] = dot_q5_1, [LLM_TYPE_Q8_0] = dot_q8_0, [LLM_TYPE_Q2_K] = qk_dot_q2_K,
            [LLM_TYPE_Q3_K] = qk_dot_q3_K, [LLM_TYPE_Q4_K] = qk_dot_q4_K, [LLM_TYPE_Q5_K] = qk_dot_q5_K,
            [LLM_TYPE_Q6_K] = qk_dot_q6_K},
    .quant = {[LLM_TYPE_F32] = q_f32_fn, [LLM_TYPE_F16] = q_f16_fn, [LLM_TYPE_BF16] = q_bf16_fn,
              [LLM_TYPE_Q8_0] = q_q8_0_fn, [LLM_TYPE_Q8_1] = q_q8_1_fn, [LLM_TYPE_Q8_K] = qk_quant_q8_K},
    .swiglu = llm_swiglu_ref,
    .r16 = {[LLM_TYPE_Q8_0] = {llm_r16_ref1_q8_0, NULL, 1, NULL, false},
            [LLM_TYPE_Q4_0] = {llm_r16_ref1_q4_0, NULL, 1, NULL, false},
            [LLM_TYPE_Q5_0] = {llm_r16_ref1_q5_0, NULL, 1, NULL, false},
            [LLM_TYPE_Q4_K] = {llm_r16_ref1_q4_K, NULL, 1, NULL, false},
            [LLM_TYPE_Q6_K] = {llm_r16_ref1_q6_K, NULL, 1, NULL, false}},
};

const llm_kernels *llm_kernels_scalar(void) { return &SCALAR; }

const llm_kernels *llm_kernels_named(const char *name) {
    if (!strcmp(name, "scalar")) return &SCALAR;
    if (!strcmp(name, "avx2")) return llm_kernels_avx2();
    if (!strcmp(name, "avxvnni")) return llm_kernels_avxvnni();
    if (!strcmp(name, "avx512")) return llm_kernels_avx512();
    return NULL;
}

const llm_kernels *llm_kernels_best(void) {
    const char *force = getenv("TAILOR_LLM_KERNELS");
    if (force && *force) {
        const llm_kernels *k = llm_kernels_named(force);
        if (k) return k;
        static bool warned;
        if (!warned) log_warn("TAILOR_LLM_KERNELS=%s: unknown or not supported by this CPU; using the best set", force);
        warned = true;
    }
    const llm_kernels *k = llm_kernels_avx512();
    if (!k) k = llm_kernels_avxvnni();
    if (!k) k = llm_kernels_avx2();
    return k ? k : &SCALAR;
}

void llm_gemm4_ref(const float *w, size_t w_row, const float *xt, size_t xt_row, int64_t kb, int n, float *yt,
                   size_t yt_row) {
    for (int r = 0; r < LLM_GEMM_ROWS; r++)
        for (int t = 0; t < n; t++) {
            float acc = yt[r * yt_row + t];
            for (int64_t k = 0; k < kb; k++) acc = fmaf(w[r * w_row + k], xt[(size_t)k * xt_row + t], acc);
            yt[r * yt_row + t] = acc;
        }
}
