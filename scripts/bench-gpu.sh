#!/usr/bin/env bash
# GPU engine (WGSL, integer mode) vs the CPU engine, same run, same machine; writes
# results/bench/gpu-<adapter>.json. On a machine without a GPU this measures Mesa's
# software Vulkan (lavapipe), which is a CPU in disguise: the numbers say nothing about
# real GPUs.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -q
bin=target/release/strumlab
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
out=results/bench
mkdir -p "$out"
rows=()
for spec in "mnist-8 2000 64" "effnet-lite0 16 8"; do
  read -r m n b <<<"$spec"
  g=$($bin bench --model $m --scheme int8 --mode integer --device gpu --images $n --batch $b --repeat 2 --json)
  c=$($bin bench --model $m --scheme int8 --mode integer --device cpu --images $n --repeat 2 --json)
  rows+=("{\"gpu\": $g, \"cpu\": $c}")
done
adapter=$($bin devices --json | python3 -c 'import json,sys; a=json.load(sys.stdin)["adapters"]; print((a[0]["name"] if a else "none").split(" ")[0])')
printf '[%s]\n' "$(IFS=,; echo "${rows[*]}")" | python3 -c 'import json,sys; r=json.load(sys.stdin); [x.update(ratio_gpu_over_cpu=round(x["gpu"]["images_per_s"]/x["cpu"]["images_per_s"],4)) for x in r]; print(json.dumps(r, indent=1))' > "$out/gpu-$adapter.json"
cat "$out/gpu-$adapter.json"
