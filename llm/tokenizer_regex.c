/* tokenizer_regex.c — a small backtracking regex engine over code points, for pre-tokenizer patterns.
 *
 * It follows Oniguruma's (Ruby syntax) semantics that HF tokenizers use: leftmost match, alternatives
 * tried in order, greedy/lazy/possessive quantifiers, \s = White_Space, \d = \p{Nd}, \w = letters,
 * marks, Nd, Nl and Pc, `.` = anything but \n, `^`/`$` at line boundaries, (?i:..) with simple case
 * folding, (?=..) (?!..) (?>..) as atomic sub-matches. Not supported (a clear compile error): lookbehind,
 * back-references, class intersection (&&) and \p{Script} names.
 *
 * The pattern compiles to a small program (Pike/Thompson instruction set) run by a backtracking VM
 * with an explicit stack, so long inputs cannot overflow the C stack.
 */
#include "llm/tokenizer_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- classes */

enum { CI_RANGE, CI_CAT, CI_SPACE, CI_WORD, CI_CLASS };

typedef struct citem {
    uint8_t kind, neg;
    int32_t lo, hi;    /* CI_RANGE; CI_CLASS: lo = nested class index */
    uint32_t mask;     /* CI_CAT */
} citem;

typedef struct rclass {
    citem *it;
    int n, cap;
    uint8_t neg, icase;
    uint32_t ascii[4]; /* precomputed result for code points < 128 */
} rclass;

enum {
    OP_CHAR, OP_CHARI, OP_CLASS, OP_ANY, OP_SPLIT, OP_JMP, OP_MATCH,
    OP_BOL, OP_EOL, OP_BOS, OP_EOS, OP_EOSNL, OP_WORDB, OP_NWORDB,
    OP_LOOK, /* x = sub-program start, y = continuation; z: 0 (?=  1 (?!  2 (?> */
    OP_REGSET, OP_REGCHECK,
};

typedef struct rinst { uint8_t op; int32_t x, y, z; } rinst;

struct tok_regex {
    rinst *prog;
    int n, cap;
    rclass *cls;
    int ncls, clscap;
    int nregs;
};

