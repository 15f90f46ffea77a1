#!/usr/bin/env bash
# Fuzzes the message decoder (proto_decode) with libFuzzer for SECONDS (default 600).
# Builds build-fuzz/ with clang -fsanitize=fuzzer,address,undefined, seeds the corpus
# with one valid message of each type, keeps the corpus in fuzz-corpus/proto and any
# crashing input in fuzz-corpus/crashes. Exit status is libFuzzer's (0: nothing found).
# usage: scripts/fuzz.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-600}
command -v clang >/dev/null || { echo "fuzz.sh: clang is needed (apt-get install clang)" >&2; exit 2; }
CC=clang cmake -S . -B build-fuzz -DSTOKER_FUZZ=ON -DSTOKER_TESTS=OFF -DSTOKER_CUDA=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-fuzz -j"$(nproc)" --target fuzz_proto_decode fuzz_proto_seeds >/dev/null
mkdir -p fuzz-corpus/proto fuzz-corpus/crashes
build-fuzz/bin/fuzz_proto_seeds fuzz-corpus/proto
echo "fuzz.sh: fuzzing proto_decode for ${secs}s (corpus fuzz-corpus/proto)"
build-fuzz/bin/fuzz_proto_decode -max_total_time="$secs" -max_len=4096 -rss_limit_mb=2048 \
  -print_final_stats=1 -artifact_prefix=fuzz-corpus/crashes/ fuzz-corpus/proto
