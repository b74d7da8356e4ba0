#!/usr/bin/env python3
"""convert_check.py — independent reference for `mmpipe convert` on HF checkpoints.

  convert_check.py make ROOT TYPE...      writes a tiny random HF checkpoint per model type into ROOT/TYPE
                                         (config.json, two safetensors shards + model.safetensors.index.json;
                                         BF16 and F32 weights)
  convert_check.py check DIR OUT.gguf...  reads each OUT.gguf with its own GGUF parser and checks every key and
                                         tensor against the HF weights, mapped and permuted the way
                                         llama.cpp's convert_hf_to_gguf.py does (LlamaModel.permute for
                                         q/k of llama/mistral/granite; none for qwen2).
Exit status 0 when everything matches."""
import json
import os
import struct
import sys

import numpy as np
import torch


def st_write(path, tensors):
    hdr, blobs, off = {}, [], 0
    for name, t in tensors.items():
        if t.dtype == torch.bfloat16:
            raw = t.contiguous().view(torch.int16).numpy().tobytes()
            dt = "BF16"
        else:
            raw = t.contiguous().numpy().astype(np.float32).tobytes()
            dt = "F32"
        hdr[name] = {"dtype": dt, "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(hdr).encode()
    h += b" " * ((-(8 + len(h))) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


CFG = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
           intermediate_size=96, vocab_size=80, max_position_embeddings=256, rope_theta=50000.0,
           rms_norm_eps=1e-6, tie_word_embeddings=False)


def make(d, model_type):
    os.makedirs(d, exist_ok=True)
    g = torch.Generator().manual_seed(1234)
    cfg = dict(CFG, model_type=model_type, architectures=["X"])
    if model_type == "granite":
        cfg.update(embedding_multiplier=12.0, residual_multiplier=0.22, attention_multiplier=0.015625, logits_scaling=6.0)
    H, L, nh, nkv, F, V = 64, 2, 4, 2, 96, 80
    hd = H // nh
    t = {"model.embed_tokens.weight": torch.randn(V, H, generator=g).to(torch.bfloat16),
         "model.norm.weight": torch.randn(H, generator=g),
         "lm_head.weight": torch.randn(V, H, generator=g).to(torch.bfloat16)}
    for i in range(L):
        p = f"model.layers.{i}."
        t[p + "input_layernorm.weight"] = torch.randn(H, generator=g)
        t[p + "post_attention_layernorm.weight"] = torch.randn(H, generator=g)
        t[p + "self_attn.q_proj.weight"] = torch.randn(nh * hd, H, generator=g).to(torch.bfloat16)
        t[p + "self_attn.k_proj.weight"] = torch.randn(nkv * hd, H, generator=g)
        t[p + "self_attn.v_proj.weight"] = torch.randn(nkv * hd, H, generator=g)
        t[p + "self_attn.o_proj.weight"] = torch.randn(H, nh * hd, generator=g)
        t[p + "mlp.gate_proj.weight"] = torch.randn(F, H, generator=g)
        t[p + "mlp.up_proj.weight"] = torch.randn(F, H, generator=g)
        t[p + "mlp.down_proj.weight"] = torch.randn(H, F, generator=g)
        if model_type == "qwen2":
            t[p + "self_attn.q_proj.bias"] = torch.randn(nh * hd, generator=g)
            t[p + "self_attn.k_proj.bias"] = torch.randn(nkv * hd, generator=g)
            t[p + "self_attn.v_proj.bias"] = torch.randn(nkv * hd, generator=g)
    names = list(t)
    half = len(names) // 2
    shards = {"model-00001-of-00002.safetensors": names[:half], "model-00002-of-00002.safetensors": names[half:]}
    wm = {}
    for fn, ns in shards.items():
        st_write(os.path.join(d, fn), {n: t[n] for n in ns})
        wm.update({n: fn for n in ns})
    with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": 0}, "weight_map": wm}, f)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f)
    torch.save(t, os.path.join(d, "ref.pt"))


# ---- a GGUF reader (published layout: ggml docs/gguf.md)
SZ = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
FMT = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}


