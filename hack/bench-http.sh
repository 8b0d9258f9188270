#!/usr/bin/env bash
# `make bench` (HTTP part): wrk against dev8-agent's PUT and GET of one
# environment, and in the same run against nginx answering a static JSON
# body of the same size on one worker; the same over TLS (an agent with
# api.tls, nginx with the same certificate, both TLS 1.2+ with OpenSSL's
# defaults; wrk keeps its connections, so this is the steady state after
# the handshakes); then the agent's RSS per stored environment with N
# environments. Prints figures; this is not a test.
set -euo pipefail
cd "$(dirname "$0")/.."
bindir=${1:-bin}
n_envs=${2:-10000}
duration=${BENCH_SECONDS:-10}
conns=${BENCH_CONNS:-64}
out=build/bench
mkdir -p "$out"
{ command -v wrk && command -v nginx; } >/dev/null || hack/install-deps.sh

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
aport=$(free_port); nport=$(free_port); taport=$(free_port); tnport=$(free_port)
key=bench-key-0123456789
pids=()
cleanup() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

cat > "$out/agent.yaml" <<YAML
controller:
  name: bench
  listen: 127.0.0.1:$aport
api:
  maxConnections: 4096
azure:
  subscriptionId: 00000000-0000-0000-0000-000000000000
  regions:
    - name: eastus
      resourceGroup: rg-bench
      storageAccount: benchstore
log:
  level: warn
YAML
AGENT_API_KEYS=$key "$bindir/dev8-agent" --config "$out/agent.yaml" 2>"$out/agent.log" &
apid=$!; pids+=("$apid")
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$aport/healthz" >/dev/null 2>&1 && break; sleep 0.05; done

# TLS: a throwaway P-256 certificate for 127.0.0.1, made here (no key is
# committed), served by a second agent and by nginx alike.
mkdir -p "$out/tls"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=127.0.0.1 \
  -addext subjectAltName=IP:127.0.0.1 -keyout "$out/tls/tls.key" -out "$out/tls/tls.crt" 2>/dev/null
sed -e "s/127.0.0.1:$aport/127.0.0.1:$taport/" \
  -e "s#^  maxConnections: 4096#  maxConnections: 4096\n  tls:\n    certFile: $PWD/$out/tls/tls.crt\n    keyFile: $PWD/$out/tls/tls.key#" \
  "$out/agent.yaml" > "$out/agent-tls.yaml"
AGENT_API_KEYS=$key "$bindir/dev8-agent" --config "$out/agent-tls.yaml" 2>"$out/agent-tls.log" &
pids+=($!)
for _ in $(seq 1 100); do curl -fs --cacert "$out/tls/tls.crt" "https://127.0.0.1:$taport/healthz" >/dev/null 2>&1 && break; sleep 0.05; done

body='{"userId":"user-1","name":"bench","cloudRegion":"eastus","cpuCores":2,"memoryGB":4,"env":{"NODE_ENV":"development"},"secretEnv":{"GITHUB_TOKEN":"ghp_benchmark_secret"}}'
curl -fs -X PUT "http://127.0.0.1:$aport/api/v1/environments/bench-env" -H "Authorization: Bearer $key" \
  -H 'Content-Type: application/json' -d "$body" >/dev/null
curl -fs --cacert "$out/tls/tls.crt" -X PUT "https://127.0.0.1:$taport/api/v1/environments/bench-env" \
  -H "Authorization: Bearer $key" -H 'Content-Type: application/json' -d "$body" >/dev/null
answer=$(curl -fs "http://127.0.0.1:$aport/api/v1/environments/bench-env" -H "Authorization: Bearer $key")

