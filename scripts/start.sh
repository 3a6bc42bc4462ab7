#!/usr/bin/env bash
# `npm start`: installs what is missing, then runs the Temporal dev server, one worker bound to
# the local Docker engine, and the HTTP API, in the foreground. Ctrl-C stops them (not Docker).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh

export TEMPORAL_ADDRESS="${TEMPORAL_ADDRESS:-127.0.0.1:7233}"
export HODEI_DATA_DIR="${HODEI_DATA_DIR:-$ROOT/data}"
UI_PORT="${HODEI_TEMPORAL_UI_PORT:-8233}"
API_PORT="${HODEI_API_PORT:-8080}"
CODEC_PORT="${HODEI_CODEC_PORT:-8234}"
# The web page links to the UI, and the codec endpoint lets only the UI's origin in (CORS).
export HODEI_TEMPORAL_UI_URL="${HODEI_TEMPORAL_UI_URL:-http://127.0.0.1:$UI_PORT}"
mkdir -p "$HODEI_DATA_DIR"
# The Web UI decodes payloads (encrypted in Temporal) with the API's codec endpoint, loopback only.
ui_codec=()
[ "$CODEC_PORT" = off ] || ui_codec=(--ui-codec-endpoint "http://127.0.0.1:$CODEC_PORT")

pids=()
stop() {
  trap - INT TERM EXIT
  echo "[start] stopping" >&2
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait || true
}
trap stop INT TERM EXIT

temporal_host="${TEMPORAL_ADDRESS%:*}"
temporal_port="${TEMPORAL_ADDRESS##*:}"
.tools/bin/temporal server start-dev \
  --ip "$temporal_host" --port "$temporal_port" --ui-port "$UI_PORT" \
  --db-filename "$HODEI_DATA_DIR/temporal.db" \
  --search-attribute HodeiState=Keyword --search-attribute HodeiLabels=KeywordList \
  --search-attribute HodeiHost=Keyword \
  --dynamic-config-value matching.numTaskqueueReadPartitions=1 \
  --dynamic-config-value matching.numTaskqueueWritePartitions=1 \
  "${ui_codec[@]}" --log-level warn --ui-disable-news-fetch >>"$HODEI_DATA_DIR/temporal.log" 2>&1 &
pids+=($!)
bash scripts/temporal-init.sh

node --import tsx worker/main.ts &
pids+=($!)
node --import tsx api/main.ts &
pids+=($!)

for _ in $(seq 1 240); do
  curl -fsS "http://127.0.0.1:$API_PORT/readyz" >/dev/null 2>&1 && break
  for pid in "${pids[@]}"; do
    kill -0 "$pid" 2>/dev/null || { echo "[start] a component exited during start-up" >&2; exit 1; }
  done
  sleep 0.5
done
# With no HODEI_API_TOKENS the API uses (and on first start creates) the token in the data dir.
if [ -n "${HODEI_API_TOKENS:-}" ]; then
  token_line="API token:        one of HODEI_API_TOKENS"
else
  token_line="API token:        $(cat "$HODEI_DATA_DIR/api-token")   (kept in $HODEI_DATA_DIR/api-token)"
fi
cat >&2 <<MSG

  Hodei Jobs is running.
    API:              http://127.0.0.1:$API_PORT   (try: curl -s localhost:$API_PORT/readyz)
    $token_line
      (try: curl -s -H "Authorization: Bearer \$(cat $HODEI_DATA_DIR/api-token)" localhost:$API_PORT/jobs)
    Temporal Web UI:  http://$temporal_host:$UI_PORT   (payloads decoded by http://127.0.0.1:$CODEC_PORT, loopback only)
    temporal CLI:     $ROOT/.tools/bin/temporal   (reaches $TEMPORAL_ADDRESS with no flags;
                      add --codec-endpoint http://127.0.0.1:$CODEC_PORT to read payloads)
    Data:             $HODEI_DATA_DIR
  Ctrl-C stops it.

MSG
# Ends when any part stops; the trap then stops the rest.
wait -n "${pids[@]}"
