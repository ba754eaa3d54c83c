#!/usr/bin/env bash
# StruM hardware claims and FlexNN dataflow comparison from `strumlab hw`, written to
# results/hw/: summary.md / summary.json (every run's four figures next to the paper's
# bands) and per-layer CSVs. Headline runs use the activity measured by scripts/eval-table.sh
# (results/eval/*.csv); the L sweep uses the density model.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -q
bin=target/release/strumlab
out=results/hw
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0
hw() { # label args...
  local label=$1; shift
  $bin hw "$@" --json > "$tmp/$(printf %03d $n)-$label.json"
  n=$((n + 1))
}
for m in mnist-8 effnet-lite0; do
  case $m in mnist-8) ev=mnist-8 ;; *) ev=$m-imagenet-samples ;; esac
  for s in mip2q dliq; do
    stats=results/eval/$ev-$s-l4.csv
    for arch in flexnn flexnn-small-rf; do
      for law in synth quadratic; do
        hw measured --model $m --scheme $s --block 8 --low 4 --stats $stats --arch experiments/hw/$arch.toml --multiplier-law $law
      done
    done
    for b in datapath rf; do
      hw measured --model $m --scheme $s --block 8 --low 4 --stats $stats --pe-boundary $b
    done
  done
  $bin hw --model $m --scheme mip2q --stats results/eval/$ev-mip2q-l4.csv --out $out/$m-mip2q-b8-l4-layers.csv >/dev/null
done
for s in "mip2q" "dliq --dliq-shift block" "dliq --dliq-shift none"; do
  for low in 2 4 6 8; do
    for law in synth quadratic; do
      hw density --model effnet-lite0 --scheme $s --block 8 --low $low --arch experiments/hw/flexnn-small-rf.toml --multiplier-law $law
    done
  done
done
# VGG-19's traffic (graph of the onnx wheel's test data, placeholder weights: traffic only).
hw density --model experiments/data/onnx-light/light_vgg19.onnx --scheme int8
# What the paper's bands imply (hw --solve), and the Eyeriss v1 validation.
$bin hw --model mnist-8 --scheme mip2q --solve --json --figures $out/figures > "$tmp/solve.json"
python3 -c "import json,sys; j=json.load(open(sys.argv[1])); json.dump(j['solve'], open(sys.argv[2],'w'), indent=1)" "$tmp/solve.json" $out/solve.json
$bin hw-validate --out $out/eyeriss-validation.json
python3 - "$tmp" "$out" <<'PY'
import glob, json, os, sys
tmp, out = sys.argv[1], sys.argv[2]
rows = []
for f in sorted(glob.glob(f"{tmp}/*.json")):
    j = json.load(open(f))
    for v in j["variants"]:
        rows.append({"model": j["model"], "arch": j["arch"], "scheme": j["scheme"], "law": j["multiplier_law"],
                     "activity": j["activity_source"], "variant": v["variant"], "boundary": j["pe_boundary"],
                     "dram_mb": j["dram_bytes_per_image"] / 1e6, "compulsory_dram_mb": j["compulsory_dram_bytes_per_image"] / 1e6,
                     "network_floor_mb": j["network_compulsory_dram_bytes_per_image"] / 1e6, "spills": j["spills"],
                     "system_energy": v["system_energy_reduction_pct"],
                     "dataflows_on_chip_uj": {k: e * 1e-6 for k, e in j["dataflow_on_chip_pj"]},
                     "pe_power": v["pe_power_reduction_pct"], "pe_area": v["pe_area_reduction_pct"],
                     "dpu_power": v["dpu_power_reduction_pct"], "dpu_area": v["dpu_area_reduction_pct"],
                     "dpu_power_bottom_up": v["dpu_power_reduction_bottom_up_pct"], "map_ms": j["map_ms"],
                     "dataflows_uj": {k: e * 1e-6 for k, e in j["dataflow_totals_pj"]},
                     "dataflow_cycles": dict(j["dataflow_cycles"])})
    paper = j["paper"]
json.dump({"paper": paper, "runs": rows}, open(f"{out}/summary.json", "w"), indent=1)
def mark(x, band):
    # x is a reduction (positive = saved); printed as a change, negative = saving
    c = f"{-x:.1f}" if x != 0 else "0.0"
    return f"**{c}**" if band[0] - 1e-9 <= x <= band[1] + 1e-9 else c
