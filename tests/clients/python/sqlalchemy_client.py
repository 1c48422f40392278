"""SQLAlchemy Core (psycopg 3 dialect) against Brikk: the dialect's start-up
queries on first connect, DDL and text() statements with bound parameters on
a stream, engine.begin() commit, an explicit rollback, a table whose
autoincrement key is SERIAL, and the ORM (a declarative model created by
create_all, then Session add, update, delete). Reflection is in
sqlalchemy_reflect.py.

Notifications are not tested here: SQLAlchemy has no LISTEN API of its own
(one would reach through to the psycopg connection, which
psycopg3_client.py already covers).

SQLAlchemy never runs in autocommit by default: psycopg sends BEGIN before the
first statement of every connection checkout, so every statement below runs
inside an explicit transaction block."""

import datetime

from typing import Optional

from sqlalchemy import Column, Integer, MetaData, String, Table, Text, create_engine, func, insert, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from _common import DBNAME, HOST, PORT, STREAM_COLUMNS, USER, Client, stream_name

c = Client("sqlalchemy")
s = stream_name("sqlalchemy")
url = f"postgresql+psycopg://{USER}@{HOST}:{PORT}/{DBNAME}"


def keys(conn, sql, **params):
    return [r[0] for r in conn.execute(text(sql), params)]


with c.step("connect (dialect initialisation)"):
    engine = create_engine(url)
    with engine.connect() as conn:
        one = conn.execute(text("SELECT 1")).scalar()
        c.check(one == 1, f"SELECT 1 returned {one!r}")

with c.step("create stream"):
    # DDL is not transactional in Brikk: inside the dialect's transaction
    # block it takes effect at once, with a warning (see docs/sql.md).
    with engine.begin() as conn:
        conn.execute(text(f"DROP STREAM IF EXISTS {s}"))
        conn.execute(text(f"CREATE STREAM {s} {STREAM_COLUMNS}"))

with c.step("insert literal"):
    with engine.begin() as conn:
        res = conn.execute(text(f"INSERT INTO {s} VALUES ('t1', 'build', 1), ('t2', 'test', 2)"))
        c.check(res.rowcount == 2, f"rowcount {res.rowcount} != 2")

with c.step("insert with parameters"):
    with engine.begin() as conn:
        conn.execute(text(f"INSERT INTO {s} VALUES (:id, :kind, :n)"), {"id": "t3", "kind": "build", "n": 3})
        # executemany through the dialect (psycopg's executemany / insertmanyvalues).
        conn.execute(text(f"INSERT INTO {s} VALUES (:id, :kind, :n)"),
                     [{"id": "t4", "kind": "deploy", "n": 4}, {"id": "t5", "kind": "deploy", "n": 5},
                      {"id": "t6", "kind": "big", "n": 5_000_000_000}])

with c.step("query with parameters"):
    with engine.connect() as conn:
        rows = conn.execute(text(f"SELECT task_id, kind, n FROM {s} WHERE kind = :kind AND n >= :min ORDER BY n"),
                            {"kind": "build", "min": 2}).all()
        got = [tuple(r) for r in rows]
        c.check(got == [("t3", "build", 3)], f"got {got!r}")
        got = keys(conn, f"SELECT task_id FROM {s} WHERE kind = :kind ORDER BY n", kind="deploy")
        c.check(got == ["t4", "t5"], f"got {got!r}")
        n = conn.execute(text(f"SELECT n FROM {s} WHERE task_id = :id").bindparams(id="t6")).scalar_one()
        c.check(n == 5_000_000_000, f"int8 round trip: got {n!r}")
        row = conn.execute(text(f"SELECT _partition, _offset, _timestamp, _key FROM {s} WHERE _key = :k"),
                           {"k": "t1"}).mappings().one()
        c.check(0 <= row["_partition"] < 4 and row["_offset"] >= 0, f"system columns {dict(row)!r}")
        c.check(isinstance(row["_timestamp"], datetime.datetime), f"_timestamp {row['_timestamp']!r}")

with c.step("transaction commit"):
    with engine.begin() as conn:
        conn.execute(text(f"INSERT INTO {s} VALUES (:id, 'txn', :n)"), [{"id": "tx1", "n": 100}, {"id": "tx2", "n": 101}])
        with engine.connect() as other:
            seen = keys(other, f"SELECT task_id FROM {s} WHERE kind = :kind", kind="txn")
        c.check(seen == [], f"uncommitted rows visible to another connection: {seen!r}")
    with engine.connect() as conn:
        seen = sorted(keys(conn, f"SELECT task_id FROM {s} WHERE kind = :kind", kind="txn"))
    c.check(seen == ["tx1", "tx2"], f"after COMMIT another connection sees {seen!r}")

with c.step("transaction rollback"):
    with engine.connect() as conn:
        trans = conn.begin()
        conn.execute(text(f"INSERT INTO {s} VALUES (:id, :kind, :n)"), {"id": "rb1", "kind": "rolledback", "n": 200})
        trans.rollback()
        seen = keys(conn, f"SELECT task_id FROM {s} WHERE kind = :kind", kind="rolledback")
        c.check(seen == [], f"rolled-back row visible: {seen!r}")

with c.step("table with an autoincrement key: create_all, inserted_primary_key, RETURNING"):
    # Column(Integer, primary_key=True) is SERIAL in the dialect's DDL; the
    # ids come back through INSERT … RETURNING.
    md = MetaData()
    notes = Table(f"{s}_notes", md, Column("id", Integer, primary_key=True), Column("body", Text))
    md.create_all(engine)  # in the dialect's transaction block
    with engine.begin() as conn:
        pk = tuple(conn.execute(insert(notes).values(body="hello")).inserted_primary_key)
        many = [r[0] for r in conn.execute(insert(notes).returning(notes.c.id), [{"body": "a"}, {"body": "b"}])]
    c.check(pk == (1,), f"inserted_primary_key {pk!r}")
    c.check(many == [2, 3], f"RETURNING ids {many!r}")
    with engine.connect() as conn:
        got = [tuple(r) for r in conn.execute(select(notes).order_by(notes.c.id))]
    c.check(got == [(1, "hello"), (2, "a"), (3, "b")], f"rows {got!r}")
    md.drop_all(engine)

with c.step("ORM: declarative model, create_all, Session add / update / delete"):
    class Base(DeclarativeBase):
        pass

    class Fact(Base):
        __tablename__ = f"{s}_facts"
        id: Mapped[int] = mapped_column(primary_key=True)
        topic: Mapped[str] = mapped_column(String(50))
        body: Mapped[Optional[str]]

    Base.metadata.create_all(engine)  # DDL inside the Session's transaction block
    with Session(engine) as session:
        session.add_all([Fact(topic="rain", body="0.7"), Fact(topic="sun")])
        session.commit()
        rain = session.scalars(select(Fact).where(Fact.topic == "rain")).one()
        rain.body = "0.9"
        session.commit()
        got = [(f.id, f.topic, f.body) for f in session.scalars(select(Fact).order_by(Fact.id))]
        c.check(got == [(1, "rain", "0.9"), (2, "sun", None)], f"ORM rows {got!r}")
        session.delete(rain)
        session.commit()
        n = session.scalar(select(func.count()).select_from(Fact))
        c.check(n == 1, f"count after delete {n!r}")
    Base.metadata.drop_all(engine)

with c.step("drop stream"):
    with engine.begin() as conn:
        conn.execute(text(f"DROP STREAM {s}"))
    engine.dispose()

c.ok()
