/* tokenizer.c — vocabulary, SentencePiece BPE, byte-level BPE, WordPiece, special tokens, decoding.
 *
 * Loaders live beside it: tokenizer_llama2c.c (this file), tokenizer_gguf.c, tokenizer_hf.c. They all
 * fill one struct (tokenizer_int.h) through tok_new/tok_set/tok_finish.
 */
#include "llm/tokenizer_int.h"
#include "models/mmap.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ UTF-8 */

int tok_utf8_decode(const unsigned char *s, size_t n, int32_t *cp) {
    if (n == 0) { *cp = -1; return 0; }
    unsigned c = s[0];
    if (c < 0x80) { *cp = (int32_t)c; return 1; }
    int len;
    uint32_t v;
    if ((c & 0xE0) == 0xC0) { len = 2; v = c & 0x1F; }
    else if ((c & 0xF0) == 0xE0) { len = 3; v = c & 0x0F; }
    else if ((c & 0xF8) == 0xF0) { len = 4; v = c & 0x07; }
    else { *cp = -1; return 1; }
    if ((size_t)len > n) { *cp = -1; return 1; }
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) { *cp = -1; return 1; }
        v = (v << 6) | (s[i] & 0x3F);
    }
    /* reject overlong forms, surrogates and out-of-range values */
    if ((len == 2 && v < 0x80) || (len == 3 && v < 0x800) || (len == 4 && v < 0x10000) || v > 0x10FFFF ||
        (v >= 0xD800 && v <= 0xDFFF)) {
        *cp = -1;
        return 1;
    }
    *cp = (int32_t)v;
    return len;
}

