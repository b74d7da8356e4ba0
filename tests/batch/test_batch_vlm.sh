#!/usr/bin/env bash
# `mmpipe batch` with image and video content on tiny random vision-language models (the captions and
# answers themselves are checked against PyTorch by test_caption / test_vqa): a chat request with an
# image_url part gives the same text as `mmpipe caption` on that image (SmolVLM, HF folder), as a path, a
# file:// URL and a data: URI; a video_url through SmolVLM2's video mode == `mmpipe vqa`; a broken image and
# a missing video get error records; --task caption over
# a folder; Qwen2-VL: a video_url request answers as `mmpipe vqa` does with the same --fps/--max-frames,
# the second request about the same video comes from the vision cache, an image_url works as one frame.
# Vision cache: the same picture (file:// and data: URI; several questions per image) is encoded once,
# answers unchanged by grouping (--max-seqs 1 vs 16); Qwen2-VL video as a data: URI (temporary file,
# removed; errors name the URI).
set -u
: "${MMPIPE:?}" "${MMPIPE_FIXTURES:?}" "${MP_SOURCE_DIR:?}"
PY=${MP_PYTHON:-/usr/bin/python3}
F="$MMPIPE_FIXTURES/images"
VID="$MMPIPE_FIXTURES/video/testsrc2_320x240_24fps_4s_h264_aac.mp4"
[[ -f $F/chelsea.jpg && -f $F/rocket.jpg && -f $F/broken/badcrc.png && -f $VID \
   && -f $MMPIPE_FIXTURES/hf/HuggingFaceTB--SmolVLM-256M-Instruct/config.json \
   && -f $MMPIPE_FIXTURES/hf/Qwen--Qwen2-VL-2B-Instruct/config.json ]] || { echo "fixtures absent: skip"; exit 77; }
"$PY" -c 'import torch, numpy' 2>/dev/null || { echo "no torch/numpy: skip"; exit 77; }
TC=${1:?usage: test_batch_vlm.sh PATH_OF_test_caption}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
ok() { echo "ok   - $*"; }
bad() { echo "FAIL - $*"; fails=$((fails + 1)); }

# ---------------------------------------------------------------- SmolVLM
"$TC" --write-fixture "$T/m" > /dev/null || { echo "cannot write the SmolVLM model"; exit 1; }
HF=$T/m/hf
mkdir -p "$T/imgs"
cp "$F/chelsea.jpg" "$F/rocket.jpg" "$T/imgs/"
cp "$F/broken/badcrc.png" "$T/imgs/bad.png"
"$MMPIPE" caption -m "$HF" -n 8 -t 2 --json "$T/imgs/chelsea.jpg" "$T/imgs/rocket.jpg" > "$T/cap.json" 2> "$T/cap.err" \
  || { echo "FAIL - mmpipe caption: $(cat "$T/cap.err")"; exit 1; }
"$PY" - "$T" "$F" <<'PY'
import base64, json, sys
t, f = sys.argv[1], sys.argv[2]
def chat(cid, url, text="Can you describe this image?", kind="image_url"):
    return {"custom_id": cid, "method": "POST", "url": "/v1/chat/completions",
            "body": {"messages": [{"role": "user", "content": [{"type": kind, kind: {"url": url}}, {"type": "text", "text": text}]}],
                     "max_tokens": 8, "temperature": 0}}
b64 = base64.b64encode(open(f + "/rocket.jpg", "rb").read()).decode()
reqs = [chat("path", "imgs/chelsea.jpg"), chat("fileurl", "file://" + t + "/imgs/rocket.jpg"),
        chat("data", "data:image/jpeg;base64," + b64), chat("broken", "imgs/bad.png"),
        chat("video", "clip.mp4", kind="video_url"), chat("novideo", "imgs/x.mp4", kind="video_url"),
        {"custom_id": "text", "url": "/v1/chat/completions", "body": {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}}]
with open(t + "/smol.jsonl", "w") as o:
    for r in reqs: o.write(json.dumps(r) + "\n")
PY
cp "$VID" "$T/clip.mp4"
"$MMPIPE" vqa -m "$HF" -t 2 -n 8 --temp 0 --json "$T/clip.mp4" "Can you describe this image?" > "$T/smol_vqa.json" 2> "$T/smol_vqa.err" \
  || { echo "FAIL - mmpipe vqa with SmolVLM: $(cat "$T/smol_vqa.err")"; exit 1; }
"$MMPIPE" batch -m "$HF" -t 2 --stats "$T/smol.stats" -o "$T/smol.out" "$T/smol.jsonl" 2> "$T/smol.err"; rc=$?
[[ $rc == 1 ]] && ok "SmolVLM batch: exit 1 (two bad requests)" || { bad "SmolVLM batch exit $rc"; cat "$T/smol.err"; }
"$MMPIPE" batch -m "$HF" -t 2 -p "Can you describe this image?" --max-tokens 8 --task caption -o "$T/task.out" "$T/imgs" 2> "$T/task.err"
"$PY" - "$T" <<'PY' || fails=$((fails + 1))
import json, sys
t = sys.argv[1]
cap = {}
for l in open(t + "/cap.json"):
    j = json.loads(l)
    cap[j["file"].split("/")[-1]] = j["text"].strip()
