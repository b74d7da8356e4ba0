/* smolvlm_fixture.h — tiny random-weight SmolVLM models written by the tests themselves, in the real
 * file layouts:
 *   HF folder: the real SmolVLM-256M-Instruct config.json / processor configs with the sizes scaled down,
 *              its real tokenizer, chat template and generation config, and model.safetensors
 *              (model.vision_model.*, model.connector.*, model.text_model.*, lm_head) in F32 or BF16;
 *   llama.cpp: a text-model GGUF (llama arch, q/k rows permuted as convert_hf_to_gguf does, the tokenizer
 *              as tokenizer.ggml.* metadata from tokenizer.json, the chat template) and an mmproj GGUF
 *              (clip.projector_type idefics3, v.* / mm.model.fc tensors), from the same weights.
 * Static functions: include in one test file. */
#ifndef SMOLVLM_FIXTURE_H
#define SMOLVLM_FIXTURE_H

#include "test.h"

#include "kernels/mp.h"
#include "models/gguf.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdint.h>
#include <sys/stat.h>

#define FX_REAL "hf/HuggingFaceTB--SmolVLM-256M-Instruct"

typedef struct fx_dims {
    int vD, vF, vL, vH, image, patch, scale; /* vision */
    int tD, tF, tL, tH, tKV, V;              /* text */
    int longest_edge;                        /* processor size.longest_edge (tile = image) */
} fx_dims;

/* Scaled down from SmolVLM-256M-Instruct (768/3072/12 layers/12 heads, 512 px tiles of 16 px patches,
 * scale 4; text 576/1536/30 layers/9:3 heads; longest edge 4 tiles): the same ratios where they matter
 * (patch size, scale factor, GQA 3:1, longest edge = 4 tiles), the real vocabulary. */
static const fx_dims fx_tiny = {32, 64, 2, 2, 128, 16, 4, 48, 96, 2, 3, 1, 49280, 512};

typedef struct fx_tensor {
    char hf[128], gguf[64];
    int nd;
    int64_t shape[4]; /* PyTorch order */
    float *data;
    int permute_heads; /* text q/k: rows permuted for GGUF's interleaved RoPE (n heads), else 0 */
    int mmproj;        /* 1: goes to the mmproj GGUF, 0: the text GGUF */
} fx_tensor;

typedef struct fx_model {
    fx_tensor t[1024]; /* room for the real shapes (SmolVLM-256M: 12 vision + 30 text layers) */
    int n;
} fx_model;

static int64_t fx_numel(const fx_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->nd; i++) n *= t->shape[i];
    return n;
}

static float *fx_add(fx_model *m, unsigned long long *rng, const char *hf, const char *gguf, int mmproj, int nd,
                     int64_t a, int64_t b, int64_t c, int64_t d, float scale, float offset) {
    fx_tensor *t = &m->t[m->n++];
    snprintf(t->hf, sizeof t->hf, "%s", hf);
    snprintf(t->gguf, sizeof t->gguf, "%s", gguf);
    t->nd = nd;
    t->shape[0] = a, t->shape[1] = b, t->shape[2] = c, t->shape[3] = d;
    t->mmproj = mmproj;
    t->permute_heads = 0;
    int64_t n = fx_numel(t);
    t->data = malloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++) t->data[i] = offset + scale * mp_test_randf(rng);
    return t->data;
}

