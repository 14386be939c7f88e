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

#include <cblas.h>

#include "know/know.h"

/* 02 added the pooling after the model; 01 files read as the model's own. */
#define INDEX_MAGIC "TLRVEC02"
#define INDEX_MAGIC_01 "TLRVEC01"

void kg_index_free(kg_index *x) {
    kg_ann_free(x->ann);
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
    int32_t pooling = (int32_t)x->pooling;
    ok = ok && fwrite(INDEX_MAGIC, 1, 8, f) == 8 && fwrite(&ml, 4, 1, f) == 1 && fwrite(x->model, 1, ml, f) == ml &&
         fwrite(&pooling, 4, 1, f) == 1 && fwrite(&dim, 4, 1, f) == 1 && fwrite(&n, 8, 1, f) == 1;
    for (int64_t i = 0; ok && i < n; i++) {
        uint32_t l = (uint32_t)strlen(x->ids[i]);
        ok = fwrite(&l, 4, 1, f) == 1 && fwrite(x->ids[i], 1, l, f) == l;
    }
    ok = ok && fwrite(x->vec, sizeof(float), (size_t)n * dim, f) == (size_t)n * dim;
    if (f && fclose(f)) ok = false;
    if (ok && rename(tmp, path)) ok = false;
    if (!ok) remove(tmp);
    free(tmp);
    if (!ok) return err_set(err, TAILOR_EIO, "cannot write the index %s", path);
    /* The approximate index beside it, or none (a stale one would answer
     * for vectors that are gone). */
    sb ap;
    sb_init(&ap);
    sb_printf(&ap, "%s.ann", path);
    char msg[256];
    int rc = 0;
    if (x->ann && kg_ann_save(x->ann, sb_str(&ap), msg, sizeof msg))
        rc = err_set(err, TAILOR_EIO, "cannot write the approximate index %s: %s", sb_str(&ap), msg);
    if (!x->ann) remove(sb_str(&ap));
    sb_deinit(&ap);
    return rc;
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
    bool v2 = buf.len >= 12 && !memcmp(p, INDEX_MAGIC, 8);
    bool ok = v2 || (buf.len >= 12 && !memcmp(p, INDEX_MAGIC_01, 8));
    x->pooling = LLM_POOL_MODEL;
    if (ok) memcpy(&ml, p + 8, 4), p += 12, ok = (size_t)(end - p) >= (size_t)ml + 12 + (v2 ? 4 : 0);
    if (ok) {
        x->model = xstrndup(p, ml), p += ml;
        int32_t pooling = LLM_POOL_MODEL;
        if (v2) memcpy(&pooling, p, 4), p += 4;
        ok = pooling >= LLM_POOL_MEAN && pooling <= LLM_POOL_MODEL;
        x->pooling = (llm_pooling)pooling;
    }
    if (ok) {
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
    sb ap;
    sb_init(&ap);
    sb_printf(&ap, "%s.ann", path);
    char msg[256];
    if (file_exists(sb_str(&ap))) {
        if (kg_ann_load(sb_str(&ap), &x->ann, msg, sizeof msg))
            rc = err_set(err, TAILOR_EDATA, "%s: %s (tailor index build makes it again)", sb_str(&ap), msg);
        else if (kg_ann_count(x->ann) != x->n || kg_ann_dim(x->ann) != x->dim)
            rc = err_set(err, TAILOR_EDATA, "%s holds %lld vectors of %d; the index %lld of %d (tailor index build makes both again)",
                         sb_str(&ap), (long long)kg_ann_count(x->ann), kg_ann_dim(x->ann), (long long)x->n, x->dim);
        if (rc) kg_index_free(x);
    }
    sb_deinit(&ap);
    return rc;
}

/* ---- exact search ----------------------------------------------------------- */

/* The k best seen so far: a min-heap whose root is the worst kept hit, so
 * most candidates are turned away by one comparison. Ties go to the lower
 * row, so results never depend on how the rows were split over threads. */
typedef struct hit_t {
    float s;
    int64_t i;
} hit_t;

static bool hit_better(hit_t a, hit_t b) { return a.s > b.s || (a.s == b.s && a.i < b.i); }

typedef struct topk {
    int k, n;
    hit_t *h;
} topk;

static void topk_push(topk *t, float s, int64_t i) {
    hit_t x = {s, i};
    int p;
    if (t->n < t->k) {
        for (p = t->n++; p > 0 && hit_better(t->h[(p - 1) / 2], x); p = (p - 1) / 2) t->h[p] = t->h[(p - 1) / 2];
        t->h[p] = x;
        return;
    }
    if (!hit_better(x, t->h[0])) return;
    for (p = 0;;) {
        int c = 2 * p + 1;
        if (c >= t->n) break;
        if (c + 1 < t->n && hit_better(t->h[c], t->h[c + 1])) c++;
        if (!hit_better(x, t->h[c])) break;
        t->h[p] = t->h[c], p = c;
    }
    t->h[p] = x;
}

static int by_hit(const void *a, const void *b) {
    const hit_t *x = a, *y = b;
    return hit_better(*x, *y) ? -1 : hit_better(*y, *x) ? 1 : 0;
}

/* out[i] = <v_i, q> for n rows of d floats. The scalar twin is the
 * reference; the SIMD ones keep four rows in flight so the loads of one
 * hide the latency of the others' multiply-adds. */
typedef void (*dots_fn)(const float *v, size_t n, int d, const float *q, float *out);

static void dots_scalar(const float *v, size_t n, int d, const float *q, float *out) {
    for (size_t i = 0; i < n; i++) {
        const float *r = v + i * (size_t)d;
        float s = 0;
        for (int k = 0; k < d; k++) s += r[k] * q[k];
        out[i] = s;
    }
}

#if defined(__x86_64__)
#include <immintrin.h>

__attribute__((target("avx2,fma"))) static float hsum8(__m256 x) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

__attribute__((target("avx2,fma"))) static void dots_avx2(const float *v, size_t n, int d, const float *q, float *out) {
    int d8 = d & ~7;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const float *r0 = v + i * (size_t)d, *r1 = r0 + d, *r2 = r1 + d, *r3 = r2 + d;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int k = 0; k < d8; k += 8) {
            __m256 x = _mm256_loadu_ps(q + k);
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(r0 + k), x, a0);
            a1 = _mm256_fmadd_ps(_mm256_loadu_ps(r1 + k), x, a1);
            a2 = _mm256_fmadd_ps(_mm256_loadu_ps(r2 + k), x, a2);
            a3 = _mm256_fmadd_ps(_mm256_loadu_ps(r3 + k), x, a3);
        }
        float s0 = hsum8(a0), s1 = hsum8(a1), s2 = hsum8(a2), s3 = hsum8(a3);
        for (int k = d8; k < d; k++) s0 += r0[k] * q[k], s1 += r1[k] * q[k], s2 += r2[k] * q[k], s3 += r3[k] * q[k];
        out[i] = s0, out[i + 1] = s1, out[i + 2] = s2, out[i + 3] = s3;
    }
    for (; i < n; i++) {
        const float *r = v + i * (size_t)d;
        __m256 a = _mm256_setzero_ps();
        for (int k = 0; k < d8; k += 8) a = _mm256_fmadd_ps(_mm256_loadu_ps(r + k), _mm256_loadu_ps(q + k), a);
        float s = hsum8(a);
        for (int k = d8; k < d; k++) s += r[k] * q[k];
        out[i] = s;
    }
}