o = {r["custom_id"]: r for r in map(json.loads, open(t + "/smol.out"))}
task = {r["custom_id"].split("/")[-1]: r for r in map(json.loads, open(t + "/task.out"))}
fails = 0
def req(c, what):
    global fails
    print(("ok   - " if c else "FAIL - ") + what)
    fails += 0 if c else 1
text = lambda r: r["response"]["body"]["choices"][0]["message"]["content"].strip()
req(len(cap) == 2 and all(cap.values()), "mmpipe caption gave two captions")
req(text(o["path"]) == cap["chelsea.jpg"], "image path: batch == mmpipe caption (%r)" % text(o["path"]))
req(text(o["fileurl"]) == cap["rocket.jpg"], "file:// URL: batch == mmpipe caption")
req(text(o["data"]) == cap["rocket.jpg"], "data: URI: batch == mmpipe caption on the file")
req(o["broken"]["error"]["code"] == "invalid_media" and "bad.png" in o["broken"]["error"]["message"], "broken image: invalid_media naming the file")
vqa = json.load(open(t + "/smol_vqa.json"))["answers"][0]
req(o["video"]["error"] is None and text(o["video"]) == vqa["answer"].strip()
    and o["video"]["response"]["body"]["usage"]["prompt_tokens"] == vqa["prompt_tokens"],
    "video for SmolVLM (SmolVLM2 video mode): batch == mmpipe vqa (%r)" % (o["video"]["error"] or text(o["video"])))
req(o["novideo"]["error"] is not None and "x.mp4" in o["novideo"]["error"]["message"], "missing video: error names the file")
req(o["text"]["error"] is None, "text-only chat with the VLM: answered")
req(o["path"]["response"]["body"]["usage"]["prompt_tokens"] > 64, "usage counts the image rows as prompt tokens")
st = json.load(open(t + "/smol.stats"))
req(st["media_encoded"] == 3 and st["media_cached"] == 1 and st["ok"] == 5 and st["errors"] == 2,
    "vision cache: rocket.jpg as file:// and as data: URI encoded once (and the video) (stats %r)" % {k: st[k] for k in ("media_encoded", "media_cached", "ok", "errors")})
req(0 < st["busy_s"] <= st["wall_s"] and st["vision_s"] > 0 and st["decoder_s"] > 0 and st["gen_tokens"] > 0,
    "--stats: compute stages' time within the wall time")
req(set(task) == {"chelsea.jpg", "rocket.jpg", "bad.png"} and text(task["chelsea.jpg"]) == cap["chelsea.jpg"]
    and task["bad.png"]["error"] is not None, "--task caption DIR: one request per image, == mmpipe caption")
sys.exit(1 if fails else 0)
PY

