/* llm.h — the built-in LLM engine: GGUF files (read over mmap, and
 * written), tensor types with their scalar and AVX2 kernels, model
 * architectures, tokenizers, the forward pass with its KV cache, sampling
 * and chat templates. Everything under src/llm/ is declared here.
 *
 * Rules: every byte read from a GGUF file is bounds-checked before use;
 * weights stay in the mapping (never copied); numerics follow the
 * reference engine (activations rounded to the weight's dot-product type
 * before each matmul), so results match llama.cpp to its own tolerances.
 * (Q8_0/Q4_0/Q5_0/Q4_K/Q6_K matrices are laid out for the kernels at load
 * into a region of their own, the file's pages released: repack.c.) */
#ifndef TAILOR_LLM_H
#define TAILOR_LLM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"

/* ---- tensor types (ggml numbering, as stored in GGUF) ------------------ */

typedef enum llm_type {
    LLM_TYPE_F32 = 0,
    LLM_TYPE_F16 = 1,
    LLM_TYPE_Q4_0 = 2,
    LLM_TYPE_Q4_1 = 3,
    LLM_TYPE_Q5_0 = 6,
    LLM_TYPE_Q5_1 = 7,
    LLM_TYPE_Q8_0 = 8,
    LLM_TYPE_Q8_1 = 9,
    LLM_TYPE_Q2_K = 10,
    LLM_TYPE_Q3_K = 11,
    LLM_TYPE_Q4_K = 12,
    LLM_TYPE_Q5_K = 13,
    LLM_TYPE_Q6_K = 14,
    LLM_TYPE_Q8_K = 15,
    LLM_TYPE_BF16 = 30,
    LLM_TYPE_COUNT = 40
} llm_type;

typedef struct llm_type_info {
    const char *name; /* "Q8_0"; NULL for numbers tailor does not know */
    int block;        /* values per block */
    int bytes;        /* bytes per block */
    bool supported;   /* tailor can compute with it */
    llm_type dot_type; /* what activations are rounded to for its dot */
} llm_type_info;

/* NULL when t is not a known type number. */
const llm_type_info *llm_type_get(uint32_t t);
/* Bytes of a row of n values; 0 when n is not a multiple of the block. */
size_t llm_row_bytes(llm_type t, int64_t n);
/* Parses "q8_0", "Q4_0", "f16" ...; -1 when unknown. */
int llm_type_from_name(const char *name);

/* Block layouts (bit-compatible with the format). 32-value blocks: */
typedef struct { uint16_t d; uint8_t qs[16]; } blk_q4_0;
typedef struct { uint16_t d, m; uint8_t qs[16]; } blk_q4_1;
typedef struct { uint16_t d; uint8_t qh[4]; uint8_t qs[16]; } blk_q5_0;
typedef struct { uint16_t d, m; uint8_t qh[4]; uint8_t qs[16]; } blk_q5_1;
typedef struct { uint16_t d; int8_t qs[32]; } blk_q8_0;
typedef struct { uint16_t d, s; int8_t qs[32]; } blk_q8_1; /* s = d * sum(qs) */
/* K-quants: 256-value super-blocks with sub-block scales. */
#define QK_K 256
typedef struct { uint8_t scales[16]; uint8_t qs[64]; uint16_t d, dmin; } blk_q2_K;
typedef struct { uint8_t hmask[32]; uint8_t qs[64]; uint8_t scales[12]; uint16_t d; } blk_q3_K;
typedef struct { uint16_t d, dmin; uint8_t scales[12]; uint8_t qs[128]; } blk_q4_K;
typedef struct { uint16_t d, dmin; uint8_t scales[12]; uint8_t qh[32]; uint8_t qs[128]; } blk_q5_K;
typedef struct { uint8_t ql[128]; uint8_t qh[64]; int8_t scales[16]; uint16_t d; } blk_q6_K;
typedef struct { float d; int8_t qs[256]; int16_t bsums[16]; } blk_q8_K; /* activations */

/* K-quant reference code (quant_k.c): dequantize, the format's reference
 * quantizers, and dot products with Q8_K activations. */
void qk_dequant(llm_type t, const void *src, float *dst, int64_t n);
void qk_quant(llm_type t, const float *src, void *dst, int64_t n);
void qk_quant_q8_K(const float *src, void *dst, int64_t n);
float qk_dot_q2_K(const void *w, const void *a, int64_t n);
float qk_dot_q3_K(const void *w, const void *a, int64_t n);
/* The 16 signed 6-bit scales of a Q3_K block (minus 32 applied). */
void qk_q3_scales(const uint8_t *packed, int8_t out[16]);
float qk_dot_q4_K(const void *w, const void *a, int64_t n);
float qk_dot_q5_K(const void *w, const void *a, int64_t n);
float qk_dot_q6_K(const void *w, const void *a, int64_t n);

/* IEEE half and bfloat16 conversions are in base (f16_from_f32,
 * bf16_from_f32 and their inverses). */

/* Reference (scalar) row conversions. n must be a multiple of the block. */
void llm_dequant_row(llm_type t, const void *src, float *dst, int64_t n);
/* The same values with the best kernel set's vector code where it has one. */
void llm_dequant_row_fast(llm_type t, const void *src, float *dst, int64_t n);
/* Quantizes weights with the format's reference quantizer (activations
 * are rounded by the kernels' quant[] entries, as the reference engine
 * rounds them). */
void llm_quant_row(llm_type t, const float *src, void *dst, int64_t n);

/* A dot product of a weight row (type t) with an activation row already in
 * t's dot_type. */
typedef float (*llm_dot_fn)(const void *w, const void *a, int64_t n);
typedef void (*llm_quant_fn)(const float *src, void *dst, int64_t n);
/* nrows (1..LLM_ROWS) consecutive weight rows (w_row bytes apart) times one
 * activation row: out[r] = dot(row r, a). Several rows share each
 * activation load and keep independent accumulators. */
#define LLM_ROWS 4
typedef void (*llm_rows_fn)(const void *w, size_t w_row, const void *a, int64_t n, int nrows, float *out);

/* A tile for prompts: r weight rows times t tokens' activation rows (a_row
 * bytes apart); y[t * y_stride + r]. Each weight block is unpacked once for
 * all the tile's tokens and each activation block once for all its rows;
 * the accumulators stay in registers. The shape is the kernel's own (what
 * its instruction set's registers hold), at most LLM_TILE_MAX_R x
 * LLM_TILE_MAX_T, with r <= LLM_ROWS so the rows kernel takes the edges. */
#define LLM_TILE_MAX_R 4
#define LLM_TILE_MAX_T 32
typedef void (*llm_tile_fn)(const void *w, size_t w_row, const void *a, size_t a_row, int64_t n, float *y,
                            size_t y_stride);
/* Some tiles read their tokens' activations in a layout of their own,
 * made once per product by pack (t activation rows, a_row bytes apart, of
 * n values into dst: pack_bytes per activation block); the tile then gets
 * the packed group as a (a_row unused). A packed layout takes at most 2
 * bytes per value and token. */
