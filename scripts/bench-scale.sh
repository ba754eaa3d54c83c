#!/usr/bin/env bash
# The scale benchmark (scripts/bench-scale.py): Lite0 over an ImageNet-layout folder of
# 50,000 distinct JPEGs, peak RSS cold/warm, and an 8-configuration sweep against
# onnxruntime. Needs scripts/fetch-assets.sh (weights, ImageNet samples) and
# scripts/peers-setup.sh (.venv-peers); builds the release binary.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
[ -x .venv-peers/bin/python ] || bash scripts/peers-setup.sh
exec .venv-peers/bin/python scripts/bench-scale.py "$@"
