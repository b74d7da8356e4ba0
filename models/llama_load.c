/* llama_load.c — map a GGUF, an HF folder (config.json + safetensors) or a llama2.c checkpoint onto
 * the mp_llama struct (llm/llama.h).
 *
 * Each format fills an mp_llama_config and offers its tensors under llama.cpp names
 * (token_embd.weight, blk.N.attn_q.weight, ...). The generic part below checks every shape, keeps
 * matmul weights as views of the mapped file on the CPU (uploads them on other backends), and turns
 * norm weights and biases into F32 vectors.
 */
#include "llm/llama.h"

#include "models/gguf.h"
#include "models/hfjson.h"
#include "models/llama2c.h"
#include "models/mmap.h"
#include "models/weights.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---------------------------------------------------------------- ownership */

typedef struct load_owner {
    mp_weights *w;
    void **host;
    int n_host, cap_host;
    void **dev;
    int n_dev, cap_dev;
} load_owner;

static void owner_free(void *p, mp_exec *ex) {
    load_owner *o = p;
    if (!o) return;
    for (int i = 0; i < o->n_host; i++) free(o->host[i]);
    for (int i = 0; i < o->n_dev; i++) mp_backend_free(ex, o->dev[i]);
    free(o->host);
    free(o->dev);
    if (o->w) mp_weights_free(o->w);
    free(o);
}

static int push_ptr(void ***arr, int *n, int *cap, void *p) {
    if (*n == *cap) {
        int nc = *cap ? *cap * 2 : 64;
        void **na = realloc(*arr, (size_t)nc * sizeof(void *));
        if (!na) return -1;
        *arr = na;
        *cap = nc;
    }
    (*arr)[(*n)++] = p;
    return 0;
}

/* ---------------------------------------------------------------- tensor source */

typedef struct tsrc {
    const char *path; /* for messages */
    const mp_tensor *(*find)(void *ctx, const char *name);
    void *ctx;
} tsrc;

typedef struct loader {
    const tsrc *src;
    load_owner *own;
    mp_exec *ex;
    mp_error *err;
} loader;

static const char *fmt_dims(char *buf, size_t cap, const int64_t *ne, int nd) {
    size_t w = 0;
    w += (size_t)snprintf(buf + w, cap - w, "[");
    for (int i = 0; i < nd && w < cap; i++) w += (size_t)snprintf(buf + w, cap - w, "%s%lld", i ? ", " : "", (long long)ne[i]);
    if (w < cap) snprintf(buf + w, cap - w, "]");
    return buf;
}

static const mp_tensor *need(loader *L, const char *name, int nd, const int64_t *ne) {
    const mp_tensor *t = L->src->find(L->src->ctx, name);
    if (!t) {
        mp_errf(L->err, "%s: missing tensor %s", L->src->path, name);
        return NULL;
    }
    int ok = 1;
    for (int i = 0; i < MP_MAX_DIMS; i++) {
        int64_t want = i < nd ? ne[i] : 1;
        int64_t have = i < t->ndim ? t->ne[i] : 1;
        if (want != have) ok = 0;
    }
    if (!ok) {
        char a[96], b[96];
        mp_errf(L->err, "%s: tensor %s has shape %s, expected %s", L->src->path, name, fmt_dims(a, sizeof a, t->ne, t->ndim),
                fmt_dims(b, sizeof b, ne, nd));
        return NULL;
    }
    if (!mp_dtype_info(t->dtype)) {
        mp_errf(L->err, "%s: tensor %s has an unknown dtype %d", L->src->path, name, (int)t->dtype);
        return NULL;
    }
    return t;
}

static void *backend_copy(loader *L, const void *src, size_t bytes) {
    void *d = mp_backend_alloc(L->ex, bytes);
    if (!d) {
        mp_errf(L->err, "%s: out of backend memory (%.1f MiB)", L->src->path, (double)bytes / 1048576.0);
        return NULL;
    }
    if (push_ptr(&L->own->dev, &L->own->n_dev, &L->own->cap_dev, d) < 0) {
        mp_backend_free(L->ex, d);
        mp_errf(L->err, "%s: out of memory", L->src->path);
        return NULL;
    }
    if (mp_backend_upload(L->ex, d, src, bytes, L->err) < 0) return NULL;
    return d;
}

