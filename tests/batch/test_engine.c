/* test_engine.c — continuous batching on the real stories260K model: seven llama2.c golden runs
 * (greedy and seeded sampling) submitted together to an engine that can run only 3 at a time with a
 * 5-token step budget (queueing, chunked prefill, sequences joining and leaving) must reproduce
 * run.c's tokens exactly, and each alone must give the same tokens. Also: bad requests fail alone. */
#include "llm/llama.h"
#include "llm/tokenizer.h"
#include "runtime/engine.h"
#include "test.h"

typedef struct {
    const char *name, *prompt;
    float temp, top_p;
    uint64_t seed;
    int steps; /* run.c -n */
    int32_t gold[300];
    int n_gold;
    int32_t prompt_ids[32];
    int n_prompt;
    /* results */
    int32_t got[300];
    int n_got;
    char text[4096];
    int done, ok;
    char reason[16];
} gcase;

static gcase cases[] = {
    {.name = "greedy_n64_prompt", .prompt = "Once upon a time", .temp = 0.0f, .top_p = 0.9f, .seed = 0, .steps = 64},
    {.name = "t1_s42_n64_prompt", .prompt = "Once upon a time", .temp = 1.0f, .top_p = 0.9f, .seed = 42, .steps = 64},
    {.name = "greedy_n60_zoo", .prompt = "Zoo", .temp = 0.0f, .top_p = 0.9f, .seed = 0, .steps = 60},
    {.name = "t0.8_p0.9_s1337_n100_lilytim", .prompt = "Lily and Tim", .temp = 0.8f, .top_p = 0.9f, .seed = 1337, .steps = 100},
    {.name = "t1_p1.0_s42_n64_multinomial", .prompt = NULL, .temp = 1.0f, .top_p = 1.0f, .seed = 42, .steps = 64},
    {.name = "greedy_n200_noprompt", .prompt = NULL, .temp = 0.0f, .top_p = 0.9f, .seed = 0, .steps = 200},
    {.name = "t1_p0.9_s133742_doc", .prompt = NULL, .temp = 1.0f, .top_p = 0.9f, .seed = 133742, .steps = 256},
};
#define NC (int)(sizeof cases / sizeof cases[0])

static int err_results;

static void on_done(void *ctx, const mp_gen_result *r) {
    (void)ctx;
    gcase *c = r->user;
    if (!c) { /* the bad requests */
        CHECK(!r->ok);
        err_results++;
        return;
    }
    c->done++;
    c->ok = r->ok;
    c->n_got = r->n_tokens;
    memcpy(c->got, r->tokens, (size_t)r->n_tokens * sizeof(int32_t));
    snprintf(c->text, sizeof c->text, "%s", r->text);
    snprintf(c->reason, sizeof c->reason, "%s", r->finish_reason);
}

static mp_gen_request make_req(gcase *c) {
    mp_gen_request r;
    memset(&r, 0, sizeof r);
    r.n = c->n_prompt;
    r.tokens = c->prompt_ids;
    r.sampling = mp_sampler_default_params();
    r.sampling.temperature = c->temp;
    r.sampling.top_p = c->top_p;
    r.sampling.seed = c->seed;
    r.max_new = c->n_gold - (c->n_prompt - 1);
    r.ignore_eos = 1; /* run.c stops on BOS only; none of these runs produces it */
    r.user = c;
    return r;
}

