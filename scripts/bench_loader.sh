#!/usr/bin/env bash
# Loader throughput against torchvision, in one run on one machine.
#
# Makes a synthetic ImageFolder of 4,000 JPEGs of 500x375 (q90, ~100 KiB), then measures
#   - stoker-loader -j N feeding bench_sink (a counting stand-in for the trainer), and
#   - torchvision ImageFolder + DataLoader (Pillow, RandomResizedCrop 224 + flip, batch
#     256) with N workers (0 = the main process),
# for N in CORES (default: 1 2 4 ... up to the core count), and one loader's RSS over 10
# epochs. Stoker is also timed on a restart-marked copy of the dataset (`stoker-data
# shrink --max-side 8192 --restart`: the same pixels, losslessly rewritten, so the loader
# decodes only each crop's MCUs; the copy's one-time cost is printed). Prints a markdown table and writes it into docs/BENCHMARKS.md between markers
# named after MACHINE (default: the host name). Last line:
#   loader_per_core_vs_torchvision=R   (1 stoker loader / 1 torchvision worker)
# usage: scripts/bench_loader.sh [MACHINE]     env: CORES="1 2 15" PYTHON=... DATA=... BIN=build/bin
set -euo pipefail
cd "$(dirname "$0")/.."
machine=${1:-$(hostname)}
bin=${BIN:-build/bin}
[ -x $bin/stoker-loader ] && [ -x $bin/bench_decode ] || scripts/setup.sh >/dev/null
data=${DATA:-data/bench-synth-500x375}
ncores=$(nproc)
if [ -z "${CORES:-}" ]; then
  CORES="1"; n=2; while [ $n -lt "$ncores" ]; do CORES="$CORES $n"; n=$((n * 2)); done
  [ "$ncores" -gt 1 ] && CORES="$CORES $((ncores > 2 ? ncores - 1 : ncores))"
fi
# the first python with torchvision: Debian's, else the one on PATH (the GPU machine's
# venv); only when neither has it, Debian's packages are installed
find_python() {
  for p in /usr/bin/python3 python3; do
    "$p" -c "import torchvision" 2>/dev/null && { PYTHON=$p; return; }
  done
}
[ -n "${PYTHON:-}" ] || find_python
if [ -z "${PYTHON:-}" ] && command -v apt-get >/dev/null; then
  scripts/setup.sh --with-torch >/dev/null
  find_python
fi
[ -n "${PYTHON:-}" ] || { echo "bench_loader.sh: no python with torchvision" >&2; exit 2; }

[ -f "$data/stoker.index" ] ||
  $bin/stoker-data synth "$data" --classes 10 --per-class 400 --size 500x375 --seed 1 | tail -1
rdata=${RDATA:-$data-restart}
if [ ! -f "$rdata/stoker.index" ]; then
  [ -e "$rdata" ] && { echo "bench_loader.sh: $rdata exists without an index: remove it or set RDATA" >&2; exit 2; }
  $bin/stoker-data shrink "$data" "$rdata" --max-side 8192 --restart -j 1 >"$data.restart.log"
fi
convert=$(sed -nE 's/.*\(([0-9]+) files\/s.*/\1/p' "$data.restart.log" 2>/dev/null | head -1)
sock=$(mktemp -d /tmp/stoker-bench-XXXXXX)
trap 'rm -rf "$sock"' EXIT

# Epochs per measurement: 4,000 images make 16 batches of 256 per epoch. Loaders stride
# over the run's batches (loader_shard.h), so over E epochs each of N loaders makes
# 16E/N batches, one more for some: more epochs keep that one batch's tail small.
epochs_for() { echo $((2 + $1 / 2)); }

