/* llmrank.c — `tailor experiment llm-ranker`: the language model as a
 * re-ranker (LlamaRec's recipe). A retriever trained on the split (ALS by
 * default) proposes each user's top candidates; the model reads the user's
 * recent items as titles and the candidates as titles marked A, B, C, ...,
 * and one forward pass scores every candidate by the logit of its letter
 * (a verbalizer: no free text, and nothing outside the candidates can come
 * out). The list below the candidates keeps the retriever's order.
 *
 * Measured on the leave-one-out split against the retriever alone on the
 * same users: HR@10 and NDCG@10 with 95% intervals and a paired test.
 * --export writes the training examples instead (prompt/completion JSON
 * Lines for `tailor llm finetune`): the validation item of each user, with
 * candidates from a retriever trained without it, kept when it is among
 * them. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "eval/eval.h"
#include "personalize/personalize.h"

eval_llmrank_params eval_llmrank_default_params(void) {
    return (eval_llmrank_params){.retriever = "als", .candidates = 20, .history = 10, .users = 200, .seed = 42,
                                 .top_logprobs = 20, .id_levels = 3, .id_codebook = 64, .id_balanced = true};
}

static const char *title_of(pz_engine *e, const char *ext) {
    const pz_item_info *it = pz_item(e, ext);
    return it && it->title ? it->title : ext;
}

/* The user's row of c, most recent last (by time, then index), the last
 * `want` of them. */
static int recent(const eval_csr *c, int32_t u, int want, int32_t *out) {
    int64_t b = c->ptr[u], n = c->ptr[u + 1] - b;
    int32_t *idx = xmalloc(((size_t)n + 1) * sizeof *idx);
    for (int64_t i = 0; i < n; i++) idx[i] = (int32_t)i;
    /* insertion sort by time: rows are short */
    for (int64_t i = 1; i < n; i++) {
        int32_t x = idx[i];
        int64_t j = i;
        while (j > 0 && (c->ts[b + idx[j - 1]] > c->ts[b + x] ||
                         (c->ts[b + idx[j - 1]] == c->ts[b + x] && c->idx[b + idx[j - 1]] > c->idx[b + x])))
            idx[j] = idx[j - 1], j--;
        idx[j] = x;
    }
    int k = n < want ? (int)n : want;
    for (int i = 0; i < k; i++) out[i] = c->idx[b + idx[n - k + i]];
    free(idx);
    return k;
}

static void prompt_of(pz_engine *e, const eval_split *s, const int32_t *hist, int nh, const int32_t *cand, int nc,
                      sb *out) {
    sb_puts(out, "A user's recent items, oldest first:\n");
    for (int i = 0; i < nh; i++) sb_printf(out, "- %s\n", title_of(e, s->item_ext[hist[i]]));
    sb_puts(out, "Candidates:\n");
    for (int i = 0; i < nc; i++) sb_printf(out, "%c. %s\n", 'A' + i, title_of(e, s->item_ext[cand[i]]));
    sb_puts(out, "The item the user chooses next is\nAnswer:");
}

/* In-context examples from the user's own earlier history (ordered, n
 * items): shot j asks for the (j+1)-th most recent item among it and four
 * items the user never had, after the history items before it. */
#define SHOT_CANDS 5
static void shots_of(pz_engine *e, const eval_split *s, const eval_csr *c, int32_t u, const int32_t *ordered, int n,
                     int shots, int history, rng *g, sb *out) {
    for (int j = shots; j >= 1; j--) {
        int at = n - j; /* the target's position; the query uses the most recent items after it */
        if (at < 1) continue;
        int from = at - history > 0 ? at - history : 0;
        int32_t cand[SHOT_CANDS];
        int right = (int)rng_below(g, SHOT_CANDS), k = 0;
        while (k < SHOT_CANDS) {
            if (k == right) {
                cand[k++] = ordered[at];
                continue;
            }
            int32_t x = (int32_t)rng_below(g, (uint64_t)s->n_items);
            bool had = false;
            for (int64_t a = c->ptr[u]; a < c->ptr[u + 1] && !had; a++) had = c->idx[a] == x;
            for (int q = 0; q < k && !had; q++) had = cand[q] == x;
            if (!had && x != ordered[at]) cand[k++] = x;
        }
        prompt_of(e, s, ordered + from, at - from, cand, SHOT_CANDS, out);
        sb_printf(out, " %c\n\n", 'A' + right);
    }
}

/* The token of " X" after the prompt's "Answer:" for each letter: what the
 * tokenizer adds to a fixed prompt when the letter follows. */
static int letter_tokens(const llm_model *m, int n, int32_t *out, tailor_error *err) {
    const char *base = "Candidates:\nA. x\nAnswer:";
    int64_t nb, nw;
    int32_t *b = llm_tokenize_alloc(m->vocab, base, strlen(base), true, false, &nb);
    for (int i = 0; i < n; i++) {
        char with[64];
        snprintf(with, sizeof with, "%s %c", base, 'A' + i);
        int32_t *w = llm_tokenize_alloc(m->vocab, with, strlen(with), true, false, &nw);
        int64_t same = 0;
        while (same < nb && same < nw && b[same] == w[same]) same++;
        out[i] = same < nw ? w[same] : -1;
        free(w);
        for (int j = 0; j < i && out[i] >= 0; j++)
            if (out[j] == out[i]) out[i] = -1;
        if (out[i] < 0) {
            free(b);
            return err_set(err, TAILOR_EUNSUPPORTED, "the tokenizer gives letter %c no token of its own", 'A' + i);
        }
    }
    free(b);
    return 0;
}

/* The retriever's top `want` for a user of c (history excluded). */
static int retrieve(const rec_model *r, const eval_csr *c, int32_t u, int want, int32_t *items, float *scores,
                    float *scratch) {
    int64_t b = c->ptr[u], n = c->ptr[u + 1] - b;
    rec_topk_params tp = {.k = want, .exclude_history = true};
    return rec_topk(r, u, c->idx + b, c->val ? c->val + b : NULL, (size_t)n, tp, items, scores, scratch);
}

/* The test users (a test item and a training history), in an order
 * shuffled by seed, at most max: *order malloc'd; g is left seeded for
 * the caller's further draws. */
static int32_t sample_users(const eval_split *s, uint64_t seed, int max, int32_t **order, rng *g) {
    int32_t *o = xmalloc(((size_t)s->n_users + 1) * sizeof *o), n = 0;
    for (int32_t u = 0; u < s->n_users; u++)
        if (s->test.ptr[u + 1] > s->test.ptr[u] && s->train.ptr[u + 1] > s->train.ptr[u]) o[n++] = u;
    rng_seed(g, seed);
    for (int32_t i = n - 1; i > 0; i--) {
        int32_t j = (int32_t)rng_below(g, (uint64_t)i + 1), t = o[i];
        o[i] = o[j], o[j] = t;
    }
    *order = o;
    return n < max ? n : max;
}

/* The store's leave-one-out split (the harness's defaults). */
static int load_split(store *st, eval_split *s, tailor_error *err) {
    store_view v;
    int rc = store_view_build(st, store_view_default_params(), &v, err);
    memset(s, 0, sizeof *s);
    if (!rc) rc = eval_split_build(&v, eval_split_default_params(), s, err);
    store_view_deinit(&v);
    return rc;
}

static int fit(const char *kind_name, const eval_csr *c, const eval_split *s, rec_model **out, tailor_error *err) {
    const rec_kind *kind = rec_kind_find(kind_name);
    if (!kind) return err_set(err, TAILOR_EINVAL, "no model kind '%s' for the retriever", kind_name);
    rec_params none = {0};
    int rc = rec_model_new(kind, &none, out, err);
    rec_data d = eval_csr_data(c, s->n_items);
    if (!rc) rc = rec_model_fit(*out, &d, s->user_ext, s->item_ext, err);
    return rc;
}

