/* gpu_status.c — one line for the start of a ctest run: can the tests labelled `gpu` run here, and if not,
 * why ctest will list them as "Skipped". Always exits 0. */
#include <stdio.h>

#include "kernels/mp.h"
#ifdef MP_HAVE_CUDA
#include "kernels/cuda/cuda_ops.h"
#endif

int main(void) {
    if (!mp_cuda_compiled()) {
        printf("mmpipe gpu tests (ctest -L gpu): will be SKIPPED: this build has no CUDA backend (MMPIPE_CUDA=OFF, or nvcc/cuDNN not found)\n");
        return 0;
    }
#ifdef MP_HAVE_CUDA
    char name[256];
    if (!mp_cuda_available() || mp_cuda_device_name(name, sizeof name) != 0) {
        printf("mmpipe gpu tests (ctest -L gpu): will be SKIPPED: CUDA backend built, but no usable CUDA device on this machine\n");
        return 0;
    }
    printf("mmpipe gpu tests (ctest -L gpu): will RUN on CUDA device 0: %s\n", name);
#endif
    return 0;
}
