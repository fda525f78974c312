#!/usr/bin/env python3
"""Ingestion throughput of tip against DuckDB doing the nearest job, measured in the same run.

tip: `tip load` of a canonical service log (read CSV, map, validate every field against the
schema, normalise names, HMAC-SHA-256 pseudonyms, commit to Delta as partitioned Parquet).
DuckDB: read the same CSV, compute a SHA-256 person key, drop the identifiers, write Parquet
partitioned the same way. DuckDB does less (no validation, no normalisation, no HMAC, no Delta
log), so the ratio is an upper bound on tip's overhead, not a like-for-like race.

Usage: python3 bench/ingest.py [ROWS]   (needs `cargo build --release` and `pip install duckdb`)
"""
import os, random, shutil, subprocess, sys, tempfile, time

ROWS = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIP = os.environ.get("TIP_BIN", os.path.join(ROOT, "target", "release", "tip"))

import duckdb  # noqa: E402

def make_csv(path, n):
    rnd = random.Random(2025)
    given = ["Mari", "Liis", "Kärt", "Jüri", "Tõnu", "Олена", "Юлія", "Jonas", "Eglė", "Łukasz"]
    family = ["Tamm", "Saar", "Mägi", "Шевченко", "Kazlauskaitė", "Wójcik", "Kask", "Pärn"]
    types = ["psychological", "legal", "social", "shelter", "medical", "interpretation"]
    with open(path, "w", encoding="utf-8") as f:
        f.write("case_number,given_name,family_name,birth_date,service_date,service_type,sessions,hours,recipient_role\n")
        for i in range(n):
            f.write(f"EE-{i % 5000:05d},{rnd.choice(given)},{rnd.choice(family)},20{rnd.randint(5, 17):02d}-0{rnd.randint(1, 9)}-1{rnd.randint(0, 9)},"
                    f"2025-{rnd.randint(1, 12):02d}-{rnd.randint(1, 28):02d},{rnd.choice(types)},{rnd.randint(1, 5)},{rnd.randint(0, 8)}.5,victim\n")

def timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t

def main():
    if not os.path.exists(TIP):
        sys.exit(f"{TIP} not found: run `cargo build --release` first")
    work = tempfile.mkdtemp(prefix="tip-bench-")
    try:
        csv = os.path.join(work, "services.csv")
        make_csv(csv, ROWS)
        key = os.path.join(work, "bench.key")
        subprocess.run([TIP, "key", "new", key], check=True, capture_output=True)

        def run_tip():
            subprocess.run([TIP, "--lake", os.path.join(work, "lake"), "--key-file", key, "load",
                            "--partner", "EE-SVC-01", "--type", "service", csv],
                           check=True, capture_output=True, cwd=ROOT)

        def run_duckdb():
            out = os.path.join(work, "duck")
            con = duckdb.connect()
            con.execute(f"""
                COPY (
                  SELECT sha256(lower(given_name) || '|' || lower(family_name) || '|' || birth_date) AS person_id,
                         CAST(service_date AS DATE) AS service_date, service_type, sessions, hours, recipient_role,
                         'EE' AS reporting_country, strftime(CAST(service_date AS DATE), '%Y-%m') AS period
                  FROM read_csv('{csv}', header = true, all_varchar = true)
                ) TO '{out}' (FORMAT parquet, PARTITION_BY (reporting_country, period))""")
            con.close()

        t_tip = timed(run_tip)
        t_duck = timed(run_duckdb)
        print(f"rows: {ROWS}")
        print(f"tip load:   {t_tip:8.3f} s  ({ROWS / t_tip:,.0f} rows/s)")
        print(f"duckdb:     {t_duck:8.3f} s  ({ROWS / t_duck:,.0f} rows/s)")
        print(f"ratio tip/duckdb: {t_tip / t_duck:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)

if __name__ == "__main__":
    main()
