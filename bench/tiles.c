/* tiles.c — the prompt kernels alone: for each weight type, a block of
 * weight rows times a chunk of tokens through each kernel set this CPU runs
 * (scalar dots, AVX2, AVX-VNNI, AVX-512), as forward.c's matmul drives them, the sets
 * alternated round by round in one run (a packed layout's packing is
 * timed with the product); GMAC/s (multiply-adds of the
 * dequantized product per second, one thread) and the ratio to AVX2.
 * usage: bench_tiles [ROWS [COLS [TOKENS [ROUNDS]]]]   (default 256 4864 64 5) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm/llm.h"

static double now_s(void) { return (double)timer_now_ns() / 1e9; }

/* y[t][r] for all rows and tokens: tiles where the set has one, the rows
 * kernel or dots at the edges (the shape of forward.c's mm_rows). */
static void product(const llm_kernels *k, llm_type t, const uint8_t *w, size_t w_row, const uint8_t *a,
                    size_t a_row, int rows, int toks, int64_t cols, float *y, uint8_t *packed) {
    llm_tile tl = k->tile[t];
    size_t group = 0;
    if (tl.fn && tl.pack) {
        group = (size_t)(cols / llm_type_get(llm_type_get(t)->dot_type)->block) * (size_t)tl.pack_bytes;
        for (int g = 0; g < toks / tl.t; g++) tl.pack(a + (size_t)g * tl.t * a_row, a_row, cols, packed + g * group);
    }
    int r = 0;
    if (tl.fn)
        for (; r + tl.r <= rows; r += tl.r) {
            int s = 0;
            for (; s + tl.t <= toks; s += tl.t)
                tl.fn(w + (size_t)r * w_row, w_row, tl.pack ? packed + (size_t)(s / tl.t) * group : a + (size_t)s * a_row,
                      a_row, cols, y + (size_t)s * rows + r, (size_t)rows);
            for (; s < toks; s++)
                for (int i = 0; i < tl.r; i++)
                    y[(size_t)s * rows + r + i] = k->dot[t](w + (size_t)(r + i) * w_row, a + (size_t)s * a_row, cols);
        }
    for (; r < rows; r += LLM_ROWS) {
        int nr = rows - r < LLM_ROWS ? rows - r : LLM_ROWS;
        for (int s = 0; s < toks; s++) {
            float *out = y + (size_t)s * rows + r;
            if (k->rows[t]) k->rows[t](w + (size_t)r * w_row, w_row, a + (size_t)s * a_row, cols, nr, out);
            else
                for (int i = 0; i < nr; i++) out[i] = k->dot[t](w + (size_t)(r + i) * w_row, a + (size_t)s * a_row, cols);
        }
    }
}