/* The letters' logits after the prompt, from the local model. */
static int score_local(const eval_llmrank_params *p, const sb *prompt, const int32_t *letters, int nc, float *score,
                       int64_t *tokens, tailor_error *err) {
    int64_t nt;
    int32_t *ids = llm_tokenize_alloc(p->lm->vocab, prompt->buf, prompt->len, true, false, &nt);
    llm_ctx_truncate(p->ctx, 0);
    int rc = nt > llm_ctx_n_ctx(p->ctx) ? err_set(err, TAILOR_EINVAL, "a prompt of %lld tokens exceeds the context of "
                                                                       "%d (--ctx)",
                                                  (long long)nt, llm_ctx_n_ctx(p->ctx))
                                        : llm_decode(p->ctx, ids, (int32_t)nt, false, err);
    *tokens += nt;
    free(ids);
    if (rc) return rc;
    const float *lg = llm_ctx_logits(p->ctx, -1);
    for (int c = 0; c < nc; c++) score[c] = lg[letters[c]];
    return 0;
}

/* The letters' log-probabilities from a backend: one greedy token with the
 * top_logprobs most likely of its step; a letter is scored by its token
 * " X" (what follows "Answer:" in the tokenizers we know, as letter_tokens
 * finds locally), else by "X", and one absent from the list ranks below
 * those present. The log-softmax keeps the logits' order, so a local
 * model served gives the same ranking whenever every letter is listed.
 * A server whose completions report none (chat-only models answer 404;
 * some servers send null) is asked through its chat endpoint from then
 * on (p->chat), the prompt as the user's message. */
static int score_backend(eval_llmrank_params *p, const sb *prompt, int nc, float *score, int64_t *tokens,
                         tailor_error *err) {
    llm_backend *b = p->backend;
    char *text = NULL;
    llm_token_logprobs *lp = NULL;
    int n_lp = 0;
    int rc = 0;
    if (!b->ops->complete_logprobs) {
        p->chat = true;
    } else if (!p->chat) {
        rc = b->ops->complete_logprobs(b, sb_str(prompt), p->top_logprobs, NULL, 0, &text, &lp, &n_lp, err);
        bool none = rc == TAILOR_EUNSUPPORTED || (rc == TAILOR_EDATA && strstr(err->msg, "HTTP 404"));
        if (none && b->ops->chat_logprobs) {
            log_info("the server's completions report no log-probabilities (%s); asking its chat endpoint", err->msg);
            p->chat = true;
        }
    }
    if (p->chat) {
        sb q;
        sb_init(&q);
        sb_printf(&q, "%s\nReply with the candidate's letter only.", sb_str(prompt));
        llm_msg m = {.role = "user", .content = sb_str(&q)};
        rc = b->ops->chat_logprobs(b, &m, 1, p->top_logprobs, &text, &lp, &n_lp, err);
        sb_deinit(&q);
    }
    *tokens += b->ops->count_tokens(b, prompt->buf, prompt->len);
    for (int c = 0; c < nc; c++) score[c] = -INFINITY;
    bool spaced[26] = {false};
    for (int k = 0; !rc && n_lp > 0 && k < lp[0].n_top; k++) {
        const char *t = lp[0].top[k].text;
        bool sp = t[0] == ' ';
        int c = t[sp] - 'A';
        if (c < 0 || c >= nc || t[sp + 1] || (spaced[c] && !sp)) continue;
        if (sp && !spaced[c]) spaced[c] = true, score[c] = -INFINITY; /* " X" outranks "X" */
        if (lp[0].top[k].logprob > score[c]) score[c] = lp[0].top[k].logprob;
    }
    if (!rc && n_lp == 0) rc = err_set(err, TAILOR_EDATA, "the language model returned no token to score");
    free(text);
    llm_token_logprobs_free(lp, n_lp);
    return rc;
}

/* The retriever's list of user u (cand, n entries) with its first
 * p->candidates re-ranked by the model's letter logits, into list. */
static int rerank_user(eval_llmrank_params *p, pz_engine *e, const eval_split *s, int32_t u, const int32_t *cand,
                       int n, const int32_t *letters, rng *g, sb *prompt, int32_t *list, int64_t *tokens,
                       tailor_error *err) {
    int nc = n < p->candidates ? n : p->candidates;
    sb_clear(prompt);
    if (p->shots > 0) {
        int64_t len = s->train.ptr[u + 1] - s->train.ptr[u];
        int32_t *ordered = xmalloc(((size_t)len + 1) * sizeof *ordered);
        int n_ord = recent(&s->train, u, (int)len, ordered);
        shots_of(e, s, &s->train, u, ordered, n_ord, p->shots, p->history, g, prompt);
        free(ordered);
    }
    int32_t *hist = xmalloc(((size_t)p->history + 1) * sizeof *hist);
    int nh = recent(&s->train, u, p->history, hist);
    prompt_of(e, s, hist, nh, cand, nc, prompt);
    free(hist);
    float lg[26]; /* each candidate's score */
    int rc = p->lm ? score_local(p, prompt, letters, nc, lg, tokens, err) : score_backend(p, prompt, nc, lg, tokens, err);
    if (rc) return rc;
    /* Candidates by their letter's score (ties: the retriever's order). */
    int order[26];
    for (int c = 0; c < nc; c++) order[c] = c;
    for (int a = 1; a < nc; a++) {
        int x = order[a], b = a;
        while (b > 0 && lg[order[b - 1]] < lg[x]) order[b] = order[b - 1], b--;
        order[b] = x;
    }
    for (int c = 0; c < nc; c++) list[c] = cand[order[c]];
    for (int c = nc; c < n; c++) list[c] = cand[c];
    return 0;
}

