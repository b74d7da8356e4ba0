/* test_smolvlm2_ref.c — SmolVLM2 question answering (runtime/vqa.h over runtime/vlm.h + vlm_video.h) against
 * independent PyTorch references written from transformers' SmolVLM code, on tiny random-weight SmolVLM2
 * models this test writes (tests/caption/smolvlm_fixture.h: the real SmolVLM configs and tokenizer with
 * model_type smolvlm and a video_sampling block, scaled down) as an HF folder and as a llama.cpp text GGUF +
 * idefics3 mmproj GGUF holding the same weights.
 *
 * Video mode (tests/ref/smolvlm2_ref.py, fed every frame of a real H.264 clip as decoded here; it picks the
 * frames itself with SmolVLMVideoProcessor.sample_frames and times them frame index / fps): the frames
 * used, the per-frame pixel values (resize to video_size, square to max_image_size, normalize), the
 * expanded prompt text ("You are provided the following series of four frames from a 0:00:04 ..." with
 * "Frame from MM:SS:" per frame) and its token ids, the decoder logits at every prompt position, and the
 * greedy continuation through the continuous-batching engine; at the model's own video_sampling (1 fps,
 * 64 frames) and with a frame cap (3). Image mode (tests/ref/smolvlm_ref.py: Idefics3/SmolVLM processor,
 * tiles + global image): ids, logits, greedy. A second question on the same clip reuses the features.
 * num2words agrees with the reference's for a range of counts. A SmolVLM-500M-shaped text model runs the
 * video case too.
 *
 * `test_smolvlm2_ref --write-fixture DIR` writes the tiny model for test_smolvlm2_cli.sh. */
#include "test.h"

#include "../caption/smolvlm_fixture.h"

#include "llm/kvcache.h"
#include "llm/llama.h"
#include "preprocess/video.h"
#include "runtime/engine.h"
#include "runtime/vqa.h"

#include <unistd.h>

#define N_GREEDY 5
#define CLIP "video/testsrc2_320x240_24fps_4s_h264_aac.mp4"
static const char *const QUESTION = "What happens in this video?";
static const char *const IMG_Q = "Can you describe this image?";

static int write_model(const fx_dims *d, const char *root, unsigned long long seed, mp_error *err) {
    char hf[1100];
    if (fx_write_all(d, root, seed, 0, err) != 0) return -1;
    snprintf(hf, sizeof hf, "%s/hf", root);
    if (fx_make_smolvlm2(d, hf, 64) != 0) return mp_errf(err, "%s: rewriting the configs failed", hf);
    return 0;
}

/* every frame of the clip: "n w h total_frames fps\n" + RGB bytes */
static int dump_frames(const char *clip, const char *out, mp_error *err) {
    mp_video_opts o = mp_video_default_opts();
    o.fps = 0; /* every frame */
    mp_video v;
    if (mp_video_load(clip, &o, &v, err) < 0) return -1;
    FILE *f = fopen(out, "wb");
    int rc = f ? 0 : mp_errf(err, "%s: cannot write", out);
    if (f) {
        fprintf(f, "%d %d %d %lld %.17g\n", v.n_frames, v.width, v.height, (long long)v.total_frames, v.native_fps);
        for (int i = 0; i < v.n_frames; i++) fwrite(v.frames[i].img.data, 1, (size_t)v.width * v.height * 3, f);
        fclose(f);
    }
    mp_video_free(&v);
    return rc;
}

typedef struct gen {
    int32_t toks[64];
    int n, ok;
} gen;

static void on_done(void *ctx, const mp_gen_result *r) {
    gen *g = (gen *)ctx + (intptr_t)r->user;
    g->ok = r->ok;
    g->n = r->n_tokens < 64 ? r->n_tokens : 64;
    memcpy(g->toks, r->tokens, sizeof(int32_t) * (size_t)g->n);
    if (!r->ok) fprintf(stderr, "request: %s\n", r->error);
}

