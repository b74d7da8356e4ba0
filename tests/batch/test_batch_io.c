/* test_batch_io.c — batch JSONL reader (valid and bad lines), result writer (no clobber, resume,
 * torn-line repair), sharding (partition, env variables, names), merge (duplicates, missing, torn). */
#include "runtime/batch_io.h"
#include "test.h"

#include <cjson/cJSON.h>
#include <unistd.h>

static char tmpdir[256];

static const char *tpath(const char *name) {
    static char buf[16][512];
    static int k;
    char *b = buf[k++ & 15];
    snprintf(b, 512, "%s/%s", tmpdir, name);
    return b;
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

static char *read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *s = malloc((size_t)n + 1);
    size_t got = fread(s, 1, (size_t)n, f);
    s[got] = 0;
    fclose(f);
    return s;
}

static void test_reader(void) {
    const char *p = tpath("req.jsonl");
    write_file(p,
               "{\"custom_id\":\"a\",\"method\":\"POST\",\"url\":\"/v1/chat/completions\",\"body\":{\"model\":\"m\",\"messages\":[]}}\n"
               "\n"
               "{\"custom_id\":\"b\",\"url\":\"/v1/audio/transcriptions\",\"body\":{\"file\":\"x.wav\"}}\n"
               "not json\n"
               "{\"custom_id\":\"c\",\"url\":\"/v1/embeddings\",\"body\":{}}\n"
               "{\"custom_id\":\"d\",\"method\":\"GET\",\"url\":\"/v1/chat/completions\",\"body\":{}}\n"
               "{\"url\":\"/v1/chat/completions\",\"body\":{}}\n"
               "{\"custom_id\":\"e\",\"url\":\"/v1/chat/completions\"}\n"
               "{\"custom_id\":\"f\",\"url\":\"/v1/chat/completions\",\"body\":{\"model\":7}}\n"
               "{\"custom_id\":\"g\",\"url\":\"/v1/chat/completions\",\"body\":{}}"); /* no final newline */
    mp_req_reader r;
    mp_error err;
    CHECK(mp_req_reader_open(&r, p, &err) == 0);
    mp_request q;
    char *bad;
    CHECK_EQ_INT(mp_req_reader_next(&r, &q, &bad, &err), 1);
    CHECK_STR(q.custom_id, "a");
    CHECK_EQ_INT(q.kind, MP_REQ_CHAT);
    CHECK_STR(q.model, "m");
    CHECK(cJSON_IsArray(cJSON_GetObjectItem(q.body, "messages")));
    CHECK_EQ_INT(q.line_no, 1);
    mp_request_free(&q);
    CHECK_EQ_INT(mp_req_reader_next(&r, &q, &bad, &err), 1); /* blank line skipped */
    CHECK_STR(q.custom_id, "b");
    CHECK_EQ_INT(q.kind, MP_REQ_TRANSCRIBE);
    CHECK(q.model == NULL);
    CHECK_EQ_INT(q.line_no, 3);
    mp_request_free(&q);
    struct { const char *id; const char *msg; } bads[] = {
        {NULL, ":4: not a JSON object"}, {"c", "unsupported url \"/v1/embeddings\""}, {"d", "\"method\" must be \"POST\""},
        {NULL, "missing or empty \"custom_id\""}, {"e", "missing \"body\""}, {"f", "\"model\" must be a string"}};
    for (int i = 0; i < 6; i++) {
        CHECK_EQ_INT(mp_req_reader_next(&r, &q, &bad, &err), -1);
        CHECKF(strstr(err.msg, bads[i].msg) != NULL, "%s", err.msg);
        if (bads[i].id) CHECK(bad && !strcmp(bad, bads[i].id));
        else CHECK(bad == NULL);
        free(bad);
    }
    CHECK_EQ_INT(mp_req_reader_next(&r, &q, &bad, &err), 1); /* last line without newline */
    CHECK_STR(q.custom_id, "g");
    mp_request_free(&q);
    CHECK_EQ_INT(mp_req_reader_next(&r, &q, &bad, &err), 0);
    mp_req_reader_close(&r);
    CHECK(mp_req_reader_open(&r, tpath("nope.jsonl"), &err) == -1);
    CHECK(strstr(err.msg, "nope.jsonl") != NULL);
}

