/* cmd_batch.c — `mmpipe batch`: OpenAI/vLLM batch JSONL in, one result line per request out.
 *
 * The input is streamed; requests go into the continuous-batching engine (runtime/engine.h) as the
 * engine has room, so the decoder always has a full batch; results are appended durably as each
 * request finishes (runtime/batch_io.h). --resume skips what the output already holds; --shard I/N
 * (or Slurm / Kubernetes array variables) takes a deterministic share of the requests.
 */
#include "cli.h"
#include "mmpipe.h"

#include "encoders/whisper.h"
#include "llm/jinja.h"
#include "llm/whisper_decode.h"
#include "models/gguf.h"
#include "models/hfjson.h"
#include "models/hub.h"
#include "preprocess/audio.h"
#include "runtime/batch_io.h"
#include "runtime/engine.h"
#include "runtime/featcache.h"
#include "runtime/media.h"
#include "runtime/textmodel.h"
#include "runtime/vlm.h"
#include "runtime/vqa.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <glob.h>
#include <strings.h>
#include <sys/stat.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: mmpipe batch -m MODEL [-m WHISPER_MODEL] -o OUT.jsonl [options] REQUESTS.jsonl\n"
            "       mmpipe batch --task transcribe|caption -m MODEL -o OUT.jsonl [options] DIR_OR_GLOB...\n"
            "Runs every request of an OpenAI/vLLM batch file and writes one result line per request.\n"
            "Request urls: /v1/chat/completions (messages rendered with the model's chat template; content parts\n"
            "text, image_url and video_url, whose url is a path, file:// URL or data: URI), /v1/completions\n"
            "(\"prompt\" as is), /v1/audio/transcriptions (body \"file\": a path, file:// URL or data: URI;\n"
            "\"language\", \"prompt\", \"temperature\", \"response_format\" json|verbose_json|text,\n"
            "\"timestamp_granularities\": [\"word\"]). Images and videos need a SmolVLM/SmolVLM2 or Qwen2-VL model\n"
            "(one video per request; Qwen2-VL: one image or video per request). Relative media paths are\n"
            "relative to the requests file; data: URIs of videos go through a temporary file in $TMPDIR.\n"
            "The same audio (same options), image or video in many requests is encoded once; SmolVLM\n"
            "images of the requests ready together go through the vision tower as one batch.\n"
            "  -m, --model MODEL     GGUF file, HF folder, llama2.c .bin, whisper.cpp ggml .bin, or hub id\n"
            "                        ORG/NAME[:FILE]; give -m twice for a text model plus a Whisper model\n"
            "      --mmproj FILE     the vision tower of a GGUF SmolVLM / Qwen2-VL text model (llama.cpp mmproj)\n"
            "      --tokenizer FILE  tokenizer for a llama2.c checkpoint\n"
            "  -o, --output FILE     results (JSONL); never overwritten: use --resume to continue one\n"
            "      --resume          skip requests whose custom_id is already in the output; repair a torn last line\n"
            "      --task T          caption|transcribe: one request per image/audio file found in the folders or\n"
            "                        glob patterns given (custom_id = the path); -p PROMPT for caption\n"
            "      --shard I/N       process only shard I of N (deterministic by custom_id); default from\n"
            "                        SLURM_ARRAY_TASK_ID/COUNT or JOB_COMPLETION_INDEX + MMPIPE_NUM_SHARDS;\n"
            "                        the output name gets .shard-IIIII-of-NNNNN (or replaces {shard})\n"
            "      --max-seqs N      sequences decoding together (default 16)\n"
            "      --step-tokens N   tokens per forward step, decode + prefill chunks (default 512)\n"
            "      --max-tokens N    default max_tokens when a request gives none (default 512)\n"
            "      --asr-batch N     transcriptions decoded together in lock-step (default 8, at most 64)\n"
            "  -bs, --beam-size N    Whisper beam size (default 5); -bo, --best-of N (default 5)\n"
            "  -nf, --no-fallback    no Whisper temperature fallback\n"
            "      --fps F           video frames per second to sample; --max-frames N (defaults: the model's,\n"
            "                        Qwen2-VL 2 fps / 32 frames, SmolVLM2 its video_sampling, 1 fps / 64 frames)\n"
            "      --image-splitting 0|1  SmolVLM: split images into tiles (default: the processor config)\n"
            "      --vision-cache-mb N    memory for encoded images, and for encoded videos, kept by content\n"
            "                             (default 1024 each; 0: unbounded)\n"
            "      --stats FILE      write the run's numbers as JSON (wall time, the compute stages' own time,\n"
            "                        tokens, cache hits)\n"
            "      --grace S         on SIGINT/SIGTERM, seconds to finish in-flight requests (default 30)\n"
            "      --progress        progress bar even when stderr is not a terminal\n"
            "  -t, --threads N       threads (default: physical cores)\n"
            "      --device cpu|cuda|auto\n"
            "Exit status: 0 all requests succeeded; 1 some got error records; 2 usage or setup error;\n"
            "3 interrupted (the summary says what is left; run again with --resume).\n");
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static volatile sig_atomic_t g_stop = 0;
static void on_signal(int sig) {
    g_stop = sig;
}

#define ASR_MAX_GROUP 64
#define VG_MAX 64 /* requests in one vision group */

/* one transcription request waiting for its group to run */
typedef struct asr_item {
    char *custom_id;
    mp_audio audio;
    int format;          /* ASR_JSON, ASR_VERBOSE, ASR_TEXT */
    uint64_t audio_hash; /* of the 16 kHz samples */
    uint64_t result_hash; /* audio + every option that shapes the result body */
} asr_item;

/* Results of transcriptions already made, by result_hash: the same audio asked again with the same
 * options is answered without running the model (a ring of the last ASR_CACHE bodies). */
#define ASR_CACHE 1024
typedef struct asr_cache {
    uint64_t key[ASR_CACHE];
    char *body[ASR_CACHE];
    int next;
    int64_t hits;
} asr_cache;
enum { ASR_JSON, ASR_VERBOSE, ASR_TEXT };

/* prepared requests between the preparing thread and the main thread (see below) */
typedef struct prep_item prep_item;
typedef struct prep_queue {
    pthread_mutex_t mu;
    pthread_cond_t not_empty, not_full;
    prep_item **ring;
    int cap, head, count, stop;
} prep_queue;

typedef struct batch_ctx {
    /* the decoder model: a text model, a SmolVLM or a Qwen2-VL (vlm/vqa), or none */
    mp_textmodel *tm;
    mp_vlm *vlm;
    mp_vqa *vqa;
    mp_exec *ex;
    const char *model_name, *model_path;
    const mp_tokenizer *tok;
    const char *chat_template, *bos_text, *eos_text;
    mp_sampler_params sampling;
    int64_t mm_encoded, mm_cached;
    mp_vqa_opts vqa_opts;      /* --fps, --max-frames */
    /* SmolVLM: requests whose images go through the vision tower together (see vision_flush), and the
     * encoded images by content (the same picture in many requests is encoded once) */
    int split;                 /* --image-splitting: -1 the processor config, 0 off, 1 on */
    mp_featcache *vcache;
    mp_idefics3_state vst;
    prep_item *vg[VG_MAX];
    int n_vg, vg_tiles, vg_batch;
    /* where the time goes (--stats): the compute stages' own time */
    double t_vision, t_decoder, t_asr;
    mp_whisper *asr;           /* the speech model, or NULL */
    mp_whisper_ctx *asr_ctx;
    const char *asr_name;
    mp_whisper_params asr_p;   /* the run's decoding options (beam size, fallback) */
    int asr_group;             /* transcriptions decoded in lock-step */
    asr_item pend[ASR_MAX_GROUP];
    int n_pend;
    mp_whisper_params pend_p;  /* the options every pending item shares */
    char pend_key[128];
    char *pend_prompt;         /* pend_p.prompt (owned) */
    asr_cache cache;
    char base_dir[4096];       /* relative media paths are relative to the requests file */
    double audio_s;            /* seconds of audio transcribed */
    /* the preparing thread: it alone touches rd, the filters and their counters until it is joined */
    mp_req_reader *rd;
    const mp_shard *sh;
    const mp_idset *done;
    prep_queue q;
    int read_failed;
    mp_error read_err;
    mp_res_writer w;
    int default_max_tokens;
    int64_t n_ok, n_err, n_skipped, n_dup, n_other_shard, n_read, tokens_out;
    int write_failed;
    mp_error werr;
    mp_idset seen;
} batch_ctx;

/* the per-request data that travels through the engine */
typedef struct req_state {
    char *custom_id;
    int kind;
    int logprobs;
} req_state;

/* ---------------------------------------------------------------- the preparing thread
 * A worker thread reads the requests file and prepares each request (shard/resume/duplicate filters,
 * chat template + tokenization, audio decoding + resampling) while the main thread runs the models.
 * Prepared items go through a bounded queue (back-pressure: the worker waits when it is full); the main
 * thread alone writes results, so records are never interleaved. */

enum { IT_EOF, IT_ERROR, IT_GEN, IT_ASR, IT_MM };

struct prep_item {
    int kind;
    char *custom_id;
    /* IT_ERROR */
    int status;
    const char *code;
    char *msg;
    /* IT_GEN: r.tokens = ids, r.user = rs, r.stop[] = stop_copy[] */
    mp_gen_request r;
    int32_t *ids;
    req_state *rs;
    char *stop_copy[MP_MAX_STOP];
    /* IT_MM: a chat request with images/video; r holds its parameters, the model runs on the main thread */
    cJSON *body;           /* the request body (owned): the messages */
    mp_image *images;      /* SmolVLM: decoded images [n_images] (pixels freed once preprocessed) */
    int n_images;
    char *mm_prompt;       /* SmolVLM: the chat rendered with one "<image>" per image */
    mp_featkey *keys;      /* SmolVLM: each image's vision-cache key (pixels + splitting) */
    float **tiles;         /* SmolVLM: each image's processor tiles; NULL when it was in the cache */
    mp_idefics3_plan *plans;
    char *media_path;      /* Qwen2-VL: the one image/video file */
    int media_tmp;         /* media_path is a temporary file holding a data: URI's bytes (removed here) */
    char media_name[256];  /* then: "data:<mime>", for error messages */
    char *question;        /* Qwen2-VL: the text of the turn */
    /* IT_ASR */
    asr_item asr;
    mp_whisper_params p; /* p.prompt = prompt */
    char *prompt;
    char key[128];
};

static void prep_free(prep_item *it) {
    if (!it) return;
    free(it->custom_id);
    free(it->msg);
    free(it->ids);
    if (it->rs) {
        free(it->rs->custom_id);
        free(it->rs);
    }
    for (int i = 0; i < MP_MAX_STOP; i++) free(it->stop_copy[i]);
    free(it->asr.custom_id);
    mp_audio_free(&it->asr.audio);
    free(it->prompt);
    cJSON_Delete(it->body);
    for (int i = 0; i < it->n_images; i++) {
        mp_image_free(&it->images[i]);
        if (it->tiles) free(it->tiles[i]);
    }
    free(it->images);
    free(it->mm_prompt);
    free(it->keys);
    free(it->tiles);
    free(it->plans);
    if (it->media_tmp && it->media_path) unlink(it->media_path);
    free(it->media_path);
    free(it->question);
    free(it);
}

static prep_item *prep_new(int kind, const char *custom_id) {
    prep_item *it = calloc(1, sizeof *it);
    if (!it) return NULL;
    it->kind = kind;
    if (custom_id && !(it->custom_id = strdup(custom_id))) {
        free(it);
        return NULL;
    }
    return it;
}

static prep_item *prep_error(const char *custom_id, int status, const char *code, const char *msg) {
    prep_item *it = prep_new(IT_ERROR, custom_id);
    if (!it) return NULL;
    it->status = status;
    it->code = code;
    it->msg = strdup(msg);
    return it;
}

static int queue_init(prep_queue *q, int cap) {
    memset(q, 0, sizeof *q);
    q->ring = calloc((size_t)cap, sizeof *q->ring);
    if (!q->ring) return -1;
    q->cap = cap;
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->not_empty, NULL);
    pthread_cond_init(&q->not_full, NULL);
    return 0;
}

