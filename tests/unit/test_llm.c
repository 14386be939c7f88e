/* test_llm.c — the built-in LLM engine against the reference engine's
 * saved outputs (../shared/data/llm-fixtures): tokenizer ids, logits,
 * hidden states and teacher-forced greedy steps within the fixture's
 * tolerances; plus the tensor types (AVX2 vs scalar), the GGUF
 * writer/reader round trip and corrupted files. */
#include <cjson/cJSON.h>
#include <math.h>

#include "llm/llm.h"
#include "nn/nn.h"
#include "tailor.h"
#include "test.h"

static cJSON *load_json(const char *path) {
    sb s;
    sb_init(&s);
    tailor_error err = {0};
    if (file_read(path, &s, &err) < 0) {
        fprintf(stderr, "FATAL: %s\n", err.msg);
        exit(2);
    }
    cJSON *j = cJSON_Parse(s.buf);
    sb_deinit(&s);
    if (!j) {
        fprintf(stderr, "FATAL: %s: bad JSON\n", path);
        exit(2);
    }
    return j;
}

/* Reads a whole file of float32 values; *n receives the count. */
static float *load_f32(const char *path, size_t *n) {
    sb s;
    sb_init(&s);
    tailor_error err = {0};
    if (file_read(path, &s, &err) < 0) {
        fprintf(stderr, "FATAL: %s\n", err.msg);
        exit(2);
    }
    *n = s.len / 4;
    float *f = malloc(s.len + 4);
    memcpy(f, s.buf, s.len);
    sb_deinit(&s);
    return f;
}

/* ---- tensor types ------------------------------------------------------ */

static void test_half_floats(void) {
    CHECK_EQ(f16_from_f32(1.0f), 0x3C00);
    CHECK_EQ(f16_from_f32(-2.0f), 0xC000);
    CHECK_EQ(f16_from_f32(65504.0f), 0x7BFF);
    CHECK_EQ(f16_from_f32(1e6f), 0x7C00);  /* overflow -> inf */
    CHECK_EQ(f16_from_f32(1e-9f), 0x0000); /* underflow -> 0 */
    /* 1 + 2^-11 is exactly between two halves: ties go to even. */
    CHECK_EQ(f16_from_f32(1.0f + 1.0f / 2048), 0x3C00);
    CHECK_EQ(f16_from_f32(1.0f + 3.0f / 2048), 0x3C02);
    CHECK(f32_from_f16(0x3555) > 0.333f && f32_from_f16(0x3555) < 0.3334f);
    CHECK(f32_from_f16(0x0001) == ldexpf(1.0f, -24)); /* smallest subnormal */
    for (uint32_t h = 0; h < 0x7C00; h++) CHECK_EQ(f16_from_f32(f32_from_f16((uint16_t)h)), h);
    CHECK_EQ(bf16_from_f32(1.0f), 0x3F80);
    CHECK(f32_from_bf16(bf16_from_f32(3.140625f)) == 3.140625f);
}

static void fill(float *x, int64_t n, uint64_t seed) {
    rng r;
    rng_seed(&r, seed);
    for (int64_t i = 0; i < n; i++) x[i] = (float)rng_normal(&r) * (i % 7 == 0 ? 3.0f : 1.0f);
}

static void test_quant_roundtrip(void) {
    const llm_type types[] = {LLM_TYPE_F16,  LLM_TYPE_BF16, LLM_TYPE_Q8_0, LLM_TYPE_Q4_0, LLM_TYPE_Q4_1,
                              LLM_TYPE_Q5_0, LLM_TYPE_Q5_1, LLM_TYPE_Q2_K, LLM_TYPE_Q3_K, LLM_TYPE_Q4_K,
                              LLM_TYPE_Q5_K, LLM_TYPE_Q6_K, LLM_TYPE_Q8_K};
    /* Worst relative RMS error each format may have on Gaussian data. */
    const double tol[] = {1e-3, 5e-3, 0.01, 0.15, 0.12, 0.08, 0.06, 0.40, 0.22, 0.11, 0.06, 0.03, 0.015};
    int64_t n = 4096;
    float *x = malloc(n * 4), *y = malloc(n * 4);
    void *q = malloc(n * 4);
    fill(x, n, 7);
    for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
        llm_quant_row(types[i], x, q, n);
        llm_dequant_row(types[i], q, y, n);
        double e = 0, s = 0;
        for (int64_t j = 0; j < n; j++) {
            e += (x[j] - y[j]) * (x[j] - y[j]);
            s += x[j] * x[j];
        }
        double rel = sqrt(e / s);
        if (rel > tol[i]) fprintf(stderr, "%s: relative error %g\n", llm_type_get(types[i])->name, rel);
        CHECK(rel <= tol[i]);
        CHECK(rel > 0 || types[i] == LLM_TYPE_F16);
    }
    /* Q4_0 keeps the block's largest value exactly representable (d = max/-8). */
    float b[32] = {0};
    b[3] = -4.0f;
    b[5] = 1.0f;
    llm_quant_row(LLM_TYPE_Q4_0, b, q, 32);
    llm_dequant_row(LLM_TYPE_Q4_0, q, y, 32);
    CHECK(y[3] == -4.0f && y[5] == 1.0f && y[0] == 0.0f);
    free(x);
    free(y);
    free(q);
}

/* Each SIMD set against the scalar reference: dots, quantizers, rows and
 * prompt tiles. */
static void check_kernel_set(const llm_kernels *fast) {
    const llm_kernels *ref = llm_kernels_scalar();
    const llm_type types[] = {LLM_TYPE_F32, LLM_TYPE_F16, LLM_TYPE_BF16, LLM_TYPE_Q8_0, LLM_TYPE_Q4_0,
                              LLM_TYPE_Q4_1, LLM_TYPE_Q5_0, LLM_TYPE_Q5_1, LLM_TYPE_Q2_K, LLM_TYPE_Q3_K,
                              LLM_TYPE_Q4_K, LLM_TYPE_Q5_K, LLM_TYPE_Q6_K};
    int64_t n = 4096 + 256; /* not a multiple of the SIMD loop widths */
    float *w = malloc(n * 4), *x = malloc(n * 4);
    uint8_t *qw = malloc(n * 4), *qa = malloc(n * 4), *qa2 = malloc(n * 4);
    for (int trial = 0; trial < 4; trial++) {
        fill(w, n, 100 + trial);
        fill(x, n, 200 + trial);
        for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
            llm_type t = types[i], at = llm_type_get(t)->dot_type;
            llm_quant_row(t, w, qw, n);
            ref->quant[at](x, qa, n);
            fast->quant[at](x, qa2, n);
            CHECK(memcmp(qa, qa2, llm_row_bytes(at, n)) == 0); /* activations bit-identical */
            double a = ref->dot[t](qw, qa, n), b = fast->dot[t](qw, qa, n);
            double scale = sqrt((double)n) * 3;
            if (fabs(a - b) > 2e-6 * scale) fprintf(stderr, "%s: %g vs %g\n", llm_type_get(t)->name, a, b);
            CHECK(fabs(a - b) <= 2e-6 * scale);
        }
    }
    /* Multi-row kernels give each row's dot (an even and an odd number of
     * 32-value blocks: the 512-bit ones take two per step). */
    for (size_t i = 0; i < sizeof types / sizeof *types; i++)
        for (int64_t len = 512; len <= 544; len += 32) {
            llm_type t = types[i], at = llm_type_get(t)->dot_type;
            if (!fast->rows[t]) continue;
            size_t rb = llm_row_bytes(t, len);
            uint8_t *rowsq = malloc(rb * LLM_ROWS);
            for (int r = 0; r < LLM_ROWS; r++) {
                fill(w, len, 300 + r);
                llm_quant_row(t, w, rowsq + r * rb, len);
            }
            fill(x, len, 400);
            fast->quant[at](x, qa, len);
            for (int nr = 1; nr <= LLM_ROWS; nr++) {
                float out[LLM_ROWS];
                fast->rows[t](rowsq, rb, qa, len, nr, out);
                for (int r = 0; r < nr; r++) {
                    double want = ref->dot[t](rowsq + r * rb, qa, len);
                    CHECK(fabs(out[r] - want) <= 1e-5 * (fabs(want) + 10));
                }
            }
            free(rowsq);
        }
    /* Prompt tiles give every (row, token) dot: an odd number of 32-value
     * blocks (the 512-bit kernels take two per step) and a float row whose
     * length is not a multiple of the vector (a masked tail). */
    int tiles = 0;
    for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
        llm_type t = types[i], at = llm_type_get(t)->dot_type;
        llm_tile tl = fast->tile[t];
        if (!tl.fn) continue;
        CHECK(tl.r >= 1 && tl.r <= LLM_TILE_MAX_R && tl.r <= LLM_ROWS && tl.t >= 1 && tl.t <= LLM_TILE_MAX_T);
        /* forward.c's packing buffer holds 2 bytes per value and token */
        CHECK(!tl.pack || tl.pack_bytes <= 2 * llm_type_get(at)->block * tl.t);
        int64_t len = llm_type_get(t)->block == 256 ? 512 : llm_type_get(t)->block == 32 ? 544 : 536;
        size_t rb = llm_row_bytes(t, len), ab = llm_row_bytes(at, len);
        uint8_t *wq = malloc(rb * tl.r), *aq = malloc(ab * tl.t);
        for (int r = 0; r < tl.r; r++) {
            fill(w, len, 500 + r);
            llm_quant_row(t, w, wq + r * rb, len);
        }
        for (int k = 0; k < tl.t; k++) {
            fill(x, len, 600 + k);
            fast->quant[at](x, aq + k * ab, len);
        }
        float out[LLM_TILE_MAX_R * LLM_TILE_MAX_T];
        uint8_t *packed = NULL;
        if (tl.pack) {
            packed = malloc((size_t)(len / llm_type_get(at)->block) * (size_t)tl.pack_bytes);
            tl.pack(aq, ab, len, packed);
        }
        tl.fn(wq, rb, packed ? packed : aq, ab, len, out, (size_t)tl.r);
        free(packed);
        for (int k = 0; k < tl.t; k++)
            for (int r = 0; r < tl.r; r++) {
                double want = ref->dot[t](wq + r * rb, aq + k * ab, len);
                if (fabs(out[k * tl.r + r] - want) > 1e-5 * (fabs(want) + 10))
                    fprintf(stderr, "%s tile %s (%d, %d): %g vs %g\n", fast->name, llm_type_get(t)->name, r, k,
                            out[k * tl.r + r], want);
                CHECK(fabs(out[k * tl.r + r] - want) <= 1e-5 * (fabs(want) + 10));
            }
        free(wq);
        free(aq);
        tiles++;
    }
    fprintf(stderr, "note: %s kernels: %d tile types checked against the scalar reference\n", fast->name, tiles);
    /* Matrices laid out 16 rows to a group: the layout gives the rows
     * back, and each kernel (one token, a tile of tokens, four groups) is
     * bit for bit the layout's scalar twin and within rounding of the
     * plain dots. */
    const llm_type r16_types[] = {LLM_TYPE_Q8_0, LLM_TYPE_Q4_0, LLM_TYPE_Q5_0, LLM_TYPE_Q4_K, LLM_TYPE_Q6_K};
    for (size_t i = 0; i < sizeof r16_types / sizeof *r16_types; i++) {
        llm_type t = r16_types[i], at = llm_type_get(t)->dot_type;
        bool x8 = at == LLM_TYPE_Q8_0; /* Q8_0/Q4_0/Q5_0: packed activations; K-quants: Q8_K rows */
        llm_r16 k = fast->r16[t];
        CHECK(k.one != NULL);
        int64_t len = x8 ? 544 : 768; /* 17 and 3 blocks */
        size_t rb = llm_row_bytes(t, len), ab = llm_row_bytes(at, len);
        int T = k.tile ? k.t : 1;
        CHECK(T >= 1 && T <= LLM_TILE_MAX_T && (x8 || !k.tile));
        uint8_t *rowsq = malloc(rb * LLM_R16), *group = malloc(rb * LLM_R16), *back = malloc(rb * LLM_R16);
        uint8_t *aq = malloc(ab * (size_t)T);
        llm_x8 *packed = malloc((size_t)(len / 32) * (size_t)T * sizeof(llm_x8));
        for (int r = 0; r < LLM_R16; r++) {
            fill(w, len, 1300 + r);
            for (int64_t j = 0; j < len; j++) w[j] *= (r + j) % 37 == 0 ? 20.0f : 1.0f;
            llm_quant_row(t, w, rowsq + r * rb, len);
        }
        llm_r16_pack(t, rowsq, rb, len, group);
        CHECK(memcmp(group, rowsq, rb * LLM_R16) != 0);
        llm_r16_unpack(t, group, len, back, rb);
        CHECK(memcmp(back, rowsq, rb * LLM_R16) == 0);
        for (int r = 0; r < LLM_R16; r++) {
            llm_r16_unpack_row(t, group, len, r, back);
            CHECK(memcmp(back, rowsq + r * rb, rb) == 0);
        }
        for (int tok = 0; tok < T; tok++) {
            fill(x, len, 1400 + tok);
            ref->quant[at](x, aq + tok * ab, len);
        }
        float got[LLM_TILE_MAX_T * LLM_R16], want[LLM_TILE_MAX_T * LLM_R16];
        for (int pass = 0; pass < 2; pass++) {
            if (pass == 1 && !k.tile) break;
            int nt = pass ? T : 1;
            if (x8) llm_r16_pack_acts(t, aq, ab, nt, len, packed);
            const void *acts = x8 ? (const void *)packed : aq;
            (pass ? k.tile : k.one)(group, acts, len, got, LLM_R16);
            llm_r16_ref(t, group, acts, nt, len, want, LLM_R16);
            if (memcmp(got, want, sizeof(float) * (size_t)nt * LLM_R16))
                fprintf(stderr, "%s r16 %s: %g vs %g\n", fast->name, llm_type_get(t)->name, got[0], want[0]);
            CHECK(memcmp(got, want, sizeof(float) * (size_t)nt * LLM_R16) == 0);
            if (pass == 0 && k.four) { /* four groups side by side (the rows rotated by g), bit for bit */
                uint8_t *four = malloc(4 * LLM_R16 * rb), *rot = malloc(LLM_R16 * rb);
                float got4[4 * LLM_R16], want4[LLM_R16];
                for (int g = 0; g < 4; g++) {
                    for (int r = 0; r < LLM_R16; r++) memcpy(rot + r * rb, rowsq + ((r + g) % LLM_R16) * rb, rb);
                    llm_r16_pack(t, rot, rb, len, four + (size_t)g * LLM_R16 * rb);
                }
                k.four(four, LLM_R16 * rb, acts, len, got4);
                for (int g = 0; g < 4; g++) {
                    llm_r16_ref(t, four + (size_t)g * LLM_R16 * rb, acts, 1, len, want4, LLM_R16);
                    CHECK(memcmp(got4 + LLM_R16 * g, want4, sizeof want4) == 0);
                    CHECK(got4[LLM_R16 * g] == got[g]); /* row g of the unrotated group */
                }
                free(four), free(rot);
            }
            for (int tok = 0; tok < nt; tok++)
                for (int r = 0; r < LLM_R16; r++) {
                    double d = ref->dot[t](rowsq + r * rb, aq + tok * ab, len);
                    CHECK(fabs(got[tok * LLM_R16 + r] - d) <= 1e-5 * (fabs(d) + 10));
                }
        }
        free(rowsq), free(group), free(back), free(aq), free(packed);
    }
    fprintf(stderr, "note: %s kernels: Q8_0/Q4_0/Q5_0/Q4_K/Q6_K in 16-row groups (%s) checked bit for bit\n",
            fast->name, fast->r16[LLM_TYPE_Q4_0].tile ? "one token, Q8_0/Q4_0/Q5_0 tiles" : "one token");
    /* The F16 prompt GEMM: 4 rows over a whole 64-token group and a
     * 16-token tail, an odd block length, added to what yt held. */
    if (fast->gemm4) {
        enum { KB = 37, NT = 80, WR = 41, XR = 96, YR = 88 };
        float *gw = malloc(4 * WR * 4), *gx = malloc(KB * XR * 4), *gy = malloc(4 * YR * 4), *gr = malloc(4 * YR * 4);
        fill(gw, 4 * WR, 700);
        fill(gx, KB * XR, 701);
        fill(gy, 4 * YR, 702);
        memcpy(gr, gy, 4 * YR * 4);
        fast->gemm4(gw, WR, gx, XR, KB, NT, gy, YR);
        llm_gemm4_ref(gw, WR, gx, XR, KB, NT, gr, YR);
        double worst = 0;
        for (int r = 0; r < 4; r++)
            for (int t = 0; t < YR; t++) {
                double d = fabs(gy[r * YR + t] - gr[r * YR + t]);
                if (t >= NT) CHECK(d == 0); /* past n: untouched */
                worst = fmax(worst, d / (fabs(gr[r * YR + t]) + 1));
            }
        CHECK(worst < 1e-5);
        fprintf(stderr, "note: %s gemm4 against the scalar twin: %.1e\n", fast->name, worst);
        free(gw), free(gx), free(gy), free(gr);
    }
    /* Rows to F32 (the fine-tuner's frozen base): bit for bit the scalar
     * dequantization, an F16 row with a tail shorter than the vector. */
    int deqs = 0;
    for (int t = 0; t < LLM_TYPE_COUNT; t++) {
        if (!fast->deq[t]) continue;
        int64_t len = t == LLM_TYPE_F16 ? 517 : 512;
        uint8_t *q = malloc(llm_row_bytes((llm_type)t, len));
        float *a = malloc((size_t)len * 4), *b = malloc((size_t)len * 4);
        fill(w, len, 1100 + t);
        for (int64_t i = 0; i < len; i++) w[i] *= i % 61 == 0 ? 30.0f : 1.0f; /* wide scales in one block */
        llm_quant_row((llm_type)t, w, q, len);
        llm_dequant_row((llm_type)t, q, a, len);
        fast->deq[t](q, b, len);
        if (memcmp(a, b, (size_t)len * 4)) fprintf(stderr, "%s deq %s differs\n", fast->name, llm_type_get(t)->name);
        CHECK(!memcmp(a, b, (size_t)len * 4));
        free(q), free(a), free(b);
        deqs++;
    }
    fprintf(stderr, "note: %s kernels: %d row dequantizers checked bit for bit\n", fast->name, deqs);
    /* SwiGLU, over the range the model's gates take and far outside it
     * (where exp saturates), with a tail shorter than the vector. */
    {
        enum { NS = 1000 + 7 };
        float g[NS], u[NS], g2[NS];
        fill(g, NS, 1000);
        fill(u, NS, 1001);
        for (int i = 0; i < NS; i++) g[i] *= i % 50 == 0 ? 40.0f : 2.0f;
        memcpy(g2, g, sizeof g);
        llm_swiglu_ref(g, u, NS);
        fast->swiglu(g2, u, NS);
        int bad = 0;
        for (int i = 0; i < NS; i++) bad += !(fabs(g[i] - g2[i]) <= 2e-6 * fabs(g[i]) + 1e-30);
        if (bad) fprintf(stderr, "%s swiglu: %d values off by more than 2e-6\n", fast->name, bad);
        CHECK_EQ(bad, 0);
    }
    /* Blocked attention: two key blocks in a row (the second rescales what
     * the first left), rows that see nothing, part of a block, all of it. */
    if (fast->att) {
        const int Ss[] = {16, 64, 128};
        for (int si = 0; si < 3; si++) {
            int S = Ss[si], R = 13;
            if (S % fast->att_align) continue;
            size_t nq = (size_t)R * S, nk = (size_t)S * LLM_ATT_KB;
            float *Q = malloc(nq * 4), *KT = malloc(nk * 4), *V = malloc(nk * 4), *sc = malloc((size_t)R * LLM_ATT_KB * 4);
            float *O[2], *mx[2], *sum[2];
            int allow[13];
            for (int v = 0; v < 2; v++) {
                O[v] = calloc(nq, 4);
                mx[v] = malloc((size_t)R * 4);
                sum[v] = calloc((size_t)R, 4);
                for (int r = 0; r < R; r++) mx[v][r] = -INFINITY;
            }
            fill(Q, (int64_t)nq, 700 + si);
            for (int blk = 0; blk < 2; blk++) {
                fill(KT, (int64_t)nk, 800 + blk);
                fill(V, (int64_t)nk, 900 + blk);
                for (int r = 0; r < R; r++) allow[r] = r == 2 ? 0 : blk == 0 ? 1 + (r * 7) % LLM_ATT_KB : LLM_ATT_KB - r;
                llm_att_block_ref(R, S, Q, KT, V, sc, O[0], mx[0], sum[0], allow, 0.125f);
                fast->att(R, S, Q, KT, V, sc, O[1], mx[1], sum[1], allow, 0.125f);
            }
            double worst = 0;
            for (int r = 0; r < R; r++) {
                CHECK(isinf(mx[0][r]) ? isinf(mx[1][r]) : fabs(mx[0][r] - mx[1][r]) <= 1e-5 * (fabs(mx[0][r]) + 1));
                CHECK(fabs(sum[0][r] - sum[1][r]) <= 1e-5 * (fabs(sum[0][r]) + 1e-6));
                for (int d = 0; d < S; d++) {
                    double a = O[0][(size_t)r * S + d], b = O[1][(size_t)r * S + d];
                    double e = fabs(a - b) / (fabs(sum[0][r]) + 1e-6);
                    if (e > worst) worst = e;
                }
            }
            if (worst > 1e-5) fprintf(stderr, "%s attention S=%d: relative error %g\n", fast->name, S, worst);
            CHECK(worst <= 1e-5);
            CHECK(sum[1][2] == 0 && O[1][2 * (size_t)S] == 0); /* the row that saw nothing */
            for (int v = 0; v < 2; v++) {
                free(O[v]);
                free(mx[v]);
                free(sum[v]);
            }
            free(Q);
            free(KT);
            free(V);
            free(sc);
        }
        fprintf(stderr, "note: %s kernels: blocked attention checked against the scalar reference\n", fast->name);
    }
    /* The quantized dot equals the dequantized float dot of the same
     * (rounded) values, up to float accumulation. */
    fill(w, 256, 5);
    fill(x, 256, 6);
    llm_quant_row(LLM_TYPE_Q4_0, w, qw, 256);
    ref->quant[LLM_TYPE_Q8_0](x, qa, 256);
    float dw[256], dx[256];
    llm_dequant_row(LLM_TYPE_Q4_0, qw, dw, 256);
    llm_dequant_row(LLM_TYPE_Q8_0, qa, dx, 256);
    double s = 0;
    for (int i = 0; i < 256; i++) s += (double)dw[i] * dx[i];
    CHECK(fabs(s - ref->dot[LLM_TYPE_Q4_0](qw, qa, 256)) < 1e-3);
    free(w);
    free(x);
    free(qw);
    free(qa);
    free(qa2);
}

