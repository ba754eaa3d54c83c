#!/usr/bin/env bash
# The Python package's tests (part of the test command): a virtualenv (.venv-py) with the
# pinned test tools (nbclient runs examples/quickstart.ipynb), the package installed with the
# README's command `pip install ./python` (maturin, release profile; sharing target/ with
# cargo's own builds), and the pytest suite run against it and the CLI binary given as $1
# (the test command passes the release build).
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:-$PWD/target/debug/strumlab}"
t0=$(date +%s)
if [ ! -x .venv-py/bin/python ]; then
  python3 -m venv .venv-py
fi
.venv-py/bin/pip install -q --disable-pip-version-check \
  maturin==1.16.0 numpy==2.4.6 pandas==3.1.1 pytest==9.2.0 pillow==13.0.0 \
  nbclient==0.10.2 nbformat==5.10.4 ipykernel==6.29.5 matplotlib==3.10.3
# The README's install command (a source build: pip runs maturin, release profile), with
# cargo's target folder shared so that the Rust core is not compiled twice.
CARGO_TARGET_DIR="$PWD/target" .venv-py/bin/pip install -q --disable-pip-version-check \
  --force-reinstall --no-deps ./python
STRUMLAB_BIN="$bin" .venv-py/bin/python -m pytest -q python/tests
echo "python-check: wheel build + tests took $(( $(date +%s) - t0 )) s"
