/* test_ggml_bin.c — the whisper.cpp ggml .bin reader on the real fixture files, on random-weight
 * models written here in the same format, and on damaged copies of both.
 *
 * Expected values come from ../shared/fixtures/whisper/FORMAT.md and EXPECTED.md (whisper.cpp's loader
 * and tests) and the HF preprocessor_config.json of openai/whisper-base (mel filters). */
#include "test.h"

#include "models/ggml_bin.h"

#include <cjson/cJSON.h>
#include <unistd.h>

static int have(const char *p) { return access(p, R_OK) == 0; }

static char *slurp(const char *path, size_t *n) {
    char *b = NULL;
    mp_error e;
    return mp_read_file(path, (size_t)1 << 30, &b, n, &e) == 0 ? b : NULL;
}

static void check_token(const mp_ggml_bin *m, int32_t id, const char *want) {
    uint32_t len = 0;
    const char *t = mp_ggml_bin_token(m, id, &len);
    CHECKF(t && len == strlen(want) && memcmp(t, want, len) == 0, "token %d: '%.*s' want '%s'", id, t ? (int)len : 0,
           t ? t : "", want);
}

static void check_whisper_hparams(const mp_ggml_bin *m, int32_t n_vocab, int32_t state, int32_t heads, int32_t layers) {
    const mp_whisper_hparams *h = &m->whisper;
    CHECK_EQ_INT(m->kind, MP_GGML_BIN_WHISPER);
    CHECK_EQ_INT(h->n_vocab, n_vocab);
    CHECK_EQ_INT(h->n_audio_ctx, 1500);
    CHECK_EQ_INT(h->n_audio_state, state);
    CHECK_EQ_INT(h->n_audio_head, heads);
    CHECK_EQ_INT(h->n_audio_layer, layers);
    CHECK_EQ_INT(h->n_text_ctx, 448);
    CHECK_EQ_INT(h->n_text_state, state);
    CHECK_EQ_INT(h->n_text_head, heads);
    CHECK_EQ_INT(h->n_text_layer, layers);
    CHECK_EQ_INT(h->n_mels, 80);
    CHECK_EQ_INT(h->ftype, 1);
    CHECK_EQ_INT(m->n_mel, 80);
    CHECK_EQ_INT(m->n_fft_bins, 201);
    CHECK_EQ_INT(m->n_vocab_file, 50257);
    CHECK_EQ_INT(m->n_tensors, 0); /* the for-tests files hold no tensors: an empty model */
    int complete = -1;
    mp_error e;
    CHECK(mp_ggml_bin_check_whisper(m, &complete, &e) == 0);
    CHECK_EQ_INT(complete, 0);
}

/* The filterbank of the file equals the one HF ships in preprocessor_config.json (both are OpenAI's
 * librosa slaney filters, stored as float32). */
static void check_filters_vs_hf(const mp_ggml_bin *m) {
    const char *p = mp_fixture("hf/openai--whisper-base/preprocessor_config.json");
    char *txt = slurp(p, NULL);
    if (!txt) { fprintf(stderr, "  (HF preprocessor_config.json absent: filter check skipped)\n"); return; }
    cJSON *j = cJSON_Parse(txt);
    cJSON *mf = cJSON_GetObjectItem(j, "mel_filters");
    CHECK(cJSON_IsArray(mf) && cJSON_GetArraySize(mf) == 80);
    double md = 0;
    int rows = 0, nonzero = 0;
    for (int r = 0; r < 80 && cJSON_IsArray(mf); r++) {
        cJSON *row = cJSON_GetArrayItem(mf, r);
        if (cJSON_GetArraySize(row) != 201) continue;
        rows++;
        for (int c = 0; c < 201; c++) {
            double ref = cJSON_GetArrayItem(row, c)->valuedouble;
            double d = fabs(ref - m->mel_filters[r * 201 + c]);
            if (ref != 0) nonzero++;
            if (d > md) md = d;
        }
    }
    CHECK_EQ_INT(rows, 80);
    CHECK(nonzero > 300);
    CHECKF(md <= 1e-7, "filters vs HF mel_filters: max |diff| %g", md);
    cJSON_Delete(j);
    free(txt);
}

