/* itemknn.c — item-based k-nearest neighbours.
 * Items are vectors over users (binary, or BM25 / TF-IDF weighted with
 * users as terms); similarity is cosine or asymmetric cosine with
 * shrinkage; each item keeps its k most similar items. A user's score for
 * item j is the sum of sim(h, j) over the history items h that keep j as a
 * neighbour. Similarities are computed per item in parallel from the
 * co-occurrence counts (item -> users -> items), deterministic for any
 * thread count. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rec/rec.h"

typedef struct knn_state {
    int k;
    double shrink, alpha;
    int sim; /* 0 cosine, 1 asymmetric */
    int weighting; /* 0 none, 1 tfidf, 2 bm25 */
    double k1, b;
    int64_t *nb_ptr; /* n_items + 1 */
    int32_t *nb_idx;
    float *nb_sim;
} knn_state;

static const rec_param_spec KNN_PARAMS[] = {
    {"k", "10", "neighbours kept per item (0 = all)"},
    {"shrink", "10", "shrinkage added to the similarity's denominator"},
    {"similarity", "cosine", "cosine or asymmetric (asymmetric cosine)"},
    {"alpha", "0.5", "asymmetric cosine exponent"},
    {"weighting", "none", "none, tfidf or bm25 (users as terms)"},
    {"bm25_k1", "1.2", "BM25 k1"},
    {"bm25_b", "0.75", "BM25 b"},
    {NULL, NULL, NULL},
};

static int knn_init(rec_model *m, tailor_error *err) {
    knn_state *s = xcalloc(1, sizeof *s);
    m->impl = s;
    s->k = (int)rec_param_i64(m, "k");
    s->shrink = rec_param_f64(m, "shrink");
    s->alpha = rec_param_f64(m, "alpha");
    s->k1 = rec_param_f64(m, "bm25_k1");
    s->b = rec_param_f64(m, "bm25_b");
    const char *sim = rec_param_str(m, "similarity"), *w = rec_param_str(m, "weighting");
    if (!strcmp(sim, "cosine")) s->sim = 0;
    else if (!strcmp(sim, "asymmetric")) s->sim = 1;
    else return err_set(err, TAILOR_EINVAL, "itemknn: similarity must be cosine or asymmetric, not '%s'", sim);
    if (!strcmp(w, "none")) s->weighting = 0;
    else if (!strcmp(w, "tfidf")) s->weighting = 1;
    else if (!strcmp(w, "bm25")) s->weighting = 2;
    else return err_set(err, TAILOR_EINVAL, "itemknn: weighting must be none, tfidf or bm25, not '%s'", w);
    if (s->k < 0 || s->shrink < 0 || s->alpha < 0 || s->alpha > 1)
        return err_set(err, TAILOR_EINVAL, "itemknn: need k >= 0, shrink >= 0, 0 <= alpha <= 1");
    return 0;
}

typedef struct knn_job {
    const knn_state *s;
    int32_t n_items;
    const int64_t *uptr;  /* user -> items (CSR) */
    const int32_t *uidx;
    const float *uw;      /* weight of (user, item) in CSR order */
    const int64_t *iptr;  /* item -> users (CSC) */
    const int32_t *iusr;
    const float *iw;      /* weight of (item, user) in CSC order */
    const double *norm2;  /* squared norm of each item vector */
    int kk;               /* neighbours kept */
    int32_t *out_idx;     /* n_items * kk */
    float *out_sim;
    int32_t *out_n;       /* n_items */
} knn_job;

