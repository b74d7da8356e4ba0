/* vlm_video.c — SmolVLM2 video mode: frame preprocessing and the video prompt (see vlm_video.h). */
#include "runtime/vlm_video.h"
#include "runtime/strbuf.h"

#include "models/hfjson.h"
#include "models/mmap.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int mp_smolvlm2_video_params_load(const mp_vlm *m, mp_smolvlm2_video_params *p, mp_error *err) {
    p->fps = 1.0;
    p->max_frames = 64;
    p->longest_edge = m->vis.proc.tile;
    if (!mp_is_dir(m->path)) return 0;
    char path[4200];
    snprintf(path, sizeof path, "%s/preprocessor_config.json", m->path);
    mp_json j;
    if (mp_json_load_optional(&j, path, err) < 0) return -1;
    int64_t mf = p->max_frames, le = p->longest_edge;
    int rc = 0;
    if (mp_json_f64_or(&j, "video_sampling.fps", p->fps, &p->fps, err) < 0 ||
        mp_json_int_or(&j, "video_sampling.max_frames", mf, &mf, err) < 0 ||
        mp_json_int_or(&j, "video_sampling.video_size.longest_edge", le, &le, err) < 0)
        rc = -1;
    else if (!(p->fps > 0 && p->fps <= 1000) || mf <= 0 || mf > 100000 || le <= 0 || le > 4096)
        rc = mp_errf(err, "%s: video_sampling values out of range (fps %g, max_frames %lld, video_size %lld)", path, p->fps,
                     (long long)mf, (long long)le);
    p->max_frames = (int)mf, p->longest_edge = (int)le;
    mp_json_free(&j);
    return rc;
}

/* transformers' video get_resize_output_image_size: the longest edge to L (at most 4096), the other side
 * int(side * ratio) rounded up to even */
static void video_size(int w, int h, int L, int *ow, int *oh) {
    if (L > 4096) L = 4096;
    const double aspect = (double)w / (double)h;
    int nw, nh;
    if (w >= h) {
        nw = L;
        nh = (int)(nw / aspect);
        if (nh % 2) nh++;
    } else {
        nh = L;
        nw = (int)(nh * aspect);
        if (nw % 2) nw++;
    }
    *ow = nw > 1 ? nw : 1;
    *oh = nh > 1 ? nh : 1;
}

int mp_smolvlm2_frame_preprocess(const mp_vlm *m, const mp_image *img, int longest_edge, float *dst, mp_error *err) {
    mp_idefics3_params p = m->vis.proc;
    if (!img || img->w <= 0 || img->h <= 0) return mp_errf(err, "video frame: empty image");
    if (longest_edge <= 0) longest_edge = p.tile;
    int w, h;
    video_size(img->w, img->h, longest_edge, &w, &h);
    mp_image a = {0}, b = {0};
    int rc = 0;
    const mp_image *cur = img;
    if (p.do_resize) {
        rc = mp_image_resize(img, w, h, MP_RESAMPLE_BICUBIC, &a, err);
        cur = &a;
    }
    if (rc == 0) rc = mp_image_resize(cur, p.tile, p.tile, MP_RESAMPLE_BICUBIC, &b, err);
    if (rc == 0) {
        p.do_resize = 0;
        p.do_split = 0;
        mp_idefics3_plan plan;
        rc = mp_idefics3_preprocess(&b, &p, dst, &plan, err);
    }
    mp_image_free(&a);
    mp_image_free(&b);
    return rc;
}

/* ---------------------------------------------------------------- num2words (English cardinals) */


/* num2words' lang_EN merge rules: "twenty-one", "one hundred and one", "one thousand and one",
 * "one thousand, one hundred", "two million, three thousand" */
