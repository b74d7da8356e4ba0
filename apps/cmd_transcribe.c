/* cmd_transcribe.c — `mmpipe transcribe -m MODEL [options] AUDIO...`: Whisper speech to text.
 *
 * Flag names follow whisper-cli (examples/cli/cli.cpp) wherever it has one, so scripts carry over. The
 * decoding is openai/whisper's (llm/whisper_decode.h); differences from whisper-cli are noted in usage().
 * Several files are transcribed together (their 30 s windows share encoder and decoder batches); a file
 * that fails is reported on stderr and the others go on; the exit code is 1 if any failed. */
#include "cli.h"
#include "mmpipe.h"
#include "whisper_out.h"

#include "encoders/silero.h"
#include "encoders/whisper.h"
#include "kernels/ops.h"
#include "llm/whisper_decode.h"
#include "models/hub.h"
#include "preprocess/audio.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static void usage(void) {
    fprintf(stderr,
            "usage: mmpipe transcribe -m MODEL [options] AUDIO...   (AUDIO '-' reads standard input)\n"
            "  -m,   --model MODEL          whisper.cpp ggml .bin, HF folder (config.json + safetensors +\n"
            "                               tokenizer.json) or a hub id ORG/NAME (openai/whisper-tiny)\n"
            "  -f,   --file FILE            input file (or give files as arguments)\n"
            "  -t,   --threads N            threads (default: physical cores)\n"
            "        --device cpu|cuda|auto\n"
            "  -l,   --language LANG        spoken language ('auto' detects; default en)\n"
            "  -tr,  --translate            translate to English\n"
            "  -bs,  --beam-size N          beam size (5); 1 = greedy\n"
            "  -bo,  --best-of N            candidates sampled at temperature > 0 (5)\n"
            "  -tp,  --temperature F        first temperature (0)\n"
            "  -tpi, --temperature-inc F    temperature step of the fallback (0.2)\n"
            "  -nf,  --no-fallback          no temperature fallback\n"
            "  -crt, --compression-ratio-thold F  fallback when the gzip ratio is above (2.4)\n"
            "  -lpt, --logprob-thold F      fallback when the average log probability is below (-1)\n"
            "  -nth, --no-speech-thold F    skip a window whose no-speech probability is above (0.6)\n"
            "  -et,  --entropy-thold F      accepted for whisper-cli scripts; the fallback uses -crt instead\n"
            "  -mc,  --max-context N        previous-text tokens used as prompt (0: none)\n"
            "        --prompt TEXT          initial prompt\n"
            "  -nt,  --no-timestamps        decode without timestamps\n"
            "  -sns, --suppress-nst         suppress non-speech tokens (openai's default, off in whisper-cli)\n"
            "  -wts, --word-timestamps      word-level timestamps (cross-attention DTW) in the JSON output\n"
            "  -dtw  PRESET                 alignment heads: tiny.en, tiny, base.en, ..., large.v3.turbo\n"
            "  -ot,  --offset-t MS          start at this offset\n"
            "  -d,   --duration MS          transcribe this much audio\n"
            "  -otxt -ovtt -osrt -ocsv -olrc -oj (-ojf)  write FILE.txt / .vtt / .srt / .csv / .lrc / .json\n"
            "  -of,  --output-file NAME     output name without extension (once per input; '-' = stdout)\n"
            "        --output-dir DIR       folder for the output files\n"
            "  -np,  --no-prints            only the results\n"
            "        --vad                  transcribe only the speech Silero VAD finds\n"
            "  -vm,  --vad-model FILE       Silero VAD ggml model\n"
            "  -vt, -vspd, -vsd, -vmsd, -vp, -vo   VAD threshold, min speech ms, min silence ms, max speech s,\n"
            "                               speech pad ms, samples overlap s (whisper-cli's)\n");
}

typedef struct opts {
    const char *model, *language, *dtw, *out_dir, *vad_model;
    const char **files, **outs;
    int n_files, n_outs;
    int otxt, ovtt, osrt, ocsv, olrc, ojson, no_prints, vad;
    int offset_ms, duration_ms;
    mp_vad_params vp;
    mp_whisper_params p;
} opts;

static int num(const char *flag, const char *v, double lo, double hi, double *out) {
    char *end;
    double d = v ? strtod(v, &end) : 0;
    if (!v || *end || end == v || !(d >= lo && d <= hi)) {
        fprintf(stderr, "mmpipe transcribe: %s needs a number in [%g, %g] (got '%s')\n", flag, lo, hi, v ? v : "");
        return -1;
    }
    *out = d;
    return 0;
}

