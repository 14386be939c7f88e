/* split.c — k-core filtering and the train / validation / test splits.
 * Input is the view's CSR (one entry per user and item, latest time).
 * Leave-one-out orders each user's items by (time, item index): the last is
 * the test target, the one before it the validation target; users with
 * fewer than 2 (3) items get no test (validation) target. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/eval.h"

eval_split_params eval_split_default_params(void) {
    return (eval_split_params){.kind = EVAL_SPLIT_LOO, .ratio = 0.2, .kcore = 0, .seed = 42};
}

static const char *const SPLIT_NAMES[] = {"loo", "temporal", "random"};

bool eval_split_kind_parse(const char *s, eval_split_kind *out) {
    for (int i = 0; i < 3; i++)
        if (!strcmp(s, SPLIT_NAMES[i])) {
            *out = (eval_split_kind)i;
            return true;
        }
    return false;
}

const char *eval_split_kind_name(eval_split_kind k) { return (unsigned)k < 3 ? SPLIT_NAMES[k] : "?"; }

void eval_csr_free(eval_csr *c) {
    free(c->ptr);
    free(c->idx);
    free(c->val);
    free(c->ts);
    memset(c, 0, sizeof *c);
}

rec_data eval_csr_data(const eval_csr *c, int32_t n_items) {
    return (rec_data){.n_users = c->n_rows, .n_items = n_items, .indptr = c->ptr, .indices = c->idx,
                      .values = c->val, .times = c->ts};
}

/* A growing CSR: entries appended to the current row, rows closed in
 * order. */
typedef struct csr_builder {
    eval_csr c;
    size_t cap, len;
    int32_t rows;
} csr_builder;

static void cb_init(csr_builder *b, int32_t n_rows, size_t cap) {
    memset(b, 0, sizeof *b);
    b->c.n_rows = n_rows;
    b->c.ptr = xcalloc((size_t)n_rows + 1, sizeof(int64_t));
    b->cap = cap ? cap : 1;
    b->c.idx = xmalloc(b->cap * sizeof(int32_t));
    b->c.val = xmalloc(b->cap * sizeof(float));
    b->c.ts = xmalloc(b->cap * sizeof(int64_t));
}

static void cb_add(csr_builder *b, int32_t item, float val, int64_t ts) {
    if (b->len == b->cap) {
        b->cap *= 2;
        b->c.idx = xrealloc(b->c.idx, b->cap * sizeof(int32_t));
        b->c.val = xrealloc(b->c.val, b->cap * sizeof(float));
        b->c.ts = xrealloc(b->c.ts, b->cap * sizeof(int64_t));
    }
    b->c.idx[b->len] = item, b->c.val[b->len] = val, b->c.ts[b->len] = ts;
    b->len++;
}

static void cb_next_row(csr_builder *b) { b->c.ptr[++b->rows] = (int64_t)b->len; }

typedef struct entry {
    int64_t ts;
    int32_t item;
    float val;
    int role; /* 0 train, 1 validation, 2 test */
} entry;

static int entry_by_time(const void *a, const void *b) {
    const entry *x = a, *y = b;
    if (x->ts != y->ts) return x->ts < y->ts ? -1 : 1;
    return (x->item > y->item) - (x->item < y->item);
}

