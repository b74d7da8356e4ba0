/* test_weights.c — safetensors (real PEFT adapters, checked against an independent numpy reader;
 * hand-built files with every dtype; broken files), sharded checkpoints, HF folders, llama2.c
 * checkpoints (the real stories260K) and the mp_weights abstraction over all of them. */
#include <errno.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "models/gguf.h"
#include "models/llama2c.h"
#include "models/safetensors.h"
#include "models/weights.h"
#include "test.h"

static double tensor_sum(const mp_tensor *t, const char *st_dtype) {
    int64_t n = mp_tensor_nelements(t);
    double s = 0;
    for (int64_t i = 0; i < n; i++) {
        switch (t->dtype) {
        case MP_F32: s += ((const float *)t->data)[i]; break;
        case MP_F16: s += mp_f16_to_f32(((const uint16_t *)t->data)[i]); break;
        case MP_BF16: s += mp_bf16_to_f32(((const uint16_t *)t->data)[i]); break;
        case MP_F64: s += ((const double *)t->data)[i]; break;
        case MP_I64: s += (double)((const int64_t *)t->data)[i]; break;
        case MP_I32: s += ((const int32_t *)t->data)[i]; break;
        case MP_I16: s += ((const int16_t *)t->data)[i]; break;
        case MP_I8:
            if (st_dtype && strcmp(st_dtype, "U8") == 0) s += ((const uint8_t *)t->data)[i];
            else if (st_dtype && strcmp(st_dtype, "BOOL") == 0) s += ((const uint8_t *)t->data)[i] != 0;
            else s += ((const int8_t *)t->data)[i];
            break;
        default: break;
        }
    }
    return s;
}

/* Every tensor of path matches the numpy reader: dtype, shape (reversed to ggml order), sum. Returns the
 * number of tensors compared, -1 when python is unavailable. */
static int compare_with_numpy(const char *path) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s %s/tests/ref/safetensors_sums.py '%s' 2>/dev/null", MP_PYTHON, MP_SOURCE_DIR, path);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    mp_safetensors *st;
    mp_error err;
    int rc = mp_safetensors_open(&st, path, &err);
    CHECKF(rc == 0, "%s", err.msg);
    char line[8192];
    int n = 0;
    while (rc == 0 && fgets(line, sizeof line, p)) {
        char name[1024], dt[16], shape[256];
        double sum, first;
        if (sscanf(line, "%1023s %15s %255s %lf %lf", name, dt, shape, &sum, &first) != 5) {
            /* scalar: empty shape field */
            if (sscanf(line, "%1023s %15s %lf %lf", name, dt, &sum, &first) != 4) continue;
            shape[0] = 0;
        }
        int64_t i = mp_safetensors_find(st, name);
        CHECKF(i >= 0, "%s missing", name);
        if (i < 0) continue;
        const mp_tensor *t = mp_safetensors_tensor(st, i);
        CHECK_STR(mp_safetensors_dtype_name(st, i), dt);
        int64_t sh[MP_ST_MAX_DIMS];
        int nd = mp_safetensors_shape(st, i, sh);
        char mine[256] = "";
        for (int k = 0; k < nd; k++)
            snprintf(mine + strlen(mine), sizeof mine - strlen(mine), "%s%lld", k ? "," : "", (long long)sh[k]);
        CHECK_STR(mine, shape);
        if (nd >= 1 && nd <= 4)
            for (int k = 0; k < nd; k++) CHECK_EQ_INT(t->ne[k], sh[nd - 1 - k]);
        double s = tensor_sum(t, dt);
        CHECKF((s != s && sum != sum) || fabs(s - sum) <= 1e-9 * (1 + fabs(sum)), "%s: sum %.17g vs numpy %.17g", name, s, sum);
        n++;
    }
    int st_ = pclose(p);
    if (rc == 0) mp_safetensors_free(st);
    return st_ == 0 ? n : -1;
}

/* ---------------------------------------------------------------- real PEFT adapters */

