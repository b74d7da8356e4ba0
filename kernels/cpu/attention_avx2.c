/* attention_avx2.c — the attention tile of attention_simd.inc for AVX2 + FMA. */
#define MP_SIMD_AVX2
#include "kernels/cpu/attention_simd.inc"
