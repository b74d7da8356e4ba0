/* core.c — errors, dtype table, tensors, arena, aligned memory, CPU features, exec context. */
#include "mp.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

int mp_errf(mp_error *e, const char *fmt, ...) {
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
        /* one line, whatever the file put in the names it echoes: control bytes become spaces */
        for (char *c = e->msg; *c; c++)
            if ((unsigned char)*c < 0x20 || *c == 0x7f) *c = ' ';
    }
    return -1;
}

/* ---------------------------------------------------------------- dtypes */

static const mp_dtype_traits dtype_table[MP_DTYPE_COUNT] = {
    [MP_F32] = {"f32", 1, 4, 0},
    [MP_F16] = {"f16", 1, 2, 0},
    [MP_Q4_0] = {"q4_0", MP_QK4_0, sizeof(mp_block_q4_0), 1},
    [MP_Q4_1] = {"q4_1", MP_QK4_1, sizeof(mp_block_q4_1), 1},
    [MP_Q5_0] = {"q5_0", MP_QK5_0, sizeof(mp_block_q5_0), 1},
    [MP_Q5_1] = {"q5_1", MP_QK5_1, sizeof(mp_block_q5_1), 1},
    [MP_Q8_0] = {"q8_0", MP_QK8_0, sizeof(mp_block_q8_0), 1},
    [MP_Q8_1] = {"q8_1", MP_QK8_1, sizeof(mp_block_q8_1), 1},
    [MP_Q2_K] = {"q2_K", MP_QK_K, 84, 1},
    [MP_Q3_K] = {"q3_K", MP_QK_K, 110, 1},
    [MP_Q4_K] = {"q4_K", MP_QK_K, sizeof(mp_block_q4_K), 1},
    [MP_Q5_K] = {"q5_K", MP_QK_K, sizeof(mp_block_q5_K), 1},
    [MP_Q6_K] = {"q6_K", MP_QK_K, sizeof(mp_block_q6_K), 1},
    [MP_Q8_K] = {"q8_K", MP_QK_K, sizeof(mp_block_q8_K), 1},
    [MP_I8] = {"i8", 1, 1, 0},
    [MP_I16] = {"i16", 1, 2, 0},
    [MP_I32] = {"i32", 1, 4, 0},
    [MP_I64] = {"i64", 1, 8, 0},
    [MP_F64] = {"f64", 1, 8, 0},
    [MP_BF16] = {"bf16", 1, 2, 0},
};

_Static_assert(sizeof(mp_block_q4_0) == 18, "q4_0 layout");
_Static_assert(sizeof(mp_block_q4_1) == 20, "q4_1 layout");
_Static_assert(sizeof(mp_block_q5_0) == 22, "q5_0 layout");
_Static_assert(sizeof(mp_block_q5_1) == 24, "q5_1 layout");
_Static_assert(sizeof(mp_block_q8_0) == 34, "q8_0 layout");
_Static_assert(sizeof(mp_block_q4_K) == 144, "q4_K layout");
_Static_assert(sizeof(mp_block_q5_K) == 176, "q5_K layout");
_Static_assert(sizeof(mp_block_q6_K) == 210, "q6_K layout");
_Static_assert(sizeof(mp_block_q8_K) == 292, "q8_K layout");

const mp_dtype_traits *mp_dtype_info(int dtype) {
    if (dtype < 0 || dtype >= MP_DTYPE_COUNT || !dtype_table[dtype].name) return NULL;
    return &dtype_table[dtype];
}

const char *mp_dtype_name(int dtype) {
    const mp_dtype_traits *t = mp_dtype_info(dtype);
    return t ? t->name : "unknown";
}

int mp_dtype_from_name(const char *name) {
    for (int i = 0; i < MP_DTYPE_COUNT; i++)
        if (dtype_table[i].name && strcasecmp(dtype_table[i].name, name) == 0) return i;
    return -1;
}

int64_t mp_dtype_row_bytes(mp_dtype dt, int64_t n) {
    const mp_dtype_traits *t = mp_dtype_info(dt);
    if (!t || n < 0 || n % t->block_size) return -1;
    int64_t blocks = n / t->block_size;
    if (blocks > INT64_MAX / t->type_size) return -1;
    return blocks * t->type_size;
}

/* ---------------------------------------------------------------- tensors */

