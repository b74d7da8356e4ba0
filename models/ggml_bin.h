/* ggml_bin.h — whisper.cpp's legacy ggml model files (not GGUF): Whisper models (ggml-*.bin), the
 * Silero VAD model (ggml-silero-*.bin) and Parakeet-TDT models (ggml-parakeet-*.bin).
 *
 * Layout (all little-endian, no alignment, see ../shared/fixtures/whisper/FORMAT.md):
 *   u32 magic 0x67676d6c ("lmgg" on disk), a kind-specific header, then tensor records until EOF:
 *   i32 n_dims (0..4), i32 name_len, i32 ggml_type, i32 ne[n_dims], name bytes, data bytes.
 *
 * The file is mmap'd. Tensor data is used in place where the file offset is aligned for the element
 * type (4 bytes for F32, 2 for F16/BF16/quant blocks, ...); tensors at misaligned offsets (the format
 * has no padding) are copied once into aligned memory so kernels can read them as typed arrays.
 * Every count, length, type and offset is checked against the file before use: a bad file gives -1
 * and one line naming the file and the problem. */
#ifndef MP_GGML_BIN_H
#define MP_GGML_BIN_H

#include "kernels/mp.h"
#include "models/mmap.h"

#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MP_GGML_FILE_MAGIC 0x67676d6cu

typedef enum mp_ggml_bin_kind {
    MP_GGML_BIN_WHISPER = 1,
    MP_GGML_BIN_SILERO = 2,
    MP_GGML_BIN_PARAKEET = 3,
} mp_ggml_bin_kind;

/* Whisper hparams, in file order. ftype is as stored (quantization version * 1000 + file type). */
typedef struct mp_whisper_hparams {
    int32_t n_vocab, n_audio_ctx, n_audio_state, n_audio_head, n_audio_layer;
    int32_t n_text_ctx, n_text_state, n_text_head, n_text_layer, n_mels, ftype;
} mp_whisper_hparams;

/* Whisper special token ids (whisper.cpp's rules: English-only vs multilingual, number of languages). */
typedef struct mp_whisper_specials {
    int multilingual, num_languages;
    int32_t eot, sot, translate, transcribe, solm, prev, nosp, no_timestamps, timestamp_begin;
} mp_whisper_specials;

#define MP_SILERO_MAX_LAYERS 16
typedef struct mp_silero_hparams {
    char type[256];                  /* "silero-16k" */
    int32_t version[3];              /* 6, 2, 0 */
    int32_t n_window, n_context;     /* 512, 64 */
    int32_t n_encoder_layers;        /* 4 */
    int32_t enc_in[MP_SILERO_MAX_LAYERS], enc_out[MP_SILERO_MAX_LAYERS], enc_kernel[MP_SILERO_MAX_LAYERS];
    int32_t lstm_input, lstm_hidden, final_conv_in, final_conv_out;
} mp_silero_hparams;

typedef struct mp_parakeet_hparams {
    int32_t n_vocab, n_audio_ctx, n_audio_state, n_audio_head, n_audio_layer, n_mels, ftype, n_fft;
    int32_t subsampling_factor, n_subsampling_channels, n_conv_kernel, n_pred_dim, n_pred_layers;
    int32_t n_tdt_durations, n_max_tokens;
    int32_t n_window;         /* STFT window length */
    float *window;            /* n_window values (owned copy) */
    uint32_t *tdt_durations;  /* n_tdt_durations values (owned copy) */
} mp_parakeet_hparams;

typedef struct mp_ggml_bin_tensor {
    char *name;      /* NUL-terminated copy of the stored name */
    mp_tensor t;     /* dtype, ne (ggml order), contiguous strides, data (mapped or aligned copy) */
    uint64_t offset; /* file offset of the data */
    uint64_t nbytes;
    int copied;      /* 1 when the data was copied for alignment */
} mp_ggml_bin_tensor;

