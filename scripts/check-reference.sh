#!/usr/bin/env bash
# Fast CPU kernels (the batched executor, `engine` in each row) vs reference kernels on whole datasets, image by image (`eval
# --check-reference` fails on any differing logit; integer mode must match bit for bit):
# the 10k MNIST test images on mnist-8, the 10k Fashion-MNIST test images on the three zoo
# models, the 20 labelled ImageNet images on EfficientNet-Lite0/1/2 (fetched assets); INT8,
# MIP2Q and DLIQ at B = 8, L = 4, and MIP2Q / DLIQ at L = B (weights of +-128).
# Writes results/validation/fast-vs-reference.json. Usage: scripts/check-reference.sh [BIN]
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:-}"
if [ -z "$bin" ]; then cargo build --release --locked -q; bin=target/release/strumlab; fi
rows=()
for m in mnist-8 fmnist-resnet fmnist-mobilenetv2 fmnist-vgg effnet-lite0 effnet-lite1 effnet-lite2; do
  for c in "int8" "mip2q --low 4" "dliq --low 4" "mip2q --low 8" "dliq --low 8"; do
    t0=$(date +%s)
    # shellcheck disable=SC2086
    j=$("$bin" eval --model "$m" --scheme $c --mode integer --device cpu --check-reference -q --json)
    rows+=("$(python3 -c 'import json,sys; r=json.loads(sys.argv[1]); print(json.dumps({"model": r["model"], "dataset": r["dataset"], "config": r["label"], "mode": r["mode"], "device": r["device"], "engine": r.get("engine"), "images": r["summary"]["images"], "reference_mismatches": r["summary"]["reference_mismatches"], "wall_s": int(sys.argv[2])}))' "$j" "$(( $(date +%s) - t0 ))")")
    echo "${rows[-1]}"
  done
done
mkdir -p results/validation
printf '[%s]\n' "$(IFS=,; echo "${rows[*]}")" | python3 -m json.tool > results/validation/fast-vs-reference.json.tmp
mv results/validation/fast-vs-reference.json.tmp results/validation/fast-vs-reference.json
