/* test_gpu_matmul.c — CUDA vs CPU parity for matmul (every weight dtype, both CUDA paths: the mat-vec
 * kernel for M <= 64 and cuBLAS / tensor-core GEMM for larger M), gemm_f32, get_rows and convert (label gpu).
 *
 * matmul is checked twice per output: against an exact reference (double sums over the weights as the CPU
 * dequantizes them) with the bound the GPU path's arithmetic guarantees, and against the CPU op with that
 * bound plus the CPU's own F32 accumulation error. With S = sum_k |x_k w_k| and Sw = sum_k |w_k|:
 *   F32 accumulation (cuBLAS SGEMM, the mat-vec kernel, the CPU)       err <= 2e-5 S  (typical: sqrt(K) 2^-24 S)
 *   F16 tensor cores: activations rounded to F16 (2^-11 relative,   + 2^-11 S + 2^-25 sum|w| (F16 subnormals)
 *   absolute 2^-25 below 2^-14)
 *   quants with M > 8: weights dequantized to F16 too               + 2^-11 S + 2^-25 sum|x|
 *   BF16 weights with M > 64: activations rounded to BF16           + 2^-8 S   (instead of the F16 term)
 * The CPU op itself multiplies block-quantized weights by activations rounded to 8 bits per block
 * (llama.cpp style: d = max|x|/127, q = round(x/d)), error <= d/2 per activation, so against the CPU the
 * bound grows by sum_k |w_k| d(k)/2 (+ 1e-6 S for its scale products).
 * A row's result must not depend on the batch: rows computed with M = 1 and inside M = 37 / 64 are
 * compared bit for bit. */
#include <math.h>

#include "gpu_test.h"

static gpu_ctx G;

static const int dtypes[] = {MP_F32,  MP_F16,  MP_BF16, MP_Q8_0, MP_Q4_0, MP_Q4_1, MP_Q5_0,
                             MP_Q5_1, MP_Q2_K, MP_Q3_K, MP_Q4_K, MP_Q5_K, MP_Q6_K};
#define NDT (int)(sizeof dtypes / sizeof dtypes[0])

static int block_of(int dt) { return mp_dtype_info(dt)->block_size; }

/* A random weight {K, N} in dtype dt: F32 values in [-scale, scale] quantized with the CPU's quantizer.
 * *deq gets the dequantized values (what both backends multiply by). */
static void make_weight(mp_tensor *t, int dt, int64_t K, int64_t N, float scale, float **deq) {
    float *f = rand_f32(&G, K * N, scale);
    int64_t rb = mp_dtype_row_bytes(dt, K);
    uint8_t *data = malloc((size_t)(rb * N));
    for (int64_t n = 0; n < N; n++) mp_quantize_row(dt, f + n * K, data + n * rb, K);
    for (int64_t n = 0; n < N; n++) mp_dequantize_row(dt, data + n * rb, f + n * K, K);
    int64_t ne[2] = {K, N};
    mp_tensor_init(t, (mp_dtype)dt, 2, ne, data);
    *deq = f;
}

