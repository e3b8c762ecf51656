#!/usr/bin/env bash
# Runs the start/teardown benchmark against the local stack (started if needed).
#   hack/bench.sh [--instances N] [--concurrency C]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
ensure_node
ensure_deps
bash hack/stack.sh up >/dev/null
eval "$(bash hack/stack.sh env)"
kubectl apply --server-side --force-conflicts -f manifests/crds/ >/dev/null
kubectl wait --for=condition=Established --timeout=60s crd/challengeinstances.ctfleet.io crd/challenges.ctfleet.io >/dev/null
npm run --silent build
exec node bench/run.ts "$@"
