/* test_hfjson.c — HF config readers on every real folder in ../shared/fixtures/hf (values as published
 * in those files and summarised in HF_GGUF_MANIFEST.md), and typed-getter errors. */
#include <dirent.h>
#include <unistd.h>

#include "models/hfjson.h"
#include "test.h"

static mp_hf_config load(const char *dir) {
    mp_hf_config c;
    mp_error err;
    int rc = mp_hf_config_load(&c, mp_fixture(dir), &err);
    CHECKF(rc == 0, "%s: %s", dir, err.msg);
    if (rc) memset(&c, 0, sizeof c);
    return c;
}

static int64_t I(const mp_json *j, const char *key) {
    int64_t v = -999;
    mp_error err;
    int rc = mp_json_get_int(j, key, &v, &err);
    CHECKF(rc == 0, "%s", err.msg);
    return v;
}

static double F(const mp_json *j, const char *key) {
    double v = -999;
    mp_error err;
    int rc = mp_json_get_f64(j, key, &v, &err);
    CHECKF(rc == 0, "%s", err.msg);
    return v;
}

static const char *S(const mp_json *j, const char *key) {
    const char *v = "";
    mp_error err;
    int rc = mp_json_get_str(j, key, &v, &err);
    CHECKF(rc == 0, "%s", err.msg);
    return v;
}

static void test_smolvlm(void) {
    mp_hf_config c = load("hf/HuggingFaceTB--SmolVLM-256M-Instruct");
    if (!c.config.root) return;
    mp_error err;
    CHECK_STR(S(&c.config, "model_type"), "idefics3");
    CHECK_EQ_INT(I(&c.text, "hidden_size"), 576);
    CHECK_EQ_INT(I(&c.text, "num_hidden_layers"), 30);
    CHECK_EQ_INT(I(&c.text, "num_attention_heads"), 9);
    CHECK_EQ_INT(I(&c.text, "num_key_value_heads"), 3);
    CHECK_EQ_INT(I(&c.text, "head_dim"), 64);
    CHECK_EQ_INT(I(&c.text, "intermediate_size"), 1536);
    CHECK_EQ_INT(I(&c.text, "vocab_size"), 49280);
    CHECK_EQ_INT(I(&c.text, "max_position_embeddings"), 8192);
    CHECK_NEAR(F(&c.text, "rope_theta"), 100000, 0);
    CHECK_NEAR(F(&c.text, "rms_norm_eps"), 1e-5, 1e-12);
    CHECK_STR(S(&c.text, "model_type"), "llama");
    int b = -1;
    CHECK(mp_json_bool_or(&c.text, "tie_word_embeddings", 1, &b, &err) == 0 && b == 0);
    CHECK_EQ_INT(I(&c.vision, "hidden_size"), 768);
    CHECK_EQ_INT(I(&c.vision, "num_hidden_layers"), 12);
    CHECK_EQ_INT(I(&c.vision, "num_attention_heads"), 12);
    CHECK_EQ_INT(I(&c.vision, "intermediate_size"), 3072);
    CHECK_EQ_INT(I(&c.vision, "patch_size"), 16);
    CHECK_EQ_INT(I(&c.vision, "image_size"), 512);
    CHECK_NEAR(F(&c.vision, "layer_norm_eps"), 1e-6, 1e-15);
    CHECK_STR(S(&c.vision, "hidden_act"), "gelu_pytorch_tanh");
    CHECK_EQ_INT(I(&c.config, "scale_factor"), 4);
    CHECK_EQ_INT(I(&c.config, "image_token_id"), 49190);
    CHECK_EQ_INT(I(&c.config, "text_config.hidden_size"), 576); /* dotted path from the root */
    /* generation_config: the chat eos is <end_of_utterance> */
    int64_t eos[4];
    CHECK(mp_hf_eos_ids(&c, eos, 4, &err) == 1 && eos[0] == 49279);
    /* preprocessor + processor */
    CHECK_EQ_INT(I(&c.preprocessor, "max_image_size.longest_edge"), 512);
    CHECK_EQ_INT(I(&c.preprocessor, "size.longest_edge"), 2048);
    CHECK_EQ_INT(I(&c.preprocessor, "resample"), 1);
    CHECK_NEAR(F(&c.preprocessor, "rescale_factor"), 1.0 / 255.0, 1e-12);
    float mean[3];
    int n = 0;
    CHECK(mp_json_get_f32_array(&c.preprocessor, "image_mean", mean, 3, &n, &err) == 0 && n == 3 && mean[2] == 0.5f);
    CHECK(mp_json_get_f32_array(&c.preprocessor, "image_mean", mean, 2, &n, &err) == -1 &&
          strstr(err.msg, "image_mean has 3 elements, more than the 2 expected"));
    CHECK_EQ_INT(I(&c.processor, "image_seq_len"), 64);
    CHECK_STR(S(&c.tokenizer_config, "eos_token"), "<end_of_utterance>");
    CHECK(c.chat_template && strncmp(c.chat_template, "<|im_start|>{% for message in messages %}", 41) == 0);
    CHECK_STR(c.chat_template_source, "tokenizer_config.json");
    /* type errors name the file and the full key */
    int64_t v;
    CHECK(mp_json_get_int(&c.text, "model_type", &v, &err) == -1 &&
          strstr(err.msg, "SmolVLM-256M-Instruct/config.json: text_config.model_type is a string, expected an integer"));
    CHECK(mp_json_get_int(&c.text, "no_such_key", &v, &err) == -1 && strstr(err.msg, "text_config.no_such_key not found"));
    CHECK(mp_json_int_or(&c.text, "no_such_key", 7, &v, &err) == 0 && v == 7);
    CHECK(mp_json_int_or(&c.text, "bad_words_ids", 7, &v, &err) == 0 && v == 7); /* null counts as absent */
    CHECK(mp_json_get_int(&c.text, "rms_norm_eps", &v, &err) == -1 && strstr(err.msg, "is not an integer"));
    CHECK(mp_json_get_bool(&c.text, "hidden_size", &b, &err) == -1 && strstr(err.msg, "expected true or false"));
    mp_json sub;
    CHECK(mp_json_sub(&c.config, "scale_factor", &sub, &err) == -1 && strstr(err.msg, "scale_factor is a number, expected an object"));
    mp_hf_config_free(&c);
}