static void test_kernels_match_reference(void) {
    int ran = 0;
    const char *names[] = {"avx2", "avxvnni", "avx512"};
    for (int i = 0; i < 3; i++) {
        const llm_kernels *k = llm_kernels_named(names[i]);
        if (!k) {
            /* Not skipped silently: say which paths this CPU could not run. */
            fprintf(stderr, "note: this CPU cannot run the %s kernels; they were not checked here\n", names[i]);
            continue;
        }
        CHECK(strcmp(k->name, names[i]) == 0);
        check_kernel_set(k);
        ran++;
    }
    if (!ran) check_kernel_set(llm_kernels_scalar());
    CHECK(llm_kernels_named("scalar") == llm_kernels_scalar());
    CHECK(llm_kernels_named("avx9000") == NULL);
}

/* ---- GGUF -------------------------------------------------------------- */

static void test_gguf_roundtrip(void) {
    char *dir = test_tmpdir();
    char path[600];
    snprintf(path, sizeof path, "%s/t.gguf", dir);
    llm_gguf_writer *w = llm_gguf_writer_new();
    llm_gguf_set_str(w, "general.architecture", "llama");
    llm_gguf_set_u32(w, "a.u32", 4000000000u);
    llm_gguf_set_i32(w, "a.i32", -7);
    llm_gguf_set_f32(w, "a.f32", 0.25f);
    llm_gguf_set_bool(w, "a.bool", true);
    int32_t arr[3] = {1, -2, 3};
    llm_gguf_set_arr(w, "a.arr", LLM_GGUF_I32, arr, 3);
    llm_str strs[2] = {{"x", 1}, {"yz", 2}};
    llm_gguf_set_arr_str(w, "a.strs", strs, 2);
    float t1[64];
    for (int i = 0; i < 64; i++) t1[i] = (float)i;
    int64_t ne1[2] = {32, 2};
    llm_gguf_add_tensor(w, "t.f32", LLM_TYPE_F32, 2, ne1, t1);
    uint8_t q[34 * 2];
    llm_quant_row(LLM_TYPE_Q8_0, t1, q, 64);
    int64_t ne2[1] = {64};
    llm_gguf_add_tensor(w, "t.q8", LLM_TYPE_Q8_0, 1, ne2, q);
    tailor_error err = {0};
    CHECK_EQ(llm_gguf_writer_write(w, path, &err), 0);
    llm_gguf_writer_free(w);
    llm_gguf *g = NULL;
    CHECK_EQ(llm_gguf_open(path, &g, &err), 0);
    if (!g) return;
    uint32_t u;
    float f;
    bool b;
    CHECK(llm_gguf_get_u32(g, "a.u32", &u) && u == 4000000000u);
    CHECK(!llm_gguf_get_u32(g, "a.i32", &u)); /* negative: not a u32 */
    CHECK(llm_gguf_get_f32(g, "a.f32", &f) && f == 0.25f);
    CHECK(llm_gguf_get_bool(g, "a.bool", &b) && b);
    CHECK_STR(llm_gguf_get_str(g, "general.architecture"), "llama");
    const llm_gguf_kv *kv = llm_gguf_find(g, "a.arr");
    CHECK(kv && kv->n == 3 && ((const int32_t *)kv->v.arr)[1] == -2);
    kv = llm_gguf_find(g, "a.strs");
    CHECK(kv && kv->n == 2 && strcmp(((const llm_str *)kv->v.arr)[1].s, "yz") == 0);
    const llm_tensor *t = llm_gguf_tensor(g, "t.f32");
    CHECK(t && t->ne[0] == 32 && t->ne[1] == 2 && memcmp(t->data, t1, 256) == 0);
    t = llm_gguf_tensor(g, "t.q8");
    CHECK(t && t->type == LLM_TYPE_Q8_0 && t->bytes == 68 && memcmp(t->data, q, 68) == 0);
    CHECK(t && (uintptr_t)t->data % 32 == 0);
    /* Re-writing every key through llm_gguf_set_kv gives the same metadata. */
    llm_gguf_writer *w2 = llm_gguf_writer_new();
    for (int64_t i = 0; i < g->n_kv; i++) llm_gguf_set_kv(w2, &g->kv[i]);
    char path2[620];
    snprintf(path2, sizeof path2, "%s/t2.gguf", dir);
    CHECK_EQ(llm_gguf_writer_write(w2, path2, &err), 0);
    llm_gguf_writer_free(w2);
    llm_gguf *g2 = NULL;
    CHECK_EQ(llm_gguf_open(path2, &g2, &err), 0);
    if (g2) {
        CHECK_EQ(g2->n_kv, g->n_kv);
        CHECK(llm_gguf_get_f32(g2, "a.f32", &f) && f == 0.25f);
        CHECK(llm_gguf_find(g2, "a.i32") && llm_gguf_find(g2, "a.i32")->v.i == -7);
        llm_gguf_free(g2);
    }
    llm_gguf_free(g);
    test_rmtree(dir);
    free(dir);
}

/* Truncated and byte-flipped copies of a real model: every one must load
 * cleanly or fail with a message, never crash or read out of bounds
 * (AddressSanitizer watches the test build). */
static void test_gguf_corrupt(void) {
    char *path = test_data_path("tinyllamas-stories260K/stories260K.gguf");
    sb s;
    sb_init(&s);
    tailor_error err = {0};
    CHECK_EQ(file_read(path, &s, &err), 0);
    size_t n = s.len;
    int failed = 0, tries = 0;
    for (size_t cut = 0; cut < n; cut += cut < 20000 ? 97 : 20011) {
        uint8_t *copy = malloc(cut + 1); /* exact size: ASan sees any overrun */
        memcpy(copy, s.buf, cut);
        llm_gguf *g = NULL;
        tailor_error e = {0};
        int rc = llm_gguf_open_buffer(copy, cut, "cut.gguf", &g, &e);
        tries++;
        if (rc < 0) {
            failed++;
            CHECK(e.msg[0] != 0);
        }
        llm_gguf_free(g);
        free(copy);
    }
    CHECK_EQ(failed, tries); /* every truncation is detected */
    rng r;
    rng_seed(&r, 11);
    uint8_t *copy = malloc(n);
    for (int i = 0; i < 300; i++) {
        memcpy(copy, s.buf, n);
        for (int k = 0; k < 4; k++) copy[rng_below(&r, 12000)] ^= (uint8_t)(1u << rng_below(&r, 8));
        llm_gguf *g = NULL;
        tailor_error e = {0};
        if (llm_gguf_open_buffer(copy, n, "flip.gguf", &g, &e) == 0) {
            for (int64_t t = 0; t < g->n_tensors; t++) {
                const uint8_t *d = g->tensors[t].data;
                CHECK(d >= copy && d + g->tensors[t].bytes <= copy + n);
            }
            llm_gguf_free(g);
        } else {
            CHECK(e.msg[0] != 0);
        }
    }
    free(copy);
    /* A file on disk: a clear error with the file name. */
    char *dir = test_tmpdir();
    char *bad = test_write(dir, "bad.gguf", "GGUF\x03\0\0\0garbage-garbage-garbage");
    llm_gguf *g = NULL;
    CHECK(llm_gguf_open(bad, &g, &err) < 0);
    CHECK_CONTAINS(err.msg, "bad.gguf");
    CHECK_CONTAINS(err.msg, "truncated");
    free(bad);
    test_rmtree(dir);
    free(dir);
    sb_deinit(&s);
    free(path);
}

/* A model from ../shared/data (NULL, with a failed check, if it does not
 * load). */
static llm_model *load_data_model(const char *rel) {
    char *p = test_data_path(rel);
    tailor_error err = {0};
    llm_model *m = NULL;
    CHECK_EQ(llm_model_load(p, &m, &err), 0);
    free(p);
    return m;
}

/* ---- tokenizers -------------------------------------------------------- */

