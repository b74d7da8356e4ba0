/* audio.c — decode audio files to mono float at one rate: libsndfile for WAV/FLAC/Ogg/AIFF/...,
 * FFmpeg (libavformat + libavcodec) for MP3, AAC/M4A, Opus and audio tracks of video files,
 * libswresample for downmix + rate conversion. See audio.h. */
#include "preprocess/audio.h"
#include "models/mmap.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sndfile.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/channel_layout.h>
#include <libavutil/opt.h>
#include <libswresample/swresample.h>

/* Longest audio we accept: 2^31 output samples (37 h at 16 kHz). */
#define MP_AUDIO_MAX_SAMPLES ((int64_t)1 << 31)

/* ---------------------------------------------------------------- memory source */

typedef struct membuf {
    const uint8_t *p;
    int64_t n, pos;
} membuf;

/* ---------------------------------------------------------------- resampler (libswresample) */

/* Streaming converter: any layout/format/rate in, mono float at dst_rate out, appended to out[]. */
typedef struct resampler {
    SwrContext *swr; /* NULL: pass-through (mono float at dst_rate already) */
    int in_channels, in_rate, in_fmt, dst_rate;
    float *out;
    int64_t n, cap;
} resampler;

static int rs_reserve(resampler *r, int64_t extra, const char *name, mp_error *err) {
    if (r->n + extra > MP_AUDIO_MAX_SAMPLES)
        return mp_errf(err, "%s: audio is too long (more than %lld samples at %d Hz)", name,
                       (long long)MP_AUDIO_MAX_SAMPLES, r->dst_rate);
    if (r->n + extra <= r->cap) return 0;
    int64_t cap = r->cap ? r->cap : 1 << 16;
    while (cap < r->n + extra) cap *= 2;
    float *p = realloc(r->out, (size_t)cap * sizeof(float));
    if (!p) return mp_errf(err, "%s: out of memory for %lld samples", name, (long long)cap);
    r->out = p;
    r->cap = cap;
    return 0;
}

static int rs_init(resampler *r, const AVChannelLayout *in_layout, int in_fmt, int in_rate, int dst_rate,
                   const char *name, mp_error *err) {
    r->in_channels = in_layout->nb_channels;
    r->in_rate = in_rate;
    r->in_fmt = in_fmt;
    r->dst_rate = dst_rate;
    r->swr = NULL;
    if (r->in_channels <= 0 || r->in_channels > 64)
        return mp_errf(err, "%s: unsupported channel count %d", name, r->in_channels);
    if (in_rate <= 0 || in_rate > 1536000) return mp_errf(err, "%s: unsupported sample rate %d Hz", name, in_rate);
    if (r->in_channels == 1 && in_rate == dst_rate && in_fmt == AV_SAMPLE_FMT_FLT) return 0;

    AVChannelLayout mono = AV_CHANNEL_LAYOUT_MONO;
    AVChannelLayout in_copy = *in_layout;
    int ret = swr_alloc_set_opts2(&r->swr, &mono, AV_SAMPLE_FMT_FLT, dst_rate, &in_copy, in_fmt, in_rate, 0, NULL);
    if (ret < 0 || !r->swr) return mp_errf(err, "%s: cannot set up the resampler (%d ch, %d Hz)", name, r->in_channels, in_rate);
    /* Downmix: the mean of all channels (what whisper.cpp's miniaudio and `ffmpeg -ac 1` give for stereo). */
    double m[64];
    for (int c = 0; c < r->in_channels; c++) m[c] = 1.0 / r->in_channels;
    if (r->in_channels > 1 && swr_set_matrix(r->swr, m, r->in_channels) < 0) {
        swr_free(&r->swr);
        return mp_errf(err, "%s: cannot set the downmix matrix for %d channels", name, r->in_channels);
    }
    /* Windowed-sinc filter a bit longer than the default (32) for a flatter pass band. */
    av_opt_set_int(r->swr, "filter_size", 64, 0);
    if (swr_init(r->swr) < 0) {
        swr_free(&r->swr);
        return mp_errf(err, "%s: cannot initialise the resampler (%d ch, %d Hz -> %d Hz)", name, r->in_channels,
                       in_rate, dst_rate);
    }
    return 0;
}