static int flag_is(const char *a, const char *x, const char *y) { return !strcmp(a, x) || (y && !strcmp(a, y)); }

/* 0 ok, 1 help shown, -1 error */
static int parse(int argc, char **argv, opts *o, cli_common *cc) {
    for (int i = 1; i < argc;) {
        const char *a = argv[i];
        int c = cli_parse_common(cc, argc, argv, &i);
        if (c < 0) return -1;
        if (c > 0) continue;
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        double d;
#define IS(x, y) flag_is(a, x, y)
#define NUM(lo, hi) do { if (num(a, v, lo, hi, &d)) return -1; i += 2; } while (0)
#define STR(dst) do { if (!v) { fprintf(stderr, "mmpipe transcribe: %s needs a value\n", a); return -1; } dst = v; i += 2; } while (0)
        if (IS("-h", "--help")) {
            usage();
            return 1;
        } else if (IS("-m", "--model")) STR(o->model);
        else if (IS("-f", "--file")) STR(o->files[o->n_files++]);
        else if (IS("-l", "--language")) STR(o->language);
        else if (IS("-tr", "--translate")) o->p.translate = 1, i++;
        else if (IS("-bs", "--beam-size")) { NUM(1, 256); o->p.beam_size = (int)d; }
        else if (IS("-bo", "--best-of")) { NUM(1, 256); o->p.best_of = (int)d; }
        else if (IS("-tp", "--temperature")) { NUM(0, 10); o->p.temperature = (float)d; }
        else if (IS("-tpi", "--temperature-inc")) { NUM(0, 10); o->p.temperature_inc = (float)d; }
        else if (IS("-nf", "--no-fallback")) o->p.temperature_inc = 0, i++;
        else if (IS("-crt", "--compression-ratio-thold")) { NUM(0, 1e9); o->p.compression_ratio_thold = (float)d; }
        else if (IS("-lpt", "--logprob-thold")) { NUM(-1e9, 1e9); o->p.logprob_thold = (float)d; }
        else if (IS("-nth", "--no-speech-thold")) { NUM(0, 1e9); o->p.no_speech_thold = (float)d; }
        else if (IS("-et", "--entropy-thold")) { NUM(-1e9, 1e9); }
        else if (IS("-mc", "--max-context")) { NUM(-1, 1e6); o->p.max_context = (int)d; }
        else if (IS("--prompt", NULL)) STR(o->p.prompt);
        else if (IS("-nt", "--no-timestamps")) o->p.no_timestamps = 1, i++;
        else if (IS("-sns", "--suppress-nst")) o->p.suppress_nst = 1, i++;
        else if (IS("-wts", "--word-timestamps")) o->p.word_timestamps = 1, i++;
        else if (IS("-dtw", "--dtw")) STR(o->dtw);
        else if (IS("-ot", "--offset-t")) { NUM(0, 1e12); o->offset_ms = (int)d; }
        else if (IS("-d", "--duration")) { NUM(0, 1e12); o->duration_ms = (int)d; }
        else if (IS("-otxt", "--output-txt")) o->otxt = 1, i++;
        else if (IS("-ovtt", "--output-vtt")) o->ovtt = 1, i++;
        else if (IS("-osrt", "--output-srt")) o->osrt = 1, i++;
        else if (IS("-ocsv", "--output-csv")) o->ocsv = 1, i++;
        else if (IS("-olrc", "--output-lrc")) o->olrc = 1, i++;
        else if (IS("-oj", "--output-json")) o->ojson = 1, i++;
        else if (IS("-ojf", "--output-json-full")) o->ojson = 1, o->p.word_timestamps = 1, i++;
        else if (IS("-of", "--output-file")) STR(o->outs[o->n_outs++]);
        else if (IS("--output-dir", NULL)) STR(o->out_dir);
        else if (IS("-np", "--no-prints")) o->no_prints = 1, i++;
        else if (IS("--vad", NULL)) o->vad = 1, i++;
        else if (IS("-vm", "--vad-model")) STR(o->vad_model);
        else if (IS("-vt", "--vad-threshold")) { NUM(0, 1); o->vp.threshold = (float)d; }
        else if (IS("-vspd", "--vad-min-speech-duration-ms")) { NUM(0, 1e7); o->vp.min_speech_ms = (int)d; }
        else if (IS("-vsd", "--vad-min-silence-duration-ms")) { NUM(0, 1e7); o->vp.min_silence_ms = (int)d; }
        else if (IS("-vmsd", "--vad-max-speech-duration-s")) { NUM(0, FLT_MAX); o->vp.max_speech_s = (float)d; }
        else if (IS("-vp", "--vad-speech-pad-ms")) { NUM(0, 1e7); o->vp.speech_pad_ms = (int)d; }
        else if (IS("-vo", "--vad-samples-overlap")) { NUM(0, 10); o->vp.samples_overlap = (float)d; }
        else if (IS("-ml", "--max-len")) {
            fprintf(stderr, "mmpipe transcribe: -ml (segment length limit) is not supported\n");
            return -1;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "mmpipe transcribe: unknown option '%s'\n", a);
            usage();
            return -1;
        } else {
            o->files[o->n_files++] = a, i++;
        }
#undef IS
#undef NUM
#undef STR
    }
    return 0;
}

