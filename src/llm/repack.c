/* repack.c — Q8_0, Q4_0, Q5_0, Q4_K and Q6_K matrices laid out for the
 * kernels at load (LLM_LAYOUT_R16, described in llm.h): 16 rows
 * interleaved block by block, so a 512-bit vector (two 256-bit halves on
 * AVX2) holds one block's values of 16 rows and the 16 dot products
 * accumulate in its lanes — no horizontal sums, one scale step per block
 * for 16 rows, the Q5_0 fifth bits as ready-made 64-bit masks. In the
 * file's layout each small block is unpacked alone (nibbles shuffled into
 * order, fifth bits spread, a scale converted and broadcast), which made
 * generation on Q4_K_M files bound by arithmetic rather than memory. Which
 * types a kernel set lays out is its llm_r16.lay_out.
 *
 * A group takes the same bytes as its 16 rows. The laid-out matrices go to
 * one anonymous region (in 2 MiB pages where the system gives them), and
 * the file's pages each was read from are released as it is written, so
 * the process holds one copy of the weights, not two (peak RSS: the file
 * and a few MiB). Readers other than the kernels go through
 * llm_tensor_rows. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "llm/llm.h"

#define QK 32

static int off_of(llm_type t) { return t == LLM_TYPE_Q8_0 ? 128 : t == LLM_TYPE_Q5_0 ? 16 : 8; }

/* How a type's block is laid out across a group: its pieces in order, each
 * an F16 field (16 halves side by side), dword fields (part i: dword i of
 * each row), or Q5_0's fifth bits (eight 64-bit masks). */
enum { SEG_HALF, SEG_DWORDS, SEG_QH5 };
typedef struct { int kind, at, len; } seg;
typedef struct { int n; seg s[4]; } segs;

static segs segs_of(llm_type t) {
    switch (t) {
    case LLM_TYPE_Q8_0: return (segs){2, {{SEG_HALF, 0, 2}, {SEG_DWORDS, 2, 32}}};
    case LLM_TYPE_Q4_0: return (segs){2, {{SEG_HALF, 0, 2}, {SEG_DWORDS, 2, 16}}};
    case LLM_TYPE_Q5_0: return (segs){3, {{SEG_HALF, 0, 2}, {SEG_DWORDS, 6, 16}, {SEG_QH5, 2, 4}}};
    case LLM_TYPE_Q4_K: return (segs){4, {{SEG_HALF, 0, 2}, {SEG_HALF, 2, 2}, {SEG_DWORDS, 4, 12}, {SEG_DWORDS, 16, 128}}};
    case LLM_TYPE_Q6_K:
        return (segs){4, {{SEG_DWORDS, 0, 128}, {SEG_DWORDS, 128, 64}, {SEG_DWORDS, 192, 16}, {SEG_HALF, 208, 2}}};
    default: return (segs){0, {{0, 0, 0}}};
    }
}

bool llm_r16_fits(const llm_tensor *t) {
    return segs_of(t->type).n && t->ne[0] % llm_type_get(t->type)->block == 0 && t->ne[1] >= LLM_R16 &&
           t->ne[1] % LLM_R16 == 0 && t->ne[2] == 1 && t->ne[3] == 1;
}

/* Moves one block of rows k0..k1-1 of a group between the layouts
 * (to_group: rows -> group; packing takes all 16); row k's block is at
 * rows + (k - k0) * row_bytes. */
