#!/usr/bin/env bash
# Regenerate results/quantize/: per-layer weight statistics of mnist-8 under INT8, MIP2Q
# and DLIQ (B = 8, L = 4), with the default layer policy and with every layer quantized.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -q
bin=target/release/strumlab
m=experiments/data/mnist-8.onnx
out=results/quantize
mkdir -p "$out"
$bin quantize $m --scheme int8 --out $out/mnist-8-int8.csv >/dev/null
for s in mip2q dliq; do
  $bin quantize $m --scheme $s --block 8 --low 4 --out $out/mnist-8-$s-b8-l4.csv >/dev/null
  $bin quantize $m --scheme $s --block 8 --low 4 --quantize-first-last --out $out/mnist-8-$s-b8-l4-all-layers.csv >/dev/null
done
echo "wrote $(ls $out | wc -l) files to $out"