/* The audio of one input, after -ot/-d and VAD; map holds the VAD time mapping. */
typedef struct input {
    const char *path;
    float *samples;
    int64_t n, n_orig;
    int64_t offset_cs;
    mp_whisper_vad_map map;
    int failed;
    mp_error err;
} input;

static int load_input(input *in, const opts *o, const mp_silero *vad, mp_exec *ex) {
    mp_audio a;
    if (mp_audio_load(in->path, MP_AUDIO_RATE, &a, &in->err)) return -1;
    int64_t b = (int64_t)o->offset_ms * 16, e = a.n_samples;
    if (o->duration_ms > 0 && b + (int64_t)o->duration_ms * 16 < e) e = b + (int64_t)o->duration_ms * 16;
    if (b > e) b = e;
    in->offset_cs = b / 160;
    in->n_orig = e - b;
    in->samples = malloc(sizeof(float) * (size_t)(in->n_orig > 0 ? in->n_orig : 1));
    if (!in->samples) {
        mp_audio_free(&a);
        return mp_errf(&in->err, "%s: out of memory", in->path);
    }
    memcpy(in->samples, a.samples + b, sizeof(float) * (size_t)in->n_orig);
    in->n = in->n_orig;
    mp_audio_free(&a);
    if (!vad) return 0;
    float *probs = NULL;
    int64_t np = 0;
    mp_vad_segment *segs = NULL;
    int ns = 0;
    if (mp_silero_probs(vad, ex, in->samples, in->n, &probs, &np, &in->err) ||
        mp_vad_segments(probs, np, vad->n_window, MP_AUDIO_RATE, &o->vp, &segs, &ns, &in->err)) {
        free(probs);
        return -1;
    }
    free(probs);
    int64_t *t0 = malloc(sizeof(int64_t) * (size_t)(ns + 1)), *t1 = malloc(sizeof(int64_t) * (size_t)(ns + 1));
    float *f = NULL;
    int64_t nf = 0;
    int rc = -1;
    if (t0 && t1) {
        for (int i = 0; i < ns; i++) t0[i] = segs[i].t0, t1[i] = segs[i].t1;
        rc = mp_whisper_vad_filter(in->samples, in->n, t0, t1, ns, o->vp.samples_overlap, &f, &nf, &in->map, &in->err);
    } else {
        mp_errf(&in->err, "%s: out of memory", in->path);
    }
    free(t0);
    free(t1);
    free(segs);
    if (rc) return -1;
    free(in->samples);
    in->samples = f;
    in->n = nf;
    return 0;
}

static void shift_times(mp_whisper_result *r, int64_t cs) {
    if (!cs) return;
    for (int s = 0; s < r->n_segs; s++) {
        mp_whisper_segment *sg = &r->segs[s];
        sg->t0 += cs;
        sg->t1 += cs;
        sg->start += cs / 100.0;
        sg->end += cs / 100.0;
        for (int w = 0; w < sg->n_words; w++) sg->words[w].start += cs / 100.0, sg->words[w].end += cs / 100.0;
    }
}