typedef void (*llm_pack_fn)(const void *a, size_t a_row, int64_t n, void *dst);
typedef struct llm_tile {
    llm_tile_fn fn; /* NULL: rows or dot */
    int r, t;
    llm_pack_fn pack; /* NULL: the tile reads activation rows */
    int pack_bytes;
} llm_tile;

/* One key block of a prompt's attention (forward.c's blocked path) for R
 * query rows of S values: scores sc[r][j] = scale * Q[r] . K[j] for the
 * LLM_ATT_KB keys of the block (KT: the keys transposed, [S][LLM_ATT_KB]),
 * then the online softmax: with allow[r] keys visible to row r, mx[r] and
 * sum[r] (the running max and sum) are updated, O[r] ([R][S]) rescaled and
 * given sum_j exp(sc[r][j] - mx[r]) V[j]. Rows with allow[r] <= 0 are left
 * as they are. */
#define LLM_ATT_KB 64
typedef void (*llm_att_fn)(int R, int S, const float *Q, const float *KT, const float *V, float *sc, float *O,
                           float *mx, float *sum, const int *allow, float scale);
/* The scalar twin (any S). */
void llm_att_block_ref(int R, int S, const float *Q, const float *KT, const float *V, float *sc, float *O, float *mx,
                       float *sum, const int *allow, float scale);

/* gate[i] = gate[i] / (1 + exp(-gate[i])) * up[i], the reference's way. */
void llm_swiglu_ref(float *gate, const float *up, int64_t n);

/* A prompt's product as an F32 GEMM (F16 weights, forward.c): for 4
 * weight rows of kb values (w_row floats apart) and the tokens of xt (kb
 * rows of n values, xt_row floats apart; n a multiple of 16),
 * yt[r * yt_row + t] += sum_k w[r][k] xt[k][t]. Tokens lie in the vector
 * lanes, each weight value is broadcast once for them all. */
#define LLM_GEMM_ROWS 4
typedef void (*llm_gemm4_fn)(const float *w, size_t w_row, const float *xt, size_t xt_row, int64_t kb, int n, float *yt,
                             size_t yt_row);
/* The scalar twin. */
void llm_gemm4_ref(const float *w, size_t w_row, const float *xt, size_t xt_row, int64_t kb, int n, float *yt,
                   size_t yt_row);

/* Q8_0, Q4_0, Q5_0, Q4_K and Q6_K weights laid out for the kernels (repack.c):
 * 16 rows interleaved block by block, in the same bytes as those 16 rows
 * (LLM_LAYOUT_R16), so one vector holds a block's values of 16 rows and
 * the rows' dot products lie in its lanes. Per block of the group, 16 x
 * the block's bytes, the block's fields in turn: an F16 field as 16
 * halves (the rows' in order); dword fields as parts of 64 bytes, part i
 * holding dword i of each row (row k at 4k); Q5_0's fifth bits as eight
 * 64-bit masks (mask c: bit 4k+i = row k's fifth bit of value 4c+i). So a
 * Q8_0 block is d[16], then qs parts 0..7 (values 4j..4j+3); a Q4_0 block is
 * d[16], then qs parts 0..3 (low nibbles of part j: values
 * 4j..4j+3, high: 16+4j..); Q5_0 d[16], qs parts, masks; Q4_K d[16],
 * dmin[16], 3 scales parts, 32 qs parts; Q6_K 32 ql parts, 16 qh parts,
 * 4 scales parts, d[16].
 * The Q8_0/Q4_0/Q5_0 kernels take the activations (Q8_0 rows) packed per
 * block and token as llm_x8, groups of T tokens block-major
 * ([block][token]); the K-quant kernels take a token's Q8_K row. */
#define LLM_R16 16
struct llm_tensor;
enum { LLM_LAYOUT_ROWS = 0, LLM_LAYOUT_R16 = 1 };
typedef struct { float d; int32_t s; int8_t qs[32]; } llm_x8; /* s = OFF * sum(qs): 128 for Q8_0, 8 for Q4_0, 16 for Q5_0 */
/* 16 rows from w (a group) times T tokens (a packed group): y[t * y_stride + k] = row k . token t. */
typedef void (*llm_r16_fn)(const void *w, const void *a, int64_t n, float *y, size_t y_stride);
typedef struct llm_r16 {
    llm_r16_fn one;  /* T = 1 (generation and the tiles' edges) */
    llm_r16_fn tile; /* T = t; NULL: prompts unpack the rows for the set's own tiles */
    int t;
    /* one token times four groups g_stride bytes apart, side by side (four
     * streams): y[16 * g + k]; NULL: one group at a time */
    void (*four)(const void *w, size_t g_stride, const void *a, int64_t n, float *y);
    bool lay_out;    /* the set's kernels gain from the layout: models are laid out for it */
} llm_r16;
/* Whether t can be laid out so (one of those five types, a matrix of whole groups). */
bool llm_r16_fits(const struct llm_tensor *t);
/* 16 rows in the file's layout (row_bytes apart, n values each) -> one group at dst. */
void llm_r16_pack(llm_type t, const void *rows, size_t row_bytes, int64_t n, void *dst);
/* A group's 16 rows back in the file's layout (row_bytes apart). */
void llm_r16_unpack(llm_type t, const void *group, int64_t n, void *rows, size_t row_bytes);
/* Row k of a group back in the file's layout. */
void llm_r16_unpack_row(llm_type t, const void *group, int64_t n, int k, void *dst);
/* T tokens' Q8_0 rows (a_row bytes apart) -> the kernels' packed group for weights of type wt. */
void llm_r16_pack_acts(llm_type wt, const void *q8, size_t a_row, int T, int64_t n, void *dst);
/* The scalar twin: what every kernel computes, bit for bit; for one token as llm_r16_fn. */
void llm_r16_ref(llm_type t, const void *w, const void *a, int T, int64_t n, float *y, size_t y_stride);
void llm_r16_ref1_q8_0(const void *w, const void *a, int64_t n, float *y, size_t y_stride);
void llm_r16_ref1_q4_0(const void *w, const void *a, int64_t n, float *y, size_t y_stride);
void llm_r16_ref1_q5_0(const void *w, const void *a, int64_t n, float *y, size_t y_stride);
void llm_r16_ref1_q4_K(const void *w, const void *a, int64_t n, float *y, size_t y_stride);
void llm_r16_ref1_q6_K(const void *w, const void *a, int64_t n, float *y, size_t y_stride);
/* Rows [r0, r1) of a matrix in F32, whatever its layout (fast: with the
 * best kernel set's conversions, as llm_dequant_row_fast). */
void llm_tensor_rows(const struct llm_tensor *t, int64_t r0, int64_t r1, float *dst, bool fast);

