#!/usr/bin/env bash
# Builds every test/fuzz/fuzz_<name>.c as a libFuzzer target (clang, with
# ASan+UBSan) against all of pkg/, and runs each for SECONDS seconds on its
# corpus test/fuzz/corpus/<name>/ (new inputs go to a scratch copy).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
shift || true
out=build/fuzz
mkdir -p "$out"
read -ra pc_cflags <<<"$(pkg-config --cflags libuv libcurl libcjson yaml-0.1 openssl)"
read -ra pc_libs <<<"$(pkg-config --libs libuv libcurl libcjson yaml-0.1 openssl)"
common=(-std=c11 -D_GNU_SOURCE -Ipkg -g -O1 -fno-sanitize-recover=all -DD8_VERSION='"fuzz"'
        "${pc_cflags[@]}")
libs=("${pc_libs[@]}" -lhttp_parser -lm)
# pkg/ is compiled once (instrumented for coverage, without libFuzzer's
# main) into one archive that every target links: not once per target.
rm -rf "$out/pkg"
mkdir -p "$out/pkg"
objs=()
for src in pkg/*/*.c; do
  obj="$out/pkg/$(basename "$(dirname "$src")")_$(basename "$src" .c).o"
  objs+=("$obj")
  clang "${common[@]}" -fsanitize=fuzzer-no-link,address,undefined -c "$src" -o "$obj" &
  # as many compilers at a time as there are cores
  while [ "$(jobs -rp | wc -l)" -ge "$(nproc)" ]; do wait -n; done
done
wait
for obj in "${objs[@]}"; do
  [ -f "$obj" ] || { echo "fuzz: $obj was not built (see the compiler's message above)" >&2; exit 1; }
done
rm -f "$out/libpkg.a"
ar rcs "$out/libpkg.a" "${objs[@]}"
status=0
for target in "$@"; do
  name=$(basename "$target" .c)
  short=${name#fuzz_}
  echo "=== $name (${seconds}s)"
  clang "${common[@]}" -fsanitize=fuzzer,address,undefined "$target" "$out/libpkg.a" "${libs[@]}" -o "$out/$name"
  corpus=test/fuzz/corpus/$short
  work=$out/corpus-$short
  mkdir -p "$corpus" "$work"
  cp -n "$corpus"/* "$work"/ 2>/dev/null || true
  if ! "$out/$name" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
       -print_final_stats=1 "$work" "$corpus" 2>"$out/$name.log"; then
    echo "FAILED: $name (see $out/$name.log)"
    tail -40 "$out/$name.log"
    status=1
  else
    grep -E 'stat::number_of_executed_units|Done [0-9]+ runs' "$out/$name.log" | tail -2
  fi
done
exit $status
