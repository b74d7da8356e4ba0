/* test_video — preprocess/video.c on videos written here with libavcodec (frames carry their index as a
 * bar code: several codecs/containers, variable frame rate, rotation metadata) and on the real clips
 * of ../shared/fixtures/video, compared with the frames Debian's ffmpeg CLI extracts. Index-based
 * sampling policies are checked against numpy/torch linspace (Debian's python3). */
#include "preprocess/video.h"
#include "test.h"
#include "../image/imgtest_util.h"
#include "vidgen.h"

#include <math.h>

static const char *SWS = "bicubic+accurate_rnd+full_chroma_int+full_chroma_inp";

/* frames selected by index with the ffmpeg CLI, as rgb24 */
static uint8_t *ffmpeg_frames(const char *path, const int *idx, int n, size_t *bytes) {
    char sel[4096] = "", out[1024], cmd[8192];
    for (int i = 0; i < n; i++) {
        size_t l = strlen(sel);
        snprintf(sel + l, sizeof sel - l, "%seq(n\\,%d)", i ? "+" : "", idx[i]);
    }
    snprintf(out, sizeof out, "%s/ff_frames.rgb", mp_tt_tmpdir("video"));
    snprintf(cmd, sizeof cmd,
             "ffmpeg -nostdin -hide_banner -loglevel error -y -i '%s' -vf \"select='%s'\" -vsync 0 -sws_flags %s "
             "-f rawvideo -pix_fmt rgb24 '%s'",
             path, sel, SWS, out);
    if (mp_tt_run(cmd) != 0) return NULL;
    return mp_tt_read_file(out, bytes);
}

static int frame_index_of(const mp_video *v, int i, double fps) { return (int)llround(v->frames[i].pts * fps); }

/* every sampled frame equals the ffmpeg CLI's frame of the same index */
static void check_vs_ffmpeg(const char *path, const mp_video *v, double fps, int tol) {
    if (!mp_tt_have_ffmpeg() || v->n_frames == 0) return;
    int idx[256], n = v->n_frames < 256 ? v->n_frames : 256;
    for (int i = 0; i < n; i++) idx[i] = frame_index_of(v, i, fps);
    size_t bytes = 0;
    uint8_t *ref = ffmpeg_frames(path, idx, n, &bytes);
    size_t fb = (size_t)v->width * v->height * 3;
    CHECKF(ref && bytes == fb * n, "%s: ffmpeg gave %zu bytes for %d frames of %dx%d", path, bytes, n, v->width,
           v->height);
    if (ref && bytes == fb * n) {
        for (int i = 0; i < n; i++) {
            double mean;
            int mx = mp_tt_cmp_u8(v->frames[i].img.data, ref + fb * i, fb, &mean);
            CHECKF(mx <= tol, "%s: frame %d (pts %.3f) differs from ffmpeg's: max %d mean %.3f", path, idx[i],
                   v->frames[i].pts, mx, mean);
        }
    }
    free(ref);
}

static int load(const char *path, const mp_video_opts *o, mp_video *v) {
    mp_error err = {{0}};
    int r = mp_video_load(path, o, v, &err);
    CHECKF(r == 0, "%s", err.msg);
    return r;
}

/* sampled frames carry the expected indices (bar code) and pts */
static void check_indices(const char *tag, const mp_video *v, const int *expect, int n, const double *expect_pts) {
    CHECKF(v->n_frames == n, "%s: %d frames, expected %d", tag, v->n_frames, n);
    for (int i = 0; i < v->n_frames && i < n; i++) {
        mp_image im = v->frames[i].img;
        int got = vg_read_index(&im);
        CHECKF(got == expect[i], "%s: frame %d is #%d, expected #%d (pts %.4f)", tag, i, got, expect[i], v->frames[i].pts);
        if (expect_pts) CHECKF(fabs(v->frames[i].pts - expect_pts[i]) < 1e-6, "%s: pts %.6f vs %.6f", tag, v->frames[i].pts, expect_pts[i]);
    }
}

