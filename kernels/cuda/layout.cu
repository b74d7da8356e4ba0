// layout.cu — data movement and dtype conversion: get_rows (embedding lookup, every dtype), transpose,
// concat_cols, convert (F32 <-> F16/BF16, blocks -> F32, F32 -> Q8_0/Q4_0/Q4_1/Q5_0/Q5_1 bit-exact with
// llama.cpp's quantize_row_*_ref), and the weight dequantizer the matmul uses for large M.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/quant.cuh"

// ---------------------------------------------------------------- dequantize rows

__device__ __forceinline__ void mp_store8(void *dst, int out, int64_t i, const float *v) {
    if (out == MP_OUT_F32) {
        float *d = (float *)dst + i;
#pragma unroll
        for (int j = 0; j < 8; j++) d[j] = v[j];
    } else {
        uint16_t *d = (uint16_t *)dst + i;
#pragma unroll
        for (int j = 0; j < 8; j++) d[j] = out == MP_OUT_BF16 ? mp_d_to_bf16(v[j]) : mp_d_to_f16(v[j]);
    }
}

// Thread per chunk of 8 elements: row r = ch / (K/8).
template <int DT>
__global__ void k_dequant_rows(void *__restrict__ dst, int out, const uint8_t *__restrict__ src, size_t row_bytes,
                               int64_t nrows, int64_t K) {
    constexpr int CPB = mp_qt<DT>::BS / 8;
    const int64_t cpr = K / 8;
    MP_GRID_STRIDE(i, nrows * cpr) {
        const int64_t r = i / cpr, ch = i - r * cpr, blk = ch / CPB;
        float v[8];
        mp_deq8<DT>(src + (size_t)r * row_bytes + (size_t)blk * mp_qt<DT>::TS, (int)(ch - blk * CPB), v);
        mp_store8(dst, out, r * K + ch * 8, v);
    }
}

int mp_cuda_dequant_rows(mp_exec *ex, void *dst, int out, const void *src, int dt, size_t row_bytes, int64_t nrows,
                         int64_t K) {
    if (mp_cuda_failed(ex)) return -1;
    if (K % 8 != 0 || mp_cuda_block_size(dt) == 0 || K % mp_cuda_block_size(dt) != 0) {
        mp_cuda_record_error(ex, "unsupported", "dequantize: dtype not supported on CUDA or row length not a multiple of its block",
                             __FILE__, __LINE__);
        return -1;
    }
    if (nrows <= 0) return 0;
    cudaStream_t s = MP_CUDA_STREAM(ex);
    unsigned g = mp_cuda_grid(nrows * (K / 8), 256);
#define DQ_LAUNCH(D) k_dequant_rows<D><<<g, 256, 0, s>>>(dst, out, (const uint8_t *)src, row_bytes, nrows, K)
    MP_QUANT_SWITCH(dt, DQ_LAUNCH, return -1);
#undef DQ_LAUNCH
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) {
        mp_cuda_record_error(ex, cudaGetErrorName(e), cudaGetErrorString(e), __FILE__, __LINE__);
        return -1;
    }
    return 0;
}

// ---------------------------------------------------------------- get_rows

// Plain dtypes (any row length): thread per element. An id outside the table gives a row of NaN (as on the CPU).
__global__ void k_get_rows_plain(float *__restrict__ y, const uint8_t *__restrict__ t, int dt, size_t row_bytes,
                                 int64_t nrows_table, const int32_t *__restrict__ ids, int64_t n, int64_t cols) {
    MP_GRID_STRIDE(i, n * cols) {
        const int64_t r = i / cols, c = i - r * cols;
        const int32_t id = ids[r];
        y[i] = (id >= 0 && id < nrows_table) ? mp_d_load(t + (size_t)id * row_bytes, dt, c) : __int_as_float(0x7fc00000);
    }
}

