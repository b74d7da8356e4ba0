/* batch_io.c — streaming batch JSONL in/out, resume, sharding, merge. See batch_io.h. */
#include "runtime/batch_io.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

static double now_s(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return tv.tv_sec + tv.tv_usec * 1e-6;
}

void mp_request_free(mp_request *r) {
    if (!r) return;
    free(r->custom_id);
    free(r->model);
    cJSON_Delete(r->body);
    memset(r, 0, sizeof *r);
}

/* ---------------------------------------------------------------- id set */

uint64_t mp_id_hash(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        h ^= *p;
        h *= 1099511628211ull;
    }
    return h ? h : 1;
}

static int idset_grow(mp_idset *s) {
    size_t nc = s->cap ? s->cap * 2 : 1024;
    uint64_t *ns = calloc(nc, sizeof *ns);
    if (!ns) return -1;
    for (size_t i = 0; i < s->cap; i++) {
        uint64_t h = s->slots[i];
        if (!h) continue;
        size_t j = h & (nc - 1);
        while (ns[j]) j = (j + 1) & (nc - 1);
        ns[j] = h;
    }
    free(s->slots);
    s->slots = ns;
    s->cap = nc;
    return 0;
}

static int idset_add_hash(mp_idset *s, uint64_t h) {
    if ((s->count + 1) * 2 > s->cap && idset_grow(s)) return -1;
    size_t j = h & (s->cap - 1);
    while (s->slots[j]) {
        if (s->slots[j] == h) return 0;
        j = (j + 1) & (s->cap - 1);
    }
    s->slots[j] = h;
    s->count++;
    return 1;
}

int mp_idset_add(mp_idset *s, const char *id) { return idset_add_hash(s, mp_id_hash(id)); }

int mp_idset_has(const mp_idset *s, const char *id) {
    if (!s->cap) return 0;
    uint64_t h = mp_id_hash(id);
    size_t j = h & (s->cap - 1);
    while (s->slots[j]) {
        if (s->slots[j] == h) return 1;
        j = (j + 1) & (s->cap - 1);
    }
    return 0;
}

void mp_idset_free(mp_idset *s) {
    free(s->slots);
    memset(s, 0, sizeof *s);
}

/* ---------------------------------------------------------------- sharding */

static int parse_int(const char *s, long *v) {
    if (!s || !*s) return -1;
    char *end;
    errno = 0;
    *v = strtol(s, &end, 10);
    return (*end || errno) ? -1 : 0;
}

int mp_shard_resolve(mp_shard *sh, const char *spec, mp_error *err) {
    sh->index = 0;
    sh->count = 1;
    long i, n;
    if (spec) {
        const char *slash = strchr(spec, '/');
        char a[32];
        if (!slash || (size_t)(slash - spec) >= sizeof a) return mp_errf(err, "--shard wants I/N (e.g. 0/4), got '%s'", spec);
        memcpy(a, spec, (size_t)(slash - spec));
        a[slash - spec] = 0;
        if (parse_int(a, &i) || parse_int(slash + 1, &n) || n < 1 || n > 1000000 || i < 0 || i >= n)
            return mp_errf(err, "--shard wants I/N with 0 <= I < N, got '%s'", spec);
    } else if (getenv("SLURM_ARRAY_TASK_ID") && getenv("SLURM_ARRAY_TASK_COUNT")) {
        long lo = 0;
        if (parse_int(getenv("SLURM_ARRAY_TASK_ID"), &i) || parse_int(getenv("SLURM_ARRAY_TASK_COUNT"), &n))
            return mp_errf(err, "SLURM_ARRAY_TASK_ID/COUNT are not integers");
        if (getenv("SLURM_ARRAY_TASK_MIN") && parse_int(getenv("SLURM_ARRAY_TASK_MIN"), &lo))
            return mp_errf(err, "SLURM_ARRAY_TASK_MIN is not an integer");
        i -= lo;
        if (n < 1 || i < 0 || i >= n)
            return mp_errf(err, "SLURM array task %ld is outside 0..%ld (use --array=0-%ld or set --shard)", i, n - 1, n - 1);
    } else if (getenv("JOB_COMPLETION_INDEX")) {
        if (parse_int(getenv("JOB_COMPLETION_INDEX"), &i)) return mp_errf(err, "JOB_COMPLETION_INDEX is not an integer");
        if (parse_int(getenv("MMPIPE_NUM_SHARDS"), &n))
            return mp_errf(err, "JOB_COMPLETION_INDEX is set: also set MMPIPE_NUM_SHARDS to the job's completions");
        if (n < 1 || i < 0 || i >= n) return mp_errf(err, "JOB_COMPLETION_INDEX %ld is outside 0..%ld", i, n - 1);
    } else {
        return 0;
    }
    sh->index = (int)i;
    sh->count = (int)n;
    return 0;
}

