/* know.h — the knowledge layer: the graph of the store's accepted triples
 * in memory, its queries (an entity's neighbours by relation; the paths of
 * up to three hops between an item and other items, for explanations such
 * as "shares the origin and the genre of X, which you played 300 times").
 *
 * Owns: entity and relation names (interned), an adjacency list over both
 * directions of every triple, the links between entities and catalogue
 * items. A graph is read-only once loaded: any number of threads may query
 * it at once.
 */
#ifndef TAILOR_KNOW_H
#define TAILOR_KNOW_H

#include "llm/llm.h"
#include "store/store.h"

typedef struct kg_edge {
    int32_t to, rel;
    bool inverse; /* the triple is (to, rel, this entity) */
} kg_edge;

typedef struct kg_graph {
    int32_t n_entities, n_relations;
    int64_t n_triples;
    char **entity;   /* names */
    char **relation; /* names */
    hmap entity_index, relation_index;
    int64_t *adj_ptr; /* n_entities + 1 */
    kg_edge *adj;     /* each entity's edges, both directions */
    char **item;      /* entity -> item external id (NULL: not an item) */
    hmap item_entity; /* item external id -> entity */
    arena strings;
} kg_graph;

/* The accepted triples and the item links of s. */
int kg_load(store *s, kg_graph *g, tailor_error *err);
void kg_deinit(kg_graph *g);
/* Index of an entity or relation name, or -1. */
int32_t kg_entity(const kg_graph *g, const char *name);
int32_t kg_relation(const kg_graph *g, const char *name);
/* The entity of a catalogue item, or -1. */
int32_t kg_item_entity(const kg_graph *g, const char *item_ext);
static inline int64_t kg_degree(const kg_graph *g, int32_t e) { return g->adj_ptr[e + 1] - g->adj_ptr[e]; }

/* A path e0 -r0-> e1 -r1-> ... (inverse[i]: the triple points the other way). */
#define KG_MAX_HOPS 3
typedef struct kg_path {
    int hops;
    int32_t node[KG_MAX_HOPS + 1];
    int32_t rel[KG_MAX_HOPS];
    bool inverse[KG_MAX_HOPS];
    double weight; /* specificity: paths through rarer nodes weigh more */
} kg_path;

typedef struct kg_path_params {
    int max_hops;      /* 1..3 (default 3) */
    int max_paths;     /* paths returned at most (default 5) */
    int per_target;    /* paths to one target at most (default 2) */
} kg_path_params;

kg_path_params kg_path_default_params(void);

/* Paths from an entity to any of targets (sorted by weight, best first;
 * shorter and through less connected nodes first); *n receives how many
 * (at most p.max_paths). The search visits every entity within max_hops
 * at most once per parent kept (two), so it is bounded by the graph's size. */
int kg_paths(const kg_graph *g, int32_t from, const int32_t *targets, size_t n_targets, kg_path_params p,
             kg_path *out, int *n);
/* "A -rel-> B <-rel- C" with names (items by title when titles is given). */
typedef const char *(*kg_title_fn)(void *ctx, const char *item_ext);
void kg_path_text(const kg_graph *g, const kg_path *p, kg_title_fn title, void *ctx, sb *out);

/* ---- items described by their neighbours (graph.c) ----------------------- */

/* What content-based scoring of items without events reads: an item is
 * its neighbour entities, each weighted by its rarity among items (idf =
 * log(items linked / items it neighbours)); a person is those weights
 * summed over their items; an item's score is its weighted overlap with
 * the person, over the length of its own weights. */
double *kg_neighbour_idf(const kg_graph *g); /* n_entities, malloc'd */
void kg_profile_add(const kg_graph *g, const double *idf, int32_t item_entity, double *profile);
/* Zeroes what kg_profile_add(item_entity) wrote (cheaper than the whole). */
void kg_profile_clear(const kg_graph *g, int32_t item_entity, double *profile);
double kg_profile_score(const kg_graph *g, const double *idf, int32_t item_entity, const double *profile);

/* ---- embeddings that propose missing facts (kge.c) ---------------------- */

typedef struct kg_triple {
    int32_t h, r, t;
} kg_triple;
/* The graph's triples (each once, head to tail); *out malloc'd. */
void kg_triples(const kg_graph *g, kg_triple **out, size_t *n);
/* in_range[e] (n_entities, malloc'd) = 1 when e is the tail of some
 * triple of relation r: the entities r can lead to. */
unsigned char *kg_relation_range(const kg_graph *g, int32_t r);