template <int DT>
__global__ void k_get_rows_q(float *__restrict__ y, const uint8_t *__restrict__ t, size_t row_bytes,
                             int64_t nrows_table, const int32_t *__restrict__ ids, int64_t n, int64_t cols) {
    constexpr int CPB = mp_qt<DT>::BS / 8;
    const int64_t cpr = cols / 8;
    MP_GRID_STRIDE(i, n * cpr) {
        const int64_t r = i / cpr, ch = i - r * cpr, blk = ch / CPB;
        const int32_t id = ids[r];
        float v[8];
        if (id >= 0 && id < nrows_table) {
            mp_deq8<DT>(t + (size_t)id * row_bytes + (size_t)blk * mp_qt<DT>::TS, (int)(ch - blk * CPB), v);
        } else {
#pragma unroll
            for (int j = 0; j < 8; j++) v[j] = __int_as_float(0x7fc00000);
        }
        float *d = y + r * cols + ch * 8;
#pragma unroll
        for (int j = 0; j < 8; j++) d[j] = v[j];
    }
}

extern "C" void mp_cuda_get_rows(mp_exec *ex, float *y, const mp_tensor *table, const int32_t *ids, int64_t n) {
    MP_CUDA_BEGIN(ex);
    MP_CUDA_REQUIRE(ex, table && table->data && y && (ids || n == 0) && n >= 0, "get_rows", "NULL operand");
    MP_CUDA_REQUIRE(ex, table->backend == MP_BACKEND_CUDA, "get_rows", "table is not in device memory");
    if (n == 0) return;
    const int dt = table->dtype;
    const int64_t cols = table->ne[0], rows = table->ne[1] * table->ne[2] * table->ne[3];
    const size_t rb = table->nb[1];
    cudaStream_t s = MP_CUDA_STREAM(ex);
    if (dt == MP_F32 || dt == MP_F16 || dt == MP_BF16 || dt == MP_I8 || dt == MP_I16 || dt == MP_I32) {
        k_get_rows_plain<<<mp_cuda_grid(n * cols, 256), 256, 0, s>>>(y, (const uint8_t *)table->data, dt, rb, rows, ids,
                                                                       n, cols);
    } else {
        const int bs = mp_cuda_block_size(dt);
        MP_CUDA_REQUIRE(ex, bs > 0, "get_rows", "table dtype is not supported on CUDA");
        MP_CUDA_REQUIRE(ex, cols % bs == 0, "get_rows", "row length is not a multiple of the quant block size");
        unsigned g = mp_cuda_grid(n * (cols / 8), 256);
#define GR_LAUNCH(D) k_get_rows_q<D><<<g, 256, 0, s>>>(y, (const uint8_t *)table->data, rb, rows, ids, n, cols)
        MP_QUANT_SWITCH(dt, GR_LAUNCH, {});
#undef GR_LAUNCH
    }
    CUDA_KERNEL_CHECK(ex);
}

// ---------------------------------------------------------------- transpose, concat

#define TR_TILE 32
__global__ void k_transpose(float *__restrict__ y, const float *__restrict__ x, int64_t rows, int64_t cols) {
    __shared__ float tile[TR_TILE][TR_TILE + 1];
    const int64_t c0 = (int64_t)blockIdx.x * TR_TILE, r0 = (int64_t)blockIdx.y * TR_TILE;
    for (int i = threadIdx.y; i < TR_TILE; i += blockDim.y) {
        int64_t r = r0 + i, c = c0 + threadIdx.x;
        if (r < rows && c < cols) tile[i][threadIdx.x] = x[r * cols + c];
    }
    __syncthreads();
    for (int i = threadIdx.y; i < TR_TILE; i += blockDim.y) {
        int64_t c = c0 + i, r = r0 + threadIdx.x; // y[c][r]
        if (r < rows && c < cols) y[c * rows + r] = tile[threadIdx.x][i];
    }
}

extern "C" void mp_cuda_transpose(mp_exec *ex, float *y, const float *x, int64_t rows, int64_t cols) {
    MP_CUDA_BEGIN(ex);
    MP_CUDA_REQUIRE(ex, rows >= 0 && cols >= 0, "transpose", "negative size");
    if (rows == 0 || cols == 0) return;
    MP_CUDA_REQUIRE(ex, x && y && x != y, "transpose", "NULL operand or in-place transpose");
    int64_t gx = (cols + TR_TILE - 1) / TR_TILE, gy = (rows + TR_TILE - 1) / TR_TILE;
    MP_CUDA_REQUIRE(ex, gx <= 0x7fffffff && gy <= 65535, "transpose", "matrix too large (rows > 2097120)");
    k_transpose<<<dim3((unsigned)gx, (unsigned)gy), dim3(TR_TILE, 8), 0, MP_CUDA_STREAM(ex)>>>(y, x, rows, cols);
    CUDA_KERNEL_CHECK(ex);
}

