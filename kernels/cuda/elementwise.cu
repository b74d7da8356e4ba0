// elementwise.cu — add, mul, scale, row-broadcast add/mul, GELU (erf, tanh, quick), SiLU, SwiGLU.
// Formulas are those of the CPU ops (kernels/cpu/elementwise.c). The build compiles CUDA with
// --use_fast_math, so exp is __expf (a few ulp) and tanh is computed from it here; erff stays the
// accurate libdevice function. Outputs may alias inputs (each element is read, then written, by one thread).
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_ops.h"

enum { EW_ADD, EW_MUL, EW_SCALE, EW_GELU_ERF, EW_GELU_TANH, EW_GELU_QUICK, EW_SILU, EW_SWIGLU };

__device__ __forceinline__ float ew_sigmoid(float x) { return __frcp_rn(1.0f + __expf(-x)); }

__device__ __forceinline__ float ew_tanh(float u) { // sign(u) (1 - e^-2|u|) / (1 + e^-2|u|)
    float e = __expf(-2.0f * fabsf(u));
    float t = (1.0f - e) * __frcp_rn(1.0f + e);
    return copysignf(t, u);
}

__global__ void k_ew(float *y, const float *a, const float *b, float s, int64_t n, int op) {
    MP_GRID_STRIDE(i, n) {
        const float x = a[i];
        float r;
        switch (op) {
        case EW_ADD: r = x + b[i]; break;
        case EW_MUL: r = x * b[i]; break;
        case EW_SCALE: r = s * x; break;
        case EW_GELU_ERF: r = 0.5f * x * (1.0f + erff(x * 0.70710678118654752440f)); break;
        case EW_GELU_TANH: r = 0.5f * x * (1.0f + ew_tanh(0.79788456080286535588f * (x + 0.044715f * x * x * x))); break;
        case EW_GELU_QUICK: r = x * ew_sigmoid(1.702f * x); break;
        case EW_SILU: r = x * ew_sigmoid(x); break;
        default: r = x * ew_sigmoid(x) * b[i]; break; // EW_SWIGLU: silu(gate) * up
        }
        y[i] = r;
    }
}

__global__ void k_ew_rows(float *y, const float *x, const float *b, int64_t rows, int64_t cols, int mul) {
    MP_GRID_STRIDE(i, rows * cols) {
        const int64_t c = i % cols;
        y[i] = mul ? x[i] * b[c] : x[i] + b[c];
    }
}

static void ew_run(mp_exec *ex, const char *what, float *y, const float *a, const float *b, float s, int64_t n, int op) {
    MP_CUDA_BEGIN(ex);
    if (n < 0) {
        mp_cuda_record_error(ex, "bad argument", what, __FILE__, __LINE__);
        return;
    }
    if (n == 0) return;
    if (!y || !a || (!b && (op == EW_ADD || op == EW_MUL || op == EW_SWIGLU))) {
        mp_cuda_record_error(ex, "bad argument", what, __FILE__, __LINE__);
        return;
    }
    k_ew<<<mp_cuda_grid(n, 256), 256, 0, MP_CUDA_STREAM(ex)>>>(y, a, b, s, n, op);
    CUDA_KERNEL_CHECK(ex);
}

static void ew_rows(mp_exec *ex, const char *what, float *y, const float *x, const float *b, int64_t rows, int64_t cols,
                    int mul) {
    MP_CUDA_BEGIN(ex);
    if (rows < 0 || cols < 0 || ((!y || !x || !b) && rows * cols > 0)) {
        mp_cuda_record_error(ex, "bad argument", what, __FILE__, __LINE__);
        return;
    }
    if (rows * cols == 0) return;
    k_ew_rows<<<mp_cuda_grid(rows * cols, 256), 256, 0, MP_CUDA_STREAM(ex)>>>(y, x, b, rows, cols, mul);
    CUDA_KERNEL_CHECK(ex);
}

extern "C" void mp_cuda_add(mp_exec *ex, float *y, const float *a, const float *b, int64_t n) {
    ew_run(ex, "add: NULL operand or negative size", y, a, b, 0.0f, n, EW_ADD);
}
extern "C" void mp_cuda_mul(mp_exec *ex, float *y, const float *a, const float *b, int64_t n) {
    ew_run(ex, "mul: NULL operand or negative size", y, a, b, 0.0f, n, EW_MUL);
}
extern "C" void mp_cuda_scale(mp_exec *ex, float *y, const float *x, float s, int64_t n) {
    ew_run(ex, "scale: NULL operand or negative size", y, x, NULL, s, n, EW_SCALE);
}
extern "C" void mp_cuda_add_rows(mp_exec *ex, float *y, const float *x, const float *b, int64_t rows, int64_t cols) {
    ew_rows(ex, "add_rows: NULL operand or negative size", y, x, b, rows, cols, 0);
}
extern "C" void mp_cuda_mul_rows(mp_exec *ex, float *y, const float *x, const float *b, int64_t rows, int64_t cols) {
    ew_rows(ex, "mul_rows: NULL operand or negative size", y, x, b, rows, cols, 1);
}
extern "C" void mp_cuda_gelu(mp_exec *ex, float *y, const float *x, int64_t n, mp_gelu_kind kind) {
    int op = kind == MP_GELU_TANH ? EW_GELU_TANH : kind == MP_GELU_QUICK ? EW_GELU_QUICK : EW_GELU_ERF;
    ew_run(ex, "gelu: NULL operand or negative size", y, x, NULL, 0.0f, n, op);
}
extern "C" void mp_cuda_silu(mp_exec *ex, float *y, const float *x, int64_t n) {
    ew_run(ex, "silu: NULL operand or negative size", y, x, NULL, 0.0f, n, EW_SILU);
}
extern "C" void mp_cuda_swiglu(mp_exec *ex, float *y, const float *gate, const float *up, int64_t n) {
    ew_run(ex, "swiglu: NULL operand or negative size", y, gate, up, 0.0f, n, EW_SWIGLU);
}
