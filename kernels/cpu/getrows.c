/* getrows.c — embedding lookup: rows ids[i] of a table in any dtype into F32. Ids outside the table
 * give a row of NaN (the op has no error channel; a NaN row is impossible to miss downstream). */
#include "kernels/cpu/ref.h"
#include "kernels/ops.h"

#include <math.h>
#ifdef MP_HAVE_CUDA
#include "kernels/cuda/cuda_ops.h"
#endif

typedef void (*deq_fn)(mp_dtype, const void *, float *, int64_t);

static void get_rows_range(deq_fn deq, float *y, const mp_tensor *t, const int32_t *ids, int64_t i0, int64_t i1) {
    const int64_t cols = t->ne[0];
    const int64_t rows = t->ne[1] * t->ne[2] * t->ne[3];
    const int ok = mp_ref_dequantize_supported(t->dtype) && mp_dtype_row_bytes(t->dtype, cols) >= 0;
    for (int64_t i = i0; i < i1; i++) {
        float *dst = y + i * cols;
        if (!ok || ids[i] < 0 || ids[i] >= rows) {
            for (int64_t c = 0; c < cols; c++) dst[c] = NAN;
            continue;
        }
        deq(t->dtype, (const uint8_t *)t->data + (size_t)ids[i] * t->nb[1], dst, cols);
    }
}

void mp_ref_get_rows(float *y, const mp_tensor *table, const int32_t *ids, int64_t n) {
    if (n <= 0) return;
    get_rows_range(mp_ref_dequantize_row, y, table, ids, 0, n);
}

typedef struct { float *y; const mp_tensor *t; const int32_t *ids; int64_t n; deq_fn deq; } rows_job;

static void rows_task(void *arg, int ith, int nth) {
    const rows_job *j = arg;
    int64_t lo, hi;
    mp_split_range(j->n, ith, nth, &lo, &hi);
    get_rows_range(j->deq, j->y, j->t, j->ids, lo, hi);
}

void mp_get_rows(mp_exec *ex, float *y, const mp_tensor *table, const int32_t *ids, int64_t n) {
#ifdef MP_HAVE_CUDA
    if (ex->backend == MP_BACKEND_CUDA) {
        mp_cuda_get_rows(ex, y, table, ids, n);
        return;
    }
#endif
    if (n <= 0) return;
    rows_job j = {y, table, ids, n, mp_cpu_level() >= 1 ? mp_dequantize_row : mp_ref_dequantize_row};
    int nth = n * table->ne[0] < (1 << 15) ? 1 : (int)(n < 1024 ? n : 1024);
    mp_parallel_n(ex ? ex->tp : NULL, nth, rows_task, &j);
}
