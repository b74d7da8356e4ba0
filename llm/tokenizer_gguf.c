/* tokenizer_gguf.c — tokenizer.ggml.* metadata loader. */
#include "llm/tokenizer_int.h"

int mp_tokenizer_load_gguf(mp_tokenizer **out, const struct mp_gguf *g, mp_error *err) {
    *out = NULL;
    return mp_errf(err, "GGUF tokenizers are not supported yet");
}
