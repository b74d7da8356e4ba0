/* whisper_decode.c — one 30 s window at a time (openai/whisper decoding.py DecodingTask), any number of
 * windows batched together: the SOT sequence, the logit filters, greedy / sampling / beam search, the
 * ranking of candidates, no-speech probability, language detection. */
#include "llm/whisper_decode.h"

#include "kernels/ops.h"
#include "llm/sample.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- context */

static int add_id(int32_t *set, int *n, int32_t id) {
    if (id < 0) return 0;
    for (int i = 0; i < *n; i++)
        if (set[i] == id) return 0;
    set[(*n)++] = id;
    return 1;
}

static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* openai tokenizer.non_speech_tokens: symbols that are one token alone or after a space, the first
 * token of the musical symbols, and " -" / " '". */
static int non_speech_tokens(mp_whisper_ctx *c, mp_error *err) {
    static const char *const sym[] = {
        "\"", "#", "(", ")", "*", "+", "/", ":", ";", "<", "=", ">", "@", "[", "\\", "]", "^", "_", "`", "{", "|", "}",
        "~", "\xe3\x80\x8c", "\xe3\x80\x8d", "\xe3\x80\x8e", "\xe3\x80\x8f", /* 「」『』 */
        "<<", ">>", "<<<", ">>>", "--", "---", "-(", "-[", "('", "(\"", "((", "))", "(((", ")))", "[[", "]]", "{{", "}}",
        "\xe2\x99\xaa\xe2\x99\xaa", "\xe2\x99\xaa\xe2\x99\xaa\xe2\x99\xaa"};                       /* ♪♪ ♪♪♪ */
    static const char *const misc[] = {"\xe2\x99\xa9", "\xe2\x99\xaa", "\xe2\x99\xab", "\xe2\x99\xac",
                                       "\xe2\x99\xad", "\xe2\x99\xae", "\xe2\x99\xaf"}; /* ♩♪♫♬♭♮♯ */
    const int n_sym = (int)(sizeof sym / sizeof sym[0]), n_misc = (int)(sizeof misc / sizeof misc[0]);
    c->nst = malloc(sizeof(int32_t) * (size_t)(2 * (n_sym + n_misc) + 2));
    if (!c->nst) return mp_errf(err, "whisper: out of memory");
    c->n_nst = 0;
    int32_t ids[16];
    char buf[64];
    if (mp_whisper_tokenize(c->m, " -", ids, 16) >= 1) add_id(c->nst, &c->n_nst, ids[0]);
    if (mp_whisper_tokenize(c->m, " '", ids, 16) >= 1) add_id(c->nst, &c->n_nst, ids[0]);
    for (int i = 0; i < n_sym + n_misc; i++) {
        const char *s = i < n_sym ? sym[i] : misc[i - n_sym];
        for (int sp = 0; sp < 2; sp++) {
            snprintf(buf, sizeof buf, "%s%s", sp ? " " : "", s);
            int k = mp_whisper_tokenize(c->m, buf, ids, 16);
            if (k == 1 || (k >= 1 && i >= n_sym)) add_id(c->nst, &c->n_nst, ids[0]);
        }
    }
    qsort(c->nst, (size_t)c->n_nst, sizeof(int32_t), cmp_i32);
    return 0;
}

int mp_whisper_ctx_init(mp_whisper_ctx *c, const mp_whisper *m, mp_exec *ex, mp_error *err) {
    memset(c, 0, sizeof *c);
    c->m = m;
    c->ex = ex;
    int32_t ids[4];
    c->space_id = mp_whisper_tokenize(m, " ", ids, 4) == 1 ? ids[0] : -1;
    if (non_speech_tokens(c, err)) {
        mp_whisper_ctx_free(c);
        return -1;
    }
    return 0;
}

void mp_whisper_ctx_free(mp_whisper_ctx *c) {
    if (c->ex) {
        mp_whisper_enc_state_free(&c->enc, c->ex);
        mp_whisper_dec_state_free(&c->dec, c->ex);
        mp_whisper_kv_free(&c->kv, c->ex);
    }
    free(c->nst);
    memset(c, 0, sizeof *c);
}