static void test_lora(const char *dir, int n_layers, int hidden, int v_out, int n_expected) {
    char path[1024];
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", mp_fixture(dir));
    mp_safetensors *st;
    mp_error err;
    int rc = mp_safetensors_open(&st, path, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (rc) return;
    CHECK_EQ_INT(mp_safetensors_n_tensors(st), n_expected);
    CHECK_STR(mp_safetensors_metadata(st, "format"), "pt");
    for (int l = 0; l < n_layers; l++) {
        char name[256];
        snprintf(name, sizeof name, "base_model.model.model.layers.%d.self_attn.q_proj.lora_A.weight", l);
        const mp_tensor *a = mp_safetensors_get(st, name);
        CHECK(a && a->dtype == MP_F32 && a->ne[0] == hidden && a->ne[1] == 8 && a->ndim == 2);
        snprintf(name, sizeof name, "base_model.model.model.layers.%d.self_attn.q_proj.lora_B.weight", l);
        const mp_tensor *bq = mp_safetensors_get(st, name);
        CHECK(bq && bq->ne[0] == 8 && bq->ne[1] == hidden);
        snprintf(name, sizeof name, "base_model.model.model.layers.%d.self_attn.v_proj.lora_B.weight", l);
        const mp_tensor *bv = mp_safetensors_get(st, name);
        CHECK(bv && bv->ne[0] == 8 && bv->ne[1] == v_out);
        if (bv) { /* trained adapters: B is not all zero */
            int nz = 0;
            for (int64_t i = 0; i < mp_tensor_nelements(bv); i++) nz |= ((const float *)bv->data)[i] != 0.0f;
            CHECK(nz);
        }
    }
    mp_safetensors_free(st);
    int n = compare_with_numpy(path);
    if (n >= 0) CHECK_EQ_INT(n, n_expected);
    else fprintf(stderr, "test_weights: python/numpy reference unavailable, skipped that comparison\n");

    /* the folder opens as a weight source too (adapter_model.safetensors) */
    mp_weights *w;
    rc = mp_weights_open(&w, mp_fixture(dir), &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (rc) return;
    CHECK(mp_weights_format_of(w) == MP_WEIGHTS_SAFETENSORS);
    CHECK_EQ_INT(mp_weights_count(w), n_expected);
    const mp_tensor *a = mp_weights_getf(w, "base_model.model.model.layers.%d.self_attn.v_proj.lora_A.weight", n_layers - 1);
    CHECK(a != NULL);
    int64_t want[2] = {hidden, 8};
    CHECK(mp_weights_require(w, "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", 2, want, &err) != NULL);
    int64_t bad[2] = {hidden, 16};
    CHECK(mp_weights_require(w, "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", 2, bad, &err) == NULL);
    char msg[256];
    snprintf(msg, sizeof msg, "adapter_model.safetensors: tensor base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight has shape [%d, 8], expected [%d, 16]", hidden, hidden);
    CHECKF(strstr(err.msg, msg) != NULL, "%s", err.msg);
    CHECK(mp_weights_require4(w, "nope.weight", 1, 1, 1, 1, &err) == NULL && strstr(err.msg, "tensor nope.weight not found"));
    int64_t any[2] = {-1, 8};
    CHECK(mp_weights_require(w, "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", 2, any, &err) != NULL);
    mp_weights_free(w);
}

/* ---------------------------------------------------------------- hand-built safetensors */

static char tmpdir[1024];

static void write_file(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f) return;
    CHECK(fwrite(p, 1, n, f) == n);
    fclose(f);
}

/* u64 header length + header + data bytes (value k at byte k, mod 251) into a heap buffer. */
static uint8_t *st_image(const char *header, size_t data_bytes, size_t *size) {
    size_t h = strlen(header);
    *size = 8 + h + data_bytes;
    uint8_t *b = malloc(*size ? *size : 1);
    uint64_t hl = h;
    memcpy(b, &hl, 8);
    memcpy(b + 8, header, h);
    for (size_t i = 0; i < data_bytes; i++) b[8 + h + i] = (uint8_t)(i % 251);
    return b;
}

static void st_bad(const char *header, size_t data_bytes, const char *want, int line) {
    size_t n;
    uint8_t *b = st_image(header, data_bytes, &n);
    mp_safetensors *st = NULL;
    mp_error err = {{0}};
    int rc = mp_safetensors_open_memory(&st, b, n, "bad.safetensors", &err);
    if (want) {
        CHECKF(rc == -1, "line %d: parsed, expected \"%s\"", line, want);
        if (rc == -1) CHECKF(strstr(err.msg, "bad.safetensors") && strstr(err.msg, want), "line %d: \"%s\"", line, err.msg);
    } else {
        CHECKF(rc == 0, "line %d: %s", line, err.msg);
    }
    mp_safetensors_free(st);
    free(b);
}
#define ST_BAD(h, n, want) st_bad((h), (n), (want), __LINE__)

static const char *all_dtypes_header =
    "{\"__metadata__\":{\"format\":\"pt\",\"note\":\"x\"},"
    "\"f32\":{\"dtype\":\"F32\",\"shape\":[3,2],\"data_offsets\":[0,24]},"
    "\"f16\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[24,32]},"
    "\"bf16\":{\"dtype\":\"BF16\",\"shape\":[2,2],\"data_offsets\":[32,40]},"
    "\"f64\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[40,48]},"
    "\"i64\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[48,64]},"
    "\"i32\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[64,72]},"
    "\"i16\":{\"dtype\":\"I16\",\"shape\":[2],\"data_offsets\":[72,76]},"
    "\"i8\":{\"dtype\":\"I8\",\"shape\":[4],\"data_offsets\":[76,80]},"
    "\"u8\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[80,84]},"
    "\"bool\":{\"dtype\":\"BOOL\",\"shape\":[4],\"data_offsets\":[84,88]},"
    "\"scalar\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[88,92]},"
    "\"conv3d\":{\"dtype\":\"F16\",\"shape\":[2,3,2,2,2],\"data_offsets\":[92,188]},"
    "\"empty\":{\"dtype\":\"F32\",\"shape\":[0,5],\"data_offsets\":[188,188]}}  ";

static void test_st_handbuilt(void) {
    size_t n;
    uint8_t *b = st_image(all_dtypes_header, 188, &n);
    char path[1200];
    snprintf(path, sizeof path, "%s/all.safetensors", tmpdir);
    write_file(path, b, n);
    mp_safetensors *st;
    mp_error err;
    int rc = mp_safetensors_open(&st, path, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (rc == 0) {
        CHECK_EQ_INT(mp_safetensors_n_tensors(st), 13);
        CHECK_EQ_INT(mp_safetensors_n_metadata(st), 2);
        CHECK_STR(mp_safetensors_metadata(st, "note"), "x");
        CHECK(mp_safetensors_metadata(st, "nope") == NULL);
        const mp_tensor *t = mp_safetensors_get(st, "f32");
        CHECK(t && t->dtype == MP_F32 && t->ne[0] == 2 && t->ne[1] == 3 && t->ndim == 2 && t->nb[1] == 8);
        CHECK(t && (const uint8_t *)t->data == (const uint8_t *)mp_safetensors_tensor(st, 0)->data);
        size_t off = mp_safetensors_data_offset(st);
        CHECK_EQ_INT(off, 8 + strlen(all_dtypes_header));
        t = mp_safetensors_get(st, "bf16");
        CHECK(t && t->dtype == MP_BF16 && ((const uint8_t *)t->data)[0] == 32); /* used in place */
        t = mp_safetensors_get(st, "u8");
        CHECK(t && t->dtype == MP_I8 && strcmp(mp_safetensors_dtype_name(st, mp_safetensors_find(st, "u8")), "U8") == 0);
        t = mp_safetensors_get(st, "scalar");
        int64_t sh[MP_ST_MAX_DIMS];
        CHECK(t && t->ne[0] == 1 && mp_tensor_nelements(t) == 1);
        CHECK_EQ_INT(mp_safetensors_shape(st, mp_safetensors_find(st, "scalar"), sh), 0);
        t = mp_safetensors_get(st, "conv3d"); /* [O=2, I=3, T=2, H=2, W=2] -> ne {W*H=4, T=2, I=3, O=2} */
        CHECK(t && t->ne[0] == 4 && t->ne[1] == 2 && t->ne[2] == 3 && t->ne[3] == 2 && mp_tensor_nelements(t) == 48);
        CHECK_EQ_INT(mp_safetensors_shape(st, mp_safetensors_find(st, "conv3d"), sh), 5);
        CHECK(sh[0] == 2 && sh[1] == 3 && sh[4] == 2);
        t = mp_safetensors_get(st, "empty");
        CHECK(t && mp_tensor_nelements(t) == 0);
        mp_safetensors_free(st);
    }
    int k = compare_with_numpy(path);
    if (k >= 0) CHECK_EQ_INT(k, 13);
    {
        /* this header leaves the data misaligned: such tensors are copied; padded to 8 (as HF writers do),
         * everything is used in place */
        mp_safetensors *s2;
        CHECK(mp_safetensors_open_memory(&s2, b, n, "mis.safetensors", &err) == 0);
        CHECK(mp_safetensors_n_copied(s2) > 0);
        CHECK(((uintptr_t)mp_safetensors_get(s2, "f64")->data) % 8 == 0);
        mp_safetensors_free(s2);
        char padded[4096];
        size_t hl = strlen(all_dtypes_header);
        memcpy(padded, all_dtypes_header, hl);
        while ((8 + hl) % 8) padded[hl++] = ' ';
        padded[hl] = 0;
        size_t n2;
        uint8_t *b2 = st_image(padded, 188, &n2);
        uint8_t *al = mp_aligned_alloc(n2);
        memcpy(al, b2, n2);
        CHECK(mp_safetensors_open_memory(&s2, al, n2, "pad.safetensors", &err) == 0);
        CHECK_EQ_INT(mp_safetensors_n_copied(s2), 0);
        CHECK((const uint8_t *)mp_safetensors_get(s2, "i64")->data == al + 8 + hl + 48);
        mp_safetensors_free(s2);
        mp_aligned_free(al);
        free(b2);
    }
    /* every truncation fails cleanly */
    int ok = 1;
    for (size_t cut = 0; cut < n; cut++) {
        uint8_t *c = malloc(cut ? cut : 1);
        memcpy(c, b, cut);
        mp_safetensors *s2 = NULL;
        if (mp_safetensors_open_memory(&s2, c, cut, "cut.safetensors", &err) == 0) {
            ok = 0;
            mp_safetensors_free(s2);
        }
        free(c);
    }
    CHECK(ok);
    free(b);

    ST_BAD("{}", 0, NULL);
    ST_BAD("[1,2]", 0, "not start with '{'");
    ST_BAD("{\"a\":", 0, "not valid JSON");
    ST_BAD("{} x", 0, "trailing bytes");
    ST_BAD("{\"a\":1}", 0, "not an object");
    ST_BAD("{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "missing \"dtype\"");
    ST_BAD("{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, "missing \"shape\"");
    ST_BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4, "data_offsets");
    ST_BAD("{\"a\":{\"dtype\":\"F8_E4M3\",\"shape\":[1],\"data_offsets\":[0,1]}}", 4, "dtype F8_E4M3");
    ST_BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, "not a non-negative integer");
    ST_BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4, "not a non-negative integer");
    ST_BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[\"1\"],\"data_offsets\":[0,4]}}", 4, "not a non-negative integer");
    ST_BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 8, "needs 8");
    ST_BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, "begin <= end");
    ST_BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, "outside the 4-byte data section");
    ST_BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
           "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "overlap");
    ST_BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
           "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "appears twice");
    ST_BAD("{\"\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "empty or non-UTF-8 name");
    ST_BAD("{\"a\xff\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "empty or non-UTF-8 name");
    ST_BAD("{\"__metadata__\":{\"k\":1}}", 0, "not a string");
    ST_BAD("{\"__metadata__\":[]}", 0, "__metadata__ is not an object");
    ST_BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4, "9 dimensions");
    ST_BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,4]}}", 4, "overflows");
    ST_BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[0,4294967296,4294967296],\"data_offsets\":[0,0]}}", 0, "overflows");
    ST_BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[1099511627776,4194304],\"data_offsets\":[0,4]}}", 4, "overflows");
    ST_BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[1e300],\"data_offsets\":[0,4]}}", 4, "not a non-negative integer");
    /* header length beyond the file, and a tiny file */
    {
        uint8_t img[16] = {0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, '{', '}'};
        mp_safetensors *s2;
        CHECK(mp_safetensors_open_memory(&s2, img, 10, "bad.safetensors", &err) == -1 && strstr(err.msg, "exceeds"));
        CHECK(mp_safetensors_open_memory(&s2, img, 5, "bad.safetensors", &err) == -1 && strstr(err.msg, "only 5 bytes"));
    }
    /* a Git LFS pointer in place of the weights */
    snprintf(path, sizeof path, "%s/pointer.safetensors", tmpdir);
    const char *ptr = "version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 123\n";
    write_file(path, ptr, strlen(ptr));
    CHECK(mp_safetensors_open(&st, path, &err) == -1 && strstr(err.msg, "Git LFS pointer"));
    mp_weights *w;
    CHECK(mp_weights_open(&w, path, &err) == -1 && strstr(err.msg, "Git LFS pointer"));
}

