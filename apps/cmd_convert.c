/* cmd_convert.c — `mmpipe convert IN OUT.gguf`: llama2.c checkpoints and HF safetensors checkpoints of the
 * Llama family (llama, mistral, qwen2, granite) to GGUF with llama.cpp's key and tensor names, optionally
 * quantized (--dtype). 1-D tensors (norms, biases) stay F32, as llama.cpp keeps them.
 *
 * HF Llama/Mistral/Granite q/k projections are permuted from HF's rotate-half RoPE layout to GGUF's
 * interleaved-pair layout exactly as llama.cpp's convert_hf_to_gguf.py does
 * (w.reshape(n_head, 2, head_dim/2, ...).swapaxes(1, 2)); Qwen2 keeps HF's layout (NeoX RoPE).
 * llama2.c weights are already in GGUF's layout. A llama2.c tokenizer.bin (--tokenizer) is embedded as a
 * tokenizer.ggml "llama" vocabulary; HF tokenizers are not embedded (keep using the folder's
 * tokenizer.json). */
#include "cli.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/ops.h"
#include "models/gguf.h"
#include "models/hfjson.h"
#include "models/llama2c.h"
#include "models/mmap.h"
#include "models/weights.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: mmpipe convert IN OUT.gguf [options]\n"
            "  IN: a llama2.c checkpoint (.bin) or an HF folder / safetensors checkpoint with config.json\n"
            "      (model_type llama, mistral, qwen2, granite)\n"
            "  --dtype T        type of the 2-D weights: f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q2_K q3_K q4_K\n"
            "                   q5_K q6_K (default: keep the source's f32/f16/bf16)\n"
            "  --tokenizer FILE llama2.c tokenizer.bin to embed (llama2.c input)\n"
            "  --name NAME      general.name (default: the input's file name)\n");
}

/* llama_ftype numbers (llama.h) for general.file_type */
static int ftype_of(mp_dtype dt) {
    switch (dt) {
    case MP_F32: return 0;
    case MP_F16: return 1;
    case MP_Q4_0: return 2;
    case MP_Q4_1: return 3;
    case MP_Q8_0: return 7;
    case MP_Q5_0: return 8;
    case MP_Q5_1: return 9;
    case MP_Q2_K: return 10;
    case MP_Q3_K: return 12; /* Q3_K_M */
    case MP_Q4_K: return 15; /* Q4_K_M */
    case MP_Q5_K: return 17; /* Q5_K_M */
    case MP_Q6_K: return 18;
    case MP_BF16: return 32;
    default: return 0;
    }
}

/* ---------------------------------------------------------------- conversion jobs */

typedef struct {
    const mp_tensor *src;
    mp_dtype dst;
    int perm_heads; /* > 0: permute the outermost dim from HF rotate-half to GGUF pair layout */
    const float *f32; /* generated data (rope_freqs), instead of src */
} job;

/* GGUF row r of a permuted projection comes from HF row src_row(r):
 * HF rows are [head][half j][i], GGUF rows [head][i][j] (i < head_dim/2, j < 2). */
static int64_t src_row(int64_t r, int64_t n_rows, int heads) {
    if (heads <= 0) return r;
    int64_t hd = n_rows / heads, h = r / hd, k = r % hd;
    int64_t i = k / 2, j = k % 2;
    return h * hd + j * (hd / 2) + i;
}

