/* llama.c — the Llama-family decoder forward pass over a batch of sequences (see llama.h). */
#include "llm/llama.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- config */

int mp_llama_config_check(mp_llama_config *c, const char *what, mp_error *err) {
    if (!what) what = "model";
    if (c->n_vocab <= 0 || c->n_embd <= 0 || c->n_ff <= 0 || c->n_layer <= 0 || c->n_head <= 0)
        return mp_errf(err, "%s: bad model sizes (vocab %d, embd %d, ff %d, layers %d, heads %d)", what, c->n_vocab,
                       c->n_embd, c->n_ff, c->n_layer, c->n_head);
    if (c->n_kv_head <= 0) c->n_kv_head = c->n_head;
    if (c->n_head % c->n_kv_head != 0)
        return mp_errf(err, "%s: %d attention heads is not a multiple of %d kv heads", what, c->n_head, c->n_kv_head);
    if (c->head_dim <= 0) {
        if (c->n_embd % c->n_head != 0)
            return mp_errf(err, "%s: embedding size %d is not a multiple of %d heads", what, c->n_embd, c->n_head);
        c->head_dim = c->n_embd / c->n_head;
    }
    if (c->head_dim % 2 != 0) return mp_errf(err, "%s: head size %d is odd", what, c->head_dim);
    if (c->n_rot <= 0) c->n_rot = c->head_dim;
    if (c->n_rot > c->head_dim || c->n_rot % 2 != 0)
        return mp_errf(err, "%s: %d rotary dims do not fit head size %d", what, c->n_rot, c->head_dim);
    if (c->n_layer > 4096 || c->n_head > 4096 || c->head_dim > 4096 || c->n_vocab > (1 << 24))
        return mp_errf(err, "%s: implausible model sizes (layers %d, heads %d, head size %d, vocab %d)", what,
                       c->n_layer, c->n_head, c->head_dim, c->n_vocab);
    if (!(c->norm_eps > 0)) c->norm_eps = 1e-5f;
    if (!(c->rope_theta > 0)) c->rope_theta = 10000.0f;
    if (c->n_ctx_train <= 0) c->n_ctx_train = 2048;
    if (mp_llama_mrope(c)) {
        int sum = 0;
        for (int i = 0; i < 4; i++) {
            if (c->rope_sections[i] < 0) return mp_errf(err, "%s: negative M-RoPE section", what);
            sum += c->rope_sections[i];
        }
        if (sum > c->n_rot / 2)
            return mp_errf(err, "%s: M-RoPE sections add up to %d pairs, the head rotates %d", what, sum, c->n_rot / 2);
    }
    if (c->embedding_multiplier == 0) c->embedding_multiplier = 1.0f;
    if (c->residual_multiplier == 0) c->residual_multiplier = 1.0f;
    if (c->logits_scaling == 0) c->logits_scaling = 1.0f;
    if (c->rope_scaling != MP_ROPE_SCALING_NONE && !(c->rope_factor > 0))
        return mp_errf(err, "%s: rope scaling without a positive factor", what);
    if (c->rope_scaling == MP_ROPE_SCALING_YARN || c->rope_scaling == MP_ROPE_SCALING_LLAMA3) {
        if (c->rope_orig_ctx <= 0) c->rope_orig_ctx = c->n_ctx_train;
    }
    if (c->rope_scaling == MP_ROPE_SCALING_YARN) {
        if (c->yarn_beta_fast == 0) c->yarn_beta_fast = 32.0f;
        if (c->yarn_beta_slow == 0) c->yarn_beta_slow = 1.0f;
    }
    if (c->rope_scaling == MP_ROPE_SCALING_LLAMA3) {
        if (c->rope_low_freq_factor == 0) c->rope_low_freq_factor = 1.0f;
        if (c->rope_high_freq_factor == 0) c->rope_high_freq_factor = 4.0f;
        if (!(c->rope_high_freq_factor > c->rope_low_freq_factor))
            return mp_errf(err, "%s: llama3 rope scaling needs high_freq_factor > low_freq_factor", what);
    }
    return 0;
}

