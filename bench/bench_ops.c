/* bench_ops.c — `mmpipe bench ops [-t N] [--quick] [--dtype NAME] [--no-blas]`
 *
 *                  [--m LIST] [--sizes LIST] [--cold]
 * --m / --sizes: comma lists of rows M (default 1,512) and of K and N (default 384,1024,4096); --cold: each
 * call reads another copy of the weights (256 MiB of copies), as a decoder step reads its layers from DRAM
 * (without it small weight matrices stay in cache between calls).
 * Measures this machine's own yardsticks first, then the matmul kernels against them:
 *   BENCH ops op=fma_peak threads=T gflops=...          register-only FMA loop (the widest SIMD level)
 *   BENCH ops op=triad threads=T gbps=...               STREAM-style a[i] = b[i] + s*c[i]
 *   BENCH ops op=matmul dtype=D M= K= N= threads= gflops= ratio_peak= gbps= ratio_bw=
 *   BENCH ops op=sgemm impl=openblas M= K= N= threads= gflops= ratio_peak=   (same shapes, same run)
 * gbps counts the bytes a matmul must move at least once (weights + activations + outputs); ratio_bw is
 * that over the triad bandwidth (decode, M=1, is bandwidth bound). Every number is the best of several
 * timed repetitions (the machines are shared and noisy). */
#include "apps/cli.h"
#include "bench.h"
#include "kernels/ops.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif
#ifdef MP_HAVE_OPENBLAS
#include <cblas.h>
#endif

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* ---------------------------------------------------------------- FMA peak */

#define PEAK_ITERS 20000000L

#if defined(__x86_64__)
__attribute__((target("avx512f,fma"))) static double fma_loop_avx512(void) {
    __m512 a[12], b = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
    for (int i = 0; i < 12; i++) a[i] = _mm512_set1_ps((float)i);
    for (long it = 0; it < PEAK_ITERS; it++) {
        _Pragma("GCC unroll 12") for (int i = 0; i < 12; i++) a[i] = _mm512_fmadd_ps(a[i], b, c);
    }
    float s = 0;
    for (int i = 0; i < 12; i++) s += _mm512_reduce_add_ps(a[i]);
    if (s == 1234.5f) fputc(' ', stderr); /* keep the loop alive */
    return 12.0 * 32.0 * PEAK_ITERS;      /* flops */
}

__attribute__((target("avx2,fma"))) static double fma_loop_avx2(void) {
    __m256 a[12], b = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
    for (int i = 0; i < 12; i++) a[i] = _mm256_set1_ps((float)i);
    for (long it = 0; it < PEAK_ITERS; it++) {
        _Pragma("GCC unroll 12") for (int i = 0; i < 12; i++) a[i] = _mm256_fmadd_ps(a[i], b, c);
    }
    float t[8], s = 0;
    for (int i = 0; i < 12; i++) {
        _mm256_storeu_ps(t, a[i]);
        s += t[0] + t[7];
    }
    if (s == 1234.5f) fputc(' ', stderr);
    return 12.0 * 16.0 * PEAK_ITERS;
}
#endif