int mp_shard_owns(const mp_shard *sh, const char *custom_id) {
    if (sh->count <= 1) return 1;
    /* mix the FNV hash once more so ids differing only in a last digit spread evenly */
    uint64_t h = mp_id_hash(custom_id);
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return (int)(h % (uint64_t)sh->count) == sh->index;
}

void mp_shard_output_name(const mp_shard *sh, const char *path, char *out, size_t cap) {
    char tag[64];
    snprintf(tag, sizeof tag, "shard-%05d-of-%05d", sh->index, sh->count);
    const char *brace = strstr(path, "{shard}");
    if (brace) {
        snprintf(out, cap, "%.*s%s%s", (int)(brace - path), path, tag, brace + 7);
        return;
    }
    if (sh->count <= 1) {
        snprintf(out, cap, "%s", path);
        return;
    }
    const char *slash = strrchr(path, '/');
    const char *dot = strrchr(path, '.');
    if (dot && (!slash || dot > slash + 1))
        snprintf(out, cap, "%.*s.%s%s", (int)(dot - path), path, tag, dot);
    else
        snprintf(out, cap, "%s.%s", path, tag);
}

/* ---------------------------------------------------------------- reading */

int mp_req_reader_open(mp_req_reader *r, const char *path, mp_error *err) {
    memset(r, 0, sizeof *r);
    r->path = path;
    if (!strcmp(path, "-")) {
        r->f = stdin;
        r->path = "<stdin>";
        return 0;
    }
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return mp_errf(err, "%s: is a folder, not a JSONL file", path);
    r->f = fopen(path, "r");
    if (!r->f) return mp_errf(err, "%s: %s", path, strerror(errno));
    r->owns_file = 1;
    return 0;
}

void mp_req_reader_close(mp_req_reader *r) {
    if (r->owns_file && r->f) fclose(r->f);
    free(r->line);
    memset(r, 0, sizeof *r);
}

static int blank(const char *s) {
    for (; *s; s++)
        if (*s != ' ' && *s != '\t' && *s != '\r' && *s != '\n') return 0;
    return 1;
}

