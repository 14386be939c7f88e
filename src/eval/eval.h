/* eval.h — offline evaluation that can be trusted: splits, protocols,
 * ranking metrics with confidence intervals, paired comparisons, reports.
 *
 * Owns: k-core filtering, leave-one-out / temporal / random splits (each with
 * a validation split carved from training, so tuning never sees test), the
 * full and sampled ranking protocols, the metric definitions, and the JSON /
 * markdown / SVG writers. Every figure carries its protocol.
 * Ranking rule everywhere: higher score first, ties to the lower item index.
 */
#ifndef TAILOR_EVAL_H
#define TAILOR_EVAL_H

#include <stdio.h>

#include "know/know.h"
#include "rec/rec.h"
#include "store/store.h"

/* ---- data and splits --------------------------------------------------- */

/* A CSR matrix that owns its arrays (values and times per entry). */
typedef struct eval_csr {
    int32_t n_rows;
    int64_t *ptr;
    int32_t *idx;
    float *val;
    int64_t *ts;
} eval_csr;

void eval_csr_free(eval_csr *c);
rec_data eval_csr_data(const eval_csr *c, int32_t n_items);

typedef enum eval_split_kind {
    EVAL_SPLIT_LOO = 0,  /* last item per user to test, second-last to validation */
    EVAL_SPLIT_TEMPORAL, /* global time cut: the newest ratio of events to test */
    EVAL_SPLIT_RANDOM,   /* per user, a random ratio of items to test */
} eval_split_kind;

typedef struct eval_split_params {
    eval_split_kind kind;
    double ratio;  /* test fraction (temporal, random); validation uses the same of the rest */
    int kcore;     /* keep users and items with at least this many interactions (0 = all) */
    uint64_t seed;
} eval_split_params;

eval_split_params eval_split_default_params(void);
bool eval_split_kind_parse(const char *s, eval_split_kind *out);
const char *eval_split_kind_name(eval_split_kind k);

typedef struct eval_split {
    int32_t n_users, n_items;
    char **user_ext, **item_ext; /* owned copies (k-core renumbers) */
    arena strings;
    eval_csr all;        /* every kept interaction */
    eval_csr train;      /* all minus test: trains the models that are tested */
    eval_csr val_train;  /* train minus validation: trains the models that are tuned */
    eval_csr test, val;  /* targets per user (items; empty rows = not evaluated) */
    float *popularity;   /* per item: users in train */
    kg_rec_graph graph;  /* the store's knowledge graph over these items (eval_split_graph), or empty */
} eval_split;

/* Loads the store's knowledge graph onto the split's items, for models
 * that need one (a store without a graph leaves it empty). */
int eval_split_graph(eval_split *split, store *s, tailor_error *err);

/* Builds the split from a store view (its CSR: one entry per user and item,
 * with the latest time). */
int eval_split_build(const store_view *v, eval_split_params p, eval_split *out, tailor_error *err);
void eval_split_free(eval_split *s);
/* Writes the split as tab-separated files for other tools: DIR/train.tsv,
 * valid.tsv, test.tsv ("user item value time", dense indexes), users.tsv
 * and items.tsv ("index external-id"). */
int eval_split_export(const eval_split *s, const char *dir, tailor_error *err);

/* ---- protocols and metrics --------------------------------------------- */

typedef enum eval_protocol_kind { EVAL_FULL = 0, EVAL_SAMPLED, EVAL_CTR } eval_protocol_kind;

typedef struct eval_protocol {
    eval_protocol_kind kind;
    int negatives;         /* sampled: per user */
    bool pop_negatives;    /* sampled: draw in proportion to popularity */
    uint64_t seed;
    const char *neg_file;  /* sampled: "user neg1 neg2 ..." lines (external ids) */
} eval_protocol;

/* "full ranking" or "sampled: 100 uniform negatives, seed 42" etc. */
void eval_protocol_describe(const eval_protocol *p, sb *out);

/* The metrics, in the order of eval_metric_names. */
enum {
    EVAL_M_HR = 0,
    EVAL_M_RECALL,
    EVAL_M_PRECISION,
    EVAL_M_NDCG,
    EVAL_M_MRR,
    EVAL_M_MAP,
    EVAL_M_PER_USER, /* metrics with a value per user */
};
extern const char *const eval_metric_names[EVAL_M_PER_USER];

#define EVAL_MAX_K 8

