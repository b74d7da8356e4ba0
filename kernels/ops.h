/* ops.h — every op of the kernel layer. One function per op; it dispatches on ex->backend to the CPU
 * implementation (kernels/cpu/<op>.c: scalar reference + AVX2 + AVX-512, chosen by mp_cpu_level())
 * or the CUDA one (kernels/cuda/<op>.cu). Pointers are host pointers for the CPU backend and device
 * pointers for CUDA. Activations are F32 and row-major; weights are mp_tensor in any dtype.
 *
 * Ops never allocate: scratch they need comes from ex->scratch (and is given back before return).
 * Results must not depend on the number of threads.
 *
 * Each op also has a plain scalar reference twin mp_ref_<op> (same arguments minus ex) that tests
 * compare every fast path against.
 */
#ifndef MP_OPS_H
#define MP_OPS_H

#include "mp.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- quantization */

/* Dequantize n elements (a multiple of the block size) of dtype dt at src into F32 dst. Works for
 * every dtype of the kernel layer, including F16/BF16/F32 and the int types. */
void mp_dequantize_row(mp_dtype dt, const void *src, float *dst, int64_t n);
/* Quantize n F32 values into dtype dt (same layout as llama.cpp's quantize_row_*_ref). Returns bytes
 * written or -1 for a dtype that cannot be quantized to. */
int64_t mp_quantize_row(mp_dtype dt, const float *src, void *dst, int64_t n);

/* ---------------------------------------------------------------- matmul */

/* Y[M][N] = X[M][K] · W^T (+ bias[N] if bias != NULL), W->ne = {K, N} in any dtype (F32, F16, BF16,
 * Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K). X rows are ldx floats apart, Y rows ldy apart
 * (ldx >= K, ldy >= N). This is nn.Linear; every linear layer of every model goes through it. */
void mp_matmul(mp_exec *ex, float *Y, int64_t ldy, const float *X, int64_t ldx, const mp_tensor *W,
               const float *bias, int64_t M);

/* Plain F32 GEMM: C[M][N] = alpha * A[M][K] · op(B) + beta * C, op(B) = B[K][N] (transB=0) or
 * B[N][K]^T (transB=1). Leading dimensions in floats. Batched over `batch` with element strides
 * sA, sB, sC between matrices. Used by attention and convolutions (im2col). */
void mp_gemm_f32(mp_exec *ex, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                 const float *B, int64_t ldb, int transB, float beta, float *C, int64_t ldc, int batch,
                 int64_t sA, int64_t sB, int64_t sC);

/* ---------------------------------------------------------------- elementwise */

void mp_add(mp_exec *ex, float *y, const float *a, const float *b, int64_t n);   /* y = a + b (y may alias) */
void mp_mul(mp_exec *ex, float *y, const float *a, const float *b, int64_t n);   /* y = a * b */
void mp_scale(mp_exec *ex, float *y, const float *x, float s, int64_t n);         /* y = s * x */
/* y[r][c] = x[r][c] + b[c] (row broadcast); y may alias x */
void mp_add_rows(mp_exec *ex, float *y, const float *x, const float *b, int64_t rows, int64_t cols);
/* y[r][c] = x[r][c] * b[c] */
void mp_mul_rows(mp_exec *ex, float *y, const float *x, const float *b, int64_t rows, int64_t cols);

typedef enum { MP_GELU_ERF = 0, MP_GELU_TANH = 1, MP_GELU_QUICK = 2 } mp_gelu_kind;
void mp_gelu(mp_exec *ex, float *y, const float *x, int64_t n, mp_gelu_kind kind);
void mp_silu(mp_exec *ex, float *y, const float *x, int64_t n);
/* y[i] = silu(gate[i]) * up[i] */
void mp_swiglu(mp_exec *ex, float *y, const float *gate, const float *up, int64_t n);

/* ---------------------------------------------------------------- normalization */

/* Per row of `cols`: y = (x - mean) / sqrt(var + eps) * w + b  (w, b may be NULL) */
void mp_layernorm(mp_exec *ex, float *y, const float *x, const float *w, const float *b, int64_t rows,
                  int64_t cols, float eps);
/* Per row: y = x / sqrt(mean(x^2) + eps) * w  (w may be NULL) */
void mp_rmsnorm(mp_exec *ex, float *y, const float *x, const float *w, int64_t rows, int64_t cols, float eps);

/* Row softmax over `cols`, in place, numerically stable. mask (optional, [rows][cols], additive, may be
 * -INFINITY) is added first. If causal, column j > row + causal_offset is masked out. A row with every
 * column masked comes out all zeros (not NaN). */
