/* gguf.c — GGUF v2/v3 reader (validating, over a read-only mmap) and writer. See gguf.h. */
#include "models/gguf.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "models/mmap.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the GGUF reader assumes a little-endian host"
#endif

#define GGUF_MAX_DEPTH 8 /* nesting of arrays of arrays */

/* ---------------------------------------------------------------- types */

static const struct {
    const char *name;
    size_t size;
} gguf_types[MP_GGUF_TYPE_COUNT] = {
    [MP_GGUF_U8] = {"u8", 1},    [MP_GGUF_I8] = {"i8", 1},        [MP_GGUF_U16] = {"u16", 2},
    [MP_GGUF_I16] = {"i16", 2},  [MP_GGUF_U32] = {"u32", 4},      [MP_GGUF_I32] = {"i32", 4},
    [MP_GGUF_F32] = {"f32", 4},  [MP_GGUF_BOOL] = {"bool", 1},    [MP_GGUF_STRING] = {"string", 0},
    [MP_GGUF_ARRAY] = {"array", 0}, [MP_GGUF_U64] = {"u64", 8}, [MP_GGUF_I64] = {"i64", 8},
    [MP_GGUF_F64] = {"f64", 8},
};

const char *mp_gguf_type_name(int type) {
    return type >= 0 && type < MP_GGUF_TYPE_COUNT ? gguf_types[type].name : "?";
}

size_t mp_gguf_type_size(int type) {
    return type >= 0 && type < MP_GGUF_TYPE_COUNT ? gguf_types[type].size : 0;
}

static int type_is_int(uint32_t t) {
    return t <= MP_GGUF_I32 || t == MP_GGUF_U64 || t == MP_GGUF_I64;
}
static int type_is_signed(uint32_t t) {
    return t == MP_GGUF_I8 || t == MP_GGUF_I16 || t == MP_GGUF_I32 || t == MP_GGUF_I64;
}
static int type_is_float(uint32_t t) { return t == MP_GGUF_F32 || t == MP_GGUF_F64; }

/* Decodes one little-endian scalar of a fixed-size type. */
static void decode_scalar(uint32_t type, const uint8_t *p, mp_gguf_value *v) {
    switch (type) {
    case MP_GGUF_U8: v->num.u64 = p[0]; break;
    case MP_GGUF_I8: v->num.i64 = (int8_t)p[0]; break;
    case MP_GGUF_BOOL: v->num.u64 = p[0] != 0; break;
    case MP_GGUF_U16: { uint16_t x; memcpy(&x, p, 2); v->num.u64 = x; break; }
    case MP_GGUF_I16: { int16_t x; memcpy(&x, p, 2); v->num.i64 = x; break; }
    case MP_GGUF_U32: { uint32_t x; memcpy(&x, p, 4); v->num.u64 = x; break; }
    case MP_GGUF_I32: { int32_t x; memcpy(&x, p, 4); v->num.i64 = x; break; }
    case MP_GGUF_F32: { float x; memcpy(&x, p, 4); v->num.f64 = x; break; }
    case MP_GGUF_U64: memcpy(&v->num.u64, p, 8); break;
    case MP_GGUF_I64: memcpy(&v->num.i64, p, 8); break;
    case MP_GGUF_F64: memcpy(&v->num.f64, p, 8); break;
    default: v->num.u64 = 0; break;
    }
}

static mp_gguf_value arr_elem(const mp_gguf_value *arr, uint64_t i) {
    mp_gguf_value e;
    memset(&e, 0, sizeof e);
    size_t sz = mp_gguf_type_size((int)arr->elem_type);
    if (arr->type == MP_GGUF_ARRAY && sz && i < arr->n && arr->raw) {
        e.type = arr->elem_type;
        decode_scalar(arr->elem_type, (const uint8_t *)arr->raw + i * sz, &e);
    }
    return e;
}

int64_t mp_gguf_arr_i64(const mp_gguf_value *arr, uint64_t i) {
    mp_gguf_value e = arr_elem(arr, i);
    if (type_is_float(e.type)) return (int64_t)e.num.f64;
    return e.num.i64;
}

uint64_t mp_gguf_arr_u64(const mp_gguf_value *arr, uint64_t i) {
    mp_gguf_value e = arr_elem(arr, i);
    if (type_is_float(e.type)) return (uint64_t)e.num.f64;
    return e.num.u64;
}

double mp_gguf_arr_f64(const mp_gguf_value *arr, uint64_t i) {
    mp_gguf_value e = arr_elem(arr, i);
    if (type_is_float(e.type)) return e.num.f64;
    return type_is_signed(e.type) ? (double)e.num.i64 : (double)e.num.u64;
}

const char *mp_gguf_arr_str(const mp_gguf_value *arr, uint64_t i, uint64_t *len) {
    if (arr->type != MP_GGUF_ARRAY || arr->elem_type != MP_GGUF_STRING || i >= arr->n || !arr->elems) return NULL;
    if (len) *len = arr->elems[i].n;
    return arr->elems[i].str;
}

/* ---------------------------------------------------------------- reader */

struct mp_gguf {
    char *path;
    mp_mmap map;
    const uint8_t *data;
    size_t size;
    uint32_t version;
    size_t alignment, data_offset;
    int64_t n_kv, n_tensors;
    const char **keys;
    mp_gguf_value *kv;
    mp_tensor *tensors;
    uint64_t *offsets; /* relative to the data section */
    size_t *nbytes;
    mp_strindex kv_index, tensor_index;
    mp_pool pool;
};

typedef struct {
    const uint8_t *p;
    size_t size, pos;
    const char *name;
    mp_error *err;
    mp_pool *pool;
} rd;

static int rd_need(rd *r, uint64_t n, const char *what, const char *key) {
    if (n > r->size - r->pos)
        return mp_errf(r->err, "%s: truncated: %s%s%s needs %" PRIu64 " bytes at offset %zu, only %zu left", r->name,
                       what, key ? " of " : "", key ? key : "", n, r->pos, r->size - r->pos);
    return 0;
}

static int rd_u32(rd *r, uint32_t *v, const char *what, const char *key) {
    if (rd_need(r, 4, what, key)) return -1;
    memcpy(v, r->p + r->pos, 4);
    r->pos += 4;
    return 0;
}

static int rd_u64(rd *r, uint64_t *v, const char *what, const char *key) {
    if (rd_need(r, 8, what, key)) return -1;
    memcpy(v, r->p + r->pos, 8);
    r->pos += 8;
    return 0;
}

