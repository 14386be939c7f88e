/* nn.h — tensor kernels with forward and backward passes, an optimiser and
 * initialisers: what SASRec trains with today and LoRA fine-tuning will
 * reuse. Plain loops for clarity, OpenBLAS GEMM for the matmuls.
 *
 * Every op exists in float (nn_*) and in double (nn_*_f64, for the
 * finite-difference gradient checks in the tests); both come from one
 * source, ops.inc. Shapes are written beside each function (B batch, T time,
 * C channels, NH heads, OC output channels, V vocabulary). Backward
 * functions ADD into gradient buffers. */
#ifndef TAILOR_NN_H
#define TAILOR_NN_H

#include "base/base.h"

#define NN_DECLARE(REAL, SUF)                                                                          \
    void nn_matmul_forward##SUF(REAL *out, const REAL *inp, const REAL *w, const REAL *b, int N, int C, \
                                int OC);                                                               \
    void nn_matmul_backward##SUF(REAL *dinp, REAL *dw, REAL *db, const REAL *dout, const REAL *inp,    \
                                 const REAL *w, int N, int C, int OC);                                 \
    void nn_layernorm_forward##SUF(REAL *out, REAL *mean, REAL *rstd, const REAL *inp, const REAL *w,  \
                                   const REAL *b, int N, int C, REAL eps);                             \
    void nn_layernorm_backward##SUF(REAL *dinp, REAL *dw, REAL *db, const REAL *dout, const REAL *inp, \
                                    const REAL *w, const REAL *mean, const REAL *rstd, int N, int C);  \
    void nn_attention_forward##SUF(REAL *out, REAL *att, const REAL *q, const REAL *k, const REAL *v,  \
                                   const unsigned char *valid, int B, int T, int C, int NH);           \
    void nn_attention_backward##SUF(REAL *dq, REAL *dk, REAL *dv, const REAL *dout, const REAL *att,   \
                                    const REAL *q, const REAL *k, const REAL *v, int B, int T, int C,  \
                                    int NH, REAL *scratch);                                            \
    void nn_relu_forward##SUF(REAL *out, const REAL *inp, size_t n);                                   \
    void nn_relu_backward##SUF(REAL *dinp, const REAL *dout, const REAL *inp, size_t n);               \
    void nn_gelu_forward##SUF(REAL *out, const REAL *inp, size_t n);                                   \
    void nn_gelu_backward##SUF(REAL *dinp, const REAL *dout, const REAL *inp, size_t n);               \
    void nn_dropout_forward##SUF(REAL *out, REAL *mask, const REAL *inp, size_t n, REAL p, rng *g);    \
    void nn_dropout_backward##SUF(REAL *dinp, const REAL *dout, const REAL *mask, size_t n);           \
    REAL nn_softmax_ce##SUF(REAL *logits, const int32_t *targets, int N, int V);                       \
    REAL nn_bce_pairs##SUF(const REAL *pos, const REAL *neg, const unsigned char *valid, REAL *dpos,   \
                           REAL *dneg, int N);                                                         \
    void nn_rmsnorm_forward##SUF(REAL *out, REAL *rstd, const REAL *inp, const REAL *w, int N, int C,  \
                                 REAL eps);                                                            \
    void nn_rmsnorm_backward##SUF(REAL *dinp, REAL *dw, const REAL *dout, const REAL *inp,             \
                                  const REAL *w, const REAL *rstd, int N, int C);                      \
    void nn_rope##SUF(REAL *x, const float *cs, int N, int NH, int HS, int rd, int neox, int inverse); \
    void nn_swiglu_forward##SUF(REAL *out, const REAL *gate, const REAL *up, size_t n);                \
    void nn_swiglu_backward##SUF(REAL *dgate, REAL *dup, const REAL *dout, const REAL *gate,           \
                                 const REAL *up, size_t n);

NN_DECLARE(float, )
NN_DECLARE(double, _f64)

/* AdamW (Loshchilov & Hutter): decoupled weight decay wd; t counts steps
 * from 1. m and v are the moment buffers (zeroed at start). */
typedef struct nn_adamw {
    float lr, beta1, beta2, eps, weight_decay;
    int64_t t;
} nn_adamw;

void nn_adamw_step(nn_adamw *o, float *param, const float *grad, float *m, float *v, size_t n, bool decay);
/* Scales grad so that its L2 norm is at most max_norm; returns the norm
 * before clipping. */
float nn_clip_grad_norm(float *grad, size_t n, float max_norm);
/* Normal(0, std) initialisation. */
void nn_init_normal(float *w, size_t n, float std, rng *g);

/* exp(x[i] - shift) in place, returning their sum; and the largest of x
 * (n >= 1). The softmaxes of training run on these: vector kernels chosen
 * by CPUID (AVX2, AVX-512) beside a plain C twin of the same algorithm,
 * relative error <= 1.2e-7 (vexp.c; $TAILOR_LLM_KERNELS forces a set). */
float nn_exp_sum(float *x, size_t n, float shift);
float nn_max(const float *x, size_t n);
/* Test hook: the largest relative error of kernel set `set` (scalar, avx2,
 * avx512) against double-precision exp on random rows of every tail
 * length; INFINITY when a sum, a maximum or NaN handling is wrong; -1 when
 * this CPU does not run the set. */
double nn_exp_check(const char *set, uint64_t seed);

/* Parallel forms on a thread pool (NULL: the caller's thread). Rows (or
 * elements, or channels for the LayerNorm scale and shift) are split into
 * contiguous chunks and each keeps the serial op's arithmetic and summation
 * order, so results are bit for bit those of the serial ops at any thread
 * count. */
void nn_layernorm_forward_pool(pool *p, float *out, float *mean, float *rstd, const float *inp, const float *w,
                               const float *b, int N, int C, float eps);
