/* gemm_avx512.c — AVX-512 pieces of the F32 GEMM engine (gemm_engine.c): a 14x32 register-tiled
 * micro-kernel (28 zmm accumulators, A broadcast from the packed panel, B two zmm per k) and the B
 * packers (row-major [K][N], and the transposing packers for weight rows [N][K] in F32/F16/BF16).
 *
 * Every C element is one fused-multiply-add chain over k in order, starting from the init value, so
 * results equal the scalar reference (mp_ref_matmul / mp_ref_gemm_f32) bit for bit whatever the tiling,
 * the number of rows or the thread count. */
#include "kernels/cpu/gemm_engine.h"

#include <immintrin.h>

#define MR 14
#define NR 32

static inline __mmask16 lane_mask(int n) {
    return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1);
}

#define VW 16
#define V __m512
#define VMASK __mmask16
#define vmask lane_mask
#define V_ZERO() _mm512_setzero_ps()
#define V_LOAD(p) _mm512_load_ps(p)
#define V_LOADM(p, m) _mm512_maskz_loadu_ps(m, p)
#define V_STOREA(p, v) _mm512_store_ps(p, v)
#define V_STOREM(p, m, v) _mm512_mask_storeu_ps(p, m, v)
#define V_SET1(x) _mm512_set1_ps(x)
#define V_FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define V_MUL(a, b) _mm512_mul_ps(a, b)
#define V_UNPACKLO _mm512_unpacklo_ps
#define V_UNPACKHI _mm512_unpackhi_ps
#define V_SHUFFLE _mm512_shuffle_ps
#include "kernels/cpu/gemm_ukernel.inc"

DEFINE_UKERNEL(1)
DEFINE_UKERNEL(2)
DEFINE_UKERNEL(3)
DEFINE_UKERNEL(4)
DEFINE_UKERNEL(5)
DEFINE_UKERNEL(6)
DEFINE_UKERNEL(7)
DEFINE_UKERNEL(8)
DEFINE_UKERNEL(9)
DEFINE_UKERNEL(10)
DEFINE_UKERNEL(11)
DEFINE_UKERNEL(12)
DEFINE_UKERNEL(13)
DEFINE_UKERNEL(14)

static const uk_fn g_uk[MR + 1] = {NULL, uk_1, uk_2, uk_3, uk_4, uk_5, uk_6, uk_7, uk_8, uk_9, uk_10, uk_11, uk_12, uk_13, uk_14};

/* ---------------------------------------------------------------- B packing (weight rows) */

/* In-register transpose of 16x16 floats: r[i] lane j -> r[j] lane i. */
static inline __attribute__((always_inline)) void transpose16(__m512 r[16]) {
    __m512 t[16];
    transpose_in_lanes(r, t);
    _Pragma("GCC unroll 16") for (int i = 0; i < 16; i += 8)
        _Pragma("GCC unroll 16") for (int j = 0; j < 4; j++) {
            t[i + j] = _mm512_shuffle_f32x4(r[i + j], r[i + j + 4], 0x88);
            t[i + j + 4] = _mm512_shuffle_f32x4(r[i + j], r[i + j + 4], 0xDD);
        }
    _Pragma("GCC unroll 16") for (int j = 0; j < 8; j++) {
        r[j] = _mm512_shuffle_f32x4(t[j], t[j + 8], 0x88);
        r[j + 8] = _mm512_shuffle_f32x4(t[j], t[j + 8], 0xDD);
    }
}

/* Load 16 values of row j of a weight panel starting at element k as F32 (zero when j >= nr or past kl). */
typedef __m512 (*row_loader)(const uint8_t *row, int64_t k, __mmask16 m);

static inline __m512 load_f32(const uint8_t *row, int64_t k, __mmask16 m) {
    return _mm512_maskz_loadu_ps(m, (const float *)row + k);
}
static inline __m512 load_f16(const uint8_t *row, int64_t k, __mmask16 m) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, (const uint16_t *)row + k));
}
static inline __m512 load_bf16(const uint8_t *row, int64_t k, __mmask16 m) {
    __m512i v = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, (const uint16_t *)row + k));
    return _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
}

