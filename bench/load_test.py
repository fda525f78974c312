#!/usr/bin/env python3
"""Load test of `tip serve`: N partner uploaders and M analysts for a fixed time against a lake
that already holds hundreds of submissions. Not part of the test suite: it measures, it does not
assert.

It reports
- the latency of one upload on an idle server, on a new lake and again once the lake holds the
  seeded submissions (it should stay flat as the lake grows);
- p50 / p99 / max latency of uploads and of analyst queries under load, requests per second and
  failures (any answer other than 200, or 201 for a stored upload);
- the server's peak resident memory (VmHWM from /proc/PID/status).

Usage: python3 bench/load_test.py [--seed 300] [--uploaders 8] [--analysts 4] [--seconds 60]
(needs `cargo build --release`; TIP_BIN overrides the binary). Standard library only.
"""
import argparse, json, os, shutil, statistics, subprocess, sys, tempfile, threading, time
import urllib.error, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIP = os.environ.get("TIP_BIN", os.path.join(ROOT, "target", "release", "tip"))
HEADER = "case_number,given_name,family_name,birth_date,registered_on,gender,status\n"
GIVEN = ["Ona", "Jonas", "Eglė", "Rūta", "Mari", "Liis", "Łukasz", "Олена"]
FAMILY = ["Petraitytė", "Kazlauskas", "Šimkutė", "Tamm", "Saar", "Wójcik", "Шевченко"]
QUERIES = [
    "SELECT * FROM monthly_trends ORDER BY month",
    "SELECT count(*) AS n FROM cases",
    "SELECT reporting_country, count(DISTINCT person_id) AS persons FROM cases GROUP BY 1",
    "SELECT * FROM multi_agency_persons LIMIT 100",
    "SELECT partner, count(*) FROM submissions GROUP BY 1",
]


def case_csv(tag, n=10):
    rows = [HEADER]
    for i in range(n):
        rows.append(
            f"{tag}-{i},{GIVEN[i % len(GIVEN)]},{FAMILY[(i * 3) % len(FAMILY)]},"
            f"20{10 + i % 7:02d}-0{1 + i % 9}-1{i % 10},2025-{1 + i % 12:02d}-{1 + i % 28:02d},"
            f"{'female' if i % 2 else 'male'},presumed\n"
        )
    return "".join(rows).encode()


