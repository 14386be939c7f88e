/* synth.c — models with seeded random weights and the exact metadata and
 * tensor shapes of real ones (what benchmarks run on, since real weights
 * cannot be downloaded here). The vocabulary comes from a GGUF file (a
 * fixture): cut or padded with reserved control tokens to the shape's size,
 * with the shape's own pre-tokenizer, special tokens and chat template.
 * Tensor types follow the reference quantizer's choices per file type
 * (llm_ftype_tensor_type). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm/llm.h"

static const llm_shape SHAPES[] = {
    /* name, arch, embd, layers, heads, kv heads, ff, vocab, ctx, rope base, eps, tied, pre */
    {"smollm2-135m", "llama", 576, 30, 9, 3, 1536, 49152, 8192, 100000.0f, 1e-5f, true, "smollm", "chatml"},
    {"qwen2.5-0.5b", "qwen2", 896, 24, 14, 2, 4864, 151936, 32768, 1000000.0f, 1e-6f, true, "qwen2", "chatml"},
    {"llama-3.2-1b", "llama", 2048, 16, 32, 8, 8192, 128256, 131072, 500000.0f, 1e-5f, true, "llama-bpe", "llama3"},
    {"tinyllama-1.1b", "llama", 2048, 22, 32, 4, 5632, 32000, 2048, 10000.0f, 1e-5f, false, NULL, "zephyr"},
};

const llm_shape *llm_shape_find(const char *name) {
    for (size_t i = 0; i < sizeof SHAPES / sizeof SHAPES[0]; i++)
        if (strcmp(SHAPES[i].name, name) == 0) return &SHAPES[i];
    return NULL;
}

const char *llm_shape_names(void) { return "smollm2-135m, qwen2.5-0.5b, llama-3.2-1b, tinyllama-1.1b"; }

static const char *const TEMPLATE_CHATML =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
    "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
static const char *const TEMPLATE_LLAMA3 =
    "{{- bos_token }}{%- for message in messages %}{{- '<|start_header_id|>' + message['role'] + "
    "'<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' }}{%- endfor %}{%- if "
    "add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}";
static const char *const TEMPLATE_ZEPHYR =
    "{% for message in messages %}\\n{% if message['role'] == 'user' %}\\n{{ '<|user|>\\n' + "
    "message['content'] + eos_token }}\\n{% elif message['role'] == 'assistant' %}\\n{{ '<|assistant|>\\n'  "
    "+ message['content'] + eos_token }}\\n{% endif %}\\n{% if loop.last and add_generation_prompt %}\\n{{ "
    "'<|assistant|>' }}\\n{% endif %}\\n{% endfor %}";

typedef struct synth_buf {
    VEC(void *) blocks;
} synth_buf;

static void *hold(synth_buf *b, size_t n) {
    void *p = xmalloc(n ? n : 1);
    vec_push(&b->blocks, p);
    return p;
}

static void add_matrix(llm_gguf_writer *w, synth_buf *b, rng *r, const char *name, llm_type t, int64_t cols,
                       int64_t rows, float std) {
    size_t rb = llm_row_bytes(t, cols);
    uint8_t *data = hold(b, rb * (size_t)rows);
    float *row = xmalloc(sizeof(float) * (size_t)cols);
    for (int64_t i = 0; i < rows; i++) {
        for (int64_t j = 0; j < cols; j++) row[j] = (float)rng_normal(r) * std;
        llm_quant_row(t, row, data + (size_t)i * rb, cols);
    }
    free(row);
    int64_t ne[2] = {cols, rows};
    llm_gguf_add_tensor(w, name, t, 2, ne, data);
}

static void add_vector(llm_gguf_writer *w, synth_buf *b, rng *r, const char *name, int64_t n, float mean, float std) {
    float *data = hold(b, sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++) data[i] = mean + (float)rng_normal(r) * std;
    int64_t ne[1] = {n};
    llm_gguf_add_tensor(w, name, LLM_TYPE_F32, 1, ne, data);
}

static void key(char *buf, size_t n, const char *arch, const char *suffix) { snprintf(buf, n, "%s.%s", arch, suffix); }

