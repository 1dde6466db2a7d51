#!/usr/bin/env bash
# The whole test suite: set up, then every test of every crate, then one
# closing line with the totals over all test binaries.
# PostgreSQL tests run when P38_TEST_DATABASE_URL is set, e.g.
#   P38_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test scripts/test.sh
# A test whose dependency is missing is skipped and counted here (each
# records itself in $P38_SKIP_LOG, see crates/p38-testkit); under CI=true it
# fails instead, because CI has every dependency.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
log=$(mktemp)
P38_SKIP_LOG=$(mktemp)
export P38_SKIP_LOG
trap 'rm -f "$log" "$P38_SKIP_LOG"' EXIT
set +e
cargo test --workspace --no-fail-fast "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
# The HTTP API and CLI suites once more, with the server on PostgreSQL.
if [ -n "${P38_TEST_DATABASE_URL:-}" ]; then
  echo "== the API and CLI end-to-end suites again, on PostgreSQL =="
  P38_E2E_BACKEND=postgres cargo test -p p38-cli --test api --test cli --test contract --no-fail-fast "$@" 2>&1 | tee -a "$log"
  pg_status=${PIPESTATUS[0]}
  [ "$status" -ne 0 ] || status=$pg_status
else
  echo "SKIP the API and CLI suites on PostgreSQL: P38_TEST_DATABASE_URL is not set" >>"$P38_SKIP_LOG"
  if [ "${CI:-}" = "true" ]; then
    echo "test.sh: CI=true but P38_TEST_DATABASE_URL is not set" >&2
    status=1
  fi
fi
# The OpenAPI document held to the server by schemathesis.
if [ "${CI:-}" = "true" ] || command -v schemathesis >/dev/null 2>&1; then
  echo "== schemathesis against /openapi.json =="
  scripts/schemathesis.sh 2>&1 | tee -a "$log"
  st_status=${PIPESTATUS[0]}
  [ "$st_status" -eq 0 ] || status=1
else
  echo "SKIP schemathesis against /openapi.json: schemathesis is not installed (pip install schemathesis)" >>"$P38_SKIP_LOG"
fi
# The factory's evaluation harness, against its loopback model (its
# arithmetic checked; the live numbers need a key, see BENCHMARKS.md).
if [ "${CI:-}" = "true" ] || command -v bwrap >/dev/null 2>&1; then
  echo "== factory evaluation against the loopback model =="
  P38_EVAL_FAKE=1 bench/factory_eval.sh 2>&1 | tee -a "$log"
  fe_status=${PIPESTATUS[0]}
  [ "$fe_status" -eq 0 ] || status=1
else
  echo "SKIP the factory evaluation: bubblewrap is not installed (its dry runs need the sandbox)" >>"$P38_SKIP_LOG"
fi
set -e
skipped=$(wc -l <"$P38_SKIP_LOG")
sed 's/^/skipped: /' "$P38_SKIP_LOG" | sort | uniq -c
# A skip is one recorded reason; a test that skipped only a part of its
# work (one of two backends) also counts among the passed.
awk -v s="$skipped" '/^test result:/ { p += $4; f += $6; i += $8 } END { printf "%d passed, %d failed, %d skipped, %d ignored\n", p, f, s, i }' "$log"
exit "$status"
