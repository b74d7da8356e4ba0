/* conv.c — conv1d, depthwise conv1d, conv2d, conv3d (channels-first, zero padding, no dilation).
 * Every convolution is described by one geometry (conv_geom: up to 3 spatial dims, weight strides in
 * bytes) and computed by the same loops; weights may be F32, F16 or BF16 (other dtypes give NaN).
 * Fast paths (SIMD level >= 1): depthwise stride-1 rows in SIMD (ops_simd.inc); the others as im2col
 * + mp_gemm_f32 in column chunks that fit the exec's free scratch (else the direct loops). */
#include <math.h>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/ref.h"

typedef struct {
    int64_t c_in, c_out, t, h, w;         /* input channels/extent; c_out output channels */
    int64_t t_out, h_out, w_out;
    int kt, kh, kw, st, sh, sw, pt, ph, pw;
    int depthwise;                        /* output channel co reads only input channel co */
    const mp_tensor *wt;
    size_t s_kw, s_kh, s_kt, s_ci, s_co;  /* weight strides in bytes */
    const float *bias;
} conv_geom;

static float w_at(const conv_geom *g, int64_t co, int64_t ci, int kt, int kh, int kw) {
    const char *p = (const char *)g->wt->data + co * g->s_co + ci * g->s_ci + kt * g->s_kt + kh * g->s_kh + kw * g->s_kw;
    switch (g->wt->dtype) {
    case MP_F32: { float f; memcpy(&f, p, 4); return f; }
    case MP_F16: { mp_f16 h; memcpy(&h, p, 2); return mp_f16_to_f32(h); }
    case MP_BF16: { mp_bf16 h; memcpy(&h, p, 2); return mp_bf16_to_f32(h); }
    default: return NAN;
    }
}

static int64_t conv_out(int64_t in, int k, int stride, int pad) {
    if (stride < 1 || k < 1) return 0;
    int64_t span = in + 2 * (int64_t)pad - k;
    return span < 0 ? 0 : span / stride + 1;
}

static int conv_finish(conv_geom *g) {
    g->t_out = conv_out(g->t, g->kt, g->st, g->pt);
    g->h_out = conv_out(g->h, g->kh, g->sh, g->ph);
    g->w_out = conv_out(g->w, g->kw, g->sw, g->pw);
    return g->wt && g->wt->data && g->c_in > 0 && g->c_out > 0 && g->t_out > 0 && g->h_out > 0 && g->w_out > 0;
}

/* all outputs of one (batch item, output channel) */
static void ref_conv_channel(const conv_geom *g, float *y, const float *x, int64_t co) {
    int64_t plane = g->t * g->h * g->w;
    int64_t ci0 = g->depthwise ? co : 0, ci1 = g->depthwise ? co + 1 : g->c_in;
    float b = g->bias ? g->bias[co] : 0.0f;
    for (int64_t to = 0; to < g->t_out; to++)
        for (int64_t ho = 0; ho < g->h_out; ho++)
            for (int64_t wo = 0; wo < g->w_out; wo++) {
                float acc = 0.0f;
                for (int64_t ci = ci0; ci < ci1; ci++) {
                    const float *xc = x + ci * plane;
                    for (int a = 0; a < g->kt; a++) {
                        int64_t ti = to * g->st - g->pt + a;
                        if (ti < 0 || ti >= g->t) continue;
                        for (int bb = 0; bb < g->kh; bb++) {
                            int64_t hi = ho * g->sh - g->ph + bb;
                            if (hi < 0 || hi >= g->h) continue;
                            for (int c = 0; c < g->kw; c++) {
                                int64_t wi = wo * g->sw - g->pw + c;
                                if (wi < 0 || wi >= g->w) continue;
                                acc += w_at(g, co, g->depthwise ? 0 : ci, a, bb, c) * xc[(ti * g->h + hi) * g->w + wi];
                            }
                        }
                    }
                }
                y[(to * g->h_out + ho) * g->w_out + wo] = acc + b;
            }
}

