/* layout.c — transpose and column concatenation (data movement only: results are exact). */
#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/ref.h"

void mp_ref_transpose(float *y, const float *x, int64_t rows, int64_t cols) {
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) y[c * rows + r] = x[r * cols + c];
}

void mp_ref_concat_cols(float *y, const float *a, int64_t ca, const float *b, int64_t cb, int64_t rows) {
    for (int64_t r = 0; r < rows; r++) {
        memmove(y + r * (ca + cb), a + r * ca, (size_t)ca * sizeof(float));
        memmove(y + r * (ca + cb) + ca, b + r * cb, (size_t)cb * sizeof(float));
    }
}

#define TR_BLOCK 32

typedef struct {
    float *y;
    const float *x;
    int64_t rows, cols;
} tr_ctx;

/* lo..hi are blocks of TR_BLOCK source rows; each block is copied tile by tile (cache friendly) */
static void tr_range(void *vctx, int64_t lo, int64_t hi) {
    const tr_ctx *c = (const tr_ctx *)vctx;
    for (int64_t rb = lo * TR_BLOCK; rb < hi * TR_BLOCK && rb < c->rows; rb += TR_BLOCK) {
        int64_t re = rb + TR_BLOCK < c->rows ? rb + TR_BLOCK : c->rows;
        for (int64_t cb = 0; cb < c->cols; cb += TR_BLOCK) {
            int64_t ce = cb + TR_BLOCK < c->cols ? cb + TR_BLOCK : c->cols;
            for (int64_t r = rb; r < re; r++)
                for (int64_t col = cb; col < ce; col++) c->y[col * c->rows + r] = c->x[r * c->cols + col];
        }
    }
}

void mp_transpose(mp_exec *ex, float *y, const float *x, int64_t rows, int64_t cols) {
    MP_CUDA_DISPATCH(ex, mp_cuda_transpose(ex, y, x, rows, cols));
    if (rows <= 0 || cols <= 0) return;
    tr_ctx c = {y, x, rows, cols};
    int64_t blocks = (rows + TR_BLOCK - 1) / TR_BLOCK;
    int64_t min_blocks = (65536 + TR_BLOCK * cols - 1) / (TR_BLOCK * cols);
    mp_cpu_parallel_for(ex, blocks, min_blocks, 1, tr_range, &c);
}

void mp_concat_cols(mp_exec *ex, float *y, const float *a, int64_t ca, const float *b, int64_t cb, int64_t rows) {
    MP_CUDA_DISPATCH(ex, mp_cuda_concat_cols(ex, y, a, ca, b, cb, rows));
    mp_ref_concat_cols(y, a, ca, b, cb, rows);
}
