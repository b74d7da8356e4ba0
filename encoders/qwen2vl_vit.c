/* qwen2vl_vit.c — the Qwen2-VL / Qwen2.5-VL vision transformer (see qwen2vl_vit.h). */
#include "encoders/qwen2vl_vit.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---------------------------------------------------------------- config */

int mp_qwen2vl_vit_config_check(mp_qwen2vl_vit_config *c, const char *what, mp_error *err) {
    if (!what) what = "vision model";
    if (c->variant != MP_QWEN2VL_V2 && c->variant != MP_QWEN2VL_V25)
        return mp_errf(err, "%s: unknown Qwen-VL vision variant %d", what, c->variant);
    if (c->in_chans <= 0) c->in_chans = 3;
    if (c->temporal_patch_size <= 0) c->temporal_patch_size = 2;
    if (c->merge_size <= 0) c->merge_size = 2;
    if (!(c->eps > 0)) c->eps = 1e-6f;
    if (c->dim <= 0 || c->n_ff <= 0 || c->n_layer <= 0 || c->n_head <= 0 || c->patch_size <= 0 || c->out_dim <= 0)
        return mp_errf(err, "%s: bad vision sizes (width %d, ffn %d, layers %d, heads %d, patch %d, output %d)", what,
                       c->dim, c->n_ff, c->n_layer, c->n_head, c->patch_size, c->out_dim);
    if (c->n_layer > MP_QWEN2VL_MAX_LAYERS || c->dim > 65536 || c->n_ff > 1 << 20 || c->patch_size > 1024 ||
        c->in_chans > 16 || c->temporal_patch_size > 16 || c->merge_size > 16 || c->out_dim > 1 << 20)
        return mp_errf(err, "%s: implausible vision sizes", what);
    if (c->dim % c->n_head != 0)
        return mp_errf(err, "%s: width %d is not a multiple of %d heads", what, c->dim, c->n_head);
    if ((c->dim / c->n_head) % 4 != 0)
        return mp_errf(err, "%s: head size %d is not a multiple of 4 (2-D rotary halves)", what, c->dim / c->n_head);
    if (c->variant == MP_QWEN2VL_V25) {
        if (c->window_size <= 0) c->window_size = 112;
        if (c->window_size % (c->patch_size * c->merge_size) != 0)
            return mp_errf(err, "%s: window size %d is not a multiple of %d pixels", what, c->window_size,
                           c->patch_size * c->merge_size);
        if (!(c->tokens_per_second > 0)) c->tokens_per_second = 2.0f;
    }
    return 0;
}

/* ---------------------------------------------------------------- positions */

void mp_qwen2vl_patch_pos(int h, int w, int m, int32_t *pos) {
    int i = 0;
    for (int bh = 0; bh < h / m; bh++)
        for (int bw = 0; bw < w / m; bw++)
            for (int ih = 0; ih < m; ih++)
                for (int iw = 0; iw < m; iw++, i++) {
                    pos[2 * i] = bh * m + ih;
                    pos[2 * i + 1] = bw * m + iw;
                }
}

int mp_qwen2vl_window_index(int h, int w, int m, int win, int32_t *idx, int32_t *cu) {
    const int lh = h / m, lw = w / m, nwh = (lh + win - 1) / win, nww = (lw + win - 1) / win;
    int n = 0, k = 0;
    cu[0] = 0;
    for (int wy = 0; wy < nwh; wy++)
        for (int wx = 0; wx < nww; wx++) {
            int cnt = 0;
            for (int r = wy * win; r < wy * win + win && r < lh; r++)
                for (int c = wx * win; c < wx * win + win && c < lw; c++, cnt++) idx[k++] = r * lw + c;
            if (cnt) { /* empty windows (padding) leave no segment, as unique_consecutive drops them */
                cu[n + 1] = cu[n] + cnt * m * m;
                n++;
            }
        }
    return n;
}

/* ---------------------------------------------------------------- state */

