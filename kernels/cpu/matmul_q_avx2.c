/* matmul_q_avx2.c — AVX2 kernels of the quantized-activation matmul (arithmetic defined in matmul_q.c).
 * One weight row per ymm: 32 unsigned quants times 32 signed activations with maddubs + madd gives the 8
 * sums of 4 products (q8_0 uses |w| and sign(q, w) so that nothing saturates), 8 rows are reduced to a
 * vector of 8 exact block sums, and the float epilogue runs on 8 rows at once. */
#include "kernels/cpu/matmul_q.h"
#include "kernels/cpu/quant_impl.h"

#include <immintrin.h>

/* 8 vectors of 8 int32 -> their 8 horizontal sums, in order. */
static inline __m256i reduce8(const __m256i z[8]) {
    const __m256i h01 = _mm256_hadd_epi32(z[0], z[1]), h23 = _mm256_hadd_epi32(z[2], z[3]);
    const __m256i h45 = _mm256_hadd_epi32(z[4], z[5]), h67 = _mm256_hadd_epi32(z[6], z[7]);
    const __m256i q0 = _mm256_hadd_epi32(h01, h23), q1 = _mm256_hadd_epi32(h45, h67);
    return _mm256_add_epi32(_mm256_permute2x128_si256(q0, q1, 0x20), _mm256_permute2x128_si256(q0, q1, 0x31));
}

/* sum of 4 consecutive u*q products per int32 lane, added to init */
static inline __m256i dot4(__m256i init, __m256i u, __m256i q) {
    return _mm256_add_epi32(init, _mm256_madd_epi16(_mm256_maddubs_epi16(u, q), _mm256_set1_epi16(1)));
}

static inline __m256i nibbles16(const uint8_t *p) { /* 16 bytes -> 32 quants, low nibbles first */
    const __m128i v = _mm_loadu_si128((const __m128i *)p);
    const __m256i w = _mm256_inserti128_si256(_mm256_castsi128_si256(v), _mm_srli_epi16(v, 4), 1);
    return _mm256_and_si256(w, _mm256_set1_epi8(0x0F));
}

static inline __m256i nibbles32(const uint8_t *p, int hi4) {
    __m256i v = _mm256_loadu_si256((const __m256i *)p);
    if (hi4) v = _mm256_srli_epi16(v, 4);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x0F));
}

/* bit i of h -> 0x10 in byte i (the fifth bit of q5 quants) */
static inline __m256i bits_to_bytes16(uint32_t h) {
    const __m256i shuf = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3,
                                          3, 3, 3, 3, 3);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)h), shuf);
    v = _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x10));
}

static inline __m256i act32(const mp_q8_act *a, int64_t m, int64_t k) {
    return _mm256_loadu_si256((const __m256i *)(a->qs + m * a->K + k));
}

static inline __m256i act_offset(const mp_q8_act *a, int64_t m, int64_t k, int shift) {
    const __m256i s = _mm256_loadu_si256((const __m256i *)(a->s4 + m * (a->K / 4) + k / 4));
    return _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(s, shift));
}

static inline int offset_shift(mp_dtype dt) {
    switch (dt) {
    case MP_Q4_0: return 3;
    case MP_Q5_0: return 4;
    case MP_Q6_K: return 5;
    default: return -1; /* q8_0 is signed here (sign trick), the rest have no offset */
    }
}

static inline __m256 f16x8(const uint8_t *const rows[8], size_t off) {
    uint16_t h[8];
    for (int r = 0; r < 8; r++) memcpy(&h[r], rows[r] + off, 2);
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)h));
}