void mp_tensor_init(mp_tensor *t, mp_dtype dt, int ndim, const int64_t *ne, void *data) {
    memset(t, 0, sizeof *t);
    t->dtype = dt;
    t->ndim = ndim;
    const mp_dtype_traits *tr = mp_dtype_info(dt);
    for (int i = 0; i < MP_MAX_DIMS; i++) t->ne[i] = i < ndim ? ne[i] : 1;
    t->nb[0] = tr ? (size_t)tr->type_size : 0;
    t->nb[1] = tr ? (size_t)mp_dtype_row_bytes(dt, t->ne[0]) : 0;
    for (int i = 2; i < MP_MAX_DIMS; i++) t->nb[i] = t->nb[i - 1] * (size_t)t->ne[i - 1];
    t->data = data;
    t->backend = MP_BACKEND_CPU;
}

int64_t mp_tensor_nelements(const mp_tensor *t) {
    return t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
}

size_t mp_tensor_nbytes(const mp_tensor *t) {
    return (size_t)mp_dtype_row_bytes(t->dtype, t->ne[0]) * (size_t)(t->ne[1] * t->ne[2] * t->ne[3]);
}

int mp_tensor_is_contiguous(const mp_tensor *t) {
    const mp_dtype_traits *tr = mp_dtype_info(t->dtype);
    if (!tr || t->nb[0] != (size_t)tr->type_size) return 0;
    size_t expect = (size_t)mp_dtype_row_bytes(t->dtype, t->ne[0]);
    for (int i = 1; i < MP_MAX_DIMS; i++) {
        if (t->ne[i] > 1 && t->nb[i] != expect) return 0;
        expect *= (size_t)t->ne[i];
    }
    return 1;
}

/* ---------------------------------------------------------------- memory */

void *mp_aligned_alloc(size_t bytes) {
    void *p = NULL;
    if (bytes == 0) bytes = 64;
    if (posix_memalign(&p, 64, (bytes + 63) & ~(size_t)63) != 0) return NULL;
    return p;
}

void mp_aligned_free(void *p) { free(p); }

int mp_arena_init(mp_arena *a, size_t size, mp_error *err) {
    memset(a, 0, sizeof *a);
    if (size == 0) return 0;
    a->base = mp_aligned_alloc(size);
    if (!a->base) return mp_errf(err, "out of memory allocating %zu bytes of scratch", size);
    a->size = size;
    a->owns = 1;
    return 0;
}

void mp_arena_init_from(mp_arena *a, void *buf, size_t size) {
    memset(a, 0, sizeof *a);
    a->base = buf;
    a->size = size;
}

void mp_arena_free(mp_arena *a) {
    if (a->owns) mp_aligned_free(a->base);
    memset(a, 0, sizeof *a);
}

void *mp_arena_alloc(mp_arena *a, size_t bytes) {
    size_t start = (a->used + 63) & ~(size_t)63;
    if (start > a->size || bytes > a->size - start) return NULL;
    a->used = start + bytes;
    if (a->used > a->high_water) a->high_water = a->used;
    return a->base + start;
}

/* ---------------------------------------------------------------- cpu features */

static mp_cpu_features g_cpu;
static int g_cpu_probed;
static int g_level = -2; /* -2: not decided yet */

static void cpu_probe(void) {
    if (g_cpu_probed) return;
    g_cpu_probed = 1;
#if defined(__x86_64__) || defined(__i386__)
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return;
    int osxsave = (c >> 27) & 1;
    g_cpu.fma = (c >> 12) & 1;
    g_cpu.f16c = (c >> 29) & 1;
    unsigned long long xcr0 = 0;
    if (osxsave) {
        unsigned lo, hi;
        __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
        xcr0 = ((unsigned long long)hi << 32) | lo;
    }
    int ymm_ok = (xcr0 & 6) == 6, zmm_ok = (xcr0 & 0xe6) == 0xe6;
    if (!ymm_ok) { g_cpu.fma = g_cpu.f16c = 0; return; }
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
        g_cpu.avx2 = (b >> 5) & 1;
        if (zmm_ok) {
            g_cpu.avx512f = (b >> 16) & 1;
            g_cpu.avx512bw = (b >> 30) & 1;
            g_cpu.avx512vl = (b >> 31) & 1;
            g_cpu.avx512_vnni = (c >> 11) & 1;
        }
    }
    if (__get_cpuid_count(7, 1, &a, &b, &c, &d)) {
        g_cpu.avx_vnni = (a >> 4) & 1;
        if (zmm_ok) g_cpu.avx512_bf16 = (a >> 5) & 1;
    }
#endif
}

const mp_cpu_features *mp_cpu(void) {
    cpu_probe();
    return &g_cpu;
}

static int best_level(void) {
    cpu_probe();
    if (g_cpu.avx512f && g_cpu.avx512bw && g_cpu.avx512vl && g_cpu.fma && g_cpu.f16c) return 2;
    if (g_cpu.avx2 && g_cpu.fma && g_cpu.f16c) return 1;
    return 0;
}

