/* forward.c — the transformer forward pass with its KV cache.
 * Shapes (per decode chunk of T tokens): x, h [T][D]; q [T][H*S];
 * k, v [T][Hkv*S]; gate, up [T][F]; the cache holds [L][n_ctx][Hkv*S] floats
 * for K and for V. Each weight matmul first rounds its input rows to the
 * weight's dot type (Q8_0, Q8_1, F16, ...) exactly as the reference engine
 * does, then splits the weight's rows over the thread pool, so every thread
 * streams its own rows once per chunk. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "llm/llm.h"

#define N_BATCH 256 /* tokens per chunk of a long prompt */

struct llm_ctx {
    const llm_model *m;
    const llm_kernels *k;
    pool *pool;
    int32_t n_ctx, n_past, n_threads;
    uint8_t *kc, *vc; /* [L][n_ctx][Hkv*S] values of kv_type */
    llm_type kv_type;  /* F32 (default), F16 or Q8_0 */
    size_t kv_row;     /* bytes of one position's Hkv*S values */
    size_t kv_head;    /* bytes of one head's S values */
    /* chunk scratch, N_BATCH rows each */
    float *x, *h, *q, *kb, *vb, *att, *gate, *up, *rope_cs;
    uint8_t *act;
    uint8_t *pack; /* activations in a tile's own layout (llm_tile.pack) */
    uint8_t *rowbuf; /* [threads][rowbuf_per]: rows of laid-out matrices back in the file's layout (prompts) */
    size_t rowbuf_per;
    float *wpanel; /* [threads][F16_PANEL][widest + N_BATCH]: F16 weight rows in F32 and their outputs for a
                      prompt's GEMM (made when needed) */
    int64_t widest;
    float *scores; /* [threads][group * n_ctx + S]: scores, then a V row */
    uint8_t *qconv; /* [threads][group * S * 4]: queries in the cache's dot type */
    float *ablk;    /* [threads][ATT_SCRATCH floats]: blocked attention's tiles */
    /* results of the last decode */
    float *hidden; /* [n][D] */
    size_t hidden_cap;
    float *logits; /* [rows][V] */
    size_t logits_cap;
    int32_t last_n;
    bool last_all;
    float *capture;
    /* A LoRA adapter: its pairs add s B (A x) to their weights' products. */
    const llm_lora *lora;
    llm_lora *lora_owned; /* llm_ctx_load_lora's */
    float lora_scale;
    float *lora_t, *lora_y; /* [N_BATCH][max rank], [N_BATCH][max n_out] */
    /* Generation picks all threads or one, whichever is faster now: with a
     * busy neighbour on a core, waiting for a preempted worker at each of
     * a token's ~200 matmuls costs more than the second core brings. */
    double ema_all, ema_solo; /* seconds per single-token decode */
    int64_t tokens, since_probe;
};

llm_ctx_params llm_ctx_default_params(void) {
    llm_ctx_params p = {0, 0, NULL, LLM_TYPE_F32};
    return p;
}

static size_t att_scratch(int G, int S);

int llm_ctx_new(const llm_model *m, llm_ctx_params p, llm_ctx **out, tailor_error *err) {
    const llm_hparams *hp = &m->hp;
    if (m->vocab_only) return err_set(err, TAILOR_EINVAL, "%s: loaded for tokenization only (no weights)", m->gguf->path);
    int32_t n_ctx = p.n_ctx > 0 ? p.n_ctx : (hp->n_ctx_train < 4096 ? hp->n_ctx_train : 4096);
    if (n_ctx <= 0 || n_ctx > (1 << 20)) return err_set(err, TAILOR_EINVAL, "context size %d out of range", n_ctx);
    llm_ctx *c = xcalloc(1, sizeof *c);
    c->m = m;
    c->k = p.kernels ? p.kernels : llm_kernels_best();
    c->pool = pool_new(p.n_threads);
    c->n_threads = pool_threads(c->pool);
    c->n_ctx = n_ctx;
    int64_t D = hp->n_embd, DQ = (int64_t)hp->n_head * hp->head_dim, DKV = (int64_t)hp->n_head_kv * hp->head_dim;
    if (hp->n_head / hp->n_head_kv > 64) {
        llm_ctx_free(c);
        return err_set(err, TAILOR_EUNSUPPORTED, "more than 64 query heads per KV head");
    }
    llm_type kt = p.kv_type;
    if (kt != LLM_TYPE_F32 && kt != LLM_TYPE_F16 && kt != LLM_TYPE_Q8_0) {
        llm_ctx_free(c);
        return err_set(err, TAILOR_EINVAL, "KV cache type must be f32, f16 or q8_0");
    }
    if (kt == LLM_TYPE_Q8_0 && hp->head_dim % 32) {
        llm_ctx_free(c);
        return err_set(err, TAILOR_EINVAL, "a Q8_0 KV cache needs a head size that is a multiple of 32 (this model: %d)",
                       hp->head_dim);
    }
    c->kv_type = kt;
    c->kv_row = llm_row_bytes(kt, DKV);
    c->kv_head = llm_row_bytes(kt, hp->head_dim);
    size_t cache = (size_t)hp->n_layer * (size_t)n_ctx * c->kv_row;
    c->kc = calloc(cache, 1);
    c->vc = calloc(cache, 1);
    if (!c->kc || !c->vc) {
        llm_ctx_free(c);
        return err_set(err, TAILOR_ENOMEM, "KV cache of %zu MiB does not fit; use a smaller context or --kv-type",
                       cache * 2 >> 20);
    }
    size_t B = N_BATCH;
    int64_t widest = D > hp->n_ff ? D : hp->n_ff;
    if (DQ > widest) widest = DQ;
    c->x = xmalloc(B * (size_t)D * 4);
    c->h = xmalloc(B * (size_t)D * 4);
    c->q = xmalloc(B * (size_t)DQ * 4);
    c->kb = xmalloc(B * (size_t)DKV * 4);
    c->vb = xmalloc(B * (size_t)DKV * 4);
    c->att = xmalloc(B * (size_t)DQ * 4);
    c->gate = xmalloc(B * (size_t)hp->n_ff * 4);
    c->up = xmalloc(B * (size_t)hp->n_ff * 4);
    c->rope_cs = xmalloc(B * (size_t)hp->rope_dim * 4);
    c->act = xmalloc(B * (size_t)widest * 4 + 64);
    /* Packed layouts hold at most 2 bytes per value and token (llm_tile). */
    c->pack = xmalloc(B * (size_t)widest * 2 + 64);
    c->widest = widest;
    int group = hp->n_head / hp->n_head_kv;
    c->scores = xmalloc((size_t)c->n_threads * ((size_t)group * (size_t)n_ctx + (size_t)hp->head_dim) * 4);
    c->qconv = xmalloc((size_t)c->n_threads * (size_t)group * (size_t)hp->head_dim * 4 + 64);
    c->ablk = xmalloc((size_t)c->n_threads * att_scratch(group, hp->head_dim) * 4);
    *out = c;
    return 0;
}

