// quant.cuh — device-side dequantization of the GGUF block formats (bit layouts as kernels/mp.h and
// llama.cpp's ggml-common.h). The unit of work is a chunk of 8 consecutive elements of a block, so one
// decode of the block's scales serves 8 values. Plain F32/F16/BF16 rows are seen as blocks of 8.
//
//   mp_qt<DT>::BS   elements per block        mp_qt<DT>::TS  bytes per block
//   mp_deq8<DT>(blk, c, v)   v[0..7] = elements 8c .. 8c+7 of the block at blk (c < BS/8)
//
// Blocks are only 2-byte aligned inside a row (e.g. Q4_0 = 18 bytes), so everything is read with
// byte/halfword loads. Where a product is followed by a sum (d*q + m, d*sc*q - dmin*m) the product is exact
// in F32 (at most 11 + 6 + 5 significant bits), so the sum rounds once whether or not nvcc fuses it into an
// FMA: the device decodes the CPU's bits.
#pragma once
#include <float.h>
#include <math.h>

#include "kernels/cuda/common.cuh"

template <int DT> struct mp_qt;
template <> struct mp_qt<MP_F32> { enum { BS = 8, TS = 32 }; };
template <> struct mp_qt<MP_F16> { enum { BS = 8, TS = 16 }; };
template <> struct mp_qt<MP_BF16> { enum { BS = 8, TS = 16 }; };
template <> struct mp_qt<MP_Q8_0> { enum { BS = 32, TS = 34 }; };
template <> struct mp_qt<MP_Q4_0> { enum { BS = 32, TS = 18 }; };
template <> struct mp_qt<MP_Q4_1> { enum { BS = 32, TS = 20 }; };
template <> struct mp_qt<MP_Q5_0> { enum { BS = 32, TS = 22 }; };
template <> struct mp_qt<MP_Q5_1> { enum { BS = 32, TS = 24 }; };
template <> struct mp_qt<MP_Q2_K> { enum { BS = 256, TS = 84 }; };
template <> struct mp_qt<MP_Q3_K> { enum { BS = 256, TS = 110 }; };
template <> struct mp_qt<MP_Q4_K> { enum { BS = 256, TS = 144 }; };
template <> struct mp_qt<MP_Q5_K> { enum { BS = 256, TS = 176 }; };
template <> struct mp_qt<MP_Q6_K> { enum { BS = 256, TS = 210 }; };

