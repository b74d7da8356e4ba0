/* kvcache.c — paged KV cache: block pool, per-sequence block tables, prefix sharing, attention. */
#include "llm/kvcache.h"

#include "kernels/ops.h"

#include <stdlib.h>
#include <string.h>

int mp_kvcache_init(mp_kvcache *kv, mp_exec *ex, int n_layer, int kv_dim, int block_size, int64_t n_tokens,
                    int max_seqs, int max_ctx, mp_error *err) {
    memset(kv, 0, sizeof *kv);
    if (n_layer <= 0 || kv_dim <= 0 || block_size <= 0 || n_tokens <= 0 || max_seqs <= 0 || max_ctx <= 0)
        return mp_errf(err, "kv cache: bad sizes (layers %d, kv_dim %d, block %d, tokens %lld, seqs %d, ctx %d)",
                       n_layer, kv_dim, block_size, (long long)n_tokens, max_seqs, max_ctx);
    int64_t nb = (n_tokens + block_size - 1) / block_size;
    if (nb > INT32_MAX / 2) return mp_errf(err, "kv cache: %lld tokens is too many", (long long)n_tokens);
    kv->n_layer = n_layer;
    kv->kv_dim = kv_dim;
    kv->block_size = block_size;
    kv->n_blocks = (int)nb;
    kv->max_seqs = max_seqs;
    kv->max_ctx = max_ctx;
    kv->backend = ex->backend;
    size_t bytes = (size_t)n_layer * (size_t)nb * (size_t)block_size * (size_t)kv_dim * sizeof(float);
    kv->k = mp_backend_alloc(ex, bytes);
    kv->v = mp_backend_alloc(ex, bytes);
    kv->refcnt = calloc((size_t)nb, sizeof(int32_t));
    kv->free_ids = malloc((size_t)nb * sizeof(int32_t));
    kv->seqs = calloc((size_t)max_seqs, sizeof(mp_kvseq));
    if (!kv->k || !kv->v || !kv->refcnt || !kv->free_ids || !kv->seqs) {
        mp_kvcache_free(kv, ex);
        return mp_errf(err, "kv cache: out of memory allocating 2 x %.1f MiB", (double)bytes / 1048576.0);
    }
    /* pop order: lowest block first */
    for (int i = 0; i < kv->n_blocks; i++) kv->free_ids[i] = kv->n_blocks - 1 - i;
    kv->n_free = kv->n_blocks;
    return 0;
}

void mp_kvcache_free(mp_kvcache *kv, mp_exec *ex) {
    if (kv->k) mp_backend_free(ex, kv->k);
    if (kv->v) mp_backend_free(ex, kv->v);
    if (kv->seqs)
        for (int i = 0; i < kv->max_seqs; i++) free(kv->seqs[i].blocks);
    free(kv->seqs);
    free(kv->refcnt);
    free(kv->free_ids);
    memset(kv, 0, sizeof *kv);
}

int mp_kvcache_blocks_free(const mp_kvcache *kv) { return kv->n_free; }

int mp_kvcache_seq_len(const mp_kvcache *kv, int seq) {
    if (seq < 0 || seq >= kv->max_seqs || !kv->seqs[seq].in_use) return -1;
    return kv->seqs[seq].n;
}

static int valid_seq(const mp_kvcache *kv, int seq) {
    return seq >= 0 && seq < kv->max_seqs && kv->seqs[seq].in_use;
}

int mp_kvcache_seq_new(mp_kvcache *kv, mp_error *err) {
    for (int i = 0; i < kv->max_seqs; i++)
        if (!kv->seqs[i].in_use) {
            mp_kvseq *s = &kv->seqs[i];
            s->in_use = 1;
            s->n = 0;
            s->n_blocks = 0;
            return i;
        }
    return mp_errf(err, "kv cache: all %d sequence slots are in use", kv->max_seqs);
}

static void release_block(mp_kvcache *kv, int b) {
    if (--kv->refcnt[b] == 0) kv->free_ids[kv->n_free++] = b;
}

