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
# --gpus N trains data-parallel on N GPUs (one stoker-train per GPU, --batch-size per GPU;
# on the CPU backend N CPU ranks, for tests): checked here against the GPUs present.
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
  # a tip, from one file: photos (over 20 KB) without restart markers (no DRI segment,
  # FF DD, in the headers) make the loaders entropy-decode whole rows; a lossless copy
  # with markers is decoded faster
  first=$(find "$data/train" -type f \( -iname '*.jpg' -o -iname '*.jpeg' \) -size +20k 2>/dev/null | head -1 || true)
  if [ -n "$first" ] && ! LC_ALL=C grep -q $'\xff\xdd' < <(head -c 65536 "$first"); then
    echo "run_pipeline.sh: tip: build/bin/stoker-data shrink $data $data-restart --max-side 8192 --restart" \
      "writes a copy with the same pixels that the loaders decode ~1.4x faster (docs/BENCHMARKS.md)"
  fi
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
# --gpus N: one rank per GPU, rank r on device r, so N must not exceed the GPUs present
gpus=1 prev=""
for a in "$@"; do
  [ "$prev" = "--gpus" ] && gpus=$a
  case $a in --gpus=*) gpus=${a#--gpus=};; esac
  prev=$a
done
if [ "$gpus" != 1 ] && [ ${#device[@]} -gt 0 ]; then
  have=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
  if [ "$gpus" -gt "$have" ] 2>/dev/null; then
    echo "run_pipeline.sh: --gpus $gpus, but this host has $have GPU(s)" >&2; exit 2
  fi
  grep -qs "stoker: NCCL ON" build/configure.log ||
    { echo "run_pipeline.sh: --gpus $gpus needs NCCL, which this build lacks (build/configure.log)" >&2; exit 2; }
  backend="$backend x $gpus GPUs"
fi
echo "run_pipeline.sh: training on $backend: stoker-run $* ${device[*]}"
exec build/bin/stoker-run "$@" "${device[@]}"