MP_HD float mp_ldh(const uint8_t *p) { return mp_d_f16(*(const uint16_t *)p); }
MP_HD uint32_t mp_ld32u(const uint8_t *p) { // 4 bytes, little-endian, any alignment
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

template <int DT> MP_HD void mp_deq8(const uint8_t *b, int c, float *v);

template <> MP_HD void mp_deq8<MP_F32>(const uint8_t *b, int c, float *v) {
    const float *f = (const float *)b;
#pragma unroll
    for (int j = 0; j < 8; j++) v[j] = f[j];
}
template <> MP_HD void mp_deq8<MP_F16>(const uint8_t *b, int c, float *v) {
    const uint16_t *h = (const uint16_t *)b;
#pragma unroll
    for (int j = 0; j < 8; j++) v[j] = mp_d_f16(h[j]);
}
template <> MP_HD void mp_deq8<MP_BF16>(const uint8_t *b, int c, float *v) {
    const uint16_t *h = (const uint16_t *)b;
#pragma unroll
    for (int j = 0; j < 8; j++) v[j] = mp_d_bf16(h[j]);
}

// Q8_0: d, qs[32]; x = d * q
template <> MP_HD void mp_deq8<MP_Q8_0>(const uint8_t *b, int c, float *v) {
    const float d = mp_ldh(b);
    const int8_t *q = (const int8_t *)(b + 2) + 8 * c;
#pragma unroll
    for (int j = 0; j < 8; j++) v[j] = d * (float)q[j];
}

// Q4_0: d, qs[16]; element j < 16 is the low nibble of qs[j], j >= 16 the high nibble of qs[j-16]; x = d*(q-8)
template <> MP_HD void mp_deq8<MP_Q4_0>(const uint8_t *b, int c, float *v) {
    const float d = mp_ldh(b);
    const uint8_t *q = b + 2 + (c & 1) * 8;
    const int sh = (c >> 1) * 4;
#pragma unroll
    for (int j = 0; j < 8; j++) v[j] = d * (float)(((q[j] >> sh) & 0xF) - 8);
}

// Q4_1: d, m, qs[16]; x = d*q + m
template <> MP_HD void mp_deq8<MP_Q4_1>(const uint8_t *b, int c, float *v) {
    const float d = mp_ldh(b), m = mp_ldh(b + 2);
    const uint8_t *q = b + 4 + (c & 1) * 8;
    const int sh = (c >> 1) * 4;
#pragma unroll
    for (int j = 0; j < 8; j++) v[j] = d * (float)((q[j] >> sh) & 0xF) + m;
}

// Q5_0: d, qh (32 fifth bits), qs[16]; x = d*(q-16)
template <> MP_HD void mp_deq8<MP_Q5_0>(const uint8_t *b, int c, float *v) {
    const float d = mp_ldh(b);
    const uint32_t qh = mp_ld32u(b + 2);
    const uint8_t *q = b + 6 + (c & 1) * 8;
    const int sh = (c >> 1) * 4, e0 = 8 * c;
#pragma unroll
    for (int j = 0; j < 8; j++) {
        int x = ((q[j] >> sh) & 0xF) | (((qh >> (e0 + j)) & 1u) << 4);
        v[j] = d * (float)(x - 16);
    }
}

// Q5_1: d, m, qh, qs[16]; x = d*q + m
template <> MP_HD void mp_deq8<MP_Q5_1>(const uint8_t *b, int c, float *v) {
    const float d = mp_ldh(b), m = mp_ldh(b + 2);
    const uint32_t qh = mp_ld32u(b + 4);
    const uint8_t *q = b + 8 + (c & 1) * 8;
    const int sh = (c >> 1) * 4, e0 = 8 * c;
#pragma unroll
    for (int j = 0; j < 8; j++) {
        int x = ((q[j] >> sh) & 0xF) | (((qh >> (e0 + j)) & 1u) << 4);
        v[j] = d * (float)x + m;
    }
}

// 6-bit scale and min number j (0..7) of a Q4_K/Q5_K block (llama.cpp's get_scale_min_k4).
MP_HD void mp_scale_min_k4(int j, const uint8_t *s, int *sc, int *m) {
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
        *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

// Q4_K: d, dmin, scales[12], qs[128]. 64-element group g uses qs[32g..32g+31]: first 32 elements the low
// nibbles with scale/min 2g, next 32 the high nibbles with 2g+1. x = d*sc*q - dmin*m
template <> MP_HD void mp_deq8<MP_Q4_K>(const uint8_t *b, int c, float *v) {
    const int g = c >> 3, hi = (c >> 2) & 1, l0 = (c & 3) * 8;
    int sc, m;
    mp_scale_min_k4(2 * g + hi, b + 4, &sc, &m);
    const float d = mp_ldh(b) * (float)sc, dm = mp_ldh(b + 2) * (float)m;
    const uint8_t *q = b + 16 + 32 * g + l0;
    const int sh = hi * 4;
#pragma unroll
    for (int j = 0; j < 8; j++) v[j] = d * (float)((q[j] >> sh) & 0xF) - dm;
}

// Q5_K: d, dmin, scales[12], qh[32], qs[128]; as Q4_K plus a fifth bit: bit (2g+hi) of qh[l].
template <> MP_HD void mp_deq8<MP_Q5_K>(const uint8_t *b, int c, float *v) {
    const int g = c >> 3, hi = (c >> 2) & 1, l0 = (c & 3) * 8;
    int sc, m;
    mp_scale_min_k4(2 * g + hi, b + 4, &sc, &m);
    const float d = mp_ldh(b) * (float)sc, dm = mp_ldh(b + 2) * (float)m;
    const uint8_t *qh = b + 16 + l0;
    const uint8_t *q = b + 48 + 32 * g + l0;
    const int sh = hi * 4, hb = 2 * g + hi;
#pragma unroll
    for (int j = 0; j < 8; j++) {
        int x = ((q[j] >> sh) & 0xF) + (((qh[j] >> hb) & 1) << 4);
        v[j] = d * (float)x - dm;
    }
}

// Q6_K: ql[128], qh[64], scales[16] (int8), d. Half n (128 elements) has quarters qq = 0..3 of 32:
// low 4 bits from ql[64n + l + 32*(qq&1)] (high nibble when qq >= 2), top 2 bits (qh[32n + l] >> 2qq) & 3,
// scale scales[8n + l/16 + 2qq]. x = d * sc * (q - 32)
template <> MP_HD void mp_deq8<MP_Q6_K>(const uint8_t *b, int c, float *v) {
    const int n = c >> 4, r = c & 15, qq = r >> 2, l0 = (r & 3) * 8;
    const float d = mp_ldh(b + 208) * (float)((const int8_t *)(b + 192))[8 * n + (l0 >> 4) + 2 * qq];
    const uint8_t *ql = b + 64 * n + l0 + 32 * (qq & 1);
    const uint8_t *qh = b + 128 + 32 * n + l0;
    const int sh = (qq >> 1) * 4, hs = 2 * qq;
#pragma unroll
    for (int j = 0; j < 8; j++) {
        int x = ((ql[j] >> sh) & 0xF) | (((qh[j] >> hs) & 3) << 4);
        v[j] = d * (float)(x - 32);
    }
}

// Q2_K: scales[16], qs[64], d, dmin. Half n (128 elements) is 8 groups of 16: group (s, hf) takes bits
// 2s..2s+1 of qs[32n + 16hf + l], with scale byte scales[8n + 2s + hf] (low nibble: scale, high: min).
// x = d*sc*q - dmin*m
template <> MP_HD void mp_deq8<MP_Q2_K>(const uint8_t *b, int c, float *v) {
    const int n = c >> 4, r = c & 15, s = r >> 2, hf = (r >> 1) & 1, l0 = (r & 1) * 8;
    const int sc = b[8 * n + 2 * s + hf];
    const float dl = mp_ldh(b + 80) * (float)(sc & 0xF), ml = mp_ldh(b + 82) * (float)(sc >> 4);
    const uint8_t *q = b + 16 + 32 * n + 16 * hf + l0;
    const int sh = 2 * s;
#pragma unroll
    for (int j = 0; j < 8; j++) v[j] = dl * (float)((q[j] >> sh) & 3) - ml;
}

// Q3_K: hmask[32], qs[64], scales[12], d. Same groups as Q2_K; a group's 2 low bits as Q2_K, minus 4 unless
// bit 4n + s of hmask[16hf + l] is set; 6-bit signed scales (low 4 bits from scales[0..7], 2 high bits
// from scales[8..11]). x = d * (sc - 32) * q
template <> MP_HD void mp_deq8<MP_Q3_K>(const uint8_t *b, int c, float *v) {
    const int n = c >> 4, r = c & 15, s = r >> 2, hf = (r >> 1) & 1, l0 = (r & 1) * 8;
    const int j = 8 * n + 2 * s + hf;
    const uint8_t *s12 = b + 96;
    const int lo = j < 8 ? (s12[j] & 0xF) : (s12[j - 8] >> 4), hi = (s12[8 + (j & 3)] >> (2 * (j >> 2))) & 3;
    const float dl = mp_ldh(b + 108) * (float)((lo | (hi << 4)) - 32);
    const uint8_t *q = b + 32 + 32 * n + 16 * hf + l0, *hm = b + 16 * hf + l0;
    const int sh = 2 * s, mb = 4 * n + s;
#pragma unroll
    for (int k = 0; k < 8; k++) {
        const int x = ((q[k] >> sh) & 3) - (((hm[k] >> mb) & 1) ? 0 : 4);
        v[k] = dl * (float)x;
    }
}

// ---------------------------------------------------------------- quantize (32-element blocks)

MP_HD void mp_put_f16(uint8_t *p, float f) {
    uint16_t h = mp_d_to_f16(f);
    p[0] = (uint8_t)(h & 0xff);
    p[1] = (uint8_t)(h >> 8);
}

// One block of 32 values into Q8_0 / Q4_0 / Q4_1 / Q5_0 / Q5_1, operation for operation like llama.cpp's
// quantize_row_*_ref (and kernels/cpu/quant.c), so the bytes are identical to the CPU's.
MP_HD void mp_quantize_block(int dt, const float *v, uint8_t *b) {
    if (dt == MP_Q8_0) {
        float amax = 0.0f;
        for (int j = 0; j < 32; j++) amax = amax > fabsf(v[j]) ? amax : fabsf(v[j]);
        const float d = MP_FDIV(amax, 127.0f), id = d != 0.0f ? MP_FDIV(1.0f, d) : 0.0f;
        mp_put_f16(b, d);
        for (int j = 0; j < 32; j++) ((int8_t *)(b + 2))[j] = (int8_t)(int)roundf(MP_FMUL(v[j], id));
    } else if (dt == MP_Q4_0 || dt == MP_Q5_0) {
        const int q5 = dt == MP_Q5_0;
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < 32; j++)
            if (amax < fabsf(v[j])) {
                amax = fabsf(v[j]);
                max = v[j];
            }
        const float d = MP_FDIV(max, q5 ? -16.0f : -8.0f), id = d != 0.0f ? MP_FDIV(1.0f, d) : 0.0f;
        const float off = q5 ? 16.5f : 8.5f;
        const int lim = q5 ? 31 : 15;
        mp_put_f16(b, d);
        uint8_t *qs = b + (q5 ? 6 : 2);
        uint32_t qh = 0;
        for (int j = 0; j < 16; j++) {
            int x0 = (int)(int8_t)(int)MP_FADD(MP_FMUL(v[j], id), off);
            int x1 = (int)(int8_t)(int)MP_FADD(MP_FMUL(v[j + 16], id), off);
            x0 = x0 < lim ? x0 : lim;
            x1 = x1 < lim ? x1 : lim;
            qs[j] = (uint8_t)((x0 & 0x0F) | ((x1 & 0x0F) << 4));
            qh |= ((uint32_t)(x0 & 0x10) >> 4) << j;
            qh |= ((uint32_t)(x1 & 0x10) >> 4) << (j + 16);
        }
        if (q5)
            for (int j = 0; j < 4; j++) b[2 + j] = (uint8_t)(qh >> (8 * j));
    } else { // Q4_1, Q5_1
        const int q5 = dt == MP_Q5_1;
        float min = FLT_MAX, max = -FLT_MAX;
        for (int j = 0; j < 32; j++) {
            if (v[j] < min) min = v[j];
            if (v[j] > max) max = v[j];
        }
        const float d = MP_FDIV(MP_FSUB(max, min), q5 ? 31.0f : 15.0f), id = d != 0.0f ? MP_FDIV(1.0f, d) : 0.0f;
        mp_put_f16(b, d);
        mp_put_f16(b + 2, min);
        uint8_t *qs = b + (q5 ? 8 : 4);
        uint32_t qh = 0;
        for (int j = 0; j < 16; j++) {
            const float f0 = MP_FADD(MP_FMUL(MP_FSUB(v[j], min), id), 0.5f);
            const float f1 = MP_FADD(MP_FMUL(MP_FSUB(v[j + 16], min), id), 0.5f);
            int x0, x1;
            if (q5) {
                x0 = (int)(uint8_t)(int)f0;
                x1 = (int)(uint8_t)(int)f1;
            } else {
                x0 = (int)(int8_t)(int)f0;
                x1 = (int)(int8_t)(int)f1;
                x0 = x0 < 15 ? x0 : 15;
                x1 = x1 < 15 ? x1 : 15;
            }
            qs[j] = (uint8_t)((x0 & 0x0F) | ((x1 & 0x0F) << 4));
            qh |= ((uint32_t)(x0 & 0x10) >> 4) << j;
            qh |= ((uint32_t)(x1 & 0x10) >> 4) << (j + 16);
        }
        if (q5)
            for (int j = 0; j < 4; j++) b[4 + j] = (uint8_t)(qh >> (8 * j));
    }
}

// Calls MACRO(DT) for the dtype dt (a runtime value) among the block-decodable ones; `other` otherwise.
#define MP_QUANT_SWITCH(dt, MACRO, other)        \
    switch (dt) {                                \
    case MP_F32: MACRO(MP_F32); break;           \
    case MP_F16: MACRO(MP_F16); break;           \
    case MP_BF16: MACRO(MP_BF16); break;         \
    case MP_Q8_0: MACRO(MP_Q8_0); break;         \
    case MP_Q4_0: MACRO(MP_Q4_0); break;         \
    case MP_Q4_1: MACRO(MP_Q4_1); break;         \
    case MP_Q5_0: MACRO(MP_Q5_0); break;         \
    case MP_Q5_1: MACRO(MP_Q5_1); break;         \
    case MP_Q2_K: MACRO(MP_Q2_K); break;         \
    case MP_Q3_K: MACRO(MP_Q3_K); break;         \
    case MP_Q4_K: MACRO(MP_Q4_K); break;         \
    case MP_Q5_K: MACRO(MP_Q5_K); break;         \
    case MP_Q6_K: MACRO(MP_Q6_K); break;         \
    default: other; break;                       \
    }

// Host side: is dt one of the dtypes above, and its block size.
static inline int mp_cuda_block_size(int dt) {
    switch (dt) {
    case MP_F32: case MP_F16: case MP_BF16: return 8;
    case MP_Q8_0: case MP_Q4_0: case MP_Q4_1: case MP_Q5_0: case MP_Q5_1: return 32;
    case MP_Q2_K: case MP_Q3_K: case MP_Q4_K: case MP_Q5_K: case MP_Q6_K: return 256;
    default: return 0;
    }
}

// Dequantizes rows [0, nrows) x K (K a multiple of the block size) of a weight matrix whose rows are
// row_bytes apart into dst (row-major, K contiguous), as F16 (out_bf16 = 0) or BF16 (out_bf16 = 1) or F32
// (out_f32 = 1). Defined in kernels/cuda/layout.cu. Records an error and returns -1 for an unsupported dtype.
int mp_cuda_dequant_rows(mp_exec *ex, void *dst, int out_kind, const void *src, int dt, size_t row_bytes,
                         int64_t nrows, int64_t K);
enum { MP_OUT_F32 = 0, MP_OUT_F16 = 1, MP_OUT_BF16 = 2 };
