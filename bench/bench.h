/* bench.h — `mmpipe bench <what>`. Every benchmark prints machine-readable lines:
 *   BENCH <suite> key=value key=value ...
 * and measures against this machine's own peak (FMA peak, memory bandwidth) so ratios are comparable
 * across noisy machines. */
#ifndef MP_BENCH_H
#define MP_BENCH_H
#include "kernels/mp.h"
#include <stddef.h>
int bench_ops(int argc, char **argv);
int bench_kernels(int argc, char **argv); /* bench_kernels.c: attention, norms, activations, rope, convs */
int bench_llm(int argc, char **argv);
int bench_transcribe(int argc, char **argv);
int bench_caption(int argc, char **argv);
/* bench_caption.c: the SmolVLM-256M-shaped random BF16 HF folder DIR/smolvlm-256m-random (written once) */
int bench_caption_model(const char *dir, char *model, size_t cap, mp_error *err);
int bench_vqa(int argc, char **argv);
int bench_batch(int argc, char **argv);

/* The machine's yardsticks, measured the same way for every suite (bench_ops.c): F32 FMA peak of a
 * register-only loop in GFLOP/s, and the STREAM triad a = b + s*c in GB/s (3 arrays counted), on
 * `threads` threads of tp, best of reps. */
typedef struct mp_threadpool mp_threadpool;
double bench_fma_peak(mp_threadpool *tp, int threads, int reps);
double bench_triad(mp_threadpool *tp, int threads, int reps);
#endif
