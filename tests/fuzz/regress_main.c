/* regress_main.c — runs a libFuzzer harness without libFuzzer: every file named on the command line (or
 * found in a directory named there) is passed once to LLVMFuzzerTestOneInput. Linked with a harness in
 * the normal build (tests/robust: test_fuzz_regress_*), so the inputs that once crashed or hung — kept
 * in tests/fuzz/regress/<area>/ — are replayed by ctest, and under ASan/UBSan in the sanitizer build.
 * A harness aborts on a broken promise; a crash or sanitizer report fails the test. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

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
    LLVMFuzzerTestOneInput(buf, (size_t)n);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    fprintf(stderr, "regress: %s (%ld bytes) ok in %.3f s\n", path, n,
            (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
    free(buf);
    return 0;
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
    if (n == 0) return 77; /* nothing to replay */
    return bad ? 1 : 0;
}