/* Output files of one input. Returns -1 when one could not be written. */
static int write_outputs(const opts *o, const input *in, int idx, const mp_whisper_result *r, const whisper_out_info *info) {
    const char *base = idx < o->n_outs ? o->outs[idx] : in->path;
    const int to_stdout = !strcmp(base, "-");
    char stem[2048];
    if (o->out_dir && !to_stdout) {
        const char *slash = strrchr(base, '/');
        snprintf(stem, sizeof stem, "%s/%s", o->out_dir, slash ? slash + 1 : base);
    } else {
        snprintf(stem, sizeof stem, "%s", base);
    }
    struct { int on; const char *ext; } kinds[] = {{o->otxt, ".txt"}, {o->ovtt, ".vtt"}, {o->osrt, ".srt"},
                                                   {o->ocsv, ".csv"}, {o->ojson, ".json"}, {o->olrc, ".lrc"}};
    int rc = 0, used_stdout = 0;
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        if (!kinds[k].on) continue;
        FILE *f;
        char path[2100];
        if (to_stdout) {
            if (used_stdout) {
                fprintf(stderr, "mmpipe transcribe: not appending several formats to stdout\n");
                continue;
            }
            used_stdout = 1;
            f = stdout;
        } else {
            snprintf(path, sizeof path, "%s%s", stem, kinds[k].ext);
            f = fopen(path, "w");
            if (!f) {
                fprintf(stderr, "mmpipe transcribe: %s: cannot write (%s)\n", path, strerror(errno));
                rc = -1;
                continue;
            }
            if (!o->no_prints) fprintf(stderr, "mmpipe transcribe: saving output to '%s'\n", path);
        }
        int e = k == 0 ? whisper_write_txt(f, r) : k == 1 ? whisper_write_vtt(f, r) : k == 2 ? whisper_write_srt(f, r, 0)
              : k == 3 ? whisper_write_csv(f, r) : k == 4 ? whisper_write_json(f, r, info) : whisper_write_lrc(f, r);
        if (f == stdout) fflush(f);
        else if (fclose(f)) e = -1;
        if (e) {
            fprintf(stderr, "mmpipe transcribe: %s: write error\n", to_stdout ? "stdout" : path);
            rc = -1;
        }
    }
    return rc;
}

#define GROUP 8 /* inputs transcribed in lock-step */

