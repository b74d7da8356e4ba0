/* tokenizer_hf.c — HF tokenizers: tokenizer.json, or vocab.json + merges.txt (+ tokenizer_config.json).
 *
 * Supported tokenizer.json parts (anything else is a clear error naming it):
 *   model: BPE (byte-level; merges as "a b" strings or [a, b] pairs; byte_fallback; ignore_merges),
 *          WordPiece;
 *   normalizer: null, NFC, Sequence of those;
 *   pre_tokenizer: ByteLevel (use_regex: the GPT-2 pattern; add_prefix_space), Split with a Regex or
 *          String pattern and behavior Isolated, Digits, BertPreTokenizer (WordPiece), Sequence;
 *   post_processor: TemplateProcessing (single), ByteLevel, BertProcessing/RobertaProcessing, Sequence;
 *   added_tokens with special / lstrip / rstrip.
 */
#include "llm/tokenizer_int.h"
#include "models/mmap.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RE_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"

#define MAX_JSON ((size_t)1 << 30)

typedef struct added {
    int32_t id;
    const char *content;
    int special, lstrip, rstrip;
} added;

typedef struct hf_ctx {
    const char *src;
    mp_error *err;
    mp_tokenizer *t;
    int is_wpm, byte_level;
    int n_regex;
    const char *regex[TOK_MAX_REGEX];
    char *regex_own[TOK_MAX_REGEX];
    int ignore_merges, byte_fallback, add_prefix_space, nfc;
    int tmpl, n_pre, n_post;
    const char *pre_tok[8], *post_tok[8];
} hf_ctx;

static const char *jstr(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int jbool(const cJSON *o, const char *k, int def) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (cJSON_IsBool(v)) return cJSON_IsTrue(v);
    return def;
}

/* A token given as "text" or {"content": "text", ...} in tokenizer_config.json. */
static const char *token_text(const cJSON *v) {
    if (cJSON_IsString(v)) return v->valuestring;
    if (cJSON_IsObject(v)) return jstr(v, "content");
    return NULL;
}

static int add_regex(hf_ctx *c, const char *re, int own) {
    if (c->n_regex >= TOK_MAX_REGEX) return mp_errf(c->err, "%s: more than %d pre-tokenizer splits", c->src, TOK_MAX_REGEX);
    c->regex[c->n_regex] = re;
    c->regex_own[c->n_regex] = own ? (char *)re : NULL;
    c->n_regex++;
    return 0;
}

/* Escapes a literal string as a regex. */
static char *regex_quote(const char *s) {
    size_t n = strlen(s);
    char *o = malloc(2 * n + 1), *w = o;
    if (!o) return NULL;
    for (size_t i = 0; i < n; i++) {
        if (strchr("\\^$.|?*+()[]{}", s[i])) *w++ = '\\';
        *w++ = s[i];
    }
    *w = 0;
    return o;
}

typedef int (*part_fn)(hf_ctx *c, const cJSON *node, const char *type);

/* One pipeline part ("normalizer", "pre_tokenizer", ...): null is nothing, a "Sequence" runs fn on each
 * element of list_key, anything else goes to fn with its type. */
static int parse_part(hf_ctx *c, const cJSON *node, const char *what, const char *list_key, part_fn fn) {
    if (!node || cJSON_IsNull(node)) return 0;
    const char *type = jstr(node, "type");
    if (!type) return mp_errf(c->err, "%s: %s without a type", c->src, what);
    if (!strcmp(type, "Sequence")) {
        const cJSON *it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(node, list_key))
            if (parse_part(c, it, what, list_key, fn)) return -1;
        return 0;
    }
    return fn(c, node, type);
}

static int parse_normalizer(hf_ctx *c, const cJSON *n, const char *type) {
    if (!strcmp(type, "NFC")) { c->nfc = 1; return 0; }
    if (!strcmp(type, "BertNormalizer") && c->is_wpm) {
        c->t->wpm_lowercase = jbool(n, "lowercase", 1);
        const cJSON *sa = cJSON_GetObjectItemCaseSensitive(n, "strip_accents");
        c->t->wpm_strip_accents = cJSON_IsBool(sa) ? cJSON_IsTrue(sa) : c->t->wpm_lowercase;
        return 0;
    }
    return mp_errf(c->err, "%s: normalizer \"%s\" is not supported", c->src, type);
}

