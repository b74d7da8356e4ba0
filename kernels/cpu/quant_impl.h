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
/* The 16 signed scales (-32..31) of a q3_K block. */
void mp_q3_K_scales(const uint8_t *s12, int8_t out[16]);

/* SIMD dequantize for the formats that have one; returns 0 (did nothing) for the others. */
int mp_fast_dequantize_row(mp_dtype dt, const void *src, float *dst, int64_t n);

#endif