# images/s of N stoker loaders (the sink times from its first batch to the last). Beside
# it, in $sock/why.txt, what tells a scaling limit's kind: the loaders' CPU ms per image
# (user + system, every loader process; rising with N: contention or a lower clock) and
# the cores' mean clock while they ran (/proc/cpuinfo, sampled twice a second)
stoker_rate() {
  local e dir=${2:-$data}; e=$(epochs_for "$1")
  $bin/bench_sink --bind "ipc://$sock/d" --loaders "$1" --epochs "$e" >"$sock/sink.txt" &
  local sink=$!
  ( while :; do awk '/^cpu MHz/ {s += $4; n++} END {if (n) print s / n}' /proc/cpuinfo; sleep 0.5; done ) \
    >"$sock/mhz.txt" 2>/dev/null &
  local mhz=$!
  sleep 0.2
  local TIMEFORMAT='%U %S'
  { time $bin/stoker-loader --data "ipc://$sock/d" -j "$1" --batch 256 --epochs "$e" -q "$dir"; } 2>"$sock/time.txt"
  wait $sink
  kill $mhz 2>/dev/null; wait $mhz 2>/dev/null
  local images; images=$(sed -nE 's/^bench_sink: ([0-9]+) images.*/\1/p' "$sock/sink.txt")
  awk -v n="${images:-0}" '{if (n > 0) printf "%.2f", 1000 * ($1 + $2) / n}' "$sock/time.txt" >"$sock/why.txt"
  awk '{s += $1; k++} END {if (k) printf " %.0f", s / k; else printf " -"}' "$sock/mhz.txt" >>"$sock/why.txt"
  sed -E 's/.* ([0-9.]+) images\/s.*/\1/' "$sock/sink.txt"
}

torch_rate() { "$PYTHON" scripts/bench_torchvision_loader.py "${2:-$data}" "$1" "$(epochs_for "$1")" | cut -d' ' -f2; }

echo "bench_loader.sh: $machine, $ncores cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(date -u +%F)"
table="| cores | stoker-loader images/s | torchvision images/s (workers) | ratio | stoker CPU ms per image | mean core MHz (stoker run) | stoker, restart-marked copy | ratio |\n| --- | --- | --- | --- | --- | --- | --- | --- |\n"
t0_main=$(torch_rate 0)
declare -A st tv sr
for n in $CORES; do
  st[$n]=$(stoker_rate "$n")
  read -r cpu_ms mhz <"$sock/why.txt" || true # one line, no newline
  tv[$n]=$(torch_rate "$n")
  sr[$n]=$(stoker_rate "$n" "$rdata")
  ratio=$(awk -v a="${st[$n]}" -v b="${tv[$n]}" 'BEGIN{printf "%.2f", a/b}')
  rratio=$(awk -v a="${sr[$n]}" -v b="${tv[$n]}" 'BEGIN{printf "%.2f", a/b}')
  table+="| $n | ${st[$n]} | ${tv[$n]} | ${ratio}x | ${cpu_ms:--} | ${mhz:--} | ${sr[$n]} | ${rratio}x |\n"
  echo "  $n cores: stoker ${st[$n]}, torchvision ${tv[$n]} images/s (${ratio}x); ${cpu_ms:--} CPU ms per image at ${mhz:--} MHz; restart-marked ${sr[$n]} (${rratio}x)"
done
table+="| (torchvision main process, no worker) | | $t0_main | | | | | |\n"
last=$(echo "$CORES" | awk '{print $NF}')
scale_st=$(awk -v a="${st[$last]}" -v b="${st[1]}" 'BEGIN{printf "%.1f", a/b}')
scale_tv=$(awk -v a="${tv[$last]}" -v b="${tv[1]}" 'BEGIN{printf "%.1f", a/b}')

