/* vqa_test.h — helpers of the Qwen2-VL tests: tiny random-weight models written by tests/ref/qwen2vl_ref.py
 * at test time, inputs (a fixture image, synthetic video frames) and files exchanged with the reference.
 * Static functions: include in one test file. */
#ifndef VQA_TEST_H
#define VQA_TEST_H

#include "test.h"

#include "encoders/qwen2vl_vit.h"
#include "llm/jinja.h"
#include "models/gguf.h"
#include "models/mmap.h"
#include "models/weights.h"
#include "preprocess/image.h"
#include "preprocess/imgproc.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

/* a fresh scratch folder under the build tree */
static const char *vt_tmpdir(const char *name) {
    static char dir[1024];
    snprintf(dir, sizeof dir, "%s/tests/vqa/%s.XXXXXX", MP_BINARY_DIR, name);
    if (!mkdtemp(dir)) {
        snprintf(dir, sizeof dir, "/tmp/%s.XXXXXX", name);
        if (!mkdtemp(dir)) return NULL;
    }
    return dir;
}

/* removes the scratch folder when every check passed (kept for a look otherwise) */
static void vt_cleanup(const char *dir) {
    if (mp_test_failures) {
        fprintf(stderr, "scratch files kept in %s\n", dir);
        return;
    }
    char cmd[1100];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

/* 0 when the python reference can run, else prints why and returns MP_TEST_SKIP */
static int vt_python_ok(void) {
    if (access(MP_PYTHON, X_OK) != 0) {
        fprintf(stderr, "skip: %s not found\n", MP_PYTHON);
        return MP_TEST_SKIP;
    }
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "%s -c 'import torch, numpy' 2>/dev/null", MP_PYTHON);
    if (system(cmd) != 0) {
        fprintf(stderr, "skip: %s has no torch/numpy\n", MP_PYTHON);
        return MP_TEST_SKIP;
    }
    return 0;
}

/* runs tests/ref/qwen2vl_ref.py with the given arguments; its exit status */
static int vt_ref(const char *args) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "MMPIPE_FIXTURES='%s' %s %s/tests/ref/qwen2vl_ref.py %s", mp_fixture(""), MP_PYTHON,
             MP_SOURCE_DIR, args);
    int rc = system(cmd);
    if (rc != 0) fprintf(stderr, "reference failed (%d): %s\n", rc, cmd);
    return rc;
}

/* a tiny model folder DIR/NAME: variant "qwen2vl" or "qwen25vl" */
static int vt_make_model(const char *dir, const char *name, const char *variant, int seed, int bf16, char *out,
                         size_t cap) {
    snprintf(out, cap, "%s/%s", dir, name);
    char args[2048];
    snprintf(args, sizeof args, "make %s %s %d%s", variant, out, seed, bf16 ? " bf16" : "");
    return vt_ref(args);
}

static void *vt_read(const char *dir, const char *name, size_t elem, long *n) {
    char p[1200];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    size_t bytes = 0;
    void *b = mp_test_read_file(p, &bytes);
    if (n) *n = b ? (long)(bytes / elem) : -1;
    if (!b) fprintf(stderr, "cannot read %s\n", p);
    return b;
}

/* ours (n floats) vs the reference's float32 file: max |diff| / max |ref| below tol */
static void vt_check_close(const char *dir, const char *name, const float *ours, long n, double tol, const char *what) {
    long nr;
    float *ref = vt_read(dir, name, 4, &nr);
    CHECKF(nr == n, "%s: %ld values, the reference has %ld", what, n, nr);
    if (ref && nr == n) {
        double e = mp_test_rel_err(ours, ref, (size_t)n);
        fprintf(stderr, "%s: rel err %.2e\n", what, e);
        CHECKF(e < tol, "%s: rel err %.3g > %g", what, e, tol);
    }
    free(ref);
}

static int vt_write(const char *dir, const char *name, const void *data, size_t bytes) {
    char p[1200];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    if (!f) return -1;
    size_t w = fwrite(data, 1, bytes, f);
    return fclose(f) == 0 && w == bytes ? 0 : -1;
}

