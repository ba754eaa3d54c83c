#!/usr/bin/env bash
# Synthesizes the small Verilog components in scripts/synth/ (multipliers, MIP2Q and DLIQ lanes,
# adder tree, accumulator, find-first) with yosys + abc onto the generic gate-equivalent cell
# library scripts/synth/generic.lib, and writes experiments/hw/synth/components.json (cells, area
# in NAND2 equivalents, area ratios to mult8x8, and zero-delay toggle ratios from gate-level
# simulation with iverilog). See scripts/synth/README.md.
#
#   scripts/synth-components.sh              synthesize everything, simulate, write the JSON
#   scripts/synth-components.sh --no-toggle  skip the iverilog toggle simulation (keeps the
#                                            JSON's toggle entries out, so it will differ)
#   scripts/synth-components.sh --check      synthesize mult8x4 and mult8x8 only and compare
#                                            cells/area with the committed JSON (for CI); fails
#                                            when they differ
#
# Runnable from any directory; installs yosys (and iverilog for the toggle step) if missing.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=full
toggle=1
for arg in "$@"; do
  case $arg in
    --check) mode=check ;;
    --no-toggle) toggle=0 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "unknown argument: $arg" >&2; exit 2 ;;
  esac
done

need=""
command -v yosys >/dev/null 2>&1 || need="$need yosys"
if [ "$mode" = full ] && [ "$toggle" = 1 ]; then
  command -v iverilog >/dev/null 2>&1 || need="$need iverilog"
fi
if [ -n "$need" ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need
fi

lib=scripts/synth/generic.lib
json=experiments/hw/synth/components.json
# The components, in JSON order. mult8x8 is the ratio denominator.
all="mult8x8 mult8x9 mult8x4 mip2q_lane mip2q_lane_e1_7 dliq_mult dliq_shift adder_tree8 acc32 find_first16 find_first32"
if [ "$mode" = check ]; then comps="mult8x8 mult8x4"; else comps=$all; fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The yosys script per component {M}, recorded verbatim in the JSON ({TMP}: a scratch folder).
flow='read_verilog scripts/synth/{M}.v; synth -top {M}; dfflibmap -liberty {LIB}; abc -liberty {LIB}; opt_clean; tee -q -o {TMP}/{M}.stat stat -liberty {LIB}; write_verilog -noattr {TMP}/{M}.gl.v'
for m in $comps; do
  script=${flow//\{M\}/$m}
  script=${script//\{LIB\}/$lib}
  script=${script//\{TMP\}/$tmp}
  yosys -q -l "$tmp/$m.log" -p "$script" >/dev/null
done

if [ "$mode" = check ]; then
  python3 scripts/synth/collect.py check "$tmp" "$json" "$lib" "$comps"
  exit
fi

if [ "$toggle" = 1 ]; then
  python3 scripts/synth/toggle.py "$tmp" scripts/synth/generic_cells.v
fi
python3 scripts/synth/collect.py write "$tmp" "$json" "$lib" "$comps" "$flow"
echo "wrote $json"
