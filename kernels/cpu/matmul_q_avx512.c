/* matmul_q_avx512.c — AVX-512 VNNI kernels of the quantized-activation matmul (arithmetic defined in
 * matmul_q.c). 16 weight rows are processed together as 8 pairs: a zmm holds 32 unsigned quants of row p
 * in its low half and of row p+8 in its high half, vpdpbusd multiplies them with the (broadcast) 8-bit
 * activations, and a transposing reduction turns the 8 pair sums into the 16 exact integer block sums,
 * whose float epilogue (scale, fma) is one vector op per block for all 16 rows. The weight unpacking is
 * done once per block and reused by every activation row. */
#include "kernels/cpu/matmul_q.h"
#include "kernels/cpu/quant_impl.h"

#include <immintrin.h>

#define MB_MAX 16 /* activation rows per call (the driver's chunk) */

/* z[p] (pair layout: lanes 0-7 row p, 8-15 row p+8, 8 partial sums each) -> the 16 row sums in order. */
static inline __m512i reduce_pairs(const __m512i z[8]) {
    __m512i t[4], u[2];
    for (int i = 0; i < 4; i++)
        t[i] = _mm512_add_epi32(_mm512_unpacklo_epi32(z[2 * i], z[2 * i + 1]), _mm512_unpackhi_epi32(z[2 * i], z[2 * i + 1]));
    for (int i = 0; i < 2; i++)
        u[i] = _mm512_add_epi32(_mm512_unpacklo_epi64(t[2 * i], t[2 * i + 1]), _mm512_unpackhi_epi64(t[2 * i], t[2 * i + 1]));
    /* u[0] 128-bit lanes: rows 0-3 (a), rows 0-3 (b), rows 8-11 (a), rows 8-11 (b); u[1]: rows 4-7, 12-15 */
    __m512i a = _mm512_shuffle_i32x4(u[0], u[1], _MM_SHUFFLE(2, 0, 2, 0));
    __m512i b = _mm512_shuffle_i32x4(u[0], u[1], _MM_SHUFFLE(3, 1, 3, 1));
    __m512i s = _mm512_add_epi32(a, b); /* rows 0-3, 8-11, 4-7, 12-15 */
    return _mm512_shuffle_i32x4(s, s, _MM_SHUFFLE(3, 1, 2, 0));
}

static inline __m512i pair256(const uint8_t *lo, const uint8_t *hi) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)lo)),
                              _mm256_loadu_si256((const __m256i *)hi), 1);
}

/* 16 bytes of nibbles per row -> 32 unsigned quants (low nibbles first), rows p and p+8. */
static inline __m512i pair_nibbles16(const uint8_t *lo, const uint8_t *hi) {
    __m256i t = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)lo)),
                                        _mm_loadu_si128((const __m128i *)hi), 1);
    __m512i v = _mm512_castsi256_si512(t);
    v = _mm512_shuffle_i64x2(v, v, _MM_SHUFFLE(1, 1, 0, 0));
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    return _mm512_mask_blend_epi64(0xCC, _mm512_and_si512(v, m4), _mm512_and_si512(_mm512_srli_epi16(v, 4), m4));
}

/* 32 bytes of nibbles per row, low (hi4 = 0) or high nibbles, rows p and p+8. */
static inline __m512i pair_nibbles32(const uint8_t *lo, const uint8_t *hi, int hi4) {
    __m512i v = pair256(lo, hi);
    if (hi4) v = _mm512_srli_epi16(v, 4);
    return _mm512_and_si512(v, _mm512_set1_epi8(0x0F));
}

static inline __m512i act_chunk(const mp_q8_act *a, int64_t m, int64_t k) {
    return _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(a->qs + m * a->K + k)));
}

/* -off * (sums of 4 activations) for the 32 values at k, both halves: the vpdpbusd start value that
 * turns sum(u * q) into sum((u - off) * q). */
static inline __m512i act_offset(const mp_q8_act *a, int64_t m, int64_t k, int shift) {
    __m512i s = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(a->s4 + m * (a->K / 4) + k / 4)));
    return _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(s, (unsigned)shift));
}

/* The 32-bit word at byte `off` of block b of each of the 16 rows (rows past nr repeat row 0). */
static inline __m512i gather_rows(const uint8_t *const rows[16], size_t off) {
    int32_t v[16];
    for (int r = 0; r < 16; r++) memcpy(&v[r], rows[r] + off, 4);
    return _mm512_loadu_si512(v);
}

static inline __m512 f16_lo(__m512i w) { return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(w)); }
static inline __m512 f16_hi(__m512i w) { return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(w, 16))); }

static inline void load_acc(__m512 *acc, int64_t mcount, const float *bias, int64_t n0, __mmask16 mask) {
    const __m512 init = bias ? _mm512_maskz_loadu_ps(mask, bias + n0) : _mm512_setzero_ps();
    for (int64_t i = 0; i < mcount; i++) acc[i] = init;
}

