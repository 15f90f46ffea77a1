#!/usr/bin/env bash
# Which convolution library the CPU backend uses (issue 5): im2col + OpenBLAS SGEMM and
# oneDNN's direct convolution (trainer/bench_conv.c) against PyTorch's CPU conv2d
# (Debian's python3-torch, itself on oneDNN), same layers, same threads, one run.
# usage: scripts/bench_conv.sh [THREADS] [ITERS]
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-$(nproc)}
iters=${2:-10}
/usr/bin/python3 -c "import torch" 2>/dev/null || scripts/setup.sh --with-torch >/dev/null
[ -x build/bin/bench_conv ] || scripts/setup.sh >/dev/null
echo "bench_conv.sh: $(date -u +%F), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $threads threads, batch 16, float32 NCHW"
OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads build/bin/bench_conv --threads "$threads" --iters "$iters"
/usr/bin/python3 scripts/bench_conv.py "$threads" "$iters"
