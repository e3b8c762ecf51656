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
echo "== Installing the CRDs (ChallengeInstance, Challenge)"
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
# The deployment's key for per-team flags, made once and kept in a Secret.
kubectl apply -f manifests/samples/namespace.yaml >/dev/null
if ! kubectl get secret -n ctf-demo ctfleet-flag-key >/dev/null 2>&1; then
  kubectl create secret generic -n ctf-demo ctfleet-flag-key --from-literal=key="$(random_token)$(random_token)" >/dev/null
fi
http="127.0.0.1:${CTFLEET_HTTP_PORT:-18080}"   # /healthz, /readyz, /metrics
api="127.0.0.1:${CTFLEET_API_PORT:-18081}"     # the platform API and the dashboard
CTFLEET_API_TOKENS_FILE="$tokens" CTFLEET_API_NAMESPACE=ctf-demo CTFLEET_FLAG_KEY_SECRET=ctf-demo/ctfleet-flag-key \
CTFLEET_ALLOWED_IMAGES='ctfleet-test/*' CTFLEET_NODE_NAME=demo-node CTFLEET_BIND_ADDRESS=127.0.0.1 CTFLEET_ADVERTISE_ADDRESS=127.0.0.1 \
  CTFLEET_PORT_RANGE=31000-31999 CTFLEET_HTTP_HOST=127.0.0.1 CTFLEET_HTTP_PORT="${CTFLEET_HTTP_PORT:-18080}" CTFLEET_API_PORT="${CTFLEET_API_PORT:-18081}" \
  setsid bash -c 'echo $$ > "$0"; exec node src/main.ts all' "$pidfile" >>"$STATE_DIR/logs/ctfleet.log" 2>&1 < /dev/null &

# A rerun starts its instances afresh: an earlier run's may have reached the end of
# their lifetime (Expired), and an Expired instance does not run again.
if [ -n "$(kubectl get chi -n ctf-demo -o name 2>/dev/null)" ]; then
  echo "== Removing the instances of an earlier run"
  kubectl delete chi -n ctf-demo --all --wait=true --timeout=90s >/dev/null
fi
echo "== Applying manifests/samples/ (Challenges web-101 and echo-200; team-7: web-101, team-12: web-101 and echo-200)"
kubectl apply -f manifests/samples/
start=$SECONDS
if ! kubectl wait -n ctf-demo --for=jsonpath='{.status.phase}'=Running --timeout=120s challengeinstances --all >/dev/null; then
  kubectl get chi -n ctf-demo -o wide
  die "the sample instances did not reach Running within 120 s; see $STATE_DIR/logs/ctfleet.log"
fi
echo "== All three instances Running after $((SECONDS - start)) s"
echo
node hack/demo-report.ts ctf-demo
echo
kubectl get chal,chi -n ctf-demo
echo
# Each team's web-101 page shows the flag ctfleet gave its container (that is the
# test challenge's whole point); the platform checks flags with /v1/flags/verify.
flag_of() {
  local url; url=$(kubectl get chi -n ctf-demo "$1" -o jsonpath='{.status.endpoints[0].url}')
  curl -s "$url" | sed -n 's/.*<p id="flag">\([^<]*\)<\/p>.*/\1/p'
}
verify() {
  curl -s -X POST -H "Authorization: Bearer $admin_token" -H 'Content-Type: application/json' \
    -d "{\"team\":\"$1\",\"challenge\":\"web-101\",\"flag\":\"$2\"}" "http://$api/v1/flags/verify"
}
flag7=$(flag_of web-101-team-7)
flag12=$(flag_of web-101-team-12)
[ -n "$flag7" ] && [ -n "$flag12" ] || die "the web-101 pages show no flag; see $STATE_DIR/logs/ctfleet.log"
[ "$flag7" != "$flag12" ] || die "team-7 and team-12 got the same flag"
own=$(verify team-7 "$flag7")
other=$(verify team-7 "$flag12")
echo "== Flags of web-101: team-7 ${flag7:0:12}…, team-12 ${flag12:0:12}… (different: derived per team)"
echo "   /v1/flags/verify team-7 with team-7's flag:  $own"
echo "   /v1/flags/verify team-7 with team-12's flag: $other"
[ "$own" = '{"correct":true}' ] && [ "$other" = '{"correct":false}' ] || die "/v1/flags/verify did not accept team-7's own flag and refuse team-12's"
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
  kubectl get chal -n ctf-demo                  # the Challenges, with instances and running counts
  curl -s $http/readyz                    # readiness of Redis, the API server, Docker and the informer
  curl -s -H "Authorization: Bearer \$(awk -F: '\$1 == "organiser" { print \$3 }' $tokens)" $api/v1/instances   # the platform API
  node src/main.ts queue stats            # jobs per queue; also: instances, workers, queue failed|retry|purge
Dashboard: http://$api/dashboard/ (instances) and http://$api/dashboard/queues/ (bull-board);
  sign in as organiser (admin) or scoreboard (read-only) with the token from $tokens
Logs: $STATE_DIR/logs/ctfleet.log     Stop everything: hack/stack.sh down
MSG
