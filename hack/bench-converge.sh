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
#   BENCH_PROFILE=realistic hack/bench-converge.sh [BINDIR] [N]
#                                                (defaults: bin $BENCH_REALISTIC_N or 200)
#
# Builds nothing. Talks only to 127.0.0.1. The driver is
# hack/bench-converge.py; `make bench` runs both profiles.
#
# Profiles (BENCH_PROFILE):
#   default    every group provisions in BENCH_PROVISION_MS, every image
#              pulls at once; the figures of README "Measured figures".
#   realistic  azsim's `aci:` model (pkg/azsim/azsim.h): image pulls drawn
#              from a lognormal distribution (median BENCH_PULL_MEDIAN_MS,
#              95th percentile BENCH_PULL_P95_MS, on top of the provisioning
#              time), BENCH_FAIL_PCT % of the environments on an image whose
#              pulls fail with InaccessibleImage permanently (every retry
#              fails too: they must end ERROR with lastError and retry with
#              backoff, not loop), and aci.transitionMs: start/stop/restart/
#              delete answer 409 ContainerGroupTransitioning that long after
#              a start, stop or restart (the support article's 10 s), which
#              a stop followed by a start of BENCH_RESTART_PCT % of the
#              running environments meets once all converged. It also
#              measures the interactive latency (BENCH_INTERACTIVE) and
#              prints time-to-RUNNING p50/p95/max, ARM reads and writes per
#              environment by operation, each environment's group GETs
#              against log2(T/2) + T/30 for its provisioning time T, and the
#              bound from azsim's rate limits, all from the same run.
#   Interactive latency (BENCH_INTERACTIVE=1, the realistic default): while
#   the full sync converges, BENCH_INTERACTIVE_DELAY s after it one single
#   PUT of a new environment; its time to RUNNING, its own ARM calls (from
#   azsim's request log) and provisioning time against "own calls +
#   provisioning + 1 s", and the same for the sync's first environment.
#   In the default profile it is off, so that the figures stay comparable.
#
# Rate limits. ACI allows 100 container group creates per 5 minutes and 300
# per hour per region, so N=1000 cannot converge in minutes against a
# faithful throttle. The run therefore starts azsim with --throttle-scale S,
# which multiplies every bucket's burst and rate (pkg/azsim/azsim.c,
# sub_buckets and azsim__throttle_aci), and computes the bound from the same
# scaled numbers. S defaults to max(8, 8*N/1000): with it the limits allow
# about 80 s for any N, so the default run stays within a few minutes.
# BENCH_THROTTLE_SCALE=1 gives ACI's real limits (N=200 then needs 300 s of
# ACI creates).
# The agent mirrors ARM's limits with client-side buckets of its own; the
# bound is reachable only when those are scaled by S too (pass them with
# BENCH_AGENT_AZURE_YAML). When they are not, the run says so: the agent
# holds requests back although azsim never answers 429.
#
# Environment knobs (all optional):
#   BENCH_PROFILE         default | realistic         (default: default)
#   BENCH_REALISTIC_N     N of the realistic profile when no N is given (200);
#                         the default profile's N is the argument (make: CONVERGE_N)
#   BENCH_THROTTLE_SCALE  S above                     (default max(8, 8*N/1000))
#   BENCH_PROVISION_MS    azsim --provision-ms        (default 2000)
#   BENCH_DELETE_MS       azsim --delete-ms           (default 1000)
#   BENCH_PAGE_SIZE       azsim --page-size           (default 100)
#   BENCH_LATENCY_MS      added ARM latency (faults)  (default 50)
#   BENCH_JITTER_MS       added ARM jitter (faults)   (default 0)
#   BENCH_STEADY_SECONDS  window sampling reads once converged (default 60)
#   BENCH_RESYNC_SECONDS  agent controller.resyncSeconds (default 30)
#   BENCH_REFRESH_SECONDS agent controller.statusRefreshSeconds (default 300)
#   BENCH_TIMEOUT         seconds to wait for convergence (default 3*bound+60+N/100;
#                         realistic: plus a pull time at 3.5 standard deviations)
#   BENCH_AGENT_AZURE_YAML extra lines for the agent's `azure:` section
#                         (e.g. client-side rate limits, once configurable)
#   BENCH_INTERACTIVE     1: the single PUT during the sync (realistic 1, default 0)
#   BENCH_INTERACTIVE_DELAY seconds after the sync PUT          (default 5)
# Realistic profile only:
#   BENCH_PULL_MEDIAN_MS  aci.pull.medianMs, lognormal pull time (default 20000)
#   BENCH_PULL_P95_MS     aci.pull.p95Ms                        (default 90000)
#   BENCH_FAIL_PCT        % of environments whose image fails InaccessibleImage,
#                         permanently (default 2; spread evenly over the ids)
#   BENCH_TRANSITION_MS   aci.transitionMs                      (default 10000)
#   BENCH_RESTART_PCT     % of running environments stopped, then started
#                         BENCH_STOP_START_GAP s later, once converged (default 2; 0: none)
#   BENCH_STOP_START_GAP  seconds between the stop and the start (default 1)
#   BENCH_SEED            azsim --seed (default: azsim's, 1). The pull times are
#                         drawn from it: seed 1's first 200 draws have a median of
#                         20.7 s but a 95th percentile of 62 s, not 90 s; another
#                         seed gives another sample.
set -euo pipefail
cd "$(dirname "$0")/.."
bindir=${1:-bin}
profile=${BENCH_PROFILE:-default}
case "$profile" in
  default) n_envs=${2:-1000}; interactive=${BENCH_INTERACTIVE:-0} ;;
  realistic) n_envs=${2:-${BENCH_REALISTIC_N:-200}}; interactive=${BENCH_INTERACTIVE:-1} ;;
  *) echo "bench-converge: BENCH_PROFILE must be default or realistic" >&2; exit 2 ;;
