/* test_whisper_out.c — the transcription writers (apps/whisper_out.c) on known segments, against the exact
 * text whisper-cli writes for them (examples/cli/cli.cpp: to_timestamp, output_txt/vtt/srt/csv/lrc/json);
 * and the Silero VAD time mapping of whisper.cpp (--vad) on jfk.wav's known speech segments. */
#include "test.h"

#include "apps/whisper_out.h"
#include "encoders/silero.h"
#include "kernels/ops.h"
#include "preprocess/audio.h"

#include <cjson/cJSON.h>
#include <unistd.h>

static char *capture(int (*fn)(FILE *, const mp_whisper_result *), const mp_whisper_result *r) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    fn(f, r);
    fclose(f);
    return buf;
}

static int srt0(FILE *f, const mp_whisper_result *r) { return whisper_write_srt(f, r, 0); }

static void test_timestamps(void) {
    char b[32];
    whisper_timestamp(0, 0, b);
    CHECK_STR(b, "00:00:00.000");
    whisper_timestamp(1062, 0, b);
    CHECK_STR(b, "00:00:10.620");
    whisper_timestamp(1062, 1, b);
    CHECK_STR(b, "00:00:10,620");
    whisper_timestamp(366101, 1, b); /* 1 h 1 min 1.01 s */
    CHECK_STR(b, "01:01:01,010");
    whisper_timestamp(599, 0, b);
    CHECK_STR(b, "00:00:05.990");
}

