/* ggml_bin.c — reader for whisper.cpp's legacy ggml .bin files (Whisper, Silero VAD, Parakeet-TDT).
 * See ggml_bin.h and ../shared/fixtures/whisper/FORMAT.md. */
#include "models/ggml_bin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TENSORS 65536
#define MAX_NAME 4096
#define MAX_VOCAB (1 << 22)

/* ---------------------------------------------------------------- bounded little-endian reader */

typedef struct rd {
    const uint8_t *p;
    uint64_t n, pos;
    const char *name;
    mp_error *err;
} rd;

static int rd_need(rd *r, uint64_t k, const char *what) {
    if (k > r->n - r->pos)
        return mp_errf(r->err, "%s: truncated: %s needs %llu bytes at offset %llu but the file ends at %llu", r->name,
                       what, (unsigned long long)k, (unsigned long long)r->pos, (unsigned long long)r->n);
    return 0;
}

static int rd_i32(rd *r, int32_t *v, const char *what) {
    if (rd_need(r, 4, what)) return -1;
    const uint8_t *b = r->p + r->pos;
    *v = (int32_t)((uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24);
    r->pos += 4;
    return 0;
}

/* reads an i32 that must lie in [lo, hi] */
static int rd_range(rd *r, int32_t *v, int32_t lo, int32_t hi, const char *what) {
    uint64_t at = r->pos;
    if (rd_i32(r, v, what)) return -1;
    if (*v < lo || *v > hi)
        return mp_errf(r->err, "%s: bad %s = %d at offset %llu (expected %d..%d)", r->name, what, *v,
                       (unsigned long long)at, lo, hi);
    return 0;
}

/* Copies n little-endian 32-bit values (floats or ints) into an owned aligned array. */
static int rd_array32(rd *r, int64_t n, void **out, const char *what) {
    *out = NULL;
    if (n < 0) return mp_errf(r->err, "%s: negative size for %s", r->name, what);
    if (rd_need(r, (uint64_t)n * 4, what)) return -1;
    void *p = mp_aligned_alloc((size_t)(n > 0 ? n : 1) * 4);
    if (!p) return mp_errf(r->err, "%s: out of memory for %s", r->name, what);
    memcpy(p, r->p + r->pos, (size_t)n * 4);
    r->pos += (uint64_t)n * 4;
    *out = p;
    return 0;
}

static int32_t peek_i32(const uint8_t *b, size_t n, size_t off) {
    if (off + 4 > n) return INT32_MIN;
    return (int32_t)((uint32_t)b[off] | (uint32_t)b[off + 1] << 8 | (uint32_t)b[off + 2] << 16 |
                     (uint32_t)b[off + 3] << 24);
}

/* ---------------------------------------------------------------- kind detection */

static int detect(const uint8_t *b, size_t n) {
    if (n < 8 || (uint32_t)peek_i32(b, n, 0) != MP_GGML_FILE_MAGIC) return 0;
    int32_t tl = peek_i32(b, n, 4);
    if (tl >= 1 && tl <= 255 && (size_t)tl + 8 <= n) {
        int printable = 1;
        for (int32_t i = 0; i < tl; i++)
            if (b[8 + i] < 0x20 || b[8 + i] > 0x7e) printable = 0;
        if (printable) return MP_GGML_BIN_SILERO;
    }
    /* whisper: filterbank n_mel (offset 48) == hparams.n_mels (40), n_text_state (28) == n_audio_state (12) */
    int32_t mels = peek_i32(b, n, 40);
    if (mels > 0 && peek_i32(b, n, 48) == mels && peek_i32(b, n, 28) == peek_i32(b, n, 12)) return MP_GGML_BIN_WHISPER;
    /* parakeet: filterbank n_mel (offset 64) == hparams.n_mels (24) */
    mels = peek_i32(b, n, 24);
    if (mels > 0 && peek_i32(b, n, 64) == mels) return MP_GGML_BIN_PARAKEET;
    return 0;
}

int mp_ggml_bin_probe(const void *head, size_t n) { return detect(head, n) != 0; }

const char *mp_ggml_bin_kind_name(mp_ggml_bin_kind k) {
    switch (k) {
    case MP_GGML_BIN_WHISPER: return "whisper";
    case MP_GGML_BIN_SILERO: return "silero-vad";
    case MP_GGML_BIN_PARAKEET: return "parakeet-tdt";
    }
    return "unknown";
}

/* ---------------------------------------------------------------- whisper helpers */

int mp_whisper_ftype_to_dtype(int32_t ftype) {
    switch (ftype % 1000) {
    case 0: return MP_F32;
    case 1: return MP_F16;
    case 2: return MP_Q4_0;
    case 3: return MP_Q4_1;
    case 7: return MP_Q8_0;
    case 8: return MP_Q5_0;
    case 9: return MP_Q5_1;
    case 10: return MP_Q2_K;
    case 11: return MP_Q3_K;
    case 12: return MP_Q4_K;
    case 13: return MP_Q5_K;
    case 14: return MP_Q6_K;
    case 24: return MP_BF16;
    }
    return -1;
}

const char *mp_whisper_model_type(const mp_whisper_hparams *hp) {
    switch (hp->n_audio_layer) {
    case 4: return "tiny";
    case 6: return "base";
    case 12: return "small";
    case 24: return "medium";
    case 32: return hp->n_vocab == 51866 ? "large v3" : "large";
    }
    return "unknown";
}

void mp_whisper_specials_from_hparams(const mp_whisper_hparams *hp, mp_whisper_specials *s) {
    s->multilingual = hp->n_vocab >= 51865;
    s->num_languages = hp->n_vocab - 51765 - (s->multilingual ? 1 : 0);
    s->eot = 50256;
    s->sot = 50257;
    s->translate = 50357;
    s->transcribe = 50358;
    s->solm = 50359;
    s->prev = 50360;
    s->nosp = 50361;
    s->no_timestamps = 50362;
    s->timestamp_begin = 50363;
    if (s->multilingual) {
        int dt = s->num_languages - 98;
        s->eot++;
        s->sot++;
        s->translate += dt;
        s->transcribe += dt;
        s->solm += dt;
        s->prev += dt;
        s->nosp += dt;
        s->no_timestamps += dt;
        s->timestamp_begin += dt;
    }
}

/* ---------------------------------------------------------------- headers */

static int read_whisper_header(rd *r, mp_ggml_bin *m) {
    mp_whisper_hparams *h = &m->whisper;
    if (rd_range(r, &h->n_vocab, 1, MAX_VOCAB, "n_vocab") || rd_range(r, &h->n_audio_ctx, 1, 1 << 20, "n_audio_ctx") ||
        rd_range(r, &h->n_audio_state, 1, 1 << 16, "n_audio_state") ||
        rd_range(r, &h->n_audio_head, 1, 1 << 12, "n_audio_head") ||
        rd_range(r, &h->n_audio_layer, 1, 1024, "n_audio_layer") || rd_range(r, &h->n_text_ctx, 1, 1 << 20, "n_text_ctx") ||
        rd_range(r, &h->n_text_state, 1, 1 << 16, "n_text_state") ||
        rd_range(r, &h->n_text_head, 1, 1 << 12, "n_text_head") ||
        rd_range(r, &h->n_text_layer, 1, 1024, "n_text_layer") || rd_range(r, &h->n_mels, 1, 1024, "n_mels") ||
        rd_range(r, &h->ftype, 0, 1 << 20, "ftype"))
        return -1;
    if (h->n_text_state != h->n_audio_state)
        return mp_errf(r->err, "%s: n_text_state %d differs from n_audio_state %d", r->name, h->n_text_state,
                       h->n_audio_state);
    if (h->n_audio_state % h->n_audio_head || h->n_text_state % h->n_text_head)
        return mp_errf(r->err, "%s: state size %d is not a multiple of the head count (%d audio, %d text)", r->name,
                       h->n_audio_state, h->n_audio_head, h->n_text_head);
    if (mp_whisper_ftype_to_dtype(h->ftype) < 0)
        return mp_errf(r->err, "%s: unsupported ftype %d (file type %d)", r->name, h->ftype, h->ftype % 1000);
    return 0;
}

static int read_filters(rd *r, mp_ggml_bin *m, int32_t want_mels) {
    if (rd_range(r, &m->n_mel, 1, 4096, "mel filter count") || rd_range(r, &m->n_fft_bins, 1, 1 << 16, "mel filter length"))
        return -1;
    if (m->n_mel != want_mels)
        return mp_errf(r->err, "%s: the mel filterbank has %d filters but the model uses %d mel bins", r->name, m->n_mel,
                       want_mels);
    return rd_array32(r, (int64_t)m->n_mel * m->n_fft_bins, (void **)&m->mel_filters, "mel filters");
}

static int read_vocab(rd *r, mp_ggml_bin *m) {
    if (rd_range(r, &m->n_vocab_file, 0, MAX_VOCAB, "vocabulary size")) return -1;
    int32_t n = m->n_vocab_file;
    m->tok_off = malloc(sizeof(uint64_t) * (size_t)(n ? n : 1));
    m->tok_len = malloc(sizeof(uint32_t) * (size_t)(n ? n : 1));
    if (!m->tok_off || !m->tok_len) return mp_errf(r->err, "%s: out of memory for %d tokens", r->name, n);
    for (int32_t i = 0; i < n; i++) {
        int32_t len;
        uint64_t at = r->pos;
        if (rd_i32(r, &len, "token length")) return -1;
        if (len < 0 || (uint64_t)len > r->n - r->pos)
            return mp_errf(r->err, "%s: token %d at offset %llu has length %u, past the end of the file", r->name, i,
                           (unsigned long long)at, (uint32_t)len);
        m->tok_off[i] = r->pos;
        m->tok_len[i] = (uint32_t)len;
        r->pos += (uint64_t)len;
    }
    return 0;
}

static int read_silero_header(rd *r, mp_ggml_bin *m) {
    mp_silero_hparams *h = &m->silero;
    int32_t tl;
    if (rd_range(r, &tl, 1, 255, "model type length") || rd_need(r, (uint64_t)tl, "model type")) return -1;
    memcpy(h->type, r->p + r->pos, (size_t)tl);
    h->type[tl] = 0;
    r->pos += (uint64_t)tl;
    for (int i = 0; i < 3; i++)
        if (rd_range(r, &h->version[i], 0, 1 << 20, "version")) return -1;
    if (rd_range(r, &h->n_window, 1, 1 << 16, "n_window") || rd_range(r, &h->n_context, 0, 1 << 16, "n_context") ||
        rd_range(r, &h->n_encoder_layers, 1, MP_SILERO_MAX_LAYERS, "n_encoder_layers"))
        return -1;
    for (int i = 0; i < h->n_encoder_layers; i++)
        if (rd_range(r, &h->enc_in[i], 1, 1 << 16, "encoder in_channels") ||
            rd_range(r, &h->enc_out[i], 1, 1 << 16, "encoder out_channels") ||
            rd_range(r, &h->enc_kernel[i], 1, 1 << 10, "encoder kernel_size"))
            return -1;
    if (rd_range(r, &h->lstm_input, 1, 1 << 16, "lstm_input_size") ||
        rd_range(r, &h->lstm_hidden, 1, 1 << 16, "lstm_hidden_size") ||
        rd_range(r, &h->final_conv_in, 1, 1 << 16, "final_conv_in") ||
        rd_range(r, &h->final_conv_out, 1, 1 << 16, "final_conv_out"))
        return -1;
    return 0;
}

static int read_parakeet_header(rd *r, mp_ggml_bin *m) {
    mp_parakeet_hparams *h = &m->parakeet;
    if (rd_range(r, &h->n_vocab, 1, MAX_VOCAB, "n_vocab") || rd_range(r, &h->n_audio_ctx, 1, 1 << 20, "n_audio_ctx") ||
        rd_range(r, &h->n_audio_state, 1, 1 << 16, "n_audio_state") ||
        rd_range(r, &h->n_audio_head, 1, 1 << 12, "n_audio_head") ||
        rd_range(r, &h->n_audio_layer, 1, 1024, "n_audio_layer") || rd_range(r, &h->n_mels, 1, 1024, "n_mels") ||
        rd_range(r, &h->ftype, 0, 1 << 20, "ftype") || rd_range(r, &h->n_fft, 2, 1 << 16, "n_fft") ||
        rd_range(r, &h->subsampling_factor, 1, 1 << 10, "subsampling_factor") ||
        rd_range(r, &h->n_subsampling_channels, 1, 1 << 16, "n_subsampling_channels") ||
        rd_range(r, &h->n_conv_kernel, 1, 1 << 10, "n_conv_kernel") ||
        rd_range(r, &h->n_pred_dim, 1, 1 << 16, "n_pred_dim") || rd_range(r, &h->n_pred_layers, 1, 1024, "n_pred_layers") ||
        rd_range(r, &h->n_tdt_durations, 1, 1024, "n_tdt_durations") ||
        rd_range(r, &h->n_max_tokens, 1, 1 << 16, "n_max_tokens"))
        return -1;
    if (h->n_audio_state % h->n_audio_head)
        return mp_errf(r->err, "%s: n_audio_state %d is not a multiple of n_audio_head %d", r->name, h->n_audio_state,
                       h->n_audio_head);
    if (mp_whisper_ftype_to_dtype(h->ftype) < 0) return mp_errf(r->err, "%s: unsupported ftype %d", r->name, h->ftype);
    if (read_filters(r, m, h->n_mels)) return -1;
    if (m->n_fft_bins != h->n_fft / 2 + 1)
        return mp_errf(r->err, "%s: mel filters have %d frequency bins but n_fft %d gives %d", r->name, m->n_fft_bins,
                       h->n_fft, h->n_fft / 2 + 1);
    if (rd_range(r, &h->n_window, 1, h->n_fft, "window length")) return -1;
    if (rd_array32(r, h->n_window, (void **)&h->window, "window")) return -1;
    if (rd_array32(r, h->n_tdt_durations, (void **)&h->tdt_durations, "TDT durations")) return -1;
    return read_vocab(r, m);
}

/* ---------------------------------------------------------------- tensors */

static size_t dtype_align(int dt) {
    switch (dt) {
    case MP_I8: return 1;
    case MP_F16: case MP_BF16: case MP_I16: return 2;
    case MP_I64: case MP_F64: return 8;
    case MP_F32: case MP_I32: case MP_Q8_K: return 4;
    default: return 2; /* block quants start with an f16 */
    }
}

static int read_tensors(rd *r, mp_ggml_bin *m) {
    int cap = 0;
    while (r->pos < r->n) {
        uint64_t at = r->pos;
        int32_t n_dims, name_len, ttype;
        if (rd_i32(r, &n_dims, "tensor header") || rd_i32(r, &name_len, "tensor header") ||
            rd_i32(r, &ttype, "tensor header"))
            return -1;
        if (n_dims < 0 || n_dims > 4)
            return mp_errf(r->err, "%s: tensor record at offset %llu has n_dims %d (expected 0..4)", r->name,
                           (unsigned long long)at, n_dims);
        if (name_len < 1 || name_len > MAX_NAME)
            return mp_errf(r->err, "%s: tensor record at offset %llu has name length %d (expected 1..%d)", r->name,
                           (unsigned long long)at, name_len, MAX_NAME);
        const mp_dtype_traits *tr = mp_dtype_info(ttype);
        if (!tr || !tr->name || tr->type_size <= 0)
            return mp_errf(r->err, "%s: tensor record at offset %llu has unknown ggml type %d", r->name,
                           (unsigned long long)at, ttype);
        int64_t ne[MP_MAX_DIMS] = {1, 1, 1, 1};
        int64_t nel = 1;
        for (int i = 0; i < n_dims; i++) {
            int32_t v;
            if (rd_i32(r, &v, "tensor shape")) return -1;
            if (v < 1)
                return mp_errf(r->err, "%s: tensor record at offset %llu has dimension %d = %d", r->name,
                               (unsigned long long)at, i, v);
            ne[i] = v;
            if (nel > ((int64_t)1 << 48) / v)
                return mp_errf(r->err, "%s: tensor record at offset %llu is impossibly large", r->name,
                               (unsigned long long)at);
            nel *= v;
        }
        if (rd_need(r, (uint64_t)name_len, "tensor name")) return -1;
        if (memchr(r->p + r->pos, 0, (size_t)name_len))
            return mp_errf(r->err, "%s: tensor name at offset %llu contains a NUL byte", r->name,
                           (unsigned long long)r->pos);
        const uint8_t *name = r->p + r->pos;
        r->pos += (uint64_t)name_len;
        int64_t row = mp_dtype_row_bytes((mp_dtype)ttype, ne[0]);
        if (row < 0)
            return mp_errf(r->err, "%s: tensor '%.*s': ne[0] = %lld is not a multiple of the %s block size %d", r->name,
                           name_len, (const char *)name, (long long)ne[0], tr->name, tr->block_size);
        uint64_t nbytes = (uint64_t)row * (uint64_t)(nel / ne[0]);
        if (rd_need(r, nbytes, "tensor data")) {
            return mp_errf(r->err, "%s: truncated: tensor '%.*s' (%s, %llu bytes) at offset %llu runs past the end of the file (%llu bytes)",
                           r->name, name_len, (const char *)name, tr->name, (unsigned long long)nbytes,
                           (unsigned long long)r->pos, (unsigned long long)r->n);
        }
        if (m->n_tensors >= MAX_TENSORS)
            return mp_errf(r->err, "%s: more than %d tensors", r->name, MAX_TENSORS);
        if (m->n_tensors == cap) {
            cap = cap ? cap * 2 : 64;
            mp_ggml_bin_tensor *t = realloc(m->tensors, sizeof *t * (size_t)cap);
            if (!t) return mp_errf(r->err, "%s: out of memory", r->name);
            m->tensors = t;
        }
        mp_ggml_bin_tensor *t = &m->tensors[m->n_tensors];
        memset(t, 0, sizeof *t);
        t->name = mp_pool_strndup(&m->names, (const char *)name, (size_t)name_len);
        if (!t->name) return mp_errf(r->err, "%s: out of memory", r->name);
        m->n_tensors++;
        mp_tensor_init(&t->t, (mp_dtype)ttype, n_dims ? n_dims : 1, ne, (void *)(r->p + r->pos));
        t->t.name = t->name;
        t->offset = r->pos;
        t->nbytes = nbytes;
        m->data_bytes += nbytes;
        r->pos += nbytes;
    }
    if (mp_strindex_init(&m->by_name, (size_t)m->n_tensors)) return mp_errf(r->err, "%s: out of memory", r->name);
    for (int i = 0; i < m->n_tensors; i++) {
        int rc = mp_strindex_put(&m->by_name, m->tensors[i].name, i);
        if (rc < 0) return mp_errf(r->err, "%s: out of memory", r->name);
        if (rc > 0) return mp_errf(r->err, "%s: tensor '%s' appears twice", r->name, m->tensors[i].name);
    }
    /* copy tensors whose data is not aligned for their type */
    uint64_t need = 0;
    for (int i = 0; i < m->n_tensors; i++)
        if ((uintptr_t)m->tensors[i].t.data % dtype_align(m->tensors[i].t.dtype)) need += (m->tensors[i].nbytes + 63) & ~63ull;
    if (need) {
        m->copy_buf = mp_aligned_alloc((size_t)need);
        if (!m->copy_buf) return mp_errf(r->err, "%s: out of memory (%llu bytes)", r->name, (unsigned long long)need);
        uint8_t *dst = m->copy_buf;
        for (int i = 0; i < m->n_tensors; i++) {
            mp_ggml_bin_tensor *t = &m->tensors[i];
            if ((uintptr_t)t->t.data % dtype_align(t->t.dtype) == 0) continue;
            memcpy(dst, t->t.data, (size_t)t->nbytes);
            t->t.data = dst;
            t->copied = 1;
            dst += (t->nbytes + 63) & ~63ull;
        }
        m->copied_bytes = need;
    }
    return 0;
}

const mp_ggml_bin_tensor *mp_ggml_bin_find(const mp_ggml_bin *m, const char *name) {
    if (!m || !name || m->n_tensors == 0) return NULL;
    int64_t i = mp_strindex_get(&m->by_name, name);
    return i < 0 ? NULL : &m->tensors[i];
}

const char *mp_ggml_bin_token(const mp_ggml_bin *m, int32_t id, uint32_t *len) {
    if (!m || id < 0 || id >= m->n_vocab_file) return NULL;
    if (len) *len = m->tok_len[id];
    return (const char *)m->map + m->tok_off[id];
}

/* ---------------------------------------------------------------- whisper tensor set */

enum { T_F32, T_CONV, T_MAT };

typedef struct wt_expect {
    char name[96];
    int64_t ne[4];
    int kind;
} wt_expect;

static void wt_add(wt_expect *e, int *n, const char *name, int64_t ne0, int64_t ne1, int64_t ne2, int kind) {
    wt_expect *x = &e[(*n)++];
    snprintf(x->name, sizeof x->name, "%s", name);
    x->ne[0] = ne0;
    x->ne[1] = ne1;
    x->ne[2] = ne2;
    x->ne[3] = 1;
    x->kind = kind;
}

static void wt_block(wt_expect *e, int *n, const char *prefix, int64_t s, int cross) {
    static const char *attn[] = {"attn", "cross_attn"};
    char b[96];
    for (int a = 0; a <= cross; a++) {
        const char *p = attn[a];
        snprintf(b, sizeof b, "%s.%s_ln.weight", prefix, p); wt_add(e, n, b, s, 1, 1, T_F32);
        snprintf(b, sizeof b, "%s.%s_ln.bias", prefix, p); wt_add(e, n, b, s, 1, 1, T_F32);
        snprintf(b, sizeof b, "%s.%s.query.weight", prefix, p); wt_add(e, n, b, s, s, 1, T_MAT);
        snprintf(b, sizeof b, "%s.%s.query.bias", prefix, p); wt_add(e, n, b, s, 1, 1, T_F32);
        snprintf(b, sizeof b, "%s.%s.key.weight", prefix, p); wt_add(e, n, b, s, s, 1, T_MAT);
        snprintf(b, sizeof b, "%s.%s.value.weight", prefix, p); wt_add(e, n, b, s, s, 1, T_MAT);
        snprintf(b, sizeof b, "%s.%s.value.bias", prefix, p); wt_add(e, n, b, s, 1, 1, T_F32);
        snprintf(b, sizeof b, "%s.%s.out.weight", prefix, p); wt_add(e, n, b, s, s, 1, T_MAT);
        snprintf(b, sizeof b, "%s.%s.out.bias", prefix, p); wt_add(e, n, b, s, 1, 1, T_F32);
    }
    snprintf(b, sizeof b, "%s.mlp_ln.weight", prefix); wt_add(e, n, b, s, 1, 1, T_F32);
    snprintf(b, sizeof b, "%s.mlp_ln.bias", prefix); wt_add(e, n, b, s, 1, 1, T_F32);
    snprintf(b, sizeof b, "%s.mlp.0.weight", prefix); wt_add(e, n, b, s, 4 * s, 1, T_MAT);
    snprintf(b, sizeof b, "%s.mlp.0.bias", prefix); wt_add(e, n, b, 4 * s, 1, 1, T_F32);
    snprintf(b, sizeof b, "%s.mlp.2.weight", prefix); wt_add(e, n, b, 4 * s, s, 1, T_MAT);
    snprintf(b, sizeof b, "%s.mlp.2.bias", prefix); wt_add(e, n, b, s, 1, 1, T_F32);
}

int mp_ggml_bin_check_whisper(const mp_ggml_bin *m, int *complete, mp_error *err) {
    const char *fn = m->path ? m->path : "<memory>";
    *complete = 0;
    if (m->kind != MP_GGML_BIN_WHISPER) return mp_errf(err, "%s: not a whisper model file", fn);
    if (m->n_tensors == 0) return 0;
    const mp_whisper_hparams *h = &m->whisper;
    int64_t s = h->n_audio_state;
    int total = 7 + 15 * h->n_audio_layer + 4 + 24 * h->n_text_layer;
    wt_expect *e = malloc(sizeof *e * (size_t)total);
    if (!e) return mp_errf(err, "%s: out of memory", fn);
    int n = 0;
    wt_add(e, &n, "encoder.positional_embedding", s, h->n_audio_ctx, 1, T_F32);
    wt_add(e, &n, "encoder.conv1.weight", 3, h->n_mels, s, T_CONV);
    wt_add(e, &n, "encoder.conv1.bias", 1, s, 1, T_F32);
    wt_add(e, &n, "encoder.conv2.weight", 3, s, s, T_CONV);
    wt_add(e, &n, "encoder.conv2.bias", 1, s, 1, T_F32);
    wt_add(e, &n, "encoder.ln_post.weight", s, 1, 1, T_F32);
    wt_add(e, &n, "encoder.ln_post.bias", s, 1, 1, T_F32);
    char prefix[64];
    for (int i = 0; i < h->n_audio_layer; i++) {
        snprintf(prefix, sizeof prefix, "encoder.blocks.%d", i);
        wt_block(e, &n, prefix, s, 0);
    }
    wt_add(e, &n, "decoder.positional_embedding", s, h->n_text_ctx, 1, T_F32);
    wt_add(e, &n, "decoder.token_embedding.weight", s, h->n_vocab, 1, T_MAT);
    wt_add(e, &n, "decoder.ln.weight", s, 1, 1, T_F32);
    wt_add(e, &n, "decoder.ln.bias", s, 1, 1, T_F32);
    for (int i = 0; i < h->n_text_layer; i++) {
        snprintf(prefix, sizeof prefix, "decoder.blocks.%d", i);
        wt_block(e, &n, prefix, s, 1);
    }
    int rc = 0, found = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        const mp_ggml_bin_tensor *t = mp_ggml_bin_find(m, e[i].name);
        if (!t) {
            rc = mp_errf(err, "%s: tensor '%s' is missing (the file has %d of the %d tensors these hparams need)", fn,
                         e[i].name, m->n_tensors, total);
            break;
        }
        found++;
        for (int d = 0; d < 4; d++)
            if (t->t.ne[d] != e[i].ne[d]) {
                rc = mp_errf(err, "%s: tensor '%s' has shape [%lld, %lld, %lld, %lld], expected [%lld, %lld, %lld, %lld]",
                             fn, e[i].name, (long long)t->t.ne[0], (long long)t->t.ne[1], (long long)t->t.ne[2],
                             (long long)t->t.ne[3], (long long)e[i].ne[0], (long long)e[i].ne[1],
                             (long long)e[i].ne[2], (long long)e[i].ne[3]);
                break;
            }
        if (rc) break;
        int dt = t->t.dtype;
        int ok = e[i].kind == T_F32    ? dt == MP_F32
                 : e[i].kind == T_CONV ? (dt == MP_F32 || dt == MP_F16 || dt == MP_BF16)
                                       : !(dt == MP_I8 || dt == MP_I16 || dt == MP_I32 || dt == MP_I64 || dt == MP_F64);
        if (!ok)
            rc = mp_errf(err, "%s: tensor '%s' is stored as %s, which a whisper model cannot use there", fn, e[i].name,
                         mp_dtype_name(dt));
    }
    if (rc == 0 && m->n_tensors != found) {
        /* every expected one is present, so something else is there too */
        for (int i = 0; i < m->n_tensors; i++) {
            int known = 0;
            for (int k = 0; k < n && !known; k++) known = !strcmp(e[k].name, m->tensors[i].name);
            if (!known) {
                rc = mp_errf(err, "%s: unknown tensor '%s' in a whisper model", fn, m->tensors[i].name);
                break;
            }
        }
    }
    free(e);
    if (rc == 0) *complete = 1;
    return rc;
}