static void ref_conv(const conv_geom *g, float *y, const float *x, int batch) {
    int64_t in_item = (g->depthwise ? g->c_out : g->c_in) * g->t * g->h * g->w;
    int64_t out_plane = g->t_out * g->h_out * g->w_out;
    for (int bi = 0; bi < batch; bi++)
        for (int64_t co = 0; co < g->c_out; co++)
            ref_conv_channel(g, y + (bi * g->c_out + co) * out_plane, x + bi * in_item, co);
}

/* ---------------------------------------------------------------- geometries */

static int geom_conv1d(conv_geom *g, const mp_tensor *w, const float *bias, int64_t c_in, int64_t l_in, int stride,
                       int pad) {
    *g = (conv_geom){.c_in = c_in, .c_out = w->ne[2], .t = 1, .h = 1, .w = l_in, .kt = 1, .kh = 1,
                     .kw = (int)w->ne[0], .st = 1, .sh = 1, .sw = stride, .pw = pad, .wt = w, .s_kw = w->nb[0],
                     .s_ci = w->nb[1], .s_co = w->nb[2], .bias = bias};
    return w->ne[1] == c_in && conv_finish(g);
}

static int geom_conv1d_dw(conv_geom *g, const mp_tensor *w, const float *bias, int64_t c, int64_t l_in, int stride,
                          int pad) {
    /* w->ne = {K, 1, C} or {K, C} */
    int three = w->ne[1] == 1 && w->ne[2] == c;
    *g = (conv_geom){.c_in = c, .c_out = c, .t = 1, .h = 1, .w = l_in, .kt = 1, .kh = 1, .kw = (int)w->ne[0],
                     .st = 1, .sh = 1, .sw = stride, .pw = pad, .depthwise = 1, .wt = w, .s_kw = w->nb[0],
                     .s_co = three ? w->nb[2] : w->nb[1], .bias = bias};
    return (three || w->ne[1] == c) && conv_finish(g);
}

static int geom_conv2d(conv_geom *g, const mp_tensor *w, const float *bias, int64_t c_in, int64_t h, int64_t wd,
                       int stride_h, int stride_w, int pad_h, int pad_w) {
    *g = (conv_geom){.c_in = c_in, .c_out = w->ne[3], .t = 1, .h = h, .w = wd, .kt = 1, .kh = (int)w->ne[1],
                     .kw = (int)w->ne[0], .st = 1, .sh = stride_h, .sw = stride_w, .ph = pad_h, .pw = pad_w,
                     .wt = w, .s_kw = w->nb[0], .s_kh = w->nb[1], .s_ci = w->nb[2], .s_co = w->nb[3], .bias = bias};
    return w->ne[2] == c_in && conv_finish(g);
}

static int geom_conv3d(conv_geom *g, const mp_tensor *w, int kt, const float *bias, int64_t c_in, int64_t t,
                       int64_t h, int64_t wd, int stride_t, int stride_h, int stride_w) {
    /* w->ne = {KW, KH, KT*C_in, C_out}, plane index ci*KT + kt (PyTorch's [C_out][C_in][KT][KH][KW]) */
    *g = (conv_geom){.c_in = c_in, .c_out = w->ne[3], .t = t, .h = h, .w = wd, .kt = kt, .kh = (int)w->ne[1],
                     .kw = (int)w->ne[0], .st = stride_t, .sh = stride_h, .sw = stride_w, .wt = w,
                     .s_kw = w->nb[0], .s_kh = w->nb[1], .s_kt = w->nb[2], .s_ci = (size_t)kt * w->nb[2],
                     .s_co = w->nb[3], .bias = bias};
    return kt > 0 && w->ne[2] == (int64_t)kt * c_in && conv_finish(g);
}

/* ---------------------------------------------------------------- references */