static int parse_pretok(hf_ctx *c, const cJSON *p, const char *type) {
    if (!strcmp(type, "ByteLevel")) {
        c->byte_level = 1;
        if (jbool(p, "add_prefix_space", 0)) c->add_prefix_space = 1;
        if (jbool(p, "use_regex", 1)) return add_regex(c, RE_GPT2, 0);
        return 0;
    }
    if (!strcmp(type, "Digits")) return add_regex(c, jbool(p, "individual_digits", 0) ? "\\p{N}" : "\\p{N}+", 0);
    if (!strcmp(type, "BertPreTokenizer") && c->is_wpm) return 0; /* part of the WordPiece path */
    if (!strcmp(type, "Split")) {
        const char *beh = jstr(p, "behavior");
        if (!beh || strcmp(beh, "Isolated") || jbool(p, "invert", 0))
            return mp_errf(c->err, "%s: Split pre-tokenizer with behavior \"%s\"%s is not supported (only Isolated)",
                           c->src, beh ? beh : "?", jbool(p, "invert", 0) ? " inverted" : "");
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(p, "pattern");
        const char *re = jstr(pat, "Regex");
        if (re) return add_regex(c, re, 0);
        const char *lit = jstr(pat, "String");
        if (!lit) return mp_errf(c->err, "%s: Split pre-tokenizer without a pattern", c->src);
        char *q = regex_quote(lit);
        if (!q) return mp_errf(c->err, "%s: out of memory", c->src);
        if (add_regex(c, q, 1)) { free(q); return -1; }
        return 0;
    }
    return mp_errf(c->err, "%s: pre_tokenizer \"%s\" is not supported", c->src, type);
}

static int parse_post(hf_ctx *c, const cJSON *p, const char *type) {
    if (!strcmp(type, "ByteLevel")) return 0;
    if (!strcmp(type, "TemplateProcessing")) {
        c->tmpl = 1;
        int after = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(p, "single")) {
            const cJSON *sp = cJSON_GetObjectItemCaseSensitive(it, "SpecialToken");
            if (sp) {
                const char *id = jstr(sp, "id");
                if (!id) continue;
                if (after ? c->n_post >= 8 : c->n_pre >= 8)
                    return mp_errf(c->err, "%s: post_processor template too long", c->src);
                if (after) c->post_tok[c->n_post++] = id;
                else c->pre_tok[c->n_pre++] = id;
            } else if (cJSON_GetObjectItemCaseSensitive(it, "Sequence")) {
                after = 1;
            }
        }
        return 0;
    }
    if (!strcmp(type, "BertProcessing") || !strcmp(type, "RobertaProcessing")) {
        const cJSON *cls = cJSON_GetObjectItemCaseSensitive(p, "cls"), *sep = cJSON_GetObjectItemCaseSensitive(p, "sep");
        c->tmpl = 1;
        if (cJSON_GetArraySize(cls) >= 1 && cJSON_IsString(cJSON_GetArrayItem(cls, 0)))
            c->pre_tok[c->n_pre++] = cJSON_GetArrayItem(cls, 0)->valuestring;
        if (cJSON_GetArraySize(sep) >= 1 && cJSON_IsString(cJSON_GetArrayItem(sep, 0)))
            c->post_tok[c->n_post++] = cJSON_GetArrayItem(sep, 0)->valuestring;
        return 0;
    }
    return mp_errf(c->err, "%s: post_processor \"%s\" is not supported", c->src, type);
}

/* Fills the vocabulary from a JSON object {token: id} plus added tokens; ids must be unique and dense
 * enough (holes become "[UNUSED_i]" entries). */
