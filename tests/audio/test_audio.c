/* test_audio.c — audio decoding + resampling against the real fixture files.
 *
 * Independent references: the same speech encoded by other tools (sox/ffmpeg/lame, see the fixture
 * manifests) in other formats and rates; sines of known frequency in the video fixtures; the exact
 * sample counts the manifests state (libsndfile / ffprobe observations). */
#include "test.h"

#include "preprocess/audio.h"

#include <fcntl.h>
#include <sndfile.h>
#include <unistd.h>

static int have(const char *path) { return access(path, R_OK) == 0; }

/* SNR in dB of b against a over the common length (skipping `edge` samples at both ends). */
static double snr_db(const float *a, int64_t na, const float *b, int64_t nb, int64_t edge) {
    int64_t n = na < nb ? na : nb;
    double s = 0, d = 0;
    for (int64_t i = edge; i < n - edge; i++) {
        s += (double)a[i] * a[i];
        d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    }
    return 10.0 * log10(s / (d > 0 ? d : 1e-30));
}

static double rms(const float *x, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)x[i] * x[i];
    return sqrt(s / (double)n);
}

/* Frequency of a sine from its upward zero crossings (linear interpolation), over [skip, n - skip). */
static double sine_freq(const float *x, int64_t n, int rate, int64_t skip) {
    double first = -1, last = -1;
    int count = 0;
    for (int64_t i = skip + 1; i < n - skip; i++) {
        if (x[i - 1] < 0 && x[i] >= 0) {
            double t = (i - 1) + x[i - 1] / (x[i - 1] - x[i]);
            if (first < 0) first = t;
            else count++;
            last = t;
        }
    }
    return count > 0 ? count * rate / (last - first) : 0;
}

static void load_ok(const char *rel, mp_audio *a) {
    mp_error e;
    int rc = mp_audio_load(mp_fixture(rel), 16000, a, &e);
    CHECKF(rc == 0, "%s: %s", rel, rc ? e.msg : "");
    if (rc) memset(a, 0, sizeof *a);
}

static void test_wav_exact(void) {
    mp_audio a;
    load_ok("audio/jfk.wav", &a);
    if (!a.samples) return;
    /* 176000 samples of s16 PCM (data at byte 78 behind a LIST chunk), passed through bit-exactly */
    CHECK_EQ_INT(a.n_samples, 176000);
    CHECK_EQ_INT(a.sample_rate, 16000);
    CHECK_EQ_INT(a.src_rate, 16000);
    CHECK_EQ_INT(a.src_channels, 1);
    int all_int = 1;
    float mn = 1, mx = -1;
    for (int64_t i = 0; i < a.n_samples; i++) {
        float v = a.samples[i] * 32768.0f;
        if (v != floorf(v)) all_int = 0;
        if (a.samples[i] < mn) mn = a.samples[i];
        if (a.samples[i] > mx) mx = a.samples[i];
    }
    CHECK(all_int);
    CHECK_EQ_INT((int)lrintf(mn * 32768.0f), -23710);
    CHECK_EQ_INT((int)lrintf(mx * 32768.0f), 25648);
    CHECK(a.samples[0] == 0.0f);
    mp_audio_free(&a);

    load_ok("audio_extra/speech_birch_canoe_16k_mono.wav", &a);
    CHECK_EQ_INT(a.n_samples, 45454);
    mp_audio_free(&a);
    load_ok("audio_extra/silence_0.5s_16k_mono.wav", &a);
    CHECK_EQ_INT(a.n_samples, 8000);
    if (a.samples) CHECK(rms(a.samples, a.n_samples) == 0.0);
    mp_audio_free(&a);
}

/* The same speech through different codecs and rates must give the same 16 kHz samples up to the
 * codec's own error. Tolerances are SNR floors a few dB under what was measured (jfk mp3: 40.9 dB,
 * FLAC 44.1 kHz stereo -> 16 kHz: 37.6 dB vs sox's own resampling, Vorbis q3 at 8 kHz band-limited:
 * 21.3 dB) and far above what a one-sample shift gives (< 9 dB). */
