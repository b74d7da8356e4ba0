/* idefics3.c — the Idefics3 connector (pixel shuffle + modality projection) and the vision tower's
 * batched encode (see idefics3.h). */
#include "projector/idefics3.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Idefics3Connector.pixel_shuffle: x.view(h, w/s, D*s) -> permute -> reshape(w/s, h/s, D*s*s) -> permute
 * -> reshape(seq/s^2, D*s^2). Output token (ig, jg) holds, for a in 0..s-1 (rows) and b in 0..s-1
 * (columns), patch (ig*s + a, jg*s + b) at offset (a*s + b)*D. */
void mp_idefics3_shuffle_ids(int32_t *ids, int n_tiles, int side, int s) {
    const int g = side / s, seq = side * side;
    int32_t *p = ids;
    for (int t = 0; t < n_tiles; t++)
        for (int ig = 0; ig < g; ig++)
            for (int jg = 0; jg < g; jg++)
                for (int a = 0; a < s; a++)
                    for (int b = 0; b < s; b++) *p++ = t * seq + (ig * s + a) * side + jg * s + b;
}

void mp_idefics3_state_free(mp_idefics3_state *st, mp_exec *ex) {
    mp_siglip_state_free(&st->enc, ex);
    float **bufs[] = {&st->feat, &st->shuf, &st->emb};
    for (int i = 0; i < 3; i++)
        if (*bufs[i]) mp_backend_free(ex, *bufs[i]);
    if (st->ids_dev) mp_backend_free(ex, st->ids_dev);
    free(st->ids);
    int keep = st->max_tiles;
    memset(st, 0, sizeof *st);
    st->max_tiles = keep;
}

/* tiles per batch: the caller's choice, else as many as fit in 8192 patch rows */
static int batch_tiles(const mp_idefics3_state *st, int64_t seq) {
    if (st->max_tiles > 0) return st->max_tiles;
    int64_t n = 8192 / (seq > 0 ? seq : 1);
    return n < 1 ? 1 : (int)n;
}

static int reserve(const mp_idefics3_vision *v, mp_idefics3_state *st, mp_exec *ex, int nt, int side, mp_error *err) {
    const int D = v->enc.cfg.n_embd;
    const int64_t seq = (int64_t)side * side, rows = nt * seq;
    if (rows > st->cap_rows) {
        float **f[] = {&st->feat, &st->shuf, &st->emb};
        size_t n[] = {(size_t)(rows * D), (size_t)(rows * D), (size_t)(rows * v->n_embd_text)};
        for (int i = 0; i < 3; i++) {
            if (*f[i]) mp_backend_free(ex, *f[i]);
            *f[i] = mp_backend_alloc(ex, n[i] * sizeof(float));
            if (!*f[i]) return mp_errf(err, "vision: out of memory for %d tiles", nt);
        }
        if (st->ids_dev) mp_backend_free(ex, st->ids_dev);
        st->ids_dev = mp_backend_alloc(ex, (size_t)rows * sizeof(int32_t));
        int32_t *ids = realloc(st->ids, (size_t)rows * sizeof(int32_t));
        if (!st->ids_dev || !ids) {
            if (ids) st->ids = ids;
            return mp_errf(err, "vision: out of memory for %d tiles", nt);
        }
        st->ids = ids;
        st->cap_rows = rows;
        st->ids_tiles = 0;
    }
    if (st->ids_tiles != nt || st->ids_side != side) {
        mp_idefics3_shuffle_ids(st->ids, nt, side, v->scale_factor);
        if (mp_backend_upload(ex, st->ids_dev, st->ids, (size_t)rows * sizeof(int32_t), err) < 0) return -1;
        st->ids_tiles = nt, st->ids_side = side;
    }
    return 0;
}

/* features of a batch of nt tiles into st->feat; the tile side in patches in *side */
static int encode_batch(const mp_idefics3_vision *v, mp_idefics3_state *st, mp_exec *ex, const float *pixels, int nt,
                        int *side_out, mp_idefics3_timing *tm, mp_error *err) {
    const int tile = v->proc.tile, side = tile / v->enc.cfg.patch_size;
    *side_out = side;
    if (side <= 0 || side % v->scale_factor != 0)
        return mp_errf(err, "vision: %d patches per side is not a multiple of the scale factor %d", side, v->scale_factor);
    if (reserve(v, st, ex, nt, side, err) < 0) return -1;
    double t0 = now_s();
    if (mp_siglip_forward(&v->enc, &st->enc, ex, pixels, nt, tile, tile, st->feat, tm ? &tm->enc : NULL, err) < 0)
        return -1;
    if (tm) {
        tm->encode += now_s() - t0;
        tm->tiles += nt;
        tm->batches++;
    }
    return 0;
}

/* features_only: stop after the encoder (out receives the SigLIP features) */
static int run(const mp_idefics3_vision *v, mp_idefics3_state *st, mp_exec *ex, const float *pixels, int n_tiles,
               float *out, mp_idefics3_timing *tm, int features_only, mp_error *err) {
    const int D = v->enc.cfg.n_embd, s = v->scale_factor, tile = v->proc.tile, E = v->n_embd_text;
    const int64_t per_tile = (int64_t)3 * tile * tile, side = tile / v->enc.cfg.patch_size;
    for (int t0 = 0; t0 < n_tiles;) {
        int sd;
        int nt = batch_tiles(st, side * side);
        if (nt > n_tiles - t0) nt = n_tiles - t0;
        if (encode_batch(v, st, ex, pixels + t0 * per_tile, nt, &sd, tm, err) < 0) return -1;
        const int64_t rows = (int64_t)nt * side * side;
        if (features_only) {
            if (mp_backend_download(ex, out + t0 * side * side * D, st->feat, (size_t)(rows * D) * sizeof(float), err) < 0)
                return -1;
            t0 += nt;
            continue;
        }
        double t1 = now_s();
        const int64_t out_rows = rows / (s * s);
        mp_tensor feat;
        int64_t ne[2] = {D, rows};
        mp_tensor_init(&feat, MP_F32, 2, ne, st->feat);
        feat.backend = ex->backend;
        mp_get_rows(ex, st->shuf, &feat, st->ids_dev, rows);
        mp_matmul(ex, st->emb, E, st->shuf, (int64_t)D * s * s, &v->proj, NULL, out_rows);
        if (mp_backend_download(ex, out + (int64_t)t0 * v->image_seq_len * E, st->emb,
                                (size_t)(out_rows * E) * sizeof(float), err) < 0)
            return -1;
        if (tm) tm->connector += now_s() - t1;
        t0 += nt;
    }
    return mp_exec_status(ex, err);
}

int mp_idefics3_features(const mp_idefics3_vision *v, mp_idefics3_state *st, mp_exec *ex, const float *pixels,
                         int n_tiles, float *out, mp_error *err) {
    return run(v, st, ex, pixels, n_tiles, out, NULL, 1, err);
}

int mp_idefics3_encode(const mp_idefics3_vision *v, mp_idefics3_state *st, mp_exec *ex, const float *pixels,
                       int n_tiles, float *out, mp_idefics3_timing *tm, mp_error *err) {
    return run(v, st, ex, pixels, n_tiles, out, tm, 0, err);
}
