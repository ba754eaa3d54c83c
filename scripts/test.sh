#!/usr/bin/env bash
# The test command (README; .ci/run calls exactly this): installs what the tests need when
# it is missing (idempotent: unzip for the asset fetch, Mesa's software Vulkan driver so the
# GPU tests run on a machine without a GPU, yosys for the synthesis check, chromium to
# render the HTML report in a test; slurm-wlm and munge are installed by slurm-check.sh),
# fetches the
# registry-packaged assets, then runs every test. GPU tests must not skip: a missing adapter
# fails them (STRUMLAB_REQUIRE_GPU=1); the adapters they run on are printed first.
# With STRUMLAB_REQUIRE_ASSETS=1 a test that needs a missing asset fails instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."

need=""
command -v unzip >/dev/null 2>&1 || need="$need unzip"
command -v yosys >/dev/null 2>&1 || need="$need yosys"
ls /usr/share/vulkan/icd.d/lvp_icd.*.json >/dev/null 2>&1 || need="$need mesa-vulkan-drivers"
command -v chromium >/dev/null 2>&1 || need="$need chromium"
if [ -n "$need" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need
  else
    echo "missing:$need (install them with apt-get as root, or run this as root)" >&2
    exit 1
  fi
fi
export STRUMLAB_REQUIRE_GPU=1 STRUMLAB_REQUIRE_CHROMIUM=1
if [ -z "${XDG_RUNTIME_DIR:-}" ]; then
  export XDG_RUNTIME_DIR="$(mktemp -d)"
  chmod 700 "$XDG_RUNTIME_DIR"
fi

bash scripts/fetch-assets.sh
# onnxruntime, the oracle of the operator cross-checks (tests/operators.rs), in the peers'
# venv (.venv-peers, pinned versions; reused when present).
bash scripts/peers-setup.sh
# Synthesize two hardware-model components with yosys and compare with the committed table.
bash scripts/synth-components.sh --check
export STRUMLAB_REQUIRE_ASSETS=1
cargo build --locked --features train -q
# The release binary: tests/reproducers.rs measures the bad-input runs' peak memory on it.
cargo build --locked --release -q
export STRUMLAB_RELEASE_BIN="$PWD/target/release/strumlab"
echo "GPU adapters the GPU tests will use (wgpu):"
cargo run --locked --features train -q -- devices
cargo test --locked --features train
# The cluster path for real: a single-node Slurm runs scripts/sweep-slurm.sh as an array
# job and the merged shards must equal the unsharded sweep. Status 3 means the daemons could
# not start on this machine: said loudly, not failed.
rc=0
bash scripts/slurm-check.sh "$PWD/target/debug/strumlab" || rc=$?
if [ "$rc" = 3 ]; then
  echo "WARNING: slurm-check could not start Slurm here; the cluster path was not checked" >&2
elif [ "$rc" != 0 ]; then
  exit "$rc"
fi
# The Python package: release wheel built with maturin, installed into .venv-py, pytest
# against the CLI's release build.
bash scripts/python-check.sh "$STRUMLAB_RELEASE_BIN"