static double fma_loop_scalar(void) {
    float a[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    for (long it = 0; it < PEAK_ITERS / 8; it++)
        for (int i = 0; i < 8; i++) a[i] = fmaf(a[i], 0.999999f, 1e-7f);
    if (a[0] + a[7] == 1234.5f) fputc(' ', stderr);
    return 8.0 * 2.0 * (PEAK_ITERS / 8);
}

typedef struct { double flops[512]; } peak_job;

static void peak_task(void *arg, int ith, int nth) {
    (void)nth;
    peak_job *j = arg;
#if defined(__x86_64__)
    int level = mp_cpu_level();
    j->flops[ith] = level >= 2 ? fma_loop_avx512() : level == 1 ? fma_loop_avx2() : fma_loop_scalar();
#else
    j->flops[ith] = fma_loop_scalar();
#endif
}

/* GFLOP/s of the register-only FMA loop on `threads` threads (best of reps). */
static double measure_peak(mp_threadpool *tp, int threads, int reps) {
    double best = 0;
    for (int r = 0; r < reps; r++) {
        peak_job j;
        double t0 = now_s();
        mp_parallel_n(tp, threads, peak_task, &j);
        double t = now_s() - t0, total = 0;
        for (int i = 0; i < threads; i++) total += j.flops[i];
        if (total / t / 1e9 > best) best = total / t / 1e9;
    }
    return best;
}

/* ---------------------------------------------------------------- bandwidth */

typedef struct { float *a, *b, *c; int64_t n; } triad_job;

static void triad_task(void *arg, int ith, int nth) {
    triad_job *j = arg;
    int64_t lo, hi;
    mp_split_range(j->n, ith, nth, &lo, &hi);
    for (int64_t i = lo; i < hi; i++) j->a[i] = j->b[i] + 0.5f * j->c[i];
}

static void init_task(void *arg, int ith, int nth) { /* first touch by the thread that streams it */
    triad_job *j = arg;
    int64_t lo, hi;
    mp_split_range(j->n, ith, nth, &lo, &hi);
    for (int64_t i = lo; i < hi; i++) { j->a[i] = 0; j->b[i] = 1; j->c[i] = 2; }
}

static double measure_triad(mp_threadpool *tp, int threads, int reps) {
    triad_job j = {.n = 1 << 24}; /* 3 x 64 MiB */
    j.a = mp_aligned_alloc((size_t)j.n * 4);
    j.b = mp_aligned_alloc((size_t)j.n * 4);
    j.c = mp_aligned_alloc((size_t)j.n * 4);
    if (!j.a || !j.b || !j.c) { mp_aligned_free(j.a); mp_aligned_free(j.b); mp_aligned_free(j.c); return 0; }
    mp_parallel_n(tp, threads, init_task, &j);
    double best = 0;
    for (int r = 0; r < reps; r++) {
        double t0 = now_s();
        mp_parallel_n(tp, threads, triad_task, &j);
        double gbps = 3.0 * 4.0 * (double)j.n / (now_s() - t0) / 1e9;
        if (gbps > best) best = gbps;
    }
    mp_aligned_free(j.a);
    mp_aligned_free(j.b);
    mp_aligned_free(j.c);
    return best;
}

/* ---------------------------------------------------------------- matmul */

/* Best seconds per call of fn over repetitions lasting at least min_s in total. */
typedef void (*bench_fn)(void *);

static double time_best(bench_fn fn, void *arg, double min_s, int min_reps) {
    fn(arg); /* warm up: page in, pack, spin up the pool */
    double best = 1e30, start = now_s();
    for (int r = 0; r < min_reps || now_s() - start < min_s; r++) {
        double t0 = now_s();
        fn(arg);
        double t = now_s() - t0;
        if (t < best) best = t;
        if (r > 10000) break;
    }
    return best;
}

#define COLD_BYTES (256u << 20) /* --cold: weight copies cycled through, well past any L3 */

typedef struct {
    mp_exec *ex;
    float *Y, *X;
    mp_tensor W;
    int64_t M, K, N;
    const float *Wf;  /* F32 weights for OpenBLAS */
    uint8_t *copies;  /* --cold: n_copies back-to-back copies of W's data, one per call in turn */
    int n_copies, next;
    size_t wbytes;
} mm_job;

static void run_matmul(void *arg) {
    mm_job *j = arg;
    if (j->n_copies) {
        j->W.data = j->copies + (size_t)j->next * j->wbytes;
        j->next = (j->next + 1) % j->n_copies;
    }
    mp_matmul(j->ex, j->Y, j->N, j->X, j->K, &j->W, NULL, j->M);
}

#ifdef MP_HAVE_OPENBLAS
static void run_sgemm(void *arg) {
    mm_job *j = arg;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)j->M, (int)j->N, (int)j->K, 1.0f, j->X, (int)j->K,
                j->Wf, (int)j->K, 0.0f, j->Y, (int)j->N);
}
#endif

