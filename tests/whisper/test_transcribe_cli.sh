#!/usr/bin/env bash
# test_transcribe_cli.sh — `mmpipe transcribe` end to end on a random-weight tiny.en-shaped model (written
# by `mmpipe bench transcribe --write-model`): several files with a broken one (the others still get their
# outputs, exit code 1, the error names the file), every output format written and parsed, -of names,
# --output-dir, stdin, -of - to stdout, --vad (segment times mapped back into jfk.wav's speech), and
# identical results whether files run together or alone; a multilingual model with -l auto and -tr; an HF
# folder. No real weights exist here, so the text itself
# is meaningless; test_whisper_ref checks the decoding against PyTorch.
set -u
H="$MMPIPE_FIXTURES/whisper/for-tests-ggml-tiny.en.bin"
V="$MMPIPE_FIXTURES/whisper/for-tests-silero-v6.2.0-ggml.bin"
J="$MMPIPE_FIXTURES/audio/jfk.wav"
S="$MMPIPE_FIXTURES/audio_extra/speech_glue_sheet_16k_mono.wav"
B="$MMPIPE_FIXTURES/audio_extra/broken_truncated_fmt.wav"
[[ -f $H && -f $J && -f $S && -f $B ]] || { echo "fixtures absent"; exit 77; }
T=$(mktemp -d "${MP_BINARY_DIR:-/tmp}/transcribe_cli.XXXXXX")
trap 'rm -rf "$T"' EXIT
fail=0
ok() { echo "ok: $1"; }
bad() { echo "FAIL: $1"; fail=1; }
check() { if [[ "$2" == "$3" ]]; then ok "$1"; else bad "$1"; echo "  got:  $2"; echo "  want: $3"; fi; }

MODEL=$T/tiny.bin
"$MMPIPE" bench transcribe --header "$H" --write-model tiny f16 "$MODEL" || { echo "cannot write the model"; exit 1; }
COMMON=(-m "$MODEL" -t 2 -bs 1 -nf)

# several files, one broken, every format into --output-dir
mkdir -p "$T/out"
"$MMPIPE" transcribe "${COMMON[@]}" -otxt -osrt -ovtt -oj -ocsv -olrc --output-dir "$T/out" "$J" "$B" "$S" \
  > "$T/stdout" 2> "$T/stderr"; rc=$?
check "exit code with a broken file" "$rc" 1
grep -q "broken_truncated_fmt.wav" "$T/stderr" && ok "the error names the broken file" || { bad "stderr"; cat "$T/stderr"; }
for f in jfk.wav speech_glue_sheet_16k_mono.wav; do
  for e in txt srt vtt json csv lrc; do
    [[ -s "$T/out/$f.$e" ]] && ok "$f.$e written" || bad "$f.$e missing"
  done
done
ls "$T/out" | grep -q broken && bad "outputs for the broken file" || ok "nothing written for the broken file"
grep -q "^\[00:00:" "$T/stdout" && ok "segments printed" || { bad "stdout"; cat "$T/stdout"; }

# the formats parse as whisper-cli writes them
"$MP_PYTHON" - "$T/out/jfk.wav" <<'EOF' && ok "formats consistent" || bad "formats"
import json, re, sys
b = sys.argv[1]
j = json.load(open(b + ".json"))
segs = j["transcription"]
assert j["result"]["language"] == "en" and j["model"]["vocab"] == 51864 and len(segs) >= 1
def ms(t): h, m, s = t.replace(",", ".").split(":"); return round((int(h) * 3600 + int(m) * 60 + float(s)) * 1000)
for s in segs:
    assert ms(s["timestamps"]["from"]) == s["offsets"]["from"] and ms(s["timestamps"]["to"]) == s["offsets"]["to"]
    assert 0 <= s["offsets"]["from"] <= s["offsets"]["to"] <= 11000 + 30000
    for t in s["tokens"]:
        assert 0 <= t["p"] <= 1 and isinstance(t["id"], int)
