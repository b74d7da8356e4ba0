// common.cuh — shared by every CUDA op: error checks, the backend state in mp_exec.cuda, launch and
// reduction helpers, device-side half/bfloat16 conversions bit-exact with kernels/mp.h.
#pragma once
#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <cudnn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "kernels/mp.h"
#include "kernels/ops.h"

typedef struct mp_cuda_state {
    cudaStream_t stream;
    cublasHandle_t cublas;
    cudnnHandle_t cudnn;
    void *workspace; // op scratch (converted activations, dequantized weights, cuDNN workspace), grown on demand
    size_t workspace_size;
    int failed;
    char errmsg[512];
} mp_cuda_state;

static inline mp_cuda_state *mp_cuda(mp_exec *ex) { return (mp_cuda_state *)ex->cuda; }

// Ops have no error return (like BLAS). A CUDA failure is recorded in the exec's state (first error
// wins, with file:line and CUDA's message), the op returns, and every later op on that exec is a no-op.
// Callers check mp_exec_status() after a forward pass and report the message; nothing exits.
extern "C" void mp_cuda_record_error(mp_exec *ex, const char *what, const char *msg, const char *file, int line);
static inline int mp_cuda_failed(mp_exec *ex) { return ((mp_cuda_state *)ex->cuda)->failed; }

// Device scratch of at least `bytes` for the op being run (256-byte aligned). The same buffer is handed
// to every op on the exec: ops are ordered on one stream, so an op may use it freely until it returns.
// Growing it waits for queued work first. Returns NULL (error recorded) when the device is out of memory.
extern "C" void *mp_cuda_workspace(mp_exec *ex, size_t bytes);

#define CUDA_CHECK(ex, call)                                                                      \
    do {                                                                                          \
        cudaError_t _e = (call);                                                                  \
        if (_e != cudaSuccess) {                                                                  \
            mp_cuda_record_error((ex), cudaGetErrorName(_e), cudaGetErrorString(_e), __FILE__, __LINE__); \
            return;                                                                               \
        }                                                                                         \
    } while (0)

#define CUBLAS_CHECK(ex, call)                                                                    \
    do {                                                                                          \
        cublasStatus_t _s = (call);                                                               \
        if (_s != CUBLAS_STATUS_SUCCESS) {                                                        \
            mp_cuda_record_error((ex), "cuBLAS", cublasGetStatusString(_s), __FILE__, __LINE__);  \
            return;                                                                               \
        }                                                                                         \
    } while (0)

#define CUDNN_CHECK(ex, call)                                                                     \
    do {                                                                                          \
        cudnnStatus_t _s = (call);                                                                \
        if (_s != CUDNN_STATUS_SUCCESS) {                                                         \
            mp_cuda_record_error((ex), "cuDNN", cudnnGetErrorString(_s), __FILE__, __LINE__);     \
            return;                                                                               \
        }                                                                                         \
    } while (0)

// After a kernel launch.
#define CUDA_KERNEL_CHECK(ex) CUDA_CHECK(ex, cudaGetLastError())

// First line of every op: nothing to do after an earlier failure on this exec.
#define MP_CUDA_BEGIN(ex)                                                                         \
    do {                                                                                          \
        if (!(ex) || !(ex)->cuda || mp_cuda_failed(ex)) return;                                   \
    } while (0)

// Argument check: records "<op>: <message>" as the exec's error and returns.
#define MP_CUDA_REQUIRE(ex, cond, op, msg)                                                        \
    do {                                                                                          \
        if (!(cond)) {                                                                            \
            mp_cuda_record_error((ex), "bad argument", op ": " msg, __FILE__, __LINE__);          \
            return;                                                                               \
        }                                                                                         \
    } while (0)

#define MP_CUDA_STREAM(ex) (mp_cuda(ex)->stream)

// ---------------------------------------------------------------- launch helpers

// Blocks for a grid-stride loop over n items (capped; the kernels loop).
static inline unsigned mp_cuda_grid(int64_t n, int threads) {
    int64_t b = (n + threads - 1) / threads;
    if (b < 1) b = 1;
    if (b > 65536) b = 65536;
    return (unsigned)b;
}

#define MP_GRID_STRIDE(i, n) \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (int64_t)gridDim.x * blockDim.x)

// ---------------------------------------------------------------- reductions

__device__ __forceinline__ float mp_warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float mp_warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Sum over the block (blockDim.x a multiple of 32, <= 1024); every thread gets the result.
// `red` is __shared__ float[32]. Contains __syncthreads(): call from all threads.
__device__ __forceinline__ float mp_block_sum(float v, float *red) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = mp_warp_sum(v);
    __syncthreads(); // red may still be read by a previous reduction
    if (lane == 0) red[warp] = v;
    __syncthreads();
    v = lane < nw ? red[lane] : 0.0f;
    return mp_warp_sum(v);
}

