/* index.c — item vectors for search by meaning: every item's title, text
 * and tags embedded by a GGUF model, kept in one file beside the store
 * (magic, version, the model it came from, dimension, ids, vectors),
 * searched exactly (every vector scored; unit vectors, so the dot product
 * is the cosine) on the thread pool; and reciprocal-rank fusion of a
 * word search and a vector search. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "know/know.h"

#define INDEX_MAGIC "TLRVEC01"

void kg_index_free(kg_index *x) {
    free(x->vec);
    free(x->ids);
    free(x->model);
    arena_deinit(&x->strings);
    memset(x, 0, sizeof *x);
}

int kg_index_save(const kg_index *x, const char *path, tailor_error *err) {
    char *tmp = xmalloc(strlen(path) + 8);
    sprintf(tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    bool ok = f != NULL;
    uint32_t ml = (uint32_t)strlen(x->model);
    int64_t n = x->n;
    int32_t dim = x->dim;
    ok = ok && fwrite(INDEX_MAGIC, 1, 8, f) == 8 && fwrite(&ml, 4, 1, f) == 1 && fwrite(x->model, 1, ml, f) == ml &&
         fwrite(&dim, 4, 1, f) == 1 && fwrite(&n, 8, 1, f) == 1;
    for (int64_t i = 0; ok && i < n; i++) {
        uint32_t l = (uint32_t)strlen(x->ids[i]);
        ok = fwrite(&l, 4, 1, f) == 1 && fwrite(x->ids[i], 1, l, f) == l;
    }
    ok = ok && fwrite(x->vec, sizeof(float), (size_t)n * dim, f) == (size_t)n * dim;
    if (f && fclose(f)) ok = false;
    if (ok && rename(tmp, path)) ok = false;
    if (!ok) remove(tmp);
    free(tmp);
    return ok ? 0 : err_set(err, TAILOR_EIO, "cannot write the index %s", path);
}

int kg_index_load(const char *path, kg_index *x, tailor_error *err) {
    memset(x, 0, sizeof *x);
    arena_init(&x->strings, 0);
    sb buf;
    sb_init(&buf);
    int rc = file_read(path, &buf, err);
    if (rc) {
        sb_deinit(&buf);
        arena_deinit(&x->strings);
        return rc;
    }
    const char *p = buf.buf, *end = buf.buf + buf.len;
    uint32_t ml;
    int32_t dim = 0;
    int64_t n = 0;
    bool ok = buf.len >= 12 && !memcmp(p, INDEX_MAGIC, 8);
    if (ok) memcpy(&ml, p + 8, 4), p += 12, ok = (size_t)(end - p) >= (size_t)ml + 12;
    if (ok) {
        x->model = xstrndup(p, ml), p += ml;
        memcpy(&dim, p, 4), memcpy(&n, p + 4, 8), p += 12;
        ok = dim > 0 && dim <= 65536 && n >= 0 && n < (1LL << 32);
    }
    if (ok) x->ids = xcalloc((size_t)n + 1, sizeof *x->ids);
    for (int64_t i = 0; ok && i < n; i++) {
        uint32_t l;
        ok = end - p >= 4;
        if (ok) memcpy(&l, p, 4), p += 4, ok = (size_t)(end - p) >= l;
        if (ok) x->ids[i] = arena_strndup(&x->strings, p, l), p += l;
    }
    ok = ok && (size_t)(end - p) == (size_t)n * dim * sizeof(float);
    if (ok) {
        x->vec = xmalloc((size_t)n * dim * sizeof(float) + 1);
        memcpy(x->vec, p, (size_t)n * dim * sizeof(float));
        x->n = n, x->dim = dim;
    }
    sb_deinit(&buf);
    if (!ok) {
        kg_index_free(x);
        return err_set(err, TAILOR_EDATA, "%s: not a tailor vector index, or damaged (tailor index build makes one)", path);
    }
    return 0;
}

typedef struct search_job {
    const kg_index *x;
    const float *q;
    float *scores;
} search_job;

static void score_range(void *ctx, size_t b, size_t e, int thread) {
    (void)thread;
    search_job *j = ctx;
    int d = j->x->dim;
    for (size_t i = b; i < e; i++) {
        const float *v = j->x->vec + i * (size_t)d;
        float s = 0;
        for (int k = 0; k < d; k++) s += v[k] * j->q[k];
        j->scores[i] = s;
    }
}

typedef struct hit_t {
    float s;
    int64_t i;
} hit_t;

static int by_hit(const void *a, const void *b) {
    const hit_t *x = a, *y = b;
    return x->s != y->s ? (x->s < y->s ? 1 : -1) : (x->i > y->i) - (x->i < y->i);
}

int kg_index_search(const kg_index *x, const float *q, int k, pool *tp, int64_t *out, float *scores) {
    if (k <= 0 || !x->n) return 0;
    float *all = xmalloc((size_t)x->n * sizeof *all + 1);
    search_job j = {x, q, all};
    if (tp && x->n >= 4096) pool_for(tp, (size_t)x->n, score_range, &j);
    else score_range(&j, 0, (size_t)x->n, 0);
    /* The k best through a small sorted buffer (k is small next to n). */
    int got = 0;
    hit_t *top = xmalloc(((size_t)k + 1) * sizeof *top);
    for (int64_t i = 0; i < x->n; i++) {
        if (got == k && all[i] <= top[k - 1].s) continue;
        int p = got < k ? got++ : k - 1;
        while (p > 0 && (top[p - 1].s < all[i])) top[p] = top[p - 1], p--;
        top[p] = (hit_t){all[i], i};
    }
    for (int i = 0; i < got; i++) out[i] = top[i].i, scores[i] = top[i].s;
    free(top);
    free(all);
    return got;
}