/* Push n_in frames (data: planes or one interleaved buffer as swr expects for in_fmt); n_in = 0 and
 * data = NULL flushes. */
static int rs_push(resampler *r, const uint8_t **data, int n_in, const char *name, mp_error *err) {
    if (!r->swr) {
        if (!data) return 0;
        if (rs_reserve(r, n_in, name, err)) return -1;
        memcpy(r->out + r->n, data[0], (size_t)n_in * sizeof(float));
        r->n += n_in;
        return 0;
    }
    int room = swr_get_out_samples(r->swr, n_in);
    if (room < 0) return mp_errf(err, "%s: resampler error", name);
    room += 16;
    if (rs_reserve(r, room, name, err)) return -1;
    uint8_t *outp = (uint8_t *)(r->out + r->n);
    int got = swr_convert(r->swr, &outp, room, data, n_in);
    if (got < 0) return mp_errf(err, "%s: resampling failed", name);
    r->n += got;
    if (!data) { /* drain everything that is left */
        for (;;) {
            if (rs_reserve(r, 4096, name, err)) return -1;
            outp = (uint8_t *)(r->out + r->n);
            got = swr_convert(r->swr, &outp, 4096, NULL, 0);
            if (got < 0) return mp_errf(err, "%s: resampling failed", name);
            if (got == 0) break;
            r->n += got;
        }
    }
    return 0;
}

/* Flushes the converter and hands its samples to out (r keeps nothing). */
static int rs_finish(resampler *r, mp_audio *out, int64_t src_frames, const char *name, mp_error *err) {
    if (rs_push(r, NULL, 0, name, err)) return -1;
    if (r->n == 0) return mp_errf(err, "%s: no audio samples after resampling", name);
    out->samples = r->out;
    r->out = NULL;
    out->n_samples = r->n;
    out->sample_rate = r->dst_rate;
    out->src_rate = r->in_rate;
    out->src_channels = r->in_channels;
    out->src_frames = src_frames;
    return 0;
}

static void rs_free(resampler *r) {
    swr_free(&r->swr);
    free(r->out);
    r->out = NULL;
}

int mp_audio_convert(const float *in, int64_t n_frames, int channels, int src_rate, int dst_rate, float **out,
                     int64_t *n_out, mp_error *err) {
    *out = NULL;
    *n_out = 0;
    if (channels <= 0 || channels > 64) return mp_errf(err, "audio: unsupported channel count %d", channels);
    AVChannelLayout lay;
    av_channel_layout_default(&lay, channels);
    resampler r = {0};
    if (rs_init(&r, &lay, AV_SAMPLE_FMT_FLT, src_rate, dst_rate, "audio", err)) return -1;
    const int64_t chunk = 1 << 16;
    for (int64_t i = 0; i < n_frames; i += chunk) {
        int64_t k = n_frames - i < chunk ? n_frames - i : chunk;
        const uint8_t *planes[1] = {(const uint8_t *)(in + i * channels)};
        if (rs_push(&r, planes, (int)k, "audio", err)) { rs_free(&r); return -1; }
    }
    if (rs_push(&r, NULL, 0, "audio", err)) { rs_free(&r); return -1; }
    *out = r.out;
    *n_out = r.n;
    swr_free(&r.swr);
    return 0;
}

/* ---------------------------------------------------------------- libsndfile over memory */

static sf_count_t sfv_len(void *u) { return ((membuf *)u)->n; }
static sf_count_t sfv_seek(sf_count_t off, int whence, void *u) {
    membuf *m = u;
    int64_t base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? m->pos : m->n;
    int64_t p = base + off;
    if (p < 0 || p > m->n) return -1;
    m->pos = p;
    return p;
}
static sf_count_t sfv_read(void *dst, sf_count_t count, void *u) {
    membuf *m = u;
    if (count < 0) return 0;
    int64_t k = m->n - m->pos;
    if (k > count) k = count;
    memcpy(dst, m->p + m->pos, (size_t)k);
    m->pos += k;
    return k;
}
static sf_count_t sfv_write(const void *src, sf_count_t count, void *u) { return 0; }
static sf_count_t sfv_tell(void *u) { return ((membuf *)u)->pos; }

