# The opt-in single-node cluster of `hack/stack.sh up --cluster` (docs/local-cluster.md):
# a second containerd with the CRI plugin, kubelet, kube-proxy (iptables),
# kube-scheduler and CoreDNS on top of the stack's etcd and kube-apiserver, so the
# Helm chart's pods really run on this machine. Sourced by hack/stack.sh, never run.
#
# Addresses are the project's own, on interfaces it creates: the node IP sits on
# ctfleet0 (a port-less bridge when the kernel has no dummy driver), pods on the
# bridge ctfleet-cni0. Nothing here sends traffic anywhere else: pods have no default route,
# CoreDNS answers cluster.local only, and the cluster's containerd pulls nothing
# (its proxy is a closed loopback port; every image is built here and imported).
#
# Caveat: the names above are machine-wide, so one checkout's stack at a time runs
# the cluster; /run/ctfleet-cluster/owner says whose it is.

NODE_NAME=ctfleet-node
NODE_IP=10.215.0.1
NODE_IF=ctfleet0
POD_CIDR=10.214.0.0/24
POD_GATEWAY=10.214.0.1
SERVICE_CIDR=10.0.0.0/24
DNS_SERVICE_IP=10.0.0.10
# Not ctfl-…: ctfleet's worker firewall treats interfaces named ctfl-* as instance
# bridges and drops what they send to the node (CTFLEET-INPUT).
CNI_BRIDGE=ctfleet-cni0
# Our FORWARD exception for pod-to-pod traffic (Docker sets FORWARD's policy to DROP).
FORWARD_CHAIN=CTFLEET-CLUSTER
CNI_NETWORK=ctfleet-pods
CNI_BIN_DIR=/usr/lib/cni
# The worker's Docker label selector of the chart (worker.nodeSelector).
NODE_LABELS=ctfleet.io/docker=true

CLUSTER_DIR="$STATE_DIR/cluster"
# Sockets and runtime state: a short path on tmpfs (unix socket paths are capped at
# 108 bytes, and a clone's path may be long).
RUN_DIR=/run/ctfleet-cluster
CONTAINERD_SOCK="$RUN_DIR/containerd.sock"
CONTAINERD_CONFIG="$CLUSTER_DIR/containerd.toml"
KUBELET_ROOT="$CLUSTER_DIR/kubelet"
POD_LOGS="$CLUSTER_DIR/pod-logs"
CLUSTER_KUBECONFIG_KUBELET="$CLUSTER_DIR/kubelet.kubeconfig"
# A closed port on loopback: what the cluster's containerd would pull through.
NO_PULL_PROXY=http://127.0.0.1:9
# Kernel settings kubelet changes at start; saved before and restored by `down`.
KUBELET_SYSCTLS=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys kernel.keys.root_maxbytes)

IMAGE_PAUSE=""     # set by cluster_image_names
IMAGE_REDIS=""
IMAGE_COREDNS=""
IMAGE_LABEL=io.ctfleet.cluster.inputs

cluster_image_names() {
  IMAGE_PAUSE="ctfleet.local/pause:$(basename "$(pause_bin_dir)" | sed 's/^pause-//')"
  # A fixed tag, named in hack/cluster/values.yaml; its label tracks the inputs.
  IMAGE_REDIS="ctfleet.local/redis:local"
  # The binary's hash in the tag: a rebuilt CoreDNS rolls the Deployment out.
  IMAGE_COREDNS="ctfleet.local/coredns:$COREDNS_VERSION-$(sha256sum "$(coredns_bin_dir)/coredns" | cut -c1-8)"
}

ctr_cluster() { ctr -a "$CONTAINERD_SOCK" -n k8s.io "$@"; }
kubectl_cluster() { "$(kube_bin_dir)/kubectl" --kubeconfig "$KUBECONFIG_FILE" "$@"; }

cluster_requested_mode() { if [ "$CLUSTER" = true ]; then echo cluster; else echo plain; fi; }

# ---------------------------------------------------------------- prerequisites

