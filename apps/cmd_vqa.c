/* cmd_vqa.c — `mmpipe vqa`: questions about a video (or an image) with Qwen2-VL / Qwen2.5-VL or SmolVLM2.
 *
 * The media is decoded, sampled and encoded once (runtime/vqa.h keeps the features by content hash);
 * every question becomes one request of the continuous-batching engine and they decode together.
 * stdout: the answers (one question: just the answer; several: "Q: ..." / "A: ..." blocks), or one JSON
 * object with --json. Messages and -v details go to stderr. */
#include "cli.h"
#include "mmpipe.h"

#include "kernels/mp.h"
#include "runtime/engine.h"
#include "runtime/textmodel.h"
#include "runtime/vqa.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: mmpipe vqa -m MODEL [options] MEDIA \"QUESTION\" [\"QUESTION\" ...]\n"
            "  Answers questions about a video (any container/codec FFmpeg decodes) or an image (one frame)\n"
            "  with Qwen2-VL / Qwen2.5-VL or SmolVLM2 (a video is its frames as images, each with its timestamp in\n"
            "  the prompt). The media is encoded once; the questions decode together as a batch.\n"
            "  -m, --model PATH        HF Qwen2-VL / Qwen2.5-VL / SmolVLM2 folder or hub id ORG/NAME, or a llama.cpp\n"
            "                          text GGUF\n"
            "      --mmproj FILE       the vision tower GGUF (llama.cpp mmproj) for a GGUF text model\n"
            "      --fps F             video frames sampled per second (default: Qwen2-VL 2, SmolVLM2 the model's\n"
            "                          video_sampling.fps, 1)\n"
            "      --max-frames N      at most N frames, spread uniformly (default: Qwen2-VL 32, at least 2;\n"
            "                          SmolVLM2 the model's video_sampling.max_frames, 64)\n"
            "      --max-pixels N      Qwen2-VL: pixels per video frame after resizing (default: qwen-vl-utils' budget)\n"
            "  -n, --n-predict N       max new tokens per answer (default 256)\n"
            "      --temp T            temperature; 0 = greedy (default: the model's generation_config, else greedy)\n"
            "      --top-k K, --top-p P  sampling filters (default: the model's generation_config)\n"
            "  -s, --seed S            sampling seed (default 0)\n"
            "      --json              print one JSON object: media (frames and timestamps used, grid, vision\n"
            "                          tokens), vision cost and cache use, and the answers\n"
            "  -v, --verbose           media, frames, token counts and timings to stderr\n"
            "  -t, --threads N         threads (default: physical cores)\n"
            "      --device cpu|cuda|auto\n");
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct answer {
    const char *question;
    mp_vqa_request rq;
    int done, ok;
    char *text;
    char error[512];
    const char *finish;
    int n_tokens, n_prompt;
    double t_first, t_done, t_submit;
} answer;

static void on_done(void *ctx, const mp_gen_result *res) {
    answer *a = (answer *)ctx + (intptr_t)res->user;
    a->done = 1;
    a->ok = res->ok;
    a->text = strdup(res->text ? res->text : "");
    snprintf(a->error, sizeof a->error, "%s", res->error);
    a->finish = res->finish_reason;
    a->n_tokens = res->n_tokens;
    a->n_prompt = res->n_prompt;
    a->t_first = res->t_first, a->t_done = res->t_done, a->t_submit = res->t_submit;
}

static int parse_num(const char *flag, const char *s, double lo, double hi, double *out) {
    char *end;
    double v = strtod(s, &end);
    if (!*s || *end || !(v >= lo && v <= hi)) {
        fprintf(stderr, "mmpipe vqa: bad value '%s' for %s\n", s, flag);
        return -1;
    }
    *out = v;
    return 0;
}