/* ---------------------------------------------------------------- open / close */

int mp_ggml_bin_open_memory(mp_ggml_bin *m, const void *data, size_t size, const char *name, mp_error *err) {
    memset(m, 0, sizeof *m);
    if (!name) name = "<memory>";
    const uint16_t one = 1;
    if (*(const uint8_t *)&one != 1) return mp_errf(err, "%s: big-endian hosts are not supported", name);
    m->path = strdup(name);
    if (!m->path) return mp_errf(err, "%s: out of memory", name);
    m->map = data;
    m->size = size;
    rd r = {data, size, 0, m->path, err};
    if (size < 4) {
        mp_errf(err, "%s: too short for a ggml model file (%zu bytes)", name, size);
        goto fail;
    }
    uint32_t magic = (uint32_t)peek_i32(data, size, 0);
    if (magic != MP_GGML_FILE_MAGIC) {
        if (!memcmp(data, "GGUF", 4))
            mp_errf(err, "%s: this is a GGUF file, not a legacy whisper.cpp ggml .bin file", name);
        else
            mp_errf(err, "%s: not a whisper.cpp ggml model file (magic 0x%08x, expected 0x%08x)", name, magic,
                    MP_GGML_FILE_MAGIC);
        goto fail;
    }
    m->kind = (mp_ggml_bin_kind)detect(data, size);
    r.pos = 4;
    switch (m->kind) {
    case MP_GGML_BIN_WHISPER:
        if (read_whisper_header(&r, m) || read_filters(&r, m, m->whisper.n_mels) || read_vocab(&r, m)) goto fail;
        break;
    case MP_GGML_BIN_SILERO:
        if (read_silero_header(&r, m)) goto fail;
        break;
    case MP_GGML_BIN_PARAKEET:
        if (read_parakeet_header(&r, m)) goto fail;
        break;
    default:
        mp_errf(err, "%s: ggml magic but an unrecognised header (not a whisper, silero-vad or parakeet model, or a truncated file)",
                name);
        goto fail;
    }
    if (read_tensors(&r, m)) goto fail;
    if (m->kind == MP_GGML_BIN_WHISPER) {
        int complete;
        if (mp_ggml_bin_check_whisper(m, &complete, err)) goto fail;
    }
    return 0;
fail:
    mp_ggml_bin_close(m);
    return -1;
}

