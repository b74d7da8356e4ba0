/* Loader errors on bad files, special-token parsing, end-of-generation ids, round trips through the
 * streaming detokenizer on every vocabulary present (also those without test vectors). */
#include "llm/tokenizer.h"
#include "models/gguf.h"
#include "models/mmap.h"
#include "test.h"

#include <unistd.h>

static const char *texts[] = {"Hello world", "  two leading spaces", "tabs\tand\nnewlines\n\n", "caf\xC3\xA9 na\xC3\xAFve",
                              "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E \xF0\x9F\xA6\x99 \xE2\x9C\x93", "12345 + 678 = 7023",
                              "I'm can't won't", "\xD0\x9F\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82"};

static void round_trips(const mp_tokenizer *t, const char *label) {
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        int32_t ids[512];
        int n = mp_tokenize(t, texts[i], strlen(texts[i]), 0, 0, ids, 512);
        CHECKF(n > 0 && n <= 512, "%s: tokenize \"%s\" gave %d", label, texts[i], n);
        if (n <= 0 || n > 512) continue;
        mp_detok d;
        mp_detok_init(&d, t, 1);
        char out[2048], chunk[256];
        int w = 0;
        for (int k = 0; k < n; k++) {
            int m = mp_detok_push(&d, ids[k], chunk, sizeof chunk);
            CHECK(m >= 0);
            if (m < 0) break;
            /* never ends inside a UTF-8 character */
            int j = 0;
            while (j < m) {
                unsigned char c = (unsigned char)chunk[j];
                j += c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : 4;
            }
            CHECKF(j == m, "%s: chunk splits a character", label);
            memcpy(out + w, chunk, (size_t)m);
            w += m;
        }
        int m = mp_detok_flush(&d, chunk, sizeof chunk);
        memcpy(out + w, chunk, (size_t)(m > 0 ? m : 0));
        w += m > 0 ? m : 0;
        out[w] = 0;
        CHECKF(strcmp(out, texts[i]) == 0, "%s: round trip \"%s\" -> \"%s\"", label, texts[i], out);
    }
}

static mp_tokenizer *load_gguf(const char *name) {
    char rel[128];
    snprintf(rel, sizeof rel, "gguf/ggml-vocab-%s.gguf", name);
    mp_gguf *g;
    mp_error err;
    if (!mp_is_file(mp_fixture(rel))) return NULL;
    if (mp_gguf_open(&g, mp_fixture(rel), &err)) { CHECKF(0, "%s", err.msg); return NULL; }
    mp_tokenizer *t = NULL;
    if (mp_tokenizer_load_gguf(&t, g, &err)) CHECKF(0, "%s", err.msg);
    mp_gguf_free(g);
    return t;
}

static void test_gguf_vocabs(void) {
    static const char *names[] = {"llama-spm", "baichuan", "gpt-2", "gpt-neox", "starcoder", "falcon", "deepseek-coder", "mpt"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        mp_tokenizer *t = load_gguf(names[i]);
        if (!t) continue;
        round_trips(t, names[i]);
        mp_tokenizer_free(t);
    }
    /* SPM with special tokens in the text */
    mp_tokenizer *t = load_gguf("llama-spm");
    if (!t) return;
    int32_t ids[64];
    const char *s = "<s>Hello</s>";
    int n = mp_tokenize(t, s, strlen(s), 0, 1, ids, 64);
    CHECK(n >= 3 && ids[0] == 1 && ids[n - 1] == 2);
    int n2 = mp_tokenize(t, s, strlen(s), 0, 0, ids, 64);
    CHECK(n2 > n); /* not parsed: the characters of "<s>" are encoded */
    for (int i = 0; i < n2; i++) CHECK(ids[i] != 1 && ids[i] != 2);
    CHECK_EQ_INT(mp_tokenize(t, "", 0, 1, 0, ids, 64), 1); /* HF: '' -> [BOS] */
    CHECK_EQ_INT(mp_tokenize(t, "", 0, 0, 0, ids, 64), 0);
    CHECK_EQ_INT(mp_tokenizer_find(t, "<unk>"), 0);
    CHECK(mp_tokenizer_is_special(t, 1) && !mp_tokenizer_is_special(t, 100));
    CHECK(mp_tokenizer_is_eog(t, 2) && !mp_tokenizer_is_eog(t, 1));
    mp_tokenizer_free(t);
}