static void matmul_case(int dt, int64_t M, int64_t K, int64_t N, int64_t xpad, int64_t ypad, int with_bias) {
    mp_tensor w, wd;
    float *wf;
    make_weight(&w, dt, K, N, 1.0f, &wf);
    dev_tensor(&G, &wd, &w);
    const int64_t ldx = K + xpad, ldy = N + ypad;
    float *x = rand_f32(&G, M * ldx, 2.0f), *bias = rand_f32(&G, N, 1.0f);
    float *yc = malloc((size_t)(M * ldy) * 4), *yg = malloc((size_t)(M * ldy) * 4);
    for (int64_t i = 0; i < M * ldy; i++) yc[i] = 12345.0f; /* padding must stay untouched */
    float *dx = dev_from(&G, x, (size_t)(M * ldx) * 4), *db = dev_from(&G, bias, (size_t)N * 4);
    float *dy = dev_from(&G, yc, (size_t)(M * ldy) * 4);
    mp_matmul(&G.cpu, yc, ldy, x, ldx, &w, with_bias ? bias : NULL, M);
    mp_matmul(&G.gpu, dy, ldy, dx, ldx, &wd, with_bias ? db : NULL, M);
    char what[160];
    snprintf(what, sizeof what, "matmul %s M=%lld K=%lld N=%lld ldx=%lld ldy=%lld bias=%d", mp_dtype_name(dt), (long long)M,
             (long long)K, (long long)N, (long long)ldx, (long long)ldy, with_bias);
    if (!dev_to(&G, yg, dy, (size_t)(M * ldy) * 4, what)) {
        const int matvec = M <= 64 && K % 8 == 0; /* else cuBLAS (F32) or tensor cores */
        const int is_q = dt != MP_F32 && dt != MP_F16 && dt != MP_BF16;
        const int qb = block_of(dt) == 256 ? 256 : 32; /* CPU activation block */
        float *ref = malloc((size_t)(M * N) * 4), *got = malloc((size_t)(M * N) * 4), *cpu = malloc((size_t)(M * N) * 4);
        double *tol = malloc((size_t)(M * N) * sizeof(double)), *tol2 = malloc((size_t)(M * N) * sizeof(double));
        int pad_ok = 1;
        for (int64_t m = 0; m < M; m++) {
            for (int64_t n = 0; n < N; n++) {
                double acc = with_bias ? bias[n] : 0.0, S = 0, Sw = 0, Sx = 0, Sq = 0;
                for (int64_t k0 = 0; k0 < K; k0 += qb) {
                    double amax = 0, swb = 0;
                    for (int64_t k = k0; k < K && k < k0 + qb; k++) {
                        const double xv = x[m * ldx + k], wv = wf[n * K + k];
                        acc += xv * wv;
                        S += fabs(xv * wv);
                        Sw += fabs(wv);
                        Sx += fabs(xv);
                        swb += fabs(wv);
                        amax = fabs(xv) > amax ? fabs(xv) : amax;
                    }
                    Sq += swb * amax / 127.0 / 2.0;
                }
                double t = 2e-5 * S + 1e-6;
                if (!matvec && dt != MP_F32) {
                    if (dt == MP_BF16) t += ldexp(S, -8);
                    else t += ldexp(S, -11) + ldexp(Sw, -25);
                    if (is_q) t += ldexp(S, -11) + ldexp(Sx, -25);
                }
                const int64_t i = m * N + n;
                ref[i] = (float)acc;
                got[i] = yg[m * ldy + n];
                cpu[i] = yc[m * ldy + n];
                tol[i] = t;
                tol2[i] = t + 2e-5 * S + 1e-6 + (is_q ? 1.001 * Sq + 1e-6 * S : 0.0);
            }
            for (int64_t n = N; n < ldy; n++) pad_ok &= yg[m * ldy + n] == 12345.0f;
        }
        char w2[200];
        snprintf(w2, sizeof w2, "%s vs exact", what);
        check_bound(w2, got, ref, tol, M * N);
        snprintf(w2, sizeof w2, "%s vs cpu", what);
        check_bound(w2, got, cpu, tol2, M * N);
        CHECKF(pad_ok, "%s: wrote into the ldy padding", what);
        free(ref); free(got); free(cpu); free(tol); free(tol2);
    }
    dev_free_tensor(&G, &wd);
    dev_free(&G, dx); dev_free(&G, db); dev_free(&G, dy);
    free(w.data); free(wf); free(x); free(bias); free(yc); free(yg);
}

