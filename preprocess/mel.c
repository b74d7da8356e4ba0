/* mel.c — Whisper log-mel spectrogram with our own mixed-radix FFT. See mel.h. */
#include "preprocess/mel.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

/* ---------------------------------------------------------------- FFT (decimation in time, any n) */

#define FFT_MAX_FACTORS 64

struct mp_fft_plan {
    int n;
    int fac[2 * FFT_MAX_FACTORS]; /* (radix, remaining length) pairs */
    double *tw;                   /* e^{-2 pi i k/n}, k < n, interleaved */
};

mp_fft_plan *mp_fft_plan_new(int n) {
    if (n < 1) return NULL;
    mp_fft_plan *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->n = n;
    p->tw = malloc(sizeof(double) * 2 * (size_t)n);
    if (!p->tw) { free(p); return NULL; }
    for (int k = 0; k < n; k++) {
        double a = -2.0 * M_PI * k / n;
        p->tw[2 * k] = cos(a);
        p->tw[2 * k + 1] = sin(a);
    }
    /* factor: 4s first, then 2, 3, 5, then whatever is left */
    int m = n, nf = 0, r = 4;
    while (m > 1) {
        while (m % r) {
            r = r == 4 ? 2 : r == 2 ? 3 : r + 2;
            if (r * r > m) r = m;
        }
        m /= r;
        p->fac[2 * nf] = r;
        p->fac[2 * nf + 1] = m;
        nf++;
    }
    if (nf == 0) { /* n == 1 */
        p->fac[0] = 1;
        p->fac[1] = 1;
    }
    return p;
}

void mp_fft_plan_free(mp_fft_plan *p) {
    if (!p) return;
    free(p->tw);
    free(p);
}

/* Radix-r butterflies over r sub-transforms of length m: out[u + q*m] = sum_j F_j[u] W^{j (u + q m) fstride}. */
static void butterfly(const mp_fft_plan *p, double *out, int fstride, int r, int m, double *scratch) {
    const int n = p->n;
    const double *tw = p->tw;
    if (r == 2) {
        for (int u = 0; u < m; u++) {
            double *a = out + 2 * u, *b = out + 2 * (u + m);
            const double *w = tw + 2 * (u * fstride);
            double br = b[0] * w[0] - b[1] * w[1], bi = b[0] * w[1] + b[1] * w[0];
            b[0] = a[0] - br;
            b[1] = a[1] - bi;
            a[0] += br;
            a[1] += bi;
        }
        return;
    }
    if (r == 4) {
        for (int u = 0; u < m; u++) {
            double x[4][2];
            for (int j = 0; j < 4; j++) {
                const double *v = out + 2 * (u + j * m);
                const double *w = tw + 2 * ((j * u * fstride) % n);
                x[j][0] = v[0] * w[0] - v[1] * w[1];
                x[j][1] = v[0] * w[1] + v[1] * w[0];
            }
            double s0r = x[0][0] + x[2][0], s0i = x[0][1] + x[2][1];
            double d0r = x[0][0] - x[2][0], d0i = x[0][1] - x[2][1];
            double s1r = x[1][0] + x[3][0], s1i = x[1][1] + x[3][1];
            double d1r = x[1][0] - x[3][0], d1i = x[1][1] - x[3][1];
            double *o0 = out + 2 * u, *o1 = out + 2 * (u + m), *o2 = out + 2 * (u + 2 * m), *o3 = out + 2 * (u + 3 * m);
            o0[0] = s0r + s1r;
            o0[1] = s0i + s1i;
            o2[0] = s0r - s1r;
            o2[1] = s0i - s1i;
            /* forward transform: multiply d1 by -i */
            o1[0] = d0r + d1i;
            o1[1] = d0i - d1r;
            o3[0] = d0r - d1i;
            o3[1] = d0i + d1r;
        }
        return;
    }
    for (int u = 0; u < m; u++) {
        for (int j = 0; j < r; j++) {
            scratch[2 * j] = out[2 * (u + j * m)];
            scratch[2 * j + 1] = out[2 * (u + j * m) + 1];
        }
        for (int q = 0; q < r; q++) {
            int k = u + q * m;
            double sr = scratch[0], si = scratch[1];
            long idx = 0, step = (long)fstride * k % n;
            for (int j = 1; j < r; j++) {
                idx += step;
                if (idx >= n) idx -= n;
                const double *w = tw + 2 * idx;
                sr += scratch[2 * j] * w[0] - scratch[2 * j + 1] * w[1];
                si += scratch[2 * j] * w[1] + scratch[2 * j + 1] * w[0];
            }
            out[2 * k] = sr;
            out[2 * k + 1] = si;
        }
    }
}

