/* fuzz_ggml_bin.c — libFuzzer harness for the whisper.cpp ggml .bin reader (models/ggml_bin.c).
 * Seed corpus: the .bin files in ../shared/fixtures/whisper (whisper, silero-vad, parakeet). */
#include "models/ggml_bin.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    mp_ggml_bin m;
    mp_error e;
    if (mp_ggml_bin_open_memory(&m, data, size, "fuzz.bin", &e) != 0) return 0;
    /* touch everything the reader handed out */
    volatile uint64_t sink = 0;
    for (int i = 0; i < m.n_tensors; i++) {
        const mp_ggml_bin_tensor *t = mp_ggml_bin_find(&m, m.tensors[i].name);
        if (t != &m.tensors[i]) abort();
        if (t->nbytes) sink += ((const uint8_t *)t->t.data)[t->nbytes - 1];
    }
    for (int32_t i = 0; i < m.n_vocab_file; i++) {
        uint32_t len;
        const char *tok = mp_ggml_bin_token(&m, i, &len);
        if (len) sink += (uint8_t)tok[len - 1];
    }
    if (m.mel_filters) sink += (uint64_t)m.mel_filters[(size_t)m.n_mel * m.n_fft_bins - 1];
    if (m.kind == MP_GGML_BIN_WHISPER) {
        int complete;
        mp_whisper_specials s;
        mp_ggml_bin_check_whisper(&m, &complete, &e);
        mp_whisper_specials_from_hparams(&m.whisper, &s);
    }
    (void)sink;
    mp_ggml_bin_close(&m);
    return 0;
}
