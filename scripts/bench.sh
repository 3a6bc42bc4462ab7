#!/usr/bin/env bash
# `npm run bench`: installs what is missing (scripts/setup.sh), then runs each benchmark in bench/.
# Every bench starts its own stack (Temporal dev server, worker, API) on loopback ports of its
# own (test/support/stack.ts), measures its bare-Docker baseline in the same run, prints medians, p95 and ratios, and writes
# JSON to bench/results/. A bench fails only on an error, never on a timing.
#   BENCH_RUNS   samples per series (default 20)
#   BENCH_BATCH  cancel bench: running jobs started at once per path (default 5);
#                orphans bench: running jobs terminated per batch (default 5)
#   BENCH_THROUGHPUT_JOBS  throughput bench: jobs per series at capacity 8 (default 200)
#   BENCH_BURST  throughput bench: jobs submitted in the burst (default 1000)
#   BENCH_PIPELINE_RUNS  pipeline bench: runs of each side (default 5)
#   BENCH_ARTIFACT_RUNS  artifacts bench: rounds of the 500 MB job and its docker cp baseline (default 3)
#   npm run bench -- cancel     runs only the named benches
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
benches=("$@")
if [ ${#benches[@]} -eq 0 ]; then benches=(foundation cancel throughput orphans pipeline artifacts cluster); fi
# The cluster bench runs `npm run cluster`'s topology: its Temporal server build and iproute2.
if [[ " ${benches[*]} " == *' cluster '* ]]; then bash scripts/cluster-setup.sh; fi
status=0
for bench in "${benches[@]}"; do
  echo "=== bench/${bench}.ts ==="
  node --import tsx "bench/${bench}.ts" || status=$?
done
exit "$status"