static int fill_vocab(hf_ctx *c, const cJSON *vocab, const added *ad, int nad) {
    int32_t max_id = -1;
    int count = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, vocab) {
        if (!cJSON_IsNumber(it) || !it->string) return mp_errf(c->err, "%s: vocab entry is not \"token\": id", c->src);
        double d = it->valuedouble;
        if (d < 0 || d >= (1 << 24) || d != (double)(int32_t)d)
            return mp_errf(c->err, "%s: vocab id %g of \"%s\" is out of range", c->src, d, it->string);
        if ((int32_t)d > max_id) max_id = (int32_t)d;
        count++;
    }
    for (int i = 0; i < nad; i++) if (ad[i].id > max_id) max_id = ad[i].id;
    if (max_id < 0) return mp_errf(c->err, "%s: empty vocabulary", c->src);
    mp_tokenizer *t = tok_new(c->is_wpm ? TK_WPM : TK_BPE, max_id + 1);
    if (!t) return mp_errf(c->err, "%s: out of memory", c->src);
    c->t = t;
    char *seen = calloc((size_t)max_id + 1, 1);
    if (!seen) return mp_errf(c->err, "%s: out of memory", c->src);
    int rc = 0;
    cJSON_ArrayForEach(it, vocab) {
        int32_t id = (int32_t)it->valuedouble;
        const char *s = it->string;
        size_t len = strlen(s);
        if (c->is_wpm) {
            /* WordPiece: "##x" continues a word, others start one; store starts with the "▁" prefix
             * as llama.cpp's GGUF conversion does, so one matcher serves both */
            if (len >= 2 && s[0] == '#' && s[1] == '#') {
                rc = tok_set(t, id, s + 2, len - 2, 0, TT_NORMAL);
            } else {
                char *b = malloc(len + 4);
                if (!b) { rc = -1; break; }
                memcpy(b, "\xE2\x96\x81", 3);
                memcpy(b + 3, s, len);
                rc = tok_set(t, id, b, len + 3, 0, TT_NORMAL);
                free(b);
            }
        } else {
            rc = tok_set(t, id, s, len, 0, TT_NORMAL);
        }
        if (rc) break;
        seen[id] = 1;
    }
    for (int i = 0; i < nad && !rc; i++) {
        rc = tok_set(t, ad[i].id, ad[i].content, strlen(ad[i].content), 0, ad[i].special ? TT_CONTROL : TT_USER_DEFINED);
        t->v[ad[i].id].lstrip = (uint8_t)ad[i].lstrip;
        t->v[ad[i].id].rstrip = (uint8_t)ad[i].rstrip;
        seen[ad[i].id] = 1;
    }
    for (int32_t id = 0; id <= max_id && !rc; id++) {
        if (seen[id]) continue;
        char tmp[32];
        snprintf(tmp, sizeof tmp, "[UNUSED_%d]", id);
        rc = tok_set(t, id, tmp, strlen(tmp), 0, TT_UNUSED);
    }
    free(seen);
    if (rc) return mp_errf(c->err, "%s: out of memory", c->src);
    return 0;
}

static int32_t find_tok(const mp_tokenizer *t, const char *s) { return s ? tok_lookup(t, s, strlen(s)) : -1; }

/* Common tail: pre-tokenizer, template, specials from tokenizer_config.json. */
static int finish(hf_ctx *c, const cJSON *cfg) {
    mp_tokenizer *t = c->t;
    t->byte_level = c->byte_level;
    t->ignore_merges = c->ignore_merges;
    t->byte_fallback = c->byte_fallback;
    t->bl_prefix_space = c->add_prefix_space;
    t->norm_nfc = c->nfc;
    for (int i = 0; i < c->n_regex; i++)
        if (tok_add_regex(t, c->regex[i], c->err)) return -1;
    if (cfg) {
        t->bos = find_tok(t, token_text(cJSON_GetObjectItemCaseSensitive(cfg, "bos_token")));
        t->eos = find_tok(t, token_text(cJSON_GetObjectItemCaseSensitive(cfg, "eos_token")));
        t->unk = find_tok(t, token_text(cJSON_GetObjectItemCaseSensitive(cfg, "unk_token")));
        t->pad = find_tok(t, token_text(cJSON_GetObjectItemCaseSensitive(cfg, "pad_token")));
        t->sep = find_tok(t, token_text(cJSON_GetObjectItemCaseSensitive(cfg, "sep_token")));
        t->cls = find_tok(t, token_text(cJSON_GetObjectItemCaseSensitive(cfg, "cls_token")));
        t->add_bos = jbool(cfg, "add_bos_token", 0);
        t->add_eos = jbool(cfg, "add_eos_token", 0);
        t->clean_spaces = jbool(cfg, "clean_up_tokenization_spaces", 0);
    }
    if (c->tmpl) {
        t->has_template = 1;
        for (int i = 0; i < c->n_pre; i++) {
            int32_t id = find_tok(t, c->pre_tok[i]);
            if (id < 0) return mp_errf(c->err, "%s: post_processor token \"%s\" is not in the vocabulary", c->src, c->pre_tok[i]);
            t->tmpl_pre[t->n_tmpl_pre++] = id;
        }
        for (int i = 0; i < c->n_post; i++) {
            int32_t id = find_tok(t, c->post_tok[i]);
            if (id < 0) return mp_errf(c->err, "%s: post_processor token \"%s\" is not in the vocabulary", c->src, c->post_tok[i]);
            t->tmpl_post[t->n_tmpl_post++] = id;
        }
    }
    if (c->is_wpm) {
        if (t->bos < 0) t->bos = t->cls >= 0 ? t->cls : find_tok(t, "\xE2\x96\x81[CLS]");
        if (t->sep < 0) t->sep = find_tok(t, "\xE2\x96\x81[SEP]");
        if (t->unk < 0) t->unk = find_tok(t, "\xE2\x96\x81[UNK]");
    }
    if (tok_finish(t, c->err, c->src)) return -1;
    tok_mark_eog(t);
    return tok_finish(t, c->err, c->src); /* types may have changed */
}

