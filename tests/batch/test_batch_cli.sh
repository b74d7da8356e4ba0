#!/usr/bin/env bash
# `mmpipe batch` end to end on the real stories260K model: OpenAI-shaped results, error records for bad
# lines while the rest goes on, duplicates reported, batch == single-shot `mmpipe generate` (greedy),
# SIGKILL at random points + --resume == an uninterrupted run (every id exactly once), SIGTERM with a
# summary, --shard I/N + `mmpipe merge` == unsharded.
set -u
: "${MMPIPE:?}" "${MMPIPE_FIXTURES:?}"
PY=${MP_PYTHON:-/usr/bin/python3}
M="$MMPIPE_FIXTURES/llm/stories260K.bin"
TOK="$MMPIPE_FIXTURES/llm/tok512.bin"
[[ -f $M && -f $TOK ]] || { echo "fixtures absent: skip"; exit 77; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
ok() { echo "ok   - $*"; }
bad() { echo "FAIL - $*"; fails=$((fails + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
B=("$MMPIPE" batch -m "$M" --tokenizer "$TOK" -t 2)

# ---------------------------------------------------------------- a mixed small batch
"$PY" - "$T/req.jsonl" <<'EOF'
import json, sys
prompts = ["Once upon a time", "Lily and Tim", "Zoo", "The cat", "One day, a little boy", "Sam had a big"]
with open(sys.argv[1], "w") as f:
    for i, p in enumerate(prompts):
        f.write(json.dumps({"custom_id": "g%d" % i, "method": "POST", "url": "/v1/completions",
                            "body": {"prompt": p, "max_tokens": 30 + 7 * i, "temperature": 0}}) + "\n")
    f.write(json.dumps({"custom_id": "s1", "url": "/v1/completions",
                        "body": {"prompt": "Lily and Tim", "max_tokens": 40, "temperature": 0.8, "top_p": 0.9, "seed": 1337}}) + "\n")
    f.write(json.dumps({"custom_id": "stop1", "url": "/v1/completions",
                        "body": {"prompt": "Once upon a time", "max_tokens": 100, "temperature": 0, "stop": ["Lily"]}}) + "\n")
    f.write(json.dumps({"custom_id": "lp1", "url": "/v1/completions",
                        "body": {"prompt": "Zoo", "max_tokens": 5, "temperature": 0, "logprobs": True, "top_logprobs": 3}}) + "\n")
    f.write("this is not json\n")
    f.write(json.dumps({"custom_id": "badtemp", "url": "/v1/completions", "body": {"prompt": "x", "temperature": "hot"}}) + "\n")
    f.write(json.dumps({"custom_id": "chat1", "url": "/v1/chat/completions",
                        "body": {"messages": [{"role": "user", "content": "hi"}]}}) + "\n")
    f.write(json.dumps({"custom_id": "asr1", "url": "/v1/audio/transcriptions", "body": {"file": "x.wav"}}) + "\n")
    f.write(json.dumps({"custom_id": "long1", "url": "/v1/completions", "body": {"prompt": "Once", "max_tokens": 100000}}) + "\n")
    f.write(json.dumps({"custom_id": "g0", "url": "/v1/completions", "body": {"prompt": "dup", "max_tokens": 3}}) + "\n")
    f.write(json.dumps({"custom_id": "other", "url": "/v1/completions", "body": {"model": "someone/else", "prompt": "x"}}) + "\n")
EOF
"${B[@]}" -o "$T/out.jsonl" "$T/req.jsonl" 2>"$T/err"
rc=$?
check "exit 1 when some requests failed" test $rc -eq 1
check "duplicate custom_id reported" grep -q 'duplicate custom_id "g0"' "$T/err"
n_rec=$(wc -l < "$T/out.jsonl")
check "summary: done/total == the $n_rec records (the total counted alongside the run)" grep -q "mmpipe batch: $n_rec/$n_rec done" "$T/err"
"$PY" - "$T/out.jsonl" <<'EOF' > "$T/check1" 2>&1
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
ids = [r["custom_id"] for r in rows]
byid = {r["custom_id"]: r for r in rows if r["custom_id"]}
ok = True
def req(c, m):
    global ok
    if not c:
        ok = False
        print("FAIL", m)
expect_ok = ["g%d" % i for i in range(6)] + ["s1", "stop1", "lp1"]
expect_err = ["badtemp", "chat1", "asr1", "long1", "other"]
req(sorted(i for i in ids if i) == sorted(expect_ok + expect_err), "ids: %s" % ids)
req(ids.count(None) == 1, "one record for the line without an id")
for i in expect_ok:
    r = byid[i]
    req(r["error"] is None and r["response"]["status_code"] == 200, i + " ok")
    b = r["response"]["body"]
    req(b["object"] == "text_completion" and b["choices"][0]["text"], i + " has text")
    req(r["id"].startswith("batch_req_"), i + " id")
for k in range(6):
    u = byid["g%d" % k]["response"]["body"]["usage"]
    req(u["completion_tokens"] == 30 + 7 * k and u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"], "usage g%d" % k)
    req(byid["g%d" % k]["response"]["body"]["choices"][0]["finish_reason"] == "length", "finish g%d" % k)
st = byid["stop1"]["response"]["body"]["choices"][0]
req(st["finish_reason"] == "stop" and "Lily" not in st["text"], "stop string: %r" % st)
lp = byid["lp1"]["response"]["body"]["choices"][0]["logprobs"]["tokens_detail"]
req(len(lp) == 5 and all(len(t["top_logprobs"]) == 3 for t in lp), "logprobs shape")
req(all(abs(t["logprob"] - t["top_logprobs"][0]["logprob"]) < 1e-5 for t in lp), "greedy token is the top logprob")
for i in expect_err:
    r = byid[i]
    req(r["response"] is None and r["error"]["message"], i + " error record")
req("chat template" in byid["chat1"]["error"]["message"], "chat without template: says so")
req("no speech model" in byid["asr1"]["error"]["message"], "transcription without a Whisper model: says so")
req("context" in byid["long1"]["error"]["message"], "too long: context")
req("someone/else" in byid["other"]["error"]["message"], "other model: named")
req("temperature" in byid["badtemp"]["error"]["message"], "bad param named")
print("PASS" if ok else "FAILED")
EOF
check "result records (see below if failed)" grep -q "^PASS" "$T/check1"
grep FAIL "$T/check1"

# batch == single shot (greedy), prompt text excluded
for k in 0 3 5; do
  p=$("$PY" -c "import json,sys;print(json.loads(open('$T/req.jsonl').readlines()[$k])['body']['prompt'])")
  n=$((30 + 7 * k))
  "$MMPIPE" generate -m "$M" --tokenizer "$TOK" --temp 0 -n $n -p "$p" -t 1 > "$T/gen$k" 2>/dev/null
  "$PY" -c "
import json,sys
r=[json.loads(l) for l in open('$T/out.jsonl') if '\"g$k\"' in l][0]
sys.stdout.write(r['response']['body']['choices'][0]['text'])" > "$T/bat$k"
  check "g$k: batch text == mmpipe generate" cmp -s "$T/gen$k" "$T/bat$k"
done

# no clobbering
"${B[@]}" -o "$T/out.jsonl" "$T/req.jsonl" 2>"$T/err"
check "existing output without --resume: exit 2" test $? -eq 2
check "existing output: says --resume" grep -q -- "--resume" "$T/err"

# ---------------------------------------------------------------- a bigger batch: kill -9 and resume
"$PY" - "$T/big.jsonl" <<'EOF'
import json, sys
starts = ["Once upon a time", "Lily", "Tim and Sue", "The sun", "A big dog", "Mom said", "In the park", "Bob"]
with open(sys.argv[1], "w") as f:
    for i in range(120):
        body = {"prompt": starts[i % len(starts)], "max_tokens": 40 + (i * 13) % 90}
        if i % 3 == 0:
            body.update(temperature=0)
        else:
            body.update(temperature=0.9, top_p=0.95)  # seeded from the custom_id
        f.write(json.dumps({"custom_id": "req-%03d" % i, "url": "/v1/completions", "body": body}) + "\n")
EOF
"${B[@]}" --max-seqs 4 -o "$T/full.jsonl" "$T/big.jsonl" 2>/dev/null
check "uninterrupted big run: exit 0" test $? -eq 0
kills=0
for round in 1 2 3 4 5 6; do
  "${B[@]}" --max-seqs 4 --resume -o "$T/killed.jsonl" "$T/big.jsonl" 2>/dev/null &
  pid=$!
  sleep "0.$((RANDOM % 6 + 1))"
  if kill -9 $pid 2>/dev/null; then kills=$((kills + 1)); fi
  wait $pid 2>/dev/null
done
"${B[@]}" --max-seqs 4 --resume -o "$T/killed.jsonl" "$T/big.jsonl" 2>"$T/err"
check "final resume: exit 0" test $? -eq 0
echo "   ($kills kill -9 rounds hit a running process)"
compare_runs() {
  "$PY" - "$1" "$2" <<'EOF'
import json, sys
def load(p):
    rows = [json.loads(l) for l in open(p)]
    ids = [r["custom_id"] for r in rows]
    return rows, ids
a, ia = load(sys.argv[1])
b, ib = load(sys.argv[2])
if len(ib) != len(set(ib)):
    print("duplicates in", sys.argv[2]); sys.exit(1)
if sorted(ia) != sorted(ib):
    print("id sets differ", len(ia), len(ib)); sys.exit(1)
ta = {r["custom_id"]: r["response"]["body"]["choices"][0]["text"] for r in a}
tb = {r["custom_id"]: r["response"]["body"]["choices"][0]["text"] for r in b}
diff = [k for k in ta if ta[k] != tb[k]]
if diff:
    print("texts differ for", diff[:5]); sys.exit(1)
EOF
}
check "killed+resumed == uninterrupted: every id once, same texts" compare_runs "$T/full.jsonl" "$T/killed.jsonl"
check "output ends with a newline (no torn line left)" test "$(tail -c1 "$T/killed.jsonl" | od -An -c | tr -d ' ')" = '\n'

# SIGTERM: finish in-flight within the grace period, summary, exit 3, then resume completes
"${B[@]}" --max-seqs 2 -o "$T/term.jsonl" "$T/big.jsonl" 2>"$T/err" &
pid=$!
# signal only once the run is under way (the first result written): a signal that arrives while the
# process is still starting (slow sanitizer builds) would find no handler yet
for _ in $(seq 600); do [[ -s $T/term.jsonl ]] && break; kill -0 $pid 2>/dev/null || break; sleep 0.1; done
kill -TERM $pid 2>/dev/null
wait $pid
rc=$?
if [[ $rc -eq 0 ]]; then
  ok "SIGTERM arrived after the run had finished (fast machine); not checked"
else
  check "SIGTERM: exit 3" test $rc -eq 3
  check "SIGTERM: summary says what is left" grep -q "not started; run again with --resume" "$T/err"
  "${B[@]}" --max-seqs 2 --resume -o "$T/term.jsonl" "$T/big.jsonl" 2>/dev/null
  check "after SIGTERM, resume completes the same results" compare_runs "$T/full.jsonl" "$T/term.jsonl"
fi

# ---------------------------------------------------------------- shards + merge
for i in 0 1 2 3; do
  "${B[@]}" --shard $i/4 -o "$T/sh.jsonl" "$T/big.jsonl" 2>/dev/null
done
check "four shard files" test "$(ls "$T"/sh.shard-0000?-of-00004.jsonl | wc -l)" -eq 4
n0=$(wc -l < "$T/sh.shard-00000-of-00004.jsonl")
check "shards split the work (shard 0 has $n0 of 120)" test "$n0" -gt 10 -a "$n0" -lt 60
"$MMPIPE" merge -o "$T/merged.jsonl" --requests "$T/big.jsonl" "$T/sh.shard-*.jsonl" 2>"$T/merr"
check "merge: exit 0 (all present once)" test $? -eq 0
check "merged == unsharded" compare_runs "$T/full.jsonl" "$T/merged.jsonl"
rm "$T/merged.jsonl"
"$MMPIPE" merge -o "$T/merged.jsonl" --requests "$T/big.jsonl" "$T/sh.shard-00000-of-00004.jsonl" "$T/sh.shard-00001-of-00004.jsonl" "$T/sh.shard-00001-of-00004.jsonl" 2>"$T/merr"
check "merge with a missing shard and a repeated one: exit 1" test $? -eq 1
check "merge reports missing and duplicates" grep -q "missing req-.*" "$T/merr"
grep -q "duplicate req-" "$T/merr" && ok "merge lists duplicates" || bad "merge lists duplicates"
SLURM_ARRAY_TASK_ID=2 SLURM_ARRAY_TASK_COUNT=4 "${B[@]}" -o "$T/slurm.jsonl" "$T/big.jsonl" 2>/dev/null
check "Slurm array variables pick the shard: same ids as --shard 2/4" test "$(cut -c1-60 "$T/slurm.shard-00002-of-00004.jsonl" | sort | md5sum)" = "$(cut -c1-60 "$T/sh.shard-00002-of-00004.jsonl" | sort | md5sum)"

echo "$fails failure(s)"
[[ $fails -eq 0 ]]
