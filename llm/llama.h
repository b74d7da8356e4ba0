/* llama.h — the Llama-family decoder: Llama / SmolLM2, Qwen2 (q/k/v bias), Granite (multipliers,
 * logits scaling); tied or separate output head; GQA/MQA; RoPE normal or NeoX with theta and
 * linear / llama3 / YaRN scaling; RMSNorm.
 *
 * The forward pass takes a batch of independent sequences, each a list of items that are token ids or
 * ready-made embedding rows (image/audio/video features enter here), with an explicit RoPE position per
 * item, and its own KV-cache slot. Prefill and decode mix freely in one call. All rows of all sequences
 * go through each linear layer as one matmul; attention runs per sequence over its paged KV blocks.
 *
 *   x = embed(items) * embedding_multiplier
 *   for each layer:
 *     h = rmsnorm(x) ; q,k,v = linear(h) (+bias) ; rope(q,k, pos) ; kv cache <- k,v
 *     x = x + residual_multiplier * linear_o(attention(q, K, V, scale))
 *     x = x + residual_multiplier * ffn(rmsnorm(x))          ffn = down(silu(gate(h)) * up(h))
 *   logits = linear_out(rmsnorm(x)) / logits_scaling
 */
#ifndef MP_LLAMA_H
#define MP_LLAMA_H

#include "kernels/mp.h"
#include "kernels/ops.h"
#include "llm/kvcache.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum mp_llm_arch {
    MP_LLM_LLAMA = 0,   /* llama, SmolLM2, llama2.c checkpoints */
    MP_LLM_QWEN2 = 1,   /* q/k/v bias */
    MP_LLM_GRANITE = 2, /* embedding / attention / residual multipliers, logits scaling */
} mp_llm_arch;

typedef enum mp_rope_scaling {
    MP_ROPE_SCALING_NONE = 0,
    MP_ROPE_SCALING_LINEAR = 1,
    MP_ROPE_SCALING_LLAMA3 = 2,
    MP_ROPE_SCALING_YARN = 3,
} mp_rope_scaling;

typedef struct mp_llama_config {
    mp_llm_arch arch;
    int n_vocab, n_embd, n_ff, n_layer, n_head, n_kv_head, head_dim;
    int n_ctx_train;            /* max_position_embeddings / context_length */
    float norm_eps;
    /* RoPE */
    mp_rope_mode rope_mode;     /* NORMAL for GGUF llama/granite and llama2.c; NEOX for HF and GGUF qwen2 */
    int n_rot;
    float rope_theta;
    mp_rope_scaling rope_scaling;
    float rope_factor;          /* linear/llama3/yarn factor */
    float rope_low_freq_factor, rope_high_freq_factor; /* llama3 */
    int rope_orig_ctx;          /* llama3 / yarn original_max_position_embeddings */
    float yarn_beta_fast, yarn_beta_slow, yarn_attn_factor; /* yarn (attn_factor 0 = 0.1 ln(factor) + 1) */
    int rope_sections[4];       /* M-RoPE (Qwen2-VL): rotary pairs per position stream; all 0 = plain RoPE */
    /* Granite (1 / 0 when unused) */
    float embedding_multiplier; /* 1 */
    float attention_multiplier; /* 0 = 1/sqrt(head_dim) */
    float residual_multiplier;  /* 1 */
    float logits_scaling;       /* 1: logits are divided by it */
    int tie_embeddings;
    /* special tokens (-1 when unknown) */
    int32_t bos_id;
    int32_t eos_ids[8];
    int n_eos;
} mp_llama_config;

/* One linear layer: y = x W^T (+ b). Every linear of the model goes through llama_linear(), the place
 * where LoRA adapters will hook in. */
typedef struct mp_llama_linear {
    mp_tensor w;        /* ne = {in, out}, any dtype */
    const float *b;     /* [out] F32 on the backend, or NULL */
} mp_llama_linear;

typedef struct mp_llama_layer {
    const float *attn_norm;  /* [n_embd] F32 */
    mp_llama_linear wq, wk, wv, wo;
    const float *ffn_norm;   /* [n_embd] F32 */
    mp_llama_linear w_gate, w_up, w_down;
} mp_llama_layer;

