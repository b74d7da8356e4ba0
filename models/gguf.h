/* gguf.h — GGUF (v2, v3) reader over a read-only mmap, and a GGUF writer.
 *
 * File layout (all little-endian): "GGUF", u32 version, u64 n_tensors, u64 n_kv; n_kv key/value pairs
 * (key string, u32 type, value); n_tensors tensor infos (name string, u32 n_dims, n_dims x u64 ne
 * (innermost first), u32 ggml type, u64 offset into the data section); padding to general.alignment
 * (default 32); the data section. A string is u64 length + bytes; an array is u32 element type +
 * u64 count + elements (arrays of strings and nested arrays are allowed).
 *
 * The reader validates everything before exposing it: counts, lengths and offsets against the file
 * size, key/tensor-name UTF-8, duplicate keys/names, n_dims 1..4, known dtypes, ne[0] a multiple of the
 * block size, size arithmetic overflow, tensors inside the data section, aligned and not overlapping.
 * Any problem is one line in the mp_error naming the file. Tensors are mp_tensor views whose data
 * points into the (read-only) mapping; dtype numbers are ggml's and ne[] is GGUF's order.
 *
 * Strings (keys, string values, tensor names) are copied once at open into NUL-terminated buffers
 * owned by the mp_gguf; a string value may still contain NUL bytes: use mp_gguf_value.n for its length.
 */
#ifndef MP_GGUF_H
#define MP_GGUF_H

#include "kernels/mp.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum mp_gguf_type {
    MP_GGUF_U8 = 0,
    MP_GGUF_I8 = 1,
    MP_GGUF_U16 = 2,
    MP_GGUF_I16 = 3,
    MP_GGUF_U32 = 4,
    MP_GGUF_I32 = 5,
    MP_GGUF_F32 = 6,
    MP_GGUF_BOOL = 7,
    MP_GGUF_STRING = 8,
    MP_GGUF_ARRAY = 9,
    MP_GGUF_U64 = 10,
    MP_GGUF_I64 = 11,
    MP_GGUF_F64 = 12,
    MP_GGUF_TYPE_COUNT = 13
} mp_gguf_type;

#define MP_GGUF_DEFAULT_ALIGNMENT 32

const char *mp_gguf_type_name(int type); /* "u32", "string", "array", ...; "?" when unknown */
/* Bytes of one value of a fixed-size type (not string/array); 0 otherwise. */
size_t mp_gguf_type_size(int type);

/* One metadata value. Scalars: num holds the value (integers in u64 and i64, floats in f64,
 * bool 0/1) and raw points at its little-endian bytes in the file. Strings: str (NUL-terminated copy),
 * n = byte length. Arrays: elem_type, n = element count; arrays of fixed-size elements have raw
 * pointing at the packed little-endian elements in the file (not aligned: read with the accessors
 * below); arrays of strings or of arrays have elems[0..n). */
typedef struct mp_gguf_value {
    uint32_t type;      /* mp_gguf_type */
    uint32_t elem_type; /* arrays only */
    uint64_t n;
    union {
        uint64_t u64;
        int64_t i64;
        double f64;
    } num;
    const char *str;
    const void *raw;
    const struct mp_gguf_value *elems;
} mp_gguf_value;

/* Element i of an array of numbers/bools, converted (no range checks beyond i < n: callers check). */
int64_t mp_gguf_arr_i64(const mp_gguf_value *arr, uint64_t i);
uint64_t mp_gguf_arr_u64(const mp_gguf_value *arr, uint64_t i);
double mp_gguf_arr_f64(const mp_gguf_value *arr, uint64_t i);
/* Element i of an array of strings; *len (optional) gets its byte length. NULL when not a string array
 * or i is out of range. */
const char *mp_gguf_arr_str(const mp_gguf_value *arr, uint64_t i, uint64_t *len);

/* ---------------------------------------------------------------- reader */

typedef struct mp_gguf mp_gguf;

int mp_gguf_open(mp_gguf **out, const char *path, mp_error *err);
/* Parses a GGUF image in memory (borrowed: it must outlive the mp_gguf). name is used in errors. */
int mp_gguf_open_memory(mp_gguf **out, const void *data, size_t size, const char *name, mp_error *err);
void mp_gguf_free(mp_gguf *g);

