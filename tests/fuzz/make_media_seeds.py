#!/usr/bin/env python3
"""make_media_seeds.py OUT FIXTURES — seed corpora for the media, tokenizer, chat-template and batch
harnesses (fuzz_image, fuzz_imgproc, fuzz_audio, fuzz_video, fuzz_tok_load, fuzz_tokenize, fuzz_jinja,
fuzz_batch), written to OUT/<harness>/ by scripts/fuzz.sh at fuzz time (nothing here is committed).

Everything is made from ../shared/fixtures: the small fixture files as they are, the big ones cut down
(first 64 KiB of media; tokenizers reduced to a few hundred entries with the same pipeline, merges and
special tokens), re-encoded small copies in other formats when the ffmpeg CLI is there (webp, bmp, gif,
tiff, mp3, opus, m4a, mkv, ...) and, with Pillow, JPEG/PNG variants (progressive, CMYK, every EXIF
orientation, palette + tRNS, 16-bit). Run with Debian's /usr/bin/python3 (numpy + Pillow)."""
import glob
import io
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

out, fx = sys.argv[1], sys.argv[2]
CUT = 65536
have_ffmpeg = shutil.which("ffmpeg") is not None
try:
    from PIL import Image
except Exception:  # Pillow is optional: fewer seeds without it
    Image = None


def put(sub, name, data):
    d = os.path.join(out, sub)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def read(path, limit=None):
    with open(path, "rb") as f:
        return f.read(limit) if limit else f.read()


def ffmpeg(args, suffix):
    """Runs ffmpeg with args + an output file; returns its bytes or None."""
    if not have_ffmpeg:
        return None
    with tempfile.TemporaryDirectory() as td:
        o = os.path.join(td, "o" + suffix)
        r = subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y"] + args + [o],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if r.returncode != 0 or not os.path.exists(o):
            return None
        return read(o)


# ------------------------------------------------------------------ images
imgs = sorted(glob.glob(os.path.join(fx, "images", "**", "*.*"), recursive=True))
for p in imgs:
    b = read(p)
    name = os.path.relpath(p, os.path.join(fx, "images")).replace("/", "_")
    put("image", name, b[:CUT])
src = os.path.join(fx, "images", "chelsea.png")
if os.path.exists(src):
    for fmt, args in [(".webp", []), (".bmp", []), (".gif", []), (".tiff", []), (".png", ["-pix_fmt", "rgba"]),
                      (".png", ["-pix_fmt", "rgb48be"]), (".png", ["-pix_fmt", "gray"]), (".png", ["-pix_fmt", "pal8"]),
                      (".jpg", ["-pix_fmt", "yuvj444p"]), (".jpg", ["-pix_fmt", "yuvj422p"]),
                      (".jpg", ["-pix_fmt", "gray"]), (".tiff", ["-pix_fmt", "rgba"]), (".webp", ["-pix_fmt", "yuva420p"]),
                      (".pgm", []), (".ppm", []), (".tga", []), (".jp2", []), (".sgi", []), (".pcx", [])]:
        b = ffmpeg(["-i", src, "-vf", "scale=40:27"] + args + ["-frames:v", "1"], fmt)
        if b:
            put("image", "ff_%s_%s%s" % (fmt[1:], "_".join(a.replace("-", "") for a in args) or "def", fmt), b)