__attribute__((target("avx512f"))) static void dots_avx512(const float *v, size_t n, int d, const float *q,
                                                             float *out) {
    int d16 = d & ~15;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const float *r0 = v + i * (size_t)d, *r1 = r0 + d, *r2 = r1 + d, *r3 = r2 + d;
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int k = 0; k < d16; k += 16) {
            __m512 x = _mm512_loadu_ps(q + k);
            a0 = _mm512_fmadd_ps(_mm512_loadu_ps(r0 + k), x, a0);
            a1 = _mm512_fmadd_ps(_mm512_loadu_ps(r1 + k), x, a1);
            a2 = _mm512_fmadd_ps(_mm512_loadu_ps(r2 + k), x, a2);
            a3 = _mm512_fmadd_ps(_mm512_loadu_ps(r3 + k), x, a3);
        }
        float s0 = _mm512_reduce_add_ps(a0), s1 = _mm512_reduce_add_ps(a1), s2 = _mm512_reduce_add_ps(a2),
              s3 = _mm512_reduce_add_ps(a3);
        for (int k = d16; k < d; k++) s0 += r0[k] * q[k], s1 += r1[k] * q[k], s2 += r2[k] * q[k], s3 += r3[k] * q[k];
        out[i] = s0, out[i + 1] = s1, out[i + 2] = s2, out[i + 3] = s3;
    }
    for (; i < n; i++) {
        const float *r = v + i * (size_t)d;
        __m512 a = _mm512_setzero_ps();
        for (int k = 0; k < d16; k += 16) a = _mm512_fmadd_ps(_mm512_loadu_ps(r + k), _mm512_loadu_ps(q + k), a);
        float s = _mm512_reduce_add_ps(a);
        for (int k = d16; k < d; k++) s += r[k] * q[k];
        out[i] = s;
    }
}
#endif

