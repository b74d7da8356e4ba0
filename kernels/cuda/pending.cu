// pending.cu — ops whose CUDA version is not written yet. Each records a clear error in the exec
// ("<op> is not implemented on CUDA yet"), so mp_exec_status() reports it and nothing is computed
// wrongly. Remove an op from this file when its real kernel lands in kernels/cuda/<op>.cu.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_ops.h"

extern "C" void mp_cuda_matmul(mp_exec *ex, float *Y, int64_t ldy, const float *X, int64_t ldx, const mp_tensor *W, const float *bias, int64_t M) {
    mp_cuda_record_error(ex, "unsupported", "matmul is not implemented on CUDA yet", __FILE__, __LINE__);
}

extern "C" void mp_cuda_gemm_f32(mp_exec *ex, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda, const float *B, int64_t ldb, int transB, float beta, float *C, int64_t ldc, int batch, int64_t sA, int64_t sB, int64_t sC) {
    mp_cuda_record_error(ex, "unsupported", "gemm_f32 is not implemented on CUDA yet", __FILE__, __LINE__);
}

extern "C" void mp_cuda_add(mp_exec *ex, float *y, const float *a, const float *b, int64_t n) {
    mp_cuda_record_error(ex, "unsupported", "add is not implemented on CUDA yet", __FILE__, __LINE__);
}

extern "C" void mp_cuda_mul(mp_exec *ex, float *y, const float *a, const float *b, int64_t n) {
    mp_cuda_record_error(ex, "unsupported", "mul is not implemented on CUDA yet", __FILE__, __LINE__);
}

extern "C" void mp_cuda_scale(mp_exec *ex, float *y, const float *x, float s, int64_t n) {
    mp_cuda_record_error(ex, "unsupported", "scale is not implemented on CUDA yet", __FILE__, __LINE__);
}

extern "C" void mp_cuda_add_rows(mp_exec *ex, float *y, const float *x, const float *b, int64_t rows, int64_t cols) {
    mp_cuda_record_error(ex, "unsupported", "add_rows is not implemented on CUDA yet", __FILE__, __LINE__);
}

extern "C" void mp_cuda_mul_rows(mp_exec *ex, float *y, const float *x, const float *b, int64_t rows, int64_t cols) {
    mp_cuda_record_error(ex, "unsupported", "mul_rows is not implemented on CUDA yet", __FILE__, __LINE__);
}

extern "C" void mp_cuda_gelu(mp_exec *ex, float *y, const float *x, int64_t n, mp_gelu_kind kind) {
    mp_cuda_record_error(ex, "unsupported", "gelu is not implemented on CUDA yet", __FILE__, __LINE__);
}

extern "C" void mp_cuda_silu(mp_exec *ex, float *y, const float *x, int64_t n) {
    mp_cuda_record_error(ex, "unsupported", "silu is not implemented on CUDA yet", __FILE__, __LINE__);
}

extern "C" void mp_cuda_swiglu(mp_exec *ex, float *y, const float *gate, const float *up, int64_t n) {
    mp_cuda_record_error(ex, "unsupported", "swiglu is not implemented on CUDA yet", __FILE__, __LINE__);
}

extern "C" void mp_cuda_layernorm(mp_exec *ex, float *y, const float *x, const float *w, const float *b, int64_t rows, int64_t cols, float eps) {
    mp_cuda_record_error(ex, "unsupported", "layernorm is not implemented on CUDA yet", __FILE__, __LINE__);
}

extern "C" void mp_cuda_rmsnorm(mp_exec *ex, float *y, const float *x, const float *w, int64_t rows, int64_t cols, float eps) {
    mp_cuda_record_error(ex, "unsupported", "rmsnorm is not implemented on CUDA yet", __FILE__, __LINE__);
}

