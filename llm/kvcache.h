/* kvcache.h — paged key/value cache for the decoder.
 *
 * Memory is a pool of fixed-size blocks (block_size token slots each, for every layer). A sequence owns
 * a list of blocks (its block table); it grows a block at a time, is freed whole or truncated, and can
 * be forked from another sequence so that both share the blocks of a common prefix (reference counted;
 * a shared block is copied before it is written: copy-on-write).
 *
 * Layout in backend memory (F32): for layer l, block b, slot s the key row of kv_dim floats is at
 *   k + ((l * n_blocks + b) * block_size + s) * kv_dim
 * (same for v), so the block_size rows of one block are contiguous.
 *
 * A cache index is the order in which tokens were appended to a sequence; causal attention uses it.
 * The RoPE position of a token is separate (explicit per item in the forward pass).
 */
#ifndef MP_KVCACHE_H
#define MP_KVCACHE_H

#include "kernels/mp.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mp_kvseq {
    int in_use;
    int n;          /* tokens stored */
    int n_blocks;   /* blocks in the table */
    int cap_blocks;
    int32_t *blocks;
} mp_kvseq;

typedef struct mp_kvcache {
    int n_layer, kv_dim, block_size, n_blocks, max_seqs, max_ctx;
    mp_backend backend;
    float *k, *v;      /* backend memory */
    int32_t *refcnt;   /* per block */
    int32_t *free_ids; /* stack of free blocks */
    int n_free;
    mp_kvseq *seqs;
} mp_kvcache;

/* n_tokens: total token slots in the pool (rounded up to blocks). max_ctx: most tokens per sequence. */
int mp_kvcache_init(mp_kvcache *kv, mp_exec *ex, int n_layer, int kv_dim, int block_size, int64_t n_tokens,
                    int max_seqs, int max_ctx, mp_error *err);
void mp_kvcache_free(mp_kvcache *kv, mp_exec *ex);

/* A new empty sequence; returns its id or -1 (err) when all max_seqs slots are used. */
int mp_kvcache_seq_new(mp_kvcache *kv, mp_error *err);
/* A new sequence that shares the first n_prefix tokens of src (n_prefix <= src length). */
int mp_kvcache_seq_fork(mp_kvcache *kv, int src, int n_prefix, mp_error *err);
void mp_kvcache_seq_free(mp_kvcache *kv, int seq);
/* Drop tokens at cache indices >= n. */
int mp_kvcache_seq_truncate(mp_kvcache *kv, int seq, int n, mp_error *err);
int mp_kvcache_seq_len(const mp_kvcache *kv, int seq);

/* Make room for n_new more tokens of seq (allocating blocks, copying a shared last block before it is
 * written). Does not change the length. Fails with a clear error on context overflow or a full pool. */
int mp_kvcache_reserve(mp_kvcache *kv, mp_exec *ex, int seq, int n_new, mp_error *err);
/* After the rows were written: the sequence now holds n_new more tokens. */
void mp_kvcache_commit(mp_kvcache *kv, int seq, int n_new);

/* Where the key/value row of cache index idx of seq lives for layer l (idx < reserved length). */
static inline size_t mp_kvcache_row(const mp_kvcache *kv, int layer, int seq, int idx) {
    const mp_kvseq *s = &kv->seqs[seq];
    int b = s->blocks[idx / kv->block_size];
    return (((size_t)layer * (size_t)kv->n_blocks + (size_t)b) * (size_t)kv->block_size +
            (size_t)(idx % kv->block_size)) * (size_t)kv->kv_dim;
}

/* Store n rows (row stride `stride` floats) of keys and values for cache indices start..start+n-1. */
void mp_kvcache_store(mp_kvcache *kv, mp_exec *ex, int layer, int seq, int start, int n, const float *k,
                      const float *v, int64_t stride);

/* Blocks in use / free (for schedulers and tests). */
int mp_kvcache_blocks_free(const mp_kvcache *kv);

/* One sequence's share of a batched attention call. */
typedef struct mp_kv_attn_seq {
    int seq;          /* cache slot */
    int n_q;          /* query rows (the newest n_q tokens of the sequence) */
    int n_kv;         /* cache indices 0..n_kv-1 are visible (n_kv >= n_q) */
    const float *q;   /* [n_q][q_stride] */
    float *out;       /* [n_q][o_stride] */
} mp_kv_attn_seq;

/* Causal attention of every listed sequence over its own cache for layer `layer`:
 *   out[i][h] = softmax_j(scale * q[i][h] . K[j][h/g], j <= i + n_kv - n_q) . V[j][h/g]
 * with g = n_head / n_kv_head: one mp_attention per sequence, reading the paged blocks through the
 * sequence's block table on the CPU; other backends gather the blocks into contiguous rows first. A
 * sequence's result does not depend on the other sequences of the batch. */
int mp_kvcache_attention(mp_kvcache *kv, mp_exec *ex, int layer, const mp_kv_attn_seq *seqs, int n_seqs,
                         int n_head, int n_kv_head, int head_dim, int64_t q_stride, int64_t o_stride,
                         float scale, mp_error *err);

#ifdef __cplusplus
}
#endif
#endif
