/* safetensors.c — safetensors reader (validating, mmap). See safetensors.h. */
#include "models/safetensors.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "models/mmap.h"

typedef struct {
    const char *name;
    int dtype; /* mp_dtype */
    int esize;
} st_dtype;

static const st_dtype st_dtypes[] = {
    {"F64", MP_F64, 8}, {"F32", MP_F32, 4}, {"F16", MP_F16, 2}, {"BF16", MP_BF16, 2},
    {"I64", MP_I64, 8}, {"I32", MP_I32, 4}, {"I16", MP_I16, 2}, {"I8", MP_I8, 1},
    {"U8", MP_I8, 1},   {"BOOL", MP_I8, 1},
};

static const st_dtype *find_dtype(const char *name) {
    for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
        if (strcmp(st_dtypes[i].name, name) == 0) return &st_dtypes[i];
    return NULL;
}

int mp_safetensors_dtype_from_name(const char *name) {
    const st_dtype *d = name ? find_dtype(name) : NULL;
    return d ? d->dtype : -1;
}

typedef struct {
    mp_tensor t;
    const char *dtype_name;
    int ndim;
    int64_t shape[MP_ST_MAX_DIMS];
    uint64_t begin, end;
} st_entry;

struct mp_safetensors {
    char *path;
    mp_mmap map;
    const uint8_t *data;
    size_t size, data_offset;
    st_entry *e;
    int64_t n;
    const char **meta_k, **meta_v;
    int64_t n_meta;
    mp_strindex index;
    mp_pool pool;
    int64_t n_copied;
};

/* A JSON number that is a non-negative integer up to 2^53. */
static int json_uint(const cJSON *j, uint64_t *out) {
    if (!cJSON_IsNumber(j)) return 0;
    double d = j->valuedouble;
    if (!(d >= 0) || d > 9007199254740992.0 || d != floor(d)) return 0;
    *out = (uint64_t)d;
    return 1;
}

static int cmp_begin(const void *a, const void *b, void *ctx) {
    const st_entry *e = ctx;
    uint64_t x = e[*(const int64_t *)a].begin, y = e[*(const int64_t *)b].begin;
    return x < y ? -1 : x > y;
}