static int kv_reserve(mp_whisper_ctx *c, int n_slots, mp_error *err) {
    if (c->kv.n_slots >= n_slots) {
        memset(c->kv.len, 0, sizeof(int) * (size_t)c->kv.n_slots);
        return 0;
    }
    mp_whisper_kv_free(&c->kv, c->ex);
    return mp_whisper_kv_init(&c->kv, c->m, c->ex, n_slots, err);
}

mp_whisper_decode_opts mp_whisper_decode_default_opts(void) {
    mp_whisper_decode_opts o;
    memset(&o, 0, sizeof o);
    o.language = -1;
    o.patience = 1.0f;
    o.length_penalty = -1.0f;
    o.suppress_blank = 1;
    o.suppress_nst = 1;
    o.max_initial_ts = 1.0f;
    return o;
}

void mp_whisper_decoded_free(mp_whisper_decoded *d) {
    free(d->tokens);
    free(d->logprobs);
    free(d->text);
    memset(d, 0, sizeof *d);
}

/* ---------------------------------------------------------------- logit filters */

static void log_softmax(const float *x, int n, float *y) {
    float mx = -INFINITY;
    for (int i = 0; i < n; i++)
        if (x[i] > mx) mx = x[i];
    double s = 0;
    for (int i = 0; i < n; i++) s += x[i] == -INFINITY ? 0.0 : exp((double)x[i] - mx);
    const float lse = mx + (float)log(s);
    for (int i = 0; i < n; i++) y[i] = x[i] - lse;
}

void mp_whisper_apply_filters(const mp_whisper_ctx *c, const mp_whisper_decode_opts *o, const int32_t *sampled,
                              int n_sampled, float *logits) {
    const mp_whisper *m = c->m;
    const mp_whisper_specials *sp = &m->sp;
    const int V = m->hp.n_vocab, tb = sp->timestamp_begin;
    /* SuppressBlank: no " " or <|endoftext|> as the first sampled token */
    if (o->suppress_blank && n_sampled == 0) {
        if (c->space_id >= 0) logits[c->space_id] = -INFINITY;
        logits[sp->eot] = -INFINITY;
    }
    /* SuppressTokens */
    if (o->suppress_nst)
        for (int i = 0; i < c->n_nst; i++) logits[c->nst[i]] = -INFINITY;
    const int32_t always[] = {sp->transcribe, sp->translate, sp->sot, sp->prev, sp->solm, sp->nosp};
    for (int i = 0; i < 6; i++) logits[always[i]] = -INFINITY;
    if (o->without_timestamps) return;
    /* ApplyTimestampRules */
    logits[sp->no_timestamps] = -INFINITY;
    const int last_ts = n_sampled >= 1 && sampled[n_sampled - 1] >= tb;
    const int penult_ts = n_sampled < 2 || sampled[n_sampled - 2] >= tb;
    if (last_ts) {
        if (penult_ts)
            for (int i = tb; i < V; i++) logits[i] = -INFINITY; /* has to be text */
        else
            for (int i = 0; i < sp->eot; i++) logits[i] = -INFINITY; /* cannot be text */
    }
    int32_t ts_last = -1;
    for (int i = n_sampled - 1; i >= 0 && ts_last < 0; i--)
        if (sampled[i] >= tb) ts_last = sampled[i];
    if (ts_last >= 0) { /* timestamps do not decrease; a segment has a nonzero length */
        const int32_t lim = last_ts && !penult_ts ? ts_last : ts_last + 1;
        for (int i = tb; i < lim && i < V; i++) logits[i] = -INFINITY;
    }
    if (n_sampled == 0) {
        for (int i = 0; i < tb; i++) logits[i] = -INFINITY;
        if (o->max_initial_ts > 0) {
            const float precision = 30.0f / (float)m->hp.n_audio_ctx;
            const int last_allowed = tb + (int)lrintf(o->max_initial_ts / precision);
            for (int i = last_allowed + 1; i < V; i++) logits[i] = -INFINITY;
        }
    }
    /* a timestamp when the timestamps together are more likely than any text token */
    float *lp = malloc(sizeof(float) * (size_t)V);
    if (!lp) return;
    log_softmax(logits, V, lp);
    float mx = -INFINITY, mt = -INFINITY;
    for (int i = tb; i < V; i++)
        if (lp[i] > mx) mx = lp[i];
    double s = 0;
    for (int i = tb; i < V; i++) s += lp[i] == -INFINITY ? 0.0 : exp((double)lp[i] - mx);
    const float ts_lp = mx == -INFINITY ? -INFINITY : mx + (float)log(s);
    for (int i = 0; i < tb; i++)
        if (lp[i] > mt) mt = lp[i];
    if (ts_lp > mt)
        for (int i = 0; i < tb; i++) logits[i] = -INFINITY;
    free(lp);
}

