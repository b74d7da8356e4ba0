/* matmul_q.c — matmul for block-quantized weights the way llama.cpp does it: the activations are
 * quantized to 8 bits per row (in ex->scratch), and each weight block meets its activation block in an
 * exact integer dot product; only the block scales are floating point.
 *
 * The arithmetic is defined here once, by the scalar mp_ref_matmul_q8, and the SIMD kernels
 * (matmul_q_avx2.c, matmul_q_avx512.c) reproduce it bit for bit:
 *
 *   activations, per block of B = 32 (q4_0, q4_1, q5_0, q5_1, q8_0) or 256 (q4_K, q5_K, q6_K) values:
 *     d = max|x| / 127 (NaNs skipped),  id = d ? 1/d : 0,  q = round-half-even(x * id) (in [-127, 127])
 *   then for each output, acc = bias[n] (or 0) and for each weight block in order (all integer sums
 *   exact; fmaf = one rounding):
 *     q8_0, q4_0, q5_0:  acc = fmaf(sum (w - off) * q, dw * d, acc)           (off 0 / 8 / 16)
 *     q4_1, q5_1:        acc = fmaf(sum w * q, dw * d, acc); acc = fmaf(mw, d * sum q, acc)
 *     q4_K, q5_K:        acc = fmaf(sum_j sc_j sum w * q, dw * d, acc);
 *                        acc = fmaf(-(sum_j m_j sum q), dmin * d, acc)          (j: 8 sub-blocks of 32)
 *     q6_K:              acc = fmaf(sum_g sc_g sum (w - 32) * q, dw * d, acc)   (g: 16 groups of 16)
 *
 * So a row's result never depends on the other rows of the batch, the tiling or the thread count. */
#include "kernels/cpu/matmul_q.h"
#include "kernels/cpu/quant_impl.h"
#include "kernels/cpu/ref.h"

#include <math.h>
#include <stdlib.h>

int mp_q8_act_block(mp_dtype dt) {
    switch (dt) {
    case MP_Q8_0: case MP_Q4_0: case MP_Q4_1: case MP_Q5_0: case MP_Q5_1: return 32;
    case MP_Q4_K: case MP_Q5_K: case MP_Q6_K: return 256;
    default: return 0;
    }
}

size_t mp_q8_act_bytes(int64_t M, int64_t K, int block) {
    /* qs K bytes, s4 K bytes (an int32 per 4), s32 K/8 bytes, d 4K/block bytes; each array 64-aligned */
    size_t per = (size_t)K + (size_t)K + (size_t)K / 8 + 4 * (size_t)(K / block) + 4 * 64;
    return (size_t)M * per + 64;
}

void mp_q8_act_layout(mp_q8_act *a, void *buf, int64_t M, int64_t K, int block) {
    uint8_t *p = (uint8_t *)(((uintptr_t)buf + 63) & ~(uintptr_t)63);
    a->K = K;
    a->block = block;
#define TAKE(ptr, type, count)                                                                                   \
    ptr = (type *)p;                                                                                             \
    p += ((size_t)M * (size_t)(count) * sizeof(type) + 63) & ~(size_t)63;
    TAKE(a->qs, int8_t, K)
    TAKE(a->s4, int32_t, K / 4)
    TAKE(a->s32, int32_t, K / 32)
    TAKE(a->d, float, K / block)
#undef TAKE
}

/* Rounds half to even for |f| < 2^22 (the activations are within [-127.x, 127.x]). */
static inline int rne(float f) {
    float v = f + 12582912.f;
    int i;
    memcpy(&i, &v, sizeof i);
    return (i & 0x007fffff) - 0x00400000;
}

