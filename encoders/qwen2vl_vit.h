/* qwen2vl_vit.h — the Qwen2-VL and Qwen2.5-VL vision transformers (transformers'
 * Qwen2VisionTransformerPretrainedModel and Qwen2_5_VisionTransformerPretrainedModel), merger included.
 *
 * Input: the rows of preprocess/imgproc.h's mp_qwen2vl_preprocess, one per patch of
 * C x temporal_patch (2) x P x P values (P = 14), and each image's / video's grid_thw (t, h, w patches).
 *
 *   x = Conv3d(kernel = stride = (2, P, P), no bias)(patch)   one dot product per patch row: a matmul
 *   rotary positions: patch (row y, column x) of its frame gets the 2-D RoPE of ggml's vision mode:
 *       pairs [0, hd/4) turn with y, pairs [hd/4, hd/2) with x, both at 10000^(-4i/hd) (hd = head size)
 *   Qwen2.5-VL: the rows are put in window order (windows of window_size / P / m merged blocks a side,
 *       get_window_index) and the positions with them
 *   for each block:
 *       x = x + proj(attention(rope(q), rope(k), v of norm1(x)))    non-causal, inside one segment
 *       x = x + mlp(norm2(x))
 *     Qwen2-VL:   norm = LayerNorm (eps 1e-6), mlp = fc2(quick_gelu(fc1(.)))
 *     Qwen2.5-VL: norm = RMSNorm (eps 1e-6), mlp = down(silu(gate(.)) * up(.)) with biases
 *     segments: one temporal slice of one image/video (cu_seqlens); Qwen2.5-VL's blocks that are not in
 *     fullatt_block_indexes use the windows instead (cu_window_seqlens)
 *   y = merger(x) (projector/qwen2vl_merger.h), then Qwen2.5-VL restores the original order
 *
 * Attention never crosses a temporal slice, so the tower runs on "units" (one temporal slice of h x w
 * patches) in batches: all rows of a batch go through each linear as one matmul, attention runs per
 * segment; results do not depend on which units share a batch.
 */
#ifndef MP_QWEN2VL_VIT_H
#define MP_QWEN2VL_VIT_H

#include "kernels/mp.h"
#include "kernels/ops.h"
#include "preprocess/imgproc.h"
#include "projector/qwen2vl_merger.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { MP_QWEN2VL_V2 = 2, MP_QWEN2VL_V25 = 25 }; /* Qwen2-VL, Qwen2.5-VL */
#define MP_QWEN2VL_MAX_LAYERS 256

typedef struct mp_qwen2vl_vit_config {
    int variant;            /* MP_QWEN2VL_V2 or MP_QWEN2VL_V25 */
    int dim, n_ff, n_layer, n_head;
    int patch_size, temporal_patch_size, in_chans, merge_size;
    int out_dim;            /* merger output: the language model's hidden size */
    float eps;              /* norm epsilon (1e-6) */
    mp_gelu_kind act;       /* Qwen2-VL fc1 activation (quick_gelu); Qwen2.5-VL uses SiLU-gated units */
    int window_size;        /* Qwen2.5-VL: window side in pixels (112) */
    unsigned char full_attn[MP_QWEN2VL_MAX_LAYERS]; /* Qwen2.5-VL: 1 for the fullatt_block_indexes */
    float tokens_per_second; /* Qwen2.5-VL: temporal M-RoPE scale of the decoder (2) */
} mp_qwen2vl_vit_config;

/* Checks the sizes (head size a multiple of 4, window a multiple of P*m, ...) and fills defaults. */
int mp_qwen2vl_vit_config_check(mp_qwen2vl_vit_config *c, const char *what, mp_error *err);

typedef struct mp_qwen2vl_linear {
    mp_tensor w;            /* ne = {in, out}, any dtype */
    const float *b;         /* [out] F32 in backend memory, or NULL */
} mp_qwen2vl_linear;

typedef struct mp_qwen2vl_vit_layer {
    const float *norm1_w, *norm1_b, *norm2_w, *norm2_b; /* [D]; the biases NULL for RMSNorm */
    mp_qwen2vl_linear q, k, v; /* D -> D each (views of the rows of HF's fused qkv, or GGUF's attn_q/k/v) */
    mp_qwen2vl_linear proj; /* D -> D */
    mp_qwen2vl_linear fc1, fc2;          /* Qwen2-VL: D -> F -> D */
    mp_qwen2vl_linear gate, up, down;    /* Qwen2.5-VL: D -> F (x2) -> D */
} mp_qwen2vl_vit_layer;

