/* test_caption.c — SmolVLM captioning end to end (runtime/caption.h, runtime/vlm.h) on a tiny random
 * SmolVLM written by the test in both layouts (smolvlm_fixture.h: HF folder F32, GGUF text + mmproj):
 *  - against the PyTorch reference (tests/ref/smolvlm_ref.py, from transformers' Idefics3 code): the
 *    batch-mode prompt (mp_vlm_prompt_build) has the reference's expanded text, token ids and decoder
 *    logits at every position; the pipeline's greedy captions of two images in one call are the
 *    reference's greedy tokens (HF and GGUF);
 *  - each image captioned alone == all images in one call (greedy, and seeded sampling): vision batches
 *    that cross image boundaries, more images than decoding slots (queueing), failing files in between,
 *    with and without the worker thread;
 *  - a missing file and a corrupt PNG fail alone with a message naming the file;
 *  - the caption of an image equals a plain greedy loop over the decoder fed with the same prompt items;
 *  - decoded images (frames) give the files' captions; a two-image prompt holds each image's rows as
 *    alone; the chat layout written without a template == SmolVLM's template.
 * `test_caption --write-fixture DIR` writes the model for test_caption_cli.sh. */
#include "test.h"

#include "smolvlm_fixture.h"

#include "llm/kvcache.h"
#include "llm/llama.h"
#include "runtime/caption.h"

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

/* ---- against the PyTorch reference (tests/ref/smolvlm_ref.py): the batch-mode prompt (mp_vlm_prompt_build)
 * gives the reference's prompt text, token ids and decoder logits at every position; the pipeline's greedy
 * captions (both images in one call) are the reference's greedy tokens. */