void mp_q8_act_quantize_rows(mp_q8_act *a, const float *X, int64_t ldx, int64_t m0, int64_t m1) {
    const int64_t K = a->K;
    const int B = a->block;
    for (int64_t m = m0; m < m1; m++) {
        const float *x = X + m * ldx;
        int8_t *q = a->qs + m * K;
        for (int64_t b = 0; b < K / B; b++) {
            float amax = 0.0f;
            for (int i = 0; i < B; i++) {
                const float v = fabsf(x[b * B + i]);
                amax = v > amax ? v : amax;
            }
            const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
            a->d[m * (K / B) + b] = d;
            for (int i = 0; i < B; i++) {
                int v = rne(x[b * B + i] * id);
                q[b * B + i] = (int8_t)(v > 127 ? 127 : v < -127 ? -127 : v);
            }
        }
        for (int64_t g = 0; g < K / 4; g++) a->s4[m * (K / 4) + g] = q[4 * g] + q[4 * g + 1] + q[4 * g + 2] + q[4 * g + 3];
        for (int64_t g = 0; g < K / 32; g++) {
            int s = 0;
            for (int i = 0; i < 8; i++) s += a->s4[m * (K / 4) + 8 * g + i];
            a->s32[m * (K / 32) + g] = s;
        }
    }
}

/* ---------------------------------------------------------------- the scalar definition */

/* Unsigned quants (with their offset) of one weight block: u[i] for the block's B values. */
static void unpack_block(mp_dtype dt, const uint8_t *blk, uint8_t *u) {
    switch (dt) {
    case MP_Q8_0: {
        const mp_block_q8_0 *b = (const void *)blk;
        for (int i = 0; i < 32; i++) u[i] = (uint8_t)(b->qs[i] + 128);
    } break;
    case MP_Q4_0: case MP_Q4_1: {
        const uint8_t *qs = blk + (dt == MP_Q4_0 ? 2 : 4);
        for (int i = 0; i < 16; i++) { u[i] = qs[i] & 0xF; u[i + 16] = qs[i] >> 4; }
    } break;
    case MP_Q5_0: case MP_Q5_1: {
        const uint8_t *qh = blk + (dt == MP_Q5_0 ? 2 : 4), *qs = qh + 4;
        uint32_t h;
        memcpy(&h, qh, 4);
        for (int i = 0; i < 16; i++) {
            u[i] = (uint8_t)((qs[i] & 0xF) | (((h >> i) & 1) << 4));
            u[i + 16] = (uint8_t)((qs[i] >> 4) | (((h >> (i + 16)) & 1) << 4));
        }
    } break;
    case MP_Q4_K: case MP_Q5_K: {
        const uint8_t *qh = dt == MP_Q5_K ? ((const mp_block_q5_K *)(const void *)blk)->qh : NULL;
        const uint8_t *qs = dt == MP_Q5_K ? ((const mp_block_q5_K *)(const void *)blk)->qs
                                          : ((const mp_block_q4_K *)(const void *)blk)->qs;
        for (int c = 0; c < 8; c++)
            for (int l = 0; l < 32; l++) {
                int v = (c & 1) ? qs[32 * (c / 2) + l] >> 4 : qs[32 * (c / 2) + l] & 0xF;
                if (qh) v |= ((qh[l] >> c) & 1) << 4;
                u[32 * c + l] = (uint8_t)v;
            }
    } break;
    case MP_Q6_K: {
        const mp_block_q6_K *b = (const void *)blk;
        for (int h = 0; h < 2; h++)
            for (int l = 0; l < 32; l++) {
                const uint8_t *ql = b->ql + 64 * h, *qh = b->qh + 32 * h;
                u[128 * h + l] = (uint8_t)((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4));
                u[128 * h + l + 32] = (uint8_t)((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4));
                u[128 * h + l + 64] = (uint8_t)((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4));
                u[128 * h + l + 96] = (uint8_t)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4));
            }
    } break;
    default: break;
    }
}

int mp_q8_weight_offset(mp_dtype dt) {
    switch (dt) {
    case MP_Q8_0: return 128;
    case MP_Q4_0: return 8;
    case MP_Q5_0: return 16;
    case MP_Q6_K: return 32;
    default: return 0;
    }
}

