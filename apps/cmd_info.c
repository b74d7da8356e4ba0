/* cmd_info.c — `mmpipe info FILE|FOLDER`: format, architecture, hyper-parameters, tensors.
 *
 * Output is "key: value" lines (indented for sub-items), stable enough for scripts to grep:
 *   file: PATH
 *   format: GGUF v3 | safetensors | llama2.c v0 | ggml .bin (whisper.cpp) | HF folder
 *   ... format-specific lines ...
 *   tensors: N
 *   parameters: N
 *   bytes: N (X MiB)
 *   dtype f16: N tensors, N bytes
 * --tensors lists every tensor as "  NAME  DTYPE  [ne0, ne1, ...]  BYTES". */
#include "cli.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/ggml_bin.h"
#include "models/gguf.h"
#include "models/hfjson.h"
#include "models/llama2c.h"
#include "models/mmap.h"
#include "models/weights.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: mmpipe info [--tensors] FILE|FOLDER\n"
            "  Describes a model: GGUF (.gguf), safetensors (file, sharded index.json or HF folder with\n"
            "  config.json), llama2.c checkpoint (.bin) or whisper.cpp ggml .bin (whisper, Silero VAD).\n"
            "  --tensors   list every tensor (name, dtype, ggml shape ne[0] first, bytes)\n");
}

/* ---------------------------------------------------------------- tensor summary */

typedef struct {
    int64_t n, params, bytes;
    int64_t dt_n[MP_DTYPE_COUNT], dt_bytes[MP_DTYPE_COUNT];
} tsum;

static void tsum_add(tsum *s, const mp_tensor *t, int list) {
    int64_t ne = mp_tensor_nelements(t);
    int64_t b = (int64_t)mp_tensor_nbytes(t);
    s->n++;
    s->params += ne;
    s->bytes += b;
    if ((int)t->dtype >= 0 && t->dtype < MP_DTYPE_COUNT) {
        s->dt_n[t->dtype]++;
        s->dt_bytes[t->dtype] += b;
    }
    if (list) {
        char dims[128];
        mp_format_dims(dims, sizeof dims, t->ne, t->ndim > 0 ? t->ndim : 1);
        printf("  %s  %s  %s  %" PRId64 "\n", t->name ? t->name : "?", mp_dtype_name(t->dtype), dims, b);
    }
}

static void tsum_print(const tsum *s) {
    printf("tensors: %" PRId64 "\n", s->n);
    printf("parameters: %" PRId64 "\n", s->params);
    printf("bytes: %" PRId64 " (%.2f MiB)\n", s->bytes, (double)s->bytes / (1024.0 * 1024.0));
    for (int d = 0; d < MP_DTYPE_COUNT; d++)
        if (s->dt_n[d])
            printf("dtype %s: %" PRId64 " tensors, %" PRId64 " bytes\n", mp_dtype_name(d), s->dt_n[d], s->dt_bytes[d]);
}

static void weights_summary(const mp_weights *w, int list) {
    tsum s;
    memset(&s, 0, sizeof s);
    if (list) printf("tensor list:\n");
    for (int64_t i = 0; i < mp_weights_count(w); i++) tsum_add(&s, mp_weights_at(w, i), list);
    tsum_print(&s);
}

/* ---------------------------------------------------------------- GGUF */

static void print_gguf_value(const mp_gguf_value *v) {
    switch (v->type) {
    case MP_GGUF_STRING:
        if (v->n > 80 || memchr(v->str, '\n', (size_t)v->n))
            printf("string of %" PRIu64 " bytes\n", v->n);
        else
            printf("%s\n", v->str);
        break;
    case MP_GGUF_ARRAY:
        printf("array[%s] x %" PRIu64, mp_gguf_type_name((int)v->elem_type), v->n);
        if (v->n && v->n <= 8 && mp_gguf_type_size((int)v->elem_type)) {
            printf(" [");
            for (uint64_t i = 0; i < v->n; i++) {
                if (v->elem_type == MP_GGUF_F32 || v->elem_type == MP_GGUF_F64)
                    printf("%s%g", i ? ", " : "", mp_gguf_arr_f64(v, i));
                else
                    printf("%s%" PRId64, i ? ", " : "", mp_gguf_arr_i64(v, i));
            }
            printf("]");
        }
        printf("\n");
        break;
    case MP_GGUF_F32:
    case MP_GGUF_F64: printf("%g\n", v->num.f64); break;
    case MP_GGUF_BOOL: printf("%s\n", v->num.u64 ? "true" : "false"); break;
    case MP_GGUF_I8:
    case MP_GGUF_I16:
    case MP_GGUF_I32:
    case MP_GGUF_I64: printf("%" PRId64 "\n", v->num.i64); break;
    default: printf("%" PRIu64 "\n", v->num.u64); break;
    }
}