void llm_ctx_free(llm_ctx *c) {
    if (!c) return;
    pool_free(c->pool);
    free(c->kc);
    free(c->vc);
    free(c->x);
    free(c->h);
    free(c->q);
    free(c->kb);
    free(c->vb);
    free(c->att);
    free(c->gate);
    free(c->up);
    free(c->rope_cs);
    free(c->act);
    free(c->pack);
    free(c->wpanel);
    free(c->rowbuf);
    free(c->scores);
    free(c->qconv);
    free(c->ablk);
    free(c->hidden);
    free(c->logits);
    free(c->lora_t);
    free(c->lora_y);
    llm_lora_free(c->lora_owned);
    free(c);
}

const llm_model *llm_ctx_model(const llm_ctx *c) { return c->m; }
int32_t llm_ctx_n_ctx(const llm_ctx *c) { return c->n_ctx; }
int32_t llm_ctx_n_past(const llm_ctx *c) { return c->n_past; }
void llm_ctx_truncate(llm_ctx *c, int32_t pos) {
    if (pos >= 0 && pos < c->n_past) c->n_past = pos;
}
void llm_ctx_capture_states(llm_ctx *c, float *buf) { c->capture = buf; }
const float *llm_ctx_hidden(const llm_ctx *c) { return c->hidden; }

const float *llm_ctx_logits(const llm_ctx *c, int32_t i) {
    if (!c->logits || c->last_n == 0) return NULL;
    if (i < 0) i = c->last_n - 1;
    if (i >= c->last_n) return NULL;
    if (!c->last_all) return i == c->last_n - 1 ? c->logits : NULL;
    return c->logits + (size_t)i * (size_t)c->m->hp.n_vocab;
}

static int decode(llm_ctx *c, const int32_t *tokens, int32_t n, bool all_logits, tailor_error *err);

/* ---- building blocks --------------------------------------------------- */

typedef struct mm_job {
    llm_dot_fn dot;
    llm_rows_fn rows_fn;
    llm_tile tile;
    const uint8_t *w, *act;
    size_t w_row, a_row;
    const uint8_t *pack; /* tile.t tokens per group, group bytes apart */
    size_t group;
    int64_t cols, rows;
    int n;
    float *y;
} mm_job;

/* Activations of a prompt chunk that stay in L2 beside the weight tiles. */
#define MM_L2_BYTES (256u * 1024u)

/* nr rows from row r (weights at w) times token t, for the edges of the
 * tiles: the rows kernel where the type has one, else a dot per row. */
static void mm_edge(const mm_job *j, const uint8_t *w, int nr, int t, size_t r) {
    const uint8_t *a = j->act + (size_t)t * j->a_row;
    float *y = j->y + (size_t)t * (size_t)j->rows + r;
    if (j->rows_fn) j->rows_fn(w, j->w_row, a, j->cols, nr, y);
    else
        for (int k = 0; k < nr; k++) y[k] = j->dot(w + (size_t)k * j->w_row, a, j->cols);
}

/* Rows [b, e) for every token. One token (generation): the range is cut in
 * LLM_ROWS contiguous parts read side by side, several long sequential
 * streams, which the memory system serves faster than one (interleaving
 * adjacent rows, short streams, is much slower). Several tokens (a prompt):
 * the kernel's tiles of adjacent rows stay in L1 while a chunk of tokens
 * streams past them. */
static void mm_rows(void *ctx, size_t b, size_t e, int thread) {
    (void)thread;
    const mm_job *j = ctx;
    if (!j->rows_fn && (j->n == 1 || !j->tile.fn)) {
        for (size_t r = b; r < e; r++) {
            const uint8_t *w = j->w + r * j->w_row;
            for (int t = 0; t < j->n; t++)
                j->y[(size_t)t * (size_t)j->rows + r] = j->dot(w, j->act + (size_t)t * j->a_row, j->cols);
        }
        return;
    }
    if (j->n == 1) {
        size_t part = (e - b) / LLM_ROWS;
        float out[LLM_ROWS];
        for (size_t i = 0; i < part; i++) {
            j->rows_fn(j->w + (b + i) * j->w_row, part * j->w_row, j->act, j->cols, LLM_ROWS, out);
            for (int k = 0; k < LLM_ROWS; k++) j->y[b + i + (size_t)k * part] = out[k];
        }
        for (size_t r = b + part * LLM_ROWS; r < e; r++) j->y[r] = j->dot(j->w + r * j->w_row, j->act, j->cols);
        return;
    }
    /* Tokens in chunks whose activations stay in L2 while the row range
     * passes over them: each weight tile is read once per chunk. */
    int chunk = (int)(MM_L2_BYTES / j->a_row);
    if (chunk < 16) chunk = 16;
    /* whole packed groups per chunk */
    if (j->tile.fn && chunk % j->tile.t) chunk += j->tile.t - chunk % j->tile.t;
    for (int t0 = 0; t0 < j->n; t0 += chunk) {
        int t1 = t0 + chunk < j->n ? t0 + chunk : j->n;
        size_t r = b;
        if (j->tile.fn) /* whole tiles; mm_edge takes the edges */
            for (size_t R = (size_t)j->tile.r; r + R <= e; r += R) {
                const uint8_t *w = j->w + r * j->w_row;
                int t = t0;
                for (; t + j->tile.t <= t1; t += j->tile.t) {
                    const uint8_t *a = j->pack ? j->pack + (size_t)(t / j->tile.t) * j->group
                                               : j->act + (size_t)t * j->a_row;
                    j->tile.fn(w, j->w_row, a, j->a_row, j->cols, j->y + (size_t)t * (size_t)j->rows + r,
                               (size_t)j->rows);
                }
                for (; t < t1; t++) mm_edge(j, w, (int)R, t, r);
            }
        for (; r < e; r += LLM_ROWS) {
            int nr = e - r < LLM_ROWS ? (int)(e - r) : LLM_ROWS;
            const uint8_t *w = j->w + r * j->w_row;
            for (int t = t0; t < t1; t++) mm_edge(j, w, nr, t, r);
        }
    }
}

/* The activations of a product: tokens [b, e) rounded to the dot type and,
 * where the tile has a layout of its own, packed in whole groups (items
 * are groups then; the tokens past the last group only rounded). */
