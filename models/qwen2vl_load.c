/* qwen2vl_load.c — the Qwen2-VL / Qwen2.5-VL vision tower (encoders/qwen2vl_vit.h) from an HF folder or a
 * llama.cpp mmproj GGUF. The language model of the same checkpoints loads through mp_llama_load (HF:
 * model.* or model.language_model.* and lm_head; GGUF: the separate text model, arch qwen2vl).
 *
 * Tensor names, GGUF (llama.cpp convert_hf_to_gguf.py Qwen2VLVisionModel, tools/mtmd) = HF (prefix
 * "visual." or, in newer checkpoints, "model.visual."):
 *   v.patch_embd.weight / .weight.1     patch_embed.proj.weight [D][C][2][P][P], split per temporal tap
 *   v.blk.N.ln1 / ln2                    blocks.N.norm1 / norm2
 *   v.blk.N.attn_q / attn_k / attn_v     blocks.N.attn.qkv (one [3D][D] tensor: q rows, k rows, v rows)
 *   v.blk.N.attn_out                     blocks.N.attn.proj
 *   v.blk.N.ffn_up / ffn_down            blocks.N.mlp.fc1 / fc2 (Qwen2-VL), mlp.up_proj / down_proj (2.5)
 *   v.blk.N.ffn_gate                     blocks.N.mlp.gate_proj (2.5)
 *   v.post_ln                            merger.ln_q
 *   mm.0 / mm.2                          merger.mlp.0 / merger.mlp.2
 * Hyper-parameters: HF config.json vision_config (+ model_type) and preprocessor_config.json; GGUF
 * clip.projector_type (qwen2vl_merger / qwen2.5vl_merger), clip.vision.* keys, n_wa_pattern or
 * wa_layer_indexes for the full-attention blocks, clip.use_gelu / use_silu for the activation.
 */
#include "encoders/qwen2vl_vit.h"

#include "models/gguf.h"
#include "models/hfjson.h"
#include "models/weights.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---------------------------------------------------------------- what the model keeps alive */

typedef struct qv_mem {
    void *p;
    int dev; /* backend memory (else host heap) */
} qv_mem;

typedef struct qv_owner {
    mp_weights *w;
    qv_mem *mem;
    int n, cap;
} qv_owner;

static void qv_owner_free(void *p, mp_exec *ex) {
    qv_owner *o = p;
    if (!o) return;
    for (int i = 0; i < o->n; i++) {
        if (o->mem[i].dev)
            mp_backend_free(ex, o->mem[i].p);
        else
            free(o->mem[i].p);
    }
    free(o->mem);
    mp_weights_free(o->w);
    free(o);
}

typedef struct qv_load {
    const char *path;
    qv_owner *own;
    int gguf;            /* GGUF names, else HF names under prefix */
    const char *prefix;  /* "visual." or "model.visual." */
    int variant;
    mp_exec *ex;
    mp_error *err;
} qv_load;

static int remember(qv_load *L, void *p, int dev) {
    qv_owner *o = L->own;
    if (o->n == o->cap) {
        int c = o->cap ? 2 * o->cap : 64;
        qv_mem *m = realloc(o->mem, sizeof *m * (size_t)c);
        if (!m) return -1;
        o->mem = m, o->cap = c;
    }
    o->mem[o->n].p = p, o->mem[o->n].dev = dev;
    o->n++;
    return 0;
}

/* host bytes -> backend memory owned by the model (on the CPU: the host pointer itself) */
static void *on_backend(qv_load *L, const void *src, size_t bytes) {
    if (L->ex->backend == MP_BACKEND_CPU) return (void *)src;
    void *d = mp_backend_alloc(L->ex, bytes);
    if (!d || remember(L, d, 1) < 0) {
        if (d) mp_backend_free(L->ex, d);
        mp_errf(L->err, "%s: out of backend memory (%.1f MiB)", L->path, (double)bytes / 1048576.0);
        return NULL;
    }
    return mp_backend_upload(L->ex, d, src, bytes, L->err) < 0 ? NULL : d;
}

