#!/usr/bin/env bash
# `make run`: starts azsim and dev8-agent on loopback with hack/local-config.yaml,
# prints what to curl, and stops both on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
bindir=${1:-bin}
config=hack/local-config.yaml
export AGENT_API_KEYS=${AGENT_API_KEYS:-dev-key-change-me}
# The emulator accepts any client secret; these only make the agent pick
# the client-secret credential, as it would in production.
export AZURE_TENANT_ID=${AZURE_TENANT_ID:-00000000-0000-0000-0000-000000000000}
export AZURE_CLIENT_ID=${AZURE_CLIENT_ID:-11111111-1111-1111-1111-111111111111}
export AZURE_CLIENT_SECRET=${AZURE_CLIENT_SECRET:-local-emulator-secret}
export DEV8_SPEC_HASH_KEY=${DEV8_SPEC_HASH_KEY:-local-spec-hash-key}

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

if [ -x "$bindir/azsim" ]; then
  "$bindir/azsim" --listen 127.0.0.1:9090 --provision-ms 3000 --delete-ms 1000 --log-level warn &
  pids+=($!)
fi
"$bindir/dev8-agent" --config "$config" &
pids+=($!)

for _ in $(seq 1 50); do
  curl -fs http://127.0.0.1:8080/healthz >/dev/null 2>&1 && break
  sleep 0.1
done

cat <<MSG

dev8-agent is listening on http://127.0.0.1:8080 (API key: $AGENT_API_KEYS)
$( [ -x "$bindir/azsim" ] && echo "azsim (the Azure emulator) is listening on http://127.0.0.1:9090" )

Create an environment:
  curl -s -X PUT http://127.0.0.1:8080/api/v1/environments/ckdemo1 \\
    -H 'Authorization: Bearer $AGENT_API_KEYS' -H 'Content-Type: application/json' \\
    -d '{"userId":"u1","name":"demo","cloudRegion":"eastus","secretEnv":{"GITHUB_TOKEN":"ghp_x"}}'
Read it, list, watch:
  curl -s http://127.0.0.1:8080/api/v1/environments/ckdemo1 -H 'Authorization: Bearer $AGENT_API_KEYS'
  curl -s http://127.0.0.1:8080/api/v1/environments -H 'Authorization: Bearer $AGENT_API_KEYS'
  curl -N http://127.0.0.1:8080/api/v1/watch -H 'Authorization: Bearer $AGENT_API_KEYS'
Stop, start, delete:
  curl -s -X POST http://127.0.0.1:8080/api/v1/environments/ckdemo1/stop -H 'Authorization: Bearer $AGENT_API_KEYS'
  curl -s -X POST http://127.0.0.1:8080/api/v1/environments/ckdemo1/start -H 'Authorization: Bearer $AGENT_API_KEYS'
  curl -s -X DELETE http://127.0.0.1:8080/api/v1/environments/ckdemo1 -H 'Authorization: Bearer $AGENT_API_KEYS'
Controller state and metrics:
  curl -s http://127.0.0.1:8080/api/v1/status -H 'Authorization: Bearer $AGENT_API_KEYS'
  curl -s http://127.0.0.1:8081/metrics     # the probe listener (controller.probeListen)
What happened to it (events, the workspace's logs):
  curl -s http://127.0.0.1:8080/api/v1/environments/ckdemo1/events -H 'Authorization: Bearer $AGENT_API_KEYS'
  curl -s 'http://127.0.0.1:8080/api/v1/environments/ckdemo1/logs?tail=20' -H 'Authorization: Bearer $AGENT_API_KEYS'
The same with dev8ctl (the operator's command line):
  export DEV8_SERVER=http://127.0.0.1:8080 DEV8_API_KEY=$AGENT_API_KEYS
  $bindir/dev8ctl get environments -o wide
  $bindir/dev8ctl describe environment ckdemo1
  $bindir/dev8ctl watch

Ctrl-C stops both.
MSG
wait -n "${pids[@]}"