static mp_rope_params rope_params(const mp_llama *m) {
    const mp_llama_config *c = &m->cfg;
    mp_rope_params p;
    memset(&p, 0, sizeof p);
    p.head_dim = c->head_dim;
    p.n_rot = c->n_rot;
    p.mode = c->rope_mode;
    p.theta = c->rope_theta;
    p.freq_scale = 1.0f;
    p.attn_factor = 1.0f;
    p.beta_fast = 32.0f;
    p.beta_slow = 1.0f;
    p.n_ctx_orig = c->rope_orig_ctx > 0 ? c->rope_orig_ctx : c->n_ctx_train;
    memcpy(p.sections, c->rope_sections, sizeof p.sections);
    switch (c->rope_scaling) {
    case MP_ROPE_SCALING_LINEAR:
        p.freq_scale = 1.0f / c->rope_factor;
        break;
    case MP_ROPE_SCALING_LLAMA3:
        p.freq_factors = m->rope_freq_factors;
        break;
    case MP_ROPE_SCALING_YARN:
        p.freq_scale = 1.0f / c->rope_factor;
        p.ext_factor = 1.0f;
        p.beta_fast = c->yarn_beta_fast;
        p.beta_slow = c->yarn_beta_slow;
        /* ggml multiplies attn_factor by 1 + 0.1 ln(factor) itself; an explicit HF attention_factor
         * replaces that product */
        if (c->yarn_attn_factor > 0) p.attn_factor = c->yarn_attn_factor / (1.0f + 0.1f * logf(c->rope_factor));
        break;
    default:
        break;
    }
    return p;
}

/* ---------------------------------------------------------------- building blocks */

void mp_llama_linear_fwd(mp_exec *ex, const mp_llama_linear *lin, float *y, int64_t ldy, const float *x,
                         int64_t ldx, int64_t rows) {
    mp_matmul(ex, y, ldy, x, ldx, &lin->w, lin->b, rows);
}

void mp_llama_ffn_fwd(mp_exec *ex, const mp_llama_layer *L, const mp_llama_config *c, float *y, const float *x,
                      float *hb, float *hb2, int64_t rows) {
    const int64_t d = c->n_embd, f = c->n_ff;
    mp_llama_linear_fwd(ex, &L->w_gate, hb, f, x, d, rows);
    mp_llama_linear_fwd(ex, &L->w_up, hb2, f, x, d, rows);
    mp_swiglu(ex, hb, hb, hb2, rows * f);
    mp_llama_linear_fwd(ex, &L->w_down, y, d, hb, f, rows);
}

/* ---------------------------------------------------------------- state */

void mp_llama_state_free(mp_llama_state *st, mp_exec *ex) {
    float **bufs[] = {&st->x, &st->xb, &st->q, &st->k, &st->v, &st->att, &st->hb, &st->hb2, &st->xo, &st->logits};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (*bufs[i]) mp_backend_free(ex, *bufs[i]);
    if (st->ids_dev) mp_backend_free(ex, st->ids_dev);
    if (st->pos_dev) mp_backend_free(ex, st->pos_dev);
    if (st->rows_dev) mp_backend_free(ex, st->rows_dev);
    free(st->ids);
    free(st->pos);
    free(st->rows);
    free(st->aseqs);
    memset(st, 0, sizeof *st);
}

