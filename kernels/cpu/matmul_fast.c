/* matmul_fast.c — picks the SIMD path of matmul / GEMM / dequantize for a CPU level. */
#include "kernels/cpu/gemm_engine.h"
#include "kernels/cpu/matmul_impl.h"
#include "kernels/cpu/matmul_q.h"
#include "kernels/cpu/quant_impl.h"

static const mp_gemm_kernels *gemm_kernels(int level) {
    return level >= 2 ? mp_gemm_kernels_avx512() : mp_gemm_kernels_avx2();
}

int mp_matmul_fast(mp_exec *ex, int level, float *Y, int64_t ldy, const float *X, int64_t ldx, const mp_tensor *W,
                   const float *bias, int64_t M) {
    if (mp_q8_act_block(W->dtype)) {
        mp_q8_kernel kern = level >= 2 ? mp_q8_kernel_avx512(W->dtype) : mp_q8_kernel_avx2(W->dtype);
        mp_q8_panel_kernel pkern = level >= 2 ? mp_q8_panel_kernel_avx512(W->dtype) : NULL;
        if (mp_q8_matmul_run(ex, kern, pkern, Y, ldy, X, ldx, W, bias, M)) return 1;
    }
    const mp_gemm_kernels *kern = gemm_kernels(level);
    const int bf16dot = W->dtype == MP_BF16 && level >= 2 && mp_cpu()->avx512_bf16 && kern->ukernel_bf16;
    if ((W->dtype == MP_F32 || W->dtype == MP_F16 || W->dtype == MP_BF16) && M <= kern->gemv_max_m) {
        mp_gemv_run(ex, kern, bf16dot, W->dtype, W->data, W->nb[1], W->ne[1], W->ne[0], X, ldx, M, Y, ldy, bias);
        return 1;
    }
    mp_gemm_problem p = {
        .M = M, .N = W->ne[1], .K = W->ne[0], .A = X, .lda = ldx, .alpha = 1.0f,
        .b_kind = MP_GEMM_B_NK, .B = W->data, .b_dt = W->dtype, .b_row_bytes = W->nb[1],
        .C = Y, .ldc = ldy, .init = bias ? MP_GEMM_INIT_BIAS : MP_GEMM_INIT_ZERO, .bias = bias, .batch = 1,
        .bf16dot = bf16dot,
    };
    mp_gemm_engine_run(ex, kern, &p);
    return 1;
}

int mp_gemm_fast(mp_exec *ex, int level, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                 const float *B, int64_t ldb, int transB, float beta, float *C, int64_t ldc, int batch, int64_t sA,
                 int64_t sB, int64_t sC) {
    mp_gemm_problem p = {
        .M = M, .N = N, .K = K, .A = A, .lda = lda, .alpha = alpha,
        .b_kind = transB ? MP_GEMM_B_NK : MP_GEMM_B_KN, .B = B, .ldb = ldb, .b_dt = MP_F32,
        .b_row_bytes = (size_t)ldb * sizeof(float), .C = C, .ldc = ldc, .init = MP_GEMM_INIT_BETA, .beta = beta,
        .batch = batch, .sA = sA, .sB = transB ? sB * (int64_t)sizeof(float) : sB, .sC = sC,
    };
    mp_gemm_engine_run(ex, gemm_kernels(level), &p);
    return 1;
}

int mp_fast_dequantize_row(mp_dtype dt, const void *src, float *dst, int64_t n) {
    (void)dt; (void)src; (void)dst; (void)n;
    return 0;
}