/* By cpu_set (base/cpu.c); -1: not chosen yet (the best, or $TAILOR_LLM_KERNELS). */
static const dots_fn DOTS[CPU_SET_COUNT] = {
    dots_scalar,
#if defined(__x86_64__)
    dots_avx2,
    dots_avx512,
#endif
};
static int kernel_set = -1;

int kg_index_set_kernel(const char *name) {
    if (!name || !strcmp(name, "auto")) {
        kernel_set = -1;
        return 0;
    }
    int set = cpu_set_named(name);
    if (set < 0) return -1;
    kernel_set = set;
    return 0;
}

static dots_fn dots_pick(void) {
    if (kernel_set < 0) kernel_set = (int)cpu_set_best();
    return DOTS[kernel_set];
}

const char *kg_index_kernel(void) {
    dots_pick();
    return cpu_set_name((cpu_set)kernel_set);
}

/* Rows are scored in blocks small enough for the L2 cache; each thread
 * keeps its own k best per query, merged at the end. Several queries are
 * one matrix product per block (sgemm), so every row is read once for all
 * of them. */
#define SEARCH_BLOCK 256
#define SEARCH_GEMM_MIN 4

typedef struct search_job {
    const kg_index *x;
    const float *Q;
    int nq, k;
    topk *tops; /* [thread][query] */
    float **scratch;
    dots_fn dots;
} search_job;

static void search_blocks(void *ctx, size_t b, size_t e, int thread) {
    search_job *j = ctx;
    int d = j->x->dim;
    topk *t = j->tops + (size_t)thread * j->nq;
    float *S = j->scratch[thread];
    for (size_t blk = b; blk < e; blk++) {
        size_t lo = blk * SEARCH_BLOCK, m = (size_t)j->x->n - lo < SEARCH_BLOCK ? (size_t)j->x->n - lo : SEARCH_BLOCK;
        const float *V = j->x->vec + lo * (size_t)d;
        if (j->nq >= SEARCH_GEMM_MIN)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, j->nq, (int)m, d, 1.0f, j->Q, d, V, d, 0.0f, S,
                        SEARCH_BLOCK);
        else
            for (int qi = 0; qi < j->nq; qi++) j->dots(V, m, d, j->Q + (size_t)qi * d, S + (size_t)qi * SEARCH_BLOCK);
        for (int qi = 0; qi < j->nq; qi++) {
            topk *tq = &t[qi];
            const float *s = S + (size_t)qi * SEARCH_BLOCK;
            for (size_t r = 0; r < m; r++)
                if (tq->n < tq->k || s[r] >= tq->h[0].s) topk_push(tq, s[r], (int64_t)(lo + r));
        }
    }
}

