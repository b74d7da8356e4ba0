/* image.c — image decoding to 8-bit RGB: libjpeg-turbo, libpng, FFmpeg for the rest. See image.h. */
#include "preprocess/image.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/imgutils.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>

#define MP_IMAGE_DEFAULT_MAX_PIXELS ((int64_t)1 << 28)
#define MP_IMAGE_MAX_FILE_BYTES ((size_t)1 << 30)

mp_image_load_opts mp_image_load_default_opts(void) {
    mp_image_load_opts o;
    memset(&o, 0, sizeof o);
    o.alpha = MP_ALPHA_WHITE;
    return o;
}

void mp_image_free(mp_image *img) {
    if (!img) return;
    free(img->data);
    memset(img, 0, sizeof *img);
}

int mp_image_alloc(mp_image *img, int w, int h, mp_error *err) {
    memset(img, 0, sizeof *img);
    if (w <= 0 || h <= 0 || (int64_t)w * h > ((int64_t)1 << 31))
        return mp_errf(err, "image: bad size %dx%d", w, h);
    img->data = malloc((size_t)w * h * 3);
    if (!img->data) return mp_errf(err, "image: out of memory for %dx%d", w, h);
    img->w = w;
    img->h = h;
    return 0;
}

/* ---------------------------------------------------------------- alpha, orientation */

/* Pillow's Image.alpha_composite(background, image) for an opaque background, then convert("RGB")
 * (libImaging/AlphaComposite.c: 7 extra bits of precision, divisions by 255 rounded). */
#define MP_SHIFTFORDIV255(a) ((((a) >> 8) + (a)) >> 8)
static inline uint8_t composite1(uint32_t src, uint32_t srca, uint32_t dst) {
    const uint32_t dsta = 255, prec = 7;
    uint32_t blend = dsta * (255 - srca);
    uint32_t outa255 = srca * 255 + blend;
    uint32_t coef1 = srca * 255 * 255 * (1u << prec) / outa255;
    uint32_t coef2 = 255 * (1u << prec) - coef1;
    uint32_t t = src * coef1 + dst * coef2;
    return (uint8_t)(MP_SHIFTFORDIV255(t + (0x80u << prec)) >> prec);
}

void mp_rgba_to_rgb(uint8_t *rgb, const uint8_t *rgba, size_t n, int mode) {
    for (size_t i = 0; i < n; i++) {
        const uint8_t *s = rgba + 4 * i;
        uint8_t *d = rgb + 3 * i;
        if (mode == MP_ALPHA_DROP || s[3] == 255) {
            d[0] = s[0], d[1] = s[1], d[2] = s[2];
        } else if (s[3] == 0) {
            d[0] = d[1] = d[2] = 255;
        } else {
            for (int c = 0; c < 3; c++) d[c] = composite1(s[c], s[3], 255);
        }
    }
}

int mp_image_apply_orientation(mp_image *img, int o, mp_error *err) {
    if (o <= 1 || o > 8) return 0;
    const int64_t W = img->w, H = img->h;
    /* source pixel index = base + x*dx + y*dy for output pixel (x, y) (see PIL exif_transpose:
     * 2 mirror, 3 rotate 180, 4 flip, 5 transpose, 6 rotate 90 cw, 7 transverse, 8 rotate 90 ccw) */
    int64_t base = 0, dx = 1, dy = W;
    int ow = (int)W, oh = (int)H;
    switch (o) {
    case 2: base = W - 1, dx = -1, dy = W; break;
    case 3: base = (H - 1) * W + W - 1, dx = -1, dy = -W; break;
    case 4: base = (H - 1) * W, dx = 1, dy = -W; break;
    case 5: base = 0, dx = W, dy = 1; break;
    case 6: base = (H - 1) * W, dx = -W, dy = 1; break;
    case 7: base = (H - 1) * W + W - 1, dx = -W, dy = -1; break;
    case 8: base = W - 1, dx = W, dy = -1; break;
    }
    if (o >= 5) ow = (int)H, oh = (int)W;
    uint8_t *out = malloc((size_t)W * H * 3);
    if (!out) return mp_errf(err, "image: out of memory rotating %dx%d", img->w, img->h);
    for (int64_t y = 0; y < oh; y++) {
        uint8_t *d = out + (size_t)y * ow * 3;
        int64_t s = base + y * dy;
        for (int64_t x = 0; x < ow; x++, s += dx) {
            const uint8_t *p = img->data + (size_t)s * 3;
            d[3 * x] = p[0], d[3 * x + 1] = p[1], d[3 * x + 2] = p[2];
        }
    }
    free(img->data);
    img->data = out;
    img->w = ow;
    img->h = oh;
    return 0;
}