/* "a b" (string) or ["a", "b"] merges */
static int add_merges_json(hf_ctx *c, const cJSON *merges) {
    int n = cJSON_GetArraySize(merges);
    if (tok_merges_reserve(c->t, n)) return mp_errf(c->err, "%s: out of memory", c->src);
    int rank = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, merges) {
        const char *a, *b;
        size_t na, nb;
        if (cJSON_IsString(it)) {
            const char *s = it->valuestring, *sp = s[0] ? strchr(s + 1, ' ') : NULL;
            if (!sp) return mp_errf(c->err, "%s: merge %d \"%s\" has no space", c->src, rank, s);
            a = s;
            na = (size_t)(sp - s);
            b = sp + 1;
            nb = strlen(b);
        } else if (cJSON_IsArray(it) && cJSON_GetArraySize(it) == 2 && cJSON_IsString(cJSON_GetArrayItem(it, 0)) &&
                   cJSON_IsString(cJSON_GetArrayItem(it, 1))) {
            a = cJSON_GetArrayItem(it, 0)->valuestring;
            b = cJSON_GetArrayItem(it, 1)->valuestring;
            na = strlen(a);
            nb = strlen(b);
        } else {
            return mp_errf(c->err, "%s: merge %d is neither \"a b\" nor [a, b]", c->src, rank);
        }
        if (tok_add_merge(c->t, a, na, b, nb, rank) < 0) return mp_errf(c->err, "%s: out of memory", c->src);
        rank++;
    }
    return 0;
}

static int parse_added(hf_ctx *c, const cJSON *arr, added **out, int *nout) {
    int n = cJSON_GetArraySize(arr), k = 0;
    added *ad = calloc((size_t)(n > 0 ? n : 1), sizeof *ad);
    if (!ad) return mp_errf(c->err, "%s: out of memory", c->src);
    const cJSON *it;
    cJSON_ArrayForEach(it, arr) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id");
        const char *content = jstr(it, "content");
        if (!cJSON_IsNumber(id) || !content || id->valuedouble < 0 || id->valuedouble >= (1 << 24) || !content[0]) {
            free(ad);
            return mp_errf(c->err, "%s: bad added_tokens entry %d", c->src, k);
        }
        ad[k++] = (added){(int32_t)id->valuedouble, content, jbool(it, "special", 0), jbool(it, "lstrip", 0),
                          jbool(it, "rstrip", 0)};
    }
    *out = ad;
    *nout = k;
    return 0;
}

/* dir + "/" + name into buf; -1 (with an error) when it does not fit. */
static int join_path(char *buf, size_t cap, const char *dir, const char *name, mp_error *err) {
    size_t a = strlen(dir), b = strlen(name);
    if (a + 1 + b + 1 > cap) return mp_errf(err, "%s: path too long", dir);
    memcpy(buf, dir, a);
    buf[a] = '/';
    memcpy(buf + a + 1, name, b + 1);
    return 0;
}

static cJSON *read_json(const char *path, mp_error *err) {
    char *buf;
    size_t n;
    if (mp_read_file(path, MAX_JSON, &buf, &n, err)) return NULL;
    cJSON *j = cJSON_ParseWithLength(buf, n);
    free(buf);
    if (!j) mp_errf(err, "%s: not valid JSON", path);
    return j;
}

/* Hands the tokenizer out on success (frees it on failure) and releases the loader's state. */
static int ctx_end(hf_ctx *c, int rc, mp_tokenizer **out, added *ad) {
    if (rc) mp_tokenizer_free(c->t);
    else *out = c->t;
    for (int i = 0; i < c->n_regex; i++) free(c->regex_own[i]);
    free(ad);
    return rc;
}