/* u64 length + bytes -> NUL-terminated pool copy. */
static int rd_str(rd *r, const char **s, uint64_t *len, const char *what, const char *key) {
    uint64_t n;
    if (rd_u64(r, &n, what, key)) return -1;
    if (n > r->size - r->pos)
        return mp_errf(r->err, "%s: %s%s%s at offset %zu claims %" PRIu64 " bytes, longer than the %zu left in the file",
                       r->name, what, key ? " of " : "", key ? key : "", r->pos - 8, n, r->size - r->pos);
    char *c = mp_pool_strndup(r->pool, (const char *)r->p + r->pos, (size_t)n);
    if (!c) return mp_errf(r->err, "%s: out of memory", r->name);
    r->pos += (size_t)n;
    *s = c;
    if (len) *len = n;
    return 0;
}

static int read_value(rd *r, uint32_t type, mp_gguf_value *v, const char *key, int depth) {
    memset(v, 0, sizeof *v);
    if (type >= MP_GGUF_TYPE_COUNT)
        return mp_errf(r->err, "%s: key %s has unknown value type %u", r->name, key, type);
    v->type = type;
    size_t sz = mp_gguf_type_size((int)type);
    if (sz) {
        if (rd_need(r, sz, "value", key)) return -1;
        v->raw = r->p + r->pos;
        v->n = 1;
        decode_scalar(type, r->p + r->pos, v);
        r->pos += sz;
        return 0;
    }
    if (type == MP_GGUF_STRING) {
        v->raw = r->p + r->pos + 8;
        return rd_str(r, &v->str, &v->n, "string value", key);
    }
    /* array */
    if (depth >= GGUF_MAX_DEPTH)
        return mp_errf(r->err, "%s: key %s: arrays nested more than %d deep", r->name, key, GGUF_MAX_DEPTH);
    uint32_t et;
    uint64_t n;
    if (rd_u32(r, &et, "array type", key) || rd_u64(r, &n, "array length", key)) return -1;
    if (et >= MP_GGUF_TYPE_COUNT)
        return mp_errf(r->err, "%s: key %s is an array of unknown type %u", r->name, key, et);
    v->elem_type = et;
    v->n = n;
    size_t left = r->size - r->pos;
    size_t esz = mp_gguf_type_size((int)et);
    if (esz) {
        if (n > left / esz)
            return mp_errf(r->err, "%s: key %s: array of %" PRIu64 " %s needs more than the %zu bytes left in the file",
                           r->name, key, n, mp_gguf_type_name((int)et), left);
        v->raw = r->p + r->pos;
        r->pos += (size_t)n * esz;
        return 0;
    }
    size_t min = et == MP_GGUF_STRING ? 8 : 12; /* smallest encoding of one element */
    if (n > left / min)
        return mp_errf(r->err, "%s: key %s: array of %" PRIu64 " %s cannot fit in the %zu bytes left in the file",
                       r->name, key, n, mp_gguf_type_name((int)et), left);
    if (n == 0) return 0;
    if (n > SIZE_MAX / sizeof(mp_gguf_value)) return mp_errf(r->err, "%s: key %s: array too large", r->name, key);
    mp_gguf_value *e = mp_pool_alloc(r->pool, (size_t)n * sizeof *e);
    if (!e) return mp_errf(r->err, "%s: out of memory reading key %s", r->name, key);
    v->elems = e;
    for (uint64_t i = 0; i < n; i++)
        if (read_value(r, et, &e[i], key, depth + 1)) return -1;
    return 0;
}

/* Names of ggml types mmpipe does not run, for a clearer error. */
static const char *ggml_type_name_unsupported(uint32_t t) {
    switch (t) {
    case 4: return "q4_2 (removed from ggml)";
    case 5: return "q4_3 (removed from ggml)";
    case 16: return "iq2_xxs";
    case 17: return "iq2_xs";
    case 18: return "iq3_xxs";
    case 19: return "iq1_s";
    case 20: return "iq4_nl";
    case 21: return "iq3_s";
    case 22: return "iq2_s";
    case 23: return "iq4_xs";
    case 29: return "iq1_m";
    case 34: return "tq1_0";
    case 35: return "tq2_0";
    case 39: return "mxfp4";
    default: return NULL;
    }
}

static int cmp_offset(const void *a, const void *b, void *ctx) {
    const uint64_t *off = ctx;
    uint64_t x = off[*(const int64_t *)a], y = off[*(const int64_t *)b];
    return x < y ? -1 : x > y;
}

static int parse_tensors(mp_gguf *g, rd *r) {
    int64_t n = g->n_tensors;
    if (n == 0) return 0;
    g->tensors = calloc((size_t)n, sizeof *g->tensors);
    g->offsets = calloc((size_t)n, sizeof *g->offsets);
    g->nbytes = calloc((size_t)n, sizeof *g->nbytes);
    if (!g->tensors || !g->offsets || !g->nbytes || mp_strindex_init(&g->tensor_index, (size_t)n) != 0)
        return mp_errf(r->err, "%s: out of memory for %" PRId64 " tensors", g->path, n);
    for (int64_t i = 0; i < n; i++) {
        const char *name;
        uint64_t len;
        if (rd_str(r, &name, &len, "tensor name", NULL)) return -1;
        if (len == 0) return mp_errf(r->err, "%s: tensor #%" PRId64 " has an empty name", g->path, i);
        if (!mp_utf8_valid(name, (size_t)len) || strlen(name) != len)
            return mp_errf(r->err, "%s: tensor #%" PRId64 " has a name that is not valid UTF-8 (or holds a NUL byte)", g->path, i);
        uint32_t nd;
        if (rd_u32(r, &nd, "n_dims", name)) return -1;
        if (nd < 1 || nd > MP_MAX_DIMS)
            return mp_errf(r->err, "%s: tensor %s has %u dimensions (1..%d supported)", g->path, name, nd, MP_MAX_DIMS);
        int64_t ne[MP_MAX_DIMS] = {1, 1, 1, 1};
        int64_t nel = 1;
        for (uint32_t d = 0; d < nd; d++) {
            uint64_t x;
            if (rd_u64(r, &x, "dimension", name)) return -1;
            if (x > (uint64_t)INT64_MAX)
                return mp_errf(r->err, "%s: tensor %s: dimension %u is %" PRIu64 ", too large", g->path, name, d, x);
            ne[d] = (int64_t)x;
            /* the product of the non-zero dims must fit too, so no partial product can overflow */
            if (ne[d] != 0 && nel > INT64_MAX / ne[d])
                return mp_errf(r->err, "%s: tensor %s: element count overflows", g->path, name);
            if (ne[d] != 0) nel *= ne[d];
        }
        uint32_t type;
        uint64_t off;
        if (rd_u32(r, &type, "dtype", name) || rd_u64(r, &off, "offset", name)) return -1;
        const mp_dtype_traits *tr = mp_dtype_info((int)type);
        if (!tr) {
            const char *un = ggml_type_name_unsupported(type);
            if (un) return mp_errf(r->err, "%s: tensor %s has ggml type %u (%s), which mmpipe does not support", g->path, name, type, un);
            return mp_errf(r->err, "%s: tensor %s has unknown ggml type %u", g->path, name, type);
        }
        if (ne[0] % tr->block_size)
            return mp_errf(r->err, "%s: tensor %s: ne[0] = %" PRId64 " is not a multiple of the %s block size %d",
                           g->path, name, ne[0], tr->name, tr->block_size);
        int64_t row = mp_dtype_row_bytes((mp_dtype)type, ne[0]);
        int64_t rows = ne[1] * ne[2] * ne[3]; /* cannot overflow: checked above */
        if (row < 0 || (rows && row > INT64_MAX / rows) || (uint64_t)(row * rows) > (uint64_t)SIZE_MAX)
            return mp_errf(r->err, "%s: tensor %s: byte size overflows", g->path, name);
        int rc = mp_strindex_put(&g->tensor_index, name, i);
        if (rc < 0) return mp_errf(r->err, "%s: out of memory", g->path);
        if (rc == 1) return mp_errf(r->err, "%s: tensor name %s appears twice", g->path, name);
        mp_tensor_init(&g->tensors[i], (mp_dtype)type, (int)nd, ne, NULL);
        g->tensors[i].name = name;
        g->offsets[i] = off;
        g->nbytes[i] = (size_t)(row * rows);
    }
    return 0;
}