/* ---------------------------------------------------------------- sharded checkpoints and folders */

static void test_sharded(void) {
    char dir[1200], p[1400];
    snprintf(dir, sizeof dir, "%s/sharded", tmpdir);
    mkdir(dir, 0755);
    const char *h1 = "{\"model.embed_tokens.weight\":{\"dtype\":\"BF16\",\"shape\":[5,4],\"data_offsets\":[0,40]},"
                     "\"model.layers.0.mlp.up_proj.weight\":{\"dtype\":\"F32\",\"shape\":[3,4],\"data_offsets\":[40,88]}}";
    const char *h2 = "{\"model.norm.weight\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                     "\"lm_head.weight\":{\"dtype\":\"F16\",\"shape\":[5,4],\"data_offsets\":[16,56]}}";
    size_t n1, n2;
    uint8_t *b1 = st_image(h1, 88, &n1), *b2 = st_image(h2, 56, &n2);
    snprintf(p, sizeof p, "%s/model-00001-of-00002.safetensors", dir);
    write_file(p, b1, n1);
    snprintf(p, sizeof p, "%s/model-00002-of-00002.safetensors", dir);
    write_file(p, b2, n2);
    free(b1);
    free(b2);
    const char *index =
        "{\"metadata\":{\"total_size\":144},\"weight_map\":{"
        "\"lm_head.weight\":\"model-00002-of-00002.safetensors\","
        "\"model.embed_tokens.weight\":\"model-00001-of-00002.safetensors\","
        "\"model.layers.0.mlp.up_proj.weight\":\"model-00001-of-00002.safetensors\","
        "\"model.norm.weight\":\"model-00002-of-00002.safetensors\"}}";
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    write_file(p, index, strlen(index));
    mp_weights *w;
    mp_error err;
    for (int pass = 0; pass < 2; pass++) {
        int rc = mp_weights_open(&w, pass ? dir : p, &err);
        CHECKF(rc == 0, "%s", err.msg);
        if (rc) continue;
        CHECK_EQ_INT(mp_weights_count(w), 4);
        CHECK_EQ_INT(mp_weights_n_files(w), 2);
        const mp_tensor *e = mp_weights_get(w, "model.embed_tokens.weight");
        CHECK(e && e->dtype == MP_BF16 && e->ne[0] == 4 && e->ne[1] == 5);
        const mp_tensor *lm = mp_weights_get(w, "lm_head.weight");
        CHECK(lm && lm->dtype == MP_F16 && ((const uint8_t *)lm->data)[0] == 16);
        int64_t i;
        for (i = 0; i < mp_weights_count(w); i++)
            if (strcmp(mp_weights_name(w, i), "lm_head.weight") == 0) break;
        CHECK(i < 4 && strstr(mp_weights_file(w, mp_weights_file_of(w, i)), "model-00002-of-00002.safetensors"));
        int64_t ne[2] = {4, 3};
        CHECK(mp_weights_require(w, "model.layers.0.mlp.up_proj.weight", 2, ne, &err) != NULL);
        int64_t ne_bad[2] = {3, 4};
        CHECK(mp_weights_require(w, "model.layers.0.mlp.up_proj.weight", 2, ne_bad, &err) == NULL &&
              strstr(err.msg, "model-00001-of-00002.safetensors: tensor model.layers.0.mlp.up_proj.weight has shape [4, 3], expected [3, 4]"));
        mp_weights_free(w);
    }
    /* an index naming the wrong shard, a missing shard, an unsafe path */
    const char *wrong = "{\"weight_map\":{\"lm_head.weight\":\"model-00001-of-00002.safetensors\"}}";
    snprintf(p, sizeof p, "%s/wrong.index.json", dir);
    write_file(p, wrong, strlen(wrong));
    CHECK(mp_weights_open(&w, p, &err) == -1 && strstr(err.msg, "does not contain it"));
    const char *missing = "{\"weight_map\":{\"x\":\"model-00003-of-00003.safetensors\"}}";
    write_file(p, missing, strlen(missing));
    CHECK(mp_weights_open(&w, p, &err) == -1 && strstr(err.msg, "is missing"));
    const char *unsafe = "{\"weight_map\":{\"x\":\"../etc/passwd\"}}";
    write_file(p, unsafe, strlen(unsafe));
    CHECK(mp_weights_open(&w, p, &err) == -1 && strstr(err.msg, "unsafe"));
    const char *nomap = "{\"metadata\":{}}";
    write_file(p, nomap, strlen(nomap));
    CHECK(mp_weights_open(&w, p, &err) == -1 && strstr(err.msg, "weight_map"));
    /* duplicate tensor across shards */
    snprintf(p, sizeof p, "%s/dup", tmpdir);
    mkdir(p, 0755);
    const char *hd = "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
    uint8_t *bd = st_image(hd, 4, &n1);
    char q[1600];
    snprintf(q, sizeof q, "%s/a.safetensors", p);
    write_file(q, bd, n1);
    snprintf(q, sizeof q, "%s/b.safetensors", p);
    write_file(q, bd, n1);
    free(bd);
    CHECK(mp_weights_open(&w, p, &err) == -1 && strstr(err.msg, "2 .safetensors files"));
    const char *dupidx = "{\"weight_map\":{\"x\":\"a.safetensors\",\"y\":\"b.safetensors\"}}";
    snprintf(q, sizeof q, "%s/model.safetensors.index.json", p);
    write_file(q, dupidx, strlen(dupidx));
    CHECK(mp_weights_open(&w, p, &err) == -1 && strstr(err.msg, "tensor x appears twice"));

    /* real HF folders without weights: LFS pointers and pickles give clear errors */
    CHECK(mp_weights_open(&w, mp_fixture("hf/openai--whisper-base"), &err) == -1 && strstr(err.msg, "Git LFS pointer"));
    CHECK(mp_weights_open(&w, mp_fixture("hf/Qwen--Qwen2.5-VL-7B-Instruct"), &err) == -1 &&
          strstr(err.msg, "of-00005.safetensors is only a Git LFS pointer"));
    CHECK(mp_weights_open(&w, mp_fixture("hf/Qwen--Qwen2-VL-2B-Instruct"), &err) == -1 && strstr(err.msg, "is missing"));
    CHECK(mp_weights_open(&w, mp_fixture("hf/cognitivecomputations--dolphin-2.5-mixtral-8x7b"), &err) == -1 &&
          strstr(err.msg, "no model weights"));
}

