#!/usr/bin/env bash
# `npm test`: installs what is missing (scripts/setup.sh), then runs every test tier. The
# integration tier starts its own stack (Temporal dev server, worker, API) on free ports, with
# its own installation id, so it never touches a running `npm start`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
# Browser tests drive Debian's Chromium (playwright cannot download its own browser here).
if [ ! -x /usr/bin/chromium ]; then
  echo "[test] installing Debian's chromium for the browser tests" >&2
  if [ "$(id -u)" -eq 0 ]; then SUDO=; else SUDO=sudo; fi
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
npx tsc --noEmit -p .
npx eslint .
mkdir -p test/artifacts
status=0
npx vitest run --reporter=default --reporter=json --outputFile.json=test/artifacts/results.json "$@" || status=$?
# One plain closing line that any CI can read.
node -e '
  const r = JSON.parse(require("fs").readFileSync("test/artifacts/results.json", "utf8"));
  const skipped = r.numPendingTests + r.numTodoTests;
  console.log(`tests: ${r.numPassedTests} passed, ${r.numFailedTests} failed` + (skipped ? `, ${skipped} skipped` : ""));
' || true
exit "$status"
