#!/usr/bin/env bash
# clang-format with the repository's .clang-format (written for
# clang-format 14) over the C sources and headers: pkg/, cmd/, test/ and any
# *.c / *.h at the top level, or only the FILEs given (paths from the
# repository root).
#
#   hack/format.sh [FILE...]          rewrite the files in place (make format)
#   hack/format.sh --check [FILE...]  change nothing; list the files that
#                                     would change and exit 1 if any would
#                                     (hack/lint.sh runs this)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
check=0
if [ "${1:-}" = --check ]; then
  check=1
  shift
fi
if ! command -v clang-format >/dev/null; then
  echo "format: clang-format is not installed (apt-get install clang-format)" >&2
  exit 2
fi
if [ $# -gt 0 ]; then
  files=("$@")
else
  mapfile -t files < <({ find pkg cmd test -name '*.[ch]' -type f; \
                         find . -maxdepth 1 -name '*.[ch]' -type f -printf '%P\n'; } | sort)
fi
[ ${#files[@]} -gt 0 ] || exit 0

if [ $check -eq 0 ]; then
  exec clang-format -i --style=file "${files[@]}"
fi

drifted=()
for f in "${files[@]}"; do
  # --dry-run prints one warning per replacement it would make and still
  # exits 0; a non-zero exit is clang-format itself failing (a bad
  # .clang-format, an unreadable file).
  if ! out=$(clang-format --dry-run --style=file "$f" 2>&1); then
    printf 'clang-format failed on %s:\n%s\n' "$f" "$out"
    exit 2
  fi
  n=$(printf '%s\n' "$out" | grep -c 'warning:')
  [ "$n" -gt 0 ] && drifted+=("  $f: $n change(s)")
done
if [ ${#drifted[@]} -gt 0 ]; then
  echo "clang-format $(clang-format --version | sed 's/.*version //'): ${#drifted[@]} file(s) drift from .clang-format:"
  printf '%s\n' "${drifted[@]}"
  echo "hint: run hack/format.sh (or make format), then review git diff"
fi
[ ${#drifted[@]} -eq 0 ]