int tok_utf8_encode(uint32_t cp, char *out) {
    if (cp < 0x80) { out[0] = (char)cp; return 1; }
    if (cp < 0x800) { out[0] = (char)(0xC0 | (cp >> 6)); out[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Length of the UTF-8 sequence a lead byte announces (1 for stray continuation bytes). */
static int utf8_len(unsigned char c) {
    if (c < 0x80) return 1;
    if ((c & 0xE0) == 0xC0) return 2;
    if ((c & 0xF0) == 0xE0) return 3;
    if ((c & 0xF8) == 0xF0) return 4;
    return 1;
}

/* GPT-2's bytes_to_unicode(): printable Latin-1 bytes map to themselves, the other 68 bytes to
 * U+0100.. in byte order. */
static int is_gpt2_direct(int b) { return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF); }

uint32_t tok_byte_to_cp(uint8_t b) {
    if (is_gpt2_direct(b)) return b;
    int n = 0;
    for (int i = 0; i < b; i++) n += !is_gpt2_direct(i);
    return 256u + (uint32_t)n;
}

int tok_cp_to_byte(uint32_t cp) {
    if (cp < 256) return is_gpt2_direct((int)cp) ? (int)cp : -1;
    if (cp >= 256 + 68) return -1;
    int n = (int)(cp - 256);
    for (int b = 0; b < 256; b++)
        if (!is_gpt2_direct(b) && n-- == 0) return b;
    return -1;
}

/* ------------------------------------------------------------------ growable buffers */

typedef struct sbuf { char *p; size_t n, cap; } sbuf;

static int sbuf_put(sbuf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 256;
        while (nc < b->n + n + 1) nc *= 2;
        char *np = realloc(b->p, nc);
        if (!np) return -1;
        b->p = np;
        b->cap = nc;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
    return 0;
}

/* ------------------------------------------------------------------ vocabulary */

static uint32_t hash_bytes(const char *s, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) { h ^= (unsigned char)s[i]; h *= 16777619u; }
    return h;
}

mp_tokenizer *tok_new(int kind, int n_vocab) {
    if (n_vocab <= 0 || n_vocab > (1 << 24)) return NULL;
    mp_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->kind = kind;
    t->n_vocab = n_vocab;
    t->v = calloc((size_t)n_vocab, sizeof *t->v);
    if (!t->v) { free(t); return NULL; }
    t->bos = t->eos = t->unk = t->pad = t->sep = t->cls = t->mask_id = t->eot = t->nl = -1;
    for (int i = 0; i < 256; i++) t->byte_tok[i] = -1;
    return t;
}

static int pool_put(char **pool, size_t *len, size_t *cap, const char *s, size_t n, uint32_t *off) {
    if (*len + n + 1 > *cap) {
        size_t nc = *cap ? *cap : 4096;
        while (nc < *len + n + 1) nc *= 2;
        char *np = realloc(*pool, nc);
        if (!np) return -1;
        *pool = np;
        *cap = nc;
    }
    if (*len + n + 1 > UINT32_MAX) return -1;
    *off = (uint32_t)*len;
    if (n) memcpy(*pool + *len, s, n);
    (*pool)[*len + n] = 0;
    *len += n + 1;
    return 0;
}

int tok_set(mp_tokenizer *t, int32_t id, const char *text, size_t len, float score, int type) {
    if (id < 0 || id >= t->n_vocab) return -1;
    tok_entry *e = &t->v[id];
    if (pool_put(&t->pool, &t->pool_len, &t->pool_cap, text, len, &e->off)) return -1;
    e->len = (uint32_t)len;
    e->score = score;
    e->type = (uint8_t)type;
    return 0;
}

/* "<0xNN>" -> NN, else -1 */
static int parse_byte_token(const char *s, size_t n) {
    if (n != 6 || s[0] != '<' || s[1] != '0' || s[2] != 'x' || s[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        int c = s[i], d;
        if (c >= '0' && c <= '9') d = c - '0';
        else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
        else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else return -1;
        v = v * 16 + d;
    }
    return v;
}

/* The raw bytes a vocab entry stands for. */
static int decode_piece(const mp_tokenizer *t, int32_t id, sbuf *out) {
    const tok_entry *e = &t->v[id];
    const char *s = t->pool + e->off;
    size_t n = e->len;
    if (t->kind == TK_SPM) {
        int b = parse_byte_token(s, n);
        if (b >= 0 && (e->type == TT_BYTE || t->spm_l2c)) {
            char c = (char)b;
            return sbuf_put(out, &c, 1);
        }
        if (!t->escape_ws || e->type == TT_CONTROL) return sbuf_put(out, s, n);
        for (size_t i = 0; i < n;) { /* U+2581 -> ' ' */
            if (i + 3 <= n && (unsigned char)s[i] == 0xE2 && (unsigned char)s[i + 1] == 0x96 &&
                (unsigned char)s[i + 2] == 0x81) {
                if (sbuf_put(out, " ", 1)) return -1;
                i += 3;
            } else {
                if (sbuf_put(out, s + i, 1)) return -1;
                i++;
            }
        }
        return 0;
    }
    if (t->kind == TK_BPE && t->byte_level && e->type != TT_CONTROL && e->type != TT_USER_DEFINED) {
        for (size_t i = 0; i < n;) {
            int32_t cp;
            int l = tok_utf8_decode((const unsigned char *)s + i, n - i, &cp);
            int b = cp >= 0 ? tok_cp_to_byte((uint32_t)cp) : -1;
            if (b < 0) { /* not a byte-level char: keep the UTF-8 as is */
                if (sbuf_put(out, s + i, (size_t)l)) return -1;
            } else {
                char c = (char)b;
                if (sbuf_put(out, &c, 1)) return -1;
            }
            i += (size_t)l;
        }
        return 0;
    }
    if (t->kind == TK_WPM && e->type != TT_CONTROL) {
        /* "##x" continues the word; anything else starts a new word with a space */
        if (n >= 2 && s[0] == '#' && s[1] == '#') return sbuf_put(out, s + 2, n - 2);
        if (sbuf_put(out, " ", 1)) return -1;
        return sbuf_put(out, s, n);
    }
    return sbuf_put(out, s, n);
}

static int cmp_special_len(const void *a, const void *b, void *ctx) {
    const mp_tokenizer *t = ctx;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    if (t->v[x].len != t->v[y].len) return t->v[x].len > t->v[y].len ? -1 : 1;
    return x < y ? -1 : x > y;
}

/* qsort_r is GNU; a small insertion+merge sort keeps us portable. */
static void sort_specials(mp_tokenizer *t) {
    for (int i = 1; i < t->n_specials; i++) {
        int32_t k = t->specials[i];
        int j = i - 1;
        while (j >= 0 && cmp_special_len(&t->specials[j], &k, t) > 0) {
            t->specials[j + 1] = t->specials[j];
            j--;
        }
        t->specials[j + 1] = k;
    }
}

int tok_finish(mp_tokenizer *t, mp_error *err, const char *src) {
    /* hash */
    uint32_t cap = 16;
    while (cap < (uint32_t)t->n_vocab * 2u) cap <<= 1;
    free(t->ht);
    t->ht = malloc(cap * sizeof *t->ht);
    if (!t->ht) return mp_errf(err, "%s: out of memory for the vocabulary", src);
    memset(t->ht, 0xff, cap * sizeof *t->ht);
    t->ht_mask = cap - 1;
    t->max_tok_len = 0;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        const tok_entry *e = &t->v[id];
        if ((int)e->len > t->max_tok_len) t->max_tok_len = (int)e->len;
        const char *s = t->pool + e->off;
        uint32_t h = hash_bytes(s, e->len) & t->ht_mask;
        for (;;) {
            int32_t o = t->ht[h];
            if (o < 0) { t->ht[h] = id; break; }
            if (t->v[o].len == e->len && memcmp(t->pool + t->v[o].off, s, e->len) == 0) {
                t->ht[h] = id; /* duplicate text: the last one wins (as llama.cpp's map) */
                break;
            }
            h = (h + 1) & t->ht_mask;
        }
    }
    /* decoded pieces */
    sbuf d = {0};
    for (int32_t id = 0; id < t->n_vocab; id++) {
        size_t start = d.n;
        if (decode_piece(t, id, &d)) { free(d.p); return mp_errf(err, "%s: out of memory", src); }
        if (d.n + 1 > UINT32_MAX) { free(d.p); return mp_errf(err, "%s: vocabulary too large", src); }
        t->v[id].doff = (uint32_t)start;
        t->v[id].dlen = (uint32_t)(d.n - start);
        if (sbuf_put(&d, "", 0)) { free(d.p); return mp_errf(err, "%s: out of memory", src); }
    }
    if (!d.p && sbuf_put(&d, "", 0)) return mp_errf(err, "%s: out of memory", src);
    free(t->dpool);
    t->dpool = d.p;
    t->dpool_len = d.n;
    /* byte tokens */
    for (int b = 0; b < 256; b++) {
        char tmp[8];
        if (t->kind == TK_SPM) {
            snprintf(tmp, sizeof tmp, "<0x%02X>", b);
            t->byte_tok[b] = tok_lookup(t, tmp, 6);
        } else if (t->kind == TK_BPE && t->byte_fallback) {
            snprintf(tmp, sizeof tmp, "<0x%02X>", b);
            t->byte_tok[b] = tok_lookup(t, tmp, 6);
        } else if (t->kind == TK_BPE) {
            int l = tok_utf8_encode(t->byte_level ? tok_byte_to_cp((uint8_t)b) : (uint32_t)b, tmp);
            t->byte_tok[b] = tok_lookup(t, tmp, (size_t)l);
        }
    }
    /* specials: control and user-defined tokens, longest first */
    free(t->specials);
    t->specials = malloc((size_t)t->n_vocab * sizeof *t->specials);
    if (!t->specials) return mp_errf(err, "%s: out of memory", src);
    t->n_specials = 0;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        int ty = t->v[id].type;
        if ((ty == TT_CONTROL || ty == TT_USER_DEFINED || ty == TT_UNKNOWN) && t->v[id].len > 0)
            t->specials[t->n_specials++] = id;
    }
    sort_specials(t);
    if (t->nl < 0) {
        t->nl = t->kind == TK_SPM ? t->byte_tok['\n'] : -1;
        if (t->kind == TK_BPE) t->nl = tok_lookup(t, t->byte_level ? "\xC4\x8A" : "\n", t->byte_level ? 2 : 1);
    }
    return 0;
}

