/* test_nn.c — finite-difference gradient checks (float64) of every op in
 * src/nn, the float ops against the double ones, and AdamW by hand. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"
#include "test.h"

/* A loss L = sum(out * r) over an op's output; the analytic gradient of each
 * input is the op's backward with dout = r. */
typedef double (*loss_fn)(void *ctx);

static rng g_rng;

static void fill(double *x, size_t n, double scale) {
    for (size_t i = 0; i < n; i++) x[i] = (rng_uniform(&g_rng) * 2 - 1) * scale;
}

/* Compares grad with central differences of f over every element of x. */
static double check_grad(loss_fn f, void *ctx, double *x, const double *grad, size_t n) {
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double keep = x[i], h = 1e-6;
        x[i] = keep + h;
        double lp = f(ctx);
        x[i] = keep - h;
        double lm = f(ctx);
        x[i] = keep;
        double num = (lp - lm) / (2 * h), err = fabs(num - grad[i]) / fmax(1e-6, fabs(num) + fabs(grad[i]));
        if (err > worst) worst = err;
    }
    return worst;
}

static double dot(const double *a, const double *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* ---- matmul ------------------------------------------------------------ */
enum { MN = 5, MC = 4, MO = 3 };
typedef struct mm {
    double inp[MN * MC], w[MO * MC], b[MO], out[MN * MO], r[MN * MO];
} mm;

static double mm_loss(void *c) {
    mm *m = c;
    nn_matmul_forward_f64(m->out, m->inp, m->w, m->b, MN, MC, MO);
    return dot(m->out, m->r, MN * MO);
}

static void test_matmul(void) {
    mm m;
    fill(m.inp, MN * MC, 1), fill(m.w, MO * MC, 1), fill(m.b, MO, 1), fill(m.r, MN * MO, 1);
    double di[MN * MC] = {0}, dw[MO * MC] = {0}, db[MO] = {0};
    mm_loss(&m);
    nn_matmul_backward_f64(di, dw, db, m.r, m.inp, m.w, MN, MC, MO);
    CHECK(check_grad(mm_loss, &m, m.inp, di, MN * MC) < 1e-7);
    CHECK(check_grad(mm_loss, &m, m.w, dw, MO * MC) < 1e-7);
    CHECK(check_grad(mm_loss, &m, m.b, db, MO) < 1e-7);
    /* float matches double */
    float fi[MN * MC], fw[MO * MC], fb[MO], fo[MN * MO];
    for (int i = 0; i < MN * MC; i++) fi[i] = (float)m.inp[i];
    for (int i = 0; i < MO * MC; i++) fw[i] = (float)m.w[i];
    for (int i = 0; i < MO; i++) fb[i] = (float)m.b[i];
    nn_matmul_forward(fo, fi, fw, fb, MN, MC, MO);
    for (int i = 0; i < MN * MO; i++) CHECK(fabs(fo[i] - m.out[i]) < 1e-5);
}

/* ---- layernorm --------------------------------------------------------- */
enum { LN = 3, LC = 6 };
typedef struct lnc {
    double inp[LN * LC], w[LC], b[LC], out[LN * LC], r[LN * LC], mean[LN], rstd[LN];
} lnc;

static double ln_loss(void *c) {
    lnc *l = c;
    nn_layernorm_forward_f64(l->out, l->mean, l->rstd, l->inp, l->w, l->b, LN, LC, 1e-8);
    return dot(l->out, l->r, LN * LC);
}

static void test_layernorm(void) {
    lnc l;
    fill(l.inp, LN * LC, 2), fill(l.w, LC, 1), fill(l.b, LC, 1), fill(l.r, LN * LC, 1);
    double di[LN * LC] = {0}, dw[LC] = {0}, db[LC] = {0};
    ln_loss(&l);
    nn_layernorm_backward_f64(di, dw, db, l.r, l.inp, l.w, l.mean, l.rstd, LN, LC);
    CHECK(check_grad(ln_loss, &l, l.inp, di, LN * LC) < 1e-6);
    CHECK(check_grad(ln_loss, &l, l.w, dw, LC) < 1e-7);
    CHECK(check_grad(ln_loss, &l, l.b, db, LC) < 1e-7);
    /* mean and rstd are those of the row */
    double m = 0, var = 0;
    for (int i = 0; i < LC; i++) m += l.inp[i];
    m /= LC;
    for (int i = 0; i < LC; i++) var += (l.inp[i] - m) * (l.inp[i] - m);
    CHECK(fabs(l.mean[0] - m) < 1e-12);
    CHECK(fabs(l.rstd[0] - 1 / sqrt(var / LC + 1e-8)) < 1e-9);
}

/* ---- attention --------------------------------------------------------- */
enum { AB = 2, AT = 4, AC = 6, AH = 2 };
typedef struct atc {
    double q[AB * AT * AC], k[AB * AT * AC], v[AB * AT * AC], out[AB * AT * AC], r[AB * AT * AC];
    double att[AB * AH * AT * AT];
    unsigned char valid[AB * AT];
} atc;

static double at_loss(void *c) {
    atc *a = c;
    nn_attention_forward_f64(a->out, a->att, a->q, a->k, a->v, a->valid, AB, AT, AC, AH);
    return dot(a->out, a->r, AB * AT * AC);
}

static void test_attention(void) {
    atc a;
    size_t n = AB * AT * AC;
    fill(a.q, n, 1), fill(a.k, n, 1), fill(a.v, n, 1), fill(a.r, n, 1);
    /* Batch 0 fully valid; batch 1 left-padded (first two positions). */
    for (int i = 0; i < AB * AT; i++) a.valid[i] = !(i >= AT && i < AT + 2);
    at_loss(&a);
    double dq[AB * AT * AC] = {0}, dk[AB * AT * AC] = {0}, dv[AB * AT * AC] = {0}, scratch[AT];
    nn_attention_backward_f64(dq, dk, dv, a.r, a.att, a.q, a.k, a.v, AB, AT, AC, AH, scratch);
    CHECK(check_grad(at_loss, &a, a.q, dq, n) < 1e-6);
    CHECK(check_grad(at_loss, &a, a.k, dk, n) < 1e-6);
    CHECK(check_grad(at_loss, &a, a.v, dv, n) < 1e-6);
    /* Causality: the first position only sees itself; padded queries with
     * no valid key give zeros; attention rows sum to 1 where defined. */
    for (int i = 0; i < AC / AH; i++) CHECK(fabs(a.out[i] - a.v[i]) < 1e-12);
    for (int i = 0; i < AC; i++) CHECK(a.out[(size_t)AT * AC + i] == 0);
    double s = 0;
    for (int j = 0; j < AT; j++) s += a.att[(size_t)(AT - 1) * AT + j];
    CHECK(fabs(s - 1) < 1e-12);
    /* A later key never changes an earlier output. */
    double before = a.out[AC + 1];
    a.k[3 * AC + 1] += 5;
    a.v[3 * AC + 1] += 5;
    at_loss(&a);
    CHECK(a.out[AC + 1] == before);
}

/* ---- activations, dropout, losses -------------------------------------- */
enum { EN = 12 };
typedef struct elc {
    double x[EN], out[EN], r[EN], mask[EN];
    int kind; /* 0 relu, 1 gelu, 2 dropout */
    uint64_t seed;
} elc;

static double el_loss(void *c) {
    elc *e = c;
    if (e->kind == 0) nn_relu_forward_f64(e->out, e->x, EN);
    else if (e->kind == 1) nn_gelu_forward_f64(e->out, e->x, EN);
    else {
        rng g;
        rng_seed(&g, e->seed);
        nn_dropout_forward_f64(e->out, e->mask, e->x, EN, 0.4, &g);
    }
    return dot(e->out, e->r, EN);
}

static void test_elementwise(void) {
    for (int kind = 0; kind < 3; kind++) {
        elc e = {.kind = kind, .seed = 9};
        fill(e.x, EN, 2), fill(e.r, EN, 1);
        for (int i = 0; i < EN; i++)
            if (fabs(e.x[i]) < 0.01) e.x[i] = 0.5; /* away from relu's kink */
        el_loss(&e);
        double dx[EN] = {0};
        if (kind == 0) nn_relu_backward_f64(dx, e.r, e.x, EN);
        else if (kind == 1) nn_gelu_backward_f64(dx, e.r, e.x, EN);
        else nn_dropout_backward_f64(dx, e.r, e.mask, EN);
        CHECK(check_grad(el_loss, &e, e.x, dx, EN) < 1e-7);
    }
    /* dropout keeps about 1-p and scales by 1/(1-p); p=0 copies */
    enum { DN = 20000 };
    static float x[DN], o[DN], mk[DN];
    for (int i = 0; i < DN; i++) x[i] = 1;
    rng g;
    rng_seed(&g, 1);
    nn_dropout_forward(o, mk, x, DN, 0.25f, &g);
    double mean = 0;
    for (int i = 0; i < DN; i++) mean += o[i];
    CHECK(fabs(mean / DN - 1) < 0.02);
    nn_dropout_forward(o, mk, x, DN, 0, &g);
    for (int i = 0; i < DN; i++) CHECK(o[i] == 1);
}

enum { SN = 3, SV = 5 };
typedef struct cec {
    double logits[SN * SV], work[SN * SV];
    int32_t t[SN];
} cec;

static double ce_loss(void *c) {
    cec *e = c;
    memcpy(e->work, e->logits, sizeof e->work);
    return nn_softmax_ce_f64(e->work, e->t, SN, SV);
}

static void test_losses(void) {
    cec e = {.t = {2, -1, 4}};
    fill(e.logits, SN * SV, 3);
    ce_loss(&e);
    double grad[SN * SV];
    memcpy(grad, e.work, sizeof grad);
    CHECK(check_grad(ce_loss, &e, e.logits, grad, SN * SV) < 1e-7);
    /* A uniform row has loss log V. */
    cec u = {.t = {0, -1, -1}};
    CHECK(fabs(ce_loss(&u) - log(SV)) < 1e-12);
    /* BCE pairs */
    double pos[4], neg[4], dp[4], dn[4];
    unsigned char valid[4] = {1, 1, 0, 1};
    fill(pos, 4, 3), fill(neg, 4, 3);
    double l0 = nn_bce_pairs_f64(pos, neg, valid, dp, dn, 4);
    for (int i = 0; i < 4; i++) {
        double h = 1e-6, keep = pos[i], t1, t2, tmp1[4], tmp2[4];
        pos[i] = keep + h;
        t1 = nn_bce_pairs_f64(pos, neg, valid, tmp1, tmp2, 4);
        pos[i] = keep - h;
        t2 = nn_bce_pairs_f64(pos, neg, valid, tmp1, tmp2, 4);
        pos[i] = keep;
        CHECK(fabs((t1 - t2) / (2 * h) - dp[i]) < 1e-6);
        keep = neg[i];
        neg[i] = keep + h;
        t1 = nn_bce_pairs_f64(pos, neg, valid, tmp1, tmp2, 4);
        neg[i] = keep - h;
        t2 = nn_bce_pairs_f64(pos, neg, valid, tmp1, tmp2, 4);
        neg[i] = keep;
        CHECK(fabs((t1 - t2) / (2 * h) - dn[i]) < 1e-6);
    }
    double zero[1] = {0};
    unsigned char one[1] = {1};
    CHECK(fabs(nn_bce_pairs_f64(zero, zero, one, dp, dn, 1) - 2 * log(2)) < 1e-12);
    CHECK(l0 > 0);
}

static void test_adamw_and_clip(void) {
    /* One step from zero moments: update = lr * sign(g) (bias-corrected),
     * plus decoupled decay. */
    float p[2] = {1, -2}, gr[2] = {0.5f, -3}, m[2] = {0}, v[2] = {0};
    nn_adamw o = {.lr = 0.1f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.01f, .t = 1};
    nn_adamw_step(&o, p, gr, m, v, 2, true);
    CHECK(fabsf(p[0] - (1 - 0.1f * (1 + 0.01f * 1))) < 1e-5f);
    CHECK(fabsf(p[1] - (-2 + 0.1f * (1 + 0.01f * 2))) < 1e-5f);
    float g2[3] = {3, 4, 0};
    CHECK(fabsf(nn_clip_grad_norm(g2, 3, 1) - 5) < 1e-6f);
    CHECK(fabsf(sqrtf(g2[0] * g2[0] + g2[1] * g2[1]) - 1) < 1e-4f);
    float w[1000];
    rng g;
    rng_seed(&g, 3);
    nn_init_normal(w, 1000, 0.02f, &g);
    double s = 0;
    for (int i = 0; i < 1000; i++) s += (double)w[i] * w[i];
    CHECK(fabs(sqrt(s / 1000) - 0.02) < 0.003);
}

/* The pool forms give the serial ops' results bit for bit (2 and 3
 * threads, sizes that do not split evenly and are above the size where the
 * pool is used). */
static void test_pool_forms(void) {
    enum { N = 601, C = 256, PN = 37, V = 4001 };
    size_t nc = (size_t)N * C, nv = (size_t)PN * V;
    float *x = xmalloc(nc * sizeof *x), *g = xmalloc(nc * sizeof *g), w[C], b[C];
    rng r;
    rng_seed(&r, 9);
    for (size_t i = 0; i < nc; i++) x[i] = (float)rng_normal(&r), g[i] = (float)rng_normal(&r);
    for (int i = 0; i < C; i++) w[i] = 1 + 0.1f * (float)rng_normal(&r), b[i] = 0.1f * (float)rng_normal(&r);
    float *lg = xmalloc(nv * sizeof *lg);
    int32_t t[PN];
    for (size_t i = 0; i < nv; i++) lg[i] = 3 * (float)rng_normal(&r);
    for (int n = 0; n < PN; n++) t[n] = n % 5 == 0 ? -1 : (int32_t)rng_below(&r, V);
    /* buffers: two of each (serial, pool) */
    float *o1 = xmalloc(nc * sizeof *o1), *o2 = xmalloc(nc * sizeof *o2), m1[N], m2[N], s1[N], s2[N];
    float *d1 = xmalloc(nc * sizeof *d1), *d2 = xmalloc(nc * sizeof *d2), dw1[C], dw2[C], db1[C], db2[C];
    float *l1 = xmalloc(nv * sizeof *l1), *l2 = xmalloc(nv * sizeof *l2);
    float *p1 = xmalloc(nc * sizeof *p1), *p2 = xmalloc(nc * sizeof *p2);
    float *mm1 = xmalloc(nc * sizeof *mm1), *mm2 = xmalloc(nc * sizeof *mm2), *v1 = xmalloc(nc * sizeof *v1),
          *v2 = xmalloc(nc * sizeof *v2);
    for (int threads = 2; threads <= 3; threads++) {
        pool *p = pool_new(threads);
        nn_layernorm_forward(o1, m1, s1, x, w, b, N, C, 1e-5f);
        nn_layernorm_forward_pool(p, o2, m2, s2, x, w, b, N, C, 1e-5f);
        CHECK(!memcmp(o1, o2, nc * sizeof *o1) && !memcmp(m1, m2, sizeof m1) && !memcmp(s1, s2, sizeof s1));
        memset(d1, 0, nc * sizeof *d1), memset(d2, 0, nc * sizeof *d2);
        memset(dw1, 0, sizeof dw1), memset(dw2, 0, sizeof dw2), memset(db1, 0, sizeof db1), memset(db2, 0, sizeof db2);
        nn_layernorm_backward(d1, dw1, db1, g, x, w, m1, s1, N, C);
        nn_layernorm_backward_pool(p, d2, dw2, db2, g, x, w, m1, s1, N, C);
        CHECK(!memcmp(d1, d2, nc * sizeof *d1) && !memcmp(dw1, dw2, sizeof dw1) && !memcmp(db1, db2, sizeof db1));
        memcpy(l1, lg, nv * sizeof *lg);
        memcpy(l2, lg, nv * sizeof *lg);
        float e1 = nn_softmax_ce(l1, t, PN, V), e2 = nn_softmax_ce_pool(p, l2, t, PN, V);
        CHECK(e1 == e2 && e1 > 0);
        CHECK(!memcmp(l1, l2, nv * sizeof *l1));
        memcpy(p1, x, nc * sizeof *x);
        memcpy(p2, x, nc * sizeof *x);
        memset(mm1, 0, nc * sizeof *mm1), memset(mm2, 0, nc * sizeof *mm2);
        memset(v1, 0, nc * sizeof *v1), memset(v2, 0, nc * sizeof *v2);
        nn_adamw o = {.lr = 0.01f, .beta1 = 0.9f, .beta2 = 0.98f, .eps = 1e-9f, .weight_decay = 0.1f, .t = 1};
        for (int step = 0; step < 3; step++, o.t++) {
            nn_adamw_step(&o, p1, g, mm1, v1, nc, true);
            nn_adamw_step_pool(p, &o, p2, g, mm2, v2, nc, true);
        }
        CHECK(!memcmp(p1, p2, nc * sizeof *p1) && memcmp(p1, x, nc * sizeof *p1));
        pool_free(p);
    }
    free(x), free(g), free(lg), free(o1), free(o2), free(d1), free(d2), free(l1), free(l2);
    free(p1), free(p2), free(mm1), free(mm2), free(v1), free(v2);
}

/* ---- the llama blocks: RMSNorm, RoPE (both layouts), SwiGLU ------------- */
enum { RN = 3, RC = 8, RH = 2, RS = 4 };
typedef struct rmc {
    double inp[RN * RC], w[RC], out[RN * RC], r[RN * RC], rstd[RN];
    double x[RN * RH * RS], xo[RN * RH * RS];
    float cs[RN * RS];
    int neox;
    double g[RN * RC], u[RN * RC];
} rmc;

static double rms_loss(void *c) {
    rmc *m = c;
    nn_rmsnorm_forward_f64(m->out, m->rstd, m->inp, m->w, RN, RC, 1e-6);
    return dot(m->out, m->r, RN * RC);
}

static double rope_loss(void *c) {
    rmc *m = c;
    memcpy(m->xo, m->x, sizeof m->x);
    nn_rope_f64(m->xo, m->cs, RN, RH, RS, RS, m->neox, 0);
    return dot(m->xo, m->r, RN * RH * RS);
}

static double swiglu_loss(void *c) {
    rmc *m = c;
    nn_swiglu_forward_f64(m->out, m->g, m->u, RN * RC);
    return dot(m->out, m->r, RN * RC);
}

static void test_llama_blocks(void) {
    rmc m;
    fill(m.inp, RN * RC, 1), fill(m.w, RC, 1), fill(m.r, RN * RC, 1), fill(m.x, RN * RH * RS, 1);
    fill(m.g, RN * RC, 3), fill(m.u, RN * RC, 1);
    for (int i = 0; i < RN * RS; i++) m.cs[i] = 0;
    for (int n = 0; n < RN; n++)
        for (int i = 0; i < RS / 2; i++) {
            double a = n * pow(10000.0, -2.0 * i / RS);
            m.cs[n * RS + 2 * i] = (float)cos(a), m.cs[n * RS + 2 * i + 1] = (float)sin(a);
        }
    double di[RN * RC] = {0}, dw[RC] = {0};
    rms_loss(&m);
    nn_rmsnorm_backward_f64(di, dw, m.r, m.inp, m.w, m.rstd, RN, RC);
    CHECK(check_grad(rms_loss, &m, m.inp, di, RN * RC) < 1e-7);
    CHECK(check_grad(rms_loss, &m, m.w, dw, RC) < 1e-7);
    /* RoPE is a rotation: its backward turns the gradient back. */
    for (m.neox = 0; m.neox < 2; m.neox++) {
        double dx[RN * RH * RS];
        memcpy(dx, m.r, sizeof dx);
        nn_rope_f64(dx, m.cs, RN, RH, RS, RS, m.neox, 1);
        CHECK(check_grad(rope_loss, &m, m.x, dx, RN * RH * RS) < 1e-7);
    }
    double dg[RN * RC] = {0}, du[RN * RC] = {0};
    swiglu_loss(&m);
    nn_swiglu_backward_f64(dg, du, m.r, m.g, m.u, RN * RC);
    CHECK(check_grad(swiglu_loss, &m, m.g, dg, RN * RC) < 1e-7);
    CHECK(check_grad(swiglu_loss, &m, m.u, du, RN * RC) < 1e-7);
}

/* The whole model (float): its backward against central differences of
 * its loss for a sample of parameters of every kind, GQA, both RoPE
 * layouts, biases, tied and untied outputs, a masked target. */
static void test_llama_model(void) {
    for (int variant = 0; variant < 2; variant++) {
        nn_llama_config c = {.n_vocab = 11, .n_embd = 8, .n_layer = 2, .n_head = 2, .n_head_kv = 1, .n_ff = 12,
                             .rope_dim = 4, .rope_base = 10000, .rope_freq_scale = 1, .rms_eps = 1e-5f,
                             .neox = variant == 1, .tied = variant == 0, .qkv_bias = variant == 1};
        nn_llama *m;
        tailor_error e = {0};
        CHECK_EQ(nn_llama_new(&c, &m, &e), 0);
        for (size_t i = 0; i < m->n_params; i++) m->params[i] = (float)(rng_uniform(&g_rng) * 2 - 1) * 0.3f;
        for (int l = 0; l < c.n_layer; l++)
            for (int i = 0; i < c.n_embd; i++) m->p.layers[l].attn_norm[i] += 1, m->p.layers[l].ffn_norm[i] += 1;
        enum { B = 2, T = 5 };
        int32_t tok[B * T], tgt[B * T];
        for (int i = 0; i < B * T; i++) tok[i] = (int32_t)rng_below(&g_rng, 11), tgt[i] = (int32_t)rng_below(&g_rng, 11);
        tgt[3] = -1;
        memset(m->grads, 0, m->n_params * sizeof(float));
        nn_llama_forward(m, tok, tgt, B, T);
        nn_llama_backward(m);
        int bad = 0, n = 0;
        double worst = 0;
        for (size_t k = 0; k < m->n_params; k += 1 + m->n_params / 150) {
            float keep = m->params[k];
            double h = 3e-3;
            m->params[k] = keep + (float)h;
            double lp = nn_llama_forward(m, tok, tgt, B, T);
            m->params[k] = keep - (float)h;
            double lm = nn_llama_forward(m, tok, tgt, B, T);
            m->params[k] = keep;
            double num = (lp - lm) / (2 * h), ana = m->grads[k], err = fabs(num - ana);
            if (err > 2e-3 + 2e-2 * fabs(ana)) bad++;
            worst = fmax(worst, err);
            n++;
        }
        printf("  llama %s: %d parameters checked, worst |numeric - analytic| %.1e (allowed 2e-3 + 2%% of the gradient)\n", variant ? "qwen2 untied" : "llama tied",
               n, worst);
        CHECK(n > 100);
        CHECK_EQ(bad, 0);
        /* LoRA on every slot (B made non-zero so every path carries a
         * gradient): the pairs' gradients against central differences; the
         * frozen base has no gradient buffer at all. */
        nn_llama_add_lora(m, 2, 4.0f, (1u << NN_LORA_SLOTS) - 1, 9);
        CHECK(m->grads == NULL); /* the frozen base keeps no gradients (ASan: none written) */
        for (size_t i = 0; i < m->lora->n_params; i++) m->lora->params[i] = (float)(rng_uniform(&g_rng) * 2 - 1) * 0.3f;
        memset(m->lora->grads, 0, m->lora->n_params * sizeof(float));
        nn_llama_forward(m, tok, tgt, B, T);
        nn_llama_backward(m);
        bad = 0, n = 0, worst = 0;
        for (size_t k = 0; k < m->lora->n_params; k += 1 + m->lora->n_params / 120) {
            float keep = m->lora->params[k];
            double h = 3e-3;
            m->lora->params[k] = keep + (float)h;
            double lp = nn_llama_forward(m, tok, tgt, B, T);
            m->lora->params[k] = keep - (float)h;
            double lm = nn_llama_forward(m, tok, tgt, B, T);
            m->lora->params[k] = keep;
            double num = (lp - lm) / (2 * h), ana = m->lora->grads[k], err = fabs(num - ana);
            if (err > 2e-3 + 2e-2 * fabs(ana)) bad++;
            worst = fmax(worst, err);
            n++;
        }
        printf("  lora on %s: %d parameters checked, worst %.1e\n", variant ? "qwen2" : "llama", n, worst);
        CHECK(n > 100);
        CHECK_EQ(bad, 0);
        /* Activation checkpointing recomputes the same numbers: the same
         * loss and the same gradients, bit for bit. */
        float *g0 = malloc(m->lora->n_params * sizeof *g0);
        memset(m->lora->grads, 0, m->lora->n_params * sizeof(float));
        float l0 = nn_llama_forward(m, tok, tgt, B, T);
        nn_llama_backward(m);
        memcpy(g0, m->lora->grads, m->lora->n_params * sizeof *g0);
        m->checkpoint = true;
        memset(m->lora->grads, 0, m->lora->n_params * sizeof(float));
        float l1 = nn_llama_forward(m, tok, tgt, B, T);
        nn_llama_backward(m);
        CHECK(l0 == l1);
        CHECK(memcmp(g0, m->lora->grads, m->lora->n_params * sizeof *g0) == 0);
        CHECK(nn_llama_bytes_per_token(&c, T, true) < nn_llama_bytes_per_token(&c, T, false));
        free(g0);
        nn_llama_free(m);
    }
}

static void test_vexp(void) {
    /* Every kernel set's exp against double precision: within two float
     * roundings; sums, maxima and NaN checked inside the hook. */
    const char *sets[] = {"scalar", "avx2", "avx512"};
    for (int i = 0; i < 3; i++) {
        double e = nn_exp_check(sets[i], 11 + i);
        if (e < 0) {
            fprintf(stderr, "  exp kernels: this CPU cannot run %s (not tested here)\n", sets[i]);
            continue;
        }
        if (!(e <= 2.5e-7)) fprintf(stderr, "  exp kernels %s: relative error %g\n", sets[i], e);
        CHECK(e <= 2.5e-7);
    }
}

int main(void) {
    rng_seed(&g_rng, 1234);
    RUN(test_matmul);
    RUN(test_layernorm);
    RUN(test_attention);
    RUN(test_elementwise);
    RUN(test_vexp);
    RUN(test_losses);
    RUN(test_adamw_and_clip);
    RUN(test_pool_forms);
    RUN(test_llama_blocks);
    RUN(test_llama_model);
    return test_summary();
}
