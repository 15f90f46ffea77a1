#!/usr/bin/env bash
# Issue 5's CPU target: a resnet18 training step at batch 16, 224x224, on the CPU backend
# against Debian's PyTorch CPU step, same threads, one run. Last line: ratio=R (stoker's
# step time / PyTorch's; the target is <= 1.5).
# usage: scripts/bench_train_cpu.sh [MODEL] [BATCH] [SIZE] [STEPS]
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-resnet18}; batch=${2:-16}; size=${3:-224}; steps=${4:-5}
[ -x build/bin/bench_step ] || scripts/setup.sh >/dev/null
/usr/bin/python3 -c "import torchvision" 2>/dev/null || scripts/setup.sh --with-torch >/dev/null
threads=$(nproc)
echo "bench_train_cpu.sh: $(date -u +%F), $threads cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
ours=$(OMP_NUM_THREADS=$threads build/bin/bench_step --model "$model" --batch "$batch" --size "$size" --steps "$steps")
theirs=$(/usr/bin/python3 scripts/bench_train_cpu.py "$model" "$batch" "$size" "$steps" "$threads" 2>/dev/null)
echo "$ours"; echo "$theirs"
a=$(sed -E 's/.*: ([0-9.]+) ms\/step.*/\1/' <<<"$ours"); b=$(sed -E 's/.*: ([0-9.]+) ms\/step.*/\1/' <<<"$theirs")
echo "ratio=$(awk -v a="$a" -v b="$b" 'BEGIN{printf "%.2f", a/b}')"
