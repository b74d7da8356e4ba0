/* bench_batch.c — `mmpipe bench batch` */
#include "apps/cli.h"
#include "bench.h"

int bench_batch(int argc, char **argv) {
    (void)argc;
    (void)argv;
    return cli_not_implemented("bench batch", "issue #9");
}