/* Rows computed alone (M = 1) and inside batches of 37 and 64 (both mat-vec) must be bit-identical. */
static void batch_invariance(int dt) {
    const int64_t K = 512, N = 77, ldx = K + 4;
    mp_tensor w, wd;
    float *wf;
    make_weight(&w, dt, K, N, 1.0f, &wf);
    dev_tensor(&G, &wd, &w);
    float *x = rand_f32(&G, 64 * ldx, 2.0f), *bias = rand_f32(&G, N, 1.0f);
    float *dx = dev_from(&G, x, (size_t)(64 * ldx) * 4), *db = dev_from(&G, bias, (size_t)N * 4);
    float *dy = dev_alloc(&G, (size_t)(64 * N) * 4), *d1 = dev_alloc(&G, (size_t)N * 4);
    float *yb = malloc((size_t)(64 * N) * 4), *y1 = malloc((size_t)N * 4);
    static const int64_t batches[] = {37, 64};
    for (int bi = 0; bi < 2; bi++) {
        const int64_t M = batches[bi];
        mp_matmul(&G.gpu, dy, N, dx, ldx, &wd, db, M);
        char what[96];
        snprintf(what, sizeof what, "matmul %s batch invariance M=%lld", mp_dtype_name(dt), (long long)M);
        if (dev_to(&G, yb, dy, (size_t)(M * N) * 4, what)) continue;
        static const int64_t rows[] = {0, 9, 17, 36};
        for (int ri = 0; ri < 4; ri++) {
            const int64_t r = rows[ri];
            mp_matmul(&G.gpu, d1, N, dx + r * ldx, ldx, &wd, db, 1);
            if (!dev_to(&G, y1, d1, (size_t)N * 4, what)) check_equal_bytes(what, y1, yb + r * N, (size_t)N * 4);
        }
    }
    dev_free_tensor(&G, &wd);
    dev_free(&G, dx); dev_free(&G, db); dev_free(&G, dy); dev_free(&G, d1);
    free(w.data); free(wf); free(x); free(bias); free(yb); free(y1);
}

static void test_matmul(void) {
    static const int64_t Ms[] = {1, 3, 8, 9, 64, 65, 130};
    for (int di = 0; di < NDT; di++) {
        const int dt = dtypes[di], bs = block_of(dt);
        for (int mi = 0; mi < 7; mi++) {
            const int64_t M = Ms[mi];
            matmul_case(dt, M, 256, 33, 0, 0, 1);
            matmul_case(dt, M, bs > 32 ? 512 : 96, 1, 3, 5, 0);
            if (M == 1 || M == 9 || M == 65) matmul_case(dt, M, 4096, 255, 0, 2, 1);
        }
        batch_invariance(dt);
        if (bs == 1) { /* plain types: K that is not a multiple of 8 (cuBLAS path for every M) */
            matmul_case(dt, 1, 7, 5, 1, 0, 1);
            matmul_case(dt, 33, 33, 7, 0, 0, 0);
            matmul_case(dt, 70, 33, 7, 0, 0, 0);
        }
    }
    /* a large vocabulary projection (mat-vec grid size) and a prefill-sized GEMM (F16 slicing of quants) */
    matmul_case(MP_Q6_K, 1, 512, 50003, 0, 0, 0);
    matmul_case(MP_Q4_K, 200, 1024, 700, 0, 0, 1);
}

