/* whisper.h — the Whisper network (openai/whisper model.py): audio encoder and text decoder.
 *
 *   encoder(mel [n_mels][3000]):
 *     x = gelu(conv1d(mel, k3 p1)) ; x = gelu(conv1d(x, k3 s2 p1))      -> [D][1500]
 *     x = x^T + sinusoids                                              -> [1500][D]
 *     for each block: x += attn(ln(x)) ; x += mlp(ln(x))                (pre-LN, GELU erf)
 *     x = ln_post(x)
 *   decoder(tokens, xa):
 *     x = tok_emb[tokens] + pos_emb[offset ..]
 *     for each block: x += self_attn(ln(x)) (causal, KV cache) ; x += cross_attn(ln(x), xa) ; x += mlp(ln(x))
 *     logits = ln(x) . tok_emb^T                                        (tied output)
 *   attention: softmax(q k^T / sqrt(head_dim)) v per head; keys have no bias.
 *
 * Every linear layer is one mp_matmul over all rows of a batch (F32/F16/BF16/quantized weights). The
 * encoder takes any number of 30 s windows at once; cross-attention keys/values are computed once per
 * window (mp_whisper_cross). The decoder takes a batch of sequences (beams, files), each with its own
 * self-attention cache slot and its own audio window.
 *
 * Loading (models/whisper_load.c): whisper.cpp ggml .bin files and HF folders (config.json +
 * *.safetensors + tokenizer.json, openai/whisper-* layout). Weights stay mmap'd on the CPU.
 */
#ifndef MP_WHISPER_H
#define MP_WHISPER_H

#include "kernels/mp.h"
#include "models/ggml_bin.h"
#include "preprocess/mel.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MP_WHISPER_N_LANG 100 /* languages openai's tokenizer knows; a model uses the first num_languages */

typedef struct mp_whisper_linear {
    mp_tensor w;    /* ne = {in, out}, any dtype mp_matmul takes */
    const float *b; /* [out] F32 or NULL */
} mp_whisper_linear;

typedef struct mp_whisper_attn {
    const float *ln_w, *ln_b; /* pre-LN of the sublayer */
    mp_whisper_linear q, k, v, o;
} mp_whisper_attn;

typedef struct mp_whisper_block {
    mp_whisper_attn attn;
    mp_whisper_attn cross; /* decoder blocks only */
    const float *mlp_ln_w, *mlp_ln_b;
    mp_whisper_linear fc1, fc2;
} mp_whisper_block;

/* Token id -> bytes (specials as "<|...|>" text), and bytes -> id for the ordinary tokens (< eot). */
typedef struct mp_whisper_vocab {
    int n;
    char *text;      /* all token bytes */
    uint32_t *off, *len;
    int32_t *ht;     /* open addressing over ids < n_text */
    uint32_t ht_mask;
    int n_text;      /* ordinary (BPE) tokens: ids [0, n_text) */
} mp_whisper_vocab;

typedef struct mp_whisper {
    mp_whisper_hparams hp;   /* n_vocab, n_audio_ctx, n_audio_state, ..., n_mels, ftype */
    int n_audio_ff, n_text_ff;
    mp_whisper_specials sp;  /* eot, sot, translate, ..., timestamp_begin */
    char type[32];           /* "tiny", "base", ..., "large v3" */
    const char *format;      /* "ggml" or "safetensors" */

    /* encoder */
    mp_tensor conv1_w, conv2_w; /* ne = {3, C_in, D} */
    const float *conv1_b, *conv2_b;
    const float *enc_pos;       /* [n_audio_ctx][D] */
    mp_whisper_block *enc;
    const float *ln_post_w, *ln_post_b;
    /* decoder */
    mp_tensor tok_emb;          /* ne = {D, n_vocab}; also the output projection */
    mp_tensor dec_pos_t;        /* ne = {D, n_text_ctx} F32 (rows fetched with mp_get_rows) */
    mp_whisper_block *dec;
    const float *dec_ln_w, *dec_ln_b;

    mp_mel_filters mel;         /* from the file (ggml) or computed as the HF feature extractor does */
    mp_whisper_vocab vocab;
    int32_t *align_heads;       /* (layer, head) pairs for word timestamps */
    int n_align_heads;

    mp_backend backend;
    void *owner;                /* what keeps the weights alive */
    void (*owner_free)(void *owner, mp_exec *ex);
} mp_whisper;

