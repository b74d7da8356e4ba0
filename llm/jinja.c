/* jinja.c — a Jinja interpreter for chat templates, behaving like HF's @huggingface/jinja.
 *
 * Pipeline: preprocess (drop one trailing newline, lstrip_blocks, trim_blocks) -> lexer (text, {% %},
 * {{ }}, {# #} with '-' whitespace control) -> recursive-descent parser (same precedence as
 * @huggingface/jinja: ternary < or < and < not < comparisons/in < + - ~ < * / // % < ** < is-tests
 * < |filters < unary sign < calls/members < primary) -> tree-walking interpreter over tagged values.
 * Everything a render allocates lives in an arena freed at the end; errors longjmp out with one line
 * naming the template and line.
 */
#include "llm/jinja.h"
#include "llm/tokenizer_int.h" /* UTF-8 helpers */
#include "models/gguf.h"
#include "models/mmap.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ================================================================ arena */

typedef struct ablock { struct ablock *next; size_t used, cap; char data[]; } ablock;
/* total: bytes of blocks taken; limit: most bytes a render may take (0: none); going past it longjmps
 * with code 3 (the render names the limit) */
typedef struct arena { ablock *head; size_t total, limit; } arena;

static void *ar_alloc(arena *a, size_t n, jmp_buf *jb) {
    if (n > ((size_t)1 << 40)) { if (jb) longjmp(*jb, a->limit ? 3 : 2); return NULL; }
    n = (n + 15) & ~(size_t)15;
    if (!a->head || a->head->used + n > a->head->cap) {
        size_t cap = n > 65536 ? n : 65536;
        if (a->limit && a->total + cap > a->limit) { if (jb) longjmp(*jb, 3); return NULL; }
        ablock *b = malloc(sizeof *b + cap);
        if (!b) { if (jb) longjmp(*jb, 2); return NULL; }
        a->total += cap;
        b->next = a->head;
        b->used = 0;
        b->cap = cap;
        a->head = b;
    }
    void *p = a->head->data + a->head->used;
    a->head->used += n;
    memset(p, 0, n);
    return p;
}

static void ar_free(arena *a) {
    for (ablock *b = a->head; b;) {
        ablock *n = b->next;
        free(b);
        b = n;
    }
    a->head = NULL;
}

/* ================================================================ growable string */

/* Strings grow inside the arena (old copies stay until the arena is freed), so an error that longjmps
 * out leaks nothing. */
typedef struct sb { char *p; size_t n, cap; arena *ar; jmp_buf *jb; } sb;
#define SB(R) ((sb){NULL, 0, 0, &(R)->ar, &(R)->jb})

static void sb_put(sb *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 64;
        while (nc < b->n + n + 1) nc *= 2;
        char *np = ar_alloc(b->ar, nc, b->jb);
        if (b->n) memcpy(np, b->p, b->n);
        b->p = np;
        b->cap = nc;
    }
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void sb_puts(sb *b, const char *s) { sb_put(b, s, strlen(s)); }

/* JavaScript's \s / String.prototype.trim() whitespace */
static int js_space(int32_t c) {
    return (c >= 9 && c <= 13) || c == 0x20 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
           c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000 || c == 0xFEFF;
}

static int cp_at(const char *s, size_t n, size_t i, int32_t *cp) {
    int l = tok_utf8_decode((const unsigned char *)s + i, n - i, cp);
    return l;
}

/* length of trailing JS whitespace */
static size_t js_trim_end(const char *s, size_t n) {
    while (n > 0) {
        size_t k = n - 1;
        while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80 && n - k < 4) k--;
        int32_t cp;
        int l = cp_at(s, n, k, &cp);
        if ((size_t)l != n - k || !js_space(cp)) break;
        n = k;
    }
    return n;
}

static size_t js_trim_start(const char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        int32_t cp;
        int l = cp_at(s, n, i, &cp);
        if (!js_space(cp)) break;
        i += (size_t)l;
    }
    return i;
}

/* ================================================================ lexer */

enum {
    T_TEXT, T_NUM, T_STR, T_IDENT, T_EQUALS, T_LPAREN, T_RPAREN, T_OSTMT, T_CSTMT, T_OEXPR, T_CEXPR,
    T_LBRACK, T_RBRACK, T_LBRACE, T_RBRACE, T_COMMA, T_DOT, T_COLON, T_PIPE, T_ADD, T_MUL, T_POW, T_CMP,
    T_UNARY, T_COMMENT, T_EOF
};

typedef struct tok { int type; char *s; size_t n; int line; } tok;

typedef struct lexer {
    const char *src; /* preprocessed */
    size_t n, i;
    const int *line; /* original line of each byte of src */
    tok *t;
    int nt, cap;
    arena *ar;
    jmp_buf *jb;
    mp_error *err;
    const char *name;
} lexer;

