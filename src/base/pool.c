/* pool.c — a fixed thread pool for parallel-for jobs.
 * Between jobs a worker spins briefly on the job counter (a token of LLM
 * generation issues hundreds of small jobs, and a futex wake-up costs more
 * than the job), then sleeps on a condition variable, so a busy neighbour
 * process never faces threads that spin forever. One job at a time; the
 * calling thread runs chunk 0 itself. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "base.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

/* About 20-50 microseconds of pause instructions. */
#define POOL_SPIN 2000

struct pool {
    int nthreads; /* including the caller */
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t work_cv, done_cv;
    _Atomic uint64_t generation; /* bumped per job */
    _Atomic int pending;         /* workers still running the current job */
    int sleeping;                /* workers waiting on work_cv (under mu) */
    bool caller_waiting;         /* the caller waits on done_cv (under mu) */
    _Atomic bool stop;
    bool solo; /* pool_set_solo: run jobs on the caller only */
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
    for (;;) {
        uint64_t g = atomic_load_explicit(&p->generation, memory_order_acquire);
        for (int i = 0; i < POOL_SPIN && g == seen && !atomic_load(&p->stop); i++) {
            cpu_relax();
            g = atomic_load_explicit(&p->generation, memory_order_acquire);
        }
        if (g == seen) {
            pthread_mutex_lock(&p->mu);
            p->sleeping++;
            while (!atomic_load(&p->stop) && (g = atomic_load(&p->generation)) == seen)
                pthread_cond_wait(&p->work_cv, &p->mu);
            p->sleeping--;
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->stop)) break;
        seen = g;
        size_t b, e;
        pool_chunk(p, t, &b, &e);
        if (b < e) p->fn(p->ctx, b, e, t);
        if (atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&p->mu);
            if (p->caller_waiting) pthread_cond_signal(&p->done_cv);
            pthread_mutex_unlock(&p->mu);
        }
    }
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
    atomic_init(&p->generation, 0);
    atomic_init(&p->pending, 0);
    atomic_init(&p->stop, false);
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
    atomic_store(&p->stop, true);
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

void pool_set_solo(pool *p, bool solo) { p->solo = solo; }

void pool_for(pool *p, size_t n, pool_fn fn, void *ctx) {
    if (n == 0) return;
    if (p->nthreads == 1 || p->solo) {
        fn(ctx, 0, n, 0);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    p->n = n;
    atomic_store_explicit(&p->pending, p->nthreads - 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->generation, 1, memory_order_acq_rel);
    /* Workers that went to sleep need a wake-up; spinning ones see the
     * counter. The check under the mutex pairs with the sleeper's. */
    pthread_mutex_lock(&p->mu);
    if (p->sleeping) pthread_cond_broadcast(&p->work_cv);
    pthread_mutex_unlock(&p->mu);
    size_t b, e;
    pool_chunk(p, 0, &b, &e);
    if (b < e) fn(ctx, b, e, 0);
    for (int i = 0; i < POOL_SPIN && atomic_load_explicit(&p->pending, memory_order_acquire) > 0; i++) cpu_relax();
    if (atomic_load_explicit(&p->pending, memory_order_acquire) > 0) {
        pthread_mutex_lock(&p->mu);
        p->caller_waiting = true;
        while (atomic_load(&p->pending) > 0) pthread_cond_wait(&p->done_cv, &p->mu);
        p->caller_waiting = false;
        pthread_mutex_unlock(&p->mu);
    }
}
