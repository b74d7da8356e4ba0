#!/usr/bin/env bash
# test_caption_cli.sh — `mmpipe caption` on a tiny random SmolVLM (written by `test_caption --write-fixture`;
# test_caption checks the captions against the PyTorch reference): several photos with broken files in
# between (a corrupt PNG from the fixtures, a missing file): the others still get their captions, each
# failure is one stderr line naming its file, exit code 1; --json gives one valid JSON object per image
# (file, text, tokens, timings / error); each image alone gives the caption it got in the batch; the GGUF
# text model + mmproj gives the HF folder's captions; --no-split uses one tile; --help and usage errors.
set -u
F="$MMPIPE_FIXTURES/images"
[[ -f $F/chelsea.jpg && -f $F/broken/badcrc.png && -f $MMPIPE_FIXTURES/hf/HuggingFaceTB--SmolVLM-256M-Instruct/config.json ]] \
  || { echo "fixtures absent"; exit 77; }
T=$(mktemp -d "${MP_BINARY_DIR:-/tmp}/caption_cli.XXXXXX")
trap 'rm -rf "$T"' EXIT
fail=0
ok() { echo "ok: $1"; }
bad() { echo "FAIL: $1"; fail=1; }
check() { if [[ "$2" == "$3" ]]; then ok "$1"; else bad "$1"; echo "  got:  $2"; echo "  want: $3"; fi; }

"${1:?usage: test_caption_cli.sh PATH_OF_test_caption}" --write-fixture "$T/m" || { echo "cannot write the model"; exit 1; }
HF=$T/m/hf
IMGS=("$F/chelsea.jpg" "$F/broken/badcrc.png" "$F/pngsuite/basn6a08.png" "$T/missing.jpg" "$F/rocket.jpg")

# plain output, broken files in between
"$MMPIPE" caption -m "$HF" -n 8 -t 2 "${IMGS[@]}" > "$T/plain" 2> "$T/err"; rc=$?
check "exit code with broken files" "$rc" 1
check "one caption line per good image" "$(grep -c '' "$T/plain")" 3
for i in 0 2 4; do grep -q "^${IMGS[$i]}: " "$T/plain" && ok "caption for ${IMGS[$i]##*/}" || bad "no caption for ${IMGS[$i]}"; done
check "one error line per broken file" "$(grep -c '^mmpipe caption: .*\(badcrc.png\|missing.jpg\)' "$T/err")" 2
grep -q "^mmpipe caption: $F/broken/badcrc.png: " "$T/err" && ok "the error names the corrupt PNG" || { bad "stderr"; cat "$T/err"; }
grep -q "^mmpipe caption: $T/missing.jpg: " "$T/err" && ok "the error names the missing file" || { bad "stderr"; cat "$T/err"; }

# --json through the GGUF layout: valid, one object per image in order, captions == the HF folder's
"$MMPIPE" caption -m "$T/m/text.gguf" --mmproj "$T/m/mmproj.gguf" -n 8 -t 2 --json "${IMGS[@]}" > "$T/json" 2> "$T/jerr"; rc=$?
check "json exit code" "$rc" 1
"$MP_PYTHON" - "$T/json" "$T/plain" "${IMGS[@]}" <<'PY' && ok "--json valid, GGUF == HF" || bad "--json"
import json, sys
lines = open(sys.argv[1], "rb").read().decode("utf-8").splitlines()
plain = open(sys.argv[2], encoding="utf-8").read().splitlines()
imgs = sys.argv[3:]
assert len(lines) == len(imgs), (len(lines), len(imgs))
good = iter(plain)
for l, f in zip(lines, imgs):
    o = json.loads(l)
    assert o["file"] == f, (o["file"], f)
    if "error" in o:
        assert f.endswith(("badcrc.png", "missing.jpg")) and f in o["error"] and "text" not in o, o
        continue
    assert isinstance(o["text"], str) and isinstance(o["tokens"], int) and 1 <= o["tokens"] <= 8, o
    t = o["timings"]
    assert all(isinstance(t[k], (int, float)) and t[k] >= 0 for k in ("decode_image_ms", "preprocess_ms", "vision_ms", "done_ms")), t
    assert o["tiles"] >= 1 and o["prompt_tokens"] > o["tiles"]
    assert next(good) == f + ": " + o["text"], "GGUF caption differs from the HF one for " + f
PY

# each image alone == in the batch
for i in 0 2 4; do
  "$MMPIPE" caption -m "$HF" -n 8 -t 1 "${IMGS[$i]}" > "$T/one" 2>/dev/null
  check "${IMGS[$i]##*/} alone == batched" "$(cat "$T/one")" "$(grep "^${IMGS[$i]}: " "$T/plain")"
done

# --no-split: one tile per image; a prompt; all good files: exit 0
"$MMPIPE" caption -m "$HF" -n 4 --no-split --json -p "Describe it briefly." "${IMGS[0]}" "${IMGS[4]}" > "$T/ns" 2>/dev/null; rc=$?
check "all good: exit 0" "$rc" 0
check "--no-split tiles" "$("$MP_PYTHON" -c 'import json,sys; print(" ".join(str(json.loads(l)["tiles"]) for l in open(sys.argv[1])))' "$T/ns")" "1 1"

# --help is true about the flags; usage errors
"$MMPIPE" caption --help > "$T/help"; rc=$?
check "--help exit code" "$rc" 0
for f in -m --mmproj -p -n --temp --seed --no-split --json -t; do
  grep -q -- "$f" "$T/help" && ok "--help lists $f" || bad "--help lacks $f"
done
"$MMPIPE" caption "${IMGS[0]}" > /dev/null 2>&1 && bad "no -m accepted" || ok "no -m: error"
"$MMPIPE" caption -m "$HF" > /dev/null 2>&1 && bad "no image accepted" || ok "no image: error"
"$MMPIPE" caption -m "$T/m/text.gguf" "${IMGS[0]}" 2> "$T/e2" > /dev/null && bad "GGUF without --mmproj accepted" || {
  grep -q -- "--mmproj" "$T/e2" && ok "GGUF without --mmproj: says --mmproj" || { bad "GGUF without --mmproj message"; cat "$T/e2"; }; }
"$MMPIPE" caption -m "$HF" --bogus "${IMGS[0]}" > /dev/null 2>&1 && bad "unknown option accepted" || ok "unknown option: error"
exit $fail
