/* test_image — preprocess/image.c against independent decoders: Pillow (Debian's python3-pil, which
 * links the same libjpeg-turbo/libpng but does its own colour conversion, palette/tRNS handling,
 * alpha compositing and EXIF transposition) and Debian's ffmpeg CLI. Real fixture files from
 * ../shared/fixtures/images, plus files written at test time by Pillow (BMP, GIF, TIFF, WebP, eXIf). */
#include "preprocess/image.h"
#include "test.h"
#include "imgtest_util.h"

static const char *REF = MP_SOURCE_DIR "/tests/ref/pil_image_ref.py";

/* decode with Pillow into a raw RGB file; returns the pixels or NULL */
static uint8_t *pil_decode(const char *path, const char *alpha, int *w, int *h) {
    char out[1024], cmd[4096];
    snprintf(out, sizeof out, "%s/pil.rgb", mp_tt_tmpdir("image"));
    snprintf(cmd, sizeof cmd, "%s %s decode '%s' '%s' %s", MP_PYTHON, REF, path, out, alpha);
    if (mp_tt_run(cmd) != 0) return NULL;
    return mp_tt_read_rgb(out, w, h);
}

/* decode with the ffmpeg CLI (same swscale flags as image.c uses for FFmpeg-decoded frames) */
static uint8_t *ffmpeg_decode(const char *path, int w, int h) {
    char out[1024], cmd[4096];
    snprintf(out, sizeof out, "%s/ff.rgb", mp_tt_tmpdir("image"));
    snprintf(cmd, sizeof cmd,
             "ffmpeg -nostdin -hide_banner -loglevel error -y -i '%s' -frames:v 1 "
             "-sws_flags bicubic+accurate_rnd+full_chroma_int+full_chroma_inp -f rawvideo -pix_fmt rgb24 '%s'",
             path, out);
    if (mp_tt_run(cmd) != 0) return NULL;
    size_t n;
    uint8_t *b = mp_tt_read_file(out, &n);
    if (b && n != (size_t)w * h * 3) {
        fprintf(stderr, "ffmpeg output of %s has %zu bytes, expected %d\n", path, n, w * h * 3);
        free(b);
        return NULL;
    }
    return b;
}

/* ours vs Pillow; tol = allowed max abs difference (0 = bit-exact) */
static void check_vs_pil(const char *path, const mp_image_load_opts *o, int tol, double mean_tol) {
    mp_image img;
    mp_error err = {{0}};
    int r = mp_image_load(path, o, &img, &err);
    CHECKF(r == 0, "%s: %s", path, err.msg);
    if (r != 0) return;
    int pw, ph;
    uint8_t *ref = pil_decode(path, o && o->alpha == MP_ALPHA_DROP ? "drop" : "white", &pw, &ph);
    CHECKF(ref != NULL, "Pillow could not decode %s", path);
    if (ref) {
        CHECKF(img.w == pw && img.h == ph, "%s: %dx%d vs Pillow %dx%d", path, img.w, img.h, pw, ph);
        if (img.w == pw && img.h == ph) {
            double mean;
            int mx = mp_tt_cmp_u8(img.data, ref, (size_t)pw * ph * 3, &mean);
            CHECKF(mx <= tol && mean <= mean_tol, "%s: max diff %d (tol %d), mean %.3f vs Pillow", path, mx, tol,
                   mean);
        }
        free(ref);
    }
    mp_image_free(&img);
}

static void check_error(const char *rel, const char *const *words) {
    const char *path = mp_fixture(rel);
    mp_image img;
    mp_error err = {{0}};
    int r = mp_image_load(path, NULL, &img, &err);
    CHECKF(r == -1, "%s: expected an error", rel);
    CHECKF(img.data == NULL && img.w == 0, "%s: image not cleared on error", rel);
    CHECKF(strstr(err.msg, path) != NULL, "%s: message does not name the file: %s", rel, err.msg);
    CHECKF(strchr(err.msg, '\n') == NULL, "%s: message is not one line", rel);
    int any = 0;
    for (int i = 0; words[i]; i++) any |= strstr(err.msg, words[i]) != NULL;
    CHECKF(any, "%s: unexpected message: %s", rel, err.msg);
    if (r == 0) mp_image_free(&img);
}