extern "C" void mp_cuda_softmax(mp_exec *ex, float *x, int64_t rows, int64_t cols, const float *mask, int causal, int64_t causal_offset) {
    mp_cuda_record_error(ex, "unsupported", "softmax is not implemented on CUDA yet", __FILE__, __LINE__);
}

extern "C" void mp_cuda_rope(mp_exec *ex, float *x, int64_t n_tok, int n_head, int64_t stride, const int32_t *pos, const mp_rope_params *p) {
    mp_cuda_record_error(ex, "unsupported", "rope is not implemented on CUDA yet", __FILE__, __LINE__);
}

extern "C" void mp_cuda_attention(mp_exec *ex, float *out, const float *q, const float *k, const float *v, const mp_attn_params *p) {
    mp_cuda_record_error(ex, "unsupported", "attention is not implemented on CUDA yet", __FILE__, __LINE__);
}

extern "C" void mp_cuda_conv1d(mp_exec *ex, float *y, const float *x, const mp_tensor *w, const float *bias, int batch, int64_t c_in, int64_t l_in, int stride, int pad) {
    mp_cuda_record_error(ex, "unsupported", "conv1d is not implemented on CUDA yet", __FILE__, __LINE__);
}

extern "C" void mp_cuda_conv1d_dw(mp_exec *ex, float *y, const float *x, const mp_tensor *w, const float *bias, int batch, int64_t c, int64_t l_in, int stride, int pad) {
    mp_cuda_record_error(ex, "unsupported", "conv1d_dw is not implemented on CUDA yet", __FILE__, __LINE__);
}

extern "C" void mp_cuda_conv2d(mp_exec *ex, float *y, const float *x, const mp_tensor *w, const float *bias, int batch, int64_t c_in, int64_t h, int64_t wd, int stride_h, int stride_w, int pad_h, int pad_w) {
    mp_cuda_record_error(ex, "unsupported", "conv2d is not implemented on CUDA yet", __FILE__, __LINE__);
}

extern "C" void mp_cuda_conv3d(mp_exec *ex, float *y, const float *x, const mp_tensor *w, int kt, const float *bias, int batch, int64_t c_in, int64_t t, int64_t h, int64_t wd, int stride_t, int stride_h, int stride_w) {
    mp_cuda_record_error(ex, "unsupported", "conv3d is not implemented on CUDA yet", __FILE__, __LINE__);
}

extern "C" int64_t mp_cuda_argmax(mp_exec *ex, const float *x, int64_t n) {
    mp_cuda_record_error(ex, "unsupported", "argmax is not implemented on CUDA yet", __FILE__, __LINE__);
    return 0;
}

extern "C" void mp_cuda_topk(mp_exec *ex, const float *x, int64_t n, int k, int32_t *idx, float *val) {
    mp_cuda_record_error(ex, "unsupported", "topk is not implemented on CUDA yet", __FILE__, __LINE__);
}

extern "C" void mp_cuda_get_rows(mp_exec *ex, float *y, const mp_tensor *table, const int32_t *ids, int64_t n) {
    mp_cuda_record_error(ex, "unsupported", "get_rows is not implemented on CUDA yet", __FILE__, __LINE__);
}

extern "C" void mp_cuda_transpose(mp_exec *ex, float *y, const float *x, int64_t rows, int64_t cols) {
    mp_cuda_record_error(ex, "unsupported", "transpose is not implemented on CUDA yet", __FILE__, __LINE__);
}

extern "C" void mp_cuda_concat_cols(mp_exec *ex, float *y, const float *a, int64_t ca, const float *b, int64_t cb, int64_t rows) {
    mp_cuda_record_error(ex, "unsupported", "concat_cols is not implemented on CUDA yet", __FILE__, __LINE__);
}

extern "C" void mp_cuda_convert(mp_exec *ex, void *dst, mp_dtype dst_dt, const void *src, mp_dtype src_dt, int64_t n) {
    mp_cuda_record_error(ex, "unsupported", "convert is not implemented on CUDA yet", __FILE__, __LINE__);
}
