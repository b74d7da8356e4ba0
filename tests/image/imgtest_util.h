/* imgtest_util.h — helpers shared by the image/video tests: temp dirs, running the reference tools
 * (Pillow via tests/ref/pil_image_ref.py, Debian's ffmpeg CLI) and reading their raw outputs. */
#ifndef MP_IMGTEST_UTIL_H
#define MP_IMGTEST_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef MP_PYTHON
#define MP_PYTHON "/usr/bin/python3"
#endif

static char mp_tt_dir[512];

static inline const char *mp_tt_tmpdir(const char *tag) {
    if (!mp_tt_dir[0]) {
        snprintf(mp_tt_dir, sizeof mp_tt_dir, "/tmp/mmpipe_%s_XXXXXX", tag);
        if (!mkdtemp(mp_tt_dir)) { perror("mkdtemp"); exit(1); }
    }
    return mp_tt_dir;
}

static inline void mp_tt_cleanup(void) {
    if (mp_tt_dir[0] && !getenv("MP_KEEP_TMP")) {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", mp_tt_dir);
        if (system(cmd) != 0) fprintf(stderr, "cleanup of %s failed\n", mp_tt_dir);
    }
}

static inline int mp_tt_run(const char *cmd) {
    int r = system(cmd);
    if (r != 0) fprintf(stderr, "command failed (%d): %s\n", r, cmd);
    return r;
}

/* 1 when Debian's python3 with Pillow + numpy is usable */
static inline int mp_tt_have_pil(void) {
    static int have = -1;
    if (have < 0) have = system(MP_PYTHON " -c 'import PIL, numpy' >/dev/null 2>&1") == 0;
    return have;
}

static inline int mp_tt_have_ffmpeg(void) {
    static int have = -1;
    if (have < 0) have = system("ffmpeg -hide_banner -version >/dev/null 2>&1") == 0;
    return have;
}

/* Reads a file written by pil_image_ref.py: a text header line, then binary payload. */
static inline uint8_t *mp_tt_read_hdr(const char *path, char *hdr, size_t hdrn, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    if (!fgets(hdr, (int)hdrn, f)) { fclose(f); return NULL; }
    long start = ftell(f);
    fseek(f, 0, SEEK_END);
    long end = ftell(f);
    fseek(f, start, SEEK_SET);
    uint8_t *b = malloc((size_t)(end - start) + 1);
    *n = fread(b, 1, (size_t)(end - start), f);
    fclose(f);
    return b;
}

/* RGB raw from pil_image_ref.py "W H\n" + bytes. */
static inline uint8_t *mp_tt_read_rgb(const char *path, int *w, int *h) {
    char hdr[128];
    size_t n;
    uint8_t *b = mp_tt_read_hdr(path, hdr, sizeof hdr, &n);
    if (!b) return NULL;
    if (sscanf(hdr, "%d %d", w, h) != 2 || (size_t)*w * *h * 3 != n) { free(b); return NULL; }
    return b;
}

static inline uint8_t *mp_tt_read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)sz + 1);
    *n = fread(b, 1, (size_t)sz, f);
    fclose(f);
    return b;
}

static inline int mp_tt_write_file(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t k = fwrite(p, 1, n, f);
    fclose(f);
    return k == n ? 0 : -1;
}

/* max |a-b| and mean |a-b| over n bytes */
static inline int mp_tt_cmp_u8(const uint8_t *a, const uint8_t *b, size_t n, double *mean) {
    int mx = 0;
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        int d = abs((int)a[i] - (int)b[i]);
        if (d > mx) mx = d;
        s += d;
    }
    if (mean) *mean = n ? s / (double)n : 0;
    return mx;
}

#endif
