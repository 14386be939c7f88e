/* model.c — architectures from GGUF metadata: hyperparameters, the tensor
 * table of each block, and the checks that make the forward pass safe
 * (every tensor present, of a computable type, with the expected shape).
 * One table lists the architectures; anything else is refused by name. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "llm/llm.h"

static const struct {
    const char *name;
    llm_arch arch;
    bool neox;    /* RoPE rotates (x[i], x[i + d/2]) instead of adjacent pairs */
    bool qkv_bias; /* biases on Q, K, V */
    bool qk_norm;  /* RMSNorm on each head of Q and K */
} ARCHS[] = {
    {"llama", LLM_ARCH_LLAMA, false, false, false},
    {"qwen2", LLM_ARCH_QWEN2, true, true, false},
    {"qwen3", LLM_ARCH_QWEN3, true, false, true},
};

typedef struct loader {
    llm_model *m;
    const char *arch;
    tailor_error *err;
} loader;

static bool hp_u32(loader *L, const char *suffix, bool required, int32_t def, int32_t *out) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", L->arch, suffix);
    uint32_t v;
    if (llm_gguf_get_u32(L->m->gguf, key, &v) && v <= INT32_MAX) {
        *out = (int32_t)v;
        return true;
    }
    if (required) {
        err_set(L->err, TAILOR_EDATA, "%s: metadata '%s' missing or not an integer", L->m->gguf->path, key);
        return false;
    }
    *out = def;
    return true;
}

static float hp_f32(loader *L, const char *suffix, float def) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", L->arch, suffix);
    float v;
    return llm_gguf_get_f32(L->m->gguf, key, &v) ? v : def;
}

/* Finds a tensor and checks its shape (ne1 = 0 for a vector). */
static const llm_tensor *want(loader *L, const char *name, int64_t ne0, int64_t ne1, bool required) {
    if (L->err->code) return NULL;
    const llm_tensor *t = llm_gguf_tensor(L->m->gguf, name);
    if (!t) {
        if (required) err_set(L->err, TAILOR_EDATA, "%s: tensor '%s' missing", L->m->gguf->path, name);
        return NULL;
    }
    uint32_t dims = ne1 ? 2 : 1;
    bool ok = t->ne[0] == ne0 && (ne1 ? t->ne[1] == ne1 : true) && t->ne[2] == 1 && t->ne[3] == 1 &&
              (t->n_dims == dims || (dims == 1 && t->ne[1] == 1));
    if (!ok) {
        err_set(L->err, TAILOR_EDATA, "%s: tensor '%s' has shape [%lld, %lld], expected [%lld, %lld]",
                L->m->gguf->path, name, (long long)t->ne[0], (long long)t->ne[1], (long long)ne0,
                (long long)(ne1 ? ne1 : 1));
        return NULL;
    }
    const llm_type_info *ti = llm_type_get(t->type);
    if (!ti->supported) {
        err_set(L->err, TAILOR_EUNSUPPORTED, "%s: tensor '%s' has type %s, which tailor cannot compute yet",
                L->m->gguf->path, name, ti->name);
        return NULL;
    }
    /* Norms and biases are read as plain floats. */
    if (!ne1 && t->type != LLM_TYPE_F32) {
        err_set(L->err, TAILOR_EUNSUPPORTED, "%s: tensor '%s' must be F32, not %s", L->m->gguf->path, name,
                ti->name);
        return NULL;
    }
    return t;
}

static const llm_tensor *want_blk(loader *L, int i, const char *what, int64_t ne0, int64_t ne1, bool required) {
    char name[96];
    snprintf(name, sizeof name, "blk.%d.%s", i, what);
    return want(L, name, ne0, ne1, required);
}

int llm_model_load(const char *path, llm_model **out, tailor_error *err) {
    return llm_model_load_ex(path, false, out, err);
}