int32_t tok_lookup(const mp_tokenizer *t, const char *s, size_t n) {
    if (!t->ht) return -1;
    uint32_t h = hash_bytes(s, n) & t->ht_mask;
    for (;;) {
        int32_t o = t->ht[h];
        if (o < 0) return -1;
        if (t->v[o].len == n && memcmp(t->pool + t->v[o].off, s, n) == 0) return o;
        h = (h + 1) & t->ht_mask;
    }
}

void mp_tokenizer_free(mp_tokenizer *t) {
    if (!t) return;
    free(t->v);
    free(t->pool);
    free(t->dpool);
    free(t->ht);
    free(t->mg_key);
    free(t->mg_rank);
    free(t->specials);
    for (int i = 0; i < t->n_regex; i++) {
        free(t->regex_src[i]);
        tok_regex_free(t->regex[i]);
    }
    free(t);
}

/* Tokens that end a turn but are not always typed as control in older conversions. */
static const char *const eog_texts[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
                                        "<|end_of_text|>", "<end_of_utterance>", "<|eom_id|>", "<EOT>", NULL};

void tok_mark_eog(mp_tokenizer *t) {
    t->n_eog = 0;
    if (t->eos >= 0) t->eog[t->n_eog++] = t->eos;
    for (int k = 0; eog_texts[k]; k++) {
        int32_t id = tok_lookup(t, eog_texts[k], strlen(eog_texts[k]));
        if (id < 0) continue;
        if (t->eot < 0) t->eot = id;
        if (t->v[id].type != TT_CONTROL && t->v[id].type != TT_USER_DEFINED) t->v[id].type = TT_CONTROL;
        if (t->n_eog < 16 && id != t->eos) t->eog[t->n_eog++] = id;
    }
    if (t->eot >= 0 && t->n_eog < 16) {
        int have = 0;
        for (int i = 0; i < t->n_eog; i++) have |= t->eog[i] == t->eot;
        if (!have) t->eog[t->n_eog++] = t->eot;
    }
}