static llm_vocab *open_vocab(const char *rel, llm_gguf **g) {
    char *p = test_data_path(rel);
    tailor_error err = {0};
    llm_vocab *v = NULL;
    if (llm_gguf_open(p, g, &err) < 0 || llm_vocab_load(*g, &v, &err) < 0) {
        fprintf(stderr, "%s: %s\n", p, err.msg);
        CHECK(0);
    }
    free(p);
    return v;
}

static void check_tokenize_file(const char *vocab_rel, const char *name) {
    llm_gguf *g = NULL;
    llm_vocab *v = open_vocab(vocab_rel, &g);
    if (!v) return;
    char rel[256];
    snprintf(rel, sizeof rel, "llm-fixtures/tokenize/tokenize.%s.jsonl", name);
    char *p = test_data_path(rel);
    sb s;
    sb_init(&s);
    tailor_error err = {0};
    file_read(p, &s, &err);
    int cases = 0, bad_ids = 0, bad_detok = 0;
    int32_t ids[4096];
    sb d;
    sb_init(&d);
    for (char *line = s.buf; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        cJSON *j = cJSON_Parse(line);
        line = nl ? nl + 1 : NULL;
        if (!j) continue;
        const char *text = cJSON_GetObjectItem(j, "text")->valuestring;
        bool add = cJSON_IsTrue(cJSON_GetObjectItem(j, "add_special"));
        bool parse = cJSON_IsTrue(cJSON_GetObjectItem(j, "parse_special"));
        cJSON *want = cJSON_GetObjectItem(j, "ids");
        int64_t n = llm_tokenize(v, text, strlen(text), add, parse, ids, 4096);
        bool same = n == cJSON_GetArraySize(want);
        for (int64_t i = 0; same && i < n; i++) same = ids[i] == cJSON_GetArrayItem(want, (int)i)->valueint;
        if (!same) {
            if (bad_ids++ < 3) fprintf(stderr, "%s case %d: ids differ\n", name, cJSON_GetObjectItem(j, "i")->valueint);
        } else {
            sb_clear(&d);
            llm_detokenize(v, ids, n, true, &d);
            const char *want_d = cJSON_GetObjectItem(j, "detok")->valuestring;
            bool ok = strcmp(d.buf ? d.buf : "", want_d) == 0;
            cJSON *ns = cJSON_GetObjectItem(j, "detok_nospecial");
            sb_clear(&d);
            llm_detokenize(v, ids, n, false, &d);
            ok = ok && strcmp(d.buf ? d.buf : "", ns ? ns->valuestring : want_d) == 0;
            if (!ok && bad_detok++ < 3)
                fprintf(stderr, "%s case %d: detokenized text differs: '%s'\n", name,
                        cJSON_GetObjectItem(j, "i")->valueint, d.buf ? d.buf : "");
        }
        cases++;
        cJSON_Delete(j);
    }
    CHECK_EQ(cases, 300);
    CHECK_EQ(bad_ids, 0);
    CHECK_EQ(bad_detok, 0);
    sb_deinit(&d);
    sb_deinit(&s);
    free(p);
    llm_vocab_free(v);
    llm_gguf_free(g);
}

static void test_tokenizer_fixtures(void) {
    check_tokenize_file("tokenizer-refs-llamacpp/ggml-vocab-llama-spm.gguf", "llama-spm");
    check_tokenize_file("tokenizer-refs-llamacpp/ggml-vocab-gpt-2.gguf", "gpt2");
    check_tokenize_file("llm-fixtures/models/tiny-qwen2-bpe-F32.gguf", "qwen2");
    check_tokenize_file("llm-fixtures/models/tiny-llama3-bpe-F32.gguf", "llama-bpe");
    check_tokenize_file("llm-fixtures/models/tiny-smollm-bpe-F32.gguf", "smollm");
    check_tokenize_file("tinyllamas-stories260K/stories260K.gguf", "stories260K");
}

/* The upstream .inp/.out pairs: ids without BOS, special text not parsed. */
static void test_vocab_refs(void) {
    static const char *const names[] = {"bert-bge", "deepseek-coder", "deepseek-llm", "falcon", "gpt-2", "llama-spm",
                                        "mpt", "phi-3", "refact", "starcoder"};
    for (size_t k = 0; k < sizeof names / sizeof *names; k++) {
        char rel[256];
        snprintf(rel, sizeof rel, "tokenizer-refs-llamacpp/ggml-vocab-%s.gguf", names[k]);
        llm_gguf *g = NULL;
        llm_vocab *v = open_vocab(rel, &g);
        if (!v) continue;
        char *ip = test_data_path(strcat(strcpy((char[300]){0}, rel), ".inp"));
        char *op = test_data_path(strcat(strcpy((char[300]){0}, rel), ".out"));
        sb in, out;
        sb_init(&in);
        sb_init(&out);
        tailor_error err = {0};
        file_read(ip, &in, &err);
        file_read(op, &out, &err);
        const char *sep = "\n__ggml_vocab_test__\n";
        char *cur = in.buf, *oline = out.buf;
        int cases = 0, bad = 0;
        int32_t ids[4096];
        while (cur && *cur) {
            char *e = strstr(cur, sep);
            if (!e) break;
            char *onl = strchr(oline, '\n');
            if (onl) *onl = 0;
            int64_t n = llm_tokenize(v, cur, (size_t)(e - cur), false, false, ids, 4096);
            sb got;
            sb_init(&got);
            for (int64_t i = 0; i < n; i++) sb_printf(&got, " %d", ids[i]);
            if (strcmp(got.buf ? got.buf : "", oline) != 0 && bad++ < 2)
                fprintf(stderr, "%s case %d:\n want%s\n got %s\n", names[k], cases, oline, got.buf ? got.buf : "");
            sb_deinit(&got);
            cases++;
            cur = e + strlen(sep);
            oline = onl ? onl + 1 : oline + strlen(oline);
        }
        CHECK_EQ(cases, 46);
        CHECK_EQ(bad, 0);
        sb_deinit(&in);
        sb_deinit(&out);
        free(ip);
        free(op);
        llm_vocab_free(v);
        llm_gguf_free(g);
    }
}

/* ---- forward pass against the reference -------------------------------- */

typedef struct tol {
    double max_std, rms_std, states;
} tol;

typedef struct cmp_stats {
    double max_std, sum_sq;
    long n;
    int top1_bad;
} cmp_stats;

static double row_std(const float *r, int n) {
    double m = 0, s = 0;
    for (int i = 0; i < n; i++) m += r[i];
    m /= n;
    for (int i = 0; i < n; i++) s += (r[i] - m) * (r[i] - m);
    return sqrt(s / n);
}

static int argmax(const float *r, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (r[i] > r[b]) b = i;
    return b;
}

/* Compares a full reference row; counts top-1 disagreements where the
 * reference's top-2 gap exceeds gap_std * std. */
static void cmp_row(cmp_stats *st, const float *ref, const float *got, int n, double gap_std) {
    double sd = row_std(ref, n);
    for (int i = 0; i < n; i++) {
        double d = fabs(ref[i] - got[i]) / sd;
        if (d > st->max_std) st->max_std = d;
        st->sum_sq += d * d;
        st->n++;
    }
    int a = argmax(ref, n), b = argmax(got, n);
    if (a != b) {
        float second = -INFINITY;
        for (int i = 0; i < n; i++)
            if (i != a && ref[i] > second) second = ref[i];
        if (ref[a] - second > gap_std * sd) st->top1_bad++;
    }
}

static llm_type g_kv_type = LLM_TYPE_F32; /* KV cache type of check_model's contexts */

static void check_model(const char *name, tol T, double gap_std, const llm_kernels *kernels, int threads) {
    char rel[512];
    snprintf(rel, sizeof rel, "llm-fixtures/refs/%s/%s.prompts.json", name, name);
    char *pj = test_data_path(rel);
    cJSON *meta = load_json(pj);
    const char *mf = cJSON_GetObjectItem(meta, "model_file")->valuestring;
    char mrel[512];
    if (strncmp(mf, "../", 3) == 0) snprintf(mrel, sizeof mrel, "%s", mf + 3);
    else snprintf(mrel, sizeof mrel, "llm-fixtures/%s", mf);
    char *mp = test_data_path(mrel);
    tailor_error err = {0};
    llm_model *m = NULL;
    if (llm_model_load(mp, &m, &err) < 0) {
        fprintf(stderr, "%s: %s\n", name, err.msg);
        CHECK(0);
        goto out;
    }
    int V = m->hp.n_vocab, D = m->hp.n_embd, L = m->hp.n_layer;
    /* A LoRA reference: the base model with its adapter at a scale. */
    llm_lora *lora = NULL;
    const cJSON *af = cJSON_GetObjectItem(meta, "adapter_file");
    float lora_scale = af ? (float)cJSON_GetObjectItem(meta, "adapter_scale")->valuedouble : 0;
    if (af) {
        char arel[512];
        snprintf(arel, sizeof arel, "llm-fixtures/%s", af->valuestring);
        char *ap = test_data_path(arel);
        int rc = llm_lora_load(m, ap, &lora, &err);
        if (rc) fprintf(stderr, "%s: %s\n", name, err.msg);
        CHECK_EQ(rc, 0);
        free(ap);
        if (rc) goto out;
    }
    cmp_stats logit = {0}, greedy = {0};
    double worst_state = 0;
    int topk_bad = 0, greedy_bad = 0, greedy_steps = 0;
    cJSON *prompt;
    cJSON_ArrayForEach(prompt, cJSON_GetObjectItem(meta, "prompts")) {
        int k = cJSON_GetObjectItem(prompt, "k")->valueint;
        cJSON *ids_j = cJSON_GetObjectItem(prompt, "ids"), *gr_j = cJSON_GetObjectItem(prompt, "greedy_ids");
        int n = cJSON_GetArraySize(ids_j), ng = cJSON_GetArraySize(gr_j);
        /* Teacher-forced: the prompt and the first 31 greedy tokens in one
         * batch; rows n-1 .. n+30 are the 32 greedy steps. */
        int total = n + ng - 1;
        int32_t *ids = malloc(sizeof(int32_t) * (size_t)total);
        for (int i = 0; i < n; i++) ids[i] = cJSON_GetArrayItem(ids_j, i)->valueint;
        for (int i = 0; i < ng - 1; i++) ids[n + i] = cJSON_GetArrayItem(gr_j, i)->valueint;
        llm_ctx_params cp = llm_ctx_default_params();
        cp.n_ctx = 1024;
        cp.n_threads = threads;
        cp.kernels = kernels;
        cp.kv_type = g_kv_type;
        llm_ctx *c = NULL;
        CHECK_EQ(llm_ctx_new(m, cp, &c, &err), 0);
        if (lora) CHECK_EQ(llm_ctx_set_lora(c, lora, lora_scale, &err), 0);
        float *states = malloc(sizeof(float) * (size_t)(L + 1) * (size_t)total * (size_t)D);
        llm_ctx_capture_states(c, states);
        CHECK_EQ(llm_decode(c, ids, total, true, &err), 0);
        cJSON *files = cJSON_GetObjectItem(prompt, "files");
        char fp[700];
        /* Hidden states after each block and after the final norm. */
        snprintf(fp, sizeof fp, "%s/llm-fixtures/refs/%s/%s.%d.states.f32", test_data_dir(), name, name, k);
        size_t ns;
        float *rs = load_f32(fp, &ns);
        CHECK_EQ(ns, (size_t)(L + 1) * (size_t)n * (size_t)D);
        for (int l = 0; l <= L; l++)
            for (int t = 0; t < n; t++) {
                const float *r = rs + ((size_t)l * n + t) * D, *g = states + ((size_t)l * total + t) * D;
                double rms = 0, md = 0;
                for (int i = 0; i < D; i++) {
                    rms += (double)r[i] * r[i];
                    if (fabs(r[i] - g[i]) > md) md = fabs(r[i] - g[i]);
                }
                rms = sqrt(rms / D);
                if (md / rms > worst_state) worst_state = md / rms;
            }
        free(rs);
        /* Full logits rows, where stored. */
        if (cJSON_GetObjectItem(files, "logits")) {
            snprintf(fp, sizeof fp, "%s/llm-fixtures/refs/%s/%s.%d.logits.f32", test_data_dir(), name, name, k);
            float *rl = load_f32(fp, &ns);
            CHECK_EQ(ns, (size_t)n * V);
            for (int t = 0; t < n; t++) cmp_row(&logit, rl + (size_t)t * V, llm_ctx_logits(c, t), V, gap_std);
            free(rl);
        }
        if (cJSON_GetObjectItem(files, "logits_last")) {
            snprintf(fp, sizeof fp, "%s/llm-fixtures/refs/%s/%s.%d.logits-last.f32", test_data_dir(), name, name, k);
            float *rl = load_f32(fp, &ns);
            CHECK_EQ(ns, (size_t)V);
            cmp_row(&logit, rl, llm_ctx_logits(c, n - 1), V, gap_std);
            free(rl);
        }
        /* Top-10 ids and row statistics at every position. */
        if (cJSON_GetObjectItem(files, "topk")) {
            snprintf(fp, sizeof fp, "%s/llm-fixtures/refs/%s/%s.%d.topk.jsonl", test_data_dir(), name, name, k);
            sb s;
            sb_init(&s);
            file_read(fp, &s, &err);
            int pos = 0;
            for (char *line = s.buf; line && *line; pos++) {
                char *nl = strchr(line, '\n');
                if (nl) *nl = 0;
                cJSON *j = cJSON_Parse(line);
                line = nl ? nl + 1 : NULL;
                const float *g = llm_ctx_logits(c, pos);
                double sd = cJSON_GetObjectItem(j, "std")->valuedouble;
                cJSON *top = cJSON_GetObjectItem(j, "top");
                double gap = cJSON_GetArrayItem(cJSON_GetArrayItem(top, 0), 1)->valuedouble -
                             cJSON_GetArrayItem(cJSON_GetArrayItem(top, 1), 1)->valuedouble;
                for (int i = 0; i < cJSON_GetArraySize(top); i++) {
                    cJSON *e = cJSON_GetArrayItem(top, i);
                    int id = cJSON_GetArrayItem(e, 0)->valueint;
                    double d = fabs(cJSON_GetArrayItem(e, 1)->valuedouble - g[id]) / sd;
                    if (d > logit.max_std) logit.max_std = d;
                }
                if (argmax(g, V) != cJSON_GetArrayItem(cJSON_GetArrayItem(top, 0), 0)->valueint && gap > gap_std * sd)
                    topk_bad++;
                cJSON_Delete(j);
            }
            sb_deinit(&s);
        }
        /* Greedy steps, teacher-forced. */
        snprintf(fp, sizeof fp, "%s/llm-fixtures/refs/%s/%s.%d.greedy.jsonl", test_data_dir(), name, name, k);
        sb s;
        sb_init(&s);
        file_read(fp, &s, &err);
        int step = 0;
        for (char *line = s.buf; line && *line; step++) {
            char *nl = strchr(line, '\n');
            if (nl) *nl = 0;
            cJSON *j = cJSON_Parse(line);
            line = nl ? nl + 1 : NULL;
            const float *g = llm_ctx_logits(c, n - 1 + step);
            double sd = row_std(g, V), margin = cJSON_GetObjectItem(j, "margin")->valuedouble;
            int chosen = cJSON_GetObjectItem(j, "chosen")->valueint;
            cJSON *top = cJSON_GetObjectItem(j, "top5");
            for (int i = 0; i < cJSON_GetArraySize(top); i++) {
                cJSON *e = cJSON_GetArrayItem(top, i);
                double d = fabs(cJSON_GetArrayItem(e, 1)->valuedouble - g[cJSON_GetArrayItem(e, 0)->valueint]) / sd;
                if (d > greedy.max_std) greedy.max_std = d;
            }
            if (argmax(g, V) != chosen && margin > gap_std * sd) greedy_bad++;
            greedy_steps++;
            cJSON_Delete(j);
        }
        sb_deinit(&s);
        free(states);
        free(ids);
        llm_ctx_free(c);
    }
    double rms = logit.n ? sqrt(logit.sum_sq / logit.n) : 0;
    printf("%-24s %-6s t%d  logits max/std %.2e rms/std %.2e  states %.2e  greedy max/std %.2e  top1 misses %d/%d/%d\n",
           name, kernels ? kernels->name : "best", threads, logit.max_std, rms, worst_state, greedy.max_std,
           logit.top1_bad, topk_bad, greedy_bad);
    CHECK(logit.max_std <= T.max_std);
    CHECK(rms <= T.rms_std);
    CHECK(worst_state <= T.states);
    CHECK(greedy.max_std <= T.max_std * 2); /* single-token vs batch in the reference */
    CHECK_EQ(logit.top1_bad + topk_bad, 0);
    CHECK_EQ(greedy_bad, 0);
    CHECK_EQ(greedy_steps, 32 * cJSON_GetArraySize(cJSON_GetObjectItem(meta, "prompts")));
out:
    llm_lora_free(lora);
    llm_model_free(m);
    cJSON_Delete(meta);
    free(mp);
    free(pj);
}

