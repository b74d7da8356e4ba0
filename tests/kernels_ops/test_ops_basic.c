/* test_ops_basic.c — every CPU op of kernels/ops.h (except matmul/quant/get_rows/convert) against a
 * naive double-precision computation written here from the textbook formula, at every SIMD level the
 * CPU has, with 1 and 3 threads (results must be bit-identical across thread counts). */
#include <float.h>
#include <math.h>

#include "kernels/cpu/ref.h"
#include "ops_test.h"

/* max |a-b| / (1 + |b|) against a double reference */
static double relerr(const float *a, const double *b, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]) / (1.0 + fabs(b[i]));
        if (!(d <= m)) m = d; /* NaN propagates */
    }
    return m;
}

static const int64_t sizes[] = {1, 7, 33, 255, 4097};
#define NSIZES (int)(sizeof sizes / sizeof sizes[0])

/* ---------------------------------------------------------------- elementwise */

static double gelu_d(double x, int kind) {
    if (kind == MP_GELU_TANH) return 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
    if (kind == MP_GELU_QUICK) return x / (1 + exp(-1.702 * x));
    return 0.5 * x * (1 + erf(x / sqrt(2.0)));
}

static void test_elementwise(int level) {
    for (int si = 0; si < NSIZES; si++) {
        int64_t n = sizes[si] * 13; /* up to 53261: crosses the threading threshold */
        float *a = randv(n, -8, 8), *b = randv(n, -3, 3);
        double *ref = malloc((size_t)n * sizeof(double));
        float *y1 = malloc((size_t)n * 4), *y3 = malloc((size_t)n * 4);
        for (int op = 0; op < 8; op++) {
            for (int t = 0; t < 2; t++) {
                mp_exec *ex = t ? &ex3 : &ex1;
                float *y = t ? y3 : y1;
                switch (op) {
                case 0: mp_add(ex, y, a, b, n); break;
                case 1: mp_mul(ex, y, a, b, n); break;
                case 2: mp_scale(ex, y, a, -0.37f, n); break;
                case 3: mp_gelu(ex, y, a, n, MP_GELU_ERF); break;
                case 4: mp_gelu(ex, y, a, n, MP_GELU_TANH); break;
                case 5: mp_gelu(ex, y, a, n, MP_GELU_QUICK); break;
                case 6: mp_silu(ex, y, a, n); break;
                case 7: mp_swiglu(ex, y, a, b, n); break;
                }
            }
            for (int64_t i = 0; i < n; i++) {
                double x = a[i], z = b[i];
                switch (op) {
                case 0: ref[i] = x + z; break;
                case 1: ref[i] = x * z; break;
                case 2: ref[i] = -0.37f * x; break;
                case 3: ref[i] = gelu_d(x, MP_GELU_ERF); break;
                case 4: ref[i] = gelu_d(x, MP_GELU_TANH); break;
                case 5: ref[i] = gelu_d(x, MP_GELU_QUICK); break;
                case 6: ref[i] = x / (1 + exp(-x)); break;
                case 7: ref[i] = x / (1 + exp(-x)) * z; break;
                }
            }
            double e = relerr(y1, ref, n);
            CHECKF(e < 2e-6, "level %d elementwise op %d n=%lld err %g", level, op, (long long)n, e);
            CHECKF(bits_equal(y1, y3, n), "level %d elementwise op %d n=%lld differs with 3 threads", level, op,
                   (long long)n);
        }
        /* in place: y aliases a */
        float *c = dup(a, n);
        mp_add(&ex3, c, c, b, n);
        mp_add(&ex1, y1, a, b, n);
        CHECK(bits_equal(c, y1, n));
        free(c);
        free(a), free(b), free(ref), free(y1), free(y3);
    }
    /* row broadcast */
    int64_t rows = 37, cols = 255;
    float *x = randv(rows * cols, -2, 2), *bb = randv(cols, -2, 2), *y = malloc(rows * cols * 4), *y3 = malloc(rows * cols * 4);
    double *ref = malloc(rows * cols * sizeof(double));
    for (int op = 0; op < 2; op++) {
        if (op == 0) mp_add_rows(&ex1, y, x, bb, rows, cols), mp_add_rows(&ex3, y3, x, bb, rows, cols);
        else mp_mul_rows(&ex1, y, x, bb, rows, cols), mp_mul_rows(&ex3, y3, x, bb, rows, cols);
        for (int64_t r = 0; r < rows; r++)
            for (int64_t c = 0; c < cols; c++)
                ref[r * cols + c] = op == 0 ? (double)x[r * cols + c] + bb[c] : (double)x[r * cols + c] * bb[c];
        CHECKF(relerr(y, ref, rows * cols) < 1e-6, "level %d add/mul_rows op %d", level, op);
        CHECK(bits_equal(y, y3, rows * cols));
    }
    free(x), free(bb), free(y), free(y3), free(ref);
}

