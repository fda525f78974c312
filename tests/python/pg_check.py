"""The Postgres wire protocol against `tip serve --postgres`, with real clients: Debian's psql
(the simple protocol) and psycopg 3 (the extended protocol, text and binary).

Usage: pg_check.py HOST PORT TOKEN_ID TOKEN PARTNER_TOKEN ANSWERS_DIR README

ANSWERS_DIR holds `<relation>.ndjson`, each relation's answer from `tip query --format ndjson`.
Checks, and exits non-zero on the first failure:
- psql: `\\dt` and `\\dv` list every relation, `\\d cases` its columns, a view query answers;
- every relation answers through psycopg (text and binary results) as through `tip query`;
- every README analyst question answers with rows;
- the statements pgjdbc, DBeaver, Metabase and Grafana send when they connect and browse
  (taken from their sources) succeed, and what they read back is right;
- a wrong password, an unknown user and a partner token are refused at the login;
- COPY, DDL, DML and SET of the engine's options are refused through the simple and the
  extended protocol (parameters bound).
Prints one JSON line of what it compared.
"""

import datetime
import decimal
import json
import math
import os
import pathlib
import subprocess
import sys

import psycopg

host, port, token_id, token, partner_token, answers_dir, readme = sys.argv[1:8]
answers_dir = pathlib.Path(answers_dir)


def fail(message):
    print(f"pg_check: {message}", file=sys.stderr)
    sys.exit(1)


def dsn(user, password):
    return f"host={host} port={port} dbname=tip user={user} password={password} sslmode=disable"


def connect(user=token_id, password=token):
    return psycopg.connect(dsn(user, password), autocommit=True)


def psql(*commands):
    args = ["psql", "-X", "-A", "-F", "|", "-v", "ON_ERROR_STOP=1", "-d", dsn(token_id, token)]
    for c in commands:
        args += ["-c", c]
    out = subprocess.run(args, capture_output=True, text=True, env=dict(os.environ, PGCONNECT_TIMEOUT="10"))
    if out.returncode != 0:
        fail(f"psql {commands!r}: {out.stderr.strip()}")
    return out.stdout


def canonical(v):
    if isinstance(v, datetime.datetime):
        if v.tzinfo is not None:
            v = v.astimezone(datetime.timezone.utc).replace(tzinfo=None)
        return v.isoformat()
    if isinstance(v, (datetime.date, datetime.time)):
        return v.isoformat()
    if isinstance(v, decimal.Decimal):
        return canonical(float(v))
    if isinstance(v, float):
        return float(f"{v:.10g}") if math.isfinite(v) else str(v)
    if isinstance(v, str) and len(v) >= 19 and v[4] == "-" and v[10] in "T ":
        try:
            return canonical(datetime.datetime.fromisoformat(v.rstrip("Z")))
        except ValueError:
            return v
    if isinstance(v, list):
        return [canonical(x) for x in v]
    if isinstance(v, dict):
        return {k: canonical(x) for k, x in v.items() if x is not None}
    return v


def rows_of(cur):
    names = [d.name for d in cur.description]
    return sorted(
        json.dumps({k: canonical(v) for k, v in zip(names, r) if v is not None}, sort_keys=True)
        for r in cur.fetchall()
    )


def rows_of_ndjson(path):
    rows = []
    for line in path.read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            rows.append(json.dumps({k: canonical(v) for k, v in r.items() if v is not None}, sort_keys=True))
    return sorted(rows)


relations = sorted(p.stem for p in answers_dir.glob("*.ndjson"))

# psql: the simple protocol and its catalogue queries.
listed = psql("\\dt", "\\dv")
for name in relations:
    if f"|{name}|" not in listed:
        fail(f"psql \\dt/\\dv does not list {name}: {listed}")
described = psql("\\d cases")
for column in ["case_id", "person_id", "registered_on", "reporting_country"]:
    if f"\n{column}|" not in described:
        fail(f"psql \\d cases lacks {column}: {described}")
persons = len(rows_of_ndjson(answers_dir / "persons.ndjson"))
counted = psql("SELECT count(*) AS n FROM persons").splitlines()[1]
if int(counted) != persons:
    fail(f"psql counts {counted} persons, tip query {persons}")

