/* llama.c — the inference engine's decoder architectures (llama, qwen2)
 * as a trainable model: forward over a batch of sequences with every
 * activation kept, the backward pass of each block written out (RMSNorm,
 * RoPE in both layouts, grouped-query causal attention, SwiGLU, tied or
 * untied output), parameters and gradients in one flat buffer each so one
 * AdamW step covers them all. The blocks are nn's ops (ops.inc), checked
 * against finite differences in float64; the forward is checked against
 * the inference engine's logits on the fixture models. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"

/* Activations of one layer for N = B*T tokens. */
typedef struct act_layer {
    float *x_in, *rstd1, *h1, *q, *k, *v, *kx, *vx, *att, *ao, *x_mid, *rstd2, *h2, *gate, *up, *act;
} act_layer;

struct nn_llama_acts {
    int cap; /* tokens (B*T) they hold */
    int att_cap;
    int t_cap; /* the longest sequence (the rope table, the attention scratch) */
    bool shared; /* checkpointing: every layer but its input in one set (work) */
    act_layer work;
    act_layer *l;
    float *x_out, *rstdf, *hf, *cs;
    /* backward scratch */
    float *dx, *dh, *dq, *dkx, *dvx, *dk, *dv, *dao, *dgate, *dup, *dact, *dmid, *datt, *lora_scratch;
};

static size_t layout(const nn_llama_config *c, float *base, nn_llama_params *p, bool mats) {
    /* One pass that either counts (base NULL) or hands out pointers; without
     * mats the matrices are left out (NULL: a source holds them). */
    size_t at = 0;
    int64_t D = c->n_embd, S = c->n_embd / c->n_head, DQ = (int64_t)c->n_head * S, DKV = (int64_t)c->n_head_kv * S,
            F = c->n_ff, V = c->n_vocab;
#define TAKE(field, n)                                  \
    do {                                                \
        if (base) (field) = base + at;                  \
        at += (size_t)(n);                              \
    } while (0)
#define MAT(field, n)                                   \
    do {                                                \
        if (mats) TAKE(field, n);                       \
        else if (base) (field) = NULL;                  \
    } while (0)
    MAT(p->tok_embd, V * D);
    for (int l = 0; l < c->n_layer; l++) {
        nn_llama_layer *L = base ? &p->layers[l] : NULL;
        nn_llama_layer dummy;
        if (!L) L = &dummy;
        TAKE(L->attn_norm, D);
        MAT(L->wq, DQ * D);
        MAT(L->wk, DKV * D);
        MAT(L->wv, DKV * D);
        if (c->qkv_bias) {
            TAKE(L->bq, DQ);
            TAKE(L->bk, DKV);
            TAKE(L->bv, DKV);
        } else if (base) L->bq = L->bk = L->bv = NULL;
        MAT(L->wo, D * DQ);
        TAKE(L->ffn_norm, D);
        MAT(L->gate, F * D);
        MAT(L->up, F * D);
        MAT(L->down, D * F);
    }
    TAKE(p->output_norm, D);
    if (c->tied) {
        if (base) p->output = p->tok_embd;
    } else MAT(p->output, V * D);
#undef TAKE
#undef MAT
    return at;
}

static int create(const nn_llama_config *c, const nn_llama_source *src, nn_llama **out, tailor_error *err) {
    *out = NULL;
    if (c->n_embd <= 0 || c->n_head <= 0 || c->n_embd % c->n_head || c->n_head_kv <= 0 || c->n_head % c->n_head_kv ||
        c->n_layer <= 0 || c->n_ff <= 0 || c->n_vocab <= 0 || c->rope_dim <= 0 || c->rope_dim > c->n_embd / c->n_head ||
        c->rope_dim % 2)
        return err_set(err, TAILOR_EINVAL,
                       "a model needs embd divisible by heads, heads by kv heads, an even rope dimension at most "
                       "the head's, and positive sizes");
    nn_llama *m = xcalloc(1, sizeof *m);
    m->c = *c;
    bool mats = !src;
    nn_llama_params dummy = {0};
    m->n_params = layout(c, NULL, &dummy, mats);
    m->params = xcalloc(m->n_params, sizeof(float));
    m->p.layers = xcalloc((size_t)c->n_layer, sizeof *m->p.layers);
    m->g.layers = xcalloc((size_t)c->n_layer, sizeof *m->g.layers);
    layout(c, m->params, &m->p, mats);
    if (src) { /* frozen from the start: no gradients for the base */
        m->src = *src;
        m->freeze = true;
    } else {
        m->grads = xcalloc(m->n_params, sizeof(float));
        layout(c, m->grads, &m->g, true);
    }
    m->a = xcalloc(1, sizeof *m->a);
    *out = m;
    return 0;
}