static void test_same_speech(void) {
    mp_audio w, m;
    load_ok("audio/jfk.wav", &w);
    load_ok("audio/jfk.mp3", &m);
    if (w.samples && m.samples) {
        CHECK_EQ_INT(m.n_samples, 176000); /* the decoder removes the encoder delay/padding (gapless info) */
        CHECK(strstr(m.src_format, "mp3") != NULL);
        double s = snr_db(w.samples, w.n_samples, m.samples, m.n_samples, 0);
        CHECKF(s > 36.0, "jfk wav vs mp3: SNR %.2f dB", s);
    }
    mp_audio_free(&w);
    mp_audio_free(&m);

    mp_audio f;
    load_ok("audio_extra/speech_birch_canoe_16k_mono.wav", &w);
    load_ok("audio_extra/speech_birch_canoe_44k1_stereo.flac", &f);
    if (w.samples && f.samples) {
        CHECK_EQ_INT(f.src_rate, 44100);
        CHECK_EQ_INT(f.src_channels, 2);
        CHECK_EQ_INT(f.src_frames, 125282);
        /* 125282 * 16000 / 44100 = 45453.6 -> 45454, the length sox wrote at 16 kHz */
        CHECK_EQ_INT(f.n_samples, 45454);
        double s = snr_db(w.samples, w.n_samples, f.samples, f.n_samples, 0);
        CHECKF(s > 34.0, "birch canoe 16k wav vs 44.1k stereo flac: SNR %.2f dB", s);
    }
    mp_audio_free(&w);
    mp_audio_free(&f);

    mp_audio o;
    load_ok("audio_extra/speech_glue_sheet_16k_mono.wav", &w);
    load_ok("audio_extra/speech_glue_sheet_8k_mono.ogg", &o);
    if (w.samples && o.samples) {
        CHECK_EQ_INT(o.src_rate, 8000);
        CHECK_EQ_INT(o.src_frames, 21728);
        CHECK_EQ_INT(o.n_samples, 2 * 21728); /* exact 2x upsampling */
        CHECK(w.n_samples - o.n_samples <= 1 && w.n_samples - o.n_samples >= -1);
        /* the 8 kHz file has nothing above 4 kHz: band-limit the 16 kHz WAV the same way first */
        float *lo = NULL, *hi = NULL;
        int64_t nlo = 0, nhi = 0;
        mp_error e;
        CHECK(mp_audio_convert(w.samples, w.n_samples, 1, 16000, 8000, &lo, &nlo, &e) == 0);
        CHECK(mp_audio_convert(lo, nlo, 1, 8000, 16000, &hi, &nhi, &e) == 0);
        if (hi) {
            double s = snr_db(hi, nhi, o.samples, o.n_samples, 0);
            CHECKF(s > 18.0, "glue sheet (band-limited) wav vs 8k vorbis: SNR %.2f dB", s);
        }
        double raw = snr_db(w.samples, w.n_samples, o.samples, o.n_samples, 0);
        CHECKF(raw > 14.0, "glue sheet wav vs 8k vorbis: SNR %.2f dB", raw);
        free(lo);
        free(hi);
    }
    mp_audio_free(&w);
    mp_audio_free(&o);
}

/* Audio tracks of video files: sines generated by ffmpeg's lavfi (amplitude 1/8: RMS 0.0884). */
static void test_video_tracks(void) {
    struct { const char *rel; double freq, dur; int src_rate; int64_t exact_n; } v[] = {
        {"video/testsrc2_320x240_24fps_2s_mjpeg_pcm.avi", 1000, 2, 16000, 32000},
        {"video/testsrc2_320x240_24fps_3s_vp9_opus.webm", 880, 3, 48000, 48000},
        {"video/testsrc2_320x240_24fps_4s_h264_aac.mp4", 440, 4, 44100, -1},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        mp_audio a;
        load_ok(v[i].rel, &a);
        if (!a.samples) continue;
        CHECK_EQ_INT(a.src_rate, v[i].src_rate);
        if (v[i].exact_n > 0) CHECK_EQ_INT(a.n_samples, v[i].exact_n);
        CHECKF(fabs(a.n_samples / 16000.0 - v[i].dur) < 0.05, "%s: %.3f s", v[i].rel, a.n_samples / 16000.0);
        double f = sine_freq(a.samples, a.n_samples, 16000, 1600);
        CHECKF(fabs(f - v[i].freq) < v[i].freq * 0.002, "%s: %.3f Hz, want %.0f", v[i].rel, f, v[i].freq);
        double r = rms(a.samples + 1600, a.n_samples - 3200);
        CHECKF(fabs(r - 0.125 / sqrt(2.0)) < 0.004, "%s: rms %.4f", v[i].rel, r);
        mp_audio_free(&a);
    }
}