/* A matmul weight nn.Linear(in, out): ne = {in, out}. */
static int lin_weight(loader *L, const char *name, int64_t in, int64_t out, mp_llama_linear *dst) {
    int64_t ne[2] = {in, out};
    const mp_tensor *t = need(L, name, 2, ne);
    if (!t) return -1;
    if (mp_dtype_row_bytes(t->dtype, in) < 0)
        return mp_errf(L->err, "%s: tensor %s: %lld is not a multiple of the %s block size", L->src->path, name,
                       (long long)in, mp_dtype_name(t->dtype));
    dst->w = *t;
    if (L->ex->backend != MP_BACKEND_CPU) {
        void *d = backend_copy(L, t->data, mp_tensor_nbytes(t));
        if (!d) return -1;
        dst->w.data = d;
        dst->w.backend = L->ex->backend;
    }
    return 0;
}

/* A vector of n values as F32 in backend memory (norm weights, biases). optional: absent -> *out NULL. */
static int f32_vec(loader *L, const char *name, int64_t n, int optional, const float **out) {
    *out = NULL;
    if (optional && !L->src->find(L->src->ctx, name)) return 0;
    int64_t ne[1] = {n};
    const mp_tensor *t = need(L, name, 1, ne);
    if (!t) return -1;
    const float *host = NULL;
    float *conv = NULL;
    if (t->dtype == MP_F32) {
        host = t->data;
    } else {
        if (mp_dtype_row_bytes(t->dtype, n) < 0)
            return mp_errf(L->err, "%s: tensor %s: bad size for %s", L->src->path, name, mp_dtype_name(t->dtype));
        conv = malloc((size_t)n * sizeof(float));
        if (!conv || push_ptr(&L->own->host, &L->own->n_host, &L->own->cap_host, conv) < 0) {
            free(conv);
            return mp_errf(L->err, "%s: out of memory", L->src->path);
        }
        mp_dequantize_row(t->dtype, t->data, conv, n);
        host = conv;
    }
    if (L->ex->backend == MP_BACKEND_CPU) {
        *out = host;
        return 0;
    }
    *out = backend_copy(L, host, (size_t)n * sizeof(float));
    return *out ? 0 : -1;
}

static int host_f32_upload(loader *L, const float *v, int64_t n, const float **out) {
    float *c = malloc((size_t)n * sizeof(float));
    if (!c || push_ptr(&L->own->host, &L->own->n_host, &L->own->cap_host, c) < 0) {
        free(c);
        return mp_errf(L->err, "%s: out of memory", L->src->path);
    }
    memcpy(c, v, (size_t)n * sizeof(float));
    if (L->ex->backend == MP_BACKEND_CPU) {
        *out = c;
        return 0;
    }
    *out = backend_copy(L, c, (size_t)n * sizeof(float));
    return *out ? 0 : -1;
}

/* llama3 rope scaling as per-pair frequency divisors (HF _compute_llama3_parameters). */
static void llama3_factors(const mp_llama_config *c, float *f) {
    const int n = c->n_rot / 2;
    const double lo_wl = c->rope_orig_ctx / c->rope_low_freq_factor;
    const double hi_wl = c->rope_orig_ctx / c->rope_high_freq_factor;
    for (int i = 0; i < n; i++) {
        double inv = pow(c->rope_theta, -(2.0 * i) / c->n_rot);
        double wl = 2 * M_PI / inv, nf;
        if (wl < hi_wl)
            nf = inv;
        else if (wl > lo_wl)
            nf = inv / c->rope_factor;
        else {
            double sm = (c->rope_orig_ctx / wl - c->rope_low_freq_factor) / (c->rope_high_freq_factor - c->rope_low_freq_factor);
            nf = (1 - sm) * inv / c->rope_factor + sm * inv;
        }
        f[i] = (float)(inv / nf);
    }
}

