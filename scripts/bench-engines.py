#!/usr/bin/env python3
"""Throughput of strumlab's CPU engine and its peers, in one run, on one machine.

Ours: integer MIP2Q B8 L4 (fast kernels), FP32 (fast kernels), integer MIP2Q B8 L4 with the
reference kernels; and, when the binary has it, `strumlab bench --peak` (its int8/FP32 GEMM
peak in GMAC/s).
Peers, on the same models and the same 64 exported images, each at its best batch among
1, 8 and 64 (the batch is reported):
  * onnxruntime CPU FP32 and static INT8 (QDQ, per-channel weights, MinMax calibration on the
    64 images), default session options and intra_op_num_threads = cores, the better kept;
  * OpenVINO CPU FP32 and INT8 (it reads the same QDQ file and runs it in INT8),
    PERFORMANCE_HINT THROUGHPUT, an AsyncInferQueue of OPTIMAL_NUMBER_OF_INFER_REQUESTS
    requests, the model reshaped to the batch; on a CPU with AMX (amx_int8) a second time in
    a subprocess with ONEDNN_MAX_CPU_ISA=AVX512_CORE_VNNI (the "VNNI-limited" columns).
Timing rule, every figure: a warm-up, then the best of 3 timed passes, each looping over the
data for at least 2 s (images counted). Ours: a short probe run, then --images scaled so that
one pass takes >= 2 s, --repeat 3.
GMAC/s = images/s x MACs per image (`strumlab inspect --json`, Conv + Dense) / 1e9, also per
core. Then (unless --no-sweep) the sweep benchmark: 8 StruM configurations x the 10k
Fashion-MNIST test images on fmnist-resnet (`strumlab sweep`) against onnxruntime's best FP32
time for the same 80k inferences.
Writes OUT/engines.json and OUT/engines.md.

Usage: scripts/peers-setup.sh   # the pinned peers in .venv-peers
       .venv-peers/bin/python scripts/bench-engines.py [--bin target/release/strumlab]
           [--out results/bench] [--models a,b] [--no-sweep] [--no-ours] [--gpu]
EfficientNet-Lite0 needs scripts/fetch-assets.sh.
"""
import argparse, json, math, os, platform, shutil, subprocess, sys, tempfile, time

import numpy as np

