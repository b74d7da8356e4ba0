/* bench_vqa.c — `mmpipe bench vqa`: the video question-answering path of runtime/vqa.h on a clip of N
 * sampled frames (default 32) with a random-weight Qwen2-VL-2B-shaped vision tower (32 blocks of 1280,
 * 16 heads, 2x2 merger to 1536; BF16 weights as the released checkpoint) and a small Qwen2-VL-shaped
 * decoder (1536 wide, 12 heads / 2 kv heads, M-RoPE [16, 24, 24], --text-layers of the real 28), the
 * tokenizer and chat template of Qwen2-VL-2B-Instruct from the fixtures. Reported:
 *   decode+sample: FFmpeg decode and frame sampling, frames/s
 *   preprocess:    smart resize + patch flattening
 *   vision:        vision tokens, patches, vision-encode ms and its GFLOP/s vs the machine's FMA peak
 *   question 1:    end-to-end latency (media + prompt + prefill + decode of -n tokens)
 *   question 2:    the same clip, another question: end-to-end latency with the features from the cache
 *                  (vision cost 0: the bench fails if it encoded again)
 */
#include "apps/cli.h"
#include "bench.h"

#include "kernels/mp.h"
#include "llm/jinja.h"
#include "runtime/engine.h"
#include "runtime/vqa.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---------------------------------------------------------------- random weights in memory */

typedef struct pool {
    void **p;
    int n, cap;
    uint64_t rng;
    int oom;
} pool;

static void *pool_add(pool *P, void *x) {
    if (!x) P->oom = 1;
    if (P->n == P->cap) {
        int nc = P->cap ? P->cap * 2 : 256;
        void **q = realloc(P->p, sizeof *q * (size_t)nc);
        if (!q) {
            P->oom = 1;
            free(x);
            return NULL;
        }
        P->p = q, P->cap = nc;
    }
    P->p[P->n++] = x;
    return x;
}

static float urand(pool *P) {
    P->rng ^= P->rng << 13, P->rng ^= P->rng >> 7, P->rng ^= P->rng << 17;
    return (float)(P->rng >> 40) * (1.0f / 16777216.0f) * 2.0f - 1.0f;
}

/* F32 vector: base + scale * U(-1, 1) */
static float *vec(pool *P, int64_t n, float base, float scale) {
    float *x = pool_add(P, malloc(sizeof(float) * (size_t)n));
    if (x)
        for (int64_t i = 0; i < n; i++) x[i] = base + scale * urand(P);
    return x;
}

/* BF16 matrix ne = {in, out}, uniform with the variance of 1/in */
static mp_tensor mat(pool *P, int64_t in, int64_t out) {
    mp_tensor t;
    int64_t ne[2] = {in, out};
    mp_bf16 *d = pool_add(P, malloc(sizeof(mp_bf16) * (size_t)(in * out)));
    const float s = sqrtf(3.0f / (float)in);
    if (d)
        for (int64_t i = 0; i < in * out; i++) d[i] = mp_f32_to_bf16(s * urand(P));
    mp_tensor_init(&t, MP_BF16, 2, ne, d);
    return t;
}

static mp_qwen2vl_linear vlin(pool *P, int64_t in, int64_t out) {
    mp_qwen2vl_linear l = {mat(P, in, out), vec(P, out, 0, 0.02f)};
    return l;
}

/* Qwen2-VL-2B-Instruct's vision tower (vision_config of its config.json) with `layers` blocks */
static int make_vit(pool *P, mp_qwen2vl_vit *m, int layers, int out_dim, mp_error *err) {
    memset(m, 0, sizeof *m);
    mp_qwen2vl_vit_config *c = &m->cfg;
    c->variant = MP_QWEN2VL_V2;
    c->dim = 1280, c->n_ff = 5120, c->n_layer = layers, c->n_head = 16;
    c->patch_size = 14, c->temporal_patch_size = 2, c->in_chans = 3, c->merge_size = 2;
    c->out_dim = out_dim, c->eps = 1e-6f, c->act = MP_GELU_QUICK;
    if (mp_qwen2vl_vit_config_check(c, "bench vit", err) < 0) return -1;
    const int64_t D = c->dim, F = c->n_ff, Dm = D * 4;
    m->patch = mat(P, 3 * 2 * 14 * 14, D);
    m->layers = pool_add(P, calloc((size_t)layers, sizeof *m->layers));
    if (!m->layers) return mp_errf(err, "out of memory");
    for (int l = 0; l < layers; l++) {
        mp_qwen2vl_vit_layer *L = &m->layers[l];
        L->norm1_w = vec(P, D, 1, 0.1f), L->norm1_b = vec(P, D, 0, 0.02f);
        L->norm2_w = vec(P, D, 1, 0.1f), L->norm2_b = vec(P, D, 0, 0.02f);
        L->q = vlin(P, D, D), L->k = vlin(P, D, D), L->v = vlin(P, D, D), L->proj = vlin(P, D, D);
        L->fc1 = vlin(P, D, F), L->fc2 = vlin(P, F, D);
    }
    mp_qwen2vl_merger *g = &m->merger;
    g->dim = (int)D, g->merge_size = 2, g->out_dim = out_dim, g->rms = 0, g->eps = 1e-6f;
    g->ln_w = vec(P, D, 1, 0.1f), g->ln_b = vec(P, D, 0, 0.02f);
    g->fc1 = mat(P, Dm, Dm), g->fc1_b = vec(P, Dm, 0, 0.02f);
    g->fc2 = mat(P, Dm, out_dim), g->fc2_b = vec(P, out_dim, 0, 0.02f);
    m->proc = mp_qwen2vl_default_params();
    m->backend = MP_BACKEND_CPU;
    return P->oom ? mp_errf(err, "out of memory for the vision tower") : 0;
}

