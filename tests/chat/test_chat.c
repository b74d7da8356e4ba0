/* Chat templates vs HF's @huggingface/jinja (node, tests/js): the real chat_template of every
 * ../shared/fixtures/hf/<model> folder and gguf/templates/<name>.jinja with several conversations (plain,
 * multi-turn, multimodal content lists, tools, documents), with and without add_generation_prompt,
 * plus a set of small templates covering the language. Output must be byte-identical; where the
 * reference raises, we must fail too. Also: errors name the template line; the mp_chat_* API. */
#include "llm/jinja.h"
#include "models/mmap.h"
#include "test.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <time.h>
#include <unistd.h>

#define NOW 1732464000 /* 2024-11-24 16:00:00 UTC */

static const char *conversations[] = {
    "[{\"role\":\"user\",\"content\":\"Hello!\"}]",
    "[{\"role\":\"system\",\"content\":\"You are terse.\"},{\"role\":\"user\",\"content\":\"What is 2+2?\"},"
    "{\"role\":\"assistant\",\"content\":\"4.\"},{\"role\":\"user\",\"content\":\"And 3+3?\\nExplain \\\"why\\\" "
    "{{ raw }} \\u00e9 \\ud83e\\udd99  \"}]",
    "[{\"role\":\"user\",\"content\":[{\"type\":\"image\"},{\"type\":\"text\",\"text\":\"Describe this image.\"}]}]",
    "[{\"role\":\"system\",\"content\":[{\"type\":\"text\",\"text\":\"Be brief.\"}]},{\"role\":\"user\",\"content\":"
    "[{\"type\":\"text\",\"text\":\"Compare\"},{\"type\":\"image\"},{\"type\":\"image\"},{\"type\":\"text\",\"text\":"
    "\"these.\"}]},{\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\"Both cats.\"}]},{\"role\":\"user\","
    "\"content\":[{\"type\":\"video\"},{\"type\":\"text\",\"text\":\"And this?\"}]}]",
    "[{\"role\":\"user\",\"content\":\"Weather in Paris?\"},{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":"
    "[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Paris\",\"days\":2}}}]},"
    "{\"role\":\"tool\",\"content\":\"{\\\"temp\\\": 18}\"},{\"role\":\"tool\",\"content\":\"sunny\"},"
    "{\"role\":\"assistant\",\"content\":\"18 C and sunny.\"}]",
};

static const char *extras[] = {
    "{}",
    "{\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"description\":\"Get the weather\","
    "\"parameters\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"},\"days\":{\"type\":\"integer\"}},"
    "\"required\":[\"city\"]}}}]}",
    "{\"documents\":[{\"doc_id\":1,\"text\":\"Paris is in France.\"},{\"doc_id\":\"b\",\"text\":\"Tokyo is big.\"}],"
    "\"controls\":{\"citations\":true,\"length\":\"short\"}}",
};

