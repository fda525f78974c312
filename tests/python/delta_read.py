"""The independent reader of tip's lake: the `deltalake` Python package (delta-rs), as an
analyst's notebook or a cluster would read it.

    python3 tests/python/delta_read.py [--endpoint URL] LAKE TABLE [TABLE ...]

LAKE is a local directory or s3://bucket/prefix (with --endpoint: an S3-compatible server on
loopback, any credentials). Prints one JSON object: for each table its row count, Delta
version and protocol (minimum reader and writer versions).
"""

import argparse
import json

from deltalake import DeltaTable


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint")
    ap.add_argument("lake")
    ap.add_argument("tables", nargs="+")
    args = ap.parse_args()
    options = None
    if args.endpoint:
        options = {
            "AWS_ENDPOINT_URL": args.endpoint,
            "AWS_ALLOW_HTTP": "true",
            "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
        }
    out = {}
    for name in args.tables:
        dt = DeltaTable(f"{args.lake.rstrip('/')}/{name}", storage_options=options)
        protocol = dt.protocol()
        rows = dt.to_pyarrow_dataset().count_rows()
        out[name] = {
            "rows": rows,
            "version": dt.version(),
            "min_reader_version": protocol.min_reader_version,
            "min_writer_version": protocol.min_writer_version,
        }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
