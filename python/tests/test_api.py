"""The Python API over the Rust core: round trips, numpy input bit-identical to the CLI's
dataset paths, errors with the library's message, stubs matching the module, threads.

Run by scripts/python-check.sh (part of the test command) against the CLI binary in
$STRUMLAB_BIN."""
import ast
import gzip
import inspect
import json
import os
import pathlib
import subprocess
import threading
import tomllib

import numpy as np
import pytest

import strumlab

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = os.environ.get("STRUMLAB_BIN", str(ROOT / "target" / "debug" / "strumlab"))
CACHE = pathlib.Path(os.environ.get("STRUMLAB_CACHE") or
                     pathlib.Path(os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache") / "strumlab")


def idx(path):
    """An IDX u8 file read with numpy: (dims, values)."""
    b = gzip.open(path).read()
    nd = b[3]
    dims = [int.from_bytes(b[4 + 4 * i:8 + 4 * i], "big") for i in range(nd)]
    return np.frombuffer(b, np.uint8, offset=4 + 4 * nd).reshape(dims)


def fashion(n):
    d = ROOT / "experiments" / "data" / "fashion-mnist"
    return idx(d / "t10k-images-idx3-ubyte.gz")[:n], idx(d / "t10k-labels-idx1-ubyte.gz")[:n]


def cli_eval(*args):
    out = subprocess.run([BIN, "eval", "--json", "-q", *args], check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def test_version_and_stubs_match_the_module():
    assert strumlab.__version__ == tomllib.loads((ROOT / "python" / "Cargo.toml").read_text())["package"]["version"]
    stub = ast.parse((ROOT / "python" / "pysrc" / "strumlab" / "_strumlab.pyi").read_text())
    funcs = {n.name: [a.arg for a in n.args.args] for n in stub.body if isinstance(n, ast.FunctionDef)}
    classes = {n.name: {f.name for f in n.body if isinstance(f, ast.FunctionDef)} for n in stub.body
               if isinstance(n, ast.ClassDef)}
    public = {k for k in dir(strumlab._strumlab) if not k.startswith("_")}
    assert public == set(funcs) | set(classes), public ^ (set(funcs) | set(classes))
    for name, params in funcs.items():
        got = list(inspect.signature(getattr(strumlab._strumlab, name)).parameters)
        assert got == params, (name, got, params)
    for name, members in classes.items():
        cls = getattr(strumlab._strumlab, name)
        assert members == {k for k in dir(cls) if not k.startswith("_")}, name


def test_load_and_quantize_round_trip():
    m = strumlab.load_model("fmnist-resnet")
    assert m.input_shape == [1, 1, 28, 28] and m.dataset == "fashion-test"
    q = strumlab.quantize(m, "mip2q", block=8, low=4)
    assert list(q.layers["layer"]) == m.layers
    for col in ("bits_per_weight", "demoted_pct", "sqnr_db", "applied"):
        assert col in q.layers.columns, col
    demoted = 0
    for row in q.layers.itertuples():
        w = q.weights[row.layer]
        assert w.deq.shape == row.shape and w.mask.shape == row.shape and w.q.shape == row.shape
        assert w.deq.dtype == np.float32 and w.q.dtype == np.int32
        counts = [int(np.count_nonzero(w.mask == k)) for k in range(3)]
        assert counts == [row.high, row.low, row.zero], row.layer
        demoted += row.applied.startswith("mip2q")
    assert demoted > 0, "some layers carry MIP2Q lanes"
    # the summary is the library's
    assert q.summary["layers"] == len(m.layers)


def test_bad_arguments_raise_with_the_library_message():
    with pytest.raises(ValueError, match="neither a file nor a known model"):
        strumlab.load_model("no-such-model")
    m = strumlab.load_model("mnist-8")
    with pytest.raises(strumlab.InvalidArgument, match="unknown field `nonsense`"):
        strumlab.quantize(m, "mip2q", nonsense=1)
    with pytest.raises(strumlab.StrumlabError, match="3 labels for 2 images"):
        strumlab.evaluate(m, np.zeros((2, 28, 28), np.uint8), labels=[1, 2, 3])
    with pytest.raises(ValueError, match="grey images"):
        strumlab.evaluate(m, np.zeros((2, 20, 20), np.uint8))
    with pytest.raises(strumlab.InvalidArgument, match="uint8 pixels or float32"):
        strumlab.evaluate(m, np.zeros((2, 28, 28), np.float64))
    with pytest.raises(FileNotFoundError):
        strumlab.evaluate(m, "/no/such/folder/images-idx3-ubyte.gz")


def same_numbers(a, b):
    for k in ("images", "top1", "top5", "fp32_top1", "agreement_top1", "kl_mean", "mcnemar_p"):
        assert a["summary"][k] == b["summary"][k], k
    for la, lb in zip(a["layers"], b["layers"]):
        for k in ("name", "act_zero_frac", "output_sqnr_db", "macs_nz_act_w_low_per_image"):
            assert la[k] == lb[k], (la["name"], k)


def test_numpy_u8_and_f32_equal_the_cli_on_fashion_mnist():
    n = 10000  # the whole vendored test set
    x, y = fashion(n)
    cli = cli_eval("--model", "fmnist-resnet", "--data", "fashion-test", "--limit", str(n),
                   "--scheme", "mip2q", "--low", "4")
    m = strumlab.load_model("fmnist-resnet")
    r = strumlab.evaluate(m, x, labels=y, scheme="mip2q", low=4)
    same_numbers(r.raw, cli)
    assert list(r.layers.columns)[:3] == ["layer", "kind", "applied"]
    # the card's normalisation done in numpy (float32 arithmetic, as the library's)
    card = tomllib.loads((ROOT / "experiments" / "models" / "fmnist-resnet.toml").read_text())
    f = ((x.astype(np.float32) * np.float32(card["pixel_scale"]) - np.float32(card["mean"][0]))
         / np.float32(card["std"][0]))[:, None, :, :]
    r32 = strumlab.evaluate(m, f.astype(np.float32), labels=y, scheme="mip2q", low=4)
    same_numbers(r32.raw, cli)


def test_rgb_arrays_nhwc_and_nchw_equal_the_folder_path(tmp_path):
    PIL = pytest.importorskip("PIL.Image")
    photos = CACHE / "photos"
    if not photos.is_dir():
        if os.environ.get("STRUMLAB_REQUIRE_ASSETS") == "1":
            pytest.fail("photos not fetched (scripts/fetch-assets.sh)")
        pytest.skip("photos not fetched")
    # two photos cut to one size and stored losslessly, so both paths see the same pixels
    arrs = []
    for i, name in enumerate(["baboon.jpg", "fruits.jpg"]):
        im = PIL.open(photos / name).convert("RGB").crop((0, 0, 300, 260))
        im.save(tmp_path / f"img{i}.png")
        arrs.append(np.asarray(im))
    nhwc = np.stack(arrs)
    m = strumlab.load_model("effnet-lite0")
    kw = dict(scheme="mip2q", low=4, calib_images=2)
    folder = strumlab.evaluate(m, str(tmp_path), **kw).raw
    a = strumlab.evaluate(m, nhwc, **kw).raw
    b = strumlab.evaluate(m, np.ascontiguousarray(nhwc.transpose(0, 3, 1, 2)), **kw).raw
    same_numbers(a, folder)
    same_numbers(b, folder)


def test_evaluate_from_several_threads_gives_the_same_result():
    x, y = fashion(200)
    m = strumlab.load_model("fmnist-resnet")
    out = [None] * 3

    def go(i):
        out[i] = strumlab.evaluate(m, x, labels=y, scheme="dliq", low=2).raw

    ts = [threading.Thread(target=go, args=(i,)) for i in range(3)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for o in out[1:]:
        same_numbers(o, out[0])


def untimed(doc):
    """A hw document without its wall-clock field."""
    return {k: v for k, v in doc.items() if k != "map_ms"}


def test_hw_equals_the_cli_and_takes_an_evaluation(tmp_path):
    m = strumlab.load_model("fmnist-resnet")
    h = strumlab.hw(m, "mip2q", low=4)
    cli = json.loads(subprocess.run([BIN, "hw", "--model", "fmnist-resnet", "--scheme", "mip2q", "--low", "4",
                                     "--json"], check=True, capture_output=True, text=True).stdout)
    assert untimed(h.raw) == untimed(cli)
    assert list(h.layers["layer"]) == m.layers
    # measured activity: from an Evaluation, as from the eval CSV the CLI writes
    x, y = fashion(200)
    ev = strumlab.evaluate(m, x, labels=y, scheme="mip2q", low=4)
    csv = tmp_path / "layers.csv"
    subprocess.run([BIN, "eval", "--model", "fmnist-resnet", "--data", "fashion-test", "--limit", "200",
                    "--scheme", "mip2q", "--low", "4", "-q", "--out", str(csv)], check=True, capture_output=True)
    a = strumlab.hw(m, "mip2q", low=4, stats=ev)
    b = strumlab.hw(m, "mip2q", low=4, stats=str(csv))
    assert untimed(a.raw) == untimed(b.raw) and untimed(a.raw) != untimed(h.raw)
    with pytest.raises(strumlab.InvalidArgument, match="variant: unknown value 'fast'"):
        strumlab.hw(m, "mip2q", variant="fast")


def test_sweep_from_a_dict_equals_the_spec_file(tmp_path):
    spec = {"name": "py", "base": {"model": "mnist-8", "limit": 30, "hw": "", "device": "cpu"},
            "matrix": {"scheme": ["int8", "mip2q"]}}
    rows = strumlab.sweep(spec, str(tmp_path / "a"))
    assert list(rows["status"]) == ["ok", "ok"] and list(rows["scheme"]) == ["int8", "mip2q"]
    f = tmp_path / "s.toml"
    f.write_text('name = "py"\n[base]\nmodel = "mnist-8"\nlimit = 30\nhw = ""\ndevice = "cpu"\n'
                 '[matrix]\nscheme = ["int8", "mip2q"]\n')
    subprocess.run([BIN, "sweep", str(f), "--out", str(tmp_path / "b"), "-q"], check=True, capture_output=True)
    import pandas as pd
    cli = pd.read_csv(tmp_path / "b" / "runs.csv")
    for col in ("run_id", "top1_pct", "agreement_top1_pct", "kl_mean_nats"):
        assert list(rows[col]) == list(cli[col]), col
    with pytest.raises(strumlab.InvalidArgument, match="unknown key 'schem'"):
        strumlab.sweep({"name": "x", "matrix": {"schem": ["int8"]}}, str(tmp_path / "c"))


def test_batches_of_an_iterable_equal_one_array():
    x, y = fashion(120)
    m = strumlab.load_model("fmnist-resnet")
    whole = strumlab.evaluate(m, x, labels=y, scheme="mip2q", low=4).raw
    batches = ((x[i:i + 32], y[i:i + 32]) for i in range(0, 120, 32))
    same_numbers(strumlab.evaluate(m, batches, scheme="mip2q", low=4).raw, whole)
    with pytest.raises(strumlab.InvalidArgument, match="some batches have labels"):
        strumlab.evaluate(m, [x[:10], (x[10:20], y[10:20])])


def test_search_equals_the_cli_and_its_choice_round_trips(tmp_path):
    m = strumlab.load_model("fmnist-resnet")
    x, y = fashion(200)
    kw = dict(max_drop=1.0, sens_images=50, refine=1, schemes=["mip2q"], lows=[4, 8])
    s = strumlab.search(m, x, labels=y, **kw)
    cli = json.loads(subprocess.run(
        [BIN, "search", "--model", "fmnist-resnet", "--data", "fashion-test", "--limit", "200", "--max-drop", "1.0",
         "--sens-images", "50", "--refine", "1", "--schemes", "mip2q", "--lows", "4,8", "--json", "-q", "--out", str(tmp_path / "s")],
        check=True, capture_output=True, text=True).stdout)
    assert s.chosen["layers"] == cli["chosen"]["layers"]
    assert s.raw["chosen"]["heldout_top1_pct"] == cli["chosen"]["heldout_top1_pct"]
    assert len(s.sensitivity) > 0 and "kl_rise_nats" in s.sensitivity.columns
    # the chosen configuration is what quantize and evaluate take
    q = strumlab.quantize(m, block=s.chosen["block"], layers=s.chosen["layers"])
    assert len(q.layers) == len(m.layers)


def test_progress_reaches_a_callable_and_a_tqdm_like_object():
    x, y = fashion(2000)
    m = strumlab.load_model("fmnist-vgg")
    seen = []
    strumlab.evaluate(m, x, labels=y, scheme="mip2q", progress=lambda *a: seen.append(a))
    assert seen, "no progress reported"
    for label, done, total in seen:
        assert isinstance(label, str) and 0 <= done <= total
    assert any(l.startswith("eval") for l, _, _ in seen), seen[-3:]

    class Bar:
        def __init__(self):
            self.n, self.total, self.desc = 0, None, ""

        def update(self, k):
            self.n += k

        def reset(self, total=None):
            self.n, self.total = 0, total

        def set_description(self, d):
            self.desc = d

    bar = Bar()
    strumlab.evaluate(m, x, labels=y, scheme="dliq", progress=bar)
    assert bar.total is not None and 0 <= bar.n <= bar.total


def test_ctrl_c_stops_a_long_evaluation():
    code = (
        "import signal, os, sys, threading, numpy as np, strumlab\n"
        "m = strumlab.load_model('fmnist-vgg')\n"
        "x = np.random.default_rng(0).integers(0, 255, (100000, 28, 28), dtype=np.uint8)\n"
        "threading.Timer(1.0, lambda: os.kill(os.getpid(), signal.SIGINT)).start()\n"
        "try:\n"
        "    strumlab.evaluate(m, x, scheme='mip2q', mode='fake-quant')\n"
        "    print('finished')\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted')\n"
    )
    import sys
    import time
    t0 = time.time()
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.stdout.strip() == "interrupted", (r.stdout, r.stderr)
    assert time.time() - t0 < 20, "the run did not stop soon after Ctrl-C"