typedef struct llm_kernels {
    const char *name;                 /* "scalar", "avx2", "avxvnni" or "avx512" */
    llm_dot_fn dot[LLM_TYPE_COUNT];   /* NULL for unsupported types */
    llm_quant_fn quant[LLM_TYPE_COUNT]; /* activation quantizers */
    llm_rows_fn rows[LLM_TYPE_COUNT]; /* NULL: dot row by row */
    llm_tile tile[LLM_TYPE_COUNT];
    llm_att_fn att; /* NULL: attention token by token with the dot kernels */
    void (*swiglu)(float *gate, const float *up, int64_t n); /* gate = silu(gate) * up */
    int att_align;  /* att needs S to be a multiple of this */
    /* A row to F32, bit for bit llm_dequant_row (NULL: that one). */
    void (*deq[LLM_TYPE_COUNT])(const void *src, float *dst, int64_t n);
    llm_gemm4_fn gemm4; /* NULL: F16 prompts go through rows and tiles */
    llm_r16 r16[LLM_TYPE_COUNT]; /* matrices in LLM_LAYOUT_R16 (every set reads the layout) */
} llm_kernels;

const llm_kernels *llm_kernels_scalar(void);
/* The AVX2+FMA+F16C set, or NULL when the CPU lacks it. */
const llm_kernels *llm_kernels_avx2(void);
/* The AVX2 set with AVX-512 (F, BW, VL, VNNI; BF16 where present) prompt
 * tiles, or NULL when the CPU lacks them. */
const llm_kernels *llm_kernels_avx512(void);
/* The AVX2 set with 256-bit AVX-VNNI tiles for the 32-value block types,
 * or NULL when the CPU lacks AVX-VNNI. */
const llm_kernels *llm_kernels_avxvnni(void);
/* A set by name (scalar, avx2, avxvnni, avx512); NULL when unknown or when
 * this CPU cannot run it. */
const llm_kernels *llm_kernels_named(const char *name);
/* The best set for this CPU (avx512, avxvnni, avx2, scalar in that order);
 * $TAILOR_LLM_KERNELS=scalar|avx2|avxvnni|avx512 forces one (a set the CPU cannot run falls back to the best, with a warning). */
const llm_kernels *llm_kernels_best(void);

/* ---- GGUF -------------------------------------------------------------- */

typedef enum llm_gguf_vtype {
    LLM_GGUF_U8 = 0,
    LLM_GGUF_I8 = 1,
    LLM_GGUF_U16 = 2,
    LLM_GGUF_I16 = 3,
    LLM_GGUF_U32 = 4,
    LLM_GGUF_I32 = 5,
    LLM_GGUF_F32 = 6,
    LLM_GGUF_BOOL = 7,
    LLM_GGUF_STR = 8,
    LLM_GGUF_ARR = 9,
    LLM_GGUF_U64 = 10,
    LLM_GGUF_I64 = 11,
    LLM_GGUF_F64 = 12,
    LLM_GGUF_NTYPES = 13
} llm_gguf_vtype;

typedef struct llm_str {
    const char *s; /* NUL-terminated copy (may hold inner NULs: use n) */
    uint64_t n;
} llm_str;

typedef struct llm_gguf_kv {
    const char *key;
    uint32_t type;     /* llm_gguf_vtype */
    uint32_t arr_type; /* element type when type == LLM_GGUF_ARR */
    uint64_t n;        /* array length */
    union {
        uint64_t u;
        int64_t i;
        double f;
        llm_str str;
        const void *arr; /* aligned copy: llm_str[] for strings, else raw */
    } v;
} llm_gguf_kv;

typedef struct llm_tensor {
    const char *name;
    uint32_t n_dims;
    int64_t ne[4];     /* ne[0] = row length (ggml order) */
    llm_type type;
    uint64_t offset;   /* from the start of the data section */
    const void *data;  /* inside the mapping */
    size_t bytes;
    int layout;        /* LLM_LAYOUT_ROWS as in the file; LLM_LAYOUT_R16 once laid out for the kernels */
} llm_tensor;

typedef struct llm_gguf {
    char *path;
    void *map;
    size_t size;
    uint32_t version;
    uint32_t alignment;
    size_t data_offset;
    int64_t n_kv, n_tensors;
    llm_gguf_kv *kv;
    llm_tensor *tensors;
    hmap kv_index, tensor_index;
    arena strings; /* keys, string values, array copies */
} llm_gguf;

/* Maps and validates a GGUF v2/v3 file (every count, size, offset, string
 * and type checked). *out is owned by the caller: llm_gguf_free. */
int llm_gguf_open(const char *path, llm_gguf **out, tailor_error *err);
/* Same over a caller's buffer (borrowed for the object's lifetime); used
 * by the fuzz target and tests. */
int llm_gguf_open_buffer(const void *buf, size_t n, const char *name, llm_gguf **out,
                         tailor_error *err);
void llm_gguf_free(llm_gguf *g);

const llm_gguf_kv *llm_gguf_find(const llm_gguf *g, const char *key);
const llm_tensor *llm_gguf_tensor(const llm_gguf *g, const char *name);
/* Typed getters: false when absent or of an incompatible type (integers of
 * any width convert when in range). */
bool llm_gguf_get_u32(const llm_gguf *g, const char *key, uint32_t *out);
bool llm_gguf_get_f32(const llm_gguf *g, const char *key, float *out);
bool llm_gguf_get_bool(const llm_gguf *g, const char *key, bool *out);
const char *llm_gguf_get_str(const llm_gguf *g, const char *key); /* NULL if absent */
const char *llm_gguf_vtype_name(uint32_t t);

/* Writer: collects metadata and tensors, then writes one file (to a
 * temporary name, renamed on success). Tensor data is borrowed until
 * llm_gguf_writer_write returns. */
typedef struct llm_gguf_writer llm_gguf_writer;
llm_gguf_writer *llm_gguf_writer_new(void);
void llm_gguf_writer_free(llm_gguf_writer *w);
void llm_gguf_set_u32(llm_gguf_writer *w, const char *key, uint32_t v);
void llm_gguf_set_i32(llm_gguf_writer *w, const char *key, int32_t v);
void llm_gguf_set_f32(llm_gguf_writer *w, const char *key, float v);
void llm_gguf_set_bool(llm_gguf_writer *w, const char *key, bool v);
void llm_gguf_set_str(llm_gguf_writer *w, const char *key, const char *v);
/* Arrays: elements copied. type is the element type. */
void llm_gguf_set_arr(llm_gguf_writer *w, const char *key, uint32_t type, const void *data,
                      uint64_t n);
void llm_gguf_set_arr_str(llm_gguf_writer *w, const char *key, const llm_str *v, uint64_t n);
/* Copies one key/value (any type) from a file being read. */
void llm_gguf_set_kv(llm_gguf_writer *w, const llm_gguf_kv *kv);
void llm_gguf_add_tensor(llm_gguf_writer *w, const char *name, llm_type type, uint32_t n_dims,
                         const int64_t *ne, const void *data);
int llm_gguf_writer_write(llm_gguf_writer *w, const char *path, tailor_error *err);

/* ---- vocabulary and tokenizers ----------------------------------------- */

typedef enum llm_vocab_kind { LLM_VOCAB_SPM = 1, LLM_VOCAB_BPE = 2, LLM_VOCAB_WPM = 3 } llm_vocab_kind;

