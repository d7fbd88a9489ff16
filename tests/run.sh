#!/usr/bin/env bash
# Builds smtpsh twice — normally, and with AddressSanitizer + UndefinedBehaviorSanitizer — and
# runs every test (ctest) in both builds. Run ./setup.sh --tests first (README does).
set -euo pipefail
cd "$(dirname "$0")/.."

jobs=$(nproc 2>/dev/null || echo 2)
run_suite() {
  local dir=$1; shift
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSMTPSH_TESTS=ON "$@" >/dev/null
  cmake --build "$dir" -j "$jobs"
  ctest --test-dir "$dir" --output-on-failure -j "$jobs"
}

echo "== normal build" >&2
run_suite build
echo "== sanitizer build (address, undefined)" >&2
# halt_on_error keeps a sanitizer finding from scrolling by as a passing test.
export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:abort_on_error=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
run_suite build-sanitize -DSMTPSH_SANITIZE=ON
echo "== all tests passed in both builds" >&2
