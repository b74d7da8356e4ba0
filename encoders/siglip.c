/* siglip.c — the SigLIP vision transformer of Idefics3 / SmolVLM (see siglip.h). */
#include "encoders/siglip.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int mp_siglip_config_check(mp_siglip_config *c, const char *what, mp_error *err) {
    if (!what) what = "vision model";
    if (c->n_channels <= 0) c->n_channels = 3;
    if (!(c->eps > 0)) c->eps = 1e-6f;
    if (c->n_embd <= 0 || c->n_ff <= 0 || c->n_layer <= 0 || c->n_head <= 0 || c->patch_size <= 0 || c->image_size <= 0)
        return mp_errf(err, "%s: bad vision sizes (embd %d, ff %d, layers %d, heads %d, patch %d, image %d)", what,
                       c->n_embd, c->n_ff, c->n_layer, c->n_head, c->patch_size, c->image_size);
    if (c->n_embd > 65536 || c->n_ff > 1 << 20 || c->n_layer > 1024 || c->n_head > 1024 || c->patch_size > 1024 ||
        c->image_size > 65536 || c->n_channels > 16)
        return mp_errf(err, "%s: implausible vision sizes (embd %d, ff %d, layers %d, heads %d, patch %d, image %d)",
                       what, c->n_embd, c->n_ff, c->n_layer, c->n_head, c->patch_size, c->image_size);
    if (c->n_embd % c->n_head != 0)
        return mp_errf(err, "%s: vision width %d is not a multiple of %d heads", what, c->n_embd, c->n_head);
    if (c->image_size % c->patch_size != 0)
        return mp_errf(err, "%s: image size %d is not a multiple of the patch size %d", what, c->image_size,
                       c->patch_size);
    return 0;
}

/* torch.bucketize(x, boundaries, right=True): the number of boundaries <= x. */
static int bucket(float x, const float *bounds, int nb) {
    int i = 0;
    while (i < nb && bounds[i] <= x) i++;
    return i;
}

/* torch.arange(start, end, step) in float32 (the CPU kernel computes start + i * step in double, then
 * rounds; the length is ceil((end - start) / step) in double). */
static int arange_f32(double start, double end, double step, float *out, int cap) {
    double len = ceil((end - start) / step);
    int n = len > 0 ? (int)len : 0;
    if (n > cap) n = cap;
    for (int i = 0; i < n; i++) out[i] = (float)(start + i * step);
    return n;
}

void mp_siglip_position_ids(const mp_siglip_config *c, int hp, int wp, int32_t *ids) {
    const int side = c->image_size / c->patch_size;
    float *b = malloc(sizeof(float) * (size_t)(side + 1));
    float *fh = malloc(sizeof(float) * (size_t)(hp + 1)), *fw = malloc(sizeof(float) * (size_t)(wp + 1));
    if (!b || !fh || !fw) { /* out of memory: the plain grid (what the bucketing gives for full tiles) */
        for (int i = 0; i < hp * wp; i++) ids[i] = (i / wp) * side + i % wp;
        free(b), free(fh), free(fw);
        return;
    }
    /* boundaries = arange(1/side, 1.0, 1/side) with a Python float step; the coordinates' step 1/nb_patches
     * is a float32 tensor in transformers (a patch count tensor divided) */
    int nb = arange_f32(1.0 / side, 1.0, 1.0 / side, b, side + 1);
    int nh = arange_f32(0, 1 - 1e-6, (double)(1.0f / hp), fh, hp + 1);
    int nw = arange_f32(0, 1 - 1e-6, (double)(1.0f / wp), fw, wp + 1);
    for (int r = 0; r < hp; r++)
        for (int q = 0; q < wp; q++) {
            int bh = bucket(r < nh ? fh[r] : 1.0f, b, nb), bw = bucket(q < nw ? fw[q] : 1.0f, b, nb);
            ids[r * wp + q] = bh * side + bw;
        }
    free(b), free(fh), free(fw);
}

void mp_siglip_state_free(mp_siglip_state *st, mp_exec *ex) {
    float **bufs[] = {&st->pix, &st->x, &st->xb, &st->q, &st->k, &st->v, &st->att, &st->h, &st->pos_rows};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (*bufs[i]) mp_backend_free(ex, *bufs[i]);
    free(st->pos_ids);
    memset(st, 0, sizeof *st);
}

