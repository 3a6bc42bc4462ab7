#!/usr/bin/env bash
# Installs what `npm run cluster` and the `cluster` test project need beyond scripts/setup.sh,
# idempotently: iproute2 (network namespaces), Debian's PostgreSQL, versitygw (S3), and the Temporal server with
# temporal-sql-tool, built from the Go module with `go install` into
# .tools/temporal-server-<version>/ only when missing (the Go build cache makes a rebuild quick),
# with the PostgreSQL schema the module ships copied beside them, and the Temporal Web UI server
# into .tools/temporal-ui-<version>/.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOG_TAG=cluster
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"
# The server the pinned temporal CLI embeds; keep in step with scripts/cluster/cluster.ts.
TEMPORAL_SERVER_VERSION=1.32.0
DIR="$TOOLS/temporal-server-$TEMPORAL_SERVER_VERSION"

# Debian's packages install while the Go builds below run (downloads and unpacking against
# compilation: on a fresh machine this saves minutes).
debian_packages() {
  if ! command -v ip >/dev/null 2>&1; then
    log "installing Debian's iproute2 for the cluster's hosts (network namespaces)"
    apt_install iproute2
  fi
  bash "$ROOT/scripts/postgres.sh"
}
debian_packages &
packages=$!
# The S3 artifact store every host and API replica shares: versitygw.
bash "$ROOT/scripts/versitygw.sh"

if [ ! -x "$DIR/server" ] || [ ! -x "$DIR/temporal-sql-tool" ] || [ ! -d "$DIR/schema/postgresql/v12" ]; then
  if ! command -v go >/dev/null 2>&1; then
    log "the Temporal server is built with Go (1.25 or later; Debian's is too old): install it, then run again"
    exit 1
  fi
  log "building the Temporal server v$TEMPORAL_SERVER_VERSION into $DIR (minutes the first time)"
  mkdir -p "$DIR.tmp"
  GOBIN="$DIR.tmp" GOFLAGS=-mod=mod go install \
    "go.temporal.io/server/cmd/server@v$TEMPORAL_SERVER_VERSION" \
    "go.temporal.io/server/cmd/tools/sql@v$TEMPORAL_SERVER_VERSION"
  mv "$DIR.tmp/sql" "$DIR.tmp/temporal-sql-tool"
  module="$(go env GOMODCACHE)/go.temporal.io/server@v$TEMPORAL_SERVER_VERSION"
  mkdir -p "$DIR.tmp/schema/postgresql"
  cp -r "$module/schema/postgresql/v12" "$DIR.tmp/schema/postgresql/"
  chmod -R u+w "$DIR.tmp/schema"
  rm -rf "$DIR"
  mv "$DIR.tmp" "$DIR"
fi

# The Temporal Web UI server (the UI the pinned CLI embeds), its assets built into the module.
TEMPORAL_UI_VERSION=2.54.1
UI_DIR="$TOOLS/temporal-ui-$TEMPORAL_UI_VERSION"
if [ ! -x "$UI_DIR/ui-server" ]; then
  log "building the Temporal Web UI server v$TEMPORAL_UI_VERSION into $UI_DIR"
  mkdir -p "$UI_DIR.tmp"
  GOBIN="$UI_DIR.tmp" GOFLAGS=-mod=mod go install "github.com/temporalio/ui-server/v2/cmd/server@v$TEMPORAL_UI_VERSION"
  mv "$UI_DIR.tmp/server" "$UI_DIR.tmp/ui-server"
  rm -rf "$UI_DIR"
  mv "$UI_DIR.tmp" "$UI_DIR"
fi

if ! wait "$packages"; then
  log "installing iproute2 or PostgreSQL failed (see above)"
  exit 1
fi
