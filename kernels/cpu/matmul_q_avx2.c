/* matmul_q_avx2.c — AVX2 kernels of the quantized-activation matmul (arithmetic defined in matmul_q.c). */
#include "kernels/cpu/matmul_q.h"

mp_q8_kernel mp_q8_kernel_avx2(mp_dtype dt) {
    (void)dt;
    return NULL;
}
