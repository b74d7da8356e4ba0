/* caption.c — the `mmpipe caption` pipeline (see caption.h). */
#include "runtime/caption.h"

#include "runtime/engine.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

mp_caption_params mp_caption_default_params(const mp_vlm *m) {
    mp_caption_params p;
    memset(&p, 0, sizeof p);
    p.split = -1;
    p.max_new = 256;
    p.sampling = m ? m->sampling : mp_sampler_default_params();
    p.max_seqs = 16;
    p.overlap = 1;
    p.lookahead = 0;
    return p;
}

void mp_caption_result_free(mp_caption_result *r) {
    free(r->text);
    free(r->tokens);
    memset(r, 0, sizeof *r);
}

/* ---------------------------------------------------------------- image preparation (worker) */

typedef struct slot {
    int ready, ok;
    char error[2200], warning[256];
    float *tiles;
    mp_idefics3_plan plan;
    double t_load, t_pre;
} slot;

typedef struct prep {
    const mp_vlm *m;
    const char *const *files;    /* either files ... */
    const mp_image *const *images; /* ... or decoded images */
    int n, split, lookahead;
    slot *slots;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int consumed; /* images the main thread has taken */
    int64_t tiles_ahead, max_tiles_ahead; /* tiles prepared and not taken yet, and their bound */
    int stop;
} prep;

/* "FILE" or "image K" (0-based), for messages */
static const char *src_name(const char *const *files, int i, char *buf, size_t cap) {
    if (files) return files[i];
    snprintf(buf, cap, "image %d", i);
    return buf;
}

static void prepare(prep *P, int i) {
    slot *s = &P->slots[i];
    mp_error e = {{0}};
    mp_image img;
    memset(&img, 0, sizeof img);
    const mp_image *src = &img;
    double t0 = now_s();
    int rc = 0;
    if (P->files) {
        rc = mp_image_load(P->files[i], NULL, &img, &e);
        if (rc == 0 && img.warning[0]) snprintf(s->warning, sizeof s->warning, "%s", img.warning);
    } else {
        src = P->images[i];
        if (!src) rc = mp_errf(&e, "no image");
    }
    double t1 = now_s();
    if (rc == 0) {
        rc = mp_vlm_preprocess(P->m, src, P->split, &s->tiles, &s->plan, &e);
        mp_image_free(&img);
    }
    s->t_load = t1 - t0;
    s->t_pre = now_s() - t1;
    s->ok = rc == 0;
    if (rc) { /* name the file when the message does not */
        char nb[32];
        const char *name = src_name(P->files, i, nb, sizeof nb);
        if (strstr(e.msg, name)) snprintf(s->error, sizeof s->error, "%s", e.msg);
        else snprintf(s->error, sizeof s->error, "%.1000s: %.1100s", name, e.msg);
    }
}

static void *prep_main(void *arg) {
    prep *P = arg;
    for (int i = 0; i < P->n; i++) {
        pthread_mutex_lock(&P->mu);
        /* the next image is always prepared; further ones while within both bounds */
        while (!P->stop && i > P->consumed && (i >= P->consumed + P->lookahead || P->tiles_ahead >= P->max_tiles_ahead))
            pthread_cond_wait(&P->cv, &P->mu);
        int stop = P->stop;
        pthread_mutex_unlock(&P->mu);
        if (stop) break;
        prepare(P, i);
        pthread_mutex_lock(&P->mu);
        if (P->slots[i].ok) P->tiles_ahead += P->slots[i].plan.n_tiles;
        P->slots[i].ready = 1;
        pthread_cond_broadcast(&P->cv);
        pthread_mutex_unlock(&P->mu);
    }
    return NULL;
}

/* ---------------------------------------------------------------- the call */

typedef struct img_state {
    float *rows;        /* [n_tiles * image_seq_len][n_embd] */
    int left;           /* tiles not encoded yet */
    mp_idefics3_plan plan;
} img_state;

typedef struct run {
    const mp_vlm *m;
    mp_exec *ex;
    const mp_caption_params *p;
    mp_caption_result *res;
    mp_caption_stats *st;
    const char *const *files; /* NULL: decoded images */
    img_state *img;
    char *chat;           /* the chat prompt, "<image>" not expanded */
    mp_engine *eng;
    double t_start;
    /* vision batch */
    mp_idefics3_state vs;
    float *batch, *out;
    int *own_img, *own_tile;
    int nb, cap;
} run;

