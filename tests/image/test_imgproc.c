/* test_imgproc — preprocess/imgproc.c against Pillow (resampling) and against the transformers image
 * processors (Idefics3ImageProcessor, Qwen2VLImageProcessor, slow/Pillow path) re-written in
 * tests/ref/pil_image_ref.py, on real fixture images with the real preprocessor_config.json files. */
#include "preprocess/imgproc.h"
#include "test.h"
#include "imgtest_util.h"

static const char *REF = MP_SOURCE_DIR "/tests/ref/pil_image_ref.py";

static int write_raw_rgb(const char *path, const mp_image *im) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    fprintf(f, "%d %d\n", im->w, im->h);
    size_t n = fwrite(im->data, 1, (size_t)im->w * im->h * 3, f);
    fclose(f);
    return n == (size_t)im->w * im->h * 3 ? 0 : -1;
}

static const char *filter_name(int f) {
    static const char *n[] = {"NEAREST", "LANCZOS", "BILINEAR", "BICUBIC", "BOX", "HAMMING"};
    return n[f];
}

/* ours vs PIL Image.resize, bit-exact */
static void check_resize(const mp_image *src, const char *tag, int w, int h, int filter) {
    const char *d = mp_tt_tmpdir("imgproc");
    char in[1024], out[1024], cmd[4096];
    snprintf(in, sizeof in, "%s/rs_in.rgb", d);
    snprintf(out, sizeof out, "%s/rs_out.rgb", d);
    static const mp_image *last = NULL;
    if (last != src) { write_raw_rgb(in, src); last = src; }
    snprintf(cmd, sizeof cmd, "%s %s resize '%s' '%s' %d %d %d", MP_PYTHON, REF, in, out, w, h, filter);
    if (mp_tt_run(cmd) != 0) { CHECKF(0, "PIL resize failed"); return; }
    int rw, rh;
    uint8_t *ref = mp_tt_read_rgb(out, &rw, &rh);
    mp_image dst;
    mp_error err = {{0}};
    int r = mp_image_resize(src, w, h, filter, &dst, &err);
    CHECKF(r == 0, "%s", err.msg);
    if (r == 0 && ref && rw == w && rh == h) {
        double mean;
        int mx = mp_tt_cmp_u8(dst.data, ref, (size_t)w * h * 3, &mean);
        CHECKF(mx == 0, "%s %dx%d -> %dx%d %s: max diff %d mean %.4f vs Pillow", tag, src->w, src->h, w, h,
               filter_name(filter), mx, mean);
    } else {
        CHECKF(0, "no reference for %s -> %dx%d", tag, w, h);
    }
    free(ref);
    if (r == 0) mp_image_free(&dst);
}

static float *read_floats(const char *path, char *hdr, size_t hdrn, size_t *count) {
    size_t n;
    uint8_t *b = mp_tt_read_hdr(path, hdr, hdrn, &n);
    if (!b) return NULL;
    *count = n / 4;
    return (float *)b;
}

/* Runs the reference command; checks its 5-integer header equals `expect` and its floats equal ours
 * bit for bit. */
static void compare_with_ref(const char *what, const char *cmd, const char *out, const int expect[5],
                             const float *ours, size_t n, int ours_ok) {
    char hdr[256];
    size_t cnt = 0;
    float *ref = mp_tt_run(cmd) == 0 ? read_floats(out, hdr, sizeof hdr, &cnt) : NULL;
    CHECKF(ref != NULL, "no reference for %s", what);
    if (!ref) return;
    int v[5] = {0};
    CHECK(sscanf(hdr, "%d %d %d %d %d", &v[0], &v[1], &v[2], &v[3], &v[4]) == 5);
    CHECKF(memcmp(v, expect, sizeof v) == 0, "%s: shape %d %d %d %d %d vs reference %d %d %d %d %d", what, expect[0],
           expect[1], expect[2], expect[3], expect[4], v[0], v[1], v[2], v[3], v[4]);
    if (cnt == n && ours_ok) {
        long worst;
        double d = mp_test_max_abs_diff(ours, ref, (long)n, &worst);
        CHECKF(d == 0.0, "%s: values differ from transformers' processor: max %.3g at %ld", what, d, worst);
    } else {
        CHECKF(0, "%s: %zu values vs reference %zu", what, n, cnt);
    }
    free(ref);
}

