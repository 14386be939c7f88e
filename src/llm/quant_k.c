/* quant_k.c — the K-quant types (Q2_K .. Q6_K, and Q8_K for activations):
 * 256-value super-blocks with 6- or 8-bit sub-block scales. Reference
 * dequantizers, the format's reference quantizers (the same searches for
 * scales and minima, so a quantized file is byte-identical to the reference
 * tool's), and scalar dot products with Q8_K activations. quant_avx2.c
 * holds the fast kernels that are tested against these. */
#include <math.h>
#include <string.h>

#include "llm/llm.h"

_Static_assert(sizeof(blk_q2_K) == 84, "Q2_K block");
_Static_assert(sizeof(blk_q3_K) == 110, "Q3_K block");
_Static_assert(sizeof(blk_q4_K) == 144, "Q4_K block");
_Static_assert(sizeof(blk_q5_K) == 176, "Q5_K block");
_Static_assert(sizeof(blk_q6_K) == 210, "Q6_K block");
_Static_assert(sizeof(blk_q8_K) == 292, "Q8_K block");

#define H2F f32_from_f16
#define F2H f16_from_f32
#define EPS 1e-15f

/* Round to nearest, ties to even (the reference's float trick). */
static inline int nearest_int(float f) {
    float v = f + 12582912.f;
    int i;
    memcpy(&i, &v, sizeof i);
    return (i & 0x007fffff) - 0x00400000;
}

