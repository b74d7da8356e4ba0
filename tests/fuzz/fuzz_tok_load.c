/* fuzz_tok_load.c — libFuzzer harness for the tokenizer loaders (llm/tokenizer*.c): HF tokenizer.json
 * (+ tokenizer_config.json), vocab.json + merges.txt, llama2.c tokenizer.bin and GGUF tokenizer.ggml.*
 * metadata (through models/gguf.c), then encoding/decoding with whatever loaded.
 *
 * The first input byte picks the loader; the rest is the file (files separated by a NUL byte where a
 * loader reads two or three):
 *   0: tokenizer.json              1: tokenizer_config.json \0 tokenizer.json
 *   2: vocab.json \0 merges.txt [\0 tokenizer_config.json]
 *   3: llama2.c tokenizer.bin (vocab size from the count)   4: GGUF (tokenizer + chat template)
 * Seeds: make_seeds.py (cut-down copies of the fixture tokenizers + small hand-written ones). */
#include "fuzz_tok_common.h"
#include "llm/jinja.h"
#include "models/gguf.h"

static const char *const files[] = {"tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt",
                                    "tokenizer.bin"};

static void clear_dir(void) {
    char p[512];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", fz_tmpdir(), files[i]);
        unlink(p);
    }
}

/* splits at the k-th NUL (0-based piece k); returns the piece and its length */
static const uint8_t *piece(const uint8_t *d, size_t n, int k, size_t *len) {
    const uint8_t *s = d, *end = d + n;
    for (int i = 0; i < k; i++) {
        const uint8_t *z = memchr(s, 0, (size_t)(end - s));
        if (!z) { *len = 0; return NULL; }
        s = z + 1;
    }
    const uint8_t *z = memchr(s, 0, (size_t)(end - s));
    *len = z ? (size_t)(z - s) : (size_t)(end - s);
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int mode = data[0] % 5;
    data++, size--;
    clear_dir();
    mp_tokenizer *t = NULL;
    mp_error e;
    memset(&e, 0, sizeof e);
    int rc = -1;
    const char *name = NULL;
    if (mode == 0) {
        const char *p = fz_write("tokenizer.json", data, size);
        name = "tokenizer.json";
        rc = mp_tokenizer_load_hf(&t, p, &e);
    } else if (mode == 1) {
        size_t n0, n1;
        const uint8_t *a = piece(data, size, 0, &n0), *b = piece(data, size, 1, &n1);
        fz_write("tokenizer_config.json", a, n0);
        const char *p = fz_write("tokenizer.json", b ? b : (const uint8_t *)"", n1);
        name = "tokenizer";
        rc = mp_tokenizer_load_hf(&t, p, &e);
    } else if (mode == 2) {
        size_t n0, n1, n2;
        const uint8_t *a = piece(data, size, 0, &n0), *b = piece(data, size, 1, &n1), *c = piece(data, size, 2, &n2);
        fz_write("vocab.json", a, n0);
        fz_write("merges.txt", b ? b : (const uint8_t *)"", n1);
        if (c) fz_write("tokenizer_config.json", c, n2);
        name = fz_tmpdir();
        rc = mp_tokenizer_load_hf(&t, fz_tmpdir(), &e);
    } else if (mode == 3) {
        const char *p = fz_write("tokenizer.bin", data, size);
        name = "tokenizer.bin";
        rc = mp_tokenizer_load_llama2c(&t, p, 0, &e);
        if (rc == 0) { /* again with the vocabulary size a model would ask for */
            int nv = mp_tokenizer_n_vocab(t);
            mp_tokenizer *t2 = NULL;
            if (mp_tokenizer_load_llama2c(&t2, p, nv, &e) != 0 || mp_tokenizer_n_vocab(t2) != nv) abort();
            mp_tokenizer_free(t2);
            if (mp_tokenizer_load_llama2c(&t2, p, nv + 1, &e) == 0) abort();
            fz_check_error(&e, name);
        }
    } else {
        mp_gguf *g;
        name = "fuzz.gguf";
        if (mp_gguf_open_memory(&g, data, size, name, &e) != 0) {
            fz_check_error(&e, name);
            return 0;
        }
        rc = mp_tokenizer_load_gguf(&t, g, &e);
        char *tmpl = NULL;
        mp_error e2;
        if (mp_chat_template_from_gguf(g, &tmpl, &e2) == 0) {
            mp_jinja *j;
            if (mp_jinja_parse(&j, tmpl, "fuzz.gguf", &e2) == 0) mp_jinja_free(j);
            free(tmpl);
        } else {
            fz_check_error(&e2, name);
        }
        if (rc == 0) fz_exercise_tokenizer(t);
        else fz_check_error(&e, name);
        mp_tokenizer_free(t);
        mp_gguf_free(g);
        return 0;
    }
    if (rc != 0) {
        fz_check_error(&e, name);
        if (t) abort();
        return 0;
    }
    fz_exercise_tokenizer(t);
    mp_tokenizer_free(t);
    return 0;
}
