#!/usr/bin/env bash
# Holds the OpenAPI document to the server: starts `p38 up` on a fresh data
# folder and a free port, then runs schemathesis with every check against
# /openapi.json, as the admin. Fails on any server error, undocumented
# status code, response that does not match its schema, or valid request
# rejected. About a minute; SCHEMATHESIS_MAX_EXAMPLES (default 40) bounds it.
# Exit 0 pass, 1 failure, 77 schemathesis is not installed.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v schemathesis >/dev/null 2>&1; then
  echo "schemathesis.sh: schemathesis is not installed (pip install schemathesis)" >&2
  exit 77
fi
cargo build -q -p p38-cli --bin p38
bin="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug/p38"
dir=$(mktemp -d)
server=""
cleanup() {
  [ -z "$server" ] || kill "$server" 2>/dev/null || true
  [ -z "$server" ] || wait "$server" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
# A model server that is not there: a description starts a generation
# (202) that fails in the background, instead of the 503 of a server
# without a model key (a local model: priced at 0, or it would be refused).
env -u P38_DATABASE_URL -u P38_URL -u P38_TOKEN P38_LOG=warn \
  P38_LLM_PROVIDER=openai_compatible P38_LLM_BASE_URL=http://127.0.0.1:9/v1 P38_LLM_TIMEOUT=2 \
  P38_LLM_PRICE_INPUT=0 P38_LLM_PRICE_OUTPUT=0 \
  "$bin" up --bind 127.0.0.1:0 --data-dir "$dir/data" >"$dir/server.log" 2>&1 &
server=$!
url=""
for _ in $(seq 1 100); do
  url=$(sed -n 's/^Project38 API listening on \(http[^ ]*\).*/\1/p' "$dir/server.log" | head -n1)
  [ -n "$url" ] && [ -s "$dir/data/admin.token" ] && break
  kill -0 "$server" 2>/dev/null || { cat "$dir/server.log" >&2; echo "schemathesis.sh: p38 up did not start" >&2; exit 1; }
  sleep 0.1
done
[ -n "$url" ] || { cat "$dir/server.log" >&2; echo "schemathesis.sh: p38 up did not say where it listens" >&2; exit 1; }
token=$(cat "$dir/data/admin.token")
run() {
  schemathesis --config-file scripts/schemathesis.toml run "$url/openapi.json" \
    --checks all \
    --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-40}" \
    --seed "${SCHEMATHESIS_SEED:-38}" \
    --no-shrink \
    --workers 2 \
    --request-timeout 70 \
    -H "Authorization: Bearer $token" \
    "$@"
}
status=0
# Revoking tokens last: schemathesis may revoke the admin token it runs as.
run --exclude-path '/api/tokens/{id}' || status=1
run --include-path '/api/tokens/{id}' || status=1
if grep -E "panicked|internal error" "$dir/server.log" >&2; then
  echo "schemathesis.sh: the server logged an internal error or a panic" >&2
  status=1
fi
exit "$status"
