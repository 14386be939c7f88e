/* base.h — the bottom layer every other module stands on.
 *
 * Owns: errors (tailor_error helpers), arenas, typed dynamic arrays, a
 * string-keyed hash map, a string builder, JSON helpers over cJSON, leveled
 * logging, the stderr progress bar, a thread pool, monotonic timers, UTF-8
 * checks. Nothing here includes a higher layer. Allocation failures abort
 * through base_oom(): a personalization engine cannot do useful work without
 * memory, and unchecked NULLs are worse than a clear message.
 */
#ifndef TAILOR_BASE_H
#define TAILOR_BASE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tailor.h"

#if defined(__GNUC__)
#define BASE_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define BASE_PRINTF(f, a)
#endif

/* ---- errors ------------------------------------------------------------ */

/* Sets err (if non-NULL) and returns code, so callers can write
 * `return err_set(err, TAILOR_EIO, "...")`. */
int err_set(tailor_error *err, int code, const char *fmt, ...) BASE_PRINTF(3, 4);
/* A data error at file:line, naming the field: "FILE:LINE: field 'F': why".
 * field may be NULL; line 0 omits the line. Returns TAILOR_EDATA. */
int err_data(tailor_error *err, const char *file, int64_t line,
             const char *field, const char *fmt, ...) BASE_PRINTF(5, 6);
/* Prefixes an existing message with "prefix: ". */
void err_prefix(tailor_error *err, const char *fmt, ...) BASE_PRINTF(2, 3);
void err_clear(tailor_error *err);

/* ---- memory ------------------------------------------------------------ */

_Noreturn void base_oom(size_t size);
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

/* Arena: bump allocation from chunks; everything is freed at once by
 * arena_deinit (or rewound with arena_reset). Use one per request or job. */
typedef struct arena_chunk arena_chunk;
typedef struct arena {
    arena_chunk *head;
    size_t chunk_size;
} arena;

void arena_init(arena *a, size_t chunk_size); /* 0 = 64 KiB */
void arena_deinit(arena *a);
void arena_reset(arena *a); /* keeps the first chunk */
void *arena_alloc(arena *a, size_t n); /* 16-byte aligned, never NULL */
char *arena_strndup(arena *a, const char *s, size_t n);
char *arena_strdup(arena *a, const char *s);

/* Dynamic arrays: `VEC(int) v = {0}; vec_push(&v, 3); vec_free(&v);`
 * The vector owns its buffer. */
#define VEC(T)            \
    struct {              \
        T *data;          \
        size_t len, cap;  \
    }
#define vec_reserve(v, n)                                                  \
    do {                                                                   \
        if ((n) > (v)->cap) {                                              \
            size_t vec_nc_ = (v)->cap ? (v)->cap * 2 : 8;                  \
            while (vec_nc_ < (n)) vec_nc_ *= 2;                            \
            (v)->data = xrealloc((v)->data, vec_nc_ * sizeof(*(v)->data)); \
            (v)->cap = vec_nc_;                                            \
        }                                                                  \
    } while (0)
#define vec_push(v, x)                      \
    do {                                    \
        vec_reserve((v), (v)->len + 1);     \
        (v)->data[(v)->len++] = (x);        \
    } while (0)
#define vec_free(v)             \
    do {                        \
        free((v)->data);        \
        (v)->data = NULL;       \
        (v)->len = (v)->cap = 0; \
    } while (0)

/* ---- hash map: byte-string keys -> int64 values ------------------------ */

/* Open addressing with linear probing over 32-byte slots; keys of up to
 * 12 bytes live inside the slot, so a hit touches one cache line. Longer
 * keys are copied into the map's arena. Values are int64 (ids, indexes). */
typedef struct hmap_slot {
    uint64_t hash; /* 0 = empty */
    int64_t val;
    uint32_t klen;
    char key[12]; /* the key itself, or (klen > 12) a pointer to it */
} hmap_slot;

typedef struct hmap {
    hmap_slot *slots;
    size_t cap, len;
    arena keys_arena;
} hmap;