static int place_tensors(mp_gguf *g, mp_error *err) {
    int64_t n = g->n_tensors;
    if (n == 0) return 0;
    if (g->data_offset > g->size)
        return mp_errf(err, "%s: truncated: the data section would start at byte %zu, past the end of the %zu-byte file",
                       g->path, g->data_offset, g->size);
    size_t data_size = g->size - g->data_offset;
    for (int64_t i = 0; i < n; i++) {
        const char *name = g->tensors[i].name;
        if (g->offsets[i] % g->alignment)
            return mp_errf(err, "%s: tensor %s: offset %" PRIu64 " is not a multiple of the alignment %zu", g->path,
                           name, g->offsets[i], g->alignment);
        if (g->offsets[i] > data_size || g->nbytes[i] > data_size - g->offsets[i])
            return mp_errf(err, "%s: tensor %s: bytes [%" PRIu64 ", +%zu) of the data section lie outside the file (data section is %zu bytes)",
                           g->path, name, g->offsets[i], g->nbytes[i], data_size);
        g->tensors[i].data = (void *)(g->data + g->data_offset + g->offsets[i]);
    }
    int64_t *ord = malloc((size_t)n * sizeof *ord);
    if (!ord) return mp_errf(err, "%s: out of memory", g->path);
    for (int64_t i = 0; i < n; i++) ord[i] = i;
    qsort_r(ord, (size_t)n, sizeof *ord, cmp_offset, g->offsets);
    for (int64_t k = 1; k < n; k++) {
        int64_t a = ord[k - 1], b = ord[k];
        if (g->nbytes[a] && g->nbytes[b] && g->offsets[a] + g->nbytes[a] > g->offsets[b]) {
            mp_errf(err, "%s: tensors %s and %s overlap in the data section", g->path, g->tensors[a].name,
                    g->tensors[b].name);
            free(ord);
            return -1;
        }
    }
    free(ord);
    return 0;
}

static int gguf_parse(mp_gguf *g, mp_error *err) {
    rd r = {g->data, g->size, 0, g->path, err, &g->pool};
    if (g->size < 4 || memcmp(g->data, "GGUF", 4) != 0) {
        if (g->size < 4) return mp_errf(err, "%s: not a GGUF file (only %zu bytes)", g->path, g->size);
        return mp_errf(err, "%s: not a GGUF file (magic %02x %02x %02x %02x, expected \"GGUF\")", g->path, g->data[0],
                       g->data[1], g->data[2], g->data[3]);
    }
    r.pos = 4;
    if (rd_u32(&r, &g->version, "version", NULL)) return -1;
    if (g->version == 1)
        return mp_errf(err, "%s: GGUF version 1 is not supported (re-convert with a current llama.cpp)", g->path);
    if ((g->version & 0xffff) == 0 && (g->version >> 16) != 0)
        return mp_errf(err, "%s: big-endian GGUF is not supported", g->path);
    if (g->version != 2 && g->version != 3)
        return mp_errf(err, "%s: GGUF version %u is not supported (2 and 3 are)", g->path, g->version);
    uint64_t nt, nkv;
    if (rd_u64(&r, &nt, "tensor count", NULL) || rd_u64(&r, &nkv, "key/value count", NULL)) return -1;
    size_t left = g->size - r.pos;
    if (nkv > left / 13) /* key length 8 + type 4 + at least 1 value byte */
        return mp_errf(err, "%s: key/value count %" PRIu64 " is impossible for a %zu-byte file", g->path, nkv, g->size);
    if (nt > left / 32) /* name length 8 + n_dims 4 + one dim 8 + type 4 + offset 8 */
        return mp_errf(err, "%s: tensor count %" PRIu64 " is impossible for a %zu-byte file", g->path, nt, g->size);
    g->n_kv = (int64_t)nkv;
    g->n_tensors = (int64_t)nt;
    if (nkv) {
        g->keys = calloc((size_t)nkv, sizeof *g->keys);
        g->kv = calloc((size_t)nkv, sizeof *g->kv);
        if (!g->keys || !g->kv || mp_strindex_init(&g->kv_index, (size_t)nkv) != 0)
            return mp_errf(err, "%s: out of memory", g->path);
    }
    for (int64_t i = 0; i < g->n_kv; i++) {
        const char *key;
        uint64_t len;
        uint32_t type;
        if (rd_str(&r, &key, &len, "key", NULL)) return -1;
        if (len == 0) return mp_errf(err, "%s: key #%" PRId64 " is empty", g->path, i);
        if (!mp_utf8_valid(key, (size_t)len) || strlen(key) != len)
            return mp_errf(err, "%s: key #%" PRId64 " is not valid UTF-8", g->path, i);
        if (rd_u32(&r, &type, "value type", key)) return -1;
        if (read_value(&r, type, &g->kv[i], key, 0)) return -1;
        g->keys[i] = key;
        int rc = mp_strindex_put(&g->kv_index, key, i);
        if (rc < 0) return mp_errf(err, "%s: out of memory", g->path);
        if (rc == 1) return mp_errf(err, "%s: key %s appears twice", g->path, key);
    }
    if (parse_tensors(g, &r)) return -1;

    g->alignment = MP_GGUF_DEFAULT_ALIGNMENT;
    const mp_gguf_value *al = mp_gguf_get(g, "general.alignment");
    if (al) {
        uint32_t a;
        if (mp_gguf_get_u32(g, "general.alignment", &a, err)) return -1;
        if (a == 0 || (a & (a - 1)) || a > (1u << 30))
            return mp_errf(err, "%s: general.alignment = %u is not a power of two (up to 2^30)", g->path, a);
        g->alignment = a;
    }
    g->data_offset = (r.pos + g->alignment - 1) / g->alignment * g->alignment;
    return place_tensors(g, err);
}

