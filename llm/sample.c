/* sample.c — token sampling (llama2.c's sampler plus top-k, min-p and penalties) and stopping rules. */
#include "llm/sample.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    float prob;
    int32_t index;
} prob_index;

mp_sampler_params mp_sampler_default_params(void) {
    mp_sampler_params p;
    memset(&p, 0, sizeof p);
    p.temperature = 1.0f;
    p.top_p = 0.9f;
    p.repeat_penalty = 1.0f;
    p.penalty_last_n = 64;
    return p;
}

int mp_sampler_init(mp_sampler *s, const mp_sampler_params *p, int n_vocab, mp_error *err) {
    memset(s, 0, sizeof *s);
    if (n_vocab <= 0) return mp_errf(err, "sampler: bad vocabulary size %d", n_vocab);
    if (p->temperature < 0 || p->temperature != p->temperature)
        return mp_errf(err, "sampler: temperature must be >= 0 (got %g)", (double)p->temperature);
    if (p->top_k < 0) return mp_errf(err, "sampler: top-k must be >= 0 (got %d)", p->top_k);
    if (p->min_p < 0 || p->min_p > 1) return mp_errf(err, "sampler: min-p must be in [0, 1] (got %g)", (double)p->min_p);
    if (p->repeat_penalty <= 0) return mp_errf(err, "sampler: repeat penalty must be > 0 (got %g)", (double)p->repeat_penalty);
    s->p = *p;
    s->rng = p->seed ? p->seed : 0x9E3779B97F4A7C15ull;
    s->n_vocab = n_vocab;
    s->probs = malloc((size_t)n_vocab * sizeof(float));
    s->pidx = malloc((size_t)n_vocab * sizeof(prob_index));
    s->counts = calloc((size_t)n_vocab, sizeof(int32_t));
    if (!s->probs || !s->pidx || !s->counts) {
        mp_sampler_free(s);
        return mp_errf(err, "sampler: out of memory for %d tokens", n_vocab);
    }
    return 0;
}

void mp_sampler_free(mp_sampler *s) {
    free(s->probs);
    free(s->pidx);
    free(s->counts);
    free(s->hist);
    memset(s, 0, sizeof *s);
}

void mp_sampler_reset_history(mp_sampler *s) {
    s->n_hist = s->hist_pos = 0;
    if (s->counts) memset(s->counts, 0, (size_t)s->n_vocab * sizeof(int32_t));
}

static int penalties_on(const mp_sampler_params *p) {
    return p->penalty_last_n != 0 &&
           (p->repeat_penalty != 1.0f || p->frequency_penalty != 0.0f || p->presence_penalty != 0.0f);
}

void mp_sampler_accept(mp_sampler *s, int32_t tok) {
    if (!penalties_on(&s->p) || tok < 0 || tok >= s->n_vocab) return;
    int window = s->p.penalty_last_n;
    if (window > 0) {
        if (!s->hist) {
            s->hist = malloc((size_t)window * sizeof(int32_t));
            if (!s->hist) return;
            s->cap_hist = window;
        }
        if (s->n_hist == window) { /* evict the oldest */
            int32_t old = s->hist[s->hist_pos];
            s->counts[old]--;
        } else {
            s->n_hist++;
        }
        s->hist[s->hist_pos] = tok;
        s->hist_pos = (s->hist_pos + 1) % window;
    } else { /* whole history: only counts are needed */
        s->n_hist++;
    }
    s->counts[tok]++;
}

static void apply_penalties(mp_sampler *s, float *logits) {
    if (!penalties_on(&s->p) || s->n_hist == 0) return;
    const float rp = s->p.repeat_penalty, fp = s->p.frequency_penalty, pp = s->p.presence_penalty;
    for (int i = 0; i < s->n_vocab; i++) {
        int c = s->counts[i];
        if (!c) continue;
        float l = logits[i];
        if (rp != 1.0f) l = l > 0 ? l / rp : l * rp;
        l -= (float)c * fp + pp;
        logits[i] = l;
    }
}

static int32_t argmax(const float *x, int n) { /* first maximum, as run.c */
    int32_t best = 0;
    float m = x[0];
    for (int i = 1; i < n; i++)
        if (x[i] > m) { m = x[i]; best = i; }
    return best;
}

static void softmax(float *x, int n) { /* run.c's softmax, same float operation order */
    float max_val = x[0];
    for (int i = 1; i < n; i++)
        if (x[i] > max_val) max_val = x[i];
    float sum = 0.0f;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - max_val);
        sum += x[i];
    }
    for (int i = 0; i < n; i++) x[i] /= sum;
}

