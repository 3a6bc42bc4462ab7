#!/usr/bin/env bash
# The one launcher of the Temporal dev server, for `npm start` and the test stack: the flags
# Hodei needs on every start, then the caller's own (--ip, --port, --ui-port, --db-filename,
# --ui-codec-endpoint …). It replaces itself with the server (exec): its PID is the server's.
# The search attributes jobs use are registered at launch; one partition per task queue makes
# queued jobs dispatch in the order they were queued.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
exec "$ROOT/.tools/bin/temporal" server start-dev \
  --search-attribute HodeiState=Keyword --search-attribute HodeiLabels=KeywordList \
  --search-attribute HodeiHost=Keyword \
  --dynamic-config-value matching.numTaskqueueReadPartitions=1 \
  --dynamic-config-value matching.numTaskqueueWritePartitions=1 \
  --log-level warn --ui-disable-news-fetch "$@"
