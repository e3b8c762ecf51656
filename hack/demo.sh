#!/usr/bin/env bash
# The main job: brings the local stack up and shows that ctfleet reaches every
# part of it. (The end-to-end issue turns this into the full instance demo.)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

timed "node $NODE_VERSION" ensure_node
timed "npm dependencies" ensure_deps
bash hack/stack.sh up
eval "$(bash hack/stack.sh env)"
echo
echo "ctfleet doctor — what ctfleet sees of the stack:"
node src/main.ts doctor
cat <<MSG

The stack keeps running. Point your shell at it and look around:
  eval "\$(hack/stack.sh env)"
  kubectl version && kubectl get ns
  redis-cli -u "\$REDIS_URL" ping
  docker info
Stop it with: hack/stack.sh down
MSG
