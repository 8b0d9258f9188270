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
python3 - <<'PY'
import json, math, os, sys, time, urllib.request

N = int(os.environ["BENCH_N"])
S = float(os.environ["BENCH_SCALE"])
PROV_S = int(os.environ["BENCH_PROVISION"]) / 1000.0
PAGE = int(os.environ["BENCH_PAGE"])
LAT_S = int(os.environ["BENCH_LAT"]) / 1000.0
STEADY = float(os.environ["BENCH_STEADY"])
RESYNC = int(os.environ["BENCH_RESYNC"])
REFRESH = int(os.environ["BENCH_REFRESH"])
AURL, ZURL, KEY = os.environ["BENCH_AURL"], os.environ["BENCH_ZURL"], os.environ["BENCH_KEY"]
APID, ZPID = int(os.environ["BENCH_APID"]), int(os.environ["BENCH_ZPID"])
OUT = os.environ["BENCH_OUT"]
REGIONS = 1

# Loopback only, never through a proxy.
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

def call(method, url, body=None, auth=True, timeout=30):
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    req = urllib.request.Request(url, data=data, method=method)
    if auth:
        req.add_header("Authorization", "Bearer " + KEY)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with opener.open(req, timeout=timeout) as r:
        return json.loads(r.read() or b"null")

# ---- the bound the rate limits allow (azsim's numbers, times S) ----------
# pkg/azsim/azsim.c: per subscription reads 250 burst / 25 per s, writes
# 200 / 10, deletes 200 / 10; per subscription and region ACI creates need
# room in both a 100-per-5-min bucket (burst 100, 100/300 per s) and a
# 300-per-hour one (burst 300, 300/3600 per s). Every bucket starts full.
def drain_s(m, burst, rate):
    """Seconds until m tokens have been taken from a full bucket."""
    return max(0.0, (m - burst) / rate)

writes_needed = 2 * N          # 1 share PUT + 1 group PUT per environment
reads_needed = N               # >= 1 group GET to see instanceView Running
t_writes = drain_s(writes_needed, 200 * S, 10 * S)
t_aci = max(drain_s(N / REGIONS, 100 * S, 100 * S / 300), drain_s(N / REGIONS, 300 * S, 300 * S / 3600))
t_reads = drain_s(reads_needed, 250 * S, 25 * S)
t_limits = max(t_writes, t_aci, t_reads)
# The last group: its PUT answer, its provisioning, one GET that sees it.
bound = t_limits + PROV_S + 2 * LAT_S
timeout = float(os.environ.get("BENCH_TIMEOUT") or 3 * bound + 60 + N / 100)

print("limits:  throttle scale S=%g: ARM writes %g burst / %g per s, reads %g / %g per s; "
      "ACI creates %g per 5 min and %g per hour per region"
      % (S, 200 * S, 10 * S, 250 * S, 25 * S, 100 * S, 300 * S))
print("bound:   %d envs need %d writes (%.1f s), %d ACI creates (%.1f s), %d reads (%.1f s); "
      "+ provisioning %.1f s + 2 x %.0f ms latency = %.1f s"
      % (N, writes_needed, t_writes, N, t_aci, reads_needed, t_reads, PROV_S, LAT_S * 1000, bound))
sys.stdout.flush()

# ---- helpers: azsim stats, /proc figures ----------------------------------
READ_OPS = {"containerGroups.get", "containerGroups.list", "containerGroups.listByResourceGroup",
            "containerGroups.operationStatus", "containerGroups.operationResult",
            "fileShares.get", "fileShares.list"}
DELETE_OPS = {"containerGroups.delete", "fileShares.delete"}

def kind(op):
    if op.startswith("token.") or op == "unknown":
        return "other"
    if op in READ_OPS:
        return "read"
    if op in DELETE_OPS:
        return "delete"
    return "write"

def stats():
    return call("GET", ZURL + "/_azsim/stats", auth=False)["requests"]

def totals(st):
    t = {"read": 0, "write": 0, "delete": 0, "other": 0, "429": 0}
    for op, by in st.items():
        n = sum(by.values())
        t[kind(op)] += n
        if kind(op) != "other":
            t["429"] += by.get("429", 0)
    return t

CLK = os.sysconf("SC_CLK_TCK")

def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK  # utime, stime

def status_kib(pid, name):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(name + ":"):
                return int(line.split()[1])
    return 0

def agent_status():
    return call("GET", AURL + "/api/v1/status")

# ---- the full sync ----------------------------------------------------------
items = [{"id": "env-%06d" % i, "userId": "user-%d" % (i % 997), "name": "workspace %d" % i,
          "cloudRegion": "eastus", "cpuCores": 1, "memoryGB": 2, "storageGB": 20,
          "env": {"NODE_ENV": "development"},
          "secretEnv": {"GITHUB_TOKEN": "ghp_%032d" % i}} for i in range(N)]
body = json.dumps({"items": items}).encode()
del items
cpu0 = cpu_s(APID)
t0 = time.monotonic()
ans = call("PUT", AURL + "/api/v1/environments", body, timeout=300)
t_put = time.monotonic() - t0
print("sync:    PUT /api/v1/environments with %d items (%.1f MB) answered in %.2f s: %s"
      % (N, len(body) / 1e6, t_put, json.dumps(ans)))
sys.stdout.flush()
del body