static void *host_alloc(qv_load *L, size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p || remember(L, p, 0) < 0) {
        free(p);
        mp_errf(L->err, "%s: out of memory", L->path);
        return NULL;
    }
    return p;
}

/* ---------------------------------------------------------------- names and shapes */

/* the tensor of a GGUF-style name, HF names mapped; NULL when absent */
static const mp_tensor *find(qv_load *L, const char *name) {
    if (L->gguf) return mp_weights_get(L->own->w, name);
    const int v25 = L->variant == MP_QWEN2VL_V25;
    const char *blk[][2] = {
        {"ln1", "norm1"},       {"ln2", "norm2"},
        {"attn_out", "attn.proj"},
        {"ffn_up", v25 ? "mlp.up_proj" : "mlp.fc1"},
        {"ffn_down", v25 ? "mlp.down_proj" : "mlp.fc2"},
        {"ffn_gate", "mlp.gate_proj"},
    };
    static const char *const top[][2] = {
        {"v.post_ln.", "merger.ln_q."}, {"mm.0.", "merger.mlp.0."}, {"mm.2.", "merger.mlp.2."},
    };
    char part[64];
    int layer, off = 0;
    if (sscanf(name, "v.blk.%d.%63[^.].%n", &layer, part, &off) == 2 && off > 0) {
        for (size_t i = 0; i < sizeof blk / sizeof blk[0]; i++)
            if (!strcmp(part, blk[i][0]))
                return mp_weights_getf(L->own->w, "%sblocks.%d.%s.%s", L->prefix, layer, blk[i][1], name + off);
        return NULL;
    }
    for (size_t i = 0; i < sizeof top / sizeof top[0]; i++) {
        size_t n = strlen(top[i][0]);
        if (!strncmp(name, top[i][0], n)) return mp_weights_getf(L->own->w, "%s%s%s", L->prefix, top[i][1], name + n);
    }
    return NULL;
}

/* t has the shape ne (ggml order, nd dims; trailing 1s ignored) */
static int check_shape(qv_load *L, const char *name, const mp_tensor *t, int nd, const int64_t *ne) {
    for (int i = 0; i < MP_MAX_DIMS; i++) {
        int64_t want = i < nd ? ne[i] : 1, have = i < t->ndim ? t->ne[i] : 1;
        if (want != have)
            return mp_errf(L->err, "%s: tensor %s has shape [%lld, %lld, %lld, %lld], expected [%lld, %lld, %lld, %lld]",
                           L->path, name, (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2],
                           (long long)t->ne[3], (long long)ne[0], (long long)(nd > 1 ? ne[1] : 1),
                           (long long)(nd > 2 ? ne[2] : 1), (long long)(nd > 3 ? ne[3] : 1));
    }
    if (!mp_dtype_info(t->dtype)) return mp_errf(L->err, "%s: tensor %s has an unknown dtype %d", L->path, name, (int)t->dtype);
    return 0;
}

/* a vector of n values as F32 in backend memory (norm weights, biases); optional: absent -> NULL */
static int vec_f32(qv_load *L, const mp_tensor *t, const char *name, int64_t n, const float **out) {
    *out = NULL;
    int64_t ne[1] = {n};
    if (check_shape(L, name, t, 1, ne) < 0) return -1;
    if (mp_dtype_row_bytes(t->dtype, n) < 0)
        return mp_errf(L->err, "%s: tensor %s: %lld values do not fit %s blocks", L->path, name, (long long)n,
                       mp_dtype_name(t->dtype));
    const float *host = t->data;
    if (t->dtype != MP_F32) {
        float *f = host_alloc(L, (size_t)n * sizeof(float));
        if (!f) return -1;
        mp_dequantize_row(t->dtype, t->data, f, n);
        host = f;
    }
    *out = on_backend(L, host, (size_t)n * sizeof(float));
    return *out ? 0 : -1;
}

