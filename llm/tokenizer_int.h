/* tokenizer_int.h — internals shared by llm/tokenizer*.c (not a public interface). */
#ifndef MP_TOKENIZER_INT_H
#define MP_TOKENIZER_INT_H

#include "llm/tokenizer.h"
#include "llm/unicode.h"

#include <stdint.h>
#include <stdlib.h>

/* Token types, numbered as GGUF's tokenizer.ggml.token_type (llama.cpp llama_token_type). */
enum {
    TT_UNDEFINED = 0,
    TT_NORMAL = 1,
    TT_UNKNOWN = 2,
    TT_CONTROL = 3,
    TT_USER_DEFINED = 4,
    TT_UNUSED = 5,
    TT_BYTE = 6,
};

enum {
    TK_SPM = 1, /* SentencePiece BPE by scores, byte fallback */
    TK_BPE = 2, /* byte-level BPE by merge ranks */
    TK_WPM = 3, /* WordPiece */
};

/* Pre-tokenizer of byte-level BPE: a list of regexes applied one after the other (each splits every
 * piece of the previous one), as llama.cpp's llm_tokenizer_bpe and HF's Sequence[Split] do. */
#define TOK_MAX_REGEX 8

typedef struct tok_entry {
    uint32_t off, len;   /* text in pool (as stored: "▁" for SPM, byte-level chars for BPE) */
    uint32_t doff, dlen; /* decoded bytes in dpool */
    float score;
    uint8_t type;
    uint8_t lstrip, rstrip; /* added tokens: eat whitespace around a match */
} tok_entry;

typedef struct tok_special {
    int32_t id;
} tok_special;

struct mp_tokenizer {
    int kind;
    int n_vocab;
    tok_entry *v;
    char *pool;
    size_t pool_len, pool_cap;
    char *dpool;
    size_t dpool_len, dpool_cap;

    /* text -> id (open addressing, last duplicate wins) */
    int32_t *ht;
    uint32_t ht_mask;
    int max_tok_len; /* bytes */

    /* BPE merges: (left id, right id) -> rank */
    uint64_t *mg_key;
    int32_t *mg_rank;
    uint32_t mg_mask;
    int n_merges;

    int32_t bos, eos, unk, pad, sep, cls, mask_id, eot, nl;
    int add_bos, add_eos, add_sep;
    int add_space_prefix; /* SPM: prepend a space to the text */
    int escape_ws;        /* SPM: spaces are stored as U+2581 in the vocab */
    int spm_l2c;          /* llama2.c tokenizer.bin flavour (literal spaces, no byte-token types) */
    int ignore_merges;    /* BPE (llama3): a pre-token that is a whole vocab entry is taken as is */
    int clean_spaces;     /* decode: clean_up_tokenization_spaces */
    int byte_level;       /* BPE: text is mapped through the GPT-2 byte<->unicode table */
    int32_t byte_tok[256];

    /* pre-tokenizer (byte-level BPE) */
    int n_regex;
    char *regex_src[TOK_MAX_REGEX];
    struct tok_regex *regex[TOK_MAX_REGEX];
    char pre_name[64];

    /* tokens matched in the raw text before the algorithm (control + user-defined), longest first */
    int32_t *specials;
    int n_specials;

    /* WordPiece */
    int wpm_lowercase, wpm_strip_accents;

    /* end-of-generation ids (EOS, EOT and end-of-turn tokens found by their text) */
    int32_t eog[16];
    int n_eog;

    /* HF specifics */
    int byte_fallback;     /* BPE: characters not in the vocabulary become <0xNN> tokens */
    int bl_prefix_space;   /* ByteLevel add_prefix_space: prepend ' ' to each raw fragment */
    int norm_nfc;          /* normalizer: NFC before pre-tokenization */
    int has_template;      /* post-processor: add_special adds tmpl_pre/tmpl_post instead of BOS/EOS */
    int n_tmpl_pre, n_tmpl_post;
    int32_t tmpl_pre[8], tmpl_post[8];
};

/* ---- vocab building (tokenizer.c) */
mp_tokenizer *tok_new(int kind, int n_vocab);
/* Sets token id's text (copied) and decodes it per the tokenizer kind; call tok_finish after all. */
int tok_set(mp_tokenizer *t, int32_t id, const char *text, size_t len, float score, int type);
/* Builds the hash, byte tokens, decoded pieces and the special-token list. */
int tok_finish(mp_tokenizer *t, mp_error *err, const char *src);
int32_t tok_lookup(const mp_tokenizer *t, const char *s, size_t n);
/* Finds end-of-turn tokens by their text (as llama.cpp does), makes them control tokens, fills eot/eog. */
void tok_mark_eog(mp_tokenizer *t);
int tok_add_merge(mp_tokenizer *t, const char *a, size_t na, const char *b, size_t nb, int rank);
int tok_merges_reserve(mp_tokenizer *t, int n);
/* Configures the pre-tokenizer regexes for a llama.cpp tokenizer.ggml.pre name; -1 if unknown. */
int tok_set_pre(mp_tokenizer *t, const char *pre);
int tok_add_regex(mp_tokenizer *t, const char *pattern, mp_error *err);
static inline const char *tok_text(const mp_tokenizer *t, int32_t id) { return t->pool + t->v[id].off; }

/* ---- growable id list */
typedef struct ibuf { int32_t *p; int n, cap; } ibuf;

static inline int ibuf_push(ibuf *b, int32_t v) {
    if (b->n == b->cap) {
        int nc = b->cap ? b->cap * 2 : 64;
        int32_t *np = (int32_t *)realloc(b->p, (size_t)nc * sizeof *np);
        if (!np) return -1;
        b->p = np;
        b->cap = nc;
    }
    b->p[b->n++] = v;
    return 0;
}

/* ---- merge candidates: max-heap on key (SPM: score; BPE: -rank), ties to the leftmost pair */
typedef struct tok_pair { double key; int left, right; int32_t a, b; } tok_pair;
typedef struct tok_heap { tok_pair *p; int n, cap; } tok_heap;
int tok_heap_push(tok_heap *h, tok_pair v);
tok_pair tok_heap_pop(tok_heap *h); /* h->n must be > 0 */

/* ---- per-kind encoders of one raw fragment (tokenizer_bpe.c) */
int tok_bpe_fragment(const mp_tokenizer *t, const char *s, size_t n, ibuf *out);
int tok_wpm_fragment(const mp_tokenizer *t, const char *s, size_t n, ibuf *out);

/* ---- UTF-8 */
/* Decodes one code point at s[0..n); returns its byte length (>= 1); invalid bytes give *cp = -1, len 1. */
int tok_utf8_decode(const unsigned char *s, size_t n, int32_t *cp);
int tok_utf8_encode(uint32_t cp, char *out);
/* GPT-2 byte-level map: byte -> code point, and back (-1 if cp is not one). */
uint32_t tok_byte_to_cp(uint8_t b);
int tok_cp_to_byte(uint32_t cp);

/* ---- regex (tokenizer_regex.c): a small backtracking engine over code points for pre-tokenizer
 * patterns (classes with \p{..}, \s\d\w, groups, alternation, ?*+{m,n} incl. lazy/possessive, (?i:..),
 * (?!..) and (?=..)). */
typedef struct tok_regex tok_regex;
tok_regex *tok_regex_compile(const char *pattern, char *errbuf, size_t errcap);
void tok_regex_free(tok_regex *re);
/* Leftmost match in cps[start..n) (code points); returns 1 and [*ms,*me) or 0. */
int tok_regex_search(const tok_regex *re, const int32_t *cps, int n, int start, int *ms, int *me);

#endif
