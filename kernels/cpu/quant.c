/* quant.c — GGUF block formats: scalar dequantize/quantize for every dtype of the kernel layer.
 *
 * The block layouts are ggml's (kernels/mp.h). The quantizers follow llama.cpp's quantize_row_*_ref
 * step by step (same float operations in the same order), so a tensor quantized here is bit-identical
 * to one written by llama.cpp's reference quantizers (compiled without FP contraction).
 *
 * mp_ref_dequantize_row / mp_ref_quantize_row are the scalar twins; mp_dequantize_row picks a SIMD
 * path (quant_avx2.c / quant_avx512.c) for the formats it has one for. */
#include "kernels/cpu/quant_impl.h"
#include "kernels/cpu/ref.h"
#include "kernels/ops.h"

#include <float.h>
#include <math.h>

#define MAXI(a, b) ((a) > (b) ? (a) : (b))
#define MINI(a, b) ((a) < (b) ? (a) : (b))

#define GROUP_MAX_EPS 1e-15f

/* ================================================================ dequantize */

static void deq_q4_0(const mp_block_q4_0 *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const float d = mp_f16_to_f32(x[i].d);
        for (int j = 0; j < 16; j++) {
            y[i * 32 + j] = ((x[i].qs[j] & 0x0F) - 8) * d;
            y[i * 32 + j + 16] = ((x[i].qs[j] >> 4) - 8) * d;
        }
    }
}

static void deq_q4_1(const mp_block_q4_1 *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const float d = mp_f16_to_f32(x[i].d), m = mp_f16_to_f32(x[i].m);
        for (int j = 0; j < 16; j++) {
            y[i * 32 + j] = (x[i].qs[j] & 0x0F) * d + m;
            y[i * 32 + j + 16] = (x[i].qs[j] >> 4) * d + m;
        }
    }
}

static void deq_q5_0(const mp_block_q5_0 *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const float d = mp_f16_to_f32(x[i].d);
        uint32_t qh;
        memcpy(&qh, x[i].qh, 4);
        for (int j = 0; j < 16; j++) {
            int h0 = (qh >> j) & 1, h1 = (qh >> (j + 16)) & 1;
            y[i * 32 + j] = (((x[i].qs[j] & 0x0F) | (h0 << 4)) - 16) * d;
            y[i * 32 + j + 16] = (((x[i].qs[j] >> 4) | (h1 << 4)) - 16) * d;
        }
    }
}

static void deq_q5_1(const mp_block_q5_1 *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const float d = mp_f16_to_f32(x[i].d), m = mp_f16_to_f32(x[i].m);
        uint32_t qh;
        memcpy(&qh, x[i].qh, 4);
        for (int j = 0; j < 16; j++) {
            int h0 = (qh >> j) & 1, h1 = (qh >> (j + 16)) & 1;
            y[i * 32 + j] = ((x[i].qs[j] & 0x0F) | (h0 << 4)) * d + m;
            y[i * 32 + j + 16] = ((x[i].qs[j] >> 4) | (h1 << 4)) * d + m;
        }
    }
}

static void deq_q8_0(const mp_block_q8_0 *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const float d = mp_f16_to_f32(x[i].d);
        for (int j = 0; j < 32; j++) y[i * 32 + j] = x[i].qs[j] * d;
    }
}

static void deq_q8_1(const mp_block_q8_1 *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const float d = mp_f16_to_f32(x[i].d);
        for (int j = 0; j < 32; j++) y[i * 32 + j] = x[i].qs[j] * d;
    }
}

static void deq_q2_K(const mp_block_q2_K *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const float d = mp_f16_to_f32(x[i].d), dmin = mp_f16_to_f32(x[i].dmin);
        const uint8_t *q = x[i].qs;
        int is = 0;
        for (int n = 0; n < MP_QK_K; n += 128) {
            for (int shift = 0; shift < 8; shift += 2) {
                for (int half = 0; half < 2; half++) {
                    uint8_t sc = x[i].scales[is++];
                    const float dl = d * (sc & 0xF), ml = dmin * (sc >> 4);
                    for (int l = 0; l < 16; l++) *y++ = dl * ((q[l + 16 * half] >> shift) & 3) - ml;
                }
            }
            q += 32;
        }
    }
}

