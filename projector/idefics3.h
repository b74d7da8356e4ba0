/* idefics3.h — the Idefics3 / SmolVLM vision tower: SigLIP (encoders/siglip.h) + the connector
 * (transformers' Idefics3Connector):
 *
 *   features [seq][D] per tile, seq = side * side patches
 *   pixel_shuffle(scale s):  token (i, j) of the (side/s) x (side/s) grid gets the s x s block of patches
 *                            below it, rows of the block outer, columns inner: [seq/s^2][D*s^2]
 *   modality_projection:     linear D*s^2 -> n_embd of the text model, no bias
 *
 * so a tile gives image_seq_len = seq / s^2 embedding rows (64 for SmolVLM: 32x32 patches, s = 4).
 *
 * Loading (models/smolvlm_load.c) takes an HF folder (config.json with vision_config / scale_factor,
 * model.vision_model.* and model.connector.* tensors, preprocessor_config.json, processor_config.json)
 * or a llama.cpp mmproj GGUF (clip.projector_type "idefics3", v.* and mm.model.fc tensors).
 */
#ifndef MP_IDEFICS3_H
#define MP_IDEFICS3_H

#include "encoders/siglip.h"
#include "kernels/mp.h"
#include "preprocess/imgproc.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mp_idefics3_vision {
    mp_siglip enc;
    int scale_factor;          /* pixel shuffle factor s */
    int n_embd_text;           /* output width (text model hidden size) */
    mp_tensor proj;            /* modality_projection ne = {D*s^2, n_embd_text} */
    int image_seq_len;         /* rows per tile */
    mp_idefics3_params proc;   /* the image processor that goes with the model */
    int32_t image_token_id;    /* config image_token_id (-1 when the file does not say) */
    mp_backend backend;
    void *owner;               /* file maps and converted copies; freed by mp_idefics3_vision_free */
    void (*owner_free)(void *owner, mp_exec *ex);
} mp_idefics3_vision;

/* The pixel shuffle is a gather of feature rows: read the output [n][side*side/s^2][D*s^2] as
 * [n*side*side][D] rows; row r is input row ids[r]. ids receives n_tiles * side * side entries. */
void mp_idefics3_shuffle_ids(int32_t *ids, int n_tiles, int side, int s);

/* Activations of the vision tower, reused between calls. */
typedef struct mp_idefics3_state {
    mp_siglip_state enc;
    float *feat, *shuf, *emb;  /* backend memory: features, shuffled features, projected rows of a batch */
    int32_t *ids, *ids_dev;    /* shuffle gather of a batch (host, backend) */
    int64_t cap_rows;
    int ids_tiles, ids_side;   /* what ids was built for */
    int max_tiles;             /* tiles per vision batch (0: as many as fit in 8192 patch rows, at least 1) */
} mp_idefics3_state;

void mp_idefics3_state_free(mp_idefics3_state *st, mp_exec *ex);

typedef struct mp_idefics3_timing {
    mp_siglip_timing enc;      /* vision encoder stages (accumulated) */
    double encode;             /* vision encoder total */
    double connector;          /* pixel shuffle + projection */
    int tiles, batches;
} mp_idefics3_timing;

/* Tiles (host memory, n_tiles x 3 x tile x tile floats from the Idefics3 processor) -> embedding rows
 * (host memory, n_tiles * image_seq_len rows of n_embd_text floats), in batches of st->max_tiles tiles.
 * timing (may be NULL) is accumulated. */
int mp_idefics3_encode(const mp_idefics3_vision *v, mp_idefics3_state *st, mp_exec *ex, const float *pixels,
                       int n_tiles, float *out, mp_idefics3_timing *timing, mp_error *err);

/* Vision features only (SigLIP output after post_layernorm, before the connector): for tests.
 * out (host) receives n_tiles * seq rows of D floats. */
int mp_idefics3_features(const mp_idefics3_vision *v, mp_idefics3_state *st, mp_exec *ex, const float *pixels,
                         int n_tiles, float *out, mp_error *err);

/* ---------------------------------------------------------------- loading (models/smolvlm_load.c) */

/* path: an HF SmolVLM / Idefics3 folder, its model.safetensors (config beside it), or an mmproj GGUF. */
int mp_idefics3_vision_load(mp_idefics3_vision *v, const char *path, mp_exec *ex, mp_error *err);
void mp_idefics3_vision_free(mp_idefics3_vision *v, mp_exec *ex);

#ifdef __cplusplus
}
#endif
#endif
