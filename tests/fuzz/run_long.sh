#!/bin/bash
# Long fuzzing runs, by hand: every fuzz target already built (nothing is built here) runs for
# SECONDS (default 3600) from its seed corpus, each with its own scratch corpus, then one line
# a target says how many inputs ran and whether it crashed.
#
#   tests/fuzz/run_long.sh [SECONDS]
#
# Environment:
#   SMTPSH_BUILD         the build directory (default: build at the repository root)
#   SMTPSH_FUZZ_JOBS     how many targets run at once (default 1; one core each)
#   SMTPSH_FUZZ_TARGETS  which targets, by name (default: all, e.g. "json record")
#   SMTPSH_FUZZ_WORK     where corpora, logs and crash files go (default: a new /tmp directory)
#   SMTPSH_FUZZ_IGNORE   "TEXT|TEXT": look past known findings whose message contains a TEXT
#                        (the newer targets only, tests/fuzz/expect.hpp), to fuzz beyond them
#
# Targets run in libFuzzer's fork mode with crashes, timeouts and running out of memory
# ignored, so that a crash found early does not end the run: every distinct crash is kept as
# WORK/NAME/artifacts/crash-* (reproduce with `build/tests/fuzz_NAME FILE`), and the inputs
# that reached new code as WORK/NAME/corpus (worth adding to tests/fuzz/corpus/ when small).
# Exit status: 0 when no target crashed, 1 otherwise, 2 on bad usage.
set -u

seconds=${1:-3600}
case $seconds in
  '' | *[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;;
esac
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${SMTPSH_BUILD:-$root/build}
manifest=$build/tests/fuzz_targets.txt
if [ ! -r "$manifest" ]; then
  echo "$0: no $manifest: configure and build with clang++ installed first" >&2
  exit 2
fi
jobs=${SMTPSH_FUZZ_JOBS:-1}
work=${SMTPSH_FUZZ_WORK:-$(mktemp -d /tmp/smtpsh-fuzz-long.XXXXXX)}
mkdir -p "$work"

# One target: NAME BINARY SEEDS -> WORK/NAME/{corpus,artifacts,log}.
run_one() {
  local name=$1 binary=$2 seeds=$3 dir=$work/$1
  rm -rf "$dir"
  mkdir -p "$dir/corpus" "$dir/artifacts"
  "$binary" -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 \
    -max_total_time="$seconds" -timeout=5 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$dir/artifacts/" "$dir/corpus" "$seeds" >"$dir/log" 2>&1
  echo $? >"$dir/status"
}

# NAME -> "execs crashes timeouts" from its log and artifacts.
summary() {
  local dir=$work/$1 execs crashes timeouts
  # Fork mode prints "#RUNS: cov: ..." as it goes; a plain run ends with "Done RUNS runs".
  execs=$(grep -Eo '^#[0-9]+: cov' "$dir/log" | tail -n 1 | tr -dc '0-9')
  [ -n "$execs" ] || execs=$(grep -Eo '^Done [0-9]+ runs' "$dir/log" | tail -n 1 | tr -dc '0-9')
  [ -n "$execs" ] ||
    execs=$(grep -Eo 'stat::number_executed_units: [0-9]+' "$dir/log" | tail -n 1 | tr -dc '0-9')
  crashes=$(find "$dir/artifacts" -name 'crash-*' -o -name 'leak-*' | wc -l)
  timeouts=$(find "$dir/artifacts" -name 'timeout-*' -o -name 'oom-*' | wc -l)
  echo "${execs:-?} $crashes $timeouts"
}

names=() binaries=()
while read -r name binary seeds; do
  case $name in '' | '#'*) continue ;; esac
  if [ -n "${SMTPSH_FUZZ_TARGETS:-}" ] && ! [[ " $SMTPSH_FUZZ_TARGETS " == *" $name "* ]]; then continue; fi
  if [ ! -x "$binary" ]; then
    echo "skip $name: $binary is not built"
    continue
  fi
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n; done
  echo "fuzzing $name for $seconds s ($work/$name/log)"
  run_one "$name" "$binary" "$seeds" &
  names+=("$name")
  binaries+=("$binary")
done <"$manifest"
wait

status=0
printf '%-16s %8s %12s %8s %9s  %s\n' target seconds execs crashes timeouts artifacts
for name in "${names[@]}"; do
  read -r execs crashes timeouts <<<"$(summary "$name")"
  [ "$crashes" -eq 0 ] || status=1
  printf '%-16s %8s %12s %8s %9s  %s\n' "$name" "$seconds" "$execs" "$crashes" "$timeouts" \
    "$work/$name/artifacts"
done
# What the crashes were: the distinct messages of up to 20 of the smallest crash files, rerun.
for i in "${!names[@]}"; do
  name=${names[$i]} binary=${binaries[$i]}
  find "$work/$name/artifacts" -name 'crash-*' -printf '%s %p\n' | sort -n | head -n 20 |
    while read -r _ file; do
      "$binary" -artifact_prefix="$work/$name/rerun-" "$file" 2>&1 |
        grep -m 1 -E '^(invariant broken: |fuzz_[a-z_]+: |SUMMARY: )'
    done | sort | uniq -c | sort -rn | sed "s/^/$name: /"
done
exit $status
