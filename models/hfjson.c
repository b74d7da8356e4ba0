/* hfjson.c — typed access to Hugging Face JSON configs. See hfjson.h. */
#include "models/hfjson.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "models/mmap.h"

int mp_json_parse(mp_json *j, const char *text, size_t len, const char *name, mp_error *err) {
    memset(j, 0, sizeof *j);
    snprintf(j->file, sizeof j->file, "%s", name ? name : "<json>");
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!root) {
        const char *e = cJSON_GetErrorPtr();
        size_t at = e && e >= text && e <= text + len ? (size_t)(e - text) : 0;
        return mp_errf(err, "%s: not valid JSON (near byte %zu)", j->file, at);
    }
    for (const char *p = end; p && p < text + len; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r' && *p != 0) {
            cJSON_Delete(root);
            return mp_errf(err, "%s: trailing characters after the JSON value (byte %zu)", j->file, (size_t)(p - text));
        }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return mp_errf(err, "%s: expected a JSON object at the top level", j->file);
    }
    j->owned = root;
    j->root = root;
    return 0;
}

int mp_json_load(mp_json *j, const char *path, mp_error *err) {
    char *text;
    size_t len;
    memset(j, 0, sizeof *j);
    snprintf(j->file, sizeof j->file, "%s", path);
    if (mp_read_file(path, MP_JSON_MAX_BYTES, &text, &len, err)) return -1;
    int rc = mp_json_parse(j, text, len, path, err);
    free(text);
    return rc;
}

int mp_json_load_optional(mp_json *j, const char *path, mp_error *err) {
    memset(j, 0, sizeof *j);
    snprintf(j->file, sizeof j->file, "%s", path);
    if (access(path, F_OK) != 0 && errno == ENOENT) return 0;
    return mp_json_load(j, path, err);
}

void mp_json_free(mp_json *j) {
    if (j->owned) cJSON_Delete(j->owned);
    j->owned = NULL;
    j->root = NULL;
}

int mp_json_present(const mp_json *j) { return j->root != NULL; }

const cJSON *mp_json_find(const mp_json *j, const char *key) {
    const cJSON *cur = j->root;
    char part[256];
    while (cur && *key) {
        const char *dot = strchr(key, '.');
        size_t n = dot ? (size_t)(dot - key) : strlen(key);
        if (n >= sizeof part) return NULL;
        memcpy(part, key, n);
        part[n] = 0;
        if (cJSON_IsArray(cur)) {
            char *e;
            long idx = strtol(part, &e, 10);
            if (!n || *e || idx < 0) return NULL;
            cur = cJSON_GetArrayItem(cur, (int)idx);
        } else if (cJSON_IsObject(cur)) {
            cur = cJSON_GetObjectItemCaseSensitive(cur, part);
        } else {
            return NULL;
        }
        key += n + (dot ? 1 : 0);
        if (dot && !*key) return NULL;
    }
    return cur;
}

int mp_json_has(const mp_json *j, const char *key) {
    const cJSON *v = mp_json_find(j, key);
    return v && !cJSON_IsNull(v);
}

static const char *json_kind(const cJSON *v) {
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsBool(v)) return "a bool";
    if (cJSON_IsArray(v)) return "an array";
    if (cJSON_IsObject(v)) return "an object";
    if (cJSON_IsNull(v)) return "null";
    return "an invalid value";
}

static int wrong_type(const mp_json *j, const char *key, const cJSON *v, const char *want, mp_error *err) {
    return mp_errf(err, "%s: %s%s is %s, expected %s", j->file, j->prefix, key, json_kind(v), want);
}

/* The value at key, or NULL after an error ("not found") when required, or NULL silently when not. */
static const cJSON *lookup(const mp_json *j, const char *key, int required, mp_error *err) {
    const cJSON *v = mp_json_find(j, key);
    if (v && cJSON_IsNull(v)) v = NULL;
    if (!v && required) {
        if (!j->root)
            mp_errf(err, "%s: file not found (needed for %s%s)", j->file, j->prefix, key);
        else
            mp_errf(err, "%s: %s%s not found", j->file, j->prefix, key);
    }
    return v;
}

static int to_int(const mp_json *j, const char *key, const cJSON *v, int64_t *out, mp_error *err) {
    if (!cJSON_IsNumber(v)) return wrong_type(j, key, v, "an integer", err);
    double d = v->valuedouble;
    if (d != floor(d) || d != d) return mp_errf(err, "%s: %s%s = %g is not an integer", j->file, j->prefix, key, d);
    /* integers past int64 ("model_max_length": 1e30 meaning unlimited) saturate */
    if (d >= 9223372036854775807.0) *out = INT64_MAX;
    else if (d <= -9223372036854775807.0) *out = INT64_MIN;
    else *out = (int64_t)d;
    return 0;
}

int mp_json_get_int(const mp_json *j, const char *key, int64_t *out, mp_error *err) {
    const cJSON *v = lookup(j, key, 1, err);
    return v ? to_int(j, key, v, out, err) : -1;
}