BATCHES = (1, 8, 64)
PASS_S = float(os.environ.get("BENCH_PASS_S", "2.0"))  # shorter only to test the script
PASSES = 3
VNNI_ENV = {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_VNNI"}


def timed(run, chunks):
    """Warm-up, then the best of PASSES passes of >= PASS_S s each over `chunks`: images/s."""
    t = time.perf_counter()
    while True:  # warm-up: one round over the data, and at least 0.3 s
        for c in chunks:
            run(c)
        if time.perf_counter() - t >= 0.3:
            break
    best = 0.0
    for _ in range(PASSES):
        n, t = 0, time.perf_counter()
        while True:
            for c in chunks:
                run(c)
                n += len(c)
            el = time.perf_counter() - t
            if el >= PASS_S:
                break
        best = max(best, n / el)
    return best


def chunked(x, b):
    return [x[i:i + b] for i in range(0, len(x), b)]


# --------------------------------------------------------------------------- OpenVINO worker
def ov_worker(job):
    """Run in a subprocess (its environment decides the ISA): measure OpenVINO on each file of
    `job` at each batch, print one JSON document."""
    import openvino as ov

    core = ov.Core()
    x = np.fromfile(job["inputs"], dtype="<f4").reshape(job["input_shape"])
    out = {"version": ov.get_version(), "env": {k: os.environ.get(k) for k in VNNI_ENV}, "runs": {}}
    for prec, (path, extra_cfg) in job["files"].items():
        res = {}
        for b in job["batches"]:
            try:
                m = core.read_model(path)
                m.reshape([b, *job["input_shape"][1:]])
                cfg = {"PERFORMANCE_HINT": "THROUGHPUT", **extra_cfg}
                try:
                    c = core.compile_model(m, "CPU", cfg)
                except RuntimeError as e:
                    # OpenVINO 2026.4 with AMX cannot compile some QDQ files under its default
                    # bf16 inference precision ("No suitable implementations"): retry in f32.
                    first = [l for l in str(e).strip().splitlines() if l.strip()][-1][:200]
                    cfg = dict(cfg, INFERENCE_PRECISION_HINT="f32")
                    c = core.compile_model(m, "CPU", cfg)
                    cfg["retry_because"] = first
                nreq = c.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")
                q = ov.AsyncInferQueue(c, nreq)
                chunks = [a for a in chunked(x, b) if len(a) == b]
                ips = timed(lambda a: q.start_async({0: a}), chunks)
                q.wait_all()
                # What the plugin runs: precisions and implementations of the heavy nodes.
                impl, prec_counts = {}, {}
                for op in c.get_runtime_model().get_ops():
                    rt = op.get_rt_info()
                    get = lambda k: rt[k].astype(str) if k in rt.keys() else "?"
                    if get("layerType") in ("Convolution", "FullyConnected", "MatMul", "GroupConvolution"):
                        p, k = get("runtimePrecision"), get("primitiveType")
                        prec_counts[p] = prec_counts.get(p, 0) + 1
                        impl[k] = impl.get(k, 0) + 1
                kinds = {}
                for k, cnt in impl.items():
                    kk = "int8" if ("i8" in k.lower() or "u8" in k.lower()) else "bf16" if "bf16" in k else "f32"
                    kinds[kk] = kinds.get(kk, 0) + cnt
                res[b] = {"images_per_s": ips, "infer_requests": nreq, "config": cfg, "primitive_kinds": kinds,
                          "inference_precision": str(c.get_property("INFERENCE_PRECISION_HINT")).split("'")[1]
                          if "'" in str(c.get_property("INFERENCE_PRECISION_HINT")) else str(c.get_property("INFERENCE_PRECISION_HINT")),
                          "runtime_precision": prec_counts, "primitives": impl}
            except Exception as e:  # report, keep going
                res[b] = {"error": f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300] if str(e).strip() else ''}"}
        out["runs"][prec] = res
    print(json.dumps(out))


if len(sys.argv) == 3 and sys.argv[1] == "--ov-worker":
    ov_worker(json.load(open(sys.argv[2])))
    sys.exit(0)

# --------------------------------------------------------------------------- main
import logging

import onnx
import onnxruntime as ort

ort.set_default_logger_severity(3)  # no graph-cleanup warnings
logging.getLogger().setLevel(logging.ERROR)  # nor the quantizer's advice

ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
ap.add_argument("--bin", default="target/release/strumlab")
ap.add_argument("--out", default="results/bench")
ap.add_argument("--models", default="mnist-8,fmnist-resnet,fmnist-mobilenetv2,fmnist-vgg,effnet-lite0")
ap.add_argument("--no-sweep", action="store_true")
ap.add_argument("--no-ours", action="store_true", help="peers only")
ap.add_argument("--gpu", action="store_true", help="also our GPU engine (any adapter), integer MIP2Q and FP32")
args = ap.parse_args()
os.makedirs(args.out, exist_ok=True)
os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.mkdtemp())

cores = os.cpu_count()
cpuinfo = open("/proc/cpuinfo").read() if os.path.exists("/proc/cpuinfo") else ""
cpu = next((l.split(":", 1)[1].strip() for l in cpuinfo.splitlines() if l.startswith("model name")), platform.processor() or "unknown")
flagset = set(next((l.split(":", 1)[1].split() for l in cpuinfo.splitlines() if l.startswith("flags")), []))
ISA_NAMES = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16")
isa = {f: f in flagset for f in ISA_NAMES}
has_amx = isa["amx_int8"]
import openvino  # noqa: E402  (versions only; the measurements run in subprocesses)
versions = {"onnxruntime": ort.__version__, "openvino": openvino.get_version(), "onnx": onnx.__version__,
            "numpy": np.__version__, "python": platform.python_version()}
machine = {"cpu": cpu, "cores": cores, "isa": isa, "os": f"{platform.system()} {platform.release()} {platform.machine()}",
           "load_avg_at_start": [round(v, 2) for v in os.getloadavg()]}
