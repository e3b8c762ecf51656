#!/usr/bin/env bash
# Runs the whole test suite — unit, integration and end-to-end — against the real
# local stack, which it starts (or reuses) first. Installs what it needs itself.
#   hack/test.sh                  everything
#   hack/test.sh test/unit/...    only the given test files (stack still started)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

timed "node $NODE_VERSION" ensure_node
timed "npm dependencies" ensure_deps
# --cluster: also the single-node cluster the chart tests install into
# (docs/local-cluster.md); not with an existing cluster (CTFLEET_USE_EXISTING_CLUSTER),
# where test/e2e/cluster.test.ts skips.
if [ "${CTFLEET_USE_EXISTING_CLUSTER:-false}" = true ]; then bash hack/stack.sh up; else bash hack/stack.sh up --cluster; fi
# The GitOps tests' helper: kstatus from sigs.k8s.io/cli-utils (cached like the stack's binaries).
bash hack/build-tools.sh kstatus
eval "$(bash hack/stack.sh env)"
# The demo's ctfleet manages every namespace: it would act on the tests' instances.
demo_pid_file="$STATE_DIR/pids/ctfleet.pid"
if [ -f "$demo_pid_file" ] && kill -0 "$(cat "$demo_pid_file")" 2>/dev/null; then
  echo "Stopping the demo's ctfleet (pid $(cat "$demo_pid_file")) for the tests; hack/demo.sh starts it again."
  kill "$(cat "$demo_pid_file")"
  for _ in $(seq 1 100); do kill -0 "$(cat "$demo_pid_file")" 2>/dev/null || break; sleep 0.2; done
  rm -f "$demo_pid_file"
fi
# The dashboard's browser test drives Debian's Chromium (with fonts, for legible screenshots).
have chromium || timed "chromium" apt_install chromium chromium fonts-liberation
timed "typecheck, lint, import cycles" npm run --silent check

if [ "$#" -eq 0 ]; then set -- "test/**/*.test.ts"; fi
# One runner invocation, so its closing summary counts every tier. Files run one
# at a time: integration and end-to-end tests share one Docker engine and API server.
# The outer timeout turns a hung test process into a clear failure well inside CI's limit.
timeout --kill-after=30s "${CTFLEET_TEST_TIMEOUT:-50m}" node --test --test-concurrency=1 --test-timeout=600000 --test-reporter=spec "$@"
