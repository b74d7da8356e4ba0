/* rope.c — rotary position embeddings, computed the way ggml's rope does it (ggml-cpu ops.cpp):
 * a per-token table of (cos, sin) for each rotated pair, built by repeated multiplication of the
 * angle by theta_scale = base^(-2/n_dims), with linear scaling (freq_scale), per-pair divisors
 * (freq_factors: llama3 / longrope), YaRN (ext_factor ramp between interpolated and extrapolated
 * angles over the correction dims, magnitude 1 + 0.1 ln(1/freq_scale)) and attn_factor, then a
 * rotation of pairs (2i, 2i+1) (NORMAL) or (i, i + n_rot/2) (NEOX, M-RoPE).
 * M-RoPE (Qwen2-VL text) picks the position stream by the section a pair falls into; the vision
 * variant (mrope_vision, ggml's GGML_ROPE_TYPE_VISION) restarts the angle in each section. */
#include <math.h>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/ref.h"

typedef struct {
    int n_rot, npairs, n_dims, mrope, vision;
    float theta_scale, freq_scale, mscale, ext_factor, corr[2];
} rope_prep;

static int rope_n_rot(const mp_rope_params *p) {
    int n = p->n_rot <= 0 || p->n_rot > p->head_dim ? p->head_dim : p->n_rot;
    return n & ~1;
}

/* ggml_rope_yarn_corr_dim: the dimension where the wavelength spans n_rot_turns turns over n_ctx_orig */
static float yarn_corr_dim(int n_dims, int n_ctx_orig, float n_rot_turns, float base) {
    return n_dims * logf((float)n_ctx_orig / (n_rot_turns * 2 * (float)M_PI)) / (2 * logf(base));
}

static void rope_prepare(const mp_rope_params *p, rope_prep *r) {
    r->n_rot = rope_n_rot(p);
    r->npairs = r->n_rot / 2;
    r->mrope = p->sections[0] > 0 || p->sections[1] > 0 || p->sections[2] > 0 || p->sections[3] > 0;
    r->vision = r->mrope && p->mrope_vision;
    r->n_dims = r->vision ? r->n_rot / 2 : r->n_rot;
    float base = p->theta > 0 ? p->theta : 10000.0f;
    r->theta_scale = r->n_dims > 0 ? powf(base, -2.0f / (float)r->n_dims) : 1.0f;
    r->freq_scale = p->freq_scale != 0 ? p->freq_scale : 1.0f;
    r->mscale = p->attn_factor != 0 ? p->attn_factor : 1.0f;
    r->ext_factor = p->ext_factor;
    r->corr[0] = r->corr[1] = 0;
    if (r->ext_factor != 0 && p->n_ctx_orig > 0) {
        float start = floorf(yarn_corr_dim(r->n_dims, p->n_ctx_orig, p->beta_fast, base));
        float end = ceilf(yarn_corr_dim(r->n_dims, p->n_ctx_orig, p->beta_slow, base));
        r->corr[0] = start > 0 ? start : 0;
        r->corr[1] = end < (float)(r->n_dims - 1) ? end : (float)(r->n_dims - 1);
    }
}

/* rope_yarn of ggml: the angle and magnitude of pair i for unscaled angle theta_extrap */
static void rope_yarn(const rope_prep *r, float theta_extrap, int i, float *c, float *s) {
    float theta_interp = r->freq_scale * theta_extrap, theta = theta_interp, mscale = r->mscale;
    if (r->ext_factor != 0.0f) {
        float span = r->corr[1] - r->corr[0];
        float y = ((float)i - r->corr[0]) / (span > 0.001f ? span : 0.001f);
        float ramp = 1.0f - (y < 0 ? 0 : y > 1 ? 1 : y);
        float mix = ramp * r->ext_factor;
        theta = theta_interp * (1 - mix) + theta_extrap * mix;
        mscale *= 1.0f + 0.1f * logf(1.0f / r->freq_scale);
    }
    *c = cosf(theta) * mscale;
    *s = sinf(theta) * mscale;
}