/* ---------------------------------------------------------------- one window */

typedef struct cand {
    int32_t *tok;
    float *lp;
    int n;
    double score;
} cand;

typedef struct win {
    const mp_whisper_decode_opts *o;
    const mp_whisper_cross *cross;
    int wi;
    int32_t *init;
    int n_init, sot_index, sample_len;
    int n_group, beam, max_cand;
    int n_tok;              /* tokens sampled by every member */
    int *slot;              /* member -> cache slot */
    int *pool;              /* beam: 2 * n_group slots */
    int32_t **tok;          /* member -> sampled tokens [sample_len + 1] */
    float **lp;
    double *sum;
    int32_t **ntok;         /* beam re-ordering scratch */
    float **nlp;
    cand *fin;              /* beam: finished candidates */
    int n_fin;
    float *logits;          /* [n_group][V] */
    float *sot_logits;      /* [V] */
    float no_speech;
    uint64_t rng;
    int done;
} win;

static void win_free(win *w) {
    for (int j = 0; j < w->n_group; j++) {
        if (w->tok) free(w->tok[j]);
        if (w->lp) free(w->lp[j]);
        if (w->ntok) free(w->ntok[j]);
        if (w->nlp) free(w->nlp[j]);
    }
    for (int i = 0; i < w->n_fin; i++) {
        free(w->fin[i].tok);
        free(w->fin[i].lp);
    }
    free(w->tok);
    free(w->lp);
    free(w->ntok);
    free(w->nlp);
    free(w->fin);
    free(w->init);
    free(w->slot);
    free(w->pool);
    free(w->sum);
    free(w->logits);
    free(w->sot_logits);
}

/* The initial tokens: [<|startofprev|> prompt[-(n_ctx/2 - 1):]] sot [lang task] [notimestamps]. */
static int build_init(const mp_whisper_ctx *c, win *w) {
    const mp_whisper *m = c->m;
    const mp_whisper_specials *sp = &m->sp;
    const mp_whisper_decode_opts *o = w->o;
    int np = o->n_prompt, keep = m->hp.n_text_ctx / 2 - 1;
    if (np > keep) np = keep;
    w->init = malloc(sizeof(int32_t) * (size_t)(np + 8));
    if (!w->init) return -1;
    int k = 0;
    if (o->prompt && o->n_prompt > 0) {
        w->init[k++] = sp->prev;
        memcpy(w->init + k, o->prompt + (o->n_prompt - np), sizeof(int32_t) * (size_t)np);
        k += np;
    }
    w->sot_index = k;
    w->init[k++] = sp->sot;
    if (sp->multilingual) {
        int lang = o->language >= 0 && o->language < sp->num_languages ? o->language : 0;
        w->init[k++] = sp->sot + 1 + lang;
        w->init[k++] = o->translate ? sp->translate : sp->transcribe;
    }
    if (o->without_timestamps) w->init[k++] = sp->no_timestamps;
    w->n_init = k;
    return 0;
}