int32_t mp_tokenizer_eot(const mp_tokenizer *t) { return t->eot; }

int mp_tokenizer_is_eog(const mp_tokenizer *t, int32_t id) {
    if (id < 0) return 0;
    for (int i = 0; i < t->n_eog; i++)
        if (t->eog[i] == id) return 1;
    return 0;
}

int mp_tokenizer_n_vocab(const mp_tokenizer *t) { return t->n_vocab; }
int32_t mp_tokenizer_bos(const mp_tokenizer *t) { return t->bos; }
int32_t mp_tokenizer_eos(const mp_tokenizer *t) { return t->eos; }
int32_t mp_tokenizer_find(const mp_tokenizer *t, const char *piece) { return tok_lookup(t, piece, strlen(piece)); }

int mp_tokenizer_is_special(const mp_tokenizer *t, int32_t id) {
    if (id < 0 || id >= t->n_vocab) return 0;
    int ty = t->v[id].type;
    return ty == TT_CONTROL || ty == TT_UNKNOWN || ty == TT_UNUSED;
}

/* ------------------------------------------------------------------ SentencePiece BPE */

typedef struct spm_sym {
    int prev, next;
    const char *text;
    int n; /* bytes; 0 once merged away */
} spm_sym;

/* ------------------------------------------------------------------ pair heap (SPM and BPE merges) */

static int pair_before(const tok_pair *x, const tok_pair *y) {
    if (x->key != y->key) return x->key > y->key;
    return x->left < y->left;
}