if Image is not None and os.path.exists(src):
    base = Image.open(src).convert("RGB").resize((37, 23))
    for o in range(1, 9):
        ex = Image.Exif()
        ex[0x0112] = o
        bio = io.BytesIO()
        base.save(bio, "JPEG", quality=70, exif=ex.tobytes())
        put("image", "exif_o%d.jpg" % o, bio.getvalue())
        bio = io.BytesIO()
        base.save(bio, "PNG", exif=ex.tobytes())
        put("image", "exif_o%d.png" % o, bio.getvalue())
    for name, im, kw in [("prog.jpg", base, {"progressive": True, "quality": 60}),
                         ("cmyk.jpg", base.convert("CMYK"), {"quality": 60}),
                         ("gray.jpg", base.convert("L"), {}),
                         ("sub420.jpg", base, {"subsampling": 2}),
                         ("q1.jpg", base, {"quality": 1}),
                         ("opt.jpg", base, {"optimize": True})]:
        bio = io.BytesIO()
        im.save(bio, "JPEG", **kw)
        put("image", name, bio.getvalue())
    pal = base.convert("P", palette=Image.ADAPTIVE, colors=16)
    bio = io.BytesIO()
    pal.save(bio, "PNG", transparency=3)
    put("image", "pal_trns.png", bio.getvalue())
    for mode in ["1", "LA", "RGBA", "I;16", "I"]:
        bio = io.BytesIO()
        try:
            base.convert(mode if mode != "I;16" else "I").save(bio, "PNG") if mode != "I;16" else \
                base.convert("I").point(lambda v: v * 256).convert("I;16").save(bio, "PNG")
            put("image", "mode_%s.png" % mode.replace(";", ""), bio.getvalue())
        except Exception:
            pass
# EXIF edge cases as raw TIFF blocks (mp_exif_orientation is also fed the raw input)
for be in (0, 1):
    e = "MM" if be else "II"
    f = ">" if be else "<"
    ifd = struct.pack(f + "H", 2) + struct.pack(f + "HHII", 0x010F, 2, 4, 0) + struct.pack(f + "HHIHH", 0x0112, 3, 1, 6, 0)
    put("image", "exif_raw_%s.bin" % e, b"Exif\0\0" + e.encode() + struct.pack(f + "HI", 42, 8) + ifd + b"\0\0\0\0")

# ------------------------------------------------------------------ image processor configs
for cfg in sorted(glob.glob(os.path.join(fx, "hf", "*", "preprocessor_config.json"))):
    j = read(cfg)
    tag = os.path.basename(os.path.dirname(cfg)).split("--")[-1]
    for w, h, fr, flt in [(451, 300, 1, 1), (1, 1000, 2, 3), (640, 427, 3, 0), (3, 2, 5, 4), (65535, 1, 8, 2),
                          (28, 28, 1, 5)]:
        put("imgproc", "%s_%dx%d_%d_%d.json" % (tag, w, h, fr, flt), struct.pack("<HHBB", w, h, fr, flt) + j)
put("imgproc", "edge.json", struct.pack("<HHBB", 100, 50, 1, 1) +
    b'{"size": {"longest_edge": 64, "shortest_edge": 1}, "max_image_size": {"longest_edge": 16}, '
    b'"patch_size": 2, "merge_size": 1, "temporal_patch_size": 1, "min_pixels": 4, "max_pixels": 4096, '
    b'"resample": 2, "image_mean": 0.5, "image_std": [1, 2, 3], "do_rescale": false, "do_normalize": true}')

# ------------------------------------------------------------------ audio
for p in sorted(glob.glob(os.path.join(fx, "audio*", "*.*"))):
    put("audio", os.path.basename(p), read(p, CUT))
jfk = os.path.join(fx, "audio", "jfk.wav")
if os.path.exists(jfk):
    for fmt, args in [(".wav", ["-ar", "16000", "-ac", "1"]), (".wav", ["-ar", "8000", "-c:a", "pcm_u8"]),
                      (".wav", ["-ar", "44100", "-ac", "2", "-c:a", "pcm_f32le"]),
                      (".wav", ["-ar", "16000", "-c:a", "pcm_s24le"]), (".wav", ["-c:a", "pcm_mulaw", "-ar", "8000"]),
                      (".wav", ["-c:a", "adpcm_ms"]), (".flac", ["-ac", "2"]), (".ogg", ["-c:a", "libvorbis"]),
                      (".opus", ["-c:a", "libopus", "-b:a", "16k"]), (".mp3", ["-b:a", "32k"]), (".m4a", ["-c:a", "aac"]),
                      (".aiff", []), (".au", []), (".caf", []), (".w64", []), (".mka", ["-c:a", "pcm_s16le"]),
                      (".ac3", []), (".wv", []), (".mp4", ["-c:a", "aac", "-ac", "6"]), (".ogg", ["-c:a", "flac"]),
                      (".voc", []), (".sph", [])]:
        b = ffmpeg(["-t", "0.4", "-i", jfk] + args, fmt)
        if b:
            put("audio", "ff_%s_%s%s" % (fmt[1:], "_".join(a.replace("-", "").replace(":", "") for a in args) or "def", fmt),
                b[:CUT])

