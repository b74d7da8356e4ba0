/* test_smolvlm_ref.c — SmolVLM (Idefics3) end to end against an independent PyTorch reference
 * (tests/ref/smolvlm_ref.py, written from transformers' Idefics3 processor and model code) on tiny
 * random-weight models this test writes in both real layouts (smolvlm_fixture.h): an HF folder and a
 * llama.cpp text GGUF + mmproj GGUF holding the same weights.
 *
 * Per real fixture image and per layout, stage by stage: the pixel values after preprocessing (split into
 * tiles + global image; and once without splitting), the vision features, the connector output, the
 * expanded prompt text and its token ids, the decoder logits at every prompt position, and the greedy
 * continuation. Then a BF16 checkpoint (as SmolVLM ships) through the HF layout, and the errors for a
 * text GGUF without --mmproj and a mismatched mmproj. */
#include "test.h"

#include "smolvlm_fixture.h"

#include "llm/kvcache.h"
#include "llm/llama.h"
#include "runtime/vlm.h"

#include <unistd.h>

#define N_GREEDY 6
static const char *const PROMPT = "Can you describe this image?";

/* a fixture path, or an absolute path as is (images the test generated) */
static const char *img_file(const char *p) { return p[0] == '/' ? p : mp_fixture(p); }

static int run_ref(const char *model, const char *out, int split, const char *const *imgs, int n) {
    char cmd[8192];
    int w = snprintf(cmd, sizeof cmd, "%s %s/tests/ref/smolvlm_ref.py %s %s %d '%s'%s", MP_PYTHON, MP_SOURCE_DIR, model, out,
                     N_GREEDY, PROMPT, split ? "" : " --no-split");
    for (int i = 0; i < n; i++) w += snprintf(cmd + w, sizeof cmd - (size_t)w, " %s", img_file(imgs[i]));
    return system(cmd);
}

