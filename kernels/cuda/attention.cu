// attention.cu — fused attention (flash-attention style, F32): per (16-query tile, head) block, K/V tiles of
// 32 keys stream through shared memory and each query row keeps an online softmax (running max m, sum l,
// unnormalized output) — no [n_q][n_kv] matrix exists. GQA (head h reads kv head h / (n_head/n_kv_head)),
// causal with offset (query i sees key j iff j <= i + causal_offset; whole tiles past the block's last
// visible key are skipped), optional additive mask, arbitrary token strides, head_dim up to 512.
// A query that sees no key gets zeros (as on the CPU). Paged K/V (kv_block_table, a device pointer, as
// the kv cache lays it out): key j is row table[j / block] * block + j % block of k and v; the rows of each
// K/V tile are looked up once per tile. A host table is refused with a clear error (never read).
//
// When there are few (tile, head) blocks for a long KV (decode), the KV range is split over extra blocks
// (gridDim.z); each writes its (m, l, unnormalized output) and a second kernel merges them. The split is a
// function of the shapes only, so results do not depend on anything else.
//
// Layout per block (4 warps): warp w owns query rows 4w..4w+3 of the tile; in the score phase lane j is
// key j of the K tile (K rows padded to an odd stride: conflict-free); in the PV phase lane owns output
// dims lane, lane+32, ... (DPL = dims per lane, a template parameter: 2, 4, 8 or 16).
#include "kernels/cuda/attention.cuh"
#include "kernels/cuda/cuda_ops.h"

#define FA_WARPS 4
#define FA_RPW (FA_BQ / FA_WARPS)

typedef struct {
    int n_q, n_kv, n_head, group, D;
    int64_t qs, ks, vs, os, ms;
    float scale;
    int causal;
    int64_t coff;
    const float *mask;
    const int32_t *tbl; // paged K/V block table or NULL
    int bsz;
    int64_t keys_per_split;
    float *part_o, *part_ml; // split-KV partial results (NULL: write out directly)
} fa_args;

static inline int fa_dp(int D) { return (D & 1) ? D : D + 1; }
static inline size_t fa_smem(int D) { return (size_t)(FA_BQ * D + FA_BK * fa_dp(D) + FA_BK * D) * sizeof(float); }