static void knn_rows(void *ctx, size_t begin, size_t end, int thread) {
    knn_job *j = ctx;
    const knn_state *s = j->s;
    float *acc = xcalloc((size_t)j->n_items, sizeof *acc);
    int32_t *touched = xmalloc((size_t)j->n_items * sizeof *touched);
    float *cand = xmalloc((size_t)j->n_items * sizeof *cand);
    unsigned char *seen = xcalloc((size_t)j->n_items, 1);
    for (size_t i = begin; i < end; i++) {
        int32_t nt = 0;
        for (int64_t a = j->iptr[i]; a < j->iptr[i + 1]; a++) {
            int32_t u = j->iusr[a];
            float wi = j->iw[a];
            for (int64_t b = j->uptr[u]; b < j->uptr[u + 1]; b++) {
                int32_t jj = j->uidx[b];
                if (jj == (int32_t)i) continue;
                if (!seen[jj]) seen[jj] = 1, touched[nt++] = jj;
                acc[jj] += wi * j->uw[b];
            }
        }
        /* Similarities of the touched items; the rest are 0. */
        for (int32_t t = 0; t < nt; t++) {
            int32_t jj = touched[t];
            double den = s->sim == 0
                             ? sqrt(j->norm2[i]) * sqrt(j->norm2[jj])
                             : pow(j->norm2[i], s->alpha) * pow(j->norm2[jj], 1 - s->alpha);
            cand[t] = (float)(acc[jj] / (den + s->shrink));
        }
        /* Keep the best kk, ties to the lower index (deterministic). */
        int got = 0;
        int32_t *oi = j->out_idx + i * (size_t)j->kk;
        float *os = j->out_sim + i * (size_t)j->kk;
        for (int32_t t = 0; t < nt; t++) {
            float v = cand[t];
            int32_t jj = touched[t];
            if (!(v > 0)) continue;
            if (got < j->kk) {
                int c = got++;
                while (c > 0 && (os[c - 1] < v || (os[c - 1] == v && oi[c - 1] > jj))) {
                    os[c] = os[c - 1], oi[c] = oi[c - 1];
                    c--;
                }
                os[c] = v, oi[c] = jj;
            } else if (os[got - 1] < v || (os[got - 1] == v && oi[got - 1] > jj)) {
                int c = got - 1;
                while (c > 0 && (os[c - 1] < v || (os[c - 1] == v && oi[c - 1] > jj))) {
                    os[c] = os[c - 1], oi[c] = oi[c - 1];
                    c--;
                }
                os[c] = v, oi[c] = jj;
            }
        }
        j->out_n[i] = got;
        for (int32_t t = 0; t < nt; t++) acc[touched[t]] = 0, seen[touched[t]] = 0;
    }
    free(seen);
    free(acc);
    free(touched);
    free(cand);
}

static void knn_clear(knn_state *s) {
    free(s->nb_ptr);
    free(s->nb_idx);
    free(s->nb_sim);
    s->nb_ptr = NULL, s->nb_idx = NULL, s->nb_sim = NULL;
}

