/* test_llm_ref.c — the decoder against an independent PyTorch reference (tests/ref/llama_ref.py,
 * written from transformers' Llama / Qwen2 / Granite code) on tiny random-weight models that this test
 * writes itself: an HF folder (config.json scaled down from the real configs in ../shared/fixtures/hf,
 * model.safetensors) and the same weights as a GGUF in llama.cpp's conventions (q/k rows permuted for
 * the llama and granite architectures, whose GGUF RoPE is the interleaved "normal" one).
 *
 * Per model and per file format: logits at every prompt position within tolerance of the reference,
 * identical greedy continuation, prefill == token-by-token decode, a sequence batched with others ==
 * alone, embedding-row items == token items. Then bad files and bad requests give one clear error. */
#include "test.h"

#include "kernels/mp.h"
#include "kernels/ops.h"
#include "llm/kvcache.h"
#include "llm/llama.h"
#include "models/gguf.h"

#include <sys/stat.h>
#include <unistd.h>

typedef struct tcfg {
    const char *name, *model_type, *gguf_arch;
    int D, H, KV, L, F, V, tie, bias;
    double theta, eps;
    const char *rope_json; /* "rope_scaling": ... or NULL */
    /* gguf rope scaling keys */
    const char *g_scaling;
    double g_factor;
    int g_orig_ctx;
    double emb_mult, att_mult, res_mult, logit_scale; /* granite */
    int sec[4];                                       /* M-RoPE sections (qwen2_vl) */
} tcfg;

/* Scaled down from: SmolLM2 / SmolVLM text_config (llama, theta 1e5, eps 1e-5, GQA 3:1, untied),
 * Llama-3-style llama3 rope scaling, Qwen2-VL (qwen2, theta 1e6, eps 1e-6, bias, tied, GQA 6:1) with
 * YaRN, Granite-3.1 (granite, theta 1.5e6, eps 1e-6, tied, multipliers 12 / 0.015625 / 0.22 / 6). */
static const tcfg cfgs[] = {
    {"smollm2", "llama", "llama", 64, 4, 2, 2, 96, 131, 0, 0, 1e5, 1e-5, NULL, NULL, 0, 0, 1, 0, 1, 1, {0, 0, 0, 0}},
    {"llama3mqa", "llama", "llama", 48, 3, 1, 2, 80, 97, 1, 0, 5e5, 1e-5,
     "{\"rope_type\": \"llama3\", \"factor\": 8.0, \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0, "
     "\"original_max_position_embeddings\": 64}",
     NULL, 0, 0, 1, 0, 1, 1, {0, 0, 0, 0}},
    {"qwen2", "qwen2", "qwen2", 96, 6, 1, 2, 128, 151, 1, 1, 1e6, 1e-6,
     "{\"type\": \"yarn\", \"factor\": 4.0, \"original_max_position_embeddings\": 64}", "yarn", 4.0, 64, 1, 0, 1, 1, {0, 0, 0, 0}},
    {"granite", "granite", "granite", 64, 4, 2, 2, 64, 89, 1, 0, 1.5e6, 1e-6,
     "{\"type\": \"linear\", \"factor\": 2.0}", "linear", 2.0, 0, 12.0, 0.015625, 0.22, 6.0, {0, 0, 0, 0}},
    /* Qwen2-VL's decoder: qwen2 with M-RoPE (mrope_section [16, 24, 24] of 64 pairs -> [2, 3, 3] of 8);
     * the prompt holds a 2 x 3 "image" whose tokens get (t, h, w) positions, text continues after it */
    {"qwen2vl", "qwen2_vl", "qwen2vl", 64, 4, 2, 2, 96, 101, 1, 1, 1e6, 1e-6,
     "{\"type\": \"mrope\", \"mrope_section\": [2, 3, 3]}", NULL, 0, 0, 1, 0, 1, 1, {2, 3, 3, 0}},
};

/* ---------------------------------------------------------------- random weights, HF layout */