static int win_init(mp_whisper_ctx *c, win *w, const mp_whisper_decode_opts *o, const mp_whisper_cross *cross, int wi,
                    int *next_slot) {
    const int V = c->m->hp.n_vocab;
    memset(w, 0, sizeof *w);
    w->o = o;
    w->cross = cross;
    w->wi = wi;
    w->beam = o->temperature == 0 && o->beam_size > 0;
    w->n_group = w->beam ? o->beam_size : (o->temperature > 0 && o->best_of > 0 ? o->best_of : 1);
    float pat = o->patience > 0 ? o->patience : 1.0f;
    w->max_cand = (int)lrintf((float)w->n_group * pat);
    if (w->max_cand < 1) w->max_cand = 1;
    w->sample_len = o->sample_len > 0 ? o->sample_len : c->m->hp.n_text_ctx / 2;
    w->rng = o->seed ? o->seed : 0x9E3779B97F4A7C15ull;
    if (build_init(c, w)) return -1;
    const int G = w->n_group, cap = w->sample_len + 2;
    w->slot = malloc(sizeof(int) * (size_t)G);
    w->pool = malloc(sizeof(int) * (size_t)(2 * G));
    w->tok = calloc((size_t)G, sizeof *w->tok);
    w->lp = calloc((size_t)G, sizeof *w->lp);
    w->ntok = calloc((size_t)G, sizeof *w->ntok);
    w->nlp = calloc((size_t)G, sizeof *w->nlp);
    w->sum = calloc((size_t)G, sizeof *w->sum);
    w->logits = malloc(sizeof(float) * (size_t)(G > 2 ? G : 2) * V);
    w->sot_logits = malloc(sizeof(float) * (size_t)V);
    w->fin = calloc((size_t)(w->max_cand + G + 1), sizeof *w->fin);
    if (!w->slot || !w->pool || !w->tok || !w->lp || !w->ntok || !w->nlp || !w->sum || !w->logits || !w->sot_logits ||
        !w->fin)
        return -1;
    for (int j = 0; j < G; j++) {
        w->tok[j] = malloc(sizeof(int32_t) * (size_t)cap);
        w->lp[j] = malloc(sizeof(float) * (size_t)cap);
        w->ntok[j] = malloc(sizeof(int32_t) * (size_t)cap);
        w->nlp[j] = malloc(sizeof(float) * (size_t)cap);
        if (!w->tok[j] || !w->lp[j] || !w->ntok[j] || !w->nlp[j]) return -1;
    }
    const int n_slots = w->beam ? 2 * G : G;
    for (int j = 0; j < n_slots; j++) w->pool[j] = (*next_slot)++;
    for (int j = 0; j < G; j++) w->slot[j] = w->pool[j];
    return 0;
}

static int32_t last_token(const win *w, int j) { return w->n_tok ? w->tok[j][w->n_tok - 1] : w->init[w->n_init - 1]; }

/* multinomial draw from softmax(logits / T) */
static int32_t sample_t(const float *logits, int n, float t, uint64_t *rng, float *scratch) {
    float mx = -INFINITY;
    for (int i = 0; i < n; i++)
        if (logits[i] > mx) mx = logits[i];
    double s = 0;
    for (int i = 0; i < n; i++) {
        scratch[i] = logits[i] == -INFINITY ? 0.0f : (float)exp(((double)logits[i] - mx) / t);
        s += scratch[i];
    }
    double u = mp_rng_f32(rng) * s, acc = 0;
    int32_t last = -1;
    for (int i = 0; i < n; i++) {
        if (scratch[i] <= 0) continue;
        acc += scratch[i];
        last = i;
        if (u < acc) return i;
    }
    return last;
}

static void greedy_update(const mp_whisper_ctx *c, win *w, float *scratch) {
    const int V = c->m->hp.n_vocab, eot = c->m->sp.eot;
    for (int j = 0; j < w->n_group; j++) {
        float *lg = w->logits + (int64_t)j * V;
        int32_t next;
        float lp = 0;
        if (last_token(w, j) == eot) {
            next = eot;
        } else {
            mp_whisper_apply_filters(c, w->o, w->tok[j], w->n_tok, lg);
            if (w->o->temperature == 0) {
                next = 0;
                for (int i = 1; i < V; i++)
                    if (lg[i] > lg[next]) next = i;
            } else {
                next = sample_t(lg, V, w->o->temperature, &w->rng, scratch);
            }
            log_softmax(lg, V, scratch);
            lp = scratch[next];
            w->sum[j] = (float)(w->sum[j] + lp); /* a float32 tensor in openai */
        }
        w->tok[j][w->n_tok] = next;
        w->lp[j][w->n_tok] = lp;
    }
    w->n_tok++;
    int all = 1;
    for (int j = 0; j < w->n_group; j++) all &= w->tok[j][w->n_tok - 1] == eot;
    if (all) w->done = 1;
}

/* topk of x (descending, ties by lower index) */
static void topk(const float *x, int n, int k, int32_t *idx, float *val) {
    for (int i = 0; i < k; i++) idx[i] = -1, val[i] = -INFINITY;
    for (int i = 0; i < n; i++) {
        float v = x[i];
        if (idx[k - 1] >= 0 && !(v > val[k - 1])) continue;
        int p = k - 1;
        while (p > 0 && (idx[p - 1] < 0 || v > val[p - 1])) {
            idx[p] = idx[p - 1];
            val[p] = val[p - 1];
            p--;
        }
        idx[p] = i;
        val[p] = v;
    }
}