/* One image through every stage against the reference files PREFIX.<what> */
static void check_image(mp_vlm *m, mp_exec *ex, const char *img_path, int split, const char *prefix, const char *what,
                        double tol) {
    mp_error err = {{0}};
    char p[1200];
    size_t n = 0;
    /* ---- preprocessing */
    mp_image img;
    CHECKF(mp_image_load(img_file(img_path), NULL, &img, &err) == 0, "%s", err.msg);
    float *tiles = NULL;
    mp_idefics3_plan plan;
    CHECKF(mp_vlm_preprocess(m, &img, split, &tiles, &plan, &err) == 0, "%s", err.msg);
    mp_image_free(&img);
    if (!tiles) return;
    snprintf(p, sizeof p, "%s.plan", prefix);
    int rows = -1, cols = -1, nt = -1, th = -1, tw = -1;
    FILE *f = fopen(p, "r");
    CHECKF(f && fscanf(f, "%d %d %d %d %d", &rows, &cols, &nt, &th, &tw) == 5, "%s: no reference plan", what);
    if (f) fclose(f);
    CHECKF(plan.rows == rows && plan.cols == cols && plan.n_tiles == nt && plan.tile_h == th && plan.tile_w == tw,
           "%s: plan %dx%d %d tiles of %dx%d, reference %dx%d %d of %dx%d", what, plan.rows, plan.cols, plan.n_tiles,
           plan.tile_w, plan.tile_h, rows, cols, nt, tw, th);
    if (plan.n_tiles != nt || plan.tile_w != tw) {
        free(tiles);
        return;
    }
    const size_t per = (size_t)3 * tw * th;
    snprintf(p, sizeof p, "%s.pixels", prefix);
    float *ref = mp_test_read_file(p, &n);
    CHECKF(ref && n == per * nt * sizeof(float), "%s: reference pixels", what);
    if (ref && n == per * nt * sizeof(float)) {
        long wi;
        double d = mp_test_max_abs_diff(tiles, ref, (long)(per * nt), &wi);
        CHECKF(d <= 1e-6, "%s: pixel values differ by %.3g at %ld", what, d, wi);
    }
    free(ref);

    /* ---- vision features and connector output */
    const mp_idefics3_vision *v = &m->vis;
    const int D = v->enc.cfg.n_embd, side = tw / v->enc.cfg.patch_size, E = v->n_embd_text;
    mp_idefics3_state st = {0};
    st.max_tiles = 3; /* several batches, the last one short */
    float *feat = malloc(sizeof(float) * (size_t)nt * side * side * D);
    CHECKF(mp_idefics3_features(v, &st, ex, tiles, nt, feat, &err) == 0, "%s", err.msg);
    snprintf(p, sizeof p, "%s.features", prefix);
    ref = mp_test_read_file(p, &n);
    if (ref && n == sizeof(float) * (size_t)nt * side * side * D) {
        double e = mp_test_rel_err(feat, ref, (size_t)nt * side * side * D);
        CHECKF(e < tol, "%s: vision features differ: %.3g", what, e);
    } else {
        CHECKF(0, "%s: reference features", what);
    }
    free(ref);
    const int n_rows = nt * v->image_seq_len;
    float *emb = malloc(sizeof(float) * (size_t)n_rows * E);
    mp_idefics3_timing tm = {0};
    CHECKF(mp_idefics3_encode(v, &st, ex, tiles, nt, emb, &tm, &err) == 0, "%s", err.msg);
    CHECK(tm.tiles == nt && tm.batches == (nt + 2) / 3);
    snprintf(p, sizeof p, "%s.connector", prefix);
    ref = mp_test_read_file(p, &n);
    if (ref && n == sizeof(float) * (size_t)n_rows * E) {
        double e = mp_test_rel_err(emb, ref, (size_t)n_rows * E);
        CHECKF(e < tol, "%s: connector output differs: %.3g", what, e);
    } else {
        CHECKF(0, "%s: reference connector output", what);
    }
    free(ref);
    mp_idefics3_state_free(&st, ex);
    free(feat);
    free(tiles);

    /* ---- prompt */
    char *chat = NULL, *text = NULL;
    CHECKF(mp_vlm_chat_prompt(m, PROMPT, &chat, &err) == 0, "%s", err.msg);
    CHECKF(mp_vlm_expand_prompt(m, chat, &plan, 1, &text, &err) == 0, "%s", err.msg);
    snprintf(p, sizeof p, "%s.prompt", prefix);
    char *rtext = mp_test_read_file(p, &n);
    CHECKF(rtext && text && !strcmp(text, rtext), "%s: expanded prompt differs from the reference", what);
    free(rtext);
    int32_t *ids = NULL;
    int n_ids = 0, n_img = 0;
    CHECKF(text && mp_vlm_tokenize(m, text, &ids, &n_ids, &n_img, &err) == 0, "%s", err.msg);
    CHECK_EQ_INT(n_img, n_rows);
    snprintf(p, sizeof p, "%s.ids", prefix);
    int32_t *rids = mp_test_read_file(p, &n);
    CHECKF(rids && (int)(n / 4) == n_ids && ids && !memcmp(ids, rids, n), "%s: prompt token ids differ (%d vs %d ids)", what,
           n_ids, (int)(n / 4));
    free(rids);
    free(chat), free(text);

    /* ---- decoder: logits at every position, greedy continuation */
    int32_t *toks = NULL;
    float *embd = NULL;
    CHECKF(ids && mp_vlm_items(m, ids, n_ids, emb, n_rows, &toks, &embd, &err) == 0, "%s", err.msg);
    if (toks) {
        const int V = m->llm.cfg.n_vocab;
        mp_kvcache kv;
        mp_llama_state ls = {0};
        CHECKF(mp_llama_kvcache_init(&m->llm, &kv, ex, 1, n_ids + N_GREEDY + 4, 0, 16, &err) == 0, "%s", err.msg);
        int s = mp_kvcache_seq_new(&kv, &err);
        float *lg = malloc(sizeof(float) * (size_t)V * n_ids);
        mp_llama_seq q = {s, n_ids, toks, embd, NULL, 2, lg};
        CHECKF(mp_llama_forward(&m->llm, &ls, &kv, ex, &q, 1, &err) == 0, "%s", err.msg);
        snprintf(p, sizeof p, "%s.logits", prefix);
        ref = mp_test_read_file(p, &n);
        if (ref && n == sizeof(float) * (size_t)V * n_ids) {
            double e = mp_test_rel_err(lg, ref, (size_t)V * n_ids);
            CHECKF(e < tol, "%s: decoder logits differ: %.3g", what, e);
        } else {
            CHECKF(0, "%s: reference logits", what);
        }
        free(ref);
        int32_t got[N_GREEDY], want[N_GREEDY];
        int32_t cur = (int32_t)mp_argmax(ex, lg + (size_t)(n_ids - 1) * V, V);
        for (int i = 0; i < N_GREEDY; i++) {
            got[i] = cur;
            mp_llama_seq d = {s, 1, &cur, NULL, NULL, 1, lg};
            CHECK(mp_llama_forward(&m->llm, &ls, &kv, ex, &d, 1, &err) == 0);
            cur = (int32_t)mp_argmax(ex, lg, V);
        }
        snprintf(p, sizeof p, "%s.greedy", prefix);
        f = fopen(p, "r");
        for (int i = 0; i < N_GREEDY; i++) want[i] = f && fscanf(f, "%d", &want[i]) == 1 ? want[i] : -1;
        if (f) fclose(f);
        for (int i = 0; i < N_GREEDY; i++) CHECKF(got[i] == want[i], "%s: greedy token %d: %d vs %d", what, i, got[i], want[i]);
        free(lg);
        mp_llama_state_free(&ls, ex);
        mp_kvcache_free(&kv, ex);
    }
    free(toks), free(embd), free(ids), free(emb);
}