template <int DPL>
__global__ void __launch_bounds__(32 * FA_WARPS)
k_flash(float *__restrict__ out, const float *__restrict__ q, const float *__restrict__ k, const float *__restrict__ v,
        fa_args a) {
    extern __shared__ float sm[];
    __shared__ int64_t sRow[FA_BK]; // paged K/V: row of each key of the tile
    const int D = a.D, DP = (D & 1) ? D : D + 1;
    float *sQ = sm, *sK = sQ + FA_BQ * D, *sV = sK + FA_BK * DP;
    const int h = blockIdx.y, kvh = h / a.group, split = blockIdx.z;
    const int64_t q0 = (int64_t)blockIdx.x * FA_BQ;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;

    for (int idx = tid; idx < FA_BQ * D; idx += blockDim.x) {
        const int r = idx / D, d = idx - r * D;
        const int64_t qi = q0 + r;
        sQ[idx] = qi < a.n_q ? q[qi * a.qs + (int64_t)h * D + d] : 0.0f;
    }
    int64_t kv_hi = a.n_kv;
    if (a.causal) {
        int64_t lim = q0 + FA_BQ + a.coff; // last query of the tile sees keys < q0 + BQ - 1 + coff + 1
        lim = lim < 0 ? 0 : lim;
        kv_hi = lim < kv_hi ? lim : kv_hi;
    }
    const int64_t t0 = (int64_t)split * a.keys_per_split;
    const int64_t t1 = t0 + a.keys_per_split < kv_hi ? t0 + a.keys_per_split : kv_hi;

    float m[FA_RPW], l[FA_RPW], acc[FA_RPW][DPL];
#pragma unroll
    for (int r = 0; r < FA_RPW; r++) {
        m[r] = -INFINITY;
        l[r] = 0.0f;
#pragma unroll
        for (int i = 0; i < DPL; i++) acc[r][i] = 0.0f;
    }
    const float *kb = k + (int64_t)kvh * D, *vb = v + (int64_t)kvh * D;

    for (int64_t j0 = t0; j0 < t1; j0 += FA_BK) {
        __syncthreads(); // the previous tile is consumed (and sQ is written on the first pass)
        if (a.tbl) { // uniform over the block
            if (tid < FA_BK && j0 + tid < t1) sRow[tid] = mp_fa_kv_row(a.tbl, a.bsz, j0 + tid);
            __syncthreads();
        }
        for (int idx = tid; idx < FA_BK * D; idx += blockDim.x) {
            const int j = idx / D, d = idx - j * D;
            const int64_t kj = j0 + j;
            const bool ok = kj < t1;
            const int64_t row = a.tbl && ok ? sRow[j] : kj;
            sK[j * DP + d] = ok ? kb[row * a.ks + d] : 0.0f;
            sV[j * D + d] = ok ? vb[row * a.vs + d] : 0.0f;
        }
        __syncthreads();

        float s[FA_RPW];
#pragma unroll
        for (int r = 0; r < FA_RPW; r++) s[r] = 0.0f;
        const float *qrow = sQ + warp * FA_RPW * D;
        for (int d = 0; d < D; d++) {
            const float kd = sK[lane * DP + d];
#pragma unroll
            for (int r = 0; r < FA_RPW; r++) s[r] = fmaf(qrow[r * D + d], kd, s[r]);
        }
        const int64_t kj = j0 + lane;
        float p[FA_RPW];
#pragma unroll
        for (int r = 0; r < FA_RPW; r++) {
            const int64_t qi = q0 + warp * FA_RPW + r;
            float sc = s[r] * a.scale;
            bool vis = kj < t1 && qi < a.n_q;
            if (vis && a.causal && kj > qi + a.coff) vis = false;
            if (vis && a.mask) sc += a.mask[qi * a.ms + kj];
            if (!vis) sc = -INFINITY;
            const float mn = fmaxf(m[r], mp_warp_max(sc));
            const float pr = sc == -INFINITY ? 0.0f : __expf(sc - mn);
            const float corr = m[r] == mn ? 1.0f : __expf(m[r] - mn);
            l[r] = l[r] * corr + mp_warp_sum(pr);
            m[r] = mn;
#pragma unroll
            for (int i = 0; i < DPL; i++) acc[r][i] *= corr;
            p[r] = pr;
        }
        for (int j = 0; j < FA_BK; j++) {
            float pj[FA_RPW];
#pragma unroll
            for (int r = 0; r < FA_RPW; r++) pj[r] = __shfl_sync(0xffffffffu, p[r], j);
            const float *vr = sV + j * D;
#pragma unroll
            for (int i = 0; i < DPL; i++) {
                const int d = lane + 32 * i;
                if (d < D) {
                    const float vv = vr[d];
#pragma unroll
                    for (int r = 0; r < FA_RPW; r++) acc[r][i] = fmaf(pj[r], vv, acc[r][i]);
                }
            }
        }
    }

#pragma unroll
    for (int r = 0; r < FA_RPW; r++) {
        const int64_t qi = q0 + warp * FA_RPW + r;
        if (qi >= a.n_q) continue;
        if (!a.part_o) {
            const float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
            float *o = out + qi * a.os + (int64_t)h * D;
#pragma unroll
            for (int i = 0; i < DPL; i++) {
                const int d = lane + 32 * i;
                if (d < D) o[d] = acc[r][i] * inv;
            }
        } else {
            const int64_t base = ((int64_t)split * a.n_q + qi) * a.n_head + h;
            float *o = a.part_o + base * D;
#pragma unroll
            for (int i = 0; i < DPL; i++) {
                const int d = lane + 32 * i;
                if (d < D) o[d] = acc[r][i];
            }
            if (lane == 0) {
                a.part_ml[base * 2] = m[r];
                a.part_ml[base * 2 + 1] = l[r];
            }
        }
    }
}

// Merge of the KV splits: thread per (query, head, dim).
__global__ void k_flash_merge(float *__restrict__ out, const float *__restrict__ part_o, const float *__restrict__ part_ml,
                              int n_split, int n_q, int n_head, int D, int64_t os) {
    const int64_t n = (int64_t)n_q * n_head * D;
    MP_GRID_STRIDE(i, n) {
        const int d = (int)(i % D);
        const int64_t qh = i / D, qi = qh / n_head, h = qh - qi * n_head;
        float M = -INFINITY;
        for (int s = 0; s < n_split; s++) M = fmaxf(M, part_ml[((int64_t)s * n_q * n_head + qh) * 2]);
        float L = 0.0f, o = 0.0f;
        if (M != -INFINITY) {
            for (int s = 0; s < n_split; s++) {
                const int64_t base = (int64_t)s * n_q * n_head + qh;
                const float ms = part_ml[base * 2];
                if (ms == -INFINITY) continue;
                const float w = __expf(ms - M);
                L += part_ml[base * 2 + 1] * w;
                o += part_o[base * D + d] * w;
            }
        }
        out[qi * os + h * D + d] = L > 0.0f ? o / L : 0.0f;
    }
}

