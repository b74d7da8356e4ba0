/* bench_batch.c — `mmpipe bench batch`: what batching buys the batch application.
 *
 *   decoder   N completion requests through the continuous-batching engine (runtime/engine.h) with
 *             --max-seqs sequences at once vs one sequence at a time: generated tokens/s of each and
 *             their ratio, and how busy the compute stage is (time inside the forward pass / wall)
 *   speech    (with --whisper FILE) N transcriptions of one clip in lock-step groups of --asr-batch vs
 *             one at a time: audio seconds per second of each and their ratio
 *
 * Model: -m (GGUF, HF folder, llama2.c .bin + --tokenizer); default the real TinyStories stories260K from
 * $MMPIPE_FIXTURES/llm. Prints `BENCH batch key=value ...` lines.
 * Not covered yet (see the README): image requests, the vision-encoder cache variant, and the same
 * requests as single-shot commands. */
#include "apps/cli.h"
#include "bench.h"
#include "mmpipe.h"

#include "encoders/whisper.h"
#include "llm/whisper_decode.h"
#include "preprocess/audio.h"
#include "runtime/engine.h"
#include "runtime/textmodel.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct run_acc {
    int64_t done, failed, tokens;
    char error[512]; /* the first failure */
} run_acc;

static void on_done(void *ctx, const mp_gen_result *res) {
    run_acc *a = ctx;
    a->done++;
    if (!res->ok && !a->failed++) snprintf(a->error, sizeof a->error, "%s", res->error);
    a->tokens += res->n_tokens;
}

/* N requests through an engine with max_seqs; wall seconds, tokens and the forward-pass time */
static int run_engine(const mp_textmodel *tm, mp_exec *ex, int n, int max_new, int max_seqs, double *wall,
                      run_acc *acc, mp_engine_stats *st, mp_error *err) {
    static const char *prompts[] = {"Once upon a time", "Lily and Tim", "The little dog", "One day, a boy",
                                    "Sam had a big red ball", "The sun was"};
    mp_engine_params ep = mp_engine_default_params();
    ep.max_seqs = max_seqs;
    mp_engine *e = NULL;
    memset(acc, 0, sizeof *acc);
    if (mp_engine_create(&e, &tm->llm, tm->tok, ex, &ep, on_done, acc, err) < 0) return -1;
    double t0 = now_s();
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        const char *p = prompts[i % 6];
        int32_t ids[64];
        int k = mp_tokenize(tm->tok, p, strlen(p), 1, 1, ids, 64);
        if (k <= 0 || k > 64) {
            mp_errf(err, "cannot tokenize the prompt");
            rc = -1;
            break;
        }
        mp_gen_request r;
        memset(&r, 0, sizeof r);
        r.n = k;
        r.tokens = ids;
        r.sampling = tm->sampling;
        r.sampling.temperature = 0;
        r.max_new = max_new;
        r.ignore_eos = 1; /* every request generates max_new tokens: the same work in both runs */
        rc = mp_engine_submit(e, &r, err);
    }
    while (rc == 0 && mp_engine_pending(e) > 0)
        if (mp_engine_step(e, err) < 0) rc = -1;
    *wall = now_s() - t0;
    mp_engine_get_stats(e, st);
    mp_engine_free(e);
    return rc;
}

static int run_asr(mp_whisper_ctx *c, const mp_audio *a, int n, int group, double *wall, mp_error *err) {
    mp_whisper_params p = mp_whisper_default_params();
    p.beam_size = 1;
    p.temperature_inc = 0; /* no fallback: the same decode work whatever the random weights say */
    p.suppress_nst = 0;
    double t0 = now_s();
    for (int i = 0; i < n; i += group) {
        int k = n - i < group ? n - i : group;
        const float *s[64];
        int64_t ns[64];
        mp_whisper_result r[64];
        int rcs[64];
        mp_error errs[64];
        memset(r, 0, sizeof r);
        for (int j = 0; j < k; j++) s[j] = a->samples, ns[j] = a->n_samples;
        int bad = mp_whisper_transcribe_batch(c, s, ns, k, &p, r, rcs, errs);
        for (int j = 0; j < k; j++)
            if (!rcs[j]) mp_whisper_result_free(&r[j]);
        if (bad) return mp_errf(err, "transcription failed: %s", errs[0].msg);
    }
    *wall = now_s() - t0;
    return 0;
}

