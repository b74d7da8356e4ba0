/* cli.h — the mmpipe command-line front end: one file per subcommand (apps/cmd_<name>.c), each a
 * function int cmd_<name>(int argc, char **argv) with argv[0] = the subcommand name. Errors are one
 * line on stderr naming the file and the problem; the exit code is non-zero on any failure. */
#ifndef MP_CLI_H
#define MP_CLI_H

int cmd_caption(int argc, char **argv);
int cmd_transcribe(int argc, char **argv);
int cmd_vad(int argc, char **argv);
int cmd_vqa(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_batch(int argc, char **argv);
int cmd_merge(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_pull(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_version(int argc, char **argv);

/* Prints "mmpipe NAME: not implemented yet (tracked in WHERE)" and returns the exit code 2. */
int cli_not_implemented(const char *name, const char *where);

/* Common flags shared by the model commands. */
typedef struct cli_common {
    int n_threads; /* -t/--threads; 0 = physical cores */
    int device;    /* --device cpu|cuda|auto -> 0 / 1 / -1 */
} cli_common;

/* If argv[*i] is a common flag, consume it (and its value) into c, advance *i and return 1; return 0 if
 * it is not a common flag; -1 (after printing an error) for a bad value. */
int cli_parse_common(cli_common *c, int argc, char **argv, int *i);

#endif
