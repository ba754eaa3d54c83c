"""strumlab from Python: StruM structured mixed-precision quantization, evaluation of
quantized CNNs on your images or numpy arrays, results as pandas DataFrames.

Every computation is the Rust library's (the same code as the `strumlab` CLI); this module
only converts arguments and results. Column names are those of docs/csv-schemas.md.

    import strumlab
    m = strumlab.load_model("fmnist-resnet")
    q = strumlab.quantize(m, "mip2q", block=8, low=4)
    r = strumlab.evaluate(m, images_u8, labels=labels, scheme="mip2q", low=4)
    r.summary["top1"], r.layers[["layer", "output_sqnr_db"]]
"""
from __future__ import annotations

import io
import json
import os
import tempfile
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd

from . import _strumlab
from ._errors import InvalidArgument, NotFound, StrumlabError
from ._strumlab import Model

__version__: str = _strumlab.__version__

__all__ = [
    "Model", "LayerWeights", "Quantized", "Evaluation", "Hardware", "load_model", "quantize", "evaluate",
    "hw", "sweep", "search", "Search", "StrumlabError", "InvalidArgument", "NotFound", "__version__",
]


def load_model(spec: str, card: Optional[str] = None, input_shape: Optional[Sequence[int]] = None) -> Model:
    """A zoo model by name (``mnist-8``, ``fmnist-resnet``, ``effnet-lite0``, ...) or an ONNX
    file; ``card``: a model card TOML (preprocessing); ``input_shape``: for symbolic inputs."""
    return _strumlab.load_model(str(spec), None if card is None else str(card),
                                None if input_shape is None else [int(d) for d in input_shape])


def _quant(scheme: str, block: int, low: int, options: dict) -> dict:
    q = {"scheme": scheme, "block": int(block), "low": int(low)}
    q.update(options)
    return q


@dataclass
class LayerWeights:
    """One quantized layer: integer weights ``q`` (scale units; absent for FP32), the class
    mask (0: INT8, 1: 4-bit, 2: zero), the dequantized FP32 weights ``deq`` (what the
    quantized layer computes with: load these into your own PyTorch model) and the scales
    (per output channel, or per block for MX)."""
    name: str
    deq: np.ndarray
    q: Optional[np.ndarray]
    mask: Optional[np.ndarray]
    scales: np.ndarray


@dataclass
class Quantized:
    """The result of :func:`quantize`: the model summary, per-layer statistics (one row per
    weight layer) and each layer's weights by name."""
    summary: dict
    layers: pd.DataFrame
    weights: dict = field(repr=False)


def quantize(model: Model, scheme: str = "int8", block: int = 8, low: int = 4, **options: Any) -> Quantized:
    """Quantize every weight layer of ``model``. ``options`` are the quantization parameters
    of docs/quantization.md by their TOML names (``selection="error"``,
    ``block_axis="flat"``, ``l_policy="dynamic"``, ...); an unknown one raises
    :class:`InvalidArgument` naming it."""
    summary, layers = _strumlab.quantize(model, json.dumps(_quant(scheme, block, low, options)))
    rows, weights = [], {}
    for l in layers:
        stats = json.loads(l["stats"])
        rows.append({"layer": l["name"], "kind": l["kind"], "applied": l["applied"],
                     "reason": l["reason"], "shape": tuple(l["shape"]), **stats})
        weights[l["name"]] = LayerWeights(l["name"], l["deq"], l.get("q"), l.get("mask"), l["scales"])
    return Quantized(json.loads(summary), pd.DataFrame(rows), weights)


@dataclass
class Evaluation:
    """The result of :func:`evaluate`: ``summary`` (top-1/top-5, FP32 top-1, the paired
    change with its 95 % interval and McNemar p, agreement, KL, bits per weight), per-layer
    activity and SQNR (``layers``, the columns of the eval CSV), and the whole ``eval --json``
    document (``raw``)."""
    summary: dict
    layers: pd.DataFrame
    raw: dict = field(repr=False)


def _progress(p: Any) -> Any:
    """A progress callable ``(label, done, total)`` as given, or one that drives a
    tqdm-compatible object (``update``, and ``reset`` / ``set_description`` when it has them)."""
    if p is None or not hasattr(p, "update"):
        return p
    state = {"label": None, "done": 0}

    def cb(label: str, done: int, total: int) -> None:
        if label != state["label"]:
            state["label"], state["done"] = label, 0
            if hasattr(p, "reset"):
                p.reset(total=total)
            else:
                p.total = total
            if hasattr(p, "set_description"):
                p.set_description(label)
        p.update(done - state["done"])
        state["done"] = done

    return cb


