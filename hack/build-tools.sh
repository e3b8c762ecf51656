#!/usr/bin/env bash
# Builds the stack's Go tools from the Go module proxy and caches the binaries
# under $CACHE_DIR/bin/<tool>-<version>/. A cached binary is never rebuilt.
#
#   hack/build-tools.sh [kube|etcd|helm|all]                 what `stack.sh up` needs
#   hack/build-tools.sh [kube-node|coredns|pause|cluster]    what `up --cluster` adds
#   hack/build-tools.sh kstatus | kstatus-path               the tests' kstatus helper (-path prints where)
#
# Caveats: a cold kube build takes many minutes and ~2 GiB of memory on 2 cores.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

GO_ENV=(
  CGO_ENABLED=0
  GOMODCACHE="$CACHE_DIR/go/mod"
  GOCACHE="$CACHE_DIR/go/build"
  GOFLAGS="${GOFLAGS:-} -mod=mod"
)

require_go() {
  have go || die "Go is missing: install Go ≥ 1.24 (Debian: apt-get install golang) or put it on PATH, then run again."
}

# The `go` line of a wrapper module: the toolchain's language version.
go_directive() { go env GOVERSION | sed 's/^go\([0-9]*\.[0-9]*\).*/go \1/'; }

kube_bin_dir() { echo "$CACHE_DIR/bin/kube-$KUBE_VERSION"; }
etcd_bin_dir() { echo "$CACHE_DIR/bin/etcd-$ETCD_VERSION"; }
helm_bin_dir() { echo "$CACHE_DIR/bin/helm-$HELM_VERSION"; }
# The node binaries live apart from kube-$KUBE_VERSION so adding them kept that
# cache entry valid (publish replaces a whole directory).
kube_node_bin_dir() { echo "$CACHE_DIR/bin/kube-node-$KUBE_VERSION"; }
coredns_bin_dir() { echo "$CACHE_DIR/bin/coredns-$COREDNS_VERSION-cluster"; }
# Keyed by the source's hash: the program is ours, so its version is its content.
pause_bin_dir() { echo "$CACHE_DIR/bin/pause-$(sha256sum "$ROOT/hack/cluster/pause/main.go" | cut -c1-12)"; }

# lock NAME: holds an exclusive lock for the rest of the calling build, so two
# stacks starting at once build each tool once (the second waits, then finds it).
lock() {
  mkdir -p "$CACHE_DIR"
  exec {LOCK_FD}>"$CACHE_DIR/.build-$1.lock"
  flock "$LOCK_FD"
}
unlock() { exec {LOCK_FD}>&-; }

# with_lock NAME FUNCTION: runs FUNCTION under NAME's lock, releasing it whatever
# FUNCTION returns, and returns that.
with_lock() {
  lock "$1"
  local rc=0
  "$2" || rc=$?
  unlock
  return "$rc"
}

# Builds into a temporary directory and renames it into place, so an interrupted
# build never leaves a half-filled cache entry behind.
publish() {
  local tmp=$1 dest=$2
  rm -rf "$dest"
  mkdir -p "$(dirname "$dest")"
  mv "$tmp" "$dest"
}

