#!/usr/bin/env bash
# mmpipe generate on an HF folder: a tiny random-weight llama written here (config.json scaled down from
# SmolVLM-256M's text_config, model.safetensors) with SmolVLM's real tokenizer and chat template files.
# --chat renders the template; the greedy ids the CLI emits equal the PyTorch reference's
# (tests/ref/llama_ref.py) continuation of the prompt ids the CLI reports with -v.
set -u
H="$MMPIPE_FIXTURES/hf/HuggingFaceTB--SmolVLM-256M-Instruct"
[ -f "$H/tokenizer.json" ] || { echo "skip: no SmolVLM tokenizer"; exit 77; }
[ -x "$MP_PYTHON" ] || { echo "skip: no $MP_PYTHON"; exit 77; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
m="$tmp/tiny-smolvlm-text"
mkdir -p "$m"
for f in tokenizer.json tokenizer_config.json special_tokens_map.json added_tokens.json chat_template.json generation_config.json; do
  [ -f "$H/$f" ] && cp "$H/$f" "$m/"
done
"$MP_PYTHON" - "$m" <<'PY' || exit 1
import json, struct, sys
import numpy as np
d = sys.argv[1]
D, H, KV, L, F, V = 64, 4, 2, 2, 96, 49280
cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": D, "intermediate_size": F,
       "num_hidden_layers": L, "num_attention_heads": H, "num_key_value_heads": KV, "vocab_size": V,
       "rms_norm_eps": 1e-5, "rope_theta": 100000.0, "max_position_embeddings": 256, "tie_word_embeddings": False,
       "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu"}
json.dump(cfg, open(d + "/config.json", "w"), indent=1)
rng = np.random.default_rng(7)
hd = D // H
w = {"model.embed_tokens.weight": (V, D, 1.0), "model.norm.weight": (D, None, 0), "lm_head.weight": (V, D, 0.25)}
for l in range(L):
    p = f"model.layers.{l}."
    w.update({p + "input_layernorm.weight": (D, None, 0), p + "post_attention_layernorm.weight": (D, None, 0),
              p + "self_attn.q_proj.weight": (H * hd, D, 0.25), p + "self_attn.k_proj.weight": (KV * hd, D, 0.25),
              p + "self_attn.v_proj.weight": (KV * hd, D, 0.125), p + "self_attn.o_proj.weight": (D, H * hd, 0.125),
              p + "mlp.gate_proj.weight": (F, D, 0.25), p + "mlp.up_proj.weight": (F, D, 0.25),
              p + "mlp.down_proj.weight": (D, F, 0.1)})
hdr, blobs, off = {}, [], 0
for name, (a, b, sc) in w.items():
    arr = (1.0 + 0.2 * rng.uniform(-1, 1, a)) if b is None else sc * rng.uniform(-1, 1, (a, b))
    raw = arr.astype("<f4").tobytes()
    hdr[name] = {"dtype": "F32", "shape": [a] if b is None else [a, b], "data_offsets": [off, off + len(raw)]}
    blobs.append(raw)
    off += len(raw)
h = json.dumps(hdr).encode()
h += b" " * ((8 - len(h) % 8) % 8)
with open(d + "/model.safetensors", "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
PY
fail=0
"$MMPIPE" generate -m "$m" --chat --system "Be brief." -p "Hello there" -n 6 --temp 0 --ignore-eos -v --logprobs -t 2 \
  >"$tmp/out" 2>"$tmp/err" || { echo "FAIL: generate exited $?"; cat "$tmp/err"; exit 1; }
grep -q 'prompt text: "<|im_start|>System: Be brief.<end_of_utterance>' "$tmp/err" || { echo "FAIL: no system turn"; fail=1; }
grep -q 'User: Hello there<end_of_utterance>' "$tmp/err" || { echo "FAIL: chat template not applied"; cat "$tmp/err"; fail=1; }
grep -q 'Assistant:"' "$tmp/err" || { echo "FAIL: no generation prompt"; fail=1; }
ids=$(sed -n 's/.*prompt ids: *//p' "$tmp/err")
got=$(sed -n 's/^logprob id=\([0-9]*\) .*/\1/p' "$tmp/err" | tr '\n' ' ' | sed 's/ $//')
[ -n "$ids" ] && [ "$(echo $got | wc -w)" -eq 6 ] || { echo "FAIL: ids '$ids' / generated '$got'"; cat "$tmp/err"; exit 1; }
"$MP_PYTHON" "$MP_SOURCE_DIR/tests/ref/llama_ref.py" "$m" "$tmp/ref" 6 $ids || { echo "FAIL: reference"; exit 1; }
want=$(cat "$tmp/ref.greedy" | tr -s ' \n' ' ' | sed 's/ $//')
[ "$got" = "$want" ] || { echo "FAIL: greedy ids $got, reference $want"; fail=1; }
# the text on stdout is the decoding of exactly those tokens (nothing else)
[ -s "$tmp/out" ] || { echo "FAIL: empty stdout"; fail=1; }
# the generation config's EOS stops a run: forbid nothing, just check the EOS id is known (SmolVLM: 49279)
"$MMPIPE" generate -m "$m" -p "Hi" -n 3 --temp 0 -v 2>"$tmp/err2" >/dev/null || { echo "FAIL: plain prompt"; cat "$tmp/err2"; fail=1; }
# unknown template construct / missing template: one clear line
printf '{%% foo %%}' >"$tmp/bad.jinja"
if "$MMPIPE" generate -m "$m" --chat-template "$tmp/bad.jinja" -p x -n 1 >/dev/null 2>"$tmp/e"; then echo "FAIL: bad template accepted"; fail=1; fi
[ "$(wc -l <"$tmp/e")" -eq 1 ] || { echo "FAIL: bad template error:"; cat "$tmp/e"; fail=1; }
[ $fail -eq 0 ] && echo "ok: chat template, greedy ids $got == reference"
exit $fail