int llm_synth(const llm_shape *s, const llm_ftype *f, const char *vocab_path, const char *out, uint64_t seed,
              tailor_error *err) {
    llm_gguf *vg;
    if (llm_gguf_open(vocab_path, &vg, err) < 0) return err->code;
    const char *model = llm_gguf_get_str(vg, "tokenizer.ggml.model");
    const llm_gguf_kv *toks = llm_gguf_find(vg, "tokenizer.ggml.tokens");
    bool bpe = model && strcmp(model, "gpt2") == 0;
    if (!toks || toks->arr_type != LLM_GGUF_STR || !model || (s->pre && !bpe) || (!s->pre && bpe)) {
        err_set(err, TAILOR_EINVAL, "%s: shape %s needs a %s vocabulary", vocab_path, s->name,
                s->pre ? "byte-level BPE (gpt2)" : "SentencePiece (llama)");
        llm_gguf_free(vg);
        return err->code;
    }
    llm_gguf_writer *w = llm_gguf_writer_new();
    synth_buf b = {0};
    char k[160];
    llm_gguf_set_str(w, "general.architecture", s->arch);
    llm_gguf_set_str(w, "general.name", s->name);
    snprintf(k, sizeof k, "tailor synth (seed %llu)", (unsigned long long)seed);
    llm_gguf_set_str(w, "general.source", k);
    llm_gguf_set_u32(w, "general.file_type", (uint32_t)f->file_type);
    if (f->base != LLM_TYPE_F32 && f->base != LLM_TYPE_F16 && f->base != LLM_TYPE_BF16)
        llm_gguf_set_u32(w, "general.quantization_version", 2);
    key(k, sizeof k, s->arch, "context_length");
    llm_gguf_set_u32(w, k, (uint32_t)s->n_ctx);
    key(k, sizeof k, s->arch, "embedding_length");
    llm_gguf_set_u32(w, k, (uint32_t)s->n_embd);
    key(k, sizeof k, s->arch, "block_count");
    llm_gguf_set_u32(w, k, (uint32_t)s->n_layer);
    key(k, sizeof k, s->arch, "feed_forward_length");
    llm_gguf_set_u32(w, k, (uint32_t)s->n_ff);
    key(k, sizeof k, s->arch, "attention.head_count");
    llm_gguf_set_u32(w, k, (uint32_t)s->n_head);
    key(k, sizeof k, s->arch, "attention.head_count_kv");
    llm_gguf_set_u32(w, k, (uint32_t)s->n_head_kv);
    key(k, sizeof k, s->arch, "rope.freq_base");
    llm_gguf_set_f32(w, k, s->rope_base);
    key(k, sizeof k, s->arch, "attention.layer_norm_rms_epsilon");
    llm_gguf_set_f32(w, k, s->rms_eps);
    int head_dim = s->n_embd / s->n_head;
    key(k, sizeof k, s->arch, "rope.dimension_count");
    llm_gguf_set_u32(w, k, (uint32_t)head_dim);
    key(k, sizeof k, s->arch, "vocab_size");
    llm_gguf_set_u32(w, k, (uint32_t)s->n_vocab);

    /* Vocabulary: the file's tokens cut or padded to the shape's size. */
    uint64_t nv = toks->n;
    llm_str *tv = xcalloc((size_t)s->n_vocab, sizeof *tv);
    float *scores = xcalloc((size_t)s->n_vocab, sizeof *scores);
    int32_t *types = xcalloc((size_t)s->n_vocab, sizeof *types);
    const llm_gguf_kv *sc = llm_gguf_find(vg, "tokenizer.ggml.scores"), *ty = llm_gguf_find(vg, "tokenizer.ggml.token_type");
    arena names;
    arena_init(&names, 0);
    /* Special tokens the chat formats need go at the end of the vocabulary. */
    static const char *const CHATML[] = {"<|im_start|>", "<|im_end|>", "<|endoftext|>"};
    static const char *const LLAMA3[] = {"<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>",
                                         "<|end_header_id|>", "<|eot_id|>"};
    const char *const *extra = NULL;
    int n_extra = 0;
    if (strcmp(s->chat, "chatml") == 0) extra = CHATML, n_extra = 3;
    else if (strcmp(s->chat, "llama3") == 0) extra = LLAMA3, n_extra = 5;
    int32_t base = (int32_t)(nv < (uint64_t)s->n_vocab - (uint64_t)n_extra ? nv : (uint64_t)s->n_vocab - (uint64_t)n_extra);
    const llm_str *src = toks->v.arr;
    for (int32_t i = 0; i < base; i++) {
        tv[i] = src[i];
        scores[i] = sc ? ((const float *)sc->v.arr)[i] : 0.0f;
        types[i] = ty ? ((const int32_t *)ty->v.arr)[i] : 1;
    }
    /* Tokens whose text would collide with an added special token become
     * normal padding entries instead. */
    for (int32_t i = base; i < s->n_vocab; i++) {
        int e = i - (s->n_vocab - n_extra);
        char buf[64];
        if (e >= 0) snprintf(buf, sizeof buf, "%s", extra[e]);
        else snprintf(buf, sizeof buf, "<|reserved_%d|>", i);
        for (int32_t j = 0; j < base && e >= 0; j++)
            if (tv[j].n == strlen(buf) && memcmp(tv[j].s, buf, tv[j].n) == 0) {
                char other[64]; /* the base token's new name; buf stays the added token's */
                snprintf(other, sizeof other, "<|reserved_%d|>", j);
                tv[j].s = arena_strdup(&names, other);
                tv[j].n = strlen(other);
            }
        tv[i].s = arena_strdup(&names, buf);
        tv[i].n = strlen(buf);
        types[i] = 3; /* control */
    }
    llm_gguf_set_str(w, "tokenizer.ggml.model", model);
    if (s->pre) llm_gguf_set_str(w, "tokenizer.ggml.pre", s->pre);
    llm_gguf_set_arr_str(w, "tokenizer.ggml.tokens", tv, (uint64_t)s->n_vocab);
    if (!bpe) llm_gguf_set_arr(w, "tokenizer.ggml.scores", LLM_GGUF_F32, scores, (uint64_t)s->n_vocab);
    llm_gguf_set_arr(w, "tokenizer.ggml.token_type", LLM_GGUF_I32, types, (uint64_t)s->n_vocab);
    const llm_gguf_kv *merges = llm_gguf_find(vg, "tokenizer.ggml.merges");
    if (merges) llm_gguf_set_kv(w, merges);
    int32_t bos = 1, eos = 2;
    if (bpe) {
        if (strcmp(s->chat, "llama3") == 0) bos = s->n_vocab - 5, eos = s->n_vocab - 1; /* begin_of_text, eot */
        else bos = eos = s->n_vocab - 1; /* <|endoftext|> */
        if (strcmp(s->chat, "chatml") == 0) eos = s->n_vocab - 2; /* <|im_end|> ends a turn */
    }
    llm_gguf_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)bos);
    llm_gguf_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)eos);
    llm_gguf_set_bool(w, "tokenizer.ggml.add_bos_token", !bpe || strcmp(s->chat, "llama3") == 0);
    const char *tmpl = strcmp(s->chat, "chatml") == 0 ? TEMPLATE_CHATML
                       : strcmp(s->chat, "llama3") == 0 ? TEMPLATE_LLAMA3 : TEMPLATE_ZEPHYR;
    llm_gguf_set_str(w, "tokenizer.chat_template", tmpl);

    /* Weights: N(0, 0.02) matrices, norms near 1, small biases. */
    rng r;
    rng_seed(&r, seed);
    int64_t D = s->n_embd, DQ = (int64_t)s->n_head * head_dim, DKV = (int64_t)s->n_head_kv * head_dim;