/* n synthetic w x h RGB frames: moving gradients, different per frame */
static inline void vt_frames(mp_image *fr, int n, int w, int h) {
    for (int k = 0; k < n; k++) {
        mp_image_alloc(&fr[k], w, h, NULL);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                uint8_t *p = fr[k].data + ((size_t)y * w + x) * 3;
                p[0] = (uint8_t)((x * 5 + k * 40) & 255);
                p[1] = (uint8_t)((y * 7 + x * k) & 255);
                p[2] = (uint8_t)(((x ^ y) * 3 + k * 17) & 255);
            }
    }
}

/* one image or video through the model's processor: patches malloc'd, grid filled */
static inline float *vt_preprocess(const mp_qwen2vl_vit *m, const mp_image *frames, int n, mp_qwen2vl_grid *g) {
    mp_qwen2vl_plan plan;
    mp_error err;
    if (mp_qwen2vl_plan_for(frames[0].w, frames[0].h, n, &m->proc, &plan, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        return NULL;
    }
    float *p = malloc(sizeof(float) * (size_t)plan.n_patches * plan.patch_dim);
    if (mp_qwen2vl_preprocess(frames, n, &m->proc, p, &plan, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        free(p);
        return NULL;
    }
    g->t = plan.grid_t, g->h = plan.grid_h, g->w = plan.grid_w;
    return p;
}

/* ---------------------------------------------------------------- llama.cpp mmproj from the HF folder */

/* What convert_hf_to_gguf.py's Qwen2VLVisionModel writes for the vision tower of the HF folder (F32 tensors):
 * qkv split into attn_q/k/v, the Conv3d weight split into one Conv2d weight per temporal tap, llama.cpp
 * names and clip.* keys (including Qwen2-VL's feed_forward_length = the text width, as the converter sets it). */
static inline int vt_write_mmproj(const mp_qwen2vl_vit *m, const char *hf_dir, const char *path) {
    mp_weights *w = NULL;
    mp_error err;
    if (mp_weights_open(&w, hf_dir, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    const mp_qwen2vl_vit_config *c = &m->cfg;
    const int v25 = c->variant == MP_QWEN2VL_V25;
    const int64_t D = c->dim, P = c->patch_size, PP = P * P;
    mp_gguf_writer *g = mp_gguf_writer_new();
    float *keep[1024];
    int nk = 0, rc = 0;
    mp_gguf_set_str(g, "general.architecture", "clip");
    mp_gguf_set_str(g, "clip.projector_type", v25 ? "qwen2.5vl_merger" : "qwen2vl_merger");
    mp_gguf_set_bool(g, "clip.has_vision_encoder", 1);
    mp_gguf_set_u32(g, "clip.vision.image_size", 560);
    mp_gguf_set_u32(g, "clip.vision.patch_size", (uint32_t)P);
    mp_gguf_set_u32(g, "clip.vision.embedding_length", (uint32_t)D);
    mp_gguf_set_u32(g, "clip.vision.feed_forward_length", (uint32_t)(v25 ? c->n_ff : c->out_dim));
    mp_gguf_set_u32(g, "clip.vision.block_count", (uint32_t)c->n_layer);
    mp_gguf_set_u32(g, "clip.vision.attention.head_count", (uint32_t)c->n_head);
    mp_gguf_set_f32(g, "clip.vision.attention.layer_norm_epsilon", 1e-6f);
    mp_gguf_set_u32(g, "clip.vision.projection_dim", (uint32_t)c->out_dim);
    mp_gguf_set_arr(g, "clip.vision.image_mean", MP_GGUF_F32, m->proc.norm.mean, 3);
    mp_gguf_set_arr(g, "clip.vision.image_std", MP_GGUF_F32, m->proc.norm.std, 3);
    if (v25) {
        int first = -1;
        for (int l = 0; l < c->n_layer && first < 0; l++)
            if (c->full_attn[l]) first = l;
        mp_gguf_set_bool(g, "clip.use_silu", 1);
        mp_gguf_set_u32(g, "clip.vision.n_wa_pattern", (uint32_t)(first + 1));
    }
    for (int64_t i = 0; i < mp_weights_count(w) && rc == 0; i++) {
        const char *hn = mp_weights_name(w, i);
        const mp_tensor *t = mp_weights_at(w, i);
        if (strncmp(hn, "visual.", 7) != 0) continue;
        if (t->dtype != MP_F32) {
            fprintf(stderr, "vt_write_mmproj: F32 checkpoints only\n");
            rc = -1;
            break;
        }
        const float *src = t->data;
        int64_t ne[4] = {t->ne[0], t->ne[1], t->ne[2], t->ne[3]};
        char gn[160];
        int l;
        char rest[128];
        if (!strcmp(hn, "visual.patch_embed.proj.weight")) {
            for (int k = 0; k < 2; k++) {
                float *d = keep[nk++] = malloc(sizeof(float) * (size_t)(D * 3 * PP));
                for (int64_t o = 0; o < D * 3; o++) memcpy(d + o * PP, src + (o * 2 + k) * PP, sizeof(float) * (size_t)PP);
                int64_t n4[4] = {P, P, 3, D};
                rc |= mp_gguf_writer_add_tensor(g, k ? "v.patch_embd.weight.1" : "v.patch_embd.weight", MP_F32, 4, n4, d);
            }
            continue;
        }
        if (sscanf(hn, "visual.blocks.%d.%127s", &l, rest) == 2) {
            if (!strncmp(rest, "attn.qkv.", 9)) {
                static const char *qkv[3] = {"attn_q", "attn_k", "attn_v"};
                int bias = !strcmp(rest + 9, "bias");
                for (int k = 0; k < 3; k++) {
                    snprintf(gn, sizeof gn, "v.blk.%d.%s.%s", l, qkv[k], rest + 9);
                    int64_t n2[2] = {D, D};
                    rc |= mp_gguf_writer_add_tensor(g, gn, MP_F32, bias ? 1 : 2, n2, src + k * D * (bias ? 1 : D));
                }
                continue;
            }
            static const char *const map[][2] = {{"norm1.", "ln1."},           {"norm2.", "ln2."},
                                                 {"attn.proj.", "attn_out."},  {"mlp.fc1.", "ffn_up."},
                                                 {"mlp.fc2.", "ffn_down."},    {"mlp.gate_proj.", "ffn_gate."},
                                                 {"mlp.up_proj.", "ffn_up."},  {"mlp.down_proj.", "ffn_down."}};
            gn[0] = 0;
            for (size_t k = 0; k < sizeof map / sizeof map[0]; k++)
                if (!strncmp(rest, map[k][0], strlen(map[k][0])))
                    snprintf(gn, sizeof gn, "v.blk.%d.%s%s", l, map[k][1], rest + strlen(map[k][0]));
        } else if (!strncmp(hn, "visual.merger.ln_q.", 19)) {
            snprintf(gn, sizeof gn, "v.post_ln.%s", hn + 19);
        } else if (!strncmp(hn, "visual.merger.mlp.", 18)) {
            snprintf(gn, sizeof gn, "mm.%s", hn + 18);
        } else {
            gn[0] = 0;
        }
        if (!gn[0]) {
            fprintf(stderr, "vt_write_mmproj: no GGUF name for %s\n", hn);
            rc = -1;
            break;
        }
        rc |= mp_gguf_writer_add_tensor(g, gn, MP_F32, t->ndim, ne, src);
    }
    if (rc == 0 && mp_gguf_writer_write(g, path, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        rc = -1;
    }
    for (int i = 0; i < nk; i++) free(keep[i]);
    mp_gguf_writer_free(g);
    mp_weights_free(w);
    return rc;
}

/* ---------------------------------------------------------------- llama.cpp text GGUF from the HF folder */

static cJSON *vt_json(const char *dir, const char *name) {
    char p[1200];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    size_t n = 0;
    char *b = mp_test_read_file(p, &n);
    cJSON *j = b ? cJSON_ParseWithLength(b, n) : NULL;
    free(b);
    return j;
}

/* What convert_hf_to_gguf.py's Qwen2VLModel writes for the text side of the HF folder (F32 tensors): arch
 * qwen2vl with rope.dimension_sections, llama.cpp tensor names, and the byte-level BPE vocabulary (gpt2 model,
 * qwen2 pre-tokenizer, vocab.json + added tokens, padding up to vocab_size as [PAD<id>], merges) and the chat
 * template in the tokenizer.* keys. */
static inline int vt_write_text_gguf(const char *hf_dir, const char *path) {
    mp_weights *w = NULL;
    mp_error err;
    cJSON *cfg = vt_json(hf_dir, "config.json"), *vocab = vt_json(hf_dir, "vocab.json");
    cJSON *tcfg = vt_json(hf_dir, "tokenizer_config.json");
    char mp[1200], *merges = NULL, *tmpl = NULL;
    size_t mlen = 0;
    snprintf(mp, sizeof mp, "%s/merges.txt", hf_dir);
    merges = mp_test_read_file(mp, &mlen);
    if (!cfg || !vocab || !tcfg || !merges || mp_weights_open(&w, hf_dir, &err) < 0 ||
        mp_chat_template_load_hf(hf_dir, &tmpl, &err) < 0) {
        fprintf(stderr, "vt_write_text_gguf: cannot read %s\n", hf_dir);
        cJSON_Delete(cfg), cJSON_Delete(vocab), cJSON_Delete(tcfg), free(merges), free(tmpl);
        if (w) mp_weights_free(w);
        return -1;
    }
#define CI(k) (cJSON_GetObjectItem(cfg, k) ? cJSON_GetObjectItem(cfg, k)->valuedouble : 0)
    const int V = (int)CI("vocab_size");
    mp_gguf_writer *g = mp_gguf_writer_new();
    mp_gguf_set_str(g, "general.architecture", "qwen2vl");
    mp_gguf_set_u32(g, "qwen2vl.block_count", (uint32_t)CI("num_hidden_layers"));
    mp_gguf_set_u32(g, "qwen2vl.context_length", (uint32_t)CI("max_position_embeddings"));
    mp_gguf_set_u32(g, "qwen2vl.embedding_length", (uint32_t)CI("hidden_size"));
    mp_gguf_set_u32(g, "qwen2vl.feed_forward_length", (uint32_t)CI("intermediate_size"));
    mp_gguf_set_u32(g, "qwen2vl.attention.head_count", (uint32_t)CI("num_attention_heads"));
    mp_gguf_set_u32(g, "qwen2vl.attention.head_count_kv", (uint32_t)CI("num_key_value_heads"));
    mp_gguf_set_f32(g, "qwen2vl.rope.freq_base", (float)CI("rope_theta"));
    mp_gguf_set_f32(g, "qwen2vl.attention.layer_norm_rms_epsilon", (float)CI("rms_norm_eps"));
    int32_t sec[4] = {0, 0, 0, 0};
    cJSON *ms = cJSON_GetObjectItem(cJSON_GetObjectItem(cfg, "rope_scaling"), "mrope_section");
    for (int i = 0; i < 3 && ms; i++) sec[i] = cJSON_GetArrayItem(ms, i) ? cJSON_GetArrayItem(ms, i)->valueint : 0;
    mp_gguf_set_arr(g, "qwen2vl.rope.dimension_sections", MP_GGUF_I32, sec, 4);
    const int tied = cJSON_IsTrue(cJSON_GetObjectItem(cfg, "tie_word_embeddings"));
#undef CI
    /* vocabulary */
    char **toks = calloc((size_t)V, sizeof *toks);
    int32_t *types = calloc((size_t)V, sizeof *types);
    char **pads = calloc((size_t)V, sizeof *pads);
    cJSON *it;
    cJSON_ArrayForEach(it, vocab) if (it->valueint >= 0 && it->valueint < V) toks[it->valueint] = it->string, types[it->valueint] = 1;
    cJSON_ArrayForEach(it, cJSON_GetObjectItem(tcfg, "added_tokens_decoder")) {
        int id = atoi(it->string);
        cJSON *c = cJSON_GetObjectItem(it, "content");
        if (id >= 0 && id < V && cJSON_IsString(c)) toks[id] = c->valuestring, types[id] = cJSON_IsTrue(cJSON_GetObjectItem(it, "special")) ? 3 : 4;
    }
    for (int i = 0; i < V; i++)
        if (!toks[i]) {
            pads[i] = malloc(24);
            snprintf(pads[i], 24, "[PAD%d]", i);
            toks[i] = pads[i], types[i] = 5;
        }
    mp_gguf_set_str(g, "tokenizer.ggml.model", "gpt2");
    mp_gguf_set_str(g, "tokenizer.ggml.pre", "qwen2");
    mp_gguf_set_arr_str(g, "tokenizer.ggml.tokens", (const char *const *)toks, (uint64_t)V);
    mp_gguf_set_arr(g, "tokenizer.ggml.token_type", MP_GGUF_I32, types, (uint64_t)V);
    /* merges.txt: a "#version" header line, then "a b" per line */
    int nm = 0;
    char **ml = malloc(sizeof(char *) * (mlen / 2 + 1));
    for (char *line = strtok(merges, "\n"); line; line = strtok(NULL, "\n")) {
        size_t L = strlen(line);
        if (L && line[L - 1] == '\r') line[L - 1] = 0;
        if (line[0] && strncmp(line, "#version", 8) != 0) ml[nm++] = line;
    }
    mp_gguf_set_arr_str(g, "tokenizer.ggml.merges", (const char *const *)ml, (uint64_t)nm);
    mp_gguf_set_u32(g, "tokenizer.ggml.eos_token_id", 151645);
    mp_gguf_set_u32(g, "tokenizer.ggml.padding_token_id", 151643);
    mp_gguf_set_u32(g, "tokenizer.ggml.bos_token_id", 151643);
    mp_gguf_set_bool(g, "tokenizer.ggml.add_bos_token", 0);
    mp_gguf_set_str(g, "tokenizer.chat_template", tmpl);
    /* tensors */
    int rc = 0;
    static const char *const map[][2] = {{"self_attn.q_proj.", "attn_q."},   {"self_attn.k_proj.", "attn_k."},
                                         {"self_attn.v_proj.", "attn_v."},   {"self_attn.o_proj.", "attn_output."},
                                         {"mlp.gate_proj.", "ffn_gate."},    {"mlp.up_proj.", "ffn_up."},
                                         {"mlp.down_proj.", "ffn_down."},    {"input_layernorm.", "attn_norm."},
                                         {"post_attention_layernorm.", "ffn_norm."}};
    for (int64_t i = 0; i < mp_weights_count(w) && rc == 0; i++) {
        const char *hn = mp_weights_name(w, i);
        const mp_tensor *t = mp_weights_at(w, i);
        char gn[160] = "", rest[128];
        int l;
        if (!strncmp(hn, "visual.", 7)) continue;
        if (!strcmp(hn, "model.embed_tokens.weight")) snprintf(gn, sizeof gn, "token_embd.weight");
        else if (!strcmp(hn, "model.norm.weight")) snprintf(gn, sizeof gn, "output_norm.weight");
        else if (!strcmp(hn, "lm_head.weight")) {
            if (tied) continue;
            snprintf(gn, sizeof gn, "output.weight");
        } else if (sscanf(hn, "model.layers.%d.%127s", &l, rest) == 2) {
            for (size_t k = 0; k < sizeof map / sizeof map[0]; k++)
                if (!strncmp(rest, map[k][0], strlen(map[k][0])))
                    snprintf(gn, sizeof gn, "blk.%d.%s%s", l, map[k][1], rest + strlen(map[k][0]));
        }
        if (!gn[0] || t->dtype != MP_F32) {
            fprintf(stderr, "vt_write_text_gguf: cannot map %s\n", hn);
            rc = -1;
            break;
        }
        int64_t ne[4] = {t->ne[0], t->ne[1], t->ne[2], t->ne[3]};
        rc |= mp_gguf_writer_add_tensor(g, gn, MP_F32, t->ndim, ne, t->data);
    }
    if (rc == 0 && mp_gguf_writer_write(g, path, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        rc = -1;
    }
    mp_gguf_writer_free(g);
    for (int i = 0; i < V; i++) free(pads[i]);
    free(pads), free(toks), free(types), free(ml), free(merges), free(tmpl);
    cJSON_Delete(cfg), cJSON_Delete(vocab), cJSON_Delete(tcfg);
    mp_weights_free(w);
    return rc;
}

#endif
