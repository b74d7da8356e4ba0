/* bench_caption.c — `mmpipe bench caption`: the SmolVLM captioning pipeline, stage by stage.
 *
 * Model: SmolVLM-256M-Instruct's real shapes (vision 768 wide, 12 layers, 512 px tiles of 16 px
 * patches, pixel shuffle 4 -> 64 rows per tile; text SmolLM2-135M-shaped, 30 layers, vocab 49280) with
 * random BF16 weights (the dtype SmolVLM ships in), written once into --dir as an HF folder beside the
 * real config, processor and tokenizer files (taken from --from, default the SmolVLM fixture folder).
 * There are no real SmolVLM weights here: the numbers are speed, not caption quality.
 *
 * Cases: 1 and 16 images (fixture photos, cycled), with and without image splitting; captions of
 * -n tokens (EOS ignored so every caption has the same length). Printed per case:
 *   BENCH caption images=N split=S tiles=T decode_image_ms preprocess_ms wait_ms vision_ms connector_ms
 *         prefill_ms decode_ms wall_ms prompt_tokens gen_tokens decode_tok_s ...
 *   vision encoder GFLOP/s of its matmuls and of its attention, and their ratio to the FMA peak;
 * then the 16-captions-batched vs 1-caption decode speed ratio, and the cost of image decode +
 * preprocessing in a 16-image call: the same call with the worker thread (overlap) and without.
 */
#include "apps/cli.h"
#include "bench.h"
#include "mmpipe.h"

#include "kernels/mp.h"
#include "runtime/caption.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define REAL "hf/HuggingFaceTB--SmolVLM-256M-Instruct"

/* ---------------------------------------------------------------- the random model */

typedef struct bt {
    char name[128];
    int nd;
    int64_t shape[4];
    float scale, offset;
} bt;

static int add(bt *t, int n, const char *name, int nd, int64_t a, int64_t b, int64_t c, int64_t d, float scale,
               float offset) {
    snprintf(t[n].name, sizeof t[n].name, "%s", name);
    t[n].nd = nd;
    t[n].shape[0] = a, t[n].shape[1] = b, t[n].shape[2] = c, t[n].shape[3] = d;
    t[n].scale = scale, t[n].offset = offset;
    return n + 1;
}

