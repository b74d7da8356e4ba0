/* vqa.c — Qwen2-VL / Qwen2.5-VL question answering over video and images (see vqa.h). */
#include "runtime/vqa.h"
#include "runtime/featcache.h"

#include "llm/jinja.h"
#include "models/gguf.h"
#include "models/hfjson.h"
#include "models/hub.h"
#include "models/mmap.h"
#include "preprocess/imgproc.h"
#include "preprocess/video.h"
#include "runtime/textmodel.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---------------------------------------------------------------- M-RoPE positions */

int mp_qwen2vl_rope_index(const int32_t *ids, int n, int32_t id_image, int32_t id_video, const mp_qwen2vl_grid *img,
                          int n_img, const mp_qwen2vl_grid *vid, const double *spg, int n_vid, int merge,
                          float tokens_per_second, int32_t *pos4, int32_t *next_pos, mp_error *err) {
    if (merge <= 0) return mp_errf(err, "rope index: bad merge size %d", merge);
    int64_t next = 0; /* max position so far + 1 */
    int ki = 0, kv = 0;
    int i = 0;
    while (i < n) {
        const int32_t id = ids[i];
        if (id != id_image && id != id_video) { /* text */
            pos4[(int64_t)i * 4 + 0] = pos4[(int64_t)i * 4 + 1] = pos4[(int64_t)i * 4 + 2] = (int32_t)next;
            pos4[(int64_t)i * 4 + 3] = 0;
            next++;
            i++;
            continue;
        }
        const int is_vid = id == id_video;
        if (is_vid ? kv >= n_vid : ki >= n_img)
            return mp_errf(err, "rope index: more %s blocks in the prompt than the %d given", is_vid ? "video" : "image",
                           is_vid ? n_vid : n_img);
        const mp_qwen2vl_grid g = is_vid ? vid[kv] : img[ki];
        const double sec = is_vid && spg ? spg[kv] : 0.0;
        if (is_vid) kv++;
        else ki++;
        if (g.t <= 0 || g.h <= 0 || g.w <= 0 || g.h % merge || g.w % merge)
            return mp_errf(err, "rope index: bad grid %dx%dx%d", g.t, g.h, g.w);
        const int64_t gh = g.h / merge, gw = g.w / merge, cnt = (int64_t)g.t * gh * gw;
        if (cnt > n - i) return mp_errf(err, "rope index: the prompt ends inside a vision block of %lld tokens", (long long)cnt);
        for (int64_t j = 0; j < cnt; j++)
            if (ids[i + j] != id)
                return mp_errf(err, "rope index: vision block at token %d has %lld tokens, its grid needs %lld", i,
                               (long long)j, (long long)cnt);
        const int64_t base = next;
        int64_t mx = base;
        for (int64_t t = 0; t < g.t; t++) {
            int64_t tt = t;
            if (tokens_per_second > 0) { /* float32 tensor arithmetic, then .long() (truncation) */
                float a = (float)t * (float)sec;
                a = a * tokens_per_second;
                tt = (int64_t)a;
            }
            for (int64_t y = 0; y < gh; y++)
                for (int64_t x = 0; x < gw; x++) {
                    int32_t *p = pos4 + ((int64_t)i + (t * gh + y) * gw + x) * 4;
                    p[0] = (int32_t)(base + tt), p[1] = (int32_t)(base + y), p[2] = (int32_t)(base + x), p[3] = 0;
                    if (base + tt > mx) mx = base + tt;
                    if (base + y > mx) mx = base + y;
                    if (base + x > mx) mx = base + x;
                }
        }
        next = mx + 1;
        i += (int)cnt;
        if (next > INT32_MAX / 2) return mp_errf(err, "rope index: positions overflow");
    }
    if (ki != n_img || kv != n_vid)
        return mp_errf(err, "rope index: the prompt has %d image and %d video blocks for %d and %d given", ki, kv, n_img,
                       n_vid);
    *next_pos = (int32_t)next;
    return 0;
}

/* ---------------------------------------------------------------- loading */

mp_vqa_opts mp_vqa_default_opts(void) {
    mp_vqa_opts o = {2.0, 32, 0};
    return o;
}

