/* test_kvcache.c — the paged KV cache: block accounting, prefix sharing with copy-on-write, truncate,
 * a full pool and context overflow as clear errors; and the paged attention against kernels' contiguous
 * mp_attention (an independent implementation) for several sequences with GQA, prefill offsets and odd
 * lengths, identical for 1 and 3 threads. */
#include "test.h"

#include "kernels/ops.h"
#include "llm/kvcache.h"

static unsigned long long rng = 99;

static void fill(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = mp_test_randf(&rng);
}

static void accounting(mp_exec *ex) {
    mp_error err;
    mp_kvcache kv;
    const int L = 2, KVD = 4, BS = 4;
    CHECK(mp_kvcache_init(&kv, ex, L, KVD, BS, 32, 4, 24, &err) == 0); /* 8 blocks */
    CHECK_EQ_INT(mp_kvcache_blocks_free(&kv), 8);
    int a = mp_kvcache_seq_new(&kv, &err);
    CHECK(a >= 0);
    float k[24 * 4], v[24 * 4];
    for (int i = 0; i < 24 * 4; i++) { k[i] = (float)i; v[i] = -(float)i; }
    CHECK(mp_kvcache_reserve(&kv, ex, a, 6, &err) == 0);
    for (int l = 0; l < L; l++) mp_kvcache_store(&kv, ex, l, a, 0, 6, k, v, KVD);
    mp_kvcache_commit(&kv, a, 6);
    CHECK_EQ_INT(mp_kvcache_seq_len(&kv, a), 6);
    CHECK_EQ_INT(mp_kvcache_blocks_free(&kv), 6);
    /* fork the first 6 tokens: blocks are shared */
    int b = mp_kvcache_seq_fork(&kv, a, 6, &err);
    CHECK(b >= 0);
    CHECK_EQ_INT(mp_kvcache_blocks_free(&kv), 6);
    CHECK(kv.seqs[b].blocks[0] == kv.seqs[a].blocks[0] && kv.seqs[b].blocks[1] == kv.seqs[a].blocks[1]);
    /* appending to b copies the shared, partly filled second block; a keeps its data */
    CHECK(mp_kvcache_reserve(&kv, ex, b, 1, &err) == 0);
    CHECK(kv.seqs[b].blocks[1] != kv.seqs[a].blocks[1]);
    CHECK(kv.seqs[b].blocks[0] == kv.seqs[a].blocks[0]);
    float nk[4] = {100, 101, 102, 103}, nv[4] = {7, 7, 7, 7};
    for (int l = 0; l < L; l++) mp_kvcache_store(&kv, ex, l, b, 6, 1, nk, nv, KVD);
    mp_kvcache_commit(&kv, b, 1);
    CHECK_EQ_INT(mp_kvcache_blocks_free(&kv), 5);
    for (int l = 0; l < L; l++)
        for (int i = 0; i < 6; i++) {
            CHECK(kv.k[mp_kvcache_row(&kv, l, b, i)] == (float)(i * 4)); /* copied prefix */
            CHECK(kv.v[mp_kvcache_row(&kv, l, a, i) + 1] == -(float)(i * 4 + 1));
        }
    CHECK(kv.k[mp_kvcache_row(&kv, 1, b, 6)] == 100.0f);
    /* a was not touched by b's write: a's slot 6 is not reserved, but its block's slot 5 is intact */
    CHECK(kv.k[mp_kvcache_row(&kv, 1, a, 5) + 3] == 23.0f);
    /* full pool */
    int c = mp_kvcache_seq_new(&kv, &err);
    int rc = mp_kvcache_reserve(&kv, ex, c, 24, &err);
    CHECKF(rc < 0 && strstr(err.msg, "kv cache full"), "'%s'", err.msg);
    /* context overflow */
    rc = mp_kvcache_reserve(&kv, ex, a, 19, &err);
    CHECKF(rc < 0 && strstr(err.msg, "context overflow"), "'%s'", err.msg);
    /* truncate frees whole blocks; free returns the rest; shared blocks survive until the last user */
    CHECK(mp_kvcache_seq_truncate(&kv, b, 3, &err) == 0);
    CHECK_EQ_INT(mp_kvcache_blocks_free(&kv), 6);
    mp_kvcache_seq_free(&kv, a);
    CHECK_EQ_INT(mp_kvcache_blocks_free(&kv), 7); /* block 0 still used by b */
    mp_kvcache_seq_free(&kv, b);
    mp_kvcache_seq_free(&kv, c);
    CHECK_EQ_INT(mp_kvcache_blocks_free(&kv), 8);
    /* slots */
    int ids[4];
    for (int i = 0; i < 4; i++) ids[i] = mp_kvcache_seq_new(&kv, &err);
    rc = mp_kvcache_seq_new(&kv, &err);
    CHECKF(rc < 0 && strstr(err.msg, "sequence slots"), "'%s'", err.msg);
    (void)ids;
    mp_kvcache_free(&kv, ex);
}

