#!/usr/bin/env bash
# `mmpipe batch` on a real single-node Slurm cluster (Debian's slurm-wlm + munge, started and stopped here):
# an `sbatch --array=0-3` job runs four shards of a 40-request manifest (each task picks its shard from
# SLURM_ARRAY_TASK_ID/COUNT by itself), `mmpipe merge` combines them, and every request is there exactly
# once with the same result as an unsharded run (greedy, real stories260K model).
# Needs root (slurmd runs jobs as their user) and the slurm-wlm/munge packages (scripts/setup.sh installs
# them); without them, or when the daemons cannot start in this environment, it reports "skipped" (77).
set -u
: "${MMPIPE:?}" "${MMPIPE_FIXTURES:?}"
PY=${MP_PYTHON:-/usr/bin/python3}
M="$MMPIPE_FIXTURES/llm/stories260K.bin"
TOK="$MMPIPE_FIXTURES/llm/tok512.bin"
[[ -f $M && -f $TOK ]] || { echo "fixtures absent: skip"; exit 77; }
for b in slurmctld slurmd munged sbatch squeue sinfo; do
  command -v $b > /dev/null || [[ -x /usr/sbin/$b ]] || { echo "$b not installed (apt-get install slurm-wlm munge): skip"; exit 77; }
done
[[ $(id -u) == 0 ]] || { echo "not root: cannot run slurmd here: skip"; exit 77; }
export PATH=$PATH:/usr/sbin
T=$(mktemp -d /tmp/mmpipe-slurm.XXXXXX)
chmod 755 "$T"
cleanup() {
  for p in slurmd slurmctld munged; do
    [[ -f $T/$p.pid ]] && kill "$(cat "$T/$p.pid")" 2> /dev/null
  done
  sleep 1
  for p in slurmd slurmctld munged; do
    [[ -f $T/$p.pid ]] && kill -9 "$(cat "$T/$p.pid")" 2> /dev/null
  done
  rm -rf "$T"
}
trap cleanup EXIT
skip() { echo "slurm could not start here ($1): skip"; for f in "$T"/*.log; do echo "--- $f"; tail -5 "$f"; done; exit 77; }

# ---------------------------------------------------------------- munge + slurm on localhost
mkdir -p "$T/munge" "$T/state" "$T/spool"
dd if=/dev/urandom of="$T/munge/munge.key" bs=1024 count=1 status=none
chmod 700 "$T/munge"; chmod 400 "$T/munge/munge.key"
munged --force --key-file="$T/munge/munge.key" --socket="$T/munge/sock" --pid-file="$T/munged.pid" \
  --log-file="$T/munged.log" --seed-file="$T/munge/seed" 2>> "$T/munged.log" || skip "munged"
HOST=$(hostname -s)
PORT0=$((46000 + RANDOM % 1000))
cat > "$T/slurm.conf" <<CONF
ClusterName=mmpipetest
SlurmctldHost=$HOST
AuthType=auth/munge
AuthInfo=socket=$T/munge/sock
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$PORT0
SlurmdPort=$((PORT0 + 1))
StateSaveLocation=$T/state
SlurmdSpoolDir=$T/spool
SlurmctldPidFile=$T/slurmctld.pid
SlurmdPidFile=$T/slurmd.pid
SlurmctldLogFile=$T/slurmctld.log
SlurmdLogFile=$T/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
SchedulerType=sched/builtin
NodeName=$HOST CPUs=$(nproc) State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF=$T/slurm.conf
slurmctld -f "$SLURM_CONF" 2>> "$T/slurmctld.log" || skip "slurmctld"
slurmd -f "$SLURM_CONF" 2>> "$T/slurmd.log" || skip "slurmd"
up=0
for _ in $(seq 60); do
  if sinfo -h -o '%T' 2> /dev/null | grep -qE '^(idle|mixed|allocated)'; then up=1; break; fi
  sleep 1
done
[[ $up == 1 ]] || skip "the node did not come up: $(sinfo -h -o '%T %E' 2>&1 | head -1)"
echo "ok   - single-node Slurm up ($(sinfo -h -o '%P %D %T'))"

# ---------------------------------------------------------------- the manifest, the unsharded reference
fails=0
"$PY" - "$T/req.jsonl" <<'PY'
import json, sys
with open(sys.argv[1], "w") as f:
    for i in range(40):
        f.write(json.dumps({"custom_id": "req-%03d" % i, "method": "POST", "url": "/v1/completions",
                            "body": {"prompt": ["Once upon a time", "Lily", "The dog", "One day"][i % 4] + " " * (i // 4),
                                     "max_tokens": 12 + i % 7, "temperature": 0}}) + "\n")
PY
"$MMPIPE" batch -m "$M" --tokenizer "$TOK" -t 1 -o "$T/full.jsonl" "$T/req.jsonl" 2> /dev/null \
  || { echo "FAIL - unsharded reference run"; exit 1; }

# ---------------------------------------------------------------- the array job
cat > "$T/job.sh" <<JOB
#!/bin/bash
#SBATCH --job-name=mmpipe-batch
#SBATCH --array=0-3
#SBATCH --cpus-per-task=1
#SBATCH --output=$T/job-%a.log
exec "$MMPIPE" batch -m "$M" --tokenizer "$TOK" -t 1 -o "$T/out.jsonl" "$T/req.jsonl"
JOB
if ! timeout 600 sbatch --wait "$T/job.sh" > "$T/sbatch.out" 2>&1; then
  echo "FAIL - sbatch --array=0-3 --wait: $(cat "$T/sbatch.out")"
  for f in "$T"/job-*.log "$T/slurmd.log"; do echo "--- $f"; tail -5 "$f"; done
  exit 1
fi
echo "ok   - sbatch --array=0-3 finished ($(cat "$T/sbatch.out"))"
n=$(ls "$T"/out.shard-0000?-of-00004.jsonl 2> /dev/null | wc -l)
[[ $n == 4 ]] && echo "ok   - four shard outputs from the array tasks" || { echo "FAIL - $n shard outputs"; fails=$((fails + 1)); }
"$MMPIPE" merge -o "$T/merged.jsonl" --requests "$T/req.jsonl" "$T/out.shard-*.jsonl" 2> "$T/merge.err"
[[ $? == 0 ]] && echo "ok   - merge: every request exactly once" || { echo "FAIL - merge: $(cat "$T/merge.err")"; fails=$((fails + 1)); }
"$PY" - "$T/full.jsonl" "$T/merged.jsonl" <<'PY' || fails=$((fails + 1))
import json, sys
def load(p):
    d = {}
    for l in open(p):
        r = json.loads(l)
        d[r["custom_id"]] = r["response"]["body"]["choices"][0]["text"] if r["response"] else None
    return d
a, b = load(sys.argv[1]), load(sys.argv[2])
ok = len(a) == 40 and a == b
print(("ok   - " if ok else "FAIL - ") + "merged array output == unsharded run (%d ids)" % len(b))
sys.exit(0 if ok else 1)
PY
echo "test_batch_slurm: $fails failure(s)"
[[ $fails == 0 ]]
