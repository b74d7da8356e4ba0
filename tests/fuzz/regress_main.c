/* regress_main.c — runs a libFuzzer harness without libFuzzer: every file named on the command line (or
 * found in a directory named there) is passed once to LLVMFuzzerTestOneInput. Linked with a harness in
 * the normal build (tests/robust: test_fuzz_regress_*), so the inputs that once crashed or hung — kept
 * in tests/fuzz/regress/<area>/ — are replayed by ctest, and under ASan/UBSan in the sanitizer build.
 * A harness aborts on a broken promise; a crash or sanitizer report fails the test.
 *
 * Without clang there is no libFuzzer; MP_FUZZ_SECS=N then turns this driver into a small mutation fuzzer
 * (after the replay): for N seconds, inputs made from the given ones by bit flips, interesting bytes,
 * chunk copies/deletes/inserts, truncations and splices are run (MP_FUZZ_SEED picks the random stream).
 * An input that crashes (signal, abort, sanitizer report) is written to ./crash-<hash> first. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static void keep(const uint8_t *d, size_t n);

static int run_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "regress: cannot open %s\n", path);
        return -1;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
    if (!buf || (n > 0 && fread(buf, 1, (size_t)n, f) != (size_t)n)) {
        fprintf(stderr, "regress: cannot read %s\n", path);
        free(buf);
        fclose(f);
        return -1;
    }
    fclose(f);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (getenv("MP_FUZZ_SECS")) keep(buf, (size_t)n);
    LLVMFuzzerTestOneInput(buf, (size_t)n);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    fprintf(stderr, "regress: %s (%ld bytes) ok in %.3f s\n", path, n,
            (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
    free(buf);
    return 0;
}

/* ---------------------------------------------------------------- mutation mode (MP_FUZZ_SECS) */

void __sanitizer_set_death_callback(void (*cb)(void)) __attribute__((weak));

static uint8_t *cur;
static size_t cur_n;
static uint64_t rng = 0x9E3779B97F4A7C15ull;

static uint64_t rnd(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return rng;
}

static void save_crash(void) {
    static int saved;
    if (saved || !cur) return;
    saved = 1;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < cur_n; i++) h = (h ^ cur[i]) * 1099511628211ull;
    char name[64];
    snprintf(name, sizeof name, "crash-%016llx", (unsigned long long)h);
    FILE *f = fopen(name, "wb");
    if (f) {
        if (cur_n) fwrite(cur, 1, cur_n, f);
        fclose(f);
    }
    fprintf(stderr, "regress: the input that failed is in %s (%zu bytes)\n", name, cur_n);
}

static void on_signal(int sig) {
    save_crash();
    signal(sig, SIG_DFL);
    raise(sig);
}

typedef struct {
    uint8_t *d;
    size_t n;
} blob;

static blob *pool;
static int npool;

static void keep(const uint8_t *d, size_t n) {
    pool = realloc(pool, sizeof *pool * (size_t)(npool + 1));
    pool[npool].d = malloc(n ? n : 1);
    memcpy(pool[npool].d, d, n);
    pool[npool++].n = n;
}

