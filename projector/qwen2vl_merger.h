/* qwen2vl_merger.h — the Qwen2-VL / Qwen2.5-VL patch merger (transformers' PatchMerger /
 * Qwen2_5_VLPatchMerger), the projector between the vision transformer and the language model:
 *
 *   x [N][D]                      vision transformer output, patches in the processor's order, so every
 *                                 m*m consecutive rows are one m x m block of neighbouring patches
 *   xn = ln_q(x)                  LayerNorm with bias (Qwen2-VL) or RMSNorm (Qwen2.5-VL), eps 1e-6
 *   h  = xn viewed as [N/m^2][D*m^2]
 *   y  = mlp.2(gelu(mlp.0(h)))    nn.Linear(D m^2, D m^2) + exact (erf) GELU + nn.Linear(D m^2, out)
 *
 * so every m x m block becomes one embedding row of the language model (m = spatial_merge_size = 2).
 * GGUF (llama.cpp mmproj): ln_q is v.post_ln, mlp.0 / mlp.2 are mm.0 / mm.2.
 */
#ifndef MP_QWEN2VL_MERGER_H
#define MP_QWEN2VL_MERGER_H

#include "kernels/mp.h"
#include "kernels/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mp_qwen2vl_merger {
    int dim;              /* D, the vision transformer width */
    int merge_size;       /* m */
    int out_dim;          /* language model hidden size */
    int rms;              /* 1: RMSNorm (Qwen2.5-VL), 0: LayerNorm (Qwen2-VL) */
    float eps;            /* 1e-6 */
    const float *ln_w, *ln_b;   /* [D] F32 in backend memory (ln_b NULL for RMSNorm) */
    mp_tensor fc1;        /* ne = {D m^2, D m^2} */
    const float *fc1_b;   /* [D m^2] */
    mp_tensor fc2;        /* ne = {D m^2, out_dim} */
    const float *fc2_b;   /* [out_dim] */
} mp_qwen2vl_merger;

/* y [n_out][out_dim] from x [n_out * m^2][D] (backend memory). xn ([n_out*m^2][D]) and h
 * ([n_out][D m^2]) are scratch of the caller. */
void mp_qwen2vl_merger_forward(const mp_qwen2vl_merger *g, mp_exec *ex, float *y, const float *x, float *xn, float *h,
                               int64_t n_out);

#ifdef __cplusplus
}
#endif
#endif
