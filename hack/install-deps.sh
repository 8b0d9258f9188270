#!/usr/bin/env bash
# Installs every Debian package the build, the tests and the benchmarks need,
# then the API contract tools of hack/openapi (Redocly CLI, Prism) with npm ci
# from its package-lock.json. Idempotent: does nothing when all are present.
set -euo pipefail
cd "$(dirname "$0")/.."

# The contract tools: exact versions from hack/openapi/package-lock.json into
# hack/openapi/node_modules (git ignores it). Skipped, with a line saying so,
# where hack/openapi is not there (the image build copies this script alone)
# or Node.js 20.19+ and npm are missing; hack/openapi-lint.sh and
# hack/test-prism.sh then say what is missing.
contract_tools() {
  local dir=hack/openapi stamp=hack/openapi/node_modules/.dev8-installed
  [ -f "$dir/package-lock.json" ] || return 0
  if ! command -v node >/dev/null || ! command -v npm >/dev/null ||
    ! node -e 'const [a,b]=process.versions.node.split(".").map(Number);process.exit(a>20||(a===20&&b>=19)?0:1)'; then
    echo "install-deps: contract tools skipped (they need Node.js 20.19+ and npm)"
    return 0
  fi
  if cmp -s "$dir/package-lock.json" "$stamp"; then
    return 0
  fi
  echo "install-deps: installing the contract tools (npm ci in $dir)"
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  cp "$dir/package-lock.json" "$stamp"
}

pkgs=(
  build-essential pkg-config clang libclang-rt-14-dev
  libuv1-dev libcurl4-openssl-dev libcjson-dev libyaml-dev libssl-dev
  libcmocka-dev libhttp-parser-dev
  curl wrk nginx-light yamllint python3 openssl shellcheck
)

pkg/client/typescript/scripts/install.sh || echo "install-deps: the TypeScript client's npm packages are not installed (see above)"
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  contract_tools
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
contract_tools
