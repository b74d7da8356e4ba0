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
 *
 *   --mixed   the batch application itself (`mmpipe batch`, in this process) on N mixed requests: N/2
 *             image chats (distinct pictures made from the fixture photos) through a SmolVLM-256M-shaped
 *             random model and N/2 transcriptions (distinct clips made from jfk.wav) through a whisper
 *             base-shaped random model, both written once into --dir:
 *               mixed    wall time vs the compute stages' own time (vision tower + decoder steps + Whisper
 *                        groups: how busy the compute stage is), decoder tokens/s
 *               single   the same with one sequence / one transcription at a time (--max-seqs 1
 *                        --asr-batch 1): decoder tokens/s ratio
 *               cache    N image chats about N/4 pictures, each asked 4 times: images encoded vs answered
 *                        from the vision cache, vision seconds per request vs the mixed run
 *               shots    the same N requests as single-shot `mmpipe caption` / `mmpipe transcribe` commands
 *                        one after another (--no-shots skips it): wall time ratio to the batch run */
#include "apps/cli.h"
#include "bench.h"
#include "mmpipe.h"

#include "encoders/whisper.h"
#include "llm/whisper_decode.h"
#include "preprocess/audio.h"
#include "preprocess/image.h"
#include "runtime/engine.h"
#include "runtime/textmodel.h"

#include <cjson/cJSON.h>
#include <png.h>
#include <sndfile.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

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

/* ---------------------------------------------------------------- --mixed: the batch application */

static int write_png(const char *path, const mp_image *img, int shift) {
    png_image pi;
    memset(&pi, 0, sizeof pi);
    pi.version = PNG_IMAGE_VERSION;
    pi.width = (png_uint_32)img->w;
    pi.height = (png_uint_32)img->h;
    pi.format = PNG_FORMAT_RGB;
    size_t n = (size_t)img->w * img->h * 3;
    unsigned char *px = malloc(n);
    if (!px) return -1;
    for (size_t i = 0; i < n; i++) { /* a brightness shift: another picture of the same size */
        int v = img->data[i] + shift;
        px[i] = (unsigned char)(v > 255 ? 255 : v);
    }
    int ok = png_image_write_to_file(&pi, path, 0, px, 0, NULL);
    free(px);
    return ok ? 0 : -1;
}

static int write_wav(const char *path, const mp_audio *a, float gain) {
    SF_INFO info;
    memset(&info, 0, sizeof info);
    info.samplerate = a->sample_rate;
    info.channels = 1;
    info.format = SF_FORMAT_WAV | SF_FORMAT_PCM_16;
    SNDFILE *f = sf_open(path, SFM_WRITE, &info);
    if (!f) return -1;
    float *buf = malloc(sizeof(float) * (size_t)a->n_samples);
    if (!buf) {
        sf_close(f);
        return -1;
    }
    for (int64_t i = 0; i < a->n_samples; i++) buf[i] = a->samples[i] * gain;
    sf_count_t w = sf_write_float(f, buf, a->n_samples);
    free(buf);
    return sf_close(f) == 0 && w == a->n_samples ? 0 : -1;
}

typedef struct bstats {
    double wall, busy, vision, decoder, asr;
    double gen_tokens, ok, errors, media_encoded, media_cached, audio_s;
} bstats;

