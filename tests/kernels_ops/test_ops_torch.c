/* test_ops_torch.c — CPU ops vs PyTorch (tests/ref/ops.py, float64, from transformers' and
 * torch.nn.functional's published code): RoPE (default, partial, linear, llama3, YaRN, Qwen2-VL
 * M-RoPE and vision RoPE), attention (naive softmax(QK^T)V with repeat_kv, causal, mask), layernorm,
 * rmsnorm, GELU (erf, tanh, quick), SiLU, SwiGLU, softmax, conv1d / depthwise / conv2d / conv3d with
 * F32/F16/BF16 weights. Every SIMD level, 1 and 3 threads (bit-identical). Skips (77) without torch. */
#include <math.h>

#include "ops_test.h"
#include "refcases.h"

#define P(name) rc_param(c, name, 0)
#define A(name) (rc_array(c, name) ? rc_array(c, name)->data : NULL)

static int starts(const char *s, const char *pre) { return strncmp(s, pre, strlen(pre)) == 0; }

/* Runs one case on exec ex into y (allocated by the caller with the expected output's size). Returns the
 * tolerance for the comparison, or -1 when the case kind is unknown. */
static double run_case(mp_exec *ex, const refcase *c, float *y, int64_t ny) {
    const char *n = c->name;
    if (starts(n, "rope/")) {
        mp_rope_params p = {.head_dim = (int)P("head_dim"), .n_rot = (int)P("n_rot"),
                            .mode = P("neox") ? MP_ROPE_NEOX : MP_ROPE_NORMAL, .theta = (float)P("theta"),
                            .freq_scale = (float)P("freq_scale"), .freq_factors = A("freq_factors"),
                            .ext_factor = (float)P("ext_factor"), .attn_factor = (float)P("attn_factor"),
                            .beta_fast = (float)P("beta_fast"), .beta_slow = (float)P("beta_slow"),
                            .n_ctx_orig = (int)P("n_ctx_orig"), .mrope_vision = (int)P("vision")};
        p.sections[0] = (int)P("sec0"), p.sections[1] = (int)P("sec1"), p.sections[2] = (int)P("sec2");
        const refarray *pa = rc_array(c, "pos");
        int32_t *pos = malloc((size_t)pa->n * 4);
        for (int64_t i = 0; i < pa->n; i++) pos[i] = (int32_t)pa->data[i];
        const refarray *xa = rc_array(c, "x");
        if (!xa || xa->n != ny) return -1;
        memcpy(y, xa->data, (size_t)ny * 4);
        int n_head = (int)P("n_head");
        mp_rope(ex, y, (int64_t)P("n_tok"), n_head, (int64_t)n_head * p.head_dim, pos, &p);
        free(pos);
        return 2e-4; /* float32 angles at positions up to 1000 (ggml computes them so) */
    }
    if (starts(n, "attention/")) {
        mp_attn_params p = {.n_q = (int)P("n_q"), .n_kv = (int)P("n_kv"), .n_head = (int)P("n_head"),
                            .n_kv_head = (int)P("n_kv_head"), .head_dim = (int)P("head_dim"),
                            .scale = (float)P("scale"), .causal = (int)P("causal"), .mask = A("mask")};
        p.q_stride = p.o_stride = (int64_t)p.n_head * p.head_dim;
        p.k_stride = p.v_stride = (int64_t)p.n_kv_head * p.head_dim;
        p.causal_offset = p.n_kv - p.n_q;
        p.mask_stride = p.n_kv;
        mp_attention(ex, y, A("q"), A("k"), A("v"), &p);
        return 2e-5;
    }
    if (starts(n, "layernorm/")) {
        mp_layernorm(ex, y, A("x"), A("w"), A("b"), (int64_t)P("rows"), (int64_t)P("cols"), (float)P("eps"));
        return 3e-6;
    }
    if (starts(n, "rmsnorm/")) {
        mp_rmsnorm(ex, y, A("x"), A("w"), (int64_t)P("rows"), (int64_t)P("cols"), (float)P("eps"));
        return 3e-6;
    }
    if (starts(n, "gelu_erf/")) return mp_gelu(ex, y, A("x"), ny, MP_GELU_ERF), 2e-6;
    if (starts(n, "gelu_tanh/")) return mp_gelu(ex, y, A("x"), ny, MP_GELU_TANH), 2e-6;
    if (starts(n, "gelu_quick/")) return mp_gelu(ex, y, A("x"), ny, MP_GELU_QUICK), 2e-6;
    if (starts(n, "silu/")) return mp_silu(ex, y, A("x"), ny), 2e-6;
    if (starts(n, "swiglu/")) return mp_swiglu(ex, y, A("x"), A("u"), ny), 2e-6;
    if (starts(n, "softmax/")) {
        const refarray *xa = rc_array(c, "x");
        if (!xa || xa->n != ny) return -1;
        memcpy(y, xa->data, (size_t)ny * 4);
        mp_softmax(ex, y, (int64_t)P("rows"), (int64_t)P("cols"), A("mask"), 0, 0);
        return 2e-6;
    }
    if (starts(n, "conv")) {
        const refarray *wa = rc_array(c, "w");
        mp_dtype dt = (mp_dtype)(int)P("dt");
        void *wbuf = malloc((size_t)wa->n * 4);
        for (int64_t i = 0; i < wa->n; i++) {
            if (dt == MP_F32) ((float *)wbuf)[i] = wa->data[i];
            else if (dt == MP_F16) ((mp_f16 *)wbuf)[i] = mp_f32_to_f16(wa->data[i]);
            else ((mp_bf16 *)wbuf)[i] = mp_f32_to_bf16(wa->data[i]);
        }
        mp_tensor w;
        int batch = (int)P("batch");
        if (starts(n, "conv1d_dw/")) {
            int64_t ne[3] = {(int64_t)P("k"), 1, (int64_t)P("c")};
            mp_tensor_init(&w, dt, 3, ne, wbuf);
            mp_conv1d_dw(ex, y, A("x"), &w, A("b"), batch, (int64_t)P("c"), (int64_t)P("l_in"), (int)P("stride"),
                         (int)P("pad"));
        } else if (starts(n, "conv1d/")) {
            int64_t ne[3] = {(int64_t)P("k"), (int64_t)P("c_in"), (int64_t)P("c_out")};
            mp_tensor_init(&w, dt, 3, ne, wbuf);
            mp_conv1d(ex, y, A("x"), &w, A("b"), batch, (int64_t)P("c_in"), (int64_t)P("l_in"), (int)P("stride"),
                      (int)P("pad"));
        } else if (starts(n, "conv2d/")) {
            int64_t ne[4] = {(int64_t)P("kw"), (int64_t)P("kh"), (int64_t)P("c_in"), (int64_t)P("c_out")};
            mp_tensor_init(&w, dt, 4, ne, wbuf);
            mp_conv2d(ex, y, A("x"), &w, A("b"), batch, (int64_t)P("c_in"), (int64_t)P("h"), (int64_t)P("w"),
                      (int)P("sh"), (int)P("sw"), (int)P("ph"), (int)P("pw"));
        } else {
            int kt = (int)P("kt");
            int64_t ne[4] = {(int64_t)P("kw"), (int64_t)P("kh"), kt * (int64_t)P("c_in"), (int64_t)P("c_out")};
            mp_tensor_init(&w, dt, 4, ne, wbuf);
            mp_conv3d(ex, y, A("x"), &w, kt, A("b"), batch, (int64_t)P("c_in"), (int64_t)P("t"), (int64_t)P("h"),
                      (int64_t)P("w"), (int)P("st"), (int)P("sh"), (int)P("sw"));
        }
        free(wbuf);
        return 2e-5;
    }
    return -1;
}