int nn_llama_new(const nn_llama_config *c, nn_llama **out, tailor_error *err) { return create(c, NULL, out, err); }

int nn_llama_new_frozen(const nn_llama_config *c, const nn_llama_source *src, nn_llama **out, tailor_error *err) {
    return create(c, src, out, err);
}

size_t nn_llama_n_weights(const nn_llama_config *c) {
    nn_llama_params dummy = {0};
    return layout(c, NULL, &dummy, true);
}

static void layer_free(act_layer *L, bool input) {
    float **f[] = {&L->rstd1, &L->h1, &L->q, &L->k, &L->v, &L->kx, &L->vx, &L->att, &L->ao,
                   &L->x_mid, &L->rstd2, &L->h2, &L->gate, &L->up, &L->act};
    for (size_t i = 0; i < sizeof f / sizeof *f; i++) free(*f[i]);
    if (input) free(L->x_in);
}

static void acts_free(struct nn_llama_acts *a, int n_layer) {
    if (!a) return;
    for (int l = 0; a->l && l < n_layer; l++) {
        if (a->shared) free(a->l[l].x_in);
        else layer_free(&a->l[l], true);
    }
    if (a->shared) layer_free(&a->work, false);
    free(a->l);
    float **g[] = {&a->x_out, &a->rstdf, &a->hf, &a->cs, &a->dx, &a->dh, &a->dq, &a->dkx, &a->dvx,
                   &a->dk, &a->dv, &a->dao, &a->dgate, &a->dup, &a->dact, &a->dmid, &a->datt, &a->lora_scratch};
    for (size_t i = 0; i < sizeof g / sizeof *g; i++) free(*g[i]);
    memset(a, 0, sizeof *a);
}

static void lora_free(nn_lora *l, int n_layer) {
    if (!l) return;
    for (int i = 0; i < n_layer * NN_LORA_SLOTS; i++) free(l->pairs[i].t);
    free(l->pairs);
    free(l->params);
    free(l->grads);
    free(l);
}

void nn_llama_add_lora(nn_llama *m, int rank, float alpha, unsigned targets, uint64_t seed) {
    const nn_llama_config *c = &m->c;
    lora_free(m->lora, c->n_layer);
    nn_lora *l = xcalloc(1, sizeof *l);
    l->rank = rank, l->alpha = alpha, l->scale = 1;
    l->pairs = xcalloc((size_t)c->n_layer * NN_LORA_SLOTS, sizeof *l->pairs);
    int D = c->n_embd, S = D / c->n_head, DQ = c->n_head * S, DKV = c->n_head_kv * S, F = c->n_ff;
    const int IN[NN_LORA_SLOTS] = {D, D, D, DQ, D, D, F}, OUT[NN_LORA_SLOTS] = {DQ, DKV, DKV, D, F, F, D};
    for (int pass = 0; pass < 2; pass++) {
        size_t at = 0;
        for (int layer = 0; layer < c->n_layer; layer++)
            for (int k = 0; k < NN_LORA_SLOTS; k++) {
                if (!(targets & (1u << k))) continue;
                nn_lora_pair *p = &l->pairs[(size_t)layer * NN_LORA_SLOTS + k];
                if (pass) {
                    p->in = IN[k], p->out = OUT[k];
                    p->a = l->params + at, p->ga = l->grads + at;
                    p->b = l->params + at + (size_t)rank * IN[k], p->gb = l->grads + at + (size_t)rank * IN[k];
                }
                at += (size_t)rank * (IN[k] + OUT[k]);
            }
        if (!pass) {
            l->n_params = at;
            l->params = xcalloc(at + 1, sizeof(float));
            l->grads = xcalloc(at + 1, sizeof(float));
        }
    }
    rng g;
    rng_seed(&g, seed);
    for (int i = 0; i < c->n_layer * NN_LORA_SLOTS; i++)
        if (l->pairs[i].a) nn_init_normal(l->pairs[i].a, (size_t)rank * l->pairs[i].in, 1.0f / sqrtf((float)l->pairs[i].in), &g);
    m->lora = l;
    /* The frozen base needs no gradient buffer: its 4 bytes per weight go. */
    m->freeze = true;
    free(m->grads);
    m->grads = NULL;
    m->g.tok_embd = m->g.output_norm = m->g.output = NULL;
    memset(m->g.layers, 0, (size_t)c->n_layer * sizeof *m->g.layers);
}