/* Name of a libsndfile major format or subtype ("WAV (Microsoft)", "Signed 16 bit PCM"). */
static const char *sf_format_name(int format, const char *fallback) {
    SF_FORMAT_INFO fi = {.format = format};
    if (sf_command(NULL, SFC_GET_FORMAT_INFO, &fi, sizeof fi) == 0 && fi.name) return fi.name;
    return fallback;
}

/* Returns 1 when libsndfile does not handle this file (so FFmpeg should try), 0 on success, -1 on a
 * definite error (err filled). */
static int decode_sndfile(const membuf *src, const char *name, int dst_rate, mp_audio *out, mp_error *err) {
    membuf m = *src;
    SF_VIRTUAL_IO vio = {sfv_len, sfv_seek, sfv_read, sfv_write, sfv_tell};
    SF_INFO info;
    memset(&info, 0, sizeof info);
    SNDFILE *sf = sf_open_virtual(&vio, SFM_READ, &info, &m);
    if (!sf) {
        int e = sf_error(NULL);
        if (e == SF_ERR_UNRECOGNISED_FORMAT || e == SF_ERR_UNSUPPORTED_ENCODING) return 1;
        return mp_errf(err, "%s: %s", name, sf_strerror(NULL));
    }
    int type = info.format & SF_FORMAT_TYPEMASK, sub = info.format & SF_FORMAT_SUBMASK;
    /* MP3 and Opus go through FFmpeg (its decoders handle gapless padding and every variant). */
    if (type == SF_FORMAT_MPEG || sub == SF_FORMAT_OPUS || sub == SF_FORMAT_MPEG_LAYER_III ||
        sub == SF_FORMAT_MPEG_LAYER_II || sub == SF_FORMAT_MPEG_LAYER_I) {
        sf_close(sf);
        return 1;
    }
    int rc = -1;
    resampler r = {0};
    float *buf = NULL;
    if (info.channels <= 0 || info.channels > 64) {
        mp_errf(err, "%s: unsupported channel count %d", name, info.channels);
        goto done;
    }
    if (info.frames <= 0) {
        char log[2048] = {0};
        sf_command(sf, SFC_GET_LOG_INFO, log, sizeof log);
        if (strstr(log, "should be"))
            mp_errf(err, "%s: no audio samples: the file ends before the data its header announces (truncated)", name);
        else
            mp_errf(err, "%s: no audio samples (empty %s file)", name, sf_format_name(type, "audio"));
        goto done;
    }
    AVChannelLayout lay;
    av_channel_layout_default(&lay, info.channels);
    if (rs_init(&r, &lay, AV_SAMPLE_FMT_FLT, info.samplerate, dst_rate, name, err)) goto done;
    const int chunk = 16384;
    buf = malloc((size_t)chunk * info.channels * sizeof(float));
    if (!buf) { mp_errf(err, "%s: out of memory", name); goto done; }
    int64_t total = 0;
    for (;;) {
        sf_count_t got = sf_readf_float(sf, buf, chunk);
        if (got < 0) { mp_errf(err, "%s: read error: %s", name, sf_strerror(sf)); goto done; }
        if (got == 0) break;
        const uint8_t *planes[1] = {(const uint8_t *)buf};
        if (rs_push(&r, planes, (int)got, name, err)) goto done;
        total += got;
    }
    if (sf_error(sf) != SF_ERR_NO_ERROR) { mp_errf(err, "%s: decode error: %s", name, sf_strerror(sf)); goto done; }
    if (total == 0) { mp_errf(err, "%s: no audio samples could be decoded (corrupt file)", name); goto done; }
    if (rs_finish(&r, out, total, name, err)) goto done;
    snprintf(out->src_format, sizeof out->src_format, "%s, %s (libsndfile)", sf_format_name(type, "audio"),
             sf_format_name(sub, "?"));
    rc = 0;
done:
    free(buf);
    rs_free(&r);
    sf_close(sf);
    return rc;
}

