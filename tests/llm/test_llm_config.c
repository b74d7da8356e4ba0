/* test_llm_config.c — decoder configs read from the real HF configs in ../shared/fixtures/hf (the weights
 * there are LFS pointers, so only config.json / generation_config.json are read), and from the real
 * stories260K llama2.c header. */
#include "test.h"

#include "llm/llama.h"

int main(void) {
    mp_error err = {{0}};
    mp_llama_config c;
    FILE *f = fopen(mp_fixture("hf/HuggingFaceTB--SmolVLM-256M-Instruct/config.json"), "r");
    if (!f) return MP_TEST_SKIP;
    fclose(f);

    /* SmolVLM-256M: Idefics3 with a llama text_config */
    int rc = mp_llama_config_load(&c, mp_fixture("hf/HuggingFaceTB--SmolVLM-256M-Instruct"), &err);
    CHECKF(rc == 0, "%s", err.msg);
    CHECK_EQ_INT(c.arch, MP_LLM_LLAMA);
    CHECK_EQ_INT(c.n_embd, 576);
    CHECK_EQ_INT(c.n_ff, 1536);
    CHECK_EQ_INT(c.n_layer, 30);
    CHECK_EQ_INT(c.n_head, 9);
    CHECK_EQ_INT(c.n_kv_head, 3);
    CHECK_EQ_INT(c.head_dim, 64);
    CHECK_EQ_INT(c.n_vocab, 49280);
    CHECK_EQ_INT(c.n_ctx_train, 8192);
    CHECK_NEAR(c.rope_theta, 100000, 0);
    CHECK_NEAR(c.norm_eps, 1e-5, 1e-12);
    CHECK_EQ_INT(c.tie_embeddings, 0);
    CHECK_EQ_INT(c.rope_mode, MP_ROPE_NEOX);
    CHECK_EQ_INT(c.bos_id, 0);                 /* generation_config wins over text_config */
    CHECK(c.n_eos == 1 && c.eos_ids[0] == 49279);

    /* Qwen2-VL-2B: qwen2_vl (no text_config), tied, GQA 12:2, two EOS ids in generation_config */
    rc = mp_llama_config_load(&c, mp_fixture("hf/Qwen--Qwen2-VL-2B-Instruct"), &err);
    CHECKF(rc == 0, "%s", err.msg);
    CHECK_EQ_INT(c.arch, MP_LLM_QWEN2);
    CHECK_EQ_INT(c.n_embd, 1536);
    CHECK_EQ_INT(c.n_head, 12);
    CHECK_EQ_INT(c.n_kv_head, 2);
    CHECK_EQ_INT(c.head_dim, 128);
    CHECK_EQ_INT(c.tie_embeddings, 1);
    CHECK_NEAR(c.rope_theta, 1e6, 0);
    CHECK_EQ_INT(c.rope_scaling, MP_ROPE_SCALING_NONE);
    CHECK(c.rope_sections[0] == 16 && c.rope_sections[1] == 24 && c.rope_sections[2] == 24 && c.rope_sections[3] == 0);
    CHECK(c.n_eos == 2 && c.eos_ids[0] == 151645 && c.eos_ids[1] == 151643);

    /* Granite-3.1 1B-A400M is a MoE (granitemoe): a clear error until MoE lands */
    rc = mp_llama_config_load(&c, mp_fixture("hf/ibm-granite--granite-3.1-1b-a400m-instruct"), &err);
    CHECKF(rc < 0 && strstr(err.msg, "unknown architecture 'granitemoe'") && strstr(err.msg, "granite-3.1"), "'%s'", err.msg);

    /* stories260K header */
    rc = mp_llama_config_load(&c, mp_fixture("llm/stories260K.bin"), &err);
    CHECKF(rc == 0, "%s", err.msg);
    CHECK(c.n_embd == 64 && c.n_ff == 172 && c.n_layer == 5 && c.n_head == 8 && c.n_kv_head == 4);
    CHECK(c.n_vocab == 512 && c.n_ctx_train == 512 && c.tie_embeddings && c.rope_mode == MP_ROPE_NORMAL);

    /* not a model */
    rc = mp_llama_config_load(&c, mp_fixture("llm/stories260K.golden.md"), &err);
    CHECKF(rc < 0 && strstr(err.msg, "stories260K.golden.md"), "'%s'", err.msg);
    return mp_test_result("test_llm_config");
}
