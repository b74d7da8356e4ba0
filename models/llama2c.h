/* llama2c.h — llama2.c checkpoints (karpathy/llama2.c run.c / export.py), read in place (f32, mmap).
 *
 * v0 (legacy) layout: 7 int32 dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len
 * (vocab_size < 0 means the classifier is not shared with the embedding), then f32 arrays:
 * token embedding [vocab][dim], attention rmsnorm [L][dim], wq [L][dim][dim], wk [L][kv_dim][dim],
 * wv [L][kv_dim][dim], wo [L][dim][dim], ffn rmsnorm [L][dim], w1 [L][hidden][dim], w2 [L][dim][hidden],
 * w3 [L][hidden][dim], final rmsnorm [dim], 2 x seq_len*head_size/2 unused RoPE tables, and the
 * classifier [vocab][dim] when not shared. kv_dim = dim * n_kv_heads / n_heads.
 * v1 layout ("ak42" export): u32 magic 0x616b3432, i32 version 1, the 7 ints, u8 shared_classifier,
 * zero padding to 256 bytes, then f32: attention norms, ffn norms, final norm, embedding, wq.., wk..,
 * wv.., wo.., w1.., w2.., w3.., [classifier]. (v2, the int8 export, is refused with a clear error.)
 *
 * The weights are exposed through mp_weights with llama.cpp's GGUF names and shapes (ne[0] innermost):
 *   token_embd.weight {dim, vocab}           output_norm.weight {dim}
 *   output.weight {dim, vocab} (only when the classifier is not shared: tie to token_embd otherwise)
 *   blk.N.attn_norm.weight {dim}             blk.N.ffn_norm.weight {dim}
 *   blk.N.attn_q.weight {dim, dim}           blk.N.attn_k.weight / attn_v.weight {dim, kv_dim}
 *   blk.N.attn_output.weight {dim, dim}
 *   blk.N.ffn_gate.weight {dim, hidden} (w1) blk.N.ffn_down.weight {hidden, dim} (w2)
 *   blk.N.ffn_up.weight {dim, hidden} (w3)
 * The q/k weights are in llama2.c's (and GGUF's) RoPE layout: rotate consecutive pairs (x[2i], x[2i+1]),
 * i.e. llama.cpp's normal (non-NeoX) rope; no permutation is applied.
 */
#ifndef MP_LLAMA2C_H
#define MP_LLAMA2C_H

#include "kernels/mp.h"
#include "models/weights.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MP_LLAMA2C_MAGIC 0x616b3432u

typedef struct mp_llama2c_config {
    int version; /* 0 (legacy) or 1 */
    int dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
    int shared_classifier;
    int head_size, kv_dim;
    float rms_norm_eps; /* run.c's constants: 1e-5 */
    float rope_theta;   /* 10000 */
    size_t data_offset; /* first weight byte */
    size_t file_size;
} mp_llama2c_config;

/* Reads and validates the header against the file size. */
int mp_llama2c_read_config(const char *path, mp_llama2c_config *cfg, mp_error *err);
/* Same on a memory image. */
int mp_llama2c_parse_config(const void *data, size_t size, const char *name, mp_llama2c_config *cfg, mp_error *err);
/* Opens the checkpoint as a weight source (see the names above); cfg (optional) gets the header. The
 * header stays available with mp_weights_llama2c(w). */
int mp_llama2c_open_weights(mp_weights **out, const char *path, mp_llama2c_config *cfg, mp_error *err);
/* 1 if path looks like a llama2.c checkpoint ("ak42" magic, or a v0 header consistent with the size). */
int mp_llama2c_sniff(const char *path);

#ifdef __cplusplus
}
#endif
#endif