/* Rows [r0, r1) of a source's matrix into m->wbuf, on the pool. */
typedef struct deq_job {
    nn_llama *m;
    int layer, which;
    int64_t r0, cols;
} deq_job;

static void deq_rows(void *ctx, size_t i0, size_t i1, int thread) {
    (void)thread;
    deq_job *j = ctx;
    j->m->src.rows(j->m->src.ctx, j->layer, j->which, j->r0 + (int64_t)i0, j->r0 + (int64_t)i1,
                   j->m->wbuf + i0 * (size_t)j->cols);
}

static const float *dequant(nn_llama *m, int layer, int which, int64_t r0, int64_t r1, int64_t cols) {
    size_t need = (size_t)(r1 - r0) * (size_t)cols;
    if (need > m->wbuf_cap) {
        free(m->wbuf);
        m->wbuf = xmalloc(need * sizeof(float));
        m->wbuf_cap = need;
    }
    deq_job j = {m, layer, which, r0, cols};
    if (m->pool) pool_for(m->pool, (size_t)(r1 - r0), deq_rows, &j);
    else deq_rows(&j, 0, (size_t)(r1 - r0), 0);
    return m->wbuf;
}

/* y[N][out] = x W^T (+ b), plus s B (A x) when the slot has a pair. W NULL:
 * the source's matrix, dequantized for this product. */
static void lin(nn_llama *m, int layer, int slot, float *y, const float *x, const float *w, const float *b, int N,
                int in, int out) {
    if (!w) w = dequant(m, layer, slot, 0, out, in);
    nn_matmul_forward(y, x, w, b, N, in, out);
    nn_lora *l = m->lora;
    nn_lora_pair *p = l ? &l->pairs[(size_t)layer * NN_LORA_SLOTS + slot] : NULL;
    if (!p || !p->a) return;
    if (N > l->t_cap) {
        for (int i = 0; i < m->c.n_layer * NN_LORA_SLOTS; i++) free(l->pairs[i].t), l->pairs[i].t = NULL;
        l->t_cap = N;
    }
    if (!p->t) p->t = xmalloc((size_t)l->t_cap * l->rank * sizeof(float));
    nn_matmul_forward(p->t, x, p->a, NULL, N, in, l->rank);
    float s = l->scale * l->alpha / (float)l->rank;
    /* y += s (t B^T): one GEMM adding into y. */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, out, l->rank, s, p->t, l->rank, p->b, l->rank, 1.0f, y, out);
}

/* The backward of lin: dx += dy W (+ the pair's path), dW and db unless
 * frozen, dA and dB for a pair. */
