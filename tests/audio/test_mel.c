/* test_mel.c — FFT vs a plain DFT, the slaney filterbank vs OpenAI's (stored in the ggml file), and the
 * log-mel of jfk.wav vs PyTorch (tests/ref/mel_ref.py, written from openai/whisper audio.py). */
#include "test.h"

#include "models/ggml_bin.h"
#include "preprocess/audio.h"
#include "preprocess/mel.h"

#include <unistd.h>

static void test_fft(void) {
    const int sizes[] = {1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 25, 30, 49, 64, 100, 128, 200, 243, 400, 401, 512, 1000};
    unsigned long long s = 99;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        int n = sizes[i];
        double *x = malloc(sizeof(double) * 2 * n), *y = malloc(sizeof(double) * 2 * n),
               *sc = malloc(sizeof(double) * 2 * n);
        for (int j = 0; j < 2 * n; j++) x[j] = mp_test_randf(&s);
        mp_fft_plan *p = mp_fft_plan_new(n);
        CHECK(p != NULL);
        if (!p) continue;
        mp_fft(p, x, y, sc);
        double maxerr = 0, maxmag = 0;
        for (int k = 0; k < n; k++) {
            long double re = 0, im = 0;
            for (int j = 0; j < n; j++) {
                long double a = -2.0L * 3.141592653589793238462643383279L * (long double)((long long)j * k % n) / n;
                re += x[2 * j] * cosl(a) - x[2 * j + 1] * sinl(a);
                im += x[2 * j] * sinl(a) + x[2 * j + 1] * cosl(a);
            }
            double e = hypot((double)(re - y[2 * k]), (double)(im - y[2 * k + 1]));
            if (e > maxerr) maxerr = e;
            if (hypot((double)re, (double)im) > maxmag) maxmag = hypot((double)re, (double)im);
        }
        CHECKF(maxerr <= 1e-12 * (maxmag + 1), "fft n=%d: max error %g", n, maxerr);
        mp_fft_plan_free(p);
        free(x);
        free(y);
        free(sc);
    }
}

/* Our slaney filterbank vs the one whisper.cpp stores (OpenAI's mel_filters.npz = librosa's). */
static void test_filters(const mp_ggml_bin *g) {
    mp_mel_filters f;
    mp_error e;
    CHECK(mp_mel_filters_slaney(&f, 16000, 400, 80, &e) == 0);
    double md = 0;
    for (int i = 0; i < 80 * 201; i++) {
        double d = fabs((double)f.w[i] - g->mel_filters[i]);
        if (d > md) md = d;
    }
    /* float32 values of size ~0.03: 1e-8 is a few ulp (librosa version differences in the rounding) */
    CHECKF(md <= 1e-8, "slaney filters vs ggml file: max |diff| %g", md);
    fprintf(stderr, "  slaney 80x201 vs ggml filters: max |diff| %.3g\n", md);
    /* every filter is a nonempty triangle: first filter covers bins 0..1, the last reaches near 8 kHz */
    for (int m = 0; m < 80; m++) CHECK(f.hi[m] > f.lo[m]);
    CHECK_EQ_INT(f.lo[0], 1);
    CHECK(f.hi[79] >= 195);
    mp_mel_filters_free(&f);
    /* 128 bins (large-v3): same construction; filters ordered and normalised (slaney: area 2/(f2-f0) * ...) */
    CHECK(mp_mel_filters_slaney(&f, 16000, 400, 128, &e) == 0);
    for (int m = 1; m < 128; m++) CHECK(f.lo[m] >= f.lo[m - 1]);
    mp_mel_filters_free(&f);
    CHECK(mp_mel_filters_slaney(&f, 16000, 1, 80, &e) == -1);
}

static float *read_f32(const char *path, size_t n) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    float *b = malloc(n * sizeof(float));
    size_t got = fread(b, sizeof(float), n, fp);
    fclose(fp);
    if (got != n) { free(b); return NULL; }
    return b;
}

/* Runs tests/ref/mel_ref.py; returns its [80][frames] output or NULL (python/torch absent). */
static float *torch_mel(const char *mode, int64_t *frames) {
    char out[512], cmd[2048];
    snprintf(out, sizeof out, "%s/mel_ref_%s_%d.f32", MP_BINARY_DIR, mode, (int)getpid());
    snprintf(cmd, sizeof cmd, "\"%s\" \"%s/tests/ref/mel_ref.py\" \"%s\" \"%s\" %s \"%s\"", MP_PYTHON, MP_SOURCE_DIR,
             mp_fixture("audio/jfk.wav"), mp_fixture("whisper/for-tests-ggml-tiny.en.bin"), mode, out);
    FILE *p = popen(cmd, "r");
    if (!p) return NULL;
    int nm = 0;
    long nf = 0;
    int ok = fscanf(p, "%d %ld", &nm, &nf) == 2;
    int rc = pclose(p);
    if (!ok || rc != 0 || nm != 80) return NULL;
    float *m = read_f32(out, (size_t)nm * nf);
    unlink(out);
    *frames = nf;
    return m;
}