static int fill(void *ctx, int64_t index, void *buf, size_t nbytes, mp_error *err) {
    const job *jb = &((const job *)ctx)[index];
    if (jb->f32) {
        memcpy(buf, jb->f32, nbytes);
        return 0;
    }
    const mp_tensor *t = jb->src;
    int64_t ne0 = t->ne[0], rows = t->ne[1] * t->ne[2] * t->ne[3];
    int64_t in_row = mp_dtype_row_bytes(t->dtype, ne0), out_row = mp_dtype_row_bytes(jb->dst, ne0);
    int vec_perm = jb->perm_heads > 0 && rows == 1; /* a 1-D bias: permute its elements */
    float *f = malloc((size_t)(ne0 > 0 ? ne0 : 1) * sizeof *f * (vec_perm ? 2 : 1));
    if (!f) return mp_errf(err, "out of memory converting %s", t->name);
    for (int64_t r = 0; r < rows; r++) {
        int64_t sr = src_row(r, rows, rows > 1 ? jb->perm_heads : 0);
        mp_dequantize_row(t->dtype, (const uint8_t *)t->data + sr * in_row, f, ne0);
        if (vec_perm) {
            float *g = f + ne0;
            for (int64_t k = 0; k < ne0; k++) g[k] = f[src_row(k, ne0, jb->perm_heads)];
            memcpy(f, g, (size_t)ne0 * sizeof *f);
        }
        uint8_t *o = (uint8_t *)buf + r * out_row;
        if (jb->dst == MP_F32) {
            memcpy(o, f, (size_t)ne0 * 4);
        } else if (jb->dst == MP_F16) {
            for (int64_t k = 0; k < ne0; k++) ((mp_f16 *)o)[k] = mp_f32_to_f16(f[k]);
        } else if (jb->dst == MP_BF16) {
            for (int64_t k = 0; k < ne0; k++) ((mp_bf16 *)o)[k] = mp_f32_to_bf16(f[k]);
        } else if (mp_quantize_row(jb->dst, f, o, ne0) != out_row) {
            free(f);
            return mp_errf(err, "cannot quantize %s to %s", t->name, mp_dtype_name(jb->dst));
        }
    }
    free(f);
    (void)nbytes;
    return 0;
}

/* Target type of a tensor: 1-D stays F32; 2-D+ takes `want` (or the source type when want < 0), falling
 * back to q8_0 / f16 when ne[0] is not a multiple of the block size. */
static mp_dtype pick_dtype(const mp_tensor *t, int want) {
    if (t->ne[1] * t->ne[2] * t->ne[3] == 1) return MP_F32;
    if (want < 0) return (t->dtype == MP_F16 || t->dtype == MP_BF16) ? t->dtype : MP_F32;
    const mp_dtype_traits *tr = mp_dtype_info(want);
    if (t->ne[0] % tr->block_size == 0) return (mp_dtype)want;
    if (tr->is_quant && t->ne[0] % MP_QK8_0 == 0) return MP_Q8_0;
    return tr->is_quant ? MP_F16 : (mp_dtype)want;
}

typedef struct {
    mp_gguf_writer *w;
    job *jobs;
    int64_t n_jobs;
    int want;
    char arch[32];
} conv;

static int add(conv *cv, const char *name, const mp_tensor *t, int perm_heads, mp_error *err) {
    if (t->dtype != MP_F32 && t->dtype != MP_F16 && t->dtype != MP_BF16 && !mp_dtype_info(t->dtype)->is_quant)
        return mp_errf(err, "tensor %s has dtype %s, which convert does not take", t->name, mp_dtype_name(t->dtype));
    job *jb = &cv->jobs[cv->n_jobs];
    jb->src = t;
    jb->dst = pick_dtype(t, cv->want);
    jb->perm_heads = perm_heads;
    jb->f32 = NULL;
    if (mp_gguf_writer_add_tensor_fn(cv->w, name, jb->dst, t->ndim, t->ne, fill, cv->jobs) < 0) return -1;
    cv->n_jobs++;
    return 0;
}

/* ---------------------------------------------------------------- llama2.c */

/* tokenizer.bin: i32 max_token_length, then per token f32 score, i32 len, bytes. Tokens use ' ' where
 * SentencePiece has U+2581, and BOS/EOS are "\n<s>\n" / "\n</s>\n" (llama2.c's tokenizer.py export). */
