// test_cuda_host.cu — runs on the CPU (no GPU needed; label kernels): the arithmetic the CUDA kernels share
// with their host twins (the MP_HD functions of kernels/cuda/*.cuh, compiled here for the host) against the
// CPU ops, bit for bit:
//  - block decoding (mp_deq8, used by the mat-vec kernel, the F16 dequantizer, get_rows, convert) vs
//    mp_ref_dequantize_row, on quantized rows and on blocks of random bytes (every bit pattern matters);
//  - the 32-block quantizers (convert on the GPU) vs mp_ref_quantize_row;
//  - F32 -> F16/BF16 and F16 -> F32 conversions vs kernels/mp.h over many bit patterns;
//  - the RoPE angle recipe (mp_rope_pair) vs the CPU's mp_rope_cache for every mode;
//  - attention: the paged K/V row lookup (mp_fa_kv_row) vs the CPU's mp_attn_kv_row, and the KV-split
//    launch plan (every key in exactly one non-empty split, whatever the shapes and SM count).
// This pins down the bit layouts and the angle semantics on every machine; the gpu tests then check that
// the kernels around them are right.
#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/ref.h"
#include "kernels/cuda/attention.cuh"
#include "kernels/cuda/quant.cuh"
#include "kernels/cuda/rope.cuh"
#include "test.h"

static unsigned long long rng = 0x5DEECE66DULL;

static float randf(float scale) { return scale * mp_test_randf(&rng); }

template <int DT> static void decode_row(const uint8_t *row, int64_t K, float *out) {
    constexpr int CPB = mp_qt<DT>::BS / 8;
    for (int64_t ch = 0; ch < K / 8; ch++) {
        const int64_t blk = ch / CPB;
        mp_deq8<DT>(row + blk * mp_qt<DT>::TS, (int)(ch - blk * CPB), out + ch * 8);
    }
}

static void decode_row_dt(int dt, const uint8_t *row, int64_t K, float *out) {
#define DEC(D) decode_row<D>(row, K, out)
    MP_QUANT_SWITCH(dt, DEC, CHECKF(0, "no decoder for %s", mp_dtype_name(dt)));
#undef DEC
}

static int same_bits(const float *a, const float *b, int64_t n, int64_t *where) {
    for (int64_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], 4) != 0) {
            *where = i;
            return 0;
        }
    return 1;
}

// Offsets of the f16 scale fields in a block, which must hold sane values when the block is random bytes.
static void sanitize_scales(int dt, uint8_t *b) {
    int offs[2] = {-1, -1};
    switch (dt) {
    case MP_Q8_0: case MP_Q4_0: case MP_Q5_0: offs[0] = 0; break;
    case MP_Q4_1: case MP_Q5_1: case MP_Q4_K: case MP_Q5_K: offs[0] = 0; offs[1] = 2; break;
    case MP_Q6_K: offs[0] = 208; break;
    case MP_Q2_K: offs[0] = 80; offs[1] = 82; break;
    case MP_Q3_K: offs[0] = 108; break;
    default: return;
    }
    for (int i = 0; i < 2; i++)
        if (offs[i] >= 0) {
            uint16_t h = mp_f32_to_f16(randf(0.1f));
            memcpy(b + offs[i], &h, 2);
        }
}

static void test_decode(void) {
    static const int dts[] = {MP_F32,  MP_F16,  MP_BF16, MP_Q8_0, MP_Q4_0, MP_Q4_1, MP_Q5_0,
                              MP_Q5_1, MP_Q2_K, MP_Q3_K, MP_Q4_K, MP_Q5_K, MP_Q6_K};
    const int64_t K = 4096;
    float *x = (float *)malloc(K * 4), *ref = (float *)malloc(K * 4), *got = (float *)malloc(K * 4);
    uint8_t *q = (uint8_t *)malloc((size_t)mp_dtype_row_bytes(MP_F32, K));
    for (int di = 0; di < (int)(sizeof dts / sizeof dts[0]); di++) {
        const int dt = dts[di];
        const int64_t rb = mp_dtype_row_bytes((mp_dtype)dt, K);
        for (int variant = 0; variant < 2; variant++) {
            if (variant == 0) { // a quantized row
                for (int64_t i = 0; i < K; i++) x[i] = randf(variant ? 1.0f : 3.0f);
                mp_ref_quantize_row((mp_dtype)dt, x, q, K);
            } else { // random bytes with sane scales
                if (dt == MP_F32 || dt == MP_F16 || dt == MP_BF16) continue;
                for (int64_t i = 0; i < rb; i++) q[i] = (uint8_t)mp_test_rng(&rng);
                const int ts = mp_dtype_info(dt)->type_size;
                for (int64_t b = 0; b < rb / ts; b++) sanitize_scales(dt, q + b * ts);
            }
            mp_ref_dequantize_row((mp_dtype)dt, q, ref, K);
            decode_row_dt(dt, q, K, got);
            int64_t w = 0;
            CHECKF(same_bits(got, ref, K, &w), "decode %s variant %d: element %lld: %.9g vs cpu %.9g", mp_dtype_name(dt),
                   variant, (long long)w, got[w], ref[w]);
        }
    }
    free(x); free(ref); free(got); free(q);
}

