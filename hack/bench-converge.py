#!/usr/bin/env python3
# The driver of hack/bench-converge.sh (which starts azsim and the agent and
# passes everything in BENCH_* variables); not meant to be run by hand.
#
# Profiles: "default" (the figures of README "Measured figures", printed as
# they always were) and "realistic" (azsim's ACI model: long-tailed image
# pulls, permanently failing pulls, ContainerGroupTransitioning). Both can
# measure the interactive latency of one single PUT during the full sync.
# Per-environment figures come from azsim's request log (azsim.log, one
# JSON line per request with its path, operation, status and duration).
import calendar, json, math, os, re, sys, threading, time, urllib.request
from fractions import Fraction

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
PROFILE = os.environ.get("BENCH_PROFILE", "default")
INTERACTIVE = os.environ.get("BENCH_INTERACTIVE", "0") == "1"
INT_DELAY = float(os.environ.get("BENCH_INTERACTIVE_DELAY", "5"))
PULL_MEDIAN_S = float(os.environ.get("BENCH_PULL_MEDIAN", "20000")) / 1000.0
PULL_P95_S = float(os.environ.get("BENCH_PULL_P95", "90000")) / 1000.0
FAIL_PCT = Fraction(os.environ.get("BENCH_FAIL_PCT", "2"))
TRANSITION_S = float(os.environ.get("BENCH_TRANSITION", "10000")) / 1000.0
RESTART_PCT = Fraction(os.environ.get("BENCH_RESTART_PCT", "2"))
STOP_START_GAP = float(os.environ.get("BENCH_STOP_START_GAP", "1"))
DELETE_S = float(os.environ.get("BENCH_DELETE", "1000")) / 1000.0
INT_ID = "interactive-000000"

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
if PROFILE == "default":
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

# ---- per-environment figures: the watch stream and azsim's request log -------

class Watcher(threading.Thread):
    """Follows GET /api/v1/watch: every phase an environment takes, with the
    time (monotonic, seconds since t0) the driver received it."""

    def __init__(self, t0):
        super().__init__(daemon=True)
        self.t0 = t0
        self.lock = threading.Lock()
        self.hist = {}    # id -> [(t, phase)] on every phase change
        self.last = {}    # id -> the latest object
        self.error = None
        self.events = 0

    def run(self):
        try:
            req = urllib.request.Request(AURL + "/api/v1/watch")
            req.add_header("Authorization", "Bearer " + KEY)
            with opener.open(req, timeout=120) as r:
                data = []
                for raw in r:
                    line = raw.decode("utf-8", "replace").rstrip("\r\n")
                    if line.startswith(":"):
                        continue
                    if line:
                        field, _, val = line.partition(":")
                        if field == "data":
                            data.append(val[1:] if val.startswith(" ") else val)
                        continue
                    if data:
                        self.seen(json.loads("\n".join(data)))
                    data = []
            self.error = "the watch stream ended"
        except Exception as e:  # reported by the main loop
            self.error = "watch failed: %s" % e

    def seen(self, obj):
        t = time.monotonic() - self.t0
        phase = (obj.get("status") or {}).get("phase")
        with self.lock:
            self.events += 1
            self.last[obj["id"]] = obj
            h = self.hist.setdefault(obj["id"], [])
            if not h or h[-1][1] != phase:
                h.append((t, phase))

    def phase(self, eid):
        with self.lock:
            h = self.hist.get(eid)
            return h[-1][1] if h else None

    def first(self, eid, phase, after=-1.0):
        """The first time eid took phase after `after`, or None."""
        with self.lock:
            for t, p in self.hist.get(eid, []):
                if t > after and p == phase:
                    return t
        return None

    def obj(self, eid):
        with self.lock:
            return self.last.get(eid)


ID_RE = re.compile(r"/(?:containerGroups|shares)/dev8-([a-z0-9-]+?)(?:/|$)", re.I)

