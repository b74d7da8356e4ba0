/* gpu_test.h — harness of the GPU parity tests (label `gpu`): every CUDA op against the CPU op on the
 * same random inputs, as ggml's test-backend-ops does. Each test binary starts with gpu_setup(), which
 * exits 77 (ctest "Skipped") with the reason on stderr when there is no usable CUDA device or the build
 * has no CUDA backend. Tolerances are per element: |gpu - cpu| <= atol + rtol * |cpu|, with the arithmetic
 * that justifies them written next to each check. */
#ifndef MP_GPU_TEST_H
#define MP_GPU_TEST_H

#include "kernels/ops.h"
#include "test.h"
#ifdef MP_HAVE_CUDA
#include "kernels/cuda/cuda_ops.h"
#endif

typedef struct {
    mp_exec cpu, gpu;
    mp_threadpool *tp;
    unsigned long long rng;
} gpu_ctx;

/* 0 when both execs are ready; otherwise prints why and returns MP_TEST_SKIP (or 1 on a real failure). */
static inline int gpu_setup(gpu_ctx *g, const char *name) {
    memset(g, 0, sizeof *g);
    g->rng = 0x9E3779B97F4A7C15ull;
    if (!mp_cuda_compiled()) {
        fprintf(stderr, "%s: SKIPPED: this build has no CUDA backend (MMPIPE_CUDA=OFF or no nvcc/cuDNN)\n", name);
        return MP_TEST_SKIP;
    }
    if (!mp_cuda_available()) {
        fprintf(stderr, "%s: SKIPPED: no usable CUDA device (cudaGetDeviceCount() found none)\n", name);
        return MP_TEST_SKIP;
    }
    mp_error err;
    g->tp = mp_threadpool_create(0);
    if (mp_exec_init(&g->cpu, MP_BACKEND_CPU, g->tp, 64u << 20, &err) != 0 ||
        mp_exec_init(&g->gpu, MP_BACKEND_CUDA, NULL, 1u << 20, &err) != 0) {
        fprintf(stderr, "%s: exec init failed: %s\n", name, err.msg);
        return 1;
    }
    return 0;
}

static inline void gpu_teardown(gpu_ctx *g) {
    mp_exec_free(&g->gpu);
    mp_exec_free(&g->cpu);
    mp_threadpool_free(g->tp);
}

static inline float *rand_f32(gpu_ctx *g, int64_t n, float scale) {
    float *p = (float *)malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    for (int64_t i = 0; i < n; i++) p[i] = scale * mp_test_randf(&g->rng);
    return p;
}

/* device copy of host bytes (aborts the test on failure: nothing meaningful can follow) */
static inline void *dev_from(gpu_ctx *g, const void *host, size_t bytes) {
    mp_error err;
    void *d = mp_backend_alloc(&g->gpu, bytes ? bytes : 1);
    if (!d) {
        fprintf(stderr, "device alloc of %zu bytes failed\n", bytes);
        exit(1);
    }
    if (bytes && mp_backend_upload(&g->gpu, d, host, bytes, &err) != 0) {
        fprintf(stderr, "upload failed: %s\n", err.msg);
        exit(1);
    }
    return d;
}

static inline void *dev_alloc(gpu_ctx *g, size_t bytes) {
    void *d = mp_backend_alloc(&g->gpu, bytes ? bytes : 1);
    if (!d) {
        fprintf(stderr, "device alloc of %zu bytes failed\n", bytes);
        exit(1);
    }
    return d;
}

/* Checks the GPU exec for a recorded error, then downloads. Returns 0 on success. */
static inline int dev_to(gpu_ctx *g, void *host, const void *dev, size_t bytes, const char *what) {
    mp_error err;
    if (mp_exec_status(&g->gpu, &err) != 0) {
        CHECKF(0, "%s: CUDA op failed: %s", what, err.msg);
        return -1;
    }
    if (mp_backend_download(&g->gpu, host, dev, bytes, &err) != 0) {
        CHECKF(0, "%s: download failed: %s", what, err.msg);
        return -1;
    }
    return 0;
}

static inline void dev_free(gpu_ctx *g, void *d) { mp_backend_free(&g->gpu, d); }

/* Device copy of a contiguous host tensor (weights), through the backend-neutral memory API so that the
 * tests also build without the CUDA backend. Free with dev_free_tensor. */
static inline void dev_tensor(gpu_ctx *g, mp_tensor *dst, const mp_tensor *src) {
    *dst = *src;
    dst->data = dev_from(g, src->data, mp_tensor_nbytes(src));
    dst->backend = MP_BACKEND_CUDA;
}

static inline void dev_free_tensor(gpu_ctx *g, mp_tensor *t) {
    dev_free(g, t->data);
    t->data = NULL;
}

/* |got - ref| <= atol + rtol*|ref| everywhere (NaN where ref is not NaN fails). Reports the worst element. */
static inline int check_close(const char *what, const float *got, const float *ref, int64_t n, double atol, double rtol) {
    double worst = 0;
    int64_t wi = -1, bad = 0;
    for (int64_t i = 0; i < n; i++) {
        double r = ref[i], x = got[i];
        if (isnan(r) && isnan(x)) continue;
        double d = fabs(x - r), lim = atol + rtol * fabs(r);
        if (!(d <= lim)) bad++;
        double rel = (isnan(d) || isinf(d)) ? INFINITY : d / (lim > 0 ? lim : 1e-30);
        if (wi < 0 || rel > worst) { worst = rel; wi = i; }
    }
    CHECKF(bad == 0, "%s: %lld of %lld elements out of tolerance; worst at %lld: gpu %.9g cpu %.9g (|d| %.3g, atol %g rtol %g)",
           what, (long long)bad, (long long)n, (long long)wi, wi >= 0 ? got[wi] : 0.0, wi >= 0 ? ref[wi] : 0.0,
           wi >= 0 ? fabs((double)got[wi] - ref[wi]) : 0.0, atol, rtol);
    return bad == 0;
}

/* Per-element bound: |got - ref| <= tol[i]. */
static inline int check_bound(const char *what, const float *got, const float *ref, const double *tol, int64_t n) {
    int64_t bad = 0, wi = -1;
    double worst = -1;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)ref[i]);
        if (!(d <= tol[i])) bad++;
        double rel = isnan(d) ? INFINITY : d / (tol[i] > 0 ? tol[i] : 1e-30);
        if (rel > worst) { worst = rel; wi = i; }
    }
    CHECKF(bad == 0, "%s: %lld of %lld elements out of tolerance; worst at %lld: gpu %.9g ref %.9g (|d| %.3g, tol %.3g)",
           what, (long long)bad, (long long)n, (long long)wi, wi >= 0 ? got[wi] : 0.0, wi >= 0 ? ref[wi] : 0.0,
           wi >= 0 ? fabs((double)got[wi] - ref[wi]) : 0.0, wi >= 0 ? tol[wi] : 0.0);
    return bad == 0;
}

static inline int check_equal_bytes(const char *what, const void *got, const void *ref, size_t bytes) {
    const unsigned char *a = (const unsigned char *)got, *b = (const unsigned char *)ref;
    size_t first = bytes;
    for (size_t i = 0; i < bytes; i++)
        if (a[i] != b[i]) { first = i; break; }
    CHECKF(first == bytes, "%s: differs first at byte %zu of %zu (gpu 0x%02x cpu 0x%02x)", what, first, bytes,
           first < bytes ? a[first] : 0, first < bytes ? b[first] : 0);
    return first == bytes;
}

#endif