typedef struct bcand {
    int src;       /* beam it extends */
    int32_t tok;
    float lp;
    double score;
    int order;     /* insertion order (python dict) */
} bcand;

static int bcand_cmp(const void *a, const void *b) {
    const bcand *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return (x->order > y->order) - (x->order < y->order);
}

static int beam_update(mp_whisper_ctx *c, win *w, float *scratch, mp_error *err) {
    const int V = c->m->hp.n_vocab, B = w->n_group, K = B + 1;
    const int32_t eot = c->m->sp.eot;
    bcand *cs = malloc(sizeof *cs * (size_t)(B * K));
    int32_t *idx = malloc(sizeof(int32_t) * (size_t)K);
    float *val = malloc(sizeof(float) * (size_t)K);
    int *same = malloc(sizeof(int) * (size_t)B);  /* beam j holds the same tokens as beam same[j] <= j */
    int *src = malloc(sizeof(int) * (size_t)B);   /* new beam k extends old beam src[k] */
    int *nslot = malloc(sizeof(int) * (size_t)B);
    int *first = malloc(sizeof(int) * (size_t)B);
    int *keep = calloc((size_t)(2 * B), sizeof(int));
    double *sums = malloc(sizeof(double) * (size_t)B);
    int rc = 0;
    if (!cs || !idx || !val || !same || !src || !nslot || !first || !keep || !sums) {
        rc = mp_errf(err, "whisper: out of memory");
        goto done;
    }
    for (int j = 0; j < B; j++) {
        same[j] = j;
        for (int i = 0; i < j && same[j] == j; i++)
            if (!memcmp(w->tok[i], w->tok[j], sizeof(int32_t) * (size_t)w->n_tok)) same[j] = same[i];
    }
    /* STEP 1: candidates prefix + token with their cumulative log probabilities (a python dict keyed by the
     * sequence: a repeated sequence keeps its first place and takes the last value and source) */
    int nc = 0;
    for (int j = 0; j < B; j++) {
        float *lg = w->logits + (int64_t)j * V;
        mp_whisper_apply_filters(c, w->o, w->tok[j], w->n_tok, lg);
        log_softmax(lg, V, scratch);
        topk(scratch, V, K, idx, val);
        for (int t = 0; t < K; t++) {
            const double score = (double)(float)(w->sum[j] + (double)val[t]);
            int found = -1;
            for (int q = 0; q < nc && found < 0; q++)
                if (cs[q].tok == idx[t] && same[cs[q].src] == same[j]) found = q;
            if (found >= 0) {
                cs[found].src = j;
                cs[found].lp = val[t];
                cs[found].score = score;
            } else {
                cs[nc] = (bcand){j, idx[t], val[t], score, nc};
                nc++;
            }
        }
    }
    /* STEP 2: best first; finished ones aside, the first B others are the new beams */
    qsort(cs, (size_t)nc, sizeof *cs, bcand_cmp);
    int saved = 0;
    for (int q = 0; q < nc && saved < B; q++) {
        const int j = cs[q].src;
        if (cs[q].tok == eot) {
            if (w->n_fin >= w->max_cand) continue; /* the candidate list is full */
            cand *f = &w->fin[w->n_fin];
            f->n = w->n_tok + 1;
            f->tok = malloc(sizeof(int32_t) * (size_t)f->n);
            f->lp = malloc(sizeof(float) * (size_t)f->n);
            if (!f->tok || !f->lp) {
                free(f->tok), free(f->lp);
                f->tok = NULL, f->lp = NULL;
                rc = mp_errf(err, "whisper: out of memory");
                goto done;
            }
            memcpy(f->tok, w->tok[j], sizeof(int32_t) * (size_t)w->n_tok);
            memcpy(f->lp, w->lp[j], sizeof(float) * (size_t)w->n_tok);
            f->tok[w->n_tok] = eot;
            f->lp[w->n_tok] = cs[q].lp;
            f->score = cs[q].score;
            w->n_fin++;
        } else {
            memcpy(w->ntok[saved], w->tok[j], sizeof(int32_t) * (size_t)w->n_tok);
            memcpy(w->nlp[saved], w->lp[j], sizeof(float) * (size_t)w->n_tok);
            w->ntok[saved][w->n_tok] = cs[q].tok;
            w->nlp[saved][w->n_tok] = cs[q].lp;
            sums[saved] = cs[q].score;
            src[saved] = j;
            saved++;
        }
    }
    /* the cache follows the beams: the first new beam of an old one keeps its slot, the others copy it */
    for (int j = 0; j < B; j++) first[j] = -1;
    for (int k = 0; k < saved; k++)
        if (first[src[k]] < 0) first[src[k]] = k;
    for (int k = 0; k < saved; k++) {
        nslot[k] = first[src[k]] == k ? w->slot[src[k]] : -1;
        for (int p = 0; p < 2 * B && nslot[k] >= 0; p++)
            if (w->pool[p] == nslot[k]) keep[p] = 1;
    }
    for (int k = 0; k < saved; k++) {
        if (nslot[k] >= 0) continue;
        int p = 0;
        while (keep[p]) p++;
        keep[p] = 1;
        nslot[k] = w->pool[p];
        mp_whisper_kv_copy(&c->kv, c->ex, nslot[k], w->slot[src[k]], w->n_init + w->n_tok);
    }
    for (int k = 0; k < saved; k++) {
        int32_t *t = w->tok[k];
        w->tok[k] = w->ntok[k];
        w->ntok[k] = t;
        float *l = w->lp[k];
        w->lp[k] = w->nlp[k];
        w->nlp[k] = l;
        w->sum[k] = sums[k];
        w->slot[k] = nslot[k];
    }
    w->n_tok++;
    if (w->n_fin >= w->max_cand) w->done = 1;
done:
    free(cs), free(idx), free(val), free(same), free(src), free(nslot), free(first), free(keep), free(sums);
    return rc;
}

