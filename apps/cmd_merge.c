/* cmd_merge.c — `mmpipe merge` */
#include "cli.h"

int cmd_merge(int argc, char **argv) {
    (void)argc;
    (void)argv;
    return cli_not_implemented("merge", "issue #9");
}
