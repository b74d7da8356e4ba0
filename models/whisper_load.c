/* whisper_load.c — map a whisper.cpp ggml .bin or an HF openai/whisper-* folder onto mp_whisper.
 *
 * Both formats are read through one lookup by whisper.cpp tensor names (encoder.blocks.0.attn.query.weight,
 * ...); HF names (model.encoder.layers.0.self_attn.q_proj.weight, ...) are derived from them. Matmul
 * weights stay views of the mapped file on the CPU (uploaded on other backends); vectors become F32.
 * The vocabulary comes from the ggml file's token strings or tokenizer.json (vocab.json), the special
 * tokens (<|endoftext|> .. <|30.00|>) are named from the ids whisper.cpp and openai derive from n_vocab.
 */
#include "encoders/whisper.h"

#include "kernels/ops.h"
#include "llm/tokenizer_int.h" /* GPT-2 byte <-> code point map, UTF-8 decoding */
#include "models/ggml_bin.h"
#include "models/hfjson.h"
#include "models/mmap.h"
#include "models/weights.h"
#include "preprocess/audio.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* openai/whisper tokenizer.py LANGUAGES, in token order */
static const char *const LANG_CODES[MP_WHISPER_N_LANG] = {
    "en", "zh", "de", "es", "ru", "ko", "fr", "ja", "pt", "tr", "pl", "ca", "nl", "ar", "sv", "it", "id", "hi", "fi", "vi",
    "he", "uk", "el", "ms", "cs", "ro", "da", "hu", "ta", "no", "th", "ur", "hr", "bg", "lt", "la", "mi", "ml", "cy", "sk",
    "te", "fa", "lv", "bn", "sr", "az", "sl", "kn", "et", "mk", "br", "eu", "is", "hy", "ne", "mn", "bs", "kk", "sq", "sw",
    "gl", "mr", "pa", "si", "km", "sn", "yo", "so", "af", "oc", "ka", "be", "tg", "sd", "gu", "am", "yi", "lo", "uz", "fo",
    "ht", "ps", "tk", "nn", "mt", "sa", "lb", "my", "bo", "tl", "mg", "as", "tt", "haw", "ln", "ha", "ba", "jw", "su", "yue"};

const char *mp_whisper_lang_code(int i) { return i >= 0 && i < MP_WHISPER_N_LANG ? LANG_CODES[i] : NULL; }

/* ---------------------------------------------------------------- ownership */

typedef struct wl_owner {
    mp_ggml_bin *bin;
    mp_weights *w;
    void **host, **dev;
    int n_host, cap_host, n_dev, cap_dev;
} wl_owner;

static void owner_free(void *p, mp_exec *ex) {
    wl_owner *o = p;
    if (!o) return;
    for (int i = 0; i < o->n_host; i++) free(o->host[i]);
    for (int i = 0; i < o->n_dev; i++) mp_backend_free(ex, o->dev[i]);
    free(o->host);
    free(o->dev);
    if (o->bin) {
        mp_ggml_bin_close(o->bin);
        free(o->bin);
    }
    if (o->w) mp_weights_free(o->w);
    free(o);
}

static int push(void ***arr, int *n, int *cap, void *p) {
    if (*n == *cap) {
        int nc = *cap ? *cap * 2 : 64;
        void **na = realloc(*arr, (size_t)nc * sizeof *na);
        if (!na) return -1;
        *arr = na;
        *cap = nc;
    }
    (*arr)[(*n)++] = p;
    return 0;
}

/* ---------------------------------------------------------------- tensor lookup */

typedef struct wl {
    const char *path;
    const mp_ggml_bin *bin; /* ggml */
    const mp_weights *w;    /* HF */
    const char *prefix;     /* HF: "model." or "" */
    wl_owner *own;
    mp_exec *ex;
    mp_error *err;
} wl;

/* whisper.cpp name -> HF name */
static void hf_name(const wl *L, const char *g, char *out, size_t cap) {
    static const char *const rep[][2] = {
        {"encoder.positional_embedding", "encoder.embed_positions.weight"},
        {"decoder.positional_embedding", "decoder.embed_positions.weight"},
        {"decoder.token_embedding.weight", "decoder.embed_tokens.weight"},
        {"encoder.ln_post.", "encoder.layer_norm."},
        {"decoder.ln.", "decoder.layer_norm."},
        {".blocks.", ".layers."},
        {".cross_attn_ln.", ".encoder_attn_layer_norm."},
        {".attn_ln.", ".self_attn_layer_norm."},
        {".mlp_ln.", ".final_layer_norm."},
        {".cross_attn.", ".encoder_attn."},
        {".attn.", ".self_attn."},
        {".query.", ".q_proj."},
        {".key.", ".k_proj."},
        {".value.", ".v_proj."},
        {".out.", ".out_proj."},
        {".mlp.0.", ".fc1."},
        {".mlp.2.", ".fc2."},
    };
    char a[256], b[256];
    snprintf(a, sizeof a, "%s", g);
    for (size_t i = 0; i < sizeof rep / sizeof rep[0]; i++) {
        char *p = strstr(a, rep[i][0]);
        if (!p) continue;
        snprintf(b, sizeof b, "%.*s%s%s", (int)(p - a), a, rep[i][1], p + strlen(rep[i][0]));
        snprintf(a, sizeof a, "%s", b);
    }
    snprintf(out, cap, "%s%s", L->prefix, a);
}

static const mp_tensor *find(const wl *L, const char *name) {
    if (L->bin) {
        const mp_ggml_bin_tensor *t = mp_ggml_bin_find(L->bin, name);
        return t ? &t->t : NULL;
    }
    char hn[320];
    hf_name(L, name, hn, sizeof hn);
    return mp_weights_get(L->w, hn);
}

/* t must have the dims {ne0, ne1, ne2} once dims of size 1 are dropped on both sides (so a whisper.cpp
 * conv bias [1, n] matches [n]). */
static int squeeze(const int64_t *ne, int nd, int64_t *out) {
    int k = 0;
    for (int i = 0; i < nd; i++)
        if (ne[i] != 1) out[k++] = ne[i];
    return k;
}

static const mp_tensor *need(wl *L, const char *name, int64_t ne0, int64_t ne1, int64_t ne2) {
    const mp_tensor *t = find(L, name);
    char hn[320];
    if (L->bin)
        snprintf(hn, sizeof hn, "%s", name);
    else
        hf_name(L, name, hn, sizeof hn);
    if (!t) {
        mp_errf(L->err, "%s: missing tensor %s", L->path, hn);
        return NULL;
    }
    const int64_t want[3] = {ne0, ne1, ne2};
    int64_t a[4], b[4];
    int na = squeeze(t->ne, t->ndim < 4 ? t->ndim : 4, a), nb = squeeze(want, 3, b), ok = na == nb;
    for (int i = 0; ok && i < na; i++) ok = a[i] == b[i];
    if (!ok) {
        mp_errf(L->err, "%s: tensor %s has shape [%lld, %lld, %lld, %lld], expected [%lld, %lld, %lld]", L->path, hn,
                (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2], (long long)t->ne[3], (long long)ne0,
                (long long)ne1, (long long)ne2);
        return NULL;
    }
    return t;
}