int main(void) {
    mp_error err = {{0}};
    if (access(MP_PYTHON, X_OK) != 0) {
        fprintf(stderr, "skip: %s not found\n", MP_PYTHON);
        return MP_TEST_SKIP;
    }
    if (access(mp_fixture(FX_REAL "/config.json"), R_OK) != 0) {
        fprintf(stderr, "skip: %s not found\n", mp_fixture(FX_REAL "/config.json"));
        return MP_TEST_SKIP;
    }
    char root[512], dir[700], out[800], gg[800], mm[800];
    snprintf(root, sizeof root, "%s/test_smolvlm_ref", MP_BINARY_DIR);
    mkdir(root, 0755);
    mp_threadpool *tp = mp_threadpool_create(2);
    mp_exec ex;
    CHECK(mp_exec_init(&ex, MP_BACKEND_CPU, tp, (size_t)32 << 20, &err) == 0);

    /* landscape JPEG, a portrait PNG (EXIF orientation 6, written by pil_image_ref.py gen), grayscale
     * JPEG, a small square PNG with alpha, CMYK JPEG */
    char gen[600], portrait[700];
    snprintf(gen, sizeof gen, "%s/gen", root);
    mkdir(gen, 0755);
    snprintf(dir, sizeof dir, "%s %s/tests/ref/pil_image_ref.py gen %s", MP_PYTHON, MP_SOURCE_DIR, gen);
    CHECK(system(dir) == 0);
    snprintf(portrait, sizeof portrait, "%s/pat_o6.png", gen);
    const char *const imgs[] = {"images/chelsea.jpg", portrait, "images/testimggray.jpg", "images/pngsuite/basn6a08.png",
                                "images/pil_sample_cmyk.jpg"};
    const int n_imgs = 5;

    /* ---- F32 weights: HF folder and GGUF text + mmproj */
    snprintf(dir, sizeof dir, "%s/f32", root);
    CHECKF(fx_write_all(&fx_tiny, dir, 0x5eed1234ull, 0, &err) == 0, "%s", err.msg);
    snprintf(out, sizeof out, "%s/ref", dir);
    char hf[760];
    snprintf(hf, sizeof hf, "%s/hf", dir);
    int rc = run_ref(hf, out, 1, imgs, n_imgs);
    CHECKF(rc == 0, "smolvlm_ref.py failed (%d)", rc);
    snprintf(out, sizeof out, "%s/refns", dir);
    int rc2 = run_ref(hf, out, 0, imgs, 1);
    CHECKF(rc2 == 0, "smolvlm_ref.py --no-split failed (%d)", rc2);
    snprintf(gg, sizeof gg, "%s/text.gguf", dir);
    snprintf(mm, sizeof mm, "%s/mmproj.gguf", dir);
    const char *models[2][2] = {{hf, NULL}, {gg, mm}};
    const char *names[2] = {"hf", "gguf"};
    for (int l = 0; l < 2 && rc == 0; l++) {
        mp_vlm m;
        int lr = mp_vlm_load(&m, models[l][0], models[l][1], &ex, &err);
        CHECKF(lr == 0, "%s: %s", names[l], err.msg);
        if (lr) continue;
        CHECK(m.vis.image_seq_len == 4 && m.vis.proc.tile == 128 && m.vis.proc.longest_edge == 512);
        CHECK(m.id_image == 49190 && m.id_fake == 49189 && m.id_global == 49152);
        CHECKF(m.chat_template != NULL, "%s: no chat template", names[l]);
        for (int i = 0; i < n_imgs; i++) {
            char prefix[900], what[300];
            snprintf(prefix, sizeof prefix, "%s/ref.%d", dir, i);
            snprintf(what, sizeof what, "%s %s", names[l], imgs[i]);
            check_image(&m, &ex, imgs[i], 1, prefix, what, 2e-5);
        }
        if (rc2 == 0) {
            char prefix[900], what[300];
            snprintf(prefix, sizeof prefix, "%s/refns.0", dir);
            snprintf(what, sizeof what, "%s %s (no split)", names[l], imgs[0]);
            check_image(&m, &ex, imgs[0], 0, prefix, what, 2e-5);
        }
        mp_vlm_free(&m, &ex);
    }

    /* ---- BF16 checkpoint (the dtype SmolVLM ships in), HF layout */
    snprintf(dir, sizeof dir, "%s/bf16", root);
    CHECKF(fx_write_all(&fx_tiny, dir, 0xb16b16ull, 1, &err) == 0, "%s", err.msg);
    snprintf(hf, sizeof hf, "%s/hf", dir);
    snprintf(out, sizeof out, "%s/ref", dir);
    rc = run_ref(hf, out, 1, imgs + 1, 1);
    CHECKF(rc == 0, "smolvlm_ref.py (bf16) failed (%d)", rc);
    if (rc == 0) {
        mp_vlm m;
        CHECKF(mp_vlm_load(&m, hf, NULL, &ex, &err) == 0, "bf16: %s", err.msg);
        char prefix[900];
        snprintf(prefix, sizeof prefix, "%s/ref.0", dir);
        /* BF16 weights: activations may be rounded to BF16 in the matmuls (AVX512_BF16, as llama.cpp
         * does), so the bound is BF16 rounding, not float rounding */
        check_image(&m, &ex, imgs[1], 1, prefix, "bf16 hf", 2e-2);
        mp_vlm_free(&m, &ex);
    }

    /* ---- errors: one clear line naming the file */
    {
        mp_vlm m;
        snprintf(gg, sizeof gg, "%s/f32/text.gguf", root);
        rc = mp_vlm_load(&m, gg, NULL, &ex, &err);
        CHECKF(rc < 0 && strstr(err.msg, "--mmproj") && strstr(err.msg, gg) && !strchr(err.msg, '\n'), "'%s'", err.msg);
        /* the text GGUF given as the mmproj */
        rc = mp_vlm_load(&m, gg, gg, &ex, &err);
        CHECKF(rc < 0 && strstr(err.msg, "clip.projector_type") && strstr(err.msg, gg), "'%s'", err.msg);
        /* an mmproj whose projection width does not match the text model */
        fx_dims d2 = fx_tiny;
        d2.tD = 36;
        snprintf(dir, sizeof dir, "%s/wrongwidth", root);
        fx_model w2;
        fx_make_weights(&d2, &w2, 7);
        snprintf(mm, sizeof mm, "%s.mmproj.gguf", dir);
        CHECK(fx_write_mmproj(&d2, &w2, mm, &err) == 0);
        fx_free(&w2);
        rc = mp_vlm_load(&m, gg, mm, &ex, &err);
        CHECKF(rc < 0 && strstr(err.msg, "projects to 36 values") && strstr(err.msg, mm), "'%s'", err.msg);
    }
    mp_exec_free(&ex);
    mp_threadpool_free(tp);
    return mp_test_result("test_smolvlm_ref");
}