static void usage(void) {
    fprintf(stderr, "usage: mmpipe bench ops [-t THREADS] [--quick] [--dtype f32|bf16|f16|q8_0|q4_K|...] [--no-blas]\n"
                    "                        [--m M1,M2,...] [--sizes S1,S2,...] [--cold]\n");
}

/* "a,b,c" -> up to max positive values; returns the count (0: malformed). */
static int parse_list(const char *s, int64_t *out, int max) {
    int n = 0;
    while (*s && n < max) {
        char *end;
        long long v = strtoll(s, &end, 10);
        if (end == s || v <= 0 || v > (1 << 20)) return 0;
        out[n++] = v;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') return 0;
    }
    return *s ? 0 : n;
}

int bench_ops(int argc, char **argv) {
    int threads = 0, quick = 0, blas = 1, cold = 0;
    const char *only = NULL;
    int64_t Ms[8] = {1, 512}, sizes[8] = {384, 1024, 4096};
    int nms = 2, nsizes = 0;
    for (int i = 1; i < argc; i++) {
        if ((!strcmp(argv[i], "-t") || !strcmp(argv[i], "--threads")) && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--no-blas")) blas = 0;
        else if (!strcmp(argv[i], "--cold")) cold = 1;
        else if (!strcmp(argv[i], "--dtype") && i + 1 < argc) only = argv[++i];
        else if (!strcmp(argv[i], "--m") && i + 1 < argc) {
            if (!(nms = parse_list(argv[++i], Ms, 8))) { usage(); return 1; }
        } else if (!strcmp(argv[i], "--sizes") && i + 1 < argc) {
            if (!(nsizes = parse_list(argv[++i], sizes, 8))) { usage(); return 1; }
        } else { usage(); return 1; }
    }
    if (threads <= 0) threads = mp_physical_cores();
    mp_threadpool *tp = mp_threadpool_create(threads);
    if (!tp) { fprintf(stderr, "mmpipe bench ops: cannot create %d threads\n", threads); return 1; }
    threads = mp_threadpool_size(tp);
    mp_error err;
    mp_exec ex;
    const size_t scratch = 64u << 20;
    if (mp_exec_init(&ex, MP_BACKEND_CPU, tp, scratch, &err) != 0) {
        fprintf(stderr, "mmpipe bench ops: %s\n", err.msg);
        mp_threadpool_free(tp);
        return 1;
    }
    const int reps = quick ? 2 : 5;
    printf("BENCH ops op=cpu level=%s threads=%d\n", mp_cpu_level_name(mp_cpu_level()), threads);
    double peak1 = measure_peak(tp, 1, reps), peak = measure_peak(tp, threads, reps);
    printf("BENCH ops op=fma_peak threads=1 gflops=%.1f\n", peak1);
    printf("BENCH ops op=fma_peak threads=%d gflops=%.1f\n", threads, peak);
    double bw1 = measure_triad(tp, 1, reps), bw = measure_triad(tp, threads, reps);
    printf("BENCH ops op=triad threads=1 gbps=%.1f\n", bw1);
    printf("BENCH ops op=triad threads=%d gbps=%.1f\n", threads, bw);
    fflush(stdout);

    const mp_dtype dts[] = {MP_F32, MP_BF16, MP_F16, MP_Q8_0, MP_Q4_K};
    if (!nsizes) nsizes = quick ? 2 : 3;
    int64_t maxm = 1;
    for (int i = 0; i < nms; i++) maxm = Ms[i] > maxm ? Ms[i] : maxm;
    const double min_s = quick ? 0.05 : 0.3;
#ifdef MP_HAVE_OPENBLAS
    openblas_set_num_threads(threads);
#else
    blas = 0;
#endif
    unsigned long long seed = 12345;
    int status = 0;
    for (int ki = 0; ki < nsizes; ki++) {
        for (int ni = 0; ni < nsizes; ni++) {
            const int64_t K = sizes[ki], N = sizes[ni];
            float *Wf = mp_aligned_alloc((size_t)(K * N) * 4);
            float *X = mp_aligned_alloc((size_t)(maxm * K) * 4), *Y = mp_aligned_alloc((size_t)(maxm * N) * 4);
            if (!Wf || !X || !Y) { status = 1; mp_aligned_free(Wf); mp_aligned_free(X); mp_aligned_free(Y); goto done; }
            for (int64_t i = 0; i < K * N; i++) {
                seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
                Wf[i] = (float)((int64_t)(seed >> 40) - (1 << 23)) / (float)(1 << 23) * 0.05f;
            }
            for (int64_t i = 0; i < maxm * K; i++) X[i] = (float)((i * 2654435761u) % 1000) / 1000.0f - 0.5f;
            for (int mi = 0; mi < nms; mi++) {
                const int64_t M = Ms[mi];
                mm_job j = {.ex = &ex, .Y = Y, .X = X, .M = M, .K = K, .N = N, .Wf = Wf};
                for (size_t di = 0; di < sizeof dts / sizeof dts[0]; di++) {
                    const mp_dtype dt = dts[di];
                    if (only && strcmp(only, mp_dtype_name(dt)) != 0) continue;
                    const int64_t wbytes = mp_dtype_row_bytes(dt, K) * N;
                    const int copies = cold ? (int)(COLD_BYTES / (size_t)wbytes) + 1 : 1;
                    uint8_t *Wq = mp_aligned_alloc((size_t)wbytes * (size_t)copies);
                    if (!Wq) { status = 1; continue; }
                    mp_convert(&ex, Wq, dt, Wf, MP_F32, K * N);
                    for (int c = 1; c < copies; c++) memcpy(Wq + (size_t)c * (size_t)wbytes, Wq, (size_t)wbytes);
                    j.copies = cold ? Wq : NULL, j.n_copies = cold ? copies : 0, j.next = 0, j.wbytes = (size_t)wbytes;
                    int64_t ne[2] = {K, N};
                    mp_tensor_init(&j.W, dt, 2, ne, Wq);
                    double t = time_best(run_matmul, &j, min_s, 3);
                    double gflops = 2.0 * M * N * K / t / 1e9;
                    double gbps = (double)(wbytes + 4 * M * (K + N)) / t / 1e9;
                    printf("BENCH ops op=matmul dtype=%s M=%lld K=%lld N=%lld threads=%d%s gflops=%.1f ratio_peak=%.3f "
                           "gbps=%.1f ratio_bw=%.3f\n",
                           mp_dtype_name(dt), (long long)M, (long long)K, (long long)N, threads, cold ? " cold=1" : "",
                           gflops, gflops / peak,
                           gbps, gbps / bw);
                    fflush(stdout);
                    mp_aligned_free(Wq);
                }
#ifdef MP_HAVE_OPENBLAS
                if (blas && (!only || !strcmp(only, "f32"))) {
                    double t = time_best(run_sgemm, &j, min_s, 3);
                    double gflops = 2.0 * M * N * K / t / 1e9;
                    double gbps = (double)(4 * K * N + 4 * M * (K + N)) / t / 1e9;
                    printf("BENCH ops op=sgemm impl=openblas M=%lld K=%lld N=%lld threads=%d gflops=%.1f ratio_peak=%.3f "
                           "gbps=%.1f ratio_bw=%.3f\n",
                           (long long)M, (long long)K, (long long)N, threads, gflops, gflops / peak, gbps, gbps / bw);
                    fflush(stdout);
                }
#endif
            }
            mp_aligned_free(Wf);
            mp_aligned_free(X);
            mp_aligned_free(Y);
        }
    }
    (void)blas;
done:
    mp_exec_free(&ex);
    mp_threadpool_free(tp);
    return status;
}

/* ---------------------------------------------------------------- shared yardsticks (bench.h) */

double bench_fma_peak(mp_threadpool *tp, int threads, int reps) { return measure_peak(tp, threads, reps); }
double bench_triad(mp_threadpool *tp, int threads, int reps) { return measure_triad(tp, threads, reps); }
