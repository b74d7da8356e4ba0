/* gemm_engine.c — the generic driver of the packed F32 GEMM (see gemm_engine.h).
 *
 * Work is cut into tiles of (batch item, MC rows, NT columns); each thread takes a contiguous range of
 * tiles and, for each K panel of KC, packs its B tile (KC x NT) and A tile (MC x KC) and runs the
 * micro-kernel over them (B micro-panel in L1, A tile in L2). Every C element is accumulated by one
 * thread in k order, so the result does not depend on the tiling or the thread count. */
#include "kernels/cpu/gemm_engine.h"
#include "kernels/cpu/ref.h"

#include <stdlib.h>

#define KC 256       /* K panel (a multiple of every quant block size) */
#define MC_MAX 336   /* most rows per tile, a multiple of both micro-kernel heights (6, 14) (each tile packs its B panels once: taller tiles, fewer repacks) */
#define NT_MAX 512   /* columns per tile */
#define MR_MAX 16
#define NR_MAX 32

typedef struct {
    const mp_gemm_kernels *kern;
    const mp_gemm_problem *p;
    int64_t mc, nt, mtiles, ntiles, ntotal;
    uint8_t *scratch; /* per-thread blocks of `per_thread` bytes, or NULL */
    size_t per_thread;
} engine_job;

static size_t tile_bytes(int64_t mc, int64_t nt, int deq) {
    size_t a = (size_t)(mc + MR_MAX) * KC * 4, b = (size_t)nt * KC * 4, t = deq ? (size_t)NR_MAX * KC * 4 : 0;
    return ((a + 63) & ~(size_t)63) + ((b + 63) & ~(size_t)63) + t + 128;
}

size_t mp_gemm_engine_scratch(int64_t M, int64_t N, int n_threads, int needs_dequant) {
    int64_t mc = M < MC_MAX ? M : MC_MAX, nt = N < NT_MAX ? N : NT_MAX;
    return (size_t)(n_threads > 0 ? n_threads : 1) * tile_bytes(mc, (nt + NR_MAX - 1) / NR_MAX * NR_MAX, needs_dequant) +
           64;
}

/* Ap[k][i] = alpha * A[i][k0+k] for i < mr. */
static void pack_a(const float *A, int64_t lda, int mr, int MR, int64_t k0, int64_t kc, float alpha, float *Ap) {
    for (int i = 0; i < mr; i++) {
        const float *a = A + i * lda + k0;
        if (alpha == 1.0f)
            for (int64_t k = 0; k < kc; k++) Ap[k * MR + i] = a[k];
        else
            for (int64_t k = 0; k < kc; k++) Ap[k * MR + i] = alpha * a[k];
    }
}

static int b_is_direct(mp_dtype dt) { return dt == MP_F32 || dt == MP_F16 || dt == MP_BF16; }

/* Pack columns [n0, n0+nt) x k [k0, k0+kc) of B into NR-wide micro-panels. */
static void pack_b_tile(const engine_job *j, const uint8_t *Bsrc, int64_t n0, int64_t nt, int64_t k0, int64_t kc,
                        float *Bp, float *tmp) {
    const mp_gemm_kernels *kern = j->kern;
    const mp_gemm_problem *p = j->p;
    const int NR = kern->nr;
    for (int64_t jr = 0; jr < nt; jr += NR) {
        const int nr = (int)(nt - jr < NR ? nt - jr : NR);
        float *dst = Bp + jr * kc;
        if (p->bf16dot) {
            kern->pack_b_nk_bf16(Bsrc, p->b_row_bytes, n0 + jr, nr, k0, kc, dst);
        } else if (p->b_kind == MP_GEMM_B_KN) {
            kern->pack_b_kn((const float *)Bsrc, p->ldb, k0, kc, n0 + jr, nr, dst);
        } else if (b_is_direct(p->b_dt)) {
            kern->pack_b_nk(p->b_dt, Bsrc, p->b_row_bytes, n0 + jr, nr, k0, kc, dst);
        } else { /* dequantize the row chunks, then pack them as F32 rows */
            const int64_t off = mp_dtype_row_bytes(p->b_dt, k0);
            for (int r = 0; r < nr; r++)
                mp_ref_dequantize_row(p->b_dt, Bsrc + (size_t)(n0 + jr + r) * p->b_row_bytes + off, tmp + r * kc, kc);
            kern->pack_b_nk(MP_F32, tmp, (size_t)kc * 4, 0, nr, 0, kc, dst);
        }
    }
}

