/* generate.c — the generation loop shared by the CLI, chat and (later) the
 * agent: prompt in one batched decode, then sample/decode one token at a
 * time, streaming text through a callback. Stop strings are held back
 * until it is certain they are not starting, so the caller never sees a
 * partial stop string. */
#include <stdlib.h>
#include <string.h>

#include "llm/llm.h"

llm_gen_params llm_gen_default_params(void) {
    llm_gen_params p = {128, llm_sampler_default_params(), NULL, 0, true};
    return p;
}

/* Length of the longest suffix of s that is a proper prefix of a stop. */
static size_t held_back(const char *s, size_t n, const char *const *stop, int n_stop) {
    size_t best = 0;
    for (int i = 0; i < n_stop; i++) {
        size_t l = strlen(stop[i]);
        if (l == 0) continue;
        for (size_t k = l > n ? n : l - 1; k > best; k--)
            if (memcmp(s + n - k, stop[i], k) == 0) {
                best = k;
                break;
            }
    }
    return best;
}

int llm_generate(llm_ctx *c, const int32_t *prompt, int64_t n_prompt, const llm_gen_params *p,
                 llm_stream_fn cb, void *ud, llm_gen_stats *st, tailor_error *err) {
    const llm_model *m = llm_ctx_model(c);
    llm_gen_stats s = {0};
    if (n_prompt <= 0) return err_set(err, TAILOR_EINVAL, "generate: empty prompt (at least BOS is needed)");
    if (n_prompt + (p->n_predict > 0 ? p->n_predict : 0) > llm_ctx_n_ctx(c) - llm_ctx_n_past(c))
        return err_set(err, TAILOR_EINVAL, "generate: %lld prompt + %d new tokens exceed the context of %d",
                       (long long)n_prompt, p->n_predict, llm_ctx_n_ctx(c));
    int64_t cap = n_prompt + (p->n_predict > 0 ? p->n_predict : 0) + 1;
    int32_t *hist = xmalloc(sizeof(int32_t) * (size_t)cap);
    memcpy(hist, prompt, sizeof(int32_t) * (size_t)n_prompt);
    int64_t nh = n_prompt;
    llm_sampler *smp = llm_sampler_new(p->sampling, m->hp.n_vocab);
    sb text; /* generated text not yet streamed */
    sb_init(&text);
    sb piece;
    sb_init(&piece);
    /* Strip the tokenizer's leading space when nothing textual precedes. */
    bool strip_space = false;
    if (llm_vocab_add_space_prefix(m->vocab)) {
        strip_space = true;
        for (int64_t i = 0; i < n_prompt; i++)
            if (prompt[i] != llm_vocab_bos(m->vocab)) strip_space = false;
    }
    int rc = 0;
    uint64_t t0 = timer_now_ns();
    if ((rc = llm_decode(c, prompt, (int32_t)n_prompt, false, err)) < 0) goto done;
    s.prompt_tokens = n_prompt;
    s.prompt_s = timer_seconds_since(t0);
    t0 = timer_now_ns();
    bool stopped = false;
    for (int32_t i = 0; (p->n_predict < 0 || i < p->n_predict) && !stopped; i++) {
        int32_t tok = llm_sampler_sample(smp, llm_ctx_logits(c, -1), hist, nh);
        hist[nh++] = tok;
        s.gen_tokens++;
        if (p->stop_at_eog && llm_vocab_is_eog(m->vocab, tok)) {
            s.eog = true;
            break;
        }
        sb_clear(&piece);
        llm_token_piece(m->vocab, tok, false, &piece);
        const char *pc = piece.buf ? piece.buf : "";
        size_t pn = piece.len;
        if (strip_space && pn > 0) {
            if (pc[0] == ' ') pc++, pn--;
            strip_space = false;
        }
        sb_append(&text, pc, pn);
        /* A complete stop string ends generation; text before it streams. */
        size_t emit = text.len;
        for (int k = 0; k < p->n_stop; k++) {
            const char *hit = text.len ? memmem(text.buf, text.len, p->stop[k], strlen(p->stop[k])) : NULL;
            if (hit && (size_t)(hit - text.buf) <= emit) {
                emit = (size_t)(hit - text.buf);
                stopped = true;
            }
        }
        if (!stopped) emit -= held_back(text.buf ? text.buf : "", text.len, p->stop, p->n_stop);
        if (emit && cb && !cb(ud, text.buf, emit)) stopped = true;
        memmove(text.buf, text.buf + emit, text.len - emit);
        text.len -= emit;
        if (text.buf) text.buf[text.len] = 0;
        if (stopped) {
            text.len = 0; /* the stop string and what follows are dropped */
            break;
        }
        if (p->n_predict >= 0 && i + 1 >= p->n_predict) break;
        if (llm_ctx_n_past(c) >= llm_ctx_n_ctx(c)) break;
        if ((rc = llm_decode(c, &tok, 1, false, err)) < 0) goto done;
    }
    if (text.len && cb) cb(ud, text.buf, text.len);
    s.gen_s = timer_seconds_since(t0);
done:
    if (st) *st = s;
    sb_deinit(&text);
    sb_deinit(&piece);
    llm_sampler_free(smp);
    free(hist);
    return rc;
}
