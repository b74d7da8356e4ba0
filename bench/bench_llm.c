/* bench_llm.c — `mmpipe bench llm`: prefill and decode speed of the decoder.
 *
 * Models (random weights, written by the bench into --dir and reused when present):
 *   stories15M, stories110M  llama2.c legacy checkpoints (F32), the shapes of Karpathy's tinyllamas
 *   smollm2                 SmolLM2-135M-shaped GGUF (llama arch, 30 layers, 576 wide, GQA 9:3, tied
 *                           49152 vocab) in F32, BF16, Q8_0 and Q4_K (llama.cpp's rule: rows whose
 *                           width is not a multiple of 256 fall back to Q5_0)
 *   stories15M, stories110M  also in Q8_0 (GGUF) with the int8 weights of a llama2.c version-2 file
 * For each: prefill tokens/s (and GFLOP/s vs the measured FMA peak), single-sequence decode tokens/s
 * and GB/s of weights read vs a STREAM triad measured right before (the machine may be shared), and
 * 16-sequence batched decode. Prints `BENCH llm key=value ...` lines.
 * --runc / --runq PATH time llama2.c's run.c on the very F32 checkpoint we load, and runq.c on a
 * version-2 int8 file holding exactly the weights of our stories Q8_0 GGUF (F16-exact group scales, so
 * runq's float scale and Q8_0's F16 scale are the same number), same thread count (OMP_NUM_THREADS),
 * same positions; they print `impl=run.c|runq.c ... ours_vs_theirs=` lines. --write-runc DIR writes those
 * checkpoints and a tokenizer.bin for running the programs by hand.
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

/* Int8 weights shared by runq.c and our Q8_0 GGUF (identical values): tensor t (llama2.c order: 0 token
 * embedding, 1 wq, 2 wk, 3 wv, 4 wo, 5 w1 = gate, 6 w2 = down, 7 w3 = up) of layer l, row r: K quants in
 * [-127, 127] and one scale per group of gs, the scales F16-exact so that runq's float scale and Q8_0's
 * F16 block scale are the same number. Rows 1 and 2 of the embedding (BOS, EOS) are zero, as above. */
static int runq_group(const shape *p) {
    int gs = 64; /* llama2.c export.py: 64, halved until it divides dim */
    while (p->dim % gs) gs /= 2;
    return gs;
}

static void q8_tensor_dims(const shape *p, int t, int64_t *K, int64_t *N, float *amp) {
    const int64_t D = p->dim, F = p->hidden, kvd = (int64_t)(p->dim / p->heads) * p->kv_heads;
    static const int kin[8] = {0, 0, 0, 0, 0, 0, 1, 0};
    const int64_t outs[8] = {p->vocab, D, kvd, kvd, D, F, D, F};
    *K = kin[t] ? F : D;
    *N = outs[t];
    *amp = t == 0 ? 1.0f : 1.0f / sqrtf((float)*K);
}

static void q8_row(const shape *p, int t, int l, int64_t r, int64_t K, int gs, float amp, int8_t *q, float *sc) {
    uint64_t s = 0x51ed270b27ab6a45ull ^ ((uint64_t)(t + 1) << 56) ^ ((uint64_t)(l + 1) << 40) ^ (uint64_t)(r + 1) * 0x9E3779B97F4A7C15ull;
    xs(&s);
    const int zero = t == 0 && (r == 1 || r == 2);
    (void)p;
    for (int64_t k = 0; k < K; k++) q[k] = zero ? 0 : (int8_t)((int)(xs(&s) % 255) - 127);
    for (int64_t g = 0; g < K / gs; g++) {
        float u = (float)(xs(&s) >> 40) * (1.0f / 16777216.0f);
        sc[g] = mp_f16_to_f32(mp_f32_to_f16(amp / 127.0f * (0.5f + u)));
    }
}

/* llama2.c version-2 export (runq.c): 256-byte header, F32 norms (all 1), then per tensor and layer the
 * int8 values of all rows followed by their F32 group scales */