static void test_gemm(void) {
    /* C = alpha A op(B) + beta C: sums of K products in F32 on both sides: 2e-5 * sum|a b| (+ beta C rounding) */
    static const int64_t cases[][6] = {{1, 1, 1, 0, 1, 0}, {7, 33, 5, 1, 1, 0}, {33, 7, 255, 0, 3, 1},
                                       {64, 64, 64, 1, 2, 1}, {128, 77, 300, 0, 1, 0}, {5, 9, 0, 1, 2, 1}};
    for (int c = 0; c < 6; c++) {
        const int64_t M = cases[c][0], N = cases[c][1], K = cases[c][2];
        const int transB = (int)cases[c][3], batch = (int)cases[c][4], use_beta = (int)cases[c][5];
        const int64_t lda = K + 2, ldb = (transB ? K : N) + 1, ldc = N + 3;
        const int64_t sA = M * lda + 7, sB = (transB ? N : K) * ldb + 5, sC = M * ldc + 1;
        const float alpha = 0.75f, beta = use_beta ? -0.5f : 0.0f;
        float *A = rand_f32(&G, sA * batch, 1.0f), *B = rand_f32(&G, sB * batch, 1.0f), *C0 = rand_f32(&G, sC * batch, 1.0f);
        float *cc = malloc((size_t)(sC * batch) * 4), *cg = malloc((size_t)(sC * batch) * 4);
        memcpy(cc, C0, (size_t)(sC * batch) * 4);
        float *dA = dev_from(&G, A, (size_t)(sA * batch) * 4), *dB = dev_from(&G, B, (size_t)(sB * batch) * 4);
        float *dC = dev_from(&G, C0, (size_t)(sC * batch) * 4);
        mp_gemm_f32(&G.cpu, M, N, K, alpha, A, lda, B, ldb, transB, beta, cc, ldc, batch, sA, sB, sC);
        mp_gemm_f32(&G.gpu, M, N, K, alpha, dA, lda, dB, ldb, transB, beta, dC, ldc, batch, sA, sB, sC);
        char what[128];
        snprintf(what, sizeof what, "gemm_f32 M=%lld N=%lld K=%lld transB=%d batch=%d beta=%g", (long long)M, (long long)N,
                 (long long)K, transB, batch, beta);
        if (!dev_to(&G, cg, dC, (size_t)(sC * batch) * 4, what)) {
            double *tol = malloc((size_t)(sC * batch) * sizeof(double));
            for (int64_t i = 0; i < sC * batch; i++) tol[i] = 0; /* everything outside C's rows must be untouched */
            for (int bi = 0; bi < batch; bi++)
                for (int64_t m = 0; m < M; m++)
                    for (int64_t n = 0; n < N; n++) {
                        double S = 0;
                        for (int64_t k = 0; k < K; k++) {
                            double b = transB ? B[bi * sB + n * ldb + k] : B[bi * sB + k * ldb + n];
                            S += fabs(A[bi * sA + m * lda + k] * b);
                        }
                        tol[bi * sC + m * ldc + n] = 2e-5 * fabs(alpha) * S + 1e-6 * (1 + fabs(beta * C0[bi * sC + m * ldc + n]));
                    }
            check_bound(what, cg, cc, tol, sC * batch);
            free(tol);
        }
        dev_free(&G, dA); dev_free(&G, dB); dev_free(&G, dC);
        free(A); free(B); free(C0); free(cc); free(cg);
    }
}

static void test_get_rows(void) {
    static const int extra[] = {MP_I8, MP_I16, MP_I32};
    for (int di = 0; di < NDT + 3; di++) {
        const int dt = di < NDT ? dtypes[di] : extra[di - NDT];
        const int bs = block_of(dt);
        const int64_t cols = bs == 1 ? 37 : 2 * bs, rows = 50, n = 23;
        mp_tensor t, td;
        float *tf = NULL;
        if (di < NDT) {
            make_weight(&t, dt, cols, rows, 3.0f, &tf);
        } else {
            int64_t ne[2] = {cols, rows};
            int es = mp_dtype_info(dt)->type_size;
            uint8_t *raw = malloc((size_t)(cols * rows * es));
            for (int64_t i = 0; i < cols * rows * es; i++) raw[i] = (uint8_t)mp_test_rng(&G.rng);
            mp_tensor_init(&t, (mp_dtype)dt, 2, ne, raw);
        }
        dev_tensor(&G, &td, &t);
        int32_t ids[23];
        for (int i = 0; i < n; i++) ids[i] = (int32_t)(mp_test_rng(&G.rng) % rows);
        ids[3] = ids[4]; /* repeats */
        ids[5] = (int32_t)rows - 1;
        ids[6] = 0;
        float *yc = malloc((size_t)(n * cols) * 4), *yg = malloc((size_t)(n * cols) * 4);
        int32_t *dids = dev_from(&G, ids, sizeof ids);
        float *dy = dev_alloc(&G, (size_t)(n * cols) * 4);
        mp_get_rows(&G.cpu, yc, &t, ids, n);
        mp_get_rows(&G.gpu, dy, &td, dids, n);
        char what[64];
        snprintf(what, sizeof what, "get_rows %s cols=%lld", mp_dtype_name(dt), (long long)cols);
        /* decoding is exact on both sides: every product d*sc*q fits F32's 24-bit significand (f16 d: 11 bits,
         * scales <= 7, quants <= 7), so fusing d*q - m into an FMA cannot change a bit */
        if (!dev_to(&G, yg, dy, (size_t)(n * cols) * 4, what)) check_equal_bytes(what, yg, yc, (size_t)(n * cols) * 4);
        dev_free_tensor(&G, &td);
        dev_free(&G, dids); dev_free(&G, dy);
        free(t.data); free(tf); free(yc); free(yg);
    }
}

