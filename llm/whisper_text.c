/* whisper_text.c — Whisper's text side: token bytes to UTF-8 text (Python's errors="replace" rule),
 * byte-level BPE encoding for prompts and the non-speech token list (tiktoken: pre-tokenize with the
 * GPT-2 pattern, then merge the adjacent pair whose concatenation has the lowest rank = token id),
 * the gzip compression ratio, language names. */
#include "llm/whisper_decode.h"

#include "llm/tokenizer_int.h" /* tok_utf8_decode */

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static const char *const LANG_NAMES[MP_WHISPER_N_LANG] = {
    "english", "chinese", "german", "spanish", "russian", "korean", "french", "japanese", "portuguese", "turkish",
    "polish", "catalan", "dutch", "arabic", "swedish", "italian", "indonesian", "hindi", "finnish", "vietnamese",
    "hebrew", "ukrainian", "greek", "malay", "czech", "romanian", "danish", "hungarian", "tamil", "norwegian",
    "thai", "urdu", "croatian", "bulgarian", "lithuanian", "latin", "maori", "malayalam", "welsh", "slovak",
    "telugu", "persian", "latvian", "bengali", "serbian", "azerbaijani", "slovenian", "kannada", "estonian",
    "macedonian", "breton", "basque", "icelandic", "armenian", "nepali", "mongolian", "bosnian", "kazakh",
    "albanian", "swahili", "galician", "marathi", "punjabi", "sinhala", "khmer", "shona", "yoruba", "somali",
    "afrikaans", "occitan", "georgian", "belarusian", "tajik", "sindhi", "gujarati", "amharic", "yiddish", "lao",
    "uzbek", "faroese", "haitian creole", "pashto", "turkmen", "nynorsk", "maltese", "sanskrit", "luxembourgish",
    "myanmar", "tibetan", "tagalog", "malagasy", "assamese", "tatar", "hawaiian", "lingala", "hausa", "bashkir",
    "javanese", "sundanese", "cantonese"};

const char *mp_whisper_lang_name(int i) { return i >= 0 && i < MP_WHISPER_N_LANG ? LANG_NAMES[i] : NULL; }

int mp_whisper_lang_id(const char *code) {
    if (!code) return -1;
    for (int i = 0; i < MP_WHISPER_N_LANG; i++)
        if (!strcmp(code, mp_whisper_lang_code(i)) || !strcmp(code, LANG_NAMES[i])) return i;
    return -1;
}

/* ---------------------------------------------------------------- bytes -> text */

/* Appends s[0..n) to *buf as valid UTF-8: each maximal invalid subpart becomes U+FFFD (Python's
 * bytes.decode("utf-8", errors="replace")). *buf has room for 3 * n bytes. Returns bytes written. */
static size_t utf8_replace(const unsigned char *s, size_t n, char *out) {
    size_t i = 0, w = 0;
    while (i < n) {
        unsigned b0 = s[i];
        int need = 0;
        unsigned lo = 0x80, hi = 0xBF;
        if (b0 < 0x80) {
            out[w++] = (char)b0;
            i++;
            continue;
        } else if (b0 >= 0xC2 && b0 <= 0xDF) {
            need = 1;
        } else if (b0 == 0xE0) {
            need = 2, lo = 0xA0;
        } else if ((b0 >= 0xE1 && b0 <= 0xEC) || b0 == 0xEE || b0 == 0xEF) {
            need = 2;
        } else if (b0 == 0xED) {
            need = 2, hi = 0x9F;
        } else if (b0 == 0xF0) {
            need = 3, lo = 0x90;
        } else if (b0 >= 0xF1 && b0 <= 0xF3) {
            need = 3;
        } else if (b0 == 0xF4) {
            need = 3, hi = 0x8F;
        }
        size_t k = 1;
        int ok = need > 0;
        for (int j = 0; ok && j < need; j++) {
            if (i + k >= n) { ok = 0; break; }
            unsigned b = s[i + k];
            unsigned l = j == 0 ? lo : 0x80, h = j == 0 ? hi : 0xBF;
            if (b < l || b > h) { ok = 0; break; }
            k++;
        }
        if (ok) {
            memcpy(out + w, s + i, k);
            w += k;
        } else {
            memcpy(out + w, "\xEF\xBF\xBD", 3);
            w += 3;
        }
        i += k;
    }
    return w;
}