/* Per-user metrics of one ranked list: ranked[0..n) best first, targets the
 * relevant items (sorted or not). out[EVAL_M_PER_USER]. */
void eval_user_metrics(const int32_t *ranked, int n, const int32_t *targets, int nt, int k,
                       double *out);

typedef struct eval_stat {
    double mean, lo, hi; /* 95% confidence interval of the mean */
    int64_t n;
} eval_stat;

/* Mean and 95% interval of per-user values in [0, 1]. When every value is
 * 0 or 1 (hit rate; recall with one target) it is a proportion: Wilson's
 * score interval, which stays inside [0, 1] and is right for few users
 * and for means near 0 or 1. Otherwise Student's t interval (n - 1 degrees
 * of freedom) clipped to [0, 1]. */
eval_stat eval_stat_of(const double *v, int64_t n);
/* The two-sided 97.5% quantile of Student's t with df degrees of freedom. */
double eval_t975(int64_t df);

/* Paired comparison of per-user values a and b (same users): mean of a - b,
 * its 95% t interval, and the two-sided p-value of the paired t statistic
 * (normal approximation, fine for the hundreds of users evaluated). */
typedef struct eval_paired {
    double diff, lo, hi, p_value;
    int64_t n;
} eval_paired;

eval_paired eval_paired_test(const double *a, const double *b, int64_t n);

/* Result of evaluating one model. */
typedef struct eval_result {
    char model[72]; /* the kind, or the saved model's name */
    char params[512]; /* JSON */
    double train_s, eval_s;
    int nk;
    int ks[EVAL_MAX_K];
    int64_t n_users; /* users evaluated */
    /* per user, per K, per metric: values[(u * nk + ki) * EVAL_M_PER_USER + m] */
    double *values;
    eval_stat stats[EVAL_MAX_K][EVAL_M_PER_USER];
    /* Beyond accuracy, from each user's full top-K list. */
    double coverage[EVAL_MAX_K], gini[EVAL_MAX_K], arp[EVAL_MAX_K], novelty[EVAL_MAX_K];
} eval_result;

void eval_result_free(eval_result *r);

typedef struct eval_run_params {
    const int *ks;
    int nk;
    bool validation; /* train on val_train, score validation targets */
    bool trained;    /* the model is already trained on this split: score only */
    pool *pool;
} eval_run_params;

/* Coverage, Gini, average popularity and novelty of users' top-K lists
 * (toplists: maxk per user, -1 padded; has: which of the nu users count,
 * NULL: all) into out, for out's ks. */
void eval_beyond_accuracy(const eval_split *s, const int32_t *toplists, int maxk, const unsigned char *has, size_t nu,
                          eval_result *out);
/* Trains m on the split (train or val_train) and evaluates it. */
int eval_model(rec_model *m, const eval_split *s, const eval_protocol *proto,
               eval_run_params p, eval_result *out, tailor_error *err);

/* ---- output ------------------------------------------------------------ */

typedef struct eval_report_info {
    const char *dataset;
    const eval_split *split;
    const eval_split_params *split_params;
    const eval_protocol *protocol;
} eval_report_info;

/* The aligned table of the CLI: hr, ndcg, mrr and recall, one row per
 * model and K, within 100 columns; wide: every metric, one row per model. */
void eval_print_table(FILE *f, const eval_report_info *info, const eval_result *r, int n, bool wide);
/* {"dataset", "split", "protocol", "k", "results": [...], "paired": [...]} */
void eval_write_json(sb *out, const eval_report_info *info, const eval_result *r, int n);
/* DIR/report.md and DIR/ndcg.svg. */
int eval_write_report(const char *dir, const eval_report_info *info, const eval_result *r, int n,
                      tailor_error *err);

/* ---- experiments on the conversational recommender ------------------- */

struct pz_engine;
struct llm_backend;
/* `tailor experiment tool-latency`: a suite of requests through the agent,
 * rounds times; per step (context, intent, tools, answer, store, the whole
 * turn) mean, p50, p99 and max in ms, as a table on f and JSON in json. */
int eval_tool_latency(struct pz_engine *e, struct llm_backend *b, int rounds, FILE *f, sb *json, tailor_error *err);
/* `tailor experiment context-stress`: facts stated through a conversation
 * of turns turns in a context of budget tokens; per memory policy, the share
 * of them in what the backend would see when asked, as the conversation
 * grows; a table, JSON, and report_dir/context-stress.svg (when given). */
