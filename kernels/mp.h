/* mp.h — the core of the kernel layer: errors, dtypes, tensors, arena, thread pool, exec context.
 *
 * Conventions (read once):
 *  - Tensor dims follow ggml/GGUF: ne[0] is the innermost, contiguous dimension. A weight of
 *    nn.Linear(in=K, out=N) is a tensor with ne = {K, N}: N rows of K values, exactly as GGUF and
 *    safetensors store it ([N][K] row-major).
 *  - Activations are F32, row-major, [rows][cols] with cols contiguous.
 *  - Fallible functions return 0 on success and -1 on failure after filling an mp_error.
 *    Library code never calls exit() or abort().
 */
#ifndef MP_H
#define MP_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- errors */

typedef struct mp_error {
    char msg[1024];
} mp_error;

/* Formats the message into e (if e is not NULL) and returns -1, so callers can write
 * `return mp_errf(err, "%s: truncated header", path);` */
int mp_errf(mp_error *e, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* ---------------------------------------------------------------- dtypes */

/* Numbering is ggml's (enum ggml_type), so GGUF tensor types map one to one. */
typedef enum mp_dtype {
    MP_F32 = 0,
    MP_F16 = 1,
    MP_Q4_0 = 2,
    MP_Q4_1 = 3,
    MP_Q5_0 = 6,
    MP_Q5_1 = 7,
    MP_Q8_0 = 8,
    MP_Q8_1 = 9,
    MP_Q2_K = 10,
    MP_Q3_K = 11,
    MP_Q4_K = 12,
    MP_Q5_K = 13,
    MP_Q6_K = 14,
    MP_Q8_K = 15,
    MP_I8 = 24,
    MP_I16 = 25,
    MP_I32 = 26,
    MP_I64 = 27,
    MP_F64 = 28,
    MP_BF16 = 30,
    MP_DTYPE_COUNT = 31
} mp_dtype;

typedef struct mp_dtype_traits {
    const char *name;   /* "f32", "q4_K", ... as ggml names them; NULL for unused numbers */
    int block_size;     /* elements per block (1 for plain types) */
    int type_size;      /* bytes per block */
    int is_quant;
} mp_dtype_traits;

const mp_dtype_traits *mp_dtype_info(int dtype); /* NULL for an unknown/unused number */
const char *mp_dtype_name(int dtype);            /* "unknown" when not known */
int mp_dtype_from_name(const char *name);        /* -1 when not known; case-insensitive */
/* Bytes for n elements of dtype (n must be a multiple of the block size); -1 if it is not, or on overflow. */
int64_t mp_dtype_row_bytes(mp_dtype dt, int64_t n);

/* GGUF block layouts, bit-exact with llama.cpp (ggml-common.h). */
#define MP_QK4_0 32
#define MP_QK4_1 32
#define MP_QK5_0 32
#define MP_QK5_1 32
#define MP_QK8_0 32
#define MP_QK8_1 32
#define MP_QK_K 256
#define MP_K_SCALE_SIZE 12

typedef uint16_t mp_f16;  /* IEEE half, stored as bits */
typedef uint16_t mp_bf16; /* bfloat16, stored as bits */

typedef struct { mp_f16 d; uint8_t qs[MP_QK4_0 / 2]; } mp_block_q4_0;
typedef struct { mp_f16 d, m; uint8_t qs[MP_QK4_1 / 2]; } mp_block_q4_1;
typedef struct { mp_f16 d; uint8_t qh[4]; uint8_t qs[MP_QK5_0 / 2]; } mp_block_q5_0;
typedef struct { mp_f16 d, m; uint8_t qh[4]; uint8_t qs[MP_QK5_1 / 2]; } mp_block_q5_1;
typedef struct { mp_f16 d; int8_t qs[MP_QK8_0]; } mp_block_q8_0;
typedef struct { mp_f16 d, s; int8_t qs[MP_QK8_1]; } mp_block_q8_1;
typedef struct { mp_f16 d, dmin; uint8_t scales[MP_K_SCALE_SIZE]; uint8_t qs[MP_QK_K / 2]; } mp_block_q4_K;
typedef struct { mp_f16 d, dmin; uint8_t scales[MP_K_SCALE_SIZE]; uint8_t qh[MP_QK_K / 8]; uint8_t qs[MP_QK_K / 2]; } mp_block_q5_K;
typedef struct { uint8_t ql[MP_QK_K / 2]; uint8_t qh[MP_QK_K / 4]; int8_t scales[MP_QK_K / 16]; mp_f16 d; } mp_block_q6_K;
typedef struct { float d; int8_t qs[MP_QK_K]; int16_t bsums[MP_QK_K / 16]; } mp_block_q8_K;

/* half / bfloat16 conversions (exact, round-to-nearest-even on the way down) */
static inline float mp_f16_to_f32(mp_f16 h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: normalise */
            exp = 127 - 15 + 1;
            while (!(man & 0x400)) { man <<= 1; exp--; }
            man &= 0x3ff;
            bits = sign | (exp << 23) | (man << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static inline mp_f16 mp_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t absx = x & 0x7fffffff;
    if (absx >= 0x7f800000u) /* inf or nan */
        return (mp_f16)(sign | 0x7c00 | (absx > 0x7f800000u ? 0x200 : 0));
    if (absx >= 0x477ff000u) /* rounds to >= 65520: overflow to inf */
        return (mp_f16)(sign | 0x7c00);
    if (absx < 0x38800000u) { /* result is subnormal or zero */
        if (absx < 0x33000000u) return (mp_f16)sign; /* < 2^-25: rounds to 0 */
        uint32_t e = absx >> 23;
        uint32_t m = (absx & 0x7fffff) | 0x800000;
        uint32_t shift = 126 - e; /* 14..24 */
        uint32_t r = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1))) r++;
        return (mp_f16)(sign | r);
    }
    uint32_t r = ((absx >> 13) - ((127 - 15) << 10));
    uint32_t rem = absx & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (r & 1))) r++;
    return (mp_f16)(sign | r);
}

