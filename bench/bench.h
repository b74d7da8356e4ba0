/* bench.h — `mmpipe bench <what>`. Every benchmark prints machine-readable lines:
 *   BENCH <suite> key=value key=value ...
 * and measures against this machine's own peak (FMA peak, memory bandwidth) so ratios are comparable
 * across noisy machines. */
#ifndef MP_BENCH_H
#define MP_BENCH_H
int bench_ops(int argc, char **argv);
int bench_kernels(int argc, char **argv); /* bench_kernels.c: attention, norms, activations, rope, convs */
int bench_llm(int argc, char **argv);
int bench_transcribe(int argc, char **argv);
int bench_caption(int argc, char **argv);
int bench_vqa(int argc, char **argv);
int bench_batch(int argc, char **argv);
#endif