# ------------------------------------------------------------------ video
for p in sorted(glob.glob(os.path.join(fx, "video", "*.*"))):
    put("video", os.path.basename(p), read(p, CUT))
for fmt, args in [(".mp4", ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-movflags", "+faststart"]),
                  (".mp4", ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-metadata:s:v:0", "rotate=90"]),
                  (".mkv", ["-c:v", "mpeg4"]), (".webm", ["-c:v", "libvpx"]), (".webm", ["-c:v", "libvpx-vp9"]),
                  (".avi", ["-c:v", "mjpeg"]), (".gif", []), (".mov", ["-c:v", "png"]), (".flv", []), (".ogv", []),
                  (".ts", ["-c:v", "mpeg2video"]), (".mkv", ["-c:v", "ffv1"]), (".y4m", []),
                  (".mp4", ["-c:v", "libx264", "-bf", "2", "-g", "3"]), (".apng", ["-f", "apng"])]:
    b = ffmpeg(["-f", "lavfi", "-i", "testsrc2=size=48x32:rate=5:duration=1.2", "-f", "lavfi", "-i",
                "sine=frequency=440:duration=1.2"] + args + ["-shortest"], fmt)
    if b is None:
        b = ffmpeg(["-f", "lavfi", "-i", "testsrc2=size=48x32:rate=5:duration=1.2"] + args, fmt)
    if b:
        put("video", "ff_%s_%s%s" % (fmt[1:], "_".join(a.replace("-", "").replace(":", "").replace("+", "")
                                                        .replace("=", "") for a in args) or "def", fmt), b[:CUT])
b = ffmpeg(["-f", "lavfi", "-i", "sine=frequency=440:duration=0.5", "-c:a", "aac"], ".m4a")
if b:
    put("video", "audio_only.m4a", b)


# ------------------------------------------------------------------ GGUF reading/writing (vocab seeds)
def gguf_read(b):
    """kvs of a GGUF as [(key, type, value)] (arrays as (elem_type, [values]))."""
    o = [0]

    def rd(fmt):
        v = struct.unpack_from("<" + fmt, b, o[0])
        o[0] += struct.calcsize("<" + fmt)
        return v[0]

    def rstr():
        n = rd("Q")
        s = b[o[0]:o[0] + n]
        o[0] += n
        return s

    sc = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}

    def val(t):
        if t == 8:
            return rstr()
        if t == 9:
            et, n = rd("I"), rd("Q")
            return (et, [val(et) for _ in range(n)])
        return rd(sc[t])

    assert b[:4] == b"GGUF"
    o[0] = 4
    rd("I")
    nt, nkv = rd("Q"), rd("Q")
    kvs = []
    for _ in range(nkv):
        k = rstr().decode()
        t = rd("I")
        kvs.append((k, t, val(t)))
    return kvs


def gguf_write(kvs):
    sc = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}

    def enc(t, v):
        if t == 8:
            return struct.pack("<Q", len(v)) + v
        if t == 9:
            et, items = v
            return struct.pack("<IQ", et, len(items)) + b"".join(enc(et, x) for x in items)
        return struct.pack("<" + sc[t], v)

    h = b"GGUF" + struct.pack("<IQQ", 3, 0, len(kvs))
    for k, t, v in kvs:
        kb = k.encode()
        h += struct.pack("<Q", len(kb)) + kb + struct.pack("<I", t) + enc(t, v)
    return h + b"\0" * ((-len(h)) % 32)


