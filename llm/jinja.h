/* jinja.h — chat templates: a small Jinja interpreter and the chat-message helpers built on it.
 *
 * The interpreter follows HF's @huggingface/jinja (what transformers.js uses to apply chat templates):
 * the same whitespace handling (trim_blocks + lstrip_blocks, {%- -%}), the same operators, tests,
 * filters (tojson, string, length, capitalize, trim, join, default, selectattr, map, ...), string
 * methods, loop variables, namespace(), macros, range(), raise_exception() and strftime_now(). A
 * construct it does not know is an error naming the template line.
 *
 * Typical use:
 *     char *tmpl, *prompt;
 *     mp_chat_template_load_hf("model_dir", &tmpl, &err);        // or mp_chat_template_from_gguf
 *     mp_chat_msg msgs[] = {{"system", "You are terse.", NULL, 0},
 *                           {"user", NULL, parts, 2}};            // parts: {"image", NULL}, {"text", "What is it?"}
 *     mp_chat_params p = mp_chat_default_params();
 *     p.bos_token = "<|im_start|>"; p.add_generation_prompt = 1;
 *     mp_chat_apply(tmpl, msgs, 2, &p, &prompt, &err);            // malloc'd; free(prompt)
 */
#ifndef MP_JINJA_H
#define MP_JINJA_H

#include "kernels/mp.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct cJSON;
struct mp_gguf;

/* ---------------------------------------------------------------- generic interpreter */

typedef struct mp_jinja mp_jinja;

/* Parses a template; name (e.g. a file path) is used in error messages. */
int mp_jinja_parse(mp_jinja **out, const char *source, const char *name, mp_error *err);
void mp_jinja_free(mp_jinja *t);
/* Renders with the variables of a JSON object (borrowed; may be NULL). strftime_now() uses the
 * local time at now_unix (seconds; 0 = the current time). *out is malloc'd. */
int mp_jinja_render(const mp_jinja *t, const struct cJSON *vars, int64_t now_unix, char **out, mp_error *err);

/* Render limits, so that no template (a hostile one from a GGUF or a downloaded tokenizer_config.json
 * included) can hang or take all memory: a render that runs more than max_steps steps (evaluations,
 * statements, loop iterations, list elements, sort comparisons) or allocates more than max_bytes fails
 * with an error saying so. 0 keeps the default. Nesting is limited too (256 levels of template
 * structure, 1000 of evaluation incl. macro recursion, 512 of values printed): also an error. */
#define MP_JINJA_DEFAULT_MAX_STEPS ((int64_t)100000000)
#define MP_JINJA_DEFAULT_MAX_BYTES ((size_t)1 << 30)
void mp_jinja_set_limits(mp_jinja *t, int64_t max_steps, size_t max_bytes);

/* ---------------------------------------------------------------- chat messages */

/* One part of a multimodal message: type "text" (with text), "image" or "video" (text NULL). Rendered
 * as {"type": "image"} / {"type": "text", "text": ...} content lists, as SmolVLM and Qwen2-VL expect. */
typedef struct mp_chat_part {
    const char *type;
    const char *text;
} mp_chat_part;

/* A message: role ("system", "user", "assistant", "tool") and either plain text content or parts. */
typedef struct mp_chat_msg {
    const char *role;
    const char *content; /* used when n_parts == 0 */
    const mp_chat_part *parts;
    int n_parts;
} mp_chat_msg;

typedef struct mp_chat_params {
    const char *bos_token; /* NULL: variable not set */
    const char *eos_token;
    int add_generation_prompt;
    int64_t now_unix;             /* for strftime_now(); 0 = current time */
    const struct cJSON *extra;    /* optional object of more variables (tools, documents, ...) */
} mp_chat_params;

mp_chat_params mp_chat_default_params(void); /* add_generation_prompt = 1, the rest unset */

/* Builds the messages list and renders tmpl. *out is malloc'd. */
int mp_chat_apply(const char *tmpl, const mp_chat_msg *msgs, int n_msgs, const mp_chat_params *p, char **out,
                  mp_error *err);
/* The messages as the JSON list the template sees (for callers that add fields). */
struct cJSON *mp_chat_messages_json(const mp_chat_msg *msgs, int n_msgs);

/* A model's chat template: from an HF folder (chat_template.jinja, else chat_template.json, else
 * tokenizer_config.json "chat_template"; a list of named templates picks "default"), or from GGUF
 * metadata tokenizer.chat_template. *tmpl is malloc'd. */
int mp_chat_template_load_hf(const char *dir, char **tmpl, mp_error *err);
int mp_chat_template_from_gguf(const struct mp_gguf *g, char **tmpl, mp_error *err);

#ifdef __cplusplus
}
#endif
#endif
