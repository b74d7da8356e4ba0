/* mel.h — Whisper's log-mel spectrogram.
 *
 * Exactly openai/whisper audio.py log_mel_spectrogram (= whisper.cpp, = HF WhisperFeatureExtractor):
 * periodic Hann window of n_fft, torch.stft(center=True) reflect padding of n_fft/2 on both sides, hop,
 * power |X|^2 with the last frame dropped, mel filterbank, log10(max(x, 1e-10)), clamp to (max - 8),
 * (x + 4) / 4. The FFT is our own (mixed radix 2/3/4/5, real input via a half-length complex FFT),
 * computed in double; frames are spread over the thread pool and the result does not depend on it.
 *
 * Output layout: [n_mels][n_frames], frames contiguous — Whisper's input tensor [80, 3000]
 * (ggml ne = {n_frames, n_mels}), ready for the encoder's conv1d.
 */
#ifndef MP_MEL_H
#define MP_MEL_H

#include "kernels/mp.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MP_WHISPER_N_FFT 400
#define MP_WHISPER_HOP 160
#define MP_WHISPER_N_SAMPLES 480000 /* 30 s at 16 kHz */
#define MP_WHISPER_N_FRAMES 3000    /* mel frames in 30 s */

typedef struct mp_mel_filters {
    int n_mels, n_bins; /* n_bins = n_fft / 2 + 1 */
    float *w;           /* [n_mels][n_bins] */
    int *lo, *hi;       /* nonzero range [lo, hi) of each filter */
} mp_mel_filters;

/* Slaney-style mel filterbank as librosa.filters.mel(sr, n_fft, n_mels) / HF mel_filter_bank(norm="slaney",
 * mel_scale="slaney") compute it (what OpenAI's mel_filters.npz holds): fmin 0, fmax sr/2. */
int mp_mel_filters_slaney(mp_mel_filters *f, int sample_rate, int n_fft, int n_mels, mp_error *err);
/* From stored weights (the ggml file's filterbank, a preprocessor_config.json's mel_filters). */
int mp_mel_filters_from(mp_mel_filters *f, const float *w, int n_mels, int n_bins, mp_error *err);
void mp_mel_filters_free(mp_mel_filters *f);

typedef struct mp_mel_params {
    int n_fft, hop;
    int64_t pad_zeros;   /* zeros appended to the audio first (whisper.cpp and openai transcribe: 480000) */
    int64_t fit_samples; /* > 0: pad with zeros / trim the audio to exactly this many samples (HF: 480000) */
} mp_mel_params;

/* whisper.cpp / openai transcribe(): 30 s of zeros appended, every frame kept. */
mp_mel_params mp_mel_params_whisper(void);
/* HF WhisperFeatureExtractor: audio padded or trimmed to 30 s, 3000 frames. */
mp_mel_params mp_mel_params_hf(void);

/* Frames produced for n samples: (padded length) / hop. */
int64_t mp_mel_n_frames(int64_t n_samples, const mp_mel_params *p);

/* Log-mel of x[0..n). *out gets malloc'd [n_mels][*n_frames]. tp may be NULL. */
int mp_log_mel(const float *x, int64_t n, const mp_mel_filters *f, const mp_mel_params *p, mp_threadpool *tp,
               float **out, int64_t *n_frames, mp_error *err);

/* Copies frames [start, start + len) of a [n_mels][n_frames] log-mel into dst [n_mels][len]; frames past
 * the end are 0 (what openai's pad_or_trim and whisper.cpp's encoder input do). */
void mp_mel_segment(const float *mel, int n_mels, int64_t n_frames, int64_t start, int64_t len, float *dst);

/* ---- the FFT, exposed for tests and other front ends ---- */
typedef struct mp_fft_plan mp_fft_plan;
mp_fft_plan *mp_fft_plan_new(int n); /* any n >= 1; radices 2, 3, 4, 5 fast, other factors by plain DFT */
void mp_fft_plan_free(mp_fft_plan *p);
/* Complex DFT X[k] = sum x[j] e^{-2 pi i jk/n}; in/out interleaved (re, im), out != in. scratch: 2n doubles. */
void mp_fft(const mp_fft_plan *p, const double *in, double *out, double *scratch);

#ifdef __cplusplus
}
#endif
#endif
