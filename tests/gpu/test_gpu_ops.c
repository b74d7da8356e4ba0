/* test_gpu_ops.c — CUDA vs CPU parity for elementwise, norms, softmax, RoPE, attention, convolutions,
 * argmax/top-k, transpose and concat, on odd shapes (label gpu; skipped without a CUDA device).
 * The CPU ops are themselves tested against textbook double references (tests/kernels_ops), so here the
 * CPU op is the reference; tolerances follow from the GPU arithmetic and are stated at each check. */
#include <math.h>

#include "gpu_test.h"

static gpu_ctx G;

static const int64_t sizes[] = {1, 7, 33, 255, 4097, 100003};
#define NSIZES (int)(sizeof sizes / sizeof sizes[0])

/* Runs a float->float op on CPU (host buffers) and GPU (device copies) and compares. */
typedef void (*ew_fn)(mp_exec *ex, float *y, const float *a, const float *b, int64_t n, int which);

static void ew_call(mp_exec *ex, float *y, const float *a, const float *b, int64_t n, int which) {
    switch (which) {
    case 0: mp_add(ex, y, a, b, n); break;
    case 1: mp_mul(ex, y, a, b, n); break;
    case 2: mp_scale(ex, y, a, -0.37f, n); break;
    case 3: mp_gelu(ex, y, a, n, MP_GELU_ERF); break;
    case 4: mp_gelu(ex, y, a, n, MP_GELU_TANH); break;
    case 5: mp_gelu(ex, y, a, n, MP_GELU_QUICK); break;
    case 6: mp_silu(ex, y, a, n); break;
    case 7: mp_swiglu(ex, y, a, b, n); break;
    }
}

static void test_elementwise(void) {
    static const char *names[] = {"add", "mul", "scale", "gelu_erf", "gelu_tanh", "gelu_quick", "silu", "swiglu"};
    for (int si = 0; si < NSIZES; si++) {
        const int64_t n = sizes[si];
        float *a = rand_f32(&G, n, 8.0f), *b = rand_f32(&G, n, 3.0f);
        float *yc = malloc((size_t)n * 4), *yg = malloc((size_t)n * 4);
        float *da = dev_from(&G, a, (size_t)n * 4), *db = dev_from(&G, b, (size_t)n * 4), *dy = dev_alloc(&G, (size_t)n * 4);
        for (int op = 0; op < 8; op++) {
            char what[96];
            snprintf(what, sizeof what, "%s n=%lld", names[op], (long long)n);
            ew_call(&G.cpu, yc, a, b, n, op);
            ew_call(&G.gpu, dy, da, db, n, op);
            if (dev_to(&G, yg, dy, (size_t)n * 4, what)) continue;
            if (op <= 2) {
                /* one correctly rounded IEEE operation on both sides: bit-identical */
                check_equal_bytes(what, yg, yc, (size_t)n * 4);
            } else {
                /* GPU exp is __expf (<= 2 + 1.17*|x*log2 e| ulp: <= ~25 ulp = 3e-6 relative for |x| <= 14),
                 * tanh is built from it; erff is libdevice's (2 ulp). Cancellation in 1 + tanh/erf near -1 is
                 * bounded in absolute terms by a few ulp of 1 times 0.5|x| <= 4: atol 1e-6. */
                check_close(what, yg, yc, n, 1e-6, 1e-5);
            }
        }
        /* in place: y aliases a */
        ew_call(&G.cpu, yc, a, b, n, 0);
        ew_call(&G.gpu, da, da, db, n, 0);
        if (!dev_to(&G, yg, da, (size_t)n * 4, "add in place")) check_equal_bytes("add in place", yg, yc, (size_t)n * 4);
        dev_free(&G, da); dev_free(&G, db); dev_free(&G, dy);
        free(a); free(b); free(yc); free(yg);
    }
    static const int64_t shapes[][2] = {{1, 1}, {7, 33}, {33, 255}, {5, 4097}, {300, 7}};
    for (int s = 0; s < 5; s++) {
        const int64_t rows = shapes[s][0], cols = shapes[s][1], n = rows * cols;
        float *x = rand_f32(&G, n, 4.0f), *b = rand_f32(&G, cols, 2.0f);
        float *yc = malloc((size_t)n * 4), *yg = malloc((size_t)n * 4);
        float *dx = dev_from(&G, x, (size_t)n * 4), *db = dev_from(&G, b, (size_t)cols * 4), *dy = dev_alloc(&G, (size_t)n * 4);
        for (int mul = 0; mul < 2; mul++) {
            char what[96];
            snprintf(what, sizeof what, "%s_rows %lldx%lld", mul ? "mul" : "add", (long long)rows, (long long)cols);
            if (mul) { mp_mul_rows(&G.cpu, yc, x, b, rows, cols); mp_mul_rows(&G.gpu, dy, dx, db, rows, cols); }
            else { mp_add_rows(&G.cpu, yc, x, b, rows, cols); mp_add_rows(&G.gpu, dy, dx, db, rows, cols); }
            if (!dev_to(&G, yg, dy, (size_t)n * 4, what)) check_equal_bytes(what, yg, yc, (size_t)n * 4);
        }
        dev_free(&G, dx); dev_free(&G, db); dev_free(&G, dy);
        free(x); free(b); free(yc); free(yg);
    }
}