def read_gguf(path):
    b = open(path, "rb").read()
    pos = 0

    def take(n):
        nonlocal pos
        r = b[pos:pos + n]
        pos += n
        return r

    def u32():
        return struct.unpack("<I", take(4))[0]

    def u64():
        return struct.unpack("<Q", take(8))[0]

    def s():
        return take(u64()).decode()

    def val(t):
        if t in FMT:
            return struct.unpack(FMT[t], take(SZ[t]))[0]
        if t == 8:
            return s()
        et, n = u32(), u64()
        return [val(et) for _ in range(n)]

    assert take(4) == b"GGUF"
    ver, nt, nkv = u32(), u64(), u64()
    kv = {}
    for _ in range(nkv):
        k = s()
        kv[k] = val(u32())
    ti = []
    for _ in range(nt):
        name = s()
        nd = u32()
        ne = [u64() for _ in range(nd)]
        ti.append((name, ne, u32(), u64()))
    align = kv.get("general.alignment", 32)
    data = (pos + align - 1) // align * align
    out = {}
    for name, ne, typ, off in ti:
        n = int(np.prod(ne))
        p = data + off
        if typ == 0:
            a = np.frombuffer(b, np.float32, n, p)
        elif typ == 1:
            a = np.frombuffer(b, np.float16, n, p).astype(np.float32)
        elif typ == 30:
            a = (np.frombuffer(b, np.uint16, n, p).astype(np.uint32) << 16).view(np.float32)
        elif typ == 8:  # q8_0: f16 d + 32 x int8
            blk = np.frombuffer(b, np.uint8, n // 32 * 34, p).reshape(-1, 34)
            d = blk[:, :2].copy().view(np.float16).astype(np.float32)
            q = blk[:, 2:].copy().view(np.int8).astype(np.float32)
            a = (q * d).reshape(-1)
        else:
            raise SystemExit(f"type {typ} not handled")
        out[name] = (a.reshape(list(reversed(ne))), typ)
    return ver, kv, out


def permute(w, n_head):  # llama.cpp convert_hf_to_gguf.py LlamaModel.permute
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def check(d, path):
    cfg = json.load(open(os.path.join(d, "config.json")))
    mt = cfg["model_type"]
    arch = {"llama": "llama", "mistral": "llama", "granite": "granite", "qwen2": "qwen2"}[mt]
    ref = torch.load(os.path.join(d, "ref.pt"))
    ver, kv, ts = read_gguf(path)
    bad = []

    def expect(k, v):
        got = kv.get(k)
        if got is None or (isinstance(v, float) and abs(got - v) > 1e-6 * max(1, abs(v))) or (not isinstance(v, float) and got != v):
            bad.append(f"key {k}: {got!r} != {v!r}")

    expect("general.architecture", arch)
    a = arch + "."
    expect(a + "embedding_length", cfg["hidden_size"])
    expect(a + "block_count", cfg["num_hidden_layers"])
    expect(a + "feed_forward_length", cfg["intermediate_size"])
    expect(a + "attention.head_count", cfg["num_attention_heads"])
    expect(a + "attention.head_count_kv", cfg["num_key_value_heads"])
    expect(a + "context_length", cfg["max_position_embeddings"])
    expect(a + "rope.freq_base", cfg["rope_theta"])
    expect(a + "attention.layer_norm_rms_epsilon", cfg["rms_norm_eps"])
    expect(a + "vocab_size", cfg["vocab_size"])
    if mt == "granite":
        expect(a + "embedding_scale", 12.0)
        expect(a + "logit_scale", 6.0)
    nh, nkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    m = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
         "lm_head.weight": "output.weight"}
    lay = {"input_layernorm.weight": "attn_norm.weight", "post_attention_layernorm.weight": "ffn_norm.weight",
           "self_attn.q_proj.weight": "attn_q.weight", "self_attn.k_proj.weight": "attn_k.weight",
           "self_attn.v_proj.weight": "attn_v.weight", "self_attn.o_proj.weight": "attn_output.weight",
           "mlp.gate_proj.weight": "ffn_gate.weight", "mlp.up_proj.weight": "ffn_up.weight",
           "mlp.down_proj.weight": "ffn_down.weight", "self_attn.q_proj.bias": "attn_q.bias",
           "self_attn.k_proj.bias": "attn_k.bias", "self_attn.v_proj.bias": "attn_v.bias"}
    quant = kv.get("general.file_type") == 7
    for hf, w in ref.items():
        if hf in m:
            gn = m[hf]
        else:
            i, rest = hf.split(".", 3)[2], hf.split(".", 3)[3]
            gn = f"blk.{i}.{lay[rest]}"
        w = w.float().numpy()
        if arch != "qwen2" and ("q_proj" in hf or "k_proj" in hf):
            w = permute(w, nh if "q_proj" in hf else nkv)
        if gn not in ts:
            bad.append(f"{gn} missing")
            continue
        got, typ = ts[gn]
        if got.shape != w.shape:
            bad.append(f"{gn}: shape {got.shape} != {w.shape}")
            continue
        if w.ndim == 1 and typ != 0:
            bad.append(f"{gn}: 1-D tensor stored as type {typ}, expected f32")
        tol = np.abs(w).max() / 127 * 0.51 + 1e-7 if (quant and w.ndim == 2) else 0.0
        err = np.abs(got - w).max()
        if err > tol:
            bad.append(f"{gn}: max |diff| {err} > {tol}")
    if len(ts) != len(ref):
        bad.append(f"{len(ts)} tensors, expected {len(ref)}")
    for x in bad:
        print("FAIL", x)
    print(f"checked {len(ref)} tensors, {len(bad)} problems")
    return 1 if bad else 0


if __name__ == "__main__":
    if sys.argv[1] == "make":
        for mt in sys.argv[3:]:
            make(os.path.join(sys.argv[2], mt), mt)
    else:
        rc = 0
        for out in sys.argv[3:]:
            print(out)
            rc |= check(sys.argv[2], out)
        sys.exit(rc)