static int gguf_open_common(mp_gguf **out, mp_gguf *g, mp_error *err) {
    if (gguf_parse(g, err)) {
        mp_gguf_free(g);
        return -1;
    }
    *out = g;
    return 0;
}

int mp_gguf_open(mp_gguf **out, const char *path, mp_error *err) {
    *out = NULL;
    mp_gguf *g = calloc(1, sizeof *g);
    if (!g || !(g->path = strdup(path))) {
        free(g);
        return mp_errf(err, "%s: out of memory", path);
    }
    if (mp_mmap_open(&g->map, path, err)) {
        mp_gguf_free(g);
        return -1;
    }
    g->data = g->map.data;
    g->size = g->map.size;
    return gguf_open_common(out, g, err);
}

int mp_gguf_open_memory(mp_gguf **out, const void *data, size_t size, const char *name, mp_error *err) {
    *out = NULL;
    if (!name) name = "<memory>";
    mp_gguf *g = calloc(1, sizeof *g);
    if (!g || !(g->path = strdup(name))) {
        free(g);
        return mp_errf(err, "%s: out of memory", name);
    }
    g->data = data;
    g->size = data ? size : 0;
    return gguf_open_common(out, g, err);
}

void mp_gguf_free(mp_gguf *g) {
    if (!g) return;
    mp_mmap_close(&g->map);
    mp_strindex_free(&g->kv_index);
    mp_strindex_free(&g->tensor_index);
    mp_pool_free(&g->pool);
    free(g->keys);
    free(g->kv);
    free(g->tensors);
    free(g->offsets);
    free(g->nbytes);
    free(g->path);
    free(g);
}

const char *mp_gguf_path(const mp_gguf *g) { return g->path; }
uint32_t mp_gguf_version(const mp_gguf *g) { return g->version; }
size_t mp_gguf_alignment(const mp_gguf *g) { return g->alignment; }
size_t mp_gguf_data_offset(const mp_gguf *g) { return g->data_offset; }
size_t mp_gguf_file_size(const mp_gguf *g) { return g->size; }
const void *mp_gguf_data(const mp_gguf *g) { return g->data; }
int64_t mp_gguf_n_kv(const mp_gguf *g) { return g->n_kv; }

const char *mp_gguf_key(const mp_gguf *g, int64_t i) {
    return i >= 0 && i < g->n_kv ? g->keys[i] : NULL;
}

const mp_gguf_value *mp_gguf_kv(const mp_gguf *g, int64_t i) {
    return i >= 0 && i < g->n_kv ? &g->kv[i] : NULL;
}

int64_t mp_gguf_find_key(const mp_gguf *g, const char *key) { return mp_strindex_get(&g->kv_index, key); }

const mp_gguf_value *mp_gguf_get(const mp_gguf *g, const char *key) {
    int64_t i = mp_gguf_find_key(g, key);
    return i < 0 ? NULL : &g->kv[i];
}

int mp_gguf_has(const mp_gguf *g, const char *key) { return mp_gguf_find_key(g, key) >= 0; }

/* ---------------------------------------------------------------- typed getters */

static const char *value_type_str(const mp_gguf_value *v, char *buf, size_t cap) {
    if (v->type == MP_GGUF_ARRAY)
        snprintf(buf, cap, "array[%s]", mp_gguf_type_name((int)v->elem_type));
    else
        snprintf(buf, cap, "%s", mp_gguf_type_name((int)v->type));
    return buf;
}

static int type_error(const mp_gguf *g, const char *key, const mp_gguf_value *v, const char *want, mp_error *err) {
    char b[48];
    return mp_errf(err, "%s: key %s is %s, expected %s", g->path, key, value_type_str(v, b, sizeof b), want);
}

static const mp_gguf_value *need_key(const mp_gguf *g, const char *key, mp_error *err) {
    const mp_gguf_value *v = mp_gguf_get(g, key);
    if (!v) mp_errf(err, "%s: key %s not found", g->path, key);
    return v;
}

/* Integer value (scalar decoded in v) within [lo, hi] -> *out. */
static int int_in_range(const mp_gguf_value *v, int64_t lo, uint64_t hi, int64_t *si, uint64_t *ui) {
    if (type_is_signed(v->type)) {
        int64_t x = v->num.i64;
        if (x < lo || (x > 0 && (uint64_t)x > hi)) return 0;
        *si = x;
        *ui = (uint64_t)x;
    } else {
        uint64_t x = v->num.u64;
        if (x > hi) return 0;
        *si = (int64_t)x;
        *ui = x;
    }
    return 1;
}

static int get_int(const mp_gguf *g, const char *key, int64_t lo, uint64_t hi, const char *want, int64_t *si,
                   uint64_t *ui, mp_error *err) {
    const mp_gguf_value *v = need_key(g, key, err);
    if (!v) return -1;
    if (!type_is_int(v->type)) return type_error(g, key, v, want, err);
    if (!int_in_range(v, lo, hi, si, ui)) {
        if (type_is_signed(v->type))
            return mp_errf(err, "%s: key %s = %" PRId64 " does not fit in %s", g->path, key, v->num.i64, want);
        return mp_errf(err, "%s: key %s = %" PRIu64 " does not fit in %s", g->path, key, v->num.u64, want);
    }
    return 0;
}

int mp_gguf_get_u32(const mp_gguf *g, const char *key, uint32_t *out, mp_error *err) {
    int64_t s;
    uint64_t u;
    if (get_int(g, key, 0, UINT32_MAX, "u32", &s, &u, err)) return -1;
    *out = (uint32_t)u;
    return 0;
}

