"""asyncpg against Brikk: stream DDL, appends (literal, parameterised,
executemany), a prepared statement executed several times, binary results
(asyncpg always asks for binary), system columns, transactions (commit,
rollback, isolation from a second connection) and LISTEN via
add_listener."""

import asyncio
import datetime

import asyncpg

from _common import (DBNAME, HOST, NOTIFY_TIMEOUT, PORT, STREAM_COLUMNS, USER, Client,
                     check_stream_payload, stream_name)

c = Client("asyncpg")
s = stream_name("asyncpg")


class Rollback(Exception):
    pass


async def keys(conn, sql, *args):
    return [r[0] for r in await conn.fetch(sql, *args)]


async def main():
    with c.step("connect"):
        conn = await asyncpg.connect(host=HOST, port=PORT, user=USER, database=DBNAME)
        other = await asyncpg.connect(host=HOST, port=PORT, user=USER, database=DBNAME)

    with c.step("create stream"):
        await conn.execute(f"DROP STREAM IF EXISTS {s}")
        await conn.execute(f"CREATE STREAM {s} {STREAM_COLUMNS}")

    with c.step("insert literal"):
        status = await conn.execute(f"INSERT INTO {s} VALUES ('t1', 'build', 1), ('t2', 'test', 2)")
        c.check(status == "INSERT 0 2", f"status {status!r} != 'INSERT 0 2'")

    with c.step("insert with parameters"):
        status = await conn.execute(f"INSERT INTO {s} VALUES ($1, $2, $3)", "t3", "build", 3)
        c.check(status == "INSERT 0 1", f"status {status!r} != 'INSERT 0 1'")
        await conn.execute(f"INSERT INTO {s} VALUES ($1, $2, $3)", "t4", "big", 5_000_000_000)

    with c.step("executemany"):
        await conn.executemany(f"INSERT INTO {s} VALUES ($1, $2, $3)",
                               [("t5", "deploy", 5), ("t6", "deploy", 6), ("t7", "test", 7)])

    with c.step("query with parameters"):
        rows = await conn.fetch(f"SELECT task_id, kind, n FROM {s} WHERE kind = $1 AND n >= $2 ORDER BY n",
                                "build", 2)
        got = [tuple(r) for r in rows]
        c.check(got == [("t3", "build", 3)], f"got {got!r}")
        n = await conn.fetchval(f"SELECT n FROM {s} WHERE task_id = $1", "t4")
        c.check(n == 5_000_000_000, f"int8 round trip: got {n!r}")

    with c.step("a list parameter for = ANY"):
        # The server describes $1 as text[], so asyncpg sends the list.
        got = await keys(conn, f"SELECT task_id FROM {s} WHERE task_id = ANY($1) ORDER BY 1", ["t1", "t3", "zz"])
        c.check(got == ["t1", "t3"], f"got {got!r}")
        got = await keys(conn, f"SELECT task_id FROM {s} WHERE task_id = ANY($1::text[]) ORDER BY 1", ["t4"])
        c.check(got == ["t4"], f"with a cast: got {got!r}")

    with c.step("integer and float array parameters and results"):
        # asyncpg learns array types other than text[] from the catalog
        # (its introspection query, with an oid[] parameter).
        got = await keys(conn, f"SELECT task_id FROM {s} WHERE n = ANY($1) ORDER BY 1", [1, 5_000_000_000])
        c.check(got == ["t1", "t4"], f"bigint list: got {got!r}")
        row = await conn.fetchrow("SELECT $1::int[] AS i, $2::float8[] AS f, ARRAY[true, NULL] AS b", [1, None, 3], [1.5])
        c.check(list(row["i"]) == [1, None, 3], f"int[]: got {row['i']!r}")
        c.check(list(row["f"]) == [1.5], f"float8[]: got {row['f']!r}")
        c.check(list(row["b"]) == [True, None], f"bool[]: got {row['b']!r}")

    with c.step("prepared statement"):
        stmt = await conn.prepare(f"SELECT task_id, n FROM {s} WHERE kind = $1 ORDER BY n")
        params = [p.name for p in stmt.get_parameters()]
        c.check(params == ["text"], f"parameter types {params!r} != ['text']")
        cols = [(a.name, a.type.name) for a in stmt.get_attributes()]
        c.check(cols == [("task_id", "text"), ("n", "int8")], f"result columns {cols!r}")
        for kind, want in (("deploy", [("t5", 5), ("t6", 6)]), ("test", [("t2", 2), ("t7", 7)]), ("none", [])):
            got = [tuple(r) for r in await stmt.fetch(kind)]
            c.check(got == want, f"prepared, kind={kind}: got {got!r}, want {want!r}")

    with c.step("binary results"):
        row = await conn.fetchrow(
            f"SELECT _partition, _offset, _timestamp, _key, task_id, kind, n FROM {s} WHERE _key = $1", "t1")
        c.check(row is not None, "no row for _key = 't1'")
        c.check(isinstance(row["_partition"], int) and 0 <= row["_partition"] < 4, f"_partition {row['_partition']!r}")
        c.check(isinstance(row["_offset"], int) and row["_offset"] >= 0, f"_offset {row['_offset']!r}")
        ts = row["_timestamp"]
        c.check(isinstance(ts, datetime.datetime), f"_timestamp {ts!r} is not a datetime")
        now = datetime.datetime.now(datetime.timezone.utc)
        aware = ts if ts.tzinfo else ts.replace(tzinfo=datetime.timezone.utc)
        c.check(abs((now - aware).total_seconds()) < 300, f"_timestamp {ts!r} is not near now ({now})")
        c.check((row["_key"], row["task_id"], row["kind"], row["n"]) == ("t1", "t1", "build", 1), f"row {row!r}")

    with c.step("parameters typed by a cast ($1::int, $2::timestamptz, …)"):
        # Described as the cast's type, as Postgres describes them, so
        # asyncpg encodes Python values of that type (not str).
        at = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
        row = await conn.fetchrow(
            "SELECT $1::int + 1 AS i, $2::bigint AS b, $3::float8 AS f, $4::bool AS t, $5::date AS d, "
            "$6::timestamptz AS at, $7::interval AS span",
            41, 2**40, 0.5, True, datetime.date(2026, 1, 2), at, datetime.timedelta(minutes=90))
        got = tuple(row.values())
        want = (42, 2**40, 0.5, True, datetime.date(2026, 1, 2), at, datetime.timedelta(minutes=90))
        c.check(got == want, f"cast parameters gave {got!r}")
        n = await conn.fetchval(f"SELECT count(*) FROM {s} WHERE n >= $1::int", 2)
        c.check(n >= 1, f"count {n!r}")

    with c.step("UUID parameters and results"):
        import uuid
        t = f"{s}_agents"
        await conn.execute(f"DROP TABLE IF EXISTS {t}")
        await conn.execute(f"CREATE TABLE {t} (id UUID PRIMARY KEY, note TEXT)")
        agent, other_agent = uuid.uuid4(), uuid.uuid4()
        # Parameters bound to a uuid column are described as uuid, so
        # asyncpg takes UUID objects (in binary) as well as str for them.
        await conn.execute(f"INSERT INTO {t} VALUES ($1, 'a')", agent)
        await conn.execute(f"INSERT INTO {t} VALUES ($1, 'b')", str(other_agent))
        got = await conn.fetchval(f"SELECT id FROM {t} WHERE note = 'a'")
        c.check(isinstance(got, uuid.UUID) and got == agent, f"got {got!r}")
        note = await conn.fetchval(f"SELECT note FROM {t} WHERE id = $1", agent)
        c.check(note == "a", f"lookup by UUID got {note!r}")
        n = await conn.fetchval(f"SELECT count(*) FROM {t} WHERE id IN ($1, $2)", agent, other_agent)
        c.check(n == 2, f"IN with UUIDs counted {n!r}")
        await conn.execute(f"UPDATE {t} SET note = $2 WHERE id = $1", agent, "a2")
        await conn.execute(
            f"INSERT INTO {t} VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET note = excluded.note", other_agent, "b2"
        )
        rows = await conn.fetch(f"SELECT id, note FROM {t} ORDER BY note")
        c.check([(r["id"], r["note"]) for r in rows] == [(agent, "a2"), (other_agent, "b2")], f"rows {rows!r}")
        await conn.execute(f"DELETE FROM {t} WHERE id = $1", agent)
        left = await conn.fetchval(f"SELECT count(*) FROM {t}")
        c.check(left == 1, f"{left!r} rows left after DELETE by UUID")
        try:
            await conn.execute(f"DELETE FROM {t} WHERE id = $1", "not-a-uuid")
            c.check(False, "a malformed uuid parameter was accepted")
        except asyncpg.DataError:
            pass  # asyncpg refuses it before sending, as it does with PostgreSQL
        await conn.execute(f"DROP TABLE {t}")

    with c.step("transaction commit"):
        async with conn.transaction():
            await conn.execute(f"INSERT INTO {s} VALUES ($1, $2, $3)", "tx1", "txn", 100)
            await conn.execute(f"INSERT INTO {s} VALUES ($1, $2, $3)", "tx2", "txn", 101)
            seen = await keys(other, f"SELECT task_id FROM {s} WHERE kind = $1", "txn")
            c.check(seen == [], f"uncommitted rows visible to another connection: {seen!r}")
        seen = sorted(await keys(other, f"SELECT task_id FROM {s} WHERE kind = $1", "txn"))
        c.check(seen == ["tx1", "tx2"], f"after COMMIT another connection sees {seen!r}")

    with c.step("transaction rollback"):
        try:
            async with conn.transaction():
                await conn.execute(f"INSERT INTO {s} VALUES ($1, $2, $3)", "rb1", "rolledback", 200)
                raise Rollback()
        except Rollback:
            pass
        seen = await keys(conn, f"SELECT task_id FROM {s} WHERE kind = $1", "rolledback")
        c.check(seen == [], f"rolled-back row visible: {seen!r}")
        seen = await keys(other, f"SELECT task_id FROM {s} WHERE kind = $1", "rolledback")
        c.check(seen == [], f"rolled-back row visible to another connection: {seen!r}")

    with c.step("LISTEN stream (add_listener)"):
        queue = asyncio.Queue()
        def on_notify(_conn, _pid, channel, payload):
            queue.put_nowait((channel, payload))
        await conn.add_listener(s, on_notify)
        await other.execute(f"INSERT INTO {s} VALUES ($1, $2, $3)", "n1", "notify", 42)
        try:
            channel, payload = await asyncio.wait_for(queue.get(), NOTIFY_TIMEOUT)
        except asyncio.TimeoutError:
            raise AssertionError(f"no notification on channel {s} within {NOTIFY_TIMEOUT}s") from None
        c.check(channel == s, f"notification channel {channel!r} != {s!r}")
        check_stream_payload(c, payload, "n1", "n1", "notify", 42)
        await conn.remove_listener(s, on_notify)

    with c.step("LISTEN/NOTIFY channel (add_listener)"):
        chan = f"{s}_chan"
        await conn.add_listener(chan, on_notify)
        await other.execute(f"NOTIFY {chan}, 'hello from asyncpg'")
        try:
            got = await asyncio.wait_for(queue.get(), NOTIFY_TIMEOUT)
        except asyncio.TimeoutError:
            raise AssertionError(f"no notification on channel {chan} within {NOTIFY_TIMEOUT}s") from None
        c.check(got == (chan, "hello from asyncpg"), f"got {got!r}")
        await conn.remove_listener(chan, on_notify)

    with c.step("drop stream"):
        await conn.execute(f"DROP STREAM {s}")
        await conn.close()
        await other.close()


asyncio.run(main())
c.ok()