static int vec(qv_load *L, const char *name, int64_t n, int optional, const float **out) {
    const mp_tensor *t = find(L, name);
    *out = NULL;
    if (!t) return optional ? 0 : mp_errf(L->err, "%s: missing tensor %s", L->path, name);
    return vec_f32(L, t, name, n, out);
}

/* a matmul weight placed for the backend: a view of the mapped file on the CPU, a copy elsewhere */
static int place(qv_load *L, const char *name, const mp_tensor *t, mp_tensor *dst) {
    if (mp_dtype_row_bytes(t->dtype, t->ne[0]) < 0)
        return mp_errf(L->err, "%s: tensor %s: rows of %lld do not fit %s blocks", L->path, name, (long long)t->ne[0],
                       mp_dtype_name(t->dtype));
    *dst = *t;
    if (L->ex->backend != MP_BACKEND_CPU) {
        void *d = on_backend(L, t->data, mp_tensor_nbytes(t));
        if (!d) return -1;
        dst->data = d;
        dst->backend = L->ex->backend;
    }
    return 0;
}

/* nn.Linear(in, out) "name.weight" and "name.bias" (the bias required) */
static int linear(qv_load *L, const char *name, int64_t in, int64_t out, mp_qwen2vl_linear *lin) {
    char nm[160];
    snprintf(nm, sizeof nm, "%s.weight", name);
    const mp_tensor *t = find(L, nm);
    int64_t ne[2] = {in, out};
    if (!t) return mp_errf(L->err, "%s: missing tensor %s", L->path, nm);
    if (check_shape(L, nm, t, 2, ne) < 0 || place(L, nm, t, &lin->w) < 0) return -1;
    snprintf(nm, sizeof nm, "%s.bias", name);
    return vec(L, nm, out, 0, &lin->b);
}

/* rows [r0, r0 + n) of a placed matrix as a matrix of its own */
static mp_tensor row_view(const mp_tensor *w, int64_t r0, int64_t n) {
    mp_tensor v = *w;
    v.ne[1] = n;
    v.data = (char *)w->data + (size_t)r0 * w->nb[1];
    return v;
}

/* q, k, v of layer l: HF's fused qkv (views of its row blocks) or GGUF's three tensors */
static int attn_qkv(qv_load *L, int l, int64_t D, mp_qwen2vl_vit_layer *y) {
    char nm[160];
    if (L->gguf) {
        snprintf(nm, sizeof nm, "v.blk.%d.attn_q", l);
        if (linear(L, nm, D, D, &y->q) < 0) return -1;
        snprintf(nm, sizeof nm, "v.blk.%d.attn_k", l);
        if (linear(L, nm, D, D, &y->k) < 0) return -1;
        snprintf(nm, sizeof nm, "v.blk.%d.attn_v", l);
        return linear(L, nm, D, D, &y->v);
    }
    snprintf(nm, sizeof nm, "%sblocks.%d.attn.qkv.weight", L->prefix, l);
    const mp_tensor *t = mp_weights_get(L->own->w, nm);
    int64_t ne[2] = {D, 3 * D};
    mp_tensor all;
    if (!t) return mp_errf(L->err, "%s: missing tensor %s", L->path, nm);
    if (check_shape(L, nm, t, 2, ne) < 0 || place(L, nm, t, &all) < 0) return -1;
    y->q.w = row_view(&all, 0, D), y->k.w = row_view(&all, D, D), y->v.w = row_view(&all, 2 * D, D);
    snprintf(nm, sizeof nm, "%sblocks.%d.attn.qkv.bias", L->prefix, l);
    t = mp_weights_get(L->own->w, nm);
    const float *b;
    if (!t) return mp_errf(L->err, "%s: missing tensor %s", L->path, nm);
    if (vec_f32(L, t, nm, 3 * D, &b) < 0) return -1;
    y->q.b = b, y->k.b = b + D, y->v.b = b + 2 * D;
    return 0;
}

