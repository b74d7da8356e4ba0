/* tokenizer_hf.c — HF tokenizer.json / vocab.json + merges.txt loader. */
#include "llm/tokenizer_int.h"

int mp_tokenizer_load_hf(mp_tokenizer **out, const char *path, mp_error *err) {
    *out = NULL;
    return mp_errf(err, "%s: HF tokenizers are not supported yet", path);
}