int kg_rrf(const char *const *a, int na, const char *const *b, int nb, int k, char **out, double *scores, int max) {
    /* score(item) = sum over the lists of 1 / (k + rank) (Cormack et al. 2009). */
    int n = 0;
    const char **ids = xmalloc(((size_t)na + nb + 1) * sizeof *ids);
    double *s = xcalloc((size_t)na + nb + 1, sizeof *s);
    for (int l = 0; l < 2; l++) {
        const char *const *list = l ? b : a;
        int len = l ? nb : na;
        for (int r = 0; r < len; r++) {
            int at = -1;
            for (int i = 0; i < n && at < 0; i++)
                if (!strcmp(ids[i], list[r])) at = i;
            if (at < 0) at = n++, ids[at] = list[r];
            s[at] += 1.0 / (k + r + 1);
        }
    }
    hit_t *h = xmalloc(((size_t)n + 1) * sizeof *h);
    for (int i = 0; i < n; i++) h[i] = (hit_t){(float)s[i], i};
    qsort(h, (size_t)n, sizeof *h, by_hit);
    int got = n < max ? n : max;
    for (int i = 0; i < got; i++) out[i] = xstrdup(ids[h[i].i]), scores[i] = s[h[i].i];
    free(h);
    free(ids);
    free(s);
    return got;
}

/* ---- building and querying ----------------------------------------------------- */

int kg_embedder_open(kg_embedder *em, const char *model, llm_pooling pooling, tailor_error *err) {
    memset(em, 0, sizeof *em);
    em->pooling = pooling;
    int rc = llm_model_load(model, &em->m, err);
    if (!rc) rc = llm_ctx_new(em->m, llm_ctx_default_params(), &em->c, err);
    if (rc) {
        llm_model_free(em->m);
        em->m = NULL;
    }
    return rc;
}

void kg_embedder_close(kg_embedder *em) {
    llm_ctx_free(em->c);
    llm_model_free(em->m);
    memset(em, 0, sizeof *em);
}

typedef struct build_ctx {
    store *s;
    kg_embedder *em;
    kg_index *out;
    VEC(char *) ids;
    VEC(float) vec;
    sb text;
    tailor_error *err;
    progress bar;
    uint64_t done;
} build_ctx;

