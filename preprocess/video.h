/* video.h — decode a video in-process with FFmpeg (libavformat/libavcodec/libswscale) and sample frames.
 *
 * Every container/codec the system FFmpeg decodes works. Frames come out as 8-bit RGB (colour matrix and
 * range of the stream honoured), with the stream's display matrix applied the way the ffmpeg CLI's
 * autorotate does (90/180/270 degrees and flips), each with its presentation time in seconds from the
 * start of the stream.
 *
 * Sampling. Target times are chosen first, then for each target the decoded frame whose timestamp is
 * nearest (ties: the earlier frame); a frame picked by two targets is returned once. Because targets
 * are times, variable-frame-rate streams are sampled correctly and every frame keeps its true pts.
 *  - MP_VIDEO_SAMPLE_FPS (default): targets at k/fps for k = 0, 1, ... while < duration; when that is
 *    more than max_frames, max_frames targets spread uniformly from the first to the last frame (the
 *    linspace(0, n_frames-1, N) that Qwen2-VL and SmolVLM2 use). fps <= 0: every frame (up to the cap).
 *  - MP_VIDEO_SAMPLE_QWEN2VL: qwen-vl-utils' smart_nframes: n = n_frames/native_fps*fps clamped to
 *    [min_frames (4), min(max_frames (768), n_frames)], floored to an even number, frame indices
 *    round(linspace(0, n_frames-1, n)) (round half to even, as torch).
 *  - MP_VIDEO_SAMPLE_SMOLVLM2: transformers' smolvlm_sample_indices_fn: n = min(round(fps*duration),
 *    max_frames) (>= 1), indices int(linspace(start, end, n)), duplicates removed; start/end skip
 *    skip_secs at both ends when duration - 2*skip_secs > max_frames*fps (load_smolvlm_video: 1 s).
 *   (Index policies map index i to time i/native_fps; n_frames is the container's count, or
 *   duration*native_fps rounded when the container has none.)
 * Seeking: when the next target is more than `seek_threshold` seconds ahead of the decoder, the demuxer
 * seeks to the key frame before it instead of decoding everything in between (the same frames come
 * out: tests compare against no_seek). Containers that cannot seek fall back to decoding through.
 *
 * Damaged files: decoding goes on past bad packets; frames that could be decoded are returned and
 * v->warning says which time range was lost (truncated file, corrupt data). Nothing decodable: error.
 * An image file (JPEG, PNG, ... through preprocess/image.c, EXIF applied) is a one-frame video at pts 0.
 * An audio-only file is an error saying so.
 */
#ifndef MP_PREPROCESS_VIDEO_H
#define MP_PREPROCESS_VIDEO_H

#include <stdint.h>

#include "kernels/mp.h"
#include "preprocess/image.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { MP_VIDEO_SAMPLE_FPS = 0, MP_VIDEO_SAMPLE_QWEN2VL = 1, MP_VIDEO_SAMPLE_SMOLVLM2 = 2 };

typedef struct mp_video_opts {
    int policy;            /* MP_VIDEO_SAMPLE_* */
    double fps;            /* sampling rate (frames per second of video time) */
    int max_frames;        /* cap (0: none for FPS; 768 for QWEN2VL; 64 for SMOLVLM2) */
    int min_frames;        /* QWEN2VL only (0: 4) */
    double skip_secs;      /* SMOLVLM2 only: seconds skipped at both ends of long videos (default 1.0) */
    double seek_threshold; /* seconds; <= 0: default 1.0 */
    int no_seek;           /* decode every packet (for tests / broken indexes) */
    int alpha;             /* MP_ALPHA_WHITE or MP_ALPHA_DROP for formats with alpha */
    int threads;           /* decoder threads (0: 1 — the result never depends on it) */
} mp_video_opts;

mp_video_opts mp_video_default_opts(void); /* FPS policy, 1 fps, no cap */

typedef struct mp_video_frame {
    mp_image img; /* RGB, rotation applied */
    double pts;   /* seconds from the stream start */
} mp_video_frame;

typedef struct mp_video {
    int n_frames;
    mp_video_frame *frames;
    int width, height;        /* displayed size (rotation applied) */
    double duration;          /* seconds, from the container (or the decoded frames when it has none) */
    double native_fps;        /* average frame rate of the stream */
    int64_t total_frames;     /* frames in the stream (container count or estimate) */
    int orientation;          /* EXIF-style orientation code applied (1 = none, 6 = rotated 90 cw, ...) */
    char codec[32];           /* decoder name ("h264", "vp9", ...; "jpeg"/"png" for images) */
    char container[64];       /* demuxer name */
    char warning[512];        /* non-empty when part of the file could not be decoded */
    double lost_from, lost_to; /* the time range lost when warning is set */
    int n_seeks;              /* stats: seeks done, packets decoded */
    int64_t n_decoded;
} mp_video;

int mp_video_load(const char *path, const mp_video_opts *opts, mp_video *v, mp_error *err);
void mp_video_free(mp_video *v);

/* The sampling plan alone: target times (seconds, ascending) for a stream of the given duration,
 * native fps and frame count. Returns the number of targets written (at most cap), -1 on error. */
int mp_video_sample_times(const mp_video_opts *opts, double duration, double native_fps, int64_t total_frames,
                          double *times, int cap, mp_error *err);

#ifdef __cplusplus
}
#endif
#endif