typedef struct mp_ggml_bin {
    char *path;
    const uint8_t *map; /* the whole file (read-only mapping, or the caller's buffer) */
    size_t size;
    mp_mmap file;       /* set when opened from a path */
    mp_ggml_bin_kind kind;

    mp_whisper_hparams whisper;   /* kind == WHISPER */
    mp_silero_hparams silero;     /* kind == SILERO */
    mp_parakeet_hparams parakeet; /* kind == PARAKEET */

    /* mel filterbank (whisper, parakeet): n_mel rows of n_fft_bins floats (owned, aligned copy) */
    int32_t n_mel, n_fft_bins;
    float *mel_filters;

    /* vocabulary stored in the file (whisper, parakeet): token i is tok_len[i] raw bytes at map + tok_off[i] */
    int32_t n_vocab_file;
    uint64_t *tok_off;
    uint32_t *tok_len;

    int n_tensors;
    mp_ggml_bin_tensor *tensors; /* in file order */
    mp_strindex by_name;
    mp_pool names;
    uint64_t data_bytes;   /* sum of tensor sizes */
    uint64_t copied_bytes; /* bytes copied for alignment */
    void *copy_buf;
} mp_ggml_bin;

/* Opens and validates a file (kind detected from the header). */
int mp_ggml_bin_open(mp_ggml_bin *m, const char *path, mp_error *err);
/* Same over a caller-owned buffer that must outlive m (used by the fuzzer and tests); name for messages. */
int mp_ggml_bin_open_memory(mp_ggml_bin *m, const void *data, size_t size, const char *name, mp_error *err);
void mp_ggml_bin_close(mp_ggml_bin *m);

/* 1 if the first bytes look like one of these files (magic + a recognisable header), else 0. */
int mp_ggml_bin_probe(const void *head, size_t n);
const char *mp_ggml_bin_kind_name(mp_ggml_bin_kind k); /* "whisper", "silero-vad", "parakeet-tdt" */

/* Tensor by exact name, or NULL. */
const mp_ggml_bin_tensor *mp_ggml_bin_find(const mp_ggml_bin *m, const char *name);

/* Token bytes of stored vocabulary entry id (not NUL-terminated); NULL if id is out of range. */
const char *mp_ggml_bin_token(const mp_ggml_bin *m, int32_t id, uint32_t *len);

/* Whisper helpers. */
const char *mp_whisper_model_type(const mp_whisper_hparams *hp); /* "tiny", "base", ..., "large v3", "unknown" */
void mp_whisper_specials_from_hparams(const mp_whisper_hparams *hp, mp_whisper_specials *s);
/* ggml tensor type that the "large matrices" use for a file type (ftype % 1000); -1 if unknown. */
int mp_whisper_ftype_to_dtype(int32_t ftype);
/* Checks the whisper tensor set: either no tensors (an empty model for testing, returns 0 and sets
 * *complete = 0) or every tensor of the architecture with its shape (complete = 1). Unknown names,
 * missing tensors and wrong shapes or dtypes are errors. Called by mp_ggml_bin_open for whisper files. */
int mp_ggml_bin_check_whisper(const mp_ggml_bin *m, int *complete, mp_error *err);

/* Writers (tests write small random-weight models in the real format with these). Return 0 or -1 with
 * err naming `name`. The header: magic, hparams, filters (n_mel x n_fft_bins), n_vocab_file tokens
 * (tok[i] of tok_len[i] bytes). A tensor record: n_dims (0..4) dims of ne, data of the dtype's size. */
int mp_ggml_bin_write_whisper_header(FILE *f, const char *name, const mp_whisper_hparams *hp, const float *filters,
                                     int32_t n_mel, int32_t n_fft_bins, int32_t n_vocab_file, const char *const *tok,
                                     const uint32_t *tok_len, mp_error *err);
int mp_ggml_bin_write_tensor(FILE *f, const char *name, const char *tensor_name, mp_dtype dt, int n_dims,
                             const int64_t *ne, const void *data, mp_error *err);

#ifdef __cplusplus
}
#endif
#endif