/* Token attributes (bit set). */
enum {
    LLM_TOK_NORMAL = 1 << 0,
    LLM_TOK_UNKNOWN = 1 << 1,
    LLM_TOK_CONTROL = 1 << 2,
    LLM_TOK_USER = 1 << 3,
    LLM_TOK_UNUSED = 1 << 4,
    LLM_TOK_BYTE = 1 << 5,
    LLM_TOK_RSTRIP = 1 << 6,
    LLM_TOK_LSTRIP = 1 << 7
};

typedef struct llm_vocab llm_vocab;

/* Reads tokenizer.ggml.* from g (which must outlive the vocab). */
int llm_vocab_load(const llm_gguf *g, llm_vocab **out, tailor_error *err);
void llm_vocab_free(llm_vocab *v);
int32_t llm_vocab_size(const llm_vocab *v);
int32_t llm_vocab_bos(const llm_vocab *v); /* -1 when none */
int32_t llm_vocab_eos(const llm_vocab *v);
bool llm_vocab_add_bos(const llm_vocab *v);
bool llm_vocab_add_space_prefix(const llm_vocab *v);
bool llm_vocab_is_eog(const llm_vocab *v, int32_t id);
const char *llm_vocab_kind_name(const llm_vocab *v);
const char *llm_vocab_pre_name(const llm_vocab *v);
/* Token id of an exact token text, -1 when none. */
int32_t llm_vocab_find(const llm_vocab *v, const char *text, size_t n);
const llm_str *llm_vocab_text(const llm_vocab *v, int32_t id);

/* Tokenizes text (n bytes) into out (capacity cap). add_special adds BOS
 * (and EOS) as the vocabulary says; parse_special turns control-token text
 * into its token. Returns the number of tokens, or -(needed) when cap is too
 * small (out then holds the first cap). */
int64_t llm_tokenize(const llm_vocab *v, const char *text, size_t n, bool add_special,
                     bool parse_special, int32_t *out, int64_t cap);
/* The same into a new array (the caller frees it, with room for one more
 * id); *count receives the number of ids. */
int32_t *llm_tokenize_alloc(const llm_vocab *v, const char *text, size_t n, bool add_special, bool parse_special,
                            int64_t *count);
/* Appends the bytes of one token (special: render control tokens). */
void llm_token_piece(const llm_vocab *v, int32_t id, bool special, sb *out);
/* Appends the text of a token sequence (the reference's detokenize with
 * remove_special=false). */
void llm_detokenize(const llm_vocab *v, const int32_t *ids, int64_t n, bool special, sb *out);

/* ---- model ------------------------------------------------------------- */

typedef enum llm_arch { LLM_ARCH_LLAMA = 1, LLM_ARCH_QWEN2, LLM_ARCH_QWEN3, LLM_ARCH_BERT } llm_arch;

/* A BERT encoder's weights (bert.c). */
typedef struct llm_bert llm_bert;

typedef struct llm_layer {
    const llm_tensor *attn_norm, *wq, *wk, *wv, *wo, *bq, *bk, *bv, *q_norm, *k_norm;
    const llm_tensor *ffn_norm, *ffn_gate, *ffn_up, *ffn_down;
} llm_layer;

typedef struct llm_hparams {
    int32_t n_vocab, n_ctx_train, n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff;
    int32_t rope_dim;
    float rope_base, rope_freq_scale, rms_eps;
    bool rope_neox;
} llm_hparams;

typedef struct llm_model {
    llm_gguf *gguf;
    llm_arch arch;
    const char *arch_name;
    llm_hparams hp;
    const llm_tensor *tok_embd, *output_norm, *output;
    const llm_tensor *rope_freqs; /* per-pair frequency divisors, or NULL */
    llm_layer *layers;
    llm_vocab *vocab;
    const char *chat_template; /* tokenizer.chat_template, or NULL */
    bool vocab_only;           /* loaded for tokenization only: no weights */
    llm_bert *bert;            /* LLM_ARCH_BERT: the encoder (embeddings only, no generation) */
    void *laid;                /* the laid-out matrices' region (repack.c), or NULL */
    size_t laid_bytes;
} llm_model;

/* BERT embedding models (bert.c): loading (weights dequantized to F32),
 * the file's pooling (1 mean, 2 CLS), and the encoder: out[n x n_embd]
 * hidden states; states (may be NULL) receives 6 x n x n_embd: the input
 * sum, its LayerNorm, then after each of the first two blocks' attention
 * and feed-forward (llama.cpp's inp_embd, inp_norm, ffn_inp-0, l_out-0,
 * ffn_inp-1, l_out-1). */
int llm_bert_load(llm_model *m, tailor_error *err);
void llm_bert_free(llm_bert *b);
int llm_bert_pooling(const llm_model *m);
int llm_bert_forward(const llm_model *m, const int32_t *ids, int n, float *out, float *states, tailor_error *err);

/* Loads a model (vocabulary included). Refuses unknown architectures,
 * missing or misshapen tensors and unsupported tensor types, by name. */
int llm_model_load(const char *path, llm_model **out, tailor_error *err);
/* vocab_only: read just the tokenizer (vocabulary-only files, or any
 * architecture); such a model cannot get a context. */
int llm_model_load_ex(const char *path, bool vocab_only, llm_model **out, tailor_error *err);
void llm_model_free(llm_model *m);
size_t llm_model_weight_bytes(const llm_model *m);
/* Lays the model's matrices out for the kernel set k, the types whose
 * r16.lay_out it sets (repack.c; at load, for the best set; the other sets
 * read the layout too). $TAILOR_LLM_REPACK=0 keeps the file's layout. */
int llm_model_lay_out(llm_model *m, const llm_kernels *k, tailor_error *err);

/* ---- inference context ------------------------------------------------- */

typedef struct llm_ctx_params {
    int32_t n_ctx;     /* 0 = min(model's training context, 4096) */
    int32_t n_threads; /* 0 = all cores */
    const llm_kernels *kernels; /* NULL = best for this CPU */
    llm_type kv_type;  /* KV cache: F32 (default, exact), F16 or Q8_0 */
} llm_ctx_params;

llm_ctx_params llm_ctx_default_params(void);

typedef struct llm_ctx llm_ctx;

/* LoRA adapters (lora.c), llama.cpp's adapter GGUF: pairs (A, B) for the
 * weights of the blocks and the output; loaded against a base model
 * (every name and shape checked) and applied by a context at run time. */
enum { LLM_LORA_Q, LLM_LORA_K, LLM_LORA_V, LLM_LORA_O, LLM_LORA_GATE, LLM_LORA_UP, LLM_LORA_DOWN, LLM_LORA_SLOTS };
typedef struct llm_lora_pair {
    const llm_tensor *a, *b; /* A [n_in, r], B [r, n_out] (ggml order); NULL: no pair */
} llm_lora_pair;
typedef struct llm_lora {
    llm_gguf *gguf;
    float alpha;          /* adapter.lora.alpha (0: the factor is the scale alone) */
    int32_t n_layer;
    llm_lora_pair *pairs; /* [n_layer][LLM_LORA_SLOTS] */
    llm_lora_pair output;
    int n_pairs;
    int32_t max_rank;
    int64_t max_out;
} llm_lora;
int llm_lora_load(const llm_model *base, const char *path, llm_lora **out, tailor_error *err);
void llm_lora_free(llm_lora *l);
/* s in y = W x + s B (A x): scale * alpha / rank. */
float llm_lora_factor(const llm_lora *l, const llm_lora_pair *p, float scale);