def shrink_vocab_kvs(kvs, keep):
    d = {k: (t, v) for k, t, v in kvs}
    toks = d.get("tokenizer.ggml.tokens")
    if not toks:
        return kvs
    n = len(toks[1][1])
    ids = list(range(min(keep, n)))
    for k in ("tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.unknown_token_id",
              "tokenizer.ggml.padding_token_id", "tokenizer.ggml.seperator_token_id", "tokenizer.ggml.eot_token_id"):
        if k in d and isinstance(d[k][1], int) and d[k][1] < n and d[k][1] not in ids:
            ids.append(d[k][1])
    types = d.get("tokenizer.ggml.token_type")
    if types:  # keep the special tokens too (they are what the special-token matcher works on)
        ids += [i for i, ty in enumerate(types[1][1]) if ty in (3, 4) and i not in ids][:64]
    ids = sorted(set(ids))
    remap = {old: new for new, old in enumerate(ids)}
    kept = set(toks[1][1][i] for i in ids)
    res = []
    for k, t, v in kvs:
        if k in ("tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type"):
            v = (v[0], [v[1][i] for i in ids])
        elif k == "tokenizer.ggml.merges":
            m = []
            for s in v[1]:
                a, _, c = s.partition(b" ")
                if a in kept and c in kept and a + c in kept:
                    m.append(s)
            v = (v[0], m)
        elif k.startswith("tokenizer.ggml.") and k.endswith("_id") and isinstance(v, int):
            v = remap.get(v, 0)
        res.append((k, t, v))
    return res


# ------------------------------------------------------------------ tokenizer loaders
def shrink_tokenizer_json(j, keep=400):
    m = j.get("model", {})
    voc = m.get("vocab")
    if isinstance(voc, dict):
        items = sorted(voc.items(), key=lambda kv: kv[1])[:keep]
        m["vocab"] = dict(items)
        kept = set(m["vocab"])
        if "merges" in m:
            mm = []
            for x in m["merges"]:
                a, b = (x.split(" ", 1) + [""])[:2] if isinstance(x, str) else (x + ["", ""])[:2]
                if a in kept and b in kept and a + b in kept:
                    mm.append(x)
            m["merges"] = mm
    if isinstance(j.get("added_tokens"), list):
        j["added_tokens"] = j["added_tokens"][:40]
    return j


tjs = sorted(glob.glob(os.path.join(fx, "hf", "*", "tokenizer.json")))
small_tj = []
for p in tjs:
    tag = os.path.basename(os.path.dirname(p)).split("--")[-1]
    j = shrink_tokenizer_json(json.loads(read(p)))
    b = json.dumps(j, ensure_ascii=False).encode()
    small_tj.append((tag, b))
    put("tok_load", "hf_%s.json" % tag, b"\0" + b)
    cfgp = os.path.join(os.path.dirname(p), "tokenizer_config.json")
    if os.path.exists(cfgp):
        put("tok_load", "hfcfg_%s.json" % tag, b"\1" + read(cfgp) + b"\0" + b)
wp = {"model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                "vocab": {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "##s",
                                                      "##ing", "un", "##believ", "##able", ",", "!", "the", "a", "\u4e2d",
                                                      "caf", "##e", "1", "##2"])}},
      "normalizer": {"type": "BertNormalizer", "lowercase": True, "strip_accents": None},
      "pre_tokenizer": {"type": "BertPreTokenizer"},
      "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                                                                    {"Sequence": {"id": "A", "type_id": 0}},
                                                                    {"SpecialToken": {"id": "[SEP]", "type_id": 0}}]},
      "added_tokens": [{"id": 0, "content": "[PAD]", "special": True}, {"id": 4, "content": "[MASK]", "special": True,
                                                                        "lstrip": True, "rstrip": False}]}