static int entry_by_item(const void *a, const void *b) {
    const entry *x = a, *y = b;
    return (x->item > y->item) - (x->item < y->item);
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

int eval_split_build(const store_view *v, eval_split_params p, eval_split *out, tailor_error *err) {
    memset(out, 0, sizeof *out);
    if (p.ratio <= 0 || p.ratio >= 1) return err_set(err, TAILOR_EINVAL, "split ratio must be in (0, 1)");
    int32_t nu = v->n_users, ni = v->n_items;
    /* k-core: drop users and items below kcore until none is left. */
    bool *ukeep = xmalloc(((size_t)nu + 1) * sizeof *ukeep), *ikeep = xmalloc(((size_t)ni + 1) * sizeof *ikeep);
    for (int32_t u = 0; u < nu; u++) ukeep[u] = true;
    for (int32_t i = 0; i < ni; i++) ikeep[i] = true;
    if (p.kcore > 0) {
        int64_t *udeg = xmalloc(((size_t)nu + 1) * sizeof *udeg), *ideg = xmalloc(((size_t)ni + 1) * sizeof *ideg);
        for (bool changed = true; changed;) {
            changed = false;
            memset(udeg, 0, (size_t)nu * sizeof *udeg);
            memset(ideg, 0, (size_t)ni * sizeof *ideg);
            for (int32_t u = 0; u < nu; u++)
                for (int64_t a = v->indptr[u]; ukeep[u] && a < v->indptr[u + 1]; a++)
                    if (ikeep[v->indices[a]]) udeg[u]++, ideg[v->indices[a]]++;
            for (int32_t u = 0; u < nu; u++)
                if (ukeep[u] && udeg[u] < p.kcore) ukeep[u] = false, changed = true;
            for (int32_t i = 0; i < ni; i++)
                if (ikeep[i] && ideg[i] < p.kcore) ikeep[i] = false, changed = true;
        }
        free(udeg);
        free(ideg);
    } else {
        /* Users without any interaction cannot be evaluated or learned. */
        for (int32_t u = 0; u < nu; u++) ukeep[u] = v->indptr[u + 1] > v->indptr[u];
    }
    int32_t *umap = xmalloc(((size_t)nu + 1) * sizeof *umap), *imap = xmalloc(((size_t)ni + 1) * sizeof *imap);
    arena_init(&out->strings, 0);
    int32_t nu2 = 0, ni2 = 0;
    for (int32_t i = 0; i < ni; i++) imap[i] = ikeep[i] ? ni2++ : -1;
    for (int32_t u = 0; u < nu; u++) umap[u] = ukeep[u] ? nu2++ : -1;
    out->n_users = nu2, out->n_items = ni2;
    out->user_ext = xcalloc((size_t)nu2 + 1, sizeof(char *));
    out->item_ext = xcalloc((size_t)ni2 + 1, sizeof(char *));
    for (int32_t u = 0; u < nu; u++)
        if (umap[u] >= 0) out->user_ext[umap[u]] = arena_strdup(&out->strings, v->user_ext[u]);
    for (int32_t i = 0; i < ni; i++)
        if (imap[i] >= 0) out->item_ext[imap[i]] = arena_strdup(&out->strings, v->item_ext[i]);

    /* Temporal: the global cut times (test, then validation within train). */
    int64_t cut_test = INT64_MAX, cut_val = INT64_MAX;
    if (p.kind == EVAL_SPLIT_TEMPORAL) {
        VEC(int64_t) times = {0};
        for (int32_t u = 0; u < nu; u++)
            for (int64_t a = v->indptr[u]; ukeep[u] && a < v->indptr[u + 1]; a++)
                if (ikeep[v->indices[a]]) vec_push(&times, v->times[a]);
        if (times.len) {
            qsort(times.data, times.len, sizeof(int64_t), cmp_i64);
            size_t nt = times.len;
            size_t it = (size_t)floor((double)nt * (1 - p.ratio));
            if (it >= nt) it = nt - 1;
            cut_test = times.data[it];
            size_t iv = (size_t)floor((double)it * (1 - p.ratio));
            cut_val = times.data[iv < it ? iv : it];
        }
        vec_free(&times);
    }

    size_t nnz = (size_t)v->nnz;
    csr_builder all, train, vtrain, test, val;
    cb_init(&all, nu2, nnz);
    cb_init(&train, nu2, nnz);
    cb_init(&vtrain, nu2, nnz);
    cb_init(&test, nu2, 16);
    cb_init(&val, nu2, 16);
    VEC(entry) row = {0};
    rng g;
    rng_seed(&g, p.seed);
    for (int32_t u = 0; u < nu; u++) {
        if (umap[u] < 0) continue;
        row.len = 0;
        for (int64_t a = v->indptr[u]; a < v->indptr[u + 1]; a++)
            if (ikeep[v->indices[a]]) {
                entry e = {v->times[a], imap[v->indices[a]], v->values[a], 0};
                vec_push(&row, e);
            }
        qsort(row.data, row.len, sizeof(entry), entry_by_time);
        size_t n = row.len;
        entry *r = row.data;
        if (p.kind == EVAL_SPLIT_LOO) {
            if (n >= 2) r[n - 1].role = 2;
            if (n >= 3) r[n - 2].role = 1;
        } else if (p.kind == EVAL_SPLIT_TEMPORAL) {
            size_t before = 0;
            for (size_t k = 0; k < n; k++) {
                before += r[k].ts <= cut_val;
                r[k].role = r[k].ts > cut_test ? 2 : r[k].ts > cut_val ? 1 : 0;
            }
            /* Without any training interaction a user cannot be evaluated:
             * its events all train. */
            if (before == 0)
                for (size_t k = 0; k < n; k++) r[k].role = 0;
        } else { /* random per user: a seeded partial shuffle picks targets */
            size_t ntest = n >= 2 ? (size_t)llround((double)n * p.ratio) : 0;
            if (n >= 2 && ntest == 0) ntest = 1;
            size_t nval = n - ntest >= 2 ? (size_t)llround((double)(n - ntest) * p.ratio) : 0;
            if (n - ntest >= 2 && nval == 0) nval = 1;
            size_t *pos = xmalloc((n ? n : 1) * sizeof *pos);
            for (size_t k = 0; k < n; k++) pos[k] = k;
            for (size_t k = 0; k < ntest + nval; k++) {
                size_t j = k + (size_t)rng_below(&g, n - k), t = pos[k];
                pos[k] = pos[j], pos[j] = t;
                r[pos[k]].role = k < ntest ? 2 : 1;
            }
            free(pos);
        }
        qsort(r, n, sizeof(entry), entry_by_item);
        for (size_t k = 0; k < n; k++) {
            cb_add(&all, r[k].item, r[k].val, r[k].ts);
            if (r[k].role != 2) cb_add(&train, r[k].item, r[k].val, r[k].ts);
            if (r[k].role == 0) cb_add(&vtrain, r[k].item, r[k].val, r[k].ts);
            if (r[k].role == 2) cb_add(&test, r[k].item, r[k].val, r[k].ts);
            if (r[k].role == 1) cb_add(&val, r[k].item, r[k].val, r[k].ts);
        }
        cb_next_row(&all);
        cb_next_row(&train);
        cb_next_row(&vtrain);
        cb_next_row(&test);
        cb_next_row(&val);
    }
    vec_free(&row);
    out->all = all.c;
    out->train = train.c;
    out->val_train = vtrain.c;
    out->test = test.c;
    out->val = val.c;
    /* Popularity: users per item in train. */
    out->popularity = xcalloc((size_t)ni2 + 1, sizeof(float));
    for (int64_t a = 0; a < out->train.ptr[nu2]; a++) out->popularity[out->train.idx[a]] += 1;
    free(ukeep);
    free(ikeep);
    free(umap);
    free(imap);
    return 0;
}

int eval_split_graph(eval_split *split, store *s, tailor_error *err) {
    kg_graph g;
    int rc = kg_load(s, &g, err);
    if (rc) return rc;
    kg_rec_graph_free(&split->graph);
    if (g.n_triples) kg_rec_graph_init(&g, split->item_ext, split->n_items, &split->graph);
    kg_deinit(&g);
    return 0;
}

void eval_split_free(eval_split *s) {
    kg_rec_graph_free(&s->graph);
    eval_csr_free(&s->all);
    eval_csr_free(&s->train);
    eval_csr_free(&s->val_train);
    eval_csr_free(&s->test);
    eval_csr_free(&s->val);
    free(s->user_ext);
    free(s->item_ext);
    free(s->popularity);
    arena_deinit(&s->strings);
    memset(s, 0, sizeof *s);
}

/* Writes DIR/NAME: the rows of c ("user item value time"), or with c NULL
 * the ids ext[0..n) ("index id"). */
static int export_tsv(const char *dir, const char *name, const eval_csr *c, char **ext, int32_t n,
                      tailor_error *err) {
    char *path = path_join(dir, name);
    FILE *f = fopen(path, "wb");
    int rc = 0;
    if (!f) {
        rc = err_set(err, TAILOR_EIO, "cannot write %s: %s", path, strerror(errno));
    } else {
        if (c)
            for (int32_t u = 0; u < c->n_rows; u++)
                for (int64_t a = c->ptr[u]; a < c->ptr[u + 1]; a++)
                    fprintf(f, "%d\t%d\t%g\t%lld\n", u, c->idx[a], c->val[a], (long long)c->ts[a]);
        else
            for (int32_t i = 0; i < n; i++) fprintf(f, "%d\t%s\n", i, ext[i]);
        if (fclose(f) != 0) rc = err_set(err, TAILOR_EIO, "cannot write %s", path);
    }
    free(path);
    return rc;
}

int eval_split_export(const eval_split *s, const char *dir, tailor_error *err) {
    int rc = mkdir_p(dir, err);
    if (!rc) rc = export_tsv(dir, "train.tsv", &s->train, NULL, 0, err);
    if (!rc) rc = export_tsv(dir, "valid.tsv", &s->val, NULL, 0, err);
    if (!rc) rc = export_tsv(dir, "test.tsv", &s->test, NULL, 0, err);
    if (!rc) rc = export_tsv(dir, "users.tsv", NULL, s->user_ext, s->n_users, err);
    if (!rc) rc = export_tsv(dir, "items.tsv", NULL, s->item_ext, s->n_items, err);
    return rc;
}
