/* write_model_seeds.c OUT — seed files for the model-loader harnesses, written with the library's own
 * writers in the real formats (nothing committed):
 *   OUT/whisper/tiny-f16.bin, tiny-f32.bin  whisper.cpp ggml .bin, random weights, the real vocabulary and
 *                                           mel filters (header from ../shared/fixtures/whisper)
 *   OUT/mmproj/idefics3.gguf                llama.cpp mmproj GGUF for SmolVLM (tests/caption/smolvlm_fixture.h)
 *   OUT/mmproj/qwen2vl.gguf, qwen25vl.gguf  llama.cpp mmproj GGUFs for Qwen2-VL / Qwen2.5-VL (the names and
 *                                           shapes of convert_hf_to_gguf.py's Qwen2VLVisionModel)
 * Run by ctest (tests/robust) before the replays and by scripts/fuzz.sh. Sizes are tiny so that one
 * input takes milliseconds. Exit 0 even when a fixture is absent (fewer seeds). */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function" /* the fixture header has more than the mmproj writer */
#include "caption/smolvlm_fixture.h"
#pragma GCC diagnostic pop
#include "encoders/whisper.h"
#include "kernels/ops.h"
#include "models/gguf.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void mkdirs(const char *out, const char *sub, char *dir, size_t n) {
    mkdir(out, 0755);
    snprintf(dir, n, "%s/%s", out, sub);
    mkdir(dir, 0755);
}

static int whisper_seeds(const char *out) {
    char dir[1024], p[1200];
    mkdirs(out, "whisper", dir, sizeof dir);
    const char *hdr = mp_fixture("whisper/for-tests-ggml-tiny.en.bin");
    if (access(hdr, R_OK) != 0) {
        fprintf(stderr, "write_model_seeds: %s absent: no whisper seeds\n", hdr);
        return 0;
    }
    mp_whisper_random_spec s = {.header_from = hdr, .n_state = 8, .n_head = 2, .n_layer = 1, .seed = 1,
                                .gain = 1.0f, .emb_scale = 0.5f};
    mp_error e;
    const mp_dtype types[2] = {MP_F16, MP_F32};
    const char *names[2] = {"tiny-f16.bin", "tiny-f32.bin"};
    for (int i = 0; i < 2; i++) {
        s.wtype = types[i];
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        if (mp_whisper_write_random(p, &s, &e) != 0) {
            fprintf(stderr, "write_model_seeds: %s\n", e.msg);
            return -1;
        }
    }
    return 0;
}

static int idefics3_seed(const char *out) {
    char dir[1024], p[1200];
    mkdirs(out, "mmproj", dir, sizeof dir);
    static fx_model m; /* big (160 tensors' names) */
    const fx_dims d = {16, 32, 1, 2, 32, 8, 2, 16, 32, 1, 2, 1, 64, 64};
    fx_make_weights(&d, &m, 7);
    snprintf(p, sizeof p, "%s/idefics3.gguf", dir);
    mp_error e;
    int rc = fx_write_mmproj(&d, &m, p, &e);
    if (rc) fprintf(stderr, "write_model_seeds: %s\n", e.msg);
    fx_free(&m);
    return rc;
}

static unsigned long long qrng = 11;
static void *qkeep[128]; /* the writer borrows tensor data until it writes */
static int qn;

static int qadd(mp_gguf_writer *g, const char *name, mp_dtype dt, int nd, int64_t a, int64_t b, int64_t c, int64_t d) {
    int64_t ne[4] = {a, b, c, d};
    int64_t n = a * (nd > 1 ? b : 1) * (nd > 2 ? c : 1) * (nd > 3 ? d : 1);
    float *f = malloc((size_t)n * sizeof *f);
    uint16_t *h = malloc((size_t)n * sizeof *h);
    if (!f || !h) {
        free(f);
        free(h);
        return -1;
    }
    for (int64_t i = 0; i < n; i++) f[i] = 0.1f * mp_test_randf(&qrng);
    if (qn + 2 > 128) {
        free(f);
        free(h);
        return -1;
    }
    qkeep[qn++] = f;
    qkeep[qn++] = h;
    if (dt == MP_F16) mp_quantize_row(MP_F16, f, h, n);
    return mp_gguf_writer_add_tensor(g, name, dt, nd, ne, dt == MP_F16 ? (void *)h : (void *)f);
}