static char *detok(const mp_whisper *m, const int32_t *ids, int n, int all) {
    const mp_whisper_vocab *v = &m->vocab;
    size_t total = 0;
    for (int i = 0; i < n; i++)
        if (ids[i] >= 0 && ids[i] < v->n && (all || ids[i] < m->sp.timestamp_begin)) total += v->len[ids[i]];
    unsigned char *raw = malloc(total + 1);
    char *out = malloc(3 * total + 1);
    if (!raw || !out) {
        free(raw);
        free(out);
        return NULL;
    }
    size_t k = 0;
    for (int i = 0; i < n; i++)
        if (ids[i] >= 0 && ids[i] < v->n && (all || ids[i] < m->sp.timestamp_begin)) {
            memcpy(raw + k, v->text + v->off[ids[i]], v->len[ids[i]]);
            k += v->len[ids[i]];
        }
    size_t w = utf8_replace(raw, k, out);
    out[w] = 0;
    free(raw);
    return out;
}

char *mp_whisper_detok(const mp_whisper *m, const int32_t *ids, int n) { return detok(m, ids, n, 0); }
char *mp_whisper_detok_all(const mp_whisper *m, const int32_t *ids, int n) { return detok(m, ids, n, 1); }

/* ---------------------------------------------------------------- text -> tokens */

enum { CL_L = 1, CL_N = 2, CL_S = 3, CL_O = 4 };

/* Unicode class of a code point: letters, numbers, whitespace, other. Exact for ASCII; above it an
 * approximation by blocks (punctuation, symbols and spaces by their ranges, everything else a letter). */
static int uclass(int32_t c) {
    if (c < 0) return CL_O;
    if (c < 0x80) {
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return CL_L;
        if (c >= '0' && c <= '9') return CL_N;
        if (c == ' ' || (c >= 9 && c <= 13) || (c >= 0x1c && c <= 0x1f)) return CL_S;
        return CL_O;
    }
    if (c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
        c == 0x202F || c == 0x205F || c == 0x3000)
        return CL_S;
    if (c == 0xB2 || c == 0xB3 || c == 0xB9 || (c >= 0xBC && c <= 0xBE) || (c >= 0x660 && c <= 0x669) ||
        (c >= 0x6F0 && c <= 0x6F9) || (c >= 0x966 && c <= 0x96F) || (c >= 0xFF10 && c <= 0xFF19) ||
        (c >= 0x2070 && c <= 0x2079) || (c >= 0x2080 && c <= 0x2089) || (c >= 0x2150 && c <= 0x218B) ||
        (c >= 0x2460 && c <= 0x249B))
        return CL_N;
    if (c == 0xAA || c == 0xB5 || c == 0xBA) return CL_L;
    if (c < 0xC0 || c == 0xD7 || c == 0xF7 || (c >= 0x2000 && c <= 0x2BFF) || (c >= 0x3000 && c <= 0x303F) ||
        (c >= 0xFE30 && c <= 0xFE4F) || (c >= 0xFF00 && c <= 0xFF0F) || (c >= 0xFF1A && c <= 0xFF20) ||
        (c >= 0xFF3B && c <= 0xFF40) || (c >= 0xFF5B && c <= 0xFF65) || (c >= 0x1F000 && c <= 0x1FAFF) ||
        (c >= 0x2E00 && c <= 0x2E7F) || (c >= 0x55A && c <= 0x55F) || c == 0x589 || c == 0x5BE ||
        (c >= 0x5C0 && c <= 0x5C6 && c != 0x5C1 && c != 0x5C2 && c != 0x5C4 && c != 0x5C5) || c == 0x60C ||
        c == 0x61B || c == 0x61F || c == 0x6D4 || c == 0x964 || c == 0x965 || c == 0xE3F || c == 0xE4F)
        return CL_O;
    return CL_L;
}