# Every relation through psycopg's extended protocol, text and binary, as tip query answers.
compared = {}
with connect() as conn:
    for name in relations:
        expected = rows_of_ndjson(answers_dir / f"{name}.ndjson")
        for binary in (False, True):
            cur = conn.cursor(binary=binary)
            cur.execute(f"SELECT * FROM {name}")
            got = rows_of(cur)
            if got != expected:
                diff = sorted(set(got) ^ set(expected))[:3]
                fail(f"{name} (binary={binary}): {len(got)} rows against {len(expected)}; differ: {diff}")
        compared[name] = len(expected)

    # A parameter bound through the extended protocol.
    cur = conn.execute("SELECT count(*) FROM cases WHERE reporting_country = %s", ["LT"])
    lt = cur.fetchone()[0]
    cur = conn.execute("SELECT count(*) FROM cases WHERE reporting_country = 'LT'")
    if cur.fetchone()[0] != lt or lt == 0:
        fail(f"a bound parameter answers {lt}")

    # The README's analyst questions.
    text = pathlib.Path(readme).read_text()
    questions = text.split("The questions the partner projects ask")[1].split("\n#")[0]
    blocks = [b.split("```")[0] for b in questions.split("```sql\n")[1:]]
    for sql in blocks:
        cur = conn.execute(sql)
        if not cur.fetchall():
            fail(f"README question answered no rows: {sql}")

# What the tools send, from their sources (pgjdbc, DBeaver, Metabase, Grafana).
startups = 0
with connect() as conn:
    def run(sql, params=None, prepare=None):
        global startups
        startups += 1
        try:
            cur = conn.execute(sql, params, prepare=prepare)
            return cur.fetchall() if cur.description else None
        except psycopg.Error as e:
            fail(f"{sql!r}: {e}")

    # pgjdbc at connection setup, and Connection.isValid() (an empty query).
    run("SET extra_float_digits = 3")
    run("SET application_name = 'PostgreSQL JDBC Driver'")
    run("")
    # DBeaver's PostgreSQL plugin.
    run("SET application_name = 'DBeaver 24.2.3 - Main tip'")
    schema, user = run("SELECT current_schema(),session_user")[0]
    if schema != "lake":
        fail(f"current_schema() is {schema}")
    if not run("SHOW search_path")[0][0].startswith("lake"):
        fail("search_path does not start with the lake's schema")
    run("select * from pg_catalog.pg_settings where name=%s", ["standard_conforming_strings"])
    if "PostgreSQL" not in run("SELECT version()")[0][0]:
        fail("version() does not say PostgreSQL")
    namespaces = run(
        "SELECT n.oid,n.*,d.description FROM pg_catalog.pg_namespace n\n"
        "LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid=n.oid AND d.objsubid=0 AND d.classoid='pg_namespace'::regclass\n"
        " ORDER BY nspname"
    )
    lake_oid = [r[0] for r in namespaces if "lake" in r][0]
    run("SELECT db.oid,db.* FROM pg_catalog.pg_database db WHERE datname=%s", ["tip"])
    tables = run(
        "SELECT c.oid,c.relname,d.description FROM pg_catalog.pg_class c\n"
        "LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid=c.oid AND d.objsubid=0 AND d.classoid='pg_class'::regclass\n"
        "WHERE c.relnamespace=%s AND c.relkind not in ('i','I','c')",
        [lake_oid],
    )
    by_name = {r[1]: r[0] for r in tables}
    if sorted(by_name) != relations:
        fail(f"DBeaver's table list is {sorted(by_name)}")
    columns = run(
        "SELECT c.relname,a.attname,a.atttypid FROM pg_catalog.pg_attribute a\n"
        "INNER JOIN pg_catalog.pg_class c ON (a.attrelid=c.oid)\n"
        "WHERE NOT a.attisdropped AND c.relkind not in ('i','I','c') AND c.oid=%s\n"
        "ORDER BY a.attnum",
        [by_name["cases"]],
    )
    if "case_id" not in [r[1] for r in columns] or any(r[0] != "cases" for r in columns):
        fail(f"DBeaver's columns of cases: {columns}")
    # Metabase: its connection test, its isolation level, its time zone.
    if run("SELECT 1") != [(1,)]:
        fail("SELECT 1")
    run("SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ UNCOMMITTED")
    if run("show timezone;")[0][0] != "UTC":
        fail("show timezone")
    columns = run(
        'SELECT "c"."column_name" AS "name", "c"."ordinal_position" - 1 AS "database-position", '
        '"c"."table_schema" AS "table-schema", "c"."table_name" AS "table-name" '
        'FROM "information_schema"."columns" AS "c" '
        'WHERE ("c"."table_schema" IN (%s)) AND ("c"."table_name" IN (%s)) '
        'ORDER BY "table-schema" ASC, "table-name" ASC, "database-position" ASC',
        ["lake", "cases"],
    )
    if columns[0][0] != "case_id" and "case_id" not in [r[0] for r in columns]:
        fail(f"Metabase's columns of cases: {columns[:3]}")
    # Grafana: version detection, the editor's schema, table and column lists.
    if run("SELECT current_setting('server_version_num')::int/100 as version")[0][0] < 1000:
        fail("server_version_num")
    schemas = [r[0] for r in run(
        "SELECT schema_name FROM information_schema.schemata\n"
        "\t\t WHERE schema_name NOT LIKE 'pg_%' AND schema_name != 'information_schema'\n"
        "\t\t ORDER BY schema_name"
    )]
    if "lake" not in schemas:
        fail(f"Grafana's schemas: {schemas}")
    tables = [r[0] for r in run(
        "SELECT table_name FROM information_schema.tables\n"
        "\t\t WHERE table_schema = %s AND table_type IN ('BASE TABLE', 'VIEW')\n"
        "\t\t ORDER BY table_name",
        ["lake"],
    )]
    if tables != relations:
        fail(f"Grafana's tables: {tables}")
    columns = run(
        "SELECT column_name, data_type\n"
        "\t\t FROM information_schema.columns\n"
        "\t\t WHERE table_schema = %s AND table_name = %s\n"
        "\t\t ORDER BY ordinal_position",
        ["lake", "monthly_trends"],
    )
    if not columns:
        fail("Grafana's columns of monthly_trends")
    run("BEGIN")
    run("SELECT count(*) FROM cases")
    run("COMMIT")
    run("DISCARD ALL")