static int embed_llama2c_tokenizer(mp_gguf_writer *w, const char *path, int n_vocab, mp_error *err) {
    char *buf;
    size_t len;
    if (mp_read_file(path, (size_t)1 << 28, &buf, &len, err)) return -1;
    char **toks = calloc((size_t)n_vocab, sizeof *toks);
    float *scores = calloc((size_t)n_vocab, sizeof *scores);
    int32_t *types = calloc((size_t)n_vocab, sizeof *types);
    int rc = 0;
    size_t pos = 4;
    if (!toks || !scores || !types) rc = mp_errf(err, "%s: out of memory", path);
    if (!rc && len < 4) rc = mp_errf(err, "%s: too short for a llama2.c tokenizer", path);
    for (int i = 0; i < n_vocab && rc == 0; i++) {
        int32_t n;
        if (len - pos < 8) {
            rc = mp_errf(err, "%s: has fewer than the model's %d tokens (or is truncated)", path, n_vocab);
            break;
        }
        memcpy(&scores[i], buf + pos, 4);
        memcpy(&n, buf + pos + 4, 4);
        pos += 8;
        if (n < 0 || (size_t)n > len - pos) {
            rc = mp_errf(err, "%s: token %d has a bad length %d", path, i, n);
            break;
        }
        const char *s = buf + pos;
        pos += (size_t)n;
        char *t = malloc((size_t)n * 3 + 1), *o = t;
        if (!t) {
            rc = mp_errf(err, "%s: out of memory", path);
            break;
        }
        if (n == 5 && !memcmp(s, "\n<s>\n", 5)) s = "<s>", n = 3;
        else if (n == 6 && !memcmp(s, "\n</s>\n", 6)) s = "</s>", n = 4;
        for (int k = 0; k < n; k++) {
            if (s[k] == ' ') { memcpy(o, "\xe2\x96\x81", 3); o += 3; }
            else *o++ = s[k];
        }
        *o = 0;
        toks[i] = t;
        unsigned b;
        char tail;
        if (i == 0) types[i] = 2; /* unknown */
        else if (!strcmp(t, "<s>") || !strcmp(t, "</s>")) types[i] = 3; /* control */
        else if (strlen(t) == 6 && sscanf(t, "<0x%2X%c", &b, &tail) == 2 && tail == '>') types[i] = 6; /* byte */
        else types[i] = 1;
    }
    if (!rc) {
        mp_gguf_set_str(w, "tokenizer.ggml.model", "llama");
        mp_gguf_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)toks, (uint64_t)n_vocab);
        mp_gguf_set_arr(w, "tokenizer.ggml.scores", MP_GGUF_F32, scores, (uint64_t)n_vocab);
        mp_gguf_set_arr(w, "tokenizer.ggml.token_type", MP_GGUF_I32, types, (uint64_t)n_vocab);
        mp_gguf_set_u32(w, "tokenizer.ggml.bos_token_id", 1);
        mp_gguf_set_u32(w, "tokenizer.ggml.eos_token_id", 2);
        mp_gguf_set_u32(w, "tokenizer.ggml.unknown_token_id", 0);
        mp_gguf_set_bool(w, "tokenizer.ggml.add_bos_token", 1);
        mp_gguf_set_bool(w, "tokenizer.ggml.add_eos_token", 0);
    }
    for (int i = 0; toks && i < n_vocab; i++) free(toks[i]);
    free(toks);
    free(scores);
    free(types);
    free(buf);
    return rc;
}

