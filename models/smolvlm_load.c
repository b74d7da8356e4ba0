/* smolvlm_load.c — the Idefics3 / SmolVLM vision tower from an HF folder or a llama.cpp mmproj GGUF
 * (projector/idefics3.h). The text model of the same checkpoints loads through mp_llama_load (HF: the
 * model.text_model.* tensors and lm_head; GGUF: the separate text model file).
 *
 * Tensor names, GGUF (llama.cpp tools/mtmd clip.cpp, convert_hf_to_gguf.py SmolVLMModel) = HF:
 *   v.patch_embd.{weight,bias}       model.vision_model.embeddings.patch_embedding.*
 *   v.position_embd.weight           model.vision_model.embeddings.position_embedding.weight
 *   v.blk.N.ln1 / ln2                model.vision_model.encoder.layers.N.layer_norm1 / layer_norm2
 *   v.blk.N.attn_{q,k,v,out}         ... .self_attn.{q,k,v,out}_proj
 *   v.blk.N.ffn_up / ffn_down        ... .mlp.fc1 / mlp.fc2
 *   v.post_ln                        model.vision_model.post_layernorm
 *   mm.model.fc.weight               model.connector.modality_projection.proj.weight
 * Hyper-parameters: HF config.json vision_config + scale_factor + text_config.hidden_size, processor from
 * preprocessor_config.json / processor_config.json; GGUF clip.vision.* keys.
 */
#include "projector/idefics3.h"

#include "models/gguf.h"
#include "models/hfjson.h"
#include "models/mmap.h"
#include "models/weights.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- ownership */

typedef struct vowner {
    mp_weights *w;
    void **host, **dev;
    int n_host, n_dev, cap_host, cap_dev;
} vowner;

static void vowner_free(void *p, mp_exec *ex) {
    vowner *o = p;
    if (!o) return;
    for (int i = 0; i < o->n_host; i++) free(o->host[i]);
    for (int i = 0; i < o->n_dev; i++) mp_backend_free(ex, o->dev[i]);
    free(o->host);
    free(o->dev);
    mp_weights_free(o->w);
    free(o);
}

static int keep(void ***a, int *n, int *cap, void *p) {
    if (*n == *cap) {
        int c = *cap ? 2 * *cap : 64;
        void **na = realloc(*a, sizeof(void *) * (size_t)c);
        if (!na) return -1;
        *a = na, *cap = c;
    }
    (*a)[(*n)++] = p;
    return 0;
}

typedef struct vload {
    const char *path;
    vowner *own;
    int gguf; /* GGUF names, else HF names */
    mp_exec *ex;
    mp_error *err;
} vload;

/* ---------------------------------------------------------------- names */

/* GGUF name -> the tensor (HF names mapped) */
static const mp_tensor *find(vload *L, const char *name) {
    if (L->gguf) return mp_weights_get(L->own->w, name);
    static const char *const blk[][2] = {
        {"ln1", "layer_norm1"},          {"ln2", "layer_norm2"},          {"attn_q", "self_attn.q_proj"},
        {"attn_k", "self_attn.k_proj"},  {"attn_v", "self_attn.v_proj"},  {"attn_out", "self_attn.out_proj"},
        {"ffn_up", "mlp.fc1"},           {"ffn_down", "mlp.fc2"},
    };
    static const char *const top[][2] = {
        {"v.patch_embd.", "model.vision_model.embeddings.patch_embedding."},
        {"v.position_embd.", "model.vision_model.embeddings.position_embedding."},
        {"v.post_ln.", "model.vision_model.post_layernorm."},
        {"mm.model.fc.", "model.connector.modality_projection.proj."},
    };
    char hn[256], part[64];
    int layer, off = 0;
    if (sscanf(name, "v.blk.%d.%63[^.].%n", &layer, part, &off) == 2 && off > 0) {
        for (size_t i = 0; i < sizeof blk / sizeof blk[0]; i++)
            if (!strcmp(part, blk[i][0])) {
                snprintf(hn, sizeof hn, "model.vision_model.encoder.layers.%d.%s.%s", layer, blk[i][1], name + off);
                return mp_weights_get(L->own->w, hn);
            }
        return NULL;
    }
    for (size_t i = 0; i < sizeof top / sizeof top[0]; i++) {
        size_t n = strlen(top[i][0]);
        if (!strncmp(name, top[i][0], n)) {
            snprintf(hn, sizeof hn, "%s%s", top[i][1], name + n);
            return mp_weights_get(L->own->w, hn);
        }
    }
    return NULL;
}

