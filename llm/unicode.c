/* unicode.c — lookups over the generated tables (unicode_data.c) and canonical normalization. */
#include "llm/unicode.h"
#include "llm/unicode_tables.h"

#include <stdlib.h>
#include <string.h>

/* index of the last run whose start is <= cp */
static int run_find(const uint32_t *start, int n, uint32_t cp) {
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (start[mid] <= cp) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

int mp_unicode_category(int32_t cp) {
    if (cp < 0 || cp > 0x10FFFF) return UC_Cn;
    return mp_unicode.cat_value[run_find(mp_unicode.cat_start, mp_unicode.n_cat, (uint32_t)cp)];
}

uint32_t mp_unicode_category_mask(const char *name, int len) {
    static const char *names[UC_COUNT] = {"Cn", "Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "Nd",
                                          "Nl", "No", "Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po", "Sm",
                                          "Sc", "Sk", "So", "Zs", "Zl", "Zp", "Cc", "Cf", "Cs", "Co"};
    if (len == 1) {
        switch (name[0]) {
        case 'L': return UC_L;
        case 'M': return UC_M;
        case 'N': return UC_N;
        case 'P': return UC_P;
        case 'S': return UC_S;
        case 'Z': return UC_Z;
        case 'C': return UC_C;
        default: return 0;
        }
    }
    if (len == 2)
        for (int i = 0; i < UC_COUNT; i++)
            if (names[i][0] == name[0] && names[i][1] == name[1]) return UC_MASK(i);
    /* long names used in patterns */
    static const struct { const char *n; uint32_t m; } longn[] = {
        {"Letter", UC_L}, {"Mark", UC_M}, {"Number", UC_N}, {"Punctuation", UC_P}, {"Symbol", UC_S},
        {"Separator", UC_Z}, {"Other", UC_C}, {"Uppercase_Letter", UC_MASK(UC_Lu)},
        {"Lowercase_Letter", UC_MASK(UC_Ll)}, {"Decimal_Number", UC_MASK(UC_Nd)},
    };
    for (size_t i = 0; i < sizeof longn / sizeof longn[0]; i++)
        if ((int)strlen(longn[i].n) == len && memcmp(longn[i].n, name, (size_t)len) == 0) return longn[i].m;
    return 0;
}

int mp_unicode_is_space(int32_t cp) {
    if (cp >= 9 && cp <= 13) return 1;
    if (cp == 0x20 || cp == 0x85) return 1;
    if (cp < 0x80) return 0;
    return (UC_MASK(mp_unicode_category(cp)) & UC_Z) != 0;
}

static int32_t pair_lookup(const uint32_t *pairs, int n, int32_t cp) {
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        uint32_t k = pairs[2 * mid];
        if (k == (uint32_t)cp) return (int32_t)pairs[2 * mid + 1];
        if (k < (uint32_t)cp) lo = mid + 1;
        else hi = mid - 1;
    }
    return cp;
}

int32_t mp_unicode_tolower(int32_t cp) {
    if (cp < 0x80) return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
    return pair_lookup(mp_unicode.lower, mp_unicode.n_lower, cp);
}

int32_t mp_unicode_toupper(int32_t cp) {
    if (cp < 0x80) return (cp >= 'a' && cp <= 'z') ? cp - 32 : cp;
    return pair_lookup(mp_unicode.upper, mp_unicode.n_upper, cp);
}

int mp_unicode_ccc(int32_t cp) {
    if (cp < 0x300 || cp > 0x10FFFF) return 0;
    return mp_unicode.ccc_value[run_find(mp_unicode.ccc_start, mp_unicode.n_ccc, (uint32_t)cp)];
}

const char *mp_unicode_data_version(void) { return mp_unicode_version; }

/* ---------------------------------------------------------------- normalization */

enum { SBASE = 0xAC00, LBASE = 0x1100, VBASE = 0x1161, TBASE = 0x11A7, LCOUNT = 19, VCOUNT = 21, TCOUNT = 28,
       NCOUNT = VCOUNT * TCOUNT, SCOUNT = LCOUNT * NCOUNT };