static void test_norms(void) {
    static const int64_t shapes[][2] = {{1, 1}, {3, 7}, {5, 33}, {2, 255}, {4, 4097}, {1, 20000}, {257, 64}};
    for (int s = 0; s < 7; s++) {
        const int64_t rows = shapes[s][0], cols = shapes[s][1], n = rows * cols;
        float *x = rand_f32(&G, n, 3.0f), *w = rand_f32(&G, cols, 1.5f), *b = rand_f32(&G, cols, 0.5f);
        for (int64_t i = 0; i < n; i++) x[i] += 1.5f; /* a non-zero mean exercises the centring */
        float *yc = malloc((size_t)n * 4), *yg = malloc((size_t)n * 4);
        float *dx = dev_from(&G, x, (size_t)n * 4), *dw = dev_from(&G, w, (size_t)cols * 4), *db = dev_from(&G, b, (size_t)cols * 4);
        float *dy = dev_alloc(&G, (size_t)n * 4);
        for (int v = 0; v < 4; v++) {
            char what[96];
            snprintf(what, sizeof what, "%s%s %lldx%lld", v < 2 ? "layernorm" : "rmsnorm", v & 1 ? "" : " (no weight)",
                     (long long)rows, (long long)cols);
            const float *cw = (v & 1) ? w : NULL, *cb = (v & 1) ? b : NULL;
            const float *gw = (v & 1) ? dw : NULL, *gb = (v & 1) ? db : NULL;
            if (v < 2) { mp_layernorm(&G.cpu, yc, x, cw, cb, rows, cols, 1e-5f); mp_layernorm(&G.gpu, dy, dx, gw, gb, rows, cols, 1e-5f); }
            else { mp_rmsnorm(&G.cpu, yc, x, cw, rows, cols, 1e-6f); mp_rmsnorm(&G.gpu, dy, dx, gw, rows, cols, 1e-6f); }
            /* F32 block reductions (GPU) vs double sums (CPU): mean/variance agree to ~1e-6 relative for rows of
             * up to 2e4 values, so outputs (|y| up to ~5) agree to 2e-5 absolute + relative. */
            if (!dev_to(&G, yg, dy, (size_t)n * 4, what)) check_close(what, yg, yc, n, 2e-5, 2e-5);
        }
        /* in place */
        mp_rmsnorm(&G.cpu, yc, x, w, rows, cols, 1e-6f);
        mp_rmsnorm(&G.gpu, dx, dx, dw, rows, cols, 1e-6f);
        if (!dev_to(&G, yg, dx, (size_t)n * 4, "rmsnorm in place")) check_close("rmsnorm in place", yg, yc, n, 2e-5, 2e-5);
        dev_free(&G, dx); dev_free(&G, dw); dev_free(&G, db); dev_free(&G, dy);
        free(x); free(w); free(b); free(yc); free(yg);
    }
}

static void test_softmax(void) {
    static const int64_t shapes[][2] = {{1, 1}, {7, 33}, {33, 255}, {3, 4097}, {2, 50000}, {40, 40}};
    for (int s = 0; s < 6; s++) {
        const int64_t rows = shapes[s][0], cols = shapes[s][1], n = rows * cols;
        float *x = rand_f32(&G, n, 5.0f), *mask = rand_f32(&G, n, 2.0f);
        for (int64_t i = 0; i < n; i++)
            if ((i * 7919) % 13 == 0) mask[i] = -INFINITY;
        float *yc = malloc((size_t)n * 4), *yg = malloc((size_t)n * 4);
        float *dm = dev_from(&G, mask, (size_t)n * 4), *dx = dev_alloc(&G, (size_t)n * 4);
        for (int v = 0; v < 5; v++) {
            int causal = v >= 2;
            int64_t off = v == 2 ? 0 : v == 3 ? cols - rows : -3; /* -3: the first rows see nothing -> zeros */
            int with_mask = v == 1 || v == 3;
            char what[128];
            snprintf(what, sizeof what, "softmax %lldx%lld mask=%d causal=%d off=%lld", (long long)rows, (long long)cols,
                     with_mask, causal, (long long)off);
            memcpy(yc, x, (size_t)n * 4);
            mp_softmax(&G.cpu, yc, rows, cols, with_mask ? mask : NULL, causal, off);
            mp_error err;
            if (mp_backend_upload(&G.gpu, dx, x, (size_t)n * 4, &err)) { CHECKF(0, "upload: %s", err.msg); continue; }
            mp_softmax(&G.gpu, dx, rows, cols, with_mask ? dm : NULL, causal, off);
            /* probabilities: __expf of arguments in [-20, 0] is within ~25 ulp (3e-6 relative); F32 tree sum vs
             * the CPU's double sum adds ~1e-6 relative. */
            if (!dev_to(&G, yg, dx, (size_t)n * 4, what)) check_close(what, yg, yc, n, 1e-7, 1e-5);
        }
        dev_free(&G, dm); dev_free(&G, dx);
        free(x); free(mask); free(yc); free(yg);
    }
}

/* ---------------------------------------------------------------- rope */