int mp_ggml_bin_open(mp_ggml_bin *m, const char *path, mp_error *err) {
    memset(m, 0, sizeof *m);
    mp_mmap f;
    if (mp_mmap_open(&f, path, err)) return -1;
    if (f.size == 0) {
        mp_mmap_close(&f);
        return mp_errf(err, "%s: empty file (0 bytes)", path);
    }
    if (mp_ggml_bin_open_memory(m, f.data, f.size, path, err)) {
        mp_mmap_close(&f);
        return -1;
    }
    m->file = f;
    return 0;
}

void mp_ggml_bin_close(mp_ggml_bin *m) {
    if (!m) return;
    free(m->tensors);
    mp_strindex_free(&m->by_name);
    mp_pool_free(&m->names);
    mp_aligned_free(m->copy_buf);
    mp_aligned_free(m->mel_filters);
    mp_aligned_free(m->parakeet.window);
    mp_aligned_free(m->parakeet.tdt_durations);
    free(m->tok_off);
    free(m->tok_len);
    mp_mmap_close(&m->file);
    free(m->path);
    memset(m, 0, sizeof *m);
}

/* ---------------------------------------------------------------- writers */

static int w_i32(FILE *f, int32_t v) {
    uint8_t b[4] = {(uint8_t)v, (uint8_t)((uint32_t)v >> 8), (uint8_t)((uint32_t)v >> 16), (uint8_t)((uint32_t)v >> 24)};
    return fwrite(b, 1, 4, f) == 4 ? 0 : -1;
}

