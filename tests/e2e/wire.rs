//! Streams over the wire with tokio-postgres: appends, offsets, key
//! hashing, transactions, prepared statements, errors, restart, shutdown.

use std::collections::HashMap;
use std::io::{Read, Write};

use brikk_storage::log::partition_for_key;
use brikk_tests::{sqlstate, Server};
use tokio_postgres::types::Type;

use super::{fresh, texts};

const TASKS: &str =
    "CREATE STREAM tasks (task_id TEXT, kind TEXT, payload TEXT) WITH (partitions = 8, key = 'task_id')";

#[tokio::test]
async fn append_and_read_with_dense_offsets_and_key_hashing() {
    let (_dir, server) = fresh();
    let c = server.client().await.unwrap();
    c.batch_execute(TASKS).await.unwrap();
    let n = c
        .execute(
            "INSERT INTO tasks VALUES ('t1', 'summarize', '{\"doc\": 17}'), ('t2', 'plan', NULL), ('t3', 'plan', 'x')",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(n, 3, "command tag row count");
    for i in 4..100 {
        c.execute("INSERT INTO tasks (task_id, kind) VALUES ($1, $2)", &[&format!("t{i}"), &"k"]).await.unwrap();
    }
    let rows = c
        .query("SELECT _partition, _offset, _key, task_id, kind FROM tasks ORDER BY _partition, _offset", &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), 99);
    let mut next: HashMap<i32, i64> = HashMap::new();
    for r in &rows {
        let (p, off, key, id): (i32, i64, Option<String>, String) = (r.get(0), r.get(1), r.get(2), r.get(3));
        assert_eq!(key.as_deref(), Some(id.as_str()), "_key is the key column's text");
        assert_eq!(p as u32, partition_for_key(id.as_bytes(), 8), "partition of {id} follows murmur2");
        let want = next.entry(p).or_insert(0);
        assert_eq!(off, *want, "offsets dense from 0 in partition {p}");
        *want += 1;
    }
    assert!(next.len() > 4, "keys spread over partitions: {next:?}");

    // SELECT * leaves the system columns out.
    let star = c.query("SELECT * FROM tasks WHERE task_id = 't1'", &[]).await.unwrap();
    assert_eq!(star[0].columns().iter().map(|c| c.name()).collect::<Vec<_>>(), ["task_id", "kind", "payload"]);
    assert_eq!(star[0].get::<_, Option<String>>(2).as_deref(), Some("{\"doc\": 17}"));

    // Full SQL: aggregates, window functions, joins.
    let agg = c
        .query_one("SELECT kind, count(*) FROM tasks GROUP BY kind ORDER BY count(*) DESC LIMIT 1", &[])
        .await
        .unwrap();
    assert_eq!((agg.get::<_, String>(0), agg.get::<_, i64>(1)), ("k".to_string(), 96));
    let w = c
        .query("SELECT task_id, row_number() OVER (PARTITION BY _partition ORDER BY _offset) FROM tasks", &[])
        .await
        .unwrap();
    assert_eq!(w.len(), 99);
    let j = c.query_one("SELECT count(*) FROM tasks a JOIN tasks b ON a.task_id = b.task_id", &[]).await.unwrap();
    assert_eq!(j.get::<_, i64>(0), 99);
}

#[tokio::test]
async fn unkeyed_streams_spread_evenly() {
    let (_dir, server) = fresh();
    let c = server.client().await.unwrap();
    c.batch_execute("CREATE STREAM ev (n BIGINT) WITH (partitions = 4)").await.unwrap();
    for i in 0..40i64 {
        c.execute("INSERT INTO ev VALUES ($1)", &[&i]).await.unwrap();
    }
    let rows = c.query("SELECT _partition, count(*) FROM ev GROUP BY 1 ORDER BY 1", &[]).await.unwrap();
    let counts: Vec<i64> = rows.iter().map(|r| r.get(1)).collect();
    assert_eq!(counts, vec![10, 10, 10, 10]);
    let keys = c.query_one("SELECT count(*) FROM ev WHERE _key IS NULL", &[]).await.unwrap();
    assert_eq!(keys.get::<_, i64>(0), 40);
}