# Grafana's health check (pgx): a comment alone, as a simple query.
psql("-- ping")
# Several statements in one simple-protocol message run in order; more than 16 queries in one
# message are refused rather than started together.
if psql("SET extra_float_digits = 3; SELECT 41 + 1 AS n; SELECT count(*) AS n FROM cases").splitlines()[-2] != str(
    len(rows_of_ndjson(answers_dir / "cases.ndjson"))
):
    fail("a message of several statements")
many = subprocess.run(
    ["psql", "-X", "-d", dsn(token_id, token), "-c", "SELECT 1;" * 17], capture_output=True, text=True
)
if many.returncode == 0 or "at most 16 queries" not in many.stderr:
    fail(f"17 queries in one message: {many.stdout} {many.stderr}")

# Logins that must fail.
logins = 0
for user, password in [(token_id, token + "x"), ("t000000000000", token), ("analyst", "tip_" + "0" * 64), (token_id, partner_token)]:
    try:
        psycopg.connect(dsn(user, password), connect_timeout=10).close()
        fail(f"the login of {user} with a wrong password was accepted")
    except psycopg.OperationalError as e:
        if "authentication failed" not in str(e):
            fail(f"login refused for another reason: {e}")
        logins += 1
try:
    psycopg.connect(dsn("analyst", partner_token), connect_timeout=10).close()
    fail("a partner token logged in as analyst")
except psycopg.OperationalError:
    logins += 1
# A partner token is a live token, of the wrong role: denied.
try:
    psycopg.connect(dsn("partner", partner_token), connect_timeout=10).close()
    fail("a partner token logged in")
except psycopg.OperationalError as e:
    if "needs an analyst token" not in str(e):
        fail(f"a partner token refused for another reason: {e}")
    logins += 1
# By role name, any analyst token.
with connect("analyst", token) as conn:
    conn.execute("SELECT 1").fetchall()

# Refusals, simple and extended.
refusals = 0
changes = [
    "COPY cases TO '/tmp/tip-copy.csv'",
    "CREATE TABLE x AS SELECT * FROM cases",
    "DROP TABLE cases",
    "INSERT INTO cases SELECT * FROM cases",
    "SET datafusion.execution.memory_pool_size = '64GB'",
    "CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '/etc/passwd'",
]
for sql in changes:
    out = subprocess.run(["psql", "-X", "-d", dsn(token_id, token), "-c", sql], capture_output=True, text=True)
    if out.returncode == 0 or "refused" not in out.stderr:
        fail(f"psql ran {sql!r}: {out.stdout} {out.stderr}")
    refusals += 1
with connect() as conn:
    for sql, params in [
        ("INSERT INTO cases SELECT * FROM cases WHERE case_id = %s", ["x"]),
        ("DELETE FROM cases WHERE case_id = %s", ["x"]),
        ("COPY (SELECT * FROM cases WHERE case_id = %s) TO '/tmp/tip-copy.csv'", ["x"]),
        ("SET datafusion.execution.batch_size = 1", None),
    ]:
        try:
            conn.execute(sql, params, prepare=True)
            fail(f"psycopg ran {sql!r}")
        except psycopg.Error as e:
            if "refused" not in str(e):
                fail(f"{sql!r} failed for another reason: {e}")
            refusals += 1
    try:
        with conn.cursor().copy("COPY (SELECT 1) TO STDOUT") as copy:
            for _ in copy:
                pass
        fail("COPY TO STDOUT ran")
    except psycopg.Error as e:
        if "refused" not in str(e):
            fail(f"COPY TO STDOUT failed for another reason: {e}")
        refusals += 1

print(json.dumps({"relations": compared, "questions": len(blocks), "startup": startups, "logins": logins, "refusals": refusals}))