static void test_hf_specials(void) {
    mp_tokenizer *t;
    mp_error err;
    const char *dir = mp_fixture("hf/HuggingFaceTB--SmolVLM-256M-Instruct");
    if (!mp_is_dir(dir)) return;
    if (mp_tokenizer_load_hf(&t, dir, &err)) { CHECKF(0, "%s", err.msg); return; }
    int32_t eou = mp_tokenizer_find(t, "<end_of_utterance>"), im_end = mp_tokenizer_find(t, "<|im_end|>");
    CHECK(eou > 0 && im_end > 0);
    CHECK_EQ_INT(mp_tokenizer_eos(t), eou);
    CHECK(mp_tokenizer_is_eog(t, eou) && mp_tokenizer_is_eog(t, im_end));
    CHECK(mp_tokenizer_find(t, "<image>") > 0 && mp_tokenizer_is_special(t, mp_tokenizer_find(t, "<image>")));
    mp_tokenizer_free(t);
    dir = mp_fixture("hf/Qwen--Qwen2-VL-2B-Instruct");
    if (mp_is_dir(dir) && !mp_tokenizer_load_hf(&t, dir, &err)) {
        int32_t ids[32];
        const char *s = "<|vision_start|><|image_pad|><|vision_end|>Describe.";
        int n = mp_tokenize(t, s, strlen(s), 0, 1, ids, 32);
        CHECK(n >= 4 && ids[0] == 151652 && ids[1] == 151655 && ids[2] == 151653);
        CHECK_EQ_INT(mp_tokenizer_eos(t), 151645);
        CHECK_EQ_INT(mp_tokenizer_bos(t), -1);
        round_trips(t, "qwen2-vl");
        mp_tokenizer_free(t);
    }
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (f) { fputs(text, f); fclose(f); }
}

static void test_bad_inputs(void) {
    char dir[] = "/tmp/mp_tok_bad_XXXXXX";
    if (!mkdtemp(dir)) { CHECK(0); return; }
    char path[256];
    mp_tokenizer *t = NULL;
    mp_error err;
    /* GGUF: unknown model, missing tokens, short scores */
    snprintf(path, sizeof path, "%s/a.gguf", dir);
    const char *toks[] = {"<unk>", "<s>", "</s>", "a"};
    for (int k = 0; k < 3; k++) {
        mp_gguf_writer *w = mp_gguf_writer_new();
        mp_gguf_set_str(w, "tokenizer.ggml.model", k == 0 ? "unigram-x" : "llama");
        if (k != 1) mp_gguf_set_arr_str(w, "tokenizer.ggml.tokens", toks, 4);
        float sc[2] = {0, 0};
        if (k == 2) mp_gguf_set_arr(w, "tokenizer.ggml.scores", MP_GGUF_F32, sc, 2);
        CHECK(mp_gguf_writer_write(w, path, &err) == 0);
        mp_gguf_writer_free(w);
        mp_gguf *g;
        if (mp_gguf_open(&g, path, &err)) { CHECKF(0, "%s", err.msg); continue; }
        CHECK_EQ_INT(mp_tokenizer_load_gguf(&t, g, &err), -1);
        CHECK(t == NULL);
        const char *want = k == 0 ? "unsupported tokenizer model" : k == 1 ? "tokenizer.ggml.tokens" : "scores";
        CHECKF(strstr(err.msg, want) && strstr(err.msg, "a.gguf"), "error \"%s\" lacks \"%s\"", err.msg, want);
        mp_gguf_free(g);
    }
    /* HF: Unigram model, bad JSON, a missing folder, a Split behaviour we do not implement */
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    write_file(path, "{\"model\": {\"type\": \"Unigram\", \"vocab\": [[\"a\", 0.0]]}}");
    CHECK_EQ_INT(mp_tokenizer_load_hf(&t, dir, &err), -1);
    CHECK(strstr(err.msg, "Unigram") != NULL);
    write_file(path, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0,");
    CHECK_EQ_INT(mp_tokenizer_load_hf(&t, dir, &err), -1);
    CHECK(strstr(err.msg, "not valid JSON") != NULL);
    write_file(path, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, \"merges\": [\"a b\"]},"
                     "\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"a\"}, \"behavior\": \"Removed\"}}");
    CHECK_EQ_INT(mp_tokenizer_load_hf(&t, dir, &err), -1);
    CHECK(strstr(err.msg, "Removed") != NULL);
    write_file(path, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, \"merges\": [\"a b\"]},"
                     "\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"(?<=a)b\"}, \"behavior\": \"Isolated\"},"
                     "\"decoder\": {\"type\": \"ByteLevel\"}}");
    CHECK_EQ_INT(mp_tokenizer_load_hf(&t, dir, &err), -1);
    CHECK(strstr(err.msg, "lookbehind") != NULL);
    /* a tiny valid byte-level BPE: "ab" merges */
    write_file(path, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2, \"\\u0120\": 3}, \"merges\": [[\"a\", \"b\"]]},"
                     "\"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"use_regex\": true},"
                     "\"added_tokens\": [{\"id\": 4, \"content\": \"<x>\", \"special\": true}]}");
    if (mp_tokenizer_load_hf(&t, dir, &err)) {
        CHECKF(0, "%s", err.msg);
    } else {
        int32_t ids[8];
        CHECK_EQ_INT(mp_tokenize(t, "ab<x>ab", 7, 0, 1, ids, 8), 3);
        CHECK(ids[0] == 2 && ids[1] == 4 && ids[2] == 2);
        CHECK_EQ_INT(mp_tokenizer_n_vocab(t), 5);
        mp_tokenizer_free(t);
    }
    CHECK_EQ_INT(mp_tokenizer_load_hf(&t, "/nonexistent/folder", &err), -1);
    CHECK(strstr(err.msg, "/nonexistent/folder") != NULL);
    remove(path);
    rmdir(dir);
}

int main(void) {
    test_gguf_vocabs();
    test_hf_specials();
    test_bad_inputs();
    return mp_test_result("test_tokenizer_misc");
}