static const tol TOL_F32 = {1e-4, 1e-5, 1e-4};
static const tol TOL_F16 = {0.02, 5e-4, 5e-3};
static const tol TOL_Q = {0.5, 0.01, 0.1};

static void test_forward_f32(void) {
    check_model("stories260K-F32", TOL_F32, 1e-4, NULL, 1);
    check_model("tiny-llama-spm-F32", TOL_F32, 1e-4, NULL, 1);
    check_model("tiny-qwen2-bpe-F32", TOL_F32, 1e-4, NULL, 2);
    check_model("tiny-llama3-bpe-F32", TOL_F32, 1e-4, NULL, 1);
    check_model("tiny-smollm-bpe-F32", TOL_F32, 1e-4, NULL, 1);
}

/* LoRA adapters at run time against llama.cpp's runs of the same adapter
 * at scales 1.0 and 0.5. */
static void test_forward_lora(void) {
    check_model("tiny-llama-spm-lora-r4-F32-scale1", TOL_F32, 1e-4, NULL, 1);
    check_model("tiny-llama-spm-lora-r4-F32-scale0p5", TOL_F32, 1e-4, NULL, 2);
}

/* An adapter is refused for a model it does not fit, by name; a model file
 * is not an adapter. */
static void test_lora_refusals(void) {
    char *ap = test_data_path("llm-fixtures/models/tiny-llama-spm-lora-r4-F32.gguf");
    const char *others[] = {"llm-fixtures/models/tiny-qwen2-bpe-F32.gguf", "tinyllamas-stories260K/stories260K.gguf",
                            "llm-fixtures/models/tiny-llama-spm-F32.gguf"};
    const char *want[] = {"an adapter for 'llama'", "do not fit", "not an adapter"};
    for (int i = 0; i < 3; i++) {
        char *mp = test_data_path(others[i]);
        llm_model *m = NULL;
        tailor_error err = {0};
        CHECK_EQ(llm_model_load(mp, &m, &err), 0);
        llm_lora *l = NULL;
        /* The third: the base model's own file given as the adapter. */
        CHECK(llm_lora_load(m, i == 2 ? mp : ap, &l, &err) != 0);
        CHECK(l == NULL);
        CHECK_CONTAINS(err.msg, want[i]);
        llm_model_free(m);
        free(mp);
    }
    /* Through the C API: the adapter moves the logits (llama.cpp: up to 38
     * at scale 1); at scale 0, and once removed, they are the base's bit
     * for bit; the first greedy token is the reference's (10487). */
    char *bp = test_data_path("llm-fixtures/models/tiny-llama-spm-F32.gguf");
    tailor_llm_model *tm = NULL;
    tailor_llm_ctx *tc = NULL;
    tailor_error err = {0};
    CHECK_EQ(tailor_llm_model_load(bp, tailor_llm_model_default_params(), &tm, &err), 0);
    CHECK_EQ(tailor_llm_ctx_new(tm, tailor_llm_ctx_default_params(), &tc, &err), 0);
    const int32_t ids[] = {1, 9038, 2501, 263, 931};
    enum { V = 32000 };
    float *base = malloc(V * sizeof *base), *with = malloc(V * sizeof *with);
    CHECK_EQ(tailor_llm_decode(tc, ids, 5, &err), 0);
    memcpy(base, tailor_llm_logits(tc), V * sizeof *base);
    CHECK_EQ(tailor_llm_ctx_set_lora(tc, ap, 1.0f, &err), 0);
    CHECK_EQ(tailor_llm_ctx_n_past(tc), 0);
    CHECK_EQ(tailor_llm_decode(tc, ids, 5, &err), 0);
    memcpy(with, tailor_llm_logits(tc), V * sizeof *with);
    CHECK_EQ(argmax(with, V), 10487);
    double moved = 0;
    for (int i = 0; i < V; i++) moved = fmax(moved, fabs(with[i] - base[i]));
    CHECK(moved > 1.0);
    CHECK_EQ(tailor_llm_ctx_set_lora(tc, ap, 0.0f, &err), 0);
    CHECK_EQ(tailor_llm_decode(tc, ids, 5, &err), 0);
    CHECK(memcmp(tailor_llm_logits(tc), base, V * sizeof *base) == 0);
    CHECK_EQ(tailor_llm_ctx_set_lora(tc, ap, 1.0f, &err), 0);
    CHECK_EQ(tailor_llm_ctx_set_lora(tc, NULL, 0, &err), 0);
    CHECK_EQ(tailor_llm_decode(tc, ids, 5, &err), 0);
    CHECK(memcmp(tailor_llm_logits(tc), base, V * sizeof *base) == 0);
    CHECK(tailor_llm_ctx_set_lora(tc, bp, 1.0f, &err) != 0); /* a model is not an adapter */
    free(base), free(with);
    tailor_llm_ctx_free(tc);
    tailor_llm_model_free(tm);
    free(bp);
    free(ap);
}

/* The blocked attention of prompt chunks (16 tokens x 64 keys at a time,
 * online softmax) against the token-by-token path, in a whole model whose
 * heads are 32 wide (the fixtures' are 8, below the AVX-512 kernel's 16):
 * a 150-token prompt crosses three key blocks; KV caches F32 and F16. */
static void blocked_attention_model(const llm_kernels *fast) {
    char *mp = test_data_path("llm-fixtures/models/tiny-llama-spm-F32.gguf");
    llm_model *tok = NULL;
    tailor_error err = {0};
    CHECK_EQ(llm_model_load(mp, &tok, &err), 0);
    free(mp);
    if (!tok) return;
    nn_llama_config cfg = {tok->hp.n_vocab, 64, 2, 2, 1, 96, 32, 10000.0f, 1.0f, 1e-5f, false, true, false};
    nn_llama *t = NULL;
    CHECK_EQ(nn_llama_new(&cfg, &t, &err), 0);
    rng g;
    rng_seed(&g, 5);
    nn_init_normal(t->params, t->n_params, 0.08f, &g);
    for (int l = 0; l < cfg.n_layer; l++)
        for (int i = 0; i < cfg.n_embd; i++) t->p.layers[l].attn_norm[i] = t->p.layers[l].ffn_norm[i] = 1.0f;
    for (int i = 0; i < cfg.n_embd; i++) t->p.output_norm[i] = 1.0f;
    char *dir = test_tmpdir(), path[600];
    snprintf(path, sizeof path, "%s/heads32.gguf", dir);
    CHECK_EQ(llm_train_write(t, "llama", "heads32", tok->gguf, 256, NULL, path, &err), 0);
    llm_model *m = NULL;
    CHECK_EQ(llm_model_load(path, &m, &err), 0);
    enum { T = 150 };
    int32_t ids[T];
    for (int i = 0; i < T; i++) ids[i] = 3 + (int32_t)rng_below(&g, (uint64_t)tok->hp.n_vocab - 3);
    /* the same kernels with the token-by-token attention */
    llm_kernels token_path = *fast;
    token_path.att = NULL;
    const llm_type kv[] = {LLM_TYPE_F32, LLM_TYPE_F16};
    for (int k = 0; m && k < 2; k++) {
        int V = m->hp.n_vocab;
        float *ref = malloc((size_t)T * V * 4);
        for (int pass = 0; pass < 2; pass++) {
            llm_ctx_params cp = llm_ctx_default_params();
            cp.n_ctx = 256;
            cp.n_threads = 2;
            cp.kv_type = kv[k];
            cp.kernels = pass ? fast : &token_path;
            llm_ctx *c = NULL;
            CHECK_EQ(llm_ctx_new(m, cp, &c, &err), 0);
            if (!c) break;
            /* 100 tokens, then 50 more: the second chunk's blocks see cached keys */
            CHECK_EQ(llm_decode(c, ids, 100, true, &err), 0);
            if (!pass)
                for (int i = 0; i < 100; i++) memcpy(ref + (size_t)i * V, llm_ctx_logits(c, i), (size_t)V * 4);
            double worst = 0;
            for (int i = 0; pass && i < 100; i++) {
                double sd = row_std(ref + (size_t)i * V, V);
                for (int v = 0; v < V; v++)
                    worst = fmax(worst, fabs(llm_ctx_logits(c, i)[v] - ref[(size_t)i * V + v]) / sd);
            }
            CHECK_EQ(llm_decode(c, ids + 100, T - 100, true, &err), 0);
            for (int i = 0; i < T - 100; i++) {
                if (!pass) memcpy(ref + (size_t)(100 + i) * V, llm_ctx_logits(c, i), (size_t)V * 4);
                else {
                    double sd = row_std(ref + (size_t)(100 + i) * V, V);
                    for (int v = 0; v < V; v++)
                        worst = fmax(worst, fabs(llm_ctx_logits(c, i)[v] - ref[(size_t)(100 + i) * V + v]) / sd);
                }
            }
            if (pass) {
                printf("  blocked attention (%s) vs token path, KV %s: logits max|d|/std %.2e\n", fast->name,
                       llm_type_get(kv[k])->name, worst);
                /* F16: a sum that differs in its last bit can round a later
                 * layer's cached key to the next half (2^-11 relative) */
                CHECK(worst < (kv[k] == LLM_TYPE_F32 ? 2e-5 : 5e-4));
            }
            llm_ctx_free(c);
        }
        free(ref);
    }
    llm_model_free(m);
    nn_llama_free(t);
    llm_model_free(tok);
    test_rmtree(dir);
    free(dir);
}

static void test_blocked_attention_model(void) {
    const char *names[] = {"avx2", "avx512"};
    for (int i = 0; i < 2; i++) {
        const llm_kernels *k = llm_kernels_named(names[i]);
        if (k && k->att) blocked_attention_model(k);
        else fprintf(stderr, "note: this CPU cannot run the %s attention kernel; its blocked path was not run here\n", names[i]);
    }
}

/* The training forward (src/nn) against the inference engine on the
 * fixture models: the same logits within float tolerance, a sequence's
 * logits independent of the batch beside it; the model written back by
 * llm_train_write loads and gives the engine's logits bit for bit. */
static void test_train_forward(void) {
    const char *files[] = {"llm-fixtures/models/tiny-llama-spm-F32.gguf", "llm-fixtures/models/tiny-qwen2-bpe-F32.gguf"};
    for (int f = 0; f < 2; f++) {
        char *mp = test_data_path(files[f]);
        llm_model *m = NULL;
        tailor_error err = {0};
        CHECK_EQ(llm_model_load(mp, &m, &err), 0);
        nn_llama *t = NULL;
        CHECK_EQ(llm_train_from_model(m, &t, &err), 0);
        if (!t) {
            llm_model_free(m);
            free(mp);
            continue;
        }
        enum { T = 13 };
        int V = m->hp.n_vocab;
        int32_t ids[2 * T];
        rng r;
        rng_seed(&r, 21);
        for (int i = 0; i < 2 * T; i++) ids[i] = 3 + (int32_t)rng_below(&r, (uint64_t)V - 3);
        llm_ctx_params cp = llm_ctx_default_params();
        cp.n_ctx = 64;
        cp.n_threads = 1;
        llm_ctx *c = NULL;
        CHECK_EQ(llm_ctx_new(m, cp, &c, &err), 0);
        CHECK_EQ(llm_decode(c, ids, T, true, &err), 0);
        float *eng = malloc((size_t)T * V * sizeof *eng);
        for (int i = 0; i < T; i++) memcpy(eng + (size_t)i * V, llm_ctx_logits(c, i), (size_t)V * sizeof *eng);
        nn_llama_forward(t, ids, NULL, 2, T); /* two sequences: ids[0..T) and ids[T..2T) */
        double worst = 0;
        for (int i = 0; i < T; i++) {
            double sd = row_std(eng + (size_t)i * V, V);
            for (int v = 0; v < V; v++)
                worst = fmax(worst, fabs(t->logits[(size_t)i * V + v] - eng[(size_t)i * V + v]) / sd);
        }
        printf("  train forward vs engine, %s: logits max|d|/std %.2e\n", files[f], worst);
        CHECK(worst < 1e-4);
        /* The second sequence alone gives what it gave beside the first
         * (up to the matrix products' blocking, which follows the batch). */
        float *second = malloc((size_t)T * V * sizeof *second);
        memcpy(second, t->logits + (size_t)T * V, (size_t)T * V * sizeof *second);
        nn_llama_forward(t, ids + T, NULL, 1, T);
        double moved = 0;
        for (size_t i = 0; i < (size_t)T * V; i++) moved = fmax(moved, fabs(second[i] - t->logits[i]));
        CHECK(moved < 1e-4);
        /* Written back and loaded: the engine's own numbers. */
        char *dir = test_tmpdir(), path[600];
        snprintf(path, sizeof path, "%s/w.gguf", dir);
        CHECK_EQ(llm_train_write(t, m->arch_name, "roundtrip", m->gguf, 256, NULL, path, &err), 0);
        llm_model *m2 = NULL;
        CHECK_EQ(llm_model_load(path, &m2, &err), 0);
        if (m2) {
            llm_ctx *c2 = NULL;
            CHECK_EQ(llm_ctx_new(m2, cp, &c2, &err), 0);
            CHECK_EQ(llm_decode(c2, ids, T, true, &err), 0);
            int same = 0;
            for (int i = 0; i < T; i++) same += !memcmp(llm_ctx_logits(c2, i), eng + (size_t)i * V, (size_t)V * 4);
            CHECK_EQ(same, T);
            llm_ctx_free(c2);
            llm_model_free(m2);
        }
        test_rmtree(dir);
        free(dir);
        free(second);
        free(eng);
        llm_ctx_free(c);
        nn_llama_free(t);
        llm_model_free(m);
        free(mp);
    }
}

/* A LoRA adapter trained by tailor: written in llama.cpp's format, loaded
 * by the engine, it gives the training forward's logits; merged into the
 * weights, the plain model gives them too. */