static void same_frames(const char *tag, const mp_video *a, const mp_video *b) {
    CHECKF(a->n_frames == b->n_frames, "%s: %d vs %d frames", tag, a->n_frames, b->n_frames);
    for (int i = 0; i < a->n_frames && i < b->n_frames; i++) {
        CHECKF(a->frames[i].pts == b->frames[i].pts, "%s: frame %d pts %.4f vs %.4f", tag, i, a->frames[i].pts, b->frames[i].pts);
        CHECKF(a->frames[i].img.w == b->frames[i].img.w && a->frames[i].img.h == b->frames[i].img.h &&
                   memcmp(a->frames[i].img.data, b->frames[i].img.data, (size_t)a->frames[i].img.w * a->frames[i].img.h * 3) == 0,
               "%s: frame %d pixels differ", tag, i);
    }
}

/* indices from numpy/torch, as the HF samplers compute them */
static int py_indices(const char *expr, int *idx, int cap) {
    char out[1024], cmd[4096];
    snprintf(out, sizeof out, "%s/idx.txt", mp_tt_tmpdir("video"));
    snprintf(cmd, sizeof cmd, "%s -c \"import numpy as np, torch, math\nprint(' '.join(str(int(i)) for i in %s))\" > '%s'",
             MP_PYTHON, expr, out);
    if (mp_tt_run(cmd) != 0) return -1;
    FILE *f = fopen(out, "r");
    int n = 0;
    while (f && n < cap && fscanf(f, "%d", &idx[n]) == 1) n++;
    if (f) fclose(f);
    return n;
}