/* ---------------------------------------------------------------- FFmpeg over memory */

static int av_mem_read(void *u, uint8_t *dst, int size) {
    membuf *m = u;
    int64_t k = m->n - m->pos;
    if (k <= 0) return AVERROR_EOF;
    if (k > size) k = size;
    memcpy(dst, m->p + m->pos, (size_t)k);
    m->pos += k;
    return (int)k;
}
static int64_t av_mem_seek(void *u, int64_t off, int whence) {
    membuf *m = u;
    if (whence & AVSEEK_SIZE) return m->n;
    whence &= ~AVSEEK_FORCE;
    int64_t base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? m->pos : whence == SEEK_END ? m->n : -1;
    if (base < 0) return AVERROR(EINVAL);
    int64_t p = base + off;
    if (p < 0 || p > m->n) return AVERROR(EINVAL);
    m->pos = p;
    return p;
}

static const char *averr(int e, char *buf, size_t n) {
    if (av_strerror(e, buf, n) < 0) snprintf(buf, n, "error %d", e);
    return buf;
}

static int ff_take_frame(resampler *r, int *rs_ready, const AVFrame *fr, int dst_rate, int64_t *frames,
                         const char *name, mp_error *err) {
    if (fr->nb_samples <= 0) return 0;
    if (*rs_ready && (fr->ch_layout.nb_channels != r->in_channels || fr->sample_rate != r->in_rate ||
                      fr->format != r->in_fmt)) {
        /* the stream changed its parameters: finish the old converter, start a new one */
        if (rs_push(r, NULL, 0, name, err)) return -1;
        swr_free(&r->swr);
        *rs_ready = 0;
    }
    if (!*rs_ready) {
        AVChannelLayout lay = fr->ch_layout;
        AVChannelLayout def;
        if (lay.order == AV_CHANNEL_ORDER_UNSPEC) { av_channel_layout_default(&def, lay.nb_channels); lay = def; }
        if (rs_init(r, &lay, fr->format, fr->sample_rate, dst_rate, name, err)) return -1;
        *rs_ready = 1;
    }
    if (rs_push(r, (const uint8_t **)fr->extended_data, fr->nb_samples, name, err)) return -1;
    *frames += fr->nb_samples;
    return 0;
}