static void rope_case(const char *name, int head_dim, int n_head, int64_t n_tok, const mp_rope_params *p, int32_t max_pos,
                      int n_ff) {
    const int streams = (p->sections[0] || p->sections[1] || p->sections[2] || p->sections[3]) ? 4 : 1;
    const int64_t stride = (int64_t)n_head * head_dim + 16; /* e.g. q inside a fused qkv row */
    const int64_t n = n_tok * stride;
    float *x = rand_f32(&G, n, 1.0f), *yg = malloc((size_t)n * 4);
    int32_t *pos = malloc((size_t)n_tok * streams * 4);
    for (int64_t i = 0; i < n_tok * streams; i++) pos[i] = (int32_t)(mp_test_rng(&G.rng) % (uint64_t)(max_pos + 1));
    if (n_tok > 1) pos[0] = 0;
    float *ff = NULL, *dff = NULL;
    mp_rope_params pc = *p, pg = *p;
    if (n_ff) {
        ff = malloc((size_t)n_ff * 4);
        for (int i = 0; i < n_ff; i++) ff[i] = 1.0f + (float)(i % 5) * 1.75f;
        dff = dev_from(&G, ff, (size_t)n_ff * 4);
        pc.freq_factors = ff;
        pg.freq_factors = dff;
    }
    float *dx = dev_from(&G, x, (size_t)n * 4);
    int32_t *dpos = dev_from(&G, pos, (size_t)n_tok * streams * 4);
    mp_rope(&G.cpu, x, n_tok, n_head, stride, pos, &pc);
    mp_rope(&G.gpu, dx, n_tok, n_head, stride, dpos, &pg);
    char what[160];
    snprintf(what, sizeof what, "rope %s hd=%d n_rot=%d heads=%d tok=%lld max_pos=%d", name, head_dim, p->n_rot, n_head,
             (long long)n_tok, max_pos);
    /* The GPU builds every angle with the CPU's exact sequence of float operations, so the angles are
     * identical; cos/sin may differ by 1 ulp (double sincos rounded vs glibc cosf/sinf) and the rotation by
     * an ulp or two. A different angle recipe (powf instead of repeated multiplication) would be off by up
     * to ~1e-7 * pos radians: > 1e-3 at the positions used here, so 4e-6 also pins the semantics down. */
    if (!dev_to(&G, yg, dx, (size_t)n * 4, what)) check_close(what, yg, x, n, 4e-6, 0);
    dev_free(&G, dx); dev_free(&G, dpos);
    if (dff) dev_free(&G, dff);
    free(x); free(yg); free(pos); free(ff);
}

static void test_rope(void) {
    mp_rope_params p;
    static const int dims[] = {64, 80, 128};
    for (int di = 0; di < 3; di++) {
        const int hd = dims[di];
        memset(&p, 0, sizeof p);
        p.head_dim = hd; p.n_rot = hd; p.mode = MP_ROPE_NORMAL; p.theta = 10000.0f; p.freq_scale = 1.0f;
        rope_case("normal", hd, 4, 37, &p, 100000, 0);
        p.mode = MP_ROPE_NEOX; p.theta = 1000000.0f;
        rope_case("neox", hd, 3, 33, &p, 30000, 0);
        p.n_rot = 32; /* partial rotary: the tail passes through */
        rope_case("neox partial", hd, 2, 7, &p, 5000, 0);
        p.mode = MP_ROPE_NORMAL;
        rope_case("normal partial", hd, 2, 7, &p, 5000, 0);
        p.n_rot = hd; p.mode = MP_ROPE_NEOX; p.theta = 500000.0f; p.freq_scale = 0.25f; /* linear scaling + llama3 */
        rope_case("neox linear+freq_factors", hd, 2, 17, &p, 60000, hd / 2);
        memset(&p, 0, sizeof p); /* YaRN */
        p.head_dim = hd; p.n_rot = hd; p.mode = MP_ROPE_NEOX; p.theta = 10000.0f; p.freq_scale = 0.25f;
        p.ext_factor = 1.0f; p.attn_factor = 1.0f; p.beta_fast = 32.0f; p.beta_slow = 1.0f; p.n_ctx_orig = 4096;
        rope_case("yarn", hd, 2, 19, &p, 16000, 0);
        p.mode = MP_ROPE_NORMAL; p.attn_factor = 0.8f;
        rope_case("yarn normal", hd, 2, 9, &p, 16000, 0);
        memset(&p, 0, sizeof p); /* text M-RoPE (Qwen2-VL) */
        p.head_dim = hd; p.n_rot = hd; p.mode = MP_ROPE_NEOX; p.theta = 1000000.0f; p.freq_scale = 1.0f;
        p.sections[0] = hd / 8; p.sections[1] = hd / 8 + 2; p.sections[2] = hd / 4 - 2;
        rope_case("mrope", hd, 3, 21, &p, 9000, 0);
        p.sections[0] = hd / 4; p.sections[1] = hd / 4; p.sections[2] = 0; p.mrope_vision = 1; p.theta = 10000.0f;
        rope_case("mrope vision", hd, 3, 21, &p, 500, 0);
    }
    memset(&p, 0, sizeof p); /* defaults: theta 0 -> 10000, freq_scale 0 -> 1, n_rot 0 -> head_dim */
    p.head_dim = 96;
    rope_case("defaults", 96, 5, 1, &p, 40000, 0);
}

/* ---------------------------------------------------------------- attention */