static void test_generated(void) {
    const char *d = mp_tt_tmpdir("video");
    static const struct { const char *codec, *ext; int gop, bf, tol; } specs[] = {
        {"libx264", "mp4", 12, 2, 0}, {"mpeg4", "avi", 12, 0, 0}, {"mjpeg", "mkv", 1, 0, 0},
        {"libvpx-vp9", "webm", 12, 0, 0}, {"ffv1", "mkv", 12, 0, 0}, {"libx264", "mov", 24, 3, 0},
    };
    for (size_t si = 0; si < sizeof specs / sizeof specs[0]; si++) {
        char path[1024], tag[128];
        snprintf(path, sizeof path, "%s/gen_%s.%s", d, specs[si].codec, specs[si].ext);
        snprintf(tag, sizeof tag, "%s/%s", specs[si].codec, specs[si].ext);
        vg_spec s = {specs[si].codec, path, 160, 120, 120, 24, NULL, specs[si].gop, specs[si].bf, 0};
        int w = vg_write(&s);
        if (w == 1) continue; /* encoder not in this FFmpeg build */
        CHECKF(w == 0, "%s: could not write", tag);
        if (w) continue;
        mp_video v, v2;
        mp_video_opts o = mp_video_default_opts();
        o.fps = 2; /* 5 s: 10 frames at k/2 s = #12k */
        if (load(path, &o, &v) == 0) {
            int e[10];
            double ep[10];
            for (int k = 0; k < 10; k++) e[k] = 12 * k, ep[k] = k * 0.5;
            check_indices(tag, &v, e, 10, ep);
            CHECK(fabs(v.duration - 5.0) < 0.05 && fabs(v.native_fps - 24) < 1e-6 && v.width == 160 && v.height == 120);
            check_vs_ffmpeg(path, &v, 24, specs[si].tol);
            mp_video_free(&v);
        }
        /* sparse sampling seeks; the frames are the same as decoding everything */
        o.fps = 0.4; /* t = 0, 2.5 */
        if (load(path, &o, &v) == 0) {
            mp_video_opts o2 = o;
            o2.no_seek = 1;
            if (load(path, &o2, &v2) == 0) {
                same_frames(tag, &v, &v2);
                CHECK(v2.n_seeks == 0);
                if (strcmp(specs[si].ext, "mp4") == 0 || strcmp(specs[si].ext, "mkv") == 0)
                    CHECKF(v.n_seeks > 0 && v.n_decoded < v2.n_decoded, "%s: seeks %d, decoded %lld vs %lld", tag,
                           v.n_seeks, (long long)v.n_decoded, (long long)v2.n_decoded);
                mp_video_free(&v2);
            }
            int e[2] = {0, 60};
            check_indices(tag, &v, e, 2, NULL);
            mp_video_free(&v);
        }
        /* cap: 4 frames uniform over [first, last] = nearest to 0, 39.67, 79.33, 119 */
        o.fps = 24;
        o.max_frames = 4;
        if (load(path, &o, &v) == 0) {
            int e[4] = {0, 40, 79, 119};
            check_indices(tag, &v, e, 4, NULL);
            mp_video_free(&v);
        }
        /* every frame */
        o.fps = 0;
        o.max_frames = 0;
        if (load(path, &o, &v) == 0) {
            int e[120];
            for (int i = 0; i < 120; i++) e[i] = i;
            check_indices(tag, &v, e, 120, NULL);
            mp_video_free(&v);
        }
        if (si == 0) { /* index policies vs torch / numpy linspace */
            int want[64], n = 0;
            o = mp_video_default_opts();
            o.policy = MP_VIDEO_SAMPLE_QWEN2VL;
            o.fps = 2.0; /* 120/24*2 = 10 frames */
            n = py_indices("torch.linspace(0, 119, 10).round().long().tolist()", want, 64);
            if (n > 0 && load(path, &o, &v) == 0) {
                check_indices("qwen2vl policy", &v, want, n, NULL);
                mp_video_free(&v);
            }
            o.fps = 0.5; /* 2.5 -> min_frames 4 */
            n = py_indices("torch.linspace(0, 119, 4).round().long().tolist()", want, 64);
            if (n > 0 && load(path, &o, &v) == 0) {
                check_indices("qwen2vl policy (min frames)", &v, want, n, NULL);
                mp_video_free(&v);
            }
            o = mp_video_default_opts();
            o.policy = MP_VIDEO_SAMPLE_SMOLVLM2;
            o.fps = 1.4; /* round(7.0) = 7 */
            n = py_indices("np.unique(np.linspace(0, 119, int(round(1.4 * 5.0)), dtype=int))", want, 64);
            if (n > 0 && load(path, &o, &v) == 0) {
                check_indices("smolvlm2 policy", &v, want, n, NULL);
                mp_video_free(&v);
            }
            o.fps = 24;
            o.max_frames = 9;
            n = py_indices("np.unique(np.linspace(0, 119, 9, dtype=int))", want, 64);
            if (n > 0 && load(path, &o, &v) == 0) {
                check_indices("smolvlm2 policy (cap)", &v, want, n, NULL);
                mp_video_free(&v);
            }
            o.fps = 0.5;
            o.max_frames = 1;
            o.skip_secs = 1.0; /* 5 - 2 > 1 * 0.5: skip 1 s (24 frames) at both ends */
            n = py_indices("np.unique(np.linspace(int(1.0 * 24), int(120 - 1.0 * 24), 1, dtype=int))", want, 64);
            if (n > 0 && load(path, &o, &v) == 0) {
                check_indices("smolvlm2 policy (skip)", &v, want, n, NULL);
                mp_video_free(&v);
            }
            o.max_frames = 4;
            o.fps = 2; /* 5 - 2 > 8 is false: no skip */
            n = py_indices("np.unique(np.linspace(0, 119, 4, dtype=int))", want, 64);
            if (n > 0 && load(path, &o, &v) == 0) {
                check_indices("smolvlm2 policy (cap)", &v, want, n, NULL);
                mp_video_free(&v);
            }
        }
    }
}

