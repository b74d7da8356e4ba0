/* safetensors.h — Hugging Face safetensors reader over a read-only mmap.
 *
 * Layout: u64 little-endian header length N, N bytes of JSON
 *   {"NAME": {"dtype": "F32", "shape": [outer, ..., inner], "data_offsets": [begin, end]}, ...,
 *    "__metadata__": {"key": "value", ...}}
 * then the data section (offsets are relative to its start, byte 8 + N).
 *
 * Shapes in the file are outermost-first (PyTorch order); the mp_tensor views use ggml order
 * (ne[0] innermost): shape [N, K] becomes ne = {K, N}. Tensors with more than 4 dims (e.g. a Conv3d
 * weight [O, I, T, H, W]) get their innermost dims merged into ne[0] (ne = {T*H*W... , I, O} folded so
 * that 4 remain); mp_safetensors_shape() gives the original shape. Scalars (shape []) are ne = {1}.
 *
 * dtypes: F64, F32, F16, BF16, I64, I32, I16, I8 map to the mp_dtype of the same name; U8 and BOOL are
 * exposed as MP_I8 views (same bytes; mp_safetensors_dtype_name() tells them apart). Other dtypes
 * (U16/U32/U64, F8_*) are rejected with a clear error. F16/BF16 data is used in place, never converted.
 *
 * Everything is validated before use: header length, JSON, dtype names, shapes (non-negative integers,
 * at most 8 dims, no overflow), data_offsets matching the shape, inside the file and not overlapping,
 * tensor names non-empty, UTF-8 and unique.
 * Data is used in place, except a tensor whose bytes are not aligned to its element size (a header length
 * not padded to 8 by its writer): that one is copied once into aligned memory owned by the reader.
 */
#ifndef MP_SAFETENSORS_H
#define MP_SAFETENSORS_H

#include "kernels/mp.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MP_ST_MAX_DIMS 8
#define MP_ST_MAX_HEADER (100u << 20) /* the format's own limit: 100 MB of JSON */

typedef struct mp_safetensors mp_safetensors;

int mp_safetensors_open(mp_safetensors **out, const char *path, mp_error *err);
/* Parses an image in memory (borrowed: it must outlive the result); name is used in errors. */
int mp_safetensors_open_memory(mp_safetensors **out, const void *data, size_t size, const char *name,
                               mp_error *err);
void mp_safetensors_free(mp_safetensors *st);

const char *mp_safetensors_path(const mp_safetensors *st);
size_t mp_safetensors_data_offset(const mp_safetensors *st); /* 8 + header length */

/* Tensors in header order. */
int64_t mp_safetensors_n_tensors(const mp_safetensors *st);
const mp_tensor *mp_safetensors_tensor(const mp_safetensors *st, int64_t i);
int64_t mp_safetensors_find(const mp_safetensors *st, const char *name); /* -1 when absent */
const mp_tensor *mp_safetensors_get(const mp_safetensors *st, const char *name); /* NULL when absent */
const char *mp_safetensors_dtype_name(const mp_safetensors *st, int64_t i);   /* "F32", "BOOL", ... */
/* Original shape, outermost first, into shape[MP_ST_MAX_DIMS]; returns ndim (0 for a scalar). */
int mp_safetensors_shape(const mp_safetensors *st, int64_t i, int64_t *shape);

/* How many tensors had to be copied because their data was misaligned in the file. */
int64_t mp_safetensors_n_copied(const mp_safetensors *st);

/* __metadata__ entries (string values). */
int64_t mp_safetensors_n_metadata(const mp_safetensors *st);
const char *mp_safetensors_metadata_key(const mp_safetensors *st, int64_t i);
const char *mp_safetensors_metadata(const mp_safetensors *st, const char *key); /* NULL when absent */

/* The mp_dtype for a safetensors dtype name, or -1 if mmpipe does not support it. */
int mp_safetensors_dtype_from_name(const char *name);

#ifdef __cplusplus
}
#endif
#endif
