#!/usr/bin/env bash
# Issue 6's end-to-end figure, on the GPU test machine: stoker-train --device cuda fed
# from JPEGs by N loaders (stoker-data synth: 500x375 q90 photos, RandomResizedCrop 224 +
# flip) against the same model's rate on synthetic data already on the GPU
# (bench_train_gpu), in one run. Prints both, the ratio (target >= 0.95: the input
# pipeline hidden) and the trainer's own epoch lines. Build first (scripts/gpu_check.sh).
# usage: [BIN=build/bin] scripts/bench_e2e_gpu.sh [MODEL] [LOADERS] [PER_CLASS] [EPOCHS] [WORKDIR]
set -uo pipefail
cd "$(dirname "$0")/.."
bin=${BIN:-build/bin}
model=${1:-resnet50}; loaders=${2:-15}; per=${3:-300}; epochs=${4:-3}; work=${5:-/tmp/stoker-e2e}
mkdir -p "$work"
[ -f "$work/synth/stoker.index" ] ||
  "$bin"/stoker-data synth "$work/synth" --classes 20 --per-class "$per" --val-per-class 10 >/dev/null
# the synthetic rate as stoker-train steps (input buffer, normalise, CUDA graph replay)
synthetic=$("$bin"/bench_train_gpu "$model" --steps 30 --precision bf16 --graphs | tail -1)
echo "$synthetic"
rm -rf "$work/run"
"$bin"/stoker-train --data-path "$work/synth" --model "$model" --device cuda -b 256 \
  --epochs "$epochs" -j "$loaders" --lr 0.1 --print-freq 1000 --output-dir "$work/run" 2>&1 |
  tee "$work/train.log" | grep -E "^stoker-train|^epoch [0-9]+:"
# the last epoch's rate: the first includes cuDNN's algorithm search and loader start-up
e2e=$(grep -E "^epoch [0-9]+:" "$work/train.log" | tail -1 | sed -nE 's/.*s, ([0-9.]+) images\/s.*/\1/p')
syn=$(sed -nE 's/.*images_per_s=([0-9.]+).*/\1/p' <<<"$synthetic")
echo "e2e_images_per_s=${e2e:-?} synthetic_images_per_s=${syn:-?} loaders=$loaders"
echo "e2e_ratio=$(awk -v a="${e2e:-0}" -v b="${syn:-0}" 'BEGIN{if (b > 0) printf "%.2f", a/b; else print "?"}')"