static void *to_backend(wl *L, const void *src, size_t bytes) {
    void *d = mp_backend_alloc(L->ex, bytes);
    if (!d || push(&L->own->dev, &L->own->n_dev, &L->own->cap_dev, d)) {
        if (d) mp_backend_free(L->ex, d);
        mp_errf(L->err, "%s: out of backend memory (%.1f MiB)", L->path, (double)bytes / 1048576.0);
        return NULL;
    }
    if (mp_backend_upload(L->ex, d, src, bytes, L->err)) return NULL;
    return d;
}

/* A weight used as is (matmul, conv, embedding): a view on the CPU, a copy elsewhere. */
static int weight(wl *L, const char *name, int64_t ne0, int64_t ne1, int64_t ne2, mp_tensor *dst) {
    const mp_tensor *t = need(L, name, ne0, ne1, ne2);
    if (!t) return -1;
    if (mp_dtype_row_bytes(t->dtype, ne0) < 0 || !mp_dtype_info(t->dtype))
        return mp_errf(L->err, "%s: tensor %s: %s cannot hold rows of %lld", L->path, name, mp_dtype_name(t->dtype),
                       (long long)ne0);
    *dst = *t;
    if (L->ex->backend != MP_BACKEND_CPU) {
        void *d = to_backend(L, t->data, mp_tensor_nbytes(t));
        if (!d) return -1;
        dst->data = d;
        dst->backend = L->ex->backend;
    }
    return 0;
}

/* [rows][n] values as F32 in backend memory (vectors: rows = 1; positional embeddings). */
static int f32(wl *L, const char *name, int64_t n, int64_t rows, const float **out) {
    const mp_tensor *t = need(L, name, n, rows, 1);
    if (!t) return -1;
    const int64_t total = n * rows;
    if (t->dtype == MP_F32 && L->ex->backend == MP_BACKEND_CPU) {
        *out = t->data;
        return 0;
    }
    float *h = malloc((size_t)total * sizeof(float));
    if (!h || push(&L->own->host, &L->own->n_host, &L->own->cap_host, h)) {
        free(h);
        return mp_errf(L->err, "%s: out of memory", L->path);
    }
    if (t->dtype == MP_F32)
        memcpy(h, t->data, (size_t)total * sizeof(float));
    else if (t->dtype == MP_F16 || t->dtype == MP_BF16)
        for (int64_t r = 0; r < rows; r++) mp_dequantize_row(t->dtype, (const uint8_t *)t->data + r * t->nb[1], h + r * n, n);
    else
        return mp_errf(L->err, "%s: tensor %s is %s, expected f32/f16/bf16", L->path, name, mp_dtype_name(t->dtype));
    if (L->ex->backend == MP_BACKEND_CPU) {
        *out = h;
        return 0;
    }
    *out = to_backend(L, h, (size_t)total * sizeof(float));
    return *out ? 0 : -1;
}

static int lin(wl *L, const char *base, int64_t in, int64_t out, int bias, mp_whisper_linear *l) {
    char n[200];
    snprintf(n, sizeof n, "%s.weight", base);
    if (weight(L, n, in, out, 1, &l->w)) return -1;
    l->b = NULL;
    if (!bias) return 0;
    snprintf(n, sizeof n, "%s.bias", base);
    return f32(L, n, out, 1, &l->b);
}

static int attn(wl *L, const char *p, int64_t d, mp_whisper_attn *a) {
    char n[160], ln[160];
    const char *which = strstr(p, "cross") ? "cross_attn" : "attn";
    const char *blk = p;
    char bp[128];
    snprintf(bp, sizeof bp, "%.*s", (int)(strrchr(blk, '.') - blk), blk); /* "decoder.blocks.3" */
    snprintf(ln, sizeof ln, "%s.%s_ln.weight", bp, which);
    if (f32(L, ln, d, 1, &a->ln_w)) return -1;
    snprintf(ln, sizeof ln, "%s.%s_ln.bias", bp, which);
    if (f32(L, ln, d, 1, &a->ln_b)) return -1;
    snprintf(n, sizeof n, "%s.query", p);
    if (lin(L, n, d, d, 1, &a->q)) return -1;
    snprintf(n, sizeof n, "%s.key", p);
    if (lin(L, n, d, d, 0, &a->k)) return -1;
    snprintf(n, sizeof n, "%s.value", p);
    if (lin(L, n, d, d, 1, &a->v)) return -1;
    snprintf(n, sizeof n, "%s.out", p);
    return lin(L, n, d, d, 1, &a->o);
}

static int block(wl *L, const char *side, int i, int64_t d, int64_t ff, int cross, mp_whisper_block *b) {
    char p[128], n[160];
    snprintf(p, sizeof p, "%s.blocks.%d.attn", side, i);
    if (attn(L, p, d, &b->attn)) return -1;
    if (cross) {
        snprintf(p, sizeof p, "%s.blocks.%d.cross_attn", side, i);
        if (attn(L, p, d, &b->cross)) return -1;
    }
    snprintf(n, sizeof n, "%s.blocks.%d.mlp_ln.weight", side, i);
    if (f32(L, n, d, 1, &b->mlp_ln_w)) return -1;
    snprintf(n, sizeof n, "%s.blocks.%d.mlp_ln.bias", side, i);
    if (f32(L, n, d, 1, &b->mlp_ln_b)) return -1;
    snprintf(n, sizeof n, "%s.blocks.%d.mlp.0", side, i);
    if (lin(L, n, d, ff, 1, &b->fc1)) return -1;
    snprintf(n, sizeof n, "%s.blocks.%d.mlp.2", side, i);
    return lin(L, n, ff, d, 1, &b->fc2);
}

