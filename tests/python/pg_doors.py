"""The Postgres door under a dashboard's load and under attack, with psycopg 3 and plain sockets.

Usage: pg_doors.py HOST PORT TOKEN_ID TOKEN SERVER_PID CHECK

CHECKs (each prints one JSON line of what it measured, exits non-zero on a failure):
- statements: 1 000 statements over one connection, then 1 000 over 20 connections; the
  server's resident memory before and after each run (after a warm-up).
- giants: 64 sockets that never log in, each declaring a 1 GiB message after its startup and
  sending 1 MiB of it, while a real client logs in again and again (each login timed); then a
  logged-in client sending a 4 MiB statement.
- prepared: named prepared statements up to the connection's bound, the next refused,
  `DEALLOCATE ALL` frees them, `DEALLOCATE name` of an unknown name fails as in Postgres.
"""

import json
import socket
import struct
import sys
import threading
import time

import psycopg

host, port, token_id, token, pid, check = sys.argv[1:7]
port = int(port)


def fail(message):
    print(f"pg_doors: {message}", file=sys.stderr)
    sys.exit(1)


def connect():
    return psycopg.connect(
        f"host={host} port={port} dbname=tip user={token_id} password={token} sslmode=disable",
        autocommit=True,
        connect_timeout=10,
    )


def rss_mib():
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    fail("no VmRSS")


def statements():
    def run(conn, n, i0):
        with conn.cursor() as cur:
            for i in range(n):
                # Both protocols: the simple one (no parameters) and the extended one.
                if i % 2:
                    cur.execute("SELECT count(*) FROM cases WHERE period > %s", (f"20{i % 30:02d}",))
                else:
                    cur.execute(f"SELECT {i0 + i} AS n, count(*) FROM cases WHERE reporting_country = 'LT'")
                cur.fetchall()

    with connect() as conn:
        run(conn, 50, 0)  # warm-up: caches, allocator arenas
    time.sleep(0.5)
    out = {"before": rss_mib()}
    with connect() as conn:
        run(conn, 1000, 0)
    time.sleep(0.5)
    out["after_one"] = rss_mib()
    errors = []

    def worker(k):
        try:
            with connect() as conn:
                run(conn, 50, k * 1000)
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        fail(f"{len(errors)} connections failed: {errors[0]}")
    time.sleep(0.5)
    out["after_twenty"] = rss_mib()
    print(json.dumps(out))


def startup_message(user):
    body = struct.pack("!I", 196608) + b"user\0" + user.encode() + b"\0database\0tip\0\0"
    return struct.pack("!I", len(body) + 4) + body


def giants():
    stop = threading.Event()
    closed = []
    sent = []

    def giant():
        s = socket.create_connection((host, port), timeout=30)
        try:
            s.sendall(startup_message(token_id))
            # The server asks for SASL; the client answers with a 1 GiB SASL message instead.
            s.recv(4096)
            s.sendall(b"p" + struct.pack("!I", 1 << 30))
            chunk = b"x" * 65536
            n = 0
            while n < (1 << 20) and not stop.is_set():
                s.sendall(chunk)
                n += len(chunk)
            sent.append(n)
            # The server ends the connection: recv returns b"" (or the connection resets).
            s.settimeout(10)
            while s.recv(65536):
                pass
            closed.append(True)
        except (ConnectionResetError, BrokenPipeError):
            closed.append(True)
        except OSError as e:
            closed.append(repr(e))
        finally:
            s.close()

    base = rss_mib()
    threads = [threading.Thread(target=giant) for _ in range(64)]
    for t in threads:
        t.start()
    logins = []
    peak = base
    while any(t.is_alive() for t in threads):
        t0 = time.monotonic()
        with connect() as conn:
            conn.execute("SELECT 1").fetchall()
        logins.append(time.monotonic() - t0)
        peak = max(peak, rss_mib())
    for t in threads:
        t.join()
    peak = max(peak, rss_mib())
    not_closed = [c for c in closed if c is not True]
    if not_closed:
        fail(f"{len(not_closed)} giant connections were not ended: {not_closed[0]}")
    # Logged in: a statement of 4 MiB (over twice the longest the gate reads) is refused at its
    # header with an error naming the limit.
    refused = None
    try:
        with connect() as conn:
            conn.execute("SELECT '" + "x" * (4 << 20) + "'")
    except psycopg.Error as e:
        refused = str(e)
    if refused is None:
        fail("a 4 MiB statement was taken")
    print(
        json.dumps(
            {
                "base": base,
                "peak": peak,
                "logins": len(logins),
                "slowest_login": max(logins) if logins else None,
                "closed": len(closed),
                "refused": refused,
            }
        )
    )


def prepared():
    out = {}
    with connect() as conn:
        conn.prepare_threshold = 0
        conn.prepared_max = 10_000  # psycopg would deallocate beyond its own bound
        n = 0
        refused = None
        try:
            for i in range(400):
                conn.execute(f"SELECT {i} AS n").fetchall()
                n += 1
        except psycopg.Error as e:
            refused = str(e)
        out["prepared"] = n
        out["refused"] = refused
    # 200 named statements, DEALLOCATE ALL frees them, and the bound allows as many again.
    with connect() as conn:
        conn.prepare_threshold = 0
        conn.prepared_max = 10_000
        for i in range(200):
            conn.execute(f"SELECT {i} AS a").fetchall()
        conn.execute("DEALLOCATE ALL", prepare=False)
        # psycopg forgets its own names on DEALLOCATE ALL too.
        for i in range(200):
            conn.execute(f"SELECT {i} AS b").fetchall()
        out["after_deallocate"] = 200
        try:
            conn.execute("DEALLOCATE nosuch", prepare=False)
            out["unknown"] = None
        except psycopg.Error as e:
            out["unknown"] = e.sqlstate
    print(json.dumps(out))


def revoked():
    """Logs in with psycopg, then speaks the protocol on its socket: sends a query with a long
    answer, reads a little and stops reading (the server blocks on a full socket, mid-answer),
    revokes the token (the command in REVOKE_CMD, JSON), then reads on: the answer must end
    with an error, long before its last row."""
    import os
    import subprocess

    total = 4_000_000
    conn = connect()
    s = socket.socket(fileno=os.dup(conn.pgconn.socket))
    s.setblocking(True)
    q = f"SELECT * FROM generate_series(1, {total})".encode() + b"\0"
    s.sendall(b"Q" + struct.pack("!I", len(q) + 4) + q)
    buf = b""
    while len(buf) < 65536:
        buf += s.recv(65536)
    time.sleep(2)  # the server fills the socket and waits
    subprocess.run(json.loads(os.environ["REVOKE_CMD"]), check=True, capture_output=True)
    rows, error = 0, None
    s.settimeout(60)
    while True:
        while len(buf) < 5:
            more = s.recv(1 << 20)
            if not more:
                break
            buf += more
        if len(buf) < 5:
            break
        tag, n = buf[0:1], struct.unpack("!I", buf[1:5])[0]
        while len(buf) < 1 + n:
            more = s.recv(1 << 20)
            if not more:
                break
            buf += more
        body, buf = buf[5 : 1 + n], buf[1 + n :]
        if tag == b"D":
            rows += 1
        elif tag == b"E":
            error = body.decode(errors="replace")
        elif tag == b"Z":
            break
    print(json.dumps({"rows": rows, "total": total, "error": error}))


{"statements": statements, "giants": giants, "prepared": prepared, "revoked": revoked}[check]()
