/* simd.h — one vector vocabulary over AVX2 (8 floats) and AVX-512 (16 floats) so each SIMD kernel is
 * written once (kernels/cpu/ops_simd.inc, attention_simd.inc) and compiled twice: by a *_avx2.c file that defines
 * MP_SIMD_AVX2 and a *_avx512.c file that defines MP_SIMD_AVX512 before including it.
 * Also the vector math the kernels share: exp (Cephes polynomial, ~1 ulp; exactly 0 below -87.3),
 * sigmoid, erfc (Abramowitz-Stegun 7.1.26, |error| < 1.5e-7). */
#ifndef MP_CPU_SIMD_H
#define MP_CPU_SIMD_H

#include <immintrin.h>
#include <stdint.h>

#if defined(MP_SIMD_AVX512)
#define VW 16
#define SFX(name) name##_avx512
typedef __m512 vf;
typedef __mmask16 vmask;
static inline vf v_load(const float *p) { return _mm512_loadu_ps(p); }
static inline void v_store(float *p, vf v) { _mm512_storeu_ps(p, v); }
static inline __mmask16 v_tail(int64_t n) {
    return n >= 16 ? (__mmask16)0xffff : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1);
}
static inline vmask v_first(int64_t n) { return v_tail(n); } /* lanes [0, n) */
static inline vf v_loadn(const float *p, int64_t n) { return _mm512_maskz_loadu_ps(v_tail(n), p); }
static inline void v_storen(float *p, vf v, int64_t n) { _mm512_mask_storeu_ps(p, v_tail(n), v); }
static inline vf v_set1(float x) { return _mm512_set1_ps(x); }
static inline vf v_zero(void) { return _mm512_setzero_ps(); }
static inline vf v_add(vf a, vf b) { return _mm512_add_ps(a, b); }
static inline vf v_sub(vf a, vf b) { return _mm512_sub_ps(a, b); }
static inline vf v_mul(vf a, vf b) { return _mm512_mul_ps(a, b); }
static inline vf v_div(vf a, vf b) { return _mm512_div_ps(a, b); }
static inline vf v_fmadd(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }   /* a*b + c */
static inline vf v_fnmadd(vf a, vf b, vf c) { return _mm512_fnmadd_ps(a, b, c); } /* c - a*b */
static inline vf v_max(vf a, vf b) { return _mm512_max_ps(a, b); }
static inline vf v_min(vf a, vf b) { return _mm512_min_ps(a, b); }
static inline vf v_abs(vf a) { return _mm512_abs_ps(a); }
static inline vf v_round(vf a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
static inline float v_hsum(vf a) { return _mm512_reduce_add_ps(a); }
static inline float v_hmax(vf a) { return _mm512_reduce_max_ps(a); }
static inline vmask v_lt(vf a, vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
static inline vmask v_eq(vf a, vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_EQ_OQ); }
static inline vf v_select(vmask m, vf t, vf f) { return _mm512_mask_blend_ps(m, f, t); } /* m ? t : f */
/* 2^n for integral n in [-126, 127] */
static inline vf v_pow2i(vf n) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23));
}
/* (a0 b0 a1 b1 ...) -> (b0 a0 b1 a1 ...), cos/sin duplication for interleaved pairs */
static inline vf v_swap_pairs(vf a) { return _mm512_permute_ps(a, 0xB1); }
static inline vf v_dup_even(vf a) { return _mm512_moveldup_ps(a); }
static inline vf v_dup_odd(vf a) { return _mm512_movehdup_ps(a); }
static inline vf v_fmaddsub(vf a, vf b, vf c) { return _mm512_fmaddsub_ps(a, b, c); } /* even a*b-c, odd a*b+c */
static inline __m256 v_fold256(vf a) { return _mm256_add_ps(_mm512_castps512_ps256(a), _mm512_extractf32x8_ps(a, 1)); }
#elif defined(MP_SIMD_AVX2)
#define VW 8
#define SFX(name) name##_avx2
typedef __m256 vf;
typedef __m256 vmask;
static inline vf v_load(const float *p) { return _mm256_loadu_ps(p); }
static inline void v_store(float *p, vf v) { _mm256_storeu_ps(p, v); }
static inline __m256i v_tail(int64_t n) {
    static const int32_t tbl[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
    return _mm256_loadu_si256((const __m256i *)(tbl + 8 - (n >= 8 ? 8 : n <= 0 ? 0 : n)));
}
static inline vmask v_first(int64_t n) { return _mm256_castsi256_ps(v_tail(n)); } /* lanes [0, n) */
static inline vf v_loadn(const float *p, int64_t n) { return _mm256_maskload_ps(p, v_tail(n)); }
static inline void v_storen(float *p, vf v, int64_t n) { _mm256_maskstore_ps(p, v_tail(n), v); }
static inline vf v_set1(float x) { return _mm256_set1_ps(x); }
static inline vf v_zero(void) { return _mm256_setzero_ps(); }
static inline vf v_add(vf a, vf b) { return _mm256_add_ps(a, b); }
static inline vf v_sub(vf a, vf b) { return _mm256_sub_ps(a, b); }
static inline vf v_mul(vf a, vf b) { return _mm256_mul_ps(a, b); }
static inline vf v_div(vf a, vf b) { return _mm256_div_ps(a, b); }
static inline vf v_fmadd(vf a, vf b, vf c) { return _mm256_fmadd_ps(a, b, c); }
static inline vf v_fnmadd(vf a, vf b, vf c) { return _mm256_fnmadd_ps(a, b, c); }
static inline vf v_max(vf a, vf b) { return _mm256_max_ps(a, b); }
static inline vf v_min(vf a, vf b) { return _mm256_min_ps(a, b); }
static inline vf v_abs(vf a) { return _mm256_and_ps(a, _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff))); }
static inline vf v_round(vf a) { return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
static inline float v_hsum(vf a) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
static inline float v_hmax(vf a) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
static inline vmask v_lt(vf a, vf b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
static inline vmask v_eq(vf a, vf b) { return _mm256_cmp_ps(a, b, _CMP_EQ_OQ); }
static inline vf v_select(vmask m, vf t, vf f) { return _mm256_blendv_ps(f, t, m); }
static inline vf v_pow2i(vf n) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23));
}
static inline vf v_swap_pairs(vf a) { return _mm256_permute_ps(a, 0xB1); }
static inline vf v_dup_even(vf a) { return _mm256_moveldup_ps(a); }
static inline vf v_dup_odd(vf a) { return _mm256_movehdup_ps(a); }
static inline vf v_fmaddsub(vf a, vf b, vf c) { return _mm256_fmaddsub_ps(a, b, c); }
static inline __m256 v_fold256(vf a) { return a; }
#else
#error "define MP_SIMD_AVX2 or MP_SIMD_AVX512 before including simd.h"
#endif