void mp_qwen2vl_vit_state_free(mp_qwen2vl_vit_state *st, mp_exec *ex) {
    float **b[] = {&st->pix, &st->x, &st->xb, &st->qkv, &st->att, &st->hb, &st->hb2, &st->mh, &st->y};
    for (size_t i = 0; i < sizeof b / sizeof b[0]; i++)
        if (*b[i]) mp_backend_free(ex, *b[i]);
    if (st->pos_dev) mp_backend_free(ex, st->pos_dev);
    if (st->gidx_dev) mp_backend_free(ex, st->gidx_dev);
    free(st->pos);
    free(st->gidx);
    free(st->seg_full);
    free(st->seg_win);
    free(st->tmp);
    int max_rows = st->max_rows;
    memset(st, 0, sizeof *st);
    st->max_rows = max_rows;
}

static int reserve(const mp_qwen2vl_vit *m, mp_qwen2vl_vit_state *st, mp_exec *ex, int64_t rows, mp_error *err) {
    if (rows <= st->cap_rows) return 0;
    const mp_qwen2vl_vit_config *c = &m->cfg;
    mp_qwen2vl_vit_state_free(st, ex);
    const size_t R = (size_t)rows, D = (size_t)c->dim, F = (size_t)c->n_ff, mm = (size_t)c->merge_size * c->merge_size;
    const size_t pd = (size_t)c->in_chans * c->temporal_patch_size * c->patch_size * c->patch_size;
    struct { float **p; size_t n; } f[] = {
        {&st->pix, R * pd}, {&st->x, R * D}, {&st->xb, R * D}, {&st->qkv, R * 3 * D}, {&st->att, R * D},
        {&st->hb, R * F}, {&st->hb2, c->variant == MP_QWEN2VL_V25 ? R * F : 1}, {&st->mh, R * D},
        {&st->y, 2 * (R / mm) * (size_t)c->out_dim},
    };
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if (!(*f[i].p = mp_backend_alloc(ex, f[i].n * sizeof(float)))) goto oom;
    if (!(st->pos_dev = mp_backend_alloc(ex, R * 4 * sizeof(int32_t))) ||
        !(st->gidx_dev = mp_backend_alloc(ex, R * sizeof(int32_t))))
        goto oom;
    st->pos = malloc(R * 4 * sizeof(int32_t));
    st->gidx = malloc(R * sizeof(int32_t));
    st->seg_full = malloc((R + 1) * sizeof(int32_t));
    st->seg_win = malloc((R + 1) * sizeof(int32_t));
    st->tmp = malloc(4 * (R + 1) * sizeof(int32_t));
    if (!st->pos || !st->gidx || !st->seg_full || !st->seg_win || !st->tmp) goto oom;
    st->cap_rows = rows;
    return 0;
oom:
    mp_qwen2vl_vit_state_free(st, ex);
    return mp_errf(err, "vision: out of memory for the activations of %lld patches", (long long)rows);
}

/* ---------------------------------------------------------------- forward */

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* time since *t0 added to *acc (after the backend finished), *t0 reset */
static void lap(mp_exec *ex, mp_qwen2vl_timing *tm, double *acc, double *t0) {
    if (!tm) return;
    mp_exec_status(ex, NULL);
    double t = now();
    *acc += t - *t0;
    *t0 = t;
}

static void linear(mp_exec *ex, const mp_qwen2vl_linear *l, float *y, int64_t ldy, const float *x, int64_t ldx,
                   int64_t rows) {
    mp_matmul(ex, y, ldy, x, ldx, &l->w, l->b, rows);
}

/* rows of src gathered into dst: dst[i] = src[ids[i]] (ids in backend memory) */
static void gather(mp_exec *ex, float *dst, const float *src, int64_t width, int64_t n_src, const int32_t *ids,
                   int64_t n) {
    mp_tensor t;
    int64_t ne[2] = {width, n_src};
    mp_tensor_init(&t, MP_F32, 2, ne, (void *)src);
    t.backend = ex->backend;
    mp_get_rows(ex, dst, &t, ids, n);
}

