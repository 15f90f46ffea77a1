#!/usr/bin/env bash
# The main job: train an image classifier on DATASET (an ImageFolder: DATASET/train/<class>/
# and optionally DATASET/val/<class>/) with stoker-run: N loader processes, stoker-train and
# stoker-eval (which evaluates every checkpoint on the val split beside training), a live
# progress line and a run directory (runs/<time>/: config.json, metrics.jsonl/.csv,
# checkpoints/, plots/). Without DATASET it trains the default model (smallcnn) on
# Fashion-MNIST as JPEGs in data/fashion-mnist (made on first use). Further arguments go to
# stoker-run, which passes what it does not own (-j, --output-dir, --resume) to stoker-train
# (flags as torchvision's references/classification/train.py: --model --epochs --lr ...).
# Ctrl-C stops with a final checkpoint; `build/bin/stoker-run --resume runs/<time>` goes on.
# usage: scripts/run_pipeline.sh [DATASET [flags]]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

# The backend: the GPU if there is one (and this build has the CUDA backend), else the CPU.
gpu=""
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  gpu=$(nvidia-smi -L | head -1 | cut -d'(' -f1)
fi
if [ -n "$gpu" ] && grep -qs "stoker: CUDA backend ON" build/configure.log; then
  backend="the CUDA backend on $gpu"; device=(--device cuda)
elif [ -n "$gpu" ]; then
  backend="the CPU backend ($gpu found, but this build has no CUDA backend: build/configure.log says why)"; device=()
else
  backend="the CPU backend (no GPU found)"; device=()
fi
if [ $# -ge 1 ]; then
  data=$1; shift
  [ -d "$data" ] || { echo "run_pipeline.sh: $data: no such directory" >&2; exit 2; }
  build/bin/stoker-data index "$data"
  set -- --data-path "$data" "$@"
else
  data=data/fashion-mnist
  build/bin/stoker-data fashion-mnist "$data"
  # The recipe measured in docs/BENCHMARKS.md: >= 90% val top-1 in 2 epochs on the CPU.
  set -- --data-path "$data" --model smallcnn --epochs 2 --batch-size 128 \
    --opt adamw --lr 0.003 --weight-decay 0.05 --lr-scheduler cosineannealinglr \
    --lr-per-iteration --label-smoothing 0.1 --rrc-scale 1,1
fi
case " $* " in *" --device "*) device=(); backend="the backend given";; esac
echo "run_pipeline.sh: training on $backend: stoker-run $* ${device[*]}"
exec build/bin/stoker-run "$@" "${device[@]}"