static void lin_back(nn_llama *m, int layer, int slot, float *dx, float *dw, float *db, const float *dy, const float *x,
                     const float *w, int N, int in, int out, float *scratch) {
    if (!w) w = dequant(m, layer, slot, 0, out, in);
    nn_matmul_backward(dx, m->freeze ? NULL : dw, m->freeze ? NULL : db, dy, x, w, N, in, out);
    nn_lora *l = m->lora;
    nn_lora_pair *p = l ? &l->pairs[(size_t)layer * NN_LORA_SLOTS + slot] : NULL;
    if (!p || !p->a) return;
    float s = l->scale * l->alpha / (float)l->rank;
    int r = l->rank;
    /* dB += s dy^T t; dt = s dy B; dA += dt^T x; dx += dt A. */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, r, N, s, dy, out, p->t, r, 1.0f, p->gb, r);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, r, out, s, dy, out, p->b, r, 0.0f, scratch, r);
    nn_matmul_backward(dx, p->ga, NULL, scratch, x, p->a, N, in, r);
}

void nn_llama_free(nn_llama *m) {
    if (!m) return;
    lora_free(m->lora, m->c.n_layer);
    acts_free(m->a, m->c.n_layer);
    free(m->a);
    free(m->params);
    free(m->grads);
    free(m->p.layers);
    free(m->g.layers);
    free(m->logits);
    free(m->wbuf);
    free(m);
}

size_t nn_llama_bytes_per_token(const nn_llama_config *c, int T, bool checkpoint) {
    size_t D = (size_t)c->n_embd, S = D / (size_t)c->n_head, DQ = (size_t)c->n_head * S,
           DKV = (size_t)c->n_head_kv * S, F = (size_t)c->n_ff, V = (size_t)c->n_vocab;
    size_t per_layer = 3 * D + 2 + 3 * DQ + 2 * DKV + DQ + 3 * F + (size_t)c->n_head * (size_t)T;
    /* Every layer keeps its input; its other activations are kept for
     * each layer, or (checkpointing) for one at a time. */
    size_t layers = (size_t)c->n_layer * D + (checkpoint ? 1 : (size_t)c->n_layer) * per_layer;
    /* The backward pass's scratch (acts_ensure's d* buffers; 64 for LoRA's;
     * one head's T x T dA, shared by the batch's tokens). */
    size_t back = 3 * D + 4 * DQ + 2 * DKV + 3 * F + 64 + (size_t)T;
    return 4 * (layers + 3 * D + 1 + V + back);
}

static void layer_alloc(act_layer *L, size_t n, size_t D, size_t DQ, size_t DKV, size_t F, size_t att) {
    L->rstd1 = xmalloc(n * 4), L->h1 = xmalloc(n * D * 4);
    L->q = xmalloc(n * DQ * 4), L->k = xmalloc(n * DKV * 4), L->v = xmalloc(n * DKV * 4);
    L->kx = xmalloc(n * DQ * 4), L->vx = xmalloc(n * DQ * 4), L->att = xmalloc(att * 4);
    L->ao = xmalloc(n * DQ * 4), L->x_mid = xmalloc(n * D * 4), L->rstd2 = xmalloc(n * 4);
    L->h2 = xmalloc(n * D * 4), L->gate = xmalloc(n * F * 4), L->up = xmalloc(n * F * 4);
    L->act = xmalloc(n * F * 4);
}

