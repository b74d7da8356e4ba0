/* bench_kernels.c — `mmpipe bench kernels [-t N] [--quick]`: the non-matmul CPU ops (attention prefill
 * and decode, norms, softmax, activations, rope, depthwise conv, patch-embedding conv) at the scalar
 * reference level and at the best SIMD level, as GFLOP/s with the ratio to this machine's measured FMA
 * peak (a register-only FMA loop on the same threads), or GB/s for the memory-bound ops.
 * MMPIPE_SIMD=avx2 (or ref) caps the level measured. --attention: the attention shapes only.
 *   BENCH kernels op=attention shape=... level=avx512 threads=2 ms=... gflops=... peak=... ratio=...
 */
#include <immintrin.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "apps/cli.h"
#include "bench.h"
#include "kernels/ops.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---------------------------------------------------------------- FMA peak */

typedef struct { double flops[64]; } peak_job;

/* 12 independent FMA chains in registers (latency 4 x 2 pipes needs >= 8) */
#define FMA12(F, b, c)                                                                                     \
    a0 = F(a0, b, c), a1 = F(a1, b, c), a2 = F(a2, b, c), a3 = F(a3, b, c), a4 = F(a4, b, c),              \
    a5 = F(a5, b, c), a6 = F(a6, b, c), a7 = F(a7, b, c), a8 = F(a8, b, c), a9 = F(a9, b, c),               \
    a10 = F(a10, b, c), a11 = F(a11, b, c)

/* One definition for both widths: 12 register chains, then a fold so nothing is optimized away. */
#define DEF_FMA_LOOP(name, tgt, V, SET1, FMADD, ADD, W)                                                    \
    __attribute__((target(tgt))) static double name(long iters) {                                          \
        V b = SET1(0.999f), c = SET1(0.001f), a0 = SET1(0), a1 = SET1(1), a2 = SET1(2), a3 = SET1(3);       \
        V a4 = SET1(4), a5 = SET1(5), a6 = SET1(6), a7 = SET1(7), a8 = SET1(8), a9 = SET1(9);                \
        V a10 = SET1(10), a11 = SET1(11);                                                                  \
        for (long it = 0; it < iters; it++) FMA12(FMADD, b, c);                                            \
        V s = ADD(ADD(ADD(a0, a1), ADD(a2, a3)), ADD(ADD(a4, a5), ADD(a6, a7)));                            \
        s = ADD(s, ADD(ADD(a8, a9), ADD(a10, a11)));                                                       \
        float out[W];                                                                                      \
        memcpy(out, &s, sizeof out);                                                                       \
        return out[0];                                                                                     \
    }
DEF_FMA_LOOP(fma_loop_512, "avx512f,fma", __m512, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_add_ps, 16)
DEF_FMA_LOOP(fma_loop_256, "avx2,fma", __m256, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_add_ps, 8)

static volatile double g_sink;
static void peak_task(void *arg, int ith, int nth) {
    peak_job *j = arg;
    (void)nth;
    long iters = 20000000;
    int wide = mp_cpu_level() >= 2;
    double t0 = now_s();
    g_sink = wide ? fma_loop_512(iters) : fma_loop_256(iters);
    double t = now_s() - t0;
    if (ith < 64) j->flops[ith] = (double)iters * 12 * (wide ? 16 : 8) * 2 / t;
}

static double fma_peak(mp_threadpool *tp) {
    peak_job j;
    memset(&j, 0, sizeof j);
    double best = 0;
    for (int rep = 0; rep < 3; rep++) {
        mp_parallel(tp, peak_task, &j);
        double sum = 0;
        for (int i = 0; i < mp_threadpool_size(tp) && i < 64; i++) sum += j.flops[i];
        if (sum > best) best = sum;
    }
    return best;
}

/* ---------------------------------------------------------------- harness */

typedef void (*bench_fn)(mp_exec *ex, void *ctx);

/* best time of reps runs (after one warm-up) */
static double time_best(mp_exec *ex, bench_fn fn, void *ctx, int reps) {
    fn(ex, ctx);
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now_s();
        fn(ex, ctx);
        double t = now_s() - t0;
        if (t < best) best = t;
    }
    return best;
}

static float *rnd(int64_t n) {
    float *v = mp_aligned_alloc((size_t)n * sizeof(float));
    unsigned s = 12345;
    for (int64_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        v[i] = (float)(s >> 8) / 16777216.0f * 2.0f - 1.0f;
    }
    return v;
}

typedef struct {
    mp_attn_params p;
    float *q, *k, *v, *o;
} attn_b;
static void run_attn(mp_exec *ex, void *c) {
    attn_b *a = c;
    mp_attention(ex, a->o, a->q, a->k, a->v, &a->p);
}

