/* silero.c — Silero VAD v6 inference and speech segments. See silero.h. */
#include "encoders/silero.h"

#include "kernels/ops.h"

#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- loading */

static const mp_tensor *need(const mp_silero *m, const char *name, int dtype_f32_only, int64_t n0, int64_t n1,
                             int64_t n2, mp_error *err) {
    const mp_ggml_bin_tensor *t = mp_ggml_bin_find(&m->file, name);
    const char *fn = m->file.path;
    if (!t) {
        mp_errf(err, "%s: tensor '%s' is missing", fn, name);
        return NULL;
    }
    if (t->t.ne[0] != n0 || t->t.ne[1] != n1 || t->t.ne[2] != n2 || t->t.ne[3] != 1) {
        mp_errf(err, "%s: tensor '%s' has shape [%lld, %lld, %lld, %lld], expected [%lld, %lld, %lld]", fn, name,
                (long long)t->t.ne[0], (long long)t->t.ne[1], (long long)t->t.ne[2], (long long)t->t.ne[3],
                (long long)n0, (long long)n1, (long long)n2);
        return NULL;
    }
    int dt = t->t.dtype;
    if (dtype_f32_only ? dt != MP_F32 : !(dt == MP_F32 || dt == MP_F16 || dt == MP_BF16)) {
        mp_errf(err, "%s: tensor '%s' is stored as %s, expected %s", fn, name, mp_dtype_name(dt),
                dtype_f32_only ? "f32" : "f32, f16 or bf16");
        return NULL;
    }
    return &t->t;
}

int mp_silero_load(mp_silero *m, const char *path, mp_error *err) {
    memset(m, 0, sizeof *m);
    if (mp_ggml_bin_open(&m->file, path, err)) return -1;
    const mp_silero_hparams *h = &m->file.silero;
    if (m->file.kind != MP_GGML_BIN_SILERO) {
        mp_errf(err, "%s: not a Silero VAD model (this is a %s model file)", path, mp_ggml_bin_kind_name(m->file.kind));
        goto fail;
    }
    if (h->n_encoder_layers != MP_SILERO_LAYERS || h->final_conv_out != 1 || h->lstm_input != h->enc_out[3] ||
        h->final_conv_in != h->lstm_hidden) {
        mp_errf(err, "%s: unsupported Silero layout (%d encoder layers, lstm %d -> %d, final conv %d -> %d)", path,
                h->n_encoder_layers, h->lstm_input, h->lstm_hidden, h->final_conv_in, h->final_conv_out);
        goto fail;
    }
    const mp_ggml_bin_tensor *bt = mp_ggml_bin_find(&m->file, "_model.stft.forward_basis_buffer");
    if (!bt) {
        mp_errf(err, "%s: tensor '_model.stft.forward_basis_buffer' is missing", path);
        goto fail;
    }
    m->n_fft = (int)bt->t.ne[0];
    m->n_freq = m->n_fft / 2 + 1;
    m->n_window = h->n_window;
    m->pad = m->n_fft / 4; /* 64: reflection padding of the v5/v6 STFT front end */
    m->hidden = h->lstm_hidden;
    const int strides[MP_SILERO_LAYERS] = {1, 2, 2, 1};
    if (m->n_fft < 4 || m->n_fft % 2 || h->enc_in[0] != m->n_freq || m->n_window + 2 * m->pad < m->n_fft ||
        m->n_window <= m->pad) {
        mp_errf(err, "%s: STFT basis of %d taps does not fit %d-sample windows / %d input channels", path, m->n_fft,
                m->n_window, h->enc_in[0]);
        goto fail;
    }
    if (!(m->basis = need(m, "_model.stft.forward_basis_buffer", 0, m->n_fft, 1, 2 * m->n_freq, err))) goto fail;
    int64_t ne2[2] = {m->n_fft, 2 * m->n_freq};
    mp_tensor_init(&m->basis2d, m->basis->dtype, 2, ne2, m->basis->data);
    char name[96];
    for (int i = 0; i < MP_SILERO_LAYERS; i++) {
        m->stride[i] = strides[i];
        if (i > 0 && h->enc_in[i] != h->enc_out[i - 1]) {
            mp_errf(err, "%s: encoder layer %d takes %d channels but layer %d gives %d", path, i, h->enc_in[i], i - 1,
                    h->enc_out[i - 1]);
            goto fail;
        }
        snprintf(name, sizeof name, "_model.encoder.%d.reparam_conv.weight", i);
        if (!(m->enc_w[i] = need(m, name, 0, h->enc_kernel[i], h->enc_in[i], h->enc_out[i], err))) goto fail;
        int64_t nw[2] = {(int64_t)h->enc_kernel[i] * h->enc_in[i], h->enc_out[i]}; /* conv weight as a linear layer */
        mp_tensor_init(&m->enc2d[i], m->enc_w[i]->dtype, 2, nw, m->enc_w[i]->data);
        snprintf(name, sizeof name, "_model.encoder.%d.reparam_conv.bias", i);
        const mp_tensor *b = need(m, name, 1, h->enc_out[i], 1, 1, err);
        if (!b) goto fail;
        m->enc_b[i] = b->data;
    }
    const int64_t H = m->hidden;
    const mp_tensor *t;
    if (!(m->w_ih = need(m, "_model.decoder.rnn.weight_ih", 0, h->lstm_input, 4 * H, 1, err))) goto fail;
    if (!(m->w_hh = need(m, "_model.decoder.rnn.weight_hh", 1, H, 4 * H, 1, err))) goto fail;
    if (!(t = need(m, "_model.decoder.rnn.bias_ih", 1, 4 * H, 1, 1, err))) goto fail;
    m->b_ih = t->data;
    if (!(t = need(m, "_model.decoder.rnn.bias_hh", 1, 4 * H, 1, 1, err))) goto fail;
    m->b_hh = t->data;
    if (!(m->out_w = need(m, "_model.decoder.decoder.2.weight", 0, H, 1, 1, err))) goto fail;
    if (!(t = need(m, "_model.decoder.decoder.2.bias", 1, 1, 1, 1, err))) goto fail;
    m->out_b = ((const float *)t->data)[0];
    return 0;
fail:
    mp_silero_free(m);
    return -1;
}