static void acts_ensure(nn_llama *m, int B, int T) {
    struct nn_llama_acts *a = m->a;
    int N = B * T;
    if (N <= a->cap && T <= a->t_cap && B * m->c.n_head * T * T <= a->att_cap && a->shared == m->checkpoint) return;
    acts_free(a, m->c.n_layer);
    size_t D = (size_t)m->c.n_embd, S = D / (size_t)m->c.n_head, DQ = (size_t)m->c.n_head * S,
           DKV = (size_t)m->c.n_head_kv * S, F = (size_t)m->c.n_ff, n = (size_t)N;
    size_t att = (size_t)B * (size_t)m->c.n_head * (size_t)T * (size_t)T;
    a->l = xcalloc((size_t)m->c.n_layer, sizeof *a->l);
    a->shared = m->checkpoint;
    if (a->shared) layer_alloc(&a->work, n, D, DQ, DKV, F, att);
    for (int l = 0; l < m->c.n_layer; l++) {
        act_layer *L = &a->l[l];
        if (a->shared) *L = a->work;
        else layer_alloc(L, n, D, DQ, DKV, F, att);
        L->x_in = xmalloc(n * D * 4);
    }
    a->x_out = xmalloc(n * D * 4), a->rstdf = xmalloc(n * 4), a->hf = xmalloc(n * D * 4);
    a->cs = xmalloc((size_t)T * (size_t)m->c.rope_dim * 4);
    a->dx = xmalloc(n * D * 4), a->dh = xmalloc(n * D * 4), a->dq = xmalloc(n * DQ * 4);
    a->dkx = xmalloc(n * DQ * 4), a->dvx = xmalloc(n * DQ * 4), a->dk = xmalloc(n * DKV * 4);
    a->dv = xmalloc(n * DKV * 4), a->dao = xmalloc(n * DQ * 4), a->dgate = xmalloc(n * F * 4);
    a->dup = xmalloc(n * F * 4), a->dact = xmalloc(n * F * 4), a->dmid = xmalloc(n * D * 4);
    a->datt = xmalloc((size_t)T * (size_t)T * 4); /* one head's dA, then dS */
    a->lora_scratch = xmalloc(n * 64 * 4); /* N x rank, rank <= 64 */
    a->cap = N;
    a->t_cap = T;
    a->att_cap = (int)att;
}

/* cos, sin of each pair at each position, as the engine computes them (the
 * angle multiplied up in float). The batch's rows repeat positions 0..T-1. */
static void rope_cs(const nn_llama_config *c, float *cs, int T) {
    int half = c->rope_dim / 2;
    float theta_scale = powf(c->rope_base, -2.0f / (float)c->rope_dim);
    for (int t = 0; t < T; t++) {
        float theta = (float)t;
        for (int i = 0; i < half; i++) {
            float ang = c->rope_freq_scale * theta;
            cs[(size_t)t * c->rope_dim + 2 * i] = cosf(ang);
            cs[(size_t)t * c->rope_dim + 2 * i + 1] = sinf(ang);
            theta *= theta_scale;
        }
    }
}

/* kx[n][h] = k[n][h / group]: each KV head serves its group of query heads. */
static void expand_kv(float *kx, const float *k, int N, int H, int Hkv, int S) {
    int group = H / Hkv;
    for (int n = 0; n < N; n++)
        for (int h = 0; h < H; h++)
            memcpy(kx + ((size_t)n * H + h) * S, k + ((size_t)n * Hkv + h / group) * S, (size_t)S * 4);
}

static void reduce_kv(float *dk, const float *dkx, int N, int H, int Hkv, int S) {
    int group = H / Hkv;
    memset(dk, 0, (size_t)N * Hkv * S * 4);
    for (int n = 0; n < N; n++)
        for (int h = 0; h < H; h++) {
            float *d = dk + ((size_t)n * Hkv + h / group) * S;
            const float *s = dkx + ((size_t)n * H + h) * S;
            for (int i = 0; i < S; i++) d[i] += s[i];
        }
}

/* The rope table covers T positions; the rows of a batch are B copies. */
static void rope_rows(nn_llama *m, float *x, int B, int T, int heads, bool inverse) {
    int S = m->c.n_embd / m->c.n_head;
    for (int b = 0; b < B; b++)
        nn_rope(x + (size_t)b * T * heads * S, m->a->cs, T, heads, S, m->c.rope_dim, m->c.neox, inverse);
}

/* Causal attention, head by head of each sequence, as matrix products:
 * S = scale Q K^T over the whole T x T (the upper triangle computed and
 * then zeroed: BLAS's speed is worth twice the multiply-adds), the
 * softmax row by row on the pool, then O = A V; backward dA = dO V^T,
 * dV += A^T dO, dS = A (dA - rowsum(A dA)) scale, dQ += dS K, dK += dS^T Q.
 * The products run one after another, each on OpenBLAS's threads. */
typedef struct soft_job {
    float *a, *d; /* rows of A (and, backward, of dA becoming dS) */
    int T;
    float scale;
} soft_job;

