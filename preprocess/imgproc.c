/* imgproc.c — Pillow-exact resampling and the Idefics3 / Qwen2-VL image processors. See imgproc.h. */
#include "preprocess/imgproc.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

/* ---------------------------------------------------------------- Pillow's filters (Resample.c) */

static double box_filter(double x) { return (x > -0.5 && x <= 0.5) ? 1.0 : 0.0; }

static double bilinear_filter(double x) {
    if (x < 0.0) x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

static double hamming_filter(double x) {
    if (x < 0.0) x = -x;
    if (x == 0.0) return 1.0;
    if (x >= 1.0) return 0.0;
    x = x * M_PI;
    return sin(x) / x * (0.54f + 0.46f * cos(x));
}

static double bicubic_filter(double x) {
    const double a = -0.5; /* Pillow's (and Keys') a = -0.5 */
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

static double sinc_filter(double x) {
    if (x == 0.0) return 1.0;
    x = x * M_PI;
    return sin(x) / x;
}

static double lanczos_filter(double x) {
    if (-3.0 <= x && x < 3.0) return sinc_filter(x) * sinc_filter(x / 3);
    return 0.0;
}

typedef struct rfilter {
    double (*fn)(double);
    double support;
} rfilter;

static const rfilter *get_filter(int id) {
    static const rfilter BOX = {box_filter, 0.5}, BILINEAR = {bilinear_filter, 1.0},
                         HAMMING = {hamming_filter, 1.0}, BICUBIC = {bicubic_filter, 2.0},
                         LANCZOS = {lanczos_filter, 3.0};
    switch (id) {
    case MP_RESAMPLE_BOX: return &BOX;
    case MP_RESAMPLE_BILINEAR: return &BILINEAR;
    case MP_RESAMPLE_HAMMING: return &HAMMING;
    case MP_RESAMPLE_BICUBIC: return &BICUBIC;
    case MP_RESAMPLE_LANCZOS: return &LANCZOS;
    default: return NULL;
    }
}

#define PRECISION_BITS (32 - 8 - 2)

/* Coefficients of one pass (Pillow's precompute_coeffs + normalize_coeffs_8bpc). For output pixel i:
 * the source window starts at bounds[2i] and has bounds[2i+1] taps, weights kk[i*ksize ...]. */
typedef struct rcoeffs {
    int ksize;
    int *bounds;
    int32_t *kk;
} rcoeffs;

static int precompute_coeffs(int in_size, double in0, double in1, int out_size, const rfilter *f, rcoeffs *c) {
    double scale = (in1 - in0) / out_size, filterscale = scale;
    if (filterscale < 1.0) filterscale = 1.0;
    double support = f->support * filterscale;
    int ksize = (int)ceil(support) * 2 + 1;
    if (ksize <= 0 || (size_t)out_size > SIZE_MAX / ((size_t)ksize * sizeof(double))) return -1;
    double *pre = malloc((size_t)out_size * ksize * sizeof(double));
    c->bounds = malloc((size_t)out_size * 2 * sizeof(int));
    c->kk = malloc((size_t)out_size * ksize * sizeof(int32_t));
    if (!pre || !c->bounds || !c->kk) {
        free(pre), free(c->bounds), free(c->kk);
        c->bounds = NULL, c->kk = NULL;
        return -1;
    }
    for (int xx = 0; xx < out_size; xx++) {
        double center = in0 + (xx + 0.5) * scale;
        double ww = 0.0, ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        double *k = pre + (size_t)xx * ksize;
        int x;
        for (x = 0; x < xmax; x++) {
            double w = f->fn((x + xmin - center + 0.5) * ss);
            k[x] = w;
            ww += w;
        }
        for (x = 0; x < xmax; x++)
            if (ww != 0.0) k[x] /= ww;
        for (; x < ksize; x++) k[x] = 0;
        c->bounds[xx * 2 + 0] = xmin;
        c->bounds[xx * 2 + 1] = xmax;
    }
    for (size_t i = 0; i < (size_t)out_size * ksize; i++)
        c->kk[i] = pre[i] < 0 ? (int32_t)(-0.5 + pre[i] * (1 << PRECISION_BITS))
                              : (int32_t)(0.5 + pre[i] * (1 << PRECISION_BITS));
    free(pre);
    c->ksize = ksize;
    return 0;
}

static void free_coeffs(rcoeffs *c) {
    free(c->bounds);
    free(c->kk);
    c->bounds = NULL, c->kk = NULL;
}

static inline uint8_t clip8(int32_t v) {
    if (v >= (1 << PRECISION_BITS << 8)) return 255;
    if (v <= 0) return 0;
    return (uint8_t)(v >> PRECISION_BITS);
}

/* out (ow x rows) from in rows [y0, y0+rows) of an iw-wide RGB image */
static void resample_h(uint8_t *out, int ow, const uint8_t *in, int iw, int y0, int rows, const rcoeffs *c) {
    for (int y = 0; y < rows; y++) {
        const uint8_t *src = in + (size_t)(y + y0) * iw * 3;
        uint8_t *dst = out + (size_t)y * ow * 3;
        for (int xx = 0; xx < ow; xx++) {
            int xmin = c->bounds[2 * xx], xmax = c->bounds[2 * xx + 1];
            const int32_t *k = c->kk + (size_t)xx * c->ksize;
            int32_t s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0;
            const uint8_t *p = src + (size_t)xmin * 3;
            for (int x = 0; x < xmax; x++) {
                s0 += p[3 * x] * k[x];
                s1 += p[3 * x + 1] * k[x];
                s2 += p[3 * x + 2] * k[x];
            }
            dst[3 * xx] = clip8(s0), dst[3 * xx + 1] = clip8(s1), dst[3 * xx + 2] = clip8(s2);
        }
    }
}

/* out (w x oh) from in (w wide); bounds are relative to in's first row */
static void resample_v(uint8_t *out, int oh, const uint8_t *in, int w, const rcoeffs *c) {
    const size_t stride = (size_t)w * 3;
    int32_t *acc = malloc(stride * sizeof(int32_t));
    for (int yy = 0; yy < oh; yy++) {
        int ymin = c->bounds[2 * yy], ymax = c->bounds[2 * yy + 1];
        const int32_t *k = c->kk + (size_t)yy * c->ksize;
        uint8_t *dst = out + (size_t)yy * stride;
        if (!acc) { /* no scratch: the plain per-pixel loop */
            for (size_t i = 0; i < stride; i++) {
                int32_t s = 1 << (PRECISION_BITS - 1);
                for (int y = 0; y < ymax; y++) s += in[(size_t)(y + ymin) * stride + i] * k[y];
                dst[i] = clip8(s);
            }
            continue;
        }
        for (size_t i = 0; i < stride; i++) acc[i] = 1 << (PRECISION_BITS - 1);
        /* row at a time (integer sums: the order does not change them); fixed-size blocks so that the
         * compiler vectorizes the inner loop at -O2 */
        const size_t nb = stride / 32 * 32;
        for (int y = 0; y < ymax; y++) {
            const uint8_t *src = in + (size_t)(y + ymin) * stride;
            const int32_t ky = k[y];
            for (size_t i = 0; i < nb; i += 32)
                for (int j = 0; j < 32; j++) acc[i + j] += src[i + j] * ky;
            for (size_t i = nb; i < stride; i++) acc[i] += src[i] * ky;
        }
        for (size_t i = 0; i < nb; i += 32)
            for (int j = 0; j < 32; j++) {
                int32_t v = acc[i + j] >> PRECISION_BITS;
                dst[i + j] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
        for (size_t i = nb; i < stride; i++) dst[i] = clip8(acc[i]);
    }
    free(acc);
}

/* PIL's resize with NEAREST: ImagingScaleAffine with the source coordinate accumulated in double */
static int resize_nearest(const mp_image *src, mp_image *dst) {
    int *xs = malloc(sizeof(int) * dst->w);
    if (!xs) return -1;
    double a0 = (double)src->w / dst->w, a4 = (double)src->h / dst->h;
    double xo = a0 * 0.5;
    for (int x = 0; x < dst->w; x++, xo += a0) {
        int xi = xo < 0.0 ? -1 : (int)xo;
        xs[x] = xi < 0 ? 0 : xi >= src->w ? src->w - 1 : xi;
    }
    double yo = a4 * 0.5;
    for (int y = 0; y < dst->h; y++, yo += a4) {
        int yi = yo < 0.0 ? -1 : (int)yo;
        yi = yi < 0 ? 0 : yi >= src->h ? src->h - 1 : yi;
        const uint8_t *s = src->data + (size_t)yi * src->w * 3;
        uint8_t *d = dst->data + (size_t)y * dst->w * 3;
        for (int x = 0; x < dst->w; x++) memcpy(d + 3 * x, s + 3 * xs[x], 3);
    }
    free(xs);
    return 0;
}

int mp_image_resize(const mp_image *src, int w, int h, int filter, mp_image *dst, mp_error *err) {
    memset(dst, 0, sizeof *dst);
    if (!src->data || src->w <= 0 || src->h <= 0) return mp_errf(err, "resize: empty source image");
    if (w <= 0 || h <= 0 || (int64_t)w * h > ((int64_t)1 << 30))
        return mp_errf(err, "resize: bad target size %dx%d", w, h);
    const rfilter *f = get_filter(filter);
    if (!f && filter != MP_RESAMPLE_NEAREST) return mp_errf(err, "resize: unknown resampling filter %d", filter);
    if (mp_image_alloc(dst, w, h, err) != 0) return -1;
    if (w == src->w && h == src->h) {
        memcpy(dst->data, src->data, (size_t)w * h * 3);
        return 0;
    }
    if (filter == MP_RESAMPLE_NEAREST) {
        if (resize_nearest(src, dst) == 0) return 0;
        mp_image_free(dst);
        return mp_errf(err, "resize: out of memory");
    }
    rcoeffs ch = {0}, cv = {0};
    uint8_t *tmp = NULL;
    int need_h = w != src->w, need_v = h != src->h;
    if (precompute_coeffs(src->w, 0.0, (double)src->w, w, f, &ch) != 0) goto oom;
    if (precompute_coeffs(src->h, 0.0, (double)src->h, h, f, &cv) != 0) goto oom;
    /* rows of the source the vertical pass reads */
    int yfirst = cv.bounds[0], ylast = cv.bounds[h * 2 - 2] + cv.bounds[h * 2 - 1];
    if (need_h && need_v) {
        for (int i = 0; i < h; i++) cv.bounds[i * 2] -= yfirst;
        tmp = malloc((size_t)w * (ylast - yfirst) * 3);
        if (!tmp) goto oom;
        resample_h(tmp, w, src->data, src->w, yfirst, ylast - yfirst, &ch);
        resample_v(dst->data, h, tmp, w, &cv);
    } else if (need_h) {
        resample_h(dst->data, w, src->data, src->w, 0, h, &ch);
    } else {
        resample_v(dst->data, h, src->data, w, &cv);
    }
    free(tmp);
    free_coeffs(&ch);
    free_coeffs(&cv);
    return 0;
oom:
    free(tmp);
    free_coeffs(&ch);
    free_coeffs(&cv);
    mp_image_free(dst);
    return mp_errf(err, "resize: out of memory for %dx%d -> %dx%d", src->w, src->h, w, h);
}

/* ---------------------------------------------------------------- rescale + normalize */

/* HF: rescale in float64 then cast to float32; normalize (x - mean) / std in float32. As a table per
 * channel: identical values, no per-pixel arithmetic. */
static void make_lut(float lut[3][256], const mp_pixel_norm *n) {
    for (int c = 0; c < 3; c++)
        for (int v = 0; v < 256; v++) {
            float x = n->do_rescale ? (float)((double)v * n->rescale_factor) : (float)v;
            if (n->do_normalize) x = (x - n->mean[c]) / n->std[c];
            lut[c][v] = x;
        }
}

/* crop (x0, y0, cw, ch) of an RGB image into CHW floats */
static void crop_to_chw(const mp_image *im, int x0, int y0, int cw, int chh, float lut[3][256], float *dst) {
    const size_t plane = (size_t)cw * chh;
    for (int y = 0; y < chh; y++) {
        const uint8_t *s = im->data + ((size_t)(y0 + y) * im->w + x0) * 3;
        float *d0 = dst + (size_t)y * cw, *d1 = d0 + plane, *d2 = d1 + plane;
        for (int x = 0; x < cw; x++) {
            d0[x] = lut[0][s[3 * x]];
            d1[x] = lut[1][s[3 * x + 1]];
            d2[x] = lut[2][s[3 * x + 2]];
        }
    }
}

/* ---------------------------------------------------------------- config files */

static char *read_text(const char *path, mp_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        mp_errf(err, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (n < 0 || n > (1 << 24)) {
        fclose(f);
        mp_errf(err, "%s: not a preprocessor config (size %ld)", path, n);
        return NULL;
    }
    char *s = malloc((size_t)n + 1);
    if (!s || fread(s, 1, (size_t)n, f) != (size_t)n) {
        free(s);
        fclose(f);
        mp_errf(err, "%s: read error", path);
        return NULL;
    }
    s[n] = 0;
    fclose(f);
    return s;
}

static cJSON *load_json(const char *path, mp_error *err) {
    char *s = read_text(path, err);
    if (!s) return NULL;
    cJSON *j = cJSON_Parse(s);
    free(s);
    if (!j || !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        mp_errf(err, "%s: not valid JSON", path);
        return NULL;
    }
    return j;
}

static int json_num(const cJSON *o, const char *key, double *v) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
    if (cJSON_IsNumber(x)) { *v = x->valuedouble; return 1; }
    if (cJSON_IsBool(x)) { *v = cJSON_IsTrue(x); return 1; }
    return 0;
}

/* numbers beyond the type saturate (the range checks after reading reject them; a bare cast is UB) */
static void json_int(const cJSON *o, const char *key, int *v) {
    double d;
    if (json_num(o, key, &d)) *v = !(d > INT_MIN) ? INT_MIN : d >= INT_MAX ? INT_MAX : (int)d;
}

static void json_i64(const cJSON *o, const char *key, int64_t *v) {
    double d;
    if (json_num(o, key, &d)) *v = !(d > -9.2e18) ? INT64_MIN : d >= 9.2e18 ? INT64_MAX : (int64_t)d;
}

static int json_vec3(const cJSON *o, const char *key, float *v, const char *path, mp_error *err) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!a) return 0;
    if (cJSON_IsNumber(a)) { /* a single float for every channel */
        v[0] = v[1] = v[2] = (float)a->valuedouble;
        return 0;
    }
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != 3) return mp_errf(err, "%s: %s must have 3 numbers", path, key);
    for (int i = 0; i < 3; i++) {
        const cJSON *x = cJSON_GetArrayItem(a, i);
        if (!cJSON_IsNumber(x)) return mp_errf(err, "%s: %s must have 3 numbers", path, key);
        v[i] = (float)x->valuedouble; /* numpy: np.array(mean, dtype=float32) */
    }
    return 0;
}