/* logits at every prompt position and the greedy continuation (engine) vs PREFIX.logits / PREFIX.greedy */
static void check_decoder(mp_vqa *v, mp_exec *ex, const mp_vqa_request *r, const char *prefix, const char *what,
                          double tol) {
    mp_error err = {{0}};
    char p[1200];
    size_t n = 0;
    const int V = v->llm.cfg.n_vocab;
    mp_kvcache kv;
    mp_llama_state ls;
    memset(&ls, 0, sizeof ls);
    CHECKF(mp_llama_kvcache_init(&v->llm, &kv, ex, 1, r->n + 8, 0, 16, &err) == 0, "%s", err.msg);
    int s = mp_kvcache_seq_new(&kv, &err);
    float *lg = malloc(sizeof(float) * (size_t)V * r->n);
    mp_llama_seq q = {s, r->n, r->tokens, r->embd, NULL, 2, lg};
    CHECKF(mp_llama_forward(&v->llm, &ls, &kv, ex, &q, 1, &err) == 0, "%s", err.msg);
    snprintf(p, sizeof p, "%s.logits", prefix);
    float *ref = mp_test_read_file(p, &n);
    if (ref && n == sizeof(float) * (size_t)V * r->n) {
        double e = mp_test_rel_err(lg, ref, (size_t)V * r->n);
        CHECKF(e < tol, "%s: decoder logits differ: %.3g", what, e);
    } else {
        CHECKF(0, "%s: reference logits (%zu bytes for %d items)", what, n, r->n);
    }
    free(ref), free(lg);
    mp_llama_state_free(&ls, ex);
    mp_kvcache_free(&kv, ex);

    gen g[1];
    memset(g, 0, sizeof g);
    mp_engine *e = NULL;
    mp_engine_params ep = mp_engine_default_params();
    ep.max_seqs = 1;
    ep.max_ctx = r->n + N_GREEDY + 8;
    ep.kv_tokens = ep.max_ctx;
    CHECKF(mp_engine_create(&e, &v->llm, v->tok, ex, &ep, on_done, g, &err) == 0, "%s", err.msg);
    if (!e) return;
    mp_gen_request rq = r->req;
    rq.sampling = v->sampling;
    rq.sampling.temperature = 0;
    rq.max_new = N_GREEDY;
    rq.ignore_eos = 1;
    rq.user = (void *)(intptr_t)0;
    CHECKF(mp_engine_submit(e, &rq, &err) == 0, "%s", err.msg);
    while (mp_engine_pending(e) > 0)
        if (mp_engine_step(e, &err) < 0) {
            CHECKF(0, "%s", err.msg);
            break;
        }
    mp_engine_free(e);
    snprintf(p, sizeof p, "%s.greedy", prefix);
    FILE *f = fopen(p, "r");
    CHECKF(g[0].ok && g[0].n == N_GREEDY, "%s: %d tokens generated", what, g[0].n);
    for (int i = 0; i < N_GREEDY; i++) {
        int want = -1;
        if (!f || fscanf(f, "%d", &want) != 1) want = -1;
        CHECKF(i < g[0].n && g[0].toks[i] == want, "%s: greedy token %d: %d vs %d", what, i, i < g[0].n ? g[0].toks[i] : -1,
               want);
    }
    if (f) fclose(f);
}

static int run_video_ref(const char *hf, const char *out, const char *frames, int max_frames) {
    char cmd[4096], extra[64] = "";
    if (max_frames > 0) snprintf(extra, sizeof extra, " --max-frames %d", max_frames);
    snprintf(cmd, sizeof cmd, "%s %s/tests/ref/smolvlm2_ref.py %s %s %d '%s' %s%s", MP_PYTHON, MP_SOURCE_DIR, hf, out,
             N_GREEDY, QUESTION, frames, extra);
    return system(cmd);
}