int mp_json_get_f64(const mp_json *j, const char *key, double *out, mp_error *err) {
    const cJSON *v = lookup(j, key, 1, err);
    if (!v) return -1;
    if (!cJSON_IsNumber(v)) return wrong_type(j, key, v, "a number", err);
    *out = v->valuedouble;
    return 0;
}

int mp_json_get_bool(const mp_json *j, const char *key, int *out, mp_error *err) {
    const cJSON *v = lookup(j, key, 1, err);
    if (!v) return -1;
    if (!cJSON_IsBool(v)) return wrong_type(j, key, v, "true or false", err);
    *out = cJSON_IsTrue(v);
    return 0;
}

int mp_json_get_str(const mp_json *j, const char *key, const char **out, mp_error *err) {
    const cJSON *v = lookup(j, key, 1, err);
    if (!v) return -1;
    if (!cJSON_IsString(v)) return wrong_type(j, key, v, "a string", err);
    *out = v->valuestring;
    return 0;
}

int mp_json_int_or(const mp_json *j, const char *key, int64_t def, int64_t *out, mp_error *err) {
    if (!mp_json_has(j, key)) { *out = def; return 0; }
    return mp_json_get_int(j, key, out, err);
}

int mp_json_i32_or(const mp_json *j, const char *key, int32_t def, int32_t *out, mp_error *err) {
    int64_t v;
    if (mp_json_int_or(j, key, def, &v, err)) return -1;
    if (v < INT32_MIN || v > INT32_MAX)
        return mp_errf(err, "%s: %s%s = %" PRId64 " is out of range", j->file, j->prefix, key, v);
    *out = (int32_t)v;
    return 0;
}

int mp_json_f64_or(const mp_json *j, const char *key, double def, double *out, mp_error *err) {
    if (!mp_json_has(j, key)) { *out = def; return 0; }
    return mp_json_get_f64(j, key, out, err);
}

int mp_json_f32_or(const mp_json *j, const char *key, float def, float *out, mp_error *err) {
    double d;
    if (mp_json_f64_or(j, key, def, &d, err)) return -1;
    *out = (float)d;
    return 0;
}

int mp_json_bool_or(const mp_json *j, const char *key, int def, int *out, mp_error *err) {
    if (!mp_json_has(j, key)) { *out = def; return 0; }
    return mp_json_get_bool(j, key, out, err);
}

int mp_json_str_or(const mp_json *j, const char *key, const char *def, const char **out, mp_error *err) {
    if (!mp_json_has(j, key)) { *out = def; return 0; }
    return mp_json_get_str(j, key, out, err);
}

static int number_array(const mp_json *j, const char *key, int required, int64_t *di, float *df, int cap, int *n,
                        mp_error *err) {
    *n = 0;
    const cJSON *v = lookup(j, key, required, err);
    if (!v) return required ? -1 : 0;
    const cJSON *one = cJSON_IsNumber(v) ? v : NULL;
    if (!one && !cJSON_IsArray(v)) return wrong_type(j, key, v, "an array of numbers", err);
    int len = one ? 1 : cJSON_GetArraySize(v);
    if (len > cap)
        return mp_errf(err, "%s: %s%s has %d elements, more than the %d expected", j->file, j->prefix, key, len, cap);
    const cJSON *x = one ? one : v->child;
    for (int i = 0; i < len && x; i++, x = x->next) {
        if (!cJSON_IsNumber(x))
            return mp_errf(err, "%s: %s%s[%d] is %s, expected a number", j->file, j->prefix, key, i, json_kind(x));
        if (di) {
            char sub[320];
            snprintf(sub, sizeof sub, "%s[%d]", key, i);
            if (to_int(j, sub, x, &di[i], err)) return -1;
        } else {
            df[i] = (float)x->valuedouble;
        }
    }
    *n = len;
    return 0;
}

int mp_json_get_int_array(const mp_json *j, const char *key, int64_t *dst, int cap, int *n, mp_error *err) {
    return number_array(j, key, 1, dst, NULL, cap, n, err);
}

int mp_json_int_array_or(const mp_json *j, const char *key, int64_t *dst, int cap, int *n, mp_error *err) {
    return number_array(j, key, 0, dst, NULL, cap, n, err);
}

int mp_json_get_f32_array(const mp_json *j, const char *key, float *dst, int cap, int *n, mp_error *err) {
    return number_array(j, key, 1, NULL, dst, cap, n, err);
}

int mp_json_sub(const mp_json *j, const char *key, mp_json *view, mp_error *err) {
    mp_json v = *j;
    v.owned = NULL;
    const cJSON *o = lookup(j, key, 0, err);
    if (o) {
        if (!cJSON_IsObject(o)) return wrong_type(j, key, o, "an object", err);
        v.root = o;
        size_t a = strnlen(j->prefix, sizeof j->prefix), b = strlen(key);
        if (a + b + 2 <= sizeof v.prefix) { /* else keep the parent's prefix */
            memcpy(v.prefix + a, key, b);
            v.prefix[a + b] = '.';
            v.prefix[a + b + 1] = 0;
        }
    }
    *view = v;
    return 0;
}