static double jnum(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

/* `mmpipe batch ARGS -o OUT --stats STATS REQUESTS`, in this process */
static int run_batch(const char *dir, const char *tag, const char *requests, const char **args, int n_args, bstats *st,
                     mp_error *err) {
    char out[4200], stats[4200];
    snprintf(out, sizeof out, "%s/%s.out.jsonl", dir, tag);
    snprintf(stats, sizeof stats, "%s/%s.stats.json", dir, tag);
    unlink(out);
    unlink(stats);
    const char *argv[64];
    int n = 0;
    argv[n++] = "batch";
    for (int i = 0; i < n_args && n < 56; i++) argv[n++] = args[i];
    argv[n++] = "-o", argv[n++] = out, argv[n++] = "--stats", argv[n++] = stats, argv[n++] = requests;
    argv[n] = NULL;
    fprintf(stderr, "bench batch: %s: mmpipe", tag);
    for (int i = 0; i < n; i++) fprintf(stderr, " %s", argv[i]);
    fprintf(stderr, "\n");
    int rc = cmd_batch(n, (char **)argv);
    FILE *f = fopen(stats, "rb");
    char buf[4096];
    size_t k = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f) fclose(f);
    buf[k] = 0;
    cJSON *j = cJSON_Parse(buf);
    if (!j) return mp_errf(err, "%s: mmpipe batch exited %d without stats", tag, rc);
    st->wall = jnum(j, "wall_s"), st->busy = jnum(j, "busy_s"), st->vision = jnum(j, "vision_s");
    st->decoder = jnum(j, "decoder_s"), st->asr = jnum(j, "asr_s"), st->gen_tokens = jnum(j, "gen_tokens");
    st->ok = jnum(j, "ok"), st->errors = jnum(j, "errors"), st->media_encoded = jnum(j, "media_encoded");
    st->media_cached = jnum(j, "media_cached"), st->audio_s = jnum(j, "audio_s");
    cJSON_Delete(j);
    if (rc != 0 || st->errors > 0) return mp_errf(err, "%s: mmpipe batch exited %d, %.0f error record(s) in %s", tag, rc, st->errors, out);
    return 0;
}