#define N_REF 6
static void check_vs_reference(const char *root, const char *hf, const char *const models[2][2]) {
    mp_error err = {{0}};
    if (access(MP_PYTHON, X_OK) != 0) {
        fprintf(stderr, "note: %s not found, reference comparison skipped\n", MP_PYTHON);
        return;
    }
    const char *imgs[2] = {mp_fixture("images/chelsea.jpg"), mp_fixture("images/pngsuite/basn6a08.png")};
    char cmd[8192], pre[1200];
    snprintf(cmd, sizeof cmd, "%s %s/tests/ref/smolvlm_ref.py %s %s/ref %d '%s' %s %s", MP_PYTHON, MP_SOURCE_DIR, hf, root,
             N_REF, MP_CAPTION_DEFAULT_PROMPT, imgs[0], imgs[1]);
    int rc = system(cmd);
    CHECKF(rc == 0, "smolvlm_ref.py failed (%d)", rc);
    if (rc) return;
    mp_threadpool *tp = mp_threadpool_create(2);
    mp_exec ex;
    CHECK(mp_exec_init(&ex, MP_BACKEND_CPU, tp, (size_t)32 << 20, &err) == 0);
    for (int l = 0; l < 2; l++) {
        const char *what = l ? "gguf" : "hf";
        mp_vlm m;
        if (mp_vlm_load(&m, models[l][0], models[l][1], &ex, &err) < 0) {
            CHECKF(0, "%s: %s", what, err.msg);
            continue;
        }
        const int V = m.llm.cfg.n_vocab;
        mp_idefics3_state vs = {0};
        for (int i = 0; i < 2; i++) {
            size_t nb = 0;
            mp_image img;
            CHECKF(mp_image_load(imgs[i], NULL, &img, &err) == 0, "%s", err.msg);
            const mp_image *one = &img;
            mp_vlm_prompt vp;
            rc = mp_vlm_prompt_build(&m, &ex, &vs, &one, 1, MP_CAPTION_DEFAULT_PROMPT, -1, &vp, &err);
            mp_image_free(&img);
            CHECKF(rc == 0, "%s: %s", what, err.msg);
            if (rc) continue;
            snprintf(pre, sizeof pre, "%s/ref.%d.prompt", root, i);
            char *rtext = mp_test_read_file(pre, &nb);
            CHECKF(rtext && !strcmp(rtext, vp.text), "%s image %d: expanded prompt differs", what, i);
            free(rtext);
            snprintf(pre, sizeof pre, "%s/ref.%d.ids", root, i);
            int32_t *rids = mp_test_read_file(pre, &nb);
            int same = rids && (int)(nb / 4) == vp.n, img_rows = 0;
            for (int k = 0; same && k < vp.n; k++) {
                if (vp.tokens[k] < 0) img_rows++;
                same = vp.tokens[k] >= 0 ? vp.tokens[k] == rids[k] : rids[k] == m.id_image;
            }
            CHECKF(same && img_rows == vp.n_image_rows && vp.n_images == 1, "%s image %d: prompt items differ", what, i);
            free(rids);
            /* the decoder over the request's items, logits at every position */
            mp_kvcache kv;
            mp_llama_state ls = {0};
            float *lg = malloc(sizeof(float) * (size_t)V * vp.n);
            CHECK(mp_llama_kvcache_init(&m.llm, &kv, &ex, 1, vp.n + 4, 0, 16, &err) == 0);
            int sq = mp_kvcache_seq_new(&kv, &err);
            mp_llama_seq q = {sq, vp.n, vp.tokens, vp.embd, NULL, 2, lg};
            CHECKF(mp_llama_forward(&m.llm, &ls, &kv, &ex, &q, 1, &err) == 0, "%s", err.msg);
            snprintf(pre, sizeof pre, "%s/ref.%d.logits", root, i);
            float *ref = mp_test_read_file(pre, &nb);
            if (ref && nb == sizeof(float) * (size_t)V * vp.n) {
                double e = mp_test_rel_err(lg, ref, (size_t)V * vp.n);
                CHECKF(e < 2e-5, "%s image %d: decoder logits differ from the reference: %.3g", what, i, e);
            } else {
                CHECKF(0, "%s image %d: reference logits missing or of another size", what, i);
            }
            free(ref), free(lg);
            mp_llama_state_free(&ls, &ex);
            mp_kvcache_free(&kv, &ex);
            mp_vlm_prompt_free(&vp);
        }
        mp_idefics3_state_free(&vs, &ex);
        /* the pipeline: both images in one call, greedy, N_REF tokens each */
        mp_caption_params p = mp_caption_default_params(&m);
        p.max_new = N_REF;
        p.ignore_eos = 1;
        p.vision_tiles = 4;
        mp_caption_result res[2];
        CHECKF(mp_caption_run(&m, &ex, imgs, 2, &p, res, NULL, &err) == 0, "%s", err.msg);
        for (int i = 0; i < 2; i++) {
            snprintf(pre, sizeof pre, "%s/ref.%d.greedy", root, i);
            FILE *f = fopen(pre, "r");
            int32_t want[N_REF];
            for (int k = 0; k < N_REF; k++) want[k] = f && fscanf(f, "%d", &want[k]) == 1 ? want[k] : -1;
            if (f) fclose(f);
            CHECKF(res[i].ok && res[i].n_tokens == N_REF && !memcmp(res[i].tokens, want, sizeof want),
                   "%s image %d: pipeline greedy tokens differ from the reference (%s)", what, i, res[i].error);
        }
        free_results(res, 2);
        mp_vlm_free(&m, &ex);
    }
    mp_exec_free(&ex);
    mp_threadpool_free(tp);
}