static int decode_ffmpeg(const membuf *src, const char *name, int dst_rate, mp_audio *out, mp_error *err) {
    membuf m = *src;
    char eb[256];
    int rc = -1, ret;
    AVFormatContext *fc = NULL;
    AVIOContext *io = NULL;
    AVCodecContext *cc = NULL;
    AVPacket *pkt = NULL;
    AVFrame *fr = NULL;
    resampler r = {0};
    int rs_ready = 0;
    int64_t frames = 0;

    if (av_log_get_level() == AV_LOG_INFO) av_log_set_level(AV_LOG_QUIET); /* errors are reported by us */

    uint8_t *iobuf = av_malloc(65536);
    fc = avformat_alloc_context();
    if (!iobuf || !fc) { av_free(iobuf); mp_errf(err, "%s: out of memory", name); goto done; }
    io = avio_alloc_context(iobuf, 65536, 0, &m, av_mem_read, NULL, av_mem_seek);
    if (!io) { av_free(iobuf); mp_errf(err, "%s: out of memory", name); goto done; }
    fc->pb = io;
    fc->flags |= AVFMT_FLAG_CUSTOM_IO;
    const AVInputFormat *ifmt = NULL;
    if (av_probe_input_buffer2(io, &ifmt, name, NULL, 0, 0) < 0 || !ifmt) {
        mp_errf(err, "%s: not a recognised audio or video format", name);
        goto done;
    }
    if ((ret = avformat_open_input(&fc, name, ifmt, NULL)) < 0) {
        fc = NULL; /* freed by avformat_open_input */
        mp_errf(err, "%s: corrupt or truncated %s file: %s", name, ifmt->long_name ? ifmt->long_name : ifmt->name,
                averr(ret, eb, sizeof eb));
        goto done;
    }
    if ((ret = avformat_find_stream_info(fc, NULL)) < 0) {
        mp_errf(err, "%s: cannot read stream information: %s", name, averr(ret, eb, sizeof eb));
        goto done;
    }
    const AVCodec *codec = NULL;
    int si = av_find_best_stream(fc, AVMEDIA_TYPE_AUDIO, -1, -1, &codec, 0);
    if (si == AVERROR_STREAM_NOT_FOUND) {
        mp_errf(err, "%s: no audio stream (%s file)", name, fc->iformat ? fc->iformat->name : "unknown");
        goto done;
    }
    if (si < 0 || !codec) {
        const AVStream *st = si >= 0 ? fc->streams[si] : NULL;
        mp_errf(err, "%s: no decoder for the audio stream%s%s", name, st ? " codec " : "",
                st ? avcodec_get_name(st->codecpar->codec_id) : "");
        goto done;
    }
    AVStream *st = fc->streams[si];
    cc = avcodec_alloc_context3(codec);
    if (!cc) { mp_errf(err, "%s: out of memory", name); goto done; }
    ret = avcodec_parameters_to_context(cc, st->codecpar);
    cc->pkt_timebase = st->time_base;
    if (ret < 0 || (ret = avcodec_open2(cc, codec, NULL)) < 0) {
        mp_errf(err, "%s: cannot open the %s decoder: %s", name, codec->name, averr(ret, eb, sizeof eb));
        goto done;
    }
    pkt = av_packet_alloc();
    fr = av_frame_alloc();
    if (!pkt || !fr) { mp_errf(err, "%s: out of memory", name); goto done; }

    int n_bad = 0, eof = 0;
    char bad_msg[256] = "";
    while (!eof) {
        ret = av_read_frame(fc, pkt);
        if (ret == AVERROR_EOF) {
            eof = 1;
            ret = avcodec_send_packet(cc, NULL);
        } else if (ret < 0) {
            mp_errf(err, "%s: read error after %.2f s of audio: %s (truncated or corrupt file)", name,
                    rs_ready ? (double)frames / r.in_rate : 0.0, averr(ret, eb, sizeof eb));
            goto done;
        } else {
            if (pkt->stream_index != si) { av_packet_unref(pkt); continue; }
            ret = avcodec_send_packet(cc, pkt);
            av_packet_unref(pkt);
        }
        if (ret < 0 && ret != AVERROR(EAGAIN) && ret != AVERROR_EOF) {
            /* a damaged packet: skip it like ffmpeg does, but remember it */
            if (!n_bad++) averr(ret, bad_msg, sizeof bad_msg);
            continue;
        }
        for (;;) {
            ret = avcodec_receive_frame(cc, fr);
            if (ret == AVERROR(EAGAIN) || ret == AVERROR_EOF) break;
            if (ret < 0) {
                if (!n_bad++) averr(ret, bad_msg, sizeof bad_msg);
                break;
            }
            int e = ff_take_frame(&r, &rs_ready, fr, dst_rate, &frames, name, err);
            av_frame_unref(fr);
            if (e) goto done;
        }
    }
    if (!rs_ready || frames == 0) {
        if (n_bad)
            mp_errf(err, "%s: no audio could be decoded (%s stream): %s", name, codec->name, bad_msg);
        else
            mp_errf(err, "%s: no audio samples (empty %s stream)", name, codec->name);
        goto done;
    }
    /* A container that states its audio duration (mp4, mkv, ... not a bitrate guess) but ends early is
     * truncated: the demuxer just reports end of file, so compare. */
    if (st->duration != AV_NOPTS_VALUE && st->duration > 0 && st->time_base.den > 0 &&
        fc->duration_estimation_method != AVFMT_DURATION_FROM_BITRATE) {
        double announced = st->duration * av_q2d(st->time_base), got = (double)frames / r.in_rate;
        double slack = announced * 0.05 > 0.5 ? announced * 0.05 : 0.5;
        if (got + slack < announced) {
            mp_errf(err, "%s: truncated: the %s file announces %.2f s of audio but only %.2f s could be read", name,
                    fc->iformat->long_name ? fc->iformat->long_name : fc->iformat->name, announced, got);
            goto done;
        }
    }
    if (rs_finish(&r, out, frames, name, err)) goto done;
    snprintf(out->src_format, sizeof out->src_format, "%s %s (ffmpeg)", fc->iformat->name, codec->name);
    rc = 0;
done:
    rs_free(&r);
    av_frame_free(&fr);
    av_packet_free(&pkt);
    avcodec_free_context(&cc);
    avformat_close_input(&fc);
    if (io) {
        av_freep(&io->buffer);
        avio_context_free(&io);
    }
    return rc;
}