static void fft_work(const mp_fft_plan *p, double *out, const double *in, int fstride, const int *fac, double *scratch) {
    int r = fac[0], m = fac[1];
    if (m == 1) {
        for (int k = 0; k < r; k++) {
            out[2 * k] = in[2 * (size_t)k * fstride];
            out[2 * k + 1] = in[2 * (size_t)k * fstride + 1];
        }
    } else {
        for (int k = 0; k < r; k++) fft_work(p, out + 2 * (size_t)k * m, in + 2 * (size_t)k * fstride, fstride * r, fac + 2, scratch);
    }
    if (r > 1) butterfly(p, out, fstride, r, m, scratch);
}

void mp_fft(const mp_fft_plan *p, const double *in, double *out, double *scratch) {
    fft_work(p, out, in, 1, p->fac, scratch);
}

/* ---------------------------------------------------------------- mel filterbank */

static double hz_to_mel(double f) { /* slaney */
    const double f_sp = 200.0 / 3.0, min_log_hz = 1000.0, min_log_mel = min_log_hz / f_sp, logstep = log(6.4) / 27.0;
    return f >= min_log_hz ? min_log_mel + log(f / min_log_hz) / logstep : f / f_sp;
}

static double mel_to_hz(double m) {
    const double f_sp = 200.0 / 3.0, min_log_hz = 1000.0, min_log_mel = min_log_hz / f_sp, logstep = log(6.4) / 27.0;
    return m >= min_log_mel ? min_log_hz * exp(logstep * (m - min_log_mel)) : f_sp * m;
}

static int filters_alloc(mp_mel_filters *f, int n_mels, int n_bins, mp_error *err) {
    memset(f, 0, sizeof *f);
    if (n_mels < 1 || n_mels > 4096 || n_bins < 1 || n_bins > (1 << 16))
        return mp_errf(err, "mel: bad filterbank size %d x %d", n_mels, n_bins);
    f->n_mels = n_mels;
    f->n_bins = n_bins;
    f->w = mp_aligned_alloc(sizeof(float) * (size_t)n_mels * n_bins);
    f->lo = malloc(sizeof(int) * (size_t)n_mels);
    f->hi = malloc(sizeof(int) * (size_t)n_mels);
    if (!f->w || !f->lo || !f->hi) {
        mp_mel_filters_free(f);
        return mp_errf(err, "mel: out of memory");
    }
    return 0;
}

static void filters_ranges(mp_mel_filters *f) {
    for (int m = 0; m < f->n_mels; m++) {
        const float *w = f->w + (size_t)m * f->n_bins;
        int lo = 0, hi = f->n_bins;
        while (lo < hi && w[lo] == 0.0f) lo++;
        while (hi > lo && w[hi - 1] == 0.0f) hi--;
        f->lo[m] = lo;
        f->hi[m] = hi;
    }
}

int mp_mel_filters_slaney(mp_mel_filters *f, int sample_rate, int n_fft, int n_mels, mp_error *err) {
    if (sample_rate <= 0 || n_fft < 2) return mp_errf(err, "mel: bad sample rate %d or n_fft %d", sample_rate, n_fft);
    int n_bins = n_fft / 2 + 1;
    if (filters_alloc(f, n_mels, n_bins, err)) return -1;
    /* librosa.filters.mel: mel points evenly spaced (np.linspace) between hz_to_mel(0) and hz_to_mel(sr/2) */
    double *mel_f = malloc(sizeof(double) * (size_t)(n_mels + 2));
    if (!mel_f) {
        mp_mel_filters_free(f);
        return mp_errf(err, "mel: out of memory");
    }
    double lo = hz_to_mel(0.0), hi = hz_to_mel(sample_rate / 2.0), step = (hi - lo) / (n_mels + 1);
    for (int i = 0; i < n_mels + 2; i++) mel_f[i] = mel_to_hz(i == n_mels + 1 ? hi : lo + i * step);
    const double bin_hz = (double)sample_rate / n_fft;
    for (int m = 0; m < n_mels; m++) {
        double fd0 = mel_f[m + 1] - mel_f[m], fd1 = mel_f[m + 2] - mel_f[m + 1];
        double enorm = 2.0 / (mel_f[m + 2] - mel_f[m]);
        for (int k = 0; k < n_bins; k++) {
            double fk = k * bin_hz;
            double lower = -(mel_f[m] - fk) / fd0, upper = (mel_f[m + 2] - fk) / fd1;
            double v = lower < upper ? lower : upper;
            /* librosa keeps the triangle in float32, then scales it (in double) by the slaney norm */
            float tri = (float)(v > 0 ? v : 0);
            f->w[(size_t)m * n_bins + k] = (float)((double)tri * enorm);
        }
    }
    free(mel_f);
    filters_ranges(f);
    return 0;
}