int eval_llm_ranker(store *st, eval_llmrank_params p, FILE *f, sb *json, tailor_error *err) {
    if (p.candidates < 2 || p.candidates > 26)
        return err_set(err, TAILOR_EINVAL, "candidates: 2 to 26 (one letter each)");
    if (!p.export_path && !p.lm && !p.backend)
        return err_set(err, TAILOR_EINVAL, "a language model (--model or --llm-url) ranks; or --export");
    if (!p.export_path && !p.lm && !p.backend->ops->complete_logprobs && !p.backend->ops->chat_logprobs)
        return err_set(err, TAILOR_EUNSUPPORTED, "the %s backend reports no log-probabilities to rank with",
                       p.backend->ops->name);
    if (!p.export_path && !p.lm && (p.top_logprobs < 1 || p.top_logprobs > 10000))
        return err_set(err, TAILOR_EINVAL, "top_logprobs: 1 to 10000");
    eval_split s;
    int rc = load_split(st, &s, err);
    if (rc) return rc;
    pz_engine *e = NULL;
    pz_engine_new(st, &e, NULL);
    rec_model *r = NULL;
    int K = p.candidates, DEPTH = 100 > K ? 100 : K;
    int32_t *cand = xmalloc((size_t)DEPTH * sizeof *cand), *hist = xmalloc((size_t)p.history * sizeof *hist);
    float *cs = xmalloc((size_t)DEPTH * sizeof *cs), *scratch = xmalloc(((size_t)s.n_items + 1) * sizeof *scratch);
    sb prompt;
    sb_init(&prompt);
    uint64_t t0 = timer_now_ns();
    if (p.export_path) {
        /* Training examples: the validation item, a retriever without it. */
        rc = fit(p.retriever, &s.val_train, &s, &r, err);
        FILE *o = rc ? NULL : fopen(p.export_path, "w");
        if (!rc && !o) rc = err_set(err, TAILOR_EIO, "cannot write %s", p.export_path);
        int64_t kept = 0, users = 0;
        for (int32_t u = 0; !rc && u < s.n_users; u++) {
            if (s.val.ptr[u + 1] == s.val.ptr[u] || s.val_train.ptr[u + 1] == s.val_train.ptr[u]) continue;
            users++;
            int32_t target = s.val.idx[s.val.ptr[u]];
            int nc = retrieve(r, &s.val_train, u, K, cand, cs, scratch), at = -1;
            for (int i = 0; i < nc; i++)
                if (cand[i] == target) at = i;
            if (at < 0) continue;
            int nh = recent(&s.val_train, u, p.history, hist);
            sb_clear(&prompt);
            prompt_of(e, &s, hist, nh, cand, nc, &prompt);
            cJSON *j = cJSON_CreateObject();
            cJSON_AddStringToObject(j, "prompt", sb_str(&prompt));
            char comp[4] = {' ', (char)('A' + at), 0};
            cJSON_AddStringToObject(j, "completion", comp);
            char *line = cJSON_PrintUnformatted(j);
            fprintf(o, "%s\n", line);
            free(line);
            cJSON_Delete(j);
            kept++;
        }
        if (o && fclose(o) && !rc) rc = err_set(err, TAILOR_EIO, "cannot write %s", p.export_path);
        if (!rc) {
            fprintf(f, "wrote %lld training examples to %s: users whose validation item is among the %s retriever's "
                       "top %d (of %lld users)\n",
                    (long long)kept, p.export_path, p.retriever, K, (long long)users);
            sb_printf(json, "{\"experiment\":\"llm-ranker\",\"export\":\"%s\",\"examples\":%lld,\"users\":%lld}",
                      p.export_path, (long long)kept, (long long)users);
        }
    } else {
        int32_t letters[26];
        if (p.lm) rc = letter_tokens(p.lm, K, letters, err);
        if (!rc && p.backend && p.backend->ops->set_sampling) {
            llm_sampler_params greedy = llm_sampler_default_params();
            greedy.temperature = 0;
            p.backend->ops->set_sampling(p.backend, &greedy, 1);
        }
        if (!rc) rc = fit(p.retriever, &s.train, &s, &r, err);
        double fit_s = timer_seconds_since(t0);
        /* Test users, in a seeded order, at most p.users. */
        int32_t *order;
        rng g;
        int32_t n_eval = sample_users(&s, p.seed, p.users, &order, &g);
        double *hr_r = xcalloc((size_t)n_eval + 1, 8), *nd_r = xcalloc((size_t)n_eval + 1, 8);
        double *hr_l = xcalloc((size_t)n_eval + 1, 8), *nd_l = xcalloc((size_t)n_eval + 1, 8);
        int64_t in_cands = 0, tokens = 0;
        uint64_t t1 = timer_now_ns();
        for (int32_t i = 0; !rc && i < n_eval; i++) {
            int32_t u = order[i], target = s.test.idx[s.test.ptr[u]];
            int n = retrieve(r, &s.train, u, DEPTH, cand, cs, scratch), nc = n < K ? n : K;
            double m[EVAL_M_PER_USER];
            eval_user_metrics(cand, n, &target, 1, 10, m);
            hr_r[i] = m[EVAL_M_HR], nd_r[i] = m[EVAL_M_NDCG];
            for (int c = 0; c < nc; c++) in_cands += cand[c] == target;
            int32_t *list = xmalloc((size_t)DEPTH * sizeof *list);
            rc = rerank_user(&p, e, &s, u, cand, n, letters, &g, &prompt, list, &tokens, err);
            if (rc) {
                free(list);
                break;
            }
            eval_user_metrics(list, n, &target, 1, 10, m);
            hr_l[i] = m[EVAL_M_HR], nd_l[i] = m[EVAL_M_NDCG];
            free(list);
        }
        double rank_s = timer_seconds_since(t1);
        if (p.backend && p.backend->ops->set_sampling) p.backend->ops->set_sampling(p.backend, NULL, 0);
        if (!rc) {
            eval_stat a = eval_stat_of(hr_r, n_eval), b = eval_stat_of(nd_r, n_eval), c = eval_stat_of(hr_l, n_eval),
                      d = eval_stat_of(nd_l, n_eval);
            eval_paired pn = eval_paired_test(nd_l, nd_r, n_eval), ph = eval_paired_test(hr_l, hr_r, n_eval);
            fprintf(f, "leave-one-out, %d test users; the %s retriever's top %d hold the next item for %.1f%% of them%s\n\n",
                    n_eval, p.retriever, K, n_eval ? 100.0 * in_cands / n_eval : 0,
                    p.shots ? "; in-context examples from each user's own history" : "");
            fprintf(f, "| ranking | HR@10 | 95%% interval | NDCG@10 | 95%% interval |\n|---|---:|---|---:|---|\n");
            fprintf(f, "| %s (retriever) | %.4f | %.4f-%.4f | %.4f | %.4f-%.4f |\n", p.retriever, a.mean, a.lo, a.hi,
                    b.mean, b.lo, b.hi);
            fprintf(f, "| language model re-ranking its top %d, %d shots | %.4f | %.4f-%.4f | %.4f | %.4f-%.4f |\n", K,
                    p.shots, c.mean, c.lo, c.hi, d.mean, d.lo, d.hi);
            fprintf(f, "\nre-ranked minus retriever: HR@10 %+.4f (%+.4f to %+.4f, p %.3f), NDCG@10 %+.4f (%+.4f to "
                       "%+.4f, p %.3f)\n",
                    ph.diff, ph.lo, ph.hi, ph.p_value, pn.diff, pn.lo, pn.hi, pn.p_value);
            fprintf(f,
                    "retriever trained in %.1f s; the model read %s%lld prompt tokens in %.1f s (%.1f ms per user)%s\n",
                    fit_s, p.lm ? "" : "about ", (long long)tokens, rank_s, n_eval ? 1000 * rank_s / n_eval : 0,
                    p.chat ? "; the letters scored through the server's chat endpoint" : "");
            sb_printf(json,
                      "{\"experiment\":\"llm-ranker\",\"shots\":%d,\"retriever\":\"%s\",\"candidates\":%d,\"users\":%d,"
                      "\"in_candidates\":%.6f,\"retriever_metrics\":{\"hr@10\":%.6f,\"ndcg@10\":%.6f},"
                      "\"reranked_metrics\":{\"hr@10\":%.6f,\"ndcg@10\":%.6f},\"ndcg_diff\":{\"mean\":%.6f,"
                      "\"lo\":%.6f,\"hi\":%.6f,\"p\":%.6f},\"ms_per_user\":%.3f,\"scored_by\":\"%s\"}",
                      p.shots, p.retriever, K, n_eval, n_eval ? (double)in_cands / n_eval : 0, a.mean, b.mean, c.mean, d.mean,
                      pn.diff, pn.lo, pn.hi, pn.p_value, n_eval ? 1000 * rank_s / n_eval : 0,
                      p.lm ? "model" : p.chat ? "chat" : "completions");
        }
        free(order), free(hr_r), free(nd_r), free(hr_l), free(nd_l);
    }
    sb_deinit(&prompt);
    free(cand), free(hist), free(cs), free(scratch);
    rec_model_free(r);
    pz_engine_free(e);
    eval_split_free(&s);
    return rc;
}

/* ---- the generative recommender ---------------------------------------------- */

/* The catalogue's titles as token sequences in a trie: a node's children
 * are the tokens that continue some title; a node where a title ends names
 * its item. Decoding only ever follows children, so whatever comes out is
 * a catalogue item. */
typedef struct gen_node {
    int32_t token, item; /* item: -1 unless a title ends here */
    int32_t first, next; /* first child, next sibling (-1: none) */
} gen_node;

typedef struct gen_trie {
    VEC(gen_node) n;
} gen_trie;

static int32_t trie_child(gen_trie *t, int32_t at, int32_t token, bool add) {
    for (int32_t c = t->n.data[at].first; c >= 0; c = t->n.data[c].next)
        if (t->n.data[c].token == token) return c;
    if (!add) return -1;
    gen_node x = {token, -1, -1, t->n.data[at].first};
    vec_push(&t->n, x);
    int32_t id = (int32_t)t->n.len - 1;
    t->n.data[at].first = id;
    return id;
}

