/* attention_f16.c — attention of single query rows over a fixed F16 context (see kernels/ops.h,
 * mp_attention_f16ctx): the packing of K/V into per-head F16 panels, the scalar reference, and the
 * dispatch to the AVX-512 kernel (attention_f16_avx512.c). One head is computed by one thread, in a
 * fixed order: results do not depend on the thread count. */
#include <math.h>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/ref.h"

typedef struct {
    mp_f16 *kp, *vp;
    const float *k, *v;
    int64_t n_kv, nb, k_stride, v_stride;
    int head_dim;
} pack_job;

/* items: (head, block of 16 keys) */
static void pack_range(void *ctx, int64_t lo, int64_t hi) {
    const pack_job *j = ctx;
    const int d = j->head_dim;
    for (int64_t it = lo; it < hi; it++) {
        const int64_t h = it / j->nb, b = it % j->nb;
        mp_f16 *kb = j->kp + (h * j->nb + b) * d * 16;
        mp_f16 *vb = j->vp + (h * j->nb * 16 + b * 16) * d;
        for (int r = 0; r < 16; r++) {
            const int64_t key = b * 16 + r;
            const float *kr = j->k + key * j->k_stride + h * d, *vr = j->v + key * j->v_stride + h * d;
            for (int c = 0; c < d; c++) {
                kb[c * 16 + r] = key < j->n_kv ? mp_f32_to_f16(kr[c]) : 0;
                vb[r * d + c] = key < j->n_kv ? mp_f32_to_f16(vr[c]) : 0;
            }
        }
    }
}

void mp_attn_pack_f16ctx(mp_exec *ex, mp_f16 *kp, mp_f16 *vp, const float *k, const float *v, int64_t n_kv,
                         int64_t k_stride, int64_t v_stride, int n_head, int head_dim) {
    if (n_kv <= 0 || n_head <= 0 || head_dim <= 0) return;
    pack_job j = {kp, vp, k, v, n_kv, (n_kv + 15) / 16, k_stride, v_stride, head_dim};
    mp_cpu_parallel_for(ex, (int64_t)n_head * j.nb, 16, 1, pack_range, &j);
}

/* One head, scalar: scores in key order, max, exponentials and their sum in key order, then P·V. */
void mp_ref_attn_f16ctx_head(float *o, const float *q, const mp_f16 *kp, const mp_f16 *vp, int64_t n_kv, int head_dim,
                             float scale, float *s) {
    const int d = head_dim;
    float mx = -INFINITY;
    for (int64_t key = 0; key < n_kv; key++) {
        const mp_f16 *kb = kp + (key / 16) * d * 16 + key % 16;
        float a = 0.0f;
        for (int c = 0; c < d; c++) a += q[c] * mp_f16_to_f32(kb[c * 16]);
        s[key] = a * scale;
        if (s[key] > mx) mx = s[key];
    }
    float l = 0.0f;
    for (int64_t key = 0; key < n_kv; key++) {
        s[key] = expf(s[key] - mx);
        l += s[key];
    }
    for (int c = 0; c < d; c++) o[c] = 0.0f;
    for (int64_t key = 0; key < n_kv; key++)
        for (int c = 0; c < d; c++) o[c] += s[key] * mp_f16_to_f32(vp[key * d + c]);
    const float inv = l > 0.0f ? 1.0f / l : 0.0f;
    for (int c = 0; c < d; c++) o[c] *= inv;
}

void mp_ref_attention_f16ctx(float *out, const float *q, const mp_f16 *kp, const mp_f16 *vp, int64_t n_kv, int n_head,
                             int head_dim, float scale, float *scratch) {
    const int64_t nb = (n_kv + 15) / 16;
    for (int h = 0; h < n_head; h++)
        mp_ref_attn_f16ctx_head(out + (int64_t)h * head_dim, q + (int64_t)h * head_dim, kp + h * nb * head_dim * 16,
                                vp + h * nb * 16 * head_dim, n_kv, head_dim, scale, scratch);
}

typedef struct {
    float *out, *scratch;
    const float *q;
    const mp_f16 *kp, *vp;
    int64_t n_kv, nb, per;
    int n_head, head_dim, level;
    float scale;
} f16ctx_job;

static void f16ctx_task(void *arg, int ith, int nth) {
    const f16ctx_job *j = arg;
    int64_t lo, hi;
    mp_split_range(j->n_head, ith, nth, &lo, &hi);
    float *s = j->scratch + ith * j->per;
    const int d = j->head_dim;
    for (int64_t h = lo; h < hi; h++) {
        const mp_f16 *kh = j->kp + h * j->nb * d * 16, *vh = j->vp + h * j->nb * 16 * d;
        if (j->level >= 2) mp_k_attn_f16ctx_head_avx512(j->out + h * d, j->q + h * d, kh, vh, j->n_kv, d, j->scale, s);
        else mp_ref_attn_f16ctx_head(j->out + h * d, j->q + h * d, kh, vh, j->n_kv, d, j->scale, s);
    }
}

void mp_attention_f16ctx(mp_exec *ex, float *out, const float *q, const mp_f16 *kp, const mp_f16 *vp, int64_t n_kv,
                         int n_head, int head_dim, float scale) {
    if (n_head <= 0 || head_dim <= 0) return;
    const int64_t nb = (n_kv + 15) / 16, per = (nb * 16 + 15) & ~(int64_t)15;
    if (n_kv <= 0) {
        for (int64_t i = 0; i < (int64_t)n_head * head_dim; i++) out[i] = 0.0f;
        return;
    }
    mp_threadpool *tp = mp_cpu_tp(ex);
    int nth = tp ? mp_threadpool_size(tp) : 1;
    if (nth > n_head) nth = n_head;
    if ((double)n_kv * head_dim * n_head < 65536) nth = 1;
    f16ctx_job j = {out, NULL, q, kp, vp, n_kv, nb, per, n_head, head_dim, mp_cpu_level(), scale};
    size_t mark = ex ? mp_arena_mark(&ex->scratch) : 0;
    float *heap = NULL;
    j.scratch = ex ? mp_arena_alloc(&ex->scratch, sizeof(float) * (size_t)(per * nth)) : NULL;
    if (!j.scratch) j.scratch = heap = mp_aligned_alloc(sizeof(float) * (size_t)(per * nth));
    if (j.scratch) mp_parallel_n(tp, nth, f16ctx_task, &j);
    else /* out of memory: a visibly wrong result rather than a stale one */
        for (int64_t i = 0; i < (int64_t)n_head * head_dim; i++) out[i] = NAN;
    if (ex) mp_arena_reset(&ex->scratch, mark);
    mp_aligned_free(heap);
}