def _data(data: Any, labels: Any) -> tuple:
    """An iterable of batches (arrays, or (array, labels) pairs, e.g. a torch DataLoader's
    batches converted with ``.numpy()``) joined into one array and its labels; anything else
    as given."""
    if isinstance(data, (str, bytes, os.PathLike, np.ndarray)) or not hasattr(data, "__iter__"):
        return data, labels
    if labels is not None:
        raise InvalidArgument("labels: give them inside the batches, as (images, labels) pairs")
    xs, ys = [], []
    for b in data:
        x, y = (b[0], b[1]) if isinstance(b, (tuple, list)) else (b, None)
        xs.append(np.asarray(x))
        ys.append(None if y is None else np.asarray(y).ravel())
    if not xs:
        raise InvalidArgument("data: the iterable gave no batches")
    if any(y is None for y in ys) and not all(y is None for y in ys):
        raise InvalidArgument("data: some batches have labels and some do not")
    return np.concatenate(xs), (None if ys[0] is None else np.concatenate(ys))


def evaluate(model: Model, data: Any, labels: Optional[Sequence[int]] = None, *, scheme: str = "int8",
             block: int = 8, low: int = 4, mode: Optional[str] = None, device: str = "cpu",
             limit: Optional[int] = None, calib_images: int = 64, act_calib: str = "max",
             act_percentile: float = 99.99, cache: bool = True, progress: Any = None,
             **options: Any) -> Evaluation:
    """Evaluate ``model`` quantized with ``scheme`` against its FP32 run on ``data``: a
    dataset name (``fashion-test``, ``imagenet-samples``, ...), an image folder or IDX file,
    or a numpy array: ``uint8`` raw pixels (N x H x W, N x H x W x C or N x C x H x W) get the
    model card's preprocessing; ``float32`` arrays are taken as the model's preprocessed
    input; or an iterable of such batches (or of (batch, labels) pairs). ``labels`` (class
    indices) enable accuracy on arrays. ``progress``: a callable ``(label, done, total)``
    or a tqdm-compatible object, updated every 50 ms; Ctrl-C stops the run and raises
    ``KeyboardInterrupt``. The GIL is released while
    the Rust engine runs."""
    data, labels = _data(data, labels)
    if isinstance(data, np.ndarray):
        if data.dtype not in (np.uint8, np.float32):
            raise InvalidArgument(f"data: numpy arrays must be uint8 pixels or float32 inputs, not {data.dtype}")
        data = np.ascontiguousarray(data)
    elif not isinstance(data, str):
        data = str(data)
    cfg = {"quant": _quant(scheme, block, low, options), "mode": mode, "device": device, "limit": limit,
           "calib_images": int(calib_images), "act_calib": act_calib, "act_percentile": float(act_percentile),
           "cache": bool(cache)}
    lab = None if labels is None else [int(v) for v in np.asarray(labels).ravel()]
    doc, rows = _strumlab.evaluate(model, data, json.dumps(cfg), lab, _progress(progress))
    raw = json.loads(doc)
    # the layer column is named as in the eval CSV
    layers = pd.DataFrame(json.loads(rows)).rename(columns={"name": "layer"})
    return Evaluation(raw["summary"], layers, raw)


@dataclass
class Hardware:
    """The result of :func:`hw`: the FlexNN figures (``summary``: PE, PE-array and DPU area
    and power of the INT8 baseline and of StruM, next to the paper's claims), the per-layer
    mapping and energy (``layers``, the columns of the hw CSV of docs/csv-schemas.md) and the
    whole ``hw --json`` document (``raw``)."""
    summary: dict
    layers: pd.DataFrame
    raw: dict = field(repr=False)


def _stats_csv(ev: Evaluation, path: str) -> None:
    """Write an evaluation's per-layer activity as the eval CSV columns ``hw`` reads."""
    keep = ["act_zero_frac", "weight_zero_frac", "macs_w_high_per_image", "macs_w_low_per_image",
            "macs_w_zero_per_image", "macs_nz_act_w_high_per_image", "macs_nz_act_w_low_per_image",
            "macs_nz_act_w_zero_per_image"]
    df = ev.layers[["layer", *keep]]
    df.insert(0, "config", ev.raw["label"])
    df.insert(0, "schema_version", ev.raw["schema_version"])
    df.to_csv(path, index=False)