static int info_gguf(const char *path, int list) {
    mp_gguf *g;
    mp_error err;
    if (mp_gguf_open(&g, path, &err)) {
        fprintf(stderr, "mmpipe info: %s\n", err.msg);
        return 1;
    }
    printf("format: GGUF v%u\n", mp_gguf_version(g));
    const char *arch = "";
    mp_gguf_get_str_or(g, "general.architecture", "", &arch, &err);
    if (*arch) printf("architecture: %s\n", arch);
    printf("alignment: %zu\n", mp_gguf_alignment(g));
    printf("metadata: %" PRId64 " keys\n", mp_gguf_n_kv(g));
    for (int64_t i = 0; i < mp_gguf_n_kv(g); i++) {
        printf("  %s: ", mp_gguf_key(g, i));
        print_gguf_value(mp_gguf_kv(g, i));
    }
    tsum s;
    memset(&s, 0, sizeof s);
    if (list) printf("tensor list:\n");
    for (int64_t i = 0; i < mp_gguf_n_tensors(g); i++) tsum_add(&s, mp_gguf_tensor(g, i), list);
    tsum_print(&s);
    mp_gguf_free(g);
    return 0;
}

/* ---------------------------------------------------------------- llama2.c */

static int info_llama2c(const char *path, int list) {
    mp_weights *w;
    mp_llama2c_config c;
    mp_error err;
    if (mp_llama2c_open_weights(&w, path, &c, &err)) {
        fprintf(stderr, "mmpipe info: %s\n", err.msg);
        return 1;
    }
    printf("format: llama2.c v%d\n", c.version);
    printf("architecture: llama\n");
    printf("  dim: %d\n  hidden_dim: %d\n  n_layers: %d\n  n_heads: %d\n  n_kv_heads: %d\n", c.dim, c.hidden_dim,
           c.n_layers, c.n_heads, c.n_kv_heads);
    printf("  vocab_size: %d\n  seq_len: %d\n  head_size: %d\n  shared_classifier: %s\n", c.vocab_size, c.seq_len,
           c.head_size, c.shared_classifier ? "true" : "false");
    weights_summary(w, list);
    mp_weights_free(w);
    return 0;
}

/* ---------------------------------------------------------------- ggml .bin */

static int info_ggml_bin(const char *path, int list) {
    mp_ggml_bin m;
    mp_error err;
    if (mp_ggml_bin_open(&m, path, &err)) {
        fprintf(stderr, "mmpipe info: %s\n", err.msg);
        return 1;
    }
    printf("format: ggml .bin (whisper.cpp)\n");
    printf("architecture: %s\n", mp_ggml_bin_kind_name(m.kind));
    if (m.kind == MP_GGML_BIN_WHISPER) {
        const mp_whisper_hparams *h = &m.whisper;
        printf("  model_type: %s\n", mp_whisper_model_type(h));
        printf("  n_vocab: %d\n  n_audio_ctx: %d\n  n_audio_state: %d\n  n_audio_head: %d\n  n_audio_layer: %d\n",
               h->n_vocab, h->n_audio_ctx, h->n_audio_state, h->n_audio_head, h->n_audio_layer);
        printf("  n_text_ctx: %d\n  n_text_state: %d\n  n_text_head: %d\n  n_text_layer: %d\n  n_mels: %d\n  ftype: %d\n",
               h->n_text_ctx, h->n_text_state, h->n_text_head, h->n_text_layer, h->n_mels, h->ftype);
        mp_whisper_specials sp;
        mp_whisper_specials_from_hparams(h, &sp);
        printf("  multilingual: %s\n", sp.multilingual ? "true" : "false");
    } else if (m.kind == MP_GGML_BIN_SILERO) {
        const mp_silero_hparams *h = &m.silero;
        printf("  type: %s\n  version: %d.%d.%d\n  n_window: %d\n  n_context: %d\n  n_encoder_layers: %d\n", h->type,
               h->version[0], h->version[1], h->version[2], h->n_window, h->n_context, h->n_encoder_layers);
        printf("  lstm_hidden: %d\n", h->lstm_hidden);
    } else if (m.kind == MP_GGML_BIN_PARAKEET) {
        const mp_parakeet_hparams *h = &m.parakeet;
        printf("  n_vocab: %d\n  n_audio_state: %d\n  n_audio_head: %d\n  n_audio_layer: %d\n  n_mels: %d\n  n_fft: %d\n",
               h->n_vocab, h->n_audio_state, h->n_audio_head, h->n_audio_layer, h->n_mels, h->n_fft);
    }
    if (m.mel_filters) printf("mel_filters: %d x %d\n", m.n_mel, m.n_fft_bins);
    if (m.n_vocab_file) printf("vocab: %d tokens\n", m.n_vocab_file);
    tsum s;
    memset(&s, 0, sizeof s);
    if (list) printf("tensor list:\n");
    for (int i = 0; i < m.n_tensors; i++) {
        mp_tensor t = m.tensors[i].t;
        t.name = m.tensors[i].name;
        tsum_add(&s, &t, list);
    }
    tsum_print(&s);
    mp_ggml_bin_close(&m);
    return 0;
}

