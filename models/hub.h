/* hub.h — Hugging Face hub downloads into the cache layout huggingface_hub uses, so files a user
 * already downloaded with other tools are found without network, and files we download are found by
 * theirs:
 *
 *   $HF_HUB_CACHE (default $HF_HOME/hub, default ~/.cache/huggingface/hub)
 *     models--ORG--NAME/blobs/<etag>                 file contents (etag = sha256 for LFS files,
 *                                                     git blob sha1 for small files)
 *     models--ORG--NAME/snapshots/<commit>/<path>    symlink to ../../blobs/<etag>
 *     models--ORG--NAME/refs/<revision>               the commit a branch/tag name pointed to
 *     .locks/models--ORG--NAME/<etag>.lock            taken while a blob is being written
 *
 * Environment, as huggingface_hub reads it: HF_ENDPOINT (mirror), HF_HOME, HF_HUB_CACHE, HF_TOKEN
 * (else $HF_HOME/token), HF_HUB_OFFLINE=1.
 * Downloads use libcurl: resume of partial files (blobs/<etag>.incomplete + Range), size and checksum
 * verification (sha256 of LFS files, git blob sha1 of the others), atomic rename, a progress bar on a
 * TTY, and one clear error line for 404, 401/403 (gated or private: set HF_TOKEN), disk full, offline
 * with nothing cached.
 */
#ifndef MP_HUB_H
#define MP_HUB_H

#include "kernels/mp.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mp_hub_opts {
    const char *endpoint;  /* NULL: $HF_ENDPOINT, else https://huggingface.co */
    const char *cache_dir; /* NULL: $HF_HUB_CACHE, $HF_HOME/hub, ~/.cache/huggingface/hub */
    const char *token;     /* NULL: $HF_TOKEN, else the file $HF_HOME/token if present */
    const char *revision;  /* NULL: "main" */
    int offline;           /* 1: never touch the network ($HF_HUB_OFFLINE=1 sets it too) */
    int progress;          /* 1 on, 0 off, -1 auto (stderr is a TTY) */
    int quiet;             /* no "downloading ..." lines */
} mp_hub_opts;

void mp_hub_default_opts(mp_hub_opts *o);

/* 1 if spec looks like a hub repo id "ORG/NAME" or "ORG/NAME:FILE" and is not an existing path. */
int mp_hub_is_repo_id(const char *spec);

/* The cache folder for a repo: <cache>/models--ORG--NAME. */
int mp_hub_repo_dir(const mp_hub_opts *o, const char *repo, char *out, size_t cap, mp_error *err);

/* One file of a repo: found in the cache (offline, or when the hub says it is current), else
 * downloaded. out receives the snapshot path of the file. */
int mp_hub_file(const mp_hub_opts *o, const char *repo, const char *filename, char *out, size_t cap,
                mp_error *err);

/* A repo's files matching any of the glob patterns (all files if n_patterns == 0), downloaded as
 * needed; out receives the snapshot folder. Offline: the cached snapshot of the revision. */
int mp_hub_snapshot(const mp_hub_opts *o, const char *repo, const char *const *patterns, int n_patterns,
                    char *out, size_t cap, mp_error *err);

/* What `-m SPEC` means: an existing file or folder is used as is; "ORG/NAME:FILE" is that file from
 * the hub; "ORG/NAME" is the model's snapshot folder (config, tokenizer and safetensors files; a repo
 * that only has GGUF files needs ":FILE", and the error lists them). */
int mp_model_resolve(const char *spec, const mp_hub_opts *o, char *out, size_t cap, mp_error *err);

#ifdef __cplusplus
}
#endif
#endif
