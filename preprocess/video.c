/* video.c — FFmpeg video decoding with time-based frame sampling and seeking. See video.h. */
#include "preprocess/video.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/display.h>

mp_video_opts mp_video_default_opts(void) {
    mp_video_opts o;
    memset(&o, 0, sizeof o);
    o.policy = MP_VIDEO_SAMPLE_FPS;
    o.fps = 1.0;
    o.skip_secs = 1.0;
    o.alpha = MP_ALPHA_WHITE;
    return o;
}

void mp_video_free(mp_video *v) {
    if (!v) return;
    for (int i = 0; i < v->n_frames; i++) mp_image_free(&v->frames[i].img);
    free(v->frames);
    memset(v, 0, sizeof *v);
}

/* ---------------------------------------------------------------- sampling plans */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* sorts and removes duplicates; returns the new count */
static int uniq_times(double *t, int n) {
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    int k = 0;
    for (int i = 0; i < n; i++)
        if (k == 0 || t[i] > t[k - 1]) t[k++] = t[i];
    return k;
}

/* Target times; *out is malloc'd. Returns the count, 0 for "every frame", -1 on error. */
static int plan_times(const mp_video_opts *o, double D, double nfps, int64_t N, double **out, mp_error *err) {
    *out = NULL;
    if (!(nfps > 0)) nfps = 25.0; /* unknown rate: index policies need one; FFmpeg's default */
    if (N <= 0) N = (int64_t)llround(D * nfps);
    if (N <= 0) N = 1;
    int cap = o->max_frames;
    int64_t n = 0;
    double *t = NULL;
    switch (o->policy) {
    case MP_VIDEO_SAMPLE_FPS: {
        int64_t count;
        if (o->fps > 0) {
            count = (int64_t)ceil(D * o->fps - 1e-9);
            if (count < 1) count = 1;
        } else {
            if (cap <= 0 || N <= cap) return 0; /* every frame */
            count = N;
        }
        if (cap > 0 && count > cap) { /* uniform over [first frame, last frame] */
            n = cap;
            t = malloc(sizeof(double) * (size_t)n);
            if (!t) break;
            double last = (double)(N - 1) / nfps;
            for (int64_t i = 0; i < n; i++) t[i] = n == 1 ? 0.0 : last * (double)i / (double)(n - 1);
        } else {
            if (count > 1000000) return mp_errf(err, "video: %lld frames to sample; set a max", (long long)count);
            n = count;
            t = malloc(sizeof(double) * (size_t)n);
            if (!t) break;
            for (int64_t i = 0; i < n; i++) t[i] = (double)i / o->fps;
        }
        break;
    }
    case MP_VIDEO_SAMPLE_QWEN2VL: { /* qwen-vl-utils smart_nframes + round(linspace) */
        const int factor = 2;
        double fps = o->fps > 0 ? o->fps : 2.0;
        int64_t minf = o->min_frames > 0 ? o->min_frames : 4;
        minf = (minf + factor - 1) / factor * factor;
        int64_t maxf = o->max_frames > 0 ? o->max_frames : (768 < N ? 768 : N);
        maxf = maxf / factor * factor;
        double nf = (double)N / nfps * fps;
        if (nf < (double)minf) nf = (double)minf;
        if (nf > (double)maxf) nf = (double)maxf;
        if (nf > (double)N) nf = (double)N;
        n = (int64_t)floor(nf / factor) * factor;
        if (n < 1) n = N < factor ? N : factor; /* very short clips: what there is */
        t = malloc(sizeof(double) * (size_t)n);
        if (!t) break;
        for (int64_t i = 0; i < n; i++) {
            double x = n == 1 ? 0.0 : (double)(N - 1) * (double)i / (double)(n - 1);
            t[i] = nearbyint(x) / nfps;
        }
        break;
    }
    case MP_VIDEO_SAMPLE_SMOLVLM2: { /* transformers' smolvlm_sample_indices_fn */
        double fps = o->fps > 0 ? o->fps : 1.0;
        int64_t mx = cap > 0 ? cap : 64;
        n = (int64_t)nearbyint(fps * D);
        if (n > mx) n = mx;
        if (n < 1) n = 1;
        /* skip_secs at both ends when the video is long enough (load_smolvlm_video uses 1 s) */
        double skip = o->skip_secs;
        int64_t i0 = 0, i1 = N - 1;
        if (skip > 0 && (D - 2 * skip) > ((double)mx * fps)) {
            i0 = (int64_t)(skip * nfps);
            i1 = (int64_t)((double)N - skip * nfps);
        }
        if (i0 < 0) i0 = 0;
        if (i1 > N - 1) i1 = N - 1;
        if (i0 >= i1) i0 = 0, i1 = N - 1;
        t = malloc(sizeof(double) * (size_t)n);
        if (!t) break;
        double step = n > 1 ? (double)(i1 - i0) / (double)(n - 1) : 0;
        for (int64_t i = 0; i < n; i++) {
            double x = i == n - 1 && n > 1 ? (double)i1 : (double)i * step + (double)i0; /* numpy: last = stop */
            t[i] = floor(x) / nfps;
        }
        break;
    }
    default: return mp_errf(err, "video: unknown sampling policy %d", o->policy);
    }
    if (!t) return mp_errf(err, "video: out of memory planning %lld frames", (long long)n);
    *out = t;
    return uniq_times(t, (int)n);
}

