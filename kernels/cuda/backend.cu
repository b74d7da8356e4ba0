// backend.cu — CUDA backend state: device, stream, cuBLAS and cuDNN handles for an mp_exec.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_ops.h"

extern "C" int mp_cuda_device_count(void) {
    static int cached = -1;
    if (cached >= 0) return cached;
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        cudaGetLastError(); // clear
        n = 0;
    }
    cached = n;
    return n;
}

extern "C" int mp_cuda_device_name(char *buf, size_t size) {
    if (!buf || size == 0 || mp_cuda_device_count() <= 0) return -1;
    cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) {
        cudaGetLastError();
        return -1;
    }
    snprintf(buf, size, "%s (sm_%d%d, %d SMs, %.1f GiB)", prop.name, prop.major, prop.minor, prop.multiProcessorCount,
             (double)prop.totalGlobalMem / (1024.0 * 1024.0 * 1024.0));
    return 0;
}

extern "C" int mp_cuda_exec_init(mp_exec *ex, mp_error *err) {
    mp_cuda_state *st = (mp_cuda_state *)calloc(1, sizeof(mp_cuda_state));
    if (!st) return mp_errf(err, "cuda: out of host memory");
    cudaError_t ce = cudaSetDevice(0);
    if (ce != cudaSuccess) { free(st); return mp_errf(err, "cuda: cudaSetDevice: %s", cudaGetErrorString(ce)); }
    ce = cudaStreamCreateWithFlags(&st->stream, cudaStreamNonBlocking);
    if (ce != cudaSuccess) { free(st); return mp_errf(err, "cuda: stream: %s", cudaGetErrorString(ce)); }
    cublasStatus_t be = cublasCreate(&st->cublas);
    if (be != CUBLAS_STATUS_SUCCESS) {
        cudaStreamDestroy(st->stream);
        free(st);
        return mp_errf(err, "cuda: cublasCreate failed (%d)", (int)be);
    }
    cublasSetStream(st->cublas, st->stream);
    cudnnStatus_t de = cudnnCreate(&st->cudnn);
    if (de != CUDNN_STATUS_SUCCESS) {
        cublasDestroy(st->cublas);
        cudaStreamDestroy(st->stream);
        free(st);
        return mp_errf(err, "cuda: cudnnCreate: %s", cudnnGetErrorString(de));
    }
    cudnnSetStream(st->cudnn, st->stream);
    ex->cuda = st;
    return 0;
}

extern "C" void mp_cuda_exec_free(mp_exec *ex) {
    mp_cuda_state *st = (mp_cuda_state *)ex->cuda;
    if (!st) return;
    cudaStreamSynchronize(st->stream);
    if (st->workspace) cudaFree(st->workspace);
    cudnnDestroy(st->cudnn);
    cublasDestroy(st->cublas);
    cudaStreamDestroy(st->stream);
    free(st);
    ex->cuda = NULL;
}

extern "C" void mp_cuda_record_error(mp_exec *ex, const char *what, const char *msg, const char *file, int line) {
    mp_cuda_state *st = (mp_cuda_state *)ex->cuda;
    if (!st || st->failed) return;
    st->failed = 1;
    snprintf(st->errmsg, sizeof st->errmsg, "CUDA %s: %s (%s:%d)", what, msg, file, line);
}

extern "C" int mp_cuda_exec_status(mp_exec *ex, mp_error *err) {
    mp_cuda_state *st = (mp_cuda_state *)ex->cuda;
    if (!st) return 0;
    if (!st->failed) {
        cudaError_t e = cudaStreamSynchronize(st->stream);
        if (e != cudaSuccess) mp_cuda_record_error(ex, cudaGetErrorName(e), cudaGetErrorString(e), __FILE__, __LINE__);
    }
    if (st->failed) return mp_errf(err, "%s", st->errmsg);
    return 0;
}

