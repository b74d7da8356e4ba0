/* cli_common.c — helpers shared by the subcommands. */
#include "cli.h"
#include "mmpipe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_not_implemented(const char *name, const char *where) {
    fprintf(stderr, "mmpipe %s: not implemented yet (tracked in %s)\n", name, where);
    return 2;
}

int cli_parse_common(cli_common *c, int argc, char **argv, int *i) {
    const char *a = argv[*i];
    if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
        if (*i + 1 >= argc) { fprintf(stderr, "mmpipe: %s needs a value\n", a); return -1; }
        char *end;
        long v = strtol(argv[*i + 1], &end, 10);
        if (*end || v < 0 || v > 1024) { fprintf(stderr, "mmpipe: bad thread count '%s'\n", argv[*i + 1]); return -1; }
        c->n_threads = (int)v;
        *i += 2;
        return 1;
    }
    if (!strcmp(a, "--device") || !strcmp(a, "-dev")) {
        if (*i + 1 >= argc) { fprintf(stderr, "mmpipe: %s needs a value\n", a); return -1; }
        const char *v = argv[*i + 1];
        if (!strcmp(v, "cpu")) c->device = MMPIPE_DEVICE_CPU;
        else if (!strcmp(v, "cuda") || !strcmp(v, "gpu")) c->device = MMPIPE_DEVICE_CUDA;
        else if (!strcmp(v, "auto")) c->device = MMPIPE_DEVICE_AUTO;
        else { fprintf(stderr, "mmpipe: --device must be cpu, cuda or auto (got '%s')\n", v); return -1; }
        *i += 2;
        return 1;
    }
    return 0;
}

int cmd_version(int argc, char **argv) {
    (void)argc;
    (void)argv;
    printf("%s\n", mmpipe_build_info());
    return 0;
}
