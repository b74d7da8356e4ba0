/* parallel.c — the range-splitting parallel-for the CPU ops share (see cpu_ops.h). */
#include "kernels/cpu/cpu_ops.h"

typedef struct {
    mp_range_fn fn;
    void *ctx;
    int64_t n, align;
} pfor_job;

static void pfor_task(void *arg, int ith, int nth) {
    const pfor_job *j = (const pfor_job *)arg;
    int64_t blocks = (j->n + j->align - 1) / j->align, lo, hi;
    mp_split_range(blocks, ith, nth, &lo, &hi);
    lo *= j->align;
    hi *= j->align;
    if (hi > j->n) hi = j->n;
    if (lo < hi) j->fn(j->ctx, lo, hi);
}

void mp_cpu_parallel_for(const mp_exec *ex, int64_t n, int64_t min_chunk, int64_t align, mp_range_fn fn,
                         void *ctx) {
    if (n <= 0) return;
    if (align < 1) align = 1;
    if (min_chunk < 1) min_chunk = 1;
    mp_threadpool *tp = mp_cpu_tp(ex);
    int nth = tp ? mp_threadpool_size(tp) : 1;
    int64_t want = n / min_chunk;
    if (want < nth) nth = (int)(want < 1 ? 1 : want);
    int64_t blocks = (n + align - 1) / align;
    if (blocks < nth) nth = (int)blocks;
    if (nth <= 1) {
        fn(ctx, 0, n);
        return;
    }
    pfor_job j = {fn, ctx, n, align};
    mp_parallel_n(tp, nth, pfor_task, &j);
}
