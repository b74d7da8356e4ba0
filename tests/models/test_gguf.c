/* test_gguf.c — GGUF reader on the real llama.cpp vocab files, writer->reader round trip with every
 * dtype and value type, and hand-built broken files (each must fail with one clear error, never crash:
 * run under ASan; every broken image is an exact-size heap copy so an over-read is caught). */
#include <dirent.h>
#include <stdint.h>
#include <unistd.h>

#include "models/gguf.h"
#include "test.h"

/* ---------------------------------------------------------------- real fixtures */

typedef struct {
    const char *file;
    int n_kv;
    const char *arch, *model, *pre; /* pre NULL: key absent */
    int n_tokens, n_merges;         /* n_merges -1: key absent */
    int has_scores;
    long bos, eos;                  /* -1: key absent */
    int add_bos;                    /* -1: key absent */
} vocab_case;

/* Values from HF_GGUF_MANIFEST.md (checked there with an independent parser). */
static const vocab_case vocab_cases[] = {
    {"ggml-vocab-baichuan.gguf", 18, "baichuan", "llama", NULL, 64000, -1, 1, 1, 2, -1},
    {"ggml-vocab-bert-bge.gguf", 20, "bert", "bert", "bert-bge", 30522, -1, 0, -1, -1, -1},
    {"ggml-vocab-deepseek-coder.gguf", 25, "llama", "gpt2", "deepseek-coder", 32256, 31757, 0, 32013, 32014, 1},
    {"ggml-vocab-deepseek-llm.gguf", 23, "llama", "gpt2", "deepseek-llm", 102400, 99757, 0, 100000, 100001, 1},
    {"ggml-vocab-falcon.gguf", 18, "falcon", "gpt2", "falcon", 65024, 64784, 0, 11, 11, -1},
    {"ggml-vocab-gpt-2.gguf", 16, "gpt2", "gpt2", "gpt-2", 50257, 50000, 0, 50256, 50256, -1},
    {"ggml-vocab-gpt-neox.gguf", 17, "gptneox", "gpt2", NULL, 50432, 50009, 0, 0, 0, -1},
    {"ggml-vocab-llama-spm.gguf", 22, "llama", "llama", "default", 32000, -1, 1, 1, 2, 1},
    {"ggml-vocab-mpt.gguf", 17, "mpt", "gpt2", "mpt", 50432, 50009, 0, 0, 0, -1},
    {"ggml-vocab-phi-3.gguf", 26, "phi3", "llama", "default", 32064, -1, 1, 1, 32000, 1},
    {"ggml-vocab-refact.gguf", 18, "refact", "gpt2", "refact", 49216, 48891, 0, 0, 0, -1},
    {"ggml-vocab-starcoder.gguf", 19, "starcoder2", "gpt2", "starcoder", 49152, 48872, 0, 0, 0, -1},
};

static int have_fixtures(void) { return access(mp_fixture("gguf/ggml-vocab-llama-spm.gguf"), R_OK) == 0; }

