// rope.cu — rotary position embeddings with exactly the CPU's arithmetic (see rope.cuh for the angle
// recipe). One block per token: thread i computes (cos, sin) of pair i into shared memory, then the block
// rotates all heads of the token, pairs (2i, 2i+1) (NORMAL) or (i, i + n_rot/2) (NEOX, M-RoPE). Rotated
// dims beyond n_rot pass through untouched. pos (and freq_factors) are device pointers.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/rope.cuh"

__global__ void k_rope(float *x, int64_t stride, int n_head, const int32_t *__restrict__ pos, mp_rope_dev r) {
    extern __shared__ float cs[]; // [npairs][2]
    const int64_t tok = blockIdx.x;
    const int32_t *pt = pos + (r.mrope ? tok * 4 : tok);
    for (int i = threadIdx.x; i < r.npairs; i += blockDim.x) mp_rope_pair(r, pt, i, &cs[2 * i], &cs[2 * i + 1]);
    __syncthreads();
    float *xt = x + tok * stride;
    const int64_t n = (int64_t)n_head * r.npairs;
    for (int64_t it = threadIdx.x; it < n; it += blockDim.x) {
        const int h = (int)(it / r.npairs), i = (int)(it - (int64_t)h * r.npairs);
        float *xh = xt + (int64_t)h * r.head_dim;
        const int i0 = r.neox ? i : 2 * i, i1 = r.neox ? i + r.npairs : 2 * i + 1;
        const float x0 = xh[i0], x1 = xh[i1], c = cs[2 * i], s = cs[2 * i + 1];
        xh[i0] = __fsub_rn(__fmul_rn(x0, c), __fmul_rn(x1, s));
        xh[i1] = __fadd_rn(__fmul_rn(x0, s), __fmul_rn(x1, c));
    }
}

extern "C" void mp_cuda_rope(mp_exec *ex, float *x, int64_t n_tok, int n_head, int64_t stride, const int32_t *pos,
                             const mp_rope_params *p) {
    MP_CUDA_BEGIN(ex);
    MP_CUDA_REQUIRE(ex, p, "rope", "NULL params");
    MP_CUDA_REQUIRE(ex, n_tok >= 0 && n_head >= 0 && n_tok <= 0x7fffffff, "rope", "bad size");
    mp_rope_dev r;
    mp_rope_prepare_dev(p, &r);
    if (r.npairs <= 0 || r.npairs > MP_ROPE_MAX_PAIRS) return; // the CPU op leaves x untouched too
    if (n_tok == 0 || n_head == 0) return;
    MP_CUDA_REQUIRE(ex, x && pos, "rope", "NULL operand");
    MP_CUDA_REQUIRE(ex, stride >= (int64_t)n_head * p->head_dim, "rope", "token stride smaller than n_head * head_dim");
    k_rope<<<(unsigned)n_tok, 128, (size_t)r.npairs * 2 * sizeof(float), MP_CUDA_STREAM(ex)>>>(x, stride, n_head, pos, r);
    CUDA_KERNEL_CHECK(ex);
}