int mp_mel_filters_from(mp_mel_filters *f, const float *w, int n_mels, int n_bins, mp_error *err) {
    if (filters_alloc(f, n_mels, n_bins, err)) return -1;
    memcpy(f->w, w, sizeof(float) * (size_t)n_mels * n_bins);
    filters_ranges(f);
    return 0;
}

void mp_mel_filters_free(mp_mel_filters *f) {
    if (!f) return;
    mp_aligned_free(f->w);
    free(f->lo);
    free(f->hi);
    memset(f, 0, sizeof *f);
}

/* ---------------------------------------------------------------- log-mel */

mp_mel_params mp_mel_params_whisper(void) {
    mp_mel_params p = {MP_WHISPER_N_FFT, MP_WHISPER_HOP, MP_WHISPER_N_SAMPLES, 0};
    return p;
}

mp_mel_params mp_mel_params_hf(void) {
    mp_mel_params p = {MP_WHISPER_N_FFT, MP_WHISPER_HOP, 0, MP_WHISPER_N_SAMPLES};
    return p;
}

static int64_t padded_len(int64_t n, const mp_mel_params *p) {
    return p->fit_samples > 0 ? p->fit_samples : n + (p->pad_zeros > 0 ? p->pad_zeros : 0);
}

int64_t mp_mel_n_frames(int64_t n_samples, const mp_mel_params *p) {
    if (p->hop <= 0 || p->n_fft <= 0) return 0;
    int64_t L = padded_len(n_samples, p);
    /* torch.stft(center=True) gives 1 + (L + 2*(n_fft/2) - n_fft) / hop frames; Whisper drops the last */
    int64_t span = L + 2 * (p->n_fft / 2) - p->n_fft;
    return span < 0 ? 0 : span / p->hop;
}

typedef struct mel_job {
    const float *x;
    int64_t n_x, L, n_frames;
    const mp_mel_filters *f;
    const mp_mel_params *p;
    const double *window, *rtw; /* rtw: e^{-2 pi i k / n_fft} for the real-FFT split */
    const mp_fft_plan *plan;    /* n_fft/2 (even n_fft) or n_fft points */
    float *out;
    int failed;
} mel_job;

/* sample j of the (padded) signal, with torch's reflect padding outside [0, L) */
static inline double sample_at(const mel_job *J, int64_t j) {
    const int64_t L = J->L;
    if (L == 1) j = 0;
    while (j < 0 || j >= L) {
        if (j < 0) j = -j;
        if (j >= L) j = 2 * (L - 1) - j;
    }
    return j < J->n_x ? (double)J->x[j] : 0.0;
}

static void mel_task(void *arg, int ith, int nth) {
    mel_job *J = arg;
    const int n_fft = J->p->n_fft, hop = J->p->hop, half = n_fft / 2, even = n_fft % 2 == 0;
    const int n_bins = J->f->n_bins, n_mels = J->f->n_mels;
    int64_t t0, t1;
    mp_split_range(J->n_frames, ith, nth, &t0, &t1);
    if (t0 >= t1) return;
    double *buf = malloc(sizeof(double) * (size_t)(2 * n_fft * 3 + n_bins));
    if (!buf) { J->failed = 1; return; }
    double *in = buf, *spec = buf + 2 * n_fft, *scratch = buf + 4 * n_fft, *power = buf + 6 * n_fft;
    for (int64_t t = t0; t < t1; t++) {
        int64_t start = t * hop - half;
        if (even) { /* real input of n_fft as n_fft/2 complex points: z[j] = x[2j] + i x[2j+1] */
            for (int j = 0; j < half; j++) {
                in[2 * j] = sample_at(J, start + 2 * j) * J->window[2 * j];
                in[2 * j + 1] = sample_at(J, start + 2 * j + 1) * J->window[2 * j + 1];
            }
            mp_fft(J->plan, in, spec, scratch);
            for (int k = 0; k < n_bins; k++) {
                int k1 = k % half, k2 = (half - k) % half;
                double zr = spec[2 * k1], zi = spec[2 * k1 + 1], cr = spec[2 * k2], ci = -spec[2 * k2 + 1];
                double er = 0.5 * (zr + cr), ei = 0.5 * (zi + ci);     /* even samples' transform */
                double or_ = 0.5 * (zi - ci), oi = -0.5 * (zr - cr);   /* odd samples' transform */
                const double *w = J->rtw + 2 * k;
                double xr = er + or_ * w[0] - oi * w[1], xi = ei + or_ * w[1] + oi * w[0];
                power[k] = xr * xr + xi * xi;
            }
        } else {
            for (int j = 0; j < n_fft; j++) {
                in[2 * j] = sample_at(J, start + j) * J->window[j];
                in[2 * j + 1] = 0;
            }
            mp_fft(J->plan, in, spec, scratch);
            for (int k = 0; k < n_bins; k++) power[k] = spec[2 * k] * spec[2 * k] + spec[2 * k + 1] * spec[2 * k + 1];
        }
        for (int m = 0; m < n_mels; m++) {
            const float *w = J->f->w + (size_t)m * n_bins;
            double s = 0;
            for (int k = J->f->lo[m]; k < J->f->hi[m]; k++) s += (double)w[k] * power[k];
            J->out[(size_t)m * J->n_frames + t] = (float)log10(s > 1e-10 ? s : 1e-10);
        }
    }
    free(buf);
}

