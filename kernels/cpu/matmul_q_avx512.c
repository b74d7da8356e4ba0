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

/* Specialized per dtype (always inlined into one function each) so that the pair loops unroll and the
 * pair sums stay in registers; the block header words of the 16 rows come with one gather. */
static inline __attribute__((always_inline)) void kern_b32_impl(mp_dtype dt, const uint8_t *W, size_t row_bytes,
                                                                int64_t n0, int nr, const mp_q8_act *a, int64_t m0,
                                                                int64_t m1, float *Y, int64_t ldy, const float *bias) {
    const uint8_t *rows[16];
    const __mmask16 mask = row_group(W, row_bytes, n0, nr, rows);
    const uint8_t *base = rows[0];
    int32_t ro[16];
    for (int r = 0; r < 16; r++) ro[r] = (int32_t)(rows[r] - base);
    const __m512i roff = _mm512_loadu_si512(ro);
    const size_t bb = (size_t)mp_dtype_info(dt)->type_size;
    const int64_t nb = a->K / 32;
    const int shift = offset_shift(dt), has_min = dt == MP_Q4_1 || dt == MP_Q5_1;
    __m512 acc[MB_MAX];
    load_acc(acc, m1 - m0, bias, n0, mask);
    for (int64_t b = 0; b < nb; b++) {
        const size_t o = (size_t)b * bb;
        /* 16 interleaved row streams: prefetch each a few blocks ahead */
        /* the same block of the next group's 16 rows (the next call on this thread; bb <= 64 so every line
         * of it is touched): 16 interleaved streams defeat the hardware prefetchers, and prefetching a fixed
         * distance down each row instead was 1.5x slower for single-sequence Q8_0 decode */
        _Pragma("GCC unroll 16") for (int r = 0; r < 16; r++) _mm_prefetch((const char *)(rows[r] + 16 * row_bytes + o), _MM_HINT_T0);
        const __m512i dm = _mm512_i32gather_epi32(roff, (const void *)(base + o), 1);
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

#define KERN_B32(name, DT)                                                                                      \
    static void name(mp_dtype dt, const uint8_t *W, size_t row_bytes, int64_t n0, int nr, const mp_q8_act *a,      \
                     int64_t m0, int64_t m1, float *Y, int64_t ldy, const float *bias) {                          \
        (void)dt;                                                                                                \
        kern_b32_impl(DT, W, row_bytes, n0, nr, a, m0, m1, Y, ldy, bias);                                        \
    }
KERN_B32(kern_q8_0, MP_Q8_0)
KERN_B32(kern_q4_0, MP_Q4_0)
KERN_B32(kern_q4_1, MP_Q4_1)
KERN_B32(kern_q5_0, MP_Q5_0)
KERN_B32(kern_q5_1, MP_Q5_1)

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
        for (int r = 0; r < 16; r++)
            for (size_t l = 0; l < bb; l += 64) _mm_prefetch((const char *)(rows[r] + 16 * row_bytes + o + l), _MM_HINT_T0); /* as in kern_b32 */
        __m512 dw, dminw = _mm512_setzero_ps();
        if (dt == MP_Q6_K) {
            dw = f16_hi(gather_rows(rows, o + 206)); /* d: the last 2 bytes of the block */
            __m512i S[16];
            for (int r = 0; r < 16; r++)
                S[r] = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)((const mp_block_q6_K *)(const void *)(rows[r] + o))->scales));
            for (int c = 0; c < 8; c++) {
                const int h = c / 4, qt = c % 4;
                /* lanes 0-3: group 2c of row p, 4-7: group 2c+1, 8-15: the same of row p+8 */
                const __m512i idx = _mm512_setr_epi32(2 * c, 2 * c, 2 * c, 2 * c, 2 * c + 1, 2 * c + 1, 2 * c + 1, 2 * c + 1,
                                                      16 + 2 * c, 16 + 2 * c, 16 + 2 * c, 16 + 2 * c, 17 + 2 * c,
                                                      17 + 2 * c, 17 + 2 * c, 17 + 2 * c);
                for (int p = 0; p < 8; p++) {
                    const mp_block_q6_K *lo = (const void *)(rows[p] + o), *hi = (const void *)(rows[p + 8] + o);
                    __m512i nib = pair_nibbles32(lo->ql + 64 * h + 32 * (qt & 1), hi->ql + 64 * h + 32 * (qt & 1), qt >> 1);
                    __m512i qh = pair256(lo->qh + 32 * h, hi->qh + 32 * h);
                    qh = _mm512_and_si512(_mm512_srli_epi16(qh, (unsigned)(2 * qt)), _mm512_set1_epi8(3));
                    wq[c][p] = _mm512_or_si512(nib, _mm512_slli_epi16(qh, 4));
                    sv[c][p] = _mm512_permutex2var_epi32(S[p], idx, S[p + 8]);
                }
            }
        } else { /* q4_K, q5_K: d, dmin, scales[12] first */
            const __m512i dd = gather_rows(rows, o);
            dw = f16_lo(dd);
            dminw = f16_hi(dd);
            _Alignas(64) uint8_t scm[16][16]; /* per row: 8 scales, 8 mins */
            for (int r = 0; r < 16; r++) mp_k4_unpack_scales(rows[r] + o + 4, scm[r]);
            for (int j = 0; j < 8; j++) {
                int32_t col[16];
                for (int r = 0; r < 16; r++) col[r] = scm[r][8 + j];
                mins[j] = _mm512_loadu_si512(col);
            }
            __m512i S[8]; /* lanes 0-7: the 8 scales of row p, 8-15: of row p+8 */
            for (int p = 0; p < 8; p++) {
                uint64_t lo, hi;
                memcpy(&lo, scm[p], 8);
                memcpy(&hi, scm[p + 8], 8);
                S[p] = _mm512_cvtepu8_epi32(_mm_set_epi64x((long long)hi, (long long)lo));
            }
            const int qs_off = dt == MP_Q5_K ? 48 : 16;
            for (int c = 0; c < 8; c++) {
                const __m512i idx = _mm512_setr_epi32(c, c, c, c, c, c, c, c, 8 + c, 8 + c, 8 + c, 8 + c, 8 + c, 8 + c, 8 + c, 8 + c);
                for (int p = 0; p < 8; p++) {
                    const uint8_t *lo = rows[p] + o, *hi = rows[p + 8] + o;
                    __m512i v = pair_nibbles32(lo + qs_off + 32 * (c / 2), hi + qs_off + 32 * (c / 2), c & 1);
                    if (dt == MP_Q5_K) {
                        __m512i qh = _mm512_and_si512(_mm512_srli_epi16(pair256(lo + 16, hi + 16), (unsigned)c), _mm512_set1_epi8(1));
                        v = _mm512_or_si512(v, _mm512_slli_epi16(qh, 4));
                    }
                    wq[c][p] = v;
                    sv[c][p] = _mm512_permutexvar_epi32(idx, S[p]);
                }
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
    case MP_Q8_0: return kern_q8_0;
    case MP_Q4_0: return kern_q4_0;
    case MP_Q4_1: return kern_q4_1;
    case MP_Q5_0: return kern_q5_0;
    case MP_Q5_1: return kern_q5_1;
    case MP_Q4_K: case MP_Q5_K: case MP_Q6_K: return kern_k;
    default: return NULL;
    }
}

