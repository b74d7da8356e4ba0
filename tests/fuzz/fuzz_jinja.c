/* fuzz_jinja.c — libFuzzer harness for the chat-template interpreter (llm/jinja.c): parse the input as a
 * template and render it twice, with a chat-shaped set of variables (text and multimodal messages, tool
 * calls, tools, bos/eos, add_generation_prompt) and with none. The render limits are set low (steps,
 * memory) so that templates that loop or grow without end fail fast with their error instead of
 * timing out: they must fail with one error line, never hang, crash or run out of memory.
 * Seeds: make_seeds.py (the fixture chat templates + snippets exercising every construct). */
#include "fuzz_util.h"
#include "llm/jinja.h"

#include <cjson/cJSON.h>

static cJSON *vars;

static const char *vars_json =
    "{\"messages\": ["
    "{\"role\": \"system\", \"content\": \"You are terse.\"},"
    "{\"role\": \"user\", \"content\": [{\"type\": \"image\"}, {\"type\": \"text\", \"text\": \"What is it?\"},"
    " {\"type\": \"video\"}]},"
    "{\"role\": \"assistant\", \"content\": \"A cat.\", \"tool_calls\": [{\"type\": \"function\", \"function\":"
    " {\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"days\": 3}}}]},"
    "{\"role\": \"tool\", \"content\": \"{\\\"temp\\\": 21.5}\", \"name\": \"get_weather\"},"
    "{\"role\": \"user\", \"content\": \"\\u00e9t\\u00e9 \\u4e2d\\u6587 \\ud83d\\ude00 <|im_end|>\\n\"}],"
    "\"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"Weather.\","
    " \"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}},"
    " \"required\": [\"city\"]}}}],"
    "\"documents\": [{\"title\": \"t\", \"text\": \"d\"}],"
    "\"bos_token\": \"<s>\", \"eos_token\": \"</s>\", \"add_generation_prompt\": true, \"n\": 3, \"f\": 2.5,"
    " \"nul\": null, \"big\": 1e300, \"neg\": -7,"
    "\"s\": \"Hello World\", \"l\": [3, 1, 2], \"o\": {\"b\": 1, \"a\": [1, 2], \"c\": {\"d\": \"x\"}},"
    "\"msgs\": [{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"assistant\", \"content\": \"b\"}],"
    "\"e\": \"\", \"z\": null, \"t\": true}";

static void free_vars(void) { cJSON_Delete(vars); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!vars) {
        vars = cJSON_Parse(vars_json);
        if (!vars) abort();
        atexit(free_vars);
    }
    char *src = malloc(size + 1);
    if (!src) return 0;
    memcpy(src, data, size);
    src[size] = 0;
    mp_jinja *t;
    mp_error e;
    memset(&e, 0, sizeof e);
    if (mp_jinja_parse(&t, src, "fuzz.jinja", &e) != 0) {
        fz_check_error(&e, "fuzz.jinja");
        free(src);
        return 0;
    }
    mp_jinja_set_limits(t, 200000, (size_t)64 << 20);
    for (int k = 0; k < 2; k++) {
        char *out = NULL;
        if (mp_jinja_render(t, k ? NULL : vars, 1700000000, &out, &e) == 0) {
            if (!out) abort();
            fz_touch(out, strlen(out));
            free(out);
        } else {
            fz_check_error(&e, "fuzz.jinja");
            if (out) abort();
        }
    }
    mp_jinja_free(t);
    free(src);
    return 0;
}
