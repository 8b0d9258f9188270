#!/usr/bin/env python3
# The driver of hack/bench-converge.sh (which starts azsim and the agent and
# passes everything in BENCH_* variables); not meant to be run by hand.
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
