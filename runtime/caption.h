/* caption.h — many images in, one caption each: the pipeline behind `mmpipe caption`.
 *
 *   worker thread:  decode image i (preprocess/image.h) -> Idefics3 tiles (runtime/vlm.h), a few images
 *                   ahead of the main thread, while it computes
 *   main thread:    tiles of consecutive images fill vision batches of `vision_tiles` tiles, each batch
 *                   one pass of the SigLIP encoder + connector (all its rows through every matmul); a
 *                   batch is also encoded early when the next image is not prepared yet, so the
 *                   encoder never waits for the worker while it has tiles;
 *                   an image whose tiles are all encoded gets its prompt (chat template, image layout,
 *                   token ids, image rows) and is queued to the engine (runtime/engine.h);
 *                   then the engine decodes every caption together as a batch of sequences.
 * A file that cannot be read or decoded gets its own error; the others go on. Greedy captions do not
 * depend on which other images share the call (the vision tower and the decoder are batch-invariant).
 */
#ifndef MP_CAPTION_H
#define MP_CAPTION_H

#include "runtime/vlm.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MP_CAPTION_DEFAULT_PROMPT "Can you describe this image?" /* SmolVLM's model card */

typedef struct mp_caption_params {
    const char *prompt;          /* user text after the image; NULL: MP_CAPTION_DEFAULT_PROMPT */
    int split;                   /* -1: the processor config's do_image_splitting, 0: one tile, 1: split */
    int max_new;                 /* most new tokens per caption (default 256) */
    mp_sampler_params sampling;  /* default: the model's (greedy for SmolVLM) */
    int ignore_eos;              /* benchmarks: always generate max_new tokens */
    int max_seqs;                /* captions decoding at once (default 16) */
    int vision_tiles;            /* tiles per vision batch (0: as many as fit in 8192 patch rows) */
    int overlap;                 /* 1 (default): image decode + preprocessing on a worker thread */
    int lookahead;               /* images the worker may have ready ahead of the encoder (0, the default:
                                  * as many as make two vision batches of tiles) */
} mp_caption_params;

mp_caption_params mp_caption_default_params(const mp_vlm *m);

typedef struct mp_caption_result {
    int ok;
    char error[2200];            /* why it failed, naming the file */
    char warning[256];           /* a damaged file that still gave an image (preprocess/image.h) */
    char *text;                  /* the caption, whitespace-trimmed (malloc'd); NULL on error */
    int32_t *tokens;             /* the generated token ids (malloc'd) */
    int n_tokens, n_prompt;      /* generated tokens, prompt items */
    int n_tiles, rows, cols;
    const char *finish_reason;   /* "stop" or "length" */
    double t_load, t_preprocess; /* decoding the file, the Idefics3 processor */
    double t_vision;             /* its share of the vision batches (encoder + connector) */
    double t_done;               /* seconds from the start of the call until the caption was complete */
} mp_caption_result;

void mp_caption_result_free(mp_caption_result *r);

typedef struct mp_caption_stats {
    double t_wall;
    double t_load, t_preprocess; /* summed over images (on the worker thread when overlapping) */
    double t_wait;               /* the main thread waiting for a prepared image */
    double t_encode, t_connector;/* vision tower */
    double t_prompt;             /* chat template, layout, tokenization, engine submit */
    double t_prefill, t_decode;  /* engine steps that fed prompt rows / only generated tokens */
    mp_idefics3_timing vision;   /* per-stage vision timing (encoder stages, FLOPs) */
    int64_t images, failed, tiles, prompt_tokens, gen_tokens, steps;
    int64_t decode_tokens;       /* tokens of the pure decode steps (t_decode) */
    int max_running;
} mp_caption_stats;

/* Captions files[0..n) into res[0..n) (caller's array; free each with mp_caption_result_free).
 * Returns 0 when the call ran (individual images may have failed: res[i].ok), -1 on a fatal error
 * (out of memory, a backend failure) with err filled. stats may be NULL. */
int mp_caption_run(const mp_vlm *m, mp_exec *ex, const char *const *files, int n, const mp_caption_params *p,
                   mp_caption_result *res, mp_caption_stats *stats, mp_error *err);

/* The same for decoded images (e.g. video frames): one caption per image; errors name "image K". */
int mp_caption_run_images(const mp_vlm *m, mp_exec *ex, const mp_image *const *images, int n,
                          const mp_caption_params *p, mp_caption_result *res, mp_caption_stats *stats, mp_error *err);

#ifdef __cplusplus
}
#endif
#endif
