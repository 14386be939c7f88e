/* tailor.h — the public C API of libtailor.
 *
 * Everything a C program needs to embed tailor: status codes, the error
 * struct, and opaque handles with open/close pairs. Internals live in each
 * module's own header under src/ and never leak through this file.
 * Functions return 0 on success or a negative tailor_status; on failure they
 * leave their objects as they were and, when given one, fill a tailor_error.
 */
#ifndef TAILOR_H
#define TAILOR_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TAILOR_VERSION_MAJOR 0
#define TAILOR_VERSION_MINOR 1
#define TAILOR_VERSION_PATCH 0
#define TAILOR_VERSION_STRING "0.1.0"

/* Status codes, generated from one list: name, value, description. */
#define TAILOR_STATUS_LIST(X)                                         \
    X(TAILOR_OK, 0, "success")                                        \
    X(TAILOR_ENOMEM, -1, "out of memory")                             \
    X(TAILOR_EIO, -2, "input/output error")                           \
    X(TAILOR_EDATA, -3, "invalid data")                               \
    X(TAILOR_ENOTFOUND, -4, "not found")                              \
    X(TAILOR_EINVAL, -5, "invalid argument")                          \
    X(TAILOR_EDB, -6, "database error")                               \
    X(TAILOR_ENETWORK, -7, "network unavailable")                     \
    X(TAILOR_ECHECKSUM, -8, "checksum mismatch")                      \
    X(TAILOR_EUNSUPPORTED, -9, "unsupported")                         \
    X(TAILOR_EEXISTS, -10, "already exists")                          \
    X(TAILOR_EINTERNAL, -11, "internal error")

typedef enum tailor_status {
#define TAILOR_X_ENUM(name, value, desc) name = value,
    TAILOR_STATUS_LIST(TAILOR_X_ENUM)
#undef TAILOR_X_ENUM
} tailor_status;

/* A human-readable error. When the cause is data, msg names
 * file:line: field 'name': reason. The caller owns the struct (usually on
 * its stack); functions only write into it. */
typedef struct tailor_error {
    int code;       /* a tailor_status */
    char msg[1024]; /* NUL-terminated, empty when code == TAILOR_OK */
} tailor_error;

/* The library's version string, e.g. "0.1.0". Static storage. */
const char *tailor_version(void);

/* The description of a status code. Static storage; never NULL. */
const char *tailor_strerror(int code);

/* ---- store ------------------------------------------------------------- */

typedef struct tailor_store tailor_store; /* opaque */

/* Opens (creating if needed) the SQLite store at path and brings its schema
 * up to date. *out is owned by the caller; release it with
 * tailor_store_close. */
int tailor_store_open(const char *path, tailor_store **out, tailor_error *err);
void tailor_store_close(tailor_store *store);

typedef struct tailor_store_counts {
    int64_t users, items, events, tags, kg_triples, models;
} tailor_store_counts;

int tailor_store_counts_get(tailor_store *store, tailor_store_counts *out,
                            tailor_error *err);

/* ---- import ------------------------------------------------------------ */

/* Imports a MovieLens directory (ml-100k, ml-1m, ml-latest-small or
 * ml-latest layouts, detected from the files present). One transaction: on
 * any error the store is left exactly as it was. */
int tailor_import_movielens(tailor_store *store, const char *dir,
                            tailor_error *err);

/* ---- the built-in LLM engine ------------------------------------------ */

/* A GGUF model (llama, qwen2, qwen3 architectures; F32, F16, BF16, Q8_0,
 * Q4_0, Q4_1, Q5_0, Q5_1 tensors). Weights stay memory-mapped. */
typedef struct tailor_llm_model tailor_llm_model; /* opaque */
/* An inference context: KV cache, scratch, thread pool. */
typedef struct tailor_llm_ctx tailor_llm_ctx; /* opaque */
typedef struct tailor_llm_sampler tailor_llm_sampler; /* opaque */

typedef struct tailor_llm_ctx_params {
    int32_t n_ctx;     /* 0 = the model's context, at most 4096 */
    int32_t n_threads; /* 0 = all cores */
} tailor_llm_ctx_params;

typedef struct tailor_llm_sampler_params {
    float temperature;    /* <= 0: greedy (argmax) */
    int32_t top_k;        /* <= 0: off */
    float top_p;          /* >= 1: off */
    float min_p;          /* <= 0: off */
    float repeat_penalty; /* 1: off */
    float presence_penalty;
    int32_t penalty_last_n;
    uint64_t seed;
} tailor_llm_sampler_params;

typedef struct tailor_llm_model_params {
    int vocab_only; /* read only the tokenizer (works on vocabulary-only files) */
} tailor_llm_model_params;

tailor_llm_model_params tailor_llm_model_default_params(void);
tailor_llm_ctx_params tailor_llm_ctx_default_params(void);
tailor_llm_sampler_params tailor_llm_sampler_default_params(void);

/* Loads a model; *out is the caller's, released with tailor_llm_model_free. */
int tailor_llm_model_load(const char *path, tailor_llm_model_params params, tailor_llm_model **out,
                          tailor_error *err);