with open(f"{out}/summary.md", "w") as m:
    band = lambda b: f"-{b[1]:.0f}..-{b[0]:.0f} %" if b[0] != b[1] else f"about -{b[0]:.0f} %"
    m.write(f"Paper ({paper['source']}): PE power {band(paper['pe_power_reduction_pct'])}, "
            f"PE area {band(paper['pe_area_reduction_pct'])} (static), "
            f"DPU area {band(paper['dpu_area_reduction_pct'])} (static), DPU power {band(paper['dpu_power_reduction_pct'])}.\n"
            "Every figure is a change against the INT8 baseline: negative = StruM saves (summary.json carries the same as positive reductions). "
            "Values inside the paper's band are in bold. DPU columns scale the PE figures by the calibrated PE-array shares "
            "(area 0.105, power 0.305); 'DPU power bottom-up' uses the mapped on-chip energy (PE array + SRAM) instead, with no calibration, and 'with DRAM' adds the DRAM energy (off chip). "
            "PE boundary: datapath = multipliers or shifters, adder tree, accumulator, steering, control; rf = + register files; full = + find-first logic (docs/hardware.md).\n\n")
    m.write("| model | arch | scheme | law | activity | PE boundary | variant | PE power change % | PE area change % | DPU power change % | DPU area change % | DPU power bottom-up (on chip) change % | with DRAM change % |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
    for r in rows:
        if r["scheme"] == "int8":
            continue
        m.write(f"| {r['model']} | {r['arch']} | {r['scheme']} | {r['law']} | {r['activity']} | {r['boundary']} | {r['variant']} | "
                f"{mark(r['pe_power'], paper['pe_power_reduction_pct'])} | {mark(r['pe_area'], paper['pe_area_reduction_pct'])} | "
                f"{mark(r['dpu_power'], [9.5, 10.5])} | {mark(r['dpu_area'], paper['dpu_area_reduction_pct'])} | {-r['dpu_power_bottom_up']:.1f} | {-r['system_energy']:.1f} |\n")
    m.write("\nDRAM traffic per image (baseline PE, flexible mapping, ZVC as configured) against the network's floor (every weight, the network's input and its output once, dense) and the per-layer floor (each layer's weights, input and output once), with the activations that spill to DRAM because the 1 MiB SRAM cannot hold them with a layer's working set:\n\n")
    seen_d = set()
    for r in rows:
        if r["model"] in seen_d or r["variant"] != "static":
            continue
        seen_d.add(r["model"])
        m.write(f"* {r['model']}: {r['dram_mb']:.3f} MB; network floor {r['network_floor_mb']:.3f} MB ({r['dram_mb'] / r['network_floor_mb']:.2f}x); per-layer floor {r['compulsory_dram_mb']:.3f} MB ({r['dram_mb'] / r['compulsory_dram_mb']:.2f}x)\n")
        for sp in r["spills"]:
            m.write(f"  * spill after {sp['layer']}: {sp['bytes'] / 1e6:.3f} MB ({sp['reason']})\n")
    m.write("\nFlexNN dataflow comparison (baseline INT8 PE, measured activity, flexnn.toml): energy per image on chip (PE array + SRAM) / with DRAM, uJ; cycles per image with DRAM stalls\n\n")
    seen = set()
    for r in rows:
        key = r["model"]
        if key in seen or r["arch"] != "flexnn-16x16x8" or r["activity"] != "measured":
            continue
        seen.add(key)
        d, c = r["dataflows_uj"], r["dataflows_on_chip_uj"]
        flex = c["flexible (mapper)"]
        cy = r["dataflow_cycles"]
        m.write(f"* {key}: " + ", ".join(f"{k} {c[k]:.2f} ({100 * (c[k] / flex - 1):+.1f} % on chip vs flexible) / {d[k]:.2f}, {cy[k]:.0f} cycles" for k in d) + f"; mapping time {r['map_ms']:.1f} ms\n")
    ev = json.load(open(f"{out}/eyeriss-validation.json"))
    m.write(f"\nValidation against {ev['name']} ({ev['source']}), eyeriss-validation.json:\n\n| metric | published | model | ratio |\n|---|---|---|---|\n")
    for v in ev["rows"]:
        m.write(f"| {v['metric']} | {v['published']:g} {v['unit']} | {v['model']:.4g} | {v['ratio']:.2f}{'' if v['within_2x'] else ' (outside 2x)'} |\n")
    sol = json.load(open(f"{out}/solve.json"))
    m.write(f"\nhw --solve (solve.json, figures/solve-*.png): the four bands are feasible inside the priors: {sol['feasible']}. ")
    if sol["feasible"]:
        m.write("Feasible ranges: " + ", ".join(f"{k} {v[0]:.2f}..{v[1]:.2f}" for k, v in sol["ranges"].items()) + "\n")
    else:
        m.write("Nearest prior point: " + ", ".join(f"{k} {v:.2f}" for k, v in sol["nearest"].items()) + "\n")
print(open(f"{out}/summary.md").read())
PY
