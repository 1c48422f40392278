"""SQLAlchemy reflection of a Brikk stream and view (psycopg 3 dialect):
inspect(engine).has_table, get_table_names, get_columns, get_view_names
and get_view_definition, which run
SQLAlchemy's pg_catalog queries. The stream is set up with a plain psycopg
connection in autocommit so that this program tests reflection only
(sqlalchemy_client.py tests statements through SQLAlchemy)."""

import psycopg
from sqlalchemy import BigInteger, Text, create_engine, inspect

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

with c.step("drop stream (psycopg)"):
    engine.dispose()
    setup.execute(f"DROP STREAM {s}")
    setup.close()

c.ok()