typedef struct wt {
    char name[96];
    int64_t rows, cols; /* PyTorch shape [rows][cols] (a vector: rows = 1) */
    float *data;
} wt;

typedef struct model_w {
    wt t[256];
    int n;
} model_w;

static unsigned long long rng = 0x1234567ull;

static float *add_w(model_w *m, const char *name, int64_t rows, int64_t cols, float scale, float offset) {
    wt *t = &m->t[m->n++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->rows = rows;
    t->cols = cols;
    t->data = malloc((size_t)(rows * cols) * sizeof(float));
    for (int64_t i = 0; i < rows * cols; i++) t->data[i] = offset + scale * mp_test_randf(&rng);
    return t->data;
}

static void make_weights(const tcfg *c, model_w *m) {
    const int hd = c->D / c->H;
    char nm[96];
    m->n = 0;
    add_w(m, "model.embed_tokens.weight", c->V, c->D, 1.0f, 0);
    for (int l = 0; l < c->L; l++) {
#define N(s) (snprintf(nm, sizeof nm, "model.layers.%d.%s", l, s), nm)
        float sd = 1.0f / sqrtf((float)c->D), sf = 1.0f / sqrtf((float)c->F);
        add_w(m, N("input_layernorm.weight"), 1, c->D, 0.2f, 1.0f);
        add_w(m, N("self_attn.q_proj.weight"), c->H * hd, c->D, 2 * sd, 0);
        add_w(m, N("self_attn.k_proj.weight"), c->KV * hd, c->D, 2 * sd, 0);
        add_w(m, N("self_attn.v_proj.weight"), c->KV * hd, c->D, sd, 0);
        if (c->bias) {
            add_w(m, N("self_attn.q_proj.bias"), 1, c->H * hd, 0.5f, 0);
            add_w(m, N("self_attn.k_proj.bias"), 1, c->KV * hd, 0.5f, 0);
            add_w(m, N("self_attn.v_proj.bias"), 1, c->KV * hd, 0.5f, 0);
        }
        add_w(m, N("self_attn.o_proj.weight"), c->D, c->H * hd, sd, 0);
        add_w(m, N("post_attention_layernorm.weight"), 1, c->D, 0.2f, 1.0f);
        add_w(m, N("mlp.gate_proj.weight"), c->F, c->D, 2 * sd, 0);
        add_w(m, N("mlp.up_proj.weight"), c->F, c->D, 2 * sd, 0);
        add_w(m, N("mlp.down_proj.weight"), c->D, c->F, sf, 0);
#undef N
    }
    add_w(m, "model.norm.weight", 1, c->D, 0.2f, 1.0f);
    if (!c->tie) add_w(m, "lm_head.weight", c->V, c->D, 2.0f / sqrtf((float)c->D), 0);
}

static void free_weights(model_w *m) {
    for (int i = 0; i < m->n; i++) free(m->t[i].data);
    m->n = 0;
}

/* ---------------------------------------------------------------- writers */

static int write_config(const tcfg *c, const char *dir) {
    char path[1024];
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fprintf(f, "{\n  \"architectures\": [\"%s\"],\n  \"model_type\": \"%s\",\n",
            !strcmp(c->model_type, "qwen2_vl") ? "Qwen2VLForConditionalGeneration" :
            !strcmp(c->model_type, "qwen2") ? "Qwen2ForCausalLM" : !strcmp(c->model_type, "granite") ? "GraniteForCausalLM" : "LlamaForCausalLM",
            c->model_type);
    fprintf(f, "  \"hidden_size\": %d,\n  \"intermediate_size\": %d,\n  \"num_hidden_layers\": %d,\n", c->D, c->F, c->L);
    fprintf(f, "  \"num_attention_heads\": %d,\n  \"num_key_value_heads\": %d,\n  \"vocab_size\": %d,\n", c->H, c->KV, c->V);
    fprintf(f, "  \"rms_norm_eps\": %g,\n  \"rope_theta\": %.1f,\n  \"max_position_embeddings\": 64,\n", c->eps, c->theta);
    fprintf(f, "  \"hidden_act\": \"silu\",\n  \"tie_word_embeddings\": %s,\n  \"torch_dtype\": \"float32\",\n",
            c->tie ? "true" : "false");
    fprintf(f, "  \"bos_token_id\": 1,\n  \"eos_token_id\": 2,\n");
    if (!strcmp(c->model_type, "granite"))
        fprintf(f, "  \"embedding_multiplier\": %g,\n  \"attention_multiplier\": %g,\n  \"residual_multiplier\": %g,\n"
                   "  \"logits_scaling\": %g,\n",
                c->emb_mult, c->att_mult, c->res_mult, c->logit_scale);
    if (!strncmp(c->model_type, "qwen2", 5)) fprintf(f, "  \"use_sliding_window\": false,\n");
    fprintf(f, "  \"rope_scaling\": %s\n}\n", c->rope_json ? c->rope_json : "null");
    return fclose(f);
}

static int write_safetensors(const model_w *m, const char *path) {
    size_t cap = 65536, w = 0, off = 0;
    char *hdr = malloc(cap);
    w += (size_t)snprintf(hdr + w, cap - w, "{");
    for (int i = 0; i < m->n; i++) {
        const wt *t = &m->t[i];
        size_t bytes = (size_t)(t->rows * t->cols) * 4;
        if (t->rows == 1)
            w += (size_t)snprintf(hdr + w, cap - w, "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[%lld],\"data_offsets\":[%zu,%zu]}",
                                  i ? "," : "", t->name, (long long)t->cols, off, off + bytes);
        else
            w += (size_t)snprintf(hdr + w, cap - w, "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[%lld,%lld],\"data_offsets\":[%zu,%zu]}",
                                  i ? "," : "", t->name, (long long)t->rows, (long long)t->cols, off, off + bytes);
        off += bytes;
    }
    w += (size_t)snprintf(hdr + w, cap - w, "}");
    while (w % 8) hdr[w++] = ' ';
    FILE *f = fopen(path, "wb");
    if (!f) { free(hdr); return -1; }
    uint64_t n = w;
    fwrite(&n, 8, 1, f);
    fwrite(hdr, 1, w, f);
    for (int i = 0; i < m->n; i++) fwrite(m->t[i].data, 4, (size_t)(m->t[i].rows * m->t[i].cols), f);
    free(hdr);
    return fclose(f);
}

/* llama.cpp convert_hf_to_gguf LlamaModel.permute: HF rotate-half row order -> interleaved pairs */
static float *permute_qk(const float *w, int64_t rows, int64_t cols, int n_head) {
    float *o = malloc((size_t)(rows * cols) * sizeof(float));
    const int64_t hd = rows / n_head;
    for (int h = 0; h < n_head; h++)
        for (int64_t i = 0; i < hd / 2; i++)
            for (int half = 0; half < 2; half++)
                memcpy(o + (h * hd + 2 * i + half) * cols, w + (h * hd + half * hd / 2 + i) * cols, (size_t)cols * 4);
    return o;
}

typedef enum { BAD_NONE, BAD_ARCH, BAD_MISSING, BAD_SHAPE } bad_kind;

static int write_gguf(const tcfg *c, const model_w *m, const char *path, bad_kind bad, mp_error *err) {
    mp_gguf_writer *g = mp_gguf_writer_new();
    const char *arch = bad == BAD_ARCH ? "mamba" : c->gguf_arch;
    char k[128];
#define KEY(s) (snprintf(k, sizeof k, "%s.%s", arch, s), k)
    mp_gguf_set_str(g, "general.architecture", arch);
    mp_gguf_set_u32(g, KEY("context_length"), 64);
    mp_gguf_set_u32(g, KEY("embedding_length"), (uint32_t)c->D);
    mp_gguf_set_u32(g, KEY("feed_forward_length"), (uint32_t)c->F);
    mp_gguf_set_u32(g, KEY("block_count"), (uint32_t)c->L);
    mp_gguf_set_u32(g, KEY("attention.head_count"), (uint32_t)c->H);
    mp_gguf_set_u32(g, KEY("attention.head_count_kv"), (uint32_t)c->KV);
    mp_gguf_set_u32(g, KEY("rope.dimension_count"), (uint32_t)(c->D / c->H));
    mp_gguf_set_f32(g, KEY("rope.freq_base"), (float)c->theta);
    mp_gguf_set_f32(g, KEY("attention.layer_norm_rms_epsilon"), (float)c->eps);
    mp_gguf_set_u32(g, KEY("vocab_size"), (uint32_t)c->V);
    if (c->g_scaling) {
        mp_gguf_set_str(g, KEY("rope.scaling.type"), c->g_scaling);
        mp_gguf_set_f32(g, KEY("rope.scaling.factor"), (float)c->g_factor);
        if (c->g_orig_ctx) mp_gguf_set_u32(g, KEY("rope.scaling.original_context_length"), (uint32_t)c->g_orig_ctx);
    }
    if (c->sec[0]) {
        int32_t sec[4] = {c->sec[0], c->sec[1], c->sec[2], c->sec[3]};
        mp_gguf_set_arr(g, KEY("rope.dimension_sections"), MP_GGUF_I32, sec, 4);
    }
    if (!strcmp(c->gguf_arch, "granite")) {
        mp_gguf_set_f32(g, KEY("embedding_scale"), (float)c->emb_mult);
        mp_gguf_set_f32(g, KEY("residual_scale"), (float)c->res_mult);
        mp_gguf_set_f32(g, KEY("attention.scale"), (float)c->att_mult);
        mp_gguf_set_f32(g, KEY("logit_scale"), (float)c->logit_scale);
    }
#undef KEY
    mp_gguf_set_u32(g, "tokenizer.ggml.bos_token_id", 1);
    mp_gguf_set_u32(g, "tokenizer.ggml.eos_token_id", 2);
    /* llama3 scaling travels as rope_freqs.weight (computed like llama.cpp's convert from the config) */
    float freqs[64];
    const int hd = c->D / c->H;
    if (c->rope_json && strstr(c->rope_json, "llama3")) {
        for (int i = 0; i < hd / 2; i++) {
            double inv = pow(c->theta, -(2.0 * i) / hd), wl = 2 * M_PI / inv;
            double lo_wl = 64 / 1.0, hi_wl = 64 / 4.0, f;
            if (wl < hi_wl) f = 1;
            else if (wl > lo_wl) f = 8.0;
            else {
                double sm = (64 / wl - 1.0) / (4.0 - 1.0);
                f = 1.0 / ((1 - sm) / 8.0 + sm);
            }
            freqs[i] = (float)f;
        }
        int64_t ne[1] = {hd / 2};
        mp_gguf_writer_add_tensor(g, "rope_freqs.weight", MP_F32, 1, ne, freqs);
    }
    float *perm[256] = {0};
    int permute = strncmp(c->gguf_arch, "qwen2", 5) != 0;
    for (int i = 0; i < m->n; i++) {
        const wt *t = &m->t[i];
        char gn[128];
        const char *n = t->name;
        int layer = -1;
        char rest[96] = "";
        if (sscanf(n, "model.layers.%d.%95s", &layer, rest) == 2) {
            static const char *map[][2] = {
                {"input_layernorm.weight", "attn_norm.weight"}, {"self_attn.q_proj.weight", "attn_q.weight"},
                {"self_attn.k_proj.weight", "attn_k.weight"},   {"self_attn.v_proj.weight", "attn_v.weight"},
                {"self_attn.q_proj.bias", "attn_q.bias"},       {"self_attn.k_proj.bias", "attn_k.bias"},
                {"self_attn.v_proj.bias", "attn_v.bias"},       {"self_attn.o_proj.weight", "attn_output.weight"},
                {"post_attention_layernorm.weight", "ffn_norm.weight"}, {"mlp.gate_proj.weight", "ffn_gate.weight"},
                {"mlp.up_proj.weight", "ffn_up.weight"},        {"mlp.down_proj.weight", "ffn_down.weight"},
            };
            const char *to = NULL;
            for (size_t j = 0; j < sizeof map / sizeof map[0]; j++)
                if (!strcmp(rest, map[j][0])) to = map[j][1];
            snprintf(gn, sizeof gn, "blk.%d.%s", layer, to ? to : rest);
        } else if (!strcmp(n, "model.embed_tokens.weight")) {
            snprintf(gn, sizeof gn, "token_embd.weight");
        } else if (!strcmp(n, "model.norm.weight")) {
            snprintf(gn, sizeof gn, "output_norm.weight");
        } else {
            snprintf(gn, sizeof gn, "output.weight");
        }
        if (bad == BAD_MISSING && !strcmp(gn, "blk.1.ffn_up.weight")) continue;
        const float *data = t->data;
        int is_q = strstr(gn, "attn_q.weight") != NULL, is_k = strstr(gn, "attn_k.weight") != NULL;
        if (permute && (is_q || is_k)) data = perm[i] = permute_qk(t->data, t->rows, t->cols, is_q ? c->H : c->KV);
        int64_t ne[2] = {t->cols, t->rows};
        if (bad == BAD_SHAPE && !strcmp(gn, "blk.0.attn_k.weight")) ne[1] = t->rows / 2; /* claims half the rows */
        mp_gguf_writer_add_tensor(g, gn, MP_F32, t->rows == 1 ? 1 : 2, ne, data);
    }
    int rc = mp_gguf_writer_write(g, path, err);
    mp_gguf_writer_free(g);
    for (int i = 0; i < 256; i++) free(perm[i]);
    return rc;
}

/* ---------------------------------------------------------------- checks */

static float *read_floats(const char *path, size_t n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    float *b = malloc(n * sizeof(float));
    size_t got = fread(b, sizeof(float), n, f);
    fclose(f);
    if (got != n) { free(b); return NULL; }
    return b;
}

static double rel_err(const float *a, const float *ref, size_t n) {
    double md = 0, mr = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - ref[i]);
        if (d != d) return INFINITY;
        if (d > md) md = d;
        if (fabs(ref[i]) > mr) mr = fabs(ref[i]);
    }
    return md / (mr + 1e-30);
}

