#!/usr/bin/env bash
# A guided tour of dev8-agent on azsim, the bundled Azure emulator:
# create an environment, watch its events, stop, start, delete it, then
# drop one from a full sync and wait for the reaper to remove its orphaned
# container group and file share.
#
#   hack/demo.sh            # uses `make run`'s agent + azsim when both answer
#                           # on 8080/9090, else starts its own pair
#   AGENT_PORT=18080 AZSIM_PORT=19090 hack/demo.sh   # own pair, other ports
#
# Variables: BIN_DIR (bin), AGENT_API_KEYS (dev-key-change-me), AGENT_PORT
# (8080), AZSIM_PORT (9090), DEMO_STEP_WAIT seconds per step (60),
# DEMO_ORPHAN_WAIT seconds for the reaper (240; hack/local-config.yaml sets
# container-group / file-share graces of 30 s / 120 s), DEMO_KEEP_LOGS=1
# keeps the logs of a pair the script started.
#
# Nothing here touches real Azure: when the script starts the pair itself
# the agent's endpoints are azsim's. With an already running pair, note that
# the orphan step's full sync replaces that agent's whole desired set.
set -euo pipefail
cd "$(dirname "$0")/.."

bindir=${BIN_DIR:-bin}
agent_port=${AGENT_PORT:-8080}
azsim_port=${AZSIM_PORT:-9090}
step_wait=${DEMO_STEP_WAIT:-60}
orphan_wait=${DEMO_ORPHAN_WAIT:-240}
keys=${AGENT_API_KEYS:-dev-key-change-me}
key=${keys%%,*}
AGENT=http://127.0.0.1:$agent_port
AZSIM=http://127.0.0.1:$azsim_port

command -v curl >/dev/null || { echo "demo: curl is needed (hack/install-deps.sh installs it)"; exit 1; }

bold=$(tput bold 2>/dev/null || true)
plain=$(tput sgr0 2>/dev/null || true)
step() { printf '\n%s== %s%s\n' "$bold" "$*" "$plain"; }
note() { printf '   %s\n' "$*"; }
show() { printf '   $ %s\n' "$*"; }

# ---- the agent and azsim -----------------------------------------------------

