/* train.c — the bridge between the engine's GGUF models and nn's trainable
 * llama: a loaded model's weights as training parameters (dequantized to
 * F32) or as a frozen base read in its file's form (QLoRA), and a trained model written back as a GGUF file the engine (and
 * llama.cpp) loads: the architecture's metadata, the tokenizer of a source
 * file, F32 tensors in ggml's layout. */
#include <cblas.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm/llm.h"
#include "nn/nn.h"

int llm_train_config(const llm_model *m, nn_llama_config *c, tailor_error *err) {
    if (m->arch != LLM_ARCH_LLAMA && m->arch != LLM_ARCH_QWEN2)
        return err_set(err, TAILOR_EUNSUPPORTED, "%s: training covers llama and qwen2 models, not %s", m->gguf->path,
                       m->arch_name);
    if (m->rope_freqs)
        return err_set(err, TAILOR_EUNSUPPORTED, "%s: rope_freqs (long-context factors) are not trained yet",
                       m->gguf->path);
    const llm_hparams *hp = &m->hp;
    if (hp->head_dim * hp->n_head != hp->n_embd)
        return err_set(err, TAILOR_EUNSUPPORTED, "%s: heads of %d values times %d heads is not the width %d",
                       m->gguf->path, hp->head_dim, hp->n_head, hp->n_embd);
    *c = (nn_llama_config){.n_vocab = hp->n_vocab, .n_embd = hp->n_embd, .n_layer = hp->n_layer, .n_head = hp->n_head,
                           .n_head_kv = hp->n_head_kv, .n_ff = hp->n_ff, .rope_dim = hp->rope_dim,
                           .rope_base = hp->rope_base, .rope_freq_scale = hp->rope_freq_scale, .rms_eps = hp->rms_eps,
                           .neox = hp->rope_neox, .tied = m->output == m->tok_embd,
                           .qkv_bias = m->layers[0].bq != NULL};
    return 0;
}

int llm_train_shape(const char *shape, const char *config, int32_t n_vocab, nn_llama_config *c, const char **arch,
                    tailor_error *err) {
    *c = (nn_llama_config){.n_vocab = n_vocab, .rope_base = 10000, .rope_freq_scale = 1, .rms_eps = 1e-5f, .tied = true};
    *arch = "llama";
    if (shape) {
        const llm_shape *s = llm_shape_find(shape);
        if (!s) return err_set(err, TAILOR_EINVAL, "unknown shape '%s' (known: %s)", shape, llm_shape_names());
        *arch = s->arch;
        c->n_embd = s->n_embd, c->n_layer = s->n_layer, c->n_head = s->n_head, c->n_head_kv = s->n_head_kv;
        c->n_ff = s->n_ff, c->rope_base = s->rope_base, c->rms_eps = s->rms_eps, c->tied = s->tied;
    } else {
        sb text;
        sb_init(&text);
        int rc = file_read(config, &text, err);
        cJSON *j = rc ? NULL : cJSON_Parse(sb_str(&text));
        sb_deinit(&text);
        if (rc) return rc;
        if (!cJSON_IsObject(j)) rc = err_set(err, TAILOR_EINVAL, "%s: not a JSON object", config);
        static const char *const INTS[] = {"n_embd", "n_layer", "n_head", "n_head_kv", "n_ff"};
        int *dst[] = {&c->n_embd, &c->n_layer, &c->n_head, &c->n_head_kv, &c->n_ff};
        for (int i = 0; i < 5 && !rc; i++) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, INTS[i]);
            if (!cJSON_IsNumber(v) && i != 3) /* n_head_kv defaults to n_head */
                rc = err_set(err, TAILOR_EINVAL, "%s: \"%s\" (a positive integer) is missing", config, INTS[i]);
            *dst[i] = cJSON_IsNumber(v) ? v->valueint : c->n_head;
        }
        const cJSON *v;
        if (!rc && (v = cJSON_GetObjectItemCaseSensitive(j, "rope_base")) && cJSON_IsNumber(v))
            c->rope_base = (float)v->valuedouble;
        if (!rc && (v = cJSON_GetObjectItemCaseSensitive(j, "rms_eps")) && cJSON_IsNumber(v))
            c->rms_eps = (float)v->valuedouble;
        if (!rc && (v = cJSON_GetObjectItemCaseSensitive(j, "tied"))) c->tied = cJSON_IsTrue(v);
        v = rc ? NULL : cJSON_GetObjectItemCaseSensitive(j, "arch");
        if (cJSON_IsString(v) && strcmp(v->valuestring, "qwen2") && strcmp(v->valuestring, "llama"))
            rc = err_set(err, TAILOR_EINVAL, "%s: \"arch\" is llama or qwen2", config);
        else if (cJSON_IsString(v) && !strcmp(v->valuestring, "qwen2")) *arch = "qwen2";
        cJSON_Delete(j);
        if (rc) return rc;
    }
    c->neox = c->qkv_bias = !strcmp(*arch, "qwen2");
    c->rope_dim = c->n_head > 0 ? c->n_embd / c->n_head : 0;
    return 0;
}

