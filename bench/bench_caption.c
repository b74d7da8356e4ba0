/* bench_caption.c — `mmpipe bench caption` */
#include "apps/cli.h"
#include "bench.h"

int bench_caption(int argc, char **argv) {
    (void)argc;
    (void)argv;
    return cli_not_implemented("bench caption", "issue #7");
}