static int embed_item(void *ctx, const store_item *it) {
    build_ctx *b = ctx;
    sb_clear(&b->text);
    if (it->title) sb_puts(&b->text, it->title);
    if (it->text) sb_printf(&b->text, "%s%s", b->text.len ? ". " : "", it->text);
    sb tags;
    sb_init(&tags);
    store_item_tags(b->s, it->id, &tags, NULL);
    if (tags.len) sb_printf(&b->text, "%sTags: %s", b->text.len ? ". " : "", sb_str(&tags));
    sb_deinit(&tags);
    if (!b->text.len) sb_puts(&b->text, it->ext_id);
    size_t d = (size_t)b->em->m->hp.n_embd, at = b->vec.len;
    vec_reserve(&b->vec, at + d);
    int rc = llm_embed(b->em->c, b->text.buf, b->text.len, b->em->pooling, b->vec.data + at, b->err);
    if (rc) return rc;
    b->vec.len += d;
    vec_push(&b->ids, arena_strdup(&b->out->strings, it->ext_id));
    progress_update(&b->bar, ++b->done);
    return 0;
}

int kg_index_build(store *s, kg_embedder *em, const char *model_path, bool quiet, kg_index *out, tailor_error *err) {
    memset(out, 0, sizeof *out);
    arena_init(&out->strings, 0);
    tailor_store_counts counts;
    int rc = store_counts(s, &counts, err);
    build_ctx b = {.s = s, .em = em, .out = out, .err = err};
    sb_init(&b.text);
    if (!quiet) progress_begin(&b.bar, "embedding items", (uint64_t)counts.items);
    if (!rc) rc = store_items_each(s, embed_item, &b, err);
    if (!quiet) progress_end(&b.bar);
    sb_deinit(&b.text);
    out->model = xstrdup(model_path);
    out->dim = (int32_t)em->m->hp.n_embd;
    out->n = (int64_t)b.ids.len;
    out->ids = b.ids.data;
    out->vec = b.vec.data;
    if (rc) kg_index_free(out);
    return rc;
}

void kg_hits_free(char **ids, double *scores, int n) {
    for (int i = 0; i < n; i++) free(ids[i]);
    free(ids);
    free(scores);
}

int kg_index_query(store *s, const kg_index *x, kg_embedder *em, const char *query, bool hybrid, int depth,
                   char ***ids, double **scores, int *n, tailor_error *err) {
    *ids = NULL, *scores = NULL, *n = 0;
    if ((int32_t)em->m->hp.n_embd != x->dim)
        return err_set(err, TAILOR_EINVAL, "the model makes %d-dimensional vectors; the index holds %d (built with %s)",
                       (int)em->m->hp.n_embd, x->dim, x->model);
    float *q = xmalloc((size_t)x->dim * sizeof *q);
    int rc = llm_embed(em->c, query, strlen(query), em->pooling, q, err);
    int64_t *rows = xmalloc(((size_t)depth + 1) * sizeof *rows);
    float *sc = xmalloc(((size_t)depth + 1) * sizeof *sc);
    const char **vids = xmalloc(((size_t)depth + 1) * sizeof *vids), **wids = xmalloc(((size_t)depth + 1) * sizeof *wids);
    int got = rc ? 0 : kg_index_search(x, q, depth, NULL, rows, sc), nw = 0;
    for (int i = 0; i < got; i++) vids[i] = x->ids[rows[i]];
    store_hit *hits = NULL;
    size_t nh = 0;
    arena words;
    arena_init(&words, 0);
    /* The word search (a query without words has none: vectors alone). */
    if (!rc && hybrid && store_search(s, query, &hits, &nh, NULL) == 0)
        for (size_t i = 0; i < nh && nw < depth; i++) {
            store_item it;
            if (store_item_get(s, hits[i].id, &it, NULL)) continue;
            wids[nw++] = arena_strdup(&words, it.ext_id);
            store_item_deinit(&it);
        }
    if (!rc) {
        *ids = xmalloc(((size_t)2 * depth + 1) * sizeof **ids);
        *scores = xmalloc(((size_t)2 * depth + 1) * sizeof **scores);
        if (hybrid) *n = kg_rrf(wids, nw, vids, got, 60, *ids, *scores, 2 * depth);
        else
            for (int i = 0; i < got; i++) (*ids)[i] = xstrdup(vids[i]), (*scores)[i] = sc[i], (*n)++;
    }
    arena_deinit(&words);
    free(hits);
    free(q);
    free(rows);
    free(sc);
    free(vids);
    free(wids);
    return rc;
}