static void test_whisper_fixtures(void) {
    mp_ggml_bin m;
    mp_error e;
    const char *p = mp_fixture("whisper/for-tests-ggml-tiny.en.bin");
    CHECKF(mp_ggml_bin_open(&m, p, &e) == 0, "%s", e.msg);
    if (m.map) {
        check_whisper_hparams(&m, 51864, 384, 6, 4);
        CHECK_STR(mp_whisper_model_type(&m.whisper), "tiny");
        CHECK_EQ_INT(m.size, 586836);
        /* filters sit at byte 56..64376, the vocabulary from 64380 */
        CHECK_EQ_INT(m.tok_off[0], 64384);
        check_token(&m, 0, "!");
        check_token(&m, 843, " And");
        check_token(&m, 13, ".");
        check_token(&m, 50256, "<|endoftext|>");
        CHECK(mp_ggml_bin_token(&m, 50257, NULL) == NULL);
        CHECK(mp_ggml_bin_token(&m, -1, NULL) == NULL);
        mp_whisper_specials s;
        mp_whisper_specials_from_hparams(&m.whisper, &s);
        CHECK_EQ_INT(s.multilingual, 0);
        CHECK_EQ_INT(s.eot, 50256);
        CHECK_EQ_INT(s.sot, 50257);
        CHECK_EQ_INT(s.translate, 50357);
        CHECK_EQ_INT(s.transcribe, 50358);
        CHECK_EQ_INT(s.solm, 50359);
        CHECK_EQ_INT(s.prev, 50360);
        CHECK_EQ_INT(s.nosp, 50361);
        CHECK_EQ_INT(s.no_timestamps, 50362);
        CHECK_EQ_INT(s.timestamp_begin, 50363);
        check_filters_vs_hf(&m);
        mp_ggml_bin_close(&m);
    }

    p = mp_fixture("whisper/for-tests-ggml-tiny.bin");
    CHECKF(mp_ggml_bin_open(&m, p, &e) == 0, "%s", e.msg);
    if (m.map) {
        check_whisper_hparams(&m, 51865, 384, 6, 4);
        CHECK_EQ_INT(m.size, 575451);
        uint32_t len = 99;
        CHECK(mp_ggml_bin_token(&m, 50256, &len) != NULL && len == 0); /* empty string in multilingual files */
        check_token(&m, 400, " And");
        check_token(&m, 1941, " country");
        mp_whisper_specials s;
        mp_whisper_specials_from_hparams(&m.whisper, &s);
        CHECK_EQ_INT(s.multilingual, 1);
        CHECK_EQ_INT(s.num_languages, 99);
        CHECK_EQ_INT(s.eot, 50257);
        CHECK_EQ_INT(s.sot, 50258);
        CHECK_EQ_INT(s.translate, 50358);
        CHECK_EQ_INT(s.transcribe, 50359);
        CHECK_EQ_INT(s.solm, 50360);
        CHECK_EQ_INT(s.prev, 50361);
        CHECK_EQ_INT(s.nosp, 50362);
        CHECK_EQ_INT(s.no_timestamps, 50363);
        CHECK_EQ_INT(s.timestamp_begin, 50364);
        mp_ggml_bin_close(&m);
    }
    /* large-v3 vocabulary rule */
    mp_whisper_hparams v3 = {.n_vocab = 51866, .n_audio_layer = 32};
    mp_whisper_specials s3;
    mp_whisper_specials_from_hparams(&v3, &s3);
    CHECK_EQ_INT(s3.num_languages, 100);
    CHECK_EQ_INT(s3.translate, 50359);
    CHECK_EQ_INT(s3.timestamp_begin, 50365);
    CHECK_STR(mp_whisper_model_type(&v3), "large v3");

    p = mp_fixture("whisper/for-tests-ggml-base.en.bin");
    CHECKF(mp_ggml_bin_open(&m, p, &e) == 0, "%s", e.msg);
    if (m.map) {
        check_whisper_hparams(&m, 51864, 512, 8, 6);
        CHECK_STR(mp_whisper_model_type(&m.whisper), "base");
        check_token(&m, 843, " And");
        mp_ggml_bin_close(&m);
    }
}

