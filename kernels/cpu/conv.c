/* conv.c — conv1d, depthwise conv1d, conv2d, conv3d (channels-first, zero padding, no dilation).
 * Every convolution is described by one geometry (conv_geom: up to 3 spatial dims, weight strides in
 * bytes) and computed by the same loops; weights may be F32, F16 or BF16 (other dtypes give NaN). */
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
} conv_ctx;

/* items are (batch item, output channel) */
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

static void conv_run(const mp_exec *ex, const conv_geom *g, float *y, const float *x, int batch) {
    conv_ctx c = {g, y, x};
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