print(f"machine: {cpu}, {cores} logical cores, "
      f"ISA: {' '.join(f for f, v in isa.items() if v)}; load {machine['load_avg_at_start']}", flush=True)
print("peers: " + ", ".join(f"{k} {v}" for k, v in versions.items()), flush=True)


def sh(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, check=True, **kw)


def exported(model, d, n=64):
    sh([args.bin, "export", "--model", model, "--limit", str(n), "--out", d])
    meta = json.load(open(os.path.join(d, "meta.json")))
    x = np.fromfile(os.path.join(d, "inputs.f32"), dtype="<f4").reshape(meta["input_shape"])
    onnx_path = "experiments/data/mnist-8.onnx" if model == "mnist-8" else os.path.join(d, "model.onnx")
    return onnx_path, x


def symbolic_batch(src, dst):
    """A copy with dim 0 of every graph input/output symbolic ("N") and no value_info, so that
    peers can run any batch; a Reshape to a constant shape that starts with 1 (a batch of one
    baked into the file, as mnist-8's) gets -1 there."""
    m = onnx.load(src)
    inits = {i.name for i in m.graph.initializer}
    for v in list(m.graph.input) + list(m.graph.output):
        if v.name in inits or not v.type.tensor_type.HasField("shape") or not v.type.tensor_type.shape.dim:
            continue
        d0 = v.type.tensor_type.shape.dim[0]
        d0.Clear()
        d0.dim_param = "N"
    del m.graph.value_info[:]
    consts = {i.name: i for i in m.graph.initializer}
    for n in m.graph.node:
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
            consts[n.output[0]] = n.attribute[0].t
    for n in m.graph.node:
        if n.op_type != "Reshape" or n.input[1] not in consts or n.input[0] in inits:
            continue
        t = consts[n.input[1]]
        shape = onnx.numpy_helper.to_array(t)
        users = sum(n.input[1] in o.input for o in m.graph.node)
        if shape.ndim == 1 and len(shape) >= 2 and shape[0] == 1 and -1 not in shape and users == 1:
            shape = shape.copy()
            shape[0] = -1  # in place: an IR-3 file lists its initializers as graph inputs too
            t.CopyFrom(onnx.numpy_helper.from_array(shape.astype(np.int64), t.name))
    onnx.save(m, dst)
    return dst


def qdq(onnx_path, x, d, act="s8"):
    """Static INT8 QDQ model (per-channel INT8 weights, INT8 (`act` s8) or UINT8 (u8) activations,
    MinMax calibration on `x`, one image per call)."""
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    name = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"]).get_inputs()[0].name
    note = None
    m = onnx.load(onnx_path)
    opset = next((o.version for o in m.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < 13:
        # Per-channel Q/DQ (an axis) needs opset 13; onnxruntime would move an older file
        # (mnist-8: opset 8) to 11 only, which OpenVINO then cannot read.
        from onnx import version_converter
        onnx_path = os.path.join(d, "opset13.onnx")
        onnx.save(version_converter.convert_version(m, 13), onnx_path)
        note = f"opset {opset} converted to 13 before quantization"

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{name: x[i:i + 1]} for i in range(len(x))])

        def get_next(self):
            return next(self.it, None)

    pre = os.path.join(d, "pre.onnx")
    try:
        quant_pre_process(onnx_path, pre)
    except Exception as e:
        note = ((note + "; ") if note else "") + f"quant_pre_process failed ({type(e).__name__}: {str(e)[:160]}); quantized without it"
        shutil.copy(onnx_path, pre)
    # A Gemm bias of shape [1, N] (mnist-8's, after the MatMul + Add fusion) would be quantized
    # per channel along its axis of 1 with N scales, which OpenVINO rejects: make it [N].
    m = onnx.load(pre)
    inits = {i.name: i for i in m.graph.initializer}
    for n in m.graph.node:
        if n.op_type == "Gemm" and len(n.input) > 2 and n.input[2] in inits:
            b = inits[n.input[2]]
            if len(b.dims) == 2 and b.dims[0] == 1 and sum(n.input[2] in o.input for o in m.graph.node) == 1:
                b.CopyFrom(onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(b).reshape(-1), b.name))
                for gi in m.graph.input:  # an IR-3 file lists initializers as inputs too
                    if gi.name == b.name:
                        gi.CopyFrom(onnx.helper.make_tensor_value_info(b.name, b.data_type, [b.dims[0]]))
    onnx.save(m, pre)
    out = os.path.join(d, f"qdq_{act}.onnx")
    kw = dict(quant_format=QuantFormat.QDQ, per_channel=True,
              activation_type=QuantType.QInt8 if act == "s8" else QuantType.QUInt8,
              weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax)
    try:
        quantize_static(pre, out, Reader(), **kw)
    except ValueError as e:
        # onnxruntime 1.32's weight-scale adjustment for INT32 biases breaks on a bias that is a
        # broadcast Add operand (mnist-8: shape [C, 1, 1]); retry without that adjustment.
        quantize_static(pre, out, Reader(), **kw, extra_options={"QDQDisableWeightAdjustForInt32Bias": True})
        note = ((note + "; ") if note else "") + (f"quantize_static failed ({str(e)[:120]}); quantized with "
                                                 "QDQDisableWeightAdjustForInt32Bias")
    return out, note