static inline __m256i lane_mask8(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* Sum over one 32-value block of row r: the int32 lanes (sums of 4) for activation row m. */
static inline __m256i block32_lanes(mp_dtype dt, const uint8_t *blk, const mp_q8_act *a, int64_t m, int64_t k, int shift) {
    const __m256i x = act32(a, m, k);
    switch (dt) {
    case MP_Q8_0: {
        const __m256i w = _mm256_loadu_si256((const __m256i *)(blk + 2));
        return dot4(_mm256_setzero_si256(), _mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
    }
    case MP_Q4_0: return dot4(act_offset(a, m, k, shift), nibbles16(blk + 2), x);
    case MP_Q4_1: return dot4(_mm256_setzero_si256(), nibbles16(blk + 4), x);
    default: { /* q5_0, q5_1 */
        const int h = dt == MP_Q5_0 ? 2 : 4;
        uint32_t qh;
        memcpy(&qh, blk + h, 4);
        const __m256i u = _mm256_or_si256(nibbles16(blk + h + 4), bits_to_bytes16(qh));
        return dot4(shift >= 0 ? act_offset(a, m, k, shift) : _mm256_setzero_si256(), u, x);
    }
    }
}

/* acc after 32-value block b (byte offset o in each row) of 8 rows meets activation row m. */
static inline __m256 block32_update(mp_dtype dt, const uint8_t *const rows[8], size_t o, const mp_q8_act *a, int64_t m,
                                    int64_t b, __m256 acc) {
    const int64_t nb = a->K / 32;
    const int shift = offset_shift(dt);
    for (int r = 0; r < 8; r++) _mm_prefetch((const char *)(rows[r] + o + 768), _MM_HINT_T0);
    __m256i z[8];
    for (int r = 0; r < 8; r++) z[r] = block32_lanes(dt, rows[r] + o, a, m, b * 32, shift);
    const float d = a->d[m * nb + b];
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(reduce8(z)), _mm256_mul_ps(f16x8(rows, o), _mm256_set1_ps(d)), acc);
    if (dt == MP_Q4_1 || dt == MP_Q5_1)
        acc = _mm256_fmadd_ps(f16x8(rows, o + 2), _mm256_set1_ps(d * (float)a->s32[m * nb + b]), acc);
    return acc;
}

/* The int32 lanes of sub-chunk c (32 values) of a K-quant super-block, already multiplied by the scales. */
static inline __m256i kchunk_lanes(mp_dtype dt, const uint8_t *blk, int c, const int32_t *sc, const mp_q8_act *a,
                                   int64_t m, int64_t k) {
    const __m256i x = act32(a, m, k);
    if (dt == MP_Q6_K) {
        const mp_block_q6_K *w = (const void *)blk;
        const int h = c / 4, qt = c % 4;
        __m256i u = nibbles32(w->ql + 64 * h + 32 * (qt & 1), qt >> 1);
        __m256i qh = _mm256_loadu_si256((const __m256i *)(w->qh + 32 * h));
        qh = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * qt), _mm256_set1_epi8(3));
        u = _mm256_or_si256(u, _mm256_slli_epi16(qh, 4));
        const __m256i s = _mm256_setr_epi32(sc[2 * c], sc[2 * c], sc[2 * c], sc[2 * c], sc[2 * c + 1], sc[2 * c + 1],
                                            sc[2 * c + 1], sc[2 * c + 1]);
        return _mm256_mullo_epi32(dot4(act_offset(a, m, k, 5), u, x), s);
    }
    const int qs_off = dt == MP_Q5_K ? 48 : 16;
    __m256i u = nibbles32(blk + qs_off + 32 * (c / 2), c & 1);
    if (dt == MP_Q5_K) {
        const __m256i qh = _mm256_and_si256(_mm256_srli_epi16(_mm256_loadu_si256((const __m256i *)(blk + 16)), c),
                                            _mm256_set1_epi8(1));
        u = _mm256_or_si256(u, _mm256_slli_epi16(qh, 4));
    }
    return _mm256_mullo_epi32(dot4(_mm256_setzero_si256(), u, x), _mm256_set1_epi32(sc[c]));
}