int mp_log_mel(const float *x, int64_t n, const mp_mel_filters *f, const mp_mel_params *p, mp_threadpool *tp,
               float **out, int64_t *n_frames, mp_error *err) {
    *out = NULL;
    *n_frames = 0;
    if (!f || !f->w) return mp_errf(err, "mel: no filterbank");
    if (p->n_fft < 2 || p->n_fft > (1 << 16) || p->hop < 1) return mp_errf(err, "mel: bad n_fft %d / hop %d", p->n_fft, p->hop);
    if (f->n_bins != p->n_fft / 2 + 1)
        return mp_errf(err, "mel: the filterbank has %d frequency bins but n_fft %d gives %d", f->n_bins, p->n_fft,
                       p->n_fft / 2 + 1);
    if (n < 0 || (n > 0 && !x)) return mp_errf(err, "mel: no samples");
    int64_t L = padded_len(n, p), nf = mp_mel_n_frames(n, p);
    if (L < 1 || nf < 1) return mp_errf(err, "mel: %lld samples are too few for one frame", (long long)n);
    if (nf > ((int64_t)1 << 31) / f->n_mels) return mp_errf(err, "mel: audio too long (%lld frames)", (long long)nf);

    const int n_fft = p->n_fft, even = n_fft % 2 == 0;
    double *window = malloc(sizeof(double) * (size_t)n_fft * 3);
    float *mel = malloc(sizeof(float) * (size_t)nf * f->n_mels);
    mp_fft_plan *plan = mp_fft_plan_new(even ? n_fft / 2 : n_fft);
    if (!window || !mel || !plan) {
        free(window);
        free(mel);
        mp_fft_plan_free(plan);
        return mp_errf(err, "mel: out of memory for %lld frames", (long long)nf);
    }
    double *rtw = window + n_fft;
    for (int i = 0; i < n_fft; i++) {
        window[i] = 0.5 - 0.5 * cos(2.0 * M_PI * i / n_fft); /* periodic Hann (torch.hann_window) */
        rtw[2 * i] = cos(-2.0 * M_PI * i / n_fft);
        rtw[2 * i + 1] = sin(-2.0 * M_PI * i / n_fft);
    }
    mel_job J = {x, p->fit_samples > 0 && n > p->fit_samples ? p->fit_samples : n, L, nf, f, p, window, rtw, plan, mel, 0};
    mp_parallel(tp, mel_task, &J);
    free(window);
    mp_fft_plan_free(plan);
    if (J.failed) {
        free(mel);
        return mp_errf(err, "mel: out of memory");
    }
    /* clamp to (max - 8), then (x + 4) / 4 */
    size_t total = (size_t)nf * f->n_mels;
    float mx = -INFINITY;
    for (size_t i = 0; i < total; i++) mx = mel[i] > mx ? mel[i] : mx;
    const float floor_ = mx - 8.0f;
    for (size_t i = 0; i < total; i++) mel[i] = ((mel[i] > floor_ ? mel[i] : floor_) + 4.0f) / 4.0f;
    *out = mel;
    *n_frames = nf;
    return 0;
}

void mp_mel_segment(const float *mel, int n_mels, int64_t n_frames, int64_t start, int64_t len, float *dst) {
    for (int m = 0; m < n_mels; m++) {
        const float *src = mel + (size_t)m * n_frames;
        float *d = dst + (size_t)m * len;
        int64_t have = start < n_frames ? n_frames - start : 0;
        if (start < 0) have = 0;
        if (have > len) have = len;
        if (have > 0) memcpy(d, src + start, sizeof(float) * (size_t)have);
        for (int64_t i = have; i < len; i++) d[i] = 0.0f;
    }
}
