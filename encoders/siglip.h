/* siglip.h — the SigLIP vision transformer as Idefics3 / SmolVLM use it (transformers'
 * Idefics3VisionTransformer, a SiglipVisionTransformer with NaViT-style position ids).
 *
 *   x = conv2d(pixels, patch_w, stride = patch) + patch_b       patches in row-major order, [Np][D] per tile
 *   x = x + pos[position_id]                                    learned positions
 *   for each layer (pre-LN):
 *     x = x + out_proj(attention(q, k, v of layernorm1(x)))     full (non-causal) attention inside a tile
 *     x = x + fc2(gelu_tanh(fc1(layernorm2(x))))
 *   features = post_layernorm(x)
 *
 * Batching: the forward pass takes N tiles (all the tiles of all the images of a request, or of many
 * requests) and sends all their rows through each linear layer as one matmul; attention runs per tile.
 * Results do not depend on which other tiles share a batch (matmul rows are independent, attention is
 * per tile). Callers bound the activations by the number of tiles they pass (projector/idefics3.c).
 *
 * Position ids: Idefics3VisionEmbeddings buckets the fractional coordinates of the patches of each image
 * onto the num_patches_per_side grid of the position table. For a tile whose patches are all real (what
 * the Idefics3 processor produces: every tile is max_image_size square) this is the grid itself, but the
 * bucketing is reproduced exactly (float32 coordinates, torch.bucketize(right=True)) so a tile of another
 * size gets the ids transformers gives it.
 */
#ifndef MP_SIGLIP_H
#define MP_SIGLIP_H

#include "kernels/mp.h"
#include "kernels/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mp_siglip_config {
    int n_embd, n_ff, n_layer, n_head;
    int image_size;  /* side of the position grid in pixels (vision_config.image_size) */
    int patch_size;
    int n_channels;  /* 3 */
    float eps;       /* layer_norm_eps */
    mp_gelu_kind act; /* gelu_pytorch_tanh -> MP_GELU_TANH */
} mp_siglip_config;

/* nn.Linear(in, out) with bias: w->ne = {in, out}, b [out] F32 in backend memory (NULL: no bias). */
typedef struct mp_siglip_linear {
    mp_tensor w;
    const float *b;
} mp_siglip_linear;

typedef struct mp_siglip_layer {
    const float *ln1_w, *ln1_b;           /* [D] */
    mp_siglip_linear q, k, v, o;          /* D -> D */
    const float *ln2_w, *ln2_b;           /* [D] */
    mp_siglip_linear fc1, fc2;            /* D -> F -> D */
} mp_siglip_layer;

typedef struct mp_siglip {
    mp_siglip_config cfg;
    mp_tensor patch_w;        /* conv weight ne = {P, P, C, D} (PyTorch [D][C][P][P]); F32/F16/BF16 */
    const float *patch_b;     /* [D] */
    const float *pos;         /* [(image_size/P)^2][D] F32, backend memory */
    mp_siglip_layer *layers;  /* n_layer */
    const float *post_w, *post_b; /* post_layernorm [D] */
} mp_siglip;

/* Checks the numbers of a config (sizes, divisibility); fills defaults (eps 1e-6, 3 channels). */
int mp_siglip_config_check(mp_siglip_config *c, const char *what, mp_error *err);

/* Position ids of an h_patches x w_patches tile, as Idefics3VisionEmbeddings computes them for a tile
 * whose patches are all real. ids receives h_patches * w_patches entries. */
void mp_siglip_position_ids(const mp_siglip_config *c, int h_patches, int w_patches, int32_t *ids);

/* Activations, reused between calls (backend memory). */
typedef struct mp_siglip_state {
    int64_t cap_rows, cap_pix;
    float *pix;            /* pixels of one chunk */
    float *x, *xb, *q, *k, *v, *att, *h;
    int32_t *pos_ids;      /* host */
    float *pos_rows;       /* [Np][D] position rows of the current tile size, backend */
    int pos_h, pos_w;      /* tile size (in patches) pos_rows was built for */
} mp_siglip_state;

void mp_siglip_state_free(mp_siglip_state *st, mp_exec *ex);

/* Per-stage time of the last forward (seconds, wall clock, including waiting for the backend). */
typedef struct mp_siglip_timing {
    double embed, attn_proj, attention, mlp, norm;
    double flops_matmul, flops_attention; /* useful floating-point operations done */
} mp_siglip_timing;

/* Encodes n_tiles tiles of C x h x w pixels (host memory, CHW per tile, h and w multiples of the patch
 * size) into features: out (backend memory) receives n_tiles x (h/P * w/P) rows of n_embd floats.
 * timing (may be NULL) is accumulated into (the backend is waited for between stages then). */
int mp_siglip_forward(const mp_siglip *m, mp_siglip_state *st, mp_exec *ex, const float *pixels, int n_tiles, int h,
                      int w, float *out, mp_siglip_timing *timing, mp_error *err);

#ifdef __cplusplus
}
#endif
#endif
