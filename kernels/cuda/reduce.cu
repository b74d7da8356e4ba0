// reduce.cu — argmax and top-k with the CPU's ranking (kernels/cpu/reduce.c): larger value first, ties
// to the lower index, NaN below every number. One block of 1024 threads scans the vector; top-k takes
// k such passes, each finding the best element ranked after the previous pick (O(k n): meant for
// sampling-sized k, e.g. <= a few hundred, where each pass costs a few microseconds).
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_ops.h"

#define RD_THREADS 1024

__device__ __forceinline__ bool rank_before(float a, int64_t ia, float b, int64_t ib) {
    if (isnan(a)) return isnan(b) && ia < ib;
    if (isnan(b)) return true;
    return a > b || (a == b && ia < ib);
}

// Block-wide best (value, index); index -1 = none. All threads get the result.
__device__ void block_best(float &v, int64_t &i) {
    __shared__ float sv[32];
    __shared__ int64_t si[32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    for (int o = 16; o > 0; o >>= 1) {
        float ov = __shfl_xor_sync(0xffffffffu, v, o);
        int64_t oi = __shfl_xor_sync(0xffffffffu, i, o);
        if (oi >= 0 && (i < 0 || rank_before(ov, oi, v, i))) { v = ov; i = oi; }
    }
    __syncthreads();
    if (lane == 0) { sv[warp] = v; si[warp] = i; }
    __syncthreads();
    v = lane < nw ? sv[lane] : 0.0f;
    i = lane < nw ? si[lane] : -1;
    for (int o = 16; o > 0; o >>= 1) {
        float ov = __shfl_xor_sync(0xffffffffu, v, o);
        int64_t oi = __shfl_xor_sync(0xffffffffu, i, o);
        if (oi >= 0 && (i < 0 || rank_before(ov, oi, v, i))) { v = ov; i = oi; }
    }
}

// k passes; pass r picks the best element ranked after pick r-1.
__global__ void __launch_bounds__(RD_THREADS) k_topk(const float *__restrict__ x, int64_t n, int k, int32_t *idx, float *val,
                                                     int64_t *best_out) {
    float pv = 0.0f;
    int64_t pi = -1;
    for (int r = 0; r < k; r++) {
        float bv = 0.0f;
        int64_t bi = -1;
        for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
            const float v = x[j];
            if (pi >= 0 && !rank_before(pv, pi, v, j)) continue;
            if (bi < 0 || rank_before(v, j, bv, bi)) { bv = v; bi = j; }
        }
        block_best(bv, bi);
        if (threadIdx.x == 0) {
            if (idx) idx[r] = (int32_t)bi;
            if (val) val[r] = bv;
            if (best_out) *best_out = bi;
        }
        pv = bv;
        pi = bi;
    }
}

extern "C" int64_t mp_cuda_argmax(mp_exec *ex, const float *x, int64_t n) {
    if (!ex || !ex->cuda || mp_cuda_failed(ex)) return -1;
    if (n <= 0) return -1;
    if (!x) {
        mp_cuda_record_error(ex, "bad argument", "argmax: NULL operand", __FILE__, __LINE__);
        return -1;
    }
    int64_t *d = (int64_t *)mp_cuda_workspace(ex, sizeof(int64_t));
    if (!d) return -1;
    cudaStream_t s = MP_CUDA_STREAM(ex);
    k_topk<<<1, RD_THREADS, 0, s>>>(x, n, 1, NULL, NULL, d);
    int64_t r = -1;
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess) e = cudaMemcpyAsync(&r, d, sizeof r, cudaMemcpyDeviceToHost, s);
    if (e == cudaSuccess) e = cudaStreamSynchronize(s);
    if (e != cudaSuccess) {
        mp_cuda_record_error(ex, cudaGetErrorName(e), cudaGetErrorString(e), __FILE__, __LINE__);
        return -1;
    }
    return r;
}

extern "C" void mp_cuda_topk(mp_exec *ex, const float *x, int64_t n, int k, int32_t *idx, float *val) {
    MP_CUDA_BEGIN(ex);
    if (k > n) k = (int)n;
    if (k <= 0) return;
    MP_CUDA_REQUIRE(ex, x && idx && val, "topk", "NULL operand");
    MP_CUDA_REQUIRE(ex, n <= 0x7fffffff, "topk", "n exceeds the int32 index range");
    k_topk<<<1, RD_THREADS, 0, MP_CUDA_STREAM(ex)>>>(x, n, k, idx, val, NULL);
    CUDA_KERNEL_CHECK(ex);
}