/* descending probability, ties by lower index (what glibc's merge-sort qsort gives run.c) */
static int cmp_prob_desc(const void *a, const void *b) {
    const prob_index *x = a, *y = b;
    if (x->prob > y->prob) return -1;
    if (x->prob < y->prob) return 1;
    return (x->index > y->index) - (x->index < y->index);
}

static int32_t sample_mult(const float *p, int n, float coin) {
    float cdf = 0.0f;
    int32_t last = n - 1;
    for (int i = 0; i < n; i++) {
        cdf += p[i];
        if (coin < cdf) return i;
    }
    while (last > 0 && p[last] == 0.0f) last--; /* never fall back onto a removed token */
    return last;
}

static int32_t sample_topp(const float *p, int n, float topp, prob_index *pi, float coin) {
    int n0 = 0;
    const float cutoff = (1.0f - topp) / (float)(n - 1 > 0 ? n - 1 : 1);
    for (int i = 0; i < n; i++)
        if (p[i] >= cutoff && p[i] > 0.0f) {
            pi[n0].index = i;
            pi[n0].prob = p[i];
            n0++;
        }
    if (n0 == 0) return argmax(p, n);
    qsort(pi, (size_t)n0, sizeof *pi, cmp_prob_desc);
    float cum = 0.0f;
    int last = n0 - 1;
    for (int i = 0; i < n0; i++) {
        cum += pi[i].prob;
        if (cum > topp) {
            last = i;
            break;
        }
    }
    float r = coin * cum, cdf = 0.0f;
    for (int i = 0; i <= last; i++) {
        cdf += pi[i].prob;
        if (r < cdf) return pi[i].index;
    }
    return pi[last].index;
}

/* Zero every probability outside the k largest / below min_p * max, then renormalise. */
static void truncate_probs(mp_sampler *s, float *p) {
    const int n = s->n_vocab;
    int changed = 0;
    if (s->p.top_k > 0 && s->p.top_k < n) {
        prob_index *pi = s->pidx;
        for (int i = 0; i < n; i++) {
            pi[i].prob = p[i];
            pi[i].index = i;
        }
        qsort(pi, (size_t)n, sizeof *pi, cmp_prob_desc);
        for (int i = s->p.top_k; i < n; i++) p[pi[i].index] = 0.0f;
        changed = 1;
    }
    if (s->p.min_p > 0.0f) {
        float m = 0.0f;
        for (int i = 0; i < n; i++)
            if (p[i] > m) m = p[i];
        const float thr = s->p.min_p * m;
        for (int i = 0; i < n; i++)
            if (p[i] < thr) p[i] = 0.0f;
        changed = 1;
    }
    if (changed) {
        float sum = 0.0f;
        for (int i = 0; i < n; i++) sum += p[i];
        if (sum > 0)
            for (int i = 0; i < n; i++) p[i] /= sum;
    }
}

static float log_softmax_at(const float *x, int n, int32_t id) {
    float m = x[0];
    for (int i = 1; i < n; i++)
        if (x[i] > m) m = x[i];
    double sum = 0;
    for (int i = 0; i < n; i++) sum += exp((double)x[i] - m);
    return (float)((double)x[id] - m - log(sum));
}

int32_t mp_sampler_sample(mp_sampler *s, float *logits, float *logprob) {
    const int n = s->n_vocab;
    /* the raw distribution is needed for logprobs; keep a copy only when asked */
    float raw_lp = 0;
    int32_t next;
    if (logprob) memcpy(s->probs, logits, (size_t)n * sizeof(float));
    apply_penalties(s, logits);
    if (s->p.temperature == 0.0f) {
        next = argmax(logits, n);
    } else {
        for (int i = 0; i < n; i++) logits[i] /= s->p.temperature;
        softmax(logits, n);
        truncate_probs(s, logits);
        float coin = mp_rng_f32(&s->rng);
        if (s->p.top_p <= 0 || s->p.top_p >= 1)
            next = sample_mult(logits, n, coin);
        else
            next = sample_topp(logits, n, s->p.top_p, s->pidx, coin);
    }
    if (logprob) {
        raw_lp = log_softmax_at(s->probs, n, next);
        *logprob = raw_lp;
    }
    return next;
}

