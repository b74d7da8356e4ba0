/* whisper_transcribe.c — long-form transcription (openai/whisper transcribe.py): 30 s windows with seek,
 * temperature fallback, conditioning on the previous text, no-speech skip, segments from timestamp
 * pairs, word timestamps (timing.py: cross-attention DTW); several inputs in lock-step; Silero VAD time
 * mapping (whisper.cpp's --vad). */
#include "llm/whisper_decode.h"

#include "kernels/ops.h"
#include "llm/tokenizer_int.h" /* tok_utf8_decode */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define N_FRAMES 3000      /* mel frames per window */
#define HOP_S (160.0 / 16000.0)

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

mp_whisper_params mp_whisper_default_params(void) {
    mp_whisper_params p;
    memset(&p, 0, sizeof p);
    p.language = 0;
    p.beam_size = 5;
    p.best_of = 5;
    p.patience = 1.0f;
    p.length_penalty = -1.0f;
    p.temperature = 0.0f;
    p.temperature_inc = 0.2f;
    p.compression_ratio_thold = 2.4f;
    p.logprob_thold = -1.0f;
    p.no_speech_thold = 0.6f;
    p.condition_on_prev = 1;
    p.max_context = -1;
    p.suppress_blank = 1;
    p.suppress_nst = 1;
    p.max_initial_ts = 1.0f;
    return p;
}

/* Python round(x, 2): the exact binary value rounded half-even to 2 decimals (what printf does). */
static double round2(double x) {
    char b[64];
    snprintf(b, sizeof b, "%.2f", x);
    return strtod(b, NULL);
}

static void segment_free(mp_whisper_segment *s) {
    free(s->text);
    free(s->tokens);
    for (int i = 0; i < s->n_words; i++) free(s->words[i].text);
    free(s->words);
    memset(s, 0, sizeof *s);
}

void mp_whisper_result_free(mp_whisper_result *r) {
    for (int i = 0; i < r->n_segs; i++) segment_free(&r->segs[i]);
    free(r->segs);
    free(r->lang_probs);
    free(r->text);
    memset(r, 0, sizeof *r);
}

/* ---------------------------------------------------------------- words (timing.py) */

typedef struct wtime {
    char *word;
    int32_t *tok;
    int n_tok;
    double start, end, p;
} wtime;

static int utf8_cps(const char *s, int32_t **cp) { /* code points of a valid UTF-8 string */
    size_t n = strlen(s);
    *cp = malloc(sizeof(int32_t) * (n + 1));
    if (!*cp) return -1;
    int k = 0;
    for (size_t i = 0; i < n;) {
        i += (size_t)tok_utf8_decode((const unsigned char *)s + i, n - i, &(*cp)[k]);
        k++;
    }
    return k;
}

static void wtimes_free(wtime *w, int n) {
    for (int i = 0; i < n; i++) {
        free(w[i].word);
        free(w[i].tok);
    }
    free(w);
}

/* Python `a in b` for strings: substring test (the empty string is in every string). */
static int py_in(const char *a, const char *b) { return strstr(b, a) != NULL; }

static int starts_with_space(const char *s) { return s[0] == ' '; }

/* tokenizer.split_to_word_tokens: words (text) and their tokens. Returns the count, -1 on error. */
static int split_words(const mp_whisper *m, int lang, const int32_t *toks, int n, wtime **out) {
    *out = NULL;
    char *full = mp_whisper_detok_all(m, toks, n);
    if (!full) return -1;
    int32_t *fcp = NULL;
    int nf = utf8_cps(full, &fcp);
    free(full);
    if (nf < 0) return -1;
    wtime *w = calloc((size_t)n + 1, sizeof *w);
    if (!w) {
        free(fcp);
        return -1;
    }
    int nw = 0, cur0 = 0, off = 0;
    /* split_tokens_on_unicode: cut where the decoded text so far is valid (or genuinely invalid) */
    for (int i = 0; i < n; i++) {
        char *d = mp_whisper_detok_all(m, toks + cur0, i + 1 - cur0);
        int32_t *cp = NULL;
        int nc = d ? utf8_cps(d, &cp) : -1;
        if (nc < 0) {
            free(d);
            free(fcp);
            wtimes_free(w, nw);
            return -1;
        }
        int bad = -1;
        for (int k = 0; k < nc && bad < 0; k++)
            if (cp[k] == 0xFFFD) bad = k;
        free(cp);
        if (bad < 0 || (off + bad < nf && fcp[off + bad] == 0xFFFD)) {
            w[nw].word = d;
            w[nw].n_tok = i + 1 - cur0;
            w[nw].tok = malloc(sizeof(int32_t) * (size_t)w[nw].n_tok);
            if (!w[nw].tok) {
                free(fcp);
                wtimes_free(w, nw + 1);
                return -1;
            }
            memcpy(w[nw].tok, toks + cur0, sizeof(int32_t) * (size_t)w[nw].n_tok);
            nw++;
            cur0 = i + 1;
            off += nc;
        } else {
            free(d);
        }
    }
    free(fcp);
    const char *code = lang >= 0 ? mp_whisper_lang_code(lang) : "en";
    static const char *const nospace[] = {"zh", "ja", "th", "lo", "my", "yue"};
    for (int i = 0; i < 6; i++)
        if (code && !strcmp(code, nospace[i])) {
            *out = w;
            return nw;
        }
    /* split_tokens_on_spaces: a subword joins the previous word unless it is special, starts with a
     * space or is punctuation */
    static const char *const punct = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
    int k = 0;
    for (int i = 0; i < nw; i++) {
        char *stripped = strdup(w[i].word);
        if (!stripped) {
            wtimes_free(w, nw);
            return -1;
        }
        mp_whisper_strip(stripped);
        const int special = w[i].tok[0] >= m->sp.eot, punctuation = py_in(stripped, punct);
        free(stripped);
        if (special || starts_with_space(w[i].word) || punctuation || k == 0) {
            w[k++] = w[i];
        } else {
            wtime *p = &w[k - 1];
            size_t a = strlen(p->word), b = strlen(w[i].word);
            char *nwd = realloc(p->word, a + b + 1);
            int32_t *nt = realloc(p->tok, sizeof(int32_t) * (size_t)(p->n_tok + w[i].n_tok));
            if (nwd) p->word = nwd;
            if (nt) p->tok = nt;
            if (!nwd || !nt) {
                for (int q = i; q < nw; q++) {
                    free(w[q].word);
                    free(w[q].tok);
                }
                wtimes_free(w, k);
                return -1;
            }
            memcpy(p->word + a, w[i].word, b + 1);
            memcpy(p->tok + p->n_tok, w[i].tok, sizeof(int32_t) * (size_t)w[i].n_tok);
            p->n_tok += w[i].n_tok;
            free(w[i].word);
            free(w[i].tok);
        }
    }
    *out = w;
    return k;
}

