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
temporal_log="$HODEI_DATA_DIR/temporal.log"
temporal_log_start=$(($(stat -c %s "$temporal_log" 2>/dev/null || echo 0) + 1))
bash scripts/temporal-dev.sh \
  --ip "$temporal_host" --port "$temporal_port" --ui-port "$UI_PORT" \
  --db-filename "$HODEI_DATA_DIR/temporal.db" "${ui_codec[@]}" >>"$temporal_log" 2>&1 &
temporal_pid=$!
pids+=("$temporal_pid")
# The dev server exits at once on a port in use: say which setting to change, not a timeout later.
temporal_exited() {
  local line
  line="$(tail -c +"$temporal_log_start" "$temporal_log" | grep -m1 -i 'address already in use' || true)"
  if [[ "$line" == *":$temporal_port:"* || "$line" == *"frontend port"* ]]; then
    echo "[start] $TEMPORAL_ADDRESS is in use (another npm start?): set TEMPORAL_ADDRESS to another host:port" >&2
  elif [[ "$line" == *":$UI_PORT:"* || "$line" == *"UI port"* ]]; then
    echo "[start] the Temporal Web UI port $UI_PORT is in use: set HODEI_TEMPORAL_UI_PORT to another port" >&2
  else
    echo "[start] the Temporal dev server exited; the end of $temporal_log:" >&2
    tail -c +"$temporal_log_start" "$temporal_log" | tail -n 20 >&2
  fi
  exit 1
}
bash scripts/temporal-init.sh &
init_pid=$!
while kill -0 "$init_pid" 2>/dev/null; do
  kill -0 "$temporal_pid" 2>/dev/null || { kill "$init_pid" 2>/dev/null || true; temporal_exited; }
  sleep 0.2
done
wait "$init_pid" || { kill -0 "$temporal_pid" 2>/dev/null || temporal_exited; exit 1; }

node --import tsx worker/main.ts &
pids+=($!)
node --import tsx api/main.ts &
pids+=($!)

for _ in $(seq 1 240); do
  curl -fsS "http://127.0.0.1:$API_PORT/readyz" >/dev/null 2>&1 && break
  for pid in "${pids[@]}"; do
    # A port in use ends the API or the worker with a message naming the setting (above).
    kill -0 "$pid" 2>/dev/null || { echo "[start] a component exited during start-up (its message is above)" >&2; exit 1; }
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