int mp_video_sample_times(const mp_video_opts *o, double duration, double native_fps, int64_t total_frames,
                          double *times, int cap, mp_error *err) {
    double *t;
    int n = plan_times(o, duration, native_fps, total_frames, &t, err);
    if (n < 0) return -1;
    if (n == 0) { /* every frame */
        if (!(native_fps > 0)) return mp_errf(err, "video: every frame requested but the frame rate is unknown");
        int64_t N = total_frames > 0 ? total_frames : (int64_t)llround(duration * native_fps);
        for (int64_t i = 0; i < N && i < cap; i++) times[i] = (double)i / native_fps;
        return (int)(N < cap ? N : cap);
    }
    int k = n < cap ? n : cap;
    memcpy(times, t, sizeof(double) * (size_t)k);
    free(t);
    return k;
}

/* ---------------------------------------------------------------- decoding */

typedef struct vstate {
    const char *path;
    AVFormatContext *fc;
    AVCodecContext *cc;
    AVStream *st;
    int si;
    AVPacket *pkt;
    int eof_sent, drained;
    double tb, start; /* seconds per tick; stream start in seconds */
    /* damage */
    int read_error;
    char read_msg[160];
    int n_bad;
    double bad_from, bad_to;
    char bad_msg[160];
    int64_t n_frames_out;
    double nfps;
} vstate;

static const char *errstr(int e, char *buf, size_t n) {
    av_strerror(e, buf, n);
    return buf;
}

static double pkt_time(const vstate *s, const AVPacket *p) {
    int64_t ts = p->pts != AV_NOPTS_VALUE ? p->pts : p->dts;
    return ts == AV_NOPTS_VALUE ? -1.0 : (double)ts * s->tb - s->start;
}

static void note_bad(vstate *s, double t, int e) {
    char eb[96];
    if (s->n_bad++ == 0) {
        const char *m = mp_av_last_message();
        snprintf(s->bad_msg, sizeof s->bad_msg, "%s", *m ? m : errstr(e, eb, sizeof eb));
        s->bad_from = s->bad_to = t;
    }
    if (t >= 0) {
        if (t < s->bad_from || s->bad_from < 0) s->bad_from = t;
        if (t > s->bad_to) s->bad_to = t;
    }
}

/* Next decoded frame in presentation order: 1, or 0 at the end of the stream. */
static int next_frame(vstate *s, AVFrame *f) {
    for (;;) {
        int r = avcodec_receive_frame(s->cc, f);
        if (r == 0) {
            s->n_frames_out++;
            return 1;
        }
        if (r == AVERROR_EOF) return 0;
        if (r != AVERROR(EAGAIN)) {
            note_bad(s, -1, r);
            if (s->eof_sent) return 0;
        }
        if (s->eof_sent) return 0;
        /* feed one packet */
        for (;;) {
            r = av_read_frame(s->fc, s->pkt);
            if (r < 0) {
                if (r != AVERROR_EOF) {
                    s->read_error = 1;
                    const char *m = mp_av_last_message();
                    char eb[96];
                    snprintf(s->read_msg, sizeof s->read_msg, "%s", *m ? m : errstr(r, eb, sizeof eb));
                }
                avcodec_send_packet(s->cc, NULL);
                s->eof_sent = 1;
                break;
            }
            if (s->pkt->stream_index != s->si) {
                av_packet_unref(s->pkt);
                continue;
            }
            double t = pkt_time(s, s->pkt);
            r = avcodec_send_packet(s->cc, s->pkt);
            av_packet_unref(s->pkt);
            if (r < 0 && r != AVERROR(EAGAIN)) note_bad(s, t, r);
            break;
        }
    }
}

