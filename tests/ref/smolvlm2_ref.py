#!/usr/bin/python3
"""smolvlm2_ref.py — independent PyTorch reference for SmolVLM2's video mode (tests/vqa).

Written from transformers' published SmolVLM code (src/transformers/models/smolvlm/):
  - video_processing_smolvlm.py, SmolVLMVideoProcessor.sample_frames: n = min(int(round(fps * duration)),
    num_frames) (at least 1); start/end skip skip_secs (1) at both ends when duration - 2 * skip_secs >
    num_frames * fps; indices = unique(linspace(start, end, n, dtype=int));
  - video_utils.VideoMetadata: timestamps = frame index / fps; duration = total_num_frames / fps as the
    video loaders compute it;
  - SmolVLMVideoProcessor.resize: get_resize_output_image_size (the longest edge to
    video_sampling.video_size.longest_edge, the other side int(side * aspect) made even), then a second
    resize to the max_image_size square, both BICUBIC with antialias (LANCZOS falls back to BICUBIC for
    tensors); then rescale (1/255) and normalize (image_mean / image_std). torchvision is not installed
    here: PIL's BICUBIC stands in for torchvision's antialiased uint8 bicubic (the same Pillow algorithm
    ported to ATen; it can differ by one level at a few pixels);
  - processing_smolvlm.py, process_video + DEFAULT_CHAT_TEMPLATE: the user turn [video, text] renders
    "<|im_start|>User: <video>TEXT<end_of_utterance>\\nAssistant:" and <video> becomes
    DEFAULT_VIDEO_INTRO.format(frame_count=num2words(N), video_duration=str(timedelta(seconds=int(duration))))
    + per frame FRAME_TIMESTAMP_MESSAGE ("\\nFrame from MM:SS:") + the single-image layout
    + DEFAULT_MEDIA_OUTTRO ("\\n\\n"); num2words (not installed) is re-implemented below from its
    lang_EN merge rules;
  - modeling_smolvlm.py: the same SigLIP vision model, pixel-shuffle connector and inputs_merger as
    Idefics3 (tests/ref/smolvlm_ref.py), the Llama decoder of tests/ref/llama_ref.py.
Input frames: the C test's decoded frames (every frame of the clip, decoded by our FFmpeg path; a raw
file "n w h total_frames fps\\n" + n*h*w*3 bytes) — the choice of frames, their timestamps, the pixel
processing and everything after are computed here.

usage: smolvlm2_ref.py MODEL_DIR OUT N_GREEDY QUESTION FRAMES [--fps F] [--max-frames N]
  writes OUT.indices (frame indices, text), OUT.prompt (expanded prompt), OUT.ids (int32),
  OUT.pixels (float32 [n][3][t][t]), OUT.logits (float32 [T][vocab]), OUT.greedy (text)
"""
import datetime
import json
import os
import sys

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llama_ref  # noqa: E402
import smolvlm_ref  # noqa: E402

DT = torch.float64

SMALL = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
         "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
CARDS = [(10 ** 9, "billion"), (10 ** 6, "million"), (1000, "thousand"), (100, "hundred")]


