/* test_whisper_ref.c — mmpipe's Whisper vs tests/ref/whisper_ref.py (PyTorch, written from openai/whisper)
 * on random-weight models this test writes in the real formats: the real tiny.en header (English-only,
 * GPT-2 vocabulary) and the real tiny header (multilingual), scaled down to 64 channels / 2 heads /
 * 2 layers, F16 weights; an HF folder (config.json + model.safetensors + the real whisper-base
 * tokenizer.json) with the multilingual weights; a Q8_0 file; a large-v3-shaped file (128 mel bins, 51866
 * tokens: 100 languages).
 *
 * Checked: mel, encoder output, decoder logits at every position (prefill + one token at a time through
 * the cache), the logit-filter masks (timestamp rules, suppress blank / tokens) on crafted prefixes,
 * greedy and beam-search token sequences (with and without timestamps, prompt, translate, length
 * penalty, patience), no-speech probability, language detection, long-form transcription over 35 s
 * (seek, conditioning, initial prompt, word timestamps, translate), BPE tokenization and the non-speech tokens;
 * greedy decoding of several windows in one batch equals one at a time. */
#include "test.h"

#include "encoders/whisper.h"
#include "kernels/ops.h"
#include "llm/whisper_decode.h"
#include "preprocess/audio.h"
#include "preprocess/mel.h"

#include <cjson/cJSON.h>
#include <sndfile.h>
#include <sys/stat.h>
#include <unistd.h>

static char g_dir[1024];

static cJSON *read_json(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (!b || fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        fclose(f);
        return NULL;
    }
    b[n] = 0;
    fclose(f);
    cJSON *j = cJSON_Parse(b);
    free(b);
    return j;
}

static float *read_f32(const char *path, long *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long b = ftell(f);
    fseek(f, 0, SEEK_SET);
    float *x = malloc((size_t)b);
    if (x && fread(x, 1, (size_t)b, f) != (size_t)b) {
        free(x);
        x = NULL;
    }
    fclose(f);
    *n = b / 4;
    return x;
}

static int json_ints(const cJSON *a, int32_t *out, int cap) {
    int n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, a) if (n < cap) out[n++] = (int32_t)e->valuedouble;
    return n;
}

/* ---------------------------------------------------------------- setup */

static const int32_t JFK_EN[] = {843, 523, 616, 5891, 3399, 11, 1265, 407, 644, 534, 1499, 460, 466,
                                 329, 345, 11, 1265, 644, 345, 460, 466, 329, 534, 1499, 13};
static const int32_t JFK_ML[] = {400, 370, 452, 7177, 6280, 11, 1029, 406, 437, 428, 1941, 393, 360,
                                 337, 291, 11, 1029, 437, 291, 393, 360, 337, 428, 1941, 13};

/* 35 s: jfk.wav three times, then 2 s of silence (16-bit WAV, written with libsndfile) */
static int write_audio(const char *path) {
    mp_audio a;
    mp_error err;
    if (mp_audio_load(mp_fixture("audio/jfk.wav"), 16000, &a, &err)) return -1;
    int64_t n = a.n_samples * 3 + 32000;
    short *pcm = calloc((size_t)n, sizeof(short));
    for (int r = 0; r < 3; r++)
        for (int64_t i = 0; i < a.n_samples; i++) pcm[r * a.n_samples + i] = (short)lrintf(a.samples[i] * 32768.0f);
    mp_audio_free(&a);
    SF_INFO info = {0};
    info.samplerate = 16000;
    info.channels = 1;
    info.format = SF_FORMAT_WAV | SF_FORMAT_PCM_16;
    SNDFILE *sf = sf_open(path, SFM_WRITE, &info);
    if (!sf) {
        free(pcm);
        return -1;
    }
    sf_count_t w = sf_write_short(sf, pcm, n);
    sf_close(sf);
    free(pcm);
    return w == n ? 0 : -1;
}

static mp_whisper_random_spec spec_for(const char *header, mp_dtype wt, uint64_t seed) {
    mp_whisper_random_spec s;
    memset(&s, 0, sizeof s);
    s.header_from = header;
    s.n_state = 64;
    s.n_head = 2;
    s.n_layer = 2;
    s.wtype = wt;
    s.seed = seed;
    s.gain = 3.0f;      /* strong layers and positions, so the output is not the input token again */
    s.emb_scale = 0.4f;
    s.eot_gain = 2.5f;
    s.pos_scale = 1.5f;
    return s;
}

/* ---------------------------------------------------------------- our side */

typedef struct side {
    mp_whisper m;
    mp_whisper_ctx c;
    mp_exec ex;
    mp_threadpool *tp;
    float *mel; /* [n_mels][n_frames] of the test audio, 30 s of zeros appended */
    int64_t n_frames;
} side;