static int write_runq(const char *path, const shape *p) {
    const int gs = runq_group(p);
    const size_t D = p->dim, L = p->layers;
    long long size = 256 + 4LL * (2 * L * D + D);
    for (int t = 0; t < 8; t++) {
        int64_t K, N;
        float amp;
        q8_tensor_dims(p, t, &K, &N, &amp);
        size += (long long)(t ? L : 1) * (K * N + K * N / gs * 4);
    }
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
    int rc = fwrite(hdr, 1, 256, f) != 256;
    for (size_t i = 0; i < 2 * L * D + D && !rc; i++) rc = fwrite(&(float){1.0f}, 4, 1, f) != 1;
    int8_t *q = malloc(4 * D + 4 * (size_t)p->hidden);
    float *sc = malloc(sizeof(float) * (4 * D + 4 * (size_t)p->hidden));
    if (!q || !sc) rc = -1;
    for (int t = 0; t < 8 && !rc; t++) {
        int64_t K, N;
        float amp;
        q8_tensor_dims(p, t, &K, &N, &amp);
        for (int l = 0; l < (t ? p->layers : 1) && !rc; l++) {
            for (int64_t r = 0; r < N && !rc; r++) {
                q8_row(p, t, l, r, K, gs, amp, q, sc);
                rc = fwrite(q, 1, (size_t)K, f) != (size_t)K;
            }
            for (int64_t r = 0; r < N && !rc; r++) {
                q8_row(p, t, l, r, K, gs, amp, q, sc);
                rc = fwrite(sc, sizeof(float), (size_t)(K / gs), f) != (size_t)(K / gs);
            }
        }
    }
    free(q);
    free(sc);
    if (fclose(f) != 0) rc = -1;
    return rc;
}

/* llama2.c tokenizer.bin for run.c / runq.c: max token length, then per token a score, a length and the
 * bytes (synthetic pieces; the programs only need a vocabulary of the model's size) */
static int write_l2c_tokenizer(const char *path, int vocab) {
    struct stat st;
    if (stat(path, &st) == 0 && st.st_size > 0) return 0;
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int32_t maxlen = 16;
    int rc = fwrite(&maxlen, 4, 1, f) != 1;
    for (int i = 0; i < vocab && !rc; i++) {
        char piece[32];
        int n = i == 0 ? snprintf(piece, sizeof piece, "<unk>") : i == 1 ? snprintf(piece, sizeof piece, "\n<s>\n")
              : i == 2 ? snprintf(piece, sizeof piece, "\n</s>\n") : snprintf(piece, sizeof piece, " t%d", i);
        float score = (float)-i;
        int32_t len = n;
        rc = fwrite(&score, 4, 1, f) != 1 || fwrite(&len, 4, 1, f) != 1 || fwrite(piece, 1, (size_t)n, f) != (size_t)n;
    }
    if (fclose(f) != 0) rc = -1;
    return rc;
}

/* SmolLM2-shaped GGUF (and the stories shapes in Q8_0 with runq.c's int8 weights); tensors are produced
 * at write time */
typedef struct gg_fill {
    mp_dtype dt;
    int64_t K;
    float scale, offset;
    const shape *q8; /* Q8_0 from q8_row(q8, t, l) */
    int t, l;
} gg_fill;

static int gguf_fill_q8(const gg_fill *g, void *buf, size_t nbytes, mp_error *err) {
    const int gs = runq_group(g->q8);
    int64_t K, N;
    float amp;
    q8_tensor_dims(g->q8, g->t, &K, &N, &amp);
    if (g->dt != MP_Q8_0 || K != g->K || (size_t)N * (size_t)mp_dtype_row_bytes(MP_Q8_0, K) != nbytes)
        return mp_errf(err, "bench: Q8_0 tensor size mismatch");
    int8_t *q = malloc((size_t)K);
    float *sc = malloc(sizeof(float) * (size_t)(K / gs));
    if (!q || !sc) {
        free(q);
        free(sc);
        return mp_errf(err, "bench: out of memory");
    }
    mp_block_q8_0 *blk = buf;
    for (int64_t r = 0; r < N; r++) {
        q8_row(g->q8, g->t, g->l, r, K, gs, amp, q, sc);
        for (int64_t b = 0; b < K / MP_QK8_0; b++, blk++) {
            blk->d = mp_f32_to_f16(sc[b * MP_QK8_0 / gs]);
            memcpy(blk->qs, q + b * MP_QK8_0, MP_QK8_0);
        }
    }
    free(q);
    free(sc);
    return 0;
}

