/* bench_llm.c — `mmpipe bench llm` */
#include "apps/cli.h"
#include "bench.h"

int bench_llm(int argc, char **argv) {
    (void)argc;
    (void)argv;
    return cli_not_implemented("bench llm", "issue #5");
}