/* small templates covering the language */
static const char *snippets[] = {
    "{{ s | upper }} {{ s | lower }} {{ s | length }} {{ s.upper() }} {{ s.split(' ') }} {{ s.startswith('He') }} "
    "{{ s.replace('l', 'L') }} {{ s[1:4] }} {{ s[-1] }} {{ s.split() }} {{ s.strip() }} {{ s.endswith(('x', 'ld')) }}",
    "{{ n + 1 }} {{ n / 2 }} {{ n // 2 }} {{ n % 2 }} {{ f * 2 }} {{ n ** 2 }} {{ -n }} {{ 1.0 }} {{ 10 / 4 }} {{ n - f }}",
    "{{ 0.1 + 0.2 }} {{ 1 / 3 }} {{ 100000000000000000000000 }} {{ 2.0 * 3 }} {{ 7 // 2.0 }} {{ 2 ** -1 }} {{ 1e }}",
    "{% for x in l %}{{ loop.index }}:{{ x }}{% if not loop.last %}, {% endif %}{% endfor %}",
    "{% for k, v in o.items() %}{{ k }}={{ v }};{% endfor %}|{% for k in o %}{{ k }}{% endfor %}|{{ o.get('b') }}{{ o.get('q', 7) }}",
    "{{ o | tojson }} {{ o | tojson(indent=2) }} {{ l | tojson }} {{ 'x\"y\\n\\t' | tojson }} {{ z | tojson }} {{ {} | tojson(indent=2) }}",
    "{% set ns = namespace(c=0, s='') %}{% for m in msgs %}{% set ns.c = ns.c + 1 %}{% set ns.s = ns.s + m.role %}{% endfor %}{{ ns.c }} {{ ns.s }} {{ ns }}",
    "{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('Bob') }} {{ greet('Al', punct='?') }}",
    "  {%- if t -%}  yes  {%- else -%} no {%- endif -%}  |\n  {% if z is none %}none{% endif %}\n{# c #}\nend\n",
    "\n  {% for x in l %}\n    {{ x }}\n  {% endfor %}\n  {{- ' done' }}\n\n",
    "{{ l | sort }} {{ l | reverse }} {{ l | first }} {{ l | last }} {{ l | join('-') }} {{ l | length }} "
    "{{ msgs | map(attribute='role') | join(',') }} {{ msgs | selectattr('role', 'equalto', 'user') | list | length }} "
    "{{ msgs | rejectattr('role', 'equalto', 'user') | map(attribute='content') | first }}",
    "{{ e or 'empty' }} {{ z is defined }} {{ nothere is defined }} {{ 'a' in 'cat' }} {{ 'b' in o }} {{ 2 in l }} "
    "{{ 5 not in l }} {{ 'x' if t else 'y' }} {{ s ~ n }} {{ (1, 2) }} {{ n is number }} {{ s is string }} {{ l is iterable }}",
    "{% for i in range(3) %}{{ i }}{% else %}none{% endfor %}{% for i in [] %}x{% else %}empty{% endfor %}{{ range(1, 7, 2) }}",
    "{% for x in l if x > 1 %}{{ x }}{% endfor %} {% for x in l %}{% if x == 1 %}{% continue %}{% endif %}{{ x }}{% endfor %} "
    "{% for x in l %}{% if x == 1 %}{% break %}{% endif %}{{ x }}{% endfor %}",
    "{{ s | capitalize }} {{ 'hello world' | title }} {{ '  pad  ' | trim }}| {{ 'a\\nb' | indent(2) }} {{ n | string }} "
    "{{ t | string }} {{ '42' | int + 1 }} {{ z }}|{{ nothere }}|{{ nothere | default('d') }} {{ e | default('d', true) }}",
    "{{ '\xC3\xA9\xF0\x9F\xA6\x99' | length }} {{ '\xF0\x9F\xA6\x99' 'abc'[1:] }} {{ 'abc'[::-1] }} {{ l[::2] }} {{ l[-2:] }} {{ msgs[1:][0].role }}",
    "{{ raise_exception('boom') }}",
    "{{ 1 + nothere }}",
    "{% set x %}captured {{ n }}{% endset %}[{{ x }}] {% set a, b = [1, 2] %}{{ b }}{{ a }}",
    "{{ msgs[0]['content'] + msgs[1].content }} {{ msgs | length }} {{ msgs[5] is defined }} {{ o.c.d }} {{ o['a'][1] }}",
    "{{ n > 2 and n < 4 }} {{ not t }} {{ n == 3.0 }} {{ '3' == n }} {{ z == nothere }} {{ l == l }} {{ [1] == [1] }}",
    "{%- for m in msgs -%}\n{{ m.role | upper }}: {{ m.content }}\n{% endfor -%}\n",
    "{{ strftime_now('%Y-%m-%d %H:%M %b %B') }}",
    "{{ s * 2 }}",
    "a  \t{%- if true %} b {% endif -%}\t\n c {#- comment -#}  d\xC2\xA0{{- 'e' -}}\xC2\xA0 f",
    "{% for a in [[1,2],[3,4]] %}{% for b in a %}{{ loop.index0 }}{{ b }}{{ loop.previtem }}{% endfor %};{% endfor %}",
    "{{ 'b' < 'a' }}",
    "{{ nothere is not none }} {{ o is mapping }} {{ [1, 1, 2] | unique }} {{ 'a,b,,c'.split(',') }} {{ 'a b c'.split(' ', 1) }}",
    "{% if 'user' == msgs[0].role %}U{% elif x %}X{% else %}E{% endif %}",
    "{{ ['a', 'b'] | join(', ') }} {{ 'abc' | join('-') }} {{ 3.7 | int }} {{ -3 | abs }} {{ '2.5' | float }} {{ 'x' | float }}",
    "{{ '\xC3\xA9\xF0\x9F\xA6\x99\\u0001' | tojson }} {{ true }} {{ none }}|{{ True ~ '' }}",
    "    {% if true %}\n    text\n    {% endif %}\n\t{% for x in l %}\n\t{{ x }}\n\t{% endfor %}\n",
    "{{ \"double\" }} {{ 'it\\'s' }} {{ '\\x41\\u00e9' }} {{ 'a' 'b' \"c\" }}",
    "{% macro m(a, b=2) %}{{ a }}-{{ b }}{% endmacro %}{{ m(1) }} {{ m(1, 3) }} {{ m(b=5, a=0) }}",
    "{%- set x = 1 -%}\n{%- for i in l -%}{%- set x = x + i -%}{%- endfor -%}\n{{ x }}",
    "{{ msgs | tojson(indent=4) }}",
    "{{ o.items() | list | length }} {{ o.keys() }} {{ o.values() | length }} {{ o | length }} {{ o.c.get('d') }}",
    "{{ {'k': [1, {'j': none}], 'b': true} }} {{ [s, n, f, t, z] }} {{ ns }} {{ [1, 2] + [3] }}",
};