static int is_word_cp(int32_t cp) {
    if (cp < 0x80) return (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || cp == '_';
    uint32_t m = UC_MASK(mp_unicode_category(cp));
    return (m & (UC_L | UC_M | UC_MASK(UC_Nd) | UC_MASK(UC_Nl) | UC_MASK(UC_Pc))) != 0;
}

static int class_items_match(const tok_regex *re, const rclass *c, int32_t cp);

static int class_raw_match(const tok_regex *re, const rclass *c, int32_t cp) {
    int m = class_items_match(re, c, cp);
    if (!m && c->icase) {
        int32_t l = mp_unicode_tolower(cp), u = mp_unicode_toupper(cp);
        if (l != cp) m = class_items_match(re, c, l);
        if (!m && u != cp) m = class_items_match(re, c, u);
    }
    return c->neg ? !m : m;
}

static int class_match(const tok_regex *re, const rclass *c, int32_t cp) {
    if (cp >= 0 && cp < 128) return (c->ascii[cp >> 5] >> (cp & 31)) & 1;
    return class_raw_match(re, c, cp);
}

static int class_items_match(const tok_regex *re, const rclass *c, int32_t cp) {
    for (int i = 0; i < c->n; i++) {
        const citem *it = &c->it[i];
        int m;
        switch (it->kind) {
        case CI_RANGE: m = cp >= it->lo && cp <= it->hi; break;
        case CI_CAT: m = (UC_MASK(mp_unicode_category(cp)) & it->mask) != 0; break;
        case CI_SPACE: m = mp_unicode_is_space(cp); break;
        case CI_WORD: m = is_word_cp(cp); break;
        default: m = class_match(re, &re->cls[it->lo], cp); break;
        }
        if (it->neg) m = !m;
        if (m) return 1;
    }
    return 0;
}

/* ---------------------------------------------------------------- parser -> AST */

enum { N_EMPTY, N_CHAR, N_CLASS, N_ANY, N_CAT, N_ALT, N_REP, N_LOOK, N_ASSERT };

typedef struct rnode {
    int type;
    int32_t c;          /* N_CHAR: code point; N_CLASS: class index; N_ASSERT: opcode; N_LOOK: kind */
    int icase;
    int min, max;       /* N_REP; max -1 = unbounded */
    int greedy, possessive;
    struct rnode **kids;
    int nk, capk;
} rnode;

typedef struct parser {
    const int32_t *p;
    int n, i;
    int icase;
    tok_regex *re;
    char *err;
    size_t errcap;
    rnode **all;
    int nall, capall;
    int failed;
} parser;

static rnode *node_new(parser *ps, int type) {
    if (ps->failed) return NULL;
    rnode *nd = calloc(1, sizeof *nd);
    if (!nd) { ps->failed = 1; snprintf(ps->err, ps->errcap, "out of memory"); return NULL; }
    if (ps->nall == ps->capall) {
        int nc = ps->capall ? ps->capall * 2 : 64;
        rnode **na = realloc(ps->all, (size_t)nc * sizeof *na);
        if (!na) { free(nd); ps->failed = 1; snprintf(ps->err, ps->errcap, "out of memory"); return NULL; }
        ps->all = na;
        ps->capall = nc;
    }
    ps->all[ps->nall++] = nd;
    nd->type = type;
    return nd;
}

static int node_add(parser *ps, rnode *parent, rnode *kid) {
    if (!parent || !kid) return -1;
    if (parent->nk == parent->capk) {
        int nc = parent->capk ? parent->capk * 2 : 4;
        rnode **nk = realloc(parent->kids, (size_t)nc * sizeof *nk);
        if (!nk) { ps->failed = 1; snprintf(ps->err, ps->errcap, "out of memory"); return -1; }
        parent->kids = nk;
        parent->capk = nc;
    }
    parent->kids[parent->nk++] = kid;
    return 0;
}

static void perr(parser *ps, const char *msg) {
    if (ps->failed) return;
    ps->failed = 1;
    snprintf(ps->err, ps->errcap, "%s at character %d of the pattern", msg, ps->i);
}

static int cls_new(parser *ps) {
    tok_regex *re = ps->re;
    if (re->ncls == re->clscap) {
        int nc = re->clscap ? re->clscap * 2 : 16;
        rclass *np = realloc(re->cls, (size_t)nc * sizeof *np);
        if (!np) { perr(ps, "out of memory"); return -1; }
        re->cls = np;
        re->clscap = nc;
    }
    memset(&re->cls[re->ncls], 0, sizeof(rclass));
    return re->ncls++;
}

static void cls_add(parser *ps, int ci, citem it) {
    rclass *c = &ps->re->cls[ci];
    if (c->n == c->cap) {
        int nc = c->cap ? c->cap * 2 : 4;
        citem *np = realloc(c->it, (size_t)nc * sizeof *np);
        if (!np) { perr(ps, "out of memory"); return; }
        c->it = np;
        c->cap = nc;
    }
    c->it[c->n++] = it;
}

static void cls_finish(tok_regex *re, int ci) {
    rclass *c = &re->cls[ci];
    memset(c->ascii, 0, sizeof c->ascii);
    for (int32_t cp = 0; cp < 128; cp++)
        if (class_raw_match(re, c, cp)) c->ascii[cp >> 5] |= 1u << (cp & 31);
}

static int hexval(int32_t c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int32_t peek(parser *ps) { return ps->i < ps->n ? ps->p[ps->i] : -1; }

/* Parses \p{Name} / \pL / \P{..} after the 'p' or 'P'; returns the category mask (0 on error). */
static uint32_t parse_prop(parser *ps, int *neg) {
    char name[32];
    int len = 0;
    if (peek(ps) == '{') {
        ps->i++;
        if (peek(ps) == '^') { *neg = !*neg; ps->i++; }
        while (ps->i < ps->n && ps->p[ps->i] != '}' && len < 31) name[len++] = (char)ps->p[ps->i++];
        if (peek(ps) != '}') { perr(ps, "unterminated \\p{...}"); return 0; }
        ps->i++;
    } else if (ps->i < ps->n) {
        name[len++] = (char)ps->p[ps->i++];
    }
    uint32_t m = mp_unicode_category_mask(name, len);
    if (!m) {
        name[len] = 0;
        char msg[96];
        snprintf(msg, sizeof msg, "unsupported Unicode property \\p{%s}", name);
        perr(ps, msg);
    }
    return m;
}

/* Escape after '\\'. Returns 1 and *cp for a literal, or 2 and *item for a class escape,
 * or 3 and *cp = opcode for an assertion; 0 on error. */
static int parse_escape(parser *ps, int32_t *cp, citem *item, int in_class) {
    if (ps->i >= ps->n) { perr(ps, "pattern ends with a backslash"); return 0; }
    int32_t c = ps->p[ps->i++];
    memset(item, 0, sizeof *item);
    switch (c) {
    case 'n': *cp = '\n'; return 1;
    case 'r': *cp = '\r'; return 1;
    case 't': *cp = '\t'; return 1;
    case 'f': *cp = '\f'; return 1;
    case 'v': *cp = '\v'; return 1;
    case 'a': *cp = 7; return 1;
    case 'e': *cp = 27; return 1;
    case '0': *cp = 0; return 1;
    case 's': case 'S': item->kind = CI_SPACE; item->neg = c == 'S'; return 2;
    case 'w': case 'W': item->kind = CI_WORD; item->neg = c == 'W'; return 2;
    case 'd': case 'D': item->kind = CI_CAT; item->mask = UC_MASK(UC_Nd); item->neg = c == 'D'; return 2;
    case 'p': case 'P': {
        int neg = c == 'P';
        uint32_t m = parse_prop(ps, &neg);
        if (!m) return 0;
        item->kind = CI_CAT;
        item->mask = m;
        item->neg = (uint8_t)neg;
        return 2;
    }
    case 'x': {
        int32_t v = 0;
        if (peek(ps) == '{') {
            ps->i++;
            int nd = 0;
            while (ps->i < ps->n && hexval(ps->p[ps->i]) >= 0 && nd < 8) { v = v * 16 + hexval(ps->p[ps->i++]); nd++; }
            if (peek(ps) != '}' || nd == 0) { perr(ps, "bad \\x{...}"); return 0; }
            ps->i++;
        } else {
            for (int k = 0; k < 2; k++) {
                int h = hexval(peek(ps));
                if (h < 0) { perr(ps, "bad \\xHH"); return 0; }
                v = v * 16 + h;
                ps->i++;
            }
        }
        *cp = v;
        return 1;
    }
    case 'u': {
        int32_t v = 0;
        for (int k = 0; k < 4; k++) {
            int h = hexval(peek(ps));
            if (h < 0) { perr(ps, "bad \\uHHHH"); return 0; }
            v = v * 16 + h;
            ps->i++;
        }
        *cp = v;
        return 1;
    }
    case 'b': if (in_class) { *cp = 8; return 1; } *cp = OP_WORDB; return 3;
    case 'B': if (!in_class) { *cp = OP_NWORDB; return 3; } break;
    case 'A': if (!in_class) { *cp = OP_BOS; return 3; } break;
    case 'z': if (!in_class) { *cp = OP_EOS; return 3; } break;
    case 'Z': if (!in_class) { *cp = OP_EOSNL; return 3; } break;
    default:
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '1' && c <= '9')) break;
        *cp = c; /* escaped punctuation or other literal */
        return 1;
    }
    char msg[64];
    snprintf(msg, sizeof msg, "unsupported escape \\%c", (char)c);
    perr(ps, msg);
    return 0;
}