/* one video case: frames, pixels, prompt, ids, logits, greedy vs the reference files PREFIX.* */
static void check_video(mp_vqa *v, mp_exec *ex, int max_frames, const char *prefix, const char *what) {
    mp_error err = {{0}};
    char p[1200];
    size_t n = 0;
    mp_vqa_opts o = mp_vqa_model_default_opts(v);
    CHECK(o.fps == 1.0 && o.max_frames == 64);
    if (max_frames > 0) o.max_frames = max_frames;
    mp_vqa_request r;
    int rc = mp_vqa_request_build(v, ex, mp_fixture(CLIP), &o, QUESTION, &r, &err);
    CHECKF(rc == 0, "%s: %s", what, err.msg);
    if (rc) return;
    const mp_vqa_media *m = r.media;
    CHECK(m->is_video && m->n_tiles == m->n_frames);
    CHECK(m->total_frames == 96 && fabs(m->prompt_duration - 4.0) < 1e-9); /* 96 frames / 24 fps */
    /* the frames used */
    snprintf(p, sizeof p, "%s.indices", prefix);
    FILE *f = fopen(p, "r");
    int nref = 0, idx[128];
    while (f && nref < 128 && fscanf(f, "%d", &idx[nref]) == 1) nref++;
    if (f) fclose(f);
    CHECKF(nref == m->n_frames, "%s: %d frames, the reference picks %d", what, m->n_frames, nref);
    for (int i = 0; i < nref && i < m->n_frames; i++)
        CHECKF(lround(m->pts[i] * m->native_fps) == idx[i], "%s: frame %d at %.4f s, reference index %d", what, i, m->pts[i],
               idx[i]);
    /* pixel values per frame */
    const int tile = v->smol->vis.proc.tile;
    const size_t per = (size_t)3 * tile * tile;
    snprintf(p, sizeof p, "%s.pixels", prefix);
    float *ref = mp_test_read_file(p, &n);
    if (ref && m->patches && n == per * m->n_frames * sizeof(float)) {
        long wi;
        double d = mp_test_max_abs_diff(m->patches, ref, (long)(per * m->n_frames), &wi);
        CHECKF(d <= 1e-5, "%s: pixel values differ by %.3g at %ld (frame %ld)", what, d, wi, wi / (long)per);
    } else {
        CHECKF(0, "%s: reference pixels (%zu bytes)", what, n);
    }
    free(ref);
    /* prompt text and ids */
    char *text = NULL;
    CHECKF(mp_smolvlm2_video_prompt(v->smol, QUESTION, m->n_frames, m->pts, m->prompt_duration, &text, &err) == 0, "%s", err.msg);
    snprintf(p, sizeof p, "%s.prompt", prefix);
    char *rtext = mp_test_read_file(p, &n);
    CHECKF(text && rtext && !strcmp(text, rtext), "%s: expanded prompt differs:\n--- ours\n%.600s\n--- reference\n%.600s", what,
           text ? text : "(null)", rtext ? rtext : "(null)");
    free(text), free(rtext);
    snprintf(p, sizeof p, "%s.ids", prefix);
    int32_t *rids = mp_test_read_file(p, &n);
    CHECKF(rids && (int)(n / 4) == r.n && !memcmp(r.ids, rids, n), "%s: prompt ids differ (%d vs %d)", what, r.n, (int)(n / 4));
    free(rids);
    CHECK_EQ_INT(r.n_vision, m->n_frames * v->smol->vis.image_seq_len);
    check_decoder(v, ex, &r, prefix, what, 2e-5);
    mp_vqa_request_free(&r);
}

