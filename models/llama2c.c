/* llama2c.c — llama2.c checkpoint reader (v0 legacy and v1 "ak42"), f32 views with GGUF names. */
#include "models/llama2c.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "models/mmap.h"

static int32_t rd_i32(const uint8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* Adds a*b (*c) to *acc with overflow checks; 0 on overflow. */
static int acc3(uint64_t *acc, uint64_t a, uint64_t b, uint64_t c) {
    uint64_t x;
    if (__builtin_mul_overflow(a, b, &x) || __builtin_mul_overflow(x, c, &x) || __builtin_add_overflow(*acc, x, acc))
        return 0;
    return 1;
}

/* Header in h[0..hlen) of a file of file_size bytes. */
static int parse_header(const uint8_t *h, size_t hlen, uint64_t file_size, const char *name, mp_llama2c_config *c,
                        mp_error *err) {
    memset(c, 0, sizeof *c);
    if (hlen < 28) return mp_errf(err, "%s: too small for a llama2.c checkpoint (%zu bytes)", name, hlen);
    uint32_t magic;
    memcpy(&magic, h, 4);
    const uint8_t *p = h;
    if (magic == MP_LLAMA2C_MAGIC) {
        if (hlen < 256) return mp_errf(err, "%s: truncated llama2.c v1 header", name);
        int32_t v = rd_i32(h + 4);
        if (v == 2)
            return mp_errf(err, "%s: llama2.c int8 (version 2) checkpoints are not supported; export with --version 0 or 1", name);
        if (v != 1) return mp_errf(err, "%s: unknown llama2.c checkpoint version %d", name, v);
        c->version = 1;
        p = h + 8;
        c->shared_classifier = h[36] != 0;
        c->data_offset = 256;
    } else {
        c->version = 0;
        c->data_offset = 28;
    }
    c->dim = rd_i32(p);
    c->hidden_dim = rd_i32(p + 4);
    c->n_layers = rd_i32(p + 8);
    c->n_heads = rd_i32(p + 12);
    c->n_kv_heads = rd_i32(p + 16);
    c->vocab_size = rd_i32(p + 20);
    c->seq_len = rd_i32(p + 24);
    if (c->version == 0) {
        c->shared_classifier = c->vocab_size > 0;
        if (c->vocab_size < 0 && c->vocab_size != INT32_MIN) c->vocab_size = -c->vocab_size;
    }
    if (c->dim <= 0 || c->hidden_dim <= 0 || c->n_layers <= 0 || c->n_heads <= 0 || c->n_kv_heads <= 0 ||
        c->vocab_size <= 0 || c->seq_len <= 0)
        return mp_errf(err, "%s: not a llama2.c checkpoint: header %d/%d/%d/%d/%d/%d/%d has non-positive sizes", name,
                       c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads, c->vocab_size, c->seq_len);
    if (c->dim % c->n_heads || c->n_heads % c->n_kv_heads || (c->dim / c->n_heads) % 2)
        return mp_errf(err, "%s: llama2.c header: dim %d, %d heads, %d kv heads are inconsistent", name, c->dim,
                       c->n_heads, c->n_kv_heads);
    c->head_size = c->dim / c->n_heads;
    c->kv_dim = c->head_size * c->n_kv_heads;
    c->rms_norm_eps = 1e-5f;
    c->rope_theta = 10000.0f;
    uint64_t L = (uint64_t)c->n_layers, D = (uint64_t)c->dim, H = (uint64_t)c->hidden_dim, KV = (uint64_t)c->kv_dim;
    uint64_t V = (uint64_t)c->vocab_size, n = 0;
    int ok = acc3(&n, V, D, 1) && acc3(&n, L, D, 2) && acc3(&n, L, D, D) && acc3(&n, L, KV, 2 * D) &&
             acc3(&n, L, D, D) && acc3(&n, L, D, 3 * H) && acc3(&n, D, 1, 1);
    if (ok && c->version == 0) ok = acc3(&n, (uint64_t)c->seq_len, (uint64_t)c->head_size, 1); /* RoPE tables */
    if (ok && !c->shared_classifier) ok = acc3(&n, V, D, 1);
    uint64_t bytes;
    if (!ok || __builtin_mul_overflow(n, 4, &bytes) || __builtin_add_overflow(bytes, c->data_offset, &bytes))
        return mp_errf(err, "%s: llama2.c header sizes overflow", name);
    if (bytes != file_size)
        return mp_errf(err, "%s: llama2.c header %d/%d/%d/%d/%d/%d/%d (%s classifier) implies %" PRIu64
                       " bytes, but the file has %" PRIu64, name, c->dim, c->hidden_dim, c->n_layers, c->n_heads,
                       c->n_kv_heads, c->vocab_size, c->seq_len, c->shared_classifier ? "shared" : "separate", bytes,
                       file_size);
    c->file_size = (size_t)file_size;
    return 0;
}

int mp_llama2c_parse_config(const void *data, size_t size, const char *name, mp_llama2c_config *cfg, mp_error *err) {
    return parse_header(data, size, size, name ? name : "<memory>", cfg, err);
}

static int read_head(const char *path, uint8_t *h, size_t *hlen, uint64_t *size, mp_error *err) {
    return mp_read_head(path, h, 256, hlen, size, err);
}

int mp_llama2c_read_config(const char *path, mp_llama2c_config *cfg, mp_error *err) {
    uint8_t h[256];
    size_t hlen;
    uint64_t size;
    if (read_head(path, h, &hlen, &size, err)) return -1;
    return parse_header(h, hlen, size, path, cfg, err);
}

int mp_llama2c_sniff(const char *path) {
    uint8_t h[256];
    size_t hlen;
    uint64_t size;
    mp_llama2c_config c;
    if (read_head(path, h, &hlen, &size, NULL)) return 0;
    uint32_t magic = 0;
    if (hlen >= 4) memcpy(&magic, h, 4);
    if (magic == MP_LLAMA2C_MAGIC) return 1;
    return parse_header(h, hlen, size, path, &c, NULL) == 0;
}

typedef struct {
    mp_mmap map;
    mp_llama2c_config cfg;
} l2c_holder;

static void holder_free(void *p) {
    l2c_holder *h = p;
    mp_mmap_close(&h->map);
    free(h);
}

typedef struct {
    mp_weights *w;
    const float *p, *end;
    mp_error *err;
    int failed;
} cursor;

/* Adds n_layers (or one, when fmt has no %d) tensors of shape {ne0, ne1} at the cursor. */
static void take(cursor *c, const char *fmt, int n_layers, int64_t ne0, int64_t ne1) {
    int per_layer = strstr(fmt, "%d") != NULL;
    int n = per_layer ? n_layers : 1;
    for (int l = 0; l < n && !c->failed; l++) {
        char name[64];
        if (per_layer)
            snprintf(name, sizeof name, fmt, l);
        else
            snprintf(name, sizeof name, "%s", fmt);
        int64_t ne[2] = {ne0, ne1};
        int64_t count = ne0 * ne1;
        if (count > c->end - c->p) { /* cannot happen after the size check; stay safe */
            c->failed = 1;
            mp_errf(c->err, "%s: truncated at tensor %s", mp_weights_path(c->w), name);
            return;
        }
        mp_tensor t;
        mp_tensor_init(&t, MP_F32, ne1 > 1 ? 2 : 1, ne, (void *)c->p);
        if (mp_weights_add(c->w, name, &t, 0, c->err)) c->failed = 1;
        c->p += count;
    }
}

static void skip(cursor *c, int64_t n) { c->p += n; }

int mp_llama2c_open_weights(mp_weights **out, const char *path, mp_llama2c_config *cfg, mp_error *err) {
    *out = NULL;
    l2c_holder *h = calloc(1, sizeof *h);
    if (!h) return mp_errf(err, "%s: out of memory", path);
    if (mp_mmap_open(&h->map, path, err)) {
        free(h);
        return -1;
    }
    if (parse_header(h->map.data, h->map.size, h->map.size, path, &h->cfg, err)) {
        holder_free(h);
        return -1;
    }
    mp_weights *w = mp_weights_new(path, MP_WEIGHTS_LLAMA2C);
    if (!w || mp_weights_adopt(w, h, holder_free) || mp_weights_add_file(w, path) < 0) {
        if (w) mp_weights_free(w);
        holder_free(h);
        return mp_errf(err, "%s: out of memory", path);
    }
    mp_weights_set_llama2c(w, &h->cfg);
    const mp_llama2c_config *c = &h->cfg;
    cursor cur = {w, (const float *)(h->map.data + c->data_offset), (const float *)(h->map.data + h->map.size), err, 0};
    int L = c->n_layers;
    int64_t D = c->dim, H = c->hidden_dim, KV = c->kv_dim, V = c->vocab_size;
    if (c->version == 0) {
        take(&cur, "token_embd.weight", L, D, V);
        take(&cur, "blk.%d.attn_norm.weight", L, D, 1);
        take(&cur, "blk.%d.attn_q.weight", L, D, D);
        take(&cur, "blk.%d.attn_k.weight", L, D, KV);
        take(&cur, "blk.%d.attn_v.weight", L, D, KV);
        take(&cur, "blk.%d.attn_output.weight", L, D, D);
        take(&cur, "blk.%d.ffn_norm.weight", L, D, 1);
        take(&cur, "blk.%d.ffn_gate.weight", L, D, H);
        take(&cur, "blk.%d.ffn_down.weight", L, H, D);
        take(&cur, "blk.%d.ffn_up.weight", L, D, H);
        take(&cur, "output_norm.weight", L, D, 1);
        skip(&cur, (int64_t)c->seq_len * c->head_size); /* freq_cis_real + freq_cis_imag */
    } else {
        take(&cur, "blk.%d.attn_norm.weight", L, D, 1);
        take(&cur, "blk.%d.ffn_norm.weight", L, D, 1);
        take(&cur, "output_norm.weight", L, D, 1);
        take(&cur, "token_embd.weight", L, D, V);
        take(&cur, "blk.%d.attn_q.weight", L, D, D);
        take(&cur, "blk.%d.attn_k.weight", L, D, KV);
        take(&cur, "blk.%d.attn_v.weight", L, D, KV);
        take(&cur, "blk.%d.attn_output.weight", L, D, D);
        take(&cur, "blk.%d.ffn_gate.weight", L, D, H);
        take(&cur, "blk.%d.ffn_down.weight", L, H, D);
        take(&cur, "blk.%d.ffn_up.weight", L, D, H);
    }
    if (!c->shared_classifier) take(&cur, "output.weight", L, D, V);
    if (cur.failed) {
        mp_weights_free(w);
        return -1;
    }
    if (cfg) *cfg = *c;
    *out = w;
    return 0;
}