static void test_writer_resume(void) {
    const char *p = tpath("out.jsonl");
    unlink(p);
    mp_res_writer w;
    mp_error err;
    mp_idset done = {0};
    int64_t n_done = -1;
    CHECK(mp_res_writer_open(&w, p, 0, &done, &n_done, &err) == 0);
    cJSON *body = cJSON_CreateObject();
    cJSON_AddStringToObject(body, "object", "chat.completion");
    char *l1 = mp_result_ok("r1", body);
    char *l2 = mp_result_error("r2", 400, "invalid_request", "x.wav: no such file");
    CHECK(mp_res_writer_put(&w, l1, &err) == 0);
    CHECK(mp_res_writer_put(&w, l2, &err) == 0);
    CHECK(mp_res_writer_put(&w, "{\"a\":\n1}", &err) == -1); /* newlines never reach the file */
    CHECK(mp_res_writer_close(&w, &err) == 0);
    cJSON *j = cJSON_Parse(l1);
    CHECK_STR(cJSON_GetObjectItem(j, "custom_id")->valuestring, "r1");
    CHECK(cJSON_IsNull(cJSON_GetObjectItem(j, "error")));
    CHECK_EQ_INT(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "response"), "status_code")->valueint, 200);
    CHECK(!strncmp(cJSON_GetObjectItem(j, "id")->valuestring, "batch_req_", 10));
    cJSON_Delete(j);
    char *again = mp_result_ok("r1", cJSON_CreateObject());
    j = cJSON_Parse(again);
    cJSON *j1 = cJSON_Parse(l1);
    CHECK_STR(cJSON_GetObjectItem(j, "id")->valuestring, cJSON_GetObjectItem(j1, "id")->valuestring); /* deterministic */
    cJSON_Delete(j);
    cJSON_Delete(j1);
    free(again);
    /* no clobbering without --resume */
    CHECK(mp_res_writer_open(&w, p, 0, &done, &n_done, &err) == -1);
    CHECK(strstr(err.msg, "--resume") != NULL);
    /* simulate a crash in the middle of a line */
    FILE *f = fopen(p, "a");
    fputs("{\"id\":\"batch_req_x\",\"custom_id\":\"r3\",\"resp", f);
    fclose(f);
    CHECK(mp_res_writer_open(&w, p, 1, &done, &n_done, &err) == 0);
    CHECK_EQ_INT(n_done, 2);
    CHECK(mp_idset_has(&done, "r1") && mp_idset_has(&done, "r2") && !mp_idset_has(&done, "r3"));
    CHECK(mp_res_writer_put(&w, "{\"custom_id\":\"r3\"}", &err) == 0);
    CHECK(mp_res_writer_close(&w, &err) == 0);
    char *txt = read_file(p);
    size_t expect_len = strlen(l1) + strlen(l2) + strlen("{\"custom_id\":\"r3\"}") + 3;
    CHECK_EQ_INT(strlen(txt), expect_len);
    CHECK(strstr(txt, "\"resp") == NULL || strstr(txt, "\"response\"") != NULL);
    CHECK(txt[strlen(txt) - 1] == '\n');
    free(txt);
    free(l1);
    free(l2);
    mp_idset_free(&done);
}

static void test_shards(void) {
    mp_shard sh;
    mp_error err;
    unsetenv("SLURM_ARRAY_TASK_ID");
    unsetenv("SLURM_ARRAY_TASK_COUNT");
    unsetenv("SLURM_ARRAY_TASK_MIN");
    unsetenv("JOB_COMPLETION_INDEX");
    unsetenv("MMPIPE_NUM_SHARDS");
    CHECK(mp_shard_resolve(&sh, NULL, &err) == 0 && sh.count == 1 && sh.index == 0);
    CHECK(mp_shard_resolve(&sh, "2/4", &err) == 0 && sh.index == 2 && sh.count == 4);
    CHECK(mp_shard_resolve(&sh, "4/4", &err) == -1);
    CHECK(mp_shard_resolve(&sh, "x", &err) == -1);
    setenv("SLURM_ARRAY_TASK_ID", "3", 1);
    setenv("SLURM_ARRAY_TASK_COUNT", "4", 1);
    setenv("SLURM_ARRAY_TASK_MIN", "1", 1);
    CHECK(mp_shard_resolve(&sh, NULL, &err) == 0 && sh.index == 2 && sh.count == 4);
    CHECK(mp_shard_resolve(&sh, "0/2", &err) == 0 && sh.index == 0 && sh.count == 2); /* flag wins */
    unsetenv("SLURM_ARRAY_TASK_ID");
    unsetenv("SLURM_ARRAY_TASK_COUNT");
    unsetenv("SLURM_ARRAY_TASK_MIN");
    setenv("JOB_COMPLETION_INDEX", "1", 1);
    CHECK(mp_shard_resolve(&sh, NULL, &err) == -1 && strstr(err.msg, "MMPIPE_NUM_SHARDS"));
    setenv("MMPIPE_NUM_SHARDS", "3", 1);
    CHECK(mp_shard_resolve(&sh, NULL, &err) == 0 && sh.index == 1 && sh.count == 3);
    unsetenv("JOB_COMPLETION_INDEX");
    unsetenv("MMPIPE_NUM_SHARDS");
    /* every id in exactly one of N shards, and reasonably balanced */
    int counts[4] = {0};
    for (int i = 0; i < 4000; i++) {
        char id[32];
        snprintf(id, sizeof id, "request-%d", i);
        int owners = 0;
        for (int s = 0; s < 4; s++) {
            mp_shard x = {s, 4};
            if (mp_shard_owns(&x, id)) {
                owners++;
                counts[s]++;
            }
        }
        CHECK_EQ_INT(owners, 1);
    }
    for (int s = 0; s < 4; s++) CHECKF(counts[s] > 850 && counts[s] < 1150, "shard %d has %d of 4000", s, counts[s]);
    char name[256];
    mp_shard x = {2, 4};
    mp_shard_output_name(&x, "dir.v1/out.jsonl", name, sizeof name);
    CHECK_STR(name, "dir.v1/out.shard-00002-of-00004.jsonl");
    mp_shard_output_name(&x, "out", name, sizeof name);
    CHECK_STR(name, "out.shard-00002-of-00004");
    mp_shard_output_name(&x, "res-{shard}.jsonl", name, sizeof name);
    CHECK_STR(name, "res-shard-00002-of-00004.jsonl");
    mp_shard one = {0, 1};
    mp_shard_output_name(&one, "out.jsonl", name, sizeof name);
    CHECK_STR(name, "out.jsonl");
}

