/* fuzz_video.c — libFuzzer harness for video decoding (preprocess/video.c: FFmpeg demux + decode from a
 * file, frame sampling, seeking, rotation, damage reports). mp_video_load takes a path, so the input is
 * written to a file in tmpfs (/dev/shm) first.
 *
 * Per-input time is kept bounded by the sampling options: at most 8 frames per input, 1 fps (the last
 * byte of the input picks the policy: FPS, Qwen2-VL, SmolVLM2, every frame (capped), no seeking).
 * Seeds: make_seeds.py (fixture clips cut to their first 64 KiB + tiny generated clips). */
#include "fuzz_util.h"
#include "preprocess/video.h"

#include <math.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fz_write("fuzz.video", data, size);
    unsigned k = size ? data[size - 1] : 0;
    mp_video_opts o = mp_video_default_opts();
    o.max_frames = 8;
    switch (k & 7) {
    case 1: o.policy = MP_VIDEO_SAMPLE_QWEN2VL; o.fps = 2; break;
    case 2: o.policy = MP_VIDEO_SAMPLE_SMOLVLM2; o.fps = 1; break;
    case 3: o.fps = 0; break; /* every frame, capped */
    case 4: o.no_seek = 1; break;
    case 5: o.fps = 30; o.seek_threshold = 0.05; break;
    default: break;
    }
    o.alpha = (k & 8) ? MP_ALPHA_DROP : MP_ALPHA_WHITE;
    mp_video v;
    mp_error e;
    memset(&e, 0, sizeof e);
    if (mp_video_load(path, &o, &v, &e) != 0) {
        fz_check_error(&e, path);
        if (v.frames || v.n_frames) abort();
        return 0;
    }
    if (v.n_frames <= 0 || !v.frames || v.n_frames > o.max_frames) {
        fprintf(stderr, "fuzz_video: %d frames\n", v.n_frames);
        abort();
    }
    for (int i = 0; i < v.n_frames; i++) {
        const mp_image *im = &v.frames[i].img;
        if (im->w <= 0 || im->h <= 0 || !im->data || !isfinite(v.frames[i].pts)) abort();
        fz_touch(im->data, (size_t)im->w * im->h * 3);
    }
    if (memchr(v.warning, '\n', sizeof v.warning)) abort();
    mp_video_free(&v);
    return 0;
}