/* ---------------------------------------------------------------- finalize */

/* Candidates of a finished window -> the best one (MaximumLikelihoodRanker). */
static int finalize(mp_whisper_ctx *c, win *w, mp_whisper_decoded *d, mp_error *err) {
    const int32_t eot = c->m->sp.eot;
    memset(d, 0, sizeof *d);
    if (w->beam) { /* not enough finished: add the unfinished beams, best first */
        for (int added = 0; w->n_fin < w->n_group && added < w->n_group; added++) {
            int best = -1;
            for (int j = 0; j < w->n_group; j++) {
                int used = 0;
                for (int q = 0; q < w->n_fin && !used; q++)
                    used = w->fin[q].n == w->n_tok + 1 && !memcmp(w->fin[q].tok, w->tok[j], sizeof(int32_t) * (size_t)w->n_tok);
                if (!used && (best < 0 || w->sum[j] > w->sum[best])) best = j;
            }
            if (best < 0) break;
            cand *f = &w->fin[w->n_fin];
            f->n = w->n_tok + 1;
            f->tok = malloc(sizeof(int32_t) * (size_t)f->n);
            f->lp = malloc(sizeof(float) * (size_t)f->n);
            if (!f->tok || !f->lp) return mp_errf(err, "whisper: out of memory");
            memcpy(f->tok, w->tok[best], sizeof(int32_t) * (size_t)w->n_tok);
            memcpy(f->lp, w->lp[best], sizeof(float) * (size_t)w->n_tok);
            f->tok[w->n_tok] = eot;
            f->lp[w->n_tok] = 0;
            f->score = w->sum[best];
            w->n_fin++;
        }
    } else { /* every member is a candidate */
        for (int j = 0; j < w->n_group; j++) {
            cand *f = &w->fin[w->n_fin++];
            f->tok = malloc(sizeof(int32_t) * (size_t)(w->n_tok + 1));
            f->lp = malloc(sizeof(float) * (size_t)(w->n_tok + 1));
            if (!f->tok || !f->lp) return mp_errf(err, "whisper: out of memory");
            memcpy(f->tok, w->tok[j], sizeof(int32_t) * (size_t)w->n_tok);
            memcpy(f->lp, w->lp[j], sizeof(float) * (size_t)w->n_tok);
            f->tok[w->n_tok] = eot;
            f->n = w->n_tok + 1;
            f->score = w->sum[j];
        }
    }
    int best = -1;
    double best_score = 0;
    for (int q = 0; q < w->n_fin; q++) {
        cand *f = &w->fin[q];
        int len = 0;
        while (len < f->n && f->tok[len] != eot) len++;
        f->n = len;
        double pen = w->o->length_penalty >= 0 ? pow((5.0 + len) / 6.0, w->o->length_penalty) : (double)len;
        double sc = pen > 0 ? f->score / pen : (f->score < 0 ? -INFINITY : INFINITY);
        if (best < 0 || sc > best_score) best = q, best_score = sc;
    }
    const cand *f = &w->fin[best];
    d->n_tokens = f->n;
    d->tokens = malloc(sizeof(int32_t) * (size_t)(f->n + 1));
    d->logprobs = malloc(sizeof(float) * (size_t)(f->n + 1));
    if (!d->tokens || !d->logprobs) return mp_errf(err, "whisper: out of memory");
    memcpy(d->tokens, f->tok, sizeof(int32_t) * (size_t)f->n);
    memcpy(d->logprobs, f->lp, sizeof(float) * (size_t)f->n);
    d->sum_logprob = f->score;
    d->avg_logprob = (float)(f->score / (f->n + 1));
    d->no_speech_prob = w->no_speech;
    d->temperature = w->o->temperature;
    d->text = mp_whisper_detok(c->m, f->tok, f->n);
    if (!d->text) return mp_errf(err, "whisper: out of memory");
    mp_whisper_strip(d->text);
    d->compression_ratio = mp_whisper_compression_ratio(d->text);
    return 0;
}