static int from_llama2c(conv *cv, const mp_weights *wts, const char *tok, mp_error *err) {
    const mp_llama2c_config *c = mp_weights_llama2c(wts);
    mp_gguf_writer *w = cv->w;
    snprintf(cv->arch, sizeof cv->arch, "llama");
    mp_gguf_set_u32(w, "llama.context_length", (uint32_t)c->seq_len);
    mp_gguf_set_u32(w, "llama.embedding_length", (uint32_t)c->dim);
    mp_gguf_set_u32(w, "llama.block_count", (uint32_t)c->n_layers);
    mp_gguf_set_u32(w, "llama.feed_forward_length", (uint32_t)c->hidden_dim);
    mp_gguf_set_u32(w, "llama.attention.head_count", (uint32_t)c->n_heads);
    mp_gguf_set_u32(w, "llama.attention.head_count_kv", (uint32_t)c->n_kv_heads);
    mp_gguf_set_u32(w, "llama.rope.dimension_count", (uint32_t)c->head_size);
    mp_gguf_set_f32(w, "llama.attention.layer_norm_rms_epsilon", c->rms_norm_eps);
    mp_gguf_set_f32(w, "llama.rope.freq_base", c->rope_theta);
    mp_gguf_set_u32(w, "llama.vocab_size", (uint32_t)c->vocab_size);
    if (tok && embed_llama2c_tokenizer(w, tok, c->vocab_size, err)) return -1;
    for (int64_t i = 0; i < mp_weights_count(wts); i++)
        if (add(cv, mp_weights_name(wts, i), mp_weights_at(wts, i), 0, err)) return -1;
    return 0;
}

/* ---------------------------------------------------------------- HF safetensors */

/* HF name -> GGUF name; 0 when it is not a tensor we carry (rotary inv_freq), -1 unknown. *q_or_k: 1 for
 * q_proj, 2 for k_proj. */
static int map_hf_name(const char *hf, char *out, size_t cap, int *q_or_k) {
    static const struct { const char *hf, *gg; } fixed[] = {
        {"model.embed_tokens.weight", "token_embd.weight"},
        {"model.norm.weight", "output_norm.weight"},
        {"lm_head.weight", "output.weight"},
    };
    static const struct { const char *hf, *gg; int qk; } layer[] = {
        {"input_layernorm.weight", "attn_norm.weight", 0},
        {"post_attention_layernorm.weight", "ffn_norm.weight", 0},
        {"self_attn.q_proj.weight", "attn_q.weight", 1},
        {"self_attn.q_proj.bias", "attn_q.bias", 1},
        {"self_attn.k_proj.weight", "attn_k.weight", 2},
        {"self_attn.k_proj.bias", "attn_k.bias", 2},
        {"self_attn.v_proj.weight", "attn_v.weight", 0},
        {"self_attn.v_proj.bias", "attn_v.bias", 0},
        {"self_attn.o_proj.weight", "attn_output.weight", 0},
        {"mlp.gate_proj.weight", "ffn_gate.weight", 0},
        {"mlp.up_proj.weight", "ffn_up.weight", 0},
        {"mlp.down_proj.weight", "ffn_down.weight", 0},
    };
    *q_or_k = 0;
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if (!strcmp(hf, fixed[i].hf)) {
            snprintf(out, cap, "%s", fixed[i].gg);
            return 1;
        }
    int l, n = 0;
    if (sscanf(hf, "model.layers.%d.%n", &l, &n) == 1 && n > 0 && l >= 0) {
        const char *rest = hf + n;
        if (strstr(rest, "rotary_emb.inv_freq")) return 0;
        for (size_t i = 0; i < sizeof layer / sizeof layer[0]; i++)
            if (!strcmp(rest, layer[i].hf)) {
                snprintf(out, cap, "blk.%d.%s", l, layer[i].gg);
                *q_or_k = layer[i].qk;
                return 1;
            }
    }
    return -1;
}

