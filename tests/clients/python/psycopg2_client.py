"""psycopg2 against Brikk: stream DDL, appends (literal, parameterised,
executemany), parameterised queries (psycopg2 interpolates parameters on the
client and uses the simple query protocol), transactions through psycopg2's
implicit BEGIN (commit, rollback, isolation from a second connection), a
named (server-side) cursor, and LISTEN via select() + conn.poll() +
conn.notifies."""

import select
import time

import psycopg2
import psycopg2.extensions

from _common import (STREAM_COLUMNS, Client, NOTIFY_TIMEOUT, check_stream_payload, conninfo,
                     stream_name)

c = Client("psycopg2")
s = stream_name("psycopg2")


def keys(conn, sql, params=None):
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return [r[0] for r in cur.fetchall()]


def wait_notify(conn, timeout):
    deadline = time.monotonic() + timeout
    while not conn.notifies:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        if select.select([conn], [], [], left) != ([], [], []):
            conn.poll()
    return conn.notifies.pop(0)


with c.step("connect"):
    conn = psycopg2.connect(conninfo())
    conn.autocommit = True
    other = psycopg2.connect(conninfo())
    other.autocommit = True

with c.step("create stream"):
    with conn.cursor() as cur:
        cur.execute(f"DROP STREAM IF EXISTS {s}")
        cur.execute(f"CREATE STREAM {s} {STREAM_COLUMNS}")

with c.step("insert literal"):
    with conn.cursor() as cur:
        cur.execute(f"INSERT INTO {s} VALUES ('t1', 'build', 1), ('t2', 'test', 2)")
        c.check(cur.rowcount == 2, f"rowcount {cur.rowcount} != 2")

with c.step("insert with parameters"):
    with conn.cursor() as cur:
        cur.execute(f"INSERT INTO {s} VALUES (%s, %s, %s)", ("t3", "build", 3))
        c.check(cur.rowcount == 1, f"rowcount {cur.rowcount} != 1")
        cur.execute(f"INSERT INTO {s} (task_id, kind, n) VALUES (%(id)s, %(kind)s, %(n)s)",
                    {"id": "t4", "kind": "big", "n": 5_000_000_000})
        # Quoting: a value with a quote and a backslash must round-trip.
        cur.execute(f"INSERT INTO {s} VALUES (%s, %s, %s)", ("t'5", "quo'te\\", 5))

with c.step("executemany"):
    with conn.cursor() as cur:
        cur.executemany(f"INSERT INTO {s} VALUES (%s, %s, %s)",
                        [("t6", "deploy", 6), ("t7", "deploy", 7), ("t8", "test", 8)])

with c.step("query with parameters"):
    with conn.cursor() as cur:
        cur.execute(f"SELECT task_id, kind, n FROM {s} WHERE kind = %s AND n >= %s ORDER BY n", ("build", 2))
        got = cur.fetchall()
    c.check(got == [("t3", "build", 3)], f"got {got!r}")
    got = keys(conn, f"SELECT task_id FROM {s} WHERE n > %s ORDER BY n", (5,))
    c.check(got == ["t6", "t7", "t8", "t4"], f"got {got!r}")
    got = keys(conn, f"SELECT kind FROM {s} WHERE task_id = %s", ("t'5",))
    c.check(got == ["quo'te\\"], f"quoted value round trip: got {got!r}")
    got = keys(conn, f"SELECT n FROM {s} WHERE task_id = %s", ("t4",))
    c.check(got == [5_000_000_000], f"int8 round trip: got {got!r}")

with c.step("system columns"):
    with conn.cursor() as cur:
        cur.execute(f"SELECT _partition, _offset, _timestamp, _key, task_id FROM {s} WHERE _key = %s", ("t1",))
        rows = cur.fetchall()
    c.check(len(rows) == 1, f"got {rows!r}")
    part, off, ts, key, task_id = rows[0]
    c.check(isinstance(part, int) and 0 <= part < 4, f"_partition {part!r}")
    c.check(isinstance(off, int) and off >= 0, f"_offset {off!r}")
    c.check(ts is not None and hasattr(ts, "year"), f"_timestamp {ts!r} is not a timestamp")
    c.check(key == "t1" and task_id == "t1", f"_key {key!r}, task_id {task_id!r}")

