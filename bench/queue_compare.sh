#!/usr/bin/env bash
# Project38's PostgreSQL queue against the competitors, measured the same
# way in one run (see crates/p38-cli/benches/queue.rs and
# bench/competitors/README.md). Run on an otherwise idle machine.
#   bench/queue_compare.sh            # throughput and latency, all three
set -euo pipefail
cd "$(dirname "$0")/.."
export P38_BENCH_DATABASE_URL="${P38_BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
echo "== Project38 =="
cargo bench -q -p p38-cli --bench queue -- throughput
cargo bench -q -p p38-cli --bench queue -- latency
PGBOSS_MODE=batch bench/competitors/run.sh all
