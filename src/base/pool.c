/* pool.c — a fixed thread pool for parallel-for jobs.
 * Workers sleep on a condition variable between jobs (no spinning, so a
 * busy neighbour process does not make them collapse). One job at a time;
 * the calling thread runs chunk 0 itself. */
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "base.h"

struct pool {
    int nthreads; /* including the caller */
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t work_cv, done_cv;
    uint64_t generation; /* bumped per job */
    int pending;         /* workers still running the current job */
    bool stop;
    pool_fn fn;
    void *ctx;
    size_t n;
};

typedef struct {
    pool *p;
    int index;
} pool_worker_arg;

static void pool_chunk(const pool *p, int t, size_t *b, size_t *e) {
    size_t per = p->n / (size_t)p->nthreads, rem = p->n % (size_t)p->nthreads;
    size_t ut = (size_t)t;
    *b = ut * per + (ut < rem ? ut : rem);
    *e = *b + per + (ut < rem ? 1 : 0);
}

static void *pool_worker(void *arg) {
    pool_worker_arg *wa = arg;
    pool *p = wa->p;
    int t = wa->index;
    free(wa);
    uint64_t seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stop && p->generation == seen) pthread_cond_wait(&p->work_cv, &p->mu);
        if (p->stop) break;
        seen = p->generation;
        pthread_mutex_unlock(&p->mu);
        size_t b, e;
        pool_chunk(p, t, &b, &e);
        if (b < e) p->fn(p->ctx, b, e, t);
        pthread_mutex_lock(&p->mu);
        if (--p->pending == 0) pthread_cond_signal(&p->done_cv);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

pool *pool_new(int nthreads) {
    if (nthreads <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        nthreads = n > 0 ? (int)n : 1;
    }
    pool *p = xcalloc(1, sizeof *p);
    p->nthreads = nthreads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work_cv, NULL);
    pthread_cond_init(&p->done_cv, NULL);
    p->threads = xcalloc((size_t)nthreads, sizeof *p->threads);
    for (int i = 1; i < nthreads; i++) {
        pool_worker_arg *wa = xmalloc(sizeof *wa);
        wa->p = p;
        wa->index = i;
        if (pthread_create(&p->threads[i], NULL, pool_worker, wa) != 0) {
            /* Fewer threads still give correct results. */
            free(wa);
            p->nthreads = i;
            break;
        }
    }
    return p;
}

void pool_free(pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_broadcast(&p->work_cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->nthreads; i++) pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->work_cv);
    pthread_cond_destroy(&p->done_cv);
    free(p->threads);
    free(p);
}

int pool_threads(const pool *p) { return p->nthreads; }

void pool_for(pool *p, size_t n, pool_fn fn, void *ctx) {
    if (n == 0) return;
    if (p->nthreads == 1) {
        fn(ctx, 0, n, 0);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->ctx = ctx;
    p->n = n;
    p->pending = p->nthreads - 1;
    p->generation++;
    pthread_cond_broadcast(&p->work_cv);
    pthread_mutex_unlock(&p->mu);
    size_t b, e;
    pool_chunk(p, 0, &b, &e);
    if (b < e) fn(ctx, b, e, 0);
    pthread_mutex_lock(&p->mu);
    while (p->pending > 0) pthread_cond_wait(&p->done_cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
}
