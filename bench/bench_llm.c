/* bench_llm.c — `mmpipe bench llm`: prefill and decode speed of the decoder.
 *
 * Models (random weights, written by the bench into --dir and reused when present):
 *   stories15M, stories110M  llama2.c legacy checkpoints (F32), the shapes of Karpathy's tinyllamas
 *   smollm2                 SmolLM2-135M-shaped GGUF (llama arch, 30 layers, 576 wide, GQA 9:3, tied
 *                           49152 vocab) in F32, BF16, Q8_0 and Q4_K (llama.cpp's rule: rows whose
 *                           width is not a multiple of 256 fall back to Q5_0)
 * For each: prefill tokens/s (and GFLOP/s vs the measured FMA peak), single-sequence decode tokens/s
 * and GB/s of weights read vs a STREAM triad measured in the same run, and 16-sequence batched decode.
 * Prints `BENCH llm key=value ...` lines. --write-runc writes the llama2.c run.c/runq.c checkpoints of
 * the same shapes (legacy F32 and version-2 int8) so the upstream programs can be timed beside us.
 */
#include "apps/cli.h"
#include "bench.h"
#include "mmpipe.h"

#include "kernels/mp.h"
#include "kernels/ops.h"
#include "llm/kvcache.h"
#include "llm/llama.h"
#include "models/gguf.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>


static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct shape {
    const char *name;
    int dim, hidden, layers, heads, kv_heads, vocab, seq_len;
    float theta;
    int tied;
} shape;

static const shape shapes[] = {
    {"stories15M", 288, 768, 6, 6, 6, 32000, 256, 10000.0f, 1},
    {"stories110M", 768, 2048, 12, 12, 12, 32000, 1024, 10000.0f, 1},
    {"smollm2", 576, 1536, 30, 9, 3, 49152, 8192, 100000.0f, 1},
};

/* ---------------------------------------------------------------- random data */

static inline uint64_t xs(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}
static void randf(uint64_t *s, float *x, size_t n, float scale) {
    for (size_t i = 0; i < n; i++) x[i] = ((float)(xs(s) >> 40) * (1.0f / 16777216.0f) * 2.0f - 1.0f) * scale;
}

static int file_size_is(const char *path, long long size) {
    struct stat st;
    return stat(path, &st) == 0 && (long long)st.st_size == size;
}

static int write_floats(FILE *f, uint64_t *s, size_t n, float scale) {
    float buf[8192];
    while (n) {
        size_t k = n < 8192 ? n : 8192;
        randf(s, buf, k, scale);
        if (fwrite(buf, sizeof(float), k, f) != k) return -1;
        n -= k;
    }
    return 0;
}

/* llama2.c legacy checkpoint (run.c) */
static long long l2c_size(const shape *p) {
    long long D = p->dim, F = p->hidden, L = p->layers, V = p->vocab, hs = D / p->heads, kvd = hs * p->kv_heads;
    return 28 + 4 * (V * D + L * D * 2 + L * D * D * 2 + L * D * kvd * 2 + L * D * F * 3 + D + p->seq_len * hs);
}

static int write_llama2c(const char *path, const shape *p) {
    if (file_size_is(path, l2c_size(p))) return 0;
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int32_t h[7] = {p->dim, p->hidden, p->layers, p->heads, p->kv_heads, p->vocab, p->seq_len};
    fwrite(h, 4, 7, f);
    uint64_t s = 0x5eed;
    size_t D = p->dim, F = p->hidden, L = p->layers, V = p->vocab, hs = D / p->heads, kvd = hs * p->kv_heads;
    float sd = 1.0f / sqrtf((float)D), sf = 1.0f / sqrtf((float)F);
    /* embedding (= classifier): rows 1 and 2 (BOS, EOS) are zero so that run.c's greedy never stops early */
    int rc = write_floats(f, &s, D, 1.0f) | write_floats(f, &s, 2 * D, 0.0f) | write_floats(f, &s, (V - 3) * D, 1.0f);
    for (size_t i = 0; i < L * D && !rc; i++) rc = fwrite(&(float){1.0f}, 4, 1, f) != 1;
    rc |= write_floats(f, &s, L * D * D, sd) | write_floats(f, &s, L * D * kvd * 2, sd) | write_floats(f, &s, L * D * D, sd);
    for (size_t i = 0; i < L * D && !rc; i++) rc = fwrite(&(float){1.0f}, 4, 1, f) != 1;
    rc |= write_floats(f, &s, L * D * F, sd) | write_floats(f, &s, L * F * D, sf) | write_floats(f, &s, L * D * F, sd);
    for (size_t i = 0; i < D && !rc; i++) rc = fwrite(&(float){1.0f}, 4, 1, f) != 1; /* final norm */
    rc |= write_floats(f, &s, (size_t)p->seq_len * hs, 0.0f);
    if (fclose(f) != 0) rc = -1;
    return rc;
}

