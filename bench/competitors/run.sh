#!/usr/bin/env bash
# Installs (idempotently) and runs the competitor queue benchmarks, measured like
# crates/p38-cli/benches/queue.rs. Needs PostgreSQL at BENCH_DATABASE_URL
# (default postgres://postgres@127.0.0.1:5432/test); drops and re-creates the
# databases bench_procrastinate and bench_pgboss, nothing else.
#
#   bench/competitors/run.sh [throughput|latency|all]
#   PGBOSS_MODE=batch bench/competitors/run.sh   # only pg-boss's faster setting
set -euo pipefail
cd "$(dirname "$0")"
what="${1:-all}"

python3 -m pip install --quiet --disable-pip-version-check -r requirements.txt
if [ -f package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
else
  npm install --no-audit --no-fund --loglevel=error
fi

echo "== procrastinate (Python) =="
python3 procrastinate_bench.py "$what"
echo "== pg-boss (Node.js) =="
node pgboss_bench.mjs "$what"
