/* test_ops_simd.c — every SIMD path (AVX2, AVX-512 where the CPU has them) against its scalar reference
 * twin mp_ref_* on odd shapes (1, 7, 33, 255, 4097), with awkward values (masked -inf, fully masked
 * rows, large magnitudes); 1 vs 3 threads must agree bit for bit; a scratch-starved exec falls back to
 * the reference. */
#include <math.h>

#include "kernels/cpu/ref.h"
#include "ops_test.h"

static const int64_t sizes[] = {1, 7, 33, 255, 4097};
#define NS 5

static mp_exec ex_starved; /* 0 bytes of scratch */

#define CHECK_NEAR_ARR(got, want, n, tol, fmt, ...)                                                        \
    do {                                                                                                   \
        double e_ = relerr_f((got), (want), (n));                                                          \
        CHECKF(e_ <= (tol), "err %.3g > %.3g: " fmt, e_, (double)(tol), __VA_ARGS__);                      \
    } while (0)

static void test_elementwise(const char *lv) {
    for (int si = 0; si < NS; si++)
        for (int mult = 1; mult <= 16; mult *= 16) {
            int64_t n = sizes[si] * mult;
            float *a = randv(n, -12, 12), *b = randv(n, -3, 3);
            a[0] = 0.0f;
            if (n > 3) a[1] = -100.0f, a[2] = 100.0f, a[3] = -0.0f;
            if (n > 5) a[4] = 1e4f, a[5] = -1e4f;
            float *r = malloc((size_t)n * 4), *y1 = malloc((size_t)n * 4), *y3 = malloc((size_t)n * 4);
            for (int op = 0; op < 8; op++) {
                double tol = op < 3 ? 0 : 1e-6;
                for (int t = 0; t < 3; t++) {
                    float *y = t == 0 ? r : t == 1 ? y1 : y3;
                    mp_exec *ex = t == 2 ? &ex3 : &ex1;
                    switch (op) {
                    case 0: t ? mp_add(ex, y, a, b, n) : mp_ref_add(y, a, b, n); break;
                    case 1: t ? mp_mul(ex, y, a, b, n) : mp_ref_mul(y, a, b, n); break;
                    case 2: t ? mp_scale(ex, y, a, 0.3f, n) : mp_ref_scale(y, a, 0.3f, n); break;
                    case 3: t ? mp_gelu(ex, y, a, n, MP_GELU_ERF) : mp_ref_gelu(y, a, n, MP_GELU_ERF); break;
                    case 4: t ? mp_gelu(ex, y, a, n, MP_GELU_TANH) : mp_ref_gelu(y, a, n, MP_GELU_TANH); break;
                    case 5: t ? mp_gelu(ex, y, a, n, MP_GELU_QUICK) : mp_ref_gelu(y, a, n, MP_GELU_QUICK); break;
                    case 6: t ? mp_silu(ex, y, a, n) : mp_ref_silu(y, a, n); break;
                    case 7: t ? mp_swiglu(ex, y, a, b, n) : mp_ref_swiglu(y, a, b, n); break;
                    }
                }
                CHECK_NEAR_ARR(y1, r, n, tol, "%s elementwise op %d n=%lld", lv, op, (long long)n);
                CHECKF(bits_equal(y1, y3, n), "%s elementwise op %d n=%lld: threads differ", lv, op, (long long)n);
            }
            free(a), free(b), free(r), free(y1), free(y3);
        }
    for (int si = 0; si < NS; si++) {
        int64_t rows = 5, cols = sizes[si];
        float *x = randv(rows * cols, -2, 2), *b = randv(cols, -2, 2), *r = malloc(rows * cols * 4), *y = malloc(rows * cols * 4);
        mp_ref_add_rows(r, x, b, rows, cols), mp_add_rows(&ex3, y, x, b, rows, cols);
        CHECK(bits_equal(r, y, rows * cols));
        mp_ref_mul_rows(r, x, b, rows, cols), mp_mul_rows(&ex3, y, x, b, rows, cols);
        CHECK(bits_equal(r, y, rows * cols));
        free(x), free(b), free(r), free(y);
    }
}