cluster_prerequisites() {
  is_root || die "the local cluster needs root (network interfaces, iptables, mounts, containerd): run hack/stack.sh up --cluster as root."
  [ "$(uname -s)" = Linux ] || die "the local cluster runs on Linux only."
  require_cmd containerd containerd
  require_cmd ctr containerd
  require_cmd runc runc
  require_cmd ip iproute2
  require_cmd iptables iptables
  require_cmd openssl openssl
  [ -x "$CNI_BIN_DIR/bridge" ] && [ -x "$CNI_BIN_DIR/host-local" ] && [ -x "$CNI_BIN_DIR/portmap" ] && [ -x "$CNI_BIN_DIR/loopback" ] \
    || apt_install "$CNI_BIN_DIR/bridge" containernetworking-plugins
  [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1 || apt_install busybox-static busybox-static
  [ -x /usr/bin/redis-cli ] || apt_install redis-cli redis-tools
  [ "$(awk '$1 != "Filename" {n++} END {print n+0}' /proc/swaps)" = 0 ] \
    || die "swap is on: kubelet is set up without swap here. Turn it off (swapoff -a) and run again."
  mkdir -p "$RUN_DIR"
  local owner; owner=$(cat "$RUN_DIR/owner" 2>/dev/null || true)
  if [ -n "$owner" ] && [ "$owner" != "$STATE_DIR" ] && [ -d "$owner/cluster" ] && ip link show "$NODE_IF" >/dev/null 2>&1; then
    die "the local cluster of another checkout ($owner) is up on this machine (its names and addresses are machine-wide): run hack/stack.sh down in that checkout first."
  fi
  echo "$STATE_DIR" > "$RUN_DIR/owner"
}

# ---------------------------------------------------------------- node network

# The node IP lives on an interface of its own, so the apiserver, kubelet and the
# workers' published ports use an address no outside network routes here. A dummy
# interface when the kernel has the driver, else a bridge with no ports (same use:
# an always-local address that carries no traffic off the machine).
ensure_node_interface() {
  if ! ip link show "$NODE_IF" >/dev/null 2>&1; then
    ip link add "$NODE_IF" type dummy 2>/dev/null || ip link add "$NODE_IF" type bridge \
      || die "could not create the interface $NODE_IF (neither a dummy nor a bridge): is this root on Linux with iproute2?"
    STARTED_NOW+=(node-interface)
  fi
  grep -q "inet $NODE_IP/32" <<<"$(ip addr show dev "$NODE_IF")" || ip addr add "$NODE_IP/32" dev "$NODE_IF" \
    || die "could not give $NODE_IF the address $NODE_IP/32."
  ip link set "$NODE_IF" up || die "could not bring $NODE_IF up."
}

# kube-proxy's Services rely on bridged pod traffic passing iptables.
ensure_bridge_netfilter() {
  local f=/proc/sys/net/bridge/bridge-nf-call-iptables
  [ -f "$f" ] || die "$f is missing: the kernel needs br_netfilter (modprobe br_netfilter) for Service traffic between pods."
  [ "$(cat "$f")" = 1 ] && [ "$(cat /proc/sys/net/ipv4/ip_forward)" = 1 ] && return 0
  [ -f "$CLUSTER_DIR/sysctl.net.saved" ] || printf 'net.bridge.bridge-nf-call-iptables=%s\nnet.ipv4.ip_forward=%s\n' "$(cat "$f")" "$(cat /proc/sys/net/ipv4/ip_forward)" > "$CLUSTER_DIR/sysctl.net.saved"
  echo 1 > "$f"
  echo 1 > /proc/sys/net/ipv4/ip_forward
}

# Bridged traffic passes iptables (br_netfilter), and Docker's FORWARD policy is
# DROP: pods talking to pods (directly or through a Service) need an ACCEPT. Only
# within the pod bridge; pods have no route out anyway.
ensure_forward_rule() {
  iptables -w 5 -N "$FORWARD_CHAIN" 2>/dev/null || true
  iptables -w 5 -C "$FORWARD_CHAIN" -i "$CNI_BRIDGE" -o "$CNI_BRIDGE" -j ACCEPT 2>/dev/null \
    || iptables -w 5 -A "$FORWARD_CHAIN" -i "$CNI_BRIDGE" -o "$CNI_BRIDGE" -j ACCEPT \
    || die "could not add the pod bridge's FORWARD rule (iptables -A $FORWARD_CHAIN)."
  iptables -w 5 -C FORWARD -j "$FORWARD_CHAIN" 2>/dev/null || iptables -w 5 -I FORWARD 1 -j "$FORWARD_CHAIN" \
    || die "could not jump from FORWARD to $FORWARD_CHAIN."
}

write_cni_config() {
  mkdir -p "$CLUSTER_DIR/cni/net.d" "$CLUSTER_DIR/cni/ipam"
  # No ipMasq and no default route: pods reach the pod range, Services and the node,
  # and nothing beyond this machine.
  cat > "$CLUSTER_DIR/cni/net.d/10-ctfleet.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "$CNI_NETWORK",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$CNI_BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$CLUSTER_DIR/cni/ipam",
        "ranges": [[{ "subnet": "$POD_CIDR", "gateway": "$POD_GATEWAY" }]],
        "routes": [{ "dst": "$SERVICE_CIDR" }, { "dst": "$NODE_IP/32" }]
      }
    },
    { "type": "portmap", "capabilities": { "portMappings": true } }
  ]
}
EOF
}

# ---------------------------------------------------------------- certificates

# sign_cert NAME SUBJECT EXTENSIONS: a key and a certificate signed by the stack's CA.
sign_cert() {
  local name=$1 subject=$2 ext=$3
  (
    cd "$PKI"
    openssl req -newkey rsa:2048 -nodes -subj "$subject" -keyout "$name.key" -out "$name.csr" 2>/dev/null
    printf '%s\n' "$ext" > "$name.ext"
    openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 -extfile "$name.ext" -out "$name.crt" 2>/dev/null
    chmod 600 "$name.key"
  ) || die "could not sign the $name certificate in $PKI (openssl failed)."
}

