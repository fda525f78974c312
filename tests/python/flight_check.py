"""Arrow Flight SQL against `tip serve`, with a real client (the ADBC Flight SQL driver).

Usage: flight_check.py FLIGHT_ADDR HTTP_ADDR TOKEN ANSWERS_DIR README

ANSWERS_DIR holds `<relation>.ndjson`, each relation's answer from `tip query --format ndjson`.
Checks, and exits non-zero on the first failure:
- browsing: adbc_get_objects lists catalogue `tip`, schema `lake`, every relation (views as
  VIEW), with columns; GetSqlInfo names the server;
- every relation answers the same through Flight SQL (plain and prepared statements), through
  the HTTP API as Arrow, and through `tip query`;
- every README analyst question answers with rows;
- a bad token, a wrong Basic password are refused; Basic with the token as password works;
- COPY, DDL, DML and SET are refused through plain and prepared statements.
Prints one JSON line of what it compared.
"""

import datetime
import decimal
import json
import math
import pathlib
import sys
import urllib.request
import warnings

import adbc_driver_flightsql.dbapi as flight_sql
import adbc_driver_manager
import pyarrow as pa
import pyarrow.ipc

warnings.simplefilter("ignore")

flight_addr, http_addr, token, answers_dir, readme = sys.argv[1:6]
answers_dir = pathlib.Path(answers_dir)


def connect(**db_kwargs):
    return flight_sql.connect(f"grpc://{flight_addr}", db_kwargs=db_kwargs)


def bearer(tok):
    return connect(**{"adbc.flight.sql.authorization_header": f"Bearer {tok}"})


def canonical_value(v):
    if isinstance(v, datetime.datetime):
        if v.tzinfo is not None:
            v = v.astimezone(datetime.timezone.utc).replace(tzinfo=None)
        return v.isoformat()
    if isinstance(v, (datetime.date, datetime.time)):
        return v.isoformat()
    if isinstance(v, decimal.Decimal):
        return canonical_value(float(v))
    if isinstance(v, float):
        return float(f"{v:.10g}") if math.isfinite(v) else str(v)
    if isinstance(v, list):
        return [canonical_value(x) for x in v]
    if isinstance(v, dict):
        return {k: canonical_value(x) for k, x in v.items() if x is not None}
    return v


def canonical_json_value(v):
    # tip's JSON writes timestamps as ISO text, perhaps with a zone; Arrow gives datetimes.
    if isinstance(v, str) and len(v) >= 19 and v[4] == "-" and v[10] == "T":
        t = v.rstrip("Z")
        try:
            parsed = datetime.datetime.fromisoformat(t)
        except ValueError:
            return v
        return canonical_value(parsed)
    if isinstance(v, float):
        return canonical_value(v)
    if isinstance(v, list):
        return [canonical_json_value(x) for x in v]
    if isinstance(v, dict):
        return {k: canonical_json_value(x) for k, x in v.items() if x is not None}
    return v


def rows_of_table(table):
    rows = [
        json.dumps({k: canonical_value(v) for k, v in r.items() if v is not None}, sort_keys=True)
        for r in table.to_pylist()
    ]
    return sorted(rows)


def rows_of_ndjson(path):
    rows = []
    for line in path.read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            rows.append(
                json.dumps(
                    {k: canonical_json_value(v) for k, v in r.items() if v is not None},
                    sort_keys=True,
                )
            )
    return sorted(rows)


def http_arrow(sql):
    req = urllib.request.Request(
        f"http://{http_addr}/api/v1/sql",
        data=json.dumps({"sql": sql}).encode(),
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Accept": "application/vnd.apache.arrow.stream",
        },
        method="POST",
    )
    with urllib.request.urlopen(req) as resp:
        return pa.ipc.open_stream(resp.read()).read_all()


def plain_type(t):
    """The type with dictionaries as their values: the HTTP API's Arrow keeps the lake's
    partition columns (nested ones too) as dictionaries, Flight SQL sends their values."""
    if pa.types.is_dictionary(t):
        return plain_type(t.value_type)
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        f = t.value_field
        return pa.list_(pa.field(f.name, plain_type(f.type), f.nullable))
    if pa.types.is_struct(t):
        return pa.struct([pa.field(f.name, plain_type(f.type), f.nullable) for f in t])
    return t


def plain_schema(schema):
    return [(f.name, str(plain_type(f.type)), f.nullable) for f in schema]


def fail(message):
    print(f"flight_check: {message}", file=sys.stderr)
    sys.exit(1)


def expect_refused(cur, sql, how, words):
    try:
        if how == "prepared":
            cur.adbc_prepare(sql)
            cur.execute(sql)
        else:
            cur.execute(sql)
        cur.fetchall()
    except adbc_driver_manager.Error as e:
        text = str(e)
        if not any(w in text for w in words):
            fail(f"{how} {sql!r} refused for another reason: {text}")
        return text
    finally:
        cur.close()
    fail(f"{how} {sql!r} was not refused")


