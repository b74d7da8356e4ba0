/* bench_transcribe.c — `mmpipe bench transcribe`: Whisper speed on random-weight models of the real
 * shapes (tiny 384x4, base 512x6, small 768x12; English vocabulary 51864 from the real tiny.en header),
 * written by the bench into --dir in whisper.cpp's ggml format (F16, Q8_0), so whisper.cpp's own
 * whisper-bench can run on the very same files (--whisper-bench PATH does it and prints the ratios).
 *
 * Measured like whisper-bench: encode = one 30 s window (with the decoder's cross-attention K/V, as
 * whisper_encode computes them); decode = 256 single-token steps at positions
 * 0..255 (per-token ms); batchd = 5 sequences x 1 token (a beam step), 64 times; prompt = 256 tokens at
 * once, 16 times. Plus the log-mel of 30 s of audio. Best of --reps runs. Prints `BENCH transcribe ...`.
 */
#include "apps/cli.h"
#include "bench.h"
#include "mmpipe.h"

#include "encoders/whisper.h"
#include "kernels/ops.h"
#include "llm/whisper_decode.h"
#include "preprocess/audio.h"
#include "preprocess/mel.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

typedef struct wshape {
    const char *name;
    int state, heads, layers;
} wshape;

static const wshape SHAPES[] = {{"tiny", 384, 6, 4}, {"base", 512, 8, 6}, {"small", 768, 12, 12}};

static const wshape *find_shape(const char *n) {
    for (size_t i = 0; i < sizeof SHAPES / sizeof SHAPES[0]; i++)
        if (!strcmp(SHAPES[i].name, n)) return &SHAPES[i];
    return NULL;
}

/* dt < 0: an HF folder (config.json + model.safetensors, F32) */
static int write_model(const char *hdr, const wshape *s, int dt, const char *path, mp_error *err) {
    mp_whisper_random_spec sp;
    memset(&sp, 0, sizeof sp);
    sp.header_from = hdr;
    sp.n_state = s->state;
    sp.n_head = s->heads;
    sp.n_layer = s->layers;
    sp.wtype = dt < 0 ? MP_F32 : (mp_dtype)dt;
    sp.seed = 42;
    sp.gain = 1.0f;
    sp.emb_scale = 0.1f;
    if (dt >= 0) return mp_whisper_write_random(path, &sp, err);
    mkdir(path, 0755);
    return mp_whisper_write_random_hf(path, &sp, err);
}