static void test_qwen2vl(void) {
    mp_hf_config c = load("hf/Qwen--Qwen2-VL-2B-Instruct");
    if (!c.config.root) return;
    mp_error err;
    /* no text_config: text params live at the root */
    CHECK(c.text.root == c.config.root);
    CHECK_EQ_INT(I(&c.text, "hidden_size"), 1536);
    CHECK_EQ_INT(I(&c.text, "num_hidden_layers"), 28);
    CHECK_EQ_INT(I(&c.text, "num_key_value_heads"), 2);
    CHECK_EQ_INT(I(&c.text, "vocab_size"), 151936);
    int64_t ms[3];
    int n = 0;
    CHECK(mp_json_get_int_array(&c.config, "rope_scaling.mrope_section", ms, 3, &n, &err) == 0 && n == 3 &&
          ms[0] == 16 && ms[1] == 24 && ms[2] == 24);
    CHECK_STR(S(&c.config, "rope_scaling.type"), "mrope");
    CHECK_EQ_INT(I(&c.vision, "embed_dim"), 1280);
    CHECK_EQ_INT(I(&c.vision, "depth"), 32);
    CHECK_EQ_INT(I(&c.vision, "num_heads"), 16);
    CHECK_EQ_INT(I(&c.vision, "patch_size"), 14);
    CHECK_EQ_INT(I(&c.vision, "spatial_merge_size"), 2);
    CHECK_EQ_INT(I(&c.vision, "temporal_patch_size"), 2);
    CHECK_EQ_INT(I(&c.config, "vision_start_token_id"), 151652);
    CHECK_EQ_INT(I(&c.config, "image_token_id"), 151655);
    int64_t eos[4];
    CHECK(mp_hf_eos_ids(&c, eos, 4, &err) == 2 && eos[0] == 151645 && eos[1] == 151643);
    CHECK_EQ_INT(I(&c.preprocessor, "min_pixels"), 3136);
    CHECK_EQ_INT(I(&c.preprocessor, "max_pixels"), 12845056);
    float std3[3];
    CHECK(mp_json_get_f32_array(&c.preprocessor, "image_std", std3, 3, &n, &err) == 0 && std3[0] == 0.26862954f);
    CHECK_NEAR(F(&c.generation, "top_p"), 0.001, 1e-12);
    CHECK(c.chat_template && strstr(c.chat_template, "<|vision_start|>"));
    mp_hf_config_free(&c);

    c = load("hf/Qwen--Qwen2.5-VL-7B-Instruct");
    if (!c.config.root) return;
    CHECK_EQ_INT(I(&c.text, "hidden_size"), 3584);
    CHECK_EQ_INT(I(&c.text, "num_attention_heads"), 28);
    CHECK_EQ_INT(I(&c.text, "vocab_size"), 152064);
    CHECK_EQ_INT(I(&c.vision, "out_hidden_size"), 3584);
    CHECK_EQ_INT(I(&c.vision, "window_size"), 112);
    CHECK_EQ_INT(I(&c.vision, "intermediate_size"), 3420);
    int64_t fa[8];
    CHECK(mp_json_get_int_array(&c.vision, "fullatt_block_indexes", fa, 8, &n, &err) == 0 && n == 4 && fa[3] == 31);
    CHECK_STR(S(&c.config, "model_type"), "qwen2_5_vl");
    int64_t big;
    CHECK(mp_json_int_or(&c.tokenizer_config, "model_max_length", 0, &big, &err) == 0 && big == 131072);
    mp_hf_config_free(&c);
}

