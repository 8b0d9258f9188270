#!/usr/bin/env bash
# Static checks: clang-format drift (hack/format.sh --check), cppcheck, YAML
# lint of manifests and configs, function sizes and contract comments
# (hack/check-contracts.py), hack/check-manifests.sh, and the API contract
# pkg/api/openapi.yaml (hack/openapi-lint.sh, Redocly CLI). Runs every
# check, then exits non-zero when any of them found something; a check whose
# tool is not installed is skipped with a line saying so.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
failed=()
skip() { echo "lint: $1: skipped ($1 is not installed)"; }

if command -v clang-format >/dev/null; then
  hack/format.sh --check || failed+=("clang-format (run hack/format.sh or make format)")
else
  skip clang-format
fi
if command -v cppcheck >/dev/null; then
  cppcheck --quiet --error-exitcode=1 --enable=warning,portability --std=c11 --inline-suppr \
    --suppress=missingIncludeSystem -Ipkg pkg cmd || failed+=(cppcheck)
else
  skip cppcheck
fi
if command -v yamllint >/dev/null; then
  yamllint -d '{extends: default, rules: {line-length: {max: 120}, document-start: disable}}' \
    hack/*.yaml hack/openapi/*.yaml pkg/api/openapi.yaml manifests || failed+=(yamllint)
else
  skip yamllint
fi
if command -v shellcheck >/dev/null; then
  shellcheck hack/*.sh hack/azure/*.sh || failed+=(shellcheck)
else
  skip shellcheck
fi
# function and file sizes, contract comments (DESIGN: no function over ~80
# lines, no file in pkg/ over ~1,000)
python3 hack/check-contracts.py pkg cmd || failed+=(check-contracts)
# kustomize renderings, client dry run where a cluster is configured, image libraries
hack/check-manifests.sh || failed+=(check-manifests)
hack/openapi-lint.sh || failed+=(openapi-lint)

if [ ${#failed[@]} -gt 0 ]; then
  list=$(IFS=,; echo "${failed[*]}")
  echo "lint: FAILED: ${list//,/, }"
  exit 1
fi
echo "lint: ok"
