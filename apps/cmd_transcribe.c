/* cmd_transcribe.c — `mmpipe transcribe` */
#include "cli.h"

int cmd_transcribe(int argc, char **argv) {
    (void)argc;
    (void)argv;
    return cli_not_implemented("transcribe", "issue #6");
}
