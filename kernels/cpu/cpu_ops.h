/* cpu_ops.h — internal to kernels/cpu: the parallel-for used by the CPU ops and the prototypes of
 * the AVX2 / AVX-512 kernels (files *_avx2.c / *_avx512.c), which are only called after
 * mp_cpu_level() says the CPU has them. Not part of the public API (see kernels/ops.h). */
#ifndef MP_CPU_OPS_H
#define MP_CPU_OPS_H

#include "kernels/ops.h"
#ifdef MP_HAVE_CUDA
#include "kernels/cuda/cuda_ops.h"
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* First line of every public op: hand the call to the CUDA backend when the exec is a CUDA one.
 * A NULL exec means: CPU, on the calling thread. */
#ifdef MP_HAVE_CUDA
#define MP_CUDA_DISPATCH(ex, call)                                                                \
    do {                                                                                          \
        if ((ex) && (ex)->backend == MP_BACKEND_CUDA) { call; return; }                           \
    } while (0)
#else
#define MP_CUDA_DISPATCH(ex, call) ((void)0)
#endif

static inline mp_threadpool *mp_cpu_tp(const mp_exec *ex) { return ex ? ex->tp : NULL; }

/* Calls fn(ctx, lo, hi) on disjoint ranges covering [0, n), spread over the exec's thread pool.
 * Ranges are multiples of `align` items (except the last) and at least `min_chunk` items long, so a
 * small n runs inline on the calling thread. Every item must be computed independently of how
 * [0, n) is split: that is what makes results independent of the thread count. */
typedef void (*mp_range_fn)(void *ctx, int64_t lo, int64_t hi);
void mp_cpu_parallel_for(const mp_exec *ex, int64_t n, int64_t min_chunk, int64_t align, mp_range_fn fn,
                         void *ctx);

/* ---- RoPE: cos/sin of every rotated pair for one token (shared by all paths, kernels/cpu/rope.c).
 * cs[2*i] = cos, cs[2*i+1] = sin of pair i, i < n_rot/2, attn_factor/YaRN magnitude included. */
void mp_rope_cache(const mp_rope_params *p, const int32_t *pos, int64_t tok, float *cs);

/* ---- SIMD kernels. Suffix _avx2 / _avx512; same meaning as the mp_ref_ twin over a range. */
#define MP_DECL_SIMD(ret, name, args) ret name##_avx2 args; ret name##_avx512 args;

MP_DECL_SIMD(void, mp_k_add, (float *y, const float *a, const float *b, int64_t n))
MP_DECL_SIMD(void, mp_k_mul, (float *y, const float *a, const float *b, int64_t n))
MP_DECL_SIMD(void, mp_k_scale, (float *y, const float *x, float s, int64_t n))
MP_DECL_SIMD(void, mp_k_gelu, (float *y, const float *x, int64_t n, mp_gelu_kind kind))
MP_DECL_SIMD(void, mp_k_silu, (float *y, const float *x, int64_t n))
MP_DECL_SIMD(void, mp_k_swiglu, (float *y, const float *gate, const float *up, int64_t n))
MP_DECL_SIMD(void, mp_k_layernorm_row, (float *y, const float *x, const float *w, const float *b, int64_t cols, float eps))
MP_DECL_SIMD(void, mp_k_rmsnorm_row, (float *y, const float *x, const float *w, int64_t cols, float eps))
/* One softmax row: x[0..cols) += mask (may be NULL); columns >= lim are masked out (-inf). */
MP_DECL_SIMD(void, mp_k_softmax_row, (float *x, int64_t cols, const float *mask, int64_t lim))
/* Rotate one token's n_head heads (head_dim apart) with the pair table cs (see mp_rope_cache): pairs
 * (i, i + npairs) when neox, else (2i, 2i+1); npairs <= 4096. */
MP_DECL_SIMD(void, mp_k_rope_tok, (float *x, int n_head, int head_dim, int npairs, int neox, const float *cs))
/* Depthwise conv1d of one channel, stride 1: y[o] = bias + sum_k w[k] x[o + k - pad], zero padding. */
MP_DECL_SIMD(void, mp_k_dwconv_row, (float *y, const float *x, const float *w, int K, int64_t l_in, int64_t l_out,
                                     int pad, float bias))
/* Row of key j in k / v (paged K/V, see mp_attn_params) */
static inline int64_t mp_attn_kv_row(const mp_attn_params *p, int64_t j) {
    if (!p->kv_block_table) return j;
    return (int64_t)p->kv_block_table[j / p->kv_block_size] * p->kv_block_size + j % p->kv_block_size;
}

/* Attention tile (attention_simd.inc): kv head kvh, query rows [r0, r0 + nr) with nr * G <= MP_ATTN_MT,
 * small = score by dot products (decode) instead of via Q^T. scratch: MP_ATTN_SCRATCH(head_dim) floats,
 * 64-byte aligned. */
#define MP_ATTN_MT 64 /* 64 lanes: the scores pass does 2 FMAs per load (32 lanes: 4 broadcasts + 2 loads per 8) */
#define MP_ATTN_BK 64
#define MP_ATTN_SCRATCH(d) ((int64_t)2 * MP_ATTN_MT * (d) + MP_ATTN_BK * MP_ATTN_MT + 4 * MP_ATTN_MT + 16)
MP_DECL_SIMD(void, mp_k_attn_tile, (float *out, const float *q, const float *k, const float *v, const mp_attn_params *p,
                                    int kvh, int64_t r0, int nr, int small, float *scratch))

/* One head of mp_attention_f16ctx (AVX-512 only; the scalar twin is mp_ref_attn_f16ctx_head). s: the
 * scores, 16 * ceil(n_kv / 16) floats, 64-byte aligned. */
void mp_k_attn_f16ctx_head_avx512(float *o, const float *q, const mp_f16 *kp, const mp_f16 *vp, int64_t n_kv,
                                  int head_dim, float scale, float *s);

/* Pick the kernel for the current level: MP_PICK(level, mp_k_add, mp_ref_add). */
#define MP_PICK(level, name, ref) ((level) >= 2 ? name##_avx512 : (level) == 1 ? name##_avx2 : (ref))

#ifdef __cplusplus
}
#endif
#endif