static void test_whisper(void) {
    mp_hf_config c = load("hf/openai--whisper-base");
    if (!c.config.root) return;
    mp_error err;
    CHECK_EQ_INT(I(&c.config, "d_model"), 512);
    CHECK_EQ_INT(I(&c.config, "encoder_layers"), 6);
    CHECK_EQ_INT(I(&c.config, "decoder_layers"), 6);
    CHECK_EQ_INT(I(&c.config, "encoder_attention_heads"), 8);
    CHECK_EQ_INT(I(&c.config, "encoder_ffn_dim"), 2048);
    CHECK_EQ_INT(I(&c.config, "num_mel_bins"), 80);
    CHECK_EQ_INT(I(&c.config, "vocab_size"), 51865);
    CHECK_EQ_INT(I(&c.config, "max_source_positions"), 1500);
    CHECK_EQ_INT(I(&c.config, "max_target_positions"), 448);
    CHECK_EQ_INT(I(&c.config, "decoder_start_token_id"), 50258);
    CHECK_EQ_INT(I(&c.config, "forced_decoder_ids.0.1"), 50259); /* array indexing in paths */
    CHECK_EQ_INT(I(&c.config, "forced_decoder_ids.2.1"), 50363);
    int64_t eos[2];
    CHECK(mp_hf_eos_ids(&c, eos, 2, &err) == 1 && eos[0] == 50257);
    CHECK_EQ_INT(I(&c.preprocessor, "feature_size"), 80);
    CHECK_EQ_INT(I(&c.preprocessor, "n_fft"), 400);
    CHECK_EQ_INT(I(&c.preprocessor, "hop_length"), 160);
    CHECK_EQ_INT(I(&c.preprocessor, "sampling_rate"), 16000);
    CHECK_EQ_INT(I(&c.preprocessor, "chunk_length"), 30);
    CHECK_EQ_INT(I(&c.preprocessor, "n_samples"), 480000);
    const cJSON *mf = mp_json_find(&c.preprocessor, "mel_filters");
    CHECK(cJSON_IsArray(mf) && cJSON_GetArraySize(mf) == 80 && cJSON_GetArraySize(cJSON_GetArrayItem(mf, 0)) == 201);
    CHECK_NEAR(F(&c.preprocessor, "mel_filters.0.1"), 0.02486259490251541, 1e-15);
    CHECK(c.chat_template == NULL);
    mp_hf_config_free(&c);
}