static void test_silero_fixture(void) {
    mp_ggml_bin m;
    mp_error e;
    const char *p = mp_fixture("whisper/for-tests-silero-v6.2.0-ggml.bin");
    CHECKF(mp_ggml_bin_open(&m, p, &e) == 0, "%s", e.msg);
    if (!m.map) return;
    const mp_silero_hparams *h = &m.silero;
    CHECK_EQ_INT(m.kind, MP_GGML_BIN_SILERO);
    CHECK_STR(h->type, "silero-16k");
    CHECK_EQ_INT(h->version[0], 6);
    CHECK_EQ_INT(h->version[1], 2);
    CHECK_EQ_INT(h->version[2], 0);
    CHECK_EQ_INT(h->n_window, 512);
    CHECK_EQ_INT(h->n_context, 64);
    CHECK_EQ_INT(h->n_encoder_layers, 4);
    const int32_t io[4][3] = {{129, 128, 3}, {128, 64, 3}, {64, 64, 3}, {64, 128, 3}};
    for (int i = 0; i < 4; i++) {
        CHECK_EQ_INT(h->enc_in[i], io[i][0]);
        CHECK_EQ_INT(h->enc_out[i], io[i][1]);
        CHECK_EQ_INT(h->enc_kernel[i], io[i][2]);
    }
    CHECK_EQ_INT(h->lstm_input, 128);
    CHECK_EQ_INT(h->lstm_hidden, 128);
    CHECK_EQ_INT(h->final_conv_in, 128);
    CHECK_EQ_INT(h->final_conv_out, 1);
    CHECK_EQ_INT(m.n_tensors, 15);
    struct { const char *name; int nd; int64_t ne[3]; int dt; } want[] = {
        {"_model.encoder.0.reparam_conv.weight", 3, {3, 129, 128}, MP_F16},
        {"_model.encoder.0.reparam_conv.bias", 1, {128, 1, 1}, MP_F32},
        {"_model.encoder.1.reparam_conv.weight", 3, {3, 128, 64}, MP_F16},
        {"_model.encoder.1.reparam_conv.bias", 1, {64, 1, 1}, MP_F32},
        {"_model.encoder.2.reparam_conv.weight", 3, {3, 64, 64}, MP_F16},
        {"_model.encoder.2.reparam_conv.bias", 1, {64, 1, 1}, MP_F32},
        {"_model.encoder.3.reparam_conv.weight", 3, {3, 64, 128}, MP_F16},
        {"_model.encoder.3.reparam_conv.bias", 1, {128, 1, 1}, MP_F32},
        {"_model.decoder.rnn.weight_ih", 2, {128, 512, 1}, MP_F32},
        {"_model.decoder.rnn.weight_hh", 2, {128, 512, 1}, MP_F32},
        {"_model.decoder.rnn.bias_ih", 1, {512, 1, 1}, MP_F32},
        {"_model.decoder.rnn.bias_hh", 1, {512, 1, 1}, MP_F32},
        {"_model.decoder.decoder.2.weight", 1, {128, 1, 1}, MP_F16},
        {"_model.decoder.decoder.2.bias", 1, {1, 1, 1}, MP_F32}, /* stored with n_dims 0 */
        {"_model.stft.forward_basis_buffer", 3, {256, 1, 258}, MP_F16},
    };
    uint64_t end = 0, first = UINT64_MAX;
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const mp_ggml_bin_tensor *t = mp_ggml_bin_find(&m, want[i].name);
        CHECKF(t != NULL, "missing %s", want[i].name);
        if (!t) continue;
        CHECK_EQ_INT(t->t.dtype, want[i].dt);
        CHECK_EQ_INT(t->t.ndim, want[i].nd);
        for (int d = 0; d < 3; d++) CHECK_EQ_INT(t->t.ne[d], want[i].ne[d]);
        /* data equals the file bytes and is aligned for its type */
        CHECK(memcmp(t->t.data, m.map + t->offset, (size_t)t->nbytes) == 0);
        CHECK((uintptr_t)t->t.data % (t->t.dtype == MP_F32 ? 4 : 2) == 0);
        if (t->offset + t->nbytes > end) end = t->offset + t->nbytes;
        if (t->offset < first) first = t->offset;
    }
    CHECK_EQ_INT(first, 166);  /* header is 106 bytes, then the first record's 60 bytes of header + name */
    CHECK_EQ_INT(end, 885098); /* the last tensor ends exactly at EOF */
    const mp_ggml_bin_tensor *b = mp_ggml_bin_find(&m, "_model.decoder.decoder.2.bias");
    CHECK(b && b->t.ndim == 1 && b->nbytes == 4);
    CHECK(mp_ggml_bin_find(&m, "nope") == NULL);
    mp_ggml_bin_close(&m);
}

