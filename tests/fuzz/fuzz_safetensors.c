/* fuzz_safetensors.c — libFuzzer harness for the safetensors reader (models/safetensors.c). */
#include "models/safetensors.h"

#include <stdint.h>
#include <stdlib.h>

static volatile uint64_t sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    mp_safetensors *st;
    mp_error e;
    if (mp_safetensors_open_memory(&st, data, size, "fuzz.safetensors", &e) != 0) return 0;
    for (int64_t i = 0; i < mp_safetensors_n_tensors(st); i++) {
        const mp_tensor *t = mp_safetensors_tensor(st, i);
        if (mp_safetensors_get(st, t->name) != t) abort();
        int64_t shape[MP_ST_MAX_DIMS];
        int nd = mp_safetensors_shape(st, i, shape);
        if (nd < 0 || nd > MP_ST_MAX_DIMS) abort();
        size_t n = mp_tensor_nbytes(t);
        if (n) sink += ((const uint8_t *)t->data)[0] + ((const uint8_t *)t->data)[n - 1];
        sink += (uint64_t)mp_tensor_nelements(t);
    }
    for (int64_t i = 0; i < mp_safetensors_n_metadata(st); i++)
        sink += (uint64_t)(mp_safetensors_metadata(st, mp_safetensors_metadata_key(st, i)) != NULL);
    mp_safetensors_free(st);
    return 0;
}