static void check_image(mp_vqa *v, mp_exec *ex, const char *prefix, const char *what) {
    mp_error err = {{0}};
    char p[1200];
    size_t n = 0;
    mp_vqa_opts o = mp_vqa_model_default_opts(v);
    mp_vqa_request r;
    int rc = mp_vqa_request_build(v, ex, mp_fixture("images/chelsea.jpg"), &o, IMG_Q, &r, &err);
    CHECKF(rc == 0, "%s: %s", what, err.msg);
    if (rc) return;
    const mp_vqa_media *m = r.media;
    CHECK(!m->is_video && m->n_frames == 1 && m->n_tiles == m->plan.n_tiles && m->n_tiles > 1);
    snprintf(p, sizeof p, "%s.pixels", prefix);
    float *ref = mp_test_read_file(p, &n);
    const size_t per = (size_t)3 * m->plan.tile_w * m->plan.tile_h;
    if (ref && m->patches && n == per * m->n_tiles * sizeof(float)) {
        long wi;
        double d = mp_test_max_abs_diff(m->patches, ref, (long)(per * m->n_tiles), &wi);
        CHECKF(d <= 1e-6, "%s: pixel values differ by %.3g", what, d);
    } else {
        CHECKF(0, "%s: reference pixels", what);
    }
    free(ref);
    snprintf(p, sizeof p, "%s.ids", prefix);
    int32_t *rids = mp_test_read_file(p, &n);
    CHECKF(rids && (int)(n / 4) == r.n && !memcmp(r.ids, rids, n), "%s: prompt ids differ (%d vs %d)", what, r.n, (int)(n / 4));
    free(rids);
    check_decoder(v, ex, &r, prefix, what, 2e-5);
    mp_vqa_request_free(&r);
}

