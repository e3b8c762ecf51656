#!/usr/bin/env bash
# The local stack every ctfleet demo, test, CI run and benchmark shares: etcd +
# kube-apiserver (+ a kube-controller-manager running only the namespace,
# garbage-collector and service-account controllers), redis-server and a Docker
# engine, plus kubectl, helm and the test challenge images.
# The API server serves MutatingAdmissionPolicy (v1beta1, behind a feature gate on
# Kubernetes 1.35), so the chart's finalizer policy runs here (charts/README.md).
#
#   hack/stack.sh up       start whatever is not running (idempotent, reuses what is)
#   hack/stack.sh up --cluster
#                          the same plus a single-node cluster where pods really run:
#                          containerd (CRI), kubelet, kube-proxy, kube-scheduler,
#                          CoreDNS, the images they need (hack/cluster/cluster.sh,
#                          docs/local-cluster.md). A plain `up` keeps (and repairs) a
#                          cluster that is up; `down` then `up` is the plain stack.
#   hack/stack.sh down     stop what the stack started, and nothing else (the cluster
#                          with everything it made: pods, mounts, interfaces, chains)
#   hack/stack.sh status   say what is up
#   hack/stack.sh leftovers  after down: list what the local cluster left (exit 1), or nothing
#   hack/stack.sh env      print `export …` lines for kubectl, helm, redis-cli, docker
#
# Settings (environment):
#   CTFLEET_STATE_DIR            where pids, logs, certificates and data live (.stack/)
#   CTFLEET_CACHE_DIR            where built binaries are cached (~/.cache/ctfleet)
#   CTFLEET_USE_EXISTING_CLUSTER=true with KUBECONFIG set: use that cluster instead
#   CTFLEET_REDIS_PASSWORD       require this password on the stack's Redis
#   CTFLEET_APISERVER_FLAGS      extra kube-apiserver flags (e.g. --feature-gates=…)
#   CTFLEET_{ETCD,APISERVER,REDIS}_PORT   preferred ports (the next free one is used
#                                if taken by something that is not the stack's)
#
# Guarantees: `up` never leaves a half-started stack behind (what it started in a
# failed run is stopped again); `down` only signals processes whose pid file and
# command line both say the stack started them.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$ROOT/hack/build-tools.sh"
# shellcheck source=cluster/cluster.sh
source "$ROOT/hack/cluster/cluster.sh"

PKI="$STATE_DIR/pki"
PIDS="$STATE_DIR/pids"
LOGS="$STATE_DIR/logs"
PORTS_FILE="$STATE_DIR/ports.env"
KUBECONFIG_FILE="$STATE_DIR/kubeconfig"
DOCKER_SOCK=/var/run/docker.sock
# The mode the running kube-apiserver was started in: plain (127.0.0.1 only) or
# cluster (the node IP, Node authorization, ServiceAccount admission).
APISERVER_MODE_FILE="$STATE_DIR/apiserver.mode"
# The API server's audit log: one JSON line per write to ctfleet's resources and
# Events (metadata only), so tests and the benchmark count the writes one instance
# cost, by namespace and name (docs/benchmark.md). Rotated at 50 MB, one backup.
AUDIT_DIR="$STATE_DIR/audit"
AUDIT_LOG="$AUDIT_DIR/apiserver.log"
CLUSTER=false

use_existing_cluster() { [ "${CTFLEET_USE_EXISTING_CLUSTER:-false}" = "true" ]; }

# ---------------------------------------------------------------- processes

pid_of() { cat "$PIDS/$1.pid" 2>/dev/null || true; }

# pid_matches PID BINARY: PID is alive and runs BINARY.
pid_matches() {
  [ -n "$1" ] && [ -r "/proc/$1/cmdline" ] && grep -q -- "$2" <<<"$(tr '\0' ' ' < "/proc/$1/cmdline")"
}