#[tokio::test]
async fn insert_select_and_filter_pushdown_in_explain() {
    let (_dir, server) = fresh();
    let c = server.client().await.unwrap();
    c.batch_execute(TASKS).await.unwrap();
    c.batch_execute("CREATE STREAM archive (task_id TEXT, kind TEXT, payload TEXT) WITH (partitions = 2)")
        .await
        .unwrap();
    c.batch_execute("INSERT INTO tasks VALUES ('a', 'x', '1'), ('b', 'y', '2'), ('c', 'x', '3')").await.unwrap();
    let n = c.execute("INSERT INTO archive SELECT * FROM tasks WHERE kind = 'x'", &[]).await.unwrap();
    assert_eq!(n, 2);
    let got: Vec<String> =
        c.query("SELECT task_id FROM archive ORDER BY task_id", &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(got, ["a", "c"]);

    let plan = explain(&c, "SELECT * FROM tasks WHERE _partition = 3 AND _offset >= 5 AND _offset < 9").await;
    assert!(plan.contains("StreamScanExec: stream=tasks, ranges=[p3:5..5]"), "{plan}");
    let plan = explain(&c, "SELECT * FROM tasks WHERE _partition IN (1, 2)").await;
    assert!(plan.contains("ranges=[p1:"), "{plan}");
    assert!(!plan.contains("p0:"), "{plan}");
    let plan = explain(&c, "SELECT * FROM tasks WHERE _timestamp > now() + interval '1 hour'").await;
    let line = plan.lines().find(|l| l.contains("StreamScanExec")).unwrap();
    let ranges = line.split("ranges=[").nth(1).unwrap().trim_end_matches(']');
    for r in ranges.split(", ") {
        let (from, to) = r.split(':').nth(1).unwrap().split_once("..").unwrap();
        assert_eq!(from, to, "a future timestamp bound empties every range: {plan}");
    }
}

/// A stream scan reports its row count (the width of its offset ranges), so
/// joins build on the smaller side: a cross join of a stream with three
/// values keeps the values in memory and streams the stream, rather than
/// emitting one tiny batch per stream row.
#[tokio::test]
async fn joins_build_on_the_smaller_side_by_stream_row_counts() {
    let (_dir, server) = fresh();
    let c = server.client().await.unwrap();
    c.batch_execute("CREATE STREAM big (n BIGINT) WITH (partitions = 2)").await.unwrap();
    c.batch_execute("INSERT INTO big SELECT g FROM generate_series(1, 1000) AS g").await.unwrap();
    let sql = "SELECT n + d FROM big CROSS JOIN (VALUES (1), (2), (3)) AS t(d)";
    let plan = explain(&c, sql).await;
    let join = plan.lines().position(|l| l.contains("CrossJoinExec")).expect("a cross join");
    let values = plan.lines().position(|l| l.contains("DataSourceExec")).expect("the values");
    let scan = plan.lines().position(|l| l.contains("StreamScanExec")).expect("the stream");
    assert!(join < values && values < scan, "the values are the build (first) side:\n{plan}");
    let n: i64 = c.query_one(&format!("SELECT count(*) FROM ({sql}) q"), &[]).await.unwrap().get(0);
    assert_eq!(n, 3000);
}

/// HOP expands the rows above the stream scan, so filters on the stream's
/// columns still narrow the scan; an aggregation referenced twice (a CTE
/// read by both sides of a join) runs once, and gives what it gives when
/// run twice; a CTE with a volatile function is never shared.
#[tokio::test]
async fn time_windows_keep_scan_ranges_and_repeated_aggregates_run_once() {
    let (_dir, server) = fresh();
    let c = server.client().await.unwrap();
    c.batch_execute("CREATE STREAM ticks (item BIGINT, at TIMESTAMP) WITH (partitions = 2)").await.unwrap();
    c.batch_execute(
        "INSERT INTO ticks SELECT g % 7, to_timestamp_micros(g * 300000) FROM generate_series(1, 2000) AS g",
    )
    .await
    .unwrap();
    let plan = explain(
        &c,
        "SELECT count(*) FROM HOP(ticks, at, INTERVAL '2 seconds', INTERVAL '10 seconds') WHERE _offset < 10",
    )
    .await;
    let expand = plan.lines().position(|l| l.contains("WindowExpandExec: slide='2 seconds', size='10 seconds'"));
    let scan = plan.lines().position(|l| l.contains("StreamScanExec: stream=ticks, ranges=[p0:0..10, p1:0..10]"));
    assert!(expand.is_some() && scan.is_some() && expand < scan, "{plan}");
    let n: i64 = c
        .query_one("SELECT count(*) FROM HOP(ticks, at, INTERVAL '2 seconds', INTERVAL '10 seconds')", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 10_000, "each tick is in five windows");

    let hottest = "WITH counts AS (SELECT item, window_start AS ws, count(*) AS num \
           FROM HOP(ticks, at, INTERVAL '2 seconds', INTERVAL '10 seconds') GROUP BY item, window_start), \
         maxes AS (SELECT ws, max(num) AS maxn FROM counts GROUP BY ws) \
         SELECT count(*), sum(c.item), sum(c.num) FROM counts c JOIN maxes m ON c.ws = m.ws AND c.num = m.maxn";
    let plan = explain(&c, hottest).await;
    assert_eq!(plan.matches("SharedExec: consumers=2").count(), 2, "{plan}");
    // The same answer from a window function (one reference, no sharing).
    let ranked = "WITH counts AS (SELECT item, window_start AS ws, count(*) AS num \
           FROM HOP(ticks, at, INTERVAL '2 seconds', INTERVAL '10 seconds') GROUP BY item, window_start), \
         ranked AS (SELECT item, num, max(num) OVER (PARTITION BY ws) AS maxn FROM counts) \
         SELECT count(*), sum(item), sum(num) FROM ranked WHERE num = maxn";
    assert!(!explain(&c, ranked).await.contains("SharedExec"));
    let row = |r: tokio_postgres::Row| (r.get::<_, i64>(0), r.get::<_, i64>(1), r.get::<_, i64>(2));
    let shared = row(c.query_one(hottest, &[]).await.unwrap());
    assert_eq!(shared, row(c.query_one(ranked, &[]).await.unwrap()));
    assert!(shared.0 > 0);

    let volatile = "WITH r AS (SELECT item, max(random()) AS x FROM ticks GROUP BY item) \
         SELECT count(*) FROM r a JOIN r b ON a.item = b.item AND a.x = b.x";
    assert!(!explain(&c, volatile).await.contains("SharedExec"), "random() is evaluated per reference");
}

async fn explain(c: &tokio_postgres::Client, sql: &str) -> String {
    let rows = c.query(&format!("EXPLAIN {sql}"), &[]).await.unwrap();
    rows.iter().map(|r| format!("{}\n", r.get::<_, String>(1))).collect()
}

#[tokio::test]
async fn timestamp_filters_use_the_time_index_and_return_the_right_rows() {
    let (_dir, server) = fresh();
    let c = server.client().await.unwrap();
    c.batch_execute("CREATE STREAM s (n BIGINT)").await.unwrap();
    c.batch_execute("INSERT INTO s VALUES (1), (2)").await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let mid: std::time::SystemTime = std::time::SystemTime::now();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    c.batch_execute("INSERT INTO s VALUES (3), (4), (5)").await.unwrap();
    let rows = c.query("SELECT n FROM s WHERE _timestamp >= $1 ORDER BY n", &[&mid]).await.unwrap();
    assert_eq!(rows.iter().map(|r| r.get::<_, i64>(0)).collect::<Vec<_>>(), vec![3, 4, 5]);
    let rows = c.query("SELECT n FROM s WHERE _timestamp < $1 ORDER BY n", &[&mid]).await.unwrap();
    assert_eq!(rows.len(), 2);
    let plan = explain(
        &c,
        &format!(
            "SELECT n FROM s WHERE _timestamp >= to_timestamp_micros({})",
            mid.duration_since(std::time::UNIX_EPOCH).unwrap().as_micros()
        ),
    )
    .await;
    assert!(plan.contains("ranges=[p0:2..5]"), "{plan}");
}

#[tokio::test]
async fn transactions_are_atomic_and_invisible_until_commit() {
    let (_dir, server) = fresh();
    let a = server.client().await.unwrap();
    let b = server.client().await.unwrap();
    a.batch_execute(TASKS).await.unwrap();
    a.batch_execute("BEGIN").await.unwrap();
    a.execute("INSERT INTO tasks VALUES ('t1', 'k', 'p')", &[]).await.unwrap();
    a.execute("INSERT INTO tasks VALUES ('t2', 'k', 'p'), ('t3', 'k', 'p')", &[]).await.unwrap();
    let seen = b.query_one("SELECT count(*) FROM tasks", &[]).await.unwrap();
    assert_eq!(seen.get::<_, i64>(0), 0, "nothing visible before COMMIT");
    a.batch_execute("COMMIT").await.unwrap();
    let seen = b.query_one("SELECT count(*) FROM tasks", &[]).await.unwrap();
    assert_eq!(seen.get::<_, i64>(0), 3);

    a.batch_execute("BEGIN; INSERT INTO tasks VALUES ('t4', 'k', 'p'); ROLLBACK").await.unwrap();
    let seen = b.query_one("SELECT count(*) FROM tasks", &[]).await.unwrap();
    assert_eq!(seen.get::<_, i64>(0), 3, "ROLLBACK discards");

    // An error aborts the transaction until ROLLBACK; nothing of it lands.
    a.batch_execute("BEGIN").await.unwrap();
    a.execute("INSERT INTO tasks VALUES ('t5', 'k', 'p')", &[]).await.unwrap();
    let e = a.execute("INSERT INTO nope VALUES (1)", &[]).await.unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("42P01"));
    let e = a.execute("SELECT 1", &[]).await.unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("25P02"));
    a.batch_execute("COMMIT").await.unwrap(); // acts as ROLLBACK
    let seen = b.query_one("SELECT count(*) FROM tasks", &[]).await.unwrap();
    assert_eq!(seen.get::<_, i64>(0), 3);

    // A multi-statement string is one implicit transaction.
    let e = a
        .batch_execute("INSERT INTO tasks VALUES ('t6', 'k', 'p'); INSERT INTO tasks VALUES (1, 2, 3, 4)")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("42601"));
    let seen = b.query_one("SELECT count(*) FROM tasks", &[]).await.unwrap();
    assert_eq!(seen.get::<_, i64>(0), 3, "first INSERT of the failed string is not committed");

    // A statement that fails while its rows are being sent (not when it is
    // planned) aborts the transaction too, in either protocol.
    const FAILS_LATE: &str = "SELECT x / 0 FROM (VALUES (1)) t(x)";
    for extended in [false, true] {
        a.batch_execute("BEGIN").await.unwrap();
        a.execute("INSERT INTO tasks VALUES ('t7', 'k', 'p')", &[]).await.unwrap();
        let e = if extended {
            a.query("SELECT x / $1 FROM (VALUES (1::bigint)) t(x)", &[&0i64]).await.unwrap_err()
        } else {
            a.simple_query(FAILS_LATE).await.unwrap_err()
        };
        assert_eq!(sqlstate(&e).as_deref(), Some("22012"), "{e}");
        let e = a.execute("SELECT 1", &[]).await.unwrap_err();
        assert_eq!(sqlstate(&e).as_deref(), Some("25P02"), "extended: {extended}");
        a.batch_execute("COMMIT").await.unwrap(); // acts as ROLLBACK
    }
    // In a multi-statement string, such a failure stops the statements
    // after it and takes back those before it.
    for sql in [
        format!("{FAILS_LATE}; INSERT INTO tasks VALUES ('t8', 'k', 'p')"),
        format!("INSERT INTO tasks VALUES ('t8', 'k', 'p'); {FAILS_LATE}"),
    ] {
        let e = a.batch_execute(&sql).await.unwrap_err();
        assert_eq!(sqlstate(&e).as_deref(), Some("22012"), "{sql}: {e}");
    }
    let seen = b.query_one("SELECT count(*) FROM tasks", &[]).await.unwrap();
    assert_eq!(seen.get::<_, i64>(0), 3, "nothing of the failed transactions and strings is committed");

    // DDL inside a transaction block takes effect at once (drivers outside
    // autocommit send it there); the block's writes stay pending, and DDL
    // changing a relation the block wrote to is refused.
    a.batch_execute("BEGIN").await.unwrap();
    a.execute("INSERT INTO tasks VALUES ('t9', 'k', 'p')", &[]).await.unwrap();
    a.batch_execute("CREATE STREAM x (a TEXT)").await.unwrap();
    a.execute("INSERT INTO x VALUES ('in x')", &[]).await.unwrap();
    let seen = b.query_one("SELECT count(*) FROM x", &[]).await.unwrap();
    assert_eq!(seen.get::<_, i64>(0), 0, "the stream is there for others, its row is not");
    for ddl in ["ALTER STREAM tasks ADD COLUMN extra TEXT", "DROP STREAM tasks", "ALTER TABLE x RENAME TO y"] {
        a.batch_execute("SAVEPOINT s").await.unwrap();
        let e = a.batch_execute(ddl).await.unwrap_err();
        assert_eq!(sqlstate(&e).as_deref(), Some("25001"), "{ddl}: {e}");
        a.batch_execute("ROLLBACK TO SAVEPOINT s").await.unwrap();
    }
    a.batch_execute("ROLLBACK").await.unwrap();
    let seen = b.query_one("SELECT (SELECT count(*) FROM x) + (SELECT count(*) FROM tasks)", &[]).await.unwrap();
    assert_eq!(seen.get::<_, i64>(0), 3, "ROLLBACK kept the stream and discarded the rows");
    a.batch_execute("BEGIN; INSERT INTO x VALUES ('kept'); DROP STREAM tasks; COMMIT").await.unwrap();
    assert!(b.query_one("SELECT count(*) FROM tasks", &[]).await.is_err(), "tasks dropped");
    let seen = b.query_one("SELECT count(*) FROM x", &[]).await.unwrap();
    assert_eq!(seen.get::<_, i64>(0), 1);
}

