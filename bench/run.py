#!/usr/bin/env python3
"""tip's benchmark harness: where tip stands against DuckDB doing the same jobs, in one run.

    python3 bench/run.py            # the full run (about 35 minutes on two cores)
    python3 bench/run.py --quick    # small inputs, a few minutes: checks the harness itself

Builds `tip` in release mode (unless TIP_BIN names a binary), installs the DuckDB Python package
when it is missing, then measures, each in the same run on the same machine:

1. ingest: `tip load` of canonical case CSVs (names, birth dates, case and document numbers to
   pseudonymise) against DuckDB reading the same CSV, SHA-256-hashing the same identifier fields
   after lower-casing and stripping accents, and writing zstd Parquet partitioned the same way;
   and against a plain DuckDB CSV -> Parquet conversion with no hashing (the floor). Rows/s,
   ratios and the peak RSS of each process. Then `tip load` alone of a 40 M-row register
   (5.2 GiB, --big-rows): its time and peak RSS, which must not grow with the input.
2. queries: `tip generate` partner files, `tip ingest` them into a lake, `tip export` it; then
   every analyst view and every README question, tip against DuckDB on the exported Parquet
   (the views written independently in DuckDB SQL, tests/duckdb/views.py), per query and the
   geometric mean; and `tip query`'s fixed start-up cost on its own.
3. extract: `tip extract` of the lake's busiest month: time and peak RSS.
4. generate: `tip generate` at that scale.

Prints a markdown table and writes it, with a description of the machine, to bench/results.md
(or --out). Not part of the test suite: nothing here asserts a time.
"""
import argparse, csv, datetime, io, importlib.util, json, math, os, platform, random, shutil, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PARTNER, COUNTRY = "EE-POL-01", "EE"


class Failed(Exception):
    pass


def sh(cmd, cwd=None, stdout=subprocess.DEVNULL, env=None):
    """Runs a command; returns (seconds, peak RSS in MiB of that process). Raises Failed with
    the last line of its stderr when it fails."""
    err = tempfile.TemporaryFile()
    t = time.perf_counter()
    p = subprocess.Popen(cmd, cwd=cwd, stdout=stdout, stderr=err, env=env)
    _, status, usage = os.wait4(p.pid, 0)
    seconds = time.perf_counter() - t
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        err.seek(0)
        lines = err.read().decode(errors="replace").strip().splitlines() or [""]
        why = next((l for l in reversed(lines) if "Error" in l or "error" in l), lines[-1])
        raise Failed(f"exit {p.returncode} after {seconds:.1f} s, peak {usage.ru_maxrss // 1024} MiB: {why.strip()[:240]}")
    return seconds, usage.ru_maxrss / 1024


def best(n, fn):
    """The fastest of n runs (seconds, and the peak RSS of that run); (None, why) if one fails."""
    try:
        return min((fn() for _ in range(n)), key=lambda r: r[0])
    except Failed as e:
        return (None, str(e))


def duck(code, *args):
    """Python code run with DuckDB in a child process, so its time and memory are its own."""
    return sh([sys.executable, "-c", "import sys, duckdb\n" + code, *map(str, args)])


# ---------------------------------------------------------------------------------------- ingest

GIVEN = ["Mari", "Liis", "Kärt", "Jüri", "Tõnu", "Олена", "Юлія", "Jonas", "Eglė", "Łukasz", "Anna", "Jānis", "Ieva", "Søren", "Åsa"]
FAMILY = ["Tamm", "Saar", "Mägi", "Шевченко", "Kazlauskaitė", "Wójcik", "Kask", "Pärn", "Bērziņš", "Nowak", "Østergaard", "Petrauskas"]
EXPLOITATION = ["sexual", "online_sexual", "labour", "begging", "criminality", "sexual;online_sexual", "labour;begging", ""]
CASE_COLUMNS = "case_number,given_name,family_name,birth_date,document_number,document_country,registered_on,gender,citizenship,status,identified_by,exploitation,recruitment,exploitation_country,unaccompanied,migration_status,consent"


