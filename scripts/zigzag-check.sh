#!/usr/bin/env bash
# Cross-check of our FlexNN hardware model against ZigZag (issue #24).
#
#   scripts/zigzag-check.sh MODEL [--arch experiments/hw/flexnn.toml] [--out results/hw/zigzag]
#
# MODEL is a zoo name (exported with `strumlab export --limit 1`) or an ONNX file.
# Sets up .venv-zigzag (pinned ZigZag 3.9.1 and its dependencies), infers the ONNX shapes,
# generates ZigZag's accelerator and mapping YAML from our architecture TOML, runs ZigZag
# (energy-optimal LOMA search) and writes OUT/<model>.json with ZigZag's per-layer figures
# next to `strumlab hw --json` (ours) and the ratios ours / ZigZag.
#
# Environment: STRUMLAB (the strumlab binary; default target/release/strumlab, then
# `strumlab` on PATH), PYTHON (the interpreter that creates the venv; default python3),
# ZIGZAG_VENV (default .venv-zigzag), ZIGZAG_LPF (LOMA lpf_limit, default 6),
# ZIGZAG_NB_SPATIAL (spatial mappings tried per layer, default 6).
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n 2,4p "$0" | sed 's/^# \{0,1\}//'; exit 2; }
[ $# -ge 1 ] || usage
case $1 in -h|--help|-*) usage ;; esac
MODEL=$1; shift
ARCH=experiments/hw/flexnn.toml
OUT=results/hw/zigzag
while [ $# -gt 0 ]; do
  case $1 in
    --arch) ARCH=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    -h|--help) usage ;;
    *) echo "unknown option: $1" >&2; usage ;;
  esac
done

VENV=${ZIGZAG_VENV:-.venv-zigzag}
PY=${PYTHON:-python3}
# Pinned: the versions this check was written and run against.
PINS=(
  zigzag-dse==3.9.1 six==1.17.0 onnx==1.23.2
  Cerberus==1.3.8 contourpy==1.3.3 cycler==0.12.1 dill==0.4.1 fonttools==4.68.0
  kiwisolver==1.5.1 matplotlib==3.11.2 ml_dtypes==0.7.0 mpmath==1.3.0
  multiprocessing_on_dill==3.5.0a4 networkx==3.6.1 numpy==2.4.6 packaging==26.4
  pandas==3.1.1 pillow==13.0.0 protobuf==7.36.2 pyparsing==3.3.3
  python-dateutil==4.0.0 PyYAML==6.0.4 seaborn==0.13.2 sympy==1.14.0 tqdm==4.70.1
  typeguard==4.6.1 typing_extensions==4.16.0 tzdata==2026.6
)
STAMP="$VENV/.zigzag-pins"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "${PINS[*]}" ]; then
  echo "setting up $VENV" >&2
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  "$VENV/bin/pip" install -q "${PINS[@]}"
  echo "${PINS[*]}" > "$STAMP"
fi

if [ -n "${STRUMLAB:-}" ]; then :
elif [ -x target/release/strumlab ]; then STRUMLAB=target/release/strumlab
elif command -v strumlab >/dev/null; then STRUMLAB=$(command -v strumlab)
else echo "no strumlab binary: set STRUMLAB or build target/release/strumlab" >&2; exit 1
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/zigzag-check.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
t0=$(date +%s.%N)
if [ -f "$MODEL" ]; then
  ONNX=$MODEL
  NAME=$(basename "$MODEL" .onnx)
else
  NAME=$MODEL
  "$STRUMLAB" export --model "$MODEL" --limit 1 --out "$TMP/export" >&2
  ONNX=$TMP/export/model.onnx
fi
t1=$(date +%s.%N)
EXPORT_S=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')

mkdir -p "$OUT"
STRUMLAB=$STRUMLAB TMPDIR=$TMP "$VENV/bin/python" scripts/zigzag_check.py \
  --model "$NAME" --hw-model "$MODEL" --onnx "$ONNX" --arch "$ARCH" --out "$OUT" \
  --strumlab "$STRUMLAB" --export-seconds "$EXPORT_S" \
  --lpf-limit "${ZIGZAG_LPF:-6}" --nb-spatial "${ZIGZAG_NB_SPATIAL:-6}" \
  2> "$TMP/zigzag.log" || { tail -40 "$TMP/zigzag.log" >&2; exit 1; }
