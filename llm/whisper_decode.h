/* whisper_decode.h — Whisper decoding and long-form transcription, as openai/whisper decoding.py and
 * transcribe.py define them (the reference our tests compare against token for token):
 *
 *  - SOT sequence [<|startofprev|> prompt...] <|startoftranscript|> <|lang|> <|task|> [<|notimestamps|>]
 *    (English-only models: <|startoftranscript|> alone);
 *  - logit filters in openai's order: SuppressBlank, SuppressTokens (non-speech symbols when
 *    suppress_nst, plus the task/sot/prev/solm/nospeech tokens), ApplyTimestampRules (pairs, monotonic,
 *    max initial timestamp 1.0 s, timestamp when their summed probability beats every text token);
 *  - greedy (argmax), sampling at T > 0 with best_of candidates, beam search with patience and
 *    openai's ranking (sum logprob / length, or the Google NMT length penalty);
 *  - temperature fallback on the gzip compression ratio and the average log probability, no-speech
 *    probability from the <|nospeech|> token at the SOT position, skip of silent windows;
 *  - 30 s windows with seek from the last timestamp, conditioning on the previous text, language
 *    detection on the first window, word-level timestamps by cross-attention DTW over the alignment
 *    heads (openai timing.py: median filter 7, DTW, punctuation merging, duration clamps).
 *
 * Several files are transcribed in lock-step: one encoder call for the current window of every file,
 * one decoder call per step for all beams of all windows (mp_whisper_transcribe_batch). Results do not
 * depend on which files share a batch.
 */
#ifndef MP_WHISPER_DECODE_H
#define MP_WHISPER_DECODE_H

#include "encoders/whisper.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mp_whisper_params {
    int language;           /* language index (mp_whisper_lang_id), -1 = detect (multilingual models) */
    int translate;          /* task: 0 transcribe, 1 translate */
    int no_timestamps;      /* decode with <|notimestamps|> (one segment per window) */
    int beam_size;          /* > 1: beam search at T = 0 (openai/whisper-cli default 5); <= 1: greedy */
    int best_of;            /* candidates sampled at T > 0 (5) */
    float patience;         /* beam search patience (1) */
    float length_penalty;   /* < 0: rank by sum logprob / length; else ((5 + len) / 6)^alpha */
    float temperature;      /* first temperature (0) */
    float temperature_inc;  /* fallback step (0.2); <= 0: no fallback */
    float compression_ratio_thold; /* 2.4; <= 0: not checked */
    float logprob_thold;    /* -1; NAN: not checked */
    float no_speech_thold;  /* 0.6; NAN: not checked */
    int condition_on_prev;  /* feed the previous windows' text as the prompt (1) */
    int max_context;        /* prompt tokens kept (< 0: n_text_ctx / 2 - 1) */
    const char *prompt;     /* initial prompt, or NULL */
    int sample_len;         /* tokens per window at most (0: n_text_ctx / 2) */
    int suppress_blank;     /* 1 */
    int suppress_nst;       /* suppress openai's non-speech symbols (openai: on, whisper-cli: -sns) */
    float max_initial_ts;   /* 1.0 s; <= 0: none */
    int word_timestamps;    /* cross-attention DTW word timing */
    uint64_t seed;          /* sampling at T > 0 */
} mp_whisper_params;

/* openai transcribe() defaults with whisper-cli's beam search (beam 5, best of 5). */
mp_whisper_params mp_whisper_default_params(void);

/* Language index of "en", "de", ..., or of an English name ("german"); -1 if unknown. */
int mp_whisper_lang_id(const char *code);
const char *mp_whisper_lang_name(int i); /* "english", ... */

typedef struct mp_whisper_token {
    int32_t id;
    float p;        /* probability the decoder gave it (after the logit filters) */
    float logprob;
} mp_whisper_token;

typedef struct mp_whisper_word {
    char *text;
    double start, end; /* seconds */
    float p;           /* mean token probability (alignment pass) */
} mp_whisper_word;

typedef struct mp_whisper_segment {
    double start, end;  /* seconds */
    int64_t t0, t1;     /* centiseconds (whisper.cpp's unit) */
    char *text;         /* UTF-8 (invalid bytes replaced by U+FFFD) */
    mp_whisper_token *tokens;
    int n_tokens;
    mp_whisper_word *words;
    int n_words;
    int64_t seek;       /* mel frame of the window it came from */
    float temperature, avg_logprob, compression_ratio, no_speech_prob;
} mp_whisper_segment;

typedef struct mp_whisper_result {
    mp_whisper_segment *segs;
    int n_segs;
    int language;       /* index; the detected one when detection ran */
    float *lang_probs;  /* [MP_WHISPER_N_LANG] when detection ran, else NULL */
    char *text;         /* every segment's text */
    double duration;    /* seconds of audio */
    int n_windows, n_fallbacks;
} mp_whisper_result;

void mp_whisper_result_free(mp_whisper_result *r);

/* A loaded model with its execution resources (encoder/decoder state, caches). One per thread. */
typedef struct mp_whisper_ctx {
    const mp_whisper *m;
    mp_exec *ex;
    mp_whisper_enc_state enc;
    mp_whisper_dec_state dec;
    mp_whisper_kv kv;    /* decoder cache, grown to the largest batch seen */
    int32_t *nst;        /* non-speech tokens (openai's list for this vocabulary) */
    int n_nst;
    int32_t space_id;    /* encode(" ") */
    /* timings (ms) and counts */
    double t_mel, t_enc, t_dec, t_align;
    int64_t n_dec_steps, n_dec_tokens;
} mp_whisper_ctx;