int llm_model_load_ex(const char *path, bool vocab_only, llm_model **out, tailor_error *err) {
    err_clear(err); /* the loader checks err->code between steps */
    llm_model *m = xcalloc(1, sizeof *m);
    if (llm_gguf_open(path, &m->gguf, err) < 0) {
        free(m);
        return err->code;
    }
    if (vocab_only) { /* tokenization only: any architecture, no weights */
        if (llm_vocab_load(m->gguf, &m->vocab, err) < 0) {
            llm_model_free(m);
            return err->code;
        }
        m->vocab_only = true;
        m->arch_name = llm_gguf_get_str(m->gguf, "general.architecture");
        m->hp.n_vocab = llm_vocab_size(m->vocab);
        m->chat_template = llm_gguf_get_str(m->gguf, "tokenizer.chat_template");
        *out = m;
        return 0;
    }
    loader L = {m, NULL, err};
    const char *arch = llm_gguf_get_str(m->gguf, "general.architecture");
    if (arch && !strcmp(arch, "bert")) { /* an encoder: embeddings only (bert.c) */
        m->arch = LLM_ARCH_BERT;
        m->arch_name = "bert";
        if (llm_vocab_load(m->gguf, &m->vocab, err) < 0 || (m->hp.n_vocab = llm_vocab_size(m->vocab), 0) ||
            llm_bert_load(m, err)) {
            llm_model_free(m);
            return err->code;
        }
        *out = m;
        return 0;
    }
    int ai = -1;
    for (size_t i = 0; arch && i < sizeof ARCHS / sizeof ARCHS[0]; i++)
        if (strcmp(arch, ARCHS[i].name) == 0) ai = (int)i;
    if (ai < 0) {
        if (arch) err_set(err, TAILOR_EUNSUPPORTED, "%s: architecture '%s' is not supported (llama, qwen2, qwen3, bert are)", path, arch);
        else err_set(err, TAILOR_EDATA, "%s: general.architecture missing", path);
        llm_model_free(m);
        return err->code;
    }
    L.arch = arch;
    m->arch = ARCHS[ai].arch;
    m->arch_name = ARCHS[ai].name;
    llm_hparams *hp = &m->hp;
    if (!hp_u32(&L, "embedding_length", true, 0, &hp->n_embd) || !hp_u32(&L, "block_count", true, 0, &hp->n_layer) ||
        !hp_u32(&L, "feed_forward_length", true, 0, &hp->n_ff) ||
        !hp_u32(&L, "attention.head_count", true, 0, &hp->n_head) ||
        !hp_u32(&L, "attention.head_count_kv", false, hp->n_head, &hp->n_head_kv) ||
        !hp_u32(&L, "context_length", false, 2048, &hp->n_ctx_train)) {
        llm_model_free(m);
        return err->code;
    }
    if (hp->n_embd <= 0 || hp->n_layer <= 0 || hp->n_head <= 0 || hp->n_head_kv <= 0 || hp->n_ff <= 0 ||
        hp->n_head % hp->n_head_kv || hp->n_layer > 4096 || hp->n_embd > (1 << 20)) {
        err_set(err, TAILOR_EDATA, "%s: inconsistent hyperparameters (embd %d, layers %d, heads %d/%d, ff %d)",
                path, hp->n_embd, hp->n_layer, hp->n_head, hp->n_head_kv, hp->n_ff);
        llm_model_free(m);
        return err->code;
    }
    hp_u32(&L, "attention.key_length", false, hp->n_embd / hp->n_head, &hp->head_dim);
    hp_u32(&L, "rope.dimension_count", false, hp->head_dim, &hp->rope_dim);
    if (hp->head_dim <= 0 || hp->head_dim % 2 || hp->rope_dim <= 0 || hp->rope_dim > hp->head_dim || hp->rope_dim % 2) {
        err_set(err, TAILOR_EDATA, "%s: bad head size %d or rope dimension %d", path, hp->head_dim, hp->rope_dim);
        llm_model_free(m);
        return err->code;
    }
    hp->rope_base = hp_f32(&L, "rope.freq_base", 10000.0f);
    hp->rms_eps = hp_f32(&L, "attention.layer_norm_rms_epsilon", 1e-5f);
    hp->rope_freq_scale = 1.0f;
    char key[128];
    snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
    const char *scaling = llm_gguf_get_str(m->gguf, key);
    float factor = hp_f32(&L, "rope.scaling.factor", 0.0f);
    if (scaling && strcmp(scaling, "none") != 0 && strcmp(scaling, "linear") != 0) {
        err_set(err, TAILOR_EUNSUPPORTED, "%s: rope scaling '%s' is not supported (none, linear)", path, scaling);
        llm_model_free(m);
        return err->code;
    }
    if ((!scaling || strcmp(scaling, "linear") == 0) && factor > 0) hp->rope_freq_scale = 1.0f / factor;
    hp->rope_neox = ARCHS[ai].neox;

    if (llm_vocab_load(m->gguf, &m->vocab, err) < 0) {
        llm_model_free(m);
        return err->code;
    }
    hp->n_vocab = llm_vocab_size(m->vocab);
    m->chat_template = llm_gguf_get_str(m->gguf, "tokenizer.chat_template");

    int64_t d = hp->n_embd, dq = (int64_t)hp->n_head * hp->head_dim, dkv = (int64_t)hp->n_head_kv * hp->head_dim;
    m->tok_embd = want(&L, "token_embd.weight", d, hp->n_vocab, true);
    m->output_norm = want(&L, "output_norm.weight", d, 0, true);
    m->output = want(&L, "output.weight", d, hp->n_vocab, false);
    if (!m->output) m->output = m->tok_embd; /* tied embeddings */
    m->rope_freqs = want(&L, "rope_freqs.weight", hp->rope_dim / 2, 0, false);
    m->layers = xcalloc((size_t)hp->n_layer, sizeof *m->layers);
    for (int i = 0; i < hp->n_layer && !err->code; i++) {
        llm_layer *l = &m->layers[i];
        l->attn_norm = want_blk(&L, i, "attn_norm.weight", d, 0, true);
        l->wq = want_blk(&L, i, "attn_q.weight", d, dq, true);
        l->wk = want_blk(&L, i, "attn_k.weight", d, dkv, true);
        l->wv = want_blk(&L, i, "attn_v.weight", d, dkv, true);
        l->wo = want_blk(&L, i, "attn_output.weight", dq, d, true);
        bool bias = ARCHS[ai].qkv_bias;
        l->bq = want_blk(&L, i, "attn_q.bias", dq, 0, bias);
        l->bk = want_blk(&L, i, "attn_k.bias", dkv, 0, bias);
        l->bv = want_blk(&L, i, "attn_v.bias", dkv, 0, bias);
        l->q_norm = want_blk(&L, i, "attn_q_norm.weight", hp->head_dim, 0, ARCHS[ai].qk_norm);
        l->k_norm = want_blk(&L, i, "attn_k_norm.weight", hp->head_dim, 0, ARCHS[ai].qk_norm);
        l->ffn_norm = want_blk(&L, i, "ffn_norm.weight", d, 0, true);
        l->ffn_gate = want_blk(&L, i, "ffn_gate.weight", d, hp->n_ff, true);
        l->ffn_up = want_blk(&L, i, "ffn_up.weight", d, hp->n_ff, true);
        l->ffn_down = want_blk(&L, i, "ffn_down.weight", hp->n_ff, d, true);
    }
    if (!err->code) llm_model_lay_out(m, llm_kernels_best(), err);
    if (err->code) {
        llm_model_free(m);
        return err->code;
    }
    *out = m;
    return 0;
}

void llm_model_free(llm_model *m) {
    if (!m) return;
    llm_vocab_free(m->vocab);
    llm_bert_free(m->bert);
    if (m->laid) munmap(m->laid, m->laid_bytes);
    free(m->layers);
    llm_gguf_free(m->gguf);
    free(m);
}

size_t llm_model_weight_bytes(const llm_model *m) {
    if (m->vocab_only) return 0;
    size_t n = 0;
    for (int64_t i = 0; i < m->gguf->n_tensors; i++) n += m->gguf->tensors[i].bytes;
    return n;
}