static void queue_free(prep_queue *q) {
    if (!q->ring) return;
    for (int i = 0; i < q->count; i++) prep_free(q->ring[(q->head + i) % q->cap]);
    free(q->ring);
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->not_empty);
    pthread_cond_destroy(&q->not_full);
    q->ring = NULL;
}

/* 0, or -1 when the queue was stopped (the item is not taken) */
static int queue_push(prep_queue *q, prep_item *it) {
    pthread_mutex_lock(&q->mu);
    while (q->count == q->cap && !q->stop) pthread_cond_wait(&q->not_full, &q->mu);
    int rc = -1;
    if (!q->stop) {
        q->ring[(q->head + q->count) % q->cap] = it;
        q->count++;
        pthread_cond_signal(&q->not_empty);
        rc = 0;
    }
    pthread_mutex_unlock(&q->mu);
    return rc;
}

/* The next item, waiting at most wait_ms for one; NULL when none came. */
static prep_item *queue_pop(prep_queue *q, int wait_ms) {
    pthread_mutex_lock(&q->mu);
    if (q->count == 0 && wait_ms > 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += (long)wait_ms * 1000000L;
        ts.tv_sec += ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&q->not_empty, &q->mu, &ts);
    }
    prep_item *it = NULL;
    if (q->count) {
        it = q->ring[q->head];
        q->head = (q->head + 1) % q->cap;
        q->count--;
        pthread_cond_signal(&q->not_full);
    }
    pthread_mutex_unlock(&q->mu);
    return it;
}

static void queue_stop(prep_queue *q) {
    pthread_mutex_lock(&q->mu);
    q->stop = 1;
    pthread_cond_broadcast(&q->not_full);
    pthread_cond_broadcast(&q->not_empty);
    pthread_mutex_unlock(&q->mu);
}

static void put_line(batch_ctx *b, char *line) {
    if (!line) {
        b->write_failed = 1;
        mp_errf(&b->werr, "out of memory");
        return;
    }
    if (!b->write_failed && mp_res_writer_put(&b->w, line, &b->werr) < 0) b->write_failed = 1;
    free(line);
}

static void put_error(batch_ctx *b, const char *custom_id, int status, const char *code, const char *msg) {
    put_line(b, mp_result_error(custom_id, status, code, msg));
    b->n_err++;
}

/* ---------------------------------------------------------------- request parsing */

static int json_num(const cJSON *body, const char *key, double lo, double hi, double *v, char *msg, size_t cap) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(body, key);
    if (!j || cJSON_IsNull(j)) return 0;
    if (!cJSON_IsNumber(j) || j->valuedouble < lo || j->valuedouble > hi || j->valuedouble != j->valuedouble) {
        snprintf(msg, cap, "\"%s\" must be a number in [%g, %g]", key, lo, hi);
        return -1;
    }
    *v = j->valuedouble;
    return 1;
}

/* Sampling and limits from the body, with the model's defaults (generation_config.json) underneath.
 * Without a "seed" the seed is derived from the custom_id: reruns and resumes give the same result. */
static int parse_params(batch_ctx *b, const char *custom_id, const cJSON *body, mp_gen_request *r, char *msg,
                        size_t cap) {
    r->sampling = b->sampling;
    r->sampling.seed = mp_id_hash(custom_id);
    r->max_new = b->default_max_tokens;
    double v;
    int rc;
    if ((rc = json_num(body, "n", 1, 1, &v, msg, cap)) < 0) {
        snprintf(msg, cap, "\"n\" other than 1 is not supported");
        return -1;
    }
    if ((rc = json_num(body, "max_tokens", 1, 1e7, &v, msg, cap)) < 0) return -1;
    if (rc) r->max_new = (int)v;
    if ((rc = json_num(body, "max_completion_tokens", 1, 1e7, &v, msg, cap)) < 0) return -1;
    if (rc) r->max_new = (int)v;
    if ((rc = json_num(body, "temperature", 0, 100, &v, msg, cap)) < 0) return -1;
    if (rc) r->sampling.temperature = (float)v;
    if ((rc = json_num(body, "top_p", 0, 1, &v, msg, cap)) < 0) return -1;
    if (rc) r->sampling.top_p = (float)v;
    if ((rc = json_num(body, "top_k", -1, 1e9, &v, msg, cap)) < 0) return -1;
    if (rc) r->sampling.top_k = v < 0 ? 0 : (int)v;
    if ((rc = json_num(body, "min_p", 0, 1, &v, msg, cap)) < 0) return -1;
    if (rc) r->sampling.min_p = (float)v;
    if ((rc = json_num(body, "frequency_penalty", -2, 2, &v, msg, cap)) < 0) return -1;
    if (rc) r->sampling.frequency_penalty = (float)v;
    if ((rc = json_num(body, "presence_penalty", -2, 2, &v, msg, cap)) < 0) return -1;
    if (rc) r->sampling.presence_penalty = (float)v;
    if ((rc = json_num(body, "repetition_penalty", 1e-3, 100, &v, msg, cap)) < 0) return -1;
    if (rc) r->sampling.repeat_penalty = (float)v;
    if ((rc = json_num(body, "seed", -9.2e18, 9.2e18, &v, msg, cap)) < 0) return -1;
    if (rc) r->sampling.seed = (uint64_t)(int64_t)v;
    const cJSON *lp = cJSON_GetObjectItemCaseSensitive(body, "logprobs");
    if (cJSON_IsTrue(lp)) {
        r->top_logprobs = 1;
        if ((rc = json_num(body, "top_logprobs", 0, 20, &v, msg, cap)) < 0) return -1;
        if (rc && v > 0) r->top_logprobs = (int)v;
    }
    const cJSON *stop = cJSON_GetObjectItemCaseSensitive(body, "stop");
    if (cJSON_IsString(stop)) {
        r->stop[r->n_stop++] = stop->valuestring;
    } else if (cJSON_IsArray(stop)) {
        const cJSON *s;
        cJSON_ArrayForEach(s, stop) {
            if (!cJSON_IsString(s) || r->n_stop == MP_MAX_STOP) {
                snprintf(msg, cap, "\"stop\" must be a string or a list of at most %d strings", MP_MAX_STOP);
                return -1;
            }
            if (s->valuestring[0]) r->stop[r->n_stop++] = s->valuestring;
        }
    } else if (stop && !cJSON_IsNull(stop)) {
        snprintf(msg, cap, "\"stop\" must be a string or a list of strings");
        return -1;
    }
    const cJSON *ign = cJSON_GetObjectItemCaseSensitive(body, "ignore_eos");
    if (cJSON_IsTrue(ign)) r->ignore_eos = 1;
    return 0;
}

#define MAX_MEDIA 16

/* The media parts of a chat request, in order. */
typedef struct chat_media {
    int n;
    const char *url[MAX_MEDIA];
    int is_video[MAX_MEDIA];
} chat_media;

/* messages -> mp_chat_msg list pointing into body (*cm, *parts malloc'd). Media parts (image_url,
 * video_url) become {"type": "image"} parts and are listed in media when media is not NULL; without it
 * they are an error. */
static int chat_msgs(const cJSON *body, chat_media *media, mp_chat_msg **cm_out, mp_chat_part **parts_out, int *n_out,
                     int *status, char *msg, size_t cap) {
    *status = 400;
    *cm_out = NULL;
    *parts_out = NULL;
    if (media) media->n = 0;
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(body, "messages");
    if (!cJSON_IsArray(msgs) || cJSON_GetArraySize(msgs) == 0) {
        snprintf(msg, cap, "\"messages\" must be a non-empty list");
        return -1;
    }
    int n = cJSON_GetArraySize(msgs), k = 0, n_parts = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, msgs) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(m, "content");
        n_parts += cJSON_IsArray(c) ? cJSON_GetArraySize(c) : 1;
    }
    mp_chat_msg *cm = calloc((size_t)n, sizeof *cm);
    mp_chat_part *parts = calloc((size_t)n_parts + 1, sizeof *parts);
    if (!cm || !parts) {
        free(cm);
        free(parts);
        snprintf(msg, cap, "out of memory");
        *status = 500;
        return -1;
    }
    int pi = 0, rc = 0;
    cJSON_ArrayForEach(m, msgs) {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (!cJSON_IsString(role)) {
            snprintf(msg, cap, "messages[%d]: missing \"role\"", k);
            rc = -1;
            break;
        }
        cm[k].role = role->valuestring;
        if (cJSON_IsString(c) && media) {
            /* vision-language templates iterate over content parts (as vLLM does, a string becomes one part) */
            cm[k].parts = parts + pi;
            parts[pi].type = "text";
            parts[pi++].text = c->valuestring;
            cm[k].n_parts = 1;
        } else if (cJSON_IsString(c)) {
            cm[k].content = c->valuestring;
        } else if (cJSON_IsArray(c)) {
            cm[k].parts = parts + pi;
            const cJSON *p;
            cJSON_ArrayForEach(p, c) {
                const cJSON *type = cJSON_GetObjectItemCaseSensitive(p, "type");
                const cJSON *text = cJSON_GetObjectItemCaseSensitive(p, "text");
                if (!cJSON_IsString(type)) {
                    snprintf(msg, cap, "messages[%d]: a content part has no \"type\"", k);
                    rc = -1;
                    break;
                }
                const char *t = type->valuestring;
                if (!strcmp(t, "image_url") || !strcmp(t, "video_url")) {
                    int video = t[0] == 'v';
                    if (!media) {
                        snprintf(msg, cap,
                                 "messages[%d]: %s content needs a vision-language model (-m SmolVLM or Qwen2-VL)", k, t);
                        rc = -1;
                        break;
                    }
                    const cJSON *u = cJSON_GetObjectItemCaseSensitive(p, t);
                    if (cJSON_IsObject(u)) u = cJSON_GetObjectItemCaseSensitive(u, "url");
                    if (!cJSON_IsString(u)) {
                        snprintf(msg, cap, "messages[%d]: %s part without a url", k, t);
                        rc = -1;
                        break;
                    }
                    if (media->n == MAX_MEDIA) {
                        snprintf(msg, cap, "more than %d images/videos in one request", MAX_MEDIA);
                        rc = -1;
                        break;
                    }
                    media->url[media->n] = u->valuestring;
                    media->is_video[media->n++] = video;
                    parts[pi].type = "image";
                    parts[pi].text = NULL;
                } else if (!strcmp(t, "text")) {
                    if (!cJSON_IsString(text)) {
                        snprintf(msg, cap, "messages[%d]: a text part has no \"text\"", k);
                        rc = -1;
                        break;
                    }
                    parts[pi].type = "text";
                    parts[pi].text = text->valuestring;
                } else {
                    snprintf(msg, cap, "messages[%d]: content type \"%s\" is not supported in batch mode (text, image_url, video_url)",
                             k, t);
                    rc = -1;
                    break;
                }
                pi++;
                cm[k].n_parts++;
            }
            if (rc) break;
        } else if (c && !cJSON_IsNull(c)) {
            snprintf(msg, cap, "messages[%d]: \"content\" must be a string or a list of parts", k);
            rc = -1;
            break;
        } else {
            cm[k].content = "";
        }
        k++;
    }
    if (rc) {
        free(cm);
        free(parts);
        return -1;
    }
    *cm_out = cm;
    *parts_out = parts;
    *n_out = k;
    return 0;
}

/* Text-only chat messages -> the text the model sees, through its chat template. */
static int render_chat(batch_ctx *b, const cJSON *body, char **prompt, int *status, char *msg, size_t cap) {
    mp_chat_msg *cm;
    mp_chat_part *parts;
    int k;
    if (chat_msgs(body, NULL, &cm, &parts, &k, status, msg, cap) < 0) return -1;
    int rc = 0;
    if (!b->chat_template) {
        snprintf(msg, cap, "the model has no chat template; use /v1/completions with a \"prompt\"");
        rc = -1;
    } else {
        mp_chat_params cp = mp_chat_default_params();
        cp.bos_token = b->bos_text;
        cp.eos_token = b->eos_text;
        cp.add_generation_prompt = 1;
        cp.now_unix = 1; /* fixed date for strftime_now(): results must not depend on the run's day */
        mp_error err;
        if (mp_chat_apply(b->chat_template, cm, k, &cp, prompt, &err) < 0) {
            snprintf(msg, cap, "chat template: %.900s", err.msg);
            *status = 500;
            rc = -1;
        }
    }
    free(cm);
    free(parts);
    return rc;
}