/* the Conv3d patch embedding as a matrix {C*T*P*P, D} whose rows follow the processor's (c, t, y, x) */
static int patch_weight(qv_load *L, mp_qwen2vl_vit *m) {
    const mp_qwen2vl_vit_config *c = &m->cfg;
    const int64_t D = c->dim, C = c->in_chans, T = c->temporal_patch_size, PP = (int64_t)c->patch_size * c->patch_size;
    mp_tensor w;
    if (!L->gguf) {
        char nm[160];
        snprintf(nm, sizeof nm, "%spatch_embed.proj.weight", L->prefix);
        const mp_tensor *t = mp_weights_get(L->own->w, nm);
        if (!t) return mp_errf(L->err, "%s: missing tensor %s", L->path, nm);
        /* [D][C][T][P][P] (5-D: the reader folds the innermost dims into ne[0]) */
        if (mp_tensor_nelements(t) != D * C * T * PP || t->ne[t->ndim - 1] != D || !mp_tensor_is_contiguous(t))
            return mp_errf(L->err, "%s: tensor %s is not a [%lld, %lld, %lld, %d, %d] Conv3d weight", L->path, nm,
                           (long long)D, (long long)C, (long long)T, c->patch_size, c->patch_size);
        int64_t ne[2] = {C * T * PP, D};
        mp_tensor_init(&w, t->dtype, 2, ne, t->data);
        return place(L, nm, &w, &m->patch);
    }
    /* GGUF: one Conv2d weight {P, P, C, D} per temporal tap (v.patch_embd.weight, .weight.1, ...),
     * interleaved here into the Conv3d layout */
    const mp_tensor *taps[16] = {NULL};
    int64_t ne4[4] = {c->patch_size, c->patch_size, C, D};
    for (int k = 0; k < T; k++) {
        char nm[64];
        if (k == 0)
            snprintf(nm, sizeof nm, "v.patch_embd.weight");
        else
            snprintf(nm, sizeof nm, "v.patch_embd.weight.%d", k);
        taps[k] = mp_weights_get(L->own->w, nm);
        if (!taps[k]) return mp_errf(L->err, "%s: missing tensor %s", L->path, nm);
        if (check_shape(L, nm, taps[k], 4, ne4) < 0) return -1;
        if (taps[k]->dtype != MP_F32 && taps[k]->dtype != MP_F16 && taps[k]->dtype != MP_BF16)
            return mp_errf(L->err, "%s: tensor %s: patch embedding in %s (F32, F16 or BF16 expected)", L->path, nm,
                           mp_dtype_name(taps[k]->dtype));
        if (taps[k]->dtype != taps[0]->dtype)
            return mp_errf(L->err, "%s: the patch embedding taps have different dtypes", L->path);
    }
    const size_t es = (size_t)mp_dtype_info(taps[0]->dtype)->type_size;
    char *dst = host_alloc(L, (size_t)(D * C * T * PP) * es);
    if (!dst) return -1;
    for (int64_t o = 0; o < D; o++)
        for (int64_t ch = 0; ch < C; ch++)
            for (int64_t k = 0; k < T; k++)
                memcpy(dst + (size_t)(((o * C + ch) * T + k) * PP) * es,
                       (const char *)taps[k]->data + (size_t)((o * C + ch) * PP) * es, (size_t)PP * es);
    int64_t ne[2] = {C * T * PP, D};
    mp_tensor_init(&w, taps[0]->dtype, 2, ne, dst);
    return place(L, "v.patch_embd.weight", &w, &m->patch);
}

