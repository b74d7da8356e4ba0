/* cmd_batch.c — `mmpipe batch` */
#include "cli.h"

int cmd_batch(int argc, char **argv) {
    (void)argc;
    (void)argv;
    return cli_not_implemented("batch", "issue #9");
}