void mp_softmax(mp_exec *ex, float *x, int64_t rows, int64_t cols, const float *mask, int causal,
                int64_t causal_offset);

/* ---------------------------------------------------------------- rotary embeddings */

typedef enum { MP_ROPE_NORMAL = 0, MP_ROPE_NEOX = 2 } mp_rope_mode; /* ggml numbering */

typedef struct mp_rope_params {
    int head_dim;        /* total dims per head */
    int n_rot;           /* dims rotated (<= head_dim; the rest pass through) */
    mp_rope_mode mode;   /* NORMAL: pairs (2i, 2i+1) as llama/GGUF stores q,k; NEOX: pairs (i, i+n_rot/2) as HF */
    float theta;         /* base, e.g. 10000 */
    float freq_scale;    /* linear scaling: 1/factor (1 = none) */
    const float *freq_factors; /* optional per-pair divisors (llama3 / longrope), n_rot/2 entries */
    /* YaRN (ext_factor = 0 disables) */
    float ext_factor, attn_factor, beta_fast, beta_slow;
    int n_ctx_orig;
    /* M-RoPE (Qwen2-VL): when sections[0] > 0, positions come as 3 (or 4) streams: pos[t*4 + s] is the
     * position of token t for section s, and pair i of the head uses the section it falls into. */
    int sections[4];
    /* With sections: 1 = Qwen2-VL vision-encoder 2-D RoPE (ggml's GGML_ROPE_TYPE_VISION): each section
     * restarts its angle, frequencies use n_dims = n_rot/2 (theta^(-2i/(n_rot/2))). 0 = text M-RoPE. */
    int mrope_vision;
} mp_rope_params;
/* Notes (kernels/cpu/rope.c): zero freq_scale / attn_factor mean 1, theta <= 0 means 10000, n_rot <= 0
 * means head_dim. M-RoPE always rotates NeoX pairs (i, i + n_rot/2), as ggml does. YaRN as ggml:
 * corr dims from n_ctx_orig/beta_fast/beta_slow, magnitude attn_factor * (1 + 0.1 ln(1/freq_scale)). */

/* Rotate x in place: x is [n_tok][n_head][head_dim] with row stride `stride` floats between tokens.
 * pos[t] is the position of token t (M-RoPE: pos[t*4 + s]). */
void mp_rope(mp_exec *ex, float *x, int64_t n_tok, int n_head, int64_t stride, const int32_t *pos,
             const mp_rope_params *p);

/* ---------------------------------------------------------------- attention */

typedef struct mp_attn_params {
    int n_q, n_kv;            /* query tokens, key/value tokens */
    int n_head, n_kv_head;    /* GQA when n_kv_head < n_head (n_head % n_kv_head == 0) */
    int head_dim;             /* same for q/k and v */
    int64_t q_stride, k_stride, v_stride, o_stride; /* floats between consecutive tokens */
    float scale;              /* usually 1/sqrt(head_dim) */
    int causal;               /* query i sees key j iff j <= i + causal_offset */
    int64_t causal_offset;    /* = n_kv - n_q for a prefill continuing a cache */
    const float *mask;        /* optional additive mask [n_q][n_kv], row stride mask_stride */
    int64_t mask_stride;
    /* Paged K/V (optional; CPU and CUDA): key j is row kv_block_table[j / kv_block_size] * kv_block_size
     * + j % kv_block_size of k and v (rows k_stride / v_stride floats apart). NULL: row j. The table,
     * like every other array, is in the backend's memory: a device pointer on CUDA (a plain host pointer
     * there is refused with an error). The mask, if any, is indexed by key j, not by row. */
    const int32_t *kv_block_table;
    int kv_block_size;
} mp_attn_params;

/* out[i][h] = softmax(scale * q[i][h] · k[:, h/g]^T + mask) · v[:, h/g], tiled with an online softmax so
 * no [n_q][n_kv] matrix is materialized beyond a tile. q[i][h] is at q + i*q_stride + h*head_dim (k, v,
 * out alike with kv head h/g). out must not overlap q, k or v. A query that sees no key gets zeros.
 * CPU: the SIMD path takes 4*(64*head_dim + 2200) bytes of ex->scratch per thread (else it runs the
 * scalar reference). */
void mp_attention(mp_exec *ex, float *out, const float *q, const float *k, const float *v,
                  const mp_attn_params *p);