static int load_tensors(qv_load *L, mp_qwen2vl_vit *m) {
    const mp_qwen2vl_vit_config *c = &m->cfg;
    const int64_t D = c->dim, F = c->n_ff, mm = (int64_t)c->merge_size * c->merge_size;
    const int v25 = c->variant == MP_QWEN2VL_V25;
    if (patch_weight(L, m) < 0) return -1;
    m->layers = calloc((size_t)c->n_layer, sizeof *m->layers);
    if (!m->layers) return mp_errf(L->err, "%s: out of memory", L->path);
    char nm[128];
#define NM(suffix) (snprintf(nm, sizeof nm, "v.blk.%d.%s", l, suffix), nm)
    for (int l = 0; l < c->n_layer; l++) {
        mp_qwen2vl_vit_layer *y = &m->layers[l];
        if (vec(L, NM("ln1.weight"), D, 0, &y->norm1_w) < 0 || vec(L, NM("ln1.bias"), D, v25, &y->norm1_b) < 0 ||
            vec(L, NM("ln2.weight"), D, 0, &y->norm2_w) < 0 || vec(L, NM("ln2.bias"), D, v25, &y->norm2_b) < 0 ||
            attn_qkv(L, l, D, y) < 0 || linear(L, NM("attn_out"), D, D, &y->proj) < 0)
            return -1;
        if (v25) {
            if (linear(L, NM("ffn_gate"), D, F, &y->gate) < 0 || linear(L, NM("ffn_up"), D, F, &y->up) < 0 ||
                linear(L, NM("ffn_down"), F, D, &y->down) < 0)
                return -1;
        } else if (linear(L, NM("ffn_up"), D, F, &y->fc1) < 0 || linear(L, NM("ffn_down"), F, D, &y->fc2) < 0) {
            return -1;
        }
    }
#undef NM
    mp_qwen2vl_merger *g = &m->merger;
    g->dim = c->dim, g->merge_size = c->merge_size, g->out_dim = c->out_dim, g->rms = v25, g->eps = c->eps;
    if (vec(L, "v.post_ln.weight", D, 0, &g->ln_w) < 0 || vec(L, "v.post_ln.bias", D, v25, &g->ln_b) < 0) return -1;
    mp_qwen2vl_linear f1, f2;
    if (linear(L, "mm.0", D * mm, D * mm, &f1) < 0 || linear(L, "mm.2", D * mm, c->out_dim, &f2) < 0) return -1;
    g->fc1 = f1.w, g->fc1_b = f1.b, g->fc2 = f2.w, g->fc2_b = f2.b;
    return 0;
}

/* ---------------------------------------------------------------- configs */

static int hf_act(const char *act, mp_gelu_kind *out) {
    if (!strcmp(act, "quick_gelu")) *out = MP_GELU_QUICK;
    else if (!strcmp(act, "gelu")) *out = MP_GELU_ERF;
    else if (!strcmp(act, "gelu_pytorch_tanh") || !strcmp(act, "gelu_new")) *out = MP_GELU_TANH;
    else return -1;
    return 0;
}

/* the variant a model_type / projector_type names (0: neither) */
static int variant_named(const char *s, const char *v2, const char *v25) {
    return !strcmp(s, v2) ? MP_QWEN2VL_V2 : !strcmp(s, v25) ? MP_QWEN2VL_V25 : 0;
}

