/* bert.c — the BERT encoder of embedding GGUF files (bge, e5, MiniLM),
 * as llama.cpp's build_bert computes it: token + type 0 + position
 * embeddings, LayerNorm, then per block bidirectional attention with
 * biases and post-LayerNorm, a GELU feed-forward and post-LayerNorm.
 * GELU is the tanh form through f16 rounding, as ggml's CPU table, so the
 * vectors match llama.cpp's. Weights are dequantized to F32 at load (an
 * embedding model is small); the products run through OpenBLAS. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm/llm.h"

typedef struct bert_layer {
    float *wq, *bq, *wk, *bk, *wv, *bv, *wo, *bo, *ln1_w, *ln1_b, *up, *b_up, *down, *b_down, *ln2_w, *ln2_b;
} bert_layer;

struct llm_bert {
    int32_t d, n_layer, n_head, n_ff, n_pos;
    float eps;
    int pooling; /* the file's: 1 mean, 2 cls */
    float *tok, *pos, *type0, *ln_w, *ln_b;
    bert_layer *layers;
    VEC(float *) owned;
};

/* The tensor as F32 rows (owned by b), checking its shape. */
static float *weights(const llm_model *m, llm_bert *b, const char *name, int64_t ne0, int64_t ne1, tailor_error *err) {
    if (err->code) return NULL;
    const llm_tensor *t = llm_gguf_tensor(m->gguf, name);
    if (!t) {
        err_set(err, TAILOR_EDATA, "%s: tensor '%s' missing", m->gguf->path, name);
        return NULL;
    }
    if (t->ne[0] != ne0 || (ne1 ? t->ne[1] : 1) != (ne1 ? ne1 : 1) || t->ne[2] != 1 || t->ne[3] != 1 ||
        !llm_type_get(t->type)->supported) {
        err_set(err, TAILOR_EDATA, "%s: tensor '%s' is [%lld, %lld] of type %s, expected [%lld, %lld]", m->gguf->path,
                name, (long long)t->ne[0], (long long)t->ne[1], llm_type_get(t->type)->name, (long long)ne0,
                (long long)(ne1 ? ne1 : 1));
        return NULL;
    }
    int64_t rows = ne1 ? ne1 : 1;
    float *w = xmalloc((size_t)(ne0 * rows) * sizeof *w);
    size_t row = llm_row_bytes(t->type, ne0);
    for (int64_t r = 0; r < rows; r++) llm_dequant_row(t->type, (const char *)t->data + (size_t)r * row, w + r * ne0, ne0);
    vec_push(&b->owned, w);
    return w;
}

static float *blk(const llm_model *m, llm_bert *b, int i, const char *what, int64_t ne0, int64_t ne1, tailor_error *err) {
    char name[96];
    snprintf(name, sizeof name, "blk.%d.%s", i, what);
    return weights(m, b, name, ne0, ne1, err);
}

static uint32_t meta_u32(const llm_model *m, const char *key, uint32_t def) {
    char k[128];
    snprintf(k, sizeof k, "bert.%s", key);
    uint32_t v;
    return llm_gguf_get_u32(m->gguf, k, &v) ? v : def;
}

void llm_bert_free(llm_bert *b) {
    if (!b) return;
    for (size_t i = 0; i < b->owned.len; i++) free(b->owned.data[i]);
    vec_free(&b->owned);
    free(b->layers);
    free(b);
}