static int parse_class(parser *ps);

/* After '[': parses up to the matching ']'; returns the class index. */
static int parse_class(parser *ps) {
    int ci = cls_new(ps);
    if (ci < 0) return -1;
    if (peek(ps) == '^') { ps->re->cls[ci].neg = 1; ps->i++; }
    ps->re->cls[ci].icase = (uint8_t)ps->icase;
    int first = 1;
    while (!ps->failed) {
        if (ps->i >= ps->n) { perr(ps, "unterminated character class"); return -1; }
        int32_t c = ps->p[ps->i];
        if (c == ']' && !first) { ps->i++; break; }
        first = 0;
        if (c == '&' && ps->i + 1 < ps->n && ps->p[ps->i + 1] == '&') { perr(ps, "class intersection (&&) is not supported"); return -1; }
        if (c == '[') {
            ps->i++;
            int sub = parse_class(ps);
            if (sub < 0) return -1;
            citem it = {CI_CLASS, 0, sub, 0, 0};
            cls_add(ps, ci, it);
            continue;
        }
        int32_t lo;
        ps->i++;
        if (c == '\\') {
            citem it;
            int k = parse_escape(ps, &lo, &it, 1);
            if (k == 0) return -1;
            if (k == 2) { cls_add(ps, ci, it); continue; }
        } else {
            lo = c;
        }
        /* range? */
        if (peek(ps) == '-' && ps->i + 1 < ps->n && ps->p[ps->i + 1] != ']') {
            ps->i++;
            int32_t hi = ps->p[ps->i++];
            if (hi == '\\') {
                citem it;
                int k = parse_escape(ps, &hi, &it, 1);
                if (k != 1) { perr(ps, "bad range end in character class"); return -1; }
            } else if (hi == '[') {
                perr(ps, "bad range end in character class");
                return -1;
            }
            if (hi < lo) { perr(ps, "empty range in character class"); return -1; }
            citem it = {CI_RANGE, 0, lo, hi, 0};
            cls_add(ps, ci, it);
        } else {
            citem it = {CI_RANGE, 0, lo, lo, 0};
            cls_add(ps, ci, it);
        }
    }
    if (ps->failed) return -1;
    cls_finish(ps->re, ci);
    return ci;
}

