/* imgproc.h — vision preprocessors: Pillow-exact resampling, the Idefics3/SmolVLM image processor and the
 * Qwen2-VL/Qwen2.5-VL image processor (smart resize + Conv3d patch flattening).
 *
 * Reference: HF transformers' *slow* (Pillow) image processors, Idefics3ImageProcessor and
 * Qwen2VLImageProcessor, fed with the RGB image of preprocess/image.h. The resampler is Pillow's
 * ImagingResample (libImaging/Resample.c: separable filters with support scaled by the reduction
 * factor, coefficients normalised then quantised to 22-bit fixed point, horizontal pass first,
 * 8-bit rounding and clipping between passes), so resized images are bit-identical to Pillow's and the
 * float outputs equal the Python processors' (rescale in float64 then float32, normalise in float32).
 * The fast (torchvision) processors of newer transformers resample differently; we follow Pillow.
 *
 * Outputs are float32, CHW per tile / per frame, written into caller memory so several images can be
 * packed into one batch buffer: size it with the *_plan() functions first.
 */
#ifndef MP_PREPROCESS_IMGPROC_H
#define MP_PREPROCESS_IMGPROC_H

#include <stdint.h>

#include "kernels/mp.h"
#include "preprocess/image.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- resampling */

/* Filters numbered as PIL.Image.Resampling (the "resample" value in preprocessor_config.json). */
enum {
    MP_RESAMPLE_NEAREST = 0,
    MP_RESAMPLE_LANCZOS = 1,
    MP_RESAMPLE_BILINEAR = 2,
    MP_RESAMPLE_BICUBIC = 3,
    MP_RESAMPLE_BOX = 4,
    MP_RESAMPLE_HAMMING = 5,
};

/* Resize src to w x h into a new image (dst is allocated), as PIL's Image.resize((w, h), filter) on an RGB
 * image. Same size: a copy. */
int mp_image_resize(const mp_image *src, int w, int h, int filter, mp_image *dst, mp_error *err);

/* ---------------------------------------------------------------- pixel values */

/* rescale + normalize as HF processors do: x = float32(v * rescale_factor) (float64 product), then
 * (x - mean[c]) / std[c] in float32. */
typedef struct mp_pixel_norm {
    int resample; /* PIL filter number used by the processor's resizes */
    int do_rescale;
    double rescale_factor;
    int do_normalize;
    float mean[3], std[3];
} mp_pixel_norm;

/* ---------------------------------------------------------------- Idefics3 / SmolVLM */

typedef struct mp_idefics3_params {
    int do_resize;
    int longest_edge;     /* size.longest_edge: the longest side is resized to this (up or down) */
    int do_split;         /* do_image_splitting */
    int tile;             /* max_image_size.longest_edge: tile side and global image side */
    mp_pixel_norm norm;   /* resample 1 = LANCZOS, 1/255, mean = std = 0.5 for SmolVLM */
} mp_idefics3_params;

/* SmolVLM-256M-Instruct's preprocessor_config.json: longest_edge 2048, tiles 512, LANCZOS, mean=std=0.5 */
mp_idefics3_params mp_idefics3_default_params(void);
/* Reads an Idefics3/SmolVLM preprocessor_config.json (missing keys keep the transformers defaults). */
int mp_idefics3_params_load(const char *path, mp_idefics3_params *p, mp_error *err);

typedef struct mp_idefics3_plan {
    int resized_w, resized_h; /* after the longest-edge resize */
    int grid_w, grid_h;       /* after rounding up to multiples of the tile (splitting only) */
    int rows, cols;           /* tile grid for the prompt (0, 0 when the image was not split) */
    int n_tiles;              /* rows*cols local tiles + 1 global image (1 when not split) */
    int tile_w, tile_h;       /* size of every output image */
} mp_idefics3_plan;

/* Sizes for an input of w x h pixels (no pixels touched). */
int mp_idefics3_plan_for(int w, int h, const mp_idefics3_params *p, mp_idefics3_plan *plan, mp_error *err);
/* Runs the processor. dst receives n_tiles images of 3 x tile_h x tile_w floats, the tiles in row-major
 * order then the global image last (HF order). plan (may be NULL) receives the sizes. */
int mp_idefics3_preprocess(const mp_image *img, const mp_idefics3_params *p, float *dst, mp_idefics3_plan *plan,
                           mp_error *err);

/* ---------------------------------------------------------------- Qwen2-VL / Qwen2.5-VL */

typedef struct mp_qwen2vl_params {
    int64_t min_pixels, max_pixels;
    int patch_size, temporal_patch_size, merge_size;
    mp_pixel_norm norm; /* resample 3 = BICUBIC, 1/255, OpenAI CLIP mean/std */
} mp_qwen2vl_params;

/* Qwen2-VL-2B-Instruct's preprocessor_config.json (min 3136, max 12845056 pixels, 14/2/2, CLIP mean/std). */
mp_qwen2vl_params mp_qwen2vl_default_params(void);
int mp_qwen2vl_params_load(const char *path, mp_qwen2vl_params *p, mp_error *err);

/* Qwen2-VL smart_resize: both sides multiples of factor, pixel count within [min_pixels, max_pixels],
 * aspect kept as closely as possible (Python's round-half-even included). */
int mp_qwen2vl_smart_resize(int h, int w, int factor, int64_t min_pixels, int64_t max_pixels, int *out_h,
                            int *out_w, mp_error *err);

typedef struct mp_qwen2vl_plan {
    int resized_w, resized_h;
    int grid_t, grid_h, grid_w; /* grid_thw */
    int64_t n_patches;          /* grid_t * grid_h * grid_w rows ... */
    int patch_dim;              /* ... of 3 * temporal_patch_size * patch_size^2 floats */
} mp_qwen2vl_plan;

int mp_qwen2vl_plan_for(int w, int h, int n_frames, const mp_qwen2vl_params *p, mp_qwen2vl_plan *plan,
                        mp_error *err);
/* One image (n_frames = 1: repeated temporal_patch_size times) or the frames of a video (all the size
 * of frames[0]; an incomplete last temporal group repeats the last frame). dst receives n_patches rows
 * of patch_dim floats in Qwen2VLImageProcessor's order: rows (t, h/m, w/m, m_h, m_w), each row
 * (channel, temporal, y, x). */
int mp_qwen2vl_preprocess(const mp_image *frames, int n_frames, const mp_qwen2vl_params *p, float *dst,
                          mp_qwen2vl_plan *plan, mp_error *err);

#ifdef __cplusplus
}
#endif
#endif
