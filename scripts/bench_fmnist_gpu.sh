#!/usr/bin/env bash
# Issue 7's targets on the GPU test machine: Fashion-MNIST from JPEGs through the whole
# pipeline (stoker-run: loaders, the CUDA trainer, the evaluator beside it), smallresnet,
# bf16, batch 512, with its peers in the same run:
#   - time from launch to >= 93.5% val top-1 (target 30 s, dataset prepared), final top-1
#     (target >= 94%);
#   - an epoch from JPEGs against the same model's epoch on data already on the GPU
#     (bench_train_gpu --graphs: the same model, batch, precision, optimizer and class
#     count, uint8 pixels and labels resident in a device input buffer, each step as
#     stoker-train takes it: normalised, replayed from a CUDA graph; 585 steps = five epochs after 300 of warm-up; run
#     just before each pipeline run, each run's epoch judged against its own; target
#     <= 1.05x);
#   - REPEATS (3) whole-pipeline runs with the evaluator and as many without, interleaved,
#     each one's figures listed, so one run's luck (or a bad one) shows;
#   - the trainer's images/s with the evaluator (stoker-run's default --eval-duty, or
#     WITH_FLAGS) against --no-eval, each over its own reference (target: <= 3% drop);
#   - the same two targets from runs at the same pace only (scripts/fmnist_pace_summary.py:
#     the GPU machine switches between two paces from one process to the next);
#   - PyTorch: the same model and JPEGs through torchvision's DataLoader, and from tensors
#     already on the GPU (scripts/bench_fmnist_gpu_torch.py).
# FMNIST_SOURCE: the four *-ubyte.gz files (stoker-data fashion-mnist --source), when the
# machine has no dataset-fashion-mnist package. Build first (scripts/gpu_check.sh).
# usage: [BIN=build/bin] [EPOCHS=10] [REPEATS=3] [PYTHON=python3] [TORCH_MODES="loader tensors"]
#        scripts/bench_fmnist_gpu.sh [WORKDIR]
set -uo pipefail
cd "$(dirname "$0")/.."
bin=${BIN:-build/bin}
py=${PYTHON:-python3}
epochs=${EPOCHS:-10}
repeats=${REPEATS:-3}
work=${1:-/tmp/stoker-fmnist-gpu}
data=$work/fashion-mnist
mkdir -p "$work"
[ -f "$data/stoker.index" ] ||
  "$bin"/stoker-data fashion-mnist "$data" ${FMNIST_SOURCE:+--source "$FMNIST_SOURCE"} >/dev/null || exit 1
recipe=(--data-path "$data" --model smallresnet --device cuda --epochs "$epochs" -b 512 --opt adamw
        --lr 0.003 --weight-decay 0.05 --lr-scheduler cosineannealinglr --lr-per-iteration
        --label-smoothing 0.1 --rrc-scale 1,1)
num() { sed -nE "s/.*\"$1\":([0-9.eE+-]+).*/\1/p"; }
# The GPU's SM clock, throttle reasons and utilisation twice a second while a command runs
# (into FILE), and their summary: runs of one binary go at ~91k or ~150k images/s, PyTorch's
# too, and this says whether the card's clock or another tenant differs between them
smi_start() { command -v nvidia-smi >/dev/null || return 0
  nvidia-smi --query-gpu=clocks.sm,clocks_throttle_reasons.active,utilization.gpu,power.draw \
    --format=csv,noheader,nounits -lms 500 >"$1" 2>/dev/null & smi_pid=$!; }
smi_stop() { [ -n "${smi_pid:-}" ] && kill "$smi_pid" 2>/dev/null; wait "${smi_pid:-}" 2>/dev/null; smi_pid=; }
smi_summary() { [ -s "$1" ] || { echo "-"; return; }
  local med; med=$(cut -d, -f1 "$1" | sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}')
  awk -F', *' -v med="$med" '{u += $3; p += $4; t[$2]++} END {r = "";
    for (k in t) r = r (r ? " " : "") k " x" t[k];
    printf "SM %d MHz (median), %.0f%% busy, %.0f W, throttle %s", med, u / NR, p / NR, r}' "$1"; }