int mp_logprobs_top(const float *logits, int n, int k, int32_t *ids, float *logprobs) {
    if (k > n) k = n;
    if (k <= 0) return 0;
    float m = logits[0];
    for (int i = 1; i < n; i++)
        if (logits[i] > m) m = logits[i];
    double sum = 0;
    for (int i = 0; i < n; i++) sum += exp((double)logits[i] - m);
    const double lse = m + log(sum);
    int cnt = 0; /* insertion into a sorted list of k */
    for (int i = 0; i < n; i++) {
        float v = logits[i];
        if (cnt == k && !(v > logits[ids[k - 1]])) continue;
        int j = cnt < k ? cnt++ : k - 1;
        while (j > 0 && v > logits[ids[j - 1]]) {
            ids[j] = ids[j - 1];
            j--;
        }
        ids[j] = i;
    }
    for (int j = 0; j < k; j++) logprobs[j] = (float)((double)logits[ids[j]] - lse);
    return k;
}

/* ---------------------------------------------------------------- stopping */

void mp_stopper_init(mp_stopper *st, int max_new) {
    memset(st, 0, sizeof *st);
    st->max_new = max_new;
}

void mp_stopper_free(mp_stopper *st) {
    free(st->held);
    st->held = NULL;
    st->n_held = st->cap_held = 0;
}

int mp_stopper_add_eos(mp_stopper *st, int32_t id) {
    if (id < 0) return 0;
    for (int i = 0; i < st->n_eos; i++)
        if (st->eos[i] == id) return 0;
    if (st->n_eos == MP_MAX_EOS) return -1;
    st->eos[st->n_eos++] = id;
    return 0;
}

int mp_stopper_add_stop(mp_stopper *st, const char *text) {
    if (!text || !*text) return 0;
    if (st->n_stop == MP_MAX_STOP) return -1;
    st->stop[st->n_stop++] = text;
    return 0;
}

static int emit(char *out, int cap, const char *src, size_t n) {
    if (cap <= 0) return 0;
    if (n > (size_t)cap - 1) n = (size_t)cap - 1;
    memcpy(out, src, n);
    out[n] = 0;
    return (int)n;
}

int mp_stopper_push(mp_stopper *st, int32_t id, const char *text, char *out, int cap) {
    if (cap > 0) out[0] = 0;
    if (st->stopped) return 0;
    st->n_new++;
    for (int i = 0; i < st->n_eos; i++)
        if (st->eos[i] == id) {
            st->stopped = 1;
            return mp_stopper_flush(st, out, cap);
        }
    size_t tl = text ? strlen(text) : 0;
    if (st->n_held + tl + 1 > st->cap_held) {
        size_t nc = st->cap_held ? st->cap_held : 64;
        while (nc < st->n_held + tl + 1) nc *= 2;
        char *nh = realloc(st->held, nc);
        if (!nh) { /* cannot hold back: release everything */
            int r = emit(out, cap, st->held ? st->held : "", st->n_held);
            st->n_held = 0;
            return r;
        }
        st->held = nh;
        st->cap_held = nc;
    }
    memcpy(st->held + st->n_held, text, tl);
    st->n_held += tl;
    st->held[st->n_held] = 0;
    /* a complete stop string: release the text before it and stop */
    size_t first = (size_t)-1;
    for (int s = 0; s < st->n_stop; s++) {
        const char *hit = strstr(st->held, st->stop[s]);
        if (hit && (size_t)(hit - st->held) < first) first = (size_t)(hit - st->held);
    }
    if (first != (size_t)-1) {
        st->stopped = 2;
        int r = emit(out, cap, st->held, first);
        st->n_held = 0;
        return r;
    }
    /* hold back the longest suffix that is a prefix of some stop string */
    size_t keep = 0;
    for (int s = 0; s < st->n_stop; s++) {
        size_t sl = strlen(st->stop[s]);
        for (size_t k = sl - 1; k > keep; k--)
            if (k <= st->n_held && !memcmp(st->held + st->n_held - k, st->stop[s], k)) {
                keep = k;
                break;
            }
    }
    size_t rel = st->n_held - keep;
    int r = emit(out, cap, st->held, rel);
    memmove(st->held, st->held + rel, keep);
    st->n_held = keep;
    st->held[keep] = 0;
    if (st->max_new > 0 && st->n_new >= st->max_new) {
        st->stopped = 3;
        r += mp_stopper_flush(st, out + r, cap - r);
    }
    return r;
}

int mp_stopper_flush(mp_stopper *st, char *out, int cap) {
    int r = emit(out, cap, st->held ? st->held : "", st->n_held);
    st->n_held = 0;
    return r;
}
