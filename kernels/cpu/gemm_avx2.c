/* gemm_avx2.c — AVX2+FMA pieces of the F32 GEMM engine (gemm_engine.c): a 6x16 micro-kernel (12 ymm
 * accumulators) and the B packers. Same arithmetic as gemm_avx512.c and the scalar reference: one
 * fused-multiply-add chain per C element in k order. */
#include "kernels/cpu/gemm_engine.h"

#include <immintrin.h>

#define MR 6
#define NR 16

/* Mask vector for the first n of 8 lanes (n may be <= 0 or >= 8). */
static inline __m256i lane_mask8(int n) {
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), idx);
}

#define VW 8
#define V __m256
#define VMASK __m256i
#define vmask lane_mask8
#define V_ZERO() _mm256_setzero_ps()
#define V_LOAD(p) _mm256_load_ps(p)
#define V_LOADM(p, m) _mm256_maskload_ps(p, m)
#define V_STOREA(p, v) _mm256_store_ps(p, v)
#define V_STOREM(p, m, v) _mm256_maskstore_ps(p, m, v)
#define V_SET1(x) _mm256_broadcast_ss(&(x))
#define V_FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define V_MUL(a, b) _mm256_mul_ps(a, b)
#define V_UNPACKLO _mm256_unpacklo_ps
#define V_UNPACKHI _mm256_unpackhi_ps
#define V_SHUFFLE _mm256_shuffle_ps
#include "kernels/cpu/gemm_ukernel.inc"

DEFINE_UKERNEL(1)
DEFINE_UKERNEL(2)
DEFINE_UKERNEL(3)
DEFINE_UKERNEL(4)
DEFINE_UKERNEL(5)
DEFINE_UKERNEL(6)

static const uk_fn g_uk[MR + 1] = {NULL, uk_1, uk_2, uk_3, uk_4, uk_5, uk_6};

/* 8x8 transpose: r[i] lane j -> r[j] lane i. */
static inline __attribute__((always_inline)) void transpose8(__m256 r[8]) {
    __m256 t[8];
    transpose_in_lanes(r, t);
    _Pragma("GCC unroll 16") for (int i = 0; i < 4; i++) {
        t[i] = _mm256_permute2f128_ps(r[i], r[i + 4], 0x20);
        t[i + 4] = _mm256_permute2f128_ps(r[i], r[i + 4], 0x31);
    }
    _Pragma("GCC unroll 16") for (int i = 0; i < 8; i++) r[i] = t[i];
}

typedef __m256 (*row_loader)(const uint8_t *row, int64_t k, int n);

static inline __m256 load_f32(const uint8_t *row, int64_t k, int n) {
    return _mm256_maskload_ps((const float *)row + k, lane_mask8(n));
}
static inline __m256 load_f16(const uint8_t *row, int64_t k, int n) {
    uint16_t tmp[8] = {0};
    const uint16_t *s = (const uint16_t *)row + k;
    if (n >= 8) return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)s));
    for (int i = 0; i < n; i++) tmp[i] = s[i];
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)tmp));
}
static inline __m256 load_bf16(const uint8_t *row, int64_t k, int n) {
    uint16_t tmp[8] = {0};
    const uint16_t *s = (const uint16_t *)row + k;
    __m128i v;
    if (n >= 8) v = _mm_loadu_si128((const __m128i *)s);
    else {
        for (int i = 0; i < n; i++) tmp[i] = s[i];
        v = _mm_loadu_si128((const __m128i *)tmp);
    }
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(v), 16));
}

static void pack_b_nk(mp_dtype dt, const void *W, size_t row_bytes, int64_t n0, int nr, int64_t k0, int64_t kc,
                      float *Bp) {
    row_loader load = dt == MP_F16 ? load_f16 : dt == MP_BF16 ? load_bf16 : load_f32;
    for (int j0 = 0; j0 < NR; j0 += 8) {
        for (int64_t k = 0; k < kc; k += 8) {
            const int kl = (int)(kc - k < 8 ? kc - k : 8);
            __m256 r[8];
            _Pragma("GCC unroll 8") for (int j = 0; j < 8; j++)
                r[j] = j0 + j < nr ? load((const uint8_t *)W + (size_t)(n0 + j0 + j) * row_bytes, k0 + k, kl)
                                   : _mm256_setzero_ps();
            transpose8(r);
            if (kl == 8) {
                _Pragma("GCC unroll 8") for (int t = 0; t < 8; t++) _mm256_store_ps(Bp + (k + t) * NR + j0, r[t]);
            } else {
                for (int t = 0; t < kl; t++) _mm256_store_ps(Bp + (k + t) * NR + j0, r[t]);
            }
        }
    }
}

#define GEMV_MAX_M 4

/* Y[m][n0 .. n0+nr) for m < M: 8 weight rows x 8 k transposed in registers (see gemm_avx512.c). */
static void gemv(mp_dtype dt, const void *W, size_t row_bytes, int64_t n0, int nr, int64_t K, const float *X,
                 int64_t ldx, int64_t M, float *Y, int64_t ldy, const float *bias) {
    row_loader load = dt == MP_F16 ? load_f16 : dt == MP_BF16 ? load_bf16 : load_f32;
    const uint8_t *rows[8];
    for (int r = 0; r < 8; r++) rows[r] = (const uint8_t *)W + (size_t)(n0 + (r < nr ? r : 0)) * row_bytes;
    const __m256i mask = lane_mask8(nr);
    __m256 acc[GEMV_MAX_M];
    const __m256 init = bias ? _mm256_maskload_ps(bias + n0, mask) : _mm256_setzero_ps();
    for (int64_t m = 0; m < M; m++) acc[m] = init;
    for (int64_t k = 0; k < K; k += 8) {
        const int kl = (int)(K - k < 8 ? K - k : 8);
        __m256 r[8];
        _Pragma("GCC unroll 8") for (int j = 0; j < 8; j++) r[j] = load(rows[j], k, kl);
        transpose8(r);
        if (kl == 8) {
            _Pragma("GCC unroll 8") for (int t = 0; t < 8; t++)
                for (int64_t m = 0; m < M; m++) acc[m] = _mm256_fmadd_ps(_mm256_set1_ps(X[m * ldx + k + t]), r[t], acc[m]);
        } else {
            for (int t = 0; t < kl; t++)
                for (int64_t m = 0; m < M; m++) acc[m] = _mm256_fmadd_ps(_mm256_set1_ps(X[m * ldx + k + t]), r[t], acc[m]);
        }
    }
    for (int64_t m = 0; m < M; m++) _mm256_maskstore_ps(Y + m * ldy + n0, mask, acc[m]);
}

static const mp_gemm_kernels g_kernels = {
    .mr = MR, .nr = NR, .ukernel = ukernel, .pack_b_kn = pack_b_kn, .pack_b_nk = pack_b_nk,
    .nr_gemv = 8, .gemv_max_m = GEMV_MAX_M, .gemv = gemv,
};

const mp_gemm_kernels *mp_gemm_kernels_avx2(void) { return &g_kernels; }
