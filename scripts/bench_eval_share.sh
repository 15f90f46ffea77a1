#!/usr/bin/env bash
# The evaluator within its own memory share (issue 7), on the GPU test machine: a
# 2 GiB card's plan (--gpu gtx1050-2g) with --eval-share 0.25 on Fashion-MNIST, the whole
# pipeline (loaders, trainer, evaluator beside it on the same GPU). nvidia-smi's
# per-process memory is sampled every 0.2 s through the run; each process's peak above a
# bare CUDA context (measured here, as bench_train_gpu measures it) is set against its
# plan above the preset's reserve: the trainer's plan (stoker-train's table, peak_mib) and
# the evaluator's (stoker-eval's "eval plan" line: an inference-only network in the
# largest batch that fits 512 MiB). Also stoker-eval alone on the final checkpoint, whose
# own device-memory figure is clean (no other process allocating meanwhile).
# usage: [BIN=build/bin] [MODEL=resnet18] [SIZE=64] [EPOCHS=2] [FMNIST_SOURCE=dir]
#        scripts/bench_eval_share.sh [WORKDIR]
set -uo pipefail
cd "$(dirname "$0")/.."
bin=${BIN:-build/bin}
model=${MODEL:-resnet18}
size=${SIZE:-64}
epochs=${EPOCHS:-2}
work=${1:-/tmp/stoker-eval-share}
data=$work/fashion-mnist
mkdir -p "$work"
[ -f "$data/stoker.index" ] ||
  "$bin"/stoker-data fashion-mnist "$data" ${FMNIST_SOURCE:+--source "$FMNIST_SOURCE"} >/dev/null || exit 1
bare=$("$bin"/bench_train_gpu smallcnn --size 28 --batch 8 --steps 2 --warmup 1 --precision fp32 --classes 10 | tail -1)
used=$(sed -nE 's/.*used_mib=([0-9.]+).*/\1/p' <<<"$bare"); above=$(sed -nE 's/.*above_context_mib=([0-9.]+).*/\1/p' <<<"$bare")
context=$(awk -v u="$used" -v a="$above" 'BEGIN{printf "%.0f", u - a}')
rm -rf "$work/run"
"$bin"/stoker-run --data-path "$data" --model "$model" --device cuda --gpu gtx1050-2g --eval-share 0.25 \
  --epochs "$epochs" -b 512 --train-crop-size "$size" --val-resize-size "$size" --val-crop-size "$size" \
  --output-dir "$work/run" >"$work/run.log" 2>&1 &
pid=$!
: >"$work/smi.csv"
while kill -0 "$pid" 2>/dev/null; do
  nvidia-smi --query-compute-apps=pid,process_name,used_memory --format=csv,noheader,nounits >>"$work/smi.csv" 2>/dev/null
  sleep 0.2
done
wait "$pid"; rc=$?
peak() { awk -F', *' -v n="$1" '$2 ~ n && $3 > m {m = $3} END{print m + 0}' "$work/smi.csv"; }
t_peak=$(peak stoker-train); e_peak=$(peak stoker-eval)
t_plan=$(sed -nE 's/.*plan: micro_batch=.* peak_mib=([0-9]+).*/\1/p' "$work/run.log" | head -1)
e_line=$(grep -m1 "eval plan:" "$work/run.log")
e_plan=$(sed -nE 's/.*peak ([0-9.]+) MiB of a ([0-9.]+) MiB share.*/\1/p' <<<"$e_line")
share=$(sed -nE 's/.*of a ([0-9.]+) MiB share.*/\1/p' <<<"$e_line")
reserve=256 # the gtx1050-2g preset's context reserve (vram_preset.c)
echo "bench_eval_share.sh: $(date -u +%F), $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1), $model ${size}px, batch 512, gtx1050-2g plan, --eval-share 0.25, stoker-run rc=$rc"
echo "bare CUDA context here: ${context} MiB (the preset reserves $reserve MiB for a GTX 1050's)"
echo "$e_line"
echo "| process | plan above its reserve | measured peak above a bare context (nvidia-smi) | measured / plan |"
echo "| --- | --- | --- | --- |"
row() { awk -v n="$1" -v p="$2" -v m="$3" -v c="$context" -v r="$reserve" \
  'BEGIN{printf "| %s | %.0f MiB | %.0f MiB | %.2f |\n", n, p - r, m - c, (m - c) / (p - r)}'; }
row stoker-train "${t_plan:-0}" "$t_peak"
row "stoker-eval (share ${share:-?} MiB)" "${e_plan:-0}" "$e_peak"
grep -E "top-1|eval plan|device memory" "$work/run.log" | tail -4
ck=$work/run/checkpoints/last.safetensors
"$bin"/stoker-eval --data-path "$data" --checkpoint "$ck" --model "$model" --device cuda --gpu gtx1050-2g \
  --vram-budget 512MiB -b 512 --val-resize-size "$size" --val-crop-size "$size" 2>&1 |
  grep -E "eval plan|inference only|top-1" | head -3