# k8s.io/kubernetes requires its staging modules at v0.0.0 with local replaces, so
# it cannot be built with `go install`. A wrapper module requires it and replaces
# every staging module with its published v0.Y.Z tag. The staging list is read from
# the pinned go.mod because it changes between releases.
#
# kube_wrapper_module writes that module into $CACHE_DIR/src/kube-$KUBE_VERSION and
# sets KUBE_WORK and KUBE_LDFLAGS for the build that follows.
kube_wrapper_module() {
  require_go
  local work="$CACHE_DIR/src/kube-$KUBE_VERSION"
  local staging_tag="v0.${KUBE_VERSION#v1.}"
  mkdir -p "$work"
  log "kube $KUBE_VERSION: resolving staging modules"
  local gomod
  gomod=$(cd "$work" && env "${GO_ENV[@]}" go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" \
    | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
  [ -f "$gomod" ] || die "could not download k8s.io/kubernetes@$KUBE_VERSION from the Go module proxy ($(go env GOPROXY))."
  {
    echo "module ctfleet.local/kube-build"
    echo
    go_directive
    echo
    echo "require k8s.io/kubernetes $KUBE_VERSION"
    echo
    echo "replace ("
    grep -E '^\s*k8s\.io/[^ ]+ => \./staging/' "$gomod" | awk -v tag="$staging_tag" '{print "\t" $1 " => " $1 " " tag}'
    echo ")"
  } > "$work/go.mod"
  log "kube $KUBE_VERSION: $(grep -c ' => ' "$work/go.mod") staging modules replaced"
  local minor="${KUBE_VERSION#v1.}"; minor="${minor%%.*}"
  local ldflags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  KUBE_WORK=$work
  KUBE_LDFLAGS=$ldflags
}

# build_kube_cmds DEST CMD...: builds the named k8s.io/kubernetes/cmd/ programs
# into a temporary directory and publishes it as DEST.
build_kube_cmds() {
  local dest=$1; shift
  kube_wrapper_module
  local tmp="$dest.tmp.$$"
  mkdir -p "$tmp"
  (
    cd "$KUBE_WORK"
    for cmd in "$@"; do
      local pkg="k8s.io/kubernetes/cmd/$cmd"
      log "kube $KUBE_VERSION: building $cmd"
      env "${GO_ENV[@]}" go build -trimpath -tags selinux,notest -ldflags "$KUBE_LDFLAGS" -o "$tmp/$cmd" "$pkg" || exit 1
    done
  ) || { rm -rf "$tmp"; die "building $* $KUBE_VERSION failed: see the Go output above."; }
  publish "$tmp" "$dest"
  log "kube $KUBE_VERSION: built $* into $dest"
}

build_kube_locked() {
  local dest; dest=$(kube_bin_dir)
  if [ -x "$dest/kube-apiserver" ] && [ -x "$dest/kubectl" ] && [ -x "$dest/kube-controller-manager" ]; then
    log "kube $KUBE_VERSION: cached in $dest"; return 0
  fi
  build_kube_cmds "$dest" kube-apiserver kube-controller-manager kubectl
}

# The node half, for `stack.sh up --cluster` only.
build_kube_node_locked() {
  local dest; dest=$(kube_node_bin_dir)
  if [ -x "$dest/kubelet" ] && [ -x "$dest/kube-scheduler" ] && [ -x "$dest/kube-proxy" ]; then
    log "kube node $KUBE_VERSION: cached in $dest"; return 0
  fi
  build_kube_cmds "$dest" kubelet kube-scheduler kube-proxy
}

# etcd's server module has local replaces too; a wrapper main calling etcdmain.Main
# at a tagged release builds cleanly.
build_etcd_locked() {
  local dest; dest=$(etcd_bin_dir)
  if [ -x "$dest/etcd" ]; then log "etcd $ETCD_VERSION: cached in $dest"; return 0; fi
  require_go
  local work="$CACHE_DIR/src/etcd-$ETCD_VERSION"
  mkdir -p "$work"
  cat > "$work/go.mod" <<MOD
module ctfleet.local/etcd-build

$(go_directive)

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
MOD
  cat > "$work/main.go" <<'SRC'
// Command etcd runs etcd's own entry point; it exists only so the server can be
// built from the Go module proxy at a pinned tag.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
SRC
  local tmp="$dest.tmp.$$"
  mkdir -p "$tmp"
  log "etcd $ETCD_VERSION: building"
  (cd "$work" && env "${GO_ENV[@]}" go build -trimpath \
    -ldflags "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=ctfleet" -o "$tmp/etcd" .)
  publish "$tmp" "$dest"
  log "etcd $ETCD_VERSION: built into $dest"
}

build_helm_locked() {
  local dest; dest=$(helm_bin_dir)
  if [ -x "$dest/helm" ]; then log "helm $HELM_VERSION: cached in $dest"; return 0; fi
  require_go
  local work="$CACHE_DIR/src/helm-$HELM_VERSION"
  mkdir -p "$work"
  cat > "$work/go.mod" <<MOD
module ctfleet.local/helm-build

$(go_directive)

require helm.sh/helm/v3 $HELM_VERSION
MOD
  local minor="${KUBE_VERSION#v1.}"; minor="${minor%%.*}"
  local ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
  ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  ldflags+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$minor"
  ldflags+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$minor"
  local tmp="$dest.tmp.$$"
  mkdir -p "$tmp"
  log "helm $HELM_VERSION: building"
  (cd "$work" && env "${GO_ENV[@]}" go build -trimpath -ldflags "$ldflags" -o "$tmp/helm" helm.sh/helm/v3/cmd/helm)
  publish "$tmp" "$dest"
  log "helm $HELM_VERSION: built into $dest"
}

# CoreDNS answers the local cluster's Service names (hack/cluster/coredns.yaml). Its
# go.mod has no replaces, so a wrapper module requiring it builds it at the tag. The
# wrapper's main links only the plugins hack/cluster/coredns.yaml uses, in CoreDNS's
# own directive order (CoreDNS's way of choosing plugins at compile time): the cloud
# DNS plugins and their SDKs stay out, which saves minutes of a cold build.
build_coredns_locked() {
  local dest; dest=$(coredns_bin_dir)
  if [ -x "$dest/coredns" ]; then log "coredns $COREDNS_VERSION: cached in $dest"; return 0; fi
  require_go
  local work="$CACHE_DIR/src/coredns-$COREDNS_VERSION"
  mkdir -p "$work"
  cat > "$work/go.mod" <<MOD
module ctfleet.local/coredns-build

$(go_directive)

require github.com/coredns/coredns $COREDNS_VERSION
MOD
  cat > "$work/main.go" <<'SRC'
// Command coredns is CoreDNS with the plugins the local cluster's Corefile uses.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
)

// The order plugins handle a query in: CoreDNS's plugin.cfg order, restricted to these.
func init() {
	dnsserver.Directives = []string{"reload", "ready", "health", "errors", "cache", "kubernetes", "loop"}
}

func main() { coremain.Run() }
SRC
  local tmp="$dest.tmp.$$"
  mkdir -p "$tmp"
  log "coredns $COREDNS_VERSION: building"
  (cd "$work" && env "${GO_ENV[@]}" go build -trimpath \
    -ldflags "-s -w -X github.com/coredns/coredns/coremain.GitCommit=$COREDNS_VERSION" -o "$tmp/coredns" .) \
    || { rm -rf "$tmp"; die "building coredns $COREDNS_VERSION failed: see the Go output above."; }
  publish "$tmp" "$dest"
  log "coredns $COREDNS_VERSION: built into $dest"
}

