/* textmodel.c — load decoder + tokenizer + chat template + generation defaults for `-m MODEL`. */
#include "runtime/textmodel.h"

#include "llm/jinja.h"
#include "models/gguf.h"
#include "models/hfjson.h"
#include "models/hub.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int is_dir(const char *p) {
    struct stat st;
    return p && stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int has_suffix(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

static int is_gguf(const char *path) {
    FILE *f = fopen(path, "rb");
    char magic[4] = {0};
    if (!f) return 0;
    if (fread(magic, 1, 4, f) != 4) magic[0] = 0;
    fclose(f);
    return !memcmp(magic, "GGUF", 4);
}

int mp_textmodel_load_tokenizer(mp_tokenizer **tok, const char *model, const char *tok_path, int n_vocab,
                                mp_error *err) {
    *tok = NULL;
    int hf = 0, rc;
    if (tok_path) {
        hf = is_dir(tok_path) || has_suffix(tok_path, ".json");
        rc = hf ? mp_tokenizer_load_hf(tok, tok_path, err) : mp_tokenizer_load_llama2c(tok, tok_path, 0, err);
    } else if (is_dir(model)) {
        hf = 1;
        rc = mp_tokenizer_load_hf(tok, model, err);
    } else if (is_gguf(model)) {
        mp_gguf *g = NULL;
        if (mp_gguf_open(&g, model, err) < 0) return -1;
        rc = mp_tokenizer_load_gguf(tok, g, err);
        mp_gguf_free(g);
        hf = 1; /* GGUF vocabularies may be smaller than a padded embedding table too */
    } else { /* llama2.c: tokenizer.bin beside the checkpoint */
        char cand[4200];
        const char *slash = strrchr(model, '/');
        snprintf(cand, sizeof cand, "%.*stokenizer.bin", slash ? (int)(slash - model + 1) : 0, model);
        struct stat st;
        if (stat(cand, &st) != 0)
            return mp_errf(err, "%s: no tokenizer given (use --tokenizer FILE for a llama2.c checkpoint)", model);
        rc = mp_tokenizer_load_llama2c(tok, cand, 0, err);
    }
    if (rc < 0) return -1;
    int nv = mp_tokenizer_n_vocab(*tok);
    if (nv > n_vocab || (!hf && nv != n_vocab)) {
        mp_tokenizer_free(*tok);
        *tok = NULL;
        return mp_errf(err, "%s: the tokenizer has %d tokens, the model %d (use --tokenizer FILE)", model, nv, n_vocab);
    }
    return 0;
}

int mp_textmodel_generation_defaults(const char *model, const mp_sampling_given *g, mp_sampler_params *sp,
                                     mp_error *err) {
    if (!is_dir(model)) return 0;
    mp_hf_config hc;
    if (mp_hf_config_load(&hc, model, err) < 0) return -1;
    int rc = 0;
    if (mp_json_present(&hc.generation)) {
        const mp_json *j = &hc.generation;
        int do_sample = 0;
        double t = sp->temperature, p = sp->top_p, mp = sp->min_p, r = sp->repeat_penalty;
        int64_t k = sp->top_k;
        if (mp_json_bool_or(j, "do_sample", 0, &do_sample, err) < 0 || mp_json_f64_or(j, "temperature", 1.0, &t, err) < 0 ||
            mp_json_f64_or(j, "top_p", 1.0, &p, err) < 0 || mp_json_int_or(j, "top_k", 0, &k, err) < 0 ||
            mp_json_f64_or(j, "min_p", 0.0, &mp, err) < 0 || mp_json_f64_or(j, "repetition_penalty", 1.0, &r, err) < 0) {
            rc = -1;
        } else {
            if (!g->temp) sp->temperature = do_sample ? (float)t : 0.0f;
            if (!g->top_p) sp->top_p = (float)p;
            if (!g->top_k && k >= 0 && k < (1 << 30)) sp->top_k = (int)k;
            if (!g->min_p && mp >= 0 && mp <= 1) sp->min_p = (float)mp;
            if (!g->rep && r > 0) sp->repeat_penalty = (float)r;
        }
    }
    mp_hf_config_free(&hc);
    return rc;
}

static void token_text(const mp_tokenizer *tok, int32_t id, char *out, size_t cap) {
    out[0] = 0;
    if (id < 0) return;
    int n = mp_token_to_bytes(tok, id, out, (int)cap - 1);
    out[n > 0 ? n : 0] = 0;
}

int mp_textmodel_load(mp_textmodel *tm, const char *spec, const char *tok_path, mp_exec *ex, mp_error *err) {
    memset(tm, 0, sizeof *tm);
    if (mp_model_resolve(spec, NULL, tm->path, sizeof tm->path, err) < 0) return -1;
    if (mp_llama_load(&tm->llm, tm->path, ex, err) < 0) return -1;
    if (mp_textmodel_load_tokenizer(&tm->tok, tm->path, tok_path, tm->llm.cfg.n_vocab, err) < 0) goto fail;
    /* sampling defaults: greedy unless generation_config.json asks for sampling */
    tm->sampling = mp_sampler_default_params();
    tm->sampling.temperature = 0.0f;
    mp_sampling_given none = {0, 0, 0, 0, 0};
    if (mp_textmodel_generation_defaults(tm->path, &none, &tm->sampling, err) < 0) goto fail;
    /* chat template: an HF folder's files, or the GGUF metadata; llama2.c checkpoints have none */
    mp_error terr;
    if (is_dir(tm->path)) {
        if (mp_chat_template_load_hf(tm->path, &tm->chat_template, &terr) < 0) tm->chat_template = NULL;
    } else if (is_gguf(tm->path)) {
        mp_gguf *g = NULL;
        if (mp_gguf_open(&g, tm->path, err) < 0) goto fail;
        if (mp_chat_template_from_gguf(g, &tm->chat_template, &terr) < 0) tm->chat_template = NULL;
        mp_gguf_free(g);
    }
    token_text(tm->tok, mp_tokenizer_bos(tm->tok), tm->bos_text, sizeof tm->bos_text);
    token_text(tm->tok, mp_tokenizer_eos(tm->tok), tm->eos_text, sizeof tm->eos_text);
    return 0;
fail:
    mp_textmodel_free(tm, ex);
    return -1;
}

void mp_textmodel_free(mp_textmodel *tm, mp_exec *ex) {
    if (tm->tok) mp_tokenizer_free(tm->tok);
    free(tm->chat_template);
    mp_llama_free(&tm->llm, ex);
    memset(tm, 0, sizeof *tm);
}
