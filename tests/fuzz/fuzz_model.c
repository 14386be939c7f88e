/* fuzz_model.c — libFuzzer target for the model-file loader: arbitrary
 * bytes must be refused with a message or load into a model whose every
 * index is in range (scored once to prove it). */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "rec/rec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[64];
    snprintf(path, sizeof path, "/tmp/fuzz-model-%d.tmod", (int)getpid());
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    rec_model *m = NULL;
    tailor_error e = {0};
    if (rec_model_load(path, &m, &e) == 0) {
        if (m->n_items > 0 && m->n_items < 100000) {
            float *out = malloc((size_t)m->n_items * sizeof *out);
            int32_t hist[1] = {0};
            float val[1] = {1};
            m->kind->score(m, m->n_users > 0 ? 0 : -1, hist, val, 1, out);
            free(out);
        }
        rec_model_free(m);
    } else if (!e.msg[0]) {
        __builtin_trap();
    }
    unlink(path);
    return 0;
}
