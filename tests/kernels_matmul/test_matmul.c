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

/* ---------------------------------------------------------------- fast paths vs the reference */

typedef struct { int64_t M, N, K; } shape;

/* Odd shapes from {1, 7, 33, 255, 4097}; for block types K is a count of blocks from {1, 7, 17}. */
static const shape g_shapes[] = {
    {1, 1, 1}, {1, 7, 33}, {7, 33, 255}, {33, 255, 7}, {255, 7, 1}, {1, 4097, 33}, {4097, 33, 7},
    {7, 1, 4097}, {33, 33, 4097}, {255, 255, 255}, {1, 255, 4097}, {4097, 7, 255}, {33, 7, 1},
    {31, 33, 17}, /* quantized: the most rows the group kernels take (16-row chunks, then 15) */
    {16, 225, 513}, /* batched decode: one row tile in two equal row blocks, 8 column panels dealt out to the
                       threads, K past one panel (the packer's prefetch crosses into the next micro-panel) */
};

/* dtypes whose SIMD paths quantize the activations (mp_ref_matmul_q8 semantics) and their block */
static int q8_block(mp_dtype dt) {
    switch (dt) {
    case MP_Q8_0: case MP_Q4_0: case MP_Q4_1: case MP_Q5_0: case MP_Q5_1: return 32;
    case MP_Q4_K: case MP_Q5_K: case MP_Q6_K: return 256;
    default: return 0;
    }
}

/* mp_ref_matmul_q8 against the F32 reference: the activations move by at most half a step d/2 of their
 * block (d = max|x|/127), plus float rounding of the per-block scale products and sums. */
static void check_q8_against_f32(const float *Yq, const float *Yf, int64_t ldy, const float *X, int64_t ldx,
                                 const float *wd, const float *bias, int64_t M, int64_t N, int64_t K, int B,
                                 const char *what) {
    int bad = 0;
    for (int64_t m = 0; m < M; m++) {
        const float *x = X + m * ldx;
        for (int64_t n = 0; n < N; n++) {
            const float *w = wd + n * K;
            double step = 0, mag = bias ? fabs(bias[n]) : 0;
            for (int64_t b = 0; b < K / B; b++) {
                double amax = 0;
                for (int i = 0; i < B; i++) amax = fmax(amax, fabs(x[b * B + i]));
                const double d = amax / 127;
                for (int i = 0; i < B; i++) {
                    step += fabs(w[b * B + i]) * (0.5 * d + 0x1p-22 * fabs(x[b * B + i]));
                    mag += fabs(w[b * B + i]) * (fabs(x[b * B + i]) + d);
                }
            }
            const double tol = step * 1.0001 + (double)(K + 2 * K / B + 4) * 0x1p-23 * mag + 1e-30;
            const double diff = fabs((double)Yq[m * ldy + n] - Yf[m * ldy + n]);
            if (!(diff <= tol)) {
                if (bad < 3) fprintf(stderr, "%s: q8 Y[%lld][%lld] = %.9g, f32 %.9g (tol %.3g)\n", what, (long long)m,
                                     (long long)n, Yq[m * ldy + n], Yf[m * ldy + n], tol);
                bad++;
            }
        }
    }
    CHECKF(bad == 0, "%s: %d outputs beyond the activation quantization bound", what, bad);
}

typedef struct {
    mp_exec ex1, ex3, ex0; /* 1 thread, 3 threads, 3 threads without scratch */
    mp_threadpool *tp1, *tp3;
} execs;

static void execs_init(execs *e) {
    mp_error err;
    e->tp1 = mp_threadpool_create(1);
    e->tp3 = mp_threadpool_create(3);
    CHECK(mp_exec_init(&e->ex1, MP_BACKEND_CPU, e->tp1, 64u << 20, &err) == 0);
    CHECK(mp_exec_init(&e->ex3, MP_BACKEND_CPU, e->tp3, 64u << 20, &err) == 0);
    CHECK(mp_exec_init(&e->ex0, MP_BACKEND_CPU, e->tp3, 0, &err) == 0);
}

static void execs_free(execs *e) {
    mp_exec_free(&e->ex1);
    mp_exec_free(&e->ex3);
    mp_exec_free(&e->ex0);
    mp_threadpool_free(e->tp1);
    mp_threadpool_free(e->tp3);
}

static int bits_equal(const float *a, const float *b, int64_t n) { return memcmp(a, b, (size_t)n * sizeof(float)) == 0; }