/* ---------------------------------------------------------------- HF model folder */

static int load_in(const char *dir, const char *name, mp_json *j, int required, mp_error *err) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return required ? mp_json_load(j, path, err) : mp_json_load_optional(j, path, err);
}

static char *dup_str(const char *s) {
    size_t n = strlen(s);
    char *r = malloc(n + 1);
    if (r) memcpy(r, s, n + 1);
    return r;
}

/* tokenizer_config "chat_template": a string, or [{"name": ..., "template": ...}, ...]. */
static const char *template_of(const cJSON *v) {
    if (cJSON_IsString(v)) return v->valuestring;
    if (!cJSON_IsArray(v)) return NULL;
    const cJSON *it, *first = NULL;
    cJSON_ArrayForEach(it, v) {
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(it, "name");
        const cJSON *tp = cJSON_GetObjectItemCaseSensitive(it, "template");
        if (!cJSON_IsString(tp)) continue;
        if (!first) first = tp;
        if (cJSON_IsString(nm) && strcmp(nm->valuestring, "default") == 0) return tp->valuestring;
    }
    return first ? first->valuestring : NULL;
}

static int find_chat_template(mp_hf_config *c, mp_error *err) {
    const char *t = template_of(mp_json_find(&c->tokenizer_config, "chat_template"));
    if (t) {
        c->chat_template_source = "tokenizer_config.json";
    } else {
        mp_json ct;
        if (load_in(c->dir, "chat_template.json", &ct, 0, err)) return -1;
        t = template_of(mp_json_find(&ct, "chat_template"));
        if (t) {
            c->chat_template = dup_str(t);
            c->chat_template_source = "chat_template.json";
            mp_json_free(&ct);
            return c->chat_template ? 0 : mp_errf(err, "%s: out of memory", c->dir);
        }
        mp_json_free(&ct);
        char path[1024];
        snprintf(path, sizeof path, "%s/chat_template.jinja", c->dir);
        if (mp_is_file(path)) {
            size_t len;
            if (mp_read_file(path, MP_JSON_MAX_BYTES, &c->chat_template, &len, err)) return -1;
            c->chat_template_source = "chat_template.jinja";
        }
        return 0;
    }
    c->chat_template = dup_str(t);
    return c->chat_template ? 0 : mp_errf(err, "%s: out of memory", c->dir);
}

int mp_hf_config_load(mp_hf_config *c, const char *dir, mp_error *err) {
    memset(c, 0, sizeof *c);
    snprintf(c->dir, sizeof c->dir, "%s", dir);
    if (!mp_is_dir(dir)) return mp_errf(err, "%s: not a folder", dir);
    int rc = load_in(dir, "adapter_config.json", &c->adapter, 0, err);
    if (!rc) rc = load_in(dir, "config.json", &c->config, !mp_json_present(&c->adapter), err);
    if (!rc) rc = load_in(dir, "generation_config.json", &c->generation, 0, err);
    if (!rc) rc = load_in(dir, "preprocessor_config.json", &c->preprocessor, 0, err);
    if (!rc) rc = load_in(dir, "processor_config.json", &c->processor, 0, err);
    if (!rc) rc = load_in(dir, "tokenizer_config.json", &c->tokenizer_config, 0, err);
    if (!rc) rc = find_chat_template(c, err);
    if (!rc) rc = mp_json_sub(&c->config, "text_config", &c->text, err);
    if (!rc) rc = mp_json_sub(&c->config, "vision_config", &c->vision, err);
    if (!rc) rc = mp_json_sub(&c->config, "audio_config", &c->audio, err);
    if (rc) mp_hf_config_free(c);
    return rc;
}

void mp_hf_config_free(mp_hf_config *c) {
    mp_json_free(&c->config);
    mp_json_free(&c->generation);
    mp_json_free(&c->preprocessor);
    mp_json_free(&c->processor);
    mp_json_free(&c->tokenizer_config);
    mp_json_free(&c->adapter);
    free(c->chat_template);
    c->chat_template = NULL;
    c->text.root = c->vision.root = c->audio.root = NULL;
}

int mp_hf_eos_ids(const mp_hf_config *c, int64_t *ids, int cap, mp_error *err) {
    int n = 0;
    if (mp_json_int_array_or(&c->generation, "eos_token_id", ids, cap, &n, err)) return -1;
    if (n == 0 && mp_json_int_array_or(&c->text, "eos_token_id", ids, cap, &n, err)) return -1;
    if (n == 0 && mp_json_int_array_or(&c->config, "eos_token_id", ids, cap, &n, err)) return -1;
    return n;
}
