/* textmodel.h — everything a text-generating command needs from `-m MODEL`, loaded once: the decoder,
 * its tokenizer, its chat template and its generation defaults. MODEL may be a GGUF file, an HF folder,
 * a llama2.c checkpoint (tokenizer beside it or given), or a hub id ORG/NAME[:FILE] resolved through
 * the Hugging Face cache (models/hub.h). */
#ifndef MP_TEXTMODEL_H
#define MP_TEXTMODEL_H

#include "llm/llama.h"
#include "llm/sample.h"
#include "llm/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mp_textmodel {
    char path[4096];        /* the resolved local path */
    mp_llama llm;
    mp_tokenizer *tok;
    char *chat_template;    /* NULL when the model has none */
    char bos_text[128], eos_text[128]; /* bos/eos token strings for templates ("" when unknown) */
    mp_sampler_params sampling; /* defaults: generation_config.json (do_sample false -> greedy), else greedy */
    int has_generation_config;
} mp_textmodel;

/* tok_path: NULL, or a tokenizer to use instead of the one that comes with the model. */
int mp_textmodel_load(mp_textmodel *tm, const char *spec, const char *tok_path, mp_exec *ex, mp_error *err);
void mp_textmodel_free(mp_textmodel *tm, mp_exec *ex);

/* The tokenizer that goes with a model path (--tokenizer wins; an HF folder's; a GGUF's metadata; a
 * llama2.c checkpoint's tokenizer.bin beside it), checked against the model's vocabulary size. */
int mp_textmodel_load_tokenizer(mp_tokenizer **tok, const char *model, const char *tok_path, int n_vocab,
                                mp_error *err);

/* Sampling defaults from an HF folder's generation_config.json for the fields the caller did not set
 * (given_* flags), as transformers' generate() uses them: do_sample false or absent means greedy. */
typedef struct mp_sampling_given {
    int temp, top_k, top_p, min_p, rep;
} mp_sampling_given;
int mp_textmodel_generation_defaults(const char *model, const mp_sampling_given *g, mp_sampler_params *sp,
                                     mp_error *err);

#ifdef __cplusplus
}
#endif
#endif
