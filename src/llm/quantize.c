/* quantize.c — file types and `tailor llm quantize`.
 * A file type (Q4_K_M, Q8_0, ...) picks a tensor type per tensor the way the
 * reference quantizer does: more bits for the output matrix and for some
 * layers' attn_v/ffn_down, and a 32-wide fallback when a row is not a
 * multiple of 256. Rows are converted through float with the format's
 * reference quantizers, split over the thread pool. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm/llm.h"

/* Numbers as in the reference's file_type enum (general.file_type). */
static const struct {
    const char *name;
    int file_type;
    llm_type base;
} FTYPES[] = {
    {"f32", 0, LLM_TYPE_F32},      {"f16", 1, LLM_TYPE_F16},      {"q4_0", 2, LLM_TYPE_Q4_0},
    {"q4_1", 3, LLM_TYPE_Q4_1},    {"q8_0", 7, LLM_TYPE_Q8_0},    {"q5_0", 8, LLM_TYPE_Q5_0},
    {"q5_1", 9, LLM_TYPE_Q5_1},    {"q2_k", 10, LLM_TYPE_Q2_K},   {"q3_k_m", 12, LLM_TYPE_Q3_K},
    {"q4_k_s", 14, LLM_TYPE_Q4_K}, {"q4_k_m", 15, LLM_TYPE_Q4_K}, {"q5_k_s", 16, LLM_TYPE_Q5_K},
    {"q5_k_m", 17, LLM_TYPE_Q5_K}, {"q6_k", 18, LLM_TYPE_Q6_K},   {"bf16", 32, LLM_TYPE_BF16},
};

int llm_ftype_from_name(const char *name, llm_ftype *out) {
    for (size_t i = 0; i < sizeof FTYPES / sizeof FTYPES[0]; i++)
        if (strcasecmp(FTYPES[i].name, name) == 0) {
            out->name = FTYPES[i].name;
            out->file_type = FTYPES[i].file_type;
            out->base = FTYPES[i].base;
            return 0;
        }
    return -1;
}

const char *llm_ftype_name(int file_type) {
    for (size_t i = 0; i < sizeof FTYPES / sizeof FTYPES[0]; i++)
        if (FTYPES[i].file_type == file_type) return FTYPES[i].name;
    return NULL;
}

const char *llm_ftype_names(void) {
    return "f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q2_k, q3_k_m, q4_k_s, q4_k_m, q5_k_s, q5_k_m, q6_k";
}

static bool is_quantized(llm_type t) { return t != LLM_TYPE_F32 && t != LLM_TYPE_F16 && t != LLM_TYPE_BF16; }

/* The reference's rule for "more bits" layers: the first and last eighth,
 * and every third layer between. */
static bool more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

llm_type llm_ftype_tensor_type(const llm_ftype *f, const char *name, int64_t row, bool is_output, int layer,
                               int n_layer) {
    llm_type t = f->base;
    if (!is_quantized(t)) return t;
    bool k_mix = strcmp(f->name, "q4_k_m") == 0 || strcmp(f->name, "q5_k_m") == 0;
    if (is_output) {
        /* The output matrix (or the tied embedding) gets 6 bits, or 8 when
         * its rows do not split into 256-value blocks. */
        t = row % QK_K ? LLM_TYPE_Q8_0 : t != LLM_TYPE_Q8_0 ? LLM_TYPE_Q6_K : t;
    } else if (strstr(name, "attn_v.weight")) {
        if (strcmp(f->name, "q2_k") == 0) t = LLM_TYPE_Q3_K;
        else if (strcmp(f->name, "q3_k_m") == 0) t = layer < 2 ? LLM_TYPE_Q5_K : LLM_TYPE_Q4_K;
        else if (k_mix && more_bits(layer, n_layer)) t = LLM_TYPE_Q6_K;
        else if (strcmp(f->name, "q4_k_s") == 0 && layer < 4) t = LLM_TYPE_Q5_K;
    } else if (strstr(name, "ffn_down")) {
        if (strcmp(f->name, "q2_k") == 0) t = LLM_TYPE_Q3_K;
        else if (strcmp(f->name, "q3_k_m") == 0)
            t = layer < n_layer / 16 ? LLM_TYPE_Q5_K : LLM_TYPE_Q4_K;
        else if (k_mix && more_bits(layer, n_layer)) t = LLM_TYPE_Q6_K;
        else if (strcmp(f->name, "q4_k_s") == 0 && layer < n_layer / 8) t = LLM_TYPE_Q5_K;
    } else if (strstr(name, "attn_output.weight")) {
        if (strcmp(f->name, "q2_k") == 0) t = LLM_TYPE_Q3_K;
        else if (strcmp(f->name, "q3_k_m") == 0) t = LLM_TYPE_Q4_K;
    }
    /* K-quants need rows of whole 256-value blocks. */
    if (llm_type_get(t)->block == QK_K && row % QK_K) {
        switch (t) {
        case LLM_TYPE_Q4_K: t = LLM_TYPE_Q5_0; break;
        case LLM_TYPE_Q5_K: t = LLM_TYPE_Q5_1; break;
        case LLM_TYPE_Q6_K: t = LLM_TYPE_Q8_0; break;
        default: t = LLM_TYPE_Q5_0; break; /* Q2_K/Q3_K: the reference uses IQ4_NL */
        }
    }
    if (row % llm_type_get(t)->block) t = LLM_TYPE_F16; /* last resort */
    return t;
}