typedef struct mp_llama {
    mp_llama_config cfg;
    mp_tensor tok_embd;      /* ne = {n_embd, n_vocab} */
    const float *out_norm;   /* [n_embd] */
    mp_llama_linear output;  /* = tok_embd when tied */
    mp_llama_layer *layers;
    float *rope_freq_factors; /* llama3: n_rot/2 divisors on the backend, else NULL */
    mp_backend backend;
    void *owner;             /* what keeps the weights alive (file maps, converted copies); see models/ */
    void (*owner_free)(void *owner, mp_exec *ex);
} mp_llama;

/* 1 for an M-RoPE model (positions come as 4 streams per item). */
static inline int mp_llama_mrope(const mp_llama_config *c) {
    return c->rope_sections[0] > 0 || c->rope_sections[1] > 0 || c->rope_sections[2] > 0 || c->rope_sections[3] > 0;
}

/* Fills the derived fields (head_dim, n_rot, defaults of multipliers) and checks the numbers. */
int mp_llama_config_check(mp_llama_config *c, const char *what, mp_error *err);

/* ---------------------------------------------------------------- forward */

/* One sequence's part of a batch. Item i is token tokens[i] when tokens != NULL and tokens[i] >= 0;
 * otherwise it is embedding row i of embd ([n][n_embd] F32 in backend memory). */
typedef struct mp_llama_seq {
    int seq;                 /* KV cache slot (mp_kvcache_seq_new) */
    int n;                   /* items */
    const int32_t *tokens;   /* [n] or NULL */
    const float *embd;       /* [n][n_embd] or NULL */
    const int32_t *pos;      /* [n] RoPE positions, or [n][4] streams (t, h, w, extra) for an M-RoPE model;
                                NULL = the cache index in every stream (continuing plain text) */
    int logits;              /* 0: none, 1: last item, 2: every item */
    float *out;              /* host [1 or n][n_vocab] logits when logits != 0 */
} mp_llama_seq;

/* Activation buffers, reused between calls (grown when a bigger batch arrives). */
typedef struct mp_llama_state {
    int cap_rows, cap_out;
    float *x, *xb, *q, *k, *v, *att, *hb, *hb2, *xo, *logits; /* backend memory */
    int32_t *ids_dev, *pos_dev, *rows_dev;                      /* backend memory */
    int32_t *ids, *pos, *rows;                                  /* host */
    mp_kv_attn_seq *aseqs;
    int cap_seqs;
} mp_llama_state;

void mp_llama_state_free(mp_llama_state *st, mp_exec *ex);

/* Runs the decoder over a batch of sequences, appending their items to their KV-cache slots. */
int mp_llama_forward(const mp_llama *m, mp_llama_state *st, mp_kvcache *kv, mp_exec *ex,
                     const mp_llama_seq *seqs, int n_seqs, mp_error *err);

/* The KV cache this model needs (F32, block_size 16 when 0). */
int mp_llama_kvcache_init(const mp_llama *m, mp_kvcache *kv, mp_exec *ex, int max_seqs, int max_ctx,
                          int64_t n_tokens, int block_size, mp_error *err);

void mp_llama_free(mp_llama *m, mp_exec *ex);

/* ---------------------------------------------------------------- loading (models/llama_load.c) */

/* path: a GGUF file, an HF folder (config.json + *.safetensors) or a llama2.c .bin checkpoint. On the
 * CPU the weights stay mmap'd; on CUDA they are uploaded. */
int mp_llama_load(mp_llama *m, const char *path, mp_exec *ex, mp_error *err);
/* Only the configuration (an HF folder needs just its config.json / generation_config.json). */
int mp_llama_config_load(mp_llama_config *c, const char *path, mp_error *err);

/* layer building blocks, exposed for tests and for the layers that extend them (LoRA, MoE) */
void mp_llama_linear_fwd(mp_exec *ex, const mp_llama_linear *lin, float *y, int64_t ldy, const float *x,
                         int64_t ldx, int64_t rows);
void mp_llama_ffn_fwd(mp_exec *ex, const mp_llama_layer *L, const mp_llama_config *c, float *y, const float *x,
                      float *hb, float *hb2, int64_t rows);

#ifdef __cplusplus
}
#endif
#endif