int mp_gguf_get_i32(const mp_gguf *g, const char *key, int32_t *out, mp_error *err) {
    int64_t s;
    uint64_t u;
    if (get_int(g, key, INT32_MIN, INT32_MAX, "i32", &s, &u, err)) return -1;
    *out = (int32_t)s;
    return 0;
}

int mp_gguf_get_u64(const mp_gguf *g, const char *key, uint64_t *out, mp_error *err) {
    int64_t s;
    uint64_t u;
    if (get_int(g, key, 0, UINT64_MAX, "u64", &s, &u, err)) return -1;
    *out = u;
    return 0;
}

int mp_gguf_get_i64(const mp_gguf *g, const char *key, int64_t *out, mp_error *err) {
    int64_t s;
    uint64_t u;
    if (get_int(g, key, INT64_MIN, INT64_MAX, "i64", &s, &u, err)) return -1;
    *out = s;
    return 0;
}

int mp_gguf_get_f64(const mp_gguf *g, const char *key, double *out, mp_error *err) {
    const mp_gguf_value *v = need_key(g, key, err);
    if (!v) return -1;
    if (!type_is_float(v->type)) return type_error(g, key, v, "f32", err);
    *out = v->num.f64;
    return 0;
}

int mp_gguf_get_f32(const mp_gguf *g, const char *key, float *out, mp_error *err) {
    double d;
    if (mp_gguf_get_f64(g, key, &d, err)) return -1;
    *out = (float)d;
    return 0;
}

int mp_gguf_get_bool(const mp_gguf *g, const char *key, int *out, mp_error *err) {
    const mp_gguf_value *v = need_key(g, key, err);
    if (!v) return -1;
    if (v->type != MP_GGUF_BOOL) return type_error(g, key, v, "bool", err);
    *out = (int)v->num.u64;
    return 0;
}

int mp_gguf_get_str(const mp_gguf *g, const char *key, const char **out, mp_error *err) {
    const mp_gguf_value *v = need_key(g, key, err);
    if (!v) return -1;
    if (v->type != MP_GGUF_STRING) return type_error(g, key, v, "string", err);
    *out = v->str;
    return 0;
}

int mp_gguf_get_u32_or(const mp_gguf *g, const char *key, uint32_t def, uint32_t *out, mp_error *err) {
    if (!mp_gguf_has(g, key)) { *out = def; return 0; }
    return mp_gguf_get_u32(g, key, out, err);
}

int mp_gguf_get_i32_or(const mp_gguf *g, const char *key, int32_t def, int32_t *out, mp_error *err) {
    if (!mp_gguf_has(g, key)) { *out = def; return 0; }
    return mp_gguf_get_i32(g, key, out, err);
}

int mp_gguf_get_f32_or(const mp_gguf *g, const char *key, float def, float *out, mp_error *err) {
    if (!mp_gguf_has(g, key)) { *out = def; return 0; }
    return mp_gguf_get_f32(g, key, out, err);
}

int mp_gguf_get_bool_or(const mp_gguf *g, const char *key, int def, int *out, mp_error *err) {
    if (!mp_gguf_has(g, key)) { *out = def; return 0; }
    return mp_gguf_get_bool(g, key, out, err);
}

int mp_gguf_get_str_or(const mp_gguf *g, const char *key, const char *def, const char **out, mp_error *err) {
    if (!mp_gguf_has(g, key)) { *out = def; return 0; }
    return mp_gguf_get_str(g, key, out, err);
}

int mp_gguf_get_arr(const mp_gguf *g, const char *key, const mp_gguf_value **arr, uint64_t *n, mp_error *err) {
    const mp_gguf_value *v = need_key(g, key, err);
    if (!v) return -1;
    if (v->type != MP_GGUF_ARRAY) return type_error(g, key, v, "an array", err);
    if (arr) *arr = v;
    if (n) *n = v->n;
    return 0;
}

int64_t mp_gguf_arr_len(const mp_gguf *g, const char *key, mp_error *err) {
    uint64_t n;
    if (mp_gguf_get_arr(g, key, NULL, &n, err)) return -1;
    return (int64_t)n;
}

/* The array under key with n elements of an accepted kind. */
static const mp_gguf_value *get_arr_n(const mp_gguf *g, const char *key, uint64_t n, int (*ok)(uint32_t),
                                      const char *want, mp_error *err) {
    const mp_gguf_value *v;
    uint64_t len;
    if (mp_gguf_get_arr(g, key, &v, &len, err)) return NULL;
    if (!ok(v->elem_type)) {
        type_error(g, key, v, want, err);
        return NULL;
    }
    if (len != n) {
        mp_errf(err, "%s: key %s has %" PRIu64 " elements, expected %" PRIu64, g->path, key, len, n);
        return NULL;
    }
    return v;
}

static int get_arr_int(const mp_gguf *g, const char *key, uint64_t n, int64_t lo, uint64_t hi, const char *want,
                       int32_t *d32, int64_t *d64, mp_error *err) {
    const mp_gguf_value *v = get_arr_n(g, key, n, type_is_int, want, err);
    if (!v) return -1;
    for (uint64_t i = 0; i < n; i++) {
        mp_gguf_value e = arr_elem(v, i);
        int64_t s;
        uint64_t u;
        if (!int_in_range(&e, lo, hi, &s, &u))
            return mp_errf(err, "%s: key %s: element %" PRIu64 " does not fit in %s", g->path, key, i, want);
        if (d32) d32[i] = (int32_t)s;
        if (d64) d64[i] = s;
    }
    return 0;
}

int mp_gguf_get_arr_i32(const mp_gguf *g, const char *key, int32_t *dst, uint64_t n, mp_error *err) {
    return get_arr_int(g, key, n, INT32_MIN, INT32_MAX, "array[i32]", dst, NULL, err);
}

int mp_gguf_get_arr_i64(const mp_gguf *g, const char *key, int64_t *dst, uint64_t n, mp_error *err) {
    return get_arr_int(g, key, n, INT64_MIN, INT64_MAX, "array[i64]", NULL, dst, err);
}

int mp_gguf_get_arr_f32(const mp_gguf *g, const char *key, float *dst, uint64_t n, mp_error *err) {
    const mp_gguf_value *v = get_arr_n(g, key, n, type_is_float, "array[f32]", err);
    if (!v) return -1;
    if (v->elem_type == MP_GGUF_F32) {
        if (n) memcpy(dst, v->raw, (size_t)n * 4);
    } else {
        for (uint64_t i = 0; i < n; i++) dst[i] = (float)mp_gguf_arr_f64(v, i);
    }
    return 0;
}