/* An item as the generative model writes it: its semantic ID when the
 * experiment has them (names), else its title. */
static const char *item_name(pz_engine *e, const eval_split *s, char *const *names, int32_t i) {
    return names ? names[i] : title_of(e, s->item_ext[i]);
}

static void trie_build(gen_trie *t, const llm_model *m, pz_engine *e, const eval_split *s, char *const *names) {
    gen_node root = {-1, -1, -1, -1};
    vec_push(&t->n, root);
    sb text;
    sb_init(&text);
    for (int32_t i = 0; i < s->n_items; i++) {
        sb_clear(&text);
        /* The separator ends a title; the space before it is the one the
         * tokenizer adds itself where it prefixes one (SentencePiece), as
         * the title reads inside a sequence. */
        sb_printf(&text, "%s%s;", llm_vocab_add_space_prefix(m->vocab) ? "" : " ", item_name(e, s, names, i));
        int64_t n;
        int32_t *ids = llm_tokenize_alloc(m->vocab, text.buf, text.len, false, false, &n);
        int32_t at = 0;
        for (int64_t k = 0; k < n; k++) at = trie_child(t, at, ids[k], true);
        if (n && t->n.data[at].item < 0) t->n.data[at].item = i; /* the first of equal titles */
        free(ids);
    }
    sb_deinit(&text);
}

typedef struct beam {
    int32_t node;
    double logp;
    VEC(int32_t) tok;
} beam;

typedef struct expansion {
    int parent;
    int32_t node;
    double logp;
} expansion;

static int by_logp(const void *a, const void *b) {
    const expansion *x = a, *y = b;
    return x->logp != y->logp ? (x->logp < y->logp ? 1 : -1) : (x->node > y->node) - (x->node < y->node);
}

/* Beam search under the trie after the prompt (already decoded: n_prompt
 * tokens in ctx): up to k items, best first, none of the user's own.
 * Every child of every live beam is scored (log-softmax over the whole
 * vocabulary), and the best `width` that can still continue are kept. */
static int gen_items(llm_ctx *c, int32_t n_prompt, gen_trie *t, int width, int k, const unsigned char *own,
                     int32_t *items, tailor_error *err) {
    int V = llm_vocab_size(llm_ctx_model(c)->vocab), got = 0, rc = 0;
    beam *live = xcalloc((size_t)width, sizeof *live), *fresh = xcalloc((size_t)width, sizeof *fresh);
    int n_live = 1;
    live[0].node = 0;
    double *fin_score = xmalloc((size_t)k * sizeof *fin_score);
    VEC(expansion) ex = {0};
    for (int step = 0; step < 64 && n_live && !rc; step++) {
        ex.len = 0;
        for (int b = 0; b < n_live && !rc; b++) {
            const float *lg;
            if (live[b].tok.len) {
                llm_ctx_truncate(c, n_prompt);
                rc = llm_decode(c, live[b].tok.data, (int32_t)live[b].tok.len, false, err);
                if (rc) break;
            }
            lg = llm_ctx_logits(c, -1); /* the root's: the prompt's own last logits */
            double mx = -INFINITY, sum = 0;
            for (int v = 0; v < V; v++) mx = fmax(mx, lg[v]);
            for (int v = 0; v < V; v++) sum += exp(lg[v] - mx);
            double lse = mx + log(sum);
            for (int32_t ch = t->n.data[live[b].node].first; ch >= 0; ch = t->n.data[ch].next) {
                double lp = live[b].logp + lg[t->n.data[ch].token] - lse;
                int32_t item = t->n.data[ch].item;
                if (item >= 0 && !own[item]) { /* a finished title: into the sorted k best */
                    bool dup = false;
                    for (int i = 0; i < got && !dup; i++) dup = items[i] == item;
                    if (!dup && (got < k || lp > fin_score[got - 1])) {
                        int p = got < k ? got++ : k - 1;
                        while (p > 0 && fin_score[p - 1] < lp) items[p] = items[p - 1], fin_score[p] = fin_score[p - 1], p--;
                        items[p] = item, fin_score[p] = lp;
                    }
                }
                if (t->n.data[ch].first >= 0) {
                    expansion x = {b, ch, lp};
                    vec_push(&ex, x);
                }
            }
        }
        if (rc) break;
        qsort(ex.data, ex.len, sizeof *ex.data, by_logp);
        int n_fresh = 0;
        for (size_t i = 0; i < ex.len && n_fresh < width; i++) {
            if (got == k && ex.data[i].logp <= fin_score[k - 1]) break; /* log-probabilities only fall */
            beam *nb = &fresh[n_fresh++];
            nb->node = ex.data[i].node, nb->logp = ex.data[i].logp;
            nb->tok.len = 0;
            const beam *pb = &live[ex.data[i].parent];
            for (size_t j = 0; j < pb->tok.len; j++) vec_push(&nb->tok, pb->tok.data[j]);
            vec_push(&nb->tok, t->n.data[nb->node].token);
        }
        beam *sw = live;
        live = fresh, fresh = sw;
        n_live = n_fresh;
    }
    for (int i = 0; i < width; i++) {
        vec_free(&live[i].tok);
        vec_free(&fresh[i].tok);
    }
    vec_free(&ex);
    free(live), free(fresh), free(fin_score);
    return rc ? -1 : got;
}

/* ---- learned semantic IDs --------------------------------------------------- */

/* TIGER (Rajput et al. 2023) gives each item a short tuple of codes learned
 * from its vector, so that similar items share prefixes and a model
 * generates an item level by level. TIGER learns the codebooks with an
 * RQ-VAE over text embeddings; here residual k-means (the same residual
 * quantization without the autoencoder) over a recommender's item vectors
 * (ALS factors trained on the split's training part by default), L2-
 * normalised so that codes follow direction, not popularity. Items left
 * with the same codes get one more code telling them apart, as TIGER's
 * fourth digit does. */

static double sqdist(const float *a, const float *b, int d) {
    double s = 0;
    for (int i = 0; i < d; i++) s += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    return s;
}

/* Balanced assignment: each point to the nearest centre with room, the
 * closest (point, centre) pairs served first; a centre takes at most
 * ceil(n / K) points. Every pair is queued up to km_pairs of them; past
 * that (a large catalogue) only each point's KM_NEAR nearest centres, and
 * a point whose near centres all filled takes the nearest with room.
 * dist gets each point's distance to its centre. */
#define KM_NEAR 16
#define KM_PAIRS ((size_t)1 << 24)
static size_t km_pairs = KM_PAIRS; /* eval_kmeans_pair_limit changes it for tests */

void eval_kmeans_pair_limit(size_t pairs) { km_pairs = pairs ? pairs : KM_PAIRS; }

typedef struct km_pair {
    double d;
    int32_t i, c;
} km_pair;

static int km_pair_cmp(const void *a, const void *b) {
    const km_pair *x = a, *y = b;
    return x->d < y->d ? -1 : x->d > y->d ? 1 : x->i != y->i ? (x->i < y->i ? -1 : 1) : (x->c > y->c) - (x->c < y->c);
}