static void test_train_lora_roundtrip(void) {
    char *mp = test_data_path("llm-fixtures/models/tiny-llama-spm-F32.gguf");
    llm_model *m = NULL;
    tailor_error err = {0};
    CHECK_EQ(llm_model_load(mp, &m, &err), 0);
    nn_llama *t = NULL;
    CHECK_EQ(llm_train_from_model(m, &t, &err), 0);
    if (!t) goto out;
    nn_llama_add_lora(t, 4, 8.0f, (1u << NN_LORA_Q) | (1u << NN_LORA_V) | (1u << NN_LORA_UP) | (1u << NN_LORA_DOWN) |
                                      (1u << NN_LORA_O),
                      3);
    rng r;
    rng_seed(&r, 4);
    for (size_t i = 0; i < t->lora->n_params; i++) t->lora->params[i] = (float)rng_normal(&r) * 0.1f;
    enum { T = 9 };
    const int32_t ids[T] = {1, 9038, 2501, 263, 931, 727, 471, 263, 2217};
    int V = m->hp.n_vocab;
    nn_llama_forward(t, ids, NULL, 1, T);
    float *want = malloc((size_t)T * V * sizeof *want);
    memcpy(want, t->logits, (size_t)T * V * sizeof *want);
    char *dir = test_tmpdir(), ap[600], fp[600];
    snprintf(ap, sizeof ap, "%s/a.gguf", dir);
    snprintf(fp, sizeof fp, "%s/merged.gguf", dir);
    CHECK_EQ(llm_train_write_lora(t, m, "test", ap, &err), 0);
    llm_ctx_params cp = llm_ctx_default_params();
    cp.n_ctx = 32;
    cp.n_threads = 1;
    llm_ctx *c = NULL;
    CHECK_EQ(llm_ctx_new(m, cp, &c, &err), 0);
    CHECK_EQ(llm_ctx_load_lora(c, ap, 1.0f, &err), 0);
    CHECK_EQ(llm_decode(c, ids, T, true, &err), 0);
    double worst = 0, moved = 0;
    nn_llama *plain = NULL;
    CHECK_EQ(llm_train_from_model(m, &plain, &err), 0);
    nn_llama_forward(plain, ids, NULL, 1, T);
    for (int i = 0; i < T; i++) {
        const float *g = llm_ctx_logits(c, i), *w = want + (size_t)i * V;
        double sd = row_std(w, V);
        for (int v = 0; v < V; v++) {
            worst = fmax(worst, fabs(g[v] - w[v]) / sd);
            moved = fmax(moved, fabs(plain->logits[(size_t)i * V + v] - w[v]) / sd);
        }
    }
    printf("  tailor's adapter in the engine: max|d|/std %.2e (the adapter moves the logits by %.2f std)\n", worst, moved);
    CHECK(worst < 1e-4);
    CHECK(moved > 0.01);
    /* Merged: the plain model file gives the same. */
    llm_train_merge_lora(t);
    CHECK_EQ(llm_train_write(t, "llama", "merged", m->gguf, 64, NULL, fp, &err), 0);
    llm_model *mm = NULL;
    CHECK_EQ(llm_model_load(fp, &mm, &err), 0);
    if (mm) {
        llm_ctx *c2 = NULL;
        CHECK_EQ(llm_ctx_new(mm, cp, &c2, &err), 0);
        CHECK_EQ(llm_decode(c2, ids, T, true, &err), 0);
        double wm = 0;
        for (int i = 0; i < T; i++) {
            double sd = row_std(want + (size_t)i * V, V);
            for (int v = 0; v < V; v++) wm = fmax(wm, fabs(llm_ctx_logits(c2, i)[v] - want[(size_t)i * V + v]) / sd);
        }
        printf("  merged: max|d|/std %.2e\n", wm);
        CHECK(wm < 1e-4);
        llm_ctx_free(c2);
        llm_model_free(mm);
    }
    llm_ctx_free(c);
    nn_llama_free(plain);
    nn_llama_free(t);
    free(want);
    test_rmtree(dir);
    free(dir);
out:
    llm_model_free(m);
    free(mp);
}

/* Validation picks the checkpoint: the held-out examples want the
 * opposite of the training ones, so their loss rises as training goes
 * on; the run keeps its best step's adapter, which is bit for bit the
 * adapter of a run stopped at that step (warm-up longer than the run
 * keeps the learning rate of a step independent of the run's length). */
static void test_finetune_keeps_best(void) {
    char *mp = test_data_path("tinyllamas-stories260K/stories260K.gguf");
    llm_model *m = NULL;
    tailor_error err = {0};
    CHECK_EQ(llm_model_load(mp, &m, &err), 0);
    free(mp);
    if (!m) return;
    char *dir = test_tmpdir(), data[600];
    snprintf(data, sizeof data, "%s/ft.jsonl", dir);
    FILE *f = fopen(data, "w");
    static const char *const animals[] = {"cat", "dog", "bird", "fish", "horse", "mouse", "frog", "bear"};
    for (int i = 0; i < 40; i++) /* the last 10 (25%) held out, with the other answer */
        fprintf(f, "{\"prompt\": \"Is a %s an animal? Answer:\", \"completion\": \"%s\"}\n", animals[i % 8],
                i < 30 ? " yes" : " no");
    fclose(f);
    llm_finetune_params p = llm_finetune_default_params();
    p.data = data, p.val_share = 0.25, p.steps = 12, p.eval_every = 1, p.warmup = 1000, p.lr = 5.0f, p.threads = 1;
    p.quiet = true;
    nn_llama *a = NULL, *b = NULL;
    llm_train_report ra, rb;
    CHECK_EQ(llm_train_frozen(m, &a, &err), 0);
    CHECK_EQ(llm_train_frozen(m, &b, &err), 0);
    if (!a || !b) goto out;
    nn_llama_add_lora(a, 4, 8.0f, 1u << 0 | 1u << 2, 7);
    nn_llama_add_lora(b, 4, 8.0f, 1u << 0 | 1u << 2, 7);
    CHECK_EQ(llm_finetune_run(a, m, p, &ra, &err), 0);
    printf("  validation picks the checkpoint: step %lld of %lld kept (%.4f; last %.4f)\n", (long long)ra.best_step,
           (long long)ra.steps, ra.val_loss, ra.last_val_loss);
    CHECK_EQ(ra.evals, 12);
    CHECK(ra.best_step >= 1 && ra.best_step < ra.steps && ra.val_loss < ra.last_val_loss);
    p.steps = ra.best_step, p.eval_every = 0;
    CHECK_EQ(llm_finetune_run(b, m, p, &rb, &err), 0);
    CHECK(rb.val_loss == ra.val_loss && rb.evals == 1 && rb.best_step == rb.steps);
    CHECK(memcmp(a->lora->params, b->lora->params, a->lora->n_params * 4) == 0);
out:
    nn_llama_free(a);
    nn_llama_free(b);
    llm_model_free(m);
    test_rmtree(dir);
    free(dir);
}

/* QLoRA-style: a quantized base kept in its file's blocks (llm_train_frozen,
 * each matrix dequantized just before its product) trains the same adapter
 * as the base dequantized whole: the same loss and LoRA gradients (up to
 * the output product's blocking), with and without checkpointing, and the
 * frozen model holds no matrix of its own. */
static void test_train_frozen_base(void) {
    const char *files[] = {"llm-fixtures/models/tiny-llama-spm-Q4_K_M.gguf", "llm-fixtures/models/tiny-qwen2-bpe-Q4_K_M.gguf"};
    for (int f = 0; f < 2; f++) {
        char *mp = test_data_path(files[f]);
        llm_model *m = NULL;
        tailor_error err = {0};
        CHECK_EQ(llm_model_load(mp, &m, &err), 0);
        nn_llama *whole = NULL, *frozen = NULL;
        CHECK_EQ(llm_train_from_model(m, &whole, &err), 0);
        CHECK_EQ(llm_train_frozen(m, &frozen, &err), 0);
        if (!whole || !frozen) goto next;
        CHECK(frozen->n_params * 20 < nn_llama_n_weights(&frozen->c)); /* norms and biases only */
        CHECK(frozen->grads == NULL && frozen->p.tok_embd == NULL && frozen->p.layers[0].wq == NULL);
        unsigned all = (1u << NN_LORA_SLOTS) - 1;
        nn_llama_add_lora(whole, 4, 8.0f, all, 3);
        nn_llama_add_lora(frozen, 4, 8.0f, all, 3);
        CHECK_EQ(whole->lora->n_params, frozen->lora->n_params);
        rng r;
        rng_seed(&r, 5);
        for (size_t i = 0; i < whole->lora->n_params; i++)
            whole->lora->params[i] = frozen->lora->params[i] = (float)rng_normal(&r) * 0.05f;
        enum { B = 2, T = 11 };
        int32_t tok[B * T], tgt[B * T];
        for (int i = 0; i < B * T; i++) {
            tok[i] = 3 + (int32_t)rng_below(&r, (uint64_t)m->hp.n_vocab - 3);
            tgt[i] = i % 5 == 0 ? -1 : 3 + (int32_t)rng_below(&r, (uint64_t)m->hp.n_vocab - 3);
        }
        size_t np = whole->lora->n_params;
        float lw = nn_llama_forward(whole, tok, tgt, B, T);
        memset(whole->lora->grads, 0, np * 4);
        nn_llama_backward(whole);
        for (int ck = 0; ck < 2; ck++) {
            frozen->checkpoint = ck;
            float lf = nn_llama_forward(frozen, tok, tgt, B, T);
            memset(frozen->lora->grads, 0, np * 4);
            nn_llama_backward(frozen);
            double gmax = 0, gd = 0;
            for (size_t i = 0; i < np; i++) {
                gmax = fmax(gmax, fabs(whole->lora->grads[i]));
                gd = fmax(gd, fabs(whole->lora->grads[i] - frozen->lora->grads[i]));
            }
            printf("  frozen %s base%s: loss %.6f vs %.6f, LoRA gradients max|d| %.2e of max %.2e\n", files[f] + 20,
                   ck ? " (checkpointing)" : "", lf, lw, gd, gmax);
            CHECK(fabs(lf - lw) <= 1e-5 * fabs(lw));
            CHECK(gmax > 0 && gd <= 1e-4 * gmax);
        }
    next:
        nn_llama_free(whole);
        nn_llama_free(frozen);
        llm_model_free(m);
        free(mp);
    }
}

/* A byte-level BPE tokenizer trained on MovieLens titles: the size asked
 * for, every line back exactly from its tokens (including bytes never
 * seen in training), fewer tokens than bytes, and the same file from the
 * same text. */
static void test_bpe_train(void) {
    char *mp = test_data_path("ml-latest-small/movies.csv");
    sb text;
    sb_init(&text);
    tailor_error err = {0};
    CHECK_EQ(file_read(mp, &text, &err), 0);
    char *dir = test_tmpdir(), p1[600], p2[600];
    snprintf(p1, sizeof p1, "%s/a.gguf", dir);
    snprintf(p2, sizeof p2, "%s/b.gguf", dir);
    CHECK_EQ(llm_bpe_train(text.buf, text.len, 600, NULL, p1, true, &err), 0);
    CHECK_EQ(llm_bpe_train(text.buf, text.len, 600, NULL, p2, true, &err), 0);
    sb f1, f2;
    sb_init(&f1);
    sb_init(&f2);
    file_read(p1, &f1, &err);
    file_read(p2, &f2, &err);
    CHECK(f1.len == f2.len && !memcmp(f1.buf, f2.buf, f1.len));
    llm_model *m = NULL;
    CHECK_EQ(llm_model_load_ex(p1, true, &m, &err), 0);
    if (m) {
        CHECK_EQ(m->hp.n_vocab, 600);
        const char *lines[] = {"Toy Story (1995)", "Amélie (Fabuleux destin d'Amélie Poulain, Le) (2001)",
                               "  two  spaces\tand a tab", "emoji \xF0\x9F\x8E\xAC and \x01 control", ""};
        int64_t bytes = 0, toks = 0;
        for (char *line = text.buf; line && line < text.buf + text.len && toks < 200000;) {
            char *nl = memchr(line, '\n', (size_t)(text.buf + text.len - line));
            size_t len = nl ? (size_t)(nl - line) : (size_t)(text.buf + text.len - line);
            int64_t n;
            int32_t *ids = llm_tokenize_alloc(m->vocab, line, len, false, false, &n);
            sb back;
            sb_init(&back);
            llm_detokenize(m->vocab, ids, n, false, &back);
            CHECK(back.len == len && !memcmp(back.buf, line, len));
            bytes += (int64_t)len, toks += n;
            sb_deinit(&back);
            free(ids);
            line = nl ? nl + 1 : NULL;
        }
        for (int i = 0; lines[i][0]; i++) {
            int64_t n;
            int32_t *ids = llm_tokenize_alloc(m->vocab, lines[i], strlen(lines[i]), false, false, &n);
            sb back;
            sb_init(&back);
            llm_detokenize(m->vocab, ids, n, false, &back);
            CHECK_STR(sb_str(&back), lines[i]);
            sb_deinit(&back);
            free(ids);
        }
        printf("  bpe 600: %.2f bytes per token on the training text\n", (double)bytes / (double)toks);
        CHECK(toks * 3 < bytes * 2); /* over 1.5 bytes a token, digits (one token each) included */
        llm_model_free(m);
    }
    /* With ChatML's markers: two control tokens (the second ends a turn),
     * one id each in rendered text, and the template the agent detects. */
    CHECK_EQ(llm_bpe_train(text.buf, text.len, 600, "chatml", p2, true, &err), 0);
    m = NULL;
    CHECK_EQ(llm_model_load_ex(p2, true, &m, &err), 0);
    if (m) {
        CHECK_EQ(m->hp.n_vocab, 600);
        CHECK_STR(llm_chat_detect(m->chat_template), "chatml");
        const char *turn = "<|im_start|>user\nToy Story<|im_end|>\n";
        int64_t n;
        int32_t *ids = llm_tokenize_alloc(m->vocab, turn, strlen(turn), false, true, &n);
        int32_t start = llm_vocab_find(m->vocab, "<|im_start|>", 12), end = llm_vocab_find(m->vocab, "<|im_end|>", 10);
        CHECK(n > 3 && ids[0] == start && start >= 0);
        bool found = false;
        for (int64_t i = 0; i < n; i++) found |= ids[i] == end;
        CHECK(found && llm_vocab_is_eog(m->vocab, end));
        free(ids);
        llm_model_free(m);
    }
    sb_deinit(&f1), sb_deinit(&f2), sb_deinit(&text);
    CHECK(llm_bpe_train("abc", 3, 100, NULL, p1, true, &err) != 0); /* fewer than the 256 bytes and more */
    CHECK(llm_bpe_train("abc", 3, 300, "llama3", p1, true, &err) != 0); /* markers of ChatML only */
    test_rmtree(dir);
    free(dir);
    free(mp);
}

static void test_forward_f16(void) { check_model("tiny-llama-spm-F16", TOL_F16, 0.05, NULL, 2); }

static void test_forward_quantized(void) {
    check_model("stories260K-Q8_0", TOL_Q, 0.1, NULL, 1);
    check_model("stories260K-Q4_0", TOL_Q, 0.1, NULL, 2);
    check_model("tiny-llama-spm-Q4_0", TOL_Q, 0.1, NULL, 1);
    check_model("tiny-llama-spm-Q4_K_M", TOL_Q, 0.1, NULL, 1);
    check_model("tiny-qwen2-bpe-Q4_K_M", TOL_Q, 0.1, NULL, 2);
}