static void json_size(const cJSON *o, const char *key, const char *sub, int *v) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
    if (cJSON_IsObject(x)) json_int(x, sub, v);
}

static mp_pixel_norm norm_default(int resample, const float *mean, const float *std) {
    mp_pixel_norm n;
    memset(&n, 0, sizeof n);
    n.resample = resample;
    n.do_rescale = 1;
    n.rescale_factor = 1.0 / 255.0;
    n.do_normalize = 1;
    memcpy(n.mean, mean, sizeof n.mean);
    memcpy(n.std, std, sizeof n.std);
    return n;
}

/* the keys every HF image processor config shares; frees j */
static int norm_load(cJSON *j, mp_pixel_norm *n, const char *path, mp_error *err) {
    json_int(j, "resample", &n->resample);
    json_int(j, "do_rescale", &n->do_rescale);
    json_num(j, "rescale_factor", &n->rescale_factor);
    json_int(j, "do_normalize", &n->do_normalize);
    int r = json_vec3(j, "image_mean", n->mean, path, err);
    if (r == 0) r = json_vec3(j, "image_std", n->std, path, err);
    cJSON_Delete(j);
    if (r != 0) return -1;
    if (n->resample != MP_RESAMPLE_NEAREST && !get_filter(n->resample))
        return mp_errf(err, "%s: unsupported resample value %d", path, n->resample);
    return 0;
}