/* Qwen2-VL-2B's text model shape with `layers` layers */
static int make_llm(pool *P, mp_llama *m, int layers, int n_vocab, mp_error *err) {
    memset(m, 0, sizeof *m);
    mp_llama_config *c = &m->cfg;
    c->arch = MP_LLM_QWEN2;
    c->n_vocab = n_vocab, c->n_embd = 1536, c->n_ff = 8960, c->n_layer = layers, c->n_head = 12, c->n_kv_head = 2;
    c->n_ctx_train = 32768, c->norm_eps = 1e-6f, c->rope_mode = MP_ROPE_NEOX, c->rope_theta = 1e6f;
    c->rope_sections[0] = 16, c->rope_sections[1] = 24, c->rope_sections[2] = 24;
    c->tie_embeddings = 1, c->bos_id = -1, c->n_eos = 0;
    if (mp_llama_config_check(c, "bench llm", err) < 0) return -1;
    const int64_t D = c->n_embd, F = c->n_ff, hd = c->head_dim, qd = c->n_head * hd, kvd = c->n_kv_head * hd;
    m->tok_embd = mat(P, D, n_vocab);
    m->out_norm = vec(P, D, 1, 0.1f);
    m->output.w = m->tok_embd;
    m->layers = calloc((size_t)layers, sizeof *m->layers); /* freed by mp_llama_free */
    if (!m->layers) return mp_errf(err, "out of memory");
    for (int l = 0; l < layers; l++) {
        mp_llama_layer *L = &m->layers[l];
        L->attn_norm = vec(P, D, 1, 0.1f), L->ffn_norm = vec(P, D, 1, 0.1f);
        L->wq.w = mat(P, D, qd), L->wq.b = vec(P, qd, 0, 0.02f);
        L->wk.w = mat(P, D, kvd), L->wk.b = vec(P, kvd, 0, 0.02f);
        L->wv.w = mat(P, D, kvd), L->wv.b = vec(P, kvd, 0, 0.02f);
        L->wo.w = mat(P, qd, D);
        L->w_gate.w = mat(P, D, F), L->w_up.w = mat(P, D, F), L->w_down.w = mat(P, F, D);
    }
    m->backend = MP_BACKEND_CPU;
    return P->oom ? mp_errf(err, "out of memory for the text model") : 0;
}

/* ---------------------------------------------------------------- one question, timed */

typedef struct qres {
    int done, ok, n_tokens;
    double t_first, t_done;
    char error[512];
} qres;

static void on_done(void *ctx, const mp_gen_result *r) {
    qres *q = ctx;
    q->done = 1, q->ok = r->ok, q->n_tokens = r->n_tokens, q->t_first = r->t_first, q->t_done = r->t_done;
    snprintf(q->error, sizeof q->error, "%s", r->error);
}

/* media + prompt + generation of n tokens; returns seconds, -1 on error */
static double ask(mp_vqa *v, mp_exec *ex, const char *clip, const mp_vqa_opts *o, const char *question, int n,
                  mp_vqa_request *rq, double *t_prefill, double *t_decode, mp_error *err) {
    double t0 = now_s();
    if (mp_vqa_request_build(v, ex, clip, o, question, rq, err) < 0) return -1;
    qres q;
    memset(&q, 0, sizeof q);
    mp_engine *e = NULL;
    mp_engine_params ep = mp_engine_default_params();
    ep.max_seqs = 1;
    ep.max_ctx = rq->n + n + 16;
    ep.step_tokens = 4096;
    if (mp_engine_create(&e, &v->llm, v->tok, ex, &ep, on_done, &q, err) < 0) return -1;
    mp_gen_request r = rq->req;
    r.sampling = mp_sampler_default_params();
    r.sampling.temperature = 0;
    r.max_new = n;
    r.ignore_eos = 1;
    double t1 = now_s();
    int rc = mp_engine_submit(e, &r, err);
    while (rc == 0 && mp_engine_pending(e) > 0) rc = mp_engine_step(e, err) < 0 ? -1 : 0;
    mp_engine_free(e);
    if (rc < 0) return -1;
    if (!q.ok) {
        mp_errf(err, "%s", q.error);
        return -1;
    }
    *t_prefill = q.t_first - t1;
    *t_decode = q.n_tokens > 1 ? (q.t_done - q.t_first) / (q.n_tokens - 1) : 0;
    return q.t_done - t0;
}