def ort_best(onnx_path, x, ref=None):
    """onnxruntime CPU at each batch, default options and intra_op_num_threads = cores."""
    runs, best = {}, None
    for threads in (None, cores):
        so = ort.SessionOptions()
        if threads:
            so.intra_op_num_threads = threads
        s = ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])
        name = s.get_inputs()[0].name
        for b in BATCHES:
            key = f"b{b}-{'default' if threads is None else f'threads{threads}'}"
            try:
                chunks = [a for a in chunked(x, b) if len(a) == b]
                y = s.run(None, {name: chunks[0]})[0]
                if ref is not None and not np.allclose(y, ref[:b], rtol=1e-3, atol=1e-3):
                    raise ValueError("batch-b logits differ from batch 1's")
                ips = timed(lambda a: s.run(None, {name: a}), chunks)
                runs[key] = round(ips, 2)
                if best is None or ips > best["images_per_s"]:
                    best = {"images_per_s": round(ips, 2), "batch": b,
                            "options": "default" if threads is None else f"intra_op_num_threads={threads}"}
            except Exception as e:
                runs[key] = f"failed: {type(e).__name__}: {str(e)[:200]}"
    return best, runs


def ov_measure(files, x, input_path, extra_env):
    job = {"files": files, "inputs": input_path, "input_shape": list(x.shape), "batches": list(BATCHES)}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(job, f)
    try:
        r = subprocess.run([sys.executable, os.path.abspath(__file__), "--ov-worker", f.name], capture_output=True,
                           text=True, env=dict(os.environ, **extra_env))
    finally:
        os.unlink(f.name)
    if r.returncode != 0:
        return None, {"error": r.stderr.strip()[-500:]}
    doc = json.loads(r.stdout.strip().splitlines()[-1])
    best = {}
    for prec, res in doc["runs"].items():
        ok = [(v["images_per_s"], int(b)) for b, v in res.items() if "images_per_s" in v]
        if ok:
            ips, b = max(ok)
            v = res[str(b)] if str(b) in res else res[b]
            best[prec] = {"images_per_s": round(ips, 2), "batch": b, **{k: v[k] for k in v if k != "images_per_s"}}
        else:
            best[prec] = None
    return best, doc


def ours(model, mode, scheme, kernels="fast", device="cpu"):
    """Probe, then --images scaled to >= 2 s per pass, --repeat 3: images/s."""
    base = [args.bin, "bench", "--model", model, "--mode", mode, "--scheme", scheme, "--block", "8", "--low", "4",
            "--device", device, "--batch", "64", "--json", "--kernels", kernels]
    ips = json.loads(sh(base + ["--images", "16", "--repeat", "1"]).stdout)["images_per_s"]
    for _ in range(3):  # a cold probe may underestimate the speed: rescale until a pass is >= 2 s
        n = max(16, int(math.ceil(ips * PASS_S * 1.15)))
        r = json.loads(sh(base + ["--images", str(n), "--repeat", str(PASSES)]).stdout)
        ips = r["images_per_s"]
        if n / ips >= PASS_S:
            break
    return {"images_per_s": round(r["images_per_s"], 2), "images_per_pass": n, "config": r.get("config"),
            "device": r.get("device")}