/* the tensor `name` with shape ne (ggml order, nd dims; trailing 1s ignored) */
static const mp_tensor *need(vload *L, const char *name, int nd, const int64_t *ne) {
    const mp_tensor *t = find(L, name);
    if (!t) {
        mp_errf(L->err, "%s: missing tensor %s", L->path, name);
        return NULL;
    }
    for (int i = 0; i < MP_MAX_DIMS; i++) {
        int64_t want = i < nd ? ne[i] : 1, have = i < t->ndim ? t->ne[i] : 1;
        if (want != have) {
            mp_errf(L->err, "%s: tensor %s has shape [%lld, %lld, %lld, %lld], expected [%lld, %lld, %lld, %lld]", L->path,
                    name, (long long)t->ne[0], (long long)(t->ndim > 1 ? t->ne[1] : 1),
                    (long long)(t->ndim > 2 ? t->ne[2] : 1), (long long)(t->ndim > 3 ? t->ne[3] : 1), (long long)ne[0],
                    (long long)(nd > 1 ? ne[1] : 1), (long long)(nd > 2 ? ne[2] : 1), (long long)(nd > 3 ? ne[3] : 1));
            return NULL;
        }
    }
    if (!mp_dtype_info(t->dtype)) {
        mp_errf(L->err, "%s: tensor %s has an unknown dtype %d", L->path, name, (int)t->dtype);
        return NULL;
    }
    return t;
}

static void *to_backend(vload *L, const void *src, size_t bytes) {
    void *d = mp_backend_alloc(L->ex, bytes);
    if (!d || keep(&L->own->dev, &L->own->n_dev, &L->own->cap_dev, d) < 0) {
        if (d) mp_backend_free(L->ex, d);
        mp_errf(L->err, "%s: out of backend memory (%.1f MiB)", L->path, (double)bytes / 1048576.0);
        return NULL;
    }
    return mp_backend_upload(L->ex, d, src, bytes, L->err) < 0 ? NULL : d;
}

/* a weight used as is by matmul/conv: a view on the CPU, a copy on other backends */
static int weight(vload *L, const char *name, int nd, const int64_t *ne, mp_tensor *dst) {
    const mp_tensor *t = need(L, name, nd, ne);
    if (!t) return -1;
    if (mp_dtype_row_bytes(t->dtype, ne[0]) < 0)
        return mp_errf(L->err, "%s: tensor %s: %lld is not a multiple of the %s block size", L->path, name,
                       (long long)ne[0], mp_dtype_name(t->dtype));
    *dst = *t;
    if (L->ex->backend != MP_BACKEND_CPU) {
        void *d = to_backend(L, t->data, mp_tensor_nbytes(t));
        if (!d) return -1;
        dst->data = d;
        dst->backend = L->ex->backend;
    }
    return 0;
}

/* n F32 values (any stored float dtype) in backend memory: norms, biases, the position table */
static int floats(vload *L, const char *name, int nd, const int64_t *ne, const float **out) {
    const mp_tensor *t = need(L, name, nd, ne);
    if (!t) return -1;
    int64_t n = 1;
    for (int i = 0; i < nd; i++) n *= ne[i];
    const float *host = t->data;
    if (t->dtype != MP_F32) {
        const mp_dtype_traits *tr = mp_dtype_info(t->dtype);
        if (tr->is_quant || mp_dtype_row_bytes(t->dtype, ne[0]) < 0 || (t->dtype >= MP_I8 && t->dtype <= MP_F64))
            return mp_errf(L->err, "%s: tensor %s: dtype %s is not supported here", L->path, name, mp_dtype_name(t->dtype));
        float *c = malloc(sizeof(float) * (size_t)n);
        if (!c || keep(&L->own->host, &L->own->n_host, &L->own->cap_host, c) < 0) {
            free(c);
            return mp_errf(L->err, "%s: out of memory", L->path);
        }
        mp_dequantize_row(t->dtype, t->data, c, n);
        host = c;
    }
    if (L->ex->backend == MP_BACKEND_CPU) {
        *out = host;
        return 0;
    }
    *out = to_backend(L, host, sizeof(float) * (size_t)n);
    return *out ? 0 : -1;
}