int mp_whisper_ctx_init(mp_whisper_ctx *c, const mp_whisper *m, mp_exec *ex, mp_error *err);
void mp_whisper_ctx_free(mp_whisper_ctx *c);

/* Transcribes 16 kHz mono samples. */
int mp_whisper_transcribe(mp_whisper_ctx *c, const float *samples, int64_t n, const mp_whisper_params *p,
                          mp_whisper_result *r, mp_error *err);

/* Several inputs in lock-step (batched encoder and decoder). errs[i] / rc[i] per input; returns the number
 * of inputs that failed. */
int mp_whisper_transcribe_batch(mp_whisper_ctx *c, const float *const *samples, const int64_t *n, int n_inputs,
                                const mp_whisper_params *p, mp_whisper_result *r, int *rc, mp_error *errs);

/* ---------------------------------------------------------------- single-window decoding */

/* What openai's DecodingOptions hold for one 30 s window. */
typedef struct mp_whisper_decode_opts {
    int language;           /* index; < 0: "en" (English-only models ignore it) */
    int translate;
    float temperature;
    int beam_size;          /* > 0: beam search (T must be 0) */
    int best_of;            /* > 0 with T > 0: candidates */
    float patience;
    float length_penalty;   /* < 0: none */
    const int32_t *prompt;  /* previous text tokens, or NULL */
    int n_prompt;
    int sample_len;         /* 0: n_text_ctx / 2 */
    int suppress_blank;
    int suppress_nst;
    int without_timestamps;
    float max_initial_ts;   /* <= 0: none */
    uint64_t seed;
} mp_whisper_decode_opts;

typedef struct mp_whisper_decoded {
    int32_t *tokens;        /* sampled tokens, without the final <|endoftext|> */
    float *logprobs;        /* per token */
    int n_tokens;
    double sum_logprob;
    float avg_logprob, no_speech_prob, temperature, compression_ratio;
    char *text;             /* decode(tokens).strip() */
} mp_whisper_decoded;

void mp_whisper_decoded_free(mp_whisper_decoded *d);
mp_whisper_decode_opts mp_whisper_decode_default_opts(void);

/* Decodes window `win` of each of cross[0..n) (n windows, one options set each) together. */
int mp_whisper_decode_windows(mp_whisper_ctx *c, const mp_whisper_cross *const *cross, const int *win,
                              const mp_whisper_decode_opts *opts, int n, mp_whisper_decoded *out, mp_error *err);

/* Language probabilities of n windows: probs [n][MP_WHISPER_N_LANG] (0 past num_languages). */
int mp_whisper_detect_language(mp_whisper_ctx *c, const mp_whisper_cross *cross, int w0, int n, float *probs,
                               mp_error *err);

/* The logit filters of one decoding step applied in place (exposed for tests): `sampled` are the tokens
 * sampled so far in this window (after the initial ones). */
void mp_whisper_apply_filters(const mp_whisper_ctx *c, const mp_whisper_decode_opts *o, const int32_t *sampled,
                              int n_sampled, float *logits);

/* ---------------------------------------------------------------- text */

/* Tokens to text: ordinary tokens' bytes (ids >= timestamp_begin skipped, other specials as their
 * "<|...|>" names), invalid UTF-8 replaced by U+FFFD as Python's decode(errors="replace") does.
 * malloc'd. */
char *mp_whisper_detok(const mp_whisper *m, const int32_t *ids, int n);
/* Same with every token (timestamps as "<|1.08|>"): openai's decode_with_timestamps. */
char *mp_whisper_detok_all(const mp_whisper *m, const int32_t *ids, int n);
/* Byte-level BPE encoding (tiktoken's rank merges over the GPT-2 pre-tokenizer) of text; returns the
 * count (ids up to max written), -1 on error. */
int mp_whisper_tokenize(const mp_whisper *m, const char *text, int32_t *ids, int max);
/* Python's str.strip(): Unicode whitespace removed at both ends, in place; returns s. */
char *mp_whisper_strip(char *s);
/* len(text) / len(zlib.compress(text)) */
float mp_whisper_compression_ratio(const char *text);

/* ---------------------------------------------------------------- Silero VAD time mapping */

/* whisper.cpp's --vad: the speech segments (samples) joined with samples_overlap after each but the
 * last and 0.1 s of silence between, and a table mapping processed time to original time (cs). */
typedef struct mp_whisper_vad_map {
    int64_t *proc, *orig; /* centiseconds, sorted by proc, unique proc */
    int n;
} mp_whisper_vad_map;

int mp_whisper_vad_filter(const float *samples, int64_t n, const int64_t *seg_t0, const int64_t *seg_t1, int n_segs,
                          float overlap_s, float **out, int64_t *n_out, mp_whisper_vad_map *map, mp_error *err);
int64_t mp_whisper_vad_map_time(const mp_whisper_vad_map *map, int64_t t_cs);
void mp_whisper_vad_map_free(mp_whisper_vad_map *map);
/* Maps every segment (and word) time of r back to the original audio, as whisper.cpp does (a segment
 * ends at least 10 cs after it starts). */
void mp_whisper_result_map_vad(mp_whisper_result *r, const mp_whisper_vad_map *map);

#ifdef __cplusplus
}
#endif
#endif