# RSS of one loader, epoch 2 against epoch 10
# The machine's own scaling for the same decoding: N copies of one loader's batch making
# with no ZeroMQ and no sink (bench_decode, 2 epochs each), all at once, against one copy
# alone, by bench_decode's own clock (batch making only, not its hash of each batch): all
# images over the slowest copy's time. Where the cores slow each other (a shared host, its
# clocks), this is what any loader could reach; stoker's scaling above is set against it.
machine_rate() {
  local n=$1 i pids=()
  rm -f "$sock"/md_*.txt
  for i in $(seq 1 "$n"); do $bin/bench_decode "$data" --epochs 2 >"$sock/md_$i.txt" & pids+=($!); done
  for i in "${pids[@]}"; do wait "$i" || { echo "bench_loader.sh: bench_decode failed" >&2; exit 1; }; done
  cat "$sock"/md_*.txt | awk '/images in/ {k += $2; if ($5 > t) t = $5} END {if (t > 0) printf "%.1f", k / t; else print 0}'
}
m1=$(machine_rate 1)
mn=$(machine_rate "$last")
scale_m=$(awk -v a="$mn" -v b="$m1" 'BEGIN{printf "%.1f", a/b}')
of_m=$(awk -v a="${st[$last]}" -v b="${st[1]}" -v c="$mn" -v d="$m1" 'BEGIN{printf "%.2f", (a/b)/(c/d)}')

# One loader's RSS over 10 epochs (flat: no allocation per image).

$bin/bench_sink --bind "ipc://$sock/r" --loaders 1 --epochs 10 >/dev/null &
sink=$!
sleep 0.2
$bin/stoker-loader --data "ipc://$sock/r" --batch 256 --epochs 10 "$data" 2>"$sock/rss.txt"
wait $sink
rss2=$(grep -m1 'epoch 1:' "$sock/rss.txt" | sed -E 's/.*RSS ([0-9.]+) MB/\1/')
rss10=$(grep 'epoch 9:' "$sock/rss.txt" | sed -E 's/.*RSS ([0-9.]+) MB/\1/')
rss_change=$(awk -v a="$rss2" -v b="$rss10" 'BEGIN{printf "%+.1f", (b-a)/a*100}')

ratio1=$(awk -v a="${st[1]}" -v b="${tv[1]}" 'BEGIN{printf "%.2f", a/b}')
rratio1=$(awk -v a="${sr[1]}" -v b="${tv[1]}" 'BEGIN{printf "%.2f", a/b}')
# torchvision on the restart-marked copy too: what the markers alone do to Pillow's decode
tv_r1=$(torch_rate 1 "$rdata")
block=$(printf '%b' "<!-- bench_loader:$machine begin -->\n### Loader vs torchvision: $machine ($ncores cores), $(date -u +%F)\n\n\`scripts/bench_loader.sh $machine\`: 4,000 synthetic 500x375 JPEGs (q90), RandomResizedCrop 224 + flip, batch 256, 2 + cores/2 epochs per row; torchvision $("$PYTHON" -c 'import torchvision; print(torchvision.__version__)') with Pillow via $PYTHON.\n\n$table\nScaling from 1 to $last cores: stoker ${scale_st}x, torchvision ${scale_tv}x. The machine's own, for the same decoding without transport ($last copies of bench_decode at once against one, by its batch-making clock: $mn against $m1 images/s): ${scale_m}x, so stoker's is ${of_m} of it. One loader's RSS: $rss2 MB after epoch 2, $rss10 MB after epoch 10 ($rss_change%). The restart-marked copy (same pixels; \`stoker-data shrink --max-side 8192 --restart -j 1\`) took one core ${convert:-?} files/s to make, once; one torchvision worker reads it at $tv_r1 images/s (on the original files ${tv[1]}).\n<!-- bench_loader:$machine end -->")
echo "$block"
if [ -f docs/BENCHMARKS.md ]; then
  "$PYTHON" - "$machine" "$block" <<'PY'
import re, sys
machine, block = sys.argv[1], sys.argv[2]
text = open("docs/BENCHMARKS.md").read()
pat = re.compile(r"<!-- bench_loader:%s begin -->.*?<!-- bench_loader:%s end -->" % (re.escape(machine), re.escape(machine)), re.S)
text = pat.sub(lambda m: block, text) if pat.search(text) else text.rstrip("\n") + "\n\n" + block + "\n"
open("docs/BENCHMARKS.md", "w").write(text)
PY
fi
echo "loader_scaling=${scale_st}x machine_scaling=${scale_m}x"
echo "loader_restart_per_core_vs_torchvision=$rratio1"
echo "loader_per_core_vs_torchvision=$ratio1"
