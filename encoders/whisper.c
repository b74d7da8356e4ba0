/* whisper.c — the Whisper network: encoder over N windows, cross-attention K/V, batched decoder with a
 * self-attention cache (see whisper.h; openai/whisper model.py is the definition). */
#include "encoders/whisper.h"

#include "kernels/ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define WHISPER_LN_EPS 1e-5f

/* ---------------------------------------------------------------- shared pieces */

static void linear(mp_exec *ex, const mp_whisper_linear *l, float *y, const float *x, int64_t rows) {
    mp_matmul(ex, y, l->w.ne[1], x, l->w.ne[0], &l->w, l->b, rows);
}

static void copy_f32(mp_exec *ex, float *dst, const float *src, int64_t n) {
    if (n <= 0) return;
    if (ex->backend == MP_BACKEND_CPU)
        memmove(dst, src, (size_t)n * sizeof(float));
    else
        mp_convert(ex, dst, MP_F32, src, MP_F32, n);
}

/* x += mlp(ln(x)): fc2(gelu(fc1(ln(x)))) */
static void mlp(mp_exec *ex, const mp_whisper_block *b, float *x, float *xb, float *hb, int64_t rows, int64_t d) {
    mp_layernorm(ex, xb, x, b->mlp_ln_w, b->mlp_ln_b, rows, d, WHISPER_LN_EPS);
    linear(ex, &b->fc1, hb, xb, rows);
    mp_gelu(ex, hb, hb, rows * b->fc1.w.ne[1], MP_GELU_ERF);
    linear(ex, &b->fc2, xb, hb, rows);
    mp_add(ex, x, x, xb, rows * d);
}

static mp_attn_params attn_params(int n_q, int n_kv, int n_head, int64_t d, int causal, int64_t offset) {
    mp_attn_params p;
    memset(&p, 0, sizeof p);
    p.n_q = n_q;
    p.n_kv = n_kv;
    p.n_head = p.n_kv_head = n_head;
    p.head_dim = (int)(d / n_head);
    p.q_stride = p.k_stride = p.v_stride = p.o_stride = d;
    p.scale = 1.0f / sqrtf((float)p.head_dim);
    p.causal = causal;
    p.causal_offset = offset;
    return p;
}

static int grow(mp_exec *ex, float **p, size_t n) {
    if (*p) mp_backend_free(ex, *p);
    *p = mp_backend_alloc(ex, n * sizeof(float));
    return *p ? 0 : -1;
}

/* ---------------------------------------------------------------- encoder */

void mp_whisper_enc_state_free(mp_whisper_enc_state *st, mp_exec *ex) {
    float **b[] = {&st->x, &st->xb, &st->q, &st->k, &st->v, &st->att, &st->hb, &st->mel};
    for (size_t i = 0; i < sizeof b / sizeof b[0]; i++)
        if (*b[i]) mp_backend_free(ex, *b[i]);
    memset(st, 0, sizeof *st);
}

static int enc_reserve(const mp_whisper *m, mp_whisper_enc_state *st, mp_exec *ex, int n_win, mp_error *err) {
    if (n_win <= st->cap_win) return 0;
    const size_t W = (size_t)n_win, T = (size_t)m->hp.n_audio_ctx, D = (size_t)m->hp.n_audio_state;
    const size_t F = (size_t)m->n_audio_ff, L = 2 * T;
    const size_t hb = T * F > D * L ? T * F : D * L;
    if (grow(ex, &st->x, W * T * D) || grow(ex, &st->xb, W * T * D) || grow(ex, &st->q, W * T * D) ||
        grow(ex, &st->k, W * T * D) || grow(ex, &st->v, W * T * D) || grow(ex, &st->att, W * T * D) ||
        grow(ex, &st->hb, W * hb) || grow(ex, &st->mel, W * (size_t)m->hp.n_mels * L)) {
        mp_whisper_enc_state_free(st, ex);
        return mp_errf(err, "whisper: out of memory for the encoder activations of %d windows", n_win);
    }
    st->cap_win = n_win;
    return 0;
}