static int is_string_type(uint32_t t) { return t == MP_GGUF_STRING; }

int mp_gguf_get_arr_str(const mp_gguf *g, const char *key, const char **dst, uint64_t *lens, uint64_t n,
                        mp_error *err) {
    const mp_gguf_value *v = get_arr_n(g, key, n, is_string_type, "array[string]", err);
    if (!v) return -1;
    for (uint64_t i = 0; i < n; i++) {
        dst[i] = v->elems[i].str;
        if (lens) lens[i] = v->elems[i].n;
    }
    return 0;
}

const char *mp_gguf_arch_key(const mp_gguf *g, const char *suffix, char *buf, size_t cap) {
    const mp_gguf_value *a = mp_gguf_get(g, "general.architecture");
    if (cap) buf[0] = 0;
    if (a && a->type == MP_GGUF_STRING && cap) snprintf(buf, cap, "%s.%s", a->str, suffix);
    return buf;
}

/* ---------------------------------------------------------------- tensors */

int64_t mp_gguf_n_tensors(const mp_gguf *g) { return g->n_tensors; }

const mp_tensor *mp_gguf_tensor(const mp_gguf *g, int64_t i) {
    return i >= 0 && i < g->n_tensors ? &g->tensors[i] : NULL;
}

int64_t mp_gguf_find_tensor_index(const mp_gguf *g, const char *name) {
    return mp_strindex_get(&g->tensor_index, name);
}

const mp_tensor *mp_gguf_find_tensor(const mp_gguf *g, const char *name) {
    return mp_gguf_tensor(g, mp_gguf_find_tensor_index(g, name));
}

uint64_t mp_gguf_tensor_offset(const mp_gguf *g, int64_t i) {
    return i >= 0 && i < g->n_tensors ? g->data_offset + g->offsets[i] : 0;
}

size_t mp_gguf_tensor_nbytes(const mp_gguf *g, int64_t i) {
    return i >= 0 && i < g->n_tensors ? g->nbytes[i] : 0;
}

/* ---------------------------------------------------------------- writer */

typedef struct {
    char *key;
    mp_gguf_value v;
} wkv;

typedef struct {
    char *name;
    mp_dtype dtype;
    int ndim;
    int64_t ne[MP_MAX_DIMS];
    size_t nbytes;
    const void *data;
    mp_gguf_fill_fn fill;
    void *ctx;
} wtensor;

struct mp_gguf_writer {
    uint32_t version, alignment;
    wkv *kv;
    int64_t n_kv, cap_kv;
    wtensor *t;
    int64_t n_t, cap_t;
    mp_strindex kv_index, t_index;
    mp_pool pool;
    int failed;
    mp_error err;
};

mp_gguf_writer *mp_gguf_writer_new(void) {
    mp_gguf_writer *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    w->version = 3;
    w->alignment = MP_GGUF_DEFAULT_ALIGNMENT;
    return w;
}

void mp_gguf_writer_free(mp_gguf_writer *w) {
    if (!w) return;
    free(w->kv);
    free(w->t);
    mp_strindex_free(&w->kv_index);
    mp_strindex_free(&w->t_index);
    mp_pool_free(&w->pool);
    free(w);
}

static int wfail(mp_gguf_writer *w, const char *fmt, const char *arg) {
    if (!w->failed) {
        w->failed = 1;
        mp_errf(&w->err, fmt, arg);
    }
    return -1;
}

void mp_gguf_writer_set_version(mp_gguf_writer *w, uint32_t version) {
    if (version != 2 && version != 3) {
        wfail(w, "GGUF writer: version %s is not supported (2 or 3)", version == 1 ? "1" : "other than 2/3");
        return;
    }
    w->version = version;
}

/* Deep copy of v into the writer's pool. */
static int copy_value(mp_gguf_writer *w, mp_gguf_value *dst, const mp_gguf_value *src, int depth) {
    *dst = *src;
    dst->raw = NULL;
    dst->str = NULL;
    dst->elems = NULL;
    if (src->type >= MP_GGUF_TYPE_COUNT || depth > GGUF_MAX_DEPTH) return -1;
    size_t sz = mp_gguf_type_size((int)src->type);
    if (sz) {
        uint8_t *b = mp_pool_alloc(&w->pool, sz);
        if (!b) return -1;
        if (src->raw) {
            memcpy(b, src->raw, sz);
        } else { /* encode num as the type */
            mp_gguf_value t = *src;
            switch (src->type) {
            case MP_GGUF_F32: { float f = (float)t.num.f64; memcpy(b, &f, 4); break; }
            case MP_GGUF_F64: memcpy(b, &t.num.f64, 8); break;
            case MP_GGUF_BOOL: b[0] = t.num.u64 != 0; break;
            default: memcpy(b, &t.num.u64, sz); break; /* little-endian: low bytes */
            }
        }
        dst->raw = b;
        dst->n = 1;
        decode_scalar(src->type, b, dst);
        return 0;
    }
    if (src->type == MP_GGUF_STRING) {
        if (!src->str && src->n) return -1;
        dst->str = mp_pool_strndup(&w->pool, src->str ? src->str : "", (size_t)src->n);
        dst->raw = dst->str;
        return dst->str ? 0 : -1;
    }
    if (src->elem_type >= MP_GGUF_TYPE_COUNT) return -1;
    size_t esz = mp_gguf_type_size((int)src->elem_type);
    if (esz) {
        if (src->n > SIZE_MAX / esz || (src->n && !src->raw)) return -1;
        void *b = mp_pool_alloc(&w->pool, (size_t)src->n * esz);
        if (!b) return -1;
        if (src->n) memcpy(b, src->raw, (size_t)src->n * esz);
        dst->raw = b;
        return 0;
    }
    if (src->n == 0) return 0;
    if (!src->elems || src->n > SIZE_MAX / sizeof(mp_gguf_value)) return -1;
    mp_gguf_value *e = mp_pool_alloc(&w->pool, (size_t)src->n * sizeof *e);
    if (!e) return -1;
    for (uint64_t i = 0; i < src->n; i++) {
        if (src->elems[i].type != src->elem_type) return -1;
        if (copy_value(w, &e[i], &src->elems[i], depth + 1)) return -1;
    }
    dst->elems = e;
    return 0;
}