static int config_hf(const mp_hf_config *hc, mp_qwen2vl_vit_config *c, const char *path, mp_error *err) {
    const mp_json *v = &hc->vision;
    const char *mt = NULL, *act = NULL;
    int64_t x;
    double r;
    memset(c, 0, sizeof *c);
    if (mp_json_str_or(&hc->config, "model_type", "", &mt, err) < 0) return -1;
    if (!(c->variant = variant_named(mt, "qwen2_vl", "qwen2_5_vl")))
        return mp_errf(err, "%s: model_type \"%s\" is not Qwen2-VL or Qwen2.5-VL", path, mt);
    if (!mp_json_present(v) || v->root == hc->config.root)
        return mp_errf(err, "%s: config.json has no vision_config", path);
#define GETI(key, def, dst)                                                    \
    do {                                                                       \
        if (mp_json_int_or(v, key, def, &x, err) < 0) return -1;               \
        if (x < 0 || x > (1 << 24)) return mp_errf(err, "%s: vision_config.%s = %lld is out of range", path, key, (long long)x); \
        dst = (int)x;                                                          \
    } while (0)
    GETI("depth", 0, c->n_layer);
    GETI("num_heads", 0, c->n_head);
    GETI("patch_size", 14, c->patch_size);
    GETI("temporal_patch_size", 2, c->temporal_patch_size);
    GETI("spatial_merge_size", 2, c->merge_size);
    GETI("in_chans", 3, c->in_chans);
    if (mp_json_has(v, "in_channels")) GETI("in_channels", 3, c->in_chans);
    if (c->variant == MP_QWEN2VL_V2) {
        GETI("embed_dim", 0, c->dim);
        GETI("hidden_size", 0, c->out_dim);
        if (mp_json_f64_or(v, "mlp_ratio", 4.0, &r, err) < 0) return -1;
        if (!(r > 0 && r < 1024)) return mp_errf(err, "%s: vision_config.mlp_ratio %g is out of range", path, r);
        c->n_ff = (int)(c->dim * r);
        if (mp_json_str_or(v, "hidden_act", "quick_gelu", &act, err) < 0) return -1;
        if (hf_act(act, &c->act) < 0)
            return mp_errf(err, "%s: vision_config.hidden_act \"%s\" is not supported", path, act);
    } else {
        GETI("hidden_size", 0, c->dim);
        GETI("intermediate_size", 0, c->n_ff);
        GETI("out_hidden_size", 0, c->out_dim);
        GETI("window_size", 112, c->window_size);
        if (mp_json_str_or(v, "hidden_act", "silu", &act, err) < 0) return -1;
        if (strcmp(act, "silu") != 0)
            return mp_errf(err, "%s: vision_config.hidden_act \"%s\" is not supported (silu expected)", path, act);
        int64_t full[MP_QWEN2VL_MAX_LAYERS];
        int n = 0;
        if (mp_json_int_array_or(v, "fullatt_block_indexes", full, MP_QWEN2VL_MAX_LAYERS, &n, err) < 0) return -1;
        for (int i = 0; i < n; i++) {
            if (full[i] < 0 || full[i] >= MP_QWEN2VL_MAX_LAYERS)
                return mp_errf(err, "%s: fullatt_block_indexes has %lld", path, (long long)full[i]);
            c->full_attn[full[i]] = 1;
        }
        double tps;
        if (mp_json_f64_or(v, "tokens_per_second", 2.0, &tps, err) < 0) return -1;
        c->tokens_per_second = (float)tps;
    }
#undef GETI
    c->eps = 1e-6f; /* hard-coded in the transformers modules */
    return mp_qwen2vl_vit_config_check(c, path, err);
}

static int gguf_int(const mp_gguf *g, const char *key, uint32_t def, int required, int *out, mp_error *err) {
    uint32_t v = def;
    if (required ? mp_gguf_get_u32(g, key, &v, err) < 0 : mp_gguf_get_u32_or(g, key, def, &v, err) < 0) return -1;
    if (v > (1u << 24)) return mp_errf(err, "%s: %s = %u is out of range", mp_gguf_path(g), key, v);
    *out = (int)v;
    return 0;
}

