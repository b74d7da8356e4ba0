// matmul.cu — Y[M][N] = X[M][K] · W^T (+ bias) for every weight dtype, and the batched F32 GEMM.
//
//  M <= 64 (decode, batched decode), every dtype: our mat-vec kernel. Weights are decoded 8 values at a
//                       time (quant.cuh) and dotted with F32 activations in F32; rows of X are taken 8
//                       at a time and each output is summed in the same order whatever M is, so a row's
//                       result does not depend on the batch it came in (up to M = 64).
//  M > 64, F32 weights  cuBLAS SGEMM in full FP32 (no TF32).
//  M > 64, F16 / BF16   activations converted to F16 / BF16 in device scratch, then cublasGemmEx on tensor
//                       cores with F32 accumulation and F32 output.
//  M > 64, block quants weights dequantized to F16 in slices of rows, activations to F16, cublasGemmEx.
//  (K not a multiple of 8, F32/F16/BF16 only: the cuBLAS paths for every M.)
//
// Numerics (what the gpu parity tests allow): the mat-vec path differs from an exact dot product only by
// F32 rounding. The tensor-core path rounds each activation (and each dequantized weight) to F16, relative
// error <= 2^-11 each, so |Y - exact| <= ~2^-10 * sum_k |x_k w_k| plus F32 accumulation error; BF16 rounds
// activations to 2^-8 relative, so BF16 weights with M > 64 are held to ~2^-8 * sum_k |x_k w_k|.
// (The CPU's quantized-weight matmul rounds activations to 8 bits instead, so for block quants the GPU is
// the closer of the two to the exact product; tests/gpu/test_gpu_matmul.c checks both against it.)
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/quant.cuh"

#define MV_MAXM 8   // rows of X a mat-vec warp holds accumulators for (it loops over groups of 8)
#define MV_MAX_M 64 // largest M sent to the mat-vec kernel
#define MV_WARPS 4  // output columns (weight rows) per block, one per warp

// One warp per weight row n: lanes walk the row in chunks of 8 elements, each chunk dequantized once per
// group of 8 activation rows and dotted with them (the row stays in L1 for the next group). Fixed summation
// order: the result of (m, n) depends neither on the launch nor on M.
template <int DT>
__global__ void __launch_bounds__(32 * MV_WARPS)
k_matvec(float *__restrict__ Y, int64_t ldy, const float *__restrict__ X, int64_t ldx,
         const uint8_t *__restrict__ W, size_t row_bytes, const float *__restrict__ bias, int M, int64_t N,
         int64_t K, int vec4) {
    constexpr int CPB = mp_qt<DT>::BS / 8; // chunks per block
    const int lane = threadIdx.x & 31;
    const int64_t n = (int64_t)blockIdx.x * MV_WARPS + (threadIdx.x >> 5);
    if (n >= N) return;
    const uint8_t *row = W + (size_t)n * row_bytes;
    const int64_t nchunks = K / 8;
    const float b = bias ? bias[n] : 0.0f;
    for (int m0 = 0; m0 < M; m0 += MV_MAXM) {
        const int mg = M - m0 < MV_MAXM ? M - m0 : MV_MAXM;
        const float *Xg = X + (int64_t)m0 * ldx;
        float acc[MV_MAXM];
#pragma unroll
        for (int m = 0; m < MV_MAXM; m++) acc[m] = 0.0f;
        for (int64_t ch = lane; ch < nchunks; ch += 32) {
            const int64_t blk = ch / CPB;
            const int c = (int)(ch - blk * CPB);
            float w[8];
            mp_deq8<DT>(row + (size_t)blk * mp_qt<DT>::TS, c, w);
#pragma unroll
            for (int m = 0; m < MV_MAXM; m++) {
                if (m < mg) {
                    const float *x = Xg + m * ldx + ch * 8;
                    float xv[8];
                    if (vec4) {
                        const float4 p = *(const float4 *)x, q = *(const float4 *)(x + 4);
                        xv[0] = p.x; xv[1] = p.y; xv[2] = p.z; xv[3] = p.w;
                        xv[4] = q.x; xv[5] = q.y; xv[6] = q.z; xv[7] = q.w;
                    } else {
#pragma unroll
                        for (int j = 0; j < 8; j++) xv[j] = x[j];
                    }
                    float s = 0.0f;
#pragma unroll
                    for (int j = 0; j < 8; j++) s = fmaf(w[j], xv[j], s);
                    acc[m] += s;
                }
            }
        }
#pragma unroll
        for (int m = 0; m < MV_MAXM; m++) {
            if (m < mg) {
                const float s = mp_warp_sum(acc[m]);
                if (lane == 0) Y[(int64_t)(m0 + m) * ldy + n] = s + b;
            }
        }
    }
}

// X[M][K] (row stride ldx) -> dst[M][K] contiguous, as F16 or BF16.
__global__ void k_act_to_half(uint16_t *__restrict__ dst, const float *__restrict__ X, int64_t ldx, int64_t M,
                              int64_t K, int bf16) {
    MP_GRID_STRIDE(i, M * K) {
        int64_t m = i / K, k = i - m * K;
        float v = X[m * ldx + k];
        dst[i] = bf16 ? mp_d_to_bf16(v) : mp_d_to_f16(v);
    }
}