/* The 16 6-bit signed scales of a q3_K block (values 0..63, minus 32 by the caller). */
void mp_q3_K_scales(const uint8_t *s12, int8_t out[16]) {
    for (int j = 0; j < 16; j++) {
        int lo = j < 8 ? (s12[j] & 0xF) : (s12[j - 8] >> 4);
        int hi = (s12[8 + j % 4] >> (2 * (j / 4))) & 3;
        out[j] = (int8_t)((lo | (hi << 4)) - 32);
    }
}

static void deq_q3_K(const mp_block_q3_K *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const float d_all = mp_f16_to_f32(x[i].d);
        int8_t sc[16];
        mp_q3_K_scales(x[i].scales, sc);
        const uint8_t *q = x[i].qs, *hm = x[i].hmask;
        uint8_t m = 1;
        int is = 0;
        for (int n = 0; n < MP_QK_K; n += 128) {
            for (int shift = 0; shift < 8; shift += 2) {
                for (int half = 0; half < 2; half++) {
                    const float dl = d_all * sc[is++];
                    for (int l = 0; l < 16; l++) {
                        int v = ((q[l + 16 * half] >> shift) & 3) - ((hm[l + 16 * half] & m) ? 0 : 4);
                        *y++ = dl * v;
                    }
                }
                m <<= 1;
            }
            q += 32;
        }
    }
}

void mp_k4_scale_min(int j, const uint8_t *q, uint8_t *d, uint8_t *m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

/* One q4_K (qh == NULL) or q5_K super-block: 8 sub-blocks of 32, y = d*sc*q - dmin*m. */
static void deq_k45_block(const uint8_t *scales, float d, float dmin, const uint8_t *ql, const uint8_t *qh, float *y) {
    uint8_t u1 = 1, u2 = 2;
    for (int j = 0; j < 4; j++) {
        uint8_t sc, m;
        mp_k4_scale_min(2 * j, scales, &sc, &m);
        const float d1 = d * sc, m1 = dmin * m;
        mp_k4_scale_min(2 * j + 1, scales, &sc, &m);
        const float d2 = d * sc, m2 = dmin * m;
        for (int l = 0; l < 32; l++) *y++ = d1 * ((ql[l] & 0xF) + (qh && (qh[l] & u1) ? 16 : 0)) - m1;
        for (int l = 0; l < 32; l++) *y++ = d2 * ((ql[l] >> 4) + (qh && (qh[l] & u2) ? 16 : 0)) - m2;
        ql += 32;
        u1 <<= 2;
        u2 <<= 2;
    }
}

static void deq_q4_K(const mp_block_q4_K *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++)
        deq_k45_block(x[i].scales, mp_f16_to_f32(x[i].d), mp_f16_to_f32(x[i].dmin), x[i].qs, NULL, y + i * MP_QK_K);
}

static void deq_q5_K(const mp_block_q5_K *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++)
        deq_k45_block(x[i].scales, mp_f16_to_f32(x[i].d), mp_f16_to_f32(x[i].dmin), x[i].qs, x[i].qh,
                      y + i * MP_QK_K);
}

static void deq_q6_K(const mp_block_q6_K *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const float d = mp_f16_to_f32(x[i].d);
        const uint8_t *ql = x[i].ql, *qh = x[i].qh;
        const int8_t *sc = x[i].scales;
        for (int n = 0; n < MP_QK_K; n += 128) {
            for (int l = 0; l < 32; l++) {
                int is = l / 16;
                int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                y[l] = d * sc[is] * q1;
                y[l + 32] = d * sc[is + 2] * q2;
                y[l + 64] = d * sc[is + 4] * q3;
                y[l + 96] = d * sc[is + 6] * q4;
            }
            y += 128;
            ql += 64;
            qh += 32;
            sc += 8;
        }
    }
}

static void deq_q8_K(const mp_block_q8_K *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++)
        for (int j = 0; j < MP_QK_K; j++) *y++ = x[i].d * x[i].qs[j];
}

int mp_ref_dequantize_supported(mp_dtype dt) {
    switch (dt) {
    case MP_F32: case MP_F16: case MP_BF16: case MP_F64:
    case MP_I8: case MP_I16: case MP_I32: case MP_I64:
    case MP_Q4_0: case MP_Q4_1: case MP_Q5_0: case MP_Q5_1: case MP_Q8_0: case MP_Q8_1:
    case MP_Q2_K: case MP_Q3_K: case MP_Q4_K: case MP_Q5_K: case MP_Q6_K: case MP_Q8_K:
        return 1;
    default:
        return 0;
    }
}