/* ---------------------------------------------------------------- Idefics3 */

mp_idefics3_params mp_idefics3_default_params(void) {
    mp_idefics3_params p;
    memset(&p, 0, sizeof p);
    p.do_resize = 1;
    p.longest_edge = 2048;
    p.do_split = 1;
    p.tile = 512;
    static const float half[3] = {0.5f, 0.5f, 0.5f};
    p.norm = norm_default(MP_RESAMPLE_LANCZOS, half, half);
    return p;
}

int mp_idefics3_params_load(const char *path, mp_idefics3_params *p, mp_error *err) {
    cJSON *j = load_json(path, err);
    if (!j) return -1;
    /* transformers' Idefics3ImageProcessor defaults for keys the file leaves out */
    *p = mp_idefics3_default_params();
    p->longest_edge = 4 * 364;
    p->tile = 364;
    json_int(j, "do_resize", &p->do_resize);
    json_size(j, "size", "longest_edge", &p->longest_edge);
    json_int(j, "do_image_splitting", &p->do_split);
    json_size(j, "max_image_size", "longest_edge", &p->tile);
    if (norm_load(j, &p->norm, path, err) != 0) return -1;
    if (p->longest_edge <= 0 || p->tile <= 0) return mp_errf(err, "%s: unsupported size/max_image_size values", path);
    return 0;
}