static int side_open(side *s, const char *model, const float *samples, int64_t n) {
    mp_error err;
    memset(s, 0, sizeof *s);
    s->tp = mp_threadpool_create(2);
    if (mp_exec_init(&s->ex, MP_BACKEND_CPU, s->tp, 64 << 20, &err) || mp_whisper_load(&s->m, model, &s->ex, &err) ||
        mp_whisper_ctx_init(&s->c, &s->m, &s->ex, &err)) {
        fprintf(stderr, "%s: %s\n", model, err.msg);
        return -1;
    }
    mp_mel_params mp = mp_mel_params_whisper();
    if (mp_log_mel(samples, n, &s->m.mel, &mp, s->tp, &s->mel, &s->n_frames, &err)) {
        fprintf(stderr, "mel: %s\n", err.msg);
        return -1;
    }
    return 0;
}

static void side_close(side *s) {
    mp_whisper_ctx_free(&s->c);
    mp_whisper_free(&s->m, &s->ex);
    mp_exec_free(&s->ex);
    mp_threadpool_free(s->tp);
    free(s->mel);
}

/* the decode window at seek: content frames, zeros after (transcribe.py) */
static void window(const side *s, int64_t seek, float *dst) {
    const int NM = s->m.hp.n_mels;
    const int64_t content = s->n_frames - 3000, size = content - seek < 3000 ? content - seek : 3000;
    for (int b = 0; b < NM; b++) {
        memcpy(dst + (size_t)b * 3000, s->mel + (size_t)b * s->n_frames + seek, sizeof(float) * (size_t)size);
        memset(dst + (size_t)b * 3000 + size, 0, sizeof(float) * (size_t)(3000 - size));
    }
}

/* encoder + cross K/V of n windows */
static int encode_windows(side *s, const int64_t *seeks, int n, mp_whisper_cross *cross) {
    mp_error err;
    const int NM = s->m.hp.n_mels;
    float *mel = malloc(sizeof(float) * (size_t)n * NM * 3000);
    for (int i = 0; i < n; i++) window(s, seeks[i], mel + (size_t)i * NM * 3000);
    int rc = mp_whisper_encode(&s->m, &s->c.enc, &s->ex, mel, n, NULL, &err) ||
             mp_whisper_cross_init(cross, &s->m, &s->ex, n, &err) ||
             mp_whisper_cross_compute(&s->m, &s->ex, s->c.enc.x, n, cross, 0, &err);
    free(mel);
    if (rc) fprintf(stderr, "encode: %s\n", err.msg);
    return rc ? -1 : 0;
}

/* ---------------------------------------------------------------- cases */

typedef struct dcase {
    const char *name;
    const char *json_opts;          /* openai DecodingOptions */
    mp_whisper_decode_opts o;       /* ours */
} dcase;

static void add_case(cJSON *cases, const char *name, const char *kind, const char *extra) {
    char buf[4096];
    snprintf(buf, sizeof buf, "{\"name\": \"%s\", \"kind\": \"%s\"%s%s}", name, kind, extra ? ", " : "", extra ? extra : "");
    cJSON *c = cJSON_Parse(buf);
    if (!c) fprintf(stderr, "bad case json: %s\n", buf);
    cJSON_AddItemToArray(cases, c);
}

static cJSON *load_out(const char *tag, const char *name) {
    char p[1400];
    snprintf(p, sizeof p, "%s/out_%s/%s.json", g_dir, tag, name);
    cJSON *j = read_json(p);
    CHECKF(j != NULL, "reference output %s missing", p);
    return j;
}

static void check_decoded(const char *tag, const char *what, const mp_whisper_decoded *d, const cJSON *ref) {
    int32_t want[512];
    int nw = json_ints(cJSON_GetObjectItem(ref, "tokens"), want, 512);
    int same = nw == d->n_tokens, k = 0;
    for (int i = 0; same && i < nw; i++) same = want[i] == d->tokens[i];
    while (k < nw && k < d->n_tokens && want[k] == d->tokens[k]) k++;
    CHECKF(same, "%s %s: %d tokens vs reference %d (first difference at %d)", tag, what, d->n_tokens, nw, k);
    if (!same) {
        fprintf(stderr, "   ours:");
        for (int i = 0; i < d->n_tokens && i < 40; i++) fprintf(stderr, " %d", d->tokens[i]);
        fprintf(stderr, "\n   ref: ");
        for (int i = 0; i < nw && i < 40; i++) fprintf(stderr, " %d", want[i]);
        fprintf(stderr, "\n");
        return;
    }
    const cJSON *lps = cJSON_GetObjectItem(ref, "logprobs");
    double worst = 0;
    for (int i = 0; i < nw; i++) {
        double r = cJSON_GetArrayItem(lps, i)->valuedouble;
        if (fabs(r - d->logprobs[i]) > worst) worst = fabs(r - d->logprobs[i]);
    }
    CHECKF(worst < 2e-3, "%s %s: token log-probabilities differ by %g", tag, what, worst);
    CHECK_NEAR(d->avg_logprob, cJSON_GetObjectItem(ref, "avg_logprob")->valuedouble, 1e-4);
    CHECK_NEAR(d->no_speech_prob, cJSON_GetObjectItem(ref, "no_speech_prob")->valuedouble, 1e-4);
    CHECK_NEAR(d->compression_ratio, cJSON_GetObjectItem(ref, "compression_ratio")->valuedouble, 1e-5);
    CHECKF(!strcmp(d->text, cJSON_GetObjectItem(ref, "text")->valuestring), "%s %s: text differs", tag, what);
}