static int load_tensors(mp_whisper *m, wl *L) {
    const mp_whisper_hparams *h = &m->hp;
    const int64_t D = h->n_audio_state;
    if (weight(L, "encoder.conv1.weight", 3, h->n_mels, D, &m->conv1_w) ||
        f32(L, "encoder.conv1.bias", D, 1, &m->conv1_b) || weight(L, "encoder.conv2.weight", 3, D, D, &m->conv2_w) ||
        f32(L, "encoder.conv2.bias", D, 1, &m->conv2_b) ||
        f32(L, "encoder.positional_embedding", D, h->n_audio_ctx, &m->enc_pos) ||
        f32(L, "encoder.ln_post.weight", D, 1, &m->ln_post_w) || f32(L, "encoder.ln_post.bias", D, 1, &m->ln_post_b))
        return -1;
    static const int conv_ok[] = {MP_F32, MP_F16, MP_BF16};
    for (int c = 0; c < 2; c++) {
        const mp_tensor *t = c ? &m->conv2_w : &m->conv1_w;
        int ok = 0;
        for (int i = 0; i < 3; i++) ok |= (int)t->dtype == conv_ok[i];
        if (!ok) return mp_errf(L->err, "%s: encoder.conv%d.weight is %s; convolutions need f32/f16/bf16", L->path, c + 1,
                                mp_dtype_name(t->dtype));
    }
    if (weight(L, "decoder.token_embedding.weight", D, h->n_vocab, 1, &m->tok_emb) ||
        weight(L, "decoder.positional_embedding", D, h->n_text_ctx, 1, &m->dec_pos_t) ||
        f32(L, "decoder.ln.weight", D, 1, &m->dec_ln_w) || f32(L, "decoder.ln.bias", D, 1, &m->dec_ln_b))
        return -1;
    m->enc = calloc((size_t)h->n_audio_layer, sizeof *m->enc);
    m->dec = calloc((size_t)h->n_text_layer, sizeof *m->dec);
    if (!m->enc || !m->dec) return mp_errf(L->err, "%s: out of memory", L->path);
    for (int i = 0; i < h->n_audio_layer; i++)
        if (block(L, "encoder", i, D, m->n_audio_ff, 0, &m->enc[i])) return -1;
    for (int i = 0; i < h->n_text_layer; i++)
        if (block(L, "decoder", i, D, m->n_text_ff, 1, &m->dec[i])) return -1;
    return 0;
}

/* ---------------------------------------------------------------- vocabulary */

static uint32_t vhash(const char *s, uint32_t n) {
    uint32_t h = 2166136261u;
    for (uint32_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

/* Token texts: tok(i, &len) gives the bytes of ordinary token i (i < n_text) or NULL for none. */
typedef const char *(*tok_fn)(void *ctx, int i, uint32_t *len);

static int vocab_build(mp_whisper *m, tok_fn tok, void *ctx, mp_error *err, const char *path) {
    mp_whisper_vocab *v = &m->vocab;
    const mp_whisper_specials *sp = &m->sp;
    const int n = m->hp.n_vocab;
    v->n = n;
    v->n_text = sp->eot;
    v->off = calloc((size_t)n + 1, sizeof *v->off);
    v->len = calloc((size_t)n, sizeof *v->len);
    size_t cap = 1 << 20, used = 0;
    v->text = malloc(cap);
    uint32_t hc = 1;
    while (hc < 2u * (uint32_t)v->n_text + 2) hc <<= 1;
    v->ht = malloc(sizeof *v->ht * hc);
    v->ht_mask = hc - 1;
    if (!v->off || !v->len || !v->text || !v->ht) return mp_errf(err, "%s: out of memory", path);
    for (uint32_t i = 0; i < hc; i++) v->ht[i] = -1;
    /* ids 0..255 are the 256 bytes in GPT-2's bytes_to_unicode order (printable ones first); whisper.cpp's
     * files store the 128 non-ASCII ones as U+FFFD, so they are taken from the order, not the file */
    uint8_t byte_of[256];
    int nb = 0, used_b[256] = {0};
    for (int b = 0; b < 256; b++)
        if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)) byte_of[nb++] = (uint8_t)b, used_b[b] = 1;
    for (int b = 0; b < 256; b++)
        if (!used_b[b]) byte_of[nb++] = (uint8_t)b;
    char buf[64];
    for (int i = 0; i < n; i++) {
        const char *s = NULL;
        uint32_t len = 0;
        if (i < 256 && i < v->n_text) {
            buf[0] = (char)byte_of[i];
            s = buf;
            len = 1;
        } else if (i < v->n_text) {
            s = tok(ctx, i, &len);
            if (!s) len = 0;
        } else {
            if (i == sp->eot) s = "<|endoftext|>";
            else if (i == sp->sot) s = "<|startoftranscript|>";
            else if (i > sp->sot && i <= sp->sot + sp->num_languages && i - sp->sot - 1 < MP_WHISPER_N_LANG)
                snprintf(buf, sizeof buf, "<|%s|>", LANG_CODES[i - sp->sot - 1]), s = buf;
            else if (i == sp->translate) s = "<|translate|>";
            else if (i == sp->transcribe) s = "<|transcribe|>";
            else if (i == sp->solm) s = "<|startoflm|>";
            else if (i == sp->prev) s = "<|startofprev|>";
            else if (i == sp->nosp) s = "<|nospeech|>";
            else if (i == sp->no_timestamps) s = "<|notimestamps|>";
            else if (i >= sp->timestamp_begin)
                snprintf(buf, sizeof buf, "<|%.2f|>", (i - sp->timestamp_begin) * 0.02), s = buf;
            else
                snprintf(buf, sizeof buf, "<|extra_%d|>", i), s = buf;
            len = (uint32_t)strlen(s);
        }
        if (used + len > cap) {
            while (used + len > cap) cap *= 2;
            char *nt = realloc(v->text, cap);
            if (!nt) return mp_errf(err, "%s: out of memory", path);
            v->text = nt;
        }
        if (len) memcpy(v->text + used, s, len);
        v->off[i] = (uint32_t)used;
        v->len[i] = len;
        used += len;
        if (i < v->n_text && len) {
            uint32_t h = vhash(v->text + v->off[i], len) & v->ht_mask;
            while (v->ht[h] >= 0) {
                int j = v->ht[h];
                if (v->len[j] == len && !memcmp(v->text + v->off[j], v->text + v->off[i], len)) break;
                h = (h + 1) & v->ht_mask;
            }
            if (v->ht[h] < 0) v->ht[h] = i; /* the first id with these bytes wins */
        }
    }
    v->off[n] = (uint32_t)used;
    return 0;
}

int32_t mp_whisper_vocab_find(const mp_whisper_vocab *v, const char *s, uint32_t len) {
    if (!len || !v->ht) return -1;
    uint32_t h = vhash(s, len) & v->ht_mask;
    while (v->ht[h] >= 0) {
        int j = v->ht[h];
        if (v->len[j] == len && !memcmp(v->text + v->off[j], s, len)) return j;
        h = (h + 1) & v->ht_mask;
    }
    return -1;
}

static const char *bin_tok(void *ctx, int i, uint32_t *len) { return mp_ggml_bin_token(ctx, i, len); }

/* HF byte-level strings decoded to raw bytes, by id */
typedef struct hf_vocab {
    char **s;
    uint32_t *len;
    int n;
} hf_vocab;

static const char *hf_tok(void *ctx, int i, uint32_t *len) {
    hf_vocab *h = ctx;
    if (i >= h->n || !h->s[i]) return NULL;
    *len = h->len[i];
    return h->s[i];
}