static void assign_balanced(const float *X, int32_t n, int d, int K, const float *C, int32_t *assign, double *dist) {
    int near = (size_t)n * (size_t)K <= km_pairs || K < KM_NEAR ? K : KM_NEAR;
    km_pair *pairs = xmalloc((size_t)n * near * sizeof *pairs);
    for (int32_t i = 0; i < n; i++) {
        km_pair *q = pairs + (size_t)i * near; /* every pair, or the near nearest by insertion */
        int k = 0;
        for (int c = 0; c < K; c++) {
            double x = sqdist(X + (size_t)i * d, C + (size_t)c * d, d);
            if (near == K) {
                q[c] = (km_pair){x, i, c};
                continue;
            }
            if (k == near && x >= q[near - 1].d) continue;
            int at = k < near ? k++ : near - 1;
            while (at > 0 && q[at - 1].d > x) q[at] = q[at - 1], at--;
            q[at] = (km_pair){x, i, c};
        }
    }
    qsort(pairs, (size_t)n * near, sizeof *pairs, km_pair_cmp);
    int32_t cap = (n + K - 1) / K, *room = xmalloc((size_t)K * sizeof *room), left = n;
    for (int c = 0; c < K; c++) room[c] = cap;
    for (int32_t i = 0; i < n; i++) assign[i] = -1;
    for (size_t k = 0; left > 0 && k < (size_t)n * near; k++) {
        const km_pair *q = &pairs[k];
        if (assign[q->i] >= 0 || room[q->c] == 0) continue;
        assign[q->i] = q->c, dist[q->i] = q->d, room[q->c]--, left--;
    }
    for (int32_t i = 0; left > 0 && i < n; i++) {
        if (assign[i] >= 0) continue;
        int best = -1;
        double bd = INFINITY;
        for (int c = 0; c < K; c++) {
            if (room[c] == 0) continue;
            double x = sqdist(X + (size_t)i * d, C + (size_t)c * d, d);
            if (best < 0 || x < bd) best = c, bd = x;
        }
        assign[i] = best, dist[i] = bd, room[best]--, left--;
    }
    free(room), free(pairs);
}

/* k-means++ seeding, then Lloyd's iterations; an empty cluster takes the
 * point farthest from its centroid. Balanced: every cluster holds at most
 * ceil(n / K) points (assign_balanced). */
static void kmeans(const float *X, int32_t n, int d, int K, int iters, bool balanced, rng *g, float *C,
                   int32_t *assign) {
    double *dist = xmalloc((size_t)n * sizeof *dist);
    memcpy(C, X + (size_t)rng_below(g, (uint64_t)n) * d, (size_t)d * sizeof *C);
    for (int32_t i = 0; i < n; i++) dist[i] = sqdist(X + (size_t)i * d, C, d);
    for (int c = 1; c < K; c++) {
        double total = 0;
        for (int32_t i = 0; i < n; i++) total += dist[i];
        int32_t pick = (int32_t)rng_below(g, (uint64_t)n);
        if (total > 0) {
            double r = rng_uniform(g) * total;
            for (pick = 0; pick < n - 1 && (r -= dist[pick]) > 0; pick++) {}
        }
        memcpy(C + (size_t)c * d, X + (size_t)pick * d, (size_t)d * sizeof *C);
        for (int32_t i = 0; i < n; i++) dist[i] = fmin(dist[i], sqdist(X + (size_t)i * d, C + (size_t)c * d, d));
    }
    int *count = xmalloc((size_t)K * sizeof *count);
    double *sum = xmalloc((size_t)K * d * sizeof *sum);
    int32_t *before = xmalloc((size_t)n * sizeof *before);
    for (int it = 0; it < iters; it++) {
        bool moved = false;
        if (balanced) {
            if (it) memcpy(before, assign, (size_t)n * sizeof *before);
            assign_balanced(X, n, d, K, C, assign, dist);
            moved = it == 0 || memcmp(before, assign, (size_t)n * sizeof *before) != 0;
        } else {
            for (int32_t i = 0; i < n; i++) {
                int best = 0;
                double bd = INFINITY;
                for (int c = 0; c < K; c++) {
                    double x = sqdist(X + (size_t)i * d, C + (size_t)c * d, d);
                    if (x < bd) bd = x, best = c;
                }
                moved |= it == 0 || assign[i] != best;
                assign[i] = best, dist[i] = bd;
            }
        }
        if (!moved) break;
        memset(count, 0, (size_t)K * sizeof *count);
        memset(sum, 0, (size_t)K * d * sizeof *sum);
        for (int32_t i = 0; i < n; i++) {
            count[assign[i]]++;
            for (int j = 0; j < d; j++) sum[(size_t)assign[i] * d + j] += X[(size_t)i * d + j];
        }
        for (int c = 0; c < K; c++) {
            if (count[c]) {
                for (int j = 0; j < d; j++) C[(size_t)c * d + j] = (float)(sum[(size_t)c * d + j] / count[c]);
                continue;
            }
            int32_t far = 0;
            for (int32_t i = 1; i < n; i++)
                if (dist[i] > dist[far]) far = i;
            memcpy(C + (size_t)c * d, X + (size_t)far * d, (size_t)d * sizeof *C);
            dist[far] = 0;
        }
    }
    free(dist), free(count), free(sum), free(before);
}

/* A code as a word: the level's letter, then the code in letters (base
 * 26, as many as the codebook needs), space-separated, so that a
 * byte-level BPE's pre-tokenizer keeps each code whole and a few merges
 * make it one token (TIGER gives codes tokens of their own; "<a12>" would
 * split into five pieces). */
static void code_word(sb *o, int level, int32_t code, int32_t codebook) {
    char w[8];
    int n = 1;
    for (int32_t c = 26; c < codebook; c *= 26) n++;
    for (int k = n - 1; k >= 0; k--, code /= 26) w[k] = (char)('a' + code % 26);
    sb_printf(o, "%s%c%.*s", o->len ? " " : "", 'a' + level, n, w);
}

/* The training part's sequences for a generator to learn from, each
 * user's items oldest first as names (titles or semantic IDs) in windows
 * of SEQ_WINDOW overlapping by half, in the form the generator prompts;
 * after each name of `alone` on a line of its own (NULL: none). */
enum { SEQ_WINDOW = 20 };
static int write_sequences(const eval_split *s, const char *const *names, const char *const *alone, const char *path,
                           int64_t *lines, tailor_error *err) {
    *lines = 0;
    FILE *o = fopen(path, "w");
    if (!o) return err_set(err, TAILOR_EIO, "cannot write %s: %s", path, strerror(errno));
    for (int32_t i = 0; alone && i < s->n_items; i++) fprintf(o, "%s\n", alone[i]), ++*lines;
    for (int32_t u = 0; u < s->n_users; u++) {
        int64_t len = s->train.ptr[u + 1] - s->train.ptr[u];
        if (len < 2) continue;
        int32_t *ordered = xmalloc((size_t)len * sizeof *ordered);
        int k = recent(&s->train, u, (int)len, ordered);
        for (int w = 0; w < k; w += SEQ_WINDOW / 2) { /* windows overlapping by half */
            fputs("A user's recent items, oldest first:", o);
            for (int j = w; j < k && j < w + SEQ_WINDOW; j++) fprintf(o, " %s;", names[ordered[j]]);
            fputc('\n', o);
            ++*lines;
            if (w + SEQ_WINDOW >= k) break;
        }
        free(ordered);
    }
    if (ferror(o) | fclose(o)) return err_set(err, TAILOR_EIO, "cannot write %s", path);
    return 0;
}

