#!/usr/bin/env bash
# Convergence benchmark: N environments handed to dev8-agent in one full
# sync, against azsim with realistic provisioning delays, added ARM latency
# and azsim's rate limits. Prints the seconds until every environment is
# RUNNING, the ARM calls per environment by operation, the lower bound the
# rate limits allow and the ratio to it, the agent's peak RSS and CPU, and
# the ARM reads per minute once converged. Prints figures; this is not a
# test (it exits 1 when the environments did not converge in time).
#
#   hack/bench-converge.sh [BINDIR] [N]          (defaults: bin 1000)
#
# Builds nothing. Talks only to 127.0.0.1.
#
# Rate limits. ACI allows 100 container group creates per 5 minutes and 300
# per hour per region, so N=1000 cannot converge in minutes against a
# faithful throttle. The run therefore starts azsim with --throttle-scale S,
# which multiplies every bucket's burst and rate (pkg/azsim/azsim.c,
# sub_buckets and azsim__throttle_aci), and computes the bound from the same
# scaled numbers. S defaults to max(8, 8*N/1000): with it the limits allow
# about 80 s for any N, so the default run stays within a few minutes.
# The agent mirrors ARM's limits with client-side buckets of its own; the
# bound is reachable only when those are scaled by S too (pass them with
# BENCH_AGENT_AZURE_YAML). When they are not, the run says so: the agent
# holds requests back although azsim never answers 429.
#
# Environment knobs (all optional):
#   BENCH_THROTTLE_SCALE  S above                     (default max(8, 8*N/1000))
#   BENCH_PROVISION_MS    azsim --provision-ms        (default 2000)
#   BENCH_DELETE_MS       azsim --delete-ms           (default 1000)
#   BENCH_PAGE_SIZE       azsim --page-size           (default 100)
#   BENCH_LATENCY_MS      added ARM latency (faults)  (default 50)
#   BENCH_JITTER_MS       added ARM jitter (faults)   (default 0)
#   BENCH_STEADY_SECONDS  window sampling reads once converged (default 60)
#   BENCH_RESYNC_SECONDS  agent controller.resyncSeconds (default 30)
#   BENCH_REFRESH_SECONDS agent controller.statusRefreshSeconds (default 300)
#   BENCH_TIMEOUT         seconds to wait for convergence (default 3*bound+60+N/100)
#   BENCH_AGENT_AZURE_YAML extra lines for the agent's `azure:` section
#                         (e.g. client-side rate limits, once configurable)
set -euo pipefail
cd "$(dirname "$0")/.."
bindir=${1:-bin}
n_envs=${2:-1000}
mkdir -p build/bench
for b in azsim dev8-agent; do
  [ -x "$bindir/$b" ] || { echo "bench-converge: $bindir/$b missing (run make first)" >&2; exit 2; }
done
[[ "$n_envs" =~ ^[1-9][0-9]*$ ]] || { echo "bench-converge: N must be a positive integer" >&2; exit 2; }
# One directory per run (config and logs), so runs side by side never share files.
out=$(mktemp -d build/bench/converge.XXXXXX)

