/* llama.cpp's tokenizer test vectors (models/ggml-vocab-*.gguf.inp/.out, expected ids from HF
 * tokenizers with add_special=false, parse_special=false): every vector of every vocab GGUF present
 * must match exactly. The qwen2 vectors run on Qwen2-VL's vocab.json + merges.txt (its GGUF is absent). */
#include "llm/tokenizer.h"
#include "models/gguf.h"
#include "models/mmap.h"
#include "test.h"

static int n_files_run = 0;

/* Runs one .inp/.out pair; returns the number of failing vectors (-1 if the files are absent). */
static int run_vectors(const mp_tokenizer *t, const char *inp_path, const char *out_path, const char *label) {
    char *inp, *outs;
    size_t ni, no;
    mp_error err;
    if (mp_read_file(inp_path, 1 << 24, &inp, &ni, &err)) return -1;
    if (mp_read_file(out_path, 1 << 24, &outs, &no, &err)) { free(inp); return -1; }
    const char *sep = "\n__ggml_vocab_test__\n";
    size_t seplen = strlen(sep);
    char *ip = inp, *op = outs;
    int n_fail = 0, n_total = 0;
    while (ip < inp + ni) {
        char *next = strstr(ip, sep);
        size_t tl = next ? (size_t)(next - ip) : (size_t)(inp + ni - ip);
        char *eol = strchr(op, '\n');
        if (!eol) eol = op + strlen(op);
        int32_t want[1024];
        int nw = 0;
        for (char *q = op; q < eol && nw < 1024;) {
            char *e;
            long v = strtol(q, &e, 10);
            if (e == q) break;
            want[nw++] = (int32_t)v;
            q = e;
        }
        int32_t got[1024];
        int ng = mp_tokenize(t, ip, tl, 0, 0, got, 1024);
        int ok = ng == nw;
        for (int i = 0; ok && i < ng; i++) ok = got[i] == want[i];
        n_total++;
        if (!ok) {
            n_fail++;
            fprintf(stderr, "%s: vector %d \"%.*s\":\n  want", label, n_total, (int)(tl > 60 ? 60 : tl), ip);
            for (int i = 0; i < nw; i++) fprintf(stderr, " %d", want[i]);
            fprintf(stderr, "\n  got ");
            for (int i = 0; i < ng && i < 1024; i++) fprintf(stderr, " %d", got[i]);
            fprintf(stderr, "\n");
        }
        op = *eol ? eol + 1 : eol;
        if (!next) break;
        ip = next + seplen;
    }
    fprintf(stderr, "%s: %d/%d vectors match\n", label, n_total - n_fail, n_total);
    free(inp);
    free(outs);
    n_files_run++;
    return n_fail;
}

static void gguf_case(const char *name) {
    char rel[256], inp[512], out[512];
    snprintf(rel, sizeof rel, "gguf/ggml-vocab-%s.gguf", name);
    const char *path = mp_fixture(rel);
    if (!mp_is_file(path)) { fprintf(stderr, "%s: absent, skipped\n", rel); return; }
    snprintf(inp, sizeof inp, "%s.inp", path);
    snprintf(out, sizeof out, "%s.out", path);
    mp_gguf *g;
    mp_error err;
    if (mp_gguf_open(&g, path, &err)) { CHECKF(0, "%s", err.msg); return; }
    mp_tokenizer *t;
    if (mp_tokenizer_load_gguf(&t, g, &err)) { CHECKF(0, "%s", err.msg); mp_gguf_free(g); return; }
    int nf = run_vectors(t, inp, out, name);
    if (nf >= 0) CHECKF(nf == 0, "%s: %d vectors differ", name, nf);
    mp_tokenizer_free(t);
    mp_gguf_free(g);
}

int main(int argc, char **argv) {
    static const char *names[] = {"llama-spm", "phi-3", "gpt-2", "starcoder", "refact", "mpt", "falcon",
                                  "deepseek-llm", "deepseek-coder", "bert-bge", "command-r", "qwen2",
                                  "llama-bpe", "gemma-4", "qwen35", "baichuan", "gpt-neox"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (argc < 2 || strcmp(argv[1], names[i]) == 0) gguf_case(names[i]);
    /* Qwen2 vectors with the Qwen2-VL vocab.json + merges.txt */
    if (argc < 2 || strcmp(argv[1], "qwen2-hf") == 0) {
        const char *dir = mp_fixture("hf/Qwen--Qwen2-VL-2B-Instruct");
        mp_tokenizer *t;
        mp_error err;
        if (mp_is_dir(dir)) {
            if (mp_tokenizer_load_hf(&t, dir, &err)) {
                CHECKF(0, "%s", err.msg);
            } else {
                int nf = run_vectors(t, mp_fixture("gguf/ggml-vocab-qwen2.gguf.inp"),
                                     mp_fixture("gguf/ggml-vocab-qwen2.gguf.out"), "qwen2 (vocab.json+merges.txt)");
                if (nf >= 0) CHECKF(nf == 0, "qwen2: %d vectors differ", nf);
                mp_tokenizer_free(t);
            }
        }
    }
    if (n_files_run == 0) { fprintf(stderr, "no vocab fixtures found\n"); return MP_TEST_SKIP; }
    return mp_test_result("test_tokenizer_vectors");
}