#[tokio::test]
async fn result_columns_are_named_as_postgres_names_them() {
    let (_dir, server) = fresh();
    let c = server.client().await.unwrap();
    c.batch_execute(TASKS).await.unwrap();
    c.batch_execute("INSERT INTO tasks VALUES ('t1', 'build', 'p'), ('t2', 'test', 'p')").await.unwrap();
    let sql = "SELECT count(*), max(task_id), kind, kind AS k, 1, payload::text, '7'::int, \
               CASE WHEN kind = 'build' THEN 1 END FROM tasks GROUP BY kind, payload ORDER BY kind";
    let expected = ["count", "max", "kind", "k", "?column?", "payload", "int4", "case"];
    // Described at Parse (extended protocol)...
    let st = c.prepare(sql).await.unwrap();
    let described: Vec<&str> = st.columns().iter().map(|c| c.name()).collect();
    assert_eq!(described, expected);
    let row = c.query(&st, &[]).await.unwrap().remove(0);
    assert_eq!(row.get::<_, i64>("count"), 1);
    assert_eq!(row.get::<_, &str>("max"), "t1");
    // ...and sent with the rows (simple protocol).
    let rows = c.simple_query(sql).await.unwrap();
    let tokio_postgres::SimpleQueryMessage::RowDescription(columns) = &rows[0] else { panic!("{rows:?}") };
    let sent: Vec<&str> = columns.iter().map(|c| c.name()).collect();
    assert_eq!(sent, expected);
    // Names may repeat, as in Postgres; `*` keeps the stream's names.
    let st = c.prepare("SELECT 1, 2, *, count(*) OVER () FROM tasks").await.unwrap();
    let described: Vec<&str> = st.columns().iter().map(|c| c.name()).collect();
    assert_eq!(described, ["?column?", "?column?", "task_id", "kind", "payload", "count"]);
    assert_eq!(c.query(&st, &[]).await.unwrap().len(), 2);
    // `current_user` is named as Postgres names it.
    let st = c.prepare("SELECT current_user, upper(current_user) AS u").await.unwrap();
    let described: Vec<&str> = st.columns().iter().map(|c| c.name()).collect();
    assert_eq!(described, ["current_user", "u"]);
    assert_eq!(c.query_one(&st, &[]).await.unwrap().get::<_, &str>(0), "brikk");
    // Items DataFusion names alike are taken, as Postgres takes them, in
    // both protocols, with their values in place.
    let sql = "SELECT 1, 1, kind, kind, kind AS k, upper(kind), upper(kind), current_user, session_user \
               FROM tasks ORDER BY kind";
    let st = c.prepare(sql).await.unwrap();
    let described: Vec<&str> = st.columns().iter().map(|c| c.name()).collect();
    // (With both in one statement, `current_user` is named `session_user`:
    // the catalog crate's parser renames it before Brikk sees it.)
    let names = ["?column?", "?column?", "kind", "kind", "k", "upper", "upper", "session_user", "session_user"];
    assert_eq!(described, names);
    let row = c.query(&st, &[]).await.unwrap().remove(0);
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1)), (1, 1));
    assert_eq!([row.get::<_, &str>(3), row.get(4), row.get(6), row.get(8)], ["build", "build", "BUILD", "brikk"]);
    assert_eq!(row.get::<_, &str>(7), "brikk");
    let rows = c.simple_query(sql).await.unwrap();
    let tokio_postgres::SimpleQueryMessage::RowDescription(columns) = &rows[0] else { panic!("{rows:?}") };
    assert_eq!(columns.iter().map(|c| c.name()).collect::<Vec<_>>(), names);
    // now() is a timestamptz, as in Postgres (drivers then return an aware
    // datetime).
    let st = c.prepare("SELECT now(), current_timestamp").await.unwrap();
    assert!(st.columns().iter().all(|c| *c.type_() == Type::TIMESTAMPTZ), "{:?}", st.columns());
    let row = c.query_one(&st, &[]).await.unwrap();
    let now: std::time::SystemTime = row.get(0);
    assert!(now.elapsed().unwrap_or_default() < std::time::Duration::from_secs(60));
}

