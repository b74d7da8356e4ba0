/* gemm_engine.h — the blocked, packed F32 GEMM engine shared by mp_gemm_f32 and mp_matmul (F32, F16,
 * BF16-as-F32 and dequantized weights). The driver (gemm_engine.c) is generic C; each SIMD level supplies
 * a micro-kernel and B packers (gemm_avx2.c, gemm_avx512.c). Internal to kernels/cpu. */
#ifndef MP_CPU_GEMM_ENGINE_H
#define MP_CPU_GEMM_ENGINE_H

#include "kernels/mp.h"

/* How a C tile starts at the first K panel (later panels always continue from C). */
enum { MP_GEMM_INIT_ZERO = 0, MP_GEMM_INIT_LOAD = 1, MP_GEMM_INIT_BIAS = 2, MP_GEMM_INIT_BETA = 3 };

typedef struct mp_gemm_kernels {
    int mr, nr; /* register tile: rows of A, columns of B */
    /* C[mr][nr] (row stride ldc) = init, then acc = fma(A[k][i], B[k][j], acc) for k < kc. A is packed
     * [kc][MR], B packed [kc][NR] (zero padded past nr). bias: nr values (mode BIAS). */
    void (*ukernel)(int mr, int64_t kc, const float *A, const float *B, float *C, int64_t ldc, int nr, int mode,
                    const float *bias, float beta);
    /* Bp[k][j] = B[k0+k][n0+j] (row-major B, ldb floats) */
    void (*pack_b_kn)(const float *B, int64_t ldb, int64_t k0, int64_t kc, int64_t n0, int nr, float *Bp);
    /* Bp[k][j] = W[n0+j][k0+k], W rows of dtype dt (F32, F16 or BF16), row_bytes apart */
    void (*pack_b_nk)(mp_dtype dt, const void *W, size_t row_bytes, int64_t n0, int nr, int64_t k0, int64_t kc,
                      float *Bp);
    /* Small-M matmul straight from weight rows (F32/F16/BF16): Y[m][n0 .. n0+nr) for m < M (M <= gemv_max_m,
     * nr <= nr_gemv), transposing the rows in registers; same FMA chain as the micro-kernel. */
    int nr_gemv, gemv_max_m;
    void (*gemv)(mp_dtype dt, const void *W, size_t row_bytes, int64_t n0, int nr, int64_t K, const float *X,
                 int64_t ldx, int64_t M, float *Y, int64_t ldy, const float *bias);
    /* BF16 weights with vdpbf16ps (NULL where the level has none): the activations are rounded to BF16 and
     * every output is one vdpbf16ps chain over k pairs (see gemm_avx512.c). Packed A/B hold bf16 pairs. */
    void (*ukernel_bf16)(int mr, int64_t kc, const float *A, const float *B, float *C, int64_t ldc, int nr, int mode,
                         const float *bias, float beta);
    void (*pack_b_nk_bf16)(const void *W, size_t row_bytes, int64_t n0, int nr, int64_t k0, int64_t kc, float *Bp);
    void (*pack_a_bf16)(const float *A, int64_t lda, int mr, int64_t k0, int64_t kc, float alpha, float *Ap);
    void (*gemv_bf16)(const void *W, size_t row_bytes, int64_t n0, int nr, int64_t K, const float *X, int64_t ldx,
                      int64_t M, float *Y, int64_t ldy, const float *bias);
} mp_gemm_kernels;

const mp_gemm_kernels *mp_gemm_kernels_avx2(void);
const mp_gemm_kernels *mp_gemm_kernels_avx512(void);

/* One (batched) problem: C[M][N] = init + (alpha*A)[M][K] · B, B given one of three ways. */
typedef struct mp_gemm_problem {
    int64_t M, N, K;
    const float *A;
    int64_t lda;
    float alpha;
    /* B: b_kind KN: B[k][n] floats (ldb); NK: rows B[n][k] of dtype b_dt (F32/F16/BF16 packed directly,
     * anything else dequantized per row chunk), b_row_bytes apart. */
    enum { MP_GEMM_B_KN = 0, MP_GEMM_B_NK = 1 } b_kind;
    const void *B;
    int64_t ldb;
    mp_dtype b_dt;
    size_t b_row_bytes;
    float *C;
    int64_t ldc;
    int init;          /* MP_GEMM_INIT_ZERO / BIAS / BETA */
    const float *bias; /* N values (init BIAS) */
    float beta;        /* init BETA */
    int batch;
    int bf16dot;        /* B rows are BF16 and kern->ukernel_bf16 runs them (activations rounded to BF16) */
    int64_t sA, sB, sC; /* per batch item: floats for A and C, elements (KN) or bytes (NK) for B */
} mp_gemm_problem;

/* Runs the problem on ex->tp with scratch from ex->scratch (or small stack tiles when it has none). */
void mp_gemm_engine_run(mp_exec *ex, const mp_gemm_kernels *kern, const mp_gemm_problem *p);
/* The small-M path over all columns of a weight matrix, threaded over groups of kern->nr_gemv rows
 * (bf16dot: kern->gemv_bf16). */
void mp_gemv_run(mp_exec *ex, const mp_gemm_kernels *kern, int bf16dot, mp_dtype dt, const void *W, size_t row_bytes, int64_t N,
                 int64_t K, const float *X, int64_t ldx, int64_t M, float *Y, int64_t ldy, const float *bias);
/* Scratch bytes the engine would like for a problem of this size on n_threads threads. */
size_t mp_gemm_engine_scratch(int64_t M, int64_t N, int n_threads, int needs_dequant);

#endif
