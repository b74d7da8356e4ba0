/* hfjson.h — Hugging Face JSON configs (config.json, generation_config.json, preprocessor_config.json,
 * processor_config.json, tokenizer_config.json, adapter_config.json) over cJSON, with typed getters,
 * defaults and one-line errors naming the file and the key.
 *
 * Keys are dotted paths: "text_config.hidden_size", "rope_scaling.mrope_section", "size.longest_edge";
 * a numeric component indexes an array ("forced_decoder_ids.0.1").
 * Getter rules:
 *  - mp_json_get_*: the key must exist; mp_json_*_or: a missing key (or JSON null) gives def;
 *  - a present key of the wrong type is always an error ("FILE: KEY is a string, expected an integer");
 *  - integers must be integral numbers (576, 576.0); values past int64 (model_max_length 1e30) saturate
 *    to INT64_MAX/MIN; floats accept any number;
 *    bools accept true/false only.
 */
#ifndef MP_HFJSON_H
#define MP_HFJSON_H

#include <cjson/cJSON.h>

#include "kernels/mp.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A parsed JSON file, or a view of one of its objects (e.g. text_config). A view borrows the parse
 * tree of the mp_json it came from: free only the owner. An absent optional file is an mp_json with
 * root == NULL: every getter then reports "not found" and every _or getter gives its default. */
typedef struct mp_json {
    cJSON *owned;       /* the parse tree when this owns it */
    const cJSON *root;  /* the object getters look in */
    char file[512];     /* for errors */
    char prefix[64];    /* path of root inside the file, "" or "text_config." */
} mp_json;

/* Maximum JSON file size these readers accept (tokenizer.json is read by the tokenizer, not here). */
#define MP_JSON_MAX_BYTES ((size_t)64 << 20)

int mp_json_load(mp_json *j, const char *path, mp_error *err);
/* Like mp_json_load, but a missing file is not an error (root stays NULL). */
int mp_json_load_optional(mp_json *j, const char *path, mp_error *err);
int mp_json_parse(mp_json *j, const char *text, size_t len, const char *name, mp_error *err);
void mp_json_free(mp_json *j);
int mp_json_present(const mp_json *j); /* 1 if there is a root object */

/* View of the object under key; if key is absent (or null), a view of j itself. Fails if key is present
 * but not an object. Typical use: mp_json_sub(&config, "text_config", &text). */
int mp_json_sub(const mp_json *j, const char *key, mp_json *view, mp_error *err);

const cJSON *mp_json_find(const mp_json *j, const char *key); /* NULL when absent */
int mp_json_has(const mp_json *j, const char *key);           /* present and not null */

int mp_json_get_int(const mp_json *j, const char *key, int64_t *out, mp_error *err);
int mp_json_get_f64(const mp_json *j, const char *key, double *out, mp_error *err);
int mp_json_get_bool(const mp_json *j, const char *key, int *out, mp_error *err);
/* The string is owned by j's parse tree. */
int mp_json_get_str(const mp_json *j, const char *key, const char **out, mp_error *err);
int mp_json_int_or(const mp_json *j, const char *key, int64_t def, int64_t *out, mp_error *err);
int mp_json_i32_or(const mp_json *j, const char *key, int32_t def, int32_t *out, mp_error *err);
int mp_json_f64_or(const mp_json *j, const char *key, double def, double *out, mp_error *err);
int mp_json_f32_or(const mp_json *j, const char *key, float def, float *out, mp_error *err);
int mp_json_bool_or(const mp_json *j, const char *key, int def, int *out, mp_error *err);
int mp_json_str_or(const mp_json *j, const char *key, const char *def, const char **out, mp_error *err);

/* Arrays of numbers: writes up to cap elements and *n = the array length (an error if it exceeds
 * cap). A single number counts as a one-element array (generation_config eos_token_id may be either);
 * a missing key gives *n = 0 for the _or form. */
int mp_json_get_int_array(const mp_json *j, const char *key, int64_t *dst, int cap, int *n, mp_error *err);
int mp_json_int_array_or(const mp_json *j, const char *key, int64_t *dst, int cap, int *n, mp_error *err);
int mp_json_get_f32_array(const mp_json *j, const char *key, float *dst, int cap, int *n, mp_error *err);

/* ---------------------------------------------------------------- an HF model folder */

/* The JSON files of one HF model folder. config.json is required unless the folder is a PEFT adapter
 * (adapter_config.json); the others are optional (root == NULL when absent).
 * chat_template: from tokenizer_config.json "chat_template" (a string, or a list of {name, template}:
 * the one named "default", else the first), else chat_template.json {"chat_template": ...}, else
 * chat_template.jinja; NULL if none. Owned by the mp_hf_config. */
typedef struct mp_hf_config {
    char dir[512];
    mp_json config, generation, preprocessor, processor, tokenizer_config, adapter;
    char *chat_template;
    const char *chat_template_source; /* file it came from: "tokenizer_config.json", ... */
    mp_json text;   /* view: config.text_config if present, else config */
    mp_json vision; /* view: config.vision_config if present, else config */
    mp_json audio;  /* view: config.audio_config if present, else config */
} mp_hf_config;

int mp_hf_config_load(mp_hf_config *c, const char *dir, mp_error *err);
void mp_hf_config_free(mp_hf_config *c);

/* End-of-generation ids: generation_config.json eos_token_id (int or list), else config text eos_token_id.
 * Returns the count (up to cap) or -1 on a type error. */
int mp_hf_eos_ids(const mp_hf_config *c, int64_t *ids, int cap, mp_error *err);

#ifdef __cplusplus
}
#endif
#endif