typedef struct prep_job {
    llm_ctx *c;
    llm_type at;
    llm_tile tl;
    const float *x;
    int64_t cols;
    size_t a_row, group;
    int n;
} prep_job;

static void prep_rows(void *ctx, size_t b, size_t e, int thread) {
    (void)thread;
    const prep_job *p = ctx;
    llm_ctx *c = p->c;
    size_t per = p->group ? (size_t)p->tl.t : 1;
    for (size_t g = b; g < e; g++) {
        size_t t0 = g * per, t1 = t0 + per < (size_t)p->n ? t0 + per : (size_t)p->n;
        for (size_t t = t0; t < t1; t++)
            c->k->quant[p->at](p->x + t * (size_t)p->cols, c->act + t * p->a_row, p->cols);
        if (p->group && t0 + per <= (size_t)p->n)
            p->tl.pack(c->act + t0 * p->a_row, p->a_row, p->cols, c->pack + g * p->group);
    }
}

/* F16 weights times a prompt's tokens: a GEMM in F32. The reference
 * rounds the activations to F16 and sums F16 x F16 products in F32; a
 * product of two F16 values is exact in F32, so both sides in F32 give the
 * same sums up to their order. The activations are rounded and laid out
 * token-minor once per product (xt: [cols][n_pad]); each thread converts
 * a panel of F16_PANEL weight rows once for all the chunk's tokens and
 * runs the kernel set's gemm4 over blocks of F16_KB values, so a block
 * of xt stays in L2 while every row group of the panel passes over it. */
#define F16_PANEL 64
#define F16_KB 256
#define F16_GEMM_MIN_TOKENS 32
typedef struct f16_job {
    llm_ctx *c;
    const uint8_t *w;
    size_t w_row;
    float *xt; /* [cols][n_pad]: the activations token-minor */
    int64_t cols, rows;
    int n, n_pad;
    float *y;
} f16_job;

/* Floats of one thread's share of wpanel: F16_PANEL rows of weights and
 * of their outputs. */
static size_t f16_per_thread(const llm_ctx *c) { return (size_t)F16_PANEL * ((size_t)c->widest + (size_t)N_BATCH); }

static void f16_panels(void *ctx, size_t b, size_t e, int thread) {
    const f16_job *j = ctx;
    const llm_ctx *c = j->c;
    void (*deq)(const void *, float *, int64_t) = c->k->deq[LLM_TYPE_F16];
    float *wp = c->wpanel + (size_t)thread * f16_per_thread(c), *yt = wp + (size_t)F16_PANEL * (size_t)j->cols;
    for (size_t p = b; p < e; p++) {
        int64_t r0 = (int64_t)p * F16_PANEL, nr = j->rows - r0 < F16_PANEL ? j->rows - r0 : F16_PANEL;
        int64_t nr4 = (nr + LLM_GEMM_ROWS - 1) / LLM_GEMM_ROWS * LLM_GEMM_ROWS;
        for (int64_t r = 0; r < nr4; r++) {
            float *dst = wp + r * j->cols;
            if (r >= nr) memset(dst, 0, (size_t)j->cols * 4); /* a last group's missing rows */
            else if (deq) deq(j->w + (size_t)(r0 + r) * j->w_row, dst, j->cols);
            else llm_dequant_row(LLM_TYPE_F16, j->w + (size_t)(r0 + r) * j->w_row, dst, j->cols);
        }
        memset(yt, 0, (size_t)nr4 * (size_t)j->n_pad * 4);
        for (int64_t k0 = 0; k0 < j->cols; k0 += F16_KB) {
            int64_t kb = j->cols - k0 < F16_KB ? j->cols - k0 : F16_KB;
            for (int64_t r = 0; r < nr4; r += LLM_GEMM_ROWS)
                c->k->gemm4(wp + r * j->cols + k0, (size_t)j->cols, j->xt + (size_t)k0 * (size_t)j->n_pad,
                            (size_t)j->n_pad, kb, j->n_pad, yt + (size_t)r * (size_t)j->n_pad, (size_t)j->n_pad);
        }
        for (int t = 0; t < j->n; t++) {
            float *out = j->y + (size_t)t * (size_t)j->rows + (size_t)r0;
            for (int64_t r = 0; r < nr; r++) out[r] = yt[(size_t)r * (size_t)j->n_pad + (size_t)t];
        }
    }
}

/* The activations token-minor: xt[k][t] from the F16 rows in pack, for
 * the columns of blocks [b, e) of 64 (zeros past the last token). */
static void f16_transpose(void *ctx, size_t b, size_t e, int thread) {
    (void)thread;
    const f16_job *j = ctx;
    const llm_ctx *c = j->c;
    void (*deq)(const void *, float *, int64_t) = c->k->deq[LLM_TYPE_F16];
    float *xt = j->xt, v[64];
    size_t h_row = llm_row_bytes(LLM_TYPE_F16, j->cols);
    for (size_t blk = b; blk < e; blk++) {
        int64_t k0 = (int64_t)blk * 64, nk = j->cols - k0 < 64 ? j->cols - k0 : 64;
        for (int t = 0; t < j->n_pad; t++) {
            if (t >= j->n) memset(v, 0, sizeof v);
            else if (deq) deq(c->pack + (size_t)t * h_row + (size_t)k0 * 2, v, nk);
            else llm_dequant_row(LLM_TYPE_F16, c->pack + (size_t)t * h_row + (size_t)k0 * 2, v, nk);
            for (int64_t i = 0; i < nk; i++) xt[(size_t)(k0 + i) * (size_t)j->n_pad + (size_t)t] = v[i];
        }
    }
}

static void matmul_f16_gemm(llm_ctx *c, const llm_tensor *w, const float *x, int n, float *y) {
    int64_t cols = w->ne[0], rows = w->ne[1];
    int n_pad = (n + 15) / 16 * 16;
    if (!c->wpanel) c->wpanel = xmalloc((size_t)c->n_threads * f16_per_thread(c) * 4);
    /* x rounded to F16 (into pack), then token-minor in F32 (into act) */
    size_t h_row = llm_row_bytes(LLM_TYPE_F16, cols);
    for (int t = 0; t < n; t++) c->k->quant[LLM_TYPE_F16](x + (size_t)t * cols, c->pack + (size_t)t * h_row, cols);
    f16_job j = {c, w->data, llm_row_bytes(LLM_TYPE_F16, cols), (float *)c->act, cols, rows, n, n_pad, y};
    size_t blocks = (size_t)((cols + 63) / 64);
    if (c->n_threads == 1) f16_transpose(&j, 0, blocks, 0);
    else pool_for(c->pool, blocks, f16_transpose, &j);
    size_t panels = (size_t)((rows + F16_PANEL - 1) / F16_PANEL);
    if (c->n_threads == 1 || panels == 1) f16_panels(&j, 0, panels, 0);
    else pool_for(c->pool, panels, f16_panels, &j);
}

