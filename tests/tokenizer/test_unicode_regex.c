/* Unicode tables (categories, case, NFD/NFC vs Python's unicodedata at test time) and the
 * pre-tokenizer regex engine (Oniguruma semantics on hand-checked cases, errors, long inputs). */
#include "llm/tokenizer_int.h"
#include "test.h"

#include <cjson/cJSON.h>

static int to_cps(const char *s, int32_t *cps, int cap) {
    int n = 0;
    size_t len = strlen(s);
    for (size_t i = 0; i < len && n < cap;) {
        int32_t cp;
        i += (size_t)tok_utf8_decode((const unsigned char *)s + i, len - i, &cp);
        cps[n++] = cp;
    }
    return n;
}

static void test_tables(void) {
    CHECK_EQ_INT(mp_unicode_category('A'), UC_Lu);
    CHECK_EQ_INT(mp_unicode_category('a'), UC_Ll);
    CHECK_EQ_INT(mp_unicode_category('7'), UC_Nd);
    CHECK_EQ_INT(mp_unicode_category(0x216B), UC_Nl);  /* Ⅻ */
    CHECK_EQ_INT(mp_unicode_category(0xBD), UC_No);    /* ½ */
    CHECK_EQ_INT(mp_unicode_category(0xA0), UC_Zs);
    CHECK_EQ_INT(mp_unicode_category(0x1F600), UC_So);
    CHECK_EQ_INT(mp_unicode_category(0x301), UC_Mn);
    CHECK_EQ_INT(mp_unicode_category(0x4E00), UC_Lo);
    CHECK_EQ_INT(mp_unicode_category(0xE000), UC_Co);
    CHECK_EQ_INT(mp_unicode_category(0x10FFFF), UC_Cn);
    CHECK_EQ_INT(mp_unicode_category(-5), UC_Cn);
    CHECK_EQ_INT(mp_unicode_category(0x110000), UC_Cn);
    CHECK(mp_unicode_is_space(0x85) && mp_unicode_is_space(0x3000) && mp_unicode_is_space('\v'));
    CHECK(!mp_unicode_is_space(0x1C) && !mp_unicode_is_space(0x200B) && !mp_unicode_is_space(0xFEFF));
    CHECK_EQ_INT(mp_unicode_tolower(0x130), 'i');
    CHECK_EQ_INT(mp_unicode_tolower(0x3A3), 0x3C3);
    CHECK_EQ_INT(mp_unicode_toupper(0xDF), 0xDF);
    CHECK_EQ_INT(mp_unicode_toupper(0x1C6), 0x1C4);
    CHECK(mp_unicode_category_mask("L", 1) == UC_L && mp_unicode_category_mask("Nd", 2) == UC_MASK(UC_Nd));
    CHECK(mp_unicode_category_mask("Han", 3) == 0);
}

/* NFD/NFC and categories against Python's unicodedata */
static void test_vs_python(void) {
    const char *strs[] = {"e\xCC\x81", "\xC3\xA9", "e\xCC\xA3\xCC\x81", "\xE1\xBA\xB9\xCC\x81", "\xEA\xB0\x80\xEA\xB0\x81",
                          "\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8", "\xE2\x84\xAB \xE2\x84\xA6", "\xE1\xBD\xBD\xE1\xBE\xBE",
                          "a\xCC\x88\xCC\xA3o\xCC\x9B\xCC\x81", "\xEF\xAC\x80 \xE2\x91\xA0 \xC7\x85", "\xE0\xA4\x95\xE0\xA4\xBC",
                          "\xF0\x9D\x85\x9E \xF0\x9F\x98\x80", "\xE0\xBD\xB3\xE0\xBE\x81", "A\xCC\x8A\xCC\x81 \xC3\x85\xCC\x81"};
    int ns = (int)(sizeof strs / sizeof strs[0]);
    char in_path[] = "/tmp/mp_uni_in_XXXXXX";
    int fd = mkstemp(in_path);
    if (fd < 0) { CHECK(0); return; }
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; i < ns; i++) cJSON_AddItemToArray(arr, cJSON_CreateString(strs[i]));
    char *js = cJSON_PrintUnformatted(arr);
    FILE *f = fdopen(fd, "w");
    fputs(js, f);
    fclose(f);
    free(js);
    cJSON_Delete(arr);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s %s/tests/tokenizer/unicode_ref.py < %s", MP_PYTHON, MP_SOURCE_DIR, in_path);
    FILE *p = popen(cmd, "r");
    char buf[65536];
    size_t n = p ? fread(buf, 1, sizeof buf - 1, p) : 0;
    int st = p ? pclose(p) : -1;
    remove(in_path);
    buf[n] = 0;
    cJSON *ref = st == 0 ? cJSON_Parse(buf) : NULL;
    if (!ref) { fprintf(stderr, "python reference unavailable: NFD/NFC comparison skipped\n"); return; }
    static const char *cat_names[UC_COUNT] = {"Cn", "Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "Nd",
                                              "Nl", "No", "Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po", "Sm",
                                              "Sc", "Sk", "So", "Zs", "Zl", "Zp", "Cc", "Cf", "Cs", "Co"};
    for (int i = 0; i < ns; i++) {
        int32_t cps[64];
        int nc = to_cps(strs[i], cps, 64);
        const cJSON *r = cJSON_GetArrayItem(ref, i);
        for (int form = 0; form < 2; form++) {
            int nn;
            int32_t *o = mp_unicode_normalize(cps, nc, form ? 'C' : 'D', &nn);
            const cJSON *want = cJSON_GetArrayItem(r, form);
            int ok = o && nn == cJSON_GetArraySize(want);
            for (int k = 0; ok && k < nn; k++) ok = o[k] == (int32_t)cJSON_GetArrayItem(want, k)->valuedouble;
            CHECKF(ok, "string %d: NF%c differs from Python", i, form ? 'C' : 'D');
            free(o);
        }
        const cJSON *cats = cJSON_GetArrayItem(r, 2);
        for (int k = 0; k < nc; k++)
            CHECKF(!strcmp(cat_names[mp_unicode_category(cps[k])], cJSON_GetArrayItem(cats, k)->valuestring),
                   "U+%04X: category %s, Python %s", cps[k], cat_names[mp_unicode_category(cps[k])],
                   cJSON_GetArrayItem(cats, k)->valuestring);
    }
    cJSON_Delete(ref);
}

