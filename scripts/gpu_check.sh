#!/usr/bin/env bash
# Everything that needs the GPU test machine, in one run (../shared/GPU.md): the GPU
# test suites, then the transport and loader benchmarks on its 16 cores, with a short
# table last. Logs and the benchmark blocks go to OUTDIR (default gpu-check-out/).
# Build first on the development machine (not here: this machine has no network):
#   STOKER_CMAKE_ARGS=-DCMAKE_CUDA_ARCHITECTURES=90 scripts/setup.sh
#   ../shared/tools/devlibs build/bin/* build/tests/*
# usage: scripts/gpu_check.sh [OUTDIR]
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-gpu-check-out}
mkdir -p "$out"
export LD_LIBRARY_PATH=$PWD/.devlibs:/opt/torch/.venv/lib/python3.12/site-packages/nvidia/cudnn/lib:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader >"$out/gpu.txt" 2>&1

summary=()
for t in build/tests/test_cuda_*; do
  [ -x "$t" ] || continue
  "$t" --verbose >"$out/$(basename "$t").log" 2>&1; rc=$?
  summary+=("$(basename "$t"): $(grep -a Synthesis "$out/$(basename "$t").log" | sed 's/.*Synthesis: //') (exit $rc)")
done

scripts/bench_proto.sh --batches 100 --reps 6 >"$out/bench_proto.log" 2>&1
summary+=("bench_proto: $(grep -E '^two-frame' "$out/bench_proto.log" | tail -1)")

# PyTorch must not see the Debian libraries in .devlibs: its python gets a clean path.
printf '#!/bin/sh\nLD_LIBRARY_PATH= exec python3 "$@"\n' >"$out/python3"
chmod +x "$out/python3"
cp docs/BENCHMARKS.md "$out/BENCHMARKS.before.md"
CORES=${CORES:-"1 2 4 8 15"} PYTHON=${PYTHON:-$(cd "$out" && pwd)/python3} scripts/bench_loader.sh h100 >"$out/bench_loader.log" 2>&1
cp docs/BENCHMARKS.md "$out/BENCHMARKS.md"
summary+=("$(tail -1 "$out/bench_loader.log")")

echo "gpu_check.sh on $(cat "$out/gpu.txt")"
printf '  %s\n' "${summary[@]}"