static unsigned rd16(const uint8_t *p, int be) { return be ? (unsigned)p[0] << 8 | p[1] : (unsigned)p[1] << 8 | p[0]; }
static uint32_t rd32(const uint8_t *p, int be) {
    return be ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]
              : (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

int mp_exif_orientation(const uint8_t *p, size_t n) {
    if (n >= 6 && memcmp(p, "Exif\0\0", 6) == 0) p += 6, n -= 6;
    if (n < 8) return 0;
    int be;
    if (p[0] == 'I' && p[1] == 'I') be = 0;
    else if (p[0] == 'M' && p[1] == 'M') be = 1;
    else return 0;
    if (rd16(p + 2, be) != 42) return 0;
    uint32_t ifd = rd32(p + 4, be);
    if (ifd < 8 || ifd > n - 2) return 0;
    unsigned count = rd16(p + ifd, be);
    for (unsigned i = 0; i < count; i++) {
        size_t e = (size_t)ifd + 2 + (size_t)i * 12;
        if (e + 12 > n) return 0;
        if (rd16(p + e, be) != 0x0112) continue;
        unsigned type = rd16(p + e + 2, be);
        uint32_t cnt = rd32(p + e + 4, be);
        unsigned v;
        if (type == 3 && cnt >= 1) v = rd16(p + e + 8, be);        /* SHORT, stored inline */
        else if (type == 4 && cnt >= 1) v = rd32(p + e + 8, be);   /* LONG (non-standard) */
        else return 0;
        return v >= 1 && v <= 8 ? (int)v : 0;
    }
    return 0;
}

/* ---------------------------------------------------------------- FFmpeg log capture */

static _Thread_local char av_last_msg[256];
static pthread_once_t av_once = PTHREAD_ONCE_INIT;

static void av_log_capture(void *avcl, int level, const char *fmt, va_list vl) {
    (void)avcl;
    if (level > AV_LOG_WARNING) return;
    char line[256];
    vsnprintf(line, sizeof line, fmt, vl);
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' ')) line[--n] = 0;
    if (n) memcpy(av_last_msg, line, n + 1);
}

static void av_log_init_once(void) {
    const char *e = getenv("MMPIPE_FFMPEG_LOG");
    if (!e || !*e) av_log_set_callback(av_log_capture);
}

void mp_av_init(void) { pthread_once(&av_once, av_log_init_once); }
const char *mp_av_last_message(void) { return av_last_msg; }
void mp_av_clear_message(void) { av_last_msg[0] = 0; }

/* ---------------------------------------------------------------- FFmpeg frames -> RGB */

static int sws_colorspace(int spc) {
    switch (spc) {
    case AVCOL_SPC_BT709: return SWS_CS_ITU709;
    case AVCOL_SPC_FCC: return SWS_CS_FCC;
    case AVCOL_SPC_SMPTE240M: return SWS_CS_SMPTE240M;
    case AVCOL_SPC_BT2020_NCL:
    case AVCOL_SPC_BT2020_CL: return SWS_CS_BT2020;
    default: return SWS_CS_ITU601; /* BT.601 (also what FFmpeg assumes for unspecified) */
    }
}