# The apiserver's serving certificate must name the node IP (pods reach it through
# the kubernetes Service, whose endpoint is that address). A certificate made by an
# older stack lacks it: re-signed with the same CA, so kubeconfigs stay valid.
ensure_cluster_pki() {
  if ! grep -q "IP Address:$NODE_IP" <<<"$(openssl x509 -in "$PKI/apiserver.crt" -noout -ext subjectAltName 2>/dev/null)"; then
    log "re-signing the apiserver's serving certificate with the node IP $NODE_IP"
    sign_cert apiserver "/CN=kube-apiserver" "subjectAltName=IP:127.0.0.1,IP:$NODE_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:10.0.0.1
extendedKeyUsage=serverAuth"
    # A running apiserver still serves the old certificate: restart it.
    echo stale > "$STATE_DIR/apiserver.mode"
  fi
  [ -f "$PKI/kubelet-client.crt" ] || sign_cert kubelet-client "/O=system:nodes/CN=system:node:$NODE_NAME" "extendedKeyUsage=clientAuth"
  [ -f "$PKI/kubelet-serving.crt" ] || sign_cert kubelet-serving "/CN=$NODE_NAME" "subjectAltName=IP:$NODE_IP,DNS:$NODE_NAME
extendedKeyUsage=serverAuth"
  [ -f "$PKI/apiserver-kubelet-client.crt" ] || sign_cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "extendedKeyUsage=clientAuth"
}

# The apiserver flags that make the stack's control plane a node's control plane.
cluster_apiserver_flags() {
  printf '%s\n' \
    --bind-address "$NODE_IP" --advertise-address "$NODE_IP" \
    --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
    --kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" --kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority "$PKI/ca.crt" --kubelet-preferred-address-types InternalIP
}

# ---------------------------------------------------------------- images

# rootfs_image REF DIR HASH: imports DIR as the single layer of image REF unless REF
# already carries HASH (its inputs' hash) in its label.
rootfs_image() {
  local ref=$1 dir=$2 hash=$3; shift 3
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$dir" -cf "$dir.tar" . \
    || die "could not pack the root of $ref from $dir."
  docker import --change "LABEL $IMAGE_LABEL=$hash" "$@" "$dir.tar" "$ref" >/dev/null \
    || die "docker import of $ref failed: is the Docker engine up (hack/stack.sh status)?"
  rm -rf "$dir" "$dir.tar"
}

