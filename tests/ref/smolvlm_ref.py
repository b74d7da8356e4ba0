#!/usr/bin/python3
"""smolvlm_ref.py — independent PyTorch reference for SmolVLM / Idefics3 captioning (tests/caption).

Written from the published transformers code:
  - image_processing_idefics3.py (Idefics3ImageProcessor, slow/PIL path; tests/ref/pil_image_ref.py
    holds that code), with do_image_splitting=False squaring the resized image to max_image_size as
    newer transformers do;
  - processing_idefics3.py (Idefics3Processor): each <image> of the prompt becomes
    <fake_token_around_image><row_r_col_c><image>*image_seq_len ... "\\n" per row, then
    "\\n<fake_token_around_image><global-img>" <image>*image_seq_len "<fake_token_around_image>"
    (or only the global part for an image that was not split);
  - modeling_idefics3.py: Idefics3VisionEmbeddings (conv patch embedding, bucketized position ids),
    Idefics3EncoderLayer (pre-LN, eager attention, gelu_pytorch_tanh MLP), post_layernorm,
    Idefics3Connector.pixel_shuffle + Idefics3SimpleMLP, Idefics3Model.inputs_merger;
  - the Llama decoder of tests/ref/llama_ref.py (modeling_llama.py) over the merged embeddings.
Tokenization is done here too: byte-level BPE over tokenizer.json (added tokens split first, then
SmolLM2's pre-tokenizer: single digits, then the GPT-2 regex), written for ASCII prompts.
The chat template is SmolVLM's rendered for one user turn [image, text] with add_generation_prompt:
"<|im_start|>User:<image>TEXT<end_of_utterance>\\nAssistant:".
Computed in float64.

usage: smolvlm_ref.py MODEL_DIR OUT_PREFIX N_GREEDY PROMPT [--no-split] IMG [IMG ...]
  MODEL_DIR: config.json, model.safetensors (F32/F16/BF16), preprocessor_config.json,
  processor_config.json, tokenizer.json. For image i (0-based) it writes OUT_PREFIX.i.<what>:
    plan       "rows cols n_tiles tile_h tile_w" (text)
    pixels     float32 [n_tiles][3][h][w]
    features   float32 [n_tiles][patches][D]            vision model output (after post_layernorm)
    connector  float32 [n_tiles][image_seq_len][D_text]
    prompt     the expanded prompt text (UTF-8)
    ids        int32 token ids of the prompt
    logits     float32 [T][vocab] at every prompt position
    greedy     N_GREEDY greedy continuation ids (text)
"""
import json
import math
import os
import re
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llama_ref  # noqa: E402
import pil_image_ref  # noqa: E402

DT = torch.float64


# ---------------------------------------------------------------- preprocessing


def preprocess(path, pcfg, split):
    """(pixel values [n][3][h][w] float32, rows, cols)"""
    a = np.array(pil_image_ref.load_rgb(path))
    if split:
        return pil_image_ref.idefics3(a, dict(pcfg, do_image_splitting=True))
    # resize the longest edge, then square to max_image_size (transformers >= 4.49 for no splitting)
    tile = pcfg["max_image_size"]["longest_edge"]
    resample = pcfg.get("resample", 1)
    im = Image.fromarray(a, "RGB")
    if pcfg.get("do_resize", True):
        h, w = pil_image_ref._rescale_to_max_len(a.shape[0], a.shape[1], pcfg["size"]["longest_edge"])
        h, w = pil_image_ref._scale_below_upper_bound(h, w, pil_image_ref.MAX_IMAGE_SIZE)
        im = im.resize((w, h), resample=resample)
    im = im.resize((tile, tile), resample=resample)
    x = (np.asarray(im).astype(np.float64) * pcfg.get("rescale_factor", 1 / 255)).astype(np.float32)
    mean = np.array(pcfg.get("image_mean", [0.5] * 3), dtype=np.float32)
    std = np.array(pcfg.get("image_std", [0.5] * 3), dtype=np.float32)
    x = (x - mean) / std
    return x.transpose(2, 0, 1)[np.newaxis], 0, 0


# ---------------------------------------------------------------- prompt


def image_prompt(rows, cols, seq_len):
    fake, img, glob = "<fake_token_around_image>", "<image>", "<global-img>"
    if rows == 0 and cols == 0:
        return fake + glob + img * seq_len + fake
    s = ""
    for r in range(rows):
        for c in range(cols):
            s += fake + "<row_%d_col_%d>" % (r + 1, c + 1) + img * seq_len
        s += "\n"
    return s + "\n" + fake + glob + img * seq_len + fake


def expand(text, rows, cols, seq_len):
    parts = text.split("<image>")
    assert len(parts) == 2, "one image per prompt"
    return parts[0] + image_prompt(rows, cols, seq_len) + parts[1]