static const char *snippet_vars =
    "{\"s\":\"Hello World\",\"n\":3,\"f\":2.5,\"l\":[3,1,2],\"o\":{\"b\":1,\"a\":[1,2],\"c\":{\"d\":\"x\"}},"
    "\"msgs\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"assistant\",\"content\":\"b\"}],\"e\":\"\",\"z\":null,\"t\":true}";

typedef struct tcase { char *tmpl, *label; cJSON *vars; } tcase;
static tcase cases[512];
static int n_cases = 0;

static void add_case(const char *tmpl, const char *label, cJSON *vars) {
    if (n_cases >= 512) return;
    cases[n_cases].tmpl = strdup(tmpl);
    cases[n_cases].label = strdup(label);
    cases[n_cases].vars = vars;
    n_cases++;
}

static void add_chat_cases(const char *tmpl, const char *label) {
    for (size_t c = 0; c < sizeof conversations / sizeof conversations[0]; c++)
        for (size_t e = 0; e < sizeof extras / sizeof extras[0]; e++)
            for (int gen = 0; gen < 2; gen++) {
                if (e > 0 && (c == 2 || c == 3)) continue;
                cJSON *v = cJSON_Parse(extras[e]);
                cJSON_AddItemToObject(v, "messages", cJSON_Parse(conversations[c]));
                cJSON_AddBoolToObject(v, "add_generation_prompt", gen);
                cJSON_AddStringToObject(v, "bos_token", "<s>");
                cJSON_AddStringToObject(v, "eos_token", "</s>");
                char lb[512];
                snprintf(lb, sizeof lb, "%s conv %zu extra %zu gen %d", label, c, e, gen);
                add_case(tmpl, lb, v);
            }
}