/* Matrices laid out 16 rows to a group (repack.c): the tokens' rows
 * rounded to the dot type (Q4_0/Q5_0: Q8_0, then packed per block for the
 * kernels, whole tiles of r16.t tokens and the rest one by one; K-quants:
 * Q8_K rows as they are), the work cut in groups of rows. */
typedef struct r16_job {
    llm_ctx *c;
    llm_type wt;
    llm_r16 k;
    const uint8_t *w;
    bool packed;                      /* activations as llm_x8 groups (else the act rows) */
    size_t g_bytes, a_row, one_bytes; /* a group of 16 weight rows; a token's row; its packed blocks */
    int64_t cols, rows;
    int n, tiled; /* tokens in whole tiles (a multiple of k.t) */
    float *y;
} r16_job;

static const uint8_t *r16_acts(const r16_job *j, int t) {
    if (!j->packed) return j->c->act + (size_t)t * j->a_row;
    return j->c->pack + (size_t)(t < j->tiled ? t / j->k.t * j->k.t : t) * j->one_bytes;
}

static void r16_pack(void *ctx, size_t b, size_t e, int thread) {
    (void)thread;
    const r16_job *j = ctx;
    size_t tiles = j->tiled ? (size_t)(j->tiled / j->k.t) : 0;
    for (size_t i = b; i < e; i++) { /* item i: tile i, then the tokens past the tiles one by one */
        int T = i < tiles ? j->k.t : 1, t = i < tiles ? (int)i * T : j->tiled + (int)(i - tiles);
        llm_r16_pack_acts(j->wt, j->c->act + (size_t)t * j->a_row, j->a_row, T, j->cols, (uint8_t *)r16_acts(j, t));
    }
}

static void r16_groups(void *ctx, size_t b, size_t e, int thread) {
    (void)thread;
    const r16_job *j = ctx;
    int T = j->k.t;
    /* tokens in chunks whose activations stay in L2 */
    int chunk = (int)(MM_L2_BYTES / (j->packed ? j->one_bytes : j->a_row));
    chunk = chunk < T ? T : chunk / T * T;
    if (j->n == 1 && j->k.four) { /* generation: the range in four parts read side by side */
        size_t part = (e - b) / 4;
        float out[4 * LLM_R16];
        for (size_t i = 0; i < part; i++) {
            j->k.four(j->w + (b + i) * j->g_bytes, part * j->g_bytes, r16_acts(j, 0), j->cols, out);
            for (int g = 0; g < 4; g++) memcpy(j->y + (b + i + g * part) * LLM_R16, out + LLM_R16 * g, sizeof(float) * LLM_R16);
        }
        b += 4 * part;
    }
    for (int t0 = 0; t0 < j->n; t0 += chunk) {
        int t1 = t0 + chunk < j->n ? t0 + chunk : j->n;
        for (size_t g = b; g < e; g++) {
            const uint8_t *w = j->w + g * j->g_bytes;
            float *y = j->y + g * LLM_R16;
            int t = t0;
            for (; t + T <= t1 && t < j->tiled; t += T)
                j->k.tile(w, r16_acts(j, t), j->cols, y + (size_t)t * (size_t)j->rows, (size_t)j->rows);
            for (; t < t1; t++) j->k.one(w, r16_acts(j, t), j->cols, y + (size_t)t * (size_t)j->rows, 0);
        }
    }
}

/* Room for each thread's rows unpacked for a prompt (at least a group). */
#define R16_BUF (1u << 20)

typedef struct unpack_job {
    const llm_tensor *w;
    uint8_t *buf;
    size_t per_thread; /* bytes of buf per thread */
    mm_job mm;
} unpack_job;

/* A laid-out matrix in a prompt, where the set's tiles read the file's
 * layout: each thread puts its rows back a block at a time into its own
 * buffer and runs them as the file's rows; the buffer's rows stay in
 * cache for the whole prompt while its tokens stream past. */
static void unpack_rows(void *ctx, size_t b, size_t e, int thread) {
    const unpack_job *u = ctx;
    size_t rb = u->mm.w_row, per = u->per_thread / rb / LLM_R16 * LLM_R16; /* rows at a time */
    uint8_t *buf = u->buf + (size_t)thread * u->per_thread;
    for (size_t r0 = b * LLM_R16; r0 < e * LLM_R16; r0 += per) {
        size_t nr = e * LLM_R16 - r0 < per ? e * LLM_R16 - r0 : per;
        for (size_t g = 0; g < nr; g += LLM_R16)
            llm_r16_unpack(u->w->type, (const uint8_t *)u->w->data + (r0 + g) * rb, u->mm.cols, buf + g * rb, rb);
        mm_job local = u->mm;
        local.w = buf;
        local.y = u->mm.y + r0;
        mm_rows(&local, 0, nr, thread);
    }
}

static void matmul_rows(llm_ctx *c, const llm_tensor *w, const float *x, int n, float *y, const uint8_t *data);

static void matmul_r16(llm_ctx *c, const llm_tensor *w, const float *x, int n, float *y) {
    int64_t cols = w->ne[0], rows = w->ne[1];
    llm_r16 k = c->k->r16[w->type];
    llm_type at = llm_type_get(w->type)->dot_type;
    llm_tile ft = c->k->tile[w->type];
    if (!k.tile && ft.fn && n >= ft.t) { /* the file's rows for the set's tiles */
        matmul_rows(c, w, x, n, y, NULL);
        return;
    }
    int T = k.tile && n >= k.t ? k.t : 0;
    r16_job j = {c, w->type, k, w->data, at == LLM_TYPE_Q8_0, LLM_R16 * llm_row_bytes(w->type, cols),
                 llm_row_bytes(at, cols), (size_t)(cols / 32) * sizeof(llm_x8), cols, rows, n,
                 T ? n / T * T : 0, y};
    if (!T) j.k.t = 1;
    bool wide = c->n_threads > 1 && (double)n * (double)cols >= 65536.0;
    prep_job pj = {c, at, {0}, x, cols, j.a_row, 0, n};
    if (n > 1 && wide) pool_for(c->pool, (size_t)n, prep_rows, &pj);
    else prep_rows(&pj, 0, (size_t)n, 0);
    if (j.packed) {
        size_t items = (size_t)(T ? j.tiled / T : 0) + (size_t)(n - j.tiled);
        if (items > 1 && wide) pool_for(c->pool, items, r16_pack, &j);
        else r16_pack(&j, 0, items, 0);
    }
    size_t groups = (size_t)(rows / LLM_R16);
    if ((double)rows * (double)cols * n < 32768.0 || c->n_threads == 1) r16_groups(&j, 0, groups, 0);
    else pool_for(c->pool, groups, r16_groups, &j);
}