#[tokio::test]
async fn prepared_statements_text_and_binary_formats() {
    let (_dir, server) = fresh();
    let c = server.client().await.unwrap();
    c.batch_execute(
        "CREATE STREAM m (b BOOLEAN, s SMALLINT, i INTEGER, l BIGINT, r REAL, d DOUBLE PRECISION, t TEXT, \
         y BYTEA, ts TIMESTAMP, tz TIMESTAMPTZ, dt DATE)",
    )
    .await
    .unwrap();
    let ins = c.prepare("INSERT INTO m VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)").await.unwrap();
    assert_eq!(
        ins.params(),
        &[
            Type::BOOL,
            Type::INT2,
            Type::INT4,
            Type::INT8,
            Type::FLOAT4,
            Type::FLOAT8,
            Type::TEXT,
            Type::BYTEA,
            Type::TIMESTAMP,
            Type::TIMESTAMPTZ,
            Type::DATE
        ]
    );
    let ts = chrono::NaiveDate::from_ymd_opt(2026, 11, 25).unwrap().and_hms_micro_opt(1, 2, 3, 456).unwrap();
    let tz = chrono::DateTime::<chrono::Utc>::from_naive_utc_and_offset(ts, chrono::Utc);
    let dt = chrono::NaiveDate::from_ymd_opt(2026, 1, 2).unwrap();
    c.execute(
        &ins,
        &[&true, &7i16, &-8i32, &(1i64 << 40), &1.5f32, &2.25f64, &"héllo", &vec![0u8, 255], &ts, &tz, &dt],
    )
    .await
    .unwrap();
    // Binary results (prepared statement) ...
    let r = c.query_one("SELECT b, s, i, l, r, d, t, y, ts, tz, dt FROM m WHERE i = $1", &[&-8i32]).await.unwrap();
    assert!(r.get::<_, bool>(0));
    assert_eq!(r.get::<_, i16>(1), 7);
    assert_eq!(r.get::<_, i64>(3), 1 << 40);
    assert_eq!(r.get::<_, f32>(4), 1.5);
    assert_eq!(r.get::<_, String>(6), "héllo");
    assert_eq!(r.get::<_, Vec<u8>>(7), vec![0, 255]);
    assert_eq!(r.get::<_, chrono::NaiveDateTime>(8), ts);
    assert_eq!(r.get::<_, chrono::DateTime<chrono::Utc>>(9), tz);
    assert_eq!(r.get::<_, chrono::NaiveDate>(10), dt);
    // ... and text results (simple query).
    assert_eq!(
        texts(&c, "SELECT b, s, t, ts, dt FROM m").await,
        ["t | 7 | héllo | 2026-11-25 01:02:03.000456 | 2026-01-02"]
    );
    // Floats as Postgres prints them: pgjdbc and node-postgres read
    // `Infinity`, not `inf`; whole numbers have no `.0`.
    let sql = "SELECT r, d, 1024::float8, 1e20::float8, 0.00001::float8, 'Infinity'::float8, '-inf'::real FROM m";
    assert_eq!(texts(&c, sql).await, ["1.5 | 2.25 | 1024 | 1e+20 | 1e-05 | Infinity | -Infinity"]);
    // A prepared statement runs many times without re-planning.
    let q = c.prepare("SELECT count(*) FROM m WHERE l > $1").await.unwrap();
    for _ in 0..3 {
        assert_eq!(c.query_one(&q, &[&0i64]).await.unwrap().get::<_, i64>(0), 1);
    }
}