/* Where the packers prefetch, as a byte offset from the start of a row of the micro-panel: PACK_PF_BYTES
 * past byte `at` of the panel's `len` bytes (which start at byte `start` of each row), continuing into the
 * rows of the next micro-panel (NR rows on) at `start`, which the engine packs next. */
#define PACK_PF_BYTES 256
static inline size_t pack_prefetch_offset(int64_t at, int64_t len, int64_t start, size_t row_bytes) {
    const int64_t ahead = at + PACK_PF_BYTES;
    return ahead < len ? (size_t)(start + ahead) : (size_t)NR * row_bytes + (size_t)(start + ahead - len);
}

/* Bp[k][j] = W[n0+j][k0+k] for j < nr (zero beyond), k < kc; rows `row_bytes` apart. */
static inline __attribute__((always_inline)) void pack_b_rows(row_loader load, int es, const uint8_t *W, size_t row_bytes, int64_t n0, int nr, int64_t k0,
                        int64_t kc, float *Bp) {
    for (int half = 0; half < 2; half++) {
        const int j0 = half * 16;
        for (int64_t k = 0; k < kc; k += 16) {
            const int64_t kl = kc - k < 16 ? kc - k : 16;
            const __mmask16 mk = lane_mask((int)kl);
            __m512 r[16];
            _Pragma("GCC unroll 16") for (int j = 0; j < 16; j++)
                r[j] = j0 + j < nr ? load(W + (size_t)(n0 + j0 + j) * row_bytes, k0 + k, mk) : _mm512_setzero_ps();
            /* PACK_PF_BYTES ahead in the same rows, then on into the next micro-panel's rows (as the BF16 packer
             * below: small-M matmuls, e.g. batched decode, are bound by this stream; 16 row streams alone
             * leave the memory system idle) */
            if (k % (64 / es) == 0) {
                const size_t pf = pack_prefetch_offset(k * es, kc * es, k0 * es, row_bytes);
                _Pragma("GCC unroll 16") for (int j = 0; j < 16; j++)
                    _mm_prefetch((const char *)W + (size_t)(n0 + j0 + j) * row_bytes + pf, _MM_HINT_T0);
            }
            transpose16(r);
            if (kl == 16) {
                _Pragma("GCC unroll 16") for (int t = 0; t < 16; t++) _mm512_store_ps(Bp + (k + t) * NR + j0, r[t]);
            } else {
                for (int t = 0; t < kl; t++) _mm512_store_ps(Bp + (k + t) * NR + j0, r[t]);
            }
        }
    }
}

static void pack_b_nk(mp_dtype dt, const void *W, size_t row_bytes, int64_t n0, int nr, int64_t k0, int64_t kc,
                      float *Bp) {
    if (dt == MP_F16) pack_b_rows(load_f16, 2, W, row_bytes, n0, nr, k0, kc, Bp);
    else if (dt == MP_BF16) pack_b_rows(load_bf16, 2, W, row_bytes, n0, nr, k0, kc, Bp);
    else pack_b_rows(load_f32, 4, W, row_bytes, n0, nr, k0, kc, Bp);
}

#define GEMV_MAX_M 4

/* Software prefetch for the GEMV's 64 interleaved row streams (the hardware prefetchers do not follow
 * that many): GEMV_PF_BYTES ahead in each row, continuing into the next 64-row block (the next call)
 * near the end of the rows. Without it the row loads leave the memory system idle between rows; the
 * earlier scheme (the next block at the same k) put each line a whole block (up to 512 KB) ahead, past
 * L1 and L2, which cost ~15 % of single-sequence decode on stories110M. */
#define GEMV_PF_BYTES 256
static inline size_t gemv_prefetch_offset(int64_t at, int64_t row_len, size_t row_bytes) {
    const int64_t ahead = at + GEMV_PF_BYTES;
    return ahead < row_len ? (size_t)ahead : 64 * row_bytes + (size_t)(ahead - row_len);
}