#define IDEFICS3_MAX_IMAGE_SIZE 4096 /* transformers: absolute upper bound of the first resize */

int mp_idefics3_plan_for(int w, int h, const mp_idefics3_params *p, mp_idefics3_plan *pl, mp_error *err) {
    memset(pl, 0, sizeof *pl);
    if (w <= 0 || h <= 0) return mp_errf(err, "idefics3: empty image");
    int height = h, width = w;
    if (p->do_resize) {
        /* _resize_output_size_rescale_to_max_len: the longest edge becomes longest_edge, the other
         * follows the aspect ratio (truncated, then made even) */
        double aspect = (double)width / height;
        int max_len = p->longest_edge;
        if (width >= height) {
            width = max_len;
            height = (int)(width / aspect);
            if (height % 2 != 0) height += 1;
        } else {
            height = max_len;
            width = (int)(height * aspect);
            if (width % 2 != 0) width += 1;
        }
        if (height < 1) height = 1;
        if (width < 1) width = 1;
        /* _resize_output_size_scale_below_upper_bound */
        aspect = (double)width / height;
        if (width >= height && width > IDEFICS3_MAX_IMAGE_SIZE) {
            width = IDEFICS3_MAX_IMAGE_SIZE;
            height = (int)(width / aspect);
        } else if (height > width && height > IDEFICS3_MAX_IMAGE_SIZE) {
            height = IDEFICS3_MAX_IMAGE_SIZE;
            width = (int)(height * aspect);
        }
        if (height < 1) height = 1;
        if (width < 1) width = 1;
    }
    pl->resized_w = width, pl->resized_h = height;
    if (!p->do_split) {
        pl->grid_w = width, pl->grid_h = height;
        pl->n_tiles = 1;
        pl->tile_w = width, pl->tile_h = height;
        return 0;
    }
    /* resize_for_vision_encoder: both sides up to multiples of the tile */
    const int t = p->tile;
    double aspect = (double)width / height;
    if (width >= height) {
        width = (int)ceil((double)width / t) * t;
        height = (int)(width / aspect);
        height = (int)ceil((double)height / t) * t;
    } else {
        height = (int)ceil((double)height / t) * t;
        width = (int)(height * aspect);
        width = (int)ceil((double)width / t) * t;
    }
    pl->grid_w = width, pl->grid_h = height;
    if (height > t || width > t) {
        pl->rows = (int)ceil((double)height / t);
        pl->cols = (int)ceil((double)width / t);
    }
    pl->n_tiles = pl->rows * pl->cols + 1;
    pl->tile_w = pl->tile_h = t;
    if ((int64_t)pl->n_tiles * t * t * 3 > ((int64_t)1 << 31)) return mp_errf(err, "idefics3: too many tiles");
    return 0;
}