/* Loads a whisper.cpp ggml .bin or an HF folder (or its config.json / model.safetensors). A ggml file
 * without tensors (whisper.cpp's for-tests-*.bin) is refused with a clear error: it cannot transcribe. */
int mp_whisper_load(mp_whisper *m, const char *path, mp_exec *ex, mp_error *err);
void mp_whisper_free(mp_whisper *m, mp_exec *ex);

/* (layer, head) pairs: whisper.cpp's -dtw presets ("tiny.en", "base", ..., "large.v3.turbo"), or NULL /
 * "" / "default" for openai's default (every head of the last half of the decoder layers). Replaces
 * m->align_heads. -1 for an unknown name or a preset that does not fit the model. */
int mp_whisper_set_alignment_heads(mp_whisper *m, const char *preset, mp_error *err);

/* Language code of language token i ("en" for 0, ... "yue" for 99); NULL outside. */
const char *mp_whisper_lang_code(int i);
/* Id of an ordinary token with exactly these bytes, or -1. */
int32_t mp_whisper_vocab_find(const mp_whisper_vocab *v, const char *s, uint32_t len);

/* Random-weight models in the real formats, for tests and benchmarks: header, mel filters and vocabulary
 * copied from header_from (a whisper.cpp ggml .bin such as for-tests-ggml-tiny.en.bin), sizes scaled
 * as asked, weights deterministic in (seed, tensor name) so the ggml and HF writers give equal values. */
typedef struct mp_whisper_random_spec {
    const char *header_from;
    int n_state, n_head, n_layer; /* 0: keep the header's */
    int n_text_layer;             /* 0: = n_layer */
    mp_dtype wtype;               /* matrices and the token embedding (ggml only; HF writes F32) */
    uint64_t seed;
    float gain;                   /* matrix scale x 1/sqrt(in) */
    float emb_scale;              /* token embedding values in [-emb_scale, emb_scale) */
    float eot_gain;               /* <|endoftext|> embedding row multiplied by it (0: 1) */
    float pos_scale;              /* decoder positional embedding values in [-pos_scale, pos_scale) (0: 0.2) */
    int n_mels;                   /* 0: keep the header's; else (e.g. 128, large-v3) the slaney filterbank of that
                                   * size is written (what OpenAI's mel_filters.npz holds) */
    int n_vocab;                  /* 0: keep the header's; 51866: large-v3's (100 languages, <|yue|>) */
} mp_whisper_random_spec;

int mp_whisper_write_random(const char *path, const mp_whisper_random_spec *s, mp_error *err);
/* An HF folder: config.json + model.safetensors (F32); tokenizer.json is not written. */
int mp_whisper_write_random_hf(const char *dir, const mp_whisper_random_spec *s, mp_error *err);

/* ---------------------------------------------------------------- encoder */

/* Activation buffers of the encoder, grown as needed (backend memory). */
typedef struct mp_whisper_enc_state {
    int cap_win;
    float *x, *xb, *q, *k, *v, *att, *hb, *mel;
} mp_whisper_enc_state;

void mp_whisper_enc_state_free(mp_whisper_enc_state *st, mp_exec *ex);

/* Encodes n_win windows. mel: host [n_win][n_mels][2 * n_audio_ctx]; out: backend memory
 * [n_win][n_audio_ctx][D] (may be st-owned: pass NULL to get st->x). Windows are independent: the
 * result of one window does not depend on the others in the batch. */