static inline int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* 6-bit scale and min j of a Q4_K/Q5_K block. */
static inline void scale_min_k4(int j, const uint8_t *q, uint8_t *d, uint8_t *m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

/* The 16 signed 6-bit scales of a Q3_K block. */
void qk_q3_scales(const uint8_t *packed, int8_t out[16]) {
    uint32_t aux[4];
    memcpy(aux, packed, 12);
    const uint32_t k1 = 0x03030303, k2 = 0x0f0f0f0f;
    uint32_t tmp = aux[2];
    aux[2] = ((aux[0] >> 4) & k2) | (((tmp >> 4) & k1) << 4);
    aux[3] = ((aux[1] >> 4) & k2) | (((tmp >> 6) & k1) << 4);
    aux[0] = (aux[0] & k2) | (((tmp >> 0) & k1) << 4);
    aux[1] = (aux[1] & k2) | (((tmp >> 2) & k1) << 4);
    memcpy(out, aux, 16);
    for (int i = 0; i < 16; i++) out[i] = (int8_t)(out[i] - 32);
}

/* ---- dequantize -------------------------------------------------------- */

/* One Q4_K or Q5_K block (qh: the fifth bits, NULL for Q4_K). */
static void deq_q45_K(uint16_t d16, uint16_t dmin16, const uint8_t *scales, const uint8_t *qh, const uint8_t *qs,
                      float *y) {
    float d = H2F(d16), min = H2F(dmin16);
    for (int j = 0; j < QK_K / 64; j++, qs += 32) {
        uint8_t s1, m1, s2, m2;
        scale_min_k4(2 * j, scales, &s1, &m1);
        scale_min_k4(2 * j + 1, scales, &s2, &m2);
        float d1 = d * s1, mm1 = min * m1, d2 = d * s2, mm2 = min * m2;
        uint8_t u1 = (uint8_t)(1u << (2 * j)), u2 = (uint8_t)(2u << (2 * j));
        for (int l = 0; l < 32; l++) *y++ = d1 * ((qs[l] & 0xF) + (qh && (qh[l] & u1) ? 16 : 0)) - mm1;
        for (int l = 0; l < 32; l++) *y++ = d2 * ((qs[l] >> 4) + (qh && (qh[l] & u2) ? 16 : 0)) - mm2;
    }
}

void qk_dequant(llm_type t, const void *src, float *y, int64_t n) {
    int64_t nb = n / QK_K;
    switch (t) {
    case LLM_TYPE_Q2_K: {
        const blk_q2_K *x = src;
        for (int64_t i = 0; i < nb; i++) {
            float d = H2F(x[i].d), min = H2F(x[i].dmin);
            const uint8_t *q = x[i].qs;
            int is = 0;
            for (int n0 = 0; n0 < QK_K; n0 += 128) {
                for (int shift = 0; shift < 8; shift += 2) {
                    for (int half = 0; half < 2; half++) {
                        uint8_t sc = x[i].scales[is++];
                        float dl = d * (sc & 0xF), ml = min * (sc >> 4);
                        for (int l = 0; l < 16; l++) *y++ = dl * ((q[l + 16 * half] >> shift) & 3) - ml;
                    }
                }
                q += 32;
            }
        }
        break;
    }
    case LLM_TYPE_Q3_K: {
        const blk_q3_K *x = src;
        for (int64_t i = 0; i < nb; i++) {
            float d = H2F(x[i].d);
            int8_t sc[16];
            qk_q3_scales(x[i].scales, sc);
            const uint8_t *q = x[i].qs, *hm = x[i].hmask;
            uint8_t m = 1;
            int is = 0;
            for (int n0 = 0; n0 < QK_K; n0 += 128) {
                for (int shift = 0; shift < 8; shift += 2) {
                    for (int half = 0; half < 2; half++) {
                        float dl = d * sc[is++];
                        for (int l = 0; l < 16; l++) {
                            int k = l + 16 * half;
                            *y++ = dl * (((q[k] >> shift) & 3) - ((hm[k] & m) ? 0 : 4));
                        }
                    }
                    m <<= 1;
                }
                q += 32;
            }
        }
        break;
    }
    case LLM_TYPE_Q4_K: {
        const blk_q4_K *x = src;
        for (int64_t i = 0; i < nb; i++, y += QK_K) deq_q45_K(x[i].d, x[i].dmin, x[i].scales, NULL, x[i].qs, y);
        break;
    }
    case LLM_TYPE_Q5_K: {
        const blk_q5_K *x = src;
        for (int64_t i = 0; i < nb; i++, y += QK_K) deq_q45_K(x[i].d, x[i].dmin, x[i].scales, x[i].qh, x[i].qs, y);
        break;
    }
    case LLM_TYPE_Q6_K: {
        const blk_q6_K *x = src;
        for (int64_t i = 0; i < nb; i++) {
            float d = H2F(x[i].d);
            const uint8_t *ql = x[i].ql, *qh = x[i].qh;
            const int8_t *sc = x[i].scales;
            for (int n0 = 0; n0 < QK_K; n0 += 128) {
                for (int l = 0; l < 32; l++) {
                    int is = l / 16;
                    int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                    int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                    int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                    int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                    y[l] = d * sc[is] * q1;
                    y[l + 32] = d * sc[is + 2] * q2;
                    y[l + 64] = d * sc[is + 4] * q3;
                    y[l + 96] = d * sc[is + 6] * q4;
                }
                y += 128;
                ql += 64;
                qh += 32;
                sc += 8;
            }
        }
        break;
    }
    case LLM_TYPE_Q8_K: {
        const blk_q8_K *x = src;
        for (int64_t i = 0; i < nb; i++)
            for (int j = 0; j < QK_K; j++) *y++ = x[i].d * x[i].qs[j];
        break;
    }
    default: break;
    }
}

/* ---- the reference quantizers' searches -------------------------------- */

/* The value of largest magnitude (the first of equals). */
static float signed_absmax(const float *x, int n) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; i++) {
        float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    return max;
}

/* Symmetric: the scale for values in [-nmax, nmax-1] that best fits x
 * (weighted by x^2 for rmse_type 1), trying 19 scales around the max. */
