"""psycopg 3 against Brikk: stream DDL, appends (literal, parameterised,
executemany, pipeline mode), parameterised and binary queries, transactions
(commit, rollback, isolation from a second connection), a named
(server-side) cursor, LISTEN via
conn.notifies(), a live COPY (SUBSCRIBE …) TO STDOUT read with
cursor.copy() and ended with a cancel request, and JSON facts written with
::jsonb parameters and read as dict rows."""

import datetime
import psycopg

from _common import (STREAM_COLUMNS, Client, NOTIFY_TIMEOUT, check_stream_payload, conninfo,
                     stream_name)

c = Client("psycopg3")
s = stream_name("psycopg3")


def keys(conn, sql, params=None):
    return [r[0] for r in conn.execute(sql, params).fetchall()]


with c.step("connect"):
    conn = psycopg.connect(conninfo(), autocommit=True)
    other = psycopg.connect(conninfo(), autocommit=True)

with c.step("create stream"):
    conn.execute(f"DROP STREAM IF EXISTS {s}")
    conn.execute(f"CREATE STREAM {s} {STREAM_COLUMNS}")

with c.step("insert literal"):
    cur = conn.execute(f"INSERT INTO {s} VALUES ('t1', 'build', 1), ('t2', 'test', 2)")
    c.check(cur.rowcount == 2, f"rowcount {cur.rowcount} != 2")

with c.step("insert with parameters"):
    cur = conn.execute(f"INSERT INTO {s} VALUES (%s, %s, %s)", ("t3", "build", 3))
    c.check(cur.rowcount == 1, f"rowcount {cur.rowcount} != 1")
    # A value that needs int8 (psycopg picks the smallest int type that fits).
    conn.execute(f"INSERT INTO {s} VALUES (%s, %s, %s)", ("t4", "big", 5_000_000_000))

with c.step("executemany"):
    with conn.cursor() as cur:
        cur.executemany(f"INSERT INTO {s} VALUES (%s, %s, %s)",
                        [("t5", "deploy", 5), ("t6", "deploy", 6), ("t7", "test", 7)])

with c.step("pipeline mode"):
    with conn.pipeline():
        conn.execute(f"INSERT INTO {s} VALUES (%s, %s, %s)", ("t8", "pipe", 8))
        conn.execute(f"INSERT INTO {s} VALUES (%s, %s, %s)", ("t9", "pipe", 9))
        cur = conn.execute(f"SELECT count(*) FROM {s} WHERE kind = %s", ("pipe",))
    c.check(cur.fetchone()[0] == 2, "pipeline: expected 2 'pipe' rows")

with c.step("query with parameters"):
    got = conn.execute(f"SELECT task_id, kind, n FROM {s} WHERE kind = %s AND n >= %s ORDER BY n",
                       ("build", 2)).fetchall()
    c.check(got == [("t3", "build", 3)], f"got {got!r}")
    got = keys(conn, f"SELECT task_id FROM {s} WHERE n > %s ORDER BY task_id", (4,))
    c.check(got == ["t4", "t5", "t6", "t7", "t8", "t9"], f"got {got!r}")
    got = conn.execute(f"SELECT n FROM {s} WHERE task_id = %s", ("t4",)).fetchone()
    c.check(got == (5_000_000_000,), f"int8 round trip: got {got!r}")
    # A named server-side prepared statement, executed several times.
    for kind, want in (("deploy", ["t5", "t6"]), ("test", ["t2", "t7"]), ("none", [])):
        got = [r[0] for r in conn.execute(f"SELECT task_id FROM {s} WHERE kind = %s ORDER BY n", (kind,),
                                          prepare=True).fetchall()]
        c.check(got == want, f"prepared, kind={kind}: got {got!r}, want {want!r}")

