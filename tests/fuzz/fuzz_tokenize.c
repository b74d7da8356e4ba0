/* fuzz_tokenize.c — libFuzzer harness for encoding and decoding arbitrary text (valid and invalid UTF-8)
 * with the real fixture vocabularies (llm/tokenizer*.c: SentencePiece BPE, byte-level BPE with every
 * llama.cpp pre-tokenizer regex set the fixtures use, WordPiece; special-token matching; streaming
 * detokenizer).
 *
 * Input: byte 0 picks the vocabulary, byte 1 the flags (add_special, parse_special, skip_special when
 * decoding), the rest is the text. The vocabularies are loaded once from $MMPIPE_FIXTURES (or
 * ../shared/fixtures); a missing one is skipped. Checks: ids in range, a longer output buffer gives the
 * same prefix, and for byte-level BPE vocabularies that hold every byte (GPT-2 style, no normalizer,
 * no unknown token) decode(encode(text)) == text for valid UTF-8 text. */
#include "fuzz_tok_common.h"
#include "models/gguf.h"

#define MAX_TOK 32

static mp_tokenizer *toks[MAX_TOK];
static int roundtrip[MAX_TOK];
static int n_toks = -1;

static void add_gguf(const char *rel, int rt) {
    char *p = fz_fixture_path(rel);
    mp_gguf *g;
    mp_error e;
    if (p && mp_gguf_open(&g, p, &e) == 0) {
        mp_tokenizer *t;
        if (mp_tokenizer_load_gguf(&t, g, &e) == 0 && n_toks < MAX_TOK) {
            roundtrip[n_toks] = rt;
            toks[n_toks++] = t;
        } else {
            fprintf(stderr, "fuzz_tokenize: %s: %s\n", rel, e.msg);
        }
        mp_gguf_free(g);
    }
    free(p);
}

static void add_hf(const char *rel) {
    char *p = fz_fixture_path(rel);
    mp_tokenizer *t;
    mp_error e;
    if (p && mp_tokenizer_load_hf(&t, p, &e) == 0 && n_toks < MAX_TOK) toks[n_toks++] = t;
    else if (p) fprintf(stderr, "fuzz_tokenize: %s: %s\n", rel, e.msg);
    free(p);
}

static void add_llama2c(const char *rel, int vocab) {
    char *p = fz_fixture_path(rel);
    mp_tokenizer *t;
    mp_error e;
    if (p && mp_tokenizer_load_llama2c(&t, p, vocab, &e) == 0 && n_toks < MAX_TOK) toks[n_toks++] = t;
    else if (p) fprintf(stderr, "fuzz_tokenize: %s: %s\n", rel, e.msg);
    free(p);
}

static void free_all(void) {
    for (int i = 0; i < n_toks; i++) mp_tokenizer_free(toks[i]);
    n_toks = 0;
}

static void load_all(void) {
    n_toks = 0;
    static const char *ggufs[] = {"baichuan", "bert-bge", "deepseek-coder", "deepseek-llm", "falcon", "gpt-2",
                                  "gpt-neox", "llama-spm", "mpt", "phi-3", "refact", "starcoder", NULL};
    for (int i = 0; ggufs[i]; i++) {
        char rel[128];
        snprintf(rel, sizeof rel, "gguf/ggml-vocab-%s.gguf", ggufs[i]);
        add_gguf(rel, !strcmp(ggufs[i], "gpt-2"));
    }
    add_hf("hf/HuggingFaceTB--SmolVLM-256M-Instruct/tokenizer.json");
    add_hf("hf/ibm-granite--granite-3.1-1b-a400m-instruct/tokenizer.json");
    add_hf("hf/Qwen--Qwen2-VL-2B-Instruct");
    add_llama2c("llm/tokenizer.bin", 32000);
    add_llama2c("llm/tok512.bin", 512);
    fprintf(stderr, "fuzz_tokenize: %d vocabularies\n", n_toks);
    atexit(free_all);
}

static int valid_utf8(const uint8_t *s, size_t n) {
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        int l = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
        if (!l || i + (size_t)l > n) return 0;
        uint32_t v = l == 1 ? c : l == 2 ? c & 0x1F : l == 3 ? c & 0x0F : c & 0x07;
        for (int k = 1; k < l; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return 0;
            v = v << 6 | (s[i + k] & 0x3F);
        }
        if ((l == 2 && v < 0x80) || (l == 3 && v < 0x800) || (l == 4 && v < 0x10000) || v > 0x10FFFF ||
            (v >= 0xD800 && v <= 0xDFFF) || v == 0)
            return 0;
        i += (size_t)l;
    }
    return 1;
}

static void check_roundtrip(const mp_tokenizer *t, const uint8_t *text, size_t n) {
    int cap = (int)n + 8;
    int32_t *ids = malloc((size_t)cap * sizeof *ids);
    char *out = malloc(n * 4 + 64);
    if (!ids || !out) goto done;
    int k = mp_tokenize(t, (const char *)text, n, 0, 0, ids, cap);
    if (k < 0 || k > cap) goto done;
    size_t w = 0;
    for (int i = 0; i < k; i++) {
        int r = mp_token_to_bytes(t, ids[i], out + w, (int)(n * 4 + 64 - w));
        if (r < 0) abort();
        w += (size_t)r;
        if (w > n) break;
    }
    if (w != n || memcmp(out, text, n)) {
        fprintf(stderr, "fuzz_tokenize: decode(encode(text)) != text (%zu vs %zu bytes)\n", w, n);
        abort();
    }
done:
    free(ids);
    free(out);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    load_all(); /* once, outside the per-input time limit */
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (n_toks < 0) load_all();
    if (size < 2 || n_toks == 0) return 0;
    int which = data[0] % n_toks, flags = data[1];
    const mp_tokenizer *t = toks[which];
    fz_tokenize_text(t, (const char *)data + 2, size - 2, flags);
    if (roundtrip[which] && valid_utf8(data + 2, size - 2)) check_roundtrip(t, data + 2, size - 2);
    return 0;
}