const char *mp_gguf_path(const mp_gguf *g);
uint32_t mp_gguf_version(const mp_gguf *g);
size_t mp_gguf_alignment(const mp_gguf *g);
size_t mp_gguf_data_offset(const mp_gguf *g); /* file offset of the data section */
size_t mp_gguf_file_size(const mp_gguf *g);
const void *mp_gguf_data(const mp_gguf *g); /* the whole mapped file */

/* Key/values in file order. */
int64_t mp_gguf_n_kv(const mp_gguf *g);
const char *mp_gguf_key(const mp_gguf *g, int64_t i);
const mp_gguf_value *mp_gguf_kv(const mp_gguf *g, int64_t i);
int64_t mp_gguf_find_key(const mp_gguf *g, const char *key); /* -1 when absent */
const mp_gguf_value *mp_gguf_get(const mp_gguf *g, const char *key); /* NULL when absent */
int mp_gguf_has(const mp_gguf *g, const char *key);

/* Typed getters: 0 on success; -1 with "FILE: key KEY not found" or "FILE: key KEY is TYPE, expected
 * WANT" (or out of range) in err.
 *  - integer getters accept any integer type whose value fits the requested one;
 *  - f32/f64 getters accept f32 and f64;
 *  - bool only bool; str only string.
 * The _or variants give def when the key is absent (a present key of the wrong type is still an error). */
int mp_gguf_get_u32(const mp_gguf *g, const char *key, uint32_t *out, mp_error *err);
int mp_gguf_get_i32(const mp_gguf *g, const char *key, int32_t *out, mp_error *err);
int mp_gguf_get_u64(const mp_gguf *g, const char *key, uint64_t *out, mp_error *err);
int mp_gguf_get_i64(const mp_gguf *g, const char *key, int64_t *out, mp_error *err);
int mp_gguf_get_f32(const mp_gguf *g, const char *key, float *out, mp_error *err);
int mp_gguf_get_f64(const mp_gguf *g, const char *key, double *out, mp_error *err);
int mp_gguf_get_bool(const mp_gguf *g, const char *key, int *out, mp_error *err);
int mp_gguf_get_str(const mp_gguf *g, const char *key, const char **out, mp_error *err);
int mp_gguf_get_u32_or(const mp_gguf *g, const char *key, uint32_t def, uint32_t *out, mp_error *err);
int mp_gguf_get_i32_or(const mp_gguf *g, const char *key, int32_t def, int32_t *out, mp_error *err);
int mp_gguf_get_f32_or(const mp_gguf *g, const char *key, float def, float *out, mp_error *err);
int mp_gguf_get_bool_or(const mp_gguf *g, const char *key, int def, int *out, mp_error *err);
int mp_gguf_get_str_or(const mp_gguf *g, const char *key, const char *def, const char **out, mp_error *err);

/* Arrays. mp_gguf_get_arr: the array value (any element type) and its length.
 * The copying getters need dst to hold exactly the array's length (*n from mp_gguf_get_arr or
 * mp_gguf_arr_len); they fail on a wrong element type (ints: any integer type whose values fit;
 * floats: f32/f64) or an element out of range. */
int mp_gguf_get_arr(const mp_gguf *g, const char *key, const mp_gguf_value **arr, uint64_t *n, mp_error *err);
int64_t mp_gguf_arr_len(const mp_gguf *g, const char *key, mp_error *err); /* -1 on error */
int mp_gguf_get_arr_i32(const mp_gguf *g, const char *key, int32_t *dst, uint64_t n, mp_error *err);
int mp_gguf_get_arr_i64(const mp_gguf *g, const char *key, int64_t *dst, uint64_t n, mp_error *err);
int mp_gguf_get_arr_f32(const mp_gguf *g, const char *key, float *dst, uint64_t n, mp_error *err);
/* Array of strings: dst[i] = NUL-terminated string i (owned by g), lens[i] (optional) its length. */
int mp_gguf_get_arr_str(const mp_gguf *g, const char *key, const char **dst, uint64_t *lens, uint64_t n,
                        mp_error *err);

/* "<general.architecture>.<suffix>", e.g. mp_gguf_arch_key(g, "block_count", buf, sizeof buf) ->
 * "llama.block_count". Returns buf; "" if general.architecture is absent or not a string. */
const char *mp_gguf_arch_key(const mp_gguf *g, const char *suffix, char *buf, size_t cap);

