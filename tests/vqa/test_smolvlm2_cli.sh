#!/usr/bin/env bash
# test_smolvlm2_cli.sh — `mmpipe vqa` with a tiny random-weight SmolVLM2 (written by
# `test_smolvlm2_ref --write-fixture`; test_smolvlm2_ref checks its numbers against the PyTorch reference):
# --json lists the frames used with the timestamps the prompt gives them (SmolVLM2's sampling of a real
# 24 fps, 4 s H.264 clip: 1 fps -> 4 frames at indices int(linspace(0, 95, 4)), --max-frames and --fps
# change it as the rule says); two questions in one call encode the clip once (the second one's features
# come from the cache); each answer of the batch equals the same question asked alone (greedy); the GGUF
# text model + idefics3 mmproj answers as the HF folder; an image is one image split into tiles and gets
# the caption `mmpipe caption` gives it; an audio-only file fails with one clear line.
set -u
: "${MMPIPE:?}" "${MMPIPE_FIXTURES:?}"
PY=${MP_PYTHON:-/usr/bin/python3}
VID="$MMPIPE_FIXTURES/video/testsrc2_320x240_24fps_4s_h264_aac.mp4"
IMG="$MMPIPE_FIXTURES/images/chelsea.jpg"
WAV="$MMPIPE_FIXTURES/audio/jfk.wav"
[[ -f $VID && -f $IMG && -f $MMPIPE_FIXTURES/hf/HuggingFaceTB--SmolVLM-256M-Instruct/config.json ]] || { echo "fixtures absent: skip"; exit 77; }
"$PY" -c 'import json' 2>/dev/null || { echo "no python: skip"; exit 77; }
T=$(mktemp -d "${MP_BINARY_DIR:-/tmp}/smolvlm2_cli.XXXXXX")
trap 'rm -rf "$T"' EXIT
fails=0
ok() { echo "ok   - $*"; }
bad() { echo "FAIL - $*"; fails=$((fails + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }

"${1:?usage: test_smolvlm2_cli.sh PATH_OF_test_smolvlm2_ref}" --write-fixture "$T/m" || { echo "cannot write the model"; exit 1; }
V=("$MMPIPE" vqa -m "$T/m/hf" -t 2 -n 5 --temp 0)

# frames/timestamps in --json: python checks "KEY=VALUE" expectations on the media object
frames_are() { # json-file indices timestamps
  "$PY" - "$@" <<'PYEOF'
import json, sys
j = json.load(open(sys.argv[1]))
m = j["media"]
idx = [round(f["pts"] * m["native_fps"]) for f in m["frames"]]
ts = [f["timestamp"] for f in m["frames"]]
want_i = [int(x) for x in sys.argv[2].split(",")]
want_t = sys.argv[3].split(",")
ok = j["family"] == "smolvlm" and m["kind"] == "video" and idx == want_i and ts == want_t
ok = ok and m["tiles"] == len(want_i) and m["vision_tokens"] == 4 * len(want_i)
if not ok:
    print("  frames", idx, ts, "tiles", m.get("tiles"), "vision tokens", m.get("vision_tokens"))
sys.exit(0 if ok else 1)
PYEOF
}

# ---------------------------------------------------------------- two questions, one encode
"${V[@]}" --json -v "$VID" "What happens?" "Which colours are there?" >"$T/two.json" 2>"$T/two.err"
check "two questions: exit 0" test $? -eq 0
check "-v: one encode, one cache hit" grep -q "media encoded 1, cache hits 1" "$T/two.err"
check "--json: the model's 1 fps -> frames 0,31,63,95 at 00:00..00:03" frames_are "$T/two.json" 0,31,63,95 00:00,00:01,00:02,00:03
check "--json: fps and max_frames from the model's video_sampling" "$PY" -c '
import json, sys
m = json.load(open(sys.argv[1]))["media"]
sys.exit(0 if m["fps"] == 1 and m["max_frames"] == 64 and m["duration"] == 4 else 1)' "$T/two.json"
check "--json: features encoded, then cached; 5 tokens each" "$PY" -c '
import json, sys
j = json.load(open(sys.argv[1]))
a = j["answers"]
sys.exit(0 if [x["features"] for x in a] == ["encoded", "cached"] and all(x["completion_tokens"] == 5 for x in a)
         and j["vision"]["encoded"] == 1 and j["vision"]["cache_hits"] == 1 else 1)' "$T/two.json"
for q in 0 1; do
  question=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["answers"][int(sys.argv[2])]["question"])' "$T/two.json" $q)
  "${V[@]}" --json "$VID" "$question" >"$T/one$q.json" 2>/dev/null
  check "question $((q + 1)) alone == in the batch" "$PY" -c '
import json, sys
a = json.load(open(sys.argv[1]))["answers"][int(sys.argv[3])]["answer"]
b = json.load(open(sys.argv[2]))["answers"][0]["answer"]
sys.exit(0 if a == b else 1)' "$T/two.json" "$T/one$q.json" $q
done

# ---------------------------------------------------------------- sampling flags
"${V[@]}" --json --max-frames 3 "$VID" "What happens?" >"$T/m3.json" 2>/dev/null
check "--max-frames 3: frames 0,47,95" frames_are "$T/m3.json" 0,47,95 00:00,00:01,00:03
"${V[@]}" --json --fps 0.5 "$VID" "What happens?" >"$T/f05.json" 2>/dev/null
check "--fps 0.5: round(0.5 * 4) = 2 frames, 0 and 95" frames_are "$T/f05.json" 0,95 00:00,00:03
"${V[@]}" --json --fps 2 --max-frames 5 "$VID" "What happens?" >"$T/f2.json" 2>/dev/null
check "--fps 2 --max-frames 5: int(linspace(0, 95, 5))" frames_are "$T/f2.json" 0,23,47,71,95 00:00,00:00,00:01,00:02,00:03

WEBM="$MMPIPE_FIXTURES/video/big_buck_bunny_0_30.webm"
if [[ -f $WEBM ]]; then # 30 s VP9: 30 - 2 > 8 frames * 1 fps, so 1 s is skipped at both ends
  "${V[@]}" --json --max-frames 8 "$WEBM" "What happens?" >"$T/webm.json" 2>/dev/null
  check "webm --max-frames 8: skip 1 s at both ends, int(linspace(24, 696, 8))" frames_are "$T/webm.json" \
    24,120,216,312,408,504,600,696 00:01,00:05,00:09,00:13,00:17,00:21,00:25,00:29
  check "webm: the prompt says 720 frames / 24 fps = 30 s" "$PY" -c '
import json, sys
sys.exit(0 if json.load(open(sys.argv[1]))["media"]["prompt_duration"] == 30 else 1)' "$T/webm.json"
fi

# ---------------------------------------------------------------- GGUF text model + mmproj
"$MMPIPE" vqa -m "$T/m/text.gguf" --mmproj "$T/m/mmproj.gguf" -t 2 -n 5 --temp 0 --json "$VID" "What happens?" >"$T/gguf.json" 2>"$T/gguf.err"
check "gguf + mmproj: exit 0" test $? -eq 0
check "gguf + mmproj: same frames and answer as the HF folder" "$PY" -c '
import json, sys
a, b = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
sys.exit(0 if a["answers"][0]["answer"] == b["answers"][0]["answer"] and a["media"]["frames"] == b["media"]["frames"] else 1)' "$T/two.json" "$T/gguf.json"

# ---------------------------------------------------------------- an image: tiles + global image
"${V[@]}" --json "$IMG" "What animal is this?" >"$T/img.json" 2>/dev/null
check "image: exit 0" test $? -eq 0
check "image: one frame at 0, split into tiles" "$PY" -c '
import json, sys
m = json.load(open(sys.argv[1]))["media"]
sys.exit(0 if m["kind"] == "image" and len(m["frames"]) == 1 and m["tiles"] == m["tile_rows"] * m["tile_cols"] + 1 > 1
         and m["vision_tokens"] == 4 * m["tiles"] else 1)' "$T/img.json"

# image mode is what `mmpipe caption` does: the same greedy text for its default prompt
cap=$("$MMPIPE" caption -m "$T/m/hf" -n 5 -t 2 "$IMG" 2>/dev/null); cap=${cap#"$IMG: "}
ans=$("${V[@]}" "$IMG" "Can you describe this image?" 2>/dev/null)
check "image: vqa answer == mmpipe caption's caption ('$cap')" test -n "$cap" -a "$(echo $ans)" = "$(echo $cap)"

# ---------------------------------------------------------------- errors
if [[ -f $WAV ]]; then
  "${V[@]}" "$WAV" "What?" >/dev/null 2>"$T/e1"; rc=$?
  check "audio-only file: one-line error, non-zero exit" bash -c "[[ $rc -ne 0 && \$(wc -l <'$T/e1') -eq 1 ]] && grep -q 'audio only' '$T/e1'"
fi
"${V[@]}" "$T/nope.mp4" "What?" >/dev/null 2>"$T/e2"; rc=$?
check "missing media: one-line error" bash -c "[[ $rc -ne 0 && \$(wc -l <'$T/e2') -eq 1 ]] && grep -q nope.mp4 '$T/e2'"

echo "$fails failure(s)"
[[ $fails -eq 0 ]]