static void soft_rows(void *ctx, size_t t0, size_t t1, int thread) {
    (void)thread;
    soft_job *j = ctx;
    int T = j->T;
    for (size_t t = t0; t < t1; t++) {
        float *a = j->a + t * (size_t)T;
        if (!j->d) { /* forward: the causal softmax of the scores */
            float sum = nn_exp_sum(a, t + 1, nn_max(a, t + 1));
            float inv = 1.0f / sum;
            for (size_t k = 0; k <= t; k++) a[k] *= inv;
            for (size_t k = t + 1; k < (size_t)T; k++) a[k] = 0;
        } else {
            float *d = j->d + t * (size_t)T, dot = 0;
            for (size_t k = 0; k <= t; k++) dot += a[k] * d[k];
            for (size_t k = 0; k <= t; k++) d[k] = a[k] * (d[k] - dot) * j->scale;
            for (size_t k = t + 1; k < (size_t)T; k++) d[k] = 0;
        }
    }
}

static void attention(nn_llama *m, act_layer *L, const float *dout, int B, int T, int C, int H, bool backward) {
    struct nn_llama_acts *a = m->a;
    int hs = C / H;
    float scale = 1.0f / sqrtf((float)hs);
    size_t row = (size_t)T * C, tt = (size_t)T * T;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            const float *q = L->q + b * row + h * hs, *k = L->kx + b * row + h * hs, *v = L->vx + b * row + h * hs;
            float *A = L->att + ((size_t)b * H + h) * tt;
            soft_job j = {A, backward ? a->datt : NULL, T, scale};
            if (!backward) {
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hs, scale, q, C, k, C, 0.0f, A, T);
                if (m->pool) pool_for(m->pool, (size_t)T, soft_rows, &j);
                else soft_rows(&j, 0, (size_t)T, 0);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hs, T, 1.0f, A, T, v, C, 0.0f,
                            L->ao + b * row + h * hs, C);
                continue;
            }
            const float *go = dout + b * row + h * hs;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hs, 1.0f, go, C, v, C, 0.0f, a->datt, T);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hs, T, 1.0f, A, T, go, C, 1.0f,
                        a->dvx + b * row + h * hs, C);
            if (m->pool) pool_for(m->pool, (size_t)T, soft_rows, &j);
            else soft_rows(&j, 0, (size_t)T, 0);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hs, T, 1.0f, a->datt, T, k, C, 1.0f,
                        a->dq + b * row + h * hs, C);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hs, T, 1.0f, a->datt, T, q, C, 1.0f,
                        a->dkx + b * row + h * hs, C);
        }
}

/* Layer l from its input a->l[l].x_in to the next layer's input (or
 * x_out), every activation kept in l's buffers (shared ones when
 * checkpointing: the backward pass runs this again before using them). */
static void layer_forward(nn_llama *m, int l, int B, int T) {
    const nn_llama_config *c = &m->c;
    struct nn_llama_acts *a = m->a;
    int N = B * T, D = c->n_embd, H = c->n_head, Hkv = c->n_head_kv, S = D / H, DQ = H * S, DKV = Hkv * S,
        F = c->n_ff;
    {
        act_layer *L = &a->l[l];
        const nn_llama_layer *P = &m->p.layers[l];
        nn_rmsnorm_forward(L->h1, L->rstd1, L->x_in, P->attn_norm, N, D, c->rms_eps);
        lin(m, l, NN_LORA_Q, L->q, L->h1, P->wq, P->bq, N, D, DQ);
        lin(m, l, NN_LORA_K, L->k, L->h1, P->wk, P->bk, N, D, DKV);
        lin(m, l, NN_LORA_V, L->v, L->h1, P->wv, P->bv, N, D, DKV);
        rope_rows(m, L->q, B, T, H, false);
        rope_rows(m, L->k, B, T, Hkv, false);
        expand_kv(L->kx, L->k, N, H, Hkv, S);
        expand_kv(L->vx, L->v, N, H, Hkv, S);
        attention(m, L, NULL, B, T, DQ, H, false);
        float *x_mid = L->x_mid;
        lin(m, l, NN_LORA_O, x_mid, L->ao, P->wo, NULL, N, DQ, D);
        for (size_t i = 0; i < (size_t)N * D; i++) x_mid[i] += L->x_in[i];
        nn_rmsnorm_forward(L->h2, L->rstd2, x_mid, P->ffn_norm, N, D, c->rms_eps);
        lin(m, l, NN_LORA_GATE, L->gate, L->h2, P->gate, NULL, N, D, F);
        lin(m, l, NN_LORA_UP, L->up, L->h2, P->up, NULL, N, D, F);
        nn_swiglu_forward(L->act, L->gate, L->up, (size_t)N * F);
        float *x_next = l + 1 < c->n_layer ? a->l[l + 1].x_in : a->x_out;
        lin(m, l, NN_LORA_DOWN, x_next, L->act, P->down, NULL, N, F, D);
        for (size_t i = 0; i < (size_t)N * D; i++) x_next[i] += x_mid[i];
    }
}

