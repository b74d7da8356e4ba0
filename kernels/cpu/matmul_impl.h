/* matmul_impl.h — internals of the matmul/GEMM files in kernels/cpu (not a public interface). */
#ifndef MP_CPU_MATMUL_IMPL_H
#define MP_CPU_MATMUL_IMPL_H

#include "kernels/mp.h"

/* 1 if the matmul arguments are usable (dtype known, shapes consistent). */
int mp_matmul_check(const float *Y, const float *X, const mp_tensor *W, int64_t ldx, int64_t ldy, int64_t M);
void mp_matmul_fill_nan(float *Y, int64_t ldy, int64_t N, int64_t M);
/* The scalar reference, split over output columns on ex->tp. */
void mp_matmul_ref_threaded(mp_exec *ex, float *Y, int64_t ldy, const float *X, int64_t ldx, const mp_tensor *W,
                            const float *bias, int64_t M);
/* SIMD matmul at `level` (1 AVX2, 2 AVX-512); returns 0 when it has no path for these arguments. */
int mp_matmul_fast(mp_exec *ex, int level, float *Y, int64_t ldy, const float *X, int64_t ldx, const mp_tensor *W,
                   const float *bias, int64_t M);

/* SIMD F32 GEMM at `level`; returns 0 when it did nothing (the caller runs the reference). */
int mp_gemm_fast(mp_exec *ex, int level, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                 const float *B, int64_t ldb, int transB, float beta, float *C, int64_t ldc, int batch, int64_t sA,
                 int64_t sB, int64_t sC);

#endif
