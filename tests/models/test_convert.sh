#!/usr/bin/env bash
# test_convert.sh — `mmpipe convert`:
#  * stories260K (llama2.c) -> GGUF f32 with tok512.bin embedded: `mmpipe generate` on the GGUF reproduces
#    upstream run.c's greedy golden text byte for byte; the embedded vocabulary is checked with an
#    independent Python GGUF reader; q8_0/q4_0/f16 conversions load and generate.
#  * tiny random HF checkpoints (llama, qwen2, granite; sharded, BF16+F32) written by tests/ref/convert_check.py
#    with PyTorch: every key and tensor of the GGUF matches the HF weights mapped and q/k-permuted the
#    way llama.cpp's convert_hf_to_gguf.py does (f32 exactly, q8_0 within half a quantization step).
#  * bad inputs fail with one clear line.
set -u
F=${MMPIPE_FIXTURES:-../shared/fixtures}
PY=${MP_PYTHON:-/usr/bin/python3}
[[ -f $F/llm/stories260K.bin ]] || { echo "fixtures absent"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
no() { echo "FAIL: $*"; fail=1; }

"$MMPIPE" convert "$F/llm/stories260K.bin" "$tmp/s.gguf" --tokenizer "$F/llm/tok512.bin" 2>"$tmp/err" || no "convert stories260K: $(cat "$tmp/err")"
"$MMPIPE" info "$tmp/s.gguf" >"$tmp/info" 2>&1 || no "info on the converted file"
for l in "architecture: llama" "  llama.embedding_length: 64" "  llama.block_count: 5" "  llama.attention.head_count_kv: 4" \
         "  llama.feed_forward_length: 172" "  llama.context_length: 512" "  tokenizer.ggml.model: llama" \
         "  tokenizer.ggml.tokens: array[string] x 512" "tensors: 47" "dtype f32: 47 tensors, 1040128 bytes"; do
  grep -qxF -- "$l" "$tmp/info" || no "converted info lacks '$l'"
done
if "$MMPIPE" generate -m "$tmp/s.gguf" --tokenizer "$F/llm/tok512.bin" --temp 0 -n 200 -t 2 >"$tmp/gen" 2>"$tmp/err"; then
  { cat "$tmp/gen"; echo; } | cmp -s - "$F/llm/golden/greedy_n200_noprompt.stdout" || no "GGUF greedy text differs from run.c's golden"
else
  no "generate on the converted GGUF: $(tail -1 "$tmp/err")"
fi
if [[ -x $PY ]] && "$PY" -c "import numpy, torch" 2>/dev/null; then
  "$PY" - "$tmp/s.gguf" <<'PY' || fail=1
import sys
sys.path.insert(0, __import__("os").environ.get("MP_SOURCE_DIR", ".") + "/tests/ref")
from convert_check import read_gguf
ver, kv, ts = read_gguf(sys.argv[1])
toks, types = kv["tokenizer.ggml.tokens"], kv["tokenizer.ggml.token_type"]
ok = (toks[0] == "<unk>" and toks[1] == "<s>" and toks[2] == "</s>" and toks[3] == "<0x00>" and types[1] == 3
      and types.count(6) == 256 and types[0] == 2 and not any(" " in t for t in toks)
      and any(t.startswith("\u2581") for t in toks) and len(kv["tokenizer.ggml.scores"]) == 512)
print("vocab check", "ok" if ok else "FAILED", toks[:5], toks[259:263])
sys.exit(0 if ok else 1)
PY
fi
for d in q8_0 q4_0 f16 q6_K; do
  "$MMPIPE" convert "$F/llm/stories260K.bin" "$tmp/s_$d.gguf" --dtype "$d" 2>"$tmp/err" || no "convert --dtype $d: $(cat "$tmp/err")"
  out=$("$MMPIPE" generate -m "$tmp/s_$d.gguf" --tokenizer "$F/llm/tok512.bin" --temp 0 -n 20 -t 2 2>/dev/null)
  [[ $out == Once\ upon\ a\ time* ]] || no "generate on the $d GGUF gave '$out'"
done

if [[ -x $PY ]] && "$PY" -c "import numpy, torch" 2>/dev/null; then
  "$PY" "$MP_SOURCE_DIR/tests/ref/convert_check.py" make "$tmp" llama qwen2 granite || no "make HF checkpoints"
  for mt in llama qwen2 granite; do
    for d in f32 q8_0; do
      "$MMPIPE" convert "$tmp/$mt" "$tmp/$mt-$d.gguf" --dtype $d 2>"$tmp/err" || no "convert $mt $d: $(cat "$tmp/err")"
    done
    "$PY" "$MP_SOURCE_DIR/tests/ref/convert_check.py" check "$tmp/$mt" "$tmp/$mt-f32.gguf" "$tmp/$mt-q8_0.gguf" >"$tmp/chk" ||
      { no "$mt"; cat "$tmp/chk"; }
  done
  # keep the source precision by default: bf16 stays bf16, 1-D stays f32
  "$MMPIPE" convert "$tmp/llama/model.safetensors.index.json" "$tmp/keep.gguf" 2>/dev/null || no "convert from index.json"
  "$MMPIPE" info "$tmp/keep.gguf" | grep -qx "dtype bf16: 4 tensors, 36864 bytes" || no "default dtype"
  sed -i 's/"model_type": "llama"/"model_type": "phi3"/' "$tmp/llama/config.json"
  "$MMPIPE" convert "$tmp/llama" "$tmp/x.gguf" 2>"$tmp/err" && no "phi3 accepted"
  grep -q "model_type phi3 is not one convert handles" "$tmp/err" || no "phi3 message: $(cat "$tmp/err")"
else
  echo "python3 with torch/numpy absent: HF part skipped"
fi

"$MMPIPE" convert "$F/whisper/for-tests-ggml-tiny.bin" "$tmp/w.gguf" 2>"$tmp/err" && no "whisper ggml accepted"
grep -q "whisper.cpp ggml" "$tmp/err" || no "whisper message: $(cat "$tmp/err")"
"$MMPIPE" convert "$F/llm/stories260K.bin" "$tmp/x.gguf" --dtype q7_X 2>"$tmp/err" && no "bad dtype accepted"
grep -q "dtype q7_X is not a type" "$tmp/err" || no "dtype message"
"$MMPIPE" convert "$F/llm/stories260K.bin" "$tmp/x.gguf" --tokenizer "$F/llm/stories260K.bin" 2>"$tmp/err" && no "bad tokenizer accepted"
[[ -e $tmp/x.gguf || -e $tmp/x.gguf.tmp ]] && no "a failed convert left a file"
[[ $fail == 0 ]] && echo "test_convert: all checks passed"
exit $fail
