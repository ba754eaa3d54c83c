#!/usr/bin/env bash
# The cluster path, run for real: start a single-node Slurm (Debian slurm-wlm + munge, as
# root, in a private folder), submit scripts/sweep-slurm.sh as an array job over a small
# sweep, `strumlab merge` the shards, and check that the merged rows equal an unsharded run
# of the same spec (run ids, accuracies, hardware costs). Leaves the daemons stopped.
#
#   bash scripts/slurm-check.sh [BIN]      # BIN: a built strumlab (default: release build)
#
# Exit status: 0 the merged shards equal the unsharded run; 3 the Slurm daemons did not
# come up here (no result either way); anything else a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
bin="${1:-}"
if [ -z "$bin" ]; then cargo build --release --locked -q; bin=$root/target/release/strumlab; fi
if [ "$(id -u)" != 0 ]; then echo "slurm-check: needs root (it starts slurmctld, slurmd, munged)" >&2; exit 3; fi
need=""
command -v slurmctld >/dev/null 2>&1 || need="$need slurm-wlm"
command -v munged >/dev/null 2>&1 || need="$need munge"
if [ -n "$need" ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need
fi

work=$(mktemp -d /tmp/strumlab-slurm.XXXXXX)
host=$(hostname -s)
cpus=$(nproc)
mkdir -p "$work"/{spool,state,log,munge,out}
chmod 700 "$work/munge"

# munge: a fresh key, its own socket and pid file
dd if=/dev/urandom bs=1 count=1024 of="$work/munge/munge.key" 2>/dev/null
chmod 400 "$work/munge/munge.key"
munged --key-file="$work/munge/munge.key" --socket="$work/munge/munge.socket" \
  --pid-file="$work/munge/munged.pid" --log-file="$work/log/munged.log" --seed-file="$work/munge/seed" -f
export MUNGE_SOCKET="$work/munge/munge.socket"

cat > "$work/slurm.conf" <<EOF
ClusterName=strumlab-check
SlurmctldHost=$host
AuthType=auth/munge
AuthInfo=socket=$work/munge/munge.socket
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmctldLogFile=$work/log/slurmctld.log
SlurmdLogFile=$work/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
NodeName=$host CPUs=$cpus State=UNKNOWN
PartitionName=check Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
EOF
export SLURM_CONF="$work/slurm.conf"
cleanup() {
  for p in slurmd slurmctld; do [ -f "$work/$p.pid" ] && kill "$(cat "$work/$p.pid")" 2>/dev/null || true; done
  [ -f "$work/munge/munged.pid" ] && kill "$(cat "$work/munge/munged.pid")" 2>/dev/null || true
}
trap cleanup EXIT
# Exit 3 (not 1) when the cluster itself does not come up, so that a caller can tell an
# environment without room for daemons from a wrong result.
slurmctld -f "$SLURM_CONF" || { echo "slurm-check: slurmctld did not start" >&2; exit 3; }
slurmd -f "$SLURM_CONF" || { echo "slurm-check: slurmd did not start" >&2; exit 3; }
up=""
for _ in $(seq 30); do
  if sinfo -h -o %T 2>/dev/null | grep -qE "idle|mix"; then up=1; break; fi
  sleep 1
done
if [ -z "$up" ]; then
  echo "slurm-check: the node did not come up; logs in $work/log" >&2
  exit 3
fi
sinfo

# a small sweep: 6 runs on 300 MNIST images, with the hardware model
spec="$work/spec.toml"
cat > "$spec" <<EOF
name = "slurm-check"
[base]
model = "mnist-8"
device = "cpu"
limit = 300
[matrix]
scheme = ["int8", "mip2q", "dliq"]
low = [2, 4]
EOF
n=3
sharded="$work/out/sharded"
(cd "$work" && STRUMLAB="$bin" STRUMLAB_ROOT="$root" sbatch --wait --array=0-$((n - 1)) \
  --cpus-per-task=1 --output="$work/log/task-%a.log" \
  "$root/scripts/sweep-slurm.sh" "$spec" "$n" --out "$sharded")
"$bin" merge "$sharded"
STRUMLAB_ROOT="$root" "$bin" sweep "$spec" --out "$work/out/plain" -q
python3 - "$sharded/merged.csv" "$work/out/plain/runs.csv" <<'PY'
import csv, sys
keep = ["run_id", "status", "images", "top1_pct", "agreement_top1_pct", "kl_mean_nats",
        "bits_per_weight", "pe_power_reduction_static_pct", "pe_area_reduction_static_pct",
        "dpu_power_reduction_static_pct"]
def rows(p):
    return sorted(tuple(r[k] for k in keep) for r in csv.DictReader(open(p)))
a, b = rows(sys.argv[1]), rows(sys.argv[2])
assert len(a) == len(b) > 0, (len(a), len(b))
assert a == b, "sharded and unsharded rows differ"
print(f"slurm-check: {len(a)} runs over the array job merge to the unsharded result (ids, accuracy, costs)")
PY
cleanup
trap - EXIT
sleep 1
rm -rf "$work"
