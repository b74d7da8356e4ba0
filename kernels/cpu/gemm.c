/* gemm.c — plain F32 GEMM (attention scores, im2col convolutions): dispatcher + scalar reference.
 *
 * Semantics (mp_ref_gemm_f32; the SIMD path in gemm_*.c reproduces it bit for bit): every C[m][n]
 * starts at beta * C[m][n] (0 when beta == 0, C is then not read) and accumulates
 * fmaf(alpha * A[m][k], op(B)[k][n], acc) for k = 0..K-1 in order. */
#include "kernels/cpu/matmul_impl.h"
#include "kernels/cpu/ref.h"
#include "kernels/ops.h"

#include <math.h>
#ifdef MP_HAVE_CUDA
#include "kernels/cuda/cuda_ops.h"
#endif

static void ref_gemm_rows(int64_t m0, int64_t m1, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                          const float *B, int64_t ldb, int transB, float beta, float *C, int64_t ldc) {
    for (int64_t m = m0; m < m1; m++) {
        for (int64_t n = 0; n < N; n++) {
            float acc = beta == 0.0f ? 0.0f : beta * C[m * ldc + n];
            if (transB)
                for (int64_t k = 0; k < K; k++) acc = fmaf(alpha * A[m * lda + k], B[n * ldb + k], acc);
            else
                for (int64_t k = 0; k < K; k++) acc = fmaf(alpha * A[m * lda + k], B[k * ldb + n], acc);
            C[m * ldc + n] = acc;
        }
    }
}

void mp_ref_gemm_f32(int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda, const float *B,
                     int64_t ldb, int transB, float beta, float *C, int64_t ldc, int batch, int64_t sA, int64_t sB,
                     int64_t sC) {
    if (M <= 0 || N <= 0 || K < 0 || batch <= 0) return;
    for (int b = 0; b < batch; b++)
        ref_gemm_rows(0, M, N, K, alpha, A + b * sA, lda, B + b * sB, ldb, transB, beta, C + b * sC, ldc);
}

typedef struct {
    int64_t M, N, K;
    float alpha, beta;
    const float *A, *B;
    float *C;
    int64_t lda, ldb, ldc, sA, sB, sC;
    int transB, batch;
} gemm_job;

static void ref_gemm_task(void *arg, int ith, int nth) {
    const gemm_job *j = arg;
    int64_t lo, hi;
    mp_split_range(j->M * j->batch, ith, nth, &lo, &hi);
    for (int64_t r = lo; r < hi; r++) {
        int64_t b = r / j->M, m = r % j->M;
        ref_gemm_rows(m, m + 1, j->N, j->K, j->alpha, j->A + b * j->sA, j->lda, j->B + b * j->sB, j->ldb, j->transB,
                      j->beta, j->C + b * j->sC, j->ldc);
    }
}

void mp_gemm_f32(mp_exec *ex, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                 const float *B, int64_t ldb, int transB, float beta, float *C, int64_t ldc, int batch, int64_t sA,
                 int64_t sB, int64_t sC) {
#ifdef MP_HAVE_CUDA
    if (ex->backend == MP_BACKEND_CUDA) {
        mp_cuda_gemm_f32(ex, M, N, K, alpha, A, lda, B, ldb, transB, beta, C, ldc, batch, sA, sB, sC);
        return;
    }
#endif
    if (M <= 0 || N <= 0 || K < 0 || batch <= 0) return;
    const int level = mp_cpu_level();
    if (level >= 1 && mp_gemm_fast(ex, level, M, N, K, alpha, A, lda, B, ldb, transB, beta, C, ldc, batch, sA, sB, sC))
        return;
    gemm_job j = {M, N, K, alpha, beta, A, B, C, lda, ldb, ldc, sA, sB, sC, transB, batch};
    int64_t work = M * N * (K + 1) * batch;
    mp_parallel_n(ex ? ex->tp : NULL, work < (1 << 16) ? 1 : 1024, ref_gemm_task, &j);
}
