/* weights.h — one weight source for the model loaders, whatever the file format.
 *
 * mp_weights_open(path) accepts:
 *   - a GGUF file (magic "GGUF"): tensor names as in the file (llama.cpp names: token_embd.weight, ...);
 *   - a safetensors file;
 *   - a sharded safetensors checkpoint: its model.safetensors.index.json ("weight_map": name -> shard),
 *     every shard opened from the index's folder and checked to hold the tensors the index names;
 *   - an HF model folder: model.safetensors.index.json, else model.safetensors, else the one
 *     *.safetensors file in it (adapter_model.safetensors for a PEFT adapter folder);
 *   - a llama2.c checkpoint (.bin, see models/llama2c.h): exposed with llama.cpp GGUF tensor names.
 * Tensors are views into read-only mappings (never copied); names are borrowed from the mp_weights.
 * Shapes are ggml order (ne[0] innermost) for every format.
 */
#ifndef MP_WEIGHTS_H
#define MP_WEIGHTS_H

#include "kernels/mp.h"

#ifdef __cplusplus
extern "C" {
#endif

struct mp_gguf;
struct mp_llama2c_config;

typedef enum mp_weights_format {
    MP_WEIGHTS_GGUF = 1,
    MP_WEIGHTS_SAFETENSORS = 2,
    MP_WEIGHTS_LLAMA2C = 3,
} mp_weights_format;

typedef struct mp_weights mp_weights;

int mp_weights_open(mp_weights **out, const char *path, mp_error *err);
void mp_weights_free(mp_weights *w);

const char *mp_weights_path(const mp_weights *w); /* what was opened (file, index or folder) */
mp_weights_format mp_weights_format_of(const mp_weights *w);
const char *mp_weights_format_name(mp_weights_format f); /* "gguf", "safetensors", "llama2.c" */
/* The GGUF behind a GGUF source (for its metadata), else NULL. */
const struct mp_gguf *mp_weights_gguf(const mp_weights *w);
/* The header of a llama2.c source (hyper-parameters), else NULL. */
const struct mp_llama2c_config *mp_weights_llama2c(const mp_weights *w);
/* Number of files (shards) behind the source, and file i's path. */
int mp_weights_n_files(const mp_weights *w);
const char *mp_weights_file(const mp_weights *w, int i);

/* Lookup: NULL when absent. printf-style variant for per-layer names ("blk.%d.attn_q.weight"). */
const mp_tensor *mp_weights_get(const mp_weights *w, const char *name);
const mp_tensor *mp_weights_getf(const mp_weights *w, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
int mp_weights_has(const mp_weights *w, const char *name);

/* Iteration in file order (shards in index order). */
int64_t mp_weights_count(const mp_weights *w);
const mp_tensor *mp_weights_at(const mp_weights *w, int64_t i);
const char *mp_weights_name(const mp_weights *w, int64_t i);
/* Which file tensor i lives in (index into mp_weights_file). */
int mp_weights_file_of(const mp_weights *w, int64_t i);

/* Shape checks. ne[] in ggml order, ndim entries; an entry < 0 matches any size. Trailing dims of size
 * 1 are ignored on both sides, so {K, N} matches a tensor [K, N, 1, 1].
 * Errors read "FILE: tensor NAME has shape [..], expected [..]" or "FILE: tensor NAME not found". */
int mp_weights_check(const mp_weights *w, const mp_tensor *t, int ndim, const int64_t *ne, mp_error *err);
/* The tensor name with the given shape; NULL (after filling err) when absent or of another shape. */
const mp_tensor *mp_weights_require(const mp_weights *w, const char *name, int ndim, const int64_t *ne,
                                    mp_error *err);
/* Convenience: up to 4 dims given inline (unused trailing ones as 1). */
const mp_tensor *mp_weights_require4(const mp_weights *w, const char *name, int64_t ne0, int64_t ne1, int64_t ne2,
                                     int64_t ne3, mp_error *err);

/* ---------------------------------------------------------------- format sniffing */

typedef enum mp_model_kind {
    MP_KIND_ERROR = -1,      /* could not be read (err says why) */
    MP_KIND_UNKNOWN = 0,
    MP_KIND_GGUF,            /* magic "GGUF" */
    MP_KIND_SAFETENSORS,     /* u64 header length + '{' */
    MP_KIND_ST_INDEX,        /* *.json: a sharded checkpoint's model.safetensors.index.json */
    MP_KIND_FOLDER,          /* an HF model folder */
    MP_KIND_LLAMA2C,         /* llama2.c checkpoint (v0 header consistent with the size, or "ak42") */
    MP_KIND_GGML_BIN,        /* whisper.cpp / Silero ggml .bin (magic 0x67676d6c) */
} mp_model_kind;

/* What kind of model file path is, from its first bytes (and size, for llama2.c). */
mp_model_kind mp_model_sniff(const char *path, mp_error *err);
const char *mp_model_kind_name(mp_model_kind k);

/* ---------------------------------------------------------------- for the format readers */

/* Building a source: readers that expose views (llama2c.c) create an empty mp_weights, add tensors and
 * hand over what must live as long as the views. */
mp_weights *mp_weights_new(const char *path, mp_weights_format f); /* NULL when out of memory */
/* Adds a view (copied; its name is copied too). -1 on a duplicate name or out of memory. */
int mp_weights_add(mp_weights *w, const char *name, const mp_tensor *t, int file, mp_error *err);
/* w frees p with free_fn at mp_weights_free. */
int mp_weights_adopt(mp_weights *w, void *p, void (*free_fn)(void *));
int mp_weights_add_file(mp_weights *w, const char *path); /* records a file path; returns its index or -1 */
void mp_weights_set_llama2c(mp_weights *w, const struct mp_llama2c_config *cfg); /* borrowed (adopt it) */

#ifdef __cplusplus
}
#endif
#endif