static int tokenize_all(const mp_tokenizer *tok, const char *text, int add_special, int32_t **ids) {
    size_t len = strlen(text);
    int cap = (int)(len + 16);
    *ids = malloc((size_t)cap * sizeof(int32_t));
    if (!*ids) return -1;
    int n = mp_tokenize(tok, text, len, add_special, 1, *ids, cap);
    if (n > cap) {
        free(*ids);
        *ids = malloc((size_t)n * sizeof(int32_t));
        if (!*ids) return -1;
        n = mp_tokenize(tok, text, len, add_special, 1, *ids, n);
    }
    return n;
}

/* ---------------------------------------------------------------- transcriptions
 * /v1/audio/transcriptions requests are decoded (audio files) as they are read and run in groups of up to
 * --asr-batch through the Whisper encoder and decoder in lock-step (mp_whisper_transcribe_batch). A group
 * holds requests with the same decoding options; a request with other options runs the group first.
 * Results do not depend on the grouping. */

static uint64_t fnv1a(uint64_t h, const void *p, size_t n) {
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++) h = (h ^ c[i]) * 0x100000001b3ull;
    return h;
}

static const char *cache_get(const asr_cache *c, uint64_t key) {
    for (int i = 0; i < ASR_CACHE; i++)
        if (c->body[i] && c->key[i] == key) return c->body[i];
    return NULL;
}

static void cache_put(asr_cache *c, uint64_t key, const char *body) {
    if (cache_get(c, key)) return;
    char *copy = strdup(body);
    if (!copy) return;
    free(c->body[c->next]);
    c->key[c->next] = key;
    c->body[c->next] = copy;
    c->next = (c->next + 1) % ASR_CACHE;
}

static void cache_free(asr_cache *c) {
    for (int i = 0; i < ASR_CACHE; i++) free(c->body[i]);
}

/* One result line from a body kept as text. */
static void put_body(batch_ctx *b, const char *custom_id, const char *body_text) {
    cJSON *body = cJSON_Parse(body_text);
    if (!body) {
        put_error(b, custom_id, 500, "internal_error", "out of memory");
        return;
    }
    put_line(b, mp_result_ok(custom_id, body));
    b->n_ok++;
}

static cJSON *asr_body(const batch_ctx *b, const mp_whisper_result *r, int format) {
    if (format == ASR_TEXT) return cJSON_CreateString(r->text ? r->text : "");
    cJSON *body = cJSON_CreateObject();
    const char *lang = mp_whisper_lang_name(r->language);
    if (format == ASR_VERBOSE) {
        cJSON_AddStringToObject(body, "task", b->pend_p.translate ? "translate" : "transcribe");
        cJSON_AddStringToObject(body, "language", lang ? lang : "");
        cJSON_AddNumberToObject(body, "duration", r->duration);
    }
    cJSON_AddStringToObject(body, "text", r->text ? r->text : "");
    if (format == ASR_VERBOSE) {
        cJSON *segs = cJSON_AddArrayToObject(body, "segments");
        cJSON *words = b->pend_p.word_timestamps ? cJSON_AddArrayToObject(body, "words") : NULL;
        for (int k = 0; k < r->n_segs; k++) {
            const mp_whisper_segment *sg = &r->segs[k];
            cJSON *o = cJSON_CreateObject();
            cJSON_AddNumberToObject(o, "id", k);
            cJSON_AddNumberToObject(o, "seek", (double)sg->seek);
            cJSON_AddNumberToObject(o, "start", sg->start);
            cJSON_AddNumberToObject(o, "end", sg->end);
            cJSON_AddStringToObject(o, "text", sg->text ? sg->text : "");
            cJSON *toks = cJSON_AddArrayToObject(o, "tokens");
            for (int t = 0; t < sg->n_tokens; t++) cJSON_AddItemToArray(toks, cJSON_CreateNumber(sg->tokens[t].id));
            cJSON_AddNumberToObject(o, "temperature", sg->temperature);
            cJSON_AddNumberToObject(o, "avg_logprob", sg->avg_logprob);
            cJSON_AddNumberToObject(o, "compression_ratio", sg->compression_ratio);
            cJSON_AddNumberToObject(o, "no_speech_prob", sg->no_speech_prob);
            cJSON_AddItemToArray(segs, o);
            for (int w = 0; words && w < sg->n_words; w++) {
                cJSON *wo = cJSON_CreateObject();
                cJSON_AddStringToObject(wo, "word", sg->words[w].text ? sg->words[w].text : "");
                cJSON_AddNumberToObject(wo, "start", sg->words[w].start);
                cJSON_AddNumberToObject(wo, "end", sg->words[w].end);
                cJSON_AddItemToArray(words, wo);
            }
        }
    }
    cJSON *u = cJSON_AddObjectToObject(body, "usage");
    cJSON_AddStringToObject(u, "type", "duration");
    cJSON_AddNumberToObject(u, "seconds", ceil(r->duration));
    return body;
}

/* Runs the pending group: each distinct audio once (the group shares its options), every request
 * answered, bodies remembered in the cache. */
static void asr_flush(batch_ctx *b) {
    int n = b->n_pend;
    if (!n) return;
    const float *samp[ASR_MAX_GROUP] = {0};
    int64_t ns[ASR_MAX_GROUP] = {0};
    int src[ASR_MAX_GROUP], slot[ASR_MAX_GROUP], nu = 0;
    mp_whisper_result res[ASR_MAX_GROUP];
    int rcs[ASR_MAX_GROUP];
    mp_error errs[ASR_MAX_GROUP];
    memset(res, 0, sizeof res);
    for (int i = 0; i < n; i++) {
        src[i] = i;
        for (int j = 0; j < i; j++)
            if (b->pend[j].audio_hash == b->pend[i].audio_hash && b->pend[j].audio.n_samples == b->pend[i].audio.n_samples &&
                !memcmp(b->pend[j].audio.samples, b->pend[i].audio.samples, sizeof(float) * (size_t)b->pend[i].audio.n_samples)) {
                src[i] = j;
                break;
            }
        if (src[i] != i) {
            slot[i] = slot[src[i]];
            b->cache.hits++;
            continue;
        }
        slot[i] = nu;
        samp[nu] = b->pend[i].audio.samples;
        ns[nu] = b->pend[i].audio.n_samples;
        rcs[nu] = 0;
        errs[nu].msg[0] = 0;
        nu++;
    }
    double t_asr = now_s();
    mp_whisper_transcribe_batch(b->asr_ctx, samp, ns, nu, &b->pend_p, res, rcs, errs);
    b->t_asr += now_s() - t_asr;
    for (int i = 0; i < n; i++) {
        asr_item *it = &b->pend[i];
        int k = slot[i];
        if (rcs[k]) {
            put_error(b, it->custom_id, 500, "transcription_failed", errs[k].msg);
        } else {
            cJSON *body = asr_body(b, &res[k], it->format);
            char *text = body ? cJSON_PrintUnformatted(body) : NULL;
            cJSON_Delete(body);
            if (text) {
                cache_put(&b->cache, it->result_hash, text);
                put_body(b, it->custom_id, text);
                free(text);
            } else {
                put_error(b, it->custom_id, 500, "internal_error", "out of memory");
            }
            if (src[i] == i) b->audio_s += res[k].duration;
        }
        free(it->custom_id);
        mp_audio_free(&it->audio);
    }
    for (int k = 0; k < nu; k++)
        if (!rcs[k]) mp_whisper_result_free(&res[k]);
    b->n_pend = 0;
    free(b->pend_prompt);
    b->pend_prompt = NULL;
}

static const char *json_str(const cJSON *o, const char *key) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(j) ? j->valuestring : NULL;
}

/* Worker side of a transcription request: options checked, audio decoded to 16 kHz mono. */
static prep_item *prepare_asr(batch_ctx *b, mp_request *q) {
    char msg[1024];
    const cJSON *body = q->body;
    if (!b->asr)
        return prep_error(q->custom_id, 400, "model_not_found",
                          "this run has no speech model for /v1/audio/transcriptions (give a Whisper model with -m)");
    if (q->model && strcmp(q->model, b->asr_name) != 0 && strcmp(q->model, "whisper-1") != 0) {
        snprintf(msg, sizeof msg, "this run serves speech model \"%s\"; the request asks for \"%s\"", b->asr_name, q->model);
        return prep_error(q->custom_id, 400, "model_not_found", msg);
    }
    mp_whisper_params p = b->asr_p;
    /* the audio: "file" / "file_url" / "url" (path, file://, data:), or input_audio {"data": base64} */
    const char *ref = json_str(body, "file");
    if (!ref) ref = json_str(body, "file_url");
    if (!ref) ref = json_str(body, "url");
    char *data_uri = NULL;
    const cJSON *ia = cJSON_GetObjectItemCaseSensitive(body, "input_audio");
    if (!ref && cJSON_IsObject(ia) && json_str(ia, "data")) {
        const char *fmt = json_str(ia, "format");
        size_t len = strlen(json_str(ia, "data")) + 64;
        data_uri = malloc(len);
        if (data_uri) snprintf(data_uri, len, "data:audio/%s;base64,%s", fmt ? fmt : "wav", json_str(ia, "data"));
        ref = data_uri;
    }
    if (!ref)
        return prep_error(q->custom_id, 400, "invalid_request",
                          "no audio: give \"file\" (a path, file:// URL or data: URI) or \"input_audio\"");
    prep_item *it = NULL;
    /* options */
    int format = ASR_JSON;
    const char *rf = json_str(body, "response_format");
    if (rf && !strcmp(rf, "verbose_json")) format = ASR_VERBOSE;
    else if (rf && !strcmp(rf, "text")) format = ASR_TEXT;
    else if (rf && strcmp(rf, "json") != 0) {
        snprintf(msg, sizeof msg, "response_format \"%.100s\" is not supported in batch mode (json, verbose_json, text)", rf);
        goto bad;
    }
    const char *lang = json_str(body, "language");
    if (!lang || !*lang || !strcmp(lang, "auto")) {
        p.language = b->asr->sp.multilingual ? -1 : 0;
    } else if ((p.language = mp_whisper_lang_id(lang)) < 0) {
        snprintf(msg, sizeof msg, "unknown language \"%.100s\"", lang);
        goto bad;
    }
    double t;
    int rc = json_num(body, "temperature", 0, 1, &t, msg, sizeof msg);
    if (rc < 0) goto bad;
    if (rc > 0) p.temperature = (float)t;
    const cJSON *tg = cJSON_GetObjectItemCaseSensitive(body, "timestamp_granularities");
    if (!tg) tg = cJSON_GetObjectItemCaseSensitive(body, "timestamp_granularities[]");
    const cJSON *g;
    cJSON_ArrayForEach(g, tg) if (cJSON_IsString(g) && !strcmp(g->valuestring, "word")) p.word_timestamps = 1;
    if (p.word_timestamps && format != ASR_VERBOSE) {
        snprintf(msg, sizeof msg, "word timestamps need response_format \"verbose_json\"");
        goto bad;
    }
    it = prep_new(IT_ASR, q->custom_id);
    const char *prompt = json_str(body, "prompt");
    if (!it || !(it->asr.custom_id = strdup(q->custom_id)) || (prompt && !(it->prompt = strdup(prompt)))) {
        snprintf(msg, sizeof msg, "out of memory");
        goto bad;
    }
    p.prompt = it->prompt;
    it->p = p;
    it->asr.format = format;
    snprintf(it->key, sizeof it->key, "%d|%d|%.9g|%d", p.language, p.translate, p.temperature, p.word_timestamps);
    /* the audio itself */
    mp_media_ref mr;
    mp_error err;
    if (mp_media_resolve(ref, b->base_dir, &mr, &err) < 0) {
        snprintf(msg, sizeof msg, "%s", err.msg);
        goto bad;
    }
    rc = mr.path ? mp_audio_load(mr.path, MP_AUDIO_RATE, &it->asr.audio, &err)
                 : mp_audio_load_memory(mr.bytes, mr.size, mr.name, MP_AUDIO_RATE, &it->asr.audio, &err);
    mp_media_ref_free(&mr);
    free(data_uri);
    if (rc < 0) {
        prep_free(it);
        return prep_error(q->custom_id, 400, "invalid_media", err.msg);
    }
    uint64_t h = fnv1a(0xcbf29ce484222325ull, it->asr.audio.samples, sizeof(float) * (size_t)it->asr.audio.n_samples);
    it->asr.audio_hash = h;
    h = fnv1a(h, it->key, strlen(it->key) + 1);
    h = fnv1a(h, it->prompt ? it->prompt : "", it->prompt ? strlen(it->prompt) + 1 : 0);
    it->asr.result_hash = fnv1a(h, &format, sizeof format);
    return it;
bad:
    free(data_uri);
    prep_free(it);
    return prep_error(q->custom_id, 400, "invalid_request", msg);
}