/* Everything after the config: look up, check and place every tensor. */
static int load_tensors(mp_llama *m, loader *L) {
    mp_llama_config *c = &m->cfg;
    const int64_t D = c->n_embd, F = c->n_ff, V = c->n_vocab;
    const int64_t qd = (int64_t)c->n_head * c->head_dim, kvd = (int64_t)c->n_kv_head * c->head_dim;
    int64_t ne[2] = {D, V};
    const mp_tensor *te = need(L, "token_embd.weight", 2, ne);
    if (!te) return -1;
    m->tok_embd = *te;
    if (L->ex->backend != MP_BACKEND_CPU) {
        void *d = backend_copy(L, te->data, mp_tensor_nbytes(te));
        if (!d) return -1;
        m->tok_embd.data = d;
        m->tok_embd.backend = L->ex->backend;
    }
    if (f32_vec(L, "output_norm.weight", D, 0, &m->out_norm) < 0) return -1;
    if (!c->tie_embeddings && L->src->find(L->src->ctx, "output.weight")) {
        if (lin_weight(L, "output.weight", D, V, &m->output) < 0) return -1;
    } else {
        c->tie_embeddings = 1;
        m->output.w = m->tok_embd;
        m->output.b = NULL;
    }
    m->layers = calloc((size_t)c->n_layer, sizeof *m->layers);
    if (!m->layers) return mp_errf(L->err, "%s: out of memory", L->src->path);
    char nm[128];
#define NM(suffix) (snprintf(nm, sizeof nm, "blk.%d.%s", l, suffix), nm)
    for (int l = 0; l < c->n_layer; l++) {
        mp_llama_layer *y = &m->layers[l];
        if (f32_vec(L, NM("attn_norm.weight"), D, 0, &y->attn_norm) < 0 ||
            lin_weight(L, NM("attn_q.weight"), D, qd, &y->wq) < 0 ||
            lin_weight(L, NM("attn_k.weight"), D, kvd, &y->wk) < 0 ||
            lin_weight(L, NM("attn_v.weight"), D, kvd, &y->wv) < 0 ||
            lin_weight(L, NM("attn_output.weight"), qd, D, &y->wo) < 0 ||
            f32_vec(L, NM("ffn_norm.weight"), D, 0, &y->ffn_norm) < 0 ||
            lin_weight(L, NM("ffn_gate.weight"), D, F, &y->w_gate) < 0 ||
            lin_weight(L, NM("ffn_up.weight"), D, F, &y->w_up) < 0 ||
            lin_weight(L, NM("ffn_down.weight"), F, D, &y->w_down) < 0)
            return -1;
        int bias_req = c->arch == MP_LLM_QWEN2;
        if (f32_vec(L, NM("attn_q.bias"), qd, !bias_req, &y->wq.b) < 0 ||
            f32_vec(L, NM("attn_k.bias"), kvd, !bias_req, &y->wk.b) < 0 ||
            f32_vec(L, NM("attn_v.bias"), kvd, !bias_req, &y->wv.b) < 0 ||
            f32_vec(L, NM("attn_output.bias"), D, 1, &y->wo.b) < 0)
            return -1;
    }
#undef NM
    if (c->rope_scaling == MP_ROPE_SCALING_LLAMA3) {
        float f[2048];
        if (c->n_rot / 2 > 2048) return mp_errf(L->err, "%s: too many rotary dims", L->src->path);
        const mp_tensor *rf = L->src->find(L->src->ctx, "rope_freqs.weight");
        if (rf) { /* GGUF stores the factors */
            int64_t n1[1] = {c->n_rot / 2};
            if (!need(L, "rope_freqs.weight", 1, n1)) return -1;
            mp_dequantize_row(rf->dtype, rf->data, f, c->n_rot / 2);
        } else {
            llama3_factors(c, f);
        }
        const float *d = NULL;
        if (host_f32_upload(L, f, c->n_rot / 2, &d) < 0) return -1;
        m->rope_freq_factors = (float *)d;
    }
    return 0;
}

/* ---------------------------------------------------------------- llama2.c checkpoints */

static const mp_tensor *weights_find(void *p, const char *name) { return mp_weights_get(p, name); }