int bench_batch(int argc, char **argv) {
    const char *model = NULL, *tok = NULL, *whisper = NULL, *audio = NULL;
    int n = 64, max_new = 64, max_seqs = 16, asr_n = 16, asr_group = 8;
    cli_common cc = {0, MMPIPE_DEVICE_AUTO};
    for (int i = 1; i < argc;) {
        int r = cli_parse_common(&cc, argc, argv, &i);
        if (r < 0) return 2;
        if (r > 0) continue;
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: mmpipe bench batch [-m MODEL [--tokenizer TOK]] [-n N] [--max-tokens T] [--max-seqs S]\n"
                   "                          [--whisper FILE [--audio FILE] [--asr-n N] [--asr-batch G]] [-t THREADS]\n"
                   "  decoder: N completions (default 64, T = 64 tokens each) with S sequences at once (16) vs one\n"
                   "           at a time; model default: $MMPIPE_FIXTURES/llm/stories260K.bin + tok512.bin\n"
                   "  speech:  N transcriptions (16) of --audio (default $MMPIPE_FIXTURES/audio/jfk.wav) in groups\n"
                   "           of G (8) vs one at a time, with a whisper.cpp ggml / HF model\n"
                   "Prints BENCH batch lines.\n");
            return 0;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "mmpipe bench batch: %s needs a value\n", a);
            return 2;
        }
        const char *v = argv[i + 1];
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--tokenizer")) tok = v;
        else if (!strcmp(a, "--whisper")) whisper = v;
        else if (!strcmp(a, "--audio")) audio = v;
        else if (!strcmp(a, "-n") && atoi(v) > 0) n = atoi(v);
        else if (!strcmp(a, "--max-tokens") && atoi(v) > 0) max_new = atoi(v);
        else if (!strcmp(a, "--max-seqs") && atoi(v) > 0) max_seqs = atoi(v);
        else if (!strcmp(a, "--asr-n") && atoi(v) > 0) asr_n = atoi(v);
        else if (!strcmp(a, "--asr-batch") && atoi(v) > 0 && atoi(v) <= 64) asr_group = atoi(v);
        else {
            fprintf(stderr, "mmpipe bench batch: unknown option or bad value: %s %s\n", a, v);
            return 2;
        }
        i += 2;
    }
    const char *fx = getenv("MMPIPE_FIXTURES");
    char mpath[4096], tpath[4096], apath[4096];
    if (!model) {
        snprintf(mpath, sizeof mpath, "%s/llm/stories260K.bin", fx ? fx : "../shared/fixtures");
        snprintf(tpath, sizeof tpath, "%s/llm/tok512.bin", fx ? fx : "../shared/fixtures");
        model = mpath;
        if (!tok) tok = tpath;
    }
    if (!audio) {
        snprintf(apath, sizeof apath, "%s/audio/jfk.wav", fx ? fx : "../shared/fixtures");
        audio = apath;
    }
    mp_error err;
    mp_threadpool *tp = mp_threadpool_create(cc.n_threads);
    mp_exec ex;
    if (mp_exec_init(&ex, cc.device, tp, (size_t)64 << 20, &err) < 0) {
        fprintf(stderr, "mmpipe bench batch: %s\n", err.msg);
        mp_threadpool_free(tp);
        return 2;
    }
    int rc = 0;
    mp_textmodel tm;
    if (mp_textmodel_load(&tm, model, tok, &ex, &err) < 0) {
        fprintf(stderr, "mmpipe bench batch: %s\n", err.msg);
        rc = 2;
    } else {
        double w1, wn;
        run_acc a1, an;
        mp_engine_stats s1, sn;
        if (run_engine(&tm, &ex, n, max_new, max_seqs, &wn, &an, &sn, &err) < 0 ||
            run_engine(&tm, &ex, n, max_new, 1, &w1, &a1, &s1, &err) < 0) {
            fprintf(stderr, "mmpipe bench batch: %s\n", err.msg);
            rc = 2;
        } else {
            printf("BENCH batch stage=decoder model=%s requests=%d max_new=%d threads=%d max_seqs=%d wall_s=%.3f tok_s=%.1f "
                   "busy=%.3f steps=%lld max_running=%d single_wall_s=%.3f single_tok_s=%.1f single_busy=%.3f speedup=%.2f "
                   "failed=%lld\n",
                   model, n, max_new, mp_threadpool_size(tp), max_seqs, wn, an.tokens / wn, sn.t_forward / wn,
                   (long long)sn.steps, sn.max_running, w1, a1.tokens / w1, s1.t_forward / w1,
                   (an.tokens / wn) / (a1.tokens / w1), (long long)(an.failed + a1.failed));
        }
        if (rc == 0 && (an.failed || a1.failed)) {
            fprintf(stderr, "mmpipe bench batch: requests failed: %s\n", an.failed ? an.error : a1.error);
            rc = 2;
        }
        mp_textmodel_free(&tm, &ex);
    }
    if (rc == 0 && whisper) {
        mp_whisper wm;
        mp_whisper_ctx wc;
        mp_audio a;
        memset(&a, 0, sizeof a);
        if (mp_whisper_load(&wm, whisper, &ex, &err) < 0) {
            fprintf(stderr, "mmpipe bench batch: %s\n", err.msg);
            rc = 2;
        } else {
            double w1 = 0, wg = 0;
            int ctx_ok = mp_whisper_ctx_init(&wc, &wm, &ex, &err) == 0;
            if (!ctx_ok || mp_audio_load(audio, MP_AUDIO_RATE, &a, &err) < 0 ||
                run_asr(&wc, &a, asr_n, asr_group, &wg, &err) < 0 || run_asr(&wc, &a, asr_n, 1, &w1, &err) < 0) {
                fprintf(stderr, "mmpipe bench batch: %s\n", err.msg);
                rc = 2;
            } else {
                double secs = asr_n * (double)a.n_samples / MP_AUDIO_RATE;
                printf("BENCH batch stage=speech model=%s audio=%s requests=%d group=%d wall_s=%.3f audio_s_per_s=%.2f "
                       "single_wall_s=%.3f single_audio_s_per_s=%.2f speedup=%.2f\n",
                       whisper, audio, asr_n, asr_group, wg, secs / wg, w1, secs / w1, w1 / wg);
            }
            mp_audio_free(&a);
            if (ctx_ok) mp_whisper_ctx_free(&wc);
            mp_whisper_free(&wm, &ex);
        }
    }
    mp_exec_free(&ex);
    mp_threadpool_free(tp);
    return rc;
}