static int from_hf(conv *cv, const mp_weights *wts, const char *in, float **rope_freqs, mp_error *err) {
    mp_hf_config hc;
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", in);
    if (!mp_is_dir(dir)) { /* a .safetensors / index.json path: its folder */
        char *s = strrchr(dir, '/');
        if (s) *s = 0;
        else snprintf(dir, sizeof dir, ".");
    }
    if (mp_hf_config_load(&hc, dir, err)) return -1;
    const mp_json *j = &hc.text;
    const char *mt = "";
    int rc = -1;
    int64_t hidden, layers, heads, kv, ff, ctx, vocab, head_dim;
    double theta, eps;
    if (mp_json_get_str(j, "model_type", &mt, err) || mp_json_get_int(j, "hidden_size", &hidden, err) ||
        mp_json_get_int(j, "num_hidden_layers", &layers, err) || mp_json_get_int(j, "num_attention_heads", &heads, err) ||
        mp_json_int_or(j, "num_key_value_heads", heads, &kv, err) || mp_json_get_int(j, "intermediate_size", &ff, err) ||
        mp_json_int_or(j, "max_position_embeddings", 2048, &ctx, err) || mp_json_get_int(j, "vocab_size", &vocab, err) ||
        mp_json_f64_or(j, "rope_theta", 10000.0, &theta, err) || mp_json_f64_or(j, "rms_norm_eps", 1e-6, &eps, err))
        goto done;
    if (heads <= 0 || kv <= 0 || hidden <= 0 || hidden % heads) {
        mp_errf(err, "%s/config.json: %" PRId64 " heads do not divide hidden_size %" PRId64, dir, heads, hidden);
        goto done;
    }
    if (mp_json_int_or(j, "head_dim", hidden / heads, &head_dim, err)) goto done;
    int permute = 1;
    if (!strcmp(mt, "llama") || !strcmp(mt, "mistral")) snprintf(cv->arch, sizeof cv->arch, "llama");
    else if (!strcmp(mt, "granite")) snprintf(cv->arch, sizeof cv->arch, "granite");
    else if (!strcmp(mt, "qwen2")) snprintf(cv->arch, sizeof cv->arch, "qwen2"), permute = 0;
    else {
        mp_errf(err, "%s/config.json: model_type %s is not one convert handles (llama, mistral, qwen2, granite)", dir, mt);
        goto done;
    }
    mp_gguf_writer *w = cv->w;
    char key[128];
#define K(suffix) (snprintf(key, sizeof key, "%s.%s", cv->arch, suffix), key)
    mp_gguf_set_u32(w, K("context_length"), (uint32_t)ctx);
    mp_gguf_set_u32(w, K("embedding_length"), (uint32_t)hidden);
    mp_gguf_set_u32(w, K("block_count"), (uint32_t)layers);
    mp_gguf_set_u32(w, K("feed_forward_length"), (uint32_t)ff);
    mp_gguf_set_u32(w, K("attention.head_count"), (uint32_t)heads);
    mp_gguf_set_u32(w, K("attention.head_count_kv"), (uint32_t)kv);
    mp_gguf_set_u32(w, K("rope.dimension_count"), (uint32_t)head_dim);
    if (head_dim != hidden / heads) {
        mp_gguf_set_u32(w, K("attention.key_length"), (uint32_t)head_dim);
        mp_gguf_set_u32(w, K("attention.value_length"), (uint32_t)head_dim);
    }
    mp_gguf_set_f32(w, K("attention.layer_norm_rms_epsilon"), (float)eps);
    mp_gguf_set_f32(w, K("rope.freq_base"), (float)theta);
    mp_gguf_set_u32(w, K("vocab_size"), (uint32_t)vocab);
    if (!strcmp(cv->arch, "granite")) {
        double em, rm, am, ls;
        if (mp_json_f64_or(j, "embedding_multiplier", 1, &em, err) || mp_json_f64_or(j, "residual_multiplier", 1, &rm, err) ||
            mp_json_f64_or(j, "attention_multiplier", 1.0 / sqrt((double)head_dim), &am, err) ||
            mp_json_f64_or(j, "logits_scaling", 1, &ls, err))
            goto done;
        mp_gguf_set_f32(w, K("embedding_scale"), (float)em);
        mp_gguf_set_f32(w, K("residual_scale"), (float)rm);
        mp_gguf_set_f32(w, K("attention.scale"), (float)am);
        mp_gguf_set_f32(w, K("logit_scale"), (float)ls);
    }
    /* RoPE scaling */
    const char *rt = NULL;
    if (mp_json_str_or(j, "rope_scaling.rope_type", NULL, &rt, err)) goto done;
    if (!rt && mp_json_str_or(j, "rope_scaling.type", NULL, &rt, err)) goto done;
    if (rt && (!strcmp(rt, "linear") || !strcmp(rt, "yarn"))) {
        double f;
        if (mp_json_get_f64(j, "rope_scaling.factor", &f, err)) goto done;
        mp_gguf_set_str(w, K("rope.scaling.type"), rt);
        mp_gguf_set_f32(w, K("rope.scaling.factor"), (float)f);
        int64_t orig;
        if (mp_json_int_or(j, "rope_scaling.original_max_position_embeddings", 0, &orig, err)) goto done;
        if (orig) mp_gguf_set_u32(w, K("rope.scaling.original_context_length"), (uint32_t)orig);
    } else if (rt && !strcmp(rt, "llama3")) {
        /* llama.cpp stores the per-dimension factors as rope_freqs.weight (convert_hf_to_gguf.py) */
        double f, lo, hi;
        int64_t old;
        if (mp_json_get_f64(j, "rope_scaling.factor", &f, err) || mp_json_f64_or(j, "rope_scaling.low_freq_factor", 1, &lo, err) ||
            mp_json_f64_or(j, "rope_scaling.high_freq_factor", 4, &hi, err) ||
            mp_json_int_or(j, "rope_scaling.original_max_position_embeddings", 8192, &old, err))
            goto done;
        int64_t nf = head_dim / 2;
        float *rf = malloc((size_t)nf * sizeof *rf);
        if (!rf) { mp_errf(err, "out of memory"); goto done; }
        double lo_wl = (double)old / lo, hi_wl = (double)old / hi;
        for (int64_t i = 0; i < nf; i++) {
            double freq = 1.0 / pow(theta, (double)(2 * i) / (double)head_dim), wl = 2 * M_PI / freq;
            if (wl < hi_wl) rf[i] = 1.0f;
            else if (wl > lo_wl) rf[i] = (float)f;
            else {
                double sm = ((double)old / wl - lo) / (hi - lo);
                rf[i] = (float)(1.0 / ((1 - sm) / f + sm));
            }
        }
        *rope_freqs = rf;
        job *jb = &cv->jobs[cv->n_jobs];
        memset(jb, 0, sizeof *jb);
        jb->f32 = rf;
        jb->dst = MP_F32;
        int64_t ne[1] = {nf};
        mp_gguf_writer_add_tensor_fn(w, "rope_freqs.weight", MP_F32, 1, ne, fill, cv->jobs);
        cv->n_jobs++;
    } else if (rt && strcmp(rt, "default") != 0) {
        mp_errf(err, "%s/config.json: rope_scaling %s is not one convert handles", dir, rt);
        goto done;
    }
#undef K
    for (int64_t i = 0; i < mp_weights_count(wts); i++) {
        char name[256];
        int qk;
        int m = map_hf_name(mp_weights_name(wts, i), name, sizeof name, &qk);
        if (m == 0) continue;
        if (m < 0) {
            mp_errf(err, "%s: tensor %s has no GGUF name in convert's %s mapping", mp_weights_path(wts),
                    mp_weights_name(wts, i), cv->arch);
            goto done;
        }
        int ph = permute && qk ? (int)(qk == 1 ? heads : kv) : 0;
        if (add(cv, name, mp_weights_at(wts, i), ph, err)) goto done;
    }
    rc = 0;
done:
    mp_hf_config_free(&hc);
    return rc;
}