# nginx: one worker (the agent is one loop on one core), no access log,
# the same JSON answer for any method.
mkdir -p "$out/nginx"
printf '%s' "$answer" > "$out/nginx/answer.json"
cat > "$out/nginx/nginx.conf" <<NGX
worker_processes 1;
daemon off;
pid $PWD/$out/nginx/nginx.pid;
error_log $PWD/$out/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $PWD/$out/nginx/body;
  proxy_temp_path $PWD/$out/nginx/proxy;
  fastcgi_temp_path $PWD/$out/nginx/fastcgi;
  uwsgi_temp_path $PWD/$out/nginx/uwsgi;
  scgi_temp_path $PWD/$out/nginx/scgi;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$nport;
    location / {
      default_type application/json;
      return 200 '$(sed "s/'/\\\\'/g" "$out/nginx/answer.json")';
    }
  }
  server {
    listen 127.0.0.1:$tnport ssl;
    ssl_certificate $PWD/$out/tls/tls.crt;
    ssl_certificate_key $PWD/$out/tls/tls.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    location / {
      default_type application/json;
      return 200 '$(sed "s/'/\\\\'/g" "$out/nginx/answer.json")';
    }
  }
}
NGX
nginx -c "$PWD/$out/nginx/nginx.conf" -p "$PWD/$out/nginx" &
pids+=($!)
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$nport/" >/dev/null 2>&1 && break; sleep 0.05; done

cat > "$out/put.lua" <<LUA
wrk.method = "PUT"
wrk.body = '$body'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $key"
LUA
cat > "$out/get.lua" <<LUA
wrk.method = "GET"
wrk.headers["Authorization"] = "Bearer $key"
LUA

# run NAME URL SCRIPT -> "rps p50_ms p99_ms"
run() {
  local log="$out/wrk-$1.txt"
  wrk -t1 -c"$conns" -d"${duration}s" --latency -s "$3" "$2" > "$log"
  local rps p50 p99
  rps=$(awk '/Requests\/sec/ {print $2}' "$log")
  p50=$(awk '$1=="50%" {print $2}' "$log")
  p99=$(awk '$1=="99%" {print $2}' "$log")
  echo "$rps $(to_ms "$p50") $(to_ms "$p99")"
}
to_ms() { awk -v v="$1" 'BEGIN { n=v+0; if (v ~ /us$/) n/=1000; else if (v ~ /ms$/) n=n; else if (v ~ /s$/) n*=1000; printf "%.3f", n }'; }

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr); wrk -t1 -c$conns -d${duration}s; answer $(wc -c < "$out/nginx/answer.json") bytes"
read -r a_put_rps a_put_p50 a_put_p99 <<<"$(run agent-put "http://127.0.0.1:$aport/api/v1/environments/bench-env" "$out/put.lua")"
read -r n_put_rps n_put_p50 n_put_p99 <<<"$(run nginx-put "http://127.0.0.1:$nport/api/v1/environments/bench-env" "$out/put.lua")"
read -r a_get_rps a_get_p50 a_get_p99 <<<"$(run agent-get "http://127.0.0.1:$aport/api/v1/environments/bench-env" "$out/get.lua")"
read -r n_get_rps n_get_p50 n_get_p99 <<<"$(run nginx-get "http://127.0.0.1:$nport/api/v1/environments/bench-env" "$out/get.lua")"
read -r ta_put_rps ta_put_p50 ta_put_p99 <<<"$(run agent-tls-put "https://127.0.0.1:$taport/api/v1/environments/bench-env" "$out/put.lua")"
read -r tn_put_rps tn_put_p50 tn_put_p99 <<<"$(run nginx-tls-put "https://127.0.0.1:$tnport/api/v1/environments/bench-env" "$out/put.lua")"
read -r ta_get_rps ta_get_p50 ta_get_p99 <<<"$(run agent-tls-get "https://127.0.0.1:$taport/api/v1/environments/bench-env" "$out/get.lua")"
read -r tn_get_rps tn_get_p50 tn_get_p99 <<<"$(run nginx-tls-get "https://127.0.0.1:$tnport/api/v1/environments/bench-env" "$out/get.lua")"
printf '%-12s %12s %10s %10s\n' "target" "requests/s" "p50 ms" "p99 ms"
printf '%-12s %12s %10s %10s\n' "agent PUT" "$a_put_rps" "$a_put_p50" "$a_put_p99"
printf '%-12s %12s %10s %10s\n' "nginx PUT" "$n_put_rps" "$n_put_p50" "$n_put_p99"
printf '%-12s %12s %10s %10s\n' "agent GET" "$a_get_rps" "$a_get_p50" "$a_get_p99"
printf '%-12s %12s %10s %10s\n' "nginx GET" "$n_get_rps" "$n_get_p50" "$n_get_p99"
awk -v a="$a_put_rps" -v n="$n_put_rps" 'BEGIN { printf "ratio agent/nginx PUT: %.2f (target >= 0.50)\n", a/n }'
awk -v a="$a_get_rps" -v n="$n_get_rps" 'BEGIN { printf "ratio agent/nginx GET: %.2f\n", a/n }'
printf '%-16s %12s %10s %10s\n' "target (TLS)" "requests/s" "p50 ms" "p99 ms"
printf '%-16s %12s %10s %10s\n' "agent TLS PUT" "$ta_put_rps" "$ta_put_p50" "$ta_put_p99"
printf '%-16s %12s %10s %10s\n' "nginx TLS PUT" "$tn_put_rps" "$tn_put_p50" "$tn_put_p99"
printf '%-16s %12s %10s %10s\n' "agent TLS GET" "$ta_get_rps" "$ta_get_p50" "$ta_get_p99"
printf '%-16s %12s %10s %10s\n' "nginx TLS GET" "$tn_get_rps" "$tn_get_p50" "$tn_get_p99"
awk -v a="$ta_put_rps" -v n="$tn_put_rps" 'BEGIN { printf "ratio agent/nginx TLS PUT: %.2f\n", a/n }'
awk -v a="$ta_get_rps" -v n="$tn_get_rps" 'BEGIN { printf "ratio agent/nginx TLS GET: %.2f\n", a/n }'
awk -v t="$ta_get_rps" -v p="$a_get_rps" 'BEGIN { printf "agent TLS/plain GET: %.2f\n", t/p }'