/* Row pointers of up to 4 groups of 16 weight rows (past nr: row n0) and the accumulators' start values;
 * returns the number of groups. */
static inline int gemv_setup(const void *W, size_t row_bytes, int64_t n0, int nr, int64_t M, const float *bias,
                             const uint8_t *rows[4][16], __m512 acc[4][GEMV_MAX_M]) {
    const int ng = (nr + 15) / 16;
    for (int g = 0; g < ng; g++) {
        const int gr = nr - 16 * g < 16 ? nr - 16 * g : 16;
        for (int r = 0; r < 16; r++) rows[g][r] = (const uint8_t *)W + (size_t)(n0 + 16 * g + (r < gr ? r : 0)) * row_bytes;
        const __m512 init = bias ? _mm512_maskz_loadu_ps(lane_mask(gr), bias + n0 + 16 * g) : _mm512_setzero_ps();
        for (int64_t m = 0; m < M; m++) acc[g][m] = init;
    }
    return ng;
}

static inline void gemv_store(int ng, int nr, int64_t M, __m512 acc[4][GEMV_MAX_M], float *Y, int64_t ldy, int64_t n0) {
    for (int g = 0; g < ng; g++) {
        const __mmask16 mask = lane_mask(nr - 16 * g);
        for (int64_t m = 0; m < M; m++) _mm512_mask_storeu_ps(Y + m * ldy + n0 + 16 * g, mask, acc[g][m]);
    }
}

/* Y[m][n0 .. n0+nr) for m < M (nr <= 64): 4 groups of 16 weight rows; each 16 rows x 16 k are transposed
 * in registers, then one FMA per k and row of X (the chain of the micro-kernel, so the results are
 * identical). The 4 groups are 4 independent FMA chains. */
static inline __attribute__((always_inline)) void gemv_impl(row_loader load, int es, const void *W, size_t row_bytes,
                                                            int64_t n0, int nr, int64_t K, const float *X, int64_t ldx,
                                                            int64_t M, float *Y, int64_t ldy, const float *bias) {
    const uint8_t *rows[4][16];
    __m512 acc[4][GEMV_MAX_M];
    const int ng = gemv_setup(W, row_bytes, n0, nr, M, bias, rows, acc);
    for (int64_t k = 0; k < K; k += 16) {
        const int kl = (int)(K - k < 16 ? K - k : 16);
        const __mmask16 mk = lane_mask(kl);
        for (int g = 0; g < ng; g++) {
            __m512 r[16];
            _Pragma("GCC unroll 16") for (int j = 0; j < 16; j++) r[j] = load(rows[g][j], k, mk);
            const size_t off = gemv_prefetch_offset(k * es, K * es, row_bytes);
            _Pragma("GCC unroll 16") for (int j = 0; j < 16; j++) _mm_prefetch((const char *)rows[g][j] + off, _MM_HINT_T0);
            transpose16(r);
            if (M == 1 && kl == 16) {
                __m512 a = acc[g][0];
                _Pragma("GCC unroll 16") for (int t = 0; t < 16; t++) a = _mm512_fmadd_ps(_mm512_set1_ps(X[k + t]), r[t], a);
                acc[g][0] = a;
            } else if (kl == 16) {
                _Pragma("GCC unroll 16") for (int t = 0; t < 16; t++)
                    for (int64_t m = 0; m < M; m++)
                        acc[g][m] = _mm512_fmadd_ps(_mm512_set1_ps(X[m * ldx + k + t]), r[t], acc[g][m]);
            } else {
                for (int t = 0; t < kl; t++)
                    for (int64_t m = 0; m < M; m++)
                        acc[g][m] = _mm512_fmadd_ps(_mm512_set1_ps(X[m * ldx + k + t]), r[t], acc[g][m]);
            }
        }
    }
    gemv_store(ng, nr, M, acc, Y, ldy, n0);
}