static void test_parakeet_fixtures(void) {
    mp_ggml_bin m;
    mp_error e;
    const char *p = mp_fixture("whisper/for-tests-ggml-parakeet-tdt.bin");
    CHECKF(mp_ggml_bin_open(&m, p, &e) == 0, "%s", e.msg);
    if (m.map) {
        const mp_parakeet_hparams *h = &m.parakeet;
        CHECK_EQ_INT(m.kind, MP_GGML_BIN_PARAKEET);
        const int32_t want[15] = {10, 3200, 8, 2, 1, 16, 0, 64, 8, 4, 3, 8, 1, 2, 5};
        const int32_t got[15] = {h->n_vocab, h->n_audio_ctx, h->n_audio_state, h->n_audio_head, h->n_audio_layer,
                                 h->n_mels, h->ftype, h->n_fft, h->subsampling_factor, h->n_subsampling_channels,
                                 h->n_conv_kernel, h->n_pred_dim, h->n_pred_layers, h->n_tdt_durations,
                                 h->n_max_tokens};
        for (int i = 0; i < 15; i++) CHECK_EQ_INT(got[i], want[i]);
        CHECK_EQ_INT(m.n_mel, 16);
        CHECK_EQ_INT(m.n_fft_bins, 33);
        CHECK_EQ_INT(h->n_window, 64);
        CHECK_EQ_INT(h->tdt_durations[0], 0);
        CHECK_EQ_INT(h->tdt_durations[1], 1);
        CHECK_EQ_INT(m.n_vocab_file, 10);
        check_token(&m, 0, "<unk>");
        check_token(&m, 2, "</s>");
        check_token(&m, 9, "g");
        CHECK_EQ_INT(m.n_tensors, 51);
        const mp_ggml_bin_tensor *t = mp_ggml_bin_find(&m, "joint.joint_net.2.weight");
        CHECK(t && t->t.ne[0] == 8 && t->t.ne[1] == 13 && t->t.dtype == MP_F32);
        t = mp_ggml_bin_find(&m, "encoder.pre_encode.conv.0.weight");
        CHECK(t && t->t.ndim == 4 && t->t.ne[3] == 4);
        mp_ggml_bin_close(&m);
    }
    p = mp_fixture("whisper/for-tests-ggml-parakeet-tdt-bad-nfft0.bin");
    e.msg[0] = 0;
    CHECK(mp_ggml_bin_open(&m, p, &e) == -1);
    CHECKF(strstr(e.msg, "n_fft") && strstr(e.msg, p), "%s", e.msg);
    fprintf(stderr, "  expected error: %s\n", e.msg);
}

/* ---------------------------------------------------------------- a random-weight whisper model */

typedef struct wmodel {
    char *buf;
    size_t size;
} wmodel;

static void put_tensor(FILE *f, const char *name, mp_dtype dt, int nd, int64_t n0, int64_t n1, int64_t n2,
                       unsigned long long *seed) {
    int64_t ne[3] = {n0, n1, n2};
    int64_t n = 1;
    for (int i = 0; i < nd; i++) n *= ne[i];
    size_t bytes = (size_t)mp_dtype_row_bytes(dt, ne[0]) * (size_t)(n / ne[0]);
    unsigned char *d = malloc(bytes);
    for (size_t i = 0; i < bytes; i++) d[i] = (unsigned char)(mp_test_rng(seed) >> 7);
    if (dt == MP_F32)
        for (int64_t i = 0; i < n; i++) ((float *)(void *)d)[i] = mp_test_randf(seed); /* d is malloc-aligned */
    mp_error e;
    CHECK(mp_ggml_bin_write_tensor(f, "mem", name, dt, nd, ne, d, &e) == 0);
    free(d);
}

/* mode: 0 = complete, 1 = one tensor missing, 2 = wrong shape, 3 = extra tensor, 4 = duplicate,
 * 5 = a bias stored as F16. Shapes follow FORMAT.md with tiny dims (state 8 (32 for Q8_0), 2 heads,
 * 1 encoder + 2 decoder layers), the real tiny.en filters and its first 32 vocabulary strings. */
