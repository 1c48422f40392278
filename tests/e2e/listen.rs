//! LISTEN/NOTIFY and the push of stream records to idle sessions, with
//! tokio-postgres receiving NotificationResponse messages.

use std::time::Duration;

use brikk_tests::sqlstate;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, Client};

use super::fresh;

/// A client whose notifications arrive on the returned channel as
/// (channel, payload). `stall`: stop reading the socket once the returned
/// sender is used (a stuck listener).
async fn listener(conn: &str) -> (Client, mpsc::UnboundedReceiver<(String, String)>, tokio::sync::oneshot::Sender<()>) {
    let (client, mut connection) = tokio_postgres::connect(conn, tokio_postgres::NoTls).await.unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let (stall_tx, mut stall_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        loop {
            tokio::select! {
                m = messages.next() => match m {
                    Some(Ok(AsyncMessage::Notification(n))) => {
                        let _ = tx.send((n.channel().to_string(), n.payload().to_string()));
                    }
                    Some(Ok(_)) => {}
                    _ => return,
                },
                _ = &mut stall_rx => {
                    // The socket stays open (this task keeps it) and is
                    // never read again.
                    std::future::pending::<()>().await;
                }
            }
        }
    });
    (client, rx, stall_tx)
}

async fn next(rx: &mut mpsc::UnboundedReceiver<(String, String)>) -> (String, String) {
    tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.expect("a notification within 10 s").expect("open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_listeners_get_records_and_notifies() {
    let (_dir, server) = fresh();
    let admin = server.client().await.unwrap();
    admin.batch_execute("CREATE STREAM ev (a TEXT, n INTEGER) WITH (partitions = 2, key = 'a')").await.unwrap();
    let (l, mut rx, _stall) = listener(&server.conn_str()).await;
    l.batch_execute("LISTEN ev; LISTEN chat").await.unwrap();
    // The listener is idle from here on: nothing is sent on its connection.
    admin.batch_execute("INSERT INTO ev VALUES ('k1', 1), ('k1', 2)").await.unwrap();
    for want in 0..2 {
        let (channel, payload) = next(&mut rx).await;
        assert_eq!(channel, "ev");
        let v: serde_json::Value = serde_json::from_str(&payload).unwrap();
        assert_eq!(v["offset"], want);
        assert_eq!(v["key"], "k1");
        assert_eq!(v["row"]["n"], want + 1);
        assert!(v["partition"].is_u64() && v["timestamp"].is_i64(), "{payload}");
    }
    // NOTIFY as in Postgres; inside a transaction it is sent at COMMIT only.
    admin.batch_execute("NOTIFY chat, 'hello'").await.unwrap();
    assert_eq!(next(&mut rx).await, ("chat".into(), "hello".into()));
    admin.batch_execute("BEGIN; NOTIFY chat, 'lost'; ROLLBACK").await.unwrap();
    admin.batch_execute("BEGIN; NOTIFY chat, 'kept'; COMMIT").await.unwrap();
    assert_eq!(next(&mut rx).await, ("chat".into(), "kept".into()));
    // A row too large for a notification says where to read it.
    let big = "x".repeat(10_000);
    admin.execute("INSERT INTO ev VALUES ('k2', $1::text::int)", &[&"3"]).await.unwrap();
    let (_, small) = next(&mut rx).await;
    assert!(small.contains("\"row\""), "{small}");
    admin
        .batch_execute(&format!("CREATE STREAM docs (body TEXT); INSERT INTO docs VALUES ('{big}')"))
        .await
        .unwrap_or(());
    l.batch_execute("LISTEN docs").await.unwrap();
    admin.batch_execute(&format!("INSERT INTO docs VALUES ('{big}')")).await.unwrap();
    let (channel, cut) = next(&mut rx).await;
    assert_eq!(channel, "docs");
    let v: serde_json::Value = serde_json::from_str(&cut).unwrap();
    assert_eq!((v["truncated"].as_bool(), v["offset"].as_u64()), (Some(true), Some(1)), "{cut}");
    // UNLISTEN stops them.
    l.batch_execute("UNLISTEN *").await.unwrap();
    admin.batch_execute("INSERT INTO ev VALUES ('k3', 9); NOTIFY chat, 'gone'").await.unwrap();
    assert!(tokio::time::timeout(Duration::from_millis(300), rx.recv()).await.is_err(), "nothing after UNLISTEN");
    let e = admin.batch_execute(&format!("NOTIFY chat, '{}'", "y".repeat(9000))).await.unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("22023"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_listeners_get_every_record_in_order_while_one_is_stalled() {
    let (_dir, server) = fresh();
    let admin = server.client().await.unwrap();
    admin.batch_execute("CREATE STREAM ticks (n INTEGER, pad TEXT)").await.unwrap();
    let (stalled, _stalled_rx, stall) = listener(&server.conn_str()).await;
    stalled.batch_execute("LISTEN ticks").await.unwrap();
    stall.send(()).unwrap();
    let mut listeners = Vec::new();
    for _ in 0..100 {
        let (c, rx, s) = listener(&server.conn_str()).await;
        c.batch_execute("LISTEN ticks").await.unwrap();
        listeners.push((c, rx, s));
    }
    let records = 10_000;
    let pad = "p".repeat(200);
    for chunk in (0..records).collect::<Vec<i32>>().chunks(500) {
        let values: Vec<String> = chunk.iter().map(|n| format!("({n}, '{pad}')")).collect();
        admin.batch_execute(&format!("INSERT INTO ticks VALUES {}", values.join(","))).await.unwrap();
    }
    // Writers were not held up by the stalled listener; every other one
    // gets every record, in offset order.
    let mut checks = Vec::new();
    for (c, mut rx, s) in listeners {
        checks.push(tokio::spawn(async move {
            for want in 0..records as u64 {
                let (_, payload) = next(&mut rx).await;
                let v: serde_json::Value = serde_json::from_str(&payload).unwrap();
                assert_eq!(v["offset"].as_u64(), Some(want));
            }
            drop((c, s));
        }));
    }
    for c in checks {
        c.await.unwrap();
    }
    // The stalled connection never took its notifications; the server and
    // other sessions are fine.
    let n: i64 = admin.query_one("SELECT count(*) FROM ticks", &[]).await.unwrap().get(0);
    assert_eq!(n, records as i64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_notify_sends_one_notification_per_row_with_parameters() {
    let (_dir, server) = fresh();
    let admin = server.client().await.unwrap();
    let (l, mut rx, _stall) = listener(&server.conn_str()).await;
    // pg_notify takes the channel as it is, case and all; LISTEN folds an
    // unquoted name to lower case, as in Postgres.
    l.batch_execute("LISTEN \"Agents\"; LISTEN jobs").await.unwrap();

    // Prepared, with parameters (NOTIFY takes none): one null row back.
    let rows = admin.query("SELECT pg_notify($1, $2)", &[&"Agents", &"hello"]).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].columns()[0].name(), "pg_notify");
    assert_eq!(rows[0].get::<_, Option<String>>(0), None);
    assert_eq!(next(&mut rx).await, ("Agents".into(), "hello".into()));

    // Once per row of a query, in its order; through the simple protocol.
    admin.batch_execute("CREATE TABLE jobs (id BIGINT PRIMARY KEY, state TEXT)").await.unwrap();
    admin.batch_execute("INSERT INTO jobs VALUES (1, 'new'), (2, 'new'), (3, 'done')").await.unwrap();
    let msgs = admin
        .simple_query("SELECT pg_notify('jobs', id || ':' || state) FROM jobs WHERE state = 'new' ORDER BY id")
        .await
        .unwrap();
    let rows = msgs.iter().filter(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(_))).count();
    assert_eq!(rows, 2);
    assert_eq!(next(&mut rx).await, ("jobs".into(), "1:new".into()));
    assert_eq!(next(&mut rx).await, ("jobs".into(), "2:new".into()));

    // In a transaction, sent at COMMIT only; a rollback drops it.
    admin.batch_execute("BEGIN; SELECT pg_notify('jobs', 'lost'); ROLLBACK").await.unwrap();
    admin.batch_execute("BEGIN").await.unwrap();
    admin.query("SELECT pg_notify($1, $2)", &[&"jobs", &"kept"]).await.unwrap();
    assert!(tokio::time::timeout(Duration::from_millis(200), rx.recv()).await.is_err(), "nothing before COMMIT");
    admin.batch_execute("COMMIT").await.unwrap();
    assert_eq!(next(&mut rx).await, ("jobs".into(), "kept".into()));

    // Refused as Postgres refuses them; nothing of the statement is sent.
    let none: Option<&str> = None;
    for (channel, payload) in
        [(none, Some("x".to_string())), (Some(""), Some("x".into())), (Some("jobs"), Some("y".repeat(9000)))]
    {
        let e = admin.query("SELECT pg_notify($1, $2)", &[&channel, &payload]).await.unwrap_err();
        assert_eq!(sqlstate(&e).as_deref(), Some("22023"), "{e:?}");
    }
    let e = admin
        .batch_execute("SELECT pg_notify(CASE WHEN id = 3 THEN '' ELSE 'jobs' END, 'x') FROM jobs ORDER BY id")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("22023"));
    assert!(tokio::time::timeout(Duration::from_millis(300), rx.recv()).await.is_err(), "no partial sends");
    // A NULL payload is empty, as in Postgres.
    admin.query("SELECT pg_notify('jobs', $1)", &[&none]).await.unwrap();
    assert_eq!(next(&mut rx).await, ("jobs".into(), String::new()));
}

/// A notification names the session that sent it by the process id
/// `pg_backend_pid()` gives that session (and its client got at start-up),
/// so an agent listening on a channel it also notifies can skip its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_name_the_session_that_sent_them() {
    let (_dir, server) = fresh();
    let (client, mut connection) = tokio_postgres::connect(&server.conn_str(), tokio_postgres::NoTls).await.unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(Ok(m)) = messages.next().await {
            if let AsyncMessage::Notification(n) = m {
                let _ = tx.send((n.process_id(), n.payload().to_string()));
            }
        }
    });
    let other = server.client().await.unwrap();
    let mine: i32 = client.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0);
    let theirs: i32 = other.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0);
    assert_ne!(mine, theirs, "each session has its own");
    let prepared = client.prepare("SELECT pg_backend_pid() AS pid").await.unwrap();
    assert_eq!(client.query_one(&prepared, &[]).await.unwrap().get::<_, i32>(0), mine);

    client.batch_execute("LISTEN chat; NOTIFY chat, 'mine'").await.unwrap();
    other.batch_execute("BEGIN; NOTIFY chat, 'theirs'; COMMIT").await.unwrap();
    let mut got = Vec::new();
    for _ in 0..2 {
        got.push(tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.unwrap().unwrap());
    }
    assert_eq!(got, vec![(mine, "mine".to_string()), (theirs, "theirs".to_string())]);
}