static int special_id(const mp_vqa *v, const char *piece, int32_t *id, mp_error *err) {
    *id = mp_tokenizer_find(v->tok, piece);
    if (*id < 0) return mp_errf(err, "%s: the tokenizer has no %s token (not a Qwen2-VL model?)", v->path, piece);
    return 0;
}

/* 1 when (path, mmproj) is a SmolVLM / SmolVLM2 (Idefics3) model: config.json model_type smolvlm or
 * idefics3, or an mmproj whose projector type is idefics3 */
static int is_smolvlm(const char *path, const char *mmproj) {
    const char *p = mmproj ? mmproj : path;
    mp_error e;
    int yes = 0;
    if (mp_is_dir(p)) {
        char cp[4200];
        snprintf(cp, sizeof cp, "%s/config.json", p);
        mp_json j;
        const char *mt = NULL;
        if (mp_json_load_optional(&j, cp, &e) < 0) return 0;
        if (mp_json_str_or(&j, "model_type", "", &mt, &e) == 0)
            yes = !strcmp(mt, "smolvlm") || !strcmp(mt, "idefics3");
        mp_json_free(&j);
        return yes;
    }
    if (!mmproj) return 0;
    mp_gguf *g = NULL;
    if (mp_gguf_open(&g, p, &e) < 0) return 0;
    const char *pt = NULL;
    if (mp_gguf_get_str_or(g, "clip.projector_type", NULL, &pt, &e) == 0 && !pt)
        mp_gguf_get_str_or(g, "clip.vision.projector_type", NULL, &pt, &e);
    yes = pt && !strcmp(pt, "idefics3");
    mp_gguf_free(g);
    return yes;
}

static int load_smolvlm(mp_vqa *v, const char *model, const char *mmproj, mp_exec *ex, mp_error *err) {
    v->kind = MP_VQA_SMOLVLM;
    v->smol = calloc(1, sizeof *v->smol);
    if (!v->smol) return mp_errf(err, "%s: out of memory", model);
    if (mp_vlm_load(v->smol, model, mmproj, ex, err) < 0) {
        free(v->smol);
        v->smol = NULL;
        return -1;
    }
    /* the text model and tokenizer are the SmolVLM's: callers use v->llm / v->tok for the engine */
    snprintf(v->path, sizeof v->path, "%s", v->smol->path);
    v->llm = v->smol->llm;
    v->tok = v->smol->tok;
    v->sampling = v->smol->sampling;
    v->id_image = v->smol->id_image;
    v->id_video = v->id_vstart = v->id_vend = -1;
    if (mp_smolvlm2_video_params_load(v->smol, &v->smol_video, err) < 0) {
        mp_vqa_free(v, ex);
        return -1;
    }
    return 0;
}

mp_vqa_opts mp_vqa_model_default_opts(const mp_vqa *v) {
    mp_vqa_opts o = mp_vqa_default_opts();
    if (v && v->kind == MP_VQA_SMOLVLM) {
        o.fps = v->smol_video.fps;
        o.max_frames = v->smol_video.max_frames;
    }
    return o;
}