int eval_semantic_ids(store *st, eval_llmrank_params p, const char *dir, FILE *f, tailor_error *err) {
    if (p.id_levels < 1 || p.id_levels > 8 || p.id_codebook < 2 || p.id_codebook > 4096)
        return err_set(err, TAILOR_EINVAL, "semantic IDs: 1 to 8 levels of 2 to 4096 codes");
    eval_split s;
    int rc = load_split(st, &s, err);
    if (rc) return rc;
    rec_model *r = NULL;
    uint64_t t0 = timer_now_ns();
    rc = fit(p.retriever, &s.train, &s, &r, err);
    int d = 0;
    const float *V = !rc && r->kind->item_vectors ? r->kind->item_vectors(r, &d) : NULL;
    if (!rc && !V)
        rc = err_set(err, TAILOR_EUNSUPPORTED, "model kind %s has no item vectors to learn IDs from (als, bpr have)",
                     p.retriever);
    int32_t n = s.n_items;
    int L = p.id_levels, K = p.id_codebook < n ? p.id_codebook : (n > 1 ? n : 2);
    int32_t *code = rc ? NULL : xcalloc((size_t)n * (L + 1) + 1, sizeof *code); /* item x (L codes, disambiguation) */
    if (!rc) {
        float *R = xmalloc((size_t)n * d * sizeof *R), *C = xmalloc((size_t)K * d * sizeof *C);
        int32_t *assign = xmalloc((size_t)n * sizeof *assign);
        for (int32_t i = 0; i < n; i++) {
            double nn = 0;
            for (int j = 0; j < d; j++) nn += (double)V[(size_t)i * d + j] * V[(size_t)i * d + j];
            nn = sqrt(nn);
            for (int j = 0; j < d; j++) R[(size_t)i * d + j] = nn > 0 ? (float)(V[(size_t)i * d + j] / nn) : 0;
        }
        rng g;
        rng_seed(&g, p.seed);
        for (int l = 0; l < L; l++) {
            kmeans(R, n, d, K, 25, p.id_balanced, &g, C, assign);
            for (int32_t i = 0; i < n; i++) {
                code[(size_t)i * (L + 1) + l] = assign[i];
                for (int j = 0; j < d; j++) R[(size_t)i * d + j] -= C[(size_t)assign[i] * d + j];
            }
        }
        free(R), free(C), free(assign);
        /* The disambiguating code: an item's rank among earlier items with
         * the same L codes (-1: alone). */
        hmap seen;
        hmap_init(&seen, (size_t)n);
        int32_t *first = xmalloc((size_t)n * sizeof *first), *groups = xcalloc((size_t)n + 1, sizeof *groups);
        for (int32_t i = 0; i < n; i++) {
            int64_t at;
            const char *key = (const char *)(code + (size_t)i * (L + 1));
            if (hmap_get(&seen, key, (size_t)L * sizeof *code, &at)) {
                first[i] = (int32_t)at;
                code[(size_t)i * (L + 1) + L] = ++groups[at];
            } else {
                hmap_put(&seen, key, (size_t)L * sizeof *code, i);
                first[i] = i;
            }
        }
        int32_t shared = 0, largest = 0, prefixes = 0;
        for (int32_t i = 0; i < n; i++) {
            if (groups[first[i]] > 0) shared++;
            if (groups[i] + 1 > largest) largest = groups[i] + 1;
            prefixes += first[i] == i;
        }
        hmap_deinit(&seen);
        /* Written: codes.tsv (item, ID, title) and train.txt (the training
         * part's sequences in windows, as llm-generative prompts them). */
        sb path, id;
        sb_init(&path);
        sb_init(&id);
        if (mkdir(dir, 0755) && errno != EEXIST) rc = err_set(err, TAILOR_EIO, "cannot create %s: %s", dir, strerror(errno));
        sb_printf(&path, "%s/codes.tsv", dir);
        FILE *o = rc ? NULL : fopen(sb_str(&path), "w");
        if (!rc && !o) rc = err_set(err, TAILOR_EIO, "cannot write %s: %s", sb_str(&path), strerror(errno));
        pz_engine *e = NULL;
        if (!rc) pz_engine_new(st, &e, NULL);
        char **names = xcalloc((size_t)n + 1, sizeof *names);
        for (int32_t i = 0; !rc && i < n; i++) {
            sb_clear(&id);
            for (int l = 0; l < L; l++) code_word(&id, l, code[(size_t)i * (L + 1) + l], K);
            if (groups[first[i]] > 0) code_word(&id, L, code[(size_t)i * (L + 1) + L], largest);
            names[i] = xstrdup(sb_str(&id));
            const char *title = title_of(e, s.item_ext[i]);
            fprintf(o, "%s\t%s\t", s.item_ext[i], names[i]);
            for (const char *c = title; *c; c++) fputc(*c == '\t' || *c == '\n' ? ' ' : *c, o);
            fputc('\n', o);
        }
        if (o && (ferror(o) | fclose(o)) && !rc) rc = err_set(err, TAILOR_EIO, "cannot write %s", sb_str(&path));
        sb_clear(&path);
        sb_printf(&path, "%s/train.txt", dir);
        int64_t lines = 0;
        if (!rc) rc = write_sequences(&s, (const char *const *)names, NULL, sb_str(&path), &lines, err);
        if (!rc)
            fprintf(f,
                    "semantic IDs of %d items from %s's %d-wide item vectors (trained in %.1f s): %d levels of %d "
                    "codes by residual %sk-means; %d distinct %d-code prefixes, %d items share theirs (largest group "
                    "%d) and carry one more code (level %d)\nwrote %s/codes.tsv and %s/train.txt (%lld sequences, windows of %d "
                    "items)\n",
                    n, p.retriever, d, timer_seconds_since(t0), L, K, p.id_balanced ? "balanced " : "", prefixes, L,
                    shared, largest, L + 1, dir, dir, (long long)lines, SEQ_WINDOW);
        for (int32_t i = 0; i < n; i++) free(names[i]);
        free(names), free(first), free(groups);
        pz_engine_free(e);
        sb_deinit(&path);
        sb_deinit(&id);
    }
    free(code);
    rec_model_free(r);
    eval_split_free(&s);
    return rc;
}

/* The IDs of codes.tsv (item, ID[, title]) for every item of the split. */
static int read_ids(const char *path, const eval_split *s, char ***out, tailor_error *err) {
    *out = NULL;
    FILE *in = fopen(path, "r");
    if (!in) return err_set(err, TAILOR_EIO, "cannot read %s: %s", path, strerror(errno));
    hmap at;
    hmap_init(&at, (size_t)s->n_items);
    for (int32_t i = 0; i < s->n_items; i++) hmap_put(&at, s->item_ext[i], strlen(s->item_ext[i]), i);
    char **names = xcalloc((size_t)s->n_items + 1, sizeof *names);
    char *line = NULL;
    size_t cap = 0;
    int rc = 0;
    for (int64_t ln = 1; !rc && getline(&line, &cap, in) > 0; ln++) {
        line[strcspn(line, "\r\n")] = 0;
        char *tab = strchr(line, '\t');
        if (!tab) {
            rc = err_set(err, TAILOR_EDATA, "%s:%lld: expected ITEM<TAB>ID", path, (long long)ln);
            break;
        }
        char *end = strchr(tab + 1, '\t');
        if (end) *end = 0;
        int64_t i;
        if (!tab[1] || strchr(tab + 1, ';')) {
            rc = err_set(err, TAILOR_EDATA, "%s:%lld: an ID is not empty and holds no ';'", path, (long long)ln);
        } else if (hmap_get(&at, line, (size_t)(tab - line), &i)) {
            free(names[i]);
            names[i] = xstrdup(tab + 1);
        }
    }
    free(line);
    fclose(in);
    for (int32_t i = 0; !rc && i < s->n_items; i++)
        if (!names[i]) rc = err_set(err, TAILOR_EDATA, "%s: item %s has no ID", path, s->item_ext[i]);
    hmap_deinit(&at);
    if (rc) {
        for (int32_t i = 0; i < s->n_items; i++) free(names[i]);
        free(names);
        return rc;
    }
    *out = names;
    return 0;
}