/* Tensors in file order; data points into the mapping (read-only). */
int64_t mp_gguf_n_tensors(const mp_gguf *g);
const mp_tensor *mp_gguf_tensor(const mp_gguf *g, int64_t i);
const mp_tensor *mp_gguf_find_tensor(const mp_gguf *g, const char *name); /* NULL when absent */
int64_t mp_gguf_find_tensor_index(const mp_gguf *g, const char *name);   /* -1 when absent */
uint64_t mp_gguf_tensor_offset(const mp_gguf *g, int64_t i);             /* absolute file offset */
size_t mp_gguf_tensor_nbytes(const mp_gguf *g, int64_t i);

/* ---------------------------------------------------------------- writer */

/* Builds KVs and tensors in memory, then writes a GGUF v3 file (v2 on request: same layout).
 * Setters replace an existing key of the same name (keeping its position). Setter failures (out of
 * memory, duplicate tensor name, bad dims/dtype) are remembered; mp_gguf_writer_write then reports the
 * first one. Tensor data is borrowed: it must stay valid until mp_gguf_writer_write returns. */
typedef struct mp_gguf_writer mp_gguf_writer;

mp_gguf_writer *mp_gguf_writer_new(void); /* NULL when out of memory */
void mp_gguf_writer_free(mp_gguf_writer *w);
void mp_gguf_writer_set_version(mp_gguf_writer *w, uint32_t version); /* 2 or 3 (default) */
/* Sets the alignment and writes it as general.alignment (u32). Power of two. */
int mp_gguf_writer_set_alignment(mp_gguf_writer *w, uint32_t alignment);

int mp_gguf_set_u8(mp_gguf_writer *w, const char *key, uint8_t v);
int mp_gguf_set_i8(mp_gguf_writer *w, const char *key, int8_t v);
int mp_gguf_set_u16(mp_gguf_writer *w, const char *key, uint16_t v);
int mp_gguf_set_i16(mp_gguf_writer *w, const char *key, int16_t v);
int mp_gguf_set_u32(mp_gguf_writer *w, const char *key, uint32_t v);
int mp_gguf_set_i32(mp_gguf_writer *w, const char *key, int32_t v);
int mp_gguf_set_f32(mp_gguf_writer *w, const char *key, float v);
int mp_gguf_set_bool(mp_gguf_writer *w, const char *key, int v);
int mp_gguf_set_u64(mp_gguf_writer *w, const char *key, uint64_t v);
int mp_gguf_set_i64(mp_gguf_writer *w, const char *key, int64_t v);
int mp_gguf_set_f64(mp_gguf_writer *w, const char *key, double v);
int mp_gguf_set_str(mp_gguf_writer *w, const char *key, const char *s);
int mp_gguf_set_strn(mp_gguf_writer *w, const char *key, const char *s, uint64_t len);
/* Array of fixed-size elements (elem_type not string/array), n elements packed in host order. */
int mp_gguf_set_arr(mp_gguf_writer *w, const char *key, mp_gguf_type elem_type, const void *data, uint64_t n);
int mp_gguf_set_arr_str(mp_gguf_writer *w, const char *key, const char *const *strs, uint64_t n);
/* Any value, e.g. one from a reader (deep copy, nested arrays included). */
int mp_gguf_set_value(mp_gguf_writer *w, const char *key, const mp_gguf_value *v);

/* ne[0] innermost; data holds mp_dtype_row_bytes(dtype, ne[0]) * ne[1] * ... bytes (borrowed). */
int mp_gguf_writer_add_tensor(mp_gguf_writer *w, const char *name, mp_dtype dtype, int ndim, const int64_t *ne,
                              const void *data);
/* Like add_tensor, but the bytes are produced at write time: fill(ctx, index, buf, nbytes) writes the
 * tensor's nbytes into buf and returns 0 (or -1 after filling err). */
typedef int (*mp_gguf_fill_fn)(void *ctx, int64_t index, void *buf, size_t nbytes, mp_error *err);
int mp_gguf_writer_add_tensor_fn(mp_gguf_writer *w, const char *name, mp_dtype dtype, int ndim, const int64_t *ne,
                                 mp_gguf_fill_fn fill, void *ctx);
int64_t mp_gguf_writer_n_tensors(const mp_gguf_writer *w);

/* Writes the file (to PATH.tmp, then renamed over PATH). */
int mp_gguf_writer_write(mp_gguf_writer *w, const char *path, mp_error *err);

#ifdef __cplusplus
}
#endif
#endif