static int hf_vocab_put(hf_vocab *h, const char *str, int id) {
    if (id < 0 || id >= h->n || h->s[id]) return 0;
    size_t n = strlen(str);
    char *b = malloc(n + 1);
    if (!b) return -1;
    uint32_t k = 0;
    for (size_t i = 0; i < n;) {
        int32_t cp;
        int l = tok_utf8_decode((const unsigned char *)str + i, n - i, &cp);
        int byte = cp >= 0 ? tok_cp_to_byte((uint32_t)cp) : -1;
        if (byte < 0) { /* not byte-level text: keep the UTF-8 as is */
            memcpy(b + k, str + i, (size_t)l);
            k += (uint32_t)l;
        } else {
            b[k++] = (char)byte;
        }
        i += (size_t)l;
    }
    h->s[id] = b;
    h->len[id] = k;
    return 0;
}

static int hf_load_vocab(mp_whisper *m, const char *dir, mp_error *err) {
    char p[1100];
    hf_vocab h = {calloc((size_t)m->hp.n_vocab, sizeof(char *)), calloc((size_t)m->hp.n_vocab, sizeof(uint32_t)),
                  m->hp.n_vocab};
    int rc = -1;
    char *txt = NULL;
    size_t len;
    cJSON *root = NULL;
    if (!h.s || !h.len) {
        mp_errf(err, "%s: out of memory", dir);
        goto done;
    }
    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    const cJSON *vocab = NULL;
    if (mp_is_file(p)) {
        if (mp_read_file(p, (size_t)256 << 20, &txt, &len, err)) goto done;
        root = cJSON_ParseWithLength(txt, len);
        const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
        vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    } else {
        snprintf(p, sizeof p, "%s/vocab.json", dir);
        if (!mp_is_file(p)) {
            mp_errf(err, "%s: no tokenizer.json or vocab.json (the vocabulary is needed to print text)", dir);
            goto done;
        }
        if (mp_read_file(p, (size_t)64 << 20, &txt, &len, err)) goto done;
        root = cJSON_ParseWithLength(txt, len);
        vocab = root;
    }
    if (!cJSON_IsObject(vocab)) {
        mp_errf(err, "%s: not a BPE vocabulary (no model.vocab object)", p);
        goto done;
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, vocab) {
        if (!cJSON_IsNumber(e) || !e->string) continue;
        if (hf_vocab_put(&h, e->string, e->valueint) /* cJSON saturates it */) {
            mp_errf(err, "%s: out of memory", p);
            goto done;
        }
    }
    rc = vocab_build(m, hf_tok, &h, err, p);
done:
    if (h.s)
        for (int i = 0; i < h.n; i++) free(h.s[i]);
    free(h.s);
    free(h.len);
    cJSON_Delete(root);
    free(txt);
    return rc;
}

/* ---------------------------------------------------------------- alignment heads */

typedef struct { const char *name; int n_layer, n_head, n; const int8_t (*h)[2]; } ahead_preset;

#define AH(name, nl, nh, ...)                                                                  \
    static const int8_t ah_##name[][2] = {__VA_ARGS__};
AH(tiny_en, 4, 6, {1, 0}, {2, 0}, {2, 5}, {3, 0}, {3, 1}, {3, 2}, {3, 3}, {3, 4})
AH(tiny, 4, 6, {2, 2}, {3, 0}, {3, 2}, {3, 3}, {3, 4}, {3, 5})
AH(base_en, 6, 8, {3, 3}, {4, 7}, {5, 1}, {5, 5}, {5, 7})
AH(base, 6, 8, {3, 1}, {4, 2}, {4, 3}, {4, 7}, {5, 1}, {5, 2}, {5, 4}, {5, 6})
AH(small_en, 12, 12, {6, 6}, {7, 0}, {7, 3}, {7, 8}, {8, 2}, {8, 5}, {8, 7}, {9, 0}, {9, 4}, {9, 8}, {9, 10}, {10, 0},
   {10, 1}, {10, 2}, {10, 3}, {10, 6}, {10, 11}, {11, 2}, {11, 4})
AH(small, 12, 12, {5, 3}, {5, 9}, {8, 0}, {8, 4}, {8, 7}, {8, 8}, {9, 0}, {9, 7}, {9, 9}, {10, 5})
AH(medium_en, 24, 16, {11, 4}, {14, 1}, {14, 12}, {14, 14}, {15, 4}, {16, 0}, {16, 4}, {16, 9}, {17, 12}, {17, 14},
   {18, 7}, {18, 10}, {18, 15}, {20, 0}, {20, 3}, {20, 9}, {20, 14}, {21, 12})
AH(medium, 24, 16, {13, 15}, {15, 4}, {15, 15}, {16, 1}, {20, 0}, {23, 4})
AH(large_v1, 32, 20, {9, 19}, {11, 2}, {11, 4}, {11, 17}, {22, 7}, {22, 11}, {22, 17}, {23, 2}, {23, 15})
AH(large_v2, 32, 20, {10, 12}, {13, 17}, {16, 11}, {16, 12}, {16, 13}, {17, 15}, {17, 16}, {18, 4}, {18, 11}, {18, 19},
   {19, 11}, {21, 2}, {21, 3}, {22, 3}, {22, 9}, {22, 12}, {23, 5}, {23, 7}, {23, 13}, {25, 5}, {26, 1}, {26, 12},
   {27, 15})
AH(large_v3, 32, 20, {7, 0}, {10, 17}, {12, 18}, {13, 12}, {16, 1}, {17, 14}, {19, 11}, {21, 4}, {24, 1}, {25, 6})
AH(large_v3_turbo, 4, 20, {2, 4}, {2, 11}, {3, 3}, {3, 6}, {3, 11}, {3, 14})
#undef AH

#define P(s, name, nl, nh) {s, nl, nh, (int)(sizeof ah_##name / sizeof ah_##name[0]), ah_##name}
static const ahead_preset PRESETS[] = {
    P("tiny.en", tiny_en, 4, 6),       P("tiny", tiny, 4, 6),
    P("base.en", base_en, 6, 8),       P("base", base, 6, 8),
    P("small.en", small_en, 12, 12),   P("small", small, 12, 12),
    P("medium.en", medium_en, 24, 16), P("medium", medium, 24, 16),
    P("large.v1", large_v1, 32, 20),   P("large.v2", large_v2, 32, 20),
    P("large.v3", large_v3, 32, 20),   P("large.v3.turbo", large_v3_turbo, 4, 20),
};
#undef P