int mp_vqa_load(mp_vqa *v, const char *model, const char *mmproj, mp_exec *ex, mp_error *err) {
    memset(v, 0, sizeof *v);
    if (mp_model_resolve(model, NULL, v->path, sizeof v->path, err) < 0) return -1;
    if (is_smolvlm(v->path, mmproj)) return load_smolvlm(v, v->path, mmproj, ex, err);
    const int dir = mp_is_dir(v->path);
    if (!mmproj && !dir)
        return mp_errf(err, "%s: a text model file has no vision tower; give it with --mmproj FILE", v->path);
    if (mp_llama_load(&v->llm, v->path, ex, err) < 0) return -1;
    if (!mp_llama_mrope(&v->llm.cfg)) {
        mp_errf(err, "%s: not a Qwen2-VL / Qwen2.5-VL text model (no M-RoPE sections)", v->path);
        goto fail;
    }
    if (mp_textmodel_load_tokenizer(&v->tok, v->path, NULL, v->llm.cfg.n_vocab, err) < 0) goto fail;
    v->sampling = mp_sampler_default_params();
    v->sampling.temperature = 0.0f;
    mp_sampling_given none = {0, 0, 0, 0, 0};
    if (mp_textmodel_generation_defaults(v->path, &none, &v->sampling, err) < 0) goto fail;
    mp_error terr;
    if (dir) {
        if (mp_chat_template_load_hf(v->path, &v->chat_template, &terr) < 0) v->chat_template = NULL;
    } else {
        mp_gguf *g = NULL;
        if (mp_gguf_open(&g, v->path, err) < 0) goto fail;
        if (mp_chat_template_from_gguf(g, &v->chat_template, &terr) < 0) v->chat_template = NULL;
        mp_gguf_free(g);
    }
    if (special_id(v, "<|image_pad|>", &v->id_image, err) < 0 || special_id(v, "<|video_pad|>", &v->id_video, err) < 0 ||
        special_id(v, "<|vision_start|>", &v->id_vstart, err) < 0 || special_id(v, "<|vision_end|>", &v->id_vend, err) < 0)
        goto fail;
    if (mp_qwen2vl_vit_load(&v->vit, mmproj ? mmproj : v->path, ex, err) < 0) goto fail;
    if (v->vit.cfg.out_dim != v->llm.cfg.n_embd) {
        mp_errf(err, "%s: the vision tower projects to %d values, the text model is %d wide", mmproj ? mmproj : v->path,
                v->vit.cfg.out_dim, v->llm.cfg.n_embd);
        goto fail;
    }
    return 0;
fail:
    mp_vqa_free(v, ex);
    return -1;
}

static void media_free(mp_vqa_media *m) {
    if (!m) return;
    free(m->pts);
    free(m->rows);
    free(m->patches);
    free(m);
}

void mp_vqa_free(mp_vqa *v, mp_exec *ex) {
    mp_featcache_free(v->cache);
    if (v->smol) { /* llm and tok belong to it */
        mp_idefics3_state_free(&v->smol_vs, ex);
        mp_vlm_free(v->smol, ex);
        free(v->smol);
        memset(v, 0, sizeof *v);
        return;
    }
    mp_qwen2vl_vit_state_free(&v->vst, ex);
    mp_qwen2vl_vit_free(&v->vit, ex);
    if (v->tok) mp_tokenizer_free(v->tok);
    free(v->chat_template);
    mp_llama_free(&v->llm, ex);
    memset(v, 0, sizeof *v);
}

/* ---------------------------------------------------------------- media */

/* The content hash of the file bytes (runtime/featcache.h), read in 1 MiB pieces. */
static int hash_file(const char *path, uint64_t h[2], int64_t *size, mp_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return mp_errf(err, "%s: %s", path, strerror(errno));
    h[0] = h[1] = 0;
    int64_t total = 0;
    enum { CH = 1 << 20 };
    unsigned char *buf = malloc(CH);
    if (!buf) {
        fclose(f);
        return mp_errf(err, "%s: out of memory", path);
    }
    size_t r;
    while ((r = fread(buf, 1, CH, f)) > 0) {
        mp_content_hash(h, buf, r);
        total += (int64_t)r;
    }
    int bad = ferror(f);
    free(buf);
    fclose(f);
    if (bad) return mp_errf(err, "%s: read error", path);
    *size = total;
    return 0;
}

/* the options that shape the encoded media, as one word of the cache key */
static uint64_t opts_key(const mp_vqa_opts *o) {
    uint64_t h[2] = {0, 0};
    mp_content_hash(h, &o->fps, sizeof o->fps);
    mp_content_hash(h, &o->video_max_pixels, sizeof o->video_max_pixels);
    int64_t mf = o->max_frames;
    mp_content_hash(h, &mf, sizeof mf);
    return h[0] ^ h[1];
}

static void media_free_v(void *m) { media_free(m); }