static double frame_time(const vstate *s, const AVFrame *f) {
    int64_t ts = f->best_effort_timestamp;
    if (ts == AV_NOPTS_VALUE) ts = f->pts;
    if (ts == AV_NOPTS_VALUE) return (double)(s->n_frames_out - 1) / s->nfps;
    return (double)ts * s->tb - s->start;
}

/* ffmpeg CLI autorotate (fftools/ffmpeg_filter.c) as an EXIF orientation code */
static int display_orientation(const AVStream *st) {
    const int32_t *m = NULL;
#if LIBAVCODEC_VERSION_INT >= AV_VERSION_INT(60, 31, 100)
    const AVPacketSideData *sd = av_packet_side_data_get(st->codecpar->coded_side_data,
                                                         st->codecpar->nb_coded_side_data, AV_PKT_DATA_DISPLAYMATRIX);
    if (sd && sd->size >= 9 * 4) m = (const int32_t *)sd->data;
#else
    size_t size = 0;
    const uint8_t *sd = av_stream_get_side_data(st, AV_PKT_DATA_DISPLAYMATRIX, &size);
    if (sd && size >= 9 * 4) m = (const int32_t *)sd;
#endif
    if (!m) return 1;
    double theta = -round(av_display_rotation_get(m));
    theta -= 360 * floor(theta / 360 + 0.9 / 360);
    if (fabs(theta - 90) < 1.0) return m[3] > 0 ? 5 : 6;  /* cclock_flip (transpose) : clock */
    if (fabs(theta - 270) < 1.0) return m[3] < 0 ? 7 : 8; /* clock_flip (transverse) : cclock */
    if (fabs(theta - 180) < 1.0) {
        int h = m[0] < 0, vf = m[4] < 0;
        return h && vf ? 3 : h ? 2 : vf ? 4 : 1;
    }
    if (fabs(theta) < 1.0) return m[4] < 0 ? 4 : 1;
    return 1; /* arbitrary angles: not applied */
}

static int emit(mp_video *v, const AVFrame *f, double pts, const mp_video_opts *o, const char *path, mp_error *err) {
    if (v->n_frames > 0 && v->frames[v->n_frames - 1].pts == pts) return 0; /* same frame again */
    mp_video_frame *nf = realloc(v->frames, sizeof(*nf) * (size_t)(v->n_frames + 1));
    if (!nf) return mp_errf(err, "%s: out of memory", path);
    v->frames = nf;
    mp_video_frame *fr = &v->frames[v->n_frames];
    memset(fr, 0, sizeof *fr);
    if (mp_image_from_avframe(f, o->alpha, &fr->img, NULL, path, err) != 0) return -1;
    if (v->orientation > 1 && mp_image_apply_orientation(&fr->img, v->orientation, err) != 0) {
        mp_image_free(&fr->img);
        return -1;
    }
    fr->pts = pts;
    v->n_frames++;
    return 0;
}

static int is_image_demuxer(const AVInputFormat *f) {
    if (!f || !f->name) return 0;
    size_t n = strlen(f->name);
    return strcmp(f->name, "image2") == 0 || (n > 5 && strcmp(f->name + n - 5, "_pipe") == 0);
}