static int config_llama2c(mp_llama_config *c, const mp_llama2c_config *h, const char *path, mp_error *err) {
    memset(c, 0, sizeof *c);
    c->arch = MP_LLM_LLAMA;
    c->n_embd = h->dim;
    c->n_ff = h->hidden_dim;
    c->n_layer = h->n_layers;
    c->n_head = h->n_heads;
    c->n_kv_head = h->n_kv_heads;
    c->n_vocab = h->vocab_size;
    c->tie_embeddings = h->shared_classifier;
    c->n_ctx_train = h->seq_len;
    c->norm_eps = h->rms_norm_eps > 0 ? h->rms_norm_eps : 1e-5f;
    c->rope_theta = h->rope_theta > 0 ? h->rope_theta : 10000.0f;
    c->rope_mode = MP_ROPE_NORMAL; /* run.c rotates consecutive pairs */
    c->bos_id = 1;
    c->eos_ids[0] = 2;
    c->n_eos = 1;
    return mp_llama_config_check(c, path, err);
}

/* ---------------------------------------------------------------- GGUF */

static int gguf_u32(const mp_gguf *g, const char *suffix, uint32_t def, int required, int *out, mp_error *err) {
    char key[160];
    mp_gguf_arch_key(g, suffix, key, sizeof key);
    uint32_t v = def;
    if (required) {
        if (mp_gguf_get_u32(g, key, &v, err) < 0) return -1;
    } else if (mp_gguf_get_u32_or(g, key, def, &v, err) < 0) {
        return -1;
    }
    if (v > (uint32_t)INT32_MAX) return mp_errf(err, "%s: %s = %u is too large", mp_gguf_path(g), key, v);
    *out = (int)v;
    return 0;
}

static int gguf_f32(const mp_gguf *g, const char *suffix, float def, float *out, mp_error *err) {
    char key[160];
    mp_gguf_arch_key(g, suffix, key, sizeof key);
    return mp_gguf_get_f32_or(g, key, def, out, err);
}