srt = open(b + ".srt").read().split("\n\n")
srt = [x for x in srt if x]
assert len(srt) == len(segs)
for i, (blk, s) in enumerate(zip(srt, segs)):
    lines = blk.split("\n")
    assert lines[0] == str(i + 1), lines
    assert lines[1] == f'{s["timestamps"]["from"]} --> {s["timestamps"]["to"]}', lines
    assert "\n".join(lines[2:]) == s["text"]
vtt = open(b + ".vtt").read()
assert vtt.startswith("WEBVTT\n\n")
cues = re.findall(r"^(\d\d:\d\d:\d\d\.\d\d\d) --> (\d\d:\d\d:\d\d\.\d\d\d)$", vtt, re.M)
assert [(a.replace(".", ","), c.replace(".", ",")) for a, c in cues] == [(s["timestamps"]["from"], s["timestamps"]["to"]) for s in segs]
csv = open(b + ".csv").read().splitlines()
assert csv[0] == "start,end,text" and len(csv) == len(segs) + 1
for line, s in zip(csv[1:], segs):
    a, c, rest = line.split(",", 2)
    assert (int(a), int(c)) == (s["offsets"]["from"], s["offsets"]["to"]) and rest == '"' + s["text"].replace('"', '""') + '"'
lrc = open(b + ".lrc").read().splitlines()
assert lrc[0] == "[by:mmpipe]" and len(lrc) == len(segs) + 1
for line, s in zip(lrc[1:], segs):
    t = s["offsets"]["from"]
    assert line == "[%02d:%02d.%02d]%s" % (t // 60000, t % 60000 // 1000, t % 1000 // 10, s["text"])
txt = open(b + ".txt").read().splitlines()
assert txt == [s["text"].lstrip(" \t") for s in segs]
EOF

# -of names, one per input; the same results alone and together
"$MMPIPE" transcribe "${COMMON[@]}" -np -otxt -of "$T/a" -of "$T/b" "$J" "$S" > /dev/null 2>&1
check "-of names" "$(ls "$T" | grep -E '^(a|b)\.txt$' | tr '\n' ' ')" "a.txt b.txt "
"$MMPIPE" transcribe "${COMMON[@]}" -np -otxt -of "$T/alone" "$S" > /dev/null 2>&1
cmp -s "$T/b.txt" "$T/alone.txt" && ok "same text alone and in a batch" || bad "batch changes the result"
cmp -s "$T/a.txt" "$T/out/jfk.wav.txt" && ok "same text in both runs" || bad "runs differ"

# stdin, and -of - (the file goes to stdout)
"$MMPIPE" transcribe "${COMMON[@]}" -np -otxt -of - - < "$J" > "$T/stdin.txt" 2>/dev/null
cmp -s "$T/stdin.txt" "$T/a.txt" && ok "stdin with -of -" || bad "stdin"

# a missing model and an unknown option are clear errors
out=$("$MMPIPE" transcribe -m "$T/nope.bin" "$J" 2>&1); rc=$?
[[ $rc -ne 0 && "$out" == *nope.bin* ]] && ok "missing model" || bad "missing model: $out"
out=$("$MMPIPE" transcribe -m "$MODEL" --bogus "$J" 2>&1); rc=$?
[[ $rc -eq 2 && "$out" == *bogus* ]] && ok "unknown option" || bad "unknown option: $out"
out=$("$MMPIPE" transcribe -m "$H" "$J" 2>&1); rc=$?
[[ $rc -ne 0 && "$out" == *"no tensors"* ]] && ok "header-only model refused" || bad "header-only: $out"

# --vad: only speech is transcribed; every segment maps back into jfk.wav's speech (0.32 .. 10.62 s)
if [[ -f $V ]]; then
  "$MMPIPE" transcribe "${COMMON[@]}" -np --vad -vm "$V" -oj -of "$T/vad" "$J" > /dev/null 2>&1; rc=$?
  check "--vad exit code" "$rc" 0
  "$MP_PYTHON" - "$T/vad.json" <<'EOF' && ok "--vad times inside the speech" || bad "--vad times"
import json, sys
segs = json.load(open(sys.argv[1]))["transcription"]
assert len(segs) >= 1
prev = 0
for s in segs:
    a, b = s["offsets"]["from"], s["offsets"]["to"]
    # times past the speech map to its end; whisper.cpp keeps a segment at least 100 ms long
    assert 320 <= a <= 10620 and b - a >= 100 and b <= max(10620, a + 100) and a >= prev, (a, b)
    prev = a
EOF
fi
# multilingual model: -l auto detects (and decoding then uses the detected language: -l with it gives the
# same text), -tr is recorded; an HF folder (config.json + model.safetensors + the real tokenizer.json)
ML_H="$MMPIPE_FIXTURES/whisper/for-tests-ggml-tiny.bin"
TOKJ="$MMPIPE_FIXTURES/hf/openai--whisper-base/tokenizer.json"
if [[ -f $ML_H ]]; then
  ML=$T/ml.bin
  "$MMPIPE" bench transcribe --header "$ML_H" --write-model tiny q8_0 "$ML" || bad "cannot write the multilingual model"
  MC=(-m "$ML" -t 2 -bs 1 -nf -np)
  "$MMPIPE" transcribe "${MC[@]}" -l auto -oj -otxt -of "$T/auto" "$J" > /dev/null 2>&1; rc=$?
  check "-l auto exit code" "$rc" 0
  lang=$("$MP_PYTHON" -c 'import json,sys; j=json.load(open(sys.argv[1])); print(j["result"]["language"], j["params"]["language"], j["model"]["multilingual"])' "$T/auto.json")
  set -- $lang
  [[ ${2:-} == auto && ${3:-} == True && -n ${1:-} && $1 != auto ]] && ok "-l auto detected '$1'" || bad "-l auto: $lang"
  "$MMPIPE" transcribe "${MC[@]}" -l "${1:-en}" -otxt -of "$T/fixed" "$J" > /dev/null 2>&1
  cmp -s "$T/auto.txt" "$T/fixed.txt" && ok "-l auto then -l ${1:-?}: same text" || bad "-l auto vs the detected language"
  "$MMPIPE" transcribe "${MC[@]}" -l de -tr -oj -of "$T/tr" "$J" > /dev/null 2>&1; rc=$?
  check "-tr exit code" "$rc" 0
  tr=$("$MP_PYTHON" -c 'import json,sys; j=json.load(open(sys.argv[1])); print(j["params"]["translate"], j["result"]["language"])' "$T/tr.json")
  check "-tr in the JSON" "$tr" "True de"
  out=$("$MMPIPE" transcribe "${MC[@]}" -l xx "$J" 2>&1); rc=$?
  [[ $rc -ne 0 && "$out" == *"'xx'"* ]] && ok "unknown language" || bad "unknown language: $out"
  if [[ -f $TOKJ ]]; then
    HF=$T/hf
    "$MMPIPE" bench transcribe --header "$ML_H" --write-model tiny hf "$HF" && ln -s "$TOKJ" "$HF/tokenizer.json" || bad "cannot write the HF folder"
    "$MMPIPE" transcribe -m "$HF" -t 2 -bs 1 -nf -l en -oj -of "$T/hf" "$J" > /dev/null 2> "$T/hf.err"; rc=$?
    check "HF folder exit code" "$rc" 0
    grep -q "safetensors" "$T/hf.err" && ok "HF folder loaded as safetensors" || { bad "HF folder"; cat "$T/hf.err"; }
    "$MP_PYTHON" -c 'import json,sys; j=json.load(open(sys.argv[1])); assert j["model"]["vocab"] == 51865 and len(j["transcription"]) >= 1' "$T/hf.json" \
      && ok "HF folder transcribes" || bad "HF folder JSON"
  fi
fi
exit $fail
