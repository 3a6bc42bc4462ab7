#!/usr/bin/env bash
# `npm run cluster`: the many-machine topology on this machine (docs/cluster.md): PostgreSQL, the
# Temporal server (not the dev server) as four service processes, two hosts (network namespaces,
# each with its own dockerd and Hodei worker) and two API replicas, in the foreground. Ctrl-C or
# SIGTERM stops everything it started, by PID, and removes the hosts' namespaces and links.
# Set-up is idempotent: Debian's iproute2 and postgresql, and the Temporal server and
# temporal-sql-tool built from the Go module once into .tools/temporal-server-<version>/.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
LOG_TAG=cluster
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
bash scripts/setup.sh
bash scripts/cluster-setup.sh
exec node --import tsx scripts/cluster/main.ts "$@"