#define TYPE(name, row, out, l) llm_ftype_tensor_type(f, name, row, out, l, s->n_layer)
    add_matrix(w, &b, &r, "token_embd.weight", TYPE("token_embd.weight", D, s->tied, -1), D, s->n_vocab, 0.02f);
    if (!s->tied) add_matrix(w, &b, &r, "output.weight", TYPE("output.weight", D, true, -1), D, s->n_vocab, 0.02f);
    add_vector(w, &b, &r, "output_norm.weight", D, 1.0f, 0.05f);
    bool qwen2 = strcmp(s->arch, "qwen2") == 0, qwen3 = strcmp(s->arch, "qwen3") == 0;
    for (int l = 0; l < s->n_layer; l++) {
        char n[96];
#define T(x) (snprintf(n, sizeof n, "blk.%d." x, l), n)
        add_vector(w, &b, &r, T("attn_norm.weight"), D, 1.0f, 0.05f);
        /* The name first (T writes it), then its type. */
#define MAT(suffix, cols, rows)                                                        \
    do {                                                                               \
        const char *nm = T(suffix);                                                    \
        add_matrix(w, &b, &r, nm, TYPE(nm, cols, false, l), cols, rows, 0.02f);        \
    } while (0)
        MAT("attn_q.weight", D, DQ);
        MAT("attn_k.weight", D, DKV);
        MAT("attn_v.weight", D, DKV);
        if (qwen2) {
            add_vector(w, &b, &r, T("attn_q.bias"), DQ, 0.0f, 0.02f);
            add_vector(w, &b, &r, T("attn_k.bias"), DKV, 0.0f, 0.02f);
            add_vector(w, &b, &r, T("attn_v.bias"), DKV, 0.0f, 0.02f);
        }
        if (qwen3) {
            add_vector(w, &b, &r, T("attn_q_norm.weight"), head_dim, 1.0f, 0.05f);
            add_vector(w, &b, &r, T("attn_k_norm.weight"), head_dim, 1.0f, 0.05f);
        }
        MAT("attn_output.weight", DQ, D);
        add_vector(w, &b, &r, T("ffn_norm.weight"), D, 1.0f, 0.05f);
        MAT("ffn_gate.weight", D, s->n_ff);
        MAT("ffn_up.weight", D, s->n_ff);
        MAT("ffn_down.weight", s->n_ff, D);
#undef MAT
#undef T
#undef TYPE
    }
    int rc = llm_gguf_writer_write(w, out, err);
    for (size_t i = 0; i < b.blocks.len; i++) free(b.blocks.data[i]);
    vec_free(&b.blocks);
    llm_gguf_writer_free(w);
    arena_deinit(&names);
    free(tv);
    free(scores);
    free(types);
    llm_gguf_free(vg);
    return rc;
}