static void test_moe(void) {
    mp_hf_config c = load("hf/ibm-granite--granite-3.1-1b-a400m-instruct");
    if (!c.config.root) return;
    mp_error err;
    CHECK_STR(S(&c.config, "model_type"), "granitemoe");
    CHECK_EQ_INT(I(&c.config, "num_local_experts"), 32);
    CHECK_EQ_INT(I(&c.config, "num_experts_per_tok"), 8);
    CHECK_EQ_INT(I(&c.config, "hidden_size"), 1024);
    CHECK_EQ_INT(I(&c.config, "intermediate_size"), 512);
    CHECK_EQ_INT(I(&c.config, "vocab_size"), 49155);
    CHECK_NEAR(F(&c.config, "embedding_multiplier"), 12.0, 0);
    CHECK_NEAR(F(&c.config, "attention_multiplier"), 0.015625, 0);
    CHECK_NEAR(F(&c.config, "residual_multiplier"), 0.22, 1e-15);
    CHECK_NEAR(F(&c.config, "logits_scaling"), 6.0, 0);
    CHECK_NEAR(F(&c.config, "rope_theta"), 1500000.0, 0);
    CHECK(!mp_json_has(&c.config, "rope_scaling")); /* null */
    int64_t big;
    CHECK(mp_json_int_or(&c.tokenizer_config, "model_max_length", 0, &big, &err) == 0 && big == INT64_MAX);
    CHECK(c.chat_template && strstr(c.chat_template, "<|start_of_role|>"));
    mp_hf_config_free(&c);

    c = load("hf/cognitivecomputations--dolphin-2.5-mixtral-8x7b");
    if (!c.config.root) return;
    CHECK_STR(S(&c.config, "model_type"), "mixtral");
    CHECK_EQ_INT(I(&c.config, "num_local_experts"), 8);
    CHECK_EQ_INT(I(&c.config, "num_experts_per_tok"), 2);
    CHECK_EQ_INT(I(&c.config, "num_hidden_layers"), 32);
    CHECK_EQ_INT(I(&c.config, "vocab_size"), 32002);
    int64_t sw;
    CHECK(mp_json_int_or(&c.config, "sliding_window", -1, &sw, &err) == 0 && sw == -1);
    CHECK(mp_json_int_or(&c.tokenizer_config, "model_max_length", 0, &big, &err) == 0 && big == INT64_MAX);
    int add_bos = 0;
    CHECK(mp_json_bool_or(&c.tokenizer_config, "add_bos_token", 0, &add_bos, &err) == 0 && add_bos == 1);
    mp_hf_config_free(&c);
}