static void block(const mp_qwen2vl_vit *m, const mp_qwen2vl_vit_layer *L, int layer, mp_qwen2vl_vit_state *st,
                  mp_exec *ex, int64_t R, const mp_rope_params *rp, mp_qwen2vl_timing *tm, double *t0) {
    const mp_qwen2vl_vit_config *c = &m->cfg;
    const int64_t D = c->dim, F = c->n_ff, hd = D / c->n_head;
    const int v25 = c->variant == MP_QWEN2VL_V25;
    /* attention */
    if (v25)
        mp_rmsnorm(ex, st->xb, st->x, L->norm1_w, R, D, c->eps);
    else
        mp_layernorm(ex, st->xb, st->x, L->norm1_w, L->norm1_b, R, D, c->eps);
    linear(ex, &L->q, st->qkv, 3 * D, st->xb, D, R); /* rows of q | k | v, so attention reads them strided */
    linear(ex, &L->k, st->qkv + D, 3 * D, st->xb, D, R);
    linear(ex, &L->v, st->qkv + 2 * D, 3 * D, st->xb, D, R);
    mp_rope(ex, st->qkv, R, c->n_head, 3 * D, st->pos_dev, rp);
    mp_rope(ex, st->qkv + D, R, c->n_head, 3 * D, st->pos_dev, rp);
    const int windowed = v25 && !c->full_attn[layer];
    const int32_t *seg = windowed ? st->seg_win : st->seg_full;
    const int n_seg = windowed ? st->n_seg_win : st->n_seg_full;
    mp_attn_params ap;
    memset(&ap, 0, sizeof ap);
    ap.n_head = ap.n_kv_head = c->n_head;
    ap.head_dim = (int)hd;
    ap.q_stride = ap.k_stride = ap.v_stride = 3 * D;
    ap.o_stride = D;
    ap.scale = 1.0f / sqrtf((float)hd);
    for (int s = 0; s < n_seg; s++) {
        const int64_t a = seg[s], n = seg[s + 1] - seg[s];
        const float *q = st->qkv + a * 3 * D;
        ap.n_q = ap.n_kv = (int)n;
        mp_attention(ex, st->att + a * D, q, q + D, q + 2 * D, &ap);
    }
    linear(ex, &L->proj, st->xb, D, st->att, D, R);
    mp_add(ex, st->x, st->x, st->xb, R * D);
    lap(ex, tm, tm ? &tm->attn : NULL, t0);
    /* feed-forward */
    if (v25) {
        mp_rmsnorm(ex, st->xb, st->x, L->norm2_w, R, D, c->eps);
        linear(ex, &L->gate, st->hb, F, st->xb, D, R);
        linear(ex, &L->up, st->hb2, F, st->xb, D, R);
        mp_swiglu(ex, st->hb, st->hb, st->hb2, R * F);
        linear(ex, &L->down, st->xb, D, st->hb, F, R);
    } else {
        mp_layernorm(ex, st->xb, st->x, L->norm2_w, L->norm2_b, R, D, c->eps);
        linear(ex, &L->fc1, st->hb, F, st->xb, D, R);
        mp_gelu(ex, st->hb, st->hb, R * F, c->act);
        linear(ex, &L->fc2, st->xb, D, st->hb, F, R);
    }
    mp_add(ex, st->x, st->x, st->xb, R * D);
    lap(ex, tm, tm ? &tm->mlp : NULL, t0);
}

int64_t mp_qwen2vl_vit_n_tokens(const mp_qwen2vl_vit *m, const mp_qwen2vl_grid *grids, int n_items) {
    const int64_t mm = (int64_t)m->cfg.merge_size * m->cfg.merge_size;
    int64_t n = 0;
    for (int i = 0; i < n_items; i++) n += (int64_t)grids[i].t * grids[i].h * grids[i].w / mm;
    return n;
}

