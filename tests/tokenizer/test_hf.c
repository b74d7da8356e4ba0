/* HF tokenizer.json folders vs HF tokenizers' Rust core (@anush008/tokenizers, run with node from
 * tests/js): identical ids with and without the post-processor's special tokens, and identical
 * decoded text, for tricky strings (tricky_strings.json) plus llama.cpp's vocab test inputs. Added
 * tokens are always matched (HF's default), i.e. parse_special = 1. */
#include "llm/tokenizer.h"
#include "models/mmap.h"
#include "test.h"

#include <cjson/cJSON.h>
#include <unistd.h>

static char strings_path[4096];

/* All test strings as a JSON array file (tricky_strings.json + the llama.cpp .inp strings). */
static cJSON *load_strings(void) {
    char *buf;
    size_t n;
    mp_error err;
    if (mp_read_file(MP_SOURCE_DIR "/tests/tokenizer/tricky_strings.json", 1 << 20, &buf, &n, &err)) return NULL;
    cJSON *arr = cJSON_ParseWithLength(buf, n);
    free(buf);
    if (!arr) return NULL;
    if (!mp_read_file(mp_fixture("gguf/ggml-vocab-gpt-2.gguf.inp"), 1 << 20, &buf, &n, &err)) {
        const char *sep = "\n__ggml_vocab_test__\n";
        for (char *p = buf; p < buf + n;) {
            char *e = strstr(p, sep);
            if (e) *e = 0;
            cJSON_AddItemToArray(arr, cJSON_CreateString(p));
            if (!e) break;
            p = e + strlen(sep);
        }
        free(buf);
    }
    return arr;
}

static int read_ids(const cJSON *a, int32_t *ids, int cap) {
    int n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, a) if (n < cap) ids[n++] = (int32_t)it->valuedouble;
    return n;
}

static void check_folder(const char *rel, const cJSON *strs) {
    const char *dir = mp_fixture(rel);
    char tj[4096];
    snprintf(tj, sizeof tj, "%s/tokenizer.json", dir);
    if (!mp_is_file(tj)) { fprintf(stderr, "%s: absent, skipped\n", rel); return; }
    char cmd[12288];
    snprintf(cmd, sizeof cmd, "cd '%s/tests/js' && node tok_ref.js '%s' '%s'", MP_SOURCE_DIR, tj, strings_path);
    FILE *p = popen(cmd, "r");
    if (!p) { CHECKF(0, "cannot run node"); return; }
    size_t cap = 1 << 20, len = 0;
    char *out = malloc(cap);
    size_t k;
    while ((k = fread(out + len, 1, cap - len - 1, p)) > 0) {
        len += k;
        if (len + 1 == cap) out = realloc(out, cap *= 2);
    }
    out[len] = 0;
    int st = pclose(p);
    cJSON *ref = st == 0 ? cJSON_Parse(out) : NULL;
    free(out);
    if (!ref) { CHECKF(0, "%s: reference run failed (status %d)", rel, st); return; }
    mp_tokenizer *t;
    mp_error err;
    if (mp_tokenizer_load_hf(&t, dir, &err)) { CHECKF(0, "%s", err.msg); cJSON_Delete(ref); return; }
    int i = 0, n_ok = 0, n_all = 0;
    const cJSON *s;
    cJSON_ArrayForEach(s, strs) {
        const cJSON *r = cJSON_GetArrayItem(ref, i++);
        const char *text = s->valuestring;
        for (int special = 0; special < 2; special++) {
            int32_t want[2048], got[2048];
            int nw = read_ids(cJSON_GetArrayItem(r, special), want, 2048);
            int ng = mp_tokenize(t, text, strlen(text), special, 1, got, 2048);
            int ok = ng == nw;
            for (int j = 0; ok && j < ng; j++) ok = got[j] == want[j];
            n_all++;
            n_ok += ok;
            if (!ok) {
                fprintf(stderr, "%s: \"%s\" (add_special=%d)\n  want", rel, text, special);
                for (int j = 0; j < nw; j++) fprintf(stderr, " %d", want[j]);
                fprintf(stderr, "\n  got ");
                for (int j = 0; j < ng && j < 2048; j++) fprintf(stderr, " %d", got[j]);
                fprintf(stderr, "\n");
            }
            CHECK(ok);
            if (special) continue;
            /* decoding our ids (specials shown) gives HF's decode of its ids */
            mp_detok d;
            mp_detok_init(&d, t, 0);
            char dec[16384];
            int w = 0;
            for (int j = 0; j < ng && ng <= 2048 && w >= 0; j++) {
                int m = mp_detok_push(&d, got[j], dec + w, (int)sizeof dec - w);
                w = m < 0 ? -1 : w + m;
            }
            if (w >= 0) {
                int m = mp_detok_flush(&d, dec + w, (int)sizeof dec - w);
                w = m < 0 ? -1 : w + m;
            }
            const cJSON *hd = cJSON_GetArrayItem(r, 2);
            CHECKF(w >= 0 && cJSON_IsString(hd) && strcmp(dec, hd->valuestring) == 0, "%s: decode of \"%s\": \"%s\" vs HF \"%s\"",
                   rel, text, w >= 0 ? dec : "(error)", cJSON_IsString(hd) ? hd->valuestring : "?");
        }
    }
    fprintf(stderr, "%s: %d/%d encodings identical to HF tokenizers\n", rel, n_ok, n_all);
    mp_tokenizer_free(t);
    cJSON_Delete(ref);
}

int main(void) {
    if (system("node --version > /dev/null 2>&1") != 0 ||
        access(MP_SOURCE_DIR "/tests/js/node_modules/@anush008/tokenizers/package.json", R_OK) != 0) {
        fprintf(stderr, "node or tests/js/node_modules (scripts/setup.sh) missing: skipped\n");
        return MP_TEST_SKIP;
    }
    cJSON *strs = load_strings();
    if (!strs) { fprintf(stderr, "cannot read the test strings\n"); return 1; }
    char *js = cJSON_Print(strs);
    snprintf(strings_path, sizeof strings_path, "/tmp/mp_tok_strings_%d.json", (int)getpid());
    FILE *f = fopen(strings_path, "wb");
    if (!f || !js) return 1;
    fputs(js, f);
    fclose(f);
    free(js);
    check_folder("hf/HuggingFaceTB--SmolVLM-256M-Instruct", strs);
    check_folder("hf/ibm-granite--granite-3.1-1b-a400m-instruct", strs);
    check_folder("hf/lora-smollm2-360m-instruct-ml-tutor", strs);
    check_folder("hf/openai--whisper-base", strs);
    remove(strings_path);
    cJSON_Delete(strs);
    return mp_test_result("test_tokenizer_hf");
}
