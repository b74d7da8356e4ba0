// common.cuh — shared by every CUDA op: error checks and the backend state in mp_exec.cuda.
#pragma once
#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <cudnn.h>
#include <stdio.h>
#include <stdlib.h>

#include "kernels/mp.h"
#include "kernels/ops.h"

typedef struct mp_cuda_state {
    cudaStream_t stream;
    cublasHandle_t cublas;
    cudnnHandle_t cudnn;
    void *workspace; // cuDNN/cuBLAS workspace, grown on demand
    size_t workspace_size;
    int failed;
    char errmsg[512];
} mp_cuda_state;

static inline mp_cuda_state *mp_cuda(mp_exec *ex) { return (mp_cuda_state *)ex->cuda; }

// Ops have no error return (like BLAS). A CUDA failure is recorded in the exec's state (first error
// wins, with file:line and CUDA's message), the op returns, and every later op on that exec is a no-op.
// Callers check mp_exec_status() after a forward pass and report the message; nothing exits.
extern "C" void mp_cuda_record_error(mp_exec *ex, const char *what, const char *msg, const char *file, int line);
static inline int mp_cuda_failed(mp_exec *ex) { return ((mp_cuda_state *)ex->cuda)->failed; }

#define CUDA_CHECK(ex, call)                                                                      \
    do {                                                                                          \
        cudaError_t _e = (call);                                                                  \
        if (_e != cudaSuccess) {                                                                  \
            mp_cuda_record_error((ex), cudaGetErrorName(_e), cudaGetErrorString(_e), __FILE__, __LINE__); \
            return;                                                                               \
        }                                                                                         \
    } while (0)

#define CUBLAS_CHECK(ex, call)                                                                    \
    do {                                                                                          \
        cublasStatus_t _s = (call);                                                               \
        if (_s != CUBLAS_STATUS_SUCCESS) {                                                        \
            mp_cuda_record_error((ex), "cuBLAS", cublasGetStatusString(_s), __FILE__, __LINE__);  \
            return;                                                                               \
        }                                                                                         \
    } while (0)

#define CUDNN_CHECK(ex, call)                                                                     \
    do {                                                                                          \
        cudnnStatus_t _s = (call);                                                                \
        if (_s != CUDNN_STATUS_SUCCESS) {                                                         \
            mp_cuda_record_error((ex), "cuDNN", cudnnGetErrorString(_s), __FILE__, __LINE__);     \
            return;                                                                               \
        }                                                                                         \
    } while (0)

// After a kernel launch.
#define CUDA_KERNEL_CHECK(ex) CUDA_CHECK(ex, cudaGetLastError())