with c.step("system columns"):
    rows = conn.execute(f"SELECT _partition, _offset, _timestamp, _key, task_id FROM {s} WHERE _key = %s",
                        ("t1",)).fetchall()
    c.check(len(rows) == 1, f"got {rows!r}")
    part, off, ts, key, task_id = rows[0]
    c.check(isinstance(part, int) and 0 <= part < 4, f"_partition {part!r}")
    c.check(isinstance(off, int) and off >= 0, f"_offset {off!r}")
    c.check(ts is not None and hasattr(ts, "year"), f"_timestamp {ts!r} is not a timestamp")
    c.check(key == "t1" and task_id == "t1", f"_key {key!r}, task_id {task_id!r}")

with c.step("binary results"):
    with conn.cursor(binary=True) as cur:
        cur.execute(f"SELECT task_id, n, _partition, _offset, _timestamp FROM {s} WHERE n = %s", (5_000_000_000,))
        got = cur.fetchall()
    c.check(len(got) == 1 and got[0][0] == "t4" and got[0][1] == 5_000_000_000, f"got {got!r}")
    c.check(hasattr(got[0][4], "year"), f"binary _timestamp {got[0][4]!r}")

with c.step("transaction commit"):
    with conn.transaction():
        conn.execute(f"INSERT INTO {s} VALUES (%s, %s, %s)", ("tx1", "txn", 100))
        conn.execute(f"INSERT INTO {s} VALUES (%s, %s, %s)", ("tx2", "txn", 101))
        seen = keys(other, f"SELECT task_id FROM {s} WHERE kind = %s", ("txn",))
        c.check(seen == [], f"uncommitted rows visible to another connection: {seen!r}")
    seen = sorted(keys(other, f"SELECT task_id FROM {s} WHERE kind = %s", ("txn",)))
    c.check(seen == ["tx1", "tx2"], f"after COMMIT another connection sees {seen!r}")

with c.step("transaction rollback"):
    with conn.transaction():
        conn.execute(f"INSERT INTO {s} VALUES (%s, %s, %s)", ("rb1", "rolledback", 200))
        raise psycopg.Rollback()
    seen = keys(conn, f"SELECT task_id FROM {s} WHERE kind = %s", ("rolledback",))
    c.check(seen == [], f"rolled-back row visible: {seen!r}")
    seen = keys(other, f"SELECT task_id FROM {s} WHERE kind = %s", ("rolledback",))
    c.check(seen == [], f"rolled-back row visible to another connection: {seen!r}")

with c.step("named cursor"):
    # psycopg 3's server-side cursor: DECLARE, Describe of the cursor as a
    # portal, then FETCH FORWARD itersize rows at a time, CLOSE.
    with conn.transaction():
        with conn.cursor(name="brikk_named") as cur:
            cur.itersize = 3
            cur.execute(f"SELECT task_id FROM {s} WHERE n > %s ORDER BY task_id", (0,))
            got = [r[0] for r in cur]
    want = keys(conn, f"SELECT task_id FROM {s} WHERE n > %s ORDER BY task_id", (0,))
    c.check(len(want) > 3 and got == want, f"named cursor gave {got!r}, the query {want!r}")

with c.step("time zone"):
    # psycopg 3 sends a str parameter as text of unknown type: the server
    # types it timestamptz and reads it in the session's zone.
    conn.execute(f"DROP STREAM IF EXISTS {s}_tz")
    conn.execute(f"CREATE STREAM {s}_tz (name TEXT, due TIMESTAMPTZ)")
    conn.execute(f"INSERT INTO {s}_tz VALUES ('tz1', '2026-01-01 00:00:00+00')")
    conn.execute("SET TIME ZONE 'Asia/Tokyo'")
    got = keys(conn, f"SELECT name FROM {s}_tz WHERE due = %s", ("2026-01-01 09:00:00",))
    c.check(got == ["tz1"], f"09:00 in Tokyo is 00:00 UTC: got {got!r}")
    # A zone half an hour off the hour; text without seconds, as Postgres
    # takes it. psycopg parses the text result, offset and all.
    conn.execute("SET TIME ZONE 'Asia/Kolkata'")
    conn.execute(f"INSERT INTO {s}_tz VALUES (%s, %s)", ("tz2", "2026-01-01 10:00"))
    due = conn.execute(f"SELECT due FROM {s}_tz WHERE name = 'tz2'").fetchone()[0]
    want = datetime.datetime(2026, 1, 1, 4, 30, tzinfo=datetime.timezone.utc)
    c.check(due == want and due.utcoffset() == datetime.timedelta(hours=5, minutes=30), f"got {due!r}")
    conn.execute("SET TIME ZONE DEFAULT")
    conn.execute(f"DROP STREAM {s}_tz")

