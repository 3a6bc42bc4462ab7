#!/usr/bin/env bash
# Builds the web page (web/ → .tools/web, served by the API at /) with Vite, only when its
# sources or the installed packages changed since the last build; safe to run any number of times.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
LOG_TAG=setup
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
OUT=.tools/web
hash="$( (find web -type f -print | LC_ALL=C sort | xargs cat; cat package-lock.json) | sha256sum | cut -c1-16)"
if [ "$(cat "$OUT/.build-hash" 2>/dev/null || true)" = "$hash" ]; then exit 0; fi
log "building the web page (vite)"
# Type-check the page's code (the root project has no DOM types) where TypeScript is installed.
if [ -x node_modules/.bin/tsc ]; then npx tsc --noEmit -p web; fi
# Warnings and errors only: the bundle report is no news on every start.
npx vite build --config web/vite.config.ts --logLevel warn
echo "$hash" > "$OUT/.build-hash"
