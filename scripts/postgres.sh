#!/usr/bin/env bash
# Installs Debian's PostgreSQL server when missing (idempotent, no prompts), for the PostgreSQL
# log store's tests. It installs only: the tests start a server of their own from these binaries
# (test/support/postgres.ts: initdb into a fresh data dir, 127.0.0.1 only, on a port tried
# again when taken) and stop it by its PID when they end.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOG_TAG=test
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"
if compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null && compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
  exit 0
fi
log "installing Debian's postgresql for the PostgreSQL log store tests"
apt_install postgresql