/* splice an APP1 Exif segment with the given orientation right after SOI */
static size_t make_exif_jpeg(const uint8_t *jpg, size_t n, int orient, int big_endian, uint8_t *out) {
    uint8_t tiff[64];
    size_t k = 0;
    memcpy(tiff, big_endian ? "MM\0\x2a\0\0\0\x08" : "II\x2a\0\x08\0\0\0", 8);
    k = 8;
    /* IFD0: 2 entries (a dummy ImageWidth first, then Orientation), next IFD = 0 */
    uint8_t e[2 + 24 + 4];
    memset(e, 0, sizeof e);
    if (big_endian) {
        e[1] = 2;
        e[2] = 0x01, e[3] = 0x00, e[5] = 3, e[9] = 1, e[11] = 100;          /* 0x0100 SHORT 1 = 100 */
        e[14] = 0x01, e[15] = 0x12, e[17] = 3, e[21] = 1, e[23] = (uint8_t)orient; /* 0x0112 */
    } else {
        e[0] = 2;
        e[2] = 0x00, e[3] = 0x01, e[4] = 3, e[6] = 1, e[10] = 100;
        e[14] = 0x12, e[15] = 0x01, e[16] = 3, e[18] = 1, e[22] = (uint8_t)orient;
    }
    memcpy(tiff + k, e, sizeof e);
    k += sizeof e;
    size_t seglen = 2 + 6 + k;
    size_t o = 0;
    out[o++] = 0xFF, out[o++] = 0xD8;
    out[o++] = 0xFF, out[o++] = 0xE1;
    out[o++] = (uint8_t)(seglen >> 8), out[o++] = (uint8_t)seglen;
    memcpy(out + o, "Exif\0\0", 6), o += 6;
    memcpy(out + o, tiff, k), o += k;
    memcpy(out + o, jpg + 2, n - 2), o += n - 2;
    return o;
}

static void test_exif_parser(void) {
    /* malformed blocks never crash and give 0 */
    uint8_t buf[64] = {0};
    CHECK_EQ_INT(mp_exif_orientation(buf, 0), 0);
    memcpy(buf, "II\x2a\0\xff\xff\0\0", 8);
    CHECK_EQ_INT(mp_exif_orientation(buf, 8), 0);
    memcpy(buf, "MM\0\x2a\0\0\0\x08\0\x05", 10); /* claims 5 entries, has none */
    CHECK_EQ_INT(mp_exif_orientation(buf, 10), 0);
    unsigned long long s = 7;
    for (int it = 0; it < 20000; it++) { /* random garbage after a valid header */
        size_t n = 8 + mp_test_rng(&s) % 56;
        memcpy(buf, it & 1 ? "MM\0\x2a" : "II\x2a\0", 4);
        for (size_t i = 4; i < n; i++) buf[i] = (uint8_t)mp_test_rng(&s);
        int v = mp_exif_orientation(buf, n);
        CHECK(v >= 0 && v <= 8);
    }
}

static void test_orientation(void) {
    size_t n;
    uint8_t *jpg = mp_tt_read_file(mp_fixture("images/rocket.jpg"), &n);
    if (!jpg) { CHECKF(0, "rocket.jpg missing"); return; }
    uint8_t *buf = malloc(n + 256);
    mp_image plain;
    mp_error err = {{0}};
    CHECK(mp_image_load(mp_fixture("images/rocket.jpg"), NULL, &plain, &err) == 0);
    CHECK_EQ_INT(plain.orientation, 0);
    for (int o = 1; o <= 8; o++) {
        size_t m = make_exif_jpeg(jpg, n, o, o & 1, buf);
        char path[1024];
        snprintf(path, sizeof path, "%s/orient%d.jpg", mp_tt_tmpdir("image"), o);
        mp_tt_write_file(path, buf, m);
        mp_image img;
        CHECK(mp_image_load(path, NULL, &img, &err) == 0);
        CHECK_EQ_INT(img.orientation, o);
        CHECK_EQ_INT(img.w, o >= 5 ? 427 : 640);
        CHECK_EQ_INT(img.h, o >= 5 ? 640 : 427);
        /* a corner pixel lands where exif_transpose puts it: e.g. for 6 (rotate 90 cw) the
         * source's bottom-left becomes the top-left */
        if (o == 6) CHECK(memcmp(img.data, plain.data + (size_t)426 * 640 * 3, 3) == 0);
        if (o == 8) CHECK(memcmp(img.data, plain.data + (size_t)639 * 3, 3) == 0);
        mp_image_free(&img);
        mp_image_load_opts opt = mp_image_load_default_opts();
        opt.ignore_orientation = 1;
        CHECK(mp_image_load(path, &opt, &img, &err) == 0);
        CHECK(img.w == plain.w && img.h == plain.h && memcmp(img.data, plain.data, (size_t)img.w * img.h * 3) == 0);
        mp_image_free(&img);
        if (mp_tt_have_pil()) check_vs_pil(path, NULL, 0, 0);
    }
    mp_image_free(&plain);
    free(buf);
    free(jpg);
}

