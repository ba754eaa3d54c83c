#!/usr/bin/env python3
"""The scale benchmark: EfficientNet-Lite0 over an ImageNet-layout folder of distinct JPEGs.

1. Builds WORK/val/<synset>/<n>.JPEG: N copies of the fetched ImageNet samples (the class is in
   their file name), each with its own JPEG comment segment, so that neither the decoder nor
   the preprocessed-image cache can deduplicate them (every file's contents differ, its pixels
   do not).
2. `strumlab eval` on the first 5,000 and on all N images, each with a cold cache (empty
   preprocessed-image and FP32-reference caches) and then a warm one: peak RSS (the child's
   ru_maxrss, i.e. VmHWM: every resident page, file-backed included) and images/s end to end.
3. An 8-configuration sweep (MIP2Q, DLIQ x L = 1..4, B = 8) over the first 10,000 files, cold
   (decoding included), against onnxruntime's FP32 time for the same 80k inferences (its best
   of batch 1 and 8 on the exported model, images already decoded; timing rule of
   bench-engines.py: best of 3 passes of >= 2 s).
Writes OUT/scale.json and OUT/scale.md.

Usage: scripts/bench-scale.sh [--n 50000] [--work DIR] [--out results/bench]
"""
import argparse, json, os, platform, shutil, subprocess, sys, time

ap = argparse.ArgumentParser()
ap.add_argument("--bin", default="target/release/strumlab")
ap.add_argument("--n", type=int, default=50000)
ap.add_argument("--small", type=int, default=5000)
ap.add_argument("--sweep-images", type=int, default=10000)
ap.add_argument("--work", default="/tmp/strumlab-scale")
ap.add_argument("--out", default="results/bench")
ap.add_argument("--skip", default="", help="comma list of steps to skip: small,full,sweep,ort")
args = ap.parse_args()
skip = set(filter(None, args.skip.split(",")))
home_cache = os.environ.get("STRUMLAB_CACHE") or os.path.join(
    os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "strumlab")
synsets = open("experiments/data/imagenet-synsets.txt").read().split()


def build_folder(n):
    val = os.path.join(args.work, "val")
    stamp = os.path.join(args.work, f"val-{n}.done")
    if os.path.exists(stamp):
        return val
    shutil.rmtree(val, ignore_errors=True)
    src = os.path.join(home_cache, "imagenet-samples")
    samples = sorted(f for f in os.listdir(src) if f.endswith(".jpg"))
    blobs = [(int(f.rsplit("_", 1)[1].split(".")[0]), open(os.path.join(src, f), "rb").read()) for f in samples]
    for k in range(n):
        label, b = blobs[k % len(blobs)]
        assert b[:2] == b"\xff\xd8", "not a JPEG"
        text = f"strumlab scale copy {k}".encode()
        com = b"\xff\xfe" + (len(text) + 2).to_bytes(2, "big") + text
        d = os.path.join(val, synsets[label])
        os.makedirs(d, exist_ok=True)
        # names like ImageNet-val's (a prefix of the sorted listing covers few classes)
        with open(os.path.join(d, f"ILSVRC2012_val_{k:08d}.JPEG"), "wb") as f:
            f.write(b[:2] + com + b[2:])
    open(stamp, "w").close()
    return val


def fresh_cache():
    """An empty strumlab cache holding only the model weights (linked)."""
    c = os.path.join(args.work, "cache")
    shutil.rmtree(c, ignore_errors=True)
    os.makedirs(c)
    os.symlink(os.path.join(home_cache, "efficientnet-lite0.pth"), os.path.join(c, "efficientnet-lite0.pth"))
    return c


def run_rss(cmd, cache):
    """Run `cmd` through /usr/bin/time: (seconds, the child's peak RSS in MB, stdout)."""
    env = dict(os.environ, STRUMLAB_CACHE=cache)
    t = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-f", "MAXRSS_KB %M", *cmd], env=env, capture_output=True, text=True)
    el = time.perf_counter() - t
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed: {p.stderr[-2000:]}")
    kb = [int(l.split()[1]) for l in p.stderr.splitlines() if l.startswith("MAXRSS_KB")][-1]
    return el, kb / 1024, p.stdout


def evaluate(val, limit, label):
    rows = []
    cache = fresh_cache()
    for state in ("cold", "warm"):
        cmd = [args.bin, "eval", "--model", "effnet-lite0", "--data", val, "--json", "-q"]
        if limit:
            cmd += ["--limit", str(limit)]
        el, mb, out = run_rss(cmd, cache)
        s = json.loads(out)["summary"]
        rows.append({"run": label, "cache": state, "images": s["images"], "seconds": round(el, 1),
                     "images_per_s": round(s["images"] / el, 1), "peak_rss_mb": round(mb),
                     "top1": s["top1"], "fp32_top1": s["fp32_top1"]})
        print(rows[-1], flush=True)
    return rows