/* ---------------------------------------------------------------- the batch of windows */

int mp_whisper_decode_windows(mp_whisper_ctx *c, const mp_whisper_cross *const *cross, const int *wins,
                              const mp_whisper_decode_opts *opts, int n, mp_whisper_decoded *out, mp_error *err) {
    const mp_whisper *m = c->m;
    const int V = m->hp.n_vocab;
    if (n <= 0) return 0;
    for (int i = 0; i < n; i++) {
        const mp_whisper_decode_opts *o = &opts[i];
        if (o->beam_size > 0 && o->temperature != 0)
            return mp_errf(err, "whisper: beam search needs temperature 0 (got %g)", o->temperature);
        if (o->beam_size > 256 || o->best_of > 256) return mp_errf(err, "whisper: beam size / best-of above 256");
        if (o->length_penalty > 1) return mp_errf(err, "whisper: length penalty must be in [0, 1]");
    }
    win *w = calloc((size_t)n, sizeof *w);
    mp_whisper_dec_seq *seqs = NULL;
    int32_t *steptok = NULL;
    float *scratch = malloc(sizeof(float) * (size_t)V);
    int rc = -1, next_slot = 0, max_group = 0;
    if (!w || !scratch) {
        mp_errf(err, "whisper: out of memory");
        goto done;
    }
    for (int i = 0; i < n; i++) {
        if (win_init(c, &w[i], &opts[i], cross[i], wins[i], &next_slot)) {
            mp_errf(err, "whisper: out of memory");
            goto done;
        }
        if (w[i].n_group > max_group) max_group = w[i].n_group;
    }
    if (kv_reserve(c, next_slot, err)) goto done;
    seqs = malloc(sizeof *seqs * (size_t)n * max_group);
    steptok = malloc(sizeof(int32_t) * (size_t)n * max_group);
    if (!seqs || !steptok) {
        mp_errf(err, "whisper: out of memory");
        goto done;
    }
    int *rows = malloc(sizeof(int) * 2 * (size_t)n);
    if (!rows) {
        mp_errf(err, "whisper: out of memory");
        goto done;
    }
    for (int step = 0;; step++) {
        int ns = 0;
        for (int i = 0; i < n; i++) {
            win *x = &w[i];
            if (x->done) continue;
            if (step == 0) { /* the initial tokens once; the other members copy the cache */
                rows[2 * i] = x->sot_index;
                rows[2 * i + 1] = x->n_init - 1;
                const int nl = x->sot_index == x->n_init - 1 ? 1 : 2; /* [sot] alone: one row serves both */
                seqs[ns++] = (mp_whisper_dec_seq){x->slot[0], x->n_init, x->init, x->cross, x->wi, nl, rows + 2 * i,
                                                  x->logits, NULL};
                continue;
            }
            for (int j = 0; j < x->n_group; j++) {
                if (!x->beam && last_token(x, j) == m->sp.eot) continue;
                steptok[ns] = last_token(x, j);
                seqs[ns] = (mp_whisper_dec_seq){x->slot[j], 1, &steptok[ns], x->cross, x->wi, 1, NULL,
                                                x->logits + (int64_t)j * V, NULL};
                ns++;
            }
        }
        if (ns == 0) break;
        if (mp_whisper_decode(m, &c->dec, &c->kv, c->ex, seqs, ns, err)) {
            free(rows);
            goto done;
        }
        c->n_dec_steps++;
        for (int q = 0; q < ns; q++) c->n_dec_tokens += seqs[q].n;
        for (int i = 0; i < n; i++) {
            win *x = &w[i];
            if (x->done) continue;
            if (step == 0) {
                /* no-speech probability from the logits at the SOT position */
                memcpy(x->sot_logits, x->logits, sizeof(float) * (size_t)V);
                if (x->sot_index == x->n_init - 1) memcpy(x->logits + V, x->logits, sizeof(float) * (size_t)V);
                log_softmax(x->sot_logits, V, scratch);
                x->no_speech = expf(scratch[m->sp.nosp]);
                for (int j = 0; j < x->n_group; j++) { /* row 1 (the last token) for every member */
                    if (j != 1) memcpy(x->logits + (int64_t)j * V, x->logits + (int64_t)V, sizeof(float) * (size_t)V);
                    if (j > 0) mp_whisper_kv_copy(&c->kv, c->ex, x->slot[j], x->slot[0], x->n_init);
                }
            }
            if (x->beam) {
                if (beam_update(c, x, scratch, err)) {
                    free(rows);
                    goto done;
                }
            } else {
                greedy_update(c, x, scratch);
            }
            if (x->n_tok >= x->sample_len || x->n_init + x->n_tok > m->hp.n_text_ctx) x->done = 1;
        }
    }
    free(rows);
    for (int i = 0; i < n; i++)
        if (finalize(c, &w[i], &out[i], err)) goto done;
    rc = 0;
done:
    if (w)
        for (int i = 0; i < n; i++) win_free(&w[i]);
    if (rc)
        for (int i = 0; i < n; i++) mp_whisper_decoded_free(&out[i]);
    free(w);
    free(seqs);
    free(steptok);
    free(scratch);
    return rc;
}