void mp_silero_free(mp_silero *m) {
    if (!m) return;
    mp_ggml_bin_close(&m->file);
    memset(m, 0, sizeof *m);
}

/* ---------------------------------------------------------------- inference */

#define SILERO_BLOCK 256 /* windows whose front end runs as one batch */

static float sigmoidf_(float x) { return 1.0f / (1.0f + expf(-x)); }

/* whisper.cpp runs convolutions with f16 weights on f16 copies of their inputs (ggml_conv_1d's im2col is
 * f16); doing the same keeps our probabilities within ~2e-4 of its output instead of ~1.5e-3. */
static inline float f16r(float x) { return mp_f16_to_f32(mp_f32_to_f16(x)); }

/* h, c: LSTM state; gx: W_ih x + b_ih for this step (4H). Returns the speech probability. */
static float lstm_step(const mp_silero *m, const float *gx, float *h, float *c, float *g, const float *wout) {
    const int H = m->hidden;
    const float *whh = m->w_hh->data; /* [4H][H] */
    for (int r = 0; r < 4 * H; r++) {
        const float *w = whh + (size_t)r * H;
        float s = 0;
        for (int k = 0; k < H; k++) s += w[k] * h[k];
        g[r] = gx[r] + s + m->b_hh[r];
    }
    float p = m->out_b;
    for (int k = 0; k < H; k++) {
        float ig = sigmoidf_(g[k]), fg = sigmoidf_(g[H + k]), gg = tanhf(g[2 * H + k]), og = sigmoidf_(g[3 * H + k]);
        c[k] = fg * c[k] + ig * gg;
        h[k] = og * tanhf(c[k]);
        p += wout[k] * f16r(h[k] > 0 ? h[k] : 0); /* ReLU, then the 1x1 output conv */
    }
    return sigmoidf_(p);
}