static size_t media_bytes(const mp_vqa *v, const mp_vqa_media *m) {
    const mp_qwen2vl_vit_config *c = &v->vit.cfg;
    size_t b = sizeof *m + sizeof(double) * (size_t)m->n_frames +
               sizeof(float) * (size_t)m->n_rows * (size_t)v->llm.cfg.n_embd;
    if (m->patches && v->smol) /* the frames' pixel tiles */
        b += sizeof(float) * (size_t)m->n_tiles * 3 * v->smol->vis.proc.tile * v->smol->vis.proc.tile;
    else if (m->patches)
        b += sizeof(float) * (size_t)m->grid.t * m->grid.h * m->grid.w * c->in_chans * c->temporal_patch_size *
             c->patch_size * c->patch_size;
    return b;
}

/* What both families keep of a decoded video (or image as one frame): kind, frame times, source
 * size, duration, codec, the decoder's warning. */
static int media_from_video(mp_vqa_media *m, const mp_video *vid, const char *path, mp_error *err) {
    const int nf = vid->n_frames;
    m->is_video = strcmp(vid->container, "image") != 0;
    m->n_frames = nf;
    m->pts = malloc(sizeof(double) * (size_t)nf);
    if (!m->pts) return mp_errf(err, "%s: out of memory", path);
    for (int i = 0; i < nf; i++) m->pts[i] = vid->frames[i].pts;
    m->src_w = vid->width, m->src_h = vid->height;
    m->duration = vid->duration, m->native_fps = vid->native_fps;
    m->total_frames = vid->total_frames;
    snprintf(m->codec, sizeof m->codec, "%s", vid->codec);
    snprintf(m->warning, sizeof m->warning, "%s", vid->warning);
    return 0;
}

/* qwen-vl-utils' per-frame pixel budget of a video of n frames, within the processor's limits */
static void video_pixels(const mp_qwen2vl_params *proc, const mp_vqa_opts *o, int n, int64_t *minp, int64_t *maxp) {
    const int64_t px = 28 * 28, vmin = 128 * px, vmax = 768 * px, total = 24576 * px;
    int64_t mx;
    if (o->video_max_pixels > 0) {
        mx = o->video_max_pixels;
    } else {
        mx = total / (n > 0 ? n : 1) * 2; /* FRAME_FACTOR */
        if (mx > vmax) mx = vmax;
        if (mx < (int64_t)(vmin * 1.05)) mx = (int64_t)(vmin * 1.05);
    }
    if (mx > proc->max_pixels) mx = proc->max_pixels;
    int64_t mn = vmin < mx ? vmin : mx;
    if (mn < proc->min_pixels) mn = proc->min_pixels < mx ? proc->min_pixels : mx;
    *minp = mn, *maxp = mx;
}