with c.step("LISTEN stream"):
    conn.execute(f"LISTEN {s}")
    other.execute(f"INSERT INTO {s} VALUES (%s, %s, %s)", ("n1", "notify", 42))
    got = list(conn.notifies(timeout=NOTIFY_TIMEOUT, stop_after=1))
    c.check(got, f"no notification on channel {s} within {NOTIFY_TIMEOUT}s")
    c.check(got[0].channel == s, f"notification channel {got[0].channel!r} != {s!r}")
    check_stream_payload(c, got[0].payload, "n1", "n1", "notify", 42)
    conn.execute(f"UNLISTEN {s}")

with c.step("LISTEN/NOTIFY channel"):
    chan = f"{s}_chan"
    conn.execute(f"LISTEN {chan}")
    other.execute(f"NOTIFY {chan}, 'hello from psycopg3'")
    got = list(conn.notifies(timeout=NOTIFY_TIMEOUT, stop_after=1))
    c.check(got, f"no notification on channel {chan} within {NOTIFY_TIMEOUT}s")
    c.check((got[0].channel, got[0].payload) == (chan, "hello from psycopg3"), f"got {got[0]!r}")
    conn.execute("UNLISTEN *")

with c.step("COPY (SUBSCRIBE) live rows"):
    total = other.execute(f"SELECT count(*) FROM {s}").fetchone()[0]
    rows = []
    try:
        # Every record from the beginning, then each one as it is committed:
        # (_partition, _offset, _timestamp, _key, task_id, kind, n) as text.
        with conn.cursor().copy(f"COPY (SUBSCRIBE {s} FROM BEGINNING) TO STDOUT") as copy:
            for row in copy.rows():
                rows.append(row)
                if len(rows) == total:
                    other.execute(f"INSERT INTO {s} VALUES ('live', 'copy', 7)")
                if row[4] == "live":
                    conn.cancel_safe()  # ends it with 57014; the connection goes on
    except psycopg.errors.QueryCanceled:
        pass
    c.check(len(rows) == total + 1, f"{len(rows)} rows, want {total + 1}")
    nxt = {}
    for part, off, *_ in rows:
        c.check(int(off) == nxt.get(part, 0), f"partition {part}: offset {off} out of order")
        nxt[part] = int(off) + 1
    c.check(conn.execute("SELECT 1").fetchone() == (1,), "connection usable after cancel")

with c.step("JSON facts with ::jsonb parameters and dict rows"):
    import json
    from psycopg.rows import dict_row
    t = f"{s}_board"
    conn.execute(f"DROP TABLE IF EXISTS {t}")
    conn.execute(f"CREATE TABLE {t} (topic TEXT PRIMARY KEY, fact JSONB)")
    conn.execute(f"INSERT INTO {t} VALUES (%s, %s::jsonb)", ("plan", json.dumps({"steps": 3, "by": "a1"})))
    conn.execute(f"UPDATE {t} SET fact = %s::jsonb WHERE topic = %s AND fact @> %s::jsonb",
                 (json.dumps({"steps": 4}), "plan", json.dumps({"by": "a1"})))
    with conn.cursor(row_factory=dict_row) as cur:
        got = cur.execute(f"SELECT count(*), max(fact ->> 'steps') FROM {t}").fetchone()
    c.check(got == {"count": 1, "max": "4"}, f"got {got!r}")
    try:
        conn.execute("SELECT %s::jsonb", ("{not json",))
        c.check(False, "invalid JSON accepted")
    except psycopg.errors.InvalidTextRepresentation:
        pass
    conn.execute(f"DROP TABLE {t}")