/* x += attn(ln(x)) over n_seq independent sequences of t rows each (encoder self-attention). */
static void enc_attention(mp_exec *ex, const mp_whisper_attn *a, mp_whisper_enc_state *st, int n_head, int n_seq,
                          int64_t t, int64_t d) {
    const int64_t rows = (int64_t)n_seq * t;
    mp_layernorm(ex, st->xb, st->x, a->ln_w, a->ln_b, rows, d, WHISPER_LN_EPS);
    linear(ex, &a->q, st->q, st->xb, rows);
    linear(ex, &a->k, st->k, st->xb, rows);
    linear(ex, &a->v, st->v, st->xb, rows);
    const mp_attn_params p = attn_params((int)t, (int)t, n_head, d, 0, 0);
    for (int s = 0; s < n_seq; s++) {
        const int64_t o = (int64_t)s * t * d;
        mp_attention(ex, st->att + o, st->q + o, st->k + o, st->v + o, &p);
    }
    linear(ex, &a->o, st->xb, st->att, rows);
    mp_add(ex, st->x, st->x, st->xb, rows * d);
}

int mp_whisper_encode(const mp_whisper *m, mp_whisper_enc_state *st, mp_exec *ex, const float *mel, int n_win,
                      float *out, mp_error *err) {
    if (n_win <= 0) return 0;
    if (enc_reserve(m, st, ex, n_win, err)) return -1;
    const int64_t T = m->hp.n_audio_ctx, D = m->hp.n_audio_state, NM = m->hp.n_mels, L = 2 * T;
    if (mp_backend_upload(ex, st->mel, mel, (size_t)n_win * NM * L * sizeof(float), err)) return -1;
    /* stem: two convolutions with GELU, then time-major plus the sinusoidal positions */
    mp_conv1d(ex, st->hb, st->mel, &m->conv1_w, m->conv1_b, n_win, NM, L, 1, 1);
    mp_gelu(ex, st->hb, st->hb, (int64_t)n_win * D * L, MP_GELU_ERF);
    mp_conv1d(ex, st->xb, st->hb, &m->conv2_w, m->conv2_b, n_win, D, L, 2, 1);
    mp_gelu(ex, st->xb, st->xb, (int64_t)n_win * D * T, MP_GELU_ERF);
    for (int w = 0; w < n_win; w++) {
        mp_transpose(ex, st->x + (int64_t)w * T * D, st->xb + (int64_t)w * D * T, D, T);
        mp_add(ex, st->x + (int64_t)w * T * D, st->x + (int64_t)w * T * D, m->enc_pos, T * D);
    }
    for (int l = 0; l < m->hp.n_audio_layer; l++) {
        const mp_whisper_block *b = &m->enc[l];
        enc_attention(ex, &b->attn, st, m->hp.n_audio_head, n_win, T, D);
        mlp(ex, b, st->x, st->xb, st->hb, (int64_t)n_win * T, D);
    }
    if (!out) out = st->x;
    mp_layernorm(ex, out, st->x, m->ln_post_w, m->ln_post_b, (int64_t)n_win * T, D, WHISPER_LN_EPS);
    return mp_exec_status(ex, err);
}

/* ---------------------------------------------------------------- cross-attention K/V */

static int alloc_kv(mp_exec *ex, float **k, float **v, size_t n) {
    *k = mp_backend_alloc(ex, n * sizeof(float));
    *v = mp_backend_alloc(ex, n * sizeof(float));
    return *k && *v ? 0 : -1;
}