int llm_bert_load(llm_model *m, tailor_error *err) {
    llm_bert *b = xcalloc(1, sizeof *b);
    b->d = (int32_t)meta_u32(m, "embedding_length", 0);
    b->n_layer = (int32_t)meta_u32(m, "block_count", 0);
    b->n_head = (int32_t)meta_u32(m, "attention.head_count", 0);
    b->n_ff = (int32_t)meta_u32(m, "feed_forward_length", 0);
    b->n_pos = (int32_t)meta_u32(m, "context_length", 512);
    b->pooling = (int)meta_u32(m, "pooling_type", 2);
    b->eps = 1e-12f;
    llm_gguf_get_f32(m->gguf, "bert.attention.layer_norm_epsilon", &b->eps);
    if (b->d <= 0 || b->n_layer <= 0 || b->n_head <= 0 || b->n_ff <= 0 || b->d % b->n_head || b->n_layer > 1024 ||
        b->d > (1 << 16) || b->n_pos <= 0) {
        llm_bert_free(b);
        return err_set(err, TAILOR_EDATA, "%s: inconsistent BERT hyperparameters (embd %d, layers %d, heads %d, ff %d)",
                       m->gguf->path, b->d, b->n_layer, b->n_head, b->n_ff);
    }
    int64_t d = b->d, ff = b->n_ff;
    b->tok = weights(m, b, "token_embd.weight", d, m->hp.n_vocab, err);
    b->pos = weights(m, b, "position_embd.weight", d, b->n_pos, err);
    float *types = weights(m, b, "token_types.weight", d, 0, err); /* row 0: every token is of type 0 */
    if (!types && err->code == TAILOR_EDATA) {
        const llm_tensor *t = llm_gguf_tensor(m->gguf, "token_types.weight");
        if (t && t->ne[0] == d) { /* [d, 2]: keep row 0 */
            err_clear(err);
            types = xmalloc((size_t)d * sizeof *types);
            llm_dequant_row(t->type, t->data, types, d);
            vec_push(&b->owned, types);
        }
    }
    b->type0 = types;
    b->ln_w = weights(m, b, "token_embd_norm.weight", d, 0, err);
    b->ln_b = weights(m, b, "token_embd_norm.bias", d, 0, err);
    b->layers = xcalloc((size_t)b->n_layer, sizeof *b->layers);
    for (int i = 0; i < b->n_layer && !err->code; i++) {
        bert_layer *l = &b->layers[i];
        l->wq = blk(m, b, i, "attn_q.weight", d, d, err), l->bq = blk(m, b, i, "attn_q.bias", d, 0, err);
        l->wk = blk(m, b, i, "attn_k.weight", d, d, err), l->bk = blk(m, b, i, "attn_k.bias", d, 0, err);
        l->wv = blk(m, b, i, "attn_v.weight", d, d, err), l->bv = blk(m, b, i, "attn_v.bias", d, 0, err);
        l->wo = blk(m, b, i, "attn_output.weight", d, d, err), l->bo = blk(m, b, i, "attn_output.bias", d, 0, err);
        l->ln1_w = blk(m, b, i, "attn_output_norm.weight", d, 0, err);
        l->ln1_b = blk(m, b, i, "attn_output_norm.bias", d, 0, err);
        l->up = blk(m, b, i, "ffn_up.weight", d, ff, err), l->b_up = blk(m, b, i, "ffn_up.bias", ff, 0, err);
        l->down = blk(m, b, i, "ffn_down.weight", ff, d, err), l->b_down = blk(m, b, i, "ffn_down.bias", d, 0, err);
        l->ln2_w = blk(m, b, i, "layer_output_norm.weight", d, 0, err);
        l->ln2_b = blk(m, b, i, "layer_output_norm.bias", d, 0, err);
    }
    if (err->code) {
        llm_bert_free(b);
        return err->code;
    }
    m->bert = b;
    m->hp.n_embd = b->d, m->hp.n_layer = b->n_layer, m->hp.n_head = m->hp.n_head_kv = b->n_head;
    m->hp.head_dim = m->hp.rope_dim = b->d / b->n_head, m->hp.n_ff = b->n_ff, m->hp.n_ctx_train = b->n_pos;
    return 0;
}

int llm_bert_pooling(const llm_model *m) { return m->bert ? m->bert->pooling : 0; }

/* ---- the forward pass ------------------------------------------------------------ */

static void layer_norm(float *x, int n, int d, const float *w, const float *b, float eps) {
    for (int t = 0; t < n; t++) {
        float *r = x + (size_t)t * d, mean = 0, var = 0;
        for (int j = 0; j < d; j++) mean += r[j];
        mean /= (float)d;
        for (int j = 0; j < d; j++) var += (r[j] - mean) * (r[j] - mean);
        var /= (float)d;
        float inv = 1.0f / sqrtf(var + eps);
        for (int j = 0; j < d; j++) r[j] = (r[j] - mean) * inv * w[j] + b[j];
    }
}

/* y[n x out] = x[n x in] . W^T + bias (W: out rows of in). */
static void linear(const float *x, int n, int in, const float *W, const float *bias, int out, float *y) {
    for (int t = 0; t < n; t++) memcpy(y + (size_t)t * out, bias, (size_t)out * sizeof *y);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, out, in, 1.0f, x, in, W, in, 1.0f, y, out);
}