void mp_ref_dequantize_row(mp_dtype dt, const void *src, float *dst, int64_t n) {
    const mp_dtype_traits *tr = mp_dtype_info(dt);
    if (!tr || n <= 0) return;
    const int64_t nb = n / tr->block_size;
    switch (dt) {
    case MP_F32: memmove(dst, src, (size_t)n * 4); break;
    case MP_F16: { const mp_f16 *s = src; for (int64_t i = 0; i < n; i++) dst[i] = mp_f16_to_f32(s[i]); } break;
    case MP_BF16: { const mp_bf16 *s = src; for (int64_t i = 0; i < n; i++) dst[i] = mp_bf16_to_f32(s[i]); } break;
    case MP_F64: { const double *s = src; for (int64_t i = 0; i < n; i++) dst[i] = (float)s[i]; } break;
    case MP_I8: { const int8_t *s = src; for (int64_t i = 0; i < n; i++) dst[i] = (float)s[i]; } break;
    case MP_I16: { const int16_t *s = src; for (int64_t i = 0; i < n; i++) dst[i] = (float)s[i]; } break;
    case MP_I32: { const int32_t *s = src; for (int64_t i = 0; i < n; i++) dst[i] = (float)s[i]; } break;
    case MP_I64: { const int64_t *s = src; for (int64_t i = 0; i < n; i++) dst[i] = (float)s[i]; } break;
    case MP_Q4_0: deq_q4_0(src, dst, nb); break;
    case MP_Q4_1: deq_q4_1(src, dst, nb); break;
    case MP_Q5_0: deq_q5_0(src, dst, nb); break;
    case MP_Q5_1: deq_q5_1(src, dst, nb); break;
    case MP_Q8_0: deq_q8_0(src, dst, nb); break;
    case MP_Q8_1: deq_q8_1(src, dst, nb); break;
    case MP_Q2_K: deq_q2_K(src, dst, nb); break;
    case MP_Q3_K: deq_q3_K(src, dst, nb); break;
    case MP_Q4_K: deq_q4_K(src, dst, nb); break;
    case MP_Q5_K: deq_q5_K(src, dst, nb); break;
    case MP_Q6_K: deq_q6_K(src, dst, nb); break;
    case MP_Q8_K: deq_q8_K(src, dst, nb); break;
    default:
        for (int64_t i = 0; i < n; i++) dst[i] = NAN;
        break;
    }
}

/* ================================================================ quantize (llama.cpp *_ref) */

/* Round to nearest (ties to even) for |f| < 2^22, the way ggml does it. */
static inline int nearest_int(float f) {
    float v = f + 12582912.f;
    int i;
    memcpy(&i, &v, sizeof i);
    return (i & 0x007fffff) - 0x00400000;
}

/* The value of largest magnitude of a 32-block (the first one on ties), sign kept. */
static float signed_absmax(const float *x, int n, float *amax_out);
static float block_signed_absmax(const float *x) {
    float amax;
    return signed_absmax(x, 32, &amax);
}

static void block_min_max(const float *x, float *min_out, float *max_out) {
    float min = FLT_MAX, max = -FLT_MAX;
    for (int j = 0; j < 32; j++) {
        if (x[j] < min) min = x[j];
        if (x[j] > max) max = x[j];
    }
    *min_out = min;
    *max_out = max;
}

/* Pack 32 4-bit quants: byte j holds quant j (low nibble) and quant j+16 (high nibble). */
static void pack_q4(const uint8_t *L, uint8_t *qs) {
    for (int j = 0; j < 16; j++) qs[j] = (uint8_t)(L[j] | (L[16 + j] << 4));
}

/* Pack 32 5-bit quants: low nibbles as q4, fifth bits into the 32-bit qh (bit j = quant j). */
static void pack_q5(const uint8_t *L, uint8_t *qs, uint8_t *qh_out) {
    uint32_t qh = 0;
    for (int j = 0; j < 16; j++) {
        qs[j] = (uint8_t)((L[j] & 0x0F) | ((L[16 + j] & 0x0F) << 4));
        qh |= ((uint32_t)(L[j] & 0x10) >> 4) << j;
        qh |= ((uint32_t)(L[16 + j] & 0x10) >> 4) << (j + 16);
    }
    memcpy(qh_out, &qh, 4);
}