static int state_reserve(const mp_llama *m, mp_llama_state *st, mp_exec *ex, int rows, int n_out, int n_seqs,
                         mp_error *err) {
    const mp_llama_config *c = &m->cfg;
    if (rows > st->cap_rows) {
        int cap = st->cap_rows ? st->cap_rows : 8;
        while (cap < rows) cap *= 2;
        const size_t R = (size_t)cap;
        const size_t qd = (size_t)c->n_head * c->head_dim, kvd = (size_t)c->n_kv_head * c->head_dim;
        struct { float **p; size_t n; } f[] = {
            {&st->x, R * c->n_embd}, {&st->xb, R * c->n_embd}, {&st->q, R * qd},        {&st->k, R * kvd},
            {&st->v, R * kvd},       {&st->att, R * qd},       {&st->hb, R * c->n_ff}, {&st->hb2, R * c->n_ff},
            {&st->xo, R * (c->n_embd > (int)qd ? (size_t)c->n_embd : qd)},
        };
        for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
            if (*f[i].p) mp_backend_free(ex, *f[i].p);
            *f[i].p = mp_backend_alloc(ex, f[i].n * sizeof(float));
            if (!*f[i].p) goto oom;
        }
        int32_t **d[] = {&st->ids_dev, &st->pos_dev, &st->rows_dev};
        for (int i = 0; i < 3; i++) { /* positions: up to 4 streams per row */
            if (*d[i]) mp_backend_free(ex, *d[i]);
            *d[i] = mp_backend_alloc(ex, (i == 1 ? 4 : 1) * R * sizeof(int32_t));
            if (!*d[i]) goto oom;
        }
        int32_t **h[] = {&st->ids, &st->pos, &st->rows};
        for (int i = 0; i < 3; i++) {
            free(*h[i]);
            *h[i] = malloc((i == 1 ? 4 : 1) * R * sizeof(int32_t));
            if (!*h[i]) goto oom;
        }
        st->cap_rows = cap;
    }
    if (n_out > st->cap_out) {
        int cap = st->cap_out ? st->cap_out : 4;
        while (cap < n_out) cap *= 2;
        if (st->logits) mp_backend_free(ex, st->logits);
        st->logits = mp_backend_alloc(ex, (size_t)cap * c->n_vocab * sizeof(float));
        if (!st->logits) goto oom;
        st->cap_out = cap;
    }
    if (n_seqs > st->cap_seqs) {
        free(st->aseqs);
        st->aseqs = malloc((size_t)n_seqs * sizeof *st->aseqs);
        if (!st->aseqs) goto oom;
        st->cap_seqs = n_seqs;
    }
    return 0;
oom:
    mp_llama_state_free(st, ex);
    return mp_errf(err, "llm: out of memory for the activations of %d rows", rows);
}

/* ---------------------------------------------------------------- forward */

static void copy_rows(mp_exec *ex, float *dst, const float *src, int64_t n) {
    if (ex->backend == MP_BACKEND_CPU)
        memcpy(dst, src, (size_t)n * sizeof(float));
    else
        mp_convert(ex, dst, MP_F32, src, MP_F32, n);
}

static void residual(mp_exec *ex, float *x, float *y, float mult, int64_t n) {
    if (mult != 1.0f) mp_scale(ex, y, y, mult, n);
    mp_add(ex, x, x, y, n);
}