int main(int argc, char **argv) {
    int rows = argc > 1 ? atoi(argv[1]) : 256, toks = argc > 3 ? atoi(argv[3]) : 64;
    int64_t cols = argc > 2 ? atoll(argv[2]) : 4864;
    int rounds = argc > 4 ? atoi(argv[4]) : 5;
    if (rows < 1 || toks < 1 || cols < 256 || cols % 256 || rounds < 1) {
        fprintf(stderr, "usage: bench_tiles [ROWS [COLS (a multiple of 256) [TOKENS [ROUNDS]]]]\n");
        return 2;
    }
    const char *names[] = {"scalar", "avx2", "avxvnni", "avx512"};
    const llm_kernels *sets[4];
    for (int i = 0; i < 4; i++) sets[i] = llm_kernels_named(names[i]);
    const llm_type types[] = {LLM_TYPE_Q8_0, LLM_TYPE_Q4_0, LLM_TYPE_Q4_1, LLM_TYPE_Q5_0, LLM_TYPE_Q5_1,
                              LLM_TYPE_Q2_K, LLM_TYPE_Q3_K, LLM_TYPE_Q4_K, LLM_TYPE_Q5_K, LLM_TYPE_Q6_K,
                              LLM_TYPE_F16,  LLM_TYPE_BF16, LLM_TYPE_F32};
    float *wf = malloc((size_t)rows * (size_t)cols * 4), *af = malloc((size_t)toks * (size_t)cols * 4);
    float *y = malloc((size_t)rows * (size_t)toks * 4), *y0 = malloc((size_t)rows * (size_t)toks * 4);
    rng g;
    rng_seed(&g, 1);
    for (size_t i = 0; i < (size_t)rows * (size_t)cols; i++) wf[i] = (float)rng_normal(&g);
    for (size_t i = 0; i < (size_t)toks * (size_t)cols; i++) af[i] = (float)rng_normal(&g);
    char cpu[256] = "unknown CPU", line[512];
    FILE *f = fopen("/proc/cpuinfo", "r");
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "model name", 10) && strchr(line, ':')) {
            snprintf(cpu, sizeof cpu, "%s", strchr(line, ':') + 2);
            cpu[strcspn(cpu, "\n")] = 0;
            break;
        }
    if (f) fclose(f);
    printf("machine: %s; kernel sets:", cpu);
    for (int i = 0; i < 4; i++) printf(" %s%s", names[i], sets[i] ? "" : " (not on this CPU)");
    printf("\n");
    printf("%d rows x %lld columns x %d tokens, one thread, best of %d rounds (sets alternated)\n", rows,
           (long long)cols, toks, rounds);
    printf("| type | scalar GMAC/s | avx2 GMAC/s | avxvnni GMAC/s | avx512 GMAC/s | avxvnni / avx2 | avx512 / avx2 | "
           "tile avx2 | tile avxvnni | tile avx512 |\n");
    printf("|------|------:|------:|------:|------:|------:|------:|:---:|:---:|:---:|\n");
    for (size_t ti = 0; ti < sizeof types / sizeof *types; ti++) {
        llm_type t = types[ti], at = llm_type_get(t)->dot_type;
        size_t w_row = llm_row_bytes(t, cols), a_row = llm_row_bytes(at, cols);
        uint8_t *w = malloc(w_row * (size_t)rows), *a = malloc(a_row * (size_t)toks);
        uint8_t *packed = malloc((size_t)toks * (size_t)cols * 4 + 64);
        for (int r = 0; r < rows; r++) llm_quant_row(t, wf + (size_t)r * (size_t)cols, w + (size_t)r * w_row, cols);
        double best[4] = {0, 0, 0, 0};
        for (int round = 0; round < rounds; round++)
            for (int s = 0; s < 4; s++) {
                if (!sets[s]) continue;
                /* The scalar set once: it is only the floor. */
                if (s == 0 && round > 0) continue;
                for (int k = 0; k < toks; k++)
                    sets[s]->quant[at](af + (size_t)k * (size_t)cols, a + (size_t)k * a_row, cols);
                double t0 = now_s();
                product(sets[s], t, w, w_row, a, a_row, rows, toks, cols, y, packed);
                double dt = now_s() - t0;
                double gmac = (double)rows * (double)toks * (double)cols / dt / 1e9;
                if (gmac > best[s]) best[s] = gmac;
                if (s == 0) memcpy(y0, y, (size_t)rows * (size_t)toks * 4);
                else
                    for (size_t i = 0; i < (size_t)rows * (size_t)toks; i++)
                        if (!(y[i] - y0[i] < 1e-3f * (1 + (y0[i] < 0 ? -y0[i] : y0[i])) &&
                              y0[i] - y[i] < 1e-3f * (1 + (y0[i] < 0 ? -y0[i] : y0[i])))) {
                            fprintf(stderr, "%s %s: output %zu differs from the scalar one (%g vs %g)\n", names[s],
                                    llm_type_get(t)->name, i, y[i], y0[i]);
                            return 1;
                        }
            }
        char tile[3][16];
        for (int s = 1; s < 4; s++) {
            if (sets[s] && sets[s]->tile[t].fn) snprintf(tile[s - 1], 16, "%dx%d", sets[s]->tile[t].r, sets[s]->tile[t].t);
            else snprintf(tile[s - 1], 16, "-");
        }
        printf("| %s | %.2f | %.2f | %.2f | %.2f | %.2fx | %.2fx | %s | %s | %s |\n", llm_type_get(t)->name, best[0],
               best[1], best[2], best[3], best[1] > 0 ? best[2] / best[1] : 0.0, best[1] > 0 ? best[3] / best[1] : 0.0,
               tile[0], tile[1], tile[2]);
        free(w);
        free(a);
        free(packed);
    }
    free(wf);
    free(af);
    free(y);
    free(y0);
    return 0;
}
