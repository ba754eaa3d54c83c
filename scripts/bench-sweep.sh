#!/usr/bin/env bash
# Sweep benchmark: N StruM configurations (MIP2Q / DLIQ, L = 1, 2, ...) x the 10k MNIST
# test images on mnist-8, accuracy only (quantize + calibrate + evaluate per
# configuration), CPU engine and GPU engine in the same run; the GPU reduces logits to
# counts on the device (kernels/topk_count.wgsl). Writes results/bench/sweep-<adapter>.json.
# Usage: scripts/bench-sweep.sh [N=8] [BATCH=256]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-8}
batch=${2:-256}
cargo build --release --locked -q
bin=target/release/strumlab
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
adapter=$($bin devices --json | python3 -c 'import json,sys; a=json.load(sys.stdin)["adapters"]; print((a[0]["name"] if a else "none").split(" ")[0])')
mkdir -p results/bench
$bin bench --model mnist-8 --sweep "$n" --batch "$batch" --device auto --json > "results/bench/sweep-$adapter.json"
cat "results/bench/sweep-$adapter.json"
