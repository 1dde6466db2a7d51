#!/usr/bin/env bash
# Installs what Project38 needs on a Debian machine, idempotently:
# bubblewrap (the sandbox), python3 (agents), ruff (agent validation), and
# for the tests Python's own test suite (libpython3.X-testsuite, run inside
# the sandbox by crates/p38-sandbox/tests/kernel.rs).
# Runs as root, or through sudo when it is available.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "setup: not root and no sudo: install bubblewrap and python3 yourself" >&2
  fi
fi

need=()
command -v bwrap >/dev/null 2>&1 || need+=(bubblewrap)
[ -x /usr/bin/python3 ] || need+=(python3)
if [ ${#need[@]} -gt 0 ] && { [ "$(id -u)" -eq 0 ] || [ -n "$SUDO" ]; }; then
  echo "setup: installing ${need[*]}" >&2
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

# The standard library's test suite of the interpreter agents run (after
# python3 is there, since the package name carries its version).
pyver="$(/usr/bin/python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || true)"
if [ -n "$pyver" ] && [ ! -d "/usr/lib/python$pyver/test/test_json" ] \
  && { [ "$(id -u)" -eq 0 ] || [ -n "$SUDO" ]; }; then
  echo "setup: installing libpython$pyver-testsuite" >&2
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "libpython$pyver-testsuite" >/dev/null \
    || echo "setup: libpython$pyver-testsuite could not be installed; the sandbox's standard-library test will say it is skipped" >&2
fi

# ruff validates generated agents; the factory says when it is absent.
# pip installs it: make sure pip itself is there (Debian's python3-pip).
if ! command -v ruff >/dev/null 2>&1 && ! python3 -m pip --version >/dev/null 2>&1 \
  && { [ "$(id -u)" -eq 0 ] || [ -n "$SUDO" ]; }; then
  echo "setup: installing python3-pip (to install ruff)" >&2
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-pip >/dev/null \
    || echo "setup: python3-pip could not be installed" >&2
fi
if ! command -v ruff >/dev/null 2>&1; then
  python3 -m pip install --quiet --disable-pip-version-check ruff 2>/dev/null \
    || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages ruff 2>/dev/null \
    || echo "setup: could not install ruff with pip; the lint stage will report itself skipped" >&2
fi