typedef enum kge_kind { KGE_TRANSE = 0, KGE_DISTMULT } kge_kind;
typedef struct kge_params {
    kge_kind kind;
    int dim, epochs;
    float lr, l2, margin; /* AdaGrad rate; DistMult's L2; TransE's gamma */
    uint64_t seed;
} kge_params;
kge_params kge_default_params(kge_kind kind);
const char *kge_kind_name(kge_kind k);

typedef struct kge_model {
    kge_kind kind;
    int dim;
    int32_t n_ent, n_rel;
    float margin;
    float *E, *R; /* n_ent x dim, n_rel x dim */
} kge_model;

int kge_train(const kg_triple *tr, size_t n, int32_t n_ent, int32_t n_rel, kge_params p, bool quiet, kge_model *out,
              tailor_error *err);
/* Higher is more plausible. */
float kge_score(const kge_model *m, int32_t h, int32_t r, int32_t t);
void kge_tail_scores(const kge_model *m, int32_t h, int32_t r, float *out);
void kge_free(kge_model *m);
/* Test hook: the worst relative difference between the score's analytic
 * gradient and central differences. */
double kge_gradcheck(kge_kind kind, uint64_t seed);

/* ---- a language model asked for missing facts (complete.c) -------------- */

typedef struct kg_asker {
    llm_backend *b;       /* borrowed */
    const kg_graph *g;    /* borrowed */
    int samples;          /* answers that vote (self-consistency) */
    bool constrained;     /* decode answers as entity names only: those the relation has as tails */
    char **schema;        /* per relation, built when first asked: {"type": "string", "enum": [its tails]} */
} kg_asker;
void kg_asker_init(kg_asker *a, llm_backend *b, const kg_graph *g, int samples, bool constrained);
void kg_asker_deinit(kg_asker *a);
/* Asks for the tail of (h, r) a->samples times: votes[e] (n_entities,
 * zeroed by the caller) counts the answers naming entity e, *non_entities
 * those naming none (never, when constrained: then the answer is one of the
 * entities that are tails of r somewhere in the graph, its range). Items
 * are named by title when title is given. */
int kg_ask(kg_asker *a, int32_t h, int32_t r, kg_title_fn title, void *ctx, int *votes, int *non_entities,
           tailor_error *err);

/* ---- item vectors (index.c) --------------------------------------------- */

#include "know/ann.h"

/* Unit vectors of items, with the model that made them. */
typedef struct kg_index {
    char *model;  /* the GGUF file that embedded them (malloc'd) */
    int32_t dim;
    int64_t n;
    char **ids;   /* item external ids, into strings */
    float *vec;   /* n x dim */
    arena strings;
    kg_ann *ann;  /* the approximate index beside it, or NULL */
    llm_pooling pooling; /* as the items were embedded (queries must match) */
} kg_index;
int kg_index_save(const kg_index *x, const char *path, tailor_error *err);
/* Checks the magic and every size; a damaged file is TAILOR_EDATA. The
 * approximate index (PATH.ann) is saved and loaded with it when there is
 * one. */
int kg_index_load(const char *path, kg_index *x, tailor_error *err);
void kg_index_free(kg_index *x);
/* The k nearest to unit vector q, best first: out[] row indexes, scores[]
 * cosines; returns how many. Exact: every vector is scored (on tp when
 * given and the index is large). */
int kg_index_search(const kg_index *x, const float *q, int k, pool *tp, int64_t *out, float *scores);
/* The same for nq queries at once (Q: nq x dim): out and scores are nq x
 * min(k, n), each query's best first; returns min(k, n). */
int kg_index_search_many(const kg_index *x, const float *Q, int nq, int k, pool *tp, int64_t *out, float *scores);
/* The dot-product kernel: "scalar", "avx2", "avx512" or "auto" (the best
 * this CPU runs, or $TAILOR_LLM_KERNELS); -1 when the CPU lacks it.
 * kg_index_kernel names the one in use. */
int kg_index_set_kernel(const char *name);
const char *kg_index_kernel(void);
/* Builds x->ann over the vectors (replacing one there). */
int kg_index_build_ann(kg_index *x, kg_ann_kind kind, tailor_error *err);
bool kg_ann_kind_parse(const char *s, kg_ann_kind *out);
const char *kg_ann_kind_name(kg_ann_kind k);
/* The k nearest by the approximate index when there is one, else exact. */
int kg_index_nearest(const kg_index *x, const float *q, int k, pool *tp, int64_t *out, float *scores);
/* Recall@k of x->ann against exact search, over nq queries made of random
 * items moved by noise (near an item, not on it); the mean time per query
 * of each (ms). */