/* ggml's GELU: the tanh form of the f16-rounded input, rounded to f16. */
static float gelu_f16(float x) {
    float h = f32_from_f16(f16_from_f32(x));
    if (h <= -10.0f) return 0.0f;
    if (h >= 10.0f) return h;
    float g = 0.5f * h * (1.0f + tanhf(0.79788456080286535587989211986876f * h * (1.0f + 0.044715f * h * h)));
    return f32_from_f16(f16_from_f32(g));
}

int llm_bert_forward(const llm_model *m, const int32_t *ids, int n, float *out, float *states, tailor_error *err) {
    const llm_bert *b = m->bert;
    if (!b) return err_set(err, TAILOR_EINVAL, "%s is not a BERT model", m->gguf->path);
    if (n <= 0 || n > b->n_pos) return err_set(err, TAILOR_EINVAL, "%d tokens: a BERT model of this file takes 1 to %d", n, b->n_pos);
    int d = b->d, H = b->n_head, hd = d / H, ff = b->n_ff;
    size_t nd = (size_t)n * d;
    float *x = out, *q = xmalloc(nd * 4 * sizeof *q), *k = q + nd, *v = k + nd, *a = v + nd;
    float *h = xmalloc((size_t)n * ff * sizeof *h), *att = xmalloc((size_t)n * sizeof *att);
    for (int t = 0; t < n; t++) {
        if (ids[t] < 0 || ids[t] >= m->hp.n_vocab) {
            free(q), free(h), free(att);
            return err_set(err, TAILOR_EINVAL, "token id %d out of the vocabulary", ids[t]);
        }
        const float *te = b->tok + (size_t)ids[t] * d, *pe = b->pos + (size_t)t * d;
        for (int j = 0; j < d; j++) x[(size_t)t * d + j] = te[j] + b->type0[j] + pe[j];
    }
    int st = 0;
    if (states) memcpy(states + (size_t)st++ * nd, x, nd * sizeof *x);
    layer_norm(x, n, d, b->ln_w, b->ln_b, b->eps);
    if (states) memcpy(states + (size_t)st++ * nd, x, nd * sizeof *x);
    float scale = 1.0f / sqrtf((float)hd);
    for (int li = 0; li < b->n_layer; li++) {
        const bert_layer *l = &b->layers[li];
        linear(x, n, d, l->wq, l->bq, d, q);
        linear(x, n, d, l->wk, l->bk, d, k);
        linear(x, n, d, l->wv, l->bv, d, v);
        /* Every token attends to every token (no mask, no rotation). */
        for (int hh = 0; hh < H; hh++)
            for (int i = 0; i < n; i++) {
                const float *qi = q + (size_t)i * d + hh * hd;
                float mx = -INFINITY, z = 0;
                for (int j = 0; j < n; j++) {
                    const float *kj = k + (size_t)j * d + hh * hd;
                    float s = 0;
                    for (int c = 0; c < hd; c++) s += qi[c] * kj[c];
                    att[j] = s * scale;
                    if (att[j] > mx) mx = att[j];
                }
                for (int j = 0; j < n; j++) z += att[j] = expf(att[j] - mx);
                float *ai = a + (size_t)i * d + hh * hd;
                memset(ai, 0, (size_t)hd * sizeof *ai);
                for (int j = 0; j < n; j++) {
                    const float *vj = v + (size_t)j * d + hh * hd;
                    float w = att[j] / z;
                    for (int c = 0; c < hd; c++) ai[c] += w * vj[c];
                }
            }
        linear(a, n, d, l->wo, l->bo, d, q); /* q: the attention's output */
        for (size_t i = 0; i < nd; i++) x[i] += q[i];
        layer_norm(x, n, d, l->ln1_w, l->ln1_b, b->eps);
        if (states && li < 2) memcpy(states + (size_t)st++ * nd, x, nd * sizeof *x);
        linear(x, n, d, l->up, l->b_up, ff, h);
        for (size_t i = 0; i < (size_t)n * ff; i++) h[i] = gelu_f16(h[i]);
        linear(h, n, ff, l->down, l->b_down, d, q);
        for (size_t i = 0; i < nd; i++) x[i] += q[i];
        layer_norm(x, n, d, l->ln2_w, l->ln2_b, b->eps);
        if (states && li < 2) memcpy(states + (size_t)st++ * nd, x, nd * sizeof *x);
    }
    free(q);
    free(h);
    free(att);
    return 0;
}
