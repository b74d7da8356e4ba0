#!/usr/bin/python3
"""qwen2vl_ref.py — independent PyTorch reference for Qwen2-VL / Qwen2.5-VL (tests/vqa).

Written from the published transformers code (models/qwen2_vl/modeling_qwen2_vl.py and
models/qwen2_5_vl/modeling_qwen2_5_vl.py): PatchEmbed (nn.Conv3d), VisionRotaryEmbedding + rot_pos_emb,
apply_rotary_pos_emb_vision, VisionAttention over cu_seqlens, Qwen2VLVisionBlock (LayerNorm, quick_gelu
MLP), Qwen2_5_VLVisionBlock (Qwen2RMSNorm, SiLU-gated MLP with biases), get_window_index and the window
reordering / argsort, PatchMerger / Qwen2_5_VLPatchMerger, get_rope_index (3-D M-RoPE position ids with
second_per_grid_ts * tokens_per_second for Qwen2.5-VL, fractional seconds as transformers >= 4.52 and vLLM compute them) and the
masked_scatter of the vision rows into the input embeddings. The Qwen2 decoder with M-RoPE is
tests/ref/llama_ref.py's forward (written from the same code), fed the vision rows as extra rows of
its embedding table. Everything in float64.

usage:
  qwen2vl_ref.py make qwen2vl|qwen25vl OUT_DIR SEED [bf16]
      writes a tiny random-weight HF folder: the real Qwen2-VL-2B-Instruct / Qwen2.5-VL-7B-Instruct
      config.json (from $MMPIPE_FIXTURES/hf) scaled down, preprocessor_config.json, the real tokenizer
      files, chat template and generation config, and model.safetensors (F32, or BF16).
  qwen2vl_ref.py run MODEL_DIR IO_DIR
      IO_DIR/in.json: {"items": [{"kind": "image"|"video", "grid": [t, h, w], "second_per_grid": s}],
                       "tokens": [...] (may be empty), "n_greedy": N, "logit_rows": K}
      IO_DIR/pixels.f32: the processor's patch rows of all items (float32).
      Writes embed.f32 (patch embedding), rotpos.i32 ([N][2]: row, column of every patch), blocks.f32
      (output of the last block in the original patch order), merged.f32 (the vision tower's output),
      and for Qwen2.5-VL winidx.i32 / cuwin.i32 (window index and cu_window_seqlens, per item); with
      tokens: pos.i32 ([3][T]), delta.txt (rope delta), logits.f32 (the last K rows, [K][V]) and
      greedy.txt (N greedy ids continuing the prompt, as generate() does with the rope deltas) with
      greedy_top5.f32 ([N][5]: the 5 largest log-probabilities at each of those steps).
"""
import json
import os
import shutil
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llama_ref  # noqa: E402  (the Qwen2 decoder with M-RoPE)

DT = torch.float64

# ---------------------------------------------------------------- tiny fixtures

REAL = {"qwen2vl": "Qwen--Qwen2-VL-2B-Instruct", "qwen25vl": "Qwen--Qwen2.5-VL-7B-Instruct"}


def scaled_config(variant, real):
    """The real config with the sizes scaled down, ratios kept where they matter (GQA, M-RoPE sections
    over the rotary pairs, mlp ratio, window of 112 px, a full-attention block every few blocks)."""
    c = dict(real)
    c.update(hidden_size=64, intermediate_size=160, num_hidden_layers=2, num_attention_heads=4,
             max_window_layers=2)
    c["rope_scaling"] = dict(real["rope_scaling"], mrope_section=[2, 3, 3])  # 8 pairs = head 16 / 2
    v = dict(real["vision_config"])
    if variant == "qwen2vl":
        c["num_key_value_heads"] = 2
        v.update(depth=2, embed_dim=40, num_heads=2, hidden_size=64)  # head 20: rotary halves of 5 pairs
    else:
        c["num_key_value_heads"] = 1
        v.update(depth=4, hidden_size=40, intermediate_size=104, num_heads=2, out_hidden_size=64,
                 fullatt_block_indexes=[1, 3])
    c["vision_config"] = v
    return c