# Durable acknowledgements: PUTs that change the spec every time (cpuCores
# 1, 2, 1, ...; an unchanged PUT waits for nothing), against this agent
# (no state file) and against a second one with controller.stateFile, whose
# every answer waits for the group-committed write + fsync. Then the same
# with STATE_ENVS (default 1000) other environments in the desired set, as
# every write holds the whole set.
cat > "$out/put-change.lua" <<LUA
wrk.method = "PUT"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $key"
local n = 0
request = function()
  n = n + 1
  local b = string.gsub('$body', '"cpuCores":2', '"cpuCores":' .. (n % 2 + 1))
  return wrk.format(nil, nil, nil, b)
end
LUA
sport=$(free_port)
state_dir=$(mktemp -d "${TMPDIR:-/tmp}/d8-bench-state.XXXXXX")
sed -e "s/listen: 127.0.0.1:$aport/listen: 127.0.0.1:$sport\n  stateFile: $(printf '%s' "$state_dir" | sed 's/[\/&]/\\&/g')\/state.json/" \
  "$out/agent.yaml" > "$out/agent-state.yaml"
AGENT_API_KEYS=$key "$bindir/dev8-agent" --config "$out/agent-state.yaml" 2>"$out/agent-state.log" &
spid=$!; pids+=("$spid")
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$sport/healthz" >/dev/null 2>&1 && break; sleep 0.05; done
for p in "$aport" "$sport"; do
  curl -fs -X PUT "http://127.0.0.1:$p/api/v1/environments/bench-env" -H "Authorization: Bearer $key" \
    -H 'Content-Type: application/json' -d "$body" >/dev/null