static void test_lora_configs(void) {
    mp_hf_config c = load("hf/lora-smollm2-360m-instruct-ml-tutor");
    if (!c.adapter.root) return;
    mp_error err;
    CHECK(!mp_json_present(&c.config)); /* adapter folders have no config.json */
    CHECK_EQ_INT(I(&c.adapter, "r"), 8);
    CHECK_EQ_INT(I(&c.adapter, "lora_alpha"), 16);
    CHECK_STR(S(&c.adapter, "peft_type"), "LORA");
    CHECK_STR(S(&c.adapter, "base_model_name_or_path"), "HuggingFaceTB/SmolLM2-360M-Instruct");
    CHECK_STR(S(&c.adapter, "target_modules.1"), "v_proj");
    int b = 1;
    CHECK(mp_json_bool_or(&c.adapter, "use_rslora", 1, &b, &err) == 0 && b == 0);
    CHECK_STR(c.chat_template_source, "chat_template.jinja");
    CHECK(c.chat_template && strncmp(c.chat_template, "{% for message in messages %}", 29) == 0);
    CHECK_STR(S(&c.tokenizer_config, "eos_token"), "<|im_end|>");
    int64_t v;
    CHECK(mp_json_get_int(&c.config, "hidden_size", &v, &err) == -1 && strstr(err.msg, "config.json: file not found"));
    mp_hf_config_free(&c);
    c = load("hf/lora-qwen2.5-0.5b-instruct");
    if (!c.adapter.root) return;
    CHECK_STR(S(&c.adapter, "base_model_name_or_path"), "Qwen/Qwen2.5-0.5B-Instruct");
    CHECK_NEAR(F(&c.adapter, "lora_dropout"), 0.05, 1e-15);
    CHECK(c.chat_template && strstr(c.chat_template, "tools"));
    mp_hf_config_free(&c);
}

/* Every fixture folder loads. */
static void test_all_folders(void) {
    DIR *d = opendir(mp_fixture("hf"));
    CHECK(d != NULL);
    if (!d) return;
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char rel[512];
        snprintf(rel, sizeof rel, "hf/%s", e->d_name);
        mp_hf_config c = load(rel);
        mp_hf_config_free(&c);
        n++;
    }
    closedir(d);
    CHECK_EQ_INT(n, 8);
}

static void test_parse_errors(void) {
    mp_json j;
    mp_error err;
    CHECK(mp_json_parse(&j, "{\"a\": 1,}", 9, "x.json", &err) == -1 && strstr(err.msg, "x.json: not valid JSON"));
    CHECK(mp_json_parse(&j, "[1]", 3, "x.json", &err) == -1 && strstr(err.msg, "expected a JSON object"));
    CHECK(mp_json_parse(&j, "{} {}", 5, "x.json", &err) == -1 && strstr(err.msg, "trailing characters"));
    const char *t = "{\"a\": {\"b\": [1, 2.5, \"x\"]}, \"n\": 3.0, \"big\": 1e300, \"chat_template\": 5}";
    CHECK(mp_json_parse(&j, t, strlen(t), "x.json", &err) == 0);
    int64_t v[4];
    int n;
    CHECK(mp_json_get_int_array(&j, "a.b", v, 4, &n, &err) == -1 && strstr(err.msg, "a.b[1] = 2.5 is not an integer"));
    CHECK(mp_json_get_int_array(&j, "n", v, 4, &n, &err) == 0 && n == 1 && v[0] == 3); /* a number is a 1-array */
    CHECK(mp_json_find(&j, "a.b.7") == NULL && mp_json_find(&j, "a.") == NULL && mp_json_find(&j, "a.b.-1") == NULL);
    CHECK(mp_json_int_array_or(&j, "missing", v, 4, &n, &err) == 0 && n == 0);
    int32_t i32;
    CHECK(mp_json_i32_or(&j, "big", 0, &i32, &err) == -1 && strstr(err.msg, "out of range"));
    mp_json_free(&j);
    CHECK(mp_json_load(&j, "/nonexistent/config.json", &err) == -1 && strstr(err.msg, "/nonexistent/config.json"));
    CHECK(mp_json_load_optional(&j, "/nonexistent/config.json", &err) == 0 && !mp_json_present(&j));
    mp_hf_config c;
    CHECK(mp_hf_config_load(&c, "/nonexistent", &err) == -1 && strstr(err.msg, "not a folder"));
}

int main(void) {
    test_parse_errors();
    if (access(mp_fixture("hf/openai--whisper-base/config.json"), R_OK) != 0) {
        int r = mp_test_result("test_hfjson");
        return r ? r : MP_TEST_SKIP;
    }
    test_smolvlm();
    test_qwen2vl();
    test_whisper();
    test_moe();
    test_lora_configs();
    test_all_folders();
    return mp_test_result("test_hfjson");
}
