/* version.c — mmpipe_version / mmpipe_build_info */
#include "mmpipe.h"
#include "kernels/mp.h"

#include <stdio.h>

#ifndef MMPIPE_VERSION
#define MMPIPE_VERSION "0.0.0"
#endif

const char *mmpipe_version(void) { return MMPIPE_VERSION; }

const char *mmpipe_build_info(void) {
    static char buf[256];
    const mp_cpu_features *c = mp_cpu();
    snprintf(buf, sizeof buf, "mmpipe %s | cpu: %s (avx2 %d, avx512f %d, avx512_vnni %d, avx512_bf16 %d) | cuda: %s",
             MMPIPE_VERSION, mp_cpu_level_name(mp_cpu_level()), c->avx2, c->avx512f, c->avx512_vnni,
             c->avx512_bf16,
             mp_cuda_compiled() ? (mp_cuda_available() ? "compiled, device found" : "compiled, no device")
                                : "not compiled");
    return buf;
}
