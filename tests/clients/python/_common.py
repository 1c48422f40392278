"""Shared helpers for the Python client programs.

Each program connects to a running Brikk (BRIKK_HOST, BRIKK_PORT; user and
database `brikk`, no password), works on a stream of its own, and exits 0 on
success or 1 with one clear FAIL line naming the step, the error and its
SQLSTATE.
"""

import contextlib
import json
import os
import sys
import time
import traceback

HOST = os.environ.get("BRIKK_HOST", "127.0.0.1")
PORT = int(os.environ.get("BRIKK_PORT", "5487"))
USER = "brikk"
DBNAME = "brikk"
NOTIFY_TIMEOUT = 10.0

# Every client uses the same stream shape.
STREAM_COLUMNS = "(task_id TEXT, kind TEXT, n BIGINT) WITH (partitions = 4, key = 'task_id')"


def conninfo():
    return f"host={HOST} port={PORT} user={USER} dbname={DBNAME}"


def stream_name(client):
    """A stream name unique to this client (and this process, so reruns
    against a long-running server never collide)."""
    return f"clients_{client}_{os.getpid()}"


def sqlstate_of(exc):
    for attr in ("sqlstate", "pgcode"):
        code = getattr(exc, attr, None)
        if code:
            return code
    diag = getattr(exc, "diag", None)
    code = getattr(diag, "sqlstate", None) if diag is not None else None
    return code


class Client:
    """Tracks the current step; `fail` and uncaught errors print one line."""

    def __init__(self, name):
        self.name = name
        self.current = None

    @contextlib.contextmanager
    def step(self, what):
        self.current = what
        t0 = time.monotonic()
        try:
            yield
        except SystemExit:
            raise
        except BaseException as exc:  # noqa: BLE001 - report anything
            code = sqlstate_of(exc)
            msg = str(exc).strip().replace("\n", " | ")
            if os.environ.get("BRIKK_CLIENTS_TRACEBACK"):
                traceback.print_exc()
            print(
                f"FAIL {self.name}: step '{what}': {type(exc).__name__}: {msg}"
                + (f" (SQLSTATE {code})" if code else ""),
                file=sys.stderr,
            )
            sys.exit(1)
        if os.environ.get("BRIKK_CLIENTS_VERBOSE"):
            print(f"  ok {self.name}: {what} ({time.monotonic() - t0:.2f}s)")

    def check(self, cond, msg):
        if not cond:
            raise AssertionError(msg)

    def ok(self):
        print(f"PASS {self.name}")
        sys.exit(0)


def check_stream_payload(c, payload, key, task_id, kind, n):
    """Checks a LISTEN <stream> notification payload: JSON with partition,
    offset, timestamp, key and row."""
    doc = json.loads(payload)
    c.check(isinstance(doc, dict), f"payload is not a JSON object: {payload!r}")
    for field in ("partition", "offset", "timestamp", "key", "row"):
        c.check(field in doc, f"payload lacks {field!r}: {payload!r}")
    c.check(isinstance(doc["partition"], int) and 0 <= doc["partition"] < 4, f"bad partition: {payload!r}")
    c.check(isinstance(doc["offset"], int) and doc["offset"] >= 0, f"bad offset: {payload!r}")
    c.check(doc["key"] == key, f"payload key {doc['key']!r} != {key!r}: {payload!r}")
    row = doc["row"]
    c.check(row.get("task_id") == task_id and row.get("kind") == kind and row.get("n") == n,
            f"payload row {row!r} != {{task_id: {task_id!r}, kind: {kind!r}, n: {n}}}")
    return doc