int llm_ctx_new(const llm_model *m, llm_ctx_params p, llm_ctx **out, tailor_error *err);
/* Applies adapter l (loaded for this context's model; borrowed, it must
 * outlive its use) at scale in every later decode; NULL removes it. The
 * cache is cleared: what it holds was computed with the old weights. */
int llm_ctx_set_lora(llm_ctx *c, const llm_lora *l, float scale, tailor_error *err);
/* The same with an adapter file the context loads and owns (freed with it). */
int llm_ctx_load_lora(llm_ctx *c, const char *path, float scale, tailor_error *err);
void llm_ctx_free(llm_ctx *c);
const llm_model *llm_ctx_model(const llm_ctx *c);
int32_t llm_ctx_n_ctx(const llm_ctx *c);
int32_t llm_ctx_n_past(const llm_ctx *c);
/* Drops the cache from position pos on (0 = start over). */
void llm_ctx_truncate(llm_ctx *c, int32_t pos);
/* Runs tokens at positions n_past.. and appends them to the cache.
 * all_logits: keep logits for every token, else only for the last. */
int llm_decode(llm_ctx *c, const int32_t *tokens, int32_t n, bool all_logits, tailor_error *err);
/* Logits of the i-th token of the last decode (i = -1: the last). */
const float *llm_ctx_logits(const llm_ctx *c, int32_t i);
/* Test hook: when set, each decode writes the residual after every block
 * and the final-norm output, [n_layer + 1][n][n_embd], into buf. */
void llm_ctx_capture_states(llm_ctx *c, float *buf);
/* Final-norm hidden state of every token of the last decode [n][n_embd]
 * (for embeddings). */
const float *llm_ctx_hidden(const llm_ctx *c);

/* ---- sampling ---------------------------------------------------------- */

typedef struct llm_sampler_params {
    float temperature;    /* <= 0: greedy */
    int32_t top_k;        /* <= 0: off */
    float top_p;          /* >= 1: off */
    float min_p;          /* <= 0: off */
    float repeat_penalty; /* 1: off */
    float presence_penalty;
    int32_t penalty_last_n; /* tokens looked back for penalties */
    uint64_t seed;
} llm_sampler_params;

llm_sampler_params llm_sampler_default_params(void);

typedef struct llm_sampler llm_sampler;
llm_sampler *llm_sampler_new(llm_sampler_params p, int32_t n_vocab);
void llm_sampler_free(llm_sampler *s);
/* Picks a token from logits (not modified); history is the tokens so far
 * (for penalties). */
int32_t llm_sampler_sample(llm_sampler *s, const float *logits, const int32_t *history,
                           int64_t n_history);
/* The same, drawing only among tokens with allow[token] != 0 (as if the
 * others had a logit of minus infinity; the same draw for the same seed),
 * at a cost that follows the allowed count; -1 when none is allowed. */
int32_t llm_sampler_sample_masked(llm_sampler *s, const float *logits, const unsigned char *allow,
                                  const int32_t *history, int64_t n_history);

/* ---- grammars (grammar.c, jsonschema.c) -------------------------------- */

/* A GBNF grammar (llama.cpp's syntax: rules `name ::= ...`, "literals",
 * [character sets], [^negated], `.`, groups, alternatives, *, +, ?,
 * {m}, {m,}, {m,n}, # comments) compiled into a matcher that follows text
 * as it is generated. Errors name the line and column. */
typedef struct llm_grammar llm_grammar;
/* root: the start rule (NULL = "root"). */
int llm_grammar_parse(const char *text, size_t n, const char *root, llm_grammar **out, tailor_error *err);
void llm_grammar_free(llm_grammar *g);
/* Back to the start (nothing matched yet). */
void llm_grammar_reset(llm_grammar *g);
/* Advances over text when it can continue a valid string (false: it
 * cannot, and nothing changes). */
bool llm_grammar_accept_text(llm_grammar *g, const char *s, size_t n);
/* Whether text could be accepted, without accepting it. */
bool llm_grammar_check_text(llm_grammar *g, const char *s, size_t n);
/* The text so far is a complete match / can be continued. */
bool llm_grammar_complete(const llm_grammar *g);
bool llm_grammar_can_continue(const llm_grammar *g);
/* Token level: the vocabulary's byte strings (once per grammar). */
int llm_grammar_bind_vocab(llm_grammar *g, const llm_vocab *v);
/* allowed[token] for the current state (owned by the grammar, valid until
 * its next call): tokens whose text can continue, and end-of-generation
 * tokens when the text is complete. Cached per matcher state. */
const unsigned char *llm_grammar_mask(llm_grammar *g);
bool llm_grammar_token_allowed(llm_grammar *g, int32_t tok);
/* Matcher states created so far (for measurements). */
size_t llm_grammar_states(const llm_grammar *g);
/* Appends src with every rule renamed: root -> prefix, NAME -> prefix-NAME,
 * so that several grammars can be joined in one. */
void llm_grammar_rename(const char *src, const char *prefix, sb *out);
/* Appends GBNF rules that match exactly the given strings (a trie: one rule
 * per branching point, named rule and rule-tN), so that a name can be
 * decoded only as one of them. Strings that are empty, longer than
 * LLM_TRIE_MAX_LEN bytes or not UTF-8 are left out; returns how many
 * distinct strings the rule matches. */
#define LLM_TRIE_MAX_LEN 256
size_t llm_grammar_trie(const char *const *strs, size_t n, const char *rule, sb *out);

/* JSON Schema (the subset tools need: type, properties, required, enum,
 * const, anyOf/oneOf, items, min/maxItems, min/maxLength, integer and
 * number bounds, $ref to $defs/definitions) -> GBNF text whose strings are
 * exactly the JSON values the schema accepts, within bounds that make
 * every generation end: strings without maxLength get at most
 * LLM_SCHEMA_MAX_STRING characters, arrays without maxItems at most
 * LLM_SCHEMA_MAX_ITEMS, whitespace between tokens at most one space.
 * Unsupported keywords are an error naming their path. */
#define LLM_SCHEMA_MAX_STRING 200
#define LLM_SCHEMA_MAX_ITEMS 32
int llm_schema_to_gbnf(const char *schema_json, sb *out, tailor_error *err);
/* Validates a JSON text against a schema (the same subset); the error
 * names the path ($.items[2].id) and the rule broken. */
int llm_schema_validate(const char *schema_json, const char *json, tailor_error *err);

/* ---- chat templates and embeddings ------------------------------------ */

typedef struct llm_chat_msg {
    const char *role; /* system, user, assistant */
    const char *content;
} llm_chat_msg;

/* The format a template uses: a name (chatml, llama3, llama2, mistral,
 * zephyr, phi3) given as is, or recognised in a tokenizer.chat_template;
 * NULL when unknown. Static strings. */
const char *llm_chat_detect(const char *tmpl);
const char *llm_chat_formats(void);
/* Appends the conversation in the format to out (special-token text
 * included: tokenize with parse_special). eos_text ends turns in formats
 * that close them with the EOS token. */