int main(void) {
    char path[4096], cmd[8192];
    snprintf(path, sizeof path, "%s/tests/kernels_ops/ops_ref.bin", MP_BINARY_DIR);
    snprintf(cmd, sizeof cmd, "'%s' '%s/tests/ref/ops.py' '%s'", MP_PYTHON, MP_SOURCE_DIR, path);
    int rc = system(cmd);
    if (rc == -1 || !WIFEXITED(rc) || WEXITSTATUS(rc) == 77 || WEXITSTATUS(rc) == 127) {
        fprintf(stderr, "test_ops_torch: PyTorch reference not available (%s): skipped\n", MP_PYTHON);
        return MP_TEST_SKIP;
    }
    CHECKF(WEXITSTATUS(rc) == 0, "ops.py failed (%d)", WEXITSTATUS(rc));
    refcase *cases;
    int n = refcases_load(path, &cases);
    CHECKF(n > 50, "could not read %s (%d cases)", path, n);
    if (n <= 0) return mp_test_result("test_ops_torch");
    if (ops_test_init(1 << 20)) return 1;
    int best = mp_cpu_set_level(-1);
    for (int level = 0; level <= best; level++) {
        mp_cpu_set_level(level);
        for (int i = 0; i < n; i++) {
            const refcase *c = &cases[i];
            const refarray *want = rc_array(c, "y");
            if (!want) want = rc_array(c, "out");
            if (!want) { CHECKF(0, "%s: no expected output", c->name); continue; }
            float *y1 = calloc((size_t)want->n, 4), *y3 = calloc((size_t)want->n, 4);
            double tol = run_case(&ex1, c, y1, want->n);
            run_case(&ex3, c, y3, want->n);
            CHECKF(tol > 0, "%s: unknown case kind", c->name);
            double e = relerr_f(y1, want->data, want->n);
            if (getenv("MP_TEST_VERBOSE")) fprintf(stderr, "%s %s: %.3g\n", mp_cpu_level_name(level), c->name, e);
            CHECKF(e <= tol, "level %s %s: error %.3g > %.3g", mp_cpu_level_name(level), c->name, e, tol);
            CHECKF(memcmp(y1, y3, (size_t)want->n * 4) == 0, "level %s %s: 1 vs 3 threads differ",
                   mp_cpu_level_name(level), c->name);
            free(y1), free(y3);
        }
    }
    fprintf(stderr, "test_ops_torch: %d cases x %d levels\n", n, best + 1);
    refcases_free(cases, n);
    ops_test_free();
    return mp_test_result("test_ops_torch");
}