static void fx_make_weights(const fx_dims *d, fx_model *m, unsigned long long seed) {
    unsigned long long rng = seed;
    char h[128], g[64];
    const int side = d->image / d->patch, s = d->scale, hd = d->tD / d->tH;
    m->n = 0;
    const float sv = 1.0f / sqrtf((float)d->vD), sf = 1.0f / sqrtf((float)d->vF);
    fx_add(m, &rng, "model.vision_model.embeddings.patch_embedding.weight", "v.patch_embd.weight", 1, 4, d->vD, 3,
           d->patch, d->patch, 1.0f / sqrtf(3.0f * d->patch * d->patch), 0);
    fx_add(m, &rng, "model.vision_model.embeddings.patch_embedding.bias", "v.patch_embd.bias", 1, 1, d->vD, 1, 1, 1, 0.1f, 0);
    fx_add(m, &rng, "model.vision_model.embeddings.position_embedding.weight", "v.position_embd.weight", 1, 2,
           side * side, d->vD, 1, 1, 0.5f, 0);
    for (int l = 0; l < d->vL; l++) {
        static const struct { const char *hf, *gg; int kind; } L[] = {
            {"layer_norm1.weight", "ln1.weight", 0}, {"layer_norm1.bias", "ln1.bias", 1},
            {"self_attn.q_proj.weight", "attn_q.weight", 2}, {"self_attn.q_proj.bias", "attn_q.bias", 1},
            {"self_attn.k_proj.weight", "attn_k.weight", 2}, {"self_attn.k_proj.bias", "attn_k.bias", 1},
            {"self_attn.v_proj.weight", "attn_v.weight", 2}, {"self_attn.v_proj.bias", "attn_v.bias", 1},
            {"self_attn.out_proj.weight", "attn_out.weight", 2}, {"self_attn.out_proj.bias", "attn_out.bias", 1},
            {"layer_norm2.weight", "ln2.weight", 0}, {"layer_norm2.bias", "ln2.bias", 1},
            {"mlp.fc1.weight", "ffn_up.weight", 3}, {"mlp.fc1.bias", "ffn_up.bias", 4},
            {"mlp.fc2.weight", "ffn_down.weight", 5}, {"mlp.fc2.bias", "ffn_down.bias", 1},
        };
        for (size_t i = 0; i < sizeof L / sizeof L[0]; i++) {
            snprintf(h, sizeof h, "model.vision_model.encoder.layers.%d.%s", l, L[i].hf);
            snprintf(g, sizeof g, "v.blk.%d.%s", l, L[i].gg);
            switch (L[i].kind) {
            case 0: fx_add(m, &rng, h, g, 1, 1, d->vD, 1, 1, 1, 0.2f, 1.0f); break;
            case 1: fx_add(m, &rng, h, g, 1, 1, d->vD, 1, 1, 1, 0.1f, 0); break;
            case 2: fx_add(m, &rng, h, g, 1, 2, d->vD, d->vD, 1, 1, 2 * sv, 0); break;
            case 3: fx_add(m, &rng, h, g, 1, 2, d->vF, d->vD, 1, 1, 2 * sv, 0); break;
            case 4: fx_add(m, &rng, h, g, 1, 1, d->vF, 1, 1, 1, 0.1f, 0); break;
            default: fx_add(m, &rng, h, g, 1, 2, d->vD, d->vF, 1, 1, sf, 0); break;
            }
        }
    }
    fx_add(m, &rng, "model.vision_model.post_layernorm.weight", "v.post_ln.weight", 1, 1, d->vD, 1, 1, 1, 0.2f, 1.0f);
    fx_add(m, &rng, "model.vision_model.post_layernorm.bias", "v.post_ln.bias", 1, 1, d->vD, 1, 1, 1, 0.1f, 0);
    fx_add(m, &rng, "model.connector.modality_projection.proj.weight", "mm.model.fc.weight", 1, 2, d->tD,
           (int64_t)d->vD * s * s, 1, 1, 2.0f / sqrtf((float)d->vD * s * s), 0);
    /* text model */
    const float st = 1.0f / sqrtf((float)d->tD), stf = 1.0f / sqrtf((float)d->tF);
    fx_add(m, &rng, "model.text_model.embed_tokens.weight", "token_embd.weight", 0, 2, d->V, d->tD, 1, 1, 1.0f, 0);
    for (int l = 0; l < d->tL; l++) {
        static const struct { const char *hf, *gg; int kind; } L[] = {
            {"input_layernorm.weight", "attn_norm.weight", 0},      {"self_attn.q_proj.weight", "attn_q.weight", 1},
            {"self_attn.k_proj.weight", "attn_k.weight", 2},        {"self_attn.v_proj.weight", "attn_v.weight", 2},
            {"self_attn.o_proj.weight", "attn_output.weight", 3},   {"post_attention_layernorm.weight", "ffn_norm.weight", 0},
            {"mlp.gate_proj.weight", "ffn_gate.weight", 4},         {"mlp.up_proj.weight", "ffn_up.weight", 4},
            {"mlp.down_proj.weight", "ffn_down.weight", 5},
        };
        for (size_t i = 0; i < sizeof L / sizeof L[0]; i++) {
            snprintf(h, sizeof h, "model.text_model.layers.%d.%s", l, L[i].hf);
            snprintf(g, sizeof g, "blk.%d.%s", l, L[i].gg);
            switch (L[i].kind) {
            case 0: fx_add(m, &rng, h, g, 0, 1, d->tD, 1, 1, 1, 0.2f, 1.0f); break;
            case 1: fx_add(m, &rng, h, g, 0, 2, d->tH * hd, d->tD, 1, 1, 2 * st, 0); m->t[m->n - 1].permute_heads = d->tH; break;
            case 2:
                fx_add(m, &rng, h, g, 0, 2, d->tKV * hd, d->tD, 1, 1, 2 * st, 0);
                if (strstr(L[i].hf, "k_proj")) m->t[m->n - 1].permute_heads = d->tKV;
                break;
            case 3: fx_add(m, &rng, h, g, 0, 2, d->tD, d->tH * hd, 1, 1, st, 0); break;
            case 4: fx_add(m, &rng, h, g, 0, 2, d->tF, d->tD, 1, 1, 2 * st, 0); break;
            default: fx_add(m, &rng, h, g, 0, 2, d->tD, d->tF, 1, 1, stf, 0); break;
            }
        }
    }
    fx_add(m, &rng, "model.text_model.norm.weight", "output_norm.weight", 0, 1, d->tD, 1, 1, 1, 0.2f, 1.0f);
    fx_add(m, &rng, "lm_head.weight", "output.weight", 0, 2, d->V, d->tD, 1, 1, 2.0f / sqrtf((float)d->tD), 0);
}