int eval_context_stress(struct pz_engine *e, struct llm_backend *b, int32_t budget, int turns,
                        const char *report_dir, FILE *f, sb *json, tailor_error *err);

/* `tailor experiment agent-data` (agentdata.c): n conversations made from
 * the catalogue (a request in one of many phrasings, the tool call it
 * means, the tool's result, a short answer), as the agent sends them to a
 * backend, in OpenAI's fine-tuning format with tools, to DIR/train.jsonl;
 * phrasings never used there to DIR/heldout.jsonl. */
int eval_agent_data(struct pz_engine *e, const char *dir, int n, uint64_t seed, FILE *f, tailor_error *err);
/* `tailor experiment tool-calls`: each conversation's request (at most
 * limit; 0: all) through the agent with backend b; the share whose first
 * call is the right tool, and the right tool with exactly the right
 * arguments (items as the tools resolve them). */
int eval_tool_calls(struct pz_engine *e, struct llm_backend *b, const char *path, int limit, FILE *f, sb *json,
                    tailor_error *err);

/* ---- the CTR protocol (ctr.c) ------------------------------------------ */

/* Labelled rows of the knowledge-graph papers' click-through-rate protocol:
 * interactions (1) and as many sampled non-interactions per user (0), split
 * 6:2:2 at random; the items are those linked to the knowledge graph when
 * one is given. */
typedef struct eval_ctr_row {
    int32_t u, i;
    int8_t y;
} eval_ctr_row;

typedef struct eval_ctr_split {
    int32_t n_users, n_items;
    char **user_ext, **item_ext; /* into strings */
    arena strings;
    eval_csr train;              /* the training rows' positives */
    int64_t n_train, n_pos, n_neg;
    eval_ctr_row *valid, *test;
    size_t n_valid, n_test;
    bool graph_items;
    kg_rec_graph graph;          /* the graph over these items, for models that need one */
} eval_ctr_split;

#define EVAL_CTR_COLD 2 /* an item with at most this many training positives is cold */

typedef struct eval_ctr_result {
    char model[64], params[512];
    double train_s, eval_s;
    double auc, auc_lo, auc_hi, f1, f1_lo, f1_hi, threshold;
    double auc_cold;       /* on the test rows of cold items */
    int64_t rows, cold_rows;
    double recall10, recall50; /* top-K over every item but the user's training positives */
    int64_t recall_users;
} eval_ctr_result;

/* g may be NULL (all items). */
int eval_ctr_split_build(const store_view *v, const kg_graph *g, uint64_t seed, eval_ctr_split *out,
                         tailor_error *err);
void eval_ctr_split_free(eval_ctr_split *s);
void eval_ctr_describe(const eval_ctr_split *s, uint64_t seed, sb *out);
/* Trains m on the training positives and scores the test rows: AUC (95%
 * interval by Hanley and McNeil) and F1 at the validation rows' best
 * threshold (95% interval from 200 bootstrap resamples). */
int eval_ctr_model(rec_model *m, eval_ctr_split *s, pool *tp, eval_ctr_result *out, tailor_error *err);
void eval_ctr_print(FILE *f, const char *dataset, const eval_ctr_split *s, uint64_t seed, const eval_ctr_result *r,
                    int n);
/* {"dataset", "users", "items", "protocol": "ctr", "protocol_description",
 * "results": [{"model", "params", "train_s", "eval_s", "rows", "threshold",
 * "metrics": {"auc": {"mean", "ci95"}, "f1": {"mean", "ci95"}, "auc_cold":
 * {"mean"}, "recall@10": {"mean"}, "recall@50": {"mean"}}}]} */
void eval_ctr_json(sb *o, const char *dataset, const eval_ctr_split *s, uint64_t seed, const eval_ctr_result *r, int n);

/* ---- tailor experiment hallucination (hallucination.c) ----------------- */

typedef struct eval_halluc_params {
    double hide;              /* share of the true triples hidden (default 0.1) */
    int queries;              /* hidden triples asked (default 200) */
    int samples;              /* a language model's answers per question (default 5) */
    int kge_epochs;           /* (default 100) */
    uint64_t seed;
    struct llm_backend *llm;  /* NULL: the embedding rows only */
    const char *report_dir;   /* writes DIR/hallucination.svg when given */
} eval_halluc_params;
eval_halluc_params eval_halluc_default_params(void);
/* titles (may be NULL) names items by title in the questions. */
int eval_hallucination(store *s, struct pz_engine *titles, eval_halluc_params p, FILE *f, sb *json, tailor_error *err);