static inline float mp_bf16_to_f32(mp_bf16 h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static inline mp_bf16 mp_f32_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffff) > 0x7f800000u) return (mp_bf16)((x >> 16) | 64); /* quiet nan */
    x += 0x7fff + ((x >> 16) & 1);
    return (mp_bf16)(x >> 16);
}

/* ---------------------------------------------------------------- tensors */

typedef enum mp_backend {
    MP_BACKEND_CPU = 0,
    MP_BACKEND_CUDA = 1,
} mp_backend;

#define MP_MAX_DIMS 4

typedef struct mp_tensor {
    mp_dtype dtype;
    int ndim;
    int64_t ne[MP_MAX_DIMS]; /* elements per dim, ne[0] innermost; unused dims are 1 */
    size_t nb[MP_MAX_DIMS];  /* stride in bytes per dim; nb[0] = type size (block bytes for quants) */
    void *data;              /* host or device pointer, per backend */
    mp_backend backend;
    const char *name;        /* borrowed; may be NULL */
} mp_tensor;

/* Fills t as a contiguous tensor over data. Unused dims get ne=1. */
void mp_tensor_init(mp_tensor *t, mp_dtype dt, int ndim, const int64_t *ne, void *data);
int64_t mp_tensor_nelements(const mp_tensor *t);
size_t mp_tensor_nbytes(const mp_tensor *t); /* contiguous size */
int mp_tensor_is_contiguous(const mp_tensor *t);

/* ---------------------------------------------------------------- arena */

/* Bump allocator for scratch. Allocations are 64-byte aligned. mp_arena_mark/reset let an op or a
 * layer take scratch and give it back in LIFO order. */
typedef struct mp_arena {
    uint8_t *base;
    size_t size, used, high_water;
    int owns;
} mp_arena;

int mp_arena_init(mp_arena *a, size_t size, mp_error *err);
void mp_arena_init_from(mp_arena *a, void *buf, size_t size); /* borrow a buffer */
void mp_arena_free(mp_arena *a);
void *mp_arena_alloc(mp_arena *a, size_t bytes); /* NULL when full */
static inline size_t mp_arena_mark(const mp_arena *a) { return a->used; }
static inline void mp_arena_reset(mp_arena *a, size_t mark) { a->used = mark; }