def make_cases(path, rows, seed=2026):
    """A canonical case register of `rows` rows, every row valid, every case number unique."""
    rnd = random.Random(seed)
    genders, statuses = ["female", "male", "unknown"], ["presumed", "identified"]
    countries = ["EE", "LT", "LV", "UA", "PL", "NO", "FI"]
    by = ["police", "ngo", "child_protection", "border_guard", "helpline"]
    recruit = ["online_social_network", "job_offer", "family", "friend_or_acquaintance", ""]
    with open(path, "w", encoding="utf-8") as f:
        f.write(CASE_COLUMNS + "\n")
        chunk = []
        for i in range(rows):
            y, m, d = rnd.randint(2020, 2025), rnd.randint(1, 12), rnd.randint(1, 28)
            by_year = y - rnd.randint(3, 17)
            chunk.append(
                f"EE-{i:09d},{rnd.choice(GIVEN)},{rnd.choice(FAMILY)},{by_year}-{rnd.randint(1, 12):02d}-{rnd.randint(1, 28):02d},"
                f"AB{rnd.randint(0, 9999999):07d},{rnd.choice(countries)},{y}-{m:02d}-{d:02d},{rnd.choice(genders)},"
                f"{rnd.choice(countries)},{rnd.choice(statuses)},{rnd.choice(by)},{rnd.choice(EXPLOITATION)},"
                f"{rnd.choice(recruit)},{rnd.choice(countries)},{rnd.choice(['true', 'false'])},national,true\n")
            if len(chunk) == 20000:
                f.write("".join(chunk))
                chunk.clear()
        f.write("".join(chunk))


DUCK_HASHED = r"""
csv, out, partner, country = sys.argv[1:5]
con = duckdb.connect()
norm = lambda c: f"lower(strip_accents(trim({c})))"
con.execute(f'''
COPY (
  SELECT sha256('case_id|' || '{partner}|' || {norm('case_number')}) AS case_id,
         sha256('person_id|' || {norm('family_name')} || '|' || {norm('given_name')} || '|' || birth_date) AS person_id,
         sha256('document_id|' || upper(document_country) || '|' || {norm('document_number')}) AS document_id,
         CAST(registered_on AS DATE) AS registered_on, gender,
         date_diff('year', CAST(birth_date AS DATE), CAST(registered_on AS DATE)) AS age,
         citizenship, status, identified_by,
         string_split(NULLIF(exploitation, ''), ';') AS exploitation,
         string_split(NULLIF(recruitment, ''), ';') AS recruitment,
         exploitation_country, CAST(unaccompanied AS BOOLEAN) AS unaccompanied, migration_status,
         CAST(consent AS BOOLEAN) AS consent,
         '{partner}' AS partner, '{country}' AS reporting_country,
         strftime(CAST(registered_on AS DATE), '%Y-%m') AS period
  FROM read_csv('{csv}', header = true, all_varchar = true)
) TO '{out}' (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (reporting_country, period))''')
"""

DUCK_PLAIN = r"""
csv, out = sys.argv[1:3]
duckdb.connect().execute(f"COPY (SELECT * FROM read_csv('{csv}', header = true)) TO '{out}' (FORMAT parquet, COMPRESSION zstd)")
"""


def bench_key(tip, work):
    """The network key every bench load uses (made once)."""
    key = os.path.join(work, "bench.key")
    if not os.path.exists(key):
        sh([tip, "key", "new", key])
    return key


def load_cmd(tip, key, lake, csv):
    """`tip load` of a case register into a fresh lake."""
    shutil.rmtree(lake, ignore_errors=True)
    return [tip, "--lake", lake, "--key-file", key, "load", "--partner", PARTNER, "--type", "case", csv]