def hw(model: Model, scheme: str = "int8", block: int = 8, low: int = 4, *, stats: Any = None,
       variant: Optional[str] = None, boundary: Optional[str] = None,
       arch: str = "experiments/hw/flexnn.toml", claims: str = "experiments/hw/strum-claims.toml",
       **options: Any) -> Hardware:
    """FlexNN PE / PE-array / DPU area and power of ``model`` quantized with ``scheme``
    (as ``strumlab hw``). ``stats``: the measured per-layer activity, an :class:`Evaluation`
    of the same scheme or the path of an eval CSV (without it a density model is used, and
    the result says so); ``variant``: ``static`` or ``dynamic`` StruM PE; ``boundary``:
    ``datapath``, ``rf`` or ``full``; ``options`` as in :func:`quantize`."""
    q = json.dumps(_quant(scheme, block, low, options))
    if isinstance(stats, Evaluation):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "layers.csv")
            _stats_csv(stats, path)
            doc, csv = _strumlab.hw(model, q, str(arch), str(claims), path, variant, boundary)
    else:
        doc, csv = _strumlab.hw(model, q, str(arch), str(claims), None if stats is None else str(stats),
                                variant, boundary)
    raw = json.loads(doc)
    summary = {k: v for k, v in raw.items() if k != "layers"}
    return Hardware(summary, pd.read_csv(io.StringIO(csv)), raw)


def sweep(spec: Any, out: Optional[str] = None, *, limit: Optional[int] = None,
          device: Optional[str] = None, progress: Any = None) -> pd.DataFrame:
    """Run (or resume) a sweep (docs/sweeps.md): ``spec`` is a spec file or the same document
    as a dict (``{"name": ..., "base": {...}, "matrix": {...}}``); rows already in ``out`` are
    kept. Returns the rows (the sweep CSV's columns) of this run's rows file. ``progress``
    and Ctrl-C as in :func:`evaluate` (a cancelled run leaves no row; the sweep resumes)."""
    if isinstance(spec, dict):
        summary = _strumlab.sweep(json.dumps(spec), True, out, limit, device, _progress(progress))
    else:
        summary = _strumlab.sweep(str(spec), False, None if out is None else str(out), limit, device,
                                  _progress(progress))
    return pd.read_csv(json.loads(summary)["rows_file"])


@dataclass
class Search:
    """The result of :func:`search`: ``summary`` (budget, FP32 top-1, the chosen
    configuration's held-out top-1 and saving, the best uniform configuration),
    ``chosen`` (``{"block": B, "layers": {name: {"scheme", "low"}}}``: pass it to
    :func:`quantize` / :func:`evaluate` as ``block=..., layers=...``), the evaluated
    ``frontier`` and ``uniform`` points and the single-layer ``sensitivity`` as DataFrames,
    and the whole ``search --json`` document (``raw``)."""
    summary: dict
    chosen: dict
    frontier: pd.DataFrame
    uniform: pd.DataFrame
    sensitivity: pd.DataFrame
    raw: dict = field(repr=False)


def search(model: Model, data: Any, labels: Optional[Sequence[int]] = None, *, max_drop: float = 0.5,
           schemes: Sequence[str] = ("mip2q", "dliq"), lows: Sequence[int] = (), objective: str = "pe-power",
           limit: Optional[int] = None, search_frac: float = 0.5, sens_images: int = 1000, refine: int = 8,
           margin_se: float = 1.0, block: int = 8, calib_images: int = 64, act_calib: str = "max",
           act_percentile: float = 99.99, arch: str = "experiments/hw/flexnn.toml", progress: Any = None,
           **options: Any) -> Search:
    """Search per-layer StruM settings (scheme and L per layer) that save the most FlexNN
    ``objective`` within ``max_drop`` top-1 points, tuned on the first ``search_frac`` of the
    images and reported on the rest (docs/search.md; as ``strumlab search``). ``data`` as in
    :func:`evaluate`; ``options`` are further quantization parameters; ``progress`` and
    Ctrl-C as in :func:`evaluate`."""
    data, labels = _data(data, labels)
    if isinstance(data, np.ndarray):
        data = np.ascontiguousarray(data)
    elif not isinstance(data, str):
        data = str(data)
    cfg = {"quant": _quant("int8", block, 0, options), "limit": limit, "calib_images": int(calib_images),
           "act_calib": act_calib, "act_percentile": float(act_percentile)}
    params = {"max_drop": float(max_drop), "schemes": list(schemes), "lows": [int(v) for v in lows],
              "objective": objective, "search_frac": float(search_frac), "sens_images": int(sens_images),
              "refine": int(refine), "margin_se": float(margin_se)}
    lab = None if labels is None else [int(v) for v in np.asarray(labels).ravel()]
    raw = json.loads(_strumlab.search(model, data, json.dumps(cfg), json.dumps(params), str(arch), lab,
                                      _progress(progress)))
    table = ("frontier", "uniform", "sensitivity")
    summary = {k: v for k, v in raw.items() if k not in table and k != "chosen"}
    summary["chosen"] = {k: v for k, v in raw["chosen"].items() if k != "layers"}
    chosen = {"block": raw["block"], "layers": raw["chosen"]["layers"]}
    frames = [pd.DataFrame(raw[k]) for k in table]
    return Search(summary, chosen, *frames, raw)