/* acc after weight block `blk` of row n meets activation block b of row m. */
static float block_update(mp_dtype dt, const uint8_t *blk, const mp_q8_act *a, int64_t m, int64_t b, float acc) {
    const int B = a->block;
    const int8_t *q = a->qs + m * a->K + b * B;
    const float d = a->d[m * (a->K / B) + b];
    const int off = mp_q8_weight_offset(dt);
    uint8_t u[256];
    unpack_block(dt, blk, u);
    if (B == 32) {
        int32_t s = 0;
        for (int i = 0; i < 32; i++) s += (u[i] - off) * q[i];
        const float dw = mp_f16_to_f32(*(const mp_f16 *)(const void *)blk);
        acc = fmaf((float)s, dw * d, acc);
        if (dt == MP_Q4_1 || dt == MP_Q5_1) {
            const float mw = mp_f16_to_f32(((const mp_f16 *)(const void *)blk)[1]);
            acc = fmaf(mw, d * (float)a->s32[m * (a->K / 32) + b], acc);
        }
        return acc;
    }
    if (dt == MP_Q6_K) {
        const mp_block_q6_K *w = (const void *)blk;
        int32_t s = 0;
        for (int g = 0; g < 16; g++) {
            int32_t t = 0;
            for (int i = 0; i < 16; i++) t += (u[16 * g + i] - 32) * q[16 * g + i];
            s += w->scales[g] * t;
        }
        return fmaf((float)s, mp_f16_to_f32(w->d) * d, acc);
    }
    /* q4_K / q5_K share the first 16 bytes: d, dmin, scales[12] */
    const mp_block_q4_K *w = (const void *)blk;
    int32_t s = 0, smin = 0;
    for (int j = 0; j < 8; j++) {
        uint8_t sc, mn;
        mp_k4_scale_min(j, w->scales, &sc, &mn);
        int32_t t = 0;
        for (int i = 0; i < 32; i++) t += u[32 * j + i] * q[32 * j + i];
        s += sc * t;
        smin += mn * a->s32[m * (a->K / 32) + b * 8 + j];
    }
    acc = fmaf((float)s, mp_f16_to_f32(w->d) * d, acc);
    return fmaf(-(float)smin, mp_f16_to_f32(w->dmin) * d, acc);
}

void mp_q8_matmul_scalar(mp_dtype dt, const uint8_t *W, size_t row_bytes, int64_t n0, int64_t n1, const mp_q8_act *a,
                         int64_t m0, int64_t m1, float *Y, int64_t ldy, const float *bias) {
    const int64_t nb = a->K / a->block;
    const size_t bbytes = (size_t)mp_dtype_info(dt)->type_size;
    for (int64_t m = m0; m < m1; m++)
        for (int64_t n = n0; n < n1; n++) {
            float acc = bias ? bias[n] : 0.0f;
            for (int64_t b = 0; b < nb; b++) acc = block_update(dt, W + (size_t)n * row_bytes + (size_t)b * bbytes, a, m, b, acc);
            Y[m * ldy + n] = acc;
        }
}

/* ---------------------------------------------------------------- packed panels (large M) */

size_t mp_q8_panel_bytes(int64_t K, int block) {
    const int64_t nb = K / block;
    return (size_t)K * MP_Q8_NP + (size_t)nb * MP_Q8_NP * (4 + 4 + 16 * 4 + 4 * 2 * 2) + 6 * 64;
}

void mp_q8_panel_layout(mp_q8_panel *p, void *buf, int64_t K, int block) {
    const int64_t nb = K / block;
    uint8_t *b = (uint8_t *)(((uintptr_t)buf + 63) & ~(uintptr_t)63);
#define TAKE(ptr, type, count)                                                                                   \
    ptr = (type *)b;                                                                                             \
    b += ((size_t)(count) * sizeof(type) + 63) & ~(size_t)63;
    TAKE(p->q, uint8_t, K * MP_Q8_NP)
    TAKE(p->d, float, nb * MP_Q8_NP)
    TAKE(p->m, float, nb * MP_Q8_NP)
    TAKE(p->sc, int32_t, nb * 16 * MP_Q8_NP)
    TAKE(p->mins, int16_t, nb * 4 * MP_Q8_NP * 2)
#undef TAKE
}

