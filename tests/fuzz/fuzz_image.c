/* fuzz_image.c — libFuzzer harness for image decoding (preprocess/image.c: libjpeg-turbo + the EXIF
 * parser, libpng, FFmpeg for the rest) and the vision preprocessors run on whatever decodes
 * (preprocess/imgproc.c: Idefics3/SmolVLM tiles, Qwen2-VL patches).
 *
 * The last byte of the input picks the load options (strict, alpha drop, ignore orientation), so one
 * corpus covers them all. Images are capped at 2^22 pixels here (the limit check itself is exercised;
 * decoding 2^28-pixel images would only make the fuzzer slow). Seeds: make_seeds.py (fixture images). */
#include "fuzz_util.h"
#include "preprocess/image.h"
#include "preprocess/imgproc.h"

static void check_image(const mp_image *im) {
    if (im->w <= 0 || im->h <= 0 || !im->data || !im->format[0] || im->orientation < 0 || im->orientation > 8) {
        fprintf(stderr, "fuzz_image: bad image %dx%d data=%p format=\"%s\" orientation=%d\n", im->w, im->h,
                (void *)im->data, im->format, im->orientation);
        abort();
    }
    if (memchr(im->warning, '\n', sizeof im->warning)) abort();
    fz_touch(im->data, (size_t)im->w * im->h * 3);
}

static void run_preprocessors(const mp_image *im) {
    mp_error e;
    /* Idefics3 with small sizes (same code paths as SmolVLM's 2048/512, a fraction of the work) */
    mp_idefics3_params ip = mp_idefics3_default_params();
    ip.longest_edge = 96;
    ip.tile = 32;
    for (int split = 0; split < 2; split++) {
        ip.do_split = split;
        mp_idefics3_plan pl;
        if (mp_idefics3_plan_for(im->w, im->h, &ip, &pl, &e) != 0) {
            fz_check_error(&e, NULL);
            continue;
        }
        size_t n = (size_t)pl.n_tiles * 3 * pl.tile_w * pl.tile_h;
        float *dst = malloc(n * sizeof(float));
        mp_idefics3_plan pl2;
        if (dst && mp_idefics3_preprocess(im, &ip, dst, &pl2, &e) == 0) {
            if (memcmp(&pl, &pl2, sizeof pl)) abort();
            fz_touch(dst, n * sizeof(float));
        }
        free(dst);
    }
    /* Qwen2-VL: one image (repeated temporal_patch_size times) */
    mp_qwen2vl_params qp = mp_qwen2vl_default_params();
    qp.min_pixels = 28 * 28;
    qp.max_pixels = 28 * 28 * 16;
    mp_qwen2vl_plan ql;
    if (mp_qwen2vl_plan_for(im->w, im->h, 1, &qp, &ql, &e) != 0) {
        fz_check_error(&e, NULL);
        return;
    }
    size_t n = (size_t)ql.n_patches * ql.patch_dim;
    float *dst = malloc(n * sizeof(float));
    if (dst && mp_qwen2vl_preprocess(im, 1, &qp, dst, NULL, &e) == 0) fz_touch(dst, n * sizeof(float));
    free(dst);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* the EXIF parser on the raw bytes (it is also reached through JPEG APP1 / PNG eXIf) */
    int o = mp_exif_orientation(data, size);
    if (o < 0 || o > 8) abort();

    mp_image_load_opts opts = mp_image_load_default_opts();
    unsigned flags = size ? data[size - 1] : 0;
    opts.strict = flags & 1;
    opts.alpha = flags & 2 ? MP_ALPHA_DROP : MP_ALPHA_WHITE;
    opts.ignore_orientation = (flags >> 2) & 1;
    opts.max_pixels = (int64_t)1 << 22;
    mp_image im;
    mp_error e;
    memset(&e, 0, sizeof e);
    if (mp_image_load_mem(data, size, "fuzz.img", &opts, &im, &e) != 0) {
        fz_check_error(&e, "fuzz.img");
        if (im.data || im.w || im.h) abort(); /* a failed load leaves the image empty */
        return 0;
    }
    check_image(&im);
    if (im.w <= 4096 && im.h <= 4096) run_preprocessors(&im);
    mp_image_free(&im);
    return 0;
}