static void test_vocab_case(const vocab_case *c) {
    char rel[256];
    snprintf(rel, sizeof rel, "gguf/%s", c->file);
    mp_gguf *g;
    mp_error err = {{0}};
    int rc = mp_gguf_open(&g, mp_fixture(rel), &err);
    CHECKF(rc == 0, "%s: %s", c->file, err.msg);
    if (rc) return;
    CHECK_EQ_INT(mp_gguf_version(g), 3);
    CHECK_EQ_INT(mp_gguf_n_tensors(g), 0);
    CHECK_EQ_INT(mp_gguf_n_kv(g), c->n_kv);
    CHECK_EQ_INT(mp_gguf_alignment(g), 32);
    const char *s = NULL;
    CHECK(mp_gguf_get_str(g, "general.architecture", &s, &err) == 0 && s && strcmp(s, c->arch) == 0);
    CHECK(mp_gguf_get_str(g, "tokenizer.ggml.model", &s, &err) == 0 && s && strcmp(s, c->model) == 0);
    if (c->pre) {
        CHECKF(mp_gguf_get_str(g, "tokenizer.ggml.pre", &s, &err) == 0 && strcmp(s, c->pre) == 0, "%s", c->file);
    } else {
        CHECK(!mp_gguf_has(g, "tokenizer.ggml.pre"));
    }
    CHECKF(mp_gguf_arr_len(g, "tokenizer.ggml.tokens", &err) == c->n_tokens, "%s: %s", c->file, err.msg);
    if (c->n_merges >= 0)
        CHECKF(mp_gguf_arr_len(g, "tokenizer.ggml.merges", &err) == c->n_merges, "%s", c->file);
    else
        CHECK(!mp_gguf_has(g, "tokenizer.ggml.merges"));
    CHECK_EQ_INT(mp_gguf_has(g, "tokenizer.ggml.scores"), c->has_scores);
    uint32_t u = 0;
    if (c->bos >= 0) {
        CHECKF(mp_gguf_get_u32(g, "tokenizer.ggml.bos_token_id", &u, &err) == 0 && u == c->bos, "%s bos %u", c->file, u);
    } else {
        CHECK(!mp_gguf_has(g, "tokenizer.ggml.bos_token_id"));
    }
    if (c->eos >= 0) {
        CHECKF(mp_gguf_get_u32(g, "tokenizer.ggml.eos_token_id", &u, &err) == 0 && u == c->eos, "%s eos %u", c->file, u);
    }
    int b = -1;
    if (c->add_bos >= 0) {
        CHECK(mp_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &b, &err) == 0 && b == c->add_bos);
    }
    /* tokens and token types decode consistently for the whole vocabulary */
    int64_t n = c->n_tokens;
    const char **toks = calloc((size_t)n, sizeof *toks);
    int32_t *types = calloc((size_t)n, sizeof *types);
    CHECK(mp_gguf_get_arr_str(g, "tokenizer.ggml.tokens", toks, NULL, (uint64_t)n, &err) == 0);
    if (mp_gguf_has(g, "tokenizer.ggml.token_type"))
        CHECKF(mp_gguf_get_arr_i32(g, "tokenizer.ggml.token_type", types, (uint64_t)n, &err) == 0, "%s", err.msg);
    if (c->has_scores) {
        float *sc = calloc((size_t)n, sizeof *sc);
        CHECK(mp_gguf_get_arr_f32(g, "tokenizer.ggml.scores", sc, (uint64_t)n, &err) == 0);
        free(sc);
    }
    if (strcmp(c->file, "ggml-vocab-llama-spm.gguf") == 0) {
        /* llama-spm: 31741 normal, 256 byte, 2 control, 1 unknown (manifest); the Llama-2 vocabulary */
        int cnt[8] = {0};
        for (int64_t i = 0; i < n; i++)
            if (types[i] >= 0 && types[i] < 8) cnt[types[i]]++;
        CHECK_EQ_INT(cnt[1], 31741);
        CHECK_EQ_INT(cnt[6], 256);
        CHECK_EQ_INT(cnt[3], 2);
        CHECK_EQ_INT(cnt[2], 1);
        CHECK_STR(toks[0], "<unk>");
        CHECK_STR(toks[1], "<s>");
        CHECK_STR(toks[2], "</s>");
        CHECK_STR(toks[3], "<0x00>");
        CHECK_STR(toks[29871], "\xe2\x96\x81"); /* "▁" */
        const mp_gguf_value *arr;
        uint64_t len;
        CHECK(mp_gguf_get_arr(g, "tokenizer.ggml.tokens", &arr, &len, &err) == 0 && len == 32000);
        uint64_t l = 0;
        CHECK(mp_gguf_arr_str(arr, 1, &l) && l == 3);
        CHECK(mp_gguf_arr_str(arr, 32000, NULL) == NULL);
    }
    if (strcmp(c->file, "ggml-vocab-gpt-2.gguf") == 0) {
        CHECK_STR(toks[50256], "<|endoftext|>");
        CHECK_STR(toks[0], "!");
        const mp_gguf_value *m;
        CHECK(mp_gguf_get_arr(g, "tokenizer.ggml.merges", &m, NULL, &err) == 0);
        CHECK_STR(mp_gguf_arr_str(m, 0, NULL), "\xc4\xa0 t"); /* "Ġ t", GPT-2's first merge */
        /* the f32 layer-norm epsilon survives (the manifest's check for undamaged files) */
        float eps = 0;
        CHECK(mp_gguf_get_f32(g, "gpt2.attention.layer_norm_epsilon", &eps, &err) == 0);
        CHECK_NEAR(eps, 1e-5, 1e-9);
        char key[96];
        CHECK_STR(mp_gguf_arch_key(g, "attention.layer_norm_epsilon", key, sizeof key),
                  "gpt2.attention.layer_norm_epsilon");
    }
    if (strcmp(c->file, "ggml-vocab-phi-3.gguf") == 0) {
        const char *tmpl = NULL;
        CHECK(mp_gguf_get_str(g, "tokenizer.chat_template", &tmpl, &err) == 0 && strstr(tmpl, "<|assistant|>"));
        CHECK_STR(toks[32000], "<|endoftext|>");
    }
    free(toks);
    free(types);

    /* typed getters: a clear error on a type mismatch or a missing key, naming the file */
    rc = mp_gguf_get_u32(g, "general.architecture", &u, &err);
    CHECK(rc == -1 && strstr(err.msg, c->file) && strstr(err.msg, "general.architecture is string, expected u32"));
    rc = mp_gguf_get_str(g, "tokenizer.ggml.tokens", &s, &err);
    CHECK(rc == -1 && strstr(err.msg, "is array[string], expected string"));
    rc = mp_gguf_get_u32(g, "no.such.key", &u, &err);
    CHECK(rc == -1 && strstr(err.msg, "no.such.key not found") && strstr(err.msg, c->file));
    uint32_t d = 7;
    CHECK(mp_gguf_get_u32_or(g, "no.such.key", 42, &d, &err) == 0 && d == 42);
    CHECK(mp_gguf_get_u32_or(g, "general.architecture", 42, &d, &err) == -1);
    int32_t i32s[3];
    rc = mp_gguf_get_arr_i32(g, "tokenizer.ggml.tokens", i32s, 3, &err);
    CHECK(rc == -1 && strstr(err.msg, "expected array[i32]"));
    mp_gguf_free(g);
}

static void test_all_fixture_files(void) {
    const char *dir = mp_fixture("gguf");
    DIR *d = opendir(dir);
    CHECK(d != NULL);
    if (!d) return;
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l < 5 || strcmp(e->d_name + l - 5, ".gguf") != 0) continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        mp_gguf *g;
        mp_error err;
        int rc = mp_gguf_open(&g, path, &err);
        CHECKF(rc == 0, "%s", err.msg);
        if (rc == 0) {
            /* every string value decodes; the whole KV section was consumed up to the file end */
            CHECK(mp_gguf_n_kv(g) > 10);
            mp_gguf_free(g);
        }
        n++;
    }
    closedir(d);
    CHECK_EQ_INT(n, 12);
}

