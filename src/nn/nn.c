/* nn.c — instantiates ops.inc in float and double, plus AdamW, gradient
 * clipping and initialisation. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"

#define REAL float
#define NN_FN(name) nn_##name
#define GEMM cblas_sgemm
#define exp expf
#define log logf
#define log1p log1pf
#define sqrt sqrtf
#define tanh tanhf
#define ROW_MAX nn_max
#define ROW_EXP_SUM nn_exp_sum
#include "nn/ops.inc"
#undef ROW_MAX
#undef ROW_EXP_SUM
#undef REAL
#undef NN_FN
#undef GEMM
#undef exp
#undef log
#undef log1p
#undef sqrt
#undef tanh

/* The double twins (gradient checks) keep libm's exp. */
static double row_max_f64(const double *x, int n) {
    double m = x[0];
    for (int i = 1; i < n; i++)
        if (x[i] > m) m = x[i];
    return m;
}

static double row_exp_sum_f64(double *x, int n, double shift) {
    double sum = 0;
    for (int i = 0; i < n; i++) sum += x[i] = exp(x[i] - shift);
    return sum;
}

#define REAL double
#define NN_FN(name) nn_##name##_f64
#define ROW_MAX row_max_f64
#define ROW_EXP_SUM row_exp_sum_f64
#define GEMM cblas_dgemm
#include "nn/ops.inc"
#undef REAL
#undef NN_FN
#undef GEMM
#undef ROW_MAX
#undef ROW_EXP_SUM

static void adamw_range(const nn_adamw *o, float *param, const float *grad, float *m, float *v, size_t i0,
                        size_t i1, bool decay) {
    float b1t = 1 - powf(o->beta1, (float)o->t), b2t = 1 - powf(o->beta2, (float)o->t);
    for (size_t i = i0; i < i1; i++) {
        float g = grad[i];
        m[i] = o->beta1 * m[i] + (1 - o->beta1) * g;
        v[i] = o->beta2 * v[i] + (1 - o->beta2) * g * g;
        float mh = m[i] / b1t, vh = v[i] / b2t;
        param[i] -= o->lr * (mh / (sqrtf(vh) + o->eps) + (decay ? o->weight_decay * param[i] : 0));
    }
}

void nn_adamw_step(nn_adamw *o, float *param, const float *grad, float *m, float *v, size_t n, bool decay) {
    adamw_range(o, param, grad, m, v, 0, n, decay);
}

/* ---- parallel forms ---------------------------------------------------- */

/* One job type for the four parallel forms: which op, and its arguments. */
typedef struct nn_job {
    enum { J_LN_FWD, J_LN_BWD_ROWS, J_LN_BWD_COLS, J_SOFTMAX, J_ADAMW } op;
    float *out, *mean, *rstd, *dw, *db, *loss, *m, *v;
    const float *inp, *w, *b, *dout, *cmean, *crstd, *grad;
    const int32_t *targets;
    int N, C, V, count;
    float eps;
    const nn_adamw *opt;
    bool decay;
} nn_job;

static void nn_job_run(void *ctx, size_t begin, size_t end, int thread) {
    const nn_job *j = ctx;
    (void)thread;
    int b = (int)begin, e = (int)end;
    switch (j->op) {
    case J_LN_FWD: nn_layernorm_forward_rows(j->out, j->mean, j->rstd, j->inp, j->w, j->b, b, e, j->C, j->eps); break;
    case J_LN_BWD_ROWS: nn_layernorm_backward_rows(j->out, j->dout, j->inp, j->w, j->cmean, j->crstd, b, e, j->C); break;
    case J_LN_BWD_COLS: nn_layernorm_backward_cols(j->dw, j->db, j->dout, j->inp, j->cmean, j->crstd, j->N, j->C, b, e); break;
    case J_SOFTMAX: nn_softmax_ce_rows(j->out, j->targets, b, e, j->V, j->count, j->loss); break;
    case J_ADAMW: adamw_range(j->opt, j->out, j->grad, j->m, j->v, begin, end, j->decay); break;
    }
}

/* n items of `per` values each; small jobs stay on the caller's thread (a
 * dispatch, and pool workers spinning while OpenBLAS wants the cores, cost
 * more than they save: measured on SASRec's BCE batches). */
static void nn_run(pool *p, size_t n, size_t per, nn_job *j) {
    if (p && n > 1 && n * per >= (size_t)1 << 17) pool_for(p, n, nn_job_run, j);
    else nn_job_run(j, 0, n, 0);
}

void nn_layernorm_forward_pool(pool *p, float *out, float *mean, float *rstd, const float *inp, const float *w,
                               const float *b, int N, int C, float eps) {
    nn_job j = {.op = J_LN_FWD, .out = out, .mean = mean, .rstd = rstd, .inp = inp, .w = w, .b = b, .C = C, .eps = eps};
    nn_run(p, (size_t)N, (size_t)C, &j);
}

void nn_layernorm_backward_pool(pool *p, float *dinp, float *dw, float *db, const float *dout, const float *inp,
                                const float *w, const float *mean, const float *rstd, int N, int C) {
    nn_job j = {.op = J_LN_BWD_ROWS, .out = dinp, .dw = dw, .db = db, .dout = dout, .inp = inp, .w = w,
                .cmean = mean, .crstd = rstd, .N = N, .C = C};
    nn_run(p, (size_t)N, (size_t)C, &j);
    j.op = J_LN_BWD_COLS;
    nn_run(p, (size_t)C, (size_t)N, &j);
}

float nn_softmax_ce_pool(pool *p, float *logits, const int32_t *targets, int N, int V) {
    int count = 0;
    for (int n = 0; n < N; n++) count += targets[n] >= 0;
    float *row = xmalloc((size_t)(N > 0 ? N : 1) * sizeof *row), loss = 0;
    nn_job j = {.op = J_SOFTMAX, .out = logits, .targets = targets, .V = V, .count = count, .loss = row};
    nn_run(p, (size_t)N, (size_t)V, &j);
    for (int n = 0; n < N; n++) loss += row[n]; /* row order: the same sum at any thread count */
    free(row);
    return count ? loss / count : 0;
}

void nn_adamw_step_pool(pool *p, nn_adamw *o, float *param, const float *grad, float *m, float *v, size_t n,
                        bool decay) {
    nn_job j = {.op = J_ADAMW, .out = param, .grad = grad, .m = m, .v = v, .opt = o, .decay = decay};
    nn_run(p, n, 1, &j);
}

float nn_clip_grad_norm(float *grad, size_t n, float max_norm) {
    double ss = 0;
    for (size_t i = 0; i < n; i++) ss += (double)grad[i] * grad[i];
    float norm = (float)sqrt(ss);
    if (max_norm > 0 && norm > max_norm) {
        float s = max_norm / (norm + 1e-6f);
        for (size_t i = 0; i < n; i++) grad[i] *= s;
    }
    return norm;
}

void nn_init_normal(float *w, size_t n, float std, rng *g) {
    for (size_t i = 0; i < n; i++) w[i] = (float)rng_normal(g) * std;
}