int tok_heap_push(tok_heap *h, tok_pair v) {
    if (h->n == h->cap) {
        int nc = h->cap ? h->cap * 2 : 64;
        tok_pair *np = realloc(h->p, (size_t)nc * sizeof *np);
        if (!np) return -1;
        h->p = np;
        h->cap = nc;
    }
    int i = h->n++;
    while (i > 0) {
        int par = (i - 1) / 2;
        if (!pair_before(&v, &h->p[par])) break;
        h->p[i] = h->p[par];
        i = par;
    }
    h->p[i] = v;
    return 0;
}

tok_pair tok_heap_pop(tok_heap *h) {
    tok_pair top = h->p[0], last = h->p[--h->n];
    int i = 0;
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        const tok_pair *best = &last;
        if (l < h->n && pair_before(&h->p[l], best)) { m = l; best = &h->p[l]; }
        if (r < h->n && pair_before(&h->p[r], best)) m = r;
        if (m == i) break;
        h->p[i] = h->p[m];
        i = m;
    }
    if (h->n > 0) h->p[i] = last;
    return top;
}

/* a = merged length in bytes (to spot stale entries) */
static int spm_try_bigram(const mp_tokenizer *t, const spm_sym *sy, int left, int right, tok_heap *h) {
    if (left < 0 || right < 0) return 0;
    int n = sy[left].n + sy[right].n;
    /* symbols are adjacent in the buffer, so the merged text is contiguous */
    int32_t id = tok_lookup(t, sy[left].text, (size_t)n);
    if (id < 0) return 0;
    tok_pair b = {t->v[id].score, left, right, n, id};
    return tok_heap_push(h, b);
}

static int emit_bytes_fallback(const mp_tokenizer *t, const char *s, int n, ibuf *out) {
    for (int i = 0; i < n; i++) {
        int32_t id = t->byte_tok[(unsigned char)s[i]];
        if (id < 0) id = t->unk;
        if (id >= 0 && ibuf_push(out, id)) return -1;
    }
    return 0;
}

/* Encodes text (already escaped: spaces as "▁" when escape_ws) by merging the best-scoring adjacent
 * pair until none is in the vocabulary. Characters that are not tokens fall back to byte tokens. */
static int spm_encode(const mp_tokenizer *t, const char *text, int len, ibuf *out) {
    if (len <= 0) return 0;
    spm_sym *sy = malloc((size_t)len * sizeof *sy);
    tok_heap h = {0};
    if (!sy) return -1;
    int ns = 0;
    for (int i = 0; i < len;) {
        int l = utf8_len((unsigned char)text[i]);
        if (l > len - i) l = len - i;
        sy[ns].text = text + i;
        sy[ns].n = l;
        sy[ns].prev = ns - 1;
        sy[ns].next = i + l < len ? ns + 1 : -1;
        ns++;
        i += l;
    }
    int rc = 0;
    for (int i = 1; i < ns && !rc; i++) rc = spm_try_bigram(t, sy, i - 1, i, &h);
    while (h.n > 0 && !rc) {
        tok_pair b = tok_heap_pop(&h);
        spm_sym *L = &sy[b.left], *R = &sy[b.right];
        if (L->n == 0 || R->n == 0 || L->n + R->n != b.a) continue;
        L->n += R->n;
        R->n = 0;
        L->next = R->next;
        if (R->next >= 0) sy[R->next].prev = b.left;
        rc = spm_try_bigram(t, sy, L->prev, b.left, &h);
        if (!rc) rc = spm_try_bigram(t, sy, b.left, L->next, &h);
    }
    for (int i = 0; i != -1 && !rc && ns > 0; i = sy[i].next) {
        int32_t id = tok_lookup(t, sy[i].text, (size_t)sy[i].n);
        if (id >= 0) rc = ibuf_push(out, id);
        else rc = emit_bytes_fallback(t, sy[i].text, sy[i].n, out);
    }
    free(sy);
    free(h.p);
    return rc;
}