def num2words(n):
    """num2words(n) for lang EN: splits by the largest unit and merges (text, value) pairs as
    Num2Word_EN.merge does."""
    def pair(n):
        if n < 20:
            return SMALL[n], n
        if n < 100:
            return (TENS[n // 10], n // 10 * 10) if n % 10 == 0 else merge((TENS[n // 10], n // 10 * 10), (SMALL[n % 10], n % 10))
        for v, name in CARDS:
            if n >= v:
                q, r = divmod(n, v)
                left = merge(pair(q), (name, v))
                return merge(left, pair(r)) if r else left
        raise ValueError(n)

    def merge(lp, rp):
        (lt, ln), (rt, rn) = lp, rp
        if ln == 1 and rn < 100:
            return rt, rn
        if 100 > ln > rn:
            return "%s-%s" % (lt, rt), ln + rn
        if ln >= 100 > rn:
            return "%s and %s" % (lt, rt), ln + rn
        if rn > ln:
            return "%s %s" % (lt, rt), ln * rn
        return "%s, %s" % (lt, rt), ln + rn

    return pair(n)[0]


def sample_frames(total_num_frames, fps_native, duration, num_frames, fps, skip_secs=1):
    estimated_frames = int(round(fps * duration))
    desired_frames = min(estimated_frames, num_frames)
    if desired_frames < 1:
        desired_frames = 1
    start_idx, end_idx = 0, total_num_frames - 1
    if skip_secs > 0 and (duration - 2 * skip_secs) > (num_frames * fps):
        start_idx = int(skip_secs * fps_native)
        end_idx = int(total_num_frames - skip_secs * fps_native)
    start_idx = max(0, start_idx)
    end_idx = min(end_idx, total_num_frames - 1)
    if start_idx >= end_idx:
        start_idx, end_idx = 0, total_num_frames - 1
    return np.unique(np.linspace(start_idx, end_idx, desired_frames, dtype=int))


def resize_output_size(height, width, longest_edge):
    longest_edge = min(4096, longest_edge)
    aspect_ratio = width / height
    if width >= height:
        width = longest_edge
        height = int(width / aspect_ratio)
        if height % 2 != 0:
            height += 1
    else:
        height = longest_edge
        width = int(height * aspect_ratio)
        if width % 2 != 0:
            width += 1
    return max(height, 1), max(width, 1)


def frame_pixels(a, pcfg):
    tile = pcfg["max_image_size"]["longest_edge"]
    le = pcfg.get("video_sampling", {}).get("video_size", {}).get("longest_edge", tile)
    im = Image.fromarray(a, "RGB")
    h, w = resize_output_size(a.shape[0], a.shape[1], le)
    im = im.resize((w, h), resample=Image.BICUBIC)
    im = im.resize((tile, tile), resample=Image.BICUBIC)
    x = (np.asarray(im).astype(np.float64) * pcfg.get("rescale_factor", 1 / 255)).astype(np.float32)
    mean = np.array(pcfg.get("image_mean", [0.5] * 3), dtype=np.float32)
    std = np.array(pcfg.get("image_std", [0.5] * 3), dtype=np.float32)
    return ((x - mean) / std).transpose(2, 0, 1)


def video_text(n_frames, timestamps_s, duration, seq_len):
    s = "You are provided the following series of {frame_count} frames from a {video_duration} [H:MM:SS] video.\n".format(
        frame_count=num2words(n_frames), video_duration=str(datetime.timedelta(seconds=int(int(duration)))))
    for sec in timestamps_s:
        ts = "%02d:%02d" % (int(sec // 60), int(sec % 60))
        s += "\nFrame from {timestamp}:".format(timestamp=ts) + smolvlm_ref.image_prompt(0, 0, seq_len)
    return s + "\n\n"


def main():
    args = sys.argv[1:]
    if len(args) < 5:
        print(__doc__, file=sys.stderr)
        return 2
    mdir, out, n_greedy, question, frames_path = args[0], args[1], int(args[2]), args[3], args[4]
    opt = {"--fps": None, "--max-frames": None}
    rest = args[5:]
    while rest:
        opt[rest[0]] = rest[1]
        rest = rest[2:]
    cfg = json.load(open(mdir + "/config.json"))
    pcfg = json.load(open(mdir + "/preprocessor_config.json"))
    seq_len = json.load(open(mdir + "/processor_config.json"))["image_seq_len"]
    vs = pcfg.get("video_sampling", {})
    fps = float(opt["--fps"]) if opt["--fps"] else vs.get("fps", 1)
    max_frames = int(opt["--max-frames"]) if opt["--max-frames"] else vs.get("max_frames", 64)

    with open(frames_path, "rb") as f:
        hdr = f.readline().split()
        n, w, h, total, native_fps = int(hdr[0]), int(hdr[1]), int(hdr[2]), int(hdr[3]), float(hdr[4])
        frames = np.frombuffer(f.read(), dtype=np.uint8).reshape(n, h, w, 3)
    assert n == total, "the frame dump must hold every frame"
    duration = total / native_fps
    idx = sample_frames(total, native_fps, duration, max_frames, fps)
    with open(out + ".indices", "w") as f:
        f.write(" ".join(str(int(i)) for i in idx) + "\n")
    pv = np.ascontiguousarray(np.stack([frame_pixels(frames[i], pcfg) for i in idx]), dtype=np.float32)
    pv.tofile(out + ".pixels")

    chat = "<|im_start|>User: <video>" + question + "<end_of_utterance>\nAssistant:"
    text = chat.replace("<video>", video_text(len(idx), [i / native_fps for i in idx], duration, seq_len), 1)
    with open(out + ".prompt", "w", encoding="utf-8") as f:
        f.write(text)
    tok = smolvlm_ref.Tokenizer(mdir + "/tokenizer.json")
    ids = tok.encode(text)
    np.array(ids, dtype="<i4").tofile(out + ".ids")

    tc, vc = cfg["text_config"], cfg["vision_config"]
    Wall = llama_ref.load_safetensors(mdir + "/model.safetensors")
    W = {("model." + k[len("model.text_model."):]) if k.startswith("model.text_model.") else k: v for k, v in Wall.items()}
    tcfg = dict(tc, tie_word_embeddings=cfg.get("tie_word_embeddings", tc.get("tie_word_embeddings", False)))
    with torch.no_grad():
        feats = smolvlm_ref.vision(vc, Wall, torch.from_numpy(pv).to(DT))
        emb = smolvlm_ref.connector(cfg, Wall, feats)
        W["model.embed_tokens.weight"] = smolvlm_ref.MergedEmbeddings(
            Wall["model.text_model.embed_tokens.weight"], cfg["image_token_id"], emb.reshape(-1, emb.shape[-1]), len(ids))
        logits = llama_ref.forward(tcfg, W, ids)
        logits.to(torch.float32).numpy().astype("<f4").tofile(out + ".logits")
        seq, greedy = list(ids), []
        for _ in range(n_greedy):
            nxt = int(torch.argmax(llama_ref.forward(tcfg, W, seq)[-1]))
            greedy.append(nxt)
            seq.append(nxt)
    with open(out + ".greedy", "w") as f:
        f.write(" ".join(str(t) for t in greedy) + "\n")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "num2words":  # tests: num2words N ...
        print("\n".join(num2words(int(a)) for a in sys.argv[2:]))
        sys.exit(0)
    sys.exit(main())
