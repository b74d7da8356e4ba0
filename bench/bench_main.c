/* bench_main.c — `mmpipe bench <suite>` dispatch. */
#include "apps/cli.h"
#include "bench.h"

#include <stdio.h>
#include <string.h>

int cmd_bench(int argc, char **argv) {
    static const struct { const char *name; int (*fn)(int, char **); } suites[] = {
        {"ops", bench_ops}, {"kernels", bench_kernels}, {"llm", bench_llm}, {"transcribe", bench_transcribe},
        {"caption", bench_caption}, {"vqa", bench_vqa}, {"batch", bench_batch},
    };
    if (argc < 2) {
        fprintf(stderr, "usage: mmpipe bench <ops|kernels|llm|transcribe|caption|vqa|batch> [options]\n");
        return 1;
    }
    for (size_t i = 0; i < sizeof suites / sizeof suites[0]; i++)
        if (!strcmp(argv[1], suites[i].name)) return suites[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "mmpipe bench: unknown suite '%s'\n", argv[1]);
    return 1;
}
