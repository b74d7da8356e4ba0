/* engine.c — continuous batching over mp_llama_forward. See engine.h. */
#include "runtime/engine.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct eseq {
    struct eseq *next;          /* waiting queue / running list */
    mp_gen_request req;         /* stop[] strings point into stop_buf */
    char *stop_buf;
    int32_t *tokens;            /* [n] prompt ids (-1 for embedding rows) */
    float *embd;                /* [n][n_embd] host rows, or NULL */
    int32_t *pos;               /* [n][ps] explicit positions, or NULL */
    int ps;                     /* position streams per item: 1, or 4 for an M-RoPE model */
    int n_prompt, n_fed;        /* prompt items fed to the model so far */
    int kv_seq;
    int need;                   /* KV tokens reserved: prompt + max_new */
    mp_sampler smp;
    mp_stopper stp;
    mp_detok dt;
    int32_t last_tok;           /* generated token to feed next */
    int32_t cur_pos;            /* its explicit position (when pos != NULL) */
    int32_t cur_pos4[4];        /* the same in every stream (ps == 4) */
    float *logits;              /* host [n_vocab] */
    int want_logits;            /* this step */
    /* output */
    char *text;
    size_t n_text, cap_text;
    int32_t *gen;
    float *lps, *top_lps;
    int32_t *top_ids;
    int n_gen, cap_gen;
    double t_submit, t_first;
} eseq;