#[tokio::test]
async fn insert_returning_tells_where_each_row_landed() {
    let (_dir, server) = fresh();
    let c = server.client().await.unwrap();
    c.batch_execute("CREATE STREAM tasks (task_id TEXT, kind TEXT, n INT) WITH (partitions = 4, key = 'task_id')")
        .await
        .unwrap();
    // Prepared, with parameters, in binary: the place of each row.
    let insert = c
        .prepare("INSERT INTO tasks VALUES ($1, 'k', $2), ($3, 'k', $4) RETURNING _partition, _offset, _key, n * 10")
        .await
        .unwrap();
    assert_eq!(
        insert.columns().iter().map(|c| c.name()).collect::<Vec<_>>(),
        ["_partition", "_offset", "_key", "?column?"]
    );
    let mut landed = Vec::new();
    for round in 0..3 {
        let (a, b) = (format!("a{round}"), format!("b{round}"));
        let rows = c.query(&insert, &[&a, &1i32, &b, &2i32]).await.unwrap();
        assert_eq!(rows.len(), 2);
        for r in rows {
            let key: String = r.get(2);
            assert_eq!(r.get::<_, i32>(0) as u32, partition_for_key(key.as_bytes(), 4));
            // (`n * 10` is a bigint: integer literals are bigint in Brikk.)
            landed.push((r.get::<_, i32>(0), r.get::<_, i64>(1), key, r.get::<_, i64>(3)));
        }
    }
    // What RETURNING said is what the stream holds.
    for (p, o, key, tens) in &landed {
        let r =
            c.query_one("SELECT task_id, n FROM tasks WHERE _partition = $1 AND _offset = $2", &[p, o]).await.unwrap();
        assert_eq!((r.get::<_, String>(0), i64::from(r.get::<_, i32>(1)) * 10), (key.clone(), *tens));
    }
    // Unnamed items are named as Postgres names them.
    let named =
        c.prepare("INSERT INTO tasks VALUES ('n', 'k', 1) RETURNING upper(task_id), n::text, n + 1").await.unwrap();
    assert_eq!(named.columns().iter().map(|c| c.name()).collect::<Vec<_>>(), ["upper", "n", "?column?"]);
    // `*` is the stream's own columns; INSERT … SELECT returns too.
    let copied = "INSERT INTO tasks SELECT task_id || 'x', kind, n FROM tasks WHERE task_id = 'a0' RETURNING *";
    assert_eq!(texts(&c, copied).await, ["a0x | k | 1"]);
    // In a transaction the partition is known, the offset not until COMMIT.
    c.batch_execute("BEGIN").await.unwrap();
    let r = c.query_one("INSERT INTO tasks VALUES ('t', 'k', 1) RETURNING _partition, task_id", &[]).await.unwrap();
    assert_eq!(r.get::<_, i32>(0) as u32, partition_for_key(b"t", 4));
    let e = c.query("INSERT INTO tasks VALUES ('u', 'k', 1) RETURNING _offset", &[]).await.expect_err("no offset yet");
    assert_eq!(sqlstate(&e).as_deref(), Some("0A000"), "{e:?}");
    c.batch_execute("ROLLBACK").await.unwrap();
    let count: i64 = c.query_one("SELECT count(*) FROM tasks", &[]).await.unwrap().get(0);
    assert_eq!(count, 7, "six rows and one copied; the rolled-back ones are gone");
}

#[tokio::test]
async fn many_concurrent_connections_append_without_gaps() {
    let (_dir, server) = fresh();
    concurrent_appends_are_dense(&server).await;
}

/// The same with the worker's idle poll off (`--idle-poll-us 0`): workers
/// sleep as soon as they run out of work, and every wake-up goes through
/// the OS.
#[tokio::test]
async fn concurrent_appends_without_the_idle_poll() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &["--idle-poll-us", "0"]).unwrap();
    concurrent_appends_are_dense(&server).await;
}