static cJSON *media_json(const mp_vqa *v, const mp_vqa_media *m) {
    const int smol = v->kind == MP_VQA_SMOLVLM;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "path", m->path);
    cJSON_AddStringToObject(o, "kind", m->is_video ? "video" : "image");
    cJSON_AddStringToObject(o, "codec", m->codec);
    cJSON_AddNumberToObject(o, "width", m->src_w);
    cJSON_AddNumberToObject(o, "height", m->src_h);
    if (m->is_video) {
        cJSON_AddNumberToObject(o, "duration", m->duration);
        cJSON_AddNumberToObject(o, "native_fps", m->native_fps);
        if (!smol) cJSON_AddNumberToObject(o, "second_per_grid", m->second_per_grid);
        if (smol) cJSON_AddNumberToObject(o, "prompt_duration", m->prompt_duration);
        cJSON_AddNumberToObject(o, "fps", m->opts.fps);
        cJSON_AddNumberToObject(o, "max_frames", m->opts.max_frames);
    }
    cJSON *fr = cJSON_AddArrayToObject(o, "frames");
    for (int i = 0; i < m->n_frames; i++) {
        cJSON *f = cJSON_CreateObject();
        cJSON_AddNumberToObject(f, "index", i);
        cJSON_AddNumberToObject(f, "pts", round(m->pts[i] * 1e6) / 1e6);
        if (smol && m->is_video) { /* as the prompt gives it (MM:SS) */
            long long s = (long long)floor(m->pts[i] + 1e-9);
            char ts[48];
            snprintf(ts, sizeof ts, "%02lld:%02lld", s / 60, s % 60);
            cJSON_AddStringToObject(f, "timestamp", ts);
        }
        cJSON_AddItemToArray(fr, f);
    }
    cJSON_AddNumberToObject(o, "resized_width", m->resized_w);
    cJSON_AddNumberToObject(o, "resized_height", m->resized_h);
    if (smol) {
        cJSON_AddNumberToObject(o, "tiles", m->n_tiles);
        if (!m->is_video) {
            cJSON_AddNumberToObject(o, "tile_rows", m->plan.rows);
            cJSON_AddNumberToObject(o, "tile_cols", m->plan.cols);
        }
    } else {
        int g[3] = {m->grid.t, m->grid.h, m->grid.w};
        cJSON_AddItemToObject(o, "grid_thw", cJSON_CreateIntArray(g, 3));
    }
    cJSON_AddNumberToObject(o, "vision_tokens", (double)m->n_rows);
    if (m->warning[0]) cJSON_AddStringToObject(o, "warning", m->warning);
    return o;
}

