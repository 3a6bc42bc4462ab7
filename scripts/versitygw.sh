#!/usr/bin/env bash
# Installs versitygw (an S3 server over a directory) for the S3 artifact store's tests, when
# missing: `go install` of the pinned tag into .tools/versitygw-<version>/ (a minute from a cold
# Go cache). It installs only: the tests start a server of their own on 127.0.0.1 with a fresh
# root directory (test/support/versitygw.ts) and stop it by its PID.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOG_TAG=test
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"
VERSITYGW_VERSION=1.8.0
DIR="$TOOLS/versitygw-$VERSITYGW_VERSION"
if [ -x "$DIR/versitygw" ]; then exit 0; fi
if ! command -v go >/dev/null 2>&1; then
  log "installing Debian's golang to build versitygw"
  apt_install golang
fi
log "building versitygw $VERSITYGW_VERSION into $DIR (go install)"
mkdir -p "$DIR"
GOBIN="$DIR" go install "github.com/versity/versitygw/cmd/versitygw@v$VERSITYGW_VERSION"
