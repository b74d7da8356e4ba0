/* fuzz_hfjson.c — libFuzzer harness for the HF JSON config helpers (models/hfjson.c) over cJSON:
 * parse, take the text/vision views and read the keys the model loaders read, with every getter. */
#include "models/hfjson.h"

#include <stdint.h>
#include <stdlib.h>

static volatile uint64_t sink;

static const char *const keys[] = {
    "hidden_size", "num_hidden_layers", "rope_scaling.mrope_section", "eos_token_id", "image_mean",
    "size.longest_edge", "forced_decoder_ids.0.1", "chat_template", "model_type", "rope_theta",
    "tie_word_embeddings", "mel_filters.0.1", "a.b.c.d.e", "0", "", ".", "x..y", NULL};

static void read_all(const mp_json *j) {
    mp_error e;
    for (int i = 0; keys[i]; i++) {
        int64_t v, arr[8];
        double d;
        int b, n;
        float f[8];
        const char *s;
        mp_json_int_or(j, keys[i], 1, &v, &e);
        mp_json_f64_or(j, keys[i], 1.0, &d, &e);
        mp_json_bool_or(j, keys[i], 0, &b, &e);
        if (mp_json_str_or(j, keys[i], "", &s, &e) == 0) sink += (uint8_t)s[0];
        if (mp_json_int_array_or(j, keys[i], arr, 8, &n, &e) == 0 && (n < 0 || n > 8)) abort();
        if (mp_json_get_f32_array(j, keys[i], f, 8, &n, &e) == 0 && (n < 0 || n > 8)) abort();
        int32_t i32;
        mp_json_i32_or(j, keys[i], 0, &i32, &e);
        sink += (uint64_t)mp_json_has(j, keys[i]);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    mp_json j;
    mp_error e;
    if (mp_json_parse(&j, (const char *)data, size, "fuzz.json", &e) != 0) return 0;
    read_all(&j);
    mp_json t, v;
    if (mp_json_sub(&j, "text_config", &t, &e) == 0) read_all(&t);
    if (mp_json_sub(&j, "vision_config", &v, &e) == 0) {
        mp_json vv;
        read_all(&v);
        if (mp_json_sub(&v, "text_config", &vv, &e) == 0) read_all(&vv);
    }
    mp_json_free(&j);
    return 0;
}
