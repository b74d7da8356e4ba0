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
#include "models/mmap.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---------------------------------------------------------------- ownership */

typedef struct load_owner {
    mp_mmap map;
    mp_gguf *gguf;
    void **host;
    int n_host, cap_host;
    void **dev;
    int n_dev, cap_dev;
    mp_tensor *views; /* tensor views made by the llama2.c reader */
    char *names;
} load_owner;

static void owner_free(void *p, mp_exec *ex) {
    load_owner *o = p;
    if (!o) return;
    for (int i = 0; i < o->n_host; i++) free(o->host[i]);
    for (int i = 0; i < o->n_dev; i++) mp_backend_free(ex, o->dev[i]);
    free(o->host);
    free(o->dev);
    mp_mmap_close(&o->map);
    if (o->gguf) mp_gguf_free(o->gguf);
    free(o->views);
    free(o->names);
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

/* Legacy llama2.c export (run.c): 7 int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size
 * (negative: separate classifier), seq_len), then F32 tensors: token embedding, rms_att, wq, wk, wv, wo,
 * rms_ffn, w1, w2, w3, rms_final, freq_cis_real, freq_cis_imag, [wcls]. */
typedef struct l2c_ctx {
    mp_tensor *views;
    int n;
} l2c_ctx;

static const mp_tensor *l2c_find(void *p, const char *name) {
    l2c_ctx *c = p;
    for (int i = 0; i < c->n; i++)
        if (!strcmp(c->views[i].name, name)) return &c->views[i];
    return NULL;
}

static int load_llama2c(mp_llama *m, const char *path, mp_exec *ex, load_owner *own, mp_error *err) {
    if (mp_mmap_open(&own->map, path, err) < 0) return -1;
    const uint8_t *base = own->map.data;
    const size_t size = own->map.size;
    if (size < 28) return mp_errf(err, "%s: too short for a llama2.c checkpoint (%zu bytes)", path, size);
    int32_t h[7];
    memcpy(h, base, sizeof h);
    if (h[0] == 0x616b3432) /* "ak42": the versioned export */
        return mp_errf(err, "%s: versioned llama2.c export (magic ak42) is not supported; use the legacy export", path);
    mp_llama_config *c = &m->cfg;
    memset(c, 0, sizeof *c);
    c->arch = MP_LLM_LLAMA;
    c->n_embd = h[0];
    c->n_ff = h[1];
    c->n_layer = h[2];
    c->n_head = h[3];
    c->n_kv_head = h[4];
    c->n_vocab = h[5] < 0 ? -h[5] : h[5];
    c->tie_embeddings = h[5] > 0;
    c->n_ctx_train = h[6];
    c->norm_eps = 1e-5f;
    c->rope_theta = 10000.0f;
    c->rope_mode = MP_ROPE_NORMAL;
    c->bos_id = 1;
    c->eos_ids[0] = 2;
    c->n_eos = 1;
    if (h[0] <= 0 || h[1] <= 0 || h[2] <= 0 || h[3] <= 0 || h[4] <= 0 || h[5] == 0 || h[6] <= 0 || h[0] > 65536 ||
        h[1] > 1 << 20 || h[2] > 4096 || h[3] > 4096 || h[6] > 1 << 24 || h[5] == INT32_MIN)
        return mp_errf(err, "%s: not a llama2.c checkpoint (header %d %d %d %d %d %d %d)", path, h[0], h[1], h[2], h[3],
                       h[4], h[5], h[6]);
    if (mp_llama_config_check(c, path, err) < 0) return -1;
    const int64_t D = c->n_embd, F = c->n_ff, Lr = c->n_layer, V = c->n_vocab, hs = c->head_dim;
    const int64_t kvd = (int64_t)c->n_kv_head * hs, S = c->n_ctx_train;
    /* sizes in floats, in file order */
    int64_t need_f = V * D + Lr * D + Lr * D * D + 2 * Lr * D * kvd + Lr * D * D + Lr * D + 3 * Lr * D * F + D +
                     S * hs / 2 * 2 + (c->tie_embeddings ? 0 : V * D);
    if ((uint64_t)need_f * 4 + 28 != size)
        return mp_errf(err, "%s: size %zu does not match the header (expected %lld bytes for dim %d, layers %d, vocab %d)",
                       path, size, (long long)need_f * 4 + 28, c->n_embd, c->n_layer, c->n_vocab);
    const int n_views = 2 + (int)Lr * 9 + 2;
    own->views = calloc((size_t)n_views, sizeof(mp_tensor));
    own->names = malloc((size_t)n_views * 40);
    if (!own->views || !own->names) return mp_errf(err, "%s: out of memory", path);
    l2c_ctx lc = {own->views, 0};
    const float *p = (const float *)(base + 28);
#define VIEW(nm_fmt, lidx, d0, d1, ptr)                                                              \
    do {                                                                                             \
        mp_tensor *t = &own->views[lc.n];                                                            \
        char *s = own->names + (size_t)lc.n * 40;                                                    \
        snprintf(s, 40, nm_fmt, lidx);                                                               \
        int64_t ne_[2] = {d0, d1};                                                                   \
        mp_tensor_init(t, MP_F32, (d1) > 1 ? 2 : 1, ne_, (void *)(ptr));                             \
        t->name = s;                                                                                 \
        lc.n++;                                                                                      \
    } while (0)
    VIEW("token_embd.weight%.0d", 0, D, V, p);
    const float *emb = p;
    p += V * D;
    const float *rms_att = p; p += Lr * D;
    const float *wq = p; p += Lr * D * D;
    const float *wk = p; p += Lr * D * kvd;
    const float *wv = p; p += Lr * D * kvd;
    const float *wo = p; p += Lr * D * D;
    const float *rms_ffn = p; p += Lr * D;
    const float *w1 = p; p += Lr * D * F;
    const float *w2 = p; p += Lr * F * D;
    const float *w3 = p; p += Lr * D * F;
    const float *rms_final = p; p += D;
    p += S * hs / 2 * 2; /* legacy freq_cis tables: RoPE is computed */
    const float *wcls = c->tie_embeddings ? emb : p;
    for (int l = 0; l < (int)Lr; l++) {
        VIEW("blk.%d.attn_norm.weight", l, D, 1, rms_att + l * D);
        VIEW("blk.%d.attn_q.weight", l, D, D, wq + l * D * D);
        VIEW("blk.%d.attn_k.weight", l, D, kvd, wk + l * D * kvd);
        VIEW("blk.%d.attn_v.weight", l, D, kvd, wv + l * D * kvd);
        VIEW("blk.%d.attn_output.weight", l, D, D, wo + l * D * D);
        VIEW("blk.%d.ffn_norm.weight", l, D, 1, rms_ffn + l * D);
        VIEW("blk.%d.ffn_gate.weight", l, D, F, w1 + l * D * F);
        VIEW("blk.%d.ffn_down.weight", l, F, D, w2 + l * F * D);
        VIEW("blk.%d.ffn_up.weight", l, D, F, w3 + l * D * F);
    }
    VIEW("output_norm.weight%.0d", 0, D, 1, rms_final);
    if (!c->tie_embeddings) VIEW("output.weight%.0d", 0, D, V, wcls);
#undef VIEW
    if (c->n_head * hs != D) return mp_errf(err, "%s: %d heads do not divide dim %d", path, c->n_head, c->n_embd);
    tsrc src = {path, l2c_find, &lc};
    loader L = {&src, own, ex, err};
    return load_tensors(m, &L);
}

/* ---------------------------------------------------------------- GGUF */

static const mp_tensor *gguf_find(void *p, const char *name) { return mp_gguf_find_tensor(p, name); }

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

static int load_gguf(mp_llama *m, const char *path, mp_exec *ex, load_owner *own, mp_error *err) {
    if (mp_gguf_open(&own->gguf, path, err) < 0) return -1;
    const mp_gguf *g = own->gguf;
    const char *arch = NULL;
    if (mp_gguf_get_str(g, "general.architecture", &arch, err) < 0) return -1;
    mp_llama_config *c = &m->cfg;
    memset(c, 0, sizeof *c);
    if (!strcmp(arch, "llama")) {
        c->arch = MP_LLM_LLAMA;
        c->rope_mode = MP_ROPE_NORMAL;
    } else if (!strcmp(arch, "qwen2")) {
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
    if (mp_llama_config_check(c, path, err) < 0) return -1;
    tsrc src = {path, gguf_find, own->gguf};
    loader L = {&src, own, ex, err};
    return load_tensors(m, &L);
}

/* ---------------------------------------------------------------- entry */

static int is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int mp_llama_load(mp_llama *m, const char *path, mp_exec *ex, mp_error *err) {
    memset(m, 0, sizeof *m);
    load_owner *own = calloc(1, sizeof *own);
    if (!own) return mp_errf(err, "%s: out of memory", path);
    m->owner = own;
    m->owner_free = owner_free;
    m->backend = ex->backend;
    int rc;
    if (is_dir(path)) {
        rc = mp_errf(err, "%s: HF folders are not supported yet", path);
    } else {
        FILE *f = fopen(path, "rb");
        if (!f) {
            rc = mp_errf(err, "%s: cannot open: %s", path, strerror(errno));
        } else {
            char magic[4] = {0};
            size_t got = fread(magic, 1, 4, f);
            fclose(f);
            if (got == 4 && !memcmp(magic, "GGUF", 4))
                rc = load_gguf(m, path, ex, own, err);
            else
                rc = load_llama2c(m, path, ex, own, err);
        }
    }
    if (rc < 0) mp_llama_free(m, ex);
    return rc;
}
