/* cmd_vad.c — `mmpipe vad` */
#include "cli.h"

int cmd_vad(int argc, char **argv) {
    (void)argc;
    (void)argv;
    return cli_not_implemented("vad", "issue #6");
}
