#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what the tests need, then runs them.
# Needs the Rust toolchain (cargo) only; everything else is fetched by cargo from crates.io.
set -euo pipefail
cd "$(dirname "$0")/.."

# Quiet, reproducible test runs: the lockfile is respected and nothing is built twice.
export CARGO_TERM_COLOR=never
cargo test --locked --no-fail-fast
