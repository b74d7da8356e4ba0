/* test_core.c — dtype table, f16/bf16 conversion (vs the CPU's own F16C instructions), arena, thread
 * pool, CPU feature probe. */
#include "kernels/mp.h"
#include "test.h"

#include <immintrin.h>
#include <stdatomic.h>

static void test_dtypes(void) {
    CHECK_EQ_INT(mp_dtype_info(MP_Q4_K)->type_size, 144);
    CHECK_EQ_INT(mp_dtype_info(MP_Q6_K)->block_size, 256);
    CHECK_EQ_INT(mp_dtype_row_bytes(MP_Q8_0, 64), 68);
    CHECK_EQ_INT(mp_dtype_row_bytes(MP_Q8_0, 33), -1);
    CHECK_EQ_INT(mp_dtype_row_bytes(MP_BF16, 7), 14);
    CHECK(mp_dtype_info(4) == NULL); /* removed Q4_2 */
    CHECK(mp_dtype_info(-1) == NULL && mp_dtype_info(99) == NULL);
    CHECK_EQ_INT(mp_dtype_from_name("Q4_K"), MP_Q4_K);
    CHECK_STR(mp_dtype_name(MP_BF16), "bf16");
    int64_t ne[2] = {64, 3};
    mp_tensor t;
    mp_tensor_init(&t, MP_Q8_0, 2, ne, NULL);
    CHECK_EQ_INT(t.nb[1], 68);
    CHECK_EQ_INT(mp_tensor_nbytes(&t), 204);
    CHECK(mp_tensor_is_contiguous(&t));
}

static void test_f16(void) {
    if (!mp_cpu()->f16c) { fprintf(stderr, "no F16C: skipping f16 hardware comparison\n"); return; }
    /* every half -> float, and a sweep of floats -> half, vs the hardware conversion */
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float a = mp_f16_to_f32((mp_f16)h);
        float b = _cvtsh_ss((unsigned short)h);
        uint32_t ua, ub;
        memcpy(&ua, &a, 4);
        memcpy(&ub, &b, 4);
        if (ua != ub && !(a != a && b != b)) bad++;
    }
    CHECK_EQ_INT(bad, 0);
    bad = 0;
    for (uint64_t u = 0; u < 0x100000000ull; u += 4099) {
        uint32_t x = (uint32_t)u;
        float f;
        memcpy(&f, &x, 4);
        mp_f16 a = mp_f32_to_f16(f);
        unsigned short b = _cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT);
        if (a != b && !(f != f)) {
            if (bad < 5) fprintf(stderr, "f32->f16 %08x: %04x vs %04x\n", x, a, b);
            bad++;
        }
    }
    CHECK_EQ_INT(bad, 0);
}

static void test_bf16(void) {
    CHECK_EQ_INT(mp_f32_to_bf16(1.0f), 0x3f80);
    CHECK(mp_bf16_to_f32(0x4049) == 3.140625f);
    /* round to nearest even: 1 + 2^-8 is halfway between 1 and 1+2^-7 -> 1 */
    CHECK_EQ_INT(mp_f32_to_bf16(1.00390625f), 0x3f80);
    CHECK_EQ_INT(mp_f32_to_bf16(1.01171875f), 0x3f82); /* 1 + 3*2^-8 -> halfway, rounds to even 0x3f82 */
}

static void test_arena(void) {
    mp_arena a;
    mp_error err;
    CHECK(mp_arena_init(&a, 1000, &err) == 0);
    void *p = mp_arena_alloc(&a, 10);
    CHECK(p != NULL && ((uintptr_t)p & 63) == 0);
    size_t m = mp_arena_mark(&a);
    void *q = mp_arena_alloc(&a, 100);
    CHECK(q != NULL && ((uintptr_t)q & 63) == 0 && q != p);
    CHECK(mp_arena_alloc(&a, 2000) == NULL);
    mp_arena_reset(&a, m);
    CHECK(mp_arena_alloc(&a, 100) == q);
    mp_arena_free(&a);
}

typedef struct { atomic_long sum; atomic_int calls; long n; } sum_job;

static void sum_task(void *arg, int ith, int nth) {
    sum_job *j = arg;
    int64_t lo, hi;
    mp_split_range(j->n, ith, nth, &lo, &hi);
    long s = 0;
    for (int64_t i = lo; i < hi; i++) s += i;
    atomic_fetch_add(&j->sum, s);
    atomic_fetch_add(&j->calls, 1);
}

static void test_threads(void) {
    for (int nt = 1; nt <= 5; nt++) {
        mp_threadpool *tp = mp_threadpool_create(nt);
        CHECK(tp != NULL);
        CHECK_EQ_INT(mp_threadpool_size(tp), nt);
        for (int rep = 0; rep < 200; rep++) {
            sum_job j = {0, 0, 1000 + rep};
            mp_parallel(tp, sum_task, &j);
            CHECK_EQ_INT(atomic_load(&j.sum), (long)(j.n * (j.n - 1) / 2));
            CHECK_EQ_INT(atomic_load(&j.calls), nt);
        }
        sum_job j = {0, 0, 77};
        mp_parallel_n(tp, 2, sum_task, &j);
        CHECK_EQ_INT(atomic_load(&j.sum), 77 * 76 / 2);
        CHECK_EQ_INT(atomic_load(&j.calls), nt >= 2 ? 2 : 1);
        mp_threadpool_free(tp);
    }
    CHECK(mp_physical_cores() >= 1);
}

static void test_exec(void) {
    mp_exec ex;
    mp_error err;
    CHECK(mp_exec_init(&ex, MP_BACKEND_CPU, NULL, 4096, &err) == 0);
    CHECK(mp_exec_status(&ex, &err) == 0);
    mp_exec_free(&ex);
    if (!mp_cuda_available()) {
        CHECK(mp_exec_init(&ex, MP_BACKEND_CUDA, NULL, 0, &err) != 0);
        CHECK(strstr(err.msg, "cuda") != NULL);
    }
    int best = mp_cpu_set_level(-1);
    CHECK(best >= 0 && best <= 2);
    CHECK_EQ_INT(mp_cpu_set_level(0), 0);
    mp_cpu_set_level(-1);
}

int main(void) {
    test_dtypes();
    test_f16();
    test_bf16();
    test_arena();
    test_threads();
    test_exec();
    return mp_test_result("test_core");
}