# adopt NAME BINARY: finds a process of this stack (its command line or working
# directory names $STATE_DIR) running BINARY and records it in NAME's pid file.
# Repairs a pid file that was lost or overwritten while the daemon kept running.
adopt() {
  local pid
  for pid in $(pgrep -f -- "$2" || true); do
    [ "$pid" != "$$" ] || continue
    if grep -qF -- "$STATE_DIR/" <<<"$(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null)" \
      || [ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" = "$STATE_DIR/$1" ]; then
      mkdir -p "$PIDS"
      echo "$pid" > "$PIDS/$1.pid"
      return 0
    fi
  done
  return 1
}

# is_running NAME BINARY: a process of this stack runs BINARY for NAME. A pid file
# left by a dead process, or whose pid now belongs to something else, is stale and
# is replaced by the stack's real process if there is one.
is_running() {
  pid_matches "$(pid_of "$1")" "$2" && return 0
  adopt "$1" "$2" && pid_matches "$(pid_of "$1")" "$2"
}

STARTED_NOW=()

# spawn NAME BINARY ARGS...: starts a daemon in its own session so it outlives the
# calling shell, with its log under $LOGS.
spawn() {
  local name=$1; shift
  mkdir -p "$PIDS" "$LOGS"
  rm -f "$PIDS/$name.pid"
  # One log per start; the previous one is kept beside it for a post-mortem.
  [ -f "$LOGS/$name.log" ] && mv "$LOGS/$name.log" "$LOGS/$name.previous.log"
  # The child records its own pid before exec, so the pid file is right whether or
  # not setsid had to fork.
  setsid bash -c 'echo $$ > "$0"; exec "$@"' "$PIDS/$name.pid" "$@" >>"$LOGS/$name.log" 2>&1 < /dev/null &
  for _ in $(seq 1 50); do [ -s "$PIDS/$name.pid" ] && break; sleep 0.05; done
  STARTED_NOW+=("$name")
}

stop_process() {
  local name=$1 binary=$2
  if is_running "$name" "$binary"; then
    local pid; pid=$(pid_of "$name")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
    if [ -d "/proc/$pid" ]; then
      kill -9 "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
    fi
    log "stopped $name (pid $pid)"
  fi
  rm -f "$PIDS/$name.pid"
}

# wait_for LABEL SECONDS NAME CMD...: polls CMD until it succeeds. Fails at once if
# NAME's process exits, or after SECONDS, printing the end of its log either way.
wait_for() {
  local label=$1 secs=$2 name=$3; shift 3
  local deadline=$((SECONDS + secs)) pid; pid=$(pid_of "$name")
  until "$@" >/dev/null 2>&1; do
    if [ -n "$pid" ] && [ ! -d "/proc/$pid" ]; then
      tail -n 15 "$LOGS/$name.log" >&2 2>/dev/null || true
      die "$label exited during start-up (log: $LOGS/$name.log)"
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      tail -n 15 "$LOGS/$name.log" >&2 2>/dev/null || true
      die "$label did not become ready within ${secs}s (log: $LOGS/$name.log)"
    fi
    sleep 0.3
  done
}

# becomes_ready SECONDS CHECK: CHECK passes now or within SECONDS.
becomes_ready() {
  local deadline=$((SECONDS + $1))
  until "$2" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.3
  done
}

on_failed_up() {
  local rc=$?
  [ "$rc" -eq 0 ] && return
  # A cluster this run began from nothing is removed whole (pods, interfaces, chains),
  # first, while its containerd still runs to remove the pods.
  if [ "${CLUSTER_FRESH:-false}" = true ]; then down_cluster; fi
  if [ "${#STARTED_NOW[@]}" -gt 0 ]; then
    log "up failed: stopping what this run started (${STARTED_NOW[*]})"
    local name
    for ((i=${#STARTED_NOW[@]}-1; i>=0; i--)); do
      name=${STARTED_NOW[i]}
      [ "$name" = node-interface ] && continue
      stop_process "$name" "$(binary_of "$name")"
    done
  fi
  exit "$rc"
}

binary_of() {
  case "$1" in
    etcd) echo "$(etcd_bin_dir)/etcd" ;;
    kube-apiserver|kube-controller-manager) echo "$(kube_bin_dir)/$1" ;;
    kubelet|kube-scheduler|kube-proxy) echo "$(kube_node_bin_dir)/$1" ;;
    containerd-cluster) echo "--config $CONTAINERD_CONFIG" ;;
    redis) echo "redis-server" ;;
    dockerd) echo "dockerd" ;;
  esac
}

# ---------------------------------------------------------------- ports

port_in_use() { [ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]; }