static int state_reserve(const mp_siglip *m, mp_siglip_state *st, mp_exec *ex, int n_tiles, int hp, int wp,
                         int64_t pix_per_tile, mp_error *err) {
    const mp_siglip_config *c = &m->cfg;
    const int64_t np = (int64_t)hp * wp, rows = np * n_tiles;
    if (rows > st->cap_rows || n_tiles * pix_per_tile > st->cap_pix) {
        int64_t cap = st->cap_rows > rows ? st->cap_rows : rows;
        int64_t pcap = st->cap_pix > n_tiles * pix_per_tile ? st->cap_pix : n_tiles * pix_per_tile;
        float **f[] = {&st->x, &st->xb, &st->q, &st->k, &st->v, &st->att, &st->h, &st->pix};
        size_t n[] = {(size_t)(cap * c->n_embd), (size_t)(cap * c->n_embd), (size_t)(cap * c->n_embd),
                      (size_t)(cap * c->n_embd), (size_t)(cap * c->n_embd), (size_t)(cap * c->n_embd),
                      (size_t)(cap * (c->n_ff > c->n_embd ? c->n_ff : c->n_embd)), (size_t)pcap};
        for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
            if (*f[i]) mp_backend_free(ex, *f[i]);
            *f[i] = mp_backend_alloc(ex, n[i] * sizeof(float));
            if (!*f[i]) {
                mp_siglip_state_free(st, ex);
                return mp_errf(err, "vision: out of memory for the activations of %d tiles (%lld rows)", n_tiles,
                               (long long)rows);
            }
        }
        st->cap_rows = cap;
        st->cap_pix = pcap;
    }
    if (st->pos_h != hp || st->pos_w != wp || !st->pos_rows) {
        int32_t *ids = realloc(st->pos_ids, sizeof(int32_t) * (size_t)np);
        if (!ids) return mp_errf(err, "vision: out of memory");
        st->pos_ids = ids;
        mp_siglip_position_ids(c, hp, wp, ids);
        const int side = c->image_size / c->patch_size;
        float *host = malloc(sizeof(float) * (size_t)(np * c->n_embd));
        if (!host) return mp_errf(err, "vision: out of memory");
        /* the position table lives in backend memory: gather on the host from a downloaded copy only when
         * the backend is not the CPU */
        const float *tab = m->pos;
        float *tab_host = NULL;
        if (ex->backend != MP_BACKEND_CPU) {
            tab_host = malloc(sizeof(float) * (size_t)side * side * c->n_embd);
            if (!tab_host || mp_backend_download(ex, tab_host, m->pos, sizeof(float) * (size_t)side * side * c->n_embd,
                                                 err) < 0) {
                free(host), free(tab_host);
                return tab_host ? -1 : mp_errf(err, "vision: out of memory");
            }
            tab = tab_host;
        }
        for (int64_t i = 0; i < np; i++) {
            int32_t id = ids[i] < side * side ? ids[i] : side * side - 1;
            memcpy(host + i * c->n_embd, tab + (int64_t)id * c->n_embd, sizeof(float) * (size_t)c->n_embd);
        }
        free(tab_host);
        if (st->pos_rows) mp_backend_free(ex, st->pos_rows);
        st->pos_rows = mp_backend_alloc(ex, sizeof(float) * (size_t)(np * c->n_embd));
        int rc = st->pos_rows ? mp_backend_upload(ex, st->pos_rows, host, sizeof(float) * (size_t)(np * c->n_embd), err)
                              : mp_errf(err, "vision: out of backend memory");
        free(host);
        if (rc < 0) return -1;
        st->pos_h = hp, st->pos_w = wp;
    }
    return 0;
}

static void linear(mp_exec *ex, const mp_siglip_linear *l, float *y, const float *x, int64_t rows) {
    mp_matmul(ex, y, l->w.ne[1], x, l->w.ne[0], &l->w, l->b, rows);
}

/* wall time of a stage: waits for the backend when timing */
static double lap(mp_exec *ex, double *t0, int on) {
    if (!on) return 0;
    mp_exec_status(ex, NULL);
    double t = now_s(), d = t - *t0;
    *t0 = t;
    return d;
}

