/* quant_impl.h — internals shared by the quantization and matmul files of kernels/cpu (not a public
 * interface: other code uses kernels/ops.h). */
#ifndef MP_CPU_QUANT_IMPL_H
#define MP_CPU_QUANT_IMPL_H

#include "kernels/mp.h"

/* ggml's block_q2_K / block_q3_K (not in mp.h: nothing outside the kernels reads them). */
typedef struct { uint8_t scales[MP_QK_K / 16]; uint8_t qs[MP_QK_K / 4]; mp_f16 d, dmin; } mp_block_q2_K;
typedef struct { uint8_t hmask[MP_QK_K / 8]; uint8_t qs[MP_QK_K / 4]; uint8_t scales[12]; mp_f16 d; } mp_block_q3_K;
_Static_assert(sizeof(mp_block_q2_K) == 84, "q2_K layout");
_Static_assert(sizeof(mp_block_q3_K) == 110, "q3_K layout");

/* 6-bit scale j and min j of a q4_K/q5_K block's packed 12 scale bytes. */
void mp_k4_scale_min(int j, const uint8_t *q, uint8_t *d, uint8_t *m);
/* All 8 scales (out[0..7]) and 8 mins (out[8..15]) of a q4_K/q5_K block's 12 scale bytes at once
 * (the same values as mp_k4_scale_min, without branches). */
static inline void mp_k4_unpack_scales(const uint8_t *s12, uint8_t out[16]) {
    uint32_t u[4];
    memcpy(u, s12, 12);
    const uint32_t m6 = 0x3f3f3f3fu, m4 = 0x0f0f0f0fu, m2 = 0x03030303u;
    u[3] = ((u[2] >> 4) & m4) | (((u[1] >> 6) & m2) << 4); /* mins 4..7 */
    const uint32_t mins03 = u[1] & m6;
    u[1] = (u[2] & m4) | (((u[0] >> 6) & m2) << 4);        /* scales 4..7 */
    u[2] = mins03;
    u[0] &= m6;                                            /* scales 0..3 */
    memcpy(out, u, 16);
}

/* The 16 signed scales (-32..31) of a q3_K block. */
void mp_q3_K_scales(const uint8_t *s12, int8_t out[16]);

/* SIMD dequantize for the formats that have one; returns 0 (did nothing) for the others. */
int mp_fast_dequantize_row(mp_dtype dt, const void *src, float *dst, int64_t n);

#endif