extern "C" void *mp_cuda_workspace(mp_exec *ex, size_t bytes) {
    mp_cuda_state *st = (mp_cuda_state *)ex->cuda;
    if (st->failed) return NULL;
    if (bytes == 0) bytes = 1;
    if (st->workspace_size >= bytes) return st->workspace;
    // Earlier ops queued on the stream may still read the old buffer: wait before freeing it.
    cudaError_t e = cudaStreamSynchronize(st->stream);
    if (e != cudaSuccess) {
        mp_cuda_record_error(ex, cudaGetErrorName(e), cudaGetErrorString(e), __FILE__, __LINE__);
        return NULL;
    }
    if (st->workspace) cudaFree(st->workspace);
    st->workspace = NULL;
    st->workspace_size = 0;
    size_t want = bytes + bytes / 4; // some headroom so that slowly growing requests do not reallocate each time
    want = (want + 0xfffff) & ~(size_t)0xfffff;
    e = cudaMalloc(&st->workspace, want);
    if (e != cudaSuccess) {
        cudaGetLastError();
        e = cudaMalloc(&st->workspace, bytes);
        want = bytes;
    }
    if (e != cudaSuccess) {
        cudaGetLastError();
        st->workspace = NULL;
        char msg[160];
        snprintf(msg, sizeof msg, "cannot allocate %zu bytes of op scratch on the device", bytes);
        mp_cuda_record_error(ex, "cudaMalloc", msg, __FILE__, __LINE__);
        return NULL;
    }
    st->workspace_size = want;
    return st->workspace;
}

extern "C" int mp_cuda_upload_tensor(mp_exec *ex, mp_tensor *dst, const mp_tensor *src, mp_error *err) {
    if (!src || !dst || !src->data) return mp_errf(err, "cuda: upload of a tensor without data");
    if (src->backend != MP_BACKEND_CPU) return mp_errf(err, "cuda: upload of %s: source is not in host memory", src->name ? src->name : "tensor");
    if (!mp_tensor_is_contiguous(src)) return mp_errf(err, "cuda: upload of %s: tensor is not contiguous", src->name ? src->name : "tensor");
    size_t bytes = mp_tensor_nbytes(src);
    void *p = mp_cuda_alloc(ex, bytes);
    if (!p) return mp_errf(err, "cuda: cannot allocate %zu bytes on the device for %s", bytes, src->name ? src->name : "tensor");
    if (mp_cuda_memcpy(ex, p, src->data, bytes, 1, err) != 0) {
        mp_cuda_free(ex, p);
        return -1;
    }
    *dst = *src;
    dst->data = p;
    dst->backend = MP_BACKEND_CUDA;
    return 0;
}

extern "C" void mp_cuda_free_tensor(mp_exec *ex, mp_tensor *t) {
    if (!t || t->backend != MP_BACKEND_CUDA) return;
    if (t->data) mp_cuda_free(ex, t->data);
    t->data = NULL;
}

extern "C" void *mp_cuda_alloc(mp_exec *ex, size_t bytes) {
    void *p = NULL;
    if (cudaMalloc(&p, bytes ? bytes : 1) != cudaSuccess) {
        cudaGetLastError();
        return NULL;
    }
    return p;
}

extern "C" void mp_cuda_free(mp_exec *ex, void *p) {
    (void)ex;
    cudaFree(p);
}

extern "C" int mp_cuda_memcpy(mp_exec *ex, void *dst, const void *src, size_t bytes, int to_device, mp_error *err) {
    mp_cuda_state *st = (mp_cuda_state *)ex->cuda;
    cudaError_t e = cudaMemcpyAsync(dst, src, bytes, to_device ? cudaMemcpyHostToDevice : cudaMemcpyDeviceToHost,
                                    st->stream);
    if (e == cudaSuccess) e = cudaStreamSynchronize(st->stream);
    if (e != cudaSuccess) return mp_errf(err, "cuda: copy of %zu bytes %s device failed: %s", bytes,
                                         to_device ? "to" : "from", cudaGetErrorString(e));
    return 0;
}