/* ---------------------------------------------------------------- norms, softmax */

static void test_norms(int level) {
    for (int si = 0; si < NSIZES; si++) {
        int64_t cols = sizes[si], rows = 19;
        float *x = randv(rows * cols, -3, 5), *w = randv(cols, -2, 2), *b = randv(cols, -1, 1);
        float *y = malloc(rows * cols * 4), *y3 = malloc(rows * cols * 4);
        double *ref = malloc(rows * cols * sizeof(double));
        for (int kind = 0; kind < 3; kind++) {
            float eps = 1e-5f;
            if (kind == 0) mp_layernorm(&ex1, y, x, w, b, rows, cols, eps), mp_layernorm(&ex3, y3, x, w, b, rows, cols, eps);
            else if (kind == 1) mp_layernorm(&ex1, y, x, NULL, NULL, rows, cols, eps), mp_layernorm(&ex3, y3, x, NULL, NULL, rows, cols, eps);
            else mp_rmsnorm(&ex1, y, x, w, rows, cols, eps), mp_rmsnorm(&ex3, y3, x, w, rows, cols, eps);
            for (int64_t r = 0; r < rows; r++) {
                const float *xr = x + r * cols;
                double mean = 0, var = 0, ms = 0;
                for (int64_t c = 0; c < cols; c++) mean += xr[c], ms += (double)xr[c] * xr[c];
                mean /= cols, ms /= cols;
                for (int64_t c = 0; c < cols; c++) var += (xr[c] - mean) * (xr[c] - mean);
                var /= cols;
                for (int64_t c = 0; c < cols; c++) {
                    double v;
                    if (kind == 2) v = xr[c] / sqrt(ms + eps) * w[c];
                    else {
                        v = (xr[c] - mean) / sqrt(var + eps);
                        if (kind == 0) v = v * w[c] + b[c];
                    }
                    ref[r * cols + c] = v;
                }
            }
            double e = relerr(y, ref, rows * cols);
            CHECKF(e < 3e-6, "level %d norm kind %d cols=%lld err %g", level, kind, (long long)cols, e);
            CHECK(bits_equal(y, y3, rows * cols));
        }
        free(x), free(w), free(b), free(y), free(y3), free(ref);
    }
}

static void test_softmax(int level) {
    for (int si = 0; si < NSIZES; si++) {
        int64_t cols = sizes[si], rows = 9;
        float *x = randv(rows * cols, -10, 10), *mask = randv(rows * cols, -4, 0);
        for (int64_t i = 0; i < rows * cols; i += 5) mask[i] = -INFINITY;
        double *ref = malloc(rows * cols * sizeof(double));
        for (int variant = 0; variant < 4; variant++) {
            int causal = variant >= 2;
            int64_t off = variant == 3 ? cols - rows : 0; /* 3: continuing a cache; may be negative */
            const float *m = variant & 1 ? mask : NULL;
            float *y = dup(x, rows * cols), *y3 = dup(x, rows * cols);
            mp_softmax(&ex1, y, rows, cols, m, causal, off);
            mp_softmax(&ex3, y3, rows, cols, m, causal, off);
            for (int64_t r = 0; r < rows; r++) {
                double mx = -INFINITY, sum = 0;
                double *rr = ref + r * cols;
                for (int64_t c = 0; c < cols; c++) {
                    double v = x[r * cols + c] + (m ? m[r * cols + c] : 0);
                    if (causal && c > r + off) v = -INFINITY;
                    rr[c] = v;
                    if (v > mx) mx = v;
                }
                for (int64_t c = 0; c < cols; c++) sum += rr[c] = mx == -INFINITY ? 0 : exp(rr[c] - mx);
                for (int64_t c = 0; c < cols; c++) rr[c] = sum > 0 ? rr[c] / sum : 0;
            }
            double e = relerr(y, ref, rows * cols);
            CHECKF(e < 2e-6, "level %d softmax variant %d cols=%lld err %g", level, variant, (long long)cols, e);
            CHECK(bits_equal(y, y3, rows * cols));
            free(y), free(y3);
        }
        free(x), free(mask), free(ref);
    }
}