static int vec(vload *L, const char *name, int64_t n, const float **out) {
    int64_t ne[1] = {n};
    return floats(L, name, 1, ne, out);
}

static int lin(vload *L, const char *name, int64_t in, int64_t out, mp_siglip_linear *l) {
    char nm[160];
    int64_t ne[2] = {in, out};
    snprintf(nm, sizeof nm, "%s.weight", name);
    if (weight(L, nm, 2, ne, &l->w) < 0) return -1;
    snprintf(nm, sizeof nm, "%s.bias", name);
    return vec(L, nm, out, &l->b);
}

static int load_tensors(mp_idefics3_vision *v, vload *L) {
    const mp_siglip_config *c = &v->enc.cfg;
    const int64_t D = c->n_embd, F = c->n_ff, P = c->patch_size, side = c->image_size / c->patch_size;
    mp_siglip *e = &v->enc;
    int64_t pne[4] = {P, P, c->n_channels, D}, posne[2] = {D, side * side};
    if (weight(L, "v.patch_embd.weight", 4, pne, &e->patch_w) < 0 || vec(L, "v.patch_embd.bias", D, &e->patch_b) < 0 ||
        floats(L, "v.position_embd.weight", 2, posne, &e->pos) < 0 || vec(L, "v.post_ln.weight", D, &e->post_w) < 0 ||
        vec(L, "v.post_ln.bias", D, &e->post_b) < 0)
        return -1;
    if (e->patch_w.dtype != MP_F32 && e->patch_w.dtype != MP_F16 && e->patch_w.dtype != MP_BF16)
        return mp_errf(L->err, "%s: v.patch_embd.weight must be F32, F16 or BF16 (is %s)", L->path,
                       mp_dtype_name(e->patch_w.dtype));
    e->layers = calloc((size_t)c->n_layer, sizeof *e->layers);
    if (!e->layers) return mp_errf(L->err, "%s: out of memory", L->path);
    char nm[96];
#define NM(s) (snprintf(nm, sizeof nm, "v.blk.%d.%s", l, s), nm)
    for (int l = 0; l < c->n_layer; l++) {
        mp_siglip_layer *y = &e->layers[l];
        if (vec(L, NM("ln1.weight"), D, &y->ln1_w) < 0 || vec(L, NM("ln1.bias"), D, &y->ln1_b) < 0 ||
            lin(L, NM("attn_q"), D, D, &y->q) < 0 || lin(L, NM("attn_k"), D, D, &y->k) < 0 ||
            lin(L, NM("attn_v"), D, D, &y->v) < 0 || lin(L, NM("attn_out"), D, D, &y->o) < 0 ||
            vec(L, NM("ln2.weight"), D, &y->ln2_w) < 0 || vec(L, NM("ln2.bias"), D, &y->ln2_b) < 0 ||
            lin(L, NM("ffn_up"), D, F, &y->fc1) < 0 || lin(L, NM("ffn_down"), F, D, &y->fc2) < 0)
            return -1;
    }
#undef NM
    const int64_t s = v->scale_factor;
    int64_t ne[2] = {D * s * s, v->n_embd_text};
    return weight(L, "mm.model.fc.weight", 2, ne, &v->proj);
}

/* ---------------------------------------------------------------- hyper-parameters */

static int act_from_name(const char *a, mp_gelu_kind *k) {
    if (!strcmp(a, "gelu_pytorch_tanh") || !strcmp(a, "gelu_new") || !strcmp(a, "gelu_fast")) *k = MP_GELU_TANH;
    else if (!strcmp(a, "gelu")) *k = MP_GELU_ERF;
    else if (!strcmp(a, "quick_gelu")) *k = MP_GELU_QUICK;
    else return -1;
    return 0;
}

