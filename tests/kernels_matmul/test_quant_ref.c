/* test_quant_ref.c — the block formats against an independent numpy implementation (tests/ref/quants.py,
 * run with MP_PYTHON): dequantization of random blocks bit-exact for every dtype at every SIMD level, and
 * quantization bit-exact with a Python port of llama.cpp's quantize_row_*_ref (q8_0, q4_0, q4_1, q5_0,
 * q5_1, q8_K, q4_K, q5_K, q6_K, f16, bf16) on random data plus edge cases (zero, constant, tiny, outlier,
 * exact rounding ties). Skipped (77) without python3 + numpy. */
#include "kernels/cpu/ref.h"
#include "kernels/ops.h"
#include "test.h"

#include <unistd.h>

static char g_dir[256];

static int run_py(const char *mode, const char *type, const void *in, size_t in_bytes, int64_t n, void *out,
                  size_t out_bytes) {
    char fin[512], fout[512], cmd[2048];
    snprintf(fin, sizeof fin, "%s/in.bin", g_dir);
    snprintf(fout, sizeof fout, "%s/out.bin", g_dir);
    FILE *f = fopen(fin, "wb");
    if (!f || fwrite(in, 1, in_bytes, f) != in_bytes) { if (f) fclose(f); return -1; }
    fclose(f);
    snprintf(cmd, sizeof cmd, "'%s' '%s/tests/ref/quants.py' %s %s '%s' %lld '%s'", MP_PYTHON, MP_SOURCE_DIR, mode,
             type, fin, (long long)n, fout);
    if (system(cmd) != 0) return -1;
    f = fopen(fout, "rb");
    if (!f) return -1;
    size_t got = fread(out, 1, out_bytes + 1, f);
    fclose(f);
    return got == out_bytes ? 0 : -1;
}

static int same_float_bits(const float *a, const float *b, int64_t n, int64_t *where) {
    for (int64_t i = 0; i < n; i++) {
        uint32_t x, y;
        memcpy(&x, &a[i], 4);
        memcpy(&y, &b[i], 4);
        if (x != y && !(a[i] != a[i] && b[i] != b[i])) { *where = i; return 0; }
    }
    return 1;
}

static unsigned long long g_s = 2024;

static void put_f16(uint8_t *p, float v) { mp_f16 h = mp_f32_to_f16(v); memcpy(p, &h, 2); }

/* Random raw blocks of dt; scale fields are finite halfs (of both signs, some tiny). */
static void random_blocks(mp_dtype dt, uint8_t *q, int64_t nblocks) {
    const int ts = mp_dtype_info(dt)->type_size;
    for (int64_t i = 0; i < nblocks * ts; i++) q[i] = (uint8_t)mp_test_rng(&g_s);
    for (int64_t b = 0; b < nblocks; b++) {
        uint8_t *p = q + b * ts;
        float s1 = mp_test_randf(&g_s) * (b % 5 == 4 ? 1e-6f : 0.1f), s2 = mp_test_randf(&g_s) * 0.1f;
        switch (dt) {
        case MP_Q4_0: case MP_Q5_0: case MP_Q8_0: put_f16(p, s1); break;
        case MP_Q4_1: case MP_Q5_1: case MP_Q4_K: case MP_Q5_K: put_f16(p, s1); put_f16(p + 2, s2); break;
        case MP_Q2_K: put_f16(p + 80, s1); put_f16(p + 82, s2); break;
        case MP_Q3_K: put_f16(p + 108, s1); break;
        case MP_Q6_K: put_f16(p + 208, s1); break;
        case MP_Q8_K: memcpy(p, &s1, 4); break;
        default: break; /* f16/bf16/f32: any bits, NaNs compare equal to NaNs */
        }
    }
    if (dt == MP_F32) /* avoid signalling-NaN payload games: keep f32 finite */
        for (int64_t i = 0; i < nblocks; i++) ((float *)q)[i] = mp_test_randf(&g_s) * 100;
}