static inline void store_acc(const __m512 *acc, int64_t m0, int64_t m1, float *Y, int64_t ldy, int64_t n0, __mmask16 mask) {
    for (int64_t m = m0; m < m1; m++) _mm512_mask_storeu_ps(Y + m * ldy + n0, mask, acc[m - m0]);
}

/* Pointers to the 16 rows of a group (rows past nr repeat row n0; their results are masked off). */
static inline __mmask16 row_group(const uint8_t *W, size_t row_bytes, int64_t n0, int nr, const uint8_t *rows[16]) {
    for (int r = 0; r < 16; r++) rows[r] = W + (size_t)(n0 + (r < nr ? r : 0)) * row_bytes;
    return (__mmask16)((1u << nr) - 1);
}

static inline int offset_shift(mp_dtype dt) {
    switch (dt) {
    case MP_Q8_0: return 7;
    case MP_Q4_0: return 3;
    case MP_Q5_0: return 4;
    case MP_Q6_K: return 5;
    default: return -1;
    }
}

/* ---------------------------------------------------------------- 32-value blocks */

static void kern_b32(mp_dtype dt, const uint8_t *W, size_t row_bytes, int64_t n0, int nr, const mp_q8_act *a,
                     int64_t m0, int64_t m1, float *Y, int64_t ldy, const float *bias) {
    const uint8_t *rows[16];
    const __mmask16 mask = row_group(W, row_bytes, n0, nr, rows);
    const size_t bb = (size_t)mp_dtype_info(dt)->type_size;
    const int64_t nb = a->K / 32;
    const int shift = offset_shift(dt), has_min = dt == MP_Q4_1 || dt == MP_Q5_1;
    __m512 acc[MB_MAX];
    load_acc(acc, m1 - m0, bias, n0, mask);
    for (int64_t b = 0; b < nb; b++) {
        const size_t o = (size_t)b * bb;
        const __m512i dm = gather_rows(rows, o);
        const __m512 dw = f16_lo(dm), mw = has_min ? f16_hi(dm) : _mm512_setzero_ps();
        __m512i w[8];
        for (int p = 0; p < 8; p++) {
            const uint8_t *lo = rows[p] + o, *hi = rows[p + 8] + o;
            switch (dt) {
            case MP_Q8_0:
                w[p] = _mm512_xor_si512(pair256(lo + 2, hi + 2), _mm512_set1_epi8((char)0x80));
                break;
            case MP_Q4_0: case MP_Q4_1: {
                const int q = dt == MP_Q4_0 ? 2 : 4;
                w[p] = pair_nibbles16(lo + q, hi + q);
            } break;
            default: { /* q5_0, q5_1 */
                const int h = dt == MP_Q5_0 ? 2 : 4;
                uint32_t hl, hh;
                memcpy(&hl, lo + h, 4);
                memcpy(&hh, hi + h, 4);
                __m512i v = pair_nibbles16(lo + h + 4, hi + h + 4);
                w[p] = _mm512_mask_add_epi8(v, (__mmask64)hl | ((__mmask64)hh << 32), v, _mm512_set1_epi8(16));
            } break;
            }
        }
        for (int64_t m = m0; m < m1; m++) {
            const __m512i x = act_chunk(a, m, b * 32);
            const __m512i init = shift >= 0 ? act_offset(a, m, b * 32, shift) : _mm512_setzero_si512();
            __m512i z[8];
            for (int p = 0; p < 8; p++) z[p] = _mm512_dpbusd_epi32(init, w[p], x);
            const float d = a->d[m * nb + b];
            __m512 *ac = &acc[m - m0];
            *ac = _mm512_fmadd_ps(_mm512_cvtepi32_ps(reduce_pairs(z)), _mm512_mul_ps(dw, _mm512_set1_ps(d)), *ac);
            if (has_min) *ac = _mm512_fmadd_ps(mw, _mm512_set1_ps(d * (float)a->s32[m * nb + b]), *ac);
        }
    }
    store_acc(acc, m0, m1, Y, ldy, n0, mask);
}

/* ---------------------------------------------------------------- 256-value super-blocks */