static int grow_table(mp_kvseq *s, int need) {
    if (need <= s->cap_blocks) return 0;
    int nc = s->cap_blocks ? s->cap_blocks : 8;
    while (nc < need) nc *= 2;
    int32_t *nb = realloc(s->blocks, (size_t)nc * sizeof(int32_t));
    if (!nb) return -1;
    s->blocks = nb;
    s->cap_blocks = nc;
    return 0;
}

int mp_kvcache_seq_fork(mp_kvcache *kv, int src, int n_prefix, mp_error *err) {
    if (!valid_seq(kv, src)) return mp_errf(err, "kv cache: fork from unknown sequence %d", src);
    if (n_prefix < 0 || n_prefix > kv->seqs[src].n)
        return mp_errf(err, "kv cache: fork of %d tokens from a sequence of %d", n_prefix, kv->seqs[src].n);
    int id = mp_kvcache_seq_new(kv, err);
    if (id < 0) return -1;
    mp_kvseq *d = &kv->seqs[id], *s = &kv->seqs[src];
    int nb = (n_prefix + kv->block_size - 1) / kv->block_size;
    if (grow_table(d, nb) < 0) {
        d->in_use = 0;
        return mp_errf(err, "kv cache: out of memory for a block table");
    }
    for (int i = 0; i < nb; i++) {
        d->blocks[i] = s->blocks[i];
        kv->refcnt[s->blocks[i]]++;
    }
    d->n_blocks = nb;
    d->n = n_prefix;
    return id;
}

void mp_kvcache_seq_free(mp_kvcache *kv, int seq) {
    if (!valid_seq(kv, seq)) return;
    mp_kvseq *s = &kv->seqs[seq];
    for (int i = 0; i < s->n_blocks; i++) release_block(kv, s->blocks[i]);
    s->n_blocks = 0;
    s->n = 0;
    s->in_use = 0;
}

int mp_kvcache_seq_truncate(mp_kvcache *kv, int seq, int n, mp_error *err) {
    if (!valid_seq(kv, seq)) return mp_errf(err, "kv cache: truncate of unknown sequence %d", seq);
    mp_kvseq *s = &kv->seqs[seq];
    if (n < 0 || n > s->n) return mp_errf(err, "kv cache: truncate to %d tokens of a sequence of %d", n, s->n);
    int nb = (n + kv->block_size - 1) / kv->block_size;
    for (int i = nb; i < s->n_blocks; i++) release_block(kv, s->blocks[i]);
    s->n_blocks = nb;
    s->n = n;
    return 0;
}

/* Backend-neutral copy of n floats inside backend memory. */
static void copy_floats(mp_kvcache *kv, mp_exec *ex, float *dst, const float *src, size_t n) {
    if (kv->backend == MP_BACKEND_CPU)
        memcpy(dst, src, n * sizeof(float));
    else
        mp_convert(ex, dst, MP_F32, src, MP_F32, (int64_t)n);
}

static void copy_block(mp_kvcache *kv, mp_exec *ex, int dst, int src) {
    size_t per = (size_t)kv->block_size * (size_t)kv->kv_dim;
    for (int l = 0; l < kv->n_layer; l++) {
        size_t od = ((size_t)l * kv->n_blocks + (size_t)dst) * per, os = ((size_t)l * kv->n_blocks + (size_t)src) * per;
        copy_floats(kv, ex, kv->k + od, kv->k + os, per);
        copy_floats(kv, ex, kv->v + od, kv->v + os, per);
    }
}

