#!/usr/bin/env bash
# Contract pass: runs the API-facing integration tests with D8_PRISM=1, so
# that every API request of the test fixture goes through the Prism
# validating proxy (`prism proxy pkg/api/openapi.yaml http://127.0.0.1:<agent>`,
# one per agent), then judges what Prism reported (hack/prism-report.py).
# Fails when a test fails or on any contract violation: an answer that does
# not fit the document, or a request the document forbids that the agent
# accepted. Raw-socket requests and watch streams go to the agent directly
# (see test/integration/agent_fixture.h).
#
# Usage: hack/test-prism.sh [TEST_BINARY...]   (default: test_api, test_watch
# and test_reconcile, built here). `make test-contract` runs it.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
prism=hack/openapi/node_modules/.bin/prism
if [ ! -x "$prism" ]; then
  hack/install-deps.sh >/dev/null || true
fi
if [ ! -x "$prism" ]; then
  echo "test-prism: $prism is missing (hack/install-deps.sh installs it; it needs Node.js 20.19+ and npm)"
  exit 1
fi
bins=("$@")
if [ ${#bins[@]} -eq 0 ]; then
  for t in test_api test_watch test_reconcile; do bins+=("build/default/test/integration/$t"); done
  make -j2 all "${bins[@]}" >/dev/null || exit 1
fi
report=$(mktemp "${TMPDIR:-/tmp}/prism-report.XXXXXX")
trap 'rm -f "$report"' EXIT
export D8_PRISM=1 D8_PRISM_BIN="$PWD/$prism" D8_OPENAPI="$PWD/pkg/api/openapi.yaml"
export D8_PRISM_REPORT="$report" D8_BIN_DIR="${D8_BIN_DIR:-bin}"
start=$(date +%s)
hack/run-tests.sh "${bins[@]}"
tests_rc=$?
python3 hack/prism-report.py "$report"
report_rc=$?
echo "test-prism: $(($(date +%s) - start)) s"
[ $tests_rc -eq 0 ] && [ $report_rc -eq 0 ]