image_current() { [ "$(docker image inspect "$1" --format "{{ index .Config.Labels \"$IMAGE_LABEL\" }}" 2>/dev/null || true)" = "$2" ]; }

# binary_image REF BINARY USER: an image of one static program, its entry point, run
# as USER; rebuilt only when the program changed.
binary_image() {
  local ref=$1 binary=$2 user=$3 hash root name
  name=$(basename "$binary")
  hash=$(sha256sum "$binary" | cut -c1-16)
  image_current "$ref" "$hash" && return 0
  root=$(mktemp -d); cp "$binary" "$root/$name"
  rootfs_image "$ref" "$root" "$hash" --change "ENTRYPOINT [\"/$name\"]" --change "USER $user"
  log "image $ref built"
}

build_cluster_images() {
  local hash root lib libs
  binary_image "$IMAGE_PAUSE" "$(pause_bin_dir)/pause" 65535:65535
  binary_image "$IMAGE_COREDNS" "$(coredns_bin_dir)/coredns" 65532:65532
  # The chart's bundled Redis runs `sh -c 'exec redis-server …'` and probes with
  # `redis-cli … | grep`: Debian's redis-server and redis-cli with the libraries ldd
  # lists, a static busybox for sh and grep, and the user 999:1000 the chart expects.
  libs=$(ldd /usr/bin/redis-server /usr/bin/redis-cli | awk '/=>/ { print $3 } /^\t\/lib/ { print $1 }' | sort -u)
  # shellcheck disable=SC2086
  hash=$( { sha256sum /usr/bin/redis-check-rdb /usr/bin/redis-cli /bin/busybox $libs; echo v1; } | sha256sum | cut -c1-16)
  if ! image_current "$IMAGE_REDIS" "$hash"; then
    root=$(mktemp -d)
    mkdir -p "$root/bin" "$root/usr/bin" "$root/etc" "$root/data" "$root/tmp"
    cp /bin/busybox "$root/bin/busybox"
    for applet in sh grep cat ls id ps; do ln -s busybox "$root/bin/$applet"; done
    cp -L /usr/bin/redis-server "$root/usr/bin/redis-server"
    cp /usr/bin/redis-cli "$root/usr/bin/redis-cli"
    for lib in $libs; do mkdir -p "$root$(dirname "$lib")"; cp -L "$lib" "$root$lib"; done
    printf 'root:x:0:0:root:/root:/bin/sh\nredis:x:999:1000:redis:/data:/bin/sh\n' > "$root/etc/passwd"
    printf 'root:x:0:\nredis:x:1000:\n' > "$root/etc/group"
    chown 999:1000 "$root/data"; chmod 1777 "$root/tmp"
    rootfs_image "$IMAGE_REDIS" "$root" "$hash" --change 'ENV PATH=/usr/bin:/bin' --change 'USER 999:1000' \
      --change 'WORKDIR /data' --change 'CMD ["redis-server"]'
    log "image $IMAGE_REDIS built"
  fi
}

# import_image REF: loads REF from Docker into the cluster's containerd, unless the
# image id imported last time is still REF's id.
import_image() {
  local ref=$1 id stamp
  id=$(docker image inspect "$ref" --format '{{.Id}}' 2>/dev/null) || die "image $ref is not in Docker: its build failed above."
  stamp="$CLUSTER_DIR/images/$(echo "$ref" | tr '/:' '__').id"
  local name=$ref; [[ "$name" == */* ]] || name="docker.io/library/$name"
  if [ "$(cat "$stamp" 2>/dev/null || true)" = "$id" ] && grep -q . <<<"$(ctr_cluster images ls -q "name==$name")"; then return 0; fi
  mkdir -p "$CLUSTER_DIR/images"
  docker save "$ref" | ctr_cluster images import - >"$LOGS/ctr-import.log" 2>&1 \
    || die "importing $ref into the cluster's containerd failed; see $LOGS/ctr-import.log."
  echo "$id" > "$stamp"
  log "image $ref imported into the cluster's containerd"
}

# ---------------------------------------------------------------- containerd

write_containerd_config() {
  mkdir -p "$CLUSTER_DIR/containerd" "$RUN_DIR"
  # SystemdCgroup = false: this machine's cgroups are v1 and managed by no systemd
  # here; kubelet is told cgroupDriver: cgroupfs to match.
  cat > "$CONTAINERD_CONFIG.tmp" <<EOF
version = 2
root = "$CLUSTER_DIR/containerd/root"
state = "$RUN_DIR/containerd"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = "$CONTAINERD_SOCK"

[ttrpc]
  address = "$RUN_DIR/containerd.sock.ttrpc"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "$CLUSTER_DIR/containerd/opt"

# restrict_oom_score_adj: this machine withholds CAP_SYS_RESOURCE even from root, so
# no process may lower its oom_score_adj (runc's "-998" for a sandbox fails with
# EACCES); containers get no lower a score than containerd's own instead.
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$IMAGE_PAUSE"
  restrict_oom_score_adj = true
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "$(command -v runc)"
        Root = "$RUN_DIR/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CNI_BIN_DIR"
    conf_dir = "$CLUSTER_DIR/cni/net.d"
    max_conf_num = 1
EOF
  if ! cmp -s "$CONTAINERD_CONFIG.tmp" "$CONTAINERD_CONFIG"; then
    mv "$CONTAINERD_CONFIG.tmp" "$CONTAINERD_CONFIG"
    CONTAINERD_CONFIG_CHANGED=true
  else
    rm -f "$CONTAINERD_CONFIG.tmp"
    CONTAINERD_CONFIG_CHANGED=false
  fi
}

containerd_ready() { ctr -a "$CONTAINERD_SOCK" version >/dev/null 2>&1; }

up_cluster_containerd() {
  local match="--config $CONTAINERD_CONFIG"
  if is_running containerd-cluster "$match" && [ "$CONTAINERD_CONFIG_CHANGED" = false ] && containerd_ready; then
    log "containerd (cluster): running on $CONTAINERD_SOCK"; return 0
  fi
  stop_process containerd-cluster "$match"
  # The proxy settings are the no-pull guard: a pull goes to a closed loopback port
  # instead of resolving and contacting a registry.
  spawn containerd-cluster env HTTP_PROXY="$NO_PULL_PROXY" HTTPS_PROXY="$NO_PULL_PROXY" NO_PROXY= \
    "$(command -v containerd)" --config "$CONTAINERD_CONFIG" --log-level ${CTFLEET_CONTAINERD_LOG_LEVEL:-warn}
  wait_for "containerd (cluster)" 30 containerd-cluster containerd_ready
  log "containerd (cluster): started on $CONTAINERD_SOCK"
}

# ---------------------------------------------------------------- control plane

up_scheduler() {
  local bin; bin="$(kube_node_bin_dir)/kube-scheduler"
  if is_running kube-scheduler "$bin" && [[ " ${STARTED_NOW[*]} " != *" kube-apiserver "* ]]; then log "kube-scheduler: running"; return 0; fi
  stop_process kube-scheduler "$bin"
  spawn kube-scheduler "$bin" --kubeconfig "$KUBECONFIG_FILE" --authentication-kubeconfig "$KUBECONFIG_FILE" \
    --authorization-kubeconfig "$KUBECONFIG_FILE" --leader-elect=false --bind-address 127.0.0.1 --secure-port 10259 --v 1
  sleep 1
  is_running kube-scheduler "$bin" || { tail -n 15 "$LOGS/kube-scheduler.log" >&2; die "kube-scheduler exited at start (log: $LOGS/kube-scheduler.log)"; }
  log "kube-scheduler: started"
}

# ---------------------------------------------------------------- kubelet

write_kubelet_config() {
  mkdir -p "$KUBELET_ROOT" "$POD_LOGS"
  write_kubeconfig_file "$CLUSTER_KUBECONFIG_KUBELET" "https://$NODE_IP:$APISERVER_PORT" kubelet kubelet \
    "client-certificate: $PKI/kubelet-client.crt" "client-key: $PKI/kubelet-client.key"
  # resolvConf "": pods never learn the machine's resolvers (dnsPolicy Default gets
  # no nameserver; ClusterFirst gets CoreDNS only). Eviction and image GC thresholds
  # are low: the images cannot be pulled again, and a busy CI disk must not taint
  # the node.
  cat > "$CLUSTER_DIR/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: true
authentication:
  anonymous: { enabled: false }
  webhook: { enabled: true }
  x509: { clientCAFile: $PKI/ca.crt }
authorization:
  mode: Webhook
tlsCertFile: $PKI/kubelet-serving.crt
tlsPrivateKeyFile: $PKI/kubelet-serving.key
clusterDNS: [$DNS_SERVICE_IP]
clusterDomain: cluster.local
resolvConf: ""
podLogsDir: $POD_LOGS
evictionHard: { memory.available: 100Mi, nodefs.available: "2%", imagefs.available: "2%", nodefs.inodesFree: "2%" }
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
maxPods: 60
EOF
}

save_kubelet_sysctls() {
  [ -f "$CLUSTER_DIR/sysctl.kubelet.saved" ] && return 0
  local key
  for key in "${KUBELET_SYSCTLS[@]}"; do
    [ -f "/proc/sys/${key//.//}" ] && echo "$key=$(cat "/proc/sys/${key//.//}")"
  done > "$CLUSTER_DIR/sysctl.kubelet.saved"
}

kubelet_healthy() { grep -q ok <<<"$(curl -sf --max-time 2 http://127.0.0.1:10248/healthz)"; }
node_ready() { [ "$(kubectl_cluster get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]; }

up_kubelet() {
  local bin; bin="$(kube_node_bin_dir)/kubelet"
  # It reads its kubeconfig once; a restarted apiserver may have moved port.
  if is_running kubelet "$bin" && [[ " ${STARTED_NOW[*]} " != *" kube-apiserver "* ]] && [[ " ${STARTED_NOW[*]} " != *" containerd-cluster "* ]] && kubelet_healthy; then
    log "kubelet: running"; return 0
  fi
  stop_process kubelet "$bin"
  save_kubelet_sysctls
  spawn kubelet "$bin" --config "$CLUSTER_DIR/kubelet.yaml" --kubeconfig "$CLUSTER_KUBECONFIG_KUBELET" \
    --root-dir "$KUBELET_ROOT" --hostname-override "$NODE_NAME" --node-ip "$NODE_IP" --node-labels "$NODE_LABELS" --v 1
  wait_for "kubelet" 60 kubelet kubelet_healthy
  log "kubelet: started (root $KUBELET_ROOT)"
}

# ---------------------------------------------------------------- kube-proxy

up_kube_proxy() {
  local bin; bin="$(kube_node_bin_dir)/kube-proxy"
  if is_running kube-proxy "$bin" && [[ " ${STARTED_NOW[*]} " != *" kube-apiserver "* ]]; then log "kube-proxy: running"; return 0; fi
  stop_process kube-proxy "$bin"
  # NodePorts only on the node IP, never on the machine's other interfaces; conntrack
  # sysctls left as they are (0 = do not touch).
  cat > "$CLUSTER_DIR/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection:
  kubeconfig: $KUBECONFIG_FILE
hostnameOverride: $NODE_NAME
bindAddress: $NODE_IP
clusterCIDR: $POD_CIDR
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses: ["$NODE_IP/32"]
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
EOF
  spawn kube-proxy "$bin" --config "$CLUSTER_DIR/kube-proxy.yaml" --v 1
  wait_for "kube-proxy" 30 kube-proxy curl -sf --max-time 2 http://127.0.0.1:10256/healthz
  log "kube-proxy: started (iptables mode)"
}

# ---------------------------------------------------------------- CoreDNS

coredns_ready() {
  local ready; ready=$(kubectl_cluster -n kube-system get deployment coredns -o jsonpath='{.status.readyReplicas}' 2>/dev/null || true)
  [ "${ready:-0}" -ge 1 ]
}

up_coredns() {
  sed -e "s|@IMAGE@|$IMAGE_COREDNS|" -e "s|@DNS_SERVICE_IP@|$DNS_SERVICE_IP|" "$ROOT/hack/cluster/coredns.yaml" \
    | kubectl_cluster apply -f - >"$LOGS/coredns-apply.log" 2>&1 \
    || die "applying hack/cluster/coredns.yaml failed; see $LOGS/coredns-apply.log."
  # Rollout status, not a Ready count: a changed image rolls out, and a pod Ready in
  # the last run's status counts for nothing.
  if ! kubectl_cluster -n kube-system rollout status deployment/coredns --timeout=120s >"$LOGS/coredns-rollout.log" 2>&1; then
    kubectl_cluster -n kube-system get pods -o wide >&2 || true
    die "CoreDNS did not become ready within 120s: kubectl -n kube-system describe pods -l k8s-app=coredns; kubelet log: $LOGS/kubelet.log"
  fi
  log "CoreDNS: ready at $DNS_SERVICE_IP (cluster.local only)"
}

# ---------------------------------------------------------------- up

# Before the apiserver starts: what it binds and serves with.
prepare_cluster() {
  cluster_prerequisites
  timed "kube node $KUBE_VERSION binaries" build_kube_node
  timed "coredns $COREDNS_VERSION binary" build_coredns
  timed "pause binary" build_pause
  cluster_image_names
  mkdir -p "$CLUSTER_DIR"
  ensure_node_interface
  ensure_bridge_netfilter
  ensure_forward_rule
  ensure_cluster_pki
}

# After the apiserver and controller-manager are up.
up_cluster() {
  timed "kube-scheduler up" up_scheduler
  timed "cluster images" build_cluster_images
  timed "ctfleet image" build_ctfleet_image
  write_cni_config
  write_containerd_config
  timed "containerd (cluster) up" up_cluster_containerd
  local ref
  for ref in "$IMAGE_PAUSE" "$IMAGE_COREDNS" "$IMAGE_REDIS" ctfleet:dev; do
    timed "import $ref" import_image "$ref"
  done
  write_kubelet_config
  timed "kubelet up" up_kubelet
  timed "kube-proxy up" up_kube_proxy
  timed "node Ready" wait_for "node $NODE_NAME Ready" 90 kubelet node_ready
  timed "CoreDNS up" up_coredns
}

build_ctfleet_image() {
  bash "$ROOT/hack/image.sh" ctfleet:dev >"$LOGS/ctfleet-image.log" 2>&1 \
    || { tail -n 15 "$LOGS/ctfleet-image.log" >&2; die "hack/image.sh ctfleet:dev failed; see $LOGS/ctfleet-image.log."; }
}

# ---------------------------------------------------------------- down

cluster_owner() { cat "$RUN_DIR/owner" 2>/dev/null || true; }
# This checkout's cluster exists (in part): its directory, or the machine-wide names
# recorded as ours. Another checkout's cluster is never this one's to remove.
cluster_known() {
  [ -d "$CLUSTER_DIR" ] && return 0
  [ "$(cluster_owner)" = "$STATE_DIR" ]
}

# remove_chains IPT PREFIX: deletes every chain whose name starts with PREFIX, in
# every table, with the rules elsewhere that jump to it.
remove_chains() {
  local ipt=$1 prefix=$2 table rule chain
  have "$ipt" || return 0
  for table in filter nat mangle raw; do
    "$ipt" -w 5 -t "$table" -S >/dev/null 2>&1 || continue
    while IFS= read -r rule; do
      eval "$ipt -w 5 -t $table -D ${rule#-A }" 2>/dev/null || true
    done < <("$ipt" -w 5 -t "$table" -S | grep -E "^-A " | grep -vE "^-A $prefix" | grep -E -- "-j $prefix" || true)
    for chain in $("$ipt" -w 5 -t "$table" -S | sed -n "s/^-N \\($prefix[^ ]*\\)$/\\1/p"); do
      "$ipt" -w 5 -t "$table" -F "$chain" 2>/dev/null || true
    done
    for chain in $("$ipt" -w 5 -t "$table" -S | sed -n "s/^-N \\($prefix[^ ]*\\)$/\\1/p"); do
      "$ipt" -w 5 -t "$table" -X "$chain" 2>/dev/null || true
    done
  done
}

# Kills and removes every container and sandbox in the cluster's containerd, and
# frees the sandboxes' network namespaces (which takes their veths with them).
remove_pods() {
  containerd_ready || return 0
  local id netns=() ids=()
  for id in $(ctr_cluster containers ls -q 2>/dev/null); do
    ids+=("$id")
    local ns; ns=$(ctr_cluster containers info "$id" 2>/dev/null | grep -o '"/var/run/netns/[^"]*"' | tr -d '"' | head -1 || true)
    [ -n "$ns" ] && netns+=("$ns")
  done
  for id in $(ctr_cluster tasks ls -q 2>/dev/null); do ctr_cluster tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true; done
  sleep 1
  for id in $(ctr_cluster tasks ls -q 2>/dev/null); do ctr_cluster tasks delete -f "$id" >/dev/null 2>&1 || true; done
  for id in $(ctr_cluster containers ls -q 2>/dev/null); do ctr_cluster containers delete "$id" >/dev/null 2>&1 || true; done
  # libcni's result cache (not configurable in containerd 1.6): one file per
  # sandbox and network, named after the sandbox's id.
  for id in "${ids[@]}"; do rm -f /var/lib/cni/results/*-"$id"-* 2>/dev/null || true; done
  local path
  for path in $(printf '%s\n' "${netns[@]}" | sort -u); do
    umount "$path" 2>/dev/null || true
    rm -f "$path" 2>/dev/null || true
  done
  [ "${#netns[@]}" -eq 0 ] || log "removed the pods' containers, sandboxes and ${#netns[@]} network namespaces"
}

unmount_under() {
  local dir=$1 mnt
  for mnt in $(awk -v d="$dir/" 'index($2, d) == 1 { print $2 }' /proc/self/mounts | sort -r); do
    umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || log "could not unmount $mnt"
  done
}

# A sandbox namespace mounted on /run/netns/cni-* before /run/netns itself became
# a mount point (`ip netns` makes it one on first use) sits under that later
# mount, out of reach by its path. Lifts the covering mount, frees the namespace,
# and puts the covering mount back as `ip netns` makes it (a shared bind).
free_shadowed_netns() {
  local ns shadowed=()
  for ns in $(awk '$5 ~ /^\/run\/netns\/cni-/ { print $5 }' /proc/self/mountinfo); do
    # Visible, a namespace file is on nsfs; covered, it is the directory's own file.
    [ "$(stat -c %d "$ns" 2>/dev/null)" != "$(stat -c %d /run/netns)" ] || shadowed+=("$ns")
  done
  [ "${#shadowed[@]}" -gt 0 ] || return 0
  local covered=0
  while mountpoint -q /run/netns; do umount /run/netns 2>/dev/null || break; covered=1; done
  for ns in "${shadowed[@]}"; do
    umount "$ns" 2>/dev/null || umount -l "$ns" 2>/dev/null || log "could not unmount $ns"
    rm -f "$ns" 2>/dev/null || true
  done
  if [ "$covered" = 1 ]; then { mount --bind /run/netns /run/netns && mount --make-shared /run/netns; } || true; fi
  log "freed ${#shadowed[@]} sandbox network namespaces that a later mount of /run/netns covered"
}

down_cluster() {
  cluster_known || return 0
  local owner; owner=$(cluster_owner)
  if [ -n "$owner" ] && [ "$owner" != "$STATE_DIR" ] && [ -d "$owner/cluster" ]; then
    log "the local cluster on this machine belongs to $owner: left alone (only $CLUSTER_DIR removed)"
    rm -rf "$CLUSTER_DIR"
    return 0
  fi
  local bin_dir; bin_dir=$(kube_node_bin_dir)
  # The node and its pods leave the API too (etcd outlives `down`): the next `up
  # --cluster` then waits for a node and a CoreDNS that really are Ready, not for
  # the last run's status. The pods' controllers make new ones then.
  if [ -f "$PKI/token" ] && apiserver_ready; then
    kubectl_cluster delete pods -A --field-selector "spec.nodeName=$NODE_NAME" --force --grace-period=0 --wait=false >/dev/null 2>&1 || true
    kubectl_cluster delete node "$NODE_NAME" --wait=false >/dev/null 2>&1 || true
  fi
  stop_process kubelet "$bin_dir/kubelet"
  # Challenge containers the cluster's worker pods started in Docker (labelled with
  # this node's name) would outlive the node and hold ports on its address.
  if docker_ready; then
    local containers; containers=$(docker ps -aq --filter "label=ctfleet.io/node=$NODE_NAME" 2>/dev/null || true)
    if [ -n "$containers" ]; then
      echo "$containers" | xargs -r docker rm -f >/dev/null 2>&1 || true
      log "removed $(echo "$containers" | wc -l) challenge containers of node $NODE_NAME from Docker"
    fi
  fi
  stop_process kube-scheduler "$bin_dir/kube-scheduler"
  stop_process kube-proxy "$bin_dir/kube-proxy"
  remove_pods
  stop_process containerd-cluster "--config $CONTAINERD_CONFIG"
  # Shims of killed tasks exit by themselves; any left are this containerd's.
  local pid
  for pid in $(pgrep -f -- "containerd-shim-runc-v2 .*-address $CONTAINERD_SOCK" || true); do kill -9 "$pid" 2>/dev/null || true; done
  unmount_under "$KUBELET_ROOT"
  unmount_under "$CLUSTER_DIR"
  unmount_under "$RUN_DIR"
  # Any sandbox namespace the containerd did not report (e.g. it was already gone).
  local ns
  for ns in /var/run/netns/cni-*; do
    [ -e "$ns" ] || continue
    # A namespace file still mounted (umount refused) cannot be removed: left, not fatal.
    if ! grep -q . <<<"$(ip netns pids "$(basename "$ns")" 2>/dev/null)"; then umount "$ns" 2>/dev/null || true; rm -f "$ns" || true; fi
  done 2>/dev/null
  free_shadowed_netns
  local veth
  for veth in $(ip -o link show master "$CNI_BRIDGE" 2>/dev/null | awk -F': ' '{ sub(/@.*/, "", $2); print $2 }'); do ip link del "$veth" 2>/dev/null || true; done
  ip link del "$CNI_BRIDGE" 2>/dev/null || true
  ip link del "$NODE_IF" 2>/dev/null || true
  if [ -x "$bin_dir/kube-proxy" ]; then "$bin_dir/kube-proxy" --cleanup >"$LOGS/kube-proxy-cleanup.log" 2>&1 || true; fi
  # What --cleanup leaves: kubelet's canary and hint chains, CNI portmap's chains.
  remove_chains iptables KUBE-; remove_chains ip6tables KUBE-
  remove_chains iptables CNI-; remove_chains ip6tables CNI-
  remove_chains iptables "$FORWARD_CHAIN"
  rm -f /var/lib/cni/results/"$CNI_NETWORK"-* 2>/dev/null || true
  local link
  for link in /var/log/containers/*.log; do
    [ -L "$link" ] && [[ "$(readlink "$link")" == "$POD_LOGS"/* ]] && rm -f "$link"
  done 2>/dev/null
  # Paths kubelet and libcni use whatever they are told: the device-plugin socket,
  # and the directories, when nothing else is in them.
  rm -f /var/lib/kubelet/device-plugins/kubelet.sock
  rmdir /var/lib/kubelet/device-plugins /var/lib/kubelet /var/lib/cni/results /var/lib/cni /var/log/containers 2>/dev/null || true
  # cgroupfs: kubelet's pod hierarchy in every v1 controller.
  find /sys/fs/cgroup/*/kubepods -depth -type d -exec rmdir {} + 2>/dev/null || true
  local saved line
  for saved in "$CLUSTER_DIR/sysctl.kubelet.saved" "$CLUSTER_DIR/sysctl.net.saved"; do
    [ -f "$saved" ] || continue
    while IFS= read -r line; do echo "${line#*=}" > "/proc/sys/$(echo "${line%%=*}" | tr . /)" 2>/dev/null || true; done < "$saved"
  done
  rm -rf "$CLUSTER_DIR" "$RUN_DIR"
  log "local cluster removed (pods, containerd state, $CNI_BRIDGE, $NODE_IF, KUBE-/CNI-/$FORWARD_CHAIN chains)"
}

# ---------------------------------------------------------------- status

# Prints one line for each thing a local cluster leaves on this machine while it
# runs, and nothing once `down` removed it: what CI checks after its `down`.
cluster_leftovers() {
  local ipt table bin_dir; bin_dir=$(kube_node_bin_dir)
  ip link show "$NODE_IF" >/dev/null 2>&1 && echo "interface $NODE_IF"
  ip link show "$CNI_BRIDGE" >/dev/null 2>&1 && echo "interface $CNI_BRIDGE"
  ip -o link show master "$CNI_BRIDGE" 2>/dev/null | awk -F': ' '{ print "interface " $2 }'
  awk -v a="$CLUSTER_DIR/" -v b="$RUN_DIR/" '(index($2, a) == 1 || index($2, b) == 1 || $2 ~ /^\/run\/netns\/cni-/) { print "mount " $2 }' /proc/self/mounts
  for ipt in iptables ip6tables; do
    have "$ipt" || continue
    for table in filter nat mangle raw; do
      "$ipt" -w 5 -t "$table" -S 2>/dev/null | sed -n "s/^-N \(KUBE-[^ ]*\|CNI-[^ ]*\|$FORWARD_CHAIN\)$/$ipt $table chain \1/p"
    done
  done
  pgrep -f -- "--config $CONTAINERD_CONFIG" >/dev/null && echo "process containerd of the cluster"
  pgrep -f -- "containerd-shim-runc-v2 .*-address $CONTAINERD_SOCK" >/dev/null && echo "process containerd-shim of the cluster"
  local binary
  for binary in kubelet kube-proxy kube-scheduler; do pgrep -f -- "$bin_dir/$binary" >/dev/null && echo "process $binary"; done
  [ -e "$RUN_DIR" ] && echo "directory $RUN_DIR"
  [ -e "$CLUSTER_DIR" ] && echo "directory $CLUSTER_DIR"
  ls -d /sys/fs/cgroup/*/kubepods 2>/dev/null | sed 's/^/cgroup /'
  if docker_ready; then docker ps -aq --filter "label=ctfleet.io/node=$NODE_NAME" 2>/dev/null | sed 's/^/Docker container of node '"$NODE_NAME"' /'; fi
  return 0
}

cluster_status() {
  if ! cluster_known; then status_line cluster "off (hack/stack.sh up --cluster)"; return 0; fi
  local ok=0 bin_dir; bin_dir=$(kube_node_bin_dir)
  if is_running containerd-cluster "--config $CONTAINERD_CONFIG" && containerd_ready; then status_line containerd "up   $CONTAINERD_SOCK ($(containerd --version | awk '{print $3}'))"; else status_line containerd down; ok=1; fi
  if is_running kubelet "$bin_dir/kubelet" && kubelet_healthy; then status_line kubelet "up   node $NODE_NAME $NODE_IP on $NODE_IF"; else status_line kubelet down; ok=1; fi
  if is_running kube-proxy "$bin_dir/kube-proxy"; then status_line kube-proxy "up   iptables"; else status_line kube-proxy down; ok=1; fi
  if is_running kube-scheduler "$bin_dir/kube-scheduler"; then status_line kube-scheduler up; else status_line kube-scheduler down; ok=1; fi
  if node_ready; then status_line node "Ready (pods $POD_CIDR on $CNI_BRIDGE)"; else status_line node "not Ready"; ok=1; fi
  if coredns_ready; then status_line coredns "up   $DNS_SERVICE_IP ($COREDNS_VERSION)"; else status_line coredns down; ok=1; fi
  return "$ok"
}