done
read -r c_rps c_p50 c_p99 <<<"$(run agent-put-change "http://127.0.0.1:$aport/api/v1/environments/bench-env" "$out/put-change.lua")"
read -r s_rps s_p50 s_p99 <<<"$(run agent-put-state "http://127.0.0.1:$sport/api/v1/environments/bench-env" "$out/put-change.lua")"
state_envs=${STATE_ENVS:-1000}
python3 - "$state_envs" > "$out/state-sync.json" <<'PY'
import json, sys
n = int(sys.argv[1])
items = [{"id": "env-%06d" % i, "userId": "user-%d" % (i % 997), "name": "workspace %d" % i,
          "cloudRegion": "eastus", "env": {"NODE_ENV": "development"}} for i in range(n)]
items.append({"id": "bench-env", "userId": "user-1", "name": "bench", "cloudRegion": "eastus"})
print(json.dumps({"items": items}))
PY
curl -fs -X PUT "http://127.0.0.1:$sport/api/v1/environments" -H "Authorization: Bearer $key" \
  -H 'Content-Type: application/json' --data-binary "@$out/state-sync.json" >/dev/null
read -r m_rps m_p50 m_p99 <<<"$(run agent-put-state-n "http://127.0.0.1:$sport/api/v1/environments/bench-env" "$out/put-change.lua")"
writes=$(curl -fs "http://127.0.0.1:$sport/metrics" | awk '$1=="dev8_statefile_writes_total" {print $2}')
printf '%-28s %12s %10s %10s\n' "changing PUT" "requests/s" "p50 ms" "p99 ms"
printf '%-28s %12s %10s %10s\n' "no state file" "$c_rps" "$c_p50" "$c_p99"
printf '%-28s %12s %10s %10s\n' "state file, 1 env" "$s_rps" "$s_p50" "$s_p99"
printf '%-28s %12s %10s %10s\n' "state file, $state_envs envs" "$m_rps" "$m_p50" "$m_p99"
echo "state file writes (fsyncs) in both state-file runs: $writes (file $(wc -c < "$state_dir/state.json") bytes at the end)"
kill -TERM "$spid" 2>/dev/null || true
wait "$spid" 2>/dev/null || true
rm -rf "$state_dir"

# RSS per stored environment: full sync of N environments in one request.
rss() { awk '/VmRSS/ {print $2}' "/proc/$apid/status"; }
curl -fs -X PUT "http://127.0.0.1:$aport/api/v1/environments" -H "Authorization: Bearer $key" \
  -H 'Content-Type: application/json' -d '{"items":[]}' >/dev/null
before=$(rss)
python3 - "$n_envs" > "$out/sync.json" <<'PY'
import json, sys
n = int(sys.argv[1])
items = [{"id": "env-%06d" % i, "userId": "user-%d" % (i % 997), "name": "workspace %d" % i,
          "cloudRegion": "eastus", "env": {"NODE_ENV": "development"},
          "secretEnv": {"GITHUB_TOKEN": "ghp_%032d" % i}} for i in range(n)]
print(json.dumps({"items": items}))
PY
curl -fs -X PUT "http://127.0.0.1:$aport/api/v1/environments" -H "Authorization: Bearer $key" \
  -H 'Content-Type: application/json' --data-binary "@$out/sync.json" >/dev/null
# Serialise every object once (a list pages through all of them), as a
# watching or listing client would make the agent do.
cont=""
while :; do
  page=$(curl -fs "http://127.0.0.1:$aport/api/v1/environments?limit=1000&continue=$cont" -H "Authorization: Bearer $key")
  cont=$(printf '%s' "$page" | python3 -c 'import json,sys; print(json.load(sys.stdin)["continue"])')
  [ -n "$cont" ] || break
done
after=$(rss)
awk -v b="$before" -v a="$after" -v n="$n_envs" 'BEGIN { printf "RSS: %d KiB before, %d KiB with %d environments: %.2f KiB per environment (target < 3)\n", b, a, n, (a-b)/n }'
