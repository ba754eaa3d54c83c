#!/usr/bin/env bash
# What each StruM quantizer option does on the Fashion-MNIST zoo (issue: quantizer fidelity):
# integer mode, CPU engine, the 10k test images, default layer policy, B = 8, L = B (every
# value of a block demoted, where the options matter most) plus the dynamic-L criteria.
# Writes results/quantize-options/options.csv (one row per run, from `eval --json`) and
# options.md. Usage: scripts/quantize-options.sh [BIN] [MODELS...]
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:-target/release/strumlab}"
shift || true
models=("${@:-fmnist-resnet fmnist-mobilenetv2}")
models=(${models[@]})
out=results/quantize-options
mkdir -p "$out/json"
configs=(
  "mip2q-l8-fixed-0-6|--scheme mip2q --low 8 --p2-window fixed --p2-min-exp 0 --p2-max-exp 6"
  "mip2q-l8-anchored|--scheme mip2q --low 8"
  "mip2q-l8-auto|--scheme mip2q --low 8 --p2-window auto"
  "mip2q-l8-refit|--scheme mip2q --low 8 --refit"
  "mip2q-l8-demote-ratio|--scheme mip2q --low 8 --demote-from ratio"
  "dliq-l8|--scheme dliq --low 8"
  "dliq-l8-shift-rounding|--scheme dliq --low 8 --dliq-shift-rule rounding"
  "dliq-l8-shift-channel|--scheme dliq --low 8 --dliq-shift channel"
  "dliq-l8-refit|--scheme dliq --low 8 --refit"
  "dliq-l8-demote-ratio|--scheme dliq --low 8 --demote-from ratio"
  "mip2q-dyn20-weight|--scheme mip2q --l-policy dynamic --min-sqnr-db 20"
  "mip2q-dyn20-output|--scheme mip2q --l-policy dynamic --min-sqnr-db 20 --dyn-criterion output-sqnr"
)
for m in "${models[@]}"; do
  for c in "${configs[@]}"; do
    name="${c%%|*}"; args="${c#*|}"
    f="$out/json/$m-$name.json"
    [ -s "$f" ] && continue   # resumable
    start=$(date +%s.%N)
    # shellcheck disable=SC2086
    "$bin" eval --model "$m" $args --json -q > "$f.tmp"
    end=$(date +%s.%N)
    python3 - "$f.tmp" "$name" "$args" "$start" "$end" <<'PY'
import json, sys
p, name, args, t0, t1 = sys.argv[1:]
v = json.load(open(p)); v["option"] = name; v["args"] = args; v["wall_s"] = float(t1) - float(t0)
json.dump(v, open(p, "w"))
PY
    mv "$f.tmp" "$f"
    echo "$m $name done"
  done
done
python3 - "$out" <<'PY'
import csv, glob, json, os, sys
out = sys.argv[1]
rows = []
for f in sorted(glob.glob(os.path.join(out, "json", "*.json"))):
    v = json.load(open(f)); s = v["summary"]
    q = [l for l in v["layers"] if l["applied"] not in ("int8", "fp32")]
    rows.append({
        "model": v["model"], "option": v["option"], "args": v["args"], "images": s["images"],
        "top1_pct": round(100 * s["top1"], 2), "fp32_top1_pct": round(100 * s["fp32_top1"], 2),
        "agreement_top1_pct": round(100 * s["agreement_top1"], 2),
        "kl_mean_nats": s["kl_mean"], "bits_per_weight": round(s["bits_per_weight"], 4),
        "strum_layers": len(q), "layers_l": " ".join(l["applied"].split("-l")[-1] for l in v["layers"]),
        "wall_s": round(v["wall_s"], 1),
    })
order = {m: i for i, m in enumerate(["fmnist-resnet", "fmnist-mobilenetv2", "fmnist-vgg"])}
rows.sort(key=lambda r: (order.get(r["model"], 9), r["option"]))
with open(os.path.join(out, "options.csv"), "w", newline="") as fh:
    w = csv.DictWriter(fh, fieldnames=list(rows[0].keys())); w.writeheader(); w.writerows(rows)
with open(os.path.join(out, "options.md"), "w") as fh:
    fh.write("# StruM quantizer options on the Fashion-MNIST zoo\n\n")
    fh.write("Made by scripts/quantize-options.sh: `strumlab eval` per option, integer mode, CPU engine, "
             "the 10k Fashion-MNIST test images, default layer policy (first/last and depthwise layers INT8), "
             "B = 8, 64 calibration images. Top-1 % (agreement with FP32 top-1 %); one image = 0.01 points.\n\n")
    fh.write("| model | option | flags | top-1 % (agreement %) | bits/weight | L per layer |\n|---|---|---|---|---|---|\n")
    for r in rows:
        fh.write(f"| {r['model']} | {r['option']} | `{r['args']}` | {r['top1_pct']:.2f} ({r['agreement_top1_pct']:.2f}) "
                 f"| {r['bits_per_weight']:.3f} | {r['layers_l']} |\n")
print(f"wrote {out}/options.csv and options.md ({len(rows)} rows)")
PY
