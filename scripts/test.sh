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

# statsmodels (Python): the independent check of the estimator's fitted models.
if ! python3 -c "import statsmodels" 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check "statsmodels>=0.14" ||
    python3 -m pip install --quiet --disable-pip-version-check --user --break-system-packages "statsmodels>=0.14"
  python3 -c "import statsmodels" || { echo "scripts/test.sh: statsmodels (Python) could not be installed" >&2; exit 1; }
fi

# A real S3-compatible server for the object storage tests (moto's server mode: its S3 part and
# the web server it runs on, not every AWS service), and the deltalake package (delta-rs) as the
# independent reader of the lake in S3.
if ! python3 -c "import moto, flask, flask_cors, boto3" 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check "moto[s3]>=5.2.1" flask flask-cors ||
    python3 -m pip install --quiet --disable-pip-version-check --user --break-system-packages "moto[s3]>=5.2.1" flask flask-cors
  python3 -c "import moto, flask, flask_cors, boto3" || { echo "scripts/test.sh: moto (Python) could not be installed" >&2; exit 1; }
fi
if ! python3 -c "import deltalake, pyarrow" 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check "deltalake>=1.0" pyarrow ||
    python3 -m pip install --quiet --disable-pip-version-check --user --break-system-packages "deltalake>=1.0" pyarrow
  python3 -c "import deltalake, pyarrow" || { echo "scripts/test.sh: deltalake (Python) could not be installed" >&2; exit 1; }
fi

# A real Flight SQL client for the analysts' protocol tests: the ADBC Flight SQL driver (the Go
# core the ODBC driver shares) with its driver manager.
if ! python3 -c "import adbc_driver_flightsql.dbapi, adbc_driver_manager, pyarrow" 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check "adbc-driver-flightsql>=1.5" adbc-driver-manager pyarrow ||
    python3 -m pip install --quiet --disable-pip-version-check --user --break-system-packages "adbc-driver-flightsql>=1.5" adbc-driver-manager pyarrow
  python3 -c "import adbc_driver_flightsql.dbapi" || { echo "scripts/test.sh: adbc-driver-flightsql (Python) could not be installed" >&2; exit 1; }
fi

# Real Postgres clients for the Postgres wire-protocol tests: Debian's psql and psycopg 3.
if ! command -v psql >/dev/null; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql-client >/dev/null
fi
if ! python3 -c "import psycopg" 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check "psycopg[binary]>=3.1" ||
    python3 -m pip install --quiet --disable-pip-version-check --user --break-system-packages "psycopg[binary]>=3.1"
  python3 -c "import psycopg" || { echo "scripts/test.sh: psycopg (Python) could not be installed" >&2; exit 1; }
fi

# A real browser for the report and upload-page tests: Debian's Chromium and ChromeDriver, driven
# by Selenium from Python.
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
fi
if ! python3 -c "import selenium" 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check "selenium>=4.10" ||
    python3 -m pip install --quiet --disable-pip-version-check --user --break-system-packages "selenium>=4.10"
  python3 -c "import selenium" || { echo "scripts/test.sh: Selenium (Python) could not be installed" >&2; exit 1; }
fi

# Quiet, reproducible test runs: the lockfile is respected and nothing is built twice.
export CARGO_TERM_COLOR=never
cargo test --locked --no-fail-fast
