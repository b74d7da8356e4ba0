// conv.cu — conv1d / conv2d / conv3d through cuDNN (NCHW / NCDHW, F32 data, CUDNN_FMA_MATH so no TF32:
// results are plain F32 sums like the CPU's), and depthwise conv1d with our own kernel.
// Weights (F32, F16 or BF16, any byte strides as the CPU op accepts) are first gathered into a contiguous
// F32 [C_out][C_in][KT][KH][KW] copy in device scratch, which is cuDNN's filter layout. conv1d is a 2-D
// convolution with H = 1. Algorithms: the direct ones (implicit GEMM, precomputed implicit GEMM, GEMM)
// are preferred over FFT / Winograd, whose rounding differs from a plain sum.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_ops.h"

typedef struct {
    int nsp;                       // spatial dims handed to cuDNN: 2 (conv1d, conv2d) or 3 (conv3d)
    int64_t c_in, c_out, t, h, w;  // input extents (t = 1 for 2-D)
    int kt, kh, kw, st, sh, sw, pt, ph, pw;
    int64_t t_out, h_out, w_out;
    size_t s_kw, s_kh, s_kt, s_ci, s_co; // weight byte strides
} cgeom;

static int64_t c_out_len(int64_t in, int k, int stride, int pad) {
    if (stride < 1 || k < 1) return 0;
    int64_t span = in + 2 * (int64_t)pad - k;
    return span < 0 ? 0 : span / stride + 1;
}

static int cgeom_finish(cgeom *g) {
    g->t_out = c_out_len(g->t, g->kt, g->st, g->pt);
    g->h_out = c_out_len(g->h, g->kh, g->sh, g->ph);
    g->w_out = c_out_len(g->w, g->kw, g->sw, g->pw);
    return g->c_in > 0 && g->c_out > 0 && g->t_out > 0 && g->h_out > 0 && g->w_out > 0 &&
           mp_cuda_fits_int(g->c_in) && mp_cuda_fits_int(g->c_out) && mp_cuda_fits_int(g->t) && mp_cuda_fits_int(g->h) &&
           mp_cuda_fits_int(g->w);
}

// dst[co][ci][a][b][c] (contiguous F32) from a strided F32/F16/BF16 weight.
__global__ void k_gather_weight(float *__restrict__ dst, const uint8_t *__restrict__ w, int dt, cgeom g) {
    const int64_t n = g.c_out * g.c_in * g.kt * g.kh * g.kw;
    MP_GRID_STRIDE(i, n) {
        int64_t r = i;
        const int c = (int)(r % g.kw); r /= g.kw;
        const int b = (int)(r % g.kh); r /= g.kh;
        const int a = (int)(r % g.kt); r /= g.kt;
        const int64_t ci = r % g.c_in, co = r / g.c_in;
        const uint8_t *p = w + co * g.s_co + ci * g.s_ci + a * g.s_kt + b * g.s_kh + c * g.s_kw;
        dst[i] = dt == MP_F16 ? mp_d_f16(*(const uint16_t *)p) : dt == MP_BF16 ? mp_d_bf16(*(const uint16_t *)p)
                                                                               : *(const float *)p;
    }
}

__global__ void k_bias_planes(float *__restrict__ y, const float *__restrict__ bias, int64_t c, int64_t plane, int64_t n) {
    MP_GRID_STRIDE(i, n) y[i] += bias[(i / plane) % c];
}

static int weight_ok(mp_exec *ex, const mp_tensor *w, const char *op) {
    if (!w || !w->data) {
        mp_cuda_record_error(ex, "bad argument", op, __FILE__, __LINE__);
        return 0;
    }
    if (w->backend != MP_BACKEND_CUDA) {
        mp_cuda_record_error(ex, "bad argument", "convolution weight is not in device memory", __FILE__, __LINE__);
        return 0;
    }
    if (w->dtype != MP_F32 && w->dtype != MP_F16 && w->dtype != MP_BF16) {
        mp_cuda_record_error(ex, "unsupported", "convolution weights must be F32, F16 or BF16", __FILE__, __LINE__);
        return 0;
    }
    return 1;
}

static int is_direct_algo(cudnnConvolutionFwdAlgo_t a) {
    return a == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM || a == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM ||
           a == CUDNN_CONVOLUTION_FWD_ALGO_GEMM;
}

