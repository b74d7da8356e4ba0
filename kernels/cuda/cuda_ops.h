// cuda_ops.h — CUDA implementations of the ops in kernels/ops.h, same arguments (device pointers).
// The dispatchers (mp_<op> in kernels/cpu/*.c) call mp_cuda_<op> when ex->backend is CUDA.
#pragma once
#include "kernels/ops.h"
#ifdef __cplusplus
extern "C" {
#endif
/* Backend memory (kernels/cuda/backend.cu); mp_backend_alloc/upload/download in kernels/mp.h call these. */
void *mp_cuda_alloc(mp_exec *ex, size_t bytes); /* device memory, NULL on failure */
void mp_cuda_free(mp_exec *ex, void *p);
int mp_cuda_memcpy(mp_exec *ex, void *dst, const void *src, size_t bytes, int to_device, mp_error *err);
/* Copies a contiguous host tensor (weights) to device memory: *dst = *src with data in device memory and
 * backend MP_BACKEND_CUDA. Free with mp_cuda_free_tensor. 0 or -1 with err filled. */
int mp_cuda_upload_tensor(mp_exec *ex, mp_tensor *dst, const mp_tensor *src, mp_error *err);
void mp_cuda_free_tensor(mp_exec *ex, mp_tensor *t);
/* "NVIDIA H100 ... (sm_90, 132 SMs, 79.1 GiB)" of device 0; -1 when there is none. */
int mp_cuda_device_name(char *buf, size_t size);

/* The ops. Pointers are device pointers, except: mp_cuda_argmax returns its result to the host (it waits
 * for the stream), and the ids of get_rows, idx/val of topk and pos of rope are device pointers too. */
void mp_cuda_matmul(mp_exec *ex, float *Y, int64_t ldy, const float *X, int64_t ldx, const mp_tensor *W, const float *bias, int64_t M);
void mp_cuda_gemm_f32(mp_exec *ex, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda, const float *B, int64_t ldb, int transB, float beta, float *C, int64_t ldc, int batch, int64_t sA, int64_t sB, int64_t sC);
void mp_cuda_add(mp_exec *ex, float *y, const float *a, const float *b, int64_t n);
void mp_cuda_mul(mp_exec *ex, float *y, const float *a, const float *b, int64_t n);
void mp_cuda_scale(mp_exec *ex, float *y, const float *x, float s, int64_t n);
void mp_cuda_add_rows(mp_exec *ex, float *y, const float *x, const float *b, int64_t rows, int64_t cols);
void mp_cuda_mul_rows(mp_exec *ex, float *y, const float *x, const float *b, int64_t rows, int64_t cols);
void mp_cuda_gelu(mp_exec *ex, float *y, const float *x, int64_t n, mp_gelu_kind kind);
void mp_cuda_silu(mp_exec *ex, float *y, const float *x, int64_t n);
void mp_cuda_swiglu(mp_exec *ex, float *y, const float *gate, const float *up, int64_t n);
void mp_cuda_layernorm(mp_exec *ex, float *y, const float *x, const float *w, const float *b, int64_t rows, int64_t cols, float eps);
void mp_cuda_rmsnorm(mp_exec *ex, float *y, const float *x, const float *w, int64_t rows, int64_t cols, float eps);
void mp_cuda_softmax(mp_exec *ex, float *x, int64_t rows, int64_t cols, const float *mask, int causal, int64_t causal_offset);
void mp_cuda_rope(mp_exec *ex, float *x, int64_t n_tok, int n_head, int64_t stride, const int32_t *pos, const mp_rope_params *p);
void mp_cuda_attention(mp_exec *ex, float *out, const float *q, const float *k, const float *v, const mp_attn_params *p);
void mp_cuda_conv1d(mp_exec *ex, float *y, const float *x, const mp_tensor *w, const float *bias, int batch, int64_t c_in, int64_t l_in, int stride, int pad);
void mp_cuda_conv1d_dw(mp_exec *ex, float *y, const float *x, const mp_tensor *w, const float *bias, int batch, int64_t c, int64_t l_in, int stride, int pad);
void mp_cuda_conv2d(mp_exec *ex, float *y, const float *x, const mp_tensor *w, const float *bias, int batch, int64_t c_in, int64_t h, int64_t wd, int stride_h, int stride_w, int pad_h, int pad_w);
void mp_cuda_conv3d(mp_exec *ex, float *y, const float *x, const mp_tensor *w, int kt, const float *bias, int batch, int64_t c_in, int64_t t, int64_t h, int64_t wd, int stride_t, int stride_h, int stride_w);
int64_t mp_cuda_argmax(mp_exec *ex, const float *x, int64_t n);
void mp_cuda_topk(mp_exec *ex, const float *x, int64_t n, int k, int32_t *idx, float *val);
void mp_cuda_get_rows(mp_exec *ex, float *y, const mp_tensor *table, const int32_t *ids, int64_t n);
void mp_cuda_transpose(mp_exec *ex, float *y, const float *x, int64_t rows, int64_t cols);
void mp_cuda_concat_cols(mp_exec *ex, float *y, const float *a, int64_t ca, const float *b, int64_t cb, int64_t rows);
void mp_cuda_convert(mp_exec *ex, void *dst, mp_dtype dst_dt, const void *src, mp_dtype src_dt, int64_t n);
#ifdef __cplusplus
}
#endif