/* The output product over the vocabulary: logits = hf W^T, or (backward)
 * dh += dlogits W. From a source, W comes in blocks of rows no larger than
 * the biggest layer matrix, so the vocabulary is never held whole in F32. */
static void output_product(nn_llama *m, int N, bool backward) {
    const nn_llama_config *c = &m->c;
    struct nn_llama_acts *a = m->a;
    int D = c->n_embd, V = c->n_vocab;
    if (m->p.output) {
        if (backward) nn_matmul_backward(a->dh, m->freeze ? NULL : m->g.output, NULL, m->logits, a->hf, m->p.output, N, D, V);
        else nn_matmul_forward(m->logits, a->hf, m->p.output, NULL, N, D, V);
        return;
    }
    int S = D / c->n_head;
    int64_t biggest = (int64_t)c->n_ff * D > (int64_t)c->n_head * S * D ? (int64_t)c->n_ff * D : (int64_t)c->n_head * S * D;
    int block = (int)(biggest / D > 64 ? biggest / D : 64);
    int which = c->tied ? NN_W_EMBD : NN_W_OUTPUT;
    for (int v0 = 0; v0 < V; v0 += block) {
        int rows = V - v0 < block ? V - v0 : block;
        const float *w = dequant(m, -1, which, v0, v0 + rows, D);
        if (backward)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, D, rows, 1.0f, m->logits + v0, V, w, D, 1.0f,
                        a->dh, D);
        else
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, rows, D, 1.0f, a->hf, D, w, D, 0.0f, m->logits + v0,
                        V);
    }
}

float nn_llama_forward(nn_llama *m, const int32_t *tokens, const int32_t *targets, int B, int T) {
    const nn_llama_config *c = &m->c;
    acts_ensure(m, B, T);
    struct nn_llama_acts *a = m->a;
    int N = B * T, D = c->n_embd, V = c->n_vocab;
    m->B = B, m->T = T;
    m->tokens = tokens;
    rope_cs(c, a->cs, T);
    float *x = a->l[0].x_in;
    for (int n = 0; n < N; n++) {
        if (m->p.tok_embd) memcpy(x + (size_t)n * D, m->p.tok_embd + (size_t)tokens[n] * D, (size_t)D * 4);
        else m->src.rows(m->src.ctx, -1, NN_W_EMBD, tokens[n], tokens[n] + 1, x + (size_t)n * D);
    }
    for (int l = 0; l < c->n_layer; l++) layer_forward(m, l, B, T);
    nn_rmsnorm_forward(a->hf, a->rstdf, a->x_out, m->p.output_norm, N, D, c->rms_eps);
    if ((size_t)N * V > m->logits_cap) {
        free(m->logits);
        m->logits_cap = (size_t)N * V;
        m->logits = xmalloc(m->logits_cap * 4);
    }
    output_product(m, N, false);
    m->has_targets = targets != NULL;
    return targets ? nn_softmax_ce_pool(m->pool, m->logits, targets, N, V) : 0;
}

