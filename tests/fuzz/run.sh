#!/bin/sh
# Runs every libFuzzer harness of a PEFT_FUZZ build: first over its
# regression inputs (tests/fuzz/regressions/<harness>), then fuzzing from the
# seed corpus until RUNS executions or MAX_SECONDS, whichever comes first.
# Fails on any crash, sanitizer report (ASan, UBSan: all fatal), leak or
# timeout, and when a harness did not reach RUNS executions in the time.
# New findings are written to BUILD/findings/ (copy them to the regressions).
# FUZZ_HARNESSES picks some of them, e.g. to run two long runs side by side.
#
#   [FUZZ_HARNESSES="plan state"] tests/fuzz/run.sh BUILD RUNS MAX_SECONDS
set -eu
build=$1 runs=$2 max_seconds=$3
here=$(cd "$(dirname "$0")" && pwd)
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"
mkdir -p "$build/findings"
status=0
for harness in ${FUZZ_HARNESSES:-plan state container dataset}; do
  exe="$build/tests/fuzz/fuzz_$harness"
  regressions="$here/regressions/$harness"
  if [ -d "$regressions" ] && [ -n "$(ls -A "$regressions")" ]; then
    "$exe" "$regressions"/* >"$build/regressions_$harness.log" 2>&1 || {
      echo "fuzz_$harness: a regression input fails again, see $build/regressions_$harness.log"
      tail -n 20 "$build/regressions_$harness.log"
      status=1
      continue
    }
  fi
  live="$build/live/$harness"
  mkdir -p "$live"
  cp "$build/corpus/$harness"/* "$live"/
  log="$build/fuzz_$harness.log"
  if ! "$exe" -runs="$runs" -max_total_time="$max_seconds" -timeout=20 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$build/findings/${harness}-" "$live" >"$log" 2>&1; then
    echo "fuzz_$harness: FAILED (finding in $build/findings/), log $log:"
    grep -E "ERROR|runtime error|invariant broken|SUMMARY" "$log" | head -n 20
    status=1
    continue
  fi
  done_runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
  cover=$(sed -n 's/^#[0-9]*[[:space:]]*DONE[[:space:]]*cov: \([0-9]*\).*/\1/p' "$log")
  echo "fuzz_$harness: $done_runs executions ($rate/s), coverage $cover edges, 0 findings"
  if [ "${done_runs:-0}" -lt "$runs" ]; then
    echo "fuzz_$harness: fewer than $runs executions in ${max_seconds}s"
    status=1
  fi
done
exit $status