static int config_gguf(mp_llama_config *c, const mp_gguf *g, const char *path, mp_error *err) {
    const char *arch = NULL;
    if (mp_gguf_get_str(g, "general.architecture", &arch, err) < 0) return -1;
    memset(c, 0, sizeof *c);
    if (!strcmp(arch, "llama")) {
        c->arch = MP_LLM_LLAMA;
        c->rope_mode = MP_ROPE_NORMAL;
    } else if (!strcmp(arch, "qwen2") || !strcmp(arch, "qwen2vl")) {
        c->arch = MP_LLM_QWEN2;
        c->rope_mode = MP_ROPE_NEOX;
    } else if (!strcmp(arch, "granite")) {
        c->arch = MP_LLM_GRANITE;
        c->rope_mode = MP_ROPE_NORMAL;
    } else {
        return mp_errf(err, "%s: unknown architecture '%s' (supported: llama, qwen2, granite)", path, arch);
    }
    if (gguf_u32(g, "embedding_length", 0, 1, &c->n_embd, err) < 0 ||
        gguf_u32(g, "feed_forward_length", 0, 1, &c->n_ff, err) < 0 ||
        gguf_u32(g, "block_count", 0, 1, &c->n_layer, err) < 0 ||
        gguf_u32(g, "attention.head_count", 0, 1, &c->n_head, err) < 0 ||
        gguf_u32(g, "attention.head_count_kv", (uint32_t)c->n_head, 0, &c->n_kv_head, err) < 0 ||
        gguf_u32(g, "context_length", 2048, 0, &c->n_ctx_train, err) < 0 ||
        gguf_u32(g, "attention.key_length", 0, 0, &c->head_dim, err) < 0 ||
        gguf_u32(g, "rope.dimension_count", 0, 0, &c->n_rot, err) < 0 ||
        gguf_f32(g, "attention.layer_norm_rms_epsilon", 1e-5f, &c->norm_eps, err) < 0 ||
        gguf_f32(g, "rope.freq_base", 10000.0f, &c->rope_theta, err) < 0)
        return -1;
    int vk = 0;
    if (gguf_u32(g, "vocab_size", 0, 0, &vk, err) < 0) return -1;
    const mp_tensor *te = mp_gguf_find_tensor(g, "token_embd.weight");
    if (!te) return mp_errf(err, "%s: missing tensor token_embd.weight", path);
    c->n_vocab = vk > 0 ? vk : (int)te->ne[1];
    /* RoPE scaling */
    const char *stype = NULL;
    char key[160];
    mp_gguf_arch_key(g, "rope.scaling.type", key, sizeof key);
    if (mp_gguf_get_str_or(g, key, "none", &stype, err) < 0) return -1;
    float factor = 0, lin = 0;
    if (gguf_f32(g, "rope.scaling.factor", 0, &factor, err) < 0 || gguf_f32(g, "rope.scale_linear", 0, &lin, err) < 0 ||
        gguf_u32(g, "rope.scaling.original_context_length", 0, 0, &c->rope_orig_ctx, err) < 0 ||
        gguf_f32(g, "rope.scaling.yarn_beta_fast", 0, &c->yarn_beta_fast, err) < 0 ||
        gguf_f32(g, "rope.scaling.yarn_beta_slow", 0, &c->yarn_beta_slow, err) < 0 ||
        gguf_f32(g, "rope.scaling.attn_factor", 0, &c->yarn_attn_factor, err) < 0)
        return -1;
    if (!strcmp(stype, "linear") || (!strcmp(stype, "none") && lin > 1)) {
        c->rope_scaling = MP_ROPE_SCALING_LINEAR;
        c->rope_factor = factor > 0 ? factor : lin;
    } else if (!strcmp(stype, "yarn")) {
        c->rope_scaling = MP_ROPE_SCALING_YARN;
        c->rope_factor = factor;
    } else if (strcmp(stype, "none") != 0) {
        return mp_errf(err, "%s: unsupported rope scaling '%s'", path, stype);
    }
    if (mp_gguf_find_tensor(g, "rope_freqs.weight")) { /* llama3: the factors are stored */
        c->rope_scaling = MP_ROPE_SCALING_LLAMA3;
        c->rope_factor = factor > 0 ? factor : 1;
    }
    mp_gguf_arch_key(g, "rope.dimension_sections", key, sizeof key);
    if (mp_gguf_has(g, key)) { /* qwen2vl M-RoPE */
        int64_t n = mp_gguf_arr_len(g, key, err);
        if (n < 0) return -1;
        if (n > 4) return mp_errf(err, "%s: %s has %lld entries, at most 4 expected", path, key, (long long)n);
        if (mp_gguf_get_arr_i32(g, key, c->rope_sections, (uint64_t)n, err) < 0) return -1;
    }
    if (c->arch == MP_LLM_GRANITE) {
        if (gguf_f32(g, "embedding_scale", 1, &c->embedding_multiplier, err) < 0 ||
            gguf_f32(g, "residual_scale", 1, &c->residual_multiplier, err) < 0 ||
            gguf_f32(g, "attention.scale", 0, &c->attention_multiplier, err) < 0 ||
            gguf_f32(g, "logit_scale", 1, &c->logits_scaling, err) < 0)
            return -1;
    }
    c->tie_embeddings = mp_gguf_find_tensor(g, "output.weight") == NULL;
    int32_t bos = -1, eos = -1, eot = -1;
    if (mp_gguf_get_i32_or(g, "tokenizer.ggml.bos_token_id", -1, &bos, err) < 0 ||
        mp_gguf_get_i32_or(g, "tokenizer.ggml.eos_token_id", -1, &eos, err) < 0 ||
        mp_gguf_get_i32_or(g, "tokenizer.ggml.eot_token_id", -1, &eot, err) < 0)
        return -1;
    c->bos_id = bos;
    if (eos >= 0) c->eos_ids[c->n_eos++] = eos;
    if (eot >= 0 && eot != eos) c->eos_ids[c->n_eos++] = eot;
    return mp_llama_config_check(c, path, err);
}

/* ---------------------------------------------------------------- HF folders */

/* HF checkpoints name the decoder's tensors under one of these prefixes (plain causal LMs, then the
 * language model inside SmolVLM/Idefics3, Qwen2-VL and Llava-style checkpoints). */
static const char *const hf_prefixes[] = {"model.", "model.text_model.", "model.language_model.",
                                          "language_model.model.", "text_model.", ""};