/* paged > 0: K/V live in a pool of blocks of `paged` rows, in the shuffled order of a block table */
static void attn_case_p(int n_q, int n_kv, int n_head, int n_kv_head, int hd, int causal, int64_t off, int masked,
                        int paged) {
    mp_attn_params p;
    memset(&p, 0, sizeof p);
    p.n_q = n_q; p.n_kv = n_kv; p.n_head = n_head; p.n_kv_head = n_kv_head; p.head_dim = hd;
    p.q_stride = (int64_t)n_head * hd + 5;
    p.k_stride = (int64_t)n_kv_head * hd * 3 + 1; /* k, v inside a wider cache row */
    p.v_stride = (int64_t)n_kv_head * hd + 2;
    p.o_stride = (int64_t)n_head * hd + 3;
    p.scale = 1.0f / sqrtf((float)hd);
    p.causal = causal; p.causal_offset = off;
    int32_t *table = NULL, *dtable = NULL;
    int64_t kv_rows = n_kv > 0 ? n_kv : 1;
    if (paged) {
        const int nb = (n_kv + paged - 1) / paged, pool = nb + 3;
        table = malloc((size_t)pool * 4);
        for (int i = 0; i < pool; i++) table[i] = i;
        for (int i = pool - 1; i > 0; i--) { /* shuffle: blocks in no particular order */
            int j = (int)(mp_test_rng(&G.rng) % (uint64_t)(i + 1)), t = table[i];
            table[i] = table[j];
            table[j] = t;
        }
        kv_rows = (int64_t)pool * paged;
        dtable = dev_from(&G, table, (size_t)pool * 4);
        p.kv_block_size = paged;
    }
    const int64_t nq = (int64_t)n_q * p.q_stride, nk = kv_rows * p.k_stride;
    const int64_t nv = kv_rows * p.v_stride, no = (int64_t)n_q * p.o_stride;
    float *q = rand_f32(&G, nq, 2.0f), *k = rand_f32(&G, nk, 2.0f), *v = rand_f32(&G, nv, 1.0f);
    float *oc = calloc((size_t)no, 4), *og = malloc((size_t)no * 4), *mask = NULL, *dmask = NULL;
    if (masked) {
        p.mask_stride = n_kv + 3;
        mask = rand_f32(&G, (int64_t)n_q * p.mask_stride, 1.0f);
        for (int64_t i = 0; i < (int64_t)n_q * p.mask_stride; i++)
            if (mp_test_rng(&G.rng) % 5 == 0) mask[i] = -INFINITY;
        dmask = dev_from(&G, mask, (size_t)n_q * p.mask_stride * 4);
    }
    float *dq = dev_from(&G, q, (size_t)nq * 4), *dk = dev_from(&G, k, (size_t)nk * 4), *dv = dev_from(&G, v, (size_t)nv * 4);
    float *dout = dev_from(&G, oc, (size_t)no * 4); /* zeros in the stride padding on both sides */
    p.mask = mask;
    p.kv_block_table = table;
    mp_attention(&G.cpu, oc, q, k, v, &p);
    p.mask = dmask;
    p.kv_block_table = dtable;
    mp_attention(&G.gpu, dout, dq, dk, dv, &p);
    char what[160];
    snprintf(what, sizeof what, "attention q=%d kv=%d heads=%d/%d hd=%d causal=%d off=%lld mask=%d paged=%d", n_q, n_kv,
             n_head, n_kv_head, hd, causal, (long long)off, masked, paged);
    /* outputs are convex combinations of v in [-1, 1]: weights carry __expf's ~3e-6 relative error and
     * F32 sums in another order: 1e-5 absolute. */
    if (!dev_to(&G, og, dout, (size_t)no * 4, what)) check_close(what, og, oc, no, 1e-5, 1e-5);
    dev_free(&G, dq); dev_free(&G, dk); dev_free(&G, dv); dev_free(&G, dout);
    if (dmask) dev_free(&G, dmask);
    if (dtable) dev_free(&G, dtable);
    free(q); free(k); free(v); free(oc); free(og); free(mask); free(table);
}

static void attn_case(int n_q, int n_kv, int n_head, int n_kv_head, int hd, int causal, int64_t off, int masked) {
    attn_case_p(n_q, n_kv, n_head, n_kv_head, hd, causal, off, masked, 0);
}

static void test_attention(void) {
    attn_case(1, 1000, 8, 2, 64, 1, 999, 0);     /* decode, GQA 4:1, KV split */
    attn_case(77, 77, 4, 4, 80, 1, 0, 0);        /* prefill, causal */
    attn_case(33, 257, 4, 1, 72, 0, 0, 1);       /* full attention with a mask (-inf holes), MQA */
    attn_case(5, 4097, 8, 2, 128, 1, 4092, 0);   /* chunked prefill continuing a cache, split */
    attn_case(19, 50, 2, 2, 256, 1, 31, 1);      /* large head_dim (shared-memory opt-in) */
    attn_case(3, 40, 2, 1, 512, 0, 0, 0);        /* largest head_dim */
    attn_case(16, 3, 3, 3, 7, 0, 0, 0);          /* odd head_dim, fewer keys than a tile */
    attn_case(20, 20, 2, 1, 64, 1, -5, 0);       /* first queries see nothing: zeros */
    attn_case(4, 0, 2, 2, 32, 0, 0, 0);          /* no keys at all: zeros */
    attn_case(1, 1, 1, 1, 1, 0, 0, 0);
    attn_case(64, 1500, 6, 6, 64, 0, 0, 0);      /* whisper-like cross attention */
    attn_case_p(1, 1000, 8, 2, 64, 1, 999, 0, 16);   /* paged K/V: decode (KV split) */
    attn_case_p(37, 300, 4, 2, 128, 1, 263, 0, 32);  /* paged chunked prefill */
    attn_case_p(5, 45, 2, 1, 80, 0, 0, 1, 7);        /* odd block size, mask */
    attn_case_p(3, 45, 4, 4, 64, 1, 42, 0, 64);      /* one block larger than the whole sequence */
    attn_case_p(2, 70, 2, 1, 33, 1, 68, 1, 1);       /* a block per key, odd head_dim, causal + mask */
    attn_case_p(16, 600, 6, 3, 256, 1, 584, 0, 48);  /* block size not a multiple of the key tile, split */
}