typedef struct mp_qwen2vl_vit {
    mp_qwen2vl_vit_config cfg;
    mp_tensor patch;        /* the Conv3d weight as a matrix: ne = {C*T*P*P, D} (PyTorch [D][C][T][P][P]) */
    mp_qwen2vl_vit_layer *layers;
    mp_qwen2vl_merger merger;
    mp_qwen2vl_params proc; /* the image processor that goes with the model */
    mp_backend backend;
    void *owner;            /* file maps and converted copies (models/qwen2vl_load.c) */
    void (*owner_free)(void *owner, mp_exec *ex);
} mp_qwen2vl_vit;

/* grid_thw of one image or video, in patches */
typedef struct mp_qwen2vl_grid {
    int t, h, w;
} mp_qwen2vl_grid;

/* ---------------------------------------------------------------- positions (host, exact integers) */

/* (y, x) of every patch row of one temporal slice of an h x w grid, as rot_pos_emb orders them (blocks of
 * m x m, row-major inside): pos[2*i] = y, pos[2*i+1] = x for i < h*w. */
void mp_qwen2vl_patch_pos(int h, int w, int m, int32_t *pos);

/* Qwen2.5-VL get_window_index for one temporal slice of an h x w grid (patches): idx receives the
 * (h/m)*(w/m) merged-block indices in window order, cu the cumulative patch counts of the non-empty
 * windows (cu[0] = 0, then one entry per window). Returns the number of windows. win: window side in
 * merged blocks (window_size / P / m). */
int mp_qwen2vl_window_index(int h, int w, int m, int win, int32_t *idx, int32_t *cu);

/* ---------------------------------------------------------------- forward */

typedef struct mp_qwen2vl_vit_state {
    int64_t cap_rows;       /* patch rows the buffers hold */
    float *pix, *x, *xb, *qkv, *att, *hb, *hb2, *mh, *y;  /* backend memory */
    int32_t *pos, *pos_dev; /* [rows][4] rope positions (host, backend) */
    int32_t *gidx, *gidx_dev; /* gather indices (window order in, original order out) */
    int32_t *seg_full, *seg_win; /* host: segment boundaries (n+1 entries each) */
    int n_seg_full, n_seg_win;
    int32_t *tmp;           /* host scratch: window indices, reordered positions */
    int max_rows;           /* patch rows per batch (0: 8192; at least one temporal slice) */
} mp_qwen2vl_vit_state;

void mp_qwen2vl_vit_state_free(mp_qwen2vl_vit_state *st, mp_exec *ex);

typedef struct mp_qwen2vl_timing {
    double embed, attn, mlp, merger, total; /* seconds (the backend is waited for between stages) */
    int64_t patches, tokens;
    int batches;
} mp_qwen2vl_timing;

enum {
    MP_QWEN2VL_OUT_MERGED = 0, /* the merger output (language model embedding rows) */
    MP_QWEN2VL_OUT_EMBED = 1,  /* the patch embedding (Conv3d) rows, for tests */
    MP_QWEN2VL_OUT_BLOCKS = 2, /* the last block's output, original row order, for tests */
};

/* Number of rows (and their width) the tower gives for the grids: merged rows of out_dim floats. */
int64_t mp_qwen2vl_vit_n_tokens(const mp_qwen2vl_vit *m, const mp_qwen2vl_grid *grids, int n_items);

/* Encodes n_items images/videos: patches (host) holds sum(t*h*w) rows of C*T*P*P floats, item after item;
 * out (host) receives sum(t*h*w)/m^2 rows of out_dim floats (what = MP_QWEN2VL_OUT_MERGED), or the
 * sum(t*h*w) rows of D floats of a test stage. timing (may be NULL) is accumulated into. */
int mp_qwen2vl_vit_encode(const mp_qwen2vl_vit *m, mp_qwen2vl_vit_state *st, mp_exec *ex, const float *patches,
                          const mp_qwen2vl_grid *grids, int n_items, int what, float *out, mp_qwen2vl_timing *timing,
                          mp_error *err);

/* ---------------------------------------------------------------- loading (models/qwen2vl_load.c) */

/* path: an HF Qwen2-VL / Qwen2.5-VL folder (config.json with vision_config, visual.* tensors) or a
 * llama.cpp mmproj GGUF (clip.projector_type qwen2vl_merger / qwen2.5vl_merger). The image processor
 * comes from preprocessor_config.json (HF) or the clip.vision.* keys (GGUF). */
int mp_qwen2vl_vit_load(mp_qwen2vl_vit *m, const char *path, mp_exec *ex, mp_error *err);
void mp_qwen2vl_vit_free(mp_qwen2vl_vit *m, mp_exec *ex);

#ifdef __cplusplus
}
#endif
#endif