def pct(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


class Hub:
    def __init__(self, work):
        self.work = work
        self.lake = os.path.join(work, "lake")
        self.key = os.path.join(work, "bench.key")
        text = open(os.path.join(ROOT, "pipelines", "tip.toml"), encoding="utf-8").read()
        for a, b in [
            ('tokens = ".tip/tokens.json"', f'tokens = "{work}/tokens.json"'),
            ('inbox = ".tip/uploads"', f'inbox = "{work}/uploads"'),
            ('log = ".tip/audit.log"', f'log = "{work}/audit.log"'),
        ]:
            assert a in text, a
            text = text.replace(a, b)
        self.cfg = os.path.join(work, "tip.toml")
        open(self.cfg, "w", encoding="utf-8").write(text)
        self.tip("key", "new", self.key)
        self.partner = self.tip("token", "new", "--role", "partner", "--org", "LT-NGO-01").strip()
        self.analyst = self.tip("token", "new", "--role", "analyst").strip()
        self.server = None

    def tip(self, *args):
        out = subprocess.run(
            [TIP, "--config", self.cfg, "--lake", self.lake, "--key-file", self.key, *args],
            cwd=ROOT, check=True, capture_output=True, env={**os.environ, "TIP_KEY": ""},
        )
        return out.stdout.decode()

    def start(self):
        self.server = subprocess.Popen(
            [TIP, "--config", self.cfg, "--lake", self.lake, "--key-file", self.key,
             "serve", "--listen", "127.0.0.1:0"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )
        line = self.server.stdout.readline().decode()
        self.addr = line.strip().split()[-1].replace("http://", "").rstrip("/")
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://{self.addr}/healthz", timeout=2).read()
                return
            except OSError:
                time.sleep(0.1)
        sys.exit(f"server did not answer: {line!r}")

    def stop(self):
        peak = self.peak_mib()
        self.server.terminate()
        self.server.wait()
        return peak

    def peak_mib(self):
        with open(f"/proc/{self.server.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    def upload(self, body, name):
        req = urllib.request.Request(
            f"http://{self.addr}/api/v1/uploads?type=case&format=csv&filename={name}",
            data=body, method="POST",
            headers={"Authorization": f"Bearer {self.partner}", "Content-Type": "text/csv"},
        )
        return self.timed(req)

    def query(self, sql):
        req = urllib.request.Request(
            f"http://{self.addr}/api/v1/sql", data=json.dumps({"sql": sql}).encode(),
            method="POST",
            headers={"Authorization": f"Bearer {self.analyst}", "Accept": "text/csv",
                     "Content-Type": "application/json"},
        )
        return self.timed(req)

    @staticmethod
    def timed(req):
        t = time.perf_counter()
        try:
            with urllib.request.urlopen(req, timeout=600) as r:
                r.read()
                status = r.status
        except urllib.error.HTTPError as e:
            e.read()
            status = e.code
        except OSError:
            status = -1
        return time.perf_counter() - t, status


def idle_uploads(hub, tag, n=5):
    return [hub.upload(case_csv(f"{tag}{i}"), f"{tag}{i}.csv")[0] for i in range(n)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=300, help="submissions in the lake before the load")
    ap.add_argument("--uploaders", type=int, default=8)
    ap.add_argument("--analysts", type=int, default=4)
    ap.add_argument("--seconds", type=int, default=60)
    a = ap.parse_args()
    if not os.path.exists(TIP):
        sys.exit(f"{TIP} not found: run `cargo build --release` first")
    work = tempfile.mkdtemp(prefix="tip-load-")
    try:
        hub = Hub(work)
        hub.start()
        new_lake = idle_uploads(hub, "NEW")
        hub.stop()
        # Seed with one `tip load` of many files: each file is one submission.
        seed_dir = os.path.join(work, "seed")
        os.makedirs(seed_dir)
        for i in range(a.seed):
            open(os.path.join(seed_dir, f"s{i:04d}.csv"), "wb").write(case_csv(f"S{i}"))
        t = time.perf_counter()
        hub.tip("load", "--partner", "LT-NGO-01", "--type", "case",
                *sorted(os.path.join(seed_dir, f) for f in os.listdir(seed_dir)))
        seeded_in = time.perf_counter() - t
        hub.start()
        grown_lake = idle_uploads(hub, "OLD")

        results = {"upload": [], "query": []}
        lock = threading.Lock()
        stop_at = time.perf_counter() + a.seconds

        def uploader(u):
            i = 0
            while time.perf_counter() < stop_at:
                r = hub.upload(case_csv(f"U{u}x{i}"), f"u{u}-{i}.csv")
                with lock:
                    results["upload"].append(r)
                i += 1

        def analyst(q):
            i = q
            while time.perf_counter() < stop_at:
                r = hub.query(QUERIES[i % len(QUERIES)])
                with lock:
                    results["query"].append(r)
                i += 1

        threads = [threading.Thread(target=uploader, args=(u,)) for u in range(a.uploaders)]
        threads += [threading.Thread(target=analyst, args=(q,)) for q in range(a.analysts)]
        started = time.perf_counter()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        elapsed = time.perf_counter() - started
        peak = hub.stop()

        print(f"machine: {os.cpu_count()} cores; binary {TIP}")
        print(f"seeded {a.seed} submissions with one tip load in {seeded_in:.1f} s")
        print(f"idle upload, new lake:      median {statistics.median(new_lake):.3f} s")
        print(f"idle upload, {a.seed + 5} submissions: median {statistics.median(grown_lake):.3f} s")
        print(f"load: {a.uploaders} uploaders + {a.analysts} analysts for {elapsed:.0f} s")
        for kind, rs in results.items():
            ok = (200, 201)  # a query answers 200, a stored upload 201 (its receipt)
            lat = [d for d, s in rs if s in ok]
            bad = [s for _, s in rs if s not in ok]
            print(f"  {kind:6}: {len(rs)} requests ({len(rs) / elapsed:.1f}/s), "
                  f"p50 {pct(lat, 50):.3f} s, p99 {pct(lat, 99):.3f} s, max {max(lat, default=0):.3f} s, "
                  f"failed: {len(bad)} {sorted(set(bad))}")
        print(f"server peak RSS: {peak:.0f} MiB")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
