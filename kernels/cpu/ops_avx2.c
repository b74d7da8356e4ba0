/* ops_avx2.c — the kernels of ops_simd.inc for AVX2 + FMA. */
#define MP_SIMD_AVX2
#include "kernels/cpu/ops_simd.inc"
