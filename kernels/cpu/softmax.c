/* softmax.c — row softmax with an optional additive mask and a causal limit. A row whose every
 * column is masked (-inf) comes out as all zeros rather than NaN. */
#include <math.h>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/ref.h"

/* columns >= lim are masked out */
static void ref_softmax_row(float *x, int64_t cols, const float *mask, int64_t lim) {
    float mx = -INFINITY;
    for (int64_t j = 0; j < cols; j++) {
        float v = j < lim ? x[j] + (mask ? mask[j] : 0.0f) : -INFINITY;
        x[j] = v;
        if (v > mx) mx = v;
    }
    if (mx == -INFINITY) { /* nothing visible */
        for (int64_t j = 0; j < cols; j++) x[j] = 0.0f;
        return;
    }
    double sum = 0;
    for (int64_t j = 0; j < cols; j++) {
        float e = expf(x[j] - mx);
        x[j] = e;
        sum += e;
    }
    float inv = (float)(1.0 / sum);
    for (int64_t j = 0; j < cols; j++) x[j] *= inv;
}

static int64_t causal_limit(int64_t r, int64_t cols, int causal, int64_t off) {
    if (!causal) return cols;
    int64_t lim = r + off + 1; /* column j visible iff j <= r + off */
    return lim < 0 ? 0 : lim > cols ? cols : lim;
}

void mp_ref_softmax(float *x, int64_t rows, int64_t cols, const float *mask, int causal, int64_t causal_offset) {
    for (int64_t r = 0; r < rows; r++)
        ref_softmax_row(x + r * cols, cols, mask ? mask + r * cols : NULL, causal_limit(r, cols, causal, causal_offset));
}

typedef struct {
    float *x;
    const float *mask;
    int64_t cols, off;
    int causal, level;
} sm_ctx;

static void sm_range(void *vctx, int64_t lo, int64_t hi) {
    const sm_ctx *c = (const sm_ctx *)vctx;
    for (int64_t r = lo; r < hi; r++)
        MP_PICK(c->level, mp_k_softmax_row, ref_softmax_row)(c->x + r * c->cols, c->cols, c->mask ? c->mask + r * c->cols : NULL,
                        causal_limit(r, c->cols, c->causal, c->off));
}

void mp_softmax(mp_exec *ex, float *x, int64_t rows, int64_t cols, const float *mask, int causal,
                int64_t causal_offset) {
    MP_CUDA_DISPATCH(ex, mp_cuda_softmax(ex, x, rows, cols, mask, causal, causal_offset));
    sm_ctx c = {x, mask, cols, causal_offset, causal, mp_cpu_level()};
    int64_t min_rows = cols > 0 ? (4096 + cols - 1) / cols : 1;
    mp_cpu_parallel_for(ex, rows, min_rows, 1, sm_range, &c);
}