/* Single query rows against a fixed context kept as F16 (e.g. Whisper's cross-attention K/V: computed
 * once per window, read at every decoded token, so half the bytes of F32). CPU only.
 * mp_attn_pack_f16ctx lays out k, v ([n_kv] rows of n_head * head_dim, k_stride / v_stride floats apart)
 * per head, keys in blocks of 16 (zero padded):
 *   kp [n_head][ceil(n_kv / 16)][head_dim][16]   vp [n_head][16 * ceil(n_kv / 16)][head_dim]
 * mp_attention_f16ctx: out[h] = softmax(scale * q[h] . k_h^T) . v_h for one row q [n_head * head_dim]
 * (no mask). Each head is one thread's work in a fixed order: results do not depend on the threads. */
void mp_attn_pack_f16ctx(mp_exec *ex, mp_f16 *kp, mp_f16 *vp, const float *k, const float *v, int64_t n_kv,
                         int64_t k_stride, int64_t v_stride, int n_head, int head_dim);
void mp_attention_f16ctx(mp_exec *ex, float *out, const float *q, const mp_f16 *kp, const mp_f16 *vp, int64_t n_kv,
                         int n_head, int head_dim, float scale);

/* ---------------------------------------------------------------- convolutions (channels-first) */
/* CPU: conv1d/2d/3d run as im2col + mp_gemm_f32 in column chunks in ex->scratch (F16/BF16 weights are
 * first widened there too); with too little scratch they run direct loops (slow). */

/* x [C_in][L_in] -> y [C_out][L_out], w->ne = {K, C_in, C_out} (any float dtype), bias [C_out] or NULL.
 * L_out = (L_in + 2*pad - K) / stride + 1. Batched over `batch` (x, y contiguous per item). */
void mp_conv1d(mp_exec *ex, float *y, const float *x, const mp_tensor *w, const float *bias, int batch,
               int64_t c_in, int64_t l_in, int stride, int pad);
/* Depthwise: x [C][L] -> y [C][L_out], w->ne = {K, 1, C} or {K, C}, same padding/stride rules. */
void mp_conv1d_dw(mp_exec *ex, float *y, const float *x, const mp_tensor *w, const float *bias, int batch,
                  int64_t c, int64_t l_in, int stride, int pad);
/* x [C_in][H][W] -> y [C_out][H_out][W_out], w->ne = {KW, KH, C_in, C_out}. */
void mp_conv2d(mp_exec *ex, float *y, const float *x, const mp_tensor *w, const float *bias, int batch,
               int64_t c_in, int64_t h, int64_t wd, int stride_h, int stride_w, int pad_h, int pad_w);
/* x [C_in][T][H][W] -> y [C_out][T_out][H_out][W_out], w given as 5-D flattened: ne = {KW, KH, KT*C_in, C_out}
 * with kt = number of temporal taps; no padding (patch embedding). Plane index of (ci, tap) is ci*KT + tap,
 * i.e. PyTorch's Conv3d weight [C_out][C_in][KT][KH][KW] as stored. Conv weights: F32, F16 or BF16. */
void mp_conv3d(mp_exec *ex, float *y, const float *x, const mp_tensor *w, int kt, const float *bias, int batch,
               int64_t c_in, int64_t t, int64_t h, int64_t wd, int stride_t, int stride_h, int stride_w);

/* ---------------------------------------------------------------- reductions, data movement */

/* Index of the largest value (first one on ties; NaN ranks lowest); -1 when n <= 0. */
int64_t mp_argmax(mp_exec *ex, const float *x, int64_t n);
/* The k largest values (descending; ties by lower index; NaN ranks lowest) into idx/val. k <= n. */
void mp_topk(mp_exec *ex, const float *x, int64_t n, int k, int32_t *idx, float *val);
/* Rows `ids[i]` of table (any dtype, ne = {cols, rows}) into F32 y[n][cols] (embedding lookup). */
void mp_get_rows(mp_exec *ex, float *y, const mp_tensor *table, const int32_t *ids, int64_t n);
/* y[c][r] = x[r][c] */
void mp_transpose(mp_exec *ex, float *y, const float *x, int64_t rows, int64_t cols);
/* Concatenate along columns: y[r] = [a[r] (ca cols), b[r] (cb cols)] */
void mp_concat_cols(mp_exec *ex, float *y, const float *a, int64_t ca, const float *b, int64_t cb, int64_t rows);
/* Copy/convert n elements between dtypes (F32 <-> F16/BF16 and F32 -> any quant). */
void mp_convert(mp_exec *ex, void *dst, mp_dtype dst_dt, const void *src, mp_dtype src_dt, int64_t n);

#ifdef __cplusplus
}
#endif
#endif