/* q4_0 / q5_0: d = max / -(levels/2), q = min(levels-1, (int8)(x/d + levels/2 + 0.5)). */
static mp_f16 quant_sym(const float *x, int half, uint8_t *L) {
    const float max = block_signed_absmax(x);
    const float d = max / -half;
    const float id = d ? 1.0f / d : 0.0f;
    for (int j = 0; j < 32; j++) L[j] = (uint8_t)MINI(2 * half - 1, (int8_t)(x[j] * id + (half + 0.5f)));
    return mp_f32_to_f16(d);
}

/* q4_1 / q5_1: d = (max - min) / (levels-1), m = min, q = (x - min)/d + 0.5 truncated (q4_1 clamps). */
static void quant_min(const float *x, int levels, int clamp, uint8_t *L, mp_f16 *d_out, mp_f16 *m_out) {
    float min, max;
    block_min_max(x, &min, &max);
    const float d = (max - min) / (levels - 1);
    const float id = d ? 1.0f / d : 0.0f;
    for (int j = 0; j < 32; j++) {
        const float v = (x[j] - min) * id;
        L[j] = clamp ? (uint8_t)MINI(levels - 1, (int8_t)(v + 0.5f)) : (uint8_t)(v + 0.5f);
    }
    *d_out = mp_f32_to_f16(d);
    *m_out = mp_f32_to_f16(min);
}

static void q_q4_0(const float *x, mp_block_q4_0 *y, int64_t nb) {
    uint8_t L[32];
    for (int64_t i = 0; i < nb; i++, x += 32) {
        y[i].d = quant_sym(x, 8, L);
        pack_q4(L, y[i].qs);
    }
}

static void q_q4_1(const float *x, mp_block_q4_1 *y, int64_t nb) {
    uint8_t L[32];
    for (int64_t i = 0; i < nb; i++, x += 32) {
        quant_min(x, 16, 1, L, &y[i].d, &y[i].m);
        pack_q4(L, y[i].qs);
    }
}

static void q_q5_0(const float *x, mp_block_q5_0 *y, int64_t nb) {
    uint8_t L[32];
    for (int64_t i = 0; i < nb; i++, x += 32) {
        y[i].d = quant_sym(x, 16, L);
        pack_q5(L, y[i].qs, y[i].qh);
    }
}

static void q_q5_1(const float *x, mp_block_q5_1 *y, int64_t nb) {
    uint8_t L[32];
    for (int64_t i = 0; i < nb; i++, x += 32) {
        quant_min(x, 32, 0, L, &y[i].d, &y[i].m);
        pack_q5(L, y[i].qs, y[i].qh);
    }
}

/* q8_0 / q8_1: d = amax/127, q = roundf(x/d); returns d (before fp16 rounding). */
static float quant_q8_block(const float *x, int8_t *qs) {
    float amax = 0.0f;
    for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
    const float d = amax / 127;
    const float id = d ? 1.0f / d : 0.0f;
    for (int j = 0; j < 32; j++) qs[j] = (int8_t)roundf(x[j] * id);
    return d;
}

static void q_q8_0(const float *x, mp_block_q8_0 *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += 32) y[i].d = mp_f32_to_f16(quant_q8_block(x, y[i].qs));
}

static void q_q8_1(const float *x, mp_block_q8_1 *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += 32) {
        const float d = quant_q8_block(x, y[i].qs);
        int sum = 0;
        for (int j = 0; j < 32; j++) sum += y[i].qs[j];
        y[i].d = mp_f32_to_f16(d);
        y[i].s = mp_f32_to_f16(sum * d);
    }
}

/* The value of largest magnitude of x[0..n) (first on ties), sign kept; its magnitude in *amax. */
static float signed_absmax(const float *x, int n, float *amax_out) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; i++) {
        float ax = fabsf(x[i]);
        if (ax > amax) { amax = ax; max = x[i]; }
    }
    *amax_out = amax;
    return max;
}

/* One rounding pass of make_qx/q3_quants: l = clamp(round(iscale*x), -nmax, nmax-1), stored as l + offset
 * when L is given; returns the x^2-weighted sums sum(w x l) and sum(w l^2). */
