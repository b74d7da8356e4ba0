/* attention.c — scaled dot-product attention with an online softmax (no [n_q][n_kv] matrix):
 * GQA (query head h reads kv head h / (n_head / n_kv_head)), causal with an offset, an optional
 * additive mask, arbitrary token strides. A query row that sees no key at all gives zeros.
 * The reference streams one key at a time; the SIMD path (attention_simd.inc) works on tiles and needs
 * MP_ATTN_SCRATCH(head_dim) floats of ex->scratch per thread (else it runs the reference). */
#include <math.h>
#include <stdatomic.h>

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
        int64_t row = mp_attn_kv_row(p, j);
        const float *kj = k + row * p->k_stride, *vj = v + row * p->v_stride;
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
           p->n_kv >= 0 && (!p->kv_block_table || p->kv_block_size > 0);
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

/* reference path: items are (query row, head) pairs, head fastest */
static void attn_range(void *vctx, int64_t lo, int64_t hi) {
    const attn_ctx *c = (const attn_ctx *)vctx;
    for (int64_t it = lo; it < hi; it++)
        ref_attn_item(c->out, c->q, c->k, c->v, c->p, it / c->p->n_head, (int)(it % c->p->n_head));
}

/* SIMD path: tiles of (kv head, block of rows), handed out dynamically, most expensive (last rows) first */
typedef struct {
    attn_ctx c;
    int rows_per_tile, small;
    int64_t n_tiles, row_blocks;
    float *scratch;
    int64_t scratch_per_thread;
    atomic_llong next;
} attn_job;

static void attn_tiles(void *arg, int ith, int nth) {
    attn_job *j = (attn_job *)arg;
    const mp_attn_params *p = j->c.p;
    float *scratch = j->scratch + ith * j->scratch_per_thread;
    (void)nth;
    for (;;) {
        int64_t t = atomic_fetch_add(&j->next, 1);
        if (t >= j->n_tiles) break;
        t = j->n_tiles - 1 - t;
        int64_t rb = t / p->n_kv_head;
        int kvh = (int)(t % p->n_kv_head);
        int64_t r0 = rb * j->rows_per_tile;
        int nr = (int)(p->n_q - r0 < j->rows_per_tile ? p->n_q - r0 : j->rows_per_tile);
        MP_PICK(j->c.level, mp_k_attn_tile, NULL)(j->c.out, j->c.q, j->c.k, j->c.v, p, kvh, r0, nr, j->small, scratch);
    }
}

void mp_attention(mp_exec *ex, float *out, const float *q, const float *k, const float *v, const mp_attn_params *p) {
    MP_CUDA_DISPATCH(ex, mp_cuda_attention(ex, out, q, k, v, p));
    if (!attn_valid(p)) return;
    attn_ctx c = {out, q, k, v, p, mp_cpu_level()};
    int G = p->n_head / p->n_kv_head;
    if (c.level >= 1 && ex && G <= MP_ATTN_MT) {
        mp_threadpool *tp = mp_cpu_tp(ex);
        int nth = tp ? mp_threadpool_size(tp) : 1;
        int64_t per = (MP_ATTN_SCRATCH(p->head_dim) + 15) & ~(int64_t)15; /* 64-byte multiples */
        size_t mark = mp_arena_mark(&ex->scratch);
        float *scratch = mp_arena_alloc(&ex->scratch, (size_t)(per * nth) * sizeof(float));
        if (scratch) {
            attn_job j = {.c = c, .rows_per_tile = MP_ATTN_MT / G, .small = (int64_t)p->n_q * G < 12,
                          .scratch = scratch, .scratch_per_thread = per};
            j.row_blocks = (p->n_q + j.rows_per_tile - 1) / j.rows_per_tile;
            j.n_tiles = j.row_blocks * p->n_kv_head;
            atomic_init(&j.next, 0);
            int64_t work = (int64_t)p->n_q * p->n_head * (p->n_kv > 0 ? p->n_kv : 1) * p->head_dim;
            int n = work < 65536 ? 1 : (int)(j.n_tiles < nth ? j.n_tiles : nth);
            mp_parallel_n(tp, n, attn_tiles, &j);
            mp_arena_reset(&ex->scratch, mark);
            return;
        }
        mp_arena_reset(&ex->scratch, mark);
    }
    int64_t items = (int64_t)p->n_q * p->n_head;
    int64_t work = (int64_t)(p->n_kv > 0 ? p->n_kv : 1) * p->head_dim;
    int64_t min_items = (32768 + work - 1) / work;
    mp_cpu_parallel_for(ex, items, min_items, 1, attn_range, &c);
}
