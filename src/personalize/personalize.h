/* personalize.h — recommendations as the faces and the agent ask for them.
 *
 * Owns: the catalogue as serving sees it (items with titles and parsed
 * attributes), trained models loaded by name (the active one unless named),
 * item conditions (attribute equals/contains, excludes, numeric bounds such
 * as year ranges), exclusions, the popularity fallback for users a model
 * knows nothing about, a novelty knob, and explanations from the model's
 * real signals. Every item it returns is an item of the catalogue, and
 * never one the user already has unless asked.
 *
 * An engine holds a store it borrows; one thread uses an engine at a time.
 */
#ifndef TAILOR_PERSONALIZE_H
#define TAILOR_PERSONALIZE_H

#include <cjson/cJSON.h>

#include "know/know.h"
#include "rec/rec.h"
#include "store/store.h"

typedef struct pz_engine pz_engine;

int pz_engine_new(store *s, pz_engine **out, tailor_error *err);
void pz_engine_free(pz_engine *e);
store *pz_engine_store(pz_engine *e);

/* ---- the catalogue ------------------------------------------------------ */

typedef struct pz_item_info {
    const char *id, *title, *text; /* title/text may be NULL */
    const cJSON *attributes;       /* object or NULL */
    int64_t row;                   /* store row id */
} pz_item_info;

/* The item with external id (owned by the engine), or NULL. */
const pz_item_info *pz_item(pz_engine *e, const char *id);
/* The item a person means by text: its id; a title, whole or without its
 * year ("Toy Story"), "the X" for "X, The" (of several with that name, the
 * more popular); else the best full-text match whose title holds every
 * word. NULL when nothing fits. */
const pz_item_info *pz_item_named(pz_engine *e, const char *text);
/* Users who had the item in the active model's training data (0 when
 * unknown): what breaks ties between items of the same name. */
uint32_t pz_popularity(pz_engine *e, const char *id);
/* The item of a store row id, or NULL. */
const pz_item_info *pz_item_by_row(pz_engine *e, int64_t row);
/* Number of items, and the i-th (in row order). */
size_t pz_items(pz_engine *e);
const pz_item_info *pz_item_at(pz_engine *e, size_t i);
/* Whether some item has the attribute; the known attribute names joined
 * with ", " into out when not. */
bool pz_attribute_known(pz_engine *e, const char *key, sb *known);

/* The attributes conditions can name: categorical ones (text values, at
 * most PZ_MAX_VALUES distinct, listed) and numeric ones (with their range
 * in the catalogue). Computed once, owned by the engine. */
#define PZ_MAX_VALUES 64
typedef struct pz_attr {
    const char *key;
    bool numeric;
    double lo, hi;
    const char **values; /* categorical: sorted */
    int n_values;
    int64_t items;       /* items that have it */
} pz_attr;
const pz_attr *pz_attributes(pz_engine *e, int *n);

/* ---- conditions on items ---------------------------------------------- */

typedef enum pz_op {
    PZ_IS = 0, /* the attribute equals value, or is a list that contains it */
    PZ_NOT,    /* the opposite (items without the attribute pass) */
    PZ_GE,     /* numeric attribute >= value (items without it fail) */
    PZ_LE,     /* numeric attribute <= value */
} pz_op;

typedef struct pz_cond {
    char key[64];
    pz_op op;
    char value[128];
} pz_cond;

#define PZ_MAX_CONDS 16

/* Parses "KEY=VALUE" (or KEY!=VALUE, KEY>=N, KEY<=N); false when bad. */
bool pz_cond_parse(const char *text, pz_cond *out);
bool pz_item_passes(const pz_item_info *it, const pz_cond *c, int n);

/* ---- recommendations ---------------------------------------------------- */

typedef struct pz_query {
    const char *model;                /* NULL = the active model */
    const char *user;                 /* external id, or NULL */
    const char *const *history;       /* item ids: an anonymous history, or added to the user's */
    size_t n_history;
    const char *const *exclude;       /* item ids never to return */
    size_t n_exclude;
    pz_cond conds[PZ_MAX_CONDS];
    int n_conds;
    int k;
    bool include_seen; /* items of the history may come back */
    bool explain;
    /* 0..1: 0 ranks by the model alone; higher values move less popular
     * items up (scores are discounted by popularity^novelty). */
    double novelty;
    /* Places (of k, at the end) for items nobody has had yet, ranked by
     * their knowledge-graph neighbours against the history (0: none). */
    int cold;
} pz_query;

typedef struct pz_reason {
    char *id, *title;
    float weight;
    char *path; /* REC_EXPLAIN_PATHS: "A -rel-> X <-rel- B" with titles (malloc'd), else NULL */
} pz_reason;

typedef struct pz_rec {
    char *id, *title;
    float score;
    uint32_t popularity; /* users in the model's training data */
    pz_reason because[3];
    int n_because;
    bool cold; /* no events yet: placed by the graph (because[] are paths) */
} pz_rec;

typedef struct pz_result {
    char *model, *kind;
    rec_explain_style style; /* what because[] means */
    bool fallback;           /* the model knew nothing of the user: most popular */
    int64_t pop_window;      /* popularity: counted over the last this many seconds (0 = all) */
    int64_t history_used, history_unknown;
    pz_rec *items;
    int n;
    int n_cold; /* of them, items without events (pz_query.cold) */
} pz_result;

/* TAILOR_ENOTFOUND for an unknown user, item or model; TAILOR_EINVAL for a
 * condition on an attribute no item has (the message lists the known). */
int pz_recommend(pz_engine *e, const pz_query *q, pz_result *out, tailor_error *err);
/* Items most similar to item by model (NULL: the active model, or the
 * newest that has item similarity; *note receives why another was used). */
int pz_similar(pz_engine *e, const char *model, const char *item, int k, const pz_cond *conds, int n_conds,
               pz_result *out, sb *note, tailor_error *err);
void pz_result_deinit(pz_result *r);
/* Appends "model": ..., "kind": ..., ["fallback": "popularity",] "items":
 * [{"rank", "item", "title", "score", "popularity"[, "cold": true][,
 * "explanation", "because"]}] (the members of an object, without its
 * braces). */
void pz_result_json(const pz_result *r, bool explain, sb *o);

/* A model's row as JSON: {"name", "kind", "active", "trained_at", "file",
 * "file_bytes", "params", "training", "evaluation"}; and the size of its
 * file (-1 when missing). */
void pz_model_json(store *s, const store_model *m, sb *o);
double pz_model_file_size(store *s, const store_model *m);

/* The loaded model named (NULL = active), with its row; owned by the
 * engine. */
int pz_model(pz_engine *e, const char *name, rec_model **m, const store_model **row, tailor_error *err);

#endif
