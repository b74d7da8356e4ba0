/* vidgen.h — writes test videos with libavcodec/libavformat whose frames carry their own index as a bar
 * code: the top half of frame i has 8 vertical bars, bar k bright when bit k of i is set (bar 0 on the
 * left). The bottom half is a gradient that moves with i (real motion for the encoders). */
#ifndef MP_VIDGEN_H
#define MP_VIDGEN_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/display.h>
#include <libavutil/opt.h>

#include "preprocess/image.h"

typedef struct vg_spec {
    const char *codec;   /* encoder name: "libx264", "mpeg4", "mjpeg", "libvpx-vp9", "ffv1", ... */
    const char *path;    /* container from the extension */
    int w, h, n;         /* size, frame count */
    int fps;             /* nominal rate (time base 1/fps unless pts_ms is given) */
    const int64_t *pts_ms; /* variable frame rate: pts of each frame in milliseconds (time base 1/1000) */
    int gop, bframes;
    double rotate;       /* display matrix rotation (av_display_rotation_set degrees, counter-clockwise) */
} vg_spec;

static inline void vg_fill(AVFrame *f, int idx) {
    int w = f->width, h = f->height;
    int full = f->format == AV_PIX_FMT_YUVJ420P;
    int lo = full ? 0 : 16, hi = full ? 255 : 235;
    for (int y = 0; y < h; y++) {
        uint8_t *row = f->data[0] + (size_t)y * f->linesize[0];
        for (int x = 0; x < w; x++) {
            if (y < h / 2) {
                int k = x * 8 / w;
                row[x] = (uint8_t)(((idx >> k) & 1) ? hi : lo);
            } else {
                row[x] = (uint8_t)(lo + ((x + y + 3 * idx) % 128) * (hi - lo) / 255);
            }
        }
    }
    for (int p = 1; p < 3; p++)
        for (int y = 0; y < (h + 1) / 2; y++) memset(f->data[p] + (size_t)y * f->linesize[p], 128, (size_t)(w + 1) / 2);
}

/* Reads the index back from an RGB frame (of the unrotated orientation). -1 if a bar is ambiguous. */
static inline int vg_read_index(const mp_image *im) {
    int idx = 0;
    for (int k = 0; k < 8; k++) {
        int x0 = k * im->w / 8 + im->w / 32, x1 = (k + 1) * im->w / 8 - im->w / 32;
        long s = 0, n = 0;
        for (int y = im->h / 8; y < im->h * 3 / 8; y++)
            for (int x = x0; x < x1; x++, n++) {
                const uint8_t *p = im->data + ((size_t)y * im->w + x) * 3;
                s += p[0] + p[1] + p[2];
            }
        double m = (double)s / (3.0 * n);
        if (m > 160) idx |= 1 << k;
        else if (m > 96) return -1;
    }
    return idx;
}

static inline int vg_drain(AVCodecContext *c, AVFormatContext *oc, AVStream *st, AVPacket *pkt, int cfr) {
    int r;
    while ((r = avcodec_receive_packet(c, pkt)) == 0) {
        if (cfr && pkt->duration <= 0) pkt->duration = 1; /* one frame in the 1/fps time base */
        av_packet_rescale_ts(pkt, c->time_base, st->time_base);
        pkt->stream_index = st->index;
        if (av_interleaved_write_frame(oc, pkt) < 0) return -1;
    }
    return r == AVERROR(EAGAIN) || r == AVERROR_EOF ? 0 : -1;
}

/* 0 on success; -1 (with a message on stderr) otherwise; 1 when the encoder is not available */
static inline int vg_write(const vg_spec *s) {
    const AVCodec *enc = avcodec_find_encoder_by_name(s->codec);
    if (!enc) {
        fprintf(stderr, "vidgen: encoder %s not available\n", s->codec);
        return 1;
    }
    AVFormatContext *oc = NULL;
    if (avformat_alloc_output_context2(&oc, NULL, NULL, s->path) < 0 || !oc) return -1;
    AVStream *st = avformat_new_stream(oc, NULL);
    AVCodecContext *c = avcodec_alloc_context3(enc);
    c->width = s->w;
    c->height = s->h;
    c->pix_fmt = strcmp(s->codec, "mjpeg") == 0 ? AV_PIX_FMT_YUVJ420P : AV_PIX_FMT_YUV420P;
    c->time_base = s->pts_ms ? (AVRational){1, 1000} : (AVRational){1, s->fps};
    c->framerate = (AVRational){s->fps, 1};
    c->gop_size = s->gop > 0 ? s->gop : 12;
    c->max_b_frames = s->bframes;
    c->thread_count = 1;
    if (strcmp(s->codec, "mjpeg") == 0 || strcmp(s->codec, "mpeg4") == 0) {
        c->flags |= AV_CODEC_FLAG_QSCALE;
        c->global_quality = FF_QP2LAMBDA * 3;
    }
    if (strcmp(s->codec, "libx264") == 0) av_opt_set(c->priv_data, "preset", "veryfast", 0);
    if (strcmp(s->codec, "libvpx-vp9") == 0) {
        av_opt_set(c->priv_data, "deadline", "realtime", 0);
        av_opt_set_int(c->priv_data, "cpu-used", 8, 0);
        c->bit_rate = 400000;
    }
    if (oc->oformat->flags & AVFMT_GLOBALHEADER) c->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    if (avcodec_open2(c, enc, NULL) < 0) {
        fprintf(stderr, "vidgen: cannot open %s\n", s->codec);
        avcodec_free_context(&c);
        avformat_free_context(oc);
        return -1;
    }
    avcodec_parameters_from_context(st->codecpar, c);
    st->time_base = c->time_base;
    if (s->rotate != 0) {
        int32_t *m = (int32_t *)av_stream_new_side_data(st, AV_PKT_DATA_DISPLAYMATRIX, sizeof(int32_t) * 9);
        if (m) av_display_rotation_set(m, s->rotate);
    }
    int ok = avio_open(&oc->pb, s->path, AVIO_FLAG_WRITE) >= 0 && avformat_write_header(oc, NULL) >= 0;
    AVFrame *f = av_frame_alloc();
    AVPacket *pkt = av_packet_alloc();
    f->format = c->pix_fmt;
    f->width = s->w;
    f->height = s->h;
    ok = ok && av_frame_get_buffer(f, 0) >= 0;
    for (int i = 0; ok && i < s->n; i++) {
        ok = av_frame_make_writable(f) >= 0;
        vg_fill(f, i);
        f->pts = s->pts_ms ? s->pts_ms[i] : i;
        ok = ok && avcodec_send_frame(c, f) >= 0 && vg_drain(c, oc, st, pkt, !s->pts_ms) == 0;
    }
    ok = ok && avcodec_send_frame(c, NULL) >= 0 && vg_drain(c, oc, st, pkt, !s->pts_ms) == 0;
    ok = ok && av_write_trailer(oc) >= 0;
    av_frame_free(&f);
    av_packet_free(&pkt);
    avcodec_free_context(&c);
    if (oc->pb) avio_closep(&oc->pb);
    avformat_free_context(oc);
    if (!ok) fprintf(stderr, "vidgen: writing %s failed\n", s->path);
    return ok ? 0 : -1;
}

#endif
