#!/usr/bin/env python3
"""mel_ref.py — Whisper's log-mel spectrogram in PyTorch, written from openai/whisper audio.py
(log_mel_spectrogram: torch.stft(center=True, reflect), periodic Hann, |X|^2 without the last frame,
filters @ power, log10 clamp 1e-10, max - 8, (x + 4) / 4).

usage: mel_ref.py WAV GGML_BIN MODE OUT
  WAV      16 kHz mono 16-bit PCM WAV (read with Python's wave module: independent of libsndfile)
  GGML_BIN whisper.cpp ggml model file: its mel filterbank (OpenAI's mel_filters.npz values) is used
  MODE     whisper  (30 s of zeros appended, as whisper.cpp and openai transcribe() do)
           hf       (audio padded/trimmed to 30 s, as the HF feature extractor does)
  OUT      raw float32 [n_mels][n_frames]; the shape is printed on stdout as "n_mels n_frames"
"""
import struct
import sys
import wave

import numpy as np
import torch

N_FFT, HOP, N_SAMPLES = 400, 160, 480000


def read_wav(path):
    with wave.open(path, "rb") as w:
        assert w.getnchannels() == 1 and w.getsampwidth() == 2 and w.getframerate() == 16000
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return torch.from_numpy(pcm.astype(np.float32) / 32768.0)


def read_filters(path):
    d = open(path, "rb").read()
    magic, = struct.unpack_from("<I", d, 0)
    assert magic == 0x67676D6C
    n_mels_hp = struct.unpack_from("<i", d, 4 + 9 * 4)[0]
    n_mel, n_fft = struct.unpack_from("<ii", d, 48)
    assert n_mel == n_mels_hp
    f = np.frombuffer(d, dtype="<f4", count=n_mel * n_fft, offset=56).reshape(n_mel, n_fft)
    return torch.from_numpy(f.copy())


def log_mel_spectrogram(audio, filters, padding=0):
    if padding > 0:
        audio = torch.nn.functional.pad(audio, (0, padding))
    window = torch.hann_window(N_FFT)
    stft = torch.stft(audio, N_FFT, HOP, window=window, return_complex=True)
    magnitudes = stft[..., :-1].abs() ** 2
    mel_spec = filters @ magnitudes
    log_spec = torch.clamp(mel_spec, min=1e-10).log10()
    log_spec = torch.maximum(log_spec, log_spec.max() - 8.0)
    log_spec = (log_spec + 4.0) / 4.0
    return log_spec


def pad_or_trim(array, length=N_SAMPLES):
    if array.shape[-1] > length:
        return array[..., :length]
    return torch.nn.functional.pad(array, (0, length - array.shape[-1]))


def main():
    wav, gbin, mode, out = sys.argv[1:5]
    audio = read_wav(wav)
    filters = read_filters(gbin)
    if mode == "whisper":
        mel = log_mel_spectrogram(audio, filters, padding=N_SAMPLES)
    elif mode == "hf":
        mel = log_mel_spectrogram(pad_or_trim(audio), filters)
    else:
        sys.exit("mode must be whisper or hf")
    mel = mel.contiguous().numpy().astype("<f4")
    mel.tofile(out)
    print(mel.shape[0], mel.shape[1])


if __name__ == "__main__":
    main()