int mp_idefics3_preprocess(const mp_image *img, const mp_idefics3_params *p, float *dst, mp_idefics3_plan *plan_out,
                           mp_error *err) {
    mp_idefics3_plan pl;
    if (mp_idefics3_plan_for(img->w, img->h, p, &pl, err) != 0) return -1;
    if (plan_out) *plan_out = pl;
    float lut[3][256];
    make_lut(lut, &p->norm);
    mp_image a = {0}, b = {0}, g = {0};
    const mp_image *cur = img;
    int r = -1;
    if (p->do_resize) {
        if (mp_image_resize(cur, pl.resized_w, pl.resized_h, p->norm.resample, &a, err) != 0) goto done;
        cur = &a;
    }
    if (!p->do_split) {
        crop_to_chw(cur, 0, 0, cur->w, cur->h, lut, dst);
        r = 0;
        goto done;
    }
    if (mp_image_resize(cur, pl.grid_w, pl.grid_h, p->norm.resample, &b, err) != 0) goto done;
    const int t = p->tile;
    const size_t per = (size_t)3 * t * t;
    if (pl.rows > 0) {
        /* split_image: crops of ceil(H/rows) x ceil(W/cols) (= the tile: H, W are multiples of it) */
        int oh = (pl.grid_h + pl.rows - 1) / pl.rows, ow = (pl.grid_w + pl.cols - 1) / pl.cols;
        for (int rr = 0; rr < pl.rows; rr++)
            for (int cc = 0; cc < pl.cols; cc++)
                crop_to_chw(&b, cc * ow, rr * oh, ow, oh, lut, dst + (size_t)(rr * pl.cols + cc) * per);
        /* the global image: the grid image resized to tile x tile */
        if (mp_image_resize(&b, t, t, p->norm.resample, &g, err) != 0) goto done;
        crop_to_chw(&g, 0, 0, t, t, lut, dst + (size_t)(pl.rows * pl.cols) * per);
    } else {
        crop_to_chw(&b, 0, 0, t, t, lut, dst); /* already tile x tile */
    }
    r = 0;
done:
    mp_image_free(&a);
    mp_image_free(&b);
    mp_image_free(&g);
    return r;
}