static void jerr(mp_error *err, jmp_buf *jb, const char *name, int line, const char *fmt, ...) {
    char msg[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    for (char *c = msg; *c; c++) /* one line, whatever the template put in a message */
        if ((unsigned char)*c < 0x20) *c = ' ';
    if (line > 0) mp_errf(err, "%s:%d: %s", name, line, msg);
    else mp_errf(err, "%s: %s", name, msg);
    longjmp(*jb, 1);
}

static int lx_line(const lexer *L) { return L->i < L->n ? L->line[L->i] : (L->n ? L->line[L->n - 1] : 1); }

static void lx_push(lexer *L, int type, const char *s, size_t n, int line) {
    if (L->nt == L->cap) {
        int nc = L->cap ? L->cap * 2 : 256;
        tok *nt = realloc(L->t, (size_t)nc * sizeof *nt);
        if (!nt) longjmp(*L->jb, 2);
        L->t = nt;
        L->cap = nc;
    }
    char *c = ar_alloc(L->ar, n + 1, L->jb);
    memcpy(c, s, n);
    L->t[L->nt++] = (tok){type, c, n, line};
}

typedef int (*char_pred)(const lexer *L, size_t i);

/* consumeWhile with @huggingface/jinja's escape handling (backslash escapes in any consumed run) */
static void lx_consume(lexer *L, char_pred pred, int quote, sb *out) {
    out->n = 0;
    if (out->p) out->p[0] = 0;
    for (;;) {
        if (L->i >= L->n) {
            if (quote) jerr(L->err, L->jb, L->name, lx_line(L), "unterminated string literal");
            break;
        }
        if (quote ? L->src[L->i] == quote : !pred(L, L->i)) break;
        if (L->src[L->i] == '\\') {
            L->i++;
            if (L->i >= L->n) jerr(L->err, L->jb, L->name, lx_line(L), "unexpected end of input after a backslash");
            char e = L->src[L->i++];
            if (e == 'x' || e == 'u') {
                int len = e == 'x' ? 2 : 4, v = 0;
                for (int k = 0; k < len; k++) {
                    char h = L->i + (size_t)k < L->n ? L->src[L->i + (size_t)k] : 0;
                    int d = (h >= '0' && h <= '9') ? h - '0' : (h >= 'a' && h <= 'f') ? h - 'a' + 10 : (h >= 'A' && h <= 'F') ? h - 'A' + 10 : -1;
                    if (d < 0) jerr(L->err, L->jb, L->name, lx_line(L), "invalid hexadecimal escape sequence");
                    v = v * 16 + d;
                }
                L->i += (size_t)len;
                char u[4];
                int ul = tok_utf8_encode((uint32_t)v, u);
                sb_put(out, u, (size_t)ul);
                continue;
            }
            const char *m = strchr("ntrbfv'\"\\", e);
            if (!e || !m) jerr(L->err, L->jb, L->name, lx_line(L), "unexpected escaped character '\\%c'", e);
            static const char rep[] = "\n\t\r\b\f\v'\"\\";
            sb_put(out, &rep[m - "ntrbfv'\"\\"], 1);
            continue;
        }
        sb_put(out, L->src + L->i, 1);
        L->i++;
    }
}

static int p_space(const lexer *L, size_t i) {
    int32_t cp;
    cp_at(L->src, L->n, i, &cp);
    return js_space(cp);
}
static int p_digit(const lexer *L, size_t i) { return L->src[i] >= '0' && L->src[i] <= '9'; }
static int p_word(const lexer *L, size_t i) {
    char c = L->src[i];
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static void lx_skip_space(lexer *L) {
    while (L->i < L->n && p_space(L, L->i)) {
        int32_t cp;
        L->i += (size_t)cp_at(L->src, L->n, L->i, &cp);
    }
}

static void lx_strip_trailing(lexer *L) {
    if (L->nt > 0 && L->t[L->nt - 1].type == T_TEXT) {
        tok *t = &L->t[L->nt - 1];
        t->n = js_trim_end(t->s, t->n);
        t->s[t->n] = 0;
        if (t->n == 0) L->nt--;
    }
}

static const struct { const char *s; int type; } op_table[] = {
    {"{%", T_OSTMT}, {"%}", T_CSTMT}, {"{{", T_OEXPR}, {"}}", T_CEXPR}, {"(", T_LPAREN}, {")", T_RPAREN},
    {"{", T_LBRACE}, {"}", T_RBRACE}, {"[", T_LBRACK}, {"]", T_RBRACK}, {",", T_COMMA}, {".", T_DOT},
    {":", T_COLON}, {"|", T_PIPE}, {"<=", T_CMP}, {">=", T_CMP}, {"==", T_CMP}, {"!=", T_CMP}, {"<", T_CMP},
    {">", T_CMP}, {"+", T_ADD}, {"-", T_ADD}, {"~", T_ADD}, {"**", T_POW}, {"*", T_MUL}, {"//", T_MUL},
    {"/", T_MUL}, {"%", T_MUL}, {"=", T_EQUALS},
};

static void lex(lexer *L) {
    int depth = 0;
    sb tmp = {NULL, 0, 0, L->ar, L->jb};
    while (L->i < L->n) {
        int last = L->nt ? L->t[L->nt - 1].type : -1;
        if (last == -1 || last == T_CSTMT || last == T_CEXPR || last == T_COMMENT) {
            size_t st = L->i;
            while (L->i < L->n && !(L->src[L->i] == '{' && L->i + 1 < L->n &&
                                   (L->src[L->i + 1] == '%' || L->src[L->i + 1] == '{' || L->src[L->i + 1] == '#')))
                L->i++;
            if (L->i > st) {
                lx_push(L, T_TEXT, L->src + st, L->i - st, L->line[st]);
                continue;
            }
        }
        int line = lx_line(L);
        if (L->src[L->i] == '{' && L->i + 1 < L->n && L->src[L->i + 1] == '#') {
            L->i += 2;
            int strip_before = L->i < L->n && L->src[L->i] == '-';
            if (strip_before) L->i++;
            size_t st = L->i;
            while (!(L->i + 1 < L->n && L->src[L->i] == '#' && L->src[L->i + 1] == '}')) {
                if (L->i + 2 >= L->n) jerr(L->err, L->jb, L->name, line, "missing end of comment tag #}");
                L->i++;
            }
            size_t cl = L->i - st;
            int strip_after = cl > 0 && L->src[L->i - 1] == '-';
            if (strip_after) cl--;
            if (strip_before) lx_strip_trailing(L);
            lx_push(L, T_COMMENT, L->src + st, cl, line);
            L->i += 2;
            if (strip_after) lx_skip_space(L);
            continue;
        }
        if (L->n - L->i >= 3 && !memcmp(L->src + L->i, "{%-", 3)) {
            lx_strip_trailing(L);
            lx_push(L, T_OSTMT, "{%", 2, line);
            L->i += 3;
            continue;
        }
        if (L->n - L->i >= 3 && !memcmp(L->src + L->i, "{{-", 3)) {
            lx_strip_trailing(L);
            lx_push(L, T_OEXPR, "{{", 2, line);
            depth = 0;
            L->i += 3;
            continue;
        }
        lx_skip_space(L);
        if (L->i >= L->n) break;
        line = lx_line(L);
        if (L->n - L->i >= 3 && !memcmp(L->src + L->i, "-%}", 3)) {
            lx_push(L, T_CSTMT, "%}", 2, line);
            L->i += 3;
            lx_skip_space(L);
            continue;
        }
        if (L->n - L->i >= 3 && !memcmp(L->src + L->i, "-}}", 3)) {
            lx_push(L, T_CEXPR, "}}", 2, line);
            L->i += 3;
            lx_skip_space(L);
            continue;
        }
        char c = L->src[L->i];
        if (c == '-' || c == '+') {
            int lt = L->nt ? L->t[L->nt - 1].type : -1;
            if (lt == T_TEXT || lt == -1) jerr(L->err, L->jb, L->name, line, "unexpected character '%c'", c);
            if (!(lt == T_IDENT || lt == T_NUM || lt == T_STR || lt == T_RPAREN || lt == T_RBRACK)) {
                L->i++;
                lx_consume(L, p_digit, 0, &tmp);
                char num[128];
                size_t nl = tmp.n < 100 ? tmp.n : 100;
                num[0] = c;
                if (nl) memcpy(num + 1, tmp.p, nl);
                nl++;
                if (tmp.n > 0 && L->i + 1 < L->n && L->src[L->i] == '.' && p_digit(L, L->i + 1)) {
                    L->i++;
                    lx_consume(L, p_digit, 0, &tmp);
                    num[nl++] = '.';
                    size_t fl = tmp.n < 20 ? tmp.n : 20;
                    memcpy(num + nl, tmp.p, fl);
                    nl += fl;
                }
                lx_push(L, nl > 1 ? T_NUM : T_UNARY, num, nl, line);
                continue;
            }
        }
        int matched = 0;
        for (size_t k = 0; k < sizeof op_table / sizeof op_table[0]; k++) {
            size_t sl = strlen(op_table[k].s);
            if (op_table[k].type == T_CEXPR && depth > 0) continue;
            if (L->n - L->i >= sl && !memcmp(L->src + L->i, op_table[k].s, sl)) {
                lx_push(L, op_table[k].type, op_table[k].s, sl, line);
                if (op_table[k].type == T_OEXPR) depth = 0;
                else if (op_table[k].type == T_LBRACE) depth++;
                else if (op_table[k].type == T_RBRACE) depth--;
                L->i += sl;
                matched = 1;
                break;
            }
        }
        if (matched) continue;
        if (c == '\'' || c == '"') {
            L->i++;
            lx_consume(L, NULL, c, &tmp);
            lx_push(L, T_STR, tmp.p ? tmp.p : "", tmp.n, line);
            L->i++;
            continue;
        }
        if (c >= '0' && c <= '9') {
            lx_consume(L, p_digit, 0, &tmp);
            sb num = {NULL, 0, 0, L->ar, L->jb};
            sb_put(&num, tmp.p, tmp.n);
            int after_dot = L->nt && L->t[L->nt - 1].type == T_DOT;
            if (!after_dot && L->i + 1 < L->n && L->src[L->i] == '.' && p_digit(L, L->i + 1)) {
                L->i++;
                lx_consume(L, p_digit, 0, &tmp);
                sb_put(&num, ".", 1);
                sb_put(&num, tmp.p, tmp.n);
            }
            lx_push(L, T_NUM, num.p, num.n, line);
            continue;
        }
        if (p_word(L, L->i)) {
            lx_consume(L, p_word, 0, &tmp);
            lx_push(L, T_IDENT, tmp.p, tmp.n, line);
            continue;
        }
        int32_t cp;
        cp_at(L->src, L->n, L->i, &cp);
        jerr(L->err, L->jb, L->name, line, "unexpected character U+%04X '%.*s'", (unsigned)cp,
             (int)(cp < 0 ? 1 : tok_utf8_encode((uint32_t)cp, (char[4]){0})), L->src + L->i);
    }
    lx_push(L, T_EOF, "", 0, L->n ? L->line[L->n - 1] : 1);
}

/* @huggingface/jinja's preprocess: drop one trailing "\n"; lstrip_blocks: spaces/tabs at a line start
 * before "{%", "{#" (or "{-"); trim_blocks: the newline after "%}", "#}" (or "-}"). Keeps the original
 * line of every kept byte. */
static char *preprocess(const char *src, int **lines_out, size_t *n_out, jmp_buf *jb) {
    size_t n = strlen(src);
    if (n && src[n - 1] == '\n') n--;
    int *line = malloc((n + 1) * sizeof *line);
    char *a = malloc(n + 1);
    if (!line || !a) { free(line); free(a); longjmp(*jb, 2); }
    int ln = 1;
    int *l2 = malloc((n + 1) * sizeof *l2);
    char *b = malloc(n + 1);
    if (!l2 || !b) { free(line); free(a); free(l2); free(b); longjmp(*jb, 2); }
    /* pass 1: lstrip_blocks */
    size_t w = 0;
    for (size_t i = 0; i < n;) {
        int at_line_start = i == 0 || src[i - 1] == '\n' || src[i - 1] == '\r' ||
                            (i >= 3 && (unsigned char)src[i - 3] == 0xE2 && (unsigned char)src[i - 2] == 0x80 &&
                             ((unsigned char)src[i - 1] == 0xA8 || (unsigned char)src[i - 1] == 0xA9));
        if (at_line_start) {
            size_t j = i;
            while (j < n && (src[j] == ' ' || src[j] == '\t')) j++;
            if (j > i && j + 1 < n && src[j] == '{' && (src[j + 1] == '#' || src[j + 1] == '%' || src[j + 1] == '-')) i = j;
        }
        a[w] = src[i];
        line[w] = ln;
        if (src[i] == '\n') ln++;
        w++;
        i++;
    }
    /* pass 2: trim_blocks */
    size_t w2 = 0;
    for (size_t i = 0; i < w; i++) {
        b[w2] = a[i];
        l2[w2] = line[i];
        w2++;
        if (i + 2 < w && (a[i] == '#' || a[i] == '%' || a[i] == '-') && a[i + 1] == '}' && a[i + 2] == '\n') {
            b[w2] = '}';
            l2[w2] = line[i + 1];
            w2++;
            i += 2; /* skip '}' (copied) and '\n' */
        }
    }
    b[w2] = 0;
    free(a);
    free(line);
    *lines_out = l2;
    *n_out = w2;
    return b;
}

/* ================================================================ AST */

enum {
    N_TEXT, N_INT, N_FLOAT, N_STR, N_IDENT, N_ARRAY, N_TUPLE, N_OBJECT, N_BIN, N_UNARY, N_FILTER, N_TEST, N_CALL,
    N_MEMBER, N_SLICE, N_KWARG, N_TERNARY, N_SELECT, N_IF, N_FOR, N_SET, N_MACRO, N_BREAK, N_CONTINUE,
    N_COMMENT, N_EMPTY
};

typedef struct node {
    int type, line;
    const char *s; /* text, identifier, operator */
    size_t n;
    double num;
    int flag;                 /* member: computed; test: negate */
    struct node *a, *b, *c;   /* operands / test / iterable / slice parts */
    struct node **l1, **l2;   /* body / args / elements; alternate / default block / object values */
    int n1, n2;
} node;

struct mp_jinja {
    arena ar;
    node *root; /* N_EMPTY with l1 = statements */
    char *name;
    int64_t max_steps; /* render limits (mp_jinja_set_limits) */
    size_t max_bytes;
};

typedef struct parser {
    tok *t;
    int i, nt;
    arena *ar;
    jmp_buf *jb;
    mp_error *err;
    const char *name;
    int depth; /* nesting of the recursive-descent functions now active */
} parser;

/* Nesting limits. The parser and the interpreter recurse on the C stack, so a template nested without
 * end ("((((...", "{% if %}" x 100000, a macro calling itself, a value holding itself) must stop with an
 * error before the stack does. Chat templates nest a few levels; these are far above that and far below
 * what the stack holds (also under ASan). */
#define MP_JINJA_MAX_NEST 256   /* parser: expressions/blocks inside one another */
#define MP_JINJA_MAX_EVAL 1000  /* interpreter: evaluations inside one another (macro recursion included) */
#define MP_JINJA_MAX_VALUE 512  /* lists/objects inside one another when printed */

static void nest_in(parser *P) {
    if (++P->depth > MP_JINJA_MAX_NEST)
        jerr(P->err, P->jb, P->name, P->t[P->i].line, "template nested more than %d levels deep", MP_JINJA_MAX_NEST);
}

static node *nd(parser *P, int type, int line) {
    node *x = ar_alloc(P->ar, sizeof *x, P->jb);
    x->type = type;
    x->line = line;
    return x;
}

typedef struct nlist { node **p; int n, cap; } nlist;

static void nl_push(parser *P, nlist *l, node *x) {
    if (l->n == l->cap) {
        int nc = l->cap ? l->cap * 2 : 8;
        node **np = ar_alloc(P->ar, (size_t)nc * sizeof *np, P->jb);
        if (l->n) memcpy(np, l->p, (size_t)l->n * sizeof *np);
        l->p = np;
        l->cap = nc;
    }
    l->p[l->n++] = x;
}

static tok *cur(parser *P) { return &P->t[P->i]; }
static int is_t(parser *P, int type) { return P->t[P->i].type == type; }
static int is_id(parser *P, const char *name) {
    tok *t = cur(P);
    return t->type == T_IDENT && t->n == strlen(name) && !memcmp(t->s, name, t->n);
}
static int is_id_at(parser *P, int k, const char *name) {
    if (P->i + k >= P->nt) return 0;
    tok *t = &P->t[P->i + k];
    return t->type == T_IDENT && t->n == strlen(name) && !memcmp(t->s, name, t->n);
}
static int is_stmt(parser *P, const char *a, const char *b, const char *c) {
    if (!is_t(P, T_OSTMT)) return 0;
    return is_id_at(P, 1, a) || (b && is_id_at(P, 1, b)) || (c && is_id_at(P, 1, c));
}

static const char *tok_name(int type) {
    static const char *names[] = {"text", "number", "string", "identifier", "'='", "'('", "')'", "'{%'", "'%}'",
                                  "'{{'", "'}}'", "'['", "']'", "'{'", "'}'", "','", "'.'", "':'", "'|'",
                                  "operator", "operator", "'**'", "comparison", "unary operator", "comment",
                                  "end of template"};
    return type >= 0 && type <= T_EOF ? names[type] : "?";
}

static tok *expect(parser *P, int type, const char *what) {
    tok *t = cur(P);
    if (t->type != type)
        jerr(P->err, P->jb, P->name, t->line, "expected %s, got %s%s%.*s%s", what, tok_name(t->type),
             t->n ? " \"" : "", (int)(t->n > 40 ? 40 : t->n), t->s, t->n ? "\"" : "");
    P->i++;
    return t;
}

static void expect_id(parser *P, const char *name) {
    if (!is_id(P, name)) jerr(P->err, P->jb, P->name, cur(P)->line, "expected '%s'", name);
    P->i++;
}

static node *parse_any(parser *P);
static node *parse_expr(parser *P);
static node *parse_primary(parser *P);

static node **nl_take(nlist *l, int *n) { *n = l->n; return l->p; }

/* statements until {% name ... %} (one of a, b, c) */
static void parse_body(parser *P, nlist *body, const char *a, const char *b, const char *c) {
    while (!is_stmt(P, a, b, c)) {
        if (is_t(P, T_EOF)) jerr(P->err, P->jb, P->name, cur(P)->line, "missing {%% %s %%}", a);
        nl_push(P, body, parse_any(P));
    }
}

/* "{% name %}" closing a block */
static void expect_end(parser *P, const char *name) {
    expect(P, T_OSTMT, "'{%'");
    expect_id(P, name);
    expect(P, T_CSTMT, "'%}'");
}

static node *parse_seq(parser *P, int primary) {
    int line = cur(P)->line;
    node *first = primary ? parse_primary(P) : parse_expr(P);
    if (!is_t(P, T_COMMA)) return first;
    nlist l = {0};
    nl_push(P, &l, first);
    while (is_t(P, T_COMMA)) {
        P->i++;
        nl_push(P, &l, primary ? parse_primary(P) : parse_expr(P));
        if (!is_t(P, T_COMMA)) break;
    }
    node *t = nd(P, N_TUPLE, line);
    t->l1 = nl_take(&l, &t->n1);
    return t;
}

static void parse_args(parser *P, nlist *args) {
    expect(P, T_LPAREN, "'('");
    while (!is_t(P, T_RPAREN)) {
        if (is_t(P, T_EOF)) jerr(P->err, P->jb, P->name, cur(P)->line, "missing ')'");
        if (is_t(P, T_POW) || (is_t(P, T_MUL) && cur(P)->s[0] == '*'))
            jerr(P->err, P->jb, P->name, cur(P)->line, "argument unpacking (* / **) is not supported");
        node *a = parse_expr(P);
        if (is_t(P, T_EQUALS)) {
            P->i++;
            if (a->type != N_IDENT) jerr(P->err, P->jb, P->name, a->line, "expected an identifier for a keyword argument");
            node *k = nd(P, N_KWARG, a->line);
            k->s = a->s;
            k->n = a->n;
            k->a = parse_expr(P);
            a = k;
        }
        nl_push(P, args, a);
        if (is_t(P, T_COMMA)) P->i++;
    }
    P->i++;
}

static node *parse_call(parser *P, node *callee);

static node *parse_member(parser *P, node *obj) {
    while (is_t(P, T_DOT) || is_t(P, T_LBRACK)) {
        int computed = is_t(P, T_LBRACK), line = cur(P)->line;
        P->i++;
        node *m = nd(P, N_MEMBER, line);
        m->a = obj;
        m->flag = computed;
        if (computed) {
            node *parts[3] = {0};
            int np = 0, slice = 0;
            while (!is_t(P, T_RBRACK)) {
                if (is_t(P, T_EOF)) jerr(P->err, P->jb, P->name, line, "missing ']'");
                if (np >= 3) jerr(P->err, P->jb, P->name, line, "expected 0-3 arguments for a slice");
                if (is_t(P, T_COLON)) {
                    parts[np++] = NULL;
                    P->i++;
                    slice = 1;
                } else {
                    parts[np++] = parse_expr(P);
                    if (is_t(P, T_COLON)) { P->i++; slice = 1; }
                }
            }
            if (np == 0) jerr(P->err, P->jb, P->name, line, "expected an index or a slice in []");
            if (slice) {
                node *s = nd(P, N_SLICE, line);
                s->a = parts[0];
                s->b = np > 1 ? parts[1] : NULL;
                s->c = np > 2 ? parts[2] : NULL;
                m->b = s;
            } else {
                m->b = parts[0];
            }
            expect(P, T_RBRACK, "']'");
        } else {
            node *p = parse_primary(P);
            if (p->type != N_IDENT && p->type != N_INT)
                jerr(P->err, P->jb, P->name, line, "expected an identifier or integer after '.'");
            m->b = p;
        }
        obj = m;
    }
    return obj;
}

static node *parse_call(parser *P, node *callee) {
    node *c = nd(P, N_CALL, callee->line);
    c->a = callee;
    nlist args = {0};
    parse_args(P, &args);
    c->l1 = nl_take(&args, &c->n1);
    node *e = parse_member(P, c);
    if (is_t(P, T_LPAREN)) {
        nest_in(P);
        e = parse_call(P, e);
        P->depth--;
    }
    return e;
}

static node *parse_call_member(parser *P) {
    node *m = parse_member(P, parse_primary(P));
    if (is_t(P, T_LPAREN)) return parse_call(P, m);
    return m;
}

static node *parse_unary_sign(parser *P) {
    tok *t = cur(P);
    if ((t->type == T_UNARY || t->type == T_ADD) && t->n == 1 && (t->s[0] == '-' || t->s[0] == '+')) {
        P->i++;
        node *u = nd(P, N_UNARY, t->line);
        u->s = t->s;
        u->n = 1;
        nest_in(P);
        u->a = parse_unary_sign(P);
        P->depth--;
        return u;
    }
    return parse_call_member(P);
}

static node *parse_filter(parser *P) {
    node *x = parse_unary_sign(P);
    while (is_t(P, T_PIPE)) {
        int line = cur(P)->line;
        P->i++;
        node *f = parse_primary(P);
        if (f->type != N_IDENT) jerr(P->err, P->jb, P->name, line, "expected a filter name after '|'");
        if (is_t(P, T_LPAREN)) f = parse_call(P, f);
        node *fe = nd(P, N_FILTER, line);
        fe->a = x;
        fe->b = f;
        x = fe;
    }
    return x;
}

static node *parse_test(parser *P) {
    node *x = parse_filter(P);
    while (is_id(P, "is")) {
        int line = cur(P)->line;
        P->i++;
        int neg = is_id(P, "not");
        if (neg) P->i++;
        node *t = parse_primary(P);
        if (t->type != N_IDENT) jerr(P->err, P->jb, P->name, line, "expected a test name after 'is'");
        node *te = nd(P, N_TEST, line);
        te->a = x;
        te->s = t->s;
        te->n = t->n;
        te->flag = neg;
        x = te;
    }
    return x;
}

static node *binop(parser *P, int line, const char *op, size_t n, node *l, node *r) {
    node *b = nd(P, N_BIN, line);
    b->s = op;
    b->n = n;
    b->a = l;
    b->b = r;
    return b;
}

typedef node *(*parse_fn)(parser *P);

/* One left-associative level: operands from next, operators of token type ttype (or the word). */
static node *left_assoc(parser *P, parse_fn next, int ttype, const char *word) {
    node *l = next(P);
    while (word ? is_id(P, word) : is_t(P, ttype)) {
        tok *op = cur(P);
        P->i++;
        l = binop(P, op->line, op->s, op->n, l, next(P));
    }
    return l;
}

static node *parse_pow(parser *P) { return left_assoc(P, parse_test, T_POW, NULL); }
static node *parse_mul(parser *P) { return left_assoc(P, parse_pow, T_MUL, NULL); }
static node *parse_add(parser *P) { return left_assoc(P, parse_mul, T_ADD, NULL); }

static node *parse_cmp(parser *P) {
    node *l = parse_add(P);
    for (;;) {
        int line = cur(P)->line;
        const char *op;
        size_t n;
        if (is_id(P, "not") && is_id_at(P, 1, "in")) {
            op = "not in";
            n = 6;
            P->i += 2;
        } else if (is_id(P, "in") || is_t(P, T_CMP)) {
            op = cur(P)->s;
            n = cur(P)->n;
            P->i++;
        } else {
            break;
        }
        l = binop(P, line, op, n, l, parse_add(P));
    }
    return l;
}

static node *parse_not(parser *P) {
    if (is_id(P, "not")) {
        tok *op = cur(P);
        P->i++;
        node *u = nd(P, N_UNARY, op->line);
        u->s = "not";
        u->n = 3;
        nest_in(P);
        u->a = parse_not(P);
        P->depth--;
        return u;
    }
    return parse_cmp(P);
}

static node *parse_and(parser *P) { return left_assoc(P, parse_not, 0, "and"); }
static node *parse_or(parser *P) { return left_assoc(P, parse_and, 0, "or"); }

static node *parse_expr_in(parser *P);

static node *parse_expr(parser *P) {
    nest_in(P);
    node *x = parse_expr_in(P);
    P->depth--;
    return x;
}

static node *parse_expr_in(parser *P) {
    node *a = parse_or(P);
    if (is_id(P, "if")) {
        int line = cur(P)->line;
        P->i++;
        node *test = parse_or(P);
        if (is_id(P, "else")) {
            P->i++;
            node *t = nd(P, N_TERNARY, line);
            t->a = test;
            t->b = a;
            t->c = parse_expr(P);
            return t;
        }
        node *s = nd(P, N_SELECT, line);
        s->a = a;
        s->b = test;
        return s;
    }
    return a;
}

static node *parse_primary(parser *P) {
    tok *t = cur(P);
    P->i++;
    switch (t->type) {
    case T_NUM: {
        node *x = nd(P, memchr(t->s, '.', t->n) ? N_FLOAT : N_INT, t->line);
        x->num = strtod(t->s, NULL);
        return x;
    }
    case T_STR: {
        sb v = {NULL, 0, 0, P->ar, P->jb};
        sb_put(&v, t->s, t->n);
        while (is_t(P, T_STR)) { sb_put(&v, cur(P)->s, cur(P)->n); P->i++; }
        node *x = nd(P, N_STR, t->line);
        char *c = ar_alloc(P->ar, v.n + 1, P->jb);
        if (v.n) memcpy(c, v.p, v.n);
        x->s = c;
        x->n = v.n;
        return x;
    }
    case T_IDENT: {
        node *x = nd(P, N_IDENT, t->line);
        x->s = t->s;
        x->n = t->n;
        return x;
    }
    case T_LPAREN: {
        node *x = parse_seq(P, 0);
        expect(P, T_RPAREN, "')'");
        return x;
    }
    case T_LBRACK: {
        nlist l = {0};
        while (!is_t(P, T_RBRACK)) {
            if (is_t(P, T_EOF)) jerr(P->err, P->jb, P->name, t->line, "missing ']'");
            nl_push(P, &l, parse_expr(P));
            if (is_t(P, T_COMMA)) P->i++;
        }
        P->i++;
        node *x = nd(P, N_ARRAY, t->line);
        x->l1 = nl_take(&l, &x->n1);
        return x;
    }
    case T_LBRACE: {
        nlist k = {0}, v = {0};
        while (!is_t(P, T_RBRACE)) {
            if (is_t(P, T_EOF)) jerr(P->err, P->jb, P->name, t->line, "missing '}'");
            nl_push(P, &k, parse_expr(P));
            expect(P, T_COLON, "':' in an object literal");
            nl_push(P, &v, parse_expr(P));
            if (is_t(P, T_COMMA)) P->i++;
        }
        P->i++;
        node *x = nd(P, N_OBJECT, t->line);
        x->l1 = nl_take(&k, &x->n1);
        x->l2 = nl_take(&v, &x->n2);
        return x;
    }
    default:
        jerr(P->err, P->jb, P->name, t->line, "unexpected %s%s%.*s%s", tok_name(t->type), t->n ? " \"" : "",
             (int)(t->n > 40 ? 40 : t->n), t->s, t->n ? "\"" : "");
    }
    return NULL;
}

static node *parse_if(parser *P, int line) {
    node *x = nd(P, N_IF, line);
    x->a = parse_expr(P);
    expect(P, T_CSTMT, "'%}'");
    nlist body = {0}, alt = {0};
    parse_body(P, &body, "endif", "elif", "else");
    if (is_stmt(P, "elif", NULL, NULL)) {
        int l2 = cur(P)->line;
        P->i += 2;
        nest_in(P);
        nl_push(P, &alt, parse_if(P, l2));
        P->depth--;
    } else if (is_stmt(P, "else", NULL, NULL)) {
        P->i += 2;
        expect(P, T_CSTMT, "'%}'");
        parse_body(P, &alt, "endif", NULL, NULL);
    }
    x->l1 = nl_take(&body, &x->n1);
    x->l2 = nl_take(&alt, &x->n2);
    return x;
}

static node *parse_statement(parser *P) {
    tok *open = expect(P, T_OSTMT, "'{%'");
    tok *t = cur(P);
    if (t->type != T_IDENT) jerr(P->err, P->jb, P->name, t->line, "expected a statement name after {%%");
    int line = t->line;
    P->i++;
    (void)open;
    if (t->n == 3 && !memcmp(t->s, "set", 3)) {
        node *x = nd(P, N_SET, line);
        x->a = parse_seq(P, 0);
        if (is_t(P, T_EQUALS)) {
            P->i++;
            x->b = parse_seq(P, 0);
        } else {
            expect(P, T_CSTMT, "'%}'");
            nlist body = {0};
            parse_body(P, &body, "endset", NULL, NULL);
            x->l1 = nl_take(&body, &x->n1);
            expect_end(P, "endset");
            return x;
        }
        expect(P, T_CSTMT, "'%}'");
        return x;
    }
    if (t->n == 2 && !memcmp(t->s, "if", 2)) {
        node *x = parse_if(P, line);
        expect_end(P, "endif");
        return x;
    }
    if (t->n == 3 && !memcmp(t->s, "for", 3)) {
        node *x = nd(P, N_FOR, line);
        x->a = parse_seq(P, 1);
        if (x->a->type != N_IDENT && x->a->type != N_TUPLE)
            jerr(P->err, P->jb, P->name, line, "expected a loop variable after 'for'");
        expect_id(P, "in");
        x->b = parse_expr(P);
        expect(P, T_CSTMT, "'%}'");
        nlist body = {0}, alt = {0};
        parse_body(P, &body, "endfor", "else", NULL);
        if (is_stmt(P, "else", NULL, NULL)) {
            P->i += 2;
            expect(P, T_CSTMT, "'%}'");
            parse_body(P, &alt, "endfor", NULL, NULL);
        }
        x->l1 = nl_take(&body, &x->n1);
        x->l2 = nl_take(&alt, &x->n2);
        expect_end(P, "endfor");
        return x;
    }
    if (t->n == 5 && !memcmp(t->s, "macro", 5)) {
        node *x = nd(P, N_MACRO, line);
        x->a = parse_primary(P);
        if (x->a->type != N_IDENT) jerr(P->err, P->jb, P->name, line, "expected a macro name");
        nlist args = {0}, body = {0};
        parse_args(P, &args);
        for (int i = 0; i < args.n; i++)
            if (args.p[i]->type != N_IDENT && args.p[i]->type != N_KWARG)
                jerr(P->err, P->jb, P->name, line, "expected a parameter name in the macro declaration");
        expect(P, T_CSTMT, "'%}'");
        parse_body(P, &body, "endmacro", NULL, NULL);
        x->l1 = nl_take(&body, &x->n1);
        x->l2 = nl_take(&args, &x->n2);
        expect_end(P, "endmacro");
        return x;
    }
    if ((t->n == 5 && !memcmp(t->s, "break", 5)) || (t->n == 8 && !memcmp(t->s, "continue", 8))) {
        expect(P, T_CSTMT, "'%}'");
        return nd(P, t->n == 5 ? N_BREAK : N_CONTINUE, line);
    }
    jerr(P->err, P->jb, P->name, line, "unknown or unsupported statement '{%% %.*s'", (int)(t->n > 40 ? 40 : t->n), t->s);
    return NULL;
}

static node *parse_any_in(parser *P);

static node *parse_any(parser *P) {
    nest_in(P);
    node *x = parse_any_in(P);
    P->depth--;
    return x;
}

static node *parse_any_in(parser *P) {
    tok *t = cur(P);
    switch (t->type) {
    case T_COMMENT:
        P->i++;
        return nd(P, N_COMMENT, t->line);
    case T_TEXT: {
        P->i++;
        node *x = nd(P, N_TEXT, t->line);
        x->s = t->s;
        x->n = t->n;
        return x;
    }
    case T_OSTMT:
        return parse_statement(P);
    case T_OEXPR: {
        P->i++;
        node *x = parse_expr(P);
        expect(P, T_CEXPR, "'}}'");
        return x;
    }
    default:
        jerr(P->err, P->jb, P->name, t->line, "unexpected %s", tok_name(t->type));
    }
    return NULL;
}

int mp_jinja_parse(mp_jinja **out, const char *source, const char *name, mp_error *err) {
    *out = NULL;
    mp_jinja *t = calloc(1, sizeof *t);
    if (!t) return mp_errf(err, "%s: out of memory", name);
    t->name = strdup(name ? name : "template");
    /* The lexer state lives on the heap: locals changed between setjmp and a longjmp out of the parser
     * would be indeterminate afterwards (their buffers leaked on every syntax error). */
    lexer *L = calloc(1, sizeof *L);
    if (!t->name || !L) {
        free(L);
        mp_jinja_free(t);
        return mp_errf(err, "%s: out of memory", name ? name : "template");
    }
    jmp_buf jb;
    int rc = setjmp(jb);
    if (rc == 0) {
        size_t n;
        int *lines;
        char *src = preprocess(source, &lines, &n, &jb);
        *L = (lexer){src, n, 0, lines, NULL, 0, 0, &t->ar, &jb, err, t->name};
        lex(L);
        parser P = {L->t, 0, L->nt, &t->ar, &jb, err, t->name, 0};
        nlist body = {0};
        while (!is_t(&P, T_EOF)) nl_push(&P, &body, parse_any(&P));
        t->root = nd(&P, N_EMPTY, 1);
        t->root->l1 = nl_take(&body, &t->root->n1);
    }
    free(L->t);
    free((char *)L->src);
    free((int *)L->line);
    free(L);
    if (rc) {
        if (rc == 2) mp_errf(err, "%s: out of memory", t->name);
        mp_jinja_free(t);
        return -1;
    }
    *out = t;
    return 0;
}

void mp_jinja_set_limits(mp_jinja *t, int64_t max_steps, size_t max_bytes) {
    t->max_steps = max_steps;
    t->max_bytes = max_bytes;
}

void mp_jinja_free(mp_jinja *t) {
    if (!t) return;
    ar_free(&t->ar);
    free(t->name);
    free(t);
}

/* ================================================================ values */

enum { V_UNDEF, V_NULL, V_BOOL, V_INT, V_FLOAT, V_STR, V_ARRAY, V_OBJECT, V_KWARGS, V_NS, V_FUNC };

typedef struct jval jval;
typedef struct jlist { jval *v; int n, cap; } jlist;
typedef struct jmap { const char **k; size_t *kn; jval *v; int n, cap; } jmap;
typedef struct rctx rctx;
typedef struct jfunc {
    jval (*fn)(rctx *R, struct jfunc *f, jval *args, int nargs, int line);
    const char *name;
    jval *self;        /* bound object for methods */
    const node *macro; /* macros */
    struct env *closure;
} jfunc;

struct jval {
    int t;
    int is_tuple;
    union {
        double num;
        int b;
        struct { const char *p; size_t n; } s;
        jlist *l;
        jmap *m;
        jfunc *f;
    } u;
};

typedef struct env { struct env *parent; jmap vars; } env;

struct rctx {
    arena ar;
    jmp_buf jb;
    mp_error *err;
    const char *name;
    int64_t now;
    int brk, cont; /* loop control */
    int64_t steps, max_steps;
    int depth; /* eval/exec_block calls now active */
};

#define RERR(R, line, ...) jerr((R)->err, &(R)->jb, (R)->name, line, __VA_ARGS__)

/* One unit of work: every evaluation, statement, loop iteration, list element and sort comparison
 * counts, so no template runs longer than max_steps (an endless loop ends with this error). */
#define STEP(R, line)                                                                                        \
    do {                                                                                                     \
        if (++(R)->steps > (R)->max_steps)                                                                   \
            RERR(R, line, "the template did not finish within %lld steps (endless loop?)",                   \
                 (long long)(R)->max_steps);                                                                 \
    } while (0)

/* double -> integer for indices, counts and widths: NaN is 0, the rest clamped (no undefined cast) */
static long clamp_long(double x, long lo, long hi) {
    if (x != x) return 0;
    if (x <= (double)lo) return lo;
    if (x >= (double)hi) return hi;
    return (long)x;
}
#define CLAMP_INT(x) ((int)clamp_long((x), -0x7fffffffL, 0x7fffffffL))
#define CLAMP_IDX(x) clamp_long((x), -((long)1 << 52), (long)1 << 52)

static jval v_undef(void) { jval v = {0}; v.t = V_UNDEF; return v; }
static jval v_null(void) { jval v = {0}; v.t = V_NULL; return v; }
static jval v_bool(int b) { jval v = {0}; v.t = V_BOOL; v.u.b = !!b; return v; }
static jval v_int(double x) { jval v = {0}; v.t = V_INT; v.u.num = x; return v; }
static jval v_float(double x) { jval v = {0}; v.t = V_FLOAT; v.u.num = x; return v; }

static jval v_strn(rctx *R, const char *s, size_t n) {
    jval v = {0};
    v.t = V_STR;
    char *c = ar_alloc(&R->ar, n + 1, &R->jb);
    if (n) memcpy(c, s, n);
    v.u.s.p = c;
    v.u.s.n = n;
    return v;
}
static jval v_str(rctx *R, const char *s) { return v_strn(R, s, strlen(s)); }

static jval v_list(rctx *R, int type) {
    jval v = {0};
    v.t = type;
    if (type == V_ARRAY) v.u.l = ar_alloc(&R->ar, sizeof(jlist), &R->jb);
    else v.u.m = ar_alloc(&R->ar, sizeof(jmap), &R->jb);
    return v;
}

static void l_push(rctx *R, jlist *l, jval x) {
    STEP(R, 0);
    if (l->n == l->cap) {
        if (l->cap >= 0x3fffffff) RERR(R, 0, "list too long");
        int nc = l->cap ? l->cap * 2 : 8;
        jval *nv = ar_alloc(&R->ar, (size_t)nc * sizeof *nv, &R->jb);
        if (l->n) memcpy(nv, l->v, (size_t)l->n * sizeof *nv);
        l->v = nv;
        l->cap = nc;
    }
    l->v[l->n++] = x;
}

static int m_find(const jmap *m, const char *k, size_t kn) {
    for (int i = 0; i < m->n; i++)
        if (m->kn[i] == kn && !memcmp(m->k[i], k, kn)) return i;
    return -1;
}

static void m_set(rctx *R, jmap *m, const char *k, size_t kn, jval x) {
    int i = m_find(m, k, kn);
    if (i >= 0) { m->v[i] = x; return; }
    if (m->n == m->cap) {
        int nc = m->cap ? m->cap * 2 : 8;
        const char **nk = ar_alloc(&R->ar, (size_t)nc * sizeof *nk, &R->jb);
        size_t *nkn = ar_alloc(&R->ar, (size_t)nc * sizeof *nkn, &R->jb);
        jval *nv = ar_alloc(&R->ar, (size_t)nc * sizeof *nv, &R->jb);
        if (m->n) {
            memcpy(nk, m->k, (size_t)m->n * sizeof *nk);
            memcpy(nkn, m->kn, (size_t)m->n * sizeof *nkn);
            memcpy(nv, m->v, (size_t)m->n * sizeof *nv);
        }
        m->k = nk;
        m->kn = nkn;
        m->v = nv;
        m->cap = nc;
    }
    char *kc = ar_alloc(&R->ar, kn + 1, &R->jb);
    memcpy(kc, k, kn);
    m->k[m->n] = kc;
    m->kn[m->n] = kn;
    m->v[m->n] = x;
    m->n++;
}

static jval *m_get(const jmap *m, const char *k, size_t kn) {
    int i = m_find(m, k, kn);
    return i >= 0 ? &m->v[i] : NULL;
}

static jval v_func(rctx *R, const char *name, jval (*fn)(rctx *, jfunc *, jval *, int, int), jval *self) {
    jval v = {0};
    v.t = V_FUNC;
    v.u.f = ar_alloc(&R->ar, sizeof(jfunc), &R->jb);
    v.u.f->fn = fn;
    v.u.f->name = name;
    v.u.f->self = self;
    return v;
}

static const char *type_name(const jval *v) {
    static const char *n[] = {"UndefinedValue", "NullValue", "BooleanValue", "IntegerValue", "FloatValue",
                              "StringValue", "ArrayValue", "ObjectValue", "KeywordArgumentsValue", "NamespaceValue",
                              "FunctionValue"};
    if (v->t == V_ARRAY && v->is_tuple) return "TupleValue";
    return n[v->t];
}

static int truthy(const jval *v) {
    switch (v->t) {
    case V_UNDEF: case V_NULL: return 0;
    case V_BOOL: return v->u.b;
    case V_INT: case V_FLOAT: return v->u.num != 0 && v->u.num == v->u.num;
    case V_STR: return v->u.s.n > 0;
    case V_ARRAY: return v->u.l->n > 0;
    case V_OBJECT: case V_KWARGS: return v->u.m->n > 0;
    default: return 1;
    }
}

/* JavaScript Number.prototype.toString() */
static void js_num(double x, char *buf, size_t cap) {
    if (x != x) { snprintf(buf, cap, "NaN"); return; }
    if (isinf(x)) { snprintf(buf, cap, x > 0 ? "Infinity" : "-Infinity"); return; }
    if (x == 0) { snprintf(buf, cap, "0"); return; }
    char tmp[64];
    int prec;
    for (prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec - 1, x);
        if (strtod(tmp, NULL) == x) break;
    }
    /* digits and exponent */
    char digits[32];
    int nd = 0, neg = tmp[0] == '-';
    const char *p = tmp + neg;
    for (; *p && *p != 'e'; p++) if (*p >= '0' && *p <= '9') digits[nd++] = *p;
    int e = atoi(p + 1);
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    digits[nd] = 0;
    char *w = buf;
    size_t left = cap;
#define PUT(...) do { int k_ = snprintf(w, left, __VA_ARGS__); if (k_ < 0 || (size_t)k_ >= left) return; w += k_; left -= (size_t)k_; } while (0)
    if (neg) PUT("-");
    if (e >= 21 || e <= -7) {
        PUT("%c", digits[0]);
        if (nd > 1) PUT(".%s", digits + 1);
        PUT("e%c%d", e < 0 ? '-' : '+', e < 0 ? -e : e);
    } else if (e >= 0) {
        if (nd <= e + 1) {
            PUT("%s", digits);
            for (int i = nd; i <= e; i++) PUT("0");
        } else {
            PUT("%.*s.%s", e + 1, digits, digits + e + 1);
        }
    } else {
        PUT("0.");
        for (int i = 0; i < -e - 1; i++) PUT("0");
        PUT("%s", digits);
    }
#undef PUT
}

static void to_json(rctx *R, const jval *v, sb *o, int indent, const char *isep, const char *ksep, int depth, int undef_null);

static void json_str(rctx *R, const char *s, size_t n, sb *o) {
    sb_put(o, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char e[8];
        if (c == '"') sb_put(o, "\\\"", 2);
        else if (c == '\\') sb_put(o, "\\\\", 2);
        else if (c == '\n') sb_put(o, "\\n", 2);
        else if (c == '\r') sb_put(o, "\\r", 2);
        else if (c == '\t') sb_put(o, "\\t", 2);
        else if (c == '\b') sb_put(o, "\\b", 2);
        else if (c == '\f') sb_put(o, "\\f", 2);
        else if (c < 0x20) { snprintf(e, sizeof e, "\\u%04x", c); sb_put(o, e, 6); }
        else sb_put(o, (const char *)&s[i], 1);
    }
    sb_put(o, "\"", 1);
}

static void to_string(rctx *R, const jval *v, sb *o);

static void to_json(rctx *R, const jval *v, sb *o, int indent, const char *isep, const char *ksep, int depth, int undef_null) {
    char nb[64];
    if (depth > MP_JINJA_MAX_VALUE)
        RERR(R, 0, "cannot print a value nested more than %d levels deep (does it contain itself?)", MP_JINJA_MAX_VALUE);
    switch (v->t) {
    case V_NULL: sb_puts(o, "null"); return;
    case V_UNDEF: sb_puts(o, undef_null ? "null" : "undefined"); return;
    case V_BOOL: sb_puts(o, v->u.b ? "true" : "false"); return;
    case V_INT: case V_FLOAT: js_num(v->u.num, nb, sizeof nb); sb_puts(o, nb); return;
    case V_STR: json_str(R, v->u.s.p, v->u.s.n, o); return;
    case V_ARRAY: case V_OBJECT: case V_KWARGS: case V_NS: {
        int arr = v->t == V_ARRAY;
        if (v->is_tuple) RERR(R, 0, "cannot convert TupleValue to JSON");
        int cnt = arr ? v->u.l->n : v->u.m->n;
        sb_puts(o, arr ? "[" : "{");
        for (int i = 0; i < cnt; i++) {
            if (i) sb_puts(o, isep);
            if (indent) {
                sb_puts(o, "\n");
                for (int k = 0; k < indent * (depth + 1); k++) sb_put(o, " ", 1);
            }
            if (arr) {
                to_json(R, &v->u.l->v[i], o, indent, isep, ksep, depth + 1, undef_null);
            } else {
                json_str(R, v->u.m->k[i], v->u.m->kn[i], o);
                sb_puts(o, ksep);
                to_json(R, &v->u.m->v[i], o, indent, isep, ksep, depth + 1, undef_null);
            }
        }
        if (indent && cnt > 0) {
            sb_puts(o, "\n");
            for (int k = 0; k < indent * depth; k++) sb_put(o, " ", 1);
        }
        sb_puts(o, arr ? "]" : "}");
        return;
    }
    default:
        RERR(R, 0, "cannot convert %s to JSON", type_name(v));
    }
}

static void to_string(rctx *R, const jval *v, sb *o) {
    char nb[64];
    switch (v->t) {
    case V_UNDEF: sb_puts(o, "undefined"); return;
    case V_NULL: sb_puts(o, "null"); return;
    case V_BOOL: sb_puts(o, v->u.b ? "true" : "false"); return;
    case V_INT: js_num(v->u.num, nb, sizeof nb); sb_puts(o, nb); return;
    case V_FLOAT:
        if (v->u.num == 0 && signbit(v->u.num)) { sb_puts(o, "-0.0"); return; }
        if (v->u.num == floor(v->u.num) && fabs(v->u.num) < 1e21) snprintf(nb, sizeof nb, "%.1f", v->u.num);
        else js_num(v->u.num, nb, sizeof nb);
        sb_puts(o, nb);
        return;
    case V_STR: sb_put(o, v->u.s.p, v->u.s.n); return;
    case V_FUNC: sb_puts(o, "[function]"); return;
    default: to_json(R, v, o, 0, ", ", ": ", 0, 0); return;
    }
}

static jval v_tostr(rctx *R, const jval *v) {
    if (v->t == V_STR) return *v;
    sb o = SB(R);
    to_string(R, v, &o);
    jval r = v_strn(R, o.p ? o.p : "", o.n);
    return r;
}

/* the JS `.value.toString()` used by + and ~: numbers print without ".0" */
static jval v_rawstr(rctx *R, const jval *v) {
    if (v->t == V_FLOAT) {
        char nb[64];
        js_num(v->u.num, nb, sizeof nb);
        return v_str(R, nb);
    }
    if (v->t == V_ARRAY) { /* Array.prototype.toString: the items' toString() joined by "," */
        sb o = SB(R);
        for (int i = 0; i < v->u.l->n; i++) {
            if (i) sb_put(&o, ",", 1);
            to_string(R, &v->u.l->v[i], &o);
        }
        return v_strn(R, o.p ? o.p : "", o.n);
    }
    if (v->t == V_OBJECT || v->t == V_NS || v->t == V_KWARGS) return v_str(R, "[object Map]");
    return v_tostr(R, v);
}

static double js_str_to_num(const jval *v) {
    size_t i = 0, n = v->u.s.n;
    const char *s = v->u.s.p;
    while (i < n && js_space((unsigned char)s[i])) i++;
    while (n > i && js_space((unsigned char)s[n - 1])) n--;
    if (i == n) return 0;
    char tmp[128];
    if (n - i >= sizeof tmp) return NAN;
    memcpy(tmp, s + i, n - i);
    tmp[n - i] = 0;
    char *e;
    double d = strtod(tmp, &e);
    return *e ? NAN : d;
}

/* JavaScript `left.value == right.value` */
static int js_loose_eq(const jval *a, const jval *b) {
    int an = a->t == V_INT || a->t == V_FLOAT, bn = b->t == V_INT || b->t == V_FLOAT;
    if ((a->t == V_UNDEF || a->t == V_NULL) || (b->t == V_UNDEF || b->t == V_NULL))
        return (a->t == V_UNDEF || a->t == V_NULL) && (b->t == V_UNDEF || b->t == V_NULL);
    if (an && bn) return a->u.num == b->u.num;
    if (a->t == V_STR && b->t == V_STR) return a->u.s.n == b->u.s.n && !memcmp(a->u.s.p, b->u.s.p, a->u.s.n);
    if (a->t == V_BOOL && b->t == V_BOOL) return a->u.b == b->u.b;
    if (a->t == V_BOOL) { jval x = v_int(a->u.b); return js_loose_eq(&x, b); }
    if (b->t == V_BOOL) { jval x = v_int(b->u.b); return js_loose_eq(a, &x); }
    if (an && b->t == V_STR) return a->u.num == js_str_to_num(b);
    if (bn && a->t == V_STR) return b->u.num == js_str_to_num(a);
    if (a->t == V_ARRAY && b->t == V_ARRAY) return a->u.l == b->u.l;
    if ((a->t == V_OBJECT || a->t == V_NS || a->t == V_KWARGS) && a->t == b->t) return a->u.m == b->u.m;
    if (a->t == V_FUNC && b->t == V_FUNC) return a->u.f == b->u.f;
    return 0;
}

/* JavaScript `===` on .value (used by `in` over arrays) */
static int js_strict_eq(const jval *a, const jval *b) {
    int an = a->t == V_INT || a->t == V_FLOAT, bn = b->t == V_INT || b->t == V_FLOAT;
    if (an || bn) return an && bn && a->u.num == b->u.num;
    if (a->t != b->t) return (a->t == V_UNDEF && b->t == V_UNDEF);
    return js_loose_eq(a, b);
}

/* ================================================================ builtins */

static jval eval(rctx *R, env *E, const node *x);
static void exec_block(rctx *R, env *E, node **st, int n, sb *out);

static jval *kwarg(jval *args, int nargs, const char *k) {
    if (nargs > 0 && args[nargs - 1].t == V_KWARGS) return m_get(args[nargs - 1].u.m, k, strlen(k));
    return NULL;
}
static int npos(jval *args, int nargs) { return nargs > 0 && args[nargs - 1].t == V_KWARGS ? nargs - 1 : nargs; }

/* simple per-code-point case conversion (JS toUpperCase/toLowerCase for the common cases) */
static jval str_case(rctx *R, const jval *s, int upper, int first_only) {
    sb o = SB(R);
    size_t i = 0;
    int k = 0;
    while (i < s->u.s.n) {
        int32_t cp;
        int l = cp_at(s->u.s.p, s->u.s.n, i, &cp);
        if (cp >= 0 && (!first_only || k == 0)) {
            int32_t c2 = upper ? mp_unicode_toupper(cp) : mp_unicode_tolower(cp);
            char u[4];
            int ul = tok_utf8_encode((uint32_t)c2, u);
            sb_put(&o, u, (size_t)ul);
        } else {
            sb_put(&o, s->u.s.p + i, (size_t)l);
        }
        i += (size_t)l;
        k++;
    }
    jval r = v_strn(R, o.p ? o.p : "", o.n);
    return r;
}

static jval str_title(rctx *R, const jval *s) {
    /* /\b\w/g -> upper: an ASCII word char that starts a word */
    sb o = SB(R);
    for (size_t i = 0; i < s->u.s.n; i++) {
        char c = s->u.s.p[i];
        int w = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
        int pw = i > 0 && ((s->u.s.p[i - 1] >= '0' && s->u.s.p[i - 1] <= '9') || (s->u.s.p[i - 1] >= 'a' && s->u.s.p[i - 1] <= 'z') ||
                           (s->u.s.p[i - 1] >= 'A' && s->u.s.p[i - 1] <= 'Z') || s->u.s.p[i - 1] == '_');
        if (w && !pw && c >= 'a' && c <= 'z') c = (char)(c - 32);
        sb_put(&o, &c, 1);
    }
    jval r = v_strn(R, o.p ? o.p : "", o.n);
    return r;
}

static int utf16_len(const jval *s) {
    int n = 0;
    for (size_t i = 0; i < s->u.s.n;) {
        int32_t cp;
        i += (size_t)cp_at(s->u.s.p, s->u.s.n, i, &cp);
        n += cp >= 0x10000 ? 2 : 1;
    }
    return n;
}

static jval m_str_method(rctx *R, jfunc *f, jval *args, int nargs, int line) {
    const jval *s = f->self;
    const char *m = f->name;
    if (!strcmp(m, "upper")) return str_case(R, s, 1, 0);
    if (!strcmp(m, "lower")) return str_case(R, s, 0, 0);
    if (!strcmp(m, "title")) return str_title(R, s);
    if (!strcmp(m, "capitalize")) return str_case(R, s, 1, 1);
    if (!strcmp(m, "strip") || !strcmp(m, "lstrip") || !strcmp(m, "rstrip")) {
        size_t a = m[0] != 'r' ? js_trim_start(s->u.s.p, s->u.s.n) : 0;
        size_t b = m[0] != 'l' ? js_trim_end(s->u.s.p, s->u.s.n) : s->u.s.n;
        if (b < a) b = a;
        return v_strn(R, s->u.s.p + a, b - a);
    }
    if (!strcmp(m, "startswith") || !strcmp(m, "endswith")) {
        int end = m[0] == 'e';
        if (npos(args, nargs) < 1) RERR(R, line, "%s() requires an argument", m);
        jval *pats = &args[0];
        int cnt = pats->t == V_ARRAY ? pats->u.l->n : 1;
        for (int i = 0; i < cnt; i++) {
            const jval *p = pats->t == V_ARRAY ? &pats->u.l->v[i] : pats;
            if (p->t != V_STR) RERR(R, line, "%s() argument must be a string or tuple of strings", m);
            if (p->u.s.n <= s->u.s.n &&
                !memcmp(s->u.s.p + (end ? s->u.s.n - p->u.s.n : 0), p->u.s.p, p->u.s.n))
                return v_bool(1);
        }
        return v_bool(0);
    }
    if (!strcmp(m, "split")) {
        jval r = v_list(R, V_ARRAY);
        jval *sep = npos(args, nargs) > 0 ? &args[0] : NULL;
        int maxsplit = npos(args, nargs) > 1 && args[1].t == V_INT ? CLAMP_INT(args[1].u.num) : -1;
        const char *p = s->u.s.p;
        size_t n = s->u.s.n;
        if (!sep || sep->t == V_NULL) {
            size_t i = js_trim_start(p, n);
            while (i < n) {
                size_t j = i;
                while (j < n) {
                    int32_t cp;
                    int l = cp_at(p, n, j, &cp);
                    if (js_space(cp)) break;
                    j += (size_t)l;
                }
                if (maxsplit != -1 && r.u.l->n >= maxsplit) { l_push(R, r.u.l, v_strn(R, p + i, n - i)); break; }
                l_push(R, r.u.l, v_strn(R, p + i, j - i));
                i = j + js_trim_start(p + j, n - j);
            }
            return r;
        }
        if (sep->t != V_STR) RERR(R, line, "sep argument must be a string or null");
        if (sep->u.s.n == 0) RERR(R, line, "empty separator");
        size_t i = 0;
        for (;;) {
            const char *hit = maxsplit != -1 && r.u.l->n >= maxsplit ? NULL : memmem(p + i, n - i, sep->u.s.p, sep->u.s.n);
            if (!hit) { l_push(R, r.u.l, v_strn(R, p + i, n - i)); break; }
            l_push(R, r.u.l, v_strn(R, p + i, (size_t)(hit - (p + i))));
            i = (size_t)(hit - p) + sep->u.s.n;
        }
        return r;
    }
    if (!strcmp(m, "replace")) {
        int np = npos(args, nargs);
        if (np < 2 || args[0].t != V_STR || args[1].t != V_STR) RERR(R, line, "replace() arguments must be strings");
        jval *cnt = np > 2 ? &args[2] : kwarg(args, nargs, "count");
        long count = cnt && cnt->t == V_INT ? CLAMP_IDX(cnt->u.num) : -1;
        const jval *a = &args[0], *b = &args[1];
        sb o = SB(R);
        size_t i = 0;
        long done = 0;
        if (a->u.s.n == 0) { /* Python: insert between characters */
            for (size_t k = 0; k <= s->u.s.n; k++) {
                if (count < 0 || done < count) { sb_put(&o, b->u.s.p, b->u.s.n); done++; }
                if (k < s->u.s.n) sb_put(&o, s->u.s.p + k, 1);
            }
        } else {
            while (i < s->u.s.n) {
                const char *hit = (count < 0 || done < count) ? memmem(s->u.s.p + i, s->u.s.n - i, a->u.s.p, a->u.s.n) : NULL;
                if (!hit) { sb_put(&o, s->u.s.p + i, s->u.s.n - i); break; }
                sb_put(&o, s->u.s.p + i, (size_t)(hit - (s->u.s.p + i)));
                sb_put(&o, b->u.s.p, b->u.s.n);
                i = (size_t)(hit - s->u.s.p) + a->u.s.n;
                done++;
            }
        }
        jval r = v_strn(R, o.p ? o.p : "", o.n);
        return r;
    }
    RERR(R, line, "unknown string method %s", m);
    return v_undef();
}

static jval m_obj_method(rctx *R, jfunc *f, jval *args, int nargs, int line) {
    const jmap *m = f->self->u.m;
    const char *name = f->name;
    if (!strcmp(name, "get")) {
        if (nargs < 1 || args[0].t != V_STR) RERR(R, line, "object key must be a string");
        jval *v = m_get(m, args[0].u.s.p, args[0].u.s.n);
        return v ? *v : (nargs > 1 ? args[1] : v_null());
    }
    jval r = v_list(R, V_ARRAY);
    for (int i = 0; i < m->n; i++) {
        if (!strcmp(name, "keys")) l_push(R, r.u.l, v_strn(R, m->k[i], m->kn[i]));
        else if (!strcmp(name, "values")) l_push(R, r.u.l, m->v[i]);
        else {
            jval pair = v_list(R, V_ARRAY);
            l_push(R, pair.u.l, v_strn(R, m->k[i], m->kn[i]));
            l_push(R, pair.u.l, m->v[i]);
            l_push(R, r.u.l, pair);
        }
    }
    if (!strcmp(name, "dictsort")) RERR(R, line, "dictsort is not supported");
    return r;
}

static jval builtin_of(rctx *R, jval *obj, const char *name, size_t n) {
    static const char *smeth[] = {"upper", "lower", "strip", "title", "capitalize", "rstrip", "lstrip", "startswith",
                                  "endswith", "split", "replace", NULL};
    static const char *ometh[] = {"get", "items", "keys", "values", "dictsort", NULL};
    if (obj->t == V_STR) {
        if (n == 6 && !memcmp(name, "length", 6)) return v_int(utf16_len(obj));
        for (int i = 0; smeth[i]; i++)
            if (strlen(smeth[i]) == n && !memcmp(smeth[i], name, n)) {
                jval *self = ar_alloc(&R->ar, sizeof *self, &R->jb);
                *self = *obj;
                return v_func(R, smeth[i], m_str_method, self);
            }
    } else if (obj->t == V_ARRAY) {
        if (n == 6 && !memcmp(name, "length", 6)) return v_int(obj->u.l->n);
    } else if (obj->t == V_OBJECT) {
        for (int i = 0; ometh[i]; i++)
            if (strlen(ometh[i]) == n && !memcmp(ometh[i], name, n)) {
                jval *self = ar_alloc(&R->ar, sizeof *self, &R->jb);
                *self = *obj;
                return v_func(R, ometh[i], m_obj_method, self);
            }
    }
    return v_undef();
}

static jval g_namespace(rctx *R, jfunc *f, jval *args, int nargs, int line) {
    jval ns = v_list(R, V_NS);
    int np = npos(args, nargs);
    if (np > 1) RERR(R, line, "namespace expected at most 1 argument, got %d", np);
    if (np == 1) {
        if (args[0].t != V_OBJECT) RERR(R, line, "namespace() argument must be an object");
        for (int i = 0; i < args[0].u.m->n; i++) m_set(R, ns.u.m, args[0].u.m->k[i], args[0].u.m->kn[i], args[0].u.m->v[i]);
    }
    if (np < nargs)
        for (int i = 0; i < args[nargs - 1].u.m->n; i++)
            m_set(R, ns.u.m, args[nargs - 1].u.m->k[i], args[nargs - 1].u.m->kn[i], args[nargs - 1].u.m->v[i]);
    return ns;
}

static jval g_raise(rctx *R, jfunc *f, jval *args, int nargs, int line) {
    jval s = nargs > 0 ? v_tostr(R, &args[0]) : v_str(R, "");
    RERR(R, line, "raise_exception: %.*s", (int)s.u.s.n, s.u.s.p);
    return v_undef();
}

static jval g_range(rctx *R, jfunc *f, jval *args, int nargs, int line) {
    int np = npos(args, nargs);
    double a = 0, b, st = 1;
    for (int i = 0; i < np; i++) if (args[i].t != V_INT) RERR(R, line, "range() arguments must be integers");
    if (np == 1) b = args[0].u.num;
    else if (np >= 2) { a = args[0].u.num; b = args[1].u.num; if (np > 2) st = args[2].u.num; }
    else RERR(R, line, "range() expects 1 to 3 arguments");
    if (st == 0) RERR(R, line, "range() step must not be zero");
    jval r = v_list(R, V_ARRAY);
    for (double x = a; st > 0 ? x < b : x > b; x += st) {
        if (r.u.l->n > 1000000) RERR(R, line, "range() too long");
        l_push(R, r.u.l, v_int(x));
    }
    return r;
}

static jval g_strftime(rctx *R, jfunc *f, jval *args, int nargs, int line) {
    if (nargs < 1 || args[0].t != V_STR) RERR(R, line, "strftime_now() expects a format string");
    static const char *months[] = {"January", "February", "March", "April", "May", "June", "July", "August",
                                   "September", "October", "November", "December"};
    time_t now = R->now ? (time_t)R->now : time(NULL);
    struct tm tmv;
    localtime_r(&now, &tmv);
    sb o = SB(R);
    const char *s = args[0].u.s.p;
    size_t n = args[0].u.s.n;
    for (size_t i = 0; i < n; i++) {
        char b[32];
        if (s[i] == '%' && i + 1 < n && strchr("YmdbBHM%", s[i + 1])) {
            switch (s[++i]) {
            case 'Y': snprintf(b, sizeof b, "%d", tmv.tm_year + 1900); break;
            case 'm': snprintf(b, sizeof b, "%02d", tmv.tm_mon + 1); break;
            case 'd': snprintf(b, sizeof b, "%02d", tmv.tm_mday); break;
            case 'b': snprintf(b, sizeof b, "%.3s", months[tmv.tm_mon]); break;
            case 'B': snprintf(b, sizeof b, "%s", months[tmv.tm_mon]); break;
            case 'H': snprintf(b, sizeof b, "%02d", tmv.tm_hour); break;
            case 'M': snprintf(b, sizeof b, "%02d", tmv.tm_min); break;
            default: snprintf(b, sizeof b, "%%"); break;
            }
            sb_puts(&o, b);
        } else {
            sb_put(&o, s + i, 1);
        }
    }
    jval r = v_strn(R, o.p ? o.p : "", o.n);
    return r;
}

static jval call_macro(rctx *R, jfunc *f, jval *args, int nargs, int line);

/* ================================================================ environment */

static jval lookup(env *E, const char *k, size_t n) {
    for (; E; E = E->parent) {
        jval *v = m_get(&E->vars, k, n);
        if (v) return *v;
    }
    return v_undef();
}

static env *env_new(rctx *R, env *parent) {
    env *e = ar_alloc(&R->ar, sizeof *e, &R->jb);
    e->parent = parent;
    return e;
}

/* ================================================================ evaluation */

static int name_is(const node *x, const char *s) { return x->n == strlen(s) && !memcmp(x->s, s, x->n); }

static jval eval_bin(rctx *R, env *E, const node *x) {
    jval l = eval(R, E, x->a);
    if (name_is(x, "and")) return truthy(&l) ? eval(R, E, x->b) : l;
    if (name_is(x, "or")) return truthy(&l) ? l : eval(R, E, x->b);
    jval r = eval(R, E, x->b);
    if (name_is(x, "==")) return v_bool(js_loose_eq(&l, &r));
    if (name_is(x, "!=")) return v_bool(!js_loose_eq(&l, &r));
    int in = name_is(x, "in"), notin = name_is(x, "not in");
    if (l.t == V_UNDEF || r.t == V_UNDEF) {
        if (r.t == V_UNDEF && (in || notin)) return v_bool(notin);
        RERR(R, x->line, "cannot perform operation %.*s on undefined values", (int)x->n, x->s);
    }
    if (l.t == V_NULL || r.t == V_NULL) RERR(R, x->line, "cannot perform operation %.*s on null values", (int)x->n, x->s);
    if (name_is(x, "~")) {
        jval a = v_rawstr(R, &l), b = v_rawstr(R, &r);
        sb o = SB(R);
        sb_put(&o, a.u.s.p, a.u.s.n);
        sb_put(&o, b.u.s.p, b.u.s.n);
        jval res = v_strn(R, o.p ? o.p : "", o.n);
        return res;
    }
    int ln = l.t == V_INT || l.t == V_FLOAT || l.t == V_BOOL, rn = r.t == V_INT || r.t == V_FLOAT || r.t == V_BOOL;
    if (name_is(x, "**") && ln && rn) {
        double a = l.t == V_BOOL ? l.u.b : l.u.num, b = r.t == V_BOOL ? r.u.b : r.u.num;
        double res = pow(a, b);
        if (!isfinite(res)) RERR(R, x->line, "exponentiation result is not a finite real number");
        return (l.t == V_FLOAT || r.t == V_FLOAT || b < 0) ? v_float(res) : v_int(res);
    }
    if ((l.t == V_INT || l.t == V_FLOAT) && (r.t == V_INT || r.t == V_FLOAT)) {
        double a = l.u.num, b = r.u.num;
        int fl = l.t == V_FLOAT || r.t == V_FLOAT;
        char op = x->s[0];
        if (x->n == 1 && (op == '+' || op == '-' || op == '*')) {
            double res = op == '+' ? a + b : op == '-' ? a - b : a * b;
            return fl ? v_float(res) : v_int(res);
        }
        if (name_is(x, "/")) return v_float(a / b);
        if (name_is(x, "//")) { double res = floor(a / b); return fl ? v_float(res) : v_int(res); }
        if (name_is(x, "%")) { double res = fmod(a, b); return fl ? v_float(res) : v_int(res); }
        if (name_is(x, "<")) return v_bool(a < b);
        if (name_is(x, ">")) return v_bool(a > b);
        if (name_is(x, "<=")) return v_bool(a <= b);
        if (name_is(x, ">=")) return v_bool(a >= b);
    } else if (l.t == V_ARRAY && r.t == V_ARRAY) {
        if (name_is(x, "+")) {
            jval res = v_list(R, V_ARRAY);
            for (int i = 0; i < l.u.l->n; i++) l_push(R, res.u.l, l.u.l->v[i]);
            for (int i = 0; i < r.u.l->n; i++) l_push(R, res.u.l, r.u.l->v[i]);
            return res;
        }
    } else if (r.t == V_ARRAY && (in || notin)) {
        int found = 0;
        for (int i = 0; i < r.u.l->n && !found; i++) found = js_strict_eq(&r.u.l->v[i], &l);
        return v_bool(in ? found : !found);
    }
    if ((l.t == V_STR || r.t == V_STR) && name_is(x, "+")) {
        jval a = v_rawstr(R, &l), b = v_rawstr(R, &r);
        sb o = SB(R);
        sb_put(&o, a.u.s.p, a.u.s.n);
        sb_put(&o, b.u.s.p, b.u.s.n);
        jval res = v_strn(R, o.p ? o.p : "", o.n);
        return res;
    }
    if (l.t == V_STR && r.t == V_STR && (in || notin)) {
        int found = l.u.s.n == 0 || memmem(r.u.s.p, r.u.s.n, l.u.s.p, l.u.s.n) != NULL;
        return v_bool(in ? found : !found);
    }
    if (l.t == V_STR && (r.t == V_OBJECT || r.t == V_KWARGS) && (in || notin)) {
        int found = m_get(r.u.m, l.u.s.p, l.u.s.n) != NULL;
        return v_bool(in ? found : !found);
    }
    RERR(R, x->line, "unknown operator \"%.*s\" between %s and %s", (int)x->n, x->s, type_name(&l), type_name(&r));
    return v_undef();
}

static void eval_args(rctx *R, env *E, node **a, int n, jlist *out) {
    jval kw = {0};
    for (int i = 0; i < n; i++)
        if (a[i]->type != N_KWARG) l_push(R, out, eval(R, E, a[i]));
    for (int i = 0; i < n; i++) {
        if (a[i]->type != N_KWARG) continue;
        if (kw.t != V_KWARGS) kw = v_list(R, V_KWARGS);
        if (m_get(kw.u.m, a[i]->s, a[i]->n)) RERR(R, a[i]->line, "got multiple values for keyword argument '%.*s'", (int)a[i]->n, a[i]->s);
        m_set(R, kw.u.m, a[i]->s, a[i]->n, eval(R, E, a[i]->a));
    }
    if (kw.t == V_KWARGS) l_push(R, out, kw);
}

static jval slice_list(rctx *R, const jval *obj, const jval *st, const jval *sp, const jval *step, int line) {
    int is_str = obj->t == V_STR;
    /* strings slice by code point (JS Array.from) */
    int len;
    int32_t *cps = NULL;
    if (is_str) {
        cps = ar_alloc(&R->ar, (obj->u.s.n + 1) * sizeof *cps, &R->jb);
        len = 0;
        for (size_t i = 0; i < obj->u.s.n;) {
            int32_t cp;
            i += (size_t)cp_at(obj->u.s.p, obj->u.s.n, i, &cp);
            cps[len++] = cp;
        }
    } else {
        len = obj->u.l->n;
    }
    for (int k = 0; k < 3; k++) {
        const jval *v = k == 0 ? st : k == 1 ? sp : step;
        if (v->t != V_INT && v->t != V_UNDEF) RERR(R, line, "slice indices must be integers");
    }
    long stepv = step->t == V_INT ? CLAMP_IDX(step->u.num) : 1, a, b;
    if (stepv == 0) RERR(R, line, "slice step cannot be zero");
    if (stepv > 0) {
        a = st->t == V_INT ? CLAMP_IDX(st->u.num) : 0;
        a = a < 0 ? (len + a > 0 ? len + a : 0) : (a < len ? a : len);
        b = sp->t == V_INT ? CLAMP_IDX(sp->u.num) : len;
        b = b < 0 ? (len + b > 0 ? len + b : 0) : (b < len ? b : len);
    } else {
        a = st->t == V_INT ? CLAMP_IDX(st->u.num) : len - 1;
        a = a < 0 ? (len + a > -1 ? len + a : -1) : (a < len - 1 ? a : len - 1);
        b = sp->t == V_INT ? CLAMP_IDX(sp->u.num) : -1;
        b = b < -1 ? (len + b > -1 ? len + b : -1) : (b < len - 1 ? b : len - 1);
    }
    jval r = v_list(R, V_ARRAY);
    sb o = SB(R);
    for (long i = a; stepv > 0 ? i < b : i > b; i += stepv) {
        if (is_str) {
            char u[4];
            int ul = tok_utf8_encode((uint32_t)cps[i], u);
            sb_put(&o, u, (size_t)ul);
        } else {
            l_push(R, r.u.l, obj->u.l->v[i]);
        }
    }
    if (is_str) {
        r = v_strn(R, o.p ? o.p : "", o.n);
    }
    return r;
}

static jval eval_member(rctx *R, env *E, const node *x) {
    jval obj = eval(R, E, x->a);
    jval prop;
    if (x->flag) {
        if (x->b->type == N_SLICE) {
            if (obj.t != V_ARRAY && obj.t != V_STR) RERR(R, x->line, "slice object must be an array or string");
            jval u = v_undef();
            jval a = x->b->a ? eval(R, E, x->b->a) : u, b = x->b->b ? eval(R, E, x->b->b) : u, c = x->b->c ? eval(R, E, x->b->c) : u;
            return slice_list(R, &obj, &a, &b, &c, x->line);
        }
        prop = eval(R, E, x->b);
    } else if (x->b->type == N_INT) {
        prop = v_int(x->b->num);
    } else {
        prop = v_strn(R, x->b->s, x->b->n);
    }
    if (obj.t == V_OBJECT || obj.t == V_NS || obj.t == V_KWARGS) {
        if (prop.t != V_STR) RERR(R, x->line, "cannot access a property with %s", type_name(&prop));
        jval *v = m_get(obj.u.m, prop.u.s.p, prop.u.s.n);
        if (v) return *v;
        return obj.t == V_OBJECT ? builtin_of(R, &obj, prop.u.s.p, prop.u.s.n) : v_undef();
    }
    if (obj.t == V_ARRAY || obj.t == V_STR) {
        if (prop.t == V_INT) {
            long i = CLAMP_IDX(prop.u.num);
            if (obj.t == V_ARRAY) {
                if (i < 0) i += obj.u.l->n;
                return i >= 0 && i < obj.u.l->n ? obj.u.l->v[i] : v_undef();
            }
            /* string: UTF-16 code unit at i (code points here; the same for the BMP) */
            jval u = v_undef(), one = v_int(1);
            long len = 0;
            for (size_t k = 0; k < obj.u.s.n;) { int32_t cp; k += (size_t)cp_at(obj.u.s.p, obj.u.s.n, k, &cp); len++; }
            if (i < 0) i += len;
            if (i < 0 || i >= len) return u;
            jval a = v_int((double)i), b = v_int((double)i + 1);
            return slice_list(R, &obj, &a, &b, &one, x->line);
        }
        if (prop.t == V_STR) return builtin_of(R, &obj, prop.u.s.p, prop.u.s.n);
        RERR(R, x->line, "cannot access a property with %s", type_name(&prop));
    }
    if (prop.t != V_STR) RERR(R, x->line, "cannot access a property with %s", type_name(&prop));
    return v_undef();
}

static jval call_fn(rctx *R, jval *fn, jlist *args, int line) {
    if (fn->t != V_FUNC) RERR(R, line, "cannot call something that is not a function: got %s", type_name(fn));
    return fn->u.f->fn(R, fn->u.f, args->v, args->n, line);
}

static int test_fn(rctx *R, const node *x, const jval *v) {
    const char *t = x->s;
    size_t n = x->n;
#define T(name) (n == strlen(name) && !memcmp(t, name, n))
    if (T("defined")) return v->t != V_UNDEF;
    if (T("undefined")) return v->t == V_UNDEF;
    if (T("none")) return v->t == V_NULL;
    if (T("string")) return v->t == V_STR;
    if (T("number")) return v->t == V_INT || v->t == V_FLOAT;
    if (T("integer")) return v->t == V_INT;
    if (T("boolean")) return v->t == V_BOOL;
    if (T("true")) return v->t == V_BOOL && v->u.b;
    if (T("false")) return v->t == V_BOOL && !v->u.b;
    if (T("callable")) return v->t == V_FUNC;
    if (T("iterable")) return v->t == V_ARRAY || v->t == V_STR;
    if (T("mapping")) return v->t == V_OBJECT || v->t == V_KWARGS;
    if (T("sequence")) return v->t == V_ARRAY || v->t == V_OBJECT || v->t == V_KWARGS || v->t == V_STR;
    if (T("odd") || T("even")) {
        if (v->t != V_INT) RERR(R, x->line, "cannot %.*s on %s", (int)n, t, type_name(v));
        return (fmod(v->u.num, 2) != 0) == T("odd");
    }
    if (T("lower") || T("upper")) {
        if (v->t != V_STR) return 0;
        jval c = str_case(R, v, T("upper"), 0);
        return c.u.s.n == v->u.s.n && !memcmp(c.u.s.p, v->u.s.p, c.u.s.n);
    }
#undef T
    RERR(R, x->line, "unknown test '%.*s'", (int)n, t);
    return 0;
}

/* compareRuntimeValues (+ the sort filter's attribute path) */
static int compare_vals(rctx *R, const jval *a0, const jval *b0, int csens, const jval *attr, int line) {
    jval a = *a0, b = *b0;
    if (attr && attr->t == V_STR) {
        for (int k = 0; k < 2; k++) {
            jval *x = k ? &b : &a;
            const char *p = attr->u.s.p, *e = p + attr->u.s.n;
            while (p <= e) {
                const char *dot = memchr(p, '.', (size_t)(e - p));
                size_t len = dot ? (size_t)(dot - p) : (size_t)(e - p);
                if (x->t == V_OBJECT || x->t == V_NS) {
                    jval *y = m_get(x->u.m, p, len);
                    *x = y ? *y : v_undef();
                } else if (x->t == V_ARRAY) {
                    long idx = strtol(p, NULL, 10);
                    *x = idx >= 0 && idx < x->u.l->n ? x->u.l->v[idx] : v_undef();
                } else {
                    *x = v_undef();
                }
                if (!dot) break;
                p = dot + 1;
            }
        }
    }
    if (a.t == V_NULL && b.t == V_NULL) return 0;
    if (a.t == V_UNDEF && b.t == V_UNDEF) return 0;
    if (a.t == V_NULL || b.t == V_NULL || a.t == V_UNDEF || b.t == V_UNDEF)
        RERR(R, line, "cannot compare %s with %s", type_name(&a), type_name(&b));
    int an = a.t == V_INT || a.t == V_FLOAT || a.t == V_BOOL, bn = b.t == V_INT || b.t == V_FLOAT || b.t == V_BOOL;
    if (an && bn) {
        double x = a.t == V_BOOL ? a.u.b : a.u.num, y = b.t == V_BOOL ? b.u.b : b.u.num;
        return x < y ? -1 : x > y;
    }
    if (a.t != V_STR || b.t != V_STR) RERR(R, line, "cannot compare %s with %s", type_name(&a), type_name(&b));
    jval x = csens ? a : str_case(R, &a, 0, 0), y = csens ? b : str_case(R, &b, 0, 0);
    size_t n = x.u.s.n < y.u.s.n ? x.u.s.n : y.u.s.n;
    int c = memcmp(x.u.s.p, y.u.s.p, n);
    if (c) return c < 0 ? -1 : 1;
    return x.u.s.n < y.u.s.n ? -1 : x.u.s.n > y.u.s.n;
}

static jval apply_filter(rctx *R, env *E, jval v, const node *f, int line) {
    const node *id = f->type == N_CALL ? f->a : f;
    if (id->type != N_IDENT) RERR(R, line, "unknown filter");
    const char *name = id->s;
    size_t n = id->n;
    jlist args = {0};
    if (f->type == N_CALL) eval_args(R, E, f->l1, f->n1, &args);
    int np = npos(args.v, args.n);
#define F(s) (n == strlen(s) && !memcmp(name, s, n))
    if (F("safe")) return v;
    if (F("tojson")) {
        jval *ind = kwarg(args.v, args.n, "indent");
        jval *seps = kwarg(args.v, args.n, "separators");
        jval *sk = kwarg(args.v, args.n, "sort_keys"), *ea = kwarg(args.v, args.n, "ensure_ascii");
        if (ind && ind->t != V_INT && ind->t != V_NULL) RERR(R, line, "if set, indent must be a number");
        if ((sk && sk->t == V_BOOL && sk->u.b) || (ea && ea->t == V_BOOL && ea->u.b))
            RERR(R, line, "tojson: sort_keys/ensure_ascii are not supported");
        int indent = ind && ind->t == V_INT ? CLAMP_INT(ind->u.num) : 0;
        const char *isep = indent ? "," : ", ", *ksep = ": ";
        char ib[64], kb[64];
        if (seps && seps->t == V_ARRAY && seps->u.l->n == 2 && seps->u.l->v[0].t == V_STR && seps->u.l->v[1].t == V_STR) {
            snprintf(ib, sizeof ib, "%.*s", (int)seps->u.l->v[0].u.s.n, seps->u.l->v[0].u.s.p);
            snprintf(kb, sizeof kb, "%.*s", (int)seps->u.l->v[1].u.s.n, seps->u.l->v[1].u.s.p);
            isep = ib;
            ksep = kb;
        }
        sb o = SB(R);
        to_json(R, &v, &o, indent, isep, ksep, 0, 1);
        jval r = v_strn(R, o.p ? o.p : "", o.n);
        return r;
    }
    if (F("default") || F("d")) {
        jval def = np > 0 ? args.v[0] : v_str(R, "");
        jval *bv = np > 1 ? &args.v[1] : kwarg(args.v, args.n, "boolean");
        int boolean = bv && bv->t == V_BOOL && bv->u.b;
        if (v.t == V_UNDEF || (boolean && !truthy(&v))) return def;
        return v;
    }
    if (F("join") && (v.t == V_ARRAY || v.t == V_STR)) {
        jval *sep = np > 0 ? &args.v[0] : kwarg(args.v, args.n, "separator");
        sb o = SB(R);
        if (v.t == V_STR) {
            for (size_t i = 0; i < v.u.s.n;) {
                int32_t cp;
                int l = cp_at(v.u.s.p, v.u.s.n, i, &cp);
                if (i && sep && sep->t == V_STR) sb_put(&o, sep->u.s.p, sep->u.s.n);
                sb_put(&o, v.u.s.p + i, (size_t)l);
                i += (size_t)l;
            }
        } else {
            for (int i = 0; i < v.u.l->n; i++) {
                if (i && sep && sep->t == V_STR) sb_put(&o, sep->u.s.p, sep->u.s.n);
                jval s = v_rawstr(R, &v.u.l->v[i]);
                sb_put(&o, s.u.s.p, s.u.s.n);
            }
        }
        jval r = v_strn(R, o.p ? o.p : "", o.n);
        return r;
    }
    if (v.t == V_ARRAY) {
        if (F("list")) return v;
        if (F("first")) return v.u.l->n ? v.u.l->v[0] : v_undef();
        if (F("last")) return v.u.l->n ? v.u.l->v[v.u.l->n - 1] : v_undef();
        if (F("length") || F("count")) return v_int(v.u.l->n);
        if (F("sort")) {
            jval *rv = np > 0 ? &args.v[0] : kwarg(args.v, args.n, "reverse");
            jval *cs = np > 1 ? &args.v[1] : kwarg(args.v, args.n, "case_sensitive");
            jval *at = np > 2 ? &args.v[2] : kwarg(args.v, args.n, "attribute");
            int rev = rv && rv->t == V_BOOL && rv->u.b, csens = cs && cs->t == V_BOOL && cs->u.b;
            jval r = v_list(R, V_ARRAY);
            for (int i = 0; i < v.u.l->n; i++) l_push(R, r.u.l, v.u.l->v[i]);
            /* stable insertion sort (JS sort is stable) */
            for (int i = 1; i < r.u.l->n; i++) {
                jval key = r.u.l->v[i];
                int j = i - 1;
                while (j >= 0 && (rev ? -1 : 1) * compare_vals(R, &r.u.l->v[j], &key, csens, at, line) > 0) {
                    STEP(R, line);
                    r.u.l->v[j + 1] = r.u.l->v[j];
                    j--;
                }
                r.u.l->v[j + 1] = key;
            }
            return r;
        }
        if (F("reverse")) {
            jval r = v_list(R, V_ARRAY);
            for (int i = v.u.l->n - 1; i >= 0; i--) l_push(R, r.u.l, v.u.l->v[i]);
            return r;
        }
        if (F("string")) {
            sb o = SB(R);
            to_json(R, &v, &o, 0, ", ", ": ", 0, 0);
            jval r = v_strn(R, o.p ? o.p : "", o.n);
            return r;
        }
        if (F("selectattr") || F("rejectattr")) {
            int sel = F("selectattr");
            if (np < 1 || args.v[0].t != V_STR) RERR(R, line, "%.*s needs an attribute name", (int)n, name);
            jval r = v_list(R, V_ARRAY);
            for (int i = 0; i < v.u.l->n; i++) {
                jval *it = &v.u.l->v[i];
                if (it->t != V_OBJECT && it->t != V_NS) RERR(R, line, "%.*s can only be applied to an array of objects", (int)n, name);
                jval *a = m_get(it->u.m, args.v[0].u.s.p, args.v[0].u.s.n);
                int res = 0;
                if (a) {
                    if (np >= 2) {
                        if (args.v[1].t != V_STR) RERR(R, line, "test name must be a string");
                        node tn = {0};
                        tn.s = args.v[1].u.s.p;
                        tn.n = args.v[1].u.s.n;
                        tn.line = line;
                        if ((tn.n == 7 && !memcmp(tn.s, "equalto", 7)) || (tn.n == 2 && !memcmp(tn.s, "eq", 2)))
                            res = np >= 3 && js_strict_eq(a, &args.v[2]);
                        else
                            res = test_fn(R, &tn, a);
                    } else {
                        res = truthy(a);
                    }
                }
                if (res == sel) l_push(R, r.u.l, *it);
            }
            return r;
        }
        if (F("map")) {
            jval *attr = kwarg(args.v, args.n, "attribute");
            if (!attr || attr->t != V_STR) RERR(R, line, "map without attribute= is not supported");
            jval *def = kwarg(args.v, args.n, "default");
            jval r = v_list(R, V_ARRAY);
            for (int i = 0; i < v.u.l->n; i++) {
                jval *it = &v.u.l->v[i];
                if (it->t != V_OBJECT && it->t != V_NS) RERR(R, line, "items in map must be objects");
                jval *a = m_get(it->u.m, attr->u.s.p, attr->u.s.n);
                l_push(R, r.u.l, a ? *a : def ? *def : v_undef());
            }
            return r;
        }
        if (F("unique")) {
            jval r = v_list(R, V_ARRAY);
            for (int i = 0; i < v.u.l->n; i++) {
                int seen = 0;
                for (int k = 0; k < r.u.l->n && !seen; k++) {
                    STEP(R, line);
                    seen = js_strict_eq(&r.u.l->v[k], &v.u.l->v[i]);
                }
                if (!seen) l_push(R, r.u.l, v.u.l->v[i]);
            }
            return r;
        }
    } else if (v.t == V_STR) {
        if (F("length") || F("count")) return v_int(utf16_len(&v));
        if (F("upper")) return str_case(R, &v, 1, 0);
        if (F("lower")) return str_case(R, &v, 0, 0);
        if (F("capitalize")) return str_case(R, &v, 1, 1);
        if (F("title")) return str_title(R, &v);
        if (F("trim")) {
            size_t a = js_trim_start(v.u.s.p, v.u.s.n), b = js_trim_end(v.u.s.p, v.u.s.n);
            return v_strn(R, v.u.s.p + a, b > a ? b - a : 0);
        }
        if (F("string")) return v;
        if (F("int") || F("float")) {
            char tmp[128];
            snprintf(tmp, sizeof tmp, "%.*s", (int)(v.u.s.n < 100 ? v.u.s.n : 100), v.u.s.p);
            char *e;
            double d = F("int") ? (double)strtol(tmp, &e, 10) : strtod(tmp, &e);
            if (e == tmp) return np > 0 ? args.v[0] : F("int") ? v_int(0) : v_float(0);
            return F("int") ? v_int(d) : v_float(d);
        }
        if (F("indent")) {
            jval *w = np > 0 ? &args.v[0] : kwarg(args.v, args.n, "width");
            jval *fi = np > 1 ? &args.v[1] : kwarg(args.v, args.n, "first");
            jval *bl = np > 2 ? &args.v[2] : kwarg(args.v, args.n, "blank");
            int width = w && w->t == V_INT ? CLAMP_INT(w->u.num) : 4, first = fi && truthy(fi), blank = bl && truthy(bl);
            sb o = SB(R);
            size_t i = 0;
            int li = 0;
            for (;;) {
                const char *nl = memchr(v.u.s.p + i, '\n', v.u.s.n - i);
                size_t e = nl ? (size_t)(nl - v.u.s.p) : v.u.s.n;
                if (!((!first && li == 0) || (!blank && e == i)))
                    for (int k = 0; k < width; k++) sb_put(&o, " ", 1);
                sb_put(&o, v.u.s.p + i, e - i);
                if (!nl) break;
                sb_put(&o, "\n", 1);
                i = e + 1;
                li++;
            }
            jval r = v_strn(R, o.p ? o.p : "", o.n);
            return r;
        }
        if (F("replace")) {
            jval fn = builtin_of(R, &v, "replace", 7);
            return call_fn(R, &fn, &args, line);
        }
    } else if (v.t == V_INT || v.t == V_FLOAT) {
        if (F("abs")) return v.t == V_INT ? v_int(fabs(v.u.num)) : v_float(fabs(v.u.num));
        if (F("int")) return v.t == V_INT || f->type != N_CALL ? v_int(floor(v.u.num)) : v;
        if (F("float")) return v_float(v.u.num);
        if (F("string")) return v_tostr(R, &v);
    } else if (v.t == V_OBJECT) {
        if (F("length") || F("count")) return v_int(v.u.m->n);
        jval fn = builtin_of(R, &v, name, n);
        if (fn.t == V_FUNC) return call_fn(R, &fn, &args, line);
    } else if (v.t == V_BOOL) {
        if (F("bool")) return v;
        if (F("int")) return v_int(v.u.b);
        if (F("float")) return v_float(v.u.b);
        if (F("string")) return v_str(R, v.u.b ? "true" : "false");
    }
#undef F
    RERR(R, line, "cannot apply filter \"%.*s\" to %s", (int)n, name, type_name(&v));
    return v_undef();
}

static void assign(rctx *R, env *E, const node *target, jval v, int line) {
    if (target->type == N_IDENT) {
        m_set(R, &E->vars, target->s, target->n, v);
    } else if (target->type == N_TUPLE) {
        if (v.t != V_ARRAY) RERR(R, line, "cannot unpack non-iterable type %s", type_name(&v));
        if (v.u.l->n != target->n1) RERR(R, line, "too %s items to unpack", target->n1 > v.u.l->n ? "few" : "many");
        for (int i = 0; i < target->n1; i++) {
            if (target->l1[i]->type != N_IDENT) RERR(R, line, "cannot unpack to a non-identifier");
            m_set(R, &E->vars, target->l1[i]->s, target->l1[i]->n, v.u.l->v[i]);
        }
    } else if (target->type == N_MEMBER) {
        jval obj = eval(R, E, target->a);
        if (obj.t != V_NS) RERR(R, line, "cannot assign attribute on non-namespace object");
        if (target->b->type != N_IDENT) RERR(R, line, "cannot assign to a member with a non-identifier property");
        m_set(R, obj.u.m, target->b->s, target->b->n, v);
    } else {
        RERR(R, line, "invalid left-hand side in assignment");
    }
}

static void exec_for(rctx *R, env *E, const node *x, sb *out) {
    env *scope = env_new(R, E);
    const node *itn = x->b, *test = NULL;
    if (itn->type == N_SELECT) { test = itn->b; itn = itn->a; }
    jval it = eval(R, scope, itn);
    if (it.t == V_OBJECT || it.t == V_KWARGS) {
        jval keys = v_list(R, V_ARRAY);
        for (int i = 0; i < it.u.m->n; i++) l_push(R, keys.u.l, v_strn(R, it.u.m->k[i], it.u.m->kn[i]));
        it = keys;
    }
    if (it.t != V_ARRAY) RERR(R, x->line, "expected an iterable or object in the for loop, got %s", type_name(&it));
    jlist items = {0};
    for (int i = 0; i < it.u.l->n; i++) {
        if (test) {
            env *ls = env_new(R, scope);
            assign(R, ls, x->a, it.u.l->v[i], x->line);
            jval t = eval(R, ls, test);
            if (!truthy(&t)) continue;
        }
        l_push(R, &items, it.u.l->v[i]);
    }
    int iterated = 0;
    for (int i = 0; i < items.n; i++) {
        jval loop = v_list(R, V_OBJECT);
        m_set(R, loop.u.m, "index", 5, v_int(i + 1));
        m_set(R, loop.u.m, "index0", 6, v_int(i));
        m_set(R, loop.u.m, "revindex", 8, v_int(items.n - i));
        m_set(R, loop.u.m, "revindex0", 9, v_int(items.n - i - 1));
        m_set(R, loop.u.m, "first", 5, v_bool(i == 0));
        m_set(R, loop.u.m, "last", 4, v_bool(i == items.n - 1));
        m_set(R, loop.u.m, "length", 6, v_int(items.n));
        m_set(R, loop.u.m, "previtem", 8, i > 0 ? items.v[i - 1] : v_undef());
        m_set(R, loop.u.m, "nextitem", 8, i < items.n - 1 ? items.v[i + 1] : v_undef());
        m_set(R, &scope->vars, "loop", 4, loop);
        assign(R, scope, x->a, items.v[i], x->line);
        sb body = SB(R);
        exec_block(R, scope, x->l1, x->n1, &body);
        sb_put(out, body.p ? body.p : "", body.n);
        if (R->cont) { R->cont = 0; continue; }
        if (R->brk) { R->brk = 0; break; }
        iterated = 1;
    }
    if (!iterated) exec_block(R, scope, x->l2, x->n2, out);
}

static jval call_macro(rctx *R, jfunc *f, jval *args, int nargs, int line) {
    const node *m = f->macro;
    env *scope = env_new(R, f->closure);
    int np = npos(args, nargs);
    jmap *kw = np < nargs ? args[nargs - 1].u.m : NULL;
    if (np > m->n2) RERR(R, line, "macro %.*s takes not more than %d argument(s)", (int)m->a->n, m->a->s, m->n2);
    for (int i = 0; i < m->n2; i++) {
        const node *p = m->l2[i];
        jval v = v_undef();
        int have = 0;
        if (i < np) { v = args[i]; have = 1; }
        else if (kw) {
            jval *k = m_get(kw, p->s, p->n);
            if (k) { v = *k; have = 1; }
        }
        if (!have && p->type == N_KWARG) v = eval(R, scope, p->a);
        m_set(R, &scope->vars, p->s, p->n, v);
    }
    sb o = SB(R);
    exec_block(R, scope, m->l1, m->n1, &o);
    jval r = v_strn(R, o.p ? o.p : "", o.n);
    return r;
}

static jval eval_in(rctx *R, env *E, const node *x);

static jval eval(rctx *R, env *E, const node *x) {
    STEP(R, x->line);
    if (++R->depth > MP_JINJA_MAX_EVAL)
        RERR(R, x->line, "template recursion deeper than %d levels (a macro calling itself without end?)",
             MP_JINJA_MAX_EVAL);
    jval v = eval_in(R, E, x);
    R->depth--;
    return v;
}

static jval eval_in(rctx *R, env *E, const node *x) {
    switch (x->type) {
    case N_TEXT: case N_STR: return v_strn(R, x->s, x->n);
    case N_INT: return v_int(x->num);
    case N_FLOAT: return v_float(x->num);
    case N_IDENT: return lookup(E, x->s, x->n);
    case N_ARRAY: case N_TUPLE: {
        jval r = v_list(R, V_ARRAY);
        r.is_tuple = x->type == N_TUPLE;
        for (int i = 0; i < x->n1; i++) l_push(R, r.u.l, eval(R, E, x->l1[i]));
        return r;
    }
    case N_OBJECT: {
        jval r = v_list(R, V_OBJECT);
        for (int i = 0; i < x->n1; i++) {
            jval k = eval(R, E, x->l1[i]);
            if (k.t != V_STR) RERR(R, x->line, "object keys must be strings");
            m_set(R, r.u.m, k.u.s.p, k.u.s.n, eval(R, E, x->l2[i]));
        }
        return r;
    }
    case N_BIN: return eval_bin(R, E, x);
    case N_UNARY: {
        jval a = eval(R, E, x->a);
        if (x->n == 3) return v_bool(!truthy(&a));
        int sign = x->s[0] == '-' ? -1 : 1;
        if (a.t == V_INT || a.t == V_FLOAT || a.t == V_BOOL) {
            double val = a.t == V_BOOL ? a.u.b : a.u.num;
            return a.t == V_FLOAT ? v_float(sign * val) : v_int(sign * val);
        }
        RERR(R, x->line, "unknown operator \"%c\" for %s", x->s[0], type_name(&a));
        return v_undef();
    }
    case N_FILTER: return apply_filter(R, E, eval(R, E, x->a), x->b, x->line);
    case N_TEST: {
        jval a = eval(R, E, x->a);
        int r = test_fn(R, x, &a);
        return v_bool(x->flag ? !r : r);
    }
    case N_CALL: {
        jlist args = {0};
        eval_args(R, E, x->l1, x->n1, &args);
        jval fn = eval(R, E, x->a);
        return call_fn(R, &fn, &args, x->line);
    }
    case N_MEMBER: return eval_member(R, E, x);
    case N_TERNARY: {
        jval c = eval(R, E, x->a);
        return truthy(&c) ? eval(R, E, x->b) : eval(R, E, x->c);
    }
    case N_SELECT: {
        jval c = eval(R, E, x->b);
        return truthy(&c) ? eval(R, E, x->a) : v_undef();
    }
    case N_SLICE: case N_KWARG:
        RERR(R, x->line, "unexpected slice or keyword argument");
        return v_undef();
    default:
        RERR(R, x->line, "a statement where an expression was expected");
        return v_undef();
    }
}

static void exec_block_in(rctx *R, env *E, node **st, int n, sb *out);

static void exec_block(rctx *R, env *E, node **st, int n, sb *out) {
    if (++R->depth > MP_JINJA_MAX_EVAL)
        RERR(R, n ? st[0]->line : 0, "template recursion deeper than %d levels (a macro calling itself without end?)",
             MP_JINJA_MAX_EVAL);
    exec_block_in(R, E, st, n, out);
    R->depth--;
}

static void exec_block_in(rctx *R, env *E, node **st, int n, sb *out) {
    for (int i = 0; i < n && !R->brk && !R->cont; i++) {
        const node *x = st[i];
        STEP(R, x->line);
        switch (x->type) {
        case N_COMMENT: break;
        case N_TEXT: sb_put(out, x->s, x->n); break;
        case N_IF: {
            jval t = eval(R, E, x->a);
            if (truthy(&t)) exec_block(R, E, x->l1, x->n1, out);
            else exec_block(R, E, x->l2, x->n2, out);
            break;
        }
        case N_FOR: exec_for(R, E, x, out); break;
        case N_SET: {
            jval v;
            if (x->b) {
                v = eval(R, E, x->b);
            } else {
                sb o = SB(R);
                exec_block(R, E, x->l1, x->n1, &o);
                v = v_strn(R, o.p ? o.p : "", o.n);
            }
            assign(R, E, x->a, v, x->line);
            break;
        }
        case N_MACRO: {
            jval fn = v_func(R, "macro", call_macro, NULL);
            fn.u.f->macro = x;
            fn.u.f->closure = E;
            m_set(R, &E->vars, x->a->s, x->a->n, fn);
            break;
        }
        case N_BREAK: R->brk = 1; break;
        case N_CONTINUE: R->cont = 1; break;
        default: {
            jval v = eval(R, E, x);
            if (v.t != V_NULL && v.t != V_UNDEF) to_string(R, &v, out);
        }
        }
    }
}

/* ================================================================ rendering */

static jval from_cjson(rctx *R, const cJSON *j) {
    if (!j || cJSON_IsNull(j)) return v_null();
    if (cJSON_IsBool(j)) return v_bool(cJSON_IsTrue(j));
    if (cJSON_IsNumber(j)) {
        double d = j->valuedouble;
        return d == floor(d) && fabs(d) < 9007199254740992.0 ? v_int(d) : v_float(d);
    }
    if (cJSON_IsString(j)) return v_str(R, j->valuestring);
    if (cJSON_IsArray(j)) {
        jval r = v_list(R, V_ARRAY);
        const cJSON *it;
        cJSON_ArrayForEach(it, j) l_push(R, r.u.l, from_cjson(R, it));
        return r;
    }
    if (cJSON_IsObject(j)) {
        jval r = v_list(R, V_OBJECT);
        const cJSON *it;
        cJSON_ArrayForEach(it, j) m_set(R, r.u.m, it->string, strlen(it->string), from_cjson(R, it));
        return r;
    }
    return v_undef();
}

int mp_jinja_render(const mp_jinja *t, const cJSON *vars, int64_t now_unix, char **out, mp_error *err) {
    *out = NULL;
    rctx *R = calloc(1, sizeof *R);
    if (!R) return mp_errf(err, "%s: out of memory", t->name);
    R->err = err;
    R->name = t->name;
    R->now = now_unix;
    R->max_steps = t->max_steps > 0 ? t->max_steps : MP_JINJA_DEFAULT_MAX_STEPS;
    R->ar.limit = t->max_bytes > 0 ? t->max_bytes : MP_JINJA_DEFAULT_MAX_BYTES;
    sb o = SB(R);
    int rc = setjmp(R->jb);
    if (rc == 0) {
        env *g = env_new(R, NULL);
        m_set(R, &g->vars, "namespace", 9, v_func(R, "namespace", g_namespace, NULL));
        m_set(R, &g->vars, "true", 4, v_bool(1));
        m_set(R, &g->vars, "false", 5, v_bool(0));
        m_set(R, &g->vars, "True", 4, v_bool(1));
        m_set(R, &g->vars, "False", 5, v_bool(0));
        m_set(R, &g->vars, "none", 4, v_null());
        m_set(R, &g->vars, "None", 4, v_null());
        m_set(R, &g->vars, "raise_exception", 15, v_func(R, "raise_exception", g_raise, NULL));
        m_set(R, &g->vars, "range", 5, v_func(R, "range", g_range, NULL));
        m_set(R, &g->vars, "strftime_now", 12, v_func(R, "strftime_now", g_strftime, NULL));
        const cJSON *it;
        if (vars) cJSON_ArrayForEach(it, vars) m_set(R, &g->vars, it->string, strlen(it->string), from_cjson(R, it));
        sb_put(&o, "", 0);
        exec_block(R, g, t->root->l1, t->root->n1, &o);
    }
    if (rc == 2) mp_errf(err, "%s: out of memory", t->name);
    if (rc == 3)
        mp_errf(err, "%s: the template needs more than %zu MiB of memory to render (output growing without end?)",
                t->name, R->ar.limit >> 20);
    char *res = rc ? NULL : strdup(o.p ? o.p : "");
    ar_free(&R->ar);
    free(R);
    if (rc) return -1;
    if (!res) return mp_errf(err, "%s: out of memory", t->name);
    *out = res;
    return 0;
}

/* ================================================================ chat helpers */

mp_chat_params mp_chat_default_params(void) {
    mp_chat_params p;
    memset(&p, 0, sizeof p);
    p.add_generation_prompt = 1;
    return p;
}

cJSON *mp_chat_messages_json(const mp_chat_msg *msgs, int n_msgs) {
    cJSON *arr = cJSON_CreateArray();
    if (!arr) return NULL;
    for (int i = 0; i < n_msgs; i++) {
        cJSON *m = cJSON_CreateObject();
        cJSON_AddItemToArray(arr, m);
        cJSON_AddStringToObject(m, "role", msgs[i].role ? msgs[i].role : "user");
        if (msgs[i].n_parts > 0) {
            cJSON *c = cJSON_AddArrayToObject(m, "content");
            for (int k = 0; k < msgs[i].n_parts; k++) {
                cJSON *p = cJSON_CreateObject();
                cJSON_AddItemToArray(c, p);
                cJSON_AddStringToObject(p, "type", msgs[i].parts[k].type ? msgs[i].parts[k].type : "text");
                if (msgs[i].parts[k].text) cJSON_AddStringToObject(p, "text", msgs[i].parts[k].text);
            }
        } else {
            cJSON_AddStringToObject(m, "content", msgs[i].content ? msgs[i].content : "");
        }
    }
    return arr;
}

int mp_chat_apply(const char *tmpl, const mp_chat_msg *msgs, int n_msgs, const mp_chat_params *p, char **out,
                  mp_error *err) {
    *out = NULL;
    mp_chat_params def = mp_chat_default_params();
    if (!p) p = &def;
    mp_jinja *t;
    if (mp_jinja_parse(&t, tmpl, "chat template", err)) return -1;
    cJSON *vars = p->extra ? cJSON_Duplicate(p->extra, 1) : cJSON_CreateObject();
    if (!vars) { mp_jinja_free(t); return mp_errf(err, "chat template: out of memory"); }
    cJSON_DeleteItemFromObject(vars, "messages");
    cJSON_AddItemToObject(vars, "messages", mp_chat_messages_json(msgs, n_msgs));
    if (p->bos_token) cJSON_AddStringToObject(vars, "bos_token", p->bos_token);
    if (p->eos_token) cJSON_AddStringToObject(vars, "eos_token", p->eos_token);
    cJSON_DeleteItemFromObject(vars, "add_generation_prompt");
    cJSON_AddBoolToObject(vars, "add_generation_prompt", p->add_generation_prompt);
    int rc = mp_jinja_render(t, vars, p->now_unix, out, err);
    cJSON_Delete(vars);
    mp_jinja_free(t);
    return rc;
}

static int dup_template(const cJSON *v, const char *src, char **tmpl, mp_error *err) {
    if (cJSON_IsString(v)) {
        *tmpl = strdup(v->valuestring);
        return *tmpl ? 0 : mp_errf(err, "%s: out of memory", src);
    }
    if (cJSON_IsArray(v)) { /* [{"name": "default", "template": ...}, ...] */
        const cJSON *it, *first = NULL;
        cJSON_ArrayForEach(it, v) {
            const cJSON *nm = cJSON_GetObjectItemCaseSensitive(it, "name"), *tp = cJSON_GetObjectItemCaseSensitive(it, "template");
            if (!cJSON_IsString(tp)) continue;
            if (!first) first = tp;
            if (cJSON_IsString(nm) && !strcmp(nm->valuestring, "default")) return dup_template(tp, src, tmpl, err);
        }
        if (first) return dup_template(first, src, tmpl, err);
    }
    return mp_errf(err, "%s: chat_template is neither a string nor a list of named templates", src);
}

int mp_chat_template_load_hf(const char *dir, char **tmpl, mp_error *err) {
    *tmpl = NULL;
    static const char *files[] = {"chat_template.jinja", "chat_template.json", "tokenizer_config.json"};
    char path[4096];
    for (int i = 0; i < 3; i++) {
        if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, files[i]) >= sizeof path) return mp_errf(err, "%s: path too long", dir);
        if (!mp_is_file(path)) continue;
        char *buf;
        size_t n;
        if (mp_read_file(path, (size_t)1 << 28, &buf, &n, err)) return -1;
        if (i == 0) { *tmpl = buf; return 0; }
        cJSON *j = cJSON_ParseWithLength(buf, n);
        free(buf);
        if (!j) return mp_errf(err, "%s: not valid JSON", path);
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "chat_template");
        int rc = 1;
        if (v && !cJSON_IsNull(v)) rc = dup_template(v, path, tmpl, err);
        cJSON_Delete(j);
        if (rc <= 0) return rc;
    }
    return mp_errf(err, "%s: no chat template (chat_template.jinja, chat_template.json or tokenizer_config.json)", dir);
}

int mp_chat_template_from_gguf(const struct mp_gguf *g, char **tmpl, mp_error *err) {
    *tmpl = NULL;
    const char *s;
    if (!mp_gguf_has(g, "tokenizer.chat_template"))
        return mp_errf(err, "%s: no tokenizer.chat_template", mp_gguf_path(g));
    if (mp_gguf_get_str(g, "tokenizer.chat_template", &s, err)) return -1;
    *tmpl = strdup(s);
    return *tmpl ? 0 : mp_errf(err, "%s: out of memory", mp_gguf_path(g));
}