static int encode_media(mp_vqa *v, mp_exec *ex, const char *path, const mp_vqa_opts *o, mp_vqa_media *m,
                        mp_error *err) {
    double t0 = now_s();
    mp_video_opts vo = mp_video_default_opts();
    vo.policy = MP_VIDEO_SAMPLE_QWEN2VL;
    vo.fps = o->fps > 0 ? o->fps : 2.0;
    vo.max_frames = o->max_frames > 0 ? (o->max_frames < 2 ? 2 : o->max_frames) : 768;
    vo.min_frames = vo.max_frames < 4 ? vo.max_frames : 4;
    mp_video vid;
    memset(&vid, 0, sizeof vid);
    if (mp_video_load(path, &vo, &vid, err) < 0) return -1;
    m->t_decode = now_s() - t0;
    int rc = -1;
    float *patches = NULL;
    mp_image *frames = NULL;
    const int nf = vid.n_frames;
    if (nf <= 0) {
        mp_errf(err, "%s: no frames could be decoded", path);
        goto done;
    }
    if (media_from_video(m, &vid, path, err) < 0) goto done;
    frames = calloc((size_t)nf, sizeof *frames);
    if (!frames) {
        mp_errf(err, "%s: out of memory", path);
        goto done;
    }
    for (int i = 0; i < nf; i++) frames[i] = vid.frames[i].img; /* borrowed */
    double t1 = now_s();
    mp_qwen2vl_params proc = v->vit.proc;
    if (m->is_video) video_pixels(&v->vit.proc, o, nf, &proc.min_pixels, &proc.max_pixels);
    /* a stream that changes size midway: every frame at the first one's size */
    mp_image *resized = NULL;
    for (int i = 1; i < nf; i++)
        if (frames[i].w != frames[0].w || frames[i].h != frames[0].h) {
            if (!resized) resized = calloc((size_t)nf, sizeof *resized);
            if (!resized || mp_image_resize(&frames[i], frames[0].w, frames[0].h, proc.norm.resample, &resized[i], err) < 0) {
                if (!resized) mp_errf(err, "%s: out of memory", path);
                goto done_resized;
            }
            frames[i] = resized[i];
        }
    mp_qwen2vl_plan plan;
    if (mp_qwen2vl_plan_for(frames[0].w, frames[0].h, m->is_video ? nf : 1, &proc, &plan, err) < 0) goto done_resized;
    patches = malloc(sizeof(float) * (size_t)plan.n_patches * (size_t)plan.patch_dim);
    if (!patches) {
        mp_errf(err, "%s: out of memory for %lld patches", path, (long long)plan.n_patches);
        goto done_resized;
    }
    if (mp_qwen2vl_preprocess(frames, m->is_video ? nf : 1, &proc, patches, &plan, err) < 0) goto done_resized;
    m->grid.t = plan.grid_t, m->grid.h = plan.grid_h, m->grid.w = plan.grid_w;
    m->resized_w = plan.resized_w, m->resized_h = plan.resized_h;
    if (m->is_video) { /* qwen-vl-utils: sample_fps = frames / total_frames * video_fps */
        double sfps = vo.fps;
        if (vid.total_frames > 0 && vid.native_fps > 0) sfps = (double)nf / (double)vid.total_frames * vid.native_fps;
        if (!(sfps > 0)) sfps = vo.fps;
        m->second_per_grid = (double)v->vit.cfg.temporal_patch_size / sfps;
    }
    m->t_preprocess = now_s() - t1;
    double t2 = now_s();
    m->n_rows = mp_qwen2vl_vit_n_tokens(&v->vit, &m->grid, 1);
    m->rows = malloc(sizeof(float) * (size_t)m->n_rows * (size_t)v->vit.cfg.out_dim);
    if (!m->rows) {
        mp_errf(err, "%s: out of memory for %lld vision rows", path, (long long)m->n_rows);
        goto done_resized;
    }
    if (mp_qwen2vl_vit_encode(&v->vit, &v->vst, ex, patches, &m->grid, 1, MP_QWEN2VL_OUT_MERGED, m->rows, NULL, err) < 0)
        goto done_resized;
    m->t_encode = now_s() - t2;
    if (v->keep_patches) m->patches = patches, patches = NULL;
    rc = 0;
done_resized:
    if (resized) {
        for (int i = 0; i < nf; i++) mp_image_free(&resized[i]);
        free(resized);
    }
done:
    free(frames);
    free(patches);
    mp_video_free(&vid);
    return rc;
}

