/* cmd_vqa.c — `mmpipe vqa` */
#include "cli.h"

int cmd_vqa(int argc, char **argv) {
    (void)argc;
    (void)argv;
    return cli_not_implemented("vqa", "issue #8");
}