conn = bearer(token)
relations = sorted(p.stem for p in answers_dir.glob("*.ndjson"))

# Browsing the lake, as DBeaver's and Tableau's JDBC driver does.
objects = conn.adbc_get_objects(depth="all").read_all().to_pylist()
catalogs = {o["catalog_name"]: o for o in objects}
if list(catalogs) != ["tip"]:
    fail(f"catalogues {list(catalogs)}")
schemas = {s["db_schema_name"]: s for s in catalogs["tip"]["catalog_db_schemas"]}
if list(schemas) != ["lake"]:
    fail(f"schemas {list(schemas)}")
tables = {t["table_name"]: t for t in schemas["lake"]["db_schema_tables"]}
for name in relations:
    if name not in tables:
        fail(f"{name} is not listed by adbc_get_objects")
    if not tables[name]["table_columns"]:
        fail(f"{name} is listed without its columns")
views = sorted(n for n, t in tables.items() if t["table_type"] == "VIEW")
forbidden = [n for n in tables if "token" in n or "secret" in n or n in ("key", "keys", "audit")]
if forbidden:
    fail(f"listed: {forbidden}")
table_types = conn.adbc_get_table_types()
if sorted(table_types) != ["TABLE", "VIEW"]:
    fail(f"table types {table_types}")
info = conn.adbc_get_info()
if info.get("vendor_name") != "tip":
    fail(f"GetSqlInfo: {info}")

# Every relation, through every door.
compared = {}
for name in relations:
    sql = f"SELECT * FROM {name}"
    cur = conn.cursor()
    cur.execute(sql)
    plain = cur.fetch_arrow_table()
    cur = conn.cursor()
    cur.adbc_prepare(sql)
    cur.execute(sql)
    prepared = cur.fetch_arrow_table()
    via_http = http_arrow(sql)
    if plain_schema(plain.schema) != plain_schema(via_http.schema):
        fail(f"{name}: Flight schema {plain.schema} != HTTP schema {via_http.schema}")
    flight_rows = rows_of_table(plain)
    if rows_of_table(prepared) != flight_rows:
        fail(f"{name}: prepared statement answers differ")
    if rows_of_table(via_http) != flight_rows:
        fail(f"{name}: Flight SQL and HTTP answers differ")
    cli_rows = rows_of_ndjson(answers_dir / f"{name}.ndjson")
    if cli_rows != flight_rows:
        diff = next((a, b) for a, b in zip(cli_rows + [None], flight_rows + [None]) if a != b)
        fail(f"{name}: Flight SQL and tip query answers differ ({len(flight_rows)} and {len(cli_rows)} rows; first difference {diff})")
    compared[name] = len(flight_rows)

# The README's analyst questions.
text = pathlib.Path(readme).read_text()
questions = text.split("The questions the partner projects ask")[1].split("\n#")[0]
blocks = [b.split("```")[0] for b in questions.split("```sql\n")[1:]]
for sql in blocks:
    cur = conn.cursor()
    cur.execute(sql.strip().rstrip(";"))
    if cur.fetch_arrow_table().num_rows == 0:
        fail(f"README question answered nothing: {sql}")

# Tokens: bearer and Basic (the token as password, as JDBC and ODBC send it).
for bad in (lambda: bearer("tip_notatoken"), lambda: connect(username="analyst", password="tip_wrong")):
    try:
        c = bad()
        c.cursor().execute("SELECT 1")
        fail("a bad token was accepted")
    except adbc_driver_manager.Error as e:
        if "UNAUTHENTICATED" not in str(e) and "Unauthenticated" not in str(e):
            fail(f"a bad token refused for another reason: {e}")
basic = connect(username="analyst", password=token)
cur = basic.cursor()
cur.execute("SELECT count(*) AS n FROM cases")
if cur.fetchall()[0][0] != compared.get("cases", -1):
    fail("Basic handshake: a different count of cases")

# Nothing changes the lake, by any statement path.
refusals = 0
for sql in [
    "COPY cases TO '/tmp/tip-flight-copy.csv'",
    "CREATE TABLE copied AS SELECT * FROM cases",
    "CREATE VIEW v AS SELECT 1",
    "INSERT INTO cases SELECT * FROM cases",
    "DROP TABLE cases",
    "SET datafusion.execution.batch_size = 1",
]:
    for how in ("plain", "prepared"):
        expect_refused(conn.cursor(), sql, how, ["refused", "read-only", "PermissionDenied"])
        refusals += 1
if pathlib.Path("/tmp/tip-flight-copy.csv").exists():
    fail("COPY wrote a file")

print(json.dumps({"relations": compared, "views": views, "questions": len(blocks), "refusals": refusals}))
