/* featcache.h — encoder outputs kept by content hash, bounded in memory.
 *
 * The same image, clip or video asked about many times (a batch file that asks four questions per
 * image, several questions over one video) should pay the vision encoder once. Entries are keyed by a
 * content hash of the input (mp_content_hash over file bytes or decoded pixels) plus a word that folds
 * in whatever else shapes the features (image splitting, frame sampling options); they are evicted
 * least recently used first when the total size passes the budget.
 *
 * Lifetime: a pointer returned by mp_featcache_get stays valid until the next mp_featcache_put on the
 * same cache (only a put evicts; the entry just put is never evicted by its own put). All functions
 * take the cache's lock, so one thread may probe (mp_featcache_has) while another gets and puts. */
#ifndef MP_FEATCACHE_H
#define MP_FEATCACHE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mp_featkey {
    uint64_t h[2];  /* content hash */
    int64_t size;   /* bytes hashed */
    uint64_t opts;  /* what else shapes the value (0 when nothing) */
} mp_featkey;

/* Two independent 64-bit multiply-xorshift lanes over n bytes, continuing from h (start with
 * h = {0, 0}; pieces whose sizes are multiples of 8 hash as their concatenation); not cryptographic: a
 * cache key together with the size. */
void mp_content_hash(uint64_t h[2], const void *p, size_t n);

typedef struct mp_featcache mp_featcache;

/* max_bytes: the budget (0: unbounded). NULL when out of memory. */
mp_featcache *mp_featcache_create(size_t max_bytes);
/* Frees every entry with its free function. */
void mp_featcache_free(mp_featcache *c);

/* The value stored under k (marked most recently used), or NULL. */
void *mp_featcache_get(mp_featcache *c, const mp_featkey *k);
/* Whether k is present (does not touch the LRU order). */
int mp_featcache_has(mp_featcache *c, const mp_featkey *k);
/* Stores value (bytes: what it holds) under k; the cache owns it from now on and frees it with
 * free_fn(value) when evicted or at mp_featcache_free. A value already under k is replaced. A value
 * larger than the whole budget is still stored (and evicts everything else). -1 when out of memory (the
 * value is freed then). */
int mp_featcache_put(mp_featcache *c, const mp_featkey *k, void *value, size_t bytes, void (*free_fn)(void *));

typedef struct mp_featcache_stats {
    int64_t hits, misses, puts, evictions;
    size_t bytes, max_bytes;
    int entries;
} mp_featcache_stats;

void mp_featcache_get_stats(mp_featcache *c, mp_featcache_stats *s);

#ifdef __cplusplus
}
#endif
#endif