/* ---------------------------------------------------------------- rope */

/* naive rope for one head of one token: angle of pair i = pos_s * freq_scale * base^(-2i/n) / ff[i] */
static void rope_naive(double *o, const float *x, int head_dim, int n_rot, int neox, const double *ang, double mag) {
    for (int d = 0; d < head_dim; d++) o[d] = x[d];
    int half = n_rot / 2;
    for (int i = 0; i < half; i++) {
        int i0 = neox ? i : 2 * i, i1 = neox ? i + half : 2 * i + 1;
        double c = cos(ang[i]) * mag, s = sin(ang[i]) * mag;
        o[i0] = x[i0] * c - x[i1] * s;
        o[i1] = x[i0] * s + x[i1] * c;
    }
}

static void test_rope(int level) {
    const int n_head = 3, n_tok = 11;
    int head_dims[] = {64, 128, 80};
    for (int hd_i = 0; hd_i < 3; hd_i++)
        for (int variant = 0; variant < 7; variant++) {
            int hd = head_dims[hd_i];
            mp_rope_params p = {.head_dim = hd, .n_rot = hd, .mode = MP_ROPE_NORMAL, .theta = 10000.0f,
                                .freq_scale = 1.0f, .attn_factor = 1.0f};
            float ff[512];
            int32_t pos[4 * 11];
            for (int t = 0; t < n_tok; t++) pos[t] = 3 * t + (t == 5 ? 200 : 0);
            switch (variant) {
            case 1: p.mode = MP_ROPE_NEOX; break;
            case 2: p.n_rot = hd / 2; break;                            /* partial, normal */
            case 3: p.mode = MP_ROPE_NEOX, p.n_rot = hd / 4, p.freq_scale = 0.25f, p.theta = 500000; break;
            case 4: /* llama3-style per-pair divisors */
                for (int i = 0; i < hd / 2; i++) ff[i] = 1.0f + (float)(i % 7);
                p.freq_factors = ff, p.mode = MP_ROPE_NEOX;
                break;
            case 5: /* text M-RoPE (sections t,h,w over n_rot/2 pairs) */
                p.mode = MP_ROPE_NEOX, p.sections[0] = hd / 8, p.sections[1] = hd / 8 + 2, p.sections[2] = hd / 4 - 2;
                for (int t = 0; t < n_tok; t++) pos[4 * t] = t, pos[4 * t + 1] = 7 + t / 3, pos[4 * t + 2] = 11 + t % 3, pos[4 * t + 3] = 0;
                break;
            case 6: /* vision 2-D rope: two independent sections over hd/2 pairs */
                p.mode = MP_ROPE_NEOX, p.sections[0] = hd / 4, p.sections[1] = hd / 4, p.mrope_vision = 1;
                for (int t = 0; t < n_tok; t++) pos[4 * t] = t / 4, pos[4 * t + 1] = t % 4, pos[4 * t + 2] = 0, pos[4 * t + 3] = 0;
                break;
            }
            int64_t stride = n_head * hd + 5;
            float *x = randv(n_tok * stride, -1, 1), *y = dup(x, n_tok * stride), *y3 = dup(x, n_tok * stride);
            mp_rope(&ex1, y, n_tok, n_head, stride, pos, &p);
            mp_rope(&ex3, y3, n_tok, n_head, stride, pos, &p);
            CHECK(bits_equal(y, y3, n_tok * stride));
            double worst = 0;
            for (int t = 0; t < n_tok; t++) {
                double ang[512];
                int half = p.n_rot / 2;
                for (int i = 0; i < half; i++) {
                    double ps = pos[t], expo = (double)i / half;
                    if (variant == 5) {
                        int s = i < p.sections[0] ? 0 : i < p.sections[0] + p.sections[1] ? 1 : 2;
                        ps = pos[4 * t + s];
                    } else if (variant == 6) {
                        int s = i < p.sections[0] ? 0 : 1;
                        ps = pos[4 * t + s];
                        expo = (double)(i - s * p.sections[0]) / (half / 2);
                    }
                    ang[i] = ps * p.freq_scale * pow(p.theta, -expo) / (p.freq_factors ? p.freq_factors[i] : 1.0);
                }
                for (int h = 0; h < n_head; h++) {
                    double o[256];
                    const float *xh = x + t * stride + h * hd;
                    rope_naive(o, xh, hd, p.n_rot, p.mode == MP_ROPE_NEOX, ang, 1.0);
                    double e = relerr(y + t * stride + h * hd, o, hd);
                    if (e > worst) worst = e;
                }
                for (int d = n_head * hd; d < stride; d++) CHECK(y[t * stride + d] == x[t * stride + d]);
            }
            /* angles up to ~230 rad in float: allow the float rounding of the angle itself */
            CHECKF(worst < 5e-5, "level %d rope hd=%d variant %d err %g", level, hd, variant, worst);
            free(x), free(y), free(y3);
        }
    /* YaRN: the ramp between interpolated and extrapolated angles and the magnitude, from the YaRN paper
     * as ggml implements it (corr dims from beta_fast/beta_slow over n_ctx_orig). */
    {
        int hd = 64, half = 32;
        mp_rope_params p = {.head_dim = hd, .n_rot = hd, .mode = MP_ROPE_NEOX, .theta = 10000.0f, .freq_scale = 0.25f,
                            .ext_factor = 1.0f, .attn_factor = 1.0f, .beta_fast = 32, .beta_slow = 1,
                            .n_ctx_orig = 4096};
        int32_t pos[3] = {0, 17, 9000};
        float *x = randv(3 * hd, -1, 1), *y = dup(x, 3 * hd);
        mp_rope(&ex3, y, 3, 1, hd, pos, &p);
        double cd = hd * log(4096 / (32 * 2 * M_PI)) / (2 * log(10000.0));
        double ce = hd * log(4096 / (1 * 2 * M_PI)) / (2 * log(10000.0));
        double lo = fmax(0, floor(cd)), hi = fmin(hd - 1, ceil(ce));
        double mag = 1 + 0.1 * log(1 / 0.25);
        double worst = 0;
        for (int t = 0; t < 3; t++) {
            double ang[32], o[64];
            for (int i = 0; i < half; i++) {
                double ex_ = pos[t] * pow(10000.0, -(double)i / half), in_ = ex_ * 0.25;
                double ramp = 1 - fmin(1, fmax(0, (i - lo) / fmax(0.001, hi - lo)));
                ang[i] = in_ * (1 - ramp) + ex_ * ramp;
            }
            rope_naive(o, x + t * hd, hd, hd, 1, ang, mag);
            double e = relerr(y + t * hd, o, hd);
            if (e > worst) worst = e;
        }
        CHECKF(worst < 1e-3, "level %d yarn err %g", level, worst); /* angle 9000 in float */
        free(x), free(y);
    }
}