int mp_whisper_cross_init(mp_whisper_cross *c, const mp_whisper *m, mp_exec *ex, int n_win, mp_error *err) {
    memset(c, 0, sizeof *c);
    c->n_win = n_win;
    c->n_layer = m->hp.n_text_layer;
    c->n_ctx = m->hp.n_audio_ctx;
    c->d = m->hp.n_text_state;
    int f16 = ex->backend == MP_BACKEND_CPU && mp_cpu_level() >= 2;
    if (f16) {
        c->f16_per = (int64_t)c->d * ((c->n_ctx + 15) / 16 * 16);
        const size_t n = sizeof(mp_f16) * (size_t)c->n_layer * n_win * (size_t)c->f16_per;
        c->f16_k = mp_aligned_alloc(n);
        c->f16_v = mp_aligned_alloc(n);
    }
    if (alloc_kv(ex, &c->k, &c->v, (size_t)c->n_layer * n_win * c->n_ctx * c->d) || (f16 && (!c->f16_k || !c->f16_v))) {
        mp_whisper_cross_free(c, ex);
        return mp_errf(err, "whisper: out of memory for the cross-attention keys/values of %d windows", n_win);
    }
    return 0;
}

void mp_whisper_cross_free(mp_whisper_cross *c, mp_exec *ex) {
    if (c->k) mp_backend_free(ex, c->k);
    if (c->v) mp_backend_free(ex, c->v);
    mp_aligned_free(c->f16_k);
    mp_aligned_free(c->f16_v);
    memset(c, 0, sizeof *c);
}

int mp_whisper_cross_compute(const mp_whisper *m, mp_exec *ex, const float *enc, int n_win, mp_whisper_cross *c,
                             int w0, mp_error *err) {
    if (w0 < 0 || n_win < 0 || w0 + n_win > c->n_win)
        return mp_errf(err, "whisper: cross-attention windows [%d, %d) outside the %d allocated", w0, w0 + n_win,
                       c->n_win);
    const int64_t rows = (int64_t)n_win * c->n_ctx;
    for (int l = 0; l < c->n_layer; l++) {
        const int64_t o = (((int64_t)l * c->n_win + w0) * c->n_ctx) * c->d;
        linear(ex, &m->dec[l].cross.k, c->k + o, enc, rows);
        linear(ex, &m->dec[l].cross.v, c->v + o, enc, rows);
        for (int w = 0; c->f16_k && w < n_win; w++) {
            const int64_t fo = ((int64_t)l * c->n_win + w0 + w) * c->f16_per, wo = o + (int64_t)w * c->n_ctx * c->d;
            mp_attn_pack_f16ctx(ex, c->f16_k + fo, c->f16_v + fo, c->k + wo, c->v + wo, c->n_ctx, c->d, c->d,
                                m->hp.n_text_head, (int)(c->d / m->hp.n_text_head));
        }
    }
    return mp_exec_status(ex, err);
}

/* ---------------------------------------------------------------- self-attention cache */

int mp_whisper_kv_init(mp_whisper_kv *kv, const mp_whisper *m, mp_exec *ex, int n_slots, mp_error *err) {
    memset(kv, 0, sizeof *kv);
    kv->n_slots = n_slots;
    kv->n_layer = m->hp.n_text_layer;
    kv->n_ctx = m->hp.n_text_ctx;
    kv->d = m->hp.n_text_state;
    kv->len = calloc((size_t)(n_slots > 0 ? n_slots : 1), sizeof *kv->len);
    if (alloc_kv(ex, &kv->k, &kv->v, (size_t)n_slots * kv->n_layer * kv->n_ctx * kv->d) || !kv->len) {
        mp_whisper_kv_free(kv, ex);
        return mp_errf(err, "whisper: out of memory for the decoder cache of %d sequences", n_slots);
    }
    return 0;
}

void mp_whisper_kv_free(mp_whisper_kv *kv, mp_exec *ex) {
    if (kv->k) mp_backend_free(ex, kv->k);
    if (kv->v) mp_backend_free(ex, kv->v);
    free(kv->len);
    memset(kv, 0, sizeof *kv);
}

static size_t kv_off(const mp_whisper_kv *kv, int slot, int layer, int pos) {
    return (((size_t)slot * kv->n_layer + layer) * kv->n_ctx + pos) * kv->d;
}