static void test_norms_softmax(const char *lv) {
    for (int si = 0; si < NS; si++) {
        int64_t rows = 13, cols = sizes[si], n = rows * cols;
        float *x = randv(n, -4, 6), *w = randv(cols, -2, 2), *b = randv(cols, -1, 1);
        for (int64_t c = 0; c < cols; c++) x[c] = 1000.0f + 0.01f * x[c]; /* large mean, small variance */
        float *r = malloc(n * 4), *y1 = malloc(n * 4), *y3 = malloc(n * 4);
        for (int kind = 0; kind < 4; kind++) {
            const float *wp = kind == 1 ? NULL : w, *bp = kind == 2 ? NULL : b;
            if (kind < 3) {
                mp_ref_layernorm(r, x, wp, bp, rows, cols, 1e-5f);
                mp_layernorm(&ex1, y1, x, wp, bp, rows, cols, 1e-5f);
                mp_layernorm(&ex3, y3, x, wp, bp, rows, cols, 1e-5f);
            } else {
                mp_ref_rmsnorm(r, x, w, rows, cols, 1e-6f);
                mp_rmsnorm(&ex1, y1, x, w, rows, cols, 1e-6f);
                mp_rmsnorm(&ex3, y3, x, w, rows, cols, 1e-6f);
            }
            /* row 0 has mean 1000 and std 0.03: a naive float mean would be off by 1e-3 relative there */
            CHECK_NEAR_ARR(y1, r, n, 1e-5, "%s norm kind %d cols %lld", lv, kind, (long long)cols);
            CHECKF(bits_equal(y1, y3, n), "%s norm kind %d: threads differ", lv, kind);
        }
        float *mask = randv(n, -5, 0);
        for (int64_t i = 0; i < n; i += 3) mask[i] = -INFINITY;
        for (int64_t c = 0; c < cols; c++) mask[2 * cols + c] = -INFINITY; /* row 2 fully masked */
        for (int v = 0; v < 4; v++) {
            int causal = v >= 2;
            int64_t off = v == 3 ? cols - rows : 0;
            const float *m = v & 1 ? mask : NULL;
            memcpy(r, x, n * 4), memcpy(y1, x, n * 4), memcpy(y3, x, n * 4);
            for (int64_t i = 0; i < n; i++) r[i] = y1[i] = y3[i] = x[i] - 1000.0f * (i < cols);
            mp_ref_softmax(r, rows, cols, m, causal, off);
            mp_softmax(&ex1, y1, rows, cols, m, causal, off);
            mp_softmax(&ex3, y3, rows, cols, m, causal, off);
            CHECK_NEAR_ARR(y1, r, n, 1e-6, "%s softmax v %d cols %lld", lv, v, (long long)cols);
            CHECKF(bits_equal(y1, y3, n), "%s softmax v %d: threads differ", lv, v);
        }
        free(x), free(w), free(b), free(r), free(y1), free(y3), free(mask);
    }
}

static void test_rope(const char *lv) {
    int hds[] = {2, 8, 34, 66, 256};
    for (int hi = 0; hi < 5; hi++)
        for (int v = 0; v < 4; v++) {
            int hd = hds[hi];
            mp_rope_params p = {.head_dim = hd, .n_rot = v == 2 ? (hd / 2 + 1) & ~1 : hd,
                                .mode = v & 1 ? MP_ROPE_NEOX : MP_ROPE_NORMAL, .theta = 10000, .freq_scale = 1,
                                .attn_factor = 1};
            if (v == 3) p.ext_factor = 1, p.freq_scale = 0.25f, p.beta_fast = 32, p.beta_slow = 1, p.n_ctx_orig = 4096;
            for (int ti = 0; ti < 3; ti++) {
                int64_t n_tok = sizes[ti], n_head = 7, stride = n_head * hd + 1, n = n_tok * stride;
                int32_t *pos = malloc((size_t)n_tok * 4);
                for (int64_t t = 0; t < n_tok; t++) pos[t] = (int32_t)(t * 37 % 5000);
                float *x = randv(n, -1, 1), *r = dup(x, n), *y1 = dup(x, n), *y3 = dup(x, n);
                mp_ref_rope(r, n_tok, (int)n_head, stride, pos, &p);
                mp_rope(&ex1, y1, n_tok, (int)n_head, stride, pos, &p);
                mp_rope(&ex3, y3, n_tok, (int)n_head, stride, pos, &p);
                CHECK_NEAR_ARR(y1, r, n, 1e-6, "%s rope hd %d v %d tok %lld", lv, hd, v, (long long)n_tok);
                CHECKF(bits_equal(y1, y3, n), "%s rope: threads differ", lv);
                free(pos), free(x), free(r), free(y1), free(y3);
            }
        }
}

