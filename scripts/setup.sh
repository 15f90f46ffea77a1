#!/usr/bin/env bash
# Installs the Debian packages stoker needs (only those missing) and builds it into
# build/ (Release). Idempotent: a second run installs nothing and rebuilds only what
# changed. Extra CMake arguments: STOKER_CMAKE_ARGS="-DCMAKE_CUDA_ARCHITECTURES=61".
# --with-torch is accepted for older scripts: torchvision is now always installed (the
# tests check every model against it).
# usage: scripts/setup.sh [--with-torch]
set -euo pipefail
cd "$(dirname "$0")/.."

# What each package is for:
#   libzmq3-dev         sockets between processes      libmsgpack-dev   message encoding
#   libturbojpeg0-dev   JPEG decode/encode             zlib1g-dev       gzip'd IDX files
#   libcriterion-dev    the test framework             dataset-fashion-mnist  default data
#   libjansson-dev      JSON (safetensors headers)
#   libdnnl-dev         oneDNN: CPU convolutions       libopenblas-dev  BLAS (linear layers)
#   python3-torch, python3-torchvision  the CPU reference the tests compare models against
#   ocl-icd-opencl-dev  only a Recommends of libdnnl-dev, but oneDNN's CMake config
#                       (Debian's build has an OpenCL GPU runtime) requires OpenCL to configure
#   gnuplot-nox         stoker-run draws the run's plots (loss, accuracy, throughput,
#                       confusion matrix) with it; -nox: PNGs only, no X11 libraries
pkgs=(cmake make gcc pkg-config libzmq3-dev libmsgpack-dev libturbojpeg0-dev zlib1g-dev
      libcriterion-dev dataset-fashion-mnist libjansson-dev libdnnl-dev ocl-icd-opencl-dev
      libopenblas-dev python3-torch python3-torchvision gnuplot-nox)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Fresh machines may have no package lists yet: update only when the install needs it.
  $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || {
    $sudo apt-get update -q >/dev/null
    $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  }
fi

mkdir -p build
# shellcheck disable=SC2086
if ! cmake -S . -B build -DCMAKE_BUILD_TYPE=Release ${STOKER_CMAKE_ARGS:-} >build/configure.log 2>&1; then
  cat build/configure.log >&2; echo "setup.sh: configure failed" >&2; exit 1
fi
grep -h "stoker:" build/configure.log || true
if ! cmake --build build -j"$(nproc)" >build/build.log 2>&1; then
  grep -E "error|Error" build/build.log >&2; echo "setup.sh: build failed (build/build.log)" >&2; exit 1
fi
grep -E "warning" build/build.log || true
echo "setup.sh: built build/bin: $(cd build/bin && ls | grep '^stoker-' | tr '\n' ' ')"