/* SmolVLM / SmolVLM2: a video's frames one tile each (vlm_video.h), an image as `mmpipe caption` */
static int encode_smolvlm(mp_vqa *v, mp_exec *ex, const char *path, const mp_vqa_opts *o, mp_vqa_media *m,
                          mp_error *err) {
    const mp_vlm *s = v->smol;
    double t0 = now_s();
    mp_video_opts vo = mp_smolvlm2_video_opts(&v->smol_video, o->fps, o->max_frames);
    mp_video vid;
    memset(&vid, 0, sizeof vid);
    if (mp_video_load(path, &vo, &vid, err) < 0) return -1;
    m->t_decode = now_s() - t0;
    int rc = -1;
    float *tiles = NULL;
    const int nf = vid.n_frames;
    const size_t per = (size_t)3 * s->vis.proc.tile * s->vis.proc.tile;
    if (nf <= 0) {
        mp_errf(err, "%s: no frames could be decoded", path);
        goto done;
    }
    if (media_from_video(m, &vid, path, err) < 0) goto done;
    m->prompt_duration = mp_smolvlm2_video_duration(&vid);
    double t1 = now_s();
    if (m->is_video) { /* every frame one tile (preprocessing and encoding timed together) */
        m->n_tiles = nf;
        m->resized_w = m->resized_h = s->vis.proc.tile;
        memset(&m->plan, 0, sizeof m->plan);
    } else {
        if (mp_vlm_preprocess(s, &vid.frames[0].img, -1, &tiles, &m->plan, err) < 0) goto done;
        m->n_tiles = m->plan.n_tiles;
        m->resized_w = m->plan.resized_w, m->resized_h = m->plan.resized_h;
        m->t_preprocess = now_s() - t1;
    }
    double t2 = now_s();
    m->n_rows = (int64_t)m->n_tiles * s->vis.image_seq_len;
    m->rows = malloc(sizeof(float) * (size_t)m->n_rows * (size_t)s->vis.n_embd_text);
    if (m->is_video && v->keep_patches) tiles = malloc(sizeof(float) * per * (size_t)nf);
    if (!m->rows || (m->is_video && v->keep_patches && !tiles)) {
        mp_errf(err, "%s: out of memory for %lld vision rows", path, (long long)m->n_rows);
        goto done;
    }
    if (m->is_video) {
        const mp_image **fr = malloc(sizeof *fr * (size_t)nf);
        if (!fr) {
            mp_errf(err, "%s: out of memory", path);
            goto done;
        }
        for (int i = 0; i < nf; i++) fr[i] = &vid.frames[i].img;
        mp_error e;
        int erc = mp_smolvlm2_frames_encode(s, ex, &v->smol_vs, fr, nf, v->smol_video.longest_edge, m->rows, tiles, &e);
        free(fr);
        if (erc < 0) {
            mp_errf(err, "%s: %s", path, e.msg);
            goto done;
        }
    } else if (mp_idefics3_encode(&s->vis, &v->smol_vs, ex, tiles, m->n_tiles, m->rows, NULL, err) < 0) {
        goto done;
    }
    m->t_encode = now_s() - t2;
    if (v->keep_patches) m->patches = tiles, tiles = NULL;
    rc = 0;
done:
    free(tiles);
    mp_video_free(&vid);
    return rc;
}

int mp_vqa_media_get(mp_vqa *v, mp_exec *ex, const char *path, const mp_vqa_opts *o, const mp_vqa_media **out,
                     int *cached, mp_error *err) {
    *out = NULL;
    mp_vqa_opts opts = o ? *o : mp_vqa_default_opts();
    uint64_t h[2] = {0, 0};
    int64_t size = 0;
    if (hash_file(path, h, &size, err) < 0) return -1;
    if (!v->cache && !(v->cache = mp_featcache_create(v->cache_max_bytes ? v->cache_max_bytes : MP_VQA_CACHE_BYTES)))
        return mp_errf(err, "out of memory");
    mp_featkey key = {{h[0], h[1]}, size, opts_key(&opts)};
    mp_vqa_media *hit = mp_featcache_get(v->cache, &key);
    if (hit) {
        v->stats.n_cache_hits++;
        if (cached) *cached = 1;
        *out = hit;
        return 0;
    }
    mp_vqa_media *m = calloc(1, sizeof *m);
    if (!m) return mp_errf(err, "out of memory");
    m->hash[0] = h[0], m->hash[1] = h[1], m->size = size, m->opts = opts;
    snprintf(m->path, sizeof m->path, "%s", path);
    if ((v->kind == MP_VQA_SMOLVLM ? encode_smolvlm(v, ex, path, &opts, m, err) : encode_media(v, ex, path, &opts, m, err)) < 0) {
        media_free(m);
        return -1;
    }
    if (mp_featcache_put(v->cache, &key, m, media_bytes(v, m), media_free_v) < 0)
        return mp_errf(err, "out of memory");
    v->stats.n_encoded++;
    v->stats.t_decode += m->t_decode, v->stats.t_preprocess += m->t_preprocess, v->stats.t_encode += m->t_encode;
    v->stats.frames_decoded += m->n_frames;
    v->stats.vision_tokens += m->n_rows;
    if (cached) *cached = 0;
    *out = m;
    return 0;
}

/* ---------------------------------------------------------------- prompts and requests */

