#!/usr/bin/env bash
# Issue 6's benchmark, on the GPU test machine: training images/s of stoker's CUDA backend
# against PyTorch in the same run, eager and torch.compile (inductor, default mode), bf16
# autocast, channels_last, SGD, batch 256, 224x224, synthetic data already on the GPU.
# Prints one row per model and, last, min_ratio_vs_eager=R and min_ratio_vs_compiled=R
# (the smallest ratio over the models). --cpu runs the CPU backend's step benchmark
# (scripts/bench_train_cpu.sh) instead. stoker's steps are taken as stoker-train takes them
# (bench_train_gpu --graphs: uint8 pixels in a device input buffer, normalised in the step,
# the pass replayed from a CUDA graph after warm-up); NO_GRAPHS=1 times the bare net's
# forward/backward/step calls instead.
# Build first on the development machine (see scripts/gpu_check.sh); PYTHON is the
# interpreter with PyTorch (default python3, run with a clean LD_LIBRARY_PATH).
# usage: scripts/bench_train.sh [--cpu] [--no-compile] [MODEL...]
set -uo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--cpu" ]; then shift; exec scripts/bench_train_cpu.sh "$@"; fi
compile=1
if [ "${1:-}" = "--no-compile" ]; then compile=0; shift; fi
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(resnet18 resnet50 mobilenet_v3_large efficientnet_b0)
py=${PYTHON:-python3}
steps=${STEPS:-30}
graphs=--graphs; [ -n "${NO_GRAPHS:-}" ] && graphs=
field() { sed -nE "s/.*$1=([0-9.]+).*/\1/p" <<<"$2"; }
echo "bench_train.sh: $(date -u +%F), $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)"
echo "| model | stoker images/s | set-up s | PyTorch eager | ratio | torch.compile | ratio | compile s | stoker MiB | eager peak MiB |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
min_e=999; min_c=999
for m in "${models[@]}"; do
  ours=$("${BIN:-build/bin}"/bench_train_gpu "$m" --steps "$steps" --precision bf16 $graphs 2>&1 | tail -1)
  eager=$(LD_LIBRARY_PATH= "$py" scripts/bench_train_gpu.py "$m" bf16 --steps "$steps" 2>&1 | tail -1)
  comp=""
  [ $compile = 1 ] && comp=$(LD_LIBRARY_PATH= "$py" scripts/bench_train_gpu.py "$m" compile --steps "$steps" 2>&1 | tail -1)
  s=$(field images_per_s "$ours"); e=$(field images_per_s "$eager"); c=$(field images_per_s "$comp")
  re=$(awk -v a="$s" -v b="$e" 'BEGIN{if (b > 0) printf "%.2f", a/b; else print "-"}')
  rc=$(awk -v a="$s" -v b="$c" 'BEGIN{if (b > 0) printf "%.2f", a/b; else print "-"}')
  echo "| $m | ${s:--} | $(field setup_s "$ours") | ${e:--} | $re | ${c:--} | $rc | $(field setup_s "$comp") | $(field used_mib "$ours") | $(field peak_mib "$eager") |"
  [ "$re" != "-" ] && min_e=$(awk -v a="$min_e" -v b="$re" 'BEGIN{print (b < a) ? b : a}')
  [ "$rc" != "-" ] && min_c=$(awk -v a="$min_c" -v b="$rc" 'BEGIN{print (b < a) ? b : a}')
  [ -n "$s" ] || echo "stoker $m: $ours" >&2
done
echo "min_ratio_vs_eager=$min_e"
[ $compile = 1 ] && echo "min_ratio_vs_compiled=$min_c"
exit 0