void tailor_llm_model_free(tailor_llm_model *model);
int32_t tailor_llm_n_vocab(const tailor_llm_model *model);
int32_t tailor_llm_n_embd(const tailor_llm_model *model);
int32_t tailor_llm_token_bos(const tailor_llm_model *model); /* -1 when none */
int32_t tailor_llm_token_eos(const tailor_llm_model *model);
/* True for end-of-generation tokens (EOS, end-of-turn). */
int tailor_llm_token_is_eog(const tailor_llm_model *model, int32_t token);

/* Tokenizes n bytes of text into out[cap]. add_special: BOS/EOS as the
 * model says; parse_special: control-token text becomes its token.
 * Returns the count, or -(count needed) when cap is too small. */
int64_t tailor_llm_tokenize(const tailor_llm_model *model, const char *text, size_t n, int add_special,
                            int parse_special, int32_t *out, int64_t cap);
/* Writes the bytes of a token into buf[cap] (no NUL). Returns the length,
 * or -(length needed) when cap is too small. */
int32_t tailor_llm_token_to_piece(const tailor_llm_model *model, int32_t token, char *buf, int32_t cap);

/* The model must outlive the context. */
int tailor_llm_ctx_new(tailor_llm_model *model, tailor_llm_ctx_params params, tailor_llm_ctx **out,
                       tailor_error *err);
void tailor_llm_ctx_free(tailor_llm_ctx *ctx);
/* Applies a LoRA adapter (llama.cpp's adapter GGUF, made for this model) at
 * scale in every later decode: y = W x + scale * alpha / rank * B (A x).
 * The context loads and owns it; path NULL removes it. The cache is
 * cleared (it was computed with the old weights). */
int tailor_llm_ctx_set_lora(tailor_llm_ctx *ctx, const char *path, float scale, tailor_error *err);
/* Tokens in the KV cache. */
int32_t tailor_llm_ctx_n_past(const tailor_llm_ctx *ctx);
/* Forgets the cache from position pos on (0: start over). */
void tailor_llm_ctx_truncate(tailor_llm_ctx *ctx, int32_t pos);
/* Runs n tokens after what the cache holds; afterwards tailor_llm_logits
 * returns the last token's n_vocab logits (valid until the next decode). */
int tailor_llm_decode(tailor_llm_ctx *ctx, const int32_t *tokens, int32_t n, tailor_error *err);
const float *tailor_llm_logits(const tailor_llm_ctx *ctx);

tailor_llm_sampler *tailor_llm_sampler_new(const tailor_llm_model *model, tailor_llm_sampler_params params);
void tailor_llm_sampler_free(tailor_llm_sampler *sampler);
/* Picks the next token; history (may be NULL) feeds the penalties. */
int32_t tailor_llm_sample(tailor_llm_sampler *sampler, const float *logits, const int32_t *history,
                          int64_t n_history);

/* Embeds text into out[n_embd] (L2-normalised; last_token: last-token
 * pooling instead of the mean). Clears the context's cache. */
int tailor_llm_embed(tailor_llm_ctx *ctx, const char *text, size_t n, int last_token, float *out,
                     tailor_error *err);

/* ---- the conversational recommender ----------------------------------- */

/* An agent over a store: it reads requests, calls the recommendation tools
 * (recommend, search, item_info, similar_items, user_profile) and answers
 * with items of the catalogue. Without a model it uses the rules backend
 * (no language model needed); with one, a GGUF file (the built-in engine)
 * or an OpenAI-compatible server. The store must outlive the agent. */
typedef struct tailor_agent tailor_agent; /* opaque */

typedef struct tailor_agent_params {
    const char *user;        /* external user id, or NULL (anonymous) */
    int64_t session;         /* continue this session; 0 starts one */
    const char *recommender; /* trained model name; NULL: the active one */
    const char *gguf;        /* a GGUF model answers (NULL: none) */
    const char *chat_format; /* its chat format when the file names none */
    const char *llm_url;     /* or an OpenAI-compatible server (http://host:port/v1) */
    const char *llm_model;   /* the server's model name */
    const char *memory;      /* "truncate" (default), "summarize" or "retrieve" */
} tailor_agent_params;

tailor_agent_params tailor_agent_default_params(void);
int tailor_agent_new(tailor_store *store, tailor_agent_params params, tailor_agent **out, tailor_error *err);
void tailor_agent_free(tailor_agent *agent);
int64_t tailor_agent_session(const tailor_agent *agent);

/* Receives the answer's text as it is written; return 0 to stop listening. */
typedef int (*tailor_stream_fn)(void *user_data, const char *text, size_t n);

/* One turn. The answer streams through cb (may be NULL); *json_out (may be
 * NULL) receives {"answer", "items": [{"id", "title", "score",
 * "popularity", "reason"}], "tool_calls": [...], "mentions": [ids of the
 * items the text names], "session"}, malloc'd:
 * release it with tailor_free. */
int tailor_agent_turn(tailor_agent *agent, const char *text, tailor_stream_fn cb, void *user_data,
                      char **json_out, tailor_error *err);

/* Releases memory the library handed out (JSON texts). */
void tailor_free(void *p);

#ifdef __cplusplus
}
#endif
#endif /* TAILOR_H */
