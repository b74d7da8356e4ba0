#!/usr/bin/env bash
# build.sh [release|asan] — configure and build into build/ (release) or build-asan/ (ASan+UBSan tests).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
kind=${1:-release}
jobs=$(nproc 2>/dev/null || echo 2)
case "$kind" in
  release)
    cmake -S "$here" -B "$here/build" -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build "$here/build" -j"$jobs" ;;
  asan)
    # The sanitizer build covers the host code; the CUDA backend is exercised by the release build.
    cmake -S "$here" -B "$here/build-asan" -DCMAKE_BUILD_TYPE=Debug -DMMPIPE_SANITIZE=ON -DMMPIPE_CUDA=OFF \
      -DCMAKE_C_FLAGS_DEBUG="-O1 -g" >/dev/null
    cmake --build "$here/build-asan" -j"$jobs" ;;
  *) echo "usage: build.sh [release|asan]" >&2; exit 1 ;;
esac