static void test_fast_matmul(execs *e) {
    const mp_dtype dts[] = {MP_F32, MP_F16, MP_BF16, MP_Q8_0, MP_Q4_0, MP_Q4_1, MP_Q5_0, MP_Q5_1,
                            MP_Q4_K, MP_Q5_K, MP_Q6_K, MP_Q2_K, MP_Q3_K, MP_Q8_K};
    for (size_t c = 0; c < sizeof dts / sizeof dts[0]; c++) {
        const mp_dtype dt = dts[c];
        const int bs = mp_dtype_info(dt)->block_size;
        for (size_t si = 0; si < sizeof g_shapes / sizeof g_shapes[0]; si++) {
            const int64_t M = g_shapes[si].M, N = g_shapes[si].N;
            int64_t K = g_shapes[si].K;
            if (bs > 1) K = bs * (K == 1 ? 1 : K <= 33 ? 7 : 17);
            if ((double)M * N * K > 6e7 / (bs > 1 ? 2 : 1)) continue; /* keep the scalar reference quick */
            const int64_t ldx = K + 3, ldy = N + 1;
            float *wd, *X = randv(M * ldx, 1.0f), *bias = (si % 2) ? randv(N, 1.0f) : NULL;
            void *q = make_weights(dt, K, N, &wd);
            int64_t ne[2] = {K, N};
            mp_tensor W;
            mp_tensor_init(&W, dt, 2, ne, q);
            float *ref = malloc(M * ldy * sizeof(float)), *y = malloc(M * ldy * sizeof(float));
            float *y1 = malloc(M * ldy * sizeof(float)), *y0 = malloc(M * ldy * sizeof(float));
            float *row = malloc(ldy * sizeof(float));
            mp_ref_matmul(ref, ldy, X, ldx, &W, bias, M);
            if (q8_block(dt)) { /* the SIMD paths compute mp_ref_matmul_q8: check it, then compare with it */
                float *rq = malloc(M * ldy * sizeof(float));
                mp_ref_matmul_q8(rq, ldy, X, ldx, &W, bias, M);
                char what[96];
                snprintf(what, sizeof what, "%s M=%lld N=%lld K=%lld", mp_dtype_name(dt), (long long)M, (long long)N, (long long)K);
                check_q8_against_f32(rq, ref, ldy, X, ldx, wd, bias, M, N, K, q8_block(dt), what);
                free(ref);
                ref = rq;
            }
            for (int level = 1; level <= 2; level++) {
                if (mp_cpu_set_level(level) != level) continue;
                char what[128];
                snprintf(what, sizeof what, "%s %s M=%lld N=%lld K=%lld", mp_dtype_name(dt), mp_cpu_level_name(level),
                         (long long)M, (long long)N, (long long)K);
                for (int64_t i = 0; i < M * ldy; i++) y[i] = y1[i] = y0[i] = -7.0f; /* padding must survive */
                mp_matmul(&e->ex3, y, ldy, X, ldx, &W, bias, M);
                mp_matmul(&e->ex1, y1, ldy, X, ldx, &W, bias, M);
                mp_matmul(&e->ex0, y0, ldy, X, ldx, &W, bias, M);
                int bad = 0;
                if (dt == MP_BF16 && level == 2 && mp_cpu()->avx512_bf16) {
                    /* vdpbf16ps: the activations are rounded to BF16 (relative error 2^-9), then one float chain
                     * over k pairs */
                    for (int64_t m = 0; m < M; m++)
                        for (int64_t n = 0; n < N; n++) {
                            double mag = bias ? fabs(bias[n]) : 0, wx = 0;
                            for (int64_t k = 0; k < K; k++) {
                                wx += fabs((double)wd[n * K + k] * X[m * ldx + k]);
                            }
                            mag += wx;
                            const double tol = wx * 0x1p-8 + (double)(K + 4) * 0x1p-23 * mag + 1e-30;
                            if (!(fabs((double)y[m * ldy + n] - ref[m * ldy + n]) <= tol)) {
                                if (bad < 3)
                                    fprintf(stderr, "%s: Y[%lld][%lld] = %.9g, reference %.9g (tol %.3g)\n", what,
                                            (long long)m, (long long)n, y[m * ldy + n], ref[m * ldy + n], tol);
                                bad++;
                            }
                        }
                    CHECKF(bad == 0, "%s: %d outputs beyond the BF16 activation rounding bound", what, bad);
                } else {
                    for (int64_t m = 0; m < M; m++)
                        for (int64_t n = 0; n < N; n++) {
                            uint32_t a, b;
                            memcpy(&a, &y[m * ldy + n], 4);
                            memcpy(&b, &ref[m * ldy + n], 4);
                            if (a != b) {
                                if (bad < 3)
                                    fprintf(stderr, "%s: Y[%lld][%lld] = %.9g, reference %.9g\n", what, (long long)m,
                                            (long long)n, y[m * ldy + n], ref[m * ldy + n]);
                                bad++;
                            }
                        }
                    CHECKF(bad == 0, "%s: %d outputs differ from the reference", what, bad);
                }
                for (int64_t m = 0; m < M; m++) CHECK(y[m * ldy + N] == -7.0f);
                CHECKF(bits_equal(y, y1, M * ldy), "%s: 1 thread differs from 3 threads", what);
                CHECKF(bits_equal(y, y0, M * ldy), "%s: no-scratch path differs", what);
                /* batch composition: a row computed alone equals the same row within the batch */
                const int64_t probe[2] = {0, M - 1};
                for (int pi = 0; pi < 2; pi++) {
                    mp_matmul(&e->ex3, row, ldy, X + probe[pi] * ldx, ldx, &W, bias, 1);
                    CHECKF(bits_equal(row, y + probe[pi] * ldy, N), "%s: row %lld alone differs from in batch", what,
                           (long long)probe[pi]);
                }
            }
            mp_cpu_set_level(-1);
            free(wd); free(X); free(bias); free(q); free(ref); free(y); free(y1); free(y0); free(row);
        }
    }
}