static void qx_pass(int n, int nmax, const float *x, float iscale, int8_t *L, int offset, float *sumlx_out,
                    float *suml2_out) {
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = nearest_int(iscale * x[i]);
        l = MAXI(-nmax, MINI(nmax - 1, l));
        if (L) L[i] = (int8_t)(l + offset);
        float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    *sumlx_out = sumlx;
    *suml2_out = suml2;
}

/* The first pass shared by make_qx/q3_quants (iscale = -nmax/max); 0 (L all zero) for an all-zero group. */
static int qx_start(int n, int nmax, const float *x, int8_t *L, int offset, float *max, float *sumlx, float *suml2) {
    float amax;
    *max = signed_absmax(x, n, &amax);
    if (amax < GROUP_MAX_EPS) {
        for (int i = 0; i < n; i++) L[i] = 0;
        return 0;
    }
    qx_pass(n, nmax, x, -nmax / *max, L, offset, sumlx, suml2);
    return 1;
}

/* ggml's make_qx_quants with rmse_type 1 (weights x^2) and no importance weights: signed scale search. */
static float make_qx_quants(int n, int nmax, const float *x, int8_t *L) {
    float max, sumlx, suml2;
    if (!qx_start(n, nmax, x, L, nmax, &max, &sumlx, &suml2)) return 0.f;
    float scale = suml2 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        const float iscale = -(nmax + 0.1f * is) / max;
        qx_pass(n, nmax, x, iscale, NULL, 0, &sumlx, &suml2);
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            qx_pass(n, nmax, x, iscale, L, nmax, &sumlx, &suml2);
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/* ggml's make_q3_quants with do_rmse = true. */
static float make_q3_quants(int n, int nmax, const float *x, int8_t *L) {
    float max, sumlx, suml2;
    if (!qx_start(n, nmax, x, L, 0, &max, &sumlx, &suml2)) return 0.f;
    for (int itry = 0; itry < 5; itry++) {
        int n_changed = 0;
        for (int i = 0; i < n; i++) {
            float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * L[i];
            if (slx > 0) {
                float sl2 = suml2 - w * L[i] * L[i];
                int new_l = nearest_int(x[i] * sl2 / slx);
                new_l = MAXI(-nmax, MINI(nmax - 1, new_l));
                if (new_l != L[i]) {
                    slx += w * x[i] * new_l;
                    sl2 += w * new_l * new_l;
                    if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = (int8_t)new_l;
                        sumlx = slx;
                        suml2 = sl2;
                        n_changed++;
                    }
                }
            }
        }
        if (!n_changed) break;
    }
    for (int i = 0; i < n; i++) L[i] = (int8_t)(L[i] + nmax);
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

/* ggml's make_qkx2_quants: asymmetric (scale, min) search with weights. */
static float make_qkx2_quants(int n, int nmax, const float *x, const float *weights, uint8_t *L, float *the_min,
                              uint8_t *Laux, float rmin, float rdelta, int nstep, int use_mad) {
    float min = x[0], max = x[0];
    float sum_w = weights[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        float w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        for (int i = 0; i < n; i++) L[i] = 0;
        *the_min = -min;
        return 0.f;
    }
    float iscale = nmax / (max - min);
    float scale = 1 / iscale;
    float best_error = 0;
    for (int i = 0; i < n; i++) {
        int l = nearest_int(iscale * (x[i] - min));
        L[i] = (uint8_t)MAXI(0, MINI(nmax, l));
        float diff = scale * L[i] + min - x[i];
        diff = use_mad ? fabsf(diff) : diff * diff;
        best_error += weights[i] * diff;
    }
    if (nstep < 1) {
        *the_min = -min;
        return scale;
    }
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            int l = nearest_int(iscale * (x[i] - min));
            l = MAXI(0, MINI(nmax, l));
            Laux[i] = (uint8_t)l;
            float w = weights[i];
            sum_l += w * l;
            sum_l2 += w * l * l;
            sum_xl += w * l * x[i];
        }
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float cur_error = 0;
            for (int i = 0; i < n; i++) {
                float diff = this_scale * Laux[i] + this_min - x[i];
                diff = use_mad ? fabsf(diff) : diff * diff;
                cur_error += weights[i] * diff;
            }
            if (cur_error < best_error) {
                for (int i = 0; i < n; i++) L[i] = Laux[i];
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

/* 256 2-bit quants into 64 bytes: byte j/4+l of each 128-half holds quants l, l+32, l+64, l+96. */
static void pack_2bit(const uint8_t *L, uint8_t *qs) {
    for (int j = 0; j < MP_QK_K; j += 128)
        for (int l = 0; l < 32; l++)
            qs[j / 4 + l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
}

static void q_q2_K(const float *x, mp_block_q2_K *y, int64_t nb) {
    uint8_t L[MP_QK_K], Laux[16];
    float weights[16], mins[16], scales[16];
    const float q4scale = 15.f;
    for (int64_t i = 0; i < nb; i++, x += MP_QK_K) {
        float max_scale = 0, max_min = 0;
        for (int j = 0; j < 16; j++) {
            for (int l = 0; l < 16; l++) weights[l] = fabsf(x[16 * j + l]);
            scales[j] = make_qkx2_quants(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], Laux, -0.5f, 0.1f, 15, 1);
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        if (max_scale > 0) {
            float iscale = q4scale / max_scale;
            for (int j = 0; j < 16; j++) y[i].scales[j] = (uint8_t)nearest_int(iscale * scales[j]);
            y[i].d = mp_f32_to_f16(max_scale / q4scale);
        } else {
            for (int j = 0; j < 16; j++) y[i].scales[j] = 0;
            y[i].d = mp_f32_to_f16(0.f);
        }
        if (max_min > 0) {
            float iscale = q4scale / max_min;
            for (int j = 0; j < 16; j++) y[i].scales[j] |= (uint8_t)(nearest_int(iscale * mins[j]) << 4);
            y[i].dmin = mp_f32_to_f16(max_min / q4scale);
        } else {
            y[i].dmin = mp_f32_to_f16(0.f);
        }
        for (int j = 0; j < 16; j++) {
            const float d = mp_f16_to_f32(y[i].d) * (y[i].scales[j] & 0xF);
            if (!d) continue;
            const float dm = mp_f16_to_f32(y[i].dmin) * (y[i].scales[j] >> 4);
            for (int ii = 0; ii < 16; ii++) {
                int l = nearest_int((x[16 * j + ii] + dm) / d);
                L[16 * j + ii] = (uint8_t)MAXI(0, MINI(3, l));
            }
        }
        pack_2bit((const uint8_t *)L, y[i].qs);
    }
}

static void q_q3_K(const float *x, mp_block_q3_K *y, int64_t nb) {
    int8_t L[MP_QK_K];
    float scales[16];
    for (int64_t i = 0; i < nb; i++, x += MP_QK_K) {
        float amax;
        for (int j = 0; j < 16; j++) scales[j] = make_q3_quants(16, 4, x + 16 * j, L + 16 * j);
        const float max_scale = signed_absmax(scales, 16, &amax);
        memset(y[i].scales, 0, 12);
        if (max_scale) {
            float iscale = -32.f / max_scale;
            for (int j = 0; j < 16; j++) {
                int8_t l = (int8_t)nearest_int(iscale * scales[j]);
                l = (int8_t)(MAXI(-32, MINI(31, l)) + 32);
                if (j < 8) y[i].scales[j] = l & 0xF;
                else y[i].scales[j - 8] |= (uint8_t)((l & 0xF) << 4);
                l >>= 4;
                y[i].scales[j % 4 + 8] |= (uint8_t)(l << (2 * (j / 4)));
            }
            y[i].d = mp_f32_to_f16(1 / iscale);
        } else {
            y[i].d = mp_f32_to_f16(0.f);
        }
        int8_t sc[16];
        mp_q3_K_scales(y[i].scales, sc);
        for (int j = 0; j < 16; j++) {
            float d = mp_f16_to_f32(y[i].d) * sc[j];
            if (!d) continue;
            for (int ii = 0; ii < 16; ii++) {
                int l = nearest_int(x[16 * j + ii] / d);
                L[16 * j + ii] = (int8_t)(MAXI(-4, MINI(3, l)) + 4);
            }
        }
        memset(y[i].hmask, 0, MP_QK_K / 8);
        int m = 0;
        uint8_t hm = 1;
        for (int j = 0; j < MP_QK_K; j++) {
            if (L[j] > 3) {
                y[i].hmask[m] |= hm;
                L[j] -= 4;
            }
            if (++m == MP_QK_K / 8) {
                m = 0;
                hm <<= 1;
            }
        }
        pack_2bit((const uint8_t *)L, y[i].qs);
    }
}

/* The shared scale/min search of q4_K and q5_K (they differ in nmax and the search range). */
static void k_scales_mins(const float *x, int nmax, float rmin, int nstep, uint8_t *L, uint8_t scales12[12],
                          mp_f16 *d_out, mp_f16 *dmin_out) {
    uint8_t Laux[32];
    float weights[32], mins[8], scales[8];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; j++) {
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++) sum_x2 += x[32 * j + l] * x[32 * j + l];
        float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; l++) weights[l] = av_x + fabsf(x[32 * j + l]);
        scales[j] = make_qkx2_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, rmin, 0.1f, nstep, 0);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    for (int j = 0; j < 8; j++) {
        uint8_t ls = (uint8_t)nearest_int(inv_scale * scales[j]);
        uint8_t lm = (uint8_t)nearest_int(inv_min * mins[j]);
        ls = MINI(63, ls);
        lm = MINI(63, lm);
        if (j < 4) {
            scales12[j] = ls;
            scales12[j + 4] = lm;
        } else {
            scales12[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
            scales12[j - 4] |= (uint8_t)((ls >> 4) << 6);
            scales12[j] |= (uint8_t)((lm >> 4) << 6);
        }
    }
    *d_out = mp_f32_to_f16(max_scale / 63.f);
    *dmin_out = mp_f32_to_f16(max_min / 63.f);
    for (int j = 0; j < 8; j++) {
        uint8_t sc, m;
        mp_k4_scale_min(j, scales12, &sc, &m);
        const float d = mp_f16_to_f32(*d_out) * sc;
        if (!d) continue;
        const float dm = mp_f16_to_f32(*dmin_out) * m;
        for (int ii = 0; ii < 32; ii++) {
            int l = nearest_int((x[32 * j + ii] + dm) / d);
            L[32 * j + ii] = (uint8_t)MAXI(0, MINI(nmax, l));
        }
    }
}

static void q_q4_K(const float *x, mp_block_q4_K *y, int64_t nb) {
    uint8_t L[MP_QK_K];
    for (int64_t i = 0; i < nb; i++, x += MP_QK_K) {
        k_scales_mins(x, 15, -1.f, 20, L, y[i].scales, &y[i].d, &y[i].dmin);
        uint8_t *q = y[i].qs;
        for (int j = 0; j < MP_QK_K; j += 64, q += 32)
            for (int l = 0; l < 32; l++) q[l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
    }
}

static void q_q5_K(const float *x, mp_block_q5_K *y, int64_t nb) {
    uint8_t L[MP_QK_K];
    for (int64_t i = 0; i < nb; i++, x += MP_QK_K) {
        k_scales_mins(x, 31, -0.5f, 15, L, y[i].scales, &y[i].d, &y[i].dmin);
        uint8_t *qh = y[i].qh, *ql = y[i].qs;
        memset(qh, 0, MP_QK_K / 8);
        uint8_t m1 = 1, m2 = 2;
        for (int n = 0; n < MP_QK_K; n += 64, ql += 32) {
            for (int j = 0; j < 32; j++) {
                int l1 = L[n + j], l2 = L[n + j + 32];
                if (l1 > 15) { l1 -= 16; qh[j] |= m1; }
                if (l2 > 15) { l2 -= 16; qh[j] |= m2; }
                ql[j] = (uint8_t)(l1 | (l2 << 4));
            }
            m1 <<= 2;
            m2 <<= 2;
        }
    }
}

static void q_q6_K(const float *x, mp_block_q6_K *y, int64_t nb) {
    int8_t L[MP_QK_K];
    float scales[16];
    for (int64_t i = 0; i < nb; i++, x += MP_QK_K) {
        float max_abs_scale;
        for (int ib = 0; ib < 16; ib++) scales[ib] = make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib);
        const float max_scale = signed_absmax(scales, 16, &max_abs_scale);
        if (max_abs_scale < GROUP_MAX_EPS) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        float iscale = -128.f / max_scale;
        y[i].d = mp_f32_to_f16(1 / iscale);
        for (int ib = 0; ib < 16; ib++) y[i].scales[ib] = (int8_t)MINI(127, nearest_int(iscale * scales[ib]));
        for (int j = 0; j < 16; j++) {
            float d = mp_f16_to_f32(y[i].d) * y[i].scales[j];
            if (!d) continue;
            for (int ii = 0; ii < 16; ii++) {
                int l = nearest_int(x[16 * j + ii] / d);
                L[16 * j + ii] = (int8_t)(MAXI(-32, MINI(31, l)) + 32);
            }
        }
        uint8_t *ql = y[i].ql, *qh = y[i].qh;
        for (int j = 0; j < MP_QK_K; j += 128, ql += 64, qh += 32) {
            for (int l = 0; l < 32; l++) {
                const uint8_t q1 = L[j + l] & 0xF, q2 = L[j + l + 32] & 0xF;
                const uint8_t q3 = L[j + l + 64] & 0xF, q4 = L[j + l + 96] & 0xF;
                ql[l] = (uint8_t)(q1 | (q3 << 4));
                ql[l + 32] = (uint8_t)(q2 | (q4 << 4));
                qh[l] = (uint8_t)((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4) |
                                  ((L[j + l + 96] >> 4) << 6));
            }
        }
    }
}

static void q_q8_K(const float *x, mp_block_q8_K *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += MP_QK_K) {
        float amax;
        const float max = signed_absmax(x, MP_QK_K, &amax);
        if (!amax) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        const float iscale = -127.f / max;
        for (int j = 0; j < MP_QK_K; j++) y[i].qs[j] = (int8_t)MINI(127, nearest_int(iscale * x[j]));
        for (int j = 0; j < 16; j++) {
            int sum = 0;
            for (int ii = 0; ii < 16; ii++) sum += y[i].qs[j * 16 + ii];
            y[i].bsums[j] = (int16_t)sum;
        }
        y[i].d = 1 / iscale;
    }
}