/* A model laid out for the kernels at load (where the best set gains from
 * the layout) gives the logits of the file's layout with every kernel set,
 * and readers of the weights (the trainer) see the file's values. */
static void check_repacked_model(const char *file, int vocab) {
    char *mp = file[0] == '/' ? strdup(file) : test_data_path(file);
    tailor_error err = {0};
    llm_model *m[2] = {NULL, NULL};
    setenv("TAILOR_LLM_REPACK", "0", 1);
    CHECK_EQ(llm_model_load(mp, &m[0], &err), 0);
    unsetenv("TAILOR_LLM_REPACK");
    CHECK_EQ(llm_model_load(mp, &m[1], &err), 0);
    if (!m[0] || !m[1]) goto out;
    CHECK_EQ(m[0]->hp.n_vocab, vocab);
    /* a layer's matrix, or else the output */
    bool in_layer = llm_r16_fits(m[0]->layers[0].ffn_down);
    const llm_tensor *g0 = in_layer ? m[0]->layers[0].ffn_down : m[0]->output,
                     *g1 = in_layer ? m[1]->layers[0].ffn_down : m[1]->output;
    CHECK(llm_r16_fits(g0));
    CHECK_EQ(g0->layout, LLM_LAYOUT_ROWS);
    bool laid = llm_kernels_best()->r16[g0->type].lay_out;
    if (!laid) fprintf(stderr, "note: this CPU's best kernels do not lay %s out; the layout was not run here\n",
                       llm_type_get(g0->type)->name);
    CHECK_EQ(g1->layout, laid ? LLM_LAYOUT_R16 : LLM_LAYOUT_ROWS);
    /* an embedding only looked up stays as it is */
    if (m[1]->output != m[1]->tok_embd) CHECK_EQ(m[1]->tok_embd->layout, LLM_LAYOUT_ROWS);
    if (laid) CHECK(memcmp(g0->data, g1->data, g0->bytes) != 0);
    int64_t cols = g0->ne[0], rows = g0->ne[1];
    float *a = malloc(sizeof(float) * (size_t)(cols * rows)), *b = malloc(sizeof(float) * (size_t)(cols * rows));
    llm_tensor_rows(g0, 0, rows, a, false);
    llm_tensor_rows(g1, 0, rows, b, true);
    CHECK(memcmp(a, b, sizeof(float) * (size_t)(cols * rows)) == 0);
    free(a), free(b);
    /* a prompt (tiles and their edges) and then single tokens, both layouts, every kernel set */
    int32_t ids[37];
    for (int i = 0; i < 37; i++) ids[i] = 1 + (i * 7919) % (vocab - 1);
    const char *names[] = {"scalar", "avx2", "avx512"};
    for (int s = 0; s < 3; s++) {
        const llm_kernels *k = llm_kernels_named(names[s]);
        if (!k) continue;
        float *lg[2];
        int V = m[0]->hp.n_vocab;
        for (int v = 0; v < 2; v++) {
            llm_ctx_params cp = llm_ctx_default_params();
            cp.n_ctx = 64;
            cp.n_threads = 2;
            cp.kernels = k;
            llm_ctx *c = NULL;
            CHECK_EQ(llm_ctx_new(m[v], cp, &c, &err), 0);
            lg[v] = malloc(sizeof(float) * (size_t)V * 2);
            CHECK_EQ(llm_decode(c, ids, 35, false, &err), 0);
            memcpy(lg[v], llm_ctx_logits(c, -1), sizeof(float) * (size_t)V);
            CHECK_EQ(llm_decode(c, ids + 35, 1, false, &err), 0);
            memcpy(lg[v] + V, llm_ctx_logits(c, -1), sizeof(float) * (size_t)V);
            llm_ctx_free(c);
        }
        double worst = 0, range = 0;
        for (int i = 0; i < 2 * V; i++) {
            worst = fmax(worst, fabs(lg[0][i] - lg[1][i]));
            range = fmax(range, fabs(lg[0][i]));
        }
        fprintf(stderr, "note: %s, %s kernels: logits of the 16-row layout within %.1e of the file's (largest %.2f)\n",
                file, names[s], worst, range);
        CHECK(range > 0.1 && worst <= 1e-4 * range);
        free(lg[0]), free(lg[1]);
    }
out:
    llm_model_free(m[0]);
    llm_model_free(m[1]);
    free(mp);
}

static void test_repacked_model(void) {
    check_repacked_model("llm-fixtures/models/tiny-llama-spm-Q4_0.gguf", 32000);      /* Q4_0 */
    check_repacked_model("llm-fixtures/models/tiny-qwen2-bpe-Q4_K_M.gguf", 50257);   /* Q5_0, Q4_K, Q6_K */
    /* A tied embedding in Q4_0 (the fixture without its output matrix):
     * laid out for the output's product, its rows looked up through the
     * layout. */
    char *src = test_data_path("llm-fixtures/models/tiny-llama-spm-F32.gguf"), *dir = test_tmpdir();
    char rel[700];
    snprintf(rel, sizeof rel, "%s/tied-q4_0.gguf", dir);
    tailor_error err = {0};
    llm_gguf *g = NULL;
    CHECK_EQ(llm_gguf_open(src, &g, &err), 0);
    if (g) {
        llm_gguf_writer *w = llm_gguf_writer_new();
        for (int64_t i = 0; i < g->n_kv; i++) llm_gguf_set_kv(w, &g->kv[i]);
        void *q = NULL;
        for (int64_t i = 0; i < g->n_tensors; i++) {
            const llm_tensor *t = &g->tensors[i];
            if (!strcmp(t->name, "output.weight")) continue;
            if (!strcmp(t->name, "token_embd.weight")) {
                int64_t rows = t->ne[1];
                size_t rb = llm_row_bytes(LLM_TYPE_Q4_0, t->ne[0]);
                q = malloc(rb * (size_t)rows);
                for (int64_t r = 0; r < rows; r++)
                    llm_quant_row(LLM_TYPE_Q4_0, (const float *)t->data + r * t->ne[0], (uint8_t *)q + r * rb, t->ne[0]);
                llm_gguf_add_tensor(w, t->name, LLM_TYPE_Q4_0, t->n_dims, t->ne, q);
            } else llm_gguf_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data);
        }
        CHECK_EQ(llm_gguf_writer_write(w, rel, &err), 0);
        llm_gguf_writer_free(w);
        free(q);
        llm_gguf_free(g);
        check_repacked_model(rel, 32000);
        llm_model *m = NULL;
        CHECK_EQ(llm_model_load(rel, &m, &err), 0);
        if (m) {
            CHECK(m->output == m->tok_embd);
            CHECK_EQ(m->tok_embd->layout, llm_kernels_best()->r16[LLM_TYPE_Q4_0].lay_out ? LLM_LAYOUT_R16 : LLM_LAYOUT_ROWS);
        }
        llm_model_free(m);
    }
    test_rmtree(dir);
    free(dir);
    free(src);
}

/* The scalar reference path gives the same results within the same
 * tolerances. */
static void test_forward_scalar(void) {
    check_model("stories260K-Q4_0", TOL_Q, 0.1, llm_kernels_scalar(), 1);
    check_model("tiny-qwen2-bpe-Q4_K_M", TOL_Q, 0.1, llm_kernels_scalar(), 1);
    check_model("tiny-llama-spm-F16", TOL_F16, 0.05, llm_kernels_scalar(), 1);
}

/* An F16 KV cache stays within the reference's own F32-vs-F16-cache
 * differences (tolerances.json, "kv16"); a Q8_0 cache is refused for heads
 * that do not split into 32-value blocks. */
static void test_kv_cache_types(void) {
    g_kv_type = LLM_TYPE_F16;
    const tol kv16 = {0.05, 2e-3, 0.02};
    check_model("stories260K-F32", kv16, 0.1, NULL, 1);
    check_model("tiny-qwen2-bpe-F32", kv16, 0.1, NULL, 2);
    g_kv_type = LLM_TYPE_F32;
    llm_model *m = load_data_model("tinyllamas-stories260K/stories260K.gguf");
    tailor_error err = {0};
    if (!m) return;
    llm_ctx_params cp = llm_ctx_default_params();
    cp.kv_type = LLM_TYPE_Q8_0;
    llm_ctx *c = NULL;
    CHECK(llm_ctx_new(m, cp, &c, &err) < 0);
    CHECK_CONTAINS(err.msg, "multiple of 32");
    llm_model_free(m);
    m = NULL;
    /* Head size 32: Q8_0 and F16 caches track the F32 one. */
    char *dir = test_tmpdir();
    char path[600];
    snprintf(path, sizeof path, "%s/kv.gguf", dir);
    llm_shape sh = {"test-kv", "llama", 64, 2, 2, 1, 128, 1000, 256, 10000.0f, 1e-6f, true, "qwen2", "chatml"};
    char *vocab = test_data_path("llm-fixtures/models/tiny-qwen2-bpe-F32.gguf");
    llm_ftype f32;
    llm_ftype_from_name("f32", &f32);
    CHECK_EQ(llm_synth(&sh, &f32, vocab, path, 9, &err), 0);
    free(vocab);
    int lrc = llm_model_load(path, &m, &err);
    if (lrc < 0) fprintf(stderr, "%s\n", err.msg);
    CHECK_EQ(lrc, 0);
    if (m) {
        int32_t ids[48];
        for (int i = 0; i < 48; i++) ids[i] = (i * 37 + 5) % 1000;
        float *ref = malloc(sizeof(float) * 48 * 1000);
        llm_type kinds[3] = {LLM_TYPE_F32, LLM_TYPE_F16, LLM_TYPE_Q8_0};
        for (int k = 0; k < 3; k++) {
            cp = llm_ctx_default_params();
            cp.n_ctx = 64;
            cp.kv_type = kinds[k];
            CHECK_EQ(llm_ctx_new(m, cp, &c, &err), 0);
            if (!c) continue;
            /* One token at a time: every step reads the cache. */
            double worst = 0;
            for (int i = 0; i < 48; i++) {
                llm_decode(c, &ids[i], 1, false, &err);
                const float *l = llm_ctx_logits(c, -1);
                if (k == 0) memcpy(ref + i * 1000, l, sizeof(float) * 1000);
                double sd = row_std(ref + i * 1000, 1000);
                for (int v = 0; v < 1000; v++) worst = fmax(worst, fabs(l[v] - ref[i * 1000 + v]) / sd);
            }
            printf("KV cache %-4s: max|dlogit|/std vs F32 %.2e\n", llm_type_get(kinds[k])->name, worst);
            CHECK(worst < (k == 0 ? 1e-9 : k == 1 ? 0.01 : 0.1));
            CHECK(k == 0 || worst > 0);
            llm_ctx_free(c);
        }
        free(ref);
        llm_model_free(m);
    }
    test_rmtree(dir);
    free(dir);
}

/* Thread count changes nothing; one-token decodes match the batch. */
static void test_threads_and_sequential(void) {
    llm_model *m = load_data_model("llm-fixtures/models/tiny-llama-spm-Q4_0.gguf");
    tailor_error err = {0};
    if (!m) return;
    int32_t ids[40];
    for (int i = 0; i < 40; i++) ids[i] = 1 + (i * 7919) % 31999;
    int V = m->hp.n_vocab;
    float *a = malloc(sizeof(float) * 40 * V), *b = malloc(sizeof(float) * 40 * V);
    for (int threads = 1; threads <= 2; threads++) {
        llm_ctx_params cp = llm_ctx_default_params();
        cp.n_ctx = 64;
        cp.n_threads = threads;
        llm_ctx *c = NULL;
        llm_ctx_new(m, cp, &c, &err);
        CHECK_EQ(llm_decode(c, ids, 40, true, &err), 0);
        memcpy(threads == 1 ? a : b, llm_ctx_logits(c, 0), sizeof(float) * 40 * V);
        llm_ctx_free(c);
    }
    CHECK(memcmp(a, b, sizeof(float) * 40 * V) == 0);
    llm_ctx_params cp = llm_ctx_default_params();
    cp.n_ctx = 64;
    llm_ctx *c = NULL;
    llm_ctx_new(m, cp, &c, &err);
    double worst = 0;
    for (int i = 0; i < 40; i++) {
        CHECK_EQ(llm_decode(c, &ids[i], 1, false, &err), 0);
        const float *g = llm_ctx_logits(c, -1);
        double sd = row_std(a + (size_t)i * V, V);
        for (int j = 0; j < V; j++) worst = fmax(worst, fabs(g[j] - a[(size_t)i * V + j]) / sd);
    }
    CHECK(worst < 1e-4); /* same activation rounding, only float order differs */
    /* Past the context: a clear error, nothing decoded. */
    CHECK(llm_decode(c, ids, 40, false, &err) < 0);
    CHECK_CONTAINS(err.msg, "exceed the context");
    CHECK_EQ(llm_ctx_n_past(c), 40);
    int32_t badtok = V + 5;
    llm_ctx_truncate(c, 10);
    CHECK(llm_decode(c, &badtok, 1, false, &err) < 0);
    CHECK_CONTAINS(err.msg, "out of range");
    llm_ctx_free(c);
    free(a);
    free(b);
    llm_model_free(m);
}

/* Types tailor cannot compute yet are refused by name, not mis-read. */
static void test_refusals(void) {
    char *dir = test_tmpdir();
    char path[600], path2[620];
    snprintf(path, sizeof path, "%s/s.gguf", dir);
    snprintf(path2, sizeof path2, "%s/iq.gguf", dir);
    llm_shape sh = {"test-tiny", "llama", 64, 1, 4, 2, 128, 1000, 256, 10000.0f, 1e-6f, true, "qwen2", "chatml"};
    char *vocab = test_data_path("llm-fixtures/models/tiny-qwen2-bpe-F32.gguf");
    tailor_error err = {0};
    llm_ftype q40;
    llm_ftype_from_name("q4_0", &q40);
    CHECK_EQ(llm_synth(&sh, &q40, vocab, path, 5, &err), 0);
    free(vocab);
    llm_gguf *g = NULL;
    CHECK_EQ(llm_gguf_open(path, &g, &err), 0);
    if (g) {
        /* IQ4_NL has Q4_0's block size: relabel one tensor. */
        llm_gguf_writer *w = llm_gguf_writer_new();
        for (int64_t i = 0; i < g->n_kv; i++) llm_gguf_set_kv(w, &g->kv[i]);
        for (int64_t i = 0; i < g->n_tensors; i++) {
            const llm_tensor *t = &g->tensors[i];
            bool relabel = strcmp(t->name, "blk.0.ffn_down.weight") == 0;
            llm_gguf_add_tensor(w, t->name, relabel ? (llm_type)20 : t->type, t->n_dims, t->ne, t->data);
        }
        CHECK_EQ(llm_gguf_writer_write(w, path2, &err), 0);
        llm_gguf_writer_free(w);
        llm_gguf_free(g);
    }
    llm_model *m = NULL;
    CHECK(llm_model_load(path2, &m, &err) < 0);
    CHECK_CONTAINS(err.msg, "IQ4_NL");
    CHECK_CONTAINS(err.msg, "blk.0.ffn_down.weight");
    CHECK_EQ(err.code, TAILOR_EUNSUPPORTED);
    test_rmtree(dir);
    free(dir);
    char *p;
    /* A vocabulary-only file has no weights: it loads for tokenizing only
     * (through the public API), and a context is refused. */
    p = test_data_path("tokenizer-refs-llamacpp/ggml-vocab-gpt-2.gguf");
    CHECK(llm_model_load(p, &m, &err) < 0);
    CHECK(err.msg[0] != 0);
    tailor_llm_model_params mp = tailor_llm_model_default_params();
    mp.vocab_only = 1;
    tailor_llm_model *tm = NULL;
    CHECK_EQ(tailor_llm_model_load(p, mp, &tm, &err), 0);
    if (tm) {
        int32_t ids[8];
        CHECK_EQ(tailor_llm_tokenize(tm, "Hello world", 11, 0, 0, ids, 8), 2);
        CHECK(ids[0] == 15496 && ids[1] == 995);
        CHECK_EQ(tailor_llm_tokenize(tm, "Hello world", 11, 0, 0, ids, 1), -2); /* buffer too small */
        char piece[16];
        CHECK_EQ(tailor_llm_token_to_piece(tm, 995, piece, sizeof piece), 6);
        CHECK(memcmp(piece, " world", 6) == 0);
        CHECK_EQ(tailor_llm_token_to_piece(tm, 995, piece, 3), -6);
        tailor_llm_ctx *tc = NULL;
        CHECK(tailor_llm_ctx_new(tm, tailor_llm_ctx_default_params(), &tc, &err) < 0);
        CHECK_CONTAINS(err.msg, "tokenization only");
        tailor_llm_model_free(tm);
    }
    free(p);
}