void hmap_init(hmap *m, size_t expected);
void hmap_deinit(hmap *m);
uint64_t hmap_hash(const void *key, size_t len);
/* Returns true and sets *val when found. */
bool hmap_get(const hmap *m, const char *key, size_t len, int64_t *val);
/* Inserts or overwrites. */
void hmap_put(hmap *m, const char *key, size_t len, int64_t val);

/* ---- string builder ---------------------------------------------------- */

typedef struct sb {
    char *buf; /* always NUL-terminated once anything was appended */
    size_t len, cap;
} sb;

void sb_init(sb *s);
void sb_deinit(sb *s);
void sb_clear(sb *s);
void sb_append(sb *s, const char *str, size_t n);
void sb_puts(sb *s, const char *str);
void sb_putc(sb *s, char c);
void sb_printf(sb *s, const char *fmt, ...) BASE_PRINTF(2, 3);
void sb_vprintf(sb *s, const char *fmt, va_list ap);
/* Appends str as a quoted JSON string with escapes. */
void sb_json_str(sb *s, const char *str, size_t n);
/* Returns the buffer ("" when empty); the builder keeps ownership. */
const char *sb_str(const sb *s);
/* Hands the buffer to the caller (free it) and resets the builder. */
char *sb_take(sb *s);

/* ---- UTF-8 and text ---------------------------------------------------- */

/* Returns -1 if s[0..n) is valid UTF-8, else the offset of the first bad
 * byte. Rejects overlong forms, surrogates and code points > U+10FFFF. */
int64_t utf8_check(const char *s, size_t n);
/* Appends Latin-1 bytes to out as UTF-8. */
void latin1_to_utf8(sb *out, const char *s, size_t n);
/* Strict integer/float parsing of a whole field (no trailing junk, no
 * empty). Returns true on success. */
bool parse_i64(const char *s, size_t n, int64_t *out);
bool parse_f64(const char *s, size_t n, double *out);

/* ---- JSON helpers over cJSON ------------------------------------------- */

struct cJSON;
/* Each returns 0 or sets err (naming the key) and returns TAILOR_EDATA.
 * A missing key with required == false leaves *out untouched. */
int json_get_str(const struct cJSON *obj, const char *key, bool required,
                 const char **out, tailor_error *err);
int json_get_i64(const struct cJSON *obj, const char *key, bool required,
                 int64_t *out, tailor_error *err);
int json_get_f64(const struct cJSON *obj, const char *key, bool required,
                 double *out, tailor_error *err);
/* Prints obj compactly into a malloc'd string the caller frees. */
char *json_print(const struct cJSON *obj);

/* ---- logging ----------------------------------------------------------- */

typedef enum log_level {
    LOG_LEVEL_DEBUG = 0,
    LOG_LEVEL_INFO = 1,
    LOG_LEVEL_WARN = 2,
    LOG_LEVEL_ERROR = 3,
    LOG_LEVEL_OFF = 4,
} log_level;

/* Reads TAILOR_LOG (debug|info|warn|error|off); default warn. Errors are
 * logged at every level: off also silences what is not logging (the
 * program's progress bars and notes). */
void log_init_from_env(void);
void log_set_level(log_level lvl);
log_level log_get_level(void);
void log_write(log_level lvl, const char *file, int line, const char *fmt, ...)
    BASE_PRINTF(4, 5);

#define TAILOR_LOG(lvl, ...)                                                   \
    do {                                                                       \
        if ((lvl) >= log_get_level() || (lvl) == LOG_LEVEL_ERROR)                \
            log_write((lvl), __FILE__, __LINE__, __VA_ARGS__);                   \
    } while (0)
#define log_debug(...) TAILOR_LOG(LOG_LEVEL_DEBUG, __VA_ARGS__)
#define log_info(...) TAILOR_LOG(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_warn(...) TAILOR_LOG(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_error(...) TAILOR_LOG(LOG_LEVEL_ERROR, __VA_ARGS__)