def peak():
    """`strumlab bench --peak --json` if the binary has it."""
    if "--peak" not in sh([args.bin, "bench", "--help"]).stdout:
        return {"int8_gmacs": None, "fp32_gmacs": None, "note": "this strumlab has no `bench --peak`"}
    try:
        raw = json.loads(sh([args.bin, "bench", "--peak", "--json"]).stdout)
    except Exception as e:
        return {"int8_gmacs": None, "fp32_gmacs": None, "note": f"bench --peak failed: {e}"}
    flat = {}

    def walk(o, p=""):
        if isinstance(o, dict):
            for k, v in o.items():
                walk(v, f"{p}{k}.")
        elif isinstance(o, (int, float)):
            flat[p[:-1]] = o
    walk(raw)
    pick = lambda w: next((v for k, v in flat.items() if w in k.lower() and "gmac" in k.lower()), None)
    return {"int8_gmacs": pick("int8") or pick("i8"), "fp32_gmacs": pick("fp32") or pick("f32"), "raw": raw}


def macs_of(onnx_or_model):
    d = json.loads(sh([args.bin, "inspect", onnx_or_model, "--json"]).stdout)
    s = sum(n["macs"] for n in d["nodes"] if n["op"] in ("Conv", "Dense", "Gemm", "MatMul", "ConvTranspose"))
    return s or d["macs"]


def gmacs(ips, macs):
    if ips is None:
        return None
    g = ips * macs / 1e9
    return {"gmacs": round(g, 2), "gmacs_per_core": round(g / cores, 2)}


def fmt(e):
    return "–" if not e else f"{e['images_per_s']:,.1f} (b{e['batch']}{', ' + e['activations'] if 'activations' in e else ''})"


results, notes = [], []
peak_info = None if args.no_ours else peak()
if peak_info is not None and peak_info.get("note"):
    notes.append(peak_info["note"])
