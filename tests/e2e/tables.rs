//! The blackboard over the wire: compare-and-set races between many
//! connections, a SIGKILL while agents revise facts, prepared lookups and
//! upserts in text and binary, JSON types, EXPLAIN, history, push of
//! changes, and serialization failures at COMMIT.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use brikk_tests::{sqlstate, Server};
use tokio_postgres::types::{accepts, to_sql_checked, IsNull, ToSql, Type};

use super::fresh;

const BOARD: &str = "CREATE TABLE board (topic TEXT PRIMARY KEY, fact TEXT, author TEXT, version BIGINT NOT NULL)";

async fn explain(c: &tokio_postgres::Client, sql: &str) -> String {
    let rows = c.simple_query(&format!("EXPLAIN {sql}")).await.unwrap();
    rows.iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).unwrap_or("")).collect::<Vec<_>>().join(" "))
            }
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_compare_and_set_has_one_winner_per_version() {
    let (_dir, server) = fresh();
    let admin = server.client().await.unwrap();
    admin.batch_execute(BOARD).await.unwrap();
    let topics = ["a", "b", "c", "d"];
    for t in topics {
        admin.execute("INSERT INTO board VALUES ($1, 'start', 'admin', 0)", &[&t]).await.unwrap();
    }
    let wins = Arc::new(AtomicU64::new(0));
    let losses = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for agent in 0..16 {
        let (conn, wins, losses) = (server.conn_str(), wins.clone(), losses.clone());
        tasks.push(tokio::spawn(async move {
            let c = brikk_tests::connect(&conn).await.unwrap();
            let read = c.prepare("SELECT version FROM board WHERE topic = $1").await.unwrap();
            let cas = c
                .prepare(
                    "UPDATE board SET fact = $1, author = $2, version = version + 1 WHERE topic = $3 AND version = $4",
                )
                .await
                .unwrap();
            for i in 0..60 {
                let topic = ["a", "b", "c", "d"][(agent + i) % 4];
                let v: i64 = c.query_one(&read, &[&topic]).await.unwrap().get(0);
                let fact = format!("agent {agent} step {i}");
                let who = format!("agent-{agent}");
                match c.execute(&cas, &[&fact, &who, &topic, &v]).await.unwrap() {
                    1 => wins.fetch_add(1, Ordering::Relaxed),
                    0 => losses.fetch_add(1, Ordering::Relaxed),
                    n => panic!("CAS updated {n} rows"),
                };
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let (wins, losses) = (wins.load(Ordering::Relaxed), losses.load(Ordering::Relaxed));
    assert_eq!(wins + losses, 16 * 60);
    assert!(losses > 0, "16 agents on 4 rows never collided; the test did not race");
    let total: i64 = admin.query_one("SELECT sum(version) FROM board", &[]).await.unwrap().get(0);
    assert_eq!(total as u64, wins, "every successful CAS, and only those, bumped a version");
    let updates: i64 =
        admin.query_one("SELECT count(*) FROM changes(board) WHERE op = 'update'", &[]).await.unwrap().get(0);
    assert_eq!(updates as u64, wins, "one changelog record per successful CAS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_keeps_every_acknowledged_change_and_the_changelog_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path()).unwrap();
    let c = server.client().await.unwrap();
    c.batch_execute(BOARD).await.unwrap();
    c.batch_execute("CREATE STREAM outbox (topic TEXT, version BIGINT)").await.unwrap();
    // Per topic, the highest version a writer saw acknowledged.
    let acked: Arc<Mutex<HashMap<String, i64>>> = Arc::default();
    let mut tasks = Vec::new();
    for writer in 0..6 {
        let (conn, acked) = (server.conn_str(), acked.clone());
        tasks.push(tokio::spawn(async move {
            let Ok(c) = brikk_tests::connect(&conn).await else { return };
            let Ok(upsert) = c
                .prepare(
                    "INSERT INTO board VALUES ($1, $2, $3, 1) ON CONFLICT (topic) \
                     DO UPDATE SET fact = excluded.fact, author = excluded.author, version = board.version + 1 \
                     RETURNING version",
                )
                .await
            else {
                return;
            };
            for i in 0.. {
                let topic = format!("t{}", (writer * 7 + i) % 10);
                let r = if i % 4 == 3 {
                    // A transaction: the row and the outbox record together.
                    let sql = format!(
                        "BEGIN; UPDATE board SET version = version + 1 WHERE topic = '{topic}'; \
                         INSERT INTO outbox SELECT topic, version FROM board WHERE topic = '{topic}'; COMMIT"
                    );
                    c.batch_execute(&sql).await.map(|_| None)
                } else {
                    c.query_one(&upsert, &[&topic, &format!("w{writer} {i}"), &format!("w{writer}")])
                        .await
                        .map(|r| Some(r.get::<_, i64>(0)))
                };
                match r {
                    Ok(Some(v)) => {
                        let mut a = acked.lock().unwrap();
                        let e = a.entry(topic).or_insert(0);
                        *e = (*e).max(v);
                    }
                    Ok(None) => {}
                    Err(_) => return,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.kill9();
    for t in tasks {
        let _ = t.await;
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.values().sum::<i64>() > 20, "the writers made progress before the kill: {acked:?}");

    let server = Server::start(dir.path()).unwrap();
    let c = server.client().await.unwrap();
    let rows = c.query("SELECT topic, fact, author, version, _offset FROM board", &[]).await.unwrap();
    let table: BTreeMap<String, (String, String, i64, i64)> =
        rows.iter().map(|r| (r.get(0), (r.get(1), r.get(2), r.get(3), r.get(4)))).collect();
    for (topic, v) in &acked {
        let have = table.get(topic).map(|r| r.2).unwrap_or(0);
        assert!(have >= *v, "{topic}: acknowledged version {v} lost (table has {have})");
    }
    // Replaying the changelog gives exactly the table, versions included.
    let changes = c
        .query("SELECT op, topic, fact, author, version, _offset FROM changes(board) ORDER BY _offset", &[])
        .await
        .unwrap();
    let mut replay: BTreeMap<String, (String, String, i64, i64)> = BTreeMap::new();
    for (i, r) in changes.iter().enumerate() {
        assert_eq!(r.get::<_, i64>(5), i as i64, "changelog offsets are dense");
        let op: String = r.get(0);
        let topic: String = r.get(1);
        match op.as_str() {
            "delete" => {
                replay.remove(&topic);
            }
            _ => {
                replay.insert(topic, (r.get(2), r.get(3), r.get(4), r.get(5)));
            }
        }
    }
    assert_eq!(replay, table, "table and changelog disagree after the crash");
    // Every outbox record is a version the table went through.
    let outbox = c.query("SELECT topic, version FROM outbox", &[]).await.unwrap();
    for r in outbox {
        let (topic, v): (String, i64) = (r.get(0), r.get(1));
        let seen = changes.iter().any(|ch| ch.get::<_, String>(1) == topic && ch.get::<_, i64>(4) == v);
        assert!(seen, "outbox record {topic} v{v} has no matching change: half a transaction survived");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_lookups_upserts_and_json_in_text_and_binary() {
    let (_dir, server) = fresh();
    let c = server.client().await.unwrap();
    c.batch_execute("CREATE TABLE kb (id BIGINT PRIMARY KEY, body JSONB, note JSON, score DOUBLE PRECISION)")
        .await
        .unwrap();
    let upsert = c
        .prepare("INSERT INTO kb VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO UPDATE SET body = excluded.body, score = kb.score + excluded.score")
        .await
        .unwrap();
    assert_eq!(upsert.params(), &[Type::INT8, Type::TEXT, Type::TEXT, Type::FLOAT8]);
    for i in 0..50i64 {
        let body = format!(r#"{{"agent": "a{}", "claim": {i}}}"#, i % 5);
        c.execute(&upsert, &[&i, &body, &"{\"raw\": true}", &1.5f64]).await.unwrap();
    }
    c.execute(&upsert, &[&7i64, &r#"{"agent": "a9", "claim": 70}"#, &"{}", &2.0f64]).await.unwrap();

    // A prepared point lookup: binary results (tokio-postgres asks for binary).
    let get = c.prepare("SELECT id, body, note, score FROM kb WHERE id = $1").await.unwrap();
    let types: Vec<Type> = get.columns().iter().map(|col| col.type_().clone()).collect();
    assert_eq!(types, vec![Type::INT8, Type::JSONB, Type::JSON, Type::FLOAT8]);
    let row = c.query_one(&get, &[&7i64]).await.unwrap();
    let body: serde_json::Value = row.get(1);
    assert_eq!(body, serde_json::json!({"agent": "a9", "claim": 70}));
    let note: serde_json::Value = row.get(2);
    assert_eq!(note, serde_json::json!({"raw": true}));
    assert_eq!(row.get::<_, f64>(3), 3.5);
    assert!(c.query_opt(&get, &[&1000i64]).await.unwrap().is_none());

    // Text results of the same through the simple protocol.
    let text = c.simple_query("SELECT body, body ->> 'agent' FROM kb WHERE id = 7").await.unwrap();
    let tokio_postgres::SimpleQueryMessage::Row(r) = &text[1] else { panic!("{text:?}") };
    assert_eq!(r.get(0), Some(r#"{"agent": "a9", "claim": 70}"#));
    assert_eq!(r.get(1), Some("a9"));

    // The key alone decides these (the row is read, not filtered again):
    // a column asked twice, a renamed one, and the transaction's own rows.
    let twice = c.prepare("SELECT id, score AS s, id AS again FROM kb WHERE id = $1").await.unwrap();
    assert_eq!(twice.columns()[1].name(), "s");
    let row = c.query_one(&twice, &[&7i64]).await.unwrap();
    assert_eq!((row.get::<_, i64>(0), row.get::<_, f64>(1), row.get::<_, i64>(2)), (7, 3.5, 7));
    c.batch_execute("BEGIN").await.unwrap();
    c.execute(&upsert, &[&500i64, &"{}", &"{}", &1.0f64]).await.unwrap();
    assert_eq!(c.query(&get, &[&500i64]).await.unwrap().len(), 1, "the transaction's own row");
    c.batch_execute("ROLLBACK").await.unwrap();
    assert!(c.query_opt(&get, &[&500i64]).await.unwrap().is_none());

    // Prepared lookups with a residual condition and parameters of every kind.
    let cond = c.prepare("SELECT id FROM kb WHERE id = $1 AND score > $2").await.unwrap();
    assert_eq!(c.query(&cond, &[&7i64, &3.0f64]).await.unwrap().len(), 1);
    assert_eq!(c.query(&cond, &[&7i64, &4.0f64]).await.unwrap().len(), 0);
    let contains = c.prepare("SELECT count(*) FROM kb WHERE body @> $1").await.unwrap();
    let n: i64 = c.query_one(&contains, &[&r#"{"agent": "a1"}"#]).await.unwrap().get(0);
    assert_eq!(n, 10);

    // Bad JSON is refused with 22P02, and the session stays usable.
    let e = c.execute(&upsert, &[&1i64, &"{oops", &"{}", &1.0f64]).await.unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("22P02"));
    assert_eq!(c.query(&get, &[&1i64]).await.unwrap().len(), 1);
}

/// A UUID in its binary wire form, as drivers with a UUID type send it
/// (16 bytes; any other length to test the refusal).
#[derive(Debug)]
struct WireUuid(Vec<u8>);

impl ToSql for WireUuid {
    fn to_sql(&self, _: &Type, out: &mut bytes::BytesMut) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.extend_from_slice(&self.0);
        Ok(IsNull::No)
    }
    accepts!(UUID);
    to_sql_checked!();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameters_bound_to_uuid_columns_are_described_as_uuid() {
    let (_dir, server) = fresh();
    let c = server.client().await.unwrap();
    c.batch_execute(
        "CREATE TABLE agents (id UUID PRIMARY KEY, boss UUID, name TEXT); \
         CREATE STREAM events (agent UUID, what TEXT) WITH (partitions = 2)",
    )
    .await
    .unwrap();
    const U: Type = Type::UUID;
    const T: Type = Type::TEXT;
    for (sql, want) in [
        ("INSERT INTO agents VALUES ($1, $2, $3)", vec![U, U, T]),
        ("SELECT name FROM agents WHERE id = $1", vec![U]),
        ("SELECT count(*) FROM agents WHERE boss = $1 OR id IN ($2, $3)", vec![U, U, U]),
        ("SELECT count(*) FROM agents WHERE $1 = CAST(boss AS TEXT)", vec![T]),
        ("UPDATE agents SET boss = $2 WHERE id = $1", vec![U, U]),
        ("INSERT INTO agents VALUES ($1, NULL, $2) ON CONFLICT (id) DO UPDATE SET boss = $3", vec![U, T, U]),
        ("DELETE FROM agents WHERE id = $1 AND name = $2", vec![U, T]),
        ("INSERT INTO events VALUES ($1, $2)", vec![U, T]),
        ("SELECT what FROM events WHERE agent = $1", vec![U]),
    ] {
        assert_eq!(c.prepare(sql).await.unwrap().params(), want.as_slice(), "{sql}");
    }
    // A type the client declares is kept.
    let by_text = c.prepare_typed("SELECT name FROM agents WHERE id = $1", &[T]).await.unwrap();
    assert_eq!(by_text.params(), &[T]);

    // UUIDs bind in binary (16 bytes) and as declared text, in every path.
    let id = WireUuid((0x10..0x20).collect());
    let canonical = "10111213-1415-1617-1819-1a1b1c1d1e1f";
    c.execute("INSERT INTO agents VALUES ($1, $2, $3)", &[&id, &id, &"root"]).await.unwrap();
    let name: String = c.query_one("SELECT name FROM agents WHERE id = $1", &[&id]).await.unwrap().get(0);
    assert_eq!(name, "root");
    let name: String = c.query_one(&by_text, &[&canonical]).await.unwrap().get(0);
    assert_eq!(name, "root");
    let n: i64 = c.query_one("SELECT count(*) FROM agents WHERE boss = $1", &[&id]).await.unwrap().get(0);
    assert_eq!(n, 1);
    c.execute("UPDATE agents SET name = 'chief' WHERE id = $1", &[&id]).await.unwrap();
    c.execute("INSERT INTO events VALUES ($1, 'hello')", &[&id]).await.unwrap();
    let rows =
        c.simple_query("SELECT a.id, e.agent, a.name FROM agents a JOIN events e ON a.id = e.agent").await.unwrap();
    let tokio_postgres::SimpleQueryMessage::Row(r) = &rows[1] else { panic!("{rows:?}") };
    assert_eq!((r.get(0), r.get(1), r.get(2)), (Some(canonical), Some(canonical), Some("chief")));

    // A binary uuid that is not 16 bytes is refused; the session goes on.
    let e = c.execute("DELETE FROM agents WHERE id = $1", &[&WireUuid(vec![1, 2, 3])]).await.unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("22P02"), "{e:?}");
    assert_eq!(c.execute("DELETE FROM agents WHERE id = $1", &[&id]).await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_filters_are_point_lookups_in_explain() {
    let (_dir, server) = fresh();
    let c = server.client().await.unwrap();
    c.batch_execute(BOARD).await.unwrap();
    c.batch_execute("INSERT INTO board VALUES ('plan', 'x', 'a', 1), ('risk', 'y', 'b', 1)").await.unwrap();
    let plan = explain(&c, "SELECT fact FROM board WHERE topic = 'plan'").await;
    assert!(plan.contains("KeyScanExec: table=board, lookup=[topic = 'plan']"), "{plan}");
    let plan = explain(&c, "SELECT fact FROM board WHERE topic IN ('plan', 'risk') AND version = 1").await;
    assert!(plan.contains("lookup=[topic = 'plan', topic = 'risk']"), "{plan}");
    let plan = explain(&c, "SELECT fact FROM board WHERE author = 'a'").await;
    assert!(plan.contains("KeyScanExec: table=board, full scan"), "{plan}");
    let plan = explain(&c, "UPDATE board SET fact = 'z' WHERE topic = 'plan'").await;
    assert!(plan.contains("primary key lookup of 1 key(s), no scan"), "{plan}");
    // The lookup returns the right rows, including none.
    let rows = c.query("SELECT fact FROM board WHERE topic IN ('plan', 'nope')", &[]).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, String>(0), "x");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_fails_with_40001_when_a_read_row_changed() {
    let (_dir, server) = fresh();
    let a = server.client().await.unwrap();
    let b = server.client().await.unwrap();
    a.batch_execute(BOARD).await.unwrap();
    a.batch_execute("CREATE STREAM audit (what TEXT)").await.unwrap();
    a.batch_execute("INSERT INTO board VALUES ('plan', 'v1', 'a', 1)").await.unwrap();
    a.batch_execute("BEGIN").await.unwrap();
    a.batch_execute("UPDATE board SET fact = 'from a', version = version + 1 WHERE topic = 'plan'").await.unwrap();
    a.batch_execute("INSERT INTO audit VALUES ('a revised plan')").await.unwrap();
    // b changes the row meanwhile (autocommit).
    assert_eq!(
        b.execute("UPDATE board SET fact = 'from b', version = version + 1 WHERE topic = 'plan'", &[]).await.unwrap(),
        1
    );
    let e = a.batch_execute("COMMIT").await.unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("40001"), "{e}");
    // Nothing of a's transaction was written, the stream append included.
    let fact: String = a.query_one("SELECT fact FROM board WHERE topic = 'plan'", &[]).await.unwrap().get(0);
    assert_eq!(fact, "from b");
    let n: i64 = a.query_one("SELECT count(*) FROM audit", &[]).await.unwrap().get(0);
    assert_eq!(n, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listeners_get_table_changes_and_history_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path()).unwrap();
    let (listener, mut conn) = tokio_postgres::connect(&server.conn_str(), tokio_postgres::NoTls).await.unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let pump = tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| conn.poll_message(cx));
        use futures::StreamExt;
        while let Some(Ok(m)) = messages.next().await {
            if let tokio_postgres::AsyncMessage::Notification(n) = m {
                let _ = tx.send((n.channel().to_string(), n.payload().to_string()));
            }
        }
    });
    let c = server.client().await.unwrap();
    c.batch_execute(BOARD).await.unwrap();
    listener.batch_execute("LISTEN board").await.unwrap();
    c.batch_execute("INSERT INTO board VALUES ('plan', 'draft', 'a', 1)").await.unwrap();
    c.batch_execute("UPDATE board SET fact = 'final' WHERE topic = 'plan'").await.unwrap();
    c.batch_execute("DELETE FROM board WHERE topic = 'plan'").await.unwrap();
    let mut ops = Vec::new();
    for _ in 0..3 {
        let (channel, payload) = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.unwrap().unwrap();
        assert_eq!(channel, "board");
        let v: serde_json::Value = serde_json::from_str(&payload).unwrap();
        ops.push((v["row"]["op"].as_str().unwrap().to_string(), v["row"]["fact"].as_str().unwrap().to_string()));
        assert_eq!(v["key"], "plan", "{payload}");
    }
    assert_eq!(
        ops,
        vec![("insert".into(), "draft".into()), ("update".into(), "final".into()), ("delete".into(), "final".into())]
    );
    pump.abort();

    server.terminate().unwrap();
    let server = Server::start(dir.path()).unwrap();
    let c = server.client().await.unwrap();
    let n: i64 = c.query_one("SELECT count(*) FROM changes(board)", &[]).await.unwrap().get(0);
    assert_eq!(n, 3);
    let fact: String = c.query_one("SELECT fact FROM board AS OF OFFSET 1", &[]).await.unwrap().get(0);
    assert_eq!(fact, "final");
    assert_eq!(c.query("SELECT * FROM board", &[]).await.unwrap().len(), 0);
    // \d shows the table with its columns.
    let d = server.psql(&["-c", "\\d board"]).unwrap();
    assert!(d.contains("topic") && d.contains("version"), "{d}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_values_are_never_handed_out_twice_across_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path()).unwrap();
    let c = server.client().await.unwrap();
    c.batch_execute("CREATE TABLE jobs (id BIGSERIAL PRIMARY KEY, by_writer INT, n INT)").await.unwrap();
    // Every id an INSERT acknowledged, with the row it numbered.
    let acked: Arc<Mutex<Vec<(i64, i32, i32)>>> = Arc::default();
    let mut tasks = Vec::new();
    for writer in 0..4 {
        let (conn, acked) = (server.conn_str(), acked.clone());
        tasks.push(tokio::spawn(async move {
            let Ok(c) = brikk_tests::connect(&conn).await else { return };
            let Ok(insert) =
                c.prepare("INSERT INTO jobs (by_writer, n) VALUES ($1, $2), ($1, $3) RETURNING id, n").await
            else {
                return;
            };
            for i in (0..).step_by(2) {
                match c.query(&insert, &[&writer, &i, &(i + 1)]).await {
                    Ok(rows) => acked.lock().unwrap().extend(rows.iter().map(|r| (r.get(0), writer, r.get(1)))),
                    Err(_) => return,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    server.kill9();
    for t in tasks {
        let _ = t.await;
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 40, "the writers made progress before the kill: {}", acked.len());

    let server = Server::start(dir.path()).unwrap();
    let c = server.client().await.unwrap();
    let rows = c.query("SELECT id, by_writer, n FROM jobs", &[]).await.unwrap();
    let stored: HashMap<i64, (i32, i32)> = rows.iter().map(|r| (r.get(0), (r.get(1), r.get(2)))).collect();
    for (id, writer, n) in &acked {
        assert_eq!(stored.get(id), Some(&(*writer, *n)), "acknowledged row {id} lost or changed");
    }
    // After the crash the sequence goes on above every value it gave out.
    let max = *stored.keys().max().unwrap();
    let next: i64 =
        c.query_one("INSERT INTO jobs (by_writer, n) VALUES (9, 0) RETURNING id", &[]).await.unwrap().get(0);
    assert!(next > max, "id {next} handed out again after the crash (max stored {max})");
}

/// `ALTER TABLE … ADD COLUMN` while prepared upserts run: the statements
/// plan again under the new definition (they keep a value written to the
/// new column, rather than overwriting the row without it), a prepared
/// `SELECT *` whose columns changed is refused as Postgres refuses it, and
/// after SIGKILL the column, its values and every acknowledged upsert are
/// there.
#[tokio::test]
async fn prepared_writers_go_on_across_alter_table_and_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path()).unwrap();
    let c = server.client().await.unwrap();
    c.batch_execute(BOARD).await.unwrap();
    let star = c.prepare("SELECT * FROM board WHERE topic = $1").await.unwrap();
    let acked: Arc<Mutex<BTreeMap<String, i64>>> = Arc::default();
    let mut tasks = Vec::new();
    for writer in 0..2 {
        let (conn, acked) = (server.conn_str(), acked.clone());
        tasks.push(tokio::spawn(async move {
            let Ok(c) = brikk_tests::connect(&conn).await else { return };
            let upsert = "INSERT INTO board (topic, fact, version) VALUES ($1, $2, 1) \
                          ON CONFLICT (topic) DO UPDATE SET fact = excluded.fact, version = board.version + 1 \
                          RETURNING version";
            let Ok(upsert) = c.prepare(upsert).await else { return };
            for i in 0.. {
                let topic = format!("t{}", (i + writer) % 4);
                match c.query_one(&upsert, &[&topic, &format!("w{writer}-{i}")]).await {
                    Ok(row) => {
                        let v: i64 = row.get(0);
                        let mut acked = acked.lock().unwrap();
                        let max = acked.entry(topic).or_default();
                        *max = (*max).max(v);
                    }
                    // A write that raced the ALTER itself is refused as a
                    // serialization failure; anything else ends the writer.
                    Err(e) if sqlstate(&e).as_deref() == Some("40001") => continue,
                    Err(_) => return,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    c.batch_execute("ALTER TABLE board ADD COLUMN owner TEXT DEFAULT 'anon'").await.unwrap();
    let before: i64 = acked.lock().unwrap().values().sum();
    c.batch_execute("UPDATE board SET owner = 'kept' WHERE topic = 't0'").await.unwrap();
    let e = c.query(&star, &[&"t0"]).await.unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("0A000"));
    let message = e.as_db_error().map(|d| d.message().to_string()).unwrap_or_default();
    assert_eq!(message, "cached plan must not change result type");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let owner: String = c.query_one("SELECT owner FROM board WHERE topic = 't0'", &[]).await.unwrap().get(0);
    assert_eq!(owner, "kept", "a prepared upsert planned before the ALTER overwrote the new column");
    let after: i64 = acked.lock().unwrap().values().sum();
    assert!(after > before + 10, "the prepared upserts went on after the ALTER: {before} → {after}");
    server.kill9();
    for t in tasks {
        let _ = t.await;
    }
    let acked = acked.lock().unwrap().clone();
    assert_eq!(acked.len(), 4, "the writers upserted every topic");

    let server = Server::start(dir.path()).unwrap();
    let c = server.client().await.unwrap();
    let rows = c.query("SELECT topic, version, owner FROM board", &[]).await.unwrap();
    let stored: HashMap<String, (i64, String)> = rows.iter().map(|r| (r.get(0), (r.get(1), r.get(2)))).collect();
    for (topic, version) in &acked {
        assert!(stored[topic].0 >= *version, "acknowledged version {version} of {topic} lost: {:?}", stored[topic]);
    }
    assert_eq!(stored["t0"].1, "kept");
    assert!(stored.values().all(|(_, a)| a == "kept" || a == "anon"));
}

/// `UPDATE … FROM` from many connections at once: each join reads rows that
/// others are changing, and no increment is lost (a write expects the
/// version its join read; a refused one runs again).
#[tokio::test]
async fn racing_update_from_loses_no_increment() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).unwrap();
    let c = server.client().await.unwrap();
    c.batch_execute(
        "CREATE TABLE counters (id INT PRIMARY KEY, n BIGINT NOT NULL);
         CREATE TABLE deltas (id INT PRIMARY KEY, delta BIGINT);
         INSERT INTO counters VALUES (1, 0), (2, 0), (3, 0);
         INSERT INTO deltas VALUES (1, 1), (2, 10)",
    )
    .await
    .unwrap();
    let (workers, rounds) = (6, 15);
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let conn = server.conn_str();
        tasks.push(tokio::spawn(async move {
            let c = brikk_tests::connect(&conn).await.unwrap();
            let add = c
                .prepare("UPDATE counters c SET n = c.n + d.delta FROM deltas d WHERE c.id = d.id AND d.delta >= $1")
                .await
                .unwrap();
            for _ in 0..rounds {
                assert_eq!(c.execute(&add, &[&1i64]).await.unwrap(), 2);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let rows = c.query("SELECT id, n FROM counters ORDER BY id", &[]).await.unwrap();
    let got: Vec<(i32, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let n = (workers * rounds) as i64;
    assert_eq!(got, vec![(1, n), (2, 10 * n), (3, 0)]);
}
