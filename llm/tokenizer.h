/* tokenizer.h — text <-> token ids for every model family mmpipe runs.
 *
 * Kinds: SentencePiece-style BPE with byte fallback (Llama-2, llama2.c tokenizer.bin, GGUF
 * tokenizer.ggml.model = "llama"), byte-level BPE (GPT-2, Llama-3, Qwen2, SmolLM/StarCoder, Whisper:
 * HF tokenizer.json, vocab.json + merges.txt, GGUF "gpt2"), and WordPiece (BERT, GGUF "bert").
 * Added/special tokens are matched before the normal algorithm when parse_special is set.
 */
#ifndef MP_TOKENIZER_H
#define MP_TOKENIZER_H

#include "kernels/mp.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mp_tokenizer mp_tokenizer;
struct mp_gguf; /* models/gguf.h */

/* llama2.c tokenizer.bin (max_token_length, then per token: float score, int len, bytes). */
int mp_tokenizer_load_llama2c(mp_tokenizer **out, const char *path, int vocab_size, mp_error *err);
/* An HF model folder (tokenizer.json, else vocab.json + merges.txt; tokenizer_config.json and
 * added_tokens.json / special_tokens_map.json for specials) or a tokenizer.json path. */
int mp_tokenizer_load_hf(mp_tokenizer **out, const char *path, mp_error *err);
/* GGUF metadata tokenizer.ggml.* (model, pre, tokens, scores, token_type, merges, bos/eos/... ids). */
int mp_tokenizer_load_gguf(mp_tokenizer **out, const struct mp_gguf *g, mp_error *err);
void mp_tokenizer_free(mp_tokenizer *t);

int mp_tokenizer_n_vocab(const mp_tokenizer *t);
int32_t mp_tokenizer_bos(const mp_tokenizer *t); /* -1 when the model has none */
int32_t mp_tokenizer_eos(const mp_tokenizer *t);
/* End-of-turn token (e.g. "<|im_end|>", "<|eot_id|>", "<end_of_utterance>"), or -1. */
int32_t mp_tokenizer_eot(const mp_tokenizer *t);
/* 1 if generation should stop at id: EOS, EOT, or another end-of-generation token of the vocabulary. */
int mp_tokenizer_is_eog(const mp_tokenizer *t, int32_t id);
/* Id of an exact token string (e.g. "<|im_end|>", "<image>"), or -1. */
int32_t mp_tokenizer_find(const mp_tokenizer *t, const char *piece);
/* 1 for control/special tokens (not printed when decoding with skip_special). */
int mp_tokenizer_is_special(const mp_tokenizer *t, int32_t id);

/* Encode text[0..len). add_special: prepend BOS (and append EOS) as the model's config says.
 * parse_special: recognise special/added token strings in the text. Returns the number of ids; if it is
 * larger than max_ids, only max_ids were written (call again with a bigger buffer). -1 on error. */
int mp_tokenize(const mp_tokenizer *t, const char *text, size_t len, int add_special, int parse_special,
                int32_t *ids, int max_ids);

/* The bytes one token stands for (byte-level BPE decoded to raw bytes, "▁" to space, <0xNN> to the
 * byte). May be a partial UTF-8 sequence. Returns the length, or -1 for a bad id. */
int mp_token_to_bytes(const mp_tokenizer *t, int32_t id, char *buf, int cap);

/* Streaming detokenizer: feed ids one at a time, get text that never splits a UTF-8 character
 * (bytes of an incomplete character are held back until it completes or the stream is flushed).
 * Also applies the SentencePiece rule that drops the leading space of the first token after BOS. */
typedef struct mp_detok {
    const mp_tokenizer *tok;
    char pending[8];
    int n_pending;
    int skip_special;
    int at_start;
} mp_detok;

void mp_detok_init(mp_detok *d, const mp_tokenizer *t, int skip_special);
/* Appends the printable text for `id` into out (NUL-terminated); returns its length or -1. */
int mp_detok_push(mp_detok *d, int32_t id, char *out, int cap);
/* Emits any held-back bytes (invalid sequences become U+FFFD). */
int mp_detok_flush(mp_detok *d, char *out, int cap);

#ifdef __cplusplus
}
#endif
#endif