static wmodel write_model(const mp_ggml_bin *real, int mode, mp_dtype wtype) {
    wmodel w = {0};
    FILE *f = open_memstream(&w.buf, &w.size);
    const int64_t s = wtype == MP_Q8_0 ? 32 : 8; /* quant rows need a multiple of 32 */
    mp_whisper_hparams hp = {.n_vocab = 40, .n_audio_ctx = 12, .n_audio_state = (int32_t)s, .n_audio_head = 2,
                             .n_audio_layer = 1, .n_text_ctx = 6, .n_text_state = (int32_t)s, .n_text_head = 2,
                             .n_text_layer = 2, .n_mels = 80, .ftype = wtype == MP_Q8_0 ? 7 : 1};
    const char *tok[32];
    uint32_t len[32];
    for (int i = 0; i < 32; i++) tok[i] = mp_ggml_bin_token(real, i, &len[i]);
    mp_error e;
    CHECK(mp_ggml_bin_write_whisper_header(f, "mem", &hp, real->mel_filters, 80, 201, 32, tok, len, &e) == 0);
    unsigned long long seed = 7;
    mp_dtype conv = MP_F16;
    put_tensor(f, "encoder.positional_embedding", MP_F32, 2, s, 12, 1, &seed);
    put_tensor(f, "encoder.conv1.weight", conv, 3, 3, 80, s, &seed);
    put_tensor(f, "encoder.conv1.bias", MP_F32, 2, 1, s, 1, &seed);
    put_tensor(f, "encoder.conv2.weight", conv, 3, 3, s, s, &seed);
    put_tensor(f, "encoder.conv2.bias", MP_F32, 2, 1, mode == 2 ? s + 1 : s, 1, &seed);
    put_tensor(f, "encoder.ln_post.weight", MP_F32, 1, s, 1, 1, &seed);
    if (mode != 1) put_tensor(f, "encoder.ln_post.bias", MP_F32, 1, s, 1, 1, &seed);
    char b[128];
    const char *names[2] = {"attn", "cross_attn"};
    for (int dec = 0; dec < 2; dec++) {
        int nl = dec ? 2 : 1;
        for (int l = 0; l < nl; l++) {
            for (int a = 0; a <= dec; a++) {
                const char *pre = dec ? "decoder" : "encoder", *at = names[a];
                snprintf(b, sizeof b, "%s.blocks.%d.%s_ln.weight", pre, l, at); put_tensor(f, b, MP_F32, 1, s, 1, 1, &seed);
                snprintf(b, sizeof b, "%s.blocks.%d.%s_ln.bias", pre, l, at); put_tensor(f, b, MP_F32, 1, s, 1, 1, &seed);
                snprintf(b, sizeof b, "%s.blocks.%d.%s.query.weight", pre, l, at); put_tensor(f, b, wtype, 2, s, s, 1, &seed);
                snprintf(b, sizeof b, "%s.blocks.%d.%s.query.bias", pre, l, at);
                put_tensor(f, b, mode == 5 ? MP_F16 : MP_F32, 1, s, 1, 1, &seed);
                snprintf(b, sizeof b, "%s.blocks.%d.%s.key.weight", pre, l, at); put_tensor(f, b, wtype, 2, s, s, 1, &seed);
                snprintf(b, sizeof b, "%s.blocks.%d.%s.value.weight", pre, l, at); put_tensor(f, b, wtype, 2, s, s, 1, &seed);
                snprintf(b, sizeof b, "%s.blocks.%d.%s.value.bias", pre, l, at); put_tensor(f, b, MP_F32, 1, s, 1, 1, &seed);
                snprintf(b, sizeof b, "%s.blocks.%d.%s.out.weight", pre, l, at); put_tensor(f, b, wtype, 2, s, s, 1, &seed);
                snprintf(b, sizeof b, "%s.blocks.%d.%s.out.bias", pre, l, at); put_tensor(f, b, MP_F32, 1, s, 1, 1, &seed);
            }
            const char *pre = dec ? "decoder" : "encoder";
            snprintf(b, sizeof b, "%s.blocks.%d.mlp_ln.weight", pre, l); put_tensor(f, b, MP_F32, 1, s, 1, 1, &seed);
            snprintf(b, sizeof b, "%s.blocks.%d.mlp_ln.bias", pre, l); put_tensor(f, b, MP_F32, 1, s, 1, 1, &seed);
            snprintf(b, sizeof b, "%s.blocks.%d.mlp.0.weight", pre, l); put_tensor(f, b, wtype, 2, s, 4 * s, 1, &seed);
            snprintf(b, sizeof b, "%s.blocks.%d.mlp.0.bias", pre, l); put_tensor(f, b, MP_F32, 1, 4 * s, 1, 1, &seed);
            snprintf(b, sizeof b, "%s.blocks.%d.mlp.2.weight", pre, l); put_tensor(f, b, wtype, 2, 4 * s, s, 1, &seed);
            snprintf(b, sizeof b, "%s.blocks.%d.mlp.2.bias", pre, l); put_tensor(f, b, MP_F32, 1, s, 1, 1, &seed);
        }
        if (!dec) {
            put_tensor(f, "decoder.positional_embedding", MP_F32, 2, s, 6, 1, &seed);
            put_tensor(f, "decoder.token_embedding.weight", wtype, 2, s, 40, 1, &seed);
            put_tensor(f, "decoder.ln.weight", MP_F32, 1, s, 1, 1, &seed);
            put_tensor(f, "decoder.ln.bias", MP_F32, 1, s, 1, 1, &seed);
        }
    }
    if (mode == 3) put_tensor(f, "decoder.extra.weight", MP_F32, 1, s, 1, 1, &seed);
    if (mode == 4) put_tensor(f, "decoder.ln.bias", MP_F32, 1, s, 1, 1, &seed);
    fclose(f);
    return w;
}

