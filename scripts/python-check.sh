#!/usr/bin/env bash
# The Python package's tests (part of the test command): a virtualenv (.venv-py) with the
# pinned build and test tools, the wheel built from python/ with maturin (release profile,
# as `pip install ./python` builds it; sharing target/ with cargo's own builds; a dev-profile
# wheel runs the engine ~25x slower), installed, and the pytest suite run against it and the
# CLI binary given as $1 (the test command passes the release build).
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:-$PWD/target/debug/strumlab}"
t0=$(date +%s)
if [ ! -x .venv-py/bin/python ]; then
  python3 -m venv .venv-py
fi
.venv-py/bin/pip install -q --disable-pip-version-check \
  maturin==1.16.0 numpy==2.4.6 pandas==3.1.1 pytest==9.2.0 pillow==13.0.0
rm -rf target/wheels
CARGO_TARGET_DIR="$PWD/target" .venv-py/bin/maturin build --release --locked -q -m python/Cargo.toml -o target/wheels
.venv-py/bin/pip install -q --disable-pip-version-check --force-reinstall --no-deps target/wheels/strumlab-*.whl
STRUMLAB_BIN="$bin" .venv-py/bin/python -m pytest -q python/tests
echo "python-check: wheel build + tests took $(( $(date +%s) - t0 )) s"
