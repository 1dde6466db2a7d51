#!/usr/bin/env bash
# The factory's targets, measured: 20 fixed descriptions (bench/factory/
# descriptions.txt: 10 English, 10 Hebrew, the Tesla watcher among them)
# through the real product, `p38 up` on a fresh data folder, printing per
# description and in total first-try passes, iterations, tokens, USD and
# wall time beside the plan's targets (90 % first try, under $3 and 30 s
# per agent).
#
# With a model key in the environment (ANTHROPIC_API_KEY, OPENAI_API_KEY or
# GEMINI_API_KEY, with P38_LLM_PROVIDER / P38_LLM_MODEL as for `p38 up`)
# it measures that provider. Without one, or with P38_EVAL_FAKE=1 (as in CI),
# it runs against a loopback server in Anthropic's wire format
# (bench/factory/fake_anthropic.py) and checks the harness's arithmetic:
# that proves the harness, not a model. Exit 1 on a harness failure.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q -p p38-cli --bins
bin="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug/p38"
dir=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT

live=""
if [ "${P38_EVAL_FAKE:-}" != "1" ] && [ -n "${ANTHROPIC_API_KEY:-}${OPENAI_API_KEY:-}${GEMINI_API_KEY:-}" ]; then
  live=1
fi
env_args=(P38_LOG=warn P38_WORKSPACE_QUOTA=walk)
check=()
if [ -z "$live" ]; then
  python3 bench/factory/fake_anthropic.py "$dir/port" &
  pids+=($!)
  for _ in $(seq 1 100); do [ -s "$dir/port" ] && break; sleep 0.05; done
  [ -s "$dir/port" ] || { echo "factory_eval.sh: the loopback model did not start" >&2; exit 1; }
  env_args+=(P38_LLM_PROVIDER=anthropic "P38_LLM_BASE_URL=http://127.0.0.1:$(cat "$dir/port")"
    ANTHROPIC_API_KEY=loopback-model-key P38_LLM_MODEL=claude-sonnet-4-5
    P38_LLM_PRICE_INPUT=3 P38_LLM_PRICE_OUTPUT=15)
  check=(--check-fake 1500 400 3 15)
  echo "model: loopback fake in Anthropic's wire format (the harness and its arithmetic; not a model's quality)"
else
  echo "model: ${P38_LLM_PROVIDER:-anthropic} ${P38_LLM_MODEL:-(its default)}, live"
fi
env -u P38_DATABASE_URL -u P38_URL -u P38_TOKEN "${env_args[@]}" \
  "$bin" up --bind 127.0.0.1:0 --data-dir "$dir/data" >"$dir/server.log" 2>&1 &
pids+=($!)
url=""
for _ in $(seq 1 200); do
  url=$(sed -n 's/^Project38 API listening on \(http[^ ]*\).*/\1/p' "$dir/server.log" | head -n1)
  [ -n "$url" ] && [ -s "$dir/data/admin.token" ] && break
  sleep 0.1
done
[ -n "$url" ] || { cat "$dir/server.log" >&2; echo "factory_eval.sh: p38 up did not start" >&2; exit 1; }
python3 bench/factory/eval.py "$url" "$(cat "$dir/data/admin.token")" bench/factory/descriptions.txt "${check[@]}"
