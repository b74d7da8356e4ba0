#!/usr/bin/env bash
# mmpipe generate on stories260K + tok512.bin reproduces llama2.c run.c's golden stdout byte for byte
# (run.c also prints the prompt and a final newline; mmpipe prints only the continuation), and bad
# invocations fail with one clear line.
set -u
F="$MMPIPE_FIXTURES/llm"
[ -f "$F/stories260K.bin" ] || { echo "skip: no stories260K.bin"; exit 77; }
fail=0
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
gen() { "$MMPIPE" generate -m "$F/stories260K.bin" --tokenizer "$F/tok512.bin" -t 2 "$@"; }
# name, prompt, run.c -n, then our sampling flags
check() {
  local name=$1 prompt=$2 steps=$3; shift 3
  # prompt tokens after BOS count toward run.c's -n: learn their number from our stderr summary
  local np=0
  if [ -n "$prompt" ]; then
    np=$(gen -p "$prompt" -n 1 --temp 0 2>&1 >/dev/null | sed -n 's/.*prompt \([0-9]*\) tokens.*/\1/p')
    np=$((np - 1))
  fi
  gen ${prompt:+-p "$prompt"} -n $((steps - np)) "$@" >"$tmp/out" 2>"$tmp/err" || { echo "FAIL $name: exit status"; cat "$tmp/err"; fail=1; return; }
  { printf '%s' "$prompt"; cat "$tmp/out"; echo; } >"$tmp/full"
  if cmp -s "$tmp/full" "$F/golden/$name.stdout"; then echo "ok $name"; else echo "FAIL $name"; diff "$tmp/full" "$F/golden/$name.stdout" | head -5; fail=1; fi
}
check greedy_n200_prompt "Once upon a time" 200 --temp 0
check greedy_n200_noprompt "" 200 --temp 0
check t1_s42_n64_noprompt "" 64 --temp 1 -s 42
check t1_s42_n64_prompt "Once upon a time" 64 --temp 1 -s 42
check generate_defaults_s42 "" 256 -s 42
check greedy_default_n256 "" 256 --temp 0
check t1_p0.9_s133742_doc "" 256 --temp 1 --top-p 0.9 -s 133742
check t1_p1.0_s42_n64_multinomial "" 64 --temp 1 --top-p 1.0 -s 42
check greedy_n64_prompt "Once upon a time" 64 --temp 0
check greedy_n60_zoo "Zoo" 60 --temp 0
check t0.8_p0.9_s1337_n100_lilytim "Lily and Tim" 100 --temp 0.8 --top-p 0.9 -s 1337
# same text with 1 thread
gen -t 1 -n 64 --temp 1 -s 42 >"$tmp/t1" 2>/dev/null
{ cat "$tmp/t1"; echo; } | cmp -s - "$F/golden/t1_s42_n64_noprompt.stdout" || { echo "FAIL: 1 thread differs"; fail=1; }
# a stop string ends the text before it
out=$(gen --temp 0 -n 100 --stop "named" 2>/dev/null)
[ "$out" = "Once upon a time, there was a little girl " ] || { echo "FAIL stop string: '$out'"; fail=1; }
# errors: one line on stderr, non-zero exit
expect_err() {
  local want=$1; shift
  if "$@" >/dev/null 2>"$tmp/e"; then echo "FAIL: '$*' succeeded"; fail=1; return; fi
  if [ "$(wc -l <"$tmp/e")" -ne 1 ] || ! grep -q -- "$want" "$tmp/e"; then echo "FAIL: '$*' said:"; cat "$tmp/e"; fail=1; fi
}
expect_err "cannot open" "$MMPIPE" generate -m "$tmp/nope.bin" --tokenizer "$F/tok512.bin"
head -c 1000 "$F/stories260K.bin" >"$tmp/trunc.bin"
expect_err "implies 1056540 bytes, but the file has 1000" "$MMPIPE" generate -m "$tmp/trunc.bin" --tokenizer "$F/tok512.bin"
expect_err "context overflow" gen -c 4 -p "Once upon a time there was"
# without --tokenizer the Llama-2 tokenizer.bin beside the checkpoint is found: it does not fit
expect_err "the tokenizer has 32000 tokens, the model 512" "$MMPIPE" generate -m "$F/stories260K.bin"
cp "$F/stories260K.bin" "$tmp/s.bin"
expect_err "no tokenizer" "$MMPIPE" generate -m "$tmp/s.bin"
exit $fail
