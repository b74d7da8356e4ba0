/* llama2.c tokenizer.bin: encodings from upstream test.c (Llama-2 32k vocab), the prompt tokens and
 * decoded text of run.c's golden runs (tok512.bin), streaming UTF-8 and bad files. */
#include "llm/tokenizer.h"
#include "test.h"

#include <stdint.h>

static int read_text(const char *path, char *buf, size_t cap) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    size_t n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = 0;
    return (int)n;
}

static int encode_eq(const mp_tokenizer *t, const char *text, const int32_t *want, int nwant) {
    int32_t ids[512];
    int n = mp_tokenize(t, text, strlen(text), 1, 0, ids, 512);
    int ok = n == nwant;
    for (int i = 0; ok && i < n; i++) ok = ids[i] == want[i];
    if (!ok) {
        fprintf(stderr, "encode \"%s\": got", text);
        for (int i = 0; i < n && i < 512; i++) fprintf(stderr, " %d", ids[i]);
        fprintf(stderr, "\n");
    }
    return ok;
}

/* Detokenize ids[0..n) through the streaming API, checking every chunk is whole UTF-8. */
static int detok_all(const mp_tokenizer *t, const int32_t *ids, int n, char *out, int cap) {
    mp_detok d;
    mp_detok_init(&d, t, 1);
    int w = 0;
    char chunk[64];
    for (int i = 0; i < n; i++) {
        int k = mp_detok_push(&d, ids[i], chunk, sizeof chunk);
        if (k < 0 || w + k >= cap) return -1;
        /* a chunk never ends inside a character */
        for (int j = 0; j < k;) {
            unsigned char c = (unsigned char)chunk[j];
            int l = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : 4;
            CHECKF(j + l <= k, "token %d: chunk splits a UTF-8 character", ids[i]);
            j += l;
        }
        memcpy(out + w, chunk, (size_t)k);
        w += k;
    }
    int k = mp_detok_flush(&d, chunk, sizeof chunk);
    if (k < 0 || w + k >= cap) return -1;
    memcpy(out + w, chunk, (size_t)k);
    w += k;
    out[w] = 0;
    return w;
}