static void gemv(mp_dtype dt, const void *W, size_t row_bytes, int64_t n0, int nr, int64_t K, const float *X,
                 int64_t ldx, int64_t M, float *Y, int64_t ldy, const float *bias) {
    if (dt == MP_F16) gemv_impl(load_f16, 2, W, row_bytes, n0, nr, K, X, ldx, M, Y, ldy, bias);
    else if (dt == MP_BF16) gemv_impl(load_bf16, 2, W, row_bytes, n0, nr, K, X, ldx, M, Y, ldy, bias);
    else gemv_impl(load_f32, 4, W, row_bytes, n0, nr, K, X, ldx, M, Y, ldy, bias);
}

/* ---------------------------------------------------------------- BF16 weights: vdpbf16ps */

/* With AVX512_BF16, BF16 weights meet activations rounded to BF16 (vcvtne2ps2bf16, round to nearest
 * even): every output is one chain acc = vdpbf16ps(acc, x pair, w pair) over k pairs (2i, 2i+1) in
 * order, from bias (or 0); an odd K pads the last pair with zeros. The GEMV below and the packed
 * micro-kernel run that same chain. */

/* 32 activations alpha * x (n valid) as 16 bf16 pairs. */
static inline __m512i x_pairs(const float *x, int n, float alpha) {
    __m512 lo = _mm512_maskz_loadu_ps(lane_mask(n), x), hi = _mm512_maskz_loadu_ps(lane_mask(n - 16), x + 16);
    if (alpha != 1.0f) lo = _mm512_mul_ps(lo, _mm512_set1_ps(alpha)), hi = _mm512_mul_ps(hi, _mm512_set1_ps(alpha));
    return (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
}

static void gemv_bf16(const void *W, size_t row_bytes, int64_t n0, int nr, int64_t K, const float *X, int64_t ldx,
                      int64_t M, float *Y, int64_t ldy, const float *bias) {
    const uint8_t *rows[4][16];
    __m512 acc[4][GEMV_MAX_M];
    const int ng = gemv_setup(W, row_bytes, n0, nr, M, bias, rows, acc);
    for (int64_t k = 0; k < K; k += 32) {
        const int kl = (int)(K - k < 32 ? K - k : 32), pl = (kl + 1) / 2;
        _Alignas(64) uint32_t xp[GEMV_MAX_M][16];
        for (int64_t m = 0; m < M; m++) _mm512_store_si512(xp[m], x_pairs(X + m * ldx + k, kl, 1.0f));
        const __mmask32 mk = kl >= 32 ? 0xFFFFFFFFu : (__mmask32)((1u << kl) - 1);
        for (int g = 0; g < ng; g++) {
            __m512 r[16];
            if (kl == 32) {
                _Pragma("GCC unroll 16") for (int j = 0; j < 16; j++) r[j] = _mm512_loadu_ps(rows[g][j] + 2 * k);
            } else {
                _Pragma("GCC unroll 16") for (int j = 0; j < 16; j++)
                    r[j] = _mm512_castsi512_ps(_mm512_maskz_loadu_epi16(mk, rows[g][j] + 2 * k));
            }
            const size_t off = gemv_prefetch_offset(2 * k, 2 * K, row_bytes);
            _Pragma("GCC unroll 16") for (int j = 0; j < 16; j++) _mm_prefetch((const char *)rows[g][j] + off, _MM_HINT_T0);
            transpose16(r); /* r[t]: the pair (k+2t, k+2t+1) of the 16 rows */
            if (pl == 16) {
                _Pragma("GCC unroll 16") for (int t = 0; t < 16; t++)
                    for (int64_t m = 0; m < M; m++)
                        acc[g][m] = _mm512_dpbf16_ps(acc[g][m], (__m512bh)_mm512_castps_si512(r[t]),
                                                     (__m512bh)_mm512_set1_epi32((int)xp[m][t]));
            } else {
                for (int t = 0; t < pl; t++)
                    for (int64_t m = 0; m < M; m++)
                        acc[g][m] = _mm512_dpbf16_ps(acc[g][m], (__m512bh)_mm512_castps_si512(r[t]),
                                                     (__m512bh)_mm512_set1_epi32((int)xp[m][t]));
            }
        }
    }
    gemv_store(ng, nr, M, acc, Y, ldy, n0);
}

/* Packed micro-kernel: A as bf16 pairs [kc/2][MR] (32-bit each), B as pairs [kc/2][NR] (two zmm per pair
 * step), kc values (odd: zero padded by the packers). */
#define DEFINE_UKERNEL_BF16(R)                                                                                   \
    static void ukb_##R(int64_t kc, const float *Af, const float *Bf, float *C, int64_t ldc, int nr, int mode,   \
                        const float *bias, float beta) {                                                         \
        const uint32_t *A = (const uint32_t *)(const void *)Af;                                                  \
        const __m512i *B = (const __m512i *)(const void *)Bf;                                                   \
        const __mmask16 m0 = lane_mask(nr), m1 = lane_mask(nr - 16);                                             \
        const __m512 vb = _mm512_set1_ps(beta);                                                                  \
        __m512 c0[R], c1[R];                                                                                     \
        _Pragma("GCC unroll 16") for (int i = 0; i < R; i++) {                                                   \
            c0[i] = init_acc(mode, C + i * ldc, m0, bias, vb);                                                   \
            c1[i] = init_acc(mode, C + i * ldc + 16, m1, bias ? bias + 16 : NULL, vb);                           \
        }                                                                                                        \
        for (int64_t k = 0; k < (kc + 1) / 2; k++) {                                                             \
            const __m512bh b0 = (__m512bh)_mm512_load_si512(B), b1 = (__m512bh)_mm512_load_si512(B + 1);         \
            _Pragma("GCC unroll 16") for (int i = 0; i < R; i++) {                                               \
                const __m512bh a = (__m512bh)_mm512_set1_epi32((int)A[i]);                                       \
                c0[i] = _mm512_dpbf16_ps(c0[i], b0, a);                                                          \
                c1[i] = _mm512_dpbf16_ps(c1[i], b1, a);                                                          \
            }                                                                                                    \
            A += MR;                                                                                             \
            B += 2;                                                                                              \
        }                                                                                                        \
        _Pragma("GCC unroll 16") for (int i = 0; i < R; i++) {                                                   \
            _mm512_mask_storeu_ps(C + i * ldc, m0, c0[i]);                                                       \
            _mm512_mask_storeu_ps(C + i * ldc + 16, m1, c1[i]);                                                  \
        }                                                                                                        \
    }

