/* test_vqa.c — Qwen2-VL / Qwen2.5-VL question answering end to end (runtime/vqa.h) vs tests/ref/qwen2vl_ref.py
 * (PyTorch, float64, written from transformers' Qwen2VLForConditionalGeneration / Qwen2_5_VL code:
 * get_rope_index, masked_scatter of the vision rows, the Qwen2 decoder with M-RoPE, greedy generate()
 * continuing at cache_position + rope_deltas) on tiny random-weight models made from the real configs, for
 * a real image (one frame, <|image_pad|>) and a real multi-frame video clip (<|video_pad|>; for Qwen2.5-VL
 * at 3 fps, so second_per_grid is 2/3 s and the temporal positions are fractional before truncation):
 * merger rows, M-RoPE position ids and the first generated position, the last rows of decoder logits,
 * greedy tokens through the continuous-batching engine (4-stream positions) next to a second question
 * that reuses the cached features. */
#include "vqa_test.h"

#include "runtime/engine.h"
#include "runtime/vqa.h"

#define N_GREEDY 6
#define K_LOGITS 3

typedef struct gen_out {
    int32_t toks[2][64];
    float top[64][5];
    int n[2], ok[2];
} gen_out;

static void on_done(void *ctx, const mp_gen_result *r) {
    gen_out *g = ctx;
    int q = (int)(intptr_t)r->user;
    g->ok[q] = r->ok;
    g->n[q] = r->n_tokens < 64 ? r->n_tokens : 64;
    memcpy(g->toks[q], r->tokens, sizeof(int32_t) * (size_t)g->n[q]);
    if (q == 0 && r->top_k == 5) memcpy(g->top, r->top_logprobs, sizeof(float) * 5 * (size_t)g->n[q]);
    if (!r->ok) fprintf(stderr, "request %d: %s\n", q, r->error);
}

/* the last K_LOGITS rows of logits for the request's prompt, fed in two calls (all but the last K items,
 * then K with logits) */
