#!/usr/bin/env bash
# fuzz.sh [SECONDS] [HARNESS...] — build the libFuzzer harnesses with clang (build-fuzz/, ASan+UBSan)
# and run each for SECONDS (default 60). Harnesses (default: all):
#   model files: gguf safetensors hfjson llama2c ggml_bin
#   loaders:     whisper (ggml .bin) mmproj (SmolVLM / Qwen2-VL vision GGUF)
#   media:       image imgproc audio video
#   text:        tok_load tokenize jinja batch
# Seeds come from tests/fuzz/make_seeds.py, make_media_seeds.py and write_model_seeds.c (small generated
# files + pieces of ../shared/fixtures); corpora grow in build-fuzz/corpus/<harness>. A crash leaves
# build-fuzz/crash-<harness>-* and makes the script exit non-zero: fix it, then keep the input (small) as
# tests/fuzz/regress/<harness>/<name>; ctest's test_fuzz_<harness> (tests/robust) replays it.
# Needs clang with libFuzzer (Debian's clang package); CI does not: tests/robust replays without it.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-60}
shift || true
harnesses=("$@")
((${#harnesses[@]})) || harnesses=(gguf safetensors hfjson llama2c ggml_bin whisper mmproj image imgproc audio video tok_load
  tokenize jinja batch)
fixtures=${MMPIPE_FIXTURES:-$here/../shared/fixtures}
jobs=$(nproc 2>/dev/null || echo 2)
command -v clang >/dev/null || { echo "fuzz.sh: clang not found (scripts/setup.sh installs it)"; exit 1; }

CC=clang cmake -S "$here" -B "$here/build-fuzz" -DMMPIPE_FUZZ=ON -DMMPIPE_CUDA=OFF -DMMPIPE_TESTS=OFF \
  -DCMAKE_BUILD_TYPE=Debug >/dev/null || exit 1
targets=()
for h in "${harnesses[@]}"; do targets+=("fuzz_$h"); done
targets+=(fuzz_write_model_seeds)
cmake --build "$here/build-fuzz" -j"$jobs" --target "${targets[@]}" >/dev/null || { echo "fuzz.sh: build failed"; exit 1; }

seeds="$here/build-fuzz/seeds"
rm -rf "$seeds"
/usr/bin/python3 "$here/tests/fuzz/make_seeds.py" "$seeds" "$fixtures" || { echo "fuzz.sh: seed generation failed"; exit 1; }
/usr/bin/python3 "$here/tests/fuzz/make_media_seeds.py" "$seeds" "$fixtures" || { echo "fuzz.sh: seed generation failed"; exit 1; }
MMPIPE_FIXTURES=$fixtures ASAN_OPTIONS=detect_leaks=0 "$here/build-fuzz/tests/fuzz/fuzz_write_model_seeds" "$seeds" ||
  { echo "fuzz.sh: seed generation failed"; exit 1; }

status=0
for h in "${harnesses[@]}"; do
  corpus="$here/build-fuzz/corpus/$h"
  mkdir -p "$corpus"
  extra=()
  [[ $h == hfjson ]] && extra=(-max_len=262144)
  [[ $h == gguf || $h == safetensors ]] && extra=(-max_len=131072)
  [[ $h == ggml_bin || $h == llama2c ]] && extra=(-max_len=1100000)
  [[ $h == image || $h == audio || $h == video ]] && extra=(-max_len=65536)
  [[ $h == tok_load || $h == mmproj ]] && extra=(-max_len=131072)
  [[ $h == whisper ]] && extra=(-max_len=2400000)
  [[ $h == imgproc || $h == tokenize || $h == jinja || $h == batch ]] && extra=(-max_len=8192)
  [[ $h == tokenize ]] && extra+=(-dict="$here/tests/fuzz/tokenize.dict")
  [[ $h == jinja ]] && extra+=(-dict="$here/tests/fuzz/jinja.dict")
  echo "=== fuzz_$h for ${secs}s"
  ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1 \
    LSAN_OPTIONS=suppressions="$here/tests/fuzz/lsan.supp" \
    "$here/build-fuzz/tests/fuzz/fuzz_$h" "$corpus" "$seeds/$h" -max_total_time="$secs" -rss_limit_mb=2048 \
    -timeout=10 -print_final_stats=1 "${extra[@]}" -artifact_prefix="$here/build-fuzz/crash-$h-" \
    2>"$here/build-fuzz/fuzz_$h.log"
  rc=$?
  grep -E "^Done|stat::number_of_executed_units|cov:" "$here/build-fuzz/fuzz_$h.log" | tail -2
  if ((rc)); then
    echo "fuzz.sh: fuzz_$h FAILED (exit $rc); see build-fuzz/fuzz_$h.log and build-fuzz/crash-$h-*"
    grep -E "ERROR|SUMMARY" "$here/build-fuzz/fuzz_$h.log" | head -5
    status=1
  fi
done
exit $status