esac
[[ "$interactive" =~ ^[01]$ ]] || { echo "bench-converge: BENCH_INTERACTIVE must be 0 or 1" >&2; exit 2; }
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
interactive_delay=${BENCH_INTERACTIVE_DELAY:-5}
pull_median_ms=${BENCH_PULL_MEDIAN_MS:-20000}
pull_p95_ms=${BENCH_PULL_P95_MS:-90000}
fail_pct=${BENCH_FAIL_PCT:-2}
transition_ms=${BENCH_TRANSITION_MS:-10000}
restart_pct=${BENCH_RESTART_PCT:-2}
stop_start_gap=${BENCH_STOP_START_GAP:-1}
num='^[0-9]+([.][0-9]+)?$'
for v in "$interactive_delay" "$pull_median_ms" "$pull_p95_ms" "$fail_pct" "$transition_ms" \
         "$restart_pct" "$stop_start_gap"; do
  [[ "$v" =~ $num ]] || { echo "bench-converge: '$v' is not a non-negative number" >&2; exit 2; }
done
# Per-environment figures (interactive latency, GETs per environment, the
# failed pulls) come from azsim's request log: one info line per request.
azsim_log_level=warn
if [ "$profile" = realistic ] || [ "$interactive" = 1 ]; then azsim_log_level=info; fi

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
           --log-level "$azsim_log_level")
if [ -n "${BENCH_SEED:-}" ]; then
  [[ "$BENCH_SEED" =~ ^[0-9]+$ ]] || { echo "bench-converge: BENCH_SEED must be an integer" >&2; exit 2; }
  azsim_cmd+=(--seed "$BENCH_SEED")
fi
agent_images_yaml=
if [ "$profile" = realistic ]; then
  # azsim's ACI model (pkg/azsim/azsim.h, README "The Azure emulator"): the
  # image of baseImage "broken" is refused for good (InaccessibleImage).
  cat > "$out/azsim.yaml" <<YAML
aci:
  transitionMs: $transition_ms
  pull: {medianMs: $pull_median_ms, p95Ms: $pull_p95_ms}
  images:
    - {match: "benchbroken.azurecr.io/*", failure: InaccessibleImage}
YAML
  azsim_cmd+=(--config "$out/azsim.yaml")
  agent_images_yaml='images:
  node: "vaibhavsing/dev8-workspace:latest"
  broken: "benchbroken.azurecr.io/dev8-workspace:latest"'
fi
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
$agent_images_yaml
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
if [ "$profile" = default ]; then
  echo "command: ${BENCH_INTERACTIVE:+BENCH_INTERACTIVE=$interactive }hack/bench-converge.sh $bindir $n_envs"
else
  echo "command: BENCH_PROFILE=$profile hack/bench-converge.sh $bindir $n_envs"
  echo "profile: realistic: azsim --config $out/azsim.yaml: aci.pull lognormal median $pull_median_ms ms, p95 $pull_p95_ms ms (after the $provision_ms ms provisioning);"
  echo "         aci.transitionMs $transition_ms; images benchbroken.azurecr.io/* fail InaccessibleImage on every pull (permanent),"
  echo "         the image of baseImage \"broken\", given to $fail_pct% of the environments"
fi
echo "load:    $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min) before the run; the machine is shared with other work"
echo "azsim:   ${azsim_cmd[*]}; faults {\"latencyMs\":$latency_ms,\"jitterMs\":$jitter_ms}"
echo "agent:   $bindir/dev8-agent --config $out/agent.yaml (1 region, resyncSeconds $resync, statusRefreshSeconds $refresh, maxInflight default, log warn)"

BENCH_N=$n_envs BENCH_SCALE=$scale BENCH_PROVISION=$provision_ms BENCH_PAGE=$page_size \
BENCH_LAT=$latency_ms BENCH_STEADY=$steady BENCH_RESYNC=$resync BENCH_REFRESH=$refresh \
BENCH_AURL="http://127.0.0.1:$aport" BENCH_ZURL="$zurl" BENCH_KEY=$key \
BENCH_APID=$apid BENCH_ZPID=$zpid BENCH_OUT=$out \
BENCH_PROFILE=$profile BENCH_INTERACTIVE=$interactive BENCH_INTERACTIVE_DELAY=$interactive_delay \
BENCH_PULL_MEDIAN=$pull_median_ms BENCH_PULL_P95=$pull_p95_ms BENCH_FAIL_PCT=$fail_pct \
BENCH_TRANSITION=$transition_ms BENCH_RESTART_PCT=$restart_pct BENCH_STOP_START_GAP=$stop_start_gap \
BENCH_DELETE=$delete_ms \
python3 hack/bench-converge.py