static cJSON *run_reference(void) {
    char path[] = "/tmp/mp_chat_cases_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) return NULL;
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; i < n_cases; i++) {
        cJSON *c = cJSON_CreateObject();
        cJSON_AddStringToObject(c, "t", cases[i].tmpl);
        cJSON_AddItemToObject(c, "v", cJSON_Duplicate(cases[i].vars, 1));
        cJSON_AddNumberToObject(c, "now", NOW);
        cJSON_AddItemToArray(arr, c);
    }
    char *js = cJSON_PrintUnformatted(arr);
    cJSON_Delete(arr);
    FILE *f = fdopen(fd, "w");
    fputs(js, f);
    fclose(f);
    free(js);
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "cd '%s/tests/js' && TZ=UTC LANG=en_US.UTF-8 node jinja_ref.js '%s'", MP_SOURCE_DIR, path);
    FILE *p = popen(cmd, "r");
    size_t cap = 1 << 20, len = 0, k;
    char *out = malloc(cap);
    while (p && (k = fread(out + len, 1, cap - len - 1, p)) > 0) {
        len += k;
        if (len + 1 == cap) out = realloc(out, cap *= 2);
    }
    out[len] = 0;
    int st = p ? pclose(p) : -1;
    remove(path);
    cJSON *ref = st == 0 ? cJSON_Parse(out) : NULL;
    free(out);
    return ref;
}

static void load_fixture_templates(void) {
    DIR *d = opendir(mp_fixture("hf"));
    struct dirent *e;
    char *names[64];
    int nn = 0;
    while (d && (e = readdir(d)) && nn < 64)
        if (e->d_name[0] != '.') names[nn++] = strdup(e->d_name);
    if (d) closedir(d);
    for (int i = 0; i < nn; i++) {
        char rel[512];
        snprintf(rel, sizeof rel, "hf/%s", names[i]);
        char *tmpl;
        mp_error err;
        if (mp_chat_template_load_hf(mp_fixture(rel), &tmpl, &err) == 0) {
            add_chat_cases(tmpl, rel);
            free(tmpl);
        } else {
            fprintf(stderr, "%s: no chat template (%s)\n", rel, err.msg);
        }
        free(names[i]);
    }
    static const char *gg[] = {"gguf/templates/Qwen-Qwen2.5-7B-Instruct.jinja", "gguf/templates/ibm-granite-granite-3.3-2B-Instruct.jinja"};
    for (int i = 0; i < 2; i++) {
        char *buf;
        size_t n;
        mp_error err;
        if (mp_read_file(mp_fixture(gg[i]), 1 << 20, &buf, &n, &err) == 0) {
            add_chat_cases(buf, gg[i]);
            free(buf);
        }
    }
}

static void test_errors(void) {
    mp_jinja *t;
    mp_error err;
    CHECK_EQ_INT(mp_jinja_parse(&t, "line one\n{% include 'x.jinja' %}\n", "tmpl.jinja", &err), -1);
    CHECKF(strstr(err.msg, "tmpl.jinja:2:") && strstr(err.msg, "include"), "%s", err.msg);
    CHECK_EQ_INT(mp_jinja_parse(&t, "a\nb\n{% if x %}\nno end", "t2", &err), -1);
    CHECKF(strstr(err.msg, "t2:") && strstr(err.msg, "endif"), "%s", err.msg);
    CHECK_EQ_INT(mp_jinja_parse(&t, "{{ 'unterminated }}", "t3", &err), -1);
    CHECK_EQ_INT(mp_jinja_parse(&t, "x\n\n{{ a | nofilter }}", "t4", &err), 0);
    char *out;
    CHECK_EQ_INT(mp_jinja_render(t, NULL, NOW, &out, &err), -1);
    CHECKF(strstr(err.msg, "t4:3:") && strstr(err.msg, "nofilter"), "%s", err.msg);
    mp_jinja_free(t);
    CHECK_EQ_INT(mp_jinja_parse(&t, "{{ raise_exception('Only user and assistant roles') }}", "t5", &err), 0);
    CHECK_EQ_INT(mp_jinja_render(t, NULL, NOW, &out, &err), -1);
    CHECKF(strstr(err.msg, "Only user and assistant roles") != NULL, "%s", err.msg);
    mp_jinja_free(t);
}

