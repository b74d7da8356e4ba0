/* fuzz_batch.c — libFuzzer harness for the batch request reader (runtime/batch_io.c): the input is a
 * JSONL requests file, read with mp_req_reader_next to the end (bad lines give an error and the reader
 * goes on, as `mmpipe batch` does). Every good request is turned into a result line, which must parse
 * back with the same custom_id; ids go through the id set and the sharding hash. The input is read
 * through fmemopen (the reader only needs a FILE *). Seeds: make_seeds.py. */
#include "fuzz_util.h"
#include "runtime/batch_io.h"

#include <cjson/cJSON.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    FILE *f = fmemopen((void *)data, size, "r");
    if (!f) return 0;
    mp_req_reader r;
    memset(&r, 0, sizeof r);
    r.f = f;
    r.path = "fuzz.jsonl";
    mp_idset ids = {0};
    mp_shard sh = {1, 3};
    for (int guard = 0; guard < 1000000; guard++) {
        mp_request q;
        char *bad = NULL;
        mp_error e;
        memset(&e, 0, sizeof e);
        int rc = mp_req_reader_next(&r, &q, &bad, &e);
        if (rc == 0) break;
        if (rc < 0) {
            fz_check_error(&e, "fuzz.jsonl");
            if (q.custom_id || q.body) abort();
            if (bad) {
                char *line = mp_result_error(bad, 400, "invalid_request", e.msg);
                cJSON *j = line ? cJSON_Parse(line) : NULL;
                if (!j) abort();
                cJSON_Delete(j);
                free(line);
                free(bad);
            }
            continue;
        }
        if (!q.custom_id || !q.body || (q.kind != MP_REQ_CHAT && q.kind != MP_REQ_TRANSCRIBE && q.kind != MP_REQ_COMPLETION) || bad) abort();
        if (mp_idset_add(&ids, q.custom_id) < 0) abort();
        if (!mp_idset_has(&ids, q.custom_id)) abort();
        mp_shard_owns(&sh, q.custom_id);
        char *id = strdup(q.custom_id);
        cJSON *body = q.body;
        q.body = NULL;
        char *line = mp_result_ok(id, body);
        if (!line || strchr(line, '\n')) abort();
        cJSON *j = cJSON_Parse(line);
        const cJSON *cid = cJSON_GetObjectItemCaseSensitive(j, "custom_id");
        if (!cJSON_IsString(cid) || strcmp(cid->valuestring, id)) {
            fprintf(stderr, "fuzz_batch: result line lost the custom_id\n");
            abort();
        }
        cJSON_Delete(j);
        free(line);
        free(id);
        mp_request_free(&q);
    }
    mp_idset_free(&ids);
    free(r.line);
    fclose(f);
    return 0;
}