static void take(float *dst, const llm_tensor *t) {
    int64_t rows = t->n_dims > 1 ? t->ne[1] : 1;
    llm_tensor_rows(t, 0, rows, dst, false);
}

int llm_train_from_model(const llm_model *m, nn_llama **out, tailor_error *err) {
    nn_llama_config c;
    int rc = llm_train_config(m, &c, err);
    if (!rc) rc = nn_llama_new(&c, out, err);
    if (rc) return rc;
    nn_llama *t = *out;
    take(t->p.tok_embd, m->tok_embd);
    take(t->p.output_norm, m->output_norm);
    if (!c.tied) take(t->p.output, m->output);
    for (int l = 0; l < c.n_layer; l++) {
        const llm_layer *L = &m->layers[l];
        nn_llama_layer *P = &t->p.layers[l];
        take(P->attn_norm, L->attn_norm), take(P->wq, L->wq), take(P->wk, L->wk), take(P->wv, L->wv);
        take(P->wo, L->wo), take(P->ffn_norm, L->ffn_norm), take(P->gate, L->ffn_gate), take(P->up, L->ffn_up);
        take(P->down, L->ffn_down);
        if (c.qkv_bias) take(P->bq, L->bq), take(P->bk, L->bk), take(P->bv, L->bv);
    }
    return 0;
}

/* The base's matrices for a frozen model, dequantized row by row as the
 * engine reads them (llm_dequant_row: pure, so threads may share it). */
static void model_rows(void *ctx, int layer, int which, int64_t r0, int64_t r1, float *dst) {
    const llm_model *m = ctx;
    const llm_tensor *t = which == NN_W_EMBD ? m->tok_embd : which == NN_W_OUTPUT ? m->output : NULL;
    if (!t) {
        const llm_layer *L = &m->layers[layer];
        const llm_tensor *mats[NN_LORA_SLOTS] = {L->wq, L->wk, L->wv, L->wo, L->ffn_gate, L->ffn_up, L->ffn_down};
        t = mats[which];
    }
    llm_tensor_rows(t, r0, r1, dst, true);
}

int llm_train_frozen(const llm_model *m, nn_llama **out, tailor_error *err) {
    nn_llama_config c;
    int rc = llm_train_config(m, &c, err);
    nn_llama_source src = {model_rows, (void *)m};
    if (!rc) rc = nn_llama_new_frozen(&c, &src, out, err);
    if (rc) return rc;
    nn_llama *t = *out;
    take(t->p.output_norm, m->output_norm);
    for (int l = 0; l < c.n_layer; l++) {
        const llm_layer *L = &m->layers[l];
        nn_llama_layer *P = &t->p.layers[l];
        take(P->attn_norm, L->attn_norm), take(P->ffn_norm, L->ffn_norm);
        if (c.qkv_bias) take(P->bq, L->bq), take(P->bk, L->bk), take(P->bv, L->bv);
    }
    return 0;
}

static void put(llm_gguf_writer *w, const char *name, const float *data, int64_t cols, int64_t rows) {
    int64_t ne[2] = {cols, rows};
    llm_gguf_add_tensor(w, name, LLM_TYPE_F32, rows > 1 ? 2 : 1, ne, data);
}