static void fx_free(fx_model *m) {
    for (int i = 0; i < m->n; i++) free(m->t[i].data);
    m->n = 0;
}

/* ---------------------------------------------------------------- files */

static int fx_copy(const char *src, const char *dst) {
    FILE *a = fopen(src, "rb"), *b = a ? fopen(dst, "wb") : NULL;
    if (!a || !b) {
        if (a) fclose(a);
        return -1;
    }
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, a)) > 0) fwrite(buf, 1, n, b);
    fclose(a);
    return fclose(b);
}

static cJSON *fx_read_json(const char *path) {
    char *b = mp_test_read_file(path, NULL);
    cJSON *j = b ? cJSON_Parse(b) : NULL;
    free(b);
    return j;
}

static int fx_write_json(cJSON *j, const char *path) {
    char *s = cJSON_Print(j);
    FILE *f = fopen(path, "w");
    if (!f || !s) {
        free(s);
        if (f) fclose(f);
        return -1;
    }
    fputs(s, f);
    free(s);
    return fclose(f);
}

static void fx_set(cJSON *o, const char *key, double v) {
    cJSON_DeleteItemFromObjectCaseSensitive(o, key);
    cJSON_AddNumberToObject(o, key, v);
}

/* config.json, preprocessor_config.json, processor_config.json scaled down; the tokenizer files, chat
 * template and generation config copied */
static int fx_write_configs(const fx_dims *d, const char *dir) { /* dir: at most 1000 bytes */
    char src[1024], dst[1200];
    cJSON *c = fx_read_json(mp_fixture(FX_REAL "/config.json"));
    if (!c) return -1;
    cJSON *tc = cJSON_GetObjectItemCaseSensitive(c, "text_config"), *vc = cJSON_GetObjectItemCaseSensitive(c, "vision_config");
    fx_set(tc, "hidden_size", d->tD);
    fx_set(tc, "intermediate_size", d->tF);
    fx_set(tc, "num_hidden_layers", d->tL);
    fx_set(tc, "num_attention_heads", d->tH);
    fx_set(tc, "num_key_value_heads", d->tKV);
    fx_set(tc, "head_dim", d->tD / d->tH);
    fx_set(tc, "vocab_size", d->V);
    fx_set(vc, "hidden_size", d->vD);
    fx_set(vc, "intermediate_size", d->vF);
    fx_set(vc, "num_hidden_layers", d->vL);
    fx_set(vc, "num_attention_heads", d->vH);
    fx_set(vc, "image_size", d->image);
    fx_set(vc, "patch_size", d->patch);
    fx_set(c, "scale_factor", d->scale);
    cJSON_SetNumberValue(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(vc, "max_image_size"), "longest_edge"), d->image);
    cJSON_SetNumberValue(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(vc, "size"), "longest_edge"), d->longest_edge);
    snprintf(dst, sizeof dst, "%s/config.json", dir);
    int rc = fx_write_json(c, dst);
    cJSON_Delete(c);
    c = fx_read_json(mp_fixture(FX_REAL "/preprocessor_config.json"));
    if (!c) return -1;
    cJSON_SetNumberValue(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(c, "max_image_size"), "longest_edge"), d->image);
    cJSON_SetNumberValue(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(c, "size"), "longest_edge"), d->longest_edge);
    snprintf(dst, sizeof dst, "%s/preprocessor_config.json", dir);
    rc |= fx_write_json(c, dst);
    cJSON_Delete(c);
    c = fx_read_json(mp_fixture(FX_REAL "/processor_config.json"));
    if (!c) return -1;
    const int side = d->image / d->patch;
    fx_set(c, "image_seq_len", side * side / (d->scale * d->scale));
    snprintf(dst, sizeof dst, "%s/processor_config.json", dir);
    rc |= fx_write_json(c, dst);
    cJSON_Delete(c);
    static const char *const files[] = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                                        "added_tokens.json", "chat_template.json", "generation_config.json"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(src, sizeof src, "%s", mp_fixture(FX_REAL "/"));
        strncat(src, files[i], sizeof src - strlen(src) - 1);
        snprintf(dst, sizeof dst, "%s/%s", dir, files[i]);
        rc |= fx_copy(src, dst);
    }
    return rc;
}

