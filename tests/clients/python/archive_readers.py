"""Reads a stream's Parquet archive with DuckDB, pyarrow and pandas and
checks each gets exactly the rows Brikk returned for the same offsets.

    python archive_readers.py EXPECTED.jsonl FILE.parquet...

The files are archived files of one stream (<data dir>/archive/<stream>/
<partition>/<first>-<last>.parquet); EXPECTED.jsonl is Brikk's
`COPY (SELECT _partition, _offset, _timestamp, _key, * FROM s WHERE <offsets
of those files> ORDER BY _partition, _offset) TO '…jsonl'`. Prints one PASS line per reader
and exits non-zero on the first difference.
"""

import datetime
import json
import math
import sys

import duckdb
import pandas as pd
import pyarrow.parquet as pq


def norm(v):
    """A value as Brikk's JSON lines write it."""
    if v is None:
        return None
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, (bytes, bytearray, memoryview)):
        return "\\x" + bytes(v).hex()
    if hasattr(v, "to_pydatetime"):  # pandas Timestamp
        v = v.to_pydatetime()
    if isinstance(v, datetime.datetime):
        # As Postgres prints it: fraction digits only when there are some.
        zoned = v.tzinfo is not None
        if zoned:
            v = v.astimezone(datetime.timezone.utc)
        text = v.strftime("%Y-%m-%d %H:%M:%S")
        if v.microsecond:
            text += f".{v.microsecond:06d}".rstrip("0")
        return text + ("+00" if zoned else "")
    if isinstance(v, datetime.date):
        return v.isoformat()
    if hasattr(v, "item"):  # numpy scalars
        return norm(v.item())
    return v


def rows_of(records):
    return [{k: norm(v) for k, v in r.items()} for r in records]


def check(name, got, want):
    if len(got) != len(want):
        sys.exit(f"FAIL {name}: {len(got)} rows, Brikk returned {len(want)}")
    for i, (g, w) in enumerate(zip(got, want)):
        if g != w:
            sys.exit(f"FAIL {name}: row {i} differs\n  {name}: {g}\n  brikk: {w}")
    print(f"PASS {name}: {len(got)} rows")


def main():
    expected, files = sys.argv[1], sys.argv[2:]
    with open(expected) as f:
        want = [json.loads(line) for line in f if line.strip()]
    if not files:
        sys.exit("FAIL: no Parquet files given")
    order = ["_partition", "_offset"]

    con = duckdb.connect()
    rel = con.sql(f"SELECT * FROM read_parquet({files!r}) ORDER BY _partition, _offset")
    cols = rel.columns
    check("duckdb", rows_of(dict(zip(cols, r)) for r in rel.fetchall()), want)

    table = pq.ParquetDataset(files).read().sort_by([(c, "ascending") for c in order])
    check("pyarrow", rows_of(table.to_pylist()), want)

    df = pd.concat([pd.read_parquet(f) for f in files]).sort_values(order)
    df = df.astype(object).where(pd.notna(df), None)
    check("pandas", rows_of(df.to_dict("records")), want)


if __name__ == "__main__":
    main()
