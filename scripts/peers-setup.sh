#!/usr/bin/env bash
# The peers of scripts/bench-engines.py in a Python venv with pinned versions:
# numpy, onnx, onnxruntime (FP32 and static INT8 QDQ) and OpenVINO (FP32 and INT8 from the
# same QDQ file); sympy for onnxruntime's quant_pre_process (symbolic shape inference).
# Idempotent: an existing venv is reused, and pip leaves already-installed pins alone.
#
# Usage: scripts/peers-setup.sh [VENV]        (default: .venv-peers in the repo root)
# Then:  .venv-peers/bin/python scripts/bench-engines.py --bin target/release/strumlab
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${1:-.venv-peers}"

PINS=(
  numpy==2.4.6
  onnx==1.23.2
  onnxruntime==1.32.0
  openvino==2026.4.1
  sympy==1.14.0
)

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet "${PINS[@]}"
"$VENV/bin/python" - <<'EOF'
import numpy, onnx, onnxruntime, openvino
print(f"peers ready: numpy {numpy.__version__}, onnx {onnx.__version__}, "
      f"onnxruntime {onnxruntime.__version__}, openvino {openvino.get_version()}")
EOF
