#!/usr/bin/env bash
# demo.sh — install, build, and run the main jobs on demo inputs.
# Online, the default models are fetched from the Hugging Face hub into the standard cache
# (~/.cache/huggingface/hub, or $HF_HOME/hub); offline, it runs what needs no download, from
# ../shared/fixtures when present, and says which models it could not get and how to provide them.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bash "$here/scripts/setup.sh" || exit 1
bash "$here/scripts/build.sh" release || exit 1
MM="$here/build/mmpipe"
FX=${MMPIPE_FIXTURES:-$here/../shared/fixtures}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
missing=()

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# pull VAR ORG/NAME[:FILE]: sets VAR to the local path, or to "" (and records what is missing)
pull() {
  local p
  if p=$("$MM" pull "$2" -q 2>"$OUT/pull.err") && [[ -n $p ]]; then printf -v "$1" '%s' "$p"; else
    printf -v "$1" '%s' ""
    missing+=("$2 ($(tail -1 "$OUT/pull.err" | sed 's/^mmpipe pull: //'))"); fi
}

step "mmpipe version"
"$MM" version

# ---------------------------------------------------------------- text generation
step "mmpipe generate: TinyStories stories260K (llama2.c checkpoint), greedy"
LLM=""; TOK=""
pull LLM karpathy/tinyllamas:stories260K/stories260K.bin
if [[ -n $LLM ]]; then
  pull TOK karpathy/tinyllamas:stories260K/tok512.bin
elif [[ -f $FX/llm/stories260K.bin ]]; then
  echo "(offline: using the copy in $FX/llm)"; LLM=$FX/llm/stories260K.bin; TOK=$FX/llm/tok512.bin
fi
if [[ -n $LLM && -n $TOK ]]; then
  "$MM" generate -m "$LLM" --tokenizer "$TOK" --temp 0 -n 120 -p "Once upon a time"
  echo
fi

# ---------------------------------------------------------------- batch
if [[ -n $LLM && -n $TOK ]]; then
  step "mmpipe batch: 8 requests in the OpenAI batch format, continuous batching"
  for i in 1 2 3 4 5 6 7 8; do
    printf '{"custom_id":"story-%d","method":"POST","url":"/v1/completions","body":{"prompt":"Once upon a time, a %s","max_tokens":48,"temperature":0}}\n' \
      "$i" "$(echo "cat dog bird fish girl boy king frog" | cut -d' ' -f$i)"
  done > "$OUT/requests.jsonl"
  "$MM" batch -m "$LLM" --tokenizer "$TOK" -o "$OUT/results.jsonl" "$OUT/requests.jsonl"
  echo "first result line:"; head -c 400 "$OUT/results.jsonl"; echo " ..."
fi

# ---------------------------------------------------------------- speech to text
step "mmpipe transcribe: Whisper base.en (whisper.cpp ggml file) on jfk.wav"
pull WH ggerganov/whisper.cpp:ggml-base.en.bin
if [[ -n $WH && -f $FX/audio/jfk.wav ]]; then
  "$MM" transcribe -m "$WH" -osrt -of "$OUT/jfk" "$FX/audio/jfk.wav" && cat "$OUT/jfk.srt"
  if [[ -n $LLM && -n $TOK ]]; then
    step "mmpipe batch: mixed requests (a transcription and a completion) in one run"
    printf '%s\n' \
      "{\"custom_id\":\"jfk\",\"method\":\"POST\",\"url\":\"/v1/audio/transcriptions\",\"body\":{\"file\":\"$FX/audio/jfk.wav\"}}" \
      '{"custom_id":"story","method":"POST","url":"/v1/completions","body":{"prompt":"Once upon a time","max_tokens":40,"temperature":0}}' \
      > "$OUT/mixed.jsonl"
    "$MM" batch -m "$LLM" --tokenizer "$TOK" -m "$WH" -o "$OUT/mixed.out.jsonl" "$OUT/mixed.jsonl" && cat "$OUT/mixed.out.jsonl"
  fi
else
  echo "(skipped: no Whisper model; see the summary)"
fi

# ---------------------------------------------------------------- image captioning
step "mmpipe caption: SmolVLM-256M-Instruct on two images"
pull VLM HuggingFaceTB/SmolVLM-256M-Instruct
IMGS=()
for f in "$FX"/images/*.jpg "$FX"/images/*.png; do [[ -f $f && ${#IMGS[@]} -lt 2 ]] && IMGS+=("$f"); done
if [[ -n $VLM && ${#IMGS[@]} -gt 0 ]]; then
  "$MM" caption -m "$VLM" -n 60 "${IMGS[@]}"
else
  echo "(skipped: no SmolVLM model; see the summary)"
fi

# ---------------------------------------------------------------- video question answering
step "mmpipe vqa: Qwen2-VL-2B-Instruct on a short clip (about 4.5 GB download)"
pull QVL Qwen/Qwen2-VL-2B-Instruct
CLIP=$(ls "$FX"/video/*.mp4 2>/dev/null | head -1)
if [[ -n $QVL && -n $CLIP ]]; then
  "$MM" vqa -m "$QVL" --fps 1 --max-frames 8 -n 60 "$CLIP" "What is shown in this video?"
else
  echo "(skipped: no Qwen2-VL model; see the summary)"
fi

# ---------------------------------------------------------------- voice activity detection
step "mmpipe vad: Silero VAD on jfk.wav"
pull VAD ggml-org/whisper-vad:ggml-silero-v6.2.0.bin
[[ -z $VAD && -f $FX/whisper/for-tests-silero-v6.2.0-ggml.bin ]] && { echo "(offline: using the Silero weights in $FX/whisper)"; VAD=$FX/whisper/for-tests-silero-v6.2.0-ggml.bin; }
if [[ -n $VAD && -f $FX/audio/jfk.wav ]]; then "$MM" vad -vm "$VAD" "$FX/audio/jfk.wav"; fi

# ---------------------------------------------------------------- model files
if [[ -f $FX/gguf/ggml-vocab-gpt-2.gguf ]]; then
  step "mmpipe info: a llama.cpp GGUF file"
  "$MM" info "$FX/gguf/ggml-vocab-gpt-2.gguf" | head -12
fi

# ---------------------------------------------------------------- summary
step "summary"
if ((${#missing[@]})); then
  echo "Could not get these models (no network, or the hub refused):"
  for m in "${missing[@]}"; do echo "  - $m"; done
  echo "Provide them by running 'mmpipe pull ORG/NAME[:FILE]' on a machine with access and copying"
  echo "~/.cache/huggingface/hub here (or set HF_HOME / HF_ENDPOINT), or pass local files with -m PATH."
fi
echo "What works and what does not yet: see the status table in README.md."