/* Aligned heap memory (64 bytes) for long-lived buffers. */
void *mp_aligned_alloc(size_t bytes);
void mp_aligned_free(void *p);

/* ---------------------------------------------------------------- threads */

typedef struct mp_threadpool mp_threadpool;
/* fn(arg, ith, nth) is called once on each of nth threads (ith = 0..nth-1; the caller is thread 0). */
typedef void (*mp_task_fn)(void *arg, int ith, int nth);

mp_threadpool *mp_threadpool_create(int n_threads); /* n_threads <= 0: physical cores */
void mp_threadpool_free(mp_threadpool *tp);
int mp_threadpool_size(const mp_threadpool *tp);
/* Runs fn on all threads of the pool (tp NULL: runs fn(arg, 0, 1) inline) and waits for all. */
void mp_parallel(mp_threadpool *tp, mp_task_fn fn, void *arg);
/* Runs fn on min(n, pool size) threads. */
void mp_parallel_n(mp_threadpool *tp, int n, mp_task_fn fn, void *arg);
int mp_physical_cores(void);

/* Split [0, n) into nth nearly equal parts; part ith is [*lo, *hi). */
static inline void mp_split_range(int64_t n, int ith, int nth, int64_t *lo, int64_t *hi) {
    int64_t per = n / nth, rem = n % nth;
    *lo = ith * per + (ith < rem ? ith : rem);
    *hi = *lo + per + (ith < rem ? 1 : 0);
}

/* ---------------------------------------------------------------- cpu features */

typedef struct mp_cpu_features {
    int avx2, fma, f16c, avx512f, avx512bw, avx512vl, avx512_vnni, avx512_bf16, avx_vnni;
} mp_cpu_features;

const mp_cpu_features *mp_cpu(void);
/* Force a lower SIMD level for tests: 0 = scalar reference, 1 = AVX2, 2 = AVX-512, -1 = best available.
 * Returns the level actually in effect. Also settable with env MMPIPE_SIMD=ref|avx2|avx512. */
int mp_cpu_set_level(int level);
int mp_cpu_level(void);
const char *mp_cpu_level_name(int level);

/* ---------------------------------------------------------------- exec context */

/* Everything an op needs besides its operands: where to run, the thread pool, op scratch.
 * CPU ops ignore `cuda`; CUDA ops ignore `tp`. One exec is used by one thread at a time. */
typedef struct mp_exec {
    mp_backend backend;
    mp_threadpool *tp;  /* borrowed */
    mp_arena scratch;   /* op-internal scratch (e.g. activations quantized for a quant matmul) */
    void *cuda;         /* backend state (stream, cuBLAS/cuDNN handles), see kernels/cuda */
} mp_exec;

/* backend: CPU, CUDA, or -1 for auto (CUDA when compiled in and a GPU is present). */
int mp_exec_init(mp_exec *ex, int backend, mp_threadpool *tp, size_t scratch_bytes, mp_error *err);
void mp_exec_free(mp_exec *ex);
/* Waits for the backend to finish queued work and reports the first error an op ran into (CUDA ops
 * record errors instead of returning them). 0 when all is well. */
int mp_exec_status(mp_exec *ex, mp_error *err);
/* Backend memory: host memory for the CPU backend, device memory for CUDA. Model code allocates its
 * activations and uploads its weights with these, so the same forward pass runs on either backend. */
void *mp_backend_alloc(mp_exec *ex, size_t bytes); /* NULL on failure */
void mp_backend_free(mp_exec *ex, void *p);
int mp_backend_upload(mp_exec *ex, void *dst, const void *src, size_t bytes, mp_error *err);   /* host -> backend */
int mp_backend_download(mp_exec *ex, void *dst, const void *src, size_t bytes, mp_error *err); /* backend -> host, waits */
int mp_cuda_available(void); /* 1 if the CUDA backend is compiled in and a device is usable */
int mp_cuda_compiled(void);

#ifdef __cplusplus
}
#endif
#endif