static void run_tile(const engine_job *j, int64_t tile, float *Ap, float *Bp, float *tmp) {
    const mp_gemm_problem *p = j->p;
    const mp_gemm_kernels *kern = j->kern;
    const int MR = kern->mr, NR = kern->nr;
    const int64_t per_item = j->mtiles * j->ntiles;
    const int64_t b = tile / per_item, mi = (tile % per_item) / j->ntiles, ni = tile % j->ntiles;
    const int64_t m0 = mi * j->mc, n0 = ni * j->nt;
    const int64_t mc = p->M - m0 < j->mc ? p->M - m0 : j->mc, nt = p->N - n0 < j->nt ? p->N - n0 : j->nt;
    const float *A = p->A + b * p->sA + m0 * p->lda;
    const uint8_t *Bsrc = p->b_kind == MP_GEMM_B_KN ? (const uint8_t *)((const float *)p->B + b * p->sB)
                                                     : (const uint8_t *)p->B + b * p->sB;
    float *C = p->C + b * p->sC + m0 * p->ldc + n0;
    if (p->K == 0) { /* no products: C = init */
        for (int64_t i = 0; i < mc; i++)
            for (int64_t n = 0; n < nt; n++) {
                float *c = C + i * p->ldc + n;
                *c = p->init == MP_GEMM_INIT_BIAS ? p->bias[n0 + n] : p->init == MP_GEMM_INIT_BETA && p->beta != 0.0f ? p->beta * *c : 0.0f;
            }
        return;
    }
    for (int64_t k0 = 0; k0 < p->K; k0 += KC) {
        const int64_t kc = p->K - k0 < KC ? p->K - k0 : KC;
        int mode = k0 ? MP_GEMM_INIT_LOAD : p->init;
        if (mode == MP_GEMM_INIT_BETA && p->beta == 0.0f) mode = MP_GEMM_INIT_ZERO;
        pack_b_tile(j, Bsrc, n0, nt, k0, kc, Bp, tmp);
        /* row blocks of (nearly) equal height: 16 rows run as 8 + 8, not 14 + 2 (a 2-row micro-kernel
         * reloads B for every 4 FMAs); block b is packed at Ap + b*MR*kc */
        const int64_t nblk = (mc + MR - 1) / MR, h = (mc + nblk - 1) / nblk;
        for (int64_t bi = 0, ir = 0; ir < mc; bi++, ir += h) {
            const int mr = (int)(mc - ir < h ? mc - ir : h);
            if (p->bf16dot) kern->pack_a_bf16(A + ir * p->lda, p->lda, mr, k0, kc, p->alpha, Ap + bi * MR * kc);
            else pack_a(A + ir * p->lda, p->lda, mr, MR, k0, kc, p->alpha, Ap + bi * MR * kc);
        }
        for (int64_t jr = 0; jr < nt; jr += NR) {
            const int nr = (int)(nt - jr < NR ? nt - jr : NR);
            const float *bias = p->bias ? p->bias + n0 + jr : NULL;
            for (int64_t bi = 0, ir = 0; ir < mc; bi++, ir += h) {
                const int mr = (int)(mc - ir < h ? mc - ir : h);
                (p->bf16dot ? kern->ukernel_bf16 : kern->ukernel)(mr, kc, Ap + bi * MR * kc, Bp + jr * kc, C + ir * p->ldc + jr,
                                                                  p->ldc, nr, mode, bias, p->beta);
            }
        }
    }
}

static void engine_task(void *arg, int ith, int nth) {
    const engine_job *j = arg;
    int64_t lo, hi;
    mp_split_range(j->ntotal, ith, nth, &lo, &hi);
    if (lo >= hi) return;
    float *Ap, *Bp, *tmp;
    /* fallback tiles (no scratch): one micro-panel of each */
    _Alignas(64) float sA[MR_MAX * KC], sB[NR_MAX * KC], sT[NR_MAX * KC];
    if (j->scratch) {
        uint8_t *base = j->scratch + (size_t)ith * j->per_thread;
        base = (uint8_t *)(((uintptr_t)base + 63) & ~(uintptr_t)63);
        size_t a = ((size_t)(j->mc + MR_MAX) * KC * 4 + 63) & ~(size_t)63;
        size_t b = ((size_t)j->nt * KC * 4 + 63) & ~(size_t)63;
        Ap = (float *)base;
        Bp = (float *)(base + a);
        tmp = (float *)(base + a + b);
    } else {
        Ap = sA;
        Bp = sB;
        tmp = sT;
    }
    for (int64_t t = lo; t < hi; t++) run_tile(j, t, Ap, Bp, tmp);
}

