/* bandwidth.c — the machine's memory read bandwidth, measured the way token
 * generation reads weights: each thread reads its own contiguous part of a
 * 1 GiB buffer, as one stream and as four side by side (generation reads
 * four); the best of six passes is the bound.
 * `llm bench` reports generation speed as a share of this bound. */
#include <stdlib.h>
#include <string.h>

#include "llm/llm.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define HAVE_AVX2_PATH 1
#endif

typedef struct bw_job {
    const float *p;
    size_t n; /* floats */
    bool four; /* four streams per thread, or one */
    float sink[64];
} bw_job;

#ifdef HAVE_AVX2_PATH
__attribute__((target("avx2"))) static float sum1_avx2(const float *p, size_t n) {
    __m256 a = _mm256_setzero_ps(), b = a, c = a, d = a;
    for (size_t i = 0; i + 32 <= n; i += 32) {
        a = _mm256_add_ps(a, _mm256_load_ps(p + i));
        b = _mm256_add_ps(b, _mm256_load_ps(p + i + 8));
        c = _mm256_add_ps(c, _mm256_load_ps(p + i + 16));
        d = _mm256_add_ps(d, _mm256_load_ps(p + i + 24));
    }
    float t[8];
    _mm256_storeu_ps(t, _mm256_add_ps(_mm256_add_ps(a, b), _mm256_add_ps(c, d)));
    return t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
}

__attribute__((target("avx2"))) static float sum_avx2(const float *p, size_t n) {
    __m256 a = _mm256_setzero_ps(), b = a, c = a, d = a;
    size_t q = n / 4 / 16 * 16; /* four streams, 64-byte aligned */
    const float *p1 = p + q, *p2 = p + 2 * q, *p3 = p + 3 * q;
    for (size_t i = 0; i + 16 <= q; i += 16) {
        a = _mm256_add_ps(a, _mm256_add_ps(_mm256_load_ps(p + i), _mm256_load_ps(p + i + 8)));
        b = _mm256_add_ps(b, _mm256_add_ps(_mm256_load_ps(p1 + i), _mm256_load_ps(p1 + i + 8)));
        c = _mm256_add_ps(c, _mm256_add_ps(_mm256_load_ps(p2 + i), _mm256_load_ps(p2 + i + 8)));
        d = _mm256_add_ps(d, _mm256_add_ps(_mm256_load_ps(p3 + i), _mm256_load_ps(p3 + i + 8)));
    }
    float t[8];
    _mm256_storeu_ps(t, _mm256_add_ps(_mm256_add_ps(a, b), _mm256_add_ps(c, d)));
    return t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
}
#endif

static float sum_plain(const float *p, size_t n) {
    float s[8] = {0};
    for (size_t i = 0; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) s[k] += p[i + k];
    return s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7];
}

static void bw_run(void *ctx, size_t b, size_t e, int thread) {
    bw_job *j = ctx;
    /* pool_for gives each thread one contiguous range of slices. */
    const float *p = j->p + b * (j->n / 64);
    size_t n = (e - b) * (j->n / 64);
#ifdef HAVE_AVX2_PATH
    if (llm_kernels_avx2()) {
        j->sink[thread % 64] += j->four ? sum_avx2(p, n) : sum1_avx2(p, n);
        return;
    }
#endif
    j->sink[thread % 64] += sum_plain(p, n);
}

double llm_read_bandwidth_gbs(int threads) {
    size_t bytes = (size_t)1 << 30;
    float *p = aligned_alloc(64, bytes);
    if (!p) return 0;
    memset(p, 0, bytes);
    pool *pl = pool_new(threads);
    bw_job j = {p, bytes / sizeof(float), false, {0}};
    double best = 1e30;
    /* One stream and four streams per thread: the better is the bound. */
    for (int rep = 0; rep < 6; rep++) {
        j.four = rep % 2;
        uint64_t t0 = timer_now_ns();
        pool_for(pl, 64, bw_run, &j);
        double s = timer_seconds_since(t0);
        if (s < best) best = s;
    }
    pool_free(pl);
    free(p);
    return (double)bytes / best / 1e9;
}
