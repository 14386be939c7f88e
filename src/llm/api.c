/* api.c — the public C API of the LLM engine (include/tailor.h): thin
 * wrappers that keep the internal structs out of the public header. */
#include <stdlib.h>
#include <string.h>

#include "llm/llm.h"

struct tailor_llm_model {
    llm_model *m;
};
struct tailor_llm_ctx {
    llm_ctx *c;
};
struct tailor_llm_sampler {
    llm_sampler *s;
};

tailor_llm_ctx_params tailor_llm_ctx_default_params(void) {
    tailor_llm_ctx_params p = {0, 0};
    return p;
}

tailor_llm_sampler_params tailor_llm_sampler_default_params(void) {
    llm_sampler_params d = llm_sampler_default_params();
    tailor_llm_sampler_params p = {d.temperature, d.top_k, d.top_p, d.min_p, d.repeat_penalty,
                                   d.presence_penalty, d.penalty_last_n, d.seed};
    return p;
}

tailor_llm_model_params tailor_llm_model_default_params(void) {
    tailor_llm_model_params p = {0};
    return p;
}

int tailor_llm_model_load(const char *path, tailor_llm_model_params params, tailor_llm_model **out,
                          tailor_error *err) {
    llm_model *m;
    int rc = llm_model_load_ex(path, params.vocab_only != 0, &m, err);
    if (rc < 0) return rc;
    *out = xmalloc(sizeof **out);
    (*out)->m = m;
    return 0;
}

void tailor_llm_model_free(tailor_llm_model *model) {
    if (!model) return;
    llm_model_free(model->m);
    free(model);
}

int32_t tailor_llm_n_vocab(const tailor_llm_model *model) { return model->m->hp.n_vocab; }
int32_t tailor_llm_n_embd(const tailor_llm_model *model) { return model->m->hp.n_embd; } /* 0 if vocab-only */
int32_t tailor_llm_token_bos(const tailor_llm_model *model) { return llm_vocab_bos(model->m->vocab); }
int32_t tailor_llm_token_eos(const tailor_llm_model *model) { return llm_vocab_eos(model->m->vocab); }
int tailor_llm_token_is_eog(const tailor_llm_model *model, int32_t token) {
    return llm_vocab_is_eog(model->m->vocab, token);
}

int64_t tailor_llm_tokenize(const tailor_llm_model *model, const char *text, size_t n, int add_special,
                            int parse_special, int32_t *out, int64_t cap) {
    return llm_tokenize(model->m->vocab, text, n, add_special != 0, parse_special != 0, out, cap);
}

int32_t tailor_llm_token_to_piece(const tailor_llm_model *model, int32_t token, char *buf, int32_t cap) {
    sb s;
    sb_init(&s);
    llm_token_piece(model->m->vocab, token, true, &s);
    int32_t n = (int32_t)s.len;
    if (n <= cap) memcpy(buf, s.buf ? s.buf : "", (size_t)n);
    sb_deinit(&s);
    return n <= cap ? n : -n;
}

int tailor_llm_ctx_new(tailor_llm_model *model, tailor_llm_ctx_params params, tailor_llm_ctx **out,
                       tailor_error *err) {
    llm_ctx_params p = llm_ctx_default_params();
    p.n_ctx = params.n_ctx;
    p.n_threads = params.n_threads;
    llm_ctx *c;
    int rc = llm_ctx_new(model->m, p, &c, err);
    if (rc < 0) return rc;
    *out = xmalloc(sizeof **out);
    (*out)->c = c;
    return 0;
}

void tailor_llm_ctx_free(tailor_llm_ctx *ctx) {
    if (!ctx) return;
    llm_ctx_free(ctx->c);
    free(ctx);
}

int tailor_llm_ctx_set_lora(tailor_llm_ctx *ctx, const char *path, float scale, tailor_error *err) {
    return path ? llm_ctx_load_lora(ctx->c, path, scale, err) : llm_ctx_set_lora(ctx->c, NULL, 0, err);
}

int32_t tailor_llm_ctx_n_past(const tailor_llm_ctx *ctx) { return llm_ctx_n_past(ctx->c); }
void tailor_llm_ctx_truncate(tailor_llm_ctx *ctx, int32_t pos) { llm_ctx_truncate(ctx->c, pos); }

int tailor_llm_decode(tailor_llm_ctx *ctx, const int32_t *tokens, int32_t n, tailor_error *err) {
    return llm_decode(ctx->c, tokens, n, false, err);
}

const float *tailor_llm_logits(const tailor_llm_ctx *ctx) { return llm_ctx_logits(ctx->c, -1); }

tailor_llm_sampler *tailor_llm_sampler_new(const tailor_llm_model *model, tailor_llm_sampler_params params) {
    llm_sampler_params p = {params.temperature, params.top_k, params.top_p, params.min_p, params.repeat_penalty,
                            params.presence_penalty, params.penalty_last_n, params.seed};
    tailor_llm_sampler *s = xmalloc(sizeof *s);
    s->s = llm_sampler_new(p, model->m->hp.n_vocab);
    return s;
}

void tailor_llm_sampler_free(tailor_llm_sampler *sampler) {
    if (!sampler) return;
    llm_sampler_free(sampler->s);
    free(sampler);
}

int32_t tailor_llm_sample(tailor_llm_sampler *sampler, const float *logits, const int32_t *history,
                          int64_t n_history) {
    return llm_sampler_sample(sampler->s, logits, history, n_history);
}

int tailor_llm_embed(tailor_llm_ctx *ctx, const char *text, size_t n, int last_token, float *out,
                     tailor_error *err) {
    return llm_embed(ctx->c, text, n, last_token ? LLM_POOL_LAST : LLM_POOL_MEAN, out, err);
}
