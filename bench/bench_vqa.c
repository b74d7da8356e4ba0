/* bench_vqa.c — `mmpipe bench vqa` */
#include "apps/cli.h"
#include "bench.h"

int bench_vqa(int argc, char **argv) {
    (void)argc;
    (void)argv;
    return cli_not_implemented("bench vqa", "issue #8");
}