static rnode *parse_alt(parser *ps);

static rnode *parse_atom(parser *ps) {
    int32_t c = ps->p[ps->i];
    if (c == '(') {
        ps->i++;
        int saved_icase = ps->icase;
        rnode *r;
        if (peek(ps) == '?') {
            ps->i++;
            int32_t k = peek(ps);
            if (k == ':') { ps->i++; r = parse_alt(ps); }
            else if (k == '=' || k == '!' || k == '>') {
                ps->i++;
                r = node_new(ps, N_LOOK);
                if (r) { r->c = k == '=' ? 0 : k == '!' ? 1 : 2; node_add(ps, r, parse_alt(ps)); }
            } else if (k == '<' && ps->i + 1 < ps->n && (ps->p[ps->i + 1] == '=' || ps->p[ps->i + 1] == '!')) {
                perr(ps, "lookbehind is not supported");
                return NULL;
            } else if (k == '<' || k == 'P' || k == '\'') { /* named group: skip the name */
                while (ps->i < ps->n && ps->p[ps->i] != '>' && ps->p[ps->i] != '\'') ps->i++;
                ps->i++;
                r = parse_alt(ps);
            } else {
                /* inline flags: (?i) (?-i) (?i:...) (?imx-imx:...) */
                int on = 1, icase = ps->icase;
                while (ps->i < ps->n && ps->p[ps->i] != ':' && ps->p[ps->i] != ')') {
                    int32_t f = ps->p[ps->i++];
                    if (f == '-') on = 0;
                    else if (f == 'i') icase = on;
                    else if (f == 'm' || f == 'x') { perr(ps, "regex flags other than i are not supported"); return NULL; }
                    else { perr(ps, "unknown group construct"); return NULL; }
                }
                if (peek(ps) == ')') { /* applies to the rest of the enclosing group */
                    ps->i++;
                    ps->icase = icase;
                    return node_new(ps, N_EMPTY);
                }
                ps->i++;
                ps->icase = icase;
                r = parse_alt(ps);
            }
        } else {
            r = parse_alt(ps);
        }
        ps->icase = saved_icase;
        if (ps->failed) return NULL;
        if (peek(ps) != ')') { perr(ps, "missing )"); return NULL; }
        ps->i++;
        return r;
    }
    ps->i++;
    if (c == '[') {
        int ci = parse_class(ps);
        if (ci < 0) return NULL;
        rnode *r = node_new(ps, N_CLASS);
        if (r) r->c = ci;
        return r;
    }
    if (c == '.') return node_new(ps, N_ANY);
    if (c == '^' || c == '$') {
        rnode *r = node_new(ps, N_ASSERT);
        if (r) r->c = c == '^' ? OP_BOL : OP_EOL;
        return r;
    }
    if (c == '\\') {
        int32_t cp;
        citem it;
        int k = parse_escape(ps, &cp, &it, 0);
        if (k == 0) return NULL;
        if (k == 3) {
            rnode *r = node_new(ps, N_ASSERT);
            if (r) r->c = cp;
            return r;
        }
        if (k == 2) {
            int ci = cls_new(ps);
            if (ci < 0) return NULL;
            cls_add(ps, ci, it);
            ps->re->cls[ci].icase = (uint8_t)ps->icase;
            cls_finish(ps->re, ci);
            rnode *r = node_new(ps, N_CLASS);
            if (r) r->c = ci;
            return r;
        }
        c = cp;
    } else if (c == '*' || c == '+' || c == '?') {
        perr(ps, "quantifier without anything to repeat");
        return NULL;
    }
    rnode *r = node_new(ps, N_CHAR);
    if (r) { r->c = c; r->icase = ps->icase && mp_unicode_tolower(c) != mp_unicode_toupper(c); }
    return r;
}

