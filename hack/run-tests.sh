#!/usr/bin/env bash
# Runs test binaries, prints each one's output (cmocka summaries) in the
# order given, with its wall time, and a final "N passed, N failed" line;
# exits non-zero when anything failed.
#
# D8_TEST_JOBS=N runs up to N binaries at once (default 1). Most integration
# tests wait on timers and child processes rather than the CPU, so two at a
# time halve the suite's wall time on two cores. The tests that assert
# latency or memory bounds of the agent under load (SERIAL below) always run
# alone, after the others, so that a neighbour's load cannot fail them.
#
# A test command may also be a node test-runner suite (the TypeScript
# client's scripts/test.sh): its "ℹ pass N" / "ℹ fail N" / "ℹ cancelled N"
# / "ℹ skipped N" summary (or the TAP "# pass N" form) is counted too.
set -uo pipefail
SERIAL=" test_attack test_sync_budget test_watch_stream test_durable test_tls "
jobs=${D8_TEST_JOBS:-1}
[[ "$jobs" =~ ^[1-9][0-9]*$ ]] || { echo "run-tests: D8_TEST_JOBS must be a positive integer" >&2; exit 2; }
work=$(mktemp -d "${TMPDIR:-/tmp}/d8-run-tests.XXXXXX")
trap 'rm -rf "$work"' EXIT

passed=0
failed=0
skipped=0
failed_bins=()

# Runs test i in the background: output to $work/i.out, exit status to
# $work/i.rc, wall time (seconds) to $work/i.s.
start() {
  local i=$1 t=$2
  (
    s=$(date +%s.%N)
    "$t" >"$work/$i.out" 2>&1
    rc=$?
    e=$(date +%s.%N)
    awk -v s="$s" -v e="$e" 'BEGIN { printf "%.1f\n", e - s }' >"$work/$i.s"
    echo "$rc" >"$work/$i.rc.tmp" && mv "$work/$i.rc.tmp" "$work/$i.rc"
  ) &
}

# Prints and counts the result of test i.
report() {
  local i=$1 t=$2
  local out rc p f nsum np nf ns
  out=$(cat "$work/$i.out")
  rc=$(cat "$work/$i.rc")
  echo "=== $t ($(cat "$work/$i.s") s)"
  printf '%s\n' "$out"
  # cmocka's summary lines may share a line with other output: match anywhere.
  p=$(printf '%s\n' "$out" | grep -o '\[  PASSED  \] [0-9]* test' | awk '{s+=$4} END {print s+0}')
  f=$(printf '%s\n' "$out" | grep -o '\[  FAILED  \] [0-9]* test' | awk '{s+=$4} END {print s+0}')
  # node --test: its summary lines stand alone (colours, if forced, are
  # stripped first); a cancelled test failed.
  nsum=$(printf '%s\n' "$out" | sed 's/\x1b\[[0-9;]*m//g' | grep -E '^(ℹ|#) (pass|fail|cancelled|skipped) [0-9]+$')
  np=$(printf '%s\n' "$nsum" | awk '$2 == "pass" {s+=$3} END {print s+0}')
  nf=$(printf '%s\n' "$nsum" | awk '$2 == "fail" || $2 == "cancelled" {s+=$3} END {print s+0}')
  ns=$(printf '%s\n' "$nsum" | awk '$2 == "skipped" {s+=$3} END {print s+0}')
  p=$((p + np))
  f=$((f + nf))
  skipped=$((skipped + ns))
  passed=$((passed + p))
  failed=$((failed + f))
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    # Crashed or leaked (sanitizer exit) without a cmocka failure line.
    failed=$((failed + 1))
  fi
  [ "$rc" -ne 0 ] && failed_bins+=("$t")
}

# The parallel ones first (in the order given), then the serial ones.
tests=()
serial=()
for t in "$@"; do
  if [[ "$SERIAL" == *" $(basename "$t") "* ]]; then serial+=("$t"); else tests+=("$t"); fi
done

n=${#tests[@]}
next=0    # next test to start
shown=0   # next test to report (in order)
running=0
while [ "$shown" -lt "$n" ]; do
  while [ "$next" -lt "$n" ] && [ "$running" -lt "$jobs" ]; do
    start "$next" "${tests[$next]}"
    next=$((next + 1))
    running=$((running + 1))
  done
  wait -n
  running=$((running - 1))
  # Report every finished test whose predecessors were reported.
  while [ "$shown" -lt "$n" ] && [ -f "$work/$shown.rc" ]; do
    report "$shown" "${tests[$shown]}"
    shown=$((shown + 1))
  done
done
wait
for t in "${serial[@]}"; do
  start "s" "$t"
  wait
  report "s" "$t"
  rm -f "$work/s.rc"
done

if [ ${#failed_bins[@]} -gt 0 ]; then
  echo "failing: ${failed_bins[*]}"
fi
if [ "$skipped" -gt 0 ]; then
  echo "${passed} passed, ${failed} failed, ${skipped} skipped"
else
  echo "${passed} passed, ${failed} failed"
fi
[ ${#failed_bins[@]} -eq 0 ]
