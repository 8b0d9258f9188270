#!/usr/bin/env bash
# Static checks of manifests/ and the Dockerfile, with no cluster and no
# container engine (hack/lint.sh runs this; the deeper consistency checks
# against the agent's own config loader are test/unit/manifests, run by
# `make test`):
#   1. yamllint of every manifest;
#   2. `kubectl kustomize` of the base and each overlay (offline);
#   3. `kubectl apply --dry-run=client` of each rendering, only when a kube
#      context is configured: even a client-side dry run asks the API server
#      for its resource types (and the OpenAPI schema), so it cannot run
#      offline;
#   4. the runtime libraries the Dockerfile installs cover every shared
#      library the built binaries need (when they are built and dpkg exists).
# Exits non-zero when a check that ran failed; a check that cannot run here
# is skipped with the reason printed.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
status=0
say() { printf 'check-manifests: %s\n' "$*"; }

# 1. yamllint
if command -v yamllint >/dev/null; then
  mapfile -t yamls < <(find manifests -name '*.yaml' | sort)
  if yamllint -d '{extends: default, rules: {line-length: {max: 120}, document-start: disable}}' \
      "${yamls[@]}"; then
    say "yamllint: ok"
  else
    status=1
  fi
else
  say "yamllint: skipped (not installed; hack/install-deps.sh installs it)"
fi

# 2 and 3. kustomize renderings, and the client dry run where possible
mapfile -t overlays < <(echo manifests/base; find manifests/overlays -mindepth 1 -maxdepth 1 -type d | sort)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if command -v kubectl >/dev/null; then
  for d in "${overlays[@]}"; do
    out="$tmp/$(echo "$d" | tr / _).yaml"
    if kubectl kustomize "$d" >"$out" 2>"$out.err"; then
      say "kubectl kustomize $d: ok ($(grep -c '^kind:' "$out") resources)"
    else
      say "kubectl kustomize $d: FAILED"
      cat "$out.err"
      status=1
    fi
  done
  # Without a context kubectl would try http://localhost:8080, which is
  # where a local dev8-agent listens: never let it.
  if ctx=$(kubectl config current-context 2>/dev/null) && [ -n "$ctx" ]; then
    for d in "${overlays[@]}"; do
      out="$tmp/$(echo "$d" | tr / _).yaml"
      [ -s "$out" ] || continue
      if kubectl apply --dry-run=client -f "$out" >"$out.dry" 2>&1; then
        say "kubectl apply --dry-run=client $d (context $ctx): ok"
      else
        say "kubectl apply --dry-run=client $d (context $ctx): FAILED"
        cat "$out.dry"
        status=1
      fi
    done
  else
    say "kubectl apply --dry-run=client: skipped (no kube context: a client dry run still needs"
    say "  the API server's discovery and OpenAPI data, so it cannot run offline)"
  fi
else
  say "kubectl kustomize / apply --dry-run: skipped (kubectl not installed)"
fi

# 4. the runtime stage's libraries cover the binaries' NEEDED entries
# shellcheck disable=SC1003 # (a literal backslash for tr)
runtime_pkgs=$(awk '/^FROM /{stage=$0} stage ~ /slim/ && /apt-get install/ {f=1} f {print} f && !/\\$/ {f=0}' Dockerfile |
  tr -s ' \\' '\n' | grep -E '^lib|^ca-certificates$' | sort -u)
bins=(bin/dev8-agent bin/azsim bin/dev8ctl)
if command -v dpkg >/dev/null && command -v objdump >/dev/null && [ -x "${bins[0]}" ] && [ -n "$runtime_pkgs" ]; then
  missing=0
  triplet=$(gcc -dumpmachine 2>/dev/null || echo x86_64-linux-gnu)
  for lib in $(for b in "${bins[@]}"; do objdump -p "$b" | awk '/NEEDED/ {print $2}'; done | sort -u); do
    pkg=$(dpkg -S "*/$triplet/$lib" 2>/dev/null | head -1 | cut -d: -f1)
    case "$pkg" in
      libc6) continue ;; # in every Debian image
      "") say "image: no Debian package provides $lib"; missing=1 ;;
      *) grep -qx "$pkg" <<<"$runtime_pkgs" || { say "image: $lib ($pkg) is not installed by the Dockerfile's runtime stage"; missing=1; } ;;
    esac
  done
  if [ $missing -eq 0 ]; then
    say "image: the runtime stage provides every library of ${bins[*]}"
  else
    status=1
  fi
else
  say "image library check: skipped (needs dpkg, objdump and built binaries: run make first)"
fi
exit $status
