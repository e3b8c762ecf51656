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
kubectl wait --for=condition=Established --timeout=60s crd/challengeinstances.ctfleet.io crd/challenges.ctfleet.io >/dev/null

echo "== Starting ctfleet all (log: $STATE_DIR/logs/ctfleet.log)"
pidfile="$STATE_DIR/pids/ctfleet.pid"
if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  kill "$(cat "$pidfile")"
  for _ in $(seq 1 100); do kill -0 "$(cat "$pidfile")" 2>/dev/null || break; sleep 0.2; done
fi
mkdir -p "$STATE_DIR/logs" "$STATE_DIR/pids"
# Tokens for the platform API and the dashboard, made once and kept (mode 600).
tokens="$STATE_DIR/demo-tokens"
random_token() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
if [ ! -s "$tokens" ]; then
  (umask 077; printf '# name:role:token — the dashboard takes the name as user and the token as password\norganiser:admin:%s\nscoreboard:read:%s\n' "$(random_token)" "$(random_token)" > "$tokens")
fi
admin_token=$(awk -F: '$1 == "organiser" { print $3 }' "$tokens")
http="127.0.0.1:${CTFLEET_HTTP_PORT:-18080}"   # /healthz, /readyz, /metrics
api="127.0.0.1:${CTFLEET_API_PORT:-18081}"     # the platform API and the dashboard
CTFLEET_API_TOKENS_FILE="$tokens" CTFLEET_API_NAMESPACE=ctf-demo \
CTFLEET_ALLOWED_IMAGES='ctfleet-test/*' CTFLEET_NODE_NAME=demo-node CTFLEET_BIND_ADDRESS=127.0.0.1 CTFLEET_ADVERTISE_ADDRESS=127.0.0.1 \
  CTFLEET_PORT_RANGE=31000-31999 CTFLEET_HTTP_HOST=127.0.0.1 CTFLEET_HTTP_PORT="${CTFLEET_HTTP_PORT:-18080}" CTFLEET_API_PORT="${CTFLEET_API_PORT:-18081}" \
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
echo
for _ in $(seq 1 60); do
  curl -sf -o /dev/null -u "organiser:$admin_token" "http://$api/dashboard/" && break
  sleep 0.5
done
running_rows=$(curl -s -u "organiser:$admin_token" "http://$api/dashboard/" | grep -c 'data-phase="Running"' || true)
echo "== Dashboard at http://$api/dashboard/ lists $running_rows Running instances (user organiser, password: the token in $tokens)"
cat <<MSG

ctfleet and the stack keep running. Try:
  eval "\$(hack/stack.sh env)"
  kubectl get chi -A -o wide                    # team, challenge, phase, endpoint, node, reason
  kubectl describe chi -n ctf-demo web-101-team-7   # conditions and events
  kubectl patch chi -n ctf-demo web-101-team-7 --type=merge -p '{"spec":{"desiredState":"Stopped"}}'
  kubectl delete chi -n ctf-demo echo-200-team-12   # container removed, then the resource
  curl -s $http/readyz                    # readiness of Redis, the API server, Docker and the informer
  curl -s -H "Authorization: Bearer \$(awk -F: '\$1 == "organiser" { print \$3 }' $tokens)" $api/v1/instances   # the platform API
  node src/main.ts queue stats            # jobs per queue; also: instances, workers, queue failed|retry|purge
Dashboard: http://$api/dashboard/ (instances) and http://$api/dashboard/queues/ (bull-board);
  sign in as organiser (admin) or scoreboard (read-only) with the token from $tokens
Logs: $STATE_DIR/logs/ctfleet.log     Stop everything: hack/stack.sh down
MSG
