#!/usr/bin/env python3
"""Cross-check strumlab's FP32 engine against onnxruntime (the peer) on real models.

For each model: `strumlab export` writes the model as ONNX plus the preprocessed inputs and
our FP32 logits; onnxruntime runs the same ONNX on the same inputs; we report the maximum
relative logit error (max |ours - ort| / max |ort|), top-1 agreement, and top-1 accuracy.
For mnist-8 and the Fashion-MNIST zoo the *original* ONNX file is run (not our re-export)
on the 10k test set.

Usage: python3 scripts/validate-onnxruntime.py [--bin target/release/strumlab] [--out results/validation]
Needs: pip install onnxruntime numpy  (and scripts/fetch-assets.sh for EfficientNet-Lite)
"""
import argparse, json, os, subprocess, sys, tempfile

import numpy as np
import onnxruntime as ort

ap = argparse.ArgumentParser()
ap.add_argument("--bin", default="target/release/strumlab")
ap.add_argument("--out", default="results/validation")
ap.add_argument("--models", default="mnist-8,fmnist-resnet,fmnist-mobilenetv2,fmnist-vgg,effnet-lite0,effnet-lite1,effnet-lite2,open-nsfw")
args = ap.parse_args()
os.makedirs(args.out, exist_ok=True)
rows = []
for model in args.models.split(","):
    with tempfile.TemporaryDirectory() as d:
        limit = "10000" if model == "mnist-8" or model.startswith("fmnist-") else "100"
        r = subprocess.run([args.bin, "export", "--model", model, "--limit", limit, "--out", d], capture_output=True, text=True)
        if r.returncode != 0:
            print(f"{model}: skipped ({r.stderr.strip()})", file=sys.stderr)
            continue
        meta = json.load(open(os.path.join(d, "meta.json")))
        x = np.fromfile(os.path.join(d, "inputs.f32"), dtype="<f4").reshape(meta["input_shape"])
        ours = np.fromfile(os.path.join(d, "logits.f32"), dtype="<f4").reshape(meta["logits_shape"])
        cache = os.environ.get("STRUMLAB_CACHE", os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "strumlab"))
        original = {"mnist-8": "experiments/data/mnist-8.onnx", "open-nsfw": os.path.join(cache, "open_nsfw.onnx")}
        # The Fashion-MNIST zoo: the file `strumlab train` wrote (BatchNormalization as nodes).
        for z in ("fmnist-resnet", "fmnist-mobilenetv2", "fmnist-vgg"):
            original[z] = f"experiments/data/fashion-zoo/{z}.onnx"
        onnx_file = original.get(model, os.path.join(d, "model.onnx"))
        sess = ort.InferenceSession(onnx_file, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        ref = np.concatenate([sess.run(None, {name: x[i:i + 1]})[0] for i in range(len(x))]).reshape(ours.shape)
        rel = float(np.abs(ours - ref).max() / np.abs(ref).max())
        agree = float((ours.argmax(1) == ref.argmax(1)).mean())
        labels = np.array(meta["labels"]) if meta["labels"] is not None else None
        row = {
            "model": model, "images": len(x), "onnx": "original" if model in original else "strumlab export",
            "max_rel_logit_err": rel, "top1_agreement_frac": agree,
            "ours_top1_frac": float((ours.argmax(1) == labels).mean()) if labels is not None else None,
            "ort_top1_frac": float((ref.argmax(1) == labels).mean()) if labels is not None else None,
            "onnxruntime_version": ort.__version__,
        }
        rows.append(row)
        print(json.dumps(row))
with open(os.path.join(args.out, "onnxruntime.json"), "w") as f:
    json.dump(rows, f, indent=1)