static int load_tokenizer_json(mp_tokenizer **out, const char *path, const cJSON *cfg, mp_error *err) {
    cJSON *j = read_json(path, err);
    if (!j) return -1;
    hf_ctx c = {0};
    c.src = path;
    c.err = err;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(j, "model");
    const char *mtype = jstr(model, "type");
    added *ad = NULL;
    int nad = 0, rc = -1;
    if (!mtype) {
        /* older files: a BPE model has merges */
        if (cJSON_GetObjectItemCaseSensitive(model, "merges")) mtype = "BPE";
    }
    if (!mtype || (strcmp(mtype, "BPE") && strcmp(mtype, "WordPiece"))) {
        mp_errf(err, "%s: tokenizer model \"%s\" is not supported (BPE, WordPiece)", path, mtype ? mtype : "?");
        goto done;
    }
    c.is_wpm = !strcmp(mtype, "WordPiece");
    if (!c.is_wpm) {
        const char *pre = jstr(model, "continuing_subword_prefix"), *suf = jstr(model, "end_of_word_suffix");
        if ((pre && pre[0]) || (suf && suf[0])) {
            mp_errf(err, "%s: BPE with continuing_subword_prefix/end_of_word_suffix is not supported", path);
            goto done;
        }
        c.byte_fallback = jbool(model, "byte_fallback", 0);
        c.ignore_merges = jbool(model, "ignore_merges", 0);
    }
    if (parse_added(&c, cJSON_GetObjectItemCaseSensitive(j, "added_tokens"), &ad, &nad)) goto done;
    if (fill_vocab(&c, cJSON_GetObjectItemCaseSensitive(model, "vocab"), ad, nad)) goto done;
    if (parse_part(&c, cJSON_GetObjectItemCaseSensitive(j, "normalizer"), "normalizer", "normalizers", parse_normalizer) ||
        parse_part(&c, cJSON_GetObjectItemCaseSensitive(j, "pre_tokenizer"), "pre_tokenizer", "pretokenizers", parse_pretok) ||
        parse_part(&c, cJSON_GetObjectItemCaseSensitive(j, "post_processor"), "post_processor", "processors", parse_post))
        goto done;
    if (!c.is_wpm && !c.byte_level) {
        const cJSON *dec = cJSON_GetObjectItemCaseSensitive(j, "decoder");
        const char *dt = jstr(dec, "type");
        if (dt && !strcmp(dt, "ByteLevel")) c.byte_level = 1;
    }
    if (!c.is_wpm && !c.byte_level) {
        mp_errf(err, "%s: BPE without a ByteLevel pre-tokenizer/decoder is not supported", path);
        goto done;
    }
    /* the vocabulary must be in place before merges are resolved to ids */
    c.t->byte_level = c.byte_level;
    if (tok_finish(c.t, err, path)) goto done;
    if (!c.is_wpm && add_merges_json(&c, cJSON_GetObjectItemCaseSensitive(model, "merges"))) goto done;
    if (finish(&c, cfg)) goto done;
    rc = 0;
done:
    cJSON_Delete(j);
    return ctx_end(&c, rc, out, ad);
}