static int run_engine(mp_llama *m, mp_tokenizer *tok, mp_exec *ex, int max_seqs, int step_tokens, int only,
                      mp_engine_stats *st) {
    mp_engine_params p = mp_engine_default_params();
    p.max_seqs = max_seqs;
    p.step_tokens = step_tokens;
    p.kv_tokens = 4096;
    mp_engine *e;
    mp_error err;
    if (mp_engine_create(&e, m, tok, ex, &p, on_done, NULL, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    for (int i = 0; i < NC; i++) {
        if (only >= 0 && i != only) continue;
        mp_gen_request r = make_req(&cases[i]);
        CHECK(mp_engine_submit(e, &r, &err) == 0);
    }
    int guard = 0;
    while (mp_engine_pending(e) > 0 && guard++ < 100000)
        if (mp_engine_step(e, &err) < 0) {
            fprintf(stderr, "%s\n", err.msg);
            break;
        }
    if (st) mp_engine_get_stats(e, st);
    mp_engine_free(e);
    return 0;
}

static int read_ids(const char *path, int32_t *ids, int cap) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    int n = 0, v;
    while (n < cap && fscanf(f, "%d", &v) == 1) ids[n++] = v;
    fclose(f);
    return n;
}

int main(void) {
    const char *model = mp_fixture("llm/stories260K.bin"), *tokp = mp_fixture("llm/tok512.bin");
    FILE *f = fopen(model, "rb");
    if (!f) return MP_TEST_SKIP;
    fclose(f);
    mp_error err;
    mp_threadpool *tp = mp_threadpool_create(2);
    mp_exec ex;
    CHECK(mp_exec_init(&ex, MP_BACKEND_CPU, tp, 16 << 20, &err) == 0);
    mp_llama m;
    memset(&m, 0, sizeof m);
    if (mp_llama_load(&m, model, &ex, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    mp_tokenizer *tok;
    if (mp_tokenizer_load_llama2c(&tok, tokp, 512, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    for (int i = 0; i < NC; i++) {
        gcase *c = &cases[i];
        char rel[256];
        snprintf(rel, sizeof rel, "llm/golden/%s.tokens", c->name);
        c->n_gold = read_ids(mp_fixture(rel), c->gold, 300);
        CHECK(c->n_gold == c->steps);
        const char *p = c->prompt ? c->prompt : "";
        c->n_prompt = mp_tokenize(tok, p, strlen(p), 1, 0, c->prompt_ids, 32);
        CHECK(c->n_prompt >= 1 && c->prompt_ids[0] == 1);
        /* the golden's first ids are the prompt's (after BOS) */
        for (int j = 1; j < c->n_prompt; j++) CHECK_EQ_INT(c->gold[j - 1], c->prompt_ids[j]);
    }

    /* all together: 3 at a time, 5-token steps */
    mp_engine_stats st;
    CHECK(run_engine(&m, tok, &ex, 3, 5, -1, &st) == 0);
    CHECK_EQ_INT(st.max_running, 3);
    CHECK_EQ_INT(st.finished, NC);
    int32_t batched[NC][300];
    for (int i = 0; i < NC; i++) {
        gcase *c = &cases[i];
        CHECKF(c->done == 1 && c->ok, "%s: done %d ok %d", c->name, c->done, c->ok);
        const int32_t *exp = c->gold + (c->n_prompt - 1);
        int n_exp = c->n_gold - (c->n_prompt - 1);
        CHECK_EQ_INT(c->n_got, n_exp);
        int mism = 0;
        for (int j = 0; j < n_exp && j < c->n_got; j++)
            if (exp[j] != c->got[j]) mism++;
        CHECKF(mism == 0, "%s: %d tokens differ from run.c", c->name, mism);
        CHECK_STR(c->reason, "length");
        memcpy(batched[i], c->got, sizeof c->got);
    }
    /* greedy text equals run.c's stdout minus the prompt and its final newline */
    {
        FILE *g = fopen(mp_fixture("llm/golden/greedy_n64_prompt.stdout"), "rb");
        char buf[4096];
        size_t n = fread(buf, 1, sizeof buf - 1, g);
        fclose(g);
        buf[n] = 0;
        if (n && buf[n - 1] == '\n') buf[--n] = 0;
        CHECK_STR(cases[0].text, buf + strlen("Once upon a time"));
    }
    /* each alone: same tokens */
    for (int i = 0; i < NC; i++) {
        cases[i].done = 0;
        CHECK(run_engine(&m, tok, &ex, 1, 512, i, NULL) == 0);
        CHECKF(cases[i].done == 1 && !memcmp(batched[i], cases[i].got, (size_t)cases[i].n_got * 4),
               "%s differs alone vs batched", cases[i].name);
    }
    /* bad requests finish with an error, the good one next to them still runs */
    {
        mp_engine *e;
        mp_engine_params p = mp_engine_default_params();
        CHECK(mp_engine_create(&e, &m, tok, &ex, &p, on_done, NULL, &err) == 0);
        int32_t toks[4] = {1, 403, 999, 2};
        mp_gen_request r = make_req(&cases[0]);
        r.user = NULL;
        r.n = 4;
        r.tokens = toks; /* 999 is outside the vocabulary */
        CHECK(mp_engine_submit(e, &r, &err) == 0);
        r = make_req(&cases[0]);
        r.user = NULL;
        r.max_new = 600; /* beyond the 512 context */
        CHECK(mp_engine_submit(e, &r, &err) == 0);
        r.max_new = 0;
        CHECK(mp_engine_submit(e, &r, &err) == 0);
        cases[0].done = 0;
        r = make_req(&cases[0]);
        CHECK(mp_engine_submit(e, &r, &err) == 0);
        while (mp_engine_pending(e) > 0) mp_engine_step(e, &err);
        CHECK_EQ_INT(err_results, 3);
        CHECK(cases[0].done == 1 && !memcmp(batched[0], cases[0].got, (size_t)cases[0].n_got * 4));
        mp_engine_free(e);
    }
    mp_tokenizer_free(tok);
    mp_llama_free(&m, &ex);
    mp_exec_free(&ex);
    mp_threadpool_free(tp);
    return mp_test_result("test_engine");
}
