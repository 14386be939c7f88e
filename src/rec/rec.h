/* rec.h — recommenders behind one interface, described once in a table.
 *
 * Owns: training data views (rec_data), the model table (rec_kinds), model
 * parameters, top-k selection with exclusions and filters, explanations, and
 * the model file format (magic, version, parameters, id maps, payload,
 * SHA-256). Each model is one file (pop.c, itemknn.c, als.c, bpr.c,
 * ease.c) and one row in REC_KINDS (rec.c).
 *
 * Indexes are dense: users 0..n_users-1, items 0..n_items-1, as in the
 * training data. A history is a list of item indexes with values; scoring a
 * known user may use what was learned for that user, an anonymous history
 * (user = -1) is folded in.
 */
#ifndef TAILOR_REC_H
#define TAILOR_REC_H

#include "base/base.h"

/* A knowledge graph over the items, as plain arrays (the knowledge layer
 * fills it): every entity's links in both directions (CSR) and each item's
 * entity. Borrowed like the rest of rec_data. */
typedef struct rec_graph {
    int32_t n_entities, n_relations;
    const int64_t *ptr;         /* n_entities + 1 */
    const int32_t *to, *rel;    /* ptr[n_entities] links */
    const int32_t *item_entity; /* n_items: each item's entity, -1 when it has none */
} rec_graph;

/* Interaction data a model trains on: a CSR user x item matrix (columns
 * sorted) with values and times, and the graph for models that read one.
 * Borrowed: the caller keeps it alive. */
typedef struct rec_data {
    int32_t n_users, n_items;
    const int64_t *indptr;  /* n_users + 1 */
    const int32_t *indices; /* nnz */
    const float *values;    /* nnz */
    const int64_t *times;   /* nnz, may be NULL */
    const rec_graph *graph; /* NULL: none (models with needs_graph refuse to train) */
} rec_data;

static inline int64_t rec_data_nnz(const rec_data *d) { return d->indptr[d->n_users]; }

/* Whether row `row` of a CSR matrix with sorted columns holds `col`. */
static inline bool rec_csr_has(const int64_t *ptr, const int32_t *idx, int32_t row, int32_t col) {
    int64_t lo = ptr[row], hi = ptr[row + 1];
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (idx[mid] < col) lo = mid + 1;
        else hi = mid;
    }
    return lo < ptr[row + 1] && idx[lo] == col;
}

/* Draws up to `want` distinct items that row u of the CSR matrix (ptr, idx;
 * ni columns) lacks and chosen[] does not mark: uniformly, or in proportion
 * to the weights whose running sums are cdf[ni] when cdf is given. Marks
 * each drawn item in chosen (the caller clears it) and writes it to out;
 * gives up after a million draws. Returns how many were drawn. */
int rec_draw_negatives(const int64_t *ptr, const int32_t *idx, int32_t u, int32_t ni, int want,
                       const double *cdf, rng *g, unsigned char *chosen, int32_t *out);

/* ---- parameters -------------------------------------------------------- */

typedef struct rec_param_spec {
    const char *name;
    const char *def; /* default value as text */
    const char *help;
} rec_param_spec;

#define REC_MAX_PARAMS 16

/* Parameter values by name; every value a kind reads has a default. */
typedef struct rec_params {
    size_t n;
    char names[REC_MAX_PARAMS][32];
    char values[REC_MAX_PARAMS][64];
} rec_params;

/* Sets name=value (replacing); false when full or too long. */
bool rec_params_set(rec_params *p, const char *name, const char *value);
/* Parses "k=v". */
bool rec_params_parse(rec_params *p, const char *kv);
const char *rec_params_get(const rec_params *p, const char *name);
/* Writes {"k": v, ...} (numbers unquoted) to out. */
void rec_params_json(const rec_params *p, sb *out);

/* ---- the model table --------------------------------------------------- */

typedef struct rec_model rec_model;

/* What a model can say about why it recommends an item. */
typedef enum rec_explain_style {
    REC_EXPLAIN_NONE = 0,   /* nothing: the model gives no reasons */
    REC_EXPLAIN_HISTORY,    /* explain(): each history item's share of the score */
    REC_EXPLAIN_ATTENTION,  /* explain(): the attention paid to each history item
                             * when the model reads the history (the same for
                             * every recommended item) */
    REC_EXPLAIN_POPULARITY, /* the score is the number of users who had the item */
    REC_EXPLAIN_PATHS,      /* the serving engine names the history items the item
                             * is linked to through the knowledge graph (paths) */
} rec_explain_style;