# The sandbox image's only program (hack/cluster/pause/main.go), static.
build_pause_locked() {
  local dest; dest=$(pause_bin_dir)
  if [ -x "$dest/pause" ]; then log "pause: cached in $dest"; return 0; fi
  require_go
  local work="$CACHE_DIR/src/pause"
  mkdir -p "$work"
  cp "$ROOT/hack/cluster/pause/main.go" "$work/main.go"
  printf 'module ctfleet.local/pause\n\n%s\n' "$(go_directive)" > "$work/go.mod"
  local tmp="$dest.tmp.$$"
  mkdir -p "$tmp"
  (cd "$work" && env "${GO_ENV[@]}" go build -trimpath -ldflags "-s -w" -o "$tmp/pause" .) \
    || { rm -rf "$tmp"; die "building the pause program failed: see the Go output above."; }
  publish "$tmp" "$dest"
  log "pause: built into $dest"
}

build_coredns() { with_lock coredns build_coredns_locked; }

build_pause() { with_lock pause build_pause_locked; }

# The tests' kstatus helper (test/tools/kstatus): cli-utils' status library at a
# pinned tag. The cache key is the version and the helper's source.
kstatus_bin() {
  local source_hash; source_hash=$(sha256sum "$ROOT/test/tools/kstatus/main.go" | cut -c1-12)
  echo "$CACHE_DIR/bin/kstatus-$CLI_UTILS_VERSION-$source_hash/kstatus"
}

build_kstatus_locked() {
  local bin; bin=$(kstatus_bin)
  local dest; dest=$(dirname "$bin")
  if [ -x "$bin" ]; then log "kstatus (cli-utils $CLI_UTILS_VERSION): cached in $dest"; return 0; fi
  require_go
  local work="$CACHE_DIR/src/kstatus-$CLI_UTILS_VERSION"
  mkdir -p "$work"
  cp "$ROOT/test/tools/kstatus/main.go" "$work/main.go"
  cat > "$work/go.mod" <<MOD
module ctfleet.local/kstatus

$(go_directive)

require sigs.k8s.io/cli-utils $CLI_UTILS_VERSION
MOD
  local tmp="$dest.tmp.$$"
  mkdir -p "$tmp"
  log "kstatus (cli-utils $CLI_UTILS_VERSION): building"
  (cd "$work" && env "${GO_ENV[@]}" go mod tidy >/dev/null 2>&1 && env "${GO_ENV[@]}" go build -trimpath -ldflags "-s -w" -o "$tmp/kstatus" .) \
    || { rm -rf "$tmp"; die "could not build the kstatus helper from sigs.k8s.io/cli-utils@$CLI_UTILS_VERSION (Go module proxy: $(go env GOPROXY))."; }
  publish "$tmp" "$dest"
  log "kstatus: built into $dest"
}

build_kstatus() { with_lock kstatus build_kstatus_locked; }

build_kube() { with_lock kube build_kube_locked; }

# Same lock as build_kube: both write the one wrapper module.
build_kube_node() { with_lock kube build_kube_node_locked; }

build_etcd() { with_lock etcd build_etcd_locked; }

build_helm() { with_lock helm build_helm_locked; }

main() {
  case "${1:-all}" in
    kube) timed "build kube $KUBE_VERSION" build_kube ;;
    etcd) timed "build etcd $ETCD_VERSION" build_etcd ;;
    helm) timed "build helm $HELM_VERSION" build_helm ;;
    kube-node) timed "build kube node $KUBE_VERSION" build_kube_node ;;
    coredns) timed "build coredns $COREDNS_VERSION" build_coredns ;;
    pause) timed "build pause" build_pause ;;
    kstatus) timed "build kstatus $CLI_UTILS_VERSION" build_kstatus ;;
    # Prints where the kstatus helper is, building it first if it is not cached.
    kstatus-path) build_kstatus >&2; kstatus_bin ;;
    cluster)
      timed "build kube node $KUBE_VERSION" build_kube_node
      timed "build coredns $COREDNS_VERSION" build_coredns
      timed "build pause" build_pause ;;
    all)
      timed "build etcd $ETCD_VERSION" build_etcd
      timed "build kube $KUBE_VERSION" build_kube
      timed "build helm $HELM_VERSION" build_helm ;;
    *) die "unknown tool '$1' (expected kube, etcd, helm, all, kube-node, coredns, pause, cluster, kstatus or kstatus-path)" ;;
  esac
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then main "$@"; fi
