#!/usr/bin/env bash
# Static checks: formatting drift, cppcheck, YAML lint of manifests and configs.
set -uo pipefail
cd "$(dirname "$0")/.."
status=0
files=$(ls pkg/*/*.[ch] cmd/*/*.c test/*/*.c test/*/*/*.c 2>/dev/null)
if command -v clang-format >/dev/null; then
  drift=$(for f in $files; do clang-format --dry-run "$f" 2>&1 | grep -c warning: | sed "s|^|$f: |"; done | grep -v ': 0$' || true)
  if [ -n "$drift" ]; then
    echo "clang-format would change (informational):"
    echo "$drift"
  fi
fi
if command -v cppcheck >/dev/null; then
  cppcheck --quiet --error-exitcode=1 --enable=warning,portability --std=c11 \
    --suppress=missingIncludeSystem -Ipkg pkg cmd || status=1
fi
if command -v yamllint >/dev/null; then
  yamllint -d '{extends: default, rules: {line-length: {max: 120}, document-start: disable}}' \
    hack/*.yaml $(find manifests -name '*.yaml' 2>/dev/null) || status=1
fi
# kustomize renderings, client dry run where a cluster is configured, image libraries
hack/check-manifests.sh || status=1
exit $status