__global__ void k_concat_cols(float *__restrict__ y, const float *__restrict__ a, int64_t ca, const float *__restrict__ b,
                              int64_t cb, int64_t rows) {
    const int64_t cy = ca + cb;
    MP_GRID_STRIDE(i, rows * cy) {
        const int64_t r = i / cy, c = i - r * cy;
        y[i] = c < ca ? a[r * ca + c] : b[r * cb + (c - ca)];
    }
}

extern "C" void mp_cuda_concat_cols(mp_exec *ex, float *y, const float *a, int64_t ca, const float *b, int64_t cb,
                                    int64_t rows) {
    MP_CUDA_BEGIN(ex);
    MP_CUDA_REQUIRE(ex, ca >= 0 && cb >= 0 && rows >= 0, "concat_cols", "negative size");
    if (rows == 0 || ca + cb == 0) return;
    MP_CUDA_REQUIRE(ex, y && (a || ca == 0) && (b || cb == 0), "concat_cols", "NULL operand");
    k_concat_cols<<<mp_cuda_grid(rows * (ca + cb), 256), 256, 0, MP_CUDA_STREAM(ex)>>>(y, a, ca, b, cb, rows);
    CUDA_KERNEL_CHECK(ex);
}

// ---------------------------------------------------------------- convert

__global__ void k_convert_plain(void *__restrict__ dst, int ddt, const void *__restrict__ src, int sdt, int64_t n) {
    MP_GRID_STRIDE(i, n) {
        float v = mp_d_load(src, sdt, i);
        if (ddt == MP_F32) ((float *)dst)[i] = v;
        else if (ddt == MP_F16) ((uint16_t *)dst)[i] = mp_d_to_f16(v);
        else ((uint16_t *)dst)[i] = mp_d_to_bf16(v);
    }
}

__global__ void k_quantize(uint8_t *__restrict__ dst, int dt, const float *__restrict__ x, int64_t nblocks) {
    const int ts = dt == MP_Q8_0 ? 34 : dt == MP_Q4_0 ? 18 : dt == MP_Q4_1 ? 20 : dt == MP_Q5_0 ? 22 : 24;
    MP_GRID_STRIDE(ib, nblocks) mp_quantize_block(dt, x + ib * 32, dst + ib * ts);
}

static int is_plain_float(int dt) { return dt == MP_F32 || dt == MP_F16 || dt == MP_BF16; }
static int is_plain_src(int dt) { return is_plain_float(dt) || dt == MP_I8 || dt == MP_I16 || dt == MP_I32; }
static int is_q32(int dt) { return dt == MP_Q8_0 || dt == MP_Q4_0 || dt == MP_Q4_1 || dt == MP_Q5_0 || dt == MP_Q5_1; }

// src (any dtype the GPU decodes) -> F32 at dst. 0, or -1 with the error recorded.
static int to_f32(mp_exec *ex, float *dst, const void *src, int src_dt, int64_t n) {
    if (is_plain_src(src_dt)) {
        k_convert_plain<<<mp_cuda_grid(n, 256), 256, 0, MP_CUDA_STREAM(ex)>>>(dst, MP_F32, src, src_dt, n);
        cudaError_t e = cudaGetLastError();
        if (e != cudaSuccess) {
            mp_cuda_record_error(ex, cudaGetErrorName(e), cudaGetErrorString(e), __FILE__, __LINE__);
            return -1;
        }
        return 0;
    }
    const int bs = mp_cuda_block_size(src_dt);
    if (bs == 0 || n % bs != 0) {
        mp_cuda_record_error(ex, "unsupported", "convert: source dtype not decodable on CUDA, or n not a multiple of its block size",
                             __FILE__, __LINE__);
        return -1;
    }
    return mp_cuda_dequant_rows(ex, dst, MP_OUT_F32, src, src_dt, (size_t)mp_dtype_row_bytes((mp_dtype)src_dt, n), 1, n);
}