/* raw_input: hand the reference our decoded pixels (for files Pillow cannot read, e.g. 12-bit JPEG) */
static void check_idefics3(const char *rel, const char *cfg_path, const mp_idefics3_params *p, int raw_input) {
    char path[1024];
    snprintf(path, sizeof path, "%s", mp_fixture(rel));
    mp_image img;
    mp_error err = {{0}};
    if (mp_image_load(path, NULL, &img, &err) != 0) { CHECKF(0, "%s", err.msg); return; }
    if (raw_input) {
        snprintf(path, sizeof path, "%s/decoded.rgb", mp_tt_tmpdir("imgproc"));
        CHECK(write_raw_rgb(path, &img) == 0);
    }
    mp_idefics3_plan pl;
    CHECK(mp_idefics3_plan_for(img.w, img.h, p, &pl, &err) == 0);
    size_t n = (size_t)pl.n_tiles * 3 * pl.tile_w * pl.tile_h;
    float *ours = malloc(n * sizeof(float));
    mp_idefics3_plan pl2;
    int r = mp_idefics3_preprocess(&img, p, ours, &pl2, &err);
    CHECKF(r == 0, "%s", err.msg);
    CHECK(memcmp(&pl, &pl2, sizeof pl) == 0);
    char out[1024], cmd[4096];
    snprintf(out, sizeof out, "%s/idefics3.f32", mp_tt_tmpdir("imgproc"));
    snprintf(cmd, sizeof cmd, "%s %s idefics3 '%s' '%s' '%s'", MP_PYTHON, REF, path, out, cfg_path);
    const int expect[5] = {pl.rows, pl.cols, pl.n_tiles, pl.tile_h, pl.tile_w};
    compare_with_ref(rel, cmd, out, expect, ours, n, r == 0);
    free(ours);
    mp_image_free(&img);
}

static void check_qwen2vl(const char *rels, const char *cfg_path, const mp_qwen2vl_params *p, int64_t minp,
                          int64_t maxp) {
    mp_image frames[8];
    int nf = 0;
    char list[2048] = "", buf[2048];
    snprintf(buf, sizeof buf, "%s", rels);
    mp_error err = {{0}};
    for (char *tok = strtok(buf, ","); tok && nf < 8; tok = strtok(NULL, ",")) {
        const char *path = mp_fixture(tok);
        if (mp_image_load(path, NULL, &frames[nf], &err) != 0) { CHECKF(0, "%s", err.msg); return; }
        nf++;
        size_t l = strlen(list);
        snprintf(list + l, sizeof list - l, "%s%s", l ? "," : "", path);
    }
    mp_qwen2vl_params q = *p;
    if (maxp) q.min_pixels = minp, q.max_pixels = maxp;
    mp_qwen2vl_plan pl;
    CHECK(mp_qwen2vl_plan_for(frames[0].w, frames[0].h, nf, &q, &pl, &err) == 0);
    size_t n = (size_t)pl.n_patches * pl.patch_dim;
    float *ours = malloc(n * sizeof(float));
    int r = mp_qwen2vl_preprocess(frames, nf, &q, ours, NULL, &err);
    CHECKF(r == 0, "%s", err.msg);
    char out[1024], cmd[8192];
    snprintf(out, sizeof out, "%s/qwen.f32", mp_tt_tmpdir("imgproc"));
    if (maxp)
        snprintf(cmd, sizeof cmd, "%s %s qwen2vl '%s' '%s' '%s' %lld %lld", MP_PYTHON, REF, list, out, cfg_path,
                 (long long)minp, (long long)maxp);
    else
        snprintf(cmd, sizeof cmd, "%s %s qwen2vl '%s' '%s' '%s'", MP_PYTHON, REF, list, out, cfg_path);
    const int expect[5] = {pl.grid_t, pl.grid_h, pl.grid_w, (int)pl.n_patches, pl.patch_dim};
    compare_with_ref(rels, cmd, out, expect, ours, n, r == 0);
    free(ours);
    for (int i = 0; i < nf; i++) mp_image_free(&frames[i]);
}