static int open_copy(const void *data, size_t n, mp_ggml_bin *m, mp_error *e, void **keep) {
    /* an exact-size heap copy, so reading one byte too far is caught by ASan */
    void *c = malloc(n ? n : 1);
    memcpy(c, data, n);
    int rc = mp_ggml_bin_open_memory(m, c, n, "mem.bin", e);
    if (rc) free(c);
    else *keep = c;
    return rc;
}

static void test_random_model(const mp_ggml_bin *real) {
    mp_ggml_bin m;
    mp_error e;
    void *keep = NULL;
    for (int q = 0; q < 2; q++) {
        mp_dtype wt = q ? MP_Q8_0 : MP_F16;
        wmodel w = write_model(real, 0, wt);
        CHECKF(open_copy(w.buf, w.size, &m, &e, &keep) == 0, "%s", e.msg);
        if (keep) {
            int complete = 0;
            CHECK(mp_ggml_bin_check_whisper(&m, &complete, &e) == 0 && complete == 1);
            CHECK_EQ_INT(m.n_tensors, 7 + 15 * 1 + 4 + 24 * 2);
            CHECK_EQ_INT(m.n_vocab_file, 32);
            CHECK_EQ_INT(m.whisper.ftype, q ? 7 : 1);
            const mp_ggml_bin_tensor *t = mp_ggml_bin_find(&m, "decoder.blocks.1.cross_attn.value.weight");
            CHECK(t && t->t.dtype == wt && t->t.ne[0] == (q ? 32 : 8));
            int64_t sum = 0;
            for (int i = 0; i < m.n_tensors; i++) {
                const mp_ggml_bin_tensor *x = &m.tensors[i];
                CHECK(memcmp(x->t.data, m.map + x->offset, (size_t)x->nbytes) == 0);
                CHECK(x->nbytes == mp_tensor_nbytes(&x->t));
                sum += (int64_t)x->nbytes;
            }
            CHECK_EQ_INT(sum, (int64_t)m.data_bytes);
            mp_ggml_bin_close(&m);
            free(keep);
            keep = NULL;
        }
        free(w.buf);
    }
    const char *want[] = {NULL, "missing", "shape", "unknown tensor", "twice", "f16"};
    for (int mode = 1; mode <= 5; mode++) {
        wmodel w = write_model(real, mode, MP_F16);
        e.msg[0] = 0;
        CHECKF(open_copy(w.buf, w.size, &m, &e, &keep) == -1, "mode %d should fail", mode);
        CHECKF(strstr(e.msg, want[mode]) != NULL, "mode %d: %s", mode, e.msg);
        fprintf(stderr, "  expected error: %s\n", e.msg);
        free(w.buf);
    }
}

