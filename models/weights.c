/* weights.c — one weight source over GGUF, safetensors (single, sharded, folder) and llama2.c files. */
#include "models/weights.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "models/gguf.h"
#include "models/hfjson.h"
#include "models/llama2c.h"
#include "models/mmap.h"
#include "models/safetensors.h"

typedef struct {
    const char *name;
    mp_tensor t;
    int file;
} w_entry;

#define MAX_ADOPT 8

struct mp_weights {
    char *path;
    mp_weights_format fmt;
    mp_gguf *gguf;
    mp_safetensors **st;
    int n_st;
    char **files;
    int n_files, cap_files;
    w_entry *e;
    int64_t n, cap;
    mp_strindex idx;
    mp_pool pool;
    void *adopted[MAX_ADOPT];
    void (*adopted_free[MAX_ADOPT])(void *);
    int n_adopted;
    const struct mp_llama2c_config *l2c;
};

mp_weights *mp_weights_new(const char *path, mp_weights_format f) {
    mp_weights *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    w->path = strdup(path);
    if (!w->path) {
        free(w);
        return NULL;
    }
    w->fmt = f;
    return w;
}

void mp_weights_free(mp_weights *w) {
    if (!w) return;
    for (int i = w->n_adopted - 1; i >= 0; i--) w->adopted_free[i](w->adopted[i]);
    mp_gguf_free(w->gguf);
    for (int i = 0; i < w->n_st; i++) mp_safetensors_free(w->st[i]);
    free(w->st);
    for (int i = 0; i < w->n_files; i++) free(w->files[i]);
    free(w->files);
    free(w->e);
    mp_strindex_free(&w->idx);
    mp_pool_free(&w->pool);
    free(w->path);
    free(w);
}

int mp_weights_adopt(mp_weights *w, void *p, void (*free_fn)(void *)) {
    if (w->n_adopted == MAX_ADOPT) return -1;
    w->adopted[w->n_adopted] = p;
    w->adopted_free[w->n_adopted] = free_fn;
    w->n_adopted++;
    return 0;
}

int mp_weights_add_file(mp_weights *w, const char *path) {
    if (w->n_files == w->cap_files) {
        int cap = w->cap_files ? 2 * w->cap_files : 4;
        char **n = realloc(w->files, (size_t)cap * sizeof *n);
        if (!n) return -1;
        w->files = n;
        w->cap_files = cap;
    }
    if (!(w->files[w->n_files] = strdup(path))) return -1;
    return w->n_files++;
}

int mp_weights_add(mp_weights *w, const char *name, const mp_tensor *t, int file, mp_error *err) {
    if (w->n == w->cap) {
        int64_t cap = w->cap ? 2 * w->cap : 256;
        w_entry *n = realloc(w->e, (size_t)cap * sizeof *n);
        if (!n) return mp_errf(err, "%s: out of memory", w->path);
        w->e = n;
        w->cap = cap;
    }
    char *nm = mp_pool_strndup(&w->pool, name, strlen(name));
    if (!nm) return mp_errf(err, "%s: out of memory", w->path);
    int rc = mp_strindex_put(&w->idx, nm, w->n);
    if (rc < 0) return mp_errf(err, "%s: out of memory", w->path);
    if (rc == 1) {
        int other = w->e[mp_strindex_get(&w->idx, nm)].file;
        const char *f1 = other >= 0 && other < w->n_files ? w->files[other] : w->path;
        const char *f2 = file >= 0 && file < w->n_files ? w->files[file] : w->path;
        return mp_errf(err, "%s: tensor %s appears twice (in %s and %s)", w->path, name, f1, f2);
    }
    w_entry *e = &w->e[w->n++];
    e->name = nm;
    e->t = *t;
    e->t.name = nm;
    e->file = file;
    return 0;
}

/* ---------------------------------------------------------------- opening */

