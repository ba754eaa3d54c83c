#!/usr/bin/env python3
"""Throughput in one run, on one machine: strumlab's CPU engine with the fast kernels (fp32,
fake-quant, integer INT8 / MIP2Q B8 L4 / DLIQ B8 L4), the same engine with the reference
kernels (integer MIP2Q), optionally the GPU engine, and the peer, onnxruntime CPU: FP32 and
static INT8 (QDQ, per-channel weights, calibrated on 64 images of the model's data) on the
same models; then a sweep benchmark: 8 StruM configurations x the 10k Fashion-MNIST test
images on fmnist-resnet (`strumlab sweep`, accuracy + FP32 agreement + layer statistics,
no hardware model) against onnxruntime's FP32 time for the same 80k inferences.
Prints and records the ratios with the CPU model named.

Usage: python3 scripts/bench-engines.py [--bin target/release/strumlab] [--out results/bench]
       [--gpu] [--models a,b] [--no-sweep]
Needs: pip install onnxruntime onnx numpy; scripts/fetch-assets.sh for EfficientNet-Lite0.
Both sides use every core: strumlab runs images in parallel (rayon), onnxruntime batch 1
per call with its intra-op threads (its default), which is how each is fastest on a
2-core machine here.
"""
import argparse, json, os, platform, shutil, subprocess, tempfile, time

import numpy as np
import onnxruntime as ort

ap = argparse.ArgumentParser()
ap.add_argument("--bin", default="target/release/strumlab")
ap.add_argument("--out", default="results/bench")
ap.add_argument("--gpu", action="store_true", help="also the GPU engine (any adapter)")
ap.add_argument("--models", default="mnist-8,fmnist-resnet,fmnist-mobilenetv2,fmnist-vgg,effnet-lite0")
ap.add_argument("--no-sweep", action="store_true")
args = ap.parse_args()
os.makedirs(args.out, exist_ok=True)

cpu = "unknown"
if os.path.exists("/proc/cpuinfo"):
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
flags = open("/proc/cpuinfo").read() if os.path.exists("/proc/cpuinfo") else ""
isa = [f for f in ("avx512_vnni", "avx512f", "avx2", "fma", "amx_int8") if f" {f}" in flags]
machine = f"{cpu}, {os.cpu_count()} logical cores ({' '.join(isa)}), {platform.system()} {platform.machine()}"
os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.mkdtemp())


def ours(model, mode, scheme, images, device="cpu", extra=()):
    cmd = [args.bin, "bench", "--model", model, "--mode", mode, "--scheme", scheme, "--images", str(images),
           "--repeat", "3", "--device", device, "--batch", "64", "--json", *extra]
    r = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(r.stdout)["images_per_s"]


def exported(model, d, n):
    subprocess.run([args.bin, "export", "--model", model, "--limit", str(n), "--out", d], check=True, capture_output=True)
    meta = json.load(open(os.path.join(d, "meta.json")))
    x = np.fromfile(os.path.join(d, "inputs.f32"), dtype="<f4").reshape(meta["input_shape"])
    onnx_path = "experiments/data/mnist-8.onnx" if model == "mnist-8" else os.path.join(d, "model.onnx")
    return onnx_path, x