static void test_vfr(void) {
    /* variable frame rate: 20 frames at irregular times (ms) */
    static const int64_t pts[20] = {0, 40, 50, 130, 300, 310, 320, 600, 1000, 1040,
                                    1080, 1500, 1510, 1900, 2300, 2350, 2400, 2800, 2990, 3000};
    const char *d = mp_tt_tmpdir("video");
    const char *codecs[] = {"libx264", "ffv1"};
    for (int ci = 0; ci < 2; ci++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/vfr_%s.mkv", d, codecs[ci]);
        vg_spec s = {codecs[ci], path, 128, 96, 20, 25, pts, 6, ci == 0 ? 2 : 0, 0};
        int w = vg_write(&s);
        if (w == 1) continue;
        CHECK(w == 0);
        mp_video v;
        mp_video_opts o = mp_video_default_opts();
        o.fps = 4; /* targets every 250 ms up to the end */
        if (load(path, &o, &v) == 0) {
            /* expected: for each target the nearest pts (ties: earlier), duplicates once */
            int e[64], n = 0;
            double ep[64];
            for (int k = 0; k * 250 <= 3000 + 40; k++) {
                double t = k * 250;
                if (t >= v.duration * 1000 - 1e-6) break; /* targets k/fps < duration */
                int best = 0;
                for (int i = 1; i < 20; i++)
                    if (fabs(pts[i] - t) < fabs(pts[best] - t)) best = i;
                if (n == 0 || e[n - 1] != best) e[n] = best, ep[n] = pts[best] / 1000.0, n++;
            }
            check_indices(codecs[ci], &v, e, n, ep);
            mp_video_free(&v);
        }
        o.fps = 0; /* every frame keeps its own pts */
        if (load(path, &o, &v) == 0) {
            int e[20];
            double ep[20];
            for (int i = 0; i < 20; i++) e[i] = i, ep[i] = pts[i] / 1000.0;
            check_indices(codecs[ci], &v, e, 20, ep);
            mp_video_free(&v);
        }
    }
}

static void test_rotation(void) {
    const char *d = mp_tt_tmpdir("video");
    static const struct { double rot; int orient; } cases[] = {{-90, 8}, {90, 6}, {180, 3}}; /* as the CLI */
    for (int ci = 0; ci < 3; ci++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/rot%d.mp4", d, ci);
        vg_spec s = {"libx264", path, 160, 96, 24, 24, NULL, 12, 0, cases[ci].rot};
        int w = vg_write(&s);
        if (w == 1) return;
        CHECK(w == 0);
        mp_video v;
        mp_video_opts o = mp_video_default_opts();
        o.fps = 4;
        if (load(path, &o, &v) == 0) {
            CHECK_EQ_INT(v.orientation, cases[ci].orient);
            int swap = cases[ci].orient >= 5;
            CHECK(v.width == (swap ? 96 : 160) && v.height == (swap ? 160 : 96));
            check_vs_ffmpeg(path, &v, 24, 0); /* the CLI autorotates */
            /* rotate back and read the bar code: frames 0, 6, 12, 18 */
            static const int inv[9] = {1, 1, 2, 3, 4, 5, 8, 7, 6};
            for (int i = 0; i < v.n_frames; i++) {
                mp_error err;
                CHECK(mp_image_apply_orientation(&v.frames[i].img, inv[cases[ci].orient], &err) == 0);
                CHECKF(vg_read_index(&v.frames[i].img) == 6 * i, "rotation %g: frame %d is #%d (%dx%d)", cases[ci].rot, i,
                       vg_read_index(&v.frames[i].img), v.frames[i].img.w, v.frames[i].img.h);
            }
            mp_video_free(&v);
        }
    }
}