static void usage(void) {
    printf("usage: mmpipe bench vqa [--clip FILE] [--frames N] [--fps F] [--vision-layers L] [--text-layers L]\n"
           "                        [-n TOKENS] [-t THREADS]\n"
           "  --clip FILE         video (default: the fixtures' 4 s 24 fps H.264 testsrc2 clip)\n"
           "  --frames N          frames sampled (default 32; --fps defaults to N / duration)\n"
           "  --vision-layers L   vision blocks (default 32, Qwen2-VL-2B)\n"
           "  --text-layers L     decoder layers (default 4 of Qwen2-VL-2B's 28)\n"
           "  -n TOKENS           tokens generated per question (default 16)\n");
}

int bench_vqa(int argc, char **argv) {
    const char *clip = NULL;
    int frames = 32, vlayers = 32, tlayers = 4, n_gen = 16, threads = 0;
    double fps = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage();
            return 0;
        }
        if (!val) {
            fprintf(stderr, "bench vqa: %s needs a value\n", a);
            return 2;
        }
        if (!strcmp(a, "--clip")) clip = val;
        else if (!strcmp(a, "--frames")) frames = atoi(val);
        else if (!strcmp(a, "--fps")) fps = atof(val);
        else if (!strcmp(a, "--vision-layers")) vlayers = atoi(val);
        else if (!strcmp(a, "--text-layers")) tlayers = atoi(val);
        else if (!strcmp(a, "-n")) n_gen = atoi(val);
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) threads = atoi(val);
        else {
            fprintf(stderr, "bench vqa: unknown option %s\n", a);
            return 2;
        }
        i++;
    }
    if (frames < 2 || vlayers < 1 || tlayers < 1 || n_gen < 1 || threads < 0) {
        fprintf(stderr, "bench vqa: bad sizes\n");
        return 2;
    }
    const char *fx = getenv("MMPIPE_FIXTURES");
    char fxdir[4096], clipbuf[4200], tokdir[4200];
    snprintf(fxdir, sizeof fxdir, "%s", fx && *fx ? fx : "../shared/fixtures");
    snprintf(tokdir, sizeof tokdir, "%s/hf/Qwen--Qwen2-VL-2B-Instruct", fxdir);
    if (!clip) {
        snprintf(clipbuf, sizeof clipbuf, "%s/video/testsrc2_320x240_24fps_4s_h264_aac.mp4", fxdir);
        clip = clipbuf;
        if (fps <= 0) fps = frames / 4.0;
    }
    if (fps <= 0) fps = 2.0;
    if (access(clip, R_OK) != 0 || access(tokdir, R_OK) != 0) {
        fprintf(stderr, "bench vqa: %s or %s absent (set MMPIPE_FIXTURES)\n", clip, tokdir);
        return 1;
    }

    mp_error err;
    mp_threadpool *tp = mp_threadpool_create(threads);
    mp_exec ex;
    if (mp_exec_init(&ex, MP_BACKEND_CPU, tp, (size_t)64 << 20, &err) < 0) {
        fprintf(stderr, "bench vqa: %s\n", err.msg);
        mp_threadpool_free(tp);
        return 1;
    }
    const int nthr = mp_threadpool_size(tp);
    const double peak = bench_fma_peak(tp, nthr, 3);
    int rc = 1;
    pool P = {0};
    P.rng = 0x9E3779B97F4A7C15ull;
    mp_vqa v;
    memset(&v, 0, sizeof v);
    mp_vqa_request r1, r2;
    memset(&r1, 0, sizeof r1);
    memset(&r2, 0, sizeof r2);
    /* assemble the model: random weights, the real tokenizer and chat template */
    double tb = now_s();
    if (mp_tokenizer_load_hf(&v.tok, tokdir, &err) < 0 || mp_chat_template_load_hf(tokdir, &v.chat_template, &err) < 0)
        goto fail;
    snprintf(v.path, sizeof v.path, "random Qwen2-VL-2B-shaped");
    v.id_image = mp_tokenizer_find(v.tok, "<|image_pad|>"), v.id_video = mp_tokenizer_find(v.tok, "<|video_pad|>");
    v.id_vstart = mp_tokenizer_find(v.tok, "<|vision_start|>"), v.id_vend = mp_tokenizer_find(v.tok, "<|vision_end|>");
    if (make_llm(&P, &v.llm, tlayers, 151936, &err) < 0 || make_vit(&P, &v.vit, vlayers, v.llm.cfg.n_embd, &err) < 0)
        goto fail;
    v.sampling = mp_sampler_default_params();
    v.sampling.temperature = 0;
    fprintf(stderr, "bench vqa: model built in %.1f s (%d vision blocks, %d text layers, BF16), %d threads, FMA peak %.0f GFLOP/s\n",
            now_s() - tb, vlayers, tlayers, nthr, peak);

    mp_vqa_opts o = mp_vqa_default_opts();
    o.fps = fps;
    o.max_frames = frames;
    double p1, d1, p2, d2;
    double e1 = ask(&v, &ex, clip, &o, "What happens in this video?", n_gen, &r1, &p1, &d1, &err);
    if (e1 < 0) goto fail;
    const mp_vqa_media *m = r1.media;
    const mp_vqa_stats s1 = v.stats;
    double e2 = ask(&v, &ex, clip, &o, "Which colours do you see, and where?", n_gen, &r2, &p2, &d2, &err);
    if (e2 < 0) goto fail;
    if (!r2.cached || v.stats.n_encoded != s1.n_encoded || v.stats.t_encode != s1.t_encode) {
        fprintf(stderr, "bench vqa: the second question encoded the clip again\n");
        goto fail;
    }
    /* vision FLOPs: per patch and block 2*(4 D^2 + 2 D F) + attention 4 S D per patch (S = patches of its
     * temporal slice); merger 2*(Dm^2 + Dm*out) per merged row; Conv3d 2*1176*D per patch */
    const double D = v.vit.cfg.dim, F = v.vit.cfg.n_ff, S = (double)m->grid.h * m->grid.w;
    const double np = (double)m->grid.t * S, Dm = 4 * D;
    const double flops = np * (2 * 1176 * D + vlayers * (2 * (4 * D * D + 2 * D * F) + 4 * S * D)) +
                         (double)m->n_rows * 2 * (Dm * Dm + Dm * v.vit.cfg.out_dim);
    printf("BENCH vqa stage=decode_sample clip=%s codec=%s frames=%d decode_ms=%.1f frames_per_s=%.1f\n",
           strrchr(clip, '/') ? strrchr(clip, '/') + 1 : clip, m->codec, m->n_frames, m->t_decode * 1e3,
           m->n_frames / m->t_decode);
    printf("BENCH vqa stage=preprocess frames=%d resized=%dx%d grid=%dx%dx%d patches=%.0f ms=%.1f\n", m->n_frames,
           m->resized_w, m->resized_h, m->grid.t, m->grid.h, m->grid.w, np, m->t_preprocess * 1e3);
    printf("BENCH vqa stage=vision blocks=%d dim=%d vision_tokens=%lld encode_ms=%.1f gflops=%.1f peak_gflops=%.0f "
           "of_peak=%.3f threads=%d\n",
           vlayers, (int)D, (long long)m->n_rows, m->t_encode * 1e3, flops / m->t_encode * 1e-9, peak,
           flops / m->t_encode * 1e-9 / peak, nthr);
    printf("BENCH vqa stage=question1 features=encoded prompt_tokens=%d gen_tokens=%d e2e_ms=%.1f prefill_ms=%.1f "
           "decode_ms_per_token=%.1f\n",
           r1.n, n_gen, e1 * 1e3, p1 * 1e3, d1 * 1e3);
    printf("BENCH vqa stage=question2 features=cached vision_ms=0 prompt_tokens=%d gen_tokens=%d e2e_ms=%.1f "
           "prefill_ms=%.1f decode_ms_per_token=%.1f saved_ms=%.1f\n",
           r2.n, n_gen, e2 * 1e3, p2 * 1e3, d2 * 1e3, (e1 - e2) * 1e3);
    rc = 0;
fail:
    if (rc) fprintf(stderr, "bench vqa: %s\n", err.msg);
    mp_vqa_request_free(&r1);
    mp_vqa_request_free(&r2);
    v.vit.layers = NULL; /* pool memory */
    mp_vqa_free(&v, &ex);
    for (int i = 0; i < P.n; i++) free(P.p[i]);
    free(P.p);
    mp_exec_free(&ex);
    mp_threadpool_free(tp);
    return rc;
}