def ort_fp32(d):
    """onnxruntime FP32 images/s on the exported Lite0, best of batch 1 and 8."""
    import numpy as np, onnxruntime as ort, onnx
    subprocess.run([args.bin, "export", "--model", "effnet-lite0", "--limit", "64", "--out", d], check=True,
                   capture_output=True)
    meta = json.load(open(os.path.join(d, "meta.json")))
    x = np.fromfile(os.path.join(d, "inputs.f32"), dtype="<f4").reshape(meta["input_shape"])
    m = onnx.load(os.path.join(d, "model.onnx"))
    for t in list(m.graph.input) + list(m.graph.output):
        t.type.tensor_type.shape.dim[0].dim_param = "N"
    del m.graph.value_info[:]
    sym = os.path.join(d, "sym.onnx")
    onnx.save(m, sym)
    best = None
    for threads in (None, os.cpu_count()):
        so = ort.SessionOptions()
        if threads:
            so.intra_op_num_threads = threads
        s = ort.InferenceSession(sym, so, providers=["CPUExecutionProvider"])
        name = s.get_inputs()[0].name
        for b in (1, 8):
            chunks = [x[i:i + b] for i in range(0, len(x) - b + 1, b)]
            for c in chunks:
                s.run(None, {name: c})
            ips = 0.0
            for _ in range(3):
                n, t = 0, time.perf_counter()
                while time.perf_counter() - t < 2.0:
                    for c in chunks:
                        s.run(None, {name: c})
                        n += b
                ips = max(ips, n / (time.perf_counter() - t))
            if best is None or ips > best["images_per_s"]:
                best = {"images_per_s": round(ips, 1), "batch": b, "threads": threads or "default"}
    return best


def sweep(val):
    cache = fresh_cache()
    spec = os.path.join(args.work, "sweep.toml")
    open(spec, "w").write(
        'name = "scale-sweep"\n[base]\nmodel = "effnet-lite0"\nhw = ""\ndevice = "cpu"\nblock = 8\n'
        f'data = "{val}"\nlimit = {args.sweep_images}\n[matrix]\nscheme = ["mip2q", "dliq"]\nlow = [1, 2, 3, 4]\n')
    out = os.path.join(args.work, "sweep-out")
    shutil.rmtree(out, ignore_errors=True)
    el, mb, _ = run_rss([args.bin, "sweep", spec, "--out", out, "-q"], cache)
    return {"configs": 8, "images": args.sweep_images, "seconds": round(el, 1), "peak_rss_mb": round(mb)}


cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
val = build_folder(args.n)
res = {"cpu": cpu, "cores": os.cpu_count(), "folder_images": args.n, "evals": []}
if "small" not in skip:
    res["evals"] += evaluate(val, args.small, f"first {args.small}")
if "full" not in skip:
    res["evals"] += evaluate(val, None, f"all {args.n}")
if "sweep" not in skip:
    res["sweep"] = sweep(val)
    print(res["sweep"], flush=True)
if "ort" not in skip:
    d = os.path.join(args.work, "ort")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    res["onnxruntime_fp32"] = o = ort_fp32(d)
    o["seconds_80k"] = round(80000 / o["images_per_s"], 1)
    if "sweep" in res:
        res["sweep"]["ratio_over_onnxruntime"] = round(res["sweep"]["seconds"] / o["seconds_80k"], 2)
    print(o, flush=True)
os.makedirs(args.out, exist_ok=True)
json.dump(res, open(os.path.join(args.out, "scale.json"), "w"), indent=1)
md = [f"# Scale benchmark: EfficientNet-Lite0 (integer MIP2Q B8 L4 unless noted), {cpu}, {os.cpu_count()} cores", "",
      "| run | cache | images | s | images/s | peak RSS MB | top-1 | FP32 top-1 |", "|---|---|---|---|---|---|---|---|"]
for r in res["evals"]:
    md.append(f"| {r['run']} | {r['cache']} | {r['images']} | {r['seconds']} | {r['images_per_s']} | "
              f"{r['peak_rss_mb']} | {r['top1']} | {r['fp32_top1']} |")
if "sweep" in res:
    s = res["sweep"]
    md += ["", f"8-configuration sweep over {s['images']} JPEGs, cold caches, decoding included: {s['seconds']} s, "
           f"peak RSS {s['peak_rss_mb']} MB"]
if "onnxruntime_fp32" in res:
    o = res["onnxruntime_fp32"]
    md.append(f"onnxruntime FP32 (batch {o['batch']}, decoded input): {o['images_per_s']} images/s, "
              f"{o['seconds_80k']} s for 80k inferences" +
              (f"; ratio {res['sweep']['ratio_over_onnxruntime']}x" if "sweep" in res else ""))
open(os.path.join(args.out, "scale.md"), "w").write("\n".join(md) + "\n")
print("\n".join(md))