with c.step("JSON operators, paths and set-returning functions with parameters"):
    t = f"{s}_facts"
    conn.execute(f"DROP TABLE IF EXISTS {t}")
    conn.execute(f"CREATE TABLE {t} (topic TEXT PRIMARY KEY, fact JSONB)")
    conn.execute(f"INSERT INTO {t} VALUES ('a', %s::jsonb), ('b', %s::jsonb)",
                 (json.dumps({"tags": ["x", "y"], "by": {"name": "ann"}}), json.dumps({"tags": ["z"]})))
    # The key of ->> and the path of #>> are parameters of no declared type.
    got = conn.execute(f"SELECT fact ->> %s, fact #>> %s FROM {t} ORDER BY topic", ("tags", "{by,name}")).fetchall()
    c.check(got == [('["x", "y"]', "ann"), ('["z"]', None)], f"operators {got!r}")
    got = conn.execute(f"SELECT fact #> %s FROM {t} ORDER BY topic", (["tags", "-1"],)).fetchall()
    c.check(got == [("y",), ("z",)], f"path as a list {got!r}")
    got = conn.execute(f"SELECT b.topic, tag FROM {t} b, jsonb_array_elements_text(b.fact -> %s) AS tag "
                       "ORDER BY 1, 2", ("tags",)).fetchall()
    c.check(got == [("a", "x"), ("a", "y"), ("b", "z")], f"elements per row {got!r}")
    got = conn.execute("SELECT g FROM generate_series(1, %s) AS g", (3,)).fetchall()
    c.check(got == [(1,), (2,), (3,)], f"series {got!r}")
    got = conn.execute(f"SELECT topic FROM {t} WHERE topic = ANY(%s) ORDER BY 1", (["a", "b c", "b"],)).fetchall()
    c.check(got == [("a",), ("b",)], f"a list for = ANY {got!r}")
    got = conn.execute("SELECT %s::text[]", (["x", "y, z"],)).fetchone()[0]
    c.check(got == ["x", "y, z"], f"a list cast to text[] {got!r}")
    got = conn.execute(f"SELECT json_agg(f ORDER BY topic) FROM {t} f").fetchone()[0]
    c.check([r["topic"] for r in got] == ["a", "b"] and got[0]["fact"]["by"] == {"name": "ann"}, f"rows {got!r}")
    conn.execute(f"DROP TABLE {t}")

with c.step("current_setting in a prepared statement"):
    conn.execute("SET application_name = 'psycopg-step'")
    cur = conn.execute("SELECT current_setting('application_name')")
    got = (cur.description[0].name, cur.fetchone()[0])
    c.check(got == ("current_setting", "psycopg-step"), f"got {got!r}")
    # The name as a parameter, as SQLAlchemy's reflection sends it.
    got = conn.execute("SELECT current_setting(%s), current_setting(%s::varchar)",
                       ["Application_Name", "server_version_num"]).fetchone()
    c.check(got == ("psycopg-step", "150000"), f"got {got!r}")

with c.step("UUID keys and Decimal text"):
    import decimal
    import uuid
    t = f"{s}_agents"
    conn.execute(f"DROP TABLE IF EXISTS {t}")
    conn.execute(f"CREATE TABLE {t} (id UUID PRIMARY KEY, note TEXT)")
    # psycopg declares a UUID parameter uuid, and a Decimal numeric; both
    # are assigned as Postgres assigns them (a numeric to text, as text).
    agent = uuid.uuid4()
    conn.execute(f"INSERT INTO {t} VALUES (%s, %s)", (agent, decimal.Decimal("1.50")))
    got = conn.execute(f"SELECT id, note FROM {t} WHERE id = %s", (agent,)).fetchall()
    c.check(got == [(agent, "1.50")], f"got {got!r}")
    # A str is sent untyped; the server describes the parameter as uuid and
    # reads the text as Postgres reads a uuid (any case, braces allowed).
    got = conn.execute(f"SELECT note FROM {t} WHERE id = %s", ("{" + str(agent).upper() + "}",)).fetchall()
    c.check(got == [("1.50",)], f"lookup by upper-case uuid text got {got!r}")
    try:
        conn.execute(f"INSERT INTO {t} VALUES (%s, 'x')", ("not a uuid",))
        c.check(False, "a bad uuid was accepted")
    except psycopg.errors.InvalidTextRepresentation:
        pass
    conn.execute(f"DROP TABLE {t}")