static void test_fixtures(void) {
    struct { const char *rel; double fps; int max; int expect_n; double dur; int w, h; int tol; } clips[] = {
        {"video/testsrc2_320x240_24fps_4s_h264_aac.mp4", 2, 0, 8, 4.0, 320, 240, 0},
        {"video/testsrc2_320x240_24fps_3s_vp9_opus.webm", 2, 0, 6, 3.0, 320, 240, 0},
        {"video/testsrc2_320x240_24fps_2s_mjpeg_pcm.avi", 3, 0, 6, 2.0, 320, 240, 0},
        {"video/big_buck_bunny_432_433.webm", 4, 0, 4, 1.0, 1280, 720, 0},
        {"video/big_buck_bunny_0_30.webm", 1, 6, 6, 30.0, 1280, 720, 0},
    };
    for (size_t i = 0; i < sizeof clips / sizeof clips[0]; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s", mp_fixture(clips[i].rel));
        mp_video v;
        mp_video_opts o = mp_video_default_opts();
        o.fps = clips[i].fps;
        o.max_frames = clips[i].max;
        if (load(path, &o, &v) != 0) continue;
        CHECKF(v.n_frames == clips[i].expect_n && v.width == clips[i].w && v.height == clips[i].h &&
                   fabs(v.duration - clips[i].dur) < 0.05,
               "%s: %d frames %dx%d %.3f s", clips[i].rel, v.n_frames, v.width, v.height, v.duration);
        CHECKF(v.warning[0] == 0, "%s: unexpected warning %s", clips[i].rel, v.warning);
        if (clips[i].max == 0)
            for (int k = 0; k < v.n_frames; k++) CHECK_NEAR(v.frames[k].pts, k / clips[i].fps, 1e-6);
        check_vs_ffmpeg(path, &v, 24, clips[i].tol);
        if (clips[i].max) { /* the long clip: seeking used, same frames as decoding it all */
            mp_video v2;
            mp_video_opts o2 = o;
            o2.no_seek = 1;
            CHECK(v.n_seeks > 0);
            if (load(path, &o2, &v2) == 0) {
                same_frames(clips[i].rel, &v, &v2);
                mp_video_free(&v2);
            }
        }
        mp_video_free(&v);
    }
}