DEFINE_UKERNEL_BF16(1)
DEFINE_UKERNEL_BF16(2)
DEFINE_UKERNEL_BF16(3)
DEFINE_UKERNEL_BF16(4)
DEFINE_UKERNEL_BF16(5)
DEFINE_UKERNEL_BF16(6)
DEFINE_UKERNEL_BF16(7)
DEFINE_UKERNEL_BF16(8)
DEFINE_UKERNEL_BF16(9)
DEFINE_UKERNEL_BF16(10)
DEFINE_UKERNEL_BF16(11)
DEFINE_UKERNEL_BF16(12)
DEFINE_UKERNEL_BF16(13)
DEFINE_UKERNEL_BF16(14)

static const uk_fn g_ukb[MR + 1] = {NULL, ukb_1, ukb_2, ukb_3, ukb_4, ukb_5, ukb_6, ukb_7, ukb_8, ukb_9, ukb_10, ukb_11, ukb_12, ukb_13, ukb_14};

static void ukernel_bf16(int mr, int64_t kc, const float *A, const float *B, float *C, int64_t ldc, int nr, int mode,
                         const float *bias, float beta) {
    g_ukb[mr](kc, A, B, C, ldc, nr, mode, bias, beta);
}

/* Bp[k/2][j] = the bf16 pair (W[n0+j][k0+k], W[n0+j][k0+k+1]) of weight rows, zero padded. */
static void pack_b_nk_bf16(const void *W, size_t row_bytes, int64_t n0, int nr, int64_t k0, int64_t kc, float *Bpf) {
    uint32_t *Bp = (uint32_t *)(void *)Bpf;
    for (int half = 0; half < 2; half++) {
        const int j0 = half * 16;
        for (int64_t k = 0; k < kc; k += 32) {
            const int kl = (int)(kc - k < 32 ? kc - k : 32), pl = (kl + 1) / 2;
            const __mmask32 mk = kl >= 32 ? 0xFFFFFFFFu : (__mmask32)((1u << kl) - 1);
            __m512 r[16];
            _Pragma("GCC unroll 16") for (int j = 0; j < 16; j++)
                r[j] = j0 + j < nr ? _mm512_castsi512_ps(_mm512_maskz_loadu_epi16(
                                         mk, (const uint8_t *)W + (size_t)(n0 + j0 + j) * row_bytes + 2 * (k0 + k)))
                                   : _mm512_setzero_ps();
            /* PACK_PF_BYTES ahead in the same rows, then on into the next micro-panel's rows at k0 (what the
             * engine packs next): small-M GEMMs (batched decode) are bound by this stream from DRAM, and 16
             * row streams alone leave the memory system idle */
            const size_t pf = pack_prefetch_offset(2 * k, 2 * kc, 2 * k0, row_bytes);
            _Pragma("GCC unroll 16") for (int j = 0; j < 16; j++)
                _mm_prefetch((const char *)W + (size_t)(n0 + j0 + j) * row_bytes + pf, _MM_HINT_T0);
            transpose16(r);
            for (int t = 0; t < pl; t++) _mm512_store_ps((float *)(void *)(Bp + (k / 2 + t) * NR + j0), r[t]);
        }
    }
}