static float make_qx_quants(int n, int nmax, const float *x, int8_t *L, int rmse_type) {
    float max = signed_absmax(x, n);
    if (fabsf(max) < EPS) {
        memset(L, 0, (size_t)n);
        return 0.f;
    }
    float iscale = -nmax / max;
    if (rmse_type == 0) {
        for (int i = 0; i < n; i++) L[i] = (int8_t)(nmax + clampi(nearest_int(iscale * x[i]), -nmax, nmax - 1));
        return 1 / iscale;
    }
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = clampi(nearest_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)(l + nmax);
        float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        iscale = -(nmax + 0.1f * is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; i++) {
            int l = clampi(nearest_int(iscale * x[i]), -nmax, nmax - 1);
            float w = x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++) L[i] = (int8_t)(nmax + clampi(nearest_int(iscale * x[i]), -nmax, nmax - 1));
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/* Symmetric 3-bit with a few rounds of coordinate descent. */
static float make_q3_quants(int n, int nmax, const float *x, int8_t *L) {
    float max = signed_absmax(x, n);
    if (fabsf(max) < EPS) {
        memset(L, 0, (size_t)n);
        return 0.f;
    }
    float iscale = -nmax / max, sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = clampi(nearest_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)l;
        float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    for (int itry = 0; itry < 5; itry++) {
        int changed = 0;
        for (int i = 0; i < n; i++) {
            float w = x[i] * x[i], slx = sumlx - w * x[i] * L[i];
            if (slx > 0) {
                float sl2 = suml2 - w * L[i] * L[i];
                int nl = clampi(nearest_int(x[i] * sl2 / slx), -nmax, nmax - 1);
                if (nl != L[i]) {
                    slx += w * x[i] * nl;
                    sl2 += w * nl * nl;
                    if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = (int8_t)nl;
                        sumlx = slx;
                        suml2 = sl2;
                        changed++;
                    }
                }
            }
        }
        if (!changed) break;
    }
    for (int i = 0; i < n; i++) L[i] = (int8_t)(L[i] + nmax);
    return sumlx / suml2;
}

/* Asymmetric (scale and min) for values in [0, nmax]: a grid of nstep+1
 * candidate scales, each refit by weighted least squares. */