/* one single-shot command (this executable), stdout to /dev/null; 0 when it exited 0 */
static int run_cmd(const char *const *argv) {
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        FILE *o = freopen("/dev/null", "w", stdout);
        FILE *e = freopen("/dev/null", "w", stderr);
        (void)o, (void)e;
        execv("/proc/self/exe", (char *const *)argv);
        _exit(127);
    }
    int status;
    if (waitpid(pid, &status, 0) < 0) return -1;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static int bench_mixed(const char *dir, const char *vlm, const char *whisper, int n, int max_new, int split, int shots,
                       int threads) {
    char fxroot[4096], path[4200], vlm_buf[4200], wbuf[4200], req_mixed[4200], req_cache[4200], tbuf[16], mbuf[16];
    const char *fx = getenv("MMPIPE_FIXTURES");
    snprintf(fxroot, sizeof fxroot, "%s", fx && *fx ? fx : "../shared/fixtures");
    mp_error err = {{0}};
    mkdir(dir, 0755);
    if (!vlm) {
        if (bench_caption_model("/tmp/mmpipe-bench-caption", vlm_buf, sizeof vlm_buf, &err) < 0) goto fail;
        vlm = vlm_buf;
    }
    if (!whisper) {
        snprintf(wbuf, sizeof wbuf, "%s/whisper-base-f16.bin", dir);
        const char *wargv[] = {"transcribe", "--write-model", "base", "f16", wbuf, NULL};
        if (access(wbuf, R_OK) != 0 && bench_transcribe(5, (char **)wargv) != 0) {
            mp_errf(&err, "cannot write the random whisper base model %s", wbuf);
            goto fail;
        }
        whisper = wbuf;
    }
    /* inputs: distinct pictures (fixture photos, brightness-shifted) and distinct clips (jfk.wav, scaled) */
    static const char *const photos[] = {"chelsea.jpg", "rocket.jpg", "coffee.png", "hopper.jpg", "testorig.jpg",
                                         "chelsea.png", "testimgp.jpg", "pil_sample_cmyk.jpg"};
    const int n_img = n - n / 2, n_aud = n / 2;
    mp_audio jfk;
    snprintf(path, sizeof path, "%s/audio/jfk.wav", fxroot);
    if (mp_audio_load(path, MP_AUDIO_RATE, &jfk, &err) < 0) goto fail;
    for (int i = 0; i < n_img; i++) {
        mp_image img;
        snprintf(path, sizeof path, "%s/images/%s", fxroot, photos[i % 8]);
        if (mp_image_load(path, NULL, &img, &err) < 0) {
            mp_audio_free(&jfk);
            goto fail;
        }
        snprintf(path, sizeof path, "%s/img%03d.png", dir, i);
        int bad = write_png(path, &img, 3 * (i / 8));
        mp_image_free(&img);
        if (bad) {
            mp_audio_free(&jfk);
            mp_errf(&err, "%s: cannot write", path);
            goto fail;
        }
    }
    for (int i = 0; i < n_aud; i++) {
        snprintf(path, sizeof path, "%s/aud%03d.wav", dir, i);
        if (write_wav(path, &jfk, 1.0f - 0.01f * (float)i) < 0) {
            mp_audio_free(&jfk);
            mp_errf(&err, "%s: cannot write", path);
            goto fail;
        }
    }
    mp_audio_free(&jfk);
    static const char *const questions[] = {"Can you describe this image?", "What is in the image?",
                                            "What colours do you see?", "Write a short caption."};
    snprintf(req_mixed, sizeof req_mixed, "%s/mixed.jsonl", dir);
    snprintf(req_cache, sizeof req_cache, "%s/cache.jsonl", dir);
    FILE *fm = fopen(req_mixed, "w"), *fc = fopen(req_cache, "w");
    if (!fm || !fc) {
        if (fm) fclose(fm);
        if (fc) fclose(fc);
        mp_errf(&err, "%s: cannot write the requests", dir);
        goto fail;
    }
    for (int i = 0, a = 0, m = 0; i < n; i++) { /* interleaved: image, audio, image, audio, ... */
        if ((i % 2 == 0 && m < n_img) || a == n_aud) {
            fprintf(fm, "{\"custom_id\": \"img-%d\", \"method\": \"POST\", \"url\": \"/v1/chat/completions\", \"body\": "
                        "{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"image_url\", \"image_url\": "
                        "{\"url\": \"img%03d.png\"}}, {\"type\": \"text\", \"text\": \"%s\"}]}], \"max_tokens\": %d, "
                        "\"temperature\": 0}}\n", m, m, questions[0], max_new);
            m++;
        } else {
            fprintf(fm, "{\"custom_id\": \"aud-%d\", \"method\": \"POST\", \"url\": \"/v1/audio/transcriptions\", "
                        "\"body\": {\"file\": \"aud%03d.wav\", \"language\": \"en\", \"temperature\": 0}}\n", a, a);
            a++;
        }
    }
    for (int i = 0; i < n; i++) /* N/4 pictures, each asked 4 questions, the questions spread over the file */
        fprintf(fc, "{\"custom_id\": \"c-%d\", \"method\": \"POST\", \"url\": \"/v1/chat/completions\", \"body\": "
                    "{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"image_url\", \"image_url\": "
                    "{\"url\": \"img%03d.png\"}}, {\"type\": \"text\", \"text\": \"%s\"}]}], \"max_tokens\": %d, "
                    "\"temperature\": 0}}\n", i, i % (n / 4 > 0 ? n / 4 : 1), questions[i / (n / 4 > 0 ? n / 4 : 1) % 4], max_new);
    int werr = fclose(fm) != 0;
    werr |= fclose(fc) != 0;
    if (werr) {
        mp_errf(&err, "%s: cannot write the requests", dir);
        goto fail;
    }
    snprintf(tbuf, sizeof tbuf, "%d", threads);
    snprintf(mbuf, sizeof mbuf, "%d", max_new);
    const char *sp = split ? "1" : "0";
    const char *common[] = {"-m", vlm, "-m", whisper, "-t", tbuf, "--image-splitting", sp, "-bs", "1", "-nf"};
    const int nc = (int)(sizeof common / sizeof *common);
    const char *one[32];
    for (int i = 0; i < nc; i++) one[i] = common[i];
    one[nc] = "--max-seqs", one[nc + 1] = "1", one[nc + 2] = "--asr-batch", one[nc + 3] = "1";
    bstats mx, s1, ca;
    memset(&s1, 0, sizeof s1);
    if (run_batch(dir, "mixed", req_mixed, common, nc, &mx, &err) < 0) goto fail;
    printf("BENCH batch stage=mixed requests=%d images=%d audio=%d max_tokens=%d split=%d threads=%d wall_s=%.2f busy_s=%.2f "
           "busy=%.3f vision_s=%.2f decoder_s=%.2f asr_s=%.2f gen_tokens=%.0f decoder_tok_s=%.1f req_s=%.3f audio_s=%.1f\n",
           n, n_img, n_aud, max_new, split, threads, mx.wall, mx.busy, mx.busy / mx.wall, mx.vision, mx.decoder, mx.asr,
           mx.gen_tokens, mx.gen_tokens / (mx.decoder > 0 ? mx.decoder : 1), n / mx.wall, mx.audio_s);
    fflush(stdout);
    if (run_batch(dir, "single", req_mixed, one, nc + 4, &s1, &err) < 0) goto fail;
    double tok_b = mx.gen_tokens / (mx.decoder > 0 ? mx.decoder : 1), tok_1 = s1.gen_tokens / (s1.decoder > 0 ? s1.decoder : 1);
    printf("BENCH batch stage=one_at_a_time requests=%d wall_s=%.2f busy=%.3f decoder_s=%.2f asr_s=%.2f gen_tokens=%.0f "
           "decoder_tok_s=%.1f batched_decoder_tok_s=%.1f decoder_speedup=%.2f wall_speedup=%.2f asr_speedup=%.2f\n",
           n, s1.wall, s1.busy / s1.wall, s1.decoder, s1.asr, s1.gen_tokens, tok_1, tok_b, tok_b / tok_1, s1.wall / mx.wall,
           s1.asr / (mx.asr > 0 ? mx.asr : 1));
    fflush(stdout);
    if (run_batch(dir, "cache", req_cache, common, nc, &ca, &err) < 0) goto fail;
    printf("BENCH batch stage=cache requests=%d images=%d encoded=%.0f cached=%.0f wall_s=%.2f busy=%.3f vision_s=%.2f "
           "vision_ms_per_request=%.1f mixed_vision_ms_per_request=%.1f vision_saving=%.2f\n",
           n, n / 4, ca.media_encoded, ca.media_cached, ca.wall, ca.busy / ca.wall, ca.vision, 1e3 * ca.vision / n,
           1e3 * mx.vision / n_img, (mx.vision / n_img) / (ca.vision / n > 0 ? ca.vision / n : 1e-9));
    fflush(stdout);
    if (shots) { /* the same requests as single-shot commands, one after another */
        double t0 = now_s();
        int failed = 0;
        char ip[4200], ap[4200];
        for (int i = 0, a = 0, m = 0; i < n; i++) {
            if ((i % 2 == 0 && m < n_img) || a == n_aud) {
                snprintf(ip, sizeof ip, "%s/img%03d.png", dir, m++);
                const char *av[] = {"mmpipe", "caption", "-m", vlm, "-t", tbuf, split ? "--split" : "--no-split", "-n", mbuf,
                                    "-p", questions[0], ip, NULL};
                failed += run_cmd(av) != 0;
            } else {
                snprintf(ap, sizeof ap, "%s/aud%03d.wav", dir, a++);
                const char *av[] = {"mmpipe", "transcribe", "-m", whisper, "-t", tbuf, "-l", "en", "-bs", "1", "-nf", ap, NULL};
                failed += run_cmd(av) != 0;
            }
        }
        double w = now_s() - t0;
        printf("BENCH batch stage=single_shot requests=%d failed=%d wall_s=%.2f batch_wall_s=%.2f batch_speedup=%.2f\n", n,
               failed, w, mx.wall, w / mx.wall);
    }
    return 0;
fail:
    fprintf(stderr, "mmpipe bench batch: %s\n", err.msg);
    return 2;
}