static const char *const hf_heads[] = {"lm_head.weight", "language_model.lm_head.weight", "model.lm_head.weight"};

typedef struct hf_ctx {
    const mp_weights *w;
    const char *prefix;
} hf_ctx;

/* llama.cpp name -> HF name */
static const mp_tensor *hf_find(void *p, const char *name) {
    const hf_ctx *h = p;
    static const char *const map[][2] = {
        {"attn_norm.weight", "input_layernorm.weight"},
        {"attn_q.weight", "self_attn.q_proj.weight"},
        {"attn_k.weight", "self_attn.k_proj.weight"},
        {"attn_v.weight", "self_attn.v_proj.weight"},
        {"attn_output.weight", "self_attn.o_proj.weight"},
        {"attn_q.bias", "self_attn.q_proj.bias"},
        {"attn_k.bias", "self_attn.k_proj.bias"},
        {"attn_v.bias", "self_attn.v_proj.bias"},
        {"attn_output.bias", "self_attn.o_proj.bias"},
        {"ffn_norm.weight", "post_attention_layernorm.weight"},
        {"ffn_gate.weight", "mlp.gate_proj.weight"},
        {"ffn_up.weight", "mlp.up_proj.weight"},
        {"ffn_down.weight", "mlp.down_proj.weight"},
    };
    char hn[256];
    int layer, off = 0;
    if (sscanf(name, "blk.%d.%n", &layer, &off) == 1 && off > 0) {
        for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
            if (!strcmp(name + off, map[i][0])) {
                snprintf(hn, sizeof hn, "%slayers.%d.%s", h->prefix, layer, map[i][1]);
                return mp_weights_get(h->w, hn);
            }
        return NULL;
    }
    if (!strcmp(name, "token_embd.weight")) {
        snprintf(hn, sizeof hn, "%sembed_tokens.weight", h->prefix);
        return mp_weights_get(h->w, hn);
    }
    if (!strcmp(name, "output_norm.weight")) {
        snprintf(hn, sizeof hn, "%snorm.weight", h->prefix);
        return mp_weights_get(h->w, hn);
    }
    if (!strcmp(name, "output.weight")) {
        for (size_t i = 0; i < sizeof hf_heads / sizeof hf_heads[0]; i++) {
            const mp_tensor *t = mp_weights_get(h->w, hf_heads[i]);
            if (t) return t;
        }
    }
    return NULL;
}

