#!/usr/bin/env bash
# Development helper for the GPU test machine: the GPU suites, then stoker's own training
# rate for the four benchmark models (no PyTorch: scripts/bench_train.sh is the benchmark),
# optionally per-layer profiles. Logs under OUTDIR. BIN: the binaries (build/bin).
# usage: [BIN=...] [PROFILE="resnet50 ..."] scripts/gpu_quick.sh OUTDIR
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: gpu_quick.sh OUTDIR}
bin=${BIN:-build/bin}
tests=$(dirname "$bin")/tests
mkdir -p "$out"
for t in "$tests"/test_cuda_*; do
  "$t" --verbose -j1 >"$out/$(basename "$t").log" 2>&1
  echo "$(basename "$t"): $(grep -a Synthesis "$out/$(basename "$t").log" | sed 's/.*Synthesis: //')"
  grep -a -A3 "Assertion Failed\|CRASH" "$out/$(basename "$t").log" | head -20
done
for m in resnet18 resnet50 mobilenet_v3_large efficientnet_b0; do
  timeout 90 "$bin/bench_train_gpu" "$m" --batch 256 --steps 20 --warmup 5 2>&1 | tail -1
done
for m in ${PROFILE:-}; do
  timeout 90 "$bin/bench_train_gpu" "$m" --batch 256 --steps 5 --warmup 3 --profile >"$out/profile_$m.txt" 2>&1
done