/* One raw-text fragment through the SPM path: escape spaces, add the dummy prefix. */
static int spm_fragment(const mp_tokenizer *t, const char *s, size_t n, int prefix, ibuf *out) {
    sbuf b = {0};
    int rc = 0;
    if (prefix) rc = sbuf_put(&b, t->escape_ws ? "\xE2\x96\x81" : " ", t->escape_ws ? 3 : 1);
    for (size_t i = 0; i < n && !rc; i++) {
        if (t->escape_ws && s[i] == ' ') rc = sbuf_put(&b, "\xE2\x96\x81", 3);
        else rc = sbuf_put(&b, s + i, 1);
    }
    if (!rc && b.n > (size_t)0x7fffffff) rc = -1;
    if (!rc && b.n) rc = spm_encode(t, b.p, (int)b.n, out);
    free(b.p);
    return rc;
}

/* ------------------------------------------------------------------ special-token partitioning */

typedef struct frag { int32_t id; size_t off, len; } frag; /* id >= 0: a token; else raw text */

typedef struct fbuf { frag *p; int n, cap; } fbuf;

static int fbuf_push(fbuf *b, frag f) {
    if (b->n == b->cap) {
        int nc = b->cap ? b->cap * 2 : 16;
        frag *np = realloc(b->p, (size_t)nc * sizeof *np);
        if (!np) return -1;
        b->p = np;
        b->cap = nc;
    }
    b->p[b->n++] = f;
    return 0;
}