int mp_req_reader_next(mp_req_reader *r, mp_request *req, char **bad_id, mp_error *err) {
    memset(req, 0, sizeof *req);
    *bad_id = NULL;
    ssize_t n;
    do {
        n = getline(&r->line, &r->line_cap, r->f);
        if (n < 0) {
            if (ferror(r->f)) return mp_errf(err, "%s: read error after line %lld", r->path, (long long)r->line_no);
            return 0;
        }
        r->line_no++;
    } while (blank(r->line));
    if (strlen(r->line) != (size_t)n)
        return mp_errf(err, "%s:%lld: line contains a NUL byte", r->path, (long long)r->line_no);
    cJSON *j = cJSON_ParseWithLength(r->line, (size_t)n);
    if (!j || !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return mp_errf(err, "%s:%lld: not a JSON object", r->path, (long long)r->line_no);
    }
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "custom_id");
    const cJSON *method = cJSON_GetObjectItemCaseSensitive(j, "method");
    const cJSON *url = cJSON_GetObjectItemCaseSensitive(j, "url");
    cJSON *body = cJSON_GetObjectItemCaseSensitive(j, "body");
    int rc = -1;
    if (!cJSON_IsString(id) || !id->valuestring[0]) {
        mp_errf(err, "%s:%lld: missing or empty \"custom_id\"", r->path, (long long)r->line_no);
        goto done;
    }
    if (strlen(id->valuestring) > 512) {
        mp_errf(err, "%s:%lld: \"custom_id\" longer than 512 bytes", r->path, (long long)r->line_no);
        goto done;
    }
    *bad_id = strdup(id->valuestring);
    if (method && (!cJSON_IsString(method) || strcmp(method->valuestring, "POST"))) {
        mp_errf(err, "%s:%lld: \"method\" must be \"POST\"", r->path, (long long)r->line_no);
        goto done;
    }
    if (!cJSON_IsString(url)) {
        mp_errf(err, "%s:%lld: missing \"url\"", r->path, (long long)r->line_no);
        goto done;
    }
    if (!strcmp(url->valuestring, "/v1/chat/completions")) req->kind = MP_REQ_CHAT;
    else if (!strcmp(url->valuestring, "/v1/audio/transcriptions")) req->kind = MP_REQ_TRANSCRIBE;
    else if (!strcmp(url->valuestring, "/v1/completions")) req->kind = MP_REQ_COMPLETION;
    else {
        mp_errf(err, "%s:%lld: unsupported url \"%s\" (supported: /v1/chat/completions, /v1/completions, /v1/audio/transcriptions)",
                r->path, (long long)r->line_no, url->valuestring);
        goto done;
    }
    if (!cJSON_IsObject(body)) {
        mp_errf(err, "%s:%lld: missing \"body\" object", r->path, (long long)r->line_no);
        goto done;
    }
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(body, "model");
    if (model && !cJSON_IsString(model) && !cJSON_IsNull(model)) {
        mp_errf(err, "%s:%lld: \"model\" must be a string", r->path, (long long)r->line_no);
        goto done;
    }
    req->line_no = r->line_no;
    req->custom_id = *bad_id;
    *bad_id = NULL;
    req->model = cJSON_IsString(model) ? strdup(model->valuestring) : NULL;
    req->body = cJSON_DetachItemViaPointer(j, body);
    rc = 1;
done:
    cJSON_Delete(j);
    if (rc != 1) {
        free(req->custom_id);
        memset(req, 0, sizeof *req);
    }
    return rc;
}

/* ---------------------------------------------------------------- writing */

/* Truncates a torn last line (no trailing newline) and collects the custom_ids of complete lines. */
static int scan_existing(FILE *f, const char *path, mp_idset *done, int64_t *n_done, mp_error *err) {
    if (fseek(f, 0, SEEK_END) != 0) return mp_errf(err, "%s: cannot seek", path);
    long size = ftell(f);
    if (size <= 0) return 0;
    /* find the end of the last complete line */
    long keep = size;
    char c;
    while (keep > 0) {
        if (fseek(f, keep - 1, SEEK_SET) != 0 || fread(&c, 1, 1, f) != 1) return mp_errf(err, "%s: read error", path);
        if (c == '\n') break;
        keep--;
    }
    if (keep < size) {
        fprintf(stderr, "mmpipe batch: %s: repairing a torn last line (%ld bytes dropped)\n", path, size - keep);
        if (fflush(f) != 0 || ftruncate(fileno(f), keep) != 0)
            return mp_errf(err, "%s: cannot repair the torn last line: %s", path, strerror(errno));
    }
    rewind(f);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int64_t lineno = 0;
    while ((n = getline(&line, &cap, f)) > 0) {
        lineno++;
        if (blank(line)) continue;
        cJSON *j = cJSON_ParseWithLength(line, (size_t)n);
        const cJSON *id = j ? cJSON_GetObjectItemCaseSensitive(j, "custom_id") : NULL;
        if (cJSON_IsString(id)) {
            if (mp_idset_add(done, id->valuestring) < 0) {
                cJSON_Delete(j);
                free(line);
                return mp_errf(err, "out of memory");
            }
            (*n_done)++;
        } else if (!j) {
            fprintf(stderr, "mmpipe batch: %s:%lld: not JSON; ignored on resume\n", path, (long long)lineno);
        }
        cJSON_Delete(j);
    }
    free(line);
    return 0;
}