static void test_convert(void) {
    const int64_t n = 4096;
    float *f = rand_f32(&G, n, 4.0f);
    /* special values for the F16/BF16 rounding: ties, overflow, subnormals, inf, nan, -0 */
    const float special[] = {65504.0f, 65520.0f, 70000.0f, -1e9f, 6.1e-5f, 3e-8f, 1e-40f, -0.0f, INFINITY, -INFINITY, NAN,
                             1.0009765625f, 1.00048828125f, 1.00146484375f, 1.00390625f, 1.001953125f};
    memcpy(f, special, sizeof special);
    float *df = dev_from(&G, f, (size_t)n * 4);
    static const int targets[] = {MP_F16,  MP_BF16, MP_Q8_0, MP_Q4_0, MP_Q4_1, MP_Q5_0,
                                  MP_Q5_1, MP_Q2_K, MP_Q3_K, MP_Q4_K, MP_Q5_K, MP_Q6_K};
    for (int ti = 0; ti < (int)(sizeof targets / sizeof targets[0]); ti++) {
        const int dt = targets[ti];
        const size_t bytes = (size_t)mp_dtype_row_bytes(dt, n);
        float *fin = malloc((size_t)n * 4); /* quants: finite values only */
        memcpy(fin, f, (size_t)n * 4);
        if (dt != MP_F16 && dt != MP_BF16)
            for (int64_t i = 0; i < n; i++)
                if (!isfinite(fin[i]) || fabsf(fin[i]) > 1e6f) fin[i] = 0.5f;
        float *dfin = dev_from(&G, fin, (size_t)n * 4);
        uint8_t *qc = malloc(bytes), *qg = malloc(bytes);
        void *dq = dev_alloc(&G, bytes);
        mp_convert(&G.cpu, qc, (mp_dtype)dt, fin, MP_F32, n);
        mp_convert(&G.gpu, dq, (mp_dtype)dt, dfin, MP_F32, n);
        char what[64];
        snprintf(what, sizeof what, "convert f32 -> %s", mp_dtype_name(dt));
        if (!dev_to(&G, qg, dq, bytes, what)) check_equal_bytes(what, qg, qc, bytes); /* same algorithm: same bytes */
        /* and back to F32 */
        float *bc = malloc((size_t)n * 4), *bg = malloc((size_t)n * 4);
        float *db = dev_alloc(&G, (size_t)n * 4);
        mp_convert(&G.cpu, bc, MP_F32, qc, (mp_dtype)dt, n);
        mp_convert(&G.gpu, db, MP_F32, dq, (mp_dtype)dt, n);
        snprintf(what, sizeof what, "convert %s -> f32", mp_dtype_name(dt));
        if (!dev_to(&G, bg, db, (size_t)n * 4, what)) check_equal_bytes(what, bg, bc, (size_t)n * 4);
        /* block -> block through F32 (e.g. requantizing), and F16 <-> BF16 */
        const int other = dt == MP_F16 ? MP_BF16 : dt == MP_BF16 ? MP_F16 : MP_Q8_0;
        const size_t obytes = (size_t)mp_dtype_row_bytes(other, n);
        uint8_t *oc = malloc(obytes), *og = malloc(obytes);
        void *dob = dev_alloc(&G, obytes);
        mp_convert(&G.cpu, oc, (mp_dtype)other, qc, (mp_dtype)dt, n);
        mp_convert(&G.gpu, dob, (mp_dtype)other, dq, (mp_dtype)dt, n);
        snprintf(what, sizeof what, "convert %s -> %s", mp_dtype_name(dt), mp_dtype_name(other));
        if (!dev_to(&G, og, dob, obytes, what)) {
            check_equal_bytes(what, og, oc, obytes);
        }
        dev_free(&G, dfin); dev_free(&G, dq); dev_free(&G, db); dev_free(&G, dob);
        free(fin); free(qc); free(qg); free(bc); free(bg); free(oc); free(og);
    }
    dev_free(&G, df);
    free(f);
}

int main(void) {
    int rc = gpu_setup(&G, "test_gpu_matmul");
    if (rc) return rc;
    test_matmul();
    test_gemm();
    test_get_rows();
    test_convert();
    gpu_teardown(&G);
    return mp_test_result("test_gpu_matmul");
}