static void on_done(void *ctx, const mp_gen_result *r) {
    run *R = ctx;
    mp_caption_result *res = r->user;
    res->n_prompt = r->n_prompt;
    res->t_done = now_s() - R->t_start;
    if (!r->ok) {
        res->ok = 0;
        snprintf(res->error, sizeof res->error, "%s", r->error);
        return;
    }
    const char *t = r->text;
    size_t n = strlen(t);
    while (n && isspace((unsigned char)*t)) t++, n--;
    while (n && isspace((unsigned char)t[n - 1])) n--;
    res->text = malloc(n + 1);
    res->tokens = malloc(sizeof(int32_t) * (size_t)(r->n_tokens > 0 ? r->n_tokens : 1));
    if (!res->text || !res->tokens) {
        res->ok = 0;
        snprintf(res->error, sizeof res->error, "out of memory");
        return;
    }
    memcpy(res->text, t, n);
    res->text[n] = 0;
    memcpy(res->tokens, r->tokens, sizeof(int32_t) * (size_t)r->n_tokens);
    res->ok = 1;
    res->n_tokens = r->n_tokens;
    res->finish_reason = r->finish_reason;
    R->st->gen_tokens += r->n_tokens;
}

/* the image's rows are complete: prompt items -> engine */
static int submit(run *R, int i, mp_error *err) {
    double t0 = now_s();
    img_state *im = &R->img[i];
    mp_caption_result *res = &R->res[i];
    mp_vlm_prompt vp;
    mp_error e = {{0}};
    int rc = mp_vlm_prompt_assemble(R->m, R->chat, &im->plan, 1, im->rows, &vp, &e);
    free(im->rows);
    im->rows = NULL;
    if (rc < 0) {
        res->ok = 0;
        char nb[32];
        snprintf(res->error, sizeof res->error, "%.1000s: %.1100s", src_name(R->files, i, nb, sizeof nb), e.msg);
        return 0;
    }
    mp_gen_request q;
    memset(&q, 0, sizeof q);
    mp_vlm_prompt_to_request(&vp, &q);
    q.sampling = R->p->sampling;
    q.max_new = R->p->max_new;
    q.ignore_eos = R->p->ignore_eos;
    q.user = res;
    const int n = vp.n;
    R->st->prompt_tokens += n;
    rc = mp_engine_submit(R->eng, &q, err);
    mp_vlm_prompt_free(&vp);
    R->st->t_prompt += now_s() - t0;
    return rc;
}

/* one vision batch: encode the queued tiles, hand the rows to their images */
static int flush(run *R, mp_error *err) {
    if (R->nb == 0) return 0;
    const mp_idefics3_vision *v = &R->m->vis;
    const size_t per = (size_t)v->image_seq_len * v->n_embd_text;
    double e0 = R->st->vision.encode, c0 = R->st->vision.connector;
    if (mp_idefics3_encode(v, &R->vs, R->ex, R->batch, R->nb, R->out, &R->st->vision, err) < 0) return -1;
    double share = (R->st->vision.encode - e0 + R->st->vision.connector - c0) / R->nb;
    for (int k = 0; k < R->nb; k++) {
        int i = R->own_img[k];
        img_state *im = &R->img[i];
        memcpy(im->rows + (size_t)R->own_tile[k] * per, R->out + (size_t)k * per, per * sizeof(float));
        R->res[i].t_vision += share;
        if (--im->left == 0 && submit(R, i, err) < 0) return -1;
    }
    R->nb = 0;
    return 0;
}

static int consume(run *R, int i, slot *s, mp_error *err) {
    mp_caption_result *res = &R->res[i];
    res->t_load = s->t_load;
    res->t_preprocess = s->t_pre;
    snprintf(res->warning, sizeof res->warning, "%s", s->warning);
    R->st->t_load += s->t_load;
    R->st->t_preprocess += s->t_pre;
    if (!s->ok) {
        res->ok = 0;
        snprintf(res->error, sizeof res->error, "%s", s->error);
        return 0;
    }
    const mp_idefics3_vision *v = &R->m->vis;
    const int nt = s->plan.n_tiles;
    const size_t per_tile = (size_t)3 * v->proc.tile * v->proc.tile;
    img_state *im = &R->img[i];
    im->plan = s->plan;
    im->left = nt;
    res->n_tiles = nt, res->rows = s->plan.rows, res->cols = s->plan.cols;
    im->rows = malloc(sizeof(float) * (size_t)nt * v->image_seq_len * v->n_embd_text);
    if (!im->rows) return mp_errf(err, "%s: out of memory", R->m->path);
    R->st->tiles += nt;
    for (int t = 0; t < nt; t++) {
        memcpy(R->batch + (size_t)R->nb * per_tile, s->tiles + (size_t)t * per_tile, per_tile * sizeof(float));
        R->own_img[R->nb] = i;
        R->own_tile[R->nb] = t;
        if (++R->nb == R->cap && flush(R, err) < 0) return -1;
    }
    return 0;
}