#define T_PROMPT 11
#define N_GREEDY 8

/* pos4: the prompt's M-RoPE positions [T][4] for an M-RoPE model, else NULL (cache index). */
static void check_model(const tcfg *c, const char *path, const char *fmt, const int32_t *prompt, const float *ref_logits,
                        const int32_t *ref_greedy, const int32_t *pos4, mp_exec *ex) {
    mp_error err = {{0}};
    mp_llama m;
    int rc = mp_llama_load(&m, path, ex, &err);
    CHECKF(rc == 0, "%s/%s: load: %s", c->name, fmt, err.msg);
    if (rc) return;
    const int V = c->V;
    CHECK_EQ_INT(m.cfg.n_vocab, V);
    CHECK_EQ_INT(m.cfg.n_kv_head, c->KV);
    mp_kvcache kv;
    CHECK(mp_llama_kvcache_init(&m, &kv, ex, 4, 64, 4 * 64, 4, &err) == 0);
    mp_llama_state st;
    memset(&st, 0, sizeof st);
    float *lg = malloc(sizeof(float) * (size_t)V * T_PROMPT);
    float *one = malloc(sizeof(float) * (size_t)V * T_PROMPT);
    float *tmp = malloc(sizeof(float) * (size_t)V * 4);

    /* 1. prefill logits at every position vs the reference */
    int s0 = mp_kvcache_seq_new(&kv, &err);
    mp_llama_seq sq = {s0, T_PROMPT, prompt, NULL, pos4, 2, lg};
    rc = mp_llama_forward(&m, &st, &kv, ex, &sq, 1, &err);
    CHECKF(rc == 0, "%s/%s: forward: %s", c->name, fmt, err.msg);
    double e = rel_err(lg, ref_logits, (size_t)V * T_PROMPT);
    CHECKF(e < 2e-5, "%s/%s: logits differ from the PyTorch reference: max rel err %.3g", c->name, fmt, e);
    fprintf(stderr, "%s/%s: logits max rel err vs reference %.3g\n", c->name, fmt, e);

    /* 2. greedy continuation with decode steps */
    int32_t got[N_GREEDY], gp[N_GREEDY + 1][4];
    int32_t cur = (int32_t)mp_argmax(ex, lg + (size_t)(T_PROMPT - 1) * V, V);
    int32_t mx = 0; /* generated text continues after the largest prompt position in every stream */
    for (int i = 0; pos4 && i < T_PROMPT * 4; i++) mx = pos4[i] > mx ? pos4[i] : mx;
    for (int i = 0; i <= N_GREEDY; i++)
        for (int k = 0; k < 4; k++) gp[i][k] = k < 3 ? mx + 1 + i : 0;
    for (int i = 0; i < N_GREEDY; i++) {
        got[i] = cur;
        mp_llama_seq d = {s0, 1, &cur, NULL, pos4 ? gp[i] : NULL, 1, tmp};
        CHECK(mp_llama_forward(&m, &st, &kv, ex, &d, 1, &err) == 0);
        cur = (int32_t)mp_argmax(ex, tmp, V);
    }
    CHECKF(!memcmp(got, ref_greedy, sizeof got), "%s/%s: greedy tokens differ from the reference (%d %d %d ... vs %d %d %d ...)",
           c->name, fmt, got[0], got[1], got[2], ref_greedy[0], ref_greedy[1], ref_greedy[2]);

    /* 3. token-by-token decode == prefill, while another sequence shares each batch */
    int s1 = mp_kvcache_seq_new(&kv, &err), s2 = mp_kvcache_seq_new(&kv, &err);
    int32_t other[T_PROMPT];
    for (int i = 0; i < T_PROMPT; i++) other[i] = (prompt[i] * 7 + 3) % V;
    for (int t = 0; t < T_PROMPT; t++) { /* s2 joins every other step; its first call is a 3-token prefill */
        mp_llama_seq b[2] = {{s2, t == 0 ? 3 : 1, t == 0 ? other : &other[(t / 2 + 2) % T_PROMPT], NULL, NULL, 1, tmp},
                             {s1, 1, &prompt[t], NULL, pos4 ? pos4 + t * 4 : NULL, 1, one + (size_t)t * V}};
        CHECK(mp_llama_forward(&m, &st, &kv, ex, t % 2 ? &b[1] : b, t % 2 ? 1 : 2, &err) == 0);
    }
    e = rel_err(one, lg, (size_t)V * T_PROMPT);
    CHECKF(e < 1e-5, "%s/%s: token-by-token (batched with another sequence) differs from prefill: %.3g", c->name, fmt, e);
    /* the same steps alone give the same bits: results do not depend on the batch's other rows */
    {
        int s4 = mp_kvcache_seq_new(&kv, &err);
        float *solo = malloc(sizeof(float) * (size_t)V * T_PROMPT);
        for (int t = 0; t < T_PROMPT; t++) {
            mp_llama_seq b = {s4, 1, &prompt[t], NULL, pos4 ? pos4 + t * 4 : NULL, 1, solo + (size_t)t * V};
            CHECK(mp_llama_forward(&m, &st, &kv, ex, &b, 1, &err) == 0);
        }
        CHECKF(!memcmp(solo, one, sizeof(float) * (size_t)V * T_PROMPT), "%s/%s: batched logits are not bit-identical to solo ones (%.3g)",
               c->name, fmt, rel_err(solo, one, (size_t)V * T_PROMPT));
        free(solo);
        mp_kvcache_seq_free(&kv, s4);
    }

    /* 4. items given as embedding rows == token items */
    int s3 = mp_kvcache_seq_new(&kv, &err);
    float *emb = malloc(sizeof(float) * (size_t)c->D * T_PROMPT);
    mp_get_rows(ex, emb, &m.tok_embd, prompt, T_PROMPT);
    int32_t mixed[T_PROMPT];
    for (int i = 0; i < T_PROMPT; i++) mixed[i] = i % 3 == 1 ? -1 : prompt[i];
    mp_llama_seq me = {s3, T_PROMPT, mixed, emb, pos4, 2, one};
    CHECK(mp_llama_forward(&m, &st, &kv, ex, &me, 1, &err) == 0);
    e = rel_err(one, lg, (size_t)V * T_PROMPT);
    CHECKF(e < 1e-6, "%s/%s: embedding items differ from token items: %.3g", c->name, fmt, e);
    free(emb);

    /* 5. a fork shares the prompt and continues identically */
    mp_kvcache_seq_free(&kv, s1);
    int f = mp_kvcache_seq_fork(&kv, s0, T_PROMPT, &err);
    CHECKF(f >= 0, "%s", err.msg);
    if (f >= 0) {
        cur = got[0];
        mp_llama_seq d = {f, 1, &cur, NULL, pos4 ? gp[0] : NULL, 1, tmp};
        CHECK(mp_llama_forward(&m, &st, &kv, ex, &d, 1, &err) == 0);
        int32_t am = (int32_t)mp_argmax(ex, tmp, V);
        CHECK_EQ_INT(am, got[1]);
    }

    /* 6. context overflow and bad tokens are clear errors */
    int32_t many[64];
    for (int i = 0; i < 64; i++) many[i] = prompt[i % T_PROMPT];
    mp_llama_seq big = {s2, 64, many, NULL, NULL, 1, tmp}; /* (positions only matter once it fits) */
    rc = mp_llama_forward(&m, &st, &kv, ex, &big, 1, &err);
    CHECKF(rc < 0 && strstr(err.msg, "context overflow"), "overflow: rc %d, '%s'", rc, err.msg);
    int32_t badtok = V + 5;
    mp_llama_seq bt = {s2, 1, &badtok, NULL, NULL, 1, tmp};
    rc = mp_llama_forward(&m, &st, &kv, ex, &bt, 1, &err);
    CHECKF(rc < 0 && strstr(err.msg, "outside the vocabulary"), "bad token: rc %d, '%s'", rc, err.msg);

    free(lg);
    free(one);
    free(tmp);
    mp_llama_state_free(&st, ex);
    mp_kvcache_free(&kv, ex);
    mp_llama_free(&m, ex);
}