with c.step("numeric columns take and give Decimal"):
    import decimal
    D = decimal.Decimal
    t = f"{s}_ledger"
    conn.execute(f"DROP TABLE IF EXISTS {t}")
    conn.execute(f"CREATE TABLE {t} (id TEXT PRIMARY KEY, balance NUMERIC(12,2) NOT NULL)")
    # Text and binary parameters; extra digits round half away from zero.
    conn.execute(f"INSERT INTO {t} VALUES (%s, %s)", ("a", D("10.005")))
    conn.execute(f"INSERT INTO {t} VALUES (%b, %b)", ("b", D("-0.5")))
    conn.execute(f"UPDATE {t} SET balance = balance + %s WHERE id = %s", (D("0.1"), "a"))
    got = conn.execute(f"SELECT id, balance FROM {t} ORDER BY id").fetchall()
    c.check(got == [("a", D("10.11")), ("b", D("-0.50"))], f"text results {got!r}")
    with conn.cursor(binary=True) as cur:
        got = cur.execute(f"SELECT balance FROM {t} WHERE balance > %s", (D("0"),)).fetchall()
    c.check(got == [(D("10.11"),)], f"binary results {got!r}")
    try:
        conn.execute(f"INSERT INTO {t} VALUES ('c', %s)", (D("12345678901"),))
        c.check(False, "a numeric overflow was accepted")
    except psycopg.errors.NumericValueOutOfRange:
        pass
    conn.execute(f"DROP TABLE {t}")

with c.step("notices over the extended protocol"):
    notices = []
    conn.add_notice_handler(lambda d: notices.append((d.severity, d.sqlstate, d.message_primary)))
    conn.execute("DROP TABLE IF EXISTS no_such_table")
    conn.execute("CREATE STREAM IF NOT EXISTS " + s + " (task_id TEXT)")
    want = [("NOTICE", "00000", 'table "no_such_table" does not exist, skipping'),
            ("NOTICE", "42P07", f'relation "{s}" already exists, skipping')]
    c.check(notices == want, f"notices {notices!r}")

with c.step("DDL in psycopg's default (non-autocommit) mode"):
    # psycopg opens a transaction block before the first statement: the DDL
    # takes effect at once, with a warning, and the INSERT commits with it.
    plain = psycopg.connect(conninfo())
    warned = []
    plain.add_notice_handler(lambda d: warned.append((d.severity, d.sqlstate)))
    t = s + "_plain"
    plain.execute(f"CREATE TABLE {t} (id INT PRIMARY KEY, v TEXT)")
    plain.execute(f"INSERT INTO {t} VALUES (1, 'one')")
    plain.commit()
    c.check(warned == [("WARNING", "01000")], f"notices {warned!r}")
    got = other.execute(f"SELECT id, v FROM {t}").fetchall()
    c.check(got == [(1, "one")], f"after commit another connection sees {got!r}")
    plain.execute(f"INSERT INTO {t} VALUES (2, 'two')")
    try:
        plain.execute(f"DROP TABLE {t}")
        c.check(False, "DROP of a table the open transaction wrote to was accepted")
    except psycopg.errors.ActiveSqlTransaction:
        plain.rollback()
    plain.execute(f"DROP TABLE {t}")
    plain.commit()
    plain.close()

with c.step("drop stream"):
    conn.execute(f"DROP STREAM {s}")
    conn.close()
    other.close()

c.ok()
