/* tokenizer_gguf.c — a tokenizer from GGUF metadata (tokenizer.ggml.*), as llama.cpp reads it. */
#include "llm/tokenizer_int.h"
#include "models/gguf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int get_id(const mp_gguf *g, const char *key, int n_vocab, int32_t *id, mp_error *err) {
    if (!mp_gguf_has(g, key)) return 0;
    uint32_t v;
    if (mp_gguf_get_u32(g, key, &v, err)) return -1;
    if (v < (uint32_t)n_vocab) *id = (int32_t)v; /* out of range: keep the default (llama.cpp warns) */
    return 0;
}

static int get_flag(const mp_gguf *g, const char *key, int *flag, mp_error *err) {
    if (!mp_gguf_has(g, key)) return 0;
    return mp_gguf_get_bool(g, key, flag, err);
}

int mp_tokenizer_load_gguf(mp_tokenizer **out, const struct mp_gguf *g, mp_error *err) {
    *out = NULL;
    const char *path = mp_gguf_path(g);
    const char *model, *pre = NULL;
    if (mp_gguf_get_str(g, "tokenizer.ggml.model", &model, err)) return -1;
    if (mp_gguf_get_str_or(g, "tokenizer.ggml.pre", NULL, &pre, err)) return -1;
    int kind;
    if (!strcmp(model, "llama")) kind = TK_SPM;
    else if (!strcmp(model, "gpt2")) kind = TK_BPE;
    else if (!strcmp(model, "bert")) kind = TK_WPM;
    else return mp_errf(err, "%s: unsupported tokenizer model \"%s\" (supported: llama, gpt2, bert)", path, model);

    const mp_gguf_value *toks;
    uint64_t n;
    if (mp_gguf_get_arr(g, "tokenizer.ggml.tokens", &toks, &n, err)) return -1;
    if (toks->elem_type != MP_GGUF_STRING) return mp_errf(err, "%s: tokenizer.ggml.tokens is not an array of strings", path);
    if (n == 0 || n > (1u << 24)) return mp_errf(err, "%s: tokenizer.ggml.tokens has %llu entries", path, (unsigned long long)n);
    const mp_gguf_value *scores = NULL, *types = NULL;
    if (mp_gguf_has(g, "tokenizer.ggml.scores")) {
        uint64_t ns;
        if (mp_gguf_get_arr(g, "tokenizer.ggml.scores", &scores, &ns, err)) return -1;
        if (ns < n || (scores->elem_type != MP_GGUF_F32 && scores->elem_type != MP_GGUF_I32))
            return mp_errf(err, "%s: tokenizer.ggml.scores has %llu %s values for %llu tokens", path,
                           (unsigned long long)ns, mp_gguf_type_name((int)scores->elem_type), (unsigned long long)n);
    }
    if (mp_gguf_has(g, "tokenizer.ggml.token_type")) {
        uint64_t nt;
        if (mp_gguf_get_arr(g, "tokenizer.ggml.token_type", &types, &nt, err)) return -1;
        if (nt < n || types->elem_type != MP_GGUF_I32)
            return mp_errf(err, "%s: tokenizer.ggml.token_type has %llu %s values for %llu tokens", path,
                           (unsigned long long)nt, mp_gguf_type_name((int)types->elem_type), (unsigned long long)n);
    }

    mp_tokenizer *t = tok_new(kind, (int)n);
    if (!t) return mp_errf(err, "%s: out of memory", path);
    for (uint64_t i = 0; i < n; i++) {
        uint64_t len;
        const char *s = mp_gguf_arr_str(toks, i, &len);
        char tmp[32];
        if (!s || len == 0) { /* llama.cpp names empty tokens */
            snprintf(tmp, sizeof tmp, "[EMPTY_%llu]", (unsigned long long)i);
            s = tmp;
            len = strlen(tmp);
        }
        float sc = scores ? (float)mp_gguf_arr_f64(scores, i) : 0.0f;
        int ty = types ? (int)mp_gguf_arr_i64(types, i) : TT_NORMAL;
        if (ty < 0 || ty > TT_BYTE) ty = TT_UNDEFINED;
        if (tok_set(t, (int32_t)i, s, (size_t)len, sc, ty)) { mp_tokenizer_free(t); return mp_errf(err, "%s: out of memory", path); }
    }

    int add_bos = 0, add_eos = 0, add_sep = 0, add_space_prefix = 0;
    if (kind == TK_SPM) {
        t->bos = n > 1 ? 1 : -1;
        t->eos = n > 2 ? 2 : -1;
        t->unk = 0;
        t->escape_ws = 1;
        add_space_prefix = 1;
        add_bos = 1;
    } else if (kind == TK_BPE) {
        t->bos = t->eos = n > 11 ? 11 : -1; /* llama.cpp's defaults when the ids are absent */
        t->byte_level = 1;
        t->clean_spaces = 1;
    } else {
        t->bos = 101;
        t->unk = 100;
        t->sep = 102;
        t->pad = 0;
        t->mask_id = 103;
        if (n <= 103) t->bos = t->unk = t->sep = t->mask_id = -1;
        add_bos = 1;
        add_sep = 1;
        t->clean_spaces = 1;
    }
    int rc = 0;
    rc |= get_id(g, "tokenizer.ggml.bos_token_id", (int)n, &t->bos, err);
    rc |= get_id(g, "tokenizer.ggml.eos_token_id", (int)n, &t->eos, err);
    rc |= get_id(g, "tokenizer.ggml.unknown_token_id", (int)n, &t->unk, err);
    rc |= get_id(g, "tokenizer.ggml.seperator_token_id", (int)n, &t->sep, err);
    rc |= get_id(g, "tokenizer.ggml.padding_token_id", (int)n, &t->pad, err);
    rc |= get_id(g, "tokenizer.ggml.mask_token_id", (int)n, &t->mask_id, err);
    rc |= get_id(g, "tokenizer.ggml.eot_token_id", (int)n, &t->eot, err);
    rc |= get_flag(g, "tokenizer.ggml.add_bos_token", &add_bos, err);
    rc |= get_flag(g, "tokenizer.ggml.add_eos_token", &add_eos, err);
    rc |= get_flag(g, "tokenizer.ggml.add_sep_token", &add_sep, err);
    rc |= get_flag(g, "tokenizer.ggml.add_space_prefix", &add_space_prefix, err);
    if (kind == TK_WPM) {
        int lower = 1, strip;
        rc |= get_flag(g, "tokenizer.ggml.normalizer.lowercase", &lower, err);
        strip = lower;
        rc |= get_flag(g, "tokenizer.ggml.normalizer.strip_accents", &strip, err);
        t->wpm_lowercase = lower;
        t->wpm_strip_accents = strip;
    }
    if (rc) { mp_tokenizer_free(t); return -1; }
    t->add_bos = add_bos;
    t->add_eos = add_eos;
    t->add_sep = add_sep;
    t->add_space_prefix = kind == TK_SPM ? add_space_prefix : 0;

    if (kind == TK_BPE) {
        const char *p = pre ? pre : "default";
        if (tok_set_pre(t, p)) {
            mp_tokenizer_free(t);
            return mp_errf(err, "%s: unsupported pre-tokenizer \"%s\" (tokenizer.ggml.pre)", path, p);
        }
        if (!strcmp(p, "llama3") || !strcmp(p, "llama-bpe") || !strcmp(p, "llama-v3") || !strcmp(p, "tekken"))
            if (!mp_gguf_has(g, "tokenizer.ggml.add_bos_token")) t->add_bos = 1;
        if (!strcmp(p, "qwen2") || !strcmp(p, "deepseek-llm") || !strcmp(p, "deepseek-coder") ||
            !strcmp(p, "command-r") || !strcmp(p, "smollm") || !strcmp(p, "tekken") || !strcmp(p, "gpt-4o"))
            t->clean_spaces = 0;
    }
    if (tok_finish(t, err, path)) { mp_tokenizer_free(t); return -1; }

    if (kind == TK_BPE) {
        const mp_gguf_value *mg;
        uint64_t nm;
        if (mp_gguf_get_arr(g, "tokenizer.ggml.merges", &mg, &nm, err)) { mp_tokenizer_free(t); return -1; }
        if (mg->elem_type != MP_GGUF_STRING || nm > (1u << 24)) {
            mp_tokenizer_free(t);
            return mp_errf(err, "%s: tokenizer.ggml.merges is not an array of strings", path);
        }
        if (tok_merges_reserve(t, (int)nm)) { mp_tokenizer_free(t); return mp_errf(err, "%s: out of memory", path); }
        for (uint64_t i = 0; i < nm; i++) {
            uint64_t len;
            const char *s = mp_gguf_arr_str(mg, i, &len);
            /* "a b": split at the first space after the first character (a may itself be a space) */
            const char *sp = s && len > 1 ? memchr(s + 1, ' ', (size_t)len - 1) : NULL;
            if (!sp) continue;
            if (tok_add_merge(t, s, (size_t)(sp - s), sp + 1, (size_t)(len - (uint64_t)(sp + 1 - s)), (int)i) < 0) {
                mp_tokenizer_free(t);
                return mp_errf(err, "%s: out of memory", path);
            }
        }
    }

    /* end-of-generation / control tokens recognised by their text (as llama.cpp does) */
    tok_mark_eog(t);
    /* Phi-3: special tokens eat the whitespace after them (llama.cpp sets this by model name) */
    const char *name = NULL;
    mp_error e2;
    if (!mp_gguf_get_str_or(g, "general.name", NULL, &name, &e2) && name) {
        char low[256];
        size_t k = 0;
        for (; name[k] && k + 1 < sizeof low; k++) low[k] = (char)(name[k] >= 'A' && name[k] <= 'Z' ? name[k] + 32 : name[k]);
        low[k] = 0;
        if (strstr(low, "phi-3") || strstr(low, "phi3")) {
            for (int i = 0; i < t->n_specials; i++) t->v[t->specials[i]].rstrip = 1;
            int32_t id = tok_lookup(t, "</s>", 4);
            if (id >= 0) t->v[id].rstrip = 1;
            const char *no[] = {"<unk>", "<s>", "<|endoftext|>"};
            for (int j = 0; j < 3; j++) {
                id = tok_lookup(t, no[j], strlen(no[j]));
                if (id >= 0) t->v[id].rstrip = 0;
            }
        }
    }
    /* tok_finish built the special list before the EOG fix-ups: rebuild it */
    if (tok_finish(t, err, path)) { mp_tokenizer_free(t); return -1; }
    *out = t;
    return 0;
}
