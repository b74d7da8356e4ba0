// norm.cu — LayerNorm, RMSNorm and the masked/causal row softmax: one thread block per row, block-wide
// tree reductions in F32 (the CPU reference accumulates in double; both are well inside the parity
// tests' 1e-5 relative tolerance for rows of up to ~10^5 values).
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_ops.h"

static inline int row_threads(int64_t cols) { return cols >= 4096 ? 512 : cols >= 1024 ? 256 : cols >= 128 ? 128 : 64; }

__global__ void k_layernorm(float *y, const float *x, const float *__restrict__ w, const float *__restrict__ b,
                            int64_t cols, float eps, int rms) {
    __shared__ float red[32];
    const int64_t r = blockIdx.x;
    const float *xr = x + r * cols;
    float *yr = y + r * cols;
    float mean = 0.0f;
    if (!rms) {
        float s = 0.0f;
        for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) s += xr[i];
        mean = mp_block_sum(s, red) / (float)cols;
    }
    float sq = 0.0f;
    for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) {
        float d = xr[i] - mean;
        sq += d * d;
    }
    const float var = mp_block_sum(sq, red) / (float)cols;
    const float rstd = __frcp_rn(__fsqrt_rn(var + eps));
    // every thread has read its elements of the row above: y may alias x.
    for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) {
        float v = (xr[i] - mean) * rstd;
        if (w) v *= w[i];
        if (b) v += b[i];
        yr[i] = v;
    }
}

static void norm_launch(mp_exec *ex, const char *what, float *y, const float *x, const float *w, const float *b,
                        int64_t rows, int64_t cols, float eps, int rms) {
    MP_CUDA_BEGIN(ex);
    if (rows < 0 || cols < 0 || rows > 0x7fffffff || ((!y || !x) && rows * cols > 0)) {
        mp_cuda_record_error(ex, "bad argument", what, __FILE__, __LINE__);
        return;
    }
    if (rows == 0 || cols == 0) return;
    k_layernorm<<<(unsigned)rows, row_threads(cols), 0, MP_CUDA_STREAM(ex)>>>(y, x, w, b, cols, eps, rms);
    CUDA_KERNEL_CHECK(ex);
}

extern "C" void mp_cuda_layernorm(mp_exec *ex, float *y, const float *x, const float *w, const float *b, int64_t rows,
                                  int64_t cols, float eps) {
    norm_launch(ex, "layernorm: NULL operand or bad size", y, x, w, b, rows, cols, eps, 0);
}

extern "C" void mp_cuda_rmsnorm(mp_exec *ex, float *y, const float *x, const float *w, int64_t rows, int64_t cols, float eps) {
    norm_launch(ex, "rmsnorm: NULL operand or bad size", y, x, w, NULL, rows, cols, eps, 1);
}

// Columns >= lim (causal) are masked; a row with nothing visible becomes all zeros (as on the CPU).
__global__ void k_softmax(float *x, int64_t cols, const float *__restrict__ mask, int causal, int64_t off) {
    __shared__ float red[32];
    const int64_t r = blockIdx.x;
    float *xr = x + r * cols;
    const float *mr = mask ? mask + r * cols : NULL;
    int64_t lim = cols;
    if (causal) {
        lim = r + off + 1;
        lim = lim < 0 ? 0 : lim > cols ? cols : lim;
    }
    float mx = -INFINITY;
    for (int64_t j = threadIdx.x; j < lim; j += blockDim.x) mx = fmaxf(mx, xr[j] + (mr ? mr[j] : 0.0f));
    mx = mp_block_max(mx, red);
    if (mx == -INFINITY) {
        for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) xr[j] = 0.0f;
        return;
    }
    float s = 0.0f;
    for (int64_t j = threadIdx.x; j < lim; j += blockDim.x) s += __expf(xr[j] + (mr ? mr[j] : 0.0f) - mx);
    const float inv = __frcp_rn(mp_block_sum(s, red));
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x)
        xr[j] = j < lim ? __expf(xr[j] + (mr ? mr[j] : 0.0f) - mx) * inv : 0.0f;
}

extern "C" void mp_cuda_softmax(mp_exec *ex, float *x, int64_t rows, int64_t cols, const float *mask, int causal,
                                int64_t causal_offset) {
    MP_CUDA_BEGIN(ex);
    MP_CUDA_REQUIRE(ex, rows >= 0 && cols >= 0 && rows <= 0x7fffffff, "softmax", "bad size");
    if (rows == 0 || cols == 0) return;
    MP_CUDA_REQUIRE(ex, x, "softmax", "NULL operand");
    int nt = cols >= 8192 ? 1024 : row_threads(cols);
    k_softmax<<<(unsigned)rows, nt, 0, MP_CUDA_STREAM(ex)>>>(x, cols, mask, causal, causal_offset);
    CUDA_KERNEL_CHECK(ex);
}
