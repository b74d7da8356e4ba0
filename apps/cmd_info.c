/* cmd_info.c — `mmpipe info` */
#include "cli.h"

int cmd_info(int argc, char **argv) {
    (void)argc;
    (void)argv;
    return cli_not_implemented("info", "issue #4");
}
