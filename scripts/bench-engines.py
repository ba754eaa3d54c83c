#!/usr/bin/env python3
"""Throughput in one run: strumlab's CPU engine and GPU engine (fp32, fake-quant, integer;
integer on the GPU with and without packed 4x8-bit dot products) next to onnxruntime CPU
FP32 (the peer) on the same machine; prints and records the ratios. Without a GPU adapter
the GPU columns are left out; on a machine without a GPU the adapter is Mesa's lavapipe
(software Vulkan), which is a CPU: its figures say nothing about GPUs.

Usage: python3 scripts/bench-engines.py [--bin target/release/strumlab] [--out results/bench]
Needs: pip install onnxruntime numpy; scripts/fetch-assets.sh for EfficientNet-Lite0.
Both sides use every core (rayon over images / onnxruntime intra-op threads) and batch 1
per inference call; images are the model card's dataset, repeated as needed.
"""
import argparse, json, os, platform, subprocess, tempfile, time

import numpy as np
import onnxruntime as ort

ap = argparse.ArgumentParser()
ap.add_argument("--bin", default="target/release/strumlab")
ap.add_argument("--out", default="results/bench")
args = ap.parse_args()
os.makedirs(args.out, exist_ok=True)

cpu = "unknown"
if os.path.exists("/proc/cpuinfo"):
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
machine = f"{cpu}, {os.cpu_count()} logical cores, {platform.system()} {platform.machine()}"

def ours(model, mode, images, device="cpu", extra=()):
    r = subprocess.run([args.bin, "bench", "--model", model, "--mode", mode, "--scheme", "int8" if mode != "fp32" else "fp32",
                        "--images", str(images), "--repeat", "3", "--device", device, "--batch", "64", "--json", *extra],
                       capture_output=True, text=True, check=True)
    return json.loads(r.stdout)

os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.mkdtemp())
devs = json.loads(subprocess.run([args.bin, "devices", "--json"], capture_output=True, text=True, check=True).stdout)["adapters"]
gpu_name = devs[0]["name"] if devs else None

def peer(model, images):
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([args.bin, "export", "--model", model, "--limit", "20", "--out", d], check=True, capture_output=True)
        meta = json.load(open(os.path.join(d, "meta.json")))
        x = np.fromfile(os.path.join(d, "inputs.f32"), dtype="<f4").reshape(meta["input_shape"])
        onnx = "experiments/data/mnist-8.onnx" if model == "mnist-8" else os.path.join(d, "model.onnx")
        s = ort.InferenceSession(onnx, providers=["CPUExecutionProvider"])
        name = s.get_inputs()[0].name
        s.run(None, {name: x[:1]})
        best = 0.0
        for _ in range(3):
            t = time.perf_counter()
            for i in range(images):
                s.run(None, {name: x[i % len(x): i % len(x) + 1]})
            best = max(best, images / (time.perf_counter() - t))
        return best

rows = []
for model, images in [("mnist-8", 2000), ("effnet-lite0", 40)]:
    p = peer(model, images)
    for mode in ["fp32", "fake-quant", "integer"]:
        o = ours(model, mode, images)["images_per_s"]
        row = {"model": model, "mode": mode, "strumlab_images_per_s": round(o, 2), "onnxruntime_fp32_images_per_s": round(p, 2),
               "ratio_strumlab_over_onnxruntime": round(o / p, 3), "machine": machine, "onnxruntime": ort.__version__}
        line = f"{model:14s} {mode:10s} strumlab cpu {o:9.1f} img/s  onnxruntime fp32 {p:9.1f} img/s  ratio {o / p:.3f}"
        if gpu_name:
            gi = min(images, 256)
            g = ours(model, mode, gi, "gpu")
            row.update({"gpu": g["device"], "strumlab_gpu_images_per_s": round(g["images_per_s"], 2),
                        "ratio_gpu_over_cpu_engine": round(g["images_per_s"] / o, 3),
                        "ratio_gpu_over_onnxruntime": round(g["images_per_s"] / p, 3)})
            line += f"  gpu {g['images_per_s']:8.1f} img/s"
            if mode == "integer":
                q = ours(model, mode, gi, "gpu", ("--portable-kernels",))
                row["strumlab_gpu_portable_kernels_images_per_s"] = round(q["images_per_s"], 2)
                line += f" (portable kernels {q['images_per_s']:.1f})"
        rows.append(row)
        print(line)
json.dump(rows, open(os.path.join(args.out, "engines.json"), "w"), indent=1)
print(f"machine: {machine}; written to {args.out}/engines.json")
