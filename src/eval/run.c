/* run.c — trains a model on a split and evaluates it under a protocol.
 * Users are evaluated in parallel, each into its own slot; negatives are
 * drawn from a generator seeded by (seed, user), so results do not depend
 * on the thread count. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eval/eval.h"
#include "ingest/ingest.h"

void eval_protocol_describe(const eval_protocol *p, sb *out) {
    if (p->kind == EVAL_FULL) {
        sb_puts(out, "full ranking (all items the user has not trained on)");
    } else if (p->neg_file) {
        sb_printf(out, "sampled ranking (target + negatives from %s)", p->neg_file);
    } else {
        sb_printf(out, "sampled ranking (target + %d %s negatives, seed %llu)", p->negatives,
                  p->pop_negatives ? "popularity-weighted" : "uniform", (unsigned long long)p->seed);
    }
}

void eval_result_free(eval_result *r) {
    free(r->values);
    r->values = NULL;
}

/* Negatives read from a file: per user (split index) a list of items. */
typedef struct neg_lists {
    int64_t *ptr; /* n_users + 1 */
    int32_t *items;
} neg_lists;

static int load_neg_file(const char *path, const eval_split *s, neg_lists *out, tailor_error *err) {
    hmap users, items;
    hmap_init(&users, (size_t)s->n_users);
    hmap_init(&items, (size_t)s->n_items);
    for (int32_t u = 0; u < s->n_users; u++) hmap_put(&users, s->user_ext[u], strlen(s->user_ext[u]), u);
    for (int32_t i = 0; i < s->n_items; i++) hmap_put(&items, s->item_ext[i], strlen(s->item_ext[i]), i);
    ing_reader r;
    ing_reader_params rp = {.sep = " ", .quoting = false, .check_utf8 = true};
    int rc = ing_reader_open(&r, path, rp, err);
    int64_t *count = xcalloc((size_t)s->n_users + 1, sizeof *count);
    VEC(int32_t) uu = {0};
    VEC(int32_t) ii = {0};
    while (!rc && (rc = ing_reader_next(&r, err)) == 1) {
        rc = 0;
        int64_t u;
        if (!hmap_get(&users, ing_field_str(&r, 0), ing_field_len(&r, 0), &u)) continue;
        for (size_t f = 1; f < ing_nfields(&r); f++) {
            if (!ing_field_len(&r, f)) continue;
            int64_t it;
            if (!hmap_get(&items, ing_field_str(&r, f), ing_field_len(&r, f), &it)) {
                rc = err_data(err, path, r.line, NULL, "item '%s' is not in the evaluated data",
                              ing_field_str(&r, f));
                break;
            }
            vec_push(&uu, (int32_t)u);
            vec_push(&ii, (int32_t)it);
            count[u]++;
        }
    }
    if (rc > 0) rc = 0;
    if (!rc) {
        out->ptr = xcalloc((size_t)s->n_users + 1, sizeof(int64_t));
        for (int32_t u = 0; u < s->n_users; u++) out->ptr[u + 1] = out->ptr[u] + count[u];
        out->items = xmalloc((uu.len ? uu.len : 1) * sizeof(int32_t));
        int64_t *fill = xmalloc(((size_t)s->n_users + 1) * sizeof *fill);
        memcpy(fill, out->ptr, ((size_t)s->n_users + 1) * sizeof *fill);
        for (size_t k = 0; k < uu.len; k++) out->items[fill[uu.data[k]]++] = ii.data[k];
        free(fill);
    }
    if (r.f) ing_reader_close(&r);
    free(count);
    vec_free(&uu);
    vec_free(&ii);
    hmap_deinit(&users);
    hmap_deinit(&items);
    return rc;
}

typedef struct eval_job {
    const rec_model *m;
    const eval_split *s;
    const eval_protocol *proto;
    const eval_csr *train, *targets;
    const neg_lists *negs;
    const double *pop_cdf; /* popularity-weighted negatives */
    int nk, maxk;
    const int *ks;
    double *values;       /* per user */
    int32_t *toplists;    /* per user, maxk items of the full ranking (-1 = none) */
    unsigned char *has;   /* per user: evaluated */
} eval_job;


typedef struct cand {
    float score;
    int32_t item;
} cand;

static int cand_cmp(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return (x->item > y->item) - (x->item < y->item);
}