static void test_fast_gemm(execs *e) {
    const shape shapes[] = {{1, 1, 1}, {7, 33, 255}, {33, 7, 4097}, {255, 255, 33}, {4097, 7, 1}, {1, 4097, 7},
                            {7, 7, 0}};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const int64_t M = shapes[si].M, N = shapes[si].N, K = shapes[si].K;
        for (int transB = 0; transB <= 1; transB++) {
            const int batch = si % 2 ? 3 : 1;
            const int64_t lda = K + 1, ldb = (transB ? K : N) + 2, ldc = N + 3;
            const int64_t sA = M * lda + 5, sB = (transB ? N : K) * ldb + 1, sC = M * ldc + 2;
            float *A = randv(sA * batch, 1), *B = randv(sB * batch, 1), *C0 = randv(sC * batch, 1);
            float *ref = malloc(sC * batch * sizeof(float)), *y = malloc(sC * batch * sizeof(float));
            float *y1 = malloc(sC * batch * sizeof(float));
            const float alphas[2] = {1.0f, 0.3f}, betas[3] = {0.0f, 1.0f, -0.7f};
            for (int ab = 0; ab < 3; ab++) {
                const float alpha = alphas[ab % 2], beta = betas[ab];
                memcpy(ref, C0, sC * batch * sizeof(float));
                mp_ref_gemm_f32(M, N, K, alpha, A, lda, B, ldb, transB, beta, ref, ldc, batch, sA, sB, sC);
                for (int level = 1; level <= 2; level++) {
                    if (mp_cpu_set_level(level) != level) continue;
                    memcpy(y, C0, sC * batch * sizeof(float));
                    memcpy(y1, C0, sC * batch * sizeof(float));
                    mp_gemm_f32(&e->ex3, M, N, K, alpha, A, lda, B, ldb, transB, beta, y, ldc, batch, sA, sB, sC);
                    mp_gemm_f32(&e->ex1, M, N, K, alpha, A, lda, B, ldb, transB, beta, y1, ldc, batch, sA, sB, sC);
                    CHECKF(bits_equal(y, ref, sC * batch), "gemm %s M=%lld N=%lld K=%lld transB=%d alpha=%g beta=%g differs from the reference",
                           mp_cpu_level_name(level), (long long)M, (long long)N, (long long)K, transB, alpha, beta);
                    CHECKF(bits_equal(y, y1, sC * batch), "gemm %s: thread count changes the result", mp_cpu_level_name(level));
                }
                mp_cpu_set_level(-1);
            }
            free(A); free(B); free(C0); free(ref); free(y); free(y1);
        }
    }
}

int main(void) {
    test_ref_matmul();
    test_ref_gemm();
    execs e;
    execs_init(&e);
    test_fast_gemm(&e);
    test_fast_matmul(&e);
    execs_free(&e);
    return mp_test_result("test_matmul");
}
