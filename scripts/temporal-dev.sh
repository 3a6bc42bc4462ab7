#!/usr/bin/env bash
# The one launcher of the Temporal dev server, for `npm start` and the test stack: the flags
# Hodei needs on every start, then the caller's own (--ip, --port, --ui-port, --db-filename,
# --ui-codec-endpoint …). It replaces itself with the server (exec): its PID is the server's.
# One partition per task queue makes queued jobs dispatch in the order they were queued;
# fairness (Temporal's new matcher) dispatches them by priority first, then takes turns between
# fairness keys by weight (docs/scheduling.md). The
# search attributes jobs use are registered by scripts/temporal-init.sh (in any namespace), which
# every caller runs once the server answers.
# Its SQLite file in WAL mode with synchronous=NORMAL: a commit is an append to the log, not two
# fsyncs and a journal file created and deleted (the default), and the server's one connection
# (all its persistence goes through it) is free sooner. A kill -9 of the server loses nothing
# committed; only an OS crash may lose the last commits.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
exec "$ROOT/.tools/bin/temporal" server start-dev \
  --dynamic-config-value matching.numTaskqueueReadPartitions=1 \
  --dynamic-config-value matching.numTaskqueueWritePartitions=1 \
  --dynamic-config-value matching.enableFairness=true \
  --sqlite-pragma journal_mode=wal --sqlite-pragma synchronous=normal \
  --log-level warn --ui-disable-news-fetch "$@"