int llm_chat_format(const char *format, const char *eos_text, const llm_chat_msg *msgs, int n, bool add_assistant,
                    sb *out, tailor_error *err);

/* LLM_POOL_MODEL: what the file says (BERT: its pooling_type; others: mean). */
typedef enum llm_pooling { LLM_POOL_MEAN = 0, LLM_POOL_LAST = 1, LLM_POOL_CLS = 2, LLM_POOL_MODEL = 3 } llm_pooling;
/* Embeds text (BOS as the vocabulary says) into out[n_embd], L2-normalised.
 * Uses and then clears the context's cache. */
int llm_embed(llm_ctx *c, const char *text, size_t n, llm_pooling pooling, float *out, tailor_error *err);

/* ---- file types and quantization --------------------------------------- */

/* A file type as people download them (Q4_K_M, Q8_0, F16 ...). */
typedef struct llm_ftype {
    const char *name; /* "q4_k_m" */
    int file_type;    /* general.file_type number */
    llm_type base;    /* the type most matrices get */
} llm_ftype;

int llm_ftype_from_name(const char *name, llm_ftype *out); /* -1 when unknown */
const char *llm_ftype_names(void);
/* The type the reference quantizer gives a matrix: name (blk.N....), its row
 * length, whether it is the output matrix (or the tied embedding), its
 * layer and the number of layers. */
llm_type llm_ftype_tensor_type(const llm_ftype *f, const char *name, int64_t row, bool is_output, int layer,
                               int n_layer);
/* Converts every matrix of in to the file type (norms and biases stay F32),
 * copying the metadata, with n_threads (0 = all cores). */
int llm_quantize(const char *in, const char *out, const llm_ftype *f, int n_threads, tailor_error *err);

/* The machine's read bandwidth in GB/s with n threads (1 GiB buffer). */
double llm_read_bandwidth_gbs(int threads);
/* The name of a general.file_type number ("q4_k_m"), or NULL. */
const char *llm_ftype_name(int file_type);

/* ---- synthetic models ------------------------------------------------- */

/* The shape of a real model: what `tailor llm synth` reproduces. */
typedef struct llm_shape {
    const char *name, *arch;
    int32_t n_embd, n_layer, n_head, n_head_kv, n_ff, n_vocab, n_ctx;
    float rope_base, rms_eps;
    bool tied;
    const char *pre;  /* BPE pre-tokenizer, NULL for SentencePiece */
    const char *chat; /* chat format: chatml, llama3, zephyr */
} llm_shape;

const llm_shape *llm_shape_find(const char *name); /* NULL when unknown */
const char *llm_shape_names(void);
/* Writes a model of shape s with seeded random weights in file type f (each
 * tensor typed as the reference quantizer would), its vocabulary taken
 * from vocab_path. */
int llm_synth(const llm_shape *s, const llm_ftype *f, const char *vocab_path, const char *out, uint64_t seed,
              tailor_error *err);

/* ---- generation -------------------------------------------------------- */

/* Receives generated text as it is produced; return false to stop. */
typedef bool (*llm_stream_fn)(void *ud, const char *text, size_t n);

typedef struct llm_gen_params {
    int32_t n_predict; /* new tokens at most; -1 = until EOG or the context is full */
    llm_sampler_params sampling;
    const char *const *stop; /* stop strings (borrowed), n_stop of them */
    int n_stop;
    bool stop_at_eog; /* end at an end-of-generation token */
    /* Constrains the output to the grammar's strings, from the grammar's
     * current state (borrowed; NULL = none). Generation ends when the text
     * is complete and nothing can follow, or on end-of-generation, which is
     * allowed only when the text is complete. */
    llm_grammar *grammar;
    /* Called with each token sampled and the logits of its step (before
     * any grammar mask or sampling), NULL = none: how log-probabilities are
     * reported. */
    void (*on_token)(void *ud, int32_t token, const float *logits);
    void *token_ud;
} llm_gen_params;

typedef struct llm_gen_stats {
    int64_t prompt_tokens, gen_tokens;
    double prompt_s, gen_s;
    bool eog; /* ended on an end-of-generation token */
    bool grammar_done; /* ended because the grammar's text was complete */
    int64_t masked;    /* tokens sampled under a full grammar mask */
} llm_gen_stats;

llm_gen_params llm_gen_default_params(void);
/* Decodes the prompt (after what the context already holds), then samples
 * up to n_predict tokens, streaming their text (stop strings withheld). */
int llm_generate(llm_ctx *c, const int32_t *prompt, int64_t n_prompt, const llm_gen_params *p,
                 llm_stream_fn cb, void *ud, llm_gen_stats *st, tailor_error *err);

/* ---- backends ----------------------------------------------------------- */

/* One interface for everything that can take a conversation and answer it
 * or ask for tools: the built-in engine, an OpenAI-compatible server, and
 * the rules that need no model at all. The agent never knows which one it
 * has. */

typedef struct llm_msg {
    const char *role;       /* system, user, assistant, tool */
    const char *content;    /* text (a tool's result for role tool) */
    const char *name;       /* role tool: the tool's name */
    const char *tool_calls; /* role assistant: the calls it made, a JSON array of {"name", "arguments"} */
} llm_msg;

typedef struct llm_tool_def {
    const char *name, *description;
    const char *schema; /* JSON Schema of the arguments */
} llm_tool_def;

/* A conversation (tool calls and results included) as the local backend
 * shows it to a model: format's chat template, the tools described in the
 * system message and called in the format's convention (Qwen's
 * <tool_call>, Llama 3's JSON, Mistral's [TOOL_CALLS], else generic JSON);
 * with add_generation_prompt the assistant's turn opened. Appends to out.
 * What the fine-tuner renders tool-calling examples with. */
int llm_chat_render_tools(const llm_model *m, const char *format, const llm_msg *msgs, int n, const llm_tool_def *tools,
                          int n_tools, bool add_generation_prompt, sb *out, tailor_error *err);

typedef struct llm_tool_call {
    char *name;
    char *arguments; /* JSON text */
} llm_tool_call;

typedef struct llm_reply {
    char *text;            /* the answer, when no tool is called */
    llm_tool_call *calls;  /* or the tool calls */
    int n_calls;
} llm_reply;
void llm_reply_deinit(llm_reply *r);

/* Whether the reply may (auto), must (required) or may not (none) call
 * tools: OpenAI's tool_choice. */
typedef enum llm_tool_choice { LLM_TOOLS_NONE = 0, LLM_TOOLS_AUTO, LLM_TOOLS_REQUIRED } llm_tool_choice;

/* Tokens a call read and wrote, and whether its reply hit the length limit. */
typedef struct llm_usage {
    int64_t prompt_tokens, completion_tokens;
    double seconds; /* generating */
    bool truncated;
} llm_usage;