class Tokenizer:
    def __init__(self, path):
        t = json.load(open(path, encoding="utf-8"))
        m = t["model"]
        assert m["type"] == "BPE" and not m.get("byte_fallback")
        self.vocab = m["vocab"]
        merges = [tuple(x.split(" ", 1)) if isinstance(x, str) else tuple(x) for x in m["merges"]]
        self.rank = {p: i for i, p in enumerate(merges)}
        self.added = {a["content"]: a["id"] for a in t["added_tokens"]}
        # GPT-2 bytes_to_unicode
        bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
        cs = bs[:]
        n = 0
        for b in range(256):
            if b not in bs:
                bs.append(b)
                cs.append(256 + n)
                n += 1
        self.b2u = {b: chr(c) for b, c in zip(bs, cs)}
        alt = "|".join(re.escape(a) for a in sorted(self.added, key=len, reverse=True))
        self.split_re = re.compile("(" + alt + ")")
        # GPT-2 pattern for ASCII text: \p{L} = letters, \p{N} = digits
        self.pre_re = re.compile(r"'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+(?!\S)|\s+")

    def bpe(self, word):
        sym = list(word)
        while len(sym) > 1:
            best, bi = None, -1
            for i in range(len(sym) - 1):
                r = self.rank.get((sym[i], sym[i + 1]))
                if r is not None and (best is None or r < best):
                    best, bi = r, i
            if best is None:
                break
            sym = sym[:bi] + [sym[bi] + sym[bi + 1]] + sym[bi + 2:]
        return [self.vocab[s] for s in sym]

    def encode(self, text):
        assert all(ord(ch) < 128 for ch in text), "the reference tokenizer handles ASCII text"
        ids = []
        for piece in self.split_re.split(text):
            if not piece:
                continue
            if piece in self.added:
                ids.append(self.added[piece])
                continue
            # Digits(individual_digits=True): every digit is its own piece
            for chunk in re.split(r"([0-9])", piece):
                for w in self.pre_re.findall(chunk):
                    ids += self.bpe("".join(self.b2u[b] for b in w.encode("utf-8")))
        return ids


# ---------------------------------------------------------------- vision model


def position_ids(nps, nh, nw):
    """Idefics3VisionEmbeddings for a tile whose patches are all real."""
    boundaries = torch.arange(1 / nps, 1.0, 1 / nps)
    fh = torch.arange(0, 1 - 1e-6, 1 / torch.tensor(nh))
    fw = torch.arange(0, 1 - 1e-6, 1 / torch.tensor(nw))
    bh = torch.bucketize(fh, boundaries, right=True)
    bw = torch.bucketize(fw, boundaries, right=True)
    return (bh[:, None] * nps + bw).flatten()