static int has_suffix(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

static int add_safetensors(mp_weights *w, const char *path, mp_error *err) {
    mp_safetensors *st;
    if (mp_safetensors_open(&st, path, err)) return -1;
    mp_safetensors **n = realloc(w->st, (size_t)(w->n_st + 1) * sizeof *n);
    if (!n) {
        mp_safetensors_free(st);
        return mp_errf(err, "%s: out of memory", path);
    }
    w->st = n;
    w->st[w->n_st++] = st;
    int file = mp_weights_add_file(w, path);
    if (file < 0) return mp_errf(err, "%s: out of memory", path);
    for (int64_t i = 0; i < mp_safetensors_n_tensors(st); i++) {
        const mp_tensor *t = mp_safetensors_tensor(st, i);
        if (mp_weights_add(w, t->name, t, file, err)) return -1;
    }
    return 0;
}

static int open_index(mp_weights *w, const char *index_path, mp_error *err) {
    mp_json j;
    if (mp_json_load(&j, index_path, err)) return -1;
    const cJSON *map = mp_json_find(&j, "weight_map");
    int rc = 0;
    if (!cJSON_IsObject(map)) {
        rc = mp_errf(err, "%s: no \"weight_map\" object", index_path);
        goto done;
    }
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", index_path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    else snprintf(dir, sizeof dir, ".");
    /* open every distinct shard, in order of first mention */
    const cJSON *it;
    cJSON_ArrayForEach(it, map) {
        if (!cJSON_IsString(it)) {
            rc = mp_errf(err, "%s: weight_map entry %.200s is not a file name", index_path, it->string);
            goto done;
        }
        const char *shard = it->valuestring;
        if (!*shard || shard[0] == '/' || strstr(shard, "..")) {
            rc = mp_errf(err, "%s: weight_map names an unsafe shard path \"%.200s\"", index_path, shard);
            goto done;
        }
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", dir, shard);
        int known = 0;
        for (int i = 0; i < w->n_files && !known; i++) known = strcmp(w->files[i], path) == 0;
        if (known) continue;
        if (!mp_is_file(path)) {
            char ptr[2100];
            snprintf(ptr, sizeof ptr, "%s.lfs-pointer", path);
            if (mp_is_file(ptr))
                rc = mp_errf(err, "%s: shard %s is only a Git LFS pointer here (download the weights)", index_path, shard);
            else
                rc = mp_errf(err, "%s: shard %s is missing", index_path, shard);
            goto done;
        }
        if ((rc = add_safetensors(w, path, err))) goto done;
    }
    /* every tensor the index names is in the shard it names */
    cJSON_ArrayForEach(it, map) {
        int64_t k = mp_strindex_get(&w->idx, it->string);
        const char *f = k >= 0 ? w->files[w->e[k].file] : NULL;
        const char *base = f ? strrchr(f, '/') : NULL;
        base = base ? base + 1 : f;
        if (k < 0 || strcmp(base, it->valuestring) != 0) {
            rc = mp_errf(err, "%s: tensor %.200s is mapped to %.200s, which does not contain it", index_path,
                         it->string, it->valuestring);
            goto done;
        }
    }
done:
    mp_json_free(&j);
    return rc;
}

static int open_folder(mp_weights *w, const char *dir, mp_error *err) {
    char p[2048];
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    if (mp_is_file(p)) return open_index(w, p, err);
    static const char *const singles[] = {"model.safetensors", "adapter_model.safetensors"};
    for (size_t i = 0; i < 2; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, singles[i]);
        if (mp_is_file(p)) return add_safetensors(w, p, err);
    }
    DIR *d = opendir(dir);
    if (!d) return mp_errf(err, "%s: cannot read the folder", dir);
    struct dirent *e;
    char found[1024] = "", pointer[1024] = "", pickle[1024] = "";
    int n = 0;
    while ((e = readdir(d))) {
        if (has_suffix(e->d_name, ".safetensors")) {
            n++;
            snprintf(found, sizeof found, "%s", e->d_name);
        } else if (has_suffix(e->d_name, ".safetensors.lfs-pointer")) {
            snprintf(pointer, sizeof pointer, "%s", e->d_name);
        } else if (has_suffix(e->d_name, ".bin") && strncmp(e->d_name, "pytorch_model", 13) == 0) {
            snprintf(pickle, sizeof pickle, "%s", e->d_name);
        }
    }
    closedir(d);
    if (n == 1) {
        snprintf(p, sizeof p, "%s/%s", dir, found);
        return add_safetensors(w, p, err);
    }
    if (n > 1) return mp_errf(err, "%s: %d .safetensors files but no model.safetensors.index.json", dir, n);
    if (*pointer) return mp_errf(err, "%s: %s is only a Git LFS pointer: the weights were not downloaded", dir, pointer);
    if (*pickle) return mp_errf(err, "%s: only PyTorch pickle weights (%s); mmpipe reads safetensors or GGUF", dir, pickle);
    return mp_errf(err, "%s: no model weights (.safetensors) in this folder", dir);
}

