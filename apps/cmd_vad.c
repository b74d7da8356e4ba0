/* cmd_vad.c — `mmpipe vad -vm MODEL [options] AUDIO...`: speech segments found by Silero VAD.
 *
 * Text output: one "start end" line (seconds, centisecond precision as whisper.cpp reports them) per
 * segment; with several files each file's lines follow a "# FILE" line. --json prints one array with an
 * object per file. A file that fails is reported on stderr (and in the JSON) and the others go on; the
 * exit code is 1 if any failed. Flag names follow whisper-cli's --vad-* options. */
#include "cli.h"
#include "mmpipe.h"

#include "encoders/silero.h"
#include "kernels/ops.h"
#include "preprocess/audio.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(void) {
    fprintf(stderr,
            "usage: mmpipe vad -vm MODEL [options] AUDIO...   (AUDIO '-' reads standard input)\n"
            "  -vm, --vad-model FILE                  Silero VAD ggml model (ggml-silero-v6.2.0.bin)\n"
            "  --json                                 JSON output\n"
            "  -t, --threads N                        threads (default: physical cores)\n"
            "  -vt, --vad-threshold F                 speech probability threshold (0.5)\n"
            "  -vspd, --vad-min-speech-duration-ms N  shortest speech segment (250)\n"
            "  -vsd, --vad-min-silence-duration-ms N  silence that ends a segment (100)\n"
            "  -vmsd, --vad-max-speech-duration-s F   longest segment before it is cut (no limit)\n"
            "  -vp, --vad-speech-pad-ms N             padding added around segments (30)\n");
}

static int parse_num(const char *flag, const char *v, double lo, double hi, double *out) {
    char *end;
    double d = v ? strtod(v, &end) : 0;
    if (!v || *end || end == v || d < lo || d > hi) {
        fprintf(stderr, "mmpipe vad: %s needs a number in [%g, %g] (got '%s')\n", flag, lo, hi, v ? v : "");
        return -1;
    }
    *out = d;
    return 0;
}

/* Finds speech in one file; 0 or -1 (err filled). */
static int vad_file(const mp_silero *m, mp_exec *ex, const mp_vad_params *vp, const char *path, mp_vad_segment **segs,
                    int *ns, int64_t *n_probs, double *duration, mp_error *err) {
    mp_audio a;
    if (mp_audio_load(path, MP_AUDIO_RATE, &a, err)) return -1;
    float *probs = NULL;
    int rc = mp_silero_probs(m, ex, a.samples, a.n_samples, &probs, n_probs, err);
    if (rc == 0) rc = mp_vad_segments(probs, *n_probs, m->n_window, MP_AUDIO_RATE, vp, segs, ns, err);
    *duration = (double)a.n_samples / MP_AUDIO_RATE;
    free(probs);
    mp_audio_free(&a);
    return rc;
}

