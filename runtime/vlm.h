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

#include "llm/jinja.h"
#include "llm/llama.h"
#include "llm/sample.h"
#include "llm/tokenizer.h"
#include "preprocess/image.h"
#include "preprocess/imgproc.h"
#include "projector/idefics3.h"
#include "runtime/engine.h"

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
/* Chat messages rendered with the model's chat template (generation prompt added); a part of type
 * "image" becomes "<image>". Without a template, SmolVLM's layout is written directly. *out malloc'd. */
int mp_vlm_render_chat(const mp_vlm *m, const mp_chat_msg *msgs, int n_msgs, char **out, mp_error *err);
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

/* ---------------------------------------------------------------- decoder prompts with images
 *
 * What batch mode (and any other caller) needs to turn images + text into one engine request:
 *
 *   mp_vlm_prompt p;
 *   if (mp_vlm_prompt_build(&vlm, &ex, NULL, imgs, n_imgs, "Describe this image.", -1, &p, &err) < 0) ...;
 *   mp_gen_request r = {0};
 *   mp_vlm_prompt_to_request(&p, &r);      // n, tokens, embd
 *   r.sampling = vlm.sampling; r.max_new = 256; ...
 *   mp_engine_submit(engine, &r, &err);     // the engine copies the prompt
 *   mp_vlm_prompt_free(&p);
 *
 * The engine must be created over vlm.llm and vlm.tok. Images are decoded frames (mp_image_load, or the
 * frames of mp_video_load); all their tiles go through the vision tower in batches. */

typedef struct mp_vlm_prompt {
    int n;                    /* decoder items */
    int32_t *tokens;          /* [n] (malloc'd): a token id, or -1 where the item is row i of embd */
    float *embd;              /* [n][n_embd] host F32 (malloc'd): the image rows at their items, zeros
                               * elsewhere; NULL when the prompt has no images */
    char *text;               /* the prompt text with the image layouts expanded (malloc'd) */
    int n_images, n_tiles, n_image_rows;
    double t_preprocess, t_encode, t_connector; /* seconds spent on the images (prompt_from_text/chat/build) */
} mp_vlm_prompt;

void mp_vlm_prompt_free(mp_vlm_prompt *p);
/* Sets r->n, r->tokens, r->embd to p's (the rest of r is left alone). */
void mp_vlm_prompt_to_request(const mp_vlm_prompt *p, mp_gen_request *r);

/* A prompt text holding one "<image>" per image (chat template already applied), the images' plans and
 * their connector rows (plans[k].n_tiles * image_seq_len rows of n_embd floats per image, in order). */
int mp_vlm_prompt_assemble(const mp_vlm *m, const char *prompt, const mp_idefics3_plan *plans, int n_images,
                           const float *image_rows, mp_vlm_prompt *out, mp_error *err);

/* From decoded images and a prompt text with one "<image>" per image: each image through the processor
 * (split as in mp_vlm_preprocess), all tiles through the vision tower in batches (vs: a state to reuse
 * between calls, or NULL), then mp_vlm_prompt_assemble. */
int mp_vlm_prompt_from_text(const mp_vlm *m, mp_exec *ex, mp_idefics3_state *vs, const mp_image *const *images,
                            int n_images, const char *prompt, int split, mp_vlm_prompt *out, mp_error *err);
/* The same from chat messages whose "image" parts mark where the images go (in order). */
int mp_vlm_prompt_from_chat(const mp_vlm *m, mp_exec *ex, mp_idefics3_state *vs, const mp_image *const *images,
                            int n_images, const mp_chat_msg *msgs, int n_msgs, int split, mp_vlm_prompt *out,
                            mp_error *err);
/* One user turn: the images, then text (what `mmpipe caption` asks). */
int mp_vlm_prompt_build(const mp_vlm *m, mp_exec *ex, mp_idefics3_state *vs, const mp_image *const *images,
                        int n_images, const char *text, int split, mp_vlm_prompt *out, mp_error *err);

#ifdef __cplusplus
}
#endif
#endif