int kg_index_search_many(const kg_index *x, const float *Q, int nq, int k, pool *tp, int64_t *out, float *scores) {
    if (k <= 0 || nq <= 0 || !x->n) return 0;
    if (k > x->n) k = (int)x->n;
    int nt = tp && x->n >= 8 * SEARCH_BLOCK ? pool_threads(tp) : 1;
    topk *tops = xcalloc((size_t)nt * nq, sizeof *tops);
    hit_t *heap = xmalloc((size_t)nt * nq * k * sizeof *heap);
    float **scratch = xmalloc((size_t)nt * sizeof *scratch);
    for (size_t i = 0; i < (size_t)nt * nq; i++) tops[i] = (topk){k, 0, heap + i * k};
    for (int t = 0; t < nt; t++) scratch[t] = xmalloc((size_t)nq * SEARCH_BLOCK * sizeof(float));
    search_job j = {x, Q, nq, k, tops, scratch, dots_pick()};
    size_t blocks = ((size_t)x->n + SEARCH_BLOCK - 1) / SEARCH_BLOCK;
    /* One BLAS thread per worker: ours already cover the cores. */
    if (nq >= SEARCH_GEMM_MIN) openblas_set_num_threads(1);
    if (nt > 1) pool_for(tp, blocks, search_blocks, &j);
    else search_blocks(&j, 0, blocks, 0);
    for (int qi = 0; qi < nq; qi++) {
        topk *all = &tops[qi];
        for (int t = 1; t < nt; t++) {
            topk *o = &tops[(size_t)t * nq + qi];
            for (int i = 0; i < o->n; i++) topk_push(all, o->h[i].s, o->h[i].i);
        }
        qsort(all->h, (size_t)all->n, sizeof *all->h, by_hit);
        for (int i = 0; i < all->n; i++) out[(size_t)qi * k + i] = all->h[i].i, scores[(size_t)qi * k + i] = all->h[i].s;
    }
    for (int t = 0; t < nt; t++) free(scratch[t]);
    free(scratch);
    free(heap);
    free(tops);
    return k;
}

int kg_index_search(const kg_index *x, const float *q, int k, pool *tp, int64_t *out, float *scores) {
    return kg_index_search_many(x, q, 1, k, tp, out, scores);
}

/* ---- approximate search ------------------------------------------------------- */

static const char *const ANN_NAMES[] = {"flat", "hnsw", "ivf"};

bool kg_ann_kind_parse(const char *s, kg_ann_kind *out) {
    for (int i = 0; i < 3; i++)
        if (!strcmp(s, ANN_NAMES[i])) return *out = (kg_ann_kind)i, true;
    return false;
}

const char *kg_ann_kind_name(kg_ann_kind k) { return (unsigned)k < 3 ? ANN_NAMES[k] : "?"; }

int kg_index_build_ann(kg_index *x, kg_ann_kind kind, tailor_error *err) {
    kg_ann_free(x->ann);
    x->ann = NULL;
    char msg[256];
    if (kg_ann_build(x->vec, x->n, x->dim, kind, &x->ann, msg, sizeof msg))
        return err_set(err, TAILOR_EINVAL, "Faiss cannot build a %s index of %lld vectors: %s", kg_ann_kind_name(kind),
                       (long long)x->n, msg);
    return 0;
}

int kg_index_nearest(const kg_index *x, const float *q, int k, pool *tp, int64_t *out, float *scores) {
    if (!x->ann) return kg_index_search(x, q, k, tp, out, scores);
    if (k <= 0 || !x->n) return 0;
    if (k > x->n) k = (int)x->n;
    char msg[256];
    if (kg_ann_search(x->ann, q, 1, k, 0, out, scores, msg, sizeof msg))
        return kg_index_search(x, q, k, tp, out, scores); /* exact is always an answer */
    int got = 0;
    while (got < k && out[got] >= 0) got++;
    return got;
}

