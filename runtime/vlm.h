/* vlm.h — a SmolVLM / Idefics3 vision-language model put together: the text model (llm/llama.h), its
 * tokenizer and chat template, the vision tower (projector/idefics3.h), and the prompt layout that
 * joins them, exactly as transformers' Idefics3Processor builds it:
 *
 *   the chat template renders "<|im_start|>User:<image>TEXT<end_of_utterance>\nAssistant:";
 *   each <image> becomes, for an image split into rows x cols tiles,
 *     for each row r: for each col c: <fake_token_around_image><row_r_col_c><image>*image_seq_len
 *                     then "\n"
 *     "\n<fake_token_around_image><global-img>" <image>*image_seq_len "<fake_token_around_image>"
 *   and for an image that was not split only the global part
 *     "<fake_token_around_image><global-img>" <image>*image_seq_len "<fake_token_around_image>";
 *   the text is tokenized with the special tokens recognised, and the embedding of every <image> token is
 *   replaced, in order, by the rows of the vision tower (tiles row-major, the global image last).
 *
 * MODEL is an HF folder (config.json with vision_config, model.safetensors with the vision and text
 * tensors, tokenizer.json, the processor configs) or a llama.cpp text-model GGUF with the vision tower in
 * a separate mmproj GGUF (--mmproj).
 */
#ifndef MP_VLM_H
#define MP_VLM_H

#include "llm/llama.h"
#include "llm/sample.h"
#include "llm/tokenizer.h"
#include "preprocess/image.h"
#include "preprocess/imgproc.h"
#include "projector/idefics3.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mp_vlm {
    char path[4096];             /* the resolved text model path */
    mp_llama llm;
    mp_tokenizer *tok;
    char *chat_template;         /* NULL: the SmolVLM layout is written directly */
    mp_idefics3_vision vis;
    int32_t id_image, id_fake, id_global; /* <image>, <fake_token_around_image>, <global-img> */
    mp_sampler_params sampling;  /* defaults: greedy unless generation_config.json samples */
} mp_vlm;

/* model: HF folder / GGUF text model / hub id; mmproj: the vision GGUF, or NULL (vision in MODEL). */
int mp_vlm_load(mp_vlm *m, const char *model, const char *mmproj, mp_exec *ex, mp_error *err);
void mp_vlm_free(mp_vlm *m, mp_exec *ex);

/* ---------------------------------------------------------------- images */

/* The processor for one image. split: 1 = tiles + global image, 0 = one tile (the image resized to the
 * tile square after the longest-edge resize, as transformers >= 4.49 do without splitting), -1 = what the
 * preprocessor config says (do_image_splitting). *tiles is malloc'd: plan->n_tiles x 3 x tile x tile floats. */
int mp_vlm_preprocess(const mp_vlm *m, const mp_image *img, int split, float **tiles, mp_idefics3_plan *plan,
                      mp_error *err);

/* ---------------------------------------------------------------- prompts */

/* The chat prompt of one user turn: an image, then text. *out is malloc'd. */
int mp_vlm_chat_prompt(const mp_vlm *m, const char *text, char **out, mp_error *err);
/* Replaces the n_images "<image>" of prompt by the image layouts of the plans (in order). *out malloc'd. */
int mp_vlm_expand_prompt(const mp_vlm *m, const char *prompt, const mp_idefics3_plan *plans, int n_images,
                         char **out, mp_error *err);
/* Token ids of an expanded prompt (special tokens recognised, no BOS added: the template starts with
 * <|im_start|>). *ids malloc'd; *n_image receives how many <image> tokens it holds. */
int mp_vlm_tokenize(const mp_vlm *m, const char *text, int32_t **ids, int *n, int *n_image, mp_error *err);

/* Decoder items for an expanded prompt: tokens[i] = -1 where row i of embd is an image row. embd
 * (malloc'd, [n][n_embd] host F32) holds the image rows at those positions (taken in order from
 * image_rows, n_image_rows rows of n_embd floats) and zeros elsewhere. */
int mp_vlm_items(const mp_vlm *m, const int32_t *ids, int n, const float *image_rows, int n_image_rows,
                 int32_t **tokens, float **embd, mp_error *err);

#ifdef __cplusplus
}
#endif
#endif