with c.step("transaction commit"):
    conn.autocommit = False  # psycopg2 sends BEGIN before the first statement
    with conn.cursor() as cur:
        cur.execute(f"INSERT INTO {s} VALUES (%s, %s, %s)", ("tx1", "txn", 100))
        cur.execute(f"INSERT INTO {s} VALUES (%s, %s, %s)", ("tx2", "txn", 101))
    c.check(conn.get_transaction_status() == psycopg2.extensions.TRANSACTION_STATUS_INTRANS,
            f"transaction status {conn.get_transaction_status()} is not INTRANS")
    seen = keys(other, f"SELECT task_id FROM {s} WHERE kind = %s", ("txn",))
    c.check(seen == [], f"uncommitted rows visible to another connection: {seen!r}")
    conn.commit()
    seen = sorted(keys(other, f"SELECT task_id FROM {s} WHERE kind = %s", ("txn",)))
    c.check(seen == ["tx1", "tx2"], f"after COMMIT another connection sees {seen!r}")

with c.step("transaction rollback"):
    with conn.cursor() as cur:
        cur.execute(f"INSERT INTO {s} VALUES (%s, %s, %s)", ("rb1", "rolledback", 200))
    conn.rollback()
    conn.autocommit = True
    seen = keys(conn, f"SELECT task_id FROM {s} WHERE kind = %s", ("rolledback",))
    c.check(seen == [], f"rolled-back row visible: {seen!r}")
    seen = keys(other, f"SELECT task_id FROM {s} WHERE kind = %s", ("rolledback",))
    c.check(seen == [], f"rolled-back row visible to another connection: {seen!r}")

with c.step("named cursor"):
    # psycopg2's server-side cursor: DECLARE in its implicit transaction,
    # FETCH FORWARD itersize rows at a time while iterating, CLOSE.
    conn.autocommit = False
    with conn.cursor(name="brikk_named") as cur:
        cur.itersize = 3
        cur.execute(f"SELECT task_id FROM {s} ORDER BY n, task_id")
        got = [r[0] for r in cur]
    conn.commit()
    conn.autocommit = True
    want = keys(conn, f"SELECT task_id FROM {s} ORDER BY n, task_id")
    c.check(len(want) > 3 and got == want, f"named cursor gave {got!r}, the query {want!r}")

with c.step("LISTEN stream"):
    with conn.cursor() as cur:
        cur.execute(f"LISTEN {s}")
    with other.cursor() as cur:
        cur.execute(f"INSERT INTO {s} VALUES (%s, %s, %s)", ("n1", "notify", 42))
    n = wait_notify(conn, NOTIFY_TIMEOUT)
    c.check(n is not None, f"no notification on channel {s} within {NOTIFY_TIMEOUT}s")
    c.check(n.channel == s, f"notification channel {n.channel!r} != {s!r}")
    check_stream_payload(c, n.payload, "n1", "n1", "notify", 42)
    with conn.cursor() as cur:
        cur.execute(f"UNLISTEN {s}")

with c.step("LISTEN/NOTIFY channel"):
    chan = f"{s}_chan"
    with conn.cursor() as cur:
        cur.execute(f"LISTEN {chan}")
    with other.cursor() as cur:
        cur.execute(f"NOTIFY {chan}, %s", ("hello from psycopg2",))
    n = wait_notify(conn, NOTIFY_TIMEOUT)
    c.check(n is not None, f"no notification on channel {chan} within {NOTIFY_TIMEOUT}s")
    c.check((n.channel, n.payload) == (chan, "hello from psycopg2"), f"got {n!r}")
    with conn.cursor() as cur:
        cur.execute("UNLISTEN *")

with c.step("drop stream"):
    with conn.cursor() as cur:
        cur.execute(f"DROP STREAM {s}")
    conn.close()
    other.close()

c.ok()
