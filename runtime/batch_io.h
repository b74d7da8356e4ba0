/* batch_io.h — the files of `mmpipe batch`: OpenAI/vLLM batch JSONL in, one result line per request
 * out, durably; resume; deterministic sharding; merging shard outputs.
 *
 * Input line:  {"custom_id": "...", "method": "POST", "url": "/v1/chat/completions" |
 *               "/v1/audio/transcriptions", "body": {...}}
 * Output line: {"id": "batch_req_...", "custom_id": "...", "response": {"status_code": 200,
 *               "request_id": "...", "body": {...}}, "error": null}
 *          or  {"id": ..., "custom_id": ..., "response": null, "error": {"code": ..., "message": ...}}
 *
 * Both files are streamed: the reader holds one line at a time; the only per-request state kept in
 * memory is a set of custom_id hashes (for resume and duplicate detection).
 */
#ifndef MP_BATCH_IO_H
#define MP_BATCH_IO_H

#include "kernels/mp.h"

#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

struct cJSON;

typedef enum mp_req_kind {
    MP_REQ_CHAT = 1,       /* /v1/chat/completions */
    MP_REQ_TRANSCRIBE = 2, /* /v1/audio/transcriptions */
    MP_REQ_COMPLETION = 3, /* /v1/completions (plain prompt, no chat template) */
} mp_req_kind;

/* One parsed request line. `body` is owned by the request. */
typedef struct mp_request {
    int64_t line_no;       /* 1-based line in the input */
    char *custom_id;
    mp_req_kind kind;
    char *model;           /* body.model or NULL */
    struct cJSON *body;
} mp_request;

void mp_request_free(mp_request *r);

/* ---------------------------------------------------------------- set of ids (64-bit hashes) */

typedef struct mp_idset {
    uint64_t *slots; /* 0 = empty */
    size_t cap, count;
} mp_idset;

uint64_t mp_id_hash(const char *s); /* FNV-1a 64, never 0 */
int mp_idset_add(mp_idset *s, const char *id); /* 1 if newly added, 0 if present, -1 out of memory */
int mp_idset_has(const mp_idset *s, const char *id);
void mp_idset_free(mp_idset *s);

/* ---------------------------------------------------------------- sharding */

typedef struct mp_shard {
    int index, count; /* count 1 = no sharding */
} mp_shard;

/* From "--shard I/N" (spec may be NULL), else SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT (offset by
 * SLURM_ARRAY_TASK_MIN), else Kubernetes JOB_COMPLETION_INDEX with MMPIPE_NUM_SHARDS, else 0/1. */
int mp_shard_resolve(mp_shard *sh, const char *spec, mp_error *err);
/* Deterministic by custom_id only (FNV-1a 64 mod count): the same request always lands in the same shard. */
int mp_shard_owns(const mp_shard *sh, const char *custom_id);
/* "out.jsonl" -> "out.shard-00002-of-00004.jsonl" ("{shard}" in the name is replaced instead). */
void mp_shard_output_name(const mp_shard *sh, const char *path, char *out, size_t cap);

/* ---------------------------------------------------------------- reading requests */

typedef struct mp_req_reader {
    FILE *f;
    const char *path;
    char *line;
    size_t line_cap;
    int64_t line_no;
    int owns_file;
} mp_req_reader;

int mp_req_reader_open(mp_req_reader *r, const char *path, mp_error *err); /* "-" = stdin */
void mp_req_reader_close(mp_req_reader *r);
/* Next non-blank line. Returns 1 with *req filled, 0 at end of input, -1 for a bad line: then err says
 * why (line number included) and *bad_id holds its custom_id when one could be read (else NULL,
 * caller frees) — the caller writes an error record and goes on. */
int mp_req_reader_next(mp_req_reader *r, mp_request *req, char **bad_id, mp_error *err);

/* ---------------------------------------------------------------- writing results */

typedef struct mp_res_writer {
    FILE *f;
    char *path;
    double last_sync;
    double sync_interval; /* seconds between fsyncs (default 2) */
    int64_t written;
} mp_res_writer;

/* Opens for appending. With resume, first repairs a torn last line (truncates after the last '\n') and
 * loads the custom_ids already present into done (which must be zeroed or already in use). Without
 * resume, an existing non-empty file is an error (never clobber results). */
int mp_res_writer_open(mp_res_writer *w, const char *path, int resume, mp_idset *done, int64_t *n_done,
                       mp_error *err);
/* Appends one complete line (`json` must not contain a newline), flushes, fsyncs when the interval passed. */
int mp_res_writer_put(mp_res_writer *w, const char *json, mp_error *err);
int mp_res_writer_close(mp_res_writer *w, mp_error *err); /* flush + fsync + close */

/* Builds the output line for a success (body is consumed) or a failure. Returns malloc'd JSON text. */
char *mp_result_ok(const char *custom_id, struct cJSON *body);
char *mp_result_error(const char *custom_id, int status_code, const char *code, const char *message);

/* ---------------------------------------------------------------- merging shard outputs */

typedef struct mp_merge_stats {
    int64_t records, duplicates, missing, errors, bad_lines, unknown;
} mp_merge_stats;

/* Concatenates the result files into out (streamed), dropping repeated custom_ids (the first wins) and
 * counting records whose "error" is not null. With the requests file, also counts custom_ids that have
 * no result (missing) and results for ids not in the requests (unknown); each is listed on `report`
 * (one line per id, up to max_listed). */
int mp_merge_results(const char *out, const char *const *inputs, int n_inputs, const char *requests,
                     FILE *report, int max_listed, mp_merge_stats *st, mp_error *err);

#ifdef __cplusplus
}
#endif
#endif