int mp_ggml_bin_write_whisper_header(FILE *f, const char *name, const mp_whisper_hparams *hp, const float *filters,
                                     int32_t n_mel, int32_t n_fft_bins, int32_t n_vocab_file, const char *const *tok,
                                     const uint32_t *tok_len, mp_error *err) {
    const int32_t h[11] = {hp->n_vocab,      hp->n_audio_ctx,  hp->n_audio_state, hp->n_audio_head,
                           hp->n_audio_layer, hp->n_text_ctx,   hp->n_text_state,  hp->n_text_head,
                           hp->n_text_layer,  hp->n_mels,       hp->ftype};
    int bad = w_i32(f, (int32_t)MP_GGML_FILE_MAGIC);
    for (int i = 0; i < 11; i++) bad |= w_i32(f, h[i]);
    bad |= w_i32(f, n_mel) | w_i32(f, n_fft_bins);
    size_t nf = (size_t)n_mel * (size_t)n_fft_bins;
    if (nf && fwrite(filters, sizeof(float), nf, f) != nf) bad = -1;
    bad |= w_i32(f, n_vocab_file);
    for (int32_t i = 0; i < n_vocab_file; i++) {
        bad |= w_i32(f, (int32_t)tok_len[i]);
        if (tok_len[i] && fwrite(tok[i], 1, tok_len[i], f) != tok_len[i]) bad = -1;
    }
    return bad ? mp_errf(err, "%s: write error", name) : 0;
}

