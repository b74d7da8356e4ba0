/* fuzz_util.h — helpers shared by the media/tokenizer/template/batch harnesses (tests/fuzz/fuzz_*.c).
 *
 * The harnesses are built two ways: with libFuzzer (-DMMPIPE_FUZZ=ON, clang) and, in the normal build,
 * linked with regress_main.c into a plain program that runs them over the committed regression inputs
 * (tests/robust: test_fuzz_regress_*). So they use nothing from libFuzzer but its entry points. */
#ifndef MP_FUZZ_UTIL_H
#define MP_FUZZ_UTIL_H

#include "kernels/mp.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A failed load must leave exactly one line naming the input: a message that is empty, spans lines or
 * forgets the file name is a bug too (the project's error rule), so the harness stops on it. */
static inline void fz_check_error(const mp_error *e, const char *name) {
    size_t n = strnlen(e->msg, sizeof e->msg);
    if (getenv("MP_FUZZ_VERBOSE")) fprintf(stderr, "fuzz: refused: %.*s\n", (int)n, e->msg); /* seed checks */
    if (n == 0 || n == sizeof e->msg) {
        fprintf(stderr, "fuzz: failure without an error message\n");
        abort();
    }
    if (memchr(e->msg, '\n', n) || memchr(e->msg, '\r', n)) {
        fprintf(stderr, "fuzz: error message spans lines: %s\n", e->msg);
        abort();
    }
    if (name && !strstr(e->msg, name)) {
        fprintf(stderr, "fuzz: error message does not name the input \"%s\": %s\n", name, e->msg);
        abort();
    }
}

static char fz_dir[256];
static char fz_names[16][64];
static int fz_nnames;

static void fz_cleanup(void) {
    char p[1400];
    for (int i = 0; i < fz_nnames; i++) {
        snprintf(p, sizeof p, "%s/%s", fz_dir, fz_names[i]);
        unlink(p);
    }
    rmdir(fz_dir);
}

/* Directory for the files the file-based loaders need: tmpfs when there is one (removed at exit). */
static inline const char *fz_tmpdir(void) {
    char *dir = fz_dir;
    if (!dir[0]) {
        struct stat st;
        const char *base = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) && access("/dev/shm", W_OK) == 0
                               ? "/dev/shm"
                               : (getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
        snprintf(dir, sizeof fz_dir, "%s/mmpipe-fuzz-%d", base, (int)getpid());
        mkdir(dir, 0700);
        atexit(fz_cleanup);
    }
    return dir;
}

/* Writes data to <tmpdir>/<name> and returns the path (static buffer). */
static inline const char *fz_write(const char *name, const uint8_t *data, size_t size) {
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", fz_tmpdir(), name);
    int known = 0;
    for (int i = 0; i < fz_nnames; i++) known |= !strcmp(fz_names[i], name);
    if (!known && fz_nnames < 16) snprintf(fz_names[fz_nnames++], sizeof fz_names[0], "%s", name);
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        abort();
    }
    if (size && fwrite(data, 1, size, f) != size) {
        perror(path);
        abort();
    }
    fclose(f);
    return path;
}

/* Reads a fixture (path relative to $MMPIPE_FIXTURES or ../shared/fixtures); NULL when absent. */
static inline char *fz_fixture_path(const char *rel) {
    const char *root = getenv("MMPIPE_FIXTURES");
#ifdef MP_FIXTURES_DIR
    if (!root || !*root) root = MP_FIXTURES_DIR;
#endif
    if (!root || !*root) root = "../shared/fixtures";
    size_t n = strlen(root) + strlen(rel) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", root, rel);
    return p;
}

static volatile uint64_t fz_sink;

static inline void fz_touch(const void *p, size_t n) {
    const uint8_t *b = p;
    uint64_t s = 0;
    for (size_t i = 0; i < n; i++) s += b[i];
    fz_sink += s;
}

#endif