int cmd_convert(int argc, char **argv) {
    const char *in = NULL, *out = NULL, *tok = NULL, *name = NULL;
    int want = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if ((!strcmp(a, "--dtype") || !strcmp(a, "--tokenizer") || !strcmp(a, "--name")) && i + 1 < argc) {
            const char *v = argv[++i];
            if (!strcmp(a, "--tokenizer")) tok = v;
            else if (!strcmp(a, "--name")) name = v;
            else {
                want = mp_dtype_from_name(v);
                if (want < 0 || (!mp_dtype_info(want)->is_quant && want != MP_F32 && want != MP_F16 && want != MP_BF16) ||
                    want == MP_Q8_1 || want == MP_Q8_K) {
                    fprintf(stderr, "mmpipe convert: --dtype %s is not a type convert writes\n", v);
                    return 1;
                }
            }
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "mmpipe convert: unknown option %s (or it needs a value)\n", a);
            return 1;
        } else if (!in) {
            in = a;
        } else if (!out) {
            out = a;
        } else {
            fprintf(stderr, "mmpipe convert: too many arguments (%s)\n", a);
            return 1;
        }
    }
    if (!in || !out) {
        usage(stderr);
        return 1;
    }
    mp_error err;
    mp_weights *wts = NULL;
    if (mp_weights_open(&wts, in, &err)) {
        fprintf(stderr, "mmpipe convert: %s\n", err.msg);
        return 1;
    }
    int rc = 1;
    float *rope_freqs = NULL;
    conv cv = {mp_gguf_writer_new(), calloc((size_t)mp_weights_count(wts) + 1, sizeof(job)), 0, want, ""};
    if (!cv.w || !cv.jobs) {
        fprintf(stderr, "mmpipe convert: out of memory\n");
        goto end;
    }
    mp_gguf_set_str(cv.w, "general.architecture", "llama"); /* first key, as llama.cpp writes it; set below */
    const char *base = strrchr(in, '/');
    char nm[256];
    snprintf(nm, sizeof nm, "%s", name ? name : (base && base[1] ? base + 1 : in));
    if (!name) {
        char *dot = strrchr(nm, '.');
        if (dot && dot != nm) *dot = 0;
    }
    mp_gguf_set_str(cv.w, "general.name", nm);
    int r;
    switch (mp_weights_format_of(wts)) {
    case MP_WEIGHTS_LLAMA2C: r = from_llama2c(&cv, wts, tok, &err); break;
    case MP_WEIGHTS_SAFETENSORS:
        if (tok) {
            fprintf(stderr, "mmpipe convert: --tokenizer takes a llama2.c tokenizer.bin, for llama2.c input only\n");
            goto end;
        }
        r = from_hf(&cv, wts, in, &rope_freqs, &err);
        break;
    default: r = mp_errf(&err, "%s: already GGUF", in); break;
    }
    if (r) {
        fprintf(stderr, "mmpipe convert: %s\n", err.msg);
        goto end;
    }
    mp_gguf_set_str(cv.w, "general.architecture", cv.arch);
    mp_dtype ft = want >= 0 ? (mp_dtype)want : MP_F32;
    if (want < 0) /* the source precision: the type most 2-D tensors have */
        for (int64_t i = 0; i < cv.n_jobs; i++)
            if (cv.jobs[i].src && cv.jobs[i].src->ne[1] > 1) { ft = cv.jobs[i].dst; break; }
    mp_gguf_set_u32(cv.w, "general.file_type", (uint32_t)ftype_of(ft));
    if (mp_dtype_info(ft)->is_quant) mp_gguf_set_u32(cv.w, "general.quantization_version", 2);
    if (mp_gguf_writer_write(cv.w, out, &err)) {
        fprintf(stderr, "mmpipe convert: %s\n", err.msg);
        goto end;
    }
    fprintf(stderr, "mmpipe convert: wrote %s (%s, %" PRId64 " tensors, %s)\n", out, cv.arch, cv.n_jobs,
            mp_dtype_name(ft));
    rc = 0;
end:
    mp_gguf_writer_free(cv.w);
    free(cv.jobs);
    free(rope_freqs);
    mp_weights_free(wts);
    return rc;
}