static void eval_users(void *ctx, size_t begin, size_t end, int thread) {
    eval_job *j = ctx;
    const eval_split *s = j->s;
    int32_t ni = s->n_items;
    float *scores = xmalloc((size_t)ni * sizeof *scores);
    int32_t *ranked = xmalloc((size_t)(j->maxk > 0 ? j->maxk : 1) * sizeof *ranked);
    float *rs = xmalloc((size_t)(j->maxk > 0 ? j->maxk : 1) * sizeof *rs);
    int32_t *hist = xmalloc((size_t)ni * sizeof *hist);
    float *hv = xmalloc((size_t)ni * sizeof *hv);
    VEC(cand) cands = {0};
    VEC(int32_t) cand_ranked = {0};
    unsigned char *chosen = xcalloc((size_t)ni, 1);
    int32_t *drawn = xmalloc(((size_t)j->proto->negatives + 1) * sizeof *drawn);
    for (size_t uu = begin; uu < end; uu++) {
        int32_t u = (int32_t)uu;
        const int32_t *targets = j->targets->idx + j->targets->ptr[u];
        int nt = (int)(j->targets->ptr[u + 1] - j->targets->ptr[u]);
        if (nt == 0 || j->train->ptr[u + 1] == j->train->ptr[u]) continue;
        size_t nh = 0;
        for (int64_t a = j->train->ptr[u]; a < j->train->ptr[u + 1]; a++)
            hist[nh] = j->train->idx[a], hv[nh++] = j->train->val[a];
        if (j->m->kind->sequential) {
            /* oldest first, ties by item index: insertion sort on times */
            const int64_t *ts = j->train->ts + j->train->ptr[u];
            int64_t *t2 = xmalloc(nh * sizeof *t2 + 1);
            memcpy(t2, ts, nh * sizeof *t2);
            for (size_t x = 1; x < nh; x++) {
                int32_t hi = hist[x];
                float hvv = hv[x];
                int64_t tx = t2[x];
                size_t y = x;
                while (y > 0 && (t2[y - 1] > tx || (t2[y - 1] == tx && hist[y - 1] > hi))) {
                    hist[y] = hist[y - 1], hv[y] = hv[y - 1], t2[y] = t2[y - 1];
                    y--;
                }
                hist[y] = hi, hv[y] = hvv, t2[y] = tx;
            }
            free(t2);
        }
        j->m->kind->score(j->m, u, hist, hv, nh, scores);
        for (size_t h = 0; h < nh; h++) scores[hist[h]] = -INFINITY;
        /* The full list: what the user would be shown. */
        int got = rec_topk_scores(scores, ni, j->maxk, ranked, rs);
        int32_t *top = j->toplists + (size_t)u * j->maxk;
        for (int r = 0; r < j->maxk; r++) top[r] = r < got ? ranked[r] : -1;
        const int32_t *list = ranked;
        int list_n = got;
        if (j->proto->kind == EVAL_SAMPLED) {
            cands.len = 0;
            for (int t = 0; t < nt; t++) {
                cand c = {scores[targets[t]], targets[t]};
                vec_push(&cands, c);
                chosen[targets[t]] = 1;
            }
            if (j->negs) {
                for (int64_t a = j->negs->ptr[u]; a < j->negs->ptr[u + 1]; a++) {
                    int32_t it = j->negs->items[a];
                    if (chosen[it] || rec_csr_has(s->all.ptr, s->all.idx, u, it)) continue;
                    cand c = {scores[it], it};
                    vec_push(&cands, c);
                    chosen[it] = 1;
                }
            } else {
                rng g;
                rng_seed(&g, j->proto->seed * 0x9E3779B97F4A7C15ULL + (uint64_t)u);
                int n = rec_draw_negatives(s->all.ptr, s->all.idx, u, ni, j->proto->negatives, j->pop_cdf, &g,
                                           chosen, drawn);
                for (int k = 0; k < n; k++) {
                    cand c = {scores[drawn[k]], drawn[k]};
                    vec_push(&cands, c);
                }
            }
            for (size_t c = 0; c < cands.len; c++) chosen[cands.data[c].item] = 0;
            qsort(cands.data, cands.len, sizeof(cand), cand_cmp);
            cand_ranked.len = 0;
            for (size_t c = 0; c < cands.len && (int)c < j->maxk; c++) vec_push(&cand_ranked, cands.data[c].item);
            list = cand_ranked.data;
            list_n = (int)cand_ranked.len;
        }
        for (int ki = 0; ki < j->nk; ki++)
            eval_user_metrics(list, list_n, targets, nt, j->ks[ki],
                              j->values + ((size_t)u * j->nk + ki) * EVAL_M_PER_USER);
        j->has[u] = 1;
    }
    free(scores);
    free(ranked);
    free(rs);
    free(hist);
    free(hv);
    free(chosen);
    free(drawn);
    vec_free(&cands);
    vec_free(&cand_ranked);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Coverage, Gini, average popularity and novelty of the users' top-K
 * lists (toplists: maxk per user, -1 padded; has: which users count). */
void eval_beyond_accuracy(const eval_split *s, const int32_t *toplists, int maxk, const unsigned char *has, size_t nu,
                          eval_result *out) {
    double *cnt = xmalloc(((size_t)s->n_items + 1) * sizeof *cnt);
    for (int ki = 0; ki < out->nk; ki++) {
        int k = out->ks[ki];
        memset(cnt, 0, (size_t)s->n_items * sizeof *cnt);
        double arp = 0, nov = 0;
        int64_t shown = 0;
        for (size_t u = 0; u < nu; u++) {
            if (has && !has[u]) continue;
            const int32_t *top = toplists + u * maxk;
            double ua = 0, un = 0;
            int c = 0;
            for (int r = 0; r < k && r < maxk && top[r] >= 0; r++, c++) {
                cnt[top[r]] += 1;
                double pop = s->popularity[top[r]];
                ua += pop;
                un += -log2((pop > 0 ? pop : 1) / (double)s->n_users);
            }
            if (c) arp += ua / c, nov += un / c, shown++;
        }
        int64_t covered = 0;
        for (int32_t i = 0; i < s->n_items; i++) covered += cnt[i] > 0;
        out->coverage[ki] = s->n_items ? (double)covered / s->n_items : 0;
        out->arp[ki] = shown ? arp / shown : 0;
        out->novelty[ki] = shown ? nov / shown : 0;
        qsort(cnt, (size_t)s->n_items, sizeof *cnt, cmp_double);
        double num = 0, sum = 0;
        for (int32_t i = 0; i < s->n_items; i++) {
            num += (2.0 * (i + 1) - s->n_items - 1) * cnt[i];
            sum += cnt[i];
        }
        out->gini[ki] = sum > 0 ? num / ((double)s->n_items * sum) : 0;
    }
    free(cnt);
}

int eval_model(rec_model *m, const eval_split *s, const eval_protocol *proto, eval_run_params p,
               eval_result *out, tailor_error *err) {
    memset(out, 0, sizeof *out);
    if (p.nk < 1 || p.nk > EVAL_MAX_K) return err_set(err, TAILOR_EINVAL, "between 1 and %d values of K", EVAL_MAX_K);
    snprintf(out->model, sizeof out->model, "%s", m->kind->name);
    sb pj;
    sb_init(&pj);
    rec_params_json(&m->params, &pj);
    snprintf(out->params, sizeof out->params, "%s", sb_str(&pj));
    sb_deinit(&pj);
    out->nk = p.nk;
    int maxk = 0;
    for (int i = 0; i < p.nk; i++) {
        out->ks[i] = p.ks[i];
        if (p.ks[i] > maxk) maxk = p.ks[i];
    }
    const eval_csr *train = p.validation ? &s->val_train : &s->train;
    const eval_csr *targets = p.validation ? &s->val : &s->test;
    rec_data d = eval_csr_data(train, s->n_items);
    if (s->graph.g.n_entities) d.graph = &s->graph.g;
    m->pool = p.pool;
    uint64_t t0 = timer_now_ns();
    int rc = p.trained ? 0 : rec_model_fit(m, &d, s->user_ext, s->item_ext, err);
    out->train_s = p.trained ? 0 : timer_seconds_since(t0);
    if (rc) return rc;

    neg_lists negs = {0};
    if (proto->kind == EVAL_SAMPLED && proto->neg_file && (rc = load_neg_file(proto->neg_file, s, &negs, err)))
        return rc;
    double *cdf = NULL;
    if (proto->kind == EVAL_SAMPLED && !proto->neg_file && proto->pop_negatives) {
        /* Popularity in the training data, plus one so every item can be drawn. */
        cdf = xmalloc(((size_t)s->n_items + 1) * sizeof *cdf);
        double acc = 0;
        for (int32_t i = 0; i < s->n_items; i++) cdf[i] = acc += 1.0 + s->popularity[i];
    }
    size_t nu = (size_t)s->n_users;
    eval_job job = {.m = m, .s = s, .proto = proto, .train = train, .targets = targets,
                    .negs = proto->neg_file ? &negs : NULL, .pop_cdf = cdf, .nk = p.nk,
                    .maxk = maxk, .ks = out->ks};
    job.values = xcalloc(nu * p.nk * EVAL_M_PER_USER + 1, sizeof(double));
    job.toplists = xmalloc((nu * maxk + 1) * sizeof(int32_t));
    job.has = xcalloc(nu + 1, 1);
    t0 = timer_now_ns();
    if (p.pool) pool_for(p.pool, nu, eval_users, &job);
    else eval_users(&job, 0, nu, 0);
    out->eval_s = timer_seconds_since(t0);

    /* Keep the evaluated users only, in user order. */
    size_t ne = 0;
    for (size_t u = 0; u < nu; u++)
        if (job.has[u]) {
            memmove(job.values + ne * p.nk * EVAL_M_PER_USER, job.values + u * p.nk * EVAL_M_PER_USER,
                    (size_t)p.nk * EVAL_M_PER_USER * sizeof(double));
            ne++;
        }
    out->n_users = (int64_t)ne;
    out->values = job.values;
    double *col = xmalloc((ne + 1) * sizeof *col);
    for (int ki = 0; ki < p.nk; ki++)
        for (int mi = 0; mi < EVAL_M_PER_USER; mi++) {
            for (size_t u = 0; u < ne; u++) col[u] = out->values[(u * p.nk + ki) * EVAL_M_PER_USER + mi];
            out->stats[ki][mi] = eval_stat_of(col, (int64_t)ne);
        }
    eval_beyond_accuracy(s, job.toplists, maxk, job.has, nu, out);
    free(col);
    free(job.toplists);
    free(job.has);
    free(cdf);
    free(negs.ptr);
    free(negs.items);
    return 0;
}