# ---- wait until every environment is RUNNING -------------------------------
timeline = []
last_print = 0.0
st = None
converged = False
while True:
    now = time.monotonic() - t0
    try:
        st = agent_status()
    except Exception as e:  # a slow answer is a figure too, not a crash
        print("  t=%6.1fs status failed: %s" % (now, e), file=sys.stderr)
        time.sleep(1)
        continue
    by = st["environments"]["byPhase"]
    timeline.append((now, by.get("RUNNING", 0)))
    if by.get("RUNNING", 0) >= N:
        converged = True
        break
    if now - last_print >= 15:
        last_print = now
        th = st.get("throttle", {})
        print("  t=%6.1fs %s queue %s throttleWaits %s throttled429 %s"
              % (now, " ".join("%s %d" % (k, v) for k, v in by.items() if v),
                 st.get("queueDepth", "?"), th.get("throttleWaits", "?"), th.get("throttled429", "?")),
              file=sys.stderr)
    if now > timeout:
        break
    time.sleep(0.5 if N <= 2000 else 1.0)
t_conv = timeline[-1][0]
cpu_conv = cpu_s(APID) - cpu0
st_conv = stats()
running = timeline[-1][1]

def t_at(frac):
    want = math.ceil(frac * N)
    for t, n in timeline:
        if n >= want:
            return "%.1f" % t
    return "-"

print()
if converged:
    print("converged: all %d RUNNING after %.1f s (10%% %s s, 50%% %s s, 90%% %s s)"
          % (N, t_conv, t_at(0.1), t_at(0.5), t_at(0.9)))
    print("bound:   %.1f s; measured/bound = %.2f" % (bound, t_conv / bound))
else:
    print("NOT CONVERGED: %d of %d RUNNING after %.1f s (timeout %.0f s; BENCH_TIMEOUT to wait longer)"
          % (running, N, t_conv, timeout))
    print("  phases: %s" % json.dumps(st["environments"]["byPhase"]))
    print("bound:   %.1f s; measured/bound > %.2f" % (bound, t_conv / bound))
# The first environment could be RUNNING after its own chain of calls: a
# reconciler that makes it wait for the others' throttled creates shows here.
first = next((t for t, n in timeline if n > 0), None)
chain = PROV_S + 4 * LAT_S
print("first:   first environment RUNNING after %s (its own calls need >= %.1f s: provisioning + 4 round trips)"
      % ("%.1f s" % first if first is not None else "never", chain))

# ---- ARM calls per environment --------------------------------------------
created = N
print("ARM calls per environment (azsim /_azsim/stats at %s, divided by N=%d):"
      % ("convergence" if converged else "timeout, %d RUNNING" % running, created))
for op in sorted(st_conv, key=lambda o: (kind(o), o)):
    by = st_conv[op]
    n = sum(by.values())
    codes = " ".join("%s:%d" % (c, by[c]) for c in sorted(by))
    print("  %-6s %-38s %8d  %6.3f /env   (%s)" % (kind(op), op, n, n / created, codes))
tc = totals(st_conv)
print("  total: reads %.3f /env, writes %.3f /env (ideal 2), deletes %.3f /env, 429s %d"
      % (tc["read"] / created, tc["write"] / created, tc["delete"] / created, tc["429"]))
th = st.get("throttle", {})
print("  agent: throttleWaits %s (requests held by its client-side buckets), throttled429 %s"
      % (th.get("throttleWaits", "?"), th.get("throttled429", "?")))
if converged and tc["write"] / created > 2.2:
    print("  WARNING: more than 2 writes per created environment")
waits = th.get("throttleWaits", 0) or 0
if t_conv > 2 * bound and waits > 0 and tc["429"] == 0:
    print("  NOTE: azsim never throttled, yet the agent held %d requests in its own client-side "
          "buckets: its limiter, not azsim's limits, set the pace" % waits)

# ---- steady state ------------------------------------------------------------
if converged and STEADY > 0:
    s0, c0, w0 = totals(stats()), cpu_s(APID), time.monotonic()
    time.sleep(STEADY)
    s1, c1, dt = totals(stats()), cpu_s(APID), time.monotonic() - w0
    reads_min = (s1["read"] - s0["read"]) / dt * 60
    pages = max(1, math.ceil(N / PAGE))
    lists_min = REGIONS * 2 * pages * 60.0 / RESYNC
    ceiling = lists_min + N * 60.0 / REFRESH
    verdict = "ok" if reads_min <= ceiling * 1.1 + 2 else "GET STORM"
    print("steady:  %.0f ARM reads/min over %.0f s once converged (ceiling %.0f/min = %d region(s) x 2 "
          "lists x %d page(s) every %d s + %d envs / %d s status refresh): %s"
          % (reads_min, dt, ceiling, REGIONS, pages, RESYNC, N, REFRESH, verdict))
    print("         writes %d, deletes %d, 429s %d in that window; agent CPU %.2f s (%.1f%% of a core)"
          % (s1["write"] - s0["write"], s1["delete"] - s0["delete"], s1["429"] - s0["429"],
             c1 - c0, (c1 - c0) / dt * 100))

# ---- the agent's resources ------------------------------------------------------
print("agent:   peak RSS (VmHWM) %d KiB (%.1f MiB), RSS now %d KiB; CPU %.2f s until converged, %.2f s in all"
      % (status_kib(APID, "VmHWM"), status_kib(APID, "VmHWM") / 1024, status_kib(APID, "VmRSS"),
         cpu_conv, cpu_s(APID) - cpu0))
print("azsim:   peak RSS %d KiB; CPU %.2f s" % (status_kib(ZPID, "VmHWM"), cpu_s(ZPID)))
warn = 0
try:
    with open(os.path.join(OUT, "agent.log")) as f:
        warn = sum(1 for _ in f)
except OSError:
    pass
print("logs:    %d agent log lines at warn+ (%s/agent.log)" % (warn, OUT))
sys.exit(0 if converged else 1)
PY