/* Runs tests/js/mel_ref.mjs (HF transformers.js WhisperFeatureExtractor: its own slaney filters, FFT and
 * padding). Returns 0 and fills feat [n_mels][3000] / filt [n_mels][201], or -1 when node or the package
 * is absent. */
static int js_mel(int n_mels, float **feat, float **filt) {
    char pkg[1024], out1[512], out2[512], cmd[3072];
    snprintf(pkg, sizeof pkg, "%s/tests/js/node_modules/@huggingface/transformers/package.json", MP_SOURCE_DIR);
    if (access(pkg, R_OK) != 0) return -1;
    snprintf(out1, sizeof out1, "%s/mel_js_f_%d_%d.f32", MP_BINARY_DIR, n_mels, (int)getpid());
    snprintf(out2, sizeof out2, "%s/mel_js_b_%d_%d.f32", MP_BINARY_DIR, n_mels, (int)getpid());
    snprintf(cmd, sizeof cmd, "cd \"%s/tests/js\" && node mel_ref.mjs \"%s\" %d \"%s\" \"%s\"", MP_SOURCE_DIR,
             mp_fixture("audio/jfk.wav"), n_mels, out1, out2);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    int nm = 0, nf = 0;
    int ok = fscanf(p, "%d %d", &nm, &nf) == 2;
    int rc = pclose(p);
    *feat = ok && rc == 0 && nm == n_mels && nf == 3000 ? read_f32(out1, (size_t)n_mels * 3000) : NULL;
    *filt = *feat ? read_f32(out2, (size_t)n_mels * 201) : NULL;
    unlink(out1);
    unlink(out2);
    if (!*feat || !*filt) { free(*feat); free(*filt); return -1; }
    return 0;
}

/* 80 and 128 mel bins (large-v3) vs transformers.js: filters computed independently, features from our
 * HF mode with our filters. */
static void test_vs_transformers_js(const mp_audio *a) {
    for (int nm = 80; nm <= 128; nm += 48) {
        float *feat = NULL, *filt = NULL;
        if (js_mel(nm, &feat, &filt)) {
            fprintf(stderr, "  transformers.js reference unavailable (tests/js not installed): skipped\n");
            return;
        }
        mp_mel_filters f;
        mp_error e;
        CHECK(mp_mel_filters_slaney(&f, 16000, 400, nm, &e) == 0);
        long w;
        /* JS keeps the filters in float64 (linspace frequencies, then the slaney norm); ours are librosa's
         * float32 values: agreement to float32 rounding (values ~0.03, ulp ~2e-9; measured 1.9e-9 / 3.7e-9). */
        double fd = mp_test_max_abs_diff(f.w, filt, (long)nm * 201, &w);
        CHECKF(fd <= 1e-8, "%d filters vs transformers.js: max |diff| %g at %ld", nm, fd, w);
        mp_mel_params p = mp_mel_params_hf();
        float *mel = NULL;
        int64_t nf = 0;
        CHECK(mp_log_mel(a->samples, a->n_samples, &f, &p, NULL, &mel, &nf, &e) == 0 && nf == 3000);
        if (mel) {
            /* both compute the FFT in double precision: only float32 rounding of the output remains (measured 1.2e-7) */
            double md = mp_test_max_abs_diff(mel, feat, (long)nm * 3000, &w);
            CHECKF(md <= 1e-6, "%d mels vs transformers.js: max |diff| %g at mel %ld frame %ld", nm, md, w / 3000, w % 3000);
            fprintf(stderr, "  %d mel bins vs transformers.js: filters max |diff| %.3g, log-mel max |diff| %.3g\n", nm, fd, md);
        }
        free(mel);
        free(feat);
        free(filt);
        mp_mel_filters_free(&f);
    }
}

