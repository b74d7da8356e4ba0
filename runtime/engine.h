/* engine.h — continuous batching over the decoder LLM: the core of `mmpipe batch` and every
 * multi-request command.
 *
 * Requests are queued with mp_engine_submit(); each mp_engine_step() runs ONE batched forward pass in
 * which running sequences decode a token each and waiting/prefilling sequences add a chunk of their
 * prompt (chunked prefill under a per-step token budget). Sequences join as soon as a KV-cache slot
 * and the blocks for their whole budget (prompt + max new tokens) are free, and leave the step they
 * finish, giving their blocks back. Admission is FIFO; nothing is ever preempted, so a sequence's
 * tokens do not depend on the other requests (the forward pass is batch-invariant): the same greedy
 * output alone or in any batch.
 */
#ifndef MP_ENGINE_H
#define MP_ENGINE_H

#include "llm/kvcache.h"
#include "llm/llama.h"
#include "llm/sample.h"
#include "llm/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mp_gen_request {
    /* prompt: n items; item i is tokens[i] if tokens && tokens[i] >= 0, else row i of embd
     * ([n][n_embd] host F32; the engine copies what it needs at submit). */
    int n;
    const int32_t *tokens;
    const float *embd;
    const int32_t *pos;          /* explicit RoPE positions [n], or NULL for 0..n-1 */
    const int32_t *pos4;         /* M-RoPE models (Qwen2-VL): explicit positions in 4 streams [n][4] (t, h, w,
                                  * extra), or NULL; wins over pos. A model without M-RoPE rejects it. */
    int32_t next_pos;            /* with explicit positions (pos or pos4): the position of the first generated
                                  * token; generated tokens advance every stream by 1 (transformers'
                                  * cache_position + rope_deltas) */
    mp_sampler_params sampling;
    int max_new;                 /* > 0 */
    const char *stop[MP_MAX_STOP];
    int n_stop;
    int ignore_eos;
    int top_logprobs;            /* 0: none; k > 0: report the chosen token's logprob and the top k */
    void *user;                  /* handed back in the result */
} mp_gen_request;

typedef struct mp_gen_result {
    void *user;
    int ok;                      /* 0: error (see error) */
    char error[512];
    char *text;                  /* generated text (malloc'd, owned by the result) */
    int32_t *tokens;             /* generated ids */
    float *logprobs;             /* [n_tokens] when requested, else NULL */
    int32_t *top_ids;            /* [n_tokens][top_logprobs] when requested */
    float *top_logprobs;
    int top_k;
    int n_tokens, n_prompt;
    const char *finish_reason;   /* "stop" (EOS or stop string), "length", "error", or "cancelled" (the engine
                                  * was freed before the request finished: no result, e.g. after SIGINT) */
    double t_submit, t_first, t_done; /* seconds (monotonic) */
} mp_gen_result;

/* Called from mp_engine_step() (on the caller's thread) when a request finishes. The result and
 * everything in it is freed after the callback returns: copy what you keep. */
typedef void (*mp_gen_done_fn)(void *ctx, const mp_gen_result *res);

typedef struct mp_engine_params {
    int max_seqs;        /* sequences decoding at once (default 16) */
    int step_tokens;     /* per-step token budget: decode rows + prefill chunks (default 512) */
    int64_t kv_tokens;   /* KV cache size in tokens (default max_seqs * max_ctx) */
    int max_ctx;         /* most tokens per sequence (default: the model's context) */
} mp_engine_params;

mp_engine_params mp_engine_default_params(void);

typedef struct mp_engine mp_engine;

/* The model, tokenizer and exec are borrowed and must outlive the engine. */
int mp_engine_create(mp_engine **out, const mp_llama *model, const mp_tokenizer *tok, mp_exec *ex,
                     const mp_engine_params *p, mp_gen_done_fn done, void *done_ctx, mp_error *err);
/* Requests not finished yet get the callback with finish_reason "cancelled". */
void mp_engine_free(mp_engine *e);

/* Queue a request. A request that can never run (too long for the context, bad parameters) finishes
 * at once with an error result through the callback; returns -1 only on out of memory. */
int mp_engine_submit(mp_engine *e, const mp_gen_request *r, mp_error *err);
/* One forward pass over what is admitted. Returns the number of requests still queued or running
 * (0 = idle), or -1 on a model/backend failure (all running requests then finish with that error). */
int mp_engine_step(mp_engine *e, mp_error *err);
int mp_engine_pending(const mp_engine *e);

typedef struct mp_engine_stats {
    int64_t steps, prefill_tokens, decode_tokens, finished;
    double t_forward;            /* seconds inside the forward pass */
    int max_running;
} mp_engine_stats;
void mp_engine_get_stats(const mp_engine *e, mp_engine_stats *s);

#ifdef __cplusplus
}
#endif
#endif