static int run_ref(const char *dir, const int32_t *prompt) {
    char cmd[4096];
    int w = snprintf(cmd, sizeof cmd, "%s %s/tests/ref/llama_ref.py %s %s/ref %d", MP_PYTHON, MP_SOURCE_DIR, dir, dir, N_GREEDY);
    for (int i = 0; i < T_PROMPT; i++) w += snprintf(cmd + w, sizeof cmd - (size_t)w, " %d", prompt[i]);
    return system(cmd);
}

int main(void) {
    mp_error err = {{0}};
    if (access(MP_PYTHON, X_OK) != 0) {
        fprintf(stderr, "skip: %s not found\n", MP_PYTHON);
        return MP_TEST_SKIP;
    }
    char root[512];
    snprintf(root, sizeof root, "%s/test_llm_ref", MP_BINARY_DIR);
    mkdir(root, 0755);
    mp_threadpool *tp = mp_threadpool_create(2);
    mp_exec ex;
    CHECK(mp_exec_init(&ex, MP_BACKEND_CPU, tp, (size_t)16 << 20, &err) == 0);
    for (size_t ci = 0; ci < sizeof cfgs / sizeof cfgs[0]; ci++) {
        const tcfg *c = &cfgs[ci];
        char dir[600], path[700];
        snprintf(dir, sizeof dir, "%s/%s", root, c->name);
        mkdir(dir, 0755);
        model_w mw;
        make_weights(c, &mw);
        CHECK(write_config(c, dir) == 0);
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        CHECK(write_safetensors(&mw, path) == 0);
        snprintf(path, sizeof path, "%s/%s.gguf", root, c->name);
        CHECKF(write_gguf(c, &mw, path, BAD_NONE, &err) == 0, "%s", err.msg);
        int32_t prompt[T_PROMPT];
        for (int i = 0; i < T_PROMPT; i++) prompt[i] = (int32_t)(mp_test_rng(&rng) % (unsigned)c->V);
        int32_t pos4[T_PROMPT * 4], *pp = NULL;
        if (c->sec[0]) { /* 4 text tokens, a 2 x 3 image at t = 4, then text from max + 1 = 7 */
            int32_t p3[3][T_PROMPT];
            for (int i = 0; i < T_PROMPT; i++) {
                int t = i, h = i, w = i;
                if (i >= 4 && i < 10) { t = 4; h = 4 + (i - 4) / 3; w = 4 + (i - 4) % 3; }
                if (i >= 10) t = h = w = 7 + (i - 10);
                p3[0][i] = t; p3[1][i] = h; p3[2][i] = w;
                pos4[i * 4] = t; pos4[i * 4 + 1] = h; pos4[i * 4 + 2] = w; pos4[i * 4 + 3] = 0;
            }
            snprintf(path, sizeof path, "%s/ref.pos", dir);
            FILE *pf = fopen(path, "wb");
            CHECK(pf && fwrite(p3, sizeof p3, 1, pf) == 1);
            if (pf) fclose(pf);
            pp = pos4;
            snprintf(path, sizeof path, "%s/%s.gguf", root, c->name);
        }
        int rc = run_ref(dir, prompt);
        CHECKF(rc == 0, "%s: llama_ref.py failed (%d)", c->name, rc);
        char rp[700];
        snprintf(rp, sizeof rp, "%s/ref.logits", dir);
        float *ref = rc == 0 ? read_floats(rp, (size_t)c->V * T_PROMPT) : NULL;
        int32_t greedy[N_GREEDY] = {0};
        snprintf(rp, sizeof rp, "%s/ref.greedy", dir);
        FILE *gf = fopen(rp, "r");
        for (int i = 0; gf && i < N_GREEDY; i++)
            if (fscanf(gf, "%d", &greedy[i]) != 1) greedy[i] = -1;
        if (gf) fclose(gf);
        if (ref) {
            check_model(c, path, "gguf", prompt, ref, greedy, pp, &ex);
            check_model(c, dir, "hf", prompt, ref, greedy, pp, &ex);
        }
        free(ref);
        /* bad files: one clear line each */
        mp_llama m;
        static const struct { bad_kind k; const char *want; } bads[] = {
            {BAD_ARCH, "unknown architecture 'mamba'"},
            {BAD_MISSING, "missing tensor blk.1.ffn_up.weight"},
            {BAD_SHAPE, "tensor blk.0.attn_k.weight has shape"},
        };
        for (size_t b = 0; b < 3 && ci == 0; b++) {
            snprintf(path, sizeof path, "%s/bad%zu.gguf", root, b);
            CHECK(write_gguf(c, &mw, path, bads[b].k, &err) == 0);
            rc = mp_llama_load(&m, path, &ex, &err);
            CHECKF(rc < 0 && strstr(err.msg, bads[b].want) && strstr(err.msg, path) && !strchr(err.msg, '\n'),
                   "bad file %zu: rc %d, '%s'", b, rc, err.msg);
        }
        free_weights(&mw);
    }
    mp_exec_free(&ex);
    mp_threadpool_free(tp);
    return mp_test_result("test_llm_ref");
}