load_ports() {
  ETCD_PORT=${CTFLEET_ETCD_PORT:-23790}
  APISERVER_PORT=${CTFLEET_APISERVER_PORT:-26443}
  REDIS_PORT=${CTFLEET_REDIS_PORT:-26379}
  # shellcheck disable=SC1090
  [ -f "$PORTS_FILE" ] && source "$PORTS_FILE"
  apiserver_host_for "$(cat "$APISERVER_MODE_FILE" 2>/dev/null || echo plain)"
  return 0
}

# In cluster mode the apiserver listens on the node IP only (pods reach it there
# through the kubernetes Service), and every kubeconfig names that address.
apiserver_host_for() { if [ "$1" = cluster ]; then APISERVER_HOST=$NODE_IP; else APISERVER_HOST=127.0.0.1; fi; }

save_ports() {
  mkdir -p "$STATE_DIR"
  printf 'ETCD_PORT=%s\nAPISERVER_PORT=%s\nREDIS_PORT=%s\n' "$ETCD_PORT" "$APISERVER_PORT" "$REDIS_PORT" > "$PORTS_FILE"
}

# pick_port CURRENT: CURRENT if free, else the next free port above it. Only called
# for a component that is not running, so a taken port belongs to someone else.
pick_port() {
  local p=$1
  while port_in_use "$p" || { [ "$2" = peer ] && port_in_use $((p + 10)); }; do
    p=$((p + 1))
    [ "$p" -lt $(( $1 + 100 )) ] || die "no free port in $1..$((p - 1)) on 127.0.0.1"
  done
  [ "$p" = "$1" ] || log "port $1 is taken by another program; using $p"
  echo "$p"
}

# ---------------------------------------------------------------- prerequisites

require_cmd() { have "$1" || apt_install "$@"; }

# ---------------------------------------------------------------- kubernetes

