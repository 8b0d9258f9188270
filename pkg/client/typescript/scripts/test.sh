#!/usr/bin/env bash
# `make test` runs this through hack/run-tests.sh, which adds node's test-runner summary to the
# suite's: installs the pinned dev dependencies when needed, builds with tsc, then runs the unit
# tests and the integration tests against the real bin/dev8-agent and bin/azsim (D8_BIN_DIR,
# relative to the repository root, picks another build, as for the C integration tests).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
exec npm test --silent