put("tok_load", "wordpiece.json", b"\0" + json.dumps(wp).encode())
wp2 = dict(wp)
wp2["post_processor"] = {"type": "BertProcessing", "cls": ["[CLS]", 2], "sep": ["[SEP]", 3]}
put("tok_load", "wordpiece_bertproc.json", b"\0" + json.dumps(wp2).encode())
bl = {"model": {"type": "BPE", "byte_fallback": True, "ignore_merges": True,
                "vocab": {"a": 0, "b": 1, "ab": 2, "<0x41>": 3, "\u0120": 4, "\u0120a": 5, "<s>": 6},
                "merges": [["a", "b"], ["\u0120", "a"]]},
      "normalizer": {"type": "Sequence", "normalizers": [{"type": "NFC"}]},
      "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
          {"type": "Split", "pattern": {"Regex": "(?i:'s|'t)|\\p{N}{1,3}|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\s+(?!\\S)|\\s+"},
           "behavior": "Isolated", "invert": False},
          {"type": "Split", "pattern": {"String": "a.b"}, "behavior": "Isolated"},
          {"type": "Digits", "individual_digits": True},
          {"type": "ByteLevel", "add_prefix_space": True, "use_regex": False}]},
      "post_processor": {"type": "Sequence", "processors": [{"type": "ByteLevel"}, {
          "type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>"}}, {"Sequence": {"id": "A"}}]}]},
      "decoder": {"type": "ByteLevel"},
      "added_tokens": [{"id": 6, "content": "<s>", "special": True}, {"id": 7, "content": "<extra>", "special": False,
                                                                      "rstrip": True}]}
put("tok_load", "bpe_features.json", b"\0" + json.dumps(bl).encode())
qdir = os.path.join(fx, "hf", "Qwen--Qwen2-VL-2B-Instruct")
if os.path.exists(os.path.join(qdir, "vocab.json")):
    voc = json.loads(read(os.path.join(qdir, "vocab.json")))
    items = dict(sorted(voc.items(), key=lambda kv: kv[1])[:400])
    kept = set(items)
    merges = []
    for line in read(os.path.join(qdir, "merges.txt")).decode().split("\n"):
        a, _, c = line.partition(" ")
        if line.startswith("#version") or (a in kept and c in kept and a + c in kept):
            merges.append(line)
    cfg = read(os.path.join(qdir, "tokenizer_config.json"))
    put("tok_load", "vocab_merges_qwen2.txt", b"\2" + json.dumps(items, ensure_ascii=False).encode() + b"\0" +
        "\n".join(merges).encode() + b"\0" + cfg)
    put("tok_load", "vocab_merges_nocfg.txt", b"\2" + json.dumps(items, ensure_ascii=False).encode() + b"\0" +
        "\n".join(merges[:50]).encode())
for p, n in [("llm/tok512.bin", None), ("llm/tokenizer.bin", 600)]:
    pp = os.path.join(fx, p)
    if not os.path.exists(pp):
        continue
    b = read(pp)
    if n:  # the first n records (each: f32 score, i32 len, bytes)
        o = 4
        for _ in range(n):
            o += 8 + struct.unpack_from("<i", b, o + 4)[0]
        b = b[:o]
    put("tok_load", "llama2c_" + os.path.basename(p), b"\3" + b)
for g in sorted(glob.glob(os.path.join(fx, "gguf", "*.gguf"))):
    try:
        kvs = gguf_read(read(g))
    except Exception as ex:
        print("make_media_seeds: %s: %s" % (g, ex), file=sys.stderr)
        continue
    small = gguf_write(shrink_vocab_kvs(kvs, 300))
    put("tok_load", os.path.basename(g) + ".small", b"\4" + small)
for p in sorted(glob.glob(os.path.join(fx, "gguf", "templates", "*.jinja"))):
    kvs = [("tokenizer.ggml.model", 8, b"gpt2"), ("tokenizer.ggml.tokens", 9, (8, [b"a", b"b", b"ab"])),
           ("tokenizer.ggml.merges", 9, (8, [b"a b"])), ("tokenizer.chat_template", 8, read(p))]
    put("tok_load", "tmpl_" + os.path.basename(p) + ".gguf", b"\4" + gguf_write(kvs))

# ------------------------------------------------------------------ tokenizer texts
# vocabulary order of fuzz_tokenize.c's load_all (absent fixtures shift the indexes; seeds stay useful)
n_vocabs = 17
texts = []
for p in sorted(glob.glob(os.path.join(fx, "gguf", "*.inp"))):
    texts += [t for t in read(p).split(b"\n__ggml_vocab_test__\n") if t]