/* ---------------------------------------------------------------- entry points */

int mp_audio_load_memory(const void *data, size_t size, const char *name, int sample_rate, mp_audio *out,
                         mp_error *err) {
    memset(out, 0, sizeof *out);
    if (!name) name = "<memory>";
    if (sample_rate <= 0) sample_rate = MP_AUDIO_RATE;
    if (sample_rate > 1536000) return mp_errf(err, "%s: unsupported output sample rate %d", name, sample_rate);
    if (!data || size == 0) return mp_errf(err, "%s: empty file (0 bytes)", name);
    membuf m = {data, (int64_t)size, 0};
    mp_error e1;
    int r = decode_sndfile(&m, name, sample_rate, out, &e1);
    if (r == 0) return 0;
    if (r < 0) {
        if (err) *err = e1;
        return -1;
    }
    return decode_ffmpeg(&m, name, sample_rate, out, err);
}

/* Reads a whole non-seekable stream (stdin, a pipe). */
static int read_stream(int fd, const char *name, uint8_t **buf, size_t *n, mp_error *err) {
    size_t cap = 1 << 20, len = 0;
    uint8_t *p = malloc(cap);
    if (!p) return mp_errf(err, "%s: out of memory", name);
    for (;;) {
        if (len == cap) {
            if (cap >= ((size_t)1 << 34)) { free(p); return mp_errf(err, "%s: input larger than 16 GiB", name); }
            uint8_t *q = realloc(p, cap * 2);
            if (!q) { free(p); return mp_errf(err, "%s: out of memory", name); }
            p = q;
            cap *= 2;
        }
        ssize_t k = read(fd, p + len, cap - len);
        if (k < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            free(p);
            return mp_errf(err, "%s: read error: %s", name, strerror(e));
        }
        if (k == 0) break;
        len += (size_t)k;
    }
    *buf = p;
    *n = len;
    return 0;
}

int mp_audio_load(const char *path, int sample_rate, mp_audio *out, mp_error *err) {
    memset(out, 0, sizeof *out);
    if (!path) return mp_errf(err, "audio: no file name");
    int is_stdin = strcmp(path, "-") == 0;
    if (!is_stdin && mp_is_dir(path)) return mp_errf(err, "%s: is a directory, not an audio file", path);
    if (!is_stdin && mp_is_file(path)) { /* regular file: map it */
        mp_mmap f;
        if (mp_mmap_open(&f, path, err)) return -1;
        int rc = mp_audio_load_memory(f.data, f.size, path, sample_rate, out, err);
        mp_mmap_close(&f);
        return rc;
    }
    /* stdin, a pipe or a device: read it all */
    const char *name = is_stdin ? "<stdin>" : path;
    int fd = is_stdin ? 0 : open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return mp_errf(err, "%s: cannot open: %s", path, strerror(errno));
    uint8_t *buf = NULL;
    size_t n = 0;
    int rc = read_stream(fd, name, &buf, &n, err);
    if (!is_stdin) close(fd);
    if (rc == 0) rc = mp_audio_load_memory(buf, n, name, sample_rate, out, err);
    free(buf);
    return rc;
}

void mp_audio_free(mp_audio *a) {
    if (!a) return;
    free(a->samples);
    memset(a, 0, sizeof *a);
}
