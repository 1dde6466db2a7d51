#!/usr/bin/env bash
# The whole test suite: set up, then every test of every crate.
# PostgreSQL tests run when P38_TEST_DATABASE_URL is set (they print a
# skip reason otherwise), e.g.
#   P38_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo test --workspace --no-fail-fast "$@"