void mp_q8_pack_panel(mp_dtype dt, const uint8_t *W, size_t row_bytes, int64_t n0, int nr, int64_t K,
                      const mp_q8_panel *p) {
    const int B = mp_q8_act_block(dt);
    const int64_t nb = K / B;
    const size_t bb = (size_t)mp_dtype_info(dt)->type_size;
    uint8_t u[256];
    for (int r = 0; r < MP_Q8_NP; r++) {
        const uint8_t *row = W + (size_t)(n0 + (r < nr ? r : 0)) * row_bytes;
        for (int64_t b = 0; b < nb; b++) {
            const uint8_t *blk = row + (size_t)b * bb;
            unpack_block(dt, blk, u);
            for (int s = 0; s < B / 4; s++) memcpy(p->q + ((b * (B / 4) + s) * MP_Q8_NP + r) * 4, u + 4 * s, 4);
            float *d = p->d + b * MP_Q8_NP + r, *m = p->m + b * MP_Q8_NP + r;
            switch (dt) {
            case MP_Q4_1: case MP_Q5_1:
                *m = mp_f16_to_f32(((const mp_f16 *)(const void *)blk)[1]);
                /* fall through */
            case MP_Q8_0: case MP_Q4_0: case MP_Q5_0:
                *d = mp_f16_to_f32(*(const mp_f16 *)(const void *)blk);
                break;
            case MP_Q6_K: {
                const mp_block_q6_K *w = (const void *)blk;
                *d = mp_f16_to_f32(w->d);
                for (int g = 0; g < 16; g++) p->sc[(b * 16 + g) * MP_Q8_NP + r] = w->scales[g];
            } break;
            default: { /* q4_K, q5_K */
                const mp_block_q4_K *w = (const void *)blk;
                *d = mp_f16_to_f32(w->d);
                *m = mp_f16_to_f32(w->dmin);
                uint8_t scm[16];
                mp_k4_unpack_scales(w->scales, scm);
                for (int j = 0; j < 8; j++) {
                    p->sc[(b * 16 + j) * MP_Q8_NP + r] = scm[j];
                    p->mins[((b * 4 + j / 2) * MP_Q8_NP + r) * 2 + (j & 1)] = scm[8 + j];
                }
            } break;
            }
        }
    }
}

/* ---------------------------------------------------------------- driver */

#define Q8_STACK_K 16384 /* without scratch, rows up to this K are quantized on the stack */

typedef struct {
    mp_dtype dt;
    const uint8_t *W;
    size_t row_bytes;
    int64_t N, M;
    const float *X;
    int64_t ldx;
    float *Y;
    int64_t ldy;
    const float *bias;
    mp_q8_act act;
    mp_q8_kernel kern;
    int64_t groups; /* column groups of MP_Q8_NG */
    mp_q8_panel_kernel pkern;
    uint8_t *panels; /* per-thread panel buffers of panel_bytes */
    size_t panel_bytes;
} q8_job;

static void quant_task(void *arg, int ith, int nth) {
    q8_job *j = arg;
    int64_t lo, hi;
    mp_split_range(j->M, ith, nth, &lo, &hi);
    mp_q8_act_quantize_rows(&j->act, j->X, j->ldx, lo, hi);
}

static void q8_task(void *arg, int ith, int nth) {
    q8_job *j = arg;
    int64_t lo, hi;
    mp_split_range(j->groups, ith, nth, &lo, &hi);
    if (lo >= hi) return;
    /* rows of X in chunks that stay in cache while the thread's weight rows stream past them */
    const int64_t MB = 16;
    for (int64_t m0 = 0; m0 < j->M; m0 += MB) {
        const int64_t m1 = j->M - m0 < MB ? j->M : m0 + MB;
        for (int64_t g = lo; g < hi; g++) {
            const int64_t n0 = g * MP_Q8_NG, n1 = n0 + MP_Q8_NG < j->N ? n0 + MP_Q8_NG : j->N;
            if (j->kern) j->kern(j->dt, j->W, j->row_bytes, n0, (int)(n1 - n0), &j->act, m0, m1, j->Y, j->ldy, j->bias);
            else mp_q8_matmul_scalar(j->dt, j->W, j->row_bytes, n0, n1, &j->act, m0, m1, j->Y, j->ldy, j->bias);
        }
    }
}

/* Large M: each thread packs its panels of MP_Q8_NP weight rows once and runs every activation row over them. */
static void panel_task(void *arg, int ith, int nth) {
    q8_job *j = arg;
    int64_t lo, hi;
    mp_split_range((j->N + MP_Q8_NP - 1) / MP_Q8_NP, ith, nth, &lo, &hi);
    if (lo >= hi) return;
    mp_q8_panel p;
    mp_q8_panel_layout(&p, j->panels + (size_t)ith * j->panel_bytes, j->act.K, j->act.block);
    for (int64_t g = lo; g < hi; g++) {
        const int64_t n0 = g * MP_Q8_NP;
        const int nr = (int)(j->N - n0 < MP_Q8_NP ? j->N - n0 : MP_Q8_NP);
        mp_q8_pack_panel(j->dt, j->W, j->row_bytes, n0, nr, j->act.K, &p);
        for (int64_t m = 0; m < j->M; m += 4)
            j->pkern(j->dt, &p, &j->act, m, (int)(j->M - m < 4 ? j->M - m : 4), j->Y, j->ldy, n0, nr, j->bias);
    }
}

