/* membw.c — the machine's read bandwidth, the bound that token generation
 * runs into: each thread sums its share of a 1 GiB array (AVX2 loads, four
 * accumulators); best of 5 passes. Usage: membw [THREADS...] */
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BYTES (1ull << 30)

typedef struct {
    const float *p;
    size_t n;
    float sum;
} job;

__attribute__((target("avx2"))) static void *run(void *arg) {
    job *j = arg;
    __m256 a = _mm256_setzero_ps(), b = a, c = a, d = a;
    for (size_t i = 0; i + 32 <= j->n; i += 32) {
        a = _mm256_add_ps(a, _mm256_load_ps(j->p + i));
        b = _mm256_add_ps(b, _mm256_load_ps(j->p + i + 8));
        c = _mm256_add_ps(c, _mm256_load_ps(j->p + i + 16));
        d = _mm256_add_ps(d, _mm256_load_ps(j->p + i + 24));
    }
    float t[8];
    _mm256_storeu_ps(t, _mm256_add_ps(_mm256_add_ps(a, b), _mm256_add_ps(c, d)));
    j->sum = t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
    return NULL;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    float *p = aligned_alloc(64, BYTES);
    if (!p) return 1;
    memset(p, 0, BYTES);
    size_t n = BYTES / sizeof(float);
    for (int a = 1; a < (argc > 1 ? argc : 3); a++) {
        int t = argc > 1 ? atoi(argv[a]) : a;
        if (t < 1 || t > 64) return 64;
        double best = 1e9;
        for (int rep = 0; rep < 5; rep++) {
            pthread_t th[64];
            job j[64];
            double t0 = now();
            for (int i = 0; i < t; i++) {
                j[i] = (job){p + n / t * i, n / t, 0};
                pthread_create(&th[i], NULL, run, &j[i]);
            }
            for (int i = 0; i < t; i++) pthread_join(th[i], NULL);
            double s = now() - t0;
            if (s < best) best = s;
        }
        printf("read bandwidth, %d thread%s: %.1f GB/s\n", t, t > 1 ? "s" : "", BYTES / best / 1e9);
    }
    free(p);
    return 0;
}
