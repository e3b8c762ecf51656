#!/usr/bin/env bash
# The main job: brings up the local stack, installs the ChallengeInstance CRD,
# starts ctfleet (controller and worker in one process), applies the sample
# instances for two teams, waits until they run, asks each endpoint for an answer
# and prints the result. ctfleet and the stack keep running afterwards.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

timed "node $NODE_VERSION" ensure_node
timed "npm dependencies" ensure_deps
bash hack/stack.sh up
eval "$(bash hack/stack.sh env)"

echo
echo "== Installing the ChallengeInstance CRD"
kubectl apply --server-side --force-conflicts -f manifests/crds/ >/dev/null
kubectl wait --for=condition=Established --timeout=60s crd/challengeinstances.ctfleet.io >/dev/null

echo "== Starting ctfleet all (log: $STATE_DIR/logs/ctfleet.log)"
pidfile="$STATE_DIR/pids/ctfleet.pid"
if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  kill "$(cat "$pidfile")"
  for _ in $(seq 1 100); do kill -0 "$(cat "$pidfile")" 2>/dev/null || break; sleep 0.2; done
fi
mkdir -p "$STATE_DIR/logs" "$STATE_DIR/pids"
CTFLEET_NODE_NAME=demo-node CTFLEET_BIND_ADDRESS=127.0.0.1 CTFLEET_ADVERTISE_ADDRESS=127.0.0.1 \
  CTFLEET_PORT_RANGE=31000-31999 CTFLEET_HTTP_HOST=127.0.0.1 CTFLEET_HTTP_PORT="${CTFLEET_HTTP_PORT:-18080}" \
  setsid bash -c 'echo $$ > "$0"; exec node src/main.ts all' "$pidfile" >>"$STATE_DIR/logs/ctfleet.log" 2>&1 < /dev/null &

echo "== Applying manifests/samples/ (team-7: web-101, team-12: echo-200)"
kubectl apply -f manifests/samples/namespace.yaml >/dev/null
kubectl apply -f manifests/samples/
start=$SECONDS
if ! kubectl wait -n ctf-demo --for=jsonpath='{.status.phase}'=Running --timeout=120s challengeinstances --all >/dev/null; then
  kubectl get chi -n ctf-demo -o wide
  die "the sample instances did not reach Running within 120 s; see $STATE_DIR/logs/ctfleet.log"
fi
echo "== Both instances Running after $((SECONDS - start)) s"
echo
node hack/demo-report.ts ctf-demo
echo
kubectl get chi -n ctf-demo
cat <<MSG

ctfleet and the stack keep running. Try:
  eval "\$(hack/stack.sh env)"
  kubectl get chi -A -o wide                    # team, challenge, phase, endpoint, node, reason
  kubectl describe chi -n ctf-demo web-101-team-7   # conditions and events
  kubectl patch chi -n ctf-demo web-101-team-7 --type=merge -p '{"spec":{"desiredState":"Stopped"}}'
  kubectl delete chi -n ctf-demo echo-200-team-12   # container removed, then the resource
  curl -s 127.0.0.1:${CTFLEET_HTTP_PORT:-18080}/readyz   # readiness of Redis, the API server, Docker and the informer
Logs: $STATE_DIR/logs/ctfleet.log     Stop everything: hack/stack.sh down
MSG
