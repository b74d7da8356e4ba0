/* test_quant_roundtrip.c — quantize -> dequantize error bounds per dtype (each bound follows from the
 * format: half a quantization step of the block scale, plus the fp16 rounding of the scales), exact
 * round trips for values already on the grid, and the public ops (get_rows, convert) against the
 * reference functions. */
#include "kernels/cpu/ref.h"
#include "kernels/ops.h"
#include "test.h"

#include <float.h>

typedef struct {
    mp_dtype dt;
    double rel;   /* max |err| / (max|x| of the block) allowed */
    double qmax;  /* largest |quant * sub-scale|: fp16 scales lose up to 2^-25 absolute when subnormal */
} rt_case;

static void test_roundtrip(void) {
    /* Bounds: symmetric types err <= step/2 with step = amax/levels (plus fp16 scale rounding);
     * asymmetric (min) types step = range/levels; K-quants also quantize the scales to 6/4 bits. */
    const rt_case cases[] = {
        /* Q4_0/Q5_0 map -max to +8/+16, clamped to 7/15: one full step. K-quant bounds are those of the
         * format (half a step of a 15/31/63-level sub-block) plus the 6-bit quantization of the scales. */
        {MP_F16, 1.0 / 2048, 1}, {MP_BF16, 1.0 / 256, 0}, {MP_Q8_0, 0.5 / 127 + 1e-3, 128},
        {MP_Q8_1, 0.5 / 127 + 1e-3, 128}, {MP_Q4_0, 1.0 / 8 + 2e-3, 8}, {MP_Q4_1, 2 * 0.5 / 15 + 2e-3, 16},
        {MP_Q5_0, 1.0 / 16 + 2e-3, 16}, {MP_Q5_1, 2 * 0.5 / 31 + 2e-3, 32}, {MP_Q8_K, 0.5 / 127 + 1e-6, 0},
        {MP_Q6_K, 0.03, 32 * 128}, {MP_Q5_K, 0.08, 32 * 64}, {MP_Q4_K, 0.15, 16 * 64}, {MP_Q3_K, 0.35, 8 * 32},
        {MP_Q2_K, 0.6, 4 * 16},
    };
    unsigned long long s = 12345;
    enum { N = 4096 };
    static float x[N], y[N];
    static uint8_t q[N * 4];
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const mp_dtype dt = cases[c].dt;
        const int bs = mp_dtype_info(dt)->block_size;
        for (int trial = 0; trial < 4; trial++) {
            for (int i = 0; i < N; i++) {
                float v = mp_test_randf(&s);
                if (trial == 1) v *= 1e-3f;                       /* small magnitudes */
                if (trial == 2 && i % 97 == 0) v *= 20.0f;        /* outliers */
                if (trial == 3) v = 0.25f + 0.1f * v;             /* all positive, offset */
                x[i] = v;
            }
            if (trial == 0) for (int i = 0; i < 256; i++) x[i] = 0.0f; /* an all-zero block */
            int64_t bytes = mp_quantize_row(dt, x, q, N);
            CHECK_EQ_INT(bytes, mp_dtype_row_bytes(dt, N));
            mp_dequantize_row(dt, q, y, N);
            double worst = 0;
            for (int b = 0; b < N / bs; b++) {
                double amax = 0, lo = INFINITY, hi = -INFINITY;
                for (int i = b * bs; i < (b + 1) * bs; i++) {
                    amax = fmax(amax, fabs(x[i]));
                    lo = fmin(lo, x[i]);
                    hi = fmax(hi, x[i]);
                }
                double scale = bs == 1 ? fabs(x[b]) : (dt == MP_Q4_1 || dt == MP_Q5_1) ? (hi - lo) : amax;
                for (int i = b * bs; i < (b + 1) * bs; i++) {
                    double e = fabs((double)y[i] - x[i]);
                    e = fmax(0.0, e - cases[c].qmax * 0x1p-25); /* subnormal fp16 scale rounding */
                    if (scale == 0) CHECKF(e == 0, "%s: zero block not exact", mp_dtype_name(dt));
                    else if (e / scale > worst) worst = e / scale;
                }
            }
            CHECKF(worst <= cases[c].rel, "%s trial %d: worst relative error %.4g > %.4g", mp_dtype_name(dt), trial,
                   worst, cases[c].rel);
        }
    }
}

