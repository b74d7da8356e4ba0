/* cmd_pull.c — `mmpipe pull` */
#include "cli.h"

int cmd_pull(int argc, char **argv) {
    (void)argc;
    (void)argv;
    return cli_not_implemented("pull", "issue #4");
}