void mp_whisper_kv_copy(mp_whisper_kv *kv, mp_exec *ex, int dst, int src, int n) {
    if (dst == src) return;
    for (int l = 0; l < kv->n_layer; l++) {
        copy_f32(ex, kv->k + kv_off(kv, dst, l, 0), kv->k + kv_off(kv, src, l, 0), (int64_t)n * kv->d);
        copy_f32(ex, kv->v + kv_off(kv, dst, l, 0), kv->v + kv_off(kv, src, l, 0), (int64_t)n * kv->d);
    }
    kv->len[dst] = n;
}

/* ---------------------------------------------------------------- decoder */

void mp_whisper_dec_state_free(mp_whisper_dec_state *st, mp_exec *ex) {
    float **b[] = {&st->x, &st->xb, &st->q, &st->k, &st->v, &st->att, &st->hb, &st->out, &st->logits, &st->qk};
    for (size_t i = 0; i < sizeof b / sizeof b[0]; i++)
        if (*b[i]) mp_backend_free(ex, *b[i]);
    int32_t **d[] = {&st->ids_dev, &st->pos_dev, &st->rows_dev};
    for (int i = 0; i < 3; i++)
        if (*d[i]) mp_backend_free(ex, *d[i]);
    free(st->ids);
    free(st->pos);
    free(st->rows);
    memset(st, 0, sizeof *st);
}

static int dec_reserve(const mp_whisper *m, mp_whisper_dec_state *st, mp_exec *ex, int rows, int n_out, int64_t n_qk,
                       mp_error *err) {
    const size_t D = (size_t)m->hp.n_text_state, F = (size_t)m->n_text_ff, V = (size_t)m->hp.n_vocab;
    if (rows > st->cap_rows) {
        int cap = st->cap_rows ? st->cap_rows : 16;
        while (cap < rows) cap *= 2;
        const size_t R = (size_t)cap;
        if (grow(ex, &st->x, R * D) || grow(ex, &st->xb, R * D) || grow(ex, &st->q, R * D) || grow(ex, &st->k, R * D) ||
            grow(ex, &st->v, R * D) || grow(ex, &st->att, R * D) || grow(ex, &st->hb, R * F))
            goto oom;
        int32_t **d[] = {&st->ids_dev, &st->pos_dev, &st->rows_dev};
        for (int i = 0; i < 3; i++) {
            if (*d[i]) mp_backend_free(ex, *d[i]);
            *d[i] = mp_backend_alloc(ex, R * sizeof(int32_t));
            if (!*d[i]) goto oom;
        }
        int32_t **h[] = {&st->ids, &st->pos, &st->rows};
        for (int i = 0; i < 3; i++) {
            free(*h[i]);
            *h[i] = malloc(R * sizeof(int32_t));
            if (!*h[i]) goto oom;
        }
        st->cap_rows = cap;
    }
    if (n_out > st->cap_out) {
        int cap = st->cap_out ? st->cap_out : 8;
        while (cap < n_out) cap *= 2;
        if (grow(ex, &st->out, (size_t)cap * D) || grow(ex, &st->logits, (size_t)cap * V)) goto oom;
        st->cap_out = cap;
    }
    if (n_qk > st->cap_qk) {
        if (grow(ex, &st->qk, (size_t)n_qk)) goto oom;
        st->cap_qk = n_qk;
    }
    return 0;
oom:
    mp_whisper_dec_state_free(st, ex);
    return mp_errf(err, "whisper: out of memory for the decoder activations of %d rows", rows);
}

/* Scaled cross-attention scores of every head for one sequence: qk[h][n][T] = q_h . k_h^T / sqrt(hd). */
static int cross_scores(const mp_whisper *m, mp_whisper_dec_state *st, mp_exec *ex, const float *q, const float *k,
                        int n, float *host, mp_error *err) {
    const int H = m->hp.n_text_head;
    const int64_t D = m->hp.n_text_state, hd = D / H, T = m->hp.n_audio_ctx;
    mp_gemm_f32(ex, n, T, hd, 1.0f / sqrtf((float)hd), q, D, k, D, 1, 0.0f, st->qk, T, H, hd, hd, (int64_t)n * T);
    return mp_backend_download(ex, host, st->qk, (size_t)H * n * T * sizeof(float), err);
}