/* Main side: the item joins the group of pending transcriptions (a group shares its options); a full
 * group runs at once. */
static void consume_asr(batch_ctx *b, prep_item *it) {
    const char *hit = cache_get(&b->cache, it->asr.result_hash);
    if (hit) { /* the same audio with the same options was transcribed already */
        b->cache.hits++;
        put_body(b, it->custom_id, hit);
        prep_free(it);
        return;
    }
    const char *pp = it->prompt, *gp = b->pend_prompt;
    int same_prompt = (!pp && !gp) || (pp && gp && !strcmp(pp, gp));
    if (b->n_pend && (strcmp(it->key, b->pend_key) != 0 || !same_prompt)) asr_flush(b);
    if (!b->n_pend) {
        snprintf(b->pend_key, sizeof b->pend_key, "%s", it->key);
        b->pend_p = it->p;
        b->pend_p.prompt = b->pend_prompt = it->prompt; /* ownership moves to the group */
        it->prompt = NULL;
    }
    b->pend[b->n_pend++] = it->asr; /* the audio and custom_id move too */
    memset(&it->asr, 0, sizeof it->asr);
    prep_free(it);
    if (b->n_pend >= b->asr_group) asr_flush(b);
}

/* The request's sampling parameters and stop strings into it->r (stop strings copied). */
static int item_params(batch_ctx *b, prep_item *it, const mp_request *q, char *msg, size_t cap) {
    mp_gen_request *r = &it->r;
    if (parse_params(b, q->custom_id, q->body, r, msg, cap) < 0) return -1;
    for (int i = 0; i < r->n_stop; i++) { /* the request's strings go with it; keep copies */
        if (!(it->stop_copy[i] = strdup(r->stop[i]))) {
            snprintf(msg, cap, "out of memory");
            return -1;
        }
        r->stop[i] = it->stop_copy[i];
    }
    it->rs = calloc(1, sizeof *it->rs);
    if (!it->rs || !(it->rs->custom_id = strdup(q->custom_id))) {
        snprintf(msg, cap, "out of memory");
        return -1;
    }
    it->rs->kind = q->kind;
    it->rs->logprobs = r->top_logprobs > 0;
    return 0;
}

/* Worker side of a chat request for a vision-language model: messages checked, SmolVLM images decoded
 * and preprocessed here (off the main thread); Qwen2-VL media and SmolVLM2 videos are decoded and encoded
 * by the model's media cache on the main thread (mp_vqa_request_build). */
static prep_item *prepare_mm(batch_ctx *b, mp_request *q) {
    char msg[1024];
    int status = 400;
    chat_media media;
    mp_chat_msg *cm = NULL;
    mp_chat_part *parts = NULL;
    int k = 0;
    if (chat_msgs(q->body, &media, &cm, &parts, &k, &status, msg, sizeof msg) < 0)
        return prep_error(q->custom_id, status, status >= 500 ? "internal_error" : "invalid_request", msg);
    prep_item *it = prep_new(IT_MM, q->custom_id);
    if (!it) {
        snprintf(msg, sizeof msg, "out of memory");
        goto bad;
    }
    if (item_params(b, it, q, msg, sizeof msg) < 0) goto bad;
    mp_error err;
    int has_video = 0;
    for (int i = 0; i < media.n; i++) has_video |= media.is_video[i];
    if (b->vlm && !has_video) { /* SmolVLM images: decoded and preprocessed here, encoded in vision groups */
        if (media.n > 0) {
            it->images = calloc((size_t)media.n, sizeof *it->images);
            it->keys = calloc((size_t)media.n, sizeof *it->keys);
            it->tiles = calloc((size_t)media.n, sizeof *it->tiles);
            it->plans = calloc((size_t)media.n, sizeof *it->plans);
            if (!it->images || !it->keys || !it->tiles || !it->plans) {
                snprintf(msg, sizeof msg, "out of memory");
                goto bad;
            }
        }
        for (int i = 0; i < media.n; i++) {
            mp_media_ref mr;
            if (mp_media_resolve(media.url[i], b->base_dir, &mr, &err) < 0) {
                snprintf(msg, sizeof msg, "%s", err.msg);
                goto bad;
            }
            mp_image *img = &it->images[i];
            int rc = mr.path ? mp_image_load(mr.path, NULL, img, &err)
                             : mp_image_load_mem(mr.bytes, mr.size, mr.name, NULL, img, &err);
            mp_media_ref_free(&mr);
            if (rc < 0) {
                free(cm);
                free(parts);
                prep_free(it);
                return prep_error(q->custom_id, 400, "invalid_media", err.msg);
            }
            it->n_images = i + 1;
            /* the vision cache's key: the decoded pixels (the same picture in another file or format is
             * the same input) and the splitting that shapes the tiles */
            mp_featkey *key = &it->keys[i];
            mp_content_hash(key->h, img->data, (size_t)img->w * img->h * 3);
            key->size = (int64_t)img->w * img->h * 3;
            key->opts = ((uint64_t)(uint32_t)img->w << 32 | (uint32_t)img->h) * 4 + (uint64_t)(b->split + 1);
            if (mp_featcache_has(b->vcache, key)) continue; /* encoded before: no processor work */
            if (mp_vlm_preprocess(b->vlm, img, b->split, &it->tiles[i], &it->plans[i], &err) < 0) {
                free(cm);
                free(parts);
                prep_free(it);
                return prep_error(q->custom_id, 400, "invalid_media", err.msg);
            }
            mp_image_free(img); /* the tiles are what the main thread needs */
        }
        /* the chat with one "<image>" per image; the main thread expands it with the image rows */
        if (mp_vlm_render_chat(b->vlm, cm, k, &it->mm_prompt, &err) < 0) {
            snprintf(msg, sizeof msg, "%s", err.msg);
            goto bad;
        }
    } else {
        if (media.n != 1) {
            snprintf(msg, sizeof msg, "%s requests in batch mode take exactly one %s (got %d images/videos)",
                     b->vlm ? "SmolVLM video" : "Qwen2-VL", b->vlm ? "video" : "image or video", media.n);
            goto bad;
        }
        mp_media_ref mr;
        if (mp_media_resolve(media.url[0], b->base_dir, &mr, &err) < 0) {
            snprintf(msg, sizeof msg, "%s", err.msg);
            goto bad;
        }
        if (!mr.path) { /* data: URI: FFmpeg reads it from a private temporary file, removed with the item */
            const char *td = getenv("TMPDIR");
            char tmp[4096];
            snprintf(tmp, sizeof tmp, "%s/mmpipe-media-XXXXXX", td && *td ? td : "/tmp");
            int fd = mkstemp(tmp);
            size_t off = 0;
            while (fd >= 0 && off < mr.size) {
                ssize_t w = write(fd, mr.bytes + off, mr.size - off);
                if (w <= 0) break;
                off += (size_t)w;
            }
            if (fd >= 0) close(fd);
            if (fd < 0 || off != mr.size) {
                if (fd >= 0) unlink(tmp);
                snprintf(msg, sizeof msg, "%s: cannot write a temporary file for it in %s: %s", mr.name,
                         td && *td ? td : "/tmp", strerror(errno ? errno : EIO));
                mp_media_ref_free(&mr);
                goto bad;
            }
            snprintf(it->media_name, sizeof it->media_name, "%s", mr.name);
            mp_media_ref_free(&mr);
            if (!(it->media_path = strdup(tmp))) {
                unlink(tmp);
                snprintf(msg, sizeof msg, "out of memory");
                goto bad;
            }
            it->media_tmp = 1;
        } else {
            it->media_path = mr.path;
            mr.path = NULL;
            mp_media_ref_free(&mr);
        }
        /* the question: the text parts of the turn that holds the media */
        size_t len = 1;
        for (int m = 0; m < k; m++)
            for (int j = 0; j < cm[m].n_parts; j++)
                if (cm[m].parts[j].text) len += strlen(cm[m].parts[j].text) + 1;
        it->question = calloc(1, len);
        if (!it->question) {
            snprintf(msg, sizeof msg, "out of memory");
            goto bad;
        }
        for (int m = 0; m < k; m++) {
            int has_media = 0;
            for (int j = 0; j < cm[m].n_parts; j++) has_media |= cm[m].parts[j].text == NULL;
            if (!has_media) continue;
            for (int j = 0; j < cm[m].n_parts; j++) {
                if (!cm[m].parts[j].text) continue;
                if (it->question[0]) strcat(it->question, "\n");
                strcat(it->question, cm[m].parts[j].text);
            }
        }
        if (k > 1) {
            snprintf(msg, sizeof msg, "%s requests in batch mode take one user message (%s + question)",
                     b->vlm ? "SmolVLM video" : "Qwen2-VL", b->vlm ? "video" : "image/video");
            goto bad;
        }
    }
    free(cm);
    free(parts);
    return it;
bad:
    free(cm);
    free(parts);
    prep_free(it);
    return prep_error(q->custom_id, status, status >= 500 ? "internal_error" : "invalid_request", msg);
}

/* A SmolVLM vision-cache entry: an image's tile plan and its connector rows. */
typedef struct vis_entry {
    mp_idefics3_plan plan;
    float *rows; /* [plan.n_tiles * image_seq_len][n_embd], allocated with the entry */
} vis_entry;

typedef struct vis_new {
    const mp_featkey *key;
    mp_idefics3_plan plan;
    int tile0; /* its first tile in the group's encoder batch */
    int served; /* a request got it already: the others count as cache hits */
} vis_new;

static vis_new *find_new(vis_new *nw, int n, const mp_featkey *k) {
    for (int i = 0; i < n; i++)
        if (nw[i].key->h[0] == k->h[0] && nw[i].key->h[1] == k->h[1] && nw[i].key->size == k->size &&
            nw[i].key->opts == k->opts)
            return &nw[i];
    return NULL;
}

/* The SmolVLM requests gathered in b->vg: every image not in the vision cache (each distinct image once)
 * goes through the vision tower in one call (its tiles in batches), then each request's prompt is put
 * together from cached and new rows and submitted; the new rows join the cache last (a put may evict,
 * and the prompts hold no cache pointer by then). The vision tower is batch-invariant: a request gets the
 * same rows whichever requests share its group. */