/* vocab.json + merges.txt; the pre-tokenizer follows tokenizer_config.json's tokenizer_class. */
static int load_vocab_merges(mp_tokenizer **out, const char *dir, const cJSON *cfg, mp_error *err) {
    char vpath[4096], mpath[4096];
    if (join_path(vpath, sizeof vpath, dir, "vocab.json", err) || join_path(mpath, sizeof mpath, dir, "merges.txt", err))
        return -1;
    cJSON *vocab = read_json(vpath, err);
    if (!vocab) return -1;
    hf_ctx c = {0};
    c.src = vpath;
    c.err = err;
    c.byte_level = 1;
    added *ad = NULL;
    int nad = 0, rc = -1;
    char *mtxt = NULL;
    /* added tokens: tokenizer_config.json added_tokens_decoder {"id": {content, special, ...}} */
    const cJSON *atd = cfg ? cJSON_GetObjectItemCaseSensitive(cfg, "added_tokens_decoder") : NULL;
    if (atd) {
        int n = cJSON_GetArraySize(atd);
        ad = calloc((size_t)(n > 0 ? n : 1), sizeof *ad);
        if (!ad) { mp_errf(err, "%s: out of memory", dir); goto done; }
        const cJSON *it;
        cJSON_ArrayForEach(it, atd) {
            char *e;
            long id = strtol(it->string, &e, 10);
            const char *content = jstr(it, "content");
            if (*e || id < 0 || id >= (1 << 24) || !content || !content[0]) {
                mp_errf(err, "%s/tokenizer_config.json: bad added_tokens_decoder entry \"%s\"", dir, it->string);
                goto done;
            }
            ad[nad++] = (added){(int32_t)id, content, jbool(it, "special", 0), jbool(it, "lstrip", 0), jbool(it, "rstrip", 0)};
        }
    }
    if (fill_vocab(&c, vocab, ad, nad)) goto done;
    const char *cls = cfg ? jstr(cfg, "tokenizer_class") : NULL;
    if (cls && !strncmp(cls, "Qwen2Tokenizer", 14)) {
        /* Qwen2's tokenizer: NFC, then its own split pattern (transformers' PRETOKENIZE_REGEX) */
        c.nfc = 1;
        add_regex(&c, "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+", 0);
    } else {
        add_regex(&c, RE_GPT2, 0);
        if (cfg && jbool(cfg, "add_prefix_space", 0)) c.add_prefix_space = 1;
    }
    c.t->byte_level = 1;
    if (tok_finish(c.t, err, vpath)) goto done;
    size_t mlen;
    if (mp_read_file(mpath, MAX_JSON, &mtxt, &mlen, err)) goto done;
    int nlines = 0;
    for (size_t i = 0; i < mlen; i++) nlines += mtxt[i] == '\n';
    if (tok_merges_reserve(c.t, nlines + 1)) { mp_errf(err, "%s: out of memory", mpath); goto done; }
    int rank = 0;
    for (char *line = mtxt; line < mtxt + mlen;) {
        char *eol = memchr(line, '\n', (size_t)(mtxt + mlen - line));
        size_t ll = eol ? (size_t)(eol - line) : (size_t)(mtxt + mlen - line);
        if (ll && line[ll - 1] == '\r') ll--;
        if (ll && !(rank == 0 && ll >= 8 && !memcmp(line, "#version", 8))) {
            char *sp = ll > 1 ? memchr(line + 1, ' ', ll - 1) : NULL;
            if (!sp) { mp_errf(err, "%s: line %d has no space", mpath, rank + 1); goto done; }
            if (tok_add_merge(c.t, line, (size_t)(sp - line), sp + 1, ll - (size_t)(sp + 1 - line), rank) < 0) {
                mp_errf(err, "%s: out of memory", mpath);
                goto done;
            }
            rank++;
        }
        if (!eol) break;
        line = eol + 1;
    }
    c.src = dir;
    if (finish(&c, cfg)) goto done;
    rc = 0;
done:
    free(mtxt);
    cJSON_Delete(vocab);
    return ctx_end(&c, rc, out, ad);
}

int mp_tokenizer_load_hf(mp_tokenizer **out, const char *path, mp_error *err) {
    *out = NULL;
    char buf[4096], dir[4096];
    cJSON *cfg = NULL;
    int rc;
    if (strlen(path) + 32 > sizeof dir) return mp_errf(err, "%s: path too long", path);
    if (mp_is_dir(path)) {
        snprintf(dir, sizeof dir, "%s", path);
    } else if (mp_is_file(path)) {
        snprintf(dir, sizeof dir, "%s", path);
        char *slash = strrchr(dir, '/');
        if (slash) *slash = 0;
        else snprintf(dir, sizeof dir, ".");
    } else {
        return mp_errf(err, "%s: no such file or folder", path);
    }
    if (join_path(buf, sizeof buf, dir, "tokenizer_config.json", err)) return -1;
    if (mp_is_file(buf)) {
        cfg = read_json(buf, err);
        if (!cfg) return -1;
    }
    if (mp_is_file(path)) {
        rc = load_tokenizer_json(out, path, cfg, err);
    } else {
        join_path(buf, sizeof buf, dir, "tokenizer.json", err);
        if (mp_is_file(buf)) {
            rc = load_tokenizer_json(out, buf, cfg, err);
        } else {
            join_path(buf, sizeof buf, dir, "vocab.json", err);
            if (mp_is_file(buf)) rc = load_vocab_merges(out, dir, cfg, err);
            else rc = mp_errf(err, "%s: no tokenizer.json or vocab.json + merges.txt", path);
        }
    }
    cJSON_Delete(cfg);
    return rc;
}