static void test_vs_torch(const mp_ggml_bin *g, const mp_audio *a, int *skipped) {
    mp_mel_filters f;
    mp_error e;
    CHECK(mp_mel_filters_from(&f, g->mel_filters, g->n_mel, g->n_fft_bins, &e) == 0);
    mp_threadpool *tp = mp_threadpool_create(2);
    const char *modes[2] = {"whisper", "hf"};
    for (int mi = 0; mi < 2; mi++) {
        mp_mel_params p = mi == 0 ? mp_mel_params_whisper() : mp_mel_params_hf();
        float *mel = NULL;
        int64_t nf = 0;
        CHECKF(mp_log_mel(a->samples, a->n_samples, &f, &p, tp, &mel, &nf, &e) == 0, "%s", e.msg);
        CHECK_EQ_INT(nf, mi == 0 ? (176000 + 480000) / 160 : 3000);
        CHECK_EQ_INT(mp_mel_n_frames(a->n_samples, &p), nf);
        int64_t rf = 0;
        float *ref = torch_mel(modes[mi], &rf);
        if (!ref) {
            fprintf(stderr, "  torch reference unavailable (%s): comparison skipped\n", MP_PYTHON);
            *skipped = 1;
        } else if (mel) {
            CHECK_EQ_INT(rf, nf);
            /* tolerance: torch.stft runs in float32 (pocketfft), we in double, on identical filters. In the
             * log10/4 domain the float32 rounding of |X|^2 is ~1e-7 for loud bins; quiet bins (down to the
             * max-8 floor, 1e-8 of the peak power) carry float32 FFT noise of ~1e-7 of the frame's amplitude,
             * which is what gives the measured worst case 2.3e-5. 1e-4 leaves 4x headroom; a wrong window,
             * padding or filter moves values by > 1e-2. The mean (measured 2e-8) must stay tiny. */
            long w;
            double md = mp_test_max_abs_diff(mel, ref, (long)(80 * nf), &w), mean = 0;
            for (int64_t i = 0; i < 80 * nf; i++) mean += fabs((double)mel[i] - ref[i]);
            mean /= (double)(80 * nf);
            CHECKF(md <= 1e-4, "%s: max |diff| %g at mel %ld frame %ld (%g vs %g)", modes[mi], md, w / (long)nf,
                   w % (long)nf, mel[w], ref[w]);
            CHECKF(mean <= 2e-7, "%s: mean |diff| %g", modes[mi], mean);
            fprintf(stderr, "  log-mel jfk (%s, %lld frames) vs torch: max |diff| %.3g, mean %.3g\n", modes[mi],
                    (long long)nf, md, mean);
        }
        /* thread count does not change a bit */
        if (mel) {
            mp_threadpool *tp3 = mp_threadpool_create(3);
            float *m1 = NULL, *m3 = NULL;
            int64_t n1, n3;
            CHECK(mp_log_mel(a->samples, a->n_samples, &f, &p, NULL, &m1, &n1, &e) == 0);
            CHECK(mp_log_mel(a->samples, a->n_samples, &f, &p, tp3, &m3, &n3, &e) == 0);
            if (m1 && m3) {
                CHECK(memcmp(m1, mel, sizeof(float) * 80 * (size_t)nf) == 0);
                CHECK(memcmp(m3, mel, sizeof(float) * 80 * (size_t)nf) == 0);
            }
            free(m1);
            free(m3);
            mp_threadpool_free(tp3);
        }
        free(ref);
        free(mel);
    }
    /* computed slaney filters give the same log-mel as the stored ones */
    mp_mel_filters fs;
    CHECK(mp_mel_filters_slaney(&fs, 16000, 400, 80, &e) == 0);
    mp_mel_params p = mp_mel_params_hf();
    float *m1 = NULL, *m2 = NULL;
    int64_t n1, n2;
    CHECK(mp_log_mel(a->samples, a->n_samples, &f, &p, tp, &m1, &n1, &e) == 0);
    CHECK(mp_log_mel(a->samples, a->n_samples, &fs, &p, tp, &m2, &n2, &e) == 0);
    if (m1 && m2) CHECK_ARRAY_NEAR(m1, m2, 80 * n1, 1e-6);
    /* segments: frames past the end are zero */
    if (m1) {
        float *seg = malloc(sizeof(float) * 80 * 100);
        mp_mel_segment(m1, 80, n1, n1 - 40, 100, seg);
        CHECK(seg[0] == m1[n1 - 40] && seg[39] == m1[n1 - 1] && seg[40] == 0.0f && seg[99] == 0.0f);
        CHECK(seg[79 * 100 + 5] == m1[79 * n1 + n1 - 35]);
        free(seg);
    }
    free(m1);
    free(m2);
    mp_mel_filters_free(&fs);
    /* errors */
    float *bad = NULL;
    int64_t nb;
    mp_mel_params q = mp_mel_params_hf();
    q.n_fft = 512;
    CHECK(mp_log_mel(a->samples, a->n_samples, &f, &q, NULL, &bad, &nb, &e) == -1 && strstr(e.msg, "bins"));
    q = mp_mel_params_whisper();
    q.pad_zeros = 0;
    CHECK(mp_log_mel(a->samples, 100, &f, &q, NULL, &bad, &nb, &e) == -1);
    CHECK(mp_log_mel(a->samples, 1000, &f, &q, NULL, &bad, &nb, &e) == 0 && nb == 6);
    free(bad);
    mp_mel_filters_free(&f);
    mp_threadpool_free(tp);
}

int main(void) {
    test_fft();
    mp_ggml_bin g;
    mp_audio a;
    mp_error e;
    if (access(mp_fixture("whisper/for-tests-ggml-tiny.en.bin"), R_OK) || access(mp_fixture("audio/jfk.wav"), R_OK)) {
        fprintf(stderr, "fixtures absent: only the FFT was tested\n");
        return mp_test_failures ? 1 : MP_TEST_SKIP;
    }
    CHECK(mp_ggml_bin_open(&g, mp_fixture("whisper/for-tests-ggml-tiny.en.bin"), &e) == 0);
    CHECK(mp_audio_load(mp_fixture("audio/jfk.wav"), 16000, &a, &e) == 0);
    int skipped = 0;
    if (g.map && a.samples) {
        test_filters(&g);
        test_vs_torch(&g, &a, &skipped);
        test_vs_transformers_js(&a);
    }
    mp_audio_free(&a);
    mp_ggml_bin_close(&g);
    return mp_test_result("test_mel");
}
