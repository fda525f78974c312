#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what the tests need, then runs them.
# Needs the Rust toolchain (cargo) and Python 3 with pip; it installs DuckDB from PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."

# DuckDB (Python) is the independent reader the view tests compare against.
if ! python3 -c "import duckdb" 2>/dev/null; then
  # A Debian system Python refuses plain pip installs (PEP 668); then install for this user.
  python3 -m pip install --quiet --disable-pip-version-check "duckdb>=1.1" ||
    python3 -m pip install --quiet --disable-pip-version-check --user --break-system-packages "duckdb>=1.1"
  python3 -c "import duckdb" || { echo "scripts/test.sh: DuckDB (Python) could not be installed" >&2; exit 1; }
fi

# Quiet, reproducible test runs: the lockfile is respected and nothing is built twice.
export CARGO_TERM_COLOR=never
cargo test --locked --no-fail-fast