/* y[t][r] = W[r] . x[t] for T = n rows of x. */
static void matmul(llm_ctx *c, const llm_tensor *w, const float *x, int n, float *y) {
    if (w->type == LLM_TYPE_F16 && n >= F16_GEMM_MIN_TOKENS && c->k->gemm4 && w->ne[0] <= c->widest) {
        matmul_f16_gemm(c, w, x, n, y);
        return;
    }
    if (w->layout == LLM_LAYOUT_R16) {
        matmul_r16(c, w, x, n, y);
        return;
    }
    matmul_rows(c, w, x, n, y, w->data);
}

/* The file's layout: rows from data, or, with data NULL, a laid-out
 * matrix's rows unpacked by each thread (unpack_rows). */
static void matmul_rows(llm_ctx *c, const llm_tensor *w, const float *x, int n, float *y, const uint8_t *data) {
    llm_type at = llm_type_get(w->type)->dot_type;
    int64_t cols = w->ne[0], rows = w->ne[1];
    size_t a_row = llm_row_bytes(at, cols);
    llm_tile tl = c->k->tile[w->type];
    /* once per product: every row tile reads the same packed tokens */
    bool packed = tl.fn && tl.pack && n >= tl.t;
    size_t group = packed ? (size_t)(cols / llm_type_get(at)->block) * (size_t)tl.pack_bytes : 0;
    prep_job pj = {c, at, tl, x, cols, a_row, group, n};
    size_t items = packed ? (size_t)((n + tl.t - 1) / tl.t) : (size_t)n;
    if (items > 1 && c->n_threads > 1 && (double)n * (double)cols >= 65536.0) pool_for(c->pool, items, prep_rows, &pj);
    else prep_rows(&pj, 0, items, 0);
    mm_job j = {c->k->dot[w->type], c->k->rows[w->type], tl, data, c->act,
                llm_row_bytes(w->type, cols), a_row, packed ? c->pack : NULL, group, cols, rows, n, y};
    /* Small products are not worth waking the pool. */
    bool solo = (double)rows * (double)cols * n < 32768.0 || c->n_threads == 1;
    if (!data) {
        size_t need = LLM_R16 * j.w_row; /* a group of rows at least */
        if (need < R16_BUF) need = R16_BUF;
        if (need > c->rowbuf_per) {
            free(c->rowbuf);
            c->rowbuf = xmalloc((size_t)c->n_threads * need);
            c->rowbuf_per = need;
        }
        unpack_job u = {w, c->rowbuf, c->rowbuf_per, j};
        if (solo) unpack_rows(&u, 0, (size_t)(rows / LLM_R16), 0);
        else pool_for(c->pool, (size_t)(rows / LLM_R16), unpack_rows, &u);
    } else if (solo) mm_rows(&j, 0, (size_t)rows, 0);
    else pool_for(c->pool, (size_t)rows, mm_rows, &j);
}

/* A weight's product plus its adapter pair's s B (A x), when there is one
 * (layer -1: the output). */
static void wmm(llm_ctx *c, int layer, int slot, const llm_tensor *w, const float *x, int n, float *y) {
    matmul(c, w, x, n, y);
    if (!c->lora) return;
    const llm_lora_pair *p = layer < 0 ? &c->lora->output : &c->lora->pairs[(size_t)layer * LLM_LORA_SLOTS + slot];
    if (!p->a) return;
    matmul(c, p->a, x, n, c->lora_t);
    matmul(c, p->b, c->lora_t, n, c->lora_y);
    float s = llm_lora_factor(c->lora, p, c->lora_scale);
    for (size_t i = 0; i < (size_t)n * (size_t)p->b->ne[1]; i++) y[i] += s * c->lora_y[i];
}

int llm_ctx_set_lora(llm_ctx *c, const llm_lora *l, float scale, tailor_error *err) {
    if (l && (l->n_layer != c->m->hp.n_layer))
        return err_set(err, TAILOR_EINVAL, "the adapter %s was loaded for another model", l->gguf->path);
    free(c->lora_t);
    free(c->lora_y);
    c->lora_t = c->lora_y = NULL;
    c->lora = l;
    c->lora_scale = scale;
    if (l) {
        /* The logits' rows are as many as the chunk's, like every other product. */
        c->lora_t = xmalloc((size_t)N_BATCH * (size_t)l->max_rank * sizeof(float));
        c->lora_y = xmalloc((size_t)N_BATCH * (size_t)l->max_out * sizeof(float));
    }
    c->n_past = 0;
    return 0;
}

int llm_ctx_load_lora(llm_ctx *c, const char *path, float scale, tailor_error *err) {
    llm_lora *l;
    int rc = llm_lora_load(c->m, path, &l, err);
    if (!rc) rc = llm_ctx_set_lora(c, l, scale, err);
    if (rc) {
        llm_lora_free(l);
        return rc;
    }
    llm_lora_free(c->lora_owned);
    c->lora_owned = l;
    return 0;
}

/* y = (x / rms(x)) * w, with the reference's double accumulation. */
static void rmsnorm(float *y, const float *x, const float *w, int64_t n, float eps) {
    double sum = 0;
    for (int64_t i = 0; i < n; i++) sum += (double)(x[i] * x[i]);
    float mean = (float)(sum / (double)n);
    float scale = 1.0f / sqrtf(mean + eps);
    for (int64_t i = 0; i < n; i++) y[i] = (x[i] * scale) * w[i];
}

/* cos/sin of each rotated pair for each token: angles grow by repeated
 * multiplication in float, as the reference computes them. */
static void rope_table(llm_ctx *c, int n) {
    const llm_hparams *hp = &c->m->hp;
    int half = hp->rope_dim / 2;
    float theta_scale = powf(hp->rope_base, -2.0f / (float)hp->rope_dim);
    const float *ff = c->m->rope_freqs ? c->m->rope_freqs->data : NULL;
    for (int t = 0; t < n; t++) {
        float theta = (float)(c->n_past + t);
        float *cs = c->rope_cs + (size_t)t * (size_t)hp->rope_dim;
        for (int i = 0; i < half; i++) {
            float a = hp->rope_freq_scale * (ff ? theta / ff[i] : theta);
            cs[2 * i] = cosf(a);
            cs[2 * i + 1] = sinf(a);
            theta *= theta_scale;
        }
    }
}