/* smart_resize vs the Python function on many sizes, in one Python call */
static void check_smart_resize(void) {
    const char *d = mp_tt_tmpdir("imgproc");
    char out[1024], cmd[4096];
    snprintf(out, sizeof out, "%s/smart.txt", d);
    snprintf(cmd, sizeof cmd,
             "%s -c \"import sys; sys.path.insert(0, '%s/tests/ref'); import pil_image_ref as r\n"
             "for h in list(range(10, 90, 3)) + [149, 227, 300, 427, 1000, 1080, 1919, 4000, 7000]:\n"
             "  for w in [10, 13, 28, 41, 56, 57, 70, 84, 97, 451, 640, 1920, 3333, 8000]:\n"
             "    for mn, mx in [(3136, 12845056), (3136, 1003520), (128*28*28, 768*28*28), (200000, 300000)]:\n"
             "      try: rh, rw = r.smart_resize(h, w, 28, mn, mx)\n"
             "      except ValueError: rh, rw = -1, -1\n"
             "      print(h, w, mn, mx, rh, rw)\" > '%s'",
             MP_PYTHON, MP_SOURCE_DIR, out);
    if (mp_tt_run(cmd) != 0) { CHECKF(0, "python smart_resize failed"); return; }
    FILE *f = fopen(out, "r");
    long long h, w, mn, mx, rh, rw;
    int lines = 0, bad = 0;
    while (f && fscanf(f, "%lld %lld %lld %lld %lld %lld", &h, &w, &mn, &mx, &rh, &rw) == 6) {
        lines++;
        int oh = -1, ow = -1;
        mp_error err;
        if (mp_qwen2vl_smart_resize((int)h, (int)w, 28, mn, mx, &oh, &ow, &err) != 0) oh = ow = -1;
        if (oh != rh || ow != rw) {
            if (bad++ < 5) fprintf(stderr, "smart_resize(%lld, %lld, %lld, %lld): %d x %d vs %lld x %lld\n", h, w, mn, mx, oh, ow, rh, rw);
        }
    }
    if (f) fclose(f);
    CHECKF(lines > 1000 && bad == 0, "smart_resize: %d of %d differ", bad, lines);
}