static void kern_k(mp_dtype dt, const uint8_t *W, size_t row_bytes, int64_t n0, int nr, const mp_q8_act *a,
                   int64_t m0, int64_t m1, float *Y, int64_t ldy, const float *bias) {
    const uint8_t *rows[16];
    const __mmask16 mask = row_group(W, row_bytes, n0, nr, rows);
    const size_t bb = (size_t)mp_dtype_info(dt)->type_size;
    const int64_t nb = a->K / 256;
    const int shift = offset_shift(dt);
    __m512 acc[MB_MAX];
    __m512i wq[8][8], sv[8][8], mins[8]; /* [chunk][pair] unsigned quants and scale multipliers */
    load_acc(acc, m1 - m0, bias, n0, mask);
    for (int64_t b = 0; b < nb; b++) {
        const size_t o = (size_t)b * bb;
        __m512 dw, dminw = _mm512_setzero_ps();
        if (dt == MP_Q6_K) {
            dw = f16_hi(gather_rows(rows, o + 206)); /* d: the last 2 bytes of the block */
            int32_t sc[16][16];
            for (int r = 0; r < 16; r++)
                for (int g = 0; g < 16; g++) sc[r][g] = ((const mp_block_q6_K *)(const void *)(rows[r] + o))->scales[g];
            for (int c = 0; c < 8; c++) {
                const int h = c / 4, qt = c % 4;
                for (int p = 0; p < 8; p++) {
                    const mp_block_q6_K *lo = (const void *)(rows[p] + o), *hi = (const void *)(rows[p + 8] + o);
                    __m512i nib = pair_nibbles32(lo->ql + 64 * h + 32 * (qt & 1), hi->ql + 64 * h + 32 * (qt & 1), qt >> 1);
                    __m512i qh = pair256(lo->qh + 32 * h, hi->qh + 32 * h);
                    qh = _mm512_and_si512(_mm512_srli_epi16(qh, (unsigned)(2 * qt)), _mm512_set1_epi8(3));
                    wq[c][p] = _mm512_or_si512(nib, _mm512_slli_epi16(qh, 4));
                    __m512i s = _mm512_set1_epi32(sc[p][2 * c]);
                    s = _mm512_mask_set1_epi32(s, 0x00F0, sc[p][2 * c + 1]);
                    s = _mm512_mask_set1_epi32(s, 0x0F00, sc[p + 8][2 * c]);
                    sv[c][p] = _mm512_mask_set1_epi32(s, 0xF000, sc[p + 8][2 * c + 1]);
                }
            }
        } else { /* q4_K, q5_K: d, dmin, scales[12] first */
            const __m512i dd = gather_rows(rows, o);
            dw = f16_lo(dd);
            dminw = f16_hi(dd);
            int32_t sc[16][8], mn[16][8];
            for (int r = 0; r < 16; r++)
                for (int j = 0; j < 8; j++) {
                    uint8_t s, m;
                    mp_k4_scale_min(j, rows[r] + o + 4, &s, &m);
                    sc[r][j] = s;
                    mn[r][j] = m;
                }
            for (int j = 0; j < 8; j++) {
                int32_t col[16];
                for (int r = 0; r < 16; r++) col[r] = mn[r][j];
                mins[j] = _mm512_loadu_si512(col);
            }
            const int qs_off = dt == MP_Q5_K ? 48 : 16;
            for (int c = 0; c < 8; c++)
                for (int p = 0; p < 8; p++) {
                    const uint8_t *lo = rows[p] + o, *hi = rows[p + 8] + o;
                    __m512i v = pair_nibbles32(lo + qs_off + 32 * (c / 2), hi + qs_off + 32 * (c / 2), c & 1);
                    if (dt == MP_Q5_K) {
                        __m512i qh = _mm512_and_si512(_mm512_srli_epi16(pair256(lo + 16, hi + 16), (unsigned)c), _mm512_set1_epi8(1));
                        v = _mm512_or_si512(v, _mm512_slli_epi16(qh, 4));
                    }
                    wq[c][p] = v;
                    sv[c][p] = _mm512_mask_set1_epi32(_mm512_set1_epi32(sc[p][c]), 0xFF00, sc[p + 8][c]);
                }
        }
        for (int64_t m = m0; m < m1; m++) {
            __m512i z[8];
            for (int p = 0; p < 8; p++) z[p] = _mm512_setzero_si512();
            for (int c = 0; c < 8; c++) {
                const int64_t k = b * 256 + 32 * c;
                const __m512i x = act_chunk(a, m, k);
                const __m512i init = shift >= 0 ? act_offset(a, m, k, shift) : _mm512_setzero_si512();
                for (int p = 0; p < 8; p++)
                    z[p] = _mm512_add_epi32(z[p], _mm512_mullo_epi32(_mm512_dpbusd_epi32(init, wq[c][p], x), sv[c][p]));
            }
            const float d = a->d[m * nb + b];
            __m512 *ac = &acc[m - m0];
            *ac = _mm512_fmadd_ps(_mm512_cvtepi32_ps(reduce_pairs(z)), _mm512_mul_ps(dw, _mm512_set1_ps(d)), *ac);
            if (dt != MP_Q6_K) {
                const int32_t *s32 = a->s32 + m * (a->K / 32) + b * 8;
                __m512i smin = _mm512_setzero_si512();
                for (int j = 0; j < 8; j++) smin = _mm512_add_epi32(smin, _mm512_mullo_epi32(mins[j], _mm512_set1_epi32(s32[j])));
                *ac = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(smin), _mm512_mul_ps(dminw, _mm512_set1_ps(d)), *ac);
            }
        }
    }
    store_acc(acc, m0, m1, Y, ldy, n0, mask);
}

mp_q8_kernel mp_q8_kernel_avx512(mp_dtype dt) {
    switch (dt) {
    case MP_Q8_0: case MP_Q4_0: case MP_Q4_1: case MP_Q5_0: case MP_Q5_1: return kern_b32;
    case MP_Q4_K: case MP_Q5_K: case MP_Q6_K: return kern_k;
    default: return NULL;
    }
}