ort_fp32_resnet = None
for model in args.models.split(","):
    t_model = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        onnx_path, x0 = exported(model, d)
        # Calibration on the exported images; timing on 64 (repeated when the model card's
        # dataset has fewer, e.g. the 20 ImageNet images of effnet-lite0).
        x = np.concatenate([x0] * math.ceil(64 / len(x0)))[:64]
        inputs = os.path.join(d, "inputs64.f32")
        x.astype("<f4").tofile(inputs)
        macs = macs_of(model)
        sym = symbolic_batch(onnx_path, os.path.join(d, "sym.onnx"))
        row = {"model": model, "macs_per_image": macs, "input_shape": list(x.shape[1:]), "exported_images": len(x0),
               "peers": {}, "notes": []}
        # batch-1 logits of the original file: the check that batch 8/64 of the copy is the same model
        s1 = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
        ref = np.concatenate([s1.run(None, {s1.get_inputs()[0].name: x[i:i + 1]})[0] for i in range(len(x))])
        p32, p32_runs = ort_best(sym, x, ref)
        row["peers"]["onnxruntime_fp32"] = dict(p32 or {}, runs=p32_runs)
        if model == "fmnist-resnet":
            ort_fp32_resnet = p32
        # Two QDQ files: S8S8 (INT8 activations, the old script's) and U8S8 (UINT8 activations,
        # the x86 VNNI/AMX native pairing; OpenVINO 2026.4 with AMX compiles S8 activations only
        # at f32 inference precision, running most layers in f32). Each peer keeps its best.
        qs = {}
        for act in ("s8", "u8"):
            try:
                qs[act], qnote = qdq(sym, x0, d, act)
            except Exception as e:
                qnote = f"onnxruntime static INT8 QDQ ({act} activations) failed: {type(e).__name__}: {str(e).strip()[:300]}"
            if qnote and qnote not in row["notes"]:
                row["notes"].append(qnote)
                print(f"{model}: {qnote}", flush=True)
        best8, runs8 = None, {}
        for act, q in qs.items():
            p8, p8_runs = ort_best(q, x)
            s8 = ort.InferenceSession(q, providers=["CPUExecutionProvider"])
            y8 = np.concatenate([s8.run(None, {s8.get_inputs()[0].name: x[i:i + 1]})[0] for i in range(len(x))])
            agree = float((y8.argmax(1) == ref.argmax(1)).mean())
            if p8 and (best8 is None or p8["images_per_s"] > best8["images_per_s"]):
                best8 = dict(p8, activations=act, top1_agreement_with_fp32_64_images=agree)
            runs8[act] = p8_runs
        if best8:
            best8["runs"] = runs8
            best8["by_activation"] = {a: max([v for v in r.values() if isinstance(v, float)], default=None) for a, r in runs8.items()}
        row["peers"]["onnxruntime_int8_qdq"] = best8
        files = {"fp32": (sym, {}), **{f"int8_{a}": (q, {}) for a, q in qs.items()}}
        for tag, env in [("amx", {})] + ([("vnni", VNNI_ENV)] if has_amx else []):
            # OpenVINO's default inference precision is bf16 on a CPU with bf16 (its "FP32" runs
            # bf16 there): once more with INFERENCE_PRECISION_HINT=f32 for a true FP32 figure.
            f = dict(files, fp32_f32hint=(sym, {"INFERENCE_PRECISION_HINT": "f32"})) if tag == "amx" else files
            best, doc = ov_measure(f, x, inputs, env)
            label = "AMX allowed" if tag == "amx" else "ONEDNN_MAX_CPU_ISA=AVX512_CORE_VNNI"
            if best is None:
                row["notes"].append(f"openvino ({label}) failed: {doc['error']}")
                best = {}
            for prec in ("fp32", "int8_s8", "int8_u8") + (("fp32_f32hint",) if tag == "amx" else ()):
                e = best.get(prec)
                errs = {b: v["error"] for b, v in doc.get("runs", {}).get(prec, {}).items() if "error" in v}
                if errs:
                    row["notes"].append(f"openvino {prec} ({label}) failed at batch {', '.join(errs)}: {next(iter(errs.values()))}")
                if e and prec.startswith("int8") and set(e.get("primitive_kinds", {})) - {"int8"}:
                    k = e["primitive_kinds"]
                    row["notes"].append(f"openvino int8 ({label}), batch {e['batch']}: {k.get('int8', 0)} of {sum(k.values())} "
                                        f"Conv/FC primitives run int8 ({prec[-2:]} activations), the rest {', '.join(x for x in k if x != 'int8')}")
                if e and "retry_because" in e.get("config", {}):
                    row["notes"].append(f"openvino {prec} ({label}): default config failed to compile "
                                        f"({e['config']['retry_because']}); ran with INFERENCE_PRECISION_HINT=f32")
                row["peers"][f"openvino_{prec}_{tag}"] = None if e is None else dict(e, isa=label, runs={
                    str(b): (round(v["images_per_s"], 2) if "images_per_s" in v else v["error"])
                    for b, v in doc.get("runs", {}).get(prec, {}).items()})
            # INT8: the better of the two activation types
            cand = [(row["peers"].pop(f"openvino_int8_{a}_{tag}"), a) for a in ("s8", "u8")]
            ok = [(e, a) for e, a in cand if e]
            e8 = None
            if ok:
                e, a = max(ok, key=lambda t: t[0]["images_per_s"])
                e8 = dict(e, activations=a, by_activation={aa: (ee["images_per_s"] if ee else None) for ee, aa in cand},
                          runs={aa: (ee["runs"] if ee else None) for ee, aa in cand})
            row["peers"][f"openvino_int8_{tag}"] = e8
        peers_line = (f"{model:18s} ort fp32 {fmt(row['peers']['onnxruntime_fp32'])}  ort int8 {fmt(row['peers']['onnxruntime_int8_qdq'])}  "
                      f"ov fp32 {fmt(row['peers'].get('openvino_fp32_amx'))} (f32 hint {fmt(row['peers'].get('openvino_fp32_f32hint_amx'))})  "
                      f"ov int8 {fmt(row['peers'].get('openvino_int8_amx'))}")
        if has_amx:
            peers_line += (f"  | vnni-limited: ov fp32 {fmt(row['peers'].get('openvino_fp32_vnni'))}  "
                           f"ov int8 {fmt(row['peers'].get('openvino_int8_vnni'))}")
        print(peers_line + "   images/s (batch)", flush=True)
    for k, e in row["peers"].items():
        if e:
            e.update(gmacs(e["images_per_s"], macs))
    if not args.no_ours:
        row["ours"] = {}
        for key, mode, scheme, kernels in [("integer_mip2q_b8_l4_fast", "integer", "mip2q", "fast"),
                                           ("fp32_fast", "fp32", "fp32", "fast"),
                                           ("integer_mip2q_b8_l4_reference", "integer", "mip2q", "reference")]:
            o = ours(model, mode, scheme, kernels)
            o.update(gmacs(o["images_per_s"], macs))
            row["ours"][key] = o
            if args.gpu and kernels == "fast":
                g = ours(model, mode, scheme, kernels, device="gpu")
                g.update(gmacs(g["images_per_s"], macs))
                row["ours"][key.replace("_fast", "_gpu")] = g
        mine = row["ours"]["integer_mip2q_b8_l4_fast"]["images_per_s"]
        ratio = lambda k: None if not row["peers"].get(k) else round(mine / row["peers"][k]["images_per_s"], 3)
        row["ratios"] = {"ours_integer_over_ort_fp32_best": ratio("onnxruntime_fp32"),
                         "ours_integer_over_ort_int8_best": ratio("onnxruntime_int8_qdq"),
                         "ours_integer_over_openvino_int8_best_amx": ratio("openvino_int8_amx"),
                         "ours_integer_over_openvino_int8_best_vnni": ratio("openvino_int8_vnni")}
        o = row["ours"]
        print(f"{model:18s} ours integer MIP2Q B8 L4 {o['integer_mip2q_b8_l4_fast']['images_per_s']:,.1f}  "
              f"fp32 {o['fp32_fast']['images_per_s']:,.1f}  reference {o['integer_mip2q_b8_l4_reference']['images_per_s']:,.1f}  "
              f"({o['integer_mip2q_b8_l4_fast']['gmacs']} GMAC/s)  ratios: / ort fp32 {row['ratios']['ours_integer_over_ort_fp32_best']}  "
              f"/ ov int8 amx {row['ratios']['ours_integer_over_openvino_int8_best_amx']}  "
              f"/ ov int8 vnni {row['ratios']['ours_integer_over_openvino_int8_best_vnni']}", flush=True)
    row["wall_s"] = round(time.perf_counter() - t_model, 1)
    results.append(row)