void nn_layernorm_backward_pool(pool *p, float *dinp, float *dw, float *db, const float *dout, const float *inp,
                                const float *w, const float *mean, const float *rstd, int N, int C);
float nn_softmax_ce_pool(pool *p, float *logits, const int32_t *targets, int N, int V);
void nn_adamw_step_pool(pool *p, nn_adamw *o, float *param, const float *grad, float *m, float *v, size_t n,
                        bool decay);

/* ---- the llama family, trainable (llama.c) ------------------------------- */

/* The engine's decoder architectures: llama (normal RoPE) and qwen2 (NeoX
 * RoPE, q/k/v biases); tied or untied output. */
typedef struct nn_llama_config {
    int n_vocab, n_embd, n_layer, n_head, n_head_kv, n_ff, rope_dim;
    float rope_base, rope_freq_scale, rms_eps;
    bool neox, tied, qkv_bias;
} nn_llama_config;

/* Weights in the engine's (ggml's) layout: a matrix [out][in], row-major. */
typedef struct nn_llama_layer {
    float *attn_norm, *wq, *wk, *wv, *bq, *bk, *bv, *wo, *ffn_norm, *gate, *up, *down;
} nn_llama_layer;
typedef struct nn_llama_params {
    float *tok_embd, *output_norm, *output; /* output == tok_embd when tied */
    nn_llama_layer *layers;
} nn_llama_params;

/* LoRA on the model's matrices: y = W x + s B (A x), A [r][in], B [out][r]
 * (the order of llm.h's LLM_LORA_* slots). */
enum { NN_LORA_Q, NN_LORA_K, NN_LORA_V, NN_LORA_O, NN_LORA_GATE, NN_LORA_UP, NN_LORA_DOWN, NN_LORA_SLOTS };
typedef struct nn_lora_pair {
    float *a, *b, *ga, *gb; /* into the LoRA buffers; NULL: no pair */
    int in, out;
    float *t; /* the last forward's A x [N][r] */
} nn_lora_pair;
typedef struct nn_lora {
    int rank;
    float alpha, scale; /* s = scale * alpha / rank */
    size_t n_params;
    float *params, *grads;
    nn_lora_pair *pairs; /* [n_layer][NN_LORA_SLOTS] */
    int t_cap;           /* tokens the t buffers hold */
} nn_lora;

/* A frozen base left in its file's form (QLoRA): rows [r0, r1) of one
 * matrix as F32, `which` an NN_LORA_* slot of layer `layer` or NN_W_EMBD /
 * NN_W_OUTPUT (layer -1). Called from several threads at once. */
enum { NN_W_EMBD = NN_LORA_SLOTS, NN_W_OUTPUT };
typedef struct nn_llama_source {
    void (*rows)(void *ctx, int layer, int which, int64_t r0, int64_t r1, float *dst);
    void *ctx;
} nn_llama_source;

typedef struct nn_llama {
    nn_llama_config c;
    size_t n_params;
    float *params, *grads; /* one flat buffer each: p and g point into them */
    nn_llama_params p, g;
    /* the last forward */
    int B, T;
    const int32_t *tokens;
    float *logits; /* [B*T][V]: raw, or d(loss)/d(logits) after a forward with targets */
    size_t logits_cap;
    bool has_targets;
    struct nn_llama_acts *a;
    nn_lora *lora;   /* adapters trained (or applied) beside the weights, or NULL */
    pool *pool;      /* borrowed: the serial parts (attention, the loss) split over it; NULL: serial */
    bool freeze;     /* the base weights get no gradients (LoRA training) */
    bool checkpoint; /* keep only each layer's input; recompute the rest in the backward pass */
    nn_llama_source src; /* the frozen base's matrices, read on demand (rows NULL: they are in params) */
    float *wbuf;         /* the one matrix (or block of output rows) dequantized for the product at hand */
    size_t wbuf_cap;
} nn_llama;

int nn_llama_new(const nn_llama_config *c, nn_llama **out, tailor_error *err);
/* A frozen model whose matrices (embedding, projections, output) stay with
 * src and are dequantized just before each product that reads them (the
 * forward, the backward and checkpointing's recomputation), one matrix at a
 * time; only the norms and biases live in params. Trains LoRA pairs only
 * (nn_llama_add_lora). src->ctx must outlive the model. */
int nn_llama_new_frozen(const nn_llama_config *c, const nn_llama_source *src, nn_llama **out, tailor_error *err);
/* Every weight of a model of shape c (what nn_llama_new holds in params). */
size_t nn_llama_n_weights(const nn_llama_config *c);
void nn_llama_free(nn_llama *m);
/* B sequences of T tokens (positions 0..T-1 each). With targets (-1: no
 * loss at that position): the mean cross-entropy, and m->logits become its
 * gradient for nn_llama_backward; without: 0, raw logits. */
float nn_llama_forward(nn_llama *m, const int32_t *tokens, const int32_t *targets, int B, int T);
/* Adds d(loss)/d(params) of the last forward (with targets) to m->grads.
 * tokens must still be alive. */
void nn_llama_backward(nn_llama *m);
/* Activation bytes one token of a T-token sequence keeps (for the memory
 * bound: parameters, gradients and AdamW's two moments add 16 bytes per
 * parameter). */
size_t nn_llama_bytes_per_token(const nn_llama_config *c, int T, bool checkpoint);
/* Adds LoRA pairs of rank r (at most 64) on the slots set in targets (bit
 * NN_LORA_*) of every layer: A ~ N(0, 1/in), B = 0, so the model starts as
 * the base. Freezes the base weights and frees their gradients (m->grads
 * becomes NULL). */
void nn_llama_add_lora(nn_llama *m, int rank, float alpha, unsigned targets, uint64_t seed);

#endif