int mp_res_writer_open(mp_res_writer *w, const char *path, int resume, mp_idset *done, int64_t *n_done,
                       mp_error *err) {
    memset(w, 0, sizeof *w);
    w->sync_interval = 2.0;
    if (n_done) *n_done = 0;
    struct stat st;
    int exists = stat(path, &st) == 0;
    if (exists && S_ISDIR(st.st_mode)) return mp_errf(err, "%s: is a folder", path);
    if (exists && st.st_size > 0 && !resume)
        return mp_errf(err, "%s: exists and is not empty; use --resume to continue it (or choose another -o)", path);
    FILE *f = fopen(path, exists ? "r+" : "w+");
    if (!f) return mp_errf(err, "%s: %s", path, strerror(errno));
    if (resume && exists) {
        int64_t tmp = 0;
        if (scan_existing(f, path, done, n_done ? n_done : &tmp, err)) {
            fclose(f);
            return -1;
        }
    }
    if (fseek(f, 0, SEEK_END) != 0) {
        fclose(f);
        return mp_errf(err, "%s: cannot seek", path);
    }
    w->f = f;
    w->path = strdup(path);
    w->last_sync = now_s();
    return 0;
}

int mp_res_writer_put(mp_res_writer *w, const char *json, mp_error *err) {
    size_t n = strlen(json);
    if (memchr(json, '\n', n)) return mp_errf(err, "%s: internal error: result contains a newline", w->path);
    if (fwrite(json, 1, n, w->f) != n || fputc('\n', w->f) == EOF || fflush(w->f) != 0)
        return mp_errf(err, "%s: write failed: %s", w->path, errno == ENOSPC ? "disk full" : strerror(errno));
    w->written++;
    double t = now_s();
    if (t - w->last_sync >= w->sync_interval) {
        if (fsync(fileno(w->f)) != 0 && errno != EINVAL)
            return mp_errf(err, "%s: fsync failed: %s", w->path, strerror(errno));
        w->last_sync = t;
    }
    return 0;
}

int mp_res_writer_close(mp_res_writer *w, mp_error *err) {
    int rc = 0;
    if (w->f) {
        if (fflush(w->f) != 0 || (fsync(fileno(w->f)) != 0 && errno != EINVAL))
            rc = mp_errf(err, "%s: flush failed: %s", w->path, strerror(errno));
        if (fclose(w->f) != 0 && rc == 0) rc = mp_errf(err, "%s: close failed: %s", w->path, strerror(errno));
    }
    free(w->path);
    memset(w, 0, sizeof *w);
    return rc;
}

static char *print_compact(cJSON *j) {
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return s;
}

/* Deterministic ids (same request -> same id across runs and resumes). */
static void request_ids(const char *custom_id, char *bid, char *rid) {
    uint64_t h = mp_id_hash(custom_id);
    sprintf(bid, "batch_req_%016llx", (unsigned long long)h);
    sprintf(rid, "req_%016llx", (unsigned long long)(h * 0x9e3779b97f4a7c15ull));
}

char *mp_result_ok(const char *custom_id, cJSON *body) {
    char bid[64], rid[64];
    request_ids(custom_id, bid, rid);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "id", bid);
    cJSON_AddStringToObject(j, "custom_id", custom_id);
    cJSON *resp = cJSON_AddObjectToObject(j, "response");
    cJSON_AddNumberToObject(resp, "status_code", 200);
    cJSON_AddStringToObject(resp, "request_id", rid);
    cJSON_AddItemToObject(resp, "body", body);
    cJSON_AddNullToObject(j, "error");
    return print_compact(j);
}

char *mp_result_error(const char *custom_id, int status_code, const char *code, const char *message) {
    char bid[64], rid[64];
    request_ids(custom_id ? custom_id : "", bid, rid);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "id", bid);
    if (custom_id) cJSON_AddStringToObject(j, "custom_id", custom_id);
    else cJSON_AddNullToObject(j, "custom_id");
    cJSON_AddNullToObject(j, "response");
    cJSON *e = cJSON_AddObjectToObject(j, "error");
    cJSON_AddStringToObject(e, "code", code);
    cJSON_AddStringToObject(e, "message", message);
    cJSON_AddNumberToObject(e, "status_code", status_code);
    return print_compact(j);
}