static const uint32_t *decomp_find(int32_t cp) {
    int lo = 0, hi = mp_unicode.n_decomp - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        uint32_t k = mp_unicode.decomp[3 * mid];
        if (k == (uint32_t)cp) return &mp_unicode.decomp[3 * mid];
        if (k < (uint32_t)cp) lo = mid + 1;
        else hi = mid - 1;
    }
    return NULL;
}

typedef struct cpbuf { int32_t *p; int n, cap; } cpbuf;

static int cp_push(cpbuf *b, int32_t v) {
    if (b->n == b->cap) {
        int nc = b->cap ? b->cap * 2 : 64;
        int32_t *np = realloc(b->p, (size_t)nc * sizeof *np);
        if (!np) return -1;
        b->p = np;
        b->cap = nc;
    }
    b->p[b->n++] = v;
    return 0;
}

static int decompose(int32_t cp, cpbuf *out, int depth) {
    if (cp >= SBASE && cp < SBASE + SCOUNT) {
        int s = cp - SBASE;
        if (cp_push(out, LBASE + s / NCOUNT) || cp_push(out, VBASE + (s % NCOUNT) / TCOUNT)) return -1;
        if (s % TCOUNT && cp_push(out, TBASE + s % TCOUNT)) return -1;
        return 0;
    }
    const uint32_t *d = depth < 8 ? decomp_find(cp) : NULL;
    if (!d) return cp_push(out, cp);
    if (decompose((int32_t)d[1], out, depth + 1)) return -1;
    if (d[2] && decompose((int32_t)d[2], out, depth + 1)) return -1;
    return 0;
}

static int32_t compose_pair(int32_t a, int32_t b) {
    if (a >= LBASE && a < LBASE + LCOUNT && b >= VBASE && b < VBASE + VCOUNT)
        return SBASE + ((a - LBASE) * VCOUNT + (b - VBASE)) * TCOUNT;
    if (a >= SBASE && a < SBASE + SCOUNT && (a - SBASE) % TCOUNT == 0 && b > TBASE && b < TBASE + TCOUNT)
        return a + (b - TBASE);
    int lo = 0, hi = mp_unicode.n_comp - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        const uint32_t *t = &mp_unicode.comp[3 * mid];
        if (t[0] == (uint32_t)a && t[1] == (uint32_t)b) return (int32_t)t[2];
        if (t[0] < (uint32_t)a || (t[0] == (uint32_t)a && t[1] < (uint32_t)b)) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

int32_t *mp_unicode_normalize(const int32_t *cps, int n, int form, int *n_out) {
    cpbuf b = {0};
    for (int i = 0; i < n; i++)
        if (decompose(cps[i], &b, 0)) { free(b.p); return NULL; }
    /* canonical ordering: stable sort of each run of non-starters by combining class */
    for (int i = 1; i < b.n; i++) {
        int c = mp_unicode_ccc(b.p[i]);
        if (c == 0) continue;
        int j = i;
        int32_t v = b.p[i];
        while (j > 0 && mp_unicode_ccc(b.p[j - 1]) > c) { b.p[j] = b.p[j - 1]; j--; }
        b.p[j] = v;
    }
    if (form == 'C' && b.n > 0) {
        /* canonical composition: c joins the last starter unless something between them blocks it
         * (a starter, or a mark of the same or a higher combining class) */
        int starter = -1, w = 0, last_cc = 0;
        for (int i = 0; i < b.n; i++) {
            int32_t c = b.p[i];
            int cc = mp_unicode_ccc(c);
            if (starter >= 0 && (w - 1 == starter || (last_cc != 0 && last_cc < cc))) {
                int32_t comp = compose_pair(b.p[starter], c);
                if (comp >= 0) {
                    b.p[starter] = comp;
                    continue;
                }
            }
            if (cc == 0) starter = w;
            last_cc = cc;
            b.p[w++] = c;
        }
        b.n = w;
    }
    if (!b.p) b.p = malloc(sizeof(int32_t));
    *n_out = b.n;
    return b.p;
}
