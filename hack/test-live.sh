#!/usr/bin/env bash
# make test-live: an opt-in smoke test against a real Azure subscription.
#
#   DEV8_LIVE_CONFIG=/path/agent.yaml [DEV8_LIVE_REGION=eastus] make test-live
#
# Runs `dev8-agent preflight` on the config (it must pass), then starts the
# agent on a copy of the config with a unique controller name (so that it
# can never see, adopt or reap anything else: everything it creates is
# tagged with that name), creates one small environment and takes it
# through RUNNING -> stop -> STOPPED -> start -> RUNNING -> delete -> gone,
# then checks that nothing of that controller is left (the agent's
# orphans, and the Azure CLI's view when `az` is installed). Whatever
# happens, the environment is deleted and the agent stopped on exit.
#
# Credentials come from the environment as for the agent (AZURE_TENANT_ID,
# AZURE_CLIENT_ID, AZURE_CLIENT_SECRET or AZURE_FEDERATED_TOKEN_FILE).
# Without DEV8_LIVE_CONFIG it prints one line and exits 0: it is not part
# of `make test`.
set -euo pipefail

if [ -z "${DEV8_LIVE_CONFIG:-}" ]; then
  echo "test-live: skipped (set DEV8_LIVE_CONFIG to an agent config for a real subscription)"
  exit 0
fi
cd "$(dirname "$0")/.."
bin="${D8_BIN_DIR:-bin}/dev8-agent"
[ -r "$DEV8_LIVE_CONFIG" ] || { echo "test-live: cannot read $DEV8_LIVE_CONFIG" >&2; exit 1; }
[ -x "$bin" ] || { echo "test-live: $bin is not built (make all)" >&2; exit 1; }

timeout_s="${DEV8_LIVE_TIMEOUT_S:-900}"
work="$(mktemp -d)"
name="live$(date +%s | tail -c 7)$(printf '%04x' $((RANDOM)))"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
key="live-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
env_id="$name-env"
agent_pid=""

log() { echo "test-live: $*"; }

# The config with controller.name, listen and stateFile replaced.
awk -v name="$name" -v port="$port" '
  /^controller:/ { print; print "  name: " name; print "  listen: 127.0.0.1:" port;
                   print "  stateFile: \"\""; inctl = 1; seen = 1; next }
  /^[^ #]/ { inctl = 0 }
  inctl && /^  (name|listen|stateFile):/ { next }
  { print }
  END { if (!seen) { print "controller:"; print "  name: " name;
                     print "  listen: 127.0.0.1:" port; print "  stateFile: \"\"" } }
' "$DEV8_LIVE_CONFIG" >"$work/agent.yaml"
region="${DEV8_LIVE_REGION:-$(awk '/^  regions:/ { r = 1; next }
  r && /name:/ { sub(/.*name:[ ]*/, ""); sub(/[ ,}].*/, ""); print; exit }' "$work/agent.yaml")}"
[ -n "$region" ] || { echo "test-live: no region found; set DEV8_LIVE_REGION" >&2; exit 1; }

