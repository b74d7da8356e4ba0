/* fuzz_mmproj.c — libFuzzer harness for the vision-tower loaders on llama.cpp mmproj GGUF files: SmolVLM /
 * Idefics3 (models/smolvlm_load.c) and Qwen2-VL / Qwen2.5-VL (models/qwen2vl_load.c), both given every
 * input (each must refuse the other's files with one error line). When a file loads and its sizes are
 * small, the tower runs on one generated image, so a config that disagrees with the tensors it loaded
 * shows up as a sanitizer report, not only a file that parses. The input is written to a file (the
 * loaders take a path). Seeds: write_model_seeds (tiny random mmproj GGUFs in the three layouts). */
#include "fuzz_util.h"
#include "encoders/qwen2vl_vit.h"
#include "projector/idefics3.h"

static mp_exec ex;
static int ex_ok;

static void free_ex(void) { mp_exec_free(&ex); }

static void idefics3(const char *path) {
    mp_idefics3_vision v;
    mp_error e;
    memset(&e, 0, sizeof e);
    if (mp_idefics3_vision_load(&v, path, &ex, &e) != 0) {
        fz_check_error(&e, "fuzz.gguf");
        return;
    }
    const mp_siglip_config *c = &v.enc.cfg;
    if (v.image_seq_len <= 0 || v.proc.tile <= 0 || v.n_embd_text <= 0) abort();
    if (c->n_embd <= 256 && c->n_ff <= 1024 && c->n_layer <= 4 && v.proc.tile <= 64 && v.n_embd_text <= 1024 &&
        c->image_size <= 64) {
        const int T = v.proc.tile;
        float *pix = malloc(sizeof(float) * 3 * (size_t)T * T);
        float *out = malloc(sizeof(float) * (size_t)v.image_seq_len * v.n_embd_text);
        if (pix && out) {
            for (int i = 0; i < 3 * T * T; i++) pix[i] = (float)((i * 37) % 255) / 127.0f - 1.0f;
            mp_idefics3_state st;
            memset(&st, 0, sizeof st);
            if (mp_idefics3_encode(&v, &st, &ex, pix, 1, out, NULL, &e) == 0)
                fz_touch(out, sizeof(float) * (size_t)v.image_seq_len * v.n_embd_text);
            else
                fz_check_error(&e, NULL);
            mp_idefics3_state_free(&st, &ex);
        }
        free(pix);
        free(out);
    }
    mp_idefics3_vision_free(&v, &ex);
}

static void qwen2vl(const char *path) {
    mp_qwen2vl_vit m;
    mp_error e;
    memset(&e, 0, sizeof e);
    if (mp_qwen2vl_vit_load(&m, path, &ex, &e) != 0) {
        fz_check_error(&e, "fuzz.gguf");
        return;
    }
    const mp_qwen2vl_vit_config *c = &m.cfg;
    const int M = c->merge_size, P = c->patch_size, T = c->temporal_patch_size;
    if (c->dim <= 256 && c->n_ff <= 1024 && c->n_layer <= 4 && c->out_dim <= 1024 && P <= 32 && M <= 4 && T <= 4) {
        mp_qwen2vl_grid g = {1, M, 2 * M}; /* one image of 2 merged blocks */
        const int64_t rows = (int64_t)g.t * g.h * g.w, width = (int64_t)c->in_chans * T * P * P;
        const int64_t nt = mp_qwen2vl_vit_n_tokens(&m, &g, 1);
        if (nt != rows / (M * M)) abort();
        float *pix = malloc(sizeof(float) * (size_t)(rows * width));
        float *out = malloc(sizeof(float) * (size_t)(nt * c->out_dim));
        if (pix && out) {
            for (int64_t i = 0; i < rows * width; i++) pix[i] = (float)((i * 37) % 255) / 127.0f - 1.0f;
            mp_qwen2vl_vit_state st;
            memset(&st, 0, sizeof st);
            if (mp_qwen2vl_vit_encode(&m, &st, &ex, pix, &g, 1, MP_QWEN2VL_OUT_MERGED, out, NULL, &e) == 0)
                fz_touch(out, sizeof(float) * (size_t)(nt * c->out_dim));
            else
                fz_check_error(&e, NULL);
            mp_qwen2vl_vit_state_free(&st, &ex);
        }
        free(pix);
        free(out);
    }
    mp_qwen2vl_vit_free(&m, &ex);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!ex_ok) {
        mp_error e;
        if (mp_exec_init(&ex, MP_BACKEND_CPU, NULL, (size_t)8 << 20, &e) != 0) abort();
        ex_ok = 1;
        atexit(free_ex);
    }
    const char *path = fz_write("fuzz.gguf", data, size);
    idefics3(path);
    qwen2vl(path);
    return 0;
}