static int is_ws_byte(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

/* Splits text into raw fragments and special-token matches (longest special first, leftmost). */
static int partition_specials(const mp_tokenizer *t, const char *text, size_t len, int parse_special, fbuf *out) {
    frag whole = {-1, 0, len};
    if (len == 0) return 0;
    if (fbuf_push(out, whole)) return -1;
    for (int si = 0; si < t->n_specials; si++) {
        int32_t id = t->specials[si];
        const tok_entry *e = &t->v[id];
        /* user-defined (added, non-special) tokens are always matched; control ones on request */
        if (!parse_special && e->type != TT_USER_DEFINED) continue;
        const char *sp = t->pool + e->off;
        size_t sn = e->len;
        for (int fi = 0; fi < out->n; fi++) {
            frag f = out->p[fi];
            if (f.id >= 0 || f.len < sn) continue;
            const char *base = text + f.off;
            const char *hit = memmem(base, f.len, sp, sn);
            if (!hit) continue;
            size_t pre = (size_t)(hit - base), post_off = pre + sn;
            size_t pre_len = pre, post_len = f.len - post_off;
            if (e->lstrip) while (pre_len > 0 && is_ws_byte(base[pre_len - 1])) pre_len--;
            size_t post_start = post_off;
            if (e->rstrip) while (post_start < f.len && is_ws_byte(base[post_start])) post_start++;
            post_len = f.len - post_start;
            /* replace fragment fi with [pre][tok][post], then rescan post (fi+2) */
            frag parts[3];
            int np = 0;
            if (pre_len) parts[np++] = (frag){-1, f.off, pre_len};
            parts[np++] = (frag){id, 0, 0};
            if (post_len) parts[np++] = (frag){-1, f.off + post_start, post_len};
            for (int k = 1; k < np; k++)
                if (fbuf_push(out, (frag){0})) return -1;
            memmove(&out->p[fi + np], &out->p[fi + 1], (size_t)(out->n - np - fi) * sizeof(frag));
            memcpy(&out->p[fi], parts, (size_t)np * sizeof(frag));
            fi += np - 2; /* continue with the post fragment (or the next one) */
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ encode */

int mp_tokenize(const mp_tokenizer *t, const char *text, size_t len, int add_special, int parse_special,
                int32_t *ids, int max_ids) {
    if (!t || (!text && len)) return -1;
    ibuf out = {0};
    fbuf fr = {0};
    int rc = 0;
    if (add_special && t->has_template)
        for (int i = 0; i < t->n_tmpl_pre && !rc; i++) rc = ibuf_push(&out, t->tmpl_pre[i]);
    else if (add_special && t->add_bos && t->bos >= 0)
        rc = ibuf_push(&out, t->bos);
    if (!rc) rc = partition_specials(t, text, len, parse_special, &fr);
    int prev_special = 1;
    for (int i = 0; i < fr.n && !rc; i++) {
        frag f = fr.p[i];
        if (f.id >= 0) { rc = ibuf_push(&out, f.id); prev_special = 1; continue; }
        const char *s = text + f.off;
        if (t->kind == TK_SPM) {
            /* the dummy prefix goes before raw text at the start or right after a special token */
            rc = spm_fragment(t, s, f.len, t->add_space_prefix && prev_special, &out);
        } else if (t->kind == TK_BPE) {
            rc = tok_bpe_fragment(t, s, f.len, &out);
        } else {
            rc = tok_wpm_fragment(t, s, f.len, &out);
        }
        prev_special = 0;
    }
    if (add_special && t->has_template) {
        for (int i = 0; i < t->n_tmpl_post && !rc; i++) rc = ibuf_push(&out, t->tmpl_post[i]);
    } else if (add_special) {
        if (!rc && t->add_eos && t->eos >= 0) rc = ibuf_push(&out, t->eos);
        if (!rc && t->add_sep && t->sep >= 0) rc = ibuf_push(&out, t->sep);
    }
    int n = out.n;
    if (!rc && ids && n > 0 && max_ids > 0) memcpy(ids, out.p, (size_t)(n < max_ids ? n : max_ids) * sizeof *ids);
    free(out.p);
    free(fr.p);
    return rc ? -1 : n;
}

/* ------------------------------------------------------------------ decode */

int mp_token_to_bytes(const mp_tokenizer *t, int32_t id, char *buf, int cap) {
    if (!t || id < 0 || id >= t->n_vocab) return -1;
    const tok_entry *e = &t->v[id];
    int n = (int)e->dlen;
    if (buf && cap > 0) {
        int c = n < cap ? n : cap;
        memcpy(buf, t->dpool + e->doff, (size_t)c);
        if (c < cap) buf[c] = 0;
    }
    return n;
}

void mp_detok_init(mp_detok *d, const mp_tokenizer *t, int skip_special) {
    memset(d, 0, sizeof *d);
    d->tok = t;
    d->skip_special = skip_special;
    d->at_start = 1;
}

/* Appends bytes to out, completing UTF-8 characters through d->pending. */
static int detok_emit(mp_detok *d, const unsigned char *s, int n, char *out, int cap, int *w) {
    for (int i = 0; i < n; i++) {
        d->pending[d->n_pending++] = (char)s[i];
        for (;;) {
            int need = utf8_len((unsigned char)d->pending[0]);
            int32_t cp;
            if (d->n_pending < need) {
                /* still incomplete: check the bytes so far are continuation bytes */
                int ok = 1;
                for (int k = 1; k < d->n_pending; k++) ok &= ((unsigned char)d->pending[k] & 0xC0) == 0x80;
                if (ok) break;
            }
            int l = tok_utf8_decode((const unsigned char *)d->pending, (size_t)d->n_pending, &cp);
            const char *emit = d->pending;
            int en = l;
            if (cp < 0) { emit = "\xEF\xBF\xBD"; en = 3; l = 1; } /* invalid byte -> U+FFFD */
            if (*w + en >= cap) return -1;
            memcpy(out + *w, emit, (size_t)en);
            *w += en;
            memmove(d->pending, d->pending + l, (size_t)(d->n_pending - l));
            d->n_pending -= l;
            if (d->n_pending == 0) break;
        }
    }
    return 0;
}

int mp_detok_push(mp_detok *d, int32_t id, char *out, int cap) {
    const mp_tokenizer *t = d->tok;
    if (!out || cap < 1) return -1;
    out[0] = 0;
    if (!t || id < 0 || id >= t->n_vocab) return -1;
    const tok_entry *e = &t->v[id];
    if (id == t->bos) { d->at_start = 1; if (d->skip_special) return 0; }
    if (d->skip_special && mp_tokenizer_is_special(t, id)) return 0;
    const unsigned char *s = (const unsigned char *)t->dpool + e->doff;
    int n = (int)e->dlen;
    if (id != t->bos) {
        if (d->at_start && t->kind == TK_SPM && t->add_space_prefix && n > 0 && s[0] == ' ') { s++; n--; }
        d->at_start = 0;
    }
    int w = 0;
    if (detok_emit(d, s, n, out, cap, &w)) return -1;
    out[w] = 0;
    return w;
}

int mp_detok_flush(mp_detok *d, char *out, int cap) {
    if (!out || cap < 1) return -1;
    int w = 0;
    for (int i = 0; i < d->n_pending; i++) {
        if (w + 3 >= cap) return -1;
        memcpy(out + w, "\xEF\xBF\xBD", 3);
        w += 3;
    }
    d->n_pending = 0;
    out[w] = 0;
    return w;
}

/* ------------------------------------------------------------------ llama2.c tokenizer.bin */

int mp_tokenizer_load_llama2c(mp_tokenizer **out, const char *path, int vocab_size, mp_error *err) {
    *out = NULL;
    unsigned char *d = NULL;
    size_t n = 0;
    if (mp_read_file(path, (size_t)1 << 30, (char **)&d, &n, err)) return -1;
    int32_t maxlen;
    if (n < 4) { free(d); return mp_errf(err, "%s: too short for a llama2.c tokenizer", path); }
    memcpy(&maxlen, d, 4);
    if (maxlen <= 0 || maxlen > 1024) { free(d); return mp_errf(err, "%s: bad max_token_length %d (not a llama2.c tokenizer.bin?)", path, maxlen); }
    /* count the records when vocab_size is not given */
    int count = 0;
    size_t p = 4;
    while (p < n) {
        int32_t len;
        if (n - p < 8) { free(d); return mp_errf(err, "%s: truncated record %d at byte %zu", path, count, p); }
        memcpy(&len, d + p + 4, 4);
        if (len < 0 || len > maxlen || (size_t)len > n - p - 8) {
            free(d);
            return mp_errf(err, "%s: record %d has a bad length %d at byte %zu", path, count, len, p);
        }
        p += 8 + (size_t)len;
        count++;
        if (vocab_size > 0 && count == vocab_size) break;
    }
    if (count == 0) { free(d); return mp_errf(err, "%s: no tokens", path); }
    if (vocab_size > 0 && count < vocab_size) {
        free(d);
        return mp_errf(err, "%s: has %d tokens, the model needs %d", path, count, vocab_size);
    }
    mp_tokenizer *t = tok_new(TK_SPM, count);
    if (!t) { free(d); return mp_errf(err, "%s: out of memory", path); }
    t->spm_l2c = 1;
    t->add_space_prefix = 1;
    t->add_bos = 1;
    t->unk = 0;
    t->bos = count > 1 ? 1 : -1;
    t->eos = count > 2 ? 2 : -1;
    p = 4;
    for (int i = 0; i < count; i++) {
        float score;
        int32_t len;
        memcpy(&score, d + p, 4);
        memcpy(&len, d + p + 4, 4);
        int type = i < 3 ? (i == 0 ? TT_UNKNOWN : TT_CONTROL) : TT_NORMAL;
        if (parse_byte_token((const char *)d + p + 8, (size_t)len) >= 0) type = TT_BYTE;
        if (tok_set(t, i, (const char *)d + p + 8, (size_t)len, score, type)) {
            free(d);
            mp_tokenizer_free(t);
            return mp_errf(err, "%s: out of memory", path);
        }
        p += 8 + (size_t)len;
    }
    free(d);
    if (tok_finish(t, err, path)) { mp_tokenizer_free(t); return -1; }
    /* llama2.c's specials are not matched in text; only its 3 control entries exist */
    t->n_specials = 0;
    if (t->eos >= 0) t->eog[t->n_eog++] = t->eos;
    *out = t;
    return 0;
}
