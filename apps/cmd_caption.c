/* cmd_caption.c — `mmpipe caption` */
#include "cli.h"

int cmd_caption(int argc, char **argv) {
    (void)argc;
    (void)argv;
    return cli_not_implemented("caption", "issue #7");
}