/* {m}, {m,}, {m,n}, {,n} at ps->i (after '{'); returns 1 if it is a quantifier. */
static int parse_braces(parser *ps, int *mn, int *mx) {
    int j = ps->i, m = -1, x = -1;
    int v = 0, nd = 0;
    while (j < ps->n && ps->p[j] >= '0' && ps->p[j] <= '9' && nd < 6) { v = v * 10 + (ps->p[j] - '0'); j++; nd++; }
    if (nd) m = v;
    if (j < ps->n && ps->p[j] == '}') {
        if (m < 0) return 0;
        *mn = *mx = m;
        ps->i = j + 1;
        return 1;
    }
    if (j >= ps->n || ps->p[j] != ',') return 0;
    j++;
    v = 0;
    nd = 0;
    while (j < ps->n && ps->p[j] >= '0' && ps->p[j] <= '9' && nd < 6) { v = v * 10 + (ps->p[j] - '0'); j++; nd++; }
    if (nd) x = v;
    if (j >= ps->n || ps->p[j] != '}' || (m < 0 && x < 0)) return 0;
    *mn = m < 0 ? 0 : m;
    *mx = x;
    ps->i = j + 1;
    return 1;
}

static rnode *parse_seq(parser *ps) {
    rnode *seq = node_new(ps, N_CAT);
    while (!ps->failed && ps->i < ps->n && ps->p[ps->i] != '|' && ps->p[ps->i] != ')') {
        rnode *a = parse_atom(ps);
        if (!a) return NULL;
        for (;;) { /* quantifiers (Oniguruma allows stacking them) */
            int32_t q = peek(ps);
            int mn, mx;
            if (q == '*') { mn = 0; mx = -1; ps->i++; }
            else if (q == '+') { mn = 1; mx = -1; ps->i++; }
            else if (q == '?') { mn = 0; mx = 1; ps->i++; }
            else if (q == '{') {
                ps->i++;
                if (!parse_braces(ps, &mn, &mx)) { ps->i--; break; }
            } else break;
            if (mx >= 0 && mx < mn) { perr(ps, "bad repeat range"); return NULL; }
            if (mn > 1000 || mx > 1000) { perr(ps, "repeat count over 1000"); return NULL; }
            rnode *r = node_new(ps, N_REP);
            if (!r) return NULL;
            r->min = mn;
            r->max = mx;
            r->greedy = 1;
            if (peek(ps) == '?') { r->greedy = 0; ps->i++; }
            else if (peek(ps) == '+' && q != '{') { r->possessive = 1; ps->i++; }
            node_add(ps, r, a);
            a = r;
        }
        if (node_add(ps, seq, a)) return NULL;
    }
    return seq;
}

static rnode *parse_alt(parser *ps) {
    rnode *first = parse_seq(ps);
    if (!first || peek(ps) != '|') return first;
    rnode *alt = node_new(ps, N_ALT);
    node_add(ps, alt, first);
    while (!ps->failed && peek(ps) == '|') {
        ps->i++;
        rnode *s = parse_seq(ps);
        if (!s) return NULL;
        node_add(ps, alt, s);
    }
    return ps->failed ? NULL : alt;
}

/* ---------------------------------------------------------------- code generation */

