#!/usr/bin/env bash
# `mmpipe vqa` end to end on a tiny random-weight Qwen2-VL written by tests/ref/qwen2vl_ref.py: --json names
# the frames used (timestamps as qwen-vl-utils picks them from a real H.264 clip), the grid and vision token
# count; two questions in one call encode the video once (the second one's features come from the cache:
# "features"/"cache_hits" and the -v counters, not timing); each answer of the batch equals the same
# question asked alone (greedy); an image is one frame; audio-only, missing and non-media files and a
# non-VL model fail with one clear line and a non-zero exit; --help is true.
set -u
: "${MMPIPE:?}" "${MMPIPE_FIXTURES:?}" "${MP_SOURCE_DIR:?}"
PY=${MP_PYTHON:-/usr/bin/python3}
VID="$MMPIPE_FIXTURES/video/testsrc2_320x240_24fps_4s_h264_aac.mp4"
IMG="$MMPIPE_FIXTURES/images/chelsea.png"
WAV="$MMPIPE_FIXTURES/audio/jfk.wav"
[[ -f $VID && -f $IMG && -f $MMPIPE_FIXTURES/hf/Qwen--Qwen2-VL-2B-Instruct/config.json ]] || { echo "fixtures absent: skip"; exit 77; }
"$PY" -c 'import torch, numpy' 2>/dev/null || { echo "no torch/numpy: skip"; exit 77; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
ok() { echo "ok   - $*"; }
bad() { echo "FAIL - $*"; fails=$((fails + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }

MMPIPE_FIXTURES="$MMPIPE_FIXTURES" "$PY" "$MP_SOURCE_DIR/tests/ref/qwen2vl_ref.py" make qwen2vl "$T/m" 31 || { echo "cannot make the model"; exit 1; }
V=("$MMPIPE" vqa -m "$T/m" -t 2 -n 6 --temp 0)

# ---------------------------------------------------------------- two questions, one encode
"${V[@]}" --fps 1 --max-frames 4 --json -v "$VID" "What happens?" "Which colours are there?" >"$T/two.json" 2>"$T/two.err"
check "two questions: exit 0" test $? -eq 0
check "-v: one encode, one cache hit" grep -q "media encoded 1, cache hits 1" "$T/two.err"
check "-v: the second question's features are cached" grep -q "question 2: .* features cached" "$T/two.err"
"$PY" - "$T/two.json" <<'PYEOF'
import json, sys
j = json.load(open(sys.argv[1]))
m, a = j["media"], j["answers"]
fails = []
def want(c, what):
    if not c: fails.append(what)
want(m["kind"] == "video" and m["codec"] == "h264", "media kind/codec")
# qwen-vl-utils: 96 frames at 24 fps, fps 1 -> 4 frames at round(linspace(0, 95, 4)) = 0, 32, 63, 95
want([round(f["pts"] * 24) for f in m["frames"]] == [0, 32, 63, 95], "frames used: %s" % m["frames"])
t, h, w = m["grid_thw"]
want(t == 2 and m["vision_tokens"] == t * h * w // 4, "grid %s / vision tokens %s" % (m["grid_thw"], m["vision_tokens"]))
want(abs(m["second_per_grid"] - 2.0) < 1e-9, "second_per_grid %s" % m["second_per_grid"])
want(j["vision"]["encoded"] == 1 and j["vision"]["cache_hits"] == 1, "vision counters %s" % j["vision"])
want(len(a) == 2 and [x["features"] for x in a] == ["encoded", "cached"], "features per answer")
want(all(x["vision_tokens"] == m["vision_tokens"] and x["completion_tokens"] == 6 for x in a), "answer token counts")
want(all(x["finish_reason"] == "length" for x in a), "finish reasons")
for f in fails: print("  json:", f)
sys.exit(1 if fails else 0)
PYEOF
check "--json: frames, grid, vision tokens, cache use" test $? -eq 0
for q in 0 1; do
  question=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["answers"][int(sys.argv[2])]["question"])' "$T/two.json" $q)
  "${V[@]}" --fps 1 --max-frames 4 --json "$VID" "$question" >"$T/one$q.json" 2>/dev/null
  check "question $((q + 1)) alone == in the batch" "$PY" -c '
import json, sys
a = json.load(open(sys.argv[1]))["answers"][int(sys.argv[3])]["answer"]
b = json.load(open(sys.argv[2]))["answers"][0]["answer"]
sys.exit(0 if a == b else 1)' "$T/two.json" "$T/one$q.json" $q
done
"${V[@]}" --fps 1 --max-frames 4 "$VID" "What happens?" >"$T/plain.txt" 2>/dev/null
check "plain output: the answer alone" "$PY" -c '
import json, sys
a = json.load(open(sys.argv[1]))["answers"][0]["answer"]
sys.exit(0 if open(sys.argv[2]).read() == a + "\n" else 1)' "$T/two.json" "$T/plain.txt"

# ---------------------------------------------------------------- an image is one frame
"${V[@]}" --json "$IMG" "What animal is this?" >"$T/img.json" 2>/dev/null
check "image: exit 0" test $? -eq 0
check "image: one frame at 0, <|image_pad|> grid t = 1" "$PY" -c '
import json, sys
m = json.load(open(sys.argv[1]))["media"]
sys.exit(0 if m["kind"] == "image" and [f["pts"] for f in m["frames"]] == [0] and m["grid_thw"][0] == 1 else 1)' "$T/img.json"

# ---------------------------------------------------------------- errors
one_line_error() { # rc stderr-file pattern
  [[ $1 -ne 0 ]] && [[ $(wc -l <"$2") -eq 1 ]] && grep -q "$3" "$2"
}
if [[ -f $WAV ]]; then
  "${V[@]}" "$WAV" "What?" >/dev/null 2>"$T/e1"; rc=$?
  check "audio-only file: one-line error, non-zero exit" one_line_error $rc "$T/e1" "audio only"
fi
"${V[@]}" "$T/nope.mp4" "What?" >/dev/null 2>"$T/e2"; rc=$?
check "missing media: one-line error" one_line_error $rc "$T/e2" "nope.mp4"
printf 'not a video at all\n' >"$T/junk.mp4"
"${V[@]}" "$T/junk.mp4" "What?" >/dev/null 2>"$T/e3"; rc=$?
check "non-media file: one-line error" one_line_error $rc "$T/e3" "junk.mp4"
"$MMPIPE" vqa -m "$MMPIPE_FIXTURES/llm/stories260K.bin" --mmproj "$T/m" "$IMG" "What?" >/dev/null 2>"$T/e4"; rc=$?
check "non-VL model: one-line error" one_line_error $rc "$T/e4" "not a Qwen2-VL"
"$MMPIPE" vqa -m "$T/m" "$VID" >/dev/null 2>"$T/e5"; rc=$?
check "no question: usage error (exit 2)" test $rc -eq 2
"$MMPIPE" vqa --help >"$T/help" 2>&1; rc=$?
check "--help: exit 0, names the flags" bash -c "[[ $rc -eq 0 ]] && grep -q -- '--max-frames' '$T/help' && grep -q -- '--mmproj' '$T/help' && grep -q -- '--json' '$T/help'"

echo "$fails failure(s)"
[[ $fails -eq 0 ]]