/* Dequantize(quantize(dequantize(q))) == dequantize(q): values on a format's grid survive (for the
 * symmetric 32-blocks, whose scale is recomputed exactly from the max). */
static void test_regrid(void) {
    const mp_dtype dts[] = {MP_Q8_0, MP_Q4_0, MP_Q5_0, MP_F16, MP_BF16};
    unsigned long long s = 777;
    enum { N = 1024 };
    static float x[N], y[N], z[N];
    static uint8_t q[N * 4], q2[N * 4];
    for (size_t c = 0; c < sizeof dts / sizeof dts[0]; c++) {
        for (int i = 0; i < N; i++) x[i] = mp_test_randf(&s);
        mp_quantize_row(dts[c], x, q, N);
        mp_dequantize_row(dts[c], q, y, N);
        mp_quantize_row(dts[c], y, q2, N);
        mp_dequantize_row(dts[c], q2, z, N);
        CHECK_ARRAY_NEAR(z, y, N, 0.0);
    }
}

static void test_get_rows_convert(void) {
    unsigned long long s = 99;
    enum { COLS = 512, ROWS = 9 };
    static float x[COLS * ROWS], y[COLS * 4], ref[COLS * 4];
    static uint8_t q[COLS * ROWS * 4], q2[COLS * ROWS * 4];
    mp_threadpool *tp = mp_threadpool_create(3);
    mp_exec ex;
    mp_error err;
    CHECK(mp_exec_init(&ex, MP_BACKEND_CPU, tp, 1 << 20, &err) == 0);
    for (int i = 0; i < COLS * ROWS; i++) x[i] = mp_test_randf(&s);
    const mp_dtype dts[] = {MP_F32, MP_F16, MP_BF16, MP_Q8_0, MP_Q4_0, MP_Q4_1, MP_Q5_0, MP_Q5_1, MP_Q4_K, MP_Q5_K, MP_Q6_K};
    for (size_t c = 0; c < sizeof dts / sizeof dts[0]; c++) {
        int64_t ne[2] = {COLS, ROWS};
        mp_tensor t;
        for (int r = 0; r < ROWS; r++)
            mp_quantize_row(dts[c], x + r * COLS, q + r * mp_dtype_row_bytes(dts[c], COLS), COLS);
        mp_tensor_init(&t, dts[c], 2, ne, q);
        int32_t ids[4] = {8, 0, 3, ROWS}; /* the last id is out of range */
        for (int level = 0; level <= 2; level++) {
            mp_cpu_set_level(level);
            mp_get_rows(&ex, y, &t, ids, 4);
            for (int i = 0; i < 3; i++)
                mp_ref_dequantize_row(dts[c], q + ids[i] * mp_dtype_row_bytes(dts[c], COLS), ref + i * COLS, COLS);
            CHECK_ARRAY_NEAR(y, ref, 3 * COLS, 0.0);
            CHECK(isnan(y[3 * COLS]) && isnan(y[4 * COLS - 1]));
            /* convert: f32 -> dt equals quantize_row; dt -> f32 equals dequantize; dt -> f16 via f32 */
            mp_convert(&ex, q2, dts[c], x, MP_F32, COLS * ROWS);
            CHECK(memcmp(q2, q, (size_t)mp_dtype_row_bytes(dts[c], COLS * ROWS)) == 0);
            static float back[COLS * ROWS], back2[COLS * ROWS];
            mp_convert(&ex, back, MP_F32, q, dts[c], COLS * ROWS);
            mp_ref_dequantize_row(dts[c], q, back2, COLS * ROWS);
            CHECK_ARRAY_NEAR(back, back2, COLS * ROWS, 0.0);
            static mp_f16 h[COLS * ROWS];
            mp_convert(&ex, h, MP_F16, q, dts[c], COLS * ROWS);
            int bad = 0;
            for (int i = 0; i < COLS * ROWS; i++) bad += h[i] != mp_f32_to_f16(back2[i]);
            CHECK_EQ_INT(bad, 0);
        }
    }
    mp_cpu_set_level(-1);
    mp_exec_free(&ex);
    mp_threadpool_free(tp);
}

int main(void) {
    test_roundtrip();
    test_regrid();
    test_get_rows_convert();
    return mp_test_result("test_quant_roundtrip");
}