/* ---------------------------------------------------------------- safetensors and HF folders */

/* Config keys worth showing, when present (text part, vision part, audio/whisper). */
static const char *const text_keys[] = {
    "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim",
    "intermediate_size", "vocab_size", "max_position_embeddings", "rope_theta", "rms_norm_eps",
    "tie_word_embeddings", "num_local_experts", "num_experts", "num_experts_per_tok", "sliding_window",
    "embedding_multiplier", "attention_multiplier", "residual_multiplier", "logits_scaling", "torch_dtype",
    "d_model", "encoder_layers", "decoder_layers", "encoder_attention_heads", "decoder_attention_heads",
    "encoder_ffn_dim", "decoder_ffn_dim", "num_mel_bins", "max_source_positions", "max_target_positions", NULL};
static const char *const vision_keys[] = {
    "hidden_size", "embed_dim", "num_hidden_layers", "depth", "num_attention_heads", "num_heads",
    "intermediate_size", "patch_size", "image_size", "spatial_merge_size", "temporal_patch_size",
    "out_hidden_size", "window_size", NULL};
static const char *const root_keys[] = {"scale_factor", "image_token_id", "video_token_id", "vision_start_token_id",
                                        "rope_scaling.type", "rope_scaling.rope_type", "rope_scaling.factor", NULL};

static void print_json_scalar(const char *prefix, const char *key, const cJSON *v) {
    if (!v || cJSON_IsNull(v)) return;
    if (cJSON_IsNumber(v)) {
        if (v->valuedouble == (double)(int64_t)v->valuedouble && v->valuedouble < 9e15 && v->valuedouble > -9e15)
            printf("  %s%s: %" PRId64 "\n", prefix, key, (int64_t)v->valuedouble);
        else
            printf("  %s%s: %g\n", prefix, key, v->valuedouble);
    } else if (cJSON_IsBool(v)) {
        printf("  %s%s: %s\n", prefix, key, cJSON_IsTrue(v) ? "true" : "false");
    } else if (cJSON_IsString(v)) {
        printf("  %s%s: %s\n", prefix, key, v->valuestring);
    } else if (cJSON_IsArray(v) && cJSON_GetArraySize(v) <= 8) {
        printf("  %s%s: [", prefix, key);
        const cJSON *x;
        int k = 0;
        cJSON_ArrayForEach(x, v) {
            if (cJSON_IsNumber(x)) printf("%s%g", k++ ? ", " : "", x->valuedouble);
        }
        printf("]\n");
    }
}

static void print_keys(const mp_json *j, const char *prefix, const char *const *keys) {
    for (int i = 0; keys[i]; i++) print_json_scalar(prefix, keys[i], mp_json_find(j, keys[i]));
}

