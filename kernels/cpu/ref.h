/* ref.h — the plain scalar reference twin of every op in kernels/ops.h: mp_ref_<op> takes the same
 * arguments as mp_<op> minus the exec. They are the level-0 CPU path (MMPIPE_SIMD=ref) and what the
 * tests compare every fast path against. Single-threaded, written for clarity. */
#ifndef MP_CPU_REF_H
#define MP_CPU_REF_H

#include "kernels/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- elementwise (kernels/cpu/elementwise.c) */
void mp_ref_add(float *y, const float *a, const float *b, int64_t n);
void mp_ref_mul(float *y, const float *a, const float *b, int64_t n);
void mp_ref_scale(float *y, const float *x, float s, int64_t n);
void mp_ref_add_rows(float *y, const float *x, const float *b, int64_t rows, int64_t cols);
void mp_ref_mul_rows(float *y, const float *x, const float *b, int64_t rows, int64_t cols);
void mp_ref_gelu(float *y, const float *x, int64_t n, mp_gelu_kind kind);
void mp_ref_silu(float *y, const float *x, int64_t n);
void mp_ref_swiglu(float *y, const float *gate, const float *up, int64_t n);

/* ---- normalization, softmax (kernels/cpu/norm.c, softmax.c) */
void mp_ref_layernorm(float *y, const float *x, const float *w, const float *b, int64_t rows, int64_t cols,
                      float eps);
void mp_ref_rmsnorm(float *y, const float *x, const float *w, int64_t rows, int64_t cols, float eps);
void mp_ref_softmax(float *x, int64_t rows, int64_t cols, const float *mask, int causal, int64_t causal_offset);

/* ---- rope, attention (kernels/cpu/rope.c, attention.c) */
void mp_ref_rope(float *x, int64_t n_tok, int n_head, int64_t stride, const int32_t *pos, const mp_rope_params *p);
void mp_ref_attention(float *out, const float *q, const float *k, const float *v, const mp_attn_params *p);
/* mp_attention_f16ctx in scalar C (kernels/cpu/attention_f16.c): per head, scores and the softmax sum in key
 * order; scratch: n_kv floats. */
void mp_ref_attn_f16ctx_head(float *o, const float *q, const mp_f16 *kp, const mp_f16 *vp, int64_t n_kv, int head_dim,
                             float scale, float *s);
void mp_ref_attention_f16ctx(float *out, const float *q, const mp_f16 *kp, const mp_f16 *vp, int64_t n_kv, int n_head,
                             int head_dim, float scale, float *scratch);

/* ---- convolutions (kernels/cpu/conv.c) */
void mp_ref_conv1d(float *y, const float *x, const mp_tensor *w, const float *bias, int batch, int64_t c_in,
                   int64_t l_in, int stride, int pad);
void mp_ref_conv1d_dw(float *y, const float *x, const mp_tensor *w, const float *bias, int batch, int64_t c,
                      int64_t l_in, int stride, int pad);
void mp_ref_conv2d(float *y, const float *x, const mp_tensor *w, const float *bias, int batch, int64_t c_in,
                   int64_t h, int64_t wd, int stride_h, int stride_w, int pad_h, int pad_w);
void mp_ref_conv3d(float *y, const float *x, const mp_tensor *w, int kt, const float *bias, int batch,
                   int64_t c_in, int64_t t, int64_t h, int64_t wd, int stride_t, int stride_h, int stride_w);

/* ---- reductions, data movement (kernels/cpu/reduce.c, layout.c) */
int64_t mp_ref_argmax(const float *x, int64_t n);
void mp_ref_topk(const float *x, int64_t n, int k, int32_t *idx, float *val);
void mp_ref_transpose(float *y, const float *x, int64_t rows, int64_t cols);
void mp_ref_concat_cols(float *y, const float *a, int64_t ca, const float *b, int64_t cb, int64_t rows);

/* ---- quantization, matmul, gemm, get_rows, convert (kernels/cpu/quant.c, matmul.c, gemm.c, getrows.c,
 * convert.c) */

/* 1 if mp_ref_dequantize_row / mp_ref_quantize_row handle dt. */
int mp_ref_dequantize_supported(mp_dtype dt);
int mp_ref_quantize_supported(mp_dtype dt);
void mp_ref_dequantize_row(mp_dtype dt, const void *src, float *dst, int64_t n);
int64_t mp_ref_quantize_row(mp_dtype dt, const float *src, void *dst, int64_t n);

/* Y[m][n] = fma-chain over k = 0..K-1 of X[m][k] * W[n][k] in F32, starting from bias[n] (or 0), with
 * W dequantized exactly to F32. The F32/F16 fast paths (and BF16 without AVX512_BF16, and q2_K/q3_K/q8_K)
 * reproduce this bit for bit; block-quantized weights follow mp_ref_matmul_q8; BF16 with AVX512_BF16
 * rounds the activations to BF16 and accumulates with vdpbf16ps (within 2^-8 relative of this). Unusable arguments
 * (unknown dtype, K not a multiple of the block size) give NaN outputs. */
void mp_ref_matmul(float *Y, int64_t ldy, const float *X, int64_t ldx, const mp_tensor *W, const float *bias,
                   int64_t M);
/* The quantized-activation matmul the SIMD paths run for q8_0, q4_0, q4_1, q5_0, q5_1, q4_K, q5_K,
 * q6_K weights (X rows quantized to 8 bits, integer block dot products; defined in
 * kernels/cpu/matmul_q.c). Other dtypes: same as mp_ref_matmul. */
void mp_ref_matmul_q8(float *Y, int64_t ldy, const float *X, int64_t ldx, const mp_tensor *W, const float *bias,
                      int64_t M);
/* C = fma-chain over k of (alpha * A[m][k]) * op(B)[k][n], starting from beta * C (or 0 when beta == 0). */
void mp_ref_gemm_f32(int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda, const float *B,
                     int64_t ldb, int transB, float beta, float *C, int64_t ldc, int batch, int64_t sA, int64_t sB,
                     int64_t sC);
/* Out-of-range ids produce a row of NaN. */
void mp_ref_get_rows(float *y, const mp_tensor *table, const int32_t *ids, int64_t n);
/* Unsupported pairs fill dst with zero bytes (F32 destination: NaN). */
void mp_ref_convert(void *dst, mp_dtype dst_dt, const void *src, mp_dtype src_dt, int64_t n);

#ifdef __cplusplus
}
#endif
#endif