def changed_copy(src, dst):
    """The same register re-exported a month later: every case number again, every status
    changed (presumed <-> identified), so every record is replaced."""
    if os.path.exists(dst):
        return dst
    flip = {"presumed": "identified", "identified": "presumed"}
    with open(src, encoding="utf-8") as f, open(dst + ".part", "w", encoding="utf-8") as out:
        out.write(f.readline())
        for line in f:
            cols = line.rstrip("\n").split(",")
            cols[9] = flip.get(cols[9], cols[9])
            out.write(",".join(cols) + "\n")
    os.replace(dst + ".part", dst)
    return dst


def bench_ingest(tip, work, sizes, rows_out):
    key = bench_key(tip, work)
    for n in sizes:
        csv = os.path.join(work, f"cases-{n}.csv")
        if not os.path.exists(csv):
            make_cases(csv, n)
        mib = os.path.getsize(csv) / 2**20

        def tip_load():
            return sh(load_cmd(tip, key, os.path.join(work, f"lake-load-{n}"), csv), cwd=ROOT)

        def duck_hashed():
            out = os.path.join(work, f"duck-{n}")
            shutil.rmtree(out, ignore_errors=True)
            return duck(DUCK_HASHED, csv, out, PARTNER, COUNTRY)

        def duck_plain():
            out = os.path.join(work, f"plain-{n}.parquet")
            if os.path.exists(out):
                os.remove(out)
            return duck(DUCK_PLAIN, csv, out)

        t, t_rss = tip_load()
        # The partner's next monthly full re-export, loaded onto the lake the first load made.
        again = changed_copy(csv, os.path.join(work, f"cases-{n}-again.csv"))
        lake = os.path.join(work, f"lake-load-{n}")
        r, r_rss = sh([tip, "--lake", lake, "--key-file", key, "load", "--partner", PARTNER, "--type", "case", again], cwd=ROOT)
        d, d_rss = duck_hashed()
        p, p_rss = duck_plain()
        rows_out.append({"rows": n, "mib": mib, "tip": (t, t_rss), "again": (r, r_rss), "duckdb": (d, d_rss), "plain": (p, p_rss)})
        print(f"ingest {n:>9} rows: tip {t:.1f} s, re-submitted {r:.1f} s, DuckDB hashed {d:.1f} s, plain {p:.1f} s", file=sys.stderr)