/* Runs every comparison for one model file. tag: "en" / "ml" / "hf". */
/* mode: 0 everything, 1 no long-form / tokenizer cases, 2 quantized weights (mel, encoder and logits within
 * quantization error only) */
static void run_model(const char *tag, const char *model, const char *filters_from, const char *wav, const float *samples,
                      int64_t n_samples, int multilingual, int mode) {
    const int full = mode == 0, approx = mode == 2;
    fprintf(stderr, "== %s: %s\n", tag, model);
    side s;
    if (side_open(&s, model, samples, n_samples)) {
        CHECK(0);
        return;
    }
    const int32_t *jfk = multilingual ? JFK_ML : JFK_EN;
    const mp_whisper_specials *sp = &s.m.sp;
    /* teacher-forced tokens: SOT sequence + the JFK sentence */
    int32_t forced[40];
    int nf = 0;
    forced[nf++] = sp->sot;
    if (multilingual) forced[nf++] = sp->sot + 1, forced[nf++] = sp->transcribe;
    forced[nf++] = sp->timestamp_begin;
    for (int i = 0; i < 25; i++) forced[nf++] = jfk[i];

    /* decode cases */
    dcase dc[16];
    int nd = 0;
    mp_whisper_decode_opts base = mp_whisper_decode_default_opts();
    base.language = 0;
#define DC(nm, js, ...) do { dc[nd].name = nm; dc[nd].json_opts = js; dc[nd].o = base; __VA_ARGS__; nd++; } while (0)
    DC("greedy_ts", "{}", (void)0);
    DC("greedy_nots", "{\"without_timestamps\": true, \"sample_len\": 64}", dc[nd].o.without_timestamps = 1,
       dc[nd].o.sample_len = 64);
    DC("greedy_short", "{\"sample_len\": 12, \"suppress_tokens\": \"\"}", dc[nd].o.sample_len = 12, dc[nd].o.suppress_nst = 0);
    DC("beam_ts", "{\"beam_size\": 5, \"sample_len\": 96}", dc[nd].o.beam_size = 5, dc[nd].o.sample_len = 96);
    DC("beam_nots", "{\"beam_size\": 5, \"without_timestamps\": true, \"sample_len\": 48}", dc[nd].o.beam_size = 5,
       dc[nd].o.without_timestamps = 1, dc[nd].o.sample_len = 48);
    DC("beam_lp", "{\"beam_size\": 3, \"length_penalty\": 0.6, \"patience\": 2.0, \"sample_len\": 64}",
       dc[nd].o.beam_size = 3, dc[nd].o.length_penalty = 0.6f, dc[nd].o.patience = 2.0f, dc[nd].o.sample_len = 64);
    char prompt_js[256];
    snprintf(prompt_js, sizeof prompt_js,
             "{\"prompt\": [%d, %d, %d, %d, %d, %d, %d], \"max_initial_timestamp\": 0.5, \"sample_len\": 64}",
             jfk[0], jfk[1], jfk[2], jfk[3], jfk[4], jfk[5], jfk[6]);
    DC("prompt", prompt_js, dc[nd].o.prompt = jfk, dc[nd].o.n_prompt = 7, dc[nd].o.max_initial_ts = 0.5f,
       dc[nd].o.sample_len = 64);
    if (multilingual) {
        DC("translate_de", "{\"language\": \"de\", \"task\": \"translate\", \"beam_size\": 2, \"sample_len\": 64}",
           dc[nd].o.language = 2, dc[nd].o.translate = 1, dc[nd].o.beam_size = 2, dc[nd].o.sample_len = 64);
        DC("prompt_ml", "{\"prompt\": [400, 370, 452, 7177, 6280, 11, 1029], \"language\": \"fr\", \"sample_len\": 64}",
           dc[nd].o.prompt = JFK_ML, dc[nd].o.n_prompt = 7, dc[nd].o.language = 6, dc[nd].o.sample_len = 64);
    }
#undef DC
    /* filter prefixes (sampled tokens after the SOT sequence) */
    const int tb = sp->timestamp_begin;
    char prefixes[1024];
    snprintf(prefixes, sizeof prefixes,
             "\"prefixes\": [[], [%d], [%d, %d], [%d, %d, %d], [%d, %d, %d, %d], [%d, %d, %d, %d, %d], [%d, %d, %d, %d]]",
             tb + 3, tb, jfk[0], tb + 3, jfk[0], tb + 40, tb + 3, jfk[0], tb + 40, tb + 40, tb, jfk[0], jfk[1], tb + 1490,
             tb + 1499, tb + 7, jfk[2], jfk[3], jfk[4]);

    /* the reference run */
    char out[1200], jpath[1300], cmd[4096];
    snprintf(out, sizeof out, "%s/out_%s", g_dir, tag);
    mkdir(out, 0755);
    cJSON *spec = cJSON_CreateObject(), *cases = cJSON_CreateArray();
    cJSON_AddStringToObject(spec, "model", model);
    cJSON_AddStringToObject(spec, "audio", wav);
    cJSON_AddStringToObject(spec, "out", out);
    if (filters_from) cJSON_AddStringToObject(spec, "filters", filters_from);
    cJSON_AddItemToObject(spec, "cases", cases);
    add_case(cases, "mel", "mel", NULL);
    add_case(cases, "enc", "encode", NULL);
    char tk[512];
    int k = snprintf(tk, sizeof tk, "\"tokens\": [");
    for (int i = 0; i < nf; i++) k += snprintf(tk + k, sizeof tk - (size_t)k, "%s%d", i ? ", " : "", forced[i]);
    snprintf(tk + k, sizeof tk - (size_t)k, "]");
    add_case(cases, "logits", "logits", tk);
    char o[600];
    if (approx) nd = 0;
    for (int i = 0; i < nd; i++) {
        snprintf(o, sizeof o, "\"opts\": %s", dc[i].json_opts);
        add_case(cases, dc[i].name, "decode", o);
    }
    char pf2[1100];
    snprintf(pf2, sizeof pf2, "%s, \"opts\": {\"suppress_tokens\": \"\", \"suppress_blank\": false}", prefixes);
    if (!approx) {
        add_case(cases, "filters_ts", "filters", prefixes);
        add_case(cases, "filters_plain", "filters", pf2);
    }
    if (full) {
        add_case(cases, "tr_greedy", "transcribe", "\"opts\": {\"temperature\": [0.0], \"sample_len\": 96}");
        add_case(cases, "tr_beam", "transcribe",
                 "\"opts\": {\"temperature\": [0.0], \"beam_size\": 5, \"sample_len\": 48, "
                 "\"initial_prompt\": \"And so my fellow Americans, ask not\"}");
        add_case(cases, "tr_words", "transcribe",
                 "\"opts\": {\"temperature\": [0.0], \"word_timestamps\": true, \"condition_on_previous_text\": false, "
                 "\"sample_len\": 32}");
        add_case(cases, "tr_nots", "transcribe",
                 "\"opts\": {\"temperature\": [0.0], \"without_timestamps\": true, \"sample_len\": 48}");
        if (multilingual)
            add_case(cases, "tr_translate", "transcribe",
                     "\"opts\": {\"temperature\": [0.0], \"language\": \"de\", \"task\": \"translate\", \"sample_len\": 48}");
        add_case(cases, "tokenize", "tokenize",
                 "\"texts\": [\" And so my fellow Americans, ask not what your country can do for you.\", "
                 "\"it's 2024: we'll   see\\n\\nnew  lines\\tand  tabs  \", \"caf\\u00e9 na\\u00efve \\u00fcber 123,456.78\", "
                 "\" \\u4f60\\u597d\\u4e16\\u754c \\u3053\\u3093\\u306b\\u3061\\u306f\", \"(\\\"quoted\\\") [x] {y} <z> --- ...\", "
                 "\" \\u266a\\u266a la la \\u266a\"]");
        add_case(cases, "nst", "nst", NULL);
    }
    if (multilingual && !approx) add_case(cases, "detect", "detect", NULL);
    char *js = cJSON_Print(spec);
    cJSON_Delete(spec);
    snprintf(jpath, sizeof jpath, "%s/cases_%s.json", g_dir, tag);
    FILE *f = fopen(jpath, "w");
    fputs(js, f);
    fclose(f);
    free(js);
    snprintf(cmd, sizeof cmd, "\"%s\" \"%s/tests/ref/whisper_ref.py\" \"%s\"", MP_PYTHON, MP_SOURCE_DIR, jpath);
    int rc = system(cmd);
    CHECKF(rc == 0, "%s: reference failed (%d)", tag, rc);
    if (rc) {
        side_close(&s);
        return;
    }
    char p[1400];
    long n;
    /* mel */
    snprintf(p, sizeof p, "%s/mel.f32", out);
    float *rm = read_f32(p, &n);
    CHECK(rm && n == (long)s.m.hp.n_mels * s.n_frames);
    if (rm && n == (long)s.m.hp.n_mels * s.n_frames) CHECK_ARRAY_NEAR(s.mel, rm, n, 2e-4);
    free(rm);
    /* encoder */
    mp_whisper_cross cross;
    int64_t seek0 = 0;
    if (encode_windows(&s, &seek0, 1, &cross)) {
        CHECK(0);
        side_close(&s);
        return;
    }
    const int64_t D = s.m.hp.n_audio_state, T = s.m.hp.n_audio_ctx, V = s.m.hp.n_vocab;
    snprintf(p, sizeof p, "%s/enc.f32", out);
    float *re = read_f32(p, &n);
    CHECK(re && n == T * D);
    if (re && n == T * D) CHECK_ARRAY_NEAR(s.c.enc.x, re, n, approx ? 0.1 : 2e-3);
    free(re);
    /* logits: the first 3 tokens at once, then one at a time through the cache */
    {
        float *lg = malloc(sizeof(float) * (size_t)nf * V);
        mp_whisper_kv kv;
        mp_error err;
        mp_whisper_kv_init(&kv, &s.m, &s.ex, 1, &err);
        int rows[3] = {0, 1, 2};
        mp_whisper_dec_seq q = {0, 3, forced, &cross, 0, 3, rows, lg, NULL};
        int ok = mp_whisper_decode(&s.m, &s.c.dec, &kv, &s.ex, &q, 1, &err) == 0;
        for (int i = 3; ok && i < nf; i++) {
            mp_whisper_dec_seq q1 = {0, 1, forced + i, &cross, 0, 1, NULL, lg + (int64_t)i * V, NULL};
            ok = mp_whisper_decode(&s.m, &s.c.dec, &kv, &s.ex, &q1, 1, &err) == 0;
        }
        CHECKF(ok, "decode: %s", err.msg);
        snprintf(p, sizeof p, "%s/logits.f32", out);
        float *rl = read_f32(p, &n);
        CHECK(rl && n == nf * V);
        if (rl && n == nf * V) CHECK_ARRAY_NEAR(lg, rl, n, approx ? 0.3 : 5e-3);
        free(rl);
        free(lg);
        mp_whisper_kv_free(&kv, &s.ex);
    }
    /* logit filters on the reference's raw logits */
    for (int v = 0; v < 2 && !approx; v++) {
        const char *nm = v ? "filters_plain" : "filters_ts";
        cJSON *r = load_out(tag, nm);
        snprintf(p, sizeof p, "%s/%s.f32", out, nm);
        float *raw = read_f32(p, &n);
        cJSON *masks = r ? cJSON_GetObjectItem(r, "masks") : NULL;
        const int np = masks ? cJSON_GetArraySize(masks) : 0;
        CHECK(raw && np == 7 && n == (long)np * V);
        int32_t pre[8][6] = {{0}, {tb + 3}, {tb, jfk[0]}, {tb + 3, jfk[0], tb + 40}, {tb + 3, jfk[0], tb + 40, tb + 40},
                             {tb, jfk[0], jfk[1], tb + 1490, tb + 1499}, {tb + 7, jfk[2], jfk[3], jfk[4]}};
        const int npre[7] = {0, 1, 2, 3, 4, 5, 4};
        mp_whisper_decode_opts fo = base;
        if (v) fo.suppress_nst = 0, fo.suppress_blank = 0;
        for (int q = 0; raw && q < np && n == (long)np * V; q++) {
            float *x = raw + (int64_t)q * V;
            mp_whisper_apply_filters(&s.c, &fo, pre[q], npre[q], x);
            int32_t *want = malloc(sizeof(int32_t) * (size_t)V);
            int nw = json_ints(cJSON_GetArrayItem(masks, q), want, (int)V), ng = 0, same = 1;
            for (int64_t i = 0; i < V; i++)
                if (isinf(x[i])) {
                    if (ng >= nw || want[ng] != i) same = 0;
                    ng++;
                }
            CHECKF(same && ng == nw, "%s %s prefix %d: %d suppressed vs reference %d", tag, nm, q, ng, nw);
            free(want);
        }
        free(raw);
        cJSON_Delete(r);
    }
    /* single-window decoding */
    for (int i = 0; i < nd; i++) {
        mp_whisper_decoded d;
        mp_error err;
        const mp_whisper_cross *cp = &cross;
        int w0 = 0;
        int rc2 = mp_whisper_decode_windows(&s.c, &cp, &w0, &dc[i].o, 1, &d, &err);
        CHECKF(rc2 == 0, "%s: %s", dc[i].name, err.msg);
        cJSON *r = load_out(tag, dc[i].name);
        if (rc2 == 0 && r) check_decoded(tag, dc[i].name, &d, r);
        if (rc2 == 0) fprintf(stderr, "  %-14s %3d tokens, avg logprob %.3f: %.60s\n", dc[i].name, d.n_tokens, d.avg_logprob, d.text);
        cJSON_Delete(r);
        mp_whisper_decoded_free(&d);
    }
    /* batch invariance: greedy and beam of 3 windows together == one at a time */
    if (nd >= 4) {
        mp_whisper_cross c3;
        int64_t seeks[3] = {0, 1000, 2600};
        if (encode_windows(&s, seeks, 3, &c3) == 0) {
            const mp_whisper_cross *cps[3] = {&c3, &c3, &c3};
            int wins[3] = {0, 1, 2};
            mp_whisper_decode_opts os[3] = {dc[0].o, dc[3].o, dc[1].o};
            mp_whisper_decoded all[3], one;
            mp_error err;
            CHECK(mp_whisper_decode_windows(&s.c, cps, wins, os, 3, all, &err) == 0);
            for (int i = 0; i < 3; i++) {
                CHECK(mp_whisper_decode_windows(&s.c, cps, wins + i, os + i, 1, &one, &err) == 0);
                int same = one.n_tokens == all[i].n_tokens;
                for (int t = 0; same && t < one.n_tokens; t++) same = one.tokens[t] == all[i].tokens[t];
                CHECKF(same && one.avg_logprob == all[i].avg_logprob, "%s: window %d alone differs from the batch", tag, i);
                mp_whisper_decoded_free(&one);
                mp_whisper_decoded_free(&all[i]);
            }
            mp_whisper_cross_free(&c3, &s.ex);
        }
    }
    /* language detection */
    if (multilingual && !approx) {
        float probs[MP_WHISPER_N_LANG];
        mp_error err;
        /* detection runs on the first 30 s of the padded mel (not zero-filled) */
        mp_whisper_cross cd;
        float *mel = malloc(sizeof(float) * (size_t)s.m.hp.n_mels * 3000);
        mp_mel_segment(s.mel, s.m.hp.n_mels, s.n_frames, 0, 3000, mel);
        int ok = mp_whisper_encode(&s.m, &s.c.enc, &s.ex, mel, 1, NULL, &err) == 0 &&
                 mp_whisper_cross_init(&cd, &s.m, &s.ex, 1, &err) == 0 &&
                 mp_whisper_cross_compute(&s.m, &s.ex, s.c.enc.x, 1, &cd, 0, &err) == 0 &&
                 mp_whisper_detect_language(&s.c, &cd, 0, 1, probs, &err) == 0;
        free(mel);
        CHECKF(ok, "detect: %s", err.msg);
        cJSON *r = load_out(tag, "detect");
        const cJSON *rp = r ? cJSON_GetObjectItem(r, "probs") : NULL;
        double worst = 0;
        for (int i = 0; rp && i < cJSON_GetArraySize(rp); i++)
            worst = fmax(worst, fabs(probs[i] - cJSON_GetArrayItem(rp, i)->valuedouble));
        CHECKF(ok && rp && worst < 1e-4, "%s: language probabilities differ by %g", tag, worst);
        cJSON_Delete(r);
        mp_whisper_cross_free(&cd, &s.ex);
    }
    mp_whisper_cross_free(&cross, &s.ex);
    if (full) {
        /* long-form transcription */
        struct { const char *name; int beam, words, cond, nots, len; const char *prompt; const char *lang; } tc[] = {
            {"tr_greedy", 0, 0, 1, 0, 96, NULL, NULL},
            {"tr_beam", 5, 0, 1, 0, 48, "And so my fellow Americans, ask not", NULL},
            {"tr_words", 0, 1, 0, 0, 32, NULL, NULL},
            {"tr_nots", 0, 0, 1, 1, 48, NULL, NULL},
            {"tr_translate", 0, 0, 1, 0, 48, NULL, "de"}, /* multilingual only */
        };
        for (size_t t = 0; t < sizeof tc / sizeof tc[0]; t++) {
            if (tc[t].lang && !multilingual) continue;
            mp_whisper_params p0 = mp_whisper_default_params();
            p0.language = tc[t].lang ? mp_whisper_lang_id(tc[t].lang) : multilingual ? -1 : 0;
            p0.translate = tc[t].lang != NULL;
            p0.beam_size = tc[t].beam;
            p0.temperature_inc = 0;
            p0.word_timestamps = tc[t].words;
            p0.condition_on_prev = tc[t].cond;
            p0.no_timestamps = tc[t].nots;
            p0.prompt = tc[t].prompt;
            p0.sample_len = tc[t].len;
            mp_whisper_result res;
            mp_error err;
            int rc2 = mp_whisper_transcribe(&s.c, samples, n_samples, &p0, &res, &err);
            CHECKF(rc2 == 0, "%s: %s", tc[t].name, err.msg);
            cJSON *r = load_out(tag, tc[t].name);
            const cJSON *segs = r ? cJSON_GetObjectItem(r, "segments") : NULL;
            const int nr = segs ? cJSON_GetArraySize(segs) : -1;
            fprintf(stderr, "  %-10s %d segments (reference %d), %d windows (reference %d)\n", tc[t].name, res.n_segs, nr,
                    res.n_windows, r ? cJSON_GetObjectItem(r, "windows")->valueint : -1);
            CHECKF(rc2 == 0 && nr == res.n_segs, "%s %s: %d segments vs reference %d", tag, tc[t].name, res.n_segs, nr);
            for (int i = 0; rc2 == 0 && i < res.n_segs && i < nr; i++) {
                const cJSON *rs = cJSON_GetArrayItem(segs, i);
                const mp_whisper_segment *sg = &res.segs[i];
                int32_t want[512];
                int nw = json_ints(cJSON_GetObjectItem(rs, "tokens"), want, 512), same = nw == sg->n_tokens;
                for (int q = 0; same && q < nw; q++) same = want[q] == sg->tokens[q].id;
                CHECKF(same, "%s %s segment %d: tokens differ", tag, tc[t].name, i);
                CHECKF(fabs(sg->start - cJSON_GetObjectItem(rs, "start")->valuedouble) < 1e-6 &&
                           fabs(sg->end - cJSON_GetObjectItem(rs, "end")->valuedouble) < 1e-6,
                       "%s %s segment %d: [%.3f, %.3f] vs [%.3f, %.3f]", tag, tc[t].name, i, sg->start, sg->end,
                       cJSON_GetObjectItem(rs, "start")->valuedouble, cJSON_GetObjectItem(rs, "end")->valuedouble);
                CHECKF(!strcmp(sg->text, cJSON_GetObjectItem(rs, "text")->valuestring), "%s %s segment %d: text", tag,
                       tc[t].name, i);
                const cJSON *ws = cJSON_GetObjectItem(rs, "words");
                const int nws = cJSON_GetArraySize(ws);
                CHECKF(nws == sg->n_words, "%s %s segment %d: %d words vs %d", tag, tc[t].name, i, sg->n_words, nws);
                for (int q = 0; q < nws && q < sg->n_words; q++) {
                    const cJSON *w = cJSON_GetArrayItem(ws, q);
                    CHECKF(!strcmp(sg->words[q].text, cJSON_GetObjectItem(w, "word")->valuestring) &&
                               fabs(sg->words[q].start - cJSON_GetObjectItem(w, "start")->valuedouble) < 1e-6 &&
                               fabs(sg->words[q].end - cJSON_GetObjectItem(w, "end")->valuedouble) < 1e-6 &&
                               fabs(sg->words[q].p - cJSON_GetObjectItem(w, "probability")->valuedouble) < 1e-3,
                           "%s %s segment %d word %d: '%s' [%.2f %.2f] vs '%s' [%.2f %.2f]", tag, tc[t].name, i, q,
                           sg->words[q].text, sg->words[q].start, sg->words[q].end,
                           cJSON_GetObjectItem(w, "word")->valuestring, cJSON_GetObjectItem(w, "start")->valuedouble,
                           cJSON_GetObjectItem(w, "end")->valuedouble);
                }
            }
            if (r && rc2 == 0) {
                CHECKF(!strcmp(res.text, cJSON_GetObjectItem(r, "text")->valuestring), "%s %s: full text", tag, tc[t].name);
                const char *lang = cJSON_GetObjectItem(r, "language")->valuestring;
                CHECKF(!strcmp(mp_whisper_lang_code(res.language), lang), "%s %s: language %s vs %s", tag, tc[t].name,
                       mp_whisper_lang_code(res.language), lang);
            }
            cJSON_Delete(r);
            if (rc2 == 0) mp_whisper_result_free(&res);
        }
        /* temperature fallback: a compression-ratio threshold no text meets sends every window through all
         * temperatures 0, 0.2, .., 1.0 (openai keeps the last result); sampling follows the seed; thresholds
         * never met give the result of decoding without fallback */
        {
            mp_whisper_params pf = mp_whisper_default_params();
            pf.language = multilingual ? -1 : 0;
            pf.beam_size = 0;
            pf.best_of = 2;
            pf.sample_len = 24;
            pf.compression_ratio_thold = 0.01f;
            pf.logprob_thold = NAN;
            pf.no_speech_thold = NAN;
            mp_whisper_result r1, r2, r3;
            mp_error err;
            int ok = mp_whisper_transcribe(&s.c, samples, n_samples, &pf, &r1, &err) == 0;
            CHECKF(ok, "fallback: %s", err.msg);
            ok = ok && mp_whisper_transcribe(&s.c, samples, n_samples, &pf, &r2, &err) == 0;
            if (ok) {
                CHECKF(r1.n_fallbacks == 5 * r1.n_windows && r1.n_windows >= 2, "%s: %d fallbacks over %d windows", tag,
                       r1.n_fallbacks, r1.n_windows);
                for (int i = 0; i < r1.n_segs; i++) CHECK(r1.segs[i].temperature == 1.0f);
                CHECKF(!strcmp(r1.text, r2.text) && r1.n_segs == r2.n_segs, "%s: sampling does not follow the seed", tag);
                mp_whisper_result_free(&r2);
            }
            if (ok) mp_whisper_result_free(&r1);
            pf.compression_ratio_thold = 1e9f;
            mp_whisper_result r4;
            mp_whisper_params p4 = pf;
            p4.temperature_inc = 0;
            if (mp_whisper_transcribe(&s.c, samples, n_samples, &pf, &r3, &err) == 0 &&
                mp_whisper_transcribe(&s.c, samples, n_samples, &p4, &r4, &err) == 0) {
                CHECK_EQ_INT(r3.n_fallbacks, 0);
                CHECKF(!strcmp(r3.text, r4.text), "%s: thresholds never met: the text differs from no fallback", tag);
                for (int i = 0; i < r3.n_segs; i++) CHECK(r3.segs[i].temperature == 0.0f);
                mp_whisper_result_free(&r3);
                mp_whisper_result_free(&r4);
            } else {
                CHECKF(0, "no fallback: %s", err.msg);
            }
        }
        /* tokenizer and non-speech tokens */
        cJSON *r = load_out(tag, "tokenize");
        const char *texts[] = {" And so my fellow Americans, ask not what your country can do for you.",
                               "it's 2024: we'll   see\n\nnew  lines\tand  tabs  ",
                               "caf\xc3\xa9 na\xc3\xafve \xc3\xbc" "ber 123,456.78",
                               " \xe4\xbd\xa0\xe5\xa5\xbd\xe4\xb8\x96\xe7\x95\x8c \xe3\x81\x93\xe3\x82\x93\xe3\x81\xab\xe3\x81\xa1\xe3\x81\xaf",
                               "(\"quoted\") [x] {y} <z> --- ...", " \xe2\x99\xaa\xe2\x99\xaa la la \xe2\x99\xaa"};
        for (int i = 0; r && i < 6; i++) {
            int32_t ids[256], want[256];
            int ng = mp_whisper_tokenize(&s.m, texts[i], ids, 256);
            int nw = json_ints(cJSON_GetArrayItem(cJSON_GetObjectItem(r, "ids"), i), want, 256), same = ng == nw;
            for (int q = 0; same && q < nw; q++) same = ids[q] == want[q];
            CHECKF(same, "%s: tokenize(\"%s\"): %d ids vs reference %d", tag, texts[i], ng, nw);
        }
        cJSON_Delete(r);
        r = load_out(tag, "nst");
        if (r) {
            int32_t want[256];
            int nw = json_ints(cJSON_GetObjectItem(r, "ids"), want, 256), same = nw == s.c.n_nst;
            for (int q = 0; same && q < nw; q++) same = want[q] == s.c.nst[q];
            CHECKF(same, "%s: %d non-speech tokens vs reference %d", tag, s.c.n_nst, nw);
            CHECK_EQ_INT(s.c.space_id, cJSON_GetArrayItem(cJSON_GetObjectItem(r, "space"), 0)->valueint);
        }
        cJSON_Delete(r);
    }
    side_close(&s);
}