int mp_ref_quantize_supported(mp_dtype dt) {
    /* every dequantizable format except the plain int / f64 ones */
    return mp_ref_dequantize_supported(dt) && dt != MP_F64 && dt != MP_I8 && dt != MP_I16 && dt != MP_I32 &&
           dt != MP_I64;
}

int64_t mp_ref_quantize_row(mp_dtype dt, const float *src, void *dst, int64_t n) {
    const int64_t bytes = mp_dtype_row_bytes(dt, n);
    if (bytes < 0 || !mp_ref_quantize_supported(dt)) return -1;
    const int64_t nb = n / mp_dtype_info(dt)->block_size;
    switch (dt) {
    case MP_F32: memmove(dst, src, (size_t)n * 4); break;
    case MP_F16: { mp_f16 *d = dst; for (int64_t i = 0; i < n; i++) d[i] = mp_f32_to_f16(src[i]); } break;
    case MP_BF16: { mp_bf16 *d = dst; for (int64_t i = 0; i < n; i++) d[i] = mp_f32_to_bf16(src[i]); } break;
    case MP_Q4_0: q_q4_0(src, dst, nb); break;
    case MP_Q4_1: q_q4_1(src, dst, nb); break;
    case MP_Q5_0: q_q5_0(src, dst, nb); break;
    case MP_Q5_1: q_q5_1(src, dst, nb); break;
    case MP_Q8_0: q_q8_0(src, dst, nb); break;
    case MP_Q8_1: q_q8_1(src, dst, nb); break;
    case MP_Q2_K: q_q2_K(src, dst, nb); break;
    case MP_Q3_K: q_q3_K(src, dst, nb); break;
    case MP_Q4_K: q_q4_K(src, dst, nb); break;
    case MP_Q5_K: q_q5_K(src, dst, nb); break;
    case MP_Q6_K: q_q6_K(src, dst, nb); break;
    case MP_Q8_K: q_q8_K(src, dst, nb); break;
    default: return -1;
    }
    return bytes;
}

/* ================================================================ dispatch */

void mp_dequantize_row(mp_dtype dt, const void *src, float *dst, int64_t n) {
    if (mp_cpu_level() >= 1 && mp_fast_dequantize_row(dt, src, dst, n)) return;
    mp_ref_dequantize_row(dt, src, dst, n);
}

int64_t mp_quantize_row(mp_dtype dt, const float *src, void *dst, int64_t n) {
    return mp_ref_quantize_row(dt, src, dst, n);
}