scale=${BENCH_THROTTLE_SCALE:-$(awk -v n="$n_envs" 'BEGIN { s = 8 * n / 1000; if (s < 8) s = 8; print s }')}
# The agent's client-side buckets mirror the same meters, scaled alike
# (azure.rateLimits), unless BENCH_AGENT_AZURE_YAML says otherwise.
agent_azure_yaml=${BENCH_AGENT_AZURE_YAML:-$(awk -v s="$scale" 'BEGIN {
  printf "rateLimits:\n  readBurst: %d\n  readsPerSecond: %d\n  writeBurst: %d\n  writesPerSecond: %d\n", 250*s, 25*s, 200*s, 10*s
  printf "  deleteBurst: %d\n  deletesPerSecond: %d\n  aciCreatesBurst: %d\n  aciCreatesPerHour: %d\n", 200*s, 10*s, 100*s, 300*s
  printf "  aciDeletesBurst: %d\n  aciDeletesPerHour: %d\n", 100*s, 300*s }')}
provision_ms=${BENCH_PROVISION_MS:-2000}
delete_ms=${BENCH_DELETE_MS:-1000}
page_size=${BENCH_PAGE_SIZE:-100}
latency_ms=${BENCH_LATENCY_MS:-50}
jitter_ms=${BENCH_JITTER_MS:-0}
steady=${BENCH_STEADY_SECONDS:-60}
resync=${BENCH_RESYNC_SECONDS:-30}
refresh=${BENCH_REFRESH_SECONDS:-300}

# Loopback only: no proxy may see (or take) any of this traffic, neither
# the driver's nor the agent's (libcurl honours *_proxy).
unset http_proxy HTTP_PROXY https_proxy HTTPS_PROXY all_proxy ALL_PROXY
export no_proxy=127.0.0.1,localhost NO_PROXY=127.0.0.1,localhost

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
zport=$(free_port); aport=$(free_port)
while [ "$aport" = "$zport" ]; do aport=$(free_port); done

pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
  done
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

azsim_cmd=("$bindir/azsim" --listen "127.0.0.1:$zport" --provision-ms "$provision_ms"
           --delete-ms "$delete_ms" --page-size "$page_size" --throttle-scale "$scale"
           --quota-groups 0 --quota-cores 0
           --log-level warn)
"${azsim_cmd[@]}" 2>"$out/azsim.log" &
zpid=$!; pids+=("$zpid")

cat > "$out/agent.yaml" <<YAML
controller:
  name: bench
  listen: 127.0.0.1:$aport
  resyncSeconds: $resync
  statusRefreshSeconds: $refresh
  shutdownGraceSeconds: 2
azure:
  auth: clientSecret
  subscriptionId: 00000000-0000-0000-0000-000000000000
  armEndpoint: http://127.0.0.1:$zport
  authorityHost: http://127.0.0.1:$zport
  imdsEndpoint: http://127.0.0.1:$zport
  regions:
    - name: eastus
      resourceGroup: rg-bench-eastus
      storageAccount: benchconvergeeus
$(printf '%s\n' "$agent_azure_yaml" | sed 's/^/  /')
log:
  level: warn
YAML

zurl="http://127.0.0.1:$zport"
for _ in $(seq 1 100); do curl -fs --noproxy '*' "$zurl/_azsim/stats" >/dev/null 2>&1 && break; sleep 0.05; done
curl -fs --noproxy '*' -X POST "$zurl/_azsim/faults" -H 'Content-Type: application/json' \
  -d "{\"latencyMs\":$latency_ms,\"jitterMs\":$jitter_ms}" >/dev/null

key=bench-key-$RANDOM$RANDOM
AGENT_API_KEYS=$key \
AZURE_TENANT_ID=00000000-0000-0000-0000-000000000000 \
AZURE_CLIENT_ID=11111111-1111-1111-1111-111111111111 \
AZURE_CLIENT_SECRET=bench-emulator-secret \
DEV8_SPEC_HASH_KEY=bench-spec-hash-key \
  "$bindir/dev8-agent" --config "$out/agent.yaml" 2>"$out/agent.log" &
apid=$!; pids+=("$apid")
ready=0
for _ in $(seq 1 200); do
  curl -fs --noproxy '*' "http://127.0.0.1:$aport/readyz" >/dev/null 2>&1 && { ready=1; break; }
  kill -0 "$apid" 2>/dev/null || break
  sleep 0.05
done
if [ "$ready" != 1 ]; then
  echo "bench-converge: dev8-agent did not become ready; its log ($out/agent.log):" >&2
  tail -n 20 "$out/agent.log" >&2
  exit 1
fi

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)"
echo "command: hack/bench-converge.sh $bindir $n_envs"
echo "azsim:   ${azsim_cmd[*]}; faults {\"latencyMs\":$latency_ms,\"jitterMs\":$jitter_ms}"
echo "agent:   $bindir/dev8-agent --config $out/agent.yaml (1 region, resyncSeconds $resync, statusRefreshSeconds $refresh, maxInflight default, log warn)"

BENCH_N=$n_envs BENCH_SCALE=$scale BENCH_PROVISION=$provision_ms BENCH_PAGE=$page_size \
BENCH_LAT=$latency_ms BENCH_STEADY=$steady BENCH_RESYNC=$resync BENCH_REFRESH=$refresh \
BENCH_AURL="http://127.0.0.1:$aport" BENCH_ZURL="$zurl" BENCH_KEY=$key \
BENCH_APID=$apid BENCH_ZPID=$zpid BENCH_OUT=$out \
python3 hack/bench-converge.py