ensure_pki() {
  mkdir -p "$PKI"
  [ -f "$PKI/ca.crt" ] && [ -f "$PKI/apiserver.crt" ] && [ -f "$PKI/sa.key" ] && [ -f "$PKI/token" ] && return 0
  require_cmd openssl openssl
  log "generating CA, serving certificate, service-account key and admin token in $PKI"
  (
    cd "$PKI"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=ctfleet-local-ca" \
      -keyout ca.key -out ca.crt 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" -keyout apiserver.key -out apiserver.csr 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,IP:10.0.0.1\nextendedKeyUsage=serverAuth\n' > apiserver.ext
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile apiserver.ext -out apiserver.crt 2>/dev/null
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > token
    printf '%s,ctfleet-admin,ctfleet-admin,"system:masters"\n' "$(cat token)" > tokens.csv
    chmod 600 ./*.key token tokens.csv
  )
}

# write_kubeconfig_file FILE SERVER CONTEXT USER CREDENTIAL…: a kubeconfig trusting
# the stack's CA, for USER with the given `key: value` credential lines, written
# atomically with mode 600.
write_kubeconfig_file() {
  local file=$1 server=$2 context=$3 user=$4; shift 4
  local ca; ca=$(base64 -w0 < "$PKI/ca.crt")
  {
    printf 'apiVersion: v1\nkind: Config\nclusters:\n- name: ctfleet-local\n  cluster:\n'
    printf '    server: %s\n    certificate-authority-data: %s\n' "$server" "$ca"
    printf 'users:\n- name: %s\n  user:\n' "$user"
    printf '    %s\n' "$@"
    printf 'contexts:\n- name: %s\n  context: { cluster: ctfleet-local, user: %s }\ncurrent-context: %s\n' "$context" "$user" "$context"
  } > "$file.tmp"
  chmod 600 "$file.tmp"
  mv "$file.tmp" "$file"
}

write_kubeconfig() {
  write_kubeconfig_file "$KUBECONFIG_FILE" "https://$APISERVER_HOST:$APISERVER_PORT" ctfleet-local ctfleet-admin "token: $(cat "$PKI/token")"
}

etcd_healthy() { grep -q '"health":"true"' <<<"$(curl -sf --max-time 2 "http://127.0.0.1:$ETCD_PORT/health")"; }

up_etcd() {
  local bin; bin="$(etcd_bin_dir)/etcd"
  if is_running etcd "$bin" && becomes_ready 5 etcd_healthy; then log "etcd: running on 127.0.0.1:$ETCD_PORT"; return 0; fi
  stop_process etcd "$bin"
  ETCD_PORT=$(pick_port "$ETCD_PORT" peer)
  mkdir -p "$STATE_DIR/etcd" && chmod 700 "$STATE_DIR/etcd"
  spawn etcd "$bin" --name ctfleet --data-dir "$STATE_DIR/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$((ETCD_PORT + 10))" --initial-advertise-peer-urls "http://127.0.0.1:$((ETCD_PORT + 10))" \
    --initial-cluster "ctfleet=http://127.0.0.1:$((ETCD_PORT + 10))" \
    --listen-metrics-urls "" --unsafe-no-fsync --quota-backend-bytes 4294967296 --log-level warn
  wait_for "etcd" 30 etcd etcd_healthy
  save_ports
  log "etcd: started on 127.0.0.1:$ETCD_PORT"
}

apiserver_ready() {
  grep -q '^ok$' <<<"$(curl -sf --max-time 2 --cacert "$PKI/ca.crt" -H "Authorization: Bearer $(cat "$PKI/token")" \
    "https://$APISERVER_HOST:$APISERVER_PORT/readyz")"
}

# Writes (not reads, not watches) of ctfleet's resources and of Events, at
# Metadata level: who, what, which object, when, with what result.
write_audit_policy() {
  mkdir -p "$AUDIT_DIR"
  cat > "$AUDIT_DIR/policy.yaml" <<'POLICY'
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    verbs: [create, update, patch, delete, deletecollection]
    resources:
      - group: ctfleet.io
        resources: [challengeinstances, challengeinstances/status, challenges, challenges/status]
      - group: ""
        resources: [events]
  - level: None
POLICY
}

up_apiserver() {
  local bin; bin="$(kube_bin_dir)/kube-apiserver"
  local mode; mode=$(cluster_requested_mode)
  # A running apiserver whose etcd was just restarted needs a moment to reconnect.
  # One started in the other mode, without the audit log or without the
  # MutatingAdmissionPolicy API, is restarted.
  if [ "$(cat "$APISERVER_MODE_FILE" 2>/dev/null || true)" = "$mode" ] && is_running kube-apiserver "$bin" \
    && grep -q -- "--audit-log-path $AUDIT_LOG .*--feature-gates MutatingAdmissionPolicy=true " <<<"$(tr '\0' ' ' < "/proc/$(pid_of kube-apiserver)/cmdline")" \
    && becomes_ready 20 apiserver_ready; then
    log "kube-apiserver: running on https://$APISERVER_HOST:$APISERVER_PORT ($mode mode)"; write_kubeconfig; return 0
  fi
  stop_process kube-apiserver "$bin"
  APISERVER_PORT=$(pick_port "$APISERVER_PORT" single)
  apiserver_host_for "$mode"
  write_kubeconfig
  # Plain: loopback only, RBAC, no ServiceAccount admission (no pods run). Cluster:
  # cluster_apiserver_flags instead (node IP, Node authorizer, kubelet client cert).
  local mode_flags=(--bind-address 127.0.0.1 --advertise-address 127.0.0.1 --authorization-mode RBAC --disable-admission-plugins ServiceAccount)
  if [ "$mode" = cluster ]; then mapfile -t mode_flags < <(cluster_apiserver_flags); fi
  echo "$mode" > "$APISERVER_MODE_FILE"
  write_audit_policy
  spawn kube-apiserver "$bin" \
    --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    "${mode_flags[@]}" --secure-port "$APISERVER_PORT" \
    --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
    --client-ca-file "$PKI/ca.crt" --token-auth-file "$PKI/tokens.csv" \
    --service-cluster-ip-range 10.0.0.0/24 \
    --service-account-issuer https://kubernetes.default.svc \
    --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
    --allow-privileged=true \
    --audit-policy-file "$AUDIT_DIR/policy.yaml" --audit-log-path "$AUDIT_LOG" \
    --audit-log-format json --audit-log-maxsize 50 --audit-log-maxbackup 1 \
    --feature-gates MutatingAdmissionPolicy=true --runtime-config admissionregistration.k8s.io/v1beta1=true \
    --cert-dir "$PKI/generated" --v 1 ${CTFLEET_APISERVER_FLAGS:-}
  wait_for "kube-apiserver" 90 kube-apiserver apiserver_ready
  save_ports
  log "kube-apiserver: started on https://$APISERVER_HOST:$APISERVER_PORT ($mode mode)"
}

# Without a controller-manager, namespaces stay Terminating forever and owner
# references are never garbage-collected; tests and Helm uninstall need both. In
# cluster mode it runs every controller a real cluster has (deployments, daemon and
# stateful sets, endpoints, disruption, podgc, …).
up_controller_manager() {
  local bin; bin="$(kube_bin_dir)/kube-controller-manager"
  local mode; mode=$(cluster_requested_mode)
  # It reads the kubeconfig once, so it follows an apiserver started by this run.
  if is_running kube-controller-manager "$bin" && [[ " ${STARTED_NOW[*]} " != *" kube-apiserver "* ]] \
    && [ "$(cat "$STATE_DIR/controller-manager.mode" 2>/dev/null || echo plain)" = "$mode" ]; then
    log "kube-controller-manager: running"; return 0
  fi
  stop_process kube-controller-manager "$bin"
  local controllers=namespace,garbagecollector,serviceaccount,serviceaccount-token
  [ "$mode" = plain ] || controllers='*'
  echo "$mode" > "$STATE_DIR/controller-manager.mode"
  spawn kube-controller-manager "$bin" --kubeconfig "$KUBECONFIG_FILE" \
    --controllers "$controllers" \
    --service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
    --leader-elect=false --secure-port 0 --v 1
  sleep 1
  is_running kube-controller-manager "$bin" || { tail -n 15 "$LOGS/kube-controller-manager.log" >&2; die "kube-controller-manager exited at start (log: $LOGS/kube-controller-manager.log)"; }
  log "kube-controller-manager: started"
}

# ---------------------------------------------------------------- redis

redis_cli() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ${REDIS_PASSWORD:+--no-auth-warning -a "$REDIS_PASSWORD"} "$@"; }
redis_ready() { [ "$(redis_cli ping 2>/dev/null)" = PONG ]; }

up_redis() {
  require_cmd redis-server redis-server
  REDIS_PASSWORD=${CTFLEET_REDIS_PASSWORD:-$(cat "$STATE_DIR/redis-password" 2>/dev/null || true)}
  if [ -n "$REDIS_PASSWORD" ]; then (umask 077; printf '%s' "$REDIS_PASSWORD" > "$STATE_DIR/redis-password"); else rm -f "$STATE_DIR/redis-password"; fi
  if is_running redis redis-server && becomes_ready 3 redis_ready; then log "redis: running on 127.0.0.1:$REDIS_PORT"; return 0; fi
  stop_process redis redis-server
  REDIS_PORT=$(pick_port "$REDIS_PORT" single)
  mkdir -p "$STATE_DIR/redis"
  spawn redis "$(command -v redis-server)" --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$STATE_DIR/redis" \
    --maxmemory-policy noeviction --save "" --appendonly no --daemonize no --protected-mode yes \
    ${REDIS_PASSWORD:+--requirepass "$REDIS_PASSWORD"}
  wait_for "redis" 20 redis redis_ready
  save_ports
  log "redis: started on 127.0.0.1:$REDIS_PORT"
}

# ---------------------------------------------------------------- docker

docker_host() { echo "${DOCKER_HOST:-unix://$DOCKER_SOCK}"; }
docker_ready() { DOCKER_HOST=$(docker_host) docker info >/dev/null 2>&1; }

up_docker() {
  if docker_ready; then
    if is_running dockerd dockerd; then log "docker: started by the stack, running"; else log "docker: using the running engine at $(docker_host)"; fi
    return 0
  fi
  # DOCKER_HOST naming the default socket is the same as not setting it: the stack
  # may start the engine there. Any other address is the user's engine to start.
  if [ -n "${DOCKER_HOST:-}" ] && [ "$DOCKER_HOST" != "unix://$DOCKER_SOCK" ]; then
    die "DOCKER_HOST=$DOCKER_HOST does not answer: start that engine or unset DOCKER_HOST so the stack starts its own."
  fi
  have dockerd || apt_install dockerd docker.io
  have docker || apt_install docker docker.io
  is_root || die "no Docker engine is reachable and starting dockerd needs root: start one yourself or set DOCKER_HOST."
  stop_process dockerd dockerd
  spawn dockerd "$(command -v dockerd)" --host "unix://$DOCKER_SOCK" --pidfile "$STATE_DIR/dockerd.own.pid"
  wait_for "dockerd" 60 dockerd docker_ready
  log "docker: started dockerd (log: $LOGS/dockerd.log)"
}

# ---------------------------------------------------------------- commands

cmd_up() {
  mkdir -p "$STATE_DIR" "$PIDS" "$LOGS"
  trap on_failed_up EXIT
  load_ports
  require_cmd curl curl
  require_cmd ss iproute2
  if use_existing_cluster; then
    [ -n "${KUBECONFIG:-}" ] || die "CTFLEET_USE_EXISTING_CLUSTER=true needs KUBECONFIG pointing at that cluster."
    [ "$CLUSTER" = false ] || die "--cluster builds its own node on the stack's apiserver: unset CTFLEET_USE_EXISTING_CLUSTER."
    log "kubernetes: using the existing cluster in KUBECONFIG=$KUBECONFIG"
  else
    timed "etcd $ETCD_VERSION binary" build_etcd
    timed "kube $KUBE_VERSION binaries" build_kube
    ensure_pki
    # A plain `up` repairs a running cluster rather than removing it: scripts and
    # tests restart parts of the stack with plain `up` (test/support/faults.ts), and
    # the apiserver must stay where the cluster's pods reach it.
    if [ "$CLUSTER" = false ] && cluster_known; then
      log "the local cluster is up: keeping it (hack/stack.sh down, then up, for the plain stack)"
      CLUSTER=true
    fi
    if [ "$CLUSTER" = true ]; then
      cluster_known || CLUSTER_FRESH=true
      prepare_cluster
    fi
    timed "etcd up" up_etcd
    timed "kube-apiserver up" up_apiserver
    timed "kube-controller-manager up" up_controller_manager
  fi
  timed "helm $HELM_VERSION binary" build_helm
  timed "redis up" up_redis
  timed "docker up" up_docker
  timed "test images" env DOCKER_HOST="$(docker_host)" bash "$ROOT/hack/images/build.sh"
  if [ "$CLUSTER" = true ]; then up_cluster; fi
  trap - EXIT
  cmd_status
}

# What ctfleet's workers leave on a node on purpose (running instances stay isolated
# after a worker exits): the instance networks and the firewall chains. Removed
# here, with the engine the stack started, so `down` leaves nothing behind.
# unhook_chain FROM CHAIN: every jump from FROM to CHAIN, then CHAIN itself.
unhook_chain() {
  while iptables -w 5 -D "$1" -j "$2" 2>/dev/null; do :; done
  iptables -w 5 -F "$2" 2>/dev/null && iptables -w 5 -X "$2" 2>/dev/null || true
}

remove_isolation() {
  local ids; ids=$(docker network ls -q --filter label=app.kubernetes.io/managed-by=ctfleet 2>/dev/null || true)
  for id in $ids; do
    docker ps -aq --filter "network=$id" | xargs -r docker rm -f >/dev/null 2>&1 || true
    docker network rm "$id" >/dev/null 2>&1 || true
  done
  have iptables || return 0
  local hook chain
  for hook in "DOCKER-USER CTFLEET-FORWARD" "INPUT CTFLEET-INPUT"; do
    unhook_chain $hook
  done
  # Each worker's pool guard chain (CTFLEET-POOL-<hash of its node>), jumped to from DOCKER-USER.
  for chain in $(iptables -w 5 -t filter -S 2>/dev/null | sed -n 's/^-N \(CTFLEET-POOL-[^ ]*\)$/\1/p'); do
    unhook_chain DOCKER-USER "$chain"
  done
  # Pool containers' files directories (CTFLEET_POOL_FILES_DIR's default): their containers are gone.
  rm -rf /var/lib/ctfleet/pool-files
  log "ctfleet's instance networks, firewall chains and pool files removed"
}

cmd_down() {
  load_ports
  stop_process ctfleet "src/main.ts all"
  down_cluster
  stop_process kube-controller-manager "$(kube_bin_dir)/kube-controller-manager"
  stop_process kube-apiserver "$(kube_bin_dir)/kube-apiserver"
  stop_process etcd "$(etcd_bin_dir)/etcd"
  stop_process redis redis-server
  if is_running dockerd dockerd; then
    remove_isolation
    stop_process dockerd dockerd
  else
    log "docker: not started by the stack, left alone"
  fi
}

cmd_env() {
  load_ports
  local kubeconfig=$KUBECONFIG_FILE
  use_existing_cluster && kubeconfig=$KUBECONFIG
  local pw; pw=$(cat "$STATE_DIR/redis-password" 2>/dev/null || true)
  local path="$(kube_bin_dir):$(helm_bin_dir)"
  [ -x "$(node_dir)/bin/node" ] && path="$(node_dir)/bin:$path"
  printf 'export KUBECONFIG=%q\n' "$kubeconfig"
  printf 'export REDIS_URL=%q\n' "redis://${pw:+:$pw@}127.0.0.1:$REDIS_PORT/0"
  printf 'export DOCKER_HOST=%q\n' "$(docker_host)"
  printf 'export CTFLEET_AUDIT_LOG=%q\n' "$AUDIT_LOG"
  printf 'export PATH=%q:"$PATH"\n' "$path"
}

status_line() { printf '  %-24s %s\n' "$1" "$2"; }

cmd_status() {
  load_ports
  REDIS_PASSWORD=$(cat "$STATE_DIR/redis-password" 2>/dev/null || true)
  local ok=0
  echo "ctfleet local stack (state: $STATE_DIR)"
  if use_existing_cluster; then
    status_line kubernetes "existing cluster (KUBECONFIG=$KUBECONFIG)"
  else
    if is_running etcd "$(etcd_bin_dir)/etcd" && etcd_healthy; then status_line etcd "up   127.0.0.1:$ETCD_PORT ($ETCD_VERSION)"; else status_line etcd down; ok=1; fi
    if [ -f "$PKI/ca.crt" ] && apiserver_ready; then
      local v; v=$(curl -sf --cacert "$PKI/ca.crt" -H "Authorization: Bearer $(cat "$PKI/token")" "https://$APISERVER_HOST:$APISERVER_PORT/version" | sed -n 's/.*"gitVersion": "\([^"]*\)".*/\1/p')
      status_line kube-apiserver "up   https://$APISERVER_HOST:$APISERVER_PORT ($v)$([ "$APISERVER_HOST" = "$NODE_IP" ] && echo ', on the node IP for the local cluster')"
    else status_line kube-apiserver down; ok=1; fi
    if is_running kube-controller-manager "$(kube_bin_dir)/kube-controller-manager"; then status_line kube-controller-manager up; else status_line kube-controller-manager down; ok=1; fi
  fi
  if have redis-cli && redis_ready; then status_line redis "up   127.0.0.1:$REDIS_PORT$([ -n "$REDIS_PASSWORD" ] && echo ' (password)')"; else status_line redis down; ok=1; fi
  if docker_ready; then
    status_line docker "up   $(docker_host) ($(DOCKER_HOST=$(docker_host) docker version --format '{{.Server.Version}}' 2>/dev/null))$(is_running dockerd dockerd && echo ', started by the stack')"
  else status_line docker down; ok=1; fi
  use_existing_cluster || cluster_status || ok=1
  [ -x "$(kube_bin_dir)/kubectl" ] && status_line kubectl "$(kube_bin_dir)/kubectl" || status_line kubectl "not built"
  [ -x "$(helm_bin_dir)/helm" ] && status_line helm "$(helm_bin_dir)/helm" || status_line helm "not built"
  return "$ok"
}

cmd_leftovers() {
  load_ports
  local left; left=$(cluster_leftovers)
  if [ -n "$left" ]; then
    echo "The local cluster left this on the machine:" >&2
    echo "$left" | sed 's/^/  /' >&2
    return 1
  fi
  echo "Nothing of the local cluster is left on this machine."
}

main() {
  case "${1:-}" in
    up)
      case "${2:-}" in
        "") ;;
        --cluster) CLUSTER=true ;;
        *) echo "usage: hack/stack.sh up [--cluster]" >&2; exit 2 ;;
      esac
      cmd_up ;;
    down) cmd_down ;;
    env) cmd_env ;;
    status) cmd_status ;;
    leftovers) cmd_leftovers ;;
    *) echo "usage: hack/stack.sh up [--cluster]|down|status|env|leftovers" >&2; exit 2 ;;
  esac
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then main "$@"; fi