static void move_block(llm_type t, uint8_t *rows, size_t row_bytes, uint8_t *g, bool to_group, int k0, int k1) {
    segs L = segs_of(t);
    for (int i = 0; i < L.n; i++) {
        seg s = L.s[i];
        if (s.kind == SEG_QH5) { /* mask c holds row k's fifth bits 4c..4c+3 at 4k */
            uint64_t qh[8] = {0};
            if (!to_group) memcpy(qh, g, sizeof qh);
            for (int k = k0; k < k1; k++) {
                uint8_t *x = rows + (size_t)(k - k0) * row_bytes + s.at;
                uint32_t h = 0;
                if (to_group) {
                    memcpy(&h, x, 4);
                    for (int c = 0; c < 8; c++) qh[c] |= (uint64_t)((h >> (4 * c)) & 0xF) << (4 * k);
                } else {
                    for (int c = 0; c < 8; c++) h |= (uint32_t)((qh[c] >> (4 * k)) & 0xF) << (4 * c);
                    memcpy(x, &h, 4);
                }
            }
            if (to_group) memcpy(g, qh, sizeof qh);
            g += 64;
            continue;
        }
        for (int k = k0; k < k1; k++) {
            uint8_t *x = rows + (size_t)(k - k0) * row_bytes + s.at;
            if (s.kind == SEG_HALF) {
                if (to_group) memcpy(g + 2 * k, x, 2);
                else memcpy(x, g + 2 * k, 2);
            } else if (to_group)
                for (int j = 0; j < s.len / 4; j++) memcpy(g + 64 * j + 4 * k, x + 4 * j, 4);
            else
                for (int j = 0; j < s.len / 4; j++) memcpy(x + 4 * j, g + 64 * j + 4 * k, 4);
        }
        g += s.kind == SEG_HALF ? 32 : 16 * s.len;
    }
}

void llm_r16_pack(llm_type t, const void *rows, size_t row_bytes, int64_t n, void *dst) {
    const llm_type_info *ti = llm_type_get(t);
    for (int64_t b = 0; b < n / ti->block; b++)
        move_block(t, (uint8_t *)rows + (size_t)b * (size_t)ti->bytes, row_bytes,
                   (uint8_t *)dst + (size_t)b * LLM_R16 * (size_t)ti->bytes, true, 0, LLM_R16);
}

void llm_r16_unpack(llm_type t, const void *group, int64_t n, void *rows, size_t row_bytes) {
    const llm_type_info *ti = llm_type_get(t);
    for (int64_t b = 0; b < n / ti->block; b++)
        move_block(t, (uint8_t *)rows + (size_t)b * (size_t)ti->bytes, row_bytes,
                   (uint8_t *)group + (size_t)b * LLM_R16 * (size_t)ti->bytes, false, 0, LLM_R16);
}

void llm_r16_unpack_row(llm_type t, const void *group, int64_t n, int k, void *dst) {
    const llm_type_info *ti = llm_type_get(t);
    size_t bsz = (size_t)ti->bytes;
    for (int64_t b = 0; b < n / ti->block; b++)
        move_block(t, (uint8_t *)dst + (size_t)b * bsz, bsz, (uint8_t *)group + (size_t)b * LLM_R16 * bsz, false, k, k + 1);
}

void llm_r16_pack_acts(llm_type wt, const void *q8, size_t a_row, int T, int64_t n, void *dst) {
    int off = off_of(wt);
    llm_x8 *out = dst;
    for (int64_t b = 0; b < n / QK; b++)
        for (int t = 0; t < T; t++, out++) {
            const blk_q8_0 *y = (const blk_q8_0 *)((const uint8_t *)q8 + (size_t)t * a_row) + b;
            int s = 0;
            for (int i = 0; i < QK; i++) s += y->qs[i];
            out->d = f32_from_f16(y->d);
            out->s = off * s;
            memcpy(out->qs, y->qs, QK);
        }
}

/* Row k's unsigned value v (the weight plus OFF) in a group's block. */
static int r16_value(llm_type t, const uint8_t *g, int k, int v) {
    if (t == LLM_TYPE_Q8_0) return g[32 + 64 * (v / 4) + 4 * k + v % 4] ^ 0x80;
    int j = v % 16, byte = g[32 + 64 * (j / 4) + 4 * k + j % 4];
    int u = v < 16 ? byte & 0x0F : byte >> 4;
    if (t == LLM_TYPE_Q5_0) {
        uint64_t m;
        memcpy(&m, g + 32 + 256 + 8 * (v / 4), 8);
        u |= (int)((m >> (4 * k + v % 4)) & 1) << 4;
    }
    return u;
}