/* ---------------------------------------------------------------- attention */

static void attn_naive(double *out, const float *q, const float *k, const float *v, const mp_attn_params *p) {
    int g = p->n_head / p->n_kv_head, d = p->head_dim;
    double *s = malloc((size_t)(p->n_kv > 0 ? p->n_kv : 1) * sizeof(double));
    for (int i = 0; i < p->n_q; i++)
        for (int h = 0; h < p->n_head; h++) {
            const float *qi = q + i * p->q_stride + h * d;
            double mx = -INFINITY, sum = 0;
            for (int j = 0; j < p->n_kv; j++) {
                const float *kj = k + j * p->k_stride + (h / g) * d;
                double dot = 0;
                for (int c = 0; c < d; c++) dot += (double)qi[c] * kj[c];
                double val = dot * p->scale + (p->mask ? p->mask[i * p->mask_stride + j] : 0);
                if (p->causal && j > i + p->causal_offset) val = -INFINITY;
                s[j] = val;
                if (val > mx) mx = val;
            }
            for (int j = 0; j < p->n_kv; j++) sum += s[j] = mx == -INFINITY ? 0 : exp(s[j] - mx);
            double *o = out + (int64_t)(i * p->n_head + h) * d;
            for (int c = 0; c < d; c++) {
                double acc = 0;
                for (int j = 0; j < p->n_kv; j++) acc += s[j] * v[j * p->v_stride + (h / g) * d + c];
                o[c] = sum > 0 ? acc / sum : 0;
            }
        }
    free(s);
}

