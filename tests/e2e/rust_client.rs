//! The Rust row of the real-client suite: tokio-postgres used the way an
//! agent written in Rust uses it, step for step what the driver programs in
//! `tests/clients/` do — a stream and a table, appends, parameterised and
//! binary queries, transactions, LISTEN, and a live `COPY (SUBSCRIBE …)`.
//! docs/clients.md quotes it.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, NoTls};

use super::fresh;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_postgres_agent() {
    let (_dir, server) = fresh();
    let url = format!("postgresql://brikk@{}:{}/brikk", server.addr.ip(), server.addr.port());

    // Connect: the connection object does the I/O; drive it on a task, and
    // take the notifications it receives.
    let (client, mut connection) = tokio_postgres::connect(&url, NoTls).await.unwrap();
    let (notes_tx, mut notes) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(Ok(message)) = messages.next().await {
            if let AsyncMessage::Notification(n) = message {
                let _ = notes_tx.send((n.channel().to_string(), n.payload().to_string()));
            }
        }
    });
    let other = brikk_tests::connect(&url).await.unwrap();

    // A stream and a table.
    client
        .batch_execute(
            "CREATE STREAM tasks (task_id TEXT, kind TEXT, n BIGINT) WITH (partitions = 4, key = 'task_id');
             CREATE TABLE board (topic TEXT PRIMARY KEY, fact TEXT, version BIGINT NOT NULL)",
        )
        .await
        .unwrap();

    // Appends: literal, and a prepared statement with parameters.
    let n = client.execute("INSERT INTO tasks VALUES ('t1', 'build', 1), ('t2', 'test', 2)", &[]).await.unwrap();
    assert_eq!(n, 2);
    let insert = client.prepare("INSERT INTO tasks VALUES ($1, $2, $3)").await.unwrap();
    for (id, kind, n) in [("t3", "build", 3i64), ("t4", "deploy", 5_000_000_000)] {
        client.execute(&insert, &[&id, &kind, &n]).await.unwrap();
    }

    // Parameterised queries; results come back in binary and decode to
    // Rust types, system columns included.
    let rows = client
        .query("SELECT task_id, n FROM tasks WHERE kind = $1 AND n >= $2 ORDER BY n", &[&"build", &2i64])
        .await
        .unwrap();
    let got: Vec<(String, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(got, [("t3".to_string(), 3)]);
    let r = client
        .query_one("SELECT _partition, _offset, _timestamp, _key, n FROM tasks WHERE _key = $1", &[&"t4"])
        .await
        .unwrap();
    let (partition, offset): (i32, i64) = (r.get(0), r.get(1));
    let committed: chrono::DateTime<chrono::Utc> = r.get(2);
    assert!((0..4).contains(&partition) && offset >= 0);
    assert!(committed <= chrono::Utc::now());
    assert_eq!((r.get::<_, String>(3), r.get::<_, i64>(4)), ("t4".to_string(), 5_000_000_000));

    // A transaction: invisible to others until it commits; a rolled-back
    // one never is.
    let mut client = client;
    let tx = client.transaction().await.unwrap();
    tx.execute(&insert, &[&"tx1", &"txn", &100i64]).await.unwrap();
    let seen: i64 = other.query_one("SELECT count(*) FROM tasks WHERE kind = 'txn'", &[]).await.unwrap().get(0);
    assert_eq!(seen, 0);
    tx.commit().await.unwrap();
    let seen: i64 = other.query_one("SELECT count(*) FROM tasks WHERE kind = 'txn'", &[]).await.unwrap().get(0);
    assert_eq!(seen, 1);
    let tx = client.transaction().await.unwrap();
    tx.execute(&insert, &[&"rb1", &"rolledback", &200i64]).await.unwrap();
    tx.rollback().await.unwrap();
    let seen: i64 = other.query_one("SELECT count(*) FROM tasks WHERE kind = 'rolledback'", &[]).await.unwrap().get(0);
    assert_eq!(seen, 0);

    // The blackboard: upsert, then compare-and-set on the version.
    client
        .execute(
            "INSERT INTO board VALUES ($1, $2, 1) ON CONFLICT (topic) DO UPDATE SET fact = excluded.fact",
            &[&"plan", &"draft"],
        )
        .await
        .unwrap();
    let cas = client
        .prepare("UPDATE board SET fact = $1, version = version + 1 WHERE topic = $2 AND version = $3")
        .await
        .unwrap();
    assert_eq!(client.execute(&cas, &[&"final", &"plan", &1i64]).await.unwrap(), 1);
    assert_eq!(client.execute(&cas, &[&"stale", &"plan", &1i64]).await.unwrap(), 0, "version 1 is gone");

    // LISTEN: each record appended from now on, as JSON.
    client.batch_execute("LISTEN tasks").await.unwrap();
    other.execute("INSERT INTO tasks VALUES ('n1', 'notify', 42)", &[]).await.unwrap();
    let (channel, payload) = tokio::time::timeout(Duration::from_secs(10), notes.recv()).await.unwrap().unwrap();
    let record: serde_json::Value = serde_json::from_str(&payload).unwrap();
    assert_eq!(channel, "tasks");
    assert_eq!((record["key"].as_str(), record["row"]["n"].as_i64()), (Some("n1"), Some(42)));
    client.batch_execute("UNLISTEN tasks").await.unwrap();

    // A live subscription as rows: every change of the table since the
    // beginning, then each new one as it commits (COPY text format).
    let changes = client.copy_out("COPY (SUBSCRIBE board FROM BEGINNING) TO STDOUT").await.unwrap();
    let mut changes = Box::pin(changes);
    let mut ops = Vec::new();
    for _ in 0..3 {
        if ops.len() == 2 {
            other.execute("DELETE FROM board WHERE topic = 'plan'", &[]).await.unwrap();
        }
        let line = tokio::time::timeout(Duration::from_secs(10), changes.try_next()).await.unwrap().unwrap().unwrap();
        let fields: Vec<String> =
            std::str::from_utf8(&line).unwrap().trim_end().split('\t').map(String::from).collect();
        // _partition, _offset, _timestamp, _key, op, topic, fact, version
        ops.push((fields[4].clone(), fields[6].clone()));
    }
    let want: Vec<(String, String)> =
        [("insert", "draft"), ("update", "final"), ("delete", "final")].map(|(a, b)| (a.into(), b.into())).into();
    assert_eq!(ops, want);
    // A cancel request ends it (dropping the Rust stream alone would leave
    // the server sending); the connection goes on.
    drop(changes);
    client.cancel_token().cancel_query(NoTls).await.unwrap();
    client.query_one("SELECT 1", &[]).await.unwrap();
}
