// attention.cuh — the parts of the CUDA attention (attention.cu) that tests/gpu/test_cuda_host.cu checks on
// the host without a GPU: how the KV range is split over blocks (every key in exactly one split) and where
// key j lives with paged K/V (same rule as the CPU's mp_attn_kv_row).
#pragma once
#include "kernels/cuda/common.cuh"

#define FA_BQ 16 // queries per block
#define FA_BK 32 // keys per shared-memory tile

// Row of k / v that holds key j: with a block table, row table[j / bsz] * bsz + j % bsz; else row j.
MP_HD int64_t mp_fa_kv_row(const int32_t *tbl, int bsz, int64_t j) {
    if (!tbl) return j;
    const int64_t b = j / bsz;
    return (int64_t)tbl[b] * bsz + (j - b * bsz);
}

typedef struct {
    int64_t qtiles;         // blocks along x (FA_BQ queries each)
    int64_t n_split;        // blocks along z: KV splits (1 = no split, results written directly)
    int64_t keys_per_split; // split s covers keys [s * keys_per_split, min((s + 1) * keys_per_split, n_kv))
} mp_fa_plan;

// The launch shape, a function of the shapes and the SM count only (so results do not depend on anything
// else). Few (query tile, head) blocks over a long KV (decode): split the keys to give ~2 blocks per SM, at
// least 4 key tiles per split, at most 64 splits; every split is non-empty.
static inline mp_fa_plan mp_fa_make_plan(int n_q, int n_head, int n_kv, int sms) {
    mp_fa_plan pl;
    pl.qtiles = ((int64_t)n_q + FA_BQ - 1) / FA_BQ;
    const int64_t blocks = pl.qtiles * n_head, ktiles = ((int64_t)n_kv + FA_BK - 1) / FA_BK;
    int64_t n_split = 1;
    if (blocks < 2 * (int64_t)sms && ktiles >= 8) {
        n_split = (2 * (int64_t)sms + blocks - 1) / blocks;
        if (n_split > ktiles / 4) n_split = ktiles / 4;
        if (n_split > 64) n_split = 64;
        if (n_split < 1) n_split = 1;
    }
    const int64_t tiles_per = (ktiles + n_split - 1) / n_split;
    pl.keys_per_split = (tiles_per > 0 ? tiles_per : 1) * FA_BK;
    pl.n_split = n_split > 1 ? (ktiles + tiles_per - 1) / tiles_per : 1;
    return pl;
}