int mp_cpu_set_level(int level) {
    int best = best_level();
    g_level = (level < 0 || level > best) ? best : level;
    return g_level;
}

int mp_cpu_level(void) {
    if (g_level == -2) {
        const char *s = getenv("MMPIPE_SIMD");
        int want = -1;
        if (s && strcmp(s, "ref") == 0) want = 0;
        else if (s && strcmp(s, "avx2") == 0) want = 1;
        else if (s && strcmp(s, "avx512") == 0) want = 2;
        mp_cpu_set_level(want);
    }
    return g_level;
}

const char *mp_cpu_level_name(int level) {
    switch (level) {
    case 0: return "ref";
    case 1: return "avx2";
    case 2: return "avx512";
    default: return "?";
    }
}

/* ---------------------------------------------------------------- exec */

#ifdef MP_HAVE_CUDA
int mp_cuda_exec_init(mp_exec *ex, mp_error *err); /* kernels/cuda/backend.cu */
void mp_cuda_exec_free(mp_exec *ex);
int mp_cuda_device_count(void);
int mp_cuda_exec_status(mp_exec *ex, mp_error *err);
void *mp_cuda_alloc(mp_exec *ex, size_t bytes);
void mp_cuda_free(mp_exec *ex, void *p);
int mp_cuda_memcpy(mp_exec *ex, void *dst, const void *src, size_t bytes, int to_device, mp_error *err);
int mp_cuda_compiled(void) { return 1; }
int mp_cuda_available(void) { return mp_cuda_device_count() > 0; }
#else
int mp_cuda_compiled(void) { return 0; }
int mp_cuda_available(void) { return 0; }
#endif

int mp_exec_init(mp_exec *ex, int backend, mp_threadpool *tp, size_t scratch_bytes, mp_error *err) {
    memset(ex, 0, sizeof *ex);
    if (backend < 0) backend = mp_cuda_available() ? MP_BACKEND_CUDA : MP_BACKEND_CPU;
    ex->backend = (mp_backend)backend;
    ex->tp = tp;
    if (backend == MP_BACKEND_CUDA) {
#ifdef MP_HAVE_CUDA
        if (!mp_cuda_available()) return mp_errf(err, "--device cuda: no usable CUDA device found");
        if (mp_cuda_exec_init(ex, err) != 0) return -1;
#else
        return mp_errf(err, "--device cuda: this build of mmpipe has no CUDA backend");
#endif
    } else if (backend != MP_BACKEND_CPU) {
        return mp_errf(err, "unknown backend %d", backend);
    }
    if (mp_arena_init(&ex->scratch, scratch_bytes, err) != 0) {
        mp_exec_free(ex);
        return -1;
    }
    return 0;
}

void mp_exec_free(mp_exec *ex) {
#ifdef MP_HAVE_CUDA
    if (ex->cuda) mp_cuda_exec_free(ex);
#endif
    mp_arena_free(&ex->scratch);
    ex->cuda = NULL;
}

int mp_exec_status(mp_exec *ex, mp_error *err) {
#ifdef MP_HAVE_CUDA
    if (ex->backend == MP_BACKEND_CUDA) return mp_cuda_exec_status(ex, err);
#else
    (void)ex;
    (void)err;
#endif
    return 0;
}

void *mp_backend_alloc(mp_exec *ex, size_t bytes) {
#ifdef MP_HAVE_CUDA
    if (ex->backend == MP_BACKEND_CUDA) return mp_cuda_alloc(ex, bytes);
#endif
    return mp_aligned_alloc(bytes);
}

void mp_backend_free(mp_exec *ex, void *p) {
    if (!p) return;
#ifdef MP_HAVE_CUDA
    if (ex->backend == MP_BACKEND_CUDA) { mp_cuda_free(ex, p); return; }
#endif
    mp_aligned_free(p);
}

int mp_backend_upload(mp_exec *ex, void *dst, const void *src, size_t bytes, mp_error *err) {
#ifdef MP_HAVE_CUDA
    if (ex->backend == MP_BACKEND_CUDA) return mp_cuda_memcpy(ex, dst, src, bytes, 1, err);
#endif
    (void)err;
    if (dst != src) memcpy(dst, src, bytes);
    return 0;
}

int mp_backend_download(mp_exec *ex, void *dst, const void *src, size_t bytes, mp_error *err) {
#ifdef MP_HAVE_CUDA
    if (ex->backend == MP_BACKEND_CUDA) return mp_cuda_memcpy(ex, dst, src, bytes, 0, err);
#endif
    (void)err;
    if (dst != src) memcpy(dst, src, bytes);
    return 0;
}