static void vision_flush(batch_ctx *b, mp_engine *e) {
    const mp_idefics3_vision *v = &b->vlm->vis;
    const size_t per_tile = (size_t)3 * v->proc.tile * v->proc.tile;
    const size_t per_rows = (size_t)v->image_seq_len * v->n_embd_text;
    int n_img = 0;
    for (int j = 0; j < b->n_vg; j++) n_img += b->vg[j]->n_images;
    vis_new *nw = calloc((size_t)n_img + 1, sizeof *nw);
    char *failed = calloc((size_t)b->n_vg + 1, 1);
    float *pix = NULL, *rows = NULL;
    mp_error err;
    int n_new = 0, total = 0, enc_failed = 0;
    if (!nw || !failed) {
        for (int j = 0; j < b->n_vg; j++) put_error(b, b->vg[j]->custom_id, 500, "internal_error", "out of memory");
        goto done;
    }
    /* 1. the distinct images the cache does not hold */
    for (int j = 0; j < b->n_vg; j++) {
        prep_item *it = b->vg[j];
        for (int i = 0; i < it->n_images && !failed[j]; i++) {
            if (mp_featcache_has(b->vcache, &it->keys[i]) || find_new(nw, n_new, &it->keys[i])) continue;
            if (!it->tiles[i] && /* in the cache when prepared, evicted since */
                mp_vlm_preprocess(b->vlm, &it->images[i], b->split, &it->tiles[i], &it->plans[i], &err) < 0) {
                put_error(b, it->custom_id, 400, "invalid_media", err.msg);
                failed[j] = 1;
                break;
            }
            nw[n_new++] = (vis_new){&it->keys[i], it->plans[i], total, 0};
            total += it->plans[i].n_tiles;
        }
    }
    /* 2. their tiles through the vision tower, in one call */
    if (total > 0) {
        pix = malloc(sizeof(float) * per_tile * (size_t)total);
        rows = malloc(sizeof(float) * per_rows * (size_t)total);
        if (!pix || !rows) {
            mp_errf(&err, "out of memory for %d image tiles", total);
            enc_failed = 1;
        } else {
            for (int k = 0; k < n_new; k++) { /* the tiles of the item that brought the image first */
                for (int j = 0; j < b->n_vg; j++)
                    for (int i = 0; i < b->vg[j]->n_images; i++)
                        if (&b->vg[j]->keys[i] == nw[k].key)
                            memcpy(pix + (size_t)nw[k].tile0 * per_tile, b->vg[j]->tiles[i],
                                   sizeof(float) * per_tile * (size_t)nw[k].plan.n_tiles);
            }
            double t = now_s();
            mp_idefics3_timing tm = {0};
            enc_failed = mp_idefics3_encode(v, &b->vst, b->ex, pix, total, rows, &tm, &err) < 0;
            b->t_vision += now_s() - t;
        }
        free(pix);
        pix = NULL;
    }
    /* 3. each request's prompt from its images' rows */
    for (int j = 0; j < b->n_vg; j++) {
        prep_item *it = b->vg[j];
        if (failed[j]) continue;
        int n_rows = 0, fresh = 0, needs_new = 0, lost = 0, rc = -1;
        mp_idefics3_plan plans[MAX_MEDIA];
        const float *src[MAX_MEDIA];
        for (int i = 0; i < it->n_images; i++) {
            vis_new *w = find_new(nw, n_new, &it->keys[i]);
            if (w) {
                plans[i] = w->plan;
                src[i] = rows ? rows + (size_t)w->tile0 * per_rows : NULL;
                fresh += !w->served;
                needs_new = 1;
                w->served = 1;
            } else {
                const vis_entry *ve = mp_featcache_get(b->vcache, &it->keys[i]);
                if (!ve) { /* cannot happen: only a put evicts, and puts come last */
                    lost = 1;
                    break;
                }
                plans[i] = ve->plan;
                src[i] = ve->rows;
            }
            n_rows += plans[i].n_tiles;
        }
        if ((needs_new && enc_failed) || lost) {
            put_error(b, it->custom_id, 500, "internal_error", lost ? "vision cache entry lost" : err.msg);
            continue;
        }
        float *img_rows = malloc(sizeof(float) * per_rows * (size_t)(n_rows > 0 ? n_rows : 1));
        mp_vlm_prompt pp;
        memset(&pp, 0, sizeof pp);
        mp_error e2;
        if (!img_rows) {
            mp_errf(&e2, "out of memory");
        } else {
            for (int i = 0, r = 0; i < it->n_images; i++) {
                memcpy(img_rows + (size_t)r * per_rows, src[i], sizeof(float) * per_rows * (size_t)plans[i].n_tiles);
                r += plans[i].n_tiles;
            }
            if (mp_vlm_prompt_assemble(b->vlm, it->mm_prompt, plans, it->n_images, img_rows, &pp, &e2) == 0) {
                mp_vlm_prompt_to_request(&pp, &it->r);
                it->r.user = it->rs;
                rc = mp_engine_submit(e, &it->r, &e2);
            }
        }
        free(img_rows);
        mp_vlm_prompt_free(&pp);
        if (rc < 0) {
            put_error(b, it->custom_id, 400, "invalid_request", e2.msg);
        } else {
            it->rs = NULL; /* the engine's callback frees it */
            b->mm_encoded += fresh;
            b->mm_cached += it->n_images - fresh;
        }
    }
    /* 4. the new rows join the cache */
    for (int k = 0; k < n_new && rows && !enc_failed; k++) {
        size_t bytes = sizeof(float) * per_rows * (size_t)nw[k].plan.n_tiles;
        vis_entry *ve = malloc(sizeof *ve + bytes);
        if (!ve) break;
        ve->plan = nw[k].plan;
        ve->rows = (float *)(ve + 1);
        memcpy(ve->rows, rows + (size_t)nw[k].tile0 * per_rows, bytes);
        mp_featcache_put(b->vcache, nw[k].key, ve, sizeof *ve + bytes, free);
    }
done:
    for (int j = 0; j < b->n_vg; j++) prep_free(b->vg[j]);
    b->n_vg = 0;
    b->vg_tiles = 0;
    free(nw);
    free(failed);
    free(rows);
}

/* Main side: the vision tower (batched over the request's tiles / frames; Qwen2-VL media cached by
 * content hash), then into the engine. */
static void consume_mm(batch_ctx *b, mp_engine *e, prep_item *it) {
    mp_error err;
    int rc = -1;
    it->r.user = it->rs;
    if (!it->media_path) { /* SmolVLM images: joins the vision group; vision_flush encodes and submits */
        for (int i = 0; i < it->n_images; i++)
            if (it->tiles[i]) b->vg_tiles += it->plans[i].n_tiles;
        b->vg[b->n_vg++] = it;
        if (b->n_vg == VG_MAX || b->vg_tiles >= b->vg_batch) vision_flush(b, e);
        return;
    } else {
        mp_vqa_request vr;
        memset(&vr, 0, sizeof vr);
        double t_vis = now_s(); /* media decode + vision tower when not cached, prompt */
        int built = mp_vqa_request_build(b->vqa, b->ex, it->media_path, &b->vqa_opts, it->question, &vr, &err);
        b->t_vision += now_s() - t_vis;
        if (built == 0) {
            vr.req.sampling = it->r.sampling;
            vr.req.max_new = it->r.max_new;
            vr.req.ignore_eos = it->r.ignore_eos;
            vr.req.top_logprobs = it->r.top_logprobs;
            vr.req.n_stop = it->r.n_stop;
            for (int i = 0; i < it->r.n_stop; i++) vr.req.stop[i] = it->r.stop[i];
            vr.req.user = it->rs;
            if (vr.cached) b->mm_cached++;
            else b->mm_encoded++;
            rc = mp_engine_submit(e, &vr.req, &err);
        }
        mp_vqa_request_free(&vr);
    }
    if (rc < 0) {
        const char *tp = it->media_tmp ? strstr(err.msg, it->media_path) : NULL;
        if (tp) { /* name the data: URI, not the temporary file */
            char m2[sizeof err.msg];
            snprintf(m2, sizeof m2, "%.*s%s%s", (int)(tp - err.msg), err.msg, it->media_name, tp + strlen(it->media_path));
            snprintf(err.msg, sizeof err.msg, "%s", m2);
        }
        put_error(b, it->custom_id, 400, "invalid_request", err.msg);
    } else {
        it->rs = NULL; /* the engine's callback frees it */
    }
    prep_free(it);
}

/* Worker side of a chat/completion request: template, tokens, sampling parameters. */
static prep_item *prepare_gen(batch_ctx *b, mp_request *q) {
    char msg[1024];
    int status = 400;
    char *prompt = NULL;
    prep_item *it = NULL;
    if (!b->tok) {
        snprintf(msg, sizeof msg, "this run has no text model for %s (give one with -m)",
                 q->kind == MP_REQ_CHAT ? "/v1/chat/completions" : "/v1/completions");
        return prep_error(q->custom_id, 400, "model_not_found", msg);
    }
    if (q->model && strcmp(q->model, b->model_name) != 0 && strcmp(q->model, b->model_path) != 0) {
        snprintf(msg, sizeof msg, "this run serves model \"%s\"; the request asks for \"%s\"", b->model_name, q->model);
        return prep_error(q->custom_id, 400, "model_not_found", msg);
    }
    int add_special = 0;
    if (q->kind == MP_REQ_CHAT && (b->vlm || b->vqa)) return prepare_mm(b, q);
    if (q->kind == MP_REQ_CHAT) {
        if (render_chat(b, q->body, &prompt, &status, msg, sizeof msg) < 0) goto bad;
    } else {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(q->body, "prompt");
        if (!cJSON_IsString(p)) {
            snprintf(msg, sizeof msg, "\"prompt\" must be a string");
            goto bad;
        }
        prompt = strdup(p->valuestring);
        add_special = 1; /* a raw prompt gets BOS like `mmpipe generate` */
    }
    it = prep_new(IT_GEN, q->custom_id);
    if (!it || !prompt) {
        snprintf(msg, sizeof msg, "out of memory");
        status = 500;
        goto bad;
    }
    mp_gen_request *r = &it->r;
    if (parse_params(b, q->custom_id, q->body, r, msg, sizeof msg) < 0) goto bad;
    for (int i = 0; i < r->n_stop; i++) { /* the request's strings go with it; keep copies */
        if (!(it->stop_copy[i] = strdup(r->stop[i]))) {
            snprintf(msg, sizeof msg, "out of memory");
            status = 500;
            goto bad;
        }
        r->stop[i] = it->stop_copy[i];
    }
    int n = tokenize_all(b->tok, prompt, add_special, &it->ids);
    if (n < 0) {
        snprintf(msg, sizeof msg, "could not tokenize the prompt");
        goto bad;
    }
    if (n == 0) {
        int32_t bos = mp_tokenizer_bos(b->tok);
        if (bos < 0) {
            snprintf(msg, sizeof msg, "empty prompt and the model has no BOS token");
            goto bad;
        }
        it->ids[n++] = bos;
    }
    it->rs = calloc(1, sizeof *it->rs);
    if (!it->rs || !(it->rs->custom_id = strdup(q->custom_id))) {
        snprintf(msg, sizeof msg, "out of memory");
        status = 500;
        goto bad;
    }
    it->rs->kind = q->kind;
    it->rs->logprobs = r->top_logprobs > 0;
    r->n = n;
    r->tokens = it->ids;
    free(prompt);
    return it;
bad:
    free(prompt);
    prep_free(it);
    return prep_error(q->custom_id, status, status >= 500 ? "internal_error" : "invalid_request", msg);
}

/* Main side: into the engine (which copies what it keeps), or an error record. */
static void consume_gen(batch_ctx *b, mp_engine *e, prep_item *it) {
    mp_error err;
    it->r.user = it->rs;
    if (mp_engine_submit(e, &it->r, &err) < 0) {
        put_error(b, it->custom_id, 500, "internal_error", err.msg);
    } else {
        it->rs = NULL; /* the engine's callback frees it */
    }
    prep_free(it);
}

static prep_item *prepare(batch_ctx *b, mp_request *q) {
    return q->kind == MP_REQ_TRANSCRIBE ? prepare_asr(b, q) : prepare_gen(b, q);
}

static void consume(batch_ctx *b, mp_engine *e, prep_item *it) {
    switch (it->kind) {
    case IT_ERROR:
        put_error(b, it->custom_id, it->status, it->code, it->msg ? it->msg : "out of memory");
        prep_free(it);
        break;
    case IT_GEN: consume_gen(b, e, it); break;
    case IT_ASR: consume_asr(b, it); break;
    case IT_MM: consume_mm(b, e, it); break;
    default: prep_free(it);
    }
}

/* The preparing thread: reads and prepares until the end of the input or a stop. */
static void *prepare_thread(void *arg) {
    batch_ctx *b = arg;
    for (;;) {
        if (g_stop) break;
        mp_request q;
        char *bad_id = NULL;
        mp_error err;
        int r = mp_req_reader_next(b->rd, &q, &bad_id, &err);
        if (r == 0) break;
        b->n_read++;
        prep_item *it = NULL;
        if (r < 0) {
            if (!bad_id && b->rd->line_no == 0) { /* read error */
                b->read_failed = 1;
                b->read_err = err;
                break;
            }
            if (bad_id && (!mp_shard_owns(b->sh, bad_id) || mp_idset_has(b->done, bad_id))) {
                free(bad_id);
                continue;
            }
            if (!bad_id && b->sh->index != 0) continue; /* id-less bad lines are reported by shard 0 only */
            it = prep_error(bad_id, 400, "invalid_request", err.msg);
            free(bad_id);
        } else {
            if (!mp_shard_owns(b->sh, q.custom_id)) {
                b->n_other_shard++;
            } else if (mp_idset_has(b->done, q.custom_id)) {
                b->n_skipped++;
            } else if (mp_idset_add(&b->seen, q.custom_id) == 0) {
                b->n_dup++;
                fprintf(stderr, "mmpipe batch: %s:%lld: duplicate custom_id \"%s\" skipped (its first occurrence is processed)\n",
                        b->rd->path, (long long)q.line_no, q.custom_id);
            } else {
                it = prepare(b, &q);
                if (!it) it = prep_error(q.custom_id, 500, "internal_error", "out of memory");
            }
            mp_request_free(&q);
        }
        if (it && queue_push(&b->q, it) < 0) { /* stopped: not started, --resume redoes it */
            prep_free(it);
            break;
        }
    }
    prep_item *eof = prep_new(IT_EOF, NULL);
    if (!eof || queue_push(&b->q, eof) < 0) {
        free(eof);
        queue_stop(&b->q); /* the main thread sees the stop instead */
    }
    return NULL;
}

