#!/usr/bin/env bash
# Installs Debian's PostgreSQL server when missing (idempotent, no prompts), for the PostgreSQL
# log store's tests. It installs only: the tests start a server of their own from these binaries
# (test/support/postgres.ts: initdb into a fresh data dir, 127.0.0.1 only, on a port tried
# again when taken) and stop it by its PID when they end.
set -euo pipefail
if compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null && compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
  exit 0
fi
echo "[test] installing Debian's postgresql for the PostgreSQL log store tests" >&2
if [ "$(id -u)" -eq 0 ]; then SUDO=; else SUDO=sudo; fi
$SUDO apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
