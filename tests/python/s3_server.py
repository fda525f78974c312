"""A real S3-compatible server on loopback for tip's object storage tests.

    python3 tests/python/s3_server.py --bucket NAME [--bucket NAME ...] [--strip-conditions]

Starts moto's S3 server (moto[s3] from PyPI, server mode) on 127.0.0.1 with a free port,
creates the buckets, checks that conditional writes are honoured, prints the endpoint URL as
its only line on stdout, and serves until stdin closes (its parent exited) or SIGTERM.

moto checks `If-None-Match: *` and then writes without holding a lock, so two racing creates
can both win; every request is therefore served one at a time (a real store is atomic here).

With --strip-conditions a proxy in front of moto drops the If-None-Match and If-Match headers
and the printed URL is the proxy's: a store that silently overwrites, which tip must refuse.

With --lose-answer SUBSTRING (repeatable) the proxy forwards the first PUT whose path contains
SUBSTRING, lets it land, and answers 500 instead of the store's answer: an ambiguous failure
(the write happened, the writer cannot know), which a client retries. Each lost answer is
recorded as a line in the file --lost-log names.
"""

import argparse
import http.client
import logging
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import make_server

try:  # moto >= 5.2.5 keeps connections alive with its own handler
    from moto.moto_server.werkzeug_app import MotoRequestHandler
except ImportError:
    MotoRequestHandler = None

CONDITIONS = {"if-none-match", "if-match"}


def moto_server():
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    app = DomainDispatcherApplication(create_backend_app)
    lock = threading.Lock()

    def serialised(environ, start_response):
        with lock:
            return list(app(environ, start_response))

    extra = {"request_handler": MotoRequestHandler} if MotoRequestHandler else {}
    srv = make_server("127.0.0.1", 0, serialised, threaded=True, **extra)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{srv.server_port}"


def proxy(upstream, strip, lose, lost_log):
    up = urlsplit(upstream)
    lose = list(lose)
    lose_lock = threading.Lock()

    def answer_lost(method, path):
        with lose_lock:
            for s in lose:
                if method == "PUT" and s in path:
                    lose.remove(s)
                    if lost_log:
                        with open(lost_log, "a") as f:
                            f.write(path + "\n")
                    return True
        return False

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def forward(self):
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n) if n else None
            drop = CONDITIONS if strip else set()
            headers = {k: v for k, v in self.headers.items() if k.lower() not in drop}
            c = http.client.HTTPConnection(up.hostname, up.port, timeout=60)
            c.request(self.command, self.path, body=body, headers=headers)
            r = c.getresponse()
            data = r.read()
            if answer_lost(self.command, self.path):
                c.close()
                self.send_response(500)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(r.status)
            for k, v in r.getheaders():
                if k.lower() in ("transfer-encoding", "connection"):
                    continue
                if k.lower() == "content-length" and self.command != "HEAD":
                    continue
                self.send_header(k, v)
            if self.command != "HEAD":
                self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up on this answer
            c.close()

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = forward

        def log_message(self, *args):
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{srv.server_port}"


def s3_client(endpoint):
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"}),
    )


def second_create_refused(client, bucket):
    """Creates a probe object twice with If-None-Match: *; True when the second is refused."""
    from botocore.exceptions import ClientError

    key = "_s3_server_probe"
    client.put_object(Bucket=bucket, Key=key, Body=b"1", IfNoneMatch="*")
    try:
        client.put_object(Bucket=bucket, Key=key, Body=b"2", IfNoneMatch="*")
        refused = False
    except ClientError as e:
        if e.response["Error"]["Code"] != "PreconditionFailed":
            raise
        refused = True
    client.delete_object(Bucket=bucket, Key=key)
    return refused


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bucket", action="append", default=[])
    ap.add_argument("--strip-conditions", action="store_true")
    ap.add_argument("--lose-answer", action="append", default=[])
    ap.add_argument("--lost-log")
    args = ap.parse_args()
    buckets = args.bucket or ["tip"]

    upstream = moto_server()
    direct = s3_client(upstream)
    for b in buckets:
        direct.create_bucket(Bucket=b)
    if not second_create_refused(direct, buckets[0]):
        sys.exit("s3_server.py: this moto does not honour If-None-Match on PutObject (moto 5.2.1 and later do)")
    endpoint = upstream
    if args.strip_conditions or args.lose_answer:
        endpoint = proxy(upstream, args.strip_conditions, args.lose_answer, args.lost_log)
    if args.strip_conditions:
        if second_create_refused(s3_client(endpoint), buckets[0]):
            sys.exit("s3_server.py: the proxy did not strip the conditional headers")
    print(endpoint, flush=True)
    # Serve until the parent closes our stdin (or kills us).
    sys.stdin.read()


if __name__ == "__main__":
    main()