static int emit(tok_regex *re, int op, int x, int y, int z) {
    if (re->n == re->cap) {
        int nc = re->cap ? re->cap * 2 : 64;
        rinst *np = realloc(re->prog, (size_t)nc * sizeof *np);
        if (!np) return -1;
        re->prog = np;
        re->cap = nc;
    }
    re->prog[re->n] = (rinst){(uint8_t)op, x, y, z};
    return re->n++;
}

static int nullable(const rnode *nd) {
    switch (nd->type) {
    case N_EMPTY: case N_LOOK: case N_ASSERT: return 1;
    case N_CHAR: case N_CLASS: case N_ANY: return 0;
    case N_CAT:
        for (int i = 0; i < nd->nk; i++) if (!nullable(nd->kids[i])) return 0;
        return 1;
    case N_ALT:
        for (int i = 0; i < nd->nk; i++) if (nullable(nd->kids[i])) return 1;
        return 0;
    case N_REP: return nd->min == 0 || nullable(nd->kids[0]);
    }
    return 1;
}

static int gen(tok_regex *re, const rnode *nd);

/* Emits a sub-program ending in MATCH for look-arounds / atomic groups; returns its start. */
static int gen_look(tok_regex *re, int kind, const rnode *child) {
    int at = emit(re, OP_LOOK, 0, 0, kind);
    if (at < 0) return -1;
    re->prog[at].x = re->n;
    if (gen(re, child) || emit(re, OP_MATCH, 0, 0, 0) < 0) return -1;
    re->prog[at].y = re->n;
    return 0;
}

static int gen_rep_body(tok_regex *re, const rnode *nd) {
    const rnode *k = nd->kids[0];
    if (nd->max == -1) {
        int nul = nullable(k);
        int reg = nul ? re->nregs++ : -1;
        int l1 = emit(re, OP_SPLIT, 0, 0, 0);
        if (l1 < 0) return -1;
        int body = re->n;
        if (nul && emit(re, OP_REGSET, reg, 0, 0) < 0) return -1;
        if (gen(re, k)) return -1;
        if (nul && emit(re, OP_REGCHECK, reg, 0, 0) < 0) return -1;
        if (emit(re, OP_JMP, l1, 0, 0) < 0) return -1;
        int end = re->n;
        re->prog[l1].x = nd->greedy ? body : end;
        re->prog[l1].y = nd->greedy ? end : body;
        return 0;
    }
    int nopt = nd->max - nd->min;
    int *splits = nopt ? malloc((size_t)nopt * sizeof *splits) : NULL;
    if (nopt && !splits) return -1;
    for (int i = 0; i < nopt; i++) {
        splits[i] = emit(re, OP_SPLIT, 0, 0, 0);
        if (splits[i] < 0 || gen(re, k)) { free(splits); return -1; }
        re->prog[splits[i]].x = splits[i] + 1;
    }
    int end = re->n;
    for (int i = 0; i < nopt; i++) {
        int body = splits[i] + 1;
        re->prog[splits[i]].x = nd->greedy ? body : end;
        re->prog[splits[i]].y = nd->greedy ? end : body;
    }
    free(splits);
    return 0;
}

static int gen(tok_regex *re, const rnode *nd) {
    switch (nd->type) {
    case N_EMPTY: return 0;
    case N_CHAR:
        if (nd->icase) return emit(re, OP_CHARI, mp_unicode_tolower(nd->c), mp_unicode_toupper(nd->c), nd->c) < 0;
        return emit(re, OP_CHAR, nd->c, 0, 0) < 0;
    case N_CLASS: return emit(re, OP_CLASS, nd->c, 0, 0) < 0;
    case N_ANY: return emit(re, OP_ANY, 0, 0, 0) < 0;
    case N_ASSERT: return emit(re, nd->c, 0, 0, 0) < 0;
    case N_CAT:
        for (int i = 0; i < nd->nk; i++)
            if (gen(re, nd->kids[i])) return -1;
        return 0;
    case N_ALT: {
        int *jumps = malloc((size_t)nd->nk * sizeof *jumps);
        if (!jumps) return -1;
        int nj = 0;
        for (int i = 0; i < nd->nk; i++) {
            int split = -1;
            if (i + 1 < nd->nk) {
                split = emit(re, OP_SPLIT, 0, 0, 0);
                if (split < 0) { free(jumps); return -1; }
                re->prog[split].x = split + 1;
            }
            if (gen(re, nd->kids[i])) { free(jumps); return -1; }
            if (i + 1 < nd->nk) {
                jumps[nj] = emit(re, OP_JMP, 0, 0, 0);
                if (jumps[nj] < 0) { free(jumps); return -1; }
                nj++;
                re->prog[split].y = re->n;
            }
        }
        for (int i = 0; i < nj; i++) re->prog[jumps[i]].x = re->n;
        free(jumps);
        return 0;
    }
    case N_LOOK: return gen_look(re, nd->c, nd->kids[0]);
    case N_REP: {
        if (nd->possessive) {
            rnode tmp = *nd;
            tmp.possessive = 0;
            int at = emit(re, OP_LOOK, 0, 0, 2);
            if (at < 0) return -1;
            re->prog[at].x = re->n;
            if (gen(re, &tmp) || emit(re, OP_MATCH, 0, 0, 0) < 0) return -1;
            re->prog[at].y = re->n;
            return 0;
        }
        for (int i = 0; i < nd->min; i++)
            if (gen(re, nd->kids[0])) return -1;
        return gen_rep_body(re, nd);
    }
    }
    return -1;
}