static float make_qkx2_quants(int n, int nmax, const float *x, const float *w, uint8_t *L, float *the_min,
                              uint8_t *Laux, float rmin, float rdelta, int nstep, bool use_mad) {
    float min = x[0], max = x[0], sum_w = w[0], sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        memset(L, 0, (size_t)n);
        *the_min = -min;
        return 0.f;
    }
    float iscale = nmax / (max - min), scale = 1 / iscale, best = 0;
    for (int i = 0; i < n; i++) {
        int l = clampi(nearest_int(iscale * (x[i] - min)), 0, nmax);
        L[i] = (uint8_t)l;
        float diff = scale * l + min - x[i];
        best += w[i] * (use_mad ? fabsf(diff) : diff * diff);
    }
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            int l = clampi(nearest_int(iscale * (x[i] - min)), 0, nmax);
            Laux[i] = (uint8_t)l;
            sum_l += w[i] * l;
            sum_l2 += w[i] * l * l;
            sum_xl += w[i] * l * x[i];
        }
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float err = 0;
            for (int i = 0; i < n; i++) {
                float diff = this_scale * Laux[i] + this_min - x[i];
                err += w[i] * (use_mad ? fabsf(diff) : diff * diff);
            }
            if (err < best) {
                memcpy(L, Laux, (size_t)n);
                best = err;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

/* ---- quantizers -------------------------------------------------------- */

static void q_q2_K(const float *x, blk_q2_K *y, int64_t nb) {
    uint8_t L[QK_K], Laux[16];
    float w[16], mins[16], scales[16];
    for (int64_t i = 0; i < nb; i++, x += QK_K) {
        float max_scale = 0, max_min = 0;
        for (int j = 0; j < 16; j++) {
            for (int l = 0; l < 16; l++) w[l] = fabsf(x[16 * j + l]);
            scales[j] = make_qkx2_quants(16, 3, x + 16 * j, w, L + 16 * j, &mins[j], Laux, -0.5f, 0.1f, 15, true);
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        if (max_scale > 0) {
            float iscale = 15 / max_scale;
            for (int j = 0; j < 16; j++) y[i].scales[j] = (uint8_t)nearest_int(iscale * scales[j]);
            y[i].d = F2H(max_scale / 15);
        } else {
            memset(y[i].scales, 0, 16);
            y[i].d = F2H(0.f);
        }
        if (max_min > 0) {
            float iscale = 15 / max_min;
            for (int j = 0; j < 16; j++) y[i].scales[j] |= (uint8_t)(nearest_int(iscale * mins[j]) << 4);
            y[i].dmin = F2H(max_min / 15);
        } else {
            y[i].dmin = F2H(0.f);
        }
        for (int j = 0; j < 16; j++) {
            float d = H2F(y[i].d) * (y[i].scales[j] & 0xF);
            if (!d) continue;
            float dm = H2F(y[i].dmin) * (y[i].scales[j] >> 4);
            for (int l = 0; l < 16; l++) L[16 * j + l] = (uint8_t)clampi(nearest_int((x[16 * j + l] + dm) / d), 0, 3);
        }
        for (int j = 0; j < QK_K; j += 128)
            for (int l = 0; l < 32; l++)
                y[i].qs[j / 4 + l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
    }
}

static void q_q3_K(const float *x, blk_q3_K *y, int64_t nb) {
    int8_t L[QK_K];
    float scales[16];
    for (int64_t i = 0; i < nb; i++, x += QK_K) {
        float max_scale = 0, amax = 0;
        for (int j = 0; j < 16; j++) {
            scales[j] = make_q3_quants(16, 4, x + 16 * j, L + 16 * j);
            float a = fabsf(scales[j]);
            if (a > amax) {
                amax = a;
                max_scale = scales[j];
            }
        }
        memset(y[i].scales, 0, 12);
        if (max_scale) {
            float iscale = -32.f / max_scale;
            for (int j = 0; j < 16; j++) {
                int l = clampi(nearest_int(iscale * scales[j]), -32, 31) + 32;
                if (j < 8) y[i].scales[j] = (uint8_t)(l & 0xF);
                else y[i].scales[j - 8] |= (uint8_t)((l & 0xF) << 4);
                l >>= 4;
                y[i].scales[j % 4 + 8] |= (uint8_t)(l << (2 * (j / 4)));
            }
            y[i].d = F2H(1 / iscale);
        } else {
            y[i].d = F2H(0.f);
        }
        int8_t sc[16];
        qk_q3_scales(y[i].scales, sc);
        for (int j = 0; j < 16; j++) {
            float d = H2F(y[i].d) * sc[j];
            if (!d) continue;
            for (int l = 0; l < 16; l++) L[16 * j + l] = (int8_t)(clampi(nearest_int(x[16 * j + l] / d), -4, 3) + 4);
        }
        memset(y[i].hmask, 0, QK_K / 8);
        int m = 0;
        uint8_t hm = 1;
        for (int j = 0; j < QK_K; j++) {
            if (L[j] > 3) {
                y[i].hmask[m] |= hm;
                L[j] = (int8_t)(L[j] - 4);
            }
            if (++m == QK_K / 8) {
                m = 0;
                hm <<= 1;
            }
        }
        for (int j = 0; j < QK_K; j += 128)
            for (int l = 0; l < 32; l++)
                y[i].qs[j / 4 + l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
    }
}

/* Q4_K and Q5_K share the 6-bit scale/min packing. */
static void pack_scales_k4(uint8_t *out, const float *scales, const float *mins, float *d, float *dmin) {
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; j++) {
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f, inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    for (int j = 0; j < 8; j++) {
        uint8_t ls = (uint8_t)(nearest_int(inv_scale * scales[j]) < 63 ? nearest_int(inv_scale * scales[j]) : 63);
        uint8_t lm = (uint8_t)(nearest_int(inv_min * mins[j]) < 63 ? nearest_int(inv_min * mins[j]) : 63);
        if (j < 4) {
            out[j] = ls;
            out[j + 4] = lm;
        } else {
            out[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
            out[j - 4] |= (uint8_t)((ls >> 4) << 6);
            out[j] |= (uint8_t)((lm >> 4) << 6);
        }
    }
    *d = max_scale / 63.f;
    *dmin = max_min / 63.f;
}

static void q_q4_5_K(const float *x, void *dst, int64_t nb, int nmax) {
    uint8_t L[QK_K], Laux[32];
    float w[32], mins[8], scales[8];
    for (int64_t i = 0; i < nb; i++, x += QK_K) {
        for (int j = 0; j < 8; j++) {
            float sum_x2 = 0;
            for (int l = 0; l < 32; l++) sum_x2 += x[32 * j + l] * x[32 * j + l];
            float av_x = sqrtf(sum_x2 / 32);
            for (int l = 0; l < 32; l++) w[l] = av_x + fabsf(x[32 * j + l]);
            scales[j] = nmax == 15
                            ? make_qkx2_quants(32, 15, x + 32 * j, w, L + 32 * j, &mins[j], Laux, -1.f, 0.1f, 20, false)
                            : make_qkx2_quants(32, 31, x + 32 * j, w, L + 32 * j, &mins[j], Laux, -0.5f, 0.1f, 15, false);
        }
        uint8_t *sc;
        uint16_t *dd, *dm;
        if (nmax == 15) {
            blk_q4_K *b = (blk_q4_K *)dst + i;
            sc = b->scales, dd = &b->d, dm = &b->dmin;
        } else {
            blk_q5_K *b = (blk_q5_K *)dst + i;
            sc = b->scales, dd = &b->d, dm = &b->dmin;
        }
        memset(sc, 0, 12);
        float d, dmin;
        pack_scales_k4(sc, scales, mins, &d, &dmin);
        *dd = F2H(d);
        *dm = F2H(dmin);
        for (int j = 0; j < 8; j++) {
            uint8_t s, m;
            scale_min_k4(j, sc, &s, &m);
            float dl = H2F(*dd) * s;
            if (!dl) continue;
            float dml = H2F(*dm) * m;
            for (int l = 0; l < 32; l++) L[32 * j + l] = (uint8_t)clampi(nearest_int((x[32 * j + l] + dml) / dl), 0, nmax);
        }
        if (nmax == 15) {
            uint8_t *q = ((blk_q4_K *)dst)[i].qs;
            for (int j = 0; j < QK_K; j += 64, q += 32)
                for (int l = 0; l < 32; l++) q[l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
        } else {
            blk_q5_K *b = (blk_q5_K *)dst + i;
            uint8_t *ql = b->qs, *qh = b->qh;
            memset(qh, 0, QK_K / 8);
            uint8_t m1 = 1, m2 = 2;
            for (int n0 = 0; n0 < QK_K; n0 += 64, ql += 32) {
                for (int j = 0; j < 32; j++) {
                    int l1 = L[n0 + j], l2 = L[n0 + j + 32];
                    if (l1 > 15) l1 -= 16, qh[j] |= m1;
                    if (l2 > 15) l2 -= 16, qh[j] |= m2;
                    ql[j] = (uint8_t)(l1 | (l2 << 4));
                }
                m1 <<= 2;
                m2 <<= 2;
            }
        }
    }
}

static void q_q6_K(const float *x, blk_q6_K *y, int64_t nb) {
    int8_t L[QK_K];
    float scales[16];
    for (int64_t i = 0; i < nb; i++, x += QK_K) {
        float max_scale = 0, max_abs = 0;
        for (int ib = 0; ib < 16; ib++) {
            scales[ib] = make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib, 1);
            if (fabsf(scales[ib]) > max_abs) {
                max_abs = fabsf(scales[ib]);
                max_scale = scales[ib];
            }
        }
        if (max_abs < EPS) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        float iscale = -128.f / max_scale;
        y[i].d = F2H(1 / iscale);
        for (int ib = 0; ib < 16; ib++) {
            int v = nearest_int(iscale * scales[ib]);
            y[i].scales[ib] = (int8_t)(v < 127 ? v : 127);
        }
        for (int j = 0; j < 16; j++) {
            float d = H2F(y[i].d) * y[i].scales[j];
            if (!d) continue;
            for (int l = 0; l < 16; l++) L[16 * j + l] = (int8_t)(clampi(nearest_int(x[16 * j + l] / d), -32, 31) + 32);
        }
        uint8_t *ql = y[i].ql, *qh = y[i].qh;
        for (int j = 0; j < QK_K; j += 128, ql += 64, qh += 32)
            for (int l = 0; l < 32; l++) {
                uint8_t q1 = L[j + l] & 0xF, q2 = L[j + l + 32] & 0xF, q3 = L[j + l + 64] & 0xF, q4 = L[j + l + 96] & 0xF;
                ql[l] = (uint8_t)(q1 | (q3 << 4));
                ql[l + 32] = (uint8_t)(q2 | (q4 << 4));
                qh[l] = (uint8_t)((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4) |
                                  ((L[j + l + 96] >> 4) << 6));
            }
    }
}

void qk_quant_q8_K(const float *x, void *dst, int64_t n) {
    blk_q8_K *y = dst;
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        float amax = 0, max = 0;
        for (int j = 0; j < QK_K; j++)
            if (fabsf(x[j]) > amax) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        if (!amax) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        float iscale = -127.f / max;
        for (int j = 0; j < QK_K; j++) {
            int v = nearest_int(iscale * x[j]);
            y[i].qs[j] = (int8_t)(v < 127 ? v : 127);
        }
        for (int j = 0; j < QK_K / 16; j++) {
            int s = 0;
            for (int l = 0; l < 16; l++) s += y[i].qs[16 * j + l];
            y[i].bsums[j] = (int16_t)s;
        }
        y[i].d = 1 / iscale;
    }
}

void qk_quant(llm_type t, const float *x, void *dst, int64_t n) {
    int64_t nb = n / QK_K;
    switch (t) {
    case LLM_TYPE_Q2_K: q_q2_K(x, dst, nb); break;
    case LLM_TYPE_Q3_K: q_q3_K(x, dst, nb); break;
    case LLM_TYPE_Q4_K: q_q4_5_K(x, dst, nb, 15); break;
    case LLM_TYPE_Q5_K: q_q4_5_K(x, dst, nb, 31); break;
    case LLM_TYPE_Q6_K: q_q6_K(x, dst, nb); break;
    case LLM_TYPE_Q8_K: qk_quant_q8_K(x, dst, n); break;
    default: break;
    }
}

/* ---- reference dot products with Q8_K activations ---------------------- */

/* Each weight type unpacks to signed 8-bit values and per-16 scales; the
 * integer sums are exact, so the fast kernels must agree to float
 * rounding. */
float qk_dot_q2_K(const void *w, const void *a, int64_t n) {
    const blk_q2_K *x = w;
    const blk_q8_K *y = a;
    float sum = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int summs = 0;
        for (int j = 0; j < 16; j++) summs += y[i].bsums[j] * (x[i].scales[j] >> 4);
        const uint8_t *q = x[i].qs;
        const int8_t *q8 = y[i].qs;
        int isum = 0, is = 0;
        for (int n0 = 0; n0 < QK_K; n0 += 128, q += 32)
            for (int shift = 0; shift < 8; shift += 2)
                for (int half = 0; half < 2; half++) {
                    int d = x[i].scales[is++] & 0xF, s = 0;
                    for (int l = 0; l < 16; l++) s += q8[l] * ((q[l + 16 * half] >> shift) & 3);
                    isum += d * s;
                    q8 += 16;
                }
        sum += y[i].d * H2F(x[i].d) * isum - y[i].d * H2F(x[i].dmin) * summs;
    }
    return sum;
}

float qk_dot_q3_K(const void *w, const void *a, int64_t n) {
    const blk_q3_K *x = w;
    const blk_q8_K *y = a;
    float sum = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int8_t sc[16];
        qk_q3_scales(x[i].scales, sc);
        const uint8_t *q = x[i].qs, *hm = x[i].hmask;
        const int8_t *q8 = y[i].qs;
        uint8_t m = 1;
        int isum = 0, is = 0;
        for (int n0 = 0; n0 < QK_K; n0 += 128, q += 32)
            for (int shift = 0; shift < 8; shift += 2, m <<= 1)
                for (int half = 0; half < 2; half++) {
                    int s = 0;
                    for (int l = 0; l < 16; l++) {
                        int k = l + 16 * half;
                        s += q8[l] * (((q[k] >> shift) & 3) - ((hm[k] & m) ? 0 : 4));
                    }
                    isum += sc[is++] * s;
                    q8 += 16;
                }
        sum += H2F(x[i].d) * y[i].d * isum;
    }
    return sum;
}

/* One Q4_K or Q5_K block (qh: the fifth bits, NULL for Q4_K). */
static float q45_K_block(uint16_t d, uint16_t dmin, const uint8_t *scales, const uint8_t *qh, const uint8_t *qs,
                         const blk_q8_K *y) {
    const int8_t *q8 = y->qs;
    int isum = 0, summs = 0;
    for (int j = 0; j < 8; j++) {
        uint8_t s, m;
        scale_min_k4(j, scales, &s, &m);
        summs += m * (y->bsums[2 * j] + y->bsums[2 * j + 1]);
        int t = 0;
        for (int l = 0; l < 32; l++) {
            int v = (j & 1) ? (qs[l] >> 4) : (qs[l] & 0xF);
            if (qh && (qh[l] & (1u << j))) v += 16;
            t += q8[l] * v;
        }
        isum += s * t;
        q8 += 32;
        if (j & 1) qs += 32;
    }
    return H2F(d) * y->d * isum - H2F(dmin) * y->d * summs;
}

float qk_dot_q4_K(const void *w, const void *a, int64_t n) {
    const blk_q4_K *x = w;
    float sum = 0;
    for (int64_t i = 0; i < n / QK_K; i++) sum += q45_K_block(x[i].d, x[i].dmin, x[i].scales, NULL, x[i].qs, (const blk_q8_K *)a + i);
    return sum;
}

float qk_dot_q5_K(const void *w, const void *a, int64_t n) {
    const blk_q5_K *x = w;
    float sum = 0;
    for (int64_t i = 0; i < n / QK_K; i++)
        sum += q45_K_block(x[i].d, x[i].dmin, x[i].scales, x[i].qh, x[i].qs, (const blk_q8_K *)a + i);
    return sum;
}

float qk_dot_q6_K(const void *w, const void *a, int64_t n) {
    const blk_q6_K *x = w;
    const blk_q8_K *y = a;
    float sum = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int8_t v[QK_K];
        const uint8_t *ql = x[i].ql, *qh = x[i].qh;
        for (int n0 = 0; n0 < QK_K; n0 += 128, ql += 64, qh += 32)
            for (int l = 0; l < 32; l++) {
                v[n0 + l] = (int8_t)(((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32);
                v[n0 + l + 32] = (int8_t)(((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
                v[n0 + l + 64] = (int8_t)(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
                v[n0 + l + 96] = (int8_t)(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
            }
        int isum = 0;
        for (int j = 0; j < 16; j++) {
            int s = 0;
            for (int l = 0; l < 16; l++) s += y[i].qs[16 * j + l] * v[16 * j + l];
            isum += x[i].scales[j] * s;
        }
        sum += H2F(x[i].d) * y[i].d * isum;
    }
    return sum;
}
