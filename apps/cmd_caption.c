/* cmd_caption.c — `mmpipe caption`: one caption per image with a SmolVLM / Idefics3 model.
 *
 * stdout: per image, in the order given, "FILE: caption" (plain) or one JSON object per line (--json);
 * errors and the timing summary go to stderr. A file that cannot be read does not stop the others; the
 * exit code is 1 when any image failed. */
#include "cli.h"
#include "mmpipe.h"

#include "runtime/caption.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: mmpipe caption -m MODEL [--mmproj FILE] [-p PROMPT] [options] IMAGE...\n"
            "  -m, --model PATH       SmolVLM / SmolVLM2 (image mode) / Idefics3: HF folder, hub id ORG/NAME, or a\n"
            "                         GGUF text model\n"
            "      --mmproj FILE      the vision tower for a GGUF text model (llama.cpp mmproj, idefics3)\n"
            "  -p, --prompt TEXT      the request after each image (default \"" MP_CAPTION_DEFAULT_PROMPT "\")\n"
            "  -n, --n-predict N      most tokens per caption (default 256)\n"
            "      --temp T           temperature; 0 = greedy (default: the model's generation config)\n"
            "      --top-k K, --top-p P, --min-p P, --repeat-penalty R\n"
            "  -s, --seed S           sampling seed (default 0)\n"
            "      --no-split         one tile-sized view per image instead of tiles + a global view\n"
            "      --split            tiles + global view even if the processor config says otherwise\n"
            "  -b, --batch N          captions decoding together (default 16)\n"
            "      --vision-batch N   tiles per vision-encoder batch (default: 8192 patches' worth)\n"
            "      --json             one JSON object per line and image: file, text, tokens, timings (or error)\n"
            "      --no-overlap       decode and preprocess images on the main thread\n"
            "  -t, --threads N        threads (default: physical cores)\n"
            "      --device cpu|cuda|auto\n");
}

static int num(const char *opt, const char *v, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (!*v || *end || errno || d < lo || d > hi) {
        fprintf(stderr, "mmpipe caption: bad value '%s' for %s\n", v, opt);
        return -1;
    }
    *out = d;
    return 0;
}

static void print_json(const char *file, const mp_caption_result *r) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "file", file);
    if (r->ok) {
        cJSON_AddStringToObject(o, "text", r->text);
        cJSON_AddNumberToObject(o, "tokens", r->n_tokens);
        cJSON_AddNumberToObject(o, "prompt_tokens", r->n_prompt);
        cJSON_AddNumberToObject(o, "tiles", r->n_tiles);
        cJSON_AddStringToObject(o, "finish_reason", r->finish_reason ? r->finish_reason : "stop");
        if (r->warning[0]) cJSON_AddStringToObject(o, "warning", r->warning);
        cJSON *t = cJSON_AddObjectToObject(o, "timings");
        cJSON_AddNumberToObject(t, "decode_image_ms", round(r->t_load * 1e4) / 10);
        cJSON_AddNumberToObject(t, "preprocess_ms", round(r->t_preprocess * 1e4) / 10);
        cJSON_AddNumberToObject(t, "vision_ms", round(r->t_vision * 1e4) / 10);
        cJSON_AddNumberToObject(t, "done_ms", round(r->t_done * 1e4) / 10);
    } else {
        cJSON_AddStringToObject(o, "error", r->error);
    }
    char *s = cJSON_PrintUnformatted(o);
    if (s) puts(s);
    free(s);
    cJSON_Delete(o);
}