/* Paged K/V as llm/kvcache lays it out: one pool of blocks (rows kv_dim floats, a layer offset), several
 * sequences of ragged lengths with shuffled block tables, two of them sharing a forked prefix. Each
 * sequence's attention (decode, or a chunk of queries continuing the cache) on the GPU must equal the CPU
 * op on the same paged pool (1e-5, as attn_case), and equal bit for bit the GPU op on the same keys
 * gathered into contiguous rows (the block table only changes where rows are read from). */
static void attn_pool_case(int bsz, int n_head, int n_kv_head, int hd) {
    static const int lens[] = {1, 17, 100, 333, 64, 129};
    enum { NS = 6 };
    const int kv_dim = n_kv_head * hd, layers = 2, layer = 1;
    int nb_seq[NS], total = 0;
    for (int s = 0; s < NS; s++) total += nb_seq[s] = (lens[s] + bsz - 1) / bsz;
    const int n_blocks = total + 5;
    int32_t *freel = malloc((size_t)n_blocks * 4), *tables[NS];
    for (int i = 0; i < n_blocks; i++) freel[i] = i;
    for (int i = n_blocks - 1; i > 0; i--) {
        int j = (int)(mp_test_rng(&G.rng) % (uint64_t)(i + 1)), t = freel[i];
        freel[i] = freel[j];
        freel[j] = t;
    }
    int used = 0;
    for (int s = 0; s < NS; s++) {
        tables[s] = malloc((size_t)nb_seq[s] * 4);
        for (int b = 0; b < nb_seq[s]; b++) tables[s][b] = freel[used++];
    }
    /* sequence 3 was forked from sequence 2 after its first 96 tokens: it shares their whole blocks */
    for (int b = 0; b < 96 / bsz && b < nb_seq[2] && b < nb_seq[3]; b++) tables[3][b] = tables[2][b];
    const int64_t pool_rows = (int64_t)layers * n_blocks * bsz, lo = (int64_t)layer * n_blocks * bsz * kv_dim;
    float *k = rand_f32(&G, pool_rows * kv_dim, 2.0f), *v = rand_f32(&G, pool_rows * kv_dim, 1.0f);
    float *dk = dev_from(&G, k, (size_t)(pool_rows * kv_dim) * 4), *dv = dev_from(&G, v, (size_t)(pool_rows * kv_dim) * 4);
    for (int s = 0; s < NS; s++) {
        const int n = lens[s];
        for (int chunk = 0; chunk < 2; chunk++) {
            const int n_q = chunk == 0 ? 1 : (n < 23 ? n : 23);
            mp_attn_params p;
            memset(&p, 0, sizeof p);
            p.n_q = n_q; p.n_kv = n; p.n_head = n_head; p.n_kv_head = n_kv_head; p.head_dim = hd;
            p.q_stride = (int64_t)n_head * hd * 3; /* q inside a fused qkv row */
            p.k_stride = p.v_stride = kv_dim;
            p.o_stride = (int64_t)n_head * hd;
            p.scale = 1.0f / sqrtf((float)hd);
            p.causal = 1; p.causal_offset = n - n_q;
            p.kv_block_size = bsz;
            const int64_t nq = (int64_t)n_q * p.q_stride, no = (int64_t)n_q * p.o_stride;
            float *q = rand_f32(&G, nq, 2.0f), *oc = malloc((size_t)no * 4), *og = malloc((size_t)no * 4);
            float *og2 = malloc((size_t)no * 4), *kc = malloc((size_t)n * kv_dim * 4), *vc = malloc((size_t)n * kv_dim * 4);
            for (int j = 0; j < n; j++) { /* the same keys, gathered */
                const int64_t row = (int64_t)tables[s][j / bsz] * bsz + j % bsz;
                memcpy(kc + (int64_t)j * kv_dim, k + lo + row * kv_dim, (size_t)kv_dim * 4);
                memcpy(vc + (int64_t)j * kv_dim, v + lo + row * kv_dim, (size_t)kv_dim * 4);
            }
            float *dq = dev_from(&G, q, (size_t)nq * 4), *dout = dev_alloc(&G, (size_t)no * 4);
            float *dout2 = dev_alloc(&G, (size_t)no * 4);
            float *dkc = dev_from(&G, kc, (size_t)n * kv_dim * 4), *dvc = dev_from(&G, vc, (size_t)n * kv_dim * 4);
            int32_t *dtab = dev_from(&G, tables[s], (size_t)nb_seq[s] * 4);
            p.kv_block_table = tables[s];
            mp_attention(&G.cpu, oc, q, k + lo, v + lo, &p);
            p.kv_block_table = dtab;
            mp_attention(&G.gpu, dout, dq, dk + lo, dv + lo, &p);
            p.kv_block_table = NULL;
            mp_attention(&G.gpu, dout2, dq, dkc, dvc, &p);
            char what[160];
            snprintf(what, sizeof what, "paged pool block=%d heads=%d/%d hd=%d seq %d (len %d) queries %d", bsz, n_head,
                     n_kv_head, hd, s, n, n_q);
            if (!dev_to(&G, og, dout, (size_t)no * 4, what) && !dev_to(&G, og2, dout2, (size_t)no * 4, what)) {
                check_close(what, og, oc, no, 1e-5, 1e-5);
                check_equal_bytes(what, og, og2, (size_t)no * 4);
            }
            dev_free(&G, dq); dev_free(&G, dout); dev_free(&G, dout2); dev_free(&G, dkc); dev_free(&G, dvc);
            dev_free(&G, dtab);
            free(q); free(oc); free(og); free(og2); free(kc); free(vc);
        }
    }
    dev_free(&G, dk); dev_free(&G, dv);
    for (int s = 0; s < NS; s++) free(tables[s]);
    free(k); free(v); free(freel);
}

