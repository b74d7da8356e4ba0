#!/usr/bin/env python3
"""ops.py — PyTorch references for the CPU ops of kernels/ops.h (tests/kernels_ops/test_ops_torch.c).

Writes one binary file of cases: each case has a name, numeric parameters and float32 arrays (inputs and
the expected output). The expected outputs are computed in float64 with PyTorch, from the published
model code (transformers' rotary embeddings incl. linear / llama3 / YaRN scaling and Qwen2-VL's
multimodal and vision RoPE, eager attention with repeat_kv, LlamaRMSNorm) or torch.nn.functional
(layer_norm, gelu, silu, softmax, conv1d/2d/3d).

usage: ops.py OUT.bin      (exit 77 when torch is missing)
"""
import math
import struct
import sys

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    sys.stderr.write("ops.py: torch not available\n")
    sys.exit(77)

torch.manual_seed(1234)
D = torch.float64
CASES = []


def case(name, params, arrays):
    CASES.append((name, params, arrays))


def rnd(*shape, lo=-1.0, hi=1.0):
    return (torch.rand(*shape, dtype=torch.float32) * (hi - lo) + lo)


def rotate_half(x):  # transformers: NeoX pairs (i, i + d/2)
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def rotate_interleaved(x):  # GPT-J / llama GGUF pairs (2i, 2i+1)
    x1 = x[..., 0::2]
    x2 = x[..., 1::2]
    return torch.stack((-x2, x1), dim=-1).flatten(-2)


# ---------------------------------------------------------------- rope

def rope_apply(x, freqs, n_rot, neox, mscale=1.0):
    """x [tok, head, hd]; freqs [tok, n_rot/2] angles; the first n_rot dims rotate, the rest pass."""
    xr, xp = x[..., :n_rot], x[..., n_rot:]
    if neox:
        emb = torch.cat((freqs, freqs), dim=-1)[:, None, :]
        out = xr * (emb.cos() * mscale) + rotate_half(xr) * (emb.sin() * mscale)
    else:
        emb = torch.repeat_interleave(freqs, 2, dim=-1)[:, None, :]
        out = xr * (emb.cos() * mscale) + rotate_interleaved(xr) * (emb.sin() * mscale)
    return torch.cat((out, xp), dim=-1)


def rope_case(name, hd, n_rot, neox, inv_freq, pos, theta, freq_scale=1.0, freq_factors=None, mscale=1.0,
              yarn=None, n_head=3):
    n_tok = pos.shape[0]
    x = rnd(n_tok, n_head, hd)
    freqs = pos.to(D)[:, None] * inv_freq.to(D)[None, :]
    y = rope_apply(x.to(D), freqs, n_rot, neox, mscale)
    params = {"head_dim": hd, "n_rot": n_rot, "neox": int(neox), "theta": theta, "freq_scale": freq_scale,
              "n_head": n_head, "n_tok": n_tok}
    if yarn:
        params.update(yarn)
    arrays = {"x": x, "pos": pos.float(), "y": y}
    if freq_factors is not None:
        arrays["freq_factors"] = freq_factors
    case("rope/" + name, params, arrays)


def default_inv_freq(base, dim):  # transformers _compute_default_rope_parameters, in float64
    return 1.0 / (base ** (torch.arange(0, dim, 2, dtype=D) / dim))