/* one mutated copy of a pool entry, at most max bytes */
static void mutate(size_t max) {
    const blob *b = &pool[rnd() % (uint64_t)npool];
    size_t n = b->n;
    free(cur);
    cur = malloc(max + 1);
    memcpy(cur, b->d, n < max ? n : max);
    n = n < max ? n : max;
    static const uint8_t interesting[] = {0, 1, 0x7f, 0x80, 0xff, 0xfe, 16, 32, 64, '"', '{', '}', '\\', '\n', 0xc0, 0xef};
    int k = 1 + (int)(rnd() % 8);
    for (int m = 0; m < k; m++) {
        size_t pos = n ? rnd() % n : 0;
        switch (rnd() % 9) {
        case 0: if (n) cur[pos] ^= (uint8_t)(1u << (rnd() % 8)); break;
        case 1: if (n) cur[pos] = interesting[rnd() % sizeof interesting]; break;
        case 2: if (n) cur[pos] = (uint8_t)rnd(); break;
        case 3: /* a 4- or 8-byte little-endian field set to an edge value */
            if (n >= 8) {
                static const uint64_t edge[] = {0, 1, 0xffffffffull, 0x7fffffffull, 0x80000000ull, ~0ull, 1ull << 40, 65536};
                uint64_t v = edge[rnd() % 8];
                size_t w = rnd() & 1 ? 4 : 8;
                pos = rnd() % (n - w + 1);
                memcpy(cur + pos, &v, w);
            }
            break;
        case 4: if (n) n = rnd() % n; break; /* truncate */
        case 5: /* delete a chunk */
            if (n > 1) {
                size_t len = 1 + rnd() % (n - pos < 64 ? n - pos : 64);
                memmove(cur + pos, cur + pos + len, n - pos - len);
                n -= len;
            }
            break;
        case 6: /* duplicate a chunk somewhere else */
            if (n && n < max) {
                size_t len = 1 + rnd() % (n - pos < 64 ? n - pos : 64), at = rnd() % (n + 1);
                if (len > max - n) len = max - n;
                uint8_t tmp[64];
                memcpy(tmp, cur + pos, len);
                memmove(cur + at + len, cur + at, n - at);
                memcpy(cur + at, tmp, len);
                n += len;
            }
            break;
        case 7: /* splice the tail of another input */
            {
                const blob *o = &pool[rnd() % (uint64_t)npool];
                if (o->n) {
                    size_t from = rnd() % o->n, len = o->n - from;
                    if (pos + len > max) len = max - pos;
                    memcpy(cur + pos, o->d + from, len);
                    n = pos + len;
                }
            }
            break;
        default: /* insert a random byte */
            if (n < max) {
                memmove(cur + pos + 1, cur + pos, n - pos);
                cur[pos] = (uint8_t)rnd();
                n++;
            }
            break;
        }
    }
    cur_n = n;
}

static void fuzz_loop(double secs) {
    if (!npool) keep((const uint8_t *)"", 0);
    if (getenv("MP_FUZZ_SEED")) rng ^= strtoull(getenv("MP_FUZZ_SEED"), NULL, 0) * 0x2545F4914F6CDD1Dull;
    size_t max = 0;
    for (int i = 0; i < npool; i++) max = pool[i].n > max ? pool[i].n : max;
    max = max + 4096;
    if (__sanitizer_set_death_callback) __sanitizer_set_death_callback(save_crash);
    signal(SIGSEGV, on_signal), signal(SIGABRT, on_signal), signal(SIGBUS, on_signal), signal(SIGFPE, on_signal);
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long runs = 0;
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &t);
        double el = (double)(t.tv_sec - t0.tv_sec) + 1e-9 * (double)(t.tv_nsec - t0.tv_nsec);
        if (el >= secs) break;
        mutate(max);
        LLVMFuzzerTestOneInput(cur, cur_n);
        runs++;
    }
    free(cur);
    cur = NULL;
    fprintf(stderr, "regress: %ld mutated inputs in %.0f s, no failure\n", runs, secs);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(int argc, char **argv) {
    int n = 0, bad = 0;
    if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) { /* a seed folder whose fixtures are absent: nothing to run there */
            fprintf(stderr, "regress: %s: no such file or directory (skipped)\n", argv[i]);
            continue;
        }
        if (!S_ISDIR(st.st_mode)) {
            bad += run_file(argv[i]) != 0;
            n++;
            continue;
        }
        DIR *d = opendir(argv[i]);
        char **names = NULL;
        int nn = 0;
        for (struct dirent *de; d && (de = readdir(d));) {
            if (de->d_name[0] == '.') continue;
            names = realloc(names, sizeof *names * (size_t)(nn + 1));
            size_t l = strlen(argv[i]) + strlen(de->d_name) + 2;
            names[nn] = malloc(l);
            snprintf(names[nn], l, "%s/%s", argv[i], de->d_name);
            nn++;
        }
        if (d) closedir(d);
        if (nn) qsort(names, (size_t)nn, sizeof *names, cmp_str);
        for (int k = 0; k < nn; k++) {
            bad += run_file(names[k]) != 0;
            n++;
            free(names[k]);
        }
        free(names);
    }
    fprintf(stderr, "regress: %d inputs, %d unreadable\n", n, bad);
    if (getenv("MP_FUZZ_SECS") && !bad) {
        fuzz_loop(atof(getenv("MP_FUZZ_SECS")));
        for (int i = 0; i < npool; i++) free(pool[i].d);
        free(pool);
        return 0;
    }
    if (n == 0) return 77; /* nothing to replay */
    return bad ? 1 : 0;
}
