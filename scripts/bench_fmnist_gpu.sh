#!/usr/bin/env bash
# Issue 7's targets on the GPU test machine: Fashion-MNIST from JPEGs through the whole
# pipeline (stoker-run: loaders, the CUDA trainer, the evaluator beside it), smallresnet,
# bf16, batch 512, with its peers in the same run:
#   - time from launch to >= 93.5% val top-1 (target 30 s, dataset prepared), final top-1
#     (target >= 94%);
#   - an epoch from JPEGs against the same model's epoch on data already on the GPU
#     (bench_train_gpu's synthetic rate; target <= 1.05x);
#   - the trainer's images/s with the evaluator against --no-eval (target: <= 3% drop);
#   - PyTorch: the same model and JPEGs through torchvision's DataLoader, and from tensors
#     already on the GPU (scripts/bench_fmnist_gpu_torch.py).
# FMNIST_SOURCE: the four *-ubyte.gz files (stoker-data fashion-mnist --source), when the
# machine has no dataset-fashion-mnist package. Build first (scripts/gpu_check.sh).
# usage: [BIN=build/bin] [EPOCHS=10] [PYTHON=python3] scripts/bench_fmnist_gpu.sh [WORKDIR]
set -uo pipefail
cd "$(dirname "$0")/.."
bin=${BIN:-build/bin}
py=${PYTHON:-python3}
epochs=${EPOCHS:-10}
work=${1:-/tmp/stoker-fmnist-gpu}
data=$work/fashion-mnist
mkdir -p "$work"
[ -f "$data/stoker.index" ] ||
  "$bin"/stoker-data fashion-mnist "$data" ${FMNIST_SOURCE:+--source "$FMNIST_SOURCE"} >/dev/null || exit 1
recipe=(--data-path "$data" --model smallresnet --device cuda --epochs "$epochs" -b 512 --opt adamw
        --lr 0.003 --weight-decay 0.05 --lr-scheduler cosineannealinglr --lr-per-iteration
        --label-smoothing 0.1 --rrc-scale 1,1)
num() { sed -nE "s/.*\"$1\":([0-9.eE+-]+).*/\1/p"; }
run() { # NAME EXTRA...: one stoker-run into WORKDIR/NAME
  local name=$1; shift
  rm -rf "$work/$name"
  "$bin"/stoker-run "${recipe[@]}" --output-dir "$work/$name" "$@" >"$work/$name.log" 2>&1
}
run with
run without --no-eval
echo "bench_fmnist_gpu.sh: $(date -u +%F), $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1), $epochs epochs"
m=$work/with/metrics.jsonl
# wall_s counts from the run directory's creation, a moment after launch: close enough
first=$(grep '"kind":"eval"' "$m" | while read -r l; do
  t=$(num top1 <<<"$l"); w=$(num wall_s <<<"$l")
  awk -v t="$t" 'BEGIN{exit !(t >= 93.5)}' && { echo "$w"; break; }; done)
final=$(grep '"kind":"eval"' "$m" | tail -1 | num top1)
best=$(grep '"kind":"eval"' "$m" | num top1 | sort -n | tail -1)
epoch_s() { grep '"kind":"epoch"' "$1" | tail -n +2 | num epoch_seconds | awk '{s += $1; n++} END{if (n) printf "%.2f", s / n}'; }
ips() { grep '"kind":"train"' "$1" | num images_per_s | tail -n +3 | awk '{s += $1; n++} END{if (n) printf "%.0f", s / n}'; }
e_with=$(epoch_s "$m"); e_without=$(epoch_s "$work/without/metrics.jsonl")
i_with=$(ips "$m"); i_without=$(ips "$work/without/metrics.jsonl")
syn=$("$bin"/bench_train_gpu smallresnet --size 28 --batch 512 --steps 50 --warmup 10 --precision bf16 | tail -1)
rate=$(sed -nE 's/.*images_per_s=([0-9.]+).*/\1/p' <<<"$syn")
gpu_epoch=$(awk -v r="${rate:-0}" 'BEGIN{if (r > 0) printf "%.2f", 59904 / r}')
echo "| stoker (whole pipeline, JPEGs) | value | target |"
echo "| --- | --- | --- |"
echo "| first val top-1 >= 93.5% at | ${first:-not reached} s | <= 30 s |"
echo "| final / best val top-1 | ${final:--}% / ${best:--}% | >= 94% |"
echo "| epoch from JPEGs (mean of epochs 1..) | ${e_with:--} s | |"
echo "| epoch on data already on the GPU (bench_train_gpu, $rate images/s) | ${gpu_epoch:--} s | |"
echo "| ratio | $(awk -v a="${e_with:-0}" -v b="${gpu_epoch:-0}" 'BEGIN{if (b > 0) printf "%.2f", a/b; else print "-"}') | <= 1.05 |"
echo "| trainer images/s with the evaluator / --no-eval | ${i_with:--} / ${i_without:--} ($(awk -v a="${i_with:-0}" -v b="${i_without:-0}" 'BEGIN{if (b > 0) printf "%+.1f%%", 100 * (a / b - 1); else print "-"}')) | >= -3% |"
echo
for mode in loader tensors; do
  LD_LIBRARY_PATH= "$py" scripts/bench_fmnist_gpu_torch.py "$data" "$mode" "$epochs" 512 12 2>&1 | grep -E "^torch"
done
exit 0