void nn_llama_backward(nn_llama *m) {
    const nn_llama_config *c = &m->c;
    struct nn_llama_acts *a = m->a;
    int B = m->B, T = m->T, N = B * T, D = c->n_embd, H = c->n_head, Hkv = c->n_head_kv, S = D / H, DQ = H * S,
        DKV = Hkv * S, F = c->n_ff;
    /* logits now hold d(loss)/d(logits). */
    memset(a->dh, 0, (size_t)N * D * 4);
    output_product(m, N, true);
    memset(a->dx, 0, (size_t)N * D * 4);
    nn_rmsnorm_backward(a->dx, m->freeze ? NULL : m->g.output_norm, a->dh, a->x_out, m->p.output_norm, a->rstdf, N, D);
    for (int l = c->n_layer - 1; l >= 0; l--) {
        /* Checkpointing: the layer's activations again, from its input (the
         * same arithmetic, so the same numbers). */
        if (a->shared) layer_forward(m, l, B, T);
        act_layer *L = &a->l[l];
        const nn_llama_layer *P = &m->p.layers[l];
        nn_llama_layer *G = &m->g.layers[l];
        /* x_next = x_mid + down(act): dx flows to x_mid whole. */
        memcpy(a->dmid, a->dx, (size_t)N * D * 4);
        memset(a->dact, 0, (size_t)N * F * 4);
        lin_back(m, l, NN_LORA_DOWN, a->dact, G->down, NULL, a->dx, L->act, P->down, N, F, D, a->lora_scratch);
        memset(a->dgate, 0, (size_t)N * F * 4);
        memset(a->dup, 0, (size_t)N * F * 4);
        nn_swiglu_backward(a->dgate, a->dup, a->dact, L->gate, L->up, (size_t)N * F);
        memset(a->dh, 0, (size_t)N * D * 4);
        lin_back(m, l, NN_LORA_GATE, a->dh, G->gate, NULL, a->dgate, L->h2, P->gate, N, D, F, a->lora_scratch);
        lin_back(m, l, NN_LORA_UP, a->dh, G->up, NULL, a->dup, L->h2, P->up, N, D, F, a->lora_scratch);
        nn_rmsnorm_backward(a->dmid, m->freeze ? NULL : G->ffn_norm, a->dh, L->x_mid, P->ffn_norm, L->rstd2, N, D);
        /* x_mid = x_in + wo(ao). */
        memcpy(a->dx, a->dmid, (size_t)N * D * 4);
        memset(a->dao, 0, (size_t)N * DQ * 4);
        lin_back(m, l, NN_LORA_O, a->dao, G->wo, NULL, a->dmid, L->ao, P->wo, N, DQ, D, a->lora_scratch);
        memset(a->dq, 0, (size_t)N * DQ * 4);
        memset(a->dkx, 0, (size_t)N * DQ * 4);
        memset(a->dvx, 0, (size_t)N * DQ * 4);
        attention(m, L, a->dao, B, T, DQ, H, true);
        reduce_kv(a->dk, a->dkx, N, H, Hkv, S);
        reduce_kv(a->dv, a->dvx, N, H, Hkv, S);
        rope_rows(m, a->dq, B, T, H, true);
        rope_rows(m, a->dk, B, T, Hkv, true);
        memset(a->dh, 0, (size_t)N * D * 4);
        lin_back(m, l, NN_LORA_Q, a->dh, G->wq, G->bq, a->dq, L->h1, P->wq, N, D, DQ, a->lora_scratch);
        lin_back(m, l, NN_LORA_K, a->dh, G->wk, G->bk, a->dk, L->h1, P->wk, N, D, DKV, a->lora_scratch);
        lin_back(m, l, NN_LORA_V, a->dh, G->wv, G->bv, a->dv, L->h1, P->wv, N, D, DKV, a->lora_scratch);
        nn_rmsnorm_backward(a->dx, m->freeze ? NULL : G->attn_norm, a->dh, L->x_in, P->attn_norm, L->rstd1, N, D);
    }
    /* The embedding: each token's row gathers its gradient. */
    for (int n = 0; n < N && !m->freeze; n++) {
        float *g = m->g.tok_embd + (size_t)m->tokens[n] * D;
        const float *d = a->dx + (size_t)n * D;
        for (int i = 0; i < D; i++) g[i] += d[i];
    }
}