/* paged attention == mp_attention over the same rows laid out contiguously */
static void attention(mp_exec *ex1, mp_exec *ex3) {
    mp_error err;
    const int H = 6, KVH = 2, HD = 20, KVD = KVH * HD, L = 2;
    const int n_seq = 3;
    const int prev[3] = {0, 13, 5}, nq[3] = {7, 1, 9}; /* cached tokens before, new queries */
    mp_kvcache kv;
    CHECK(mp_kvcache_init(&kv, ex1, L, KVD, 4, 200, 4, 64, &err) == 0);
    int seq[3];
    float *K[3], *V[3], *Q[3], *O1[3], *O3[3], *R[3];
    for (int s = 0; s < n_seq; s++) {
        int n = prev[s] + nq[s];
        seq[s] = mp_kvcache_seq_new(&kv, &err);
        K[s] = malloc(sizeof(float) * (size_t)n * KVD);
        V[s] = malloc(sizeof(float) * (size_t)n * KVD);
        Q[s] = malloc(sizeof(float) * (size_t)nq[s] * H * HD);
        O1[s] = calloc((size_t)nq[s] * H * HD, sizeof(float));
        O3[s] = calloc((size_t)nq[s] * H * HD, sizeof(float));
        R[s] = calloc((size_t)nq[s] * H * HD, sizeof(float));
        fill(K[s], (size_t)n * KVD);
        fill(V[s], (size_t)n * KVD);
        fill(Q[s], (size_t)nq[s] * H * HD);
    }
    /* interleave the sequences' appends so their blocks are not contiguous */
    for (int step = 0; step < 20; step++)
        for (int s = 0; s < n_seq; s++) {
            int n = prev[s] + nq[s], have = mp_kvcache_seq_len(&kv, seq[s]);
            if (have >= n) continue;
            int take = 2 < n - have ? 2 : n - have;
            CHECK(mp_kvcache_reserve(&kv, ex1, seq[s], take, &err) == 0);
            mp_kvcache_store(&kv, ex1, 1, seq[s], have, take, K[s] + (size_t)have * KVD, V[s] + (size_t)have * KVD, KVD);
            mp_kvcache_commit(&kv, seq[s], take);
        }
    mp_kv_attn_seq a[3];
    const float scale = 0.3f;
    for (int s = 0; s < n_seq; s++) a[s] = (mp_kv_attn_seq){seq[s], nq[s], prev[s] + nq[s], Q[s], O1[s]};
    CHECK(mp_kvcache_attention(&kv, ex1, 1, a, n_seq, H, KVH, HD, H * HD, H * HD, scale, &err) == 0);
    for (int s = 0; s < n_seq; s++) a[s].out = O3[s];
    CHECK(mp_kvcache_attention(&kv, ex3, 1, a, n_seq, H, KVH, HD, H * HD, H * HD, scale, &err) == 0);
    for (int s = 0; s < n_seq; s++) {
        mp_attn_params p;
        memset(&p, 0, sizeof p);
        p.n_q = nq[s];
        p.n_kv = prev[s] + nq[s];
        p.n_head = H;
        p.n_kv_head = KVH;
        p.head_dim = HD;
        p.q_stride = p.o_stride = H * HD;
        p.k_stride = p.v_stride = KVD;
        p.scale = scale;
        p.causal = 1;
        p.causal_offset = prev[s];
        mp_attention(ex1, R[s], Q[s], K[s], V[s], &p);
        CHECK_ARRAY_NEAR(O1[s], R[s], nq[s] * H * HD, 2e-6);
        CHECKF(!memcmp(O1[s], O3[s], sizeof(float) * (size_t)nq[s] * H * HD), "sequence %d: 1 and 3 threads differ", s);
        free(K[s]); free(V[s]); free(Q[s]); free(O1[s]); free(O3[s]); free(R[s]);
    }
    /* bad request */
    mp_kv_attn_seq bad = {seq[0], 5, 100, NULL, NULL};
    int rc = mp_kvcache_attention(&kv, ex1, 0, &bad, 1, H, KVH, HD, H * HD, H * HD, scale, &err);
    CHECKF(rc < 0 && strstr(err.msg, "bad attention request"), "'%s'", err.msg);
    mp_kvcache_free(&kv, ex1);
}

int main(void) {
    mp_error err;
    mp_threadpool *tp3 = mp_threadpool_create(3);
    mp_exec ex1, ex3;
    CHECK(mp_exec_init(&ex1, MP_BACKEND_CPU, NULL, 1 << 20, &err) == 0);
    CHECK(mp_exec_init(&ex3, MP_BACKEND_CPU, tp3, 1 << 20, &err) == 0);
    accounting(&ex1);
    attention(&ex1, &ex3);
    mp_exec_free(&ex1);
    mp_exec_free(&ex3);
    mp_threadpool_free(tp3);
    return mp_test_result("test_kvcache");
}