static int open_gguf(mp_weights *w, const char *path, mp_error *err) {
    if (mp_gguf_open(&w->gguf, path, err)) return -1;
    int file = mp_weights_add_file(w, path);
    if (file < 0) return mp_errf(err, "%s: out of memory", path);
    for (int64_t i = 0; i < mp_gguf_n_tensors(w->gguf); i++) {
        const mp_tensor *t = mp_gguf_tensor(w->gguf, i);
        if (mp_weights_add(w, t->name, t, file, err)) return -1;
    }
    return 0;
}

int mp_weights_open(mp_weights **out, const char *path, mp_error *err) {
    *out = NULL;
    mp_model_kind kind = mp_model_sniff(path, err);
    if (kind == MP_KIND_ERROR) return -1;
    if (kind == MP_KIND_LLAMA2C) return mp_llama2c_open_weights(out, path, NULL, err);
    mp_weights_format f = kind == MP_KIND_GGUF ? MP_WEIGHTS_GGUF : MP_WEIGHTS_SAFETENSORS;
    mp_weights *w = mp_weights_new(path, f);
    if (!w) return mp_errf(err, "%s: out of memory", path);
    int rc;
    switch (kind) {
    case MP_KIND_GGUF: rc = open_gguf(w, path, err); break;
    case MP_KIND_SAFETENSORS: rc = add_safetensors(w, path, err); break;
    case MP_KIND_ST_INDEX: rc = open_index(w, path, err); break;
    case MP_KIND_FOLDER: rc = open_folder(w, path, err); break;
    case MP_KIND_GGML_BIN:
        rc = mp_errf(err, "%s: a whisper.cpp ggml .bin model, not a weight file mmpipe reads here (use it with transcribe/vad)", path);
        break;
    default: rc = mp_errf(err, "%s: not a model file mmpipe knows (GGUF, safetensors, llama2.c .bin)", path); break;
    }
    if (rc) {
        mp_weights_free(w);
        return -1;
    }
    *out = w;
    return 0;
}

/* ---------------------------------------------------------------- format sniffing */

mp_model_kind mp_model_sniff(const char *path, mp_error *err) {
    if (mp_is_dir(path)) return MP_KIND_FOLDER;
    uint8_t h[40] = {0};
    size_t n;
    uint64_t fsize;
    if (mp_read_head(path, h, sizeof h, &n, &fsize, err)) return MP_KIND_ERROR;
    if (n >= 4 && memcmp(h, "GGUF", 4) == 0) return MP_KIND_GGUF;
    if (n >= 4 && memcmp(h, "lmgg", 4) == 0) return MP_KIND_GGML_BIN; /* 0x67676d6c little-endian */
    if (has_suffix(path, ".json")) return MP_KIND_ST_INDEX;
    if (n >= 9) {
        uint64_t len;
        memcpy(&len, h, 8);
        if (h[8] == '{' && len >= 2) return MP_KIND_SAFETENSORS;
    }
    if (n >= 7 && memcmp(h, "version", 7) == 0) {
        mp_errf(err, "%s: this is a Git LFS pointer, not the weights (fetch the real file, e.g. git lfs pull)", path);
        return MP_KIND_ERROR;
    }
    if (mp_llama2c_sniff(path)) return MP_KIND_LLAMA2C;
    if (has_suffix(path, ".safetensors")) return MP_KIND_SAFETENSORS; /* let the reader say what is wrong */
    if (has_suffix(path, ".gguf")) return MP_KIND_GGUF;
    if (has_suffix(path, ".bin")) return MP_KIND_LLAMA2C;
    mp_errf(err, "%s: not a model file mmpipe knows (GGUF, safetensors, llama2.c .bin, whisper.cpp ggml .bin)", path);
    return MP_KIND_ERROR;
}

const char *mp_model_kind_name(mp_model_kind k) {
    switch (k) {
    case MP_KIND_GGUF: return "gguf";
    case MP_KIND_SAFETENSORS: return "safetensors";
    case MP_KIND_ST_INDEX: return "safetensors (sharded, index)";
    case MP_KIND_FOLDER: return "folder";
    case MP_KIND_LLAMA2C: return "llama2.c";
    case MP_KIND_GGML_BIN: return "ggml .bin (whisper.cpp)";
    default: return "unknown";
    }
}

/* ---------------------------------------------------------------- access */