static void test_attention_paged(void) {
    attn_pool_case(16, 8, 2, 64);   /* llama-style GQA 4:1, the kv cache's default block */
    attn_pool_case(5, 14, 2, 64);   /* qwen2-style GQA 7:1, tiny odd blocks */
    attn_pool_case(48, 4, 1, 96);   /* MQA, blocks of 1.5 key tiles */
    attn_pool_case(256, 6, 6, 64);  /* no GQA, blocks longer than most sequences */
    attn_pool_case(1, 2, 1, 40);    /* a block per token */
}

/* ---------------------------------------------------------------- convolutions */

static void *make_weight(mp_tensor *t, int dt, int ndim, const int64_t *ne, float scale) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= ne[i];
    float *f = rand_f32(&G, n, scale);
    void *data = f;
    if (dt != MP_F32) {
        uint16_t *h = malloc((size_t)n * 2);
        for (int64_t i = 0; i < n; i++) h[i] = dt == MP_F16 ? mp_f32_to_f16(f[i]) : mp_f32_to_bf16(f[i]);
        free(f);
        data = h;
    }
    mp_tensor_init(t, (mp_dtype)dt, ndim, ne, data);
    return data;
}

/* kind 0 conv1d, 1 conv2d, 2 conv3d, 3 depthwise conv1d (ne {K,1,C}), 4 depthwise {K,C} */
static void conv_case(int kind, int dt, int batch, int64_t c_in, int64_t c_out, int64_t t, int64_t h, int64_t w, int kt,
                      int kh, int kw, int st, int sh, int sw, int ph, int pw, int with_bias) {
    mp_tensor wt, wd;
    int64_t ne[4];
    int nd;
    if (kind == 0) { ne[0] = kw; ne[1] = c_in; ne[2] = c_out; nd = 3; }
    else if (kind == 1) { ne[0] = kw; ne[1] = kh; ne[2] = c_in; ne[3] = c_out; nd = 4; }
    else if (kind == 2) { ne[0] = kw; ne[1] = kh; ne[2] = (int64_t)kt * c_in; ne[3] = c_out; nd = 4; }
    else if (kind == 3) { c_out = c_in; ne[0] = kw; ne[1] = 1; ne[2] = c_in; nd = 3; }
    else { c_out = c_in; ne[0] = kw; ne[1] = c_in; nd = 2; }
    void *wdata = make_weight(&wt, dt, nd, ne, 1.0f);
    dev_tensor(&G, &wd, &wt);
    int64_t to = kind == 2 ? (t - kt) / st + 1 : 1;
    int64_t ho = kind == 1 || kind == 2 ? (h + 2 * ph - kh) / sh + 1 : 1;
    int64_t wo = (w + 2 * pw - kw) / sw + 1;
    int64_t nx = (int64_t)batch * c_in * t * h * w, ny = (int64_t)batch * c_out * to * ho * wo;
    float *x = rand_f32(&G, nx, 1.0f), *bias = rand_f32(&G, c_out, 1.0f);
    float *yc = malloc((size_t)ny * 4), *yg = malloc((size_t)ny * 4);
    float *dx = dev_from(&G, x, (size_t)nx * 4), *db = dev_from(&G, bias, (size_t)c_out * 4), *dy = dev_alloc(&G, (size_t)ny * 4);
    const float *bc = with_bias ? bias : NULL, *bg = with_bias ? db : NULL;
    int64_t terms = kw;
    switch (kind) {
    case 0:
        mp_conv1d(&G.cpu, yc, x, &wt, bc, batch, c_in, w, sw, pw);
        mp_conv1d(&G.gpu, dy, dx, &wd, bg, batch, c_in, w, sw, pw);
        terms *= c_in;
        break;
    case 1:
        mp_conv2d(&G.cpu, yc, x, &wt, bc, batch, c_in, h, w, sh, sw, ph, pw);
        mp_conv2d(&G.gpu, dy, dx, &wd, bg, batch, c_in, h, w, sh, sw, ph, pw);
        terms *= kh * c_in;
        break;
    case 2:
        mp_conv3d(&G.cpu, yc, x, &wt, kt, bc, batch, c_in, t, h, w, st, sh, sw);
        mp_conv3d(&G.gpu, dy, dx, &wd, kt, bg, batch, c_in, t, h, w, st, sh, sw);
        terms *= (int64_t)kt * kh * c_in;
        break;
    default:
        mp_conv1d_dw(&G.cpu, yc, x, &wt, bc, batch, c_in, w, sw, pw);
        mp_conv1d_dw(&G.gpu, dy, dx, &wd, bg, batch, c_in, w, sw, pw);
        break;
    }
    static const char *kn[] = {"conv1d", "conv2d", "conv3d", "conv1d_dw", "conv1d_dw {K,C}"};
    char what[200];
    snprintf(what, sizeof what, "%s %s batch=%d cin=%lld cout=%lld in=%lldx%lldx%lld k=%dx%dx%d s=%d,%d,%d p=%d,%d bias=%d",
             kn[kind], mp_dtype_name(dt), batch, (long long)c_in, (long long)c_out, (long long)t, (long long)h,
             (long long)w, kt, kh, kw, st, sh, sw, ph, pw, with_bias);
    /* Both sides sum `terms` products of values in [-1, 1] in F32 (cuDNN with FMA math: no TF32), in different
     * orders: |difference| <= ~terms * 2^-24 * 4 in the worst case; typical errors are far smaller. */
    if (!dev_to(&G, yg, dy, (size_t)ny * 4, what)) check_close(what, yg, yc, ny, 2.4e-7 * (double)terms + 1e-6, 0);
    dev_free_tensor(&G, &wd);
    dev_free(&G, dx); dev_free(&G, db); dev_free(&G, dy);
    free(wdata); free(x); free(bias); free(yc); free(yg);
}

