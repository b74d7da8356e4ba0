/* test_caption.c — the captioning pipeline (runtime/caption.h) and `mmpipe caption` on a tiny random
 * SmolVLM written by the test (smolvlm_fixture.h; its per-stage agreement with the PyTorch reference is
 * test_smolvlm_ref's job):
 *  - each image captioned alone == all images in one call (greedy, and seeded sampling): vision batches
 *    that cross image boundaries, more images than decoding slots (queueing), failing files in between;
 *  - a missing file and a corrupt PNG fail alone with a message naming the file;
 *  - the caption of an image equals a plain greedy loop over the decoder fed with the same prompt items;
 *  - without the worker thread == with it;
 *  - the CLI: plain "FILE: caption" lines and --json objects carry the library's captions, exit code 1
 *    when a file failed, 0 otherwise; the GGUF text model + mmproj gives the same captions as the HF
 *    folder. */
#include "test.h"

#include "smolvlm_fixture.h"

#include "llm/kvcache.h"
#include "llm/llama.h"
#include "runtime/caption.h"

#include <sys/wait.h>
#include <unistd.h>

#define N_NEW 10

static const char *img_file(const char *p) { return p[0] == '/' ? p : mp_fixture(p); }

static void free_results(mp_caption_result *r, int n) {
    for (int i = 0; i < n; i++) mp_caption_result_free(&r[i]);
}

/* greedy loop over the decoder with the prompt items of image `path`, stopping at EOS like the engine */
static int greedy_direct(const mp_vlm *m, mp_exec *ex, const char *path, int n_new, int32_t *out) {
    mp_error err = {{0}};
    mp_image img;
    if (mp_image_load(path, NULL, &img, &err)) return -1;
    float *tiles = NULL;
    mp_idefics3_plan plan;
    int rc = mp_vlm_preprocess(m, &img, -1, &tiles, &plan, &err);
    mp_image_free(&img);
    if (rc) return -1;
    const int rows = plan.n_tiles * m->vis.image_seq_len;
    float *emb = malloc(sizeof(float) * (size_t)rows * m->vis.n_embd_text);
    mp_idefics3_state st = {0};
    rc = mp_idefics3_encode(&m->vis, &st, ex, tiles, plan.n_tiles, emb, NULL, &err);
    mp_idefics3_state_free(&st, ex);
    free(tiles);
    char *chat = NULL, *text = NULL;
    int32_t *ids = NULL, *toks = NULL;
    float *embd = NULL;
    int n = 0, ni = 0, got = -1;
    if (rc == 0 && mp_vlm_chat_prompt(m, MP_CAPTION_DEFAULT_PROMPT, &chat, &err) == 0 &&
        mp_vlm_expand_prompt(m, chat, &plan, 1, &text, &err) == 0 && mp_vlm_tokenize(m, text, &ids, &n, &ni, &err) == 0 &&
        mp_vlm_items(m, ids, n, emb, rows, &toks, &embd, &err) == 0) {
        const int V = m->llm.cfg.n_vocab;
        mp_kvcache kv;
        mp_llama_state ls = {0};
        float *lg = malloc(sizeof(float) * (size_t)V);
        mp_llama_kvcache_init(&m->llm, &kv, ex, 1, n + n_new + 1, 0, 16, &err);
        int s = mp_kvcache_seq_new(&kv, &err);
        mp_llama_seq q = {s, n, toks, embd, NULL, 1, lg};
        got = 0;
        if (mp_llama_forward(&m->llm, &ls, &kv, ex, &q, 1, &err) == 0) {
            while (got < n_new) {
                int32_t t = (int32_t)mp_argmax(ex, lg, V);
                out[got++] = t;
                if (mp_tokenizer_is_eog(m->tok, t)) break;
                int eos = 0;
                for (int k = 0; k < m->llm.cfg.n_eos; k++) eos |= t == m->llm.cfg.eos_ids[k];
                if (eos) break;
                mp_llama_seq d = {s, 1, &t, NULL, NULL, 1, lg};
                if (mp_llama_forward(&m->llm, &ls, &kv, ex, &d, 1, &err)) break;
            }
        }
        free(lg);
        mp_llama_state_free(&ls, ex);
        mp_kvcache_free(&kv, ex);
    }
    free(chat), free(text), free(ids), free(toks), free(embd), free(emb);
    return got;
}