static int config_hf(mp_llama_config *c, const mp_hf_config *hc, const char *path, mp_error *err) {
    const mp_json *t = &hc->text;
    memset(c, 0, sizeof *c);
    const char *mt = NULL;
    if (mp_json_str_or(t, "model_type", "", &mt, err) < 0) return -1;
    if (!strcmp(mt, "llama") || !strcmp(mt, "vllama3")) {
        c->arch = MP_LLM_LLAMA;
    } else if (!strcmp(mt, "qwen2") || !strcmp(mt, "qwen2_vl") || !strcmp(mt, "qwen2_5_vl")) {
        c->arch = MP_LLM_QWEN2;
    } else if (!strcmp(mt, "granite")) {
        c->arch = MP_LLM_GRANITE;
    } else {
        return mp_errf(err, "%s: unknown architecture '%s' (supported: llama, qwen2, granite)", path, mt);
    }
    c->rope_mode = MP_ROPE_NEOX; /* HF keeps q/k in rotate-half order */
    int64_t v[12];
    static const char *const keys[] = {"hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                                       "vocab_size"};
    for (int i = 0; i < 5; i++) {
        if (mp_json_get_int(t, keys[i], &v[i], err) < 0) return -1;
        if (v[i] <= 0 || v[i] > (1 << 24)) return mp_errf(err, "%s: %s = %lld is out of range", path, keys[i], (long long)v[i]);
    }
    int64_t kvh, hd, ctx;
    double eps, theta;
    int tie, bias;
    if (mp_json_int_or(t, "num_key_value_heads", v[3], &kvh, err) < 0 || mp_json_int_or(t, "head_dim", 0, &hd, err) < 0 ||
        mp_json_int_or(t, "max_position_embeddings", 2048, &ctx, err) < 0 ||
        mp_json_f64_or(t, "rms_norm_eps", 1e-6, &eps, err) < 0 || mp_json_f64_or(t, "rope_theta", 10000.0, &theta, err) < 0 ||
        mp_json_bool_or(t, "tie_word_embeddings", -1, &tie, err) < 0 ||
        mp_json_bool_or(t, "attention_bias", c->arch == MP_LLM_QWEN2, &bias, err) < 0)
        return -1;
    if (tie < 0 && mp_json_bool_or(&hc->config, "tie_word_embeddings", 0, &tie, err) < 0) return -1;
    if (kvh <= 0 || kvh > 4096 || hd < 0 || hd > 4096 || ctx <= 0 || ctx > (1LL << 30))
        return mp_errf(err, "%s: bad num_key_value_heads / head_dim / max_position_embeddings", path);
    c->n_embd = (int)v[0];
    c->n_ff = (int)v[1];
    c->n_layer = (int)v[2];
    c->n_head = (int)v[3];
    c->n_vocab = (int)v[4];
    c->n_kv_head = (int)kvh;
    c->head_dim = (int)hd;
    c->n_ctx_train = (int)ctx;
    c->norm_eps = (float)eps;
    c->rope_theta = (float)theta;
    c->tie_embeddings = tie;
    /* rope scaling */
    if (mp_json_has(t, "rope_scaling")) {
        mp_json rs;
        if (mp_json_sub(t, "rope_scaling", &rs, err) < 0) return -1;
        const char *kind = NULL;
        double f = 0, lo = 0, hi = 0, bf = 0, bs = 0, af = 0;
        int64_t orig = 0;
        if (mp_json_str_or(&rs, "rope_type", NULL, &kind, err) < 0) return -1;
        if (!kind && mp_json_str_or(&rs, "type", "default", &kind, err) < 0) return -1;
        if (mp_json_f64_or(&rs, "factor", 0, &f, err) < 0 || mp_json_f64_or(&rs, "low_freq_factor", 0, &lo, err) < 0 ||
            mp_json_f64_or(&rs, "high_freq_factor", 0, &hi, err) < 0 || mp_json_f64_or(&rs, "beta_fast", 0, &bf, err) < 0 ||
            mp_json_f64_or(&rs, "beta_slow", 0, &bs, err) < 0 || mp_json_f64_or(&rs, "attention_factor", 0, &af, err) < 0 ||
            mp_json_int_or(&rs, "original_max_position_embeddings", 0, &orig, err) < 0)
            return -1;
        c->rope_factor = (float)f;
        c->rope_low_freq_factor = (float)lo;
        c->rope_high_freq_factor = (float)hi;
        c->yarn_beta_fast = (float)bf;
        c->yarn_beta_slow = (float)bs;
        c->yarn_attn_factor = (float)af;
        c->rope_orig_ctx = orig > 0 && orig < (1LL << 30) ? (int)orig : 0;
        if (!strcmp(kind, "linear")) c->rope_scaling = MP_ROPE_SCALING_LINEAR;
        else if (!strcmp(kind, "llama3")) c->rope_scaling = MP_ROPE_SCALING_LLAMA3;
        else if (!strcmp(kind, "yarn")) c->rope_scaling = MP_ROPE_SCALING_YARN;
        else if (strcmp(kind, "default") != 0 && strcmp(kind, "mrope") != 0)
            return mp_errf(err, "%s: unsupported rope_scaling type '%s'", path, kind);
        if (mp_json_has(&rs, "mrope_section")) { /* Qwen2-VL / Qwen2.5-VL: [t, h, w] rotary pairs */
            int64_t sec[4] = {0, 0, 0, 0};
            int n = 0;
            if (mp_json_get_int_array(&rs, "mrope_section", sec, 4, &n, err) < 0) return -1;
            for (int i = 0; i < n; i++) {
                if (sec[i] < 0 || sec[i] > 4096) return mp_errf(err, "%s: bad mrope_section", path);
                c->rope_sections[i] = (int)sec[i];
            }
        }
    }
    if (c->arch == MP_LLM_GRANITE) {
        double em, am, rm, ls;
        if (mp_json_f64_or(t, "embedding_multiplier", 1, &em, err) < 0 ||
            mp_json_f64_or(t, "attention_multiplier", 0, &am, err) < 0 ||
            mp_json_f64_or(t, "residual_multiplier", 1, &rm, err) < 0 || mp_json_f64_or(t, "logits_scaling", 1, &ls, err) < 0)
            return -1;
        c->embedding_multiplier = (float)em;
        c->attention_multiplier = (float)am;
        c->residual_multiplier = (float)rm;
        c->logits_scaling = (float)ls;
    }
    (void)bias; /* biases are picked up when present */
    int32_t bos = -1;
    if (mp_json_i32_or(&hc->generation, "bos_token_id", -1, &bos, err) < 0) return -1;
    if (bos < 0 && mp_json_i32_or(t, "bos_token_id", -1, &bos, err) < 0) return -1;
    c->bos_id = bos;
    int64_t eos[8];
    int ne = mp_hf_eos_ids(hc, eos, 8, err);
    if (ne < 0) return -1;
    for (int i = 0; i < ne; i++)
        if (eos[i] >= 0 && eos[i] < INT32_MAX) c->eos_ids[c->n_eos++] = (int32_t)eos[i];
    return mp_llama_config_check(c, path, err);
}

static int hf_config_at(mp_llama_config *c, const char *path, mp_error *err) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    if (!mp_is_dir(dir)) {
        char *sl = strrchr(dir, '/');
        if (sl) *sl = 0; else snprintf(dir, sizeof dir, ".");
    }
    mp_hf_config cfg;
    if (mp_hf_config_load(&cfg, dir, err) < 0) return -1;
    int rc = config_hf(c, &cfg, dir, err);
    mp_hf_config_free(&cfg);
    return rc;
}