int mp_q8_matmul_run(mp_exec *ex, mp_q8_kernel kern, mp_q8_panel_kernel pkern, float *Y, int64_t ldy, const float *X, int64_t ldx,
                     const mp_tensor *W, const float *bias, int64_t M) {
    const int B = mp_q8_act_block(W->dtype);
    const int64_t K = W->ne[0], N = W->ne[1];
    if (!B || K % B) return 0;
    mp_threadpool *tp = ex ? ex->tp : NULL;
    q8_job j = {.dt = W->dtype, .W = W->data, .row_bytes = W->nb[1], .N = N, .M = M, .X = X, .ldx = ldx, .Y = Y,
                .ldy = ldy, .bias = bias, .kern = kern, .pkern = pkern};
    j.groups = (N + MP_Q8_NG - 1) / MP_Q8_NG;
    /* the quantized activations live in the exec scratch; rows are processed in chunks that fit (one row
     * at a time from the stack when there is no scratch) */
    const size_t mark = ex ? mp_arena_mark(&ex->scratch) : 0;
    int64_t chunk = M;
    void *buf = NULL;
    while (ex && chunk >= 1 && !(buf = mp_arena_alloc(&ex->scratch, mp_q8_act_bytes(chunk, K, B)))) chunk /= 2;
    _Alignas(64) uint8_t stack_buf[2 * Q8_STACK_K + Q8_STACK_K / 8 + Q8_STACK_K / 8 + 6 * 64];
    if (!buf) {
        if (mp_q8_act_bytes(1, K, B) > sizeof stack_buf) return 0;
        buf = stack_buf;
        chunk = 1;
    }
    const double work = (double)M * (double)N * (double)K;
    const int nth = work < 1e5 ? 1 : mp_threadpool_size(tp);
    if (pkern && M >= MP_Q8_PANEL_MIN_M && buf != stack_buf) { /* per-thread panels after the activations */
        j.panel_bytes = (mp_q8_panel_bytes(K, B) + 63) & ~(size_t)63;
        j.panels = mp_arena_alloc(&ex->scratch, j.panel_bytes * (size_t)nth + 64);
    }
    for (int64_t r0 = 0; r0 < M; r0 += chunk) {
        const int64_t rows = M - r0 < chunk ? M - r0 : chunk;
        mp_q8_act_layout(&j.act, buf, rows, K, B);
        j.M = rows;
        j.X = X + r0 * ldx;
        j.Y = Y + r0 * ldy;
        mp_parallel_n(tp, rows >= 4 ? nth : 1, quant_task, &j);
        mp_parallel_n(tp, nth, j.panels && rows >= MP_Q8_PANEL_MIN_M ? panel_task : q8_task, &j);
    }
    if (ex) mp_arena_reset(&ex->scratch, mark);
    return 1;
}

/* ---------------------------------------------------------------- public reference twin */

void mp_ref_matmul_q8(float *Y, int64_t ldy, const float *X, int64_t ldx, const mp_tensor *W, const float *bias,
                      int64_t M) {
    const int B = mp_q8_act_block(W->dtype);
    const int64_t K = W->ne[0], N = W->ne[1];
    if (!B || K % B || M <= 0) {
        mp_ref_matmul(Y, ldy, X, ldx, W, bias, M);
        return;
    }
    void *buf = malloc(mp_q8_act_bytes(1, K, B)); /* test-only reference: may allocate */
    if (!buf) return;
    mp_q8_act a;
    for (int64_t m = 0; m < M; m++) {
        mp_q8_act_layout(&a, buf, 1, K, B);
        mp_q8_act_quantize_rows(&a, X + m * ldx, ldx, 0, 1);
        mp_q8_matmul_scalar(W->dtype, W->data, W->nb[1], 0, N, &a, 0, 1, Y + m * ldy, ldy, bias);
    }
    free(buf);
}