/* One batch of n_units temporal slices of the same-or-different grids, rows [0, R) of the batch. */
static int run_batch(const mp_qwen2vl_vit *m, mp_qwen2vl_vit_state *st, mp_exec *ex, const float *patches,
                     const mp_qwen2vl_grid *unit_grid, int n_units, int64_t R, int what, float *out,
                     mp_qwen2vl_timing *tm, mp_error *err) {
    const mp_qwen2vl_vit_config *c = &m->cfg;
    const int64_t D = c->dim, mm = (int64_t)c->merge_size * c->merge_size;
    const int64_t pd = (int64_t)c->in_chans * c->temporal_patch_size * c->patch_size * c->patch_size;
    const int v25 = c->variant == MP_QWEN2VL_V25, win = v25 ? c->window_size / c->patch_size / c->merge_size : 0;
    double t0 = tm ? now() : 0;

    if (mp_backend_upload(ex, st->pix, patches, (size_t)(R * pd) * sizeof(float), err) < 0) return -1;
    mp_matmul(ex, st->x, D, st->pix, pd, &m->patch, NULL, R);
    lap(ex, tm, tm ? &tm->embed : NULL, &t0);
    if (what == MP_QWEN2VL_OUT_EMBED)
        return mp_backend_download(ex, out, st->x, (size_t)(R * D) * sizeof(float), err);

    /* positions, segments and (Qwen2.5-VL) the window order, on the host */
    int64_t base = 0;
    st->n_seg_full = st->n_seg_win = 0;
    st->seg_full[0] = st->seg_win[0] = 0;
    for (int u = 0; u < n_units; u++) {
        const int h = unit_grid[u].h, w = unit_grid[u].w;
        const int64_t n = (int64_t)h * w;
        int32_t *yx = st->tmp;
        mp_qwen2vl_patch_pos(h, w, c->merge_size, yx);
        for (int64_t i = 0; i < n; i++) {
            int32_t *p = st->pos + (base + i) * 4;
            p[0] = yx[2 * i], p[1] = yx[2 * i + 1], p[2] = p[3] = 0;
        }
        st->seg_full[++st->n_seg_full] = (int32_t)(base + n);
        if (v25) {
            int32_t *idx = st->tmp, *cu = st->tmp + n / mm;
            int nw = mp_qwen2vl_window_index(h, w, c->merge_size, win, idx, cu);
            for (int64_t j = 0; j < n / mm; j++)
                for (int64_t k = 0; k < mm; k++) st->gidx[base + j * mm + k] = (int32_t)(base + idx[j] * mm + k);
            for (int k = 1; k <= nw; k++) st->seg_win[++st->n_seg_win] = (int32_t)(base + cu[k]);
        }
        base += n;
    }
    if (v25) { /* rows and positions into window order */
        for (int64_t r = 0; r < R; r++) memcpy(st->tmp + 4 * r, st->pos + 4 * (int64_t)st->gidx[r], 4 * sizeof(int32_t));
        memcpy(st->pos, st->tmp, (size_t)R * 4 * sizeof(int32_t));
        if (mp_backend_upload(ex, st->gidx_dev, st->gidx, (size_t)R * sizeof(int32_t), err) < 0) return -1;
        gather(ex, st->xb, st->x, D, R, st->gidx_dev, R);
        float *t = st->x;
        st->x = st->xb, st->xb = t;
    }
    if (mp_backend_upload(ex, st->pos_dev, st->pos, (size_t)R * 4 * sizeof(int32_t), err) < 0) return -1;

    const int hd = (int)(D / c->n_head);
    mp_rope_params rp;
    memset(&rp, 0, sizeof rp);
    rp.head_dim = rp.n_rot = hd;
    rp.mode = MP_ROPE_NEOX;
    rp.theta = 10000.0f;
    rp.freq_scale = rp.attn_factor = 1.0f;
    rp.sections[0] = rp.sections[1] = hd / 4;
    rp.mrope_vision = 1;
    for (int l = 0; l < c->n_layer; l++) block(m, &m->layers[l], l, st, ex, R, &rp, tm, &t0);

    if (what == MP_QWEN2VL_OUT_BLOCKS) {
        const float *src = st->x;
        if (v25) { /* back to the original order: row gidx[r] of the output is row r */
            for (int64_t r = 0; r < R; r++) st->tmp[st->gidx[r]] = (int32_t)r;
            if (mp_backend_upload(ex, st->gidx_dev, st->tmp, (size_t)R * sizeof(int32_t), err) < 0) return -1;
            gather(ex, st->xb, st->x, D, R, st->gidx_dev, R);
            src = st->xb;
        }
        return mp_backend_download(ex, out, src, (size_t)(R * D) * sizeof(float), err);
    }
    const int64_t T = R / mm, O = c->out_dim;
    mp_qwen2vl_merger_forward(&m->merger, ex, st->y, st->x, st->xb, st->mh, T);
    const float *res = st->y;
    if (v25) { /* merged row j is block gidx[j*mm]/mm: restore the original order */
        for (int64_t j = 0; j < T; j++) st->tmp[st->gidx[j * mm] / mm] = (int32_t)j;
        if (mp_backend_upload(ex, st->gidx_dev, st->tmp, (size_t)T * sizeof(int32_t), err) < 0) return -1;
        gather(ex, st->y + T * O, st->y, O, T, st->gidx_dev, T);
        res = st->y + T * O;
    }
    if (mp_backend_download(ex, out, res, (size_t)(T * O) * sizeof(float), err) < 0) return -1;
    lap(ex, tm, tm ? &tm->merger : NULL, &t0);
    return 0;
}