int bench_batch(int argc, char **argv) {
    const char *model = NULL, *tok = NULL, *whisper = NULL, *audio = NULL, *dir = "/tmp/mmpipe-bench-batch";
    int n = 64, max_new = 64, max_seqs = 16, asr_n = 16, asr_group = 8, mixed = 0, shots = 1, split = 0, n_set = 0,
        max_new_set = 0;
    cli_common cc = {0, MMPIPE_DEVICE_AUTO};
    for (int i = 1; i < argc;) {
        int r = cli_parse_common(&cc, argc, argv, &i);
        if (r < 0) return 2;
        if (r > 0) continue;
        const char *a = argv[i];
        if (!strcmp(a, "--mixed")) { mixed = 1; i++; continue; }
        if (!strcmp(a, "--no-shots")) { shots = 0; i++; continue; }
        if (!strcmp(a, "--split")) { split = 1; i++; continue; }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: mmpipe bench batch [-m MODEL [--tokenizer TOK]] [-n N] [--max-tokens T] [--max-seqs S]\n"
                   "                          [--whisper FILE [--audio FILE] [--asr-n N] [--asr-batch G]] [-t THREADS]\n"
                   "  decoder: N completions (default 64, T = 64 tokens each) with S sequences at once (16) vs one\n"
                   "           at a time; model default: $MMPIPE_FIXTURES/llm/stories260K.bin + tok512.bin\n"
                   "  speech:  N transcriptions (16) of --audio (default $MMPIPE_FIXTURES/audio/jfk.wav) in groups\n"
                   "           of G (8) vs one at a time, with a whisper.cpp ggml / HF model\n"
                   "usage: mmpipe bench batch --mixed [-m SMOLVLM] [--whisper FILE] [-n N] [--max-tokens T] [--dir DIR]\n"
                   "                          [--split] [--no-shots] [-t THREADS]\n"
                   "  mmpipe batch itself on N (64) mixed requests: N/2 image chats (SmolVLM-256M-shaped random model,\n"
                   "  default written into /tmp/mmpipe-bench-caption; --split: image splitting) and N/2 transcriptions\n"
                   "  (whisper base-shaped random f16, default written into DIR, /tmp/mmpipe-bench-batch), T (32) tokens:\n"
                   "  compute busy / wall, one sequence at a time, each image asked 4 times (vision cache), and the\n"
                   "  same requests as single-shot commands (--no-shots skips that)\n"
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
        else if (!strcmp(a, "-n") && atoi(v) > 0) n = atoi(v), n_set = 1;
        else if (!strcmp(a, "--max-tokens") && atoi(v) > 0) max_new = atoi(v), max_new_set = 1;
        else if (!strcmp(a, "--dir")) dir = v;
        else if (!strcmp(a, "--max-seqs") && atoi(v) > 0) max_seqs = atoi(v);
        else if (!strcmp(a, "--asr-n") && atoi(v) > 0) asr_n = atoi(v);
        else if (!strcmp(a, "--asr-batch") && atoi(v) > 0 && atoi(v) <= 64) asr_group = atoi(v);
        else {
            fprintf(stderr, "mmpipe bench batch: unknown option or bad value: %s %s\n", a, v);
            return 2;
        }
        i += 2;
    }
    if (mixed) {
        mp_threadpool *tq = mp_threadpool_create(cc.n_threads); /* the thread count -t resolves to */
        int threads = mp_threadpool_size(tq);
        mp_threadpool_free(tq);
        return bench_mixed(dir, model, whisper, n_set ? n : 64, max_new_set ? max_new : 32, split, shots, threads);
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