static void test_llama2_32k(void) {
    mp_tokenizer *t;
    mp_error err;
    if (mp_tokenizer_load_llama2c(&t, mp_fixture("llm/tokenizer.bin"), 32000, &err)) {
        fprintf(stderr, "skip 32k: %s\n", err.msg);
        return;
    }
    CHECK_EQ_INT(mp_tokenizer_n_vocab(t), 32000);
    CHECK_EQ_INT(mp_tokenizer_bos(t), 1);
    CHECK_EQ_INT(mp_tokenizer_eos(t), 2);
    /* karpathy/llama2.c test.c */
    static const int32_t e0[] = {1};
    static const int32_t e1[] = {1, 306, 4658, 278, 6593, 310, 2834, 338};
    static const int32_t e2[] = {1, 3439, 17632, 1925, 29892, 278, 6368, 310, 14215, 537, 5922, 393, 29871};
    static const int32_t e3[] = {1, 319, 11473, 2643, 378, 629, 271, 18099, 278, 3815, 373, 278, 6826, 29901, 13,
                                 13, 4706, 6324, 14332, 29892, 13, 13, 4706, 306, 925, 29871};
    static const int32_t e4[] = {1, 4103, 9632, 4223, 304, 5176, 29901, 13, 13, 4706, 7205, 4932, 357, 1149, 301, 449,
                                 276, 316, 2778, 13, 4706, 1236, 407, 837, 524, 1149, 6042, 354, 772, 440, 29878,
                                 1318, 13, 4706, 715, 1878, 330, 3055, 1725, 1149, 330, 3055, 1725, 4639, 28754, 13,
                                 4706, 923, 968, 1149};
    CHECK(encode_eq(t, "", e0, 1));
    CHECK(encode_eq(t, "I believe the meaning of life is", e1, 8));
    CHECK(encode_eq(t, "Simply put, the theory of relativity states that ", e2, 13));
    CHECK(encode_eq(t, "A brief message congratulating the team on the launch:\n\n        Hi everyone,\n\n        I just ",
                    e3, (int)(sizeof e3 / sizeof e3[0])));
    CHECK(encode_eq(t,
                    "Translate English to French:\n\n        sea otter => loutre de mer\n        peppermint => menthe "
                    "poivrée\n        plush girafe => girafe peluche\n        cheese =>",
                    e4, (int)(sizeof e4 / sizeof e4[0])));
    /* without BOS */
    int32_t ids[64];
    CHECK_EQ_INT(mp_tokenize(t, "I believe", 9, 0, 0, ids, 64), 2);
    CHECK_EQ_INT(ids[0], 306);
    /* round trips, including characters outside the vocab (byte fallback) and emoji */
    const char *texts[] = {"Hello world", "peppermint => menthe poivrée", "日本語のテキスト 🦙 and ✓ ok", "tabs\tand\nnewlines  x"};
    for (int i = 0; i < 4; i++) {
        int32_t buf[256];
        int n = mp_tokenize(t, texts[i], strlen(texts[i]), 1, 0, buf, 256);
        CHECK(n > 1 && n <= 256);
        char out[1024];
        int w = detok_all(t, buf, n, out, sizeof out);
        CHECKF(w >= 0 && strcmp(out, texts[i]) == 0, "round trip \"%s\" -> \"%s\"", texts[i], w >= 0 ? out : "(error)");
    }
    /* a short buffer reports the needed count */
    CHECK_EQ_INT(mp_tokenize(t, "I believe the meaning of life is", 32, 1, 0, ids, 3), 8);
    CHECK_EQ_INT(ids[2], 4658);
    char piece[32];
    CHECK_EQ_INT(mp_token_to_bytes(t, 13, piece, sizeof piece), 1); /* <0x0A> */
    CHECK_EQ_INT(piece[0], '\n');
    CHECK_EQ_INT(mp_token_to_bytes(t, 32000, piece, sizeof piece), -1);
    mp_tokenizer_free(t);
}

/* tok512.bin with run.c's golden runs: the prompt tokens come first in each .tokens file, and decoding
 * BOS + all tokens gives run.c's stdout (less the final newline run.c adds). */