/* The model's top k titles for user u (own: the user's items, set). */
static int generate_user(const eval_llmrank_params *p, pz_engine *e, const eval_split *s, char *const *names,
                         gen_trie *t, int32_t u, const unsigned char *own, int k, int32_t *items, sb *prompt,
                         tailor_error *err) {
    int32_t *hist = xmalloc(((size_t)p->history + 1) * sizeof *hist);
    int nh = recent(&s->train, u, p->history, hist);
    /* A sequence as the model reads sequences: the items joined by "; ",
     * the next one to follow. */
    sb_clear(prompt);
    sb_puts(prompt, "A user's recent items, oldest first:");
    for (int h = 0; h < nh; h++) sb_printf(prompt, " %s;", item_name(e, s, names, hist[h]));
    free(hist);
    int64_t nt;
    int32_t *ids = llm_tokenize_alloc(p->lm->vocab, prompt->buf, prompt->len, true, false, &nt);
    llm_ctx_truncate(p->ctx, 0);
    int rc = nt + 64 > llm_ctx_n_ctx(p->ctx)
                 ? err_set(err, TAILOR_EINVAL, "a prompt of %lld tokens leaves no room in the context of %d (--ctx)",
                           (long long)nt, llm_ctx_n_ctx(p->ctx))
                 : llm_decode(p->ctx, ids, (int32_t)nt, false, err);
    free(ids);
    if (rc) return -1;
    return gen_items(p->ctx, (int32_t)nt, t, 2 * k, k, own, items, err);
}

int eval_llm_generative(store *st, eval_llmrank_params p, FILE *f, sb *json, tailor_error *err) {
    if (!p.lm && !p.export_path) return err_set(err, TAILOR_EINVAL, "a language model (--model) generates");
    eval_split s;
    int rc = load_split(st, &s, err);
    if (rc) return rc;
    pz_engine *e = NULL;
    pz_engine_new(st, &e, NULL);
    if (p.export_path) { /* the text a base generator learns from: every title, then the sequences in titles */
        const char **titles = xmalloc(((size_t)s.n_items + 1) * sizeof *titles);
        for (int32_t i = 0; i < s.n_items; i++) titles[i] = title_of(e, s.item_ext[i]);
        int64_t lines = 0;
        rc = write_sequences(&s, titles, titles, p.export_path, &lines, err);
        if (!rc) {
            fprintf(f, "wrote %s: %d titles, then the training part's sequences in titles (%lld lines, windows of %d "
                       "items), for llm train\n",
                    p.export_path, s.n_items, (long long)lines, SEQ_WINDOW);
            sb_printf(json, "{\"experiment\":\"llm-generative\",\"export\":");
            sb_json_str(json, p.export_path, strlen(p.export_path));
            sb_printf(json, ",\"lines\":%lld}", (long long)lines);
        }
        free(titles);
        pz_engine_free(e);
        eval_split_free(&s);
        return rc;
    }
    char **names = NULL;
    if (p.ids_path && (rc = read_ids(p.ids_path, &s, &names, err))) {
        pz_engine_free(e);
        eval_split_free(&s);
        return rc;
    }
    gen_trie t = {0};
    uint64_t t0 = timer_now_ns();
    trie_build(&t, p.lm, e, &s, names);
    double trie_s = timer_seconds_since(t0);
    rec_model *r = NULL;
    rc = fit(p.retriever, &s.train, &s, &r, err);
    int32_t *order;
    rng g;
    int32_t n_eval = sample_users(&s, p.seed, p.users, &order, &g);
    enum { K = 10 };
    double *hr_r = xcalloc((size_t)n_eval + 1, 8), *nd_r = xcalloc((size_t)n_eval + 1, 8);
    double *hr_g = xcalloc((size_t)n_eval + 1, 8), *nd_g = xcalloc((size_t)n_eval + 1, 8);
    int32_t items[K], cand[K];
    float cs[K], *scratch = xmalloc(((size_t)s.n_items + 1) * sizeof *scratch);
    unsigned char *own = xcalloc((size_t)s.n_items + 1, 1);
    sb prompt;
    sb_init(&prompt);
    int64_t produced = 0, in_catalogue = 0;
    uint64_t t1 = timer_now_ns();
    for (int32_t i = 0; !rc && i < n_eval; i++) {
        int32_t u = order[i], target = s.test.idx[s.test.ptr[u]];
        double m[EVAL_M_PER_USER];
        int n = retrieve(r, &s.train, u, K, cand, cs, scratch);
        eval_user_metrics(cand, n, &target, 1, 10, m);
        hr_r[i] = m[EVAL_M_HR], nd_r[i] = m[EVAL_M_NDCG];
        for (int64_t a = s.train.ptr[u]; a < s.train.ptr[u + 1]; a++) own[s.train.idx[a]] = 1;
        int got = generate_user(&p, e, &s, names, &t, u, own, K, items, &prompt, err);
        if (got < 0) rc = err->code ? err->code : TAILOR_EINTERNAL, got = 0;
        for (int k = 0; k < got; k++) produced++, in_catalogue += items[k] >= 0 && items[k] < s.n_items;

        eval_user_metrics(items, got, &target, 1, 10, m);
        hr_g[i] = m[EVAL_M_HR], nd_g[i] = m[EVAL_M_NDCG];
        for (int64_t a = s.train.ptr[u]; a < s.train.ptr[u + 1]; a++) own[s.train.idx[a]] = 0;
    }
    double gen_s = timer_seconds_since(t1);
    if (!rc) {
        eval_stat a = eval_stat_of(hr_r, n_eval), b = eval_stat_of(nd_r, n_eval), c = eval_stat_of(hr_g, n_eval),
                  d = eval_stat_of(nd_g, n_eval);
        eval_paired pn = eval_paired_test(nd_g, nd_r, n_eval);
        fprintf(f, "leave-one-out, %d test users; %s decoded under a trie of %d items (%zu nodes, built in %.2f s), "
                   "beam width 20\n\n",
                n_eval, names ? "semantic IDs" : "titles", s.n_items, t.n.len, trie_s);
        fprintf(f, "| ranking | HR@10 | 95%% interval | NDCG@10 | 95%% interval |\n|---|---:|---|---:|---|\n");
        fprintf(f, "| %s | %.4f | %.4f-%.4f | %.4f | %.4f-%.4f |\n", p.retriever, a.mean, a.lo, a.hi, b.mean, b.lo,
                b.hi);
        fprintf(f, "| language model generating %s | %.4f | %.4f-%.4f | %.4f | %.4f-%.4f |\n",
                names ? "semantic IDs" : "titles", c.mean, c.lo, c.hi, d.mean, d.lo, d.hi);
        fprintf(f, "\ngenerated minus %s: NDCG@10 %+.4f (%+.4f to %+.4f, p %.3f); %lld items generated, %lld of them "
                   "catalogue items; %.1f ms per user\n",
                p.retriever, pn.diff, pn.lo, pn.hi, pn.p_value, (long long)produced, (long long)in_catalogue,
                n_eval ? 1000 * gen_s / n_eval : 0);
        sb_printf(json,
                  "{\"experiment\":\"llm-generative\",\"ids\":\"%s\",\"users\":%d,\"items_generated\":%lld,"
                  "\"in_catalogue\":%lld,"
                  "\"retriever_metrics\":{\"hr@10\":%.6f,\"ndcg@10\":%.6f},\"generated_metrics\":{\"hr@10\":%.6f,"
                  "\"ndcg@10\":%.6f},\"ms_per_user\":%.3f}",
                  names ? "semantic" : "titles", n_eval, (long long)produced, (long long)in_catalogue, a.mean, b.mean,
                  c.mean, d.mean,
                  n_eval ? 1000 * gen_s / n_eval : 0);
    }
    sb_deinit(&prompt);
    free(order), free(hr_r), free(nd_r), free(hr_g), free(nd_g), free(scratch), free(own);
    for (int32_t i = 0; names && i < s.n_items; i++) free(names[i]);
    free(names);
    vec_free(&t.n);
    rec_model_free(r);
    pz_engine_free(e);
    eval_split_free(&s);
    return rc;
}

/* ---- everything side by side ------------------------------------------------- */

