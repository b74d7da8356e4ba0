/* attention_f16_avx512.c — one head of mp_attention_f16ctx with AVX-512: scores of 4 blocks of 16 keys
 * at a time from the key panels (no horizontal sums), the softmax 16 keys at a time, P·V over the
 * head's contiguous value rows with two interleaved accumulator sets (even / odd keys). */
#define MP_SIMD_AVX512
#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/simd.h"

#include <math.h>

static inline __m512 ld16(const mp_f16 *p) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p)); }
static inline __m512 ld16m(const mp_f16 *p, __mmask16 m) { return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p)); }

void mp_k_attn_f16ctx_head_avx512(float *o, const float *q, const mp_f16 *kp, const mp_f16 *vp, int64_t n_kv,
                                  int head_dim, float scale, float *s) {
    const int d = head_dim;
    const int64_t nb = (n_kv + 15) / 16;
    const __m512 vs = _mm512_set1_ps(scale);
    /* scores: s[16 b + r] = scale * q . k_(16 b + r) */
    int64_t b = 0;
    for (; b + 4 <= nb; b += 4) {
        const mp_f16 *p0 = kp + b * d * 16;
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int c = 0; c < d; c++) {
            const __m512 qc = _mm512_set1_ps(q[c]);
            _mm_prefetch((const char *)(p0 + 4 * d * 16 + c * 64), _MM_HINT_T0);
            a0 = _mm512_fmadd_ps(qc, ld16(p0 + c * 16), a0);
            a1 = _mm512_fmadd_ps(qc, ld16(p0 + (d + c) * 16), a1);
            a2 = _mm512_fmadd_ps(qc, ld16(p0 + (2 * d + c) * 16), a2);
            a3 = _mm512_fmadd_ps(qc, ld16(p0 + (3 * d + c) * 16), a3);
        }
        _mm512_store_ps(s + b * 16, _mm512_mul_ps(a0, vs));
        _mm512_store_ps(s + b * 16 + 16, _mm512_mul_ps(a1, vs));
        _mm512_store_ps(s + b * 16 + 32, _mm512_mul_ps(a2, vs));
        _mm512_store_ps(s + b * 16 + 48, _mm512_mul_ps(a3, vs));
    }
    for (; b < nb; b++) {
        const mp_f16 *p0 = kp + b * d * 16;
        __m512 a0 = _mm512_setzero_ps();
        for (int c = 0; c < d; c++) a0 = _mm512_fmadd_ps(_mm512_set1_ps(q[c]), ld16(p0 + c * 16), a0);
        _mm512_store_ps(s + b * 16, _mm512_mul_ps(a0, vs));
    }
    /* softmax over the n_kv keys (the padded keys of the last block are left out) */
    const __mmask16 tail = v_tail(n_kv - (nb - 1) * 16);
    __m512 mx = _mm512_set1_ps(-INFINITY);
    for (b = 0; b < nb; b++) mx = _mm512_mask_max_ps(mx, b + 1 < nb ? (__mmask16)0xFFFF : tail, mx, _mm512_load_ps(s + b * 16));
    const __m512 vm = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
    __m512 sum = _mm512_setzero_ps();
    for (b = 0; b < nb; b++) {
        __m512 e = _mm512_maskz_mov_ps(b + 1 < nb ? (__mmask16)0xFFFF : tail, v_exp(_mm512_sub_ps(_mm512_load_ps(s + b * 16), vm)));
        _mm512_store_ps(s + b * 16, e);
        sum = _mm512_add_ps(sum, e);
    }
    const float l = _mm512_reduce_add_ps(sum), inv = l > 0.0f ? 1.0f / l : 0.0f;
    /* P·V: 64 columns at a time */
    for (int c0 = 0; c0 < d; c0 += 64) {
        __mmask16 m[4];
        for (int w = 0; w < 4; w++) m[w] = v_tail(d - c0 - 16 * w);
        __m512 e0[4], e1[4];
        for (int w = 0; w < 4; w++) e0[w] = e1[w] = _mm512_setzero_ps();
        const mp_f16 *vr = vp + c0;
        int64_t key = 0;
        for (; key + 2 <= n_kv; key += 2, vr += 2 * d) {
            const __m512 p0 = _mm512_set1_ps(s[key]), p1 = _mm512_set1_ps(s[key + 1]);
            _mm_prefetch((const char *)(vr + 8 * d), _MM_HINT_T0);
            for (int w = 0; w < 4; w++) {
                e0[w] = _mm512_fmadd_ps(p0, ld16m(vr + 16 * w, m[w]), e0[w]);
                e1[w] = _mm512_fmadd_ps(p1, ld16m(vr + d + 16 * w, m[w]), e1[w]);
            }
        }
        if (key < n_kv) {
            const __m512 p0 = _mm512_set1_ps(s[key]);
            for (int w = 0; w < 4; w++) e0[w] = _mm512_fmadd_ps(p0, ld16m(vr + 16 * w, m[w]), e0[w]);
        }
        const __m512 vi = _mm512_set1_ps(inv);
        for (int w = 0; w < 4; w++) _mm512_mask_storeu_ps(o + c0 + 16 * w, m[w], _mm512_mul_ps(_mm512_add_ps(e0[w], e1[w]), vi));
    }
}
