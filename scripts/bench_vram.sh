#!/usr/bin/env bash
# Issue 8's benchmark, on the GPU test machine: stoker-train fitting a card it is not on.
# For each model, at 224x224 and an effective batch of 256 (a synthetic JPEG dataset):
#   - trained under --gpu PRESET (default gtx1050-2g): the plan's micro-batch x accum, the
#     plan's "above the context" figure, the device memory the process measured above the
#     bare CUDA context after each epoch (it must stay under the budget less the preset's
#     reserve), and images/s;
#   - the same model unconstrained (batch 256 in one pass, the plan's precision) for the
#     throughput beside it;
#   - at batch 32, fp32: stoker's device memory above the context (bench_train_gpu) against
#     PyTorch's torch.cuda.max_memory_allocated in the same run (target: <= 0.8x), as
#     planned and with batch norm + activation outputs recomputed in backward
#     (bench_train_gpu --recompute; vram_nodes.h), with each one's images/s.
# B32_ONLY=1: the batch-32 table alone.
# Build first (scripts/gpu_check.sh); PYTHON: the interpreter with PyTorch.
# usage: [BIN=build/bin] [PRESET=gtx1050-2g] scripts/bench_vram.sh [MODEL...]
set -uo pipefail
cd "$(dirname "$0")/.."
bin=${BIN:-build/bin}
py=${PYTHON:-python3}
preset=${PRESET:-gtx1050-2g}
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(resnet18 mobilenet_v3_large efficientnet_b0)
work=${WORK:-/tmp/stoker-vram}
mkdir -p "$work"
: >"$work/notes.txt"
[ -f "$work/synth/stoker.index" ] ||
  "$bin"/stoker-data synth "$work/synth" --classes 10 --per-class 160 --val-per-class 4 >/dev/null
field() { sed -nE "s/.*$1=([0-9.]+).*/\1/p" <<<"$2" | tail -1; }
# the last epoch's images/s and the largest device figure of a stoker-train log
rate() { grep -E "^epoch [0-9]+: train loss" "$1" | tail -1 | sed -nE 's/.*s, ([0-9.]+) images\/s.*/\1/p'; }
device() { sed -nE 's/^epoch [0-9]+: device memory ([0-9]+) MiB.*/\1/p' "$1" | sort -n | tail -1; }
train() { # LOG ARGS...: two epochs of the synthetic set
  local log=$1; shift
  "$bin"/stoker-train --data-path "$work/synth" --device cuda -b 256 --epochs 2 -j 12 \
    --print-freq 1000 --output-dir "$work/run" "$@" >"$log" 2>&1
}
echo "bench_vram.sh: $(date -u +%F), $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1), preset $preset"
echo "| model | plan (micro x accum) | plan above context MiB | measured above context MiB | limit MiB | plan / measured | images/s under $preset | images/s unconstrained | ratio |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
for m in "${models[@]}"; do
  [ -n "${B32_ONLY:-}" ] && break
  train "$work/$m.fit.log" --model "$m" --gpu "$preset"
  plan=$(grep -E "^plan: " "$work/$m.fit.log" | tail -1)
  # unconstrained in the precision the preset's plan ran (a gtx1050 plan is fp32)
  prec=$(sed -nE 's/.* precision=([a-z0-9]+).*/\1/p' <<<"$plan")
  train "$work/$m.free.log" --model "$m" ${prec:+--precision "$prec"}
  above=$(sed -nE 's/^  above the context +([0-9.]+) MiB.*/\1/p' "$work/$m.fit.log" | tail -1)
  budget=$(sed -nE 's/^  budget +([0-9.]+) MiB.*/\1/p' "$work/$m.fit.log" | tail -1)
  reserve=$(sed -nE 's/^  context reserve +([0-9.]+) MiB.*/\1/p' "$work/$m.fit.log" | tail -1)
  meas=$(device "$work/$m.fit.log"); fit=$(rate "$work/$m.fit.log"); free=$(rate "$work/$m.free.log")
  limit=$(awk -v b="${budget:-0}" -v r="${reserve:-0}" 'BEGIN{printf "%.0f", b - r}')
  echo "| $m | $(field micro_batch "$plan") x $(field accum "$plan") | ${above:--} | ${meas:--} | $limit |" \
       "$(awk -v a="${above:-0}" -v b="${meas:-0}" 'BEGIN{if (b > 0) printf "%.3f", a/b; else print "-"}') |" \
       "${fit:--} | ${free:--} | $(awk -v a="${fit:-0}" -v b="${free:-0}" 'BEGIN{if (b > 0) printf "%.2f", a/b; else print "-"}') |"
  [ -n "$meas" ] || { echo "stoker $m under $preset:"; tail -5 "$work/$m.fit.log"; } >&2
  # where plan and measurement part: the arenas as allocated (the workspace cut to what the
  # chosen algorithms need) and the device memory before the first step
  { echo "$m: $(grep -oE 'after setup, [0-9]+ MiB of it our arenas' "$work/$m.fit.log" | head -1)" \
         "($(grep -oE 'device memory [0-9]+ MiB above the CUDA context after' "$work/$m.fit.log" | head -1))"
    sed -nE '/^vram plan:/,/^plan: /p' "$work/$m.fit.log"; } >>"$work/notes.txt"
done
echo
cat "$work/notes.txt"
echo
ratio() { awk -v a="${1:-0}" -v b="${2:-0}" 'BEGIN{if (b > 0) printf "%.2f", a/b; else print "-"}'; }
# PyTorch's max_memory_allocated leaves out what its cuDNN/cuBLAS handles, workspaces and
# kernels take, which stoker's figure counts; its above_context_mib counts them as ours does
echo "| model | stoker MiB above context (b32 fp32) | with --recompute | PyTorch max allocated MiB | PyTorch above context MiB | ratio (allocated) | ratio with --recompute (allocated / above context) | stoker images/s / with --recompute |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
for m in "${models[@]}"; do
  ours=$("$bin"/bench_train_gpu "$m" --batch 32 --precision fp32 --steps 20 --warmup 5 2>&1 | tail -1)
  re=$("$bin"/bench_train_gpu "$m" --batch 32 --precision fp32 --steps 20 --warmup 5 --recompute 2>&1 | tail -1)
  theirs=$(LD_LIBRARY_PATH= "$py" scripts/bench_train_gpu.py "$m" fp32 --batch 32 --steps 5 2>&1 | tail -1)
  o=$(field above_context_mib "$ours"); r=$(field above_context_mib "$re"); t=$(field peak_mib "$theirs")
  ta=$(field above_context_mib "$theirs")
  echo "| $m | ${o:--} | ${r:--} | ${t:--} | ${ta:--} | $(ratio "$o" "$t") | $(ratio "$r" "$t") / $(ratio "$r" "$ta") | $(field images_per_s "$ours") / $(field images_per_s "$re") |"
done
exit 0