def tensor_shapes(variant, c):
    v = c["vision_config"]
    D = v["embed_dim"] if variant == "qwen2vl" else v["hidden_size"]
    Fv = int(D * v.get("mlp_ratio", 4)) if variant == "qwen2vl" else v["intermediate_size"]
    out = v["hidden_size"] if variant == "qwen2vl" else v["out_hidden_size"]
    P, T, m = v["patch_size"], v["temporal_patch_size"], v["spatial_merge_size"]
    Dm = D * m * m
    s = [("visual.patch_embed.proj.weight", (D, 3, T, P, P), "w")]
    for l in range(v["depth"]):
        p = f"visual.blocks.{l}."
        s += [(p + "norm1.weight", (D,), "n"), (p + "norm2.weight", (D,), "n")]
        if variant == "qwen2vl":
            s += [(p + "norm1.bias", (D,), "b"), (p + "norm2.bias", (D,), "b")]
        s += [(p + "attn.qkv.weight", (3 * D, D), "w"), (p + "attn.qkv.bias", (3 * D,), "b"),
              (p + "attn.proj.weight", (D, D), "w"), (p + "attn.proj.bias", (D,), "b")]
        if variant == "qwen2vl":
            s += [(p + "mlp.fc1.weight", (Fv, D), "w"), (p + "mlp.fc1.bias", (Fv,), "b"),
                  (p + "mlp.fc2.weight", (D, Fv), "w"), (p + "mlp.fc2.bias", (D,), "b")]
        else:
            s += [(p + "mlp.gate_proj.weight", (Fv, D), "w"), (p + "mlp.gate_proj.bias", (Fv,), "b"),
                  (p + "mlp.up_proj.weight", (Fv, D), "w"), (p + "mlp.up_proj.bias", (Fv,), "b"),
                  (p + "mlp.down_proj.weight", (D, Fv), "w"), (p + "mlp.down_proj.bias", (D,), "b")]
    s += [("visual.merger.ln_q.weight", (D,), "n")]
    if variant == "qwen2vl":
        s += [("visual.merger.ln_q.bias", (D,), "b")]
    s += [("visual.merger.mlp.0.weight", (Dm, Dm), "w"), ("visual.merger.mlp.0.bias", (Dm,), "b"),
          ("visual.merger.mlp.2.weight", (out, Dm), "w"), ("visual.merger.mlp.2.bias", (out,), "b")]
    H, KV, Dt, Ft = c["num_attention_heads"], c["num_key_value_heads"], c["hidden_size"], c["intermediate_size"]
    hd = Dt // H
    s += [("model.embed_tokens.weight", (c["vocab_size"], Dt), "e")]
    for l in range(c["num_hidden_layers"]):
        p = f"model.layers.{l}."
        s += [(p + "input_layernorm.weight", (Dt,), "n"), (p + "post_attention_layernorm.weight", (Dt,), "n"),
              (p + "self_attn.q_proj.weight", (H * hd, Dt), "w"), (p + "self_attn.q_proj.bias", (H * hd,), "b"),
              (p + "self_attn.k_proj.weight", (KV * hd, Dt), "w"), (p + "self_attn.k_proj.bias", (KV * hd,), "b"),
              (p + "self_attn.v_proj.weight", (KV * hd, Dt), "w"), (p + "self_attn.v_proj.bias", (KV * hd,), "b"),
              (p + "self_attn.o_proj.weight", (Dt, H * hd), "w"),
              (p + "mlp.gate_proj.weight", (Ft, Dt), "w"), (p + "mlp.up_proj.weight", (Ft, Dt), "w"),
              (p + "mlp.down_proj.weight", (Dt, Ft), "w")]
    s += [("model.norm.weight", (Dt,), "n")]
    if not c.get("tie_word_embeddings", False):
        s += [("lm_head.weight", (c["vocab_size"], Dt), "w")]
    return s


