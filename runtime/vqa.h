/* vqa.h — question answering over a video or an image with Qwen2-VL / Qwen2.5-VL, or SmolVLM2 (below): the text model
 * (llm/llama.h with M-RoPE), its tokenizer and chat template, the vision tower + merger
 * (encoders/qwen2vl_vit.h), and the glue that transformers' Qwen2VLProcessor and
 * Qwen2VLForConditionalGeneration put between them:
 *
 *   media -> frames (preprocess/video.h: FFmpeg, qwen-vl-utils' frame count rule with --fps/--max-frames;
 *            an image file is one frame) -> patches (preprocess/imgproc.h smart resize; videos under a
 *            per-frame pixel budget) -> vision tower -> merged rows [N][n_embd]
 *   prompt: the chat template renders the user turn [{"type": "video"}, {"type": "text", "text": Q}]
 *           with <|vision_start|><|video_pad|><|vision_end|> (image: <|image_pad|>); the one pad token
 *           becomes N = t*h*w/m^2 pad tokens (the processor's expansion) whose embedding rows are the
 *           merged rows, in order (masked_scatter)
 *   positions: get_rope_index — 3 streams (t, h, w); text tokens count on in all three from max + 1;
 *           a vision block of grid (t, h/m, w/m) starting after position s gets (s + t', s + y, s + x),
 *           t' = t (Qwen2-VL) or int(float32(t * second_per_grid) * tokens_per_second) (Qwen2.5-VL);
 *           generated tokens continue at max + 1 in every stream
 *
 * SmolVLM2 (and SmolVLM: model_type smolvlm / idefics3, or an idefics3 mmproj): the same calls run
 * runtime/vlm.h + runtime/vlm_video.h instead: a video is frames sampled by SmolVLM2's rule, each frame
 * one 512-px (max_image_size) image, the prompt lists the frames with their timestamps; an image is one
 * image as `mmpipe caption` sees it (tiles + global image). Positions are plain (no M-RoPE).
 *
 * Encoded media are kept in memory by content hash (file bytes + the sampling options), so several
 * questions about the same file encode it once.
 */
#ifndef MP_VQA_H
#define MP_VQA_H

#include "encoders/qwen2vl_vit.h"
#include "llm/llama.h"
#include "llm/sample.h"
#include "llm/tokenizer.h"
#include "runtime/engine.h"
#include "runtime/vlm_video.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- M-RoPE positions */

/* get_rope_index for one sequence: ids[n] holds each image as a run of grid.t*grid.h*grid.w/m^2
 * id_image tokens and each video as such a run of id_video tokens (images and videos each take their
 * grids in order). tokens_per_second <= 0: Qwen2-VL's plain temporal index; > 0: Qwen2.5-VL's
 * second_per_grid scaling (spg[k] for video k; images use 0). pos4 receives [n][4] (t, h, w, 0),
 * *next_pos the position of the first generated token (max + 1). */
int mp_qwen2vl_rope_index(const int32_t *ids, int n, int32_t id_image, int32_t id_video, const mp_qwen2vl_grid *img,
                          int n_img, const mp_qwen2vl_grid *vid, const double *spg, int n_vid, int merge,
                          float tokens_per_second, int32_t *pos4, int32_t *next_pos, mp_error *err);

/* ---------------------------------------------------------------- the model */

typedef struct mp_vqa_opts {
    double fps;             /* video frames per second to sample (default 2, as Qwen2-VL; SmolVLM2: the
                             * model's video_sampling.fps, see mp_vqa_model_default_opts) */
    int max_frames;         /* at most this many frames (default 32; SmolVLM2: video_sampling.max_frames) */
    int64_t video_max_pixels; /* per-frame pixel budget of a video (0: qwen-vl-utils' rule, at most the
                               * processor's max_pixels) */
} mp_vqa_opts;

mp_vqa_opts mp_vqa_default_opts(void);

enum { MP_VQA_QWEN2VL = 0, MP_VQA_SMOLVLM = 1 };

/* one media file, encoded */
typedef struct mp_vqa_media {
    uint64_t hash[2];       /* content hash (file bytes), with size and the options below as the key */
    int64_t size;
    mp_vqa_opts opts;
    char path[1024];
    int is_video;           /* 0: an image file (one frame, <|image_pad|>) */
    int n_frames;
    double *pts;            /* [n_frames] seconds: the frames used */
    int src_w, src_h;       /* displayed size */
    double duration, native_fps;
    char codec[32];
    char warning[512];      /* part of the file could not be decoded */
    mp_qwen2vl_grid grid;   /* patches */
    int resized_w, resized_h;
    double second_per_grid; /* videos: temporal_patch_size / sampling fps */
    int64_t n_rows;         /* merged rows = vision tokens */
    float *rows;            /* [n_rows][n_embd] host */
    float *patches;         /* the processor's patch rows [t*h*w][3*2*14*14], kept only with v->keep_patches */
    double t_decode, t_preprocess, t_encode; /* seconds it took */
    /* SmolVLM models: an image's tile plan (videos: one tile per frame, no split) */
    mp_idefics3_plan plan;
    int n_tiles;            /* vision tiles encoded (frames for a video) */
    int64_t total_frames;   /* frames in the stream (container count or estimate) */
    double prompt_duration; /* SmolVLM2 videos: the duration the prompt states (mp_smolvlm2_video_duration) */
} mp_vqa_media;

