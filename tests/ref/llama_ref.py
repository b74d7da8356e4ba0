#!/usr/bin/python3
"""llama_ref.py — independent PyTorch reference for the Llama-family decoder (tests/llm).

Written from the published transformers code (models/llama/modeling_llama.py, qwen2/modeling_qwen2.py,
granite/modeling_granite.py, modeling_rope_utils.py): LlamaRMSNorm, rotate_half / apply_rotary_pos_emb,
repeat_kv, eager attention with a causal mask, the SwiGLU MLP, Granite's embedding / attention /
residual multipliers and logits scaling, and the default / linear / llama3 / yarn inverse frequencies.
Computed in float64 over the whole sequence each step (no KV cache).

usage: llama_ref.py MODEL_DIR OUT_PREFIX N_GREEDY TOKEN [TOKEN ...]
  MODEL_DIR has config.json and model.safetensors (F32 / F16 / BF16), read without the safetensors
  package. Writes OUT_PREFIX.logits (float32 [T][V], little-endian) for the given tokens, and
  OUT_PREFIX.greedy (N_GREEDY ids, text) continuing them greedily.
  qwen2_vl (M-RoPE, modeling_qwen2_vl.apply_multimodal_rotary_pos_emb): the three position streams come
  from OUT_PREFIX.pos (int32 [3][T]) when present, else 0..T-1 in each; greedy tokens continue at
  max(position) + 1 in every stream, as get_rope_index places text after an image.
"""
import json
import math
import struct
import sys

import numpy as np
import torch

DT = torch.float64


def load_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        raw = data[base + a:base + b]
        shape = info["shape"]
        dt = info["dtype"]
        if dt == "F32":
            arr = np.frombuffer(raw, dtype="<f4").astype(np.float64)
        elif dt == "F16":
            arr = np.frombuffer(raw, dtype="<f2").astype(np.float64)
        elif dt == "BF16":
            u = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            arr = u.view(np.float32).astype(np.float64)
        else:
            raise SystemExit(f"{path}: dtype {dt} not supported by the reference")
        out[name] = torch.from_numpy(arr.reshape(shape).copy()).to(DT)
    return out