static void test_quantize(void) {
    static const int dts[] = {MP_Q8_0, MP_Q4_0, MP_Q4_1, MP_Q5_0, MP_Q5_1};
    const int64_t n = 32 * 512;
    float *x = (float *)malloc(n * 4);
    for (int64_t i = 0; i < n; i++) x[i] = randf(5.0f);
    for (int i = 0; i < 32; i++) x[i] = 0.0f;                      // all-zero block
    for (int i = 32; i < 64; i++) x[i] = 1.25f;                    // constant block
    for (int i = 64; i < 96; i++) x[i] = (float)(i - 80) * 0.5f;   // exact ties
    for (int i = 96; i < 128; i++) x[i] = i == 100 ? -7.0f : 3.0f; // negative extreme
    uint8_t *a = (uint8_t *)malloc(n * 2), *b = (uint8_t *)malloc(n * 2);
    for (int di = 0; di < 5; di++) {
        const int dt = dts[di], ts = mp_dtype_info(dt)->type_size;
        mp_ref_quantize_row((mp_dtype)dt, x, a, n);
        for (int64_t blk = 0; blk < n / 32; blk++) mp_quantize_block(dt, x + blk * 32, b + blk * ts);
        CHECKF(memcmp(a, b, (size_t)(n / 32 * ts)) == 0, "quantize %s differs from the CPU", mp_dtype_name(dt));
    }
    free(x); free(a); free(b);
}

static void test_half(void) {
    unsigned long long s = 42;
    for (int i = 0; i < 2000000; i++) {
        uint32_t u = i < 65536 ? (uint32_t)i << 13 ^ (uint32_t)(i & 0x1fff) : (uint32_t)mp_test_rng(&s);
        float f;
        memcpy(&f, &u, 4);
        if (mp_d_to_f16(f) != mp_f32_to_f16(f) || mp_d_to_bf16(f) != mp_f32_to_bf16(f)) {
            CHECKF(0, "f32 0x%08x: f16 %04x/%04x bf16 %04x/%04x", u, mp_d_to_f16(f), mp_f32_to_f16(f), mp_d_to_bf16(f),
                   mp_f32_to_bf16(f));
            break;
        }
    }
    for (uint32_t h = 0; h < 65536; h++) {
        float a = mp_d_f16_exact((uint16_t)h), b = mp_f16_to_f32((uint16_t)h);
        if (memcmp(&a, &b, 4) != 0) {
            CHECKF(0, "f16 0x%04x: %.9g vs %.9g", h, a, b);
            break;
        }
    }
}

// RoPE: the (cos, sin) table of every pair for many tokens and settings. Angles built differently would
// differ by up to ~1e-7 * pos radians; cos/sin of equal angles agree to 1 ulp (double sincos rounded vs
// glibc's cosf/sinf), so 2.5e-7 * max(1, mscale) separates the two.
static void rope_check(const char *name, const mp_rope_params *p, int32_t max_pos) {
    mp_rope_dev r;
    mp_rope_prepare_dev(p, &r);
    const int npairs = r.npairs;
    float *cs = (float *)malloc((size_t)npairs * 8);
    int32_t pos[4 * 64];
    for (int i = 0; i < 4 * 64; i++) pos[i] = (int32_t)(mp_test_rng(&rng) % (uint64_t)(max_pos + 1));
    double worst = 0;
    for (int t = 0; t < 64; t++) {
        mp_rope_cache(p, pos, t, cs);
        for (int i = 0; i < npairs; i++) {
            float c, s;
            mp_rope_pair(r, pos + (r.mrope ? 4 * t : t), i, &c, &s);
            double d = fmax(fabs((double)c - cs[2 * i]), fabs((double)s - cs[2 * i + 1]));
            if (d > worst) worst = d;
        }
    }
    const double mag = fabs((double)r.mscale * (r.ext_factor != 0 ? r.yarn_mag : 1.0));
    CHECKF(worst <= 2.5e-7 * (mag > 1 ? mag : 1), "rope %s: max |cos/sin difference| %.3g", name, worst);
    free(cs);
}

