/* test_llm_sample.c — sampler knobs and stopping rules against their definitions: top-k, top-p,
 * min-p, repetition / frequency / presence penalties and their window, log-probabilities, seeds;
 * stop strings across token boundaries, EOS, max new tokens. (The llama2.c-exact temperature / top-p /
 * RNG path is checked against the real run.c goldens in test_llm_golden.) */
#include "test.h"

#include "llm/sample.h"

#include <math.h>

static mp_sampler make(float temp, int top_k, float top_p, float min_p, uint64_t seed, int n) {
    mp_sampler s;
    mp_error err;
    mp_sampler_params p = mp_sampler_default_params();
    p.temperature = temp;
    p.top_k = top_k;
    p.top_p = top_p;
    p.min_p = min_p;
    p.seed = seed;
    CHECK(mp_sampler_init(&s, &p, n, &err) == 0);
    return s;
}

/* draw many samples from logits = log(probs) and return the frequencies */
static void freqs(mp_sampler *s, const float *probs, int n, int draws, double *f) {
    float lg[16];
    for (int i = 0; i < n; i++) f[i] = 0;
    for (int d = 0; d < draws; d++) {
        for (int i = 0; i < n; i++) lg[i] = logf(probs[i]);
        int32_t t = mp_sampler_sample(s, lg, NULL);
        CHECK(t >= 0 && t < n);
        if (t >= 0 && t < n) f[t] += 1.0 / draws;
    }
}

