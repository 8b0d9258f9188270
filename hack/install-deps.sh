#!/usr/bin/env bash
# Installs every Debian package the build, the tests and the benchmarks need.
# Idempotent: does nothing when all are present.
set -euo pipefail

pkgs=(
  build-essential pkg-config clang libclang-rt-14-dev
  libuv1-dev libcurl4-openssl-dev libcjson-dev libyaml-dev libssl-dev
  libcmocka-dev libhttp-parser-dev
  curl wrk nginx-light yamllint python3
)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# Debian starts nginx on install; the benchmark runs its own instance, so a
# system one is stopped again below (policy-rc.d keeps it from starting).
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
if command -v service >/dev/null 2>&1; then
  $sudo service nginx stop >/dev/null 2>&1 || true
fi