static int parse_entry(mp_safetensors *st, const cJSON *it, st_entry *e, size_t data_size, mp_error *err) {
    const char *name = it->string;
    if (!cJSON_IsObject(it)) return mp_errf(err, "%s: tensor %s: header entry is not an object", st->path, name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(it, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(it, "shape");
    const cJSON *of = cJSON_GetObjectItemCaseSensitive(it, "data_offsets");
    if (!cJSON_IsString(dt)) return mp_errf(err, "%s: tensor %s: missing \"dtype\" string", st->path, name);
    if (!cJSON_IsArray(sh)) return mp_errf(err, "%s: tensor %s: missing \"shape\" array", st->path, name);
    if (!cJSON_IsArray(of) || cJSON_GetArraySize(of) != 2)
        return mp_errf(err, "%s: tensor %s: \"data_offsets\" is not a [begin, end] pair", st->path, name);
    const st_dtype *d = find_dtype(dt->valuestring);
    if (!d)
        return mp_errf(err, "%s: tensor %s has dtype %.32s, which mmpipe does not support", st->path, name,
                       dt->valuestring);
    int nd = cJSON_GetArraySize(sh);
    if (nd > MP_ST_MAX_DIMS)
        return mp_errf(err, "%s: tensor %s has %d dimensions (at most %d supported)", st->path, name, nd, MP_ST_MAX_DIMS);
    uint64_t nel = 1, nz = 1;
    int k = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, sh) {
        uint64_t v;
        if (!json_uint(x, &v))
            return mp_errf(err, "%s: tensor %s: shape entry %d is not a non-negative integer", st->path, name, k);
        /* the product of the non-zero dims must fit, so no partial product can overflow */
        if (v && nz > (uint64_t)INT64_MAX / v)
            return mp_errf(err, "%s: tensor %s: element count overflows", st->path, name);
        if (v) nz *= v;
        nel *= v;
        e->shape[k++] = (int64_t)v;
    }
    if (nel > (uint64_t)INT64_MAX / (uint64_t)d->esize)
        return mp_errf(err, "%s: tensor %s: byte size overflows", st->path, name);
    uint64_t nbytes = nel * (uint64_t)d->esize;
    uint64_t b, en;
    if (!json_uint(cJSON_GetArrayItem(of, 0), &b) || !json_uint(cJSON_GetArrayItem(of, 1), &en) || b > en)
        return mp_errf(err, "%s: tensor %s: data_offsets are not integers with begin <= end", st->path, name);
    if (en - b != nbytes)
        return mp_errf(err, "%s: tensor %s: data_offsets [%" PRIu64 ", %" PRIu64 "] span %" PRIu64
                       " bytes, but %s shape needs %" PRIu64, st->path, name, b, en, en - b, d->name, nbytes);
    if (en > data_size)
        return mp_errf(err, "%s: tensor %s: data_offsets end %" PRIu64 " lies outside the %zu-byte data section",
                       st->path, name, en, data_size);
    e->ndim = nd;
    e->begin = b;
    e->end = en;
    e->dtype_name = d->name;
    /* ggml order: innermost first; more than 4 dims fold the innermost ones into ne[0] */
    int64_t ne[MP_MAX_DIMS] = {1, 1, 1, 1};
    int tnd = nd < 1 ? 1 : (nd > MP_MAX_DIMS ? MP_MAX_DIMS : nd);
    if (nd > MP_MAX_DIMS) {
        int fold = nd - (MP_MAX_DIMS - 1); /* innermost dims merged into ne[0] */
        int64_t p = 1;
        for (int i = 0; i < fold; i++) p *= e->shape[nd - 1 - i];
        ne[0] = p;
        for (int i = 1; i < MP_MAX_DIMS; i++) ne[i] = e->shape[MP_MAX_DIMS - 1 - i];
    } else {
        for (int i = 0; i < nd; i++) ne[i] = e->shape[nd - 1 - i];
    }
    const uint8_t *src = st->data + st->data_offset + b;
    void *ptr = (void *)src;
    if ((uintptr_t)src % (uintptr_t)d->esize) {
        /* the format does not promise alignment (writers pad the header to 8, not all do): a misaligned
         * tensor gets an aligned copy, so kernels can read it as its element type */
        uint8_t *c = mp_pool_alloc(&st->pool, (size_t)nbytes);
        if (!c) return mp_errf(err, "%s: out of memory copying misaligned tensor %s", st->path, name);
        memcpy(c, src, (size_t)nbytes);
        ptr = c;
        st->n_copied++;
    }
    mp_tensor_init(&e->t, (mp_dtype)d->dtype, tnd, ne, ptr);
    return 0;
}

static int parse_header(mp_safetensors *st, mp_error *err) {
    if (st->size < 8) return mp_errf(err, "%s: not a safetensors file (only %zu bytes)", st->path, st->size);
    uint64_t n;
    memcpy(&n, st->data, 8);
    if (n > st->size - 8)
        return mp_errf(err, "%s: not a safetensors file, or truncated: header length %" PRIu64 " exceeds the %zu-byte file",
                       st->path, n, st->size);
    if (n > MP_ST_MAX_HEADER)
        return mp_errf(err, "%s: safetensors header of %" PRIu64 " bytes exceeds the format's 100 MB limit", st->path, n);
    const char *h = (const char *)st->data + 8;
    if (n < 2 || h[0] != '{')
        return mp_errf(err, "%s: not a safetensors file (the header does not start with '{')", st->path);
    st->data_offset = 8 + (size_t)n;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(h, (size_t)n, &end, 0);
    if (!root) {
        size_t at = cJSON_GetErrorPtr() && cJSON_GetErrorPtr() >= h ? (size_t)(cJSON_GetErrorPtr() - h) : 0;
        return mp_errf(err, "%s: safetensors header is not valid JSON (near byte %zu of the header)", st->path, at);
    }
    for (const char *p = end; p && p < h + n; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            cJSON_Delete(root);
            return mp_errf(err, "%s: safetensors header has trailing bytes after the JSON", st->path);
        }
    int rc = 0;
    if (!cJSON_IsObject(root)) {
        rc = mp_errf(err, "%s: safetensors header is not a JSON object", st->path);
        goto done;
    }
    int count = cJSON_GetArraySize(root);
    st->e = calloc((size_t)count + 1, sizeof *st->e);
    if (!st->e || mp_strindex_init(&st->index, (size_t)count) != 0) {
        rc = mp_errf(err, "%s: out of memory", st->path);
        goto done;
    }
    size_t data_size = st->size - st->data_offset;
    const cJSON *it;
    cJSON_ArrayForEach(it, root) {
        const char *name = it->string;
        size_t len = name ? strlen(name) : 0;
        if (name && strcmp(name, "__metadata__") == 0) {
            if (!cJSON_IsObject(it)) {
                rc = mp_errf(err, "%s: __metadata__ is not an object", st->path);
                goto done;
            }
            int nm = cJSON_GetArraySize(it);
            st->meta_k = mp_pool_alloc(&st->pool, sizeof(char *) * ((size_t)nm + 1));
            st->meta_v = mp_pool_alloc(&st->pool, sizeof(char *) * ((size_t)nm + 1));
            if (!st->meta_k || !st->meta_v) {
                rc = mp_errf(err, "%s: out of memory", st->path);
                goto done;
            }
            const cJSON *m;
            st->n_meta = 0;
            cJSON_ArrayForEach(m, it) {
                if (!cJSON_IsString(m)) {
                    rc = mp_errf(err, "%s: __metadata__ value of %.64s is not a string", st->path, m->string);
                    goto done;
                }
                st->meta_k[st->n_meta] = mp_pool_strndup(&st->pool, m->string, strlen(m->string));
                st->meta_v[st->n_meta] = mp_pool_strndup(&st->pool, m->valuestring, strlen(m->valuestring));
                if (!st->meta_k[st->n_meta] || !st->meta_v[st->n_meta]) {
                    rc = mp_errf(err, "%s: out of memory", st->path);
                    goto done;
                }
                st->n_meta++;
            }
            continue;
        }
        if (!name || len == 0 || !mp_utf8_valid(name, len)) {
            rc = mp_errf(err, "%s: tensor #%" PRId64 " has an empty or non-UTF-8 name", st->path, st->n);
            goto done;
        }
        st_entry *e = &st->e[st->n];
        if (parse_entry(st, it, e, data_size, err)) {
            rc = -1;
            goto done;
        }
        char *nm = mp_pool_strndup(&st->pool, name, len);
        if (!nm) {
            rc = mp_errf(err, "%s: out of memory", st->path);
            goto done;
        }
        e->t.name = nm;
        int pr = mp_strindex_put(&st->index, nm, st->n);
        if (pr < 0) {
            rc = mp_errf(err, "%s: out of memory", st->path);
            goto done;
        }
        if (pr == 1) {
            rc = mp_errf(err, "%s: tensor name %s appears twice", st->path, nm);
            goto done;
        }
        st->n++;
    }
    if (st->n > 1) {
        int64_t *ord = malloc((size_t)st->n * sizeof *ord);
        if (!ord) {
            rc = mp_errf(err, "%s: out of memory", st->path);
            goto done;
        }
        for (int64_t i = 0; i < st->n; i++) ord[i] = i;
        qsort_r(ord, (size_t)st->n, sizeof *ord, cmp_begin, st->e);
        for (int64_t k = 1; k < st->n && rc == 0; k++) {
            const st_entry *a = &st->e[ord[k - 1]], *b = &st->e[ord[k]];
            if (a->end > b->begin && a->end > a->begin && b->end > b->begin)
                rc = mp_errf(err, "%s: tensors %s and %s overlap in the data section", st->path, a->t.name, b->t.name);
        }
        free(ord);
    }
done:
    cJSON_Delete(root);
    return rc;
}

static int st_open_common(mp_safetensors **out, mp_safetensors *st, mp_error *err) {
    if (parse_header(st, err)) {
        mp_safetensors_free(st);
        return -1;
    }
    *out = st;
    return 0;
}

int mp_safetensors_open(mp_safetensors **out, const char *path, mp_error *err) {
    *out = NULL;
    mp_safetensors *st = calloc(1, sizeof *st);
    if (!st || !(st->path = strdup(path))) {
        free(st);
        return mp_errf(err, "%s: out of memory", path);
    }
    if (mp_mmap_open(&st->map, path, err)) {
        mp_safetensors_free(st);
        return -1;
    }
    st->data = st->map.data;
    st->size = st->map.size;
    if (st->size >= 7 && memcmp(st->data, "version", 7) == 0) {
        mp_errf(err, "%s: this is a Git LFS pointer, not the weights (fetch the real file, e.g. git lfs pull)", path);
        mp_safetensors_free(st);
        return -1;
    }
    return st_open_common(out, st, err);
}

int mp_safetensors_open_memory(mp_safetensors **out, const void *data, size_t size, const char *name,
                               mp_error *err) {
    *out = NULL;
    if (!name) name = "<memory>";
    mp_safetensors *st = calloc(1, sizeof *st);
    if (!st || !(st->path = strdup(name))) {
        free(st);
        return mp_errf(err, "%s: out of memory", name);
    }
    st->data = data;
    st->size = data ? size : 0;
    return st_open_common(out, st, err);
}

void mp_safetensors_free(mp_safetensors *st) {
    if (!st) return;
    mp_mmap_close(&st->map);
    mp_strindex_free(&st->index);
    mp_pool_free(&st->pool);
    free(st->e);
    free(st->path);
    free(st);
}

const char *mp_safetensors_path(const mp_safetensors *st) { return st->path; }
size_t mp_safetensors_data_offset(const mp_safetensors *st) { return st->data_offset; }
int64_t mp_safetensors_n_tensors(const mp_safetensors *st) { return st->n; }

const mp_tensor *mp_safetensors_tensor(const mp_safetensors *st, int64_t i) {
    return i >= 0 && i < st->n ? &st->e[i].t : NULL;
}

int64_t mp_safetensors_find(const mp_safetensors *st, const char *name) { return mp_strindex_get(&st->index, name); }

const mp_tensor *mp_safetensors_get(const mp_safetensors *st, const char *name) {
    return mp_safetensors_tensor(st, mp_safetensors_find(st, name));
}

const char *mp_safetensors_dtype_name(const mp_safetensors *st, int64_t i) {
    return i >= 0 && i < st->n ? st->e[i].dtype_name : NULL;
}

int mp_safetensors_shape(const mp_safetensors *st, int64_t i, int64_t *shape) {
    if (i < 0 || i >= st->n) return -1;
    for (int k = 0; k < st->e[i].ndim; k++) shape[k] = st->e[i].shape[k];
    return st->e[i].ndim;
}

int64_t mp_safetensors_n_metadata(const mp_safetensors *st) { return st->n_meta; }

const char *mp_safetensors_metadata_key(const mp_safetensors *st, int64_t i) {
    return i >= 0 && i < st->n_meta ? st->meta_k[i] : NULL;
}

const char *mp_safetensors_metadata(const mp_safetensors *st, const char *key) {
    for (int64_t i = 0; i < st->n_meta; i++)
        if (strcmp(st->meta_k[i], key) == 0) return st->meta_v[i];
    return NULL;
}

int64_t mp_safetensors_n_copied(const mp_safetensors *st) { return st->n_copied; }