static void test_conv(void) {
    static const int dts[] = {MP_F32, MP_F16, MP_BF16};
    for (int i = 0; i < 3; i++) {
        const int dt = dts[i];
        conv_case(0, dt, 1, 80, 16, 1, 1, 301, 1, 1, 3, 1, 1, 1, 0, 1, 1);  /* whisper conv1 */
        conv_case(0, dt, 2, 16, 24, 1, 1, 301, 1, 1, 3, 1, 1, 2, 0, 1, 1);  /* whisper conv2, stride 2 */
        conv_case(0, dt, 1, 3, 5, 1, 1, 7, 1, 1, 7, 1, 1, 1, 0, 0, 0);      /* output length 1 */
        conv_case(1, dt, 2, 3, 8, 1, 17, 19, 1, 4, 3, 1, 2, 1, 1, 2, 1);    /* odd sizes, stride, padding */
        conv_case(1, dt, 1, 3, 32, 1, 64, 48, 1, 16, 16, 1, 16, 16, 0, 0, 1); /* ViT patch embedding */
        conv_case(1, dt, 1, 5, 7, 1, 9, 9, 1, 3, 3, 1, 1, 1, 1, 1, 0);
        conv_case(2, dt, 1, 3, 16, 2, 28, 42, 2, 14, 14, 2, 14, 14, 0, 0, 0); /* Qwen2-VL patch embed */
        conv_case(2, dt, 2, 2, 5, 5, 9, 7, 2, 3, 2, 1, 2, 1, 0, 0, 1);      /* overlapping, odd */
        conv_case(3, dt, 2, 7, 7, 1, 1, 33, 1, 1, 31, 1, 1, 1, 0, 15, 1);   /* conformer depthwise */
        conv_case(4, dt, 1, 5, 5, 1, 1, 40, 1, 1, 3, 1, 1, 2, 0, 1, 0);     /* {K, C}, stride 2 */
    }
}

/* ---------------------------------------------------------------- argmax, topk, transpose, concat */

static void test_reduce(void) {
    static const int64_t ns[] = {1, 7, 33, 4097, 151936};
    for (int si = 0; si < 5; si++) {
        const int64_t n = ns[si];
        for (int v = 0; v < 3; v++) {
            float *x = rand_f32(&G, n, 10.0f);
            if (v >= 1) /* few distinct values: many ties, broken by the lower index */
                for (int64_t i = 0; i < n; i++) x[i] = floorf(x[i]);
            if (v == 2) /* NaN ranks below every number */
                for (int64_t i = 0; i < n; i += 3) x[i] = NAN;
            float *dx = dev_from(&G, x, (size_t)n * 4);
            char what[96];
            snprintf(what, sizeof what, "argmax n=%lld variant=%d", (long long)n, v);
            int64_t ac = mp_argmax(&G.cpu, x, n), ag = mp_argmax(&G.gpu, dx, n);
            CHECKF(ac == ag, "%s: gpu %lld cpu %lld", what, (long long)ag, (long long)ac);
            static const int ks[] = {1, 5, 40, 257};
            for (int ki = 0; ki < 4; ki++) {
                int k = ks[ki] > n ? (int)n : ks[ki];
                int32_t *ic = malloc((size_t)k * 4), *ig = malloc((size_t)k * 4);
                float *vc = malloc((size_t)k * 4), *vg = malloc((size_t)k * 4);
                int32_t *dix = dev_alloc(&G, (size_t)k * 4);
                float *dvx = dev_alloc(&G, (size_t)k * 4);
                mp_topk(&G.cpu, x, n, k, ic, vc);
                mp_topk(&G.gpu, dx, n, k, dix, dvx);
                snprintf(what, sizeof what, "topk n=%lld k=%d variant=%d", (long long)n, k, v);
                if (!dev_to(&G, ig, dix, (size_t)k * 4, what) && !dev_to(&G, vg, dvx, (size_t)k * 4, what)) {
                    check_equal_bytes(what, ig, ic, (size_t)k * 4); /* exact: same ranking rule */
                    check_equal_bytes(what, vg, vc, (size_t)k * 4);
                }
                dev_free(&G, dix); dev_free(&G, dvx);
                free(ic); free(ig); free(vc); free(vg);
            }
            dev_free(&G, dx);
            free(x);
        }
    }
    CHECK_EQ_INT(mp_argmax(&G.gpu, NULL, 0), -1);
}