/* ---------------------------------------------------------------- language detection */

int mp_whisper_detect_language(mp_whisper_ctx *c, const mp_whisper_cross *cross, int w0, int n, float *probs,
                               mp_error *err) {
    const mp_whisper *m = c->m;
    const mp_whisper_specials *sp = &m->sp;
    const int V = m->hp.n_vocab, nl = sp->num_languages < MP_WHISPER_N_LANG ? sp->num_languages : MP_WHISPER_N_LANG;
    if (!sp->multilingual) return mp_errf(err, "whisper: an English-only model has no language tokens to detect with");
    if (n <= 0) return 0;
    if (kv_reserve(c, n, err)) return -1;
    float *lg = malloc(sizeof(float) * (size_t)n * V);
    mp_whisper_dec_seq *seqs = malloc(sizeof *seqs * (size_t)n);
    if (!lg || !seqs) {
        free(lg);
        free(seqs);
        return mp_errf(err, "whisper: out of memory");
    }
    const int32_t sot = sp->sot;
    for (int i = 0; i < n; i++) seqs[i] = (mp_whisper_dec_seq){i, 1, &sot, cross, w0 + i, 1, NULL, lg + (int64_t)i * V, NULL};
    int rc = mp_whisper_decode(m, &c->dec, &c->kv, c->ex, seqs, n, err);
    for (int i = 0; rc == 0 && i < n; i++) {
        const float *x = lg + (int64_t)i * V + sot + 1;
        float mx = -INFINITY;
        for (int k = 0; k < nl; k++)
            if (x[k] > mx) mx = x[k];
        double s = 0;
        for (int k = 0; k < nl; k++) s += exp((double)x[k] - mx);
        for (int k = 0; k < MP_WHISPER_N_LANG; k++)
            probs[(int64_t)i * MP_WHISPER_N_LANG + k] = k < nl ? (float)(exp((double)x[k] - mx) / s) : 0.0f;
    }
    free(lg);
    free(seqs);
    return rc;
}