static int load_as_image(const char *path, const mp_video_opts *o, mp_video *v, mp_error *err) {
    mp_image_load_opts io = mp_image_load_default_opts();
    io.alpha = o->alpha;
    v->frames = calloc(1, sizeof *v->frames);
    if (!v->frames) return mp_errf(err, "%s: out of memory", path);
    if (mp_image_load(path, &io, &v->frames[0].img, err) != 0) {
        free(v->frames);
        v->frames = NULL;
        return -1;
    }
    const mp_image *im = &v->frames[0].img;
    v->n_frames = 1;
    v->width = im->w, v->height = im->h;
    v->total_frames = 1;
    v->orientation = im->orientation ? im->orientation : 1;
    snprintf(v->codec, sizeof v->codec, "%s", im->format);
    snprintf(v->container, sizeof v->container, "image");
    if (im->warning[0]) snprintf(v->warning, sizeof v->warning, "%s", im->warning);
    return 0;
}

/* End of the last packet in seconds and the number of packets of the video stream, by demuxing
 * without decoding. */
static double scan_packets(vstate *s, int64_t *count) {
    double end = 0;
    *count = 0;
    while (av_read_frame(s->fc, s->pkt) >= 0) {
        if (s->pkt->stream_index == s->si) {
            double t = pkt_time(s, s->pkt);
            (*count)++;
            double d = s->pkt->duration > 0 ? (double)s->pkt->duration * s->tb : 1.0 / s->nfps;
            if (t >= 0 && t + d > end) end = t + d;
        }
        av_packet_unref(s->pkt);
    }
    return end;
}

/* Seeking to t pays only when the key frame before t comes after the current position. With an index
 * (mp4, mkv cues, avi idx1) that is known before seeking; without one, try (and the caller stops
 * seeking when a seek lands behind). */
static int keyframe_ahead(const vstate *s, double t, double pos) {
    int n = avformat_index_get_entries_count(s->st);
    if (n <= 0) return 1;
    int64_t ts = (s->st->start_time != AV_NOPTS_VALUE ? s->st->start_time : 0) + (int64_t)floor(t / s->tb);
    const AVIndexEntry *last = avformat_index_get_entry(s->st, n - 1);
    if (!last || last->timestamp < ts) return 1; /* index not (yet) covering t, e.g. Matroska cues unread */
    const AVIndexEntry *e = avformat_index_get_entry_from_timestamp(s->st, ts, AVSEEK_FLAG_BACKWARD);
    if (!e) return 0;
    return (double)e->timestamp * s->tb - s->start > pos + 1e-9;
}

static void vclose(vstate *s) {
    av_packet_free(&s->pkt);
    avcodec_free_context(&s->cc);
    avformat_close_input(&s->fc);
}