/// 16 connections append 50 rows each with a prepared INSERT; every row
/// arrives once, and each partition's offsets are dense from 0.
async fn concurrent_appends_are_dense(server: &Server) {
    let c = server.client().await.unwrap();
    c.batch_execute("CREATE STREAM s (w INTEGER, i INTEGER) WITH (partitions = 3)").await.unwrap();
    let mut tasks = Vec::new();
    for w in 0..16i32 {
        let conn = server.conn_str();
        tasks.push(tokio::spawn(async move {
            let c = brikk_tests::connect(&conn).await.unwrap();
            let st = c.prepare("INSERT INTO s VALUES ($1, $2)").await.unwrap();
            for i in 0..50i32 {
                c.execute(&st, &[&w, &i]).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let rows = c.query("SELECT _partition, count(*), min(_offset), max(_offset) FROM s GROUP BY 1", &[]).await.unwrap();
    let mut total = 0;
    for r in rows {
        let (n, lo, hi): (i64, i64, i64) = (r.get(1), r.get(2), r.get(3));
        assert_eq!((lo, hi), (0, n - 1), "dense offsets");
        total += n;
    }
    assert_eq!(total, 800);
    // Per writer, its rows appear in the order it wrote them within a partition.
    let r = c.query_one("SELECT count(DISTINCT (w, i)) FROM s", &[]).await.unwrap();
    assert_eq!(r.get::<_, i64>(0), 800);
}

#[tokio::test]
async fn errors_carry_sqlstate_and_leave_the_session_usable() {
    let (_dir, server) = fresh();
    let c = server.client().await.unwrap();
    c.batch_execute(TASKS).await.unwrap();
    let cases: &[(&str, &str)] = &[
        ("SELEC 1", "42601"),
        ("SELECT * FROM missing", "42P01"),
        ("SELECT nope FROM tasks", "42703"),
        ("INSERT INTO tasks (nope) VALUES ('x')", "42703"),
        (TASKS, "42P07"),
        ("CREATE STREAM bad (n INTEGER) WITH (partitions = 0)", "22023"),
        ("CREATE STREAM bad (n INTEGER) WITH (key = 'zzz')", "42703"),
        ("CREATE STREAM bad (n INTERVAL)", "0A000"),
        ("UPDATE tasks SET kind = 'x'", "42809"),
        ("DELETE FROM tasks", "42809"),
        ("CREATE TABLE t (a INT)", "0A000"),
        ("DROP STREAM missing", "42P01"),
        ("INSERT INTO tasks VALUES ('a', 'b', 'c', 'd')", "42601"),
        ("INSERT INTO tasks (_offset) VALUES (1)", "428C9"),
    ];
    for (sql, code) in cases {
        let e = c.batch_execute(sql).await.unwrap_err();
        assert_eq!(sqlstate(&e).as_deref(), Some(*code), "{sql}: {e:?}");
        c.query_one("SELECT 1", &[]).await.expect("session still usable");
    }
    c.batch_execute("CREATE STREAM n (i INTEGER NOT NULL, s SMALLINT, b BOOLEAN)").await.unwrap();
    let typed: &[(&str, &str)] = &[
        ("INSERT INTO n VALUES ('abc', 1, true)", "22P02"),
        ("INSERT INTO n VALUES (1, 70000, true)", "22003"),
        ("INSERT INTO n VALUES (1, 1, 5)", "42804"),
        ("INSERT INTO n VALUES (true, 1, true)", "42804"),
        ("INSERT INTO n VALUES (NULL, 1, true)", "23502"),
    ];
    for (sql, code) in typed {
        let e = c.batch_execute(sql).await.unwrap_err();
        assert_eq!(sqlstate(&e).as_deref(), Some(*code), "{sql}: {e:?}");
    }
    // A bad row in a multi-row INSERT writes none of the rows.
    let e = c.batch_execute("INSERT INTO n VALUES (1, 1, true), (2, 99999, true)").await.unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("22003"));
    assert_eq!(c.query_one("SELECT count(*) FROM n", &[]).await.unwrap().get::<_, i64>(0), 0);
    // Prepared statements with wrong parameter values.
    let st = c.prepare("INSERT INTO n (i) VALUES ($1)").await.unwrap();
    assert_eq!(st.params(), &[Type::INT4]);
    c.execute(&st, &[&5i32]).await.unwrap();
    assert_eq!(c.query_one("SELECT count(*) FROM n", &[]).await.unwrap().get::<_, i64>(0), 1);
}

/// A statement that panics inside the engine (here an Arrow bug DataFusion
/// 55 reaches with this coalesce of lists) fails with `XX000`, fails its
/// transaction like any error, and leaves the connection and the server
/// running.
#[tokio::test]
async fn a_panicking_statement_fails_alone() {
    let (_dir, server) = fresh();
    let c = server.client().await.unwrap();
    c.batch_execute("CREATE TABLE board (topic TEXT PRIMARY KEY, fact JSONB)").await.unwrap();
    c.batch_execute(r#"INSERT INTO board VALUES ('a', '{"tags": ["x"]}'), ('b', '{}')"#).await.unwrap();
    let panics = "SELECT topic, unnest(coalesce(nullif(l, []), [NULL])) \
                  FROM (SELECT topic, json_array_texts(coalesce(fact -> 'nope', '[]')) AS l FROM board) q";
    let e = c.batch_execute(panics).await.unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("XX000"), "{e:?}");
    c.query_one("SELECT 1", &[]).await.expect("the connection goes on");
    c.batch_execute("BEGIN").await.unwrap();
    assert_eq!(sqlstate(&c.batch_execute(panics).await.unwrap_err()).as_deref(), Some("XX000"));
    let e = c.query_one("SELECT 1", &[]).await.unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("25P02"), "the transaction failed: {e:?}");
    c.batch_execute("ROLLBACK").await.unwrap();
    let other = server.client().await.unwrap();
    other.query_one("SELECT 1", &[]).await.expect("the server goes on");
}

#[tokio::test]
async fn catalog_and_data_survive_restart_and_sigterm_is_graceful() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut server = Server::start(dir.path()).unwrap();
        let c = server.client().await.unwrap();
        c.batch_execute(TASKS).await.unwrap();
        c.batch_execute("CREATE STREAM gone (a TEXT)").await.unwrap();
        c.batch_execute("INSERT INTO tasks VALUES ('t1', 'k', 'p'), ('t2', 'k', 'p')").await.unwrap();
        c.batch_execute("DROP STREAM gone").await.unwrap();
        let status = server.terminate().unwrap();
        assert!(status.success(), "clean exit on SIGTERM: {status:?}\n{}", server.log());
    }
    let server = Server::start(dir.path()).unwrap();
    let c = server.client().await.unwrap();
    let streams: Vec<String> =
        c.query("SELECT name FROM brikk_streams", &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(streams, ["tasks"]);
    let rows = c.query("SELECT task_id, _offset FROM tasks ORDER BY task_id", &[]).await.unwrap();
    assert_eq!(rows.len(), 2);
    c.batch_execute("INSERT INTO tasks VALUES ('t1', 'k', 'again')").await.unwrap();
    let r = c.query_one("SELECT _offset FROM tasks WHERE payload = 'again'", &[]).await.unwrap();
    let first = rows.iter().find(|r| r.get::<_, String>(0) == "t1").unwrap().get::<_, i64>(1);
    assert_eq!(r.get::<_, i64>(0), first + 1, "offsets continue after restart");
}

#[tokio::test]
async fn wrong_user_or_database_is_refused() {
    let (_dir, server) = fresh();
    let conn = format!("host=127.0.0.1 port={} user=alice dbname=brikk", server.addr.port());
    let e = brikk_tests::connect(&conn).await.unwrap_err();
    let e = e.downcast::<tokio_postgres::Error>().unwrap();
    assert_eq!(sqlstate(&e).as_deref(), Some("28000"));
    let conn = format!("host=127.0.0.1 port={} user=brikk dbname=other", server.addr.port());
    let e = brikk_tests::connect(&conn).await.unwrap_err().downcast::<tokio_postgres::Error>().unwrap();
    assert_eq!(sqlstate(&e).as_deref(), Some("3D000"));
}

#[tokio::test]
async fn malformed_and_oversized_messages_close_only_that_connection() {
    let (_dir, mut server) = fresh();
    let good = server.client().await.unwrap();
    // Garbage instead of a startup packet.
    let mut s = std::net::TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    s.write_all(&[0, 0, 0, 3, 1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    // A startup packet that claims to be 1 GiB long.
    let mut s = std::net::TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    s.write_all(&0x4000_0000u32.to_be_bytes()).unwrap();
    s.write_all(&[0, 3, 0, 0]).unwrap();
    let _ = s.read_to_end(&mut buf);
    // A query message with a huge declared length after a good startup.
    let raw = brikk_tests::connect(&server.conn_str()).await.unwrap();
    drop(raw);
    let mut s = std::net::TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    let mut startup = Vec::new();
    startup.extend_from_slice(&196608u32.to_be_bytes());
    for kv in ["user", "brikk", "database", "brikk"] {
        startup.extend_from_slice(kv.as_bytes());
        startup.push(0);
    }
    startup.push(0);
    let mut pkt = ((startup.len() + 4) as u32).to_be_bytes().to_vec();
    pkt.extend(startup);
    s.write_all(&pkt).unwrap();
    s.write_all(b"Q").unwrap();
    s.write_all(&0x7fff_fff0u32.to_be_bytes()).unwrap();
    s.write_all(b"SELECT 1").unwrap();
    let _ = s.read_to_end(&mut buf);

    assert!(server.is_running(), "server survived: {}", server.log());
    good.query_one("SELECT 1", &[]).await.expect("other connections unaffected");
    server.client().await.unwrap().query_one("SELECT 1", &[]).await.expect("new connections accepted");
}

#[tokio::test]
async fn retention_deletes_old_records_and_keeps_offsets() {
    let (_dir, server) = fresh();
    let c = server.client().await.unwrap();
    c.batch_execute("CREATE STREAM r (n BIGINT) WITH (retention = '1s')").await.unwrap();
    c.batch_execute("INSERT INTO r VALUES (1), (2), (3)").await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    c.batch_execute("INSERT INTO r VALUES (4)").await.unwrap();
    // Within a few retention passes the three old records are gone.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let rows = c.query("SELECT _offset, n FROM r ORDER BY _offset", &[]).await.unwrap();
        let got: Vec<(i64, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        if got == vec![(3, 4)] {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "old records still there: {got:?}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let p = c.query_one("SELECT start_offset, end_offset FROM brikk_partitions WHERE stream = 'r'", &[]).await.unwrap();
    assert_eq!((p.get::<_, i64>(0), p.get::<_, i64>(1)), (3, 4));
    c.batch_execute("INSERT INTO r VALUES (5)").await.unwrap();
    let r = c.query_one("SELECT _offset FROM r WHERE n = 5", &[]).await.unwrap();
    assert_eq!(r.get::<_, i64>(0), 4, "offsets continue");
}

#[test]
fn non_loopback_listen_needs_an_explicit_flag() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(brikk_tests::brikk_bin())
        .args(["serve", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refusing to listen on 0.0.0.0:0"), "{err}");
    assert!(err.contains("--allow-remote"), "{err}");
}

#[tokio::test]
async fn cancel_request_stops_a_running_query() {
    let (_dir, server) = fresh();
    let c = server.client().await.unwrap();
    let token = c.cancel_token();
    let running = tokio::spawn(async move {
        let r = c.simple_query("SELECT count(*) FROM generate_series(1, 20000000000)").await;
        (r.map(|_| ()), c)
    });
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    token.cancel_query(tokio_postgres::NoTls).await.unwrap();
    let (result, c) =
        tokio::time::timeout(std::time::Duration::from_secs(30), running).await.expect("canceled in time").unwrap();
    let e = result.unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("57014"), "{e:?}");
    c.query_one("SELECT 1", &[]).await.expect("connection usable after cancel");
}

/// `pg_sleep` waits (once per row) without holding a thread, and a cancel
/// request ends the wait at once.
#[tokio::test]
async fn pg_sleep_waits_and_is_canceled() {
    let (_dir, server) = fresh();
    let c = server.client().await.unwrap();
    let started = std::time::Instant::now();
    let rows = c.query("SELECT pg_sleep(0.1) FROM generate_series(1, 3)", &[]).await.unwrap();
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|r| r.get::<_, Option<String>>(0).is_none()), "pg_sleep gives NULL");
    assert!(started.elapsed() >= std::time::Duration::from_millis(150), "it waited: {:?}", started.elapsed());
    let token = c.cancel_token();
    let running = tokio::spawn(async move { (c.simple_query("SELECT pg_sleep(600)").await.map(|_| ()), c) });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    token.cancel_query(tokio_postgres::NoTls).await.unwrap();
    let (result, c) =
        tokio::time::timeout(std::time::Duration::from_secs(30), running).await.expect("canceled in time").unwrap();
    assert_eq!(sqlstate(&result.unwrap_err()).as_deref(), Some("57014"));
    c.query_one("SELECT 1", &[]).await.expect("connection usable after cancel");
}

#[tokio::test]
async fn statement_timeout_cancels_long_statements_and_fails_their_transaction() {
    let (_dir, server) = fresh();
    let c = server.client().await.unwrap();
    c.batch_execute(TASKS).await.unwrap();
    let e = c.batch_execute("SET statement_timeout = 'soon'").await.unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("22023"), "{e}");
    // Long enough for a debug build's statements under the whole suite's
    // load (300 ms was not), short next to the 5 s sleeps it cuts.
    c.batch_execute("SET statement_timeout = 1000").await.unwrap();
    let shown = c.query_one("SHOW statement_timeout", &[]).await.unwrap();
    assert_eq!(shown.get::<_, &str>(0), "1s");

    // While rows stream (pg_sleep runs as its row is computed), in either
    // protocol, and while a FETCH waits for records.
    let e = c.simple_query("SELECT pg_sleep(5)").await.unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("57014"), "{e}");
    let e = c.query("SELECT pg_sleep($1::float8)", &[&5.0f64]).await.unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("57014"), "{e}");
    c.batch_execute("SUBSCRIBE tasks GROUP waiting").await.unwrap();
    let e = c.query("FETCH 1 FROM tasks GROUP waiting WAIT '10s'", &[]).await.unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("57014"), "{e}");
    c.query_one("SELECT 1", &[]).await.expect("session usable after a timeout");

    // Inside a transaction the timeout fails it, as any error does.
    c.batch_execute("BEGIN").await.unwrap();
    c.execute("INSERT INTO tasks VALUES ('late', 'k', 'p')", &[]).await.unwrap();
    let e = c.simple_query("SELECT pg_sleep(5)").await.unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("57014"), "{e}");
    let e = c.query_one("SELECT 1", &[]).await.unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("25P02"), "{e}");
    c.batch_execute("COMMIT").await.unwrap(); // acts as ROLLBACK
    c.batch_execute("SET statement_timeout = 0").await.unwrap();
    let n = c.query_one("SELECT count(*) FROM tasks", &[]).await.unwrap();
    assert_eq!(n.get::<_, i64>(0), 0, "the timed-out transaction wrote nothing");

    // Set at start-up, as a parameter or in `options` (PGOPTIONS).
    for extra in ["options='-c statement_timeout=250'", "options='-c statement_timeout=1min'"] {
        let c = brikk_tests::connect(&format!("{} {extra}", server.conn_str())).await.unwrap();
        let shown = c.query_one("SHOW statement_timeout", &[]).await.unwrap();
        assert!(["250ms", "1min"].contains(&shown.get::<_, &str>(0)), "{extra}");
    }
}