/* dtw_cpu + backtrace (timing.py): x is [N][M]; path indices into ti / tj (capacity N + M). */
static int dtw(const float *x, int N, int M, int *ti, int *tj) {
    float *cost = malloc(sizeof(float) * (size_t)(N + 1) * (M + 1));
    int8_t *trace = malloc((size_t)(N + 1) * (M + 1));
    if (!cost || !trace) {
        free(cost);
        free(trace);
        return -1;
    }
#define C(i, j) cost[(size_t)(i) * (M + 1) + (j)]
#define T(i, j) trace[(size_t)(i) * (M + 1) + (j)]
    for (size_t i = 0; i < (size_t)(N + 1) * (M + 1); i++) cost[i] = INFINITY, trace[i] = -1;
    C(0, 0) = 0;
    for (int j = 1; j <= M; j++)
        for (int i = 1; i <= N; i++) {
            const float c0 = C(i - 1, j - 1), c1 = C(i - 1, j), c2 = C(i, j - 1);
            float cc;
            int t;
            if (c0 < c1 && c0 < c2) cc = c0, t = 0;
            else if (c1 < c0 && c1 < c2) cc = c1, t = 1;
            else cc = c2, t = 2;
            C(i, j) = (float)((double)x[(size_t)(i - 1) * M + (j - 1)] + (double)cc);
            T(i, j) = (int8_t)t;
        }
    for (int j = 0; j <= M; j++) T(0, j) = 2;
    for (int i = 0; i <= N; i++) T(i, 0) = 1;
    int i = N, j = M, n = 0;
    while (i > 0 || j > 0) {
        ti[n] = i - 1;
        tj[n] = j - 1;
        n++;
        int t = T(i, j);
        if (t == 0) i--, j--;
        else if (t == 1) i--;
        else j--;
    }
#undef C
#undef T
    for (int a = 0, b = n - 1; a < b; a++, b--) { /* reverse */
        int x1 = ti[a], y1 = tj[a];
        ti[a] = ti[b], tj[a] = tj[b];
        ti[b] = x1, tj[b] = y1;
    }
    free(cost);
    free(trace);
    return n;
}