static int config_hf(mp_idefics3_vision *v, const char *dir, mp_error *err) {
    mp_hf_config hc;
    if (mp_hf_config_load(&hc, dir, err) < 0) return -1;
    mp_siglip_config *c = &v->enc.cfg;
    const mp_json *j = &hc.vision;
    int64_t x[6] = {0}, sf = 2, nt = 0, itok = -1, seq = 0;
    double eps = 1e-6;
    const char *act = NULL;
    static const char *const keys[] = {"hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                                       "image_size", "patch_size"};
    int rc = 0;
    for (int i = 0; rc == 0 && i < 6; i++) rc = mp_json_get_int(j, keys[i], &x[i], err);
    if (rc == 0 && (mp_json_f64_or(j, "layer_norm_eps", 1e-6, &eps, err) < 0 ||
                    mp_json_str_or(j, "hidden_act", "gelu_pytorch_tanh", &act, err) < 0 ||
                    mp_json_int_or(&hc.config, "scale_factor", 2, &sf, err) < 0 ||
                    mp_json_get_int(&hc.text, "hidden_size", &nt, err) < 0 ||
                    mp_json_int_or(&hc.config, "image_token_id", -1, &itok, err) < 0 ||
                    mp_json_int_or(&hc.processor, "image_seq_len", 0, &seq, err) < 0))
        rc = -1;
    for (int i = 0; rc == 0 && i < 6; i++)
        if (x[i] <= 0 || x[i] > (1 << 20)) rc = mp_errf(err, "%s/config.json: vision_config.%s = %lld is out of range", dir, keys[i], (long long)x[i]);
    if (rc == 0 && (sf <= 0 || sf > 64 || nt <= 0 || nt > (1 << 20)))
        rc = mp_errf(err, "%s/config.json: bad scale_factor %lld or text hidden_size %lld", dir, (long long)sf, (long long)nt);
    if (rc == 0 && act_from_name(act, &c->act) < 0)
        rc = mp_errf(err, "%s/config.json: vision_config.hidden_act '%s' is not supported", dir, act);
    if (rc == 0) {
        c->n_embd = (int)x[0], c->n_ff = (int)x[1], c->n_layer = (int)x[2], c->n_head = (int)x[3];
        c->image_size = (int)x[4], c->patch_size = (int)x[5];
        c->eps = (float)eps;
        v->scale_factor = (int)sf;
        v->n_embd_text = (int)nt;
        v->image_token_id = itok >= 0 && itok < INT32_MAX ? (int32_t)itok : -1;
        v->image_seq_len = (int)seq;
        if (mp_json_present(&hc.preprocessor)) {
            char pp[4200];
            snprintf(pp, sizeof pp, "%s/preprocessor_config.json", dir);
            rc = mp_idefics3_params_load(pp, &v->proc, err);
        } else { /* no processor config: SmolVLM's, with tiles of the encoder's image size */
            v->proc = mp_idefics3_default_params();
            v->proc.tile = c->image_size;
            v->proc.longest_edge = 4 * c->image_size;
        }
    }
    mp_hf_config_free(&hc);
    return rc;
}

static int config_gguf(mp_idefics3_vision *v, const mp_gguf *g, const char *path, mp_error *err) {
    const char *pt = NULL;
    if (mp_gguf_get_str_or(g, "clip.projector_type", NULL, &pt, err) < 0) return -1;
    if (!pt && mp_gguf_get_str_or(g, "clip.vision.projector_type", NULL, &pt, err) < 0) return -1;
    if (!pt) return mp_errf(err, "%s: not an mmproj file (no clip.projector_type)", path);
    if (strcmp(pt, "idefics3") != 0)
        return mp_errf(err, "%s: projector type '%s' is not supported (idefics3 is)", path, pt);
    mp_siglip_config *c = &v->enc.cfg;
    uint32_t u[8] = {0};
    static const char *const keys[] = {"clip.vision.embedding_length", "clip.vision.feed_forward_length",
                                       "clip.vision.block_count",      "clip.vision.attention.head_count",
                                       "clip.vision.image_size",       "clip.vision.patch_size",
                                       "clip.vision.projection_dim"};
    for (int i = 0; i < 7; i++) {
        if (mp_gguf_get_u32(g, keys[i], &u[i], err) < 0) return -1;
        if (u[i] == 0 || u[i] > (1u << 20)) return mp_errf(err, "%s: %s = %u is out of range", path, keys[i], u[i]);
    }
    uint32_t sf = 2, pre = 0;
    float eps = 1e-6f;
    int gelu = 1;
    if (mp_gguf_get_u32_or(g, "clip.vision.projector.scale_factor", 2, &sf, err) < 0 ||
        mp_gguf_get_f32_or(g, "clip.vision.attention.layer_norm_epsilon", 1e-6f, &eps, err) < 0 ||
        mp_gguf_get_u32_or(g, "clip.vision.preproc_image_size", 0, &pre, err) < 0 ||
        mp_gguf_get_bool_or(g, "clip.use_gelu", 1, &gelu, err) < 0)
        return -1;
    if (sf == 0 || sf > 64) return mp_errf(err, "%s: clip.vision.projector.scale_factor = %u is out of range", path, sf);
    c->n_embd = (int)u[0], c->n_ff = (int)u[1], c->n_layer = (int)u[2], c->n_head = (int)u[3];
    c->image_size = (int)u[4], c->patch_size = (int)u[5];
    c->eps = eps;
    c->act = MP_GELU_TANH; /* clip.cpp's ggml_gelu is the tanh approximation (SigLIP's gelu_pytorch_tanh) */
    v->n_embd_text = (int)u[6];
    v->scale_factor = (int)sf;
    v->image_token_id = -1;
    /* the processor: SmolVLM's, with the tile and longest edge the file gives */
    v->proc = mp_idefics3_default_params();
    v->proc.tile = c->image_size;
    v->proc.longest_edge = pre > 0 && pre < (1u << 16) ? (int)pre : 4 * c->image_size;
    if (mp_gguf_has(g, "clip.vision.image_mean")) {
        if (mp_gguf_arr_len(g, "clip.vision.image_mean", err) != 3 || mp_gguf_arr_len(g, "clip.vision.image_std", err) != 3)
            return mp_errf(err, "%s: clip.vision.image_mean / image_std must have 3 values", path);
        if (mp_gguf_get_arr_f32(g, "clip.vision.image_mean", v->proc.norm.mean, 3, err) < 0 ||
            mp_gguf_get_arr_f32(g, "clip.vision.image_std", v->proc.norm.std, 3, err) < 0)
            return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- entry */

void mp_idefics3_vision_free(mp_idefics3_vision *v, mp_exec *ex) {
    if (v->owner_free) v->owner_free(v->owner, ex);
    free(v->enc.layers);
    memset(v, 0, sizeof *v);
}

int mp_idefics3_vision_load(mp_idefics3_vision *v, const char *path, mp_exec *ex, mp_error *err) {
    memset(v, 0, sizeof *v);
    vowner *own = calloc(1, sizeof *own);
    if (!own) return mp_errf(err, "%s: out of memory", path);
    v->owner = own;
    v->owner_free = vowner_free;
    v->backend = ex->backend;
    int rc = mp_weights_open(&own->w, path, err);
    vload L = {path, own, 0, ex, err};
    if (rc == 0) {
        if (mp_weights_format_of(own->w) == MP_WEIGHTS_GGUF) {
            L.gguf = 1;
            rc = config_gguf(v, mp_weights_gguf(own->w), path, err);
        } else if (mp_weights_format_of(own->w) == MP_WEIGHTS_SAFETENSORS) {
            char dir[4096];
            snprintf(dir, sizeof dir, "%s", path);
            if (!mp_is_dir(dir)) {
                char *sl = strrchr(dir, '/');
                if (sl) *sl = 0;
                else snprintf(dir, sizeof dir, ".");
            }
            rc = config_hf(v, dir, err);
        } else {
            rc = mp_errf(err, "%s: a %s file has no vision model", path, mp_weights_format_name(mp_weights_format_of(own->w)));
        }
    }
    if (rc == 0) rc = mp_siglip_config_check(&v->enc.cfg, path, err);
    if (rc == 0) {
        const int side = v->proc.tile / v->enc.cfg.patch_size, s = v->scale_factor;
        if (v->proc.tile % v->enc.cfg.patch_size || side % s)
            rc = mp_errf(err, "%s: tiles of %d pixels do not split into %d-pixel patches in groups of %d", path,
                         v->proc.tile, v->enc.cfg.patch_size, s);
        else if (v->proc.tile > v->enc.cfg.image_size)
            rc = mp_errf(err, "%s: tiles of %d pixels are larger than the encoder's %d", path, v->proc.tile,
                         v->enc.cfg.image_size);
        else if (v->image_seq_len > 0 && v->image_seq_len != side * side / (s * s))
            rc = mp_errf(err, "%s: image_seq_len %d does not match %d tokens per %d-pixel tile", path, v->image_seq_len,
                         side * side / (s * s), v->proc.tile);
        else
            v->image_seq_len = side * side / (s * s);
    }
    if (rc == 0) rc = load_tensors(v, &L);
    if (rc < 0) mp_idefics3_vision_free(v, ex);
    return rc;
}
