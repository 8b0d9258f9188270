#!/usr/bin/env bash
# `make bench` (Azure client part): GETs of one container group per second
# through the real pkg/azure client (curl multi on libuv) against azsim,
# and in the same run wrk against the same azsim endpoint (the ceiling).
# Prints both and the ratio. Not a test.
set -euo pipefail
cd "$(dirname "$0")/.."
bindir=${1:-bin}
bench=${2:-build/default/test/bench/bench_azure}
duration=${BENCH_SECONDS:-10}
conc=${BENCH_CONC:-32}
out=build/bench
mkdir -p "$out"
command -v wrk >/dev/null || hack/install-deps.sh

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
sub=00000000-0000-0000-0000-000000000000
rg="rg-bench"
acct=benchstore
group=dev8-bench
"$bindir/azsim" --listen "127.0.0.1:$port" --no-throttle --no-strict-mounts --provision-ms 0 \
  --log-level error 2>"$out/azsim-azure.log" &
apid=$!
trap 'kill -TERM $apid 2>/dev/null || true; wait 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -fs "$base/_azsim/stats" >/dev/null 2>&1 && break; sleep 0.05; done

token=$(curl -fs -X POST "$base/bench-tenant/oauth2/v2.0/token" \
  -d 'grant_type=client_credentials&client_id=bench-client&client_secret=bench-secret&scope=https%3A%2F%2Fmanagement.azure.com%2F.default' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
path="/subscriptions/$sub/resourceGroups/$rg/providers/Microsoft.ContainerInstance/containerGroups/$group?api-version=2025-09-01"
curl -fs -X PUT "$base$path" -H "Authorization: Bearer $token" -H 'Content-Type: application/json' -d '{
  "location":"eastus","tags":{"dev8-managed-by":"dev8-agent"},
  "properties":{"osType":"Linux","restartPolicy":"OnFailure",
    "containers":[{"name":"workspace","properties":{"image":"img","resources":{"requests":{"cpu":1,"memoryInGB":1}}}}]}}' >/dev/null

echo "machine: $(nproc) cores, $(uname -sr); $conc requests in flight, ${duration}s; azsim without throttling"
read -r c_rps c_cpu c_n c_fail <<<"$("$bench" "$base" "$sub" "$rg" "$acct" "$group" "$conc" "$duration")"
cat > "$out/arm-get.lua" <<LUA
wrk.method = "GET"
wrk.headers["Authorization"] = "Bearer $token"
LUA
wrk -t1 -c"$conc" -d"${duration}s" -s "$out/arm-get.lua" "$base$path" > "$out/wrk-azsim.txt"
w_rps=$(awk '/Requests\/sec/ {print $2}' "$out/wrk-azsim.txt")
printf '%-28s %12s %16s\n' "client" "GETs/s" "CPU us/request"
printf '%-28s %12s %16s\n' "pkg/azure (curl multi, uv)" "$c_rps" "$c_cpu"
printf '%-28s %12s %16s\n' "wrk (ceiling)" "$w_rps" "-"
awk -v a="$c_rps" -v w="$w_rps" 'BEGIN { printf "ratio pkg/azure / wrk: %.2f (%s GETs, %s failed)\n", a/w, "'"$c_n"'", "'"$c_fail"'" }'