static double cpu_ms(void) { /* CPU time of the whole process (all threads) */
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

/* wall ms, and process CPU ms (on a loaded machine at -t 1 the CPU time is the work itself) */
typedef struct res {
    double enc, dec_tok, batchd, prompt;
    double c_enc, c_dec_tok, c_batchd, c_prompt;
} res;

static int bench_one(const char *path, mp_exec *ex, int reps, res *out, double *enc_gflop) {
    mp_error err;
    mp_whisper m;
    if (mp_whisper_load(&m, path, ex, &err)) {
        fprintf(stderr, "bench transcribe: %s\n", err.msg);
        return -1;
    }
    const int64_t NM = m.hp.n_mels, T = m.hp.n_audio_ctx, D = m.hp.n_audio_state, V = m.hp.n_vocab;
    *enc_gflop = (2.0 * 3 * NM * D * 2 * T + 2.0 * 3 * D * D * T +
                  m.hp.n_audio_layer * (24.0 * T * D * D + 4.0 * T * T * D) + m.hp.n_text_layer * 4.0 * T * D * D) / 1e9;
    mp_whisper_enc_state es;
    mp_whisper_dec_state ds;
    mp_whisper_cross cross;
    mp_whisper_kv kv;
    memset(&es, 0, sizeof es);
    memset(&ds, 0, sizeof ds);
    float *mel = malloc(sizeof(float) * (size_t)NM * 2 * T), *lg = malloc(sizeof(float) * (size_t)V * 5);
    int32_t tok[256];
    for (int i = 0; i < 256; i++) tok[i] = 1000 + i;
    for (int64_t i = 0; i < NM * 2 * T; i++) mel[i] = (float)sin(0.001 * i) * 0.5f;
    int rc = -1;
    if (mp_whisper_cross_init(&cross, &m, ex, 1, &err) || mp_whisper_kv_init(&kv, &m, ex, 5, &err)) goto done;
    out->enc = out->dec_tok = out->batchd = out->prompt = 1e30;
    out->c_enc = out->c_dec_tok = out->c_batchd = out->c_prompt = 1e30;
    for (int r = 0; r < reps + 1; r++) { /* the first round warms up */
        /* encode as whisper.cpp's whisper_encode counts it: the stem, the blocks and the cross-attention K/V */
        double c0 = cpu_ms(), t0 = now_ms();
        if (mp_whisper_encode(&m, &es, ex, mel, 1, NULL, &err)) goto done;
        if (mp_whisper_cross_compute(&m, ex, es.x, 1, &cross, 0, &err)) goto done;
        double t1 = now_ms(), c1 = cpu_ms();
        /* decode: 256 steps of one token */
        kv.len[0] = 0;
        double c2 = cpu_ms(), t2 = now_ms();
        for (int i = 0; i < 256; i++) {
            mp_whisper_dec_seq q = {0, 1, tok + i, &cross, 0, 1, NULL, lg, NULL};
            if (mp_whisper_decode(&m, &ds, &kv, ex, &q, 1, &err)) goto done;
        }
        double t3 = now_ms(), c3 = cpu_ms();
        /* batchd: 5 sequences, one token each, at position 0 */
        double c4 = cpu_ms(), t4 = now_ms();
        for (int i = 0; i < 64; i++) {
            mp_whisper_dec_seq q[5];
            for (int b = 0; b < 5; b++) {
                kv.len[b] = 0;
                q[b] = (mp_whisper_dec_seq){b, 1, tok + b, &cross, 0, 1, NULL, lg + (int64_t)b * V, NULL};
            }
            if (mp_whisper_decode(&m, &ds, &kv, ex, q, 5, &err)) goto done;
        }
        double t5 = now_ms(), c5 = cpu_ms();
        /* prompt: 256 tokens at once */
        for (int i = 0; i < 16; i++) {
            kv.len[0] = 0;
            mp_whisper_dec_seq q = {0, 256, tok, &cross, 0, 1, NULL, lg, NULL};
            if (mp_whisper_decode(&m, &ds, &kv, ex, &q, 1, &err)) goto done;
        }
        double t6 = now_ms(), c6 = cpu_ms();
        if (r == 0) continue;
        out->enc = fmin(out->enc, t1 - t0);
        out->dec_tok = fmin(out->dec_tok, (t3 - t2) / 256);
        out->batchd = fmin(out->batchd, (t5 - t4) / 64);
        out->prompt = fmin(out->prompt, (t6 - t5) / 16);
        out->c_enc = fmin(out->c_enc, c1 - c0);
        out->c_dec_tok = fmin(out->c_dec_tok, (c3 - c2) / 256);
        out->c_batchd = fmin(out->c_batchd, (c5 - c4) / 64);
        out->c_prompt = fmin(out->c_prompt, (c6 - c5) / 16);
    }
    rc = 0;
done:
    if (rc) fprintf(stderr, "bench transcribe: %s\n", err.msg);
    mp_whisper_cross_free(&cross, ex);
    mp_whisper_kv_free(&kv, ex);
    mp_whisper_enc_state_free(&es, ex);
    mp_whisper_dec_state_free(&ds, ex);
    mp_whisper_free(&m, ex);
    free(mel);
    free(lg);
    return rc;
}

/* whisper.cpp's whisper-bench on the same file: encode ms, decode ms per token, and batchd / prompt per
 * call. whisper.cpp counts batchd and prompt "runs" in tokens (n_batchd += n_tokens): its per-run figure
 * is per token, so the call time is the total over the calls (bench.cpp: 64 calls of 5, 16 calls of 256). */
static int run_whisper_bench(const char *exe, const char *model, int threads, res *out) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "\"%s\" -m \"%s\" -t %d 2>&1", exe, model, threads);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    char line[1024];
    int got = 0;
    while (fgets(line, sizeof line, p)) {
        double a, b;
        int n;
        char *s;
        if ((s = strstr(line, "encode time =")) && sscanf(s, "encode time = %lf ms / %d runs ( %lf", &a, &n, &b) == 3)
            out->enc = b, got |= 1;
        else if ((s = strstr(line, "decode time =")) && sscanf(s, "decode time = %lf ms / %d runs ( %lf", &a, &n, &b) == 3)
            out->dec_tok = b, got |= 2;
        else if ((s = strstr(line, "batchd time =")) && sscanf(s, "batchd time = %lf ms / %d runs ( %lf", &a, &n, &b) == 3)
            out->batchd = a / 64, got |= 4;
        else if ((s = strstr(line, "prompt time =")) && sscanf(s, "prompt time = %lf ms / %d runs ( %lf", &a, &n, &b) == 3)
            out->prompt = a / 16, got |= 8;
    }
    pclose(p);
    return got == 15 ? 0 : -1;
}