int mp_gguf_set_value(mp_gguf_writer *w, const char *key, const mp_gguf_value *v) {
    if (!key || !*key || !mp_utf8_valid(key, strlen(key))) return wfail(w, "GGUF writer: key \"%s\" is empty or not UTF-8", key ? key : "");
    int64_t i = mp_strindex_get(&w->kv_index, key);
    mp_gguf_value copy;
    if (copy_value(w, &copy, v, 0)) return wfail(w, "GGUF writer: cannot store key %s (bad value or out of memory)", key);
    if (i >= 0) {
        w->kv[i].v = copy;
        return 0;
    }
    if (w->n_kv == w->cap_kv) {
        int64_t cap = w->cap_kv ? 2 * w->cap_kv : 32;
        wkv *n = realloc(w->kv, (size_t)cap * sizeof *n);
        if (!n) return wfail(w, "GGUF writer: out of memory adding key %s", key);
        w->kv = n;
        w->cap_kv = cap;
    }
    char *k = mp_pool_strndup(&w->pool, key, strlen(key));
    if (!k || mp_strindex_put(&w->kv_index, k, w->n_kv) < 0) return wfail(w, "GGUF writer: out of memory adding key %s", key);
    w->kv[w->n_kv].key = k;
    w->kv[w->n_kv].v = copy;
    w->n_kv++;
    return 0;
}

static int set_scalar(mp_gguf_writer *w, const char *key, uint32_t type, const void *bytes) {
    mp_gguf_value v;
    memset(&v, 0, sizeof v);
    v.type = type;
    v.raw = bytes;
    return mp_gguf_set_value(w, key, &v);
}

int mp_gguf_set_u8(mp_gguf_writer *w, const char *key, uint8_t v) { return set_scalar(w, key, MP_GGUF_U8, &v); }
int mp_gguf_set_i8(mp_gguf_writer *w, const char *key, int8_t v) { return set_scalar(w, key, MP_GGUF_I8, &v); }
int mp_gguf_set_u16(mp_gguf_writer *w, const char *key, uint16_t v) { return set_scalar(w, key, MP_GGUF_U16, &v); }
int mp_gguf_set_i16(mp_gguf_writer *w, const char *key, int16_t v) { return set_scalar(w, key, MP_GGUF_I16, &v); }
int mp_gguf_set_u32(mp_gguf_writer *w, const char *key, uint32_t v) { return set_scalar(w, key, MP_GGUF_U32, &v); }
int mp_gguf_set_i32(mp_gguf_writer *w, const char *key, int32_t v) { return set_scalar(w, key, MP_GGUF_I32, &v); }
int mp_gguf_set_f32(mp_gguf_writer *w, const char *key, float v) { return set_scalar(w, key, MP_GGUF_F32, &v); }
int mp_gguf_set_u64(mp_gguf_writer *w, const char *key, uint64_t v) { return set_scalar(w, key, MP_GGUF_U64, &v); }
int mp_gguf_set_i64(mp_gguf_writer *w, const char *key, int64_t v) { return set_scalar(w, key, MP_GGUF_I64, &v); }
int mp_gguf_set_f64(mp_gguf_writer *w, const char *key, double v) { return set_scalar(w, key, MP_GGUF_F64, &v); }

int mp_gguf_set_bool(mp_gguf_writer *w, const char *key, int v) {
    uint8_t b = v != 0;
    return set_scalar(w, key, MP_GGUF_BOOL, &b);
}

int mp_gguf_set_strn(mp_gguf_writer *w, const char *key, const char *s, uint64_t len) {
    mp_gguf_value v;
    memset(&v, 0, sizeof v);
    v.type = MP_GGUF_STRING;
    v.str = s;
    v.n = len;
    return mp_gguf_set_value(w, key, &v);
}

int mp_gguf_set_str(mp_gguf_writer *w, const char *key, const char *s) {
    return mp_gguf_set_strn(w, key, s ? s : "", s ? strlen(s) : 0);
}

int mp_gguf_set_arr(mp_gguf_writer *w, const char *key, mp_gguf_type elem_type, const void *data, uint64_t n) {
    if (!mp_gguf_type_size(elem_type)) return wfail(w, "GGUF writer: key %s: mp_gguf_set_arr takes fixed-size elements", key);
    mp_gguf_value v;
    memset(&v, 0, sizeof v);
    v.type = MP_GGUF_ARRAY;
    v.elem_type = elem_type;
    v.n = n;
    v.raw = data;
    return mp_gguf_set_value(w, key, &v);
}

int mp_gguf_set_arr_str(mp_gguf_writer *w, const char *key, const char *const *strs, uint64_t n) {
    mp_gguf_value v;
    memset(&v, 0, sizeof v);
    v.type = MP_GGUF_ARRAY;
    v.elem_type = MP_GGUF_STRING;
    v.n = n;
    mp_gguf_value *e = NULL;
    if (n) {
        if (n > SIZE_MAX / sizeof *e || !(e = calloc((size_t)n, sizeof *e)))
            return wfail(w, "GGUF writer: out of memory for key %s", key);
        for (uint64_t i = 0; i < n; i++) {
            e[i].type = MP_GGUF_STRING;
            e[i].str = strs[i] ? strs[i] : "";
            e[i].n = strlen(e[i].str);
        }
    }
    v.elems = e;
    int rc = mp_gguf_set_value(w, key, &v);
    free(e);
    return rc;
}

int mp_gguf_writer_set_alignment(mp_gguf_writer *w, uint32_t alignment) {
    if (alignment == 0 || (alignment & (alignment - 1)) || alignment > (1u << 30))
        return wfail(w, "GGUF writer: alignment %s is not a power of two", "value");
    w->alignment = alignment;
    return mp_gguf_set_u32(w, "general.alignment", alignment);
}