/* ---------------------------------------------------------------- entry */

int mp_llama_config_load(mp_llama_config *c, const char *path, mp_error *err) {
    if (mp_is_dir(path)) return hf_config_at(c, path, err);
    mp_weights *w = NULL;
    if (mp_weights_open(&w, path, err) < 0) return -1;
    int rc;
    switch (mp_weights_format_of(w)) {
    case MP_WEIGHTS_LLAMA2C: rc = config_llama2c(c, mp_weights_llama2c(w), path, err); break;
    case MP_WEIGHTS_GGUF: rc = config_gguf(c, mp_weights_gguf(w), path, err); break;
    default: rc = hf_config_at(c, path, err); break;
    }
    mp_weights_free(w);
    return rc;
}

int mp_llama_load(mp_llama *m, const char *path, mp_exec *ex, mp_error *err) {
    memset(m, 0, sizeof *m);
    load_owner *own = calloc(1, sizeof *own);
    if (!own) return mp_errf(err, "%s: out of memory", path);
    m->owner = own;
    m->owner_free = owner_free;
    m->backend = ex->backend;
    int rc = mp_weights_open(&own->w, path, err);
    if (rc == 0) {
        tsrc src = {path, weights_find, own->w};
        hf_ctx hc = {own->w, ""};
        switch (mp_weights_format_of(own->w)) {
        case MP_WEIGHTS_LLAMA2C:
            rc = config_llama2c(&m->cfg, mp_weights_llama2c(own->w), path, err);
            break;
        case MP_WEIGHTS_GGUF:
            rc = config_gguf(&m->cfg, mp_weights_gguf(own->w), path, err);
            break;
        default: /* safetensors: config.json in the folder (or beside the file) */
            rc = hf_config_at(&m->cfg, path, err);
            for (size_t i = 0; rc == 0 && i < sizeof hf_prefixes / sizeof hf_prefixes[0]; i++) {
                char nm[128];
                snprintf(nm, sizeof nm, "%sembed_tokens.weight", hf_prefixes[i]);
                if (mp_weights_get(own->w, nm)) {
                    hc.prefix = hf_prefixes[i];
                    break;
                }
            }
            src.find = hf_find;
            src.ctx = &hc;
            break;
        }
        if (rc == 0) {
            loader L = {&src, own, ex, err};
            rc = load_tensors(m, &L);
        }
    }
    if (rc < 0) mp_llama_free(m, ex);
    return rc;
}
