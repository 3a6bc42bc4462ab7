#!/usr/bin/env bash
# Prepares a running Temporal server for Hodei: waits for it, sets the namespace's retention
# (HODEI_RETENTION_DAYS, the logs' retention too) and registers the search attributes jobs use:
# the one place they are registered for a dev server (scripts/temporal-dev.sh), run after each
# launch by `npm start` (scripts/supervise.ts) and the test stack (test/support/stack.ts).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TEMPORAL="$ROOT/.tools/bin/temporal"
ADDRESS="${TEMPORAL_ADDRESS:-127.0.0.1:7233}"
NAMESPACE="${TEMPORAL_NAMESPACE:-default}"
RETENTION_DAYS="${HODEI_RETENTION_DAYS:-30}"
t() { "$TEMPORAL" --address "$ADDRESS" "$@"; }

for _ in $(seq 1 120); do
  if t operator cluster health >/dev/null 2>&1; then break; fi
  sleep 0.5
done
t operator cluster health >/dev/null

if ! t operator namespace describe -n "$NAMESPACE" >/dev/null 2>&1; then
  t operator namespace create -n "$NAMESPACE" --retention "$((RETENTION_DAYS * 24))h" >/dev/null
else
  t operator namespace update -n "$NAMESPACE" --retention "$((RETENTION_DAYS * 24))h" >/dev/null
fi

# A namespace just created reaches a full server's caches within seconds (the dev server's at once).
for _ in $(seq 1 60); do
  if t operator search-attribute list -n "$NAMESPACE" >/dev/null 2>&1; then break; fi
  sleep 0.5
done
existing="$(t operator search-attribute list -n "$NAMESPACE")"
for attr in HodeiState=Keyword HodeiLabels=KeywordList HodeiHost=Keyword HodeiPriority=Int; do
  name="${attr%%=*}"
  if ! grep -qw "$name" <<<"$existing"; then
    t operator search-attribute create -n "$NAMESPACE" --name "$name" --type "${attr#*=}" >/dev/null
  fi
done