int main(void) {
    const float p4[4] = {0.5f, 0.3f, 0.15f, 0.05f};
    double f[16];
    const int D = 40000;
    const double tol = 0.012;

    /* plain multinomial (top-p off) follows the distribution */
    mp_sampler s = make(1, 0, 1.0f, 0, 7, 4);
    freqs(&s, p4, 4, D, f);
    for (int i = 0; i < 4; i++) CHECK_NEAR(f[i], p4[i], tol);
    mp_sampler_free(&s);

    /* top-k 2: only the two most probable, renormalised */
    s = make(1, 2, 1.0f, 0, 8, 4);
    freqs(&s, p4, 4, D, f);
    CHECK_NEAR(f[0], 0.5 / 0.8, tol);
    CHECK_NEAR(f[1], 0.3 / 0.8, tol);
    CHECK(f[2] == 0 && f[3] == 0);
    mp_sampler_free(&s);

    /* top-p 0.7: the nucleus is {0, 1} (0.5 < 0.7 < 0.8) */
    s = make(1, 0, 0.7f, 0, 9, 4);
    freqs(&s, p4, 4, D, f);
    CHECK_NEAR(f[0], 0.5 / 0.8, tol);
    CHECK(f[2] == 0 && f[3] == 0);
    mp_sampler_free(&s);

    /* min-p 0.2: drop p < 0.1 (token 3) */
    s = make(1, 0, 1.0f, 0.2f, 10, 4);
    freqs(&s, p4, 4, D, f);
    CHECK(f[3] == 0);
    CHECK_NEAR(f[2], 0.15 / 0.95, tol);
    CHECK_NEAR(f[0], 0.5 / 0.95, tol);
    mp_sampler_free(&s);

    /* temperature 0.5 squares the probabilities (renormalised) */
    s = make(0.5f, 0, 1.0f, 0, 11, 4);
    freqs(&s, p4, 4, D, f);
    double z = 0.25 + 0.09 + 0.0225 + 0.0025;
    CHECK_NEAR(f[0], 0.25 / z, tol);
    CHECK_NEAR(f[1], 0.09 / z, tol);
    mp_sampler_free(&s);

    /* top-k 1 at any temperature = greedy */
    s = make(3, 1, 1.0f, 0, 12, 4);
    freqs(&s, p4, 4, 1000, f);
    CHECK_NEAR(f[0], 1.0, 1e-9);
    mp_sampler_free(&s);

    /* same seed, same tokens; another seed, another sequence */
    {
        mp_sampler a = make(1, 0, 0.9f, 0, 42, 4), b = make(1, 0, 0.9f, 0, 42, 4), c = make(1, 0, 0.9f, 0, 43, 4);
        int same = 1, diff = 0;
        for (int d = 0; d < 200; d++) {
            float la[4], lb[4], lc[4];
            for (int i = 0; i < 4; i++) la[i] = lb[i] = lc[i] = logf(p4[i]);
            int32_t ta = mp_sampler_sample(&a, la, NULL), tb = mp_sampler_sample(&b, lb, NULL), tc = mp_sampler_sample(&c, lc, NULL);
            same &= ta == tb;
            diff |= ta != tc;
        }
        CHECK(same);
        CHECK(diff);
        mp_sampler_free(&a);
        mp_sampler_free(&b);
        mp_sampler_free(&c);
    }

    /* greedy: the first maximum */
    s = make(0, 0, 0.9f, 0, 1, 5);
    {
        float lg[5] = {1, 3, 2, 3, -1};
        { int32_t t_ = mp_sampler_sample(&s, lg, NULL); CHECK_EQ_INT(t_, 1); }
    }
    mp_sampler_free(&s);

    /* repetition penalty (CTRL): positive logits divided, negative multiplied */
    {
        mp_sampler_params p = mp_sampler_default_params();
        mp_error err;
        p.temperature = 0;
        p.repeat_penalty = 2.0f;
        p.penalty_last_n = 2;
        CHECK(mp_sampler_init(&s, &p, 4, &err) == 0);
        mp_sampler_accept(&s, 0);
        float lg[4] = {2.0f, 1.9f, -1.0f, -1.5f};
        { int32_t t_ = mp_sampler_sample(&s, lg, NULL); CHECK_EQ_INT(t_, 1); } /* 2 / 2 = 1 < 1.9 */
        CHECK_NEAR(lg[0], 1.0, 1e-6);
        mp_sampler_accept(&s, 2);
        mp_sampler_accept(&s, 1); /* window of 2: token 0 is forgotten, 1 and 2 are penalised */
        float lg2[4] = {2.0f, 1.9f, -1.0f, -1.5f};
        { int32_t t_ = mp_sampler_sample(&s, lg2, NULL); CHECK_EQ_INT(t_, 0); }
        CHECK_NEAR(lg2[1], 0.95, 1e-6);
        CHECK_NEAR(lg2[2], -2.0, 1e-6);
        CHECK_NEAR(lg2[3], -1.5, 1e-6);
        mp_sampler_free(&s);
    }
    /* frequency and presence penalties: logit -= count * f + p */
    {
        mp_sampler_params p = mp_sampler_default_params();
        mp_error err;
        p.temperature = 0;
        p.frequency_penalty = 0.5f;
        p.presence_penalty = 0.25f;
        p.penalty_last_n = -1;
        CHECK(mp_sampler_init(&s, &p, 3, &err) == 0);
        for (int i = 0; i < 3; i++) mp_sampler_accept(&s, 0);
        mp_sampler_accept(&s, 1);
        float lg[3] = {2.9f, 1.0f, 1.2f};
        { int32_t t_ = mp_sampler_sample(&s, lg, NULL); CHECK_EQ_INT(t_, 2); }
        CHECK_NEAR(lg[0], 2.9 - 1.5 - 0.25, 1e-6);
        CHECK_NEAR(lg[1], 1.0 - 0.5 - 0.25, 1e-6);
        CHECK_NEAR(lg[2], 1.2, 1e-6);
        mp_sampler_free(&s);
    }
    /* log-probabilities of the raw logits */
    {
        s = make(0, 0, 0.9f, 0, 1, 4);
        float raw[4] = {0.5f, -1.0f, 2.0f, 0.0f}, lg[4];
        memcpy(lg, raw, sizeof lg);
        float lp = 0;
        int32_t t = mp_sampler_sample(&s, lg, &lp);
        double zz = 0;
        for (int i = 0; i < 4; i++) zz += exp(raw[i]);
        CHECK_EQ_INT(t, 2);
        CHECK_NEAR(lp, 2.0 - log(zz), 1e-6);
        int32_t ids[3];
        float lps[3];
        int nk = mp_logprobs_top(raw, 4, 3, ids, lps);
        CHECK_EQ_INT(nk, 3);
        CHECK(ids[0] == 2 && ids[1] == 0 && ids[2] == 3);
        CHECK_NEAR(lps[1], 0.5 - log(zz), 1e-6);
        mp_sampler_free(&s);
    }
    /* bad parameters */
    {
        mp_sampler_params p = mp_sampler_default_params();
        mp_error err;
        p.temperature = -1;
        CHECK(mp_sampler_init(&s, &p, 4, &err) < 0 && strstr(err.msg, "temperature"));
    }

    /* ---------------------------------------------------------------- stopping */
    {
        mp_stopper st;
        char out[256], all[256] = "";
        mp_stopper_init(&st, 100);
        mp_stopper_add_stop(&st, "o Wo");
        const char *pieces[] = {"Hel", "lo", " W", "orld"};
        for (int i = 0; i < 4 && !st.stopped; i++) {
            mp_stopper_push(&st, 10 + i, pieces[i], out, sizeof out);
            strcat(all, out);
        }
        CHECK_STR(all, "Hell");
        CHECK_EQ_INT(st.stopped, 2);
        mp_stopper_free(&st);

        /* a prefix that turns out not to be the stop string is released */
        mp_stopper_init(&st, 100);
        mp_stopper_add_stop(&st, "END");
        all[0] = 0;
        const char *p2[] = {"a E", "N", "x", "y"};
        int after_n = -1;
        for (int i = 0; i < 4; i++) {
            mp_stopper_push(&st, 5, p2[i], out, sizeof out);
            strcat(all, out);
            if (i == 1) after_n = (int)strlen(all);
        }
        CHECK_EQ_INT(after_n, 2); /* "a " released, "EN" held */
        CHECK_STR(all, "a ENxy");
        CHECK_EQ_INT(st.stopped, 0);
        mp_stopper_free(&st);

        /* EOS ends without text; max new tokens ends after the n-th token */
        mp_stopper_init(&st, 3);
        mp_stopper_add_eos(&st, 2);
        mp_stopper_push(&st, 7, "a", out, sizeof out);
        CHECK_STR(out, "a");
        mp_stopper_push(&st, 2, "</s>", out, sizeof out);
        CHECK_STR(out, "");
        CHECK_EQ_INT(st.stopped, 1);
        mp_stopper_free(&st);
        mp_stopper_init(&st, 2);
        mp_stopper_push(&st, 7, "a", out, sizeof out);
        CHECK_EQ_INT(st.stopped, 0);
        mp_stopper_push(&st, 7, "b", out, sizeof out);
        CHECK_EQ_INT(st.stopped, 3);
        CHECK_STR(out, "b");
        mp_stopper_free(&st);
    }
    return mp_test_result("test_llm_sample");
}
