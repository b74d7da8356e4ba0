// rope.cuh — the RoPE angle recipe of kernels/cpu/rope.c (ggml's), shared by the CUDA kernel and its host
// twin test: the angle of pair i is built by i successive float multiplications by theta_scale (not by
// powf), YaRN ramp/mix and freq_factors divisions happen in the same order, and cos/sin of that float
// angle are evaluated in double and rounded (glibc's cosf/sinf are within ~0.5 ulp of that). Every float
// operation is an explicit separately rounded one (MP_FMUL...): a large angle computed any other way
// would move the result by far more than an ulp.
#pragma once
#include <math.h>

#include "kernels/cuda/common.cuh"

#define MP_ROPE_MAX_PAIRS 4096 /* as the CPU: head_dim up to 8192 */

typedef struct {
    int head_dim, npairs, mrope, vision, neox;
    int sec[4];
    float theta_scale, freq_scale, mscale, ext_factor, yarn_mag, corr0, corr1;
    const float *ff; // freq_factors (device pointer in the kernel, host pointer in the host twin)
} mp_rope_dev;

static inline float mp_rope_corr_dim(int n_dims, int n_ctx_orig, float n_rot_turns, float base) {
    return n_dims * logf((float)n_ctx_orig / (n_rot_turns * 2 * (float)M_PI)) / (2 * logf(base));
}

// Host preparation, expression for expression as rope_prepare() of kernels/cpu/rope.c (same libm calls).
static inline void mp_rope_prepare_dev(const mp_rope_params *p, mp_rope_dev *r) {
    memset(r, 0, sizeof *r);
    int n_rot = p->n_rot <= 0 || p->n_rot > p->head_dim ? p->head_dim : p->n_rot;
    n_rot &= ~1;
    r->head_dim = p->head_dim;
    r->npairs = n_rot / 2;
    r->mrope = p->sections[0] > 0 || p->sections[1] > 0 || p->sections[2] > 0 || p->sections[3] > 0;
    r->vision = r->mrope && p->mrope_vision;
    r->neox = p->mode == MP_ROPE_NEOX || r->mrope;
    for (int i = 0; i < 4; i++) r->sec[i] = p->sections[i] > 0 ? p->sections[i] : 0;
    const int n_dims = r->vision ? n_rot / 2 : n_rot;
    const float base = p->theta > 0 ? p->theta : 10000.0f;
    r->theta_scale = n_dims > 0 ? powf(base, -2.0f / (float)n_dims) : 1.0f;
    r->freq_scale = p->freq_scale != 0 ? p->freq_scale : 1.0f;
    r->mscale = p->attn_factor != 0 ? p->attn_factor : 1.0f;
    r->ext_factor = p->ext_factor;
    if (r->ext_factor != 0 && p->n_ctx_orig > 0) {
        float start = floorf(mp_rope_corr_dim(n_dims, p->n_ctx_orig, p->beta_fast, base));
        float end = ceilf(mp_rope_corr_dim(n_dims, p->n_ctx_orig, p->beta_slow, base));
        r->corr0 = start > 0 ? start : 0;
        r->corr1 = end < (float)(n_dims - 1) ? end : (float)(n_dims - 1);
    }
    r->yarn_mag = 1.0f + 0.1f * logf(1.0f / r->freq_scale);
    r->ff = p->freq_factors;
}

// (cos, sin) * magnitude of pair i for a token whose positions are pos[0] (or pos[0..3] with M-RoPE).
MP_HD void mp_rope_pair(const mp_rope_dev &r, const int32_t *pos, int i, float *c, float *s) {
    float theta;
    if (!r.mrope) {
        theta = (float)pos[0];
        for (int k = 0; k < i; k++) theta = MP_FMUL(theta, r.theta_scale);
    } else {
        const float bt = (float)pos[0], bh = (float)pos[1], bw = (float)pos[2], be = (float)pos[3];
        float tt = bt, th = bh, tw = bw, te = be;
        const int sect_dims = r.sec[0] + r.sec[1] + r.sec[2] + r.sec[3], sec_w = r.sec[0] + r.sec[1],
                  sec_e = sec_w + r.sec[2];
        for (int k = 0;; k++) {
            const int sector = k % sect_dims;
            if (r.vision) { // each section restarts its angle
                if (sector == 0) tt = bt;
                else if (sector == r.sec[0]) th = bh;
                else if (sector == sec_w) tw = bw;
                else if (sector == sec_e) te = be;
            }
            if (k == i) {
                theta = tt;
                if (sector >= r.sec[0] && sector < sec_w) theta = th;
                else if (sector >= sec_w && sector < sec_e) theta = tw;
                else if (sector >= sec_e) theta = te;
                break;
            }
            tt = MP_FMUL(tt, r.theta_scale);
            th = MP_FMUL(th, r.theta_scale);
            tw = MP_FMUL(tw, r.theta_scale);
            te = MP_FMUL(te, r.theta_scale);
        }
    }
    if (r.ff) theta = MP_FDIV(theta, r.ff[i]);
    // rope_yarn
    const float theta_extrap = theta, theta_interp = MP_FMUL(r.freq_scale, theta_extrap);
    float mscale = r.mscale;
    theta = theta_interp;
    if (r.ext_factor != 0.0f) {
        const float span = MP_FSUB(r.corr1, r.corr0);
        const float y = MP_FDIV(MP_FSUB((float)i, r.corr0), span > 0.001f ? span : 0.001f);
        const float ramp = MP_FSUB(1.0f, y < 0.0f ? 0.0f : y > 1.0f ? 1.0f : y);
        const float mix = MP_FMUL(ramp, r.ext_factor);
        theta = MP_FADD(MP_FMUL(theta_interp, MP_FSUB(1.0f, mix)), MP_FMUL(theta_extrap, mix));
        mscale = MP_FMUL(mscale, r.yarn_mag);
    }
    const double td = (double)theta;
    *c = MP_FMUL((float)cos(td), mscale);
    *s = MP_FMUL((float)sin(td), mscale);
}
