/* elementwise.c — add, mul, scale, row-broadcast add/mul, GELU (erf, tanh, quick), SiLU, SwiGLU.
 * Scalar references here; AVX2/AVX-512 in elementwise_avx2.c / elementwise_avx512.c. Every element is
 * computed on its own, so the split over threads cannot change a result. */
#include <math.h>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/ref.h"

/* ---------------------------------------------------------------- references */

void mp_ref_add(float *y, const float *a, const float *b, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}

void mp_ref_mul(float *y, const float *a, const float *b, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = a[i] * b[i];
}

void mp_ref_scale(float *y, const float *x, float s, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = s * x[i];
}

void mp_ref_add_rows(float *y, const float *x, const float *b, int64_t rows, int64_t cols) {
    for (int64_t r = 0; r < rows; r++) mp_ref_add(y + r * cols, x + r * cols, b, cols);
}

void mp_ref_mul_rows(float *y, const float *x, const float *b, int64_t rows, int64_t cols) {
    for (int64_t r = 0; r < rows; r++) mp_ref_mul(y + r * cols, x + r * cols, b, cols);
}

static float gelu_one(float x, mp_gelu_kind kind) {
    switch (kind) {
    case MP_GELU_TANH: /* 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
        return 0.5f * x * (1.0f + tanhf(0.79788456080286535588f * (x + 0.044715f * x * x * x)));
    case MP_GELU_QUICK: /* x * sigmoid(1.702 x) */
        return x / (1.0f + expf(-1.702f * x));
    case MP_GELU_ERF:
    default: /* 0.5 x (1 + erf(x / sqrt 2)) */
        return 0.5f * x * (1.0f + erff(x * 0.70710678118654752440f));
    }
}

void mp_ref_gelu(float *y, const float *x, int64_t n, mp_gelu_kind kind) {
    for (int64_t i = 0; i < n; i++) y[i] = gelu_one(x[i], kind);
}

void mp_ref_silu(float *y, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = x[i] / (1.0f + expf(-x[i]));
}

void mp_ref_swiglu(float *y, const float *gate, const float *up, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

/* ---------------------------------------------------------------- dispatch */

enum { EW_ADD, EW_MUL, EW_SCALE, EW_ADD_ROWS, EW_MUL_ROWS, EW_GELU, EW_SILU, EW_SWIGLU };

typedef struct {
    int op, level;
    float *y;
    const float *a, *b;
    float s;
    mp_gelu_kind kind;
    int64_t cols;
} ew_ctx;

/* level 0 (scalar), 1 (AVX2), 2 (AVX-512) versions of the flat kernels */
static void ew_flat(int level, int op, float *y, const float *a, const float *b, float s, mp_gelu_kind kind,
                    int64_t n) {
    switch (op) {
    case EW_ADD: MP_PICK(level, mp_k_add, mp_ref_add)(y, a, b, n); break;
    case EW_MUL: MP_PICK(level, mp_k_mul, mp_ref_mul)(y, a, b, n); break;
    case EW_SCALE: MP_PICK(level, mp_k_scale, mp_ref_scale)(y, a, s, n); break;
    case EW_GELU: MP_PICK(level, mp_k_gelu, mp_ref_gelu)(y, a, n, kind); break;
    case EW_SILU: MP_PICK(level, mp_k_silu, mp_ref_silu)(y, a, n); break;
    case EW_SWIGLU: MP_PICK(level, mp_k_swiglu, mp_ref_swiglu)(y, a, b, n); break;
    }
}

static void ew_range(void *vctx, int64_t lo, int64_t hi) {
    const ew_ctx *c = (const ew_ctx *)vctx;
    if (c->op == EW_ADD_ROWS || c->op == EW_MUL_ROWS) { /* lo..hi are rows */
        int op = c->op == EW_ADD_ROWS ? EW_ADD : EW_MUL;
        for (int64_t r = lo; r < hi; r++)
            ew_flat(c->level, op, c->y + r * c->cols, c->a + r * c->cols, c->b, 0, 0, c->cols);
        return;
    }
    ew_flat(c->level, c->op, c->y + lo, c->a + lo, c->b ? c->b + lo : NULL, c->s, c->kind, hi - lo);
}

#define EW_MIN_CHUNK 16384

static void ew_run(const mp_exec *ex, ew_ctx *c, int64_t n) {
    c->level = mp_cpu_level();
    mp_cpu_parallel_for(ex, n, EW_MIN_CHUNK, 16, ew_range, c);
}

static void ew_rows(const mp_exec *ex, ew_ctx *c, int64_t rows) {
    c->level = mp_cpu_level();
    int64_t min_rows = c->cols > 0 ? (EW_MIN_CHUNK + c->cols - 1) / c->cols : 1;
    mp_cpu_parallel_for(ex, rows, min_rows, 1, ew_range, c);
}

void mp_add(mp_exec *ex, float *y, const float *a, const float *b, int64_t n) {
    MP_CUDA_DISPATCH(ex, mp_cuda_add(ex, y, a, b, n));
    ew_ctx c = {.op = EW_ADD, .y = y, .a = a, .b = b};
    ew_run(ex, &c, n);
}

void mp_mul(mp_exec *ex, float *y, const float *a, const float *b, int64_t n) {
    MP_CUDA_DISPATCH(ex, mp_cuda_mul(ex, y, a, b, n));
    ew_ctx c = {.op = EW_MUL, .y = y, .a = a, .b = b};
    ew_run(ex, &c, n);
}

void mp_scale(mp_exec *ex, float *y, const float *x, float s, int64_t n) {
    MP_CUDA_DISPATCH(ex, mp_cuda_scale(ex, y, x, s, n));
    ew_ctx c = {.op = EW_SCALE, .y = y, .a = x, .s = s};
    ew_run(ex, &c, n);
}

void mp_add_rows(mp_exec *ex, float *y, const float *x, const float *b, int64_t rows, int64_t cols) {
    MP_CUDA_DISPATCH(ex, mp_cuda_add_rows(ex, y, x, b, rows, cols));
    ew_ctx c = {.op = EW_ADD_ROWS, .y = y, .a = x, .b = b, .cols = cols};
    ew_rows(ex, &c, rows);
}

void mp_mul_rows(mp_exec *ex, float *y, const float *x, const float *b, int64_t rows, int64_t cols) {
    MP_CUDA_DISPATCH(ex, mp_cuda_mul_rows(ex, y, x, b, rows, cols));
    ew_ctx c = {.op = EW_MUL_ROWS, .y = y, .a = x, .b = b, .cols = cols};
    ew_rows(ex, &c, rows);
}

void mp_gelu(mp_exec *ex, float *y, const float *x, int64_t n, mp_gelu_kind kind) {
    MP_CUDA_DISPATCH(ex, mp_cuda_gelu(ex, y, x, n, kind));
    ew_ctx c = {.op = EW_GELU, .y = y, .a = x, .kind = kind};
    ew_run(ex, &c, n);
}

void mp_silu(mp_exec *ex, float *y, const float *x, int64_t n) {
    MP_CUDA_DISPATCH(ex, mp_cuda_silu(ex, y, x, n));
    ew_ctx c = {.op = EW_SILU, .y = y, .a = x};
    ew_run(ex, &c, n);
}

void mp_swiglu(mp_exec *ex, float *y, const float *gate, const float *up, int64_t n) {
    MP_CUDA_DISPATCH(ex, mp_cuda_swiglu(ex, y, gate, up, n));
    ew_ctx c = {.op = EW_SWIGLU, .y = y, .a = gate, .b = up};
    ew_run(ex, &c, n);
}