void tok_regex_free(tok_regex *re) {
    if (!re) return;
    for (int i = 0; i < re->ncls; i++) free(re->cls[i].it);
    free(re->cls);
    free(re->prog);
    free(re);
}

tok_regex *tok_regex_compile(const char *pattern, char *errbuf, size_t errcap) {
    char dummy[8];
    if (!errbuf || !errcap) { errbuf = dummy; errcap = sizeof dummy; }
    errbuf[0] = 0;
    size_t len = strlen(pattern);
    int32_t *cps = malloc((len + 1) * sizeof *cps);
    tok_regex *re = calloc(1, sizeof *re);
    if (!cps || !re) { free(cps); free(re); snprintf(errbuf, errcap, "out of memory"); return NULL; }
    int n = 0;
    for (size_t i = 0; i < len;) {
        int32_t cp;
        int l = tok_utf8_decode((const unsigned char *)pattern + i, len - i, &cp);
        if (cp < 0) { free(cps); free(re); snprintf(errbuf, errcap, "pattern is not valid UTF-8"); return NULL; }
        cps[n++] = cp;
        i += (size_t)l;
    }
    parser ps = {cps, n, 0, 0, re, errbuf, errcap, NULL, 0, 0, 0};
    rnode *root = parse_alt(&ps);
    if (!ps.failed && ps.i < ps.n) perr(&ps, "unbalanced )");
    int rc = ps.failed || !root ? -1 : 0;
    if (!rc && (gen(re, root) || emit(re, OP_MATCH, 0, 0, 0) < 0)) {
        snprintf(errbuf, errcap, "out of memory");
        rc = -1;
    }
    for (int i = 0; i < ps.nall; i++) { free(ps.all[i]->kids); free(ps.all[i]); }
    free(ps.all);
    free(cps);
    if (rc) {
        if (!errbuf[0]) snprintf(errbuf, errcap, "bad pattern");
        tok_regex_free(re);
        return NULL;
    }
    return re;
}

/* ---------------------------------------------------------------- matcher */

typedef struct bt { int32_t pc, sp; } bt; /* pc >= 0: branch; pc = -1 - reg: undo (sp = old value) */

typedef struct vm {
    const tok_regex *re;
    const int32_t *s;
    int n;
    int32_t *regs;
} vm;

static int run(vm *m, int pc, int sp, int *end);

static int step_ok(const vm *m, const rinst *in, int sp) {
    const int32_t *s = m->s;
    int n = m->n;
    switch (in->op) {
    case OP_BOL: return sp == 0 || s[sp - 1] == '\n';
    case OP_EOL: return sp == n || s[sp] == '\n';
    case OP_BOS: return sp == 0;
    case OP_EOS: return sp == n;
    case OP_EOSNL: return sp == n || (sp == n - 1 && s[sp] == '\n');
    case OP_WORDB: case OP_NWORDB: {
        int a = sp > 0 && is_word_cp(s[sp - 1]), b = sp < n && is_word_cp(s[sp]);
        return (a != b) == (in->op == OP_WORDB);
    }
    }
    return 0;
}