/* Truncating a real file anywhere must give an error (never a crash or an over-read). */
static void test_fixture_truncations(void) {
    FILE *f = fopen(mp_fixture("gguf/ggml-vocab-llama-spm.gguf"), "rb");
    if (!f) return;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *all = malloc((size_t)size);
    CHECK(fread(all, 1, (size_t)size, f) == (size_t)size);
    fclose(f);
    unsigned long long s = 12345;
    int failures_ok = 0;
    for (int k = 0; k < 64; k++) {
        size_t cut = k < 40 ? (size_t)k : (size_t)(mp_test_rng(&s) % (unsigned long long)size);
        uint8_t *c = malloc(cut ? cut : 1);
        memcpy(c, all, cut);
        mp_gguf *g;
        mp_error err;
        if (mp_gguf_open_memory(&g, c, cut, "cut.gguf", &err) != 0 && strstr(err.msg, "cut.gguf")) failures_ok++;
        else if (g) mp_gguf_free(g);
        free(c);
    }
    CHECK_EQ_INT(failures_ok, 64);
    free(all);
}

/* ---------------------------------------------------------------- writer -> reader round trip */

static void fill_random(void *p, size_t n, unsigned long long *s) {
    uint8_t *b = p;
    for (size_t i = 0; i < n; i++) b[i] = (uint8_t)(mp_test_rng(s) >> 24);
}

static int value_equal(const mp_gguf_value *a, const mp_gguf_value *b) {
    if (a->type != b->type || a->n != b->n) return 0;
    size_t sz = mp_gguf_type_size((int)a->type);
    if (sz) return memcmp(a->raw, b->raw, sz) == 0;
    if (a->type == MP_GGUF_STRING) return memcmp(a->str, b->str, (size_t)a->n) == 0 && a->str[a->n] == 0;
    if (a->elem_type != b->elem_type) return 0;
    size_t esz = mp_gguf_type_size((int)a->elem_type);
    if (esz) return a->n == 0 || memcmp(a->raw, b->raw, (size_t)a->n * esz) == 0;
    for (uint64_t i = 0; i < a->n; i++)
        if (!value_equal(&a->elems[i], &b->elems[i])) return 0;
    return 1;
}

static int fill_cb(void *ctx, int64_t index, void *buf, size_t nbytes, mp_error *err) {
    unsigned long long s = (unsigned long long)(uintptr_t)ctx + (unsigned long long)index;
    fill_random(buf, nbytes, &s);
    return 0;
}

static uint8_t *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)sz + 1);
    *n = fread(b, 1, (size_t)sz, f);
    fclose(f);
    return b;
}

