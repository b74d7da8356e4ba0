/* norm.c — LayerNorm and RMSNorm over rows. Scalar references here (double accumulation); SIMD rows in
 * norm_avx2.c / norm_avx512.c. Rows are split over threads; each row is computed by one thread in a
 * fixed order, so results do not depend on the thread count. */
#include <math.h>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/ref.h"

static void ref_layernorm_row(float *y, const float *x, const float *w, const float *b, int64_t cols, float eps) {
    double sum = 0, sq = 0;
    for (int64_t i = 0; i < cols; i++) sum += x[i];
    double mean = cols > 0 ? sum / (double)cols : 0.0;
    for (int64_t i = 0; i < cols; i++) sq += ((double)x[i] - mean) * ((double)x[i] - mean);
    double var = cols > 0 ? sq / (double)cols : 0.0;
    float rstd = (float)(1.0 / sqrt(var + (double)eps)), m = (float)mean;
    for (int64_t i = 0; i < cols; i++) {
        float v = (x[i] - m) * rstd;
        if (w) v *= w[i];
        if (b) v += b[i];
        y[i] = v;
    }
}

static void ref_rmsnorm_row(float *y, const float *x, const float *w, int64_t cols, float eps) {
    double sq = 0;
    for (int64_t i = 0; i < cols; i++) sq += (double)x[i] * (double)x[i];
    float scale = (float)(1.0 / sqrt((cols > 0 ? sq / (double)cols : 0.0) + (double)eps));
    for (int64_t i = 0; i < cols; i++) y[i] = w ? x[i] * scale * w[i] : x[i] * scale;
}

void mp_ref_layernorm(float *y, const float *x, const float *w, const float *b, int64_t rows, int64_t cols,
                      float eps) {
    for (int64_t r = 0; r < rows; r++) ref_layernorm_row(y + r * cols, x + r * cols, w, b, cols, eps);
}

void mp_ref_rmsnorm(float *y, const float *x, const float *w, int64_t rows, int64_t cols, float eps) {
    for (int64_t r = 0; r < rows; r++) ref_rmsnorm_row(y + r * cols, x + r * cols, w, cols, eps);
}

/* ---------------------------------------------------------------- dispatch */

typedef struct {
    int rms, level;
    float *y;
    const float *x, *w, *b;
    int64_t cols;
    float eps;
} norm_ctx;

static void norm_range(void *vctx, int64_t lo, int64_t hi) {
    const norm_ctx *c = (const norm_ctx *)vctx;
    for (int64_t r = lo; r < hi; r++) {
        float *y = c->y + r * c->cols;
        const float *x = c->x + r * c->cols;
        if (c->rms) MP_PICK(c->level, mp_k_rmsnorm_row, ref_rmsnorm_row)(y, x, c->w, c->cols, c->eps);
        else MP_PICK(c->level, mp_k_layernorm_row, ref_layernorm_row)(y, x, c->w, c->b, c->cols, c->eps);
    }
}

static void norm_run(const mp_exec *ex, norm_ctx *c, int64_t rows) {
    c->level = mp_cpu_level();
    int64_t min_rows = c->cols > 0 ? (8192 + c->cols - 1) / c->cols : 1;
    mp_cpu_parallel_for(ex, rows, min_rows, 1, norm_range, c);
}

void mp_layernorm(mp_exec *ex, float *y, const float *x, const float *w, const float *b, int64_t rows,
                  int64_t cols, float eps) {
    MP_CUDA_DISPATCH(ex, mp_cuda_layernorm(ex, y, x, w, b, rows, cols, eps));
    norm_ctx c = {.rms = 0, .y = y, .x = x, .w = w, .b = b, .cols = cols, .eps = eps};
    norm_run(ex, &c, rows);
}

void mp_rmsnorm(mp_exec *ex, float *y, const float *x, const float *w, int64_t rows, int64_t cols, float eps) {
    MP_CUDA_DISPATCH(ex, mp_cuda_rmsnorm(ex, y, x, w, rows, cols, eps));
    norm_ctx c = {.rms = 1, .y = y, .x = x, .w = w, .cols = cols, .eps = eps};
    norm_run(ex, &c, rows);
}