int mp_whisper_set_alignment_heads(mp_whisper *m, const char *preset, mp_error *err) {
    const int nl = m->hp.n_text_layer, nh = m->hp.n_text_head;
    int32_t *h = NULL;
    int n = 0;
    if (!preset || !*preset || !strcmp(preset, "default")) {
        h = malloc(sizeof *h * 2 * (size_t)(nl * nh + 1));
        if (!h) return mp_errf(err, "whisper: out of memory");
        for (int l = nl / 2; l < nl; l++)
            for (int k = 0; k < nh; k++) h[2 * n] = l, h[2 * n + 1] = k, n++;
    } else {
        const ahead_preset *p = NULL;
        for (size_t i = 0; i < sizeof PRESETS / sizeof PRESETS[0]; i++)
            if (!strcmp(PRESETS[i].name, preset)) p = &PRESETS[i];
        if (!p) return mp_errf(err, "whisper: unknown alignment-heads preset '%s' (tiny.en, tiny, base.en, ..., large.v3.turbo)", preset);
        if (p->n_layer != nl || p->n_head != nh)
            return mp_errf(err, "whisper: preset '%s' is for %d decoder layers x %d heads, the model has %d x %d", preset,
                           p->n_layer, p->n_head, nl, nh);
        h = malloc(sizeof *h * 2 * (size_t)p->n);
        if (!h) return mp_errf(err, "whisper: out of memory");
        for (n = 0; n < p->n; n++) h[2 * n] = p->h[n][0], h[2 * n + 1] = p->h[n][1];
    }
    free(m->align_heads);
    m->align_heads = h;
    m->n_align_heads = n;
    return 0;
}

/* ---------------------------------------------------------------- hparams checks */

static int check_hparams(mp_whisper *m, const char *path, mp_error *err) {
    mp_whisper_hparams *h = &m->hp;
    if (h->n_audio_state != h->n_text_state)
        return mp_errf(err, "%s: audio state %d != text state %d", path, h->n_audio_state, h->n_text_state);
    if (h->n_audio_head <= 0 || h->n_text_head <= 0 || h->n_audio_state % h->n_audio_head ||
        h->n_text_state % h->n_text_head)
        return mp_errf(err, "%s: state %d is not a multiple of the heads (%d / %d)", path, h->n_audio_state,
                       h->n_audio_head, h->n_text_head);
    if (h->n_audio_layer <= 0 || h->n_text_layer <= 0 || h->n_audio_layer > 256 || h->n_text_layer > 256)
        return mp_errf(err, "%s: bad layer counts %d / %d", path, h->n_audio_layer, h->n_text_layer);
    if (h->n_audio_ctx <= 0 || h->n_audio_ctx > 100000 || h->n_text_ctx < 8 || h->n_text_ctx > 100000 ||
        h->n_mels <= 0 || h->n_mels > 512)
        return mp_errf(err, "%s: bad context or mel sizes (%d, %d, %d)", path, h->n_audio_ctx, h->n_text_ctx, h->n_mels);
    if (h->n_vocab < 51864 || h->n_vocab > 60000)
        return mp_errf(err, "%s: vocabulary of %d is not a Whisper vocabulary (51864 English-only, >= 51865 multilingual)",
                       path, h->n_vocab);
    mp_whisper_specials_from_hparams(h, &m->sp);
    if (m->sp.timestamp_begin + 1501 > h->n_vocab)
        return mp_errf(err, "%s: vocabulary of %d has no room for the 1501 timestamp tokens", path, h->n_vocab);
    if (m->n_audio_ff <= 0) m->n_audio_ff = 4 * h->n_audio_state;
    if (m->n_text_ff <= 0) m->n_text_ff = 4 * h->n_text_state;
    snprintf(m->type, sizeof m->type, "%s", mp_whisper_model_type(h));
    if (h->n_audio_layer == 32 && h->n_text_layer == 4) snprintf(m->type, sizeof m->type, "large v3 turbo");
    return 0;
}

/* ---------------------------------------------------------------- the two formats */

static int load_ggml(mp_whisper *m, const char *path, wl *L, mp_error *err) {
    mp_ggml_bin *b = calloc(1, sizeof *b);
    if (!b) return mp_errf(err, "%s: out of memory", path);
    if (mp_ggml_bin_open(b, path, err)) {
        free(b);
        return -1;
    }
    L->own->bin = b;
    if (b->kind != MP_GGML_BIN_WHISPER)
        return mp_errf(err, "%s: a %s model, not a Whisper model", path, mp_ggml_bin_kind_name(b->kind));
    if (b->n_tensors == 0)
        return mp_errf(err, "%s: the file has a Whisper header but no tensors (a whisper.cpp test header); it cannot transcribe",
                       path);
    m->hp = b->whisper;
    m->format = "ggml";
    if (check_hparams(m, path, err)) return -1;
    if (b->n_mel != m->hp.n_mels || b->n_fft_bins != MP_WHISPER_N_FFT / 2 + 1 || !b->mel_filters)
        return mp_errf(err, "%s: mel filterbank is %d x %d, expected %d x %d", path, b->n_mel, b->n_fft_bins,
                       m->hp.n_mels, MP_WHISPER_N_FFT / 2 + 1);
    if (mp_mel_filters_from(&m->mel, b->mel_filters, b->n_mel, b->n_fft_bins, err)) return -1;
    L->bin = b;
    if (load_tensors(m, L)) return -1;
    if (vocab_build(m, bin_tok, b, err, path)) return -1;
    return mp_whisper_set_alignment_heads(m, NULL, err);
}