/* ---------------------------------------------------------------- results */

static cJSON *logprobs_json(const mp_tokenizer *tok, const mp_gen_result *res, int chat) {
    cJSON *lp = cJSON_CreateObject();
    cJSON *content = cJSON_AddArrayToObject(lp, chat ? "content" : "tokens_detail");
    for (int i = 0; i < res->n_tokens; i++) {
        char piece[256];
        int pl = mp_token_to_bytes(tok, res->tokens[i], piece, sizeof piece - 1);
        piece[pl > 0 ? pl : 0] = 0;
        cJSON *t = cJSON_CreateObject();
        cJSON_AddStringToObject(t, "token", piece);
        cJSON_AddNumberToObject(t, "logprob", res->logprobs[i]);
        cJSON *top = cJSON_AddArrayToObject(t, "top_logprobs");
        for (int k = 0; k < res->top_k; k++) {
            int32_t id = res->top_ids[(size_t)i * res->top_k + k];
            pl = mp_token_to_bytes(tok, id, piece, sizeof piece - 1);
            piece[pl > 0 ? pl : 0] = 0;
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "token", piece);
            cJSON_AddNumberToObject(o, "logprob", res->top_logprobs[(size_t)i * res->top_k + k]);
            cJSON_AddItemToArray(top, o);
        }
        cJSON_AddItemToArray(content, t);
    }
    return lp;
}

static void on_done(void *ctx, const mp_gen_result *res) {
    batch_ctx *b = ctx;
    req_state *rs = res->user;
    if (!strcmp(res->finish_reason, "cancelled")) {
        /* stopped by a signal: no record, so --resume runs it again */
    } else if (!res->ok) {
        put_error(b, rs->custom_id, 400, "invalid_request", res->error);
    } else {
        int chat = rs->kind == MP_REQ_CHAT;
        cJSON *body = cJSON_CreateObject();
        char id[64];
        snprintf(id, sizeof id, "%s-%016llx", chat ? "chatcmpl" : "cmpl", (unsigned long long)mp_id_hash(rs->custom_id));
        cJSON_AddStringToObject(body, "id", id);
        cJSON_AddStringToObject(body, "object", chat ? "chat.completion" : "text_completion");
        cJSON_AddNumberToObject(body, "created", (double)time(NULL));
        cJSON_AddStringToObject(body, "model", b->model_name);
        cJSON *choices = cJSON_AddArrayToObject(body, "choices");
        cJSON *c = cJSON_CreateObject();
        cJSON_AddNumberToObject(c, "index", 0);
        if (chat) {
            cJSON *m = cJSON_AddObjectToObject(c, "message");
            cJSON_AddStringToObject(m, "role", "assistant");
            cJSON_AddStringToObject(m, "content", res->text);
        } else {
            cJSON_AddStringToObject(c, "text", res->text);
        }
        if (rs->logprobs && res->logprobs) cJSON_AddItemToObject(c, "logprobs", logprobs_json(b->tok, res, chat));
        else cJSON_AddNullToObject(c, "logprobs");
        cJSON_AddStringToObject(c, "finish_reason", res->finish_reason);
        cJSON_AddItemToArray(choices, c);
        cJSON *u = cJSON_AddObjectToObject(body, "usage");
        cJSON_AddNumberToObject(u, "prompt_tokens", res->n_prompt);
        cJSON_AddNumberToObject(u, "completion_tokens", res->n_tokens);
        cJSON_AddNumberToObject(u, "total_tokens", res->n_prompt + res->n_tokens);
        put_line(b, mp_result_ok(rs->custom_id, body));
        b->n_ok++;
        b->tokens_out += res->n_tokens;
    }
    free(rs->custom_id);
    free(rs);
}

/* ---------------------------------------------------------------- progress */

/* The total for the progress line: a second reader goes through the requests file while the run goes on
 * and counts what this run will do (its shard, not already in the output, first occurrences); until it
 * is through, the line shows no total and no ETA. */
typedef struct req_counter {
    mp_req_reader rd;
    const mp_shard *sh;
    const mp_idset *done;
    _Atomic int64_t total;
    _Atomic int ready, quit;
} req_counter;

static void *count_thread(void *arg) {
    req_counter *c = arg;
    mp_idset seen = {0};
    int64_t n = 0;
    for (;;) {
        mp_request q;
        char *bad_id = NULL;
        mp_error err;
        int r = mp_req_reader_next(&c->rd, &q, &bad_id, &err);
        if (r == 0 || g_stop || atomic_load(&c->quit)) break;
        if (r < 0) {
            if (!bad_id && c->rd.line_no == 0) break; /* read error: the main reader reports it */
            n += bad_id ? mp_shard_owns(c->sh, bad_id) && !mp_idset_has(c->done, bad_id) : c->sh->index == 0;
            free(bad_id);
            continue;
        }
        if (mp_shard_owns(c->sh, q.custom_id) && !mp_idset_has(c->done, q.custom_id) && mp_idset_add(&seen, q.custom_id) != 0)
            n++;
        mp_request_free(&q);
    }
    mp_idset_free(&seen);
    atomic_store(&c->total, n);
    atomic_store(&c->ready, 1);
    return NULL;
}

static req_counter *g_counter; /* the progress line's total, when counted */

static void progress(batch_ctx *b, mp_engine *e, double t0, int tty, int final) {
    static double last = 0;
    double t = now_s();
    if (!final && t - last < (tty ? 0.2 : 5.0)) return;
    last = t;
    double el = t - t0 + 1e-9;
    int64_t done = b->n_ok + b->n_err;
    char total[32] = "", eta[48] = "";
    if (g_counter && atomic_load(&g_counter->ready)) {
        int64_t t = atomic_load(&g_counter->total);
        snprintf(total, sizeof total, "/%lld", (long long)t);
        if (!final && done > 0 && t > done) {
            double s = (double)(t - done) / (done / el);
            if (s < 3600) snprintf(eta, sizeof eta, ", ETA %dm%02ds", (int)s / 60, (int)s % 60);
            else snprintf(eta, sizeof eta, ", ETA %dh%02dm", (int)(s / 3600), (int)(s / 60) % 60);
        }
    }
    fprintf(stderr, "%smmpipe batch: %lld%s done (%lld errors), %d in flight, %.2f req/s, %.1f tok/s, %.1f s audio, %.0f s%s%s",
            tty && !final ? "\r" : "", (long long)done, total, (long long)b->n_err,
            (e ? mp_engine_pending(e) : 0) + b->n_pend + b->n_vg, done / el, b->tokens_out / el, b->audio_s, el, eta,
            tty && !final ? "   " : "\n");
    fflush(stderr);
}

/* --stats: the run's numbers. busy = the compute stages' own time (vision tower, decoder steps, Whisper
 * groups; all on the main thread) over the wall time of the run. */
static void write_stats(batch_ctx *b, mp_engine *e, const char *path, double wall) {
    mp_engine_stats es;
    memset(&es, 0, sizeof es);
    if (e) mp_engine_get_stats(e, &es);
    mp_featcache_stats vs;
    memset(&vs, 0, sizeof vs);
    if (b->vcache) mp_featcache_get_stats(b->vcache, &vs);
    double busy = b->t_vision + b->t_decoder + b->t_asr;
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "mmpipe batch: %s: %s (stats not written)\n", path, strerror(errno));
        return;
    }
    fprintf(f,
            "{\"wall_s\": %.6f, \"busy_s\": %.6f, \"busy\": %.4f, \"vision_s\": %.6f, \"decoder_s\": %.6f, "
            "\"asr_s\": %.6f, \"forward_s\": %.6f, \"ok\": %lld, \"errors\": %lld, \"gen_tokens\": %lld, "
            "\"prefill_tokens\": %lld, \"decode_tokens\": %lld, \"steps\": %lld, \"max_running\": %d, "
            "\"media_encoded\": %lld, \"media_cached\": %lld, \"vision_cache_bytes\": %zu, "
            "\"vision_cache_evictions\": %lld, \"audio_s\": %.3f, \"asr_cached\": %lld}\n",
            wall, busy, wall > 0 ? busy / wall : 0, b->t_vision, b->t_decoder, b->t_asr, es.t_forward,
            (long long)b->n_ok, (long long)b->n_err, (long long)b->tokens_out, (long long)es.prefill_tokens,
            (long long)es.decode_tokens, (long long)es.steps, es.max_running, (long long)b->mm_encoded,
            (long long)b->mm_cached, vs.bytes, (long long)vs.evictions, b->audio_s, (long long)b->cache.hits);
    if (fclose(f) != 0) fprintf(stderr, "mmpipe batch: %s: write error (stats)\n", path);
}

/* ---------------------------------------------------------------- models */

/* 1 if the resolved model path is a Whisper model (whisper.cpp ggml .bin, or an HF folder whose
 * config.json says model_type "whisper"), 0 otherwise. */
static int is_whisper_model(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) return 0;
    if (S_ISDIR(st.st_mode)) {
        char cfg[4200];
        snprintf(cfg, sizeof cfg, "%s/config.json", path);
        mp_json j;
        mp_error err;
        if (mp_json_load_optional(&j, cfg, &err) < 0 || !mp_json_present(&j)) return 0;
        const char *mt = NULL;
        mp_json_str_or(&j, "model_type", "", &mt, &err);
        int w = mt && !strcmp(mt, "whisper");
        mp_json_free(&j);
        return w;
    }
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    unsigned char m[4] = {0};
    size_t n = fread(m, 1, 4, f);
    fclose(f);
    return n == 4 && m[0] == 'l' && m[1] == 'm' && m[2] == 'g' && m[3] == 'g'; /* 0x67676d6c little-endian */
}

enum { MODEL_TEXT, MODEL_SMOLVLM, MODEL_QWEN2VL };

/* What kind of decoder model a resolved path is: an HF folder by its config.json's model_type, a GGUF
 * by its mmproj's clip.projector_type (when --mmproj is given). */
static int decoder_kind(const char *path, const char *mmproj, mp_error *err) {
    const char *mt = NULL;
    int kind = MODEL_TEXT;
    if (mmproj) {
        mp_gguf *g = NULL;
        if (mp_gguf_open(&g, mmproj, err) < 0) return -1;
        const char *pt = NULL;
        mp_error e2;
        if (mp_gguf_get_str(g, "clip.projector_type", &pt, &e2) < 0) pt = "";
        if (!strcmp(pt, "idefics3")) kind = MODEL_SMOLVLM;
        else if (!strcmp(pt, "qwen2vl_merger") || !strcmp(pt, "qwen2.5vl_merger")) kind = MODEL_QWEN2VL;
        else kind = -2;
        mp_gguf_free(g);
        if (kind == -2) return mp_errf(err, "%s: projector type \"%s\" is not supported (idefics3, qwen2vl_merger, qwen2.5vl_merger)", mmproj, pt);
        return kind;
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) return MODEL_TEXT;
    char cfg[4200];
    snprintf(cfg, sizeof cfg, "%s/config.json", path);
    mp_json j;
    if (mp_json_load_optional(&j, cfg, err) < 0) return -1;
    if (!mp_json_present(&j)) return MODEL_TEXT;
    mp_json_str_or(&j, "model_type", "", &mt, err);
    if (mt && (!strcmp(mt, "idefics3") || !strcmp(mt, "smolvlm"))) kind = MODEL_SMOLVLM;
    else if (mt && (!strcmp(mt, "qwen2_vl") || !strcmp(mt, "qwen2_5_vl"))) kind = MODEL_QWEN2VL;
    mp_json_free(&j);
    return kind;
}