/* ---------------------------------------------------------------- packed panels (large M) */

#define PMR 4 /* activation rows per panel-kernel call */
#define UNROLL _Pragma("GCC unroll 16")

/* acc[i][h] += one block's exact integer sums for the PMR activation rows x[i] (32 output columns as two
 * zmm), the activations broadcast 4 bytes at a time. steps: k4 steps in the block; init: start values. */
static inline __attribute__((always_inline)) void panel_dots(const uint8_t *q, const int8_t *const x[PMR], int steps,
                                                             __m512i t[PMR][2]) {
    for (int s = 0; s < steps; s++) {
        const __m512i w0 = _mm512_load_si512(q + s * 128), w1 = _mm512_load_si512(q + s * 128 + 64);
        UNROLL for (int i = 0; i < PMR; i++) {
            int32_t v;
            memcpy(&v, x[i] + 4 * s, 4);
            const __m512i xb = _mm512_set1_epi32(v);
            t[i][0] = _mm512_dpbusd_epi32(t[i][0], w0, xb);
            t[i][1] = _mm512_dpbusd_epi32(t[i][1], w1, xb);
        }
    }
}

/* Y[m0 .. m0+mr)[n0 .. n0+nr) from a packed panel; same float epilogue as the row kernels. */
static void panel_kern(mp_dtype dt, const mp_q8_panel *p, const mp_q8_act *a, int64_t m0, int mr, float *Y,
                       int64_t ldy, int64_t n0, int nr, const float *bias) {
    const int B = a->block;
    const int64_t nb = a->K / B;
    const int off = mp_q8_weight_offset(dt);
    const int has_min = dt == MP_Q4_1 || dt == MP_Q5_1, kq = B == 256, kmins = kq && dt != MP_Q6_K;
    const __mmask16 k0 = nr >= 16 ? 0xFFFF : (__mmask16)((1u << nr) - 1);
    const __mmask16 k1 = nr <= 16 ? 0 : nr >= 32 ? 0xFFFF : (__mmask16)((1u << (nr - 16)) - 1);
    int64_t mi[PMR];
    const int8_t *xrow[PMR];
    UNROLL for (int i = 0; i < PMR; i++) {
        mi[i] = m0 + (i < mr ? i : 0);
        xrow[i] = a->qs + mi[i] * a->K;
    }
    __m512 acc[PMR][2];
    const __m512 b0 = bias ? _mm512_maskz_loadu_ps(k0, bias + n0) : _mm512_setzero_ps();
    const __m512 b1 = bias ? _mm512_maskz_loadu_ps(k1, bias + n0 + 16) : _mm512_setzero_ps();
    UNROLL for (int i = 0; i < PMR; i++) { acc[i][0] = b0; acc[i][1] = b1; }
    for (int64_t b = 0; b < nb; b++) {
        __m512i is[PMR][2];
        const int8_t *x[PMR];
        if (!kq) {
            UNROLL for (int i = 0; i < PMR; i++) {
                is[i][0] = is[i][1] = _mm512_set1_epi32(-off * a->s32[mi[i] * nb + b]);
                x[i] = xrow[i] + b * 32;
            }
            panel_dots(p->q + (size_t)b * 8 * MP_Q8_NP * 4, x, 8, is);
        } else {
            UNROLL for (int i = 0; i < PMR; i++) is[i][0] = is[i][1] = _mm512_setzero_si512();
            const int groups = dt == MP_Q6_K ? 16 : 8, steps = 64 / groups; /* k4 steps per scale group */
            for (int g = 0; g < groups; g++) {
                __m512i t[PMR][2];
                UNROLL for (int i = 0; i < PMR; i++) {
                    x[i] = xrow[i] + b * 256 + g * steps * 4;
                    if (off) {
                        const int32_t *s4 = a->s4 + mi[i] * (a->K / 4) + (b * 256 + g * 16) / 4;
                        t[i][0] = t[i][1] = _mm512_set1_epi32(-off * (s4[0] + s4[1] + s4[2] + s4[3]));
                    } else {
                        t[i][0] = t[i][1] = _mm512_setzero_si512();
                    }
                }
                const uint8_t *q = p->q + ((size_t)b * 64 + (size_t)g * steps) * MP_Q8_NP * 4;
                if (steps == 8) panel_dots(q, x, 8, t);
                else panel_dots(q, x, 4, t);
                const __m512i s0 = _mm512_load_si512(p->sc + (b * 16 + g) * MP_Q8_NP);
                const __m512i s1 = _mm512_load_si512(p->sc + (b * 16 + g) * MP_Q8_NP + 16);
                UNROLL for (int i = 0; i < PMR; i++) {
                    is[i][0] = _mm512_add_epi32(is[i][0], _mm512_mullo_epi32(t[i][0], s0));
                    is[i][1] = _mm512_add_epi32(is[i][1], _mm512_mullo_epi32(t[i][1], s1));
                }
            }
        }
        const __m512 d0 = _mm512_load_ps(p->d + b * MP_Q8_NP), d1 = _mm512_load_ps(p->d + b * MP_Q8_NP + 16);
        UNROLL for (int i = 0; i < PMR; i++) {
            const float d = a->d[mi[i] * nb + b];
            const __m512 sd = _mm512_set1_ps(d);
            acc[i][0] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(is[i][0]), _mm512_mul_ps(d0, sd), acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(is[i][1]), _mm512_mul_ps(d1, sd), acc[i][1]);
            if (has_min) {
                const __m512 sm = _mm512_set1_ps(d * (float)a->s32[mi[i] * nb + b]);
                acc[i][0] = _mm512_fmadd_ps(_mm512_load_ps(p->m + b * MP_Q8_NP), sm, acc[i][0]);
                acc[i][1] = _mm512_fmadd_ps(_mm512_load_ps(p->m + b * MP_Q8_NP + 16), sm, acc[i][1]);
            } else if (kmins) {
                /* mins: sum_j m_j * s32_j with int16 pairs (vpdpwssd) */
                const int32_t *s32 = a->s32 + mi[i] * (a->K / 32) + b * 8;
                __m512i sm0 = _mm512_setzero_si512(), sm1 = _mm512_setzero_si512();
                for (int j2 = 0; j2 < 4; j2++) {
                    const int32_t pair = (int32_t)(((uint32_t)(uint16_t)s32[2 * j2 + 1] << 16) | (uint16_t)s32[2 * j2]);
                    const __m512i xs = _mm512_set1_epi32(pair);
                    const int16_t *mn = p->mins + (b * 4 + j2) * MP_Q8_NP * 2;
                    sm0 = _mm512_dpwssd_epi32(sm0, _mm512_load_si512(mn), xs);
                    sm1 = _mm512_dpwssd_epi32(sm1, _mm512_load_si512(mn + 32), xs);
                }
                acc[i][0] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(sm0), _mm512_mul_ps(_mm512_load_ps(p->m + b * MP_Q8_NP), sd), acc[i][0]);
                acc[i][1] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(sm1), _mm512_mul_ps(_mm512_load_ps(p->m + b * MP_Q8_NP + 16), sd), acc[i][1]);
            }
        }
    }
    for (int i = 0; i < mr; i++) {
        _mm512_mask_storeu_ps(Y + (m0 + i) * ldy + n0, k0, acc[i][0]);
        _mm512_mask_storeu_ps(Y + (m0 + i) * ldy + n0 + 16, k1, acc[i][1]);
    }
}

mp_q8_panel_kernel mp_q8_panel_kernel_avx512(mp_dtype dt) { return mp_q8_act_block(dt) ? panel_kern : NULL; }