static void test_attention(const char *lv) {
    struct { int n_q, n_kv, nh, nkv, d, causal, masked; } cs[] = {
        {1, 1, 1, 1, 1, 0, 0},      {1, 7, 7, 1, 7, 1, 0},        {7, 7, 2, 1, 33, 1, 0},    {33, 33, 4, 2, 64, 1, 1},
        {1, 255, 8, 8, 128, 1, 0},  {1, 4097, 2, 1, 64, 1, 0},    {255, 255, 2, 2, 64, 1, 0}, {33, 255, 14, 2, 64, 1, 0},
        {7, 33, 4, 4, 255, 0, 1},   {40, 70, 3, 1, 96, 0, 0},     {2, 4097, 4, 2, 128, 0, 1}, {100, 33, 1, 1, 16, 1, 0},
        {64, 64, 32, 1, 8, 1, 0},   {3, 5, 2, 1, 80, 1, 0}};
    for (int ci = 0; ci < (int)(sizeof cs / sizeof cs[0]); ci++) {
        mp_attn_params p = {.n_q = cs[ci].n_q, .n_kv = cs[ci].n_kv, .n_head = cs[ci].nh, .n_kv_head = cs[ci].nkv,
                            .head_dim = cs[ci].d, .causal = cs[ci].causal};
        int d = p.head_dim;
        p.q_stride = (int64_t)p.n_head * d + 1, p.k_stride = (int64_t)p.n_kv_head * d * 2, p.v_stride = (int64_t)p.n_kv_head * d + 3;
        p.o_stride = (int64_t)p.n_head * d, p.scale = 1.0f / sqrtf((float)d);
        p.causal_offset = ci == 11 ? -50 : p.n_kv - p.n_q; /* case 11: the first 50 rows see nothing */
        float *mask = NULL;
        if (cs[ci].masked) {
            p.mask_stride = p.n_kv;
            mask = randv((int64_t)p.n_q * p.n_kv, -4, 0);
            for (int64_t i = 0; i < (int64_t)p.n_q * p.n_kv; i += 2) mask[i] = -INFINITY;
            for (int j = 0; j < p.n_kv; j++) mask[j] = -INFINITY; /* row 0 fully masked */
            p.mask = mask;
        }
        float *q = randv((int64_t)p.n_q * p.q_stride, -3, 3), *k = randv((int64_t)p.n_kv * p.k_stride, -3, 3);
        float *v = randv((int64_t)p.n_kv * p.v_stride, -3, 3);
        int64_t on = (int64_t)p.n_q * p.o_stride;
        float *r = randv(on, 0, 1), *y1 = dup(r, on), *y3 = dup(r, on), *ys = dup(r, on);
        mp_ref_attention(r, q, k, v, &p);
        mp_attention(&ex1, y1, q, k, v, &p);
        mp_attention(&ex3, y3, q, k, v, &p);
        mp_attention(&ex_starved, ys, q, k, v, &p);
        CHECK_NEAR_ARR(y1, r, on, 1e-5, "%s attention case %d", lv, ci);
        CHECKF(bits_equal(y1, y3, on), "%s attention case %d: threads differ", lv, ci);
        CHECKF(bits_equal(ys, r, on), "%s attention case %d: no-scratch fallback differs from the reference", lv, ci);
        /* paged K/V: the same keys scattered over blocks in a shuffled order give the same bits */
        {
            int bs = ci % 3 == 0 ? 16 : ci % 3 == 1 ? 7 : 64, nblk = (p.n_kv + bs - 1) / bs + 2;
            int32_t *table = malloc((size_t)nblk * 4);
            for (int b = 0; b < nblk; b++) table[b] = (int32_t)((b * 5 + 3) % nblk);
            int gcd_ok = 1; /* 5 and nblk coprime makes it a permutation */
            for (int b = 0; b < nblk && gcd_ok; b++)
                for (int b2 = 0; b2 < b; b2++) gcd_ok &= table[b] != table[b2];
            if (!gcd_ok) for (int b = 0; b < nblk; b++) table[b] = nblk - 1 - b;
            int64_t rows = (int64_t)nblk * bs;
            float *kp = randv(rows * p.k_stride, 50, 60), *vp = randv(rows * p.v_stride, 50, 60);
            for (int j = 0; j < p.n_kv; j++) {
                int64_t row = (int64_t)table[j / bs] * bs + j % bs;
                memcpy(kp + row * p.k_stride, k + (int64_t)j * p.k_stride, (size_t)p.k_stride * 4);
                memcpy(vp + row * p.v_stride, v + (int64_t)j * p.v_stride, (size_t)p.v_stride * 4);
            }
            mp_attn_params pp = p;
            pp.kv_block_table = table, pp.kv_block_size = bs;
            float *yp = dup(r, on), *rp = dup(r, on);
            mp_attention(&ex3, yp, q, kp, vp, &pp);
            mp_ref_attention(rp, q, kp, vp, &pp);
            CHECKF(bits_equal(yp, y1, on), "%s attention case %d: paged K/V differs", lv, ci);
            CHECKF(bits_equal(rp, r, on), "%s attention case %d: paged K/V differs (reference)", lv, ci);
            free(table), free(kp), free(vp), free(yp), free(rp);
        }
        free(q), free(k), free(v), free(r), free(y1), free(y3), free(ys), free(mask);
    }
}