static int cmp_f(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* find_alignment: word timings (relative to the window) of text tokens. Returns the count or -1. */
static int find_alignment(mp_whisper_ctx *c, const mp_whisper_cross *cross, int win, int lang, int translate,
                          const int32_t *text, int n, int num_frames, wtime **out, mp_error *err) {
    const mp_whisper *m = c->m;
    const mp_whisper_specials *sp = &m->sp;
    const int V = m->hp.n_vocab, H = m->hp.n_text_head, L = m->hp.n_text_layer, Ta = m->hp.n_audio_ctx;
    *out = NULL;
    if (n == 0) return 0;
    int32_t *toks = malloc(sizeof(int32_t) * (size_t)(n + 8));
    int S = 0;
    if (!toks) return mp_errf(err, "whisper: out of memory");
    toks[S++] = sp->sot;
    if (sp->multilingual) {
        toks[S++] = sp->sot + 1 + (lang >= 0 ? lang : 0);
        toks[S++] = translate ? sp->translate : sp->transcribe;
    }
    int N = S;
    toks[N++] = sp->no_timestamps;
    memcpy(toks + N, text, sizeof(int32_t) * (size_t)n);
    N += n;
    toks[N++] = sp->eot;
    if (N > m->hp.n_text_ctx) {
        free(toks);
        return mp_errf(err, "whisper: %d tokens are too many to align", N);
    }
    int *rows = malloc(sizeof(int) * (size_t)n);
    float *lg = malloc(sizeof(float) * (size_t)n * V);
    float *qk = malloc(sizeof(float) * (size_t)L * H * N * Ta);
    const int nh = m->n_align_heads, F = num_frames / 2;
    float *wts = malloc(sizeof(float) * (size_t)(nh > 0 ? nh : 1) * N * (F > 0 ? F : 1));
    float *mat = malloc(sizeof(float) * (size_t)N * (F > 0 ? F : 1));
    int *ti = malloc(sizeof(int) * (size_t)(N + F + 2)), *tj = malloc(sizeof(int) * (size_t)(N + F + 2));
    double *probs = malloc(sizeof(double) * (size_t)n);
    wtime *w = NULL;
    int nw = -1;
    if (!rows || !lg || !qk || !wts || !mat || !ti || !tj || !probs) {
        mp_errf(err, "whisper: out of memory for word alignment");
        goto done;
    }
    if (F < 1 || nh < 1) {
        nw = 0;
        goto done;
    }
    for (int i = 0; i < n; i++) rows[i] = S + i;
    if (c->kv.n_slots < 1 && mp_whisper_kv_init(&c->kv, m, c->ex, 1, err)) goto done;
    c->kv.len[0] = 0;
    mp_whisper_dec_seq seq = {0, N, toks, cross, win, n, rows, lg, qk};
    if (mp_whisper_decode(m, &c->dec, &c->kv, c->ex, &seq, 1, err)) goto done;
    /* probability of each text token under softmax over the text vocabulary */
    for (int i = 0; i < n; i++) {
        const float *x = lg + (int64_t)i * V;
        float mx = -INFINITY;
        for (int k = 0; k < sp->eot; k++)
            if (x[k] > mx) mx = x[k];
        double s = 0;
        for (int k = 0; k < sp->eot; k++) s += exp((double)x[k] - mx);
        probs[i] = exp((double)x[text[i]] - mx) / s;
    }
    /* alignment heads: softmax over frames, standardize over tokens, median filter 7, mean over heads */
    for (int a = 0; a < nh; a++) {
        const int l = m->align_heads[2 * a], h = m->align_heads[2 * a + 1];
        float *W = wts + (size_t)a * N * F;
        for (int t = 0; t < N; t++) {
            const float *src = qk + (((size_t)l * H + h) * N + t) * Ta;
            float *dst = W + (size_t)t * F, mx = -INFINITY;
            for (int f = 0; f < F; f++)
                if (src[f] > mx) mx = src[f];
            double s = 0;
            for (int f = 0; f < F; f++) s += dst[f] = expf(src[f] - mx);
            for (int f = 0; f < F; f++) dst[f] = (float)(dst[f] / s);
        }
        for (int f = 0; f < F; f++) {
            double mean = 0, var = 0;
            for (int t = 0; t < N; t++) mean += W[(size_t)t * F + f];
            mean /= N;
            for (int t = 0; t < N; t++) {
                double d = W[(size_t)t * F + f] - mean;
                var += d * d;
            }
            const float sd = (float)sqrt(var / N);
            for (int t = 0; t < N; t++) W[(size_t)t * F + f] = (W[(size_t)t * F + f] - (float)mean) / sd;
        }
        if (F > 3) {
            float *row = malloc(sizeof(float) * (size_t)(F + 6)), win7[7];
            if (!row) {
                mp_errf(err, "whisper: out of memory");
                goto done;
            }
            for (int t = 0; t < N; t++) {
                float *x = W + (size_t)t * F;
                for (int f = -3; f < F + 3; f++) row[f + 3] = x[f < 0 ? -f : f >= F ? 2 * (F - 1) - f : f];
                for (int f = 0; f < F; f++) {
                    memcpy(win7, row + f, sizeof win7);
                    qsort(win7, 7, sizeof(float), cmp_f);
                    x[f] = win7[3];
                }
            }
            free(row);
        }
    }
    for (size_t i = 0; i < (size_t)N * F; i++) {
        double s = 0;
        for (int a = 0; a < nh; a++) s += wts[(size_t)a * N * F + i];
        mat[i] = -(float)(s / nh);
    }
    /* rows S .. N-2: the <|notimestamps|> row and one per text token */
    const int R = N - 1 - S;
    int np = dtw(mat + (size_t)S * F, R, F, ti, tj);
    if (np < 0) {
        mp_errf(err, "whisper: out of memory");
        goto done;
    }
    int nsplit = split_words(m, lang, toks + S + 1, n + 1, &w);
    if (nsplit < 0) {
        mp_errf(err, "whisper: out of memory");
        goto done;
    }
    if (nsplit <= 1) {
        wtimes_free(w, nsplit);
        w = NULL;
        nw = 0;
        goto done;
    }
    /* jump times: the first frame of each text row on the path */
    double *jt = malloc(sizeof(double) * (size_t)(np + 1));
    if (!jt) {
        wtimes_free(w, nsplit);
        w = NULL;
        mp_errf(err, "whisper: out of memory");
        goto done;
    }
    int nj = 0;
    for (int k = 0; k < np; k++)
        if (k == 0 || ti[k] != ti[k - 1]) jt[nj++] = tj[k] / 50.0;
    int b = 0;
    for (int k = 0; k + 1 < nsplit; k++) {
        int e = b + w[k].n_tok;
        w[k].start = b < nj ? jt[b] : 0;
        w[k].end = e < nj ? jt[e] : 0;
        double s = 0;
        for (int i = b; i < e && i < n; i++) s += probs[i];
        w[k].p = e > b ? s / (e - b) : NAN;
        b = e;
    }
    free(jt);
    free(w[nsplit - 1].word); /* the <|endoftext|> word */
    free(w[nsplit - 1].tok);
    nw = nsplit - 1;
done:
    if (nw < 0 && w) wtimes_free(w, 0);
    free(toks);
    free(rows);
    free(lg);
    free(qk);
    free(wts);
    free(mat);
    free(ti);
    free(tj);
    free(probs);
    *out = nw > 0 ? w : NULL;
    if (nw == 0 && w) free(w);
    return nw;
}

static void merge_punctuations(wtime *a, int n) {
    static const char *const prepended = "\"'\xe2\x80\x9c\xc2\xbf([{-";
    static const char *const appended = "\"'.\xe3\x80\x82,\xef\xbc\x8c!\xef\xbc\x81?\xef\xbc\x9f:\xef\xbc\x9a\xe2\x80\x9d)]}\xe3\x80\x81";
    for (int i = n - 2, j = n - 1; i >= 0; i--) {
        char *st = strdup(a[i].word);
        int hit = st && starts_with_space(a[i].word) && py_in(mp_whisper_strip(st), prepended);
        free(st);
        if (hit) {
            size_t x = strlen(a[i].word), y = strlen(a[j].word);
            char *nw = malloc(x + y + 1);
            int32_t *nt = malloc(sizeof(int32_t) * (size_t)(a[i].n_tok + a[j].n_tok + 1));
            if (!nw || !nt) {
                free(nw);
                free(nt);
                return;
            }
            memcpy(nw, a[i].word, x);
            memcpy(nw + x, a[j].word, y + 1);
            memcpy(nt, a[i].tok, sizeof(int32_t) * (size_t)a[i].n_tok);
            memcpy(nt + a[i].n_tok, a[j].tok, sizeof(int32_t) * (size_t)a[j].n_tok);
            free(a[j].word);
            free(a[j].tok);
            a[j].word = nw;
            a[j].tok = nt;
            a[j].n_tok += a[i].n_tok;
            a[i].word[0] = 0;
            a[i].n_tok = 0;
        } else {
            j = i;
        }
    }
    for (int i = 0, j = 1; j < n; j++) {
        size_t x = strlen(a[i].word);
        if (!(x > 0 && a[i].word[x - 1] == ' ') && py_in(a[j].word, appended)) {
            size_t y = strlen(a[j].word);
            char *nw = realloc(a[i].word, x + y + 1);
            int32_t *nt = realloc(a[i].tok, sizeof(int32_t) * (size_t)(a[i].n_tok + a[j].n_tok + 1));
            if (nw) a[i].word = nw;
            if (nt) a[i].tok = nt;
            if (!nw || !nt) return;
            memcpy(a[i].word + x, a[j].word, y + 1);
            memcpy(a[i].tok + a[i].n_tok, a[j].tok, sizeof(int32_t) * (size_t)a[j].n_tok);
            a[i].n_tok += a[j].n_tok;
            a[j].word[0] = 0;
            a[j].n_tok = 0;
        } else {
            i = j;
        }
    }
}

static double median(double *v, int n) {
    for (int i = 1; i < n; i++) /* insertion sort: n is small */
        for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
            double t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* add_word_timestamps over the segments of one window. */
static int add_word_timestamps(mp_whisper_ctx *c, const mp_whisper_cross *cross, int win, int lang, int translate,
                               mp_whisper_segment *segs, int ns, int num_frames, double last_speech, mp_error *err) {
    const mp_whisper *m = c->m;
    if (ns <= 0) return 0;
    int total = 0;
    for (int s = 0; s < ns; s++) total += segs[s].n_tokens;
    int32_t *text = malloc(sizeof(int32_t) * (size_t)(total + 1));
    int *per = malloc(sizeof(int) * (size_t)ns);
    if (!text || !per) {
        free(text);
        free(per);
        return mp_errf(err, "whisper: out of memory");
    }
    int n = 0;
    for (int s = 0; s < ns; s++) {
        per[s] = 0;
        for (int k = 0; k < segs[s].n_tokens; k++)
            if (segs[s].tokens[k].id < m->sp.eot) text[n++] = segs[s].tokens[k].id, per[s]++;
    }
    wtime *al = NULL;
    double t0 = now_ms();
    int na = find_alignment(c, cross, win, lang, translate, text, n, num_frames, &al, err);
    c->t_align += now_ms() - t0;
    free(text);
    if (na < 0) {
        free(per);
        return -1;
    }
    double *dur = malloc(sizeof(double) * (size_t)(na + 1));
    int nd = 0;
    for (int i = 0; i < na && dur; i++)
        if (al[i].end - al[i].start != 0) dur[nd++] = al[i].end - al[i].start;
    double med = nd > 0 ? median(dur, nd) : 0.0;
    free(dur);
    if (med > 0.7) med = 0.7;
    const double maxd = med * 2;
    if (nd > 0) {
        static const char *const ends = ".\xe3\x80\x82!\xef\xbc\x81?\xef\xbc\x9f";
        for (int i = 1; i < na; i++)
            if (al[i].end - al[i].start > maxd) {
                if (py_in(al[i].word, ends)) al[i].end = al[i].start + maxd;
                else if (py_in(al[i - 1].word, ends)) al[i].start = al[i].end - maxd;
            }
    }
    merge_punctuations(al, na);
    const double toff = (double)segs[0].seek * HOP_S;
    int wi = 0;
    for (int s = 0; s < ns; s++) {
        mp_whisper_segment *sg = &segs[s];
        int saved = 0;
        sg->words = calloc((size_t)(na + 1), sizeof *sg->words);
        if (!sg->words) {
            wtimes_free(al, na);
            free(per);
            return mp_errf(err, "whisper: out of memory");
        }
        sg->n_words = 0;
        while (wi < na && saved < per[s]) {
            wtime *t = &al[wi];
            if (t->word[0]) {
                mp_whisper_word *wd = &sg->words[sg->n_words++];
                wd->text = strdup(t->word);
                wd->start = round2(toff + t->start);
                wd->end = round2(toff + t->end);
                wd->p = (float)t->p;
            }
            saved += t->n_tok;
            wi++;
        }
        mp_whisper_word *w = sg->words;
        const int nw = sg->n_words;
        if (nw > 0) {
            if (w[0].end - last_speech > med * 4 &&
                (w[0].end - w[0].start > maxd || (nw > 1 && w[1].end - w[0].start > maxd * 2))) {
                if (nw > 1 && w[1].end - w[1].start > maxd) {
                    double bd = fmax(w[1].end / 2, w[1].end - maxd);
                    w[0].end = w[1].start = bd;
                }
                w[0].start = fmax(0, w[0].end - maxd);
            }
            if (sg->start < w[0].end && sg->start - 0.5 > w[0].start)
                w[0].start = fmax(0, fmin(w[0].end - med, sg->start));
            else
                sg->start = w[0].start;
            if (sg->end > w[nw - 1].start && sg->end + 0.5 < w[nw - 1].end)
                w[nw - 1].end = fmax(w[nw - 1].start + med, sg->end);
            else
                sg->end = w[nw - 1].end;
            last_speech = sg->end;
        }
    }
    wtimes_free(al, na);
    free(per);
    return 0;
}

/* ---------------------------------------------------------------- one input (transcribe.py state) */

typedef struct job {
    float *mel;             /* [n_mels][n_frames]: the audio plus 30 s of zeros */
    int64_t n_frames, content;
    int lang, need_lang;
    int32_t *all;           /* all_tokens */
    int n_all, cap_all, n_initial, prompt_reset;
    int64_t seek;
    double last_speech;
    mp_whisper_segment *segs;
    int n_segs, cap_segs;
    int done;
    /* this round */
    int64_t seg_size;
    int win, det_win;       /* windows in the round's batch (det_win: language detection) */
    int t_idx;
    int n_fallbacks;        /* decodes redone at a higher temperature, over all windows */
    mp_whisper_decoded res;
    mp_whisper_decode_opts o;
    int32_t *prompt;
    int n_prompt;
} job;

static int push_tokens(job *j, const int32_t *t, int n) {
    if (j->n_all + n > j->cap_all) {
        int cap = j->cap_all ? j->cap_all : 256;
        while (cap < j->n_all + n) cap *= 2;
        int32_t *na = realloc(j->all, sizeof(int32_t) * (size_t)cap);
        if (!na) return -1;
        j->all = na;
        j->cap_all = cap;
    }
    memcpy(j->all + j->n_all, t, sizeof(int32_t) * (size_t)n);
    j->n_all += n;
    return 0;
}

static mp_whisper_segment *new_segment(job *j) {
    if (j->n_segs == j->cap_segs) {
        int cap = j->cap_segs ? 2 * j->cap_segs : 16;
        mp_whisper_segment *ns = realloc(j->segs, sizeof *ns * (size_t)cap);
        if (!ns) return NULL;
        j->segs = ns;
        j->cap_segs = cap;
    }
    mp_whisper_segment *s = &j->segs[j->n_segs++];
    memset(s, 0, sizeof *s);
    return s;
}

/* One segment from decoded tokens [a, b) of the window. */
static int make_segment(const mp_whisper *m, job *j, const mp_whisper_decoded *d, int a, int b, double start,
                        double end) {
    mp_whisper_segment *s = new_segment(j);
    if (!s) return -1;
    s->start = start;
    s->end = end;
    s->seek = j->seek;
    s->n_tokens = b - a;
    s->tokens = malloc(sizeof *s->tokens * (size_t)(b - a + 1));
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(b - a + 1));
    if (!s->tokens || !ids) {
        free(ids);
        return -1;
    }
    int nt = 0;
    for (int k = a; k < b; k++) {
        s->tokens[k - a] = (mp_whisper_token){d->tokens[k], expf(d->logprobs[k]), d->logprobs[k]};
        if (d->tokens[k] < m->sp.eot) ids[nt++] = d->tokens[k];
    }
    s->text = mp_whisper_detok(m, ids, nt);
    free(ids);
    s->temperature = d->temperature;
    s->avg_logprob = d->avg_logprob;
    s->compression_ratio = d->compression_ratio;
    s->no_speech_prob = d->no_speech_prob;
    return s->text ? 0 : -1;
}

static int needs_fallback(const mp_whisper_params *p, const mp_whisper_decoded *d) {
    int f = 0;
    if (p->compression_ratio_thold > 0 && d->compression_ratio > p->compression_ratio_thold) f = 1;
    if (!isnan(p->logprob_thold) && d->avg_logprob < p->logprob_thold) f = 1;
    if (!isnan(p->no_speech_thold) && d->no_speech_prob > p->no_speech_thold && !isnan(p->logprob_thold) &&
        d->avg_logprob < p->logprob_thold)
        f = 0; /* silence */
    return f;
}

/* The window's result -> segments, seek, prompt (the body of transcribe()'s loop). */
static int take_result(mp_whisper_ctx *c, job *j, const mp_whisper_params *p, const mp_whisper_cross *cross,
                       mp_error *err) {
    const mp_whisper *m = c->m;
    const int32_t tb = m->sp.timestamp_begin;
    mp_whisper_decoded *d = &j->res;
    if (!isnan(p->no_speech_thold)) { /* no voice activity */
        int skip = d->no_speech_prob > p->no_speech_thold;
        if (!isnan(p->logprob_thold) && d->avg_logprob > p->logprob_thold) skip = 0;
        if (skip) {
            j->seek += j->seg_size;
            return 0;
        }
    }
    const double toff = (double)j->seek * HOP_S, seg_dur = (double)j->seg_size * HOP_S, prec = 0.02;
    const int n = d->n_tokens, first = j->n_segs;
    const int32_t *t = d->tokens;
    const int single_end = n >= 2 && t[n - 2] < tb && t[n - 1] >= tb;
    int *cons = malloc(sizeof(int) * (size_t)(n + 1)), nc = 0;
    if (!cons) return mp_errf(err, "whisper: out of memory");
    for (int i = 0; i + 1 < n; i++)
        if (t[i] >= tb && t[i + 1] >= tb) cons[nc++] = i + 1;
    int64_t new_seek;
    if (nc > 0) {
        if (single_end) cons[nc++] = n;
        int last = 0;
        for (int k = 0; k < nc; k++) {
            const int cur = cons[k];
            if (make_segment(m, j, d, last, cur, toff + (t[last] - tb) * prec, toff + (t[cur - 1] - tb) * prec)) {
                free(cons);
                return mp_errf(err, "whisper: out of memory");
            }
            last = cur;
        }
        new_seek = single_end ? j->seek + j->seg_size : j->seek + (int64_t)(t[last - 1] - tb) * 2;
    } else {
        double dur = seg_dur;
        int32_t lts = -1;
        for (int i = 0; i < n; i++)
            if (t[i] >= tb) lts = t[i];
        if (lts >= 0 && lts != tb) dur = (lts - tb) * prec;
        if (make_segment(m, j, d, 0, n, toff, toff + dur)) {
            free(cons);
            return mp_errf(err, "whisper: out of memory");
        }
        new_seek = j->seek + j->seg_size;
    }
    free(cons);
    if (p->word_timestamps) {
        if (add_word_timestamps(c, cross, j->win, j->o.language, p->translate, j->segs + first, j->n_segs - first,
                                (int)j->seg_size, j->last_speech, err))
            return -1;
        double last_end = NAN; /* get_end */
        for (int s = j->n_segs - 1; s >= first && isnan(last_end); s--)
            if (j->segs[s].n_words) last_end = j->segs[s].words[j->segs[s].n_words - 1].end;
        if (isnan(last_end) && j->n_segs > first) last_end = j->segs[j->n_segs - 1].end;
        if (!single_end && !isnan(last_end) && last_end > toff) new_seek = (int64_t)nearbyint(last_end * 100.0); /* FRAMES_PER_SECOND */
        if (!isnan(last_end)) j->last_speech = last_end;
    }
    j->seek = new_seek > j->seek ? new_seek : j->seek + 1; /* always forward */
    /* instantaneous or empty segments are dropped (openai clears them) */
    int k = first;
    for (int s = first; s < j->n_segs; s++) {
        mp_whisper_segment *sg = &j->segs[s];
        char *st = strdup(sg->text ? sg->text : "");
        int empty = !st || !*mp_whisper_strip(st);
        free(st);
        if (sg->start == sg->end || empty) {
            segment_free(sg);
            continue;
        }
        for (int q = 0; q < sg->n_tokens; q++)
            if (push_tokens(j, &sg->tokens[q].id, 1)) return mp_errf(err, "whisper: out of memory");
        j->segs[k++] = *sg;
    }
    j->n_segs = k;
    if (!p->condition_on_prev || d->temperature > 0.5f) j->prompt_reset = j->n_all;
    return 0;
}

static void job_free(job *j) {
    free(j->mel);
    free(j->all);
    free(j->prompt);
    for (int i = 0; i < j->n_segs; i++) segment_free(&j->segs[i]);
    free(j->segs);
    mp_whisper_decoded_free(&j->res);
    memset(j, 0, sizeof *j);
}

/* ---------------------------------------------------------------- the lock-step driver */

static int n_temperatures(const mp_whisper_params *p) {
    if (!(p->temperature_inc > 0)) return 1;
    int n = 0;
    for (double t = p->temperature; t < 1.0 + 1e-6; t += p->temperature_inc) n++;
    return n > 0 ? n : 1;
}

static float temperature_at(const mp_whisper_params *p, int i) {
    double t = p->temperature;
    for (int k = 0; k < i; k++) t += p->temperature_inc; /* np.arange accumulates the same way */
    return (float)t;
}

#define MAX_ROUND 8 /* windows encoded together */

static int run_round(mp_whisper_ctx *c, job **act, int na, const mp_whisper_params *p, mp_error *errp) {
    const mp_whisper *m = c->m;
    const int NM = m->hp.n_mels, NT = n_temperatures(p);
    int n_win = 0;
    for (int a = 0; a < na; a++) {
        job *j = act[a];
        j->win = n_win++;
        j->det_win = -1;
        j->seg_size = j->content - j->seek < N_FRAMES ? j->content - j->seek : N_FRAMES;
        if (j->need_lang) j->det_win = (j->seek == 0 && j->seg_size == N_FRAMES) ? j->win : n_win++;
    }
    float *mel = malloc(sizeof(float) * (size_t)n_win * NM * N_FRAMES);
    mp_whisper_cross cross;
    memset(&cross, 0, sizeof cross);
    mp_error err;
    if (!mel) return mp_errf(errp, "whisper: out of memory");
    for (int a = 0; a < na; a++) {
        job *j = act[a];
        /* the window: content frames, zeros after them (pad_or_trim of a slice) */
        for (int b = 0; b < NM; b++) {
            float *dst = mel + ((size_t)j->win * NM + b) * N_FRAMES;
            const float *src = j->mel + (size_t)b * j->n_frames + j->seek;
            memcpy(dst, src, sizeof(float) * (size_t)j->seg_size);
            memset(dst + j->seg_size, 0, sizeof(float) * (size_t)(N_FRAMES - j->seg_size));
        }
        if (j->det_win >= 0 && j->det_win != j->win) /* detection: the first 30 s of the padded mel */
            mp_mel_segment(j->mel, NM, j->n_frames, 0, N_FRAMES, mel + (size_t)j->det_win * NM * N_FRAMES);
    }
    double t0 = now_ms();
    int ok = mp_whisper_encode(m, &c->enc, c->ex, mel, n_win, NULL, &err) == 0 &&
             mp_whisper_cross_init(&cross, m, c->ex, n_win, &err) == 0 &&
             mp_whisper_cross_compute(m, c->ex, c->enc.x, n_win, &cross, 0, &err) == 0;
    c->t_enc += now_ms() - t0;
    free(mel);
    if (!ok) goto fail_all;
    /* language detection on the first window */
    for (int a = 0; a < na; a++) {
        job *j = act[a];
        if (j->det_win < 0) continue;
        float probs[MP_WHISPER_N_LANG];
        if (mp_whisper_detect_language(c, &cross, j->det_win, 1, probs, &err)) goto fail_all;
        int best = 0;
        for (int k = 1; k < MP_WHISPER_N_LANG; k++)
            if (probs[k] > probs[best]) best = k;
        j->lang = best;
        j->need_lang = 0;
    }
    /* decode with fallback: every window at its current temperature, together */
    {
        const mp_whisper_cross **cs = malloc(sizeof *cs * (size_t)na);
        int *wins = malloc(sizeof(int) * (size_t)na);
        mp_whisper_decode_opts *os = malloc(sizeof *os * (size_t)na);
        mp_whisper_decoded *outs = calloc((size_t)na, sizeof *outs);
        job **pend = malloc(sizeof *pend * (size_t)na);
        if (!cs || !wins || !os || !outs || !pend) {
            free(cs), free(wins), free(os), free(outs), free(pend);
            mp_errf(&err, "whisper: out of memory");
            goto fail_all;
        }
        int np = 0;
        for (int a = 0; a < na; a++) {
            act[a]->t_idx = 0;
            pend[np++] = act[a];
        }
        while (np > 0) {
            for (int q = 0; q < np; q++) {
                job *j = pend[q];
                mp_whisper_decode_opts *o = &os[q];
                *o = mp_whisper_decode_default_opts();
                o->language = j->lang;
                o->translate = p->translate;
                o->temperature = temperature_at(p, j->t_idx);
                o->beam_size = o->temperature == 0 && p->beam_size > 1 ? p->beam_size : 0;
                o->best_of = o->temperature > 0 ? p->best_of : 0;
                o->patience = p->patience;
                o->length_penalty = p->length_penalty;
                /* the prompt: tokens since the last reset, at most max_context of them */
                int np0 = j->n_all - j->prompt_reset;
                if (p->max_context >= 0 && np0 > p->max_context) np0 = p->max_context;
                o->prompt = j->all + (j->n_all - np0);
                o->n_prompt = np0;
                o->sample_len = p->sample_len;
                o->suppress_blank = p->suppress_blank;
                o->suppress_nst = p->suppress_nst;
                o->without_timestamps = p->no_timestamps;
                o->max_initial_ts = p->max_initial_ts;
                o->seed = p->seed ^ ((uint64_t)j->seek * 0x9E3779B97F4A7C15ull) ^ ((uint64_t)(j->t_idx + 1) << 48);
                cs[q] = &cross;
                wins[q] = j->win;
                j->o = *o;
            }
            t0 = now_ms();
            int drc = mp_whisper_decode_windows(c, cs, wins, os, np, outs, &err);
            c->t_dec += now_ms() - t0;
            if (drc) {
                free(cs), free(wins), free(os), free(outs), free(pend);
                goto fail_all;
            }
            int keep = 0;
            for (int q = 0; q < np; q++) {
                job *j = pend[q];
                mp_whisper_decoded_free(&j->res);
                j->res = outs[q];
                memset(&outs[q], 0, sizeof outs[q]);
                if (needs_fallback(p, &j->res) && j->t_idx + 1 < NT) {
                    j->t_idx++;
                    j->n_fallbacks++;
                    pend[keep++] = j;
                }
            }
            np = keep;
        }
        free(cs), free(wins), free(os), free(outs), free(pend);
    }
    for (int a = 0; a < na; a++) {
        job *j = act[a];
        if (take_result(c, j, p, &cross, &err)) goto fail_all;
        mp_whisper_decoded_free(&j->res);
    }
    mp_whisper_cross_free(&cross, c->ex);
    return 0;
fail_all:
    mp_whisper_cross_free(&cross, c->ex);
    *errp = err;
    return -1;
}

int mp_whisper_transcribe_batch(mp_whisper_ctx *c, const float *const *samples, const int64_t *n, int n_inputs,
                                const mp_whisper_params *p, mp_whisper_result *r, int *rc, mp_error *errs) {
    const mp_whisper *m = c->m;
    job *jobs = calloc((size_t)(n_inputs > 0 ? n_inputs : 1), sizeof *jobs);
    job **act = malloc(sizeof *act * (size_t)(n_inputs > 0 ? n_inputs : 1));
    int failed = 0;
    for (int i = 0; i < n_inputs; i++) {
        memset(&r[i], 0, sizeof r[i]);
        rc[i] = 0;
    }
    if (!jobs || !act) {
        for (int i = 0; i < n_inputs; i++) rc[i] = mp_errf(&errs[i], "whisper: out of memory");
        free(jobs);
        free(act);
        return n_inputs;
    }
    const mp_mel_params mp = mp_mel_params_whisper();
    for (int i = 0; i < n_inputs; i++) {
        job *j = &jobs[i];
        double t0 = now_ms();
        if (mp_log_mel(samples[i], n[i], &m->mel, &mp, c->ex->tp, &j->mel, &j->n_frames, &errs[i])) {
            rc[i] = -1;
            j->done = 1;
            continue;
        }
        c->t_mel += now_ms() - t0;
        j->content = j->n_frames - N_FRAMES > 0 ? j->n_frames - N_FRAMES : 0;
        j->need_lang = m->sp.multilingual && p->language < 0;
        j->lang = m->sp.multilingual && p->language >= 0 ? p->language : 0;
        j->prompt_reset = 0;
        if (p->prompt && *p->prompt) { /* encode(" " + prompt.strip()) */
            size_t len = strlen(p->prompt);
            char *t = malloc(len + 2);
            int32_t *ids = malloc(sizeof(int32_t) * (len * 4 + 8));
            int k = -1;
            if (t && ids) {
                t[0] = ' ';
                memcpy(t + 1, p->prompt, len + 1);
                mp_whisper_strip(t + 1);
                k = mp_whisper_tokenize(m, t, ids, (int)(len * 4 + 8));
            }
            if (k < 0 || push_tokens(j, ids, k)) {
                rc[i] = mp_errf(&errs[i], "whisper: cannot tokenize the prompt");
                j->done = 1;
            }
            j->n_initial = k > 0 ? k : 0;
            free(t);
            free(ids);
        }
        r[i].duration = (double)n[i] / 16000.0;
    }
    for (;;) {
        int na = 0;
        for (int i = 0; i < n_inputs; i++) {
            job *j = &jobs[i];
            if (j->done) continue;
            if (j->seek >= j->content) {
                j->done = 1;
                continue;
            }
            act[na++] = j;
        }
        if (na == 0) break;
        for (int a0 = 0; a0 < na; a0 += MAX_ROUND) {
            int nb = na - a0 < MAX_ROUND ? na - a0 : MAX_ROUND;
            mp_error err;
            for (int a = a0; a < a0 + nb; a++) r[act[a] - jobs].n_windows++;
            if (run_round(c, act + a0, nb, p, &err))
                for (int a = a0; a < a0 + nb; a++) {
                    const int i = (int)(act[a] - jobs);
                    act[a]->done = 1;
                    rc[i] = -1;
                    errs[i] = err;
                }
        }
    }
    for (int i = 0; i < n_inputs; i++) {
        job *j = &jobs[i];
        mp_whisper_result *res = &r[i];
        if (rc[i]) {
            failed++;
            job_free(j);
            continue;
        }
        res->language = j->lang;
        res->n_fallbacks = j->n_fallbacks;
        res->segs = j->segs;
        res->n_segs = j->n_segs;
        j->segs = NULL;
        j->n_segs = 0;
        for (int s = 0; s < res->n_segs; s++) {
            res->segs[s].t0 = (int64_t)nearbyint(res->segs[s].start * 100.0);
            res->segs[s].t1 = (int64_t)nearbyint(res->segs[s].end * 100.0);
        }
        res->text = mp_whisper_detok(m, j->all + j->n_initial, j->n_all - j->n_initial);
        if (!res->text) {
            rc[i] = mp_errf(&errs[i], "whisper: out of memory");
            failed++;
        }
        job_free(j);
    }
    free(jobs);
    free(act);
    return failed;
}

int mp_whisper_transcribe(mp_whisper_ctx *c, const float *samples, int64_t n, const mp_whisper_params *p,
                          mp_whisper_result *r, mp_error *err) {
    int rc = 0;
    return mp_whisper_transcribe_batch(c, &samples, &n, 1, p, r, &rc, err) ? -1 : 0;
}

/* ---------------------------------------------------------------- Silero VAD time mapping */

static int cs_to_samples(int64_t cs) { return (int)((cs / 100.0) * 16000 + 0.5); }
static int64_t samples_to_cs(int64_t s) { return (int64_t)((s / 16000.0) * 100.0 + 0.5); }

int mp_whisper_vad_filter(const float *samples, int64_t n, const int64_t *seg_t0, const int64_t *seg_t1, int n_segs,
                          float overlap_s, float **out, int64_t *n_out, mp_whisper_vad_map *map, mp_error *err) {
    memset(map, 0, sizeof *map);
    *out = NULL;
    *n_out = 0;
    if (n_segs <= 0) return 0;
    const int ov = (int)(overlap_s * 16000), sil = (int)(0.1 * 16000);
    int64_t total = 0;
    for (int i = 0; i < n_segs; i++) {
        int64_t a = cs_to_samples(seg_t0[i]), b = cs_to_samples(seg_t1[i]);
        if (i < n_segs - 1) b += ov;
        if (b > n - 1) b = n - 1;
        total += b - a > 0 ? b - a : 0;
    }
    total += (int64_t)(n_segs - 1) * sil;
    float *f = calloc((size_t)(total > 0 ? total : 1), sizeof(float));
    map->proc = malloc(sizeof(int64_t) * (size_t)n_segs * 4);
    map->orig = malloc(sizeof(int64_t) * (size_t)n_segs * 4);
    if (!f || !map->proc || !map->orig) {
        free(f);
        mp_whisper_vad_map_free(map);
        return mp_errf(err, "vad: out of memory");
    }
    int64_t off = 0;
    for (int i = 0; i < n_segs; i++) {
        int64_t a = cs_to_samples(seg_t0[i]), b = cs_to_samples(seg_t1[i]);
        if (a > n - 1) a = n - 1;
        if (b > n - 1) b = n - 1;
        const int64_t orig_len = b - a;
        if (i < n_segs - 1) b = b + ov < n - 1 ? b + ov : n - 1;
        const int64_t len = b - a;
        if (len <= 0) continue;
        map->proc[map->n] = samples_to_cs(off);
        map->orig[map->n++] = seg_t0[i];
        map->proc[map->n] = samples_to_cs(off + orig_len);
        map->orig[map->n++] = seg_t1[i];
        if (off + len > total) break; /* cannot happen: sizes were counted the same way */
        memcpy(f + off, samples + a, sizeof(float) * (size_t)len);
        off += len;
        if (i < n_segs - 1 && off + sil <= total) {
            map->proc[map->n] = samples_to_cs(off);
            map->orig[map->n++] = seg_t1[i];
            map->proc[map->n] = samples_to_cs(off + sil);
            map->orig[map->n++] = seg_t0[i + 1];
            off += sil; /* zeros */
        }
    }
    /* sort by processed time (stable), drop repeated processed times (the first one stays) */
    for (int i = 1; i < map->n; i++)
        for (int k = i; k > 0 && map->proc[k - 1] > map->proc[k]; k--) {
            int64_t t = map->proc[k];
            map->proc[k] = map->proc[k - 1], map->proc[k - 1] = t;
            t = map->orig[k];
            map->orig[k] = map->orig[k - 1], map->orig[k - 1] = t;
        }
    int k = 0;
    for (int i = 0; i < map->n; i++)
        if (k == 0 || map->proc[i] != map->proc[k - 1]) map->proc[k] = map->proc[i], map->orig[k] = map->orig[i], k++;
    map->n = k;
    *out = f;
    *n_out = off;
    return 0;
}

int64_t mp_whisper_vad_map_time(const mp_whisper_vad_map *map, int64_t t) {
    if (map->n == 0) return t;
    if (t <= map->proc[0]) return map->orig[0];
    if (t >= map->proc[map->n - 1]) return map->orig[map->n - 1];
    int lo = 0, hi = map->n - 1; /* first entry with proc >= t */
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (map->proc[mid] < t) lo = mid + 1;
        else hi = mid;
    }
    if (map->proc[lo] == t) return map->orig[lo];
    const int64_t pd = map->proc[lo] - map->proc[lo - 1], od = map->orig[lo] - map->orig[lo - 1];
    if (pd == 0) return map->orig[lo - 1];
    return map->orig[lo - 1] + ((t - map->proc[lo - 1]) * od) / pd;
}

void mp_whisper_vad_map_free(mp_whisper_vad_map *map) {
    free(map->proc);
    free(map->orig);
    memset(map, 0, sizeof *map);
}

void mp_whisper_result_map_vad(mp_whisper_result *r, const mp_whisper_vad_map *map) {
    if (!map || map->n == 0) return;
    for (int s = 0; s < r->n_segs; s++) {
        mp_whisper_segment *sg = &r->segs[s];
        int64_t t0 = mp_whisper_vad_map_time(map, sg->t0), t1 = mp_whisper_vad_map_time(map, sg->t1);
        if (t1 - t0 < 10) t1 = t0 + 10; /* whisper.cpp's minimum segment length (10 cs) */
        sg->t0 = t0;
        sg->t1 = t1;
        sg->start = t0 / 100.0;
        sg->end = t1 / 100.0;
        for (int w = 0; w < sg->n_words; w++) {
            mp_whisper_word *wd = &sg->words[w];
            wd->start = mp_whisper_vad_map_time(map, (int64_t)nearbyint(wd->start * 100.0)) / 100.0;
            wd->end = mp_whisper_vad_map_time(map, (int64_t)nearbyint(wd->end * 100.0)) / 100.0;
        }
    }
}