static int config_gguf(const mp_gguf *g, const mp_weights *w, mp_qwen2vl_vit_config *c, mp_qwen2vl_params *proc,
                       mp_error *err) {
    const char *path = mp_gguf_path(g), *pt = NULL;
    memset(c, 0, sizeof *c);
    if (mp_gguf_get_str_or(g, "clip.vision.projector_type", "", &pt, err) < 0) return -1;
    if (!*pt && mp_gguf_get_str_or(g, "clip.projector_type", "", &pt, err) < 0) return -1;
    if (!(c->variant = variant_named(pt, "qwen2vl_merger", "qwen2.5vl_merger")))
        return mp_errf(err, "%s: clip.projector_type \"%s\" is not a Qwen2-VL / Qwen2.5-VL mmproj", path, pt);
    if (gguf_int(g, "clip.vision.embedding_length", 0, 1, &c->dim, err) < 0 ||
        gguf_int(g, "clip.vision.block_count", 0, 1, &c->n_layer, err) < 0 ||
        gguf_int(g, "clip.vision.attention.head_count", 0, 1, &c->n_head, err) < 0 ||
        gguf_int(g, "clip.vision.patch_size", 14, 0, &c->patch_size, err) < 0 ||
        gguf_int(g, "clip.vision.spatial_merge_size", 2, 0, &c->merge_size, err) < 0 ||
        mp_gguf_get_f32_or(g, "clip.vision.attention.layer_norm_epsilon", 1e-6f, &c->eps, err) < 0)
        return -1;
    c->temporal_patch_size = mp_weights_get(w, "v.patch_embd.weight.1") ? 2 : 1;
    c->in_chans = 3;
    /* widths from the tensors: llama.cpp writes the text model's width as Qwen2-VL's feed_forward_length */
    const mp_tensor *up = mp_weights_get(w, "v.blk.0.ffn_up.weight"), *mm2 = mp_weights_get(w, "mm.2.weight");
    if (!up || !mm2) return mp_errf(err, "%s: missing tensor %s", path, up ? "mm.2.weight" : "v.blk.0.ffn_up.weight");
    c->n_ff = (int)up->ne[1];
    c->out_dim = (int)mm2->ne[1];
    int use_gelu = 0;
    if (mp_gguf_get_bool_or(g, "clip.use_gelu", 0, &use_gelu, err) < 0) return -1;
    c->act = use_gelu ? MP_GELU_ERF : MP_GELU_QUICK;
    if (c->variant == MP_QWEN2VL_V25) {
        int n_wa = 0;
        if (gguf_int(g, "clip.vision.window_size", 112, 0, &c->window_size, err) < 0 ||
            gguf_int(g, "clip.vision.n_wa_pattern", 0, 0, &n_wa, err) < 0)
            return -1;
        if (mp_gguf_has(g, "clip.vision.wa_layer_indexes")) {
            int32_t idx[MP_QWEN2VL_MAX_LAYERS];
            int64_t n = mp_gguf_arr_len(g, "clip.vision.wa_layer_indexes", err);
            if (n < 0) return -1;
            if (n > MP_QWEN2VL_MAX_LAYERS) return mp_errf(err, "%s: too many wa_layer_indexes", path);
            if (mp_gguf_get_arr_i32(g, "clip.vision.wa_layer_indexes", idx, (uint64_t)n, err) < 0) return -1;
            for (int64_t i = 0; i < n; i++) {
                if (idx[i] < 0 || idx[i] >= MP_QWEN2VL_MAX_LAYERS)
                    return mp_errf(err, "%s: wa_layer_indexes has %d", path, idx[i]);
                c->full_attn[idx[i]] = 1;
            }
        } else if (n_wa > 0) {
            for (int l = 0; l < c->n_layer && l < MP_QWEN2VL_MAX_LAYERS; l++) c->full_attn[l] = (l + 1) % n_wa == 0;
        } else {
            return mp_errf(err, "%s: a qwen2.5vl_merger mmproj without clip.vision.n_wa_pattern", path);
        }
    }
    *proc = mp_qwen2vl_default_params();
    proc->patch_size = c->patch_size;
    proc->merge_size = c->merge_size;
    proc->temporal_patch_size = c->temporal_patch_size;
    if (mp_gguf_has(g, "clip.vision.image_mean") &&
        (mp_gguf_get_arr_f32(g, "clip.vision.image_mean", proc->norm.mean, 3, err) < 0 ||
         mp_gguf_get_arr_f32(g, "clip.vision.image_std", proc->norm.std, 3, err) < 0))
        return -1;
    uint32_t px;
    if (mp_gguf_has(g, "clip.vision.image_min_pixels")) {
        if (mp_gguf_get_u32(g, "clip.vision.image_min_pixels", &px, err) < 0) return -1;
        proc->min_pixels = px;
    }
    if (mp_gguf_has(g, "clip.vision.image_max_pixels")) {
        if (mp_gguf_get_u32(g, "clip.vision.image_max_pixels", &px, err) < 0) return -1;
        proc->max_pixels = px;
    }
    return mp_qwen2vl_vit_config_check(c, path, err);
}