void llm_r16_ref(llm_type t, const void *w, const void *a, int T, int64_t n, float *y, size_t y_stride) {
    const llm_type_info *ti = llm_type_get(t);
    size_t gb = LLM_R16 * (size_t)ti->bytes;
    if (ti->block == 256) { /* K-quants: T Q8_K rows; each block as the format's own dot, summed in order */
        size_t a_row = llm_row_bytes(LLM_TYPE_Q8_K, n);
        float (*dot)(const void *, const void *, int64_t) = t == LLM_TYPE_Q4_K ? qk_dot_q4_K : qk_dot_q6_K;
        uint8_t row[256]; /* one row's block (the largest is 210 bytes) */
        for (int tt = 0; tt < T; tt++)
            for (int k = 0; k < LLM_R16; k++) {
                float acc = 0;
                for (int64_t b = 0; b < n / 256; b++) {
                    move_block(t, row, (size_t)ti->bytes, (uint8_t *)w + (size_t)b * gb, false, k, k + 1);
                    acc += dot(row, (const uint8_t *)a + (size_t)tt * a_row + (size_t)b * sizeof(blk_q8_K), 256);
                }
                y[(size_t)tt * y_stride + (size_t)k] = acc;
            }
        return;
    }
    for (int tt = 0; tt < T; tt++)
        for (int k = 0; k < LLM_R16; k++) {
            float acc = 0;
            for (int64_t b = 0; b < n / QK; b++) {
                const uint8_t *g = (const uint8_t *)w + (size_t)b * gb;
                const llm_x8 *x = (const llm_x8 *)a + (size_t)b * (size_t)T + tt;
                uint16_t dh;
                memcpy(&dh, g + 2 * k, 2);
                int p = 0;
                for (int v = 0; v < QK; v++) p += r16_value(t, g, k, v) * x->qs[v];
                /* as the vector kernels round: (dx * dy) once, then one fused step */
                acc = fmaf(f32_from_f16(dh) * x->d, (float)(p - x->s), acc);
            }
            y[(size_t)tt * y_stride + (size_t)k] = acc;
        }
}

void llm_tensor_rows(const llm_tensor *t, int64_t r0, int64_t r1, float *dst, bool fast) {
    int64_t cols = t->ne[0];
    size_t rb = llm_row_bytes(t->type, cols);
    void *tmp = t->layout == LLM_LAYOUT_R16 ? xmalloc(rb) : NULL;
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *src = (const uint8_t *)t->data + (size_t)r * rb;
        if (tmp) {
            llm_r16_unpack_row(t->type, (const uint8_t *)t->data + (size_t)(r - r % LLM_R16) * rb, cols,
                               (int)(r % LLM_R16), tmp);
            src = tmp;
        }
        float *out = dst + (size_t)(r - r0) * (size_t)cols;
        if (fast) llm_dequant_row_fast(t->type, src, out, cols);
        else llm_dequant_row(t->type, src, out, cols);
    }
    free(tmp);
}

/* One matrix laid out into dst, group by group; the file's pages it
 * has been read from are let go as it goes (whole pages inside the
 * tensor), so the process holds the new copy instead of both. */
static void lay_out(llm_tensor *t, uint8_t *dst, size_t page) {
    size_t rb = llm_row_bytes(t->type, t->ne[0]);
    const uint8_t *src = t->data;
    uintptr_t done = ((uintptr_t)src + page - 1) & ~(uintptr_t)(page - 1); /* first page wholly inside */
    for (int64_t r = 0; r < t->ne[1]; r += LLM_R16) {
        llm_r16_pack(t->type, src + (size_t)r * rb, rb, t->ne[0], dst + (size_t)r * rb);
        uintptr_t read = ((uintptr_t)src + (size_t)(r + LLM_R16) * rb) & ~(uintptr_t)(page - 1);
        if (read >= done + (2u << 20) || (r + LLM_R16 >= t->ne[1] && read > done)) {
            (void)madvise((void *)done, read - done, MADV_DONTNEED); /* a hint: the pages stay in the page cache */
            done = read;
        }
    }
    t->data = dst;
    t->layout = LLM_LAYOUT_R16;
}

