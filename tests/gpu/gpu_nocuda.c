/* gpu_nocuda.c — stands in for the GPU parity tests in a build without the CUDA backend: skipped. */
#include "test.h"

int main(void) {
    fprintf(stderr, "test_gpu_ops: SKIPPED: this build has no CUDA backend (MMPIPE_CUDA=OFF or no nvcc/cuDNN)\n");
    return MP_TEST_SKIP;
}