def rope_cases():
    pos = torch.tensor([0, 1, 2, 5, 17, 100, 513, 1000, 3, 4], dtype=torch.int64)
    for hd, n_rot, neox in [(64, 64, True), (64, 64, False), (128, 128, True), (80, 40, True), (96, 32, False)]:
        rope_case(f"default_hd{hd}_rot{n_rot}_{'neox' if neox else 'norm'}", hd, n_rot, neox,
                  default_inv_freq(10000.0, n_rot), pos, 10000.0)
    # linear scaling (transformers "linear": positions / factor)
    rope_case("linear4", 64, 64, True, default_inv_freq(500000.0, 64) / 4.0, pos, 500000.0, freq_scale=0.25)
    # llama3 (transformers _compute_llama3_parameters); ggml gets the ratio as per-pair freq_factors
    base, dim, factor, lf, hf, old = 500000.0, 128, 8.0, 1.0, 4.0, 8192
    inv = default_inv_freq(base, dim)
    low_wl, high_wl = old / lf, old / hf
    wl = 2 * math.pi / inv
    inv_l = torch.where(wl > low_wl, inv / factor, inv)
    smooth = (old / wl - lf) / (hf - lf)
    smoothed = (1 - smooth) * inv_l / factor + smooth * inv_l
    is_med = (~(wl < high_wl)) & (~(wl > low_wl))
    inv_l = torch.where(is_med, smoothed, inv_l)
    rope_case("llama3", dim, dim, True, inv_l, pos, base, freq_factors=(inv / inv_l).float())
    # YaRN (transformers _compute_yarn_parameters), n_rot < head_dim too
    for hd, n_rot, factor, orig, base in [(64, 64, 4.0, 4096, 10000.0), (128, 64, 16.0, 2048, 1000000.0)]:
        bf, bs = 32.0, 1.0
        def corr_dim(nrot):
            return (n_rot * math.log(orig / (nrot * 2 * math.pi))) / (2 * math.log(base))
        low = max(math.floor(corr_dim(bf)), 0)
        high = min(math.ceil(corr_dim(bs)), n_rot - 1)
        pos_freqs = base ** (torch.arange(0, n_rot, 2, dtype=D) / n_rot)
        extra, inter = 1.0 / pos_freqs, 1.0 / (factor * pos_freqs)
        hi_ = high + 0.001 if low == high else high
        ramp = torch.clamp((torch.arange(n_rot // 2, dtype=D) - low) / (hi_ - low), 0, 1)
        ext_f = 1 - ramp
        inv = inter * (1 - ext_f) + extra * ext_f
        mscale = 0.1 * math.log(factor) + 1.0
        rope_case(f"yarn_hd{hd}_rot{n_rot}_f{int(factor)}", hd, n_rot, True, inv, pos, base, freq_scale=1.0 / factor,
                  mscale=mscale, yarn={"ext_factor": 1.0, "attn_factor": 1.0, "beta_fast": bf, "beta_slow": bs,
                                       "n_ctx_orig": orig})
    # Qwen2-VL text M-RoPE (transformers apply_multimodal_rotary_pos_emb), mrope_section [16, 24, 24]
    hd, sec = 128, [16, 24, 24]
    n_tok, n_head = 12, 2
    pos3 = torch.stack([torch.arange(n_tok), 5 + torch.arange(n_tok) // 4, 9 + torch.arange(n_tok) % 4])  # [3, tok]
    inv = default_inv_freq(1000000.0, hd)
    freqs = pos3.to(D)[:, :, None] * inv[None, None, :]          # [3, tok, hd/2]
    emb = torch.cat((freqs, freqs), dim=-1)                        # [3, tok, hd]
    cos, sin = emb.cos(), emb.sin()
    split = sec * 2
    cos = torch.cat([m[i % 3] for i, m in enumerate(cos.split(split, dim=-1))], dim=-1)[:, None, :]
    sin = torch.cat([m[i % 3] for i, m in enumerate(sin.split(split, dim=-1))], dim=-1)[:, None, :]
    x = rnd(n_tok, n_head, hd)
    y = x.to(D) * cos + rotate_half(x.to(D)) * sin
    pos4 = torch.cat([pos3.t(), torch.zeros(n_tok, 1, dtype=torch.int64)], dim=1)  # [tok][4]
    case("rope/mrope_qwen2vl", {"head_dim": hd, "n_rot": hd, "neox": 1, "theta": 1000000.0, "freq_scale": 1.0,
                                "n_head": n_head, "n_tok": n_tok, "sec0": 16, "sec1": 24, "sec2": 24},
         {"x": x, "pos": pos4.float(), "y": y})
    # Qwen2-VL vision 2-D RoPE (VisionRotaryEmbedding(head_dim/2) + apply_rotary_pos_emb_vision)
    hd, n_head, gh, gw = 80, 2, 3, 5
    dim = hd // 2
    inv = 1.0 / (10000.0 ** (torch.arange(0, dim, 2, dtype=D) / dim))
    hpos = torch.arange(gh)[:, None].expand(gh, gw).flatten()
    wpos = torch.arange(gw)[None, :].expand(gh, gw).flatten()
    freqs = torch.cat([hpos.to(D)[:, None] * inv[None, :], wpos.to(D)[:, None] * inv[None, :]], dim=-1)  # [n, hd/2]
    n_tok = gh * gw
    x = rnd(n_tok, n_head, hd)
    emb = torch.cat((freqs, freqs), dim=-1)[:, None, :]
    y = x.to(D) * emb.cos() + rotate_half(x.to(D)) * emb.sin()
    pos4 = torch.stack([hpos, wpos, torch.zeros(n_tok, dtype=torch.int64), torch.zeros(n_tok, dtype=torch.int64)], 1)
    case("rope/vision_qwen2vl", {"head_dim": hd, "n_rot": hd, "neox": 1, "theta": 10000.0, "freq_scale": 1.0,
                                 "n_head": n_head, "n_tok": n_tok, "sec0": hd // 4, "sec1": hd // 4, "vision": 1},
         {"x": x, "pos": pos4.float(), "y": y})


# ---------------------------------------------------------------- attention

def attention_cases():
    for n_q, n_kv, nh, nkv, hd, causal, masked in [(1, 1, 1, 1, 64, 0, 0), (7, 7, 4, 4, 64, 1, 0), (1, 33, 8, 2, 64, 1, 0),
                                                   (33, 33, 6, 3, 80, 1, 1), (5, 255, 4, 1, 128, 1, 0),
                                                   (17, 40, 2, 2, 7, 0, 1), (64, 97, 4, 2, 32, 1, 0),
                                                   (3, 1025, 2, 1, 64, 0, 0), (40, 40, 14, 2, 64, 1, 0)]:
        q = rnd(n_q, nh, hd, lo=-2, hi=2)
        k = rnd(n_kv, nkv, hd, lo=-2, hi=2)
        v = rnd(n_kv, nkv, hd, lo=-2, hi=2)
        scale = 1.0 / math.sqrt(hd)
        g = nh // nkv
        kk = k.to(D).repeat_interleave(g, dim=1)  # transformers repeat_kv: head h reads kv head h // g
        vv = v.to(D).repeat_interleave(g, dim=1)
        s = torch.einsum("ihd,jhd->hij", q.to(D), kk) * scale
        mask = None
        if masked:
            mask = rnd(n_q, n_kv, lo=-3, hi=0)
            mask.view(-1)[::3] = -float("inf")
            s = s + mask.to(D)[None]
        if causal:
            off = n_kv - n_q
            vis = torch.arange(n_kv)[None, :] <= (torch.arange(n_q)[:, None] + off)
            s = s.masked_fill(~vis[None], -float("inf"))
        p = torch.softmax(s, dim=-1)
        p = torch.nan_to_num(p, nan=0.0)
        out = torch.einsum("hij,jhd->ihd", p, vv)
        arrays = {"q": q, "k": k, "v": v, "out": out}
        if mask is not None:
            arrays["mask"] = mask
        case(f"attention/q{n_q}_kv{n_kv}_h{nh}_{nkv}_d{hd}_c{causal}_m{masked}",
             {"n_q": n_q, "n_kv": n_kv, "n_head": nh, "n_kv_head": nkv, "head_dim": hd, "causal": causal,
              "scale": scale}, arrays)


# ---------------------------------------------------------------- norms, activations, softmax

def simple_cases():
    for cols in [1, 7, 33, 255, 4097]:
        rows = 5
        x = rnd(rows, cols, lo=-3, hi=5)
        w, b = rnd(cols, lo=-2, hi=2), rnd(cols)
        eps = 1e-5
        case(f"layernorm/{cols}", {"rows": rows, "cols": cols, "eps": eps},
             {"x": x, "w": w, "b": b, "y": F.layer_norm(x.to(D), (cols,), w.to(D), b.to(D), eps)})
        xd = x.to(D)  # LlamaRMSNorm
        rms = xd * torch.rsqrt(xd.pow(2).mean(-1, keepdim=True) + 1e-6) * w.to(D)
        case(f"rmsnorm/{cols}", {"rows": rows, "cols": cols, "eps": 1e-6}, {"x": x, "w": w, "y": rms})
        n = rows * cols
        a, u = rnd(n, lo=-8, hi=8), rnd(n, lo=-3, hi=3)
        ad = a.to(D)
        case(f"gelu_erf/{n}", {"n": n}, {"x": a, "y": F.gelu(ad)})
        case(f"gelu_tanh/{n}", {"n": n}, {"x": a, "y": F.gelu(ad, approximate="tanh")})
        case(f"gelu_quick/{n}", {"n": n}, {"x": a, "y": ad * torch.sigmoid(1.702 * ad)})
        case(f"silu/{n}", {"n": n}, {"x": a, "y": F.silu(ad)})
        case(f"swiglu/{n}", {"n": n}, {"x": a, "u": u, "y": F.silu(ad) * u.to(D)})
        s = rnd(rows, cols, lo=-10, hi=10)
        mask = rnd(rows, cols, lo=-4, hi=0)
        mask.view(-1)[::5] = -float("inf")
        mask[:, 0] = 0.0  # every row keeps a column
        case(f"softmax/{cols}", {"rows": rows, "cols": cols}, {"x": s, "mask": mask,
                                                              "y": torch.softmax(s.to(D) + mask.to(D), -1)})


# ---------------------------------------------------------------- convolutions

def weights(shape, dt):
    w = rnd(*shape)
    if dt == 1:
        w = w.half().float()
    elif dt == 30:
        w = w.bfloat16().float()
    return w


def conv_cases():
    for dt in (0, 1, 30):  # MP_F32, MP_F16, MP_BF16
        # whisper front-end: conv1d k3 p1 stride 1 and stride 2, + GELU done elsewhere
        for stride in (1, 2):
            ci, co, L, K = 13, 9, 37, 3
            x, w, b = rnd(2, ci, L), weights((co, ci, K), dt), rnd(co)
            y = F.conv1d(x.to(D), w.to(D), b.to(D), stride=stride, padding=1)
            case(f"conv1d/dt{dt}_s{stride}", {"dt": dt, "batch": 2, "c_in": ci, "c_out": co, "l_in": L, "k": K,
                                               "stride": stride, "pad": 1}, {"x": x, "w": w, "b": b, "y": y})
        # depthwise conv1d (conformer), groups = C
        for K, pad, stride in ((31, 15, 1), (5, 2, 2)):
            c, L = 11, 64
            x, w, b = rnd(1, c, L), weights((c, 1, K), dt), rnd(c)
            y = F.conv1d(x.to(D), w.to(D), b.to(D), stride=stride, padding=pad, groups=c)
            case(f"conv1d_dw/dt{dt}_k{K}", {"dt": dt, "batch": 1, "c": c, "l_in": L, "k": K, "stride": stride,
                                            "pad": pad}, {"x": x, "w": w, "b": b, "y": y})
        # conv2d: ViT/SigLIP patch embedding and a padded 3x3 stride 2
        for (ci, co, H, W, kh, kw, sh, sw, ph, pw) in ((3, 8, 28, 42, 14, 14, 14, 14, 0, 0),
                                                       (4, 5, 17, 13, 3, 3, 2, 1, 1, 1)):
            x, w, b = rnd(1, ci, H, W), weights((co, ci, kh, kw), dt), rnd(co)
            y = F.conv2d(x.to(D), w.to(D), b.to(D), stride=(sh, sw), padding=(ph, pw))
            case(f"conv2d/dt{dt}_k{kh}", {"dt": dt, "batch": 1, "c_in": ci, "c_out": co, "h": H, "w": W, "kh": kh,
                                          "kw": kw, "sh": sh, "sw": sw, "ph": ph, "pw": pw},
                 {"x": x, "w": w, "b": b, "y": y})
        # conv3d: Qwen2-VL patch embedding (temporal 2, 14x14, stride = kernel, no bias), shrunk channels
        ci, co, T, H, W, kt, kh, kw = 3, 6, 4, 28, 14, 2, 14, 14
        x, w = rnd(1, ci, T, H, W), weights((co, ci, kt, kh, kw), dt)
        y = F.conv3d(x.to(D), w.to(D), None, stride=(kt, kh, kw))
        case(f"conv3d/dt{dt}", {"dt": dt, "batch": 1, "c_in": ci, "c_out": co, "t": T, "h": H, "w": W, "kt": kt,
                                "kh": kh, "kw": kw, "st": kt, "sh": kh, "sw": kw}, {"x": x, "w": w, "y": y})


def write(path):
    with open(path, "wb") as f:
        f.write(b"MPREF1\0\0")
        f.write(struct.pack("<I", len(CASES)))
        for name, params, arrays in CASES:
            nb = name.encode()
            f.write(struct.pack("<I", len(nb)) + nb)
            f.write(struct.pack("<I", len(params)))
            for k, v in params.items():
                kb = k.encode()
                f.write(struct.pack("<I", len(kb)) + kb + struct.pack("<d", float(v)))
            f.write(struct.pack("<I", len(arrays)))
            for k, a in arrays.items():
                kb = k.encode()
                data = a.detach().to(torch.float32).contiguous().numpy().tobytes()
                f.write(struct.pack("<I", len(kb)) + kb + struct.pack("<Q", a.numel()) + data)


def main():
    if len(sys.argv) != 2:
        sys.stderr.write(__doc__)
        return 2
    rope_cases()
    attention_cases()
    simple_cases()
    conv_cases()
    write(sys.argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