static enum AVPixelFormat dejpeg_fmt(enum AVPixelFormat f, int *full) {
    switch (f) {
    case AV_PIX_FMT_YUVJ420P: *full = 1; return AV_PIX_FMT_YUV420P;
    case AV_PIX_FMT_YUVJ422P: *full = 1; return AV_PIX_FMT_YUV422P;
    case AV_PIX_FMT_YUVJ444P: *full = 1; return AV_PIX_FMT_YUV444P;
    case AV_PIX_FMT_YUVJ440P: *full = 1; return AV_PIX_FMT_YUV440P;
    case AV_PIX_FMT_YUVJ411P: *full = 1; return AV_PIX_FMT_YUV411P;
    default: return f;
    }
}

int mp_image_from_avframe(const void *avframe, int alpha_mode, mp_image *img, int *had_alpha,
                          const char *name, mp_error *err) {
    const AVFrame *f = avframe;
    if (!name) name = "image";
    memset(img, 0, sizeof *img);
    if (had_alpha) *had_alpha = 0;
    if (f->width <= 0 || f->height <= 0) return mp_errf(err, "%s: decoded frame has no size", name);
    const AVPixFmtDescriptor *desc = av_pix_fmt_desc_get(f->format);
    if (!desc) return mp_errf(err, "%s: decoded frame has an unknown pixel format", name);
    int alpha = (desc->flags & (AV_PIX_FMT_FLAG_ALPHA | AV_PIX_FMT_FLAG_PAL)) != 0;
    int full = f->color_range == AVCOL_RANGE_JPEG;
    enum AVPixelFormat src_fmt = dejpeg_fmt(f->format, &full);
    enum AVPixelFormat dst_fmt = alpha ? AV_PIX_FMT_RGBA : AV_PIX_FMT_RGB24;
    /* accurate rounding and full-resolution chroma: what `ffmpeg -sws_flags
     * bicubic+accurate_rnd+full_chroma_int+full_chroma_inp` gives (the tests compare with that) */
    int flags = SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT | SWS_FULL_CHR_H_INP;
    struct SwsContext *sws = sws_getContext(f->width, f->height, src_fmt, f->width, f->height, dst_fmt,
                                            flags, NULL, NULL, NULL);
    if (!sws)
        return mp_errf(err, "%s: cannot convert pixel format %s to RGB", name, desc->name);
    if (!(desc->flags & AV_PIX_FMT_FLAG_RGB) && !(desc->flags & AV_PIX_FMT_FLAG_PAL) && desc->nb_components >= 3) {
        int *inv, *tab, srcr, dstr, br, co, sa;
        if (sws_getColorspaceDetails(sws, &inv, &srcr, &tab, &dstr, &br, &co, &sa) >= 0)
            sws_setColorspaceDetails(sws, sws_getCoefficients(sws_colorspace(f->colorspace)), full,
                                     sws_getCoefficients(SWS_CS_DEFAULT), 1, br, co, sa);
    }
    uint8_t *tmp = NULL;
    int bpp = alpha ? 4 : 3;
    if (mp_image_alloc(img, f->width, f->height, err) != 0) {
        sws_freeContext(sws);
        return mp_errf(err, "%s: out of memory for a %dx%d frame", name, f->width, f->height);
    }
    uint8_t *dst = img->data;
    if (alpha) {
        tmp = malloc((size_t)f->width * f->height * 4);
        if (!tmp) {
            sws_freeContext(sws);
            mp_image_free(img);
            return mp_errf(err, "%s: out of memory", name);
        }
        dst = tmp;
    }
    uint8_t *dst_planes[4] = {dst, NULL, NULL, NULL};
    int dst_stride[4] = {f->width * bpp, 0, 0, 0};
    int rows = sws_scale(sws, (const uint8_t *const *)f->data, f->linesize, 0, f->height, dst_planes, dst_stride);
    sws_freeContext(sws);
    if (rows != f->height) {
        free(tmp);
        mp_image_free(img);
        return mp_errf(err, "%s: pixel format conversion from %s failed", name, desc->name);
    }
    if (alpha) {
        size_t n = (size_t)f->width * f->height;
        int any = 0;
        for (size_t i = 0; i < n && !any; i++) any = tmp[4 * i + 3] != 255;
        mp_rgba_to_rgb(img->data, tmp, n, alpha_mode);
        free(tmp);
        if (had_alpha) *had_alpha = any;
    }
    return 0;
}

