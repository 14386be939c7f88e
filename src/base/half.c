/* half.c — IEEE half and bfloat16 conversions, exact (round to nearest
 * even), branch-light and portable: the reference that SIMD paths are
 * tested against, and what model files stored in 16 bits use. */
#include <math.h>
#include <string.h>

#include "base.h"

static uint32_t f2u(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static float u2f(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t f16_from_f32(float f) {
    /* Exact round to nearest even through float arithmetic (the method of
     * Giesen's "float_to_half_fast3"): scale so the result's rounding
     * happens in the float adder. */
    const float scale_to_inf = u2f(0x77800000u), scale_to_zero = u2f(0x08800000u);
    float base = (fabsf(f) * scale_to_inf) * scale_to_zero;
    uint32_t w = f2u(f), shl1_w = w + w, sign = w & 0x80000000u;
    uint32_t bias = shl1_w & 0xFF000000u;
    if (bias < 0x71000000u) bias = 0x71000000u;
    base = u2f((bias >> 1) + 0x07800000u) + base;
    uint32_t bits = f2u(base);
    uint32_t exp_bits = (bits >> 13) & 0x00007C00u, mant_bits = bits & 0x00000FFFu;
    uint32_t nonsign = exp_bits + mant_bits;
    return (uint16_t)((sign >> 16) | (shl1_w > 0xFF000000u ? 0x7E00u : nonsign));
}

float f32_from_f16(uint16_t h) {
    uint32_t w = (uint32_t)h << 16, sign = w & 0x80000000u, two_w = w + w;
    const uint32_t exp_offset = 0xE0u << 23;
    const float exp_scale = u2f(0x7800000u);
    float normalized = u2f((two_w >> 4) + exp_offset) * exp_scale;
    const uint32_t magic_mask = 126u << 23;
    const float magic_bias = 0.5f;
    float denormalized = u2f((two_w >> 17) | magic_mask) - magic_bias;
    const uint32_t denorm_cutoff = 1u << 27;
    uint32_t r = sign | (two_w < denorm_cutoff ? f2u(denormalized) : f2u(normalized));
    return u2f(r);
}

uint16_t bf16_from_f32(float f) {
    uint32_t u = f2u(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 64); /* quiet NaN */
    return (uint16_t)((u + (0x7fffu + ((u >> 16) & 1))) >> 16);
}

float f32_from_bf16(uint16_t h) { return u2f((uint32_t)h << 16); }