int llm_train_write(const nn_llama *t, const char *arch, const char *name, const llm_gguf *tokenizer, int n_ctx,
                    const char *tool_prompt, const char *path, tailor_error *err) {
    const nn_llama_config *c = &t->c;
    llm_gguf_writer *w = llm_gguf_writer_new();
    char k[160];
#define KEY(s) (snprintf(k, sizeof k, "%s.%s", arch, s), k)
    llm_gguf_set_str(w, "general.architecture", arch);
    llm_gguf_set_str(w, "general.name", name);
    llm_gguf_set_str(w, "general.source", "tailor llm train");
    llm_gguf_set_u32(w, "general.file_type", 0); /* all F32 */
    llm_gguf_set_u32(w, KEY("context_length"), (uint32_t)n_ctx);
    llm_gguf_set_u32(w, KEY("embedding_length"), (uint32_t)c->n_embd);
    llm_gguf_set_u32(w, KEY("block_count"), (uint32_t)c->n_layer);
    llm_gguf_set_u32(w, KEY("feed_forward_length"), (uint32_t)c->n_ff);
    llm_gguf_set_u32(w, KEY("attention.head_count"), (uint32_t)c->n_head);
    llm_gguf_set_u32(w, KEY("attention.head_count_kv"), (uint32_t)c->n_head_kv);
    llm_gguf_set_f32(w, KEY("rope.freq_base"), c->rope_base);
    llm_gguf_set_f32(w, KEY("attention.layer_norm_rms_epsilon"), c->rms_eps);
    llm_gguf_set_u32(w, KEY("rope.dimension_count"), (uint32_t)c->rope_dim);
    llm_gguf_set_u32(w, KEY("vocab_size"), (uint32_t)c->n_vocab);
    if (c->rope_freq_scale != 1.0f) {
        llm_gguf_set_str(w, KEY("rope.scaling.type"), "linear");
        llm_gguf_set_f32(w, KEY("rope.scaling.factor"), 1.0f / c->rope_freq_scale);
    }
#undef KEY
    /* The tokenizer, as the source file has it. */
    for (int64_t i = 0; i < tokenizer->n_kv; i++)
        if (!strncmp(tokenizer->kv[i].key, "tokenizer.", 10)) llm_gguf_set_kv(w, &tokenizer->kv[i]);
    if (!tool_prompt) tool_prompt = llm_gguf_get_str(tokenizer, "tailor.tool_prompt");
    if (tool_prompt) llm_gguf_set_str(w, "tailor.tool_prompt", tool_prompt);
    int64_t D = c->n_embd, S = D / c->n_head, DQ = (int64_t)c->n_head * S, DKV = (int64_t)c->n_head_kv * S,
            F = c->n_ff, V = c->n_vocab;
    put(w, "token_embd.weight", t->p.tok_embd, D, V);
    char n[96];
    for (int l = 0; l < c->n_layer; l++) {
        const nn_llama_layer *P = &t->p.layers[l];
#define BLK(s) (snprintf(n, sizeof n, "blk.%d.%s", l, s), n)
        put(w, BLK("attn_norm.weight"), P->attn_norm, D, 1);
        put(w, BLK("attn_q.weight"), P->wq, D, DQ);
        put(w, BLK("attn_k.weight"), P->wk, D, DKV);
        put(w, BLK("attn_v.weight"), P->wv, D, DKV);
        if (c->qkv_bias) {
            put(w, BLK("attn_q.bias"), P->bq, DQ, 1);
            put(w, BLK("attn_k.bias"), P->bk, DKV, 1);
            put(w, BLK("attn_v.bias"), P->bv, DKV, 1);
        }
        put(w, BLK("attn_output.weight"), P->wo, DQ, D);
        put(w, BLK("ffn_norm.weight"), P->ffn_norm, D, 1);
        put(w, BLK("ffn_gate.weight"), P->gate, D, F);
        put(w, BLK("ffn_up.weight"), P->up, D, F);
        put(w, BLK("ffn_down.weight"), P->down, F, D);
#undef BLK
    }
    put(w, "output_norm.weight", t->p.output_norm, D, 1);
    if (!c->tied) put(w, "output.weight", t->p.output, D, V);
    int rc = llm_gguf_writer_write(w, path, err);
    llm_gguf_writer_free(w);
    return rc < 0 ? err->code : 0;
}

static const char *const LORA_SLOT[NN_LORA_SLOTS] = {"attn_q", "attn_k", "attn_v", "attn_output",
                                                      "ffn_gate", "ffn_up", "ffn_down"};

int llm_train_write_lora(const nn_llama *t, const llm_model *base, const char *name, const char *path,
                         tailor_error *err) {
    const nn_lora *l = t->lora;
    if (!l) return err_set(err, TAILOR_EINVAL, "the model has no LoRA pairs to write");
    llm_gguf_writer *w = llm_gguf_writer_new();
    llm_gguf_set_str(w, "general.architecture", base->arch_name);
    llm_gguf_set_str(w, "general.type", "adapter");
    llm_gguf_set_str(w, "general.name", name);
    llm_gguf_set_str(w, "adapter.type", "lora");
    llm_gguf_set_f32(w, "adapter.lora.alpha", l->alpha);
    llm_gguf_set_u32(w, "general.quantization_version", 2);
    char n[128];
    for (int layer = 0; layer < t->c.n_layer; layer++)
        for (int k = 0; k < NN_LORA_SLOTS; k++) {
            const nn_lora_pair *p = &l->pairs[(size_t)layer * NN_LORA_SLOTS + k];
            if (!p->a) continue;
            int64_t na[2] = {p->in, l->rank}, nb[2] = {l->rank, p->out};
            snprintf(n, sizeof n, "blk.%d.%s.weight.lora_a", layer, LORA_SLOT[k]);
            llm_gguf_add_tensor(w, n, LLM_TYPE_F32, 2, na, p->a);
            snprintf(n, sizeof n, "blk.%d.%s.weight.lora_b", layer, LORA_SLOT[k]);
            llm_gguf_add_tensor(w, n, LLM_TYPE_F32, 2, nb, p->b);
        }
    int rc = llm_gguf_writer_write(w, path, err);
    llm_gguf_writer_free(w);
    return rc < 0 ? err->code : 0;
}

void llm_train_merge_lora(nn_llama *t) {
    nn_lora *l = t->lora;
    if (!l) return;
    float s = l->scale * l->alpha / (float)l->rank;
    for (int layer = 0; layer < t->c.n_layer; layer++) {
        nn_llama_layer *P = &t->p.layers[layer];
        float *W[NN_LORA_SLOTS] = {P->wq, P->wk, P->wv, P->wo, P->gate, P->up, P->down};
        for (int k = 0; k < NN_LORA_SLOTS; k++) {
            const nn_lora_pair *p = &l->pairs[(size_t)layer * NN_LORA_SLOTS + k];
            /* W[out][in] += s B[out][r] A[r][in] */
            if (p->a)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, p->out, p->in, l->rank, s, p->b, l->rank, p->a,
                            p->in, 1.0f, W[k], p->in);
        }
    }
}