/* ---------------------------------------------------------------- FFmpeg image decoders */

typedef struct memio {
    const uint8_t *p;
    size_t n, pos;
} memio;

static int memio_read(void *opaque, uint8_t *buf, int size) {
    memio *m = opaque;
    size_t left = m->n - m->pos;
    if (left == 0) return AVERROR_EOF;
    size_t k = (size_t)size < left ? (size_t)size : left;
    memcpy(buf, m->p + m->pos, k);
    m->pos += k;
    return (int)k;
}

static int64_t memio_seek(void *opaque, int64_t off, int whence) {
    memio *m = opaque;
    if (whence & AVSEEK_SIZE) return (int64_t)m->n;
    int64_t base = 0;
    switch (whence & ~AVSEEK_FORCE) {
    case SEEK_SET: base = 0; break;
    case SEEK_CUR: base = (int64_t)m->pos; break;
    case SEEK_END: base = (int64_t)m->n; break;
    default: return AVERROR(EINVAL);
    }
    int64_t np = base + off;
    if (np < 0 || np > (int64_t)m->n) return AVERROR(EINVAL);
    m->pos = (size_t)np;
    return np;
}

static const char *av_err(int e, char *buf, size_t n) {
    av_strerror(e, buf, n);
    return buf;
}

static int load_ffmpeg(const uint8_t *buf, size_t size, const char *name, const mp_image_load_opts *o,
                       mp_image *img, mp_error *err) {
    memio m = {buf, size, 0};
    AVFormatContext *fc = NULL;
    AVCodecContext *cc = NULL;
    AVPacket *pkt = NULL;
    AVFrame *fr = NULL;
    AVIOContext *avio = NULL;
    uint8_t *iobuf = NULL;
    char eb[128];
    int ret = -1, r;

    mp_av_init();
    iobuf = av_malloc(65536);
    if (!iobuf) return mp_errf(err, "%s: out of memory", name);
    avio = avio_alloc_context(iobuf, 65536, 0, &m, memio_read, NULL, memio_seek);
    if (!avio) {
        av_free(iobuf);
        return mp_errf(err, "%s: out of memory", name);
    }
    fc = avformat_alloc_context();
    if (!fc) {
        mp_errf(err, "%s: out of memory", name);
        goto done;
    }
    fc->pb = avio;
    fc->flags |= AVFMT_FLAG_CUSTOM_IO;
    if ((r = avformat_open_input(&fc, name, NULL, NULL)) < 0) {
        fc = NULL; /* freed by avformat_open_input */
        mp_errf(err, "%s: not a recognised image format (%s)", name, av_err(r, eb, sizeof eb));
        goto done;
    }
    if ((r = avformat_find_stream_info(fc, NULL)) < 0) {
        mp_errf(err, "%s: cannot read the image stream (%s)", name, av_err(r, eb, sizeof eb));
        goto done;
    }
    const AVCodec *codec = NULL;
    int si = av_find_best_stream(fc, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
    if (si < 0 || !codec) {
        mp_errf(err, "%s: no image in this %s file", name, fc->iformat ? fc->iformat->name : "unknown");
        goto done;
    }
    AVStream *st = fc->streams[si];
    snprintf(img->format, sizeof img->format, "%s", codec->name);
    if ((int64_t)st->codecpar->width * st->codecpar->height > o->max_pixels) {
        mp_errf(err, "%s: image of %dx%d pixels is larger than the limit", name, st->codecpar->width,
                st->codecpar->height);
        goto done;
    }
    cc = avcodec_alloc_context3(codec);
    if (!cc || avcodec_parameters_to_context(cc, st->codecpar) < 0) {
        mp_errf(err, "%s: cannot set up the %s decoder", name, codec->name);
        goto done;
    }
    cc->thread_count = 1;
    if ((r = avcodec_open2(cc, codec, NULL)) < 0) {
        mp_errf(err, "%s: cannot open the %s decoder (%s)", name, codec->name, av_err(r, eb, sizeof eb));
        goto done;
    }
    pkt = av_packet_alloc();
    fr = av_frame_alloc();
    if (!pkt || !fr) {
        mp_errf(err, "%s: out of memory", name);
        goto done;
    }
    int got = 0, last_err = 0, eof = 0;
    while (!got) {
        if (!eof) {
            r = av_read_frame(fc, pkt);
            if (r < 0) {
                eof = 1;
                avcodec_send_packet(cc, NULL);
            } else {
                if (pkt->stream_index == si) {
                    int s = avcodec_send_packet(cc, pkt);
                    if (s < 0 && s != AVERROR(EAGAIN)) last_err = s;
                }
                av_packet_unref(pkt);
            }
        }
        r = avcodec_receive_frame(cc, fr);
        if (r == 0) got = 1;
        else if (r == AVERROR_EOF) break;
        else if (r != AVERROR(EAGAIN)) { last_err = r; if (eof) break; }
        else if (eof) break;
    }
    if (!got) {
        mp_errf(err, "%s: %s decoder produced no image (%s)", name, codec->name,
                last_err ? av_err(last_err, eb, sizeof eb) : "no data");
        goto done;
    }
    char fmt[16];
    memcpy(fmt, img->format, sizeof fmt);
    if (mp_image_from_avframe(fr, o->alpha, img, &img->had_alpha, name, err) != 0) goto done;
    memcpy(img->format, fmt, sizeof fmt);
    ret = 0;
done:
    av_frame_free(&fr);
    av_packet_free(&pkt);
    avcodec_free_context(&cc);
    avformat_close_input(&fc);
    if (avio) {
        av_freep(&avio->buffer);
        avio_context_free(&avio);
    }
    if (ret != 0) {
        char f2[16];
        memcpy(f2, img->format, sizeof f2);
        free(img->data);
        memset(img, 0, sizeof *img);
        memcpy(img->format, f2, sizeof f2);
    }
    return ret;
}

/* ---------------------------------------------------------------- JPEG (libjpeg-turbo) */

typedef struct jerr_mgr {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX];
    char warn[JMSG_LENGTH_MAX];
    int nwarn;
} jerr_mgr;