sweep = None
if not args.no_sweep and not args.no_ours:
    with tempfile.TemporaryDirectory() as d:
        spec = os.path.join(d, "sweep.toml")
        open(spec, "w").write('name = "bench-sweep"\n[base]\nmodel = "fmnist-resnet"\nhw = ""\ndevice = "cpu"\nblock = 8\n'
                              '[matrix]\nscheme = ["mip2q", "dliq"]\nlow = [1, 2, 3, 4]\n')
        # A fresh reference cache: the timed sweep includes its one FP32 pass and calibration.
        env = dict(os.environ, STRUMLAB_CACHE=os.path.join(d, "cache"))
        t = time.perf_counter()
        sh([args.bin, "sweep", spec, "--out", os.path.join(d, "out")], env=env)
        ours_s = time.perf_counter() - t
        if ort_fp32_resnet is None:
            onnx_path, x = exported("fmnist-resnet", d)
            ort_fp32_resnet, _ = ort_best(symbolic_batch(onnx_path, os.path.join(d, "sym.onnx")), x)
    peer_s = 80000 / ort_fp32_resnet["images_per_s"]
    sweep = {"what": "8 StruM configurations (MIP2Q, DLIQ; B = 8, L = 1..4) x 10,000 Fashion-MNIST test images on fmnist-resnet",
             "strumlab_sweep_s": round(ours_s, 1), "onnxruntime_fp32_80k_inferences_s": round(peer_s, 1),
             "onnxruntime_fp32_batch": ort_fp32_resnet["batch"], "onnxruntime_fp32_options": ort_fp32_resnet["options"],
             "ratio_sweep_over_onnxruntime": round(ours_s / peer_s, 2)}
    print(f"sweep: strumlab {ours_s:.1f} s, onnxruntime FP32 (batch {ort_fp32_resnet['batch']}) for the same 80k "
          f"inferences {peer_s:.1f} s, ratio {ours_s / peer_s:.2f}", flush=True)