/* A method's per-user figures at K 10 as the harness's result. */
static void result_of(eval_result *r, const eval_split *s, const char *name, double train_s, double eval_s,
                      double *values, const int32_t *tops, int64_t n) {
    memset(r, 0, sizeof *r);
    snprintf(r->model, sizeof r->model, "%s", name);
    snprintf(r->params, sizeof r->params, "{}");
    r->train_s = train_s, r->eval_s = eval_s;
    r->nk = 1, r->ks[0] = 10, r->n_users = n, r->values = values;
    double *col = xmalloc(((size_t)n + 1) * sizeof *col);
    for (int mi = 0; mi < EVAL_M_PER_USER; mi++) {
        for (int64_t u = 0; u < n; u++) col[u] = values[(size_t)u * EVAL_M_PER_USER + mi];
        r->stats[0][mi] = eval_stat_of(col, n);
    }
    free(col);
    eval_beyond_accuracy(s, tops, 10, NULL, (size_t)n, r);
}

/* A user's list into the top-10 lists (-1 padded). */
static void keep_top(int32_t *tops, int32_t i, const int32_t *list, int n) {
    for (int r = 0; r < 10; r++) tops[(size_t)i * 10 + r] = r < n ? list[r] : -1;
}

int eval_llm_vs_traditional(store *st, eval_llmrank_params p, const char *models, const char *dataset,
                            const char *report_dir, FILE *f, sb *json, tailor_error *err) {
    eval_split s;
    eval_split_params sp = eval_split_default_params();
    int rc = load_split(st, &s, err);
    if (rc) return rc;
    pz_engine *e = NULL;
    pz_engine_new(st, &e, NULL);
    int32_t *order;
    rng g;
    int32_t n_eval = sample_users(&s, p.seed, p.users, &order, &g);
    VEC(eval_result) res = {0};
    enum { K = 10 };
    int DEPTH = p.candidates > K ? p.candidates : K;
    int32_t *list = xmalloc((size_t)DEPTH * sizeof *list), *cand = xmalloc((size_t)DEPTH * sizeof *cand);
    float *cs = xmalloc((size_t)DEPTH * sizeof *cs), *scratch = xmalloc(((size_t)s.n_items + 1) * sizeof *scratch);
    int32_t *tops = xmalloc(((size_t)n_eval * 10 + 1) * sizeof *tops);
    /* The traditional models, each trained on the split's training part. */
    char *names = xstrdup(models);
    for (char *name = strtok(names, ","); !rc && name; name = strtok(NULL, ",")) {
        rec_model *r = NULL;
        uint64_t t0 = timer_now_ns();
        if (!p.quiet) fprintf(stderr, "training %s\n", name);
        rc = fit(name, &s.train, &s, &r, err);
        double train_s = timer_seconds_since(t0);
        if (rc) break;
        double *values = xcalloc((size_t)n_eval * EVAL_M_PER_USER + 1, sizeof *values);
        t0 = timer_now_ns();
        for (int32_t i = 0; i < n_eval; i++) {
            int32_t u = order[i], target = s.test.idx[s.test.ptr[u]];
            int n = retrieve(r, &s.train, u, K, cand, cs, scratch);
            eval_user_metrics(cand, n, &target, 1, K, values + (size_t)i * EVAL_M_PER_USER);
            keep_top(tops, i, cand, n);
        }
        eval_result x;
        result_of(&x, &s, name, train_s, timer_seconds_since(t0), values, tops, n_eval);
        vec_push(&res, x);
        rec_model_free(r);
    }
    free(names);
    /* The language model's two ways, over the retriever. */
    if (!rc && p.lm) {
        int32_t letters[26];
        rec_model *r = NULL;
        uint64_t t0 = timer_now_ns();
        rc = letter_tokens(p.lm, p.candidates, letters, err);
        if (!rc) rc = fit(p.retriever, &s.train, &s, &r, err);
        double fit_s = timer_seconds_since(t0);
        sb prompt;
        sb_init(&prompt);
        int64_t tokens = 0;
        double *values = xcalloc((size_t)n_eval * EVAL_M_PER_USER + 1, sizeof *values);
        t0 = timer_now_ns();
        for (int32_t i = 0; !rc && i < n_eval; i++) {
            int32_t u = order[i], target = s.test.idx[s.test.ptr[u]];
            int n = retrieve(r, &s.train, u, DEPTH, cand, cs, scratch);
            rc = rerank_user(&p, e, &s, u, cand, n, letters, &g, &prompt, list, &tokens, err);
            if (!rc) eval_user_metrics(list, n, &target, 1, K, values + (size_t)i * EVAL_M_PER_USER);
            if (!rc) keep_top(tops, i, list, n);
        }
        char name[72];
        snprintf(name, sizeof name, "llm-ranker/%s", p.retriever);
        eval_result x;
        result_of(&x, &s, name, fit_s, timer_seconds_since(t0), values, tops, n_eval);
        vec_push(&res, x);
        gen_trie t = {0};
        t0 = timer_now_ns();
        trie_build(&t, p.lm, e, &s, NULL);
        double trie_s = timer_seconds_since(t0);
        unsigned char *own = xcalloc((size_t)s.n_items + 1, 1);
        values = xcalloc((size_t)n_eval * EVAL_M_PER_USER + 1, sizeof *values);
        t0 = timer_now_ns();
        for (int32_t i = 0; !rc && i < n_eval; i++) {
            int32_t u = order[i], target = s.test.idx[s.test.ptr[u]];
            for (int64_t a = s.train.ptr[u]; a < s.train.ptr[u + 1]; a++) own[s.train.idx[a]] = 1;
            int got = generate_user(&p, e, &s, NULL, &t, u, own, K, list, &prompt, err);
            if (got < 0) rc = err->code ? err->code : TAILOR_EINTERNAL;
            else {
                eval_user_metrics(list, got, &target, 1, K, values + (size_t)i * EVAL_M_PER_USER);
                keep_top(tops, i, list, got);
            }
            for (int64_t a = s.train.ptr[u]; a < s.train.ptr[u + 1]; a++) own[s.train.idx[a]] = 0;
        }
        result_of(&x, &s, "llm-generative", trie_s, timer_seconds_since(t0), values, tops, n_eval);
        vec_push(&res, x);
        free(own);
        vec_free(&t.n);
        sb_deinit(&prompt);
        rec_model_free(r);
    }
    if (!rc && res.len) {
        eval_protocol proto = {.kind = EVAL_FULL, .seed = p.seed};
        eval_report_info info = {dataset, &s, &sp, &proto};
        fprintf(f, "%d test users (leave-one-out, a seeded sample); full ranking for the traditional models, the\n"
                   "language model's over the retriever's top %d (llm-ranker) and under the catalogue's title trie "
                   "(llm-generative); train s is the retriever's or the trie's, eval s the scoring of all users\n\n",
                n_eval, p.candidates);
        eval_print_table(f, &info, res.data, (int)res.len, false);
        eval_write_json(json, &info, res.data, (int)res.len);
        if (report_dir) rc = eval_write_report(report_dir, &info, res.data, (int)res.len, err);
        if (!rc && report_dir) fprintf(f, "\nreport: %s/report.md (with ndcg.svg)\n", report_dir);
    }
    for (size_t i = 0; i < res.len; i++) eval_result_free(&res.data[i]);
    vec_free(&res);
    free(list), free(cand), free(cs), free(scratch), free(order), free(tops);
    pz_engine_free(e);
    eval_split_free(&s);
    return rc;
}

int eval_llm_icl_shots(store *st, eval_llmrank_params p, FILE *f, sb *json, tailor_error *err) {
    static const int SHOTS[] = {0, 2, 5};
    sb_puts(json, "{\"experiment\":\"icl-shots\",\"runs\":[");
    int rc = 0;
    for (int i = 0; i < 3 && !rc; i++) {
        p.shots = SHOTS[i];
        if (i) sb_putc(json, ','), fputc('\n', f);
        rc = eval_llm_ranker(st, p, f, json, err);
    }
    sb_puts(json, "]}");
    return rc;
}