static void test_sampler(void) {
    float logits[5] = {1.0f, 3.0f, 2.0f, 3.0f, -1.0f};
    llm_sampler_params sp = llm_sampler_default_params();
    sp.temperature = 0;
    llm_sampler *s = llm_sampler_new(sp, 5);
    CHECK_EQ(llm_sampler_sample(s, logits, NULL, 0), 1); /* first maximum */
    int32_t hist[1] = {1};
    llm_sampler_free(s);
    sp.repeat_penalty = 2.0f;
    s = llm_sampler_new(sp, 5);
    CHECK_EQ(llm_sampler_sample(s, logits, hist, 1), 3); /* 1 was penalized */
    llm_sampler_free(s);
    /* top-k 1 at any temperature is greedy; a seed reproduces draws. */
    sp = llm_sampler_default_params();
    sp.top_k = 1;
    s = llm_sampler_new(sp, 5);
    CHECK_EQ(llm_sampler_sample(s, logits, NULL, 0), 1);
    llm_sampler_free(s);
    sp = llm_sampler_default_params();
    sp.seed = 3;
    sp.top_k = 0;
    sp.top_p = 1;
    sp.min_p = 0;
    sp.temperature = 1;
    int counts[5] = {0};
    llm_sampler *s1 = llm_sampler_new(sp, 5), *s2 = llm_sampler_new(sp, 5);
    for (int i = 0; i < 2000; i++) {
        int32_t x = llm_sampler_sample(s1, logits, NULL, 0);
        CHECK_EQ(x, llm_sampler_sample(s2, logits, NULL, 0));
        counts[x]++;
    }
    /* p(1) = e^3 / (e + 2e^3 + e^2 + e^-1) ~ 0.39 */
    CHECK(counts[1] > 700 && counts[1] < 880);
    CHECK(counts[4] < 20);
    llm_sampler_free(s1);
    llm_sampler_free(s2);
    /* min-p 0.5 keeps only tokens within half of the best probability. */
    sp.min_p = 0.5f;
    s = llm_sampler_new(sp, 5);
    for (int i = 0; i < 200; i++) {
        int32_t x = llm_sampler_sample(s, logits, NULL, 0);
        CHECK(x == 1 || x == 3);
    }
    llm_sampler_free(s);
    /* Drawing among allowed tokens only is the draw with the others at minus
     * infinity, token for token, for every chain (greedy, plain, top-k,
     * top-p, min-p, penalties). */
    enum { NV = 3000 };
    float *lg = xmalloc(NV * sizeof *lg), *inf = xmalloc(NV * sizeof *inf);
    unsigned char *allow = xmalloc(NV);
    rng r;
    rng_seed(&r, 11);
    llm_sampler_params chains[5] = {llm_sampler_default_params(), llm_sampler_default_params(),
                                    llm_sampler_default_params(), llm_sampler_default_params(),
                                    llm_sampler_default_params()};
    chains[0].temperature = 0;
    chains[1].top_k = 0, chains[1].top_p = 1, chains[1].min_p = 0, chains[1].temperature = 1;
    chains[2].top_k = 5;
    chains[3].top_k = 0, chains[3].min_p = 0, chains[3].top_p = 0.5f;
    chains[4].repeat_penalty = 1.3f, chains[4].presence_penalty = 0.5f;
    int same = 0, total = 0;
    for (int ch = 0; ch < 5; ch++) {
        chains[ch].seed = 5 + (uint64_t)ch;
        llm_sampler *a = llm_sampler_new(chains[ch], NV), *b = llm_sampler_new(chains[ch], NV);
        for (int t = 0; t < 200; t++) {
            int kept = 0;
            for (int i = 0; i < NV; i++) {
                lg[i] = (float)rng_normal(&r) * 3;
                allow[i] = rng_below(&r, t % 2 ? 3 : 300) == 0; /* many allowed, or a few */
                kept += allow[i];
                inf[i] = allow[i] ? lg[i] : -INFINITY;
            }
            if (!kept) allow[7] = 1, inf[7] = lg[7];
            int32_t h[3] = {(int32_t)rng_below(&r, NV), (int32_t)rng_below(&r, NV), 7};
            int32_t x = llm_sampler_sample_masked(a, lg, allow, h, 3), y = llm_sampler_sample(b, inf, h, 3);
            same += x == y && x >= 0 && allow[x];
            total++;
        }
        llm_sampler_free(a);
        llm_sampler_free(b);
    }
    CHECK_EQ(same, total);
    memset(allow, 0, NV);
    s = llm_sampler_new(llm_sampler_default_params(), NV);
    CHECK_EQ(llm_sampler_sample_masked(s, lg, allow, NULL, 0), -1); /* nothing allowed */
    llm_sampler_free(s);
    free(lg);
    free(inf);
    free(allow);
}

