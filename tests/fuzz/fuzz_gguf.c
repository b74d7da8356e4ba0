/* fuzz_gguf.c — libFuzzer harness for the GGUF reader (models/gguf.c): parse, then touch everything the
 * reader hands out (every value, every getter, every tensor's last byte) and copy the metadata into a
 * writer. Seeds: scripts/fuzz.sh (small generated GGUFs + heads of the fixture vocab files). */
#include "models/gguf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static volatile uint64_t sink;

static void touch(const mp_gguf_value *v, int depth) {
    if (v->type == MP_GGUF_STRING) {
        if (v->n) sink += (uint8_t)v->str[v->n - 1];
        if (v->str[v->n] != 0) abort();
    } else if (v->type == MP_GGUF_ARRAY) {
        if (mp_gguf_type_size((int)v->elem_type)) {
            if (v->n) sink += (uint64_t)mp_gguf_arr_i64(v, v->n - 1) + (uint64_t)mp_gguf_arr_f64(v, 0);
        } else if (v->elem_type == MP_GGUF_STRING) {
            uint64_t len;
            for (uint64_t i = 0; i < v->n; i++)
                if (mp_gguf_arr_str(v, i, &len) && len) sink += (uint8_t)mp_gguf_arr_str(v, i, NULL)[len - 1];
        } else {
            if (depth > 8) abort();
            for (uint64_t i = 0; i < v->n; i++) touch(&v->elems[i], depth + 1);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    mp_gguf *g;
    mp_error e;
    if (mp_gguf_open_memory(&g, data, size, "fuzz.gguf", &e) != 0) return 0;
    mp_gguf_writer *w = mp_gguf_writer_new();
    for (int64_t i = 0; i < mp_gguf_n_kv(g); i++) {
        const char *k = mp_gguf_key(g, i);
        const mp_gguf_value *v = mp_gguf_kv(g, i);
        if (mp_gguf_get(g, k) != v) abort();
        touch(v, 0);
        uint32_t u;
        int32_t s;
        float f;
        int b;
        const char *str;
        mp_gguf_get_u32(g, k, &u, &e);
        mp_gguf_get_i32(g, k, &s, &e);
        mp_gguf_get_f32(g, k, &f, &e);
        mp_gguf_get_bool(g, k, &b, &e);
        mp_gguf_get_str(g, k, &str, &e);
        if (v->type == MP_GGUF_ARRAY && v->n <= 4096) {
            int32_t *i32 = malloc((size_t)v->n * 4 + 4);
            float *f32 = malloc((size_t)v->n * 4 + 4);
            const char **ss = malloc((size_t)v->n * sizeof(char *) + 8);
            mp_gguf_get_arr_i32(g, k, i32, v->n, &e);
            mp_gguf_get_arr_f32(g, k, f32, v->n, &e);
            mp_gguf_get_arr_str(g, k, ss, NULL, v->n, &e);
            free(i32);
            free(f32);
            free(ss);
        }
        mp_gguf_set_value(w, k, v);
    }
    for (int64_t i = 0; i < mp_gguf_n_tensors(g); i++) {
        const mp_tensor *t = mp_gguf_tensor(g, i);
        if (mp_gguf_find_tensor(g, t->name) != t) abort();
        size_t n = mp_gguf_tensor_nbytes(g, i);
        if (n != mp_tensor_nbytes(t)) abort();
        if (n) sink += ((const uint8_t *)t->data)[0] + ((const uint8_t *)t->data)[n - 1];
        mp_gguf_writer_add_tensor(w, t->name, t->dtype, t->ndim, t->ne, t->data);
    }
    mp_gguf_writer_free(w);
    mp_gguf_free(g);
    return 0;
}
