/* agent.h — the conversational recommender: the tool registry, the
 * conversation manager and the turn loop, over any LLM backend (the rules
 * backend, rules.c, needs no model).
 *
 * A turn: the user's message and what the session remembers (profile facts,
 * the last results, recent turns) go to the backend; it answers or asks for
 * tools; tool arguments are validated against their schema before anything
 * runs; tools read the catalogue and the models through the personalize
 * engine, with the person's standing constraints and dislikes applied in
 * code; the answer and its items come back; the turn is stored. Items that
 * reach the person come from tool results only, so every one of them is an
 * item of the catalogue.
 */
#ifndef TAILOR_AGENT_H
#define TAILOR_AGENT_H

#include "llm/llm.h"
#include "personalize/personalize.h"

typedef struct agent agent;

/* ---- tools ---------------------------------------------------------------- */

/* What a tool sees of the turn. */
typedef struct agent_ctx {
    agent *a;
    sb *result; /* the tool writes its JSON result here */
} agent_ctx;

typedef struct agent_tool {
    const char *name, *description;
    /* args: validated against the tool's schema. */
    int (*run)(agent_ctx *c, const cJSON *args, tailor_error *err);
} agent_tool;

/* The registry: recommend, search, item_info, similar_items, user_profile. */
extern const agent_tool AGENT_TOOLS[];
extern const int AGENT_N_TOOLS;

/* The schema of a tool's arguments for this catalogue (categorical
 * attributes become enums, numeric ones bounds), malloc'd JSON. */
char *agent_tool_schema(agent *a, const char *name);

/* ---- the agent ------------------------------------------------------------ */

/* What the backend sees of turns that no longer fit its context. */
typedef enum agent_memory {
    AGENT_MEMORY_TRUNCATE = 0, /* they are dropped */
    AGENT_MEMORY_SUMMARIZE,    /* folded into a running summary: what was asked and shown */
    AGENT_MEMORY_RETRIEVE,     /* the ones that share most words with the new message come back */
} agent_memory;

bool agent_memory_parse(const char *s, agent_memory *out);
const char *agent_memory_name(agent_memory m);

typedef struct agent_params {
    const char *user;    /* external user id, or NULL (anonymous) */
    int64_t session;     /* continue this session (0 = a new one) */
    const char *model;   /* trained model for recommend (NULL = the active one) */
    int max_rounds;      /* tool rounds per turn (0 = 4) */
    bool store_turns;    /* keep the conversation in the store (default on via agent_default_params) */
    agent_memory memory;
    /* Tokens the conversation may take in the backend's context (0: its
     * context size less 1,024 for the answer). */
    int32_t context_budget;
    /* Search by words and meaning (the item index and an embedder,
     * borrowed; know.h): the search tool fuses BM25 and vector rankings,
     * item_info finds the nearest item to a description. NULL: words. */
    struct kg_retriever *retriever;
} agent_params;

agent_params agent_default_params(void);

/* The agent borrows the engine (and its store) and the backend. */
int agent_new(pz_engine *e, llm_backend *backend, agent_params p, agent **out, tailor_error *err);
void agent_free(agent *a);
int64_t agent_session(const agent *a);
pz_engine *agent_engine(agent *a);

typedef struct agent_item {
    char *id, *title, *reason;
    double score;
    uint32_t popularity;
} agent_item;

typedef struct agent_call {
    char *name, *arguments, *result; /* arguments and result: JSON */
    double ms;
    bool ok;          /* ran; false: refused (invalid arguments) or failed */
} agent_call;

typedef struct agent_reply {
    char *text;
    agent_item *items;
    int n_items;
    agent_call *calls;
    int n_calls;
    char **mentions; /* ids of the items the answer's text names ([[title]]) */
    int n_mentions;
    int64_t session;
    /* Where the turn's time went (ms): assembling the context, the
     * backend's first reply (intent), tools, the backend's later replies
     * (the answer), storing the turn. */
    double ms_context, ms_intent, ms_tools, ms_answer, ms_store;
    /* The context: turns kept whole, turns older than that, and the
     * messages the backend saw (for measurements). */
    int turns_kept, turns_older;
    char *context; /* every message's text, joined (NULL unless agent_keep_context) */
} agent_reply;
/* Keep the context text in each reply (for context-stress measurements). */
void agent_keep_context(agent *a, bool keep);
/* The text the backend would see for a new message (every message joined),
 * without running a turn; *kept and *older (may be NULL) count the turns
 * kept whole and those beyond the budget. */
int agent_context_preview(agent *a, const char *text, sb *out, int *kept, int *older, tailor_error *err);
void agent_reply_deinit(agent_reply *r);
/* {"answer", "items": [...], "tool_calls": [...], "mentions": [ids], "session"} */
void agent_reply_json(const agent_reply *r, sb *out);

/* One turn: text streams through cb as the answer is written. */
int agent_turn(agent *a, const char *text, llm_stream_fn cb, void *ud, agent_reply *out, tailor_error *err);

/* ---- internals shared by the agent's files ------------------------------- */

/* The person's standing constraints, likes and dislikes (profile facts). */
typedef struct agent_profile {
    pz_cond conds[PZ_MAX_CONDS];
    int n_conds;
    VEC(char *) likes, dislikes; /* item ids */
} agent_profile;
int agent_profile_load(agent *a, agent_profile *p, tailor_error *err);
void agent_profile_deinit(agent_profile *p);
int agent_fact_add(agent *a, const char *kind, const char *value, const char *text, tailor_error *err);
int agent_facts_clear(agent *a, const char *kind, int64_t *removed, tailor_error *err);
const char *agent_user(const agent *a);
const char *agent_model(const agent *a);
struct kg_retriever *agent_retriever(const agent *a);

/* The rules backend: interprets requests with the catalogue itself (the
 * engine is borrowed). */
int agent_rules_new(pz_engine *e, llm_backend **out, tailor_error *err);

#endif