/* Decode (one query row, no GQA: a tile of one lane) gives the bits that row gets inside a tile of many
 * rows: with a mask, a causal limit inside a key block, key counts around the block size. */
static void test_attention_one_lane(const char *lv) {
    struct { int n_q, n_kv, nh, d, causal, masked; } cs[] = {
        {5, 1500, 6, 64, 0, 0}, {9, 70, 3, 33, 1, 1}, {4, 64, 2, 80, 1, 0}, {3, 129, 1, 17, 0, 1}, {6, 1, 2, 16, 1, 0}};
    for (int ci = 0; ci < (int)(sizeof cs / sizeof cs[0]); ci++) {
        mp_attn_params p = {.n_q = cs[ci].n_q, .n_kv = cs[ci].n_kv, .n_head = cs[ci].nh, .n_kv_head = cs[ci].nh,
                            .head_dim = cs[ci].d, .causal = cs[ci].causal};
        const int d = p.head_dim;
        p.q_stride = p.k_stride = p.v_stride = p.o_stride = (int64_t)p.n_head * d;
        p.scale = 1.0f / sqrtf((float)d);
        p.causal_offset = p.n_kv - p.n_q - 2; /* the last rows see up to 2 keys fewer than all */
        float *mask = NULL;
        if (cs[ci].masked) {
            p.mask_stride = p.n_kv;
            mask = randv((int64_t)p.n_q * p.n_kv, -4, 0);
            for (int64_t i = 0; i < (int64_t)p.n_q * p.n_kv; i += 3) mask[i] = -INFINITY;
            p.mask = mask;
        }
        float *q = randv((int64_t)p.n_q * p.q_stride, -3, 3), *k = randv((int64_t)p.n_kv * p.k_stride, -3, 3);
        float *v = randv((int64_t)p.n_kv * p.v_stride, -3, 3);
        const int64_t on = (int64_t)p.n_q * p.o_stride;
        float *all = randv(on, 0, 1), *one = dup(all, on), *r = dup(all, on);
        mp_attention(&ex3, all, q, k, v, &p);
        mp_ref_attention(r, q, k, v, &p);
        for (int i = 0; i < p.n_q; i++) {
            mp_attn_params p1 = p;
            p1.n_q = 1;
            p1.causal_offset = p.causal_offset + i;
            p1.mask = mask ? mask + (int64_t)i * p.n_kv : NULL;
            mp_attention(&ex3, one + i * p.o_stride, q + i * p.q_stride, k, v, &p1);
        }
        CHECK_NEAR_ARR(one, r, on, 1e-5, "%s one-lane attention case %d", lv, ci);
        CHECKF(bits_equal(one, all, on), "%s one-lane attention case %d: differs from the same rows in one call", lv, ci);
        free(q), free(k), free(v), free(all), free(one), free(r), free(mask);
    }
}