/* ---------------------------------------------------------------- entry points */

static int is_dir(const char *p) {
    struct stat s;
    return stat(p, &s) == 0 && S_ISDIR(s.st_mode);
}

int mp_qwen2vl_vit_load(mp_qwen2vl_vit *m, const char *path, mp_exec *ex, mp_error *err) {
    memset(m, 0, sizeof *m);
    qv_owner *own = calloc(1, sizeof *own);
    if (!own) return mp_errf(err, "%s: out of memory", path);
    qv_load L = {path, own, 0, "visual.", 0, ex, err};
    mp_hf_config hc;
    memset(&hc, 0, sizeof hc);
    int rc = -1;
    if (mp_weights_open(&own->w, path, err) < 0) goto done;
    const mp_gguf *g = mp_weights_gguf(own->w);
    if (g) {
        L.gguf = 1;
        if (config_gguf(g, own->w, &m->cfg, &m->proc, err) < 0) goto done;
    } else {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s", path);
        if (!is_dir(dir)) { /* a safetensors file or index: its folder */
            char *s = strrchr(dir, '/');
            if (s) *s = 0;
            else snprintf(dir, sizeof dir, ".");
        }
        if (mp_hf_config_load(&hc, dir, err) < 0 || config_hf(&hc, &m->cfg, dir, err) < 0) goto done;
        m->proc = mp_qwen2vl_default_params();
        if (mp_json_present(&hc.preprocessor)) {
            char pp[4200];
            snprintf(pp, sizeof pp, "%s/preprocessor_config.json", dir);
            if (mp_qwen2vl_params_load(pp, &m->proc, err) < 0) goto done;
        }
        if (!mp_weights_getf(own->w, "visual.patch_embed.proj.weight")) L.prefix = "model.visual.";
    }
    L.variant = m->cfg.variant;
    if (m->proc.patch_size != m->cfg.patch_size || m->proc.merge_size != m->cfg.merge_size ||
        m->proc.temporal_patch_size != m->cfg.temporal_patch_size) {
        mp_errf(err, "%s: the image processor's patch %d / merge %d / temporal %d differ from the model's %d / %d / %d",
                path, m->proc.patch_size, m->proc.merge_size, m->proc.temporal_patch_size, m->cfg.patch_size,
                m->cfg.merge_size, m->cfg.temporal_patch_size);
        goto done;
    }
    if (load_tensors(&L, m) < 0) goto done;
    m->backend = ex->backend;
    m->owner = own;
    m->owner_free = qv_owner_free;
    own = NULL;
    rc = 0;
done:
    mp_hf_config_free(&hc);
    if (own) {
        qv_owner_free(own, ex);
        free(m->layers);
        memset(m, 0, sizeof *m);
    }
    return rc;
}

void mp_qwen2vl_vit_free(mp_qwen2vl_vit *m, mp_exec *ex) {
    if (m->owner_free) m->owner_free(m->owner, ex);
    free(m->layers);
    memset(m, 0, sizeof *m);
}
