#!/usr/bin/env bash
# Installs the TypeScript client's pinned dev dependencies (package-lock.json) with `npm ci`,
# unless node_modules already holds that lockfile's install. Called by hack/install-deps.sh and
# by scripts/test.sh. Needs Node.js 20 or later and npm.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "pkg/client/typescript: Node.js (20 or later) and npm are needed for the TypeScript client and its tests" >&2
  exit 1
fi
major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 20 ]; then
  echo "pkg/client/typescript: Node.js $(node --version) is too old: the client needs 20 or later" >&2
  exit 1
fi
# npm writes node_modules/.package-lock.json at the end of every install: newer than the
# lockfile means installed from this lockfile (a checkout that changes the lockfile touches it).
if [ -f node_modules/.package-lock.json ] && [ node_modules/.package-lock.json -nt package-lock.json ]; then
  exit 0
fi
echo "pkg/client/typescript: npm ci"
npm ci --no-audit --no-fund --loglevel=error