/* rank-merge BPE of one pre-token (bytes s[0..n)): appends ids */
static int bpe_piece(const mp_whisper *m, const unsigned char *s, int n, int32_t *ids, int max, int k) {
    if (n <= 0) return k;
    int *start = malloc(sizeof(int) * (size_t)n), np = n; /* part i = bytes [start[i], start[i+1]) */
    if (!start) return -1;
    for (int i = 0; i < n; i++) start[i] = i;
    for (;;) {
        int best = -1;
        int32_t best_id = INT32_MAX;
        for (int i = 0; i + 1 < np; i++) {
            int b = start[i], e = i + 2 < np ? start[i + 2] : n;
            int32_t id = mp_whisper_vocab_find(&m->vocab, (const char *)s + b, (uint32_t)(e - b));
            if (id >= 0 && id < best_id) best_id = id, best = i;
        }
        if (best < 0) break;
        for (int i = best + 1; i + 1 < np; i++) start[i] = start[i + 1];
        np--;
    }
    for (int i = 0; i < np; i++) {
        int b = start[i], e = i + 1 < np ? start[i + 1] : n;
        int32_t id = mp_whisper_vocab_find(&m->vocab, (const char *)s + b, (uint32_t)(e - b));
        if (id < 0) { /* a byte with no token of its own: cannot happen with GPT-2 vocabularies */
            free(start);
            return -1;
        }
        if (k < max) ids[k] = id;
        k++;
    }
    free(start);
    return k;
}

int mp_whisper_tokenize(const mp_whisper *m, const char *text, int32_t *ids, int max) {
    const unsigned char *s = (const unsigned char *)text;
    const size_t n = strlen(text);
    int32_t *cp = malloc(sizeof(int32_t) * (n + 1));
    int *at = malloc(sizeof(int) * (n + 2));
    if (!cp || !at) {
        free(cp);
        free(at);
        return -1;
    }
    int nc = 0;
    for (size_t i = 0; i < n;) { /* code points and their byte offsets */
        at[nc] = (int)i;
        i += (size_t)tok_utf8_decode(s + i, n - i, &cp[nc]);
        nc++;
    }
    at[nc] = (int)n;
    int k = 0;
    for (int i = 0; i < nc && k >= 0;) {
        int j = i + 1;
        /* 's|'t|'re|'ve|'m|'ll|'d */
        if (cp[i] == '\'' && i + 1 < nc) {
            int32_t a = cp[i + 1], b = i + 2 < nc ? cp[i + 2] : 0;
            if (a == 's' || a == 't' || a == 'm' || a == 'd') j = i + 2;
            else if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) j = i + 3;
        }
        if (j == i + 1) {
            int c0 = uclass(cp[i]);
            int lead = cp[i] == ' ' && i + 1 < nc && uclass(cp[i + 1]) != CL_S; /* " ?X+" */
            int c = lead ? uclass(cp[i + 1]) : c0;
            if (c != CL_S) {
                j = i + 1 + lead;
                while (j < nc && uclass(cp[j]) == c) j++;
            } else { /* \s+(?!\S) | \s+ */
                while (j < nc && uclass(cp[j]) == CL_S) j++;
                if (j < nc && j - i > 1) j--;
            }
        }
        k = bpe_piece(m, s + at[i], at[j] - at[i], ids, max, k);
        i = j;
    }
    free(cp);
    free(at);
    return k;
}

char *mp_whisper_strip(char *s) {
    size_t n = strlen(s), b = 0;
    while (b < n) {
        int32_t c;
        int l = tok_utf8_decode((const unsigned char *)s + b, n - b, &c);
        if (uclass(c) != CL_S) break;
        b += (size_t)l;
    }
    size_t e = n;
    while (e > b) { /* step back over one code point */
        size_t p = e - 1;
        while (p > b && ((unsigned char)s[p] & 0xC0) == 0x80) p--;
        int32_t c;
        tok_utf8_decode((const unsigned char *)s + p, e - p, &c);
        if (uclass(c) != CL_S) break;
        e = p;
    }
    memmove(s, s + b, e - b);
    s[e - b] = 0;
    return s;
}

float mp_whisper_compression_ratio(const char *text) {
    size_t n = strlen(text);
    uLongf cap = compressBound((uLong)n);
    Bytef *buf = malloc(cap ? cap : 1);
    if (!buf) return 0;
    float r = 0;
    if (compress2(buf, &cap, (const Bytef *)text, (uLong)n, Z_DEFAULT_COMPRESSION) == Z_OK && cap > 0)
        r = (float)((double)n / (double)cap);
    free(buf);
    return r;
}
