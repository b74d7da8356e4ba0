/* test.h — a minimal test harness: CHECK* macros count failures, main returns mp_test_result(). */
#ifndef MP_TEST_H
#define MP_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int mp_test_failures = 0, mp_test_checks = 0;

#define CHECK(cond)                                                                          \
    do {                                                                                     \
        mp_test_checks++;                                                                    \
        if (!(cond)) {                                                                       \
            mp_test_failures++;                                                              \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);         \
        }                                                                                    \
    } while (0)

#define CHECKF(cond, ...)                                                                    \
    do {                                                                                     \
        mp_test_checks++;                                                                    \
        if (!(cond)) {                                                                       \
            mp_test_failures++;                                                              \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond);         \
            fprintf(stderr, __VA_ARGS__);                                                    \
            fputc('\n', stderr);                                                             \
        }                                                                                    \
    } while (0)

#define CHECK_EQ_INT(a, b) CHECKF((long long)(a) == (long long)(b), "%lld != %lld", (long long)(a), (long long)(b))
#define CHECK_STR(a, b) CHECKF(strcmp((a), (b)) == 0, "\"%s\" != \"%s\"", (a), (b))
#define CHECK_NEAR(a, b, tol) CHECKF(fabs((double)(a) - (double)(b)) <= (tol), "%.9g vs %.9g (tol %g)", (double)(a), (double)(b), (double)(tol))

/* Max |a-b| / (max|b| + tiny) style comparison of two float arrays; prints the worst index. */
static inline double mp_test_max_abs_diff(const float *a, const float *b, long n, long *worst) {
    double m = 0;
    long wi = 0;
    for (long i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d != d) { m = INFINITY; wi = i; break; } /* NaN */
        if (d > m) { m = d; wi = i; }
    }
    if (worst) *worst = wi;
    return m;
}

#define CHECK_ARRAY_NEAR(a, b, n, tol)                                                       \
    do {                                                                                     \
        long _w;                                                                             \
        double _d = mp_test_max_abs_diff((a), (b), (long)(n), &_w);                          \
        CHECKF(_d <= (tol), "arrays differ: max |diff| %.3g at %ld (%.9g vs %.9g), tol %g",  \
               _d, _w, (double)(a)[_w], (double)(b)[_w], (double)(tol));                    \
    } while (0)

/* max |a - ref| / max |ref| (INFINITY when a holds a NaN) */
static inline double mp_test_rel_err(const float *a, const float *ref, size_t n) {
    double md = 0, mr = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)ref[i]);
        if (d != d) return INFINITY;
        if (d > md) md = d;
        if (fabs((double)ref[i]) > mr) mr = fabs((double)ref[i]);
    }
    return md / (mr + 1e-30);
}

/* The whole file, NUL-terminated (malloc'd); *n (optional) gets its size. NULL when it cannot be read. */
static inline void *mp_test_read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *b = NULL;
    long sz = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    if (sz >= 0 && fseek(f, 0, SEEK_SET) == 0 && (b = (char *)malloc((size_t)sz + 1)) != NULL) {
        size_t got = fread(b, 1, (size_t)sz, f);
        b[got] = 0;
        if (n) *n = got;
    }
    fclose(f);
    return b;
}

static inline int mp_test_result(const char *name) {
    if (mp_test_failures) {
        fprintf(stderr, "%s: %d of %d checks FAILED\n", name, mp_test_failures, mp_test_checks);
        return 1;
    }
    fprintf(stderr, "%s: all %d checks passed\n", name, mp_test_checks);
    return 0;
}

#define MP_TEST_SKIP 77

/* Path to a fixture under the fixtures dir (env MMPIPE_FIXTURES overrides the built-in default). */
static inline const char *mp_fixture(const char *rel) {
    static char buf[8][4096];
    static int k = 0;
    const char *root = getenv("MMPIPE_FIXTURES");
#ifdef MP_FIXTURES_DIR
    if (!root || !*root) root = MP_FIXTURES_DIR;
#endif
    if (!root) root = "../shared/fixtures";
    char *b = buf[k++ & 7];
    snprintf(b, 4096, "%s/%s", root, rel);
    return b;
}

/* Deterministic xorshift RNG for test data. */
static inline unsigned long long mp_test_rng(unsigned long long *s) {
    *s ^= *s << 13; *s ^= *s >> 7; *s ^= *s << 17; return *s;
}
static inline float mp_test_randf(unsigned long long *s) { /* uniform in [-1, 1) */
    return (float)((mp_test_rng(s) >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

#endif