int llm_model_lay_out(llm_model *m, const llm_kernels *k, tailor_error *err) {
    llm_gguf *g = m->gguf;
    if (!g->map || m->vocab_only || m->arch == LLM_ARCH_BERT) return 0; /* a borrowed buffer stays as it is */
    const char *env = getenv("TAILOR_LLM_REPACK");
    if (env && !strcmp(env, "0")) return 0;
    /* the matrices of the forward pass's products; a token embedding only
     * when it is the output too (its rows are looked up through
     * llm_tensor_rows, one row unpacked per token) */
    VEC(llm_tensor *) todo = {0};
    size_t total = 0;
    for (int i = 0; i < m->hp.n_layer; i++) {
        const llm_layer *L = &m->layers[i];
        const llm_tensor *mats[] = {L->wq, L->wk, L->wv, L->wo, L->ffn_gate, L->ffn_up, L->ffn_down,
                                    i == 0 ? m->output : NULL};
        for (size_t j = 0; j < sizeof mats / sizeof mats[0]; j++) {
            const llm_tensor *t = mats[j];
            if (!t || !llm_r16_fits(t) || !k->r16[t->type].lay_out) continue;
            vec_push(&todo, &g->tensors[t - g->tensors]);
            total += (t->bytes + 63) / 64 * 64;
        }
    }
    if (!todo.len) return 0;
    /* One region in 2 MiB pages where the kernel gives them: written once
     * at load, read every token (a 4 KiB page a fault, and a TLB entry, per
     * 4 KiB of weights otherwise). */
    size_t huge = 2u << 20, page = (size_t)sysconf(_SC_PAGESIZE);
    size_t len = total + huge;
    void *map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED) {
        vec_free(&todo);
        return err_set(err, TAILOR_ENOMEM, "%s: laying %zu bytes of weights out: mmap: %s", g->path, total,
                       strerror(errno));
    }
    uint8_t *at = (uint8_t *)(((uintptr_t)map + huge - 1) & ~(uintptr_t)(huge - 1));
#ifdef MADV_HUGEPAGE
    (void)madvise(at, total, MADV_HUGEPAGE);
#endif
    for (size_t i = 0; i < todo.len; i++) {
        lay_out(todo.data[i], at, page);
        at += (todo.data[i]->bytes + 63) / 64 * 64;
    }
    vec_free(&todo);
    m->laid = map;
    m->laid_bytes = len;
    return 0;
}

/* The scalar twin for one token, as the sets without vector code for the
 * layout read it. */
void llm_r16_ref1_q8_0(const void *w, const void *a, int64_t n, float *y, size_t y_stride) {
    llm_r16_ref(LLM_TYPE_Q8_0, w, a, 1, n, y, y_stride);
}
void llm_r16_ref1_q4_0(const void *w, const void *a, int64_t n, float *y, size_t y_stride) {
    llm_r16_ref(LLM_TYPE_Q4_0, w, a, 1, n, y, y_stride);
}
void llm_r16_ref1_q5_0(const void *w, const void *a, int64_t n, float *y, size_t y_stride) {
    llm_r16_ref(LLM_TYPE_Q5_0, w, a, 1, n, y, y_stride);
}
void llm_r16_ref1_q4_K(const void *w, const void *a, int64_t n, float *y, size_t y_stride) {
    llm_r16_ref(LLM_TYPE_Q4_K, w, a, 1, n, y, y_stride);
}
void llm_r16_ref1_q6_K(const void *w, const void *a, int64_t n, float *y, size_t y_stride) {
    llm_r16_ref(LLM_TYPE_Q6_K, w, a, 1, n, y, y_stride);
}