/* Every tensor of an Idefics3ForConditionalGeneration checkpoint with these sizes (PyTorch shapes). */
static int tensor_list(bt *t, int vD, int vF, int vL, int P, int side, int s, int tD, int tF, int tL, int tH, int tKV,
                       int hd, int V) {
    int n = 0;
    char nm[128];
    const float sv = 1.0f / sqrtf((float)vD), st = 1.0f / sqrtf((float)tD);
    n = add(t, n, "model.vision_model.embeddings.patch_embedding.weight", 4, vD, 3, P, P, 1.0f / sqrtf(3.0f * P * P), 0);
    n = add(t, n, "model.vision_model.embeddings.patch_embedding.bias", 1, vD, 1, 1, 1, 0.1f, 0);
    n = add(t, n, "model.vision_model.embeddings.position_embedding.weight", 2, (int64_t)side * side, vD, 1, 1, 0.5f, 0);
    for (int l = 0; l < vL; l++) {
        const char *pre = "model.vision_model.encoder.layers";
        static const char *const norms[] = {"layer_norm1", "layer_norm2"};
        static const char *const att[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj"};
        for (int i = 0; i < 2; i++) {
            snprintf(nm, sizeof nm, "%s.%d.%s.weight", pre, l, norms[i]);
            n = add(t, n, nm, 1, vD, 1, 1, 1, 0.2f, 1.0f);
            snprintf(nm, sizeof nm, "%s.%d.%s.bias", pre, l, norms[i]);
            n = add(t, n, nm, 1, vD, 1, 1, 1, 0.1f, 0);
        }
        for (int i = 0; i < 4; i++) {
            snprintf(nm, sizeof nm, "%s.%d.%s.weight", pre, l, att[i]);
            n = add(t, n, nm, 2, vD, vD, 1, 1, sv, 0);
            snprintf(nm, sizeof nm, "%s.%d.%s.bias", pre, l, att[i]);
            n = add(t, n, nm, 1, vD, 1, 1, 1, 0.1f, 0);
        }
        snprintf(nm, sizeof nm, "%s.%d.mlp.fc1.weight", pre, l);
        n = add(t, n, nm, 2, vF, vD, 1, 1, sv, 0);
        snprintf(nm, sizeof nm, "%s.%d.mlp.fc1.bias", pre, l);
        n = add(t, n, nm, 1, vF, 1, 1, 1, 0.1f, 0);
        snprintf(nm, sizeof nm, "%s.%d.mlp.fc2.weight", pre, l);
        n = add(t, n, nm, 2, vD, vF, 1, 1, 1.0f / sqrtf((float)vF), 0);
        snprintf(nm, sizeof nm, "%s.%d.mlp.fc2.bias", pre, l);
        n = add(t, n, nm, 1, vD, 1, 1, 1, 0.1f, 0);
    }
    n = add(t, n, "model.vision_model.post_layernorm.weight", 1, vD, 1, 1, 1, 0.2f, 1.0f);
    n = add(t, n, "model.vision_model.post_layernorm.bias", 1, vD, 1, 1, 1, 0.1f, 0);
    n = add(t, n, "model.connector.modality_projection.proj.weight", 2, tD, (int64_t)vD * s * s, 1, 1,
            1.0f / sqrtf((float)vD * s * s), 0);
    n = add(t, n, "model.text_model.embed_tokens.weight", 2, V, tD, 1, 1, 1.0f, 0);
    for (int l = 0; l < tL; l++) {
        static const struct { const char *nm; int rows, cols; } w[] = {
            {"self_attn.q_proj", 'q', 'd'}, {"self_attn.k_proj", 'k', 'd'}, {"self_attn.v_proj", 'k', 'd'},
            {"self_attn.o_proj", 'd', 'q'}, {"mlp.gate_proj", 'f', 'd'},   {"mlp.up_proj", 'f', 'd'},
            {"mlp.down_proj", 'd', 'f'},
        };
        for (size_t i = 0; i < sizeof w / sizeof w[0]; i++) {
            int64_t dims[2];
            int sel[2] = {w[i].rows, w[i].cols};
            for (int k = 0; k < 2; k++)
                dims[k] = sel[k] == 'q' ? (int64_t)tH * hd : sel[k] == 'k' ? (int64_t)tKV * hd : sel[k] == 'f' ? tF : tD;
            snprintf(nm, sizeof nm, "model.text_model.layers.%d.%s.weight", l, w[i].nm);
            n = add(t, n, nm, 2, dims[0], dims[1], 1, 1, 1.0f / sqrtf((float)dims[1]), 0);
        }
        snprintf(nm, sizeof nm, "model.text_model.layers.%d.input_layernorm.weight", l);
        n = add(t, n, nm, 1, tD, 1, 1, 1, 0.2f, 1.0f);
        snprintf(nm, sizeof nm, "model.text_model.layers.%d.post_attention_layernorm.weight", l);
        n = add(t, n, nm, 1, tD, 1, 1, 1, 0.2f, 1.0f);
    }
    n = add(t, n, "model.text_model.norm.weight", 1, tD, 1, 1, 1, 0.2f, 1.0f);
    n = add(t, n, "lm_head.weight", 2, V, tD, 1, 1, 2.0f * st, 0);
    return n;
}

static int64_t numel(const bt *t) {
    int64_t n = 1;
    for (int i = 0; i < t->nd; i++) n *= t->shape[i];
    return n;
}

static inline uint64_t xs(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* model.safetensors, BF16; returns 0 when the file (of the right size) is already there */
static int write_weights(const char *path, const bt *t, int n, mp_error *err) {
    size_t cap = 1 << 20, w = 0, off = 0;
    char *hdr = malloc(cap);
    if (!hdr) return mp_errf(err, "bench: out of memory");
    w += (size_t)snprintf(hdr + w, cap - w, "{");
    for (int i = 0; i < n; i++) {
        size_t bytes = (size_t)numel(&t[i]) * 2;
        w += (size_t)snprintf(hdr + w, cap - w, "%s\"%s\":{\"dtype\":\"BF16\",\"shape\":[", i ? "," : "", t[i].name);
        for (int k = 0; k < t[i].nd; k++) w += (size_t)snprintf(hdr + w, cap - w, "%s%lld", k ? "," : "", (long long)t[i].shape[k]);
        w += (size_t)snprintf(hdr + w, cap - w, "],\"data_offsets\":[%zu,%zu]}", off, off + bytes);
        off += bytes;
    }
    w += (size_t)snprintf(hdr + w, cap - w, "}");
    while (w % 8) hdr[w++] = ' ';
    struct stat st;
    if (stat(path, &st) == 0 && (size_t)st.st_size == 8 + w + off) {
        free(hdr);
        return 0;
    }
    FILE *f = fopen(path, "wb");
    if (!f) {
        free(hdr);
        return mp_errf(err, "%s: %s", path, strerror(errno));
    }
    uint64_t hl = w;
    int rc = fwrite(&hl, 8, 1, f) != 1 || fwrite(hdr, 1, w, f) != w;
    free(hdr);
    mp_bf16 buf[8192];
    uint64_t s = 0x5eedcafe;
    for (int i = 0; i < n && !rc; i++) {
        for (int64_t left = numel(&t[i]); left > 0 && !rc;) {
            size_t k = left < 8192 ? (size_t)left : 8192;
            for (size_t j = 0; j < k; j++) {
                float u = (float)(xs(&s) >> 40) * (1.0f / 16777216.0f) * 2.0f - 1.0f;
                buf[j] = mp_f32_to_bf16(t[i].offset + t[i].scale * u);
            }
            rc = fwrite(buf, 2, k, f) != k;
            left -= (int64_t)k;
        }
    }
    if (fclose(f) != 0) rc = 1;
    return rc ? mp_errf(err, "%s: write failed", path) : 0;
}

static int copy_file(const char *src, const char *dst) {
    FILE *a = fopen(src, "rb");
    if (!a) return -1;
    FILE *b = fopen(dst, "wb");
    if (!b) {
        fclose(a);
        return -1;
    }
    char buf[65536];
    size_t k;
    int rc = 0;
    while ((k = fread(buf, 1, sizeof buf, a)) > 0) rc |= fwrite(buf, 1, k, b) != k;
    fclose(a);
    return fclose(b) || rc ? -1 : 0;
}

/* the HF folder: the real configs, tokenizer and template from `from`, random weights of their shapes */
static int make_model(const char *from, const char *dir, mp_error *err) {
    static const char *const files[] = {"config.json", "preprocessor_config.json", "processor_config.json",
                                        "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                                        "added_tokens.json", "chat_template.json", "generation_config.json"};
    char a[4200], b[4200];
    mkdir(dir, 0755);
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        if ((size_t)snprintf(a, sizeof a, "%s/%s", from, files[i]) >= sizeof a ||
            (size_t)snprintf(b, sizeof b, "%s/%s", dir, files[i]) >= sizeof b)
            return mp_errf(err, "%s: path too long", dir);
        if (copy_file(a, b) < 0) return mp_errf(err, "%s: cannot copy into %s (give --from SMOLVLM_DIR)", a, dir);
    }
    /* SmolVLM-256M's sizes (the config just copied holds them; checked by the loader afterwards) */
    const int vD = 768, vF = 3072, vL = 12, P = 16, side = 32, s = 4, tD = 576, tF = 1536, tL = 30, tH = 9, tKV = 3,
              hd = 64, V = 49280;
    int cap = 8 + vL * 16 + tL * 9 + 8;
    bt *t = calloc((size_t)cap, sizeof *t);
    if (!t) return mp_errf(err, "bench: out of memory");
    int n = tensor_list(t, vD, vF, vL, P, side, s, tD, tF, tL, tH, tKV, hd, V);
    int rc = (size_t)snprintf(b, sizeof b, "%s/model.safetensors", dir) >= sizeof b ? mp_errf(err, "%s: path too long", dir)
                                                                                 : write_weights(b, t, n, err);
    free(t);
    return rc;
}

/* ---------------------------------------------------------------- runs */

typedef struct opts {
    int threads, n_tokens, quick;
    double peak;
} opts;

static double ms(double s) { return s * 1e3; }

static int run_case(const mp_vlm *m, mp_exec *ex, const char *const *files, int n, int split, int overlap, const opts *o,
                    mp_caption_stats *st, int print) {
    mp_error err = {{0}};
    mp_caption_result *res = calloc((size_t)n, sizeof *res);
    mp_caption_params p = mp_caption_default_params(m);
    p.split = split;
    p.max_new = o->n_tokens;
    p.ignore_eos = 1;
    p.overlap = overlap;
    p.sampling.temperature = 0;
    int rc = res ? mp_caption_run(m, ex, files, n, &p, res, st, &err) : -1;
    int failed = 0;
    for (int i = 0; i < n && res; i++) {
        if (!res[i].ok) {
            fprintf(stderr, "bench caption: %s: %s\n", files[i], res[i].error);
            failed++;
        }
        mp_caption_result_free(&res[i]);
    }
    free(res);
    if (rc < 0) {
        fprintf(stderr, "bench caption: %s\n", err.msg);
        return -1;
    }
    if (failed) return -1;
    if (!print) return 0;
    const mp_siglip_timing *v = &st->vision.enc;
    double mm_t = v->embed + v->attn_proj + v->mlp, at_t = v->attention;
    double mm_gf = mm_t > 0 ? v->flops_matmul / mm_t * 1e-9 : 0, at_gf = at_t > 0 ? v->flops_attention / at_t * 1e-9 : 0;
    double vis_gf = st->t_encode > 0 ? (v->flops_matmul + v->flops_attention) / st->t_encode * 1e-9 : 0;
    printf("BENCH caption images=%d split=%d overlap=%d tiles=%lld decode_image_ms=%.1f preprocess_ms=%.1f wait_ms=%.1f "
           "vision_ms=%.1f connector_ms=%.1f prompt_ms=%.1f prefill_ms=%.1f decode_ms=%.1f wall_ms=%.1f prompt_tokens=%lld "
           "gen_tokens=%lld decode_tokens=%lld decode_tok_s=%.1f prefill_tok_s=%.1f\n",
           n, split, overlap, (long long)st->tiles, ms(st->t_load), ms(st->t_preprocess), ms(st->t_wait), ms(st->t_encode),
           ms(st->t_connector), ms(st->t_prompt), ms(st->t_prefill), ms(st->t_decode), ms(st->t_wall),
           (long long)st->prompt_tokens, (long long)st->gen_tokens, (long long)st->decode_tokens,
           st->t_decode > 0 ? st->decode_tokens / st->t_decode : 0, st->t_prefill > 0 ? st->prompt_tokens / st->t_prefill : 0);
    printf("BENCH caption_vision images=%d split=%d tiles=%lld matmul_gflops=%.1f matmul_peak_ratio=%.3f "
           "attention_gflops=%.1f attention_peak_ratio=%.3f encoder_gflops=%.1f encoder_peak_ratio=%.3f "
           "embed_ms=%.1f qkvo_ms=%.1f attention_ms=%.1f mlp_ms=%.1f norm_ms=%.1f peak_gflops=%.1f\n",
           n, split, (long long)st->tiles, mm_gf, mm_gf / o->peak, at_gf, at_gf / o->peak, vis_gf, vis_gf / o->peak,
           ms(v->embed), ms(v->attn_proj), ms(v->attention), ms(v->mlp), ms(v->norm), o->peak);
    fflush(stdout);
    return 0;
}

int bench_caption_model(const char *dir, char *model, size_t cap, mp_error *err) {
    const char *fx = getenv("MMPIPE_FIXTURES");
    char from[4096];
    snprintf(from, sizeof from, "%s/" REAL, fx && *fx ? fx : "../shared/fixtures");
    mkdir(dir, 0755);
    if ((size_t)snprintf(model, cap, "%s/smolvlm-256m-random", dir) >= cap) return mp_errf(err, "%s: path too long", dir);
    return make_model(from, model, err);
}

int bench_caption(int argc, char **argv) {
    const char *dir = "/tmp/mmpipe-bench-caption", *from = NULL;
    opts o = {0, 32, 0, 0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--quick")) o.quick = 1;
        else if (i + 1 < argc && !strcmp(a, "--dir")) dir = argv[++i];
        else if (i + 1 < argc && !strcmp(a, "--from")) from = argv[++i];
        else if (i + 1 < argc && (!strcmp(a, "-t") || !strcmp(a, "--threads"))) o.threads = atoi(argv[++i]);
        else if (i + 1 < argc && (!strcmp(a, "-n") || !strcmp(a, "--n-predict"))) o.n_tokens = atoi(argv[++i]);
        else {
            fprintf(stderr,
                    "usage: mmpipe bench caption [--dir DIR] [--from SMOLVLM_DIR] [-n TOKENS] [-t THREADS] [--quick]\n"
                    "  SmolVLM-256M-shaped random BF16 model in DIR (default /tmp/mmpipe-bench-caption), configs and\n"
                    "  tokenizer from SMOLVLM_DIR (default $MMPIPE_FIXTURES/" REAL "); --quick skips 16 split images\n");
            return 1;
        }
    }
    if (o.n_tokens <= 0) o.n_tokens = 32;
    const char *fx = getenv("MMPIPE_FIXTURES");
    char fxroot[4096], from_buf[4200], model[4200];
    snprintf(fxroot, sizeof fxroot, "%s", fx && *fx ? fx : "../shared/fixtures");
    if (!from) {
        snprintf(from_buf, sizeof from_buf, "%s/" REAL, fxroot);
        from = from_buf;
    }
    mkdir(dir, 0755);
    snprintf(model, sizeof model, "%s/smolvlm-256m-random", dir);
    mp_error err = {{0}};
    if (make_model(from, model, &err) < 0) {
        fprintf(stderr, "bench caption: %s\n", err.msg);
        return 1;
    }
    /* photos from the fixtures, cycled to 16 */
    static const char *const photos[] = {"chelsea.jpg", "rocket.jpg", "coffee.png", "hopper.jpg", "testorig.jpg",
                                         "chelsea.png", "testimgp.jpg", "pil_sample_cmyk.jpg"};
    char paths[16][4200];
    const char *files[16];
    for (int i = 0; i < 16; i++) {
        snprintf(paths[i], sizeof paths[i], "%s/images/%s", fxroot, photos[i % 8]);
        files[i] = paths[i];
        if (access(files[i], R_OK) != 0) {
            fprintf(stderr, "bench caption: %s not found (set MMPIPE_FIXTURES)\n", files[i]);
            return 1;
        }
    }
    mp_threadpool *tp = mp_threadpool_create(o.threads);
    o.threads = mp_threadpool_size(tp);
    o.peak = bench_fma_peak(tp, o.threads, 3);
    double triad = bench_triad(tp, o.threads, 5);
    printf("BENCH caption_machine threads=%d fma_peak_gflops=%.1f triad_gbs=%.1f simd=%s\n", o.threads, o.peak, triad,
           mp_cpu_level_name(mp_cpu_level()));
    mp_exec ex;
    mp_vlm m;
    if (mp_exec_init(&ex, MP_BACKEND_CPU, tp, (size_t)64 << 20, &err) < 0 || mp_vlm_load(&m, model, NULL, &ex, &err) < 0) {
        fprintf(stderr, "bench caption: %s\n", err.msg);
        mp_threadpool_free(tp);
        return 1;
    }
    mp_caption_stats one_ns, many_ns, many_ns_serial, tmp;
    int rc = 0;
    rc |= run_case(&m, &ex, files, 1, 0, 1, &o, &tmp, 0); /* warm-up: page in the weights */
    rc |= run_case(&m, &ex, files, 1, 0, 1, &o, &one_ns, 1);
    rc |= run_case(&m, &ex, files, 1, 1, 1, &o, &tmp, 1);
    rc |= run_case(&m, &ex, files, 16, 0, 1, &o, &many_ns, 1);
    rc |= run_case(&m, &ex, files, 16, 0, 0, &o, &many_ns_serial, 1);
    mp_caption_stats many_sp, many_sp_serial;
    int full = !o.quick;
    if (full) {
        rc |= run_case(&m, &ex, files, 16, 1, 1, &o, &many_sp, 1);
        rc |= run_case(&m, &ex, files, 16, 1, 0, &o, &many_sp_serial, 1);
    }
    if (rc == 0) {
        double t1 = one_ns.t_decode > 0 ? one_ns.decode_tokens / one_ns.t_decode : 0;
        double t16 = many_ns.t_decode > 0 ? many_ns.decode_tokens / many_ns.t_decode : 0;
        printf("BENCH caption_batching decode_tok_s_1=%.1f decode_tok_s_16=%.1f speedup=%.2f target=6\n", t1, t16,
               t1 > 0 ? t16 / t1 : 0);
        /* what image decode + preprocessing add to a 16-image call: compute alone is the serial run minus
         * its decode + preprocessing time */
        const mp_caption_stats *pairs[2][2] = {{&many_ns, &many_ns_serial}, {&many_sp, &many_sp_serial}};
        for (int k = 0; k < 1 + full; k++) {
            const mp_caption_stats *ov = pairs[k][0], *se = pairs[k][1];
            double compute = se->t_wall - se->t_load - se->t_preprocess;
            printf("BENCH caption_overlap images=16 split=%d prep_ms=%.1f wall_overlap_ms=%.1f wall_serial_ms=%.1f "
                   "compute_ms=%.1f added_overlap=%.4f added_serial=%.4f target=0.05\n",
                   k, ms(ov->t_load + ov->t_preprocess), ms(ov->t_wall), ms(se->t_wall), ms(compute),
                   (ov->t_wall - compute) / compute, (se->t_wall - compute) / compute);
        }
    }
    mp_vlm_free(&m, &ex);
    mp_exec_free(&ex);
    mp_threadpool_free(tp);
    return rc ? 1 : 0;
}