int main(void) {
    const char *en_hdr = mp_fixture("whisper/for-tests-ggml-tiny.en.bin");
    const char *ml_hdr = mp_fixture("whisper/for-tests-ggml-tiny.bin");
    const char *tokjson = mp_fixture("hf/openai--whisper-base/tokenizer.json");
    if (access(en_hdr, R_OK) || access(ml_hdr, R_OK) || access(mp_fixture("audio/jfk.wav"), R_OK)) {
        fprintf(stderr, "fixtures absent\n");
        return MP_TEST_SKIP;
    }
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "\"%s\" -c 'import torch, numpy' 2>/dev/null", MP_PYTHON);
    if (system(cmd) != 0) {
        fprintf(stderr, "python3 with torch is absent: skipped\n");
        return MP_TEST_SKIP;
    }
    snprintf(g_dir, sizeof g_dir, "%s/whisper_ref_%d", MP_BINARY_DIR, (int)getpid());
    mkdir(g_dir, 0755);
    char en[1100], ml[1100], q8[1100], hf[1100], v3[1100], wav[1100], p[1200];
    snprintf(en, sizeof en, "%s/en.bin", g_dir);
    snprintf(ml, sizeof ml, "%s/ml.bin", g_dir);
    snprintf(q8, sizeof q8, "%s/q8.bin", g_dir);
    snprintf(hf, sizeof hf, "%s/hf", g_dir);
    snprintf(v3, sizeof v3, "%s/v3.bin", g_dir);
    snprintf(wav, sizeof wav, "%s/long.wav", g_dir);
    mkdir(hf, 0755);
    mp_error err;
    mp_whisper_random_spec se = spec_for(en_hdr, MP_F16, 1), sm = spec_for(ml_hdr, MP_F16, 2);
    mp_whisper_random_spec sq = spec_for(en_hdr, MP_Q8_0, 1), sh = spec_for(ml_hdr, MP_F32, 2);
    CHECK(mp_whisper_write_random(en, &se, &err) == 0);
    CHECK(mp_whisper_write_random(ml, &sm, &err) == 0);
    CHECK(mp_whisper_write_random(q8, &sq, &err) == 0);
    CHECK(mp_whisper_write_random_hf(hf, &sh, &err) == 0);
    /* large-v3 layout: 128 mel bins, 51866 tokens (100 languages, <|yue|>: every special after it moves by one) */
    mp_whisper_random_spec s3 = spec_for(ml_hdr, MP_F16, 3);
    s3.n_mels = 128;
    s3.n_vocab = 51866;
    CHECK(mp_whisper_write_random(v3, &s3, &err) == 0);
    snprintf(p, sizeof p, "%s/tokenizer.json", hf);
    CHECK(symlink(tokjson, p) == 0);
    CHECK(write_audio(wav) == 0);
    mp_audio a;
    if (mp_audio_load(wav, 16000, &a, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    run_model("en", en, NULL, wav, a.samples, a.n_samples, 0, 0);
    run_model("ml", ml, NULL, wav, a.samples, a.n_samples, 1, 0);
    if (access(tokjson, R_OK) == 0) run_model("hf", hf, ml_hdr, wav, a.samples, a.n_samples, 1, 1);
    run_model("q8", q8, NULL, wav, a.samples, a.n_samples, 0, 2);
    run_model("v3", v3, NULL, wav, a.samples, a.n_samples, 1, 1);
    mp_audio_free(&a);
    if (!mp_test_failures) {
        snprintf(cmd, sizeof cmd, "rm -rf \"%s\"", g_dir);
        if (system(cmd)) {}
    }
    return mp_test_result("test_whisper_ref");
}