static void test_api(void) {
    char *tmpl, *out;
    mp_error err;
    const char *dir = mp_fixture("hf/HuggingFaceTB--SmolVLM-256M-Instruct");
    if (mp_chat_template_load_hf(dir, &tmpl, &err)) { fprintf(stderr, "skip api: %s\n", err.msg); return; }
    mp_chat_part parts[] = {{"image", NULL}, {"text", "Can you describe this image?"}};
    mp_chat_msg msgs[] = {{"user", NULL, parts, 2}};
    mp_chat_params p = mp_chat_default_params();
    CHECK_EQ_INT(mp_chat_apply(tmpl, msgs, 1, &p, &out, &err), 0);
    /* what SmolVLM's processor builds before expanding <image> into the image tokens */
    CHECK_STR(out, "<|im_start|>User:<image>Can you describe this image?<end_of_utterance>\nAssistant:");
    free(out);
    free(tmpl);
    dir = mp_fixture("hf/Qwen--Qwen2-VL-2B-Instruct");
    if (mp_chat_template_load_hf(dir, &tmpl, &err)) return;
    mp_chat_msg m2[] = {{"system", "Be brief.", NULL, 0}, {"user", NULL, parts, 2}};
    CHECK_EQ_INT(mp_chat_apply(tmpl, m2, 2, &p, &out, &err), 0);
    CHECK_STR(out, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>"
                   "Can you describe this image?<|im_end|>\n<|im_start|>assistant\n");
    free(out);
    free(tmpl);
    CHECK_EQ_INT(mp_chat_template_load_hf(mp_fixture("hf/openai--whisper-base"), &tmpl, &err), -1);
    CHECK(strstr(err.msg, "no chat template") != NULL);
}

int main(void) {
    setenv("TZ", "UTC", 1);
    tzset();
    test_errors();
    test_api();
    if (system("node --version > /dev/null 2>&1") != 0 ||
        access(MP_SOURCE_DIR "/tests/js/node_modules/@huggingface/jinja/package.json", R_OK) != 0) {
        fprintf(stderr, "node or tests/js/node_modules (scripts/setup.sh) missing: reference comparison skipped\n");
        return mp_test_failures ? 1 : MP_TEST_SKIP;
    }
    load_fixture_templates();
    for (size_t i = 0; i < sizeof snippets / sizeof snippets[0]; i++) {
        char lb[64];
        snprintf(lb, sizeof lb, "snippet %zu", i);
        add_case(snippets[i], lb, cJSON_Parse(snippet_vars));
    }
    cJSON *ref = run_reference();
    CHECKF(ref && cJSON_GetArraySize(ref) == n_cases, "reference run failed");
    int same = 0, both_err = 0;
    for (int i = 0; ref && i < n_cases; i++) {
        const cJSON *r = cJSON_GetArrayItem(ref, i);
        const cJSON *ok = cJSON_GetObjectItemCaseSensitive(r, "ok");
        mp_jinja *t;
        mp_error err;
        char *out = NULL;
        int rc = mp_jinja_parse(&t, cases[i].tmpl, cases[i].label, &err);
        if (!rc) {
            rc = mp_jinja_render(t, cases[i].vars, NOW, &out, &err);
            mp_jinja_free(t);
        }
        if (cJSON_IsString(ok)) {
            int eq = rc == 0 && !strcmp(out, ok->valuestring);
            CHECKF(eq, "%s: differs from @huggingface/jinja\n--- ours (%s):\n%s\n--- reference:\n%s\n---", cases[i].label,
                   rc ? "error" : "ok", rc ? err.msg : out, ok->valuestring);
            same += eq;
        } else {
            const cJSON *e = cJSON_GetObjectItemCaseSensitive(r, "err");
            CHECKF(rc != 0, "%s: reference raised \"%s\" but we rendered:\n%s", cases[i].label,
                   cJSON_IsString(e) ? e->valuestring : "?", out ? out : "");
            both_err += rc != 0;
        }
        free(out);
    }
    fprintf(stderr, "%d cases: %d byte-identical renderings, %d errors on both sides\n", n_cases, same, both_err);
    cJSON_Delete(ref);
    for (int i = 0; i < n_cases; i++) {
        free(cases[i].tmpl);
        free(cases[i].label);
        cJSON_Delete(cases[i].vars);
    }
    return mp_test_result("test_chat_templates");
}