const char *mp_weights_path(const mp_weights *w) { return w->path; }
mp_weights_format mp_weights_format_of(const mp_weights *w) { return w->fmt; }

const char *mp_weights_format_name(mp_weights_format f) {
    switch (f) {
    case MP_WEIGHTS_GGUF: return "gguf";
    case MP_WEIGHTS_SAFETENSORS: return "safetensors";
    case MP_WEIGHTS_LLAMA2C: return "llama2.c";
    default: return "unknown";
    }
}

const struct mp_gguf *mp_weights_gguf(const mp_weights *w) { return w->gguf; }
const struct mp_llama2c_config *mp_weights_llama2c(const mp_weights *w) { return w->l2c; }
void mp_weights_set_llama2c(mp_weights *w, const struct mp_llama2c_config *cfg) { w->l2c = cfg; }
int mp_weights_n_files(const mp_weights *w) { return w->n_files; }
const char *mp_weights_file(const mp_weights *w, int i) { return i >= 0 && i < w->n_files ? w->files[i] : NULL; }

const mp_tensor *mp_weights_get(const mp_weights *w, const char *name) {
    int64_t i = mp_strindex_get(&w->idx, name);
    return i < 0 ? NULL : &w->e[i].t;
}

const mp_tensor *mp_weights_getf(const mp_weights *w, const char *fmt, ...) {
    char name[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof name) return NULL;
    return mp_weights_get(w, name);
}

int mp_weights_has(const mp_weights *w, const char *name) { return mp_weights_get(w, name) != NULL; }
int64_t mp_weights_count(const mp_weights *w) { return w->n; }
const mp_tensor *mp_weights_at(const mp_weights *w, int64_t i) { return i >= 0 && i < w->n ? &w->e[i].t : NULL; }
const char *mp_weights_name(const mp_weights *w, int64_t i) { return i >= 0 && i < w->n ? w->e[i].name : NULL; }
int mp_weights_file_of(const mp_weights *w, int64_t i) { return i >= 0 && i < w->n ? w->e[i].file : -1; }

static int effective_ndim(const int64_t *ne, int ndim) {
    while (ndim > 1 && ne[ndim - 1] == 1) ndim--;
    return ndim;
}

int mp_weights_check(const mp_weights *w, const mp_tensor *t, int ndim, const int64_t *ne, mp_error *err) {
    int64_t have[MP_MAX_DIMS] = {1, 1, 1, 1}, want[MP_MAX_DIMS] = {1, 1, 1, 1};
    if (ndim < 1 || ndim > MP_MAX_DIMS) return mp_errf(err, "%s: tensor %s: bad expected rank %d", w->path, t->name, ndim);
    for (int i = 0; i < MP_MAX_DIMS; i++) have[i] = t->ne[i];
    for (int i = 0; i < ndim; i++) want[i] = ne[i];
    int ok = 1;
    for (int i = 0; i < MP_MAX_DIMS; i++)
        if (want[i] >= 0 && want[i] != have[i]) ok = 0;
    if (ok) return 0;
    char a[160], b[160];
    int nh = effective_ndim(have, t->ndim > 0 ? t->ndim : 1);
    int nw = ndim > nh ? ndim : nh;
    mp_format_dims(a, sizeof a, have, nh);
    mp_format_dims(b, sizeof b, want, effective_ndim(want, nw));
    const char *file = w->path;
    int64_t k = t->name ? mp_strindex_get(&w->idx, t->name) : -1;
    if (k >= 0 && w->e[k].file >= 0 && w->e[k].file < w->n_files) file = w->files[w->e[k].file];
    return mp_errf(err, "%s: tensor %s has shape %s, expected %s", file, t->name ? t->name : "?", a, b);
}

const mp_tensor *mp_weights_require(const mp_weights *w, const char *name, int ndim, const int64_t *ne,
                                    mp_error *err) {
    const mp_tensor *t = mp_weights_get(w, name);
    if (!t) {
        mp_errf(err, "%s: tensor %s not found", w->path, name);
        return NULL;
    }
    return mp_weights_check(w, t, ndim, ne, err) ? NULL : t;
}

const mp_tensor *mp_weights_require4(const mp_weights *w, const char *name, int64_t ne0, int64_t ne1, int64_t ne2,
                                     int64_t ne3, mp_error *err) {
    int64_t ne[4] = {ne0, ne1, ne2, ne3};
    return mp_weights_require(w, name, 4, ne, err);
}
