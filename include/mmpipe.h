/* mmpipe.h — public C API of libmmpipe.
 *
 * Conventions (as whisper.cpp and llama.cpp): opaque contexts, *_default_params() returning a struct
 * by value, explicit *_free(). Every fallible call returns an mmpipe_status and, on failure, fills a
 * human-readable message that names the file and the problem (mmpipe_last_error on the context or
 * the err buffer argument).
 *
 * This header grows as the pipelines land; see README.md for what works today.
 */
#ifndef MMPIPE_H
#define MMPIPE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum mmpipe_status {
    MMPIPE_OK = 0,
    MMPIPE_ERR = -1,
} mmpipe_status;

typedef enum mmpipe_device {
    MMPIPE_DEVICE_AUTO = -1, /* CUDA when compiled in and a GPU is present, else CPU */
    MMPIPE_DEVICE_CPU = 0,
    MMPIPE_DEVICE_CUDA = 1,
} mmpipe_device;

/* "0.1.0" */
const char *mmpipe_version(void);
/* A one-line description of the build: version, SIMD level in use, CUDA compiled/available. */
const char *mmpipe_build_info(void);

#ifdef __cplusplus
}
#endif
#endif
