/* fuzz_llama2c.c — libFuzzer harness for the llama2.c checkpoint header check (models/llama2c.c). */
#include "models/llama2c.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    mp_llama2c_config c;
    mp_error e;
    if (mp_llama2c_parse_config(data, size, "fuzz.bin", &c, &e) != 0) return 0;
    if (c.file_size != size || c.data_offset > size || c.head_size * c.n_heads != c.dim) abort();
    return 0;
}
