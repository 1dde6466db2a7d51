#!/usr/bin/env bash
# The whole test suite: set up, then every test of every crate, then one
# closing line with the totals over all test binaries.
# PostgreSQL tests run when P38_TEST_DATABASE_URL is set (they print a
# skip reason otherwise), e.g.
#   P38_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --no-fail-fast "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
# The HTTP API and CLI suites once more, with the server on PostgreSQL.
if [ -n "${P38_TEST_DATABASE_URL:-}" ]; then
  echo "== the API and CLI end-to-end suites again, on PostgreSQL =="
  P38_E2E_BACKEND=postgres cargo test -p p38-cli --test api --test cli --no-fail-fast "$@" 2>&1 | tee -a "$log"
  pg_status=${PIPESTATUS[0]}
  [ "$status" -ne 0 ] || status=$pg_status
else
  echo "SKIP the API and CLI suites on PostgreSQL: P38_TEST_DATABASE_URL is not set" | tee -a "$log"
fi
set -e
grep -E '^SKIP' "$log" | sort | uniq -c | sed 's/^/skipped: /' || true
awk '/^test result:/ { p += $4; f += $6; i += $8 } END { printf "%d passed, %d failed, %d skipped\n", p, f, i }' "$log"
exit "$status"
