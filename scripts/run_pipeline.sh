#!/usr/bin/env bash
# The main job: train an image classifier on DATASET (an ImageFolder: DATASET/train/<class>/
# and optionally DATASET/val/<class>/), evaluating the val split after every epoch. Without
# DATASET it trains the default model (smallcnn) on Fashion-MNIST as JPEGs in
# data/fashion-mnist (made on first use). Further arguments go to stoker-train (flags as
# torchvision's references/classification/train.py: --model --epochs --batch-size --lr ...).
#
# Today: the CPU backend trains (the CUDA trainer, the separate evaluator process,
# progress plots and fault recovery are issues 6 and 7); the run says which it used.
# usage: scripts/run_pipeline.sh [DATASET [stoker-train flags]]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

jobs=$(nproc)
loaders=$(( jobs > 2 ? jobs / 2 : 1 ))
if [ $# -ge 1 ]; then
  data=$1; shift
  [ -d "$data" ] || { echo "run_pipeline.sh: $data: no such directory" >&2; exit 2; }
  build/bin/stoker-data index "$data"
  set -- --data-path "$data" -j "$loaders" "$@"
else
  data=data/fashion-mnist
  build/bin/stoker-data fashion-mnist "$data"
  # The recipe measured in docs/BENCHMARKS.md: >= 90% val top-1 in 2 epochs on the CPU.
  set -- --data-path "$data" -j "$loaders" --model smallcnn --epochs 2 --batch-size 128 \
    --opt adamw --lr 0.003 --weight-decay 0.05 --lr-scheduler cosineannealinglr \
    --lr-per-iteration --label-smoothing 0.1 --rrc-scale 1,1
fi
echo "run_pipeline.sh: training on the CPU backend (no CUDA trainer yet): stoker-train $*"
build/bin/stoker-train "$@"