int main(int argc, char **argv) {
    mp_error err = {{0}};
    if (argc == 3 && !strcmp(argv[1], "--write-fixture")) { /* for test_caption_cli.sh */
        if (fx_write_all(&fx_tiny, argv[2], 0xca9710ull, 0, &err) != 0) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        return 0;
    }
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
    const char *const models[2][2] = {{hf, NULL}, {gg, mm}};
    check_vs_reference(root, hf, models);

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

    /* ---- decoded images (e.g. video frames) instead of files: the same captions */
    {
        mp_image im[2];
        const int pick[2] = {0, 6};
        const mp_image *ptr[2];
        for (int k = 0; k < 2; k++) {
            CHECK(mp_image_load(files[pick[k]], NULL, &im[k], &err) == 0);
            ptr[k] = &im[k];
        }
        mp_caption_result r2[2];
        CHECKF(mp_caption_run_images(&m, &ex, ptr, 2, &p, r2, NULL, &err) == 0, "%s", err.msg);
        for (int k = 0; k < 2; k++)
            CHECKF(r2[k].ok && alone[pick[k]].ok && !strcmp(r2[k].text, alone[pick[k]].text),
                   "decoded image %d: '%s' vs '%s'", k, r2[k].text ? r2[k].text : r2[k].error, alone[pick[k]].text);
        free_results(r2, 2);

        /* two images in one prompt: both layouts, each image's rows as when it is alone */
        mp_vlm_prompt two, one;
        CHECKF(mp_vlm_prompt_build(&m, &ex, NULL, ptr, 2, "Compare them.", -1, &two, &err) == 0, "%s", err.msg);
        CHECKF(mp_vlm_prompt_build(&m, &ex, NULL, ptr + 1, 1, "Compare them.", -1, &one, &err) == 0, "%s", err.msg);
        const int rows0 = alone[0].n_tiles * m.vis.image_seq_len, rows1 = alone[6].n_tiles * m.vis.image_seq_len;
        CHECK(two.n_images == 2 && two.n_image_rows == rows0 + rows1 && one.n_image_rows == rows1);
        CHECK(two.text && strstr(two.text, "<global-img>") && strstr(strstr(two.text, "<global-img>") + 1, "<global-img>"));
        const int D = m.llm.cfg.n_embd;
        int k1 = 0, k2 = 0, seen = 0, same = 1;
        for (int i = 0; i < two.n; i++) { /* image rows of the second image in `two` vs in `one` */
            if (two.tokens[i] >= 0 || seen++ < rows0) continue;
            while (k1 < one.n && one.tokens[k1] >= 0) k1++;
            if (k1 == one.n || memcmp(two.embd + (size_t)i * D, one.embd + (size_t)k1 * D, sizeof(float) * D)) same = 0;
            k1++, k2++;
        }
        CHECKF(same && k2 == rows1, "second image's rows differ between a one- and a two-image prompt");
        mp_vlm_prompt_free(&two), mp_vlm_prompt_free(&one);
        /* "<image>" typed in the text: a clear error */
        CHECK(mp_vlm_prompt_build(&m, &ex, NULL, ptr, 1, "what is <image>?", -1, &one, &err) < 0 && err.msg[0]);
        for (int k = 0; k < 2; k++) mp_image_free(&im[k]);
    }

    /* ---- chat messages: without a template, SmolVLM's layout written directly == the real template */
    {
        mp_chat_part u1[2] = {{"image", NULL}, {"text", "What is this?"}}, u2[3] = {{"text", "And "}, {"image", NULL}, {"text", "?"}};
        mp_chat_msg msgs[4] = {{"system", "Be brief.", NULL, 0}, {"user", NULL, u1, 2}, {"assistant", "A cat.", NULL, 0},
                               {"user", NULL, u2, 3}};
        mp_chat_part a1 = {"text", "A cat."}, s1 = {"text", "Be brief."};
        mp_chat_msg tm_msgs[4] = {{"system", NULL, &s1, 1}, msgs[1], {"assistant", NULL, &a1, 1}, msgs[3]};
        char *with = NULL, *without = NULL;
        CHECKF(mp_vlm_render_chat(&m, tm_msgs, 4, &with, &err) == 0, "%s", err.msg);
        char *keep = m.chat_template;
        m.chat_template = NULL;
        CHECK(mp_vlm_render_chat(&m, tm_msgs, 4, &without, &err) == 0);
        CHECKF(with && without && !strcmp(with, without), "fallback chat layout '%s' vs template '%s'", without, with);
        free(without);
        without = NULL;
        CHECK(mp_vlm_render_chat(&m, msgs, 4, &without, &err) == 0); /* plain string contents */
        CHECKF(with && without && !strcmp(with, without), "fallback (string contents) '%s' vs '%s'", without, with);
        m.chat_template = keep;
        free(with), free(without);
    }

    free_results(alone, N);
    mp_vlm_free(&m, &ex);
    mp_exec_free(&ex);
    mp_threadpool_free(tp);
    return mp_test_result("test_caption");
}
