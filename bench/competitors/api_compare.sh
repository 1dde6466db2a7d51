#!/usr/bin/env bash
# The read path side by side, in one run on the same machine: Project38
# (`cargo bench -p p38-cli --bench api -- list`, SQLite and PostgreSQL) and
# the original plan's FastAPI design (fastapi_agents.py on PostgreSQL, two
# uvicorn workers for the two cores), each serving the same 100 agents to
# `wrk -t2 -c32 -d10s`: `GET /api/agents?limit=100` and one agent.
#
#   bench/competitors/api_compare.sh
#
# Needs wrk (apt-get install wrk) and PostgreSQL at BENCH_DATABASE_URL
# (default postgres://postgres@127.0.0.1:5432/test); drops and re-creates
# the database bench_fastapi and the schema p38bench_api, nothing else.
# Run it on a quiet machine: a build beside it halves every number.
set -euo pipefail
cd "$(dirname "$0")"
port="${FASTAPI_PORT:-8038}"

python3 -m pip install --quiet --disable-pip-version-check -r requirements-fastapi.txt

echo "== Project38 =="
(cd ../.. && cargo bench -q -p p38-cli --bench api -- list 2>/dev/null | grep -E "requests/s|SKIP")

echo "== FastAPI + SQLModel + asyncpg (the plan's design), PostgreSQL =="
python3 fastapi_agents.py seed
python3 -m uvicorn fastapi_agents:app --workers 2 --port "$port" --log-level error &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$port/api/agents/50" >/dev/null 2>&1 && break
  sleep 0.1
done
for path in "/api/agents?limit=100" "/api/agents/50"; do
  out="$(wrk -t2 -c32 -d10s --latency "http://127.0.0.1:$port$path")"
  if grep -q "Non-2xx" <<<"$out"; then echo "$out"; exit 1; fi
  rps="$(awk '/Requests\/sec:/ {print $2}' <<<"$out")"
  p50="$(awk '$1 == "50%" {print $2}' <<<"$out")"
  p99="$(awk '$1 == "99%" {print $2}' <<<"$out")"
  echo "fastapi   GET $path, wrk -t2 -c32 -d10s: $rps requests/s, p50 $p50, p99 $p99"
done