static int load_hf(mp_whisper *m, const char *dir, wl *L, mp_error *err) {
    mp_hf_config c;
    if (mp_hf_config_load(&c, dir, err)) return -1;
    int rc = -1;
    const char *mt = NULL;
    int64_t v[11];
    const mp_json *j = &c.config;
    if (mp_json_str_or(j, "model_type", "", &mt, err)) goto done;
    if (strcmp(mt, "whisper")) {
        mp_errf(err, "%s/config.json: model_type is '%s', not 'whisper'", dir, mt);
        goto done;
    }
    static const char *const keys[] = {"vocab_size", "max_source_positions", "d_model", "encoder_attention_heads",
                                       "encoder_layers", "max_target_positions", "decoder_attention_heads",
                                       "decoder_layers", "num_mel_bins", "encoder_ffn_dim", "decoder_ffn_dim"};
    for (int i = 0; i < 11; i++)
        if (mp_json_get_int(j, keys[i], &v[i], err)) goto done;
    for (int i = 0; i < 11; i++)
        if (v[i] <= 0 || v[i] > (1 << 20)) {
            mp_errf(err, "%s/config.json: %s = %lld is out of range", dir, keys[i], (long long)v[i]);
            goto done;
        }
    mp_whisper_hparams *h = &m->hp;
    h->n_vocab = (int32_t)v[0];
    h->n_audio_ctx = (int32_t)v[1];
    h->n_audio_state = h->n_text_state = (int32_t)v[2];
    h->n_audio_head = (int32_t)v[3];
    h->n_audio_layer = (int32_t)v[4];
    h->n_text_ctx = (int32_t)v[5];
    h->n_text_head = (int32_t)v[6];
    h->n_text_layer = (int32_t)v[7];
    h->n_mels = (int32_t)v[8];
    m->n_audio_ff = (int)v[9];
    m->n_text_ff = (int)v[10];
    m->format = "safetensors";
    if (check_hparams(m, dir, err)) goto done;
    if (mp_weights_open(&L->own->w, dir, err)) goto done;
    L->w = L->own->w;
    L->prefix = mp_weights_has(L->w, "model.decoder.embed_tokens.weight") ? "model." : "";
    if (load_tensors(m, L)) goto done;
    h->ftype = m->tok_emb.dtype == MP_F32 ? 0 : m->tok_emb.dtype == MP_F16 ? 1 : -1;
    if (mp_mel_filters_slaney(&m->mel, MP_AUDIO_RATE, MP_WHISPER_N_FFT, h->n_mels, err)) goto done;
    if (hf_load_vocab(m, dir, err)) goto done;
    /* generation_config.json alignment_heads: [[layer, head], ...] */
    const cJSON *ah = mp_json_find(&c.generation, "alignment_heads");
    if (cJSON_IsArray(ah) && cJSON_GetArraySize(ah) > 0) {
        int n = cJSON_GetArraySize(ah);
        m->align_heads = malloc(sizeof(int32_t) * 2 * (size_t)n);
        if (!m->align_heads) {
            mp_errf(err, "%s: out of memory", dir);
            goto done;
        }
        const cJSON *e;
        int k = 0;
        cJSON_ArrayForEach(e, ah) {
            const cJSON *a = cJSON_GetArrayItem(e, 0), *b2 = cJSON_GetArrayItem(e, 1);
            if (!cJSON_IsNumber(a) || !cJSON_IsNumber(b2) || a->valueint < 0 || a->valueint >= h->n_text_layer ||
                b2->valueint < 0 || b2->valueint >= h->n_text_head)
                continue;
            m->align_heads[2 * k] = a->valueint;
            m->align_heads[2 * k + 1] = b2->valueint;
            k++;
        }
        m->n_align_heads = k;
    }
    if (m->n_align_heads == 0 && mp_whisper_set_alignment_heads(m, NULL, err)) goto done;
    rc = 0;
done:
    mp_hf_config_free(&c);
    return rc;
}

int mp_whisper_load(mp_whisper *m, const char *path, mp_exec *ex, mp_error *err) {
    memset(m, 0, sizeof *m);
    wl_owner *own = calloc(1, sizeof *own);
    if (!own) return mp_errf(err, "%s: out of memory", path);
    m->owner = own;
    m->owner_free = owner_free;
    m->backend = ex->backend;
    wl L = {path, NULL, NULL, "", own, ex, err};
    int rc;
    mp_model_kind k = mp_model_sniff(path, err);
    if (k == MP_KIND_ERROR) {
        rc = -1;
    } else if (k == MP_KIND_GGML_BIN) {
        rc = load_ggml(m, path, &L, err);
    } else if (k == MP_KIND_FOLDER || k == MP_KIND_SAFETENSORS || k == MP_KIND_ST_INDEX ||
               (k == MP_KIND_UNKNOWN && strstr(path, ".json"))) {
        char dir[1024];
        snprintf(dir, sizeof dir, "%s", path);
        if (!mp_is_dir(dir)) {
            char *s = strrchr(dir, '/');
            if (s) *s = 0;
            else snprintf(dir, sizeof dir, ".");
        }
        L.path = dir;
        rc = load_hf(m, dir, &L, err);
    } else {
        rc = mp_errf(err, "%s: not a Whisper model (a whisper.cpp ggml .bin or an HF folder is needed; this is %s)", path,
                     mp_model_kind_name(k));
    }
    if (rc) mp_whisper_free(m, ex);
    return rc;
}

void mp_whisper_free(mp_whisper *m, mp_exec *ex) {
    if (m->owner_free) m->owner_free(m->owner, ex);
    free(m->enc);
    free(m->dec);
    mp_mel_filters_free(&m->mel);
    free(m->vocab.text);
    free(m->vocab.off);
    free(m->vocab.len);
    free(m->vocab.ht);
    free(m->align_heads);
    memset(m, 0, sizeof *m);
}

/* ---------------------------------------------------------------- random-weight fixtures */

static uint64_t wr_hash(const char *s, uint64_t seed) {
    uint64_t h = 1469598103934665603ull ^ seed;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h ? h : 1;
}