# several questions per image: one vision encode per image (content hash), requests of a vision group
# answered as alone (the group, and the sequences decoding together, do not change greedy results)
"$MMPIPE" caption -m "$HF" -n 8 -t 2 -p "What is in the image?" --json "$T/imgs/chelsea.jpg" > "$T/cap_q2.json" 2> /dev/null
"$PY" - "$T" <<'PY'
import json, sys
t = sys.argv[1]
qs = ["Can you describe this image?", "What is in the image?", "What colour is it?", "Is it a cat?"]
with open(t + "/multi.jsonl", "w") as o:
    for i in range(8):
        img = "imgs/chelsea.jpg" if i % 2 == 0 else "imgs/rocket.jpg"
        body = {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": img}},
                                                        {"type": "text", "text": qs[i // 2]}]}], "max_tokens": 8}
        o.write(json.dumps({"custom_id": "q%d" % i, "url": "/v1/chat/completions", "body": body}) + "\n")
PY
"$MMPIPE" batch -m "$HF" -t 2 --stats "$T/multi.stats" -o "$T/multi.out" "$T/multi.jsonl" 2> "$T/multi.err" \
  || { bad "multi-question batch: $(cat "$T/multi.err")"; }
"$MMPIPE" batch -m "$HF" -t 2 --max-seqs 1 --vision-cache-mb 0 -o "$T/multi1.out" "$T/multi.jsonl" 2> "$T/multi1.err" \
  || { bad "multi-question batch, one sequence: $(cat "$T/multi1.err")"; }
"$PY" - "$T" <<'PY' || fails=$((fails + 1))
import json, sys
t = sys.argv[1]
text = lambda r: r["response"]["body"]["choices"][0]["message"]["content"].strip()
a = {r["custom_id"]: text(r) for r in map(json.loads, open(t + "/multi.out"))}
b = {r["custom_id"]: text(r) for r in map(json.loads, open(t + "/multi1.out"))}
st = json.load(open(t + "/multi.stats"))
cap = json.loads(open(t + "/cap_q2.json").readline())["text"].strip()
checks = [(len(a) == 8 and a == b, "8 requests: 16 sequences at once == one at a time (%r)" % a),
          (st["media_encoded"] == 2 and st["media_cached"] == 6, "two images asked about 4 times each: 2 encoded, 6 from the cache (%d, %d)" % (st["media_encoded"], st["media_cached"])),
          (a["q2"] == cap, "a cached image's answer == mmpipe caption -p (%r vs %r)" % (a["q2"], cap))]
for c, what in checks: print(("ok   - " if c else "FAIL - ") + what)
sys.exit(0 if all(c for c, _ in checks) else 1)
PY

# ---------------------------------------------------------------- Qwen2-VL
MMPIPE_FIXTURES="$MMPIPE_FIXTURES" "$PY" "$MP_SOURCE_DIR/tests/ref/qwen2vl_ref.py" make qwen2vl "$T/q" 31 > /dev/null \
  || { echo "cannot make the Qwen2-VL model"; exit 1; }
Q=(-m "$T/q" -t 2)
"$MMPIPE" vqa "${Q[@]}" -n 6 --temp 0 --fps 1 --max-frames 4 --json "$VID" "What happens?" > "$T/vqa.json" 2> "$T/vqa.err" \
  || { echo "FAIL - mmpipe vqa: $(cat "$T/vqa.err")"; exit 1; }
"$MMPIPE" vqa "${Q[@]}" -n 6 --temp 0 --json "$F/chelsea.jpg" "What is this?" > "$T/vqa_img.json" 2> /dev/null
"$PY" - "$T" "$VID" "$F/chelsea.jpg" <<'PY'
import json, sys
t, vid, img = sys.argv[1:4]
def chat(cid, url, text, kind):
    return {"custom_id": cid, "url": "/v1/chat/completions",
            "body": {"messages": [{"role": "user", "content": [{"type": kind, kind: {"url": url}}, {"type": "text", "text": text}]}],
                     "max_tokens": 6, "temperature": 0}}
import base64
b64 = base64.b64encode(open(vid, "rb").read()).decode()
junk = base64.b64encode(bytes(range(256)) * 8).decode()
with open(t + "/q.jsonl", "w") as o:
    for r in [chat("v1", vid, "What happens?", "video_url"), chat("v2", vid, "What happens?", "video_url"),
              chat("img", img, "What is this?", "image_url"),
              chat("vdata", "data:video/mp4;base64," + b64, "What happens?", "video_url"),
              chat("vjunk", "data:video/mp4;base64," + junk, "What happens?", "video_url")]:
        o.write(json.dumps(r) + "\n")
PY
mkdir -p "$T/tmp"
TMPDIR="$T/tmp" "$MMPIPE" batch "${Q[@]}" --fps 1 --max-frames 4 --stats "$T/q.stats" -o "$T/q.out" "$T/q.jsonl" 2> "$T/q.err"; rc=$?
[[ $rc == 1 ]] && ok "Qwen2-VL batch: exit 1 (one bad video)" || { bad "Qwen2-VL batch exit $rc"; cat "$T/q.err"; }
grep -q "2 image/video input(s) encoded, 2 answered from the vision cache" "$T/q.err" \
  && ok "the second request about the video and its data: URI copy came from the vision cache" || { bad "vision cache"; cat "$T/q.err"; }
ls "$T/tmp"/mmpipe-media-* > /dev/null 2>&1 && bad "temporary media files left behind" || ok "no temporary media files left"
"$PY" - "$T" <<'PY' || fails=$((fails + 1))
import json, sys
t = sys.argv[1]
o = {r["custom_id"]: r for r in map(json.loads, open(t + "/q.out"))}
def answer(p):
    a = json.load(open(p))["answers"][0]
    return (a["answer"].strip(), a["prompt_tokens"], a["completion_tokens"], a["finish_reason"])
def got(r):
    if r["error"] is not None: return r["error"]
    b = r["response"]["body"]
    return (b["choices"][0]["message"]["content"].strip(), b["usage"]["prompt_tokens"], b["usage"]["completion_tokens"],
            b["choices"][0]["finish_reason"])
ok = True
e = o["vjunk"]["error"]
c = e is not None and e["message"].startswith("data:video/mp4") and "mmpipe-media" not in e["message"]
print(("ok   - " if c else "FAIL - ") + "undecodable data: URI video: error names the data: URI (%r)" % e)
ok = ok and c
for cid, ref in [("v1", answer(t + "/vqa.json")), ("v2", answer(t + "/vqa.json")), ("img", answer(t + "/vqa_img.json")),
                 ("vdata", answer(t + "/vqa.json"))]:
    c = got(o[cid]) == ref and ref[1] > 20 and ref[2] > 0
    print(("ok   - " if c else "FAIL - ") + "%s: batch == mmpipe vqa: text, prompt/completion tokens, finish (%r vs %r)" % (cid, got(o[cid]), ref))
    ok = ok and c
sys.exit(0 if ok else 1)
PY
echo "test_batch_vlm: $fails failure(s)"
[[ $fails == 0 ]]