int mp_whisper_decode(const mp_whisper *m, mp_whisper_dec_state *st, mp_whisper_kv *kv, mp_exec *ex,
                      const mp_whisper_dec_seq *seqs, int n_seqs, mp_error *err) {
    const int64_t D = m->hp.n_text_state, V = m->hp.n_vocab, Ta = m->hp.n_audio_ctx;
    const int H = m->hp.n_text_head;
    if (n_seqs <= 0) return 0;
    int64_t T = 0, n_qk = 0;
    int n_out = 0;
    for (int s = 0; s < n_seqs; s++) {
        const mp_whisper_dec_seq *q = &seqs[s];
        if (q->slot < 0 || q->slot >= kv->n_slots) return mp_errf(err, "whisper: cache slot %d does not exist", q->slot);
        for (int t = 0; t < s; t++)
            if (seqs[t].slot == q->slot) return mp_errf(err, "whisper: cache slot %d appears twice in one batch", q->slot);
        if (q->n <= 0 || !q->tokens) return mp_errf(err, "whisper: sequence in slot %d has no tokens", q->slot);
        if (kv->len[q->slot] + q->n > kv->n_ctx)
            return mp_errf(err, "whisper: %d tokens do not fit the decoder context of %d", kv->len[q->slot] + q->n,
                           kv->n_ctx);
        for (int i = 0; i < q->n; i++)
            if (q->tokens[i] < 0 || q->tokens[i] >= V)
                return mp_errf(err, "whisper: token id %d is outside the vocabulary of %lld", q->tokens[i], (long long)V);
        if (!q->cross || q->win < 0 || q->win >= q->cross->n_win)
            return mp_errf(err, "whisper: sequence in slot %d has no audio window", q->slot);
        if (q->n_logits < 0 || q->n_logits > q->n || (q->n_logits && !q->logits))
            return mp_errf(err, "whisper: bad logits request for slot %d", q->slot);
        if (q->logit_rows)
            for (int i = 0; i < q->n_logits; i++)
                if (q->logit_rows[i] < 0 || q->logit_rows[i] >= q->n)
                    return mp_errf(err, "whisper: logits row %d outside the %d tokens", q->logit_rows[i], q->n);
        if (q->xqk && (int64_t)H * q->n * Ta > n_qk) n_qk = (int64_t)H * q->n * Ta;
        T += q->n;
        n_out += q->n_logits;
    }
    if (T > (1 << 24)) return mp_errf(err, "whisper: decoder batch of %lld rows is too large", (long long)T);
    if (dec_reserve(m, st, ex, (int)T, n_out, n_qk, err)) return -1;

    /* token and position rows; the rows that produce logits */
    int64_t r = 0;
    int o = 0;
    for (int s = 0; s < n_seqs; s++) {
        const mp_whisper_dec_seq *q = &seqs[s];
        for (int i = 0; i < q->n; i++) {
            st->ids[r + i] = q->tokens[i];
            st->pos[r + i] = kv->len[q->slot] + i;
        }
        for (int i = 0; i < q->n_logits; i++)
            st->rows[o++] = (int32_t)(r + (q->logit_rows ? q->logit_rows[i] : q->n - q->n_logits + i));
        r += q->n;
    }
    if (mp_backend_upload(ex, st->ids_dev, st->ids, (size_t)T * sizeof(int32_t), err) ||
        mp_backend_upload(ex, st->pos_dev, st->pos, (size_t)T * sizeof(int32_t), err) ||
        (n_out && mp_backend_upload(ex, st->rows_dev, st->rows, (size_t)n_out * sizeof(int32_t), err)))
        return -1;

    /* x = token embedding + learned position */
    mp_get_rows(ex, st->x, &m->tok_emb, st->ids_dev, T);
    mp_get_rows(ex, st->xb, &m->dec_pos_t, st->pos_dev, T);
    mp_add(ex, st->x, st->x, st->xb, T * D);

    for (int l = 0; l < m->hp.n_text_layer; l++) {
        const mp_whisper_block *b = &m->dec[l];
        /* causal self-attention over the cache */
        mp_layernorm(ex, st->xb, st->x, b->attn.ln_w, b->attn.ln_b, T, D, WHISPER_LN_EPS);
        linear(ex, &b->attn.q, st->q, st->xb, T);
        linear(ex, &b->attn.k, st->k, st->xb, T);
        linear(ex, &b->attn.v, st->v, st->xb, T);
        r = 0;
        for (int s = 0; s < n_seqs; s++) {
            const mp_whisper_dec_seq *q = &seqs[s];
            const int n0 = kv->len[q->slot];
            float *kc = kv->k + kv_off(kv, q->slot, l, 0), *vc = kv->v + kv_off(kv, q->slot, l, 0);
            copy_f32(ex, kc + (int64_t)n0 * D, st->k + r * D, (int64_t)q->n * D);
            copy_f32(ex, vc + (int64_t)n0 * D, st->v + r * D, (int64_t)q->n * D);
            const mp_attn_params p = attn_params(q->n, n0 + q->n, H, D, 1, n0);
            mp_attention(ex, st->att + r * D, st->q + r * D, kc, vc, &p);
            r += q->n;
        }
        linear(ex, &b->attn.o, st->xb, st->att, T);
        mp_add(ex, st->x, st->x, st->xb, T * D);
        /* cross-attention over the audio window of each sequence */
        mp_layernorm(ex, st->xb, st->x, b->cross.ln_w, b->cross.ln_b, T, D, WHISPER_LN_EPS);
        linear(ex, &b->cross.q, st->q, st->xb, T);
        r = 0;
        for (int s = 0; s < n_seqs; s++) {
            const mp_whisper_dec_seq *q = &seqs[s];
            const mp_whisper_cross *c = q->cross;
            const int64_t co = (((int64_t)l * c->n_win + q->win) * c->n_ctx) * c->d;
            const mp_attn_params p = attn_params(q->n, (int)Ta, H, D, 0, 0);
            if (q->n == 1 && c->f16_k) {
                const int64_t fo = ((int64_t)l * c->n_win + q->win) * c->f16_per;
                mp_attention_f16ctx(ex, st->att + r * D, st->q + r * D, c->f16_k + fo, c->f16_v + fo, Ta, H, p.head_dim,
                                    p.scale);
            } else {
                mp_attention(ex, st->att + r * D, st->q + r * D, c->k + co, c->v + co, &p);
            }
            if (q->xqk && cross_scores(m, st, ex, st->q + r * D, c->k + co, q->n, q->xqk + (int64_t)l * H * q->n * Ta, err))
                return -1;
            r += q->n;
        }
        linear(ex, &b->cross.o, st->xb, st->att, T);
        mp_add(ex, st->x, st->x, st->xb, T * D);
        mlp(ex, b, st->x, st->xb, st->hb, T, D);
    }

    if (n_out > 0) {
        mp_tensor tx;
        int64_t ne[2] = {D, T};
        mp_tensor_init(&tx, MP_F32, 2, ne, st->x);
        tx.backend = ex->backend;
        mp_get_rows(ex, st->out, &tx, st->rows_dev, n_out);
        mp_layernorm(ex, st->xb, st->out, m->dec_ln_w, m->dec_ln_b, n_out, D, WHISPER_LN_EPS);
        mp_matmul(ex, st->logits, V, st->xb, D, &m->tok_emb, NULL, n_out);
    }
    if (mp_exec_status(ex, err)) return -1;
    o = 0;
    for (int s = 0; s < n_seqs; s++) {
        const mp_whisper_dec_seq *q = &seqs[s];
        if (q->n_logits && mp_backend_download(ex, q->logits, st->logits + (int64_t)o * V,
                                               (size_t)q->n_logits * V * sizeof(float), err))
            return -1;
        o += q->n_logits;
    }
    for (int s = 0; s < n_seqs; s++) kv->len[seqs[s].slot] += seqs[s].n;
    return 0;
}
