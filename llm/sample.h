/* sample.h — choosing the next token from logits, and deciding when generation stops.
 *
 * The sampler is llama2.c's (run.c) extended with the usual knobs. With only temperature and top-p
 * set it is bit-for-bit run.c: logits / temperature, softmax, one xorshift coin per sampled token,
 * multinomial (top-p off) or nucleus sampling (top-p in (0,1)). Greedy (temperature 0) draws no coin.
 *
 * Order of the chain: penalties (repetition, frequency, presence) on the raw logits -> greedy argmax
 * when temperature == 0 -> logits / temperature -> softmax -> top-k -> min-p -> top-p / multinomial.
 * Everything is sequential scalar code on one thread, so the result does not depend on thread count.
 */
#ifndef MP_SAMPLE_H
#define MP_SAMPLE_H

#include "kernels/mp.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mp_sampler_params {
    float temperature;       /* 0 = greedy (argmax) */
    int top_k;               /* keep the k most probable (0 = off) */
    float top_p;             /* nucleus: <= 0 or >= 1 = off */
    float min_p;             /* drop tokens with p < min_p * p_max (0 = off) */
    float repeat_penalty;    /* CTRL-style: logit > 0 ? logit / r : logit * r (1 = off) */
    float frequency_penalty; /* logit -= count * f (0 = off) */
    float presence_penalty;  /* logit -= (count > 0) * p (0 = off) */
    int penalty_last_n;      /* how many previous tokens the penalties look at (-1 = all, 0 = none) */
    uint64_t seed;           /* xorshift state; 0 is replaced by a fixed non-zero constant */
} mp_sampler_params;

/* temperature 1, top-p 0.9 (llama2.c's defaults), penalties off, last_n 64, seed 0. */
mp_sampler_params mp_sampler_default_params(void);

typedef struct mp_sampler {
    mp_sampler_params p;
    uint64_t rng;
    int n_vocab;
    float *probs;       /* [n_vocab] scratch */
    void *pidx;         /* [n_vocab] (prob, index) pairs for top-p / top-k */
    int32_t *hist;      /* ring of the last penalty_last_n tokens (or a growing array for -1) */
    int n_hist, cap_hist, hist_pos;
    int32_t *counts;    /* [n_vocab] occurrences inside the penalty window */
} mp_sampler;

int mp_sampler_init(mp_sampler *s, const mp_sampler_params *p, int n_vocab, mp_error *err);
void mp_sampler_free(mp_sampler *s);
/* Record a token that is now part of the context (prompt tokens and sampled ones) for the penalties. */
void mp_sampler_accept(mp_sampler *s, int32_t tok);
/* Forget the history (the RNG state is kept). */
void mp_sampler_reset_history(mp_sampler *s);

/* Pick the next token. logits[n_vocab] is modified (used as scratch). If logprob != NULL, it receives
 * log softmax(raw logits)[chosen] computed before any penalty/temperature. */
int32_t mp_sampler_sample(mp_sampler *s, float *logits, float *logprob);

/* The k most likely tokens under log softmax(logits) (descending; ties by lower id). Does not modify
 * logits. Returns k (clamped to n). */
int mp_logprobs_top(const float *logits, int n, int k, int32_t *ids, float *logprobs);

/* llama2.c's xorshift64* generator (run.c random_u32 / random_f32). */
static inline uint32_t mp_rng_u32(uint64_t *state) {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    return (uint32_t)((*state * 0x2545F4914F6CDD1Dull) >> 32);
}
static inline float mp_rng_f32(uint64_t *state) { return (float)(mp_rng_u32(state) >> 8) / 16777216.0f; }

/* ---------------------------------------------------------------- stopping */

#define MP_MAX_STOP 8
#define MP_MAX_EOS 8

/* Decides when generation ends: EOS ids, stop strings, max new tokens. Text is fed as it is produced;
 * bytes that might be the start of a stop string are held back until it is clear they are not. */
typedef struct mp_stopper {
    int32_t eos[MP_MAX_EOS];
    int n_eos;
    const char *stop[MP_MAX_STOP];
    int n_stop;
    int max_new;   /* <= 0: unlimited */
    int n_new;
    char *held;    /* text not yet released */
    size_t n_held, cap_held;
    int stopped;   /* 1 eos, 2 stop string, 3 max tokens */
} mp_stopper;

void mp_stopper_init(mp_stopper *st, int max_new);
void mp_stopper_free(mp_stopper *st);
int mp_stopper_add_eos(mp_stopper *st, int32_t id);        /* ignores duplicates and ids < 0 */
int mp_stopper_add_stop(mp_stopper *st, const char *text); /* borrowed string; -1 when full */
/* Feed one generated token and its text. Writes the text that is now safe to print into out
 * (NUL-terminated, at most cap-1 bytes; text up to a stop string) and returns its length. After the
 * call, st->stopped says whether generation is over. An EOS token contributes no text. */
int mp_stopper_push(mp_stopper *st, int32_t id, const char *text, char *out, int cap);
/* Release the held-back text at the end (when not stopped by a stop string). */
int mp_stopper_flush(mp_stopper *st, char *out, int cap);

#ifdef __cplusplus
}
#endif
#endif