static void words(long long n, mp_strbuf *s) {
    static const char *const small[] = {"zero",    "one",     "two",       "three",    "four",
                                        "five",    "six",     "seven",     "eight",    "nine",
                                        "ten",     "eleven",  "twelve",    "thirteen", "fourteen",
                                        "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"};
    static const char *const tens[] = {"", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"};
    static const struct { long long v; const char *name; } big[] = {
        {1000000000000000000LL, "quintillion"}, {1000000000000000LL, "quadrillion"}, {1000000000000LL, "trillion"},
        {1000000000LL, "billion"}, {1000000LL, "million"}, {1000LL, "thousand"}, {100LL, "hundred"}};
    if (n < 20) {
        mp_strbuf_puts(s, small[n]);
        return;
    }
    if (n < 100) {
        mp_strbuf_puts(s, tens[n / 10]);
        if (n % 10) {
            mp_strbuf_puts(s, "-");
            mp_strbuf_puts(s, small[n % 10]);
        }
        return;
    }
    for (size_t i = 0; i < sizeof big / sizeof big[0]; i++) {
        if (n < big[i].v) continue;
        long long q = n / big[i].v, r = n % big[i].v;
        words(q, s);
        mp_strbuf_puts(s, " ");
        mp_strbuf_puts(s, big[i].name);
        if (r) {
            mp_strbuf_puts(s, r < 100 ? " and " : ", ");
            words(r, s);
        }
        return;
    }
}

int mp_num2words_en(long long n, char *buf, size_t cap) {
    mp_strbuf s = {0};
    if (n < 0) {
        mp_strbuf_puts(&s, "minus ");
        n = n == INT64_MIN ? INT64_MAX : -n;
    }
    words(n, &s);
    int rc = s.oom || !s.p || s.n + 1 > cap ? -1 : 0;
    if (rc == 0) memcpy(buf, s.p, s.n + 1);
    else if (cap) buf[0] = 0;
    free(s.p);
    return rc;
}

/* ---------------------------------------------------------------- the prompt */

int mp_smolvlm2_video_text(const mp_vlm *m, int n_frames, const double *secs, double duration, char **out,
                           mp_error *err) {
    *out = NULL;
    if (n_frames <= 0) return mp_errf(err, "video prompt: no frames");
    char num[256], line[512];
    if (mp_num2words_en(n_frames, num, sizeof num) < 0) return mp_errf(err, "video prompt: out of memory");
    /* str(timedelta(seconds=int(duration))): "H:MM:SS", "1 day, H:MM:SS" past a day */
    long long d = duration > 0 && duration < 9.2e18 ? (long long)duration : 0;
    char dur[96];
    long long days = d / 86400, rem = d % 86400;
    if (days > 0)
        snprintf(dur, sizeof dur, "%lld day%s, %lld:%02lld:%02lld", days, days == 1 ? "" : "s", rem / 3600, rem / 60 % 60,
                 rem % 60);
    else
        snprintf(dur, sizeof dur, "%lld:%02lld:%02lld", rem / 3600, rem / 60 % 60, rem % 60);
    mp_strbuf s = {0};
    snprintf(line, sizeof line, "You are provided the following series of %s frames from a %s [H:MM:SS] video.\n", num, dur);
    mp_strbuf_puts(&s, line);
    for (int i = 0; i < n_frames; i++) {
        double t = secs[i] > 0 && secs[i] < 9.2e18 ? secs[i] : 0;
        /* (int(t // 60), int(t % 60)); a pts a hair below a whole second (float ticks) counts as it */
        long long whole = (long long)floor(t + 1e-9);
        snprintf(line, sizeof line, "\nFrame from %02lld:%02lld:", whole / 60, whole % 60);
        mp_strbuf_puts(&s, line);
        mp_strbuf_puts(&s, "<fake_token_around_image><global-img>");
        for (int k = 0; k < m->vis.image_seq_len; k++) mp_strbuf_puts(&s, "<image>");
        mp_strbuf_puts(&s, "<fake_token_around_image>");
    }
    mp_strbuf_puts(&s, "\n\n");
    if (s.oom) {
        free(s.p);
        return mp_errf(err, "video prompt: out of memory");
    }
    *out = s.p;
    return 0;
}

int mp_smolvlm2_video_prompt(const mp_vlm *m, const char *question, int n_frames, const double *secs, double duration,
                             char **out, mp_error *err) {
    *out = NULL;
    char *video = NULL;
    if (mp_smolvlm2_video_text(m, n_frames, secs, duration, &video, err) < 0) return -1;
    /* the processor's DEFAULT_CHAT_TEMPLATE for videos, rendered for one user turn [video, text]: the
     * first part is not an image, so "User: " */
    mp_strbuf s = {0};
    mp_strbuf_puts(&s, "<|im_start|>User: ");
    mp_strbuf_puts(&s, video);
    mp_strbuf_puts(&s, question ? question : "");
    mp_strbuf_puts(&s, "<end_of_utterance>\nAssistant:");
    free(video);
    if (s.oom) {
        free(s.p);
        return mp_errf(err, "video prompt: out of memory");
    }
    *out = s.p;
    return 0;
}

/* ---------------------------------------------------------------- a video request */

double mp_smolvlm2_video_duration(const mp_video *v) {
    if (v->total_frames > 0 && v->native_fps > 0) return (double)v->total_frames / v->native_fps;
    return v->duration;
}

mp_video_opts mp_smolvlm2_video_opts(const mp_smolvlm2_video_params *vp, double fps, int max_frames) {
    mp_video_opts vo = mp_video_default_opts();
    vo.policy = MP_VIDEO_SAMPLE_SMOLVLM2;
    vo.fps = fps > 0 ? fps : (vp && vp->fps > 0 ? vp->fps : 1.0);
    vo.max_frames = max_frames > 0 ? max_frames : (vp && vp->max_frames > 0 ? vp->max_frames : 64);
    vo.skip_secs = 1.0; /* SmolVLMVideoProcessor.sample_frames' skip_secs */
    return vo;
}

int mp_smolvlm2_frames_encode(const mp_vlm *m, mp_exec *ex, mp_idefics3_state *vs, const mp_image *const *frames, int n,
                              int longest_edge, float *rows, float *pixels, mp_error *err) {
    if (n <= 0) return mp_errf(err, "video: no frames");
    const size_t per = (size_t)3 * m->vis.proc.tile * m->vis.proc.tile;
    float *pix = pixels ? pixels : malloc(sizeof(float) * per * (size_t)n);
    if (!pix) return mp_errf(err, "video: out of memory for %d frames", n);
    int rc = 0;
    for (int i = 0; rc == 0 && i < n; i++) {
        mp_error e;
        if (mp_smolvlm2_frame_preprocess(m, frames[i], longest_edge, pix + per * (size_t)i, &e) < 0)
            rc = mp_errf(err, "frame %d: %s", i, e.msg);
    }
    mp_idefics3_state own = {0};
    if (rc == 0) rc = mp_idefics3_encode(&m->vis, vs ? vs : &own, ex, pix, n, rows, NULL, err);
    mp_idefics3_state_free(&own, ex);
    if (pix != pixels) free(pix);
    return rc;
}

int mp_smolvlm2_video_prompt_assemble(const mp_vlm *m, const char *question, int n_frames, const double *secs,
                                      double duration, const float *rows, mp_vlm_prompt *out, mp_error *err) {
    memset(out, 0, sizeof *out);
    int32_t *ids = NULL;
    int n = 0, n_img = 0;
    const int n_rows = n_frames * m->vis.image_seq_len;
    if (mp_smolvlm2_video_prompt(m, question, n_frames, secs, duration, &out->text, err) < 0) return -1;
    int rc = mp_vlm_tokenize(m, out->text, &ids, &n, &n_img, err);
    if (rc == 0 && n_img != n_rows)
        rc = mp_errf(err, "prompt: %d <image> tokens for %d frame rows (is \"<image>\" in the question?)", n_img, n_rows);
    if (rc == 0) rc = mp_vlm_items(m, ids, n, rows, n_rows, &out->tokens, &out->embd, err);
    free(ids);
    if (rc < 0) {
        mp_vlm_prompt_free(out);
        return -1;
    }
    out->n = n;
    out->n_images = n_frames, out->n_tiles = n_frames, out->n_image_rows = n_rows;
    return 0;
}