api() { # METHOD PATH [BODY] -> body on stdout, status in $work/status
  local args=(-sS -o "$work/body" -w '%{http_code}' -X "$1" -H "Authorization: Bearer $key")
  [ $# -ge 3 ] && args+=(-H 'Content-Type: application/json' --data "$3")
  curl "${args[@]}" "http://127.0.0.1:$port$2" >"$work/status" || echo 000 >"$work/status"
  cat "$work/body" 2>/dev/null || true
}

phase() {
  api GET "/api/v1/environments/$env_id" |
    python3 -c 'import json,sys
try: print(json.load(sys.stdin)["status"]["phase"])
except Exception: print("")'
}

wait_phase() { # PHASE
  local deadline=$((SECONDS + timeout_s)) p=""
  while [ $SECONDS -lt $deadline ]; do
    p="$(phase)"
    [ "$p" = "$1" ] && { log "$env_id is $1 after $((SECONDS - t0)) s"; return 0; }
    [ "$p" = "ERROR" ] && { log "$env_id went to ERROR:"; cat "$work/body"; echo; return 1; }
    sleep 5
  done
  log "$env_id did not reach $1 in ${timeout_s}s (last: ${p:-none})"
  return 1
}

cleanup() {
  local rc=$?
  if [ -n "$agent_pid" ] && kill -0 "$agent_pid" 2>/dev/null; then
    if [ "$rc" -ne 0 ]; then
      log "cleaning up after a failure: deleting $env_id"
      api DELETE "/api/v1/environments/$env_id" >/dev/null || true
      local deadline=$((SECONDS + timeout_s))
      while [ $SECONDS -lt $deadline ]; do
        api GET "/api/v1/environments/$env_id" >/dev/null
        [ "$(cat "$work/status")" = 404 ] && break
        sleep 5
      done
    fi
    kill -TERM "$agent_pid" 2>/dev/null || true
    wait "$agent_pid" 2>/dev/null || true
  fi
  [ "$rc" -eq 0 ] || log "FAILED (agent log: $work/agent.log)"
  exit "$rc"
}
trap cleanup EXIT

log "controller $name, region $region, environment $env_id"
log "preflight:"
"$bin" preflight --config "$work/agent.yaml"

AGENT_API_KEYS="$key" "$bin" --config "$work/agent.yaml" >"$work/agent.log" 2>&1 &
agent_pid=$!
for _ in $(seq 1 120); do
  curl -sf "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  sleep 1
done
curl -sf "http://127.0.0.1:$port/readyz" >/dev/null || { log "the agent is not ready"; exit 1; }

t0=$SECONDS
spec="{\"userId\":\"dev8-live-test\",\"name\":\"smoke\",\"cloudRegion\":\"$region\",\"cpuCores\":1,\"memoryGB\":1.5,\"storageGB\":${DEV8_LIVE_STORAGE_GB:-1}}"
api PUT "/api/v1/environments/$env_id" "$spec" >/dev/null
[ "$(cat "$work/status")" = 201 ] || { log "create answered $(cat "$work/status")"; exit 1; }
wait_phase RUNNING
t0=$SECONDS
api POST "/api/v1/environments/$env_id/stop" >/dev/null
wait_phase STOPPED
t0=$SECONDS
api POST "/api/v1/environments/$env_id/start" >/dev/null
wait_phase RUNNING
t0=$SECONDS
api DELETE "/api/v1/environments/$env_id" >/dev/null
deadline=$((SECONDS + timeout_s))
while [ $SECONDS -lt $deadline ]; do
  api GET "/api/v1/environments/$env_id" >/dev/null
  [ "$(cat "$work/status")" = 404 ] && break
  sleep 5
done
[ "$(cat "$work/status")" = 404 ] || { log "$env_id was not deleted in ${timeout_s}s"; exit 1; }
log "$env_id deleted after $((SECONDS - t0)) s"

# Nothing of this controller is left.
left="$(api GET /api/v1/orphans | python3 -c 'import json,sys; print(len(json.load(sys.stdin).get("items",[])))')"
[ "$left" = 0 ] || { log "the agent still sees $left orphan(s):"; cat "$work/body"; exit 1; }
if command -v az >/dev/null 2>&1; then
  rg="$(awk -v r="$region" '$0 ~ "name: *" r { f = 1 } f && /resourceGroup:/ {
    sub(/.*resourceGroup:[ ]*/, ""); sub(/[ ,}].*/, ""); print; exit }' "$work/agent.yaml")"
  n="$(az container list --resource-group "$rg" \
    --query "length([?tags.\"dev8-controller\"=='$name'])" --output tsv)"
  [ "$n" = 0 ] || { log "$n container group(s) of $name are left in $rg"; exit 1; }
fi
log "ok: create -> RUNNING -> stop -> start -> delete, nothing left"