static void jerr_exit(j_common_ptr c) {
    jerr_mgr *e = (jerr_mgr *)c->err;
    (*c->err->format_message)(c, e->msg);
    longjmp(e->jb, 1);
}

static void jerr_emit(j_common_ptr c, int level) {
    jerr_mgr *e = (jerr_mgr *)c->err;
    if (level < 0) { /* a warning: corrupt or truncated data */
        if (e->nwarn++ == 0) (*c->err->format_message)(c, e->warn);
    }
}

static void jerr_output(j_common_ptr c) { (void)c; }

typedef struct jpeg_state {
    struct jpeg_decompress_struct ci;
    jerr_mgr jerr;
    uint8_t *pix; /* decoded rows, 1/3/4 channels */
    int orientation;
} jpeg_state;

/* Pillow: CMYK JPEGs are read as "CMYK;I" (Adobe inverted), then cmyk2rgb:
 * R = clip(nk - MULDIV255(c, nk)) with c = 255 - stored, nk = stored K. */
static inline uint8_t muldiv255(int a, int b) {
    int t = a * b + 128;
    return (uint8_t)(((t >> 8) + t) >> 8);
}

static int load_jpeg(const uint8_t *buf, size_t size, const char *name, const mp_image_load_opts *o,
                     mp_image *img, mp_error *err) {
    jpeg_state *s = calloc(1, sizeof *s);
    if (!s) return mp_errf(err, "%s: out of memory", name);
    s->ci.err = jpeg_std_error(&s->jerr.pub);
    s->jerr.pub.error_exit = jerr_exit;
    s->jerr.pub.emit_message = jerr_emit;
    s->jerr.pub.output_message = jerr_output;
    if (setjmp(s->jerr.jb)) {
        int code = s->jerr.pub.msg_code;
        jpeg_destroy_decompress(&s->ci);
        free(s->pix);
        free(img->data);
        memset(img, 0, sizeof *img);
        int r;
        if (code == JERR_BAD_PRECISION) {
            /* 12-bit (or 16-bit lossless) JPEG: libjpeg-turbo's 8-bit API cannot decode it. */
            r = load_ffmpeg(buf, size, name, o, img, err);
            if (r == 0) snprintf(img->format, sizeof img->format, "jpeg");
            else mp_errf(err, "%s: JPEG: %s (and FFmpeg could not decode it either)", name, s->jerr.msg);
        } else {
            r = mp_errf(err, "%s: JPEG: %s", name, s->jerr.msg);
        }
        free(s);
        return r;
    }
    jpeg_create_decompress(&s->ci);
    jpeg_mem_src(&s->ci, buf, (unsigned long)size);
    jpeg_save_markers(&s->ci, JPEG_APP0 + 1, 0xffff);
    jpeg_read_header(&s->ci, TRUE);
    for (jpeg_saved_marker_ptr mk = s->ci.marker_list; mk; mk = mk->next) {
        if (mk->marker == JPEG_APP0 + 1 && mk->data_length >= 6 && memcmp(mk->data, "Exif\0\0", 6) == 0) {
            s->orientation = mp_exif_orientation(mk->data, mk->data_length);
            break;
        }
    }
    int comps;
    switch (s->ci.jpeg_color_space) {
    case JCS_GRAYSCALE: s->ci.out_color_space = JCS_GRAYSCALE, comps = 1; break;
    case JCS_CMYK:
    case JCS_YCCK: s->ci.out_color_space = JCS_CMYK, comps = 4; break;
    default: s->ci.out_color_space = JCS_RGB, comps = 3; break;
    }
    if ((int64_t)s->ci.image_width * s->ci.image_height > o->max_pixels) {
        mp_errf(err, "%s: JPEG of %ux%u pixels is larger than the limit", name, s->ci.image_width,
                s->ci.image_height);
        jpeg_destroy_decompress(&s->ci);
        free(s);
        return -1;
    }
    jpeg_start_decompress(&s->ci);
    if ((int)s->ci.output_components != comps) {
        mp_errf(err, "%s: JPEG: unexpected %d output components", name, s->ci.output_components);
        jpeg_destroy_decompress(&s->ci);
        free(s);
        return -1;
    }
    const int w = (int)s->ci.output_width, h = (int)s->ci.output_height;
    s->pix = malloc((size_t)w * h * comps);
    if (!s->pix) {
        mp_errf(err, "%s: out of memory for a %dx%d JPEG", name, w, h);
        jpeg_destroy_decompress(&s->ci);
        free(s);
        return -1;
    }
    while (s->ci.output_scanline < s->ci.output_height) {
        JSAMPROW row = s->pix + (size_t)s->ci.output_scanline * w * comps;
        jpeg_read_scanlines(&s->ci, &row, 1);
    }
    jpeg_finish_decompress(&s->ci);
    jpeg_destroy_decompress(&s->ci);

    if (s->jerr.nwarn && o->strict) {
        mp_errf(err, "%s: JPEG: %s", name, s->jerr.warn);
        free(s->pix);
        free(s);
        return -1;
    }
    if (mp_image_alloc(img, w, h, err) != 0) {
        free(s->pix);
        free(s);
        return mp_errf(err, "%s: out of memory for a %dx%d JPEG", name, w, h);
    }
    size_t n = (size_t)w * h;
    uint8_t *d = img->data;
    const uint8_t *p = s->pix;
    if (comps == 3) {
        memcpy(d, p, n * 3);
    } else if (comps == 1) {
        for (size_t i = 0; i < n; i++) d[3 * i] = d[3 * i + 1] = d[3 * i + 2] = p[i];
    } else {
        for (size_t i = 0; i < n; i++) {
            int nk = p[4 * i + 3];
            for (int c = 0; c < 3; c++) {
                int v = nk - muldiv255(255 - p[4 * i + c], nk);
                d[3 * i + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
        }
    }
    snprintf(img->format, sizeof img->format, "jpeg");
    if (s->jerr.nwarn)
        snprintf(img->warning, sizeof img->warning, "JPEG: %s (%d warning%s; missing data decoded as gray)",
                 s->jerr.warn, s->jerr.nwarn, s->jerr.nwarn > 1 ? "s" : "");
    img->orientation = s->orientation;
    free(s->pix);
    free(s);
    return 0;
}

/* ---------------------------------------------------------------- PNG (libpng) */

typedef struct png_state {
    png_structp png;
    png_infop info;
    memio in;
    char msg[256];
    uint8_t *pix;
    png_bytep *rows;
} png_state;

static void png_err_fn(png_structp png, png_const_charp msg) {
    png_state *s = png_get_error_ptr(png);
    snprintf(s->msg, sizeof s->msg, "%s", msg ? msg : "error");
    png_longjmp(png, 1);
}

static void png_warn_fn(png_structp png, png_const_charp msg) { (void)png, (void)msg; }

static void png_read_fn(png_structp png, png_bytep out, size_t n) {
    png_state *s = png_get_io_ptr(png);
    if (n > s->in.n - s->in.pos) png_error(png, "unexpected end of file");
    memcpy(out, s->in.p + s->in.pos, n);
    s->in.pos += n;
}

static int load_png(const uint8_t *buf, size_t size, const char *name, const mp_image_load_opts *o,
                    mp_image *img, mp_error *err) {
    png_state *s = calloc(1, sizeof *s);
    if (!s) return mp_errf(err, "%s: out of memory", name);
    s->in = (memio){buf, size, 0};
    s->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, s, png_err_fn, png_warn_fn);
    if (!s->png) {
        free(s);
        return mp_errf(err, "%s: PNG: cannot create the decoder", name);
    }
    s->info = png_create_info_struct(s->png);
    if (!s->info) {
        png_destroy_read_struct(&s->png, NULL, NULL);
        free(s);
        return mp_errf(err, "%s: PNG: cannot create the decoder", name);
    }
    if (setjmp(png_jmpbuf(s->png))) {
        png_destroy_read_struct(&s->png, &s->info, NULL);
        int r = mp_errf(err, "%s: PNG: %s", name, s->msg);
        free(s->pix);
        free(s->rows);
        free(img->data);
        memset(img, 0, sizeof *img);
        free(s);
        return r;
    }
    png_set_read_fn(s->png, s, png_read_fn);
    png_set_user_limits(s->png, 0x7fffffff, 0x7fffffff);
    png_read_info(s->png, s->info);
    png_uint_32 w = png_get_image_width(s->png, s->info), h = png_get_image_height(s->png, s->info);
    if ((int64_t)w * h > o->max_pixels || w > INT_MAX / 4 || h > INT_MAX / 4) {
        snprintf(s->msg, sizeof s->msg, "image of %ux%u pixels is larger than the limit", w, h);
        png_longjmp(s->png, 1);
    }
    int ct = png_get_color_type(s->png, s->info);
    int has_alpha = (ct & PNG_COLOR_MASK_ALPHA) || png_get_valid(s->png, s->info, PNG_INFO_tRNS);
    png_set_expand(s->png); /* palette -> RGB, gray < 8 bits -> 8, tRNS -> alpha */
    png_set_strip_16(s->png);
    png_set_gray_to_rgb(s->png);
    png_set_interlace_handling(s->png);
    png_read_update_info(s->png, s->info);
    int ch = png_get_channels(s->png, s->info);
    if (ch != 3 && ch != 4) {
        snprintf(s->msg, sizeof s->msg, "unexpected %d channels after expansion", ch);
        png_longjmp(s->png, 1);
    }
    size_t rowbytes = png_get_rowbytes(s->png, s->info);
    if (rowbytes != (size_t)w * ch) {
        snprintf(s->msg, sizeof s->msg, "unexpected row size");
        png_longjmp(s->png, 1);
    }
    s->pix = malloc((size_t)w * h * ch);
    s->rows = malloc(sizeof(png_bytep) * h);
    if (!s->pix || !s->rows) {
        snprintf(s->msg, sizeof s->msg, "out of memory for %ux%u pixels", w, h);
        png_longjmp(s->png, 1);
    }
    for (png_uint_32 y = 0; y < h; y++) s->rows[y] = s->pix + (size_t)y * w * ch;
    png_read_image(s->png, s->rows);
    png_read_end(s->png, s->info);
    int orientation = 0;
#ifdef PNG_eXIf_SUPPORTED
    png_bytep exif = NULL;
    png_uint_32 nexif = 0;
    if (png_get_eXIf_1(s->png, s->info, &nexif, &exif) && exif) orientation = mp_exif_orientation(exif, nexif);
#endif
    if (mp_image_alloc(img, (int)w, (int)h, err) != 0) {
        snprintf(s->msg, sizeof s->msg, "out of memory for %ux%u pixels", w, h);
        png_longjmp(s->png, 1);
    }
    if (ch == 3) memcpy(img->data, s->pix, (size_t)w * h * 3);
    else mp_rgba_to_rgb(img->data, s->pix, (size_t)w * h, o->alpha);
    img->had_alpha = has_alpha;
    img->orientation = orientation;
    snprintf(img->format, sizeof img->format, "png");
    png_destroy_read_struct(&s->png, &s->info, NULL);
    free(s->pix);
    free(s->rows);
    free(s);
    return 0;
}

/* ---------------------------------------------------------------- entry points */

int mp_image_load_mem(const void *buf, size_t size, const char *name, const mp_image_load_opts *opts,
                      mp_image *img, mp_error *err) {
    mp_image_load_opts o = opts ? *opts : mp_image_load_default_opts();
    if (o.max_pixels <= 0) o.max_pixels = MP_IMAGE_DEFAULT_MAX_PIXELS;
    if (!name) name = "image";
    memset(img, 0, sizeof *img);
    const uint8_t *p = buf;
    if (!p || size == 0) return mp_errf(err, "%s: empty file", name);
    int r;
    if (size >= 3 && p[0] == 0xFF && p[1] == 0xD8 && p[2] == 0xFF)
        r = load_jpeg(p, size, name, &o, img, err);
    else if (size >= 4 && memcmp(p + 1, "PNG", 3) == 0)
        r = load_png(p, size, name, &o, img, err); /* also damaged signatures: libpng names the damage */
    else
        r = load_ffmpeg(p, size, name, &o, img, err);
    if (r != 0) return r;
    if (!o.ignore_orientation && img->orientation > 1) {
        if (mp_image_apply_orientation(img, img->orientation, err) != 0) {
            mp_image_free(img);
            return mp_errf(err, "%s: out of memory applying the EXIF orientation", name);
        }
    }
    return 0;
}

int mp_image_load(const char *path, const mp_image_load_opts *opts, mp_image *img, mp_error *err) {
    memset(img, 0, sizeof *img);
    FILE *f = fopen(path, "rb");
    if (!f) return mp_errf(err, "%s: cannot open: %s", path, strerror(errno));
    uint8_t *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n == cap) {
            if (cap >= MP_IMAGE_MAX_FILE_BYTES) {
                free(buf);
                fclose(f);
                return mp_errf(err, "%s: file is larger than 1 GiB", path);
            }
            size_t nc = cap ? cap * 2 : 1 << 16;
            uint8_t *nb = realloc(buf, nc);
            if (!nb) {
                free(buf);
                fclose(f);
                return mp_errf(err, "%s: out of memory reading the file", path);
            }
            buf = nb, cap = nc;
        }
        size_t k = fread(buf + n, 1, cap - n, f);
        n += k;
        if (k == 0) break;
    }
    int rerr = ferror(f);
    fclose(f);
    if (rerr) {
        free(buf);
        return mp_errf(err, "%s: read error", path);
    }
    int r = mp_image_load_mem(buf, n, path, opts, img, err);
    free(buf);
    return r;
}