#define BT_LOCAL 64

/* Pushes onto the backtrack stack, moving it from the local array to the heap when it grows. */
static int bt_push(bt **stk, int *nst, int *cap, bt *local, bt e) {
    if (*nst == *cap) {
        int nc = *cap * 2;
        bt *ns = *stk == local ? malloc((size_t)nc * sizeof *ns) : realloc(*stk, (size_t)nc * sizeof *ns);
        if (!ns) return -1;
        if (*stk == local) memcpy(ns, local, BT_LOCAL * sizeof *ns);
        *stk = ns;
        *cap = nc;
    }
    (*stk)[(*nst)++] = e;
    return 0;
}

static int run(vm *m, int pc, int sp, int *end) {
    bt local[BT_LOCAL];
    bt *stk = local;
    int nst = 0, cap = BT_LOCAL, result = 0;
    const rinst *prog = m->re->prog;
    for (;;) {
        const rinst *in = &prog[pc];
        int fail = 0;
        switch (in->op) {
        case OP_CHAR:
            if (sp < m->n && m->s[sp] == in->x) { sp++; pc++; } else fail = 1;
            break;
        case OP_CHARI:
            if (sp < m->n && (m->s[sp] == in->z || mp_unicode_tolower(m->s[sp]) == in->x ||
                              mp_unicode_toupper(m->s[sp]) == in->y)) { sp++; pc++; }
            else fail = 1;
            break;
        case OP_CLASS:
            if (sp < m->n && class_match(m->re, &m->re->cls[in->x], m->s[sp])) { sp++; pc++; } else fail = 1;
            break;
        case OP_ANY:
            if (sp < m->n && m->s[sp] != '\n') { sp++; pc++; } else fail = 1;
            break;
        case OP_JMP: pc = in->x; break;
        case OP_SPLIT:
            if (bt_push(&stk, &nst, &cap, local, (bt){in->y, sp})) { result = -1; goto done; }
            pc = in->x;
            break;
        case OP_MATCH:
            *end = sp;
            result = 1;
            goto done;
        case OP_REGSET:
        case OP_REGCHECK:
            if (in->op == OP_REGCHECK) {
                if (m->regs[in->x] == sp) fail = 1;
                else pc++;
                break;
            }
            if (bt_push(&stk, &nst, &cap, local, (bt){-1 - in->x, m->regs[in->x]})) { result = -1; goto done; }
            m->regs[in->x] = sp;
            pc++;
            break;
        case OP_LOOK: {
            int e;
            int r = run(m, in->x, sp, &e);
            if (r < 0) { result = -1; goto done; }
            if (in->z == 0) { if (r) pc = in->y; else fail = 1; }
            else if (in->z == 1) { if (!r) pc = in->y; else fail = 1; }
            else { if (r) { sp = e; pc = in->y; } else fail = 1; }
            break;
        }
        default:
            if (step_ok(m, in, sp)) pc++;
            else fail = 1;
            break;
        }
        if (fail) {
            for (;;) {
                if (nst == 0) goto done;
                bt b = stk[--nst];
                if (b.pc < 0) { m->regs[-1 - b.pc] = b.sp; continue; }
                pc = b.pc;
                sp = b.sp;
                break;
            }
        }
    }
done:
    /* undo register writes left on the stack (the caller's view must not change) */
    while (nst > 0) {
        bt b = stk[--nst];
        if (b.pc < 0) m->regs[-1 - b.pc] = b.sp;
    }
    if (stk != local) free(stk);
    return result;
}

int tok_regex_search(const tok_regex *re, const int32_t *cps, int n, int start, int *ms, int *me) {
    int32_t regs_local[16];
    int32_t *regs = re->nregs <= 16 ? regs_local : malloc((size_t)re->nregs * sizeof *regs);
    if (!regs) return -1;
    for (int i = 0; i < re->nregs; i++) regs[i] = -1;
    vm m = {re, cps, n, regs};
    int found = 0;
    for (int s = start; s <= n; s++) {
        int e;
        int r = run(&m, 0, s, &e);
        if (r < 0) { found = -1; break; }
        if (r) { *ms = s; *me = e; found = 1; break; }
    }
    if (regs != regs_local) free(regs);
    return found;
}