/* Opens the file and the decoder of its best video stream: 0, 1 when it is an image file, -1 on error. */
static int vopen(vstate *s, const char *path, const mp_video_opts *o, mp_error *err) {
    char eb[128];
    int r;
    memset(s, 0, sizeof *s);
    s->path = path;
    s->bad_from = -1;
    if ((r = avformat_open_input(&s->fc, path, NULL, NULL)) < 0) {
        const char *m = mp_av_last_message();
        return mp_errf(err, "%s: cannot open as video: %s%s%s%s", path, errstr(r, eb, sizeof eb), *m ? " (" : "",
                       *m ? m : "", *m ? ")" : "");
    }
    if (is_image_demuxer(s->fc->iformat)) {
        avformat_close_input(&s->fc);
        return 1;
    }
    if ((r = avformat_find_stream_info(s->fc, NULL)) < 0) {
        vclose(s);
        return mp_errf(err, "%s: cannot read stream information: %s", path, errstr(r, eb, sizeof eb));
    }
    const AVCodec *codec = NULL;
    s->si = av_find_best_stream(s->fc, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
    if (s->si < 0 || (s->fc->streams[s->si]->disposition & AV_DISPOSITION_ATTACHED_PIC)) {
        int ai = av_find_best_stream(s->fc, AVMEDIA_TYPE_AUDIO, -1, -1, NULL, 0);
        if (ai >= 0)
            mp_errf(err, "%s: has no video stream (audio only: %s); give it to transcribe instead", path,
                    avcodec_get_name(s->fc->streams[ai]->codecpar->codec_id));
        else if (s->si == AVERROR_DECODER_NOT_FOUND)
            mp_errf(err, "%s: no decoder for its video stream", path);
        else
            mp_errf(err, "%s: has no video stream", path);
        vclose(s);
        return -1;
    }
    s->st = s->fc->streams[s->si];
    s->cc = avcodec_alloc_context3(codec);
    s->pkt = av_packet_alloc();
    if (!s->cc || !s->pkt || avcodec_parameters_to_context(s->cc, s->st->codecpar) < 0) {
        vclose(s);
        return mp_errf(err, "%s: cannot set up the %s decoder", path, codec->name);
    }
    s->cc->thread_count = o->threads > 0 ? o->threads : 1;
    s->cc->pkt_timebase = s->st->time_base;
    if ((r = avcodec_open2(s->cc, codec, NULL)) < 0) {
        vclose(s);
        return mp_errf(err, "%s: cannot open the %s decoder: %s", path, codec->name, errstr(r, eb, sizeof eb));
    }
    s->tb = av_q2d(s->st->time_base);
    s->start = s->st->start_time != AV_NOPTS_VALUE ? (double)s->st->start_time * s->tb : 0.0;
    AVRational fr = s->st->avg_frame_rate.num > 0 && s->st->avg_frame_rate.den > 0 ? s->st->avg_frame_rate
                                                                                    : s->st->r_frame_rate;
    s->nfps = fr.num > 0 && fr.den > 0 ? av_q2d(fr) : 25.0;
    return 0;
}

int mp_video_load(const char *path, const mp_video_opts *opts, mp_video *v, mp_error *err) {
    mp_video_opts o = opts ? *opts : mp_video_default_opts();
    memset(v, 0, sizeof *v);
    mp_av_init();
    mp_av_clear_message();
    vstate s;
    AVFrame *cur = NULL, *prev = NULL;
    double *t = NULL;
    int ret = -1;

    int r = vopen(&s, path, &o, err);
    if (r < 0) return -1;
    if (r == 1) return load_as_image(path, &o, v, err);
    snprintf(v->container, sizeof v->container, "%s", s.fc->iformat->name);
    snprintf(v->codec, sizeof v->codec, "%s", s.cc->codec->name);
    v->native_fps = s.nfps;
    if (s.st->duration > 0 && s.st->duration != AV_NOPTS_VALUE) v->duration = (double)s.st->duration * s.tb;
    else if (s.fc->duration > 0) v->duration = (double)s.fc->duration / AV_TIME_BASE;
    v->orientation = display_orientation(s.st);
    v->total_frames = s.st->nb_frames;
    /* Index-based plans need the frame count; without a container count (Matroska/WebM, ...) or a
     * duration, demux once (no decoding) to count the packets, then start over. */
    int index_plan = o.policy != MP_VIDEO_SAMPLE_FPS || o.max_frames > 0 || o.fps <= 0;
    if ((index_plan && v->total_frames <= 0) || !(v->duration > 0)) {
        int64_t count = 0;
        double end = scan_packets(&s, &count);
        vclose(&s);
        if (vopen(&s, path, &o, err) != 0) return -1;
        if (count > 0) v->total_frames = count;
        if (end > 0 && (index_plan || !(v->duration > 0))) v->duration = end;
    }
    if (v->total_frames <= 0) v->total_frames = (int64_t)llround(v->duration * s.nfps);
    cur = av_frame_alloc();
    prev = av_frame_alloc();
    if (!cur || !prev) {
        mp_errf(err, "%s: out of memory", path);
        goto done;
    }
    int nt = plan_times(&o, v->duration, s.nfps, v->total_frames, &t, err);
    if (nt < 0) goto done;
    const int every = nt == 0;
    const double thr = o.seek_threshold > 0 ? o.seek_threshold : 1.0;
    int can_seek = !o.no_seek && !every && (s.fc->pb ? s.fc->pb->seekable : 0) &&
                   !(s.fc->iformat->flags & AVFMT_NOTIMESTAMPS);
    double pos = -1e30, prev_t = 0, frame_dur = 1.0 / s.nfps;
    int have_prev = 0, ti = 0, just_seeked = 0, seek_ti = -1;
    double pos_before_seek = 0;
    while (every || ti < nt) {
        /* at most one seek per target: a second one for the same target means the first did not get there
         * (broken timestamps, an index that never covers it); decoding on is always right (found by fuzzing:
         * an FLV that seeked forever) */
        if (can_seek && !every && ti != seek_ti && t[ti] - pos > thr && t[ti] - (have_prev ? prev_t : 0) > thr &&
            keyframe_ahead(&s, t[ti], have_prev ? prev_t : -1e30)) {
            seek_ti = ti;
            int64_t ts = (s.st->start_time != AV_NOPTS_VALUE ? s.st->start_time : 0) + (int64_t)floor(t[ti] / s.tb);
            if (av_seek_frame(s.fc, s.si, ts, AVSEEK_FLAG_BACKWARD) >= 0) {
                avcodec_flush_buffers(s.cc);
                s.eof_sent = 0;
                v->n_seeks++;
                pos_before_seek = have_prev ? prev_t : -1e30;
                have_prev = 0;
                av_frame_unref(prev);
                just_seeked = 1;
            } else {
                can_seek = 0;
            }
        }
        if (!next_frame(&s, cur)) break;
        double p = frame_time(&s, cur);
        if (just_seeked) {
            just_seeked = 0;
            if (p <= pos_before_seek) can_seek = 0; /* key frames too far apart: seeking does not pay */
        }
        if (have_prev && p > prev_t) frame_dur = p - prev_t;
        pos = p;
        if (every) {
            if (emit(v, cur, p, &o, path, err) != 0) goto done;
        } else {
            while (ti < nt && p >= t[ti] - 1e-9) {
                int use_prev = have_prev && (t[ti] - prev_t) <= (p - t[ti]);
                if (emit(v, use_prev ? prev : cur, use_prev ? prev_t : p, &o, path, err) != 0) goto done;
                ti++;
            }
        }
        av_frame_unref(prev);
        av_frame_move_ref(prev, cur);
        prev_t = p;
        have_prev = 1;
    }
    v->n_decoded = s.n_frames_out;
    /* targets inside the last frame's display interval take it */
    while (!every && ti < nt && have_prev && t[ti] < prev_t + frame_dur - 1e-9) {
        if (emit(v, prev, prev_t, &o, path, err) != 0) goto done;
        ti++;
    }
    if (v->n_frames == 0) {
        const char *why = s.read_error ? s.read_msg : s.n_bad ? s.bad_msg : "no frames";
        mp_errf(err, "%s: no video frame could be decoded (%s)", path, why);
        goto done;
    }
    v->width = v->frames[0].img.w;
    v->height = v->frames[0].img.h;
    /* What was lost. Targets past the end of the decoded frames are dropped silently when the stream
     * simply ended there (a container duration that counts a longer audio track); they are a loss when
     * reading failed or the stream's own duration says there was more. */
    double end_ok = have_prev ? prev_t + frame_dur : 0;
    double st_dur = s.st->duration > 0 && s.st->duration != AV_NOPTS_VALUE ? (double)s.st->duration * s.tb : 0;
    int lost_tail = (s.read_error && end_ok < v->duration - frame_dur) ||
                    (!every && ti < nt && (s.read_error || s.n_bad || end_ok < st_dur - 1.5 * frame_dur));
    if (lost_tail) {
        const char *detail = s.read_error ? s.read_msg : s.n_bad ? s.bad_msg : "";
        v->lost_from = end_ok;
        v->lost_to = v->duration > end_ok ? v->duration : end_ok;
        snprintf(v->warning, sizeof v->warning,
                 "video from %.3f s to %.3f s could not be decoded (truncated or corrupt file%s%s); %d of %d "
                 "sampled frames returned",
                 v->lost_from, v->lost_to, *detail ? ": " : "", detail, v->n_frames, every ? v->n_frames : nt);
    } else if (s.n_bad) {
        v->lost_from = s.bad_from > 0 ? s.bad_from : 0;
        v->lost_to = s.bad_to > v->lost_from ? s.bad_to : v->lost_from;
        snprintf(v->warning, sizeof v->warning, "%d damaged packet%s between %.3f s and %.3f s skipped (%s)",
                 s.n_bad, s.n_bad > 1 ? "s" : "", v->lost_from, v->lost_to, s.bad_msg);
    }
    ret = 0;
done:
    free(t);
    av_frame_free(&cur);
    av_frame_free(&prev);
    vclose(&s);
    if (ret != 0) mp_video_free(v);
    return ret;
}
