#!/usr/bin/env bash
# `npm start`: installs what is missing, then runs the Temporal dev server, one worker bound to
# the local Docker engine, and the HTTP API in the foreground, under a supervisor that restarts
# a part that dies (scripts/supervise.ts). Ctrl-C stops them in seconds (not Docker, not the jobs'
# containers, which the next start takes up again).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
exec node --import tsx scripts/supervise.ts