/* acc after 256-value super-block b (byte offset o) of 8 rows meets activation row m. */
static inline __m256 blockk_update(mp_dtype dt, const uint8_t *const rows[8], size_t o, const mp_q8_act *a, int64_t m,
                                   int64_t b, __m256 acc) {
    const int64_t nb = a->K / 256;
    const size_t bb = (size_t)mp_dtype_info(dt)->type_size;
    for (int r = 0; r < 8; r++)
        for (size_t l = 0; l < bb; l += 64) _mm_prefetch((const char *)(rows[r] + o + bb + l), _MM_HINT_T0);
    const float d = a->d[m * nb + b];
    __m256i z[8];
    int32_t smin[8];
    for (int r = 0; r < 8; r++) {
        const uint8_t *blk = rows[r] + o;
        int32_t sc[16];
        smin[r] = 0;
        if (dt == MP_Q6_K) {
            for (int g = 0; g < 16; g++) sc[g] = ((const mp_block_q6_K *)(const void *)blk)->scales[g];
        } else {
            const int32_t *s32 = a->s32 + m * (a->K / 32) + b * 8;
            uint8_t scm[16];
            mp_k4_unpack_scales(blk + 4, scm);
            for (int j = 0; j < 8; j++) {
                sc[j] = scm[j];
                smin[r] += scm[8 + j] * s32[j];
            }
        }
        __m256i t = _mm256_setzero_si256();
        for (int c = 0; c < 8; c++) t = _mm256_add_epi32(t, kchunk_lanes(dt, blk, c, sc, a, m, b * 256 + 32 * c));
        z[r] = t;
    }
    if (dt == MP_Q6_K) {
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(reduce8(z)), _mm256_mul_ps(f16x8(rows, o + 208), _mm256_set1_ps(d)), acc);
    } else {
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(reduce8(z)), _mm256_mul_ps(f16x8(rows, o), _mm256_set1_ps(d)), acc);
        acc = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(_mm256_loadu_si256((const __m256i *)smin)),
                               _mm256_mul_ps(f16x8(rows, o + 2), _mm256_set1_ps(d)), acc);
    }
    return acc;
}

/* Y[m][n0 .. n0+nr) for m in [m0, m1), 8 rows at a time. */
static void kern(mp_dtype dt, const uint8_t *W, size_t row_bytes, int64_t n0, int nr, const mp_q8_act *a, int64_t m0,
                 int64_t m1, float *Y, int64_t ldy, const float *bias) {
    const size_t bb = (size_t)mp_dtype_info(dt)->type_size;
    const int B = a->block;
    const int64_t nb = a->K / B;
    for (int g0 = 0; g0 < nr; g0 += 8) {
        const int gr = nr - g0 < 8 ? nr - g0 : 8;
        const uint8_t *rows[8];
        for (int r = 0; r < 8; r++) rows[r] = W + (size_t)(n0 + g0 + (r < gr ? r : 0)) * row_bytes;
        const __m256i mask = lane_mask8(gr);
        for (int64_t m = m0; m < m1; m++) {
            __m256 acc = bias ? _mm256_maskload_ps(bias + n0 + g0, mask) : _mm256_setzero_ps();
            for (int64_t b = 0; b < nb; b++)
                acc = B == 32 ? block32_update(dt, rows, (size_t)b * bb, a, m, b, acc)
                              : blockk_update(dt, rows, (size_t)b * bb, a, m, b, acc);
            _mm256_maskstore_ps(Y + m * ldy + n0 + g0, mask, acc);
        }
    }
}

mp_q8_kernel mp_q8_kernel_avx2(mp_dtype dt) {
    switch (dt) {
    case MP_Q8_0: case MP_Q4_0: case MP_Q4_1: case MP_Q5_0: case MP_Q5_1: return kern;
    case MP_Q4_K: case MP_Q5_K: case MP_Q6_K: return kern;
    default: return NULL;
    }
}