/* ---------------------------------------------------------------- --task shorthand
 * `--task transcribe|caption DIR_OR_GLOB...` writes one request per matching file into a temporary JSONL
 * (custom_id = the path) that is then streamed like any requests file. */

static const char *const AUDIO_EXT[] = {"wav", "flac", "mp3", "ogg", "oga", "opus", "m4a", "aac", "aif", "aiff", "wma", "webm", "mp4", "mkv", "mov", NULL};
static const char *const IMAGE_EXT[] = {"jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff", NULL};
static const char *const *g_task_ext;
static FILE *g_task_out;
static const char *g_task_prompt;
static int g_task_kind; /* MP_REQ_TRANSCRIBE or MP_REQ_CHAT */
static int64_t g_task_n;

static int has_ext(const char *path, const char *const *ext) {
    const char *dot = strrchr(path, '.');
    if (!dot || strchr(dot, '/')) return 0;
    for (int i = 0; ext[i]; i++)
        if (!strcasecmp(dot + 1, ext[i])) return 1;
    return 0;
}

static int task_emit(const char *path) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "custom_id", path);
    cJSON_AddStringToObject(o, "method", "POST");
    cJSON *body;
    if (g_task_kind == MP_REQ_TRANSCRIBE) {
        cJSON_AddStringToObject(o, "url", "/v1/audio/transcriptions");
        body = cJSON_AddObjectToObject(o, "body");
        cJSON_AddStringToObject(body, "file", path);
    } else {
        cJSON_AddStringToObject(o, "url", "/v1/chat/completions");
        body = cJSON_AddObjectToObject(o, "body");
        cJSON *msgs = cJSON_AddArrayToObject(body, "messages");
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "role", "user");
        cJSON *c = cJSON_AddArrayToObject(m, "content");
        cJSON *img = cJSON_CreateObject();
        cJSON_AddStringToObject(img, "type", "image_url");
        cJSON *u = cJSON_AddObjectToObject(img, "image_url");
        cJSON_AddStringToObject(u, "url", path);
        cJSON_AddItemToArray(c, img);
        cJSON *txt = cJSON_CreateObject();
        cJSON_AddStringToObject(txt, "type", "text");
        cJSON_AddStringToObject(txt, "text", g_task_prompt);
        cJSON_AddItemToArray(c, txt);
        cJSON_AddItemToArray(msgs, m);
    }
    char *line = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!line) return -1;
    int rc = fprintf(g_task_out, "%s\n", line) < 0 ? -1 : 0;
    free(line);
    g_task_n++;
    return rc;
}

static int task_walk(const char *path, const struct stat *st, int type, struct FTW *fw) {
    (void)st;
    (void)fw;
    if (type == FTW_F && has_ext(path, g_task_ext)) return task_emit(path) < 0 ? 1 : 0;
    return 0;
}