static int gguf_fill(void *ctx, int64_t index, void *buf, size_t nbytes, mp_error *err) {
    const gg_fill *g = (const gg_fill *)ctx + index;
    if (g->q8) return gguf_fill_q8(g, buf, nbytes, err);
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

/* q8: the stories shapes with runq.c's weights (dt must be Q8_0) */
static int write_gguf(const char *path, const shape *p, mp_dtype dt, int q8, mp_error *err) {
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
#define ADD(name, K, N, dtype, sc, off, T, Lr)                                                            \
    do {                                                                                                  \
        int64_t ne_[2] = {K, N};                                                                          \
        fills[n] = (gg_fill){dtype, K, sc, off, q8 && (T) >= 0 ? p : NULL, T, Lr};                        \
        mp_gguf_writer_add_tensor_fn(w, name, dtype, (N) > 1 ? 2 : 1, ne_, gguf_fill, fills);           \
        n++;                                                                                              \
    } while (0)
    /* norms: 1 + 0.1 u (all 1 for the runq twin, as in its file) */
    const float ns = q8 ? 0.0f : 0.1f;
    ADD("token_embd.weight", D, (int64_t)p->vocab, weight_type(dt, D), 1.0f, 0.0f, 0, 0);
    ADD("output_norm.weight", D, 1, MP_F32, ns, 1.0f, -1, 0);
    float sd = 1.0f / sqrtf((float)D), sf = 1.0f / sqrtf((float)F);
    for (int l = 0; l < p->layers; l++) {
        snprintf(nm, sizeof nm, "blk.%d.attn_norm.weight", l);
        ADD(nm, D, 1, MP_F32, ns, 1.0f, -1, l);
        snprintf(nm, sizeof nm, "blk.%d.attn_q.weight", l);
        ADD(nm, D, D, weight_type(dt, D), sd, 0.0f, 1, l);
        snprintf(nm, sizeof nm, "blk.%d.attn_k.weight", l);
        ADD(nm, D, kvd, weight_type(dt, D), sd, 0.0f, 2, l);
        snprintf(nm, sizeof nm, "blk.%d.attn_v.weight", l);
        ADD(nm, D, kvd, weight_type(dt, D), sd, 0.0f, 3, l);
        snprintf(nm, sizeof nm, "blk.%d.attn_output.weight", l);
        ADD(nm, D, D, weight_type(dt, D), sd, 0.0f, 4, l);
        snprintf(nm, sizeof nm, "blk.%d.ffn_norm.weight", l);
        ADD(nm, D, 1, MP_F32, ns, 1.0f, -1, l);
        snprintf(nm, sizeof nm, "blk.%d.ffn_gate.weight", l);
        ADD(nm, D, F, weight_type(dt, D), sd, 0.0f, 5, l);
        snprintf(nm, sizeof nm, "blk.%d.ffn_up.weight", l);
        ADD(nm, D, F, weight_type(dt, D), sd, 0.0f, 7, l);
        snprintf(nm, sizeof nm, "blk.%d.ffn_down.weight", l);
        ADD(nm, F, D, weight_type(dt, F), sf, 0.0f, 6, l);
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
    mp_threadpool *tp;
} run_opts;

/* Best decode tokens/s of llama2.c's run.c / runq.c (`bin`) on checkpoint `ckpt`: greedy, `steps`
 * positions from BOS, OMP_NUM_THREADS = our thread count; the program's own "achieved tok/s" (it times
 * every step after the first). 0 when it cannot be run. */
static double run_llama2c(const char *bin, const char *ckpt, const char *tok, int steps, int threads, int reps) {
    char cmd[4096], line[512];
    snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=%d '%s' '%s' -z '%s' -t 0 -n %d -s 1 2>&1 >/dev/null", threads, bin, ckpt,
             tok, steps);
    double best = 0;
    for (int r = 0; r < reps; r++) {
        FILE *f = popen(cmd, "r");
        if (!f) return 0;
        double v = 0;
        while (fgets(line, sizeof line, f)) sscanf(line, "achieved tok/s: %lf", &v);
        if (pclose(f) != 0) {
            fprintf(stderr, "bench llm: '%s' failed\n", cmd);
            return 0;
        }
        if (v > best) best = v;
    }
    return best;
}

/* *tps1: single-sequence decode tokens/s */
static int bench_model(const char *label, const char *dtype, const char *path, mp_exec *ex, const run_opts *o,
                       double *tps1_out) {
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

    /* decode: 1 sequence, then B sequences in one batch (after a short prompt each); the machine is shared,
     * so the triad is measured again right before and its best kept as the bandwidth of this phase */
    double tps1 = 0;
    const double triad = bench_triad(o->tp, o->threads, 3);
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
               label, dtype, o->threads, nb, tps, wb / 1e6, gbs, triad, triad > 0 ? gbs / triad : 0);
        if (nb > 1) printf(" speedup_vs_1=%.2f", tps / tps1);
        printf("\n");
        fflush(stdout);
    }
    if (tps1_out) *tps1_out = tps1;
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
    const char *dir = "/tmp/mmpipe-bench-llm", *models = NULL, *dtypes = NULL, *runc_dir = NULL, *runc = NULL,
               *runq = NULL;
    run_opts o = {128, 32, 16, 2, 0, 0, 0, NULL};
    cli_common cc = {0, MMPIPE_DEVICE_CPU};
    for (int i = 1; i < argc;) {
        int r = cli_parse_common(&cc, argc, argv, &i);
        if (r < 0) return 1;
        if (r > 0) continue;
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: mmpipe bench llm [--models stories15M,stories110M,smollm2] [--dtypes f32,bf16,q8_0,q4_K]\n"
                   "       [--prefill N] [--decode N] [--batch N] [--reps N] [--dir DIR] [-t N] [--device cpu|cuda]\n"
                   "       [--runc PATH] [--runq PATH]  (time llama2.c's run.c on the same F32 stories checkpoints and\n"
                   "                                     runq.c on the int8 twin of our stories Q8_0 GGUF, same threads)\n"
                   "       [--write-runc DIR]  (write llama2.c run.c / runq.c checkpoints and tokenizer.bin and exit)\n");
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
        else if (!strcmp(a, "--runc")) runc = v;
        else if (!strcmp(a, "--runq")) runq = v;
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
        char tk[1024];
        snprintf(tk, sizeof tk, "%s/tokenizer.bin", runc_dir);
        if (write_l2c_tokenizer(tk, shapes[0].vocab)) {
            fprintf(stderr, "bench llm: cannot write %s: %s\n", tk, strerror(errno));
            return 1;
        }
        printf("%s\n", tk);
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
    o.tp = tp;
    o.triad = bench_triad(tp, o.threads, 5);
    o.peak = bench_fma_peak(tp, o.threads, 3);
    printf("BENCH llm machine threads=%d simd=%s triad_gb_s=%.2f fma_peak_gflops=%.1f\n", o.threads,
           mp_cpu_level_name(mp_cpu_level()), o.triad, o.peak);
    fflush(stdout);
    int rc = 0;
    char tok[1024];
    snprintf(tok, sizeof tok, "%s/tokenizer.bin", dir);
    if ((runc || runq) && write_l2c_tokenizer(tok, shapes[0].vocab)) {
        fprintf(stderr, "bench llm: cannot write %s: %s\n", tok, strerror(errno));
        return 1;
    }
    /* run.c / runq.c decode the same positions as our single-sequence decode (after a short prompt) */
    const int l2c_steps = 8 + o.decode;
    for (int i = 0; i < 2; i++) {
        if (!in_list(models, shapes[i].name)) continue;
        char path[1024];
        double ours = 0, theirs = 0;
        if (in_list(dtypes, "f32")) {
            snprintf(path, sizeof path, "%s/%s.bin", dir, shapes[i].name);
            if (write_llama2c(path, &shapes[i])) {
                fprintf(stderr, "bench llm: cannot write %s: %s\n", path, strerror(errno));
                rc = 1;
                continue;
            }
            rc |= bench_model(shapes[i].name, "f32", path, &ex, &o, &ours) != 0;
            if (runc && (theirs = run_llama2c(runc, path, tok, l2c_steps, o.threads, o.reps + 1)) > 0)
                printf("BENCH llm model=%s dtype=f32 impl=run.c threads=%d phase=decode seqs=1 tok_s=%.2f ours_tok_s=%.2f "
                       "ours_vs_theirs=%.3f\n",
                       shapes[i].name, o.threads, theirs, ours, ours / theirs);
            fflush(stdout);
        }
        if (in_list(dtypes, "q8_0")) { /* our Q8_0 GGUF and runq.c's file hold the same int8 weights */
            char qpath[1024];
            snprintf(path, sizeof path, "%s/%s-q8_0.gguf", dir, shapes[i].name);
            snprintf(qpath, sizeof qpath, "%s/%s_q80.bin", dir, shapes[i].name);
            if (write_gguf(path, &shapes[i], MP_Q8_0, 1, &err) || (runq && write_runq(qpath, &shapes[i]))) {
                fprintf(stderr, "bench llm: cannot write %s: %s\n", err.msg[0] ? path : qpath, err.msg[0] ? err.msg : strerror(errno));
                rc = 1;
                continue;
            }
            rc |= bench_model(shapes[i].name, "q8_0", path, &ex, &o, &ours) != 0;
            if (runq && (theirs = run_llama2c(runq, qpath, tok, l2c_steps, o.threads, o.reps + 1)) > 0)
                printf("BENCH llm model=%s dtype=q8_0 impl=runq.c threads=%d phase=decode seqs=1 tok_s=%.2f ours_tok_s=%.2f "
                       "ours_vs_theirs=%.3f\n",
                       shapes[i].name, o.threads, theirs, ours, ours / theirs);
            fflush(stdout);
        }
    }
    static const struct { const char *name; mp_dtype dt; } dts[] = {
        {"f32", MP_F32}, {"bf16", MP_BF16}, {"q8_0", MP_Q8_0}, {"q4_K", MP_Q4_K}};
    for (int d = 0; d < 4 && in_list(models, "smollm2"); d++) {
        if (!in_list(dtypes, dts[d].name)) continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/smollm2-135m-%s.gguf", dir, dts[d].name);
        if (write_gguf(path, &shapes[2], dts[d].dt, 0, &err)) {
            fprintf(stderr, "bench llm: %s\n", err.msg);
            rc = 1;
            continue;
        }
        rc |= bench_model("smollm2", dts[d].name, path, &ex, &o, NULL) != 0;
    }
    mp_exec_free(&ex);
    mp_threadpool_free(tp);
    return rc;
}
