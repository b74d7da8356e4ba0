/* threads.c — one thread pool. Workers spin briefly on a generation counter, then sleep on a
 * condition variable, so back-to-back ops (a decode step is hundreds of them) dispatch cheaply
 * while an idle pool costs nothing.
 *
 * The nth calls fn(arg, ith, nth) of a job are items that any thread may take, the caller included:
 * one atomic word holds (job, items, next item) and a thread claims item i by advancing it. The caller
 * takes items too and waits only for items that were claimed, so a worker that the OS has not
 * scheduled yet (a loaded machine) does not hold the job up: the caller runs its item instead. Each
 * item still runs exactly once, by one thread, so tasks that split their work by ith are unchanged. */
#include "mp.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

#define SPIN_ITERS 20000

struct mp_threadpool {
    int n;
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t cv_work;
    atomic_uint gen;              /* bumped for each job (wakes the workers) */
    _Atomic uint64_t claim;       /* job << 32 | items << 16 | next item */
    atomic_int done;              /* items of the current job finished */
    atomic_int stop;
    atomic_int sleepers;
    _Atomic(mp_task_fn) fn;       /* of the current job; read by a worker only while one of its items is free */
    _Atomic(void *) arg;
    uint32_t job;
};

typedef struct { mp_threadpool *tp; int ith; } worker_arg;

/* Claims and runs free items of the current job until none is left (workers). */
static void take_items(mp_threadpool *tp) {
    uint64_t c = atomic_load_explicit(&tp->claim, memory_order_acquire);
    for (;;) {
        const int n = (int)((c >> 16) & 0xFFFF), i = (int)(c & 0xFFFF);
        if (i >= n) return;
        /* fn and arg are the job's as long as item i is free: the caller starts a new job only after every
         * item of this one has finished; the exchange below fails if the item was taken meanwhile */
        mp_task_fn fn = atomic_load_explicit(&tp->fn, memory_order_relaxed);
        void *arg = atomic_load_explicit(&tp->arg, memory_order_relaxed);
        if (atomic_compare_exchange_weak_explicit(&tp->claim, &c, c + 1, memory_order_acq_rel, memory_order_acquire)) {
            fn(arg, i, n);
            atomic_fetch_add_explicit(&tp->done, 1, memory_order_release);
            c = atomic_load_explicit(&tp->claim, memory_order_acquire);
        }
    }
}

static void *worker_main(void *p) {
    worker_arg wa = *(worker_arg *)p;
    free(p);
    mp_threadpool *tp = wa.tp;
    unsigned seen = 0;
    for (;;) {
        unsigned g;
        int spins = 0;
        while ((g = atomic_load_explicit(&tp->gen, memory_order_acquire)) == seen && !atomic_load(&tp->stop)) {
            if (++spins < SPIN_ITERS) {
                if (spins % 1000 == 0) sched_yield();
                else cpu_relax();
                continue;
            }
            pthread_mutex_lock(&tp->mu);
            atomic_fetch_add(&tp->sleepers, 1);
            while (atomic_load(&tp->gen) == seen && !atomic_load(&tp->stop)) pthread_cond_wait(&tp->cv_work, &tp->mu);
            atomic_fetch_sub(&tp->sleepers, 1);
            pthread_mutex_unlock(&tp->mu);
            spins = 0;
        }
        if (atomic_load(&tp->stop)) break;
        seen = g;
        take_items(tp);
    }
    return NULL;
}

int mp_physical_cores(void) {
    /* Count distinct (physical id, core id) pairs; fall back to online CPUs. */
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return online > 0 ? (int)online : 1;
    char line[256];
    int phys = -1, ids[1024], n = 0;
    while (fgets(line, sizeof line, f)) {
        int v;
        if (sscanf(line, "physical id : %d", &v) == 1) phys = v;
        else if (sscanf(line, "core id : %d", &v) == 1) {
            int key = phys * 4096 + v, dup = 0;
            for (int i = 0; i < n; i++) if (ids[i] == key) { dup = 1; break; }
            if (!dup && n < 1024) ids[n++] = key;
        }
    }
    fclose(f);
    if (n <= 0) return online > 0 ? (int)online : 1;
    if (online > 0 && n > online) n = (int)online;
    return n;
}

mp_threadpool *mp_threadpool_create(int n_threads) {
    if (n_threads <= 0) n_threads = mp_physical_cores();
    if (n_threads > 512) n_threads = 512;
    mp_threadpool *tp = calloc(1, sizeof *tp);
    if (!tp) return NULL;
    tp->n = n_threads;
    pthread_mutex_init(&tp->mu, NULL);
    pthread_cond_init(&tp->cv_work, NULL);
    tp->threads = calloc((size_t)n_threads, sizeof(pthread_t));
    if (!tp->threads) { free(tp); return NULL; }
    for (int i = 1; i < n_threads; i++) {
        worker_arg *wa = malloc(sizeof *wa);
        if (!wa) { tp->n = i; break; }
        wa->tp = tp;
        wa->ith = i;
        if (pthread_create(&tp->threads[i], NULL, worker_main, wa) != 0) {
            free(wa);
            tp->n = i;
            break;
        }
    }
    return tp;
}

void mp_threadpool_free(mp_threadpool *tp) {
    if (!tp) return;
    pthread_mutex_lock(&tp->mu);
    atomic_store(&tp->stop, 1);
    pthread_cond_broadcast(&tp->cv_work);
    pthread_mutex_unlock(&tp->mu);
    for (int i = 1; i < tp->n; i++) pthread_join(tp->threads[i], NULL);
    pthread_mutex_destroy(&tp->mu);
    pthread_cond_destroy(&tp->cv_work);
    free(tp->threads);
    free(tp);
}

int mp_threadpool_size(const mp_threadpool *tp) { return tp ? tp->n : 1; }

void mp_parallel_n(mp_threadpool *tp, int n, mp_task_fn fn, void *arg) {
    if (!tp || tp->n == 1 || n <= 1) {
        fn(arg, 0, 1);
        return;
    }
    if (n > tp->n) n = tp->n;
    atomic_store_explicit(&tp->fn, fn, memory_order_relaxed);
    atomic_store_explicit(&tp->arg, arg, memory_order_relaxed);
    atomic_store_explicit(&tp->done, 0, memory_order_relaxed);
    tp->job++;
    atomic_store_explicit(&tp->claim, (uint64_t)tp->job << 32 | (uint64_t)n << 16, memory_order_release);
    pthread_mutex_lock(&tp->mu);
    atomic_fetch_add_explicit(&tp->gen, 1, memory_order_release);
    if (atomic_load(&tp->sleepers) > 0) pthread_cond_broadcast(&tp->cv_work);
    pthread_mutex_unlock(&tp->mu);
    /* the caller takes items too (all of them when no worker comes in time) */
    for (;;) {
        const int i = (int)(atomic_fetch_add_explicit(&tp->claim, 1, memory_order_acq_rel) & 0xFFFF);
        if (i >= n) break;
        fn(arg, i, n);
        atomic_fetch_add_explicit(&tp->done, 1, memory_order_release);
    }
    /* Wait for the items workers took; yield when they take long, so an oversubscribed machine makes progress. */
    for (int spins = 0; atomic_load_explicit(&tp->done, memory_order_acquire) < n; spins++) {
        if (spins < 2000) cpu_relax();
        else sched_yield();
    }
}

void mp_parallel(mp_threadpool *tp, mp_task_fn fn, void *arg) {
    mp_parallel_n(tp, tp ? tp->n : 1, fn, arg);
}