/* ---------------------------------------------------------------- Qwen2-VL */

mp_qwen2vl_params mp_qwen2vl_default_params(void) {
    static const float mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
    static const float std[3] = {0.26862954f, 0.26130258f, 0.27577711f};
    mp_qwen2vl_params p;
    memset(&p, 0, sizeof p);
    p.min_pixels = 3136;
    p.max_pixels = 12845056;
    p.patch_size = 14;
    p.temporal_patch_size = 2;
    p.merge_size = 2;
    p.norm = norm_default(MP_RESAMPLE_BICUBIC, mean, std);
    return p;
}

int mp_qwen2vl_params_load(const char *path, mp_qwen2vl_params *p, mp_error *err) {
    cJSON *j = load_json(path, err);
    if (!j) return -1;
    *p = mp_qwen2vl_default_params();
    p->min_pixels = 56 * 56; /* transformers' defaults for absent keys */
    p->max_pixels = 28 * 28 * 1280;
    json_i64(j, "min_pixels", &p->min_pixels);
    json_i64(j, "max_pixels", &p->max_pixels);
    const cJSON *size = cJSON_GetObjectItemCaseSensitive(j, "size"); /* newer configs: size.{shortest,longest}_edge */
    if (cJSON_IsObject(size)) {
        json_i64(size, "shortest_edge", &p->min_pixels);
        json_i64(size, "longest_edge", &p->max_pixels);
        json_i64(size, "min_pixels", &p->min_pixels);
        json_i64(size, "max_pixels", &p->max_pixels);
    }
    json_int(j, "patch_size", &p->patch_size);
    json_int(j, "temporal_patch_size", &p->temporal_patch_size);
    json_int(j, "merge_size", &p->merge_size);
    if (norm_load(j, &p->norm, path, err) != 0) return -1;
    if (p->patch_size <= 0 || p->temporal_patch_size <= 0 || p->merge_size <= 0 || p->min_pixels < 0 ||
        p->max_pixels < p->min_pixels || p->patch_size > 1024 || p->temporal_patch_size > 16 || p->merge_size > 16)
        return mp_errf(err, "%s: unsupported patch/merge sizes or pixel limits", path);
    return 0;
}