def inv_freq_and_scale(cfg, dim):
    base = cfg.get("rope_theta", 10000.0)
    inv = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=DT) / dim))
    rs = cfg.get("rope_scaling")
    if not rs:
        return inv, 1.0
    kind = rs.get("rope_type", rs.get("type"))
    factor = rs.get("factor", 1.0)
    if kind in ("default", "mrope"):
        return inv, 1.0
    if kind == "linear":
        return inv / factor, 1.0
    if kind == "llama3":
        lo, hi = rs["low_freq_factor"], rs["high_freq_factor"]
        old = rs["original_max_position_embeddings"]
        lo_wl, hi_wl = old / lo, old / hi
        wl = 2 * math.pi / inv
        inv_l = torch.where(wl > lo_wl, inv / factor, inv)
        smooth = (old / wl - lo) / (hi - lo)
        smoothed = (1 - smooth) * inv_l / factor + smooth * inv_l
        medium = ~(wl < hi_wl) * ~(wl > lo_wl)
        return torch.where(medium, smoothed, inv_l), 1.0
    if kind == "yarn":
        mpe = rs.get("original_max_position_embeddings", cfg["max_position_embeddings"])
        attn = rs.get("attention_factor")
        if attn is None:
            attn = 0.1 * math.log(factor) + 1.0
        beta_fast = rs.get("beta_fast") or 32
        beta_slow = rs.get("beta_slow") or 1

        def corr_dim(rot):
            return (dim * math.log(mpe / (rot * 2 * math.pi))) / (2 * math.log(base))

        low = max(math.floor(corr_dim(beta_fast)), 0)
        high = min(math.ceil(corr_dim(beta_slow)), dim - 1)
        if low == high:
            high += 0.001
        ramp = torch.clamp((torch.arange(dim // 2, dtype=DT) - low) / (high - low), 0, 1)
        extra = 1 - ramp
        pos = base ** (torch.arange(0, dim, 2, dtype=DT) / dim)
        inv = (1.0 / (factor * pos)) * (1 - extra) + (1.0 / pos) * extra
        return inv, attn
    raise SystemExit(f"rope scaling {kind} not supported by the reference")


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def rms_norm(x, w, eps):
    var = x.pow(2).mean(-1, keepdim=True)
    return w * (x * torch.rsqrt(var + eps))


def forward(cfg, W, tokens, pos3=None):
    mt = cfg["model_type"]
    H = cfg["num_attention_heads"]
    KV = cfg.get("num_key_value_heads", H)
    D = cfg["hidden_size"]
    hd = cfg.get("head_dim") or D // H
    eps = cfg.get("rms_norm_eps", 1e-6)
    granite = mt == "granite"
    T = len(tokens)
    x = W["model.embed_tokens.weight"][torch.tensor(tokens)]
    if granite:
        x = x * cfg["embedding_multiplier"]
    inv, ascale = inv_freq_and_scale(cfg, hd)
    rs = cfg.get("rope_scaling") or {}
    if "mrope_section" in rs:
        if pos3 is None:
            pos3 = [list(range(T))] * 3
        coss, sins = [], []
        for s in range(3):
            freqs = torch.outer(torch.tensor(pos3[s], dtype=DT), inv)
            emb = torch.cat((freqs, freqs), dim=-1)
            coss.append(emb.cos())
            sins.append(emb.sin())
        sec = rs["mrope_section"] * 2
        cos = torch.cat([m[i % 3] for i, m in enumerate(torch.stack(coss).split(sec, dim=-1))], dim=-1)
        sin = torch.cat([m[i % 3] for i, m in enumerate(torch.stack(sins).split(sec, dim=-1))], dim=-1)
    else:
        pos = torch.arange(T, dtype=DT)
        freqs = torch.outer(pos, inv)
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos() * ascale, emb.sin() * ascale
    scaling = cfg["attention_multiplier"] if granite else hd ** -0.5
    resm = cfg["residual_multiplier"] if granite else 1.0
    mask = torch.full((T, T), float("-inf"), dtype=DT).triu(1)

    def lin(h, name, bias_ok):
        y = h @ W[name + ".weight"].T
        if bias_ok and (name + ".bias") in W:
            y = y + W[name + ".bias"]
        return y

    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        res = x
        h = rms_norm(x, W[p + "input_layernorm.weight"], eps)
        q = lin(h, p + "self_attn.q_proj", True).view(T, H, hd).transpose(0, 1)
        k = lin(h, p + "self_attn.k_proj", True).view(T, KV, hd).transpose(0, 1)
        v = lin(h, p + "self_attn.v_proj", True).view(T, KV, hd).transpose(0, 1)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(H // KV, dim=0)
        v = v.repeat_interleave(H // KV, dim=0)
        att = (q @ k.transpose(1, 2)) * scaling + mask
        att = torch.softmax(att, dim=-1)
        o = (att @ v).transpose(0, 1).reshape(T, H * hd)
        o = lin(o, p + "self_attn.o_proj", True)
        x = res + o * resm
        res = x
        h = rms_norm(x, W[p + "post_attention_layernorm.weight"], eps)
        g = lin(h, p + "mlp.gate_proj", False)
        u = lin(h, p + "mlp.up_proj", False)
        m = lin(torch.nn.functional.silu(g) * u, p + "mlp.down_proj", False)
        x = res + m * resm
    x = rms_norm(x, W["model.norm.weight"], eps)
    head = W["lm_head.weight"] if "lm_head.weight" in W and not cfg.get("tie_word_embeddings", False) \
        else W["model.embed_tokens.weight"]
    logits = x @ head.T
    if granite:
        logits = logits / cfg["logits_scaling"]
    return logits


def main():
    if len(sys.argv) < 5:
        print(__doc__, file=sys.stderr)
        return 2
    mdir, out, n_greedy = sys.argv[1], sys.argv[2], int(sys.argv[3])
    tokens = [int(t) for t in sys.argv[4:]]
    with open(mdir + "/config.json") as f:
        cfg = json.load(f)
    if cfg["model_type"] not in ("llama", "qwen2", "qwen2_vl", "granite"):
        raise SystemExit(f"model_type {cfg['model_type']} not supported by the reference")
    W = load_safetensors(mdir + "/model.safetensors")
    pos3 = None
    try:
        p = np.fromfile(out + ".pos", dtype="<i4").reshape(3, len(tokens))
        pos3 = [list(map(int, p[s])) for s in range(3)]
    except FileNotFoundError:
        pass
    with torch.no_grad():
        logits = forward(cfg, W, tokens, pos3)
        logits.to(torch.float32).numpy().astype("<f4").tofile(out + ".logits")
        seq = list(tokens)
        greedy = []
        for _ in range(n_greedy):
            nxt = int(torch.argmax(forward(cfg, W, seq, pos3)[-1]))
            greedy.append(nxt)
            seq.append(nxt)
            if pos3 is not None:
                nxp = max(max(st) for st in pos3) + 1
                pos3 = [st + [nxp] for st in pos3]
    with open(out + ".greedy", "w") as f:
        f.write(" ".join(str(t) for t in greedy) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