int cmd_vqa(int argc, char **argv) {
    const char *model = NULL, *mmproj = NULL, *media = NULL;
    const char **questions = calloc((size_t)argc + 1, sizeof *questions);
    int n_q = 0, n_predict = 256, json = 0, verbose = 0;
    int g_temp = 0, g_topk = 0, g_topp = 0;
    double temp = 0, top_p = 1, seed = 0;
    int top_k = 0, g_fps = 0, g_maxf = 0;
    mp_vqa_opts vo = mp_vqa_default_opts();
    cli_common cc = {0, MMPIPE_DEVICE_AUTO};
    if (!questions) return 1;
    for (int i = 1; i < argc;) {
        const char *a = argv[i];
        int r = cli_parse_common(&cc, argc, argv, &i);
        if (r < 0) goto bad;
        if (r > 0) continue;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            free(questions);
            return 0;
        }
        if (!strcmp(a, "--json")) { json = 1; i++; continue; }
        if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) { verbose = 1; i++; continue; }
        if (a[0] == '-' && a[1] && strcmp(a, "-") != 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "mmpipe vqa: %s needs a value\n", a);
                goto bad;
            }
            const char *val = argv[i + 1];
            double d;
            if (!strcmp(a, "-m") || !strcmp(a, "--model")) model = val;
            else if (!strcmp(a, "--mmproj")) mmproj = val;
            else if (!strcmp(a, "--fps")) {
                if (parse_num(a, val, 1e-3, 1000, &vo.fps) < 0) goto bad;
                g_fps = 1;
            } else if (!strcmp(a, "--max-frames")) {
                if (parse_num(a, val, 1, 100000, &d) < 0) goto bad;
                vo.max_frames = (int)d;
                g_maxf = 1;
            } else if (!strcmp(a, "--max-pixels")) {
                if (parse_num(a, val, 784, 1e9, &d) < 0) goto bad;
                vo.video_max_pixels = (int64_t)d;
            } else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict")) {
                if (parse_num(a, val, 1, 1 << 20, &d) < 0) goto bad;
                n_predict = (int)d;
            } else if (!strcmp(a, "--temp")) {
                if (parse_num(a, val, 0, 100, &temp) < 0) goto bad;
                g_temp = 1;
            } else if (!strcmp(a, "--top-k")) {
                if (parse_num(a, val, 0, 1 << 24, &d) < 0) goto bad;
                top_k = (int)d, g_topk = 1;
            } else if (!strcmp(a, "--top-p")) {
                if (parse_num(a, val, 0, 1, &top_p) < 0) goto bad;
                g_topp = 1;
            } else if (!strcmp(a, "-s") || !strcmp(a, "--seed")) {
                if (parse_num(a, val, 0, 1.8e19, &seed) < 0) goto bad;
            } else {
                fprintf(stderr, "mmpipe vqa: unknown option %s (see --help)\n", a);
                goto bad;
            }
            i += 2;
            continue;
        }
        if (!media) media = a;
        else questions[n_q++] = a;
        i++;
    }
    if (!model) {
        fprintf(stderr, "mmpipe vqa: no model given (-m MODEL)\n");
        goto bad;
    }
    if (!media || n_q == 0) {
        fprintf(stderr, "mmpipe vqa: give a media file and at least one question (see --help)\n");
        goto bad;
    }

    mp_error err;
    mp_threadpool *tp = mp_threadpool_create(cc.n_threads);
    mp_exec ex;
    mp_vqa v;
    mp_engine *e = NULL;
    answer *ans = calloc((size_t)n_q, sizeof *ans);
    int rc = 1, ex_ok = 0, v_ok = 0;
    memset(&v, 0, sizeof v);
    if (!tp || !ans) {
        fprintf(stderr, "mmpipe vqa: out of memory\n");
        goto out;
    }
    if (mp_exec_init(&ex, cc.device, tp, (size_t)64 << 20, &err) < 0) {
        fprintf(stderr, "mmpipe vqa: %s\n", err.msg);
        goto out;
    }
    ex_ok = 1;
    double t0 = now_s();
    if (mp_vqa_load(&v, model, mmproj, &ex, &err) < 0) {
        fprintf(stderr, "mmpipe vqa: %s\n", err.msg);
        goto out;
    }
    v_ok = 1;
    double t_load = now_s() - t0;
    {
        mp_vqa_opts md = mp_vqa_model_default_opts(&v); /* SmolVLM2: its video_sampling */
        if (!g_fps) vo.fps = md.fps;
        if (!g_maxf) vo.max_frames = md.max_frames;
    }
    mp_sampler_params sp = v.sampling;
    if (g_temp) sp.temperature = (float)temp;
    if (g_topk) sp.top_k = top_k;
    if (g_topp) sp.top_p = (float)top_p;
    sp.seed = (uint64_t)seed;

    /* requests: the first question encodes the media, the others find it in the cache */
    double t1 = now_s();
    int max_n = 0;
    int64_t kv_tokens = 0;
    for (int q = 0; q < n_q; q++) {
        ans[q].question = questions[q];
        if (mp_vqa_request_build(&v, &ex, media, &vo, questions[q], &ans[q].rq, &err) < 0) {
            fprintf(stderr, "mmpipe vqa: %s\n", err.msg);
            goto out;
        }
        if (ans[q].rq.n > max_n) max_n = ans[q].rq.n;
        kv_tokens += ans[q].rq.n + n_predict + 16;
    }
    double t_media = now_s() - t1;
    const mp_vqa_media *m = ans[0].rq.media;
    if (m->warning[0]) fprintf(stderr, "mmpipe vqa: warning: %s\n", m->warning);
    if (verbose) {
        fprintf(stderr, "vqa: %s: %s %s %dx%d, %d frame(s) at", m->path, m->is_video ? "video" : "image", m->codec,
                m->src_w, m->src_h, m->n_frames);
        for (int i = 0; i < m->n_frames; i++) fprintf(stderr, " %.3f", m->pts[i]);
        if (v.kind == MP_VQA_SMOLVLM)
            fprintf(stderr, " s\nvqa: resized %dx%d, %d tile(s), %lld vision tokens\n", m->resized_w, m->resized_h,
                    m->n_tiles, (long long)m->n_rows);
        else
            fprintf(stderr, " s\nvqa: resized %dx%d, grid %dx%dx%d, %lld vision tokens, second_per_grid %.4f\n",
                    m->resized_w, m->resized_h, m->grid.t, m->grid.h, m->grid.w, (long long)m->n_rows, m->second_per_grid);
        fprintf(stderr, "vqa: decode %.1f ms, preprocess %.1f ms, vision encode %.1f ms; media encoded %d, cache hits %d\n",
                m->t_decode * 1e3, m->t_preprocess * 1e3, m->t_encode * 1e3, v.stats.n_encoded, v.stats.n_cache_hits);
        for (int q = 0; q < n_q; q++)
            fprintf(stderr, "vqa: question %d: %d prompt items (%d vision), features %s\n", q + 1, ans[q].rq.n,
                    ans[q].rq.n_vision, ans[q].rq.cached ? "cached" : "encoded");
    }

    mp_engine_params ep = mp_engine_default_params();
    ep.max_seqs = n_q;
    ep.max_ctx = max_n + n_predict + 16;
    ep.kv_tokens = kv_tokens;
    if (ep.max_ctx > v.llm.cfg.n_ctx_train) ep.max_ctx = v.llm.cfg.n_ctx_train;
    if (mp_engine_create(&e, &v.llm, v.tok, &ex, &ep, on_done, ans, &err) < 0) {
        fprintf(stderr, "mmpipe vqa: %s\n", err.msg);
        goto out;
    }
    double t2 = now_s();
    for (int q = 0; q < n_q; q++) {
        mp_gen_request r = ans[q].rq.req;
        r.sampling = sp;
        r.sampling.seed = sp.seed + (uint64_t)q;
        r.max_new = n_predict;
        r.user = (void *)(intptr_t)q;
        if (mp_engine_submit(e, &r, &err) < 0) {
            fprintf(stderr, "mmpipe vqa: %s\n", err.msg);
            goto out;
        }
    }
    while (mp_engine_pending(e) > 0) {
        if (mp_engine_step(e, &err) < 0) {
            fprintf(stderr, "mmpipe vqa: %s\n", err.msg);
            goto out;
        }
    }
    double t_gen = now_s() - t2;
    mp_engine_stats es;
    mp_engine_get_stats(e, &es);
    int failed = 0;
    for (int q = 0; q < n_q; q++)
        if (!ans[q].ok) {
            fprintf(stderr, "mmpipe vqa: question %d: %s\n", q + 1, ans[q].error);
            failed = 1;
        }
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "model", v.path);
        cJSON_AddStringToObject(o, "family", v.kind == MP_VQA_SMOLVLM ? "smolvlm" : "qwen2vl");
        cJSON_AddItemToObject(o, "media", media_json(&v, m));
        cJSON *vs = cJSON_AddObjectToObject(o, "vision");
        cJSON_AddNumberToObject(vs, "encoded", v.stats.n_encoded);
        cJSON_AddNumberToObject(vs, "cache_hits", v.stats.n_cache_hits);
        cJSON_AddNumberToObject(vs, "decode_ms", round(m->t_decode * 1e4) / 10);
        cJSON_AddNumberToObject(vs, "preprocess_ms", round(m->t_preprocess * 1e4) / 10);
        cJSON_AddNumberToObject(vs, "encode_ms", round(m->t_encode * 1e4) / 10);
        cJSON *arr = cJSON_AddArrayToObject(o, "answers");
        for (int q = 0; q < n_q; q++) {
            cJSON *a = cJSON_CreateObject();
            cJSON_AddStringToObject(a, "question", ans[q].question);
            if (ans[q].ok) cJSON_AddStringToObject(a, "answer", ans[q].text ? ans[q].text : "");
            else cJSON_AddStringToObject(a, "error", ans[q].error);
            cJSON_AddStringToObject(a, "finish_reason", ans[q].finish ? ans[q].finish : "error");
            cJSON_AddStringToObject(a, "features", ans[q].rq.cached ? "cached" : "encoded");
            cJSON_AddNumberToObject(a, "prompt_tokens", ans[q].rq.n);
            cJSON_AddNumberToObject(a, "vision_tokens", ans[q].rq.n_vision);
            cJSON_AddNumberToObject(a, "completion_tokens", ans[q].n_tokens);
            cJSON_AddItemToArray(arr, a);
        }
        cJSON *tm = cJSON_AddObjectToObject(o, "timings_ms");
        cJSON_AddNumberToObject(tm, "load", round(t_load * 1e4) / 10);
        cJSON_AddNumberToObject(tm, "media", round(t_media * 1e4) / 10);
        cJSON_AddNumberToObject(tm, "generate", round(t_gen * 1e4) / 10);
        char *s = cJSON_Print(o);
        if (s) printf("%s\n", s);
        free(s);
        cJSON_Delete(o);
    } else if (n_q == 1) {
        if (ans[0].ok) printf("%s\n", ans[0].text);
    } else {
        for (int q = 0; q < n_q; q++) {
            printf("Q: %s\n", ans[q].question);
            printf("A: %s\n%s", ans[q].ok ? ans[q].text : "(error)", q + 1 < n_q ? "\n" : "");
        }
    }
    fflush(stdout);
    if (verbose)
        fprintf(stderr, "vqa: load %.1f ms, media %.1f ms, generate %.1f ms (%lld prefill, %lld decode tokens, %lld steps)\n",
                t_load * 1e3, t_media * 1e3, t_gen * 1e3, (long long)es.prefill_tokens, (long long)es.decode_tokens,
                (long long)es.steps);
    rc = failed ? 1 : 0;
out:
    if (e) mp_engine_free(e);
    if (ans)
        for (int q = 0; q < n_q; q++) {
            mp_vqa_request_free(&ans[q].rq);
            free(ans[q].text);
        }
    free(ans);
    if (v_ok) mp_vqa_free(&v, &ex);
    if (ex_ok) mp_exec_free(&ex);
    if (tp) mp_threadpool_free(tp);
    free(questions);
    return rc;
bad:
    free(questions);
    return 2;
}
