#!/usr/bin/env bash
# Everything that needs the GPU test machine, in one run (../shared/GPU.md): the GPU test
# suites (CUDA backend against the CPU backend), a short training run under
# compute-sanitizer memcheck, the end-to-end run from JPEGs, the training benchmark
# against PyTorch eager and torch.compile, then the transport and loader benchmarks on its
# 16 cores, with a short table last. Logs go to OUTDIR (default gpu-check-out/).
# Build first on the development machine (not here: this machine has no network):
#   STOKER_CMAKE_ARGS=-DCMAKE_CUDA_ARCHITECTURES=90 scripts/setup.sh
#   ../shared/tools/devlibs build/bin/* build/tests/test_*
# STAGES picks what runs (default "tests memcheck e2e train loader"); BIN the binaries;
# TRAIN_MODELS the models of the train stage (default all four: about 10 minutes with
# their torch.compile runs, so a device command of 10 minutes wants two halves).
# From a device_pack.sh pack: tar xJf build-pack/pack.tar.xz, then BIN=build-gpu/bin.
# usage: [STAGES=...] [TRAIN_MODELS=...] [PYTHON=...] scripts/gpu_check.sh [OUTDIR]
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-gpu-check-out}
bin=${BIN:-build/bin}
tests=$(dirname "$bin")/tests
stages=" ${STAGES:-tests memcheck e2e train loader} "
mkdir -p "$out"
export LD_LIBRARY_PATH=$PWD/.devlibs:$PWD/$(dirname "$bin")/.devlibs:/opt/torch/.venv/lib/python3.12/site-packages/nvidia/cudnn/lib:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader >"$out/gpu.txt" 2>&1
# PyTorch must not see the Debian libraries in .devlibs: its python gets a clean path.
# PYTHON: the interpreter with PyTorch (default: python3 on PATH; the GPU machine's is
# /opt/torch/.venv/bin/python3)
printf '#!/bin/sh\nLD_LIBRARY_PATH= exec %s "$@"\n' "${PYTHON:-python3}" >"$out/python3"
chmod +x "$out/python3"
py=$(cd "$out" && pwd)/python3
summary=()

if [[ $stages == *" tests "* ]]; then
  for t in "$tests"/test_cuda_*; do
    [ -x "$t" ] || continue
    "$t" --verbose -j1 >"$out/$(basename "$t").log" 2>&1; rc=$?
    summary+=("$(basename "$t"): $(grep -a Synthesis "$out/$(basename "$t").log" | sed 's/.*Synthesis: //') (exit $rc)")
  done
fi

if [[ $stages == *" memcheck "* ]]; then
  # a few steps of each kind of layer under memcheck: out-of-bounds, misaligned, leaks
  sanitizer=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
  for m in smallcnn mobilenet_v3_small; do
    "$sanitizer" --tool memcheck --leak-check full --error-exitcode 3 "$bin/bench_train_gpu" "$m" \
      --batch 8 --size 64 --steps 2 --warmup 1 >"$out/memcheck_$m.log" 2>&1; rc=$?
    summary+=("memcheck $m: $(grep -a -E 'ERROR SUMMARY' "$out/memcheck_$m.log" | tail -1) (exit $rc)")
  done
fi

if [[ $stages == *" e2e "* ]]; then
  BIN=$bin scripts/bench_e2e_gpu.sh resnet50 15 300 3 /tmp/stoker-e2e >"$out/bench_e2e.log" 2>&1
  summary+=("bench_e2e: $(grep -E '^e2e_' "$out/bench_e2e.log" | tr '\n' ' ')")
fi

if [[ $stages == *" train "* ]]; then
  BIN=$bin PYTHON=$py scripts/bench_train.sh ${TRAIN_MODELS:-} >"$out/bench_train.md" 2>"$out/bench_train.err"
  summary+=("bench_train: $(grep -E '^min_ratio' "$out/bench_train.md" | tr '\n' ' ')")
fi

if [[ $stages == *" loader "* ]]; then
  scripts/bench_proto.sh --batches 100 --reps 6 >"$out/bench_proto.log" 2>&1
  summary+=("bench_proto: $(grep -E '^two-frame' "$out/bench_proto.log" | tail -1)")
  cp docs/BENCHMARKS.md "$out/BENCHMARKS.before.md"
  CORES=${CORES:-"1 2 4 8 15"} PYTHON=$py scripts/bench_loader.sh h100 >"$out/bench_loader.log" 2>&1
  cp docs/BENCHMARKS.md "$out/BENCHMARKS.md"
  summary+=("$(tail -1 "$out/bench_loader.log")")
fi

echo "gpu_check.sh on $(cat "$out/gpu.txt")"
printf '  %s\n' "${summary[@]}"
