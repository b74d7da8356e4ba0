/* mmap.c — read-only file mappings, string index, pool, UTF-8 check. */
#include "models/mmap.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---------------------------------------------------------------- mapped files */

int mp_mmap_open(mp_mmap *m, const char *path, mp_error *err) {
    memset(m, 0, sizeof *m);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return mp_errf(err, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return mp_errf(err, "%s: cannot stat: %s", path, strerror(e));
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return mp_errf(err, "%s: is a directory, expected a file", path);
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return mp_errf(err, "%s: not a regular file", path);
    }
    if (st.st_size == 0) {
        close(fd);
        return 0;
    }
    if ((uint64_t)st.st_size > (uint64_t)SIZE_MAX) {
        close(fd);
        return mp_errf(err, "%s: file too large to map", path);
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (p == MAP_FAILED) return mp_errf(err, "%s: cannot map %lld bytes: %s", path, (long long)st.st_size, strerror(e));
    m->base = p;
    m->data = p;
    m->size = (size_t)st.st_size;
    return 0;
}

void mp_mmap_close(mp_mmap *m) {
    if (m->base) munmap(m->base, m->size);
    memset(m, 0, sizeof *m);
}

/* fopen(path, "rb") of a regular file; *size gets its size. NULL after filling err. */
static FILE *open_regular(const char *path, uint64_t *size, mp_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        mp_errf(err, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        mp_errf(err, "%s: not a regular file", path);
        return NULL;
    }
    *size = (uint64_t)st.st_size;
    return f;
}

int mp_read_head(const char *path, void *buf, size_t cap, size_t *got, uint64_t *file_size, mp_error *err) {
    FILE *f = open_regular(path, file_size, err);
    if (!f) return -1;
    *got = fread(buf, 1, cap, f);
    fclose(f);
    return 0;
}

int mp_read_file(const char *path, size_t max_bytes, char **out, size_t *len, mp_error *err) {
    *out = NULL;
    if (len) *len = 0;
    uint64_t fsize;
    FILE *f = open_regular(path, &fsize, err);
    if (!f) return -1;
    if (fsize > (uint64_t)max_bytes) {
        fclose(f);
        return mp_errf(err, "%s: file is %llu bytes, more than the %zu this reader accepts", path,
                       (unsigned long long)fsize, max_bytes);
    }
    size_t n = (size_t)fsize;
    char *buf = malloc(n + 1);
    if (!buf) {
        fclose(f);
        return mp_errf(err, "%s: out of memory reading %zu bytes", path, n);
    }
    size_t got = n ? fread(buf, 1, n, f) : 0;
    int rerr = ferror(f);
    fclose(f);
    if (got != n || rerr) {
        free(buf);
        return mp_errf(err, "%s: read error", path);
    }
    buf[n] = 0;
    *out = buf;
    if (len) *len = n;
    return 0;
}

int mp_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int mp_is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* ---------------------------------------------------------------- string -> index */

static uint64_t str_hash(const char *s) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h ^ (h >> 29);
}

static int strindex_alloc(mp_strindex *s, size_t cap) {
    s->idx = malloc(cap * sizeof *s->idx);
    s->key = malloc(cap * sizeof *s->key);
    if (!s->idx || !s->key) {
        free(s->idx);
        free(s->key);
        s->idx = NULL;
        s->key = NULL;
        return -1;
    }
    for (size_t i = 0; i < cap; i++) s->idx[i] = -1;
    s->cap = cap;
    return 0;
}

int mp_strindex_init(mp_strindex *s, size_t n_expected) {
    memset(s, 0, sizeof *s);
    size_t cap = 16;
    while (cap < 2 * n_expected + 1 && cap < ((size_t)1 << 40)) cap <<= 1;
    return strindex_alloc(s, cap);
}

void mp_strindex_free(mp_strindex *s) {
    free(s->idx);
    free(s->key);
    memset(s, 0, sizeof *s);
}