int mp_kvcache_reserve(mp_kvcache *kv, mp_exec *ex, int seq, int n_new, mp_error *err) {
    if (!valid_seq(kv, seq)) return mp_errf(err, "kv cache: unknown sequence %d", seq);
    mp_kvseq *s = &kv->seqs[seq];
    if (n_new < 0) return mp_errf(err, "kv cache: negative token count %d", n_new);
    if ((int64_t)s->n + n_new > kv->max_ctx)
        return mp_errf(err, "context overflow: sequence %d would hold %lld tokens, the context is %d", seq,
                       (long long)s->n + n_new, kv->max_ctx);
    int need = (s->n + n_new + kv->block_size - 1) / kv->block_size;
    int cow = 0; /* the partially filled last block is shared and will be written */
    if (n_new > 0 && s->n % kv->block_size != 0 && kv->refcnt[s->blocks[(s->n - 1) / kv->block_size]] > 1) cow = 1;
    int extra = need - s->n_blocks + cow;
    if (extra > kv->n_free)
        return mp_errf(err, "kv cache full: sequence %d needs %d more blocks of %d tokens, %d are free", seq, extra,
                       kv->block_size, kv->n_free);
    if (grow_table(s, need) < 0) return mp_errf(err, "kv cache: out of memory for a block table");
    if (cow) {
        int li = (s->n - 1) / kv->block_size, old = s->blocks[li];
        int nb = kv->free_ids[--kv->n_free];
        kv->refcnt[nb] = 1;
        copy_block(kv, ex, nb, old);
        release_block(kv, old);
        s->blocks[li] = nb;
    }
    while (s->n_blocks < need) {
        int nb = kv->free_ids[--kv->n_free];
        kv->refcnt[nb] = 1;
        s->blocks[s->n_blocks++] = nb;
    }
    return 0;
}

void mp_kvcache_commit(mp_kvcache *kv, int seq, int n_new) {
    if (valid_seq(kv, seq)) kv->seqs[seq].n += n_new;
}

void mp_kvcache_store(mp_kvcache *kv, mp_exec *ex, int layer, int seq, int start, int n, const float *k,
                      const float *v, int64_t stride) {
    const int bs = kv->block_size;
    int i = 0;
    while (i < n) {
        int idx = start + i;
        int run = bs - idx % bs; /* rows left in this block */
        if (run > n - i) run = n - i;
        size_t off = mp_kvcache_row(kv, layer, seq, idx);
        if (stride == kv->kv_dim) {
            copy_floats(kv, ex, kv->k + off, k + (size_t)i * stride, (size_t)run * kv->kv_dim);
            copy_floats(kv, ex, kv->v + off, v + (size_t)i * stride, (size_t)run * kv->kv_dim);
        } else {
            for (int r = 0; r < run; r++) {
                copy_floats(kv, ex, kv->k + off + (size_t)r * kv->kv_dim, k + (size_t)(i + r) * stride, kv->kv_dim);
                copy_floats(kv, ex, kv->v + off + (size_t)r * kv->kv_dim, v + (size_t)(i + r) * stride, kv->kv_dim);
            }
        }
        i += run;
    }
}

/* ---------------------------------------------------------------- attention */

/* Causal attention of one sequence's n_q queries over its n_kv cached keys (the last n_q are its own). */
static mp_attn_params seq_attn_params(const mp_kvcache *kv, const mp_kv_attn_seq *s, int n_kv, int n_head,
                                      int n_kv_head, int head_dim, int64_t q_stride, int64_t o_stride, float scale) {
    mp_attn_params p;
    memset(&p, 0, sizeof p);
    p.n_q = s->n_q;
    p.n_kv = n_kv;
    p.n_head = n_head;
    p.n_kv_head = n_kv_head;
    p.head_dim = head_dim;
    p.q_stride = q_stride;
    p.k_stride = p.v_stride = kv->kv_dim;
    p.o_stride = o_stride;
    p.scale = scale;
    p.causal = 1;
    p.causal_offset = n_kv - s->n_q;
    return p;
}

