#!/usr/bin/env bash
# `mmpipe batch` with /v1/audio/transcriptions on a random-weight tiny.en-shaped Whisper model (written by
# `mmpipe bench transcribe --write-model`; test_whisper_ref checks the decoding itself against PyTorch):
# media as relative path, file:// URL and data: URI; broken/missing/http media and requests for a model the
# run lacks give error records while the rest goes on; every text == `mmpipe transcribe` on the same file;
# results do not depend on --asr-batch (lock-step groups); verbose_json carries segments; --task
# transcribe over a folder and a glob; a text model and a Whisper model in one run (mixed requests).
set -u
: "${MMPIPE:?}" "${MMPIPE_FIXTURES:?}"
PY=${MP_PYTHON:-/usr/bin/python3}
H="$MMPIPE_FIXTURES/whisper/for-tests-ggml-tiny.en.bin"
J="$MMPIPE_FIXTURES/audio/jfk.wav"
A="$MMPIPE_FIXTURES/audio_extra"
LM="$MMPIPE_FIXTURES/llm/stories260K.bin"
TOK="$MMPIPE_FIXTURES/llm/tok512.bin"
[[ -f $H && -f $J && -f $A/speech_glue_sheet_16k_mono.wav && -f $LM ]] || { echo "fixtures absent: skip"; exit 77; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
ok() { echo "ok   - $*"; }
bad() { echo "FAIL - $*"; fails=$((fails + 1)); }

W=$T/tiny.bin
"$MMPIPE" bench transcribe --header "$H" --write-model tiny f16 "$W" > /dev/null || { echo "cannot write the model"; exit 1; }
mkdir -p "$T/media/sub" "$T/dir"
cp "$J" "$T/media/jfk.wav"
cp "$A/speech_glue_sheet_16k_mono.wav" "$T/media/sub/glue.wav"
cp "$A/speech_glue_sheet_8k_mono.ogg" "$T/media/sub/glue8k.ogg"
cp "$A/broken_truncated_fmt.wav" "$T/media/broken.wav"
cp "$J" "$T/dir/jfk.wav"
cp "$A/broken_truncated_fmt.wav" "$T/dir/broken.wav"
echo "not audio" > "$T/dir/notes.txt"

"$PY" - "$T" "$A" <<'EOF2'
import base64, json, sys
t, a = sys.argv[1], sys.argv[2]
glue = base64.b64encode(open(a + "/speech_glue_sheet_8k_mono.ogg", "rb").read()).decode()
reqs = [
    ("rel", {"file": "media/jfk.wav"}),
    ("dup", {"file": "media/jfk.wav", "response_format": "text"}),
    ("url", {"file": "file://" + t + "/media/sub/glue.wav", "response_format": "verbose_json"}),
    ("data", {"file": "data:audio/ogg;base64," + glue}),
    ("input_audio", {"input_audio": {"data": glue, "format": "ogg"}, "response_format": "text"}),
    ("broken", {"file": "media/broken.wav"}),
    ("missing", {"file": "media/nope.wav"}),
    ("http", {"file": "https://example.com/a.wav"}),
    ("nofile", {"language": "en"}),
    ("badfmt", {"file": "media/jfk.wav", "response_format": "srt"}),
    ("prompted", {"file": "media/jfk.wav", "prompt": "Ask not."}),
    ("again", {"file": "file://" + t + "/media/jfk.wav"}),
]
with open(t + "/req.jsonl", "w") as f:
    for cid, body in reqs:
        f.write(json.dumps({"custom_id": cid, "method": "POST", "url": "/v1/audio/transcriptions", "body": body}) + "\n")
    f.write(json.dumps({"custom_id": "chat", "url": "/v1/completions", "body": {"prompt": "Once", "max_tokens": 8}}) + "\n")
EOF2

COMMON=(-m "$W" -t 2 -bs 1 -nf)
"$MMPIPE" batch "${COMMON[@]}" -o "$T/out1.jsonl" "$T/req.jsonl" 2> "$T/err1"; rc=$?
[[ $rc == 1 ]] && ok "exit 1 when some requests failed" || { bad "exit code $rc (want 1)"; cat "$T/err1"; }
grep -q "3 transcription(s) answered from the cache" "$T/err1" && ok "repeated audio run once (dup and data/input_audio in their group, again across groups)" \
  || { bad "cache (--asr-batch 8)"; cat "$T/err1"; }
# the same requests with a text model too, one transcription at a time (results must not change)
"$MMPIPE" batch -m "$LM" --tokenizer "$TOK" "${COMMON[@]}" --asr-batch 1 -o "$T/out2.jsonl" "$T/req.jsonl" 2> "$T/err2"
grep -q "1 transcription(s) answered from the cache" "$T/err2" && ok "repeated audio with the same options answered from the cache (--asr-batch 1)" \
  || { bad "cache (--asr-batch 1)"; cat "$T/err2"; }

# single-shot references (several files in one call, outputs named after the inputs)
mkdir -p "$T/ref"
"$MMPIPE" transcribe "${COMMON[@]}" -np -oj --output-dir "$T/ref" "$T/media/jfk.wav" "$T/media/sub/glue.wav" \
  "$T/media/sub/glue8k.ogg" > /dev/null 2>&1 || bad "mmpipe transcribe (references)"
"$MMPIPE" transcribe "${COMMON[@]}" -np -oj --prompt "Ask not." -of "$T/ref/prompted" "$T/media/jfk.wav" > /dev/null 2>&1 \
  || bad "transcribe --prompt"
ls "$T/ref"

"$PY" - "$T" <<'EOF2' || fails=$((fails + 1))
import json, sys
t = sys.argv[1]
def load(p):
    return {r["custom_id"]: r for r in map(json.loads, open(p))}
o1, o2 = load(t + "/out1.jsonl"), load(t + "/out2.jsonl")
fails = 0
def req(c, what):
    global fails
    print(("ok   - " if c else "FAIL - ") + what)
    fails += 0 if c else 1
req(len(o1) == 13, "one record per request (%d)" % len(o1))
for o in (o1, o2):
    req(o["again"]["response"]["body"] == o["rel"]["response"]["body"], "the same audio again: the same result")
    req(o["dup"]["response"]["body"] == o["rel"]["response"]["body"]["text"], "the same audio as text: the same text")
for cid in ["rel", "url", "data", "input_audio", "prompted"]:
    req(o1.get(cid, {}).get("error") is None and o1[cid]["response"]["status_code"] == 200, cid + ": ok")
errs = {"broken": ("invalid_media", "broken.wav"), "missing": ("invalid_media", "nope.wav"),
        "http": ("invalid_request", "http"), "nofile": ("invalid_request", "no audio"),
        "badfmt": ("invalid_request", "response_format"), "chat": ("model_not_found", "no text model")}
for cid, (code, word) in errs.items():
    e = (o1.get(cid) or {}).get("error") or {}
    req(e.get("code") == code and word in e.get("message", ""), "%s: error %s naming %r (%s)" % (cid, code, word, e))
def ref_text(name):
    j = json.load(open(t + "/ref/" + name + ".json"))
    return "".join(s["text"] for s in j["transcription"])
def body(o, cid):
    return o[cid]["response"]["body"]
def norm(s):
    return " ".join(s.split())
req(norm(body(o1, "rel")["text"]) == norm(ref_text("jfk.wav")), "relative path: text == mmpipe transcribe")
req(norm(body(o1, "url")["text"]) == norm(ref_text("glue.wav")), "file:// URL: text == mmpipe transcribe")
req(norm(body(o1, "data")["text"]) == norm(ref_text("glue8k.ogg")), "data: URI (ogg): text == mmpipe transcribe on the file")
req(isinstance(body(o1, "input_audio"), str) and norm(body(o1, "input_audio")) == norm(ref_text("glue8k.ogg")),
    "input_audio + response_format text: a string body")
req(norm(body(o1, "prompted")["text"]) == norm(ref_text("prompted")), "prompt: text == mmpipe transcribe --prompt")
v = body(o1, "url")
req(v.get("task") == "transcribe" and v.get("language") == "english" and abs(v["duration"] - 86958 / 32000 + 0.0) < 0.1
    and len(v["segments"]) >= 1 and all("tokens" in s and "avg_logprob" in s for s in v["segments"]),
    "verbose_json: task, language, duration, segments with tokens and avg_logprob")
req(norm(" ".join(s["text"] for s in v["segments"])) == norm(v["text"]), "verbose_json: segments make up the text")
strip = lambda o: {k: (r["response"]["body"] if r["response"] else r["error"]["code"]) for k, r in o.items() if k != "chat"}
req(strip(o1) == strip(o2), "same transcriptions with --asr-batch 8 and 1 (and a text model beside)")
c = o2["chat"]
req(c["error"] is None and c["response"]["body"]["choices"][0]["text"] != "", "text model + Whisper model in one run: the completion is answered")
sys.exit(1 if fails else 0)
EOF2

# --task transcribe over a folder and over a glob
"$MMPIPE" batch "${COMMON[@]}" --task transcribe -o "$T/task.jsonl" "$T/dir" 2> "$T/err_task"; rc=$?
[[ $rc == 1 ]] && ok "--task transcribe DIR: exit 1 (broken.wav)" || { bad "--task DIR exit $rc"; cat "$T/err_task"; }
"$MMPIPE" batch "${COMMON[@]}" --task transcribe -o "$T/task_glob.jsonl" "$T/media/sub/*.ogg" 2> /dev/null; rc=$?
[[ $rc == 0 ]] && ok "--task transcribe GLOB: exit 0" || bad "--task GLOB exit $rc"
"$PY" - "$T" <<'EOF2' || fails=$((fails + 1))
import json, sys
t = sys.argv[1]
d = {r["custom_id"]: r for r in map(json.loads, open(t + "/task.jsonl"))}
g = {r["custom_id"]: r for r in map(json.loads, open(t + "/task_glob.jsonl"))}
norm = lambda s: " ".join(s.split())
ref = lambda n: norm("".join(s["text"] for s in json.load(open(t + "/ref/" + n + ".json"))["transcription"]))
ok = set(d) == {t + "/dir/jfk.wav", t + "/dir/broken.wav"} and d[t + "/dir/broken.wav"]["error"] is not None \
     and set(g) == {t + "/media/sub/glue8k.ogg"}
ok = ok and norm(d[t + "/dir/jfk.wav"]["response"]["body"]["text"]) == ref("jfk.wav") \
     and norm(g[t + "/media/sub/glue8k.ogg"]["response"]["body"]["text"]) == ref("glue8k.ogg")
print(("ok   - " if ok else "FAIL - ") + "--task: one request per audio file (custom_id = path), texts as transcribe")
if not ok: print(sorted(d), sorted(g))
sys.exit(0 if ok else 1)
EOF2

"$MMPIPE" batch -m "$W" -m "$W" -o "$T/two.jsonl" "$T/req.jsonl" > /dev/null 2> "$T/err_two"; rc=$?
[[ $rc == 2 ]] && grep -q "two Whisper models" "$T/err_two" && ok "two Whisper models: setup error" || bad "two Whisper models: rc $rc"

echo "test_batch_asr: $fails failure(s)"
[[ $fails == 0 ]]
