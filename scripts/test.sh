#!/usr/bin/env bash
# `npm test`: installs what is missing (scripts/setup.sh, and the tests' own tools beside it), then
# runs every test tier in two lanes at once (docs/tests.md#two-lanes):
#   shared: the integration tier, one file after another on one shared stack (Temporal dev server,
#           worker, API on ports of its own, its own installation id: it never touches `npm start`),
#           then the cluster tier, then the longest standalone file;
#   own:    type-check, lint and format check, then the tiers that start what they need themselves
#           (unit, workflow, deployment, standalone, postgres).
# Arguments (files, `--project …`) run only those, in one lane: `npm test -- test/unit`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
LOG_TAG=test
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
ARTIFACTS=test/artifacts
mkdir -p "$ARTIFACTS"
rm -f "$ARTIFACTS"/results*.json

SCHEMATHESIS_VERSION=4.32.5
# What only the tests need, installed while set-up runs (its npm ci compiles on one core; these are
# Go builds and pip installs, and apt_install takes one lock for both).
# Packages and pip installs (downloads, unpacking) run beside the cluster's Go builds (compilation).
install_test_packages() {
  # Browser tests drive Debian's Chromium (playwright cannot download its own browser here).
  if [ ! -x /usr/bin/chromium ]; then
    log "installing Debian's chromium for the browser tests"
    apt_install chromium
  fi
  # docker-compose.yml is validated with Debian's docker-compose (test/deployment/docker-compose.test.ts).
  if ! command -v docker-compose >/dev/null 2>&1; then
    log "installing Debian's docker-compose to validate docker-compose.yml"
    apt_install docker-compose
  fi
  # API fuzzing (test/integration/openapi.test.ts) uses schemathesis from PyPI, pinned, in a venv of its own.
  if [ "$(.tools/schemathesis/bin/st --version 2>/dev/null)" != "st, version $SCHEMATHESIS_VERSION" ]; then
    log "installing schemathesis $SCHEMATHESIS_VERSION into .tools/schemathesis"
    python3 -m venv .tools/schemathesis
    .tools/schemathesis/bin/pip install -q "schemathesis==$SCHEMATHESIS_VERSION"
  fi
}
install_test_tools() {
  install_test_packages &
  local packages=$! failed=0
  # The cluster tier (test/cluster/) runs `npm run cluster`'s topology: iproute2, Debian's
  # postgresql (also the postgres tier's server), versitygw (also the S3 store's tests) and the
  # Temporal server, built once into .tools/.
  bash scripts/cluster-setup.sh || failed=1
  wait "$packages" || failed=1
  return "$failed"
}
install_test_tools &
tools=$!
bash scripts/setup.sh
if ! wait "$tools"; then
  log "installing the tests' tools failed (see above)"
  exit 1
fi

checks() {
  local failed=0
  npx tsc --noEmit -p . || failed=1
  npx eslint . || failed=1
  # One formatting (Prettier, pinned; .prettierrc.json): `npm run format` fixes what this reports.
  npx prettier --check . || failed=1
  return "$failed"
}

# One vitest run writing its JSON report to $ARTIFACTS/results-<name>.json.
vitest_run() {
  local name=$1
  shift
  npx vitest run --reporter=default --reporter=json --outputFile.json="$ARTIFACTS/results-$name.json" "$@"
}

status=0
if [ $# -gt 0 ]; then
  checks
  vitest_run main "$@" || status=$?
  reports=("$ARTIFACTS/results-main.json")
else
  # The longest standalone file runs in the shared lane, so that both lanes take about as long.
  balanced=test/standalone/hosts.test.ts
  shared_lane() {
    local failed=0
    vitest_run shared --project integration || failed=1
    # The cluster tier after it, in a run of its own: its topology (four Temporal services,
    # PostgreSQL, two engines) runs only while its own tests do.
    vitest_run cluster --project cluster || failed=1
    vitest_run balance --project standalone "$balanced" || failed=1
    return "$failed"
  }
  own_lane() {
    local failed=0
    checks || failed=1
    vitest_run own --project unit --project workflow --project deployment --project standalone \
      --project postgres --exclude "$balanced" || failed=1
    return "$failed"
  }
  # Each lane in a process group of its own (set -m), so that stopping `npm test` stops both whole;
  # each lane's lines carry its name, and a lane runs every step even when one fails.
  set -m
  { shared_lane 2>&1 | sed -u 's/^/[shared] /'; } &
  shared=$!
  { own_lane 2>&1 | sed -u 's/^/[own] /'; } &
  own=$!
  set +m
  trap 'kill -INT -- "-$shared" "-$own" 2>/dev/null' INT
  trap 'kill -TERM -- "-$shared" "-$own" 2>/dev/null' TERM
  wait "$shared" || status=$?
  wait "$own" || status=$((status ? status : $?))
  trap - INT TERM
  reports=("$ARTIFACTS"/results-{shared,cluster,balance,own}.json)
fi
# One plain closing line that any CI can read; a suite that failed counts its tests as failed.
node scripts/test-summary.mjs "${reports[@]}" || status=$((status ? status : 1))
exit "$status"