#define CONV_TRY(call)                                                                            \
    do {                                                                                          \
        cudnnStatus_t _s = (call);                                                                \
        if (_s != CUDNN_STATUS_SUCCESS) {                                                         \
            mp_cuda_record_error(ex, "cuDNN", cudnnGetErrorString(_s), __FILE__, __LINE__);       \
            goto done;                                                                            \
        }                                                                                         \
    } while (0)

static void conv_cudnn(mp_exec *ex, float *y, const float *x, const mp_tensor *wt, const float *bias, int batch,
                       const cgeom *g) {
    mp_cuda_state *st = mp_cuda(ex);
    cudnnTensorDescriptor_t xd = NULL, yd = NULL;
    cudnnFilterDescriptor_t fd = NULL;
    cudnnConvolutionDescriptor_t cd = NULL;
    const int nd = g->nsp + 2;
    int xdims[5], ydims[5], xstr[5], ystr[5], fdims[5], pads[3], strides[3], dil[3] = {1, 1, 1}, odims[5];
    const int64_t nw = g->c_out * g->c_in * g->kt * g->kh * g->kw;
    const size_t wbytes = ((size_t)nw * 4 + 255) & ~(size_t)255;
    size_t wsz = 0;
    cudnnConvolutionFwdAlgo_t algo = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM;
    uint8_t *ws;
    float *w32;
    const float one = 1.0f, zero = 0.0f;
    if (g->nsp == 2) {
        int64_t xs[4] = {batch, g->c_in, g->h, g->w}, ys[4] = {batch, g->c_out, g->h_out, g->w_out};
        int64_t fs[4] = {g->c_out, g->c_in, g->kh, g->kw};
        for (int i = 0; i < 4; i++) { xdims[i] = (int)xs[i]; ydims[i] = (int)ys[i]; fdims[i] = (int)fs[i]; }
        pads[0] = g->ph; pads[1] = g->pw; strides[0] = g->sh; strides[1] = g->sw;
    } else {
        int64_t xs[5] = {batch, g->c_in, g->t, g->h, g->w}, ys[5] = {batch, g->c_out, g->t_out, g->h_out, g->w_out};
        int64_t fs[5] = {g->c_out, g->c_in, g->kt, g->kh, g->kw};
        for (int i = 0; i < 5; i++) { xdims[i] = (int)xs[i]; ydims[i] = (int)ys[i]; fdims[i] = (int)fs[i]; }
        pads[0] = g->pt; pads[1] = g->ph; pads[2] = g->pw;
        strides[0] = g->st; strides[1] = g->sh; strides[2] = g->sw;
    }
    xstr[nd - 1] = ystr[nd - 1] = 1;
    for (int i = nd - 2; i >= 0; i--) {
        xstr[i] = xstr[i + 1] * xdims[i + 1];
        ystr[i] = ystr[i + 1] * ydims[i + 1];
    }
    CONV_TRY(cudnnCreateTensorDescriptor(&xd));
    CONV_TRY(cudnnCreateTensorDescriptor(&yd));
    CONV_TRY(cudnnCreateFilterDescriptor(&fd));
    CONV_TRY(cudnnCreateConvolutionDescriptor(&cd));
    CONV_TRY(cudnnSetTensorNdDescriptor(xd, CUDNN_DATA_FLOAT, nd, xdims, xstr));
    CONV_TRY(cudnnSetTensorNdDescriptor(yd, CUDNN_DATA_FLOAT, nd, ydims, ystr));
    CONV_TRY(cudnnSetFilterNdDescriptor(fd, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, nd, fdims));
    CONV_TRY(cudnnSetConvolutionNdDescriptor(cd, g->nsp, pads, strides, dil, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    CONV_TRY(cudnnSetConvolutionMathType(cd, CUDNN_FMA_MATH));
    CONV_TRY(cudnnGetConvolutionNdForwardOutputDim(cd, xd, fd, nd, odims));
    for (int i = 0; i < nd; i++)
        if (odims[i] != ydims[i]) {
            mp_cuda_record_error(ex, "cuDNN", "convolution output shape disagrees with the op's geometry", __FILE__, __LINE__);
            goto done;
        }
    {
        cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
        int got = 0, pick = -1;
        CONV_TRY(cudnnGetConvolutionForwardAlgorithm_v7(st->cudnn, xd, fd, cd, yd, CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &got, perf));
        for (int pass = 0; pass < 2 && pick < 0; pass++)
            for (int i = 0; i < got; i++)
                if (perf[i].status == CUDNN_STATUS_SUCCESS && perf[i].memory <= ((size_t)1 << 30) &&
                    (pass == 1 || is_direct_algo(perf[i].algo))) {
                    pick = i;
                    break;
                }
        if (pick < 0) {
            mp_cuda_record_error(ex, "cuDNN", "no forward convolution algorithm for this shape", __FILE__, __LINE__);
            goto done;
        }
        algo = perf[pick].algo;
        CONV_TRY(cudnnGetConvolutionForwardWorkspaceSize(st->cudnn, xd, fd, cd, yd, algo, &wsz));
    }
    ws = (uint8_t *)mp_cuda_workspace(ex, wbytes + wsz);
    if (!ws) goto done;
    w32 = (float *)ws;
    k_gather_weight<<<mp_cuda_grid(nw, 256), 256, 0, st->stream>>>(w32, (const uint8_t *)wt->data, wt->dtype, *g);
    {
        cudaError_t e = cudaGetLastError();
        if (e != cudaSuccess) {
            mp_cuda_record_error(ex, cudaGetErrorName(e), cudaGetErrorString(e), __FILE__, __LINE__);
            goto done;
        }
    }
    CONV_TRY(cudnnConvolutionForward(st->cudnn, &one, xd, x, fd, w32, cd, algo, wsz ? ws + wbytes : NULL, wsz, &zero, yd, y));
    if (bias) {
        int64_t plane = g->t_out * g->h_out * g->w_out, n = (int64_t)batch * g->c_out * plane;
        k_bias_planes<<<mp_cuda_grid(n, 256), 256, 0, st->stream>>>(y, bias, g->c_out, plane, n);
        cudaError_t e = cudaGetLastError();
        if (e != cudaSuccess) mp_cuda_record_error(ex, cudaGetErrorName(e), cudaGetErrorString(e), __FILE__, __LINE__);
    }
done:
    if (cd) cudnnDestroyConvolutionDescriptor(cd);
    if (fd) cudnnDestroyFilterDescriptor(fd);
    if (yd) cudnnDestroyTensorDescriptor(yd);
    if (xd) cudnnDestroyTensorDescriptor(xd);
}

static int sizes_ok(mp_exec *ex, const cgeom *g, int batch, const void *x, const void *y, const char *op) {
    if (batch < 0 || !cgeom_finish((cgeom *)g) || (batch > 0 && (!x || !y))) {
        mp_cuda_record_error(ex, "bad argument", op, __FILE__, __LINE__);
        return 0;
    }
    return 1;
}

extern "C" void mp_cuda_conv1d(mp_exec *ex, float *y, const float *x, const mp_tensor *w, const float *bias, int batch,
                               int64_t c_in, int64_t l_in, int stride, int pad) {
    MP_CUDA_BEGIN(ex);
    if (!weight_ok(ex, w, "conv1d: NULL weight")) return;
    cgeom g = {};
    g.nsp = 2; g.c_in = c_in; g.c_out = w->ne[2]; g.t = 1; g.h = 1; g.w = l_in;
    g.kt = 1; g.kh = 1; g.kw = (int)w->ne[0]; g.st = 1; g.sh = 1; g.sw = stride; g.pw = pad;
    g.s_kw = w->nb[0]; g.s_ci = w->nb[1]; g.s_co = w->nb[2];
    MP_CUDA_REQUIRE(ex, w->ne[1] == c_in, "conv1d", "weight ne[1] != c_in");
    if (!sizes_ok(ex, &g, batch, x, y, "conv1d: bad geometry (empty output, stride < 1 or negative size)")) return;
    if (batch == 0) return;
    conv_cudnn(ex, y, x, w, bias, batch, &g);
}

extern "C" void mp_cuda_conv2d(mp_exec *ex, float *y, const float *x, const mp_tensor *w, const float *bias, int batch,
                               int64_t c_in, int64_t h, int64_t wd, int stride_h, int stride_w, int pad_h, int pad_w) {
    MP_CUDA_BEGIN(ex);
    if (!weight_ok(ex, w, "conv2d: NULL weight")) return;
    cgeom g = {};
    g.nsp = 2; g.c_in = c_in; g.c_out = w->ne[3]; g.t = 1; g.h = h; g.w = wd;
    g.kt = 1; g.kh = (int)w->ne[1]; g.kw = (int)w->ne[0]; g.st = 1; g.sh = stride_h; g.sw = stride_w;
    g.ph = pad_h; g.pw = pad_w;
    g.s_kw = w->nb[0]; g.s_kh = w->nb[1]; g.s_ci = w->nb[2]; g.s_co = w->nb[3];
    MP_CUDA_REQUIRE(ex, w->ne[2] == c_in, "conv2d", "weight ne[2] != c_in");
    if (!sizes_ok(ex, &g, batch, x, y, "conv2d: bad geometry (empty output, stride < 1 or negative size)")) return;
    if (batch == 0) return;
    conv_cudnn(ex, y, x, w, bias, batch, &g);
}

extern "C" void mp_cuda_conv3d(mp_exec *ex, float *y, const float *x, const mp_tensor *w, int kt, const float *bias,
                               int batch, int64_t c_in, int64_t t, int64_t h, int64_t wd, int stride_t, int stride_h,
                               int stride_w) {
    MP_CUDA_BEGIN(ex);
    if (!weight_ok(ex, w, "conv3d: NULL weight")) return;
    MP_CUDA_REQUIRE(ex, kt > 0 && w->ne[2] == (int64_t)kt * c_in, "conv3d", "weight ne[2] != kt * c_in");
    cgeom g = {};
    g.nsp = 3; g.c_in = c_in; g.c_out = w->ne[3]; g.t = t; g.h = h; g.w = wd;
    g.kt = kt; g.kh = (int)w->ne[1]; g.kw = (int)w->ne[0]; g.st = stride_t; g.sh = stride_h; g.sw = stride_w;
    g.s_kw = w->nb[0]; g.s_kh = w->nb[1]; g.s_kt = w->nb[2]; g.s_ci = (size_t)kt * w->nb[2]; g.s_co = w->nb[3];
    if (!sizes_ok(ex, &g, batch, x, y, "conv3d: bad geometry (empty output, stride < 1 or negative size)")) return;
    if (batch == 0) return;
    conv_cudnn(ex, y, x, w, bias, batch, &g);
}

// Depthwise: thread per output element (b, c, o).
__global__ void k_conv1d_dw(float *__restrict__ y, const float *__restrict__ x, const uint8_t *__restrict__ w, int dt,
                            size_t s_k, size_t s_c, const float *__restrict__ bias, int64_t c, int64_t l_in,
                            int64_t l_out, int k, int stride, int pad, int64_t n) {
    MP_GRID_STRIDE(i, n) {
        const int64_t o = i % l_out, bc = i / l_out, ch = bc % c;
        const float *xr = x + bc * l_in;
        const uint8_t *wr = w + ch * s_c;
        float acc = 0.0f;
        for (int j = 0; j < k; j++) {
            const int64_t p = o * stride - pad + j;
            if (p < 0 || p >= l_in) continue;
            const uint8_t *wp = wr + j * s_k;
            float wv = dt == MP_F16 ? mp_d_f16(*(const uint16_t *)wp) : dt == MP_BF16 ? mp_d_bf16(*(const uint16_t *)wp)
                                                                                     : *(const float *)wp;
            acc += wv * xr[p];
        }
        y[i] = acc + (bias ? bias[ch] : 0.0f);
    }
}

extern "C" void mp_cuda_conv1d_dw(mp_exec *ex, float *y, const float *x, const mp_tensor *w, const float *bias, int batch,
                                  int64_t c, int64_t l_in, int stride, int pad) {
    MP_CUDA_BEGIN(ex);
    if (!weight_ok(ex, w, "conv1d_dw: NULL weight")) return;
    const int three = w->ne[1] == 1 && w->ne[2] == c;
    MP_CUDA_REQUIRE(ex, three || w->ne[1] == c, "conv1d_dw", "weight must be {K, 1, C} or {K, C}");
    const int k = (int)w->ne[0];
    const int64_t l_out = c_out_len(l_in, k, stride, pad);
    MP_CUDA_REQUIRE(ex, batch >= 0 && c > 0 && l_out > 0, "conv1d_dw", "bad geometry (empty output, stride < 1 or negative size)");
    if (batch == 0) return;
    MP_CUDA_REQUIRE(ex, x && y, "conv1d_dw", "NULL operand");
    const int64_t n = (int64_t)batch * c * l_out;
    k_conv1d_dw<<<mp_cuda_grid(n, 256), 256, 0, MP_CUDA_STREAM(ex)>>>(y, x, (const uint8_t *)w->data, w->dtype, w->nb[0],
                                                                      three ? w->nb[2] : w->nb[1], bias, c, l_in, l_out,
                                                                      k, stride, pad, n);
    CUDA_KERNEL_CHECK(ex);
}