void mp_ref_conv1d(float *y, const float *x, const mp_tensor *w, const float *bias, int batch, int64_t c_in,
                   int64_t l_in, int stride, int pad) {
    conv_geom g;
    if (geom_conv1d(&g, w, bias, c_in, l_in, stride, pad)) ref_conv(&g, y, x, batch);
}

void mp_ref_conv1d_dw(float *y, const float *x, const mp_tensor *w, const float *bias, int batch, int64_t c,
                      int64_t l_in, int stride, int pad) {
    conv_geom g;
    if (geom_conv1d_dw(&g, w, bias, c, l_in, stride, pad)) ref_conv(&g, y, x, batch);
}

void mp_ref_conv2d(float *y, const float *x, const mp_tensor *w, const float *bias, int batch, int64_t c_in,
                   int64_t h, int64_t wd, int stride_h, int stride_w, int pad_h, int pad_w) {
    conv_geom g;
    if (geom_conv2d(&g, w, bias, c_in, h, wd, stride_h, stride_w, pad_h, pad_w)) ref_conv(&g, y, x, batch);
}

void mp_ref_conv3d(float *y, const float *x, const mp_tensor *w, int kt, const float *bias, int batch,
                   int64_t c_in, int64_t t, int64_t h, int64_t wd, int stride_t, int stride_h, int stride_w) {
    conv_geom g;
    if (geom_conv3d(&g, w, kt, bias, c_in, t, h, wd, stride_t, stride_h, stride_w)) ref_conv(&g, y, x, batch);
}

/* ---------------------------------------------------------------- dispatch */

typedef struct {
    const conv_geom *g;
    float *y;
    const float *x;
    float *col, *wf;
    int64_t p0, pc, kt;
    int level;
} conv_ctx;

/* direct path: items are (batch item, output channel) */
static void conv_range(void *vctx, int64_t lo, int64_t hi) {
    const conv_ctx *c = (const conv_ctx *)vctx;
    const conv_geom *g = c->g;
    int64_t in_item = (g->depthwise ? g->c_out : g->c_in) * g->t * g->h * g->w;
    int64_t out_plane = g->t_out * g->h_out * g->w_out;
    for (int64_t it = lo; it < hi; it++) {
        int64_t bi = it / g->c_out, co = it % g->c_out;
        ref_conv_channel(g, c->y + it * out_plane, c->x + bi * in_item, co);
    }
}

/* depthwise, stride 1, SIMD rows: items are (batch item, channel) */
#define DW_MAX_K 256
static void dw_range(void *vctx, int64_t lo, int64_t hi) {
    const conv_ctx *c = (const conv_ctx *)vctx;
    const conv_geom *g = c->g;
    float w[DW_MAX_K];
    for (int64_t it = lo; it < hi; it++) {
        int64_t ch = it % g->c_out;
        for (int k = 0; k < g->kw; k++) w[k] = w_at(g, ch, 0, 0, 0, k);
        MP_PICK(c->level, mp_k_dwconv_row, NULL)(c->y + it * g->w_out, c->x + it * g->w, w, g->kw, g->w, g->w_out, g->pw,
                                                 g->bias ? g->bias[ch] : 0.0f);
    }
}

/* im2col rows [lo, hi) of K_total = c_in*kt*kh*kw for output columns [p0, p0 + pc) */
static void im2col_range(void *vctx, int64_t lo, int64_t hi) {
    const conv_ctx *c = (const conv_ctx *)vctx;
    const conv_geom *g = c->g;
    int64_t hw_out = g->h_out * g->w_out;
    for (int64_t r = lo; r < hi; r++) {
        int kw = (int)(r % g->kw), kh = (int)(r / g->kw % g->kh), kt = (int)(r / ((int64_t)g->kw * g->kh) % g->kt);
        int64_t ci = r / ((int64_t)g->kw * g->kh * g->kt);
        const float *xc = c->x + ci * g->t * g->h * g->w;
        float *dst = c->col + r * c->pc;
        for (int64_t j = 0; j < c->pc; j++) {
            int64_t pidx = c->p0 + j, to = pidx / hw_out, ho = pidx / g->w_out % g->h_out, wo = pidx % g->w_out;
            int64_t ti = to * g->st + kt - g->pt, hi_ = ho * g->sh + kh - g->ph, wi = wo * g->sw + kw - g->pw;
            dst[j] = ti >= 0 && ti < g->t && hi_ >= 0 && hi_ < g->h && wi >= 0 && wi < g->w
                         ? xc[(ti * g->h + hi_) * g->w + wi] : 0.0f;
        }
    }
}

