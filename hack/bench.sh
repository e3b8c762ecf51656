#!/usr/bin/env bash
# Runs a benchmark against the local stack (started if needed).
#   hack/bench.sh [--instances N] [--concurrency C] [--repeat R] [--pool]   start/teardown (bench/run.ts)
#   hack/bench.sh --scale [--instances N] [--running R] …                    scale (bench/scale.ts)
#   hack/bench.sh --api-cost [--instances N] [--watchers W]                  API server CPU by request (bench/api-cost.ts)
#   hack/bench.sh --worker-cost [--calls N]                                  the worker's CPU by step of a start (bench/worker-cost.ts)
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
if [ "${1:-}" = --scale ]; then shift; exec node bench/scale.ts "$@"; fi
if [ "${1:-}" = --api-cost ]; then shift; exec node bench/api-cost.ts "$@"; fi
# With the worker's own V8 flags (src/app/node-flags.ts): its garbage collection is part of the cost.
if [ "${1:-}" = --worker-cost ]; then shift; exec node --max-semi-space-size=1 --optimize-for-size bench/worker-cost.ts "$@"; fi
exec node bench/run.ts "$@"
