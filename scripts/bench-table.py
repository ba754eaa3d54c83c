#!/usr/bin/env python3
"""The README's throughput table from results/bench/engines.json (scripts/bench-engines.py):
images/s of ours and of each peer at its best batch, and the two ratios the project's target
names. tests/readme_numbers.rs checks the README against the same file.

Usage: python3 scripts/bench-table.py [results/bench/engines.json]
"""
import json, sys

doc = json.load(open(sys.argv[1] if len(sys.argv) > 1 else "results/bench/engines.json"))
names = {"effnet-lite0": "EfficientNet-Lite0"}


def n(v):
    return f"{v:,.1f}" if v < 1000 else f"{v:,.0f}"


def peer(m, k):
    p = m["peers"].get(k) or {}
    if p.get("images_per_s") is None:
        return "–"
    return f"{n(p['images_per_s'])} (b{p['batch']})"


print("| model | ours integer MIP2Q B8 L4 | ours fp32 | ours reference kernels | onnxruntime FP32 | "
      "onnxruntime INT8 QDQ | OpenVINO INT8, AMX | OpenVINO INT8, VNNI only | ours / onnxruntime FP32 | "
      "ours / OpenVINO INT8 VNNI |")
print("|---|---|---|---|---|---|---|---|---|---|")
for m in doc["models"]:
    o = m["ours"]
    r = m["ratios"]
    print(f"| {names.get(m['model'], m['model'])} | {n(o['integer_mip2q_b8_l4_fast']['images_per_s'])} | "
          f"{n(o['fp32_fast']['images_per_s'])} | {n(o['integer_mip2q_b8_l4_reference']['images_per_s'])} | "
          f"{peer(m, 'onnxruntime_fp32')} | {peer(m, 'onnxruntime_int8_qdq')} | {peer(m, 'openvino_int8_amx')} | "
          f"{peer(m, 'openvino_int8_vnni')} | {r['ours_integer_over_ort_fp32_best']:.2f}x | "
          f"{r['ours_integer_over_openvino_int8_best_vnni']:.2f}x |")