int mp_qwen2vl_vit_encode(const mp_qwen2vl_vit *m, mp_qwen2vl_vit_state *st, mp_exec *ex, const float *patches,
                          const mp_qwen2vl_grid *grids, int n_items, int what, float *out, mp_qwen2vl_timing *tm,
                          mp_error *err) {
    const mp_qwen2vl_vit_config *c = &m->cfg;
    const int ms = c->merge_size;
    const int64_t pd = (int64_t)c->in_chans * c->temporal_patch_size * c->patch_size * c->patch_size;
    const int64_t mm = (int64_t)ms * ms;
    const int64_t width = what == MP_QWEN2VL_OUT_MERGED ? c->out_dim : c->dim;
    const int64_t max_rows = st->max_rows > 0 ? st->max_rows : 8192;
    int64_t total = 0, biggest = 0;
    for (int i = 0; i < n_items; i++) {
        const mp_qwen2vl_grid *g = &grids[i];
        if (g->t <= 0 || g->h <= 0 || g->w <= 0 || g->h % ms || g->w % ms || g->h > 1 << 14 || g->w > 1 << 14 ||
            g->t > 1 << 16)
            return mp_errf(err, "vision: bad grid %d x %d x %d (multiples of the merge size %d expected)", g->t, g->h,
                           g->w, ms);
        int64_t n = (int64_t)g->h * g->w;
        if (n > biggest) biggest = n;
        total += n * g->t;
    }
    if (total > ((int64_t)1 << 31) / 4) return mp_errf(err, "vision: %lld patches is too many", (long long)total);
    double t_start = tm ? now() : 0;
    if (reserve(m, st, ex, biggest > max_rows ? biggest : max_rows < total ? max_rows : total, err) < 0) return -1;
    mp_qwen2vl_grid *ug = malloc(sizeof *ug * (size_t)(st->cap_rows / mm + 1));
    if (!ug) return mp_errf(err, "vision: out of memory");
    /* units (temporal slices) in order, packed into batches of at most cap_rows rows */
    int64_t row = 0, out_row = 0, rows = 0;
    int nu = 0, rc = 0;
    for (int i = 0; i < n_items && rc == 0; i++) {
        for (int t = 0; t < grids[i].t && rc == 0; t++) {
            const int64_t n = (int64_t)grids[i].h * grids[i].w;
            if (rows + n > st->cap_rows) {
                rc = run_batch(m, st, ex, patches + (row - rows) * pd, ug, nu, rows, what,
                               out + out_row * width, tm, err);
                out_row += what == MP_QWEN2VL_OUT_MERGED ? rows / mm : rows;
                if (tm) tm->batches++;
                rows = 0, nu = 0;
            }
            ug[nu].t = 1, ug[nu].h = grids[i].h, ug[nu].w = grids[i].w;
            nu++, rows += n, row += n;
        }
    }
    if (rc == 0 && nu) {
        rc = run_batch(m, st, ex, patches + (row - rows) * pd, ug, nu, rows, what, out + out_row * width, tm, err);
        if (tm) tm->batches++;
    }
    free(ug);
    if (rc == 0) rc = mp_exec_status(ex, err);
    if (tm && rc == 0) {
        tm->total += now() - t_start;
        tm->patches += total;
        tm->tokens += total / mm;
    }
    return rc;
}