static void test_tok512_golden(void) {
    mp_tokenizer *t;
    mp_error err;
    if (mp_tokenizer_load_llama2c(&t, mp_fixture("llm/tok512.bin"), 512, &err)) {
        fprintf(stderr, "skip tok512: %s\n", err.msg);
        return;
    }
    static const int32_t once[] = {1, 403, 407, 261, 378}, lily[] = {1, 317, 269, 326};
    CHECK(encode_eq(t, "Once upon a time", once, 5));
    CHECK(encode_eq(t, "Lily and Tim", lily, 4));
    static const struct { const char *name, *prompt; } cases[] = {
        {"greedy_n200_prompt", "Once upon a time"}, {"greedy_n200_noprompt", NULL},
        {"t1_s42_n64_noprompt", NULL},              {"t1_s42_n64_prompt", "Once upon a time"},
        {"generate_defaults_s42", NULL},            {"greedy_default_n256", NULL},
        {"t1_p0.9_s133742_doc", NULL},              {"t1_p1.0_s42_n64_multinomial", NULL},
        {"greedy_n64_prompt", "Once upon a time"},  {"greedy_n60_zoo", "Zoo"},
        {"t0.8_p0.9_s1337_n100_lilytim", "Lily and Tim"},
    };
    static char text[65536], want[65536], got[65536];
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char rel[256];
        snprintf(rel, sizeof rel, "llm/golden/%s.tokens", cases[c].name);
        if (read_text(mp_fixture(rel), text, sizeof text) < 0) { CHECKF(0, "missing %s", rel); continue; }
        int32_t ids[1024];
        int n = 0;
        ids[n++] = 1; /* BOS */
        for (char *p = text; n < 1024;) {
            char *e;
            long v = strtol(p, &e, 10);
            if (e == p) break;
            ids[n++] = (int32_t)v;
            p = e;
        }
        if (cases[c].prompt) {
            int32_t pt[64];
            int np = mp_tokenize(t, cases[c].prompt, strlen(cases[c].prompt), 1, 0, pt, 64);
            CHECK(np > 1 && np <= n);
            for (int i = 0; i < np && i < n; i++) CHECKF(pt[i] == ids[i], "%s: prompt token %d: %d vs %d", cases[c].name, i, pt[i], ids[i]);
        }
        snprintf(rel, sizeof rel, "llm/golden/%s.stdout", cases[c].name);
        int wn = read_text(mp_fixture(rel), want, sizeof want);
        if (wn < 0) { CHECKF(0, "missing %s", rel); continue; }
        if (wn > 0 && want[wn - 1] == '\n') want[--wn] = 0;
        int gn = detok_all(t, ids, n, got, sizeof got);
        CHECKF(gn == wn && strcmp(got, want) == 0, "%s: decoded text differs from run.c's stdout:\n%s\n---\n%s",
               cases[c].name, got, want);
    }
    /* byte fallback: characters outside the 512 vocab become <0xNN> tokens and decode back, and a
     * character split across tokens is never split in the stream */
    const char *s = "Zoë 🦙 naïve";
    int32_t ids[128];
    int n = mp_tokenize(t, s, strlen(s), 1, 0, ids, 128);
    CHECK(n > 10);
    int nbytes = 0;
    for (int i = 0; i < n; i++) nbytes += ids[i] >= 3 && ids[i] < 259;
    CHECK(nbytes >= 8); /* ë, 🦙 (4 bytes), ï */
    char out[256];
    CHECK(detok_all(t, ids, n, out, sizeof out) >= 0);
    CHECK_STR(out, s);
    /* an incomplete character at the end is flushed as U+FFFD */
    mp_detok d;
    mp_detok_init(&d, t, 1);
    char chunk[32];
    CHECK_EQ_INT(mp_detok_push(&d, 3 + 0xF0, chunk, sizeof chunk), 0);
    CHECK_EQ_INT(mp_detok_push(&d, 3 + 0x9F, chunk, sizeof chunk), 0);
    CHECK_EQ_INT(mp_detok_flush(&d, chunk, sizeof chunk), 6);
    CHECK_STR(chunk, "\xEF\xBF\xBD\xEF\xBF\xBD");
    /* skip_special drops BOS/EOS, keeps them otherwise */
    mp_detok_init(&d, t, 0);
    CHECK(mp_detok_push(&d, 2, chunk, sizeof chunk) > 0);
    mp_tokenizer_free(t);
}

static void test_bad_files(void) {
    mp_tokenizer *t = NULL;
    mp_error err;
    CHECK_EQ_INT(mp_tokenizer_load_llama2c(&t, "/nonexistent/tok.bin", 0, &err), -1);
    CHECK(strstr(err.msg, "/nonexistent/tok.bin") != NULL);
    char path[] = "/tmp/mp_tok_bad_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    FILE *f = fdopen(fd, "wb");
    int32_t hdr[3] = {7, 0, 1000}; /* max len 7, score 0, then a length of 1000 */
    fwrite(hdr, 4, 3, f);
    fclose(f);
    CHECK_EQ_INT(mp_tokenizer_load_llama2c(&t, path, 0, &err), -1);
    CHECK(strstr(err.msg, "bad length") != NULL);
    CHECK(t == NULL);
    /* wants more tokens than the file has */
    CHECK_EQ_INT(mp_tokenizer_load_llama2c(&t, mp_fixture("llm/tok512.bin"), 32000, &err), -1);
    remove(path);
}

int main(void) {
    test_llama2_32k();
    test_tok512_golden();
    test_bad_files();
    return mp_test_result("test_tokenizer_llama2c");
}