int main(int argc, char **argv) {
    mp_error err = {{0}};
    if (argc == 3 && !strcmp(argv[1], "--write-fixture")) { /* for test_smolvlm2_cli.sh */
        if (write_model(&fx_tiny, argv[2], 0x5a01f2ull, &err) != 0) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        return 0;
    }
    if (access(MP_PYTHON, X_OK) != 0 || access(mp_fixture(FX_REAL "/config.json"), R_OK) != 0 ||
        access(mp_fixture(CLIP), R_OK) != 0) {
        fprintf(stderr, "skip: python or fixtures absent\n");
        return MP_TEST_SKIP;
    }
    char root[512], dir[700], hf[800], gg[800], mm[800], frames[800], out[900], cmd[4096];
    snprintf(root, sizeof root, "%s/test_smolvlm2_ref", MP_BINARY_DIR);
    mkdir(root, 0755);
    mp_threadpool *tp = mp_threadpool_create(2);
    mp_exec ex;
    CHECK(mp_exec_init(&ex, MP_BACKEND_CPU, tp, (size_t)32 << 20, &err) == 0);

    /* ---- num2words (the frame count in the prompt) */
    {
        static const long long nums[] = {0, 1, 4, 13, 20, 21, 64, 99, 100, 101, 110, 999, 1000, 1001, 1100, 1234, 20000, 1000001};
        const int nn = (int)(sizeof nums / sizeof nums[0]);
        int w = snprintf(cmd, sizeof cmd, "%s %s/tests/ref/smolvlm2_ref.py num2words", MP_PYTHON, MP_SOURCE_DIR);
        for (int i = 0; i < nn; i++) w += snprintf(cmd + w, sizeof cmd - (size_t)w, " %lld", nums[i]);
        FILE *pp = popen(cmd, "r");
        char line[256], mine[256];
        for (int i = 0; i < nn; i++) {
            if (!pp || !fgets(line, sizeof line, pp)) line[0] = 0;
            line[strcspn(line, "\n")] = 0;
            CHECK(mp_num2words_en(nums[i], mine, sizeof mine) == 0);
            CHECKF(!strcmp(mine, line), "num2words(%lld): '%s' vs '%s'", nums[i], mine, line);
        }
        if (pp) pclose(pp);
    }

    /* ---- the clip's frames, as our decoder gives them */
    snprintf(frames, sizeof frames, "%s/clip.frames", root);
    CHECKF(dump_frames(mp_fixture(CLIP), frames, &err) == 0, "%s", err.msg);

    /* ---- 256M-shaped model: HF folder and GGUF text + mmproj */
    snprintf(dir, sizeof dir, "%s/m256", root);
    CHECKF(write_model(&fx_tiny, dir, 0x5a01f2ull, &err) == 0, "%s", err.msg);
    snprintf(hf, sizeof hf, "%s/hf", dir);
    snprintf(out, sizeof out, "%s/v64", dir);
    int rc64 = run_video_ref(hf, out, frames, 0);
    CHECKF(rc64 == 0, "smolvlm2_ref.py failed (%d)", rc64);
    snprintf(out, sizeof out, "%s/v3", dir);
    int rc3 = run_video_ref(hf, out, frames, 3);
    CHECKF(rc3 == 0, "smolvlm2_ref.py --max-frames 3 failed (%d)", rc3);
    snprintf(cmd, sizeof cmd, "%s %s/tests/ref/smolvlm_ref.py %s %s/img %d '%s' %s", MP_PYTHON, MP_SOURCE_DIR, hf, dir,
             N_GREEDY, IMG_Q, mp_fixture("images/chelsea.jpg"));
    int rci = system(cmd);
    CHECKF(rci == 0, "smolvlm_ref.py failed (%d)", rci);
    snprintf(gg, sizeof gg, "%s/text.gguf", dir);
    snprintf(mm, sizeof mm, "%s/mmproj.gguf", dir);
    const char *models[2][2] = {{hf, NULL}, {gg, mm}};
    const char *names[2] = {"hf", "gguf"};
    for (int l = 0; l < 2; l++) {
        mp_vqa v;
        int lr = mp_vqa_load(&v, models[l][0], models[l][1], &ex, &err);
        CHECKF(lr == 0, "%s: %s", names[l], err.msg);
        if (lr) continue;
        CHECK(v.kind == MP_VQA_SMOLVLM && v.smol && v.smol->vis.image_seq_len == 4);
        CHECK(v.smol_video.fps == 1.0 && v.smol_video.max_frames == 64 && v.smol_video.longest_edge == 128);
        v.keep_patches = 1;
        char prefix[1000], what[200];
        if (rc64 == 0) {
            snprintf(prefix, sizeof prefix, "%s/v64", dir);
            snprintf(what, sizeof what, "%s video (1 fps, 64 frames)", names[l]);
            check_video(&v, &ex, 0, prefix, what);
        }
        if (rc3 == 0) {
            snprintf(prefix, sizeof prefix, "%s/v3", dir);
            snprintf(what, sizeof what, "%s video (3 frames)", names[l]);
            check_video(&v, &ex, 3, prefix, what);
        }
        if (rci == 0) {
            snprintf(prefix, sizeof prefix, "%s/img.0", dir);
            snprintf(what, sizeof what, "%s image", names[l]);
            check_image(&v, &ex, prefix, what);
        }
        /* a second question on the clip: the features come from the cache */
        int enc = v.stats.n_encoded, hits = v.stats.n_cache_hits;
        mp_vqa_opts o = mp_vqa_model_default_opts(&v);
        mp_vqa_request r;
        CHECKF(mp_vqa_request_build(&v, &ex, mp_fixture(CLIP), &o, "Which colours?", &r, &err) == 0, "%s", err.msg);
        CHECK(r.cached == 1 && v.stats.n_encoded == enc && v.stats.n_cache_hits == hits + 1);
        mp_vqa_request_free(&r);
        mp_vqa_free(&v, &ex);
    }

    /* ---- SmolVLM-500M-shaped text model, HF layout, video with 2 frames */
    snprintf(dir, sizeof dir, "%s/m500", root);
    CHECKF(write_model(&fx_tiny500, dir, 0x500500ull, &err) == 0, "%s", err.msg);
    snprintf(hf, sizeof hf, "%s/hf", dir);
    snprintf(out, sizeof out, "%s/v2", dir);
    int rc2 = run_video_ref(hf, out, frames, 2);
    CHECKF(rc2 == 0, "smolvlm2_ref.py (500M shape) failed (%d)", rc2);
    if (rc2 == 0) {
        mp_vqa v;
        int lr = mp_vqa_load(&v, hf, NULL, &ex, &err);
        CHECKF(lr == 0, "500m: %s", err.msg);
        if (lr == 0) {
            v.keep_patches = 1;
            CHECK(v.llm.cfg.n_embd == 60 && v.llm.cfg.n_head == 3 && v.llm.cfg.n_kv_head == 1);
            check_video(&v, &ex, 2, out, "500m video (2 frames)");
            mp_vqa_free(&v, &ex);
        }
    }
    mp_exec_free(&ex);
    mp_threadpool_free(tp);
    return mp_test_result("test_smolvlm2_ref");
}