/* llama2.c version-2 export (runq.c): 256-byte header, F32 norms, then per tensor int8 values and F32
 * group scales */
static int write_runq(const char *path, const shape *p) {
    int gs = 64;
    while (p->dim % gs) gs /= 2;
    size_t D = p->dim, F = p->hidden, L = p->layers, V = p->vocab, hs = D / p->heads, kvd = hs * p->kv_heads;
    long long size = 256 + 4LL * (2 * L * D + D);
    size_t per[8] = {V * D, D * D, D * kvd, D * kvd, D * D, D * F, F * D, D * F};
    for (int i = 0; i < 8; i++) size += (long long)(i ? L : 1) * (long long)(per[i] + per[i] / (size_t)gs * 4);
    if (file_size_is(path, size)) return 0;
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    uint8_t hdr[256] = {0};
    uint32_t magic = 0x616b3432;
    int32_t ver = 2, cfg[7] = {p->dim, p->hidden, p->layers, p->heads, p->kv_heads, p->vocab, p->seq_len};
    memcpy(hdr, &magic, 4);
    memcpy(hdr + 4, &ver, 4);
    memcpy(hdr + 8, cfg, 28);
    hdr[36] = 1; /* shared classifier */
    memcpy(hdr + 37, &gs, 4);
    fwrite(hdr, 1, 256, f);
    uint64_t s = 0x7a11;
    int rc = 0;
    for (size_t i = 0; i < 2 * L * D + D && !rc; i++) rc = fwrite(&(float){1.0f}, 4, 1, f) != 1;
    int8_t q[8192];
    for (int t = 0; t < 8 && !rc; t++)
        for (size_t l = 0; l < (t ? L : 1) && !rc; l++) {
            for (size_t n = per[t]; n && !rc;) {
                size_t k = n < 8192 ? n : 8192;
                for (size_t i = 0; i < k; i++) q[i] = (int8_t)((int)(xs(&s) % 255) - 127);
                if (t == 0 && n == per[0]) memset(q + D, 0, 2 * D); /* BOS/EOS rows, as above */
                rc = fwrite(q, 1, k, f) != k;
                n -= k;
            }
            rc |= write_floats(f, &s, per[t] / (size_t)gs, 0.0001f);
        }
    if (fclose(f) != 0) rc = -1;
    return rc;
}

/* SmolLM2-shaped GGUF; tensors are produced at write time */
typedef struct gg_fill {
    mp_dtype dt;
    int64_t K;
    float scale, offset;
} gg_fill;

static int gguf_fill(void *ctx, int64_t index, void *buf, size_t nbytes, mp_error *err) {
    const gg_fill *g = (const gg_fill *)ctx + index;
    int64_t rb = mp_dtype_row_bytes(g->dt, g->K);
    if (rb <= 0) return mp_errf(err, "bench: bad row size");
    int64_t rows = (int64_t)nbytes / rb;
    float *row = malloc((size_t)g->K * sizeof(float));
    if (!row) return mp_errf(err, "bench: out of memory");
    uint64_t s = 0x9e3779b97f4a7c15ull ^ (uint64_t)(index + 1) * 0x2545F4914F6CDD1Dull;
    for (int64_t r = 0; r < rows; r++) {
        randf(&s, row, (size_t)g->K, g->scale);
        for (int64_t k = 0; k < g->K; k++) row[k] += g->offset;
        if (mp_quantize_row(g->dt, row, (uint8_t *)buf + r * rb, g->K) < 0) {
            free(row);
            return mp_errf(err, "bench: cannot quantize to %s", mp_dtype_name(g->dt));
        }
    }
    free(row);
    return 0;
}