static void test_chat_templates(void) {
    llm_chat_msg msgs[3] = {{"system", "Be kind."}, {"user", "Hi"}, {"assistant", "Hello!"}};
    llm_chat_msg turn[4] = {msgs[0], msgs[1], msgs[2], {"user", "More?"}};
    tailor_error err = {0};
    sb s;
    sb_init(&s);
    CHECK_EQ(llm_chat_format("chatml", NULL, msgs, 2, true, &s, &err), 0);
    CHECK_STR(s.buf, "<|im_start|>system\nBe kind.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
    sb_clear(&s);
    CHECK_EQ(llm_chat_format("llama3", NULL, msgs, 2, true, &s, &err), 0);
    CHECK_STR(s.buf, "<|start_header_id|>system<|end_header_id|>\n\nBe kind.<|eot_id|><|start_header_id|>user"
                     "<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
    sb_clear(&s);
    CHECK_EQ(llm_chat_format("llama2", "</s>", turn, 4, true, &s, &err), 0);
    CHECK_STR(s.buf, "[INST] <<SYS>>\nBe kind.\n<</SYS>>\n\nHi [/INST]Hello!</s>[INST] More? [/INST]");
    sb_clear(&s);
    CHECK_EQ(llm_chat_format("mistral", "</s>", turn + 1, 3, true, &s, &err), 0);
    CHECK_STR(s.buf, "[INST] Hi [/INST]Hello!</s>[INST] More? [/INST]");
    sb_clear(&s);
    CHECK_EQ(llm_chat_format("zephyr", "</s>", msgs + 1, 1, true, &s, &err), 0);
    CHECK_STR(s.buf, "<|user|>\nHi</s>\n<|assistant|>\n");
    sb_clear(&s);
    CHECK_EQ(llm_chat_format("phi3", NULL, msgs + 1, 1, true, &s, &err), 0);
    CHECK_STR(s.buf, "<|user|>\nHi<|end|>\n<|assistant|>\n");
    /* Recognition from real template texts (by their markers). */
    CHECK_STR(llm_chat_detect("{% for m in messages %}{{'<|im_start|>' + m['role'] }}"), "chatml");
    CHECK_STR(llm_chat_detect("{{ '<|start_header_id|>' + r + '<|end_header_id|>' }}"), "llama3");
    CHECK_STR(llm_chat_detect("{{ bos_token + '[INST] ' + '<<SYS>>' }}"), "llama2");
    CHECK_STR(llm_chat_detect("{{ '[INST] ' + content + ' [/INST]' }}"), "mistral");
    CHECK_STR(llm_chat_detect("{{ '<|user|>' + c + '<|end|>' + '<|assistant|>' }}"), "phi3");
    CHECK_STR(llm_chat_detect("{{ '<|user|>\n' + c + eos_token }}"), "zephyr");
    CHECK(llm_chat_detect("{{ something else }}") == NULL);
    CHECK(llm_chat_format("nope", NULL, msgs, 1, true, &s, &err) < 0);
    CHECK_CONTAINS(err.msg, "chatml");
    sb_deinit(&s);
}

static bool collect(void *ud, const char *text, size_t n) {
    sb_append(ud, text, n);
    return true;
}

/* Generation on the real stories260K model: greedy text, stop strings
 * withheld even when they span tokens, EOG handling. */
static void test_generate(void) {
    llm_model *m = load_data_model("tinyllamas-stories260K/stories260K.gguf");
    tailor_error err = {0};
    if (!m) return;
    llm_ctx_params cp = llm_ctx_default_params();
    cp.n_threads = 1;
    llm_ctx *c = NULL;
    CHECK_EQ(llm_ctx_new(m, cp, &c, &err), 0);
    int32_t ids[64];
    int64_t n = llm_tokenize(m->vocab, "Once upon a time", 16, true, false, ids, 64);
    llm_gen_params gp = llm_gen_default_params();
    gp.sampling.temperature = 0;
    gp.n_predict = 12;
    sb out;
    sb_init(&out);
    llm_gen_stats st;
    CHECK_EQ(llm_generate(c, ids, n, &gp, collect, &out, &st, &err), 0);
    CHECK_STR(out.buf, ", there was a little girl named Lily. She");
    CHECK_EQ(st.gen_tokens, 12);
    /* "named Lily" spans tokens: nothing of it may be printed. */
    const char *stops[2] = {"named Lily", "zzz"};
    gp.stop = stops;
    gp.n_stop = 2;
    sb_clear(&out);
    llm_ctx_truncate(c, 0);
    CHECK_EQ(llm_generate(c, ids, n, &gp, collect, &out, &st, &err), 0);
    CHECK_STR(out.buf, ", there was a little girl ");
    /* Too long for the context: refused before anything runs. */
    gp.n_predict = llm_ctx_n_ctx(c);
    llm_ctx_truncate(c, 0);
    CHECK(llm_generate(c, ids, n, &gp, collect, &out, &st, &err) < 0);
    CHECK_CONTAINS(err.msg, "exceed the context");
    /* Embeddings: unit length, deterministic, closer for closer texts. */
    int D = m->hp.n_embd;
    float *a = malloc(sizeof(float) * D), *b = malloc(sizeof(float) * D), *d = malloc(sizeof(float) * D);
    CHECK_EQ(llm_embed(c, "The cat sat on the mat.", 23, LLM_POOL_MEAN, a, &err), 0);
    CHECK_EQ(llm_embed(c, "The cat sat on the mat.", 23, LLM_POOL_MEAN, b, &err), 0);
    CHECK(memcmp(a, b, sizeof(float) * D) == 0);
    double norm = 0;
    for (int i = 0; i < D; i++) norm += a[i] * a[i];
    CHECK(fabs(norm - 1) < 1e-5);
    CHECK_EQ(llm_embed(c, "The cat sat on the rug.", 23, LLM_POOL_MEAN, b, &err), 0);
    CHECK_EQ(llm_embed(c, "Tom ran fast to the big red car!", 32, LLM_POOL_MEAN, d, &err), 0);
    double ab = 0, ad = 0;
    for (int i = 0; i < D; i++) ab += a[i] * b[i], ad += a[i] * d[i];
    CHECK(ab > ad);
    CHECK_EQ(llm_embed(c, "x", 1, LLM_POOL_LAST, b, &err), 0);
    CHECK_EQ(llm_ctx_n_past(c), 0); /* the cache is left empty */
    free(a);
    free(b);
    free(d);
    sb_deinit(&out);
    llm_ctx_free(c);
    llm_model_free(m);
}

/* A synthetic model of a small custom shape: writes, loads, generates
 * deterministically. The qwen3 variant checks the per-head Q/K norms:
 * scaling W_q and W_k leaves the output unchanged only because each head
 * is RMS-normalised. */
static void check_synth(const char *arch, bool expect_invariant) {
    char *dir = test_tmpdir();
    char path[600], path2[620];
    snprintf(path, sizeof path, "%s/s.gguf", dir);
    snprintf(path2, sizeof path2, "%s/s2.gguf", dir);
    llm_shape sh = {"test-tiny", arch, 64, 2, 4, 2, 128, 1000, 256, 10000.0f, 1e-6f, true, "qwen2", "chatml"};
    char *vocab = test_data_path("llm-fixtures/models/tiny-qwen2-bpe-F32.gguf");
    tailor_error err = {0};
    llm_ftype f32;
    llm_ftype_from_name("f32", &f32);
    int rc = llm_synth(&sh, &f32, vocab, path, 5, &err);
    if (rc < 0) fprintf(stderr, "%s\n", err.msg);
    CHECK_EQ(rc, 0);
    llm_model *m = NULL;
    rc = llm_model_load(path, &m, &err);
    if (rc < 0) fprintf(stderr, "%s\n", err.msg);
    CHECK_EQ(rc, 0);
    if (!m) goto out;
    CHECK_EQ(m->hp.n_vocab, 1000);
    CHECK_STR(llm_chat_detect(m->chat_template), "chatml");
    CHECK(llm_vocab_find(m->vocab, "<|im_end|>", 10) == 998);
    CHECK(llm_vocab_is_eog(m->vocab, 998));
    if (strcmp(arch, "qwen3") == 0) CHECK(m->layers[0].q_norm != NULL);
    /* Rewrite the file with W_q and W_k scaled by 3. */
    llm_gguf_writer *w = llm_gguf_writer_new();
    const llm_gguf *g = m->gguf;
    for (int64_t i = 0; i < g->n_kv; i++) llm_gguf_set_kv(w, &g->kv[i]);
    VEC(float *) bufs = {0};
    for (int64_t i = 0; i < g->n_tensors; i++) {
        const llm_tensor *t = &g->tensors[i];
        const void *data = t->data;
        if (strstr(t->name, "attn_q.weight") || strstr(t->name, "attn_k.weight")) {
            float *f = malloc(t->bytes);
            memcpy(f, t->data, t->bytes);
            for (size_t k = 0; k < t->bytes / 4; k++) f[k] *= 3.0f;
            vec_push(&bufs, f);
            data = f;
        }
        llm_gguf_add_tensor(w, t->name, t->type, t->n_dims, t->ne, data);
    }
    CHECK_EQ(llm_gguf_writer_write(w, path2, &err), 0);
    llm_gguf_writer_free(w);
    for (size_t i = 0; i < bufs.len; i++) free(bufs.data[i]);
    vec_free(&bufs);
    llm_model *m2 = NULL;
    CHECK_EQ(llm_model_load(path2, &m2, &err), 0);
    if (m2) {
        int32_t ids[6] = {464, 2068, 7586, 21831, 18045, 625};
        llm_ctx_params cp = llm_ctx_default_params();
        cp.n_ctx = 32;
        llm_ctx *c1 = NULL, *c2 = NULL;
        llm_ctx_new(m, cp, &c1, &err);
        llm_ctx_new(m2, cp, &c2, &err);
        for (int i = 0; i < 6; i++) ids[i] %= 1000;
        CHECK_EQ(llm_decode(c1, ids, 6, false, &err), 0);
        CHECK_EQ(llm_decode(c2, ids, 6, false, &err), 0);
        const float *a = llm_ctx_logits(c1, -1), *b = llm_ctx_logits(c2, -1);
        double md = 0, sd = row_std(a, 1000);
        for (int i = 0; i < 1000; i++) md = fmax(md, fabs(a[i] - b[i]));
        if (expect_invariant) CHECK(md / sd < 1e-4);
        else CHECK(md / sd > 1e-3);
        llm_ctx_free(c1);
        llm_ctx_free(c2);
        llm_model_free(m2);
    }
out:
    llm_model_free(m);
    free(vocab);
    test_rmtree(dir);
    free(dir);
}

/* A chat-format shape over GPT-2's vocabulary: its <|endoftext|> (50256)
 * collides with the added one at the end, so the base token is renamed
 * <|reserved_50256|> and the added keeps its text; every text is unique
 * (llama.cpp aborts otherwise). A file with two equal token texts is
 * refused by name. */
static void test_synth_unique_vocab(void) {
    char *dir = test_tmpdir();
    char path[600], path2[620];
    snprintf(path, sizeof path, "%s/g.gguf", dir);
    snprintf(path2, sizeof path2, "%s/dup.gguf", dir);
    llm_shape sh = {"test-gpt2", "qwen2", 64, 1, 4, 2, 128, 50260, 256, 10000.0f, 1e-6f, true, "gpt-2", "chatml"};
    char *vocab = test_data_path("tokenizer-refs-llamacpp/ggml-vocab-gpt-2.gguf");
    tailor_error err = {0};
    llm_ftype f32;
    llm_ftype_from_name("f32", &f32);
    CHECK_EQ(llm_synth(&sh, &f32, vocab, path, 3, &err), 0);
    llm_model *m = NULL;
    int rc = llm_model_load(path, &m, &err);
    if (rc < 0) fprintf(stderr, "%s\n", err.msg);
    CHECK_EQ(rc, 0);
    if (m) {
        CHECK_EQ(llm_vocab_find(m->vocab, "<|endoftext|>", 13), 50259);
        CHECK_EQ(llm_vocab_find(m->vocab, "<|reserved_50256|>", 18), 50256);
        /* The same file with token 7's text made token 6's. */
        llm_gguf_writer *w = llm_gguf_writer_new();
        const llm_gguf *g = m->gguf;
        llm_str *tv = NULL;
        for (int64_t i = 0; i < g->n_kv; i++) {
            if (strcmp(g->kv[i].key, "tokenizer.ggml.tokens")) {
                llm_gguf_set_kv(w, &g->kv[i]);
                continue;
            }
            tv = malloc((size_t)g->kv[i].n * sizeof *tv);
            memcpy(tv, g->kv[i].v.arr, (size_t)g->kv[i].n * sizeof *tv);
            tv[7] = tv[6];
            llm_gguf_set_arr_str(w, "tokenizer.ggml.tokens", tv, g->kv[i].n);
        }
        for (int64_t i = 0; i < g->n_tensors; i++)
            llm_gguf_add_tensor(w, g->tensors[i].name, g->tensors[i].type, g->tensors[i].n_dims, g->tensors[i].ne,
                                g->tensors[i].data);
        CHECK_EQ(llm_gguf_writer_write(w, path2, &err), 0);
        llm_gguf_writer_free(w);
        free(tv);
        llm_model *bad = NULL;
        CHECK_EQ(llm_model_load(path2, &bad, &err), TAILOR_EDATA);
        CHECK_CONTAINS(err.msg, "tokenizer.ggml.tokens[7]");
        CHECK_CONTAINS(err.msg, "repeats token 6");
        llm_model_free(bad);
    }
    llm_model_free(m);
    test_rmtree(dir);
    free(dir);
    free(vocab);
}

static void test_synth_and_qk_norm(void) {
    check_synth("qwen3", true);
    check_synth("qwen2", false);
    /* A real shape's metadata, without writing its weights: unknown
     * shapes and mismatched vocabularies are refused. */
    CHECK(llm_shape_find("qwen2.5-0.5b") && llm_shape_find("qwen2.5-0.5b")->n_vocab == 151936);
    CHECK(llm_shape_find("smollm2-135m") && llm_shape_find("smollm2-135m")->n_layer == 30);
    CHECK(llm_shape_find("llama-3.2-1b") && llm_shape_find("llama-3.2-1b")->n_head_kv == 8);
    CHECK(llm_shape_find("gpt-5") == NULL);
    char *spm = test_data_path("tokenizer-refs-llamacpp/ggml-vocab-llama-spm.gguf");
    tailor_error err = {0};
    llm_ftype q80;
    llm_ftype_from_name("q8_0", &q80);
    CHECK(llm_synth(llm_shape_find("qwen2.5-0.5b"), &q80, spm, "/nonexistent/x.gguf", 1, &err) < 0);
    CHECK_CONTAINS(err.msg, "byte-level BPE");
    free(spm);
}

/* `llm quantize` on the F32 fixtures gives the reference quantizer's files:
 * the same type for every tensor and the same bytes. */
static void check_quantize(const char *src_rel, const char *ref_rel, const char *type) {
    char *src = test_data_path(src_rel), *ref = test_data_path(ref_rel), *dir = test_tmpdir();
    char out[600];
    snprintf(out, sizeof out, "%s/q.gguf", dir);
    llm_ftype f;
    CHECK_EQ(llm_ftype_from_name(type, &f), 0);
    tailor_error err = {0};
    CHECK_EQ(llm_quantize(src, out, &f, 2, &err), 0);
    llm_gguf *a = NULL, *b = NULL;
    CHECK_EQ(llm_gguf_open(out, &a, &err), 0);
    CHECK_EQ(llm_gguf_open(ref, &b, &err), 0);
    int same = 0, n = 0;
    if (a && b) {
        CHECK_EQ(a->n_tensors, b->n_tensors);
        for (int64_t i = 0; i < b->n_tensors; i++) {
            const llm_tensor *tb = &b->tensors[i], *ta = llm_gguf_tensor(a, tb->name);
            n++;
            if (!ta || ta->type != tb->type) {
                fprintf(stderr, "%s %s: type %s, reference %s\n", type, tb->name, ta ? llm_type_get(ta->type)->name : "-",
                        llm_type_get(tb->type)->name);
                continue;
            }
            if (ta->bytes == tb->bytes && memcmp(ta->data, tb->data, ta->bytes) == 0) same++;
            else fprintf(stderr, "%s %s (%s): bytes differ\n", type, tb->name, llm_type_get(tb->type)->name);
        }
        uint32_t ft;
        CHECK(llm_gguf_get_u32(a, "general.file_type", &ft) && (int)ft == f.file_type);
    }
    printf("quantize %-7s %s: %d of %d tensors byte-identical to the reference\n", type, src_rel, same, n);
    CHECK_EQ(same, n);
    llm_gguf_free(a);
    llm_gguf_free(b);
    test_rmtree(dir);
    free(dir);
    free(src);
    free(ref);
}

static void test_quantize(void) {
    check_quantize("llm-fixtures/models/tiny-llama-spm-F32.gguf", "llm-fixtures/models/tiny-llama-spm-Q4_K_M.gguf", "q4_k_m");
    check_quantize("llm-fixtures/models/tiny-qwen2-bpe-F32.gguf", "llm-fixtures/models/tiny-qwen2-bpe-Q4_K_M.gguf", "q4_k_m");
    check_quantize("llm-fixtures/models/tiny-llama-spm-F32.gguf", "llm-fixtures/models/tiny-llama-spm-Q4_0.gguf", "q4_0");
    check_quantize("llm-fixtures/models/tiny-llama-spm-F32.gguf", "llm-fixtures/models/tiny-llama-spm-F16.gguf", "f16");
    check_quantize("tinyllamas-stories260K/stories260K.gguf", "llm-fixtures/models/stories260K-Q8_0.gguf", "q8_0");
    check_quantize("tinyllamas-stories260K/stories260K.gguf", "llm-fixtures/models/stories260K-Q4_0.gguf", "q4_0");
}

/* The BERT encoder against llama.cpp's references (tiny-bert-bge-F32, 15
 * texts): our tokenizer gives the recorded ids; the states before the
 * first GELU within 1e-5 of the row RMS; after it (ggml's f16 GELU table,
 * which we imitate) and the pooled CLS and MEAN vectors within 1e-3, and
 * 1 - cos below 1e-6. */
static double rel_rows(const float *a, const float *b, int n, int d) {
    double worst = 0;
    for (int t = 0; t < n; t++) {
        double rms = 0, mx = 0;
        for (int j = 0; j < d; j++) rms += (double)b[t * d + j] * b[t * d + j];
        rms = sqrt(rms / d);
        for (int j = 0; j < d; j++) mx = fmax(mx, fabs((double)a[t * d + j] - b[t * d + j]));
        if (rms > 0 && mx / rms > worst) worst = mx / rms;
    }
    return worst;
}

static void test_bert_embeddings(void) {
    char *mp = test_data_path("llm-fixtures/models/tiny-bert-bge-F32.gguf");
    char *dir = test_data_path("llm-fixtures/refs/tiny-bert-bge-F32");
    char *pj = path_join(dir, "tiny-bert-bge-F32.prompts.json");
    cJSON *prompts = load_json(pj);
    llm_model *m;
    tailor_error e = {0};
    CHECK_EQ(llm_model_load(mp, &m, &e), 0);
    CHECK_EQ(m->arch, LLM_ARCH_BERT);
    llm_ctx *c;
    CHECK_EQ(llm_ctx_new(m, llm_ctx_default_params(), &c, &e), 0);
    int d = m->hp.n_embd, texts = 0;
    double w_pre = 0, w_post = 0, w_pool = 0, w_cos = 0;
    const cJSON *p;
    cJSON_ArrayForEach(p, cJSON_GetObjectItem(prompts, "prompts")) {
        int k = cJSON_GetObjectItem(p, "k")->valueint;
        const char *text = cJSON_GetStringValue(cJSON_GetObjectItem(p, "text"));
        const cJSON *idj = cJSON_GetObjectItem(p, "ids");
        int n = cJSON_GetArraySize(idj);
        int32_t *ids = xmalloc((size_t)n * sizeof *ids);
        for (int i = 0; i < n; i++) ids[i] = cJSON_GetArrayItem(idj, i)->valueint;
        int64_t nt;
        int32_t *mine = llm_tokenize_alloc(m->vocab, text, strlen(text), true, true, &nt);
        CHECK_EQ(nt, n);
        CHECK(nt == n && memcmp(mine, ids, (size_t)n * sizeof *ids) == 0);
        free(mine);
        float *h = xmalloc((size_t)n * d * sizeof *h), *st = xmalloc((size_t)6 * n * d * sizeof *st);
        CHECK_EQ(llm_bert_forward(m, ids, n, h, st, &e), 0);
        char name[256];
        snprintf(name, sizeof name, "%s/tiny-bert-bge-F32.%d.states.f32", dir, k);
        size_t ns;
        float *ref = load_f32(name, &ns);
        CHECK_EQ(ns, (size_t)6 * n * d);
        for (int s = 0; s < 6; s++) {
            double r = rel_rows(st + (size_t)s * n * d, ref + (size_t)s * n * d, n, d);
            if (s < 3) w_pre = fmax(w_pre, r);
            else w_post = fmax(w_post, r);
        }
        w_post = fmax(w_post, rel_rows(h, ref + (size_t)5 * n * d, n, d));
        free(ref);
        snprintf(name, sizeof name, "%s/tiny-bert-bge-F32.%d.pooled.f32", dir, k);
        float *pooled = load_f32(name, &ns);
        CHECK_EQ(ns, (size_t)4 * d);
        float v[64];
        llm_pooling modes[2] = {LLM_POOL_CLS, LLM_POOL_MEAN};
        for (int q = 0; q < 2; q++) {
            CHECK_EQ(llm_embed(c, text, strlen(text), modes[q], v, &e), 0);
            const float *want = pooled + (size_t)(q ? 3 : 1) * d; /* cls_l2, mean_l2 */
            w_pool = fmax(w_pool, rel_rows(v, want, 1, d));
            double dot = 0;
            for (int j = 0; j < d; j++) dot += (double)v[j] * want[j];
            w_cos = fmax(w_cos, 1 - dot);
        }
        CHECK_EQ(llm_embed(c, text, strlen(text), LLM_POOL_MODEL, v, &e), 0); /* the file says CLS */
        CHECK(rel_rows(v, pooled + d, 1, d) < 1e-3);
        free(pooled);
        free(h);
        free(st);
        free(ids);
        texts++;
    }
    printf("  bert: %d texts; states before GELU %.2e, after %.2e, pooled %.2e of the row RMS; 1 - cos %.2e\n", texts,
           w_pre, w_post, w_pool, w_cos);
    CHECK_EQ(texts, 15);
    CHECK(w_pre < 1e-5);
    CHECK(w_post < 1e-3);
    CHECK(w_pool < 1e-3);
    CHECK(w_cos < 1e-6);
    /* Each text alone: what was embedded before changes nothing. */
    float a1[64], b1[64], a2[64];
    CHECK_EQ(llm_embed(c, "a short text", 12, LLM_POOL_MEAN, a1, &e), 0);
    CHECK_EQ(llm_embed(c, "something else, much longer, in between", 39, LLM_POOL_MEAN, b1, &e), 0);
    CHECK_EQ(llm_embed(c, "a short text", 12, LLM_POOL_MEAN, a2, &e), 0);
    CHECK(memcmp(a1, a2, (size_t)d * sizeof *a1) == 0);
    /* An encoder embeds; it does not generate. */
    int32_t one = 101;
    CHECK_EQ(llm_decode(c, &one, 1, false, &e), TAILOR_EUNSUPPORTED);
    llm_ctx_free(c);
    llm_model_free(m);
    cJSON_Delete(prompts);
    free(pj);
    free(dir);
    free(mp);
}

int main(void) {
    RUN(test_bert_embeddings);
    RUN(test_half_floats);
    RUN(test_quant_roundtrip);
    RUN(test_kernels_match_reference);
    RUN(test_gguf_roundtrip);
    RUN(test_gguf_corrupt);
    RUN(test_tokenizer_fixtures);
    RUN(test_vocab_refs);
    RUN(test_forward_f32);
    RUN(test_forward_lora);
    RUN(test_lora_refusals);
    RUN(test_blocked_attention_model);
    RUN(test_train_forward);
    RUN(test_train_lora_roundtrip);
    RUN(test_train_frozen_base);
    RUN(test_finetune_keeps_best);
    RUN(test_bpe_train);
    RUN(test_forward_f16);
    RUN(test_forward_quantized);
    RUN(test_forward_scalar);
    RUN(test_repacked_model);
    RUN(test_threads_and_sequential);
    RUN(test_kv_cache_types);
    RUN(test_refusals);
    RUN(test_sampler);
    RUN(test_chat_templates);
    RUN(test_generate);
    RUN(test_synth_and_qk_norm);
    RUN(test_synth_unique_vocab);
    RUN(test_quantize);
    return test_summary();
}