int mp_qwen2vl_smart_resize(int h, int w, int factor, int64_t min_pixels, int64_t max_pixels, int *out_h, int *out_w,
                            mp_error *err) {
    if (h <= 0 || w <= 0 || factor <= 0) return mp_errf(err, "smart_resize: bad size %dx%d", w, h);
    double hi = h > w ? h : w, lo = h > w ? w : h;
    if (hi / lo > 200) return mp_errf(err, "smart_resize: aspect ratio of %dx%d is larger than 200", w, h);
    /* Python round() is round-half-to-even: nearbyint in the default rounding mode */
    int64_t h_bar = (int64_t)nearbyint((double)h / factor) * factor;
    int64_t w_bar = (int64_t)nearbyint((double)w / factor) * factor;
    if (h_bar * w_bar > max_pixels) {
        double beta = sqrt(((double)h * w) / (double)max_pixels);
        h_bar = (int64_t)floor((double)h / beta / factor) * factor;
        w_bar = (int64_t)floor((double)w / beta / factor) * factor;
        if (h_bar < factor) h_bar = factor;
        if (w_bar < factor) w_bar = factor;
    } else if (h_bar * w_bar < min_pixels) {
        double beta = sqrt((double)min_pixels / ((double)h * w));
        h_bar = (int64_t)ceil((double)h * beta / factor) * factor;
        w_bar = (int64_t)ceil((double)w * beta / factor) * factor;
    }
    if (h_bar <= 0 || w_bar <= 0 || h_bar > 65536 || w_bar > 65536)
        return mp_errf(err, "smart_resize: %dx%d gives an unusable size %lldx%lld", w, h, (long long)w_bar,
                       (long long)h_bar);
    *out_h = (int)h_bar;
    *out_w = (int)w_bar;
    return 0;
}