/* ---------------------------------------------------------------- llama2.c */

static void test_stories260k(void) {
    const char *path = mp_fixture("llm/stories260K.bin");
    mp_llama2c_config c;
    mp_error err;
    int rc = mp_llama2c_read_config(path, &c, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (rc) return;
    /* the manifest's header 64/172/5/8/4/512/512, shared classifier, GQA 8:4 */
    CHECK(c.version == 0 && c.dim == 64 && c.hidden_dim == 172 && c.n_layers == 5 && c.n_heads == 8 &&
          c.n_kv_heads == 4 && c.vocab_size == 512 && c.seq_len == 512 && c.shared_classifier == 1);
    CHECK(c.head_size == 8 && c.kv_dim == 32 && c.file_size == 1056540);
    CHECK(mp_llama2c_sniff(path) == 1);
    CHECK(mp_model_sniff(path, &err) == MP_KIND_LLAMA2C);
    mp_weights *w;
    rc = mp_weights_open(&w, path, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (rc) return;
    CHECK(mp_weights_format_of(w) == MP_WEIGHTS_LLAMA2C);
    CHECK(mp_weights_llama2c(w) && mp_weights_llama2c(w)->n_kv_heads == 4);
    CHECK_EQ_INT(mp_weights_count(w), 2 + 5 * 9); /* no output.weight: tied */
    CHECK(!mp_weights_has(w, "output.weight"));
    /* file offsets follow run.c's memory_map_weights: check a few views against the raw file bytes */
    FILE *f = fopen(path, "rb");
    uint8_t *raw = malloc(c.file_size);
    CHECK(f && fread(raw, 1, c.file_size, f) == c.file_size);
    if (f) fclose(f);
    const int64_t D = 64, H = 172, KV = 32, V = 512, L = 5;
    struct { const char *name; int64_t ne0, ne1; int64_t off_floats; } cases[] = {
        {"token_embd.weight", D, V, 0},
        {"blk.0.attn_norm.weight", D, 1, V * D},
        {"blk.0.attn_q.weight", D, D, V * D + L * D},
        {"blk.1.attn_k.weight", D, KV, V * D + L * D + L * D * D + D * KV},
        {"blk.4.attn_v.weight", D, KV, V * D + L * D + L * D * D + L * D * KV + 4 * D * KV},
        {"blk.2.attn_output.weight", D, D, V * D + L * D + L * D * D + 2 * L * D * KV + 2 * D * D},
        {"blk.3.ffn_norm.weight", D, 1, V * D + L * D + 2 * L * D * D + 2 * L * D * KV + 3 * D},
        {"blk.0.ffn_gate.weight", D, H, V * D + 2 * L * D + 2 * L * D * D + 2 * L * D * KV},
        {"blk.1.ffn_down.weight", H, D, V * D + 2 * L * D + 2 * L * D * D + 2 * L * D * KV + L * D * H + D * H},
        {"blk.4.ffn_up.weight", D, H, V * D + 2 * L * D + 2 * L * D * D + 2 * L * D * KV + 2 * L * D * H + 4 * D * H},
        {"output_norm.weight", D, 1, V * D + 2 * L * D + 2 * L * D * D + 2 * L * D * KV + 3 * L * D * H},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const mp_tensor *t = mp_weights_get(w, cases[i].name);
        CHECKF(t != NULL, "%s", cases[i].name);
        if (!t) continue;
        CHECK(t->dtype == MP_F32 && t->ne[0] == cases[i].ne0 && t->ne[1] == cases[i].ne1);
        size_t off = 28 + 4 * (size_t)cases[i].off_floats;
        CHECKF(memcmp(t->data, raw + off, (size_t)mp_tensor_nbytes(t)) == 0, "%s", cases[i].name);
    }
    /* after the final norm come exactly the two RoPE tables: seq_len * head_size / 2 floats each */
    const mp_tensor *on = mp_weights_get(w, "output_norm.weight");
    const mp_tensor *te = mp_weights_get(w, "token_embd.weight");
    if (on && te)
        CHECK(28 + ((const uint8_t *)on->data - (const uint8_t *)te->data) + 4 * D + 4 * 512 * 8 == (ptrdiff_t)c.file_size);
    /* rmsnorm weights of a trained model are not all zero or one */
    if (on) {
        int varied = 0;
        for (int i = 1; i < D; i++) varied |= ((const float *)on->data)[i] != ((const float *)on->data)[0];
        CHECK(varied);
    }
    free(raw);
    mp_weights_free(w);
}

/* Small llama2.c files written here: v0 with a separate classifier, v1, and broken headers. */
static void test_llama2c_variants(void) {
    const int32_t dim = 8, hid = 12, L = 2, nh = 2, nkv = 1, V = 10, seq = 4;
    const int64_t head = dim / nh, kv = head * nkv;
    int64_t nf = V * dim + 2 * L * dim + 2 * L * dim * dim + 2 * L * dim * kv + 3 * L * dim * hid + dim;
    int64_t v0_floats = nf + seq * head + V * dim; /* RoPE tables + classifier */
    size_t size0 = 28 + 4 * (size_t)v0_floats;
    uint8_t *b = calloc(1, size0 + 256 + 4 * (size_t)nf);
    int32_t hdr[7] = {dim, hid, L, nh, nkv, -V, seq};
    memcpy(b, hdr, 28);
    float *fp = (float *)(b + 28);
    for (int64_t i = 0; i < v0_floats; i++) fp[i] = (float)i;
    char p[1200];
    snprintf(p, sizeof p, "%s/v0.bin", tmpdir);
    write_file(p, b, size0);
    mp_weights *w;
    mp_error err;
    mp_llama2c_config c;
    int rc = mp_llama2c_open_weights(&w, p, &c, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (rc == 0) {
        CHECK(c.shared_classifier == 0 && c.vocab_size == V);
        const mp_tensor *o = mp_weights_get(w, "output.weight");
        CHECK(o && o->ne[0] == dim && o->ne[1] == V && ((const float *)o->data)[0] == (float)(nf + seq * head));
        const mp_tensor *k1 = mp_weights_get(w, "blk.1.attn_k.weight");
        CHECK(k1 && ((const float *)k1->data)[0] == (float)(V * dim + L * dim + L * dim * dim + dim * kv));
        mp_weights_free(w);
    }
    /* one byte short or long: the size check names both sizes */
    write_file(p, b, size0 - 1);
    CHECK(mp_llama2c_open_weights(&w, p, NULL, &err) == -1 && strstr(err.msg, "but the file has"));
    CHECK(mp_llama2c_sniff(p) == 0);
    int32_t bad[7] = {dim, hid, L, 3, nkv, V, seq};
    memcpy(b, bad, 28);
    write_file(p, b, size0);
    CHECK(mp_llama2c_read_config(p, &c, &err) == -1 && strstr(err.msg, "inconsistent"));
    int32_t neg[7] = {dim, hid, -L, nh, nkv, V, seq};
    memcpy(b, neg, 28);
    write_file(p, b, size0);
    CHECK(mp_llama2c_read_config(p, &c, &err) == -1 && strstr(err.msg, "non-positive"));
    int32_t huge[7] = {2147483644, 2147483647, 2147483647, 2, 1, 2147483647, 2147483647};
    memcpy(b, huge, 28);
    write_file(p, b, size0);
    CHECK(mp_llama2c_read_config(p, &c, &err) == -1 && (strstr(err.msg, "overflow") || strstr(err.msg, "implies")));
    write_file(p, b, 10);
    CHECK(mp_llama2c_read_config(p, &c, &err) == -1 && strstr(err.msg, "too small"));

    /* v1: 256-byte header, norms first, shared classifier */
    memset(b, 0, 256);
    uint32_t magic = MP_LLAMA2C_MAGIC;
    int32_t ver = 1, h1[7] = {dim, hid, L, nh, nkv, V, seq};
    memcpy(b, &magic, 4);
    memcpy(b + 4, &ver, 4);
    memcpy(b + 8, h1, 28);
    b[36] = 1;
    fp = (float *)(b + 256);
    for (int64_t i = 0; i < nf; i++) fp[i] = (float)i;
    snprintf(p, sizeof p, "%s/v1.bin", tmpdir);
    write_file(p, b, 256 + 4 * (size_t)nf);
    CHECK(mp_model_sniff(p, &err) == MP_KIND_LLAMA2C);
    rc = mp_weights_open(&w, p, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (rc == 0) {
        CHECK(mp_weights_llama2c(w)->version == 1);
        const mp_tensor *t = mp_weights_get(w, "blk.1.ffn_norm.weight");
        CHECK(t && ((const float *)t->data)[0] == (float)(3 * dim));
        t = mp_weights_get(w, "token_embd.weight");
        CHECK(t && ((const float *)t->data)[0] == (float)(2 * L * dim + dim));
        CHECK(!mp_weights_has(w, "output.weight"));
        mp_weights_free(w);
    }
    ver = 2;
    memcpy(b + 4, &ver, 4);
    write_file(p, b, 256 + 4 * (size_t)nf);
    CHECK(mp_weights_open(&w, p, &err) == -1 && strstr(err.msg, "version 2"));
    free(b);
}

/* ---------------------------------------------------------------- GGUF through mp_weights */

static void test_gguf_source(void) {
    char p[1200];
    snprintf(p, sizeof p, "%s/tiny.gguf", tmpdir);
    mp_gguf_writer *gw = mp_gguf_writer_new();
    mp_gguf_set_str(gw, "general.architecture", "llama");
    float d[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    int64_t ne[2] = {4, 2};
    mp_gguf_writer_add_tensor(gw, "blk.0.attn_q.weight", MP_F32, 2, ne, d);
    mp_error err;
    CHECK(mp_gguf_writer_write(gw, p, &err) == 0);
    mp_gguf_writer_free(gw);
    mp_weights *w;
    int rc = mp_weights_open(&w, p, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (rc) return;
    CHECK(mp_weights_format_of(w) == MP_WEIGHTS_GGUF && mp_weights_gguf(w) != NULL);
    const mp_tensor *t = mp_weights_getf(w, "blk.%d.attn_q.weight", 0);
    CHECK(t && ((const float *)t->data)[7] == 8.0f);
    CHECK(mp_weights_require4(w, "blk.0.attn_q.weight", 4, 2, 1, 1, &err) != NULL);
    CHECK(mp_weights_require4(w, "blk.0.attn_q.weight", 4, 3, 1, 1, &err) == NULL &&
          strstr(err.msg, "tiny.gguf: tensor blk.0.attn_q.weight has shape [4, 2], expected [4, 3]"));
    mp_weights_free(w);
    CHECK(mp_model_sniff(mp_fixture("whisper/for-tests-ggml-tiny.bin"), &err) == MP_KIND_GGML_BIN);
    CHECK(mp_weights_open(&w, mp_fixture("whisper/for-tests-ggml-tiny.bin"), &err) == -1 && strstr(err.msg, "whisper.cpp"));
    CHECK(mp_weights_open(&w, "/nonexistent.gguf", &err) == -1 && strstr(err.msg, "cannot open"));
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "%s/test_weights_tmp", MP_BINARY_DIR);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not clear %s\n", tmpdir);
    mkdir(tmpdir, 0755);
    test_st_handbuilt();
    test_llama2c_variants();
    test_gguf_source();
    if (access(mp_fixture("llm/stories260K.bin"), R_OK) != 0) {
        fprintf(stderr, "test_weights: fixtures absent, skipping the real-file part\n");
        int r = mp_test_result("test_weights");
        return r ? r : MP_TEST_SKIP;
    }
    test_sharded();
    test_lora("hf/lora-qwen2.5-0.5b-instruct", 24, 896, 128, 96);
    test_lora("hf/lora-smollm2-360m-instruct-ml-tutor", 32, 960, 320, 128);
    test_stories260k();
    return mp_test_result("test_weights");
}