static void test_merge(void) {
    write_file(tpath("m_req.jsonl"), "{\"custom_id\":\"a\",\"url\":\"/v1/chat/completions\",\"body\":{}}\n"
                                      "{\"custom_id\":\"b\",\"url\":\"/v1/chat/completions\",\"body\":{}}\n"
                                      "{\"custom_id\":\"c\",\"url\":\"/v1/chat/completions\",\"body\":{}}\n"
                                      "{\"custom_id\":\"d\",\"url\":\"/v1/chat/completions\",\"body\":{}}\n");
    write_file(tpath("m_s0.jsonl"), "{\"custom_id\":\"a\",\"error\":null}\n{\"custom_id\":\"b\",\"error\":{\"code\":\"x\"}}\n");
    write_file(tpath("m_s1.jsonl"), "{\"custom_id\":\"a\",\"error\":null}\n{\"custom_id\":\"z\",\"error\":null}\n{\"custom_id\":\"c\",\"er");
    const char *ins[] = {tpath("m_s0.jsonl"), tpath("m_s1.jsonl")};
    unlink(tpath("m_out.jsonl"));
    mp_merge_stats st;
    mp_error err;
    FILE *rep = tmpfile();
    CHECK(mp_merge_results(tpath("m_out.jsonl"), ins, 2, tpath("m_req.jsonl"), rep, 10, &st, &err) == 0);
    CHECK_EQ_INT(st.records, 3);    /* a, b, z */
    CHECK_EQ_INT(st.errors, 1);     /* b */
    CHECK_EQ_INT(st.duplicates, 1); /* a */
    CHECK_EQ_INT(st.bad_lines, 1);  /* torn c */
    CHECK_EQ_INT(st.missing, 2);    /* c, d */
    CHECK_EQ_INT(st.unknown, 1);    /* z */
    rewind(rep);
    char buf[2048] = "";
    size_t n = fread(buf, 1, sizeof buf - 1, rep);
    buf[n] = 0;
    fclose(rep);
    CHECK(strstr(buf, "duplicate a\n") && strstr(buf, "missing c\n") && strstr(buf, "missing d\n") && strstr(buf, "unknown z\n"));
    char *out = read_file(tpath("m_out.jsonl"));
    CHECK_STR(out, "{\"custom_id\":\"a\",\"error\":null}\n{\"custom_id\":\"b\",\"error\":{\"code\":\"x\"}}\n{\"custom_id\":\"z\",\"error\":null}\n");
    free(out);
    /* merge never overwrites an existing result file */
    CHECK(mp_merge_results(tpath("m_out.jsonl"), ins, 2, NULL, NULL, 0, &st, &err) == -1);
}

static void test_idset(void) {
    mp_idset s = {0};
    char id[32];
    for (int i = 0; i < 100000; i++) {
        snprintf(id, sizeof id, "id%d", i);
        CHECK_EQ_INT(mp_idset_add(&s, id), 1);
    }
    int present = 0, absent = 0;
    for (int i = 0; i < 200000; i++) {
        snprintf(id, sizeof id, "id%d", i);
        if (mp_idset_has(&s, id)) present++;
        else absent++;
    }
    CHECK_EQ_INT(present, 100000);
    CHECK_EQ_INT(absent, 100000);
    CHECK_EQ_INT(mp_idset_add(&s, "id5"), 0);
    CHECK_EQ_INT(s.count, 100000);
    mp_idset_free(&s);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/mmpipe_batchio_XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    test_reader();
    test_writer_resume();
    test_shards();
    test_merge();
    test_idset();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "cleanup failed\n");
    return mp_test_result("test_batch_io");
}