typedef struct mp_vqa_stats {
    int n_encoded, n_cache_hits;
    double t_decode, t_preprocess, t_encode; /* totals, seconds */
    int64_t frames_decoded, vision_tokens;
} mp_vqa_stats;

typedef struct mp_vqa {
    char path[4096];        /* resolved text model path */
    mp_llama llm;
    mp_tokenizer *tok;
    char *chat_template;    /* NULL: Qwen's layout is written directly */
    mp_qwen2vl_vit vit;
    mp_qwen2vl_vit_state vst;
    int32_t id_image, id_video, id_vstart, id_vend;
    mp_sampler_params sampling; /* defaults from generation_config.json (greedy when it does not sample) */
    struct mp_featcache *cache; /* encoded media by content (runtime/featcache.h), least recently used
                                 * evicted past cache_max_bytes */
    size_t cache_max_bytes;     /* 0 at load: MP_VQA_CACHE_BYTES; set it before the first media */
    mp_vqa_stats stats;
    int keep_patches;       /* tests: keep each media's patch rows (SmolVLM: the frames' pixel tiles) */
    int kind;               /* MP_VQA_QWEN2VL or MP_VQA_SMOLVLM */
    mp_vlm *smol;           /* MP_VQA_SMOLVLM: the model; llm and tok above are its text model and tokenizer
                             * (shared, freed through it) */
    mp_smolvlm2_video_params smol_video; /* its video_sampling defaults */
    mp_idefics3_state smol_vs;
} mp_vqa;

/* model: an HF Qwen2-VL / Qwen2.5-VL / SmolVLM2 / SmolVLM folder (or hub id), or a llama.cpp text GGUF
 * (arch qwen2vl, or llama with an idefics3 mmproj) with the vision tower in mmproj. mmproj NULL: the
 * vision tower comes from the model folder. */
int mp_vqa_load(mp_vqa *v, const char *model, const char *mmproj, mp_exec *ex, mp_error *err);
void mp_vqa_free(mp_vqa *v, mp_exec *ex);

/* The sampling defaults of the loaded model: Qwen2-VL 2 fps / 32 frames; SmolVLM2 its preprocessor
 * config's video_sampling (1 fps / 64 frames). What batch mode should use when a request names none. */
mp_vqa_opts mp_vqa_model_default_opts(const mp_vqa *v);

#define MP_VQA_CACHE_BYTES ((size_t)1 << 30)

/* The encoded media for path (video, or image as one frame), from the cache or encoded now (*cached says
 * which; may be NULL). The result belongs to v and stays valid until a later call encodes another media
 * (which may evict it). An audio-only or undecodable file is an error. */
int mp_vqa_media_get(mp_vqa *v, mp_exec *ex, const char *path, const mp_vqa_opts *o, const mp_vqa_media **out,
                     int *cached, mp_error *err);

/* ---------------------------------------------------------------- requests */

/* A ready decoder request for (media, question): prompt items (tokens with -1 at the vision rows, embd
 * [n][n_embd] holding them), M-RoPE positions and the position of the first generated token. req points
 * into the buffers; set req.max_new / req.sampling / req.user before mp_engine_submit (which copies). */
typedef struct mp_vqa_request {
    mp_gen_request req;
    int32_t *ids;           /* [n] the prompt token ids (pad tokens included) */
    int32_t *tokens;        /* [n] ids, -1 at vision rows */
    float *embd;            /* [n][n_embd] */
    int32_t *pos4;          /* [n][4] */
    int n, n_vision;
    const mp_vqa_media *media;
    int cached;             /* 1 when the media's features came from the cache */
} mp_vqa_request;

/* The prompt text of one user turn about the media (before the pad expansion). *out malloc'd. */
int mp_vqa_chat_prompt(const mp_vqa *v, int is_video, const char *question, char **out, mp_error *err);

/* Builds the request for an already encoded media. */
int mp_vqa_request_for(const mp_vqa *v, const mp_vqa_media *media, const char *question, mp_vqa_request *r,
                       mp_error *err);

/* (model, media file, question) -> request: mp_vqa_media_get + mp_vqa_request_for. This is what batch
 * mode calls per line. Sampling defaults to v->sampling, max_new to 256. */
int mp_vqa_request_build(mp_vqa *v, mp_exec *ex, const char *media, const mp_vqa_opts *o, const char *question,
                         mp_vqa_request *r, mp_error *err);
void mp_vqa_request_free(mp_vqa_request *r);

#ifdef __cplusplus
}
#endif
#endif