int mp_ggml_bin_write_tensor(FILE *f, const char *name, const char *tensor_name, mp_dtype dt, int n_dims,
                             const int64_t *ne, const void *data, mp_error *err) {
    if (n_dims < 0 || n_dims > 4) return mp_errf(err, "%s: tensor '%s': n_dims %d", name, tensor_name, n_dims);
    int64_t nel = 1;
    for (int i = 0; i < n_dims; i++) nel *= ne[i];
    int64_t row = mp_dtype_row_bytes(dt, n_dims ? ne[0] : 1);
    if (row < 0) return mp_errf(err, "%s: tensor '%s': bad shape for %s", name, tensor_name, mp_dtype_name(dt));
    size_t nbytes = (size_t)row * (size_t)(nel / (n_dims ? ne[0] : 1));
    size_t len = strlen(tensor_name);
    int bad = w_i32(f, n_dims) | w_i32(f, (int32_t)len) | w_i32(f, (int32_t)dt);
    for (int i = 0; i < n_dims; i++) bad |= w_i32(f, (int32_t)ne[i]);
    if (fwrite(tensor_name, 1, len, f) != len || fwrite(data, 1, nbytes, f) != nbytes) bad = -1;
    return bad ? mp_errf(err, "%s: write error", name) : 0;
}