static void test_attention(int level) {
    struct { int n_q, n_kv, n_head, n_kv_head, hd, causal, masked; } cases[] = {
        {1, 1, 1, 1, 1, 0, 0},     {7, 7, 4, 4, 64, 1, 0},    {1, 33, 8, 2, 64, 1, 0},  {33, 33, 6, 3, 80, 1, 1},
        {5, 255, 4, 1, 128, 1, 0}, {17, 40, 2, 2, 7, 0, 1},   {64, 97, 4, 2, 32, 1, 0}, {3, 4097, 2, 1, 64, 0, 0},
        {9, 20, 2, 1, 16, 1, 0} /* offset negative below: first rows see nothing */};
    for (int ci = 0; ci < (int)(sizeof cases / sizeof cases[0]); ci++) {
        mp_attn_params p = {.n_q = cases[ci].n_q, .n_kv = cases[ci].n_kv, .n_head = cases[ci].n_head,
                            .n_kv_head = cases[ci].n_kv_head, .head_dim = cases[ci].hd, .causal = cases[ci].causal};
        int d = p.head_dim;
        p.q_stride = p.n_head * d + 3, p.k_stride = p.n_kv_head * d + 1, p.v_stride = 2 * p.n_kv_head * d;
        p.o_stride = p.n_head * d + 2, p.scale = 1.0f / sqrtf((float)d);
        p.causal_offset = ci == 8 ? -3 : p.n_kv - p.n_q;
        float *mask = NULL;
        if (cases[ci].masked) {
            p.mask_stride = p.n_kv + 4;
            mask = randv((int64_t)p.n_q * p.mask_stride, -3, 0);
            for (int64_t i = 0; i < (int64_t)p.n_q * p.mask_stride; i += 3) mask[i] = -INFINITY;
            p.mask = mask;
        }
        float *q = randv((int64_t)p.n_q * p.q_stride, -2, 2), *k = randv((int64_t)p.n_kv * p.k_stride, -2, 2);
        float *v = randv((int64_t)p.n_kv * p.v_stride, -2, 2);
        int64_t on = (int64_t)p.n_q * p.o_stride;
        float *o1 = randv(on, 5, 6), *o3 = dup(o1, on);
        mp_attention(&ex1, o1, q, k, v, &p);
        mp_attention(&ex3, o3, q, k, v, &p);
        CHECKF(bits_equal(o1, o3, on), "level %d attention case %d thread dependence", level, ci);
        double *ref = malloc((size_t)p.n_q * p.n_head * d * sizeof(double));
        attn_naive(ref, q, k, v, &p);
        double worst = 0;
        for (int i = 0; i < p.n_q; i++) {
            double e = relerr(o1 + i * p.o_stride, ref + (int64_t)i * p.n_head * d, p.n_head * d);
            if (e > worst) worst = e;
            CHECK(o1[i * p.o_stride + p.n_head * d] >= 5); /* padding untouched */
        }
        CHECKF(worst < 2e-5, "level %d attention case %d err %g", level, ci, worst);
        free(q), free(k), free(v), free(o1), free(o3), free(ref), free(mask);
    }
}

/* ---------------------------------------------------------------- convolutions */