run() { # NAME EXTRA...: one stoker-run into WORKDIR/NAME
  local name=$1; shift
  rm -rf "$work/$name"
  smi_start "$work/$name.smi"
  "$bin"/stoker-run "${recipe[@]}" --output-dir "$work/$name" "$@" >"$work/$name.log" 2>&1
  smi_stop
}
reference() { # NAME: five epochs' steps on data already on the GPU, after a second of
  # warm-up (an idle GPU's clocks take that long to rise: 117 steps after 20 measured 92k
  # or 155k)
  smi_start "$work/$1.ref.smi"
  "$bin"/bench_train_gpu smallresnet --size 28 --batch 512 --steps 585 --warmup 300 --precision bf16 \
    --classes 10 --opt adamw --graphs | tail -1 | sed -nE 's/.*images_per_s=([0-9.]+).*/\1/p'
  smi_stop
}
median() { sort -n | awk '{v[NR] = $1} END{if (NR % 2) print v[(NR + 1) / 2]; else if (NR) print (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
# with and without the evaluator interleaved, each right after a reference run. Runs of
# the same binary have gone at 155k or at 90k images/s (the reference too, minutes apart):
# each process's start-up algorithm search made its own choice (cuda_conv.c's PICK), so
# every run's figures are listed, raw medians beside the per-run ratios
declare -A ref
refs=""
for r in $(seq 1 "$repeats"); do
  ref[with$r]=$(reference "with$r"); run "with$r" ${WITH_FLAGS:-}
  ref[without$r]=$(reference "without$r"); run "without$r" --no-eval
  refs="$refs ${ref[with$r]} ${ref[without$r]}"
done
echo "bench_fmnist_gpu.sh: $(date -u +%F), $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1), $epochs epochs"
# wall_s counts from the run directory's creation, a moment after launch: close enough
rm -f "$work/ratios.txt" "$work/runs.txt"
first_at() { grep '"kind":"eval"' "$1" | while read -r l; do
  t=$(num top1 <<<"$l"); w=$(num wall_s <<<"$l")
  awk -v t="$t" 'BEGIN{exit !(t >= 93.5)}' && { echo "$w"; break; }; done; }
epoch_s() { grep '"kind":"epoch"' "$1" | tail -n +2 | num epoch_seconds | awk '{s += $1; n++} END{if (n) printf "%.3f", s / n}'; }
# the wall time from one epoch's record to the next: the epoch with its boundary
# (checkpoint, end-of-epoch accounting), what a user waits for
wall_epoch_s() { grep '"kind":"epoch"' "$1" | num wall_s | awk 'NR > 1 {s += $1 - p; n++} {p = $1} END{if (n) printf "%.3f", s / n}'; }
evals() { grep -c '"kind":"eval"' "$1"; }
ips() { grep '"kind":"train"' "$1" | num images_per_s | tail -n +3 | awk '{s += $1; n++} END{if (n) printf "%.0f", s / n}'; }
echo "| stoker run (whole pipeline, JPEGs) | first >= 93.5% at | final / best top-1 | evaluations | epoch (mean of 1..) | epoch, wall clock | trainer images/s | reference just before, images/s | epoch / reference epoch | wall epoch / reference epoch | images/s / reference |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
for name in $(for r in $(seq 1 "$repeats"); do echo "with$r without$r"; done); do
  m=$work/$name/metrics.jsonl
  final=$(grep '"kind":"eval"' "$m" | tail -1 | num top1)
  best=$(grep '"kind":"eval"' "$m" | num top1 | sort -n | tail -1)
  first=$(first_at "$m" || true)
  e=$(epoch_s "$m"); i=$(ips "$m"); rf=${ref[$name]:-0}; we=$(wall_epoch_s "$m"); ne=$(evals "$m")
  # 59,904 = 117 steps of 512: the images of one epoch
  er=$(awk -v e="${e:-0}" -v r="$rf" 'BEGIN{if (r > 0) printf "%.2f", e * r / 59904; else print "-"}')
  wr=$(awk -v e="${we:-0}" -v r="$rf" 'BEGIN{if (r > 0) printf "%.2f", e * r / 59904; else print "-"}')
  ir=$(awk -v i="${i:-0}" -v r="$rf" 'BEGIN{if (r > 0) printf "%.3f", i / r; else print "-"}')
  printf "| %s | %s s | %s%% / %s%% | %s | %s s | %s s | %s | %s | %s | %s | %s |\n" "$name" "$(printf %.1f "${first:-0}")" \
    "$(printf %.2f "${final:-0}")" "$(printf %.2f "${best:-0}")" "$ne" "$e" "$we" "$i" "$rf" "$er" "$wr" "$ir"
  echo "$name $er $ir $wr" >>"$work/ratios.txt"
  echo "$name ${name%%[0-9]*} ${i:-0} $rf ${e:-0} ${we:-0} 59904" >>"$work/runs.txt"
done
echo
echo "| run | the GPU during the run | during its reference |"
echo "| --- | --- | --- |"
for name in $(for r in $(seq 1 "$repeats"); do echo "with$r without$r"; done); do
  echo "| $name | $(smi_summary "$work/$name.smi") | $(smi_summary "$work/$name.ref.smi") |"
done
col() { grep "^$1" "$work/ratios.txt" | awk -v c="$2" '{print $c}' | median; }
e_ratio=$(col with 2)
i_with=$(col with 3)
i_without=$(col without 3)
echo
echo "| stoker, medians over the runs | value | target |"
echo "| --- | --- | --- |"
echo "| epoch from JPEGs / epoch on data already on the GPU (bench_train_gpu just before; images/s: $refs) | ${e_ratio:--} | <= 1.05 |"
echo "| the same by wall clock, epoch record to epoch record (its boundary included), with the evaluator / --no-eval | $(col with 4) / $(col without 4) | <= 1.05 |"
raw_with=$(for r in $(seq 1 "$repeats"); do ips "$work/with$r/metrics.jsonl"; echo; done | median)
raw_without=$(for r in $(seq 1 "$repeats"); do ips "$work/without$r/metrics.jsonl"; echo; done | median)
echo "| trainer images/s, with the evaluator / --no-eval (raw medians) | ${raw_with:--} / ${raw_without:--} ($(awk -v a="${raw_with:-0}" -v b="${raw_without:-0}" 'BEGIN{if (b > 0) printf "%+.1f%%", 100 * (a / b - 1); else print "-"}')) | >= -3% |"
echo "| trainer images/s over its reference, with the evaluator / --no-eval | ${i_with:--} / ${i_without:--} ($(awk -v a="${i_with:-0}" -v b="${i_without:-0}" 'BEGIN{if (b > 0) printf "%+.1f%%", 100 * (a / b - 1); else print "-"}')) | >= -3% |"
# the machine switches pace between processes (see fmnist_pace_summary.py): the figures
# to judge by compare runs and references at the same pace only
echo
"$py" scripts/fmnist_pace_summary.py "$work/runs.txt"
echo
for mode in ${TORCH_MODES:-loader tensors}; do
  LD_LIBRARY_PATH= "$py" scripts/bench_fmnist_gpu_torch.py "$data" "$mode" "$epochs" 512 12 2>&1 | grep -E "^torch"
done
exit 0