pids=()
tmp=$(mktemp -d)
watch_pid=""
cleanup() {
  if [ -n "$watch_pid" ]; then kill "$watch_pid" 2>/dev/null || true; fi
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ ${#pids[@]} -gt 0 ]; then
    echo
    echo "demo: stopped the agent and azsim it started"
  fi
  if [ -n "${DEMO_KEEP_LOGS:-}" ]; then
    echo "demo: logs kept in $tmp"
  else
    rm -rf "$tmp"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

up() { curl -fsS -o /dev/null --max-time 2 "$1" 2>/dev/null; }

if up "$AGENT/healthz" && up "$AZSIM/_azsim/stats"; then
  step "Using the agent at $AGENT and azsim at $AZSIM (make run)"
  note "The orphan step replaces this agent's desired set with a full sync."
  own=0
else
  if up "$AGENT/healthz" || up "$AZSIM/_azsim/stats"; then
    echo "demo: something already listens on port $agent_port or $azsim_port, but not both an"
    echo "      agent and azsim; pick free ports: AGENT_PORT=18080 AZSIM_PORT=19090 $0"
    exit 1
  fi
  for b in dev8-agent azsim; do
    [ -x "$bindir/$b" ] || { echo "demo: $bindir/$b is missing: run make first"; exit 1; }
  done
  step "Starting azsim on $AZSIM and dev8-agent on $AGENT"
  sed -e "s/127\.0\.0\.1:8080/127.0.0.1:$agent_port/" -e "s/127\.0\.0\.1:9090/127.0.0.1:$azsim_port/g" \
    hack/local-config.yaml >"$tmp/config.yaml"
  "$bindir/azsim" --listen "127.0.0.1:$azsim_port" --provision-ms 3000 --delete-ms 1000 \
    >"$tmp/azsim.log" 2>&1 &
  pids+=($!)
  # Throwaway credentials: azsim accepts any client secret.
  AGENT_API_KEYS=$keys \
    AZURE_TENANT_ID=00000000-0000-0000-0000-000000000000 \
    AZURE_CLIENT_ID=11111111-1111-1111-1111-111111111111 \
    AZURE_CLIENT_SECRET=local-emulator-secret \
    DEV8_SPEC_HASH_KEY=local-spec-hash-key \
    "$bindir/dev8-agent" --config "$tmp/config.yaml" >"$tmp/agent.log" 2>&1 &
  pids+=($!)
  own=1
  for _ in $(seq 1 100); do
    up "$AGENT/readyz" && break
    sleep 0.1
  done
  up "$AGENT/readyz" || { echo "demo: the agent did not become ready:"; tail -20 "$tmp/agent.log"; exit 1; }
  note "config: hack/local-config.yaml with these ports; logs in $tmp"
fi

# ---- helpers ----------------------------------------------------------------------

# api METHOD PATH [BODY]: prints the body; the HTTP status goes to $tmp/code.
api() {
  local args=(-sS -X "$1" "$AGENT$2" -H "Authorization: Bearer $key" -o "$tmp/body" -w '%{http_code}')
  [ $# -ge 3 ] && args+=(-H 'Content-Type: application/json' --data-binary "$3")
  curl "${args[@]}" >"$tmp/code" || echo 000 >"$tmp/code"
  cat "$tmp/body" 2>/dev/null || true
}
code() { cat "$tmp/code"; }
# jfield NAME: the last "NAME":"value" (or number/bool) of the JSON on stdin.
jfield() { sed -n "s/.*\"$1\":\"\{0,1\}\([^\",}]*\)\"\{0,1\}.*/\1/p" | head -1; }
phase_of() { api GET "/api/v1/environments/$1" | jfield phase; }

# What azsim holds for env $1: "group=<provisioning>/<state> share=yes|no".
azure_of() {
  local res group share
  res=$(curl -fsS --max-time 5 "$AZSIM/_azsim/resources" 2>/dev/null | sed 's/{"id":"\/subscriptions/\n&/g')
  group=$(grep "/containerGroups/dev8-$1\"" <<<"$res" || true)
  share=$(grep "/shares/dev8-$1\"" <<<"$res" || true)
  if [ -n "$group" ]; then
    printf 'group=%s/%s ' "$(jfield provisioningState <<<"$group")" \
      "$(sed -n 's/.*"instanceView":{"events":\[[^]]*\],"state":"\([A-Za-z]*\)".*/\1/p' <<<"$group")"
  else
    printf 'group=none '
  fi
  [ -n "$share" ] && printf 'share=yes\n' || printf 'share=none\n'
}

# wait_phase ID PHASE: polls until the phase is reached, printing changes.
wait_phase() {
  local id=$1 want=$2 last="" p
  for _ in $(seq 1 "$step_wait"); do
    p=$(phase_of "$id")
    if [ "$p" != "$last" ]; then
      note "$(date +%T) $id: phase ${p:-?}   azure: $(azure_of "$id")"
      last=$p
    fi
    [ "$p" = "$want" ] && return 0
    sleep 1
  done
  note "$id did not reach $want within ${step_wait}s (last: ${last:-?})"
  return 1
}

# wait_gone ID: polls until GET answers 404.
wait_gone() {
  local id=$1 last="" p
  for _ in $(seq 1 "$step_wait"); do
    p=$(phase_of "$id")
    [ "$(code)" = 404 ] && { note "$(date +%T) $id: 404 (gone)   azure: $(azure_of "$id")"; return 0; }
    if [ "$p" != "$last" ]; then
      note "$(date +%T) $id: phase ${p:-?}   azure: $(azure_of "$id")"
      last=$p
    fi
    sleep 1
  done
  note "$id still exists after ${step_wait}s (phase ${last:-?})"
  return 1
}

spec() { printf '{"userId":"demo-user","name":"%s","cloudRegion":"eastus","cpuCores":1,"memoryGB":2,"storageGB":5%s}' "$1" "${2:-}"; }

# ---- 1. create, and watch ------------------------------------------------------------

id=ckdemo1
rv=$(api GET '/api/v1/environments?limit=1' | jfield resourceVersion)
step "Watch: GET /api/v1/watch?resourceVersion=${rv:-0} (Server-Sent Events, in the background)"
curl -sSN "$AGENT/api/v1/watch?resourceVersion=${rv:-0}" -H "Authorization: Bearer $key" >"$tmp/watch" 2>/dev/null &
watch_pid=$!

step "Create $id: PUT /api/v1/environments/$id"
show "curl -X PUT $AGENT/api/v1/environments/$id -d '$(spec "$id" ',"secretEnv":{"GITHUB_TOKEN":"ghp_demo"}')'"
body=$(api PUT "/api/v1/environments/$id" "$(spec "$id" ',"secretEnv":{"GITHUB_TOKEN":"ghp_demo"}')")
note "HTTP $(code), generation $(jfield generation <<<"$body"), phase $(jfield phase <<<"$body"); the secret reads back as $(grep -o '"GITHUB_TOKEN":"[^"]*"' <<<"$body")"
note "The PUT returns at once; the reconcile loop converges Azure (azsim) in the background:"
wait_phase "$id" RUNNING || true
body=$(api GET "/api/v1/environments/$id")
note "fqdn $(jfield fqdn <<<"$body"), vsCodeUrl $(jfield vsCodeUrl <<<"$body")"

step "A few watch events so far"
awk '/^event:/ {ev=$2} /^data:/ {id=""; ph=""
       if (match($0, /"id":"[^"]*"/)) id=substr($0, RSTART+6, RLENGTH-7)
       if (match($0, /"phase":"[^"]*"/)) ph=substr($0, RSTART+9, RLENGTH-10)
       printf "   %-9s %-10s %s\n", ev, id, ph; n++} n>=8 {exit}' "$tmp/watch"

# ---- 2. stop, start -----------------------------------------------------------------------

step "Stop: POST /api/v1/environments/$id/stop"
api POST "/api/v1/environments/$id/stop" >/dev/null
note "HTTP $(code)"
wait_phase "$id" STOPPED || true

step "Start: POST /api/v1/environments/$id/start"
api POST "/api/v1/environments/$id/start" >/dev/null
note "HTTP $(code)"
wait_phase "$id" RUNNING || true

# ---- 3. delete ----------------------------------------------------------------------------

step "Delete: DELETE /api/v1/environments/$id (storagePolicy Delete: the share goes too)"
api DELETE "/api/v1/environments/$id" >/dev/null
note "HTTP $(code); the object stays in phase DELETING until Azure holds nothing of it"
wait_gone "$id" || true

step "Watch events of $id, in order"
awk -v want="$id" '/^event:/ {ev=$2} /^data:/ {ph=""
       if (index($0, "\"id\":\"" want "\"") == 0) next
       if (match($0, /"phase":"[^"]*"/)) ph=substr($0, RSTART+9, RLENGTH-10)
       if (ev ph != last) printf "   %-9s %s\n", ev, ph; last=ev ph}' "$tmp/watch"
kill "$watch_pid" 2>/dev/null || true
watch_pid=""

# ---- 4. an orphan, and the reaper ------------------------------------------------------------

orphan=ckorphan
step "Full sync with three environments: PUT /api/v1/environments"
items="{\"items\":[{\"id\":\"ckkeep1\",$(spec ckkeep1 | cut -c2-),{\"id\":\"ckkeep2\",$(spec ckkeep2 | cut -c2-),{\"id\":\"$orphan\",$(spec "$orphan" | cut -c2-)]}"
note "$(api PUT /api/v1/environments "$items") (HTTP $(code))"
for e in ckkeep1 ckkeep2 "$orphan"; do wait_phase "$e" RUNNING || true; done

step "Full sync without $orphan: its container group and share become orphans"
items="{\"items\":[{\"id\":\"ckkeep1\",$(spec ckkeep1 | cut -c2-),{\"id\":\"ckkeep2\",$(spec ckkeep2 | cut -c2-)]}"
note "$(api PUT /api/v1/environments "$items") (HTTP $(code))"
api GET "/api/v1/environments/$orphan" >/dev/null
note "GET $orphan: HTTP $(code) (no longer desired); azure: $(azure_of "$orphan")"
note "The reaper deletes an orphan only once the desired set is authoritative (a full sync"
note "came), after its grace period, at most maxDeletesPerCycle per cycle. Observing for up"
note "to ${orphan_wait}s:"

last="" reaped=0
for i in $(seq 0 "$orphan_wait"); do
  # Whatever the agent has (or has not yet): every lookup may come back empty.
  status=$(api GET /api/v1/status)
  reaper=$(sed -n 's/.*"reaper":{\(.*\)}.*/\1/p' <<<"$status")
  if [ -n "$reaper" ]; then
    rorph=$(grep -o '"orphans":{[^}]*}' <<<"$reaper" | cut -d: -f2- || true)
    rreaped=$(grep -o '"reaped":{[^}]*}' <<<"$reaper" | cut -d: -f2- || true)
    rstate="reaper $(jfield state <<<"$reaper"), orphans ${rorph:-?}, reaped ${rreaped:-?}"
  else
    rstate="no reaper in /api/v1/status"
  fi
  norph=$(api GET /api/v1/orphans | { grep -o '"name":"dev8-[^"]*"' || true; } | sort -u | tr '\n' ' ')
  now="azure: $(azure_of "$orphan") | listed orphans: ${norph:-none} | $rstate"
  if [ "$now" != "$last" ]; then
    note "$(printf '%4ss' "$i") $now"
    last=$now
  fi
  if [[ "$now" == "azure: group=none share=none"* ]]; then
    reaped=1
    break
  fi
  sleep 1
done
if [ $reaped -eq 1 ]; then
  note "the reaper removed both orphans of $orphan; the kept environments are untouched:"
  for e in ckkeep1 ckkeep2; do note "  $e: phase $(phase_of "$e"), azure: $(azure_of "$e")"; done
else
  note "after ${orphan_wait}s the orphans of $orphan are still in azsim: the reaper is not"
  note "there yet, is in dryRun, or its graces are longer (see the observations above)."
fi

# ---- cleanup of a shared agent ------------------------------------------------------------------

if [ "$own" -eq 0 ]; then
  step "Removing the demo's environments from the running agent"
  for e in ckkeep1 ckkeep2; do api DELETE "/api/v1/environments/$e" >/dev/null; note "DELETE $e: HTTP $(code)"; done
fi
step "Done"