/* Which tensors are converted: matrices named *.weight (norms stay F32). */
static bool converts(const llm_tensor *t) {
    size_t n = strlen(t->name);
    return t->n_dims >= 2 && n > 7 && strcmp(t->name + n - 7, ".weight") == 0 && !strstr(t->name, "_norm.weight");
}

static int layer_of(const char *name) {
    int l;
    return sscanf(name, "blk.%d.", &l) == 1 ? l : -1;
}

typedef struct conv_job {
    const llm_tensor *t;
    llm_type to;
    uint8_t *out;
    size_t in_row, out_row;
} conv_job;

static void conv_rows(void *ctx, size_t b, size_t e, int thread) {
    (void)thread;
    const conv_job *j = ctx;
    int64_t cols = j->t->ne[0];
    float *row = xmalloc(sizeof(float) * (size_t)cols);
    for (size_t r = b; r < e; r++) {
        llm_dequant_row(j->t->type, (const uint8_t *)j->t->data + r * j->in_row, row, cols);
        llm_quant_row(j->to, row, j->out + r * j->out_row, cols);
    }
    free(row);
}

int llm_quantize(const char *in, const char *out, const llm_ftype *f, int n_threads, tailor_error *err) {
    llm_gguf *g;
    if (llm_gguf_open(in, &g, err) < 0) return err->code;
    uint32_t n_layer = 0;
    const char *arch = llm_gguf_get_str(g, "general.architecture");
    if (arch) {
        char key[128];
        snprintf(key, sizeof key, "%s.block_count", arch);
        llm_gguf_get_u32(g, key, &n_layer);
    }
    bool has_output = llm_gguf_tensor(g, "output.weight") != NULL;
    for (int64_t i = 0; i < g->n_tensors; i++) {
        const llm_type_info *ti = llm_type_get(g->tensors[i].type);
        if (converts(&g->tensors[i]) && !ti->supported) {
            err_set(err, TAILOR_EUNSUPPORTED, "%s: tensor '%s' has type %s, which tailor cannot read", in,
                    g->tensors[i].name, ti->name);
            llm_gguf_free(g);
            return err->code;
        }
    }
    llm_gguf_writer *w = llm_gguf_writer_new();
    for (int64_t i = 0; i < g->n_kv; i++) {
        const char *k = g->kv[i].key;
        if (strcmp(k, "general.file_type") == 0 || strcmp(k, "general.quantization_version") == 0) continue;
        llm_gguf_set_kv(w, &g->kv[i]);
    }
    llm_gguf_set_u32(w, "general.quantization_version", 2);
    llm_gguf_set_u32(w, "general.file_type", (uint32_t)f->file_type);
    pool *p = pool_new(n_threads);
    VEC(void *) blocks = {0};
    progress pr;
    progress_begin(&pr, "quantize", (uint64_t)g->n_tensors);
    for (int64_t i = 0; i < g->n_tensors; i++) {
        const llm_tensor *t = &g->tensors[i];
        const void *data = t->data;
        llm_type to = t->type;
        if (converts(t)) {
            bool is_output = strcmp(t->name, "output.weight") == 0 ||
                             (!has_output && strcmp(t->name, "token_embd.weight") == 0);
            to = llm_ftype_tensor_type(f, t->name, t->ne[0], is_output, layer_of(t->name), (int)n_layer);
            if (to != t->type) {
                int64_t rows = t->ne[1] * t->ne[2] * t->ne[3];
                conv_job j = {t, to, NULL, llm_row_bytes(t->type, t->ne[0]), llm_row_bytes(to, t->ne[0])};
                j.out = xmalloc(j.out_row * (size_t)rows);
                vec_push(&blocks, (void *)j.out);
                pool_for(p, (size_t)rows, conv_rows, &j);
                data = j.out;
            }
        }
        llm_gguf_add_tensor(w, t->name, to, t->n_dims, t->ne, data);
        progress_update(&pr, (uint64_t)i + 1);
    }
    progress_end(&pr);
    int rc = llm_gguf_writer_write(w, out, err);
    for (size_t i = 0; i < blocks.len; i++) free(blocks.data[i]);
    vec_free(&blocks);
    pool_free(p);
    llm_gguf_writer_free(w);
    llm_gguf_free(g);
    return rc;
}