__global__ void k_bias_rows(float *__restrict__ Y, int64_t ldy, const float *__restrict__ bias, int64_t M, int64_t N) {
    MP_GRID_STRIDE(i, M * N) {
        int64_t m = i / N, n = i - m * N;
        Y[m * ldy + n] += bias[n];
    }
}

static void launch_matvec(mp_exec *ex, int dt, float *Y, int64_t ldy, const float *X, int64_t ldx,
                          const uint8_t *W, size_t row_bytes, const float *bias, int M, int64_t N, int64_t K) {
    int vec4 = ((uintptr_t)X % 16 == 0) && (ldx % 4 == 0);
    dim3 grid((unsigned)((N + MV_WARPS - 1) / MV_WARPS)), block(32 * MV_WARPS);
    cudaStream_t s = MP_CUDA_STREAM(ex);
#define MV_LAUNCH(D) k_matvec<D><<<grid, block, 0, s>>>(Y, ldy, X, ldx, W, row_bytes, bias, M, N, K, vec4)
    MP_QUANT_SWITCH(dt, MV_LAUNCH, {
        mp_cuda_record_error(ex, "unsupported", "matmul: weight dtype has no CUDA kernel", __FILE__, __LINE__);
        return;
    });
#undef MV_LAUNCH
    CUDA_KERNEL_CHECK(ex);
}

// C(N x M, col-major, ldy) = W(K x N col-major, ld)^T · H(K x M col-major, ld K): Y = X W^T in row-major.
static void gemm_half(mp_exec *ex, float *Y, int64_t ldy, const void *W, int64_t ldw, const void *H, int64_t M,
                      int64_t N, int64_t K, cudaDataType_t t) {
    const float one = 1.0f, zero = 0.0f;
    CUBLAS_CHECK(ex, cublasGemmEx(mp_cuda(ex)->cublas, CUBLAS_OP_T, CUBLAS_OP_N, (int)N, (int)M, (int)K, &one, W, t,
                                  (int)ldw, H, t, (int)K, &zero, Y, CUDA_R_32F, (int)ldy, CUBLAS_COMPUTE_32F,
                                  CUBLAS_GEMM_DEFAULT));
}

extern "C" void mp_cuda_matmul(mp_exec *ex, float *Y, int64_t ldy, const float *X, int64_t ldx, const mp_tensor *W,
                               const float *bias, int64_t M) {
    MP_CUDA_BEGIN(ex);
    MP_CUDA_REQUIRE(ex, W && W->data && Y && X, "matmul", "NULL operand");
    MP_CUDA_REQUIRE(ex, W->backend == MP_BACKEND_CUDA, "matmul", "weight is not in device memory (upload it with mp_cuda_upload_tensor)");
    const int64_t K = W->ne[0], N = W->ne[1];
    MP_CUDA_REQUIRE(ex, M >= 0 && K > 0 && N > 0 && ldx >= K && ldy >= N, "matmul", "bad shape or leading dimension");
    MP_CUDA_REQUIRE(ex, W->ne[2] == 1 && W->ne[3] == 1, "matmul", "weight must be 2-D");
    if (M == 0) return;
    const int dt = W->dtype;
    const int bs = mp_cuda_block_size(dt);
    MP_CUDA_REQUIRE(ex, bs > 0, "matmul", "weight dtype is not supported on CUDA (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K)");
    const int is_plain = dt == MP_F32 || dt == MP_F16 || dt == MP_BF16;
    MP_CUDA_REQUIRE(ex, is_plain || K % bs == 0, "matmul", "K is not a multiple of the quant block size");
    const size_t row_bytes = W->nb[1];
    MP_CUDA_REQUIRE(ex, (int64_t)row_bytes >= mp_dtype_row_bytes((mp_dtype)dt, K), "matmul", "weight row stride too small");
    MP_CUDA_REQUIRE(ex, mp_cuda_fits_int(M) && mp_cuda_fits_int(N) && mp_cuda_fits_int(K) && mp_cuda_fits_int(ldx) &&
                        mp_cuda_fits_int(ldy), "matmul", "dimension exceeds 2^31-1");
    cudaStream_t s = MP_CUDA_STREAM(ex);

    if (M <= MV_MAX_M && K % 8 == 0) {
        MP_CUDA_REQUIRE(ex, dt != MP_F32 || row_bytes % 4 == 0, "matmul", "F32 weight rows not 4-byte aligned");
        launch_matvec(ex, dt, Y, ldy, X, ldx, (const uint8_t *)W->data, row_bytes, bias, (int)M, N, K);
        return; // bias fused
    } else if (dt == MP_F32) {
        MP_CUDA_REQUIRE(ex, row_bytes % 4 == 0, "matmul", "F32 weight rows not 4-byte aligned");
        const float one = 1.0f, zero = 0.0f;
        CUBLAS_CHECK(ex, cublasSgemm(mp_cuda(ex)->cublas, CUBLAS_OP_T, CUBLAS_OP_N, (int)N, (int)M, (int)K, &one,
                                     (const float *)W->data, (int)(row_bytes / 4), X, (int)ldx, &zero, Y, (int)ldy));
    } else if (dt == MP_F16 || dt == MP_BF16) {
        MP_CUDA_REQUIRE(ex, row_bytes % 2 == 0, "matmul", "F16/BF16 weight rows not 2-byte aligned");
        uint16_t *h = (uint16_t *)mp_cuda_workspace(ex, (size_t)M * K * 2);
        if (!h) return;
        const int bf = dt == MP_BF16;
        k_act_to_half<<<mp_cuda_grid(M * K, 256), 256, 0, s>>>(h, X, ldx, M, K, bf);
        CUDA_KERNEL_CHECK(ex);
        gemm_half(ex, Y, ldy, W->data, (int64_t)(row_bytes / 2), h, M, N, K, bf ? CUDA_R_16BF : CUDA_R_16F);
    } else {
        // Quantized, large M: dequantize slices of weight rows to F16 (at most ~64 MiB at a time) and GEMM.
        int64_t slice = (int64_t)((64u << 20) / ((size_t)K * 2));
        if (slice < 64) slice = 64;
        slice = (slice / 64) * 64;
        if (slice > N) slice = N;
        size_t xbytes = ((size_t)M * K * 2 + 255) & ~(size_t)255;
        uint8_t *ws = (uint8_t *)mp_cuda_workspace(ex, xbytes + (size_t)slice * K * 2);
        if (!ws) return;
        uint16_t *h = (uint16_t *)ws, *wh = (uint16_t *)(ws + xbytes);
        k_act_to_half<<<mp_cuda_grid(M * K, 256), 256, 0, s>>>(h, X, ldx, M, K, 0);
        CUDA_KERNEL_CHECK(ex);
        for (int64_t n0 = 0; n0 < N; n0 += slice) {
            int64_t nc = N - n0 < slice ? N - n0 : slice;
            if (mp_cuda_dequant_rows(ex, wh, MP_OUT_F16, (const uint8_t *)W->data + (size_t)n0 * row_bytes, dt,
                                     row_bytes, nc, K) != 0)
                return;
            gemm_half(ex, Y + n0, ldy, wh, K, h, M, nc, K, CUDA_R_16F);
            if (mp_cuda_failed(ex)) return;
        }
    }
    if (bias) {
        k_bias_rows<<<mp_cuda_grid(M * N, 256), 256, 0, s>>>(Y, ldy, bias, M, N);
        CUDA_KERNEL_CHECK(ex);
    }
}