/* Downmix and rate conversion on synthetic signals. */
static void test_convert(void) {
    mp_error e;
    const int n = 48000;
    float *st = malloc(sizeof(float) * 2 * n);
    for (int i = 0; i < n; i++) {
        float x = 0.5f * sinf(2 * (float)M_PI * 1000.0f * i / 48000.0f);
        st[2 * i] = x;
        st[2 * i + 1] = 0.25f;
    }
    float *out = NULL;
    int64_t no = 0;
    /* same rate, stereo -> mono: exactly the mean of the channels */
    CHECK(mp_audio_convert(st, n, 2, 48000, 48000, &out, &no, &e) == 0);
    CHECK_EQ_INT(no, n);
    double md = 0;
    for (int i = 0; i < n && out; i++) {
        double d = fabs(out[i] - 0.5 * (st[2 * i] + st[2 * i + 1]));
        if (d > md) md = d;
    }
    CHECKF(md < 1e-6, "downmix max diff %g", md);
    free(out);
    /* 48 kHz -> 16 kHz: length n/3, same sine frequency and amplitude, mean 0.125 kept */
    CHECK(mp_audio_convert(st, n, 2, 48000, 16000, &out, &no, &e) == 0);
    CHECK_EQ_INT(no, n / 3);
    if (out) {
        double f = sine_freq(out, no, 16000, 400);
        double mean = 0;
        for (int64_t i = 400; i < no - 400; i++) mean += out[i];
        mean /= (double)(no - 800);
        CHECKF(fabs(f - 1000.0) < 0.5, "freq %.3f", f);
        CHECKF(fabs(mean - 0.125) < 1e-3, "mean %.5f", mean);
        double s = 0;
        for (int64_t i = 400; i < no - 400; i++) s += (out[i] - 0.125) * (out[i] - 0.125);
        CHECKF(fabs(sqrt(s / (double)(no - 800)) - 0.25 / sqrt(2.0)) < 2e-3, "amplitude");
    }
    free(out);
    free(st);
    CHECK(mp_audio_convert(NULL, 0, 0, 16000, 16000, &out, &no, &e) == -1);
}

/* AIFF (24-bit, stereo, 22.05 kHz) and 32-bit float WAV written here with libsndfile: decoded, downmixed and
 * resampled to the right length, frequency and amplitude. */
static void test_written_formats(void) {
    struct { const char *ext; int format, rate, ch; } v[] = {
        {"aiff", SF_FORMAT_AIFF | SF_FORMAT_PCM_24, 22050, 2},
        {"wav", SF_FORMAT_WAV | SF_FORMAT_FLOAT, 48000, 1},
        {"flac", SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 16000, 3},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/audio_written_%d.%s", MP_BINARY_DIR, (int)getpid(), v[i].ext);
        SF_INFO info = {.samplerate = v[i].rate, .channels = v[i].ch, .format = v[i].format};
        SNDFILE *sf = sf_open(path, SFM_WRITE, &info);
        CHECKF(sf != NULL, "%s: %s", path, sf_strerror(NULL));
        if (!sf) continue;
        int n = v[i].rate * 3 / 2; /* 1.5 s of a 500 Hz sine, amplitude 0.4 in every channel */
        float *buf = malloc(sizeof(float) * (size_t)n * v[i].ch);
        for (int k = 0; k < n; k++)
            for (int c = 0; c < v[i].ch; c++) buf[k * v[i].ch + c] = 0.4f * sinf(2 * (float)M_PI * 500.0f * k / v[i].rate);
        CHECK(sf_writef_float(sf, buf, n) == n);
        sf_close(sf);
        free(buf);
        mp_audio a;
        mp_error e;
        int rc = mp_audio_load(path, 16000, &a, &e);
        CHECKF(rc == 0, "%s: %s", v[i].ext, rc ? e.msg : "");
        if (rc == 0) {
            CHECK_EQ_INT(a.src_rate, v[i].rate);
            CHECK_EQ_INT(a.src_channels, v[i].ch);
            CHECK_EQ_INT(a.n_samples, 24000);
            double f = sine_freq(a.samples, a.n_samples, 16000, 800);
            CHECKF(fabs(f - 500.0) < 0.5, "%s: %.3f Hz", v[i].ext, f);
            CHECKF(fabs(rms(a.samples + 800, a.n_samples - 1600) - 0.4 / sqrt(2.0)) < 2e-3, "%s: rms", v[i].ext);
            mp_audio_free(&a);
        }
        unlink(path);
    }
}