/* One model server of a remote backend, as /metrics shows it. */
#define LLM_UPSTREAM_BUCKETS 10
extern const double llm_upstream_bucket_le[LLM_UPSTREAM_BUCKETS]; /* seconds; the last is +Inf */
typedef struct llm_upstream_stats {
    char url[256];       /* its base URL */
    bool up;             /* taking requests: its breaker is closed (or trying again) */
    uint64_t ok;         /* replies (2xx) */
    uint64_t refused;    /* 4xx other than 429: the server answered, the request was at fault */
    uint64_t failed;     /* connection errors, stalls, 429 and 5xx */
    uint64_t failovers;  /* requests that failed here and went on to another server */
    uint64_t breaker_opens;
    double seconds;      /* summed over the replies */
    uint64_t le[LLM_UPSTREAM_BUCKETS]; /* replies by time, cumulative */
} llm_upstream_stats;

/* A generated token's log-probability (natural log) and the most likely
 * tokens of its step, as OpenAI's logprobs report them: token texts as the
 * tokenizer spells them (a leading space included). */
typedef struct llm_top_logprob {
    char *text;
    float logprob;
} llm_top_logprob;
typedef struct llm_token_logprobs {
    char *text;
    float logprob;
    int n_top;
    llm_top_logprob *top; /* most likely first */
} llm_token_logprobs;
void llm_token_logprobs_free(llm_token_logprobs *v, int n);

typedef struct llm_backend llm_backend;
typedef struct llm_backend_ops {
    const char *name; /* "rules", "local", "remote" */
    /* Answers the conversation, or calls tools (as choice allows, and only
     * when n_tools > 0): the answer's text streams through cb (may be NULL). */
    int (*complete)(llm_backend *b, const llm_msg *msgs, int n, const llm_tool_def *tools, int n_tools,
                    llm_tool_choice choice, llm_stream_fn cb, void *ud, llm_reply *out, tailor_error *err);
    /* Optional (NULL: the backend cannot constrain its text): names that
     * an answer may mention between [[ and ]]; a mention of anything else
     * cannot be decoded. The agent renders mentions in any case. */
    int (*set_mentions)(llm_backend *b, const char *const *names, size_t n, tailor_error *err);
    /* Optional (NULL: not available): structured output, an answer that is
     * JSON the schema accepts (the subset of llm_schema_to_gbnf), streamed
     * through cb; *out malloc'd. Checked against the schema whatever the
     * backend: an answer it refuses is an error naming the path. */
    int (*complete_json)(llm_backend *b, const llm_msg *msgs, int n, const char *schema, llm_stream_fn cb, void *ud,
                         char **out, tailor_error *err);
    /* Optional (NULL: not available): text as an L2-normalised vector,
     * *out malloc'd with *dim numbers. */
    int (*embed)(llm_backend *b, const char *text, size_t n, float **out, int32_t *dim, tailor_error *err);
    int32_t (*count_tokens)(llm_backend *b, const char *text, size_t n);
    int32_t (*context_size)(llm_backend *b);
    /* Optional (NULL: fixed at creation): the sampling of the calls that
     * follow and the most tokens a reply may have (0: the backend's own);
     * p NULL goes back to the settings the backend was made with. */
    void (*set_sampling)(llm_backend *b, const llm_sampler_params *p, int32_t max_tokens);
    /* Optional: a plain completion of prompt (no chat template), stopping
     * at any of the stop strings; *out malloc'd. */
    int (*complete_text)(llm_backend *b, const char *prompt, const char *const *stop, int n_stop, llm_stream_fn cb,
                         void *ud, char **out, tailor_error *err);
    /* Optional: complete_text that also reports, for each token generated,
     * its log-probability and those of the top_n most likely tokens at its
     * step (*lp malloc'd, *n_lp entries; llm_token_logprobs_free). The
     * language model as a scorer (the ranker's letters) on any backend. */
    int (*complete_logprobs)(llm_backend *b, const char *prompt, int top_n, const char *const *stop, int n_stop,
                             char **text, llm_token_logprobs **lp, int *n_lp, tailor_error *err);
    /* Optional: complete (an answer, no tools) that also reports each
     * token's log-probability and the top_n likeliest at its step, as
     * complete_logprobs does: OpenAI's chat logprobs. */
    int (*chat_logprobs)(llm_backend *b, const llm_msg *msgs, int n, int top_n, char **text,
                         llm_token_logprobs **lp, int *n_lp, tailor_error *err);
    /* Optional: what the last call cost. */
    void (*last_usage)(llm_backend *b, llm_usage *out);
    void (*free)(llm_backend *b);
    /* Optional: the servers behind the backend and how they fare, at most
     * cap of them; returns how many there are (remote only). */
    int (*upstreams)(llm_backend *b, llm_upstream_stats *out, int cap);
    /* Whether calls may run at once from several threads (the backend
     * locks what it shares; set_sampling applies to the calling thread;
     * no last_usage): a server then need not queue them. */
    bool concurrent;
} llm_backend_ops;

struct llm_backend {
    const llm_backend_ops *ops;
    void *impl;
};

/* The built-in engine (local.c): tool calls in the model's own template
 * convention (Qwen <tool_call> for ChatML, Llama 3 JSON, Mistral
 * [TOOL_CALLS], generic JSON otherwise), decoded under a grammar of the
 * tools' schemas, so the output is always valid calls or an answer. */
typedef struct llm_local_params {
    const char *model;       /* GGUF file */
    const char *chat_format; /* NULL: from the model's template */
    llm_ctx_params ctx;
    llm_sampler_params sampling;
    int32_t max_answer;      /* new tokens per reply at most */
    const char *lora;        /* a LoRA adapter applied to the model (NULL: none) */
    float lora_scale;        /* its scale (llm_local_default_params: 1) */
} llm_local_params;
llm_local_params llm_local_default_params(void);
int llm_local_backend_new(const llm_local_params *p, llm_backend **out, tailor_error *err);
/* "qwen", "llama3", "mistral" or "generic". */
const char *llm_local_tool_style(const llm_backend *b);

/* An OpenAI-compatible server (remote.c): /chat/completions, streamed.
 * Several servers (a fleet: url is a comma-separated list) take requests
 * in turn; a request that fails on one with a connection error, a stall
 * before any output, 429 or 5xx is sent once to another; a server that
 * fails breaker_failures times in a row is skipped for breaker_cooldown_ms
 * (then one request tries it again), and a thread checks every server's
 * GET .../models every health_interval_ms (a failed check takes a server
 * out, a passing one brings it back). One server keeps retrying itself
 * with backoff (retries) instead. */
typedef struct llm_remote_params {
    const char *url;          /* http://host:port/v1 (or the full .../chat/completions); a fleet: several, comma-separated */
    const char *model;        /* the server's model name */
    const char *api_key;      /* NULL: $TAILOR_LLM_API_KEY (none when unset) */
    long connect_timeout_ms;  /* default 5000 */
    long read_timeout_s;      /* no byte for this long: a stall (default 60) */
    int retries;              /* on 429, 5xx and connection errors (default 3) */
    llm_sampler_params sampling; /* temperature, top_p, seed are sent */
    int32_t max_tokens;
    int32_t n_ctx;            /* the server model's context, for budgets (default 8192) */
    int breaker_failures;     /* a fleet: failures in a row that take a server out (default 3) */
    long breaker_cooldown_ms; /* and for how long before it is tried again (default 10000) */
    long health_interval_ms;  /* a fleet: how often every server is checked (default 5000; < 0: never) */
} llm_remote_params;
llm_remote_params llm_remote_default_params(void);
int llm_remote_backend_new(const llm_remote_params *p, llm_backend **out, tailor_error *err);

