#!/usr/bin/env bash
# `npm test`: installs what is missing (scripts/setup.sh), then runs every test tier. The
# integration tier starts its own stack (Temporal dev server, worker, API) on ports of its own
# (test/support/stack.ts), with its own installation id, so it never touches a running `npm start`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
LOG_TAG=test
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
bash scripts/setup.sh
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
# The PostgreSQL log store's tests (test/postgres/) run their own server from Debian's postgresql.
bash scripts/postgres.sh
# The S3 artifact store's tests run versitygw (S3 over a directory), built from its Go module, pinned.
bash scripts/versitygw.sh
# The cluster tier (test/cluster/) runs `npm run cluster`'s topology: iproute2 and the Temporal
# server built once into .tools/ (scripts/cluster-setup.sh).
bash scripts/cluster-setup.sh
# API fuzzing (test/integration/openapi.test.ts) uses schemathesis from PyPI, pinned, in a venv of its own.
SCHEMATHESIS_VERSION=4.32.5
if [ "$(.tools/schemathesis/bin/st --version 2>/dev/null)" != "st, version $SCHEMATHESIS_VERSION" ]; then
  log "installing schemathesis $SCHEMATHESIS_VERSION into .tools/schemathesis"
  python3 -m venv .tools/schemathesis
  .tools/schemathesis/bin/pip install -q "schemathesis==$SCHEMATHESIS_VERSION"
fi
npx tsc --noEmit -p .
npx eslint .
# One formatting (Prettier, pinned; .prettierrc.json): `npm run format` fixes what this reports.
npx prettier --check .
mkdir -p test/artifacts
rm -f test/artifacts/results.json
status=0
npx vitest run --reporter=default --reporter=json --outputFile.json=test/artifacts/results.json "$@" || status=$?
# One plain closing line that any CI can read; a suite that failed counts its tests as failed.
node scripts/test-summary.mjs test/artifacts/results.json || status=$((status ? status : 1))
exit "$status"