/* One query row over a fixed F16 context (Whisper's cross-attention in decode): the SIMD head kernel vs
 * its scalar twin, vs mp_ref_attention on the same F16-rounded keys and values, and over 1 / 3 threads
 * and the scratch-less exec. */
static void test_attention_f16ctx(const char *lv) {
    struct { int n_kv, nh, d; } cs[] = {{1, 1, 1}, {15, 2, 17}, {17, 3, 64}, {1500, 6, 64}, {130, 2, 80}, {64, 1, 130}, {67, 5, 16}};
    for (int ci = 0; ci < (int)(sizeof cs / sizeof cs[0]); ci++) {
        const int n_kv = cs[ci].n_kv, nh = cs[ci].nh, d = cs[ci].d;
        const int64_t D = (int64_t)nh * d, ks = D + 3, vs = D + 5, nb = (n_kv + 15) / 16;
        float *k = randv(n_kv * ks, -3, 3), *v = randv(n_kv * vs, -3, 3), *q = randv(D, -1, 1);
        for (int64_t i = 0; i < n_kv * ks; i++) k[i] = mp_f16_to_f32(mp_f32_to_f16(k[i]));
        for (int64_t i = 0; i < n_kv * vs; i++) v[i] = mp_f16_to_f32(mp_f32_to_f16(v[i]));
        mp_f16 *kp = malloc(sizeof(mp_f16) * (size_t)(nh * nb * 16 * d)), *vp = malloc(sizeof(mp_f16) * (size_t)(nh * nb * 16 * d));
        mp_attn_pack_f16ctx(&ex3, kp, vp, k, v, n_kv, ks, vs, nh, d);
        float *r = randv(D, 0, 1), *rr = dup(r, D), *y1 = dup(r, D), *y3 = dup(r, D), *ys = dup(r, D);
        float *scr = malloc(sizeof(float) * (size_t)n_kv);
        mp_ref_attention_f16ctx(r, q, kp, vp, n_kv, nh, d, 0.125f, scr);
        mp_attn_params p = {.n_q = 1, .n_kv = n_kv, .n_head = nh, .n_kv_head = nh, .head_dim = d, .q_stride = D,
                            .k_stride = ks, .v_stride = vs, .o_stride = D, .scale = 0.125f};
        mp_ref_attention(rr, q, k, v, &p);
        mp_attention_f16ctx(&ex1, y1, q, kp, vp, n_kv, nh, d, 0.125f);
        mp_attention_f16ctx(&ex3, y3, q, kp, vp, n_kv, nh, d, 0.125f);
        mp_attention_f16ctx(&ex_starved, ys, q, kp, vp, n_kv, nh, d, 0.125f);
        CHECK_NEAR_ARR(r, rr, D, 1e-5, "%s f16-context attention case %d: reference vs mp_ref_attention", lv, ci);
        CHECK_NEAR_ARR(y1, r, D, 1e-5, "%s f16-context attention case %d", lv, ci);
        CHECKF(bits_equal(y1, y3, D), "%s f16-context attention case %d: threads differ", lv, ci);
        CHECKF(bits_equal(y1, ys, D), "%s f16-context attention case %d: heap scratch differs", lv, ci);
        free(k), free(v), free(q), free(kp), free(vp), free(r), free(rr), free(y1), free(y3), free(ys), free(scr);
    }
}