static mp_dtype weight_type(mp_dtype want, int64_t K) {
    if (want == MP_Q4_K && K % MP_QK_K != 0) return MP_Q5_0; /* llama.cpp's fallback */
    return want;
}

static int write_smollm(const char *path, const shape *p, mp_dtype dt, mp_error *err) {
    struct stat st;
    if (stat(path, &st) == 0 && st.st_size > 0) return 0;
    mp_gguf_writer *w = mp_gguf_writer_new();
    if (!w) return mp_errf(err, "bench: out of memory");
    mp_gguf_set_str(w, "general.architecture", "llama");
    mp_gguf_set_u32(w, "llama.context_length", (uint32_t)p->seq_len);
    mp_gguf_set_u32(w, "llama.embedding_length", (uint32_t)p->dim);
    mp_gguf_set_u32(w, "llama.feed_forward_length", (uint32_t)p->hidden);
    mp_gguf_set_u32(w, "llama.block_count", (uint32_t)p->layers);
    mp_gguf_set_u32(w, "llama.attention.head_count", (uint32_t)p->heads);
    mp_gguf_set_u32(w, "llama.attention.head_count_kv", (uint32_t)p->kv_heads);
    mp_gguf_set_u32(w, "llama.rope.dimension_count", (uint32_t)(p->dim / p->heads));
    mp_gguf_set_f32(w, "llama.rope.freq_base", p->theta);
    mp_gguf_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    mp_gguf_set_u32(w, "llama.vocab_size", (uint32_t)p->vocab);
    const int64_t D = p->dim, F = p->hidden, hd = D / p->heads, kvd = hd * p->kv_heads;
    gg_fill *fills = calloc((size_t)(3 + p->layers * 9), sizeof(gg_fill));
    int n = 0;
    char nm[96];
#define ADD(name, K, N, dtype, sc, off)                                                          \
    do {                                                                                         \
        int64_t ne_[2] = {K, N};                                                                 \
        fills[n] = (gg_fill){dtype, K, sc, off};                                                 \
        mp_gguf_writer_add_tensor_fn(w, name, dtype, (N) > 1 ? 2 : 1, ne_, gguf_fill, fills);  \
        n++;                                                                                     \
    } while (0)
    ADD("token_embd.weight", D, (int64_t)p->vocab, weight_type(dt, D), 1.0f, 0.0f);
    ADD("output_norm.weight", D, 1, MP_F32, 0.1f, 1.0f);
    float sd = 1.0f / sqrtf((float)D), sf = 1.0f / sqrtf((float)F);
    for (int l = 0; l < p->layers; l++) {
        snprintf(nm, sizeof nm, "blk.%d.attn_norm.weight", l);
        ADD(nm, D, 1, MP_F32, 0.1f, 1.0f);
        snprintf(nm, sizeof nm, "blk.%d.attn_q.weight", l);
        ADD(nm, D, D, weight_type(dt, D), sd, 0.0f);
        snprintf(nm, sizeof nm, "blk.%d.attn_k.weight", l);
        ADD(nm, D, kvd, weight_type(dt, D), sd, 0.0f);
        snprintf(nm, sizeof nm, "blk.%d.attn_v.weight", l);
        ADD(nm, D, kvd, weight_type(dt, D), sd, 0.0f);
        snprintf(nm, sizeof nm, "blk.%d.attn_output.weight", l);
        ADD(nm, D, D, weight_type(dt, D), sd, 0.0f);
        snprintf(nm, sizeof nm, "blk.%d.ffn_norm.weight", l);
        ADD(nm, D, 1, MP_F32, 0.1f, 1.0f);
        snprintf(nm, sizeof nm, "blk.%d.ffn_gate.weight", l);
        ADD(nm, D, F, weight_type(dt, D), sd, 0.0f);
        snprintf(nm, sizeof nm, "blk.%d.ffn_up.weight", l);
        ADD(nm, D, F, weight_type(dt, D), sd, 0.0f);
        snprintf(nm, sizeof nm, "blk.%d.ffn_down.weight", l);
        ADD(nm, F, D, weight_type(dt, F), sf, 0.0f);
    }
#undef ADD
    int rc = mp_gguf_writer_write(w, path, err);
    mp_gguf_writer_free(w);
    free(fills);
    return rc;
}

