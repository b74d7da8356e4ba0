/* ops_avx512.c — the kernels of ops_simd.inc for AVX-512. */
#define MP_SIMD_AVX512
#include "kernels/cpu/ops_simd.inc"