int main(void) {
    if (access(mp_fixture("images/chelsea.jpg"), R_OK) != 0) {
        fprintf(stderr, "test_image: fixtures absent (%s), skipped\n", mp_fixture("images"));
        return MP_TEST_SKIP;
    }
    test_exif_parser();

    /* real values independent of any reference tool (from MEDIA_MANIFEST.md) */
    static const struct { const char *rel; int w, h; } dims[] = {
        {"images/chelsea.jpg", 451, 300}, {"images/chelsea.png", 451, 300}, {"images/coffee.png", 600, 400},
        {"images/hopper.jpg", 128, 128}, {"images/hopper_gray.jpg", 128, 128}, {"images/monkey12.jpg", 149, 227},
        {"images/pil_sample_cmyk.jpg", 100, 100}, {"images/rocket.jpg", 640, 427},
        {"images/testimgari.jpg", 227, 149}, {"images/testimggray.jpg", 227, 149},
        {"images/testimgp.jpg", 227, 149}, {"images/testorig.jpg", 227, 149},
        {"images/broken/truncated_jpeg.jpg", 100, 100}, {"images/pngsuite/basn0g16.png", 32, 32},
    };
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++) {
        mp_image img;
        mp_error err = {{0}};
        int r = mp_image_load(mp_fixture(dims[i].rel), NULL, &img, &err);
        CHECKF(r == 0, "%s: %s", dims[i].rel, err.msg);
        if (r) continue;
        CHECKF(img.w == dims[i].w && img.h == dims[i].h, "%s: %dx%d", dims[i].rel, img.w, img.h);
        mp_image_free(&img);
    }
    /* grayscale JPEG is replicated; progressive decodes close to its baseline twin */
    {
        mp_image g, b, p;
        mp_error err = {{0}};
        CHECK(mp_image_load(mp_fixture("images/testimggray.jpg"), NULL, &g, &err) == 0);
        int gray = 1;
        for (int i = 0; i < g.w * g.h; i++) gray &= g.data[3 * i] == g.data[3 * i + 1] && g.data[3 * i] == g.data[3 * i + 2];
        CHECK(gray);
        CHECK(mp_image_load(mp_fixture("images/testorig.jpg"), NULL, &b, &err) == 0);
        CHECK(mp_image_load(mp_fixture("images/testimgp.jpg"), NULL, &p, &err) == 0);
        double mean;
        int mx = mp_tt_cmp_u8(b.data, p.data, (size_t)b.w * b.h * 3, &mean);
        CHECKF(mean < 2.0, "progressive vs baseline mean diff %.2f (max %d)", mean, mx);
        mp_image_free(&g), mp_image_free(&b), mp_image_free(&p);
    }
    /* truncated progressive JPEG: returned with a warning by default, refused when strict */
    {
        mp_image img;
        mp_error err = {{0}};
        CHECK(mp_image_load(mp_fixture("images/broken/truncated_jpeg.jpg"), NULL, &img, &err) == 0);
        CHECKF(strstr(img.warning, "Premature end of JPEG file") != NULL, "warning: '%s'", img.warning);
        mp_image_free(&img);
        mp_image_load_opts o = mp_image_load_default_opts();
        o.strict = 1;
        CHECK(mp_image_load(mp_fixture("images/broken/truncated_jpeg.jpg"), &o, &img, &err) == -1);
        CHECKF(strstr(err.msg, "Premature end of JPEG file") && strstr(err.msg, "truncated_jpeg.jpg"), "%s", err.msg);
        mp_image img2;
        CHECK(mp_image_load(mp_fixture("images/hopper.jpg"), &o, &img2, &err) == 0); /* intact file fine */
        CHECK(img2.warning[0] == 0);
        mp_image_free(&img2);
    }
    /* broken files: one clear error, never a crash */
    {
        static const char *w_ihdr[] = {"IHDR", NULL}, *w_ascii[] = {"ASCII", NULL}, *w_crc[] = {"CRC", NULL},
                          *w_iend[] = {"IEND", "IDAT", NULL}, *w_notpng[] = {"Not a PNG", "signature", NULL},
                          *w_adler[] = {"data check", "adler", NULL}, *w_huff[] = {"Huffman", NULL};
        check_error("images/pngsuite/xc1n0g08.png", w_ihdr);
        check_error("images/pngsuite/xcrn0g04.png", w_ascii);
        check_error("images/pngsuite/xcsn0g01.png", w_crc);
        check_error("images/pngsuite/xdtn0g01.png", w_iend);
        check_error("images/pngsuite/xhdn0g08.png", w_crc);
        check_error("images/pngsuite/xs1n0g01.png", w_notpng);
        check_error("images/broken/badcrc.png", w_crc);
        check_error("images/broken/badadler.png", w_adler);
        check_error("images/broken/truncated_skimage.jpg", w_huff);
        mp_image img;
        mp_error err = {{0}};
        CHECK(mp_image_load("/nonexistent/x.png", NULL, &img, &err) == -1 && strstr(err.msg, "/nonexistent/x.png"));
        CHECK(mp_image_load_mem("", 0, "empty.jpg", NULL, &img, &err) == -1 && strstr(err.msg, "empty.jpg"));
        static const uint8_t junk[] = "this is not an image at all, just text that goes on for a while.";
        CHECK(mp_image_load_mem(junk, sizeof junk, "junk.bin", NULL, &img, &err) == -1 && strstr(err.msg, "junk.bin"));
        /* every prefix of a real JPEG and PNG: error or image, never a crash */
        size_t n;
        const char *files[] = {"images/hopper.jpg", "images/pngsuite/basn3p08.png", "images/testimgp.jpg"};
        for (int fi = 0; fi < 3; fi++) {
            uint8_t *b = mp_tt_read_file(mp_fixture(files[fi]), &n);
            for (size_t k = 1; b && k < n; k += (k < 64 ? 1 : 97)) {
                if (mp_image_load_mem(b, k, files[fi], NULL, &img, &err) == 0) mp_image_free(&img);
            }
            free(b);
        }
    }
    /* the 12-bit JPEG goes through FFmpeg's decoder; the ffmpeg CLI gives the same pixels */
    if (mp_tt_have_ffmpeg()) {
        mp_image img;
        mp_error err = {{0}};
        CHECK(mp_image_load(mp_fixture("images/monkey12.jpg"), NULL, &img, &err) == 0);
        uint8_t *ref = ffmpeg_decode(mp_fixture("images/monkey12.jpg"), 149, 227);
        CHECK(ref != NULL);
        if (ref && img.data) {
            double mean;
            int mx = mp_tt_cmp_u8(img.data, ref, 149 * 227 * 3, &mean);
            CHECKF(mx <= 1, "monkey12 vs ffmpeg: max %d mean %.3f", mx, mean);
        }
        free(ref);
        mp_image_free(&img);
        /* PNG via libpng vs FFmpeg's png decoder: lossless, identical */
        CHECK(mp_image_load(mp_fixture("images/coffee.png"), NULL, &img, &err) == 0);
        ref = ffmpeg_decode(mp_fixture("images/coffee.png"), 600, 400);
        CHECK(ref && memcmp(ref, img.data, 600 * 400 * 3) == 0);
        free(ref);
        mp_image_free(&img);
        /* JPEG: FFmpeg's own JPEG decoder (different IDCT and chroma upsampling) agrees closely */
        CHECK(mp_image_load(mp_fixture("images/chelsea.jpg"), NULL, &img, &err) == 0);
        ref = ffmpeg_decode(mp_fixture("images/chelsea.jpg"), 451, 300);
        if (ref) {
            double mean;
            int mx = mp_tt_cmp_u8(img.data, ref, 451 * 300 * 3, &mean);
            CHECKF(mean < 1.5 && mx < 40, "chelsea.jpg vs ffmpeg mjpeg: max %d mean %.3f", mx, mean);
        }
        free(ref);
        mp_image_free(&img);
    }

    if (!mp_tt_have_pil()) {
        fprintf(stderr, "test_image: python3-pil not available; Pillow comparisons skipped\n");
    } else {
        /* bit-exact with Pillow on every decodable fixture */
        static const char *exact[] = {
            "images/chelsea.jpg", "images/chelsea.png", "images/coffee.png", "images/hopper.jpg",
            "images/hopper_gray.jpg", "images/pil_sample_cmyk.jpg", "images/rocket.jpg", "images/testimgari.jpg",
            "images/testimggray.jpg", "images/testimgp.jpg", "images/testorig.jpg",
            "images/pngsuite/basn0g01.png", "images/pngsuite/basn0g08.png", "images/pngsuite/basn0g16.png",
            "images/pngsuite/basn2c08.png", "images/pngsuite/basn2c16.png", "images/pngsuite/basn3p08.png",
            "images/pngsuite/basn4a08.png", "images/pngsuite/basn6a08.png", "images/pngsuite/basn6a16.png",
            "images/pngsuite/ftbrn2c08.png", "images/pngsuite/ftp0n3p08.png", "images/pngsuite/ibasn2c08.png",
            "images/pngsuite/ibasn3p08.png", "images/pngsuite/ibasn6a08.png",
        };
        mp_image_load_opts drop = mp_image_load_default_opts();
        drop.alpha = MP_ALPHA_DROP;
        for (size_t i = 0; i < sizeof exact / sizeof exact[0]; i++) {
            check_vs_pil(mp_fixture(exact[i]), NULL, 0, 0);
            if (strstr(exact[i], "a08") || strstr(exact[i], "a16") || strstr(exact[i], "ftbrn"))
                check_vs_pil(mp_fixture(exact[i]), &drop, 0, 0);
        }
        /* formats decoded through FFmpeg, written by Pillow */
        char cmd[2048];
        const char *d = mp_tt_tmpdir("image");
        snprintf(cmd, sizeof cmd, "%s %s gen '%s'", MP_PYTHON, REF, d);
        CHECK(mp_tt_run(cmd) == 0);
        static const struct { const char *name, *fmt; int tol; double mean; } gen[] = {
            {"pat.bmp", "bmp", 0, 0},           {"pat.tiff", "tiff", 0, 0},
            {"pat.gif", "gif", 0, 0},           {"pat_lossless.webp", "webp", 0, 0},
            {"pat_alpha.webp", "webp", 0, 0},   {"pat_alpha.png", "png", 0, 0},
            {"pat_lossy.webp", "webp", 8, 1.5}, /* FFmpeg's VP8 + swscale vs libwebp's own upsampler */
            {"pat_o3.png", "png", 0, 0},        {"pat_o6.png", "png", 0, 0}, {"pat_o8.png", "png", 0, 0},
        };
        for (size_t i = 0; i < sizeof gen / sizeof gen[0]; i++) {
            char p[1024];
            snprintf(p, sizeof p, "%s/%s", d, gen[i].name);
            check_vs_pil(p, NULL, gen[i].tol, gen[i].mean);
            mp_image img;
            mp_error err = {{0}};
            if (mp_image_load(p, NULL, &img, &err) == 0) {
                CHECKF(strcmp(img.format, gen[i].fmt) == 0, "%s: format %s", gen[i].name, img.format);
                int o = strncmp(gen[i].name, "pat_o", 5) == 0 ? gen[i].name[5] - '0' : 0;
                if (o) CHECK_EQ_INT(img.orientation, o);
                mp_image_free(&img);
            }
        }
    }
    test_orientation();
    mp_tt_cleanup();
    return mp_test_result("test_image");
}