static size_t strindex_slot(const mp_strindex *s, const char *key, int *found) {
    size_t mask = s->cap - 1, i = (size_t)str_hash(key) & mask;
    for (;;) {
        if (s->idx[i] < 0) {
            *found = 0;
            return i;
        }
        if (strcmp(s->key[i], key) == 0) {
            *found = 1;
            return i;
        }
        i = (i + 1) & mask;
    }
}

int mp_strindex_put(mp_strindex *s, const char *key, int64_t idx) {
    if (!s->idx && strindex_alloc(s, 16) != 0) return -1;
    if (2 * (s->n + 1) > s->cap) {
        mp_strindex old = *s;
        if (strindex_alloc(s, old.cap * 2) != 0) {
            *s = old;
            return -1;
        }
        s->n = 0;
        for (size_t i = 0; i < old.cap; i++)
            if (old.idx[i] >= 0) mp_strindex_put(s, old.key[i], old.idx[i]);
        free(old.idx);
        free(old.key);
    }
    int found;
    size_t i = strindex_slot(s, key, &found);
    if (found) return 1;
    s->idx[i] = idx;
    s->key[i] = key;
    s->n++;
    return 0;
}

int64_t mp_strindex_get(const mp_strindex *s, const char *key) {
    if (!s->idx) return -1;
    int found;
    size_t i = strindex_slot(s, key, &found);
    return found ? s->idx[i] : -1;
}

/* ---------------------------------------------------------------- pool */

struct mp_pool_chunk {
    mp_pool_chunk *next;
    size_t size, used;
    _Alignas(16) unsigned char data[];
};

void *mp_pool_alloc(mp_pool *p, size_t bytes) {
    bytes = (bytes + 15) & ~(size_t)15;
    if (bytes == 0) bytes = 16;
    mp_pool_chunk *c = p->head;
    if (!c || c->size - c->used < bytes) {
        size_t sz = (size_t)1 << 20;
        if (bytes > sz / 4) sz = bytes; /* big records get a chunk of their own */
        if (sz > SIZE_MAX - sizeof *c) return NULL;
        mp_pool_chunk *n = malloc(sizeof *n + sz);
        if (!n) return NULL;
        n->size = sz;
        n->used = 0;
        if (c && sz == bytes) { /* keep filling the current chunk afterwards */
            n->next = c->next;
            c->next = n;
            n->used = bytes;
            memset(n->data, 0, bytes);
            return n->data;
        }
        n->next = c;
        p->head = c = n;
    }
    void *r = c->data + c->used;
    c->used += bytes;
    memset(r, 0, bytes);
    return r;
}

char *mp_pool_strndup(mp_pool *p, const char *s, size_t n) {
    if (n == SIZE_MAX) return NULL;
    char *r = mp_pool_alloc(p, n + 1);
    if (!r) return NULL;
    if (n) memcpy(r, s, n);
    r[n] = 0;
    return r;
}

void mp_pool_free(mp_pool *p) {
    mp_pool_chunk *c = p->head;
    while (c) {
        mp_pool_chunk *n = c->next;
        free(c);
        c = n;
    }
    p->head = NULL;
}

/* ---------------------------------------------------------------- text */

int mp_utf8_valid(const char *str, size_t n) {
    const uint8_t *s = (const uint8_t *)str;
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        int len;
        uint32_t cp, min;
        if ((c & 0xe0) == 0xc0) { len = 2; cp = c & 0x1f; min = 0x80; }
        else if ((c & 0xf0) == 0xe0) { len = 3; cp = c & 0x0f; min = 0x800; }
        else if ((c & 0xf8) == 0xf0) { len = 4; cp = c & 0x07; min = 0x10000; }
        else return 0;
        if (n - i < (size_t)len) return 0;
        for (int k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
        i += (size_t)len;
    }
    return 1;
}

const char *mp_format_dims(char *buf, size_t cap, const int64_t *ne, int ndim) {
    size_t o = 0;
    if (cap == 0) return buf;
    buf[0] = 0;
    o += (size_t)snprintf(buf + o, cap - o, "[");
    for (int i = 0; i < ndim && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%" PRId64, i ? ", " : "", ne[i]);
    if (o < cap) snprintf(buf + o, cap - o, "]");
    return buf;
}