/* A sharded checkpoint whose shards are not here: describe the index. */
static void index_only(const char *index_path) {
    mp_json j;
    mp_error err;
    if (mp_json_load(&j, index_path, &err)) return;
    const cJSON *map = mp_json_find(&j, "weight_map");
    int n = 0;
    mp_strindex shards;
    mp_strindex_init(&shards, 16);
    const cJSON *it;
    cJSON_ArrayForEach(it, map) {
        n++;
        if (cJSON_IsString(it)) mp_strindex_put(&shards, it->valuestring, n);
    }
    int nshards = (int)shards.n;
    mp_strindex_free(&shards);
    printf("index: %d tensors in %d shards\n", n, nshards);
    const cJSON *ts = mp_json_find(&j, "metadata.total_size");
    if (cJSON_IsNumber(ts)) printf("index total_size: %.0f\n", ts->valuedouble);
    mp_json_free(&j);
}

static int info_weights(const char *path, int list, int is_dir) {
    mp_error err;
    if (is_dir) {
        mp_hf_config c;
        if (mp_hf_config_load(&c, path, &err) == 0) {
            printf("format: HF folder\n");
            const char *mt = NULL, *arch = NULL;
            mp_json_str_or(&c.config, "model_type", NULL, &mt, &err);
            const cJSON *a = mp_json_find(&c.config, "architectures.0");
            if (cJSON_IsString(a)) arch = a->valuestring;
            if (arch) printf("architecture: %s\n", arch);
            if (mt) printf("model_type: %s\n", mt);
            if (mp_json_present(&c.config)) {
                printf("config:\n");
                print_keys(&c.config, "", root_keys);
                print_keys(&c.text, c.text.root != c.config.root ? "text." : "", text_keys);
                if (c.vision.root != c.config.root) print_keys(&c.vision, "vision.", vision_keys);
                const cJSON *ms = mp_json_find(&c.config, "rope_scaling.mrope_section");
                print_json_scalar("", "rope_scaling.mrope_section", ms);
            }
            if (mp_json_present(&c.adapter)) {
                printf("adapter:\n");
                static const char *const ak[] = {"peft_type", "base_model_name_or_path", "r", "lora_alpha",
                                                 "lora_dropout", "use_rslora", "use_dora", NULL};
                print_keys(&c.adapter, "", ak);
            }
            int64_t eos[8];
            int ne = mp_hf_eos_ids(&c, eos, 8, &err);
            if (ne > 0) {
                printf("eos_token_id:");
                for (int i = 0; i < ne; i++) printf(" %" PRId64, eos[i]);
                printf("\n");
            }
            if (c.chat_template) printf("chat_template: %zu bytes (%s)\n", strlen(c.chat_template), c.chat_template_source);
            mp_hf_config_free(&c);
        } else {
            fprintf(stderr, "mmpipe info: %s\n", err.msg);
            printf("format: folder\n");
        }
    } else {
        printf("format: safetensors\n");
    }
    mp_weights *w;
    if (mp_weights_open(&w, path, &err)) {
        if (is_dir) {
            char idx[2048];
            snprintf(idx, sizeof idx, "%s/model.safetensors.index.json", path);
            if (mp_is_file(idx)) index_only(idx);
            printf("weights: not available (%s)\n", err.msg);
            return 0;
        }
        fprintf(stderr, "mmpipe info: %s\n", err.msg);
        return 1;
    }
    printf("files: %d\n", mp_weights_n_files(w));
    weights_summary(w, list);
    mp_weights_free(w);
    return 0;
}

int cmd_info(int argc, char **argv) {
    int list = 0;
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--tensors")) {
            list = 1;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "mmpipe info: unknown option %s\n", argv[i]);
            usage(stderr);
            return 1;
        } else if (!path) {
            path = argv[i];
        } else {
            fprintf(stderr, "mmpipe info: one model at a time (got %s and %s)\n", path, argv[i]);
            return 1;
        }
    }
    if (!path) {
        usage(stderr);
        return 1;
    }
    mp_error err;
    mp_model_kind k = mp_model_sniff(path, &err);
    if (k == MP_KIND_ERROR) {
        fprintf(stderr, "mmpipe info: %s\n", err.msg);
        return 1;
    }
    printf("file: %s\n", path);
    switch (k) {
    case MP_KIND_GGUF: return info_gguf(path, list);
    case MP_KIND_LLAMA2C: return info_llama2c(path, list);
    case MP_KIND_GGML_BIN: return info_ggml_bin(path, list);
    case MP_KIND_SAFETENSORS:
    case MP_KIND_ST_INDEX: return info_weights(path, list, 0);
    case MP_KIND_FOLDER: return info_weights(path, list, 1);
    default: fprintf(stderr, "mmpipe info: %s: not a model file mmpipe knows\n", path); return 1;
    }
}