struct mp_engine {
    const mp_llama *m;
    const mp_tokenizer *tok;
    mp_exec *ex;
    mp_engine_params p;
    mp_gen_done_fn done;
    void *done_ctx;
    mp_kvcache kv;
    mp_llama_state st;
    eseq *wait_head, *wait_tail;
    eseq **run;
    int n_run;
    mp_llama_seq *batch;
    float *embd_dev;            /* backend rows for embedding items of one step */
    size_t embd_cap;
    mp_engine_stats stats;
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

mp_engine_params mp_engine_default_params(void) {
    mp_engine_params p = {16, 512, 0, 0};
    return p;
}

int mp_engine_create(mp_engine **out, const mp_llama *model, const mp_tokenizer *tok, mp_exec *ex,
                     const mp_engine_params *pp, mp_gen_done_fn done, void *done_ctx, mp_error *err) {
    *out = NULL;
    mp_engine *e = calloc(1, sizeof *e);
    if (!e) return mp_errf(err, "out of memory");
    e->m = model;
    e->tok = tok;
    e->ex = ex;
    e->p = pp ? *pp : mp_engine_default_params();
    e->done = done;
    e->done_ctx = done_ctx;
    if (e->p.max_seqs <= 0) e->p.max_seqs = 16;
    if (e->p.max_ctx <= 0 || e->p.max_ctx > model->cfg.n_ctx_train) e->p.max_ctx = model->cfg.n_ctx_train;
    if (e->p.step_tokens < e->p.max_seqs + 1) e->p.step_tokens = e->p.max_seqs + 1;
    if (e->p.kv_tokens <= 0) e->p.kv_tokens = (int64_t)e->p.max_seqs * e->p.max_ctx;
    e->run = calloc((size_t)e->p.max_seqs, sizeof *e->run);
    e->batch = calloc((size_t)e->p.max_seqs, sizeof *e->batch);
    if (!e->run || !e->batch) {
        mp_engine_free(e);
        return mp_errf(err, "out of memory");
    }
    if (mp_llama_kvcache_init(model, &e->kv, ex, e->p.max_seqs, e->p.max_ctx, e->p.kv_tokens, 16, err) < 0) {
        mp_engine_free(e);
        return -1;
    }
    *out = e;
    return 0;
}

static void eseq_free(eseq *s) {
    if (!s) return;
    mp_sampler_free(&s->smp);
    mp_stopper_free(&s->stp);
    free(s->stop_buf);
    free(s->tokens);
    free(s->embd);
    free(s->pos);
    free(s->logits);
    free(s->text);
    free(s->gen);
    free(s->lps);
    free(s->top_lps);
    free(s->top_ids);
    free(s);
}

static void finish(mp_engine *e, eseq *s, const char *error, const char *reason);

void mp_engine_free(mp_engine *e) {
    if (!e) return;
    /* requests still queued or running end as "cancelled" (the callback frees what it attached) */
    for (eseq *s = e->wait_head, *n; s; s = n) {
        n = s->next;
        finish(e, s, "cancelled", "cancelled");
    }
    for (int i = 0; i < e->n_run; i++) finish(e, e->run[i], "cancelled", "cancelled");
    if (e->kv.seqs) mp_kvcache_free(&e->kv, e->ex);
    mp_llama_state_free(&e->st, e->ex);
    if (e->embd_dev) mp_backend_free(e->ex, e->embd_dev);
    free(e->run);
    free(e->batch);
    free(e);
}

int mp_engine_pending(const mp_engine *e) {
    int n = e->n_run;
    for (const eseq *s = e->wait_head; s; s = s->next) n++;
    return n;
}

void mp_engine_get_stats(const mp_engine *e, mp_engine_stats *s) { *s = e->stats; }

/* Hands a finished (or failed) sequence to the callback and frees it. */
static void finish(mp_engine *e, eseq *s, const char *error, const char *reason) {
    mp_gen_result r;
    memset(&r, 0, sizeof r);
    r.user = s->req.user;
    r.ok = error == NULL;
    if (error) snprintf(r.error, sizeof r.error, "%s", error);
    r.text = s->text ? s->text : "";
    r.tokens = s->gen;
    r.logprobs = s->lps;
    r.top_ids = s->top_ids;
    r.top_logprobs = s->top_lps;
    r.top_k = s->req.top_logprobs;
    r.n_tokens = s->n_gen;
    r.n_prompt = s->n_prompt;
    r.finish_reason = reason;
    r.t_submit = s->t_submit;
    r.t_first = s->t_first;
    r.t_done = now_s();
    e->stats.finished++;
    if (e->done) e->done(e->done_ctx, &r);
    eseq_free(s);
}

static int text_append(eseq *s, const char *p, size_t n) {
    if (s->n_text + n + 1 > s->cap_text) {
        size_t nc = (s->n_text + n + 1) * 2;
        char *nt = realloc(s->text, nc);
        if (!nt) return -1;
        s->text = nt;
        s->cap_text = nc;
    }
    memcpy(s->text + s->n_text, p, n);
    s->n_text += n;
    s->text[s->n_text] = 0;
    return 0;
}

int mp_engine_submit(mp_engine *e, const mp_gen_request *r, mp_error *err) {
    const mp_llama_config *c = &e->m->cfg;
    eseq *s = calloc(1, sizeof *s);
    if (!s) return mp_errf(err, "out of memory");
    s->req = *r;
    s->t_submit = now_s();
    s->kv_seq = -1;
    s->n_prompt = r->n;
    const char *bad = NULL;
    char msg[1100];
    int n_emb = 0;
    if (r->n <= 0) bad = "empty prompt";
    else if (r->max_new <= 0) bad = "max_tokens must be at least 1";
    else if (r->n + r->max_new > e->p.max_ctx) {
        snprintf(msg, sizeof msg, "prompt (%d tokens) + max_tokens (%d) exceed the context of %d tokens", r->n,
                 r->max_new, e->p.max_ctx);
        bad = msg;
    } else if (r->top_logprobs < 0 || r->top_logprobs > 20) bad = "top_logprobs must be between 0 and 20";
    if (!bad && !r->tokens && !r->embd) bad = "prompt has neither tokens nor embeddings";
    if (!bad) {
        s->tokens = malloc((size_t)r->n * sizeof(int32_t));
        if (!s->tokens) goto oom;
        for (int i = 0; i < r->n; i++) {
            int32_t t = r->tokens ? r->tokens[i] : -1;
            if (t >= c->n_vocab) {
                snprintf(msg, sizeof msg, "prompt token %d is outside the vocabulary (%d)", t, c->n_vocab);
                bad = msg;
                break;
            }
            if (t < 0) n_emb++;
            s->tokens[i] = t;
        }
        if (!bad && n_emb && !r->embd) bad = "prompt has embedding items but no embeddings";
    }
    if (!bad && n_emb) {
        s->embd = malloc((size_t)r->n * (size_t)c->n_embd * sizeof(float));
        if (!s->embd) goto oom;
        memcpy(s->embd, r->embd, (size_t)r->n * (size_t)c->n_embd * sizeof(float));
    }
    s->ps = mp_llama_mrope(c) ? 4 : 1;
    if (!bad && r->pos4 && s->ps != 4) bad = "positions in 4 streams (M-RoPE) for a model without M-RoPE";
    if (!bad && (r->pos || r->pos4)) {
        s->pos = malloc((size_t)r->n * (size_t)s->ps * sizeof(int32_t));
        if (!s->pos) goto oom;
        if (r->pos4) memcpy(s->pos, r->pos4, (size_t)r->n * 4 * sizeof(int32_t));
        else /* one stream given: the same position in every stream */
            for (int i = 0; i < r->n; i++)
                for (int k = 0; k < s->ps; k++) s->pos[(size_t)i * s->ps + k] = r->pos[i];
        s->cur_pos = r->next_pos;
    }
    /* own copies of the stop strings */
    size_t stop_bytes = 0;
    for (int i = 0; i < r->n_stop && i < MP_MAX_STOP; i++) stop_bytes += strlen(r->stop[i]) + 1;
    if (stop_bytes) {
        s->stop_buf = malloc(stop_bytes);
        if (!s->stop_buf) goto oom;
        char *p = s->stop_buf;
        for (int i = 0; i < r->n_stop && i < MP_MAX_STOP; i++) {
            size_t L = strlen(r->stop[i]) + 1;
            memcpy(p, r->stop[i], L);
            s->req.stop[i] = p;
            p += L;
        }
    }
    mp_stopper_init(&s->stp, bad ? 1 : r->max_new);
    if (!bad) {
        mp_error serr;
        if (mp_sampler_init(&s->smp, &r->sampling, c->n_vocab, &serr) < 0) {
            snprintf(msg, sizeof msg, "%s", serr.msg);
            bad = msg;
        }
    }
    if (bad) {
        finish(e, s, bad, "error");
        return 0;
    }
    if (!r->ignore_eos) {
        for (int i = 0; i < c->n_eos; i++) mp_stopper_add_eos(&s->stp, c->eos_ids[i]);
        if (e->tok) mp_stopper_add_eos(&s->stp, mp_tokenizer_eos(e->tok));
    }
    for (int i = 0; i < r->n_stop && i < MP_MAX_STOP; i++) mp_stopper_add_stop(&s->stp, s->req.stop[i]);
    s->logits = malloc((size_t)c->n_vocab * sizeof(float));
    s->cap_gen = r->max_new;
    s->gen = malloc((size_t)s->cap_gen * sizeof(int32_t));
    if (!s->logits || !s->gen) goto oom;
    if (r->top_logprobs > 0) {
        s->lps = malloc((size_t)s->cap_gen * sizeof(float));
        s->top_lps = malloc((size_t)s->cap_gen * (size_t)r->top_logprobs * sizeof(float));
        s->top_ids = malloc((size_t)s->cap_gen * (size_t)r->top_logprobs * sizeof(int32_t));
        if (!s->lps || !s->top_lps || !s->top_ids) goto oom;
    }
    if (text_append(s, "", 0) < 0) goto oom;
    if (e->tok) {
        mp_detok_init(&s->dt, e->tok, 1);
        char piece[512];
        for (int i = 0; i < r->n; i++)
            if (s->tokens[i] >= 0) mp_detok_push(&s->dt, s->tokens[i], piece, sizeof piece); /* state after the prompt */
    }
    for (int i = 0; i < r->n; i++)
        if (s->tokens[i] >= 0) mp_sampler_accept(&s->smp, s->tokens[i]);
    s->need = r->n + r->max_new;
    if (e->wait_tail) e->wait_tail->next = s;
    else e->wait_head = s;
    e->wait_tail = s;
    return 0;
oom:
    eseq_free(s);
    return mp_errf(err, "out of memory");
}

/* Admit waiting requests (FIFO) while a slot and the KV blocks for their whole budget are free. */
static void admit(mp_engine *e) {
    while (e->wait_head && e->n_run < e->p.max_seqs) {
        eseq *s = e->wait_head;
        int blocks = (s->need + e->kv.block_size - 1) / e->kv.block_size;
        if (blocks > mp_kvcache_blocks_free(&e->kv)) {
            if (e->n_run == 0 && blocks > e->kv.n_blocks) { /* can never fit */
                e->wait_head = s->next;
                if (!e->wait_head) e->wait_tail = NULL;
                finish(e, s, "request needs more KV cache than the engine has", "error");
                continue;
            }
            break;
        }
        mp_error err;
        int seq = mp_kvcache_seq_new(&e->kv, &err);
        if (seq < 0) break;
        if (mp_kvcache_reserve(&e->kv, e->ex, seq, s->need, &err) < 0) {
            mp_kvcache_seq_free(&e->kv, seq);
            break;
        }
        e->wait_head = s->next;
        if (!e->wait_head) e->wait_tail = NULL;
        s->next = NULL;
        s->kv_seq = seq;
        e->run[e->n_run++] = s;
        if (e->n_run > e->stats.max_running) e->stats.max_running = e->n_run;
    }
}

static void remove_running(mp_engine *e, int i) {
    mp_kvcache_seq_free(&e->kv, e->run[i]->kv_seq);
    memmove(e->run + i, e->run + i + 1, (size_t)(e->n_run - i - 1) * sizeof *e->run);
    e->n_run--;
}

/* After the forward: sample, stream text through the stopper, finish sequences that are done. */
static void after_forward(mp_engine *e, eseq *s, int *done) {
    float lp = 0;
    int k = s->req.top_logprobs;
    if (k > 0) mp_logprobs_top(s->logits, e->m->cfg.n_vocab, k, s->top_ids + (size_t)s->n_gen * k,
                               s->top_lps + (size_t)s->n_gen * k);
    int32_t next = mp_sampler_sample(&s->smp, s->logits, k > 0 ? &lp : NULL);
    if (s->n_gen == 0) s->t_first = now_s();
    if (k > 0) s->lps[s->n_gen] = lp;
    s->gen[s->n_gen++] = next;
    mp_sampler_accept(&s->smp, next);
    char piece[512] = "", out[1024];
    if (e->tok) mp_detok_push(&s->dt, next, piece, sizeof piece);
    int ol = mp_stopper_push(&s->stp, next, piece, out, sizeof out);
    if (ol > 0) text_append(s, out, (size_t)ol);
    s->last_tok = next;
    if (s->pos && s->n_gen > 1) s->cur_pos++;
    if (s->stp.stopped) {
        if (s->stp.stopped != 2) {
            ol = mp_stopper_flush(&s->stp, out, sizeof out);
            if (ol > 0) text_append(s, out, (size_t)ol);
            if (e->tok) {
                ol = mp_detok_flush(&s->dt, out, sizeof out);
                if (ol > 0) text_append(s, out, (size_t)ol);
            }
        }
        *done = 1;
    }
}

int mp_engine_step(mp_engine *e, mp_error *err) {
    admit(e);
    if (e->n_run == 0) return mp_engine_pending(e);
    const mp_llama_config *c = &e->m->cfg;
    int budget = e->p.step_tokens, nb = 0;
    /* decode rows first (one each), then prefill chunks in admission order */
    for (int i = 0; i < e->n_run; i++)
        if (e->run[i]->n_fed == e->run[i]->n_prompt) budget--;
    size_t emb_rows = 0;
    for (int i = 0; i < e->n_run; i++) {
        eseq *s = e->run[i];
        s->want_logits = 0;
        mp_llama_seq *q = &e->batch[nb];
        memset(q, 0, sizeof *q);
        q->seq = s->kv_seq;
        q->out = s->logits;
        if (s->n_fed == s->n_prompt) { /* decode */
            q->n = 1;
            q->tokens = &s->last_tok;
            for (int j = 0; j < 4; j++) s->cur_pos4[j] = s->cur_pos;
            q->pos = s->pos ? (s->ps == 4 ? s->cur_pos4 : &s->cur_pos) : NULL;
            q->logits = 1;
            s->want_logits = 1;
            nb++;
            continue;
        }
        if (budget <= 0) continue;
        int chunk = s->n_prompt - s->n_fed;
        if (chunk > budget) chunk = budget;
        budget -= chunk;
        q->n = chunk;
        q->tokens = s->tokens + s->n_fed;
        q->pos = s->pos ? s->pos + (size_t)s->n_fed * s->ps : NULL;
        q->logits = s->n_fed + chunk == s->n_prompt ? 1 : 0;
        s->want_logits = q->logits;
        if (s->embd) { /* the forward reads row j of embd for item j of this chunk */
            q->embd = s->embd + (size_t)s->n_fed * (size_t)c->n_embd; /* host; moved to the backend below */
            emb_rows += (size_t)chunk;
        }
        s->n_fed += chunk;
        e->stats.prefill_tokens += chunk;
        nb++;
    }
    if (emb_rows) { /* embedding rows of this step, copied to backend memory one chunk after another */
        size_t bytes = emb_rows * (size_t)c->n_embd * sizeof(float);
        if (bytes > e->embd_cap) {
            if (e->embd_dev) mp_backend_free(e->ex, e->embd_dev);
            e->embd_dev = mp_backend_alloc(e->ex, bytes);
            e->embd_cap = e->embd_dev ? bytes : 0;
            if (!e->embd_dev) return mp_errf(err, "out of memory for %zu embedding rows", emb_rows);
        }
        float *dst = e->embd_dev;
        for (int i = 0; i < nb; i++) {
            mp_llama_seq *q = &e->batch[i];
            if (!q->embd) continue;
            size_t n = (size_t)q->n * (size_t)c->n_embd;
            if (mp_backend_upload(e->ex, dst, q->embd, n * sizeof(float), err) < 0) return -1;
            q->embd = dst;
            dst += n;
        }
    }
    double t0 = now_s();
    int rc = mp_llama_forward(e->m, &e->st, &e->kv, e->ex, e->batch, nb, err);
    e->stats.t_forward += now_s() - t0;
    e->stats.steps++;
    if (rc < 0) { /* a model/backend failure: every running request fails with it */
        char msg[1100];
        snprintf(msg, sizeof msg, "model error: %s", err->msg);
        while (e->n_run) {
            eseq *s = e->run[0];
            e->run[0] = NULL;
            remove_running(e, 0);
            finish(e, s, msg, "error");
        }
        return -1;
    }
    for (int i = 0; i < e->n_run;) {
        eseq *s = e->run[i];
        int done = 0;
        if (s->want_logits) {
            if (s->n_gen > 0) e->stats.decode_tokens++;
            after_forward(e, s, &done);
        }
        if (done) {
            const char *reason = s->stp.stopped == 3 ? "length" : "stop";
            remove_running(e, i);
            finish(e, s, NULL, reason);
        } else {
            i++;
        }
    }
    return mp_engine_pending(e);
}