/* Every prefix of a file must give a clean error (or, at a record boundary, a valid smaller file). */
static void test_truncation_and_corruption(const char *data, size_t n, const char *what, int record_ends_ok) {
    mp_ggml_bin m;
    mp_error e;
    void *keep = NULL;
    int ok = 0, bad = 0;
    size_t step = n / 700 + 1;
    for (size_t k = 0; k < n; k += (k < 300 ? 1 : step)) {
        if (open_copy(data, k, &m, &e, &keep) == 0) {
            ok++;
            mp_ggml_bin_close(&m);
            free(keep);
            keep = NULL;
        } else {
            bad++;
            if (strstr(e.msg, "mem.bin") == NULL) CHECKF(0, "error without the file name: %s", e.msg);
        }
    }
    CHECKF(bad > 0, "%s: truncated copies must fail", what);
    if (!record_ends_ok) CHECKF(ok == 0, "%s: %d truncated copies opened", what, ok);
    /* random byte flips in the first 4 KiB: must never crash or read out of bounds */
    unsigned long long s = 1234;
    char *c = malloc(n);
    int opened = 0;
    for (int it = 0; it < 400; it++) {
        memcpy(c, data, n);
        int flips = 1 + (int)(mp_test_rng(&s) % 4);
        for (int j = 0; j < flips; j++) {
            size_t span = j == 0 ? 160 : 4096; /* the first flip always hits the header */
            size_t at = (size_t)(mp_test_rng(&s) % (n < span ? n : span));
            c[at] = (char)mp_test_rng(&s);
        }
        if (open_copy(c, n, &m, &e, &keep) == 0) {
            opened++;
            mp_ggml_bin_close(&m);
            free(keep);
            keep = NULL;
        }
    }
    free(c);
    fprintf(stderr, "  %s: %d/%d prefixes rejected, %d/400 corrupted copies still valid\n", what, bad, ok + bad, opened);
}

static void test_bad_headers(void) {
    mp_ggml_bin m;
    mp_error e;
    void *keep = NULL;
    CHECK(open_copy("GGUF\3\0\0\0", 8, &m, &e, &keep) == -1 && strstr(e.msg, "GGUF"));
    CHECK(open_copy("abcd", 4, &m, &e, &keep) == -1 && strstr(e.msg, "magic"));
    CHECK(open_copy("lm", 2, &m, &e, &keep) == -1 && strstr(e.msg, "too short"));
    CHECK(mp_ggml_bin_open(&m, mp_fixture("no/such.bin"), &e) == -1 && strstr(e.msg, "cannot open"));
    /* a silero header followed by a tensor record with an unknown type */
    FILE *f;
    char *buf = NULL;
    size_t n = 0;
    f = open_memstream(&buf, &n);
    int32_t hdr[] = {(int32_t)MP_GGML_FILE_MAGIC, 3};
    fwrite(hdr, 4, 2, f);
    fwrite("vad", 1, 3, f);
    int32_t rest[] = {1, 0, 0, 512, 64, 1, 1, 1, 3, 1, 1, 1, 1, /* record: */ 1, 1, 5, 4};
    fwrite(rest, 4, sizeof rest / 4, f);
    fwrite("x", 1, 1, f);
    fclose(f);
    CHECK(open_copy(buf, n, &m, &e, &keep) == -1 && strstr(e.msg, "unknown ggml type 5"));
    free(buf);
}

int main(void) {
    if (!have(mp_fixture("whisper/for-tests-ggml-tiny.en.bin"))) {
        fprintf(stderr, "fixtures absent: skipped\n");
        return MP_TEST_SKIP;
    }
    test_whisper_fixtures();
    test_silero_fixture();
    test_parakeet_fixtures();
    test_bad_headers();

    mp_ggml_bin real;
    mp_error e;
    if (mp_ggml_bin_open(&real, mp_fixture("whisper/for-tests-ggml-tiny.en.bin"), &e) == 0) {
        test_random_model(&real);
        wmodel w = write_model(&real, 0, MP_F16);
        test_truncation_and_corruption(w.buf, w.size, "random whisper model", 1);
        free(w.buf);
        mp_ggml_bin_close(&real);
    }
    size_t n;
    char *silero = slurp(mp_fixture("whisper/for-tests-silero-v6.2.0-ggml.bin"), &n);
    if (silero) test_truncation_and_corruption(silero, n, "silero", 1);
    free(silero);
    char *tiny = slurp(mp_fixture("whisper/for-tests-ggml-tiny.en.bin"), &n);
    if (tiny) test_truncation_and_corruption(tiny, n, "tiny.en", 0);
    free(tiny);
    return mp_test_result("test_ggml_bin");
}