/* ---------------------------------------------------------------- model runs */

static double weight_bytes(const mp_llama *m) {
    double b = 0;
    for (int l = 0; l < m->cfg.n_layer; l++) {
        const mp_llama_layer *L = &m->layers[l];
        const mp_llama_linear *ls[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (int i = 0; i < 7; i++) b += (double)mp_tensor_nbytes(&ls[i]->w);
    }
    return b + (double)mp_tensor_nbytes(&m->output.w);
}

static double matmul_params(const mp_llama *m) {
    double p = 0;
    for (int l = 0; l < m->cfg.n_layer; l++) {
        const mp_llama_layer *L = &m->layers[l];
        const mp_llama_linear *ls[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (int i = 0; i < 7; i++) p += (double)ls[i]->w.ne[0] * (double)ls[i]->w.ne[1];
    }
    return p + (double)m->output.w.ne[0] * (double)m->output.w.ne[1];
}

typedef struct run_opts {
    int prefill, decode, batch, reps;
    double triad, peak;
    int threads;
} run_opts;

static int bench_model(const char *label, const char *dtype, const char *path, mp_exec *ex, const run_opts *o) {
    mp_error err = {{0}};
    mp_llama m;
    if (mp_llama_load(&m, path, ex, &err) < 0) {
        fprintf(stderr, "bench llm: %s\n", err.msg);
        return -1;
    }
    const int V = m.cfg.n_vocab;
    const int B = o->batch;
    const int ctx = o->prefill + o->decode + 8;
    mp_kvcache kv;
    mp_llama_state st;
    memset(&st, 0, sizeof st);
    float *logits = malloc((size_t)V * (size_t)B * sizeof(float));
    int32_t *toks = malloc(sizeof(int32_t) * (size_t)(o->prefill > B ? o->prefill : B));
    int rc = -1;
    if (!logits || !toks || mp_llama_kvcache_init(&m, &kv, ex, B + 1, ctx, (int64_t)(B + 1) * ctx, 16, &err) < 0) {
        fprintf(stderr, "bench llm: %s\n", err.msg[0] ? err.msg : "out of memory");
        free(logits);
        free(toks);
        mp_llama_free(&m, ex);
        return -1;
    }
    uint64_t s = 42;
    for (int i = 0; i < o->prefill; i++) toks[i] = (int32_t)(xs(&s) % (uint64_t)V);
    const double wb = weight_bytes(&m), mp = matmul_params(&m);

    /* prefill: one sequence of `prefill` tokens, logits for the last */
    double best_pf = 1e30;
    for (int r = 0; r < o->reps; r++) {
        int sq = mp_kvcache_seq_new(&kv, &err);
        mp_llama_seq q = {sq, o->prefill, toks, NULL, NULL, 1, logits};
        double t0 = now_s();
        if (mp_llama_forward(&m, &st, &kv, ex, &q, 1, &err) < 0) goto fail;
        double t = now_s() - t0;
        if (t < best_pf) best_pf = t;
        mp_kvcache_seq_free(&kv, sq);
    }
    /* matmul flops: every layer for every prompt token, the output head for the last one only */
    const double head = (double)m.output.w.ne[0] * (double)m.output.w.ne[1];
    double pf_tps = o->prefill / best_pf, pf_gflops = 2.0 * ((mp - head) * o->prefill + head) / best_pf / 1e9;
    printf("BENCH llm model=%s dtype=%s threads=%d phase=prefill seqs=1 tokens=%d tok_s=%.1f gflops=%.1f peak_gflops=%.1f "
           "peak_frac=%.3f\n",
           label, dtype, o->threads, o->prefill, pf_tps, pf_gflops, o->peak, o->peak > 0 ? pf_gflops / o->peak : 0);
    fflush(stdout);

    /* decode: 1 sequence, then B sequences in one batch (after a short prompt each) */
    double tps1 = 0;
    const int batches[2] = {1, B};
    for (int bi = 0; bi < (B > 1 ? 2 : 1); bi++) {
        const int nb = batches[bi];
        double best = 1e30;
        for (int r = 0; r < o->reps; r++) {
            mp_llama_seq q[64];
            int32_t cur[64];
            for (int b = 0; b < nb; b++) {
                int sq = mp_kvcache_seq_new(&kv, &err);
                if (sq < 0) goto fail;
                q[b] = (mp_llama_seq){sq, 8, toks, NULL, NULL, 1, logits + (size_t)b * V};
                cur[b] = toks[b % o->prefill];
            }
            if (mp_llama_forward(&m, &st, &kv, ex, q, nb, &err) < 0) goto fail;
            for (int b = 0; b < nb; b++) {
                q[b].n = 1;
                q[b].tokens = &cur[b];
            }
            double t0 = now_s();
            for (int step = 0; step < o->decode; step++) {
                if (mp_llama_forward(&m, &st, &kv, ex, q, nb, &err) < 0) goto fail;
                for (int b = 0; b < nb; b++) cur[b] = (int32_t)((cur[b] * 31 + step) % V);
            }
            double t = now_s() - t0;
            if (t < best) best = t;
            for (int b = 0; b < nb; b++) mp_kvcache_seq_free(&kv, q[b].seq);
        }
        double tps = (double)o->decode * nb / best;
        double gbs = wb * o->decode / best / 1e9; /* weights are read once per step, whatever the batch */
        if (nb == 1) tps1 = tps;
        printf("BENCH llm model=%s dtype=%s threads=%d phase=decode seqs=%d tok_s=%.2f weights_mb=%.1f gb_s=%.2f "
               "triad_gb_s=%.2f bw_frac=%.3f",
               label, dtype, o->threads, nb, tps, wb / 1e6, gbs, o->triad, o->triad > 0 ? gbs / o->triad : 0);
        if (nb > 1) printf(" speedup_vs_1=%.2f", tps / tps1);
        printf("\n");
        fflush(stdout);
    }
    rc = 0;
fail:
    if (rc) fprintf(stderr, "bench llm: %s\n", err.msg);
    free(logits);
    free(toks);
    mp_llama_state_free(&st, ex);
    mp_kvcache_free(&kv, ex);
    mp_llama_free(&m, ex);
    return rc;
}

static int in_list(const char *list, const char *item) {
    if (!list) return 1;
    size_t n = strlen(item);
    for (const char *p = list; (p = strstr(p, item)); p += n)
        if ((p == list || p[-1] == ',') && (p[n] == 0 || p[n] == ',')) return 1;
    return 0;
}

int bench_llm(int argc, char **argv) {
    const char *dir = "/tmp/mmpipe-bench-llm", *models = NULL, *dtypes = NULL, *runc_dir = NULL;
    run_opts o = {128, 32, 16, 2, 0, 0, 0};
    cli_common cc = {0, MMPIPE_DEVICE_CPU};
    for (int i = 1; i < argc;) {
        int r = cli_parse_common(&cc, argc, argv, &i);
        if (r < 0) return 1;
        if (r > 0) continue;
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: mmpipe bench llm [--models stories15M,stories110M,smollm2] [--dtypes f32,bf16,q8_0,q4_K]\n"
                   "       [--prefill N] [--decode N] [--batch N] [--reps N] [--dir DIR] [-t N] [--device cpu|cuda]\n"
                   "       [--write-runc DIR]  (write llama2.c run.c / runq.c checkpoints of the same shapes and exit)\n");
            return 0;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "bench llm: %s needs a value\n", a);
            return 1;
        }
        const char *v = argv[i + 1];
        if (!strcmp(a, "--dir")) dir = v;
        else if (!strcmp(a, "--models")) models = v;
        else if (!strcmp(a, "--dtypes")) dtypes = v;
        else if (!strcmp(a, "--prefill")) o.prefill = atoi(v);
        else if (!strcmp(a, "--decode")) o.decode = atoi(v);
        else if (!strcmp(a, "--batch")) o.batch = atoi(v);
        else if (!strcmp(a, "--reps")) o.reps = atoi(v);
        else if (!strcmp(a, "--write-runc")) runc_dir = v;
        else {
            fprintf(stderr, "bench llm: unknown option '%s'\n", a);
            return 1;
        }
        i += 2;
    }
    if (o.prefill < 8 || o.decode < 1 || o.batch < 1 || o.batch > 64 || o.reps < 1) {
        fprintf(stderr, "bench llm: need --prefill >= 8, --decode >= 1, 1 <= --batch <= 64, --reps >= 1\n");
        return 1;
    }
    if (runc_dir) {
        mkdir(runc_dir, 0755);
        for (int i = 0; i < 2; i++) {
            char p1[1024], p2[1024];
            snprintf(p1, sizeof p1, "%s/%s.bin", runc_dir, shapes[i].name);
            snprintf(p2, sizeof p2, "%s/%s_q80.bin", runc_dir, shapes[i].name);
            if (write_llama2c(p1, &shapes[i]) || write_runq(p2, &shapes[i])) {
                fprintf(stderr, "bench llm: cannot write %s: %s\n", runc_dir, strerror(errno));
                return 1;
            }
            printf("%s\n%s\n", p1, p2);
        }
        return 0;
    }
    mkdir(dir, 0755);
    mp_threadpool *tp = mp_threadpool_create(cc.n_threads);
    o.threads = mp_threadpool_size(tp);
    mp_exec ex;
    mp_error err = {{0}};
    if (mp_exec_init(&ex, cc.device, tp, (size_t)256 << 20, &err) < 0) {
        fprintf(stderr, "bench llm: %s\n", err.msg);
        mp_threadpool_free(tp);
        return 1;
    }
    o.triad = bench_triad(tp, o.threads, 5);
    o.peak = bench_fma_peak(tp, o.threads, 3);
    printf("BENCH llm machine threads=%d simd=%s triad_gb_s=%.2f fma_peak_gflops=%.1f\n", o.threads,
           mp_cpu_level_name(mp_cpu_level()), o.triad, o.peak);
    fflush(stdout);
    int rc = 0;
    for (int i = 0; i < 2; i++) {
        if (!in_list(models, shapes[i].name) || !in_list(dtypes, "f32")) continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s.bin", dir, shapes[i].name);
        if (write_llama2c(path, &shapes[i])) {
            fprintf(stderr, "bench llm: cannot write %s: %s\n", path, strerror(errno));
            rc = 1;
            continue;
        }
        rc |= bench_model(shapes[i].name, "f32", path, &ex, &o) != 0;
    }
    static const struct { const char *name; mp_dtype dt; } dts[] = {
        {"f32", MP_F32}, {"bf16", MP_BF16}, {"q8_0", MP_Q8_0}, {"q4_K", MP_Q4_K}};
    for (int d = 0; d < 4 && in_list(models, "smollm2"); d++) {
        if (!in_list(dtypes, dts[d].name)) continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/smollm2-135m-%s.gguf", dir, dts[d].name);
        if (write_smollm(path, &shapes[2], dts[d].dt, &err)) {
            fprintf(stderr, "bench llm: %s\n", err.msg);
            rc = 1;
            continue;
        }
        rc |= bench_model("smollm2", dts[d].name, path, &ex, &o) != 0;
    }
    mp_exec_free(&ex);
    mp_threadpool_free(tp);
    return rc;
}
