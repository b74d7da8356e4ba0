/* tokenizer_bpe.c \\x{2014} byte-level BPE (merges by rank, regex pre-tokenizers) and WordPiece. */
#include "llm/tokenizer_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ merges */

static uint64_t mg_hash(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return k;
}

int tok_merges_reserve(mp_tokenizer *t, int n) {
    uint32_t cap = 16;
    while (cap < (uint32_t)n * 2u + 16u) cap <<= 1;
    free(t->mg_key);
    free(t->mg_rank);
    t->mg_key = malloc(cap * sizeof *t->mg_key);
    t->mg_rank = malloc(cap * sizeof *t->mg_rank);
    if (!t->mg_key || !t->mg_rank) return -1;
    memset(t->mg_key, 0xff, cap * sizeof *t->mg_key);
    t->mg_mask = cap - 1;
    t->n_merges = 0;
    return 0;
}

static int32_t merge_rank(const mp_tokenizer *t, int32_t a, int32_t b) {
    if (!t->mg_key) return -1;
    uint64_t k = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    uint32_t h = (uint32_t)mg_hash(k) & t->mg_mask;
    for (;;) {
        if (t->mg_key[h] == UINT64_MAX) return -1;
        if (t->mg_key[h] == k) return t->mg_rank[h];
        h = (h + 1) & t->mg_mask;
    }
}

/* Adds merge "a b" with the given rank. Returns 1 when a, b or a+b is not in the vocabulary (the merge
 * can never apply: skipped), 0 when added, -1 when out of memory/space. The first rank of a pair wins. */
int tok_add_merge(mp_tokenizer *t, const char *a, size_t na, const char *b, size_t nb, int rank) {
    int32_t ia = tok_lookup(t, a, na), ib = tok_lookup(t, b, nb);
    if (ia < 0 || ib < 0) return 1;
    char stackbuf[256];
    char *cat = na + nb <= sizeof stackbuf ? stackbuf : malloc(na + nb);
    if (!cat) return -1;
    memcpy(cat, a, na);
    memcpy(cat + na, b, nb);
    int32_t ic = tok_lookup(t, cat, na + nb);
    if (cat != stackbuf) free(cat);
    if (ic < 0) return 1;
    if ((uint32_t)t->n_merges * 2u + 2u > t->mg_mask) return -1;
    uint64_t k = ((uint64_t)(uint32_t)ia << 32) | (uint32_t)ib;
    uint32_t h = (uint32_t)mg_hash(k) & t->mg_mask;
    for (;;) {
        if (t->mg_key[h] == UINT64_MAX) break;
        if (t->mg_key[h] == k) return 0;
        h = (h + 1) & t->mg_mask;
    }
    t->mg_key[h] = k;
    t->mg_rank[h] = rank;
    t->n_merges++;
    return 0;
}

/* ------------------------------------------------------------------ pre-tokenizers */

int tok_add_regex(mp_tokenizer *t, const char *pattern, mp_error *err) {
    if (t->n_regex >= TOK_MAX_REGEX) return mp_errf(err, "too many pre-tokenizer patterns (max %d)", TOK_MAX_REGEX);
    char e[256];
    tok_regex *re = tok_regex_compile(pattern, e, sizeof e);
    if (!re) return mp_errf(err, "pre-tokenizer pattern \"%s\": %s", pattern, e);
    t->regex_src[t->n_regex] = strdup(pattern);
    t->regex[t->n_regex++] = re;
    return 0;
}

/* Patterns of llama.cpp's pre-tokenizer types (tokenizer.ggml.pre), taken from the models'
 * tokenizer.json files: each is applied in turn, splitting every piece of the previous one into
 * matches and the text between them. */
#define RE_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"
#define RE_LLAMA3 "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_QWEN2 "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

