/* attention.c — scaled dot-product attention with an online softmax (no [n_q][n_kv] matrix):
 * GQA (query head h reads kv head h / (n_head / n_kv_head)), causal with an offset, an optional
 * additive mask, arbitrary token strides. A query row that sees no key at all gives zeros. */
#include <math.h>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/ref.h"

/* keys j < lim are visible to query row i */
static int64_t attn_limit(const mp_attn_params *p, int64_t i) {
    if (!p->causal) return p->n_kv;
    int64_t lim = i + p->causal_offset + 1;
    return lim < 0 ? 0 : lim > p->n_kv ? p->n_kv : lim;
}

/* One (query row, head): streaming softmax one key at a time; the output row is the accumulator. */
static void ref_attn_row(float *o, const float *qi, const float *k, const float *v, const mp_attn_params *p,
                         int64_t lim, const float *mrow) {
    const int d = p->head_dim;
    float m = -INFINITY, l = 0.0f;
    for (int c = 0; c < d; c++) o[c] = 0.0f;
    for (int64_t j = 0; j < lim; j++) {
        const float *kj = k + j * p->k_stride, *vj = v + j * p->v_stride;
        float s = 0.0f;
        for (int c = 0; c < d; c++) s += qi[c] * kj[c];
        s *= p->scale;
        if (mrow) s += mrow[j];
        if (s == -INFINITY) continue;
        if (s > m) { /* new maximum: rescale what was accumulated */
            float corr = expf(m - s);
            for (int c = 0; c < d; c++) o[c] *= corr;
            l *= corr;
            m = s;
        }
        float e = expf(s - m);
        l += e;
        for (int c = 0; c < d; c++) o[c] += e * vj[c];
    }
    float inv = l > 0.0f ? 1.0f / l : 0.0f;
    for (int c = 0; c < d; c++) o[c] *= inv;
}

static void ref_attn_item(float *out, const float *q, const float *k, const float *v, const mp_attn_params *p,
                          int64_t i, int h) {
    int group = p->n_head / p->n_kv_head, kvh = h / group;
    const float *mrow = p->mask ? p->mask + i * p->mask_stride : NULL;
    ref_attn_row(out + i * p->o_stride + (int64_t)h * p->head_dim, q + i * p->q_stride + (int64_t)h * p->head_dim,
                 k + (int64_t)kvh * p->head_dim, v + (int64_t)kvh * p->head_dim, p, attn_limit(p, i), mrow);
}

static int attn_valid(const mp_attn_params *p) {
    return p->n_q > 0 && p->n_head > 0 && p->n_kv_head > 0 && p->n_head % p->n_kv_head == 0 && p->head_dim > 0 &&
           p->n_kv >= 0;
}

void mp_ref_attention(float *out, const float *q, const float *k, const float *v, const mp_attn_params *p) {
    if (!attn_valid(p)) return;
    for (int64_t i = 0; i < p->n_q; i++)
        for (int h = 0; h < p->n_head; h++) ref_attn_item(out, q, k, v, p, i, h);
}

typedef struct {
    float *out;
    const float *q, *k, *v;
    const mp_attn_params *p;
    int level;
} attn_ctx;

/* items are (query row, head) pairs, head fastest */
static void attn_range(void *vctx, int64_t lo, int64_t hi) {
    const attn_ctx *c = (const attn_ctx *)vctx;
    for (int64_t it = lo; it < hi; it++)
        ref_attn_item(c->out, c->q, c->k, c->v, c->p, it / c->p->n_head, (int)(it % c->p->n_head));
}

void mp_attention(mp_exec *ex, float *out, const float *q, const float *k, const float *v, const mp_attn_params *p) {
    MP_CUDA_DISPATCH(ex, mp_cuda_attention(ex, out, q, k, v, p));
    if (!attn_valid(p)) return;
    attn_ctx c = {out, q, k, v, p, mp_cpu_level()};
    int64_t items = (int64_t)p->n_q * p->n_head;
    int64_t work = (int64_t)(p->n_kv > 0 ? p->n_kv : 1) * p->head_dim;
    int64_t min_items = (32768 + work - 1) / work;
    mp_cpu_parallel_for(ex, items, min_items, 1, attn_range, &c);
}