static void rope_cache_prepared(const rope_prep *r, const mp_rope_params *p, const int32_t *pos, int64_t tok,
                                float *cs) {
    const float *ff = p->freq_factors;
    if (!r->mrope) {
        float theta = (float)pos[tok];
        for (int i = 0; i < r->npairs; i++) {
            rope_yarn(r, ff ? theta / ff[i] : theta, i, &cs[2 * i], &cs[2 * i + 1]);
            theta *= r->theta_scale;
        }
        return;
    }
    const int *sec = p->sections;
    float base_t = (float)pos[tok * 4 + 0], base_h = (float)pos[tok * 4 + 1];
    float base_w = (float)pos[tok * 4 + 2], base_e = (float)pos[tok * 4 + 3];
    float th_t = base_t, th_h = base_h, th_w = base_w, th_e = base_e;
    int sect_dims = sec[0] + sec[1] + sec[2] + sec[3], sec_w = sec[0] + sec[1], sec_e = sec_w + sec[2];
    for (int i = 0; i < r->npairs; i++) {
        int sector = i % sect_dims;
        if (r->vision) { /* each section restarts its angle */
            if (sector == 0) th_t = base_t;
            else if (sector == sec[0]) th_h = base_h;
            else if (sector == sec_w) th_w = base_w;
            else if (sector == sec_e) th_e = base_e;
        }
        float theta = th_t;
        if (sector >= sec[0] && sector < sec_w) theta = th_h;
        else if (sector >= sec_w && sector < sec_e) theta = th_w;
        else if (sector >= sec_e) theta = th_e;
        rope_yarn(r, ff ? theta / ff[i] : theta, i, &cs[2 * i], &cs[2 * i + 1]);
        th_t *= r->theta_scale;
        th_h *= r->theta_scale;
        th_w *= r->theta_scale;
        th_e *= r->theta_scale;
    }
}

void mp_rope_cache(const mp_rope_params *p, const int32_t *pos, int64_t tok, float *cs) {
    rope_prep r;
    rope_prepare(p, &r);
    rope_cache_prepared(&r, p, pos, tok, cs);
}

/* rotate the n_head heads of one token; neox: pairs (i, i + npairs), else (2i, 2i+1) */
static void ref_rope_tok(float *x, int n_head, int head_dim, int npairs, int neox, const float *cs) {
    for (int h = 0; h < n_head; h++) {
        float *xh = x + (int64_t)h * head_dim;
        for (int i = 0; i < npairs; i++) {
            int i0 = neox ? i : 2 * i, i1 = neox ? i + npairs : 2 * i + 1;
            float x0 = xh[i0], x1 = xh[i1], c = cs[2 * i], s = cs[2 * i + 1];
            xh[i0] = x0 * c - x1 * s;
            xh[i1] = x0 * s + x1 * c;
        }
    }
}

#define MP_ROPE_MAX_PAIRS 4096 /* head_dim up to 8192 */

void mp_ref_rope(float *x, int64_t n_tok, int n_head, int64_t stride, const int32_t *pos, const mp_rope_params *p) {
    rope_prep r;
    rope_prepare(p, &r);
    if (r.npairs <= 0 || r.npairs > MP_ROPE_MAX_PAIRS) return;
    int neox = p->mode == MP_ROPE_NEOX || r.mrope;
    float cs[2 * MP_ROPE_MAX_PAIRS];
    for (int64_t t = 0; t < n_tok; t++) {
        rope_cache_prepared(&r, p, pos, t, cs);
        ref_rope_tok(x + t * stride, n_head, p->head_dim, r.npairs, neox, cs);
    }
}

typedef struct {
    float *x;
    int64_t stride;
    int n_head, level;
    const int32_t *pos;
    const mp_rope_params *p;
    rope_prep r;
} rope_ctx;

static void rope_range(void *vctx, int64_t lo, int64_t hi) {
    const rope_ctx *c = (const rope_ctx *)vctx;
    int neox = c->p->mode == MP_ROPE_NEOX || c->r.mrope;
    float cs[2 * MP_ROPE_MAX_PAIRS];
    for (int64_t t = lo; t < hi; t++) {
        rope_cache_prepared(&c->r, c->p, c->pos, t, cs);
        MP_PICK(c->level, mp_k_rope_tok, ref_rope_tok)(c->x + t * c->stride, c->n_head, c->p->head_dim, c->r.npairs,
                                                       neox, cs);
    }
}

void mp_rope(mp_exec *ex, float *x, int64_t n_tok, int n_head, int64_t stride, const int32_t *pos,
             const mp_rope_params *p) {
    MP_CUDA_DISPATCH(ex, mp_cuda_rope(ex, x, n_tok, n_head, stride, pos, p));
    rope_ctx c = {.x = x, .stride = stride, .n_head = n_head, .level = mp_cpu_level(), .pos = pos, .p = p};
    rope_prepare(p, &c.r);
    if (c.r.npairs <= 0 || c.r.npairs > MP_ROPE_MAX_PAIRS) return;
    int64_t per_tok = (int64_t)n_head * c.r.n_rot;
    int64_t min_tok = per_tok > 0 ? (8192 + per_tok - 1) / per_tok : 1;
    mp_cpu_parallel_for(ex, n_tok, min_tok, 1, rope_range, &c);
}
