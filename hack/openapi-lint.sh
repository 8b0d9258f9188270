#!/usr/bin/env bash
# Lints the API contract pkg/api/openapi.yaml with Redocly CLI (pinned in
# hack/openapi/package-lock.json, installed by hack/install-deps.sh) under
# the rules of hack/openapi/redocly.yaml: recommended-strict, so a warning
# fails too. Exits non-zero on any finding, or when the tool is missing.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
redocly=hack/openapi/node_modules/.bin/redocly
if [ ! -x "$redocly" ]; then
  hack/install-deps.sh >/dev/null || true
fi
if [ ! -x "$redocly" ]; then
  echo "openapi-lint: $redocly is missing (hack/install-deps.sh installs it; it needs Node.js 20.19+ and npm)"
  exit 1
fi
# No usage reports, no update or deprecation notices.
export REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_NOTIFICATIONS=true REDOCLY_SUPPRESS_UPDATE_NOTICE=true
out=$("$redocly" lint --config hack/openapi/redocly.yaml --format=stylish pkg/api/openapi.yaml 2>&1)
rc=$?
# Redocly prints a boxed notice on Node.js 20: keep only its own findings.
printf '%s\n' "$out" | grep -v '[║╔╚]' | sed '/^[[:space:]]*$/d'
if [ $rc -ne 0 ]; then
  echo "openapi-lint: pkg/api/openapi.yaml has findings (rules: hack/openapi/redocly.yaml)"
  exit 1
fi
echo "openapi-lint: ok"
