/* bench_transcribe.c — `mmpipe bench transcribe` */
#include "apps/cli.h"
#include "bench.h"

int bench_transcribe(int argc, char **argv) {
    (void)argc;
    (void)argv;
    return cli_not_implemented("bench transcribe", "issue #6");
}
