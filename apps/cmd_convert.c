/* cmd_convert.c — `mmpipe convert` */
#include "cli.h"

int cmd_convert(int argc, char **argv) {
    (void)argc;
    (void)argv;
    return cli_not_implemented("convert", "issue #4");
}