/* runs the CLI; stdout into out (malloc'd); returns the exit code */
static int run_cli(const char *args, char **out) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s/mmpipe caption %s 2>/dev/null", MP_BINARY_DIR, args);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap);
    size_t k;
    while ((k = fread(b + n, 1, cap - n - 1, p)) > 0) {
        n += k;
        if (n + 1 == cap) b = realloc(b, cap *= 2);
    }
    b[n] = 0;
    *out = b;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int main(void) {
    mp_error err = {{0}};
    if (access(mp_fixture(FX_REAL "/config.json"), R_OK) != 0) {
        fprintf(stderr, "skip: %s not found\n", mp_fixture(FX_REAL "/config.json"));
        return MP_TEST_SKIP;
    }
    char root[512], hf[700], gg[700], mm[700];
    snprintf(root, sizeof root, "%s/test_caption", MP_BINARY_DIR);
    CHECKF(fx_write_all(&fx_tiny, root, 0xca9710ull, 0, &err) == 0, "%s", err.msg);
    snprintf(hf, sizeof hf, "%s/hf", root);
    snprintf(gg, sizeof gg, "%s/text.gguf", root);
    snprintf(mm, sizeof mm, "%s/mmproj.gguf", root);
    mp_threadpool *tp = mp_threadpool_create(2);
    mp_exec ex;
    CHECK(mp_exec_init(&ex, MP_BACKEND_CPU, tp, (size_t)32 << 20, &err) == 0);
    mp_vlm m;
    if (mp_vlm_load(&m, hf, NULL, &ex, &err) != 0) {
        CHECKF(0, "%s", err.msg);
        return mp_test_result("test_caption");
    }

    /* images of 13, 13, 17, 17 and 13 tiles; a missing file and a corrupt PNG in between */
    char missing[700];
    snprintf(missing, sizeof missing, "%s/no_such_image.jpg", root);
    const char *names[] = {"images/chelsea.jpg", "images/testimggray.jpg", missing, "images/hopper.jpg",
                           "images/broken/badcrc.png", "images/pngsuite/basn6a08.png", "images/rocket.jpg"};
    enum { N = 7 };
    const char *files[N];
    for (int i = 0; i < N; i++) files[i] = img_file(names[i]);
    const int bad[N] = {0, 0, 1, 0, 1, 0, 0};

    /* ---- alone */
    mp_caption_params p = mp_caption_default_params(&m);
    p.max_new = N_NEW;
    CHECK(p.sampling.temperature == 0.0f); /* SmolVLM's generation config: greedy */
    mp_caption_result alone[N];
    for (int i = 0; i < N; i++) {
        mp_caption_stats st;
        CHECKF(mp_caption_run(&m, &ex, &files[i], 1, &p, &alone[i], &st, &err) == 0, "%s", err.msg);
        CHECKF(alone[i].ok == !bad[i], "%s: ok %d: %s", names[i], alone[i].ok, alone[i].error);
        if (bad[i]) CHECKF(strstr(alone[i].error, files[i]) != NULL, "error '%s' does not name the file", alone[i].error);
        else CHECKF(alone[i].n_tokens > 0 && alone[i].text, "%s: no caption", names[i]);
    }
    CHECK(alone[0].n_tiles == 13 && alone[0].rows == 3 && alone[0].cols == 4);
    CHECK(alone[3].n_tiles == 17 && alone[3].rows == 4 && alone[3].cols == 4);

    /* ---- the same tokens as a plain greedy loop over the decoder */
    for (int i = 0; i < N; i += 3) {
        if (bad[i]) continue;
        int32_t want[N_NEW];
        int nw = greedy_direct(&m, &ex, files[i], N_NEW, want);
        CHECKF(nw == alone[i].n_tokens && !memcmp(want, alone[i].tokens, sizeof(int32_t) * (size_t)nw),
               "%s: pipeline tokens differ from the direct greedy loop (%d vs %d tokens)", names[i], alone[i].n_tokens, nw);
    }

    /* ---- all together: vision batches of 5 tiles across images, 3 decoding slots */
    const struct { int vt, seqs, overlap; } cfgs[] = {{5, 3, 1}, {0, 16, 1}, {7, 2, 0}};
    for (size_t c = 0; c < sizeof cfgs / sizeof cfgs[0]; c++) {
        mp_caption_params q = p;
        q.vision_tiles = cfgs[c].vt;
        q.max_seqs = cfgs[c].seqs;
        q.overlap = cfgs[c].overlap;
        mp_caption_result all[N];
        mp_caption_stats st;
        CHECKF(mp_caption_run(&m, &ex, files, N, &q, all, &st, &err) == 0, "%s", err.msg);
        int tiles = 0;
        for (int i = 0; i < N; i++) tiles += alone[i].n_tiles;
        CHECKF(st.images == N && st.failed == 2 && st.tiles == tiles, "%lld images, %lld failed, %lld tiles (%d)",
               (long long)st.images, (long long)st.failed, (long long)st.tiles, tiles);
        CHECK(st.gen_tokens > 0 && st.prompt_tokens > tiles * m.vis.image_seq_len && st.t_wall > 0);
        for (int i = 0; i < N; i++) {
            CHECKF(all[i].ok == alone[i].ok, "cfg %zu %s: ok %d vs %d", c, names[i], all[i].ok, alone[i].ok);
            if (!all[i].ok) {
                CHECKF(!strcmp(all[i].error, alone[i].error), "cfg %zu %s: '%s' vs '%s'", c, names[i], all[i].error, alone[i].error);
                continue;
            }
            CHECKF(all[i].n_tokens == alone[i].n_tokens &&
                       !memcmp(all[i].tokens, alone[i].tokens, sizeof(int32_t) * (size_t)all[i].n_tokens) &&
                       !strcmp(all[i].text, alone[i].text),
                   "cfg %zu %s: batched caption differs from alone ('%s' vs '%s')", c, names[i], all[i].text, alone[i].text);
        }
        free_results(all, N);
    }

    /* ---- seeded sampling: batched == alone too (each caption has its own sampler) */
    {
        mp_caption_params q = p;
        q.sampling.temperature = 0.9f;
        q.sampling.top_p = 0.95f;
        q.sampling.seed = 1234;
        mp_caption_result one[2], all[N];
        CHECK(mp_caption_run(&m, &ex, &files[0], 1, &q, &one[0], NULL, &err) == 0);
        CHECK(mp_caption_run(&m, &ex, &files[6], 1, &q, &one[1], NULL, &err) == 0);
        CHECK(mp_caption_run(&m, &ex, files, N, &q, all, NULL, &err) == 0);
        CHECK(one[0].ok && all[0].ok && one[0].n_tokens == all[0].n_tokens && !strcmp(one[0].text, all[0].text));
        CHECK(one[1].ok && all[6].ok && one[1].n_tokens == all[6].n_tokens && !strcmp(one[1].text, all[6].text));
        free_results(one, 2);
        free_results(all, N);
    }

    /* ---- the CLI */
    {
        char args[6000], *out = NULL;
        int w = snprintf(args, sizeof args, "-m %s -n %d -t 2", hf, N_NEW);
        for (int i = 0; i < N; i++) w += snprintf(args + w, sizeof args - (size_t)w, " %s", files[i]);
        int code = run_cli(args, &out);
        CHECK_EQ_INT(code, 1); /* two files failed */
        /* plain: "FILE: caption" lines for the images that worked, in order */
        char *p_ = out;
        for (int i = 0; i < N && out; i++) {
            if (bad[i]) continue;
            char want[3000];
            snprintf(want, sizeof want, "%s: %s\n", files[i], alone[i].text);
            CHECKF(!strncmp(p_, want, strlen(want)), "CLI line %d: '%.200s' wanted '%s'", i, p_, want);
            p_ = strstr(p_, want) ? strstr(p_, want) + strlen(want) : p_;
        }
        free(out);
        /* --json through the GGUF layout: one object per image, errors included */
        w = snprintf(args, sizeof args, "-m %s --mmproj %s -n %d --json", gg, mm, N_NEW);
        for (int i = 0; i < N; i++) w += snprintf(args + w, sizeof args - (size_t)w, " %s", files[i]);
        code = run_cli(args, &out);
        CHECK_EQ_INT(code, 1);
        char *line = out, *save = NULL;
        int k = 0;
        for (char *l = strtok_r(line, "\n", &save); l; l = strtok_r(NULL, "\n", &save), k++) {
            cJSON *j = cJSON_Parse(l);
            CHECKF(j != NULL, "bad JSON line '%s'", l);
            if (!j || k >= N) {
                cJSON_Delete(j);
                continue;
            }
            const cJSON *f = cJSON_GetObjectItemCaseSensitive(j, "file"), *cap = cJSON_GetObjectItemCaseSensitive(j, "text"),
                        *er = cJSON_GetObjectItemCaseSensitive(j, "error"), *tk = cJSON_GetObjectItemCaseSensitive(j, "tokens");
            CHECK(cJSON_IsString(f) && !strcmp(f->valuestring, files[k]));
            if (bad[k]) {
                CHECK(cJSON_IsString(er) && strstr(er->valuestring, files[k]) && !cap);
            } else {
                CHECKF(cJSON_IsString(cap) && !strcmp(cap->valuestring, alone[k].text), "gguf json %d: '%s' vs '%s'", k,
                       cJSON_IsString(cap) ? cap->valuestring : "?", alone[k].text);
                CHECK(cJSON_IsNumber(tk) && tk->valueint == alone[k].n_tokens);
                CHECK(cJSON_GetObjectItemCaseSensitive(j, "timings") != NULL);
            }
            cJSON_Delete(j);
        }
        CHECK_EQ_INT(k, N);
        free(out);
        /* all good files: exit code 0; --no-split: one tile each */
        snprintf(args, sizeof args, "-m %s -n 4 --no-split --json %s %s", hf, files[0], files[3]);
        code = run_cli(args, &out);
        CHECK_EQ_INT(code, 0);
        CHECK(out && strstr(out, "\"tiles\":1") && !strstr(out, "\"tiles\":13"));
        free(out);
        /* usage errors */
        CHECK(run_cli("", &out) != 0);
        free(out);
        snprintf(args, sizeof args, "-m %s", gg);
        CHECK(run_cli(args, &out) != 0);
        free(out);
    }
    free_results(alone, N);
    mp_vlm_free(&m, &ex);
    mp_exec_free(&ex);
    mp_threadpool_free(tp);
    return mp_test_result("test_caption");
}