/* ---- random numbers ---------------------------------------------------- */

/* xoshiro256** seeded through splitmix64: fast, good, and the same stream
 * for the same seed on every machine. One generator per thread. */
typedef struct rng {
    uint64_t s[4];
} rng;

void rng_seed(rng *r, uint64_t seed);
uint64_t rng_next(rng *r);
double rng_uniform(rng *r);              /* [0, 1) */
uint64_t rng_below(rng *r, uint64_t n);  /* [0, n), unbiased; n > 0 */
double rng_normal(rng *r);               /* standard normal */

/* ---- half precision ---------------------------------------------------- */

/* IEEE binary16 and bfloat16, round to nearest even (NaN stays NaN). */
uint16_t f16_from_f32(float f);
float f32_from_f16(uint16_t h);
uint16_t bf16_from_f32(float f);
float f32_from_bf16(uint16_t h);

/* ---- timers ------------------------------------------------------------ */

uint64_t timer_now_ns(void); /* CLOCK_MONOTONIC */

/* ---- cpu.c: the vector kernel set to run ---- */
typedef enum cpu_set { CPU_SET_SCALAR, CPU_SET_AVX2, CPU_SET_AVX512, CPU_SET_COUNT } cpu_set;
/* The named set ("scalar"; "avx2": AVX2 + FMA; "avx512": AVX-512F) when
 * this CPU runs it, else -1. */
int cpu_set_named(const char *name);
/* The set $TAILOR_LLM_KERNELS names when the CPU runs it, else the best. */
cpu_set cpu_set_best(void);
const char *cpu_set_name(cpu_set s); /* "scalar", "avx2", "avx512" */
double timer_seconds_since(uint64_t start_ns);

/* ---- progress bar ------------------------------------------------------ */

/* Draws "label [=====>    ] 41% 410000/1000000 215k/s ETA 3s" on stderr,
 * at most ten times a second. Silent when stderr is not a terminal or
 * progress_set_quiet(true) was called. total 0 = unknown (no bar, no ETA). */
typedef struct progress {
    const char *label;
    uint64_t total, done;
    uint64_t start_ns, last_draw_ns;
    bool active, drawn;
} progress;

void progress_set_quiet(bool quiet);
bool progress_enabled(void);
void progress_begin(progress *p, const char *label, uint64_t total);
void progress_update(progress *p, uint64_t done);
void progress_set_total(progress *p, uint64_t total);
void progress_end(progress *p); /* final line, then newline */
/* Formats the bar into buf (used by progress_update; exposed for tests). */
void progress_format(const progress *p, uint64_t now_ns, char *buf, size_t n);

/* ---- thread pool ------------------------------------------------------- */

/* A fixed set of worker threads running parallel-for jobs. pool_for splits
 * [0, n) into contiguous chunks, one per thread (the caller's thread takes
 * one), and returns when all have finished. Deterministic chunking: the
 * same n and thread count give the same ranges. */
typedef struct pool pool;
typedef void (*pool_fn)(void *ctx, size_t begin, size_t end, int thread);

pool *pool_new(int nthreads); /* 0 = number of online CPUs */
void pool_free(pool *p);
int pool_threads(const pool *p);
void pool_for(pool *p, size_t n, pool_fn fn, void *ctx);
/* While solo, pool_for runs every job on the calling thread alone (the
 * results are the same: fn sees one chunk [0, n) as thread 0). */
void pool_set_solo(pool *p, bool solo);

/* ---- files ------------------------------------------------------------- */

bool file_exists(const char *path);
bool dir_exists(const char *path);
/* Joins a and b with one '/'. Caller frees. */
char *path_join(const char *a, const char *b);
/* Appends the whole file to out. Returns 0 or sets err (naming the file). */
int file_read(const char *path, sb *out, tailor_error *err);
/* mkdir -p. Returns 0 or sets err. */
int mkdir_p(const char *path, tailor_error *err);

#endif /* TAILOR_BASE_H */