machine["load_avg_at_end"] = [round(v, 2) for v in os.getloadavg()]
doc = {"machine": machine, "versions": versions, "timing": f"best of {PASSES} passes of >= {PASS_S} s after a warm-up; "
       f"peers at their best batch of {list(BATCHES)}", "ours_peak": peak_info, "models": results, "sweep": sweep,
       "notes": notes}
json.dump(doc, open(os.path.join(args.out, "engines.json"), "w"), indent=1)

# Markdown table
P = lambda r, k: fmt(r["peers"].get(k))
cols = ["model", "ORT FP32", "ORT INT8 QDQ", "OV FP32 (AMX)", "OV FP32 f32 hint", "OV INT8 (AMX)"]
if has_amx:
    cols += ["OV FP32 (VNNI)", "OV INT8 (VNNI)"]
if not args.no_ours:
    cols += ["ours integer MIP2Q B8 L4", "ours FP32", "ours reference", "ours GMAC/s (per core)",
             "ours / ORT FP32", "ours / OV INT8 (AMX)"] + (["ours / OV INT8 (VNNI)"] if has_amx else [])
lines = [f"Images/s (best batch), {cpu}, {cores} cores, "
         f"{', '.join(f for f in ('avx512_vnni', 'avx_vnni', 'amx_int8') if isa[f])}; "
         + ", ".join(f"{k} {v}" for k, v in versions.items() if k != "python") + "; " + doc["timing"] + ".", "",
         "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
for r in results:
    c = [r["model"], P(r, "onnxruntime_fp32"), P(r, "onnxruntime_int8_qdq"), P(r, "openvino_fp32_amx"),
         P(r, "openvino_fp32_f32hint_amx"), P(r, "openvino_int8_amx")]
    if has_amx:
        c += [P(r, "openvino_fp32_vnni"), P(r, "openvino_int8_vnni")]
    if not args.no_ours:
        o, ra = r["ours"], r["ratios"]
        c += [f"{o['integer_mip2q_b8_l4_fast']['images_per_s']:,.1f}", f"{o['fp32_fast']['images_per_s']:,.1f}",
              f"{o['integer_mip2q_b8_l4_reference']['images_per_s']:,.1f}",
              f"{o['integer_mip2q_b8_l4_fast']['gmacs']} ({o['integer_mip2q_b8_l4_fast']['gmacs_per_core']})"]
        c += [("–" if v is None else f"{v:.2f}x") for k, v in ra.items() if k != "ours_integer_over_ort_int8_best"
              and (has_amx or not k.endswith("vnni"))]
    lines.append("| " + " | ".join(c) + " |")
extra = [n for r in results for n in (f"{r['model']}: {m}" for m in r["notes"])] + notes
if peak_info:
    extra.append(f"ours peak: int8 {peak_info['int8_gmacs']} GMAC/s, FP32 {peak_info['fp32_gmacs']} GMAC/s")
if sweep:
    extra.append(f"sweep: strumlab {sweep['strumlab_sweep_s']} s vs onnxruntime FP32 {sweep['onnxruntime_fp32_80k_inferences_s']} s "
                 f"for the same 80k inferences: {sweep['ratio_sweep_over_onnxruntime']}x")
extra.insert(0, "OV FP32 = OpenVINO at its default inference precision (bf16 on a CPU with avx512_bf16/AMX); "
             "OV FP32 f32 hint = INFERENCE_PRECISION_HINT f32; (VNNI) = run with ONEDNN_MAX_CPU_ISA=AVX512_CORE_VNNI; "
             f"load average at start {machine['load_avg_at_start']}, at end {machine['load_avg_at_end']}")
lines += [""] + [f"- {n}" for n in extra]
open(os.path.join(args.out, "engines.md"), "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
print(f"written to {args.out}/engines.json and {args.out}/engines.md")