// F32 -> a block type the GPU does not quantize itself (the K-quants, Q8_1, ...): through the host with the
// CPU's quantizer (llama.cpp's reference algorithms), so the bytes are the CPU's. Synchronous.
static void quantize_on_host(mp_exec *ex, void *dst, mp_dtype dst_dt, const float *src, int64_t n) {
    const int64_t bytes = mp_dtype_row_bytes(dst_dt, n);
    MP_CUDA_REQUIRE(ex, bytes >= 0, "convert", "n is not a multiple of the destination block size");
    float *h = (float *)malloc((size_t)n * sizeof(float));
    void *q = malloc((size_t)bytes);
    if (!h || !q) {
        free(h);
        free(q);
        mp_cuda_record_error(ex, "out of memory", "convert: host staging buffer", __FILE__, __LINE__);
        return;
    }
    cudaStream_t s = MP_CUDA_STREAM(ex);
    cudaError_t e = cudaMemcpyAsync(h, src, (size_t)n * sizeof(float), cudaMemcpyDeviceToHost, s);
    if (e == cudaSuccess) e = cudaStreamSynchronize(s);
    if (e == cudaSuccess) {
        if (mp_quantize_row(dst_dt, h, q, n) < 0) {
            mp_cuda_record_error(ex, "unsupported", "convert: cannot quantize to this dtype", __FILE__, __LINE__);
        } else {
            e = cudaMemcpyAsync(dst, q, (size_t)bytes, cudaMemcpyHostToDevice, s);
            if (e == cudaSuccess) e = cudaStreamSynchronize(s); // q is freed below
        }
    }
    if (e != cudaSuccess) mp_cuda_record_error(ex, cudaGetErrorName(e), cudaGetErrorString(e), __FILE__, __LINE__);
    free(h);
    free(q);
}

extern "C" void mp_cuda_convert(mp_exec *ex, void *dst, mp_dtype dst_dt, const void *src, mp_dtype src_dt, int64_t n) {
    MP_CUDA_BEGIN(ex);
    MP_CUDA_REQUIRE(ex, n >= 0, "convert", "negative size");
    if (n == 0) return;
    MP_CUDA_REQUIRE(ex, dst && src, "convert", "NULL operand");
    cudaStream_t s = MP_CUDA_STREAM(ex);
    if (src_dt == dst_dt) {
        int64_t bytes = mp_dtype_row_bytes(src_dt, n);
        MP_CUDA_REQUIRE(ex, bytes >= 0, "convert", "n is not a multiple of the block size");
        if (dst != src) CUDA_CHECK(ex, cudaMemcpyAsync(dst, src, (size_t)bytes, cudaMemcpyDeviceToDevice, s));
        return;
    }
    if (is_plain_float(dst_dt) && is_plain_src(src_dt)) { // elementwise, exact rounding as mp.h
        k_convert_plain<<<mp_cuda_grid(n, 256), 256, 0, s>>>(dst, dst_dt, src, src_dt, n);
        CUDA_KERNEL_CHECK(ex);
        return;
    }
    if (is_plain_float(dst_dt)) { // block type -> F32 / F16 / BF16
        const int bs = mp_cuda_block_size(src_dt);
        MP_CUDA_REQUIRE(ex, bs > 0, "convert", "source dtype is not supported on CUDA");
        MP_CUDA_REQUIRE(ex, n % bs == 0, "convert", "n is not a multiple of the block size");
        int out = dst_dt == MP_F32 ? MP_OUT_F32 : dst_dt == MP_F16 ? MP_OUT_F16 : MP_OUT_BF16;
        mp_cuda_dequant_rows(ex, dst, out, src, src_dt, (size_t)mp_dtype_row_bytes(src_dt, n), 1, n);
        return;
    }
    // -> a block type: from F32, or through F32 in device scratch
    const float *f = (const float *)src;
    if (src_dt != MP_F32) {
        float *tmp = (float *)mp_cuda_workspace(ex, (size_t)n * sizeof(float));
        if (!tmp || to_f32(ex, tmp, src, src_dt, n) != 0) return;
        f = tmp;
    }
    if (is_q32(dst_dt)) {
        MP_CUDA_REQUIRE(ex, n % 32 == 0, "convert", "n is not a multiple of the block size (32)");
        k_quantize<<<mp_cuda_grid(n / 32, 128), 128, 0, s>>>((uint8_t *)dst, dst_dt, f, n / 32);
        CUDA_KERNEL_CHECK(ex);
        return;
    }
    quantize_on_host(ex, dst, dst_dt, f, n);
}
