// backend.cu — CUDA backend state: device, stream, cuBLAS and cuDNN handles for an mp_exec.
#include "kernels/cuda/common.cuh"

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
