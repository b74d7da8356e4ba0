/* cmd_merge.c — `mmpipe merge -o OUT [--requests IN.jsonl] SHARD.jsonl...`: combine the outputs of
 * sharded `mmpipe batch` runs; report missing and duplicate custom_ids. */
#include "cli.h"
#include "runtime/batch_io.h"

#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: mmpipe merge -o OUT.jsonl [--requests REQUESTS.jsonl] SHARD.jsonl...\n"
            "Concatenates result files (a quoted glob like 'out.shard-*.jsonl' works too), keeps the first result\n"
            "of a repeated custom_id, and reports on stderr: duplicates, torn or bad lines, and with --requests\n"
            "the requests that have no result (missing) and results for unknown ids.\n"
            "Exit status: 0 when every request has exactly one result; 1 otherwise.\n"
            "  --list N   list at most N ids per kind (default 20)\n");
}

int cmd_merge(int argc, char **argv) {
    const char *out = NULL, *requests = NULL;
    int max_listed = 20;
    glob_t g;
    memset(&g, 0, sizeof g);
    int globbed = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "-o") && i + 1 < argc) {
            out = argv[++i];
        } else if (!strcmp(a, "--requests") && i + 1 < argc) {
            requests = argv[++i];
        } else if (!strcmp(a, "--list") && i + 1 < argc) {
            max_listed = atoi(argv[++i]);
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "mmpipe merge: unknown or incomplete option '%s'\n", a);
            return 1;
        } else {
            int rc = glob(a, globbed ? GLOB_APPEND | GLOB_NOCHECK : GLOB_NOCHECK, NULL, &g);
            if (rc != 0) {
                fprintf(stderr, "mmpipe merge: cannot expand '%s'\n", a);
                return 1;
            }
            globbed = 1;
        }
    }
    if (!out || !globbed) {
        usage(stderr);
        if (globbed) globfree(&g);
        return 1;
    }
    mp_merge_stats st;
    mp_error err;
    int rc = mp_merge_results(out, (const char *const *)g.gl_pathv, (int)g.gl_pathc, requests, stderr, max_listed, &st,
                              &err);
    int n_in = (int)g.gl_pathc;
    globfree(&g);
    if (rc != 0) {
        fprintf(stderr, "mmpipe merge: %s\n", err.msg);
        return 1;
    }
    fprintf(stderr, "mmpipe merge: %d file(s) -> %s: %lld results (%lld errors), %lld duplicates dropped, %lld bad lines",
            n_in, out, (long long)st.records, (long long)st.errors, (long long)st.duplicates, (long long)st.bad_lines);
    if (requests) fprintf(stderr, ", %lld missing, %lld unknown", (long long)st.missing, (long long)st.unknown);
    fputc('\n', stderr);
    return (st.duplicates || st.bad_lines || st.missing || st.unknown) ? 1 : 0;
}