int mp_qwen2vl_plan_for(int w, int h, int n_frames, const mp_qwen2vl_params *p, mp_qwen2vl_plan *pl, mp_error *err) {
    memset(pl, 0, sizeof *pl);
    if (n_frames <= 0) return mp_errf(err, "qwen2vl: no frames");
    const int ps = p->patch_size, m = p->merge_size, tp = p->temporal_patch_size;
    if (ps <= 0 || m <= 0 || tp <= 0 || ps > 1024 || m > 16 || tp > 16)
        return mp_errf(err, "qwen2vl: unsupported patch %d / merge %d / temporal %d sizes", ps, m, tp);
    if (mp_qwen2vl_smart_resize(h, w, ps * m, p->min_pixels, p->max_pixels, &pl->resized_h, &pl->resized_w, err) != 0)
        return -1;
    pl->grid_t = (n_frames + tp - 1) / tp;
    pl->grid_h = pl->resized_h / ps;
    pl->grid_w = pl->resized_w / ps;
    pl->n_patches = (int64_t)pl->grid_t * pl->grid_h * pl->grid_w;
    pl->patch_dim = 3 * tp * ps * ps;
    if (pl->n_patches * pl->patch_dim > ((int64_t)1 << 32)) return mp_errf(err, "qwen2vl: input too large");
    return 0;
}

int mp_qwen2vl_preprocess(const mp_image *frames, int n_frames, const mp_qwen2vl_params *p, float *dst,
                          mp_qwen2vl_plan *plan_out, mp_error *err) {
    mp_qwen2vl_plan pl;
    if (n_frames <= 0 || !frames) return mp_errf(err, "qwen2vl: no frames");
    if (mp_qwen2vl_plan_for(frames[0].w, frames[0].h, n_frames, p, &pl, err) != 0) return -1;
    for (int i = 1; i < n_frames; i++)
        if (frames[i].w != frames[0].w || frames[i].h != frames[0].h)
            return mp_errf(err, "qwen2vl: frame %d is %dx%d, frame 0 is %dx%d", i, frames[i].w, frames[i].h,
                           frames[0].w, frames[0].h);
    if (plan_out) *plan_out = pl;
    float lut[3][256];
    make_lut(lut, &p->norm);
    const int W = pl.resized_w, H = pl.resized_h, ps = p->patch_size, m = p->merge_size, tp = p->temporal_patch_size;
    const size_t plane = (size_t)W * H;
    float *chw = malloc(plane * 3 * sizeof(float) * tp); /* one temporal group of normalised frames */
    if (!chw) return mp_errf(err, "qwen2vl: out of memory for %dx%d frames", W, H);
    const int64_t per_t = (int64_t)pl.grid_h * pl.grid_w;
    for (int t = 0; t < pl.grid_t; t++) {
        for (int k = 0; k < tp; k++) {
            int fi = t * tp + k;
            if (fi >= n_frames) fi = n_frames - 1; /* pad the last group with the last frame */
            mp_image rs;
            if (mp_image_resize(&frames[fi], W, H, p->norm.resample, &rs, err) != 0) {
                free(chw);
                return -1;
            }
            crop_to_chw(&rs, 0, 0, W, H, lut, chw + (size_t)k * plane * 3);
            mp_image_free(&rs);
        }
        /* rows ordered (h/m, w/m, m_h, m_w); each row (c, temporal, py, px) */
        float *out = dst + (size_t)(t * per_t) * pl.patch_dim;
        for (int bh = 0; bh < pl.grid_h / m; bh++)
            for (int bw = 0; bw < pl.grid_w / m; bw++)
                for (int mh = 0; mh < m; mh++)
                    for (int mw = 0; mw < m; mw++) {
                        const int y0 = (bh * m + mh) * ps, x0 = (bw * m + mw) * ps;
                        for (int c = 0; c < 3; c++)
                            for (int k = 0; k < tp; k++) {
                                const float *src = chw + (size_t)k * plane * 3 + (size_t)c * plane;
                                for (int py = 0; py < ps; py++) {
                                    memcpy(out, src + (size_t)(y0 + py) * W + x0, sizeof(float) * ps);
                                    out += ps;
                                }
                            }
                    }
    }
    free(chw);
    return 0;
}