int mp_vqa_chat_prompt(const mp_vqa *v, int is_video, const char *question, char **out, mp_error *err) {
    *out = NULL;
    if (v->kind == MP_VQA_SMOLVLM) {
        if (!is_video) return mp_vlm_chat_prompt(v->smol, question, out, err);
        /* SmolVLMProcessor's DEFAULT_CHAT_TEMPLATE for videos, <video> not expanded */
        size_t L = strlen(question) + 64;
        char *s = malloc(L);
        if (!s) return mp_errf(err, "prompt: out of memory");
        snprintf(s, L, "<|im_start|>User: <video>%s<end_of_utterance>\nAssistant:", question);
        *out = s;
        return 0;
    }
    if (!v->chat_template) { /* Qwen2-VL's template, rendered */
        const char *pad = is_video ? "<|video_pad|>" : "<|image_pad|>";
        size_t L = strlen(question) + 256;
        char *s = malloc(L);
        if (!s) return mp_errf(err, "prompt: out of memory");
        snprintf(s, L,
                 "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n<|vision_start|>%s"
                 "<|vision_end|>%s<|im_end|>\n<|im_start|>assistant\n",
                 pad, question);
        *out = s;
        return 0;
    }
    mp_chat_part parts[2] = {{is_video ? "video" : "image", NULL}, {"text", question}};
    mp_chat_msg msg = {"user", NULL, parts, 2};
    mp_chat_params p = mp_chat_default_params();
    p.add_generation_prompt = 1;
    return mp_chat_apply(v->chat_template, &msg, 1, &p, out, err);
}

void mp_vqa_request_free(mp_vqa_request *r) {
    free(r->ids);
    free(r->tokens);
    free(r->embd);
    free(r->pos4);
    memset(r, 0, sizeof *r);
}

/* SmolVLM: the expanded prompt (video: frames with timestamps; image: tiles + global image), plain positions */
static int request_smolvlm(const mp_vqa *v, const mp_vqa_media *media, const char *question, mp_vqa_request *r,
                           mp_error *err) {
    const mp_vlm *s = v->smol;
    mp_vlm_prompt p;
    int rc;
    if (media->is_video) {
        rc = mp_smolvlm2_video_prompt_assemble(s, question, media->n_frames, media->pts, media->prompt_duration, media->rows, &p,
                                               err);
    } else {
        char *chat = NULL;
        if (mp_vlm_chat_prompt(s, question, &chat, err) < 0) return -1;
        rc = mp_vlm_prompt_assemble(s, chat, &media->plan, 1, media->rows, &p, err);
        free(chat);
    }
    if (rc < 0) return -1;
    r->n = p.n;
    r->tokens = p.tokens, r->embd = p.embd;
    p.tokens = NULL, p.embd = NULL;
    mp_vlm_prompt_free(&p);
    r->ids = malloc(sizeof(int32_t) * (size_t)(r->n > 0 ? r->n : 1));
    if (!r->ids) rc = mp_errf(err, "prompt: out of memory");
    for (int i = 0; rc == 0 && i < r->n; i++) r->ids[i] = r->tokens[i] >= 0 ? r->tokens[i] : s->id_image;
    if (rc == 0 && r->n > v->llm.cfg.n_ctx_train)
        rc = mp_errf(err, "prompt: %d tokens (%lld vision) exceed the model's context of %d; use fewer frames", r->n,
                     (long long)media->n_rows, v->llm.cfg.n_ctx_train);
    if (rc < 0) {
        mp_vqa_request_free(r);
        return -1;
    }
    r->n_vision = (int)media->n_rows;
    r->media = media;
    r->req.n = r->n;
    r->req.tokens = r->tokens;
    r->req.embd = r->embd;
    r->req.sampling = v->sampling;
    r->req.max_new = 256;
    return 0;
}

