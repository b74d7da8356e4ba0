#!/usr/bin/env python3
"""make_seeds.py OUT FIXTURES — seed corpora for the libFuzzer harnesses (scripts/fuzz.sh).

Small valid files in each format (written here from the published layouts) plus pieces of the real
fixtures: the first 64 KiB of every vocab GGUF (a valid prefix of real metadata), the real HF JSON
configs, the whisper.cpp/Silero ggml files, the head of the llama2.c checkpoint."""
import glob
import json
import os
import struct
import sys

out, fx = sys.argv[1], sys.argv[2]


def put(sub, name, data):
    d = os.path.join(out, sub)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def gstr(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def gguf(kvs, tensors, align=32, version=3):
    """kvs: list of (key, type, payload bytes); tensors: list of (name, dims, ggml type, data bytes)."""
    h = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kvs))
    for k, t, p in kvs:
        h += gstr(k) + struct.pack("<I", t) + p
    off = 0
    datas = b""
    for name, dims, t, data in tensors:
        h += gstr(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        h += struct.pack("<IQ", t, off)
        pad = (-len(data)) % align
        datas += data + b"\0" * pad
        off += len(data) + pad
    h += b"\0" * ((-len(h)) % align)
    return h + datas


kv = [
    ("general.architecture", 8, gstr("llama")),
    ("llama.block_count", 4, struct.pack("<I", 2)),
    ("llama.attention.layer_norm_rms_epsilon", 6, struct.pack("<f", 1e-5)),
    ("tokenizer.ggml.add_bos_token", 7, b"\1"),
    ("tokenizer.ggml.tokens", 9, struct.pack("<IQ", 8, 3) + gstr("<s>") + gstr("a") + gstr("\u2581b")),
    ("tokenizer.ggml.scores", 9, struct.pack("<IQ", 6, 3) + struct.pack("<3f", 0, -1, -2)),
    ("nested", 9, struct.pack("<IQ", 9, 2) + struct.pack("<IQ", 5, 2) + struct.pack("<2i", 1, -1)
     + struct.pack("<IQ", 8, 1) + gstr("x")),
    ("u64", 10, struct.pack("<Q", 1 << 40)),
    ("f64", 12, struct.pack("<d", 0.5)),
]
t = [
    ("token_embd.weight", [4, 3], 0, struct.pack("<12f", *range(12))),
    ("blk.0.attn_q.weight", [32, 2], 8, (b"\x00\x3c" + bytes(range(32))) * 2),  # q8_0
    ("blk.0.ffn_up.weight", [256], 12, bytes(144)),                              # q4_K
    ("norm", [2, 1, 1, 2], 1, b"\x00\x3c" * 4),                                  # f16
]
put("gguf", "small_v3.gguf", gguf(kv, t))
put("gguf", "small_v2_align64.gguf", gguf(kv + [("general.alignment", 4, struct.pack("<I", 64))], t, 64, 2))
put("gguf", "kv_only.gguf", gguf(kv, []))
for g in sorted(glob.glob(os.path.join(fx, "gguf", "*.gguf"))):
    with open(g, "rb") as f:
        put("gguf", os.path.basename(g) + ".head", f.read(65536))


def safetensors(entries, meta=None, pad8=True):
    hdr, data = {}, b""
    for name, dt, shape, blob in entries:
        hdr[name] = {"dtype": dt, "shape": shape, "data_offsets": [len(data), len(data) + len(blob)]}
        data += blob
    if meta:
        hdr["__metadata__"] = meta
    h = json.dumps(hdr).encode()
    if pad8:
        h += b" " * ((-(8 + len(h))) % 8)
    return struct.pack("<Q", len(h)) + h + data


ents = [
    ("model.embed_tokens.weight", "BF16", [3, 2], bytes(12)),
    ("lm_head.weight", "F16", [3, 2], bytes(12)),
    ("a.lora_A.weight", "F32", [2, 4], struct.pack("<8f", *range(8))),
    ("ids", "I64", [2], struct.pack("<2q", 1, 2)),
    ("mask", "BOOL", [4], b"\1\0\1\0"),
    ("conv", "F32", [1, 1, 2, 1, 1], bytes(8)),
    ("s", "F32", [], bytes(4)),
]
put("safetensors", "small.safetensors", safetensors(ents, {"format": "pt"}))
put("safetensors", "unpadded.safetensors", safetensors(ents[:3], None, False))
put("safetensors", "empty.safetensors", safetensors([]))
for st in sorted(glob.glob(os.path.join(fx, "hf", "*", "*.safetensors"))):
    with open(st, "rb") as f:
        b = f.read()
    n = struct.unpack("<Q", b[:8])[0]
    hdr = json.loads(b[8:8 + n])
    keep = {k: v for k, v in list(hdr.items())[:6]}  # a few real entries, data cut to what they need
    end = max((v["data_offsets"][1] for k, v in keep.items() if k != "__metadata__"), default=0)
    for k, v in keep.items():
        if k != "__metadata__" and v["data_offsets"][1] > end:
            end = v["data_offsets"][1]
    ok = all(k == "__metadata__" or v["data_offsets"][1] <= 65536 for k, v in keep.items())
    if ok:
        h = json.dumps(keep).encode()
        put("safetensors", os.path.basename(os.path.dirname(st)) + ".head.safetensors",
            struct.pack("<Q", len(h)) + h + b[8 + n:8 + n + end])

for j in sorted(glob.glob(os.path.join(fx, "hf", "*", "*.json"))):
    if os.path.getsize(j) <= 256 * 1024:
        with open(j, "rb") as f:
            put("hfjson", os.path.basename(os.path.dirname(j)) + "--" + os.path.basename(j), f.read())

for b in sorted(glob.glob(os.path.join(fx, "whisper", "*.bin"))):
    with open(b, "rb") as f:
        put("ggml_bin", os.path.basename(b), f.read())

p = os.path.join(fx, "llm", "stories260K.bin")
if os.path.exists(p):
    with open(p, "rb") as f:
        put("llama2c", "stories260K.bin", f.read())
dim, hid, L, nh, nkv, V, seq = 8, 12, 1, 2, 1, 4, 2
head, kv_dim = dim // nh, dim // nh * nkv
n = V * dim + 2 * L * dim + 2 * L * dim * dim + 2 * L * dim * kv_dim + 3 * L * dim * hid + dim
put("llama2c", "tiny_v0.bin", struct.pack("<7i", dim, hid, L, nh, nkv, V, seq) + bytes(4 * (n + seq * head)))
v1 = struct.pack("<Ii7iB", 0x616B3432, 1, dim, hid, L, nh, nkv, V, seq, 1)
put("llama2c", "tiny_v1.bin", v1 + bytes(256 - len(v1)) + bytes(4 * n))
