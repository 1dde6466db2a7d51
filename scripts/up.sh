#!/usr/bin/env bash
# The main job: set up, build and run Project38 (API + workers) on the
# embedded SQLite default. Settings come from P38_* variables or flags,
# e.g. scripts/up.sh --bind 0.0.0.0:3838
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release -p p38-cli
exec target/release/p38 up "$@"
