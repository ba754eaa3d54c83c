#!/usr/bin/env bash
# Slurm array template: one shard of a sweep per array task, all writing into one
# directory on a shared file system; then `strumlab merge DIR` once they are done.
#
#   sbatch --array=0-15 scripts/sweep-slurm.sh experiments/strum-imagenet.toml 16 [--out DIR]
#   strumlab merge results/sweeps/strum-imagenet
#
# Shards need no coordination (run k belongs to shard k mod n) and resume if resubmitted.
#SBATCH --job-name=strumlab-sweep
#SBATCH --cpus-per-task=8
#SBATCH --time=02:00:00
#SBATCH --output=strumlab-sweep-%A_%a.log
set -euo pipefail
spec=${1:?usage: sweep-slurm.sh SPEC N_SHARDS}
n=${2:?usage: sweep-slurm.sh SPEC N_SHARDS}
i=${SLURM_ARRAY_TASK_ID:?run under sbatch --array=0-$((n - 1))}
export RAYON_NUM_THREADS=${SLURM_CPUS_PER_TASK:-8}
# further arguments (e.g. --out DIR) go to `strumlab sweep`
exec "${STRUMLAB:-strumlab}" sweep "$spec" --shard "$i/$n" -v "${@:3}"