static void test_writers(const mp_whisper *m) {
    mp_whisper_segment segs[3];
    memset(segs, 0, sizeof segs);
    mp_whisper_token toks[2] = {{m->sp.timestamp_begin, 0.5f, -0.69f}, {843, 0.25f, -1.38f}};
    segs[0] = (mp_whisper_segment){.t0 = 0, .t1 = 227, .text = " And so my fellow Americans,", .tokens = toks, .n_tokens = 2};
    segs[1] = (mp_whisper_segment){.t0 = 327, .t1 = 6050, .text = "\tsaid \"ask not\""};
    segs[2] = (mp_whisper_segment){.t0 = 366101, .t1 = 366199, .text = " the end."};
    mp_whisper_result r;
    memset(&r, 0, sizeof r);
    r.segs = segs;
    r.n_segs = 3;
    r.language = 0;

    char *s = capture(whisper_write_txt, &r);
    CHECK_STR(s, "And so my fellow Americans,\nsaid \"ask not\"\nthe end.\n");
    free(s);
    s = capture(whisper_write_vtt, &r);
    CHECK_STR(s, "WEBVTT\n\n"
                 "00:00:00.000 --> 00:00:02.270\n And so my fellow Americans,\n\n"
                 "00:00:03.270 --> 00:01:00.500\n\tsaid \"ask not\"\n\n"
                 "01:01:01.010 --> 01:01:01.990\n the end.\n\n");
    free(s);
    s = capture(srt0, &r);
    CHECK_STR(s, "1\n00:00:00,000 --> 00:00:02,270\n And so my fellow Americans,\n\n"
                 "2\n00:00:03,270 --> 00:01:00,500\n\tsaid \"ask not\"\n\n"
                 "3\n01:01:01,010 --> 01:01:01,990\n the end.\n\n");
    free(s);
    s = capture(whisper_write_csv, &r);
    CHECK_STR(s, "start,end,text\n0,2270,\" And so my fellow Americans,\"\n3270,60500,\"\tsaid \"\"ask not\"\"\"\n"
                 "3661010,3661990,\" the end.\"\n");
    free(s);
    s = capture(whisper_write_lrc, &r);
    CHECK_STR(s, "[by:mmpipe]\n[00:00.00] And so my fellow Americans,\n[00:03.27]\tsaid \"ask not\"\n[61:01.01] the end.\n");
    free(s);
    /* JSON: whisper-cli's layout, parsed back */
    whisper_out_info info = {m, "model.bin", "en", 0};
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    whisper_write_json(f, &r, &info);
    fclose(f);
    cJSON *j = cJSON_Parse(buf);
    CHECKF(j != NULL, "JSON does not parse:\n%s", buf);
    if (j) {
        CHECK_STR(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "result"), "language")->valuestring, "en");
        CHECK_STR(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "params"), "model")->valuestring, "model.bin");
        CHECK_EQ_INT(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "model"), "vocab")->valueint, m->hp.n_vocab);
        const cJSON *tr = cJSON_GetObjectItem(j, "transcription");
        CHECK_EQ_INT(cJSON_GetArraySize(tr), 3);
        const cJSON *s1 = cJSON_GetArrayItem(tr, 1);
        CHECK_STR(cJSON_GetObjectItem(cJSON_GetObjectItem(s1, "timestamps"), "from")->valuestring, "00:00:03,270");
        CHECK_STR(cJSON_GetObjectItem(cJSON_GetObjectItem(s1, "timestamps"), "to")->valuestring, "00:01:00,500");
        CHECK_EQ_INT(cJSON_GetObjectItem(cJSON_GetObjectItem(s1, "offsets"), "to")->valueint, 60500);
        CHECK_STR(cJSON_GetObjectItem(s1, "text")->valuestring, "\tsaid \"ask not\"");
        const cJSON *t0 = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetArrayItem(tr, 0), "tokens"), 1);
        CHECK_STR(cJSON_GetObjectItem(t0, "text")->valuestring, " And");
        CHECK_EQ_INT(cJSON_GetObjectItem(t0, "id")->valueint, 843);
        CHECK_NEAR(cJSON_GetObjectItem(t0, "p")->valuedouble, 0.25, 1e-6);
        const cJSON *ts = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetArrayItem(tr, 0), "tokens"), 0);
        CHECK_STR(cJSON_GetObjectItem(ts, "text")->valuestring, "<|0.00|>");
    }
    /* whisper-cli's layout: tab indentation and "key": value lines */
    CHECK(strstr(buf, "{\n\t\"systeminfo\": \"mmpipe\",\n\t\"model\": {\n\t\t\"type\": ") != NULL);
    CHECK(strstr(buf, "\t\t\t\"timestamps\": {\n\t\t\t\t\"from\": \"00:00:00,000\",\n\t\t\t\t\"to\": \"00:00:02,270\"\n\t\t\t},\n") != NULL);
    cJSON_Delete(j);
    free(buf);
    /* the console line */
    f = open_memstream(&buf, &len);
    whisper_print_segment(f, &segs[0], 1);
    fclose(f);
    CHECK_STR(buf, "[00:00:00.000 --> 00:00:02.270]   And so my fellow Americans,\n");
    free(buf);
}