/* Writes the requests of --task for the inputs into a temporary file; *path gets its name. */
static int task_requests(const char *task, const char *prompt, char **inputs, int n_inputs, char *path, size_t cap,
                         mp_error *err) {
    if (!strcmp(task, "transcribe")) g_task_kind = MP_REQ_TRANSCRIBE, g_task_ext = AUDIO_EXT;
    else if (!strcmp(task, "caption")) g_task_kind = MP_REQ_CHAT, g_task_ext = IMAGE_EXT;
    else return mp_errf(err, "--task %s: unknown task (caption, transcribe)", task);
    g_task_prompt = prompt ? prompt : "Describe this image.";
    const char *tmp = getenv("TMPDIR");
    snprintf(path, cap, "%s/mmpipe-batch-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    int fd = mkstemp(path);
    if (fd < 0) return mp_errf(err, "%s: %s", path, strerror(errno));
    g_task_out = fdopen(fd, "w");
    if (!g_task_out) {
        close(fd);
        unlink(path);
        return mp_errf(err, "%s: %s", path, strerror(errno));
    }
    int rc = 0;
    for (int i = 0; i < n_inputs && rc == 0; i++) {
        struct stat st;
        if (stat(inputs[i], &st) == 0 && S_ISDIR(st.st_mode)) {
            if (nftw(inputs[i], task_walk, 16, FTW_PHYS) != 0) rc = mp_errf(err, "%s: cannot list: %s", inputs[i], strerror(errno));
        } else if (stat(inputs[i], &st) == 0) {
            rc = task_emit(inputs[i]) < 0 ? mp_errf(err, "%s: cannot write", path) : 0; /* a file named as such */
        } else {
            glob_t g;
            int gr = glob(inputs[i], 0, NULL, &g);
            if (gr == GLOB_NOMATCH) {
                rc = mp_errf(err, "%s: no such file, directory or matching files", inputs[i]);
            } else if (gr != 0) {
                rc = mp_errf(err, "%s: bad pattern", inputs[i]);
            } else {
                for (size_t k = 0; k < g.gl_pathc && rc == 0; k++)
                    if (stat(g.gl_pathv[k], &st) == 0 && S_ISREG(st.st_mode) && task_emit(g.gl_pathv[k]) < 0)
                        rc = mp_errf(err, "%s: cannot write", path);
                globfree(&g);
            }
        }
    }
    if (fclose(g_task_out) != 0 && rc == 0) rc = mp_errf(err, "%s: %s", path, strerror(errno));
    if (rc == 0 && g_task_n == 0) rc = mp_errf(err, "--task %s: no %s files found", task, g_task_kind == MP_REQ_TRANSCRIBE ? "audio" : "image");
    if (rc) unlink(path);
    return rc;
}

/* ---------------------------------------------------------------- main */

/* The decoder every chat/completion request goes to. */
static const mp_llama *use_decoder(batch_ctx *b, const mp_llama *llm, const mp_tokenizer *tok, const char *tmpl,
                                   const mp_sampler_params *sampling, const char *path) {
    b->tok = tok;
    b->chat_template = tmpl;
    b->sampling = *sampling;
    b->model_path = path;
    return llm;
}

static int engine_pending(mp_engine *e) { return e ? mp_engine_pending(e) : 0; }

int cmd_batch(int argc, char **argv) {
    const char *models[2] = {NULL, NULL}, *out = NULL, *tok_path = NULL, *mmproj = NULL, *shard_spec = NULL, *task = NULL,
               *prompt = NULL;
    char *inputs[256];
    int n_models = 0, n_inputs = 0;
    int resume = 0, force_progress = 0;
    double grace = 30;
    mp_engine_params ep = mp_engine_default_params();
    cli_common cc = {0, MMPIPE_DEVICE_AUTO};
    batch_ctx b;
    memset(&b, 0, sizeof b);
    b.default_max_tokens = 512;
    b.asr_group = 8;
    b.asr_p = mp_whisper_default_params();
    b.asr_p.suppress_nst = 0; /* whisper-cli's default, as `mmpipe transcribe` */
    b.vqa_opts = mp_vqa_default_opts();
    int fps_set = 0, mf_set = 0;
    b.split = -1;
    long vision_cache_mb = 1024;
    const char *stats_path = NULL;
    for (int i = 1; i < argc;) {
        int r = cli_parse_common(&cc, argc, argv, &i);
        if (r < 0) return 2;
        if (r > 0) continue;
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--resume")) { resume = 1; i++; continue; }
        if (!strcmp(a, "--progress")) { force_progress = 1; i++; continue; }
        if (!strcmp(a, "-nf") || !strcmp(a, "--no-fallback")) { b.asr_p.temperature_inc = 0; i++; continue; }
        if (a[0] != '-' || !strcmp(a, "-")) {
            if (n_inputs == (int)(sizeof inputs / sizeof *inputs)) {
                fprintf(stderr, "mmpipe batch: too many inputs\n");
                return 2;
            }
            inputs[n_inputs++] = argv[i];
            i++;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "mmpipe batch: %s needs a value (see --help)\n", a);
            return 2;
        }
        const char *v = argv[i + 1];
        char *end;
        long n = strtol(v, &end, 10);
        int num_ok = *v && !*end;
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (n_models == 2) {
                fprintf(stderr, "mmpipe batch: at most two models (-m): one text/vision-language model and one Whisper model\n");
                return 2;
            }
            models[n_models++] = v;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) out = v;
        else if (!strcmp(a, "--tokenizer")) tok_path = v;
        else if (!strcmp(a, "--mmproj")) mmproj = v;
        else if (!strcmp(a, "--shard")) shard_spec = v;
        else if (!strcmp(a, "--task")) task = v;
        else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) prompt = v;
        else if (!strcmp(a, "--max-seqs") && num_ok && n >= 1 && n <= 4096) ep.max_seqs = (int)n;
        else if (!strcmp(a, "--step-tokens") && num_ok && n >= 1 && n <= 1 << 20) ep.step_tokens = (int)n;
        else if (!strcmp(a, "--max-tokens") && num_ok && n >= 1 && n <= 1 << 24) b.default_max_tokens = (int)n;
        else if (!strcmp(a, "--asr-batch") && num_ok && n >= 1 && n <= ASR_MAX_GROUP) b.asr_group = (int)n;
        else if ((!strcmp(a, "-bs") || !strcmp(a, "--beam-size")) && num_ok && n >= 1 && n <= 64) b.asr_p.beam_size = (int)n;
        else if ((!strcmp(a, "-bo") || !strcmp(a, "--best-of")) && num_ok && n >= 1 && n <= 64) b.asr_p.best_of = (int)n;
        else if (!strcmp(a, "--grace") && num_ok && n >= 0) grace = (double)n;
        else if (!strcmp(a, "--max-frames") && num_ok && n >= 1 && n <= 4096) b.vqa_opts.max_frames = (int)n, mf_set = 1;
        else if (!strcmp(a, "--image-splitting") && num_ok && n >= 0 && n <= 1) b.split = (int)n;
        else if (!strcmp(a, "--vision-cache-mb") && num_ok && n >= 0 && n <= 1 << 24) vision_cache_mb = n;
        else if (!strcmp(a, "--stats")) stats_path = v;
        else if (!strcmp(a, "--fps") && atof(v) > 0 && atof(v) <= 240) b.vqa_opts.fps = atof(v), fps_set = 1;
        else {
            fprintf(stderr, "mmpipe batch: unknown option or bad value: %s %s\n", a, v);
            return 2;
        }
        i += 2;
    }
    if (!n_models || !out || !n_inputs || (!task && n_inputs > 1)) {
        if (!task && n_inputs > 1) fprintf(stderr, "mmpipe batch: one requests file per run (or --task with files/folders)\n");
        usage(stderr);
        return 2;
    }
    mp_error err;
    mp_shard sh;
    if (mp_shard_resolve(&sh, shard_spec, &err) < 0) {
        fprintf(stderr, "mmpipe batch: %s\n", err.msg);
        return 2;
    }
    char out_path[4096];
    mp_shard_output_name(&sh, out, out_path, sizeof out_path);
    char task_path[4096] = "";
    const char *in = inputs[0];
    if (task) {
        if (task_requests(task, prompt, inputs, n_inputs, task_path, sizeof task_path, &err) < 0) {
            fprintf(stderr, "mmpipe batch: %s\n", err.msg);
            return 2;
        }
        in = task_path;
    } else if (strcmp(in, "-") != 0) { /* media paths in requests are relative to the requests file */
        const char *sl = strrchr(in, '/');
        if (sl) snprintf(b.base_dir, sizeof b.base_dir, "%.*s", (int)(sl - in), in);
    }

    /* from here on SIGINT/SIGTERM stop the run gracefully (also while the model loads) */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    int rc = 2;
    mp_threadpool *tp = mp_threadpool_create(cc.n_threads);
    mp_exec ex;
    mp_textmodel tm;
    mp_whisper wm;
    mp_whisper_ctx wc;
    mp_engine *e = NULL;
    mp_req_reader rd;
    memset(&rd, 0, sizeof rd);
    int ex_ok = 0, tm_ok = 0, wm_ok = 0, wc_ok = 0, w_ok = 0, prep_started = 0, vqa_ok = 0;
    mp_vqa vqa;
    pthread_t prep_tid;
    mp_idset done = {0};
    int64_t n_done = 0;
    req_counter *counter = NULL;
    pthread_t count_tid;
    int count_started = 0;
    double t0 = now_s();
    if (mp_req_reader_open(&rd, in, &err) < 0) goto fail;
    struct stat in_st;
    if (strcmp(in, "-") != 0 && stat(in, &in_st) == 0 && S_ISREG(in_st.st_mode)) {
        mp_error e2;
        counter = calloc(1, sizeof *counter);
        if (counter && mp_req_reader_open(&counter->rd, in, &e2) < 0) {
            free(counter);
            counter = NULL;
        }
    }
    if (task_path[0]) unlink(task_path); /* open: the file goes when we close it */
    if (mp_res_writer_open(&b.w, out_path, resume, &done, &n_done, &err) < 0) goto fail;
    w_ok = 1;
    if (counter) {
        counter->sh = &sh;
        counter->done = &done;
        if (pthread_create(&count_tid, NULL, count_thread, counter) == 0) {
            count_started = 1;
            g_counter = counter;
        }
    }
    if (n_done) fprintf(stderr, "mmpipe batch: resuming %s: %lld results already there\n", out_path, (long long)n_done);
    if (mp_exec_init(&ex, cc.device, tp, (size_t)64 << 20, &err) < 0) goto fail;
    ex_ok = 1;
    b.ex = &ex;
    b.bos_text = b.eos_text = "";
    for (int k = 0; k < n_models; k++) {
        char path[4096];
        mp_hub_opts ho;
        mp_hub_default_opts(&ho);
        if (mp_model_resolve(models[k], &ho, path, sizeof path, &err) < 0) goto fail;
        if (is_whisper_model(path)) {
            if (wm_ok) {
                mp_errf(&err, "two Whisper models given (%s, %s): one per run", b.asr_name, models[k]);
                goto fail;
            }
            if (mp_whisper_load(&wm, path, &ex, &err) < 0) goto fail;
            wm_ok = 1;
            if (mp_whisper_ctx_init(&wc, &wm, &ex, &err) < 0) goto fail;
            wc_ok = 1;
            b.asr = &wm;
            b.asr_ctx = &wc;
            b.asr_name = models[k];
        } else {
            if (b.model_name) {
                mp_errf(&err, "two text models given (%s, %s): one per run", b.model_name, models[k]);
                goto fail;
            }
            int kind = decoder_kind(path, mmproj, &err);
            if (kind < 0) goto fail;
            const mp_llama *llm;
            if (kind == MODEL_SMOLVLM) { /* images: runtime/vlm (vision groups); videos: SmolVLM2's video mode */
                if (mp_vqa_load(&vqa, models[k], mmproj, &ex, &err) < 0) goto fail;
                vqa_ok = 1;
                if (!vqa.smol) {
                    mp_errf(&err, "%s: not loaded as a SmolVLM model", models[k]);
                    goto fail;
                }
                b.vqa = &vqa;
                b.vlm = vqa.smol;
                if (!(b.vcache = mp_featcache_create((size_t)vision_cache_mb << 20))) {
                    mp_errf(&err, "out of memory");
                    goto fail;
                }
                /* a vision group is encoded once it has about one encoder batch of new tiles */
                int side = b.vlm->vis.proc.tile / b.vlm->vis.enc.cfg.patch_size;
                b.vg_batch = side > 0 && 8192 / (side * side) > 0 ? 8192 / (side * side) : 1;
                llm = use_decoder(&b, &b.vlm->llm, b.vlm->tok, b.vlm->chat_template, &b.vlm->sampling, b.vlm->path);
            } else if (kind == MODEL_QWEN2VL) {
                if (mp_vqa_load(&vqa, models[k], mmproj, &ex, &err) < 0) goto fail;
                vqa_ok = 1;
                b.vqa = &vqa;
                llm = use_decoder(&b, &vqa.llm, vqa.tok, vqa.chat_template, &vqa.sampling, vqa.path);
            } else {
                if (mmproj) {
                    mp_errf(&err, "--mmproj is for SmolVLM / Qwen2-VL models");
                    goto fail;
                }
                if (mp_textmodel_load(&tm, models[k], tok_path, &ex, &err) < 0) goto fail;
                tm_ok = 1;
                b.tm = &tm;
                llm = use_decoder(&b, &tm.llm, tm.tok, tm.chat_template, &tm.sampling, tm.path);
                b.bos_text = tm.bos_text;
                b.eos_text = tm.eos_text;
            }
            b.model_name = models[k];
            if (mp_engine_create(&e, llm, b.tok, &ex, &ep, on_done, &b, &err) < 0) goto fail;
        }
    }
    if (b.vqa) /* its media cache (videos; Qwen2-VL images) under the same budget as the image cache */
        b.vqa->cache_max_bytes = vision_cache_mb ? (size_t)vision_cache_mb << 20 : SIZE_MAX;
    if (b.vqa) { /* video sampling: the model's defaults (SmolVLM2: its video_sampling) unless given */
        mp_vqa_opts mo = mp_vqa_model_default_opts(b.vqa);
        if (!fps_set) b.vqa_opts.fps = mo.fps;
        if (!mf_set) b.vqa_opts.max_frames = mo.max_frames;
    }
    if (sh.count > 1) fprintf(stderr, "mmpipe batch: shard %d of %d -> %s\n", sh.index, sh.count, out_path);

    int tty = isatty(2) || force_progress;
    int eof = 0, engine_failed = 0;
    double t_stop = 0;
    int64_t left_unread = 0;
    /* the preparing thread reads ahead: about four batches' worth of prepared requests */
    b.rd = &rd;
    b.sh = &sh;
    b.done = &done;
    int qcap = 4 * ep.max_seqs > 4 * b.asr_group ? 4 * ep.max_seqs : 4 * b.asr_group;
    if (queue_init(&b.q, qcap) < 0) {
        mp_errf(&err, "out of memory");
        goto fail;
    }
    if (pthread_create(&prep_tid, NULL, prepare_thread, &b) != 0) {
        mp_errf(&err, "cannot start the preparing thread");
        goto fail;
    }
    prep_started = 1;
    while (!b.write_failed) {
        /* keep the engine's queue full: about two batches' worth of requests waiting or running
         * (transcriptions run in groups as they fill up) */
        while (!eof && !g_stop && !b.write_failed && engine_pending(e) + b.n_vg < 2 * ep.max_seqs) {
            /* nothing to compute: wait for the next prepared request */
            int idle = engine_pending(e) == 0 && b.n_vg == 0;
            prep_item *it = queue_pop(&b.q, idle ? 100 : 0);
            if (!it) {
                pthread_mutex_lock(&b.q.mu);
                int gone = b.q.stop && b.q.count == 0;
                pthread_mutex_unlock(&b.q.mu);
                if (gone) eof = 1;
                if (idle && !gone) continue;
                break;
            }
            if (it->kind == IT_EOF) {
                eof = 1;
                prep_free(it);
                break;
            }
            consume(&b, e, it);
            if (!tty) progress(&b, e, t0, 0, 0);
        }
        if (b.n_vg) vision_flush(&b, e); /* the images gathered while nothing else was ready */
        if (g_stop && t_stop == 0) {
            t_stop = now_s();
            fprintf(stderr, "\nmmpipe batch: %s: finishing %d in-flight request(s) (grace %.0f s)...\n",
                    g_stop == SIGINT ? "interrupted" : "terminated", engine_pending(e) + b.n_pend, grace);
        }
        if (engine_pending(e) == 0) {
            if ((eof || g_stop) && b.n_pend) { /* the last, partial group of transcriptions */
                asr_flush(&b);
                continue;
            }
            if (eof || g_stop) break;
            continue;
        }
        if (g_stop && now_s() - t_stop > grace) break;
        double t_step = now_s();
        int step_rc = mp_engine_step(e, &err);
        b.t_decoder += now_s() - t_step;
        if (step_rc < 0) {
            fprintf(stderr, "mmpipe batch: %s\n", err.msg);
            engine_failed = 1;
            break;
        }
        progress(&b, e, t0, tty, 0);
    }
    int in_flight = engine_pending(e) + b.n_pend + b.n_vg;
    queue_stop(&b.q);
    pthread_join(prep_tid, NULL);
    prep_started = 0;
    if (b.read_failed) {
        fprintf(stderr, "mmpipe batch: %s\n", b.read_err.msg);
        engine_failed = 1;
    }
    if (g_stop && !eof) { /* how much input is left, for the summary (streamed, nothing kept) */
        for (int i = 0; i < b.q.count; i++) left_unread += b.q.ring[(b.q.head + i) % b.q.cap]->kind != IT_EOF;
        mp_request q;
        char *bad_id = NULL;
        int r;
        while ((r = mp_req_reader_next(&rd, &q, &bad_id, &err)) != 0) {
            if (r > 0) {
                if (mp_shard_owns(&sh, q.custom_id) && !mp_idset_has(&done, q.custom_id)) left_unread++;
                mp_request_free(&q);
            }
            free(bad_id);
            bad_id = NULL;
        }
    }
    if (count_started) { /* the total for the summary line: through long before (a stop ends it early) */
        pthread_join(count_tid, NULL);
        count_started = 0;
    }
    progress(&b, e, t0, tty, 1);
    if (stats_path) write_stats(&b, e, stats_path, now_s() - t0);
    if (b.write_failed) {
        fprintf(stderr, "mmpipe batch: %s\n", b.werr.msg);
        rc = 2;
    } else if (g_stop || engine_failed) {
        fprintf(stderr, "mmpipe batch: stopped: %lld done, %d in flight abandoned, %lld not started; run again with --resume\n",
                (long long)(b.n_ok + b.n_err), in_flight, (long long)left_unread);
        rc = 3;
    } else {
        rc = b.n_err ? 1 : 0;
    }
    if (b.n_skipped) fprintf(stderr, "mmpipe batch: %lld request(s) skipped: already in %s\n", (long long)b.n_skipped, out_path);
    if (b.n_dup) fprintf(stderr, "mmpipe batch: %lld duplicate custom_id(s) in the input\n", (long long)b.n_dup);
    if (b.mm_encoded || b.mm_cached)
        fprintf(stderr, "mmpipe batch: %lld image/video input(s) encoded, %lld answered from the vision cache\n",
                (long long)b.mm_encoded, (long long)b.mm_cached);
    if (b.cache.hits)
        fprintf(stderr, "mmpipe batch: %lld transcription(s) answered from the cache (same audio and options)\n",
                (long long)b.cache.hits);
    goto done;
fail:
    fprintf(stderr, "mmpipe batch: %s\n", err.msg);
    rc = 2;
done:
    if (prep_started) {
        queue_stop(&b.q);
        pthread_join(prep_tid, NULL);
    }
    queue_free(&b.q);
    if (e) mp_engine_free(e); /* unfinished requests are cancelled without a record: --resume redoes them */
    for (int k = 0; k < b.n_pend; k++) { /* transcriptions not run (interrupted): no record either */
        free(b.pend[k].custom_id);
        mp_audio_free(&b.pend[k].audio);
    }
    free(b.pend_prompt);
    cache_free(&b.cache);
    for (int j = 0; j < b.n_vg; j++) prep_free(b.vg[j]); /* gathered, not encoded (interrupted) */
    if (ex_ok) mp_idefics3_state_free(&b.vst, &ex);
    mp_featcache_free(b.vcache);
    if (w_ok && mp_res_writer_close(&b.w, &err) < 0) {
        fprintf(stderr, "mmpipe batch: %s\n", err.msg);
        rc = 2;
    }
    mp_req_reader_close(&rd);
    if (count_started) { /* a run that failed before the end stops it */
        atomic_store(&counter->quit, 1);
        pthread_join(count_tid, NULL);
    }
    g_counter = NULL;
    if (counter) {
        mp_req_reader_close(&counter->rd);
        free(counter);
    }
    if (task_path[0]) unlink(task_path);
    if (tm_ok) mp_textmodel_free(&tm, &ex);
    if (vqa_ok) mp_vqa_free(&vqa, &ex);
    if (wc_ok) mp_whisper_ctx_free(&wc);
    if (wm_ok) mp_whisper_free(&wm, &ex);
    if (ex_ok) mp_exec_free(&ex);
    mp_threadpool_free(tp);
    mp_idset_free(&done);
    mp_idset_free(&b.seen);
    return rc;
}
