#!/usr/bin/env bash
# Hub download tests against a local hub emulator (hub_server.py) serving real fixture files:
# cache layout (blobs / snapshots symlinks / refs), checksums, reuse of the cache, offline use,
# resume after a cut and across runs, checksum mismatch, 404 / 401 gated + HF_TOKEN, GGUF-only repos,
# disk full, hostile file names.
set -u
: "${MMPIPE:?}" "${MMPIPE_FIXTURES:?}"
PY=${MP_PYTHON:-/usr/bin/python3}
[[ -x $PY ]] || PY=python3
HERE=$(cd "$(dirname "$0")" && pwd)
[[ -f $MMPIPE_FIXTURES/hf/HuggingFaceTB--SmolVLM-256M-Instruct/config.json ]] || { echo "fixtures absent: skip"; exit 77; }

T=$(mktemp -d)
SERVER_PID=""
cleanup() { [[ -n $SERVER_PID ]] && kill "$SERVER_PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT

fails=0
ok() { echo "ok   - $*"; }
bad() { echo "FAIL - $*"; fails=$((fails + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }

start_server() {
  rm -f "$T/port"
  "$PY" "$HERE/hub_server.py" --root "$MMPIPE_FIXTURES" --port-file "$T/port" --log "$T/log" "$@" &
  SERVER_PID=$!
  for _ in $(seq 100); do [[ -f $T/port ]] && break; sleep 0.1; done
  [[ -f $T/port ]] || { echo "server did not start"; exit 1; }
  export HF_ENDPOINT="http://127.0.0.1:$(cat "$T/port")"
}
stop_server() { kill "$SERVER_PID" 2>/dev/null; wait "$SERVER_PID" 2>/dev/null; SERVER_PID=""; }

export HF_HOME="$T/hf"
unset HF_HUB_CACHE HUGGINGFACE_HUB_CACHE HF_TOKEN HF_HUB_OFFLINE XDG_CACHE_HOME
SMOL=HuggingFaceTB/SmolVLM-256M-Instruct
FX_SMOL="$MMPIPE_FIXTURES/hf/HuggingFaceTB--SmolVLM-256M-Instruct"
FX_ST="$MMPIPE_FIXTURES/hf/lora-smollm2-360m-instruct-ml-tutor/adapter_model.safetensors"
COMMIT=0123456789abcdef0123456789abcdef01234567
REPO_DIR="$HF_HOME/hub/models--HuggingFaceTB--SmolVLM-256M-Instruct"
git_sha1() { git hash-object "$1"; }
sha256() { sha256sum "$1" | cut -d' ' -f1; }

start_server
: > "$T/log"

# 1. a whole model: configs, tokenizer, safetensors; README/onnx not fetched
out=$("$MMPIPE" pull "$SMOL" --no-progress 2>"$T/err")
rc=$?
check "pull exits 0" test $rc -eq 0
check "pull prints the snapshot folder" test "$out" = "$REPO_DIR/snapshots/$COMMIT"
check "config.json byte-identical" cmp -s "$out/config.json" "$FX_SMOL/config.json"
check "tokenizer.json byte-identical (LFS path)" cmp -s "$out/tokenizer.json" "$FX_SMOL/tokenizer.json"
check "model.safetensors byte-identical (LFS redirect)" cmp -s "$out/model.safetensors" "$FX_ST"
check "merges.txt fetched (*.txt)" test -f "$out/merges.txt"
check "README.md not fetched by default" test ! -e "$out/README.md"
check "onnx not fetched by default" test ! -e "$out/onnx/vision_encoder.onnx"
check "refs/main holds the commit" test "$(cat "$REPO_DIR/refs/main")" = "$COMMIT"
st_sha=$(sha256 "$FX_ST")
check "LFS blob named by sha256" test -f "$REPO_DIR/blobs/$st_sha"
check "small blob named by git sha1" test -f "$REPO_DIR/blobs/$(git_sha1 "$FX_SMOL/config.json")"
check "snapshot entry is a relative symlink to the blob" \
  test "$(readlink "$out/model.safetensors")" = "../../blobs/$st_sha"
check "no .incomplete left" test -z "$(ls "$REPO_DIR/blobs" | grep incomplete)"

# 2. nested path + single file with :FILE
f=$("$MMPIPE" pull "$SMOL:onnx/vision_encoder.onnx" -q)
check "nested file path" test "$f" = "$REPO_DIR/snapshots/$COMMIT/onnx/vision_encoder.onnx"
check "nested symlink goes up one more level" test "$(readlink "$f" | cut -c1-12)" = "../../../blo"
check "nested file readable" grep -q "not really onnx" "$f"

# 3. second pull uses the cache: no content GET of the blobs
: > "$T/log"
"$MMPIPE" pull "$SMOL" -q >/dev/null
check "cached: no blob downloaded again" test -z "$(grep '^GET /cdn/' "$T/log")"
check "cached: no file GET again" test -z "$(grep '^GET .*/resolve/' "$T/log")"

# 4. offline: HF_HUB_OFFLINE=1 answers from the cache without any request
: > "$T/log"
out2=$(HF_HUB_OFFLINE=1 "$MMPIPE" pull "$SMOL" -q)
check "offline pull from cache" test "$out2" = "$out"
check "offline: no request at all" test ! -s "$T/log"
HF_HUB_OFFLINE=1 "$MMPIPE" pull acme/gguf-only:tiny-Q8_0.gguf -q 2>"$T/err" >/dev/null
rc=$?
check "offline + not cached: non-zero exit" test $rc -ne 0
check "offline + not cached: clear error" grep -q "not in the cache.*HF_HUB_OFFLINE" "$T/err"

# 5. server unreachable: fall back to the cache; uncached gives a clear error
stop_server
out3=$("$MMPIPE" pull "$SMOL:config.json" -q 2>"$T/err")
check "unreachable hub: cached file still resolves" test "$out3" = "$out/config.json"
"$MMPIPE" pull acme/gguf-only:tiny-Q8_0.gguf -q 2>"$T/err" >/dev/null
rc=$?
check "unreachable + not cached: non-zero" test $rc -ne 0
check "unreachable + not cached: says so" grep -q "not in the cache.*cannot be reached" "$T/err"

# 6. resume after a cut connection (in-process retry with Range)
export HF_HOME="$T/hf2"
start_server --cut-after 100000
: > "$T/log"
"$MMPIPE" pull "$SMOL:model.safetensors" -q 2>"$T/err" >"$T/out"
rc=$?
check "cut download still succeeds" test $rc -eq 0
check "resumed with Range: bytes=100000-" grep -q "^GET /cdn/$st_sha range=bytes=100000-" "$T/log"
check "resumed file byte-identical" cmp -s "$(cat "$T/out")" "$FX_ST"
stop_server

# 7. resume across runs: a partial .incomplete from an earlier run is continued
export HF_HOME="$T/hf3"
R3="$HF_HOME/hub/models--HuggingFaceTB--SmolVLM-256M-Instruct"
mkdir -p "$R3/blobs"
head -c 5000 "$FX_ST" > "$R3/blobs/$st_sha.incomplete"
start_server
: > "$T/log"
p=$("$MMPIPE" pull "$SMOL:model.safetensors" -q)
check "partial file continued with Range: bytes=5000-" grep -q "^GET /cdn/$st_sha range=bytes=5000-" "$T/log"
check "continued file byte-identical" cmp -s "$p" "$FX_ST"

# 8. checksum mismatch: error, nothing kept
"$MMPIPE" pull acme/corrupt:model.safetensors -q 2>"$T/err" >/dev/null
rc=$?
check "checksum mismatch: non-zero" test $rc -ne 0
check "checksum mismatch: clear error" grep -q "checksum mismatch: expected sha256" "$T/err"
check "checksum mismatch: no blob, no partial kept" \
  test -z "$(ls "$HF_HOME/hub/models--acme--corrupt/blobs" 2>/dev/null)"
check "checksum mismatch: no snapshot entry" test ! -e "$HF_HOME/hub/models--acme--corrupt/snapshots/$COMMIT/model.safetensors"

# 9. 404s
"$MMPIPE" pull acme/nope -q 2>"$T/err" >/dev/null
check "unknown repo: non-zero" test $? -ne 0
check "unknown repo: repository not found" grep -q "acme/nope: repository not found" "$T/err"
"$MMPIPE" pull "$SMOL:missing.bin" -q 2>"$T/err" >/dev/null
check "unknown file: non-zero" test $? -ne 0
check "unknown file: names it" grep -q "missing.bin not found on the hub (HTTP 404" "$T/err"
"$MMPIPE" pull "$SMOL:config.json" --revision v9 -q 2>"$T/err" >/dev/null
check "unknown revision: says so" grep -q "revision not found" "$T/err"

# 10. gated: 401 without token, works with HF_TOKEN
"$MMPIPE" pull acme/gated:config.json -q 2>"$T/err" >/dev/null
check "gated: non-zero" test $? -ne 0
check "gated: mentions HF_TOKEN" grep -q "gated or private.*HF_TOKEN" "$T/err"
: > "$T/log"
g=$(HF_TOKEN=hf_test_secret "$MMPIPE" pull acme/gated:config.json -q 2>"$T/err")
check "gated with HF_TOKEN: downloads" cmp -s "$g" "$FX_SMOL/config.json"
check "gated: bearer token sent" grep -q "auth=Bearer hf_test_secret" "$T/log"
mkdir -p "$HF_HOME" && echo hf_test_secret > "$HF_HOME/token"
rm -rf "$HF_HOME/hub/models--acme--gated"
g=$("$MMPIPE" pull acme/gated:config.json -q 2>"$T/err")
check "gated with \$HF_HOME/token: downloads" test -f "$g"
rm -f "$HF_HOME/token"

# 11. GGUF-only repo: -m ORG/NAME asks for :FILE and lists the files
"$MMPIPE" pull acme/gguf-only -q 2>"$T/err" >/dev/null
check "gguf-only: non-zero" test $? -ne 0
check "gguf-only: lists the GGUF files" grep -q "has 2 GGUF files.*tiny-Q4_K_M.gguf, tiny-Q8_0.gguf" "$T/err"
q=$("$MMPIPE" pull acme/gguf-only:tiny-Q8_0.gguf -q)
check "gguf-only with :FILE" cmp -s "$q" "$MMPIPE_FIXTURES/gguf/ggml-vocab-mpt.gguf"
a=$("$MMPIPE" pull acme/gguf-only --include '*.gguf' -q)
check "--include *.gguf fetches both" test -f "$a/tiny-Q4_K_M.gguf" -a -f "$a/tiny-Q8_0.gguf" -a ! -e "$a/README.md"

# 12. disk full while writing a blob (the partial file is /dev/full)
export HF_HOME="$T/hf4"
R4="$HF_HOME/hub/models--HuggingFaceTB--SmolVLM-256M-Instruct"
mkdir -p "$R4/blobs"
ln -s /dev/full "$R4/blobs/$st_sha.incomplete"
"$MMPIPE" pull "$SMOL:model.safetensors" -q 2>"$T/err" >/dev/null
check "disk full: non-zero" test $? -ne 0
check "disk full: clear error" grep -q "disk full while writing" "$T/err"

# 13. hostile listing: names escaping the cache are ignored
export HF_HOME="$T/hf5"
rm -f /tmp/mmpipe-evil
e=$("$MMPIPE" pull acme/evil --all -q 2>"$T/err")
check "hostile names: pull of the sane files works" test -f "$e/config.json"
check "hostile names: nothing written outside the cache" test ! -e /tmp/mmpipe-evil
check "hostile names: only the sane file in the snapshot" test "$(cd "$e" && find . -type l -o -type f | wc -l)" -eq 1

# 14. bad repo ids are not hub ids
"$MMPIPE" pull "not a repo" -q 2>"$T/err" >/dev/null
check "bad id: non-zero" test $? -ne 0
"$MMPIPE" pull "../x/y" -q 2>"$T/err" >/dev/null
check "path-like id rejected" test $? -ne 0

echo "$fails failure(s)"
[[ $fails -eq 0 ]]
