#!/usr/bin/env python3
"""Pillow references for preprocess/image.c and preprocess/imgproc.c (run with Debian's /usr/bin/python3,
python3-pil + python3-numpy).

  decode  IMG OUT [white|drop]   image as HF `load_image` + convert_to_rgb see it: exif_transpose, then
                                  alpha composited over white (Idefics3 convert_to_rgb) or dropped
                                  (PIL convert("RGB")). OUT: "P6"-style header "W H\n" + RGB bytes.
  resize  IN.rgb OUT W H FILTER   PIL Image.resize on an RGB image given as raw "W H\n"+bytes.
  gen     DIR                     write test images in formats decoded through FFmpeg (BMP, GIF, TIFF,
                                  WebP lossless/lossy) and a PNG/JPEG with EXIF orientation.
  idefics3 IMG OUT CONFIG.json    Idefics3ImageProcessor (transformers, slow/PIL path) on the decoded image:
                                  OUT: "rows cols n h w\n" + float32 pixel values (n, 3, h, w).
  qwen2vl IMG OUT CONFIG.json [min_pixels max_pixels]
                                  Qwen2VLImageProcessor (slow/PIL path): OUT: "t h w n d\n" + float32
                                  flattened patches (n, d).
The processor code below is written from transformers' image_processing_idefics3.py and
image_processing_qwen2_vl.py (same steps, same numeric types)."""
import json
import math
import sys

import numpy as np
from PIL import Image, ImageOps


def write_rgb(path, im):
    a = np.asarray(im, dtype=np.uint8)
    with open(path, "wb") as f:
        f.write(b"%d %d\n" % (a.shape[1], a.shape[0]))
        f.write(a.tobytes())


def read_rgb(path):
    with open(path, "rb") as f:
        hdr = f.readline().split()
        w, h = int(hdr[0]), int(hdr[1])
        a = np.frombuffer(f.read(), dtype=np.uint8).reshape(h, w, 3)
    return Image.fromarray(a, "RGB")


def load_rgb(path, alpha="white"):
    if path.endswith(".rgb"):  # raw RGB written by the C tests ("W H\n" + bytes)
        return read_rgb(path)
    im = Image.open(path)
    im = ImageOps.exif_transpose(im)
    if im.mode in ("I", "I;16", "I;16B", "I;16L"):
        # Pillow's own I -> RGB conversion clips 16-bit values to 255; image.c takes the high byte.
        a = np.asarray(im).astype(np.uint32) >> 8
        im = Image.fromarray(a.astype(np.uint8), "L")
    if alpha == "drop":
        return im.convert("RGB")
    rgba = im.convert("RGBA")
    bg = Image.new("RGBA", rgba.size, (255, 255, 255))
    return Image.alpha_composite(bg, rgba).convert("RGB")


def cmd_decode(args):
    im = load_rgb(args[0], args[2] if len(args) > 2 else "white")
    write_rgb(args[1], im)


def cmd_resize(args):
    im = read_rgb(args[0])
    w, h, flt = int(args[2]), int(args[3]), int(args[4])
    write_rgb(args[1], im.resize((w, h), resample=flt))