int cmd_vad(int argc, char **argv) {
    cli_common cc = {0, MMPIPE_DEVICE_CPU};
    mp_vad_params vp = mp_vad_default_params();
    const char *model = NULL;
    int json = 0, n_files = 0;
    const char **files = calloc((size_t)argc + 1, sizeof *files);
    if (!files) return 1;
    for (int i = 1; i < argc;) {
        const char *a = argv[i];
        int c = cli_parse_common(&cc, argc, argv, &i);
        if (c < 0) { free(files); return 2; }
        if (c > 0) continue;
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        double d;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage();
            free(files);
            return 0;
        } else if (!strcmp(a, "-vm") || !strcmp(a, "--vad-model") || !strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (!v) { fprintf(stderr, "mmpipe vad: %s needs a file\n", a); free(files); return 2; }
            model = v;
            i += 2;
        } else if (!strcmp(a, "--json") || !strcmp(a, "-oj")) {
            json = 1;
            i++;
        } else if (!strcmp(a, "-vt") || !strcmp(a, "--vad-threshold")) {
            if (parse_num(a, v, 0, 1, &d)) { free(files); return 2; }
            vp.threshold = (float)d;
            i += 2;
        } else if (!strcmp(a, "-vspd") || !strcmp(a, "--vad-min-speech-duration-ms")) {
            if (parse_num(a, v, 0, 1e7, &d)) { free(files); return 2; }
            vp.min_speech_ms = (int)d;
            i += 2;
        } else if (!strcmp(a, "-vsd") || !strcmp(a, "--vad-min-silence-duration-ms")) {
            if (parse_num(a, v, 0, 1e7, &d)) { free(files); return 2; }
            vp.min_silence_ms = (int)d;
            i += 2;
        } else if (!strcmp(a, "-vmsd") || !strcmp(a, "--vad-max-speech-duration-s")) {
            if (parse_num(a, v, 0, 1e30, &d)) { free(files); return 2; }
            vp.max_speech_s = (float)d;
            i += 2;
        } else if (!strcmp(a, "-vp") || !strcmp(a, "--vad-speech-pad-ms")) {
            if (parse_num(a, v, 0, 1e7, &d)) { free(files); return 2; }
            vp.speech_pad_ms = (int)d;
            i += 2;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "mmpipe vad: unknown option '%s'\n", a);
            usage();
            free(files);
            return 2;
        } else {
            files[n_files++] = a;
            i++;
        }
    }
    if (!model || n_files == 0) {
        usage();
        free(files);
        return 2;
    }
    mp_error err;
    mp_silero m;
    if (mp_silero_load(&m, model, &err)) {
        fprintf(stderr, "mmpipe vad: %s\n", err.msg);
        free(files);
        return 1;
    }
    mp_threadpool *tp = mp_threadpool_create(cc.n_threads);
    mp_exec ex;
    if (mp_exec_init(&ex, MP_BACKEND_CPU, tp, 1 << 20, &err)) {
        fprintf(stderr, "mmpipe vad: %s\n", err.msg);
        mp_threadpool_free(tp);
        mp_silero_free(&m);
        free(files);
        return 1;
    }
    cJSON *root = json ? cJSON_CreateArray() : NULL;
    int failed = 0;
    for (int f = 0; f < n_files; f++) {
        mp_vad_segment *segs = NULL;
        int ns = 0;
        int64_t n_probs = 0;
        double duration = 0;
        int rc = vad_file(&m, &ex, &vp, files[f], &segs, &ns, &n_probs, &duration, &err);
        if (rc) {
            failed++;
            fprintf(stderr, "mmpipe vad: %s\n", err.msg);
        }
        if (json) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "file", files[f]);
            if (rc) {
                cJSON_AddStringToObject(o, "error", err.msg);
            } else {
                cJSON_AddNumberToObject(o, "duration", duration);
                cJSON_AddNumberToObject(o, "n_probs", (double)n_probs);
                cJSON *arr = cJSON_AddArrayToObject(o, "segments");
                for (int i = 0; i < ns; i++) {
                    cJSON *s = cJSON_CreateObject();
                    cJSON_AddNumberToObject(s, "start", segs[i].t0 / 100.0);
                    cJSON_AddNumberToObject(s, "end", segs[i].t1 / 100.0);
                    cJSON_AddNumberToObject(s, "start_sample", (double)segs[i].start);
                    cJSON_AddNumberToObject(s, "end_sample", (double)segs[i].end);
                    cJSON_AddItemToArray(arr, s);
                }
            }
            cJSON_AddItemToArray(root, o);
        } else if (!rc) {
            if (n_files > 1) printf("# %s\n", files[f]);
            for (int i = 0; i < ns; i++)
                printf("%lld.%02lld %lld.%02lld\n", (long long)(segs[i].t0 / 100), (long long)(segs[i].t0 % 100),
                       (long long)(segs[i].t1 / 100), (long long)(segs[i].t1 % 100));
            fflush(stdout);
        }
        free(segs);
    }
    if (json) {
        char *s = cJSON_Print(root);
        if (s) printf("%s\n", s);
        free(s);
        cJSON_Delete(root);
    }
    mp_exec_free(&ex);
    mp_threadpool_free(tp);
    mp_silero_free(&m);
    free(files);
    return failed ? 1 : 0;
}