int mp_whisper_encode(const mp_whisper *m, mp_whisper_enc_state *st, mp_exec *ex, const float *mel, int n_win,
                      float *out, mp_error *err);

/* Cross-attention keys and values of every decoder layer for n_win encoded windows:
 * k, v: backend [n_text_layer][n_win][n_audio_ctx][D].
 * On the CPU with AVX-512 also an F16 copy in mp_attn_pack_f16ctx's head panels, f16_k / f16_v:
 * [n_text_layer][n_win][f16_per] each: one decoded token reads these, half the bytes (whisper.cpp keeps
 * its cross K/V in F16 too); several tokens of one sequence at once (prompts) read the F32 ones. */
typedef struct mp_whisper_cross {
    int n_win, n_layer, n_ctx, d;
    float *k, *v;
    mp_f16 *f16_k, *f16_v; /* NULL when not kept */
    int64_t f16_per;
} mp_whisper_cross;

int mp_whisper_cross_init(mp_whisper_cross *c, const mp_whisper *m, mp_exec *ex, int n_win, mp_error *err);
void mp_whisper_cross_free(mp_whisper_cross *c, mp_exec *ex);
/* enc: backend [n_win][n_audio_ctx][D] as mp_whisper_encode wrote it; fills windows [w0, w0 + n_win). */
int mp_whisper_cross_compute(const mp_whisper *m, mp_exec *ex, const float *enc, int n_win, mp_whisper_cross *c,
                             int w0, mp_error *err);

/* ---------------------------------------------------------------- decoder */

/* Self-attention cache: n_slots sequences of up to n_text_ctx tokens, [slot][layer][ctx][D] (backend). */
typedef struct mp_whisper_kv {
    int n_slots, n_layer, n_ctx, d;
    float *k, *v;
    int *len; /* host: tokens stored per slot */
} mp_whisper_kv;

int mp_whisper_kv_init(mp_whisper_kv *kv, const mp_whisper *m, mp_exec *ex, int n_slots, mp_error *err);
void mp_whisper_kv_free(mp_whisper_kv *kv, mp_exec *ex);
/* dst takes src's first n tokens (beam search re-ordering, prefill sharing). dst != src. */
void mp_whisper_kv_copy(mp_whisper_kv *kv, mp_exec *ex, int dst, int src, int n);

typedef struct mp_whisper_dec_seq {
    int slot;                       /* cache slot; tokens go at positions len[slot] .. */
    int n;                          /* tokens */
    const int32_t *tokens;          /* host [n] */
    const mp_whisper_cross *cross;  /* audio to attend to: window `win` of `cross` */
    int win;
    int n_logits;                   /* rows that produce logits */
    const int *logit_rows;          /* their indices in [0, n); NULL: the last n_logits rows */
    float *logits;                  /* host [n_logits][n_vocab] */
    float *xqk;                     /* optional host [n_text_layer][n_text_head][n][n_audio_ctx]: scaled
                                     * cross-attention scores q.k^T / sqrt(head_dim) before softmax */
} mp_whisper_dec_seq;

typedef struct mp_whisper_dec_state {
    int cap_rows, cap_out, cap_seqs;
    float *x, *xb, *q, *k, *v, *att, *hb, *out, *logits, *qk; /* backend */
    int32_t *ids_dev, *pos_dev, *rows_dev;                      /* backend */
    int32_t *ids, *pos, *rows;                                  /* host */
    int64_t cap_qk;
} mp_whisper_dec_state;

void mp_whisper_dec_state_free(mp_whisper_dec_state *st, mp_exec *ex);

/* Runs the decoder over a batch of sequences and appends their tokens to their cache slots. */
int mp_whisper_decode(const mp_whisper *m, mp_whisper_dec_state *st, mp_whisper_kv *kv, mp_exec *ex,
                      const mp_whisper_dec_seq *seqs, int n_seqs, mp_error *err);

#ifdef __cplusplus
}
#endif
#endif