void mp_gemm_engine_run(mp_exec *ex, const mp_gemm_kernels *kern, const mp_gemm_problem *p) {
    if (p->M <= 0 || p->N <= 0 || p->batch <= 0) return;
    mp_threadpool *tp = ex ? ex->tp : NULL;
    const int pool = mp_threadpool_size(tp);
    const int deq = p->b_kind == MP_GEMM_B_NK && !b_is_direct(p->b_dt);
    engine_job j = {.kern = kern, .p = p};
    /* row tiles of about equal height in whole micro-kernel blocks (1024 rows: 3 x 266 + 226, not 3 x 336 + 16) */
    const int64_t mt0 = (p->M + MC_MAX - 1) / MC_MAX, rows_per = (p->M + mt0 - 1) / mt0;
    j.mc = (rows_per + kern->mr - 1) / kern->mr * kern->mr;
    if (j.mc > p->M) j.mc = p->M;
    j.mtiles = (p->M + j.mc - 1) / j.mc;
    /* columns per tile: at most NT_MAX, fewer when that leaves threads idle */
    int64_t nt = p->N < NT_MAX ? p->N : NT_MAX;
    const int64_t outer = (int64_t)p->batch * j.mtiles;
    if (outer == 1 && pool > 1) {
        /* one row tile (small M: batched decode): the column micro-panels dealt out evenly, a whole number
         * of tiles per thread (N = 576 on 2 threads ran as 160+160 | 160+96 columns, N = 192 as 64+64 | 64) */
        const int64_t panels = (p->N + kern->nr - 1) / kern->nr, max_per = NT_MAX / kern->nr;
        const int64_t rounds = (panels + (int64_t)pool * max_per - 1) / ((int64_t)pool * max_per);
        const int64_t tiles = (int64_t)pool * rounds;
        nt = (panels + tiles - 1) / tiles * kern->nr;
    } else if (outer < 2 * pool) {
        int64_t want = (2 * pool + outer - 1) / outer; /* column tiles wanted per (item, row tile) */
        int64_t per = (p->N + want - 1) / want;
        if (per < nt) nt = per;
    }
    nt = (nt + kern->nr - 1) / kern->nr * kern->nr;
    j.nt = nt;
    j.ntiles = (p->N + nt - 1) / nt;
    j.ntotal = outer * j.ntiles;
    const double flops = 2.0 * (double)p->M * (double)p->N * (double)(p->K + 1) * p->batch;
    int nth = flops < 2e5 ? 1 : pool;
    if (nth > j.ntotal) nth = (int)j.ntotal;
    size_t mark = 0;
    if (ex) {
        mark = mp_arena_mark(&ex->scratch);
        j.per_thread = tile_bytes(j.mc, nt, deq);
        j.scratch = mp_arena_alloc(&ex->scratch, j.per_thread * (size_t)nth);
    }
    if (!j.scratch) { /* the stack tiles hold one micro-panel */
        j.mc = kern->mr;
        j.nt = kern->nr;
        j.mtiles = (p->M + j.mc - 1) / j.mc;
        j.ntiles = (p->N + j.nt - 1) / j.nt;
        j.ntotal = (int64_t)p->batch * j.mtiles * j.ntiles;
    }
    mp_parallel_n(tp, nth, engine_task, &j);
    if (ex) mp_arena_reset(&ex->scratch, mark);
}

/* ---------------------------------------------------------------- small M */

typedef struct {
    const mp_gemm_kernels *kern;
    int bf16dot;
    mp_dtype dt;
    const void *W;
    size_t row_bytes;
    int64_t N, K, ldx, M, ldy;
    const float *X, *bias;
    float *Y;
} gemv_job;

static void gemv_task(void *arg, int ith, int nth) {
    const gemv_job *j = arg;
    const int G = j->kern->nr_gemv;
    int64_t lo, hi;
    mp_split_range((j->N + G - 1) / G, ith, nth, &lo, &hi);
    for (int64_t g = lo; g < hi; g++) {
        const int64_t n0 = g * G;
        const int nr = (int)(j->N - n0 < G ? j->N - n0 : G);
        if (j->bf16dot) j->kern->gemv_bf16(j->W, j->row_bytes, n0, nr, j->K, j->X, j->ldx, j->M, j->Y, j->ldy, j->bias);
        else j->kern->gemv(j->dt, j->W, j->row_bytes, n0, nr, j->K, j->X, j->ldx, j->M, j->Y, j->ldy, j->bias);
    }
}

void mp_gemv_run(mp_exec *ex, const mp_gemm_kernels *kern, int bf16dot, mp_dtype dt, const void *W, size_t row_bytes,
                 int64_t N, int64_t K, const float *X, int64_t ldx, int64_t M, float *Y, int64_t ldy, const float *bias) {
    gemv_job j = {kern, bf16dot, dt, W, row_bytes, N, K, ldx, M, ldy, X, bias, Y};
    mp_threadpool *tp = ex ? ex->tp : NULL;
    const double work = (double)M * (double)N * (double)K;
    mp_parallel_n(tp, work < 1e5 ? 1 : mp_threadpool_size(tp), gemv_task, &j);
}
