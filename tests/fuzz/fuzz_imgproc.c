/* fuzz_imgproc.c — libFuzzer harness for the vision preprocessors' configuration and size arithmetic
 * (preprocess/imgproc.c): a preprocessor_config.json from the input, read by both the Idefics3 and
 * the Qwen2-VL loaders, then planned for an image size taken from the input; when the plan is small,
 * the processor runs on a generated image of that size (and resizes with every filter).
 *
 * Input: 6 bytes (width u16 LE, height u16 LE, frames u8, resize filter u8), then the JSON text.
 * Seeds: make_seeds.py (the fixtures' preprocessor_config.json files with a few sizes). */
#include "fuzz_util.h"
#include "preprocess/imgproc.h"

static void fill(mp_image *im, unsigned seed) {
    for (size_t i = 0; i < (size_t)im->w * im->h * 3; i++) im->data[i] = (uint8_t)(i * 7 + seed * 13 + (i >> 5));
}

static void idefics3(const mp_idefics3_params *p, int w, int h) {
    mp_error e;
    mp_idefics3_plan pl;
    if (mp_idefics3_plan_for(w, h, p, &pl, &e) != 0) {
        fz_check_error(&e, NULL);
        return;
    }
    if (pl.n_tiles < 1 || pl.tile_w < 1 || pl.tile_h < 1 || pl.resized_w < 1 || pl.resized_h < 1) abort();
    if (pl.rows < 0 || pl.cols < 0 || pl.n_tiles != pl.rows * pl.cols + 1) abort();
    int64_t floats = (int64_t)pl.n_tiles * 3 * pl.tile_w * pl.tile_h;
    int64_t work = (int64_t)pl.grid_w * pl.grid_h + (int64_t)pl.resized_w * pl.resized_h + (int64_t)w * h;
    if (floats > ((int64_t)1 << 21) || work > ((int64_t)1 << 22)) return;
    mp_image im;
    if (mp_image_alloc(&im, w, h, &e) != 0) return;
    fill(&im, (unsigned)w);
    float *dst = malloc((size_t)floats * sizeof(float));
    if (dst && mp_idefics3_preprocess(&im, p, dst, NULL, &e) == 0) fz_touch(dst, (size_t)floats * sizeof(float));
    free(dst);
    mp_image_free(&im);
}

static void qwen2vl(const mp_qwen2vl_params *p, int w, int h, int frames) {
    mp_error e;
    mp_qwen2vl_plan pl;
    if (mp_qwen2vl_plan_for(w, h, frames, p, &pl, &e) != 0) {
        fz_check_error(&e, NULL);
        return;
    }
    if (pl.grid_t < 1 || pl.grid_h < 1 || pl.grid_w < 1 || pl.patch_dim < 1 || pl.resized_w < 1 || pl.resized_h < 1)
        abort();
    if (pl.n_patches != (int64_t)pl.grid_t * pl.grid_h * pl.grid_w) abort();
    int64_t floats = pl.n_patches * pl.patch_dim;
    int64_t work = (int64_t)pl.resized_w * pl.resized_h * frames + (int64_t)w * h * frames;
    if (floats > ((int64_t)1 << 21) || work > ((int64_t)1 << 22)) return;
    mp_image *fr = calloc((size_t)frames, sizeof *fr);
    int ok = fr != NULL;
    for (int i = 0; ok && i < frames; i++) {
        ok = mp_image_alloc(&fr[i], w, h, &e) == 0;
        if (ok) fill(&fr[i], (unsigned)i);
    }
    float *dst = ok ? malloc((size_t)floats * sizeof(float)) : NULL;
    if (dst && mp_qwen2vl_preprocess(fr, frames, p, dst, NULL, &e) == 0) fz_touch(dst, (size_t)floats * sizeof(float));
    free(dst);
    for (int i = 0; fr && i < frames; i++) mp_image_free(&fr[i]);
    free(fr);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 6) return 0;
    int w = data[0] | data[1] << 8, h = data[2] | data[3] << 8, frames = data[4] % 9, filter = data[5] % 7;
    const char *path = fz_write("preprocessor_config.json", data + 6, size - 6);
    mp_error e;
    mp_idefics3_params ip;
    if (mp_idefics3_params_load(path, &ip, &e) == 0) idefics3(&ip, w, h);
    else fz_check_error(&e, "preprocessor_config.json");
    mp_qwen2vl_params qp;
    if (mp_qwen2vl_params_load(path, &qp, &e) == 0) qwen2vl(&qp, w, h, frames);
    else fz_check_error(&e, "preprocessor_config.json");
    int rh, rw;
    if (mp_qwen2vl_smart_resize(h, w, 1 + data[4], 0, (int64_t)w * h, &rh, &rw, &e) == 0 && (rh < 1 || rw < 1)) abort();

    /* every filter (and unknown ones) on a small image to a size from the input */
    int sw = 1 + data[0] % 64, sh = 1 + data[1] % 64, tw = 1 + data[2] % 96, th = 1 + data[3] % 96;
    mp_image src, dst;
    if (mp_image_alloc(&src, sw, sh, &e) == 0) {
        fill(&src, 3);
        if (mp_image_resize(&src, tw, th, filter, &dst, &e) == 0) {
            if (dst.w != tw || dst.h != th) abort();
            fz_touch(dst.data, (size_t)tw * th * 3);
            mp_image_free(&dst);
        }
        mp_image_free(&src);
    }
    return 0;
}