/* Ap[k/2][i] = the bf16 pair (alpha*A[i][k0+k], alpha*A[i][k0+k+1]), zero padded past kc: per 32 values of
 * k, the mr rows' 16 pairs are transposed in registers and stored as 16 rows of mr lanes. */
static void pack_a_bf16(const float *A, int64_t lda, int mr, int64_t k0, int64_t kc, float alpha, float *Apf) {
    uint32_t *Ap = (uint32_t *)(void *)Apf;
    const __mmask16 mm = lane_mask(mr);
    for (int64_t k = 0; k < kc; k += 32) {
        const int kl = (int)(kc - k < 32 ? kc - k : 32), pl = (kl + 1) / 2;
        __m512 r[16];
        _Pragma("GCC unroll 16") for (int i = 0; i < 16; i++)
            r[i] = i < mr ? _mm512_castsi512_ps(x_pairs(A + i * lda + k0 + k, kl, alpha)) : _mm512_setzero_ps();
        transpose16(r); /* r[t]: the pair t of every row */
        if (pl == 16) {
            _Pragma("GCC unroll 16") for (int t = 0; t < 16; t++)
                _mm512_mask_storeu_ps((float *)(void *)(Ap + (k / 2 + t) * MR), mm, r[t]);
        } else {
            for (int t = 0; t < pl; t++) _mm512_mask_storeu_ps((float *)(void *)(Ap + (k / 2 + t) * MR), mm, r[t]);
        }
    }
}

static const mp_gemm_kernels g_kernels = {
    .mr = MR, .nr = NR, .ukernel = ukernel, .pack_b_kn = pack_b_kn, .pack_b_nk = pack_b_nk,
    .nr_gemv = 64, .gemv_max_m = GEMV_MAX_M, .gemv = gemv,
    .ukernel_bf16 = ukernel_bf16, .pack_b_nk_bf16 = pack_b_nk_bf16, .pack_a_bf16 = pack_a_bf16, .gemv_bf16 = gemv_bf16,
};

const mp_gemm_kernels *mp_gemm_kernels_avx512(void) { return &g_kernels; }