static void mk_weights(mp_tensor *t, mp_dtype dt, int ndim, const int64_t *ne, void **store) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= ne[i];
    float *w = randv(n, -1, 1);
    void *buf = malloc((size_t)n * 4);
    for (int64_t i = 0; i < n; i++) {
        if (dt == MP_F32) ((float *)buf)[i] = w[i];
        else if (dt == MP_F16) ((mp_f16 *)buf)[i] = mp_f32_to_f16(w[i]);
        else ((mp_bf16 *)buf)[i] = mp_f32_to_bf16(w[i]);
    }
    free(w);
    mp_tensor_init(t, dt, ndim, ne, buf);
    *store = buf;
}

/* runs conv kind on ref, ex1, ex3, starved and compares */
static void conv_check(const char *lv, const char *what, int64_t ny, void (*run)(mp_exec *ex, float *y, void *ctx), void *ctx) {
    float *r = randv(ny, 0, 1), *y1 = dup(r, ny), *y3 = dup(r, ny), *ys = dup(r, ny);
    run(NULL, r, ctx);
    run(&ex1, y1, ctx);
    run(&ex3, y3, ctx);
    run(&ex_starved, ys, ctx);
    CHECK_NEAR_ARR(y1, r, ny, 2e-5, "%s %s", lv, what);
    CHECK_NEAR_ARR(ys, r, ny, 2e-5, "%s %s (no scratch)", lv, what);
    CHECKF(bits_equal(y1, y3, ny), "%s %s: threads differ", lv, what);
    free(r), free(y1), free(y3), free(ys);
}

typedef struct {
    const float *x, *bias;
    mp_tensor *w;
    int64_t c, l, h, wd, t;
    int batch, stride, pad, kt;
} cv;

static void run_dw(mp_exec *ex, float *y, void *vc) {
    cv *c = vc;
    if (ex) mp_conv1d_dw(ex, y, c->x, c->w, c->bias, c->batch, c->c, c->l, c->stride, c->pad);
    else mp_ref_conv1d_dw(y, c->x, c->w, c->bias, c->batch, c->c, c->l, c->stride, c->pad);
}
static void run_c1(mp_exec *ex, float *y, void *vc) {
    cv *c = vc;
    if (ex) mp_conv1d(ex, y, c->x, c->w, c->bias, c->batch, c->c, c->l, c->stride, c->pad);
    else mp_ref_conv1d(y, c->x, c->w, c->bias, c->batch, c->c, c->l, c->stride, c->pad);
}
static void run_c2(mp_exec *ex, float *y, void *vc) {
    cv *c = vc;
    if (ex) mp_conv2d(ex, y, c->x, c->w, c->bias, c->batch, c->c, c->h, c->wd, c->stride, c->stride + 1, c->pad, c->pad);
    else mp_ref_conv2d(y, c->x, c->w, c->bias, c->batch, c->c, c->h, c->wd, c->stride, c->stride + 1, c->pad, c->pad);
}
static void run_c3(mp_exec *ex, float *y, void *vc) {
    cv *c = vc;
    if (ex) mp_conv3d(ex, y, c->x, c->w, c->kt, c->bias, c->batch, c->c, c->t, c->h, c->wd, c->kt, c->stride, c->stride);
    else mp_ref_conv3d(y, c->x, c->w, c->kt, c->bias, c->batch, c->c, c->t, c->h, c->wd, c->kt, c->stride, c->stride);
}