static void set_weights(mp_tensor *t, mp_dtype dt, int ndim, const int64_t *ne, const float *w32, void **store) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= ne[i];
    void *buf = malloc((size_t)n * 4);
    for (int64_t i = 0; i < n; i++) {
        if (dt == MP_F32) ((float *)buf)[i] = w32[i];
        else if (dt == MP_F16) ((mp_f16 *)buf)[i] = mp_f32_to_f16(w32[i]);
        else ((mp_bf16 *)buf)[i] = mp_f32_to_bf16(w32[i]);
    }
    mp_tensor_init(t, dt, ndim, ne, buf);
    *store = buf;
}

static double wval(const mp_tensor *t, int64_t i) {
    if (t->dtype == MP_F32) return ((float *)t->data)[i];
    if (t->dtype == MP_F16) return mp_f16_to_f32(((mp_f16 *)t->data)[i]);
    return mp_bf16_to_f32(((mp_bf16 *)t->data)[i]);
}

/* naive 3-D conv: x[ci][T][H][W], weight index fn gives the flat weight index */
static void conv_naive(double *y, const float *x, const mp_tensor *w, const float *bias, int64_t c_in, int64_t c_out,
                       int64_t T, int64_t H, int64_t W, int kt, int kh, int kw, int st, int sh, int sw, int pt, int ph,
                       int pw, int dw, int64_t To, int64_t Ho, int64_t Wo) {
    for (int64_t co = 0; co < c_out; co++)
        for (int64_t to = 0; to < To; to++)
            for (int64_t ho = 0; ho < Ho; ho++)
                for (int64_t wo = 0; wo < Wo; wo++) {
                    double acc = bias ? bias[co] : 0;
                    for (int64_t ci = dw ? co : 0; ci < (dw ? co + 1 : c_in); ci++)
                        for (int a = 0; a < kt; a++)
                            for (int b = 0; b < kh; b++)
                                for (int c = 0; c < kw; c++) {
                                    int64_t ti = to * st - pt + a, hi = ho * sh - ph + b, wi = wo * sw - pw + c;
                                    if (ti < 0 || ti >= T || hi < 0 || hi >= H || wi < 0 || wi >= W) continue;
                                    /* PyTorch layout [co][ci][kt][kh][kw] (depthwise: [co][kt][kh][kw]) */
                                    int64_t widx = dw ? ((co * kt + a) * kh + b) * kw + c
                                                      : ((((co * c_in) + ci) * kt + a) * kh + b) * kw + c;
                                    acc += wval(w, widx) * x[((ci * T + ti) * H + hi) * W + wi];
                                }
                    y[((co * To + to) * Ho + ho) * Wo + wo] = acc;
                }
}

