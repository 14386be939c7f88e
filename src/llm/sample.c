/* sample.c — the sampling chain: repetition and presence penalties, top-k,
 * top-p, min-p, temperature, then a seeded draw (or the argmax when the
 * temperature is 0). Logits are never modified in place; the chain works on
 * its own candidate list, ranked through a heap only as far as the
 * truncations look (a 150k-token vocabulary was sorted whole per token). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "llm/llm.h"

typedef struct cand {
    int32_t id;
    float logit, p;
} cand;

struct llm_sampler {
    llm_sampler_params p;
    int32_t n_vocab;
    cand *c, *out;
    rng r;
};

llm_sampler_params llm_sampler_default_params(void) {
    llm_sampler_params p = {0.8f, 40, 0.95f, 0.05f, 1.0f, 0.0f, 64, 0};
    return p;
}

llm_sampler *llm_sampler_new(llm_sampler_params p, int32_t n_vocab) {
    llm_sampler *s = xcalloc(1, sizeof *s);
    s->p = p;
    s->n_vocab = n_vocab;
    s->c = xmalloc(sizeof(cand) * (size_t)n_vocab);
    s->out = xmalloc(sizeof(cand) * (size_t)n_vocab);
    rng_seed(&s->r, p.seed);
    return s;
}

void llm_sampler_free(llm_sampler *s) {
    if (!s) return;
    free(s->c);
    free(s->out);
    free(s);
}

/* "a ranks before b": higher logit, then lower id (the order of a full
 * descending sort). */
static inline bool before(const cand *a, const cand *b) {
    return a->logit > b->logit || (a->logit == b->logit && a->id < b->id);
}

static void sift_down(cand *h, int32_t n, int32_t i) {
    for (;;) {
        int32_t l = 2 * i + 1, r = l + 1, best = i;
        if (l < n && before(&h[l], &h[best])) best = l;
        if (r < n && before(&h[r], &h[best])) best = r;
        if (best == i) return;
        cand t = h[i];
        h[i] = h[best];
        h[best] = t;
        i = best;
    }
}

/* The candidates in rank order, taken from a heap only as far as the
 * truncation needs them: top-k, top-p and min-p look at a prefix, so a
 * large vocabulary is not sorted whole for each token. */
typedef struct ranked {
    cand *heap; /* max-heap of what is not taken yet */
    int32_t left;
    cand *out; /* taken, best first */
    int32_t taken;
} ranked;

static void take_to(ranked *r, int32_t m) {
    while (r->taken < m && r->left > 0) {
        r->out[r->taken++] = r->heap[0];
        r->heap[0] = r->heap[--r->left];
        sift_down(r->heap, r->left, 0);
    }
}

int32_t llm_sampler_sample(llm_sampler *s, const float *logits, const int32_t *history, int64_t n_history) {
    return llm_sampler_sample_masked(s, logits, NULL, history, n_history);
}

int32_t llm_sampler_sample_masked(llm_sampler *s, const float *logits, const unsigned char *allow,
                                  const int32_t *history, int64_t n_history) {
    int32_t n = s->n_vocab;
    for (int32_t i = 0; i < n; i++) s->c[i] = (cand){i, logits[i], 0};
    /* Penalties on tokens seen in the last penalty_last_n. */
    if ((s->p.repeat_penalty != 1.0f || s->p.presence_penalty != 0.0f) && history && n_history > 0) {
        int64_t from = s->p.penalty_last_n > 0 && n_history > s->p.penalty_last_n ? n_history - s->p.penalty_last_n : 0;
        for (int64_t i = from; i < n_history; i++) {
            int32_t id = history[i];
            if (id < 0 || id >= n) continue;
            bool first = true;
            for (int64_t j = from; j < i; j++) first &= history[j] != id;
            if (!first) continue;
            cand *c = &s->c[id];
            c->logit = c->logit <= 0 ? c->logit * s->p.repeat_penalty : c->logit / s->p.repeat_penalty;
            c->logit -= s->p.presence_penalty;
        }
    }
    if (allow) {
        /* Only the allowed candidates, in token order: what follows ranks
         * and draws as if the others had a logit of minus infinity, at the
         * cost of the allowed ones only. */
        int32_t k = 0;
        for (int32_t i = 0; i < n; i++)
            if (allow[i]) s->c[k++] = s->c[i];
        if (!k) return -1;
        n = k;
    }
    if (s->p.temperature <= 0) {
        int32_t best = 0;
        for (int32_t i = 1; i < n; i++)
            if (s->c[i].logit > s->c[best].logit) best = i;
        return s->c[best].id;
    }
    int32_t k = s->p.top_k > 0 && s->p.top_k < n ? s->p.top_k : n;
    float max = s->c[0].logit;
    for (int32_t i = 1; i < n; i++)
        if (s->c[i].logit > max) max = s->c[i].logit;
    if (k == n && s->p.top_p >= 1.0f && s->p.min_p <= 0.0f) {
        /* Nothing is cut: one pass in token order (the same distribution). */
        double sum = 0;
        for (int32_t i = 0; i < n; i++) sum += s->c[i].p = expf((s->c[i].logit - max) / s->p.temperature);
        double u = rng_uniform(&s->r) * sum, acc = 0;
        for (int32_t i = 0; i < n; i++) {
            acc += s->c[i].p;
            if (u < acc) return s->c[i].id;
        }
        for (int32_t i = n; i-- > 0;) /* rounding: the last token that can be drawn */
            if (s->c[i].p > 0) return s->c[i].id;
        return s->c[n - 1].id;
    }
    for (int32_t i = n / 2; i-- > 0;) sift_down(s->c, n, i);
    ranked r = {s->c, n, s->out, 0};
    /* Softmax over the kept candidates (the k best; all when k is off). */
    double sum = 0;
    if (k < n) {
        take_to(&r, k);
        for (int32_t i = 0; i < k; i++) sum += expf(r.out[i].logit - max);
    } else {
        for (int32_t i = 0; i < n; i++) sum += expf(s->c[i].logit - max);
    }
    if (s->p.top_p < 1.0f) {
        double cum = 0;
        for (int32_t i = 0; i < k; i++) {
            take_to(&r, i + 1);
            cum += expf(r.out[i].logit - max) / sum;
            if (cum >= s->p.top_p) {
                k = i + 1;
                break;
            }
        }
    }
    if (s->p.min_p > 0.0f) {
        take_to(&r, 1);
        double cut = expf(r.out[0].logit - max) / sum * s->p.min_p;
        int32_t keep = 1;
        while (keep < k) {
            take_to(&r, keep + 1);
            if (expf(r.out[keep].logit - max) / sum < cut) break;
            keep++;
        }
        k = keep;
    }
    take_to(&r, k);
    /* Temperature on what is left, then draw. */
    sum = 0;
    for (int32_t i = 0; i < k; i++) sum += r.out[i].p = expf((r.out[i].logit - max) / s->p.temperature);
    double u = rng_uniform(&s->r) * sum, acc = 0;
    for (int32_t i = 0; i < k; i++) {
        acc += r.out[i].p;
        if (u < acc) return r.out[i].id;
    }
    return r.out[k - 1].id;
}