// Row-major C[M][N] = alpha A[M][K] op(B) + beta C is, in cuBLAS's column-major terms,
// C^T (N x M, ldc) = op(B)^T (N x K) · A^T (K x M): B row-major [K][N] is col-major N x K (OP_N), B row-major
// [N][K] is col-major K x N (OP_T).
extern "C" void mp_cuda_gemm_f32(mp_exec *ex, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                                 const float *B, int64_t ldb, int transB, float beta, float *C, int64_t ldc, int batch,
                                 int64_t sA, int64_t sB, int64_t sC) {
    MP_CUDA_BEGIN(ex);
    MP_CUDA_REQUIRE(ex, M >= 0 && N >= 0 && K >= 0 && batch >= 0, "gemm_f32", "negative size");
    if (M == 0 || N == 0 || batch == 0) return;
    MP_CUDA_REQUIRE(ex, A && B && C, "gemm_f32", "NULL operand");
    MP_CUDA_REQUIRE(ex, lda >= K && ldc >= N && ldb >= (transB ? K : N), "gemm_f32", "leading dimension too small");
    MP_CUDA_REQUIRE(ex, mp_cuda_fits_int(M) && mp_cuda_fits_int(N) && mp_cuda_fits_int(K) && mp_cuda_fits_int(lda) &&
                        mp_cuda_fits_int(ldb) && mp_cuda_fits_int(ldc), "gemm_f32", "dimension exceeds 2^31-1");
    cublasHandle_t h = mp_cuda(ex)->cublas;
    if (lda < 1) lda = 1; // K == 0: cuBLAS wants leading dimensions >= 1 even when nothing is read
    if (ldb < 1) ldb = 1;
    if (batch == 1) {
        CUBLAS_CHECK(ex, cublasSgemm(h, transB ? CUBLAS_OP_T : CUBLAS_OP_N, CUBLAS_OP_N, (int)N, (int)M, (int)K, &alpha, B,
                                     (int)ldb, A, (int)lda, &beta, C, (int)ldc));
    } else {
        CUBLAS_CHECK(ex, cublasSgemmStridedBatched(h, transB ? CUBLAS_OP_T : CUBLAS_OP_N, CUBLAS_OP_N, (int)N, (int)M,
                                                   (int)K, &alpha, B, (int)ldb, sB, A, (int)lda, sA, &beta, C, (int)ldc,
                                                   sC, batch));
    }
}