tricky = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tokenizer", "tricky_strings.json")
if os.path.exists(tricky):
    try:
        tj = json.loads(read(tricky))
        items = tj if isinstance(tj, list) else list(tj.values())
        for t in items:
            if isinstance(t, str):
                texts.append(t.encode("utf-8", "surrogatepass"))
    except Exception:
        pass
texts += [b"\xff\xfe\xfd invalid \xc0\x80 \xed\xa0\x80 \xf4\x90\x80\x80 trunc \xe2\x82", b" " * 300 + b"x",
          b"\n" * 50, b"<|im_start|>system\n<|im_end|><s></s><unk><image><|endoftext|>[CLS][MASK]",
          "\u0130\u0131\u00df\u1e9e\ufb01 \u0300\u0301a\u0308 \uac00\u1100\u1161 \U0001F468\u200d\U0001F469".encode()]
seen = set()
k = 0
for t in texts:
    t = t[:2000]
    if t in seen:
        continue
    seen.add(t)
    for v in (k % n_vocabs, (k * 7 + 3) % n_vocabs):
        put("tokenize", "t%04d_v%02d" % (k, v), bytes([v, k % 8]) + t)
    k += 1

# ------------------------------------------------------------------ chat templates
tmpls = []
for p in sorted(glob.glob(os.path.join(fx, "gguf", "templates", "*.jinja"))):
    tmpls.append((os.path.basename(p), read(p)))
for p in sorted(glob.glob(os.path.join(fx, "hf", "*", "*.json"))):
    if os.path.basename(p) not in ("tokenizer_config.json", "chat_template.json"):
        continue
    try:
        v = json.loads(read(p)).get("chat_template")
    except Exception:
        continue
    tag = os.path.basename(os.path.dirname(p)).split("--")[-1] + "_" + os.path.basename(p)
    if isinstance(v, str):
        tmpls.append((tag, v.encode()))
    elif isinstance(v, list):
        for i, x in enumerate(v):
            if isinstance(x, dict) and isinstance(x.get("template"), str):
                tmpls.append((tag + str(i), x["template"].encode()))