template <int DPL>
static void fa_launch(mp_exec *ex, dim3 grid, size_t smem, float *out, const float *q, const float *k, const float *v,
                      const fa_args &a) {
    if (smem > 48 * 1024) CUDA_CHECK(ex, cudaFuncSetAttribute(k_flash<DPL>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    k_flash<DPL><<<grid, 32 * FA_WARPS, smem, MP_CUDA_STREAM(ex)>>>(out, q, k, v, a);
    CUDA_KERNEL_CHECK(ex);
}

extern "C" void mp_cuda_attention(mp_exec *ex, float *out, const float *q, const float *k, const float *v,
                                  const mp_attn_params *p) {
    MP_CUDA_BEGIN(ex);
    MP_CUDA_REQUIRE(ex, p, "attention", "NULL params");
    if (p->n_q <= 0 || p->n_head <= 0) return;
    MP_CUDA_REQUIRE(ex, p->n_kv_head > 0 && p->n_head % p->n_kv_head == 0 && p->n_kv >= 0, "attention",
                    "n_head must be a multiple of n_kv_head > 0");
    MP_CUDA_REQUIRE(ex, p->head_dim > 0 && p->head_dim <= 512, "attention", "head_dim must be 1..512 on CUDA");
    MP_CUDA_REQUIRE(ex, p->n_head <= 65535, "attention", "n_head > 65535");
    MP_CUDA_REQUIRE(ex, out && q && (p->n_kv == 0 || (k && v)), "attention", "NULL operand");
    fa_args a = {};
    a.n_q = p->n_q; a.n_kv = p->n_kv; a.n_head = p->n_head; a.group = p->n_head / p->n_kv_head; a.D = p->head_dim;
    a.qs = p->q_stride; a.ks = p->k_stride; a.vs = p->v_stride; a.os = p->o_stride; a.ms = p->mask_stride;
    a.scale = p->scale; a.causal = p->causal; a.coff = p->causal_offset; a.mask = p->mask;
    a.tbl = p->kv_block_table; a.bsz = p->kv_block_size;
    MP_CUDA_REQUIRE(ex, !a.tbl || a.bsz > 0, "attention", "kv_block_table needs kv_block_size > 0");

    if (a.tbl) {
        // The table is read by the kernel: it must be device memory (or host memory the device can map).
        cudaPointerAttributes pa;
        const cudaError_t pe = cudaPointerGetAttributes(&pa, a.tbl);
        if (pe != cudaSuccess) cudaGetLastError();
        MP_CUDA_REQUIRE(ex, pe == cudaSuccess && pa.type != cudaMemoryTypeUnregistered, "attention",
                        "kv_block_table is in plain host memory; on CUDA it must be a device pointer (upload it)");
    }

    int sms = 132;
    if (cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0) != cudaSuccess) {
        cudaGetLastError();
        sms = 132;
    }
    const mp_fa_plan pl = mp_fa_make_plan(p->n_q, p->n_head, p->n_kv, sms);
    MP_CUDA_REQUIRE(ex, pl.qtiles <= 0x7fffffff, "attention", "too many queries");
    const int64_t qtiles = pl.qtiles, n_split = pl.n_split;
    a.keys_per_split = pl.keys_per_split;
    if (n_split > 1) {
        const size_t np = (size_t)n_split * p->n_q * p->n_head;
        float *ws = (float *)mp_cuda_workspace(ex, np * ((size_t)p->head_dim + 2) * sizeof(float));
        if (!ws) return;
        a.part_o = ws;
        a.part_ml = ws + np * p->head_dim;
    }
    const dim3 grid((unsigned)qtiles, (unsigned)p->n_head, (unsigned)n_split);
    const size_t smem = fa_smem(p->head_dim);
    if (p->head_dim <= 64) fa_launch<2>(ex, grid, smem, out, q, k, v, a);
    else if (p->head_dim <= 128) fa_launch<4>(ex, grid, smem, out, q, k, v, a);
    else if (p->head_dim <= 256) fa_launch<8>(ex, grid, smem, out, q, k, v, a);
    else fa_launch<16>(ex, grid, smem, out, q, k, v, a);
    if (mp_cuda_failed(ex) || n_split == 1) return;
    const int64_t n = (int64_t)p->n_q * p->n_head * p->head_dim;
    k_flash_merge<<<mp_cuda_grid(n, 256), 256, 0, MP_CUDA_STREAM(ex)>>>(out, a.part_o, a.part_ml, (int)n_split, p->n_q,
                                                                       p->n_head, p->head_dim, p->o_stride);
    CUDA_KERNEL_CHECK(ex);
}