double kg_index_recall(const kg_index *x, int k, int nq, uint64_t seed, pool *tp, double *ms_exact, double *ms_ann);
/* An embedding model as the index uses it (llm_embed with a pooling). */
typedef struct kg_embedder {
    llm_model *m;
    llm_ctx *c;
    llm_pooling pooling;
} kg_embedder;
int kg_embedder_open(kg_embedder *em, const char *model, llm_pooling pooling, tailor_error *err);
void kg_embedder_close(kg_embedder *em);
/* Every item's title, text and tags embedded as one passage (a progress
 * bar unless quiet); out->model is a copy of model_path. */
int kg_index_build(store *s, kg_embedder *em, const char *model_path, bool quiet, kg_index *out, tailor_error *err);
/* Items for a query, best first: the index's nearest, or (hybrid) those
 * fused by reciprocal rank with the word search (BM25) of the store; each
 * list looked at to depth. *ids: malloc'd array of malloc'd ids, *scores
 * malloc'd; free with kg_hits_free. */
int kg_index_query(store *s, const kg_index *x, kg_embedder *em, const char *query, bool hybrid, int depth,
                   char ***ids, double **scores, int *n, tailor_error *err);
void kg_hits_free(char **ids, double *scores, int n);
/* What the agent's search and item_info tools search with: an index
 * (borrowed, read-only, so threads may share it) and an embedder of one's
 * own (a model context is one thread's). */
typedef struct kg_retriever {
    const kg_index *x;
    kg_embedder em;
} kg_retriever;
/* model: the one that embeds queries (NULL: the index's own file). */
int kg_retriever_open(kg_retriever *r, const kg_index *x, const char *model, tailor_error *err);
void kg_retriever_close(kg_retriever *r);
/* Where `tailor index build` keeps a store's index: DB.index/items.tvec
 * (malloc'd). */
char *kg_index_default_path(const char *db_path);
/* The index a command or server asked for: choice NULL = the store's
 * default when it exists (one that cannot be read is warned about and
 * skipped), "none" = none, a path = that file, which must load. *out is
 * NULL when there is none; free with kg_index_close. */
int kg_index_open_for(const char *db_path, const char *choice, kg_index **out, tailor_error *err);
void kg_index_close(kg_index *x);
/* Reciprocal-rank fusion of two ranked id lists (score: sum of 1/(k +
 * rank)); out[] malloc'd ids (the caller frees each), best first. */
int kg_rrf(const char *const *a, int na, const char *const *b, int nb, int k, char **out, double *scores, int max);

/* Proposes, for every item entity without a triple of relation rel (up
 * to limit), the most likely tail among the relation's range, by an
 * embedding model trained now, a language model's constrained votes, or
 * both (half TransE's probability, half the votes); stores each as an
 * unaccepted triple with its method and confidence, in one transaction. */
typedef enum kg_method { KG_METHOD_TRANSE = 0, KG_METHOD_DISTMULT, KG_METHOD_LLM, KG_METHOD_COMBINED } kg_method;
bool kg_method_parse(const char *s, kg_method *out);
const char *kg_method_name(kg_method m);
typedef struct kg_complete_params {
    kg_method method;
    int32_t relation;
    int64_t limit;
    int samples, epochs; /* the language model's votes; the embedding's training */
    uint64_t seed;
    llm_backend *llm;    /* KG_METHOD_LLM and KG_METHOD_COMBINED */
    bool quiet;
} kg_complete_params;
int kg_complete(store *s, const kg_graph *g, kg_complete_params p, kg_title_fn title, void *ctx, int64_t *asked,
                int64_t *proposed, tailor_error *err);

/* The graph as a recommender reads it (rec_graph): every array malloc'd
 * into out and freed by kg_rec_graph_free; item i of item_ext gets its
 * entity, or -1. */
#include "rec/rec.h"
typedef struct kg_rec_graph {
    rec_graph g;
    int64_t *ptr;
    int32_t *to, *rel, *item_entity;
} kg_rec_graph;
void kg_rec_graph_init(const kg_graph *g, char *const *item_ext, int32_t n_items, kg_rec_graph *out);
void kg_rec_graph_free(kg_rec_graph *r);
/* Loads the store's graph for models that need one: *out filled when
 * kind->needs_graph (and the store has a graph), else left empty
 * (out->g.n_entities == 0 and callers pass no graph). */
int kg_rec_graph_load(store *s, const rec_kind *kind, char *const *item_ext, int32_t n_items, kg_rec_graph *out,
                      tailor_error *err);

#endif