/* The same audio (jfk.wav) encoded here by Debian's ffmpeg CLI as FLAC, MP3, AAC (M4A) and Opus, at 16 kHz
 * mono and at 44.1 / 48 kHz stereo: the 16 kHz samples we decode from each must equal the WAV's up to the
 * codec's own error. Lossless FLAC at 16 kHz mono is bit-exact; the SNR floors of the lossy and resampled
 * ones sit a few dB under what was measured (printed; FLAC 44.1k 74.9, MP3 64k 25.9, MP3 44.1k 30.5,
 * AAC 47.2, Opus 27.2 dB) and far above a one-sample shift (< 9 dB), so the length, alignment (encoder
 * delay removed), downmix and resampling are all checked. Stereo copies carry the mono signal in both
 * channels (pan, not ffmpeg's -3 dB upmix), so the channel average is the signal again. AAC in M4A may
 * keep the padding of its last 1024-sample frame (342 samples at 16 kHz). Skipped without ffmpeg. */
static void test_codec_matrix(void) {
    if (system("ffmpeg -version > /dev/null 2>&1") != 0) {
        fprintf(stderr, "  ffmpeg CLI absent: codec matrix skipped\n");
        return;
    }
    mp_audio w;
    load_ok("audio/jfk.wav", &w);
    if (!w.samples) return;
    struct { const char *ext, *args; int rate, ch; double min_snr; int64_t len_tol; } v[] = {
        {"flac", "-c:a flac", 16000, 1, INFINITY, 0},
        {"flac", "-c:a flac -ar 44100 -af 'pan=stereo|c0=c0|c1=c0'", 44100, 2, 60.0, 1},
        {"mp3", "-c:a libmp3lame -b:a 64k", 16000, 1, 23.0, 0},
        {"mp3", "-c:a libmp3lame -b:a 192k -ar 44100 -af 'pan=stereo|c0=c0|c1=c0'", 44100, 2, 27.0, 1},
        {"m4a", "-c:a aac -b:a 128k -ar 48000 -af 'pan=stereo|c0=c0|c1=c0'", 48000, 2, 40.0, 342},
        {"opus", "-c:a libopus -b:a 64k -ar 48000", 48000, 1, 24.0, 1},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        char path[512], cmd[1500];
        snprintf(path, sizeof path, "%s/audio_codec_%d_%zu.%s", MP_BINARY_DIR, (int)getpid(), i, v[i].ext);
        snprintf(cmd, sizeof cmd, "ffmpeg -nostdin -hide_banner -loglevel error -y -i '%s' %s '%s'",
                 mp_fixture("audio/jfk.wav"), v[i].args, path);
        if (system(cmd) != 0) {
            fprintf(stderr, "  ffmpeg cannot write %s (%s): skipped\n", v[i].ext, v[i].args);
            unlink(path);
            continue;
        }
        mp_audio a;
        mp_error e;
        int rc = mp_audio_load(path, 16000, &a, &e);
        CHECKF(rc == 0, "%s: %s", path, rc ? e.msg : "");
        if (rc == 0) {
            CHECK_EQ_INT(a.src_rate, v[i].rate);
            CHECK_EQ_INT(a.src_channels, v[i].ch);
            CHECKF(llabs(a.n_samples - w.n_samples) <= v[i].len_tol, "%s %s: %lld samples vs %lld", v[i].ext, v[i].args,
                   (long long)a.n_samples, (long long)w.n_samples);
            if (isinf(v[i].min_snr)) {
                int same = a.n_samples == w.n_samples;
                for (int64_t k = 0; same && k < a.n_samples; k++) same = a.samples[k] == w.samples[k];
                CHECKF(same, "%s %s: not bit-exact", v[i].ext, v[i].args);
                fprintf(stderr, "  %-4s %-44s bit-exact\n", v[i].ext, v[i].args);
            } else {
                double s = snr_db(w.samples, w.n_samples, a.samples, a.n_samples, 0);
                fprintf(stderr, "  %-4s %-44s SNR %.1f dB, %lld samples\n", v[i].ext, v[i].args, s, (long long)a.n_samples);
                CHECKF(s > v[i].min_snr, "%s %s: SNR %.2f dB vs the WAV", v[i].ext, v[i].args, s);
            }
            mp_audio_free(&a);
        }
        unlink(path);
    }
    mp_audio_free(&w);
}

