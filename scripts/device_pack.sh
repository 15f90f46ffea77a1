#!/usr/bin/env bash
# Packs what a GPU-machine session needs into build-pack/ (ignored by git, under the 64 MiB
# a device call may carry): build-gpu's programs and GPU test suites with the Debian
# libraries they link (../shared/tools/devlibs), xz-compressed, and the Fashion-MNIST
# source files for scripts/bench_fmnist_gpu.sh (that machine has no dataset package).
# Build build-gpu first (cmake -S . -B build-gpu -DCMAKE_CUDA_ARCHITECTURES=90 ...).
# On the device (repository root): tar xJf build-pack/pack.tar.xz; then BIN=build-gpu/bin,
# FMNIST_SOURCE=build-pack/fashion-mnist, LD_LIBRARY_PATH=$PWD/build-gpu/.devlibs:...
# usage: scripts/device_pack.sh [--no-fmnist]
set -euo pipefail
cd "$(dirname "$0")/.."
devlibs=${DEVLIBS:-../shared/tools/devlibs}
[ -x build-gpu/bin/stoker-train ] || { echo "device_pack.sh: build build-gpu first" >&2; exit 1; }
rm -rf build-pack build-gpu/.devlibs
mkdir -p build-pack
"$devlibs" -o build-gpu/.devlibs build-gpu/bin/* build-gpu/tests/test_cuda_* >/dev/null
tar cJf build-pack/pack.tar.xz build-gpu/bin build-gpu/tests/test_cuda_* build-gpu/.devlibs
rm -rf build-gpu/.devlibs
if [ "${1:-}" != "--no-fmnist" ]; then
  src=${FMNIST_SOURCE:-/usr/share/datasets/fashion-mnist}
  mkdir -p build-pack/fashion-mnist
  cp "$src"/*-ubyte.gz build-pack/fashion-mnist/
fi
du -sh build-pack | awk '{print "device_pack.sh: build-pack " $1 " (carry: [\"build-pack\"]; 64 MiB at most)"}'
