/* fuzz_tok_common.h — what the tokenizer harnesses do with a tokenizer once it is loaded. */
#ifndef MP_FUZZ_TOK_COMMON_H
#define MP_FUZZ_TOK_COMMON_H

#include "fuzz_util.h"
#include "llm/tokenizer.h"

/* Detokenizes ids one at a time; the pieces must be valid UTF-8 (the streaming decoder's promise). */
static inline void fz_detok(const mp_tokenizer *t, const int32_t *ids, int n, int skip_special) {
    mp_detok d;
    mp_detok_init(&d, t, skip_special);
    char buf[4096];
    for (int i = 0; i < n; i++) {
        int r = mp_detok_push(&d, ids[i], buf, sizeof buf);
        if (r >= 0) fz_touch(buf, (size_t)r);
        if (r >= (int)sizeof buf) abort();
    }
    int r = mp_detok_flush(&d, buf, sizeof buf);
    if (r >= 0) fz_touch(buf, (size_t)r);
}

static inline void fz_tokenize_text(const mp_tokenizer *t, const char *text, size_t len, int flags) {
    int32_t ids[512];
    int n = mp_tokenize(t, text, len, flags & 1, (flags >> 1) & 1, ids, 512);
    if (n < 0) return;
    int nv = mp_tokenizer_n_vocab(t);
    int m = n < 512 ? n : 512;
    for (int i = 0; i < m; i++)
        if (ids[i] < 0 || ids[i] >= nv) {
            fprintf(stderr, "fuzz: token id %d out of range (vocab %d)\n", ids[i], nv);
            abort();
        }
    if (n > 512) { /* the full list must agree with the prefix */
        int32_t *all = malloc((size_t)n * sizeof *all);
        if (all) {
            int n2 = mp_tokenize(t, text, len, flags & 1, (flags >> 1) & 1, all, n);
            if (n2 != n || memcmp(all, ids, sizeof ids)) abort();
            for (int i = 0; i < n; i++)
                if (all[i] < 0 || all[i] >= nv) abort();
            fz_detok(t, all, n, (flags >> 2) & 1);
            free(all);
        }
        return;
    }
    fz_detok(t, ids, n, (flags >> 2) & 1);
}

/* Everything a loaded tokenizer offers, on fixed texts (the loader harnesses) */
static inline void fz_exercise_tokenizer(const mp_tokenizer *t) {
    static const char *texts[] = {
        "Hello world! It's 2024, isn't it?  Tabs\tand\nnewlines\r\n   ",
        " \xE2\x96\x81 leading space and \xE2\x96\x81 spm marker",
        ("\xC3\xA9t\xC3\xA9 \xE4\xB8\xAD\xE6\x96\x87 \xF0\x9F\x98\x80 \xD9\x85\xD8\xB1\xD8\xAD\xD8\xA8\xD8\xA7 "
        "\xE0\xA4\xA8\xE0\xA4\xAE\xE0\xA4\xB8\xE0\xA5\x8D\xE0\xA4\xA4\xE0\xA5\x87 12345678 3.14"),
        "<s><|im_start|>user\n<image>hi<|im_end|></s><|endoftext|><unk>[CLS][SEP]<|eot_id|>",
        "\xFF\xFE invalid \xC0\xAF \xED\xA0\x80 \xF4\x90\x80\x80 \xE2\x82 trunc\xF0\x9F",
        "",
        "a",
        "                                                                ",
    };
    int nv = mp_tokenizer_n_vocab(t);
    if (nv <= 0) abort();
    int32_t sp[4] = {mp_tokenizer_bos(t), mp_tokenizer_eos(t), mp_tokenizer_eot(t), mp_tokenizer_find(t, "<unk>")};
    for (int i = 0; i < 4; i++) {
        if (sp[i] < -1 || sp[i] >= nv) abort();
        mp_tokenizer_is_eog(t, sp[i]);
        mp_tokenizer_is_special(t, sp[i]);
    }
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
        for (int f = 0; f < 8; f++) fz_tokenize_text(t, texts[i], strlen(texts[i]), f);
    /* every token's bytes (the first and last few thousand) and a detok stream over them */
    char buf[2048];
    int lim = nv < 4096 ? nv : 4096;
    int32_t *ids = malloc((size_t)lim * sizeof *ids);
    for (int i = 0; i < lim; i++) {
        int32_t id = i < lim / 2 ? i : nv - 1 - (i - lim / 2);
        if (ids) ids[i] = id;
        int r = mp_token_to_bytes(t, id, buf, sizeof buf);
        if (r < 0) abort();
        fz_touch(buf, (size_t)(r < (int)sizeof buf ? r : (int)sizeof buf));
    }
    if (ids) {
        fz_detok(t, ids, lim, 0);
        fz_detok(t, ids, lim, 1);
    }
    free(ids);
    if (mp_token_to_bytes(t, -1, buf, sizeof buf) != -1 || mp_token_to_bytes(t, nv, buf, sizeof buf) != -1) abort();
}

#endif