def write_safetensors(path, tensors, bf16):
    header, blobs, off = {}, [], 0
    for name, t in tensors:
        a = t.to(torch.float32).contiguous().numpy()
        if bf16:
            raw = (a.view(np.uint32) >> 16).astype("<u2").tobytes()  # values are already bf16-exact
        else:
            raw = a.astype("<f4").tobytes()
        header[name] = {"dtype": "BF16" if bf16 else "F32", "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def make(variant, out, seed, bf16):
    fx = os.environ.get("MMPIPE_FIXTURES", os.path.join(os.path.dirname(__file__), "../../../shared/fixtures"))
    real_dir = os.path.join(fx, "hf", REAL[variant])
    with open(os.path.join(real_dir, "config.json")) as f:
        real = json.load(f)
    c = scaled_config(variant, real)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(c, f, indent=2)
    with open(os.path.join(real_dir, "preprocessor_config.json")) as f:
        pp = json.load(f)
    pp["max_pixels"] = 28 * 28 * 48  # small images: at most 48 merged tokens a frame
    with open(os.path.join(out, "preprocessor_config.json"), "w") as f:
        json.dump(pp, f, indent=2)
    tok_dir = os.path.join(fx, "hf", REAL["qwen2vl"])  # the 7B folder has no vocab.json / merges.txt (same BPE)
    for name in ("vocab.json", "merges.txt"):
        shutil.copyfile(os.path.join(tok_dir, name), os.path.join(out, name))
    for name in ("tokenizer_config.json", "chat_template.json", "generation_config.json"):
        shutil.copyfile(os.path.join(real_dir, name), os.path.join(out, name))
    g = torch.Generator().manual_seed(seed)
    tensors = []
    for name, shape, kind in tensor_shapes(variant, c):
        r = torch.randn(*shape, generator=g, dtype=torch.float32)
        if kind == "w":
            fan_in = int(np.prod(shape[1:]))
            t = r * (1.0 / fan_in ** 0.5)
        elif kind == "n":
            t = 1.0 + 0.2 * r
        elif kind == "b":
            t = 0.1 * r
        else:  # embeddings
            t = r
        if bf16:
            t = t.to(torch.bfloat16).to(torch.float32)
        tensors.append((name, t))
    write_safetensors(os.path.join(out, "model.safetensors"), tensors, bf16)


# ---------------------------------------------------------------- the vision tower (modeling code)

def rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary_pos_emb_vision(q, k, cos, sin):
    cos, sin = cos.unsqueeze(-2), sin.unsqueeze(-2)
    return (q * cos) + (rotate_half(q) * sin), (k * cos) + (rotate_half(k) * sin)


def rot_pos_ids(grid_thw, m):
    pos_ids = []
    for t, h, w in grid_thw:
        hpos = torch.arange(h).unsqueeze(1).expand(-1, w)
        hpos = hpos.reshape(h // m, m, w // m, m).permute(0, 2, 1, 3).flatten()
        wpos = torch.arange(w).unsqueeze(0).expand(h, -1)
        wpos = wpos.reshape(h // m, m, w // m, m).permute(0, 2, 1, 3).flatten()
        pos_ids.append(torch.stack([hpos, wpos], dim=-1).repeat(t, 1))
    return torch.cat(pos_ids, dim=0)


def rot_pos_emb(grid_thw, m, head_dim):
    dim = head_dim // 2  # VisionRotaryEmbedding(head_dim // 2)
    inv_freq = 1.0 / (10000.0 ** (torch.arange(0, dim, 2, dtype=DT) / dim))
    pos_ids = rot_pos_ids(grid_thw, m)
    max_grid = max(max(h, w) for _, h, w in grid_thw)
    full = torch.outer(torch.arange(max_grid, dtype=DT), inv_freq)
    return full[pos_ids].flatten(1), pos_ids


def get_window_index(grid_thw, window_size, m, patch_size):
    window_index, cu_window_seqlens, window_index_id = [], [0], 0
    vit_merger_window_size = window_size // m // patch_size
    for grid_t, grid_h, grid_w in grid_thw:
        llm_grid_h, llm_grid_w = grid_h // m, grid_w // m
        index = torch.arange(grid_t * llm_grid_h * llm_grid_w).reshape(grid_t, llm_grid_h, llm_grid_w)
        pad_h = vit_merger_window_size - llm_grid_h % vit_merger_window_size
        pad_w = vit_merger_window_size - llm_grid_w % vit_merger_window_size
        num_windows_h = (llm_grid_h + pad_h) // vit_merger_window_size
        num_windows_w = (llm_grid_w + pad_w) // vit_merger_window_size
        index_padded = F.pad(index, (0, pad_w, 0, pad_h), "constant", -100)
        index_padded = index_padded.reshape(grid_t, num_windows_h, vit_merger_window_size, num_windows_w,
                                            vit_merger_window_size)
        index_padded = index_padded.permute(0, 1, 3, 2, 4).reshape(
            grid_t, num_windows_h * num_windows_w, vit_merger_window_size, vit_merger_window_size)
        seqlens = (index_padded != -100).sum([2, 3]).reshape(-1)
        index_padded = index_padded.reshape(-1)
        index_new = index_padded[index_padded != -100]
        window_index.append(index_new + window_index_id)
        cu_seqlens_tmp = seqlens.cumsum(0) * m * m + cu_window_seqlens[-1]
        cu_window_seqlens.extend(cu_seqlens_tmp.tolist())
        window_index_id += grid_t * llm_grid_h * llm_grid_w
    return torch.cat(window_index, dim=0), cu_window_seqlens


def layer_norm(x, w, b, eps=1e-6):
    return F.layer_norm(x, (x.shape[-1],), w, b, eps)


def rms_norm(x, w, eps=1e-6):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def act_fn(name):
    if name == "quick_gelu":
        return lambda x: x * torch.sigmoid(1.702 * x)
    if name == "gelu":
        return F.gelu
    if name == "silu":
        return F.silu
    raise SystemExit(f"activation {name} not supported by the reference")


def vision_forward(variant, vc, W, pixels, grid_thw):
    v25 = variant == "qwen25vl"
    D = vc["hidden_size"] if v25 else vc["embed_dim"]
    H = vc["num_heads"]
    hd = D // H
    P, T, m = vc["patch_size"], vc["temporal_patch_size"], vc["spatial_merge_size"]
    C = vc.get("in_chans", vc.get("in_channels", 3))
    act = act_fn(vc.get("hidden_act", "silu" if v25 else "quick_gelu"))
    out = {}
    # PatchEmbed: view as (-1, C, T, P, P) and a Conv3d with kernel = stride
    x = pixels.view(-1, C, T, P, P)
    x = F.conv3d(x, W["visual.patch_embed.proj.weight"], stride=(T, P, P)).view(-1, D)
    out["embed"] = x.clone()
    rpe, pos_ids = rot_pos_emb(grid_thw, m, hd)
    out["rotpos"] = pos_ids
    seq_len = x.shape[0]
    unit = m * m
    if v25:
        window_index, cu_window = get_window_index(grid_thw, vc["window_size"], m, P)
        out["winidx"], out["cuwin"] = window_index, torch.tensor(cu_window)
        cu_window = torch.unique_consecutive(torch.tensor(cu_window, dtype=torch.int32))
        x = x.reshape(seq_len // unit, unit, -1)[window_index].reshape(seq_len, -1)
        rpe = rpe.reshape(seq_len // unit, unit, -1)[window_index].reshape(seq_len, -1)
    emb = torch.cat((rpe, rpe), dim=-1)
    cos, sin = emb.cos(), emb.sin()
    sizes = torch.tensor([h * w for t, h, w in grid_thw for _ in range(t)])
    cu_seqlens = F.pad(sizes.cumsum(0), (1, 0), value=0)
    full = set(vc.get("fullatt_block_indexes", []))
    for l in range(vc["depth"]):
        p = f"visual.blocks.{l}."
        cu = cu_seqlens if (not v25 or l in full) else cu_window
        h = rms_norm(x, W[p + "norm1.weight"]) if v25 else layer_norm(x, W[p + "norm1.weight"], W[p + "norm1.bias"])
        qkv = h @ W[p + "attn.qkv.weight"].T + W[p + "attn.qkv.bias"]
        q, k, v = qkv.reshape(seq_len, 3, H, -1).permute(1, 0, 2, 3).unbind(0)
        q, k = apply_rotary_pos_emb_vision(q, k, cos, sin)
        q, k, v = (t.transpose(0, 1) for t in (q, k, v))  # [H, N, hd]
        outs = []
        for a, b in zip(cu[:-1].tolist(), cu[1:].tolist()):
            s = (q[:, a:b] @ k[:, a:b].transpose(1, 2)) * hd ** -0.5
            outs.append(torch.softmax(s, dim=-1) @ v[:, a:b])
        att = torch.cat(outs, dim=1).transpose(0, 1).reshape(seq_len, -1)
        x = x + att @ W[p + "attn.proj.weight"].T + W[p + "attn.proj.bias"]
        h = rms_norm(x, W[p + "norm2.weight"]) if v25 else layer_norm(x, W[p + "norm2.weight"], W[p + "norm2.bias"])
        if v25:
            g = h @ W[p + "mlp.gate_proj.weight"].T + W[p + "mlp.gate_proj.bias"]
            u = h @ W[p + "mlp.up_proj.weight"].T + W[p + "mlp.up_proj.bias"]
            y = (act(g) * u) @ W[p + "mlp.down_proj.weight"].T + W[p + "mlp.down_proj.bias"]
        else:
            y = act(h @ W[p + "mlp.fc1.weight"].T + W[p + "mlp.fc1.bias"]) @ W[p + "mlp.fc2.weight"].T \
                + W[p + "mlp.fc2.bias"]
        x = x + y
    blocks = x
    if v25:  # back to the original patch order for comparison
        blocks = torch.empty_like(x)
        blocks.view(seq_len // unit, unit, -1)[window_index] = x.view(seq_len // unit, unit, -1)
    out["blocks"] = blocks
    # merger
    xn = rms_norm(x, W["visual.merger.ln_q.weight"]) if v25 else \
        layer_norm(x, W["visual.merger.ln_q.weight"], W["visual.merger.ln_q.bias"])
    y = xn.view(-1, D * unit) @ W["visual.merger.mlp.0.weight"].T + W["visual.merger.mlp.0.bias"]
    y = F.gelu(y) @ W["visual.merger.mlp.2.weight"].T + W["visual.merger.mlp.2.bias"]
    if v25:
        y = y[torch.argsort(window_index)]
    out["merged"] = y
    return out


# ---------------------------------------------------------------- M-RoPE position ids

def get_rope_index(cfg, input_ids, image_grid_thw, video_grid_thw, second_per_grid_ts, v25):
    """get_rope_index for one sequence without padding (batch of 1, attention mask all ones)."""
    m = cfg["vision_config"]["spatial_merge_size"]
    image_token_id, video_token_id = cfg["image_token_id"], cfg["video_token_id"]
    vision_start_token_id = cfg["vision_start_token_id"]
    ids = torch.tensor(input_ids)
    if not image_grid_thw and not video_grid_thw:
        pos = torch.arange(len(input_ids)).view(1, -1).expand(3, -1)
        return pos, 0
    vision_start_indices = torch.argwhere(ids == vision_start_token_id).squeeze(1)
    vision_tokens = ids[vision_start_indices + 1]
    image_nums = int((vision_tokens == image_token_id).sum())
    video_nums = int((vision_tokens == video_token_id).sum())
    input_tokens = list(input_ids)
    llm_pos_ids_list = []
    st = 0
    image_index, video_index = 0, 0
    remain_images, remain_videos = image_nums, video_nums
    for _ in range(image_nums + video_nums):
        if image_token_id in input_tokens and remain_images > 0:
            ed_image = input_tokens.index(image_token_id, st)
        else:
            ed_image = len(input_tokens) + 1
        if video_token_id in input_tokens and remain_videos > 0:
            ed_video = input_tokens.index(video_token_id, st)
        else:
            ed_video = len(input_tokens) + 1
        if ed_image < ed_video:
            t, h, w = image_grid_thw[image_index]
            second_per_grid_t = 0
            image_index += 1
            remain_images -= 1
            ed = ed_image
        else:
            t, h, w = video_grid_thw[video_index]
            second_per_grid_t = second_per_grid_ts[video_index] if second_per_grid_ts is not None else 1.0
            video_index += 1
            remain_videos -= 1
            ed = ed_video
        llm_grid_t, llm_grid_h, llm_grid_w = t, h // m, w // m
        text_len = ed - st
        st_idx = llm_pos_ids_list[-1].max() + 1 if len(llm_pos_ids_list) > 0 else 0
        llm_pos_ids_list.append(torch.arange(text_len).view(1, -1).expand(3, -1) + st_idx)
        if v25:
            # transformers >= 4.52 (and vLLM): the seconds stay fractional; the int64 index tensor times a
            # Python float is a float32 tensor, truncated by .long() (older releases cast second_per_grid_t
            # to int64 first, which turned 0.5 s into 0)
            if torch.is_tensor(second_per_grid_t):
                second_per_grid_t = second_per_grid_t.detach().item()
            range_tensor = torch.arange(llm_grid_t).view(-1, 1)
            expanded_range = range_tensor.expand(-1, llm_grid_h * llm_grid_w)
            time_tensor = expanded_range * second_per_grid_t * cfg["vision_config"]["tokens_per_second"]
            t_index = time_tensor.long().flatten()
        else:
            t_index = torch.arange(llm_grid_t).view(-1, 1).expand(-1, llm_grid_h * llm_grid_w).flatten()
        h_index = torch.arange(llm_grid_h).view(1, -1, 1).expand(llm_grid_t, -1, llm_grid_w).flatten()
        w_index = torch.arange(llm_grid_w).view(1, 1, -1).expand(llm_grid_t, llm_grid_h, -1).flatten()
        llm_pos_ids_list.append(torch.stack([t_index, h_index, w_index]) + text_len + st_idx)
        st = ed + llm_grid_t * llm_grid_h * llm_grid_w
    if st < len(input_tokens):
        st_idx = llm_pos_ids_list[-1].max() + 1 if len(llm_pos_ids_list) > 0 else 0
        text_len = len(input_tokens) - st
        llm_pos_ids_list.append(torch.arange(text_len).view(1, -1).expand(3, -1) + st_idx)
    llm_positions = torch.cat(llm_pos_ids_list, dim=1).reshape(3, -1)
    return llm_positions, int(llm_positions.max()) + 1 - len(input_ids)


# ---------------------------------------------------------------- run

def write(path, t, dtype):
    np.asarray(t.detach().numpy() if isinstance(t, torch.Tensor) else t).astype(dtype).tofile(path)


def run(mdir, io):
    with open(os.path.join(mdir, "config.json")) as f:
        cfg = json.load(f)
    variant = {"qwen2_vl": "qwen2vl", "qwen2_5_vl": "qwen25vl"}[cfg["model_type"]]
    v25 = variant == "qwen25vl"
    with open(os.path.join(io, "in.json")) as f:
        inp = json.load(f)
    W = llama_ref.load_safetensors(os.path.join(mdir, "model.safetensors"))
    vc = cfg["vision_config"]
    P, T = vc["patch_size"], vc["temporal_patch_size"]
    items = inp["items"]
    grids = [tuple(it["grid"]) for it in items]
    pix = np.fromfile(os.path.join(io, "pixels.f32"), dtype="<f4").astype(np.float64)
    pix = torch.from_numpy(pix).view(-1, 3 * T * P * P)
    with torch.no_grad():
        vis = vision_forward(variant, vc, W, pix, grids)
    write(os.path.join(io, "embed.f32"), vis["embed"], "<f4")
    write(os.path.join(io, "rotpos.i32"), vis["rotpos"], "<i4")
    write(os.path.join(io, "blocks.f32"), vis["blocks"], "<f4")
    write(os.path.join(io, "merged.f32"), vis["merged"], "<f4")
    if v25:
        write(os.path.join(io, "winidx.i32"), vis["winidx"], "<i4")
        write(os.path.join(io, "cuwin.i32"), vis["cuwin"], "<i4")
    tokens = inp.get("tokens") or []
    if not tokens:
        return 0
    image_grids = [g for g, it in zip(grids, items) if it["kind"] == "image"]
    video_grids = [g for g, it in zip(grids, items) if it["kind"] == "video"]
    # the processor hands second_per_grid_ts over as a float32 tensor
    spg = torch.tensor([it.get("second_per_grid", 1.0) for it in items if it["kind"] == "video"], dtype=torch.float32)
    pos, delta = get_rope_index(cfg, tokens, image_grids, video_grids, spg if v25 else None, v25)
    write(os.path.join(io, "pos.i32"), pos, "<i4")
    with open(os.path.join(io, "delta.txt"), "w") as f:
        f.write(f"{delta}\n")
    # the decoder: vision rows scattered over the pad tokens (masked_scatter in order, images and videos
    # each replacing their own pad token), as extra rows of the embedding table
    V = cfg["vocab_size"]
    merged = vis["merged"]
    n_per = [t * h * w // vc["spatial_merge_size"] ** 2 for t, h, w in grids]
    rows = torch.split(merged, n_per)
    img_rows = [r for r, it in zip(rows, items) if it["kind"] == "image"]
    vid_rows = [r for r, it in zip(rows, items) if it["kind"] == "video"]
    img_rows = torch.cat(img_rows) if img_rows else torch.zeros(0, merged.shape[1], dtype=DT)
    vid_rows = torch.cat(vid_rows) if vid_rows else torch.zeros(0, merged.shape[1], dtype=DT)
    ids, ni, nv = [], 0, 0
    for t in tokens:
        if t == cfg["image_token_id"]:
            ids.append(V + ni)
            ni += 1
        elif t == cfg["video_token_id"]:
            ids.append(V + img_rows.shape[0] + nv)
            nv += 1
        else:
            ids.append(t)
    if ni != img_rows.shape[0] or nv != vid_rows.shape[0]:
        raise SystemExit(f"pad tokens ({ni} image, {nv} video) do not match the vision rows "
                         f"({img_rows.shape[0]}, {vid_rows.shape[0]})")
    W2 = dict(W)
    W2["model.embed_tokens.weight"] = torch.cat([W["model.embed_tokens.weight"], img_rows, vid_rows])
    if cfg.get("tie_word_embeddings", False):
        W2["lm_head.weight"] = W["model.embed_tokens.weight"]
        cfg = dict(cfg, tie_word_embeddings=False)
    pos3 = [list(map(int, pos[s])) for s in range(3)]
    K = inp.get("logit_rows", 1)
    with torch.no_grad():
        logits = llama_ref.forward(cfg, W2, ids, pos3)
        write(os.path.join(io, "logits.f32"), logits[-K:], "<f4")
        seq, greedy, top = list(ids), [], []
        for _ in range(inp.get("n_greedy", 0)):
            last = llama_ref.forward(cfg, W2, seq, pos3)[-1]
            top.append(torch.topk(torch.log_softmax(last, dim=-1), 5).values)
            nxt = int(torch.argmax(last))
            greedy.append(nxt)
            seq.append(nxt)
            nxp = len(seq) - 1 + delta  # cache_position + rope_deltas, as generate() continues
            pos3 = [s + [nxp] for s in pos3]
    if top:
        write(os.path.join(io, "greedy_top5.f32"), torch.stack(top), "<f4")
    with open(os.path.join(io, "greedy.txt"), "w") as f:
        f.write(" ".join(str(t) for t in greedy) + "\n")
    return 0


def main():
    a = sys.argv[1:]
    if len(a) >= 4 and a[0] == "make":
        make(a[1], a[2], int(a[3]), len(a) > 4 and a[4] == "bf16")
        return 0
    if len(a) == 3 and a[0] == "run":
        return run(a[1], a[2])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