/* weights as F32 [c_out][K_total], rows [lo, hi) */
static void wconv_range(void *vctx, int64_t lo, int64_t hi) {
    const conv_ctx *c = (const conv_ctx *)vctx;
    const conv_geom *g = c->g;
    for (int64_t co = lo; co < hi; co++) {
        float *dst = c->wf + co * c->kt;
        int64_t r = 0;
        for (int64_t ci = 0; ci < g->c_in; ci++)
            for (int a = 0; a < g->kt; a++)
                for (int b = 0; b < g->kh; b++)
                    for (int k = 0; k < g->kw; k++) dst[r++] = w_at(g, co, ci, a, b, k);
    }
}

/* im2col + mp_gemm_f32, in column chunks that fit the exec's scratch. 0 if the scratch is too small. */
static int conv_gemm(mp_exec *ex, const conv_geom *g, float *y, const float *x, int batch) {
    int64_t K = (int64_t)g->c_in * g->kt * g->kh * g->kw, P = g->t_out * g->h_out * g->w_out;
    int64_t in_item = g->c_in * g->t * g->h * g->w;
    size_t mark = mp_arena_mark(&ex->scratch);
    conv_ctx c = {.g = g, .kt = K, .level = mp_cpu_level()};
    size_t wsz = (size_t)(g->c_out * g->kt * g->kh * g->kw) * (size_t)g->c_in;
    int contiguous_f32 = g->wt->dtype == MP_F32 && g->s_kw == 4 && g->s_kh == (size_t)g->kw * 4 &&
                         g->s_kt == (size_t)g->kw * g->kh * 4 && g->s_ci == (size_t)g->kw * g->kh * g->kt * 4 &&
                         g->s_co == (size_t)K * 4;
    if (contiguous_f32) {
        c.wf = (float *)g->wt->data;
    } else {
        c.wf = mp_arena_alloc(&ex->scratch, wsz * sizeof(float));
        if (!c.wf) return 0;
        mp_cpu_parallel_for(ex, g->c_out, 1 + 65536 / (K + 1), 1, wconv_range, &c);
    }
    size_t avail = ex->scratch.size > ex->scratch.used + 64 ? ex->scratch.size - ex->scratch.used - 64 : 0;
    int64_t pc = (int64_t)(avail / sizeof(float)) / (K > 0 ? K : 1);
    if (pc > P) pc = P;
    else pc = pc / 16 * 16;
    if (pc < 16 && pc < P) {
        mp_arena_reset(&ex->scratch, mark);
        return 0;
    }
    c.col = mp_arena_alloc(&ex->scratch, (size_t)(K * pc) * sizeof(float));
    if (!c.col) {
        mp_arena_reset(&ex->scratch, mark);
        return 0;
    }
    for (int bi = 0; bi < batch; bi++) {
        float *yb = y + (int64_t)bi * g->c_out * P;
        c.x = x + bi * in_item;
        for (int64_t co = 0; co < g->c_out; co++) {
            float b = g->bias ? g->bias[co] : 0.0f;
            for (int64_t j = 0; j < P; j++) yb[co * P + j] = b;
        }
        for (int64_t p0 = 0; p0 < P; p0 += pc) {
            c.p0 = p0;
            c.pc = P - p0 < pc ? P - p0 : pc;
            mp_cpu_parallel_for(ex, K, 1 + 16384 / c.pc, 1, im2col_range, &c);
            /* y[co][p0..] = bias + W[co][:] . col[:][p0..] */
            mp_gemm_f32(ex, g->c_out, c.pc, K, 1.0f, c.wf, K, c.col, c.pc, 0, 1.0f, yb + p0, P, 1, 0, 0, 0);
        }
    }
    mp_arena_reset(&ex->scratch, mark);
    return 1;
}

