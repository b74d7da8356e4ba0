/* fuzz_whisper.c — libFuzzer harness for the Whisper model loader on whisper.cpp ggml .bin files
 * (models/whisper_load.c on top of models/ggml_bin.c): hyper-parameter checks, mel filters, every
 * tensor's name/shape/dtype check, the vocabulary and its hash, the alignment heads. A loaded model is
 * touched end to end (every view's first and last byte, every token) so that a view that runs past the
 * file shows up under ASan. The input is written to a file (the loader takes a path).
 * Seeds: write_model_seeds (tiny random models on the real vocabulary) + the fixture headers. */
#include "fuzz_util.h"
#include "encoders/whisper.h"

static mp_exec ex;
static int ex_ok;

static void free_ex(void) { mp_exec_free(&ex); }

static void touch_t(const mp_tensor *t) {
    size_t n = mp_tensor_nbytes(t);
    if (!t->data || n == 0) abort();
    fz_touch(t->data, 1);
    fz_touch((const uint8_t *)t->data + n - 1, 1);
}

static void touch_f(const float *p, int64_t n) {
    if (!p) abort();
    fz_touch(p, sizeof *p);
    fz_touch(p + n - 1, sizeof *p);
}

static void touch_lin(const mp_whisper_linear *l, int64_t out) {
    touch_t(&l->w);
    if (l->b) touch_f(l->b, out);
}

static void touch_block(const mp_whisper_block *b, int64_t D, int64_t F, int cross) {
    for (int k = 0; k < 1 + cross; k++) {
        const mp_whisper_attn *a = k ? &b->cross : &b->attn;
        touch_f(a->ln_w, D);
        touch_f(a->ln_b, D);
        touch_lin(&a->q, D), touch_lin(&a->k, D), touch_lin(&a->v, D), touch_lin(&a->o, D);
    }
    touch_f(b->mlp_ln_w, D);
    touch_f(b->mlp_ln_b, D);
    touch_lin(&b->fc1, F);
    touch_lin(&b->fc2, D);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!ex_ok) {
        mp_error e;
        if (mp_exec_init(&ex, MP_BACKEND_CPU, NULL, 1 << 20, &e) != 0) abort();
        ex_ok = 1;
        atexit(free_ex);
    }
    const char *path = fz_write("fuzz.bin", data, size);
    mp_whisper m;
    mp_error e;
    memset(&e, 0, sizeof e);
    if (mp_whisper_load(&m, path, &ex, &e) != 0) {
        fz_check_error(&e, "fuzz.bin");
        if (m.enc || m.dec || m.vocab.text) abort(); /* a failed load leaves nothing behind */
        return 0;
    }
    const mp_whisper_hparams *h = &m.hp;
    const int64_t D = h->n_audio_state;
    touch_t(&m.conv1_w), touch_t(&m.conv2_w), touch_t(&m.tok_emb), touch_t(&m.dec_pos_t);
    if (m.tok_emb.ne[0] != D || m.tok_emb.ne[1] != h->n_vocab) abort();
    touch_f(m.conv1_b, D), touch_f(m.conv2_b, D);
    touch_f(m.enc_pos, (int64_t)h->n_audio_ctx * D);
    touch_f(m.ln_post_w, D), touch_f(m.ln_post_b, D), touch_f(m.dec_ln_w, D), touch_f(m.dec_ln_b, D);
    for (int l = 0; l < h->n_audio_layer; l++) touch_block(&m.enc[l], D, m.n_audio_ff, 0);
    for (int l = 0; l < h->n_text_layer; l++) touch_block(&m.dec[l], D, m.n_text_ff, 1);
    for (int i = 0; i < m.vocab.n; i++) {
        if (m.vocab.len[i]) fz_touch(m.vocab.text + m.vocab.off[i], m.vocab.len[i]);
        if (i < m.vocab.n_text && m.vocab.len[i] &&
            mp_whisper_vocab_find(&m.vocab, m.vocab.text + m.vocab.off[i], m.vocab.len[i]) < 0)
            abort(); /* every ordinary token can be found by its bytes */
    }
    if (!m.mel.w || m.mel.n_mels != h->n_mels) abort();
    fz_touch(m.mel.w, sizeof(float) * (size_t)m.mel.n_mels * (size_t)m.mel.n_bins);
    for (int i = 0; i < m.n_align_heads; i++)
        if (m.align_heads[2 * i] < 0 || m.align_heads[2 * i] >= h->n_text_layer || m.align_heads[2 * i + 1] < 0 ||
            m.align_heads[2 * i + 1] >= h->n_text_head)
            abort();
    mp_whisper_free(&m, &ex);
    return 0;
}