/* ---- tailor experiment cold-items (cold.c) ------------------------------ */

typedef struct eval_cold_params {
    double hide;            /* share of the items with min_events events hidden (default 0.1) */
    int k;                  /* cut-off of recall and NDCG (default 20) */
    int min_events;         /* (default 5) */
    uint64_t seed;
    const kg_index *index;  /* the item vectors (NULL: graph rows only) */
} eval_cold_params;
eval_cold_params eval_cold_default_params(void);
/* Hides items, ranks them for their users by graph neighbours, text
 * vectors and both; a table on f, {"experiment": "cold-items", ...,
 * "results": [{"method", "recall": {"mean", "ci95"}, "ndcg": {...}}]}. */
int eval_cold_items(store *s, eval_cold_params p, FILE *f, sb *json, tailor_error *err);

/* ---- tailor experiment llm-ranker (llmrank.c) --------------------------- */

typedef struct eval_llmrank_params {
    const char *retriever;   /* rec kind proposing candidates (default als) */
    int candidates;          /* 2..26, one letter each (default 20) */
    int history;             /* recent items shown (default 10) */
    int users;               /* test users at most (default 200) */
    int shots;               /* in-context examples from the user's own history before the question (0) */
    uint64_t seed;
    const char *export_path; /* write training examples (JSON Lines) instead of measuring */
    struct llm_model *lm;    /* the ranker (with its context, adapter applied) */
    struct llm_ctx *ctx;
    /* or any backend with log-probabilities (a remote server): each letter
     * scored by the best of its tokens among the top_logprobs most likely */
    struct llm_backend *backend;
    int top_logprobs;        /* default 20, OpenAI's limit */
    bool chat;               /* ask the backend's chat endpoint (set by the run when its completions report none) */
    const char *ids_path;    /* llm-generative: items as the semantic IDs of this codes.tsv, not titles */
    int id_levels, id_codebook; /* semantic-ids: levels of codes (3) and codes per level (64) */
    bool id_balanced;        /* semantic-ids: every code of a level given to at most ceil(items / codebook) items
                                (eval_llmrank_default_params: true) */
    bool quiet;
} eval_llmrank_params;
eval_llmrank_params eval_llmrank_default_params(void);
int eval_llm_ranker(store *s, eval_llmrank_params p, FILE *f, sb *json, tailor_error *err);
/* The ranker with 0, 2 and 5 in-context examples from each user's history:
 * {"experiment": "icl-shots", "runs": [three llm-ranker objects]}. */
int eval_llm_icl_shots(store *s, eval_llmrank_params p, FILE *f, sb *json, tailor_error *err);
/* The generative recommender: the model writes the next item's title
 * after the user's recent titles ("A user's recent items, oldest first: T1;
 * T2; ...;", the form `llm train` data takes in docs/training.md), decoded
 * under a trie of the catalogue's
 * titles (every output is an item), beam search (width 20) giving the top
 * 10; against the retriever's top 10 on the same users. */
int eval_llm_generative(store *s, eval_llmrank_params p, FILE *f, sb *json, tailor_error *err);
/* Learned semantic IDs (TIGER's, by residual k-means over the item vectors
 * of p.retriever trained on the split's training part): writes
 * dir/codes.tsv (item, ID such as "aam bad cbo", one word per code, title) and dir/train.txt
 * (the training part's sequences written in IDs, for llm train), for
 * llm-generative with ids_path. */
int eval_semantic_ids(store *s, eval_llmrank_params p, const char *dir, FILE *f, tailor_error *err);
/* Tests: the most (item, code) pairs balanced k-means queues whole (0: the
 * default, 2^24); beyond it each item queues its 16 nearest codes. */
void eval_kmeans_pair_limit(size_t pairs);
/* The traditional models (comma-separated kinds, full ranking) and, with
 * p.lm, the language model's ranker and generator, on the same sample of
 * test users: the harness's table, JSON (paired tests against the first)
 * and, with report_dir, report.md and ndcg.svg. */
int eval_llm_vs_traditional(store *s, eval_llmrank_params p, const char *models, const char *dataset,
                            const char *report_dir, FILE *f, sb *json, tailor_error *err);

#endif /* TAILOR_EVAL_H */