def big_cases(work, rows):
    """A register of `rows` rows (a multiple of 5 M): copies of the 5 M one, each copy's case
    numbers made distinct (EE-... becomes E1-..., E2-...), written with a stream copy."""
    base = os.path.join(work, "cases-5000000.csv")
    if not os.path.exists(base):
        make_cases(base, 5000000)
    path = os.path.join(work, f"cases-{rows}.csv")
    if os.path.exists(path):
        return path
    with open(base, "rb") as src, open(path + ".part", "wb") as out:
        header = src.readline()
        out.write(header)
        for copy in range(1, rows // 5000000 + 1):
            src.seek(len(header))
            prefix = f"E{copy}-".encode()
            for chunk in iter(lambda: src.readlines(1 << 24), []):
                out.write(b"".join(prefix + line[3:] for line in chunk))
    os.replace(path + ".part", path)
    return path


def bench_big(tip, work, rows, out):
    """`tip load` of one big register, tip alone: does its peak RSS stay flat?"""
    csv = big_cases(work, rows)
    lake = os.path.join(work, "lake-big")
    t, rss = sh(load_cmd(tip, bench_key(tip, work), lake, csv), cwd=ROOT)
    shutil.rmtree(lake, ignore_errors=True)
    out.update(rows=rows, gib=os.path.getsize(csv) / 2**30, tip=(t, rss))
    print(f"big load {rows} rows: {t:.1f} s, peak RSS {rss:.0f} MiB", file=sys.stderr)


# --------------------------------------------------------------------------------------- queries

def tip_lake_dir(work, gen):
    """A directory to run tip in: the repository's schemas and pipelines, `sample-data` being the
    generated files, and its own lake and key under `.tip/`."""
    d = os.path.join(work, "hub")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    for name in ["schemas", "pipelines"]:
        os.symlink(os.path.join(ROOT, name), os.path.join(d, name))
    os.symlink(gen, os.path.join(d, "sample-data"))
    return d


def load_views():
    spec = importlib.util.spec_from_file_location("duck_views", os.path.join(ROOT, "tests", "duckdb", "views.py"))
    views = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(views)
    return views.QUERIES


def readme_questions():
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    part = text.split("The questions the partner projects ask")[1].split("\n#")[0]
    return [b.split("```")[0].strip().rstrip(";") for b in part.split("```sql\n")[1:]]


DUCK_QUERY = r"""
import importlib.util
import json
export, population, views_py, sql, define = sys.argv[1:6]
spec = importlib.util.spec_from_file_location("v", views_py)
v = importlib.util.module_from_spec(spec); spec.loader.exec_module(v)
con = v.connect(export, population)
if define != "0":
    # The views under tip's column names (tests/duckdb/views.py leaves some columns unnamed:
    # the tests compare rows by position), so that a question may name any column.
    columns = json.loads(define)
    for name, q in v.QUERIES.items():
        names = ", ".join('"' + c.replace('"', '""') + '"' for c in columns[name])
        con.execute(f"CREATE VIEW {name} ({names}) AS {q}")
con.execute(f"COPY ({sql}) TO '/dev/null' (FORMAT csv)")
"""


def tip_sql_file(work, sql):
    """The SQL in a file for `tip query -f` (a question may begin with a `--` comment, which an
    argument cannot)."""
    path = os.path.join(work, "query.sql")
    with open(path, "w", encoding="utf-8") as f:
        f.write(sql)
    return path


def tip_query(tip, work, sql):
    return [tip, "query", "--format", "csv", "-f", tip_sql_file(work, sql)]


def tip_scalar(tip, hub, sql):
    out = subprocess.run(tip_query(tip, hub, sql), cwd=hub, check=True, capture_output=True, text=True).stdout
    return out.strip().splitlines()[1]


def tip_columns(tip, hub, view):
    """The column names of one of tip's views (planned, not run)."""
    out = subprocess.run(tip_query(tip, hub, f"DESCRIBE {view}"), cwd=hub, check=True, capture_output=True, text=True).stdout
    return [r[0] for r in list(csv.reader(io.StringIO(out)))[1:]]


def bench_queries(tip, work, persons, repeat, res):
    gen = os.path.join(work, f"gen-{persons}")
    shutil.rmtree(gen, ignore_errors=True)
    res["generate"] = sh([tip, "generate", "--out", gen, "--rows", str(persons), "--seed", "7"])
    hub = tip_lake_dir(work, gen)
    res["lake_ingest"] = sh([tip, "ingest"], cwd=hub)
    tables = ["cases", "services", "referrals", "events", "outcomes"]
    counts = {t: int(tip_scalar(tip, hub, f"SELECT count(*) FROM {t}")) for t in tables}
    res["lake_rows"] = counts
    exp = os.path.join(work, "export")
    shutil.rmtree(exp, ignore_errors=True)
    res["export"] = sh([tip, "export", "--out", exp], cwd=hub)
    population = os.path.join(ROOT, "schemas", "population.csv")
    views_py = os.path.join(ROOT, "tests", "duckdb", "views.py")
    res["startup"] = best(repeat, lambda: sh(tip_query(tip, hub, "SELECT 1"), cwd=hub))
    res["duck_startup"] = best(repeat, lambda: duck(DUCK_QUERY, exp, population, views_py, "SELECT 1", "0"))
    rows = []
    views = load_views()
    jobs = [(name, f"SELECT * FROM {name}", q, "0") for name, q in views.items()]
    columns = json.dumps({name: tip_columns(tip, hub, name) for name in views})
    jobs += [(f"README question {i + 1}", q, q, columns) for i, q in enumerate(readme_questions())]
    for name, tip_sql, duck_sql, define in jobs:
        t = best(repeat, lambda: sh(tip_query(tip, hub, tip_sql), cwd=hub))
        d = best(repeat, lambda: duck(DUCK_QUERY, exp, population, views_py, duck_sql, define))
        rows.append((name, t, d))
        print(f"query {name}: tip {t}, DuckDB {d}", file=sys.stderr)
    res["queries"] = rows
    month = tip_scalar(tip, hub, "SELECT period FROM cases GROUP BY period ORDER BY count(*) DESC, period LIMIT 1")
    month_rows = int(tip_scalar(tip, hub, f"SELECT count(*) FROM cases WHERE period = '{month}'"))
    out = os.path.join(work, "extract")
    shutil.rmtree(out, ignore_errors=True)
    res["extract"] = (month, month_rows, best(1, lambda: sh([tip, "extract", "--month", month, "--out", out], cwd=hub)))


# ---------------------------------------------------------------------------------------- report

def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
    mem = next((int(l.split()[1]) // 1024 for l in open("/proc/meminfo") if l.startswith("MemTotal")), 0)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    import duckdb
    return (f"{os.cpu_count()} cores ({cpu}), {mem // 1024} GiB RAM, {platform.system()} {platform.release()}; "
            f"tip {commit} (release build), DuckDB {duckdb.__version__}, Python {platform.python_version()}; "
            f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC")


def report(ingest, q, big=None):
    out = [f"Machine: {machine()}", ""]
    if ingest:
        out += ["### Ingest: canonical case CSV (case number, names, birth date, document to pseudonymise)", "",
                "| rows | CSV MiB | `tip load` | rows/s | peak RSS | DuckDB hashed | rows/s | peak RSS | plain DuckDB | peak RSS | tip ÷ DuckDB hashed (throughput) | tip ÷ plain (time) |",
                "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in ingest:
            (t, tr), (d, dr), (p, pr) = r["tip"], r["duckdb"], r["plain"]
            n = r["rows"]
            out.append(f"| {n:,} | {r['mib']:.0f} | {t:.1f} s | {n / t:,.0f} | {tr:.0f} MiB | {d:.1f} s | {n / d:,.0f} | {dr:.0f} MiB | {p:.1f} s | {pr:.0f} MiB | {d / t:.2f}× | {t / p:.2f}× |")
        out += ["", "Re-submission: the same register sent again with every record changed (a monthly full re-export), `tip load` onto the lake of the first load: every record replaced.", "",
                "| rows | first load | re-submission | peak RSS | re-submission ÷ first load (time) |", "|---:|---:|---:|---:|---:|"]
        for r in ingest:
            (t, _), (a, ar) = r["tip"], r["again"]
            out.append(f"| {r['rows']:,} | {t:.1f} s | {a:.1f} s | {ar:.0f} MiB | {a / t:.2f}× |")
        out.append("")
    if big:
        (t, rss), n = big["tip"], big["rows"]
        out += [f"Big load: `tip load` of a {big['gib']:.1f} GiB register of {n:,} rows (copies of the 5 M one, case numbers made distinct): "
                f"{t:.1f} s ({n / t:,.0f} rows/s), peak RSS {rss:.0f} MiB.", ""]
    if q.get("failed"):
        out += ["### Queries", "", f"Not measured: a step before the queries failed: {q['failed']}", ""]
    elif q:
        total = sum(q["lake_rows"].values())
        g, gr = q["generate"]
        li, lr = q["lake_ingest"]
        out += [f"### Queries on a generated lake of {total:,} rows ({', '.join(f'{k} {v:,}' for k, v in q['lake_rows'].items())})", "",
                f"`tip generate` {g:.1f} s (peak RSS {gr:.0f} MiB); `tip ingest` of it {li:.1f} s ({total / li:,.0f} rows/s, peak RSS {lr:.0f} MiB); `tip export` {q['export'][0]:.1f} s.",
                f"Start-up: `tip query \"SELECT 1\"` {q['startup'][0]:.2f} s; DuckDB (Python, import, views over the export) {q['duck_startup'][0]:.2f} s. Both included below.", "",
                "| query | tip | peak RSS | DuckDB | peak RSS | tip ÷ DuckDB (time) |", "|---|---:|---:|---:|---:|---:|"]
        ratios, failures = [], []
        cell = lambda r: (f"{r[0]:.2f} s", f"{r[1]:.0f} MiB") if r[0] is not None else ("failed", "")
        for name, t, d in q["queries"]:
            (ts, tr), (ds, dr) = cell(t), cell(d)
            ratio = ""
            if t[0] is not None and d[0] is not None:
                ratios.append(t[0] / d[0])
                ratio = f"{t[0] / d[0]:.2f}×"
            failures += [f"- {name}, {side}: {r[1]}" for side, r in (("tip", t), ("DuckDB", d)) if r[0] is None]
            out.append(f"| {name} | {ts} | {tr} | {ds} | {dr} | {ratio} |")
        gm = math.exp(sum(map(math.log, ratios)) / len(ratios)) if ratios else float("nan")
        out += [f"| **geometric mean** ({len(ratios)} queries both answered) | | | | | **{gm:.2f}×** |", ""]
        if failures:
            out += ["Failed:", *failures, ""]
        month, mrows, (e, er) = q["extract"]
        took = f"{e:.1f} s, peak RSS {er:.0f} MiB" if e is not None else er
        out += ["### Extract", "", f"`tip extract --month {month}` (the busiest month, {mrows:,} cases): {took}.", ""]
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small inputs: 100 k rows to ingest, a lake of about 58 k rows")
    ap.add_argument("--ingest-rows", default="1000000,5000000", help="comma-separated CSV sizes (rows)")
    ap.add_argument("--big-rows", type=int, default=40000000, help="rows of the big register loaded by tip alone to check that its peak RSS stays flat (a multiple of 5 M; 40 M is 5.2 GiB of CSV; 0 skips it)")
    ap.add_argument("--persons", type=int, default=2100000, help="persons for `tip generate` (about 4.8 rows each across the record types: the default makes a lake of about 10 M rows)")
    ap.add_argument("--repeat", type=int, default=2, help="runs per query; the fastest counts")
    ap.add_argument("--only", default="ingest,queries", help="ingest, queries (queries includes extract and generate)")
    ap.add_argument("--work", default=os.path.join(ROOT, "target", "bench"), help="scratch directory (inputs are kept between runs)")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results.md"))
    a = ap.parse_args()
    if a.quick:
        a.ingest_rows, a.persons, a.repeat, a.big_rows = "100000", 12000, 1, 0
    tip = os.environ.get("TIP_BIN") and os.path.abspath(os.environ["TIP_BIN"])
    if not tip:
        subprocess.run(["cargo", "build", "--release", "--locked"], cwd=ROOT, check=True)
        tip = os.path.join(ROOT, "target", "release", "tip")
    try:
        import duckdb  # noqa: F401
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "duckdb"], check=True)
    os.makedirs(a.work, exist_ok=True)
    only = set(a.only.split(","))
    ingest, q, big = [], {}, {}
    if "ingest" in only:
        bench_ingest(tip, a.work, [int(x) for x in a.ingest_rows.split(",")], ingest)
        if a.big_rows:
            bench_big(tip, a.work, a.big_rows, big)
    if "queries" in only:
        try:
            bench_queries(tip, a.work, a.persons, a.repeat, q)
        except Failed as e:
            # What was measured before the failure is still reported (the ingest figures).
            print(f"queries: {e}", file=sys.stderr)
            q = {"failed": str(e)}
    text = report(ingest, q, big)
    print(text)
    with open(a.out, "w", encoding="utf-8") as f:
        f.write("# Latest benchmark results\n\nWritten by `python3 bench/run.py" + (" --quick" if a.quick else "") + "`.\n\n" + text)


if __name__ == "__main__":
    main()
