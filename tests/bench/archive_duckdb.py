"""DuckDB's side of `archive-bench`: the same Nexmark queries over the same
archived Parquet files. Prints one JSON object: {query: [best_ms, result]}.

    python archive_duckdb.py QUERIES.json FILE.parquet...
"""

import json
import sys
import time

import duckdb


def main():
    with open(sys.argv[1]) as f:
        queries = json.load(f)
    files = sys.argv[2:]
    con = duckdb.connect()
    con.execute(f"CREATE VIEW bid AS SELECT * FROM read_parquet({files!r})")
    out = {}
    for name, sql in queries.items():
        best, result = None, None
        for _ in range(3):
            t0 = time.perf_counter()
            result = con.execute(sql).fetchall()
            ms = (time.perf_counter() - t0) * 1000
            best = ms if best is None else min(best, ms)
        out[name] = [best, [[str(v) for v in row] for row in result]]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
