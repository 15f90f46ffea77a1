#!/usr/bin/env bash
# Issue 5's acceptance, with its peer in the same run: the small CNN on Fashion-MNIST
# JPEGs for 2 epochs on the CPU, stoker-train (the recipe of run_pipeline.sh) against
# PyTorch + torchvision with the same model, recipe and files. Prints both runs' per-epoch
# val top-1 and time. usage: scripts/bench_fmnist_cpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x build/bin/stoker-train ] || scripts/setup.sh >/dev/null
/usr/bin/python3 -c "import torchvision" 2>/dev/null || scripts/setup.sh --with-torch >/dev/null
build/bin/stoker-data fashion-mnist data/fashion-mnist >/dev/null
echo "bench_fmnist_cpu.sh: $(date -u +%F), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
out=$(mktemp -d /tmp/stoker-fmnist-XXXXXX)
trap 'rm -rf "$out"' EXIT
start=$(date +%s.%N)
build/bin/stoker-train --data-path data/fashion-mnist -j 1 --model smallcnn --epochs 2 \
  --batch-size 128 --opt adamw --lr 0.003 --weight-decay 0.05 --lr-scheduler cosineannealinglr \
  --lr-per-iteration --label-smoothing 0.1 --rrc-scale 1,1 --output-dir "$out" --print-freq 100000 |
  grep -E "^epoch [0-9]+:"
echo "stoker total: $(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN{printf "%.1f", e-s}') s"
/usr/bin/python3 scripts/bench_fmnist_torch.py data/fashion-mnist "$(nproc)" 1
