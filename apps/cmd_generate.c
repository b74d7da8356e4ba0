/* cmd_generate.c — `mmpipe generate` */
#include "cli.h"

int cmd_generate(int argc, char **argv) {
    (void)argc;
    (void)argv;
    return cli_not_implemented("generate", "issue #5");
}