static void test_dequant(void) {
    const mp_dtype dts[] = {MP_F32, MP_F16, MP_BF16, MP_Q4_0, MP_Q4_1, MP_Q5_0, MP_Q5_1, MP_Q8_0,
                            MP_Q2_K, MP_Q3_K, MP_Q4_K, MP_Q5_K, MP_Q6_K, MP_Q8_K};
    enum { N = 256 * 24 };
    static uint8_t q[N * 4];
    static float want[N], got[N];
    for (size_t c = 0; c < sizeof dts / sizeof dts[0]; c++) {
        const mp_dtype dt = dts[c];
        const int64_t nblocks = N / mp_dtype_info(dt)->block_size;
        random_blocks(dt, q, nblocks);
        const int64_t bytes = mp_dtype_row_bytes(dt, N);
        if (run_py("dequant", mp_dtype_name(dt), q, (size_t)bytes, N, want, sizeof want) != 0) {
            CHECKF(0, "quants.py dequant %s failed", mp_dtype_name(dt));
            continue;
        }
        int64_t at = 0;
        mp_ref_dequantize_row(dt, q, got, N);
        CHECKF(same_float_bits(got, want, N, &at), "%s ref dequant differs at %lld: %.9g vs numpy %.9g",
               mp_dtype_name(dt), (long long)at, got[at], want[at]);
        for (int level = 1; level <= 2; level++) {
            if (mp_cpu_set_level(level) != level) continue;
            /* odd lengths and offsets: every block count from 1, unaligned destination */
            for (int64_t nb = 1; nb <= 9; nb += 4) {
                const int64_t n = nb * mp_dtype_info(dt)->block_size;
                static float tmp[N + 1];
                mp_dequantize_row(dt, q, tmp + 1, n);
                CHECKF(same_float_bits(tmp + 1, want, n, &at), "%s %s dequant (%lld) differs at %lld",
                       mp_dtype_name(dt), mp_cpu_level_name(level), (long long)n, (long long)at);
            }
            mp_dequantize_row(dt, q, got, N);
            CHECKF(same_float_bits(got, want, N, &at), "%s %s dequant differs at %lld: %.9g vs %.9g",
                   mp_dtype_name(dt), mp_cpu_level_name(level), (long long)at, got[at], want[at]);
        }
        mp_cpu_set_level(-1);
    }
}

/* Inputs for the quantizers: random blocks of several shapes plus edge cases. */
static void quant_inputs(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        const int64_t blk = i / 256;
        float v = mp_test_randf(&g_s);
        switch (blk % 8) {
        case 0: break;
        case 1: v = v * v * v; break;                       /* heavy near zero */
        case 2: v = 3.0f + 0.5f * v; break;                 /* all positive, offset */
        case 3: v = (i % 61 == 0) ? 40.0f * v : 0.05f * v; break; /* outliers */
        case 4: v *= 1e-5f; break;                          /* subnormal half scales */
        case 5: v = (i % 256 < 128) ? 0.0f : -2.0f * fabsf(v); break; /* zero half, negative half */
        case 6: v = 1.25f; break;                           /* constant block */
        case 7: v = (float)((i % 17) - 8) * 0.5f + 0.25f * (i % 2); break; /* on-grid values, ties */
        }
        x[i] = v;
    }
    /* a q8 block with exact .5 ties after scaling (amax 127 -> d = 1): roundf rounds half away from zero */
    for (int j = 0; j < 32; j++) x[j] = j == 0 ? 127.0f : (float)(j % 7) - 3.5f;
    for (int j = 32; j < 64; j++) x[j] = 0.0f; /* an all-zero 32-block */
}

static void test_quant(void) {
    const mp_dtype dts[] = {MP_F16, MP_BF16, MP_Q8_0, MP_Q4_0, MP_Q4_1, MP_Q5_0, MP_Q5_1, MP_Q8_K,
                            MP_Q4_K, MP_Q5_K, MP_Q6_K};
    enum { N = 256 * 16 };
    static float x[N];
    static uint8_t want[N * 4], got[N * 4];
    quant_inputs(x, N);
    for (size_t c = 0; c < sizeof dts / sizeof dts[0]; c++) {
        const mp_dtype dt = dts[c];
        const int64_t bytes = mp_dtype_row_bytes(dt, N);
        if (run_py("quant", mp_dtype_name(dt), x, sizeof x, N, want, (size_t)bytes) != 0) {
            CHECKF(0, "quants.py quant %s failed", mp_dtype_name(dt));
            continue;
        }
        CHECK_EQ_INT(mp_quantize_row(dt, x, got, N), bytes);
        int64_t first = -1;
        for (int64_t i = 0; i < bytes; i++)
            if (got[i] != want[i]) { first = i; break; }
        const int ts = mp_dtype_info(dt)->type_size;
        CHECKF(first < 0, "%s quantize differs from llama.cpp's *_ref (python port) in block %lld byte %lld: %02x vs %02x",
               mp_dtype_name(dt), (long long)(first / ts), (long long)(first % ts), first < 0 ? 0 : got[first],
               first < 0 ? 0 : want[first]);
    }
}

int main(void) {
    char probe[1024];
    snprintf(probe, sizeof probe, "'%s' -c 'import numpy' 2>/dev/null", MP_PYTHON);
    if (access(MP_PYTHON, X_OK) != 0 || system(probe) != 0) {
        fprintf(stderr, "test_quant_ref: %s with numpy not available: skipped\n", MP_PYTHON);
        return MP_TEST_SKIP;
    }
    snprintf(g_dir, sizeof g_dir, "/tmp/mp_quant_ref_XXXXXX");
    if (!mkdtemp(g_dir)) return 1;
    test_dequant();
    test_quant();
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_dir);
    return mp_test_result("test_quant_ref");
}