/* im2col for a conv1d over time-major activations x[b][t][ci] (T_in frames): row (b, to) holds
 * x[b][to*stride + kk - pad][ci] at column ci*K + kk (the order of a {K, C_in, C_out} weight), rounded to f16. */
static void im2col(float *cols, const float *x, int nb, int t_in, int c_in, int t_out, int K, int stride, int pad) {
    for (int b = 0; b < nb; b++)
        for (int to = 0; to < t_out; to++) {
            float *row = cols + ((size_t)b * t_out + to) * c_in * K;
            for (int kk = 0; kk < K; kk++) {
                int ti = to * stride + kk - pad;
                const float *src = ti >= 0 && ti < t_in ? x + ((size_t)b * t_in + ti) * c_in : NULL;
                for (int ci = 0; ci < c_in; ci++) row[ci * K + kk] = src ? f16r(src[ci]) : 0.0f;
            }
        }
}

int mp_silero_probs(const mp_silero *m, mp_exec *ex, const float *samples, int64_t n, float **probs,
                    int64_t *n_probs, mp_error *err) {
    *probs = NULL;
    *n_probs = 0;
    const char *fn = m->file.path;
    if (n <= 0 || !samples) return mp_errf(err, "%s: no audio samples for voice activity detection", fn);
    if (ex->backend != MP_BACKEND_CPU) return mp_errf(err, "%s: Silero VAD runs on the CPU backend only", fn);
    const int W = m->n_window, P = m->pad, L = W + 2 * P, K = m->n_fft, F = m->n_freq, H = m->hidden;
    const int hop = K / 2, T0 = (L - K) / hop + 1;
    const mp_silero_hparams *hp = &m->file.silero;
    const int64_t nc = (n + W - 1) / W;
    /* frames and im2col widths through the encoder */
    int T[MP_SILERO_LAYERS + 1];
    size_t cols = (size_t)T0 * K, acts = (size_t)T0 * 2 * F;
    T[0] = T0;
    for (int i = 0; i < MP_SILERO_LAYERS; i++) {
        int k = hp->enc_kernel[i];
        T[i + 1] = (T[i] + 2 * (k / 2) - k) / m->stride[i] + 1;
        if (T[i + 1] < 1) return mp_errf(err, "%s: encoder layer %d has no output frames", fn, i);
        size_t c = (size_t)T[i + 1] * hp->enc_in[i] * k, a = (size_t)T[i + 1] * hp->enc_out[i];
        cols = c > cols ? c : cols;
        acts = a > acts ? a : acts;
    }
    const int B = SILERO_BLOCK;
    float *col = malloc(sizeof(float) * B * cols), *act0 = malloc(sizeof(float) * B * acts),
          *act1 = malloc(sizeof(float) * B * acts), *gx = malloc(sizeof(float) * (size_t)B * 4 * H),
          *state = calloc((size_t)7 * H, sizeof(float)), *out = malloc(sizeof(float) * (size_t)nc);
    if (!col || !act0 || !act1 || !gx || !state || !out) {
        free(col); free(act0); free(act1); free(gx); free(state); free(out);
        return mp_errf(err, "%s: out of memory for %lld windows", fn, (long long)nc);
    }
    float *h = state, *c = state + H, *g = state + 2 * H, *wout = state + 6 * H;
    mp_dequantize_row(m->out_w->dtype, m->out_w->data, wout, H);

    for (int64_t c0 = 0; c0 < nc; c0 += B) {
        const int nb = nc - c0 < B ? (int)(nc - c0) : B;
        /* STFT frames: each window zero-padded at the end of the audio, reflect-padded by P, cut into T0
         * frames of K samples every hop; one matmul with the basis gives [frame][re 0..F-1, im 0..F-1] */
        for (int b = 0; b < nb; b++) {
            const int64_t s0 = (c0 + b) * W;
            for (int t = 0; t < T0; t++) {
                float *row = col + ((size_t)b * T0 + t) * K;
                for (int j = 0; j < K; j++) {
                    int idx = t * hop + j - P;
                    if (idx < 0) idx = -idx;
                    if (idx >= W) idx = 2 * (W - 1) - idx;
                    const int64_t at = s0 + idx;
                    row[j] = at < n ? f16r(samples[at]) : 0.0f;
                }
            }
        }
        mp_matmul(ex, act1, 2 * F, col, K, &m->basis2d, NULL, (int64_t)nb * T0);
        for (size_t r = 0; r < (size_t)nb * T0; r++) {
            const float *s = act1 + r * 2 * F;
            float *mag = act0 + r * F;
            for (int f = 0; f < F; f++) mag[f] = sqrtf(s[f] * s[f] + s[F + f] * s[F + f]);
        }
        /* encoder: 4 x (conv1d + bias + ReLU), each as im2col + matmul on [b][t][c] activations */
        float *x = act0, *y = act1;
        for (int i = 0; i < MP_SILERO_LAYERS; i++) {
            const int k = hp->enc_kernel[i], ci = hp->enc_in[i], co = hp->enc_out[i];
            im2col(col, x, nb, T[i], ci, T[i + 1], k, m->stride[i], k / 2);
            const int64_t rows = (int64_t)nb * T[i + 1];
            mp_matmul(ex, y, co, col, (int64_t)ci * k, &m->enc2d[i], m->enc_b[i], rows);
            for (int64_t q = 0; q < rows * co; q++) y[q] = y[q] > 0 ? y[q] : 0;
            float *tmp = x; x = y; y = tmp;
        }
        /* time step 0 of each window's encoder output -> LSTM input projection for the whole block */
        const int CI = hp->lstm_input, TL = T[MP_SILERO_LAYERS];
        mp_matmul(ex, gx, 4 * H, x, (int64_t)CI * TL, m->w_ih, m->b_ih, nb);
        /* the recurrent part, window by window */
        for (int b = 0; b < nb; b++) out[c0 + b] = lstm_step(m, gx + (size_t)b * 4 * H, h, c, g, wout);
    }
    free(col); free(act0); free(act1); free(gx); free(state);
    if (mp_exec_status(ex, err)) {
        free(out);
        return -1;
    }
    *probs = out;
    *n_probs = nc;
    return 0;
}