static int attention_gather(mp_kvcache *kv, mp_exec *ex, int layer, const mp_kv_attn_seq *s, int n_head,
                            int n_kv_head, int head_dim, int64_t q_stride, int64_t o_stride, float scale,
                            mp_error *err) {
    /* Gather the sequence's rows into contiguous buffers with get_rows over the layer's pool. */
    const int n = s->n_kv;
    int32_t *ids = malloc((size_t)n * sizeof(int32_t));
    int32_t *dids = mp_backend_alloc(ex, (size_t)n * sizeof(int32_t));
    float *kb = mp_backend_alloc(ex, (size_t)n * kv->kv_dim * sizeof(float));
    float *vb = mp_backend_alloc(ex, (size_t)n * kv->kv_dim * sizeof(float));
    int rc = 0;
    if (!ids || !dids || !kb || !vb) {
        rc = mp_errf(err, "kv cache: out of memory gathering %d rows", n);
        goto done;
    }
    const mp_kvseq *ks = &kv->seqs[s->seq];
    for (int j = 0; j < n; j++) ids[j] = ks->blocks[j / kv->block_size] * kv->block_size + j % kv->block_size;
    if (mp_backend_upload(ex, dids, ids, (size_t)n * sizeof(int32_t), err) < 0) {
        rc = -1;
        goto done;
    }
    mp_tensor tk, tv;
    int64_t ne[2] = {kv->kv_dim, (int64_t)kv->n_blocks * kv->block_size};
    size_t lo = (size_t)layer * kv->n_blocks * kv->block_size * kv->kv_dim;
    mp_tensor_init(&tk, MP_F32, 2, ne, kv->k + lo);
    mp_tensor_init(&tv, MP_F32, 2, ne, kv->v + lo);
    tk.backend = tv.backend = kv->backend;
    mp_get_rows(ex, kb, &tk, dids, n);
    mp_get_rows(ex, vb, &tv, dids, n);
    mp_attn_params p = seq_attn_params(kv, s, n, n_head, n_kv_head, head_dim, q_stride, o_stride, scale);
    mp_attention(ex, s->out, s->q, kb, vb, &p);
    rc = mp_exec_status(ex, err);
done:
    free(ids);
    if (dids) mp_backend_free(ex, dids);
    if (kb) mp_backend_free(ex, kb);
    if (vb) mp_backend_free(ex, vb);
    return rc;
}

int mp_kvcache_attention(mp_kvcache *kv, mp_exec *ex, int layer, const mp_kv_attn_seq *seqs, int n_seqs,
                         int n_head, int n_kv_head, int head_dim, int64_t q_stride, int64_t o_stride,
                         float scale, mp_error *err) {
    if (n_kv_head <= 0 || n_head % n_kv_head != 0 || n_kv_head * head_dim != kv->kv_dim)
        return mp_errf(err, "kv cache: %d heads / %d kv heads of %d do not fit kv_dim %d", n_head, n_kv_head,
                       head_dim, kv->kv_dim);
    for (int i = 0; i < n_seqs; i++) {
        const mp_kv_attn_seq *s = &seqs[i];
        if (!valid_seq(kv, s->seq) || s->n_q < 0 || s->n_kv < s->n_q ||
            s->n_kv > kv->seqs[s->seq].n_blocks * kv->block_size)
            return mp_errf(err, "kv cache: bad attention request (seq %d, %d queries over %d keys)", s->seq, s->n_q,
                           s->n_kv);
    }
    const size_t lo = (size_t)layer * kv->n_blocks * kv->block_size * kv->kv_dim;
    for (int i = 0; i < n_seqs; i++) {
        const mp_kv_attn_seq *s = &seqs[i];
        if (s->n_q == 0) continue;
        if (kv->backend != MP_BACKEND_CPU) { /* the block table lives on the host: gather the rows */
            if (attention_gather(kv, ex, layer, s, n_head, n_kv_head, head_dim, q_stride, o_stride, scale, err) < 0)
                return -1;
            continue;
        }
        mp_attn_params p = seq_attn_params(kv, s, s->n_kv, n_head, n_kv_head, head_dim, q_stride, o_stride, scale);
        p.kv_block_table = kv->seqs[s->seq].blocks;
        p.kv_block_size = kv->block_size;
        mp_attention(ex, s->out, s->q, kv->k + lo, kv->v + lo, &p);
    }
    return 0;
}
