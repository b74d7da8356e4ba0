/* silero.h — Silero VAD v6 (the whisper.cpp ggml conversion, ggml-silero-v*.bin): speech probability per
 * 512-sample window at 16 kHz, and speech segments from those probabilities with whisper.cpp's rules.
 *
 * The network, per window (what whisper.cpp's whisper_vad computes):
 *   reflect-pad the 512 samples by 64 on both sides -> 640
 *   STFT as a conv1d with the stored basis (258 channels = 129 real + 129 imaginary, kernel 256, hop 128)
 *   -> 4 frames, magnitude sqrt(re^2 + im^2) -> [129][4]
 *   4 x (conv1d k3 p1 + bias + ReLU), strides 1, 2, 2, 1: 129 -> 128 -> 64 -> 64 -> 128 channels, 4 -> 1 frame
 *   LSTM cell (gates i, f, g, o; both biases), state h, c carried from window to window
 *   ReLU, 1x1 conv 128 -> 1 + bias, sigmoid.
 * The LSTM state starts at zero for each mp_silero_probs call. The last window is zero-padded.
 * Convolutions run as im2col + mp_matmul; like whisper.cpp (ggml_conv_1d's f16 im2col) their inputs are
 * rounded to f16, which keeps the probabilities within ~2e-4 of whisper.cpp's.
 */
#ifndef MP_SILERO_H
#define MP_SILERO_H

#include "kernels/mp.h"
#include "models/ggml_bin.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MP_SILERO_LAYERS 4

typedef struct mp_silero {
    mp_ggml_bin file;
    int n_window;  /* samples per probability (512) */
    int pad;       /* reflect padding each side (64) */
    int n_fft;     /* STFT kernel (256); hop = n_fft / 2 */
    int n_freq;    /* n_fft / 2 + 1 (129) */
    int hidden;    /* LSTM size (128) */
    int stride[MP_SILERO_LAYERS];
    const mp_tensor *basis;                     /* {256, 1, 258} */
    const mp_tensor *enc_w[MP_SILERO_LAYERS];   /* {3, C_in, C_out} */
    const float *enc_b[MP_SILERO_LAYERS];
    const mp_tensor *w_ih, *w_hh;               /* {hidden, 4 hidden} */
    const float *b_ih, *b_hh;
    const mp_tensor *out_w;                     /* {hidden} */
    float out_b;
    mp_tensor basis2d;                          /* the basis as a {256, 258} linear weight */
    mp_tensor enc2d[MP_SILERO_LAYERS];          /* conv weights as {K * C_in, C_out} linear weights */
} mp_silero;

int mp_silero_load(mp_silero *m, const char *path, mp_error *err);
void mp_silero_free(mp_silero *m);

/* One probability per n_window samples: *n_probs = ceil(n / n_window); *probs is malloc'd.
 * ex: CPU (or CUDA) execution context for the convolutions and the input projection. */
int mp_silero_probs(const mp_silero *m, mp_exec *ex, const float *samples, int64_t n, float **probs,
                    int64_t *n_probs, mp_error *err);

/* whisper.cpp's whisper_vad_params, same defaults (whisper_vad_default_params). */
typedef struct mp_vad_params {
    float threshold;       /* 0.5 */
    int min_speech_ms;     /* 250 */
    int min_silence_ms;    /* 100 */
    float max_speech_s;    /* FLT_MAX: no limit */
    int speech_pad_ms;     /* 30 */
    float samples_overlap; /* 0.1 s (used when transcribing segments, not for finding them) */
} mp_vad_params;

mp_vad_params mp_vad_default_params(void);

typedef struct mp_vad_segment {
    int64_t start, end; /* samples at 16 kHz, after padding */
    int64_t t0, t1;     /* centiseconds, rounded as whisper.cpp reports them */
} mp_vad_segment;

/* Speech segments from probabilities (whisper_vad_segments_from_probs: hysteresis at threshold and
 * threshold - 0.15, min speech / min silence, max speech split, merge of gaps < 200 ms, padding).
 * *segs is malloc'd (NULL when none). */
int mp_vad_segments(const float *probs, int64_t n_probs, int n_window, int sample_rate, const mp_vad_params *p,
                    mp_vad_segment **segs, int *n_segs, mp_error *err);

#ifdef __cplusplus
}
#endif
#endif