static int last_logits(const mp_vqa *v, mp_exec *ex, const mp_vqa_request *r, float *lg) {
    mp_error err;
    mp_kvcache kv;
    mp_llama_state st;
    memset(&st, 0, sizeof st);
    if (mp_llama_kvcache_init(&v->llm, &kv, ex, 1, r->n + 16, 0, 0, &err) < 0) return -1;
    int seq = mp_kvcache_seq_new(&kv, &err), rc = 0;
    const int a = r->n - K_LOGITS;
    const size_t O = (size_t)v->llm.cfg.n_embd;
    mp_llama_seq s1 = {seq, a, r->tokens, r->embd, r->pos4, 0, NULL};
    mp_llama_seq s2 = {seq, K_LOGITS, r->tokens + a, r->embd + (size_t)a * O, r->pos4 + (size_t)a * 4, 2, lg};
    if (mp_llama_forward(&v->llm, &st, &kv, ex, &s1, 1, &err) < 0 || mp_llama_forward(&v->llm, &st, &kv, ex, &s2, 1, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        rc = -1;
    }
    mp_llama_state_free(&st, ex);
    mp_kvcache_free(&kv, ex);
    return rc;
}

static void run_case(mp_vqa *v, mp_exec *ex, const char *mdir, const char *io, const char *media, double fps,
                     int expect_video, int expect_frames) {
    fprintf(stderr, "-- %s (fps %g)\n", media, fps);
    mkdir(io, 0755);
    mp_error err;
    mp_vqa_opts o = mp_vqa_default_opts();
    o.fps = fps;
    mp_vqa_request r, r2;
    const int enc0 = v->stats.n_encoded;
    if (mp_vqa_request_build(v, ex, media, &o, "What is happening here?", &r, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        CHECK(0);
        return;
    }
    const mp_vqa_media *m = r.media;
    CHECK_EQ_INT(r.cached, 0);
    CHECK_EQ_INT(v->stats.n_encoded, enc0 + 1);
    CHECK_EQ_INT(m->is_video, expect_video);
    CHECK_EQ_INT(m->n_frames, expect_frames);
    fprintf(stderr, "grid %dx%dx%d, %lld vision tokens, %d prompt items, second_per_grid %.6f\n", m->grid.t, m->grid.h,
            m->grid.w, (long long)m->n_rows, r.n, m->second_per_grid);
    if (expect_video) { /* qwen-vl-utils: round(linspace(0, N-1, n)) of the 48 frames at 24 fps */
        for (int i = 0; i < m->n_frames; i++) {
            double idx = nearbyint(47.0 * i / (m->n_frames - 1));
            CHECK_NEAR(m->pts[i], idx / 24.0, 1e-3);
        }
        CHECK_EQ_INT(m->grid.t, (expect_frames + 1) / 2);
        CHECK_NEAR(m->second_per_grid, 2.0 / fps, 1e-9);
    } else {
        CHECK_EQ_INT(m->grid.t, 1);
    }
    CHECK_EQ_INT(r.n_vision, m->n_rows);
    /* the pad block sits between <|vision_start|> and <|vision_end|> */
    int first = -1;
    for (int i = 0; i < r.n && first < 0; i++)
        if (r.tokens[i] < 0) first = i;
    CHECK(first > 0 && r.ids[first - 1] == v->id_vstart);
    CHECK(first >= 0 && first + r.n_vision < r.n && r.ids[first + r.n_vision] == v->id_vend);

    /* the reference */
    const int64_t np = (int64_t)m->grid.t * m->grid.h * m->grid.w, pd = 3 * 2 * 14 * 14;
    CHECK(m->patches != NULL);
    if (!m->patches) goto out;
    CHECK(vt_write(io, "pixels.f32", m->patches, sizeof(float) * (size_t)(np * pd)) == 0);
    {
        size_t cap = (size_t)r.n * 12 + 512;
        char *js = malloc(cap);
        int k = snprintf(js, cap, "{\"items\": [{\"kind\": \"%s\", \"grid\": [%d, %d, %d], \"second_per_grid\": %.17g}], "
                                  "\"n_greedy\": %d, \"logit_rows\": %d, \"tokens\": [",
                         expect_video ? "video" : "image", m->grid.t, m->grid.h, m->grid.w, m->second_per_grid, N_GREEDY,
                         K_LOGITS);
        for (int i = 0; i < r.n; i++) k += snprintf(js + k, cap - (size_t)k, "%s%d", i ? ", " : "", r.ids[i]);
        k += snprintf(js + k, cap - (size_t)k, "]}");
        CHECK(vt_write(io, "in.json", js, (size_t)k) == 0);
        free(js);
    }
    char args[2400];
    snprintf(args, sizeof args, "run %s %s", mdir, io);
    if (vt_ref(args) != 0) {
        CHECK(0);
        goto out;
    }
    const int64_t O = v->llm.cfg.n_embd, V = v->llm.cfg.n_vocab;
    vt_check_close(io, "merged.f32", m->rows, m->n_rows * O, 1e-4, "merger rows");
    long n;
    int32_t *rpos = vt_read(io, "pos.i32", 4, &n);
    CHECK_EQ_INT(n, 3 * r.n);
    if (rpos && n == 3 * r.n) {
        int bad = 0;
        for (int s = 0; s < 3; s++)
            for (int i = 0; i < r.n; i++)
                if (r.pos4[(int64_t)i * 4 + s] != rpos[(int64_t)s * r.n + i]) {
                    if (bad++ < 5)
                        fprintf(stderr, "position stream %d item %d: %d, reference %d\n", s, i, r.pos4[(int64_t)i * 4 + s],
                                rpos[(int64_t)s * r.n + i]);
                }
        CHECKF(bad == 0, "%d M-RoPE positions differ", bad);
    }
    free(rpos);
    {
        char p[1200];
        snprintf(p, sizeof p, "%s/delta.txt", io);
        size_t bytes;
        char *t = mp_test_read_file(p, &bytes);
        CHECK(t != NULL);
        if (t) {
            long delta = strtol(t, NULL, 10);
            fprintf(stderr, "rope delta %ld, next position %d\n", delta, r.req.next_pos);
            CHECK_EQ_INT(r.req.next_pos, r.n + delta);
            free(t);
        }
    }

    /* decoder logits: the prompt in two calls (all but the last K items, then K with logits) */
    {
        float *lg = malloc(sizeof(float) * (size_t)(K_LOGITS * V));
        CHECK(last_logits(v, ex, &r, lg) == 0);
        vt_check_close(io, "logits.f32", lg, K_LOGITS * V, 1e-4, "decoder logits (last rows)");
        free(lg);
    }

    /* greedy through the engine, batched with a second question on the cached features */
    if (mp_vqa_request_build(v, ex, media, &o, "Describe the colours.", &r2, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        CHECK(0);
        goto out;
    }
    CHECK_EQ_INT(r2.cached, 1);
    CHECK(r2.media == m);
    CHECK_EQ_INT(v->stats.n_encoded, enc0 + 1);
    {
        gen_out g;
        memset(&g, 0, sizeof g);
        mp_engine *e = NULL;
        mp_engine_params ep = mp_engine_default_params();
        ep.max_seqs = 2;
        ep.max_ctx = r.n + r2.n + 64;
        ep.step_tokens = 64; /* chunked prefill across the vision rows */
        CHECK(mp_engine_create(&e, &v->llm, v->tok, ex, &ep, on_done, &g, &err) == 0);
        mp_gen_request q[2] = {r.req, r2.req};
        for (int i = 0; i < 2; i++) {
            q[i].sampling = mp_sampler_default_params();
            q[i].sampling.temperature = 0;
            q[i].max_new = N_GREEDY;
            q[i].ignore_eos = 1;
            q[i].user = (void *)(intptr_t)i;
            q[i].top_logprobs = i == 0 ? 5 : 0;
            CHECK(mp_engine_submit(e, &q[i], &err) == 0);
        }
        while (mp_engine_pending(e) > 0)
            if (mp_engine_step(e, &err) < 0) {
                fprintf(stderr, "%s\n", err.msg);
                CHECK(0);
                break;
            }
        mp_engine_free(e);
        CHECK(g.ok[0] && g.ok[1]);
        CHECK_EQ_INT(g.n[0], N_GREEDY);
        char p[1200];
        snprintf(p, sizeof p, "%s/greedy.txt", io);
        size_t bytes;
        char *t = mp_test_read_file(p, &bytes);
        CHECK(t != NULL);
        if (t) {
            char *c = t;
            fprintf(stderr, "greedy: reference %s       ours     ", t);
            for (int i = 0; i < g.n[0]; i++) fprintf(stderr, " %d", g.toks[0][i]);
            fprintf(stderr, "\n");
            for (int i = 0; i < N_GREEDY; i++) {
                long id = strtol(c, &c, 10);
                CHECKF(i < g.n[0] && g.toks[0][i] == id, "greedy token %d: %d, reference %ld", i,
                       i < g.n[0] ? g.toks[0][i] : -1, id);
            }
            free(t);
        }
        /* every decode step's distribution (the generated tokens' M-RoPE positions) */
        float *ref = vt_read(io, "greedy_top5.f32", 4, &n);
        CHECK_EQ_INT(n, 5 * N_GREEDY);
        if (ref && n == 5 * N_GREEDY && g.n[0] == N_GREEDY) {
            double md = 0;
            for (int i = 0; i < 5 * N_GREEDY; i++) md = fmax(md, fabs((double)g.top[i / 5][i % 5] - ref[i]));
            fprintf(stderr, "top-5 logprobs of the %d steps: max |diff| %.2e\n", N_GREEDY, md);
            CHECK(md < 1e-3);
        }
        free(ref);
    }
    mp_vqa_request_free(&r2);
out:
    mp_vqa_request_free(&r);
}

/* The same model as llama.cpp files (text GGUF, arch qwen2vl, with the vocabulary and chat template; mmproj
 * GGUF for the vision tower): the same prompt items, positions and vision rows, and the same logits, bit for bit. */
static void gguf_case(mp_vqa *v, mp_exec *ex, const char *mdir, const char *tmp, const char *variant, const char *media,
                      double fps) {
    char tp[1200], gp[1200];
    snprintf(tp, sizeof tp, "%s/%s-text.gguf", tmp, variant);
    snprintf(gp, sizeof gp, "%s/%s-mmproj.gguf", tmp, variant);
    fprintf(stderr, "-- GGUF text + mmproj\n");
    if (vt_write_text_gguf(mdir, tp) != 0 || vt_write_mmproj(&v->vit, mdir, gp) != 0) {
        CHECK(0);
        return;
    }
    mp_error err;
    mp_vqa g;
    if (mp_vqa_load(&g, tp, gp, ex, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        CHECK(0);
        return;
    }
    CHECK(memcmp(g.llm.cfg.rope_sections, v->llm.cfg.rope_sections, sizeof g.llm.cfg.rope_sections) == 0);
    CHECK(g.chat_template != NULL);
    CHECK_EQ_INT(g.vit.cfg.variant, v->vit.cfg.variant);
    CHECK(memcmp(g.vit.proc.norm.mean, v->vit.proc.norm.mean, sizeof g.vit.proc.norm.mean) == 0);
    /* an mmproj has no pixel limits (llama.cpp keeps its own): the processor's defaults apply; use the tiny
     * folder's smaller ones so both see the same patches */
    g.vit.proc.min_pixels = v->vit.proc.min_pixels, g.vit.proc.max_pixels = v->vit.proc.max_pixels;
    mp_vqa_opts o = mp_vqa_default_opts();
    o.fps = fps;
    mp_vqa_request a, b;
    memset(&b, 0, sizeof b);
    if (mp_vqa_request_build(v, ex, media, &o, "What is happening here?", &a, &err) < 0 ||
        mp_vqa_request_build(&g, ex, media, &o, "What is happening here?", &b, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        CHECK(0);
    } else {
        const size_t O = (size_t)v->llm.cfg.n_embd, V = (size_t)v->llm.cfg.n_vocab;
        CHECK_EQ_INT(a.n, b.n);
        CHECK(a.n == b.n && memcmp(a.ids, b.ids, sizeof(int32_t) * (size_t)a.n) == 0);
        CHECK(a.n == b.n && memcmp(a.pos4, b.pos4, sizeof(int32_t) * 4 * (size_t)a.n) == 0);
        CHECK(a.n == b.n && memcmp(a.embd, b.embd, sizeof(float) * O * (size_t)a.n) == 0);
        CHECK_EQ_INT(a.req.next_pos, b.req.next_pos);
        float *la = malloc(sizeof(float) * K_LOGITS * V), *lb = malloc(sizeof(float) * K_LOGITS * V);
        CHECK(last_logits(v, ex, &a, la) == 0 && last_logits(&g, ex, &b, lb) == 0);
        CHECK(memcmp(la, lb, sizeof(float) * K_LOGITS * V) == 0);
        free(la), free(lb);
    }
    mp_vqa_request_free(&a);
    mp_vqa_request_free(&b);
    mp_vqa_free(&g, ex);
}

static void run_variant(const char *tmp, const char *variant, int seed, double fps) {
    fprintf(stderr, "== %s\n", variant);
    char mdir[1100], io[1200];
    if (vt_make_model(tmp, variant, variant, seed, 0, mdir, sizeof mdir) != 0) {
        CHECK(0);
        return;
    }
    mp_error err;
    mp_exec ex;
    mp_threadpool *tp = mp_threadpool_create(2);
    CHECK(mp_exec_init(&ex, MP_BACKEND_CPU, tp, 64 << 20, &err) == 0);
    mp_vqa v;
    if (mp_vqa_load(&v, mdir, NULL, &ex, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        CHECK(0);
        goto out;
    }
    v.keep_patches = 1;
    CHECK_EQ_INT(v.vit.cfg.variant, strcmp(variant, "qwen2vl") ? MP_QWEN2VL_V25 : MP_QWEN2VL_V2);
    snprintf(io, sizeof io, "%s/io_%s_image", tmp, variant);
    run_case(&v, &ex, mdir, io, mp_fixture("images/chelsea.png"), fps, 0, 1);
    snprintf(io, sizeof io, "%s/io_%s_video", tmp, variant);
    /* 2 s at 24 fps: fps 2 -> 4 frames, fps 3 -> 6 frames */
    run_case(&v, &ex, mdir, io, mp_fixture("video/testsrc2_320x240_24fps_2s_mjpeg_pcm.avi"), fps, 1, (int)(2 * fps));
    CHECK_EQ_INT(v.stats.n_encoded, 2);
    CHECK_EQ_INT(v.stats.n_cache_hits, 2);
    gguf_case(&v, &ex, mdir, tmp, variant, mp_fixture("video/testsrc2_320x240_24fps_2s_mjpeg_pcm.avi"), fps);
    /* an audio-only file is a clear error */
    {
        mp_vqa_request r;
        const char *audio = mp_fixture("audio/jfk.wav");
        if (access(audio, R_OK) == 0) {
            CHECK(mp_vqa_request_build(&v, &ex, audio, NULL, "What?", &r, &err) < 0);
            fprintf(stderr, "audio-only: %s\n", err.msg);
            CHECK(strstr(err.msg, "audio") != NULL);
        }
    }
    mp_vqa_free(&v, &ex);
out:
    mp_exec_free(&ex);
    mp_threadpool_free(tp);
}

int main(void) {
    int s = vt_python_ok();
    if (s) return s;
    if (access(mp_fixture("video/testsrc2_320x240_24fps_2s_mjpeg_pcm.avi"), R_OK) != 0 ||
        access(mp_fixture("hf/Qwen--Qwen2-VL-2B-Instruct/config.json"), R_OK) != 0) {
        fprintf(stderr, "skip: fixtures absent\n");
        return MP_TEST_SKIP;
    }
    const char *tmp = vt_tmpdir("vqa");
    if (!tmp) {
        fprintf(stderr, "cannot make a scratch folder\n");
        return 1;
    }
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", tmp);
    run_variant(dir, "qwen2vl", 21, 2.0);
    run_variant(dir, "qwen25vl", 22, 3.0);
    vt_cleanup(dir);
    return mp_test_result("test_vqa");
}