static void rope(const llm_ctx *c, float *v, int n, int heads) {
    const llm_hparams *hp = &c->m->hp;
    int S = hp->head_dim, half = hp->rope_dim / 2;
    for (int t = 0; t < n; t++) {
        const float *cs = c->rope_cs + (size_t)t * (size_t)hp->rope_dim;
        for (int h = 0; h < heads; h++) {
            float *x = v + ((size_t)t * (size_t)heads + (size_t)h) * (size_t)S;
            for (int i = 0; i < half; i++) {
                int i0 = hp->rope_neox ? i : 2 * i, i1 = hp->rope_neox ? i + hp->rope_dim / 2 : 2 * i + 1;
                float x0 = x[i0], x1 = x[i1], co = cs[2 * i], si = cs[2 * i + 1];
                x[i0] = x0 * co - x1 * si;
                x[i1] = x0 * si + x1 * co;
            }
        }
    }
}

typedef struct attn_job {
    llm_ctx *c;
    int layer, n;
} attn_job;

/* One (token, KV head) pair per item: the group of query heads that share
 * the KV head is scored in one pass over its cached K rows, and one pass
 * over V, so no cached row is read twice: softmax(q K^T * scale) V over the
 * positions up to the token's own. Queries are rounded to the cache's type
 * for the K dot (as the reference does with an F16 cache). */
static void attn_items(void *ctx, size_t b, size_t e, int thread) {
    const attn_job *j = ctx;
    llm_ctx *c = j->c;
    const llm_hparams *hp = &c->m->hp;
    int S = hp->head_dim, H = hp->n_head, HK = hp->n_head_kv, G = H / HK;
    size_t DQ = (size_t)H * (size_t)S;
    const uint8_t *K = c->kc + (size_t)j->layer * (size_t)c->n_ctx * c->kv_row;
    const uint8_t *V = c->vc + (size_t)j->layer * (size_t)c->n_ctx * c->kv_row;
    float *sc = c->scores + (size_t)thread * ((size_t)G * (size_t)c->n_ctx + (size_t)S);
    float *vrow = sc + (size_t)G * (size_t)c->n_ctx;
    uint8_t *qc = c->qconv + (size_t)thread * (size_t)G * (size_t)S * 4;
    float scale = 1.0f / sqrtf((float)S);
    llm_type kt = c->kv_type, qt = llm_type_get(kt)->dot_type;
    llm_dot_fn dot = c->k->dot[kt];
    size_t qrow = llm_row_bytes(qt, S);
    for (size_t it = b; it < e; it++) {
        int t = (int)(it / (size_t)HK), kvh = (int)(it % (size_t)HK);
        int last = c->n_past + t;
        const float *q = c->q + (size_t)t * DQ + (size_t)kvh * (size_t)G * (size_t)S;
        for (int g = 0; g < G; g++) c->k->quant[qt](q + (size_t)g * (size_t)S, qc + (size_t)g * qrow, S);
        float max[64];
        for (int g = 0; g < G; g++) max[g] = -INFINITY;
        for (int p = 0; p <= last; p++) {
            const uint8_t *kr = K + (size_t)p * c->kv_row + (size_t)kvh * c->kv_head;
            for (int g = 0; g < G; g++) {
                float v = dot(kr, qc + (size_t)g * qrow, S) * scale;
                sc[(size_t)g * (size_t)c->n_ctx + (size_t)p] = v;
                if (v > max[g]) max[g] = v;
            }
        }
        float inv[64];
        for (int g = 0; g < G; g++) {
            float *s = sc + (size_t)g * (size_t)c->n_ctx;
            double sum = 0;
            for (int p = 0; p <= last; p++) {
                s[p] = expf(s[p] - max[g]);
                sum += s[p];
            }
            inv[g] = (float)(1.0 / sum);
        }
        float *o = c->att + (size_t)t * DQ + (size_t)kvh * (size_t)G * (size_t)S;
        memset(o, 0, (size_t)G * (size_t)S * 4);
        for (int p = 0; p <= last; p++) {
            const uint8_t *vr = V + (size_t)p * c->kv_row + (size_t)kvh * c->kv_head;
            const float *vv = (const float *)vr;
            if (kt != LLM_TYPE_F32) {
                llm_dequant_row(kt, vr, vrow, S);
                vv = vrow;
            }
            for (int g = 0; g < G; g++) {
                float wgt = sc[(size_t)g * (size_t)c->n_ctx + (size_t)p] * inv[g];
                float *og = o + (size_t)g * (size_t)S;
                for (int i = 0; i < S; i++) og[i] += wgt * vv[i];
            }
        }
    }
}

/* ---- attention over a prompt chunk, in blocks ------------------------- */

/* An item is ATT_QB consecutive tokens of one KV head: their G query heads
 * (up to ATT_QB * G rows) go over the cached keys ATT_KB at a time, with the
 * softmax kept online (a running max and sum per row; the output rescaled
 * when the max grows), so no row of scores longer than ATT_KB exists and
 * each cached K and V row is read and converted once per item instead of
 * once per token. */
#define ATT_QB 16
#define ATT_KB LLM_ATT_KB

/* Floats of one thread's scratch: queries and outputs [QB*G][S], keys
 * transposed [S][KB], values [KB][S], scores [QB*G][KB], max and sum. */
static size_t att_scratch(int G, int S) {
    size_t R = (size_t)ATT_QB * (size_t)G;
    return 2 * R * (size_t)S + 2 * (size_t)ATT_KB * (size_t)S + R * ATT_KB + 2 * R + 16;
}

/* Items in an order that gives each thread's contiguous range a fair
 * share: the causal mask makes late token blocks the heavy ones, so the
 * blocks alternate first, last, second, second last... */
static int att_block_of(size_t item, int nblk) {
    int k = (int)item;
    return k % 2 == 0 ? k / 2 : nblk - 1 - k / 2;
}

