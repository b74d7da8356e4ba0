#!/usr/bin/env bash
# setup.sh — install every Debian package the build, tests and benchmarks need. Idempotent: when all
# packages are present it installs nothing and touches no network.
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config git
  libjpeg62-turbo-dev libpng-dev libsndfile1-dev
  libavformat-dev libavcodec-dev libavutil-dev libswscale-dev libswresample-dev ffmpeg
  libcurl4-openssl-dev libssl-dev libcjson-dev zlib1g-dev
  libopenblas-dev
  python3 python3-torch python3-numpy python3-pil
  clang libclang-rt-14-dev
  nodejs npm
  slurm-wlm munge
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# node/npm may come from elsewhere than Debian (e.g. preinstalled): do not fight it.
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
  tmp=()
  for p in "${missing[@]}"; do [[ $p == nodejs || $p == npm ]] || tmp+=("$p"); done
  missing=("${tmp[@]+"${tmp[@]}"}")
fi

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "setup: all Debian packages present"
fi

# npm packages used as independent references by the tests (tokenizers, chat templates, preprocessing).
here=$(cd "$(dirname "$0")/.." && pwd)
if [[ -f "$here/tests/js/package.json" ]] && command -v npm >/dev/null 2>&1; then
  if [[ ! -d "$here/tests/js/node_modules" ]]; then
    echo "setup: installing npm test references into tests/js/node_modules"
    (cd "$here/tests/js" && { npm ci --no-audit --no-fund --loglevel=error || npm install --no-audit --no-fund --loglevel=error; }) \
      || echo "setup: warning: npm install failed; tests that need the JS references will be skipped"
  fi
fi
