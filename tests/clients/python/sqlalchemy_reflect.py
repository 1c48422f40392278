"""SQLAlchemy reflection of a Brikk stream, view and table (psycopg 3
dialect): inspect(engine).has_table, get_table_names, get_columns,
get_view_names, get_view_definition, get_pk_constraint, get_indexes,
Table(..., autoload_with=engine) and pandas' read_sql_table, which run
SQLAlchemy's pg_catalog queries. The relations are set up with a plain
psycopg connection in autocommit so that this program tests reflection only
(sqlalchemy_client.py tests statements through SQLAlchemy)."""

import pandas
import psycopg
from sqlalchemy import BigInteger, Integer, MetaData, Table, Text, create_engine, inspect, select

from _common import DBNAME, HOST, PORT, STREAM_COLUMNS, USER, Client, conninfo, stream_name

c = Client("sqlalchemy-reflect")
s = stream_name("sqlalchemy_reflect")

with c.step("create stream (psycopg)"):
    setup = psycopg.connect(conninfo(), autocommit=True)
    setup.execute(f"DROP STREAM IF EXISTS {s}")
    setup.execute(f"CREATE STREAM {s} {STREAM_COLUMNS}")

with c.step("connect (dialect initialisation)"):
    engine = create_engine(f"postgresql+psycopg://{USER}@{HOST}:{PORT}/{DBNAME}")
    with engine.connect():
        pass

with c.step("inspect(engine).has_table"):
    c.check(inspect(engine).has_table(s), f"has_table({s!r}) is False")

with c.step("inspect(engine).get_table_names"):
    names = inspect(engine).get_table_names()
    c.check(s in names, f"{s} not in get_table_names(): {names!r}")

with c.step("inspect(engine).get_columns"):
    cols = inspect(engine).get_columns(s)
    got = [(col["name"], type(col["type"]).__name__) for col in cols]
    # The stream's own columns, in order and with their types; Brikk may
    # also list its system columns (_partition, _offset, ...).
    user_cols = [col for col in cols if not col["name"].startswith("_")]
    c.check([col["name"] for col in user_cols] == ["task_id", "kind", "n"], f"get_columns({s!r}) gave {got!r}")
    c.check(isinstance(user_cols[0]["type"], Text) and isinstance(user_cols[1]["type"], Text)
            and isinstance(user_cols[2]["type"], BigInteger), f"column types: {got!r}")

with c.step("inspect(engine).get_view_names and get_view_definition"):
    v = s + "_builds"
    setup.execute(f"CREATE VIEW {v} AS SELECT task_id, n FROM {s} WHERE kind = 'build'")
    views = inspect(engine).get_view_names()
    c.check(v in views and s not in views, f"get_view_names(): {views!r}")
    definition = inspect(engine).get_view_definition(v)
    c.check(definition is not None and f"FROM {s} WHERE kind = 'build'" in definition,
            f"get_view_definition({v!r}) gave {definition!r}")
    setup.execute(f"DROP VIEW {v}")

t = s + "_board"

with c.step("inspect(engine).get_pk_constraint and get_indexes of a table"):
    setup.execute(f"DROP TABLE IF EXISTS {t}")
    setup.execute(f"CREATE TABLE {t} (agent TEXT, slot INT, note TEXT, PRIMARY KEY (slot, agent))")
    setup.execute(f"INSERT INTO {t} VALUES ('a1', 1, 'first'), ('a2', 2, 'second')")
    pk = inspect(engine).get_pk_constraint(t)
    c.check(pk["constrained_columns"] == ["slot", "agent"] and pk["name"] == f"{t}_pkey",
            f"get_pk_constraint({t!r}) gave {pk!r}")
    # The key's index backs the constraint: no other index to list.
    indexes = inspect(engine).get_indexes(t)
    c.check(indexes == [], f"get_indexes({t!r}) gave {indexes!r}")
    pk = inspect(engine).get_pk_constraint(s)
    c.check(pk["constrained_columns"] == [], f"a stream has no primary key, got {pk!r}")

with c.step("Table(name, metadata, autoload_with=engine)"):
    table = Table(t, MetaData(), autoload_with=engine)
    c.check([col.name for col in table.primary_key] == ["slot", "agent"],
            f"reflected primary key: {list(table.primary_key)!r}")
    c.check(isinstance(table.c.slot.type, Integer) and not table.c.slot.nullable,
            f"reflected slot column: {table.c.slot.type!r}, nullable={table.c.slot.nullable}")
    with engine.connect() as conn:
        rows = conn.execute(select(table.c.agent, table.c.note).order_by(table.c.slot)).all()
    c.check([tuple(r) for r in rows] == [("a1", "first"), ("a2", "second")], f"select on the reflected table: {rows!r}")

with c.step("pandas.read_sql_table"):
    frame = pandas.read_sql_table(t, engine, columns=["agent", "slot", "note"])
    c.check(frame.sort_values("slot")["agent"].tolist() == ["a1", "a2"], f"read_sql_table gave\n{frame}")
    setup.execute(f"DROP TABLE {t}")

with c.step("drop stream (psycopg)"):
    engine.dispose()
    setup.execute(f"DROP STREAM {s}")
    setup.close()

c.ok()