static void test_layout(void) {
    static const int64_t shapes[][2] = {{1, 1}, {7, 33}, {33, 255}, {255, 31}, {1000, 3}, {3, 1000}};
    for (int s = 0; s < 6; s++) {
        const int64_t r = shapes[s][0], c = shapes[s][1], n = r * c;
        float *x = rand_f32(&G, n, 1.0f), *yc = malloc((size_t)n * 4), *yg = malloc((size_t)n * 4);
        float *dx = dev_from(&G, x, (size_t)n * 4), *dy = dev_alloc(&G, (size_t)n * 4);
        mp_transpose(&G.cpu, yc, x, r, c);
        mp_transpose(&G.gpu, dy, dx, r, c);
        char what[64];
        snprintf(what, sizeof what, "transpose %lldx%lld", (long long)r, (long long)c);
        if (!dev_to(&G, yg, dy, (size_t)n * 4, what)) check_equal_bytes(what, yg, yc, (size_t)n * 4);
        dev_free(&G, dx); dev_free(&G, dy);
        free(x); free(yc); free(yg);
    }
    static const int64_t cc[][3] = {{7, 3, 5}, {33, 0, 17}, {5, 255, 1}, {1, 1, 1}, {100, 64, 1280}};
    for (int s = 0; s < 5; s++) {
        const int64_t rows = cc[s][0], ca = cc[s][1], cb = cc[s][2], n = rows * (ca + cb);
        float *a = rand_f32(&G, rows * ca, 1.0f), *b = rand_f32(&G, rows * cb, 1.0f);
        float *yc = malloc((size_t)n * 4), *yg = malloc((size_t)n * 4);
        float *da = dev_from(&G, a, (size_t)(rows * ca) * 4), *db = dev_from(&G, b, (size_t)(rows * cb) * 4);
        float *dy = dev_alloc(&G, (size_t)n * 4);
        mp_concat_cols(&G.cpu, yc, a, ca, b, cb, rows);
        mp_concat_cols(&G.gpu, dy, da, ca, db, cb, rows);
        char what[64];
        snprintf(what, sizeof what, "concat_cols rows=%lld %lld+%lld", (long long)rows, (long long)ca, (long long)cb);
        if (!dev_to(&G, yg, dy, (size_t)n * 4, what)) check_equal_bytes(what, yg, yc, (size_t)n * 4);
        dev_free(&G, da); dev_free(&G, db); dev_free(&G, dy);
        free(a); free(b); free(yc); free(yg);
    }
}

/* A failing op records one clear error in its exec (no crash, nothing silent) and later ops are no-ops. */
static void test_errors(void) {
    mp_exec ex;
    mp_error err;
    if (mp_exec_init(&ex, MP_BACKEND_CUDA, NULL, 0, &err) != 0) { CHECKF(0, "exec init: %s", err.msg); return; }
    CHECK_EQ_INT(mp_exec_status(&ex, &err), 0);
    mp_attn_params p;
    memset(&p, 0, sizeof p);
    p.n_q = 1; p.n_kv = 1; p.n_head = 1; p.n_kv_head = 1; p.head_dim = 1000;
    float *d = mp_backend_alloc(&ex, 4096 * 4);
    mp_attention(&ex, d, d, d, d, &p);
    CHECK(mp_exec_status(&ex, &err) != 0);
    CHECKF(strstr(err.msg, "attention") && strstr(err.msg, "head_dim"), "message: %s", err.msg);
    mp_add(&ex, d, d, d, 16); /* no-op now; the first error stays */
    CHECK(mp_exec_status(&ex, &err) != 0 && strstr(err.msg, "head_dim"));
    mp_backend_free(&ex, d);
    mp_exec_free(&ex);

    /* paged K/V with the block table left in host memory: a clear error, nothing read */
    if (mp_exec_init(&ex, MP_BACKEND_CUDA, NULL, 0, &err) != 0) { CHECKF(0, "exec init: %s", err.msg); return; }
    int32_t host_table[4] = {3, 2, 1, 0};
    memset(&p, 0, sizeof p);
    p.n_q = 1; p.n_kv = 30; p.n_head = 2; p.n_kv_head = 1; p.head_dim = 16;
    p.q_stride = 32; p.k_stride = p.v_stride = 16; p.o_stride = 32; p.scale = 0.25f;
    p.kv_block_table = host_table; p.kv_block_size = 8;
    d = mp_backend_alloc(&ex, 4096 * 4);
    mp_attention(&ex, d, d, d + 1024, d + 2048, &p);
    CHECK(mp_exec_status(&ex, &err) != 0);
    CHECKF(strstr(err.msg, "kv_block_table") && strstr(err.msg, "device"), "message: %s", err.msg);
    mp_backend_free(&ex, d);
    mp_exec_free(&ex);
}

int main(void) {
    int rc = gpu_setup(&G, "test_gpu_ops");
    if (rc) return rc;
    test_elementwise();
    test_norms();
    test_softmax();
    test_rope();
    test_attention();
    test_attention_paged();
    test_conv();
    test_reduce();
    test_layout();
    test_errors();
    gpu_teardown(&G);
    return mp_test_result("test_gpu_ops");
}
