#!/usr/bin/env bash
# GPU engine vs CPU engine on whole datasets, image by image (`eval --check-cpu` fails on any
# difference; integer mode must match bit for bit): the 10k MNIST test images on mnist-8
# (INT8, MIP2Q, DLIQ at B = 8, L = 4) and the 20 labelled ImageNet images on
# EfficientNet-Lite0/1/2 (INT8, MIP2Q). Writes results/validation/gpu-vs-cpu.json.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -q
bin=target/release/strumlab
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
rows=()
for spec in "mnist-8 int8" "mnist-8 mip2q" "mnist-8 dliq" \
            "effnet-lite0 int8" "effnet-lite0 mip2q" "effnet-lite1 int8" "effnet-lite1 mip2q" \
            "effnet-lite2 int8" "effnet-lite2 mip2q"; do
  read -r m s <<<"$spec"
  t0=$(date +%s)
  j=$($bin eval --model "$m" --scheme "$s" --mode integer --device gpu --check-cpu --stats-images 1 -q --json)
  rows+=("$(python3 -c 'import json,sys; r=json.loads(sys.argv[1]); print(json.dumps({"model": r["model"], "dataset": r["dataset"], "config": r["label"], "mode": r["mode"], "device": r["device"], "images": r["summary"]["images"], "gpu_cpu_mismatches": r["summary"]["gpu_cpu_mismatches"], "wall_s": int(sys.argv[2])}))' "$j" "$(( $(date +%s) - t0 ))")")
  echo "${rows[-1]}"
done
mkdir -p results/validation
printf '[%s]\n' "$(IFS=,; echo "${rows[*]}")" | python3 -m json.tool > results/validation/gpu-vs-cpu.json
