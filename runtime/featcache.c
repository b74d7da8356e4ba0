/* featcache.c — see featcache.h. A small open table scanned linearly: a cache holds at most a few
 * thousand encoder outputs (each tens of kilobytes to megabytes), so a scan costs microseconds next to
 * the encoder call it saves. */
#include "runtime/featcache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

void mp_content_hash(uint64_t h[2], const void *p, size_t n) {
    const unsigned char *s = p;
    uint64_t a = h[0] ^ 0x9E3779B97F4A7C15ull, b = h[1] ^ 0xC2B2AE3D27D4EB4Full;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        a = (a ^ w) * 0xFF51AFD7ED558CCDull;
        a ^= a >> 29;
        b = (b + w) * 0xC4CEB9FE1A85EC53ull;
        b ^= b >> 31;
    }
    for (; i < n; i++) {
        a = (a ^ s[i]) * 0x100000001B3ull;
        b = (b + s[i] + 1) * 0x9E3779B97F4A7C15ull;
    }
    h[0] = a ^ 0x9E3779B97F4A7C15ull, h[1] = b ^ 0xC2B2AE3D27D4EB4Full; /* the state, as it came in */
}

typedef struct entry {
    mp_featkey key;
    void *value;
    size_t bytes;
    void (*free_fn)(void *);
    uint64_t used; /* the clock at the last get/put */
} entry;

struct mp_featcache {
    pthread_mutex_t mu;
    entry *e;
    int n, cap;
    size_t bytes, max_bytes;
    uint64_t clock;
    mp_featcache_stats st;
};

static int same(const mp_featkey *a, const mp_featkey *b) {
    return a->h[0] == b->h[0] && a->h[1] == b->h[1] && a->size == b->size && a->opts == b->opts;
}

static int find(const mp_featcache *c, const mp_featkey *k) {
    for (int i = 0; i < c->n; i++)
        if (same(&c->e[i].key, k)) return i;
    return -1;
}

static void drop(mp_featcache *c, int i) {
    if (c->e[i].free_fn) c->e[i].free_fn(c->e[i].value);
    c->bytes -= c->e[i].bytes;
    c->e[i] = c->e[--c->n];
}

mp_featcache *mp_featcache_create(size_t max_bytes) {
    mp_featcache *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    if (pthread_mutex_init(&c->mu, NULL) != 0) {
        free(c);
        return NULL;
    }
    c->max_bytes = max_bytes;
    return c;
}

void mp_featcache_free(mp_featcache *c) {
    if (!c) return;
    while (c->n) drop(c, c->n - 1);
    free(c->e);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

void *mp_featcache_get(mp_featcache *c, const mp_featkey *k) {
    pthread_mutex_lock(&c->mu);
    int i = find(c, k);
    void *v = NULL;
    if (i >= 0) {
        c->e[i].used = ++c->clock;
        v = c->e[i].value;
        c->st.hits++;
    } else {
        c->st.misses++;
    }
    pthread_mutex_unlock(&c->mu);
    return v;
}

int mp_featcache_has(mp_featcache *c, const mp_featkey *k) {
    pthread_mutex_lock(&c->mu);
    int i = find(c, k);
    pthread_mutex_unlock(&c->mu);
    return i >= 0;
}

int mp_featcache_put(mp_featcache *c, const mp_featkey *k, void *value, size_t bytes, void (*free_fn)(void *)) {
    pthread_mutex_lock(&c->mu);
    int i = find(c, k);
    if (i >= 0) drop(c, i);
    /* evict least recently used entries until the new one fits */
    while (c->max_bytes && c->n > 0 && c->bytes + bytes > c->max_bytes) {
        int lru = 0;
        for (int j = 1; j < c->n; j++)
            if (c->e[j].used < c->e[lru].used) lru = j;
        drop(c, lru);
        c->st.evictions++;
    }
    if (c->n == c->cap) {
        int nc = c->cap ? 2 * c->cap : 64;
        entry *ne = realloc(c->e, sizeof *ne * (size_t)nc);
        if (!ne) {
            pthread_mutex_unlock(&c->mu);
            if (free_fn) free_fn(value);
            return -1;
        }
        c->e = ne, c->cap = nc;
    }
    c->e[c->n++] = (entry){*k, value, bytes, free_fn, ++c->clock};
    c->bytes += bytes;
    c->st.puts++;
    pthread_mutex_unlock(&c->mu);
    return 0;
}

void mp_featcache_get_stats(mp_featcache *c, mp_featcache_stats *s) {
    pthread_mutex_lock(&c->mu);
    *s = c->st;
    s->bytes = c->bytes;
    s->max_bytes = c->max_bytes;
    s->entries = c->n;
    pthread_mutex_unlock(&c->mu);
}
