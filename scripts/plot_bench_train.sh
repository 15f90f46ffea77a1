#!/usr/bin/env bash
# Draws scripts/bench_train.sh's tables (one or more files of its output) as grouped bars:
# stoker, PyTorch eager and torch.compile training images/s per model (gnuplot-nox).
# usage: scripts/plot_bench_train.sh OUT.png BENCH_OUTPUT.md...
set -euo pipefail
out=${1:?usage: plot_bench_train.sh OUT.png BENCH_OUTPUT.md...}
shift
data=$(mktemp)
trap 'rm -f "$data"' EXIT
# rows "| model | stoker | set-up | eager | ratio | compile | ..." -> "model stoker eager compile"
awk -F'|' '$2 ~ /[a-z]/ && $3 ~ /[0-9]/ {gsub(/ /, "", $2); print $2, $3 + 0, $5 + 0, $7 + 0}' "$@" >"$data"
[ -s "$data" ] || { echo "plot_bench_train.sh: no table rows in $*" >&2; exit 1; }
gnuplot <<GP
set terminal pngcairo size 900,480 font ",11" noenhanced
set output "$out"
set title "Training images/s, batch 256, 224x224, bf16 (same run as each peer)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set ylabel "images/s"
set yrange [0:*]
set grid ytics
set key top right
plot "$data" using 2:xtic(1) title "stoker (CUDA backend)", \
     "" using 3 title "PyTorch eager", \
     "" using 4 title "torch.compile"
GP
echo "plot_bench_train.sh: wrote $out"
