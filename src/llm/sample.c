/* sample.c — the sampling chain: repetition and presence penalties, top-k,
 * top-p, min-p, temperature, then a seeded draw (or the argmax when the
 * temperature is 0). Logits are never modified in place; the chain works on
 * its own candidate list. */
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
    cand *c;
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
    rng_seed(&s->r, p.seed);
    return s;
}

void llm_sampler_free(llm_sampler *s) {
    if (!s) return;
    free(s->c);
    free(s);
}

static int by_logit_desc(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->logit != y->logit) return x->logit > y->logit ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

int32_t llm_sampler_sample(llm_sampler *s, const float *logits, const int32_t *history, int64_t n_history) {
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
    if (s->p.temperature <= 0) {
        int32_t best = 0;
        for (int32_t i = 1; i < n; i++)
            if (s->c[i].logit > s->c[best].logit) best = i;
        return s->c[best].id;
    }
    int32_t k = n;
    if (s->p.top_k > 0 && s->p.top_k < n) {
        /* Partial selection would do; a full sort is simple and fast enough
         * for one token. */
        k = s->p.top_k;
    }
    qsort(s->c, (size_t)n, sizeof(cand), by_logit_desc);
    /* Softmax over the kept candidates. */
    float max = s->c[0].logit;
    double sum = 0;
    for (int32_t i = 0; i < k; i++) {
        s->c[i].p = expf(s->c[i].logit - max);
        sum += s->c[i].p;
    }
    for (int32_t i = 0; i < k; i++) s->c[i].p = (float)(s->c[i].p / sum);
    if (s->p.top_p < 1.0f) {
        double cum = 0;
        for (int32_t i = 0; i < k; i++) {
            cum += s->c[i].p;
            if (cum >= s->p.top_p) {
                k = i + 1;
                break;
            }
        }
    }
    if (s->p.min_p > 0.0f) {
        float cut = s->c[0].p * s->p.min_p;
        int32_t keep = 1;
        while (keep < k && s->c[keep].p >= cut) keep++;
        k = keep;
    }
    /* Temperature on what is left, then draw. */
    sum = 0;
    for (int32_t i = 0; i < k; i++) {
        s->c[i].p = expf((s->c[i].logit - max) / s->p.temperature);
        sum += s->c[i].p;
    }
    double u = rng_uniform(&s->r) * sum, acc = 0;
    for (int32_t i = 0; i < k; i++) {
        acc += s->c[i].p;
        if (u < acc) return s->c[i].id;
    }
    return s->c[k - 1].id;
}
