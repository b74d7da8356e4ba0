/* qwen2vl_merger.c — the 2x2 patch merger of Qwen2-VL / Qwen2.5-VL (see qwen2vl_merger.h). */
#include "projector/qwen2vl_merger.h"

void mp_qwen2vl_merger_forward(const mp_qwen2vl_merger *g, mp_exec *ex, float *y, const float *x, float *xn, float *h,
                               int64_t n_out) {
    const int64_t D = g->dim, mm = (int64_t)g->merge_size * g->merge_size, H = D * mm;
    if (g->rms)
        mp_rmsnorm(ex, xn, x, g->ln_w, n_out * mm, D, g->eps);
    else
        mp_layernorm(ex, xn, x, g->ln_w, g->ln_b, n_out * mm, D, g->eps);
    /* the m^2 normalised rows of a block are contiguous: read them as one row of D m^2 */
    mp_matmul(ex, h, H, xn, H, &g->fc1, g->fc1_b, n_out);
    mp_gelu(ex, h, h, n_out * H, MP_GELU_ERF);
    mp_matmul(ex, y, g->out_dim, h, H, &g->fc2, g->fc2_b, n_out);
}
