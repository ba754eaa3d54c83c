#!/usr/bin/env bash
# GPU engine benchmark for a machine with a real GPU, self-contained: such a machine may
# have no network and no Rust toolchain, so the binary and the assets travel with it.
#
#   bash scripts/bench-gpu.sh pack            # here: release build + assets -> dist/strumlab-gpu-bench.tar.gz
#   tar xzf strumlab-gpu-bench.tar.gz && cd strumlab-gpu-bench
#   bash bench-gpu.sh run [--peak-tops T]     # there: results in ./results/
#
# `run` measures images/s of the GPU engine (`strumlab bench --device gpu`, batch 256) per
# model and mode (fp32; integer INT8, MIP2Q B8 L4, DLIQ B8 L4), the CPU engine next to it,
# and the achieved GOP/s (2 ops per MAC, MACs per image from `strumlab inspect`). With
# `--peak-tops` (the adapter's dense INT8 or FP32 peak, from its data sheet; wgpu does not
# report it) it also prints the fraction of peak. Output: results/gpu-bench.json, with the
# adapter, driver and CPU named.
set -euo pipefail

# BENCH_MODELS / BENCH_IMAGES override the set and the GPU images per pass (a smoke run on
# a software adapter: BENCH_MODELS=mnist-8 BENCH_IMAGES=256).
MODELS="${BENCH_MODELS:-mnist-8 fmnist-resnet fmnist-mobilenetv2 fmnist-vgg effnet-lite0}"
IMAGES="${BENCH_IMAGES:-2048}"

pack() {
    cd "$(dirname "$0")/.."
    cargo build --release
    bash scripts/fetch-assets.sh
    local cache="${STRUMLAB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/strumlab}"
    local d=dist/strumlab-gpu-bench
    rm -rf "$d" && mkdir -p "$d/cache"
    cp target/release/strumlab scripts/bench-gpu.sh "$d/"
    # The zoo cards point into experiments/ relative to the repository root, which the
    # binary finds next to itself through STRUMLAB_ROOT.
    cp -r experiments "$d/"
    cp -r "$cache"/efficientnet-lite0.pth "$cache"/imagenet-samples "$d/cache/"
    tar czf dist/strumlab-gpu-bench.tar.gz -C dist strumlab-gpu-bench
    echo "dist/strumlab-gpu-bench.tar.gz ($(du -h dist/strumlab-gpu-bench.tar.gz | cut -f1))"
}

run() {
    local peak=""
    if [[ "${1:-}" == "--peak-tops" ]]; then peak="$2"; fi
    cd "$(dirname "$0")"
    export STRUMLAB_CACHE="$PWD/cache" STRUMLAB_ROOT="$PWD"
    export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
    mkdir -p results
    ./strumlab devices | tee results/devices.txt
    local cpu
    cpu=$(grep -m1 "model name" /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
    local rows=()
    for m in $MODELS; do
        local macs
        macs=$(./strumlab inspect "$m" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["macs"])')
        for cfg in "fp32 fp32 8 0" "integer int8 8 0" "integer mip2q 8 4" "integer dliq 8 4"; do
            set -- $cfg
            local args=(--model "$m" --mode "$1" --scheme "$2" --block "$3" --low "$4" --json)
            local g c
            g=$(./strumlab bench "${args[@]}" --device gpu --batch 256 --images "$IMAGES" --repeat 3)
            c=$(./strumlab bench "${args[@]}" --device cpu --images 512 --repeat 2)
            rows+=("{\"model\": \"$m\", \"macs_per_image\": $macs, \"gpu\": $g, \"cpu\": $c}")
            echo "$m $1 $2 L$4: $(echo "$g" | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["images_per_s"], 1))') images/s on the GPU"
        done
    done
    local IFS=,
    python3 - "$peak" "$cpu" "[${rows[*]}]" <<'EOF'
import json, sys
peak, cpu, rows = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
for r in rows:
    r["gpu_gop_per_s"] = round(2 * r["macs_per_image"] * r["gpu"]["images_per_s"] / 1e9, 2)
    r["gpu_over_cpu"] = round(r["gpu"]["images_per_s"] / r["cpu"]["images_per_s"], 2)
    if peak:
        r["gpu_fraction_of_peak"] = round(r["gpu_gop_per_s"] / (1000 * float(peak)), 4)
    print(f'{r["model"]:20} {r["gpu"]["mode"]:8} {r["gpu"]["config"]:14} {r["gpu"]["images_per_s"]:10.1f} images/s '
          f'{r["gpu_gop_per_s"]:8.1f} GOP/s  x{r["gpu_over_cpu"]} vs CPU')
out = {"cpu": cpu, "adapter": open("results/devices.txt").read().strip(),
       "peak_tops_given": float(peak) if peak else None, "rows": rows}
json.dump(out, open("results/gpu-bench.json", "w"), indent=1)
print("results/gpu-bench.json")
EOF
}

case "${1:-}" in
    pack) pack ;;
    run) shift; run "$@" ;;
    *) echo "usage: bash scripts/bench-gpu.sh pack | run [--peak-tops T]" >&2; exit 2 ;;
esac