static void conv_run(mp_exec *ex, const conv_geom *g, float *y, const float *x, int batch) {
    conv_ctx c = {.g = g, .y = y, .x = x, .level = mp_cpu_level()};
    if (c.level >= 1 && g->depthwise && g->sw == 1 && g->kw <= DW_MAX_K) {
        int64_t min_items = 1 + 16384 / (g->w_out * g->kw + 1);
        mp_cpu_parallel_for(ex, (int64_t)batch * g->c_out, min_items, 1, dw_range, &c);
        return;
    }
    if (c.level >= 1 && ex && !g->depthwise && conv_gemm(ex, g, y, x, batch)) return;
    int64_t per = g->t_out * g->h_out * g->w_out * (g->depthwise ? 1 : g->c_in) * g->kt * g->kh * g->kw;
    int64_t min_items = per > 0 ? (65536 + per - 1) / per : 1;
    mp_cpu_parallel_for(ex, (int64_t)batch * g->c_out, min_items, 1, conv_range, &c);
}

void mp_conv1d(mp_exec *ex, float *y, const float *x, const mp_tensor *w, const float *bias, int batch,
               int64_t c_in, int64_t l_in, int stride, int pad) {
    MP_CUDA_DISPATCH(ex, mp_cuda_conv1d(ex, y, x, w, bias, batch, c_in, l_in, stride, pad));
    conv_geom g;
    if (geom_conv1d(&g, w, bias, c_in, l_in, stride, pad)) conv_run(ex, &g, y, x, batch);
}

void mp_conv1d_dw(mp_exec *ex, float *y, const float *x, const mp_tensor *w, const float *bias, int batch,
                  int64_t c, int64_t l_in, int stride, int pad) {
    MP_CUDA_DISPATCH(ex, mp_cuda_conv1d_dw(ex, y, x, w, bias, batch, c, l_in, stride, pad));
    conv_geom g;
    if (geom_conv1d_dw(&g, w, bias, c, l_in, stride, pad)) conv_run(ex, &g, y, x, batch);
}

void mp_conv2d(mp_exec *ex, float *y, const float *x, const mp_tensor *w, const float *bias, int batch,
               int64_t c_in, int64_t h, int64_t wd, int stride_h, int stride_w, int pad_h, int pad_w) {
    MP_CUDA_DISPATCH(ex, mp_cuda_conv2d(ex, y, x, w, bias, batch, c_in, h, wd, stride_h, stride_w, pad_h, pad_w));
    conv_geom g;
    if (geom_conv2d(&g, w, bias, c_in, h, wd, stride_h, stride_w, pad_h, pad_w)) conv_run(ex, &g, y, x, batch);
}

void mp_conv3d(mp_exec *ex, float *y, const float *x, const mp_tensor *w, int kt, const float *bias, int batch,
               int64_t c_in, int64_t t, int64_t h, int64_t wd, int stride_t, int stride_h, int stride_w) {
    MP_CUDA_DISPATCH(ex, mp_cuda_conv3d(ex, y, x, w, kt, bias, batch, c_in, t, h, wd, stride_t, stride_h, stride_w));
    conv_geom g;
    if (geom_conv3d(&g, w, kt, bias, c_in, t, h, wd, stride_t, stride_h, stride_w)) conv_run(ex, &g, y, x, batch);
}
