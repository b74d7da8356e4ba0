#!/usr/bin/env bash
# test.sh — the full test suite: builds the release and the ASan+UBSan trees, runs ctest in both
# (sanitizer tree first, with the slow/benchmark-like labels excluded), ends with the release ctest
# summary. Exit status is non-zero on any failure. GPU tests (label gpu) report "skipped" without a GPU.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
jobs=$(nproc 2>/dev/null || echo 2)
status=0
bash "$here/scripts/build.sh" release || exit 1
bash "$here/scripts/build.sh" asan || exit 1
echo "=== ctest (ASan+UBSan build) ==="
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir "$here/build-asan" -j"$jobs" --output-on-failure -LE 'gpu|nosan' || status=1
echo "=== ctest (release build) ==="
ctest --test-dir "$here/build" -j"$jobs" --output-on-failure || status=1
exit $status