static void test_broken(void) {
    mp_video v, ok;
    mp_error err = {{0}};
    /* truncated with the index at the front: what decodes is returned, the lost range reported */
    mp_video_opts o = mp_video_default_opts();
    o.fps = 4;
    if (load(mp_fixture("video/broken_truncated30_faststart.mp4"), &o, &v) == 0) {
        CHECKF(v.n_frames >= 4 && v.n_frames <= 5, "truncated: %d frames", v.n_frames);
        CHECKF(strstr(v.warning, "could not be decoded") != NULL, "warning: %s", v.warning);
        CHECKF(v.lost_from > 0.9 && v.lost_from < 1.2 && fabs(v.lost_to - 4.0) < 0.05, "lost %.3f..%.3f", v.lost_from,
               v.lost_to);
        /* the frames it did return are the intact file's */
        if (load(mp_fixture("video/testsrc2_320x240_24fps_4s_h264_aac.mp4"), &o, &ok) == 0) {
            for (int i = 0; i < v.n_frames && i < ok.n_frames; i++) {
                CHECK(v.frames[i].pts == ok.frames[i].pts);
                CHECK(memcmp(v.frames[i].img.data, ok.frames[i].img.data, 320 * 240 * 3) == 0);
            }
            mp_video_free(&ok);
        }
        mp_video_free(&v);
    }
    /* truncated with the index at the end: nothing usable, clear error */
    const char *p = mp_fixture("video/broken_truncated30_moov_at_end.mp4");
    CHECK(mp_video_load(p, NULL, &v, &err) == -1);
    CHECKF(strstr(err.msg, "broken_truncated30_moov_at_end.mp4") && (strstr(err.msg, "moov") || strstr(err.msg, "Invalid")),
           "%s", err.msg);
    /* audio only */
    p = mp_fixture("audio_extra/speech_birch_canoe_16k_mono.wav");
    CHECK(mp_video_load(p, NULL, &v, &err) == -1);
    CHECKF(strstr(err.msg, "audio only") && strstr(err.msg, "speech_birch_canoe_16k_mono.wav"), "%s", err.msg);
    CHECK(mp_video_load("/nonexistent/clip.mp4", NULL, &v, &err) == -1 && strstr(err.msg, "/nonexistent/clip.mp4"));
    /* an image is a one-frame video, decoded exactly as mp_image_load does */
    if (load(mp_fixture("images/hopper.jpg"), NULL, &v) == 0) {
        mp_image im;
        CHECK(mp_image_load(mp_fixture("images/hopper.jpg"), NULL, &im, &err) == 0);
        CHECK(v.n_frames == 1 && v.frames[0].pts == 0 && v.width == 128 && v.height == 128);
        CHECK(memcmp(im.data, v.frames[0].img.data, 128 * 128 * 3) == 0);
        mp_image_free(&im);
        mp_video_free(&v);
    }
    o = mp_video_default_opts();
    o.fps = 2;
    CHECK(mp_video_load(mp_fixture("images/broken/truncated_skimage.jpg"), NULL, &v, &err) == -1);
    /* an animated GIF is a video (written by the ffmpeg CLI: 20 frames at 10 fps) */
    if (mp_tt_have_ffmpeg()) {
        char gif[1024], cmd[2048];
        snprintf(gif, sizeof gif, "%s/anim.gif", mp_tt_tmpdir("video"));
        snprintf(cmd, sizeof cmd, "ffmpeg -nostdin -loglevel error -y -f lavfi -i testsrc2=size=64x48:rate=10:duration=2 '%s'", gif);
        if (mp_tt_run(cmd) == 0 && load(gif, &o, &v) == 0) {
            CHECKF(v.n_frames == 4 && v.width == 64 && v.height == 48 && strcmp(v.codec, "gif") == 0,
                   "gif: %d frames %dx%d %s", v.n_frames, v.width, v.height, v.codec);
            for (int i = 0; i < v.n_frames; i++) CHECK_NEAR(v.frames[i].pts, i * 0.5, 1e-6);
            mp_video_free(&v);
        }
    }
    /* corrupt bytes in the middle of a stream: frames before and after still come out, no crash */
    char path[1024];
    snprintf(path, sizeof path, "%s/corrupt.mkv", mp_tt_tmpdir("video"));
    vg_spec s = {"mpeg4", path, 160, 120, 96, 24, NULL, 12, 0, 0};
    if (vg_write(&s) == 0) {
        size_t n = 0;
        uint8_t *b = mp_tt_read_file(path, &n);
        unsigned long long seed = 3;
        for (size_t k = n / 2; k < n / 2 + 3000 && k < n; k++) b[k] = (uint8_t)mp_test_rng(&seed);
        mp_tt_write_file(path, b, n);
        free(b);
        o = mp_video_default_opts();
        o.fps = 0;
        if (mp_video_load(path, &o, &v, &err) == 0) {
            CHECKF(v.n_frames > 40, "corrupt middle: %d frames", v.n_frames);
            mp_video_free(&v);
        } else {
            CHECKF(0, "corrupt middle: %s", err.msg);
        }
    }
}

int main(void) {
    if (access(mp_fixture("video/testsrc2_320x240_24fps_4s_h264_aac.mp4"), R_OK) != 0) {
        fprintf(stderr, "test_video: fixtures absent, skipped\n");
        return MP_TEST_SKIP;
    }
    /* the sampling plan alone */
    {
        double t[16];
        mp_error err;
        mp_video_opts o = mp_video_default_opts();
        o.fps = 2;
        CHECK_EQ_INT(mp_video_sample_times(&o, 4.0, 24, 96, t, 16, &err), 8);
        CHECK(t[0] == 0 && t[7] == 3.5);
        o.max_frames = 3;
        CHECK_EQ_INT(mp_video_sample_times(&o, 4.0, 24, 96, t, 16, &err), 3);
        CHECK(t[0] == 0 && fabs(t[2] - 95.0 / 24) < 1e-12);
    }
    mp_av_init(); /* FFmpeg/x264 log lines captured, not printed */
    test_generated();
    test_vfr();
    test_rotation();
    test_fixtures();
    test_broken();
    mp_tt_cleanup();
    return mp_test_result("test_video");
}
