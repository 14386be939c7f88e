/* generate.c — the generation loop shared by the CLI, chat and (later) the
 * agent: prompt in one batched decode, then sample/decode one token at a
 * time, streaming text through a callback. Stop strings are held back
 * until it is certain they are not starting, so the caller never sees a
 * partial stop string. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "llm/llm.h"

llm_gen_params llm_gen_default_params(void) {
    llm_gen_params p = {128, llm_sampler_default_params(), NULL, 0, true, NULL, NULL, NULL};
    return p;
}

/* Whether the grammar allows tok, with the tokenizer's leading space
 * dropped when the output drops it (the first piece of an SPM model). */
static bool gram_allows(llm_grammar *g, const llm_vocab *v, int32_t tok, bool strip, sb *piece) {
    if (!strip || llm_vocab_is_eog(v, tok)) return llm_grammar_token_allowed(g, tok);
    sb_clear(piece);
    llm_token_piece(v, tok, false, piece);
    const char *s = piece->buf ? piece->buf : "";
    size_t n = piece->len;
    if (n && s[0] == ' ') s++, n--;
    return n && llm_grammar_check_text(g, s, n);
}

/* Samples under the grammar: first from the model's own distribution, and
 * only when that token cannot continue the text, again from the logits
 * with every token that cannot masked out. Drawing first and redrawing
 * from the renormalised rest gives the masked distribution exactly (for
 * sampling without truncation, and for greedy); the mask is computed only
 * when needed. */
static int32_t sample_constrained(llm_sampler *smp, llm_grammar *g, const llm_vocab *v, const float *logits,
                                  float *buf, const int32_t *hist, int64_t nh, bool strip, sb *piece, int64_t *masked,
                                  tailor_error *err) {
    int32_t tok = llm_sampler_sample(smp, logits, hist, nh);
    if (gram_allows(g, v, tok, strip, piece)) return tok;
    int32_t nv = llm_vocab_size(v);
    if (!strip) {
        tok = llm_sampler_sample_masked(smp, logits, llm_grammar_mask(g), hist, nh);
        if (tok < 0) return err_set(err, TAILOR_EINVAL, "grammar: no token of the vocabulary can continue the text"), -1;
        (*masked)++;
        return tok;
    }
    bool any = false;
    for (int32_t i = 0; i < nv; i++) {
        bool ok = gram_allows(g, v, i, strip, piece);
        buf[i] = ok ? logits[i] : -INFINITY;
        any |= ok;
    }
    if (!any) return err_set(err, TAILOR_EINVAL, "grammar: no token of the vocabulary can continue the text"), -1;
    (*masked)++;
    return llm_sampler_sample(smp, buf, hist, nh);
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
    llm_grammar *gram = p->grammar;
    float *masked_logits = gram ? xmalloc(sizeof(float) * (size_t)m->hp.n_vocab) : NULL;
    if (gram) llm_grammar_bind_vocab(gram, m->vocab);
    int rc = 0;
    uint64_t t0 = timer_now_ns();
    if ((rc = llm_decode(c, prompt, (int32_t)n_prompt, false, err)) < 0) goto done;
    s.prompt_tokens = n_prompt;
    s.prompt_s = timer_seconds_since(t0);
    t0 = timer_now_ns();
    bool stopped = false;
    for (int32_t i = 0; (p->n_predict < 0 || i < p->n_predict) && !stopped; i++) {
        int32_t tok;
        if (gram) {
            tok = sample_constrained(smp, gram, m->vocab, llm_ctx_logits(c, -1), masked_logits, hist, nh, strip_space,
                                     &piece, &s.masked, err);
            if (tok < 0) {
                rc = TAILOR_EINVAL;
                goto done;
            }
        } else {
            tok = llm_sampler_sample(smp, llm_ctx_logits(c, -1), hist, nh);
        }
        if (p->on_token) p->on_token(p->token_ud, tok, llm_ctx_logits(c, -1));
        hist[nh++] = tok;
        s.gen_tokens++;
        if ((p->stop_at_eog || gram) && llm_vocab_is_eog(m->vocab, tok)) {
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
        if (gram) llm_grammar_accept_text(gram, pc, pn); /* allowed: checked when sampled */
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
        if (gram && llm_grammar_complete(gram) && !llm_grammar_can_continue(gram)) {
            s.grammar_done = true;
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
    free(masked_logits);
    free(hist);
    return rc;
}