int mp_siglip_forward(const mp_siglip *m, mp_siglip_state *st, mp_exec *ex, const float *pixels, int n_tiles, int h,
                      int w, float *out, mp_siglip_timing *tm, mp_error *err) {
    const mp_siglip_config *c = &m->cfg;
    const int P = c->patch_size, D = c->n_embd, F = c->n_ff, H = c->n_head, hd = D / H;
    if (n_tiles <= 0) return 0;
    if (h <= 0 || w <= 0 || h % P || w % P)
        return mp_errf(err, "vision: tile of %dx%d pixels is not a multiple of the %d-pixel patch", w, h, P);
    const int hp = h / P, wp = w / P;
    const int64_t np = (int64_t)hp * wp, T = np * n_tiles;
    const int64_t pix_per_tile = (int64_t)c->n_channels * h * w;
    if (state_reserve(m, st, ex, n_tiles, hp, wp, pix_per_tile, err) < 0) return -1;
    const int timing = tm != NULL;
    double t0 = timing ? now_s() : 0;

    /* patch embedding: conv (channels-first [D][hp][wp] per tile, in xb) -> rows [np][D] + positions */
    if (mp_backend_upload(ex, st->pix, pixels, sizeof(float) * (size_t)(n_tiles * pix_per_tile), err) < 0) return -1;
    mp_conv2d(ex, st->xb, st->pix, &m->patch_w, m->patch_b, n_tiles, c->n_channels, h, w, P, P, 0, 0);
    for (int t = 0; t < n_tiles; t++) {
        float *xt = st->x + t * np * D;
        mp_transpose(ex, xt, st->xb + t * np * D, D, np);
        mp_add(ex, xt, xt, st->pos_rows, np * D);
    }
    if (timing) {
        tm->embed += lap(ex, &t0, 1);
        tm->flops_matmul += 2.0 * (double)T * D * c->n_channels * P * P;
    }

    const float scale = 1.0f / sqrtf((float)hd);
    mp_attn_params ap;
    memset(&ap, 0, sizeof ap);
    ap.n_q = ap.n_kv = (int)np;
    ap.n_head = ap.n_kv_head = H;
    ap.head_dim = hd;
    ap.q_stride = ap.k_stride = ap.v_stride = ap.o_stride = D;
    ap.scale = scale;
    for (int l = 0; l < c->n_layer; l++) {
        const mp_siglip_layer *L = &m->layers[l];
        mp_layernorm(ex, st->xb, st->x, L->ln1_w, L->ln1_b, T, D, c->eps);
        if (timing) tm->norm += lap(ex, &t0, 1);
        linear(ex, &L->q, st->q, st->xb, T);
        linear(ex, &L->k, st->k, st->xb, T);
        linear(ex, &L->v, st->v, st->xb, T);
        if (timing) tm->attn_proj += lap(ex, &t0, 1);
        for (int t = 0; t < n_tiles; t++) {
            const int64_t o = t * np * D;
            mp_attention(ex, st->att + o, st->q + o, st->k + o, st->v + o, &ap);
        }
        if (timing) tm->attention += lap(ex, &t0, 1);
        linear(ex, &L->o, st->xb, st->att, T);
        mp_add(ex, st->x, st->x, st->xb, T * D);
        if (timing) tm->attn_proj += lap(ex, &t0, 1);
        mp_layernorm(ex, st->xb, st->x, L->ln2_w, L->ln2_b, T, D, c->eps);
        if (timing) tm->norm += lap(ex, &t0, 1);
        linear(ex, &L->fc1, st->h, st->xb, T);
        mp_gelu(ex, st->h, st->h, T * F, c->act);
        linear(ex, &L->fc2, st->xb, st->h, T);
        mp_add(ex, st->x, st->x, st->xb, T * D);
        if (timing) tm->mlp += lap(ex, &t0, 1);
    }
    mp_layernorm(ex, out, st->x, m->post_w, m->post_b, T, D, c->eps);
    if (timing) {
        tm->norm += lap(ex, &t0, 1);
        tm->flops_matmul += (double)c->n_layer * 2.0 * (double)T * (4.0 * D * D + 2.0 * D * F);
        tm->flops_attention += (double)c->n_layer * n_tiles * 4.0 * (double)np * np * D;
    }
    return mp_exec_status(ex, err);
}