typedef struct rec_kind {
    const char *name;
    const char *summary;
    const rec_param_spec *params; /* ends with {NULL} */
    /* Reads parameters (all present, defaults filled) into the model. */
    int (*init)(rec_model *m, tailor_error *err);
    /* Learns from d. May use m->pool for threads and m->seed. */
    int (*fit)(rec_model *m, const rec_data *d, tailor_error *err);
    /* Scores every item (out[n_items]) for a user: user is a training index
     * or -1 for an anonymous history; hist/vals are the user's items. Must
     * be safe to call from several threads at once. */
    void (*score)(const rec_model *m, int32_t user, const int32_t *hist, const float *vals,
                  size_t n, float *out);
    /* Similarity of every item to item (out[n_items]); NULL if unsupported. */
    void (*similar)(const rec_model *m, int32_t item, float *out);
    /* How much each history item contributed to item's score
     * (contrib[n]); NULL if the model has no item-level signals. */
    void (*explain)(const rec_model *m, int32_t user, const int32_t *hist, const float *vals,
                    size_t n, int32_t item, float *contrib);
    rec_explain_style explain_style;
    /* The item vectors the model scores with (n_items x *dim, owned by
     * the model), or NULL: what semantic IDs are learned from. */
    const float *(*item_vectors)(const rec_model *m, int *dim);
    /* What `train --auto` tries: "KEY=V1,V2 KEY=V1,V2" (NULL = nothing). */
    const char *auto_grid;
    /* Bytes the fit will hold at its peak and the model file will take
     * for data of this size (approximate; NULL = small). */
    void (*footprint)(const rec_model *m, int32_t n_users, int32_t n_items, int64_t nnz,
                      double *train_bytes, double *file_bytes);
    /* Payload of the model file, and its inverse (bounds-checked). */
    void (*save)(const rec_model *m, sb *out);
    int (*load)(rec_model *m, const char *buf, size_t n, tailor_error *err);
    void (*free)(rec_model *m);
    /* Scores depend on the order of the history: callers pass it oldest
     * first (the evaluation sorts training rows by time for such models). */
    bool sequential;
    /* fit reads rec_data.graph: callers load the store's knowledge graph. */
    bool needs_graph;
} rec_kind;

extern const rec_kind *const REC_KINDS[];
const rec_kind *rec_kind_find(const char *name);

struct rec_model {
    const rec_kind *kind;
    rec_params params; /* with defaults filled in */
    int32_t n_users, n_items;
    uint64_t seed;
    pool *pool;        /* borrowed; NULL = one thread */
    bool quiet;        /* no progress bar */
    void *impl;        /* the kind's state */
    /* External ids of the training data, saved with the model so that it
     * can be served against a store that has changed since. */
    char **user_ext, **item_ext;
    arena ext_strings;
    hmap item_index; /* item external id -> index */
    /* Users per item in the training data (n_items), saved with the model:
     * the fallback for users it knows nothing about. NULL in files older
     * than version 2. */
    uint32_t *popularity;
};

/* Creates a model of kind with parameters p (unknown names are an error
 * that lists the known ones). Free with rec_model_free. */
int rec_model_new(const rec_kind *kind, const rec_params *p, rec_model **out, tailor_error *err);
void rec_model_free(rec_model *m);
/* Trains on d; user_ext/item_ext (may be NULL) are copied into the model
 * and the users per item counted. */
int rec_model_fit(rec_model *m, const rec_data *d, char *const *user_ext, char *const *item_ext,
                  tailor_error *err);
double rec_param_f64(const rec_model *m, const char *name);
int64_t rec_param_i64(const rec_model *m, const char *name);
const char *rec_param_str(const rec_model *m, const char *name);

/* ---- serving ----------------------------------------------------------- */

/* Which items may be recommended: NULL = all. */
typedef bool (*rec_filter_fn)(void *ctx, int32_t item);

typedef struct rec_topk_params {
    int k;
    bool exclude_history; /* never return an item of the history */
    rec_filter_fn filter;
    void *filter_ctx;
} rec_topk_params;

/* Top-k items by score, best first; ties go to the lower item index.
 * Returns how many were written (< k when fewer items qualify). scratch
 * (n_items floats) may be NULL. */
int rec_topk(const rec_model *m, int32_t user, const int32_t *hist, const float *vals, size_t n,
             rec_topk_params p, int32_t *items, float *scores, float *scratch);
/* Top-k of an arbitrary score vector. */
int rec_topk_scores(const float *scores, int32_t n_items, int k, int32_t *items, float *out_scores);

/* ---- model files ------------------------------------------------------- */

/* Writes the model to path (temporary file + rename). */
int rec_model_save(const rec_model *m, const char *path, tailor_error *err);
/* Reads a model file, checking magic, version, checksum and sizes. */
int rec_model_load(const char *path, rec_model **out, tailor_error *err);

/* Bounds-checked readers of a payload: each returns false when fewer than
 * the needed bytes remain. */
typedef struct rec_reader {
    const char *p;
    size_t left;
} rec_reader;
bool rec_read(rec_reader *r, void *dst, size_t n);
/* Reads a u64 count followed by count*elem bytes into a malloc'd array;
 * refuses counts that disagree with expect (when expect >= 0). */
bool rec_read_array(rec_reader *r, size_t elem, int64_t expect, void **out, size_t *count);
void rec_write_array(sb *out, const void *data, size_t elem, size_t count);

/* Test hook: the largest relative difference between KGCN's backward pass
 * and central differences on a tiny random model. */
double rec_kgcn_gradcheck(uint64_t seed);
/* Test hook: the largest relative difference between SASRec's analytic
 * parameter gradients and central differences on a tiny random model. */
double rec_sasrec_gradcheck(bool ce, uint64_t seed);
/* Test hook: the largest relative difference between ALS's CG products in
 * kernel set `set` (scalar, avx2, avx512) and the scalar twin's on random
 * rows; -1 when this CPU does not run the set. */
double rec_als_kernel_check(const char *set, uint64_t seed);

#endif /* TAILOR_REC_H */
