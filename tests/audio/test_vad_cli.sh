#!/usr/bin/env bash
# test_vad_cli.sh — `mmpipe vad` on jfk.wav: the 4 Silero v6.2.0 segments whisper.cpp finds
# (../shared/fixtures/whisper/EXPECTED.md), JSON output, several files with a failing one, stdin.
set -u
M="$MMPIPE_FIXTURES/whisper/for-tests-silero-v6.2.0-ggml.bin"
J="$MMPIPE_FIXTURES/audio/jfk.wav"
[[ -f $M && -f $J ]] || { echo "fixtures absent"; exit 77; }
fail=0
check() { if [[ "$2" == "$3" ]]; then echo "ok: $1"; else echo "FAIL: $1"; echo "  got:  $2"; echo "  want: $3"; fail=1; fi; }
want=$'0.32 2.27\n3.27 4.41\n5.38 7.68\n8.16 10.62'

out=$("$MMPIPE" vad -vm "$M" -t 2 "$J"); rc=$?
check "jfk segments" "$out" "$want"
check "exit code" "$rc" 0

out=$("$MMPIPE" vad -vm "$M" - < "$J")
check "stdin" "$out" "$want"

out=$("$MMPIPE" vad -vm "$M" "$MMPIPE_FIXTURES/audio/jfk.mp3")
check "mp3: same segments" "$(echo "$out" | wc -l)" 4

# several files, one broken: the others still print, the exit code says something failed
out=$("$MMPIPE" vad -vm "$M" "$J" "$MMPIPE_FIXTURES/audio_extra/broken_truncated_fmt.wav" \
      "$MMPIPE_FIXTURES/audio_extra/silence_0.5s_16k_mono.wav" 2>/tmp/mmpipe_vad_err.$$); rc=$?
err=$(cat /tmp/mmpipe_vad_err.$$); rm -f /tmp/mmpipe_vad_err.$$
check "multi-file output" "$out" "# $J"$'\n'"$want"$'\n'"# $MMPIPE_FIXTURES/audio_extra/silence_0.5s_16k_mono.wav"
check "multi-file exit code" "$rc" 1
[[ "$err" == *broken_truncated_fmt.wav*fmt* ]] && echo "ok: error names the file" || { echo "FAIL: stderr: $err"; fail=1; }

# JSON, parsed by python
out=$("$MMPIPE" vad -vm "$M" --json "$J" "$MMPIPE_FIXTURES/audio_extra/broken_header_only.wav"); rc=$?
check "json exit code" "$rc" 1
got=$(printf '%s' "$out" | "${MP_PYTHON:-python3}" -c '
import json, sys
d = json.load(sys.stdin)
print(len(d), d[0]["n_probs"], " ".join("%.2f-%.2f" % (s["start"], s["end"]) for s in d[0]["segments"]), "error" in d[1])')
check "json" "$got" "2 344 0.32-2.27 3.27-4.41 5.38-7.68 8.16-10.62 True"

# a model that is not a VAD model: one clear error
"$MMPIPE" vad -vm "$MMPIPE_FIXTURES/whisper/for-tests-ggml-tiny.en.bin" "$J" >/dev/null 2>&1; rc=$?
check "wrong model exit code" "$rc" 1
"$MMPIPE" vad "$J" >/dev/null 2>&1; rc=$?
check "missing -vm" "$rc" 2
exit $fail