double kg_index_recall(const kg_index *x, int k, int nq, uint64_t seed, pool *tp, double *ms_exact, double *ms_ann) {
    *ms_exact = *ms_ann = 0;
    if (!x->ann || !x->n || nq <= 0) return 0;
    if (k > x->n) k = (int)x->n;
    rng g;
    rng_seed(&g, seed);
    float *Q = xmalloc((size_t)nq * x->dim * sizeof *Q);
    for (int i = 0; i < nq; i++) {
        const float *a = x->vec + (size_t)rng_below(&g, (uint64_t)x->n) * x->dim;
        float *q = Q + (size_t)i * x->dim, norm = 0;
        /* Gaussian noise of length ~0.5 (Box-Muller; dim terms). */
        for (int d = 0; d < x->dim; d++) {
            double u1 = rng_uniform(&g) + 1e-12, u2 = rng_uniform(&g);
            q[d] = a[d] + (float)(0.5 / sqrt(x->dim) * sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2));
            norm += q[d] * q[d];
        }
        norm = norm > 0 ? 1 / sqrtf(norm) : 0;
        for (int d = 0; d < x->dim; d++) q[d] *= norm;
    }
    int64_t *ex = xmalloc((size_t)k * sizeof *ex), *ap = xmalloc((size_t)k * sizeof *ap);
    float *s = xmalloc((size_t)k * sizeof *s);
    int64_t found = 0;
    char msg[256];
    for (int i = 0; i < nq; i++) {
        const float *q = Q + (size_t)i * x->dim;
        uint64_t t0 = timer_now_ns();
        kg_index_search(x, q, k, tp, ex, s);
        uint64_t t1 = timer_now_ns();
        if (kg_ann_search(x->ann, q, 1, k, 0, ap, s, msg, sizeof msg)) continue;
        *ms_exact += (t1 - t0) / 1e6, *ms_ann += (timer_now_ns() - t1) / 1e6;
        for (int a = 0; a < k; a++)
            for (int b = 0; b < k; b++) found += ex[a] == ap[b];
    }
    *ms_exact /= nq, *ms_ann /= nq;
    free(Q), free(ex), free(ap), free(s);
    return (double)found / ((double)nq * k);
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
    out->pooling = em->pooling;
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
    int got = rc ? 0 : kg_index_nearest(x, q, depth, NULL, rows, sc), nw = 0;
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

int kg_retriever_open(kg_retriever *r, const kg_index *x, const char *model, tailor_error *err) {
    r->x = x;
    int rc = kg_embedder_open(&r->em, model ? model : x->model, x->pooling, err);
    if (!rc && (int32_t)r->em.m->hp.n_embd != x->dim) {
        rc = err_set(err, TAILOR_EINVAL, "%s makes %d-dimensional vectors; the index holds %d (built with %s)",
                     model ? model : x->model, (int)r->em.m->hp.n_embd, x->dim, x->model);
        kg_embedder_close(&r->em);
    }
    return rc;
}

void kg_retriever_close(kg_retriever *r) {
    if (r->em.m) kg_embedder_close(&r->em);
    r->x = NULL;
}

char *kg_index_default_path(const char *db_path) {
    sb p;
    sb_init(&p);
    sb_printf(&p, "%s.index/items.tvec", db_path);
    return sb_take(&p);
}

int kg_index_open_for(const char *db_path, const char *choice, kg_index **out, tailor_error *err) {
    *out = NULL;
    if (choice && !strcmp(choice, "none")) return 0;
    char *path = choice ? xstrdup(choice) : kg_index_default_path(db_path);
    int rc = 0;
    if (choice || file_exists(path)) {
        kg_index *x = xcalloc(1, sizeof *x);
        rc = kg_index_load(path, x, err);
        if (rc) free(x);
        else *out = x;
        if (rc && !choice) { /* the default one: a search without it is still a search */
            log_warn("the vector index %s is not used (%s): search by words only", path, err->msg);
            rc = 0, *err = (tailor_error){0};
        }
    }
    free(path);
    return rc;
}

void kg_index_close(kg_index *x) {
    if (!x) return;
    kg_index_free(x);
    free(x);
}
