/* ops_test.h — shared by the kernels_ops tests: a 1-thread and a 3-thread CPU exec, random vectors,
 * error measures. */
#ifndef MP_OPS_TEST_H
#define MP_OPS_TEST_H

#include "kernels/ops.h"
#include "test.h"

static mp_threadpool *ot_pool3;
static mp_exec ex1, ex3;
static unsigned long long ot_rng = 0x1234567ULL;

/* 1 on failure (message printed) */
static inline int ops_test_init(size_t scratch_bytes) {
    mp_error err;
    ot_pool3 = mp_threadpool_create(3);
    if (mp_exec_init(&ex1, MP_BACKEND_CPU, NULL, scratch_bytes, &err) ||
        mp_exec_init(&ex3, MP_BACKEND_CPU, ot_pool3, scratch_bytes, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    return 0;
}

static inline void ops_test_free(void) {
    mp_exec_free(&ex1);
    mp_exec_free(&ex3);
    mp_threadpool_free(ot_pool3);
}

static inline float *randv(int64_t n, float lo, float hi) {
    float *v = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    for (int64_t i = 0; i < n; i++) v[i] = lo + (hi - lo) * 0.5f * (mp_test_randf(&ot_rng) + 1.0f);
    return v;
}

static inline float *dup(const float *x, int64_t n) {
    float *v = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    memcpy(v, x, (size_t)n * sizeof(float));
    return v;
}

static inline int bits_equal(const float *a, const float *b, int64_t n) { return memcmp(a, b, (size_t)n * sizeof(float)) == 0; }

/* max |a-b| / (1 + |b|); NaN anywhere (not in both) gives infinity */
static inline double relerr_f(const float *a, const float *b, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) {
        if (isnan(a[i]) && isnan(b[i])) continue;
        double d = fabs((double)a[i] - (double)b[i]) / (1.0 + fabs((double)b[i]));
        if (!(d <= m)) m = isnan(d) ? INFINITY : d;
    }
    return m;
}

#endif