static int knn_fit(rec_model *m, const rec_data *d, tailor_error *err) {
    knn_state *s = m->impl;
    knn_clear(s);
    int32_t nu = d->n_users, ni = d->n_items;
    int64_t nnz = rec_data_nnz(d);
    /* Weights per (user, item): binary 1, or BM25 / TF-IDF with users as
     * terms and items as documents. */
    float *uw = xmalloc((size_t)(nnz ? nnz : 1) * sizeof *uw);
    int32_t *ilen = xcalloc((size_t)ni + 1, sizeof *ilen);
    for (int64_t k = 0; k < nnz; k++) ilen[d->indices[k]]++;
    double avg_len = ni ? (double)nnz / ni : 0;
    for (int32_t u = 0; u < nu; u++) {
        int64_t df = d->indptr[u + 1] - d->indptr[u];
        double idf = log((double)ni) - log1p((double)df);
        for (int64_t k = d->indptr[u]; k < d->indptr[u + 1]; k++) {
            double x = 1.0;
            if (s->weighting == 1) {
                uw[k] = (float)(sqrt(x) * idf);
            } else if (s->weighting == 2) {
                double ln = (1 - s->b) + s->b * ilen[d->indices[k]] / (avg_len > 0 ? avg_len : 1);
                uw[k] = (float)(x * (s->k1 + 1) / (s->k1 * ln + x) * idf);
            } else {
                uw[k] = 1.0f;
            }
        }
    }
    /* Transpose to item -> users. */
    int64_t *iptr = xcalloc((size_t)ni + 1, sizeof *iptr);
    for (int32_t i = 0; i < ni; i++) iptr[i + 1] = iptr[i] + ilen[i];
    int32_t *iusr = xmalloc((size_t)(nnz ? nnz : 1) * sizeof *iusr);
    float *iw = xmalloc((size_t)(nnz ? nnz : 1) * sizeof *iw);
    int64_t *fill = xmalloc(((size_t)ni + 1) * sizeof *fill);
    memcpy(fill, iptr, ((size_t)ni + 1) * sizeof *fill);
    double *norm2 = xcalloc((size_t)ni + 1, sizeof *norm2);
    for (int32_t u = 0; u < nu; u++)
        for (int64_t k = d->indptr[u]; k < d->indptr[u + 1]; k++) {
            int32_t i = d->indices[k];
            iusr[fill[i]] = u;
            iw[fill[i]++] = uw[k];
            norm2[i] += (double)uw[k] * uw[k];
        }
    free(fill);
    free(ilen);
    int kk = s->k > 0 && s->k < ni ? s->k : (ni > 1 ? ni - 1 : 1);
    knn_job job = {.s = s, .n_items = ni, .uptr = d->indptr, .uidx = d->indices, .uw = uw,
                   .iptr = iptr, .iusr = iusr, .iw = iw, .norm2 = norm2, .kk = kk};
    job.out_idx = xmalloc((size_t)ni * kk * sizeof(int32_t) + 1);
    job.out_sim = xmalloc((size_t)ni * kk * sizeof(float) + 1);
    job.out_n = xcalloc((size_t)ni + 1, sizeof(int32_t));
    if (m->pool) pool_for(m->pool, (size_t)ni, knn_rows, &job);
    else knn_rows(&job, 0, (size_t)ni, 0);
    /* Compact into CSR. */
    s->nb_ptr = xcalloc((size_t)ni + 1, sizeof(int64_t));
    for (int32_t i = 0; i < ni; i++) s->nb_ptr[i + 1] = s->nb_ptr[i] + job.out_n[i];
    int64_t total = s->nb_ptr[ni];
    s->nb_idx = xmalloc((size_t)(total ? total : 1) * sizeof(int32_t));
    s->nb_sim = xmalloc((size_t)(total ? total : 1) * sizeof(float));
    for (int32_t i = 0; i < ni; i++) {
        memcpy(s->nb_idx + s->nb_ptr[i], job.out_idx + (size_t)i * kk, (size_t)job.out_n[i] * sizeof(int32_t));
        memcpy(s->nb_sim + s->nb_ptr[i], job.out_sim + (size_t)i * kk, (size_t)job.out_n[i] * sizeof(float));
    }
    free(job.out_idx);
    free(job.out_sim);
    free(job.out_n);
    free(uw);
    free(iptr);
    free(iusr);
    free(iw);
    free(norm2);
    (void)err;
    return 0;
}

static void knn_score(const rec_model *m, int32_t user, const int32_t *hist, const float *vals,
                      size_t n, float *out) {
    const knn_state *s = m->impl;
    memset(out, 0, (size_t)m->n_items * sizeof *out);
    for (size_t h = 0; h < n; h++) {
        int32_t i = hist[h];
        if (i < 0 || i >= m->n_items) continue;
        for (int64_t k = s->nb_ptr[i]; k < s->nb_ptr[i + 1]; k++) out[s->nb_idx[k]] += s->nb_sim[k];
    }
}

static void knn_similar(const rec_model *m, int32_t item, float *out) {
    const knn_state *s = m->impl;
    for (int32_t i = 0; i < m->n_items; i++) out[i] = -INFINITY;
    for (int64_t k = s->nb_ptr[item]; k < s->nb_ptr[item + 1]; k++) out[s->nb_idx[k]] = s->nb_sim[k];
}