static void test_conv(int level) {
    mp_dtype dts[] = {MP_F32, MP_F16, MP_BF16};
    for (int di = 0; di < 3; di++) {
        mp_dtype dt = dts[di];
        void *store;
        mp_tensor w;
        /* conv1d: whisper front-end shapes, shrunk; stride 1 and 2 */
        for (int s = 1; s <= 2; s++) {
            int64_t ci = 7, co = 5, L = 33, K = 3;
            int64_t ne[3] = {K, ci, co}, Lo = (L + 2 - K) / s + 1;
            float *w32 = randv(K * ci * co, -1, 1), *x = randv(2 * ci * L, -1, 1), *bias = randv(co, -1, 1);
            set_weights(&w, dt, 3, ne, w32, &store);
            float *y = malloc(2 * co * Lo * 4), *y3 = malloc(2 * co * Lo * 4);
            mp_conv1d(&ex1, y, x, &w, bias, 2, ci, L, s, 1);
            mp_conv1d(&ex3, y3, x, &w, bias, 2, ci, L, s, 1);
            CHECK(bits_equal(y, y3, 2 * co * Lo));
            double *ref = malloc(co * Lo * sizeof(double));
            for (int b = 0; b < 2; b++) {
                conv_naive(ref, x + b * ci * L, &w, bias, ci, co, 1, 1, L, 1, 1, K, 1, 1, s, 0, 0, 1, 0, 1, 1, Lo);
                CHECKF(relerr(y + b * co * Lo, ref, co * Lo) < 1e-5, "level %d conv1d dt %d stride %d", level, dt, s);
            }
            free(w32), free(x), free(bias), free(y), free(y3), free(ref), free(store);
        }
        /* depthwise conv1d, both weight shapes, kernel 31 (conformer) and 4 with stride 2 */
        for (int v = 0; v < 2; v++) {
            int64_t c = 9, L = 255, K = v ? 4 : 31, pad = v ? 1 : 15, st = v ? 2 : 1;
            int64_t ne3[3] = {K, 1, c}, ne2[2] = {K, c}, Lo = (L + 2 * pad - K) / st + 1;
            float *w32 = randv(K * c, -1, 1), *x = randv(c * L, -1, 1);
            set_weights(&w, dt, v ? 2 : 3, v ? ne2 : ne3, w32, &store);
            float *y = malloc(c * Lo * 4), *y3 = malloc(c * Lo * 4);
            mp_conv1d_dw(&ex1, y, x, &w, v ? NULL : w32, 1, c, L, (int)st, (int)pad);
            mp_conv1d_dw(&ex3, y3, x, &w, v ? NULL : w32, 1, c, L, (int)st, (int)pad);
            CHECK(bits_equal(y, y3, c * Lo));
            double *ref = malloc(c * Lo * sizeof(double));
            conv_naive(ref, x, &w, v ? NULL : w32, c, c, 1, 1, L, 1, 1, (int)K, 1, 1, (int)st, 0, 0, (int)pad, 1, 1, 1, Lo);
            CHECKF(relerr(y, ref, c * Lo) < 1e-5, "level %d conv1d_dw dt %d v %d", level, dt, v);
            free(w32), free(x), free(y), free(y3), free(ref), free(store);
        }
        /* conv2d: patch embedding (stride = kernel) and a padded 3x3 */
        for (int v = 0; v < 2; v++) {
            int64_t ci = 3, co = 6, H = v ? 17 : 28, W = v ? 13 : 42, kh = v ? 3 : 14, kw = v ? 3 : 14;
            int sh = v ? 2 : 14, sw = v ? 1 : 14, ph = v ? 1 : 0, pw = v ? 1 : 0;
            int64_t ne[4] = {kw, kh, ci, co}, Ho = (H + 2 * ph - kh) / sh + 1, Wo = (W + 2 * pw - kw) / sw + 1;
            float *w32 = randv(kw * kh * ci * co, -1, 1), *x = randv(ci * H * W, -1, 1), *bias = randv(co, -1, 1);
            set_weights(&w, dt, 4, ne, w32, &store);
            float *y = malloc(co * Ho * Wo * 4), *y3 = malloc(co * Ho * Wo * 4);
            mp_conv2d(&ex1, y, x, &w, bias, 1, ci, H, W, sh, sw, ph, pw);
            mp_conv2d(&ex3, y3, x, &w, bias, 1, ci, H, W, sh, sw, ph, pw);
            CHECK(bits_equal(y, y3, co * Ho * Wo));
            double *ref = malloc(co * Ho * Wo * sizeof(double));
            conv_naive(ref, x, &w, bias, ci, co, 1, H, W, 1, (int)kh, (int)kw, 1, sh, sw, 0, ph, pw, 0, 1, Ho, Wo);
            CHECKF(relerr(y, ref, co * Ho * Wo) < 1e-5, "level %d conv2d dt %d v %d", level, dt, v);
            free(w32), free(x), free(bias), free(y), free(y3), free(ref), free(store);
        }
        /* conv3d: Qwen2-VL patch embedding (kt=2, 14x14, stride = kernel), shrunk */
        {
            int64_t ci = 3, co = 4, T = 4, H = 14, W = 28, kt = 2, kh = 7, kw = 7;
            int64_t ne[4] = {kw, kh, kt * ci, co}, To = (T - kt) / 2 + 1, Ho = (H - kh) / 7 + 1, Wo = (W - kw) / 7 + 1;
            float *w32 = randv(kw * kh * kt * ci * co, -1, 1), *x = randv(ci * T * H * W, -1, 1);
            set_weights(&w, dt, 4, ne, w32, &store);
            float *y = malloc(co * To * Ho * Wo * 4), *y3 = malloc(co * To * Ho * Wo * 4);
            mp_conv3d(&ex1, y, x, &w, (int)kt, NULL, 1, ci, T, H, W, 2, 7, 7);
            mp_conv3d(&ex3, y3, x, &w, (int)kt, NULL, 1, ci, T, H, W, 2, 7, 7);
            CHECK(bits_equal(y, y3, co * To * Ho * Wo));
            double *ref = malloc(co * To * Ho * Wo * sizeof(double));
            conv_naive(ref, x, &w, NULL, ci, co, T, H, W, (int)kt, (int)kh, (int)kw, 2, 7, 7, 0, 0, 0, 0, To, Ho, Wo);
            CHECKF(relerr(y, ref, co * To * Ho * Wo) < 1e-5, "level %d conv3d dt %d", level, dt);
            free(w32), free(x), free(y), free(y3), free(ref), free(store);
        }
    }
}