int cmd_caption(int argc, char **argv) {
    const char *model = NULL, *mmproj = NULL, *prompt = NULL;
    const char **files = calloc((size_t)(argc > 0 ? argc : 1), sizeof(char *));
    int n_files = 0, json = 0, split = -1, overlap = 1, max_seqs = 16, vtiles = 0, n_predict = 256;
    cli_common cc = {0, MMPIPE_DEVICE_AUTO};
    mp_sampler_params sp = mp_sampler_default_params();
    int g_temp = 0, g_topk = 0, g_topp = 0, g_minp = 0, g_rep = 0, seed_given = 0;
    if (!files) return 1;
    for (int i = 1; i < argc;) {
        const char *a = argv[i];
        int c = cli_parse_common(&cc, argc, argv, &i);
        if (c < 0) goto bad;
        if (c > 0) continue;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            free(files);
            return 0;
        }
        if (a[0] != '-' || !strcmp(a, "-")) {
            files[n_files++] = a;
            i++;
            continue;
        }
        if (!strcmp(a, "--json") || !strcmp(a, "--no-split") || !strcmp(a, "--split") || !strcmp(a, "--no-overlap")) {
            if (!strcmp(a, "--json")) json = 1;
            else if (!strcmp(a, "--no-split")) split = 0;
            else if (!strcmp(a, "--split")) split = 1;
            else overlap = 0;
            i++;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "mmpipe caption: %s needs a value (see --help)\n", a);
            goto bad;
        }
        const char *v = argv[i + 1];
        double d;
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--mmproj")) mmproj = v;
        else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) prompt = v;
        else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict")) {
            if (num(a, v, 1, 1e6, &d)) goto bad;
            n_predict = (int)d;
        } else if (!strcmp(a, "--temp")) {
            if (num(a, v, 0, 1e6, &d)) goto bad;
            sp.temperature = (float)d, g_temp = 1;
        } else if (!strcmp(a, "--top-k")) {
            if (num(a, v, 0, 1e9, &d)) goto bad;
            sp.top_k = (int)d, g_topk = 1;
        } else if (!strcmp(a, "--top-p")) {
            if (num(a, v, 0, 1, &d)) goto bad;
            sp.top_p = (float)d, g_topp = 1;
        } else if (!strcmp(a, "--min-p")) {
            if (num(a, v, 0, 1, &d)) goto bad;
            sp.min_p = (float)d, g_minp = 1;
        } else if (!strcmp(a, "--repeat-penalty")) {
            if (num(a, v, 1e-6, 1e6, &d)) goto bad;
            sp.repeat_penalty = (float)d, g_rep = 1;
        } else if (!strcmp(a, "-s") || !strcmp(a, "--seed")) {
            char *end;
            errno = 0;
            unsigned long long sv = strtoull(v, &end, 10);
            if (!*v || *end || errno || v[0] == '-') {
                fprintf(stderr, "mmpipe caption: bad seed '%s'\n", v);
                goto bad;
            }
            sp.seed = (uint64_t)sv, seed_given = 1;
        } else if (!strcmp(a, "-b") || !strcmp(a, "--batch")) {
            if (num(a, v, 1, 1024, &d)) goto bad;
            max_seqs = (int)d;
        } else if (!strcmp(a, "--vision-batch")) {
            if (num(a, v, 1, 4096, &d)) goto bad;
            vtiles = (int)d;
        } else {
            fprintf(stderr, "mmpipe caption: unknown option '%s' (see --help)\n", a);
            goto bad;
        }
        i += 2;
    }
    if (!model || n_files == 0) {
        usage(stderr);
        goto bad;
    }

    int rc = 1;
    mp_error err = {{0}};
    mp_threadpool *tp = mp_threadpool_create(cc.n_threads);
    mp_exec ex;
    mp_vlm m;
    int ex_ok = 0, m_ok = 0;
    mp_caption_result *res = calloc((size_t)n_files, sizeof *res);
    if (!tp || !res) {
        mp_errf(&err, "out of memory");
        goto fail;
    }
    if (mp_exec_init(&ex, cc.device, tp, (size_t)64 << 20, &err) < 0) goto fail;
    ex_ok = 1;
    if (mp_vlm_load(&m, model, mmproj, &ex, &err) < 0) goto fail;
    m_ok = 1;
    mp_caption_params p = mp_caption_default_params(&m);
    p.prompt = prompt;
    p.split = split;
    p.max_new = n_predict;
    p.max_seqs = max_seqs;
    p.vision_tiles = vtiles;
    p.overlap = overlap;
    if (g_temp) p.sampling.temperature = sp.temperature;
    if (g_topk) p.sampling.top_k = sp.top_k;
    if (g_topp) p.sampling.top_p = sp.top_p;
    if (g_minp) p.sampling.min_p = sp.min_p;
    if (g_rep) p.sampling.repeat_penalty = sp.repeat_penalty;
    if (seed_given) p.sampling.seed = sp.seed;
    mp_caption_stats st;
    if (mp_caption_run(&m, &ex, files, n_files, &p, res, &st, &err) < 0) goto fail;
    int failed = 0;
    for (int i = 0; i < n_files; i++) {
        if (res[i].warning[0]) fprintf(stderr, "mmpipe caption: %s: warning: %s\n", files[i], res[i].warning);
        if (json) print_json(files[i], &res[i]);
        else if (res[i].ok) printf("%s: %s\n", files[i], res[i].text);
        if (!res[i].ok) {
            fprintf(stderr, "mmpipe caption: %s\n", res[i].error);
            failed++;
        }
    }
    fflush(stdout);
    fprintf(stderr,
            "caption: %lld image(s), %d failed, %lld tiles | decode image %.0f ms, preprocess %.0f ms (waited %.0f ms) | "
            "vision %.0f ms + connector %.0f ms | prefill %lld tokens %.0f ms | decode %lld tokens %.0f ms | wall %.0f ms\n",
            (long long)st.images, failed, (long long)st.tiles, st.t_load * 1e3, st.t_preprocess * 1e3, st.t_wait * 1e3,
            st.t_encode * 1e3, st.t_connector * 1e3, (long long)st.prompt_tokens, st.t_prefill * 1e3,
            (long long)st.gen_tokens, st.t_decode * 1e3, st.t_wall * 1e3);
    rc = failed ? 1 : 0;
fail:
    if (rc && err.msg[0]) fprintf(stderr, "mmpipe caption: %s\n", err.msg);
    if (res)
        for (int i = 0; i < n_files; i++) mp_caption_result_free(&res[i]);
    free(res);
    if (m_ok) mp_vlm_free(&m, &ex);
    if (ex_ok) mp_exec_free(&ex);
    mp_threadpool_free(tp);
    free(files);
    return rc;
bad:
    free(files);
    return 1;
}
