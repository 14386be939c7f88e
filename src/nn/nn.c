/* nn.c — instantiates ops.inc in float and double, plus AdamW, gradient
 * clipping and initialisation. */
#include <cblas.h>
#include <math.h>
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
#include "nn/ops.inc"
#undef REAL
#undef NN_FN
#undef GEMM
#undef exp
#undef log
#undef log1p
#undef sqrt
#undef tanh

#define REAL double
#define NN_FN(name) nn_##name##_f64
#define GEMM cblas_dgemm
#include "nn/ops.inc"
#undef REAL
#undef NN_FN
#undef GEMM

void nn_adamw_step(nn_adamw *o, float *param, const float *grad, float *m, float *v, size_t n, bool decay) {
    float b1t = 1 - powf(o->beta1, (float)o->t), b2t = 1 - powf(o->beta2, (float)o->t);
    for (size_t i = 0; i < n; i++) {
        float g = grad[i];
        m[i] = o->beta1 * m[i] + (1 - o->beta1) * g;
        v[i] = o->beta2 * v[i] + (1 - o->beta2) * g * g;
        float mh = m[i] / b1t, vh = v[i] / b2t;
        param[i] -= o->lr * (mh / (sqrtf(vh) + o->eps) + (decay ? o->weight_decay * param[i] : 0));
    }
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