/* ---------------------------------------------------------------- reductions, layout */

static void test_reduce_layout(int level) {
    for (int si = 0; si < NSIZES; si++) {
        int64_t n = sizes[si] * 37;
        float *x = randv(n, -5, 5);
        for (int64_t i = 0; i < n; i += 11) x[i] = (float)((i / 11) % 5); /* ties */
        if (n > 3) x[2] = NAN;
        int64_t am = mp_argmax(&ex3, x, n), best = -1;
        for (int64_t i = 0; i < n; i++)
            if (!isnan(x[i]) && (best < 0 || x[i] > x[best])) best = i;
        CHECK_EQ_INT(am, best);
        int k = n < 40 ? (int)n : 40;
        int32_t idx[40];
        float val[40];
        mp_topk(&ex3, x, n, k, idx, val);
        /* naive: select k times the best not yet taken */
        char *taken = calloc((size_t)n, 1);
        for (int r = 0; r < k; r++) {
            int64_t b = -1;
            for (int64_t i = 0; i < n; i++) {
                if (taken[i]) continue;
                if (b < 0 || (isnan(x[b]) && !isnan(x[i])) || (!isnan(x[i]) && x[i] > x[b])) b = i;
            }
            taken[b] = 1;
            CHECKF(idx[r] == b, "topk n=%lld rank %d: %d vs %lld", (long long)n, r, idx[r], (long long)b);
            CHECK(val[r] == x[b] || (isnan(val[r]) && isnan(x[b])));
        }
        free(taken), free(x);
    }
    CHECK_EQ_INT(mp_argmax(&ex1, NULL, 0), -1);
    int64_t dims[][2] = {{1, 1}, {7, 33}, {255, 4}, {33, 4097}, {100, 100}};
    for (int di = 0; di < 5; di++) {
        int64_t r = dims[di][0], c = dims[di][1];
        float *x = randv(r * c, -1, 1), *y = malloc(r * c * 4), *y1 = malloc(r * c * 4);
        mp_transpose(&ex3, y, x, r, c);
        mp_transpose(&ex1, y1, x, r, c);
        int ok = 1;
        for (int64_t i = 0; i < r; i++)
            for (int64_t j = 0; j < c; j++) ok &= y[j * r + i] == x[i * c + j];
        CHECKF(ok && bits_equal(y, y1, r * c), "level %d transpose %lldx%lld", level, (long long)r, (long long)c);
        float *b = randv(r * 5, -1, 1), *z = malloc(r * (c + 5) * 4);
        mp_concat_cols(&ex3, z, x, c, b, 5, r);
        ok = 1;
        for (int64_t i = 0; i < r; i++)
            for (int64_t j = 0; j < c + 5; j++) ok &= z[i * (c + 5) + j] == (j < c ? x[i * c + j] : b[i * 5 + j - c]);
        CHECK(ok);
        free(x), free(y), free(y1), free(b), free(z);
    }
}

int main(void) {
    if (ops_test_init(1 << 20)) return 1;
    int best = mp_cpu_set_level(-1);
    for (int level = 0; level <= best; level++) {
        mp_cpu_set_level(level);
        fprintf(stderr, "level %s\n", mp_cpu_level_name(level));
        test_elementwise(level);
        test_norms(level);
        test_softmax(level);
        test_rope(level);
        test_attention(level);
        test_conv(level);
        test_reduce_layout(level);
    }
    ops_test_free();
    return mp_test_result("test_ops_basic");
}
