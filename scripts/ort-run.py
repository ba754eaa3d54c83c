#!/usr/bin/env python3
"""Run an ONNX model with onnxruntime (CPU, every graph optimisation off so that each op is
computed as written) on one FP32 input and write each graph output as raw little-endian FP32.

Usage: ort-run.py MODEL.onnx INPUT.f32 OUT_PREFIX [SHAPE]
Writes OUT_PREFIX<k>.f32 for output k. The input's shape is SHAPE (comma separated) or the
model's static input shape.
Used by tests/operators.rs as the oracle of the operator cross-checks.
"""
import sys

import numpy as np
import onnxruntime as ort


def main():
    model, inp, prefix = sys.argv[1:4]
    shape = [int(d) for d in sys.argv[4].split(",")] if len(sys.argv) > 4 else None
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    s = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    i = s.get_inputs()[0]
    x = np.fromfile(inp, dtype="<f4").reshape(shape or i.shape)
    for k, y in enumerate(s.run(None, {i.name: x})):
        np.asarray(y, dtype="<f4").tofile(f"{prefix}{k}.f32")


if __name__ == "__main__":
    main()