int main(void) {
    if (access(mp_fixture("images/chelsea.jpg"), R_OK) != 0) {
        fprintf(stderr, "test_imgproc: fixtures absent, skipped\n");
        return MP_TEST_SKIP;
    }
    if (!mp_tt_have_pil()) {
        fprintf(stderr, "test_imgproc: python3-pil/numpy not available, skipped\n");
        return MP_TEST_SKIP;
    }
    mp_error err = {{0}};
    /* ---- resampling, every filter, up and down, one axis only, odd sizes */
    mp_image chelsea, hopper;
    CHECK(mp_image_load(mp_fixture("images/chelsea.jpg"), NULL, &chelsea, &err) == 0);
    CHECK(mp_image_load(mp_fixture("images/hopper.jpg"), NULL, &hopper, &err) == 0);
    static const int sizes[][2] = {{2048, 1364}, {512, 512}, {97, 33}, {451, 211}, {1001, 300}, {1, 1}, {3, 700}};
    for (int f = 0; f <= 5; f++)
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            if (f != MP_RESAMPLE_LANCZOS && f != MP_RESAMPLE_BICUBIC && s > 3) continue;
            check_resize(&chelsea, "chelsea", sizes[s][0], sizes[s][1], f);
        }
    check_resize(&hopper, "hopper", 2048, 2048, MP_RESAMPLE_LANCZOS);
    check_resize(&hopper, "hopper", 448, 448, MP_RESAMPLE_BICUBIC);
    check_resize(&hopper, "hopper", 127, 129, MP_RESAMPLE_BICUBIC);
    {
        mp_image same;
        CHECK(mp_image_resize(&hopper, 128, 128, MP_RESAMPLE_LANCZOS, &same, &err) == 0);
        CHECK(memcmp(same.data, hopper.data, 128 * 128 * 3) == 0);
        mp_image_free(&same);
        CHECK(mp_image_resize(&hopper, 0, 5, MP_RESAMPLE_LANCZOS, &same, &err) == -1);
        CHECK(mp_image_resize(&hopper, 5, 5, 17, &same, &err) == -1);
    }
    mp_image_free(&chelsea);
    mp_image_free(&hopper);

    /* ---- Idefics3 / SmolVLM with the real preprocessor_config.json */
    char cfg[1024], qcfg[1024]; /* copies: mp_fixture's buffers are reused */
    snprintf(cfg, sizeof cfg, "%s", mp_fixture("hf/HuggingFaceTB--SmolVLM-256M-Instruct/preprocessor_config.json"));
    mp_idefics3_params ip;
    CHECK(mp_idefics3_params_load(cfg, &ip, &err) == 0);
    mp_idefics3_params defp = mp_idefics3_default_params();
    CHECK(memcmp(&ip, &defp, sizeof ip) == 0); /* the defaults are SmolVLM-256M's file */
    CHECK_EQ_INT(ip.longest_edge, 2048);
    CHECK_EQ_INT(ip.tile, 512);
    CHECK_EQ_INT(ip.norm.resample, MP_RESAMPLE_LANCZOS);
    /* plans by hand from the transformers code: 451x300 -> 2048x1362 -> 2048x1536 -> 3 rows x 4 cols */
    mp_idefics3_plan pl;
    CHECK(mp_idefics3_plan_for(451, 300, &ip, &pl, &err) == 0);
    CHECK(pl.resized_w == 2048 && pl.resized_h == 1362 && pl.grid_w == 2048 && pl.grid_h == 1536);
    CHECK(pl.rows == 3 && pl.cols == 4 && pl.n_tiles == 13 && pl.tile_w == 512 && pl.tile_h == 512);
    CHECK(mp_idefics3_plan_for(149, 227, &ip, &pl, &err) == 0); /* portrait */
    CHECK(pl.resized_h == 2048 && pl.resized_w == 1344 && pl.rows == 4 && pl.cols == 3);
    check_idefics3("images/chelsea.jpg", cfg, &ip, 0);
    check_idefics3("images/monkey12.jpg", cfg, &ip, 1); /* portrait */
    check_idefics3("images/testimggray.jpg", cfg, &ip, 0);
    check_idefics3("images/pngsuite/basn6a08.png", cfg, &ip, 0);
    /* no splitting, smaller longest edge (SmolVLM2's video frames) and a 1-tile image */
    {
        char cfg2[1024];
        snprintf(cfg2, sizeof cfg2, "%s/nosplit.json", mp_tt_tmpdir("imgproc"));
        FILE *f = fopen(cfg2, "w");
        fprintf(f, "{\"do_image_splitting\": false, \"size\": {\"longest_edge\": 384}, \"max_image_size\": "
                   "{\"longest_edge\": 384}, \"resample\": 1, \"image_mean\": [0.5, 0.5, 0.5], \"image_std\": "
                   "[0.5, 0.5, 0.5]}");
        fclose(f);
        mp_idefics3_params np;
        CHECK(mp_idefics3_params_load(cfg2, &np, &err) == 0);
        CHECK(np.do_split == 0 && np.longest_edge == 384);
        check_idefics3("images/rocket.jpg", cfg2, &np, 0);
        snprintf(cfg2, sizeof cfg2, "%s/small.json", mp_tt_tmpdir("imgproc"));
        f = fopen(cfg2, "w");
        fprintf(f, "{\"size\": {\"longest_edge\": 364}, \"max_image_size\": {\"longest_edge\": 364}}");
        fclose(f);
        CHECK(mp_idefics3_params_load(cfg2, &np, &err) == 0);
        CHECK(mp_idefics3_plan_for(640, 427, &np, &pl, &err) == 0 && pl.rows == 0 && pl.n_tiles == 1);
        check_idefics3("images/rocket.jpg", cfg2, &np, 0);
        CHECK(mp_idefics3_params_load("/nonexistent.json", &np, &err) == -1 && strstr(err.msg, "/nonexistent.json"));
    }

    /* ---- Qwen2-VL */
    check_smart_resize();
    snprintf(qcfg, sizeof qcfg, "%s", mp_fixture("hf/Qwen--Qwen2-VL-2B-Instruct/preprocessor_config.json"));
    mp_qwen2vl_params qp;
    CHECK(mp_qwen2vl_params_load(qcfg, &qp, &err) == 0);
    mp_qwen2vl_params qdef = mp_qwen2vl_default_params();
    CHECK(memcmp(&qp, &qdef, sizeof qp) == 0);
    mp_qwen2vl_params q25;
    CHECK(mp_qwen2vl_params_load(mp_fixture("hf/Qwen--Qwen2.5-VL-7B-Instruct/preprocessor_config.json"), &q25, &err) == 0);
    CHECK(memcmp(&q25, &qdef, sizeof q25) == 0);
    mp_qwen2vl_plan qpl;
    CHECK(mp_qwen2vl_plan_for(451, 300, 1, &qp, &qpl, &err) == 0);
    CHECK(qpl.resized_w == 448 && qpl.resized_h == 308 && qpl.grid_t == 1 && qpl.grid_h == 22 && qpl.grid_w == 32);
    CHECK(qpl.n_patches == 704 && qpl.patch_dim == 1176);
    check_qwen2vl("images/chelsea.jpg", qcfg, &qp, 0, 0);
    check_qwen2vl("images/hopper.jpg", qcfg, &qp, 0, 0);
    check_qwen2vl("images/rocket.jpg", qcfg, &qp, 3136, 100000);     /* max_pixels binds: downscale */
    check_qwen2vl("images/pngsuite/basn2c08.png", qcfg, &qp, 50000, 1000000); /* min_pixels binds: upscale */
    /* a "video" of 3 same-size frames: 2 temporal groups, the last padded with frame 3 */
    check_qwen2vl("images/testorig.jpg,images/testimgp.jpg,images/testimgari.jpg", qcfg, &qp, 3136, 200000);
    check_qwen2vl("images/testorig.jpg,images/testimgp.jpg", qcfg, &qp, 3136, 200000);
    {
        mp_image a[2];
        CHECK(mp_image_load(mp_fixture("images/testorig.jpg"), NULL, &a[0], &err) == 0);
        CHECK(mp_image_load(mp_fixture("images/hopper.jpg"), NULL, &a[1], &err) == 0);
        float tmp[1];
        CHECK(mp_qwen2vl_preprocess(a, 2, &qp, tmp, NULL, &err) == -1 && strstr(err.msg, "frame 1"));
        mp_image_free(&a[0]), mp_image_free(&a[1]);
        int oh, ow;
        CHECK(mp_qwen2vl_smart_resize(10, 3000, 28, 3136, 12845056, &oh, &ow, &err) == -1); /* aspect > 200 */
    }
    mp_tt_cleanup();
    return mp_test_result("test_imgproc");
}