/* model.safetensors with every tensor in F32 or BF16 */
static int fx_write_safetensors(const fx_model *m, const char *path, int bf16) {
    size_t cap = 1 << 16, w = 0, off = 0;
    char *hdr = malloc(cap);
    w += (size_t)snprintf(hdr + w, cap - w, "{");
    for (int i = 0; i < m->n; i++) {
        const fx_tensor *t = &m->t[i];
        size_t bytes = (size_t)fx_numel(t) * (bf16 ? 2 : 4);
        w += (size_t)snprintf(hdr + w, cap - w, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[", i ? "," : "", t->hf,
                              bf16 ? "BF16" : "F32");
        for (int k = 0; k < t->nd; k++) w += (size_t)snprintf(hdr + w, cap - w, "%s%lld", k ? "," : "", (long long)t->shape[k]);
        w += (size_t)snprintf(hdr + w, cap - w, "],\"data_offsets\":[%zu,%zu]}", off, off + bytes);
        off += bytes;
    }
    w += (size_t)snprintf(hdr + w, cap - w, "}");
    while (w % 8) hdr[w++] = ' ';
    FILE *f = fopen(path, "wb");
    if (!f) {
        free(hdr);
        return -1;
    }
    uint64_t n = w;
    fwrite(&n, 8, 1, f);
    fwrite(hdr, 1, w, f);
    for (int i = 0; i < m->n; i++) {
        const fx_tensor *t = &m->t[i];
        int64_t ne = fx_numel(t);
        if (!bf16) {
            fwrite(t->data, 4, (size_t)ne, f);
            continue;
        }
        for (int64_t k = 0; k < ne; k++) {
            mp_bf16 b = mp_f32_to_bf16(t->data[k]);
            fwrite(&b, 2, 1, f);
        }
    }
    free(hdr);
    return fclose(f);
}

/* a BF16 checkpoint's values as the model sees them (so the reference and the model agree exactly) */
static void fx_round_bf16(fx_model *m) {
    for (int i = 0; i < m->n; i++) {
        int64_t n = fx_numel(&m->t[i]);
        for (int64_t k = 0; k < n; k++) m->t[i].data[k] = mp_bf16_to_f32(mp_f32_to_bf16(m->t[i].data[k]));
    }
}

/* llama.cpp's LlamaModel.permute: HF rotate-half row order -> interleaved pairs */
static float *fx_permute(const float *w, int64_t rows, int64_t cols, int n_head) {
    float *o = malloc(sizeof(float) * (size_t)(rows * cols));
    const int64_t hd = rows / n_head;
    for (int h = 0; h < n_head; h++)
        for (int64_t i = 0; i < hd / 2; i++)
            for (int half = 0; half < 2; half++)
                memcpy(o + (h * hd + 2 * i + half) * cols, w + (h * hd + half * hd / 2 + i) * cols, sizeof(float) * (size_t)cols);
    return o;
}

static int fx_add_tensors(mp_gguf_writer *g, const fx_model *m, int mmproj, float **perm) {
    for (int i = 0; i < m->n; i++) {
        const fx_tensor *t = &m->t[i];
        if (t->mmproj != mmproj) continue;
        int64_t ne[4];
        for (int k = 0; k < t->nd; k++) ne[k] = t->shape[t->nd - 1 - k];
        const float *data = t->data;
        if (t->permute_heads) data = perm[i] = fx_permute(t->data, t->shape[0], t->shape[1], t->permute_heads);
        if (mp_gguf_writer_add_tensor(g, t->gguf, MP_F32, t->nd, ne, data) < 0) return -1;
    }
    return 0;
}

/* tokenizer.ggml.* from tokenizer.json (as convert_hf_to_gguf writes a SmolLM2 vocabulary) */
static int fx_gguf_tokenizer(mp_gguf_writer *g, int V, const char *tmpl) {
    cJSON *t = fx_read_json(mp_fixture(FX_REAL "/tokenizer.json"));
    if (!t) return -1;
    cJSON *model = cJSON_GetObjectItemCaseSensitive(t, "model");
    cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab"), *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    const char **toks = calloc((size_t)V, sizeof(char *));
    int32_t *types = malloc(sizeof(int32_t) * (size_t)V);
    char **own = calloc((size_t)V, sizeof(char *));
    for (int i = 0; i < V; i++) types[i] = 1;
    cJSON *it;
    cJSON_ArrayForEach(it, vocab) {
        int id = it->valueint;
        if (id >= 0 && id < V) toks[id] = it->string;
    }
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(t, "added_tokens")) {
        int id = cJSON_GetObjectItemCaseSensitive(it, "id")->valueint;
        if (id < 0 || id >= V) continue;
        toks[id] = cJSON_GetObjectItemCaseSensitive(it, "content")->valuestring;
        types[id] = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(it, "special")) ? 3 : 4;
    }
    for (int i = 0; i < V; i++)
        if (!toks[i]) {
            own[i] = malloc(32);
            snprintf(own[i], 32, "[PAD%d]", i);
            toks[i] = own[i];
            types[i] = 5;
        }
    int nm = cJSON_GetArraySize(merges);
    char **ms = malloc(sizeof(char *) * (size_t)nm);
    int k = 0;
    cJSON_ArrayForEach(it, merges) {
        if (cJSON_IsString(it)) {
            ms[k++] = strdup(it->valuestring);
        } else { /* ["a", "b"] */
            const char *a = cJSON_GetArrayItem(it, 0)->valuestring, *b = cJSON_GetArrayItem(it, 1)->valuestring;
            ms[k] = malloc(strlen(a) + strlen(b) + 2);
            sprintf(ms[k++], "%s %s", a, b);
        }
    }
    int rc = 0;
    rc |= mp_gguf_set_str(g, "tokenizer.ggml.model", "gpt2");
    rc |= mp_gguf_set_str(g, "tokenizer.ggml.pre", "smollm");
    rc |= mp_gguf_set_arr_str(g, "tokenizer.ggml.tokens", toks, (uint64_t)V);
    rc |= mp_gguf_set_arr(g, "tokenizer.ggml.token_type", MP_GGUF_I32, types, (uint64_t)V);
    rc |= mp_gguf_set_arr_str(g, "tokenizer.ggml.merges", (const char *const *)ms, (uint64_t)k);
    rc |= mp_gguf_set_u32(g, "tokenizer.ggml.bos_token_id", 1);
    rc |= mp_gguf_set_u32(g, "tokenizer.ggml.eos_token_id", 49279);
    rc |= mp_gguf_set_u32(g, "tokenizer.ggml.padding_token_id", 2);
    rc |= mp_gguf_set_bool(g, "tokenizer.ggml.add_bos_token", 0);
    if (tmpl) rc |= mp_gguf_set_str(g, "tokenizer.chat_template", tmpl);
    for (int i = 0; i < k; i++) free(ms[i]);
    for (int i = 0; i < V; i++) free(own[i]);
    free(ms), free(own), free(types), free(toks);
    cJSON_Delete(t);
    return rc ? -1 : 0;
}

