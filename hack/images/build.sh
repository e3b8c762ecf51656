#!/usr/bin/env bash
# Builds the test challenge images locally (there is no registry here):
#   ctfleet-test/busybox:1  base: a static busybox from Debian's busybox-static, imported
#   ctfleet-test/web:1      httpd page showing $GREETING and $FLAG, port 8080
#   ctfleet-test/echo:1     TCP line echo, port 9000
#   ctfleet-test/crash:1    exits at once with status 3
#   ctfleet-test/slow:1     listens on 8080 only after $DELAY seconds
# Each image carries a label with the hash of its inputs; an image whose label
# matches is not rebuilt. The base layer is a tar with fixed times and owners, so
# the same busybox always gives the same layer.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
IMAGES_DIR="$ROOT/hack/images"
LABEL=io.ctfleet.test.inputs

current_hash() { docker image inspect "$1" --format "{{ index .Config.Labels \"$LABEL\" }}" 2>/dev/null || true; }

busybox_binary() {
  local bin=/bin/busybox
  if [ ! -x "$bin" ] || ldd "$bin" >/dev/null 2>&1; then
    if ! dpkg -s busybox-static >/dev/null 2>&1; then
      is_root || die "a static busybox is needed for the test images: apt-get install busybox-static, then run again."
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >/dev/null 2>&1 \
        || { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >/dev/null 2>&1; } \
        || die "apt-get install busybox-static failed: install it yourself, then run again."
    fi
  fi
  ldd "$bin" >/dev/null 2>&1 && die "$bin is not a static binary: apt-get install busybox-static."
  echo "$bin"
}

build_base() {
  local bin; bin=$(busybox_binary)
  local hash; hash=$( { sha256sum "$bin"; echo v1; } | sha256sum | cut -c1-16)
  if [ "$(current_hash ctfleet-test/busybox:1)" = "$hash" ]; then return 0; fi
  local root; root=$(mktemp -d)
  mkdir -p "$root/bin" "$root/tmp" "$root/etc"
  cp "$bin" "$root/bin/busybox"
  for applet in $("$bin" --list); do [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"; done
  chmod 1777 "$root/tmp"
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' > "$root/etc/group"
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$root" -cf "$root.tar" .
  docker import --change "LABEL $LABEL=$hash" --change 'ENV PATH=/bin' --change 'CMD ["/bin/sh"]' \
    "$root.tar" ctfleet-test/busybox:1 >/dev/null
  rm -rf "$root" "$root.tar"
  log "image ctfleet-test/busybox:1 built"
}

build_one() {
  local name=$1 dir="$IMAGES_DIR/$1"
  local base_id; base_id=$(docker image inspect ctfleet-test/busybox:1 --format '{{.Id}}')
  local hash; hash=$( { (cd "$dir" && find . -type f | LC_ALL=C sort | xargs sha256sum); echo "$base_id"; } | sha256sum | cut -c1-16)
  if [ "$(current_hash "ctfleet-test/$name:1")" = "$hash" ]; then return 0; fi
  DOCKER_BUILDKIT=0 docker build -q --label "$LABEL=$hash" -t "ctfleet-test/$name:1" "$dir" >/dev/null 2>"$STATE_DIR/image-$name.log" \
    || { cat "$STATE_DIR/image-$name.log" >&2; die "building image ctfleet-test/$name:1 failed"; }
  log "image ctfleet-test/$name:1 built"
}

mkdir -p "$STATE_DIR"
build_base
for dir in "$IMAGES_DIR"/*/; do build_one "$(basename "$dir")"; done