static void expect_error(const char *path, const char *what) {
    mp_audio a;
    mp_error e = {{0}};
    int rc = mp_audio_load(path, 16000, &a, &e);
    CHECKF(rc == -1, "%s should fail", path);
    CHECKF(strstr(e.msg, path) != NULL, "error must name the file: %s", e.msg);
    if (what) CHECKF(strstr(e.msg, what) != NULL, "error '%s' should mention '%s'", e.msg, what);
    CHECK(a.samples == NULL);
    fprintf(stderr, "  expected error: %s\n", e.msg);
}

static const char *write_tmp(const char *tag, const void *data, size_t n) {
    static char path[8][512];
    static int k;
    char *p = path[k++ & 7];
    snprintf(p, 512, "%s/audio_%s_%d.bin", MP_BINARY_DIR, tag, (int)getpid());
    FILE *f = fopen(p, "wb");
    if (!f) return NULL;
    if (n) fwrite(data, 1, n, f);
    fclose(f);
    return p;
}

static void test_errors(void) {
    expect_error(mp_fixture("audio_extra/broken_header_only.wav"), "truncated");
    expect_error(mp_fixture("audio_extra/broken_truncated_fmt.wav"), "fmt");
    expect_error(mp_fixture("video/broken_truncated30_faststart.mp4"), "truncated");
    expect_error(mp_fixture("video/broken_truncated30_moov_at_end.mp4"), "corrupt or truncated");
    expect_error(mp_fixture("images/chelsea.jpg"), "no audio stream");
    expect_error(mp_fixture("whisper/EXPECTED.md"), "not a recognised");
    expect_error(mp_fixture("no/such/file.wav"), "cannot open");
    expect_error(mp_fixture("audio"), "directory");

    const char *p = write_tmp("empty", "", 0);
    if (p) { expect_error(p, "empty"); unlink(p); }
    unsigned long long s = 42;
    unsigned char junk[4096];
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (unsigned char)mp_test_rng(&s);
    p = write_tmp("junk", junk, sizeof junk);
    if (p) { expect_error(p, NULL); unlink(p); }
    /* a WAV cut right after its header (the header still announces the data) */
    FILE *f = fopen(mp_fixture("audio_extra/speech_birch_canoe_16k_mono.wav"), "rb");
    if (f) {
        unsigned char head[44];
        if (fread(head, 1, 44, f) == 44) {
            p = write_tmp("hdr", head, 44);
            if (p) { expect_error(p, "truncated"); unlink(p); }
        }
        fclose(f);
    }
}

static void test_stdin(void) {
    int fd = open(mp_fixture("audio/jfk.mp3"), O_RDONLY);
    if (fd < 0) return;
    int saved = dup(0);
    dup2(fd, 0);
    close(fd);
    mp_audio a;
    mp_error e;
    int rc = mp_audio_load("-", 16000, &a, &e);
    CHECKF(rc == 0, "stdin: %s", rc ? e.msg : "");
    if (!rc) CHECK_EQ_INT(a.n_samples, 176000);
    mp_audio_free(&a);
    dup2(saved, 0);
    close(saved);
}

int main(void) {
    if (!have(mp_fixture("audio/jfk.wav")) || !have(mp_fixture("audio_extra/speech_birch_canoe_16k_mono.wav"))) {
        fprintf(stderr, "fixtures absent: skipped\n");
        return MP_TEST_SKIP;
    }
    test_wav_exact();
    test_same_speech();
    test_video_tracks();
    test_convert();
    test_written_formats();
    test_codec_matrix();
    test_errors();
    test_stdin();
    return mp_test_result("test_audio");
}