static void test_round_trip(uint32_t version, uint32_t alignment) {
    unsigned long long s = 0x9e3779b97f4a7c15ull ^ version ^ alignment;
    char path[256], path2[256];
    snprintf(path, sizeof path, "%s/test_gguf_rt_v%u_a%u.gguf", MP_BINARY_DIR, version, alignment);
    snprintf(path2, sizeof path2, "%s/test_gguf_rt_v%u_a%u_copy.gguf", MP_BINARY_DIR, version, alignment);

    mp_gguf_writer *w = mp_gguf_writer_new();
    mp_gguf_writer_set_version(w, version);
    if (alignment != 32) CHECK(mp_gguf_writer_set_alignment(w, alignment) == 0);
    mp_gguf_set_str(w, "general.architecture", "llama");
    mp_gguf_set_u8(w, "t.u8", 250);
    mp_gguf_set_i8(w, "t.i8", -7);
    mp_gguf_set_u16(w, "t.u16", 65000);
    mp_gguf_set_i16(w, "t.i16", -32000);
    mp_gguf_set_u32(w, "t.u32", 4000000000u);
    mp_gguf_set_i32(w, "t.i32", -2000000000);
    mp_gguf_set_f32(w, "t.f32", 1.0f / 3.0f);
    mp_gguf_set_bool(w, "t.bool", 1);
    mp_gguf_set_u64(w, "t.u64", 18000000000000000000ull);
    mp_gguf_set_i64(w, "t.i64", -9000000000000000000ll);
    mp_gguf_set_f64(w, "t.f64", 2.718281828459045);
    mp_gguf_set_strn(w, "t.str_nul", "a\0b", 3);
    mp_gguf_set_str(w, "t.str_utf8", "caf\xc3\xa9 \xe2\x96\x81");
    mp_gguf_set_str(w, "t.replaced", "old");
    mp_gguf_set_str(w, "t.replaced", "new");
    int32_t ai[5] = {1, -2, 3, -4, 2147483647};
    float af[3] = {0.5f, -1.25f, 1e-30f};
    uint8_t ab[4] = {1, 0, 1, 1};
    uint64_t au[2] = {1ull << 40, 7};
    double ad[2] = {1e300, -0.0};
    mp_gguf_set_arr(w, "t.arr_i32", MP_GGUF_I32, ai, 5);
    mp_gguf_set_arr(w, "t.arr_f32", MP_GGUF_F32, af, 3);
    mp_gguf_set_arr(w, "t.arr_bool", MP_GGUF_BOOL, ab, 4);
    mp_gguf_set_arr(w, "t.arr_u64", MP_GGUF_U64, au, 2);
    mp_gguf_set_arr(w, "t.arr_f64", MP_GGUF_F64, ad, 2);
    mp_gguf_set_arr(w, "t.arr_empty", MP_GGUF_U8, NULL, 0);
    const char *strs[3] = {"hello", "", "w\xc3\xb6rld"};
    mp_gguf_set_arr_str(w, "t.arr_str", strs, 3);
    /* nested: array of 2 arrays of i16, and an array of 1 array of strings */
    int16_t in0[2] = {-1, 2}, in1[3] = {3, 4, -5};
    mp_gguf_value inner[2] = {{.type = MP_GGUF_ARRAY, .elem_type = MP_GGUF_I16, .n = 2, .raw = in0},
                              {.type = MP_GGUF_ARRAY, .elem_type = MP_GGUF_I16, .n = 3, .raw = in1}};
    mp_gguf_value nested = {.type = MP_GGUF_ARRAY, .elem_type = MP_GGUF_ARRAY, .n = 2, .elems = inner};
    mp_gguf_set_value(w, "t.nested", &nested);
    mp_gguf_value sv[2] = {{.type = MP_GGUF_STRING, .n = 1, .str = "x"}, {.type = MP_GGUF_STRING, .n = 2, .str = "yz"}};
    mp_gguf_value sinner = {.type = MP_GGUF_ARRAY, .elem_type = MP_GGUF_STRING, .n = 2, .elems = sv};
    mp_gguf_value snested = {.type = MP_GGUF_ARRAY, .elem_type = MP_GGUF_ARRAY, .n = 1, .elems = &sinner};
    mp_gguf_set_value(w, "t.nested_str", &snested);

    /* one tensor of every dtype, with 1..4 dims and odd row counts */
    enum { MAXT = MP_DTYPE_COUNT + 1 };
    void *bufs[MAXT] = {0};
    size_t sizes[MAXT] = {0};
    char names[MAXT][64];
    int nt = 0;
    for (int dt = 0; dt < MP_DTYPE_COUNT; dt++) {
        const mp_dtype_traits *tr = mp_dtype_info(dt);
        if (!tr) continue;
        int ndim = 1 + nt % 4;
        int64_t ne[4] = {(int64_t)tr->block_size * (1 + nt % 3), 3, 2, 1 + nt % 2};
        int64_t rows = 1;
        for (int k = 1; k < ndim; k++) rows *= ne[k];
        sizes[nt] = (size_t)mp_dtype_row_bytes(dt, ne[0]) * (size_t)rows;
        bufs[nt] = malloc(sizes[nt]);
        fill_random(bufs[nt], sizes[nt], &s);
        snprintf(names[nt], sizeof names[nt], "blk.%d.%s.weight", nt, tr->name);
        CHECK(mp_gguf_writer_add_tensor(w, names[nt], (mp_dtype)dt, ndim, ne, bufs[nt]) == 0);
        nt++;
    }
    /* a tensor produced at write time, and an empty one */
    int64_t ne_cb[2] = {64, 5};
    mp_gguf_writer_add_tensor_fn(w, "cb.weight", MP_Q8_0, 2, ne_cb, fill_cb, (void *)(uintptr_t)77);
    int64_t ne0[1] = {0};
    mp_gguf_writer_add_tensor(w, "empty", MP_F32, 1, ne0, NULL);
    CHECK_EQ_INT(mp_gguf_writer_n_tensors(w), nt + 2);
    mp_error err = {{0}};
    int rc = mp_gguf_writer_write(w, path, &err);
    CHECKF(rc == 0, "%s", err.msg);
    mp_gguf_writer_free(w);

    mp_gguf *g;
    rc = mp_gguf_open(&g, path, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (rc) return;
    CHECK_EQ_INT(mp_gguf_version(g), version);
    CHECK_EQ_INT(mp_gguf_alignment(g), alignment);
    CHECK_EQ_INT(mp_gguf_data_offset(g) % alignment, 0);
    uint32_t u32;
    int32_t i32;
    uint64_t u64;
    int64_t i64;
    float f32;
    double f64;
    int bl;
    const char *str;
    CHECK(mp_gguf_get_u32(g, "t.u8", &u32, &err) == 0 && u32 == 250);
    CHECK(mp_gguf_get_i32(g, "t.i8", &i32, &err) == 0 && i32 == -7);
    CHECK(mp_gguf_get_u32(g, "t.u16", &u32, &err) == 0 && u32 == 65000);
    CHECK(mp_gguf_get_i32(g, "t.i16", &i32, &err) == 0 && i32 == -32000);
    CHECK(mp_gguf_get_u32(g, "t.u32", &u32, &err) == 0 && u32 == 4000000000u);
    CHECK(mp_gguf_get_i32(g, "t.u32", &i32, &err) == -1 && strstr(err.msg, "does not fit in i32"));
    CHECK(mp_gguf_get_u32(g, "t.i32", &u32, &err) == -1 && strstr(err.msg, "does not fit in u32"));
    CHECK(mp_gguf_get_i32(g, "t.i32", &i32, &err) == 0 && i32 == -2000000000);
    CHECK(mp_gguf_get_f32(g, "t.f32", &f32, &err) == 0 && f32 == 1.0f / 3.0f);
    CHECK(mp_gguf_get_bool(g, "t.bool", &bl, &err) == 0 && bl == 1);
    CHECK(mp_gguf_get_bool(g, "t.u8", &bl, &err) == -1 && strstr(err.msg, "t.u8 is u8, expected bool"));
    CHECK(mp_gguf_get_u64(g, "t.u64", &u64, &err) == 0 && u64 == 18000000000000000000ull);
    CHECK(mp_gguf_get_i64(g, "t.u64", &i64, &err) == -1);
    CHECK(mp_gguf_get_i64(g, "t.i64", &i64, &err) == 0 && i64 == -9000000000000000000ll);
    CHECK(mp_gguf_get_f64(g, "t.f64", &f64, &err) == 0 && f64 == 2.718281828459045);
    CHECK(mp_gguf_get_f32(g, "t.i32", &f32, &err) == -1 && strstr(err.msg, "expected f32"));
    CHECK(mp_gguf_get_str(g, "t.replaced", &str, &err) == 0 && strcmp(str, "new") == 0);
    CHECK(mp_gguf_get_str(g, "t.str_utf8", &str, &err) == 0 && strcmp(str, "caf\xc3\xa9 \xe2\x96\x81") == 0);
    const mp_gguf_value *v = mp_gguf_get(g, "t.str_nul");
    CHECK(v && v->n == 3 && memcmp(v->str, "a\0b", 4) == 0);
    int32_t ri[5];
    CHECK(mp_gguf_get_arr_i32(g, "t.arr_i32", ri, 5, &err) == 0 && memcmp(ri, ai, sizeof ai) == 0);
    CHECK(mp_gguf_get_arr_i32(g, "t.arr_i32", ri, 4, &err) == -1 && strstr(err.msg, "has 5 elements, expected 4"));
    float rf[3];
    CHECK(mp_gguf_get_arr_f32(g, "t.arr_f32", rf, 3, &err) == 0 && memcmp(rf, af, sizeof af) == 0);
    int64_t r64[2];
    CHECK(mp_gguf_get_arr_i64(g, "t.arr_u64", r64, 2, &err) == 0 && r64[0] == (1ll << 40) && r64[1] == 7);
    CHECK(mp_gguf_get_arr_i32(g, "t.arr_u64", ri, 2, &err) == -1 && strstr(err.msg, "does not fit"));
    const char *rs[3];
    uint64_t rl[3];
    CHECK(mp_gguf_get_arr_str(g, "t.arr_str", rs, rl, 3, &err) == 0 && strcmp(rs[2], "w\xc3\xb6rld") == 0 && rl[1] == 0);
    CHECK(mp_gguf_arr_len(g, "t.arr_empty", &err) == 0);
    v = mp_gguf_get(g, "t.nested");
    CHECK(v && v->type == MP_GGUF_ARRAY && v->elem_type == MP_GGUF_ARRAY && v->n == 2);
    if (v && v->n == 2) {
        CHECK(v->elems[1].n == 3 && mp_gguf_arr_i64(&v->elems[1], 2) == -5 && mp_gguf_arr_i64(&v->elems[0], 0) == -1);
    }
    v = mp_gguf_get(g, "t.arr_bool");
    CHECK(v && mp_gguf_arr_u64(v, 1) == 0 && mp_gguf_arr_u64(v, 3) == 1);
    v = mp_gguf_get(g, "t.arr_f64");
    CHECK(v && mp_gguf_arr_f64(v, 0) == 1e300);
    /* key order is preserved: the replaced key keeps its place */
    CHECK_STR(mp_gguf_key(g, alignment != 32), "general.architecture");
    CHECK(mp_gguf_find_key(g, "t.replaced") == 14 + (alignment != 32));

    CHECK_EQ_INT(mp_gguf_n_tensors(g), nt + 2);
    for (int i = 0; i < nt; i++) {
        const mp_tensor *t = mp_gguf_find_tensor(g, names[i]);
        CHECK(t != NULL);
        if (!t) continue;
        CHECK(t == mp_gguf_tensor(g, i));
        CHECK_STR(t->name, names[i]);
        CHECK_EQ_INT(mp_tensor_nbytes(t), sizes[i]);
        CHECK_EQ_INT(mp_gguf_tensor_nbytes(g, i), sizes[i]);
        CHECK(((uintptr_t)t->data - (uintptr_t)mp_gguf_data(g)) % alignment == 0);
        CHECK(memcmp(t->data, bufs[i], sizes[i]) == 0);
        CHECK(mp_tensor_is_contiguous(t));
        CHECK_EQ_INT(t->ndim, 1 + i % 4);
    }
    const mp_tensor *cb = mp_gguf_find_tensor(g, "cb.weight");
    CHECK(cb && cb->dtype == MP_Q8_0 && cb->ne[0] == 64 && cb->ne[1] == 5);
    if (cb) {
        uint8_t expect[2 * 34 * 5];
        unsigned long long cs = 77 + (unsigned long long)nt;
        fill_random(expect, sizeof expect, &cs);
        CHECK(memcmp(cb->data, expect, sizeof expect) == 0);
    }
    const mp_tensor *em = mp_gguf_find_tensor(g, "empty");
    CHECK(em && em->ne[0] == 0 && mp_tensor_nelements(em) == 0);
    CHECK(mp_gguf_find_tensor(g, "nope") == NULL);

    /* read -> copy every KV and tensor into a new writer -> identical bytes */
    mp_gguf_writer *w2 = mp_gguf_writer_new();
    mp_gguf_writer_set_version(w2, version);
    for (int64_t i = 0; i < mp_gguf_n_kv(g); i++) mp_gguf_set_value(w2, mp_gguf_key(g, i), mp_gguf_kv(g, i));
    if (alignment != 32) mp_gguf_writer_set_alignment(w2, alignment);
    for (int64_t i = 0; i < mp_gguf_n_tensors(g); i++) {
        const mp_tensor *t = mp_gguf_tensor(g, i);
        mp_gguf_writer_add_tensor(w2, t->name, t->dtype, t->ndim, t->ne, t->data);
    }
    rc = mp_gguf_writer_write(w2, path2, &err);
    CHECKF(rc == 0, "%s", err.msg);
    mp_gguf_writer_free(w2);
    size_t n1 = 0, n2 = 0;
    uint8_t *b1 = slurp(path, &n1), *b2 = slurp(path2, &n2);
    CHECK(b1 && b2 && n1 == n2 && memcmp(b1, b2, n1) == 0);
    /* and every value compares equal */
    mp_gguf *g2;
    if (mp_gguf_open(&g2, path2, &err) == 0) {
        for (int64_t i = 0; i < mp_gguf_n_kv(g); i++)
            CHECKF(value_equal(mp_gguf_kv(g, i), mp_gguf_kv(g2, i)), "%s", mp_gguf_key(g, i));
        mp_gguf_free(g2);
    }
    free(b1);
    free(b2);
    mp_gguf_free(g);
    for (int i = 0; i < nt; i++) free(bufs[i]);
    remove(path);
    remove(path2);
}

static void test_writer_errors(void) {
    mp_error err;
    mp_gguf_writer *w = mp_gguf_writer_new();
    int64_t ne[2] = {33, 2};
    CHECK(mp_gguf_writer_add_tensor(w, "x", MP_Q4_0, 2, ne, NULL) == -1);
    char path[256];
    snprintf(path, sizeof path, "%s/test_gguf_never.gguf", MP_BINARY_DIR);
    CHECK(mp_gguf_writer_write(w, path, &err) == -1 && strstr(err.msg, "block size"));
    CHECK(access(path, F_OK) != 0);
    mp_gguf_writer_free(w);
    w = mp_gguf_writer_new();
    int64_t ne1[1] = {4};
    float d[4] = {0};
    mp_gguf_writer_add_tensor(w, "x", MP_F32, 1, ne1, d);
    CHECK(mp_gguf_writer_add_tensor(w, "x", MP_F32, 1, ne1, d) == -1);
    CHECK(mp_gguf_writer_write(w, path, &err) == -1 && strstr(err.msg, "added twice"));
    mp_gguf_writer_free(w);
    w = mp_gguf_writer_new();
    CHECK(mp_gguf_set_u32(w, "bad\xff", 1) == -1);
    CHECK(mp_gguf_writer_write(w, path, &err) == -1 && strstr(err.msg, "UTF-8"));
    mp_gguf_writer_free(w);
}

/* ---------------------------------------------------------------- hand-built broken files */

typedef struct {
    uint8_t *p;
    size_t n, cap;
} bb;

static void b_put(bb *b, const void *d, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void b_u32(bb *b, uint32_t v) { b_put(b, &v, 4); }
static void b_u64(bb *b, uint64_t v) { b_put(b, &v, 8); }
static void b_str(bb *b, const char *s) {
    b_u64(b, strlen(s));
    b_put(b, s, strlen(s));
}
static void b_hdr(bb *b, uint32_t ver, uint64_t nt, uint64_t nkv) {
    b_put(b, "GGUF", 4);
    b_u32(b, ver);
    b_u64(b, nt);
    b_u64(b, nkv);
}
static void b_kv_str(bb *b, const char *k, const char *v) {
    b_str(b, k);
    b_u32(b, MP_GGUF_STRING);
    b_str(b, v);
}
static void b_kv_u32(bb *b, const char *k, uint32_t v) {
    b_str(b, k);
    b_u32(b, MP_GGUF_U32);
    b_u32(b, v);
}
static void b_tinfo(bb *b, const char *name, uint32_t nd, const uint64_t *ne, uint32_t type, uint64_t off) {
    b_str(b, name);
    b_u32(b, nd);
    for (uint32_t i = 0; i < nd; i++) b_u64(b, ne[i]);
    b_u32(b, type);
    b_u64(b, off);
}
static void b_pad(bb *b, size_t a) {
    static const uint8_t z[64];
    while (b->n % a) b_put(b, z, 1);
    (void)z;
}
static void b_zeros(bb *b, size_t n) {
    for (size_t i = 0; i < n; i++) b_put(b, "", 1);
}

/* Parses an exact-size heap copy of b; returns 0 on success, else checks the error names the file
 * and contains `want`. */
static int parse_bb(const bb *b, const char *want, int line) {
    uint8_t *c = malloc(b->n ? b->n : 1);
    memcpy(c, b->p, b->n);
    mp_gguf *g = NULL;
    mp_error err = {{0}};
    int rc = mp_gguf_open_memory(&g, c, b->n, "bad.gguf", &err);
    if (want) {
        CHECKF(rc == -1, "line %d: expected an error containing \"%s\"", line, want);
        if (rc == -1)
            CHECKF(strstr(err.msg, "bad.gguf") && strstr(err.msg, want), "line %d: \"%s\" lacks \"%s\"", line, err.msg, want);
    } else {
        CHECKF(rc == 0, "line %d: %s", line, err.msg);
    }
    mp_gguf_free(g);
    free(c);
    return rc;
}
#define EXPECT_BAD(b, want) parse_bb((b), (want), __LINE__)

/* A file with one tensor info, padding and `data` zero bytes of data section. */
static void bad_tensor(const char *name, uint32_t nd, const uint64_t *ne, uint32_t type, uint64_t off, size_t data,
                       const char *want, int line) {
    bb b = {0};
    b_hdr(&b, 3, 1, 0);
    b_tinfo(&b, name, nd, ne, type, off);
    b_pad(&b, 32);
    b_zeros(&b, data);
    parse_bb(&b, want, line);
    free(b.p);
}
#define BAD_TENSOR(name, nd, ne, type, off, data, want) bad_tensor(name, nd, ne, type, off, data, want, __LINE__)

/* A valid two-tensor file: f32 [4, 2] at 0, q8_0 [32] at 32. */
static void good_file(bb *b) {
    uint64_t ne_a[2] = {4, 2}, ne_b[1] = {32};
    b_hdr(b, 3, 2, 1);
    b_kv_str(b, "general.architecture", "test");
    b_tinfo(b, "a", 2, ne_a, MP_F32, 0);
    b_tinfo(b, "b", 1, ne_b, MP_Q8_0, 32);
    b_pad(b, 32);
    for (int i = 0; i < 8; i++) {
        float f = (float)i;
        b_put(b, &f, 4);
    }
    b_zeros(b, 34);
}

static void test_bad_files(void) {
    bb b = {0};
    good_file(&b);
    CHECK(EXPECT_BAD(&b, NULL) == 0);
    {
        mp_gguf *g;
        mp_error err;
        CHECK(mp_gguf_open_memory(&g, b.p, b.n, "good.gguf", &err) == 0);
        const mp_tensor *a = mp_gguf_find_tensor(g, "a");
        CHECK(a && ((const float *)a->data)[5] == 5.0f && a->ne[0] == 4 && a->ne[1] == 2 && a->nb[1] == 16);
        CHECK(mp_gguf_tensor_offset(g, 1) == mp_gguf_data_offset(g) + 32);
        mp_gguf_free(g);
    }
    /* every truncation fails cleanly */
    size_t full = b.n;
    int ok = 1;
    for (size_t cut = 0; cut < full; cut++) {
        b.n = cut;
        uint8_t *c = malloc(cut ? cut : 1);
        memcpy(c, b.p, cut);
        mp_gguf *g = NULL;
        mp_error err;
        if (mp_gguf_open_memory(&g, c, cut, "bad.gguf", &err) == 0) {
            ok = 0;
            fprintf(stderr, "truncation at %zu parsed\n", cut);
            mp_gguf_free(g);
        }
        free(c);
    }
    CHECK(ok);
    b.n = 0;
    b_put(&b, "GGML", 4);
    b_zeros(&b, 20);
    EXPECT_BAD(&b, "not a GGUF file");
    b.n = 0;
    b_hdr(&b, 1, 0, 0);
    EXPECT_BAD(&b, "version 1");
    b.n = 0;
    b_hdr(&b, 4, 0, 0);
    EXPECT_BAD(&b, "version 4");
    b.n = 0;
    b_hdr(&b, 0x03000000u, 0, 0);
    EXPECT_BAD(&b, "big-endian");
    b.n = 0;
    b_hdr(&b, 3, 0, 1ull << 62);
    EXPECT_BAD(&b, "key/value count");
    b.n = 0;
    b_hdr(&b, 3, UINT64_MAX, 0);
    EXPECT_BAD(&b, "tensor count");
    /* key length longer than the file */
    b.n = 0;
    b_hdr(&b, 3, 0, 1);
    b_u64(&b, 1ull << 63);
    b_zeros(&b, 16);
    EXPECT_BAD(&b, "longer than");
    /* string value longer than the file */
    b.n = 0;
    b_hdr(&b, 3, 0, 1);
    b_str(&b, "k");
    b_u32(&b, MP_GGUF_STRING);
    b_u64(&b, 1000);
    b_put(&b, "abc", 3);
    EXPECT_BAD(&b, "longer than");
    /* invalid UTF-8 / NUL in a key, empty key */
    b.n = 0;
    b_hdr(&b, 3, 0, 1);
    b_kv_u32(&b, "k\xc0\xaf", 1);
    EXPECT_BAD(&b, "not valid UTF-8");
    b.n = 0;
    b_hdr(&b, 3, 0, 1);
    b_u64(&b, 3);
    b_put(&b, "a\0b", 3);
    b_u32(&b, MP_GGUF_U32);
    b_u32(&b, 1);
    EXPECT_BAD(&b, "not valid UTF-8");
    b.n = 0;
    b_hdr(&b, 3, 0, 1);
    b_kv_u32(&b, "", 1);
    EXPECT_BAD(&b, "is empty");
    /* duplicate key */
    b.n = 0;
    b_hdr(&b, 3, 0, 2);
    b_kv_u32(&b, "k", 1);
    b_kv_u32(&b, "k", 2);
    EXPECT_BAD(&b, "appears twice");
    /* unknown value type, unknown array type, huge array, too deep nesting */
    b.n = 0;
    b_hdr(&b, 3, 0, 1);
    b_str(&b, "k");
    b_u32(&b, 13);
    b_zeros(&b, 8);
    EXPECT_BAD(&b, "unknown value type 13");
    b.n = 0;
    b_hdr(&b, 3, 0, 1);
    b_str(&b, "k");
    b_u32(&b, MP_GGUF_ARRAY);
    b_u32(&b, 77);
    b_u64(&b, 1);
    b_zeros(&b, 8);
    EXPECT_BAD(&b, "unknown type 77");
    b.n = 0;
    b_hdr(&b, 3, 0, 1);
    b_str(&b, "k");
    b_u32(&b, MP_GGUF_ARRAY);
    b_u32(&b, MP_GGUF_U64);
    b_u64(&b, 1ull << 61);
    b_zeros(&b, 64);
    EXPECT_BAD(&b, "array of");
    b.n = 0;
    b_hdr(&b, 3, 0, 1);
    b_str(&b, "k");
    b_u32(&b, MP_GGUF_ARRAY);
    b_u32(&b, MP_GGUF_STRING);
    b_u64(&b, UINT64_MAX);
    b_zeros(&b, 64);
    EXPECT_BAD(&b, "cannot fit");
    b.n = 0;
    b_hdr(&b, 3, 0, 1);
    b_str(&b, "k");
    b_u32(&b, MP_GGUF_ARRAY);
    for (int i = 0; i < 12; i++) {
        b_u32(&b, MP_GGUF_ARRAY);
        b_u64(&b, 1);
    }
    b_zeros(&b, 64);
    EXPECT_BAD(&b, "nested more than");
    /* tensor problems */
    uint64_t ne1[1] = {4}, ne5[5] = {1, 1, 1, 1, 1};
    BAD_TENSOR("t", 5, ne5, MP_F32, 0, 32, "has 5 dimensions");
    BAD_TENSOR("t", 0, ne1, MP_F32, 0, 32, "has 0 dimensions");
    BAD_TENSOR("t", 1, ne1, 16, 0, 32, "iq2_xxs");
    BAD_TENSOR("t", 1, ne1, 99, 0, 32, "unknown ggml type 99");
    uint64_t ne33[1] = {33};
    BAD_TENSOR("t", 1, ne33, MP_Q4_0, 0, 64, "not a multiple of the q4_0 block size 32");
    uint64_t nebig[2] = {1ull << 40, 1ull << 40};
    BAD_TENSOR("t", 2, nebig, MP_F32, 0, 32, "overflows");
    uint64_t nehuge[1] = {1ull << 63};
    BAD_TENSOR("t", 1, nehuge, MP_F32, 0, 32, "too large");
    uint64_t nebytes[2] = {1ull << 32, 1ull << 29}; /* 2^61 elements: 2^63 bytes of f32 overflow */
    BAD_TENSOR("t", 2, nebytes, MP_F32, 0, 32, "overflows");
    BAD_TENSOR("t", 1, ne1, MP_F32, 64, 32, "outside the file");
    BAD_TENSOR("t", 1, ne1, MP_F32, UINT64_MAX - 8, 32, "not a multiple of the alignment");
    BAD_TENSOR("t", 1, ne1, MP_F32, 8, 64, "not a multiple of the alignment 32");
    uint64_t ne16[1] = {16};
    b.n = 0;
    b_hdr(&b, 3, 2, 0);
    b_tinfo(&b, "t1", 1, ne16, MP_F32, 0);
    b_tinfo(&b, "t2", 1, ne1, MP_F32, 32);
    b_pad(&b, 32);
    b_zeros(&b, 64);
    EXPECT_BAD(&b, "overlap");
    b.n = 0;
    b_hdr(&b, 3, 2, 0);
    b_tinfo(&b, "t", 1, ne1, MP_F32, 0);
    b_tinfo(&b, "t", 1, ne1, MP_F32, 32);
    b_pad(&b, 32);
    b_zeros(&b, 64);
    EXPECT_BAD(&b, "appears twice");
    BAD_TENSOR("t\xff", 1, ne1, MP_F32, 0, 32, "not valid UTF-8");
    /* the data section starting past the end of the file */
    b.n = 0;
    b_hdr(&b, 3, 1, 0);
    b_tinfo(&b, "t", 1, ne1, MP_F32, 0);
    EXPECT_BAD(&b, "past the end");
    /* alignment: not a power of two, wrong type; a valid 64 alignment moves the data section */
    b.n = 0;
    b_hdr(&b, 3, 0, 1);
    b_kv_u32(&b, "general.alignment", 48);
    EXPECT_BAD(&b, "not a power of two");
    b.n = 0;
    b_hdr(&b, 3, 0, 1);
    b_kv_str(&b, "general.alignment", "32");
    EXPECT_BAD(&b, "general.alignment is string, expected u32");
    b.n = 0;
    b_hdr(&b, 3, 1, 1);
    b_kv_u32(&b, "general.alignment", 64);
    b_tinfo(&b, "t", 1, ne1, MP_F32, 0);
    b_pad(&b, 64);
    b_zeros(&b, 16);
    CHECK(EXPECT_BAD(&b, NULL) == 0);
    /* a file with no tensors needs no padding or data section (the vocab files end right after the KVs) */
    b.n = 0;
    b_hdr(&b, 2, 0, 1);
    b_kv_u32(&b, "k", 1);
    CHECK(EXPECT_BAD(&b, NULL) == 0);
    free(b.p);

    /* open() on missing files and directories */
    mp_gguf *g;
    mp_error err;
    CHECK(mp_gguf_open(&g, "/nonexistent/x.gguf", &err) == -1 && strstr(err.msg, "/nonexistent/x.gguf: cannot open"));
    CHECK(mp_gguf_open(&g, MP_BINARY_DIR, &err) == -1 && strstr(err.msg, "is a directory"));
}

int main(void) {
    test_round_trip(3, 32);
    test_round_trip(2, 64);
    test_writer_errors();
    test_bad_files();
    if (!have_fixtures()) {
        fprintf(stderr, "test_gguf: fixtures absent, skipping the real-file part\n");
        int r = mp_test_result("test_gguf");
        return r ? r : MP_TEST_SKIP;
    }
    for (size_t i = 0; i < sizeof vocab_cases / sizeof vocab_cases[0]; i++) test_vocab_case(&vocab_cases[i]);
    test_all_fixture_files();
    test_fixture_truncations();
    return mp_test_result("test_gguf");
}
