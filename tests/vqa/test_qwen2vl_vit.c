/* test_qwen2vl_vit.c — the Qwen2-VL / Qwen2.5-VL vision tower vs tests/ref/qwen2vl_ref.py (PyTorch, float64,
 * written from transformers' modeling code) on tiny random-weight models made from the real configs:
 * patch embedding, 2-D rotary positions, Qwen2.5-VL window index, last block output and merger output,
 * for a real image (chelsea.png) and a 5-frame video (3 temporal slices, the last frame repeated) encoded
 * in one call; batches of one slice give the same bits. HF F32 and BF16 checkpoints. */
#include "vqa_test.h"

static void run_variant(const char *tmp, const char *variant, int seed, int bf16) {
    fprintf(stderr, "== %s%s\n", variant, bf16 ? " (bf16)" : "");
    char mdir[1100], io[1100];
    if (vt_make_model(tmp, bf16 ? "model_bf16" : "model", variant, seed, bf16, mdir, sizeof mdir) != 0) {
        CHECK(0);
        return;
    }
    snprintf(io, sizeof io, "%s/io_%s%s", tmp, variant, bf16 ? "_bf16" : "");
    mkdir(io, 0755);
    mp_error err;
    mp_exec ex;
    mp_threadpool *tp = mp_threadpool_create(2);
    CHECK(mp_exec_init(&ex, MP_BACKEND_CPU, tp, 64 << 20, &err) == 0);
    mp_qwen2vl_vit m;
    if (mp_qwen2vl_vit_load(&m, mdir, &ex, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        CHECK(0);
        goto out;
    }
    CHECK_EQ_INT(m.cfg.variant, strcmp(variant, "qwen2vl") ? MP_QWEN2VL_V25 : MP_QWEN2VL_V2);

    /* inputs: an image and a 5-frame video */
    mp_image img, fr[5];
    CHECK(mp_image_load(mp_fixture("images/chelsea.png"), NULL, &img, &err) == 0);
    vt_frames(fr, 5, 150, 100);
    mp_qwen2vl_grid g[2];
    float *p_img = vt_preprocess(&m, &img, 1, &g[0]), *p_vid = vt_preprocess(&m, fr, 5, &g[1]);
    CHECK(p_img && p_vid);
    if (!p_img || !p_vid) goto out;
    CHECK_EQ_INT(g[1].t, 3);
    const int64_t pd = 3 * 2 * 14 * 14, n0 = (int64_t)g[0].t * g[0].h * g[0].w, n1 = (int64_t)g[1].t * g[1].h * g[1].w;
    const int64_t N = n0 + n1, D = m.cfg.dim, O = m.cfg.out_dim, T = N / 4;
    fprintf(stderr, "image grid %dx%dx%d, video grid %dx%dx%d, %lld patches\n", g[0].t, g[0].h, g[0].w, g[1].t, g[1].h,
            g[1].w, (long long)N);
    float *pix = malloc(sizeof(float) * (size_t)(N * pd));
    memcpy(pix, p_img, sizeof(float) * (size_t)(n0 * pd));
    memcpy(pix + n0 * pd, p_vid, sizeof(float) * (size_t)(n1 * pd));
    CHECK(vt_write(io, "pixels.f32", pix, sizeof(float) * (size_t)(N * pd)) == 0);
    char js[512];
    snprintf(js, sizeof js,
             "{\"items\": [{\"kind\": \"image\", \"grid\": [%d, %d, %d]}, {\"kind\": \"video\", \"grid\": [%d, %d, %d]}]}",
             g[0].t, g[0].h, g[0].w, g[1].t, g[1].h, g[1].w);
    CHECK(vt_write(io, "in.json", js, strlen(js)) == 0);
    char args[2400];
    snprintf(args, sizeof args, "run %s %s", mdir, io);
    CHECK(vt_ref(args) == 0);

    /* ours */
    mp_qwen2vl_vit_state st;
    memset(&st, 0, sizeof st);
    float *embed = malloc(sizeof(float) * (size_t)(N * D)), *blocks = malloc(sizeof(float) * (size_t)(N * D));
    float *merged = malloc(sizeof(float) * (size_t)(T * O)), *merged1 = malloc(sizeof(float) * (size_t)(T * O));
    mp_qwen2vl_timing tm;
    memset(&tm, 0, sizeof tm);
    CHECK(mp_qwen2vl_vit_n_tokens(&m, g, 2) == T);
    CHECK(mp_qwen2vl_vit_encode(&m, &st, &ex, pix, g, 2, MP_QWEN2VL_OUT_EMBED, embed, NULL, &err) == 0);
    CHECK(mp_qwen2vl_vit_encode(&m, &st, &ex, pix, g, 2, MP_QWEN2VL_OUT_BLOCKS, blocks, NULL, &err) == 0);
    CHECK(mp_qwen2vl_vit_encode(&m, &st, &ex, pix, g, 2, MP_QWEN2VL_OUT_MERGED, merged, &tm, &err) == 0);
    CHECK_EQ_INT(tm.batches, 1);
    CHECK_EQ_INT(tm.tokens, T);
    mp_qwen2vl_vit_state st1;
    memset(&st1, 0, sizeof st1);
    st1.max_rows = 1; /* one temporal slice per batch */
    memset(&tm, 0, sizeof tm);
    CHECK(mp_qwen2vl_vit_encode(&m, &st1, &ex, pix, g, 2, MP_QWEN2VL_OUT_MERGED, merged1, &tm, &err) == 0);
    CHECK_EQ_INT(tm.batches, 3); /* the image alone, two video slices, the last one */
    CHECK(memcmp(merged, merged1, sizeof(float) * (size_t)(T * O)) == 0);
    if (!bf16) { /* the same tower as a llama.cpp mmproj GGUF gives the same bits */
        char gp[1200];
        snprintf(gp, sizeof gp, "%s/mmproj-%s.gguf", tmp, variant);
        mp_qwen2vl_vit mg;
        CHECK(vt_write_mmproj(&m, mdir, gp) == 0);
        if (mp_qwen2vl_vit_load(&mg, gp, &ex, &err) < 0) {
            fprintf(stderr, "%s\n", err.msg);
            CHECK(0);
        } else {
            CHECK_EQ_INT(mg.cfg.n_ff, m.cfg.n_ff);
            CHECK(memcmp(mg.cfg.full_attn, m.cfg.full_attn, sizeof m.cfg.full_attn) == 0);
            CHECK(memcmp(mg.proc.norm.mean, m.proc.norm.mean, sizeof m.proc.norm.mean) == 0);
            memset(merged1, 0, sizeof(float) * (size_t)(T * O));
            CHECK(mp_qwen2vl_vit_encode(&mg, &st1, &ex, pix, g, 2, MP_QWEN2VL_OUT_MERGED, merged1, NULL, &err) == 0);
            CHECK(memcmp(merged, merged1, sizeof(float) * (size_t)(T * O)) == 0);
            mp_qwen2vl_vit_free(&mg, &ex);
        }
    }

    long n;
    /* BF16 weights: the CPU kernels may round activations to BF16 too (as llama.cpp does; AVX512_BF16),
     * so BF16 towers are held to the BF16 rounding bound, F32 ones to float rounding */
    const double tb = bf16 ? 2e-2 : 1e-4;
    vt_check_close(io, "embed.f32", embed, N * D, bf16 ? 2e-2 : 1e-5, "patch embedding");
    int32_t *r_pos = vt_read(io, "rotpos.i32", 4, &n);
    CHECK_EQ_INT(n, 2 * N);
    if (r_pos && n == 2 * N) {
        int32_t *pos = malloc(sizeof(int32_t) * 2 * (size_t)N);
        int64_t r = 0;
        for (int i = 0; i < 2; i++)
            for (int t = 0; t < g[i].t; t++, r += (int64_t)g[i].h * g[i].w) mp_qwen2vl_patch_pos(g[i].h, g[i].w, 2, pos + 2 * r);
        CHECK(memcmp(pos, r_pos, sizeof(int32_t) * 2 * (size_t)N) == 0);
        free(pos);
    }
    if (m.cfg.variant == MP_QWEN2VL_V25) {
        int32_t *r_idx = vt_read(io, "winidx.i32", 4, &n), *r_cu = NULL;
        long ncu = 0;
        r_cu = vt_read(io, "cuwin.i32", 4, &ncu);
        CHECK_EQ_INT(n, T);
        int32_t *idx = malloc(sizeof(int32_t) * (size_t)T), *cu = malloc(sizeof(int32_t) * (size_t)(T + 2));
        int32_t *ucu = malloc(sizeof(int32_t) * (size_t)(ncu > 0 ? ncu : 1));
        int nwin = 0, nu = 0;
        int64_t off = 0, k = 0, cubase = 0;
        cu[0] = 0;
        const int win = m.cfg.window_size / 14 / 2;
        for (int i = 0; i < 2; i++)
            for (int t = 0; t < g[i].t; t++) {
                int32_t c2[256];
                int w = mp_qwen2vl_window_index(g[i].h, g[i].w, 2, win, idx + k, c2);
                for (int64_t j = 0; j < (int64_t)g[i].h * g[i].w / 4; j++) idx[k + j] += (int32_t)off;
                for (int j = 1; j <= w; j++) cu[++nwin] = (int32_t)(cubase + c2[j]);
                k += (int64_t)g[i].h * g[i].w / 4, off += (int64_t)g[i].h * g[i].w / 4;
                cubase += (int64_t)g[i].h * g[i].w;
            }
        for (long j = 0; j < ncu; j++) /* torch.unique_consecutive */
            if (nu == 0 || ucu[nu - 1] != r_cu[j]) ucu[nu++] = r_cu[j];
        fprintf(stderr, "windows: %d (reference %d, %ld before dropping empty ones)\n", nwin, nu - 1, ncu - 1);
        CHECK(r_idx && memcmp(idx, r_idx, sizeof(int32_t) * (size_t)T) == 0);
        CHECK_EQ_INT(nwin + 1, nu);
        CHECK(nu == nwin + 1 && memcmp(cu, ucu, sizeof(int32_t) * (size_t)nu) == 0);
        CHECK(ncu - 1 > nwin); /* the video's grid left an empty padded window */
        free(idx), free(cu), free(ucu), free(r_idx), free(r_cu);
    }
    vt_check_close(io, "blocks.f32", blocks, N * D, tb, "last block");
    vt_check_close(io, "merged.f32", merged, T * O, tb, "merger output");
    free(r_pos);
    free(embed), free(blocks), free(merged), free(merged1), free(pix), free(p_img), free(p_vid);
    mp_image_free(&img);
    for (int k = 0; k < 5; k++) mp_image_free(&fr[k]);
    mp_qwen2vl_vit_state_free(&st, &ex);
    mp_qwen2vl_vit_state_free(&st1, &ex);
    mp_qwen2vl_vit_free(&m, &ex);
out:
    mp_exec_free(&ex);
    mp_threadpool_free(tp);
}

int main(void) {
    int s = vt_python_ok();
    if (s) return s;
    const char *tmp = vt_tmpdir("qwen2vl_vit");
    if (!tmp) {
        fprintf(stderr, "cannot make a scratch folder\n");
        return 1;
    }
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", tmp);
    run_variant(dir, "qwen2vl", 11, 0);
    run_variant(dir, "qwen2vl", 11, 1);
    run_variant(dir, "qwen25vl", 12, 0);
    vt_cleanup(dir);
    return mp_test_result("test_qwen2vl_vit");
}