static void test_rope(void) {
    mp_rope_params p;
    static const int dims[] = {64, 80, 128};
    for (int di = 0; di < 3; di++) {
        const int hd = dims[di];
        memset(&p, 0, sizeof p);
        p.head_dim = hd; p.n_rot = hd; p.mode = MP_ROPE_NORMAL; p.theta = 10000.0f; p.freq_scale = 1.0f;
        rope_check("normal", &p, 200000);
        p.mode = MP_ROPE_NEOX; p.theta = 1000000.0f; p.n_rot = 32;
        rope_check("neox partial", &p, 100000);
        p.n_rot = hd; p.theta = 500000.0f; p.freq_scale = 0.25f;
        float ff[64];
        for (int i = 0; i < 64; i++) ff[i] = 1.0f + (float)(i % 5) * 1.75f;
        p.freq_factors = ff;
        rope_check("linear + freq_factors", &p, 100000);
        memset(&p, 0, sizeof p);
        p.head_dim = hd; p.n_rot = hd; p.mode = MP_ROPE_NEOX; p.theta = 10000.0f; p.freq_scale = 0.25f;
        p.ext_factor = 1.0f; p.attn_factor = 1.0f; p.beta_fast = 32.0f; p.beta_slow = 1.0f; p.n_ctx_orig = 4096;
        rope_check("yarn", &p, 16000);
        p.ext_factor = 0.5f; p.attn_factor = 0.8f;
        rope_check("yarn partial mix", &p, 16000);
        memset(&p, 0, sizeof p);
        p.head_dim = hd; p.n_rot = hd; p.mode = MP_ROPE_NEOX; p.theta = 1000000.0f;
        p.sections[0] = hd / 8; p.sections[1] = hd / 8 + 2; p.sections[2] = hd / 4 - 2;
        rope_check("mrope", &p, 30000);
        p.sections[0] = hd / 4; p.sections[1] = hd / 4; p.sections[2] = 0; p.mrope_vision = 1; p.theta = 10000.0f;
        rope_check("mrope vision", &p, 1000);
    }
    memset(&p, 0, sizeof p);
    p.head_dim = 96;
    rope_check("defaults", &p, 50000);
}

// Paged K/V: the kernel's row of key j (looked up once per key tile) is the CPU's, for shuffled tables,
// block sizes that do and do not divide the key tile, and keys past 2^31 / block rows.
static void test_attn_rows(void) {
    static const int bszs[] = {1, 3, 16, 32, 48, 256, 1000};
    int32_t tbl[512];
    for (int bi = 0; bi < 7; bi++) {
        const int bsz = bszs[bi];
        for (int i = 0; i < 512; i++) tbl[i] = (int32_t)(mp_test_rng(&rng) % 100000);
        mp_attn_params p;
        memset(&p, 0, sizeof p);
        p.kv_block_table = tbl;
        p.kv_block_size = bsz;
        int bad = 0;
        for (int64_t j = 0; j < (int64_t)512 * bsz && !bad; j += 1 + (int64_t)(mp_test_rng(&rng) % 7))
            if (mp_fa_kv_row(tbl, bsz, j) != mp_attn_kv_row(&p, j)) {
                CHECKF(0, "attention kv row: block %d key %lld: %lld vs cpu %lld", bsz, (long long)j,
                       (long long)mp_fa_kv_row(tbl, bsz, j), (long long)mp_attn_kv_row(&p, j));
                bad = 1;
            }
        p.kv_block_table = NULL;
        CHECK(mp_fa_kv_row(NULL, bsz, 12345) == 12345 && mp_attn_kv_row(&p, 12345) == 12345);
    }
}

// The KV split of the flash-attention launch: split s covers [s*kps, min((s+1)*kps, n_kv)); together the
// splits cover every key once, none is empty (an empty split would still be merged correctly, but the plan
// promises none), kps is a whole number of key tiles, and a split is only used when blocks are few.
static void test_attn_plan(void) {
    static const int sms_list[] = {1, 16, 108, 132, 144};
    static const int nqs[] = {1, 2, 15, 16, 17, 100, 4096};
    static const int nhs[] = {1, 2, 8, 14, 32, 64};
    int cases = 0, bad = 0;
    for (int si = 0; si < 5; si++)
        for (int qi = 0; qi < 7; qi++)
            for (int hi = 0; hi < 6; hi++)
                for (int n_kv = 0; n_kv <= 70000 && !bad; n_kv = n_kv < 300 ? n_kv + 1 : n_kv * 5 / 4 + 7) {
                    const int sms = sms_list[si], n_q = nqs[qi], n_head = nhs[hi];
                    const mp_fa_plan pl = mp_fa_make_plan(n_q, n_head, n_kv, sms);
                    cases++;
                    int ok = pl.qtiles == (n_q + FA_BQ - 1) / FA_BQ && pl.n_split >= 1 && pl.n_split <= 64 &&
                             pl.keys_per_split > 0 && pl.keys_per_split % FA_BK == 0 &&
                             (pl.n_split == 1 || pl.qtiles * n_head < 2 * sms);
                    if (pl.n_split == 1) ok = ok && pl.keys_per_split >= n_kv;
                    else ok = ok && (pl.n_split - 1) * pl.keys_per_split < n_kv && pl.n_split * pl.keys_per_split >= n_kv &&
                              pl.keys_per_split >= 4 * FA_BK;
                    if (!ok) {
                        CHECKF(0, "attention plan n_q=%d heads=%d n_kv=%d sms=%d: %lld splits of %lld keys", n_q, n_head,
                               n_kv, sms, (long long)pl.n_split, (long long)pl.keys_per_split);
                        bad = 1;
                    }
                }
    CHECKF(cases > 10000, "only %d plan cases", cases);
    // decode over a long cache on an H100-sized GPU is split (the point of the plan)
    CHECK(mp_fa_make_plan(1, 8, 4096, 132).n_split > 1);
}

int main(void) {
    test_decode();
    test_quantize();
    test_half();
    test_rope();
    test_attn_rows();
    test_attn_plan();
    return mp_test_result("test_cuda_host");
}