/* Qwen2-VL (v25 = 0) / Qwen2.5-VL (1) mmproj: width 16, 2 heads, 2 layers, patch 14, merge 2, 2 taps */
static int qwen2vl_seed(const char *out, int v25) {
    char dir[1024], p[1200], nm[64];
    mkdirs(out, "mmproj", dir, sizeof dir);
    const int D = 16, F = 32, L = 2, P = 14, M = 2, O = 24;
    mp_gguf_writer *g = mp_gguf_writer_new();
    mp_gguf_set_str(g, "general.architecture", "clip");
    mp_gguf_set_str(g, "clip.projector_type", v25 ? "qwen2.5vl_merger" : "qwen2vl_merger");
    mp_gguf_set_bool(g, "clip.has_vision_encoder", 1);
    mp_gguf_set_u32(g, "clip.vision.image_size", 560);
    mp_gguf_set_u32(g, "clip.vision.patch_size", P);
    mp_gguf_set_u32(g, "clip.vision.embedding_length", D);
    mp_gguf_set_u32(g, "clip.vision.feed_forward_length", F);
    mp_gguf_set_u32(g, "clip.vision.block_count", L);
    mp_gguf_set_u32(g, "clip.vision.attention.head_count", 2);
    mp_gguf_set_f32(g, "clip.vision.attention.layer_norm_epsilon", 1e-6f);
    mp_gguf_set_u32(g, "clip.vision.projection_dim", O);
    const float mean[3] = {0.48f, 0.46f, 0.41f}, std[3] = {0.27f, 0.26f, 0.28f};
    mp_gguf_set_arr(g, "clip.vision.image_mean", MP_GGUF_F32, mean, 3);
    mp_gguf_set_arr(g, "clip.vision.image_std", MP_GGUF_F32, std, 3);
    if (v25) {
        mp_gguf_set_bool(g, "clip.use_silu", 1);
        mp_gguf_set_u32(g, "clip.vision.n_wa_pattern", 2);
        mp_gguf_set_u32(g, "clip.vision.window_size", 56);
    } else {
        mp_gguf_set_bool(g, "clip.use_gelu", 0);
    }
    int rc = qadd(g, "v.patch_embd.weight", MP_F16, 4, P, P, 3, D);
    rc |= qadd(g, "v.patch_embd.weight.1", MP_F16, 4, P, P, 3, D);
    for (int l = 0; l < L; l++) { /* one tensor a statement: nm is shared */
#define T(s, dt, nd, a, b) (snprintf(nm, sizeof nm, "v.blk.%d.%s", l, s), rc |= qadd(g, nm, dt, nd, a, b, 1, 1))
        T("ln1.weight", MP_F32, 1, D, 1);
        T("ln2.weight", MP_F32, 1, D, 1);
        if (!v25) {
            T("ln1.bias", MP_F32, 1, D, 1);
            T("ln2.bias", MP_F32, 1, D, 1);
        }
        static const char *const qkvo[4] = {"attn_q", "attn_k", "attn_v", "attn_out"};
        char w[32];
        for (int k = 0; k < 4; k++) {
            snprintf(w, sizeof w, "%s.weight", qkvo[k]);
            T(w, k == 2 ? MP_F32 : MP_F16, 2, D, D);
            snprintf(w, sizeof w, "%s.bias", qkvo[k]);
            T(w, MP_F32, 1, D, 1);
        }
        if (v25) {
            T("ffn_gate.weight", MP_F16, 2, D, F);
            T("ffn_gate.bias", MP_F32, 1, F, 1);
        }
        T("ffn_up.weight", MP_F16, 2, D, F);
        T("ffn_up.bias", MP_F32, 1, F, 1);
        T("ffn_down.weight", MP_F16, 2, F, D);
        T("ffn_down.bias", MP_F32, 1, D, 1);
#undef T
    }
    rc |= qadd(g, "v.post_ln.weight", MP_F32, 1, D, 1, 1, 1);
    if (!v25) rc |= qadd(g, "v.post_ln.bias", MP_F32, 1, D, 1, 1, 1);
    rc |= qadd(g, "mm.0.weight", MP_F16, 2, D * M * M, D * M * M, 1, 1);
    rc |= qadd(g, "mm.0.bias", MP_F32, 1, D * M * M, 1, 1, 1);
    rc |= qadd(g, "mm.2.weight", MP_F16, 2, D * M * M, O, 1, 1);
    rc |= qadd(g, "mm.2.bias", MP_F32, 1, O, 1, 1, 1);
    if (rc) fprintf(stderr, "write_model_seeds: building the Qwen2-VL mmproj failed\n");
    snprintf(p, sizeof p, "%s/%s", dir, v25 ? "qwen25vl.gguf" : "qwen2vl.gguf");
    mp_error e;
    if (rc == 0 && mp_gguf_writer_write(g, p, &e) != 0) {
        fprintf(stderr, "write_model_seeds: %s\n", e.msg);
        rc = -1;
    }
    mp_gguf_writer_free(g);
    while (qn) free(qkeep[--qn]);
    return rc ? -1 : 0;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: write_model_seeds OUT\n");
        return 2;
    }
    int rc = whisper_seeds(argv[1]);
    rc |= idefics3_seed(argv[1]);
    rc |= qwen2vl_seed(argv[1], 0);
    rc |= qwen2vl_seed(argv[1], 1);
    return rc ? 1 : 0;
}
