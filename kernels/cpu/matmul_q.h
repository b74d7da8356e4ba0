/* matmul_q.h — internals of the quantized-activation matmul (matmul_q*.c); see matmul_q.c for the
 * arithmetic every path reproduces. Not a public interface. */
#ifndef MP_CPU_MATMUL_Q_H
#define MP_CPU_MATMUL_Q_H

#include "kernels/mp.h"

/* Activations of M rows quantized to 8 bits: row m has qs[m*K ..], one scale per `block` values in
 * d[m*(K/block) ..], the sum of every 4 consecutive quants in s4[m*(K/4) ..] and of every 32 in
 * s32[m*(K/32) ..]. */
typedef struct mp_q8_act {
    int64_t K;
    int block;
    int8_t *qs;
    int32_t *s4, *s32;
    float *d;
} mp_q8_act;

/* Activation block size the weight dtype pairs with (32 or 256), 0 if it has no integer path. */
int mp_q8_act_block(mp_dtype dt);
/* The offset subtracted from a weight's unsigned quant (q8_0 128, q4_0 8, q5_0 16, q6_K 32, else 0). */
int mp_q8_weight_offset(mp_dtype dt);
size_t mp_q8_act_bytes(int64_t M, int64_t K, int block);
void mp_q8_act_layout(mp_q8_act *a, void *buf, int64_t M, int64_t K, int block);
void mp_q8_act_quantize_rows(mp_q8_act *a, const float *X, int64_t ldx, int64_t m0, int64_t m1);

/* Output columns are handled in groups of MP_Q8_NG weight rows. */
#define MP_Q8_NG 16

/* Y[m][n0 .. n0+nr) for m in [m0, m1): a SIMD kernel (nr <= MP_Q8_NG). */
typedef void (*mp_q8_kernel)(mp_dtype dt, const uint8_t *W, size_t row_bytes, int64_t n0, int nr, const mp_q8_act *a,
                             int64_t m0, int64_t m1, float *Y, int64_t ldy, const float *bias);
mp_q8_kernel mp_q8_kernel_avx2(mp_dtype dt);
mp_q8_kernel mp_q8_kernel_avx512(mp_dtype dt);

/* The scalar definition, columns [n0, n1). */
void mp_q8_matmul_scalar(mp_dtype dt, const uint8_t *W, size_t row_bytes, int64_t n0, int64_t n1, const mp_q8_act *a,
                         int64_t m0, int64_t m1, float *Y, int64_t ldy, const float *bias);

/* ---- packed panels for the large-M kernels (broadcast formulation) */

/* MP_Q8_NP weight rows packed for vpdpbusd with the activations broadcast:
 *   q    [K/4][NP][4] unsigned quants (k4 step s, row r: the quants k = 4s .. 4s+3)
 *   d    [nb][NP] block scale;  m [nb][NP] block min (q4_1/q5_1) or dmin (q4_K/q5_K)
 *   sc   [nb][16][NP] K-quant sub-block scales (8 used by q4_K/q5_K)
 *   mins [nb][4][NP][2] q4_K/q5_K mins as int16 pairs (sub-blocks 2i, 2i+1)
 * Rows past nr repeat row n0 (their outputs are not stored). */
#define MP_Q8_NP 32
/* Below this many rows the group kernels (weights unpacked in registers once per block, reused by up to 16
 * rows) beat packing panels with the scalar unpacker: 16-sequence decode was 1.2-1.9x faster at 32 than 8. */
#define MP_Q8_PANEL_MIN_M 32
typedef struct mp_q8_panel {
    uint8_t *q;
    float *d, *m;
    int32_t *sc;
    int16_t *mins;
} mp_q8_panel;
size_t mp_q8_panel_bytes(int64_t K, int block);
void mp_q8_panel_layout(mp_q8_panel *p, void *buf, int64_t K, int block);
void mp_q8_pack_panel(mp_dtype dt, const uint8_t *W, size_t row_bytes, int64_t n0, int nr, int64_t K, const mp_q8_panel *p);
/* Y[m0 .. m0+mr)[n0 .. n0+nr) from a packed panel (mr <= 4). */
typedef void (*mp_q8_panel_kernel)(mp_dtype dt, const mp_q8_panel *p, const mp_q8_act *a, int64_t m0, int mr, float *Y,
                                   int64_t ldy, int64_t n0, int nr, const float *bias);
mp_q8_panel_kernel mp_q8_panel_kernel_avx512(mp_dtype dt);

/* Runs the quantized matmul with `kern` (NULL: the scalar definition); with M >= MP_Q8_PANEL_MIN_M and a
 * panel kernel `pkern`, weights are packed into panels instead (same results). Returns 0 when W's dtype has no
 * integer path. */
int mp_q8_matmul_run(mp_exec *ex, mp_q8_kernel kern, mp_q8_panel_kernel pkern, float *Y, int64_t ldy, const float *X, int64_t ldx,
                     const mp_tensor *W, const float *bias, int64_t M);

#endif
