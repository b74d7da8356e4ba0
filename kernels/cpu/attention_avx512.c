/* attention_avx512.c — the attention tile of attention_simd.inc for AVX-512. */
#define MP_SIMD_AVX512
#include "kernels/cpu/attention_simd.inc"
