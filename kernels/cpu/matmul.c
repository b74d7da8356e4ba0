/* matmul.c — Y = X · W^T (+ bias): nn.Linear for weights in any dtype. This file holds the dispatcher
 * and the scalar reference; the SIMD paths live in matmul_*.c / gemm_*.c.
 *
 * Reference semantics (what mp_ref_matmul computes and the F32/F16 fast paths reproduce exactly):
 * each Y[m][n] starts at bias[n] (or 0) and accumulates fmaf(X[m][k], W[n][k], acc) for k = 0..K-1 in
 * order, W dequantized exactly to F32. Work is split over output columns only, so no dot product is
 * ever split between threads and results do not depend on the thread count. */
#include "kernels/cpu/matmul_impl.h"
#include "kernels/cpu/ref.h"
#include "kernels/ops.h"

#include <math.h>
#ifdef MP_HAVE_CUDA
#include "kernels/cuda/cuda_ops.h"
#endif

#define REF_CHUNK 4096 /* K elements dequantized at a time (a multiple of every block size) */

int mp_matmul_check(const float *Y, const float *X, const mp_tensor *W, int64_t ldx, int64_t ldy, int64_t M) {
    if (!W || !Y || M <= 0) return 0;
    if (!X && W->ne[0] > 0) return 0;
    if (!mp_ref_dequantize_supported(W->dtype)) return 0;
    if (W->ne[0] <= 0 || W->ne[1] <= 0) return 0;
    if (mp_dtype_row_bytes(W->dtype, W->ne[0]) < 0) return 0;
    if (ldx < W->ne[0] || ldy < W->ne[1]) return 0;
    return 1;
}

void mp_matmul_fill_nan(float *Y, int64_t ldy, int64_t N, int64_t M) {
    if (!Y) return;
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) Y[m * ldy + n] = NAN;
}

/* Columns [n0, n1) of the reference matmul. */
static void ref_matmul_cols(float *Y, int64_t ldy, const float *X, int64_t ldx, const mp_tensor *W,
                            const float *bias, int64_t M, int64_t n0, int64_t n1) {
    const int64_t K = W->ne[0];
    float buf[REF_CHUNK];
    for (int64_t n = n0; n < n1; n++) {
        const uint8_t *wrow = (const uint8_t *)W->data + (size_t)n * W->nb[1];
        for (int64_t k0 = 0; k0 < K; k0 += REF_CHUNK) {
            const int64_t kc = K - k0 < REF_CHUNK ? K - k0 : REF_CHUNK;
            mp_ref_dequantize_row(W->dtype, wrow + mp_dtype_row_bytes(W->dtype, k0), buf, kc);
            for (int64_t m = 0; m < M; m++) {
                const float *x = X + m * ldx + k0;
                float acc = k0 ? Y[m * ldy + n] : (bias ? bias[n] : 0.0f);
                for (int64_t k = 0; k < kc; k++) acc = fmaf(x[k], buf[k], acc);
                Y[m * ldy + n] = acc;
            }
        }
    }
}

void mp_ref_matmul(float *Y, int64_t ldy, const float *X, int64_t ldx, const mp_tensor *W, const float *bias,
                   int64_t M) {
    if (!mp_matmul_check(Y, X, W, ldx, ldy, M)) {
        if (W) mp_matmul_fill_nan(Y, ldy, W->ne[1], M);
        return;
    }
    ref_matmul_cols(Y, ldy, X, ldx, W, bias, M, 0, W->ne[1]);
}

typedef struct {
    float *Y;
    int64_t ldy;
    const float *X;
    int64_t ldx;
    const mp_tensor *W;
    const float *bias;
    int64_t M;
} ref_job;

static void ref_task(void *arg, int ith, int nth) {
    const ref_job *j = arg;
    int64_t lo, hi;
    mp_split_range(j->W->ne[1], ith, nth, &lo, &hi);
    ref_matmul_cols(j->Y, j->ldy, j->X, j->ldx, j->W, j->bias, j->M, lo, hi);
}

void mp_matmul_ref_threaded(mp_exec *ex, float *Y, int64_t ldy, const float *X, int64_t ldx, const mp_tensor *W,
                            const float *bias, int64_t M) {
    ref_job j = {Y, ldy, X, ldx, W, bias, M};
    int64_t work = M * W->ne[0] * W->ne[1];
    int nth = work < (1 << 16) ? 1 : (int)(W->ne[1] < 1024 ? W->ne[1] : 1024);
    mp_parallel_n(ex ? ex->tp : NULL, nth, ref_task, &j);
}

void mp_matmul(mp_exec *ex, float *Y, int64_t ldy, const float *X, int64_t ldx, const mp_tensor *W,
               const float *bias, int64_t M) {
#ifdef MP_HAVE_CUDA
    if (ex->backend == MP_BACKEND_CUDA) {
        mp_cuda_matmul(ex, Y, ldy, X, ldx, W, bias, M);
        return;
    }
#endif
    if (!mp_matmul_check(Y, X, W, ldx, ldy, M)) {
        if (W && M > 0) mp_matmul_fill_nan(Y, ldy, W->ne[1], M);
        return;
    }
    const int level = mp_cpu_level();
    if (level >= 1 && mp_matmul_fast(ex, level, Y, ldy, X, ldx, W, bias, M)) return;
    mp_matmul_ref_threaded(ex, Y, ldy, X, ldx, W, bias, M);
}