static void test_conv(const char *lv) {
    char what[128];
    mp_dtype dts[3] = {MP_F32, MP_F16, MP_BF16};
    for (int di = 0; di < 3; di++) {
        void *store;
        mp_tensor w;
        for (int si = 0; si < NS; si++) {
            int Ks[3] = {1, 7, 31};
            for (int ki = 0; ki < 3; ki++) {
                int64_t c = 5, L = sizes[si], K = Ks[ki];
                for (int st = 1; st <= 2; st++) {
                    int pad = (int)K / 2;
                    if ((L + 2 * pad - K) < 0) continue;
                    int64_t Lo = (L + 2 * pad - K) / st + 1, ne[3] = {K, 1, c};
                    mk_weights(&w, dts[di], 3, ne, &store);
                    float *x = randv(2 * c * L, -1, 1), *b = randv(c, -1, 1);
                    cv cc = {.x = x, .bias = b, .w = &w, .c = c, .l = L, .batch = 2, .stride = st, .pad = pad};
                    snprintf(what, sizeof what, "conv1d_dw dt %d L %lld K %lld s %d", dts[di], (long long)L, (long long)K, st);
                    conv_check(lv, what, 2 * c * Lo, run_dw, &cc);
                    free(x), free(b), free(store);
                }
            }
        }
        for (int si = 0; si < 4; si++) {
            int64_t ci = sizes[si] < 40 ? sizes[si] : 40, co = 9, L = sizes[si] + 2, K = 3;
            for (int st = 1; st <= 2; st++) {
                int64_t ne[3] = {K, ci, co}, Lo = (L + 2 - K) / st + 1;
                mk_weights(&w, dts[di], 3, ne, &store);
                float *x = randv(2 * ci * L, -1, 1), *b = randv(co, -1, 1);
                cv cc = {.x = x, .bias = b, .w = &w, .c = ci, .l = L, .batch = 2, .stride = st, .pad = 1};
                snprintf(what, sizeof what, "conv1d dt %d ci %lld L %lld s %d", dts[di], (long long)ci, (long long)L, st);
                conv_check(lv, what, 2 * co * Lo, run_c1, &cc);
                free(x), free(b), free(store);
            }
        }
        for (int v = 0; v < 3; v++) {
            int64_t ci = v == 2 ? 1 : 3, co = 7, H = v ? 33 : 28, W = v ? 7 + 6 * v : 56, kh = v ? 3 : 14, kw = v ? 3 : 14;
            int s = v ? 1 : 14, pad = v == 1;
            /* run_c2 uses stride (s, s+1) */
            int64_t ne[4] = {kw, kh, ci, co}, Ho = (H + 2 * pad - kh) / s + 1, Wo = (W + 2 * pad - kw) / (s + 1) + 1;
            mk_weights(&w, dts[di], 4, ne, &store);
            float *x = randv(ci * H * W, -1, 1), *b = randv(co, -1, 1);
            cv cc = {.x = x, .bias = v ? b : NULL, .w = &w, .c = ci, .h = H, .wd = W, .batch = 1, .stride = s, .pad = pad};
            snprintf(what, sizeof what, "conv2d dt %d v %d", dts[di], v);
            conv_check(lv, what, co * Ho * Wo, run_c2, &cc);
            free(x), free(b), free(store);
        }
        {
            int64_t ci = 3, co = 5, T = 5, H = 28, W = 14, kt = 2, k = 14;
            int64_t ne[4] = {k, k, kt * ci, co}, To = (T - kt) / kt + 1, Ho = (H - k) / k + 1, Wo = (W - k) / k + 1;
            mk_weights(&w, dts[di], 4, ne, &store);
            float *x = randv(ci * T * H * W, -1, 1), *b = randv(co, -1, 1);
            cv cc = {.x = x, .bias = b, .w = &w, .c = ci, .t = T, .h = H, .wd = W, .batch = 1, .stride = (int)k, .kt = (int)kt};
            snprintf(what, sizeof what, "conv3d dt %d", dts[di]);
            conv_check(lv, what, co * To * Ho * Wo, run_c3, &cc);
            free(x), free(b), free(store);
        }
    }
}

int main(void) {
    mp_error err;
    if (ops_test_init(8 << 20) || mp_exec_init(&ex_starved, MP_BACKEND_CPU, ot_pool3, 0, &err)) return 1;
    int best = mp_cpu_set_level(-1);
    if (best < 1) {
        fprintf(stderr, "test_ops_simd: this CPU has no AVX2/AVX-512: nothing to compare\n");
        return MP_TEST_SKIP;
    }
    for (int level = 1; level <= best; level++) {
        mp_cpu_set_level(level);
        const char *lv = mp_cpu_level_name(level);
        test_elementwise(lv);
        test_norms_softmax(lv);
        test_rope(lv);
        test_attention(lv);
        test_attention_one_lane(lv);
        test_attention_f16ctx(lv);
        test_conv(lv);
    }
    mp_exec_free(&ex_starved);
    ops_test_free();
    return mp_test_result("test_ops_simd");
}
