/* main.c — `mmpipe <command> ...` dispatch. */
#include "cli.h"
#include "mmpipe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} command;

static const command commands[] = {
    {"caption", cmd_caption, "caption / chat about images (SmolVLM, Qwen2-VL)"},
    {"transcribe", cmd_transcribe, "speech to text (Whisper; --vad with Silero)"},
    {"vad", cmd_vad, "print the speech segments of audio files (Silero VAD)"},
    {"vqa", cmd_vqa, "answer a question about a video"},
    {"generate", cmd_generate, "text generation with an LLM (GGUF, HF folder, llama2.c .bin)"},
    {"batch", cmd_batch, "run a JSONL batch of requests (OpenAI batch format)"},
    {"merge", cmd_merge, "merge shard outputs of `mmpipe batch --shard`"},
    {"bench", cmd_bench, "benchmarks: ops, llm, transcribe, caption, vqa, batch"},
    {"info", cmd_info, "describe a model file (GGUF, safetensors, ggml .bin, llama2.c .bin)"},
    {"pull", cmd_pull, "download a model from the Hugging Face hub into the standard cache"},
    {"convert", cmd_convert, "convert a model to GGUF"},
    {"version", cmd_version, "print version and build information"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: mmpipe <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-11s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "\n`mmpipe <command> --help` for the options of a command.\n");
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 1 : 0;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-v")) return cmd_version(argc - 1, argv + 1);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "mmpipe: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 1;
}
