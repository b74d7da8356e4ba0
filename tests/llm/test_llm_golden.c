/* test_llm_golden.c — stories260K (Karpathy's real TinyStories checkpoint) with tok512.bin reproduces
 * every golden run of upstream llama2.c run.c in ../shared/fixtures/llm/golden: the token ids and the
 * exact stdout bytes, greedy and seeded sampling. Also: the same greedy tokens when the sequences run
 * concurrently in one batch (staggered prompts, prefill mixed with decode), for 1 and 2 threads. */
#include "test.h"

#include "kernels/mp.h"
#include "llm/kvcache.h"
#include "llm/llama.h"
#include "llm/sample.h"
#include "llm/tokenizer.h"

typedef struct {
    const char *name, *prompt;
    int steps; /* run.c -n: positions including the prompt tokens after BOS */
    float temp, topp;
    long long seed;
} golden_case;

static const golden_case cases[] = {
    {"greedy_n200_prompt", "Once upon a time", 200, 0, 0.9f, 0},
    {"greedy_n200_noprompt", "", 200, 0, 0.9f, 0},
    {"t1_s42_n64_noprompt", "", 64, 1, 0.9f, 42},
    {"t1_s42_n64_prompt", "Once upon a time", 64, 1, 0.9f, 42},
    {"generate_defaults_s42", "", 256, 1, 0.9f, 42},
    {"greedy_default_n256", "", 256, 0, 0.9f, 0},
    {"t1_p0.9_s133742_doc", "", 256, 1, 0.9f, 133742},
    {"t1_p1.0_s42_n64_multinomial", "", 64, 1, 1.0f, 42},
    {"greedy_n64_prompt", "Once upon a time", 64, 0, 0.9f, 0},
    {"greedy_n60_zoo", "Zoo", 60, 0, 0.9f, 0},
    {"t0.8_p0.9_s1337_n100_lilytim", "Lily and Tim", 100, 0.8f, 0.9f, 1337},
};

static char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)sz + 1);
    if (b && fread(b, 1, (size_t)sz, f) != (size_t)sz) sz = 0;
    fclose(f);
    if (b) b[sz] = 0;
    *n = (size_t)sz;
    return b;
}

static mp_llama model;
static mp_tokenizer *tok;

/* run.c's generate(): prompt tokens forced, then sampled; prints every emitted piece; stops on BOS. */
static void run_case(mp_exec *ex, const golden_case *gc) {
    mp_error err = {{0}};
    const int V = model.cfg.n_vocab;
    int32_t prompt[512];
    int np = mp_tokenize(tok, gc->prompt, strlen(gc->prompt), 1, 0, prompt, 512);
    CHECK(np >= 1 && np < 512);
    mp_kvcache kv;
    CHECK(mp_llama_kvcache_init(&model, &kv, ex, 1, 512, 512, 16, &err) == 0);
    int seq = mp_kvcache_seq_new(&kv, &err);
    mp_llama_state st;
    memset(&st, 0, sizeof st);
    mp_sampler_params sp = mp_sampler_default_params();
    sp.temperature = gc->temp;
    sp.top_p = gc->topp;
    sp.seed = (uint64_t)gc->seed;
    mp_sampler smp;
    CHECK(mp_sampler_init(&smp, &sp, V, &err) == 0);
    float *logits = malloc((size_t)V * sizeof(float));
    int32_t got[600];
    int n_got = 0;
    /* prompt tokens after BOS are "emitted" too, as run.c prints them */
    for (int i = 1; i < np; i++) got[n_got++] = prompt[i];
    mp_llama_seq sq = {seq, np, prompt, NULL, NULL, 1, logits};
    int rc = mp_llama_forward(&model, &st, &kv, ex, &sq, 1, &err);
    CHECKF(rc == 0, "%s", err.msg);
    while (rc == 0 && n_got < gc->steps) {
        int32_t next = mp_sampler_sample(&smp, logits, NULL);
        if (next == 1) break;
        got[n_got++] = next;
        if (n_got >= gc->steps) break;
        sq.n = 1;
        sq.tokens = &next;
        rc = mp_llama_forward(&model, &st, &kv, ex, &sq, 1, &err);
        CHECKF(rc == 0, "%s", err.msg);
    }
    /* expected ids */
    char path[256];
    snprintf(path, sizeof path, "llm/golden/%s.tokens", gc->name);
    size_t n;
    char *txt = slurp(mp_fixture(path), &n);
    CHECK(txt != NULL);
    int32_t want[600];
    int n_want = 0;
    for (char *p = txt; p && *p;) {
        char *e;
        long v = strtol(p, &e, 10);
        if (e == p) break;
        if (n_want < 600) want[n_want++] = (int32_t)v;
        p = e;
    }
    free(txt);
    CHECKF(n_got == n_want, "%s: %d tokens, golden %d", gc->name, n_got, n_want);
    int first_diff = -1;
    for (int i = 0; i < n_got && i < n_want; i++)
        if (got[i] != want[i]) { first_diff = i; break; }
    CHECKF(first_diff < 0, "%s: token %d is %d, golden %d", gc->name, first_diff, first_diff >= 0 ? got[first_diff] : 0,
           first_diff >= 0 ? want[first_diff] : 0);
    /* expected stdout: run.c prints each piece (after BOS one leading space is dropped), then "\n" */
    snprintf(path, sizeof path, "llm/golden/%s.stdout", gc->name);
    char *gold = slurp(mp_fixture(path), &n);
    CHECK(gold != NULL);
    char out[8192] = "", piece[256];
    size_t w = 0;
    mp_detok dt;
    mp_detok_init(&dt, tok, 1);
    mp_detok_push(&dt, prompt[0], piece, sizeof piece);
    for (int i = 0; i < n_got; i++) {
        int l = mp_detok_push(&dt, got[i], piece, sizeof piece);
        if (l > 0 && w + (size_t)l < sizeof out - 2) { memcpy(out + w, piece, (size_t)l); w += (size_t)l; }
    }
    out[w++] = '\n';
    out[w] = 0;
    if (gold) CHECKF(w == n && !memcmp(out, gold, n), "%s: stdout differs from the golden (%zu vs %zu bytes)", gc->name, w, n);
    free(gold);
    free(logits);
    mp_sampler_free(&smp);
    mp_llama_state_free(&st, ex);
    mp_kvcache_free(&kv, ex);
}