__device__ __forceinline__ float mp_block_max(float v, float *red) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = mp_warp_max(v);
    __syncthreads();
    if (lane == 0) red[warp] = v;
    __syncthreads();
    v = lane < nw ? red[lane] : -INFINITY;
    return mp_warp_max(v);
}

// ---------------------------------------------------------------- host + device helpers
// MP_HD functions are compiled for both sides: the device uses them in kernels, and the host twin lets
// tests/gpu/test_cuda_host.cu check the exact arithmetic (decoding, quantizing, RoPE angles) against the
// CPU ops on a machine without a GPU.
#define MP_HD __host__ __device__ __forceinline__

// Separately rounded IEEE operations. The CUDA build uses --use_fast_math (approximate division, FMA
// contraction), so code that must reproduce the CPU's float results bit for bit spells them out. On the
// host (x86-64 baseline, no FMA instructions) plain operators are already exactly this.
#ifdef __CUDA_ARCH__
#define MP_FMUL(a, b) __fmul_rn((a), (b))
#define MP_FADD(a, b) __fadd_rn((a), (b))
#define MP_FSUB(a, b) __fsub_rn((a), (b))
#define MP_FDIV(a, b) __fdiv_rn((a), (b))
#else
#define MP_FMUL(a, b) ((float)(a) * (float)(b))
#define MP_FADD(a, b) ((float)(a) + (float)(b))
#define MP_FSUB(a, b) ((float)(a) - (float)(b))
#define MP_FDIV(a, b) ((float)(a) / (float)(b))
#endif

MP_HD uint32_t mp_fbits(float f) {
#ifdef __CUDA_ARCH__
    return __float_as_uint(f);
#else
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
#endif
}

MP_HD float mp_bitsf(uint32_t u) {
#ifdef __CUDA_ARCH__
    return __uint_as_float(u);
#else
    float f;
    memcpy(&f, &u, 4);
    return f;
#endif
}

// ---------------------------------------------------------------- half / bfloat16 (bit-exact with mp.h)

MP_HD float mp_d_f16(uint16_t h) {
#ifdef __CUDA_ARCH__
    return __half2float(__ushort_as_half(h));
#else
    return mp_f16_to_f32(h);
#endif
}
MP_HD float mp_d_bf16(uint16_t h) { return mp_bitsf((uint32_t)h << 16); }

// mp_f16_to_f32 in integer arithmetic: also NaN payloads come out as on the CPU (the hardware conversion
// of mp_d_f16 may canonicalize them). For convert/get_rows, where bytes must match; mat-vec uses mp_d_f16.
MP_HD float mp_d_f16_exact(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, man = h & 0x3ffu, bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else {
            exp = 127 - 15 + 1;
            while (!(man & 0x400u)) { man <<= 1; exp--; }
            man &= 0x3ffu;
            bits = sign | (exp << 23) | (man << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    return mp_bitsf(bits);
}

// Same rounding and NaN/overflow rules as mp_f32_to_f16 (integer arithmetic, so no FTZ effect).
MP_HD uint16_t mp_d_to_f16(float f) {
    uint32_t x = mp_fbits(f);
    uint32_t sign = (x >> 16) & 0x8000u, absx = x & 0x7fffffffu;
    if (absx >= 0x7f800000u) return (uint16_t)(sign | 0x7c00u | (absx > 0x7f800000u ? 0x200u : 0u));
    if (absx >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);
    if (absx < 0x38800000u) {
        if (absx < 0x33000000u) return (uint16_t)sign;
        uint32_t e = absx >> 23, m = (absx & 0x7fffffu) | 0x800000u, shift = 126u - e;
        uint32_t r = m >> shift, rem = m & ((1u << shift) - 1u), half = 1u << (shift - 1u);
        if (rem > half || (rem == half && (r & 1u))) r++;
        return (uint16_t)(sign | r);
    }
    uint32_t r = (absx >> 13) - ((127u - 15u) << 10), rem = absx & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (r & 1u))) r++;
    return (uint16_t)(sign | r);
}

// Same as mp_f32_to_bf16.
MP_HD uint16_t mp_d_to_bf16(float f) {
    uint32_t x = mp_fbits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 64u);
    x += 0x7fffu + ((x >> 16) & 1u);
    return (uint16_t)(x >> 16);
}

// One element of a plain (non-block) float dtype as F32.
MP_HD float mp_d_load(const void *p, int dt, int64_t i) {
    switch (dt) {
    case MP_F16: return mp_d_f16_exact(((const uint16_t *)p)[i]);
    case MP_BF16: return mp_d_bf16(((const uint16_t *)p)[i]);
    case MP_I8: return (float)((const int8_t *)p)[i];
    case MP_I16: return (float)((const int16_t *)p)[i];
    case MP_I32: return (float)((const int32_t *)p)[i];
    default: return ((const float *)p)[i];
    }
}

// Checks that a size fits cuBLAS/cuDNN's int arguments.
static inline int mp_cuda_fits_int(int64_t v) { return v >= 0 && v <= 0x7fffffff; }
