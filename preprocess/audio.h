/* audio.h — audio in: decode any file (or stdin) to mono float samples at one sample rate.
 *
 * WAV/FLAC/Ogg-Vorbis/AIFF (and the other classic formats) are decoded by libsndfile; MP3, M4A/AAC,
 * Opus and the audio track of video files by FFmpeg (libavformat/libavcodec). Every rate and channel
 * count is converted by libswresample: channels are averaged to mono, the rate is converted with
 * swr's windowed-sinc resampler. A 16 kHz mono source is passed through untouched (bit-exact).
 * Samples are float in [-1, 1) (16-bit PCM divided by 32768, as whisper.cpp does).
 */
#ifndef MP_AUDIO_H
#define MP_AUDIO_H

#include "kernels/mp.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MP_AUDIO_RATE 16000 /* Whisper / Silero sample rate */

typedef struct mp_audio {
    float *samples;      /* n_samples mono samples at sample_rate (malloc'd; mp_audio_free) */
    int64_t n_samples;
    int sample_rate;
    /* what the source was */
    int src_rate, src_channels;
    int64_t src_frames;  /* frames decoded at src_rate */
    char src_format[96]; /* e.g. "WAV PCM 16 (libsndfile)", "mp3 (ffmpeg)" */
} mp_audio;

/* Decodes path ("-" = standard input) to mono at sample_rate (<= 0: MP_AUDIO_RATE).
 * A file that cannot be opened, is not audio, holds no audio stream or no samples, or is corrupt gives
 * -1 and one line in err naming the file and the problem. */
int mp_audio_load(const char *path, int sample_rate, mp_audio *out, mp_error *err);
/* Same from a buffer; name is used in messages (and as a format hint by FFmpeg). */
int mp_audio_load_memory(const void *data, size_t size, const char *name, int sample_rate, mp_audio *out,
                         mp_error *err);
void mp_audio_free(mp_audio *a);

/* Converts interleaved float frames (channels, src_rate) to mono at dst_rate with libswresample. *out is
 * malloc'd. Used by the decoders above; exposed for tests and for callers that already hold PCM. */
int mp_audio_convert(const float *in, int64_t n_frames, int channels, int src_rate, int dst_rate, float **out,
                     int64_t *n_out, mp_error *err);

#ifdef __cplusplus
}
#endif
#endif