/* ---------------------------------------------------------------- merge */

static void list_id(FILE *report, const char *what, const char *id, int64_t *count, int max_listed) {
    (*count)++;
    if (report && *count <= max_listed) fprintf(report, "%s %s\n", what, id);
}

int mp_merge_results(const char *out, const char *const *inputs, int n_inputs, const char *requests, FILE *report,
                     int max_listed, mp_merge_stats *st, mp_error *err) {
    memset(st, 0, sizeof *st);
    mp_idset seen = {0}, wanted = {0};
    mp_res_writer w;
    int rc = 0;
    if (requests) { /* the ids the results should cover */
        mp_req_reader r;
        if (mp_req_reader_open(&r, requests, err)) return -1;
        ssize_t n;
        while ((n = getline(&r.line, &r.line_cap, r.f)) > 0) {
            cJSON *j = cJSON_ParseWithLength(r.line, (size_t)n);
            const cJSON *id = j ? cJSON_GetObjectItemCaseSensitive(j, "custom_id") : NULL;
            if (cJSON_IsString(id)) mp_idset_add(&wanted, id->valuestring);
            cJSON_Delete(j);
        }
        mp_req_reader_close(&r);
    }
    if (mp_res_writer_open(&w, out, 0, NULL, NULL, err)) {
        mp_idset_free(&wanted);
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    for (int i = 0; i < n_inputs && rc == 0; i++) {
        FILE *f = fopen(inputs[i], "r");
        if (!f) {
            rc = mp_errf(err, "%s: %s", inputs[i], strerror(errno));
            break;
        }
        ssize_t n;
        while ((n = getline(&line, &cap, f)) > 0 && rc == 0) {
            if (blank(line)) continue;
            if (line[n - 1] != '\n') { /* torn last line of an interrupted shard */
                st->bad_lines++;
                if (report) fprintf(report, "torn-line %s\n", inputs[i]);
                continue;
            }
            line[n - 1] = 0;
            cJSON *j = cJSON_ParseWithLength(line, (size_t)n - 1);
            const cJSON *id = j ? cJSON_GetObjectItemCaseSensitive(j, "custom_id") : NULL;
            if (!cJSON_IsString(id)) {
                st->bad_lines++;
                if (report) fprintf(report, "bad-line %s\n", inputs[i]);
            } else {
                int added = mp_idset_add(&seen, id->valuestring);
                if (added == 0) {
                    list_id(report, "duplicate", id->valuestring, &st->duplicates, max_listed);
                } else {
                    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
                    if (e && !cJSON_IsNull(e)) st->errors++;
                    if (requests && !mp_idset_has(&wanted, id->valuestring))
                        list_id(report, "unknown", id->valuestring, &st->unknown, max_listed);
                    st->records++;
                    rc = mp_res_writer_put(&w, line, err);
                }
            }
            cJSON_Delete(j);
        }
        fclose(f);
    }
    free(line);
    if (rc == 0 && requests) { /* second pass over the requests: which have no result */
        mp_req_reader r;
        if (mp_req_reader_open(&r, requests, err) == 0) {
            ssize_t n;
            mp_idset listed = {0};
            while ((n = getline(&r.line, &r.line_cap, r.f)) > 0) {
                cJSON *j = cJSON_ParseWithLength(r.line, (size_t)n);
                const cJSON *id = j ? cJSON_GetObjectItemCaseSensitive(j, "custom_id") : NULL;
                if (cJSON_IsString(id) && !mp_idset_has(&seen, id->valuestring) && mp_idset_add(&listed, id->valuestring) == 1)
                    list_id(report, "missing", id->valuestring, &st->missing, max_listed);
                cJSON_Delete(j);
            }
            mp_idset_free(&listed);
            mp_req_reader_close(&r);
        } else {
            rc = -1;
        }
    }
    mp_error cerr;
    if (mp_res_writer_close(&w, &cerr) && rc == 0) rc = mp_errf(err, "%s", cerr.msg);
    mp_idset_free(&seen);
    mp_idset_free(&wanted);
    return rc;
}