/* ---- training bridge (train.c): GGUF models <-> nn's trainable llama ---- */

struct nn_llama;
struct nn_llama_config;
/* The trainable configuration of a llama or qwen2 model (others refused). */
int llm_train_config(const llm_model *m, struct nn_llama_config *c, tailor_error *err);
/* The configuration `llm train` builds: a named shape (shape) or a JSON file
 * (config: {"arch", "n_embd", "n_layer", "n_head", "n_head_kv", "n_ff",
 * "rope_base", "rms_eps", "tied"}), with the tokenizer's n_vocab; *arch is
 * "llama" or "qwen2". */
int llm_train_shape(const char *shape, const char *config, int32_t n_vocab, struct nn_llama_config *c, const char **arch,
                    tailor_error *err);
/* The model's weights as training parameters (quantized ones dequantized). */
int llm_train_from_model(const llm_model *m, struct nn_llama **out, tailor_error *err);
/* The model as a frozen base for LoRA (QLoRA-style): its matrices stay in
 * the file's type, mapped, and are dequantized one at a time just before
 * each product; only norms and biases are copied. m must outlive *out. */
int llm_train_frozen(const llm_model *m, struct nn_llama **out, tailor_error *err);
/* Writes t as an F32 GGUF of architecture arch ("llama" or "qwen2") with
 * the tokenizer.* metadata of tokenizer; loads in the engine and llama.cpp.
 * tool_prompt ("brief", or NULL: tokenizer's own tailor.tool_prompt, if
 * any) is how the local backend describes tools to the model: "brief",
 * one line of names per tool, for small models trained to call them. */
int llm_train_write(const struct nn_llama *t, const char *arch, const char *name, const llm_gguf *tokenizer, int n_ctx,
                    const char *tool_prompt, const char *path, tailor_error *err);

/* Training from scratch (trainer.c): see the file's comment. */
typedef struct llm_train_params {
    const char *data;       /* text: one document per non-empty line */
    int ctx, batch;         /* tokens per sequence (128), sequences per step (16) */
    int64_t steps;          /* optimizer steps (1000) */
    float lr, weight_decay, clip; /* 1e-3, 0.1, 1.0 (global gradient norm) */
    int warmup;             /* steps of linear warm-up (-1: 5% of steps) */
    double val_share;       /* windows held out (0.05) */
    int eval_every;         /* validation loss every this many steps (100) */
    const char *checkpoint; /* saved every ckpt_every steps and at the end (NULL: none) */
    int ckpt_every;         /* (200) */
    bool resume;            /* continue from the checkpoint */
    int64_t until;          /* stop (checkpointed) after this step; the schedule stays steps' (0: steps) */
    uint64_t seed;          /* the data order */
    int threads;            /* 0: all cores */
    bool quiet;
} llm_train_params;
llm_train_params llm_train_default_params(void);
typedef struct llm_train_report {
    double first_loss, loss, val_loss, seconds;
    int64_t steps, resumed_at, tokens; /* tokens trained on in this run */
    int64_t data_tokens, train_windows, val_windows;
    int batch, width; /* fine-tuning: examples per step, tokens per example (the longest) */
    /* fine-tuning with eval_every: the step whose weights were kept (the
     * lowest validation loss, which val_loss then is) and the last step's */
    int64_t best_step;
    double last_val_loss;
    int evals;
} llm_train_report;
/* The token stream `llm train` reads from a text file: every non-empty
 * line a document, tokenized with the vocabulary's BOS (malloc'd; *docs,
 * may be NULL, counts the lines). NULL when the file cannot be read. */
int32_t *llm_train_tokens(const llm_vocab *v, const char *path, int64_t *n, int64_t *docs, tailor_error *err);
/* GPT-2's initialisation, seeded. */
void llm_train_init(struct nn_llama *m, uint64_t seed);
int llm_train_run(struct nn_llama *m, const llm_vocab *v, llm_train_params p, llm_train_report *out,
                  tailor_error *err);

/* Fine-tuning (trainer.c) on JSON Lines: {"messages": [...]} in the base's
 * chat format, loss on the assistant's turns; or {"prompt", "completion"},
 * loss on the completion and its EOS. The model's LoRA pairs are trained
 * (nn_llama_add_lora), or every weight when it has none. */
typedef struct llm_finetune_params {
    const char *data;
    const char *chat_format; /* NULL: the base model's template */
    int ctx, batch;          /* an example is cut at ctx tokens (256); examples per step (8) */
    int epochs;              /* over the training examples (3), unless steps > 0 */
    int64_t steps;
    float lr, clip;          /* 1e-3, 1.0 */
    int warmup;              /* -1: 5% of the steps */
    double val_share;        /* examples held out (0.1, the last ones) */
    int eval_every;          /* validation loss every this many steps, the best
                                weights kept (0: once, at the end) */
    uint64_t seed;
    int threads;
    bool quiet;
} llm_finetune_params;
llm_finetune_params llm_finetune_default_params(void);
int llm_finetune_run(struct nn_llama *m, const llm_model *base, llm_finetune_params p, llm_train_report *out,
                     tailor_error *err);
/* An upper bound of the bytes a fine-tuning run of m on base holds at its
 * peak (held_before: the process's peak before the model was made); the
 * CLI prints it beside the peak RSS. */
double llm_finetune_bound(const struct nn_llama *m, const llm_model *base, const llm_train_report *r, bool full,
                          int threads, double held_before);
/* The model's LoRA pairs as llama.cpp's adapter GGUF for base. */
int llm_train_write_lora(const struct nn_llama *t, const llm_model *base, const char *name, const char *path,
                         tailor_error *err);
/* Folds the LoRA pairs into the weights (W += alpha / r * B A). */
void llm_train_merge_lora(struct nn_llama *t);

/* GPT-2's byte-to-character map (vocab.c): byte_cp[b] is the character a
 * byte's token text uses; cp_byte the inverse (-1: none). */
void llm_byte_alphabet(uint16_t byte_cp[256], int16_t cp_byte[512]);
/* Trains a byte-level BPE tokenizer of vocab_size tokens on text (bpe.c)
 * and writes it as a GGUF holding only the tokenizer (tokenizer.ggml.model
 * gpt2, pre-tokenizer smollm: GPT-2's regex with digits apart, no space
 * clean-up, so decoding gives the text back; <|endoftext|> as BOS and EOS). */
/* With chat_format "chatml" the vocabulary also holds <|im_start|> and
 * <|im_end|> (control tokens; the second ends a turn) and the file the
 * ChatML template, so a model trained with it chats and calls tools in
 * Qwen's convention; NULL: none. */
int llm_bpe_train(const char *text, size_t len, int vocab_size, const char *chat_format, const char *path, bool quiet,
                  tailor_error *err);

#endif