static int fx_write_gguf_text(const fx_dims *d, const fx_model *m, const char *path, mp_error *err) {
    mp_gguf_writer *g = mp_gguf_writer_new();
    mp_gguf_set_str(g, "general.architecture", "llama");
    mp_gguf_set_str(g, "general.name", "SmolVLM tiny test");
    mp_gguf_set_u32(g, "llama.context_length", 8192);
    mp_gguf_set_u32(g, "llama.embedding_length", (uint32_t)d->tD);
    mp_gguf_set_u32(g, "llama.feed_forward_length", (uint32_t)d->tF);
    mp_gguf_set_u32(g, "llama.block_count", (uint32_t)d->tL);
    mp_gguf_set_u32(g, "llama.attention.head_count", (uint32_t)d->tH);
    mp_gguf_set_u32(g, "llama.attention.head_count_kv", (uint32_t)d->tKV);
    mp_gguf_set_u32(g, "llama.rope.dimension_count", (uint32_t)(d->tD / d->tH));
    mp_gguf_set_f32(g, "llama.rope.freq_base", 100000.0f);
    mp_gguf_set_f32(g, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    mp_gguf_set_u32(g, "llama.vocab_size", (uint32_t)d->V);
    cJSON *ct = fx_read_json(mp_fixture(FX_REAL "/chat_template.json"));
    const char *tmpl = ct ? cJSON_GetObjectItemCaseSensitive(ct, "chat_template")->valuestring : NULL;
    int rc = fx_gguf_tokenizer(g, d->V, tmpl);
    float **perm = calloc((size_t)m->n, sizeof(float *));
    if (rc == 0) rc = fx_add_tensors(g, m, 0, perm);
    if (rc == 0) rc = mp_gguf_writer_write(g, path, err);
    else mp_errf(err, "%s: building the GGUF failed", path);
    for (int i = 0; i < m->n; i++) free(perm[i]);
    free(perm);
    cJSON_Delete(ct);
    mp_gguf_writer_free(g);
    return rc;
}

static int fx_write_mmproj(const fx_dims *d, const fx_model *m, const char *path, mp_error *err) {
    mp_gguf_writer *g = mp_gguf_writer_new();
    mp_gguf_set_str(g, "general.architecture", "clip");
    mp_gguf_set_str(g, "clip.projector_type", "idefics3");
    mp_gguf_set_bool(g, "clip.has_vision_encoder", 1);
    mp_gguf_set_bool(g, "clip.use_gelu", 1);
    mp_gguf_set_u32(g, "clip.vision.image_size", (uint32_t)d->image);
    mp_gguf_set_u32(g, "clip.vision.patch_size", (uint32_t)d->patch);
    mp_gguf_set_u32(g, "clip.vision.embedding_length", (uint32_t)d->vD);
    mp_gguf_set_u32(g, "clip.vision.feed_forward_length", (uint32_t)d->vF);
    mp_gguf_set_u32(g, "clip.vision.block_count", (uint32_t)d->vL);
    mp_gguf_set_u32(g, "clip.vision.attention.head_count", (uint32_t)d->vH);
    mp_gguf_set_f32(g, "clip.vision.attention.layer_norm_epsilon", 1e-6f);
    mp_gguf_set_u32(g, "clip.vision.projection_dim", (uint32_t)d->tD);
    mp_gguf_set_u32(g, "clip.vision.projector.scale_factor", (uint32_t)d->scale);
    mp_gguf_set_u32(g, "clip.vision.preproc_image_size", (uint32_t)d->longest_edge);
    const float half[3] = {0.5f, 0.5f, 0.5f};
    mp_gguf_set_arr(g, "clip.vision.image_mean", MP_GGUF_F32, half, 3);
    mp_gguf_set_arr(g, "clip.vision.image_std", MP_GGUF_F32, half, 3);
    int rc = fx_add_tensors(g, m, 1, NULL);
    rc = rc == 0 ? mp_gguf_writer_write(g, path, err) : mp_errf(err, "%s: building the GGUF failed", path);
    mp_gguf_writer_free(g);
    return rc;
}

/* root/hf (folder), root/text.gguf, root/mmproj.gguf; bf16: the safetensors in BF16 (and the weights
 * rounded to it, so every layout holds the same values) */
static int fx_write_all(const fx_dims *d, const char *root, unsigned long long seed, int bf16, mp_error *err) {
    char p[1024];
    mkdir(root, 0755);
    snprintf(p, sizeof p, "%s/hf", root);
    mkdir(p, 0755);
    fx_model m;
    fx_make_weights(d, &m, seed);
    if (bf16) fx_round_bf16(&m);
    int rc = fx_write_configs(d, p);
    if (rc) mp_errf(err, "%s: writing the configs failed (fixtures missing?)", p);
    snprintf(p, sizeof p, "%s/hf/model.safetensors", root);
    if (rc == 0 && fx_write_safetensors(&m, p, bf16) != 0) rc = mp_errf(err, "%s: write failed", p);
    snprintf(p, sizeof p, "%s/text.gguf", root);
    if (rc == 0) rc = fx_write_gguf_text(d, &m, p, err);
    snprintf(p, sizeof p, "%s/mmproj.gguf", root);
    if (rc == 0) rc = fx_write_mmproj(d, &m, p, err);
    fx_free(&m);
    return rc;
}

/* ---------------------------------------------------------------- SmolVLM2
 * SmolVLM2 checkpoints are SmolVLM with model_type "smolvlm" (SmolVLMConfig / SmolVLMVisionConfig, the same
 * tensors), SmolVLMProcessor and a video_sampling block in preprocessor_config.json. Published shapes
 * (HF hub config.json / preprocessor_config.json; their SmolLM2 text models' configs):
 *   HuggingFaceTB/SmolVLM2-256M-Video-Instruct: vision 768 / 3072 / 12 layers / 12 heads, 512-px image of
 *     16-px patches, scale_factor 4 (image_seq_len 64); text (SmolLM2-135M-like) 576 / 1536 / 30 layers /
 *     9 heads / 3 kv heads, vocab 49280, rope_theta 100000; image_token_id 49190; processor: size.longest_edge
 *     2048, max_image_size 512, resample 1, video_sampling {fps 1, max_frames 64, video_size.longest_edge 512}.
 *   HuggingFaceTB/SmolVLM-500M-Instruct (and SmolVLM2-500M-Video-Instruct): the same vision tower and
 *     processor; text (SmolLM2-360M) 960 / 2560 / 32 layers / 15 heads / 5 kv heads.
 * fx_tiny above is the 256M shape scaled down (GQA 3:1, scale 4, longest edge = 4 tiles); fx_tiny500 is
 * the 500M text shape scaled down: FFN ratio 8:3 (2560:960), GQA 3:1 (15:5), head_dim 20. */
static const fx_dims fx_tiny500 = {32, 64, 2, 2, 128, 16, 4, 60, 160, 2, 3, 1, 49280, 512};

/* Rewrites the configs of an HF folder written by fx_write_configs into SmolVLM2's (model_type smolvlm,
 * SmolVLMProcessor, video_sampling with video_size = the tile, as the real 512 = max_image_size). */
static inline int fx_make_smolvlm2(const fx_dims *d, const char *dir, int max_frames) {
    char p[1200];
    int rc = 0;
    snprintf(p, sizeof p, "%s/config.json", dir);
    cJSON *c = fx_read_json(p);
    if (!c) return -1;
    cJSON_ReplaceItemInObjectCaseSensitive(c, "model_type", cJSON_CreateString("smolvlm"));
    const char *arch[1] = {"SmolVLMForConditionalGeneration"};
    cJSON_ReplaceItemInObjectCaseSensitive(c, "architectures", cJSON_CreateStringArray(arch, 1));
    cJSON_ReplaceItemInObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(c, "vision_config"), "model_type",
                                           cJSON_CreateString("smolvlm_vision"));
    rc |= fx_write_json(c, p);
    cJSON_Delete(c);
    snprintf(p, sizeof p, "%s/preprocessor_config.json", dir);
    c = fx_read_json(p);
    if (!c) return -1;
    cJSON_ReplaceItemInObjectCaseSensitive(c, "image_processor_type", cJSON_CreateString("SmolVLMImageProcessor"));
    cJSON_ReplaceItemInObjectCaseSensitive(c, "processor_class", cJSON_CreateString("SmolVLMProcessor"));
    cJSON *vs = cJSON_AddObjectToObject(c, "video_sampling");
    cJSON_AddNumberToObject(vs, "fps", 1);
    cJSON_AddNumberToObject(vs, "max_frames", max_frames);
    cJSON_AddNumberToObject(cJSON_AddObjectToObject(vs, "video_size"), "longest_edge", d->image);
    rc |= fx_write_json(c, p);
    cJSON_Delete(c);
    snprintf(p, sizeof p, "%s/processor_config.json", dir);
    c = fx_read_json(p);
    if (!c) return -1;
    cJSON_ReplaceItemInObjectCaseSensitive(c, "processor_class", cJSON_CreateString("SmolVLMProcessor"));
    rc |= fx_write_json(c, p);
    cJSON_Delete(c);
    return rc ? -1 : 0;
}

#endif