/* the four horizontal sums of a, b, c, d as one 4-float vector */
static inline __m128 v_hsum4(vf a, vf b, vf c, vf d) {
    __m256 ab = _mm256_hadd_ps(v_fold256(a), v_fold256(b)), cd = _mm256_hadd_ps(v_fold256(c), v_fold256(d));
    __m256 abcd = _mm256_hadd_ps(ab, cd);
    return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

/* exp(x): Cephes expf. Exactly 0 for x < -87.33 (incl. -inf), finite up to x = 88. */
static inline vf v_exp(vf x) {
    vf xc = v_min(v_max(x, v_set1(-87.33f)), v_set1(88.0f));
    vf fx = v_round(v_mul(xc, v_set1(1.44269504088896341f)));
    vf r = v_fnmadd(fx, v_set1(0.693359375f), xc);
    r = v_fnmadd(fx, v_set1(-2.12194440e-4f), r);
    vf p = v_set1(1.9875691500e-4f);
    p = v_fmadd(p, r, v_set1(1.3981999507e-3f));
    p = v_fmadd(p, r, v_set1(8.3334519073e-3f));
    p = v_fmadd(p, r, v_set1(4.1665795894e-2f));
    p = v_fmadd(p, r, v_set1(1.6666665459e-1f));
    p = v_fmadd(p, r, v_set1(5.0000001201e-1f));
    p = v_fmadd(p, v_mul(r, r), v_add(r, v_set1(1.0f)));
    vf y = v_mul(p, v_pow2i(fx));
    return v_select(v_lt(x, v_set1(-87.33f)), v_zero(), y);
}

/* x * sigmoid(k x) = x / (1 + exp(-k x)) */
static inline vf v_x_sigmoid(vf x, float k) {
    return v_div(x, v_add(v_set1(1.0f), v_exp(v_mul(x, v_set1(-k)))));
}

/* erfc(z) for z >= 0 (Abramowitz-Stegun 7.1.26) */
static inline vf v_erfc_pos(vf z) {
    vf t = v_div(v_set1(1.0f), v_fmadd(z, v_set1(0.3275911f), v_set1(1.0f)));
    vf p = v_set1(1.061405429f);
    p = v_fmadd(p, t, v_set1(-1.453152027f));
    p = v_fmadd(p, t, v_set1(1.421413741f));
    p = v_fmadd(p, t, v_set1(-0.284496736f));
    p = v_fmadd(p, t, v_set1(0.254829592f));
    return v_mul(v_mul(p, t), v_exp(v_mul(v_mul(z, z), v_set1(-1.0f))));
}

#endif
