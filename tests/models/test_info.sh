#!/usr/bin/env bash
# test_info.sh — `mmpipe info` on real fixtures: checks the values the manifests and the files state
# (llama2.c header, GGUF metadata, LoRA tensor counts/sizes from an independent Python reading of the
# safetensors header, HF config values, whisper.cpp / Silero headers) and clear failures on bad input.
set -u
F=${MMPIPE_FIXTURES:-../shared/fixtures}
[[ -f $F/llm/stories260K.bin ]] || { echo "fixtures absent"; exit 77; }
fail=0
out=$(mktemp)
trap 'rm -f "$out"' EXIT

run() { "$MMPIPE" info "$@" >"$out" 2>&1; }
has() { grep -qxF -- "$1" "$out" || { echo "FAIL: '$1' not in output of: $CUR"; sed 's/^/    /' "$out" | head -40; fail=1; }; }

CUR="stories260K"; run "$F/llm/stories260K.bin" || { echo "FAIL: exit $?"; fail=1; }
for l in "format: llama2.c v0" "  dim: 64" "  hidden_dim: 172" "  n_layers: 5" "  n_heads: 8" "  n_kv_heads: 4" \
         "  vocab_size: 512" "  seq_len: 512" "  shared_classifier: true" "tensors: 47" "parameters: 260032" \
         "dtype f32: 47 tensors, 1040128 bytes"; do has "$l"; done

CUR="llama-spm gguf"; run "$F/gguf/ggml-vocab-llama-spm.gguf" || fail=1
for l in "format: GGUF v3" "architecture: llama" "metadata: 22 keys" "  tokenizer.ggml.model: llama" \
         "  tokenizer.ggml.tokens: array[string] x 32000" "  tokenizer.ggml.bos_token_id: 1" \
         "  llama.block_count: 32" "tensors: 0"; do has "$l"; done
CUR="gpt-2 gguf"; run "$F/gguf/ggml-vocab-gpt-2.gguf" || fail=1
for l in "architecture: gpt2" "  tokenizer.ggml.merges: array[string] x 50000" "  tokenizer.ggml.eos_token_id: 50256"; do has "$l"; done

# every fixture GGUF is described without error
for g in "$F"/gguf/*.gguf; do "$MMPIPE" info "$g" >/dev/null 2>&1 || { echo "FAIL: info $g"; fail=1; }; done

for lora in lora-qwen2.5-0.5b-instruct lora-smollm2-360m-instruct-ml-tutor; do
  st="$F/hf/$lora/adapter_model.safetensors"
  CUR="$lora"; run "$st" || fail=1
  if [[ -x ${MP_PYTHON:-/usr/bin/python3} ]]; then
    read -r n params bytes < <("${MP_PYTHON:-/usr/bin/python3}" - "$st" <<'PY'
import json, struct, sys
b = open(sys.argv[1], "rb").read()
h = json.loads(b[8:8 + struct.unpack("<Q", b[:8])[0]])
t = [v for k, v in h.items() if k != "__metadata__"]
p = 0
for v in t:
    n = 1
    for d in v["shape"]:
        n *= d
    p += n
print(len(t), p, sum(v["data_offsets"][1] - v["data_offsets"][0] for v in t))
PY
)
    has "tensors: $n"; has "parameters: $params"; has "dtype f32: $n tensors, $bytes bytes"
  fi
done
CUR="lora folder"; run "$F/hf/lora-smollm2-360m-instruct-ml-tutor" || fail=1
for l in "format: HF folder" "adapter:" "  peft_type: LORA" "  r: 8" "  lora_alpha: 16" "tensors: 128" \
         "chat_template: 368 bytes (chat_template.jinja)"; do has "$l"; done

CUR="SmolVLM"; run "$F/hf/HuggingFaceTB--SmolVLM-256M-Instruct" || fail=1
for l in "model_type: idefics3" "  scale_factor: 4" "  text.hidden_size: 576" "  text.num_key_value_heads: 3" \
         "  vision.patch_size: 16" "  vision.hidden_size: 768" "eos_token_id: 49279"; do has "$l"; done
grep -q "^weights: not available (.*Git LFS pointer" "$out" || { echo "FAIL: SmolVLM LFS note"; fail=1; }
CUR="Qwen2-VL"; run "$F/hf/Qwen--Qwen2-VL-2B-Instruct" || fail=1
for l in "model_type: qwen2_vl" "  hidden_size: 1536" "  vision.embed_dim: 1280" "  rope_scaling.mrope_section: [16, 24, 24]" \
         "eos_token_id: 151645 151643" "index: 729 tensors in 2 shards"; do has "$l"; done
CUR="granite"; run "$F/hf/ibm-granite--granite-3.1-1b-a400m-instruct" || fail=1
for l in "model_type: granitemoe" "  num_local_experts: 32" "  num_experts_per_tok: 8" "  logits_scaling: 6"; do has "$l"; done
CUR="whisper-base (HF)"; run "$F/hf/openai--whisper-base" || fail=1
for l in "model_type: whisper" "  d_model: 512" "  encoder_layers: 6" "  num_mel_bins: 80"; do has "$l"; done

CUR="whisper tiny.en ggml"; run "$F/whisper/for-tests-ggml-tiny.en.bin" || fail=1
for l in "format: ggml .bin (whisper.cpp)" "architecture: whisper" "  n_vocab: 51864" "  n_audio_state: 384" \
         "  n_audio_layer: 4" "  multilingual: false" "mel_filters: 80 x 201" "tensors: 0"; do has "$l"; done
CUR="silero"; run "$F/whisper/for-tests-silero-v6.2.0-ggml.bin" || fail=1
for l in "architecture: silero-vad" "  version: 6.2.0" "tensors: 15"; do has "$l"; done

# --tensors lists every tensor with its ggml shape
CUR="stories260K --tensors"; run --tensors "$F/llm/stories260K.bin" || fail=1
has "  blk.0.attn_k.weight  f32  [64, 32]  8192"
has "  token_embd.weight  f32  [64, 512]  131072"

# failures: one line naming the file, non-zero exit
CUR="missing"; if run /nonexistent/model.gguf; then echo "FAIL: missing file accepted"; fail=1; fi
grep -q "/nonexistent/model.gguf: cannot open" "$out" || { echo "FAIL: missing-file message"; cat "$out"; fail=1; }
bad=$(mktemp --suffix=.gguf); printf 'GGUF\003\000\000\000\377\377\377\377\377\377\377\377' >"$bad"
CUR="bad gguf"; if run "$bad"; then echo "FAIL: bad gguf accepted"; fail=1; fi
grep -q "$bad: truncated" "$out" || { echo "FAIL: bad gguf message"; cat "$out"; fail=1; }
rm -f "$bad"
CUR="wrong whisper"; if run "$F/whisper/for-tests-ggml-parakeet-tdt-bad-nfft0.bin"; then echo "FAIL: bad parakeet accepted"; fail=1; fi

[[ $fail == 0 ]] && echo "test_info: all checks passed"
exit $fail
