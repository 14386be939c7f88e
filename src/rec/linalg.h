/* linalg.h — small dense kernels the factor models share (private to
 * src/rec/): dot products and axpy written with independent partial sums so
 * the compiler vectorises them, and a Cholesky solve for the k x k systems
 * of ALS. Big products go to OpenBLAS. */
#ifndef TAILOR_REC_LINALG_H
#define TAILOR_REC_LINALG_H

#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

static inline __attribute__((always_inline)) float la_dot(const float *a, const float *b, int n) {
    float acc[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++) acc[l] += a[i + l] * b[i + l];
    float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

static inline __attribute__((always_inline)) void la_axpy(float alpha, const float *x, float *y, int n) {
    for (int i = 0; i < n; i++) y[i] += alpha * x[i];
}

/* y = A x for a symmetric k x k row-major A. */
static inline __attribute__((always_inline)) void la_symv(const float *A, const float *x, float *y, int k) {
    for (int i = 0; i < k; i++) y[i] = la_dot(A + (size_t)i * k, x, k);
}

/* Cosine similarity of row `item` of Y (n x k) to every row; the item
 * itself gets -inf so it is never its own neighbour. */
static inline void la_cosine_rows(const float *Y, int32_t n, int k, int32_t item, float *out) {
    const float *q = Y + (size_t)item * k;
    float qn = sqrtf(la_dot(q, q, k));
    for (int32_t i = 0; i < n; i++) {
        const float *y = Y + (size_t)i * k;
        float yn = sqrtf(la_dot(y, y, k));
        out[i] = i == item ? -INFINITY : (qn > 0 && yn > 0 ? la_dot(q, y, k) / (qn * yn) : 0);
    }
}

/* Solves A x = b for symmetric positive definite A (k x k, row-major, in
 * double; destroyed: its lower triangle becomes L). Returns false when A is
 * not positive definite. */
static inline __attribute__((always_inline)) bool la_cholesky_solve(double *A, const double *b, double *x, int k) {
    for (int j = 0; j < k; j++) {
        double d = A[(size_t)j * k + j];
        for (int p = 0; p < j; p++) d -= A[(size_t)j * k + p] * A[(size_t)j * k + p];
        if (!(d > 0)) return false;
        d = sqrt(d);
        A[(size_t)j * k + j] = d;
        for (int i = j + 1; i < k; i++) {
            double s = A[(size_t)i * k + j];
            for (int p = 0; p < j; p++) s -= A[(size_t)i * k + p] * A[(size_t)j * k + p];
            A[(size_t)i * k + j] = s / d;
        }
    }
    for (int i = 0; i < k; i++) { /* L y = b */
        double s = b[i];
        for (int p = 0; p < i; p++) s -= A[(size_t)i * k + p] * x[p];
        x[i] = s / A[(size_t)i * k + i];
    }
    for (int i = k - 1; i >= 0; i--) { /* L^T x = y */
        double s = x[i];
        for (int p = i + 1; p < k; p++) s -= A[(size_t)p * k + i] * x[p];
        x[i] = s / A[(size_t)i * k + i];
    }
    return true;
}

#endif