static void attn_blocked(void *ctx, size_t b, size_t e, int thread) {
    const attn_job *j = ctx;
    llm_ctx *c = j->c;
    const llm_hparams *hp = &c->m->hp;
    int S = hp->head_dim, H = hp->n_head, HK = hp->n_head_kv, G = H / HK;
    size_t DQ = (size_t)H * (size_t)S;
    const uint8_t *K = c->kc + (size_t)j->layer * (size_t)c->n_ctx * c->kv_row;
    const uint8_t *V = c->vc + (size_t)j->layer * (size_t)c->n_ctx * c->kv_row;
    llm_type kt = c->kv_type, qt = llm_type_get(kt)->dot_type;
    int nblk = (j->n + ATT_QB - 1) / ATT_QB;
    size_t R0 = (size_t)ATT_QB * (size_t)G;
    float *Q = c->ablk + (size_t)thread * att_scratch(G, S);
    float *O = Q + R0 * (size_t)S, *KT = O + R0 * (size_t)S, *Vb = KT + (size_t)ATT_KB * (size_t)S;
    float *sc = Vb + (size_t)ATT_KB * (size_t)S, *mx = sc + R0 * ATT_KB, *sum = mx + R0;
    float *krow = c->scores + (size_t)thread * ((size_t)G * (size_t)c->n_ctx + (size_t)S);
    uint8_t *qc = c->qconv + (size_t)thread * (size_t)G * (size_t)S * 4;
    float scale = 1.0f / sqrtf((float)S);
    int allow[ATT_QB * 64];
    for (size_t it = b; it < e; it++) {
        int blk = att_block_of(it / (size_t)HK, nblk), kvh = (int)(it % (size_t)HK);
        int t0 = blk * ATT_QB, t1 = t0 + ATT_QB < j->n ? t0 + ATT_QB : j->n;
        int R = (t1 - t0) * G;
        /* queries rounded to the cache's dot type, as the token path does */
        for (int t = t0; t < t1; t++)
            for (int g = 0; g < G; g++) {
                const float *q = c->q + (size_t)t * DQ + ((size_t)kvh * (size_t)G + (size_t)g) * (size_t)S;
                float *dst = Q + ((size_t)(t - t0) * (size_t)G + (size_t)g) * (size_t)S;
                if (kt == LLM_TYPE_F32) memcpy(dst, q, (size_t)S * 4);
                else {
                    llm_quant_row(qt, q, qc, S);
                    llm_dequant_row(qt, qc, dst, S);
                }
            }
        for (int r = 0; r < R; r++) mx[r] = -INFINITY, sum[r] = 0;
        memset(O, 0, (size_t)R * (size_t)S * 4);
        int last = c->n_past + t1 - 1;
        for (int k0 = 0; k0 <= last; k0 += ATT_KB) {
            int kn = last + 1 - k0 < ATT_KB ? last + 1 - k0 : ATT_KB;
            for (int k = 0; k < ATT_KB; k++) {
                if (k < kn) {
                    size_t off = (size_t)(k0 + k) * c->kv_row + (size_t)kvh * c->kv_head;
                    const float *kr = (const float *)(K + off);
                    if (kt != LLM_TYPE_F32) {
                        llm_dequant_row(kt, K + off, krow, S);
                        kr = krow;
                    }
                    for (int d = 0; d < S; d++) KT[(size_t)d * ATT_KB + (size_t)k] = kr[d];
                    if (kt == LLM_TYPE_F32) memcpy(Vb + (size_t)k * (size_t)S, V + off, (size_t)S * 4);
                    else llm_dequant_row(kt, V + off, Vb + (size_t)k * (size_t)S, S);
                } else
                    for (int d = 0; d < S; d++) KT[(size_t)d * ATT_KB + (size_t)k] = 0;
            }
            for (int t = t0; t < t1; t++) {
                int vis = c->n_past + t + 1 - k0; /* keys up to the token's own position */
                if (vis > kn) vis = kn;
                for (int g = 0; g < G; g++) allow[(t - t0) * G + g] = vis;
            }
            c->k->att(R, S, Q, KT, Vb, sc, O, mx, sum, allow, scale);
        }
        for (int t = t0; t < t1; t++)
            for (int g = 0; g < G; g++) {
                size_t r = (size_t)(t - t0) * (size_t)G + (size_t)g;
                float inv = 1.0f / sum[r];
                float *o = c->att + (size_t)t * DQ + ((size_t)kvh * (size_t)G + (size_t)g) * (size_t)S;
                for (int d = 0; d < S; d++) o[d] = O[r * (size_t)S + (size_t)d] * inv;
            }
    }
}

/* SwiGLU over a prompt chunk's tokens [b, e). */
static void swiglu_rows(void *ctx, size_t b, size_t e, int thread) {
    (void)thread;
    llm_ctx *c = ctx;
    size_t F = (size_t)c->m->hp.n_ff;
    c->k->swiglu(c->gate + b * F, c->up + b * F, (int64_t)((e - b) * F));
}

static void add_bias(float *y, const llm_tensor *b, int n, int64_t dim) {
    if (!b) return;
    const float *bb = b->data;
    for (int t = 0; t < n; t++)
        for (int64_t i = 0; i < dim; i++) y[(size_t)t * (size_t)dim + (size_t)i] += bb[i];
}

static void head_norm(float *v, const llm_tensor *w, int n, int heads, int S, float eps) {
    if (!w) return;
    for (size_t r = 0; r < (size_t)n * (size_t)heads; r++) rmsnorm(v + r * (size_t)S, v + r * (size_t)S, w->data, S, eps);
}

/* One chunk of n <= N_BATCH tokens at positions n_past..; writes the
 * final-norm rows into hid [n][D]. */