def parse_ts(ts):
    """RFC 3339 (UTC, optional milliseconds) to seconds since the epoch."""
    base = calendar.timegm(time.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S"))
    frac = ts[19:].rstrip("Z")
    return base + (float(frac) if frac.startswith(".") else 0.0)

class Call:
    __slots__ = ("t", "op", "status", "dur", "method")

    def __init__(self, t, op, status, dur, method):
        self.t, self.op, self.status, self.dur, self.method = t, op, status, dur, method

    @property
    def begin(self):
        return self.t - self.dur

def azsim_calls(wall0):
    """id -> [Call] from azsim's request log; Call.t is when azsim answered
    (seconds since t0), Call.dur the request's time in azsim (the added
    latency included)."""
    calls = {}
    with open(os.path.join(OUT, "azsim.log")) as f:
        for line in f:
            if '"msg":"request"' not in line:
                continue
            try:
                j = json.loads(line)
            except ValueError:
                continue
            m = ID_RE.search(j.get("path", ""))
            if not m:
                continue
            calls.setdefault(m.group(1), []).append(
                Call(parse_ts(j["ts"]) - wall0, j.get("operation", "?"), j.get("status", 0),
                     j.get("duration_ms", 0) / 1000.0, j.get("method", "?")))
    return calls

def started_times(wall0):
    """id -> seconds since t0 (whole seconds of azsim's event clock, so the
    time lies in [t, t + 1)) of the last Started event of its group."""
    out = {}
    res = call("GET", ZURL + "/_azsim/resources", auth=False, timeout=120)
    for g in res.get("containerGroups", []):
        name = g.get("name", "")
        if not name.startswith("dev8-"):
            continue
        last = None
        for c in (g.get("properties") or {}).get("containers", []):
            iv = (c.get("properties") or {}).get("instanceView") or {}
            for e in iv.get("events", []):
                if e.get("name") == "Started":
                    t = parse_ts(e["lastTimestamp"]) - wall0
                    last = t if last is None or t > last else last
        if last is not None:
            out[name[5:]] = last
    return out

def ok_create(c):
    return c.op == "containerGroups.createOrUpdate" and 200 <= c.status < 300

def pct(vals, p):
    """Nearest-rank percentile."""
    v = sorted(vals)
    return v[max(0, math.ceil(p * len(v)) - 1)] if v else float("nan")

def by_op(calls):
    d = {}
    for c in calls:
        d[c.op] = d.get(c.op, 0) + 1
    return ", ".join("%s %d" % (o, d[o]) for o in sorted(d))

def get_bound(t):
    """The group GETs an environment of provisioning time t (s) may take:
    log2(T/2) + T/30."""
    return math.log2(max(t, 1e-3) / 2) + t / 30

SHORT = {"containerGroups.get": "GET group", "containerGroups.createOrUpdate": "PUT group",
         "containerGroups.delete": "DELETE group", "containerGroups.start": "start",
         "containerGroups.stop": "stop", "containerGroups.restart": "restart",
         "fileShares.get": "GET share", "fileShares.create": "PUT share"}

def timeline_of(cs, t_from):
    return " ".join("%s %d@%+.2f" % (SHORT.get(c.op, c.op), c.status, c.t - t_from) for c in cs)

def provisioned(cs, create, t_run, started_s):
    """When the group's deployment ended (seconds since t0), as (lo, hi):
    within the whole second of its Started event, after the last GET that
    did not see it running and no later than the GET that did (the GET
    before RUNNING was published)."""
    lo, hi = started_s, started_s + 1.0
    gets = [c.t for c in cs if c.op == "containerGroups.get" and create.t < c.t <= t_run + 0.005]
    if gets:
        prev = gets[-2] if len(gets) >= 2 else create.t
        lo2, hi2 = max(lo, prev), min(hi, gets[-1])
        if lo2 <= hi2:
            lo, hi = lo2, hi2
    return lo, hi

def latency_lines(label, eid, t_from, t_run, calls, started, what):
    """The interactive-latency lines of one environment: asked at t_from,
    RUNNING seen at t_run (seconds since t0)."""
    if t_run is None:
        print("%s %s (%s): NOT RUNNING by the end of the run" % (label, eid, what))
        return
    own = [c for c in calls.get(eid, []) if c.begin >= t_from - 0.005 and c.t <= t_run + 0.005]
    creates = [c for c in own if ok_create(c)]
    lat = t_run - t_from
    own_s = sum(c.dur for c in own)
    if not creates or eid not in started:
        print("%s %s (%s): RUNNING after %.2f s; own ARM calls %d (%.2f s): %s; no create seen"
              % (label, eid, what, lat, len(own), own_s, by_op(own)))
        return
    cr = creates[-1]
    lo, hi = provisioned(own, cr, t_run, started[eid])
    t_prov, t_err = (lo + hi) / 2 - cr.t, (hi - lo) / 2
    lim = own_s + (hi - cr.t) + 1.0
    verdict = "within" if lat <= lim else "EXCEEDS it by %.2f s" % (lat - lim)
    print("%s %s (%s): RUNNING after %.2f s; bound own calls + provisioning + 1 s = "
          "%.2f + %.2f + 1 = %.2f s: %s"
          % (label, eid, what, lat, own_s, hi - cr.t, lim, verdict))
    gets = [c for c in own if c.op == "containerGroups.get" and c.t > cr.t]
    print("         own ARM calls %d (%s), %.2f s in azsim incl. %.0f ms added latency each"
          % (len(own), by_op(own), own_s, LAT_S * 1000))
    print("         group create answered +%.2f s; provisioning %.2f s (+-%.2f) -> provisioned ~+%.2f s; "
          "RUNNING seen +%.2f s, %.2f s later; %d group GETs after the create (bound log2(T/2)+T/30 = %.2f)"
          % (cr.t - t_from, t_prov, t_err, cr.t + t_prov - t_from, lat, t_run - (cr.t + t_prov),
             len(gets), get_bound(t_prov)))
    print("         calls (s after the ask): %s" % timeline_of(own, t_from))

def fails(i):
    """Environment i of the sync is on the failing image: BENCH_FAIL_PCT %
    of the ids, spread evenly (i = 49, 99, ... for 2 %)."""
    return math.floor((i + 1) * FAIL_PCT / 100) > math.floor(i * FAIL_PCT / 100)

def env_item(eid, i, image=None):
    it = {"id": eid, "userId": "user-%d" % (i % 997), "name": "workspace %d" % i,
          "cloudRegion": "eastus", "cpuCores": 1, "memoryGB": 2, "storageGB": 20,
          "env": {"NODE_ENV": "development"},
          "secretEnv": {"GITHUB_TOKEN": "ghp_%032d" % i}}
    if image:
        it["baseImage"] = image
    return it

def interactive_put(t0):
    """The single PUT of a new environment (the user who clicks "create")."""
    body = env_item(INT_ID, 999999)
    del body["id"]
    t = time.monotonic() - t0
    call("PUT", AURL + "/api/v1/environments/" + INT_ID, body)
    return t

# ---- the realistic profile ----------------------------------------------------------

def start_watch():
    """A Watcher connected before anything is asked, and its t0."""
    w = Watcher(time.monotonic())
    w.start()
    for _ in range(100):  # the stream sends ADDED for every object (none yet), then waits
        if w.error or w.hist or w.events:
            break
        time.sleep(0.02)
    time.sleep(0.2)
    return w

def steady_window(t0, wall0, failing):
    """Reads per minute once converged, as the default profile measures
    them, less the retries of the failing environments (azsim's request
    log); returns the window (seconds since t0)."""
    s0, c0, w0 = totals(stats()), cpu_s(APID), time.monotonic()
    time.sleep(STEADY)
    s1, c1, dt = totals(stats()), cpu_s(APID), time.monotonic() - w0
    a, b = w0 - t0, w0 - t0 + dt
    calls = azsim_calls(wall0)
    fr = sum(1 for e in failing for c in calls.get(e, []) if a <= c.t <= b and kind(c.op) == "read")
    reads_min = (s1["read"] - s0["read"] - fr) / dt * 60
    pages = max(1, math.ceil(N / PAGE))
    lists_min = REGIONS * 2 * pages * 60.0 / RESYNC
    ceiling = lists_min + N * 60.0 / REFRESH
    verdict = "ok" if reads_min <= ceiling * 1.1 + 2 else "GET STORM"
    print("steady:  %.0f ARM reads/min over %.0f s once converged, the failing environments' %d left out "
          "(ceiling %.0f/min = %d region(s) x 2 lists x %d page(s) every %d s + %d envs / %d s status "
          "refresh): %s" % (reads_min, dt, fr, ceiling, REGIONS, pages, RESYNC, N, REFRESH, verdict))
    print("         writes %d, deletes %d, 429s %d in that window (all environments); agent CPU %.2f s "
          "(%.1f%% of a core)" % (s1["write"] - s0["write"], s1["delete"] - s0["delete"],
                                  s1["429"] - s0["429"], c1 - c0, (c1 - c0) / dt * 100))
    return (a, b)

def realistic():
    good = ["env-%06d" % i for i in range(N) if not fails(i)]
    bad = ["env-%06d" % i for i in range(N) if fails(i)]
    sigma = math.log(PULL_P95_S / PULL_MEDIAN_S) / 1.6448536269514722 if PULL_P95_S > PULL_MEDIAN_S else 0
    pull_hi = PULL_MEDIAN_S * math.exp(3.5 * sigma)
    tmo = float(os.environ.get("BENCH_TIMEOUT") or 3 * t_limits + PROV_S + pull_hi + 90 + N / 100)
    print("bound:   %d envs need %d writes (%.1f s), %d ACI creates (%.1f s), %d reads (%.1f s): the limits "
          "allow every create by %.1f s; each environment then needs its provisioning (%.1f s + its pull, "
          "lognormal median %.0f s, p95 %.0f s) + 2 x %.0f ms latency (printed with the measured pulls below)"
          % (N, writes_needed, t_writes, N, t_aci, reads_needed, t_reads, t_limits, PROV_S,
             PULL_MEDIAN_S, PULL_P95_S, LAT_S * 1000))
    sys.stdout.flush()

    items = [env_item("env-%06d" % i, i, "broken" if fails(i) else "node") for i in range(N)]
    body = json.dumps({"items": items}).encode()
    del items
    w = start_watch()
    cpu0 = cpu_s(APID)
    t0 = time.monotonic()
    wall0 = time.time()
    w.t0 = t0
    ans = call("PUT", AURL + "/api/v1/environments", body, timeout=300)
    print("sync:    PUT /api/v1/environments with %d items (%.1f MB; %d on the failing image) answered in "
          "%.2f s: %s" % (N, len(body) / 1e6, len(bad), time.monotonic() - t0, json.dumps(ans)))
    sys.stdout.flush()
    del body

    # ---- wait: every good environment RUNNING, every failing one ERROR with lastError
    t_int = None
    done = int_ok = False
    last_print = 0.0
    while True:
        now = time.monotonic() - t0
        if INTERACTIVE and t_int is None and now >= INT_DELAY:
            t_int = interactive_put(t0)
            print("interactive: PUT /api/v1/environments/%s sent at t=%.2f s" % (INT_ID, t_int))
            sys.stdout.flush()
        if w.error:
            print("bench-converge: %s" % w.error, file=sys.stderr)
            break
        n_run = sum(1 for e in good if w.first(e, "RUNNING") is not None)
        n_err = sum(1 for e in bad if w.phase(e) == "ERROR" and (w.obj(e)["status"].get("lastError")))
        int_ok = not INTERACTIVE or (t_int is not None and w.first(INT_ID, "RUNNING", t_int) is not None)
        if n_run == len(good) and n_err == len(bad) and int_ok:
            done = True
            break
        if now - last_print >= 15:
            last_print = now
            try:
                st = agent_status()
                by = st["environments"]["byPhase"]
                th = st.get("throttle", {})
                print("  t=%6.1fs %s queue %s throttleWaits %s throttled429 %s"
                      % (now, " ".join("%s %d" % (k, v) for k, v in by.items() if v),
                         st.get("queueDepth", "?"), th.get("throttleWaits", "?"),
                         th.get("throttled429", "?")), file=sys.stderr)
            except Exception as e:
                print("  t=%6.1fs status failed: %s" % (now, e), file=sys.stderr)
        if now > tmo:
            break
        time.sleep(0.25)
    t_conv = time.monotonic() - t0
    cpu_conv = cpu_s(APID) - cpu0
    st_conv = stats()
    th = agent_status().get("throttle", {})
    started = started_times(wall0)
    calls = azsim_calls(wall0)

    run_t = {e: w.first(e, "RUNNING") for e in good}
    vals = [v for v in run_t.values() if v is not None]
    print()
    if done:
        print("converged: all %d environments that can run are RUNNING, all %d on the failing image ERROR "
              "with lastError, after %.1f s" % (len(good), len(bad), t_conv))
    else:
        print("NOT CONVERGED after %.1f s (timeout %.0f s; BENCH_TIMEOUT to wait longer): %d of %d RUNNING, "
              "%d of %d failing ones ERROR with lastError%s"
              % (t_conv, tmo, len(vals), len(good), sum(1 for e in bad if w.phase(e) == "ERROR"), len(bad),
                 "; interactive not RUNNING" if INTERACTIVE and not int_ok else ""))
    if vals:
        print("time to RUNNING (from the sync PUT) over the %d environments that ran: p50 %.1f s, p95 %.1f s, "
              "max %.1f s" % (len(vals), pct(vals, 0.5), pct(vals, 0.95), max(vals)))

    # ---- provisioning times, the bound, the polling lag
    prov = {}  # id -> (create answered, T midpoint)
    for e in good + ([INT_ID] if INTERACTIVE else []):
        tr = run_t.get(e) if e != INT_ID else (w.first(INT_ID, "RUNNING", t_int or 0) if t_int else None)
        cs = [c for c in calls.get(e, []) if ok_create(c) and (tr is None or c.t <= tr + 0.005)]
        if cs and e in started and tr is not None:
            lo, hi = provisioned(calls[e], cs[-1], tr, started[e])
            prov[e] = (cs[-1].t, (lo + hi) / 2 - cs[-1].t)
    Ts = [prov[e][1] for e in good if e in prov]
    if Ts:
        print("provisioning: T (group create answered -> container Started; azsim's events have whole seconds, "
              "narrowed by the GETs before and at RUNNING) over %d environments: "
              "p50 %.1f s, p95 %.1f s, max %.1f s (of which %.1f s provisioning, the rest the image pull)"
              % (len(Ts), pct(Ts, 0.5), pct(Ts, 0.95), max(Ts), PROV_S))
        lb = 0.0
        for j, t in enumerate(sorted(Ts, reverse=True)):
            slot = max(drain_s(j + 1, 100 * S, 100 * S / 300), drain_s(j + 1, 300 * S, 300 * S / 3600),
                       drain_s(2 * (j + 1), 200 * S, 10 * S))
            lb = max(lb, slot + t)
        lb += 2 * LAT_S
        if vals:
            print("bound:   the last RUNNING no earlier than %.1f s (creates as early as the rate limits allow, "
                  "longest provisioning first, + 2 x latency); measured max %.1f s, measured/bound = %.2f"
                  % (lb, max(vals), max(vals) / lb))
        lag = [run_t[e] - (prov[e][0] + prov[e][1]) for e in good if e in prov and run_t.get(e) is not None]
        if lag:
            print("lag:     RUNNING seen after provisioned (the polling granularity): p50 %.1f s, p95 %.1f s, "
                  "max %.1f s" % (pct(lag, 0.5), pct(lag, 0.95), max(lag)))
        qd = [prov[e][0] for e in good if e in prov]
        print("creates: group create answered after the sync PUT: p50 %.2f s, p95 %.2f s, max %.2f s"
              % (pct(qd, 0.5), pct(qd, 0.95), max(qd)))

    # ---- ARM calls per environment -----------------------------------------------
    nenv = N + (1 if INTERACTIVE else 0)
    print("ARM calls per environment (azsim /_azsim/stats at %s, divided by %d environments%s):"
          % ("convergence" if done else "timeout", nenv,
             ", the interactive one included" if INTERACTIVE else ""))
    for op in sorted(st_conv, key=lambda o: (kind(o), o)):
        by = st_conv[op]
        n = sum(by.values())
        codes = " ".join("%s:%d" % (c, by[c]) for c in sorted(by))
        print("  %-6s %-38s %8d  %6.3f /env   (%s)" % (kind(op), op, n, n / nenv, codes))
    tc = totals(st_conv)
    print("  total: reads %.3f /env, writes %.3f /env (ideal 2), deletes %.3f /env, 429s %d"
          % (tc["read"] / nenv, tc["write"] / nenv, tc["delete"] / nenv, tc["429"]))
    print("  agent: throttleWaits %s (requests held by its client-side buckets), throttled429 %s"
          % (th.get("throttleWaits", "?"), th.get("throttled429", "?")))
    for label, ids in (("running", good), ("failing", bad)):
        if not ids:
            continue
        ops = {}
        for e in ids:
            for c in calls.get(e, []):
                if c.t <= t_conv:
                    ops[c.op] = ops.get(c.op, 0) + 1
        rd = sum(v for o, v in ops.items() if kind(o) == "read")
        wr = sum(v for o, v in ops.items() if kind(o) == "write")
        dl = sum(v for o, v in ops.items() if kind(o) == "delete")
        print("  per %s environment (azsim's request log, %d envs): reads %.2f, writes %.2f, deletes %.2f: %s"
              % (label, len(ids), rd / len(ids), wr / len(ids), dl / len(ids),
                 ", ".join("%s %.2f" % (o, ops[o] / len(ids)) for o in sorted(ops))))

    # ---- group GETs per environment against log2(T/2) + T/30 ----------------------
    rows = []
    for e in good:
        if e not in prov or run_t.get(e) is None:
            continue
        ct, t = prov[e]
        cs = calls.get(e, [])
        after = sum(1 for c in cs if c.op == "containerGroups.get" and ct < c.t <= run_t[e] + 0.005)
        before = sum(1 for c in cs if c.op == "containerGroups.get" and c.t < ct)
        rows.append((e, t, after, before, get_bound(t)))
    if rows:
        within = sum(1 for r in rows if r[2] <= r[4])
        within1 = sum(1 for r in rows if r[2] <= r[4] + 1)
        worst = max(rows, key=lambda r: r[2] - r[4])
        print("GETs:    group GETs per environment from its create to RUNNING seen: mean %.2f, max %d; its bound "
              "log2(T/2)+T/30: mean %.2f; within the bound %d of %d, within bound + 1 %d of %d"
              % (sum(r[2] for r in rows) / len(rows), max(r[2] for r in rows),
                 sum(r[4] for r in rows) / len(rows), within, len(rows), within1, len(rows)))
        print("         worst: %s, T %.1f s, %d GETs against %.2f (+%.2f); before the create %.2f group GETs/env "
              "(absence checks, 404)" % (worst[0], worst[1], worst[2], worst[4], worst[2] - worst[4],
                                          sum(r[3] for r in rows) / len(rows)))
        edges = [0, 5, 10, 20, 40, 80, 160, 1e9]
        for lo, hi in zip(edges, edges[1:]):
            b = [r for r in rows if lo <= r[1] < hi]
            if not b:
                continue
            print("         T %3.0f-%-4s s: %4d envs, GETs mean %.2f max %d; bound %.2f-%.2f; over the bound %d"
                  % (lo, "%.0f" % hi if hi < 1e8 else "", len(b), sum(r[2] for r in b) / len(b),
                     max(r[2] for r in b), min(r[4] for r in b), max(r[4] for r in b),
                     sum(1 for r in b if r[2] > r[4])))

    # ---- the environments whose pulls fail permanently --------------------------------
    if bad:
        print("failed pulls: %d environments on the InaccessibleImage image (permanent), apart from the "
              "figures above; each must be ERROR with lastError and retry with backoff, not loop:" % len(bad))
        for e in bad:
            o = w.obj(e) or {"status": {}}
            stt = o["status"]
            le = stt.get("lastError") or {}
            rt = stt.get("retry") or {}
            cs = [c for c in calls.get(e, []) if c.t <= t_conv]
            ncr = sum(1 for c in cs if c.op == "containerGroups.createOrUpdate")
            ndl = sum(1 for c in cs if c.op == "containerGroups.delete")
            ngt = sum(1 for c in cs if c.op == "containerGroups.get")
            allow = math.log2(2 * t_conv + 1) + 1
            ok = stt.get("phase") == "ERROR" and le and ncr <= allow + 1
            print("  %s: %s (ERROR first at %s), lastError %s: %.200s; retry attempts %s, next %s; in %.0f s: "
                  "%d creates, %d deletes, %d group GETs (a 1 s..5 min backoff allows <= %.1f creates): %s"
                  % (e, stt.get("phase"), "%.1f s" % w.first(e, "ERROR") if w.first(e, "ERROR") else "never",
                     le.get("code", "none"), le.get("message", ""), rt.get("attempts", "-"),
                     rt.get("nextAttemptTime", "-"), t_conv, ncr, ndl, ngt, allow,
                     "ok" if ok else "NOT OK"))

    # ---- interactive latency --------------------------------------------------------
    if INTERACTIVE:
        latency_lines("interactive:", INT_ID, t_int if t_int is not None else 0.0,
              w.first(INT_ID, "RUNNING", t_int) if t_int is not None else None, calls, started,
              "single PUT %.1f s after the sync" % (t_int or 0))
    latency_lines("first env:", "env-000000", 0.0, run_t.get("env-000000"), calls, started,
          "the sync's first item, for comparison")

    # ---- transitions: stop, then start, of a few running environments -------------------
    if done and RESTART_PCT > 0:
        cand = [e for e in good if e != "env-000000"]
        k = max(1, int(round(len(good) * RESTART_PCT / 100)))
        k = min(k, len(cand))
        step = len(cand) / k
        picks = [cand[int(j * step + step / 2)] for j in range(k)]
        t_stop, t_start = {}, {}
        for e in picks:
            t_stop[e] = time.monotonic() - t0
            call("POST", AURL + "/api/v1/environments/%s/stop" % e)
        time.sleep(STOP_START_GAP)
        for e in picks:
            t_start[e] = time.monotonic() - t0
            call("POST", AURL + "/api/v1/environments/%s/start" % e)
        tmo2 = TRANSITION_S + PROV_S + pull_hi + 120
        ok2 = False
        while time.monotonic() - t0 - t_start[picks[-1]] < tmo2:
            if all(w.first(e, "RUNNING", t_start[e]) is not None for e in picks):
                ok2 = True
                break
            time.sleep(0.25)
        started2 = started_times(wall0)
        calls2 = azsim_calls(wall0)
        print("transitions: %d running environments stopped (POST .../stop), started %.0f s later "
              "(POST .../start); aci.transitionMs %.0f ms: 409 ContainerGroupTransitioning until then%s"
              % (k, STOP_START_GAP, TRANSITION_S * 1000, "" if ok2 else "; NOT all RUNNING again in %.0f s" % tmo2))
        for e in picks:
            tr = w.first(e, "RUNNING", t_start[e])
            cs = [c for c in calls2.get(e, []) if c.begin >= t_stop[e] - 0.005 and (tr is None or c.t <= tr + 0.005)]
            stops = [c for c in cs if c.op == "containerGroups.stop"]
            starts = [c for c in cs if c.op == "containerGroups.start"]
            acc = [c for c in starts if 200 <= c.status < 300]
            n409 = sum(1 for c in cs if c.status == 409)
            phases = [p for t, p in w.hist.get(e, []) if t >= t_stop[e] - 0.005]
            if tr is None or not acc or e not in started2:
                print("  %s: %s; calls %s; phases %s" % (e, "RUNNING again after %.1f s" % (tr - t_start[e])
                                                        if tr else "NOT RUNNING again", by_op(cs), " > ".join(phases)))
                continue
            lo, hi = provisioned(cs, acc[-1], tr, started2[e])
            own_s = sum(c.dur for c in cs if c.begin >= t_start[e] - 0.005)
            window = max(0.0, (stops[0].t + TRANSITION_S) - t_start[e]) if stops else 0.0
            lim = window + own_s + (hi - acc[-1].t) + 1.0
            lat = tr - t_start[e]
            print("  %s: RUNNING %.1f s after the start; bound %.1f s left of the transition window + own calls "
                  "%.2f s + provisioning %.1f s + 1 s = %.1f s: %s"
                  % (e, lat, window, own_s, hi - acc[-1].t, lim,
                     "within" if lat <= lim else "EXCEEDS it by %.1f s" % (lat - lim)))
            print("         stop %s; starts %s (s after the start POST; 409s %d); phases %s"
                  % (" ".join("%d@%+.1f" % (c.status, c.t - t_start[e]) for c in stops),
                     " ".join("%d@%+.1f" % (c.status, c.t - t_start[e]) for c in starts), n409,
                     " > ".join(phases)))
            print("         calls (s after the start POST): %s"
                  % timeline_of([c for c in cs if c.begin >= t_start[e] - 0.005], t_start[e]))

    # ---- steady state, and the failing environments in it ------------------------------
    if done and STEADY > 0:
        a, b = steady_window(t0, wall0, bad)
        if bad:
            calls3 = azsim_calls(wall0)
            n = {e: [c for c in calls3.get(e, []) if a <= c.t <= b] for e in bad}
            print("         the %d failing environments in that window: %s"
                  % (len(bad), "; ".join("%s %d calls (%s)" % (e, len(n[e]), by_op(n[e]) or "none") for e in bad)))
            t_end = time.monotonic() - t0
            allow = math.log2(2 * t_end + 1) + 1
            print("         over the whole run (%.0f s): group creates per failing environment %s (a 1 s..5 min "
                  "backoff allows <= %.1f); retry attempts %s"
                  % (t_end, " ".join(str(sum(1 for c in calls3.get(e, []) if c.op == "containerGroups.createOrUpdate"))
                                     for e in bad), allow,
                     " ".join(str(((call("GET", AURL + "/api/v1/environments/" + e)["status"].get("retry") or {})
                                   .get("attempts", "-"))) for e in bad)))

    print("agent:   peak RSS (VmHWM) %d KiB (%.1f MiB), RSS now %d KiB; CPU %.2f s until converged, %.2f s in all"
          % (status_kib(APID, "VmHWM"), status_kib(APID, "VmHWM") / 1024, status_kib(APID, "VmRSS"),
             cpu_conv, cpu_s(APID) - cpu0))
    print("azsim:   peak RSS %d KiB; CPU %.2f s (info log: one line per request)"
          % (status_kib(ZPID, "VmHWM"), cpu_s(ZPID)))
    warn = 0
    try:
        with open(os.path.join(OUT, "agent.log")) as f:
            warn = sum(1 for _ in f)
    except OSError:
        pass
    print("logs:    %d agent log lines at warn+ (%s/agent.log); azsim's request log %s/azsim.log"
          % (warn, OUT, OUT))
    print("load:    %s (1, 5, 15 min) at the end" % " ".join(open("/proc/loadavg").read().split()[:3]))
    return 0 if done else 1

if PROFILE == "realistic":
    sys.exit(realistic())

# ---- the full sync ----------------------------------------------------------
items = [{"id": "env-%06d" % i, "userId": "user-%d" % (i % 997), "name": "workspace %d" % i,
          "cloudRegion": "eastus", "cpuCores": 1, "memoryGB": 2, "storageGB": 20,
          "env": {"NODE_ENV": "development"},
          "secretEnv": {"GITHUB_TOKEN": "ghp_%032d" % i}} for i in range(N)]
body = json.dumps({"items": items}).encode()
del items
w = start_watch() if INTERACTIVE else None
cpu0 = cpu_s(APID)
t0 = time.monotonic()
wall0 = time.time()
if w:
    w.t0 = t0
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
t_int = None
target = N  # with BENCH_INTERACTIVE, N + 1 once the single PUT is made
while True:
    now = time.monotonic() - t0
    if INTERACTIVE and t_int is None and now >= INT_DELAY:
        t_int = interactive_put(t0)
        target = N + 1
        print("interactive: PUT /api/v1/environments/%s sent at t=%.2f s" % (INT_ID, t_int))
        sys.stdout.flush()
    try:
        st = agent_status()
    except Exception as e:  # a slow answer is a figure too, not a crash
        print("  t=%6.1fs status failed: %s" % (now, e), file=sys.stderr)
        time.sleep(1)
        continue
    by = st["environments"]["byPhase"]
    timeline.append((now, by.get("RUNNING", 0)))
    if by.get("RUNNING", 0) >= target and (not INTERACTIVE or t_int is not None):
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
if INTERACTIVE:
    calls, started = azsim_calls(wall0), started_times(wall0)
    print("interactive latency (BENCH_INTERACTIVE; N counts the sync only, the figures above include the "
          "interactive environment's calls):")
    latency_lines("interactive:", INT_ID, t_int if t_int is not None else 0.0,
          w.first(INT_ID, "RUNNING", t_int) if t_int is not None else None, calls, started,
          "single PUT %.1f s after the sync" % (t_int or 0))
    latency_lines("first env:", "env-000000", 0.0, w.first("env-000000", "RUNNING"), calls, started,
          "the sync's first item, for comparison")
sys.exit(0 if converged else 1)
