/* bench_ops.c — `mmpipe bench ops` */
#include "apps/cli.h"
#include "bench.h"

int bench_ops(int argc, char **argv) {
    (void)argc;
    (void)argv;
    return cli_not_implemented("bench ops", "issue #3");
}