/* Three greedy sequences in one batch: started at different steps, so one call mixes a prefill with
 * decodes; each must produce exactly its solo tokens. */
static void batch_same_as_alone(mp_exec *ex) {
    mp_error err = {{0}};
    const char *prompts[3] = {"Once upon a time", "Zoo", "Lily and Tim"};
    const int V = model.cfg.n_vocab, N = 40;
    int32_t solo[3][64], bat[3][64];
    float *logits = malloc((size_t)3 * V * sizeof(float));
    for (int s = 0; s < 3; s++) { /* alone */
        mp_kvcache kv;
        mp_llama_state st;
        memset(&st, 0, sizeof st);
        CHECK(mp_llama_kvcache_init(&model, &kv, ex, 1, 256, 256, 16, &err) == 0);
        int seq = mp_kvcache_seq_new(&kv, &err);
        int32_t p[64];
        int np = mp_tokenize(tok, prompts[s], strlen(prompts[s]), 1, 0, p, 64);
        mp_llama_seq sq = {seq, np, p, NULL, NULL, 1, logits};
        for (int i = 0; i < N; i++) {
            CHECK(mp_llama_forward(&model, &st, &kv, ex, &sq, 1, &err) == 0);
            solo[s][i] = (int32_t)mp_argmax(ex, logits, V);
            sq.n = 1;
            sq.tokens = &solo[s][i];
        }
        mp_llama_state_free(&st, ex);
        mp_kvcache_free(&kv, ex);
    }
    /* together: sequence s starts at step 3*s; a small block size so blocks interleave */
    mp_kvcache kv;
    mp_llama_state st;
    memset(&st, 0, sizeof st);
    CHECK(mp_llama_kvcache_init(&model, &kv, ex, 3, 256, 3 * 256, 4, &err) == 0);
    int32_t p[3][64];
    int np[3], seq[3], done[3] = {0, 0, 0};
    for (int s = 0; s < 3; s++) {
        np[s] = mp_tokenize(tok, prompts[s], strlen(prompts[s]), 1, 0, p[s], 64);
        seq[s] = mp_kvcache_seq_new(&kv, &err);
    }
    for (int step = 0; step < N + 6; step++) {
        mp_llama_seq sq[3];
        int idx[3], nb = 0;
        for (int s = 0; s < 3; s++) {
            int k = step - 3 * s; /* this sequence's own step */
            if (k < 0 || k >= N) continue;
            sq[nb] = (mp_llama_seq){seq[s], k == 0 ? np[s] : 1, k == 0 ? p[s] : &bat[s][k - 1], NULL, NULL, 1,
                                    logits + (size_t)nb * V};
            idx[nb++] = s;
        }
        if (!nb) continue;
        CHECK(mp_llama_forward(&model, &st, &kv, ex, sq, nb, &err) == 0);
        for (int b = 0; b < nb; b++) {
            int s = idx[b];
            bat[s][step - 3 * s] = (int32_t)mp_argmax(ex, logits + (size_t)b * V, V);
            done[s]++;
        }
    }
    for (int s = 0; s < 3; s++) {
        CHECK_EQ_INT(done[s], N);
        CHECKF(!memcmp(solo[s], bat[s], sizeof(int32_t) * N), "sequence %d: batched greedy tokens differ", s);
    }
    mp_llama_state_free(&st, ex);
    mp_kvcache_free(&kv, ex);
    free(logits);
}

int main(void) {
    mp_error err = {{0}};
    char mp[4096], tp[4096]; /* mp_fixture's buffers are reused */
    snprintf(mp, sizeof mp, "%s", mp_fixture("llm/stories260K.bin"));
    snprintf(tp, sizeof tp, "%s", mp_fixture("llm/tok512.bin"));
    FILE *f = fopen(mp, "rb");
    if (!f) {
        fprintf(stderr, "skip: %s not found\n", mp);
        return MP_TEST_SKIP;
    }
    fclose(f);
    for (int nt = 1; nt <= 2; nt++) {
        mp_threadpool *pool = mp_threadpool_create(nt);
        mp_exec ex;
        CHECK(mp_exec_init(&ex, MP_BACKEND_CPU, pool, (size_t)16 << 20, &err) == 0);
        int rc = mp_llama_load(&model, mp, &ex, &err);
        CHECKF(rc == 0, "%s", err.msg);
        rc = mp_tokenizer_load_llama2c(&tok, tp, model.cfg.n_vocab, &err);
        CHECKF(rc == 0, "%s", err.msg);
        if (rc == 0) {
            CHECK_EQ_INT(model.cfg.n_embd, 64);
            CHECK_EQ_INT(model.cfg.n_kv_head, 4);
            CHECK(model.cfg.tie_embeddings);
            for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_case(&ex, &cases[i]);
            batch_same_as_alone(&ex);
            mp_tokenizer_free(tok);
        }
        mp_llama_free(&model, &ex);
        mp_exec_free(&ex);
        mp_threadpool_free(pool);
    }
    return mp_test_result("test_llm_golden");
}
