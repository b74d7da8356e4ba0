/* mmap.h — what the model-file readers share: read-only file mappings, a string -> index hash,
 * a chunked string/record pool, and a UTF-8 check. */
#ifndef MP_MODELS_MMAP_H
#define MP_MODELS_MMAP_H

#include "kernels/mp.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- mapped files */

/* A whole file mapped read-only (PROT_READ, MAP_PRIVATE): writing through data faults. An empty file
 * maps to data == NULL, size == 0. */
typedef struct mp_mmap {
    const uint8_t *data;
    size_t size;
    void *base; /* what munmap gets; NULL for an empty file */
} mp_mmap;

int mp_mmap_open(mp_mmap *m, const char *path, mp_error *err);
void mp_mmap_close(mp_mmap *m);

/* Reads a whole (small) file into a NUL-terminated heap buffer; *len gets its size. For JSON/text
 * files. Refuses files larger than max_bytes. */
int mp_read_file(const char *path, size_t max_bytes, char **out, size_t *len, mp_error *err);

/* Reads the first cap bytes of a regular file (*got: how many there were) and its size. */
int mp_read_head(const char *path, void *buf, size_t cap, size_t *got, uint64_t *file_size, mp_error *err);

/* 1 if path is a directory / a regular file (following links). */
int mp_is_dir(const char *path);
int mp_is_file(const char *path);

/* ---------------------------------------------------------------- string -> index */

/* Open-addressing hash from NUL-terminated strings (borrowed: they must outlive the index) to
 * non-negative indices. */
typedef struct mp_strindex {
    size_t cap, n;   /* cap is a power of two */
    int64_t *idx;    /* -1 = empty slot */
    const char **key;
} mp_strindex;

int mp_strindex_init(mp_strindex *s, size_t n_expected); /* 0, or -1 when out of memory */
void mp_strindex_free(mp_strindex *s);
/* 0: inserted; 1: the key was already there (nothing changed); -1: out of memory. */
int mp_strindex_put(mp_strindex *s, const char *key, int64_t idx);
int64_t mp_strindex_get(const mp_strindex *s, const char *key); /* -1 when absent */

/* ---------------------------------------------------------------- pool */

/* Chunked bump allocator for many small records that live as long as their owner. */
typedef struct mp_pool_chunk mp_pool_chunk;
typedef struct mp_pool {
    mp_pool_chunk *head;
} mp_pool;

void *mp_pool_alloc(mp_pool *p, size_t bytes); /* 16-byte aligned, zeroed; NULL when out of memory */
char *mp_pool_strndup(mp_pool *p, const char *s, size_t n); /* copy + NUL */
void mp_pool_free(mp_pool *p);

/* ---------------------------------------------------------------- text */

/* 1 if s[0..n) is well-formed UTF-8 (no overlongs, surrogates or code points past U+10FFFF). */
int mp_utf8_valid(const char *s, size_t n);

/* Formats dims as "[a, b, c]" into buf (outermost-last, the order given). */
const char *mp_format_dims(char *buf, size_t cap, const int64_t *ne, int ndim);

#ifdef __cplusplus
}
#endif
#endif