typedef struct {
    int op;
    float *x, *y, *w, *b, *m;
    int64_t rows, cols;
    int32_t *pos;
    mp_rope_params rp;
    mp_tensor wt;
} simple_b;
static void run_simple(mp_exec *ex, void *c) {
    simple_b *s = c;
    int64_t n = s->rows * s->cols;
    switch (s->op) {
    case 0: mp_rmsnorm(ex, s->y, s->x, s->w, s->rows, s->cols, 1e-6f); break;
    case 1: mp_layernorm(ex, s->y, s->x, s->w, s->b, s->rows, s->cols, 1e-5f); break;
    case 2: memcpy(s->y, s->x, (size_t)n * 4); mp_softmax(ex, s->y, s->rows, s->cols, NULL, 1, 0); break;
    case 3: mp_gelu(ex, s->y, s->x, n, MP_GELU_ERF); break;
    case 4: mp_gelu(ex, s->y, s->x, n, MP_GELU_TANH); break;
    case 5: mp_swiglu(ex, s->y, s->x, s->m, n); break;
    case 6: mp_rope(ex, s->y, s->rows, 32, 32 * 128, s->pos, &s->rp); break;
    case 7: mp_conv1d_dw(ex, s->y, s->x, &s->wt, s->b, 1, s->rows, s->cols, 1, 15); break;
    case 8: mp_conv2d(ex, s->y, s->x, &s->wt, s->b, 1, 3, 448, 448, 14, 14, 0, 0); break;
    }
}

