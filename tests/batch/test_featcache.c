/* test_featcache — the encoder-output cache of runtime/featcache.h: keys (hash, size, options) tell
 * entries apart, the budget holds with least-recently-used eviction (a get refreshes, a probe does not),
 * replacing a key frees the old value, an entry larger than the budget is still kept, every value is
 * freed exactly once; the content hash changes with any byte and with the split point of no call. */
#include "runtime/featcache.h"
#include "test.h"

#include <stdlib.h>
#include <string.h>

static int n_freed;
static void count_free(void *p) {
    n_freed++;
    free(p);
}

static mp_featkey key(uint64_t a, int64_t size, uint64_t opts) {
    mp_featkey k = {{a, a * 31 + 7}, size, opts};
    return k;
}

static int *val(int x) {
    int *p = malloc(sizeof *p);
    *p = x;
    return p;
}

int main(void) {
    /* content hash: every byte counts; hashing in pieces at 8-byte boundaries == in one go */
    unsigned char buf[1000];
    for (int i = 0; i < 1000; i++) buf[i] = (unsigned char)(i * 7 + 3);
    uint64_t h1[2] = {0, 0}, h2[2] = {0, 0}, h3[2] = {0, 0};
    mp_content_hash(h1, buf, sizeof buf);
    mp_content_hash(h2, buf, 512);
    mp_content_hash(h2, buf + 512, sizeof buf - 512);
    CHECK(h1[0] == h2[0] && h1[1] == h2[1]);
    for (int pos = 0; pos < 1000; pos += 111) {
        buf[pos] ^= 1;
        uint64_t h[2] = {0, 0};
        mp_content_hash(h, buf, sizeof buf);
        CHECKF(h[0] != h1[0] && h[1] != h1[1], "a flipped bit at %d does not change the hash", pos);
        buf[pos] ^= 1;
    }
    mp_content_hash(h3, buf, sizeof buf - 1);
    CHECK(h3[0] != h1[0]);

    /* budget 100 bytes: four entries of 30 */
    mp_featcache *c = mp_featcache_create(100);
    CHECK(c != NULL);
    mp_featkey k1 = key(1, 10, 0), k2 = key(2, 10, 0), k3 = key(3, 10, 0), k4 = key(4, 10, 0);
    CHECK_EQ_INT(mp_featcache_put(c, &k1, val(1), 30, count_free), 0);
    CHECK_EQ_INT(mp_featcache_put(c, &k2, val(2), 30, count_free), 0);
    CHECK_EQ_INT(mp_featcache_put(c, &k3, val(3), 30, count_free), 0);
    /* same hash, other size or options: other entries */
    mp_featkey k1s = key(1, 11, 0), k1o = key(1, 10, 5);
    CHECK(mp_featcache_get(c, &k1s) == NULL);
    CHECK(mp_featcache_get(c, &k1o) == NULL);
    int *p1 = mp_featcache_get(c, &k1); /* k1 is now the most recently used: k2 is the oldest */
    CHECK(p1 && *p1 == 1);
    CHECK(mp_featcache_has(c, &k2)); /* a probe does not refresh */
    CHECK_EQ_INT(mp_featcache_put(c, &k4, val(4), 30, count_free), 0);
    CHECK(!mp_featcache_has(c, &k2));
    CHECK(mp_featcache_has(c, &k1) && mp_featcache_has(c, &k3) && mp_featcache_has(c, &k4));
    CHECK_EQ_INT(n_freed, 1);
    mp_featcache_stats st;
    mp_featcache_get_stats(c, &st);
    CHECK_EQ_INT(st.entries, 3);
    CHECK_EQ_INT(st.bytes, 90);
    CHECK_EQ_INT(st.evictions, 1);
    CHECK_EQ_INT(st.hits, 1);
    CHECK_EQ_INT(st.misses, 2);
    /* replacing a key frees the old value and keeps one entry */
    CHECK_EQ_INT(mp_featcache_put(c, &k3, val(33), 20, count_free), 0);
    CHECK_EQ_INT(n_freed, 2);
    int *p3 = mp_featcache_get(c, &k3);
    CHECK(p3 && *p3 == 33);
    mp_featcache_get_stats(c, &st);
    CHECK_EQ_INT(st.entries, 3);
    CHECK_EQ_INT(st.bytes, 80);
    /* larger than the whole budget: kept alone */
    mp_featkey kbig = key(9, 10, 0);
    CHECK_EQ_INT(mp_featcache_put(c, &kbig, val(9), 500, count_free), 0);
    mp_featcache_get_stats(c, &st);
    CHECK_EQ_INT(st.entries, 1);
    CHECK_EQ_INT(st.bytes, 500);
    CHECK_EQ_INT(n_freed, 5);
    int *pb = mp_featcache_get(c, &kbig);
    CHECK(pb && *pb == 9);
    mp_featcache_free(c);
    CHECK_EQ_INT(n_freed, 6);

    /* unbounded (0): nothing evicted */
    c = mp_featcache_create(0);
    for (int i = 0; i < 300; i++) {
        mp_featkey k = key((uint64_t)i, 4, 0);
        CHECK_EQ_INT(mp_featcache_put(c, &k, val(i), 1 << 20, count_free), 0);
    }
    mp_featcache_get_stats(c, &st);
    CHECK_EQ_INT(st.entries, 300);
    CHECK_EQ_INT(st.evictions, 0);
    mp_featkey k77 = key(77, 4, 0);
    int *p77 = mp_featcache_get(c, &k77);
    CHECK(p77 && *p77 == 77);
    mp_featcache_free(c);
    CHECK_EQ_INT(n_freed, 306);
    return mp_test_result("test_featcache");
}