static double mel_ms(mp_threadpool *tp, const mp_mel_filters *f, int reps) {
    const int64_t n = 480000;
    float *x = malloc(sizeof(float) * (size_t)n);
    uint64_t s = 1;
    for (int64_t i = 0; i < n; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        x[i] = (float)((double)(s >> 11) / 9007199254740992.0 - 0.5) * 0.2f;
    }
    mp_mel_params mp = mp_mel_params_whisper();
    double best = 1e30;
    for (int r = 0; r < reps + 1; r++) {
        float *out = NULL;
        int64_t nf;
        mp_error err;
        double t0 = now_ms();
        if (mp_log_mel(x, n, f, &mp, tp, &out, &nf, &err)) break;
        double t = now_ms() - t0;
        free(out);
        if (r) best = fmin(best, t);
    }
    free(x);
    return best;
}

int bench_transcribe(int argc, char **argv) {
    const char *dir = "/tmp/mmpipe-bench-whisper", *models = "tiny,base,small", *dtypes = "f16,q8_0", *wb = NULL;
    const char *hdr = NULL;
    int reps = 3;
    cli_common cc = {2, MMPIPE_DEVICE_CPU};
    for (int i = 1; i < argc;) {
        int r = cli_parse_common(&cc, argc, argv, &i);
        if (r < 0) return 1;
        if (r > 0) continue;
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: mmpipe bench transcribe [--models tiny,base,small] [--dtypes f16,q8_0] [--reps N] [--dir DIR]\n"
                   "       [-t N (2)] [--header GGML_BIN] [--whisper-bench PATH]\n"
                   "       mmpipe bench transcribe [--header GGML_BIN] --write-model SIZE DTYPE PATH   (write one random\n"
                   "       model and exit; DTYPE f32, f16, q8_0, ... or hf: an HF folder without tokenizer.json)\n"
                   "  --header: the whisper.cpp file whose header, filters and vocabulary the models copy\n"
                   "            (default: $MMPIPE_FIXTURES or ../shared/fixtures /whisper/for-tests-ggml-tiny.en.bin)\n"
                   "  --whisper-bench: whisper.cpp's whisper-bench, run on the same files with the same threads\n");
            return 0;
        }
        if (!strcmp(a, "--write-model")) {
            if (i + 3 >= argc) {
                fprintf(stderr, "bench transcribe: --write-model SIZE DTYPE PATH\n");
                return 1;
            }
            const wshape *s = find_shape(argv[i + 1]);
            const int hf = !strcmp(argv[i + 2], "hf");
            int dt = hf ? -1 : mp_dtype_from_name(argv[i + 2]);
            if (!s || (dt < 0 && !hf)) {
                fprintf(stderr, "bench transcribe: unknown size '%s' or dtype '%s'\n", argv[i + 1], argv[i + 2]);
                return 1;
            }
            char hp[1024];
            const char *fx = getenv("MMPIPE_FIXTURES");
            snprintf(hp, sizeof hp, "%s/whisper/for-tests-ggml-tiny.en.bin", fx && *fx ? fx : "../shared/fixtures");
            mp_error err;
            if (write_model(hdr ? hdr : hp, s, dt, argv[i + 3], &err)) {
                fprintf(stderr, "bench transcribe: %s\n", err.msg);
                return 1;
            }
            return 0;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "bench transcribe: %s needs a value\n", a);
            return 1;
        }
        const char *v = argv[i + 1];
        if (!strcmp(a, "--dir")) dir = v;
        else if (!strcmp(a, "--models")) models = v;
        else if (!strcmp(a, "--dtypes")) dtypes = v;
        else if (!strcmp(a, "--reps")) reps = atoi(v);
        else if (!strcmp(a, "--whisper-bench")) wb = v;
        else if (!strcmp(a, "--header")) hdr = v;
        else {
            fprintf(stderr, "bench transcribe: unknown option '%s'\n", a);
            return 1;
        }
        i += 2;
    }
    char hp[1024];
    if (!hdr) {
        const char *fx = getenv("MMPIPE_FIXTURES");
        snprintf(hp, sizeof hp, "%s/whisper/for-tests-ggml-tiny.en.bin", fx && *fx ? fx : "../shared/fixtures");
        hdr = hp;
    }
    if (access(hdr, R_OK)) {
        fprintf(stderr, "bench transcribe: %s: the Whisper header file is needed (--header)\n", hdr);
        return 1;
    }
    if (reps < 1) reps = 1;
    mkdir(dir, 0755);
    mp_threadpool *tp = mp_threadpool_create(cc.n_threads);
    mp_exec ex;
    mp_error err;
    if (mp_exec_init(&ex, cc.device, tp, (size_t)128 << 20, &err)) {
        fprintf(stderr, "bench transcribe: %s\n", err.msg);
        mp_threadpool_free(tp);
        return 1;
    }
    const int threads = mp_threadpool_size(tp);
    mp_mel_filters f;
    if (mp_mel_filters_slaney(&f, 16000, 400, 80, &err) == 0) {
        printf("BENCH transcribe mel threads=%d simd=%s audio_s=30 mel_ms=%.2f\n", threads,
               mp_cpu_level_name(mp_cpu_level()), mel_ms(tp, &f, reps));
        mp_mel_filters_free(&f);
    }
    fflush(stdout);
    int failed = 0;
    char ms[256], ds[256];
    snprintf(ms, sizeof ms, "%s", models);
    for (char *mn = strtok(ms, ","); mn; mn = strtok(NULL, ",")) {
        const wshape *s = find_shape(mn);
        if (!s) {
            fprintf(stderr, "bench transcribe: unknown model size '%s'\n", mn);
            failed = 1;
            continue;
        }
        snprintf(ds, sizeof ds, "%s", dtypes);
        char *save = NULL;
        for (char *dn = strtok_r(ds, ",", &save); dn; dn = strtok_r(NULL, ",", &save)) {
            int dt = mp_dtype_from_name(dn);
            char path[1200];
            snprintf(path, sizeof path, "%s/whisper-%s-%s.bin", dir, s->name, dn);
            if (dt < 0 || (access(path, R_OK) && write_model(hdr, s, dt, path, &err))) {
                fprintf(stderr, "bench transcribe: %s: %s\n", path, dt < 0 ? "unknown dtype" : err.msg);
                failed = 1;
                continue;
            }
            res r;
            double gflop;
            if (bench_one(path, &ex, reps, &r, &gflop)) {
                failed = 1;
                continue;
            }
            printf("BENCH transcribe model=%s dtype=%s threads=%d enc_ms=%.1f enc_gflops=%.1f dec_ms_tok=%.3f "
                   "batchd5_ms=%.3f prompt256_ms=%.1f cpu_enc_ms=%.1f cpu_dec_ms_tok=%.3f cpu_batchd5_ms=%.3f "
                   "cpu_prompt256_ms=%.1f file=%s\n",
                   s->name, dn, threads, r.enc, gflop / (r.enc / 1e3), r.dec_tok, r.batchd, r.prompt, r.c_enc,
                   r.c_dec_tok, r.c_batchd, r.c_prompt, path);
            fflush(stdout);
            if (wb) {
                res w;
                if (run_whisper_bench(wb, path, threads, &w)) {
                    fprintf(stderr, "bench transcribe: %s did not print its timings on %s\n", wb, path);
                    continue;
                }
                printf("BENCH transcribe whisper.cpp model=%s dtype=%s threads=%d enc_ms=%.1f dec_ms_tok=%.3f "
                       "batchd5_ms=%.3f prompt256_ms=%.1f ratio_enc=%.2f ratio_dec=%.2f ratio_batchd=%.2f "
                       "ratio_prompt=%.2f\n",
                       s->name, dn, threads, w.enc, w.dec_tok, w.batchd, w.prompt, r.enc / w.enc, r.dec_tok / w.dec_tok,
                       r.batchd / w.batchd, r.prompt / w.prompt);
                fflush(stdout);
            }
        }
    }
    mp_exec_free(&ex);
    mp_threadpool_free(tp);
    return failed;
}