def vision(vc, W, pix):
    pre = "model.vision_model."
    P, D, H = vc["patch_size"], vc["hidden_size"], vc["num_attention_heads"]
    hd = D // H
    eps = vc.get("layer_norm_eps", 1e-6)
    n, _, h, w = pix.shape
    x = F.conv2d(pix, W[pre + "embeddings.patch_embedding.weight"], W[pre + "embeddings.patch_embedding.bias"], stride=P)
    x = x.flatten(2).transpose(1, 2)
    pos = position_ids(vc["image_size"] // P, h // P, w // P)
    x = x + W[pre + "embeddings.position_embedding.weight"][pos]
    T = x.shape[1]

    def lin(t, name):
        return t @ W[name + ".weight"].T + W[name + ".bias"]

    for l in range(vc["num_hidden_layers"]):
        p = pre + "encoder.layers.%d." % l
        r = x
        y = F.layer_norm(x, (D,), W[p + "layer_norm1.weight"], W[p + "layer_norm1.bias"], eps)
        q = lin(y, p + "self_attn.q_proj").view(n, T, H, hd).transpose(1, 2)
        k = lin(y, p + "self_attn.k_proj").view(n, T, H, hd).transpose(1, 2)
        v = lin(y, p + "self_attn.v_proj").view(n, T, H, hd).transpose(1, 2)
        a = torch.softmax((q @ k.transpose(2, 3)) * hd ** -0.5, dim=-1) @ v
        a = a.transpose(1, 2).reshape(n, T, D)
        x = r + lin(a, p + "self_attn.out_proj")
        r = x
        y = F.layer_norm(x, (D,), W[p + "layer_norm2.weight"], W[p + "layer_norm2.bias"], eps)
        y = lin(y, p + "mlp.fc1")
        act = vc.get("hidden_act", "gelu_pytorch_tanh")
        y = F.gelu(y, approximate="tanh") if act == "gelu_pytorch_tanh" else F.gelu(y)
        x = r + lin(y, p + "mlp.fc2")
    return F.layer_norm(x, (D,), W[pre + "post_layernorm.weight"], W[pre + "post_layernorm.bias"], eps)


def pixel_shuffle(x, scale_factor):
    bsz, seq, embed_dim = x.size()
    height = width = int(seq ** 0.5)
    x = x.view(bsz, height, width, embed_dim)
    x = x.view(bsz, height, int(width / scale_factor), embed_dim * scale_factor)
    x = x.permute(0, 2, 1, 3)
    x = x.reshape(bsz, int(width / scale_factor), int(height / scale_factor), embed_dim * (scale_factor ** 2))
    x = x.permute(0, 2, 1, 3)
    return x.reshape(bsz, int(seq / (scale_factor ** 2)), embed_dim * (scale_factor ** 2))


def connector(cfg, W, feats):
    return pixel_shuffle(feats, cfg["scale_factor"]) @ W["model.connector.modality_projection.proj.weight"].T


# ---------------------------------------------------------------- decoder


class MergedEmbeddings:
    """Stands in for the embedding table in llama_ref.forward: the token embeddings with the rows of the
    image token in the prompt replaced, in order, by the connector output (Idefics3Model.inputs_merger;
    generated tokens are embedded as tokens, as generate() does after the first step)."""

    def __init__(self, table, image_token_id, image_rows, n_prompt):
        self.table, self.image_token_id, self.image_rows, self.n_prompt = table, image_token_id, image_rows, n_prompt

    def __getitem__(self, ids):
        e = self.table[ids].clone()
        mask = ids == self.image_token_id
        mask[self.n_prompt:] = False
        assert int(mask.sum()) == self.image_rows.shape[0], "image tokens != image rows"
        e[mask] = self.image_rows
        return e


def main():
    args = sys.argv[1:]
    if len(args) < 5:
        print(__doc__, file=sys.stderr)
        return 2
    mdir, out, n_greedy, prompt_text = args[0], args[1], int(args[2]), args[3]
    rest = args[4:]
    split = True
    if rest and rest[0] == "--no-split":
        split, rest = False, rest[1:]
    cfg = json.load(open(mdir + "/config.json"))
    pcfg = json.load(open(mdir + "/preprocessor_config.json"))
    seq_len = json.load(open(mdir + "/processor_config.json"))["image_seq_len"]
    tc, vc = cfg["text_config"], cfg["vision_config"]
    Wall = llama_ref.load_safetensors(mdir + "/model.safetensors")
    # the decoder's tensors under llama_ref's names
    W = {("model." + k[len("model.text_model."):]) if k.startswith("model.text_model.") else k: v for k, v in Wall.items()}
    tok = Tokenizer(mdir + "/tokenizer.json")
    image_token_id = cfg["image_token_id"]
    chat = "<|im_start|>User:<image>" + prompt_text + "<end_of_utterance>\nAssistant:"
    tcfg = dict(tc, tie_word_embeddings=cfg.get("tie_word_embeddings", tc.get("tie_word_embeddings", False)))
    with torch.no_grad():
        for i, path in enumerate(rest):
            pre = "%s.%d." % (out, i)
            pv, rows, cols = preprocess(path, pcfg, split)
            pv = np.ascontiguousarray(pv, dtype=np.float32)
            with open(pre + "plan", "w") as f:
                f.write("%d %d %d %d %d\n" % (rows, cols, pv.shape[0], pv.shape[2], pv.shape[3]))
            pv.tofile(pre + "pixels")
            feats = vision(vc, Wall, torch.from_numpy(pv).to(DT))
            feats.to(torch.float32).numpy().tofile(pre + "features")
            emb = connector(cfg, Wall, feats)
            emb.to(torch.float32).numpy().tofile(pre + "connector")
            text = expand(chat, rows, cols, seq_len)
            with open(pre + "prompt", "w", encoding="utf-8") as f:
                f.write(text)
            ids = tok.encode(text)
            np.array(ids, dtype="<i4").tofile(pre + "ids")
            W["model.embed_tokens.weight"] = MergedEmbeddings(Wall["model.text_model.embed_tokens.weight"],
                                                              image_token_id, emb.reshape(-1, emb.shape[-1]), len(ids))
            logits = llama_ref.forward(tcfg, W, ids)
            logits.to(torch.float32).numpy().astype("<f4").tofile(pre + "logits")
            seq, greedy = list(ids), []
            for _ in range(n_greedy):
                nxt = int(torch.argmax(llama_ref.forward(tcfg, W, seq)[-1]))
                greedy.append(nxt)
                seq.append(nxt)
            with open(pre + "greedy", "w") as f:
                f.write(" ".join(str(t) for t in greedy) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
