#!/usr/bin/env bash
# Runs test binaries one after another, prints each cmocka summary and a
# final "N passed, N failed" line; exits non-zero when anything failed.
set -uo pipefail
passed=0
failed=0
failed_bins=()
for t in "$@"; do
  echo "=== $t"
  out=$("$t" 2>&1)
  rc=$?
  printf '%s\n' "$out"
  # cmocka's summary lines may share a line with other output: match anywhere.
  p=$(printf '%s\n' "$out" | grep -o '\[  PASSED  \] [0-9]* test' | awk '{s+=$4} END {print s+0}')
  f=$(printf '%s\n' "$out" | grep -o '\[  FAILED  \] [0-9]* test' | awk '{s+=$4} END {print s+0}')
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
echo "${passed} passed, ${failed} failed"
[ ${#failed_bins[@]} -eq 0 ]