static int add_tensor(mp_gguf_writer *w, const char *name, mp_dtype dtype, int ndim, const int64_t *ne,
                      const void *data, mp_gguf_fill_fn fill, void *ctx) {
    if (!name || !*name || !mp_utf8_valid(name, strlen(name))) return wfail(w, "GGUF writer: tensor name \"%s\" is empty or not UTF-8", name ? name : "");
    const mp_dtype_traits *tr = mp_dtype_info(dtype);
    if (!tr) return wfail(w, "GGUF writer: tensor %s has an unknown dtype", name);
    if (ndim < 1 || ndim > MP_MAX_DIMS) return wfail(w, "GGUF writer: tensor %s: ndim must be 1..4", name);
    int64_t rows = 1;
    for (int d = 0; d < ndim; d++) {
        if (ne[d] < 0) return wfail(w, "GGUF writer: tensor %s has a negative dimension", name);
        if (d > 0) {
            if (ne[d] && rows > INT64_MAX / ne[d]) return wfail(w, "GGUF writer: tensor %s is too large", name);
            rows *= ne[d];
        }
    }
    int64_t row = mp_dtype_row_bytes(dtype, ne[0]);
    if (row < 0) return wfail(w, "GGUF writer: tensor %s: ne[0] is not a multiple of the block size", name);
    if (rows && row > INT64_MAX / rows) return wfail(w, "GGUF writer: tensor %s is too large", name);
    if (w->n_t == w->cap_t) {
        int64_t cap = w->cap_t ? 2 * w->cap_t : 64;
        wtensor *n = realloc(w->t, (size_t)cap * sizeof *n);
        if (!n) return wfail(w, "GGUF writer: out of memory adding tensor %s", name);
        w->t = n;
        w->cap_t = cap;
    }
    char *nm = mp_pool_strndup(&w->pool, name, strlen(name));
    if (!nm) return wfail(w, "GGUF writer: out of memory adding tensor %s", name);
    int rc = mp_strindex_put(&w->t_index, nm, w->n_t);
    if (rc < 0) return wfail(w, "GGUF writer: out of memory adding tensor %s", name);
    if (rc == 1) return wfail(w, "GGUF writer: tensor %s added twice", name);
    wtensor *t = &w->t[w->n_t++];
    memset(t, 0, sizeof *t);
    t->name = nm;
    t->dtype = dtype;
    t->ndim = ndim;
    for (int d = 0; d < MP_MAX_DIMS; d++) t->ne[d] = d < ndim ? ne[d] : 1;
    t->nbytes = (size_t)(row * rows);
    t->data = data;
    t->fill = fill;
    t->ctx = ctx;
    return 0;
}

int mp_gguf_writer_add_tensor(mp_gguf_writer *w, const char *name, mp_dtype dtype, int ndim, const int64_t *ne,
                              const void *data) {
    return add_tensor(w, name, dtype, ndim, ne, data, NULL, NULL);
}

int mp_gguf_writer_add_tensor_fn(mp_gguf_writer *w, const char *name, mp_dtype dtype, int ndim, const int64_t *ne,
                                 mp_gguf_fill_fn fill, void *ctx) {
    if (!fill) return wfail(w, "GGUF writer: tensor %s has no fill function", name);
    return add_tensor(w, name, dtype, ndim, ne, NULL, fill, ctx);
}

int64_t mp_gguf_writer_n_tensors(const mp_gguf_writer *w) { return w->n_t; }

typedef struct {
    FILE *f;
    uint64_t pos;
    int bad;
} wout;

static void put(wout *o, const void *p, size_t n) {
    if (n && fwrite(p, 1, n, o->f) != n) o->bad = 1;
    o->pos += n;
}
static void put_u32(wout *o, uint32_t v) { put(o, &v, 4); }
static void put_u64(wout *o, uint64_t v) { put(o, &v, 8); }
static void put_str(wout *o, const char *s, uint64_t n) {
    put_u64(o, n);
    put(o, s, (size_t)n);
}
static void put_pad(wout *o, uint64_t align) {
    static const uint8_t zeros[256];
    uint64_t pad = (align - o->pos % align) % align;
    while (pad) {
        size_t k = pad > sizeof zeros ? sizeof zeros : (size_t)pad;
        put(o, zeros, k);
        pad -= k;
    }
}

/* The value's payload (no type tag). */
static void put_value(wout *o, const mp_gguf_value *v) {
    size_t sz = mp_gguf_type_size((int)v->type);
    if (sz) {
        put(o, v->raw, sz);
    } else if (v->type == MP_GGUF_STRING) {
        put_str(o, v->str, v->n);
    } else {
        put_u32(o, v->elem_type);
        put_u64(o, v->n);
        size_t esz = mp_gguf_type_size((int)v->elem_type);
        if (esz)
            put(o, v->raw, (size_t)v->n * esz);
        else
            for (uint64_t i = 0; i < v->n; i++) put_value(o, &v->elems[i]);
    }
}

int mp_gguf_writer_write(mp_gguf_writer *w, const char *path, mp_error *err) {
    if (w->failed) return mp_errf(err, "%s: %s", path, w->err.msg);
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 5);
    if (!tmp) return mp_errf(err, "%s: out of memory", path);
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    wout o = {fopen(tmp, "wb"), 0, 0};
    if (!o.f) {
        mp_errf(err, "%s: cannot create: %s", tmp, strerror(errno));
        free(tmp);
        return -1;
    }
    const uint64_t align = w->alignment;
    put(&o, "GGUF", 4);
    put_u32(&o, w->version);
    put_u64(&o, (uint64_t)w->n_t);
    put_u64(&o, (uint64_t)w->n_kv);
    for (int64_t i = 0; i < w->n_kv; i++) {
        put_str(&o, w->kv[i].key, strlen(w->kv[i].key));
        put_u32(&o, w->kv[i].v.type);
        put_value(&o, &w->kv[i].v);
    }
    uint64_t off = 0;
    for (int64_t i = 0; i < w->n_t; i++) {
        const wtensor *t = &w->t[i];
        put_str(&o, t->name, strlen(t->name));
        put_u32(&o, (uint32_t)t->ndim);
        for (int d = 0; d < t->ndim; d++) put_u64(&o, (uint64_t)t->ne[d]);
        put_u32(&o, (uint32_t)t->dtype);
        put_u64(&o, off);
        off += (t->nbytes + align - 1) / align * align;
    }
    int rc = 0;
    if (w->n_t) put_pad(&o, align);
    for (int64_t i = 0; i < w->n_t && !o.bad && rc == 0; i++) {
        const wtensor *t = &w->t[i];
        if (t->fill) {
            void *buf = malloc(t->nbytes ? t->nbytes : 1);
            if (!buf) {
                rc = mp_errf(err, "%s: out of memory for tensor %s (%zu bytes)", path, t->name, t->nbytes);
                break;
            }
            if (t->fill(t->ctx, i, buf, t->nbytes, err) == 0)
                put(&o, buf, t->nbytes);
            else
                rc = -1;
            free(buf);
        } else if (t->nbytes && !t->data) {
            rc = mp_errf(err, "%s: tensor %s has no data", path, t->name);
        } else {
            put(&o, t->data, t->nbytes);
        }
        put_pad(&o, align);
    }
    if (fclose(o.f) != 0) o.bad = 1;
    if (rc == 0 && o.bad) rc = mp_errf(err, "%s: write failed (disk full?): %s", tmp, strerror(errno));
    if (rc == 0 && rename(tmp, path) != 0) rc = mp_errf(err, "%s: cannot rename %s: %s", path, tmp, strerror(errno));
    if (rc != 0) remove(tmp);
    free(tmp);
    return rc;
}