static void forward_chunk(llm_ctx *c, const int32_t *tokens, int n, float *hid, int64_t cap_off, int64_t cap_n) {
    const llm_model *m = c->m;
    const llm_hparams *hp = &m->hp;
    int64_t D = hp->n_embd, F = hp->n_ff, S = hp->head_dim;
    int64_t DQ = (int64_t)hp->n_head * S, DKV = (int64_t)hp->n_head_kv * S;
    for (int t = 0; t < n; t++) /* (a tied embedding may be laid out for the output's product) */
        llm_tensor_rows(m->tok_embd, tokens[t], tokens[t] + 1, c->x + (size_t)t * (size_t)D, false);
    rope_table(c, n);
    for (int l = 0; l < hp->n_layer; l++) {
        const llm_layer *L = &m->layers[l];
        for (int t = 0; t < n; t++)
            rmsnorm(c->h + (size_t)t * (size_t)D, c->x + (size_t)t * (size_t)D, L->attn_norm->data, D, hp->rms_eps);
        wmm(c, l, LLM_LORA_Q, L->wq, c->h, n, c->q);
        wmm(c, l, LLM_LORA_K, L->wk, c->h, n, c->kb);
        wmm(c, l, LLM_LORA_V, L->wv, c->h, n, c->vb);
        add_bias(c->q, L->bq, n, DQ);
        add_bias(c->kb, L->bk, n, DKV);
        add_bias(c->vb, L->bv, n, DKV);
        head_norm(c->q, L->q_norm, n, hp->n_head, (int)S, hp->rms_eps);
        head_norm(c->kb, L->k_norm, n, hp->n_head_kv, (int)S, hp->rms_eps);
        rope(c, c->q, n, hp->n_head);
        rope(c, c->kb, n, hp->n_head_kv);
        size_t base = ((size_t)l * (size_t)c->n_ctx + (size_t)c->n_past) * c->kv_row;
        for (int t = 0; t < n; t++) {
            llm_quant_row(c->kv_type, c->kb + (size_t)t * (size_t)DKV, c->kc + base + (size_t)t * c->kv_row, DKV);
            llm_quant_row(c->kv_type, c->vb + (size_t)t * (size_t)DKV, c->vc + base + (size_t)t * c->kv_row, DKV);
        }
        attn_job aj = {c, l, n};
        if (n >= ATT_QB / 2 && c->k->att && hp->head_dim % c->k->att_align == 0) { /* a prompt chunk */
            size_t items = (size_t)((n + ATT_QB - 1) / ATT_QB) * (size_t)hp->n_head_kv;
            if (c->n_threads == 1) attn_blocked(&aj, 0, items, 0);
            else pool_for(c->pool, items, attn_blocked, &aj);
        } else {
            size_t items = (size_t)n * (size_t)hp->n_head_kv;
            if (c->n_threads == 1 || (size_t)(c->n_past + n) * items < 4096) attn_items(&aj, 0, items, 0);
            else pool_for(c->pool, items, attn_items, &aj);
        }
        wmm(c, l, LLM_LORA_O, L->wo, c->att, n, c->h);
        for (size_t i = 0; i < (size_t)n * (size_t)D; i++) c->x[i] += c->h[i];

        for (int t = 0; t < n; t++)
            rmsnorm(c->h + (size_t)t * (size_t)D, c->x + (size_t)t * (size_t)D, L->ffn_norm->data, D, hp->rms_eps);
        wmm(c, l, LLM_LORA_GATE, L->ffn_gate, c->h, n, c->gate);
        wmm(c, l, LLM_LORA_UP, L->ffn_up, c->h, n, c->up);
        if (n > 1 && c->n_threads > 1) pool_for(c->pool, (size_t)n, swiglu_rows, c);
        else c->k->swiglu(c->gate, c->up, (int64_t)n * F);
        wmm(c, l, LLM_LORA_DOWN, L->ffn_down, c->gate, n, c->h);
        for (size_t i = 0; i < (size_t)n * (size_t)D; i++) c->x[i] += c->h[i];
        if (c->capture)
            memcpy(c->capture + ((size_t)l * (size_t)cap_n + (size_t)cap_off) * (size_t)D, c->x, (size_t)n * (size_t)D * 4);
    }
    for (int t = 0; t < n; t++)
        rmsnorm(hid + (size_t)t * (size_t)D, c->x + (size_t)t * (size_t)D, m->output_norm->data, D, hp->rms_eps);
    if (c->capture)
        memcpy(c->capture + ((size_t)hp->n_layer * (size_t)cap_n + (size_t)cap_off) * (size_t)D, hid, (size_t)n * (size_t)D * 4);
    c->n_past += n;
}

/* The mode not in use runs one token to refresh its time: after PROBE
 * tokens, or after 4 * PROBE when it was more than a quarter slower. */
#define PROBE 32

int llm_decode(llm_ctx *c, const int32_t *tokens, int32_t n, bool all_logits, tailor_error *err) {
    if (c->m->arch == LLM_ARCH_BERT)
        return err_set(err, TAILOR_EUNSUPPORTED, "%s is an encoder (bert): it embeds text (tailor llm embed), it does not "
                                                  "generate", c->m->gguf->path);
    if (n != 1 || c->n_threads == 1) return decode(c, tokens, n, all_logits, err);
    bool solo_best = c->ema_solo > 0 && c->ema_all > 0 && c->ema_solo < 0.95 * c->ema_all;
    double ratio = c->ema_solo > 0 && c->ema_all > 0
                       ? (solo_best ? c->ema_all / c->ema_solo : c->ema_solo / c->ema_all)
                       : 1.0;
    int64_t every = ratio > 1.25 ? 4 * PROBE : PROBE;
    bool probe = c->since_probe >= every - 1 || c->ema_all == 0 || (c->tokens > 2 && c->ema_solo == 0);
    bool solo = probe ? !solo_best : solo_best;
    if (c->ema_all == 0) solo = false;
    c->since_probe = probe ? 0 : c->since_probe + 1;
    pool_set_solo(c->pool, solo);
    uint64_t t0 = timer_now_ns();
    int rc = decode(c, tokens, n, all_logits, err);
    double s = timer_seconds_since(t0);
    pool_set_solo(c->pool, false);
    double *ema = solo ? &c->ema_solo : &c->ema_all;
    *ema = *ema == 0 ? s : 0.75 * *ema + 0.25 * s;
    c->tokens++;
    return rc;
}

/* The decode itself. */
static int decode(llm_ctx *c, const int32_t *tokens, int32_t n, bool all_logits, tailor_error *err) {
    const llm_hparams *hp = &c->m->hp;
    if (n <= 0) return err_set(err, TAILOR_EINVAL, "decode: no tokens");
    if (n > c->n_ctx - c->n_past)
        return err_set(err, TAILOR_EINVAL, "decode: %d tokens after %d exceed the context of %d", n, c->n_past,
                       c->n_ctx);
    for (int32_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= hp->n_vocab)
            return err_set(err, TAILOR_EINVAL, "decode: token id %d out of range [0, %d)", tokens[i], hp->n_vocab);
    size_t D = (size_t)hp->n_embd, V = (size_t)hp->n_vocab;
    if ((size_t)n * D > c->hidden_cap) {
        c->hidden_cap = (size_t)n * D;
        c->hidden = xrealloc(c->hidden, c->hidden_cap * 4);
    }
    size_t rows = all_logits ? (size_t)n : 1;
    if (rows * V > c->logits_cap) {
        c->logits_cap = rows * V;
        c->logits = xrealloc(c->logits, c->logits_cap * 4);
    }
    for (int32_t t0 = 0; t0 < n; t0 += N_BATCH) {
        int nb = n - t0 < N_BATCH ? n - t0 : N_BATCH;
        forward_chunk(c, tokens + t0, nb, c->hidden + (size_t)t0 * D, t0, n);
    }
    /* The LM head, in chunks of the scratch size. */
    const float *from = all_logits ? c->hidden : c->hidden + (size_t)(n - 1) * D;
    for (size_t r0 = 0; r0 < rows; r0 += N_BATCH) {
        int nb = (int)(rows - r0 < N_BATCH ? rows - r0 : N_BATCH);
        wmm(c, -1, 0, c->m->output, from + r0 * D, nb, c->logits + r0 * V);
    }
    c->last_n = n;
    c->last_all = all_logits;
    return 0;
}