int cmd_transcribe(int argc, char **argv) {
    cli_common cc = {0, MMPIPE_DEVICE_CPU};
    opts o;
    memset(&o, 0, sizeof o);
    o.p = mp_whisper_default_params();
    o.p.suppress_nst = 0; /* whisper-cli's default */
    o.vp = mp_vad_default_params();
    o.language = "en";
    o.files = calloc((size_t)argc + 1, sizeof *o.files);
    o.outs = calloc((size_t)argc + 1, sizeof *o.outs);
    if (!o.files || !o.outs) return 1;
    int prc = parse(argc, argv, &o, &cc), ret = 0;
    if (prc || !o.model || o.n_files == 0) {
        if (prc == 0) usage();
        free(o.files);
        free(o.outs);
        return prc == 1 ? 0 : 2;
    }
    if (o.vad && !o.vad_model) {
        fprintf(stderr, "mmpipe transcribe: --vad needs -vm FILE (a Silero VAD ggml model)\n");
        free(o.files);
        free(o.outs);
        return 2;
    }
    mp_error err;
    char model_path[4096];
    mp_hub_opts ho;
    mp_hub_default_opts(&ho);
    ho.quiet = o.no_prints;
    mp_threadpool *tp = NULL;
    mp_exec ex;
    int have_ex = 0, have_m = 0, have_c = 0, have_vad = 0;
    mp_whisper m;
    mp_whisper_ctx c;
    mp_silero vad;
    input *in = NULL;
    if (mp_model_resolve(o.model, &ho, model_path, sizeof model_path, &err)) goto fatal;
    tp = mp_threadpool_create(cc.n_threads);
    if (mp_exec_init(&ex, cc.device, tp, (size_t)64 << 20, &err)) goto fatal;
    have_ex = 1;
    if (mp_whisper_load(&m, model_path, &ex, &err)) goto fatal;
    have_m = 1;
    if (o.dtw && mp_whisper_set_alignment_heads(&m, o.dtw, &err)) goto fatal;
    if (mp_whisper_ctx_init(&c, &m, &ex, &err)) goto fatal;
    have_c = 1;
    if (o.vad) {
        if (mp_silero_load(&vad, o.vad_model, &err)) goto fatal;
        have_vad = 1;
    }
    /* language */
    if (!strcmp(o.language, "auto")) {
        o.p.language = m.sp.multilingual ? -1 : 0;
    } else {
        o.p.language = mp_whisper_lang_id(o.language);
        if (o.p.language < 0) {
            mp_errf(&err, "unknown language '%s'", o.language);
            goto fatal;
        }
    }
    if (!m.sp.multilingual && (o.p.language > 0 || o.p.translate)) {
        if (!o.no_prints)
            fprintf(stderr, "mmpipe transcribe: the model is English-only; ignoring the language and translation options\n");
        o.p.language = 0;
        o.p.translate = 0;
    }
    if (o.p.language >= m.sp.num_languages) {
        mp_errf(&err, "language '%s' is not one of the model's %d languages", o.language, m.sp.num_languages);
        goto fatal;
    }
    if (!o.no_prints)
        fprintf(stderr, "mmpipe transcribe: model %s (%s, %s, %d layers, %d state), %d threads, beam %d, lang %s, %s\n",
                model_path, m.type, m.format, m.hp.n_audio_layer, m.hp.n_audio_state, mp_threadpool_size(tp),
                o.p.beam_size, o.p.language < 0 ? "auto" : mp_whisper_lang_code(o.p.language),
                o.p.translate ? "translate" : "transcribe");
    in = calloc((size_t)o.n_files, sizeof *in);
    if (!in) {
        mp_errf(&err, "out of memory");
        goto fatal;
    }
    whisper_out_info info = {&m, o.model, o.language, o.p.translate};
    const int any_file = o.otxt || o.ovtt || o.osrt || o.ocsv || o.olrc || o.ojson;
    for (int g0 = 0; g0 < o.n_files; g0 += GROUP) {
        const int g1 = g0 + GROUP < o.n_files ? g0 + GROUP : o.n_files;
        const float *samp[GROUP];
        int64_t ns[GROUP];
        int idx[GROUP], k = 0;
        for (int i = g0; i < g1; i++) {
            in[i].path = o.files[i];
            if (load_input(&in[i], &o, have_vad ? &vad : NULL, &ex)) {
                in[i].failed = 1;
                fprintf(stderr, "mmpipe transcribe: %s\n", in[i].err.msg);
                continue;
            }
            samp[k] = in[i].samples;
            ns[k] = in[i].n;
            idx[k++] = i;
        }
        mp_whisper_result res[GROUP];
        int rcs[GROUP];
        mp_error errs[GROUP];
        if (k) mp_whisper_transcribe_batch(&c, samp, ns, k, &o.p, res, rcs, errs);
        for (int q = 0; q < k; q++) {
            input *x = &in[idx[q]];
            if (rcs[q]) {
                x->failed = 1;
                fprintf(stderr, "mmpipe transcribe: %s: %s\n", x->path, errs[q].msg);
                continue;
            }
            mp_whisper_result_map_vad(&res[q], &x->map);
            shift_times(&res[q], x->offset_cs);
            const int to_stdout = idx[q] < o.n_outs && !strcmp(o.outs[idx[q]], "-");
            if (!to_stdout || !any_file) {
                if (o.n_files > 1 && !o.no_prints) printf("\n# %s\n", x->path);
                else printf("\n");
                for (int s = 0; s < res[q].n_segs; s++) whisper_print_segment(stdout, &res[q].segs[s], !o.p.no_timestamps);
                if (o.p.no_timestamps) printf("\n");
                fflush(stdout);
            }
            if (any_file && write_outputs(&o, x, idx[q], &res[q], &info)) x->failed = 1;
            mp_whisper_result_free(&res[q]);
        }
        for (int i = g0; i < g1; i++) {
            free(in[i].samples);
            in[i].samples = NULL;
            mp_whisper_vad_map_free(&in[i].map);
            if (in[i].failed) ret = 1;
        }
    }
    if (!o.no_prints)
        fprintf(stderr, "mmpipe transcribe: mel %.0f ms, encode %.0f ms, decode %.0f ms (%lld steps), align %.0f ms\n",
                c.t_mel, c.t_enc, c.t_dec, (long long)c.n_dec_steps, c.t_align);
    goto done;
fatal:
    fprintf(stderr, "mmpipe transcribe: %s\n", err.msg);
    ret = 1;
done:
    free(in);
    if (have_vad) mp_silero_free(&vad);
    if (have_c) mp_whisper_ctx_free(&c);
    if (have_m) mp_whisper_free(&m, &ex);
    if (have_ex) mp_exec_free(&ex);
    if (tp) mp_threadpool_free(tp);
    free(o.files);
    free(o.outs);
    return ret;
}