/* whisper.cpp's VAD mapping on jfk.wav: segments (cs) 32-227, 327-441, 538-768, 816-1062 (EXPECTED.md). */
static void test_vad_map(void) {
    mp_audio a;
    mp_error err;
    if (mp_audio_load(mp_fixture("audio/jfk.wav"), 16000, &a, &err)) {
        fprintf(stderr, "jfk.wav absent: VAD mapping skipped\n");
        return;
    }
    int64_t t0[4] = {32, 327, 538, 816}, t1[4] = {227, 441, 768, 1062};
    const char *vm = mp_fixture("whisper/for-tests-silero-v6.2.0-ggml.bin");
    if (access(vm, R_OK) == 0) { /* the segments really are what Silero finds */
        mp_silero s;
        mp_threadpool *tp = mp_threadpool_create(2);
        mp_exec ex;
        float *probs = NULL;
        int64_t np = 0;
        mp_vad_segment *segs = NULL;
        int ns = 0;
        mp_vad_params vp = mp_vad_default_params();
        CHECK(mp_silero_load(&s, vm, &err) == 0 && mp_exec_init(&ex, MP_BACKEND_CPU, tp, 1 << 20, &err) == 0);
        CHECK(mp_silero_probs(&s, &ex, a.samples, a.n_samples, &probs, &np, &err) == 0);
        CHECK(mp_vad_segments(probs, np, s.n_window, 16000, &vp, &segs, &ns, &err) == 0);
        CHECK_EQ_INT(ns, 4);
        for (int i = 0; i < ns && i < 4; i++) CHECK(segs[i].t0 == t0[i] && segs[i].t1 == t1[i]);
        free(probs);
        free(segs);
        mp_exec_free(&ex);
        mp_threadpool_free(tp);
        mp_silero_free(&s);
    }
    float *f = NULL;
    int64_t n = 0;
    mp_whisper_vad_map map;
    CHECK(mp_whisper_vad_filter(a.samples, a.n_samples, t0, t1, 4, 0.1f, &f, &n, &map, &err) == 0);
    /* speech [5120, 36320) + 1600 overlap, [52320, 70560) + 1600, [86080, 122880) + 1600, [130560, 169920),
     * 0.1 s of silence between them */
    CHECK_EQ_INT(n, 32800 + 19840 + 38400 + 39360 + 3 * 1600);
    if (f && n == 135200) {
        CHECK(!memcmp(f, a.samples + 5120, 32800 * sizeof(float)));
        for (int i = 0; i < 1600; i++) CHECK(f[32800 + i] == 0.0f);
        CHECK(!memcmp(f + 34400, a.samples + 52320, 19840 * sizeof(float)));
        CHECK(!memcmp(f + 135200 - 39360, a.samples + 130560, 39360 * sizeof(float)));
    }
    /* processed -> original: 0 -> 32, 195 (end of speech 0) -> 227, interpolated inside, the silence maps
     * 205..215 to 227..327 */
    CHECK_EQ_INT(mp_whisper_vad_map_time(&map, 0), 32);
    CHECK_EQ_INT(mp_whisper_vad_map_time(&map, 100), 132);
    CHECK_EQ_INT(mp_whisper_vad_map_time(&map, 195), 227);
    CHECK_EQ_INT(mp_whisper_vad_map_time(&map, 210), 277);
    CHECK_EQ_INT(mp_whisper_vad_map_time(&map, 215), 327);
    CHECK_EQ_INT(mp_whisper_vad_map_time(&map, 100000), 1062);
    /* results map back with whisper.cpp's 10 cs minimum length */
    mp_whisper_segment sg[2];
    memset(sg, 0, sizeof sg);
    sg[0].t0 = 100, sg[0].t1 = 210;
    sg[1].t0 = 800, sg[1].t1 = 800;
    mp_whisper_result r = {sg, 2, 0, NULL, NULL, 0, 0, 0};
    mp_whisper_result_map_vad(&r, &map);
    CHECK_EQ_INT(sg[0].t0, 132);
    CHECK_EQ_INT(sg[0].t1, 277);
    CHECK_EQ_INT(sg[1].t1 - sg[1].t0, 10);
    CHECK(sg[1].t0 >= 816 && sg[1].t0 <= 1062);
    mp_whisper_vad_map_free(&map);
    free(f);
    mp_audio_free(&a);
}

int main(void) {
    test_timestamps();
    const char *hdr = mp_fixture("whisper/for-tests-ggml-tiny.en.bin");
    if (access(hdr, R_OK) == 0) {
        char path[1024];
        snprintf(path, sizeof path, "%s/whisper_out_%d.bin", MP_BINARY_DIR, (int)getpid());
        mp_whisper_random_spec sp = {hdr, 8, 1, 1, 0, MP_F16, 7, 1.0f, 0.5f, 0, 0, 0, 0};
        mp_error err;
        mp_whisper m;
        mp_exec ex;
        CHECK(mp_exec_init(&ex, MP_BACKEND_CPU, NULL, 1 << 20, &err) == 0);
        CHECKF(mp_whisper_write_random(path, &sp, &err) == 0 && mp_whisper_load(&m, path, &ex, &err) == 0, "%s", err.msg);
        test_writers(&m);
        mp_whisper_free(&m, &ex);
        mp_exec_free(&ex);
        unlink(path);
    }
    test_vad_map();
    return mp_test_result("test_whisper_out");
}
