#!/usr/bin/env bash
# GNU parallel example: run a sweep as N shards on this machine (or, with --sshloginfile,
# on several sharing a file system), then merge.
#
#   scripts/sweep-parallel.sh experiments/strum-mnist.toml 4
set -euo pipefail
spec=${1:?usage: sweep-parallel.sh SPEC N_SHARDS [OUT]}
n=${2:?usage: sweep-parallel.sh SPEC N_SHARDS [OUT]}
out=${3:-}
bin=${STRUMLAB:-target/release/strumlab}
extra=()
[ -n "$out" ] && extra=(--out "$out")
threads=$(( $(nproc) / n )); [ "$threads" -ge 1 ] || threads=1
export RAYON_NUM_THREADS=$threads
seq 0 $((n - 1)) | parallel --halt now,fail=1 --line-buffer \
    "$bin" sweep "$spec" --shard {}/"$n" -q "${extra[@]}"
dir=${out:-results/sweeps/$(sed -n 's/^name *= *"\(.*\)"/\1/p' "$spec")}
"$bin" merge "$dir"
