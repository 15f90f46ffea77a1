#!/usr/bin/env bash
# How a batch crosses the data socket: stoker's two-frame zero-copy batch against a
# one-frame msgpack bin built in place and the naive msgpack-c way (pack + copy), on a
# 256x224x224x3 batch over ipc://. Results go to docs/BENCHMARKS.md by hand, with the
# machine and date this prints.
# usage: scripts/bench_proto.sh [--batches N]
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x build/bin/bench_proto ] || scripts/setup.sh >/dev/null
echo "date: $(date -u +%F)  machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
build/bin/bench_proto --n 256 --size 224 "$@"