static void knn_explain(const rec_model *m, int32_t user, const int32_t *hist, const float *vals,
                        size_t n, int32_t item, float *contrib) {
    const knn_state *s = m->impl;
    for (size_t h = 0; h < n; h++) {
        contrib[h] = 0;
        int32_t i = hist[h];
        if (i < 0 || i >= m->n_items) continue;
        for (int64_t k = s->nb_ptr[i]; k < s->nb_ptr[i + 1]; k++)
            if (s->nb_idx[k] == item) contrib[h] = s->nb_sim[k];
    }
}

static void knn_save(const rec_model *m, sb *out) {
    const knn_state *s = m->impl;
    rec_write_array(out, s->nb_ptr, sizeof(int64_t), (size_t)m->n_items + 1);
    rec_write_array(out, s->nb_idx, sizeof(int32_t), (size_t)s->nb_ptr[m->n_items]);
    rec_write_array(out, s->nb_sim, sizeof(float), (size_t)s->nb_ptr[m->n_items]);
}

static int knn_load(rec_model *m, const char *buf, size_t n, tailor_error *err) {
    knn_state *s = m->impl;
    knn_clear(s);
    rec_reader r = {buf, n};
    void *ptr = NULL, *idx = NULL, *sim = NULL;
    bool ok = rec_read_array(&r, sizeof(int64_t), (int64_t)m->n_items + 1, &ptr, NULL);
    int64_t total = ok ? ((int64_t *)ptr)[m->n_items] : -1;
    ok = ok && total >= 0 && rec_read_array(&r, sizeof(int32_t), total, &idx, NULL) &&
         rec_read_array(&r, sizeof(float), total, &sim, NULL) && r.left == 0;
    /* Every offset monotone and every index in range. */
    for (int32_t i = 0; ok && i < m->n_items; i++)
        ok = ((int64_t *)ptr)[i] <= ((int64_t *)ptr)[i + 1] && ((int64_t *)ptr)[0] == 0;
    for (int64_t k = 0; ok && k < total; k++) ok = ((int32_t *)idx)[k] >= 0 && ((int32_t *)idx)[k] < m->n_items;
    if (!ok) {
        free(ptr);
        free(idx);
        free(sim);
        return err_set(err, TAILOR_EDATA, "itemknn: bad payload");
    }
    s->nb_ptr = ptr, s->nb_idx = idx, s->nb_sim = sim;
    return 0;
}

static void knn_free(rec_model *m) {
    knn_state *s = m->impl;
    if (s) knn_clear(s);
    free(s);
}

static void knn_footprint(const rec_model *m, int32_t n_users, int32_t n_items, int64_t nnz, double *train_bytes,
                          double *file_bytes) {
    const knn_state *s = m->impl;
    double kk = s->k > 0 && s->k < n_items ? s->k : n_items;
    /* Neighbour lists (index + similarity), the item-major copy of the
     * data, and a dense row of counts per thread. */
    *file_bytes = (double)n_items * kk * 8;
    *train_bytes = *file_bytes + (double)nnz * 8 + (double)n_items * 8 * (m->pool ? pool_threads(m->pool) : 1);
    (void)n_users;
}

const rec_kind REC_ITEMKNN = {
    .name = "itemknn",
    .auto_grid = "k=5,10,20,50,100 shrink=0,10,50",
    .summary = "item-based k-nearest neighbours (cosine / asymmetric cosine, BM25 or TF-IDF)",
    .params = KNN_PARAMS,
    .init = knn_init,
    .fit = knn_fit,
    .score = knn_score,
    .similar = knn_similar,
    .explain = knn_explain,
    .explain_style = REC_EXPLAIN_HISTORY,
    .footprint = knn_footprint,
    .save = knn_save,
    .load = knn_load,
    .free = knn_free,
};
