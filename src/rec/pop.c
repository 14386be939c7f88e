/* pop.c — MostPop: items ranked by how many users interacted with them,
 * over all time or over a recent window (the last `window` seconds before
 * the newest event). The same list for everyone; the baseline every
 * personalised model must beat. */
#include <stdlib.h>
#include <string.h>

#include "rec/rec.h"

typedef struct pop_state {
    float *count; /* n_items */
} pop_state;

static const rec_param_spec POP_PARAMS[] = {
    {"window", "0", "only events in the last WINDOW seconds before the newest (0 = all time)"},
    {NULL, NULL, NULL},
};

static int pop_init(rec_model *m, tailor_error *err) {
    if (rec_param_f64(m, "window") < 0)
        return err_set(err, TAILOR_EINVAL, "pop: window must be >= 0 seconds");
    m->impl = xcalloc(1, sizeof(pop_state));
    return 0;
}

static int pop_fit(rec_model *m, const rec_data *d, tailor_error *err) {
    pop_state *s = m->impl;
    free(s->count);
    s->count = xcalloc((size_t)d->n_items + 1, sizeof(float));
    int64_t window = rec_param_i64(m, "window"), nnz = rec_data_nnz(d), cutoff = INT64_MIN;
    if (window > 0 && d->times && nnz > 0) {
        int64_t newest = d->times[0];
        for (int64_t k = 1; k < nnz; k++)
            if (d->times[k] > newest) newest = d->times[k];
        cutoff = newest - window;
    }
    for (int64_t k = 0; k < nnz; k++)
        if (!d->times || d->times[k] >= cutoff) s->count[d->indices[k]] += 1;
    return 0;
}

static void pop_score(const rec_model *m, int32_t user, const int32_t *hist, const float *vals,
                      size_t n, float *out) {
    const pop_state *s = m->impl;
    memcpy(out, s->count, (size_t)m->n_items * sizeof *out);
}

static void pop_save(const rec_model *m, sb *out) {
    const pop_state *s = m->impl;
    rec_write_array(out, s->count, sizeof(float), (size_t)m->n_items);
}

static int pop_load(rec_model *m, const char *buf, size_t n, tailor_error *err) {
    pop_state *s = m->impl;
    rec_reader r = {buf, n};
    void *p;
    if (!rec_read_array(&r, sizeof(float), m->n_items, &p, NULL) || r.left)
        return err_set(err, TAILOR_EDATA, "pop: bad payload");
    free(s->count);
    s->count = p;
    return 0;
}

static void pop_free(rec_model *m) {
    pop_state *s = m->impl;
    if (s) free(s->count);
    free(s);
}

const rec_kind REC_POP = {
    .name = "pop",
    .summary = "most popular items (all time or a recent window)",
    .params = POP_PARAMS,
    .init = pop_init,
    .fit = pop_fit,
    .score = pop_score,
    .explain_style = REC_EXPLAIN_POPULARITY,
    .save = pop_save,
    .load = pop_load,
    .free = pop_free,
};
