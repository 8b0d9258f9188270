#!/usr/bin/env bash
# Runs test binaries one after another, prints each cmocka summary and a
# final "N passed, N failed" line; exits non-zero when anything failed.
# A test command may also be a node test-runner suite (the TypeScript
# client's scripts/test.sh): its "ℹ pass N" / "ℹ fail N" / "ℹ cancelled N"
# / "ℹ skipped N" summary (or the TAP "# pass N" form) is counted too.
set -uo pipefail
passed=0
failed=0
skipped=0
failed_bins=()
for t in "$@"; do
  echo "=== $t"
  out=$("$t" 2>&1)
  rc=$?
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
  if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then
    # Crashed or leaked (sanitizer exit) without a cmocka failure line.
    failed=$((failed + 1))
  fi
  [ $rc -ne 0 ] && failed_bins+=("$t")
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
