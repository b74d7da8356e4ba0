/* vlm_video.h — SmolVLM2 video mode over a SmolVLM model (runtime/vlm.h), as transformers'
 * SmolVLMProcessor + SmolVLMVideoProcessor do it (models/smolvlm/{processing,video_processing}_smolvlm.py):
 *
 *   frames: sampled by preprocess/video.h's MP_VIDEO_SAMPLE_SMOLVLM2 rule (n = min(round(fps * duration),
 *           max_frames), indices int(linspace(start, end, n)), unique); fps / max_frames default to the
 *           preprocessor config's video_sampling (SmolVLM2: 1 fps, 64 frames);
 *   pixels: every frame on its own, never split into tiles: the longest edge resized to
 *           video_sampling.video_size.longest_edge (the other side int(side * ratio), made even), then
 *           squared to max_image_size, both resizes BICUBIC (the video processor's LANCZOS falls back to
 *           BICUBIC on tensors), then rescale + normalize as the image processor;
 *   prompt: the processor's own chat template for videos (DEFAULT_CHAT_TEMPLATE, "User: <video>Q"), its
 *           <video> replaced by
 *             "You are provided the following series of {num2words(N)} frames from a {H:MM:SS} [H:MM:SS] video.\n"
 *             + per frame "\nFrame from {MM:SS}:" <fake_token_around_image><global-img><image>*seq<fake_token_around_image>
 *             + "\n\n"
 *           with timestamps int(t // 60):int(t % 60) of each frame's time t and the duration int(duration)
 *           seconds; the <image> rows are the frames' connector rows in order.
 */
#ifndef MP_VLM_VIDEO_H
#define MP_VLM_VIDEO_H

#include "preprocess/video.h"
#include "runtime/vlm.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mp_smolvlm2_video_params {
    double fps;        /* video_sampling.fps (default 1) */
    int max_frames;    /* video_sampling.max_frames (default 64) */
    int longest_edge;  /* video_sampling.video_size.longest_edge (default: the tile size) */
} mp_smolvlm2_video_params;

/* From MODEL's preprocessor_config.json (an HF folder); a GGUF model gets the defaults. */
int mp_smolvlm2_video_params_load(const mp_vlm *m, mp_smolvlm2_video_params *p, mp_error *err);

/* One video frame -> dst (3 x tile x tile floats, tile = m->vis.proc.tile). longest_edge <= 0: the tile. */
int mp_smolvlm2_frame_preprocess(const mp_vlm *m, const mp_image *img, int longest_edge, float *dst, mp_error *err);

/* num2words(n) in English ("four", "twenty-one", "one hundred and one", "one thousand, two hundred"). */
int mp_num2words_en(long long n, char *buf, size_t cap);

/* The text that replaces <video>: intro, per frame its timestamp and image layout, outro. secs[i]: time of
 * frame i in seconds; duration: the video's duration in seconds. *out malloc'd. */
int mp_smolvlm2_video_text(const mp_vlm *m, int n_frames, const double *secs, double duration, char **out,
                           mp_error *err);

/* The whole prompt of one user turn [video, question], <video> expanded. *out malloc'd. */
int mp_smolvlm2_video_prompt(const mp_vlm *m, const char *question, int n_frames, const double *secs, double duration,
                             char **out, mp_error *err);

/* ---------------------------------------------------------------- a video request
 *
 * What batch mode (or any caller holding an mp_vlm) needs for one (video, question):
 *
 *   mp_smolvlm2_video_params vp;  mp_smolvlm2_video_params_load(&vlm, &vp, &err);   // once per model
 *   mp_video_opts vo = mp_smolvlm2_video_opts(&vp, fps, max_frames);                // 0: the model's
 *   mp_video vid;  mp_video_load(path, &vo, &vid, &err);
 *   float *rows = malloc(vid.n_frames * vlm.vis.image_seq_len * vlm.vis.n_embd_text * sizeof(float));
 *   mp_smolvlm2_frames_encode(&vlm, &ex, &vs, frames, vid.n_frames, vp.longest_edge, rows, NULL, &err);
 *   mp_smolvlm2_video_prompt_assemble(&vlm, question, vid.n_frames, pts, mp_smolvlm2_video_duration(&vid),
 *                                     rows, &p, &err);
 *   mp_vlm_prompt_to_request(&p, &req);  ... mp_engine_submit ...;  mp_vlm_prompt_free(&p);
 *
 * (runtime/vqa.h does exactly this, with the encoded frames cached by content hash.) */

/* The duration the prompt states: total_frames / native_fps as transformers' video loaders compute it
 * (VideoMetadata.duration), else the container's duration. */
double mp_smolvlm2_video_duration(const mp_video *v);

/* The decoder's sampling options for SmolVLM2: fps / max_frames <= 0 take vp's (the model's). */
mp_video_opts mp_smolvlm2_video_opts(const mp_smolvlm2_video_params *vp, double fps, int max_frames);

/* Frames -> connector rows: each frame through mp_smolvlm2_frame_preprocess, then the vision tower in
 * batches (vs: a state to reuse, or NULL). rows: n * image_seq_len * n_embd_text floats; pixels (may be
 * NULL): receives the n x 3 x tile x tile pixel values. */
int mp_smolvlm2_frames_encode(const mp_vlm *m, mp_exec *ex, mp_idefics3_state *vs, const mp_image *const *frames, int n,
                              int longest_edge, float *rows, float *pixels, mp_error *err);

/* The decoder prompt for a question over encoded frames (rows as mp_smolvlm2_frames_encode wrote them):
 * mp_smolvlm2_video_prompt, tokenized, the <image> rows filled in order. */
int mp_smolvlm2_video_prompt_assemble(const mp_vlm *m, const char *question, int n_frames, const double *secs,
                                      double duration, const float *rows, mp_vlm_prompt *out, mp_error *err);

#ifdef __cplusplus
}
#endif
#endif