/* the longest prompt an image can give: every tile of the largest grid + the text */
static int prompt_bound(const mp_vlm *m, const char *chat, int split) {
    const mp_idefics3_params *pp = &m->vis.proc;
    int rows = (pp->longest_edge + pp->tile - 1) / pp->tile;
    int tiles = (split == 0 || (split < 0 && !pp->do_split)) ? 1 : rows * rows + 1;
    return (int)strlen(chat) + tiles * (m->vis.image_seq_len + 3) + rows + 8;
}

static int caption_run(const mp_vlm *m, mp_exec *ex, const char *const *files, const mp_image *const *images, int n,
                       const mp_caption_params *pp, mp_caption_result *res, mp_caption_stats *stats, mp_error *err) {
    mp_caption_params p = pp ? *pp : mp_caption_default_params(m);
    if (p.max_new <= 0) p.max_new = 256;
    if (p.max_seqs <= 0) p.max_seqs = 16;
    mp_caption_stats lst;
    if (!stats) stats = &lst;
    memset(stats, 0, sizeof *stats);
    memset(res, 0, sizeof *res * (size_t)n);
    stats->images = n;
    run R;
    memset(&R, 0, sizeof R);
    R.m = m, R.ex = ex, R.p = &p, R.res = res, R.st = stats, R.files = files;
    R.t_start = now_s();
    int rc = -1;
    prep P;
    memset(&P, 0, sizeof P);
    P.m = m, P.files = files, P.images = images, P.n = n, P.split = p.split, P.lookahead = p.lookahead;
    pthread_mutex_init(&P.mu, NULL);
    pthread_cond_init(&P.cv, NULL);
    pthread_t th;
    int started = 0;
    const mp_idefics3_vision *v = &m->vis;
    const int side = v->proc.tile / v->enc.cfg.patch_size;
    R.cap = p.vision_tiles > 0 ? p.vision_tiles : (8192 / (side * side) > 0 ? 8192 / (side * side) : 1);
    R.vs.max_tiles = R.cap;
    /* the worker keeps up to two vision batches of tiles ready (or p.lookahead images) */
    P.lookahead = p.lookahead > 0 ? p.lookahead : 2 * R.cap + 2;
    P.max_tiles_ahead = p.lookahead > 0 ? INT64_MAX : 2 * (int64_t)R.cap;
    const size_t per_tile = (size_t)3 * v->proc.tile * v->proc.tile;
    R.batch = malloc(sizeof(float) * per_tile * (size_t)R.cap);
    R.out = malloc(sizeof(float) * (size_t)R.cap * v->image_seq_len * v->n_embd_text);
    R.own_img = malloc(sizeof(int) * (size_t)R.cap);
    R.own_tile = malloc(sizeof(int) * (size_t)R.cap);
    R.img = calloc((size_t)(n > 0 ? n : 1), sizeof *R.img);
    P.slots = calloc((size_t)(n > 0 ? n : 1), sizeof *P.slots);
    if (!R.batch || !R.out || !R.own_img || !R.own_tile || !R.img || !P.slots) {
        mp_errf(err, "caption: out of memory");
        goto done;
    }
    if (mp_vlm_chat_prompt(m, p.prompt ? p.prompt : MP_CAPTION_DEFAULT_PROMPT, &R.chat, err) < 0) goto done;
    mp_engine_params ep = mp_engine_default_params();
    ep.max_seqs = p.max_seqs < n ? p.max_seqs : (n > 0 ? n : 1);
    ep.max_ctx = prompt_bound(m, R.chat, p.split) + p.max_new;
    if (ep.max_ctx > m->llm.cfg.n_ctx_train) ep.max_ctx = m->llm.cfg.n_ctx_train;
    ep.kv_tokens = (int64_t)ep.max_seqs * ep.max_ctx;
    ep.step_tokens = 2048;
    if (mp_engine_create(&R.eng, &m->llm, m->tok, ex, &ep, on_done, &R, err) < 0) goto done;
    if (p.overlap && n > 0) started = pthread_create(&th, NULL, prep_main, &P) == 0;

    /* ---- vision: images in order, tiles in batches */
    for (int i = 0; i < n; i++) {
        slot *s = &P.slots[i];
        if (started) {
            pthread_mutex_lock(&P.mu);
            int ready = s->ready;
            pthread_mutex_unlock(&P.mu);
            /* not prepared yet: encode the tiles already queued instead of waiting (results do not depend
             * on how tiles are batched) */
            if (!ready && R.nb > 0 && flush(&R, err) < 0) goto done;
            double w0 = now_s();
            pthread_mutex_lock(&P.mu);
            while (!s->ready) pthread_cond_wait(&P.cv, &P.mu);
            pthread_mutex_unlock(&P.mu);
            stats->t_wait += now_s() - w0;
        } else {
            prepare(&P, i);
        }
        int crc = consume(&R, i, s, err);
        free(s->tiles);
        s->tiles = NULL;
        pthread_mutex_lock(&P.mu);
        P.consumed = i + 1;
        if (s->ok) P.tiles_ahead -= s->plan.n_tiles;
        pthread_cond_broadcast(&P.cv);
        pthread_mutex_unlock(&P.mu);
        if (crc < 0) goto done;
    }
    if (flush(&R, err) < 0) goto done;
    stats->t_encode = stats->vision.encode;
    stats->t_connector = stats->vision.connector;

    /* ---- decode every caption together */
    for (;;) {
        mp_engine_stats a, b;
        mp_engine_get_stats(R.eng, &a);
        double t0 = now_s();
        int left = mp_engine_step(R.eng, err);
        double dt = now_s() - t0;
        if (left < 0) goto done;
        mp_engine_get_stats(R.eng, &b);
        if (b.prefill_tokens > a.prefill_tokens) { /* steps that fed prompt rows (some may decode too) */
            stats->t_prefill += dt;
        } else { /* pure decode steps: every running caption gives one token */
            stats->t_decode += dt;
            stats->decode_tokens += b.decode_tokens - a.decode_tokens;
        }
        if (left == 0) break;
    }
    mp_engine_stats es;
    mp_engine_get_stats(R.eng, &es);
    stats->steps = es.steps;
    stats->max_running = es.max_running;
    rc = 0;
done:
    if (started) {
        pthread_mutex_lock(&P.mu);
        P.stop = 1;
        pthread_cond_broadcast(&P.cv);
        pthread_mutex_unlock(&P.mu);
        pthread_join(th, NULL);
    }
    pthread_mutex_destroy(&P.mu);
    pthread_cond_destroy(&P.cv);
    if (P.slots)
        for (int i = 0; i < n; i++) free(P.slots[i].tiles);
    if (R.img)
        for (int i = 0; i < n; i++) free(R.img[i].rows);
    stats->failed = 0;
    for (int i = 0; i < n; i++) {
        if (!res[i].ok && !res[i].error[0])
            snprintf(res[i].error, sizeof res[i].error, "%s", rc < 0 ? err->msg : "not captioned");
        stats->failed += !res[i].ok;
    }
    mp_engine_free(R.eng);
    mp_idefics3_state_free(&R.vs, ex);
    free(R.chat), free(R.batch), free(R.out), free(R.own_img), free(R.own_tile), free(R.img), free(P.slots);
    stats->t_wall = now_s() - R.t_start;
    return rc;
}

int mp_caption_run(const mp_vlm *m, mp_exec *ex, const char *const *files, int n, const mp_caption_params *p,
                   mp_caption_result *res, mp_caption_stats *stats, mp_error *err) {
    return caption_run(m, ex, files, NULL, n, p, res, stats, err);
}

int mp_caption_run_images(const mp_vlm *m, mp_exec *ex, const mp_image *const *images, int n,
                          const mp_caption_params *p, mp_caption_result *res, mp_caption_stats *stats, mp_error *err) {
    return caption_run(m, ex, NULL, images, n, p, res, stats, err);
}