/// `brikk_partitions.cached_start_offset` says from where a partition is
/// read from memory: from its first record while the server has run since,
/// NULL after a restart until the next append, and NULL throughout with
/// `--tail-cache-mb 0`. Reads return the same records either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brikk_partitions_shows_what_the_tail_cache_holds() {
    async fn cached(c: &tokio_postgres::Client) -> Vec<Option<i64>> {
        let sql = "SELECT cached_start_offset FROM brikk_partitions WHERE stream = 't' ORDER BY partition";
        c.query(sql, &[]).await.unwrap().iter().map(|r| r.get(0)).collect()
    }
    async fn values(c: &tokio_postgres::Client) -> Vec<i64> {
        let rows = c.query("SELECT v FROM t ORDER BY v", &[]).await.unwrap();
        rows.iter().map(|r| r.get(0)).collect()
    }
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path()).unwrap();
    let c = server.client().await.unwrap();
    c.batch_execute("CREATE STREAM t (v BIGINT) WITH (partitions = 2); INSERT INTO t VALUES (1), (2), (3), (4)")
        .await
        .unwrap();
    assert_eq!(cached(&c).await, vec![Some(0), Some(0)]);
    drop(c);
    server.terminate().unwrap();

    let mut server = Server::start(dir.path()).unwrap();
    let c = server.client().await.unwrap();
    assert_eq!(cached(&c).await, vec![None, None]);
    c.batch_execute("INSERT INTO t VALUES (5), (6)").await.unwrap();
    assert_eq!(cached(&c).await, vec![Some(2), Some(2)]);
    assert_eq!(values(&c).await, vec![1, 2, 3, 4, 5, 6]);
    drop(c);
    server.terminate().unwrap();

    let server = Server::start_with(dir.path(), &["--tail-cache-mb", "0"]).unwrap();
    let c = server.client().await.unwrap();
    c.batch_execute("INSERT INTO t VALUES (7), (8)").await.unwrap();
    assert_eq!(cached(&c).await, vec![None, None]);
    assert_eq!(values(&c).await, vec![1, 2, 3, 4, 5, 6, 7, 8]);
}