int bench_kernels(int argc, char **argv) {
    int threads = 0, quick = 0, attn_only = 0;
    for (int i = 1; i < argc; i++) {
        if ((!strcmp(argv[i], "-t") || !strcmp(argv[i], "--threads")) && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--attention")) attn_only = 1;
        else {
            fprintf(stderr, "usage: mmpipe bench kernels [-t N] [--quick] [--attention]\n");
            return 1;
        }
    }
    mp_threadpool *tp = mp_threadpool_create(threads);
    mp_exec ex;
    mp_error err;
    if (!tp || mp_exec_init(&ex, MP_BACKEND_CPU, tp, (size_t)256 << 20, &err)) {
        fprintf(stderr, "mmpipe bench kernels: %s\n", tp ? err.msg : "cannot create the thread pool");
        return 1;
    }
    int nth = mp_threadpool_size(tp), best = mp_cpu_level(); /* MMPIPE_SIMD=avx2 benchmarks the AVX2 path */
    double peak = fma_peak(tp);
    printf("BENCH kernels op=fma_peak level=%s threads=%d gflops=%.1f\n", mp_cpu_level_name(best), nth, peak / 1e9);
    int reps = quick ? 2 : 5;

    /* attention: prefill shapes (Qwen2-0.5B-like GQA causal; whisper-base encoder; ViT-L/14 image) and
     * decode (one query over a long cache) */
    struct { const char *name; int n_q, n_kv, nh, nkv, d, causal; } at[] = {
        {"prefill_q512_h14/2_d64_causal", 512, 512, 14, 2, 64, 1},
        {"encoder_q1500_h8_d64", 1500, 1500, 8, 8, 64, 0},
        {"vit_q577_h16_d64", 577, 577, 16, 16, 64, 0},
        {"siglip_q1024_h12_d64", 1024, 1024, 12, 12, 64, 0}, /* SmolVLM's vision tower, one 512 px tile */
        {"prefill_q256_kv2048_h32/8_d128_causal", 256, 2048, 32, 8, 128, 1},
        {"decode_q1_kv4096_h32/8_d128", 1, 4096, 32, 8, 128, 1},
        {"decode_q1_kv1500_h8_d64", 1, 1500, 8, 8, 64, 0},
    };
    for (size_t c = 0; c < sizeof at / sizeof at[0]; c++) {
        attn_b a = {.p = {.n_q = at[c].n_q, .n_kv = at[c].n_kv, .n_head = at[c].nh, .n_kv_head = at[c].nkv,
                          .head_dim = at[c].d, .causal = at[c].causal}};
        a.p.q_stride = a.p.o_stride = (int64_t)a.p.n_head * a.p.head_dim;
        a.p.k_stride = a.p.v_stride = (int64_t)a.p.n_kv_head * a.p.head_dim;
        a.p.scale = 1.0f / sqrtf((float)a.p.head_dim);
        a.p.causal_offset = a.p.n_kv - a.p.n_q;
        a.q = rnd((int64_t)a.p.n_q * a.p.q_stride), a.o = rnd((int64_t)a.p.n_q * a.p.q_stride);
        a.k = rnd((int64_t)a.p.n_kv * a.p.k_stride), a.v = rnd((int64_t)a.p.n_kv * a.p.k_stride);
        /* visible (query, key) pairs */
        double pairs = 0;
        for (int i = 0; i < a.p.n_q; i++) {
            int64_t lim = a.p.causal ? i + a.p.causal_offset + 1 : a.p.n_kv;
            pairs += (double)(lim < a.p.n_kv ? lim : a.p.n_kv);
        }
        double flops = 4.0 * pairs * a.p.n_head * a.p.head_dim;
        double bytes = 2.0 * a.p.n_kv * a.p.k_stride * 4;
        double t_ref = 0;
        for (int lv = 0; lv <= best; lv += best > 0 ? best : 1) {
            mp_cpu_set_level(lv);
            if (lv == 0 && ((quick && at[c].n_q > 300) || attn_only)) continue;
            double t = time_best(&ex, run_attn, &a, lv == 0 ? 1 : reps);
            if (lv == 0) t_ref = t;
            printf("BENCH kernels op=attention shape=%s level=%s threads=%d ms=%.3f gflops=%.2f ratio=%.3f kv_gbs=%.1f",
                   at[c].name, mp_cpu_level_name(lv), nth, t * 1e3, flops / t / 1e9, flops / t / peak, bytes / t / 1e9);
            if (lv > 0 && t_ref > 0) printf(" speedup_vs_ref=%.1f", t_ref / t);
            printf("\n");
            if (best == 0) break;
        }
        mp_aligned_free(a.q), mp_aligned_free(a.o), mp_aligned_free(a.k), mp_aligned_free(a.v);
    }
    if (attn_only) {
        mp_exec_free(&ex);
        mp_threadpool_free(tp);
        return 0;
    }

    /* memory-bound ops: GB/s of data read + written */
    struct { const char *name; int op; int64_t rows, cols; double passes; } ss[] = {
        {"rmsnorm_512x4096", 0, 512, 4096, 2}, {"layernorm_512x4096", 1, 512, 4096, 2},
        {"softmax_causal_512x4096", 2, 512, 4096, 3}, {"gelu_erf_2M", 3, 512, 4096, 2},
        {"gelu_tanh_2M", 4, 512, 4096, 2}, {"swiglu_2M", 5, 512, 4096, 3},
        {"rope_512tok_32x128", 6, 512, 4096, 2}, {"dwconv_k31_512x1500", 7, 512, 1500, 2},
        {"conv2d_patch14_448x448x3_to_1024", 8, 1, 3 * 448 * 448, 1},
    };
    for (size_t c = 0; c < sizeof ss / sizeof ss[0]; c++) {
        simple_b s = {.op = ss[c].op, .rows = ss[c].rows, .cols = ss[c].cols};
        int64_t n = s.rows * s.cols, ny = s.op == 8 ? 1024 * 32 * 32 : n;
        s.x = rnd(n), s.y = rnd(ny), s.m = rnd(n), s.w = rnd(s.cols), s.b = rnd(s.op == 8 ? 1024 : s.cols > 512 ? s.cols : 512);
        s.pos = malloc((size_t)s.rows * 4);
        for (int64_t i = 0; i < s.rows; i++) s.pos[i] = (int32_t)i;
        s.rp = (mp_rope_params){.head_dim = 128, .n_rot = 128, .mode = MP_ROPE_NEOX, .theta = 10000, .freq_scale = 1,
                                .attn_factor = 1};
        float *wbuf = NULL;
        if (s.op == 7) {
            int64_t ne[3] = {31, 1, s.rows};
            wbuf = rnd(31 * s.rows);
            mp_tensor_init(&s.wt, MP_F32, 3, ne, wbuf);
        } else if (s.op == 8) {
            int64_t ne[4] = {14, 14, 3, 1024};
            wbuf = rnd(14 * 14 * 3 * 1024);
            mp_tensor_init(&s.wt, MP_F32, 4, ne, wbuf);
        }
        double t_ref = 0;
        for (int lv = 0; lv <= best; lv += best > 0 ? best : 1) {
            mp_cpu_set_level(lv);
            double t = time_best(&ex, run_simple, &s, lv == 0 ? 2 : reps * 4);
            if (lv == 0) t_ref = t;
            printf("BENCH kernels op=%s level=%s threads=%d ms=%.3f", ss[c].name, mp_cpu_level_name(lv), nth, t * 1e3);
            if (s.op == 7) printf(" gflops=%.2f ratio=%.3f", 2.0 * 31 * n / t / 1e9, 2.0 * 31 * n / t / peak);
            else if (s.op == 8) {
                double fl = 2.0 * 1024 * 1024 * 588;
                printf(" gflops=%.2f ratio=%.3f", fl / t / 1e9, fl / t / peak);
            } else printf(" gbs=%.1f", ss[c].passes * n * 4 / t / 1e9);
            if (lv > 0 && t_ref > 0) printf(" speedup_vs_ref=%.1f", t_ref / t);
            printf("\n");
            if (best == 0) break;
        }
        mp_aligned_free(s.x), mp_aligned_free(s.y), mp_aligned_free(s.m), mp_aligned_free(s.w), mp_aligned_free(s.b);
        mp_aligned_free(wbuf);
        free(s.pos);
    }
    mp_cpu_set_level(best);
    mp_exec_free(&ex);
    mp_threadpool_free(tp);
    return 0;
}
