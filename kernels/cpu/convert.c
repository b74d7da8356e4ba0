/* convert.c — copy/convert n elements between dtypes: same dtype (copy), anything -> F32 (dequantize),
 * F32 -> anything quantizable, and other pairs through F32 in chunks. Unsupported pairs or an n that is
 * not a multiple of both block sizes fill dst with NaN (F32) or zero bytes (the op has no error channel;
 * check with mp_ref_quantize_supported / mp_dtype_row_bytes first). */
#include "kernels/cpu/ref.h"
#include "kernels/ops.h"

#include <math.h>
#ifdef MP_HAVE_CUDA
#include "kernels/cuda/cuda_ops.h"
#endif

#define CONV_CHUNK 4096 /* a multiple of every block size */

typedef void (*deq_fn)(mp_dtype, const void *, float *, int64_t);
typedef int64_t (*q_fn)(mp_dtype, const float *, void *, int64_t);

static int convert_ok(mp_dtype dst_dt, mp_dtype src_dt, int64_t n) {
    if (mp_dtype_row_bytes(dst_dt, n) < 0 || mp_dtype_row_bytes(src_dt, n) < 0) return 0;
    if (dst_dt == src_dt) return 1;
    if (!mp_ref_dequantize_supported(src_dt)) return 0;
    return dst_dt == MP_F32 || mp_ref_quantize_supported(dst_dt);
}

static void convert_fail(void *dst, mp_dtype dst_dt, int64_t n) {
    if (dst_dt == MP_F32) {
        for (int64_t i = 0; i < n; i++) ((float *)dst)[i] = NAN;
    } else {
        int64_t bytes = mp_dtype_row_bytes(dst_dt, n);
        if (bytes > 0) memset(dst, 0, (size_t)bytes);
    }
}

/* Elements [i0, i1) (multiples of both block sizes). */
static void convert_range(deq_fn deq, q_fn q, void *dst, mp_dtype dst_dt, const void *src, mp_dtype src_dt,
                          int64_t i0, int64_t i1) {
    uint8_t *d = (uint8_t *)dst + mp_dtype_row_bytes(dst_dt, i0);
    const uint8_t *s = (const uint8_t *)src + mp_dtype_row_bytes(src_dt, i0);
    const int64_t n = i1 - i0;
    if (n <= 0) return;
    if (dst_dt == src_dt) {
        memmove(d, s, (size_t)mp_dtype_row_bytes(src_dt, n));
    } else if (dst_dt == MP_F32) {
        deq(src_dt, s, (float *)d, n);
    } else if (src_dt == MP_F32) {
        q(dst_dt, (const float *)s, d, n);
    } else {
        float buf[CONV_CHUNK];
        for (int64_t k = 0; k < n; k += CONV_CHUNK) {
            int64_t c = n - k < CONV_CHUNK ? n - k : CONV_CHUNK;
            deq(src_dt, s + mp_dtype_row_bytes(src_dt, k), buf, c);
            q(dst_dt, buf, d + mp_dtype_row_bytes(dst_dt, k), c);
        }
    }
}

void mp_ref_convert(void *dst, mp_dtype dst_dt, const void *src, mp_dtype src_dt, int64_t n) {
    if (n <= 0) return;
    if (!convert_ok(dst_dt, src_dt, n)) {
        convert_fail(dst, dst_dt, n);
        return;
    }
    convert_range(mp_ref_dequantize_row, mp_ref_quantize_row, dst, dst_dt, src, src_dt, 0, n);
}

typedef struct {
    void *dst;
    const void *src;
    mp_dtype dst_dt, src_dt;
    int64_t n, unit;
    deq_fn deq;
    q_fn q;
} conv_job;

static void conv_task(void *arg, int ith, int nth) {
    const conv_job *j = arg;
    int64_t lo, hi;
    mp_split_range(j->n / j->unit, ith, nth, &lo, &hi);
    convert_range(j->deq, j->q, j->dst, j->dst_dt, j->src, j->src_dt, lo * j->unit, hi * j->unit);
}

void mp_convert(mp_exec *ex, void *dst, mp_dtype dst_dt, const void *src, mp_dtype src_dt, int64_t n) {
#ifdef MP_HAVE_CUDA
    if (ex->backend == MP_BACKEND_CUDA) {
        mp_cuda_convert(ex, dst, dst_dt, src, src_dt, n);
        return;
    }
#endif
    if (n <= 0) return;
    if (!convert_ok(dst_dt, src_dt, n)) {
        convert_fail(dst, dst_dt, n);
        return;
    }
    /* Split into units that are whole blocks of both dtypes (CONV_CHUNK is a multiple of every block
     * size; small n runs in one piece). */
    int64_t unit = n % CONV_CHUNK == 0 ? CONV_CHUNK : n;
    conv_job j = {dst, src, dst_dt, src_dt, n, unit, mp_cpu_level() >= 1 ? mp_dequantize_row : mp_ref_dequantize_row,
                  mp_quantize_row};
    int64_t units = n / unit;
    mp_parallel_n(ex ? ex->tp : NULL, units > 1024 ? 1024 : (int)units, conv_task, &j);
}