static void re_case(const char *pat, const char *subj, int ws, int we) {
    char e[256];
    tok_regex *re = tok_regex_compile(pat, e, sizeof e);
    CHECKF(re != NULL, "/%s/: %s", pat, e);
    if (!re) return;
    int32_t cps[256];
    int n = to_cps(subj, cps, 256), s = -1, en = -1;
    int f = tok_regex_search(re, cps, n, 0, &s, &en);
    if (ws < 0) CHECKF(f == 0, "/%s/ on \"%s\": matched [%d,%d), expected no match", pat, subj, s, en);
    else CHECKF(f == 1 && s == ws && en == we, "/%s/ on \"%s\": [%d,%d) (found %d), expected [%d,%d)", pat, subj, s, en, f, ws, we);
    tok_regex_free(re);
}

static void re_bad(const char *pat, const char *what) {
    char e[256];
    tok_regex *re = tok_regex_compile(pat, e, sizeof e);
    CHECKF(re == NULL && strstr(e, what), "/%s/ should fail with \"%s\", got \"%s\"", pat, what, re ? "(compiled)" : e);
    tok_regex_free(re);
}

static void test_regex(void) {
    re_case("\\s+(?!\\S)", "   x", 0, 2);
    re_case("\\s+(?!\\S)|\\s+", " x", 0, 1);
    re_case("a*?b", "aaab", 0, 4);
    re_case("a+?", "aaa", 0, 1);
    re_case("(?i:'s|'t)", "IT'S", 2, 4);
    re_case("(?i)hello", "say HeLLo", 4, 9);
    re_case("\\p{N}{1,3}", "x12345", 1, 4);
    re_case("\\p{N}{2}", "1x23", 2, 4);
    re_case("[^\\s\\p{L}\\p{N}]+", "ab!!?c", 2, 5);
    re_case("x++x", "xxx", -1, -1);
    re_case("(?>a+)b", "aaab", 0, 4);
    re_case("(?>a|ab)c", "abc", -1, -1);
    re_case("(a|ab)c", "abc", 0, 3);
    re_case("\\s+$", "ab  ", 2, 4);
    re_case("b$", "ab\ncd", 1, 2); /* Ruby: $ at a line end */
    re_case("^c", "ab\ncd", 3, 4);
    re_case("[\\x{4E00}-\\x{9FA5}]+", "abc\xE4\xB8\xAD\xE6\x96\x87" "def", 3, 5);
    re_case("(?:a?)*b", "aab", 0, 3);
    re_case("(?:a*)*c", "aaac", 0, 4);
    re_case("\\d{1,3}(?=(?:\\d{3})*\\b)", "1234567", 0, 1);
    re_case("[a-c&]+", "x&ab", 1, 4);
    re_case("[]a]+", "x]a]", 1, 4);
    re_case("[\\]\\-]+", "a-]-", 1, 4);
    re_case(" ?[^(\\s|.,!?)]+", "hi, you", 0, 2);
    re_case("\\p{Lu}\\p{Ll}+", "abcDef", 3, 6);
    re_case("[\\p{L}\\p{M}]+", "e\xCC\x81t\xC3\xA9!", 0, 4);
    re_case("a.c", "a\nc abc", 4, 7);
    re_case("\\w+", "--h\xC3\xA9llo_1--", 2, 9);
    re_case("\\bis\\b", "this is", 5, 7);
    re_case("x{2,}", "xxxxx", 0, 5);
    re_case("x{,2}y", "xxxy", 1, 4);
    re_case("a{2", "a{2", 0, 3); /* not a quantifier: literal */
    re_case("\\S+", " \xC2\xA0 \xE3\x80\x80" "ab", 4, 6);
    re_bad("(?<=a)b", "lookbehind");
    re_bad("[a-", "unterminated");
    re_bad("a{2,1}", "bad repeat");
    re_bad("\\p{Foo}", "Unicode property");
    re_bad("(ab", "missing )");
    re_bad("ab)", "unbalanced");
    re_bad("*a", "quantifier");
    re_bad("[z-a]", "empty range");
    re_bad("[a&&b]", "intersection");
    /* long inputs: no recursion on the C stack, linear time */
    int n = 200000;
    int32_t *big = malloc((size_t)n * sizeof *big);
    for (int i = 0; i < n; i++) big[i] = i % 1000 == 999 ? ' ' : 'a' + i % 26;
    char e[128];
    tok_regex *re = tok_regex_compile(" ?\\p{L}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+", e, sizeof e);
    int pos = 0, s, en, count = 0;
    while (pos < n && tok_regex_search(re, big, n, pos, &s, &en) == 1) { pos = en; count++; }
    CHECK_EQ_INT(count, 201); /* 200 words (199 with their leading space) + the final space */
    for (int i = 0; i < n; i++) big[i] = 'a';
    CHECK(tok_regex_search(re, big, n, 0, &s, &en) == 1 && s == 0 && en == n);
    tok_regex_free(re);
    free(big);
}

int main(void) {
    test_tables();
    test_vs_python();
    test_regex();
    return mp_test_result("test_tokenizer_unicode");
}