/* ---------------------------------------------------------------- segments */

mp_vad_params mp_vad_default_params(void) {
    mp_vad_params p = {0.5f, 250, 100, FLT_MAX, 30, 0.1f};
    return p;
}

typedef struct span { int64_t start, end; } span;

static int64_t samples_to_cs(int64_t s, int rate) { return (int64_t)((double)s / rate * 100.0 + 0.5); }

int mp_vad_segments(const float *probs, int64_t n_probs, int n_window, int sample_rate, const mp_vad_params *p,
                    mp_vad_segment **segs, int *n_segs, mp_error *err) {
    *segs = NULL;
    *n_segs = 0;
    if (n_probs <= 0) return 0;
    if (n_window <= 0 || sample_rate <= 0) return mp_errf(err, "vad: bad window %d / rate %d", n_window, sample_rate);
    const int64_t min_silence = (int64_t)sample_rate * p->min_silence_ms / 1000;
    const int64_t min_speech = (int64_t)sample_rate * p->min_speech_ms / 1000;
    const int64_t pad = (int64_t)sample_rate * p->speech_pad_ms / 1000;
    const int64_t audio_len = n_probs * n_window;
    int64_t max_speech;
    if (p->max_speech_s > 100000.0f) {
        max_speech = INT64_MAX / 4;
    } else {
        max_speech = (int64_t)sample_rate * (int64_t)p->max_speech_s - n_window - 2 * pad;
        if (max_speech < 0) max_speech = INT64_MAX / 4;
    }
    /* a silence this long is a place where an over-long segment may be cut (98 ms, as silero-vad) */
    const int64_t min_silence_at_max = (int64_t)sample_rate * 98 / 1000;
    float neg_threshold = p->threshold - 0.15f;
    if (neg_threshold < 0.01f) neg_threshold = 0.01f;

    span *sp = malloc(sizeof(span) * (size_t)(n_probs + 1));
    if (!sp) return mp_errf(err, "vad: out of memory");
    int ns = 0;
    int in_speech = 0, has_cur = 0;
    int64_t temp_end = 0, prev_end = 0, next_start = 0, cur_start = 0;
    for (int64_t i = 0; i < n_probs; i++) {
        const float pr = probs[i];
        const int64_t cur = n_window * i;
        if (pr >= p->threshold && temp_end) { /* back to speech */
            temp_end = 0;
            if (next_start < prev_end) next_start = cur;
        }
        if (pr >= p->threshold && !in_speech) {
            in_speech = 1;
            cur_start = cur;
            has_cur = 1;
            continue;
        }
        if (in_speech && cur - cur_start > max_speech) { /* too long: cut at the last good silence */
            if (prev_end) {
                sp[ns++] = (span){cur_start, prev_end};
                has_cur = 1;
                if (next_start < prev_end) {
                    in_speech = 0;
                    has_cur = 0;
                } else {
                    cur_start = next_start;
                }
                prev_end = next_start = temp_end = 0;
            } else {
                sp[ns++] = (span){cur_start, cur};
                prev_end = next_start = temp_end = 0;
                in_speech = 0;
                has_cur = 0;
                continue;
            }
        }
        if (pr < neg_threshold && in_speech) { /* silence after speech */
            if (!temp_end) temp_end = cur;
            if (cur - temp_end > min_silence_at_max) prev_end = temp_end;
            if (cur - temp_end < min_silence) continue;
            if (temp_end - cur_start > min_speech) sp[ns++] = (span){cur_start, temp_end};
            prev_end = next_start = temp_end = 0;
            in_speech = 0;
            has_cur = 0;
            continue;
        }
    }
    if (has_cur && audio_len - cur_start > min_speech) sp[ns++] = (span){cur_start, audio_len};

    /* merge segments separated by less than 200 ms */
    const int64_t max_gap = (int64_t)sample_rate * 200 / 1000;
    int nm = 0;
    for (int i = 0; i < ns; i++) {
        if (nm > 0 && sp[i].start - sp[nm - 1].end < max_gap) sp[nm - 1].end = sp[i].end;
        else sp[nm++] = sp[i];
    }
    /* drop the ones that are still too short */
    int nk = 0;
    for (int i = 0; i < nm; i++)
        if (sp[i].end - sp[i].start >= min_speech) sp[nk++] = sp[i];

    /* padding: full pad where there is room, half the gap where neighbours are close */
    for (int i = 0; i < nk; i++) {
        if (i == 0) sp[i].start = sp[i].start > pad ? sp[i].start - pad : 0;
        if (i < nk - 1) {
            int64_t gap = sp[i + 1].start - sp[i].end;
            if (gap < 2 * pad) {
                sp[i].end += gap / 2;
                sp[i + 1].start = sp[i + 1].start > gap / 2 ? sp[i + 1].start - gap / 2 : 0;
            } else {
                sp[i].end = sp[i].end + pad < audio_len ? sp[i].end + pad : audio_len;
                sp[i + 1].start = sp[i + 1].start > pad ? sp[i + 1].start - pad : 0;
            }
        } else {
            sp[i].end = sp[i].end + pad < audio_len ? sp[i].end + pad : audio_len;
        }
    }
    if (nk == 0) {
        free(sp);
        return 0;
    }
    mp_vad_segment *s = malloc(sizeof *s * (size_t)nk);
    if (!s) {
        free(sp);
        return mp_errf(err, "vad: out of memory");
    }
    for (int i = 0; i < nk; i++) {
        s[i].start = sp[i].start;
        s[i].end = sp[i].end;
        s[i].t0 = samples_to_cs(sp[i].start, sample_rate);
        s[i].t1 = samples_to_cs(sp[i].end, sample_rate);
    }
    free(sp);
    *segs = s;
    *n_segs = nk;
    return 0;
}