snips = [
    "{{ s | upper }} {{ s.split(' ') }} {{ s[1:4] }} {{ s[::-1] }} {{ s.replace('l', 'L', 1) }} {{ s.title() }}",
    "{{ n + 1 }} {{ n / 2 }} {{ n // 2 }} {{ n % 2 }} {{ f * 2 }} {{ n ** 2 }} {{ -n }} {{ 1e3 }} {{ big }} {{ neg | abs }}",
    "{% for x in l %}{{ loop.index }}/{{ loop.length }}:{{ x }}{% if not loop.last %}, {% endif %}{% endfor %}",
    "{% for k, v in o.items() %}{{ k }}={{ v }};{% endfor %}{{ o.get('q', 7) }}{{ o | length }}",
    "{{ o | tojson }} {{ o | tojson(indent=2) }} {{ messages | tojson(separators=(',', ':')) }}",
    "{% set ns = namespace(c=0, s='') %}{% for m in messages %}{% set ns.c = ns.c + 1 %}{% set ns.s = ns.s ~ m.role %}"
    "{% endfor %}{{ ns.c }} {{ ns.s }}",
    "{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('Bob') }}{{ greet(punct='?', name=1) }}",
    "{%- for m in messages -%}{%- if m.content is string -%}{{ m.role }}: {{ m.content }}{%- else -%}"
    "{%- for c in m.content -%}{{ '<image>' if c.type == 'image' else c.text }}{%- endfor -%}{%- endif -%}\n{%- endfor -%}"
    "{%- if add_generation_prompt %}assistant:{% endif %}",
    "{{ l | sort(reverse=true) }} {{ l | join('-') }} {{ messages | map(attribute='role') | unique | list }}"
    " {{ messages | selectattr('role', 'equalto', 'user') | list | length }}",
    "{% for i in range(3) %}{{ i }}{% else %}none{% endfor %}{{ range(10, 0, -3) }}",
    "{% for x in l if x > 1 %}{{ x }}{% endfor %}{% for x in l %}{% if x == 1 %}{% continue %}{% endif %}"
    "{% if x == 2 %}{% break %}{% endif %}{{ x }}{% endfor %}",
    "{{ 'a\\nb' | indent(2, true) }} {{ '42' | int + 1 }} {{ '2.5' | float }} {{ nothere | default('d') }}",
    "{{ raise_exception('Conversation roles must alternate user/assistant') }}",
    "{% set x %}captured {{ n }}{% endset %}[{{ x }}] {% set a, b = [1, 2] %}{{ b }}{{ a }}",
    "{{ strftime_now('%Y-%m-%d %H:%M %b %B %%') }}",
    "{% if tools %}{% for t in tools %}{{ t.function.name }}({{ t.function.parameters.properties | tojson }}){% endfor %}{% endif %}",
    "{% for m in messages %}{% if m.tool_calls %}{% for c in m.tool_calls %}{{ c.function.name }}"
    "{{ c.function.arguments | tojson }}{% endfor %}{% endif %}{% endfor %}",
    "{{ bos_token }}{% for m in messages[1:] %}{{ m['role'] }}{% endfor %}{{ eos_token }}{{ messages[-1].content[:5] }}",
    "{{ (1, 2) }} {{ [1] + [2] }} {{ {'k': none} }} {{ 'x' in 'xyz' }} {{ 3 not in l }} {{ t and not z }} {{ z is none }}",
    "{#- comment -#}\n  {%- if true -%}\n  a  \n  {%- endif -%}\n{{- ' b ' -}}\n",
    "{% macro r(n) %}{% if n > 0 %}{{ n }}{{ r(n - 1) }}{% endif %}{% endmacro %}{{ r(5) }}",
    "{{ 'é🦙' | length }} {{ '🦙abc'[1:] }} {{ 'abc' | join('|') }} {{ 'a,b,,c'.split(',', 1) }} {{ '  x ' | trim }}",
    "{{ [3, 1, 2] | sort | first }} {{ messages | last }} {{ messages | reverse | first }} {{ l | string }} {{ n is odd }}",
    "{{ \"double\" }} {{ 'it\\'s' }} {{ '\\x41\\u00e9' }} {{ 'a' 'b' \"c\" }}",
]
for i, s in enumerate(snips):
    tmpls.append(("snip%02d" % i, s.encode()))
for name, b in tmpls:
    put("jinja", name.replace("/", "_"), b)

# ------------------------------------------------------------------ batch requests
lines = [
    {"custom_id": "req-1", "method": "POST", "url": "/v1/chat/completions",
     "body": {"model": "smolvlm", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "a.jpg"}},
                                                                            {"type": "text", "text": "What?"}]}],
              "max_tokens": 16, "temperature": 0}},
    {"custom_id": "req-2", "url": "/v1/audio/transcriptions", "body": {"file": "jfk.wav", "model": None, "language": "en"}},
    {"custom_id": "", "url": "/v1/chat/completions", "body": {}},
    {"custom_id": "x" * 600, "url": "/v1/chat/completions", "body": {}},
    {"custom_id": "req-3", "method": "GET", "url": "/v1/chat/completions", "body": {}},
    {"custom_id": "req-4", "url": "/v1/embeddings", "body": {}},
    {"custom_id": "req-5", "url": "/v1/chat/completions", "body": [1]},
    {"custom_id": "req-6", "url": "/v1/chat/completions", "body": {"model": 7}},
    {"custom_id": "req-\u00e9\u4e2d\U0001F600", "url": "/v1/chat/completions", "body": {"messages": [], "x": 1e308}},
]
jl = b"".join(json.dumps(x, ensure_ascii=False).encode() + b"\n" for x in lines)
put("batch", "mixed.jsonl", jl)
put("batch", "blank_and_bad.jsonl", b"\n   \n\t\r\n{not json}\n[1,2]\n\"s\"\n" + jl[:200] + b"\n{\"custom_id\": \"a\0b\"}\n")
put("batch", "no_newline.jsonl", json.dumps(lines[0]).encode())
put("batch", "crlf.jsonl", jl.replace(b"\n", b"\r\n"))