static float wr_uniform(uint64_t *s) { /* [-1, 1) */
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return (float)((*s >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

typedef struct wr_tensor {
    char name[96];
    int nd;
    int64_t ne[3];
    int kind; /* 0 vector, 1 matrix, 2 conv, 3 token embedding, 4 encoder positions, 5 decoder positions */
} wr_tensor;

/* The tensor list of a Whisper model, in whisper.cpp's order. */
static int wr_list(const mp_whisper_hparams *h, int64_t ff, wr_tensor **out) {
    const int64_t D = h->n_audio_state;
    int cap = 16 + 16 * h->n_audio_layer + 26 * h->n_text_layer, n = 0;
    wr_tensor *t = calloc((size_t)cap, sizeof *t);
    if (!t) return -1;
#define ADD(nm, d, a, b, c, k) \
    do { snprintf(t[n].name, sizeof t[n].name, "%s", nm); t[n].nd = d; t[n].ne[0] = a; t[n].ne[1] = b; t[n].ne[2] = c; t[n].kind = k; n++; } while (0)
    ADD("encoder.positional_embedding", 2, D, h->n_audio_ctx, 1, 4);
    ADD("encoder.conv1.weight", 3, 3, h->n_mels, D, 2);
    ADD("encoder.conv1.bias", 2, 1, D, 1, 0);
    ADD("encoder.conv2.weight", 3, 3, D, D, 2);
    ADD("encoder.conv2.bias", 2, 1, D, 1, 0);
    char b[96];
    for (int side = 0; side < 2; side++) {
        const int nl = side ? h->n_text_layer : h->n_audio_layer;
        if (side) {
            ADD("decoder.positional_embedding", 2, D, h->n_text_ctx, 1, 5);
            ADD("decoder.token_embedding.weight", 2, D, h->n_vocab, 1, 3);
        }
        for (int l = 0; l < nl; l++)
            for (int a = 0; a <= side; a++) {
                const char *p = side ? "decoder" : "encoder", *at = a ? "cross_attn" : "attn";
                snprintf(b, sizeof b, "%s.blocks.%d.%s.query.weight", p, l, at); ADD(b, 2, D, D, 1, 1);
                snprintf(b, sizeof b, "%s.blocks.%d.%s.query.bias", p, l, at); ADD(b, 1, D, 1, 1, 0);
                snprintf(b, sizeof b, "%s.blocks.%d.%s.key.weight", p, l, at); ADD(b, 2, D, D, 1, 1);
                snprintf(b, sizeof b, "%s.blocks.%d.%s.value.weight", p, l, at); ADD(b, 2, D, D, 1, 1);
                snprintf(b, sizeof b, "%s.blocks.%d.%s.value.bias", p, l, at); ADD(b, 1, D, 1, 1, 0);
                snprintf(b, sizeof b, "%s.blocks.%d.%s.out.weight", p, l, at); ADD(b, 2, D, D, 1, 1);
                snprintf(b, sizeof b, "%s.blocks.%d.%s.out.bias", p, l, at); ADD(b, 1, D, 1, 1, 0);
                snprintf(b, sizeof b, "%s.blocks.%d.%s_ln.weight", p, l, at); ADD(b, 1, D, 1, 1, 6);
                snprintf(b, sizeof b, "%s.blocks.%d.%s_ln.bias", p, l, at); ADD(b, 1, D, 1, 1, 0);
                if (a == side) {
                    snprintf(b, sizeof b, "%s.blocks.%d.mlp_ln.weight", p, l); ADD(b, 1, D, 1, 1, 6);
                    snprintf(b, sizeof b, "%s.blocks.%d.mlp_ln.bias", p, l); ADD(b, 1, D, 1, 1, 0);
                    snprintf(b, sizeof b, "%s.blocks.%d.mlp.0.weight", p, l); ADD(b, 2, D, ff, 1, 1);
                    snprintf(b, sizeof b, "%s.blocks.%d.mlp.0.bias", p, l); ADD(b, 1, ff, 1, 1, 0);
                    snprintf(b, sizeof b, "%s.blocks.%d.mlp.2.weight", p, l); ADD(b, 2, ff, D, 1, 1);
                    snprintf(b, sizeof b, "%s.blocks.%d.mlp.2.bias", p, l); ADD(b, 1, D, 1, 1, 0);
                }
            }
        if (!side) {
            ADD("encoder.ln_post.weight", 1, D, 1, 1, 6);
            ADD("encoder.ln_post.bias", 1, D, 1, 1, 0);
        } else {
            ADD("decoder.ln.weight", 1, D, 1, 1, 6);
            ADD("decoder.ln.bias", 1, D, 1, 1, 0);
        }
    }
#undef ADD
    *out = t;
    return n;
}

/* Values of one tensor (deterministic in the seed and the name). */
static void wr_values(const mp_whisper_random_spec *s, const mp_whisper_specials *sp, const wr_tensor *t, float *v) {
    const int64_t n = t->ne[0] * t->ne[1] * t->ne[2];
    uint64_t r = wr_hash(t->name, s->seed);
    if (t->kind == 4) { /* openai's sinusoids(length, channels), in float32 */
        const int64_t C = t->ne[0], half = C / 2;
        const float inc = (float)(log(10000.0) / (double)(half - 1));
        for (int64_t p = 0; p < t->ne[1]; p++)
            for (int64_t i = 0; i < half; i++) {
                const float inv = expf(-inc * (float)i), a = (float)p * inv;
                v[p * C + i] = sinf(a);
                v[p * C + half + i] = cosf(a);
            }
        return;
    }
    float scale = 0.02f;
    if (t->kind == 1) scale = s->gain / sqrtf((float)t->ne[0]);
    if (t->kind == 2) scale = 1.0f / sqrtf((float)(t->ne[0] * t->ne[1]));
    if (t->kind == 3) scale = s->emb_scale;
    if (t->kind == 5) scale = s->pos_scale > 0 ? s->pos_scale : 0.2f;
    if (t->kind == 0) scale = 0.05f;
    if (t->kind == 6) scale = 0.1f; /* layer-norm gains around 1 */
    for (int64_t i = 0; i < n; i++) v[i] = (t->kind == 6 ? 1.0f : 0.0f) + scale * wr_uniform(&r);
    if (t->kind == 3 && s->eot_gain != 0) /* make <|endoftext|> likelier to come out on top */
        for (int64_t i = 0; i < t->ne[0]; i++) v[(int64_t)sp->eot * t->ne[0] + i] *= s->eot_gain;
}

int mp_whisper_write_random(const char *path, const mp_whisper_random_spec *s, mp_error *err) {
    mp_ggml_bin hdr;
    if (mp_ggml_bin_open(&hdr, s->header_from, err)) return -1;
    mp_whisper_hparams h = hdr.whisper;
    if (s->n_state > 0) h.n_audio_state = h.n_text_state = s->n_state;
    if (s->n_head > 0) h.n_audio_head = h.n_text_head = s->n_head;
    if (s->n_layer > 0) h.n_audio_layer = h.n_text_layer = s->n_layer;
    if (s->n_text_layer > 0) h.n_text_layer = s->n_text_layer;
    if (s->n_vocab > 0) h.n_vocab = s->n_vocab;
    mp_mel_filters mf = {0};
    const float *filters = hdr.mel_filters;
    int n_mel = hdr.n_mel;
    if (s->n_mels > 0 && s->n_mels != hdr.n_mel) {
        if (mp_mel_filters_slaney(&mf, MP_AUDIO_RATE, MP_WHISPER_N_FFT, s->n_mels, err)) {
            mp_ggml_bin_close(&hdr);
            return -1;
        }
        h.n_mels = n_mel = s->n_mels;
        filters = mf.w;
    }
    const mp_dtype wt = s->wtype;
    h.ftype = wt == MP_F32 ? 0 : wt == MP_F16 ? 1 : wt == MP_Q4_0 ? 2 : wt == MP_Q4_1 ? 3 : wt == MP_Q8_0 ? 7 :
              wt == MP_Q5_0 ? 8 : wt == MP_Q5_1 ? 9 : wt == MP_Q4_K ? 12 : wt == MP_Q6_K ? 14 : -1;
    if (h.ftype < 0) {
        mp_ggml_bin_close(&hdr);
        mp_mel_filters_free(&mf);
        return mp_errf(err, "%s: cannot write weights as %s", path, mp_dtype_name(wt));
    }
    mp_whisper_specials sp;
    mp_whisper_specials_from_hparams(&h, &sp);
    FILE *f = fopen(path, "wb");
    if (!f) {
        mp_ggml_bin_close(&hdr);
        mp_mel_filters_free(&mf);
        return mp_errf(err, "%s: cannot create the file", path);
    }
    const char **tok = malloc(sizeof(char *) * (size_t)(hdr.n_vocab_file + 1));
    uint32_t *tl = malloc(sizeof(uint32_t) * (size_t)(hdr.n_vocab_file + 1));
    wr_tensor *ts = NULL;
    int rc = -1, nt = tok && tl ? wr_list(&h, 4 * (int64_t)h.n_audio_state, &ts) : -1;
    if (nt < 0) {
        mp_errf(err, "%s: out of memory", path);
        goto done;
    }
    for (int i = 0; i < hdr.n_vocab_file; i++) tok[i] = mp_ggml_bin_token(&hdr, i, &tl[i]);
    if (mp_ggml_bin_write_whisper_header(f, path, &h, filters, n_mel, hdr.n_fft_bins, hdr.n_vocab_file, tok, tl, err))
        goto done;
    for (int i = 0; i < nt; i++) {
        const wr_tensor *t = &ts[i];
        const int64_t n = t->ne[0] * t->ne[1] * t->ne[2];
        float *v = malloc(sizeof(float) * (size_t)n);
        mp_dtype dt = t->kind == 1 || t->kind == 3 ? wt : t->kind == 2 ? (wt == MP_F32 ? MP_F32 : MP_F16) : MP_F32;
        if (mp_dtype_row_bytes(dt, t->ne[0]) < 0) dt = MP_F16; /* rows that do not fit the block size */
        const int64_t row = mp_dtype_row_bytes(dt, t->ne[0]);
        void *q = malloc((size_t)row * (size_t)(n / t->ne[0]));
        if (!v || !q) {
            free(v);
            free(q);
            mp_errf(err, "%s: out of memory", path);
            goto done;
        }
        wr_values(s, &sp, t, v);
        for (int64_t r = 0; r < n / t->ne[0]; r++)
            mp_quantize_row(dt, v + r * t->ne[0], (uint8_t *)q + r * row, t->ne[0]);
        int e = mp_ggml_bin_write_tensor(f, path, t->name, dt, t->nd, t->ne, q, err);
        free(v);
        free(q);
        if (e) goto done;
    }
    rc = 0;
done:
    if (fclose(f) && rc == 0) rc = mp_errf(err, "%s: write error", path);
    free(tok);
    free(tl);
    free(ts);
    mp_ggml_bin_close(&hdr);
    mp_mel_filters_free(&mf);
    return rc;
}

int mp_whisper_write_random_hf(const char *dir, const mp_whisper_random_spec *s, mp_error *err) {
    mp_ggml_bin hdr;
    if (mp_ggml_bin_open(&hdr, s->header_from, err)) return -1;
    mp_whisper_hparams h = hdr.whisper;
    mp_ggml_bin_close(&hdr);
    if (s->n_state > 0) h.n_audio_state = h.n_text_state = s->n_state;
    if (s->n_head > 0) h.n_audio_head = h.n_text_head = s->n_head;
    if (s->n_layer > 0) h.n_audio_layer = h.n_text_layer = s->n_layer;
    if (s->n_text_layer > 0) h.n_text_layer = s->n_text_layer;
    if (s->n_mels > 0) h.n_mels = s->n_mels;
    if (s->n_vocab > 0) h.n_vocab = s->n_vocab;
    mp_whisper_specials sp;
    mp_whisper_specials_from_hparams(&h, &sp);
    const int64_t ff = 4 * (int64_t)h.n_audio_state;
    char p[1100];
    snprintf(p, sizeof p, "%s/config.json", dir);
    FILE *f = fopen(p, "w");
    if (!f) return mp_errf(err, "%s: cannot create the file", p);
    fprintf(f,
            "{\n  \"model_type\": \"whisper\",\n  \"architectures\": [\"WhisperForConditionalGeneration\"],\n"
            "  \"vocab_size\": %d,\n  \"num_mel_bins\": %d,\n  \"d_model\": %d,\n  \"encoder_layers\": %d,\n"
            "  \"encoder_attention_heads\": %d,\n  \"decoder_layers\": %d,\n  \"decoder_attention_heads\": %d,\n"
            "  \"encoder_ffn_dim\": %lld,\n  \"decoder_ffn_dim\": %lld,\n  \"max_source_positions\": %d,\n"
            "  \"max_target_positions\": %d,\n  \"activation_function\": \"gelu\",\n  \"scale_embedding\": false\n}\n",
            h.n_vocab, h.n_mels, h.n_audio_state, h.n_audio_layer, h.n_audio_head, h.n_text_layer, h.n_text_head,
            (long long)ff, (long long)ff, h.n_audio_ctx, h.n_text_ctx);
    if (fclose(f)) return mp_errf(err, "%s: write error", p);
    wr_tensor *ts = NULL;
    int nt = wr_list(&h, ff, &ts);
    if (nt < 0) return mp_errf(err, "%s: out of memory", dir);
    /* header JSON with HF names and PyTorch shapes (F32) */
    cJSON *root = cJSON_CreateObject();
    wl L = {dir, NULL, NULL, "model.", NULL, NULL, err};
    uint64_t off = 0;
    for (int i = 0; i < nt; i++) {
        const wr_tensor *t = &ts[i];
        char hn[320];
        hf_name(&L, t->name, hn, sizeof hn);
        cJSON *o = cJSON_CreateObject(), *shape = cJSON_CreateArray(), *offs = cJSON_CreateArray();
        cJSON_AddStringToObject(o, "dtype", "F32");
        const int nd = t->kind == 0 && t->nd == 2 ? 1 : t->nd; /* conv biases are [D] in HF */
        for (int d = nd - 1; d >= 0; d--) cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t->ne[nd == 1 && t->nd == 2 ? 1 : d]));
        const uint64_t bytes = (uint64_t)(t->ne[0] * t->ne[1] * t->ne[2]) * 4;
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)(off + bytes)));
        cJSON_AddItemToObject(o, "shape", shape);
        cJSON_AddItemToObject(o, "data_offsets", offs);
        cJSON_AddItemToObject(root, hn, o);
        off += bytes;
    }
    char *js = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    f = js ? fopen(p, "wb") : NULL;
    int rc = -1;
    if (!f) {
        mp_errf(err, "%s: cannot create the file", p);
        goto done;
    }
    size_t hl = strlen(js), pad = (8 - hl % 8) % 8;
    uint64_t hlen = hl + pad;
    uint8_t le[8];
    for (int i = 0; i < 8; i++) le[i] = (uint8_t)(hlen >> (8 * i));
    int bad = fwrite(le, 1, 8, f) != 8 || fwrite(js, 1, hl, f) != hl || fwrite("        ", 1, pad, f) != pad;
    for (int i = 0; i < nt && !bad; i++) {
        const int64_t n = ts[i].ne[0] * ts[i].ne[1] * ts[i].ne[2];
        float *v = malloc(sizeof(float) * (size_t)n);
        if (!v) {
            bad = 1;
            break;
        }
        wr_values(s, &sp, &ts[i], v);
        bad = fwrite(v, sizeof(float), (size_t)n, f) != (size_t)n;
        free(v);
    }
    if (fclose(f) || bad)
        mp_errf(err, "%s: write error", p);
    else
        rc = 0;
done:
    free(js);
    free(ts);
    return rc;
}
