/* cmd_pull.c — `mmpipe pull ORG/NAME[:FILE]`: download a model into the Hugging Face cache. */
#include "cli.h"
#include "models/hub.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: mmpipe pull ORG/NAME[:FILE] [options]\n"
            "Downloads a model (or one FILE of it) into the Hugging Face cache and prints its local path.\n"
            "  --include GLOB     only files matching GLOB (repeatable; default: configs, tokenizer, *.safetensors)\n"
            "  --all              every file of the repo\n"
            "  --revision REV     branch, tag or commit (default main)\n"
            "  --cache-dir DIR    cache folder (default $HF_HUB_CACHE, $HF_HOME/hub, ~/.cache/huggingface/hub)\n"
            "  --offline          only look in the cache (also HF_HUB_OFFLINE=1)\n"
            "  --no-progress      no progress bar\n"
            "  -q, --quiet        no messages, only the path\n"
            "Environment: HF_ENDPOINT (mirror), HF_TOKEN (gated/private repos), HF_HOME, HF_HUB_CACHE.\n");
}

int cmd_pull(int argc, char **argv) {
    mp_hub_opts o;
    mp_hub_default_opts(&o);
    const char *spec = NULL, *pats[64];
    int n_pats = 0, all = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has_val = i + 1 < argc;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--include") && has_val) {
            if (n_pats < 64) pats[n_pats++] = argv[++i];
        } else if (!strcmp(a, "--all")) {
            all = 1;
        } else if (!strcmp(a, "--revision") && has_val) {
            o.revision = argv[++i];
        } else if (!strcmp(a, "--cache-dir") && has_val) {
            o.cache_dir = argv[++i];
        } else if (!strcmp(a, "--offline")) {
            o.offline = 1;
        } else if (!strcmp(a, "--no-progress")) {
            o.progress = 0;
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            o.quiet = 1;
            o.progress = 0;
        } else if (a[0] == '-') {
            fprintf(stderr, "mmpipe pull: unknown or incomplete option '%s'\n", a);
            usage(stderr);
            return 1;
        } else if (!spec) {
            spec = a;
        } else {
            fprintf(stderr, "mmpipe pull: one repo at a time (got '%s' and '%s')\n", spec, a);
            return 1;
        }
    }
    if (!spec) {
        usage(stderr);
        return 1;
    }
    char path[PATH_MAX];
    mp_error err;
    int rc;
    const char *colon = strchr(spec, ':');
    char repo[256];
    snprintf(repo, sizeof repo, "%.*s", colon ? (int)(colon - spec) : (int)strlen(spec), spec);
    if (colon) {
        rc = mp_hub_file(&o, repo, colon + 1, path, sizeof path, &err);
    } else if (all || n_pats) {
        rc = mp_hub_snapshot(&o, repo, pats, all ? 0 : n_pats, path, sizeof path, &err);
    } else {
        char tmp[512];
        snprintf(tmp, sizeof tmp, "%s", spec);
        rc = mp_model_resolve(tmp, &o, path, sizeof path, &err);
    }
    if (rc != 0) {
        fprintf(stderr, "mmpipe pull: %s\n", err.msg);
        return 1;
    }
    printf("%s\n", path);
    return 0;
}