def pattern(w, h, alpha=False, smooth=False):
    y, x = np.mgrid[0:h, 0:w]
    r = (x * 255 // max(w - 1, 1)).astype(np.uint8)
    g = (y * 255 // max(h - 1, 1)).astype(np.uint8)
    if smooth:
        b = ((x + y) * 255 // (w + h - 2)).astype(np.uint8)
    else:
        b = (((x // 8) + (y // 8)) % 2 * 200 + 30).astype(np.uint8)
    chans = [r, g, b]
    if alpha:
        chans.append(((x + y) * 255 // (w + h - 2)).astype(np.uint8))
    return Image.fromarray(np.stack(chans, -1), "RGBA" if alpha else "RGB")


def cmd_gen(args):
    d = args[0]
    im = pattern(61, 37)
    im.save(d + "/pat.bmp")
    im.save(d + "/pat.tiff")
    im.save(d + "/pat_lossless.webp", lossless=True)
    pattern(61, 37, smooth=True).save(d + "/pat_lossy.webp", quality=90)
    im.convert("P", palette=Image.ADAPTIVE, colors=64).save(d + "/pat.gif")
    pattern(61, 37, alpha=True).save(d + "/pat_alpha.webp", lossless=True)
    pattern(61, 37, alpha=True).save(d + "/pat_alpha.png")
    # EXIF orientation in PNG (eXIf chunk) and JPEG (APP1)
    for o in (3, 6, 8):
        ex = Image.Exif()
        ex[0x0112] = o
        im.save(d + "/pat_o%d.png" % o, exif=ex.tobytes())


# ---------------------------------------------------------------- Idefics3 (transformers, slow path)

MAX_IMAGE_SIZE = 4096


def _rescale_to_max_len(height, width, max_len):
    aspect_ratio = width / height
    if width >= height:
        width = max_len
        height = int(width / aspect_ratio)
        if height % 2 != 0:
            height += 1
    elif height > width:
        height = max_len
        width = int(height * aspect_ratio)
        if width % 2 != 0:
            width += 1
    return max(height, 1), max(width, 1)


def _scale_below_upper_bound(height, width, max_len):
    aspect_ratio = width / height
    if width >= height and width > max_len:
        width = max_len
        height = int(width / aspect_ratio)
    elif height > width and height > max_len:
        height = max_len
        width = int(height * aspect_ratio)
    return max(height, 1), max(width, 1)


def idefics3(a, cfg):
    resample = cfg.get("resample", 1)
    longest = cfg["size"]["longest_edge"]
    tile = cfg["max_image_size"]["longest_edge"]

    def resize(arr, h, w):
        return np.array(Image.fromarray(arr, "RGB").resize((w, h), resample=resample))

    if cfg.get("do_resize", True):
        h, w = a.shape[:2]
        h, w = _rescale_to_max_len(h, w, longest)
        h, w = _scale_below_upper_bound(h, w, MAX_IMAGE_SIZE)
        a = resize(a, h, w)
    frames = []
    rows = cols = 0
    if cfg.get("do_image_splitting", True):
        height, width = a.shape[:2]
        aspect_ratio = width / height
        if width >= height:
            width = math.ceil(width / tile) * tile
            height = int(width / aspect_ratio)
            height = math.ceil(height / tile) * tile
        else:
            height = math.ceil(height / tile) * tile
            width = int(height * aspect_ratio)
            width = math.ceil(width / tile) * tile
        a = resize(a, height, width)
        if height > tile or width > tile:
            rows, cols = math.ceil(height / tile), math.ceil(width / tile)
            oh, ow = math.ceil(height / rows), math.ceil(width / cols)
            for r in range(rows):
                for c in range(cols):
                    sx, sy = c * ow, r * oh
                    frames.append(a[sy:min(sy + oh, height), sx:min(sx + ow, width)])
            if height != tile or width != tile:
                a = resize(a, tile, tile)
    frames.append(a)
    out = []
    mean = np.array(cfg.get("image_mean", [0.5] * 3), dtype=np.float32)
    std = np.array(cfg.get("image_std", [0.5] * 3), dtype=np.float32)
    for f in frames:
        x = (f.astype(np.float64) * cfg.get("rescale_factor", 1 / 255)).astype(np.float32)
        x = (x - mean) / std
        out.append(x.transpose(2, 0, 1))
    return np.stack(out), rows, cols


def cmd_idefics3(args):
    cfg = json.load(open(args[2]))
    a = np.array(load_rgb(args[0]))
    pv, rows, cols = idefics3(a, cfg)
    with open(args[1], "wb") as f:
        f.write(b"%d %d %d %d %d\n" % (rows, cols, pv.shape[0], pv.shape[2], pv.shape[3]))
        f.write(np.ascontiguousarray(pv, dtype=np.float32).tobytes())


# ---------------------------------------------------------------- Qwen2-VL (transformers, slow path)


def smart_resize(height, width, factor=28, min_pixels=56 * 56, max_pixels=14 * 14 * 4 * 1280):
    if max(height, width) / min(height, width) > 200:
        raise ValueError("aspect ratio too large")
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def qwen2vl(frames, cfg):
    ps, tps, ms = cfg.get("patch_size", 14), cfg.get("temporal_patch_size", 2), cfg.get("merge_size", 2)
    h, w = frames[0].shape[:2]
    rh, rw = smart_resize(h, w, ps * ms, cfg["min_pixels"], cfg["max_pixels"])
    mean = np.array(cfg["image_mean"], dtype=np.float32)
    std = np.array(cfg["image_std"], dtype=np.float32)
    imgs = []
    for f in frames:
        f = np.array(Image.fromarray(f, "RGB").resize((rw, rh), resample=3))
        x = (f.astype(np.float64) * cfg.get("rescale_factor", 1 / 255)).astype(np.float32)
        x = (x - mean) / std
        imgs.append(x.transpose(2, 0, 1))
    p = np.array(imgs)
    if p.shape[0] % tps != 0:
        rep = np.repeat(p[-1][np.newaxis], tps - p.shape[0] % tps, axis=0)
        p = np.concatenate([p, rep], axis=0)
    c = p.shape[1]
    gt, gh, gw = p.shape[0] // tps, rh // ps, rw // ps
    p = p.reshape(gt, tps, c, gh // ms, ms, ps, gw // ms, ms, ps)
    p = p.transpose(0, 3, 6, 4, 7, 2, 1, 5, 8)
    return p.reshape(gt * gh * gw, c * tps * ps * ps), (gt, gh, gw)


def cmd_qwen2vl(args):
    cfg = json.load(open(args[2]))
    if len(args) > 4:
        cfg["min_pixels"], cfg["max_pixels"] = int(args[3]), int(args[4])
    frames = [np.array(load_rgb(p)) for p in args[0].split(",")]
    flat, (t, h, w) = qwen2vl(frames, cfg)
    with open(args[1], "wb") as f:
        f.write(b"%d %d %d %d %d\n" % (t, h, w, flat.shape[0], flat.shape[1]))
        f.write(np.ascontiguousarray(flat, dtype=np.float32).tobytes())


if __name__ == "__main__":
    {"decode": cmd_decode, "resize": cmd_resize, "gen": cmd_gen, "idefics3": cmd_idefics3,
     "qwen2vl": cmd_qwen2vl}[sys.argv[1]](sys.argv[2:])
