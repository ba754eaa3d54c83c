#!/usr/bin/env bash
# Accuracy table on the embedded and fetched data: writes per-layer CSVs to results/eval/
# and a summary (results/eval/summary.md, results/eval/summary.json).
# Usage: scripts/eval-table.sh [--act-calib max|percentile|mse]
set -euo pipefail
cd "$(dirname "$0")/.."
calib="${2:-max}"
cargo build --release --locked -q
bin=target/release/strumlab
out=results/eval
mkdir -p "$out"
runs=()
run() { # name args...
  local name=$1; shift
  $bin eval "$@" --act-calib "$calib" --out "$out/$name.csv" --json > "$out/.$name.json"
  runs+=("$name")
  echo "$name done"
}
run mnist-8-fp32 --model mnist-8 --scheme fp32 --mode fp32
for s in int8 mip2q dliq; do run mnist-8-$s-l4 --model mnist-8 --scheme $s --block 8 --low 4; done
for s in mip2q dliq; do run mnist-8-$s-l8 --model mnist-8 --scheme $s --block 8 --low 8; done
for m in effnet-lite0 effnet-lite1 effnet-lite2; do
  for d in imagenet-samples photos; do
    run $m-$d-fp32 --model $m --data $d --scheme fp32 --mode fp32
    for s in int8 mip2q dliq; do
      run $m-$d-$s-l4 --model $m --data $d --scheme $s --block 8 --low 4 --calib-images 16
    done
  done
done
run open-nsfw-photos-fp32 --model open-nsfw --data photos --scheme fp32 --mode fp32
for s in int8 mip2q dliq; do run open-nsfw-photos-$s-l4 --model open-nsfw --data photos --scheme $s --block 8 --low 4 --calib-images 16; done
python3 - "$out" "$calib" "${runs[@]}" <<'PY'
import json, sys
out, calib, runs = sys.argv[1], sys.argv[2], sys.argv[3:]
rows = []
for r in runs:
    j = json.load(open(f"{out}/.{r}.json"))
    s = j["summary"]
    rows.append({"run": r, "model": j["model"], "dataset": j["dataset"], "config": j["label"], "mode": j["mode"],
                 "images": s["images"], "top1": s["top1"], "top5": s["top5"], "fp32_top1": s["fp32_top1"],
                 "agreement_top1": s["agreement_top1"], "kl_mean": s["kl_mean"], "bits_per_weight": s["bits_per_weight"]})
json.dump(rows, open(f"{out}/summary.json", "w"), indent=1)
f = lambda v: "-" if v is None else f"{100*v:.2f}"
with open(f"{out}/summary.md", "w") as m:
    m.write(f"Activation calibration: {calib} (per tensor, first 64 / 16 images of the evaluated set). Weights: per-channel max.\n\n")
    m.write("| model | data | config | mode | images | top-1 % | top-5 % | FP32 top-1 % | agreement % | KL (nats) | bits/weight |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
    for r in rows:
        m.write(f"| {r['model']} | {r['dataset']} | {r['config']} | {r['mode']} | {r['images']} | {f(r['top1'])} | {f(r['top5'])} | {f(r['fp32_top1'])} | {100*r['agreement_top1']:.2f} | {r['kl_mean']:.4f} | {r['bits_per_weight']:.3f} |\n")
print(open(f"{out}/summary.md").read())
PY
rm -f "$out"/.*.json