int mp_vqa_request_for(const mp_vqa *v, const mp_vqa_media *media, const char *question, mp_vqa_request *r,
                       mp_error *err) {
    memset(r, 0, sizeof *r);
    if (v->kind == MP_VQA_SMOLVLM) return request_smolvlm(v, media, question, r, err);
    char *prompt = NULL;
    if (mp_vqa_chat_prompt(v, media->is_video, question, &prompt, err) < 0) return -1;
    size_t len = strlen(prompt);
    int cap = (int)(len < (1u << 26) ? len + 16 : 1u << 26);
    int32_t *buf = malloc(sizeof(int32_t) * (size_t)cap);
    if (!buf) {
        free(prompt);
        return mp_errf(err, "prompt: out of memory");
    }
    int k = mp_tokenize(v->tok, prompt, len, 0, 1, buf, cap);
    free(prompt);
    if (k < 0 || k > cap) {
        free(buf);
        return mp_errf(err, "prompt: tokenization failed");
    }
    /* the template's one pad token becomes the media's rows (the processor's expansion) */
    const int32_t pad = media->is_video ? v->id_video : v->id_image;
    int n_pad = 0;
    for (int i = 0; i < k; i++) n_pad += buf[i] == pad || buf[i] == v->id_image || buf[i] == v->id_video;
    if (n_pad != 1) {
        free(buf);
        return mp_errf(err, "prompt: the chat template wrote %d vision pad tokens, expected one", n_pad);
    }
    const int64_t N = media->n_rows, D = v->llm.cfg.n_embd;
    if ((int64_t)k - 1 + N > v->llm.cfg.n_ctx_train) {
        free(buf);
        return mp_errf(err, "prompt: %lld tokens (%lld vision) exceed the model's context of %d; use fewer frames",
                        (long long)(k - 1 + N), (long long)N, v->llm.cfg.n_ctx_train);
    }
    const int n = (int)(k - 1 + N);
    r->ids = malloc(sizeof(int32_t) * (size_t)n);
    r->tokens = malloc(sizeof(int32_t) * (size_t)n);
    r->embd = calloc((size_t)n * (size_t)D, sizeof(float));
    r->pos4 = malloc(sizeof(int32_t) * 4 * (size_t)n);
    if (!r->ids || !r->tokens || !r->embd || !r->pos4) {
        free(buf);
        mp_vqa_request_free(r);
        return mp_errf(err, "prompt: out of memory for %d items", n);
    }
    int o = 0;
    for (int i = 0; i < k; i++) {
        if (buf[i] == pad) {
            for (int64_t j = 0; j < N; j++, o++) {
                r->ids[o] = pad;
                r->tokens[o] = -1;
                memcpy(r->embd + (size_t)o * D, media->rows + (size_t)j * D, sizeof(float) * (size_t)D);
            }
        } else {
            r->ids[o] = buf[i];
            r->tokens[o] = buf[i];
            o++;
        }
    }
    free(buf);
    r->n = n;
    r->n_vision = (int)N;
    r->media = media;
    const float tps = v->vit.cfg.variant == MP_QWEN2VL_V25 ? v->vit.cfg.tokens_per_second : 0.0f;
    int32_t next = 0;
    if (mp_qwen2vl_rope_index(r->ids, n, v->id_image, v->id_video, &media->grid, media->is_video ? 0 : 1, &media->grid,
                              &media->second_per_grid, media->is_video ? 1 : 0, v->vit.cfg.merge_size, tps, r->pos4,
                              &next, err) < 0) {
        mp_vqa_request_free(r);
        return -1;
    }
    memset(&r->req, 0, sizeof r->req);
    r->req.n = n;
    r->req.tokens = r->tokens;
    r->req.embd = r->embd;
    r->req.pos4 = r->pos4;
    r->req.next_pos = next;
    r->req.sampling = v->sampling;
    r->req.max_new = 256;
    return 0;
}

int mp_vqa_request_build(mp_vqa *v, mp_exec *ex, const char *media, const mp_vqa_opts *o, const char *question,
                         mp_vqa_request *r, mp_error *err) {
    memset(r, 0, sizeof *r);
    const mp_vqa_media *m = NULL;
    int cached = 0;
    if (mp_vqa_media_get(v, ex, media, o, &m, &cached, err) < 0) return -1;
    if (mp_vqa_request_for(v, m, question, r, err) < 0) return -1;
    r->cached = cached;
    return 0;
}