def qdq(onnx_path, x, d):
    """Static INT8 QDQ model (per-channel weights, MinMax calibration on `x`)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    name = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"]).get_inputs()[0].name

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{name: x[i:i + 1]} for i in range(len(x))])

        def get_next(self):
            return next(self.it, None)

    pre = os.path.join(d, "pre.onnx")
    try:
        quant_pre_process(onnx_path, pre)
    except Exception:
        shutil.copy(onnx_path, pre)
    out = os.path.join(d, "qdq.onnx")
    quantize_static(pre, out, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
    return out


def peer(onnx_path, x, images):
    s = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    name = s.get_inputs()[0].name
    s.run(None, {name: x[:1]})
    best = 0.0
    for _ in range(3):
        t = time.perf_counter()
        for i in range(images):
            s.run(None, {name: x[i % len(x): i % len(x) + 1]})
        best = max(best, images / (time.perf_counter() - t))
    return best


IMAGES = {"mnist-8": 4000, "effnet-lite0": 60}
rows = []
for model in args.models.split(","):
    images = IMAGES.get(model, 2000)
    with tempfile.TemporaryDirectory() as d:
        onnx_path, x = exported(model, d, 64)
        p32 = peer(onnx_path, x, images)
        try:
            p8 = peer(qdq(onnx_path, x, d), x, images)
        except Exception as e:  # a model onnxruntime cannot quantize: say so, keep FP32
            print(f"{model}: onnxruntime static INT8 failed: {e}")
            p8 = None
    runs = [("fp32", "fp32", "fast"), ("fake-quant", "mip2q", "fast"), ("integer", "int8", "fast"),
            ("integer", "mip2q", "fast"), ("integer", "dliq", "fast"), ("integer", "mip2q", "reference")]
    for mode, scheme, kernels in runs:
        n = images if kernels == "fast" else max(images // 8, 8)
        o = ours(model, mode, scheme, n, extra=("--kernels", kernels))
        row = {"model": model, "mode": mode, "scheme": scheme if scheme == "fp32" else f"{scheme}-b8-l4" if scheme != "int8" else "int8",
               "kernels": kernels, "strumlab_images_per_s": round(o, 2),
               "onnxruntime_fp32_images_per_s": round(p32, 2),
               "onnxruntime_int8_qdq_images_per_s": None if p8 is None else round(p8, 2),
               "ratio_strumlab_over_onnxruntime_fp32": round(o / p32, 3),
               "machine": machine, "onnxruntime": ort.__version__}
        line = (f"{model:18s} {mode:10s} {row['scheme']:12s} {kernels:9s} strumlab {o:9.1f} img/s   "
                f"ort fp32 {p32:9.1f}   ort int8 {'-' if p8 is None else f'{p8:9.1f}'}   ratio {o / p32:.3f}")
        if args.gpu and kernels == "fast":
            g = ours(model, mode, scheme, min(images, 256), "gpu")
            row["strumlab_gpu_images_per_s"] = round(g, 2)
            line += f"   gpu {g:8.1f}"
        rows.append(row)
        print(line, flush=True)

sweep = None
if not args.no_sweep:
    with tempfile.TemporaryDirectory() as d:
        spec = os.path.join(d, "sweep.toml")
        open(spec, "w").write('name = "bench-sweep"\n[base]\nmodel = "fmnist-resnet"\nhw = ""\ndevice = "cpu"\nblock = 8\n'
                              '[matrix]\nscheme = ["mip2q", "dliq"]\nlow = [1, 2, 3, 4]\n')
        # A fresh reference cache: the timed sweep includes its one FP32 pass and calibration.
        env = dict(os.environ, STRUMLAB_CACHE=os.path.join(d, "cache"))
        t = time.perf_counter()
        subprocess.run([args.bin, "sweep", spec, "--out", os.path.join(d, "out")], check=True, capture_output=True, env=env)
        ours_s = time.perf_counter() - t
        onnx_path, x = exported("fmnist-resnet", d, 64)
        p32 = peer(onnx_path, x, 4000)
    peer_s = 80000 / p32
    sweep = {"what": "8 StruM configurations (MIP2Q, DLIQ; B = 8, L = 1..4) x 10,000 Fashion-MNIST test images on fmnist-resnet",
             "strumlab_sweep_s": round(ours_s, 1), "onnxruntime_fp32_80k_inferences_s": round(peer_s, 1),
             "ratio_sweep_over_onnxruntime": round(ours_s / peer_s, 2), "machine": machine}
    print(f"sweep: strumlab {ours_s:.1f} s, onnxruntime FP32 for the same 80k inferences {peer_s:.1f} s, ratio {ours_s / peer_s:.2f}")

json.dump({"machine": machine, "onnxruntime": ort.__version__, "engines": rows, "sweep": sweep},
          open(os.path.join(args.out, "engines.json"), "w"), indent=1)
print(f"machine: {machine}; written to {args.out}/engines.json")