int mp_llama_forward(const mp_llama *m, mp_llama_state *st, mp_kvcache *kv, mp_exec *ex,
                     const mp_llama_seq *seqs, int n_seqs, mp_error *err) {
    const mp_llama_config *c = &m->cfg;
    const int64_t D = c->n_embd, hd = c->head_dim;
    const int64_t qd = (int64_t)c->n_head * hd, kvd = (int64_t)c->n_kv_head * hd;
    if (n_seqs <= 0) return 0;
    if (kv->kv_dim != kvd || kv->n_layer != c->n_layer)
        return mp_errf(err, "llm: the kv cache (%d layers x %d) does not match the model (%d layers x %lld)",
                       kv->n_layer, kv->kv_dim, c->n_layer, (long long)kvd);
    /* validate and count */
    int64_t T = 0;
    int n_out = 0;
    for (int s = 0; s < n_seqs; s++) {
        const mp_llama_seq *q = &seqs[s];
        if (mp_kvcache_seq_len(kv, q->seq) < 0) return mp_errf(err, "llm: sequence slot %d is not open", q->seq);
        for (int t = 0; t < s; t++)
            if (seqs[t].seq == q->seq) return mp_errf(err, "llm: sequence slot %d appears twice in one batch", q->seq);
        if (q->n <= 0) return mp_errf(err, "llm: sequence %d has no items", q->seq);
        for (int i = 0; i < q->n; i++) {
            int32_t id = q->tokens ? q->tokens[i] : -1;
            if (id >= c->n_vocab) return mp_errf(err, "llm: token id %d is outside the vocabulary of %d", id, c->n_vocab);
            if (id < 0 && !q->embd) return mp_errf(err, "llm: item %d of sequence %d has neither a token nor an embedding", i, q->seq);
        }
        if (q->logits && !q->out) return mp_errf(err, "llm: sequence %d asks for logits without an output buffer", q->seq);
        T += q->n;
        n_out += q->logits == 2 ? q->n : q->logits ? 1 : 0;
    }
    if (T > INT32_MAX / 4) return mp_errf(err, "llm: batch of %lld rows is too large", (long long)T);
    for (int s = 0; s < n_seqs; s++)
        if (mp_kvcache_reserve(kv, ex, seqs[s].seq, seqs[s].n, err) < 0) return -1;
    if (state_reserve(m, st, ex, (int)T, n_out, n_seqs, err) < 0) return -1;

    /* host-side row tables: token ids, positions (1 or 4 streams), rows that produce logits */
    const int ps = mp_llama_mrope(c) ? 4 : 1;
    int64_t r = 0;
    int o = 0;
    for (int s = 0; s < n_seqs; s++) {
        const mp_llama_seq *q = &seqs[s];
        int n0 = mp_kvcache_seq_len(kv, q->seq);
        for (int i = 0; i < q->n; i++, r++) {
            st->ids[r] = q->tokens && q->tokens[i] >= 0 ? q->tokens[i] : -1;
            for (int k = 0; k < ps; k++) st->pos[r * ps + k] = q->pos ? q->pos[(int64_t)i * ps + k] : n0 + i;
            if (q->logits == 2 || (q->logits == 1 && i == q->n - 1)) st->rows[o++] = (int32_t)r;
        }
    }
    if (mp_backend_upload(ex, st->ids_dev, st->ids, (size_t)T * sizeof(int32_t), err) < 0 ||
        mp_backend_upload(ex, st->pos_dev, st->pos, (size_t)T * ps * sizeof(int32_t), err) < 0 ||
        (n_out && mp_backend_upload(ex, st->rows_dev, st->rows, (size_t)n_out * sizeof(int32_t), err) < 0))
        return -1;

    /* embeddings: runs of token items through get_rows, embedding items copied */
    r = 0;
    for (int s = 0; s < n_seqs; s++) {
        const mp_llama_seq *q = &seqs[s];
        int i = 0;
        while (i < q->n) {
            int j = i;
            if (st->ids[r + i] >= 0) {
                while (j < q->n && st->ids[r + j] >= 0) j++;
                mp_get_rows(ex, st->x + (r + i) * D, &m->tok_embd, st->ids_dev + r + i, j - i);
            } else {
                while (j < q->n && st->ids[r + j] < 0) j++;
                copy_rows(ex, st->x + (r + i) * D, q->embd + (int64_t)i * D, (int64_t)(j - i) * D);
            }
            i = j;
        }
        r += q->n;
    }
    if (c->embedding_multiplier != 1.0f) mp_scale(ex, st->x, st->x, c->embedding_multiplier, T * D);

    const mp_rope_params rp = rope_params(m);
    const float scale = c->attention_multiplier > 0 ? c->attention_multiplier : 1.0f / sqrtf((float)hd);
    for (int l = 0; l < c->n_layer; l++) {
        const mp_llama_layer *L = &m->layers[l];
        /* attention */
        mp_rmsnorm(ex, st->xb, st->x, L->attn_norm, T, D, c->norm_eps);
        mp_llama_linear_fwd(ex, &L->wq, st->q, qd, st->xb, D, T);
        mp_llama_linear_fwd(ex, &L->wk, st->k, kvd, st->xb, D, T);
        mp_llama_linear_fwd(ex, &L->wv, st->v, kvd, st->xb, D, T);
        mp_rope(ex, st->q, T, c->n_head, qd, st->pos_dev, &rp);
        mp_rope(ex, st->k, T, c->n_kv_head, kvd, st->pos_dev, &rp);
        r = 0;
        for (int s = 0; s < n_seqs; s++) {
            const mp_llama_seq *q = &seqs[s];
            int n0 = mp_kvcache_seq_len(kv, q->seq);
            mp_kvcache_store(kv, ex, l, q->seq, n0, q->n, st->k + r * kvd, st->v + r * kvd, kvd);
            st->aseqs[s].seq = q->seq;
            st->aseqs[s].n_q = q->n;
            st->aseqs[s].n_kv = n0 + q->n;
            st->aseqs[s].q = st->q + r * qd;
            st->aseqs[s].out = st->att + r * qd;
            r += q->n;
        }
        if (mp_kvcache_attention(kv, ex, l, st->aseqs, n_seqs, c->n_head, c->n_kv_head, (int)hd, qd, qd, scale, err) < 0)
            return -1;
        mp_llama_linear_fwd(ex, &L->wo, st->xo, D, st->att, qd, T);
        residual(ex, st->x, st->xo, c->residual_multiplier, T * D);
        /* feed-forward */
        mp_rmsnorm(ex, st->xb, st->x, L->ffn_norm, T, D, c->norm_eps);
        mp_llama_ffn_fwd(ex, L, c, st->xo, st->xb, st->hb, st->hb2, T);
        residual(ex, st->x, st->xo, c->residual_multiplier, T * D);
    }

    if (n_out > 0) {
        const float *xin = st->x;
        if (n_out != T) { /* only the rows that need logits */
            mp_tensor tx;
            int64_t ne[2] = {D, T};
            mp_tensor_init(&tx, MP_F32, 2, ne, st->x);
            tx.backend = ex->backend;
            mp_get_rows(ex, st->xo, &tx, st->rows_dev, n_out);
            xin = st->xo;
        }
        mp_rmsnorm(ex, st->xb, xin, m->out_norm, n_out, D, c->norm_eps);
        mp_llama_linear_fwd(ex, &m->output, st->logits, c->n_vocab, st->xb, D, n_out);
        if (c->logits_scaling != 1.0f)
            mp_scale(ex, st->logits, st->logits, 1.0f / c->logits_scaling, (int64_t)n_out * c->n_vocab);
    }
    if (mp_exec_status(ex, err) < 0) return -1;
    /* logits to the callers' host buffers */
    o = 0;
    for (int s = 0; s < n_seqs; s++) {
        const mp_llama_seq *q = &seqs[s];
        int k = q->logits == 2 ? q->n : q->logits ? 1 : 0;
        if (k && mp_backend_download(ex, q->out, st->logits + (int64_t)o * c->n_vocab,
                                     (size_t)k * c->n_vocab * sizeof(float), err) < 0)
            return -1;
        o += k;
    }
    for (int s = 0; s < n_seqs; s++) mp_kvcache_commit(kv, seqs[s].seq, seqs[s].n);
    return 0;
}

int mp_llama_kvcache_init(const mp_llama *m, mp_kvcache *kv, mp_exec *ex, int max_seqs, int max_ctx,
                          int64_t n_tokens, int block_size, mp_error *err) {
    const mp_llama_config *c = &m->cfg;
    if (max_ctx <= 0) max_ctx = c->n_ctx_train;
    if (n_tokens <= 0) n_tokens = (int64_t)max_ctx * (max_seqs > 0 ? max_seqs : 1);
    return mp_kvcache_init(kv, ex, c->n_layer, c->n_kv_head * c->head_dim, block_size > 0 ? block_size : 16, n_tokens,
                           max_seqs, max_ctx, err);
}

void mp_llama_free(mp_llama *m, mp_exec *ex) {
    if (m->owner_free) m->owner_free(m->owner, ex);
    free(m->layers);
    memset(m, 0, sizeof *m);
}
