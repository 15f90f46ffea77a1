#!/usr/bin/env bash
# Runs every test suite: builds (scripts/setup.sh) the Release tree build/ and a CPU-only
# tree build-asan/ under AddressSanitizer + UBSan, then runs every Criterion suite in
# both and prints each runner's summary. Exit status 0 only if every suite passed.
# usage: scripts/test.sh [SUITE-NAME-REGEX]
set -uo pipefail
cd "$(dirname "$0")/.."
filter=${1:-.}
start=$(date +%s)

scripts/setup.sh || exit 1
mkdir -p build-asan
if ! cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DSTOKER_SANITIZE=ON -DSTOKER_CUDA=OFF \
     >build-asan/configure.log 2>&1 ||
   ! cmake --build build-asan -j"$(nproc)" >build-asan/build.log 2>&1; then
  grep -E "error|Error" build-asan/*.log >&2; echo "test.sh: sanitizer build failed" >&2; exit 1
fi

# abort_on_error gives a core-less non-zero exit Criterion reports as a crash.
export ASAN_OPTIONS=abort_on_error=1:detect_leaks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
failed=()
for tree in build build-asan; do
  for t in "$tree"/tests/test_*; do
    [ -x "$t" ] || continue
    name=$(basename "$t")
    [[ $name =~ $filter ]] || continue
    out=$("$t" --jobs 2 --short-filename 2>&1); rc=$?
    summary=$(grep -a "Synthesis" <<<"$out" | sed 's/.*Synthesis: //')
    printf '%-11s %-28s %s\n' "$tree" "$name" "${summary:-no summary (exit $rc)}"
    if [ $rc -ne 0 ]; then
      failed+=("$tree/$name")
      grep -a -E "FAIL|CRASH|Assertion|ERROR|runtime error|Sanitizer" <<<"$out" | head -40
    fi
  done
done
echo "test.sh: $(( $(date +%s) - start ))s"
if [ ${#failed[@]} -gt 0 ]; then echo "test.sh: FAILED: ${failed[*]}"; exit 1; fi
echo "test.sh: all suites passed"