static const struct pre_def {
    const char *names; /* '|' separated */
    const char *re[TOK_MAX_REGEX];
    int ignore_merges;
} pre_defs[] = {
    {"default", {"[\\p{P}\\$\\+<=>\\^~\\|]+", RE_GPT2, "\\p{N}+", "[0-9][0-9][0-9]"}, 0},
    {"gpt2|gpt-2|mpt|olmo|jais|phi-2|jina-es|jina-de|gigachat|jina-v2-es|jina-v2-de|jina-v1-en|jina-v2-code|roberta-bpe|exaone4|trillion|granite-docling|mellum|modern-bert|a.x-4.0",
     {RE_GPT2}, 0},
    {"llama3|llama-v3|llama-bpe|falcon3|falcon-h1|pixtral|midm-2.0|lfm2|dbrx|smaug-bpe|jina-v5-nano", {RE_LLAMA3}, 1},
    {"chatglm-bpe|glm4", {RE_LLAMA3}, 0},
    {"qwen2|deepseek-r1-qwen|stablelm2|megrez|hunyuan|kormo|f2llmv2", {RE_QWEN2}, 0},
    {"starcoder|refact|command-r|smollm|codeshell|exaone|minerva-7b", {"\\p{N}", RE_GPT2}, 0},
    {"falcon", {"[\\p{P}\\$\\+<=>\\^~\\|`]+", RE_GPT2, "[0-9][0-9][0-9]"}, 0},
    {"deepseek-llm",
     {"[\r\n]",
      "\\s?[A-Za-z\\x{B5}\\x{C0}-\\x{D6}\\x{D8}-\\x{F6}\\x{F8}-\\x{1BA}\\x{1BC}-\\x{1BF}"
      "\\x{1C4}-\\x{293}\\x{295}-\\x{2AF}\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37B}-\\x{37D}"
      "\\x{37F}\\x{386}\\x{388}-\\x{38A}\\x{38C}\\x{38E}-\\x{3A1}\\x{3A3}-\\x{3F5}"
      "\\x{3F7}-\\x{481}\\x{48A}-\\x{52F}\\x{531}-\\x{556}\\x{10A0}-\\x{10C5}\\x{13A0}-\\x{13F5}"
      "\\x{13F8}-\\x{13FD}\\x{1C90}-\\x{1CBA}\\x{1CBD}-\\x{1CBF}\\x{1D00}-\\x{1D2B}"
      "\\x{1D6B}-\\x{1D77}\\x{1D79}-\\x{1D9A}\\x{1E00}-\\x{1F15}\\x{1F18}-\\x{1F1D}"
      "\\x{1F20}-\\x{1F45}\\x{1F48}-\\x{1F4D}\\x{1F50}-\\x{1F57}\\x{1F59}\\x{1F5B}\\x{1F5D}"
      "\\x{1F5F}-\\x{1F7D}\\x{1F80}-\\x{1FB4}\\x{1FB6}-\\x{1FBC}\\x{1FBE}\\x{1FC2}-\\x{1FC4}"
      "\\x{1FC6}-\\x{1FCC}\\x{1FD0}-\\x{1FD3}\\x{1FD6}-\\x{1FDB}\\x{1FE0}-\\x{1FEC}"
      "\\x{1FF2}-\\x{1FF4}\\x{1FF6}-\\x{1FFC}\\x{2102}\\x{2107}\\x{210A}-\\x{2113}\\x{2115}"
      "\\x{2119}-\\x{211D}\\x{2124}\\x{2126}\\x{2128}\\x{212A}-\\x{212D}\\x{212F}-\\x{2134}"
      "\\x{2139}\\x{213C}-\\x{213F}\\x{2145}-\\x{2149}\\x{214E}\\x{2183}\\x{2184}"
      "\\x{2C00}-\\x{2C7B}\\x{2C7E}-\\x{2CE4}\\x{2CEB}-\\x{2CEE}\\x{2CF2}\\x{2CF3}"
      "\\x{A640}-\\x{A66D}\\x{A680}-\\x{A69B}\\x{A722}-\\x{A76F}\\x{A771}-\\x{A787}"
      "\\x{A78B}-\\x{A78E}\\x{AB70}-\\x{ABBF}\\x{FB00}-\\x{FB06}\\x{FB13}-\\x{FB17}"
      "\\x{FF21}-\\x{FF3A}\\x{FF41}-\\x{FF5A}\\x{10400}-\\x{1044F}\\x{104B0}-\\x{104D3}"
      "\\x{104D8}-\\x{104FB}\\x{10C80}-\\x{10CB2}\\x{10CC0}-\\x{10CF2}\\x{118A0}-\\x{118DF}"
      "\\x{1E900}-\\x{1E943}]+",
      "\\s?[!-/:-~\\x{FF01}-\\x{FF0F}\\x{FF1A}-\\x{FF5E}\\x{2018}-\\x{201F}\\x{3000}-\\x{3002}]+", "\\s+$", "[\\x{4E00}-\\x{9FA5}\\x{800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+", "\\p{N}+"},
     0},
    {"deepseek-coder", {"[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", "[\\x{4E00}-\\x{9FA5}\\x{800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+", "\\p{N}"}, 0},
    {"poro-chat|bloom|gpt3-finnish", {" ?[^(\\s|.,!?\\x{2026}\\x{3002}\\x{FF0C}\\x{3001}\\x{964}\\x{6D4}\\x{60C})]+"}, 0},
    {"tekken", {"[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}, 1},
    {"gpt-4o|llama4|kanana2",
     {"[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
     0},
    {"qwen35", {"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|\\p{N}| ?[^\\s\\p{L}\\p{M}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}, 0},
};

int tok_set_pre(mp_tokenizer *t, const char *pre) {
    size_t pl = strlen(pre);
    for (size_t i = 0; i < sizeof pre_defs / sizeof pre_defs[0]; i++) {
        const char *p = pre_defs[i].names;
        while (*p) {
            const char *e = strchr(p, '|');
            size_t l = e ? (size_t)(e - p) : strlen(p);
            if (l == pl && memcmp(p, pre, l) == 0) {
                for (int k = 0; k < TOK_MAX_REGEX && pre_defs[i].re[k]; k++) {
                    mp_error e;
                    if (tok_add_regex(t, pre_defs[i].re[k], &e)) { fprintf(stderr, "%s\n", e.msg); return -1; }
                }
                t->ignore_merges = pre_defs[i].ignore_merges;
                snprintf(t->pre_name, sizeof t->pre_name, "%s", pre);
                return 0;
            }
            p += l + (e ? 1 : 0);
        }
    }
    return -1;
}

typedef struct span { int s, e; } span;
typedef struct sbufv { span *p; int n, cap; } sbufv;

static int span_push(sbufv *b, int s, int e) {
    if (e <= s) return 0;
    if (b->n == b->cap) {
        int nc = b->cap ? b->cap * 2 : 64;
        span *np = realloc(b->p, (size_t)nc * sizeof *np);
        if (!np) return -1;
        b->p = np;
        b->cap = nc;
    }
    b->p[b->n++] = (span){s, e};
    return 0;
}

/* Splits cps[0..n) with each pattern in turn into pieces (matches and the gaps between them). */
static int pretokenize(const mp_tokenizer *t, const int32_t *cps, int n, sbufv *out) {
    sbufv cur = {0}, nxt = {0};
    if (span_push(&cur, 0, n)) return -1;
    for (int r = 0; r < t->n_regex; r++) {
        nxt.n = 0;
        for (int k = 0; k < cur.n; k++) {
            const int32_t *s = cps + cur.p[k].s;
            int len = cur.p[k].e - cur.p[k].s, pos = 0, ms, me;
            while (pos < len) {
                int f = tok_regex_search(t->regex[r], s, len, pos, &ms, &me);
                if (f < 0) { free(cur.p); free(nxt.p); return -1; }
                if (!f) break;
                if (me == ms) { /* empty match: no split here */
                    if (ms >= len) break;
                    if (span_push(&nxt, cur.p[k].s + pos, cur.p[k].s + ms + 1)) goto oom;
                    pos = ms + 1;
                    continue;
                }
                if (span_push(&nxt, cur.p[k].s + pos, cur.p[k].s + ms)) goto oom;
                if (span_push(&nxt, cur.p[k].s + ms, cur.p[k].s + me)) goto oom;
                pos = me;
            }
            if (span_push(&nxt, cur.p[k].s + pos, cur.p[k].s + len)) goto oom;
        }
        sbufv tmp = cur;
        cur = nxt;
        nxt = tmp;
    }
    free(nxt.p);
    *out = cur;
    return 0;
oom:
    free(cur.p);
    free(nxt.p);
    return -1;
}

/* ------------------------------------------------------------------ BPE on one word */

typedef struct bsym { int prev, next; int32_t id; int off, n; } bsym;
static int try_merge(const mp_tokenizer *t, const bsym *sy, int l, int r, tok_heap *h) {
    if (l < 0 || r < 0 || sy[l].id < 0 || sy[r].id < 0) return 0;
    int32_t rank = merge_rank(t, sy[l].id, sy[r].id);
    if (rank < 0) return 0;
    tok_pair m = {-(double)rank, l, r, sy[l].id, sy[r].id};
    return tok_heap_push(h, m);
}

/* w[0..n) is the word as vocabulary text (byte-level chars). */
static int bpe_word(const mp_tokenizer *t, const char *w, int n, ibuf *out) {
    if (n <= 0) return 0;
    if (t->ignore_merges) {
        int32_t id = tok_lookup(t, w, (size_t)n);
        if (id >= 0) return ibuf_push(out, id);
    }
    bsym *sy = malloc((size_t)n * sizeof *sy);
    if (!sy) return -1;
    int ns = 0;
    for (int i = 0; i < n;) {
        int32_t cp;
        int l = tok_utf8_decode((const unsigned char *)w + i, (size_t)(n - i), &cp);
        sy[ns] = (bsym){ns - 1, -1, tok_lookup(t, w + i, (size_t)l), i, l};
        if (ns > 0) sy[ns - 1].next = ns;
        ns++;
        i += l;
    }
    tok_heap h = {0};
    int rc = 0;
    for (int i = 1; i < ns && !rc; i++) rc = try_merge(t, sy, i - 1, i, &h);
    while (h.n > 0 && !rc) {
        tok_pair m = tok_heap_pop(&h);
        bsym *L = &sy[m.left], *R = &sy[m.right];
        if (L->n == 0 || R->n == 0 || L->id != m.a || R->id != m.b || L->next != m.right) continue;
        L->n += R->n;
        L->id = tok_lookup(t, w + L->off, (size_t)L->n);
        R->n = 0;
        L->next = R->next;
        if (R->next >= 0) sy[R->next].prev = m.left;
        rc = try_merge(t, sy, L->prev, m.left, &h);
        if (!rc) rc = try_merge(t, sy, m.left, L->next, &h);
    }
    for (int i = 0; i >= 0 && i < ns && !rc; i = sy[i].next) {
        if (sy[i].id >= 0) { rc = ibuf_push(out, sy[i].id); continue; }
        /* a character that is not in the vocabulary: byte tokens (byte_fallback), else the unknown
         * token, else (llama.cpp) the single-byte tokens that exist */
        if (!t->byte_fallback && t->unk >= 0) { rc = ibuf_push(out, t->unk); continue; }
        for (int k = 0; k < sy[i].n && !rc; k++) {
            int32_t id = t->byte_tok[(unsigned char)w[sy[i].off + k]];
            if (id >= 0) rc = ibuf_push(out, id);
        }
    }
    free(sy);
    free(h.p);
    return rc;
}

static int utf8_to_cps(const char *s, size_t n, int32_t **out, int *nout) {
    int32_t *cps = malloc((n + 1) * sizeof *cps);
    if (!cps) return -1;
    int k = 0;
    for (size_t i = 0; i < n;) {
        int32_t cp;
        int l = tok_utf8_decode((const unsigned char *)s + i, n - i, &cp);
        cps[k++] = cp < 0 ? 0xFFFD : cp; /* invalid bytes read as U+FFFD (as llama.cpp) */
        i += (size_t)l;
    }
    *out = cps;
    *nout = k;
    return 0;
}

int tok_bpe_fragment(const mp_tokenizer *t, const char *s, size_t n, ibuf *out) {
    if (n == 0) return 0;
    if (n > 0x3fffffff) return -1;
    int32_t *cps;
    int ncp;
    if (utf8_to_cps(s, n, &cps, &ncp)) return -1;
    if (t->bl_prefix_space && cps[0] != ' ') {
        int32_t *np = realloc(cps, ((size_t)ncp + 2) * sizeof *np);
        if (!np) { free(cps); return -1; }
        cps = np;
        memmove(cps + 1, cps, (size_t)ncp * sizeof *cps);
        cps[0] = ' ';
        ncp++;
    }
    if (t->norm_nfc) {
        int nn;
        int32_t *c2 = mp_unicode_normalize(cps, ncp, 'C', &nn);
        free(cps);
        if (!c2) return -1;
        cps = c2;
        ncp = nn;
    }
    sbufv pieces = {0};
    if (pretokenize(t, cps, ncp, &pieces)) { free(cps); return -1; }
    char *w = malloc((size_t)ncp * 8 + 8);
    int rc = w ? 0 : -1;
    for (int k = 0; k < pieces.n && !rc; k++) {
        int wl = 0;
        for (int i = pieces.p[k].s; i < pieces.p[k].e; i++) {
            char u[4];
            int ul = tok_utf8_encode((uint32_t)cps[i], u);
            for (int j = 0; j < ul; j++) {
                if (t->byte_level) wl += tok_utf8_encode(tok_byte_to_cp((uint8_t)u[j]), w + wl);
                else w[wl++] = u[j];
            }
        }
        rc = bpe_word(t, w, wl, out);
    }
    free(w);
    free(pieces.p);
    free(cps);
    return rc;
}

/* ------------------------------------------------------------------ WordPiece */

static int is_chinese_char(int32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
           (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

/* BERT: clean control characters, split on whitespace and punctuation (and around CJK characters),
 * optionally lowercase and strip accents, then greedy longest-match-first per word. Vocab words that
 * start a word carry the "\\x{2581}" prefix (GGUF) \\x{2014} see tokenizer_gguf.c / tokenizer_hf.c. */
int tok_wpm_fragment(const mp_tokenizer *t, const char *s, size_t n, ibuf *out) {
    if (n == 0) return 0;
    if (n > 0x3fffffff) return -1;
    int32_t *cps;
    int ncp;
    if (utf8_to_cps(s, n, &cps, &ncp)) return -1;
    if (t->wpm_strip_accents) {
        int nn;
        int32_t *d = mp_unicode_normalize(cps, ncp, 'D', &nn);
        free(cps);
        if (!d) return -1;
        cps = d;
        ncp = nn;
    }
    /* words as UTF-8 with the "\\x{2581}" prefix, separated by NUL in one buffer */
    char *buf = malloc((size_t)ncp * 12 + 16);
    int *starts = malloc(((size_t)ncp + 1) * 2 * sizeof *starts);
    if (!buf || !starts) { free(buf); free(starts); free(cps); return -1; }
    int bl = 0, nw = 0, in_word = 0;
#define END_WORD() do { if (in_word) { starts[2 * nw + 1] = bl; nw++; in_word = 0; } } while (0)
#define START_WORD() do { if (!in_word) { starts[2 * nw] = bl; memcpy(buf + bl, "\xE2\x96\x81", 3); bl += 3; in_word = 1; } } while (0)
    for (int i = 0; i < ncp; i++) {
        int32_t c = cps[i];
        int cat = mp_unicode_category(c);
        if (mp_unicode_is_space(c)) { END_WORD(); continue; }
        if (c == 0 || c == 0xFFFD || cat == UC_Cc || cat == UC_Cf || cat == UC_Cn || cat == UC_Co || cat == UC_Cs) continue;
        if (t->wpm_strip_accents && cat == UC_Mn) continue;
        if (t->wpm_lowercase) c = mp_unicode_tolower(c);
        uint32_t m = UC_MASK(cat);
        int alone = (m & UC_P) || (c < 0x7F && (m & UC_S)) || is_chinese_char(c);
        if (alone) END_WORD();
        START_WORD();
        bl += tok_utf8_encode((uint32_t)c, buf + bl);
        if (alone) END_WORD();
    }
    END_WORD();
#undef END_WORD
#undef START_WORD
    int rc = 0;
    int maxlen = t->max_tok_len;
    for (int wi = 0; wi < nw && !rc; wi++) {
        const char *w = buf + starts[2 * wi];
        int wn = starts[2 * wi + 1] - starts[2 * wi];
        int before = out->n, ok = 1;
        for (int i = 0; i < wn && ok;) {
            int found = 0;
            for (int j = (wn < i + maxlen ? wn : i + maxlen); j > i; j--) {
                int32_t id = tok_lookup(t, w + i, (size_t)(j - i));
                if (id >= 0) {
                    rc = ibuf_push(out, id);
                    found = 1;
                    i = j;
                    break;
                }
            }
            if (!found) ok = 0;
        }
        if (!ok) {
            out->n = before;
            if (t->unk >= 0) rc = ibuf_push(out, t->unk);
        }
    }
    free(buf);
    free(starts);
    free(cps);
    return rc;
}
