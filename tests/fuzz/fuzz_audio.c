/* fuzz_audio.c — libFuzzer harness for audio decoding from memory (preprocess/audio.c: libsndfile for
 * WAV/FLAC/Ogg/AIFF/..., FFmpeg for MP3/AAC/Opus/video audio, libswresample to mono at the output rate).
 *
 * The last byte of the input picks the output rate (16 kHz most of the time) and the name given as a
 * format hint. Seeds: make_seeds.py (fixture audio, cut to their first 64 KiB, + tiny generated files). */
#include "fuzz_util.h"
#include "preprocess/audio.h"

#include <math.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const int rates[8] = {16000, 16000, 16000, 16000, 8000, 22050, 44100, 16000};
    static const char *names[8] = {"fuzz.wav", "fuzz.mp3", "fuzz.ogg", "fuzz.flac", "fuzz.m4a", "fuzz", "fuzz.opus",
                                   "fuzz.aiff"};
    unsigned k = size ? data[size - 1] : 0;
    const char *name = names[(k >> 3) & 7];
    int rate = rates[k & 7];
    mp_audio a;
    mp_error e;
    memset(&e, 0, sizeof e);
    if (mp_audio_load_memory(data, size, name, rate, &a, &e) != 0) {
        fz_check_error(&e, name);
        if (a.samples || a.n_samples) abort();
        return 0;
    }
    if (!a.samples || a.n_samples <= 0 || a.sample_rate != rate || a.src_rate <= 0 || a.src_channels <= 0 ||
        !a.src_format[0]) {
        fprintf(stderr, "fuzz_audio: bad result n=%lld rate=%d src_rate=%d ch=%d\n", (long long)a.n_samples,
                a.sample_rate, a.src_rate, a.src_channels);
        abort();
    }
    fz_touch(a.samples, (size_t)a.n_samples * sizeof(float));
    mp_audio_free(&a);
    return 0;
}
